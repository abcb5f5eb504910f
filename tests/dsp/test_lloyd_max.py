"""Lloyd-Max design against the literature, against an independent optimum computed with
scipy.integrate, and on data against the exact 1-D k-means (kmeans1d)."""
from __future__ import annotations

import math
import warnings

import kmeans1d
import numpy as np
import pytest
from scipy import integrate, stats

from rtq.dsp import lloyd_max
from rtq.dsp.lloyd_max import Histogram, design_for_pdf, design_from_histogram, histogram_bins, pdf_mse

# Max, J. (1960), "Quantizing for minimum distortion", IRE Trans. Inf. Theory IT-6(1),
# Table I: unit-variance Gaussian, MSE for 2..16 levels, output levels (positive half).
MAX_GAUSSIAN_MSE = {1: 0.3634, 2: 0.1175, 3: 0.03454, 4: 0.009497}
MAX_GAUSSIAN_LEVELS = {1: (0.7979,), 2: (0.4528, 1.5104), 3: (0.2451, 0.7560, 1.3439, 2.1519)}
MAX_GAUSSIAN_THRESHOLDS = {2: (0.9816,), 3: (0.5005, 1.0500, 1.7479)}

# Paez, M. D. and Glisson, T. H. (1972), "Minimum mean-squared-error quantization in
# speech PCM and DPCM systems", IEEE Trans. Commun. COM-20(2), 225-230, Table I:
# unit-variance Laplacian, output levels and thresholds (positive half) to 4 decimals,
# and the SNR as Jayant and Noll (1984, "Digital Coding of Waveforms", Table 4.4)
# reproduce it, to 2 decimals of a dB (so the MSE is known to +-0.12 %: the test holds
# the design to that rounding).
PAEZ_GLISSON_LEVELS = {1: (0.7071,), 2: (0.4198, 1.8340), 3: (0.2334, 0.8330, 1.6725, 3.0867)}
PAEZ_GLISSON_THRESHOLDS = {2: (1.1269,), 3: (0.5332, 1.2527, 2.3796)}
PAEZ_GLISSON_SNR_DB = {1: 3.01, 2: 7.54, 3: 12.64, 4: 18.13}


