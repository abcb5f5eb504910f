"""ErrorMeter figures against textbook values and independent numpy/scipy computations."""
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize, signal, stats

from rtq.meter.measure import ErrorMeter
from rtq.meter.weighting import a_weighting_db, itu468_weighting_db

FS = 48000
N = 2 ** 18
Q16 = 2.0 ** -15
LIPSHITZ_NTF = [1, -2.033, 2.165, -1.959, 1.590, -0.6149]
CONTRACT_KEYS = {"index", "stage", "bits", "rms_dbfs", "peak_dbfs", "mse", "psnr_db", "snr_db",
                 "a_weighted_dbfs", "itu468_dbfs", "dc_lsb", "clips", "nonfinite", "bits_in_use",
                 "histogram", "spectrum", "noise_modulation", "sinad_db", "enob"}


def sine(amplitude, freq=997.0, n=N, phase=0.0):
    return amplitude * np.sin(2 * np.pi * freq * np.arange(n) / FS + phase)


def tpdf(rng, shape):
    """TPDF dither in LSB: sum of two independent uniforms, 2 LSB peak to peak."""
    return rng.random(shape) + rng.random(shape) - 1.0


def measure(x, y, **kwargs):
    x, y = np.atleast_2d(x.T).T, np.atleast_2d(y.T).T
    meter = ErrorMeter(FS, x.shape[1], **kwargs)
    meter.update(x, y)
    return meter.result()


def welch_bin_power(e, nfft=4096):
    """Independent Welch: power per one-sided bin (density times bin width)."""
    f, psd = signal.welch(e, FS, window="hann", nperseg=nfft, noverlap=nfft // 2,
                          detrend=False, scaling="density", axis=0)
    return f, psd * (FS / nfft)


def sine_fit_sinad(y):
    """IEEE 1057 four-parameter fit: 3-parameter least squares inside a 1-D search on f."""
    n = np.arange(len(y))
    pad = 16 * len(y)
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y)), pad))
    f0 = np.argmax(spectrum[1:]) + 1

    def fit(f):
        basis = np.column_stack([np.cos(2 * np.pi * f * n / pad), np.sin(2 * np.pi * f * n / pad),
                                 np.ones(len(y))])
        coef = np.linalg.lstsq(basis, y, rcond=None)[0]
        return basis, coef

    def residual(f):
        basis, coef = fit(f)
        return np.sum((y - basis @ coef) ** 2)

    # Search the offset from the peak (Brent's tolerance is relative to |x|).
    best = f0 + optimize.minimize_scalar(lambda d: residual(f0 + d), bounds=(-1, 1), method="bounded",
                                         options={"xatol": 1e-9}).x
    basis, coef = fit(best)
    sine_part = basis[:, :2] @ coef[:2]
    return 10 * np.log10(np.sum(sine_part ** 2) / residual(best))


