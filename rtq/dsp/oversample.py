"""Oversampling stage DSP: cascaded 2x half-band up/down-samplers.

An ``oversample`` stage raises the stream rate by ``L`` (2, 4, ... 64), runs an inner
chain at ``L x`` the stream rate and comes back down.  This module holds the
prepare-time design (pure numpy/scipy) and the per-sample Numba kernels.

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

Kernels, layouts and real-time rules
------------------------------------
All kernels are compiled with :data:`rtq.jit.kernel` (``njit(cache=True, nogil=True,
error_model="numpy")``), take only float64 arrays and ints, allocate nothing, never
raise, and are bit-identical however the stream is cut into blocks (the state carries
everything; the float operations for every output sample are the same whatever the
block boundaries).  Audio buffers are planar float64 ``(channels, frames)``, as a
program's work buffers are: any strides work, C-contiguous rows run fastest (the
interleaving of the top stages then vectorises; (frames, channels) views would cost a
strided access per sample: BENCHMARKS.md).
Input is processed in passes of ``P = PASS_TOP / L`` stream frames (any block length
works); between stages the data flows through per-channel line buffers in the state.

FIR inner loops are vectorised across time with the taps' symmetry exploited (one
multiply per coefficient pair, none for the zero taps or the pure-delay branch); the
IIR recursions run eight independent dependency chains (two sections x two branches x
two channels) per loop.  How fast that is, against soxr and scipy: BENCHMARKS.md.

``coeffs`` (``OversamplerDesign.coeffs``, flat float64, read only by kernels)::

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

``state`` (flat float64, :func:`state_size` long, :func:`reset` zero-fills it) for
``C`` channels; ``cap_s = P 2^s`` new samples per pass at stage ``s``; in order::

    up stage s, s = 0 .. S-1
        FIR: C input lines of (2M - 1 + d_s + cap_s) [history | new input], d_s the
             stage's input delay
        IIR: C input lines of (1 + cap_s)            [previous input | new input]
             2C work lines W of (1 + cap_s)          chains (ch, branch), ch-major
             2C work lines T of cap_s
             2C * n section outputs y[n-1]           chain-major, then section
    down stage s, s = 0 .. S-1
        FIR: C even lines of (2M - 1 + cap_s), then C odd lines of (M + cap_s)
        IIR: C even lines of (1 + cap_s), C odd lines of (2 + cap_s), then W, T, y
             as going up
    pad      C * (D + 3): [ring position, D delayed samples, allpass x1, y1]
    acc      PASS_TOP / 2 scratch (FIR sums; contents irrelevant between calls)

Everything depends only on the design and the channel count, never on block size.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from numba.extending import register_jitable

from ..cache import stored_design
from ..jit import kernel

__all__ = [
    "FACTORS",
    "PHASES",
    "QUALITIES",
    "PASSBAND",
    "DESIGN_REJECTION_DB",
    "PASS_TOP",
    "QualitySpec",
    "HalfbandStage",
    "OversamplerDesign",
    "design_halfband_fir",
    "design_halfband_iir",
    "design_oversampler",
    "state_size",
    "make_state",
    "reset",
    "group_delay",
    "halfband_response",
    "oversample_up",
    "oversample_down",
    "Oversampler",
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
#: Top-rate frames per pass through the cascade (sets the state size, not the block
#: size: any block length is processed in passes of ``PASS_TOP / L`` stream frames).
PASS_TOP = 4096
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

_KIND_FIR = 0
_KIND_IIR = 1
_HDR = 4  # fixed header entries before the stage offset table


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
            return np.concatenate(([float(_KIND_FIR), float(len(self.taps))], self.taps))
        return np.concatenate(([float(_KIND_IIR), float(len(self.a0))], self.a0, self.a1))


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

    @property
    def n_stages(self) -> int:
        return len(self.stages)

    def state_size(self, channels: int) -> int:
        """Length of the flat state array for ``channels`` channels."""
        return state_size(self, channels)


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
    offs = [_HDR + 2 * n_st + 1]
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


# --------------------------------------------------------------------------------------
# State layout
# --------------------------------------------------------------------------------------


@register_jitable
def _pass_frames(coeffs: np.ndarray) -> int:
    """Stream frames per pass through the cascade (``PASS_TOP / L``)."""
    return PASS_TOP >> int(coeffs[0])


@register_jitable
def _input_delay(coeffs: np.ndarray, s: int) -> int:
    """Samples (0 or 1) by which up stage ``s`` delays its input (part of the pad)."""
    n_st = int(coeffs[0])
    return int(coeffs[_HDR + n_st + 1 + s])


@register_jitable
def _stage_size(coeffs: np.ndarray, s: int, chans: int, down: bool) -> int:
    pa = int(coeffs[_HDR + s])
    cap = _pass_frames(coeffs) << s
    m = int(coeffs[pa + 1])
    if int(coeffs[pa]) == _KIND_FIR:
        if down:
            return chans * (2 * m - 1 + cap) + chans * (m + cap)
        return chans * (2 * m - 1 + _input_delay(coeffs, s) + cap)
    common = 2 * chans * (1 + cap) + 2 * chans * cap + 2 * chans * m  # W, T, y
    if down:
        return chans * (1 + cap) + chans * (2 + cap) + common
    return chans * (1 + cap) + common


@register_jitable
def _stage_offset(coeffs: np.ndarray, s: int, chans: int, down: bool) -> int:
    """Offset of up/down stage ``s``; ``_stage_offset(c, S, C, True)`` is the pad."""
    n_st = int(coeffs[0])
    off = 0
    if down:
        for k in range(n_st):
            off += _stage_size(coeffs, k, chans, False)
    for k in range(s):
        off += _stage_size(coeffs, k, chans, down)
    return off


@register_jitable
def _state_size(coeffs: np.ndarray, chans: int) -> int:
    n_st = int(coeffs[0])
    off = _stage_offset(coeffs, n_st, chans, True)
    return off + chans * (int(coeffs[1]) + 3) + PASS_TOP // 2


def state_size(design: OversamplerDesign, channels: int) -> int:
    """Number of float64 state values for ``channels`` channels (layout: module doc)."""
    return int(_state_size(design.coeffs, int(channels)))


def make_state(design: OversamplerDesign, channels: int) -> np.ndarray:
    """Allocate a zeroed state array (prepare time)."""
    return np.zeros(state_size(design, channels))


@kernel
def reset(state: np.ndarray) -> None:
    """Reset: zero-fill the state (real-time safe)."""
    state[:] = 0.0


@kernel
def _in_line(coeffs, state, s, chans, ch, down, odd):
    """Input line of stage ``s`` for channel ``ch`` and the index where new data starts.

    Up: the input line.  Down: the even-phase (``odd=False``) or odd-phase line.
    """
    pa = int(coeffs[_HDR + s])
    cap = _pass_frames(coeffs) << s
    m = int(coeffs[pa + 1])
    off = _stage_offset(coeffs, s, chans, down)
    if int(coeffs[pa]) == _KIND_FIR:
        he = 2 * m - 1 if down else 2 * m - 1 + _input_delay(coeffs, s)
        if not odd:
            o = off + ch * (he + cap)
            return state[o:o + he + cap], he
        o = off + chans * (he + cap) + ch * (m + cap)
        return state[o:o + m + cap], m
    if not odd:
        o = off + ch * (1 + cap)
        return state[o:o + 1 + cap], 1
    o = off + chans * (1 + cap) + ch * (2 + cap)
    return state[o:o + 2 + cap], 2


# --------------------------------------------------------------------------------------
# Kernels: stage primitives (one channel or all channels of one stage, one pass)
# --------------------------------------------------------------------------------------


@kernel
def _sym_fir(buf, base, p, m, c, acc):
    """``acc[k] = sum_j g_j (buf[base + k + j - 1] + buf[base + k - j])``, k < c.

    ``g_j = p[1 + j]``.  Vectorised across ``k`` (time).  Taps are summed in groups of
    four (the last group has 1..4 taps) in a fixed order, so the rounding of every
    output is independent of ``c`` and of how the stream was cut into blocks.
    """
    a = acc[:c]
    j = 1
    while j <= m:
        r = min(4, m - j + 1)
        g1 = p[1 + j]
        p1 = buf[base + j - 1:base + j - 1 + c]
        q1 = buf[base - j:base - j + c]
        if r == 4:
            g2 = p[2 + j]
            g3 = p[3 + j]
            g4 = p[4 + j]
            p2 = buf[base + j:base + j + c]
            q2 = buf[base - j - 1:base - j - 1 + c]
            p3 = buf[base + j + 1:base + j + 1 + c]
            q3 = buf[base - j - 2:base - j - 2 + c]
            p4 = buf[base + j + 2:base + j + 2 + c]
            q4 = buf[base - j - 3:base - j - 3 + c]
            if j == 1:
                for k in range(c):
                    a[k] = (g1 * (p1[k] + q1[k]) + g2 * (p2[k] + q2[k])) + (
                        g3 * (p3[k] + q3[k]) + g4 * (p4[k] + q4[k]))
            else:
                for k in range(c):
                    a[k] += (g1 * (p1[k] + q1[k]) + g2 * (p2[k] + q2[k])) + (
                        g3 * (p3[k] + q3[k]) + g4 * (p4[k] + q4[k]))
        elif r == 3:
            g2 = p[2 + j]
            g3 = p[3 + j]
            p2 = buf[base + j:base + j + c]
            q2 = buf[base - j - 1:base - j - 1 + c]
            p3 = buf[base + j + 1:base + j + 1 + c]
            q3 = buf[base - j - 2:base - j - 2 + c]
            if j == 1:
                for k in range(c):
                    a[k] = (g1 * (p1[k] + q1[k]) + g2 * (p2[k] + q2[k])) + g3 * (p3[k] + q3[k])
            else:
                for k in range(c):
                    a[k] += (g1 * (p1[k] + q1[k]) + g2 * (p2[k] + q2[k])) + g3 * (p3[k] + q3[k])
        elif r == 2:
            g2 = p[2 + j]
            p2 = buf[base + j:base + j + c]
            q2 = buf[base - j - 1:base - j - 1 + c]
            if j == 1:
                for k in range(c):
                    a[k] = g1 * (p1[k] + q1[k]) + g2 * (p2[k] + q2[k])
            else:
                for k in range(c):
                    a[k] += g1 * (p1[k] + q1[k]) + g2 * (p2[k] + q2[k])
        else:
            if j == 1:
                for k in range(c):
                    a[k] = g1 * (p1[k] + q1[k])
            else:
                for k in range(c):
                    a[k] += g1 * (p1[k] + q1[k])
        j += r


@kernel
def _shift(buf, c, keep):
    """Move the last ``keep`` samples of ``buf[:c + keep]`` to the front."""
    for i in range(keep):
        buf[i] = buf[c + i]


@kernel
def _iir_section(coeffs, state, off, chans, cap, n, kb0, c, srcs_down):
    """Run the allpass sections of one IIR stage for all channels over ``c`` samples.

    Chains are (channel, branch); branch inputs are the stage's input lines (``I`` for
    both branches going up; ``E`` and the delayed ``O`` going down).  Results end in the
    chains' ``W`` lines at ``[1 : 1 + c]``.  Section ``y[i] = (a u[i] + u[i-1]) -
    a y[i-1]``: the bracket is computed in a vectorised pass, the recursion for two
    consecutive sections of up to four chains runs in one loop (eight independent
    dependency chains).  The float operations per sample are the same whatever the
    grouping, so results are exact and block-size invariant.
    """
    nch = 2 * chans
    if srcs_down:
        in_sz = chans * (1 + cap) + chans * (2 + cap)
    else:
        in_sz = chans * (1 + cap)
    w0 = off + in_sz
    t0 = w0 + nch * (1 + cap)
    y0 = t0 + nch * cap
    k = 0
    while k < n:
        pair = k + 1 < n
        kl = k + 1 if pair else k  # last section of this step
        # pass 1 (vectorised): T = a u[i] + u[i-1] for section k
        for q in range(nch):
            ch = q >> 1
            b = q & 1
            a = coeffs[kb0 + b * n + k]
            if k == 0:
                if not srcs_down:
                    so = off + ch * (1 + cap)
                elif b == 0:
                    so = off + ch * (1 + cap)
                else:
                    so = off + chans * (1 + cap) + ch * (2 + cap)
            else:
                so = w0 + q * (1 + cap)
            u = state[so:so + c + 1]
            t = state[t0 + q * cap:t0 + q * cap + c]
            for i in range(c):
                t[i] = a * u[i + 1] + u[i]
            # the next step's previous input is this step's last previous output
            state[w0 + q * (1 + cap)] = state[y0 + q * n + kl]
        q = 0
        while q < nch:
            four = q + 4 <= nch
            a0 = coeffs[kb0 + k]
            a1 = coeffs[kb0 + n + k]
            ta = state[t0 + q * cap:t0 + q * cap + c]
            tb = state[t0 + (q + 1) * cap:t0 + (q + 1) * cap + c]
            wa = state[w0 + q * (1 + cap) + 1:w0 + q * (1 + cap) + 1 + c]
            wb = state[w0 + (q + 1) * (1 + cap) + 1:w0 + (q + 1) * (1 + cap) + 1 + c]
            ya = state[y0 + q * n + k]
            yb = state[y0 + (q + 1) * n + k]
            if four:
                tc = state[t0 + (q + 2) * cap:t0 + (q + 2) * cap + c]
                td = state[t0 + (q + 3) * cap:t0 + (q + 3) * cap + c]
                wc = state[w0 + (q + 2) * (1 + cap) + 1:w0 + (q + 2) * (1 + cap) + 1 + c]
                wd = state[w0 + (q + 3) * (1 + cap) + 1:w0 + (q + 3) * (1 + cap) + 1 + c]
                yc = state[y0 + (q + 2) * n + k]
                yd = state[y0 + (q + 3) * n + k]
            if pair:
                b0 = coeffs[kb0 + k + 1]
                b1 = coeffs[kb0 + n + k + 1]
                za = state[y0 + q * n + k + 1]
                zb = state[y0 + (q + 1) * n + k + 1]
                if four:
                    zc = state[y0 + (q + 2) * n + k + 1]
                    zd = state[y0 + (q + 3) * n + k + 1]
                    for i in range(c):
                        na = ta[i] - a0 * ya
                        nb = tb[i] - a1 * yb
                        nc = tc[i] - a0 * yc
                        nd = td[i] - a1 * yd
                        za = (b0 * na + ya) - b0 * za
                        zb = (b1 * nb + yb) - b1 * zb
                        zc = (b0 * nc + yc) - b0 * zc
                        zd = (b1 * nd + yd) - b1 * zd
                        ya = na
                        yb = nb
                        yc = nc
                        yd = nd
                        wa[i] = za
                        wb[i] = zb
                        wc[i] = zc
                        wd[i] = zd
                    state[y0 + (q + 2) * n + k + 1] = zc
                    state[y0 + (q + 3) * n + k + 1] = zd
                else:
                    for i in range(c):
                        na = ta[i] - a0 * ya
                        nb = tb[i] - a1 * yb
                        za = (b0 * na + ya) - b0 * za
                        zb = (b1 * nb + yb) - b1 * zb
                        ya = na
                        yb = nb
                        wa[i] = za
                        wb[i] = zb
                state[y0 + q * n + k + 1] = za
                state[y0 + (q + 1) * n + k + 1] = zb
            else:
                if four:
                    for i in range(c):
                        ya = ta[i] - a0 * ya
                        yb = tb[i] - a1 * yb
                        yc = tc[i] - a0 * yc
                        yd = td[i] - a1 * yd
                        wa[i] = ya
                        wb[i] = yb
                        wc[i] = yc
                        wd[i] = yd
                else:
                    for i in range(c):
                        ya = ta[i] - a0 * ya
                        yb = tb[i] - a1 * yb
                        wa[i] = ya
                        wb[i] = yb
            state[y0 + q * n + k] = ya
            state[y0 + (q + 1) * n + k] = yb
            if four:
                state[y0 + (q + 2) * n + k] = yc
                state[y0 + (q + 3) * n + k] = yd
                q += 4
            else:
                q += 2
        k += 2 if pair else 1


@kernel
def _up_stage(coeffs, state, s, chans, c, last, out, o0):
    """Stage ``s`` up: ``c`` inputs (already in its input lines) -> ``2c`` outputs into
    the next stage's input lines, or into ``out[:, o0:o0 + 2c]`` if ``last``."""
    pa = int(coeffs[_HDR + s])
    m = int(coeffs[pa + 1])
    cap = _pass_frames(coeffs) << s
    if int(coeffs[pa]) == _KIND_IIR:
        off = _stage_offset(coeffs, s, chans, False)
        _iir_section(coeffs, state, off, chans, cap, m, pa + 2, c, False)
        w0 = off + chans * (1 + cap)
        for ch in range(chans):
            wa = state[w0 + 2 * ch * (1 + cap) + 1:w0 + 2 * ch * (1 + cap) + 1 + c]
            wb = state[w0 + (2 * ch + 1) * (1 + cap) + 1:w0 + (2 * ch + 1) * (1 + cap) + 1 + c]
            if last:
                d = out[ch, o0:o0 + 2 * c]
            else:
                nxt, h = _in_line(coeffs, state, s + 1, chans, ch, False, False)
                d = nxt[h:h + 2 * c]
            for i in range(c):
                d[2 * i] = wa[i]
                d[2 * i + 1] = wb[i]
            line, h = _in_line(coeffs, state, s, chans, ch, False, False)
            _shift(line, c, h)
        return
    acc_off = _state_size(coeffs, chans) - PASS_TOP // 2
    acc = state[acc_off:acc_off + PASS_TOP // 2]
    for ch in range(chans):
        line, h = _in_line(coeffs, state, s, chans, ch, False, False)
        # y[2k] = 2 sum_j g_j (x[k-M+j] + x[k-M+1-j]);  y[2k+1] = x[k-M+1], where x is
        # the input delayed by the stage's input delay
        base = h - _input_delay(coeffs, s) - m + 1
        _sym_fir(line, base, p=coeffs[pa:], m=m, c=c, acc=acc)
        dl = line[base:base + c]
        if last:
            d = out[ch, o0:o0 + 2 * c]
        else:
            nxt, hn = _in_line(coeffs, state, s + 1, chans, ch, False, False)
            d = nxt[hn:hn + 2 * c]
        for i in range(c):
            d[2 * i] = 2.0 * acc[i]
            d[2 * i + 1] = dl[i]
        _shift(line, c, h)


@kernel
def _down_stage(coeffs, state, s, chans, c, out, o0):
    """Stage ``s`` down: ``2c`` inputs (in its even/odd lines) -> ``c`` outputs into the
    lower stage's even/odd lines, or into ``out[:, o0:o0 + c]`` if ``s == 0``."""
    pa = int(coeffs[_HDR + s])
    m = int(coeffs[pa + 1])
    cap = _pass_frames(coeffs) << s
    acc_off = _state_size(coeffs, chans) - PASS_TOP // 2
    acc = state[acc_off:acc_off + PASS_TOP // 2]
    iir = int(coeffs[pa]) == _KIND_IIR
    if iir:
        off = _stage_offset(coeffs, s, chans, True)
        _iir_section(coeffs, state, off, chans, cap, m, pa + 2, c, True)
        w0 = off + chans * (1 + cap) + chans * (2 + cap)
    for ch in range(chans):
        el, he = _in_line(coeffs, state, s, chans, ch, True, False)
        ol, ho = _in_line(coeffs, state, s, chans, ch, True, True)
        if iir:
            # w[k] = (A0{v[2k]} + A1{v[2k-1]}) / 2
            wa = state[w0 + 2 * ch * (1 + cap) + 1:w0 + 2 * ch * (1 + cap) + 1 + c]
            wb = state[w0 + (2 * ch + 1) * (1 + cap) + 1:w0 + (2 * ch + 1) * (1 + cap) + 1 + c]
            for i in range(c):
                acc[i] = 0.5 * (wa[i] + wb[i])
        else:
            # w[k] = sum_j g_j (e[k-M+j] + e[k-M+1-j]) + o[k-M] / 2
            _sym_fir(el, he - m + 1, coeffs[pa:], m, c, acc)
            od = ol[:c]  # o[k - M] = ol[ho + i - M] = ol[i]
            for i in range(c):
                acc[i] += 0.5 * od[i]
        if s == 0:
            d = out[ch, o0:o0 + c]
            for i in range(c):
                d[i] = acc[i]
        else:
            ne, hne = _in_line(coeffs, state, s - 1, chans, ch, True, False)
            no, hno = _in_line(coeffs, state, s - 1, chans, ch, True, True)
            de = ne[hne:hne + c // 2]
            do = no[hno:hno + c // 2]
            for i in range(c // 2):
                de[i] = acc[2 * i]
                do[i] = acc[2 * i + 1]
        _shift(el, c, he)
        _shift(ol, c, ho)


# --------------------------------------------------------------------------------------
# Kernels: full cascade
# --------------------------------------------------------------------------------------


@kernel
def _pad(coeffs, state, off, y, n):
    """Pad delay (ring buffer) + optional Thiran allpass, in place on ``y[:n]``."""
    d = int(coeffs[1])
    use_ap = coeffs[3] != 0.0
    a = coeffs[2]
    chans = y.shape[0]
    per = d + 3
    for ch in range(chans):
        so = off + ch * per
        if d > 0:
            pos = int(state[so])
            ring = state[so + 1:so + 1 + d]
            i = 0
            while i < n:
                # Swap a contiguous run with the ring (vectorised), up to the ring's end.
                run = min(n - i, d - pos)
                for k in range(run):
                    t = y[ch, i + k]
                    y[ch, i + k] = ring[pos + k]
                    ring[pos + k] = t
                i += run
                pos += run
                if pos == d:
                    pos = 0
            state[so] = float(pos)
        if use_ap:
            x1 = state[so + 1 + d]
            y1 = state[so + 2 + d]
            for i in range(n):
                u = y[ch, i]
                v = a * (u - y1) + x1
                x1 = u
                y1 = v
                y[ch, i] = v
            state[so + 1 + d] = x1
            state[so + 2 + d] = y1


@kernel
def oversample_up(coeffs, x, n, state, out):
    """Up-sample ``n`` stream frames by the design's factor ``L`` (all stages + pad).

    Parameters
    ----------
    coeffs : float64 1-D
        ``OversamplerDesign.coeffs``.
    x : float64 array (C, >= n)
        Stream-rate input, planar.
    n : int
        Frames to consume; ``L n`` frames are written to ``out``.
    state : float64 1-D
        The stage state (:func:`state_size` long), shared with :func:`oversample_down`.
    out : float64 array (C, >= L n)
        Top-rate output, planar; must not overlap ``x``.

    Notes
    -----
    Real-time safe: no allocation, no Python objects, bounded work per frame; the
    result does not depend on how the stream is split into calls.
    """
    n_st = int(coeffs[0])
    chans = x.shape[0]
    factor = 1 << n_st
    pf = _pass_frames(coeffs)
    done = 0
    while done < n:
        nb = min(pf, n - done)
        for ch in range(chans):
            line, h = _in_line(coeffs, state, 0, chans, ch, False, False)
            d = line[h:h + nb]
            src = x[ch, done:done + nb]
            for i in range(nb):
                d[i] = src[i]
        c = nb
        for s in range(n_st):
            _up_stage(coeffs, state, s, chans, c, s == n_st - 1, out, done * factor)
            c *= 2
        done += nb
    if int(coeffs[1]) > 0 or coeffs[3] != 0.0:
        _pad(coeffs, state, _stage_offset(coeffs, n_st, chans, True), out, n * factor)


@kernel
def oversample_down(coeffs, x, n, state, out):
    """Down-sample ``L n`` top-rate frames to ``n`` stream frames (all stages).

    Parameters
    ----------
    coeffs : float64 1-D
        ``OversamplerDesign.coeffs``.
    x : float64 array (C, >= L n)
        Top-rate input, planar (not modified).
    n : int
        Stream frames to produce.
    state : float64 1-D
        The stage state, shared with :func:`oversample_up`.
    out : float64 array (C, >= n)
        Stream-rate output, planar; must not overlap ``x``.

    Notes
    -----
    Real-time safe and block-size invariant, see :func:`oversample_up`.
    """
    n_st = int(coeffs[0])
    chans = x.shape[0]
    factor = 1 << n_st
    pf = _pass_frames(coeffs)
    top = n_st - 1
    done = 0
    while done < n:
        nb = min(pf, n - done)
        c = nb << top  # outputs of the top stage = even inputs
        base = done * factor
        for ch in range(chans):
            el, he = _in_line(coeffs, state, top, chans, ch, True, False)
            ol, ho = _in_line(coeffs, state, top, chans, ch, True, True)
            de = el[he:he + c]
            do = ol[ho:ho + c]
            src = x[ch, base:base + 2 * c]
            for i in range(c):
                de[i] = src[2 * i]
                do[i] = src[2 * i + 1]
        for s in range(top, -1, -1):
            _down_stage(coeffs, state, s, chans, c, out, done)
            c >>= 1
        done += nb


# --------------------------------------------------------------------------------------
# The program's ops
# --------------------------------------------------------------------------------------


def pack(design: OversamplerDesign, channels: int, inner_level: int) -> dict:
    """An up-sampler's op for :meth:`rtq.program.ProgramBuilder.add_op`, read back by
    :func:`up_op` and, for the matching down-sampler, :func:`down_op`: ``params`` are
    the design's ``coeffs``, ``args`` the work level the inner chain runs at, the
    coefficient count and the state words (the state both directions share)."""
    words = design.state_size(channels)
    return {"params": design.coeffs, "state_words": words, "args": (inner_level, design.coeffs.size, words)}


@kernel
def up_op(buf, n, params, args, state, work):
    """Up-sample ``buf[:, :n]`` into the work level of the inner chain (:func:`pack`)."""
    oversample_up(params[:args[1]], buf, n, state[:args[2]], work[args[0]])


@kernel
def down_op(buf, n, up_params, up_args, up_state, out):
    """Down-sample ``n`` frames of ``buf`` (the inner chain's level) into ``out``, with the
    parameters and state of the up-sampler op (:func:`pack`) it pairs with."""
    oversample_down(up_params[:up_args[1]], buf, n, up_state[:up_args[2]], out)


# --------------------------------------------------------------------------------------
# Offline convenience wrapper (allocates; not for the real-time path)
# --------------------------------------------------------------------------------------


class Oversampler:
    """Convenience wrapper owning a design and a state (offline use, tests, tools).

    Parameters
    ----------
    design : OversamplerDesign
    channels : int

    Notes
    -----
    ``up`` and ``down`` allocate their outputs; real-time code calls
    :func:`oversample_up` / :func:`oversample_down` on preallocated buffers instead.
    """

    def __init__(self, design: OversamplerDesign, channels: int):
        self.design = design
        self.channels = int(channels)
        self.state = make_state(design, channels)

    def reset(self) -> None:
        reset(self.state)

    def _planar(self, x: np.ndarray) -> np.ndarray:
        """``x`` (frames, C) or (frames,) as a C-contiguous planar (C, frames) copy."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1:
            x = x[:, None]
        if x.shape[1] != self.channels:
            raise ValueError(f"expected {self.channels} channels, got {x.shape[1]}")
        return np.ascontiguousarray(x.T)

    def up(self, x: np.ndarray) -> np.ndarray:
        """Stream rate ``(n, C)`` -> top rate ``(L n, C)``."""
        x = self._planar(x)
        out = np.empty((self.channels, x.shape[1] * self.design.factor))
        oversample_up(self.design.coeffs, x, x.shape[1], self.state, out)
        return out.T

    def down(self, y: np.ndarray) -> np.ndarray:
        """Top rate ``(L n, C)`` -> stream rate ``(n, C)``."""
        y = self._planar(y)
        n, r = divmod(y.shape[1], self.design.factor)
        if r:
            raise ValueError("top-rate frame count must be a multiple of the factor")
        out = np.empty((self.channels, n))
        oversample_down(self.design.coeffs, y, n, self.state, out)
        return out.T

    def round_trip(self, x: np.ndarray) -> np.ndarray:
        """Up then down (identity inner chain)."""
        return self.down(self.up(x))
