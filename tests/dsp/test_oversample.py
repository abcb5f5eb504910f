"""Oversampler: declared quality figures, latency, block-size invariance, state.

Frequencies are in cycles per stream sample (fs = 1) unless stated.  Everything is
measured through the Numba kernels (impulse responses and sines), not taken from
the design.  The up+down round trip is LTI, so its impulse response is its complete
description; the up-sampler and down-sampler are measured through their equivalent
single-rate filters (interpolation filter, decimation filter).
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from rtq.dsp import oversample as ov
from rtq.dsp import oversample_design as od

from .oversampler import Oversampler

P = od.PASSBAND
COMBOS = list(itertools.product(od.PHASES, od.QUALITIES, od.FACTORS))


# ----------------------------------------------------------------------------- helpers


def _up(d, x):
    x = np.asarray(x, dtype=float)
    x2 = np.ascontiguousarray((x[:, None] if x.ndim == 1 else x).T)    # planar
    st = ov.make_state(d, x2.shape[0])
    out = np.empty((x2.shape[0], x2.shape[1] * d.factor))
    ov.oversample_up(d.coeffs, x2, x2.shape[1], st, out)
    return out[0] if x.ndim == 1 else out.T


def _down(d, v):
    v = np.asarray(v, dtype=float)
    v2 = np.ascontiguousarray((v[:, None] if v.ndim == 1 else v).T)    # planar
    n = v2.shape[1] // d.factor
    st = ov.make_state(d, v2.shape[0])
    out = np.empty((v2.shape[0], n))
    ov.oversample_down(d.coeffs, v2, n, st, out)
    return out[0] if v.ndim == 1 else out.T


def _round_trip_ir(d, n=2048):
    x = np.zeros(n)
    x[0] = 1.0
    return Oversampler(d, 1).round_trip(x)[:, 0]


def _interp_ir(d, n=2048):
    """Impulse response of the up-sampler's equivalent filter at the top rate (gain L)."""
    x = np.zeros(n)
    x[0] = 1.0
    return _up(d, x)


def _decim_ir(d, n=2048):
    """Impulse response h of the down-sampler's equivalent filter, out[k] = (h * v)[L k].

    One run with impulses at all L phases, n stream samples apart.
    """
    L = d.factor
    v = np.zeros(L * n * L)
    for p in range(L):
        v[p * n * L + p] = 1.0
    w = _down(d, v)
    h = np.zeros(n * L)
    for p in range(L):
        idx = L * np.arange(n) - p
        ok = idx >= 0
        h[idx[ok]] = w[p * n:(p + 1) * n][ok]
    return h


def _protected(f):
    """Top-rate frequencies (fs = 1) whose content lands in 0 .. P after going down,
    equivalently the images of tones in 0 .. P going up: |f - k| <= P, k >= 1."""
    return (np.abs(f - np.round(f)) <= P) & (f >= 1 - P)


def _mag_db(h, nfft):
    return 20 * np.log10(np.maximum(np.abs(np.fft.rfft(h, nfft)), 1e-300))


# ------------------------------------------------------------------- design / metadata


def test_design_metadata():
    for phase, quality, factor in COMBOS:
        d = od.design_oversampler(factor, phase, quality)
        assert d.factor == factor and len(d.stages) == int(np.log2(factor))
        assert d.coeffs.dtype == np.float64 and d.coeffs.ndim == 1
        if phase == "linear":
            want = sum((2 * len(s.taps) - 1) / 2 ** s.index for s in d.stages)
            assert d.latency == pytest.approx(want, abs=1e-12)
        else:
            for s in d.stages:
                assert len(s.a0) == len(s.a1) >= 1  # N = 1 (mod 4)
                assert np.all((s.a0 > 0) & (s.a0 < 1)) and np.all((s.a1 > 0) & (s.a1 < 1))
        assert float(od.group_delay(d, 0.0)) == pytest.approx(d.latency, abs=1e-9)
    with pytest.raises(ValueError):
        od.design_oversampler(3)
    with pytest.raises(ValueError):
        od.design_oversampler(4, phase="mixed")
    with pytest.raises(ValueError):
        od.design_oversampler(4, quality="ultra")


@pytest.mark.parametrize("phase", od.PHASES)
def test_halfband_response(phase):
    d = od.design_oversampler(4, phase, "high")
    for st in d.stages:
        f = np.linspace(0, 0.5, 20001)
        h = np.abs(od.halfband_response(st, f))
        assert h[0] == pytest.approx(1.0, abs=1e-6)
        assert np.max(np.abs(20 * np.log10(h[f <= st.fp]))) < 1e-4
        assert 20 * np.log10(np.max(h[f >= 0.5 - st.fp])) <= -od.DESIGN_REJECTION_DB[(phase, "high")]