def group_mean(power, size):
    """Mean of consecutive groups of ``size`` bins (trailing partial group dropped)."""
    power = np.asarray(power, dtype=float)
    return power[: len(power) // size * size].reshape(-1, size).mean(axis=1)


def irwin_hall3_cdf(e):
    """CDF of U(-.5,.5) + U(-.5,.5) + U(-.5,.5) (rounding error plus TPDF dither), in LSB."""
    t = np.clip(np.asarray(e) + 1.5, 0.0, 3.0)
    return np.where(t <= 1, t ** 3 / 6,
                    np.where(t <= 2, (-2 * t ** 3 + 9 * t ** 2 - 9 * t + 3) / 6, 1 - (3 - t) ** 3 / 6))


# -- textbook cases -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def full_scale_sine():
    return sine(1.0 - Q16 / 2)


def test_undithered_full_scale_sine_16_bit(full_scale_sine):
    x = full_scale_sine
    y = np.rint(x / Q16) * Q16
    r = measure(x, y, bits=16, dither="none")
    assert r["snr_db"][0] == pytest.approx(98.09, abs=0.2)
    assert r["rms_dbfs"][0] == pytest.approx(-101.10, abs=0.1)
    assert r["sinad_db"][0] == pytest.approx(sine_fit_sinad(y), abs=0.1)
    assert r["enob"][0] == pytest.approx(16.0, abs=0.05)
    # IEEE 1241: (SINAD - 10 log10(3/2) - 20 log10(A / 1)) / (20 log10 2), A the tone's peak
    assert r["enob"][0] == pytest.approx((r["sinad_db"][0] - 10 * np.log10(1.5) - 20 * np.log10(1 - Q16 / 2))
                                         / (20 * np.log10(2)), abs=1e-3)
    assert r["spectrum"]["floor_dbfs"][1] == pytest.approx(10 * np.log10(Q16 ** 2 / 12 * 2 / 4096))


def test_tpdf_16_bit_level_snr_and_sinad(full_scale_sine):
    rng = np.random.default_rng(7)
    x = full_scale_sine
    y = np.rint(x / Q16 + tpdf(rng, N)) * Q16
    r = measure(x, y, bits=16, dither="tpdf")
    assert r["rms_dbfs"][0] == pytest.approx(-96.33, abs=0.1)
    assert r["snr_db"][0] == pytest.approx(93.32, abs=0.2)
    assert r["sinad_db"][0] == pytest.approx(sine_fit_sinad(y), abs=0.1)
    assert r["enob"][0] == pytest.approx((93.32 - 1.76) / 6.02, abs=0.05)


@pytest.mark.parametrize("level_db", [-6.0, -20.0, -40.0])
@pytest.mark.parametrize("dither, bits", [("tpdf", 16 - np.log2(np.sqrt(3))), ("none", 16.0)])
def test_enob_is_referred_to_full_scale(level_db, dither, bits):
    """IEEE 1241 ENOB does not depend on the tone's level: 16-bit rounding of a busy
    signal (q^2/12) is 16 bits, with TPDF (q^2/4) 16 - log2(sqrt 3) = 15.21 bits.  The
    old figure, (SINAD - 1.76) / 6.02 of the tone itself, read 12.39 bits for TPDF at
    -20 dBFS (a full-scale sine's SINAD less the tone's 20 dB)."""
    rng = np.random.default_rng(11)
    x = sine(np.sqrt(2) * 10 ** (level_db / 20))          # RMS level_db dBFS
    y = np.rint(x / Q16 + (tpdf(rng, N) if dither == "tpdf" else 0.0)) * Q16
    r = measure(x, y, bits=16, dither=dither)
    assert r["enob"][0] == pytest.approx(bits, abs=0.02)


def test_tpdf_error_histogram_matches_analytic_density():
    # The density assumes the input sits anywhere between grid points with equal
    # probability: true of a busy random input, only nearly of a periodic sine.
    rng = np.random.default_rng(11)
    x = 0.3 * rng.standard_normal((N, 2))
    y = np.rint(x / Q16 + tpdf(rng, x.shape)) * Q16
    h = measure(x, y, bits=16, dither="tpdf")["histogram"]
    centres = np.array(h["lsb"])
    assert np.allclose(np.diff(centres), 1 / 8) and centres[0] == -4 + 1 / 16 and centres[-1] == 4 - 1 / 16
    edges = np.append(centres - 1 / 16, 4.0)
    analytic = np.diff(irwin_hall3_cdf(edges))
    triangle_only = np.diff(np.where(edges < 0, (edges + 1).clip(0, 1) ** 2 / 2,
                                     1 - (1 - edges).clip(0, 1) ** 2 / 2))
    for ch in range(2):
        counts = np.array(h["count"][ch])
        assert counts.sum() == N and h["under"][ch] == 0 and h["over"][ch] == 0
        assert np.max(np.abs(counts / N - analytic)) < 2e-3
        used = analytic > 0
        assert stats.chisquare(counts[used], N * analytic[used]).pvalue > 1e-3
        # The test has power: a plain triangle (dither alone) is rejected outright.
        assert np.max(np.abs(counts / N - triangle_only)) > 0.02


# -- every figure against an independent computation -----------------------------------------


@pytest.fixture(scope="module")
def stereo_case():
    rng = np.random.default_rng(3)
    bits = 12
    q = 2.0 ** (1 - bits)
    x = np.column_stack([sine(0.4, 440.0) + sine(0.2, 3111.0), 0.1 * rng.standard_normal(N)])
    y = np.clip(np.rint(x / q + tpdf(rng, x.shape)), -2048, 2047) * q
    return x, y, q, bits, measure(x, y, bits=bits, dither="tpdf", index=2, stage="requantize")


def test_level_figures_match_numpy(stereo_case):
    x, y, q, _, r = stereo_case
    e = y - x
    mse = np.mean(e ** 2, axis=0)
    np.testing.assert_allclose(r["mse"], mse, rtol=1e-12)
    np.testing.assert_allclose(r["rms_dbfs"], 10 * np.log10(mse), atol=1e-9)
    np.testing.assert_allclose(r["peak_dbfs"], 20 * np.log10(np.max(np.abs(e), axis=0)), atol=1e-9)
    np.testing.assert_allclose(r["psnr_db"], 10 * np.log10(1 / mse), atol=1e-9)
    np.testing.assert_allclose(r["snr_db"], 10 * np.log10(np.sum(x ** 2, 0) / np.sum(e ** 2, 0)), atol=1e-9)
    np.testing.assert_allclose(r["dc_lsb"], np.mean(e, axis=0) / q, rtol=1e-9)
    assert (r["index"], r["stage"], r["bits"], r["frames"]) == (2, "requantize", 12, N)


def test_histogram_matches_numpy(stereo_case):
    x, y, q, _, r = stereo_case
    lsb = (y - x) / q
    for ch in range(2):
        counts, _ = np.histogram(lsb[:, ch], bins=np.linspace(-4, 4, 65))
        assert r["histogram"]["count"][ch] == counts.tolist()
        assert r["histogram"]["under"][ch] == np.sum(lsb[:, ch] < -4)
        assert r["histogram"]["over"][ch] == np.sum(lsb[:, ch] >= 4)


def test_spectrum_and_weighted_levels_match_scipy_welch(stereo_case):
    x, y, _, _, r = stereo_case
    f, power = welch_bin_power(y - x)
    np.testing.assert_allclose(r["spectrum"]["freq_hz"], f)
    np.testing.assert_allclose(np.array(r["spectrum"]["psd_dbfs"]).T, 10 * np.log10(power), atol=1e-6)
    for key, curve in (("a_weighted_dbfs", a_weighting_db), ("itu468_dbfs", itu468_weighting_db)):
        with np.errstate(divide="ignore"):
            weight = 10 ** (curve(f) / 10)
        np.testing.assert_allclose(r[key], 10 * np.log10(weight @ power), atol=1e-6)
    # Bin powers add up to the error's mean power (Welch with a Hann window: to ~0.1 dB).
    np.testing.assert_allclose(10 * np.log10(power.sum(0)), r["rms_dbfs"], atol=0.1)


def test_noise_modulation_matches_numpy(stereo_case):
    x, y, _, _, r = stereo_case
    nm = r["noise_modulation"]
    assert nm["band_lo_dbfs"] == list(range(-96, 0, 6)) and nm["band_hi_dbfs"] == list(range(-90, 6, 6))
    e2 = (y - x) ** 2
    with np.errstate(divide="ignore"):
        level = 20 * np.log10(np.abs(x))
    for ch in range(2):
        expected, counts = [], []
        for lo in range(-96, 0, 6):
            inside = (level[:, ch] >= lo) & ((level[:, ch] < lo + 6) if lo < -6 else True)
            counts.append(int(inside.sum()))
            expected.append(10 * np.log10(e2[inside, ch].mean()) if inside.sum() >= 1000 else None)
        assert nm["count"][ch] == counts
        got = nm["error_dbfs"][ch]
        assert [g is None for g in got] == [v is None for v in expected]
        populated = [v for v in expected if v is not None]
        np.testing.assert_allclose([g for g in got if g is not None], populated, atol=1e-9)
        assert nm["spread_db"][ch] == pytest.approx(max(populated) - min(populated))
        assert nm["spread_db"][ch] < 1.0  # TPDF: the error power does not follow the signal


def test_bits_in_use_match_numpy(stereo_case):
    _, y, q, bits, r = stereo_case
    codes = np.rint(y / q).astype(np.int64) & (2 ** bits - 1)
    for ch in range(2):
        per_bit = (codes[:, ch, None] >> np.arange(bits)) & 1
        toggled = (per_bit.min(axis=0) == 0) & (per_bit.max(axis=0) == 1)
        assert r["bits_in_use"][ch] == toggled.tolist()
    assert r["off_grid"] == [0, 0]


# -- known cases ------------------------------------------------------------------------------


def test_bits_in_use_known_codes_and_off_grid():
    q = 2.0 ** -7  # 8 bits
    small = np.array([0, 1, 2, 3, 5, 7, 6, 4], dtype=float) * q  # only bits 0..2 toggle
    negative = np.array([0, -1], dtype=float) * q  # two's complement: every bit toggles
    clipped = np.array([1.0, 0.0])  # 128 clamps to 127 (0111 1111): bit 7 stays 0
    offgrid = np.array([0.25 * q, 3 * q])
    r = {}
    for name, y in (("small", small), ("negative", negative), ("clipped", clipped), ("offgrid", offgrid)):
        r[name] = measure(y, y, bits=8, dither="none")
    assert r["small"]["bits_in_use"] == [[True] * 3 + [False] * 5]
    assert r["negative"]["bits_in_use"] == [[True] * 8]
    assert r["clipped"]["bits_in_use"] == [[True] * 7 + [False]]
    assert r["small"]["off_grid"] == [0] and r["offgrid"]["off_grid"] == [1]


def test_one_bit_sign_quantizer_grid():
    y = np.array([1.0, -1.0, 1.0])
    r = measure(y, y, bits=1, dither="none")
    assert r["bits_in_use"] == [[True]] and r["off_grid"] == [0]


@pytest.mark.parametrize("dither, power_lsb2", [("none", 1 / 12), ("rpdf", 1 / 6), ("tpdf", 1 / 4),
                                                 ("tpdf-hp", 1 / 4), ("gaussian", 1 / 3)])
def test_floor_bins_add_up_to_the_theoretical_error_power(dither, power_lsb2):
    spectrum = ErrorMeter(FS, 1, bits=16, dither=dither).result()["spectrum"]
    floor = 10 ** (np.array(spectrum["floor_dbfs"]) / 10)
    assert floor.sum() == pytest.approx(Q16 ** 2 * power_lsb2, rel=1e-9)
    assert spectrum["target_dbfs"] == spectrum["floor_dbfs"]


def _dithered_busy_signal(dither, rng, n=N):
    """A busy input (many LSB) quantized to 16 bits with the given dither, in numpy."""
    x = 0.3 * rng.standard_normal(n)
    if dither == "none":
        r = 0.0
    elif dither == "rpdf":
        r = rng.random(n) - 0.5
    elif dither == "tpdf":
        r = tpdf(rng, n)
    else:  # tpdf-hp: first difference of a uniform sequence
        u = rng.random(n + 1)
        r = u[1:] - u[:-1]
    return x, np.rint(x / Q16 + r) * Q16


@pytest.mark.parametrize("dither", ["none", "rpdf", "tpdf", "tpdf-hp"])
def test_error_spectrum_matches_floor(dither):
    x, y = _dithered_busy_signal(dither, np.random.default_rng(5))
    spectrum = measure(x, y, bits=16, dither=dither)["spectrum"]
    measured = group_mean(10 ** (np.array(spectrum["psd_dbfs"][0]) / 10), 32)
    floor = group_mean(10 ** (np.array(spectrum["floor_dbfs"]) / 10), 32)
    np.testing.assert_allclose(10 * np.log10(measured / floor), 0.0, atol=0.5)


def test_white_tpdf_error_weighted_levels_are_level_plus_weighting_gain():
    x, y = _dithered_busy_signal("tpdf", np.random.default_rng(9))
    r = measure(x, y, bits=16, dither="tpdf")
    f = np.linspace(1e-3, FS / 2, 1_000_001)
    for key, curve in (("a_weighted_dbfs", a_weighting_db), ("itu468_dbfs", itu468_weighting_db)):
        gain = 10 * np.log10(np.trapezoid(10 ** (curve(f) / 10), f) / (FS / 2))
        assert r[key][0] == pytest.approx(-96.33 + gain, abs=0.1)


def test_shaped_error_matches_target():
    rng = np.random.default_rng(13)
    white = (rng.random(N) + rng.random(N) + rng.random(N) - 1.5) * Q16  # TPDF-like total error
    x = 0.3 * rng.standard_normal(N)
    y = x + signal.lfilter(LIPSHITZ_NTF, [1.0], white)
    as_pair = measure(x, y, bits=16, dither="tpdf", ntf=(LIPSHITZ_NTF, [1.0]))["spectrum"]
    as_callable = measure(x, y, bits=16, dither="tpdf",
                          ntf=lambda w: np.polyval(LIPSHITZ_NTF[::-1], np.exp(-1j * w)))["spectrum"]
    np.testing.assert_allclose(as_pair["target_dbfs"], as_callable["target_dbfs"], atol=1e-9)
    freq = np.array(as_pair["freq_hz"])
    measured = 10 ** (np.array(as_pair["psd_dbfs"][0]) / 10)
    target = 10 ** (np.array(as_pair["target_dbfs"]) / 10)
    band = (freq >= 100) & (freq <= 0.45 * FS)
    diff = 10 * np.log10(group_mean(measured[band], 8) / group_mean(target[band], 8))
    assert np.max(np.abs(diff)) < 1.0
    # Gerzon-Craven: the shaped target still averages to the white floor in log terms.
    floor = np.array(as_pair["floor_dbfs"])
    assert np.mean((np.array(as_pair["target_dbfs"]) - floor)[1:-1]) == pytest.approx(0.0, abs=0.05)


def test_noise_modulation_undithered_vs_tpdf_low_level_sine():
    q = 2.0 ** -7  # 8 bits: the -96..0 dBFS bands reach far below one LSB
    x = sine(4 * q)
    rng = np.random.default_rng(17)
    plain = measure(x, np.rint(x / q) * q, bits=8, dither="none")["noise_modulation"]
    dithered = measure(x, np.rint(x / q + tpdf(rng, N)) * q, bits=8, dither="tpdf")["noise_modulation"]
    assert plain["spread_db"][0] > 10.0  # below q/2 the error is -x: it follows the signal
    assert dithered["spread_db"][0] < 1.0


def test_sinad_follows_a_phase_shifted_and_scaled_output():
    x = sine(0.5)
    y = np.rint(sine(0.45, phase=0.3) / Q16) * Q16
    r = measure(x, y, bits=16, dither="none")
    assert r["sinad_db"][0] == pytest.approx(sine_fit_sinad(y), abs=0.1)


@pytest.mark.parametrize("make_x", [
    lambda rng: 0.3 * rng.standard_normal(N),
    lambda rng: sine(0.3) + sine(0.3, 2500.0),
    lambda rng: sine(0.3) + 0.03 * rng.standard_normal(N),  # sine with 2 % noise power
], ids=["noise", "two-tone", "noisy-sine"])
def test_sinad_is_none_unless_the_input_is_a_sine(make_x):
    rng = np.random.default_rng(19)
    x = make_x(rng)
    y = np.rint(x / Q16 + tpdf(rng, N)) * Q16
    r = measure(x, y, bits=16)
    assert r["sinad_db"] == [None] and r["enob"] == [None]


def test_sine_with_small_noise_still_counts_as_sine():
    rng = np.random.default_rng(23)
    x = sine(0.3) + 0.003 * rng.standard_normal(N)  # noise 0.02 % of the power
    y = np.rint(x / Q16 + tpdf(rng, N)) * Q16
    r = measure(x, y, bits=16)
    assert r["sinad_db"][0] == pytest.approx(10 * np.log10(np.var(x) / (Q16 ** 2 / 4)), abs=0.1)


# -- streaming behaviour ----------------------------------------------------------------------


def _stream_case(n, seed=29):
    rng = np.random.default_rng(seed)
    x = np.column_stack([sine(0.9, n=n), 0.2 * rng.standard_normal(n)])
    y = np.rint(x / Q16 + tpdf(rng, x.shape)) * Q16
    return x, y


def _feed(meter, x, y, sizes):
    start = 0
    for size in sizes:
        meter.update(x[start:start + size], y[start:start + size])
        start += size
    assert start >= len(x)
    return meter


def assert_same_result(a, b, rtol=1e-9):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same_result(a[key], b[key], rtol)
    elif isinstance(a, list):
        assert len(a) == len(b)
        for u, v in zip(a, b):
            assert_same_result(u, v, rtol)
    elif isinstance(a, float):
        assert b == pytest.approx(a, rel=rtol, abs=1e-12)
    else:
        assert a == b


@pytest.mark.parametrize("size", [1, 7, 4096])
def test_chunk_size_does_not_change_results(size):
    n = 3 * 4096 + 777
    x, y = _stream_case(n)
    whole = _feed(ErrorMeter(FS, 2, bits=16), x, y, [n])
    chunked = _feed(ErrorMeter(FS, 2, bits=16), x, y, [size] * math.ceil(n / size))
    for window in ("integrated", "momentary"):
        reference = whole.result(window)
        assert reference["sinad_db"][0] is not None and reference["spectrum"]["psd_dbfs"] is not None
        assert_same_result(reference, chunked.result(window))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 300), min_size=1, max_size=40))
