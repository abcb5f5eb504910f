"""Getting a rendered file onto its disk while it is written, so that the sync before it
is published is short.

A rendered file is synced before it gets its name (:func:`rtq.render.render_file`): after
a crash or a power cut its name never points at data the disk does not hold, and a file
it replaced (``--force``) is never traded for one that was not written yet.  Left to
itself, the kernel writes a file's data out only when memory fills or after half a
minute, so that sync would wait for all of it (BENCHMARKS.md).  :class:`WriteBack` starts
the write-out of every few megabytes as soon as they are written (Linux
``sync_file_range(SYNC_FILE_RANGE_WRITE)``, which queues the pages for the disk and
does not wait for it), so the disk works while the render goes on and the sync has at
most the last few megabytes to wait for.  What is written, and when it is durable, stay
the same: this only starts early what the sync would do.  A write-out that fails is
reported by that sync (the kernel keeps the error for it).
"""
from __future__ import annotations

import ctypes
import os

# Bytes written between two write-outs: big enough to be a few requests for the disk,
# small enough that the final sync has little left, and that a short output (a 20 s CD
# file is 3.5 MB) is mostly on its way to the disk before its sync.
WRITE_BACK_BYTES = 1 << 20
_SYNC_FILE_RANGE_WRITE = 2      # <fcntl.h>


def _sync_file_range():
    """libc's ``sync_file_range``, or None where there is none (not Linux)."""
    call = getattr(ctypes.CDLL(None, use_errno=True), "sync_file_range", None)
    if call is not None:
        call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
        call.restype = ctypes.c_int
    return call


class WriteBack:
    """Starts the write-out of what has been written to the file ``fd`` (through its
    own offset, as libsndfile writes), every :data:`WRITE_BACK_BYTES`.

    Call it after each write, on the thread that writes (it may wait while the disk's
    queue is full, never for the disk to finish).  Best effort: where the call is
    missing, or the filesystem does not take it, nothing happens.
    """

    def __init__(self, fd: int):
        self.fd = fd
        self.started = 0        # bytes from the start whose write-out has been started
        self._call = _sync_file_range()

    def __call__(self) -> None:
        if self._call is None:
            return
        end = os.lseek(self.fd, 0, os.SEEK_CUR)
        if end - self.started >= WRITE_BACK_BYTES:
            self._call(self.fd, self.started, end - self.started, _SYNC_FILE_RANGE_WRITE)
            self.started = end
