"""Metering a running chain from its taps: one error meter per quantizer, plus end to end.

A chain prepared with ``taps=True`` copies each quantizer's input and output, and the
chain's own input and output, into lock-free rings (:mod:`rtq.program`).
:class:`ChainMeter` reads those rings and feeds :class:`rtq.meter.measure.ErrorMeter`:

* one meter per quantizer stage, at the stage's own rate (``info.sample_rate``, which
  is the oversampled rate inside an oversampling stage), with the stage's word length,
  dither and noise transfer function (for the theoretical floor and target);
* one end-to-end meter at the stream rate: chain output ``y[n]`` against the chain input
  delayed by the chain's exact latency and scaled by the chain's net gain,
  ``x[n] = net_gain() * input[n - latency]``; a fractional latency (oversampling
  without ``integer_latency``) is met with a fractional-delay filter
  (:class:`rtq.meter.delay.FractionalDelay`, error floor -170 dB), not rounded.  This is the error the whole chain
  adds only for chains whose signal path is (up to that gain and delay) the identity --
  gains and quantizers, oversampling with a flat passband; a chain that filters the
  signal shows its filtering as error.  Its floor and target are those of the last
  stage when that stage is a quantizer running at the stream rate.

The audio side is never slowed: the meter only reads the rings and the program's
counters, from whatever thread calls :meth:`ChainMeter.poll` (offline: after every
processed block; live: a display thread at 10 Hz or more -- at most half a ring is read
back while a tap records, older frames count as dropped; a completed capture window,
see ``windowed``, is read whole).  Input and output frames are matched by their
stream position, so a poll that lands between a quantizer's input tap and its output
tap keeps the unmatched frames for the next poll.

Memory is bounded: the meters are, pending frames are at most one ring, and the level
history (:class:`LevelHistory`) keeps at most ``history_points`` values, merging
neighbours (doubling its interval) when full.
"""
from __future__ import annotations

import contextlib
import copy
import ctypes
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..chain import Chain
from ..dsp.overload import COUNT_OVERLOADS
from ..dsp.requantize import COUNT_CLIPS, COUNT_RESETS
from ..program import CAPTURE_ALWAYS, COUNT_NONFINITE, META_CAPTURE, META_MAX_BLOCK, TapReader
from .delay import ERROR_FLOOR_DB, FractionalDelay
from .measure import MOMENTARY_S, NFFT, ErrorMeter, db_list, grid_step

# What a metered point counts of its ops' counters (report key: counter slot).
COUNTED = {"clips": COUNT_CLIPS, "loop_resets": COUNT_RESETS, "overloads": COUNT_OVERLOADS}
HISTORY_INTERVAL_S = 0.1
HISTORY_POINTS = 2048
MAX_NFFT = 8 * NFFT
MEASURE_FRAMES = 1 << 16    # frames measured at once (a read may hold half a ring of an oversampled tap)


class LevelHistory:
    """Error RMS over time, one value per interval, in bounded memory.

    Starts with ``interval_s`` per value; once ``max_points`` values are stored,
    neighbouring pairs merge and the interval doubles, so any length fits.
    """

    def __init__(self, sample_rate: float, channels: int, interval_s: float = HISTORY_INTERVAL_S,
                 max_points: int = HISTORY_POINTS):
        if max_points < 2 or max_points % 2:
            raise ValueError("max_points must be even and >= 2")
        self.sample_rate = float(sample_rate)
        self.channels = int(channels)
        self._first_interval = max(1, int(round(interval_s * sample_rate)))
        self._max = max_points
        self.reset()

    def reset(self) -> None:
        self.interval = self._first_interval
        self._sum = np.zeros((self._max, self.channels))
        self._n = 0
        self._acc = np.zeros(self.channels)
        self._acc_n = 0

    def update(self, e: np.ndarray) -> None:
        """Add error frames ``e`` (frames, channels)."""
        start = 0
        while start < len(e):
            take = min(len(e) - start, self.interval - self._acc_n)
            chunk = e[start:start + take]
            self._acc += np.einsum("nc,nc->c", chunk, chunk)
            self._acc_n += take
            start += take
            if self._acc_n == self.interval:
                self._push()

    def _push(self) -> None:
        if self._n == self._max:
            # Full: merge pairs; the pending value keeps accumulating to the new interval.
            half = self._max // 2
            self._sum[:half] = self._sum[0::2] + self._sum[1::2]
            self._sum[half:] = 0.0
            self._n = half
            self.interval *= 2
            return
        self._sum[self._n] = self._acc
        self._n += 1
        self._acc = np.zeros(self.channels)
        self._acc_n = 0

    def result(self) -> dict:
        """``interval_s``, ``time_s`` (start of each value) and ``rms_dbfs`` per channel
        (the last value may cover a partial interval); None for zero error."""
        sums = [self._sum[i] / self.interval for i in range(self._n)]
        counts = [self.interval] * self._n
        if self._acc_n:
            sums.append(self._acc / self._acc_n)
            counts.append(self._acc_n)
        power = np.array(sums).reshape(-1, self.channels).T
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]) / self.sample_rate if counts else np.zeros(0)
        return {"interval_s": self.interval / self.sample_rate,
                "time_s": starts.tolist(),
                "rms_dbfs": db_list(power)}


class _Pending:
    """Frames read from one tap and not yet matched: ``data`` starts at stream ``start``."""

    def __init__(self, channels: int):
        self.channels = channels
        self.clear()

    def clear(self) -> None:
        self.start: int | None = None
        self.data = np.zeros((0, self.channels))

    @property
    def end(self) -> int | None:
        return None if self.start is None else self.start + len(self.data)

    def put(self, data: np.ndarray, start: int) -> str:
        """Append ``data`` starting at ``start``; returns "ok", "gap" or "rewound"."""
        end = self.end
        if end == start:
            self.data = np.concatenate([self.data, data]) if len(self.data) else data
            return "ok"
        self.start, self.data = start, data
        if end is None or start > end:
            return "gap"
        return "rewound"

    def drop_before(self, position: int) -> None:
        if self.start is not None and position > self.start:
            self.data = self.data[position - self.start:]
            self.start = position

    def take(self, lo: int, hi: int) -> np.ndarray:
        return self.data[lo - self.start:hi - self.start]


