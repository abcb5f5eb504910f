"""The live callback and its control block: what every stream backend shares.

A stream backend (:mod:`rtq.live.portaudio.stream` on a sound card,
:mod:`rtq.live.nullstream` without one) calls a compiled C callback with PortAudio's
``PaStreamCallback`` signature (:data:`CALLBACK_SIGNATURE`) once per block, from its
audio thread, which never takes the GIL: a busy or blocked Python interpreter cannot
make the audio drop out.  Such a callback is a C entry point (:mod:`rtq.native`) that
wraps one *block function* between :func:`begin_callback` and :func:`end_callback`::

    @Entry(CALLBACK_SIGNATURE)
    def my_callback(input_addr, output_addr, frames, time_info, status, user_data):
        ctl, inp, out, n, start = begin_callback(input_addr, output_addr, frames, user_data)
        my_block(ctl, inp, out, n)
        return end_callback(ctl, status, n, start)

(:func:`rtq.live.engine.engine_callback` is the one rtq plays through.)

Real-time rules for the block function
--------------------------------------
``block(ctl, inp, out, n)`` is a Numba-compiled function called once per block on the
audio thread.  It must

* never allocate (no array creation, no list/dict, no string formatting),
* never raise (an exception in compiled code makes Numba take the GIL on the
  audio thread to print it; compile with :data:`rtq.jit.kernel`, whose
  ``error_model='numpy'`` removes division checks, and keep indices in range),
* never block, sleep, do I/O or call back into Python (no ``objmode``),
* write all ``n`` frames of ``out`` and accept ``n == 0`` (the callback is called once
  with ``n == 0`` on a copy of the control block to warm up the code before the
  stream starts).

``inp`` and ``out`` are C-contiguous float32 arrays of shape ``(n, channels)`` --
PortAudio's interleaved buffers, viewed in place.

Control block
-------------
``ctl`` is a preallocated int64 array; the callback's ``user_data`` points at it.
Words ``0 .. USER-1`` are the stream's header (see the word constants in this
module: channel counts, command word, counters, timing); words from ``USER`` on
belong to the block function -- :meth:`CallbackStream.bind` stores array addresses and
shapes there, and the block function turns them back into arrays with
``carray(address_as_void_pointer(ctl[USER + k]), shape, dtype)``.
The callback only ever writes the header with plain aligned int64 stores, so
the main thread can read it at any time without locks.

Callback durations are measured with ``clock_gettime(CLOCK_MONOTONIC)``
called from compiled code (vDSO, no system call) and stored as a fraction of
the block period in a log-spaced histogram (:data:`HIST_BINS_PER_OCTAVE` bins
per doubling, i.e. about 4.4 % resolution) plus the exact maximum.
"""

from __future__ import annotations

import math
import mmap
import time
from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from rtq.errors import RtqError
from rtq.jit import address_as_void_pointer, carray, cgutils, intrinsic, kernel, types

# ---------------------------------------------------------------------------
# Control block layout (int64 word indices)
WORDS = 0  #: total length of the control block in words
IN_CHANNELS = 1  #: input channels per frame
OUT_CHANNELS = 2  #: output channels per frame
SAMPLERATE = 3  #: nominal sample rate in Hz (rounded)
COMMAND = 4  #: value the callback returns: CONTINUE, COMPLETE or ABORT (writable by anyone)
CALLBACKS = 5  #: number of completed callbacks
FRAMES = 6  #: number of frames processed
INPUT_UNDERFLOWS = 7  #: callbacks flagged paInputUnderflow
INPUT_OVERFLOWS = 8  #: callbacks flagged paInputOverflow
OUTPUT_UNDERFLOWS = 9  #: callbacks flagged paOutputUnderflow
OUTPUT_OVERFLOWS = 10  #: callbacks flagged paOutputOverflow
PRIMING = 11  #: callbacks flagged paPrimingOutput
LAST_START_NS = 12  #: CLOCK_MONOTONIC time at which the latest callback started
LAST_DURATION_NS = 13  #: duration of the latest callback
MAX_DURATION_NS = 14  #: longest callback
MAX_LOAD_PPM = 15  #: largest callback duration / block period, in parts per million
HIST_ADDR = 16  #: address of the int64 load histogram
HIST_LEN = 17  #: number of histogram bins
FINISHED = 18  #: set to 1 by PortAudio's stream-finished callback
USER = 32  #: first word owned by the block function

