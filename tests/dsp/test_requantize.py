"""The requantizer against theory: SNR, dither error power and bias, noise-shaping spectra,
table rate selection, behaviour under clipping, the output grid, dither non-periodicity.

Every figure is a textbook result (shared/reference/theory.md, noise-shaping.md) or is
derived in the test; tolerances are set from the statistics of the estimate (standard
errors stated next to each), so a wrong kernel fails.  Errors are always the exact
``y - x`` in float64, expressed in LSB (``q = 2^(1-N)``).
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import signal, stats

from rtq.chain import Chain
from rtq.dsp import shaping
from rtq.dsp.requantize import RESET_AFTER_OVERLOADS
from rtq.errors import PresetError
from rtq.stages import Requantize

FS = 48000
F_TONE = 997.0          # not a submultiple of any rate used here


def lsb(bits: int) -> float:
    return 2.0 ** (1 - bits)


def run(stages, x, fs=FS, seed=1):
    return Chain(stages, seed=seed)(x, fs)


def tone(n, rms_dbfs, fs=FS, f=F_TONE, phase=0.1):
    """Sine of the given RMS level (dBFS: 20 log10 rms; full-scale sine is -3.01 dBFS)."""
    amp = np.sqrt(2.0) * 10.0 ** (rms_dbfs / 20.0)
    return amp * np.sin(2.0 * np.pi * f / fs * np.arange(n) + phase)


def error_lsb(stage_args, x, fs=FS, seed=1, **kw):
    bits = stage_args[0]
    y = run([Requantize(*stage_args, **kw)], x, fs, seed)
    return (y - x) / lsb(bits)


# ---------------------------------------------------------------------------------------
# Undithered rounding: SNR of a full-scale sine
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("bits", [8, 12, 16])
def test_undithered_full_scale_sine_snr(bits):
    q = lsb(bits)
    n = 1 << 18
    x = (1.0 - q) * np.sin(2.0 * np.pi * F_TONE / FS * np.arange(n))   # peak just below FS
    y = run([Requantize(bits, "none")], x)
    e = y - x
    snr = 10.0 * np.log10(np.mean(x * x) / np.mean(e * e))
    assert snr == pytest.approx(6.02 * bits + 1.76, abs=0.2)
    # and the error really is rounding: never more than half a step
    assert np.max(np.abs(e)) <= 0.5 * q


def test_dither_removes_harmonics_of_a_low_level_sine():
    """Rounding a ~3 LSB sine without dither leaves harmonics in the error; with TPDF the
    error is uncorrelated with every harmonic (its projections are at noise level)."""
    bits, n = 16, 1 << 18
    q = lsb(bits)
    f0 = FS * 1021 / n                            # an exact bin: projections are clean
    x = 3.3 * q * np.sin(2.0 * np.pi * f0 / FS * np.arange(n))
    t = np.arange(n)

    def harmonic_powers(e):
        out = []
        for k in range(1, 10):
            c = np.exp(-2j * np.pi * k * f0 / FS * t)
            out.append(np.abs(2.0 * np.mean(e * c)) ** 2)   # squared amplitude, LSB^2
        return np.array(out)

    plain = harmonic_powers(error_lsb((bits, "none"), x))
    tpdf = harmonic_powers(error_lsb((bits, "tpdf"), x))
    # Noise level of a projection: E|2 mean(e c)|^2 = 4 var(e) / n = 1/n for TPDF (var 1/4)
    noise = 1.0 / n
    assert plain.max() > 1e3 * noise           # undithered: odd harmonics ~0.1 LSB
    assert tpdf.max() < 20.0 * noise           # chi2(2)/2 exceeds 20 with p = 2e-9


# ---------------------------------------------------------------------------------------
# Dither: error power against the level of the input
# ---------------------------------------------------------------------------------------

LEVELS = [None, -120.0, -96.0, -60.0, -20.0, -6.0]   # None: digital silence
N_LEVEL = 1 << 20


def level_signal(level):
    return np.zeros(N_LEVEL) if level is None else tone(N_LEVEL, level)


@pytest.mark.parametrize("level", LEVELS, ids=lambda v: "silence" if v is None else f"{v:g}dBFS")
def test_tpdf_error_power_is_quarter_lsb2_at_every_level(level):
    # Standard error: the total error is close to a sum of three uniforms (E e^4 ~ 2.6/16
    # LSB^4), so the relative standard error of mean(e^2) is ~1.26/sqrt(n) = 0.12 % at
    # n = 2^20; the 2 % tolerance is ~16 standard errors.  The mean has s.e. 0.5/1024 LSB.
    x = level_signal(level)
    e = error_lsb((16, "tpdf"), x)
    assert np.mean(e * e) == pytest.approx(0.25, rel=0.02)
    assert abs(np.mean(e)) < 5 * 0.5 / np.sqrt(N_LEVEL)


def rpdf_theory_lsb2(x_lsb):
    """Expected RPDF (1 LSB p-p) total error power for input ``x_lsb`` (in LSB), per sample.

    With a = the input's offset from the nearest grid point (|a| <= 1/2) and dither
    u ~ U(-1/2, 1/2), the output is the nearer code with probability 1 - |a| (error -a)
    and the farther one with probability |a| (error 1 - |a|): mean 0, power |a| (1 - |a|).
    So the error power is 0 on the grid and 1/4 half-way between codes (q^2/6 on average):
    RPDF removes the error's bias but not its noise modulation.
    """
    a = np.abs(x_lsb - np.rint(x_lsb))
    return a * (1.0 - a)


@pytest.mark.parametrize("offset", [0.0, 0.125, 0.25, 0.375, 0.5, -0.25])
def test_rpdf_and_tpdf_error_power_for_a_constant_input(offset):
    # Constant input at ``offset`` LSB from a code (code 37; and its mirror).  RPDF
    # relative s.e. = |1-2a| / sqrt(n a (1-a)) <= 0.24 % at n = 2^20 (a >= 1/8).
    n = N_LEVEL
    q = lsb(16)
    for code in (37, -38):
        x = np.full(n, (code + offset) * q)
        e = error_lsb((16, "rpdf"), x)
        expect = float(rpdf_theory_lsb2(np.float64(offset)))
        if expect == 0.0:
            assert np.all(e == 0.0)           # on the grid RPDF dither is rounded away
        else:
            assert np.mean(e * e) == pytest.approx(expect, rel=0.02)
        assert abs(np.mean(e)) < 5 * 0.5 / np.sqrt(n)
        et = error_lsb((16, "tpdf"), x)
        assert np.mean(et * et) == pytest.approx(0.25, rel=0.02)
        assert abs(np.mean(et)) < 5 * 0.5 / np.sqrt(n)


@pytest.mark.parametrize("level", LEVELS, ids=lambda v: "silence" if v is None else f"{v:g}dBFS")
def test_rpdf_error_power_follows_the_input(level):
    """RPDF error power is the per-sample theory above averaged over the input's samples:
    0 at silence, ~0.03 LSB^2 for a 0.05 LSB sine, 1/6 LSB^2 for busy signals."""
    x = level_signal(level)
    q = lsb(16)
    e = error_lsb((16, "rpdf"), x)
    expect = np.mean(rpdf_theory_lsb2(x / q))
    if level is None:
        assert expect == 0.0 and np.all(e == 0.0)
        return
    # relative s.e. <= 1 / sqrt(n p) ~ 0.6 % for the smallest power here (p ~ 0.028)
    assert np.mean(e * e) == pytest.approx(expect, rel=0.02)
    if level >= -60:
        assert expect == pytest.approx(1.0 / 6.0, rel=0.005)   # a sine, not exactly uniform


def test_rpdf_noise_modulation_is_measurable_and_tpdf_has_none():
    powers = {"rpdf": [], "tpdf": []}
    for level in LEVELS:
        x = level_signal(level)[: 1 << 18]
        for kind in powers:
            e = error_lsb((16, kind), x)
            powers[kind].append(np.mean(e * e))
    rp, tp = np.array(powers["rpdf"]), np.array(powers["tpdf"])
    assert rp.min() == 0.0 and rp.max() > 0.16          # silence vs busy: 0 vs 1/6
    assert rp[1] < 0.05                                 # -120 dBFS: a 0.05 LSB sine
    assert tp.max() / tp.min() < 1.02                   # TPDF: the same at every level


# Gaussian dither, sigma = 0.5 LSB.  For busy signals the error power is q^2/12 + sigma^2 =
# 1/3 LSB^2.  The second moment is not exactly signal-independent (the Gaussian's
# characteristic function at 2 pi/q is exp(-pi^2/2) = 0.007, not 0): for a constant input
# at offset a the exact power is sum_k (k - a)^2 P(round(a + g) = k), 0.3254 LSB^2 on the
# grid and 0.3413 half-way between codes.

def gaussian_theory_lsb2(a, sigma=0.5):
    k = np.arange(-12, 13)
    p = stats.norm.cdf((k + 0.5 - a) / sigma) - stats.norm.cdf((k - 0.5 - a) / sigma)
    return float(np.sum((k - a) ** 2 * p))


@pytest.mark.parametrize("level", [-60.0, -20.0, -6.0], ids=lambda v: f"{v:g}dBFS")
def test_gaussian_error_power_busy_signal(level):
    # relative s.e. of mean(e^2) ~ sqrt(2)/sqrt(n) = 0.14 % (error ~ Gaussian-like)
    e = error_lsb((16, "gaussian"), level_signal(level))
    assert np.mean(e * e) == pytest.approx(1.0 / 12.0 + 0.5 ** 2, rel=0.02)
    assert abs(np.mean(e)) < 5 * np.sqrt(1.0 / 3.0 / N_LEVEL)


@pytest.mark.parametrize("offset", [0.0, 0.25, 0.5])
def test_gaussian_error_power_constant_input(offset):
    x = np.full(N_LEVEL, (-21 + offset) * lsb(16))
    e = error_lsb((16, "gaussian"), x)
    expect = gaussian_theory_lsb2(offset)
    assert np.mean(e * e) == pytest.approx(expect, rel=0.01)
    # within 2.5 % of 1/3 everywhere: "practically" signal-independent
    assert expect == pytest.approx(1.0 / 3.0, rel=0.025)
    if offset == 0.0:                       # digital silence is the grid point case
        es = error_lsb((16, "gaussian"), np.zeros(N_LEVEL))
        assert np.mean(es * es) == pytest.approx(expect, rel=0.01)


@pytest.mark.parametrize("level", [None, -120.0, -20.0], ids=lambda v: "silence" if v is None else f"{v:g}dBFS")
def test_tpdf_hp_error_power_and_spectrum(level):
    """tpdf-hp: r[n] = u[n] - u[n-1] (triangular per sample, var 1/6, PSD (1/12)|1 - e^-jw|^2);
    the rounding error is uniform, white and uncorrelated with the dither (u[n-1]
    randomises the offset), so the error PSD is (q^2/12)(1 + |1 - e^-jw|^2) and its power
    q^2/12 + q^2/6 = q^2/4."""
    n = 1 << 21
    x = np.zeros(n) if level is None else tone(n, level)
    e = error_lsb((16, "tpdf-hp"), x)
    assert np.mean(e * e) == pytest.approx(1.0 / 12.0 + 1.0 / 6.0, rel=0.02)
    f, p = welch_lsb2(e, FS)
    w = 2.0 * np.pi * f / FS
    expect = (1.0 + np.abs(1.0 - np.exp(-1j * w)) ** 2) / 12.0
    band = (f >= 100.0) & (f <= 0.45 * FS)
    dev = 10.0 * np.log10(p[band] / expect[band])
    assert np.max(np.abs(dev)) < 1.0
    # high-passed: below 1 kHz the floor is the rounding error alone (q^2/12, 4.8 dB under
    # plain TPDF), near 0.45 fs it is ~6.8 dB above it
    low = (f >= 100.0) & (f <= 1000.0)
    assert 10.0 * np.log10(np.mean(p[low]) / (1.0 / 12.0)) == pytest.approx(0.0, abs=0.3)


# ---------------------------------------------------------------------------------------
# Symmetric rounding: no DC bias
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("dither", ["none", "tpdf"])
def test_mean_error_below_a_thousandth_lsb(dither):
    # Zero-mean input spanning a few hundred LSB with arbitrary fractional offsets.
    # s.e. of the mean error: sqrt(1/12 / n) = 1.0e-4 LSB undithered, 0.5/sqrt(n) =
    # 1.7e-4 LSB with TPDF (n = 2^23); a floor quantizer would show -0.5 LSB.
    n = 1 << 23
    rng = np.random.default_rng(11)
    x = 300.0 * lsb(16) * rng.standard_normal(n)
    x -= np.mean(x)
    e = error_lsb((16, dither), x, seed=5)
    assert abs(np.mean(e)) < 0.001


def test_exact_halves_round_without_bias():
    """Inputs exactly half-way between codes, all positive: round-half-up or half away
    from zero would give a +0.5 LSB bias; round-half-to-even gives none."""
    q = lsb(16)
    k = np.arange(0, 2000)
    x = (k + 0.5) * q
    y = run([Requantize(16, "none")], x)
    codes = y / q
    assert np.mean(codes - (k + 0.5)) == 0.0
    assert np.all(codes % 2 == 0)
    # and mirrored: Q(-x) = -Q(x)
    assert np.array_equal(run([Requantize(16, "none")], -x), -y)


# ---------------------------------------------------------------------------------------
# Noise shaping: measured error spectrum against (q^2/4)|NTF|^2
# ---------------------------------------------------------------------------------------

def welch_lsb2(e, fs, nperseg=1024):
    """Welch PSD scaled so white noise of variance s2 reads s2 at every bin."""
    f, p = signal.welch(e, fs=fs, nperseg=nperseg)
    return f, p * fs / 2.0


def ntf_coeffs(filt):
    """(numerator, denominator) of NTF(z) in powers of z^-1, from the error-feedback
    coefficients as noise-shaping.md defines them (independent of ErrorFilter.ntf)."""
    a = np.asarray(filt.a, dtype=float)
    b = np.asarray(filt.b, dtype=float)
    if b.size == 0:
        return np.concatenate([[1.0], -a]), np.array([1.0])
    m = max(a.size, b.size)
    a = np.pad(a, (0, m - a.size))
    b = np.pad(b, (0, m - b.size))
    return np.concatenate([[1.0], b - a]), np.concatenate([[1.0], b])


def ntf_power(filt, f, fs):
    num, den = ntf_coeffs(filt)
    _, h = signal.freqz(num, den, worN=2.0 * np.pi * np.asarray(f) / fs)
    return np.abs(h) ** 2


CUSTOM_FIRS = {
    "custom-2tap": (1.2, -0.45),
    "custom-11tap": (1.6, -1.1, 0.5, -0.15, 0.04, 0.05, -0.06, 0.03, -0.02, 0.01, -0.004),
}

SHAPING_CASES = []
for _name, _tables in shaping.TABLES.items():
    for _rate in _tables:
        SHAPING_CASES.append((_name, _rate if _rate is not None else 48000))
for _name in CUSTOM_FIRS:
    SHAPING_CASES.append((_name, 44100))


def shaping_param(name):
    if name in CUSTOM_FIRS:
        return {"coefficients": list(CUSTOM_FIRS[name])}
    return name


def case_filter(name, rate):
    if name in CUSTOM_FIRS:
        return shaping.ErrorFilter(CUSTOM_FIRS[name])
    return shaping.select_table(name, rate)


def test_every_published_table_is_covered():
    covered = {(n, r) for n, r in SHAPING_CASES}
    for name, tables in shaping.TABLES.items():
        for rate in tables:
            assert (name, rate if rate is not None else 48000) in covered
    # the tables noise-shaping.md lists (name, nominal rate, taps)
    listed = {("lipshitz", 44100): 5, ("f-weighted", 46000): 9,
              ("modified-e-weighted", 46000): 9, ("improved-e-weighted", 46000): 9,
              ("gesemann", 48000): 8, ("gesemann", 44100): 8, ("shibata", 48000): 16,
              ("shibata", 44100): 20, ("shibata", 37800): 16, ("shibata", 32000): 16,
              ("shibata", 22050): 15, ("low-shibata", 48000): 16, ("low-shibata", 44100): 15,
              ("high-shibata", 44100): 20}
    for (name, rate), taps in listed.items():
        filt = shaping.TABLES[name][rate]
        assert len(filt.a) + len(filt.b) == taps


@pytest.mark.parametrize("name,rate", SHAPING_CASES, ids=[f"{n}@{r}" for n, r in SHAPING_CASES])
def test_shaped_error_spectrum_matches_ntf(name, rate):
    """Averaged error spectrum = (q^2/4)|NTF|^2 within +-1 dB at every bin 100 Hz..0.45 fs.

    Welch, 1024-point Hann, 50 % overlap over 2^21 samples: 4095 segments, so each bin
    has a relative standard deviation of ~1.6 % (0.07 dB); the largest of ~900 bins
    stays near 0.25 dB.  Input: -40 dBFS noise at 16 bits (the loop's feedback peaks at
    sum|c| * 1.5 LSB, far from clipping).
    """
    n = 1 << 21
    x = 0.01 * np.random.default_rng(3).standard_normal(n)
    y = run([Requantize(16, "tpdf", shaping=shaping_param(name))], x, rate, seed=7)
    e = (y - x) / lsb(16)
    f, p = welch_lsb2(e, rate)
    filt = case_filter(name, rate)
    expect = 0.25 * ntf_power(filt, f, rate)
    band = (f >= 100.0) & (f <= 0.45 * rate)
    dev = 10.0 * np.log10(p[band] / expect[band])
    assert np.max(np.abs(dev)) < 1.0, f"max deviation {np.max(np.abs(dev)):.2f} dB"
    assert abs(np.mean(dev)) < 0.1
    # total error power: (q^2/4) * sum h^2 over the NTF's impulse response (Parseval)
    num, den = ntf_coeffs(filt)
    h = signal.lfilter(num, den, np.r_[1.0, np.zeros(8191)])
    assert np.mean(e * e) == pytest.approx(0.25 * np.sum(h * h), rel=0.03)


def test_error_filter_ntf_agrees_with_the_published_structure():
    w = np.linspace(0.0, np.pi, 257)
    for name, rate in SHAPING_CASES:
        filt = case_filter(name, rate)
        num, den = ntf_coeffs(filt)
        _, h = signal.freqz(num, den, worN=w)
        assert np.allclose(filt.ntf(w), h, rtol=1e-9, atol=1e-12), name


@pytest.mark.parametrize("name,rate", SHAPING_CASES, ids=[f"{n}@{r}" for n, r in SHAPING_CASES])
def test_gerzon_craven(name, rate):
    """Minimum-phase NTF with leading coefficient 1: mean log|NTF| over 0..pi is 0."""
    filt = case_filter(name, rate)
    num, den = ntf_coeffs(filt)
    if not name.startswith("custom"):
        assert np.max(np.abs(np.roots(num))) <= 1.0 + 1e-9   # zeros in/on the unit circle
        assert np.max(np.abs(np.roots(den)), initial=0.0) < 1.0
    m = 1 << 16
    w = (np.arange(m) + 0.5) * np.pi / m            # midpoints: avoids a DC zero
    _, h = signal.freqz(num, den, worN=w)
    mean_db = np.mean(20.0 * np.log10(np.abs(h)))
    zeros_out = np.abs(np.roots(num))
    expect_db = 20.0 * np.sum(np.log10(zeros_out[zeros_out > 1.0]))  # 0 if minimum-phase
    assert mean_db == pytest.approx(expect_db, abs=0.01)


# ---------------------------------------------------------------------------------------
# Table rate selection (+-5 %)
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,fs,nominal", [
    ("shibata", 46000, 48000), ("f-weighted", 44100, 46000), ("f-weighted", 48000, 46000),
    ("lipshitz", 41895, 44100), ("lipshitz", 46305, 44100),      # exactly +-5 %
    ("gesemann", 46000, 48000), ("gesemann", 42000, 44100), ("shibata", 21000, 22050),
    ("high-shibata", 44100, 44100), ("shibata", 36000, 37800),
])
def test_table_served_within_five_percent(name, fs, nominal):
    assert shaping.select_table(name, fs) is shaping.TABLES[name][nominal]
    # and the kernel really uses that table: identical to the same taps given by hand
    x = 0.1 * np.random.default_rng(1).standard_normal(20000)
    filt = shaping.TABLES[name][nominal]
    y = run([Requantize(16, "tpdf", shaping=name)], x, fs, seed=3)
    if not filt.b:
        y_fir = run([Requantize(16, "tpdf", shaping={"coefficients": list(filt.a)})], x, fs, seed=3)
        assert np.array_equal(y, y_fir)
    else:
        other = [r for r in shaping.TABLES[name] if r != nominal][0]
        y_other = run([Requantize(16, "tpdf", shaping=name)], x, other, seed=3)
        assert not np.array_equal(y, y_other)


@pytest.mark.parametrize("name,fs", [
    ("lipshitz", 48000), ("shibata", 96000), ("high-shibata", 48000), ("lipshitz", 46400),
    ("shibata", 20000), ("f-weighted", 96000), ("gesemann", 32000), ("low-shibata", 88200),
])
def test_table_refused_outside_five_percent(name, fs):
    assert shaping.select_table(name, fs) is None
    with pytest.raises(PresetError) as err:
        run([Requantize(16, "tpdf", shaping=name)], np.zeros(16), fs)
    message = str(err.value)
    assert name in message
    for rate in shaping.TABLES[name]:
        assert str(rate) in message


# ---------------------------------------------------------------------------------------
# Shaping survives clipping
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,fs,loud", [
    ("high-shibata", 44100, "sine+6"),
    ("high-shibata", 44100, "dc+2"),
    ("improved-e-weighted", 48000, "square+12"),
    ("gesemann", 48000, "sine+6"),
])
def test_shaping_recovers_after_clipping(name, fs, loud):
    """1 s of heavily clipped input, then a -20 dBFS sine: no NaN, output within full
    scale, clips counted in the loud part only, and after a few hundred samples the error
    power equals that of the same quiet passage processed from a fresh state."""
    q = lsb(16)
    n_loud, n_quiet, settle = fs, 1 << 18, 300
    t = np.arange(n_loud)
    if loud == "sine+6":
        xl = tone(n_loud, 6.0, fs)
    elif loud == "dc+2":
        xl = np.full(n_loud, 2.0)
    else:
        xl = 4.0 * np.sign(np.sin(2.0 * np.pi * 441.0 / fs * t + 0.3))
    xq = tone(n_quiet, -20.0, fs, f=1000.5)
    x = np.concatenate([xl, xq])

    stage = Requantize(16, "tpdf", shaping=name)
    chain = Chain([stage], seed=4).prepare(fs, 1, 4096)
    buf = x.reshape(-1, 1).copy()
    clips = chain.program.counters[:, 0, 0]
    chain.process(buf[:n_loud])
    loud_clips = clips[chain.quantizer_info[(0,)].op_index]
    chain.process(buf[n_loud:n_loud + settle])
    settle_clips = clips[chain.quantizer_info[(0,)].op_index]
    chain.process(buf[n_loud + settle:])
    y = buf[:, 0]

    assert np.all(np.isfinite(y))
    assert np.max(np.abs(y)) <= 1.0
    assert np.all(np.isfinite(chain.program.fstate))
    assert loud_clips > n_loud // 4
    assert clips[chain.quantizer_info[(0,)].op_index] == settle_clips          # no clip once recovered

    e = (y[n_loud + settle:] - xq[settle:]) / q
    fresh = run([Requantize(16, "tpdf", shaping=name)], xq, fs, seed=9)
    ef = (fresh[settle:] - xq[settle:]) / q
    db = 10.0 * np.log10(np.mean(e * e) / np.mean(ef * ef))
    assert abs(db) < 0.5, f"after clipping: {db:+.2f} dB vs fresh"
    # no slowly decaying ringing: every 8192-sample window right after recovery is at the
    # steady level (window spread of this coloured noise is ~0.3 dB)
    ref = np.mean(ef * ef)
    for k in range(0, 4):
        w = e[k * 8192:(k + 1) * 8192]
        assert abs(10.0 * np.log10(np.mean(w * w) / ref)) < 1.0
    # and the spectrum is the normal shaped one
    f, p = welch_lsb2(e, fs, nperseg=512)       # 1023 segments: s.d. ~0.14 dB per bin
    expect = 0.25 * ntf_power(shaping.select_table(name, fs), f, fs)
    band = (f >= 100.0) & (f <= 0.45 * fs) & (np.abs(f - 1000.5) > 200)
    assert np.max(np.abs(10.0 * np.log10(p[band] / expect[band]))) < 1.0


# ---------------------------------------------------------------------------------------
# Recursive error filters: the transposed kernel against the textbook loop
# ---------------------------------------------------------------------------------------

def textbook_loop(x, bits, A, B, reset_after):
    """``o[n] = sum A[j] e[n-1-j] - sum B[j] o[n-1-j]``, ``q = rint(x/step - o)`` saturated,
    ``e = q - (x/step - o)`` clamped to half a step when saturated; ``reset_after``
    consecutive overloads clear the history (noise-shaping.md's structure, written
    directly; no dither).  Returns the output and the clip and reset counts."""
    step = lsb(bits)
    lo, hi = -(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1
    k = len(A)
    e_past, o_past = [0.0] * k, [0.0] * k
    y = np.empty_like(x)
    clips = resets = run = 0
    for n, v in enumerate(x / step):
        o = sum(A[j] * e_past[j] - B[j] * o_past[j] for j in range(k))
        q = np.rint(v - o)
        if not lo <= q <= hi:
            q = min(max(q, lo), hi)
            clips += 1
        e = q - (v - o)
        if abs(e) > 0.5:
            e = np.copysign(0.5, e)
            run += 1
            if run == reset_after:
                e, o, run = 0.0, 0.0, 0
                e_past, o_past = [0.0] * k, [0.0] * k
                resets += 1
        else:
            run = 0
        e_past = [e] + e_past[:-1]
        o_past = [o] + o_past[:-1]
        y[n] = q * step
    return y, clips, resets


@pytest.mark.parametrize("shaping_param,fs", [({"kind": "design", "order": k}, 8 * 48000) for k in range(1, 8)]
                         + [("gesemann", 44100)])
def test_recursive_kernel_matches_the_textbook_loop(shaping_param, fs):
    """Every channel of 1, 2 and 3 (the kernel runs channels in pairs, an odd one alone),
    with a clipping passage and (designed NTFs) sustained overloads that reset the loop:
    the same codes and counts as the direct-form loop.  The sums differ only in their
    order, so a code could differ only for a value within ~1e-12 of a rounding tie."""
    bits, n = 12, 6000
    rng = np.random.default_rng(5)
    x = 0.3 * rng.standard_normal((n, 3))
    x[2000:2400] *= 8.0                      # saturates: clips, overloads, resets
    stage = Requantize(bits, "none", shaping=shaping_param)
    filt = stage.error_filter(fs, 48000)
    A = np.pad(filt.a, (0, max(len(filt.b) - len(filt.a), 0)))
    B = np.pad(filt.b, (0, len(A) - len(filt.b)))
    reset_after = RESET_AFTER_OVERLOADS if isinstance(shaping_param, dict) else 0   # designed NTFs only
    expected = [textbook_loop(x[:, c], bits, A, B, reset_after) for c in range(3)]
    assert sum(r for _, _, r in expected) > 0 or not reset_after   # the reset path ran
    for channels in (1, 2, 3):
        chain = Chain([stage]).prepare(fs, channels, 512)
        y = x[:, :channels].copy()
        chain.process(y)
        counts = chain.program.counters[chain.quantizer_info[(0,)].op_index]
        for c in range(channels):
            want, clips, resets = expected[c]
            assert np.array_equal(y[:, c], want), f"{channels} channels: channel {c} differs"
            assert (counts[c, 0], counts[c, 2]) == (clips, resets)


@pytest.mark.parametrize("name,fs", [("shibata", 44100), ("lipshitz", 44100), ("high-shibata", 44100),
                                     ("improved-e-weighted", 46000), ("shibata", 22050)])
def test_fir_kernel_matches_the_textbook_loop(name, fs):
    """FIR error feedback (run two channels at a time in the lanes of one register, an
    odd one alone, with the far taps summed ahead) against the direct-form loop: every
    channel of 1 to 4, in blocks of 1000 (the sub-block position carries over): the same
    codes.  (Through clipping the two can part at a rounding tie: the kernel's sums run
    in another order; the pairs are checked against single channels there, below.)"""
    bits, n = 12, 5000
    rng = np.random.default_rng(11)
    x = 0.3 * rng.standard_normal((n, 4))
    stage = Requantize(bits, "none", shaping=name)
    filt = stage.error_filter(fs, 48000)
    assert not len(filt.b) and len(filt.a) > 4
    expected = [textbook_loop(x[:, c], bits, filt.a, np.zeros_like(filt.a), 0)[0] for c in range(4)]
    for channels in (1, 2, 3, 4):
        chain = Chain([stage]).prepare(fs, channels, 1000)
        y = x[:, :channels].copy()
        chain.process(y)
        for c in range(channels):
            assert np.array_equal(y[:, c], expected[c]), f"{channels} channels: channel {c} differs"


# A 24-tap custom filter: longer than the pair kernel's group loop takes (GROUP_TAPS).
_LONG_FIR = {"coefficients": [1.2, -0.5, 0.2] + [0.01 * (-1) ** k for k in range(21)]}


@pytest.mark.parametrize("dither,shaping", [(d, "shibata") for d in ("tpdf", "rpdf", "tpdf-hp", "gaussian", "none")]
                         + [("tpdf", "lipshitz"), ("rpdf", "first-order"), ("tpdf", _LONG_FIR)])
def test_fir_channels_in_pairs_equal_each_channel_alone(dither, shaping):
    """Channels run in pairs give, bit for bit, what each channel gives run alone (a
    chain prepared for that channel: its own dither stream, as a render's channel groups
    run them), through a clipping passage (the same clip counts), in ragged blocks (1, 3
    and 4097 frames: every sub-block position), for filters of 20 taps, fewer (the
    group loop's taps past the filter are zero) and more (a sample at a time)."""
    n, fs = 9000, 44100
    rng = np.random.default_rng(12)
    x = 0.4 * rng.standard_normal((n, 3))
    x[4000:4100] *= 6.0
    stage = Requantize(16, dither, shaping=shaping)
    sizes = [1, 3, 4097, 1, 1, 3] * 4
    cuts = np.cumsum(sizes)
    together = x.copy()
    chain = Chain([stage], seed=5).prepare(fs, 3, 4097)
    for block in np.split(together, cuts):
        chain.process(block)
    clips = chain.program.counters[chain.quantizer_info[(0,)].op_index, :, 0]
    assert clips.min() > 0
    for c in range(3):
        alone = Chain([stage], seed=5).prepare(fs, 1, 4097, first_channel=c)
        y = x[:, c:c + 1].copy()
        for block in np.split(y, cuts):
            alone.process(block)
        assert np.array_equal(together[:, c], y[:, 0]), f"channel {c} differs"
        assert alone.program.counters[alone.quantizer_info[(0,)].op_index, 0, 0] == clips[c]


# ---------------------------------------------------------------------------------------
# Output grid, ranges, saturation
# ---------------------------------------------------------------------------------------

def grid_input(n=6000, seed=0):
    """Two channels: busy values over +-1.2 (some beyond full scale) and exact extremes;
    channel 1 has fewer out-of-range samples than channel 0."""
    rng = np.random.default_rng(seed)
    x = np.empty((n, 2))
    x[:, 0] = rng.uniform(-1.2, 1.2, n)
    x[:, 1] = rng.uniform(-1.02, 1.02, n)
    x[:8, 0] = [1.0, -1.0, 0.0, 5.0, -5.0, 1.0 - 1e-12, -1.0 - 1e-12, 0.5]
    return x


@pytest.mark.parametrize("bits", range(2, 33))
def test_grid_codes_and_saturation(bits):
    q = lsb(bits)
    lo, hi = -(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1
    x = grid_input(seed=bits)
    stage = Requantize(bits, "none")
    chain = Chain([stage], seed=1)
    y = chain(x, FS)
    ideal = np.rint(x / q)
    assert np.array_equal(y, q * np.clip(ideal, lo, hi))
    clips = chain.program.counters[chain.quantizer_info[(0,)].op_index, :, 0]
    expect = np.sum((ideal > hi) | (ideal < lo), axis=0)
    assert np.array_equal(clips, expect) and expect[0] > expect[1] > 0
    assert y.max() == hi * q and y.min() == lo * q

    for dither, shape in (("tpdf", None), ("gaussian", None), ("tpdf", "first-order"),
                          ("rpdf", {"coefficients": [1.5, -0.6]})):
        st = Requantize(bits, dither, shaping=shape)
        ch = Chain([st], seed=2)
        yd = ch(x, FS)
        codes = yd / q
        assert np.array_equal(codes, np.rint(codes))
        assert codes.min() >= lo and codes.max() <= hi
        assert np.all(ch.program.counters[ch.quantizer_info[(0,)].op_index, :, 0] > 0)


@pytest.mark.parametrize("dither", ["none", "tpdf", "rpdf", "gaussian"])
def test_one_bit_gives_only_plus_minus_one(dither):
    x = grid_input(seed=9)
    x[100:200, 1] = 0.0
    y = run([Requantize(1, dither)], x)
    assert set(np.unique(y)) <= {-1.0, 1.0}
    if dither == "none":
        assert np.array_equal(y, np.where(x >= 0.0, 1.0, -1.0))


# ---------------------------------------------------------------------------------------
# Dither never repeats
# ---------------------------------------------------------------------------------------

def test_tpdf_noise_has_no_cycle_within_2_to_22_samples():
    """A replayed noise table of period P would give an autocorrelation of 1 at lag P (and
    a copy in the other channel a cross-correlation of 1).  All lags 1..2^22 - 4096 (every
    overlap at least one 4096-sample window) must be at noise level."""
    n = 1 << 22
    x = np.zeros((n, 2))
    y = Chain([Requantize(16, "tpdf")], seed=21)(x, FS)
    e = (y / lsb(16)).T                     # silence: the error is round(dither)
    e = e - e.mean(axis=1, keepdims=True)
    spec = np.fft.rfft(e, 2 * n, axis=1)
    overlap = n - np.arange(n)
    var = np.mean(e * e, axis=1)
    min_overlap = 4096
    lags = slice(1, n - min_overlap + 1)
    for c in range(2):
        r = np.fft.irfft(spec[c] * np.conj(spec[c]), 2 * n)[:n] / overlap / var[c]
        rl = r[lags]
        # noise level: s.d. 1/sqrt(overlap); 7 s.d. is never reached by chance here
        assert np.all(np.abs(rl) < 7.0 / np.sqrt(overlap[lags]))
        assert np.max(np.abs(rl)) < 0.2
    xc_full = np.fft.irfft(spec[0] * np.conj(spec[1]), 2 * n)
    xc = np.concatenate([xc_full[:n], xc_full[n + 1:]])           # lags 0..n-1, -(n-1)..-1
    ov = np.concatenate([overlap, overlap[1:][::-1]])
    rx = xc / ov / np.sqrt(var[0] * var[1])
    keep = ov >= min_overlap
    assert np.all(np.abs(rx[keep]) < 7.0 / np.sqrt(ov[keep]))
