"""Oversampling kernels: run a cascade of 2x half-band up/down-samplers.

The design (band edges, quality levels, latency, the ``coeffs`` layout) is
:mod:`rtq.dsp.oversample_design`; this module runs a design's flat ``coeffs`` on
planar audio with an explicit state array, scipy.signal style: :func:`make_state`
allocates (prepare time), :func:`oversample_up` / :func:`oversample_down` never do.

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

FIR sums run sixteen outputs in two eight-lane registers (eight in two four-lane ones
for the rest of a pass) across all the taps, the taps' symmetry exploited (one
multiply per coefficient pair, none for the zero taps or the pure-delay branch), each
input vector loaded once for two tap groups, and go from the registers straight to
where the next stage reads them, merged with the other polyphase branch (interleaved
going up, split into even and odd lines going down); the IIR recursions run eight
independent dependency chains (two sections x two branches x two channels) per loop.
How fast that is, against soxr and scipy: BENCHMARKS.md.

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

Everything depends only on the design and the channel count, never on block size.
"""
from __future__ import annotations

import numpy as np

from ..jit import kernel, njit, register_jitable
from .oversample_design import HEADER, KIND_FIR, KIND_IIR, OversamplerDesign
from .simd import (lane_count, load_like, load_octet, load_quad, splat_like, store_deinterleaved, store_interleaved,
                   store_vector)

__all__ = [
    "PASS_TOP",
    "state_size",
    "make_state",
    "reset",
    "oversample_up",
    "oversample_down",
    "pack",
    "up_op",
    "down_op",
]

#: Top-rate frames per pass through the cascade (sets the state size, not the block
#: size: any block length is processed in passes of ``PASS_TOP / L`` stream frames).
PASS_TOP = 4096


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
    return int(coeffs[HEADER + n_st + 1 + s])


@register_jitable
def _stage_size(coeffs: np.ndarray, s: int, chans: int, down: bool) -> int:
    pa = int(coeffs[HEADER + s])
    cap = _pass_frames(coeffs) << s
    m = int(coeffs[pa + 1])
    if int(coeffs[pa]) == KIND_FIR:
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
    return off + chans * (int(coeffs[1]) + 3)


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
    pa = int(coeffs[HEADER + s])
    cap = _pass_frames(coeffs) << s
    m = int(coeffs[pa + 1])
    off = _stage_offset(coeffs, s, chans, down)
    if int(coeffs[pa]) == KIND_FIR:
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


# What :func:`_sym_fir` does with each FIR sum ``w[k]`` (``aux[k]`` the other phase)
FIR_UP = 0          # dst[2k] = 2 w[k], dst[2k + 1] = aux[k]: an up stage's output, interleaved
FIR_DOWN = 1        # dst[k] = w[k] + aux[k] / 2: a down stage's output
FIR_DOWN_SPLIT = 2  # w[k] + aux[k] / 2 to dst[k / 2] (k even) or dst2[k / 2] (k odd): into the
                    # even and odd lines of the stage below


@njit(inline="always")
def _emit_vectors(emit, dst, dst2, k, w0, w1, x0, x1):
    """Write the FIR sums ``w`` of outputs ``k ..`` (``w0``, then ``w1``: one vector each)
    merged with the other branch's samples ``x`` at the same outputs, as ``emit`` says
    (see :func:`_sym_fir`); ``2 w`` is ``w + w``, the same value."""
    n = lane_count(w0)
    if emit == FIR_UP:
        store_interleaved(dst, 2 * k, w0 + w0, x0)
        store_interleaved(dst, 2 * (k + n), w1 + w1, x1)
        return
    half = splat_like(w0, 0.5)
    v0 = w0 + half * x0
    v1 = w1 + half * x1
    if emit == FIR_DOWN:
        store_vector(dst, k, v0)
        store_vector(dst, k + n, v1)
    else:
        store_deinterleaved(dst, k >> 1, dst2, k >> 1, v0, v1)


@njit(inline="always")
def _taps4(p, j, x0, x1, x2, x3, y0, y1, y2, y3):
    """Folded taps ``j .. j + 3`` on a vector of outputs, ``g_t = p[j + t]``:
    ``(g1 (x0 + y0) + g2 (x1 + y1)) + (g3 (x2 + y2) + g4 (x3 + y3))``."""
    return (((x0 + y0) * splat_like(x0, p[1 + j]) + (x1 + y1) * splat_like(x0, p[2 + j]))
            + ((x2 + y2) * splat_like(x0, p[3 + j]) + (x3 + y3) * splat_like(x0, p[4 + j])))