# Values of the COMMAND word (PortAudio's PaStreamCallbackResult).
CONTINUE = 0
COMPLETE = 1
ABORT = 2

HIST_BINS_PER_OCTAVE = 16
#: bin ``b`` counts loads in ``[2**(b/16), 2**((b+1)/16))`` ppm of the block period;
#: the last bin also holds everything above 2**24 ppm (16.7 periods).
HIST_BINS = 24 * HIST_BINS_PER_OCTAVE

# PaStreamCallbackFlags bits
_IN_UNDERFLOW, _IN_OVERFLOW, _OUT_UNDERFLOW, _OUT_OVERFLOW, _PRIMING = 1, 2, 4, 8, 16


# ---------------------------------------------------------------------------
# Compiled helpers
@intrinsic
def monotonic_ns(typingctx):
    """``clock_gettime(CLOCK_MONOTONIC)`` in nanoseconds, callable from nopython code.

    The libc symbol is referenced by name (resolved when the code is linked),
    so functions using it stay cacheable.  Same clock as ``time.monotonic_ns()``.
    """

    def codegen(context, builder, signature, args):
        i32, i64 = ir.IntType(32), ir.IntType(64)
        timespec = ir.LiteralStructType([i64, i64])
        fnty = ir.FunctionType(i32, [i32, timespec.as_pointer()])
        clock_gettime = cgutils.get_or_insert_function(builder.module, fnty, "clock_gettime")
        ts = cgutils.alloca_once(builder, timespec)
        builder.call(clock_gettime, [ir.Constant(i32, time.CLOCK_MONOTONIC), ts])
        sec = builder.load(cgutils.gep_inbounds(builder, ts, 0, 0))
        nsec = builder.load(cgutils.gep_inbounds(builder, ts, 0, 1))
        return builder.add(builder.mul(sec, ir.Constant(i64, 1_000_000_000)), nsec)

    return types.int64(), codegen


# int PaStreamCallback(const void *input, void *output, unsigned long frameCount,
#                      const PaStreamCallbackTimeInfo *timeInfo,
#                      PaStreamCallbackFlags statusFlags, void *userData)
# Pointers are taken as intp (same ABI on every 64-bit target numba supports).
#: PortAudio's ``PaStreamCallback``, for :class:`rtq.native.Entry` (or ``numba.cfunc``).
CALLBACK_SIGNATURE = "int32(intp, intp, uintp, intp, uintp, intp)"


@kernel
def control_block(user_data):
    header = carray(address_as_void_pointer(user_data), (USER,), np.int64)
    return carray(address_as_void_pointer(user_data), (header[WORDS],), np.int64)


@kernel
def _record(ctl, status, n, start):
    """Update counters and timing statistics after one block."""
    if status & _IN_UNDERFLOW:
        ctl[INPUT_UNDERFLOWS] += 1
    if status & _IN_OVERFLOW:
        ctl[INPUT_OVERFLOWS] += 1
    if status & _OUT_UNDERFLOW:
        ctl[OUTPUT_UNDERFLOWS] += 1
    if status & _OUT_OVERFLOW:
        ctl[OUTPUT_OVERFLOWS] += 1
    if status & _PRIMING:
        ctl[PRIMING] += 1
    if n == 0:
        return
    duration = monotonic_ns() - start
    ctl[LAST_DURATION_NS] = duration
    ctl[MAX_DURATION_NS] = max(ctl[MAX_DURATION_NS], duration)
    # duration / (n / samplerate) in ppm
    ppm = duration * ctl[SAMPLERATE] // (n * 1000)
    ctl[MAX_LOAD_PPM] = max(ctl[MAX_LOAD_PPM], ppm)
    hist = carray(address_as_void_pointer(ctl[HIST_ADDR]), (ctl[HIST_LEN],), np.int64)
    b = int(HIST_BINS_PER_OCTAVE * math.log2(ppm)) if ppm >= 1 else 0
    hist[min(b, ctl[HIST_LEN] - 1)] += 1
    ctl[FRAMES] += n
    ctl[CALLBACKS] += 1