def test_later_stages_are_shorter():
    d = od.design_oversampler(64, "linear", "high")
    m = [len(s.taps) for s in d.stages]
    assert m[0] > 4 * m[1] and all(a >= b for a, b in zip(m, m[1:]))


# -------------------------------------------------------------- ripple and rejection


@pytest.mark.parametrize("phase,quality,factor", COMBOS)
def test_declared_figures(phase, quality, factor):
    """Round-trip ripple over 0 .. 0.4535 fs, image rejection (up), alias rejection
    (down), each against the declared figure, measured on the kernels' responses."""
    d = od.design_oversampler(factor, phase, quality)
    spec = od.QUALITIES[quality]
    r = _round_trip_ir(d)
    f = np.fft.rfftfreq(1 << 16)
    ripple = np.max(np.abs(_mag_db(r, 1 << 16)[f <= P]))
    assert ripple <= spec.ripple_db

    nfft = 1 << 18
    ft = np.fft.rfftfreq(nfft) * factor  # top-rate bins in units of fs
    band = _protected(ft)
    up = _mag_db(_interp_ir(d), nfft) - 20 * np.log10(factor)
    assert np.max(np.abs(up[ft <= P])) <= spec.ripple_db
    assert -np.max(up[band]) >= spec.rejection_db

    dn = _mag_db(_decim_ir(d), nfft)
    assert np.max(np.abs(dn[ft <= P])) <= spec.ripple_db
    assert -np.max(dn[band]) >= spec.rejection_db
    # and the cascade reaches what its stages were designed for (140 dB: linear high)
    target = od.DESIGN_REJECTION_DB[(phase, quality)] - 0.5
    assert min(-np.max(up[band]), -np.max(dn[band])) >= target


def _coherent_db(y, k):
    """Level (dB re amplitude 1) of the coherent tone in bin k; periodic Hann window."""
    n = len(y)
    w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)
    spec = np.abs(np.fft.rfft(y * w)) ** 2
    return 10 * np.log10(4 * np.sum(spec[k - 1:k + 2]) / (n * np.sum(w ** 2)) + 1e-300)


