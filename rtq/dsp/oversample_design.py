"""Oversampling design: cascaded 2x half-band filters for an ``oversample`` stage.

An ``oversample`` stage raises the stream rate by ``L`` (2, 4, ... 64), runs an inner
chain at ``L x`` the stream rate and comes back down.  This module is the
prepare-time design (NumPy, and SciPy imported only while designing); the kernels
that run a design are in :mod:`rtq.dsp.oversample`, which reads nothing from a
design but its flat ``coeffs`` array (layout below).

Design
------
The resampler is a cascade of ``S = log2(L)`` half-band 2x stages.  Stage ``s``
(``s = 0`` is the one next to the stream rate) converts between ``2^s fs`` and
``2^(s+1) fs``.  Every stage must keep ``0 .. 0.4535 fs`` flat and reject what would
image/alias into it, i.e. everything at or above ``2^s fs - 0.4535 fs``.  Normalised
to the stage's high rate that is a half-band with passband edge
``fp = 0.4535 / 2^(s+1)`` and stopband edge ``0.5 - fp``: the half-band symmetry
matches the requirement exactly, so every stage is a true half-band and later stages,
whose transition bands are much wider, are much shorter.

``phase="linear"``
    Linear-phase FIR half-bands designed with the Parks-McClellan (``scipy.signal.remez``)
    "half-band trick": the ``2M`` non-zero odd taps of a ``4M - 1`` tap half-band form a
    type-II filter of length ``2M`` that is designed to approximate 1 on
    ``[0, 2 fp]``; the centre tap is exactly 0.5 and the even taps exactly 0.  This is
    the equiripple (minimax) optimum, so it needs 10-15 % fewer taps than a Kaiser
    window design for the same rejection, and the exact zeros survive rounding.
    Polyphase implementation: one branch is the symmetric ``2M``-tap FIR (``M``
    multiplies per low-rate sample thanks to symmetry), the other a pure delay.
    Stages beyond the fourth reuse the fourth stage's design (its band edges are
    stricter; Remez does not converge for the very narrow bands).
``phase="minimum"``
    Low-latency polyphase IIR half-bands: ``H(z) = (A0(z^2) + z^-1 A1(z^2)) / 2``
    with ``A0``, ``A1`` cascades of first-order allpass sections
    ``(a + z^-2) / (1 + a z^-2)`` (one multiply each at the low rate).  The
    coefficients are those of the odd-order elliptic half-band (the poles lie on the
    imaginary axis; computed in closed form from Jacobi elliptic functions; the
    stopband attenuation follows from the degree equation).  The smallest order
    ``N = 1 (mod 4)`` meeting the rejection is used, so both branches have
    ``(N - 1) / 4`` sections (this lets the kernel run the branches in lockstep).
    Not minimum phase in the strict sense (the zeros sit on the unit circle), but
    the lowest-latency choice: 5.9 stream samples round trip at 4x ``high``.

Quality figures (``QUALITIES``) are *declared* and verified by the tests: passband
ripple of the up+down round trip up to ``0.4535 fs`` and image/alias rejection (the
images of any tone in ``0 .. 0.4535 fs``, i.e. the bands ``k fs +- 0.4535 fs``, and
whatever folds into ``0 .. 0.4535 fs`` when going down).  Every stage is designed for
the attenuation in ``DESIGN_REJECTION_DB``: the declared figure plus 2 dB, except
linear-phase ``high``, designed for 140 dB (measured 140.7 dB): the images and aliases
of a full-scale tone then sit at the level of a 24-bit TPDF noise floor (-144.5 dBFS)
and match soxr's HQ setting (139 dB measured at 4x, 48 kHz) in benchmarks; the
low-latency ``minimum``/``high`` keeps the 122 dB design (130 / 125 dB measured) and
its 5.9-sample latency.  For half-bands the passband ripple is tied to the stopband
ripple, so the ripple figures are met with a wide margin.  The band
``0.4535 .. 0.5 fs`` is a transition band: it may alias (it stays outside the
protected band), which is what keeps the filters short.

Latency
-------
``OversamplerDesign.latency`` is the round-trip (up, then down) delay in stream-rate
samples.  Linear phase: exact and frequency independent, ``sum_s (2 M_s - 1) / 2^s``.
Minimum phase: **the group delay at DC** (the limit ``f -> 0``).  It rises slowly
with frequency: at 1 kHz / 44.1 kHz it is 0.007 .. 0.011 sample higher, near the band
edge (20 kHz) it is about 24 samples at ``high``; :func:`group_delay` gives the curve.
``integer_latency=True`` appends to the up path, at the top rate, a whole number of
top-rate samples of delay (linear phase: exact) and, for minimum phase, a first-order
Thiran allpass, so the (DC) latency becomes a whole number of stream samples.  For
linear phase the delay is even and costs nothing: one sample at the input of up stage
``s`` is ``2^(S-s)`` top-rate samples after it, so each set bit of the delay is one more
history sample in a stage's input line; minimum phase runs it in a ring.

``coeffs`` (``OversamplerDesign.coeffs``, flat float64, read only by the kernels)::

    [0]          S, number of 2x stages (L = 2^S)
    [1]          ring pad delay D (top-rate samples, integer valued; end of the up path)
    [2]          pad allpass coefficient a (first-order Thiran, used iff [3] == 1)
    [3]          pad allpass flag (0.0 or 1.0)
    [4 .. 4+S]   S + 1 offsets (into coeffs) of the stage blocks; [4+S] is the end
    [5+S .. 4+2S]  input delay of up stage s (0 or 1 sample at its input rate)
    stage block, FIR:  [0.0, M, g_1 .. g_M]
    stage block, IIR:  [1.0, n, a0_1 .. a0_n, a1_1 .. a1_n]

``g_j`` is the half-band tap at offset ``+-(2j - 1)`` from the 0.5 centre tap;
``a0_k`` / ``a1_k`` are the allpass coefficients of branch 0 / 1, section k.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..cache import stored_design

__all__ = [
    "FACTORS",
    "PHASES",
    "QUALITIES",
    "PASSBAND",
    "DESIGN_REJECTION_DB",
    "QualitySpec",
    "HalfbandStage",
    "OversamplerDesign",
    "design_halfband_fir",
    "design_halfband_iir",
    "design_oversampler",
    "group_delay",
    "halfband_response",
]

FACTORS = (2, 4, 8, 16, 32, 64)
PHASES = ("linear", "minimum")
#: Passband edge as a fraction of the stream rate (20 kHz at 44.1 kHz).
PASSBAND = 0.4535
#: Stopband attenuation every stage is designed for, dB, per (phase, quality): the
#: declared rejection + 2 dB, linear ``high`` 140 dB (see the module docstring).
DESIGN_REJECTION_DB = {
    ("linear", "high"): 140.0,
    ("linear", "normal"): 92.0,
    ("linear", "draft"): 62.0,
    ("minimum", "high"): 122.0,
    ("minimum", "normal"): 92.0,
    ("minimum", "draft"): 62.0,
}
# Remez cannot design the very narrow single-band prototypes of stages >= 4;
# those stages reuse the stage-3 design (stricter band edges).
_FIR_MIN_STAGE_FP = PASSBAND / 16.0


@dataclass(frozen=True)
class QualitySpec:
    """Declared figures of a quality level.

    Attributes
    ----------
    ripple_db : float
        Round-trip passband ripple bound, +- dB, over ``0 .. PASSBAND * fs``.
    rejection_db : float
        Minimum image (up) and alias (down) rejection, dB.
    """

    ripple_db: float
    rejection_db: float


QUALITIES = {
    "high": QualitySpec(0.01, 120.0),
    "normal": QualitySpec(0.05, 90.0),
    "draft": QualitySpec(0.1, 60.0),
}

# The ``coeffs`` layout (module docstring), shared with the kernels.
KIND_FIR = 0
KIND_IIR = 1
HEADER = 4  # fixed header entries before the stage offset table


# --------------------------------------------------------------------------------------
# Half-band design (prepare time)
# --------------------------------------------------------------------------------------


def _fir_from_g(g: np.ndarray) -> np.ndarray:
    """Full ``4M - 1`` tap half-band impulse response from the odd taps ``g``."""
    m = len(g)
    h = np.zeros(4 * m - 1)
    c = 2 * m - 1
    h[c] = 0.5
    for j in range(1, m + 1):
        h[c + 2 * j - 1] = h[c - 2 * j + 1] = g[j - 1]
    return h


def _fir_stopband_db(g: np.ndarray, fp: float) -> float:
    """Worst-case stopband attenuation (dB) of the FIR half-band, on a dense grid."""
    # H(w) - 1/2 = sum_j 2 g_j cos((2j-1) w); the stopband maximum mirrors the passband.
    w = np.linspace(0.0, 2 * np.pi * fp, 8192)
    k = 2 * np.arange(1, len(g) + 1) - 1
    a = 0.5 + np.cos(np.outer(w, k)) @ (2 * g)
    dev = np.max(np.abs(a - 1.0))  # |H(pi - w)| = |1 - H(w)| for a half-band
    return float(-20 * np.log10(max(dev, 1e-300)))


@stored_design
def _fir_design_cached(fp: float, atten_db: float) -> tuple[float, ...]:
    from scipy import signal  # design time only: keeps start-up light
    fp_d = max(fp, _FIR_MIN_STAGE_FP)
    for m in range(1, 200):
        t = signal.remez(2 * m, [0.0, 2.0 * fp_d], [1.0], fs=1.0, grid_density=32)
        g = t[m:] / 2.0
        if np.all(np.isfinite(g)) and _fir_stopband_db(g, fp_d) >= atten_db:
            return tuple(float(v) for v in g)
    raise ValueError(f"cannot design a FIR half-band for fp={fp}, {atten_db} dB")


def design_halfband_fir(fp: float, atten_db: float) -> np.ndarray:
    """Design an equiripple linear-phase FIR half-band.

    Parameters
    ----------
    fp : float
        Passband edge, cycles per sample of the half-band's (high) rate, ``< 0.25``.
        The stopband starts at ``0.5 - fp``.
    atten_db : float
        Required stopband attenuation in dB (passband deviation is the same ripple).

    Returns
    -------
    g : ndarray of float64, shape (M,)
        Odd taps: ``h[c +- (2j - 1)] = g[j - 1]`` around the centre tap ``h[c] = 0.5``,
        ``c = 2M - 1``; all other taps are zero.  Smallest ``M`` meeting the spec.
    """
    return np.array(_fir_design_cached(float(fp), float(atten_db)))


def _cd_complex(x: float | np.ndarray, y: float, m: float) -> np.ndarray:
    """Jacobi ``cd(x + i y | m)`` for real x, y (Abramowitz & Stegun 16.21)."""
    from scipy import special  # design time only: keeps start-up light
    s, c, d, _ = special.ellipj(x, m)
    s1, c1, d1, _ = special.ellipj(y, 1.0 - m)
    den = c1 ** 2 + m * s ** 2 * s1 ** 2
    cn = (c * c1 - 1j * s * d * s1 * d1) / den
    dn = (d * c1 * d1 - 1j * m * s * c * s1) / den
    return cn / dn


def _elliptic_halfband(order: int, fp: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Allpass coefficients and stopband attenuation of an odd-order elliptic half-band.

    The bilinear-transformed analog prototype has its passband edge at
    ``tan(pi fp) = sqrt(k)`` and stopband edge at ``1 / sqrt(k)``; for the half-band
    (``epsilon^2 = 1 / L``) its poles are ``j sqrt(k) cd((2i-1) K / N - j K' / 2, k)``,
    on the unit circle, and map to ``z = +- j sqrt(beta)``.
    """
    from scipy import special  # design time only: keeps start-up light
    k = math.tan(math.pi * fp) ** 2
    m = k * k
    kk = special.ellipk(m)
    kp = special.ellipkm1(m)  # K'(m) = K(1 - m)
    u = (2 * np.arange(1, order + 1) - 1) / order
    p = 1j * math.sqrt(k) * _cd_complex(u * kk, -kp / 2.0, m)
    z = (1 + p) / (1 - p)
    beta = np.sort(np.abs(z[z.imag > 1e-9]) ** 2)
    # degree equation via nomes: q1 = q^N, k1 = 1/L
    q1 = math.exp(-math.pi * kp / kk * order)
    prod = 1.0
    for i in range(1, 64):
        prod *= ((1 + q1 ** (2 * i)) / (1 + q1 ** (2 * i - 1))) ** 4
    k1 = 4.0 * math.sqrt(q1) * prod
    atten = 10 * math.log10(1.0 + 1.0 / k1) if k1 > 0 else math.inf
    return beta[0::2].copy(), beta[1::2].copy(), atten