@kernel
def begin_callback(input_addr, output_addr, frames, user_data):
    """First half of every rtq stream callback: note the start time and view the
    control block and PortAudio's buffers as arrays; returns ``(ctl, inp, out, n, start)``."""
    start = monotonic_ns()
    ctl = control_block(user_data)
    ctl[LAST_START_NS] = start
    n = np.int64(frames)
    inp = carray(address_as_void_pointer(input_addr), (n, ctl[IN_CHANNELS]), np.float32)
    out = carray(address_as_void_pointer(output_addr), (n, ctl[OUT_CHANNELS]), np.float32)
    return ctl, inp, out, n, start


@kernel
def end_callback(ctl, status, n, start):
    """Second half: record statistics and return the command word to PortAudio."""
    _record(ctl, status, n, start)
    return np.int32(ctl[COMMAND])


def prefault(array: np.ndarray) -> None:
    """Touch every memory page of the C-contiguous ``array``, so the audio thread never
    takes a page fault on memory the OS allocated lazily: a writable array is rewritten
    in place (same values), a read-only one is read."""
    if not array.flags.c_contiguous:
        raise ValueError("prefault needs a C-contiguous array")
    flat = array.reshape(-1).view(np.uint8)
    if not flat.size:
        return
    # Byte 0 (in the first page) and the first byte of every later page.
    starts = flat[-flat.ctypes.data % mmap.PAGESIZE::mmap.PAGESIZE]
    if array.flags.writeable:
        # In place: NumPy skips a copy of an array onto itself (``a[::k] = a[::k]``
        # faulted nothing in, and first callbacks took the faults: 156 ms at 64 channels).
        flat[:1] |= 0
        starts |= 0
    else:
        flat[:1].max(initial=0)
        starts.max(initial=0)


# ---------------------------------------------------------------------------
# Python side
@dataclass(frozen=True)
class StreamStats:
    """Snapshot of a stream's counters.

    Loads are callback durations as a fraction of the block period
    (1.0 = the whole period); percentiles come from a log histogram with
    about 4.4 % relative resolution, ``load_max`` is exact.  ``None`` before
    the first callback.
    """

    callbacks: int
    frames: int
    input_underflows: int
    input_overflows: int
    output_underflows: int
    output_overflows: int
    priming: int
    load_p50: float | None
    load_p99: float | None
    load_max: float | None
    max_duration: float
    seconds_since_callback: float | None

    @property
    def xruns(self) -> int:
        """Blocks where PortAudio reported lost input or output."""
        return self.input_overflows + self.output_underflows + self.input_underflows + self.output_overflows


def _percentile(hist: np.ndarray, q: float) -> float | None:
    total = int(hist.sum())
    if total == 0:
        return None
    b = int(np.searchsorted(np.cumsum(hist), q * total, side="left"))
    return 2.0 ** ((b + 0.5) / HIST_BINS_PER_OCTAVE) / 1e6


class StreamLost(RtqError):
    """The audio stream stopped without being asked to (e.g. the JACK server went away)."""


