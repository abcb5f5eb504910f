"""A duplex PortAudio stream whose callback never runs Python.

PortAudio calls a Numba ``@cfunc`` directly (through the C function pointer
passed to ``Pa_OpenStream``), so the audio thread never takes the GIL: a busy
or blocked Python interpreter cannot make the audio drop out.

Real-time rules for ``block_fn``
--------------------------------
``block_fn(ctl, inp, out, n)`` is a Numba-compiled function called once per
block on the audio thread.  It must

* never allocate (no array creation, no list/dict, no string formatting),
* never raise (an exception in compiled code makes Numba take the GIL on the
  audio thread to print it; compile with :data:`rtq.jit.kernel`, whose
  ``error_model='numpy'`` removes division checks, and keep indices in range),
* never block, sleep, do I/O or call back into Python (no ``objmode``),
* write all ``n`` frames of ``out`` and accept ``n == 0`` (it is called once
  with ``n == 0`` on a copy of the control block to warm up the code before
  the stream starts).

``inp`` and ``out`` are C-contiguous float32 arrays of shape
``(n, channels)`` -- PortAudio's interleaved buffers, viewed in place.

Control block
-------------
``ctl`` is a preallocated int64 array; PortAudio's ``userData`` points at it.
Words ``0 .. USER-1`` are the stream's header (see the word constants in this
module: channel counts, command word, counters, timing); words from ``USER`` on
belong to ``block_fn`` -- :meth:`DuplexStream.bind` stores array addresses and
shapes there, and ``block_fn`` turns them back into arrays with
``numba.carray(address_as_void_pointer(ctl[USER + k]), shape, dtype)``.
The callback only ever writes the header with plain aligned int64 stores, so
the main thread can read it at any time without locks.

Callback durations are measured with ``clock_gettime(CLOCK_MONOTONIC)``
called from compiled code (vDSO, no system call) and stored as a fraction of
the block period in a log-spaced histogram (:data:`HIST_BINS_PER_OCTAVE` bins
per doubling, i.e. about 4.4 % resolution) plus the exact maximum.
"""

from __future__ import annotations

import atexit
import functools
import math
import mmap
import threading
import time
import weakref
from dataclasses import dataclass

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core.ccallback import CFunc
from numba.core import cgutils
from numba.extending import intrinsic

from rtq.errors import RtqError
from rtq.live.portaudio import sd
from rtq.jit import address_as_void_pointer, kernel
from rtq.native import Entry
from rtq.live.devices import Device, resolve
from rtq.live.quiet import silenced_stderr

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
USER = 32  #: first word owned by block_fn

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

_STANDARD_RATES = (8000, 11025, 16000, 22050, 32000, 44100, 48000, 88200, 96000, 176400, 192000)


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


@intrinsic
def _sleep_until_ns(typingctx, deadline):
    """``clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)`` until ``deadline`` (ns, the
    clock of :func:`monotonic_ns`); returns 0, or the error (EINTR: woken early)."""

    def codegen(context, builder, signature, args):
        i32, i64 = ir.IntType(32), ir.IntType(64)
        timespec = ir.LiteralStructType([i64, i64])
        fnty = ir.FunctionType(i32, [i32, i32, timespec.as_pointer(), timespec.as_pointer()])
        sleep = cgutils.get_or_insert_function(builder.module, fnty, "clock_nanosleep")
        ts = cgutils.alloca_once(builder, timespec)
        billion = ir.Constant(i64, 1_000_000_000)
        builder.store(builder.sdiv(args[0], billion), cgutils.gep_inbounds(builder, ts, 0, 0))
        builder.store(builder.srem(args[0], billion), cgutils.gep_inbounds(builder, ts, 0, 1))
        absolute = ir.Constant(i32, 1)  # TIMER_ABSTIME
        return builder.call(sleep, [ir.Constant(i32, time.CLOCK_MONOTONIC), absolute, ts,
                                    ir.Constant(timespec.as_pointer(), None)])

    return types.int32(types.int64), codegen


