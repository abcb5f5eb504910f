"""Keeping the CPUs quick to wake while a stream runs (Linux's CPU latency QoS).

An idle CPU sleeps in an idle state, and the deeper the state the longer it takes to
wake: the audio thread's wake-up, and the audio server's timer, start late by that
much every block.  In a virtual machine the idle state is a halt that hands the CPU
back to the host, which runs other work on it and leaves our caches cold.  The request
below shortens a paced block's callback and the audio server's xruns; its price is that
the polling CPU competes for its core's execution units, so work running back to back on
a sibling gets slower (measured with ``tools/bench_callback.py``: BENCHMARKS.md).

Writing a maximum latency to ``/dev/cpu_dma_latency`` asks the kernel to use no idle
state slower than that to leave, on every CPU, for as long as the file stays open; the
kernel drops the request when it is closed, also when the process dies, so it can never
outlive rtq.  0 us means busy-polling when idle: it costs power (the CPUs never sleep)
and is what low-latency audio set-ups choose (Ardour offers the same setting).  Writing
needs root or write permission on the device (a udev rule); without it the request is
simply not held and the summary says why.
"""
from __future__ import annotations

import os
import struct

DEVICE = "/dev/cpu_dma_latency"


def system_limit(device: str = DEVICE) -> int | None:
    """The limit the kernel applies now, in us (the smallest held request; 2000000000 if
    none), or None when it cannot be read (reading needs root)."""
    try:
        with open(device, "rb") as f:
            data = f.read(4)
    except OSError:
        return None
    return struct.unpack("=i", data)[0] if len(data) == 4 else None


class WakeupLatency:
    """A held CPU latency QoS request: idle CPUs wake within ``microseconds``.

    Use as a context manager or with :meth:`acquire` / :meth:`release` (both
    idempotent).  Never raises for a missing or forbidden device: :attr:`status` says
    what happened.  Not for the audio thread (it makes system calls); the live session
    holds it from before the stream starts until after it stops.
    """

    def __init__(self, microseconds: int = 0, device: str = DEVICE):
        if not 0 <= microseconds < 2 ** 31:
            raise ValueError("the latency is a number of microseconds, 0 to 2^31 - 1")
        self.microseconds = int(microseconds)
        self.device = device
        self._fd: int | None = None
        self.status = "not requested"

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> bool:
        """Hold the request; returns whether it is held."""
        if self._fd is None:
            fd = None
            try:
                fd = os.open(self.device, os.O_WRONLY | os.O_CLOEXEC)
                os.write(fd, struct.pack("=i", self.microseconds))
            except OSError as err:
                if fd is not None:
                    os.close(fd)
                self.status = f"not held ({self.device}: {err.strerror})"
                return False
            self._fd = fd
            self.status = f"held at {self.microseconds} us"
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "WakeupLatency":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