class CallbackStream:
    """What every rtq stream backend shares: the control block, bound arrays, the
    compiled callback (warmed up before use) and the statistics it keeps.

    A backend calls :meth:`_setup_control` in its constructor and implements
    ``start``, ``check`` (the watchdog :meth:`wait` calls), ``stop``, ``close`` and
    ``closed``; it sets ``samplerate``, ``blocksize``, ``channels``, ``latency`` and
    ``devices``.
    """

    _started_ns: int | None = None  # set while the stream should be running
    scheduling: str | None = None   # what the audio thread runs under, when the backend sets it

    def _setup_control(self, callback, in_channels: int, out_channels: int, samplerate: float,
                       user_words: int) -> None:
        self._ctl = np.zeros(USER + user_words, np.int64)
        self._hist = np.zeros(HIST_BINS, np.int64)
        self._ctl[WORDS] = self._ctl.size
        self._ctl[IN_CHANNELS] = in_channels
        self._ctl[OUT_CHANNELS] = out_channels
        self._ctl[SAMPLERATE] = round(samplerate)
        self._ctl[HIST_ADDR] = self._hist.ctypes.data
        self._ctl[HIST_LEN] = self._hist.size
        self._bound: dict[int, np.ndarray] = {}
        self._held: dict = {}
        self._callback = callback
        self._warm_up()

    def _warm_up(self):
        """Run the compiled callback once, off the audio thread, with n == 0 on a copy of ctl."""
        ctl = self._ctl.copy()
        buf = np.zeros(1, np.float32)
        self._callback.ctypes(buf.ctypes.data, buf.ctypes.data, 0, 0, 0, ctl.ctypes.data)

    # -- control block ------------------------------------------------------
    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop` (or the stream's loss)."""
        return self._started_ns is not None

    @property
    def ctl(self) -> np.ndarray:
        """The int64 control block the callback reads and writes (see module docs)."""
        return self._ctl

    def bind(self, word: int, array: np.ndarray) -> int:
        """Make ``array`` reachable from the block function through the control block.

        Stores the array's address at ``ctl[USER + word]`` and its shape in the
        following ``array.ndim`` words, faults its pages in (:func:`prefault`), and
        keeps the array alive as long as the stream.  Only allowed while the stream is
        stopped.

        Returns
        -------
        int
            The next free user word (``word + 1 + array.ndim``).
        """
        if not array.flags.c_contiguous:
            raise ValueError("bound arrays must be C-contiguous")
        end = USER + word + 1 + array.ndim
        if word < 0 or end > self._ctl.size:
            raise ValueError(f"user words {word}..{end - USER - 1} exceed user_words={self._ctl.size - USER}")
        if self._started_ns is not None:
            raise RuntimeError("cannot bind arrays while the stream is running")
        prefault(array)
        self._bound[word] = array
        self._ctl[USER + word] = array.ctypes.data
        self._ctl[USER + word + 1 : end] = array.shape
        return word + 1 + array.ndim

    def hold(self, key, obj) -> None:
        """Keep ``obj`` (memory that bound arrays hold addresses into) alive as long as
        the stream, in place of what was held under ``key``."""
        self._held[key] = obj

    def wait(self, timeout: float | None = None, poll: float = 0.05) -> bool:
        """Sleep while the stream runs, calling :meth:`check` every ``poll`` seconds.

        Returns
        -------
        bool
            False when the stream finished, True when ``timeout`` expired first.

        Raises
        ------
        StreamLost
            See :meth:`check`.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.check():
            if deadline is not None and time.monotonic() >= deadline:
                return True
            time.sleep(poll if deadline is None else max(0.0, min(poll, deadline - time.monotonic())))
        return False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- statistics ---------------------------------------------------------
    def stats(self) -> StreamStats:
        """Read the counters the callback maintains (lock-free snapshot)."""
        c = self._ctl.copy()
        hist = self._hist.copy()
        ran = c[CALLBACKS] > 0
        return StreamStats(
            callbacks=int(c[CALLBACKS]),
            frames=int(c[FRAMES]),
            input_underflows=int(c[INPUT_UNDERFLOWS]),
            input_overflows=int(c[INPUT_OVERFLOWS]),
            output_underflows=int(c[OUTPUT_UNDERFLOWS]),
            output_overflows=int(c[OUTPUT_OVERFLOWS]),
            priming=int(c[PRIMING]),
            load_p50=_percentile(hist, 0.5),
            load_p99=_percentile(hist, 0.99),
            load_max=float(c[MAX_LOAD_PPM]) / 1e6 if ran else None,
            max_duration=float(c[MAX_DURATION_NS]) / 1e9,
            seconds_since_callback=(time.monotonic_ns() - int(c[LAST_START_NS])) / 1e9 if ran else None,
        )