@intrinsic
def _call_stream_callback(typingctx, callback, input_addr, output_addr, frames, user_data):
    """Call the ``PaStreamCallback`` at address ``callback`` (no time info, no flags)."""

    def codegen(context, builder, signature, args):
        i32, i64 = ir.IntType(32), ir.IntType(64)
        fnty = ir.FunctionType(i32, [i64] * 6)
        target = builder.inttoptr(args[0], fnty.as_pointer())
        zero = ir.Constant(i64, 0)
        return builder.call(target, [args[1], args[2], args[3], zero, zero, args[4]])

    return types.int32(types.int64, types.int64, types.int64, types.int64, types.int64), codegen


# int PaStreamCallback(const void *input, void *output, unsigned long frameCount,
#                      const PaStreamCallbackTimeInfo *timeInfo,
#                      PaStreamCallbackFlags statusFlags, void *userData)
# Pointers are taken as intp (same ABI on every 64-bit target numba supports).
_CALLBACK_SIG = types.int32(types.intp, types.intp, types.uintp, types.intp, types.uintp, types.intp)


@kernel
def _control_block(user_data):
    header = numba.carray(address_as_void_pointer(user_data), (USER,), np.int64)
    return numba.carray(address_as_void_pointer(user_data), (header[WORDS],), np.int64)


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
    hist = numba.carray(address_as_void_pointer(ctl[HIST_ADDR]), (ctl[HIST_LEN],), np.int64)
    b = int(HIST_BINS_PER_OCTAVE * math.log2(ppm)) if ppm >= 1 else 0
    hist[min(b, ctl[HIST_LEN] - 1)] += 1
    ctl[FRAMES] += n
    ctl[CALLBACKS] += 1


@kernel
def begin_callback(input_addr, output_addr, frames, user_data):
    """First half of every rtq stream callback: note the start time and view the
    control block and PortAudio's buffers as arrays; returns ``(ctl, inp, out, n, start)``."""
    start = monotonic_ns()
    ctl = _control_block(user_data)
    ctl[LAST_START_NS] = start
    n = np.int64(frames)
    inp = numba.carray(address_as_void_pointer(input_addr), (n, ctl[IN_CHANNELS]), np.float32)
    out = numba.carray(address_as_void_pointer(output_addr), (n, ctl[OUT_CHANNELS]), np.float32)
    return ctl, inp, out, n, start


@kernel
def end_callback(ctl, status, n, start):
    """Second half: record statistics and return the command word to PortAudio."""
    _record(ctl, status, n, start)
    return np.int32(ctl[COMMAND])


CALLBACK_SIGNATURE = _CALLBACK_SIG
"""PortAudio's ``PaStreamCallback``, for ``numba.cfunc``."""


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


@functools.cache
def make_callback(block_fn):
    """The PortAudio callback that runs ``block_fn`` on every block.

    Parameters
    ----------
    block_fn : numba dispatcher, CFunc or rtq.native.Entry
        ``@njit`` function ``block_fn(ctl, inp, out, n)`` with ``ctl`` an
        int64[::1] array, ``inp``/``out`` float32[:, ::1] arrays of shape
        ``(n, channels)`` and ``n`` an int64 frame count (see the module docstring
        for the real-time rules), or an already compiled callback, returned as is.

    Returns
    -------
    numba.core.ccallback.CFunc or rtq.native.Entry
        Compiled C callback with PortAudio's ``PaStreamCallback`` signature;
        pass its ``address`` to ``Pa_OpenStream``.  Memoised per ``block_fn``.

    Notes
    -----
    A callback made here is compiled on every process start (about 0.4 s when
    ``block_fn`` is cached): Numba's cache key for a closure includes the pickled
    closure cells, and a pickled dispatcher carries a per-process UUID, so
    ``cache=True`` would never hit.  Where start-up time matters, define the callback
    at module level as a C entry point instead (:mod:`rtq.native`), so that it loads
    in milliseconds::

        @Entry(CALLBACK_SIGNATURE)
        def my_callback(input_addr, output_addr, frames, time_info, status, user_data):
            ctl, inp, out, n, start = begin_callback(input_addr, output_addr, frames, user_data)
            my_block_fn(ctl, inp, out, n)
            return end_callback(ctl, status, n, start)
    """
    if isinstance(block_fn, (CFunc, Entry)):
        return block_fn

    @numba.cfunc(_CALLBACK_SIG, error_model="numpy")
    def callback(input_addr, output_addr, frames, time_info, status, user_data):
        ctl, inp, out, n, start = begin_callback(input_addr, output_addr, frames, user_data)
        block_fn(ctl, inp, out, n)
        return end_callback(ctl, status, n, start)

    return callback


