"""Requantization to an N-bit grid: dither, error-feedback noise shaping, saturation.

A pure kernel over one channel of a work buffer plus explicit state arrays, in the
style of scipy.signal (state in, state out).  Per sample, with ``a``/``b`` the
error-feedback coefficients (see :mod:`rtq.dsp.shaping`)::

    o = sum a[j] e[n-j] - sum b[j] o[n-j]        # filtered past errors
    xs = x / step                                # in steps (LSB); exact scaling
    q = clamp(rint((xs + r - off) - o), lo - off, hi - off)
    y = step * (q + off)                         # the code is q + off
    e = clamp(q - ((xs - off) - o), -ebound, +ebound)  # error fed back, dither included

Grid: ``step = 2^(1 - bits)``, ``off = 0`` and codes ``-2^(bits-1) ... 2^(bits-1) - 1``;
``bits = 1`` is the two-level sign quantizer (+-1): ``step = 2``, ``off = 1/2``.
``rint`` rounds half to even, so rounding is symmetric and unbiased.

Why the error is clamped: when the output saturates, ``y - d`` is no longer a
quantization error but the clipped excess, and feeding it back makes a high-gain
shaping loop run away.  The bound is the largest error the quantizer makes when it does
not clip (half a step plus the dither's peak), so unclipped audio is never touched and a
clipped passage leaves the loop with bounded state.  A sigma-delta loop (designed NTF)
that overloads on ``reset_after`` consecutive samples has gone unstable: its filter
state is cleared and the event counted (``reset_after = 0``: never).

Real-time rules: allocates nothing, takes no locks; every array is preallocated by the
stage's ``prepare``.
"""
import numpy as np
from numba import njit

from ..jit import kernel
from .rng import next_bits, next_uniform
from .simd import fused_multiply_add, lane_sums4

DITHER_NONE = 0
DITHER_RPDF = 1
DITHER_TPDF = 2
DITHER_TPDF_HP = 3
DITHER_GAUSSIAN = 4

DITHER_CODES = {"none": DITHER_NONE, "rpdf": DITHER_RPDF, "tpdf": DITHER_TPDF,
                "tpdf-hp": DITHER_TPDF_HP, "gaussian": DITHER_GAUSSIAN}

# Standard deviation of the Gaussian dither in LSB at amplitude 1: 0.5 LSB, the value
# that makes the error's variance practically independent of the signal (Wannamaker).
GAUSSIAN_SIGMA_LSB = 0.5
# Gaussian dither is cut at this many sigma, which bounds the error fed back.
GAUSSIAN_PEAK_SIGMAS = 6.0

# A designed-NTF loop that overloads on this many consecutive samples is unstable and
# gets its state cleared (a stable two-level loop never overloads).
RESET_AFTER_OVERLOADS = 16

# Counter slots of a quantizer (per channel).
COUNT_CLIPS = 0
COUNT_RESETS = 2


def dither_peak_lsb(kind: int, amplitude: float) -> float:
    """Largest magnitude of the dither in LSB."""
    peak = {DITHER_NONE: 0.0, DITHER_RPDF: 0.5, DITHER_TPDF: 1.0, DITHER_TPDF_HP: 1.0,
            DITHER_GAUSSIAN: GAUSSIAN_SIGMA_LSB * GAUSSIAN_PEAK_SIGMAS}[kind]
    return peak * amplitude


_U2 = np.uint64(2)
_U3 = np.uint64(3)
_U4 = np.uint64(4)
_TWO_M32 = 1.0 / 4294967296.0
_LOW32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)


@njit(inline="always")
def _dither(kind, amp, state, prev):
    """One dither value in LSB; returns ``(value, new generator state, new prev)``.

    ``prev`` is tpdf-hp's last uniform draw.  TPDF takes its two uniforms from the two
    halves of one 64-bit draw (32-bit resolution, 2^-32 LSB: far below anything
    audible or measurable).
    """
    if kind == DITHER_TPDF:
        state, z = next_bits(state)
        r = np.float64(z >> _S32) * _TWO_M32 + np.float64(z & _LOW32) * _TWO_M32 - 1.0
        return amp * r, state, prev
    if kind == DITHER_RPDF:
        state, u = next_uniform(state)
        return amp * (u - 0.5), state, prev
    if kind == DITHER_TPDF_HP:
        state, u = next_uniform(state)
        return amp * (u - prev), state, u
    if kind == DITHER_GAUSSIAN:
        # Box-Muller on the two halves of one draw; 1 - u keeps the log finite.
        state, z = next_bits(state)
        u1 = 1.0 - np.float64(z >> _S32) * _TWO_M32
        u2 = np.float64(z & _LOW32) * _TWO_M32
        g = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
        g = min(max(g, -GAUSSIAN_PEAK_SIGMAS), GAUSSIAN_PEAK_SIGMAS)
        return amp * GAUSSIAN_SIGMA_LSB * g, state, prev
    return 0.0, state, prev


# Error-filter taps computed per sample (the newest errors); older taps are summed for
# NEAR_TAPS samples at a time in a loop the compiler vectorises.
NEAR_TAPS = 4
# Extra history slots: the linear history is compacted once per HISTORY_SLACK samples.
HISTORY_SLACK = 64
# tpdf-hp draw, newest error, overload run length, far sums of the current sub-block
_MISC = 3 + NEAR_TAPS
_FAR = 3


def history_length(a_taps: int, b_taps: int) -> int:
    """Samples of error (and feedback) history kept per channel."""
    return max(a_taps, b_taps, NEAR_TAPS) + HISTORY_SLACK


def state_per_channel(a_taps: int, b_taps: int) -> int:
    """fstate words per channel for an error filter with these tap counts."""
    return 2 * history_length(a_taps, b_taps) + _MISC


