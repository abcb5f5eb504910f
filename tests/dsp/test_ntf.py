"""NTF designer: Lee's rule, zero placement, textbook in-band noise, 1-bit loop SNR.

Level convention in this file: a sine's level in dB is relative to a full-scale sine
(peak 1.0), as in the delta-sigma literature; ``-6 dB`` is peak 0.5, which reads
-9.03 dBFS RMS on the project's meter (theory.md convention).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from rtq.dsp import ntf

ORDERS = range(1, ntf.MAX_ORDER + 1)
RATES = [(64 * 44100, 44100), (8 * 48000, 48000), (2 * 44100, 44100), (48000, 48000)]


def _poly_response(b, a, w):
    """Independent evaluation from the realised coefficients."""
    z1 = np.exp(-1j * w)
    return np.polyval(b[::-1], z1) / np.polyval(a[::-1], z1)


# ---------------------------------------------------------------------- the design


@pytest.mark.parametrize("rate,stream", RATES)
@pytest.mark.parametrize("order", ORDERS)
def test_lee_rule_structure_and_zeros(order, rate, stream):
    d = ntf.design_ntf(order, rate, stream_rate=stream)
    assert d.band_hz == pytest.approx(min(20000.0, 0.4535 * stream))
    # monic, causal, K + 1 real coefficients
    assert d.b.shape == d.a.shape == (order + 1,)
    assert d.b[0] == 1.0 and d.a[0] == 1.0
    assert np.all(np.isreal(d.b)) and np.all(np.isreal(d.a))
    # max |NTF| over the unit circle = 1.5 within 1 %, from the realised polynomials
    w = np.linspace(0, np.pi, 1 << 16)
    peak = np.max(np.abs(_poly_response(d.b, d.a, w)))
    assert peak == pytest.approx(1.5, rel=0.01)
    assert d.h_inf == pytest.approx(1.5, rel=1e-6)
    # poles strictly inside, zeros on the unit circle, inside the band
    assert np.all(np.abs(np.roots(d.a)) < 1.0)
    assert np.allclose(np.abs(d.zeros), 1.0)
    wb = 2 * np.pi * d.band_hz / rate
    assert np.all(np.abs(np.angle(d.zeros)) <= wb * (1 + 1e-12))
    # the realised (expanded, float64) numerator keeps the zeros: clustered zeros are
    # ill-conditioned in a polynomial, order 7 at 64x moves them by ~4e-5, harmless:
    # the in-band noise of the realised loop equals the design's within 0.05 dB
    assert np.allclose(np.sort_complex(np.roots(d.b)), np.sort_complex(d.zeros), atol=1e-4)
    realised = ntf.inband_noise_gain(d.b, d.a, d.band_hz, rate)
    assert 10 * np.log10(realised / d.inband_noise_gain()) == pytest.approx(0.0, abs=0.05)
    if order % 2:
        assert np.min(np.abs(np.angle(d.zeros))) == 0.0  # a zero at DC
    if order == 1:
        assert d.zeros[0] == 1.0


@pytest.mark.parametrize("order", ORDERS)
def test_minimum_phase_gerzon_craven(order):
    """mean log|NTF| over 0 .. pi is 0 for a minimum-phase monic NTF."""
    d = ntf.design_ntf(order, 64 * 44100, stream_rate=44100)
    n = 1 << 20
    w = (np.arange(n) + 0.5) * np.pi / n
    assert np.mean(np.log(np.abs(d.response(w * d.rate / (2 * np.pi))))) == pytest.approx(0.0, abs=1e-3)


@pytest.mark.parametrize("order", ORDERS)
def test_optimal_zeros_are_legendre_roots(order):
    x = ntf.optimal_zero_positions(order)
    p = np.polynomial.legendre.Legendre.basis(order)
    assert np.allclose(p(x), 0.0, atol=1e-12)
    # the monic polynomial with these roots minimises integral_{-1}^{1} q(x)^2 dx:
    # moving any root increases it
    def energy(r):
        g, wt = np.polynomial.legendre.leggauss(64)
        return np.sum(wt * np.prod(g[:, None] - r[None, :], axis=1) ** 2)
    e0 = energy(x)
    for i in range(order):
        for dx in (-1e-3, 1e-3):
            y = x.copy()
            y[i] += dx
            assert energy(y) > e0


def test_error_feedback_form():
    d = ntf.design_ntf(5, 64 * 44100, stream_rate=44100)
    A, B = d.error_feedback()
    assert A.shape == B.shape == (5,)
    w = np.linspace(0.01, np.pi, 500)
    z1 = np.exp(-1j * w)
    Az = sum(c * z1 ** (j + 1) for j, c in enumerate(A))
    Bz = sum(c * z1 ** (j + 1) for j, c in enumerate(B))
    # equal up to the rounding of A = a - b (absolute, relative to the 1.5 peak)
    assert np.allclose((1 + Bz - Az) / (1 + Bz), _poly_response(d.b, d.a, w), rtol=1e-9, atol=1e-9)
    A1, B1 = ntf.error_feedback([1.0, -1.0], [1.0])  # FIR first order: o = e[n-1]
    assert np.array_equal(A1, [1.0]) and np.array_equal(B1, [0.0])
    with pytest.raises(ValueError):
        ntf.error_feedback([2.0, 1.0], [1.0, 0.5])


def test_validation():
    with pytest.raises(ValueError):
        ntf.design_ntf(0, 96000)
    with pytest.raises(ValueError):
        ntf.design_ntf(8, 96000)
    with pytest.raises(ValueError):
        ntf.design_ntf(2, 96000, band_hz=48000)
    with pytest.raises(ValueError):
        ntf.design_ntf(2, 96000, h_inf=1.0)
    assert ntf.design_ntf(3, 96000).band_hz == 20000.0
    assert ntf.design_ntf(3, 4 * 22050, stream_rate=22050).band_hz == pytest.approx(0.4535 * 22050)


# ------------------------------------------------------------------ in-band noise


@pytest.mark.parametrize("order", ORDERS)
def test_inband_noise_matches_textbook(order):
    """pi^(2K) / ((2K+1) OSR^(2K+1)) for zeros at DC.

    Tolerances: 1 % for the bare differentiator (1 - z^-1)^K at OSR >= 35 (the formula
    uses sin(w/2) ~ w/2); 1 % for the designed DC-zero NTF once the pole factor
    |a(1)|^2 (flat in band) is divided out.
    """
    for osr_factor in (32, 64, 128):
        rate = osr_factor * 44100.0
        osr = rate / 40000.0
        theory = ntf.dc_zero_inband_gain(order, osr)
        fir = ntf.inband_noise_gain(np.poly(np.ones(order)), [1.0], 20000.0, rate)
        assert fir == pytest.approx(theory, rel=0.01)
        d = ntf.design_ntf(order, rate, band_hz=20000.0, optimize_zeros=False)
        a1 = np.sum(d.a)
        assert d.inband_noise_gain() * a1 ** 2 == pytest.approx(theory, rel=0.01)


@pytest.mark.parametrize("order", ORDERS)
def test_inband_noise_slope_and_zero_optimisation(order):
    """About (6K + 3) dB less in-band noise per doubling of the rate; optimised zeros
    gain what the Legendre polynomial promises over zeros at DC."""
    def gain(rate, opt):
        return ntf.design_ntf(order, rate, band_hz=20000.0, optimize_zeros=opt).inband_noise_gain()

    slope_dc = 10 * np.log10(gain(64 * 44100, False) / gain(128 * 44100, False))
    exact = 10 * np.log10(2.0) * (2 * order + 1)  # "6K + 3" dB
    assert slope_dc == pytest.approx(exact, abs=0.15)
    slope_opt = 10 * np.log10(gain(128 * 44100, True) / gain(256 * 44100, True))
    assert slope_opt == pytest.approx(exact, abs=0.3)
    # monic Legendre norm vs integral of x^(2K) over [-1, 1]
    k = order
    legendre = 2 ** (2 * k + 1) * math.factorial(k) ** 4 / (math.factorial(2 * k) ** 2 * (2 * k + 1))
    promised = 10 * np.log10((2 / (2 * k + 1)) / legendre)
    got = 10 * np.log10(gain(256 * 44100, False) / gain(256 * 44100, True))
    assert got == pytest.approx(promised, abs=0.3)


# ------------------------------------------------------------- the 1-bit loop


FS = 64 * 44100
N = 1 << 20


def _sine(peak, n=N, f=1000.0):
    k = round(f * n / FS)
    return peak * np.sin(2 * np.pi * k * np.arange(n) / n), k


def _run(d, x):
    A, B = d.error_feedback()
    st = np.zeros(ntf.ef_state_size(d.order))
    y = np.empty(len(x))
    ntf.ef_two_level(x, len(x), A, B, st, y)
    return y, st


def _sqnr(y, k, band_hz=20000.0):
    """Tone bins (periodic Hann: exactly k-1 .. k+1) vs all other bins in 2 .. B."""
    n = len(y)
    w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)
    s = np.abs(np.fft.rfft(y * w)) ** 2
    kb = int(band_hz * n / FS)
    sig = np.sum(s[k - 1:k + 2])
    noise = (np.sum(s[2:kb + 1]) - sig) * (kb - 1) / (kb - 4)
    return 10 * np.log10(sig / noise)


def test_one_bit_loop_order5_snr_and_stability():
    """Order 5, 64 x 44.1 kHz, band 20 kHz, Lee's rule: -6 dB (peak 0.5) 1 kHz sine.

    Measured 120.7 dB in-band SQNR (OSR 70.6); stable, max |quantizer input| 1.34.
    """
    d = ntf.design_ntf(5, FS, stream_rate=44100)
    x, k = _sine(0.5)
    y, st = _run(d, x)
    assert set(np.unique(y)) <= {-1.0, 1.0}
    assert _sqnr(y, k) >= 100.0
    assert st[-1] < 2.0  # bounded: the loop did not run away
    # y = x + NTF e with |e| bounded: y - x is the shaped error only
    assert np.max(np.abs(y - x)) < 1.5 * (1.0 + st[-1])


def test_one_bit_loop_order5_maximum_stable_input():
    """Measured: stable up to about -5.2 dB (peak 0.55) over 1.5 s; -5.5 dB here."""
    d = ntf.design_ntf(5, FS, stream_rate=44100)
    x, k = _sine(10 ** (-5.5 / 20))
    y, st = _run(d, x)
    assert st[-1] < 3.0
    assert _sqnr(y, k) >= 100.0
    x, _ = _sine(10 ** (-1.0 / 20), n=1 << 18)  # far above: the plain loop runs away
    _, st = _run(d, x)
    assert st[-1] > 100.0


def test_one_bit_loop_block_invariance():
    d = ntf.design_ntf(4, FS, stream_rate=44100)
    A, B = d.error_feedback()
    x, _ = _sine(0.4, n=20000)
    y_ref, st_ref = _run(d, x)
    st = np.zeros(ntf.ef_state_size(4))
    y = np.empty_like(x)
    i = 0
    for b in [1, 7, 64, 4096] * 10:
        b = min(b, len(x) - i)
        if b <= 0:
            break
        ntf.ef_two_level(x[i:i + b], b, A, B, st, y[i:i + b])
        i += b
    ntf.ef_two_level(x[i:], len(x) - i, A, B, st, y[i:])
    assert np.array_equal(y, y_ref) and np.array_equal(st, st_ref)
