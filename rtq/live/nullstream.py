"""The null stream: rtq's audio path in real time with no sound card.

:class:`NullStream` calls the same compiled callback as a sound card would
(:mod:`rtq.live.callback`), every ``blocksize / samplerate`` seconds, from a clock that
is compiled from end to end (:func:`_null_clock`: ``clock_nanosleep`` to absolute
deadlines), entered once through ctypes from a thread: like PortAudio's thread on a
device, no block waits for the GIL.  Like an audio server's thread, that thread runs
under real-time scheduling when the system allows it (:data:`CLOCK_PRIORITY`), so the
screen and every other process's work wait for it rather than it for them.  The input
is silent and the output is discarded.  ``rtq live`` plays into it when there is no
audio device.
"""
from __future__ import annotations

import atexit
import os
import threading
import time
import weakref

import numpy as np
from llvmlite import ir

from rtq.jit import cgutils, intrinsic, types
from rtq.live.callback import (ABORT, COMMAND, CONTINUE, OUTPUT_UNDERFLOWS, CallbackStream, control_block,
                               monotonic_ns, prefault)
from rtq.native import Entry


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


@Entry("void(int64, int64, int64, int64, int64, int64)")
def _null_clock(callback, input_addr, output_addr, frames, user_data, period_ns):
    """The null stream's clock: call ``callback`` every ``period_ns`` against absolute
    deadlines until it or ``ctl[COMMAND]`` says stop.  Native from end to end, so no
    block waits for the GIL; a block that starts more than a period late counts as an
    output underflow, and the schedule starts again from then."""
    ctl = control_block(user_data)
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


#: SCHED_FIFO priority of the clock thread: above the real-time threads of audio servers
#: sharing the machine (a default ``jackd -R``'s is 10, its clients' 5), below the
#: kernel's own (50 and up).  Under the normal scheduler, or at JACK clients' priority
#: beside busy servers, the clock started blocks a period late (BENCHMARKS.md).
CLOCK_PRIORITY = 20


def make_realtime(priority: int = CLOCK_PRIORITY) -> str:
    """Put the calling thread under SCHED_FIFO at ``priority`` if the system allows it
    (root, CAP_SYS_NICE or an RLIMIT_RTPRIO of at least ``priority``); returns what it
    runs under, for the session's summary."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))  # 0: this thread
    except OSError as err:
        return f"normal scheduling (real-time refused: {err.strerror})"
    return f"real-time (SCHED_FIFO {priority})"


_running_null_streams: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _stop_null_streams() -> None:
    """Stop every running null stream before the interpreter tears its arrays down: the
    compiled clock never takes the GIL, so nothing else would stop it (it crashed the
    exit of a process that left one running)."""
    for stream in list(_running_null_streams):
        stream.stop()


class NullStream(CallbackStream):
    """A stream with no sound card: the same compiled callback, called in real time.

    A thread calls the callback every ``blocksize / samplerate`` seconds against absolute
    deadlines, with silent input; the output is discarded.  The whole clock loop is
    compiled (:func:`_null_clock`) and entered once through ctypes, which releases the
    GIL: a Python loop would take the GIL back after every block, and a busy main thread
    would make it miss deadlines (the README has the figures).  That thread asks for
    real-time scheduling (:func:`make_realtime`; :attr:`scheduling` says what it got).
    A block that starts more than one period late counts as an output underflow.  Same interface as
    :class:`~rtq.live.portaudio.stream.DuplexStream` (``start``, ``check``, ``wait``,
    ``stop``, ``close``, ``bind``, ``stats``).
    """

    def __init__(self, callback, *, samplerate: float = 48000.0, blocksize: int = 256,
                 channels: int = 2, user_words: int = 0):
        blocksize = int(blocksize) or 256
        self._setup_control(callback, channels, channels, samplerate, user_words)
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
        self.scheduling: str | None = None
        """What the clock thread runs under (:func:`make_realtime`); None before the first start."""
        self.clock_thread_id: int | None = None
        """The native id of the latest clock thread started."""

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
        self._ready = threading.Event()
        self._thread.start()
        self._ready.wait()      # the scheduling is known once start() returns

    def _clock(self) -> None:
        self.clock_thread_id = threading.get_native_id()
        self.scheduling = make_realtime()
        self._ready.set()
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