def _positive(values, bits):
    return np.asarray(values)[len(values) // 2:] if bits > 0 else values


@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_gaussian_design_meets_max_1960_within_0_1_percent(bits):
    design = design_for_pdf("gaussian", 2 ** bits)
    assert design.mse == pytest.approx(MAX_GAUSSIAN_MSE[bits], rel=1e-3)
    if bits in MAX_GAUSSIAN_LEVELS:
        assert np.allclose(_positive(design.levels, bits), MAX_GAUSSIAN_LEVELS[bits], atol=1e-4)
        assert np.allclose(design.levels, -design.levels[::-1], atol=1e-12)
    if bits in MAX_GAUSSIAN_THRESHOLDS:
        assert np.allclose(_positive(design.thresholds, bits)[1:], MAX_GAUSSIAN_THRESHOLDS[bits], atol=1e-4)


@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_laplacian_design_meets_paez_glisson_1972(bits):
    design = design_for_pdf("laplacian", 2 ** bits)
    assert 10 * math.log10(1 / design.mse) == pytest.approx(PAEZ_GLISSON_SNR_DB[bits], abs=0.005 + 1e-9)
    if bits in PAEZ_GLISSON_LEVELS:
        assert np.allclose(_positive(design.levels, bits), PAEZ_GLISSON_LEVELS[bits], atol=0.5e-4 + 1e-9)
    if bits in PAEZ_GLISSON_THRESHOLDS:
        assert np.allclose(_positive(design.thresholds, bits)[1:], PAEZ_GLISSON_THRESHOLDS[bits], atol=0.5e-4 + 1e-9)


def _quad(f, a, b):
    """scipy.integrate.quad to about 1e-13, each side of the Laplacian's cusp at 0 apart."""
    if a < 0.0 < b:
        return _quad(f, a, 0.0) + _quad(f, 0.0, b)
    return integrate.quad(f, a, b, epsabs=1e-15, epsrel=1e-13, limit=200)[0]


def _quad_lloyd(pdf, count: int, start) -> tuple[np.ndarray, float]:
    """The Lloyd-Max optimum computed independently of rtq: every cell moment by
    adaptive quadrature (scipy.integrate.quad over scipy.stats densities), the two
    optimality conditions (levels at their cells' centroids, thresholds at midpoints)
    solved together by scipy.optimize.fsolve from ``start`` (the solution does not
    depend on it: rtq's design, perturbed by 1 %, saves iterations); returns (levels, MSE)."""
    from scipy.optimize import fsolve

    density = pdf.pdf
    quad = _quad

    def cells(levels):
        edges = np.concatenate([[-np.inf], 0.5 * (levels[1:] + levels[:-1]), [np.inf]])
        return list(zip(edges[:-1], edges[1:]))

    def centroid_gap(levels):
        return [quad(lambda x: x * density(x), a, b) / quad(density, a, b) - y
                for y, (a, b) in zip(levels, cells(levels))]

    with warnings.catch_warnings():     # near the root, quadrature's last digits stall its progress test
        warnings.simplefilter("ignore", RuntimeWarning)
        levels = fsolve(centroid_gap, np.asarray(start) * 1.01, xtol=1e-12)
    mse = sum(quad(lambda x: (x - y) ** 2 * density(x), a, b) for y, (a, b) in zip(levels, cells(levels)))
    return levels, mse


DENSITIES = [("gaussian", stats.norm()), ("laplacian", stats.laplace(scale=1 / math.sqrt(2)))]


@pytest.mark.parametrize("name, pdf", DENSITIES)
@pytest.mark.parametrize("bits", [1, 2])
def test_the_closed_form_design_equals_the_optimum_by_quadrature(name, pdf, bits):
    """The tables are checked by computing the optimum independently: the quadrature's
    levels and MSE equal rtq's closed-form design to 1e-7 and 1e-9, and meet the tables'
    digits."""
    design = design_for_pdf(name, 2 ** bits)
    levels, mse = _quad_lloyd(pdf, 2 ** bits, design.levels)
    assert np.allclose(design.levels, levels, atol=1e-7)
    assert design.mse == pytest.approx(mse, rel=1e-9)
    table = MAX_GAUSSIAN_LEVELS if name == "gaussian" else PAEZ_GLISSON_LEVELS
    assert np.allclose(_positive(levels, bits), table[bits], atol=0.5e-4 + 1e-9)


@pytest.mark.parametrize("name, pdf", DENSITIES)
@pytest.mark.parametrize("bits", [3, 4])
def test_at_3_and_4_bits_the_design_meets_the_optimality_conditions_by_quadrature(name, pdf, bits):
    """Both conditions checked by quadrature at rtq's levels (each level within 1e-7 of
    its cell's centroid; thresholds are midpoints by construction), which for these
    log-concave densities make it the one optimum (Fleischer 1964); its MSE by
    quadrature is the design's and the table's: Gaussian 4 bits 0.009501 against Max's
    0.009497 (0.04 % apart), Laplacian 0.01537 (18.13 dB)."""
    design = design_for_pdf(name, 2 ** bits)
    edges = np.concatenate([[-np.inf], design.thresholds, [np.inf]])
    mse = 0.0
    for y, a, b in zip(design.levels, edges[:-1], edges[1:]):
        mass = _quad(pdf.pdf, a, b)
        assert _quad(lambda x: x * pdf.pdf(x), a, b) / mass == pytest.approx(y, abs=1e-7)
        mse += _quad(lambda x: (x - y) ** 2 * pdf.pdf(x), a, b)
    assert design.mse == pytest.approx(mse, rel=1e-9)
    if name == "gaussian":
        assert mse == pytest.approx(MAX_GAUSSIAN_MSE[bits], rel=1e-3)
    else:
        assert 10 * math.log10(1 / mse) == pytest.approx(PAEZ_GLISSON_SNR_DB[bits], abs=0.005)


def _gaussian_samples(n=10 ** 6, sigma=0.1, seed=1):
    return np.random.default_rng(seed).standard_normal(n) * sigma


@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_trained_on_a_million_gaussian_samples_the_design_is_within_1_percent_of_max(bits):
    sigma = 0.1     # audio lives within full scale: the data are scaled, the MSE with them
    hist = Histogram(histogram_bins(2 ** bits))
    hist.add(_gaussian_samples(sigma=sigma), 0)
    design = design_from_histogram(hist, 2 ** bits)
    assert design.mse / sigma ** 2 == pytest.approx(MAX_GAUSSIAN_MSE[bits], rel=0.01)
    if bits in MAX_GAUSSIAN_LEVELS:
        assert np.allclose(_positive(design.levels, bits) / sigma, MAX_GAUSSIAN_LEVELS[bits], rtol=0.01, atol=0.01)


@pytest.mark.parametrize("count", [4, 16, 64])
def test_the_data_design_is_the_exact_k_means_optimum(count):
    """kmeans1d (global 1-D k-means by dynamic programming over the samples themselves)
    as the oracle, on 10^5 16-bit Gaussian samples: rtq's design on its histogram has
    an MSE within 0.1 % of the global optimum's (measured: 0.0005 % at 4 levels, 0.05 %
    at 64; Lloyd alone, from the quantiles, stopped 3 % above it at 64 levels)."""
    x = np.round(_gaussian_samples(100_000) * 32768) / 32768
    hist = Histogram(histogram_bins(count))
    hist.add(x, 0)
    design = design_from_histogram(hist, count)
    clusters, centroids = kmeans1d.cluster(x, count)
    optimum = float(np.mean((x - np.asarray(centroids)[np.asarray(clusters)]) ** 2))
    index = np.searchsorted(design.thresholds, x, side="right")
    achieved = float(np.mean((x - design.levels[index]) ** 2))
    assert achieved == pytest.approx(optimum, rel=1e-3)
    assert design.mse == pytest.approx(achieved, rel=1e-4)     # the reported MSE is the data's


def test_the_histogram_does_not_depend_on_how_the_data_are_cut():
    x = _gaussian_samples(100_000).reshape(-1, 2)
    whole, pieces = Histogram(4096, 2), Histogram(4096, 2)
    whole.add(x)
    for start in range(0, len(x), 777):
        pieces.add(x[start:start + 777])
    assert np.array_equal(whole.count, pieces.count)
    assert np.allclose(whole.sum, pieces.sum, rtol=1e-12, atol=1e-15)
    assert whole.samples == x.size


def test_histogram_memory_is_bounded_whatever_the_levels_and_channels():
    assert histogram_bins(16) == 16384
    assert histogram_bins(2 ** 16) == lloyd_max.MAX_BINS
    assert histogram_bins(2 ** 16, channels=64) * 24 * 64 <= 256 << 20


def test_too_few_distinct_values_for_the_levels_is_an_error():
    hist = Histogram(4096)
    hist.add(np.repeat([-0.5, 0.0, 0.5], 100), 0)
    with pytest.raises(ValueError, match="3 distinct values"):
        design_from_histogram(hist, 4)


def test_pdf_mse_of_a_design_is_its_mse():
    design = design_for_pdf("laplacian", 8, 0.1, (-1.0, 1.0))
    assert pdf_mse("laplacian", design.levels, 0.1, (-1.0, 1.0)) == pytest.approx(design.mse, rel=1e-12)
