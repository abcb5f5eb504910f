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

Two kernels run that loop.  FIR error filters (the published tables, custom
coefficients) keep a linear history of past errors and sum their older taps a few
samples at a time in a vector register.  Recursive filters (designed NTFs, Gesemann's
tables) are short, high-gain loops that often run oversampled (a 1-bit modulator at
64x): they run in transposed direct form II, whose state (one word per order) stays in
vector registers for the whole block, word k of two channels in the two lanes of
register k, so the two loop-carried chains share every instruction.  The sums
are those of the direct form in another order; a test holds the kernel to the textbook
loop code for code.

Why the error is clamped: when the output saturates, ``y - d`` is no longer a
quantization error but the clipped excess, and feeding it back makes a high-gain
shaping loop run away.  The bound is the largest error the quantizer makes when it does
not clip (half a step plus the dither's peak), so unclipped audio is never touched and a
clipped passage leaves the loop with bounded state.  A sigma-delta loop (designed NTF)
that overloads on ``reset_after`` consecutive samples has gone unstable: its filter
state is cleared and the event counted (``reset_after = 0``: never).

Guards (auto-blank, passthrough of input on the grid, the soft limit; see
:func:`pack`): the same kernels, compiled a second time with a ``guard`` tuple instead of
None (Numba removes the guard's code where it is None, so the unguarded loops are as
they were); a guarded FIR filter runs each channel through the one-channel loop (the
paired loops are compiled only unguarded).  A *quiet* sample passes exactly: after
``blank_after`` samples of exact zeros (auto-blank), or while the last ``pass_run`` samples were on the grid
(passthrough; on from the start).  Dither is drawn all the same, so the noise that
comes back is the noise a chain without the guard would have added; the error filter's
state is cleared, so it comes back from a clean state.  The limit maps input above
``knee`` LSB smoothly into ``(knee, ceiling)`` (``knee + (ceiling - knee) tanh((|x| -
knee) / (ceiling - knee))``: continuous slope, no look-ahead), and counts the samples
that would have clipped without it, with this sample's dither and filter output.

Real-time rules: allocates nothing, takes no locks; every array is preallocated by the
stage's ``prepare``.
"""
import numpy as np
from llvmlite import ir

from ..jit import cgutils, intrinsic, kernel, literal_unroll, njit, types
from .ntf import MAX_ORDER
from .rng import advanced, mix_lanes, next_bits, next_uniform
from .simd import (OCTET, c_float64, clear_lane, first_word, float64x2, float64x8, fma_vector, fused_multiply_add,
                   lane_sums, lanes_of, load_lanes, load_pair, make_pair, pair_count, shuffle, splat,
                   store_lanes, store_octet, store_pair, store_word_pairs, vector_of, word_pairs)

DITHER_NONE = 0
DITHER_RPDF = 1
DITHER_TPDF = 2
DITHER_TPDF_HP = 3
DITHER_GAUSSIAN = 4

DITHER_CODES = {"none": DITHER_NONE, "rpdf": DITHER_RPDF, "tpdf": DITHER_TPDF,
                "tpdf-hp": DITHER_TPDF_HP, "gaussian": DITHER_GAUSSIAN}
DITHER_TYPES = tuple(DITHER_CODES)
"""The dither names, in the order presets, the live controls and the help list them."""

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
def dither_sample(kind, amp, state, prev):
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
# Far taps from this one on are summed a sub-block ahead (see _far_sums).
SPLIT_TAPS = 2 * NEAR_TAPS
_ZEROS4 = (0.0,) * NEAR_TAPS
_ZEROS8 = (0.0,) * (2 * NEAR_TAPS)
# Extra history slots: the linear history is compacted once per HISTORY_SLACK samples.
HISTORY_SLACK = 64
# A pair of channels runs a group of NEAR_TAPS samples at a time from the last _GROUPS
# groups' errors: filters of up to GROUP_TAPS taps (see _requantize_fir_pair).
_GROUPS = 4
GROUP_TAPS = NEAR_TAPS * (_GROUPS + 1)
_FAR_TAPS = GROUP_TAPS - NEAR_TAPS     # taps NEAR_TAPS .. GROUP_TAPS - 1 of a group
# tpdf-hp draw, newest error (FIR), overload run length (recursive), far sums of the
# current sub-block (FIR), TPDF dither of the current sub-block (FIR pairs; scratch: drawn
# again at a block's start, so no state)
_MISC = 3 + 2 * NEAR_TAPS
_FAR = 3
_DITHER = 3 + NEAR_TAPS


# Highest order of a recursive error filter: that of the designed NTFs (Gesemann's
# tables are 4th order).
RECURSIVE_ORDER = MAX_ORDER
# Tuples of 1 .. RECURSIVE_ORDER items: their types carry the word count a recursive
# loop is compiled for (see _requantize_recursive).
_WORD_COUNTS = tuple((0.0,) * k for k in range(1, RECURSIVE_ORDER + 1))


def kernel_coefficients(a, b) -> tuple[np.ndarray, np.ndarray]:
    """An error filter's ``a``, ``b`` laid out for :func:`requantize_block`: FIR ``a``
    zero-padded to at least NEAR_TAPS; recursive ``a`` and ``b`` zero-padded to
    RECURSIVE_ORDER taps each (a higher order is a ValueError)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if not b.size:
        return (np.concatenate([a, np.zeros(max(NEAR_TAPS - a.size, 0))]) if a.size else a), b
    if max(a.size, b.size) > RECURSIVE_ORDER:
        raise ValueError(f"recursive error filters go up to order {RECURSIVE_ORDER}, got {max(a.size, b.size)}")
    return np.pad(a, (0, RECURSIVE_ORDER - a.size)), np.pad(b, (0, RECURSIVE_ORDER - b.size))


def history_length(a_taps: int) -> int:
    """Samples of error history kept per channel by the FIR kernel (at least the
    _GROUPS groups a pair's group loop starts from)."""
    return max(a_taps, NEAR_TAPS * _GROUPS) + HISTORY_SLACK


def state_per_channel(a_taps: int, b_taps: int) -> int:
    """fstate words per channel for an error filter with these tap counts (FIR: room for
    two histories, which a pair of channels keeps interleaved in its first channel's)."""
    if b_taps:
        return RECURSIVE_ORDER + _MISC
    return 2 * history_length(a_taps) + _MISC


def grid_of(bits: int) -> tuple[float, float, float, float]:
    """``(step, off, lo, hi)`` of the ``bits``-bit grid (see the module docstring)."""
    if bits == 1:
        return 2.0, 0.5, -0.5, 0.5
    return 2.0 ** (1 - bits), 0.0, -(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1


# The op's layout.  params: step, 1/step, off, lo, hi, ebound, reset_after (the grid,
# _GRID_WORDS), the dither amplitude, then a, then b; args: len(a), len(b), dither code.
_GRID_WORDS = 7


def pack(bits: int, dither: str, amplitude: float, a, b, reset_after: int, guard=None, channels: int = 0) -> dict:
    """A requantizer's op for :meth:`rtq.program.ProgramBuilder.add_op` (its ``params``,
    ``args``, state and integer state), read back by :func:`requantize_op`: ``bits``,
    ``dither`` (a :data:`DITHER_TYPES` name) at ``amplitude``, error-feedback ``a`` and
    ``b`` (as :func:`kernel_coefficients` lays them out), and ``reset_after`` overloads
    in a row that reset the loop (0: never).

    ``guard`` (read back by :func:`requantize_guarded_op`): ``(blank_after, pass_run,
    knee, ceiling)``, samples of exact zeros before auto-blank (0: off), on-grid samples
    in a row for passthrough (0: off), and the limit's knee and ceiling in LSB (knee
    inf: off); it appends those four words to ``params`` and :data:`GUARD_WORDS` words
    per channel (of ``channels``) to the integer state."""
    step, off, lo, hi = grid_of(bits)
    kind = DITHER_CODES[dither]
    ebound = 0.5 + dither_peak_lsb(kind, amplitude)
    grid = [step, 1.0 / step, off, lo, hi, ebound, reset_after]
    op = {"params": np.concatenate([grid, [amplitude], a, b]),
          "state_per_channel": state_per_channel(a.size, b.size),
          "istate": (history_length(a.size) - HISTORY_SLACK, 0), "args": (a.size, b.size, kind)}
    if guard is not None:
        words = [0] * GUARD_WORDS
        words[G_GRID_RUN] = int(guard[1])     # passthrough starts on: input on the grid from its first sample
        op["params"] = np.concatenate([op["params"], np.asarray(guard, dtype=np.float64)])
        op["istate"] = op["istate"] + tuple(words) * channels
    return op


# A guarded op's integer state per channel (after the two history positions).
GUARD_WORDS = 4
G_ZERO_RUN = 0      # exact zeros in a row
G_GRID_RUN = 1      # samples on the grid in a row
G_QUIET = 2         # the last sample passed exactly
G_LIMITED = 3       # samples the limit kept from clipping


@kernel
def requantize_op(buf, n, params, args, state, pos, rng, counters):
    """Run the op :func:`pack` laid out (``params`` and ``args`` start at its own words)."""
    na = args[0]
    nb = args[1]
    pa = _GRID_WORDS + 1
    requantize_block(buf, n, params[:_GRID_WORDS], args[2], params[_GRID_WORDS], params[pa:pa + na],
                     params[pa + na:pa + na + nb], state, pos[:2], rng, counters, None, pos[:0])


@kernel
def requantize_guarded_op(buf, n, params, args, state, pos, rng, counters):
    """Run the guarded op :func:`pack` laid out with a ``guard``."""
    na = args[0]
    nb = args[1]
    pa = _GRID_WORDS + 1
    g = params[pa + na + nb:pa + na + nb + 4]
    requantize_block(buf, n, params[:_GRID_WORDS], args[2], params[_GRID_WORDS], params[pa:pa + na],
                     params[pa + na:pa + na + nb], state, pos[:2], rng, counters, (g[0], g[1], g[2], g[3]),
                     pos[2:])


@kernel
def requantize_block(buf, n, grid, dither_kind, dither_amp, a, b, state, pos, rng, counters, guard, guard_state):
    """Requantize ``buf[:, :n]`` (all channels) in place.

    Work is in units of the step (LSB): ``xs = x / step`` is exact.  The error filter is
    ``o[n] = sum_{j>=1} a[j-1] e[n-j] - sum_{j>=1} b[j-1] o[n-j]``.  Every sum runs in a
    fixed order, so the result does not depend on block size or sub-block alignment.

    Parameters
    ----------
    buf : float64 array (channels, frames)
    grid : float64[7]
        ``step, 1/step, off, lo, hi, ebound, reset_after`` (lo, hi, ebound in steps).
    a, b : float64 arrays
        Error-feedback coefficients, as :func:`kernel_coefficients` lays them out.  FIR
        (``b`` empty): see :func:`_requantize_fir`; recursive: see
        :func:`_requantize_recursive`.
    state : float64 array, channels * :func:`state_per_channel` words
        Per channel: the filter's memory (FIR: the linear error history,
        :func:`history_length` long, newest at ``pos - 1``; recursive: the transposed
        form's state), then the tpdf-hp draw, the newest error, the overload run length,
        (FIR) the current sub-block's far sums and (FIR pairs, TPDF) scratch for its dither.
    pos : int64[2]
        FIR: ``pos[0]``: next history slot (the same for every channel); ``pos[1]``:
        position in the current far sub-block.
    rng : uint64 array, one generator per channel
    counters : int64 array (channels, 4)
        ``[c, COUNT_CLIPS]`` saturated samples, ``[c, COUNT_RESETS]`` loop resets.
    guard : None, or (blank_after, pass_run, knee, ceiling)
        See :func:`pack`; ``guard_state`` then holds :data:`GUARD_WORDS` per channel.
    """
    nch = buf.shape[0]
    stride = state.shape[0] // nch
    memory = stride - _MISC
    if b.shape[0]:
        _requantize_recursive(buf, n, grid, dither_kind, dither_amp, a, b, state, stride, rng, counters, guard,
                              guard_state)
        return
    if guard is None:   # pruned by type: each variant compiles only its own branch
        end = _requantize_unguarded(buf, n, grid, dither_kind, dither_amp, a, state, stride, pos, rng, counters)
    else:
        end = 0
        for c in range(nch):
            base = c * stride
            end = _requantize_fir(buf[c, :n], grid, dither_kind, dither_amp, a, state[base:base + memory // 2],
                                  state[base + memory:base + stride], pos[0], pos[1], rng[c:c + 1], counters[c],
                                  guard, guard_state[c * GUARD_WORDS:(c + 1) * GUARD_WORDS])
    if a.shape[0]:
        pos[0] = end // NEAR_TAPS
        pos[1] = end % NEAR_TAPS


@njit(inline="always")
def _requantize_unguarded(buf, n, grid, dither_kind, dither_amp, a, state, stride, pos, rng, counters):
    """:func:`requantize_block` without a guard and with an FIR error filter (or none):
    shaped channels two at a time (:func:`_requantize_fir_pair`), an odd one alone;
    unshaped ones in a branch-free loop per dither kind (:func:`_requantize_plain`).
    Returns ``p * NEAR_TAPS + sub`` at the end (shaped)."""
    nch = buf.shape[0]
    memory = stride - _MISC
    if not a.shape[0]:
        for c in range(nch):    # a loop per kind (a constant in each): no branch on it per sample
            args = (buf[c, :n], grid, dither_amp, state[c * stride + memory:(c + 1) * stride], rng[c:c + 1], counters[c])
            if dither_kind == DITHER_NONE:
                _requantize_plain(DITHER_NONE, args)
            elif dither_kind == DITHER_TPDF:
                _requantize_plain(DITHER_TPDF, args)
            elif dither_kind == DITHER_RPDF:
                _requantize_plain(DITHER_RPDF, args)
            elif dither_kind == DITHER_TPDF_HP:
                _requantize_plain(DITHER_TPDF_HP, args)
            else:
                _requantize_plain(DITHER_GAUSSIAN, args)
        return 0
    end = 0
    paired = nch - nch % 2
    g6 = (grid[0], grid[1], grid[2], grid[3], grid[4], grid[5])
    for c in range(0, paired, 2):
        base, bd = c * stride, (c + 1) * stride
        args = (buf[c, :n], buf[c + 1, :n], g6, dither_kind, dither_amp, a, state[base:base + memory],
                state[base + memory:base + stride], state[bd + memory:bd + stride], pos[0], pos[1],
                rng[c:c + 1], rng[c + 1:c + 2], counters[c], counters[c + 1])
        # TPDF (every shipped preset's dither) in a loop of its own, drawn eight lanes at a
        # time; the other kinds share one loop that branches on the kind per draw (a loop
        # per kind saved that branch at the price of a cold compile per kind).
        if dither_kind == DITHER_TPDF:
            end = _requantize_fir_pair(True, args)
        else:
            end = _requantize_fir_pair(False, args)
    for c in range(paired, nch):
        base = c * stride
        end = _requantize_fir(buf[c, :n], grid, dither_kind, dither_amp, a, state[base:base + memory // 2],
                              state[base + memory:base + stride], pos[0], pos[1], rng[c:c + 1], counters[c],
                              None, pos[:0])
    return end


@njit(inline="always")
def _is_quiet(guard, gs, x, xs, off, lo, hi):
    """Whether this sample passes exactly (auto-blank after ``guard[0]`` zeros, or
    passthrough after ``guard[1]`` samples on the grid), counting the runs in ``gs``."""
    quiet = False
    if guard[0] > 0.0:
        gs[G_ZERO_RUN] = gs[G_ZERO_RUN] + 1 if x == 0.0 else 0
        quiet = gs[G_ZERO_RUN] > guard[0]
    if guard[1] > 0.0:
        v = xs - off
        on = v == np.rint(v) and lo <= v <= hi
        gs[G_GRID_RUN] = gs[G_GRID_RUN] + 1 if on else 0
        quiet = quiet or gs[G_GRID_RUN] >= guard[1]
    return quiet


@njit(inline="always")
def soft_limit(xs, knee, ceiling):
    """``xs`` (LSB) above ``knee`` in magnitude mapped smoothly below ``ceiling``."""
    m = abs(xs)
    if m <= knee:
        return xs
    y = knee + (ceiling - knee) * np.tanh((m - knee) / (ceiling - knee))
    return y if xs > 0 else -y


@njit(inline="always")
def _limited(guard, gs, xs, v, lo, hi):
    """The limit (``guard[2]``, ``guard[3]``) applied to ``xs``; ``v`` is what would be
    rounded without it (dither and filter output included): counted if it would clip."""
    if abs(xs) <= guard[2]:
        return xs
    q = np.rint(v)
    if q > hi or q < lo:
        gs[G_LIMITED] += 1
    return soft_limit(xs, guard[2], guard[3])


@njit(inline="always")
def _round_to_grid(v, lo, hi):
    """``v`` rounded half to even and saturated to ``lo .. hi``; returns ``(q, clipped)``.
    Scalars only: an array argument would cost reference counting per sample."""
    q = np.rint(v)
    if q > hi:
        return hi, True
    if q < lo:
        return lo, True
    return q, False


@njit(inline="always")
def _feedback_error(q, xo, o, ebound):
    """The error ``q - (xo - o)`` fed back (dither included), clamped to ``+-ebound`` when
    the output saturated; returns ``(e, overloaded)``."""
    e = q - (xo - o)
    if e > ebound or e < -ebound:
        return (ebound if e > 0 else -ebound), True
    return e, False


@njit(inline="always")
def _grid_steps(grid):
    """``(step, 1/step, off, lo - off, hi - off)``: the last two bound the rounded value q
    (the code is q + off, formed off the feedback path)."""
    off = grid[2]
    return grid[0], grid[1], off, grid[3] - off, grid[4] - off


@njit(inline="always")
def _requantize_plain(dither_kind, args):
    """One channel without noise shaping or guard, as :func:`_requantize_fir` runs it:
    ``args`` are ``x, grid, dither_amp, misc, rng, counters``.  Inlined where
    ``dither_kind`` is a constant and written without branches (the saturation a select,
    the clip count a sum), so the compiler vectorises the loop, the dither generator's
    state an induction variable."""
    x, grid, dither_amp, misc, rng, counters = args
    step, inv_step, off, lo, hi = _grid_steps(grid)
    gen = rng[0]
    prev = misc[0]
    clips = 0
    for i in range(x.shape[0]):
        xs = x[i] * inv_step
        r, gen, prev = dither_sample(dither_kind, dither_amp, gen, prev)
        v = np.rint((xs + r - off) - 0.0)
        clips += (v > hi) + (v < lo)
        q = hi if v > hi else (lo if v < lo else v)
        x[i] = (q + off) * step
    counters[COUNT_CLIPS] += clips
    rng[0] = gen
    misc[0] = prev


@kernel
def _requantize_fir(x, grid, dither_kind, dither_amp, a, he, misc, p, sub, rng, counters, guard, gs):
    """One channel with an FIR error filter; returns ``p * NEAR_TAPS + sub`` at the end.

    The filter is split into *far* taps (j > NEAR_TAPS), summed for NEAR_TAPS samples
    at once from errors that are already known (four lanes of one vector register,
    :func:`~rtq.dsp.simd.lane_sums`), and *near* taps summed per sample, newest last,
    so the loop-carried path is one fused multiply-add, the rounding and a subtraction.
    """
    step, inv_step, off, lo, hi = _grid_steps(grid)
    ebound = grid[5]
    na = a.shape[0]
    hl = he.shape[0]
    keep = hl - HISTORY_SLACK
    shaped = na > 0
    gen = rng[0]
    prev = misc[0]
    e1 = misc[1]
    ahead = _ZEROS4
    fresh = True
    for i in range(x.shape[0]):
        xs = x[i] * inv_step
        r, gen, prev = dither_sample(dither_kind, dither_amp, gen, prev)
        o = 0.0
        if shaped:
            if sub == 0:
                p, ahead = _far_sums(a, he, misc, p, hl, keep, ahead, fresh)
                fresh = False
            hp = np.uint64(p)
            rest = misc[_FAR + sub] + a[3] * he[hp - _U4] + a[2] * he[hp - _U3] + a[1] * he[hp - _U2]
            # Only this multiply-add (fused: one rounding, one instruction), the rounding
            # and the error below depend on the previous sample: the loop's critical
            # path, so the newest term comes last.
            o = fused_multiply_add(a[0], e1, rest)
        if guard is not None:
            if _is_quiet(guard, gs, x[i], xs, off, lo, hi):
                gs[G_QUIET] = 1         # x[i] passes as it is; the filter hears no error
                if shaped:
                    he[p] = 0.0
                    e1 = 0.0
                    p += 1
                    sub = sub + 1 if sub < NEAR_TAPS - 1 else 0
                continue
            if gs[G_QUIET]:             # back from a quiet stretch: the filter starts clean
                gs[G_QUIET] = 0
                if shaped:
                    for k in range(hl):
                        he[k] = 0.0
                    for k in range(NEAR_TAPS):
                        misc[_FAR + k] = 0.0
                    ahead = _ZEROS4     # the next far sums read only the cleared history
                    e1 = 0.0
                    o = 0.0
            xs = _limited(guard, gs, xs, (xs + r - off) - o, lo, hi)
        q, clipped = _round_to_grid((xs + r - off) - o, lo, hi)
        if clipped:
            counters[COUNT_CLIPS] += 1
        x[i] = (q + off) * step
        if shaped:
            e, _ = _feedback_error(q, xs - off, o, ebound)
            he[p] = e
            e1 = e
            p += 1
            sub = sub + 1 if sub < NEAR_TAPS - 1 else 0
    rng[0] = gen
    misc[0] = prev
    misc[1] = e1
    return p * NEAR_TAPS + sub


def _pair_splat(builder, values, k):
    """A pair with both lanes ``values[k]`` (code generation)."""
    value = builder.extract_value(values, k)
    return make_pair(builder, value, value)


def _bounded(builder, v, lo, hi, saturating):
    """``(v saturated to lo .. hi if saturating, else v; the lanes outside)`` (code generation)."""
    above = builder.fcmp_ordered(">", v, hi)
    below = builder.fcmp_ordered("<", v, lo)
    if saturating:
        v = builder.select(above, hi, builder.select(below, lo, v))
    return v, builder.or_(above, below)


def _lane_bits(builder, mask):
    """A two-lane mask as the bits 0 and 1 of an int64 (code generation)."""
    return builder.zext(builder.bitcast(mask, ir.IntType(2)), ir.IntType(64))


def _emit_fir_pair(builder, g, near, errors, far, xr, xo, saturating):
    """One sample of two channels' FIR error feedback (code generation): ``g`` the grid
    tuple, ``near`` the tuple ``(a0, a1, a2, a3)``, ``errors`` the pairs ``[e1, e2, e3,
    e4]``, ``far``, ``xr``, ``xo`` pairs; returns ``(e, q, events)``, ``q`` the rounded value
    (the output is ``(q + off) step``; see :func:`_fir_pair_sample`)."""

    def both(k, values=g):
        return _pair_splat(builder, values, k)

    # rest = far + a3 e4 + a2 e3 + a1 e2, in that order, each product rounded
    rest = far
    for k in range(NEAR_TAPS - 1, 0, -1):
        rest = builder.fadd(rest, builder.fmul(both(k, near), errors[k]))
    o = fma_vector(builder, both(0, near), errors[0], rest)
    off, lo, hi, ebound = (both(k) for k in range(2, 6))
    rint = cgutils.get_or_insert_function(builder.module, ir.FunctionType(o.type, [o.type]), "llvm.rint.v2f64")
    q, clipped = _bounded(builder, builder.call(rint, [builder.fsub(xr, o)]), builder.fsub(lo, off),
                          builder.fsub(hi, off), saturating)
    e, overloaded = _bounded(builder, builder.fsub(q, builder.fsub(xo, o)), builder.fneg(ebound), ebound, saturating)
    events = builder.or_(_lane_bits(builder, clipped),
                         builder.shl(_lane_bits(builder, overloaded), ir.Constant(ir.IntType(64), 2)))
    return e, q, events


def _fir_pair_intrinsic(saturating: bool):
    """:func:`_fir_pair_sample` (``saturating``) or its fast form :func:`_fir_pair_sample_fast`."""

    def fir_pair_sample(typingctx, grid, near, errors, far_c, far_d, xr_c, xr_d, xo_c, xo_d):
        if not (isinstance(grid, types.UniTuple) and isinstance(near, types.UniTuple) and near.count == NEAR_TAPS
                and pair_count(errors) == NEAR_TAPS):
            return None
        f64 = types.float64
        sig = types.Tuple((float64x2, f64, f64, types.int64))(grid, near, errors, f64, f64, f64, f64, f64, f64)

        def codegen(context, builder, signature, args):
            g, near_, errors_, fc, fd, xrc, xrd, xoc, xod = args
            errs = [builder.extract_value(errors_, k) for k in range(NEAR_TAPS)]
            e, q, events = _emit_fir_pair(builder, g, near_, errs, make_pair(builder, fc, fd),
                                          make_pair(builder, xrc, xrd), make_pair(builder, xoc, xod), saturating)
            y = builder.fmul(builder.fadd(q, _pair_splat(builder, g, 2)), _pair_splat(builder, g, 0))
            i32 = ir.IntType(32)
            out = [e, builder.extract_element(y, ir.Constant(i32, 0)), builder.extract_element(y, ir.Constant(i32, 1)),
                   events]
            return context.make_tuple(builder, signature.return_type, out)

        return sig, codegen

    fir_pair_sample.__name__ = "_fir_pair_sample" if saturating else "_fir_pair_sample_fast"
    return intrinsic(fir_pair_sample)


_fir_pair_sample = _fir_pair_intrinsic(True)
_fir_pair_sample.__doc__ = """One sample of two channels' FIR error feedback, one lane a channel.

Lane-wise, as :func:`_requantize_fir` computes it for one channel: ``rest = ((far + a3 e4)
+ a2 e3) + a1 e2``, ``o = fma(a0, e1, rest)``, ``q = rint(xr - o)`` saturated to ``lo -
off .. hi - off``, ``e = q - (xo - o)`` clamped to ``+-ebound``, ``y = (q + off) step``,
with ``xr = (xs + r) - off`` and ``xo = xs - off`` formed per channel beforehand.
``near`` is ``(a0, a1, a2, a3)``, ``errors`` the pairs ``(e1, e2, e3, e4)`` of the newest
errors, which stay in registers from one sample to the next (no store and reload on the
loop-carried path).  Returns ``(e, y_c, y_d, events)``: ``events`` bit 0/1 = channel c/d
saturated, bit 2/3 = its error was clamped."""
_fir_pair_sample_fast = _fir_pair_intrinsic(False)
_fir_pair_sample_fast.__doc__ = """:func:`_fir_pair_sample` without the saturations: the same result
whenever ``events`` is 0; otherwise the sample is run again through :func:`_fir_pair_sample`."""


@njit(inline="always")
def _far_sums(a, he, misc, p, hl, keep, ahead, fresh):
    """At a sub-block's start: compact the history when full, store the sub-block's far sums
    in ``misc``; returns the history position and the next sub-block's sums ``ahead``.

    The far sums are pipelined: the taps from SPLIT_TAPS on of the next sub-block read
    only errors known now, so they are summed here (``ahead``), off the loop-carried
    path, and the next call only adds the taps NEAR_TAPS .. SPLIT_TAPS - 1, continuing the
    same sums in the same order (:func:`~rtq.dsp.simd.lane_sums`): the same bits as one
    sum over all far taps.  At a block's first sub-block (``fresh``) all far taps are
    summed here.
    """
    if p == hl:
        # An element loop, not a slice copy: the ranges overlap for filters longer than
        # HISTORY_SLACK, where Numba would allocate a temporary.
        for k in range(keep):
            he[k] = he[hl - keep + k]
        p = keep
    na = a.shape[0]
    if fresh:
        f0, f1, f2, f3 = lane_sums(a, he, p, NEAR_TAPS, na, _ZEROS4)
    else:
        f0, f1, f2, f3 = lane_sums(a, he, p, NEAR_TAPS, min(SPLIT_TAPS, na), ahead)
    misc[_FAR] = f0
    misc[_FAR + 1] = f1
    misc[_FAR + 2] = f2
    misc[_FAR + 3] = f3
    return p, lane_sums(a, he, p + NEAR_TAPS, SPLIT_TAPS, na, _ZEROS4)


@njit(inline="always")
def _pair_far_sums(a, h2, p, hl, keep, ahead, fresh):
    """:func:`_far_sums` for two channels whose histories are interleaved in ``h2``: eight
    lanes, lane ``2 t + c`` channel ``c``'s sum for sub-block sample ``t`` (the same sums,
    in the same order, as each channel's own).  Returns the history position, the sums,
    and the next sub-block's sums ahead."""
    if p == hl:
        _compact_pair_history(h2, hl, keep)
        p = keep
    na = a.shape[0]
    if fresh:
        far = lane_sums(a, h2, p, NEAR_TAPS, na, _ZEROS8)
    else:
        far = lane_sums(a, h2, p, NEAR_TAPS, min(SPLIT_TAPS, na), ahead)
    return p, far, lane_sums(a, h2, p + NEAR_TAPS, SPLIT_TAPS, na, _ZEROS8)


@njit(inline="always")
def _compact_pair_history(h2, hl, keep):
    """Move the newest ``keep`` errors of both channels to the history's start."""
    for k in range(2 * keep):
        h2[k] = h2[2 * (hl - keep) + k]


@kernel
def _pair_samples(dither_kind, xc, xd, start, stop, grid, dither_amp, near, a, h2, mc, md, p, sub, gens, prevs,
                  errors, counters_c, counters_d):
    """Samples ``start .. stop - 1`` of channels c and d one at a time: a block's first
    samples up to a sub-block's start, its last ones after the last whole group
    (:func:`_requantize_fir_pair`), or all of them for filters longer than GROUP_TAPS.
    The far sums come a sub-block at a time (:func:`_pair_far_sums`, eight lanes, kept in
    the channels' scratch words, so a block may end inside a sub-block), and so does TPDF
    dither (:func:`_tpdf_ahead`, drawn again from the generators rewound to the sub-block's
    start when the first sample is inside one: SplitMix64 is counter-based); the other
    kinds are drawn per sample.  Returns ``(p, sub, gens, prevs, errors)``.  Compiled
    once for all dither kinds (a runtime branch on the kind), not inlined into each
    kind's loop."""
    hl = h2.shape[0] // 2
    keep = hl - HISTORY_SLACK
    gen_c, gen_d = gens
    prev_c, prev_d = prevs
    ahead = _ZEROS8
    fresh = True
    if dither_kind == DITHER_TPDF and sub != 0 and start < stop:     # inside a sub-block: its draws again
        _keep_dither(mc, md, _tpdf_ahead(advanced(gen_c, -sub), advanced(gen_d, -sub), dither_amp))
    for i in range(start, stop):
        xs_c = xc[i] * grid[1]
        xs_d = xd[i] * grid[1]
        if dither_kind == DITHER_TPDF:
            if sub == 0:
                _keep_dither(mc, md, _tpdf_ahead(gen_c, gen_d, dither_amp))
            r_c = mc[_DITHER + sub]
            r_d = md[_DITHER + sub]
            gen_c = advanced(gen_c, 1)
            gen_d = advanced(gen_d, 1)
        else:
            r_c, gen_c, prev_c = dither_sample(dither_kind, dither_amp, gen_c, prev_c)
            r_d, gen_d, prev_d = dither_sample(dither_kind, dither_amp, gen_d, prev_d)
        if sub == 0:
            p, f, ahead = _pair_far_sums(a, h2, p, hl, keep, ahead, fresh)
            fresh = False
            mc[_FAR], md[_FAR], mc[_FAR + 1], md[_FAR + 1] = f[0], f[1], f[2], f[3]
            mc[_FAR + 2], md[_FAR + 2], mc[_FAR + 3], md[_FAR + 3] = f[4], f[5], f[6], f[7]
        e, xc[i], xd[i] = _pair_sample(grid, near, errors, mc[_FAR + sub], md[_FAR + sub], xs_c, xs_d, r_c, r_d,
                                       counters_c, counters_d)
        store_pair(h2, 2 * p, e)
        errors = (e, errors[0], errors[1], errors[2])
        p += 1
        sub = sub + 1 if sub < NEAR_TAPS - 1 else 0
    return p, sub, (gen_c, gen_d), (prev_c, prev_d), errors


@njit(inline="always")
def _pair_sample(grid, near, errors, far_c, far_d, xs_c, xs_d, r_c, r_d, counters_c, counters_d):
    """One sample of both channels (inputs ``xs`` in steps, dither ``r``): the fast form,
    run again with the saturations when it reports an event, which is counted.  Returns
    ``(e, y_c, y_d)``."""
    off = grid[2]
    args = (grid, near, errors, far_c, far_d, xs_c + r_c - off, xs_d + r_d - off, xs_c - off, xs_d - off)
    e, y_c, y_d, events = _fir_pair_sample_fast(*args)
    if events != 0:   # rare: saturation
        e, y_c, y_d, events = _fir_pair_sample(*args)
        counters_c[COUNT_CLIPS] += events & 1
        counters_d[COUNT_CLIPS] += (events >> 1) & 1
    return e, y_c, y_d


@njit(inline="always")
def _requantize_fir_pair(tpdf, args):
    """Channels c and d with an FIR error filter, as :func:`_requantize_fir` runs each, in
    the two lanes of vector registers: their errors, interleaved in one history ``h2``
    (``h2[2 k + 0/1]``: channel c/d), and their loop-carried paths
    (:func:`_fir_pair_sample_fast`); returns ``p * NEAR_TAPS + sub`` at the end.

    Filters of up to GROUP_TAPS taps run whole sub-blocks (groups of NEAR_TAPS samples)
    at a time: the group's far sums (eight lanes, :func:`_group_far_sums`) and the next
    group's early part are formed from the last groups' errors (the newest in registers,
    older ones loaded from the history; no store and reload of the sums), the dither is
    drawn for the whole group (TPDF: :func:`_tpdf_ahead`, eight lanes), the inputs are
    loaded and the outputs stored as vectors, and the group's four samples run
    back to back (:func:`_fir_pair_group_fast`); a group where something saturates runs
    again a sample at a time.  A block's samples before its first sub-block boundary and
    after its last whole group run a sample at a time (:func:`_pair_samples`).  All sums
    in the same order as the one-channel loop.  ``args``: ``xc, xd, grid, dither_kind,
    dither_amp, a, h2, mc, md, p, sub, rng_c, rng_d, counters_c, counters_d``; ``tpdf`` (a
    constant where this is inlined: one group loop for TPDF, one for every other kind)
    says the kind is TPDF."""
    xc, xd, grid, dither_kind, dither_amp, a, h2, mc, md, p, sub, rng_c, rng_d, counters_c, counters_d = args
    near = (a[0], a[1], a[2], a[3])
    n = xc.shape[0]
    gens = (rng_c[0], rng_d[0])
    prevs = (mc[0], md[0])
    errors = (load_pair(h2, 2 * (p - 1)), load_pair(h2, 2 * (p - 2)), load_pair(h2, 2 * (p - 3)),
              load_pair(h2, 2 * (p - 4)))
    i = 0
    if a.shape[0] <= GROUP_TAPS:
        i = min(n, (NEAR_TAPS - sub) % NEAR_TAPS)
        p, sub, gens, prevs, errors = _pair_samples(dither_kind, xc, xd, np.int64(0), i, grid, dither_amp, near, a,
                                                    h2, mc, md, p, sub, gens, prevs, errors, counters_c, counters_d)
        if n - i >= NEAR_TAPS:
            p, gens, prevs, errors = _pair_groups(tpdf, dither_kind, xc, xd, i, n - (n - i) % NEAR_TAPS, grid,
                                                  dither_amp, near, a, h2, p, gens, prevs, errors, counters_c,
                                                  counters_d)
            i = n - (n - i) % NEAR_TAPS
    p, sub, gens, prevs, errors = _pair_samples(dither_kind, xc, xd, i, n, grid, dither_amp, near, a, h2, mc, md, p,
                                                sub, gens, prevs, errors, counters_c, counters_d)
    rng_c[0], rng_d[0] = gens
    mc[0], md[0] = prevs
    mc[1], md[1] = lanes_of(errors[0])
    return p * NEAR_TAPS + sub


@njit(inline="always")
def _pair_groups(tpdf, dither_kind, xc, xd, start, stop, grid, dither_amp, near, a, h2, p, gens, prevs, errors,
                 counters_c, counters_d):
    """Samples ``start .. stop - 1`` (whole groups, the first at a sub-block's start) of
    channels c and d a group at a time (see :func:`_requantize_fir_pair`; ``tpdf``: the
    ``dither_kind`` is TPDF); returns ``(p, gens, prevs, errors)``."""
    hl = h2.shape[0] // 2
    keep = hl - HISTORY_SLACK
    gen_c, gen_d = gens
    prev_c, prev_d = prevs
    taps = _far_taps(a)
    ahead = vector_of(lane_sums(a, h2, p, SPLIT_TAPS, a.shape[0], _ZEROS8))
    for i in range(start, stop, NEAR_TAPS):
        if p == hl:
            _compact_pair_history(h2, hl, keep)
            p = keep
        far, ahead = _group_far_sums(taps, errors, h2, p, ahead)
        if tpdf:
            r = _tpdf_ahead(gen_c, gen_d, dither_amp)
            gen_c = advanced(gen_c, NEAR_TAPS)
            gen_d = advanced(gen_d, NEAR_TAPS)
        else:
            r, gen_c, gen_d, prev_c, prev_d = _group_dither(dither_kind, dither_amp, gen_c, gen_d, prev_c, prev_d)
        new, y, events = _fir_pair_group_fast(grid, near, errors, far, r, xc, xd, i)
        if events == 0:
            _store_group(xc, xd, i, y)
            errors = new
        else:   # rare: saturation
            f = lanes_of(far)
            for t in range(NEAR_TAPS):
                e, xc[i + t], xd[i + t] = _pair_sample(grid, near, errors, f[2 * t], f[2 * t + 1], xc[i + t] * grid[1],
                                                       xd[i + t] * grid[1], r[2 * t], r[2 * t + 1], counters_c,
                                                       counters_d)
                errors = (e, errors[0], errors[1], errors[2])
        store_octet(h2, 2 * p, _group_of(errors))
        p += NEAR_TAPS
    return p, (gen_c, gen_d), (prev_c, prev_d), errors


@njit(inline="always")
def _group_dither(kind, amp, gen_c, gen_d, prev_c, prev_d):
    """A group's dither of a kind other than TPDF, drawn per sample as
    :func:`_pair_samples` draws it: ``(r, gen_c, gen_d, prev_c, prev_d)``, ``r[2 t + c]``
    channel c's for sample t."""
    r0c, gen_c, prev_c = dither_sample(kind, amp, gen_c, prev_c)
    r1c, gen_c, prev_c = dither_sample(kind, amp, gen_c, prev_c)
    r2c, gen_c, prev_c = dither_sample(kind, amp, gen_c, prev_c)
    r3c, gen_c, prev_c = dither_sample(kind, amp, gen_c, prev_c)
    r0d, gen_d, prev_d = dither_sample(kind, amp, gen_d, prev_d)
    r1d, gen_d, prev_d = dither_sample(kind, amp, gen_d, prev_d)
    r2d, gen_d, prev_d = dither_sample(kind, amp, gen_d, prev_d)
    r3d, gen_d, prev_d = dither_sample(kind, amp, gen_d, prev_d)
    return (r0c, r0d, r1c, r1d, r2c, r2d, r3c, r3d), gen_c, gen_d, prev_c, prev_d


def _widened(builder, pair):
    """A pair in lanes 0, 1 of an eight-lane vector (the others undefined) (code generation)."""
    return shuffle(builder, pair, None, [0, 1] + [2] * 6)


def _octet_of(builder, pairs):
    """Four pairs in one eight-lane vector, ``pairs[0]`` in lanes 0, 1 (code generation)."""
    return shuffle(builder, shuffle(builder, pairs[0], pairs[1], range(4)),
                   shuffle(builder, pairs[2], pairs[3], range(4)), range(8))


@intrinsic
def _far_taps(typingctx, a):
    """``(a[4], ..., a[GROUP_TAPS - 1])``, zero past ``a``'s length: the far taps of a
    group (a zero tap leaves the sums, which start at +0, as they were)."""
    if not _c_array(a):
        return None
    count = _FAR_TAPS

    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        length = builder.extract_value(array.shape, 0)
        taps = []
        for k in range(count):
            j = ir.Constant(length.type, NEAR_TAPS + k)
            inside = builder.icmp_signed("<", j, length)
            value = builder.load(builder.gep(array.data, [builder.select(inside, j, ir.Constant(length.type, 0))]))
            taps.append(builder.select(inside, value, ir.Constant(ir.DoubleType(), 0.0)))
        return context.make_tuple(builder, signature.return_type, taps)

    return types.UniTuple(types.float64, count)(a), codegen


@intrinsic
def _group_far_sums(typingctx, taps, errors, h2, p, ahead):
    """A group's far sums and the next group's early part, eight lanes (lane ``2 t + c``:
    channel c, sample t): ``(far, ahead')``.

    ``errors`` are the newest error pairs ``(E[p-1], ..., E[p-4])`` (the group starts at
    history position p), ``h2`` the interleaved history (``E[k]`` at ``2 k``), which holds
    them too.  ``far = ahead + a7 W_8 + a6 W_7 + a5 W_6 + a4 W_5`` and ``ahead' = +0 + a19
    W_16 + ... + a8 W_5`` (the next group's taps 19 .. 8), window ``W_s = E[p-s .. p-s+3]``,
    each product rounded and added in turn: with ``ahead`` this group's ``ahead'``, the
    one-channel loop's sum over taps 19 .. 4 (:func:`~rtq.dsp.simd.lane_sums`), to the bit.
    ``W_8 .. W_16`` are loaded from the history (written a group ago or earlier: no
    shuffles on the vector units, which the group's arithmetic keeps busy); ``W_5 ..
    W_7``, which hold errors of the last group, are formed from ``W_8`` and the newest
    errors a pair at a time, so that each waits only for the errors it holds."""
    if not (isinstance(taps, types.UniTuple) and taps.count == _FAR_TAPS and pair_count(errors) == NEAR_TAPS
            and _c_array(h2) and isinstance(p, types.Integer) and ahead == float64x8):
        return None

    def codegen(context, builder, signature, args):
        taps_, errors_, h2_, p_, ahead_ = args
        e = [builder.extract_value(errors_, k) for k in range(NEAR_TAPS)]
        windows = {}
        for s in range(2 * NEAR_TAPS, GROUP_TAPS - NEAR_TAPS + 1):
            at = builder.mul(builder.sub(p_, ir.Constant(p_.type, s)), ir.Constant(p_.type, 2))
            windows[s] = load_lanes(context, builder, signature.args[2], h2_, at, OCTET)
        for s in (7, 6, 5):     # W_s: W_{s+1} shifted one pair down, E[p-s+3] on top
            windows[s] = shuffle(builder, windows[s + 1], _widened(builder, e[s - 4]), range(2, 10))

        def tap(j):
            return splat(builder, builder.extract_value(taps_, j - NEAR_TAPS), 8)

        ahead_next = ir.Constant(OCTET, [0.0] * 8)
        for j in range(GROUP_TAPS - 1, SPLIT_TAPS - 1, -1):
            ahead_next = builder.fadd(ahead_next, builder.fmul(tap(j), windows[j - 3]))
        far = ahead_
        for j in range(SPLIT_TAPS - 1, NEAR_TAPS - 1, -1):
            far = builder.fadd(far, builder.fmul(tap(j), windows[j + 1]))
        return context.make_tuple(builder, signature.return_type, [far, ahead_next])

    return types.UniTuple(float64x8, 2)(taps, errors, h2, p, ahead), codegen


@intrinsic
def _group_of(typingctx, errors):
    """The pairs of ``errors`` (newest first) in one vector, oldest in lanes 0, 1: the
    group's errors as the history holds them."""
    if pair_count(errors) != NEAR_TAPS:
        return None

    def codegen(context, builder, signature, args):
        return _octet_of(builder, [builder.extract_value(args[0], k) for k in range(NEAR_TAPS)][::-1])

    return float64x8(errors), codegen


def _c_array(array):
    return c_float64(array) and array.ndim == 1


_GROUP_ROW = ir.VectorType(ir.DoubleType(), NEAR_TAPS)     # one channel's samples of a group


@intrinsic
def _fir_pair_group_fast(typingctx, grid, near, errors, far, r, xc, xd, i):
    """One group (NEAR_TAPS samples from ``i``) of channels c and d, as
    :func:`_fir_pair_sample_fast` runs each sample, back to back: inputs ``xc[i ..]``,
    ``xd[i ..]`` (contiguous), dither ``r`` and far sums ``far`` with lane ``2 t + c``
    channel c's for sample t.  ``xs = x / step``, ``(xs + r) - off`` and ``xs - off`` are
    formed for the eight lanes at once.  Returns ``(errors, y, events)``: the newest error
    pairs after the group, the outputs (lanes as ``far``), the samples' events or'ed
    (nonzero: discard the results and run the group with the saturations)."""
    if not (isinstance(grid, types.UniTuple) and isinstance(near, types.UniTuple) and near.count == NEAR_TAPS
            and pair_count(errors) == NEAR_TAPS and far == float64x8 and isinstance(r, types.UniTuple)
            and r.count == 2 * NEAR_TAPS and _c_array(xc) and _c_array(xd) and isinstance(i, types.Integer)):
        return None
    sig = types.Tuple((errors, float64x8, types.int64))(grid, near, errors, far, r, xc, xd, i)

    def codegen(context, builder, signature, args):
        g, near_, errors_, far_, r_ = args[:5]
        x_c, x_d = (load_lanes(context, builder, signature.args[k], args[k], args[7], _GROUP_ROW) for k in (5, 6))
        xs = builder.fmul(shuffle(builder, x_c, x_d, [0, 4, 1, 5, 2, 6, 3, 7]),
                          splat(builder, builder.extract_value(g, 1), 8))
        dither = ir.Constant(OCTET, ir.Undefined)
        for k in range(2 * NEAR_TAPS):
            dither = builder.insert_element(dither, builder.extract_value(r_, k), ir.Constant(ir.IntType(32), k))
        off = splat(builder, builder.extract_value(g, 2), 8)
        xr = builder.fsub(builder.fadd(xs, dither), off)
        xo = builder.fsub(xs, off)
        e = [builder.extract_value(errors_, k) for k in range(NEAR_TAPS)]
        qs = []
        for t in range(NEAR_TAPS):
            lanes = (2 * t, 2 * t + 1)
            new, q, _ = _emit_fir_pair(builder, g, near_, e, shuffle(builder, far_, None, lanes),
                                       shuffle(builder, xr, None, lanes), shuffle(builder, xo, None, lanes), False)
            e = [new] + e[:-1]
            qs.append(q)
        q8, e8 = (_octet_of(builder, v) for v in (qs, e[::-1]))
        y8 = builder.fmul(builder.fadd(q8, off), splat(builder, builder.extract_value(g, 0), 8))
        # Saturation or a clamped error anywhere in the group, as _emit_fir_pair tests each
        # sample (|e| > ebound is e > ebound or e < -ebound; false for NaN, as they are).
        lo, hi, ebound = (splat(builder, builder.extract_value(g, k), 8) for k in (3, 4, 5))
        fabs = cgutils.get_or_insert_function(builder.module, ir.FunctionType(OCTET, [OCTET]), "llvm.fabs.v8f64")
        outside = builder.or_(builder.or_(builder.fcmp_ordered(">", q8, builder.fsub(hi, off)),
                                          builder.fcmp_ordered("<", q8, builder.fsub(lo, off))),
                              builder.fcmp_ordered(">", builder.call(fabs, [e8]), ebound))
        events = builder.zext(builder.bitcast(outside, ir.IntType(8)), ir.IntType(64))
        out = [context.make_tuple(builder, signature.return_type[0], e), y8, events]
        return context.make_tuple(builder, signature.return_type, out)

    return sig, codegen


@intrinsic
def _store_group(typingctx, xc, xd, i, y):
    """The outputs of :func:`_fir_pair_group_fast` to ``xc[i ..]`` and ``xd[i ..]``."""
    if not (_c_array(xc) and _c_array(xd) and isinstance(i, types.Integer) and y == float64x8):
        return None

    def codegen(context, builder, signature, args):
        for k, lanes in ((0, [0, 2, 4, 6]), (1, [1, 3, 5, 7])):
            store_lanes(context, builder, signature.args[k], args[k], args[2], shuffle(builder, args[3], None, lanes))
        return context.get_dummy_value()

    return types.void(xc, xd, i, y), codegen


@njit(inline="always")
def _keep_dither(mc, md, r):
    """A sub-block's dither (:func:`_tpdf_ahead`) into the two channels' scratch words."""
    mc[_DITHER], md[_DITHER], mc[_DITHER + 1], md[_DITHER + 1] = r[0], r[1], r[2], r[3]
    mc[_DITHER + 2], md[_DITHER + 2], mc[_DITHER + 3], md[_DITHER + 3] = r[4], r[5], r[6], r[7]


@intrinsic
def _tpdf_ahead(typingctx, gen_c, gen_d, amp):
    """TPDF dither (:func:`dither_sample`) of the next NEAR_TAPS samples of two channels
    with generator states ``gen_c`` and ``gen_d``, as a tuple, lane ``2 t + c`` channel
    c's for sample ``t``: the same draws (:func:`~rtq.dsp.rng.mix_lanes`) and the same
    operations in the same order, each lane rounded as the scalar code rounds it."""
    if not (gen_c == types.uint64 and gen_d == types.uint64 and amp == types.float64):
        return None
    width = 2 * NEAR_TAPS
    i64s = ir.VectorType(ir.IntType(64), width)
    f64s = ir.VectorType(ir.DoubleType(), width)
    i32 = ir.IntType(32)

    def codegen(context, builder, signature, args):
        c, d, amp_ = args
        states = ir.Constant(i64s, ir.Undefined)
        for k in range(width):
            states = builder.insert_element(states, d if k % 2 else c, ir.Constant(i32, k))
        amps = splat(builder, amp_, width)
        z = mix_lanes(builder, states, [k // 2 + 1 for k in range(width)])
        # high 2^-32 + low 2^-32 - 1 is (high + low - 2^32) 2^-32 exactly (every step of
        # the scalar code is exact): one conversion and one product for its four.
        high = builder.lshr(z, ir.Constant(i64s, [int(_S32)] * width))
        low = builder.and_(z, ir.Constant(i64s, [int(_LOW32)] * width))
        centred = builder.add(builder.add(high, low), ir.Constant(i64s, [-(1 << 32)] * width))
        r = builder.fmul(amps, builder.fmul(builder.sitofp(centred, f64s), ir.Constant(f64s, [_TWO_M32] * width)))
        lanes = [builder.extract_element(r, ir.Constant(i32, k)) for k in range(width)]
        return context.make_tuple(builder, signature.return_type, lanes)

    return types.UniTuple(types.float64, width)(gen_c, gen_d, amp), codegen


def _paired_sample_intrinsic(saturating: bool):
    """:func:`_paired_sample` (``saturating``) or its fast form :func:`_paired_sample_fast`."""

    def paired_sample(typingctx, pairs, a, b, grid, x_c, x_d, r_c, r_d):
        words = pair_count(pairs)
        if words is None or not (pairs == a == b and isinstance(grid, types.UniTuple)):
            return None
        sig = types.Tuple((pairs, types.float64, types.float64, types.int64))(
            pairs, a, b, grid, types.float64, types.float64, types.float64, types.float64)

        def codegen(context, builder, signature, args):
            p_tuple, a_tuple, b_tuple, g, xc, xd, rc, rd = args
            two = ir.VectorType(ir.DoubleType(), 2)
            i32 = ir.IntType(32)

            def pair(u, v):
                return make_pair(builder, u, v)

            def both(k):
                return _pair_splat(builder, g, k)

            def bounded(v, lo, hi):
                return _bounded(builder, v, lo, hi, saturating)

            def lane_bits(mask):
                return _lane_bits(builder, mask)

            step, inv_step, off, lo, hi, ebound = (both(k) for k in range(6))
            s = [builder.extract_value(p_tuple, k) for k in range(words)]
            o = s[0]
            xs = builder.fmul(pair(xc, xd), inv_step)
            rint = cgutils.get_or_insert_function(builder.module, ir.FunctionType(two, [two]), "llvm.rint.v2f64")
            v = builder.fsub(builder.fsub(builder.fadd(xs, pair(rc, rd)), off), o)
            q, clipped = bounded(builder.call(rint, [v]), builder.fsub(lo, off), builder.fsub(hi, off))
            e, overloaded = bounded(builder.fsub(q, builder.fsub(builder.fsub(xs, off), o)),
                                    builder.fneg(ebound), ebound)
            y = builder.fmul(builder.fadd(q, off), step)
            events = builder.or_(lane_bits(clipped), builder.shl(lane_bits(overloaded), ir.Constant(ir.IntType(64), 2)))
            zero = ir.Constant(two, [0.0, 0.0])
            new = []
            for k in range(words):
                minus_b = builder.fneg(builder.extract_value(b_tuple, k))
                new.append(fma_vector(builder, builder.extract_value(a_tuple, k), e,
                                      fma_vector(builder, minus_b, o, s[k + 1] if k + 1 < words else zero)))
            out = [context.make_tuple(builder, pairs, new), builder.extract_element(y, ir.Constant(i32, 0)),
                   builder.extract_element(y, ir.Constant(i32, 1)), events]
            return context.make_tuple(builder, signature.return_type, out)

        return sig, codegen

    paired_sample.__name__ = "_paired_sample" if saturating else "_paired_sample_fast"
    return intrinsic(paired_sample)


_paired_sample = _paired_sample_intrinsic(True)
_paired_sample.__doc__ = """One sample of two channels' recursive error-feedback loops at once.

The error filter ``o[n] = sum_j a[j] e[n-1-j] - sum_j b[j] o[n-1-j]`` runs in transposed
direct form II: its state ``s`` (RECURSIVE_ORDER words per channel; ``s[0]`` is this
sample's filter output ``o``) steps as ``s'[k] = a[k] e + (s[k+1] - b[k] o)``, each
fused, with ``s[N] = 0`` for ``N`` pairs of words.  Per lane, as :func:`_round_to_grid` and
:func:`_feedback_error` compute it for one channel: ``q = rint((xs + r - off) - o)``
saturated, ``e = q - ((xs - off) - o)`` clamped, ``y = (q + off) step``.

Word k of both channels sits in the two lanes of ``pairs[k]`` (see
:func:`~rtq.dsp.simd.word_pairs`; ``a`` and ``b`` spread the same way), so their two
loop-carried chains share every instruction, and no lane moves: the state's shift is a
renaming of registers: faster than words packed four to a register (whose shift and
broadcasts of ``e`` and ``o`` sit on the loop's path) for orders 1-6; order 7's 21
registers of state and coefficients no longer fit (measured: BENCHMARKS.md).  Returns ``(pairs, y_c, y_d, events)``: ``events`` bit 0/1 =
channel c/d saturated, bit 2/3 = its error was clamped (an overload).  Loop resets are
left to the caller (:func:`~rtq.dsp.simd.clear_lane`).
"""
_paired_sample_fast = _paired_sample_intrinsic(False)
_paired_sample_fast.__doc__ = """:func:`_paired_sample` without the saturation of the output and
of the error: the same result whenever ``events`` is 0 (nothing to saturate), with two
selects fewer on the loop-carried path.  Otherwise its result is to be discarded and the
sample run again through :func:`_paired_sample`."""


@kernel
def _requantize_recursive(buf, n, grid7, kind, amp, a, b, state, stride, rng, counters, guard, guard_state):
    """All channels with a recursive error filter (``a``, ``b``: RECURSIVE_ORDER taps), in
    pairs (:func:`_requantize_pair`); when their number is odd, the last one is paired with
    a copy of itself (same input, state and dither, so the same results; counted once).
    Per channel, ``state`` holds the filter state (RECURSIVE_ORDER words), then the misc
    words (tpdf-hp draw at ``+0``, overload run at ``+2``).

    The loop carries only the state words the filter's order uses: the words above it
    start at zero (prepare and reset zero the state) and stay exactly zero, so leaving
    them out changes no result and saves their two multiply-adds on every sample.  One
    loop is compiled per order.
    """
    grid = (grid7[0], grid7[1], grid7[2], grid7[3], grid7[4], grid7[5], grid7[6])
    order = RECURSIVE_ORDER
    while order > 1 and a[order - 1] == 0.0 and b[order - 1] == 0.0:
        order -= 1
    nch = buf.shape[0]
    for c in range(0, nch, 2):
        d = c + 1 if c + 1 < nch else c
        args = (buf[c, :n], buf[d, :n], state[c * stride:(c + 1) * stride], state[d * stride:(d + 1) * stride],
                rng[c:c + 1], rng[d:d + 1], grid, kind, amp, guard,
                guard_state[c * GUARD_WORDS:(c + 1) * GUARD_WORDS], guard_state[d * GUARD_WORDS:(d + 1) * GUARD_WORDS],
                d == c)
        counts = (0, 0, 0, 0)
        for words in literal_unroll(_WORD_COUNTS):  # one loop compiled per order
            if len(words) == order:
                counts = _requantize_pair(*args, word_pairs(a, a, words), word_pairs(b, b, words))
        clips_c, clips_d, resets_c, resets_d = counts
        counters[c, COUNT_CLIPS] += clips_c
        counters[c, COUNT_RESETS] += resets_c
        if d != c:
            counters[d, COUNT_CLIPS] += clips_d
            counters[d, COUNT_RESETS] += resets_d


@njit(inline="always")
def _guard_pair(guard, gs_c, gs_d, twin, grid, pairs, x_c, x_d, r_c, r_d):
    """The guard before one paired sample: each lane's quiet decision, and its input
    after the limit (``(quiet_c, quiet_d, x_c, x_d)``, inputs in full scale)."""
    step, inv_step, off, lo, hi = grid[0], grid[1], grid[2], grid[3] - grid[2], grid[4] - grid[2]
    xs_c, xs_d = x_c * inv_step, x_d * inv_step
    quiet_c = _is_quiet(guard, gs_c, x_c, xs_c, off, lo, hi)
    quiet_d = quiet_c if twin else _is_quiet(guard, gs_d, x_d, xs_d, off, lo, hi)
    if not quiet_c:
        gs_c[G_QUIET] = 0           # its lane was kept clear while quiet
        x_c = _limited(guard, gs_c, xs_c, (xs_c + r_c - off) - first_word(pairs, 0), lo, hi) * step
    if twin:
        x_d = x_c
    elif not quiet_d:
        gs_d[G_QUIET] = 0
        x_d = _limited(guard, gs_d, xs_d, (xs_d + r_d - off) - first_word(pairs, 1), lo, hi) * step
    return quiet_c, quiet_d, x_c, x_d


@njit(inline="always")
def _quiet_lanes(pairs, xc, xd, i, x_c, x_d, quiet_c, quiet_d):
    """A quiet lane outputs its input exactly and keeps its loop state clear."""
    if quiet_c:
        xc[i] = x_c
        pairs = clear_lane(pairs, 0)
    if quiet_d:
        xd[i] = x_d
        pairs = clear_lane(pairs, 1)
    return pairs


@kernel
def _requantize_pair(xc, xd, sc, sd, rng_c, rng_d, grid, kind, amp, guard, gs_c, gs_d, twin, a_pairs, b_pairs):
    """Channels c and d (``x``, ``state`` and ``rng`` each) through
    :func:`_paired_sample_fast`, both chains in the lanes of the same vectors (as many
    state words as ``a_pairs`` spreads); returns their saturation and loop-reset counts
    ``(clips_c, clips_d, resets_c, resets_d)``.  With a ``guard``, ``gs_c`` and ``gs_d``
    are the channels' guard states (``twin``: d is c itself, guarded once); a quiet
    lane's output is its input and its state is kept clear."""
    reset_after = grid[6]
    pairs = word_pairs(sc, sd, a_pairs)
    gen_c, prev_c, run_c = rng_c[0], sc[RECURSIVE_ORDER], sc[RECURSIVE_ORDER + 2]
    gen_d, prev_d, run_d = rng_d[0], sd[RECURSIVE_ORDER], sd[RECURSIVE_ORDER + 2]
    clips_c = clips_d = resets_c = resets_d = 0
    for i in range(xc.shape[0]):
        r_c, gen_c, prev_c = dither_sample(kind, amp, gen_c, prev_c)
        r_d, gen_d, prev_d = dither_sample(kind, amp, gen_d, prev_d)
        x_c, x_d = xc[i], xd[i]
        if guard is not None:
            quiet_c, quiet_d, x_c, x_d = _guard_pair(guard, gs_c, gs_d, twin, grid, pairs, x_c, x_d, r_c, r_d)
        fast, y, z, events = _paired_sample_fast(pairs, a_pairs, b_pairs, grid, x_c, x_d, r_c, r_d)
        if guard is not None:
            events &= (0 if quiet_c else 5) | (0 if quiet_d else 10)    # a quiet lane's events do not count
        if events == 0:
            pairs = fast
            xc[i] = y
            xd[i] = z
            run_c = run_d = 0.0
            if guard is not None:
                pairs = _quiet_lanes(pairs, xc, xd, i, x_c, x_d, quiet_c, quiet_d)
            continue
        # Rare: saturation, overloads, loop resets.
        pairs, xc[i], xd[i], events = _paired_sample(pairs, a_pairs, b_pairs, grid, x_c, x_d, r_c, r_d)
        clips_c += events & 1
        clips_d += (events >> 1) & 1
        run_c = run_c + 1.0 if events & 4 else 0.0
        run_d = run_d + 1.0 if events & 8 else 0.0
        if events & 4 and run_c == reset_after:
            pairs = clear_lane(pairs, 0)
            run_c = 0.0
            resets_c += 1
        if events & 8 and run_d == reset_after:
            pairs = clear_lane(pairs, 1)
            run_d = 0.0
            resets_d += 1
        if guard is not None:
            pairs = _quiet_lanes(pairs, xc, xd, i, x_c, x_d, quiet_c, quiet_d)
    store_word_pairs(sc, sd, pairs)
    rng_d[0], sd[RECURSIVE_ORDER], sd[RECURSIVE_ORDER + 2] = gen_d, prev_d, run_d
    rng_c[0], sc[RECURSIVE_ORDER], sc[RECURSIVE_ORDER + 2] = gen_c, prev_c, run_c
    return clips_c, clips_d, resets_c, resets_d