@njit(inline="always")
def _four(first, buf, at, step):
    """``first`` (the vector at ``buf[at ..]``) and the three vectors of its width at
    ``at + step``, ``at + 2 step`` and ``at + 3 step``."""
    return (first, load_like(buf, at + step, first), load_like(buf, at + 2 * step, first),
            load_like(buf, at + 3 * step, first))


@njit(inline="always")
def _summed(j, total, s):
    """The running sum of a register after tap group ``j`` adds ``s`` (the first group's
    sum is ``s`` itself, not ``0 + s``: the documented order)."""
    return s if j == 1 else total + s


@njit(inline="always")
def _taps_at(buf, p, j, r, pp, qq, like):
    """Folded taps ``j .. j + r - 1`` (``r`` from 1 to 4) on a vector of outputs (of the
    type of ``like``), ``p`` operands ``buf[pp + t ..]``, ``q`` operands ``buf[qq - t ..]``
    (only those used are read), in the documented order: ``g1 x1``, ``g1 x1 + g2 x2``,
    ``(g1 x1 + g2 x2) + g3 x3``, ``(g1 x1 + g2 x2) + (g3 x3 + g4 x4)``."""
    total = (load_like(buf, pp, like) + load_like(buf, qq, like)) * splat_like(like, p[1 + j])
    if r == 1:
        return total
    total = total + (load_like(buf, pp + 1, like) + load_like(buf, qq - 1, like)) * splat_like(like, p[2 + j])
    if r == 2:
        return total
    third = (load_like(buf, pp + 2, like) + load_like(buf, qq - 2, like)) * splat_like(like, p[3 + j])
    if r == 3:
        return total + third
    return total + (third + (load_like(buf, pp + 3, like) + load_like(buf, qq - 3, like)) * splat_like(like, p[4 + j]))


