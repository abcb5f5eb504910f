"""The compiled chain runner: a whole chain as one flat program, run by one Numba call.

A prepared chain is a tuple of preallocated arrays (a :class:`Program`)::

    meta      int64[8]           channels, max_block, n_ops
    ops       int64[n_ops, 16]   one row per operation (layout: the OP_* / COL_* names)
    fparams   float64[...]       coefficients and constants, sliced by each row
    fstate    float64[...]       filter state (per channel, sliced by each row)
    istate    int64[...]         integer state such as ring positions
    rng       uint64[...]        dither generator states
    counters  int64[n_ops, channels, 4]   clips, non-finite samples, loop resets, overloads
    work      float64[levels, channels, frames]   planar work buffers, one per rate level
    taps      float64[slots, channels, ring]      meter taps: rings of signal copies

:func:`run_program` interprets it: no Python per stage, no allocation, no locks, no JIT
after warm-up (``cache=True``).  The same compiled function serves the offline
renderer, the Python API and the live callback (which calls it from a Numba ``cfunc``),
so every path produces the same samples.  Stages process whole blocks one after another;
each stage is causal with carried state, so any split of the input into blocks gives
bit-identical output.

Meter taps (``OP_TAP``) copy the signal at a point of the chain (a quantizer's input or
output, at the rate it runs at) into a ring; the ring's write counter (frames written
since reset, in ``istate``) is stored after the data, so a reader on another thread can
copy the new frames without locks and detect, by re-reading the counter, whether the
writer lapped it meanwhile (:class:`TapReader`).

Taps at the stream rate always record.  Taps at oversampled rates (64 times the data, a
large share of a light chain's work and of the memory it touches) record while
``meta[META_CAPTURE]`` is not 0: -1 (the default) always; a positive value counts down
the stream frames of a capture window (exactly that many are recorded, however the
stream is cut into blocks), which a meter sets again when it has read the last one
(:meth:`rtq.meter.chain_meter.ChainMeter.poll`); the live engine starts its chains at 0,
recording nothing until a meter asks.  The value is read once per piece, so a
quantizer's input and output taps always record the same frames.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .errors import LimitError
from .jit import address_as_void_pointer, carray, kernel, njit
from .native import Entry

from .dsp.blockcompand import blockcompand_op
from .dsp.g711 import compand_op
from .dsp.gain import gain_op
from .dsp.levels import levels_op
from .dsp.lowpass import lowpass_op
from .dsp.overload import overload_op
from .dsp.oversample import down_op, up_op
from .dsp.requantize import requantize_guarded_op, requantize_op

OP_SANITIZE = 1
OP_GAIN = 2
OP_REQUANTIZE = 3
OP_COMPAND = 4
OP_TAP = 5
OP_OVERSAMPLE_UP = 6
OP_OVERSAMPLE_DOWN = 7    # args: parent level, row of the matching OP_OVERSAMPLE_UP
OP_LOWPASS = 8
OP_OVERLOAD = 9           # counts samples above a sigma-delta loop's stable amplitude
OP_LEVELS = 10            # a non-uniform quantizer (Lloyd-Max levels)
OP_BLOCKCOMPAND = 11      # near-instantaneous block companding
OP_REQUANTIZE_GUARDED = 12   # OP_REQUANTIZE with auto-blank, passthrough or the limit (a kernel variant)

OP_WIDTH = 16
COL_OPCODE = 0
COL_LEVEL = 1       # index of the work buffer the op runs on
COL_FACTOR = 2      # frames per stream frame at that level
COL_P_OFF = 3       # fparams offset
COL_S_OFF = 4       # fstate offset (channel c at S_OFF + c * S_STRIDE)
COL_S_STRIDE = 5
COL_I_OFF = 6       # istate offset (words shared by all channels)
COL_R_OFF = 7       # rng offset (one word per channel)
COL_ARG0 = 8        # op-specific integers from here on

META_CHANNELS = 0
META_MAX_BLOCK = 1
META_N_OPS = 2
META_CAPTURE = 3    # stream frames oversampled taps still record; -1: always (see above)
CAPTURE_ALWAYS = -1
COUNTER_WIDTH = 4
COUNT_NONFINITE = 1
MAX_PROGRAM_BYTES = 4 * 2 ** 30
"""The most memory one prepared program may take (its work buffers, meter taps and
state): far above any real chain's (``dsd64-1bit`` in stereo with meter taps at
``rtq render``'s 8192-frame pieces: 144 MiB), low enough that no channel count or block
size asked for can exhaust the machine."""


class Program(NamedTuple):
    meta: np.ndarray
    ops: np.ndarray
    fparams: np.ndarray
    fstate: np.ndarray
    istate: np.ndarray
    rng: np.ndarray
    counters: np.ndarray
    work: np.ndarray
    taps: np.ndarray


@kernel
def _sanitize(buf, n, counters):
    """NaN -> 0, +-Inf -> +-1 (full scale), each counted; keeps them out of filter state.
    ``buf`` is channels x frames (a planar work buffer, or an interleaved block's
    transpose)."""
    for c in range(buf.shape[0]):
        row = buf[c]
        finite = 0
        for i in range(n):      # vectorised: v - v is 0 exactly when v is finite
            finite += row[i] - row[i] == 0.0
        if finite == n:
            continue
        for i in range(n):
            v = buf[c, i]
            if not np.isfinite(v):
                counters[c, COUNT_NONFINITE] += 1
                if np.isnan(v):
                    buf[c, i] = 0.0
                else:
                    buf[c, i] = 1.0 if v > 0 else -1.0


@kernel
def sanitize_input(prog, x, n):
    """Clean ``x[:n]`` ((frames, channels), in place) as ``prog``'s input sanitizer (its
    first op, :data:`OP_SANITIZE`) would, counting into that op's counters: for a caller
    that needs the clean input itself (the live engine's dry path).  The program then
    finds nothing more to replace, so every non-finite sample is counted once, where the
    chain's meter and :meth:`~rtq.processor.Processor.counts` read it."""
    _sanitize(x[:n].T, n, prog[6][0])


@kernel
def _execute(prog, m):
    """Run every op of ``prog`` over ``m`` stream frames held in ``work[0]`` (planar:
    channel-major, so each channel is contiguous for the per-channel kernels)."""
    meta, ops, fp, fs, ist, rng, cnt, work, taps = prog
    nch = meta[META_CHANNELS]
    capture = meta[META_CAPTURE]        # once: every tap of this piece sees the same value
    for k in range(meta[META_N_OPS]):
        op = ops[k]
        code = op[COL_OPCODE]
        buf = work[op[COL_LEVEL]]
        n = m * op[COL_FACTOR]
        p = op[COL_P_OFF]
        s = op[COL_S_OFF]
        s_end = s + nch * op[COL_S_STRIDE]
        i = op[COL_I_OFF]
        r = op[COL_R_OFF]
        if code == OP_SANITIZE:
            _sanitize(buf, n, cnt[k])
        elif code == OP_GAIN:
            gain_op(buf, n, fp[p:])
        elif code == OP_REQUANTIZE:
            requantize_op(buf, n, fp[p:], op[COL_ARG0:], fs[s:s_end], ist[i:], rng[r:r + nch], cnt[k])
        elif code == OP_COMPAND:
            compand_op(buf, n, op[COL_ARG0:], cnt[k])
        elif code == OP_OVERLOAD:
            overload_op(buf, n, fp[p:], cnt[k])
        elif code == OP_LEVELS:
            levels_op(buf, n, fp[p:], op[COL_ARG0:], cnt[k])
        elif code == OP_REQUANTIZE_GUARDED:
            requantize_guarded_op(buf, n, fp[p:], op[COL_ARG0:], fs[s:s_end], ist[i:], rng[r:r + nch], cnt[k])
        elif code == OP_BLOCKCOMPAND:
            blockcompand_op(buf, n, fp[p:], op[COL_ARG0:], fs[s:s_end], ist[i:], rng[r:r + nch], cnt[k])
        elif code == OP_TAP:
            if capture < 0 or op[COL_FACTOR] == 1:
                _tap(buf, n, taps[op[COL_ARG0]], ist[i:i + 1])
            elif capture > 0:   # the window's last frames may end inside this piece
                _tap(buf, min(n, capture * op[COL_FACTOR]), taps[op[COL_ARG0]], ist[i:i + 1])
        elif code == OP_OVERSAMPLE_UP:
            up_op(buf, n, fp[p:], op[COL_ARG0:], fs[s:], work)
        elif code == OP_LOWPASS:
            lowpass_op(buf, n, fp[p:], op[COL_ARG0:], fs[s:s_end], ist[i:i + 1])
        elif code == OP_OVERSAMPLE_DOWN:
            up = ops[op[COL_ARG0 + 1]]
            down_op(buf, m * up[COL_FACTOR], fp[up[COL_P_OFF]:], up[COL_ARG0:], fs[up[COL_S_OFF]:],
                    work[op[COL_ARG0]])
    if capture > 0:     # a meter writes only while it is 0: no update is lost
        meta[META_CAPTURE] = max(capture - m, 0)


@kernel
def _tap(buf, n, ring, written):
    """Append ``buf[:, :n]`` to ``ring`` (channels, size); ``written[0]`` counts frames."""
    size = ring.shape[1]
    w = written[0]
    start = w % size
    # Two contiguous runs (up to the ring's end, then from its start): vectorised
    # copies, not an integer division per sample (taps run at oversampled rates).
    # Element loops: a slice copy may allocate a temporary for overlap.
    first = min(n, size - start)
    for c in range(buf.shape[0]):
        src = buf[c]
        dst = ring[c]
        for t in range(first):
            dst[start + t] = src[t]
        for t in range(first, n):
            dst[t - first] = src[t]
    written[0] = w + n


@kernel
def run_program(prog, x, y):
    """Process ``x`` (frames, channels) into ``y`` (same shape; may be ``x`` itself).

    Any number of frames: the input is taken in pieces of at most ``max_block``.  Input
    and output may be float32 or float64; work is done in float64.
    """
    work = prog[7]
    max_block = prog[0][META_MAX_BLOCK]
    nch = prog[0][META_CHANNELS]
    total = x.shape[0]
    start = 0
    while start < total:
        m = min(max_block, total - start)
        level0 = work[0]
        if _packed_pair(x, nch):
            frames = _packed_rows(x, start, m)
            for t in range(m):
                level0[0, t] = frames[2 * t]
                level0[1, t] = frames[2 * t + 1]
        else:
            for c in range(nch):
                dst = level0[c]
                for t in range(m):
                    dst[t] = x[start + t, c]
        _execute(prog, m)
        if _packed_pair(y, nch):
            frames = _packed_rows(y, start, m)
            for t in range(m):
                frames[2 * t] = level0[0, t]
                frames[2 * t + 1] = level0[1, t]
        else:
            for c in range(nch):
                src = level0[c]
                for t in range(m):
                    y[start + t, c] = src[t]
        start += m


@njit(inline="always")
def _packed_pair(x, nch):
    """Whether ``x`` is a stereo block whose frames are packed (``x[t, 0], x[t, 1],
    x[t + 1, 0], ...`` adjacent in memory): then its copies in and out of the planar work
    buffer run as one loop over both channels that the compiler vectorises, instead of a
    column at a time through the general view's strides."""
    return nch == 2 and x.strides[1] == x.itemsize and x.strides[0] == 2 * x.itemsize


@njit(inline="always")
def _packed_rows(x, start, m):
    """Rows ``start .. start + m - 1`` of a :func:`_packed_pair` block as one flat array."""
    return carray(address_as_void_pointer(x.ctypes.data + start * x.strides[0]), (2 * m,), x.dtype)


PROGRAM_WORDS = 9 * 4
"""Words that locate a program in memory: per array, its address and up to three dimensions."""


def program_words(prog: Program) -> np.ndarray:
    """The :data:`PROGRAM_WORDS` words that locate ``prog`` (see :func:`program_at`).

    Valid while ``prog``'s arrays live; compiled code rebuilds the program from them.
    """
    words = np.zeros(PROGRAM_WORDS, np.int64)
    for k, array in enumerate(prog):
        if not array.flags.c_contiguous:
            raise ValueError("program arrays must be C-contiguous")
        words[4 * k] = array.ctypes.data
        words[4 * k + 1:4 * k + 1 + array.ndim] = array.shape
    return words


@kernel
def program_at(words, base):
    """The program located by ``words[base:base + PROGRAM_WORDS]`` (see :func:`program_words`)."""
    w = words[base:base + PROGRAM_WORDS]
    return Program(
        carray(address_as_void_pointer(w[0]), (w[1],), np.int64),
        carray(address_as_void_pointer(w[4]), (w[5], w[6]), np.int64),
        carray(address_as_void_pointer(w[8]), (w[9],), np.float64),
        carray(address_as_void_pointer(w[12]), (w[13],), np.float64),
        carray(address_as_void_pointer(w[16]), (w[17],), np.int64),
        carray(address_as_void_pointer(w[20]), (w[21],), np.uint64),
        carray(address_as_void_pointer(w[24]), (w[25], w[26], w[27]), np.int64),
        carray(address_as_void_pointer(w[28]), (w[29], w[30], w[31]), np.float64),
        carray(address_as_void_pointer(w[32]), (w[33], w[34], w[35]), np.float64),
    )


@Entry("void(int64, int64, int64, int64, int64, int64)")
def process_in_place(words_address, block_address, frames, width, first, double):
    """C entry point: run the program located at ``words_address`` in place over columns
    ``first ..`` (as many as it has channels) of a C-contiguous (frames, width) block,
    float64 if ``double`` else float32."""
    prog = program_at(carray(address_as_void_pointer(words_address), (PROGRAM_WORDS,), np.int64), 0)
    last = first + prog[0][META_CHANNELS]
    if double:
        block = carray(address_as_void_pointer(block_address), (frames, width), np.float64)[:, first:last]
        run_program(prog, block, block)
    else:
        block32 = carray(address_as_void_pointer(block_address), (frames, width), np.float32)[:, first:last]
        run_program(prog, block32, block32)


class ProgramBuilder:
    """Collects ops and sizes while stages are prepared, then allocates a :class:`Program`.

    Stages call :meth:`add_op` from their ``emit`` method; nothing is allocated per op
    until :meth:`build`, which creates each flat array once.
    """

    def __init__(self, channels: int, max_block: int, first_channel: int = 0):
        self.channels = channels
        self.max_block = max_block
        self.first_channel = first_channel   # stream index of channel 0 (dither streams)
        self.rows: list[np.ndarray] = []
        self.fparams: list[np.ndarray] = []
        self.istate_init: list[int] = []
        self.rng_init: list[int] = []
        self.levels = [1]          # frames-per-stream-frame factor of each level
        self.tap_levels: list[int] = []
        self._fp = 0
        self._fs = 0

    def add_level(self, factor: int) -> int:
        """A new work buffer running at ``factor`` times the stream rate; returns its index."""
        self.levels.append(factor)
        return len(self.levels) - 1

    def add_tap(self, level: int) -> "Tap":
        """A meter tap of the signal at this point of ``level``."""
        tap = Tap(len(self.tap_levels), len(self.istate_init), self.levels[level])
        self.tap_levels.append(level)
        self.add_op(OP_TAP, level, istate=(0,), args=(tap.slot,))
        return tap

    def add_op(self, opcode: int, level: int, *, params=(), state_per_channel=0,
               state_words=0, istate=(), rng_seeds=(), args=()) -> int:
        """Append an op and return its index (the row of its counters).

        State is ``state_per_channel`` words per channel (channel c at ``S_OFF + c *
        S_STRIDE``) plus ``state_words`` laid out by the op itself.
        """
        params = np.asarray(params, dtype=np.float64)
        row = np.zeros(OP_WIDTH, dtype=np.int64)
        row[COL_OPCODE] = opcode
        row[COL_LEVEL] = level
        row[COL_FACTOR] = self.levels[level]
        row[COL_P_OFF] = self._fp
        row[COL_S_OFF] = self._fs
        row[COL_S_STRIDE] = state_per_channel
        row[COL_I_OFF] = len(self.istate_init)
        row[COL_R_OFF] = len(self.rng_init)
        row[COL_ARG0:COL_ARG0 + len(args)] = args
        self.rows.append(row)
        self.fparams.append(params)
        self._fp += params.size
        self._fs += state_per_channel * self.channels + state_words
        self.istate_init.extend(istate)
        self.rng_init.extend(rng_seeds)
        return len(self.rows) - 1

    def build(self) -> tuple[Program, "ProgramInit"]:
        """Allocate the program; also returns its initial integer state (for ``reset``)."""
        n_ops = len(self.rows)
        meta = np.zeros(8, dtype=np.int64)
        meta[META_CHANNELS] = self.channels
        meta[META_MAX_BLOCK] = self.max_block
        meta[META_N_OPS] = n_ops
        meta[META_CAPTURE] = CAPTURE_ALWAYS
        ops = np.stack(self.rows) if self.rows else np.zeros((0, OP_WIDTH), np.int64)
        frames = self.max_block * max(self.levels)
        ring = tap_ring_frames(frames) if self.tap_levels else 1
        words = (len(self.levels) * frames + max(len(self.tap_levels), 1) * ring + n_ops * COUNTER_WIDTH) * self.channels
        if 8 * (words + self._fs) > MAX_PROGRAM_BYTES:
            raise LimitError(
                f"the chain's buffers would take {8 * (words + self._fs) / 2 ** 30:.1f} GiB for {self.channels} "
                f"channel{'s' * (self.channels != 1)} in blocks of {self.max_block} frames (at up to "
                f"{max(self.levels)}x the stream rate{', with meter taps' if self.tap_levels else ''}), above rtq's "
                f"limit of {MAX_PROGRAM_BYTES // 2 ** 30} GiB: use fewer channels or smaller blocks")
        init = ProgramInit(np.array(self.istate_init or [0], dtype=np.int64),
                           np.array(self.rng_init or [0], dtype=np.uint64))
        prog = Program(
            meta=meta,
            ops=np.ascontiguousarray(ops),
            fparams=np.concatenate(self.fparams) if self.fparams else np.zeros(0),
            fstate=np.zeros(max(self._fs, 1)),
            istate=init.istate.copy(),
            rng=init.rng.copy(),
            counters=np.zeros((n_ops, self.channels, COUNTER_WIDTH), dtype=np.int64),
            work=np.zeros((len(self.levels), self.channels, frames)),
            taps=np.zeros((max(len(self.tap_levels), 1), self.channels, ring)),
        )
        return prog, init


def tap_ring_frames(block_frames: int) -> int:
    """Ring size for taps: a power of two holding at least 1/2 s at 48 kHz and 4 blocks."""
    return 1 << max(15, int(np.ceil(np.log2(4 * block_frames))))


class Tap(NamedTuple):
    """Where a tap's ring and write counter live, and its rate factor."""

    slot: int
    written_index: int
    factor: int


class TapReader:
    """Reads the frames a tap has received since the last read (any thread, no locks).

    If the writer lapped the reader (it fell more than a ring behind), the oldest frames
    are lost: :meth:`read` then returns only the newest frames still intact and counts
    the loss in :attr:`dropped`.
    """

    def __init__(self, prog: Program, tap: Tap):
        self.ring = prog.taps[tap.slot]
        self.written = prog.istate[tap.written_index:tap.written_index + 1]
        self.position = int(self.written[0])
        self.dropped = 0

    def skip_to(self, position: int) -> None:
        """Read nothing before ``position`` (at most up to the frames written); the
        frames skipped count as dropped."""
        target = min(position, int(self.written[0]))
        if target > self.position:
            self.dropped += target - self.position
            self.position = target

    def read(self, limit: int | None = None, settled: bool = False, until: int | None = None) -> np.ndarray:
        """New frames as a (frames, channels) float64 array (at most ``limit``: the newest;
        none from position ``until`` on).

        At most the newest half ring: the writer may be filling the next piece meanwhile.
        ``settled``: the writer is known to be stopped (a completed capture window), so
        the whole ring is intact and up to all of it is returned.
        """
        size = self.ring.shape[1]
        written = int(self.written[0])
        if written < self.position:     # the program was reset
            self.position = 0
        end = written if until is None else max(min(written, until), self.position)
        start = max(self.position, end - (size if settled else size // 2), end - (limit or end))
        self.dropped += start - self.position
        first = start % size
        data = np.empty((end - start, self.ring.shape[0]))
        run = min(end - start, size - first)       # up to the ring's end, then from its start
        for c, channel in enumerate(self.ring):    # a channel at a time (faster than a transposed copy)
            data[:run, c] = channel[first:first + run]
            data[run:, c] = channel[:end - start - run]
        lapped = int(self.written[0]) - size
        if lapped > start:          # overwritten while copying: drop the torn part
            cut = lapped - start
            self.dropped += cut
            data = data[cut:]
        self.position = end
        return data



class ProgramInit(NamedTuple):
    """Initial integer state and dither-generator words of a program."""

    istate: np.ndarray
    rng: np.ndarray


def reset_program(prog: Program, init: ProgramInit) -> None:
    """Clear all state and counters and rewind the dither generators (not to be called
    while :func:`run_program` runs on the same program)."""
    prog.fstate[:] = 0.0
    prog.counters[:] = 0
    prog.istate[:] = init.istate
    prog.rng[:] = init.rng