@pytest.mark.parametrize("phase,quality,factor", [
    ("linear", "high", 4), ("minimum", "high", 4), ("linear", "normal", 8),
    ("minimum", "draft", 16), ("linear", "high", 64), ("minimum", "high", 32),
])
def test_sine_images_and_aliases(phase, quality, factor):
    """Sines: images of in-band tones going up, aliases of out-of-band tones going down."""
    d = od.design_oversampler(factor, phase, quality)
    rej = od.QUALITIES[quality].rejection_db
    n, warm = 4096, 2048
    t = np.arange(warm + n)
    for k in (93, 1000, 1857):  # 1.0, 10.8, 20.0 kHz at 44.1 kHz (20 kHz: 0.4534 fs)
        x = np.sin(2 * np.pi * k * t / n)
        y = _up(d, x)[warm * factor:]
        assert _coherent_db(y, k) == pytest.approx(0.0, abs=0.02)
        for m in range(1, factor // 2 + 1):
            for img in (m * n - k, m * n + k):
                if img < n * factor // 2:
                    assert _coherent_db(y, img) <= -rej, (k, img)
    for m in sorted({1, 2, 3, factor // 4, factor // 2} - {0}):  # m fs +- f alias onto f
        for k in (93, 1857):
            for src in (m * n - k, m * n + k):
                if src >= n * factor // 2:
                    continue
                v = np.sin(2 * np.pi * src * np.arange((warm + n) * factor) / (n * factor))
                y = _down(d, v)[warm:]
                assert _coherent_db(y, k) <= -rej, (src, k)


# ----------------------------------------------------------------------------- latency


@pytest.mark.parametrize("quality", list(od.QUALITIES))
@pytest.mark.parametrize("integer_latency", [False, True])
def test_linear_latency_measured(quality, integer_latency):
    for factor in od.FACTORS:
        d = od.design_oversampler(factor, "linear", quality, integer_latency)
        r = _round_trip_ir(d)
        centroid = np.sum(np.arange(len(r)) * r) / np.sum(r)
        # group delay from the phase slope over the passband
        nfft = 1 << 16
        f = np.fft.rfftfreq(nfft)
        ph = np.unwrap(np.angle(np.fft.rfft(r, nfft)))
        sel = f <= 0.4
        slope = np.polyfit(2 * np.pi * f[sel], ph[sel], 1)[0]
        assert centroid == pytest.approx(d.latency, abs=0.01)
        assert -slope == pytest.approx(d.latency, abs=0.01)
        if integer_latency:
            assert d.latency == round(d.latency)
            assert int(np.argmax(np.abs(r))) == d.latency


@pytest.mark.parametrize("quality", list(od.QUALITIES))
@pytest.mark.parametrize("integer_latency", [False, True])
def test_minimum_latency_measured(quality, integer_latency):
    """DC group delay (impulse-response centroid) and the group delay at 1 kHz (44.1
    kHz stream) measured on the kernels, against the design's figures."""
    for factor in od.FACTORS:
        d = od.design_oversampler(factor, "minimum", quality, integer_latency)
        r = _round_trip_ir(d, 8192)
        centroid = np.sum(np.arange(len(r)) * r) / np.sum(r)
        assert centroid == pytest.approx(d.latency, abs=0.01)
        f1 = 1000 / 44100
        df = 1e-4
        hz = np.exp(-2j * np.pi * np.outer([f1 - df, f1 + df], np.arange(len(r)))) @ r
        gd = -np.diff(np.unwrap(np.angle(hz)))[0] / (2 * np.pi * 2 * df)
        assert gd == pytest.approx(float(od.group_delay(d, f1)), abs=0.01)
        if integer_latency:
            assert d.latency == round(d.latency)


def test_minimum_phase_4x_high_latency():
    d = od.design_oversampler(4, "minimum", "high")
    assert d.latency <= 8.0
    r = _round_trip_ir(d, 8192)
    assert np.sum(np.arange(len(r)) * r) / np.sum(r) <= 8.0


# ---------------------------------------------------------------- streaming behaviour


def _stream(d, x, cuts):
    """Round trip of x (n, C) cut into blocks of the given sizes (cycled)."""
    st = ov.make_state(d, x.shape[1])
    x = np.ascontiguousarray(x.T)        # the kernels take planar (C, frames) buffers
    out = np.empty_like(x)
    top = np.empty((x.shape[0], max(cuts) * d.factor))
    i = 0
    for b in itertools.cycle(cuts):
        if i >= x.shape[1]:
            break
        b = min(b, x.shape[1] - i)
        ov.oversample_up(d.coeffs, x[:, i:i + b], b, st, top)
        ov.oversample_down(d.coeffs, top, b, st, out[:, i:i + b])
        i += b
    return out.T


@pytest.mark.parametrize("factor,phase,quality,integer_latency", [
    (4, "linear", "high", False), (4, "minimum", "high", False), (2, "linear", "normal", True),
    (8, "minimum", "normal", True), (64, "linear", "draft", False), (16, "minimum", "high", True),
])
def test_block_size_invariance(factor, phase, quality, integer_latency):
    d = od.design_oversampler(factor, phase, quality, integer_latency)
    x = np.random.default_rng(7).standard_normal((6000, 2))
    ref = _stream(d, x, [4096])
    for cuts in ([1], [7], [64], [4096], [1, 500, 3, 4096, 33]):
        assert np.array_equal(_stream(d, x, cuts), ref), cuts


def test_up_and_down_alone_are_block_invariant():
    d = od.design_oversampler(8, "minimum", "normal", integer_latency=True)
    x = np.random.default_rng(3).standard_normal((3000, 2))
    whole = _up(d, x)
    st = ov.make_state(d, 2)
    parts = []
    for i in range(0, 3000, 7):
        b = min(7, 3000 - i)
        o = np.empty((2, b * 8))
        ov.oversample_up(d.coeffs, np.ascontiguousarray(x[i:i + b].T), b, st, o)
        parts.append(o.T)
    assert np.array_equal(np.concatenate(parts), whole)
    v = np.random.default_rng(4).standard_normal((8 * 3000, 2))
    whole = _down(d, v)
    st = ov.make_state(d, 2)
    parts = []
    for i in range(0, 3000, 13):
        b = min(13, 3000 - i)
        o = np.empty((2, b))
        ov.oversample_down(d.coeffs, np.ascontiguousarray(v[8 * i:8 * (i + b)].T), b, st, o)
        parts.append(o.T)
    assert np.array_equal(np.concatenate(parts), whole)


def _sym_fir_reference(buf, base, g, c):
    """The half-band FIR sum in the order the kernel documents, one output at a time in
    Python floats: folded pairs ``x_j``, groups ``(g1 x1 + g2 x2) + (g3 x3 + g4 x4)``
    of four taps (the last has 1..4), each group added to the sum of the earlier ones."""
    out = []
    for k in range(c):
        x = [g[j - 1] * (buf[base + k + j - 1] + buf[base + k - j]) for j in range(1, len(g) + 1)]
        total = None
        for i in range(0, len(x), 4):
            group = x[i:i + 4]
            part = group[0] + group[1] if len(group) >= 2 else group[0]
            if len(group) == 3:
                part = part + group[2]
            elif len(group) == 4:
                part = part + (group[2] + group[3])
            total = part if total is None else total + part
        out.append(total)
    return np.array(out)


@pytest.mark.parametrize("m", [1, 2, 3, 4, 5, 7, 8, 9, 13, 48])
def test_halfband_fir_sum_order(m):
    """The vector kernel (sixteen outputs per step, then one step of eight, then one at a
    time; operands reused across tap groups) gives the documented sum to the bit, for any
    tap count and any output count (whole steps, a tail, only a tail), merged with the
    other branch as each stage does (up: interleaved, 2 w and aux; down: w + aux / 2,
    whole or split into even and odd outputs), into contiguous and strided outputs."""
    rng = np.random.default_rng(m)
    g = rng.standard_normal(m)
    p = np.concatenate(([0.0, float(m)], g))         # a stage block: [kind, M, g_1 .. g_M]
    buf = rng.standard_normal(200)
    aux = rng.standard_normal(64)
    base = m + 3
    for c in (1, 2, 7, 8, 9, 16, 23, 25, 31, 64):
        w = _sym_fir_reference(buf, base, g, c)
        v = np.array([w[k] + 0.5 * aux[k] for k in range(c)])
        for stride in (1, 3):
            out = np.full((2 * 64, stride), np.nan)
            dst = out[:, 0]                             # strided unless stride == 1
            dst2 = np.full(64, np.nan)
            ov._sym_fir(buf, base, p, m, c, ov.FIR_UP, aux, dst, dst)
            assert np.array_equal(dst[:2 * c:2], 2.0 * w) and np.array_equal(dst[1:2 * c:2], aux[:c]), c
            assert np.isnan(dst[2 * c:]).all()          # nothing written past the outputs
            dst[:] = np.nan
            ov._sym_fir(buf, base, p, m, c, ov.FIR_DOWN, aux, dst, dst)
            assert np.array_equal(dst[:c], v) and np.isnan(dst[c:]).all(), c
            dst[:] = np.nan
            ov._sym_fir(buf, base, p, m, c, ov.FIR_DOWN_SPLIT, aux, dst, dst2)
            assert np.array_equal(dst[:(c + 1) // 2], v[0::2]) and np.isnan(dst[(c + 1) // 2:]).all(), c
            assert np.array_equal(dst2[:c // 2], v[1::2]) and np.isnan(dst2[c // 2:]).all(), c


@pytest.mark.parametrize("phase", od.PHASES)
def test_channels_independent_and_reset(phase):
    d = od.design_oversampler(4, phase, "high", integer_latency=True)
    x = np.random.default_rng(1).standard_normal((3000, 3))
    o = Oversampler(d, 3)
    y = o.round_trip(x)
    for ch in range(3):
        assert np.array_equal(Oversampler(d, 1).round_trip(x[:, ch]), y[:, [ch]])
    o.reset()
    assert not o.state.any()
    assert np.array_equal(o.round_trip(x), y)


def test_state_size_is_independent_of_block_size():
    d = od.design_oversampler(16, "linear", "high")
    assert ov.state_size(d, 2) == len(ov.make_state(d, 2))
    assert ov.state_size(d, 2) > ov.state_size(d, 1)


def test_strided_buffers():
    """Planar (channels, frames) views with arbitrary strides give the same result."""
    d = od.design_oversampler(4, "linear", "normal")
    x = np.random.default_rng(2).standard_normal((1000, 2))
    ref = Oversampler(d, 2).round_trip(x)
    st = ov.make_state(d, 2)
    top = np.empty((4000, 2)).T
    out = np.empty((1000, 3))[:, ::2].T
    ov.oversample_up(d.coeffs, x.T, 1000, st, top)
    ov.oversample_down(d.coeffs, top, 1000, st, out)
    assert np.array_equal(out.T, ref)