@kernel
def _sym_fir(buf, base, p, m, c, emit, aux, dst, dst2):
    """The half-band FIR sums ``w[k] = sum_j g_j (buf[base + k + j - 1] + buf[base + k - j])``,
    ``k < c``, ``g_j = p[1 + j]``, combined with the other polyphase branch ``aux`` as
    ``emit`` says (:data:`FIR_UP`, :data:`FIR_DOWN`, :data:`FIR_DOWN_SPLIT`) and written
    straight to the stage's output (no intermediate buffer).

    Taps are summed in groups of four (the last group has 1..4 taps),
    ``(g1 x1 + g2 x2) + (g3 x3 + g4 x4)`` with ``x = p + q`` the folded pair, each group
    added to the sum of the earlier ones: a fixed order, so the rounding of every
    output is independent of ``c`` and of how the stream was cut into blocks.

    Outputs are made sixteen at a time in two :data:`~rtq.dsp.simd.float64x8`
    registers that stay in registers over all the taps (nothing stored between groups),
    and each input vector is loaded once for two groups: register 1's ``p`` vectors of
    group ``j`` are register 0's of group ``j + 8``, register 0's ``q`` vectors of group
    ``j`` register 1's of group ``j + 8``, so each group loads eight vectors for its 64
    folded pairs (two groups per loop step, which lets every loaded vector stay in its
    register until it is used the second time).  Eight remaining outputs take one step
    of the same scheme on two :data:`~rtq.dsp.simd.float64x4` (a group's operands handed
    on to the next), the last ``c mod 8`` are summed one by one, all in the same order.
    ``buf`` and ``aux`` must be C-contiguous; ``dst`` and ``dst2`` (``dst`` where unused)
    may have any stride.
    """
    k = 0
    while k + 16 <= c:
        pp = base + k          # register 0's p operands of group j at pp + t, register 1's at pp + 8 + t
        qq = base + k - 1      # q operands at qq - t and qq + 8 - t
        # the vectors the loop reuses, for its first two groups: register 0's p, register 1's q
        pa0, pa1, pa2, pa3 = _four(load_octet(buf, pp), buf, pp, 1)
        pb0, pb1, pb2, pb3 = _four(load_octet(buf, pp + 4), buf, pp + 4, 1)
        qa0, qa1, qa2, qa3 = _four(load_octet(buf, qq + 8), buf, qq + 8, -1)
        qb0, qb1, qb2, qb3 = _four(load_octet(buf, qq + 4), buf, qq + 4, -1)
        a0 = pa0
        a1 = pa0
        j = 1
        while j + 7 <= m:
            pn0, pn1, pn2, pn3 = _four(load_octet(buf, pp + 8), buf, pp + 8, 1)
            qn0, qn1, qn2, qn3 = _four(load_octet(buf, qq), buf, qq, -1)
            s0 = _taps4(p, j, pa0, pa1, pa2, pa3, qn0, qn1, qn2, qn3)
            s1 = _taps4(p, j, pn0, pn1, pn2, pn3, qa0, qa1, qa2, qa3)
            a0 = _summed(j, a0, s0)
            a1 = _summed(j, a1, s1)
            # group j + 4: its new vectors take the registers of the two no longer needed
            pa0, pa1, pa2, pa3 = _four(load_octet(buf, pp + 12), buf, pp + 12, 1)
            qa0, qa1, qa2, qa3 = _four(load_octet(buf, qq - 4), buf, qq - 4, -1)
            a0 = a0 + _taps4(p, j + 4, pb0, pb1, pb2, pb3, qa0, qa1, qa2, qa3)
            a1 = a1 + _taps4(p, j + 4, pa0, pa1, pa2, pa3, qb0, qb1, qb2, qb3)
            # the next step's first group reuses this step's first loads, its second these
            pb0, pb1, pb2, pb3, qb0, qb1, qb2, qb3 = pa0, pa1, pa2, pa3, qa0, qa1, qa2, qa3
            pa0, pa1, pa2, pa3, qa0, qa1, qa2, qa3 = pn0, pn1, pn2, pn3, qn0, qn1, qn2, qn3
            pp += 8
            qq -= 8
            j += 8
        while j <= m:          # the last one to seven taps, operands loaded as needed
            r = min(4, m - j + 1)
            s0 = _taps_at(buf, p, j, r, pp, qq, a0)
            s1 = _taps_at(buf, p, j, r, pp + 8, qq + 8, a0)
            a0 = _summed(j, a0, s0)
            a1 = _summed(j, a1, s1)
            pp += 4
            qq -= 4
            j += 4
        _emit_vectors(emit, dst, dst2, k, a0, a1, load_octet(aux, k), load_octet(aux, k + 8))
        k += 16
    if k + 8 <= c:
        pp = base + k          # p operands of group j at pp + t (+ 4 for the 2nd register)
        qq = base + k - 1      # q operands at qq - t (+ 4)
        # the operands the previous group would hand over: p of register 0, q of register 1
        c0, c1, c2, c3 = _four(load_quad(buf, pp), buf, pp, 1)
        b0, b1, b2, b3 = _four(load_quad(buf, qq + 4), buf, qq + 4, -1)
        a0 = c0
        a1 = c0
        j = 1
        while j + 3 <= m:
            n0, n1, n2, n3 = _four(load_quad(buf, qq), buf, qq, -1)
            e0, e1, e2, e3 = _four(load_quad(buf, pp + 4), buf, pp + 4, 1)
            s0 = _taps4(p, j, c0, c1, c2, c3, n0, n1, n2, n3)
            s1 = _taps4(p, j, e0, e1, e2, e3, b0, b1, b2, b3)
            a0 = _summed(j, a0, s0)
            a1 = _summed(j, a1, s1)
            c0, c1, c2, c3 = e0, e1, e2, e3
            b0, b1, b2, b3 = n0, n1, n2, n3
            pp += 4
            qq -= 4
            j += 4
        if j <= m:             # the last one to three taps
            s0 = _taps_at(buf, p, j, m - j + 1, pp, qq, a0)
            s1 = _taps_at(buf, p, j, m - j + 1, pp + 4, qq + 4, a0)
            a0 = _summed(j, a0, s0)
            a1 = _summed(j, a1, s1)
        _emit_vectors(emit, dst, dst2, k, a0, a1, load_quad(aux, k), load_quad(aux, k + 4))
        k += 8
    for i in range(k, c):
        pi = base + i
        total = 0.0
        j = 1
        while j <= m:
            r = min(4, m - j + 1)
            x = p[1 + j] * (buf[pi + j - 1] + buf[pi - j])
            if r >= 2:
                x = x + p[2 + j] * (buf[pi + j] + buf[pi - j - 1])
                if r == 3:
                    x = x + p[3 + j] * (buf[pi + j + 1] + buf[pi - j - 2])
                elif r == 4:
                    x = x + (p[3 + j] * (buf[pi + j + 1] + buf[pi - j - 2])
                             + p[4 + j] * (buf[pi + j + 2] + buf[pi - j - 3]))
            total = x if j == 1 else total + x
            j += r
        if emit == FIR_UP:
            dst[2 * i] = 2.0 * total
            dst[2 * i + 1] = aux[i]
        else:
            v = total + 0.5 * aux[i]
            if emit == FIR_DOWN:
                dst[i] = v
            elif i & 1 == 0:
                dst[i >> 1] = v
            else:
                dst2[i >> 1] = v


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
    pa = int(coeffs[HEADER + s])
    m = int(coeffs[pa + 1])
    cap = _pass_frames(coeffs) << s
    if int(coeffs[pa]) == KIND_IIR:
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
    for ch in range(chans):
        line, h = _in_line(coeffs, state, s, chans, ch, False, False)
        # y[2k] = 2 sum_j g_j (x[k-M+j] + x[k-M+1-j]);  y[2k+1] = x[k-M+1], where x is
        # the input delayed by the stage's input delay
        base = h - _input_delay(coeffs, s) - m + 1
        if last:
            d = out[ch, o0:o0 + 2 * c]
        else:
            nxt, hn = _in_line(coeffs, state, s + 1, chans, ch, False, False)
            d = nxt[hn:hn + 2 * c]
        _sym_fir(line, base, coeffs[pa:], m, c, FIR_UP, line[base:base + c], d, d)
        _shift(line, c, h)