def test_any_chunking_gives_the_same_result(sizes):
    n = 1500
    x, y = _stream_case(n, seed=31)
    sizes = sizes + [n]
    small = dict(bits=16, nfft=128, momentary_s=0.005)  # 64-frame blocks, 4 of them momentary
    whole = _feed(ErrorMeter(FS, 2, **small), x, y, [n])
    chunked = _feed(ErrorMeter(FS, 2, **small), x, y, sizes)
    for window in ("integrated", "momentary"):
        assert_same_result(whole.result(window), chunked.result(window))


def test_channels_measured_side_by_side_give_the_same_result():
    """With an executor the compiled pass runs the upper half of the channels on its
    thread (each with its own copy of the block state): the figures are those of one
    thread, blocks closing inside chunks and non-finite samples included (the sums
    are the same, the spectra to rounding: their transforms are batched otherwise)."""
    from concurrent.futures import ThreadPoolExecutor

    n = 3 * 4096 + 777
    x, y = _stream_case(n)
    x = np.column_stack([x, 0.5 * x[:, :1]])
    y = np.column_stack([y, np.rint(x[:, 2:] / Q16) * Q16])
    y[100, 2] = np.nan
    sizes = [5000, 3001, n]
    alone = _feed(ErrorMeter(FS, 3, bits=16), x, y, sizes)
    side_by_side = ErrorMeter(FS, 3, bits=16)
    with ThreadPoolExecutor(1) as executor:
        side_by_side.executor = executor
        _feed(side_by_side, x, y, sizes)
    for window in ("integrated", "momentary"):
        reference = alone.result(window)
        assert reference["nonfinite"] == [0, 0, 1]
        assert_same_result(reference, side_by_side.result(window), rtol=1e-12)
        for key in ("mse", "peak_dbfs", "histogram", "noise_modulation", "bits_in_use", "sinad_db"):
            assert side_by_side.result(window)[key] == reference[key]