@kernel
def requantize_block(buf, n, grid, dither_kind, dither_amp, a, b, state, pos, rng, counters):
    """Requantize ``buf[:, :n]`` (all channels) in place.

    Work is in units of the step (LSB): ``xs = x / step`` is exact.  The error filter
    ``o[n] = sum_{j>=1} a[j-1] e[n-j] - sum_{j>=1} b[j-1] o[n-j]`` is split into *far*
    taps (j > NEAR_TAPS), summed for NEAR_TAPS samples at once from errors that are
    already known (four lanes of one vector register, :func:`~rtq.dsp.simd.lane_sums4`),
    and *near* taps
    summed per sample, newest last, so the loop-carried path is one multiply, two adds
    and a rounding.  The summation order is fixed, so the result does not depend on
    block size or sub-block alignment.

    Parameters
    ----------
    buf : float64 array (channels, frames)
    grid : float64[7]
        ``step, 1/step, off, lo, hi, ebound, reset_after`` (lo, hi, ebound in steps).
    a, b : float64 arrays
        Error-feedback coefficients (``a`` zero-padded to at least NEAR_TAPS; ``b``
        may be empty).
    state : float64 array, channels * :func:`state_per_channel` words
        Per channel: linear error history, linear feedback history (each
        :func:`history_length` long, newest at ``pos - 1``), then the tpdf-hp draw, the
        newest error, the overload run length and the current sub-block's far sums.
    pos : int64[2]
        ``pos[0]``: next history slot (the same for every channel); ``pos[1]``: position
        in the current far sub-block.
    rng : uint64 array, one generator per channel
    counters : int64 array (channels, 4)
        ``[c, COUNT_CLIPS]`` saturated samples, ``[c, COUNT_RESETS]`` loop resets.
    """
    nch = buf.shape[0]
    stride = state.shape[0] // nch
    hl = (stride - _MISC) >> 1
    for c in range(nch):
        base = c * stride
        end = _requantize_channel(buf[c, :n], grid, dither_kind, dither_amp, a, b,
                                  state[base:base + hl], state[base + hl:base + 2 * hl],
                                  state[base + 2 * hl:base + stride], pos[0], pos[1],
                                  rng[c:c + 1], counters[c])
    if a.shape[0]:
        pos[0] = end // NEAR_TAPS
        pos[1] = end % NEAR_TAPS


@njit(inline="always")
def _requantize_channel(x, grid, dither_kind, dither_amp, a, b, he, ho, misc, p, sub,
                        rng, counters):
    """One channel of :func:`requantize_block`; returns ``p * NEAR_TAPS + sub`` at the end."""
    step = grid[0]
    inv_step = grid[1]
    off = grid[2]
    # Bounds of the rounded value q; the code is q + off, formed off the feedback path.
    lo = grid[3] - off
    hi = grid[4] - off
    ebound = grid[5]
    reset_after = grid[6]
    na = a.shape[0]
    nb = b.shape[0]
    hl = he.shape[0]
    keep = hl - HISTORY_SLACK
    shaped = na > 0
    gen = rng[0]
    prev = misc[0]
    e1 = misc[1]
    run = misc[2]
    o1 = ho[p - 1] if p > 0 else 0.0   # the newest filter output, kept in a register
    for i in range(x.shape[0]):
        xs = x[i] * inv_step
        xo = xs - off
        r, gen, prev = _dither(dither_kind, dither_amp, gen, prev)
        v = xs + r - off
        if shaped:
            if sub == 0:
                if p == hl:
                    # An element loop, not a slice copy: the ranges overlap for filters
                    # longer than HISTORY_SLACK, where Numba would allocate a temporary.
                    for k in range(keep):
                        he[k] = he[hl - keep + k]
                        ho[k] = ho[hl - keep + k]
                    p = keep
                f0, f1, f2, f3 = lane_sums4(a, he, p, NEAR_TAPS)
                misc[_FAR] = f0
                misc[_FAR + 1] = f1
                misc[_FAR + 2] = f2
                misc[_FAR + 3] = f3
            hp = np.uint64(p)
            rest = misc[_FAR + sub] + a[3] * he[hp - _U4] + a[2] * he[hp - _U3] + a[1] * he[hp - _U2]
            if nb:
                for j in range(nb - 1, 0, -1):
                    rest -= b[j] * ho[hp - np.uint64(j + 1)]
                rest = fused_multiply_add(-b[0], o1, rest)
            # Only these multiply-adds (fused: one rounding, one instruction each), the
            # rounding and the error below depend on the previous sample: the loop's
            # critical path, so the newest terms come last.
            o = fused_multiply_add(a[0], e1, rest)
            ho[p] = o
            o1 = o
            q = np.rint(v - o)
        else:
            q = np.rint(v)
        if q > hi:
            q = hi
            counters[COUNT_CLIPS] += 1
        elif q < lo:
            q = lo
            counters[COUNT_CLIPS] += 1
        x[i] = (q + off) * step
        if shaped:
            e = q - (xo - o)
            if e > ebound or e < -ebound:
                e = ebound if e > 0 else -ebound
                run += 1
                if run == reset_after:
                    he[:] = 0.0
                    ho[:] = 0.0
                    misc[_FAR:] = 0.0
                    e = 0.0
                    o1 = 0.0
                    run = 0
                    counters[COUNT_RESETS] += 1
            else:
                run = 0
            he[p] = e
            e1 = e
            p += 1
            sub = sub + 1 if sub < NEAR_TAPS - 1 else 0
    rng[0] = gen
    misc[0] = prev
    misc[1] = e1
    misc[2] = run
    return p * NEAR_TAPS + sub