@kernel
def passthrough(ctl, inp, out, n):
    """Reference ``block_fn``: copy input to output (channels beyond the input's are silent)."""
    shared = min(inp.shape[1], out.shape[1])
    out[:n, :shared] = inp[:n, :shared]
    out[:n, shared:] = 0.0


@Entry(types.void(types.int64))
def _finished_callback(user_data):
    """PaStreamFinishedCallback: mark the control block when the stream becomes inactive."""
    _control_block(user_data)[FINISHED] = 1


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


def _pa_error_text(err: int) -> str:
    text = sd._ffi.string(sd._lib.Pa_GetErrorText(err)).decode()
    if err == sd._lib.paUnanticipatedHostError:
        info = sd._lib.Pa_GetLastHostErrorInfo()
        text += f" ({sd._ffi.string(info.errorText).decode()}, code {info.errorCode})"
    return text


def _check(err: int, what: str) -> int:
    if err < 0:
        raise RtqError(f"{what}: {_pa_error_text(err)}")
    return err


def _split(value, name):
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise RtqError(f"{name} must be one value or an (input, output) pair, not {value!r}")
        return tuple(value)
    return value, value


def _stream_parameters(device: Device, kind: str, channels: int, latency):
    available = device.channels(kind)
    if not isinstance(channels, (int, np.integer)) or not 1 <= channels <= available:
        raise RtqError(
            f"{kind} device {device.describe()} offers 1..{available} {kind} channels, "
            f"not {channels!r}"
        )
    if latency in ("low", "high"):
        pair = device.default_low_latency if latency == "low" else device.default_high_latency
        seconds = pair[0 if kind == "input" else 1]
    elif isinstance(latency, (int, float)) and latency >= 0:
        seconds = float(latency)
    else:
        raise RtqError(f"latency must be 'low', 'high' or seconds >= 0, not {latency!r}")
    return sd._ffi.new(
        "PaStreamParameters*", (device.index, int(channels), sd._lib.paFloat32, seconds, sd._ffi.NULL)
    )


def _route(in_device: Device | None, out_device: Device) -> str:
    return out_device.describe() if in_device is None else f"{in_device.describe()} -> {out_device.describe()}"


def _close_stream(ptr, keepalive) -> None:
    """Close a PaStream; ``keepalive`` (callback, control block, bound arrays) lives until then."""
    sd._lib.Pa_CloseStream(ptr)


class StreamLost(RtqError):
    """The audio stream stopped without being asked to (e.g. the JACK server went away)."""


class UnsupportedRate(RtqError):
    """The devices cannot run the stream at the sample rate asked for (the message lists
    the standard rates they can)."""


#: Resources of lost streams.  PortAudio still holds pointers to them, so they are never freed.
_abandoned: list = []


