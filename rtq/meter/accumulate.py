"""The error meter's per-sample work, compiled: one pass over a chunk of ``(x, y)``.

:class:`~rtq.meter.measure.ErrorMeter` keeps its sums in two packed arrays of rows,
``fsums`` (float64) and ``counts`` (int64), each ``(rows, channels, width)``: row 0 the
total of the closed blocks, rows 1.. a ring of the last blocks (the current one and the
momentary window's).  :func:`accumulate_entry` adds a chunk sample by sample, in stream
order (so the sums do not depend on how the stream is cut into chunks), closes a block
every ``hop`` frames (its row added into row 0, the next ring row cleared) and writes the
error ``e = y - x`` and ``x`` channel by channel for the spectrum.  The column layouts are the ``F_*`` and ``I_*``
names below.

A C entry point (:class:`~rtq.native.Entry`): a render's report links the stored machine
code instead of starting Numba.
"""
import math

import numpy as np

from ..jit import address_as_void_pointer, carray, float_bits, kernel
from ..native import Entry

BANDS = 16          # noise-modulation bands (measure.BAND_EDGES_DBFS)
HIST_WIDTH = 66     # histogram bins, under and over included (measure.HIST_*)

# fsums columns
F_SUM_E = 0
F_SUM_E2 = 1
F_SUM_X2 = 2
F_PEAK = 3          # a maximum, not a sum
F_BAND_E2 = 4
F_GRAM = F_BAND_E2 + BANDS   # x x, x dx, x, x e, dx dx, dx, dx e, 1, e, e e (frames with a previous x)
F_WIDTH = F_GRAM + 10

# counts columns: the counts a caller adds (measure.COUNTS order) first
I_CLIPS = 0
I_NONFINITE = 1
I_OFF_GRID = 4
I_BITS_ONE = 5      # OR-ed, not summed
I_BITS_ZERO = 6     # OR-ed, not summed
I_BAND_N = 7
I_HIST = I_BAND_N + BANDS
I_WIDTH = I_HIST + HIST_WIDTH

# grid words: step (0: no grid), 1 / step, offset, lowest and highest code, code mask,
# then the 2048 band tables (see band_tables)
G_STEP, G_INV, G_OFFSET, G_LO, G_HI, G_MASK = range(6)
G_TABLES = 8