def test_spectra_transformed_on_the_executor_give_the_same_result_to_the_bit():
    """With defer_spectra, each update's spectra are transformed and added as a job
    on the executor while the next update goes on (two buffers taking turns): the
    figures are those measured in line to the bit, across a restart and chunks longer
    than the buffers, in both windows, as soon as result() returns."""
    from concurrent.futures import ThreadPoolExecutor

    n = 9 * 4096 + 555
    x, y = _stream_case(n)
    sizes = [3000, 1, 21999, 4095, 9999]

    def feed(meter):
        _feed(meter, x[:25000], y[:25000], sizes[:3])
        meter.restart_segment()
        return _feed(meter, x[25000:], y[25000:], sizes[3:])

    alone = feed(ErrorMeter(FS, 2, bits=16))
    deferred = ErrorMeter(FS, 2, bits=16)
    deferred.defer_spectra = True
    with ThreadPoolExecutor(1) as executor:
        deferred.executor = executor
        feed(deferred)
        assert deferred._jobs      # handed to the executor, the last ones perhaps not yet done
        for window in ("integrated", "momentary"):
            assert deferred.result(window) == alone.result(window)
    assert alone.result()["spectrum"]["segments"] > 10


@pytest.mark.parametrize("sizes", [[1000], [7] * 143, [333, 1, 666]])
def test_segments_after_a_restart_all_count(sizes):
    """After restart_segment the segments end inside blocks, not at their ends: every one
    counts in the integrated spectrum, however the frames come (a segment that completed
    in the current block was lost from it when that block closed)."""
    x, y = _stream_case(1100, seed=41)
    meter = _feed(ErrorMeter(FS, 2, bits=16, nfft=128), x[:100], y[:100], [100])
    meter.restart_segment()
    meter = _feed(meter, x[100:], y[100:], sizes)
    assert meter.result()["spectrum"]["segments"] == (1000 - 128) // 64 + 1