class _CompiledCallbackStream:
    """What every rtq stream shares: the control block, bound arrays, the compiled
    callback (warmed up before use) and the statistics it keeps."""

    _started_ns: int | None = None  # set while the stream should be running

    def _setup_control(self, block_fn, in_channels: int, out_channels: int, samplerate: float,
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
        self._callback = make_callback(block_fn)
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
        """Make ``array`` reachable from ``block_fn`` through the control block.

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


class DuplexStream(_CompiledCallbackStream):
    """Full-duplex float32 stream whose callback is compiled code.

    Parameters
    ----------
    block_fn : numba dispatcher
        ``block_fn(ctl, inp, out, n)``, called on the audio thread for every
        block.  It must follow the real-time rules: no allocation, no
        exceptions, no blocking, no Python (see :mod:`rtq.live.stream`).
    device : int, str, None or pair
        Device index, case-insensitive name substring or None (default
        device); an ``(input, output)`` pair selects them separately.
    samplerate : float, optional
        Sample rate in Hz; default: the output device's default rate.
    blocksize : int
        Frames per callback.  0 lets the host choose (and vary) it.
    latency : {'low', 'high'} or float or pair
        Suggested latency: the device's default low/high latency, or seconds.
    channels : int or pair
        Input and output channel counts (one value for both, or a pair).  An input
        count of 0 opens the output alone (no input device is needed; ``block_fn``
        gets an input of no channels).
    user_words : int
        Control-block words reserved for ``block_fn`` after :data:`USER`.
    stall_timeout : float
        :meth:`check` declares the stream lost when no callback arrived for
        this many seconds while it should be running (also the limit for the
        first callback after :meth:`start`).

    Notes
    -----
    Samples are float32, interleaved; PortAudio's clipping and dithering are
    off (``paClipOff | paDitherOff``), so what ``block_fn`` writes reaches the
    host API bit-exactly.  The stream is opened in the constructor; use it as
    a context manager (or call :meth:`close`) to release it.

    While the stream runs, the main thread must call :meth:`check` (or
    :meth:`wait`) every ~0.1 s.  When the audio server dies, PortAudio never
    calls the stream-finished callback, any later ``Pa_StopStream``,
    ``Pa_AbortStream``, ``Pa_CloseStream`` or ``Pa_Terminate`` blocks forever,
    and ``Pa_Terminate`` at interpreter exit would hang.  :meth:`check`
    notices the loss (``Pa_IsStreamActive`` drops to 0 within ~10 ms of the
    server dying; a stalled server shows as a missing heartbeat), abandons
    the stream without calling PortAudio again, disarms sounddevice's exit
    handler and raises :class:`StreamLost`, so the program can exit normally.

    Raises
    ------
    RtqError
        One line, for unknown or ambiguous devices, unsupported sample rates
        or channel counts (listing what is available), and PortAudio errors.
    """

    def __init__(
        self,
        block_fn,
        *,
        device=None,
        samplerate: float | None = None,
        blocksize: int = 256,
        latency="low",
        channels=2,
        user_words: int = 0,
        stall_timeout: float = 1.0,
    ):
        idev, odev = _split(device, "device")
        ich, och = _split(channels, "channels")
        ilat, olat = _split(latency, "latency")
        in_device = None if ich == 0 else resolve(idev, "input")
        out_device = resolve(odev, "output")
        iparams = sd._ffi.NULL if in_device is None else _stream_parameters(in_device, "input", ich, ilat)
        oparams = _stream_parameters(out_device, "output", och, olat)
        if samplerate is None:
            samplerate = out_device.default_samplerate
        if not isinstance(blocksize, (int, np.integer)) or blocksize < 0:
            raise RtqError(f"blocksize must be a whole number of frames >= 0, not {blocksize!r}")
        self._check_format(iparams, oparams, float(samplerate), in_device, out_device)

        self._setup_control(block_fn, ich, och, samplerate, user_words)
        self._stall_ns = int(stall_timeout * 1e9)

        pp = sd._ffi.new("PaStream**")
        _check(
            sd._lib.Pa_OpenStream(
                pp,
                iparams,
                oparams,
                float(samplerate),
                int(blocksize),
                sd._lib.paClipOff | sd._lib.paDitherOff,
                sd._ffi.cast("PaStreamCallback *", self._callback.address),
                sd._ffi.cast("void *", self._ctl.ctypes.data),
            ),
            f"cannot open stream on {_route(in_device, out_device)}",
        )
        self._ptr = pp[0]
        self._keepalive = (self._callback, self._ctl, self._hist, self._bound, self._held)
        self._closer = weakref.finalize(self, _close_stream, self._ptr, self._keepalive)
        _check(
            sd._lib.Pa_SetStreamFinishedCallback(
                self._ptr, sd._ffi.cast("PaStreamFinishedCallback *", _finished_callback.address)
            ),
            "cannot set the stream-finished callback",
        )
        info = sd._lib.Pa_GetStreamInfo(self._ptr)
        self.samplerate: float = info.sampleRate
        """Actual sample rate in Hz."""
        self.latency: tuple[float, float] = (info.inputLatency, info.outputLatency)
        """(input, output) latency in seconds as reported by PortAudio."""
        self.blocksize: int = int(blocksize)
        self.channels: tuple[int, int] = (int(ich), int(och))
        self.devices: tuple[Device | None, Device] = (in_device, out_device)

    @staticmethod
    def _check_format(iparams, oparams, samplerate, in_device, out_device):
        err = sd._lib.Pa_IsFormatSupported(iparams, oparams, samplerate)
        if err >= 0:
            return
        where = _route(in_device, out_device)
        if err == sd._lib.paInvalidSampleRate:
            ok = [r for r in _STANDARD_RATES if sd._lib.Pa_IsFormatSupported(iparams, oparams, r) >= 0]
            supported = ", ".join(map(str, ok)) if ok else "none of the standard rates"
            raise UnsupportedRate(f"sample rate {samplerate:g} Hz is not supported by {where}; "
                                  f"supported: {supported}")
        raise RtqError(f"cannot use {where}: {_pa_error_text(err)}")

    # -- life cycle ---------------------------------------------------------
    @property
    def closed(self) -> bool:
        """True after :meth:`close` (or after the stream was lost)."""
        return not self._closer.alive

    def start(self) -> None:
        """Start calling ``block_fn``.

        Raises
        ------
        StreamLost
            If PortAudio cannot start the stream (typically: the audio server died
            after the stream was opened).  The stream is then abandoned, not closed.
        """
        if self.closed:
            raise RuntimeError("stream is closed")
        self._ctl[COMMAND] = CONTINUE
        self._ctl[FINISHED] = 0
        self._ctl[LAST_START_NS] = 0
        with silenced_stderr():
            err = sd._lib.Pa_StartStream(self._ptr)
        if err < 0:
            # The server may have died since the stream was opened; closing it would
            # then abort the process inside PortAudio, so it is abandoned instead.
            self._abandon(f"cannot start it (audio server gone?): {_pa_error_text(err)}")
        self._started_ns = time.monotonic_ns()

    def check(self) -> bool:
        """Watchdog: call every ~0.1 s while the stream runs.

        Returns
        -------
        bool
            True while the stream is running, False once it is stopped or
            ``block_fn`` ended it (by setting ``ctl[COMMAND]``).

        Raises
        ------
        StreamLost
            When the stream stopped on its own or no callback arrived within
            ``stall_timeout``.  The stream is then abandoned (see class notes).
        """
        if self._started_ns is None:
            return False
        if sd._lib.Pa_IsStreamActive(self._ptr) != 1:
            if self._ctl[COMMAND] != CONTINUE or self._ctl[FINISHED]:
                return False
            self._abandon("the audio stream stopped unexpectedly (audio server gone?)")
        last = int(self._ctl[LAST_START_NS]) or self._started_ns
        silent = time.monotonic_ns() - last
        if silent > self._stall_ns:
            self._abandon(f"no audio callback for {silent / 1e9:.1f} s (audio server stalled or gone?)")
        return True

    def _abandon(self, reason: str):
        """Forget the stream without calling PortAudio again, then raise StreamLost."""
        self._started_ns = None
        _abandoned.append(self._keepalive)
        self._closer.detach()
        atexit.unregister(sd._exit_handler)
        raise StreamLost(f"audio stream lost: {reason}")

    def stop(self) -> None:
        """Stop after the pending buffers have been played; no-op when not started.

        Raises
        ------
        StreamLost
            If the stream was lost before it could be stopped cleanly.
        """
        if self._started_ns is None:
            return
        self.check()
        if sd._lib.Pa_IsStreamStopped(self._ptr) != 1:
            _check(sd._lib.Pa_StopStream(self._ptr), "cannot stop stream")
        self._started_ns = None

    def close(self) -> None:
        """Stop and release the stream; idempotent, and a no-op once the stream was lost.

        Raises
        ------
        StreamLost
            If the loss is only noticed here; the stream is then abandoned.
        """
        if not self.closed:
            self.stop()
            self._closer()


@Entry(types.void(types.int64, types.int64, types.int64, types.int64, types.int64, types.int64))
def _null_clock(callback, input_addr, output_addr, frames, user_data, period_ns):
    """The null stream's clock: call ``callback`` every ``period_ns`` against absolute
    deadlines until it or ``ctl[COMMAND]`` says stop.  Native from end to end, so no
    block waits for the GIL; a block that starts more than a period late counts as an
    output underflow, and the schedule starts again from then."""
    ctl = _control_block(user_data)
    deadline = monotonic_ns()
    while ctl[COMMAND] == CONTINUE:
        if _call_stream_callback(callback, input_addr, output_addr, frames, user_data) != CONTINUE:
            return
        deadline += period_ns
        now = monotonic_ns()
        if now - deadline > period_ns:
            ctl[OUTPUT_UNDERFLOWS] += 1
            deadline = now
        while monotonic_ns() < deadline and ctl[COMMAND] == CONTINUE:  # again after EINTR
            _sleep_until_ns(deadline)


_running_null_streams: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _stop_null_streams() -> None:
    """Stop every running null stream before the interpreter tears its arrays down: the
    compiled clock never takes the GIL, so nothing else would stop it (it crashed the
    exit of a process that left one running)."""
    for stream in list(_running_null_streams):
        stream.stop()


class NullStream(_CompiledCallbackStream):
    """A stream with no sound card: the same compiled callback, called in real time.

    A thread calls the callback every ``blocksize / samplerate`` seconds against absolute
    deadlines, with silent input; the output is discarded.  The whole clock loop is
    compiled (:func:`_null_clock`) and entered once through ctypes, which releases the
    GIL: like PortAudio's thread on a device, no block waits for Python.  (A Python loop
    took the GIL back after every block, and a busy main thread made it miss deadlines:
    4-13 underflows in 3 s of ``rtq live --json dsd64-1bit``.)  A block that starts
    more than one period late counts as an output underflow.  Same interface as
    :class:`DuplexStream` (``start``, ``check``, ``wait``, ``stop``, ``close``, ``bind``,
    ``stats``).
    """

    def __init__(self, block_fn, *, samplerate: float = 48000.0, blocksize: int = 256,
                 channels: int = 2, user_words: int = 0):
        blocksize = int(blocksize) or 256
        self._setup_control(block_fn, channels, channels, samplerate, user_words)
        self._buffers = (np.zeros((blocksize, channels), np.float32),
                         np.zeros((blocksize, channels), np.float32))
        for buffer in self._buffers:
            prefault(buffer)
        self.samplerate = float(samplerate)
        self.blocksize = blocksize
        self.channels = (int(channels), int(channels))
        self.latency = (0.0, 0.0)
        self.devices = None
        _null_clock.ctypes  # resolved (loaded or compiled) here, not in start()
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def start(self) -> None:
        if self._closed:
            raise RuntimeError("stream is closed")
        if self.check():
            raise RuntimeError("stream is already running")
        self._ctl[COMMAND] = CONTINUE
        self._thread = threading.Thread(target=self._clock, name="rtq-null-stream", daemon=True)
        self._started_ns = time.monotonic_ns()
        _running_null_streams.add(self)
        self._thread.start()

    def _clock(self) -> None:
        inp, out = (b.ctypes.data for b in self._buffers)
        period_ns = max(1, round(self.blocksize / self.samplerate * 1e9))
        _null_clock.ctypes(self._callback.address, inp, out, self.blocksize, self._ctl.ctypes.data, period_ns)

    def check(self) -> bool:
        """True while the clock thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        if self._thread is not None:
            if self._thread.is_alive():
                self._ctl[COMMAND] = ABORT   # the clock reads it after every block and wake-up
                self._thread.join()
                self._ctl[COMMAND] = CONTINUE
            self._thread = None
        _running_null_streams.discard(self)
        self._started_ns = None

    def close(self) -> None:
        self.stop()
        self._closed = True