class TapPair:
    """Matches an ``x`` tap and a ``y`` tap frame by frame.

    ``y`` frame ``p`` (position since the program's start or reset) pairs with ``x``
    frame ``p - delay``; ``x`` before the stream's start counts as zeros.  A fractional
    ``delay`` delays ``x`` through a :class:`~rtq.meter.delay.FractionalDelay`; after
    frames of ``x`` were lost, its first output frames (which would mix the two sides
    of the gap) are not metered.  Works with any readers having
    :meth:`~rtq.program.TapReader.read` (with its ``settled`` argument; ``until`` and
    ``skip_to`` where :meth:`read` and :meth:`skip_to` are given a position),
    ``position`` and ``dropped`` (:class:`rtq.program.TapReader`).
    """

    def __init__(self, reader_x, reader_y, channels: int, delay: float = 0, limit: int | None = None):
        if not delay >= 0:
            raise ValueError("delay must be >= 0")
        self.rx, self.ry = reader_x, reader_y
        self.delay = float(delay)
        whole = math.floor(self.delay)
        fraction = self.delay - whole
        self.fractional = FractionalDelay(fraction, channels) if fraction else None
        # x frames shift by this much more (negative: the filter's own delay is longer)
        self._shift = whole - (self.fractional.bulk if self.fractional else 0)
        self._x_end: int | None = None      # x position after the last frame filtered
        self._unsettled = 0                 # filtered frames still to discard after a gap
        self.limit = limit
        self._x = _Pending(channels)
        self._y = _Pending(channels)
        self._emitted = int(reader_y.position)
        self.unmatched = 0

    @property
    def dropped(self) -> int:
        """``y`` positions skipped (not metered) so far: lapped by the writer before they
        were read, or without an ``x`` partner."""
        return self.unmatched

    @property
    def position(self) -> int:
        """The ``y`` position just after the last frame :meth:`read` returned."""
        return self._emitted

    def skip_to(self, position: int) -> None:
        """Read nothing before ``y`` position ``position`` (nor the ``x`` frames that pair
        with it); the frames skipped count as dropped.  Needs a whole delay."""
        self.rx.skip_to(position - self._shift)
        self.ry.skip_to(position)

    def read(self, settled: bool = False, until: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The newly matched frames ``(x, y)``, each (frames, channels): consecutive
        positions, which continue the last read unless :attr:`dropped` grew.  ``settled``
        is passed to the readers (:meth:`rtq.program.TapReader.read`); ``until``: no
        ``y`` position from there on (a whole delay only)."""
        bound = {} if until is None else {"until": until - self._shift}
        dx = self.rx.read(settled=settled, **bound)
        if len(dx):
            start = self.rx.position - len(dx)
            if self.fractional is not None:
                dx, start = self._delay_fraction(dx, start)
        if len(dx):
            if start == 0 and self._shift > 0:
                dx = np.concatenate([np.zeros((self._shift, dx.shape[1])), dx])
            else:
                start += self._shift
            if self._x.put(dx, start) == "rewound":
                self._restart(self._y)
        dy = self.ry.read(settled=settled, **({} if until is None else {"until": until}))
        if len(dy):
            if self._y.put(dy, self.ry.position - len(dy)) == "rewound":
                self._restart(self._x)
        x, y = self._match()
        if self.limit:     # one side far ahead (never in practice): stay bounded
            for side in (self._x, self._y):
                if len(side.data) > self.limit:
                    side.drop_before(side.end - self.limit)
        return x, y

    def _delay_fraction(self, dx: np.ndarray, start: int) -> tuple[np.ndarray, int]:
        """``dx`` (from x position ``start``) through the fractional delay: the same
        positions, less those still unsettled after a gap."""
        if start != self._x_end:        # the first frames, a reset, or frames lost
            self.fractional.reset()
            self._unsettled = self.fractional.warmup if start else 0
        self._x_end = start + len(dx)
        dx = self.fractional(dx)
        cut = min(self._unsettled, len(dx))
        self._unsettled -= cut
        return dx[cut:], start + cut

    def _match(self) -> tuple[np.ndarray, np.ndarray]:
        if self._x.start is None or self._y.start is None:
            return self._empty()
        lo = max(self._x.start, self._y.start)
        hi = min(self._x.end, self._y.end)
        self._x.drop_before(lo)
        self._y.drop_before(lo)
        if hi <= lo:
            return self._empty()
        if lo > self._emitted:
            self.unmatched += lo - self._emitted
        x, y = self._x.take(lo, hi), self._y.take(lo, hi)
        self._x.drop_before(hi)
        self._y.drop_before(hi)
        self._emitted = hi
        return x, y

    def _restart(self, other: _Pending) -> None:
        """The program was reset: positions start over; forget the other side's frames."""
        other.clear()
        self._emitted = 0

    def _empty(self):
        empty = np.zeros((0, self._x.channels))
        return empty, empty


def net_gain_db(gain: float) -> float | None:
    """A linear gain in dB, to a millionth of a dB (stage gains of -0.1 dB multiply to
    -0.09999999999999984 dB otherwise); None for no gain at all."""
    return round(20.0 * math.log10(gain), 6) + 0.0 if gain > 0 else None


def _is_uniform(info) -> bool:
    """A uniform N-bit grid (requantize), rather than G.711 companding."""
    return info.step == grid_step(info.bits)


def _meter_for(info, stage, channels, nfft, momentary_s, index, label, factor=1) -> ErrorMeter:
    uniform = _is_uniform(info)
    ntf = info.error_filter.ntf if info.error_filter is not None else None
    return ErrorMeter(info.sample_rate, channels, info.bits if uniform else None,
                      info.dither if uniform else "none", ntf if uniform else None,
                      dither_amplitude=float(getattr(stage, "amplitude", 1.0)),
                      nfft=min(nfft * factor, max(MAX_NFFT, nfft)), momentary_s=momentary_s,
                      index=index, stage=label, levels=info.levels)


def _rows(info) -> list[int]:
    """The program rows counting for a quantizer: its own, and the one counting its
    overloads (a designed-NTF loop's)."""
    return [info.op_index] + ([info.overload_op] if info.overload_op is not None else [])


class _ScaleCounts:
    """The blocks a block compander coded at each scale, per channel, read from its op's
    integer state (counted since the meter started or was reset): ``words`` holds, for
    each program running some of the channels (in channel order), its
    ``(istate, index, channels)``."""

    def __init__(self, words, steps):
        self.steps = [float(step) for step in steps]
        self.words = [istate[index:index + channels * len(self.steps)] for istate, index, channels in words]
        self.channels = sum(channels for _, _, channels in words)
        self.last = np.concatenate(self.words)
        self.total = np.zeros_like(self.last)

    def update(self) -> None:
        now = np.concatenate(self.words)
        self.total += np.where(now >= self.last, now - self.last, now)     # the program was reset: restart
        self.last = now

    def reset(self) -> None:
        self.total[:] = 0

    def result(self) -> dict:
        return {"steps": self.steps, "blocks": self.total.reshape(self.channels, -1).tolist()}


class _JoinedReader:
    """The readers of one tap in the programs that run a stream's channel groups (in
    channel order), read as one: their channels side by side, the frames all of them
    hold (the groups run the same blocks, so their taps advance together)."""

    def __init__(self, readers):
        self.readers = readers

    @property
    def position(self) -> int:
        return min(r.position for r in self.readers)

    @property
    def dropped(self) -> int:
        return max(r.dropped for r in self.readers)

    def skip_to(self, position: int) -> None:
        target = min([position, *(int(r.written[0]) for r in self.readers)])
        for r in self.readers:
            r.skip_to(target)

    def read(self, settled: bool = False, until: int | None = None) -> np.ndarray:
        end = min(int(r.written[0]) for r in self.readers)
        parts = [r.read(settled=settled, until=end if until is None else min(end, until)) for r in self.readers]
        frames = min(len(part) for part in parts)     # a reader lapped loses its oldest frames: so do all
        return np.concatenate([part[len(part) - frames:] for part in parts], axis=1)


class _Entry:
    """One metered point: its meter, tap pair, level history and counter rows (the
    program ops whose clips, loop resets and overloads it counts).

    ``twin``: another point that so far received exactly the same frames (end to end
    and a chain's only quantizer, its last stage, when the chain before it is a gain
    that :attr:`gain` repeats to the bit): while both pairs keep giving equal frames
    this entry reads its pair, compares, and reports the twin's meter and level
    history, measuring nothing twice; at the first difference (or lost frames) it
    takes copies of them and goes on alone (:meth:`fork`), so every figure is what
    its own meter would have measured.

    ``measurer``: an executor of one thread that measures the frames held (``batch``)
    while the reading goes on, running its jobs in order; the measurements queued there
    hold at most ``queue`` frames besides the newest (memory stays bounded: a
    measurement waits for older ones until they do; a queue of a tap ring's frames lets
    a sampled window's burst of frames queue while the chain goes on), counts are
    queued behind them without waiting, and its meter, level history and counts are
    touched only there until :meth:`wait`.  None: measured at once."""

    def __init__(self, meter: ErrorMeter, pair: TapPair, history: LevelHistory, path, extra,
                 rows, gain=1.0, factor=1, scales: _ScaleCounts | None = None, sample=None):
        self.meter, self.pair, self.history = meter, pair, history
        self.path, self.extra, self.rows, self.gain = path, extra, rows, gain
        self.scales = scales     # a block compander's scale counts
        self.factor = factor     # the tap's rate in stream rates
        # measured tap frames [k every, k every + length), or all
        self.sample = None if sample is None else (sample[0] * factor, sample[1] * factor)
        self.skipped = 0         # frames between capture windows (never recorded)
        self.window_starts: list[int] = []   # tap positions where a capture window began
        self.twin: _Entry | None = None
        self.batch = 0           # frames to gather before measuring them (offline); 0: at once
        self.queue = 0           # frames the measurements queued on measurer may hold besides the newest
        self.measurer = None     # the one-thread executor measuring held frames (with batch), or None
        self._pending: list = []  # (Future, frames) of the jobs submitted there, oldest first
        self._held: list[tuple[np.ndarray, np.ndarray]] = []    # frames read, not yet measured
        self._held_at = (0, False)   # their first y position, and whether frames before were lost
        self._held_end = 0           # the y position after them

    def mark_window(self) -> None:
        """A capture window starts with the tap's next frame (the taps are stopped now)."""
        now = int(self.pair.ry.written[0])
        self.window_starts = [b for b in self.window_starts if b <= now] + [now]

    def consume(self, settled: bool = False) -> int:
        """Read and measure the new frames (the twin's too); returns how many."""
        dropped = self.pair.dropped
        x, y = self._read(settled)
        twin = self.twin
        if twin is not None:
            twin_dropped = twin.pair.dropped
            tx, ty = twin._read(settled, self.pair.position)
            if not (self.pair.dropped == dropped and twin.pair.dropped == twin_dropped
                    and twin.pair.position == self.pair.position and not twin.window_starts
                    and np.array_equal(x, tx) and np.array_equal(y, ty)):
                self.fork()
            if len(tx):
                twin._take(tx, ty, twin_dropped)
        if len(x) and self.twin is None:
            self._take(x, y, dropped)
        return len(x)

    def fork(self) -> None:
        """Stop sharing the twin's meter and level history: go on with copies of them
        (and of the frames it holds)."""
        twin, self.twin = self.twin, None
        twin.wait()
        twin.meter.settle()
        index, stage = self.meter.index, self.meter.stage
        shared = {id(twin.meter.executor): twin.meter.executor}      # the thread, not a copy
        self.meter, self.history = copy.deepcopy(twin.meter, shared), copy.deepcopy(twin.history)
        self.meter.index, self.meter.stage = index, stage
        self._held, self._held_at, self._held_end = list(twin._held), twin._held_at, twin._held_end

    def _read(self, settled: bool, until: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The pair's new frames (x scaled by the gain), none from ``y`` position ``until``."""
        if self.sample is not None:
            length, every = self.sample
            start = self.pair.position - self.pair.position % every
            if self.pair.position >= start + length:      # between windows: skip to the next
                start += every
                self.pair.skip_to(start)
                if self.pair.ry.position < start:   # skip_to stops at the frames written: the
                    none = np.zeros((0, self.meter.channels))   # chain is not there yet
                    return none, none
            until = start + length if until is None else min(until, start + length)
        x, y = self.pair.read(settled, until)
        if len(x) and self.gain != 1.0:
            x = x * self.gain
        return x, y

    def _take(self, x: np.ndarray, y: np.ndarray, dropped: int) -> None:
        """Frames the pair just gave (``dropped``: its count before reading): measured,
        or held until :attr:`batch` frames are (fewer, longer meter updates); then the
        whole pieces of :attr:`piece` frames among them are measured, the rest held."""
        start = self.pair.position - len(x)
        lost = self.pair.dropped > dropped
        if not self.batch:
            self._measure(x, y, start, lost)
            return
        if self._held and (lost or start != self._held_end):
            self.flush()
        if not self._held:
            self._held_at = (start, lost)
        self._held.append((x, y))
        self._held_end = start + len(x)
        if self._held_end - self._held_at[0] >= self.batch:
            self.flush(self._held_end - self._held_end % self.piece)

    @property
    def piece(self) -> int:
        """The meter is updated with the frames of stream pieces ``[k piece, (k + 1)
        piece)`` (a piece cut short where frames were lost, a window starts, or the
        stream ends), however they were read: the figures' sums then add the same
        numbers in the same order in every run, whatever the threads' timing and the
        blocks (with :attr:`batch`; else every read is measured as it comes)."""
        return self.batch or MEASURE_FRAMES

    def flush(self, until: int | None = None) -> None:
        """Measure the frames held (on :attr:`measurer`, if any); those before ``y``
        position ``until`` only, if given."""
        if not self._held:
            return
        held, self._held = self._held, []
        start, lost = self._held_at
        if until is not None and until < self._held_end:
            if until <= start:
                self._held = held
                return
            at, k = start, 0
            while at + len(held[k][0]) <= until:     # the reads wholly before until
                at += len(held[k][0])
                k += 1
            cut = until - at
            x, y = held[k]
            held, self._held = [*held[:k], (x[:cut], y[:cut])], [(x[cut:], y[cut:]), *held[k + 1:]]
            self._held_at = (until, False)
        self._submit(self._measure_held, (held, start, lost), frames=sum(len(x) for x, _ in held))

    def _measure_held(self, held: list[tuple[np.ndarray, np.ndarray]], start: int, lost: bool) -> None:
        x, y = (np.concatenate(side) if len(held) > 1 else side[0] for side in zip(*held))
        self._measure(x, y, start, lost)

    def _submit(self, work, args=(), kwargs=None, frames: int = 0) -> None:
        """``work(*args, **kwargs)`` on :attr:`measurer`, after the jobs before it (at
        once without one); a measurement of ``frames`` frames first waits for the
        oldest until those queued hold at most :attr:`queue` frames (memory stays
        bounded), other work (counts, no frames) does not wait."""
        while self._pending and (self._pending[0][0].done()
                                 or frames and sum(n for _, n in self._pending) > self.queue):
            self._pending.pop(0)[0].result()      # their errors raised here
        if self.measurer is None:
            work(*args, **(kwargs or {}))
        else:
            self._pending.append((self.measurer.submit(work, *args, **(kwargs or {})), frames))

    def wait(self) -> None:
        """Until the jobs submitted are done (the first error raised here)."""
        pending, self._pending = self._pending, []
        errors = [job.exception() for job, _ in pending]
        for error in errors:
            if error is not None:
                raise error

    def forget_held(self) -> None:
        self.wait()
        self._held = []

    def _measure(self, x: np.ndarray, y: np.ndarray, start: int, lost: bool) -> None:
        """Measure consecutive frames from ``y`` position ``start`` (``lost``: frames
        before them were lost)."""
        # Where the frames do not continue the previous ones (a window starts, or frames
        # were lost), the error spectrum starts a new segment.
        end = start + len(x)
        cuts = sorted({max(b - start, 0) for b in self.window_starts if b < end})
        self.window_starts = [b for b in self.window_starts if b >= end]
        if lost and cuts[:1] != [0]:
            cuts.insert(0, 0)
        done = 0
        piece = self.piece
        for k, cut in enumerate([*cuts, len(x)]):
            first = done
            while first < cut:      # the stream's pieces (their work stays in cache)
                last = min((start + first) // piece * piece + piece - start, cut)
                self.history.update(self.meter.update(x[first:last], y[first:last]))
                first = last
            if k < len(cuts):
                self.meter.restart_segment()
            done = cut

    def add_counts(self, **counts) -> None:
        if self.twin is None:      # a twin's meter has the same counts (one quantizer)
            self._submit(self.meter.add_counts, kwargs=counts)

    def report(self, window: str) -> dict:
        source = self.twin or self
        source.wait()
        result = source.meter.result(window)
        result["index"], result["stage"] = self.meter.index, self.meter.stage
        result.update(self.extra)
        result["path"] = list(self.path)
        result["dropped_frames"] = self.pair.dropped + self.skipped
        result["level_history"] = source.history.result()
        if self.scales is not None:
            result["scale_factors"] = self.scales.result()
        return result


class ChainMeter:
    """Error meters for every quantizer of a chain prepared with ``taps=True``, and end
    to end (see the module docstring).

    Parameters
    ----------
    chain : Chain
        Prepared with ``taps=True`` (re-create the meter after preparing again).
    nfft, momentary_s : optional
        Passed to each :class:`~rtq.meter.measure.ErrorMeter`; stages running at ``L``
        times the stream rate use ``nfft * L`` (up to ``8 * NFFT``) so their spectra
        keep the frequency resolution.
    history_s, history_points : optional
        Level history: one value per ``history_s`` at first, at most ``history_points``.
    from_start : bool
        Read the taps from the oldest frame still in the rings (all of a chain that has
        not yet run half a ring since it was prepared: offline, create the meter any time
        before that), and count clips and non-finite input since the chain was prepared;
        otherwise only frames written, and events counted, after construction.
    windowed : bool
        Let the taps at oversampled rates record only capture windows of one ring (at
        the fastest tap's rate; at least one spectrum segment).  :meth:`poll` reads a
        window once it is complete, then starts the next, so the audio thread copies
        only those frames (live at 10 polls/s: 11 % of a 64x stage's, and a reader of
        a ring lapping under it would get no more).  The frames in between count as
        dropped, and every window starts a new spectrum segment (none joins two
        windows).  Otherwise every tap records everything.
    sample : (length, every), optional
        Measure the stages at oversampled rates only on stream frames ``[k every, k every
        + length)`` (offline, :class:`RenderMeter`; fixed positions, so the figures do
        not depend on how the stream is cut into blocks).  The meter leaves
        ``meta[META_CAPTURE]`` to its owner: the taps record everything (the program's
        default), or what :meth:`RenderMeter.before_piece` arms them to (at least the
        windows, at their stream positions).
    workers : int
        Threads that read and measure the metered points side by side at each
        :meth:`poll` (offline; :meth:`close` stops them).
    parts : list of Chain, optional
        The chains that actually run the stream's channel groups, in channel order
        (``chain`` copies prepared with taps, ``first_channel`` and fewer channels, as
        :func:`rtq.render.render_file` runs them): their taps are read side by side, as
        one chain's.  Default: ``chain`` itself.  Not with ``windowed``.
    batch_frames : int
        Frames each point gathers before measuring them (offline: fewer, longer meter
        updates; :meth:`report` measures what is held first), in pieces of the stream
        ``[k batch_frames, (k + 1) batch_frames)`` whatever the reads were (so the
        figures are the same to the bit in every run).  0: at every poll.  Not with
        ``windowed``.

    Examples
    --------
    >>> chain.prepare(48000, 2, 512, taps=True)
    >>> meter = ChainMeter(chain)
    >>> for block in blocks:
    ...     chain.process(block)
    ...     meter.poll()
    >>> meter.report()["stages"][0]["rms_dbfs"]
    """

    def __init__(self, chain: Chain, *, nfft: int = NFFT, momentary_s: float = MOMENTARY_S,
                 history_s: float = HISTORY_INTERVAL_S, history_points: int = HISTORY_POINTS,
                 from_start: bool = True, windowed: bool = False, sample: tuple[int, int] | None = None,
                 workers: int = 1, parts: list[Chain] | None = None, batch_frames: int = 0):
        parts = list(parts) if parts else [chain]
        if any(part.program is None or getattr(part, "input_tap", None) is None for part in (chain, *parts)):
            raise ValueError("ChainMeter needs a chain prepared with taps=True")
        if windowed and (len(parts) > 1 or batch_frames):
            raise ValueError("capture windows need one program (no channel groups) and no batch_frames")
        self.chain = chain
        self.parts = parts
        self.programs = [part.program for part in parts]
        self.program = prog = parts[0].program
        self.sample_rate = float(chain.sample_rate)
        self.channels = int(chain.channels)
        latency = float(chain.latency)      # exact: a fractional one is not rounded
        self.latency = int(latency) if latency.is_integer() else latency
        self.net_gain = float(chain.net_gain())
        self._lock = threading.Lock()
        ring = prog.taps.shape[2]

        def reader(tap_of):
            """The reader of a tap, ``tap_of(part)`` in each part."""
            readers = []
            for part in parts:
                r = TapReader(part.program, tap_of(part))
                if from_start:
                    r.position = max(0, int(r.written[0]) - ring // 2)
                readers.append(r)
            return readers[0] if len(readers) == 1 else _JoinedReader(readers)

        self._entries: list[_Entry] = []
        quantizers = list(chain.quantizer_info.values())
        for key, info in chain.quantizer_info.items():
            stage, path = info.stage, info.path
            if info.taps is None:
                raise ValueError(f"stage {path} was not prepared with taps")
            tap_in = info.taps[0]
            label = stage.label()
            meter = _meter_for(info, stage, self.channels, nfft, momentary_s, path[0], label,
                               tap_in.factor)
            extra = {"bits": info.bits, "msa": info.msa}
            if not _is_uniform(info):
                extra["law"] = getattr(stage, "law", None)
            # A quantizer with latency (block companding) is met with its input that long ago.
            pair = TapPair(reader(lambda part, key=key: part.quantizer_info[key].taps[0]),
                           reader(lambda part, key=key: part.quantizer_info[key].taps[1]),
                           self.channels, delay=float(stage.latency), limit=ring)
            history = LevelHistory(info.sample_rate, self.channels, history_s, history_points)
            scales = None if info.scales is None else _ScaleCounts(
                [(part.program.istate, part.quantizer_info[key].scales[0], part.channels) for part in parts],
                info.scales[1])
            self._entries.append(_Entry(meter, pair, history, path, extra, _rows(info),
                                        factor=tap_in.factor, scales=scales,
                                        sample=sample if tap_in.factor > 1 else None))

        last = chain.quantizer_info.get((len(chain.stages) - 1,))   # the last stage, if a quantizer
        if last is not None and last.taps[0].factor == 1:
            e2e = _meter_for(last, last.stage, self.channels, nfft, momentary_s, None, "end to end")
            extra = {"bits": last.bits}
        else:
            e2e = ErrorMeter(self.sample_rate, self.channels, None, "none", nfft=nfft,
                             momentary_s=momentary_s, stage="end to end")
            extra = {}
        pair = TapPair(reader(lambda part: part.input_tap), reader(lambda part: part.output_tap), self.channels,
                       delay=self.latency, limit=2 * ring + math.ceil(self.latency))
        fractional = pair.fractional
        extra.update({"latency_samples": self.latency, "net_gain_db": net_gain_db(self.net_gain),
                      "fractional_delay": None if fractional is None else {
                          "taps": len(fractional.taps), "error_floor_db": ERROR_FLOOR_DB}})
        history = LevelHistory(self.sample_rate, self.channels, history_s, history_points)
        self._end_to_end = _Entry(e2e, pair, history, (), extra,
                                  [row for info in quantizers for row in _rows(info)], gain=self.net_gain)
        if len(self._entries) == 1 and last is not None and last.taps[0].factor == 1 and fractional is None:
            self._end_to_end.twin = self._entries[0]    # the same figures while the frames are the same
        # From the start, the program's counters count from its start too (a render's
        # meter is created after its first block).
        counts = self._counters()
        self._counts = np.zeros_like(counts) if from_start else counts
        top = max((entry.factor for entry in self._entries), default=1)
        self._window = max(1, ring // top) if windowed and top > 1 else None
        self._pool = ThreadPoolExecutor(workers - 1, thread_name_prefix="rtq-meter") if workers > 1 else None
        # Half of each meter's spectrum transforms run on a thread of their own (never
        # on the pool: a job there waiting for its own half would wait forever).
        self._transforms = ThreadPoolExecutor(1, thread_name_prefix="rtq-fft") if workers > 1 else None
        for entry in (*self._entries, self._end_to_end):
            entry.meter.executor = self._transforms
            # A stage at an oversampled rate shares its compiled pass with that thread (at
            # the stream rate the split cost more than it gained); in a chain without one
            # the thread transforms each point's spectra whole while it measures on.
            entry.meter.split_channels = entry.factor > 1
            entry.meter.defer_spectra = top == 1
            entry.batch = batch_frames
            # As much as the taps' rings hold (the stream time of the fastest tap's): a
            # sampled window's frames queue up, the chain is not held back by its burst.
            entry.queue = ring // top * entry.factor
            if workers > 1 and batch_frames:    # measuring a batch overlaps reading the next
                entry.measurer = ThreadPoolExecutor(1, thread_name_prefix="rtq-measure")
        self._stream = parts[0].input_tap     # always recording: the stream position
        self._sampled = sample is not None
        self._arm()

    # -- reading --------------------------------------------------------------------------

    def _counters(self) -> np.ndarray:
        """A copy of the programs' counters (ops, channels, counts), channels side by side."""
        return np.concatenate([prog.counters for prog in self.programs], axis=1)

    def _arm(self) -> None:
        """Start recording the oversampled taps: always, or one capture window."""
        meta = self.program.meta
        position = int(self.program.istate[self._stream.written_index])
        if self._window is None:
            if not self._sampled:     # else its owner's (a render thread arming the windows)
                for prog in self.programs:
                    prog.meta[META_CAPTURE] = CAPTURE_ALWAYS
        else:
            for entry in self._entries:
                if entry.factor > 1:
                    entry.mark_window()
            meta[META_CAPTURE] = self._window
        self._armed_at = position

    def poll(self) -> int:
        """Consume what the taps hold now; returns the stream frames metered end to end.

        Call after every processed block offline, or from a non-audio thread at 10 Hz or
        more live.  Thread-safe against :meth:`report` and :meth:`reset`.
        """
        with self._lock:
            # A window is read once complete (the audio thread no longer writes its
            # taps): all of it is intact, even a whole ring.
            complete = self._window is not None and self.program.meta[META_CAPTURE] == 0
            jobs = [(entry, entry.factor > 1 and self._window is not None) for entry in self._entries
                    if (entry.factor == 1 or self._window is None or complete) and entry is not self._end_to_end.twin]
            frames = self._consume([(self._end_to_end, False), *jobs])
            if complete:
                elapsed = int(self.program.istate[self._stream.written_index]) - self._armed_at
                for entry in self._entries:
                    if entry.factor > 1:
                        entry.skipped += max(elapsed - self._window, 0) * entry.factor
                self._arm()
            counts = self._counters()
            new = np.where(counts >= self._counts, counts - self._counts, counts)   # reset: restart
            self._counts = counts
            counted = new.any()
            for entry in (*self._entries, self._end_to_end):
                if entry.scales is not None:
                    entry.scales.update()
                if counted:
                    rows = new[entry.rows]
                    entry.add_counts(nonfinite=new[0, :, COUNT_NONFINITE],
                                     **{name: rows[:, :, slot].sum(axis=0) for name, slot in COUNTED.items()})
            return frames

    def _consume(self, jobs) -> int:
        """``entry.consume(settled)`` for each ``(entry, settled)``, spread over the
        worker threads (the compiled pass and the FFTs release the GIL); returns the
        first's frames."""
        if self._pool is None or len(jobs) < 2:
            return [entry.consume(settled) for entry, settled in jobs][0]
        others = [self._pool.submit(entry.consume, settled) for entry, settled in jobs[1:]]
        try:
            return jobs[0][0].consume(jobs[0][1])
        finally:
            for job in others:
                job.result()

    def close(self) -> None:
        """Stop the worker threads (the meter still reports), all of them even when a
        pending measurement failed; the first such error is raised then."""
        entries = (*self._entries, self._end_to_end)
        error = None
        try:
            for entry in entries:
                try:
                    entry.wait()
                    entry.meter.settle()     # the spectra its transforms' jobs add
                except BaseException as err:     # raised once every thread is stopped
                    error = error or err
        finally:
            for entry in entries:
                if entry.measurer is not None:
                    entry.measurer.shutdown()
                entry.measurer = None
            for pool in (self._pool, self._transforms):
                if pool is not None:
                    pool.shutdown()
            self._pool = self._transforms = None
            for entry in entries:
                entry.meter.executor = None
        if error is not None:
            raise error

    def report(self, window: str = "integrated") -> dict:
        """The measurements over ``window`` ("integrated" or "momentary") as a JSON-ready
        dict: ``sample_rate``, ``channels``, ``window``, ``latency_samples`` (exact: an
        int when whole, else a float), ``net_gain_db``, ``stages`` (one
        :meth:`ErrorMeter.result` per quantizer, plus ``path``, ``dropped_frames``,
        ``level_history`` and ``msa``, a designed-NTF loop's maximum stable amplitude,
        else None) and ``end_to_end`` (also with ``fractional_delay``: the taps and error
        floor of the filter that delayed the input, None for a whole latency).

        ``clips``, ``loop_resets`` and ``overloads`` of a stage are its own (program
        counters: samples saturated, designed-NTF loops reset after overloading, and
        samples that came into such a loop above its maximum stable amplitude, all at
        the stage's rate), ``nonfinite`` the non-finite input samples the chain's input
        sanitizer replaced (counted at the stream rate, for every stage); end to end,
        ``clips``, ``loop_resets`` and ``overloads`` sum all quantizers.
        """
        with self._lock:
            self._flush()
            return {
                "sample_rate": self.sample_rate,
                "channels": self.channels,
                "window": window,
                "latency_samples": self.latency,
                "net_gain_db": self._end_to_end.extra["net_gain_db"],
                "stages": [entry.report(window) for entry in self._entries],
                "end_to_end": self._end_to_end.report(window),
            }

    def stage_report(self, stage: int | None, window: str = "integrated") -> dict:
        """One entry of :meth:`report`: quantizer number ``stage`` (0-based, chain order),
        or end to end for None; computes only that entry (cheaper for a live screen)."""
        with self._lock:
            self._flush()
            entry = self._end_to_end if stage is None else self._entries[stage]
            return entry.report(window)

    def _flush(self) -> None:
        for entry in (*self._entries, self._end_to_end):
            entry.flush()
            entry.wait()

    def reset(self) -> None:
        """Forget everything measured; keep reading from where the taps are."""
        with self._lock:
            for entry in (*self._entries, self._end_to_end):
                entry.forget_held()
                entry.meter.reset()
                if entry.scales is not None:
                    entry.scales.reset()
                entry.history.reset()


class _SampledCapture:
    """Arms the oversampled taps of a render's programs to record only around the
    sampled windows (``sample``, see :class:`ChainMeter`), piece by piece, from the
    render's thread (:meth:`RenderMeter.before_piece`), so the chain copies a sixteenth
    of a 64x stage rather than all of it.

    A piece that meets the stretch ``[k every - lead, k every + length)`` records from
    its start to the stretch's end (``meta[META_CAPTURE]``, which the program counts
    down, however the stream is cut into pieces); ``lead`` covers the stream frames an
    oversampled quantizer's latency pairs with a window's first output frames.  Before
    recording again after a pause, each oversampled tap's write counter is moved to
    the piece's stream position times the tap's rate factor: tap positions stay stream
    positions, so the meter reads exactly the windows' frames.  The counters move only
    far from any frame the meter still reads (at least ``SPACING`` pieces after a
    window, else every frame is recorded, as without arming)."""

    SPACING = 4     # pieces between windows needed, > the meter's lag (one piece) + the piece read

    def __init__(self, chain: Chain, parts: list[Chain], sample: tuple[int, int]):
        self.length, self.every = sample
        self.lead = max((math.ceil(float(info.stage.latency) / info.taps[0].factor)
                         for info in chain.quantizer_info.values() if info.taps[0].factor > 1), default=0)
        self.programs = [part.program for part in parts]
        self.stream = [part.input_tap.written_index for part in parts]
        self.taps = [[(tap.written_index, tap.factor) for info in part.quantizer_info.values() for tap in info.taps
                      if tap.factor > 1] for part in parts]
        piece = max(int(prog.meta[META_MAX_BLOCK]) for prog in self.programs)
        self.active = any(self.taps) and self.every - self.length - self.lead >= self.SPACING * piece

    def arm(self, frames: int) -> None:
        """Before a piece of ``frames`` stream frames."""
        if not self.active:
            return
        for prog, stream, taps in zip(self.programs, self.stream, self.taps):
            position = int(prog.istate[stream])
            k = (position + self.lead) // self.every
            if position >= k * self.every + self.length:
                k += 1
            if k * self.every - self.lead >= position + frames:
                prog.meta[META_CAPTURE] = 0
                continue
            for index, factor in taps:
                if prog.istate[index] != position * factor:
                    prog.istate[index] = position * factor
            prog.meta[META_CAPTURE] = k * self.every + self.length - position


_MADV_POPULATE_WRITE = 23    # Linux 5.14 and later
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3     # glibc's mallopt parameters
_HEAP_BLOCKS = 32 << 20       # the most mallopt lets the heap serve (64-bit glibc)


def _same(programs: list, others: list | None) -> bool:
    """Whether ``others`` are the very ``programs`` (not None)."""
    return others is not None and len(others) == len(programs) and all(a is b for a, b in zip(programs, others))


def populate(arrays) -> None:
    """Fault in the memory of ``arrays`` as writing them would, without touching their
    contents (``madvise(MADV_POPULATE_WRITE)``), so safe while another thread writes
    them: the kernel zeroes the fresh pages here rather than in that thread's first
    writes.  Nothing where the system cannot (before Linux 5.14, not Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        madvise = ctypes.CDLL(None, use_errno=True).madvise
        madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        page = os.sysconf("SC_PAGE_SIZE")
        for array in arrays:
            start = -(-array.ctypes.data // page) * page
            end = (array.ctypes.data + array.nbytes) // page * page
            if end > start:
                madvise(start, end - start, _MADV_POPULATE_WRITE)


def keep_freed_memory() -> None:
    """Let this process reuse the memory it frees rather than hand it back to the
    system: blocks up to 32 MB come from malloc's heap and the heap is never trimmed
    (glibc's ``mallopt``; nothing elsewhere).  A meter's reads are blocks of a few MB
    (a 64x tap's window: 8 MB a piece); handed back and taken again, each is fresh
    pages the kernel zeroes first, which held the render back.  The process keeps its
    peak memory until it ends."""
    with contextlib.suppress(OSError, AttributeError):
        mallopt = ctypes.CDLL(None).mallopt
        mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        mallopt(_M_MMAP_THRESHOLD, _HEAP_BLOCKS)
        mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1)


class RenderMeter:
    """A :func:`rtq.render.render_file` observer that meters the chain through its taps.

    ``render_file`` prepares the chain with taps when it has an observer.  The
    :class:`ChainMeter` is created at the first block (reading the taps from the start)
    and re-created if the chain is prepared again.  Stages at the stream rate (and end
    to end) are measured on every sample; stages at oversampled rates (64 times the
    samples in a DSD chain) on :data:`SAMPLE` (the first 0.37 s of every 5.9 s at
    44.1 kHz: a sixteenth of the file, from its start; their ``dropped_frames`` say how
    many were not measured, and clips, loop resets and overloads are counted on every
    sample all the same).  The metered points are measured on ``workers`` threads, while
    the chain goes on (``concurrent``: see :func:`rtq.render.render_file`), and the
    chain keeps running its channel groups on their cores (``channel_groups``: the
    meter reads the taps of every group's program).  Before the first piece, a thread
    of its own faults in the taps' rings (:func:`populate`: a DSD chain's are 128 MB),
    which the chain's first writes would otherwise do; and the process keeps the memory
    it frees for reuse (:func:`keep_freed_memory`).
    """

    SAMPLE = (16384, 16 * 16384)    # stream frames measured, of every so many
    concurrent = True               # render_file may call it while the chain goes on
    channel_groups = True           # ... and run the chain's channel groups, passing them

    def __init__(self, workers: int = 1, **options):
        self.options = {"sample": self.SAMPLE, "batch_frames": MEASURE_FRAMES, **options}
        self.workers = workers
        keep_freed_memory()
        self.meter: ChainMeter | None = None
        self._parts: list[Chain] | None = None
        self._capture: _SampledCapture | None = None
        self._populated: list | None = None     # the programs whose taps were faulted in
        self._populating: threading.Thread | None = None

    def before_piece(self, chain, frames: int, parts: list[Chain] | None = None) -> None:
        """Before the render runs the next piece of ``frames`` stream frames: let the taps
        at oversampled rates record only around the sampled windows
        (:class:`_SampledCapture`); the figures are those of taps recording everything.
        Before the first piece of new programs, start faulting in their taps."""
        parts = parts or [chain]
        programs = [part.program for part in parts]
        if not _same(programs, self._populated):
            self._populated = programs
            self._join_populating()
            self._populating = threading.Thread(target=populate, args=([prog.taps for prog in programs],),
                                                name="rtq-taps", daemon=True)
            self._populating.start()
        if self.options["sample"] is None:
            return
        capture = self._capture
        if capture is None or not _same(programs, capture.programs):
            capture = self._capture = _SampledCapture(chain, parts, self.options["sample"])
        capture.arm(frames)

    def __call__(self, chain, parts: list[Chain] | None = None) -> None:
        parts = parts or (self._parts if self.meter is not None and self.meter.chain is chain else None) or [chain]
        programs = [part.program for part in parts]
        if self.meter is None or not _same(programs, self.meter.programs):
            if self.meter is not None:
                self.meter.close()
            self.meter = ChainMeter(chain, from_start=True, workers=self.workers, parts=parts, **self.options)
        self._parts = parts
        self.meter.poll()

    def finish(self, chain) -> ChainMeter:
        """Read what is left after the render (the flush) and return the meter."""
        try:
            self(chain)
        finally:
            self.close()
        return self.meter

    def close(self) -> None:
        """Stop the meter's threads (:meth:`ChainMeter.close`); ``render_file`` calls it
        when the render fails."""
        self._join_populating()
        if self.meter is not None:
            self.meter.close()

    def _join_populating(self) -> None:
        if self._populating is not None:
            self._populating.join()
            self._populating = None