def test_momentary_window_is_the_last_complete_blocks():
    rng = np.random.default_rng(37)
    n = 40 * 2048 + 1000
    x = 0.3 * rng.standard_normal((n, 1))
    y = np.rint(x / Q16 + tpdf(rng, x.shape)) * Q16
    y[n // 2:] = np.rint(x[n // 2:] / (16 * Q16)) * 16 * Q16  # louder error in the second half
    meter = _feed(ErrorMeter(FS, 1, bits=16), x, y, [1000] * math.ceil(n / 1000))
    r = meter.result("momentary")
    blocks = round(0.3 * FS / 2048)
    end = n // 2048 * 2048
    start = end - blocks * 2048
    e = (y - x)[:, 0]
    assert r["window"] == "momentary" and r["frames"] == blocks * 2048 == 14336
    assert r["rms_dbfs"][0] == pytest.approx(10 * np.log10(np.mean(e[start:end] ** 2)), abs=1e-9)
    assert r["peak_dbfs"][0] == pytest.approx(20 * np.log10(np.max(np.abs(e[start:end]))), abs=1e-9)
    _, power = welch_bin_power(e[start - 2048:end])
    np.testing.assert_allclose(r["spectrum"]["psd_dbfs"][0], 10 * np.log10(power), atol=1e-6)
    integrated = meter.result()
    assert integrated["frames"] == n
    assert integrated["rms_dbfs"][0] == pytest.approx(10 * np.log10(np.mean(e ** 2)), abs=1e-9)


def test_reset_forgets_everything():
    x, y = _stream_case(10000)
    fresh = _feed(ErrorMeter(FS, 2, bits=16), x[5000:], y[5000:], [5000])
    meter = _feed(ErrorMeter(FS, 2, bits=16), x[:3000], 2 * y[:3000], [3000])
    meter.add_counts(clips=4, nonfinite=1)
    meter.reset()
    _feed(meter, x[5000:], y[5000:], [5000])
    for window in ("integrated", "momentary"):
        assert_same_result(fresh.result(window), meter.result(window), rtol=0)


def test_nonfinite_samples_are_counted_and_zeroed():
    x, y = _stream_case(6000)
    y[[10, 20], 0] = np.nan
    x[30, 1] = np.inf
    meter = _feed(ErrorMeter(FS, 2, bits=16), x, y, [6000])
    meter.add_counts(clips=[3, 0], nonfinite=2)
    r = meter.result()
    assert r["nonfinite"] == [4, 3] and r["clips"] == [3, 0]
    clean = (y - x)[:, 0].copy()
    clean[[10, 20]] = 0.0
    assert r["rms_dbfs"][0] == pytest.approx(10 * np.log10(np.mean(clean ** 2)), abs=1e-9)
    json.dumps(r, allow_nan=False)


# -- contract -----------------------------------------------------------------------------------


def test_results_fit_the_json_contract(stereo_case):
    r = stereo_case[-1]
    assert CONTRACT_KEYS <= r.keys()
    assert {"lsb", "count"} <= r["histogram"].keys()
    assert {"freq_hz", "psd_dbfs", "floor_dbfs", "target_dbfs"} <= r["spectrum"].keys()
    assert json.loads(json.dumps(r, allow_nan=False)) == r


def test_empty_and_gridless_meters_serialise_with_none():
    empty = ErrorMeter(FS, 2, bits=16).result()
    assert empty["rms_dbfs"] == [None, None] and empty["spectrum"]["psd_dbfs"] is None
    assert empty["frames"] == 0
    gridless = measure(np.zeros(5000), np.full(5000, 1e-3))
    for key in ("dc_lsb", "bits_in_use", "histogram", "off_grid"):
        assert gridless[key] is None
    assert gridless["spectrum"]["floor_dbfs"] is None and gridless["rms_dbfs"] == [pytest.approx(-60.0)]
    lossless = measure(sine(0.5, n=5000), sine(0.5, n=5000), bits=24)
    assert lossless["rms_dbfs"] == [None] and lossless["snr_db"] == [None] and lossless["sinad_db"] == [None]
    for r in (empty, gridless, lossless):
        json.dumps(r, allow_nan=False)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown dither"):
        ErrorMeter(FS, 1, bits=16, dither="blue")
    with pytest.raises(ValueError, match="bits"):
        ErrorMeter(FS, 1, bits=0)
    meter = ErrorMeter(FS, 2, bits=16)
    with pytest.raises(ValueError, match="shape"):
        meter.update(np.zeros((10, 2)), np.zeros((10, 1)))
    with pytest.raises(ValueError, match="unknown window"):
        meter.result("short-term")
    with pytest.raises(ValueError, match=">= 0"):
        meter.add_counts(clips=-1)