@stored_design
def _iir_design_cached(fp: float, atten_db: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
    for order in range(5, 101, 4):  # N = 1 (mod 4): both branches get (N-1)/4 sections
        a0, a1, att = _elliptic_halfband(order, fp)
        if att >= atten_db:
            return tuple(float(v) for v in a0), tuple(float(v) for v in a1)
    raise ValueError(f"cannot design an IIR half-band for fp={fp}, {atten_db} dB")


def design_halfband_iir(fp: float, atten_db: float) -> tuple[np.ndarray, np.ndarray]:
    """Design a polyphase allpass (elliptic) IIR half-band.

    Parameters
    ----------
    fp : float
        Passband edge, cycles per sample of the high rate (``< 0.25``).
    atten_db : float
        Required stopband attenuation, dB.

    Returns
    -------
    a0, a1 : ndarray of float64
        Allpass coefficients of the two branches of
        ``H(z) = (A0(z^2) + z^-1 A1(z^2)) / 2``, ``A(z) = prod (a + z^-1) / (1 + a z^-1)``
        (in the branch's own, low-rate ``z``).  Ascending, all in ``(0, 1)``.
    """
    a0, a1 = _iir_design_cached(float(fp), float(atten_db))
    return np.array(a0), np.array(a1)


def _ap_group_delay(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Group delay (samples) of ``prod (a + z^-1)/(1 + a z^-1)`` at ``w`` rad/sample."""
    w = np.asarray(w, dtype=float)
    out = np.zeros_like(w)
    for c in a:
        out += (1 - c * c) / (1 + 2 * c * np.cos(w) + c * c)
    return out


def halfband_response(stage: "HalfbandStage", f: np.ndarray) -> np.ndarray:
    """Complex frequency response of one half-band at ``f`` cycles/sample (high rate).

    Includes the unit DC gain normalisation (the up-sampler multiplies by 2).
    """
    from scipy import signal  # analysis only: keeps start-up light
    f = np.asarray(f, dtype=float)
    if stage.kind == "fir":
        h = _fir_from_g(stage.taps)
        return signal.freqz(h, worN=2 * np.pi * f)[1]
    z2 = np.exp(-2j * 2 * np.pi * f)  # z^-2

    def branch(a: np.ndarray) -> np.ndarray:
        r = np.ones_like(z2)
        for c in a:
            r = r * (c + z2) / (1 + c * z2)
        return r

    return 0.5 * (branch(stage.a0) + np.exp(-2j * np.pi * f) * branch(stage.a1))


# --------------------------------------------------------------------------------------
# Oversampler design
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HalfbandStage:
    """One designed 2x stage.

    Attributes
    ----------
    index : int
        Position in the cascade; runs between ``2^index fs`` and ``2^(index+1) fs``.
    kind : str
        ``"fir"`` or ``"iir"``.
    fp : float
        Passband edge, cycles/sample at the stage's high rate.
    taps : ndarray
        FIR odd taps ``g`` (empty for IIR).
    a0, a1 : ndarray
        IIR branch allpass coefficients (empty for FIR).
    delay : float
        Group delay at DC of the half-band, samples at the stage's high rate.
    multiplies : int
        Multiplies per low-rate sample per direction (FIR: ``M``; IIR: sections).
    """

    index: int
    kind: str
    fp: float
    taps: np.ndarray
    a0: np.ndarray
    a1: np.ndarray
    delay: float
    multiplies: int

    def block(self) -> np.ndarray:
        """The stage's flat parameter block (see the module docstring)."""
        if self.kind == "fir":
            return np.concatenate(([float(KIND_FIR), float(len(self.taps))], self.taps))
        return np.concatenate(([float(KIND_IIR), float(len(self.a0))], self.a0, self.a1))


@dataclass(frozen=True)
class OversamplerDesign:
    """Prepared oversampler: per-stage coefficients, flat kernel parameters, metadata.

    Attributes
    ----------
    factor, phase, quality, integer_latency
        The request.
    stages : tuple of HalfbandStage
        Stage 0 is next to the stream rate.
    latency : float
        Round-trip (up + down) delay in stream samples, including the pad; linear phase
        exact, minimum phase the group delay at DC.
    pad_delay : int
        Whole top-rate samples of delay appended to the up path (linear phase: run as
        stage input delays, see the module docstring).
    pad_allpass : float or None
        First-order Thiran allpass coefficient appended after the pad delay.
    coeffs : ndarray of float64
        Flat parameter array for the kernels (layout in the module docstring).
    spec : QualitySpec
        Declared ripple / rejection.
    """

    factor: int
    phase: str
    quality: str
    integer_latency: bool
    stages: tuple[HalfbandStage, ...]
    latency: float
    pad_delay: int
    pad_allpass: float | None
    coeffs: np.ndarray
    spec: QualitySpec


def design_oversampler(
    factor: int,
    phase: str = "linear",
    quality: str = "high",
    integer_latency: bool = False,
) -> OversamplerDesign:
    """Design an up/down-sampler pair for an ``oversample`` stage (prepare time).

    Parameters
    ----------
    factor : int
        Oversampling ratio ``L``, one of :data:`FACTORS`.
    phase : {"linear", "minimum"}
        Linear-phase FIR or low-latency IIR half-bands.
    quality : {"high", "normal", "draft"}
        Declared figures in :data:`QUALITIES`.
    integer_latency : bool
        Pad so the round-trip latency is a whole number of stream samples.

    Returns
    -------
    OversamplerDesign

    Raises
    ------
    ValueError
        On an unsupported factor, phase or quality.
    """
    if factor not in FACTORS:
        raise ValueError(f"oversampling factor must be one of {FACTORS}, got {factor!r}")
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
    if quality not in QUALITIES:
        raise ValueError(f"quality must be one of {tuple(QUALITIES)}, got {quality!r}")
    spec = QUALITIES[quality]
    atten = DESIGN_REJECTION_DB[(phase, quality)]
    n_st = int(round(math.log2(factor)))
    stages = []
    latency = 0.0
    for s in range(n_st):
        fp = PASSBAND / 2 ** (s + 1)
        empty = np.zeros(0)
        if phase == "linear":
            g = design_halfband_fir(fp, atten)
            st = HalfbandStage(s, "fir", fp, g, empty, empty, float(2 * len(g) - 1), len(g))
        else:
            a0, a1 = design_halfband_iir(fp, atten)
            d0 = 2.0 * float(np.sum((1 - a0) / (1 + a0)))
            d1 = 1.0 + 2.0 * float(np.sum((1 - a1) / (1 + a1)))
            st = HalfbandStage(s, "iir", fp, empty, a0, a1, 0.5 * (d0 + d1), len(a0) + len(a1))
        stages.append(st)
        latency += st.delay / 2 ** s  # up and down each delay/2^(s+1)
    pad_delay, pad_ap = 0, None
    input_delays = [0] * n_st
    ring_delay = 0
    if integer_latency:
        target = math.ceil(latency - 1e-9)
        extra = (target - latency) * factor  # top-rate samples
        if phase == "linear":
            pad_delay = int(round(extra))
            latency = float(target)
            # A delay of 2^(S-s) top-rate samples is one sample at the input of up stage
            # s (the stages are time-invariant): bit S-s of the pad becomes one more
            # sample of history in that stage's input line, which costs nothing.  Bit 0
            # (an odd pad; linear-phase latencies are even at the top rate) stays a ring.
            input_delays = [(pad_delay >> (n_st - s)) & 1 for s in range(n_st)]
            ring_delay = pad_delay & 1
        else:
            if extra < 0.5:
                extra += factor
                target += 1
            pad_delay = int(math.floor(extra - 0.5))
            d = extra - pad_delay  # in [0.5, 1.5)
            pad_ap = (1.0 - d) / (1.0 + d)
            latency = float(target)
            ring_delay = pad_delay
    hdr = [float(n_st), float(ring_delay), float(pad_ap or 0.0), 1.0 if pad_ap is not None else 0.0]
    blocks = [st.block() for st in stages]
    offs = [HEADER + 2 * n_st + 1]
    for b in blocks:
        offs.append(offs[-1] + len(b))
    coeffs = np.concatenate([np.array(hdr + [float(o) for o in offs] + [float(d) for d in input_delays])]
                            + blocks)
    return OversamplerDesign(
        factor, phase, quality, bool(integer_latency), tuple(stages), float(latency),
        pad_delay, pad_ap, coeffs, spec,
    )


def group_delay(design: OversamplerDesign, f: float | np.ndarray) -> np.ndarray:
    """Round-trip group delay in stream samples at ``f`` cycles per stream sample.

    ``group_delay(d, 0.0)`` equals ``d.latency``.  Constant for linear phase.
    """
    f = np.asarray(f, dtype=float)
    tot = np.zeros_like(f)
    for st in design.stages:
        hi = 2 ** (st.index + 1)
        if st.kind == "fir":
            tau = np.full_like(f, st.delay)
        else:
            w = 2 * np.pi * f / hi  # rad/sample at the stage's high rate
            tau = 0.5 * (2 * _ap_group_delay(st.a0, 2 * w) + 1 + 2 * _ap_group_delay(st.a1, 2 * w))
        tot += 2 * tau / hi
    pad = np.full_like(f, float(design.pad_delay))
    if design.pad_allpass is not None:
        pad += _ap_group_delay(np.array([design.pad_allpass]), 2 * np.pi * f / design.factor)
    return tot + pad / design.factor