@kernel
def _down_stage(coeffs, state, s, chans, c, out, o0):
    """Stage ``s`` down: ``2c`` inputs (in its even/odd lines) -> ``c`` outputs into the
    lower stage's even/odd lines, or into ``out[:, o0:o0 + c]`` if ``s == 0``."""
    pa = int(coeffs[HEADER + s])
    m = int(coeffs[pa + 1])
    cap = _pass_frames(coeffs) << s
    iir = int(coeffs[pa]) == KIND_IIR
    if iir:
        off = _stage_offset(coeffs, s, chans, True)
        _iir_section(coeffs, state, off, chans, cap, m, pa + 2, c, True)
        w0 = off + chans * (1 + cap) + chans * (2 + cap)
    for ch in range(chans):
        el, he = _in_line(coeffs, state, s, chans, ch, True, False)
        ol, ho = _in_line(coeffs, state, s, chans, ch, True, True)
        if s == 0:
            d = out[ch, o0:o0 + c]
            d2 = d
        else:
            ne, hne = _in_line(coeffs, state, s - 1, chans, ch, True, False)
            no, hno = _in_line(coeffs, state, s - 1, chans, ch, True, True)
            d = ne[hne:hne + c // 2]
            d2 = no[hno:hno + c // 2]
        if iir:
            # w[k] = (A0{v[2k]} + A1{v[2k-1]}) / 2
            wa = state[w0 + 2 * ch * (1 + cap) + 1:w0 + 2 * ch * (1 + cap) + 1 + c]
            wb = state[w0 + (2 * ch + 1) * (1 + cap) + 1:w0 + (2 * ch + 1) * (1 + cap) + 1 + c]
            if s == 0:
                for i in range(c):
                    d[i] = 0.5 * (wa[i] + wb[i])
            else:
                for i in range(c // 2):
                    d[i] = 0.5 * (wa[2 * i] + wb[2 * i])
                    d2[i] = 0.5 * (wa[2 * i + 1] + wb[2 * i + 1])
        else:
            # w[k] = sum_j g_j (e[k-M+j] + e[k-M+1-j]) + o[k-M] / 2, where
            # o[k - M] = ol[ho + k - M] = ol[k]
            # (each mode a constant: _sym_fir is compiled for it, without the others' branches)
            if s == 0:
                _sym_fir(el, he - m + 1, coeffs[pa:], m, c, FIR_DOWN, ol[:c], d, d2)
            else:
                _sym_fir(el, he - m + 1, coeffs[pa:], m, c, FIR_DOWN_SPLIT, ol[:c], d, d2)
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
    words = state_size(design, channels)
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