def band_tables(thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per binary exponent ``E`` of ``|x|`` (float64's 11 bits): the band of ``2^(E -
    1023)`` (how many ``thresholds`` are <= it) and the one threshold inside
    ``[2^(E-1023), 2^(E-1022))`` (+inf if none), so that the band of ``a`` is
    ``base[E] + (a >= next[E])``.  Needs thresholds more than an octave apart."""
    exponents = np.arange(2047)              # 2047: inf and NaN, never measured
    low = np.ldexp(1.0, np.maximum(exponents, 1) - 1023)
    low[0] = 0.0                              # zero and subnormals
    high = np.append(low[1:], np.inf)         # the next octave's start
    base = np.zeros(2048, dtype=np.int64)
    base[:2047] = np.searchsorted(thresholds, low, side="right")
    nxt = np.full(2048, np.inf)
    candidate = thresholds[np.minimum(base[:2047], len(thresholds) - 1)]
    within = np.zeros(2048, dtype=bool)
    within[:2047] = (base[:2047] < len(thresholds)) & (candidate < high)
    nxt[within] = candidate[within[:2047]]
    return base.astype(np.float64), nxt


@kernel
def _close_block(fsums, counts, state, c0, c1):
    """Add the current ring row of channels ``c0 .. c1 - 1`` into row 0, move to the
    next ring row and clear it (for those channels)."""
    cur = state[1]
    for c in range(c0, c1):
        for k in range(F_WIDTH):
            if k == F_PEAK:
                fsums[0, c, k] = max(fsums[0, c, k], fsums[cur, c, k])
            else:
                fsums[0, c, k] += fsums[cur, c, k]
        for k in range(I_WIDTH):
            if k == I_BITS_ONE or k == I_BITS_ZERO:
                counts[0, c, k] |= counts[cur, c, k]
            else:
                counts[0, c, k] += counts[cur, c, k]
    cur = cur + 1 if cur + 1 < fsums.shape[0] else 1
    fsums[cur, c0:c1] = 0.0
    counts[cur, c0:c1] = 0
    state[0] = 0
    state[1] = cur
    state[2] += 1


@kernel
def accumulate(x, y, ex, grid, last, fsums, counts, hop, state, c0, c1):
    """Add the frames of ``x``, ``y`` (frames, channels) of channels ``c0 .. c1 - 1`` to
    the current ring row, closing a block every ``hop`` frames; write ``y - x`` and
    ``x`` into ``ex`` (channels, 2, frames).  Channels are independent: calls for
    disjoint channel ranges (each with its own copy of ``state``) may run side by side
    and sum exactly as one call for all.  A frame where ``x`` or ``y`` is not finite counts as non-finite and as
    ``x = y = 0``.  ``last[c]`` is the previous
    ``x`` (NaN before the first).  ``state``: frames in the current block, its row,
    blocks closed.  Returns the non-finite frames seen."""
    frames, channels = x.shape
    step = grid[G_STEP]
    inv = grid[G_INV]
    offset = grid[G_OFFSET]
    lo = grid[G_LO]
    hi = grid[G_HI]
    mask = np.int64(grid[G_MASK])
    base = grid[G_TABLES:G_TABLES + 2048]
    nxt = grid[G_TABLES + 2048:G_TABLES + 4096]
    bad_total = 0
    start = 0
    while start < frames:
        stop = min(frames, start + hop - state[0])
        cur = state[1]
        for c in range(c0, c1):
            f = fsums[cur, c]
            n = counts[cur, c]
            s_e = f[F_SUM_E]
            s_e2 = f[F_SUM_E2]
            s_x2 = f[F_SUM_X2]
            peak = f[F_PEAK]
            g0, g1, g2, g3, g4 = f[F_GRAM], f[F_GRAM + 1], f[F_GRAM + 2], f[F_GRAM + 3], f[F_GRAM + 4]
            g5, g6, g7, g8, g9 = f[F_GRAM + 5], f[F_GRAM + 6], f[F_GRAM + 7], f[F_GRAM + 8], f[F_GRAM + 9]
            bad = 0
            off_grid = 0
            ones = n[I_BITS_ONE]
            zeros = n[I_BITS_ZERO]
            prev = last[c]
            for t in range(start, stop):
                xv = x[t, c]
                yv = y[t, c]
                if not (math.isfinite(xv) and math.isfinite(yv)):
                    bad += 1
                    xv = 0.0
                    yv = 0.0
                ev = yv - xv
                ex[c, 0, t] = ev
                ex[c, 1, t] = xv
                e2 = ev * ev
                s_e += ev
                s_e2 += e2
                s_x2 += xv * xv
                peak = max(peak, abs(ev))
                a = abs(xv)
                exponent = float_bits(a) >> np.uint64(52)
                band = np.int64(base[exponent]) + (a >= nxt[exponent])
                if band > 0:
                    band = min(band, BANDS)
                    f[F_BAND_E2 + band - 1] += e2
                    n[I_BAND_N + band - 1] += 1
                if step != 0.0:
                    pos = min(max(np.floor(ev * inv * 8.0), -HIST_WIDTH // 2), HIST_WIDTH // 2 - 1)
                    n[I_HIST + np.int64(pos) + HIST_WIDTH // 2] += 1
                    v = yv * inv - offset
                    code = np.rint(v)
                    off_grid += abs(v - code) > 1e-6
                    word = np.int64(min(max(code, lo), hi))
                    ones |= word & mask
                    zeros |= ~word & mask
                if prev == prev:     # not NaN: a previous x
                    dx = xv - prev
                    g0 += xv * xv
                    g1 += xv * dx
                    g2 += xv
                    g3 += xv * ev
                    g4 += dx * dx
                    g5 += dx
                    g6 += dx * ev
                    g7 += 1.0
                    g8 += ev
                    g9 += e2
                prev = xv
            last[c] = prev
            f[F_SUM_E], f[F_SUM_E2], f[F_SUM_X2], f[F_PEAK] = s_e, s_e2, s_x2, peak
            f[F_GRAM], f[F_GRAM + 1], f[F_GRAM + 2], f[F_GRAM + 3], f[F_GRAM + 4] = g0, g1, g2, g3, g4
            f[F_GRAM + 5], f[F_GRAM + 6], f[F_GRAM + 7], f[F_GRAM + 8], f[F_GRAM + 9] = g5, g6, g7, g8, g9
            n[I_NONFINITE] += bad
            n[I_OFF_GRID] += off_grid
            n[I_BITS_ONE] = ones
            n[I_BITS_ZERO] = zeros
            bad_total += bad
        state[0] += stop - start
        if state[0] == hop:
            _close_block(fsums, counts, state, c0, c1)
        start = stop
    return bad_total


@Entry(f"int64({', '.join(['int64'] * 17)})")
def accumulate_entry(x_address, y_address, frames, channels, ex_address, ex_capacity, ex_offset, grid_address,
                     grid_words, last_address, fsums_address, counts_address, rows, hop, state_address,
                     first_channel, end_channel):
    """C entry point of :func:`accumulate` (channels ``first_channel .. end_channel -
    1``): every array C-contiguous at its address:
    ``x``, ``y`` float64 (frames, channels); ``ex`` float64 (channels, 2, ex_capacity), of
    which frames ``ex_offset ..`` are written; ``grid`` float64 (grid_words,); ``last``
    float64 (channels,); ``fsums`` float64 and ``counts`` int64 (rows, channels, width);
    ``state`` int64 (3,)."""
    shape = (frames, channels)
    ex = carray(address_as_void_pointer(ex_address), (channels, 2, ex_capacity), np.float64)
    return accumulate(carray(address_as_void_pointer(x_address), shape, np.float64),
                      carray(address_as_void_pointer(y_address), shape, np.float64),
                      ex[:, :, ex_offset:ex_offset + frames],
                      carray(address_as_void_pointer(grid_address), (grid_words,), np.float64),
                      carray(address_as_void_pointer(last_address), (channels,), np.float64),
                      carray(address_as_void_pointer(fsums_address), (rows, channels, F_WIDTH), np.float64),
                      carray(address_as_void_pointer(counts_address), (rows, channels, I_WIDTH), np.int64),
                      hop, carray(address_as_void_pointer(state_address), (3,), np.int64),
                      first_channel, end_channel)
