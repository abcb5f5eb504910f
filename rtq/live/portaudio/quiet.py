"""Silencing what PortAudio and libjack print to the process's stderr."""

from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def silenced_stderr():
    """Point file descriptor 2 at /dev/null for the duration of the block.

    PortAudio and libjack write diagnostics straight to fd 2 (host-API probing, failed
    assertions in ``pa_jack.c`` when the server is gone); rtq reports such failures in
    its own single line instead.  Only for short set-up calls on the main thread: while
    it is active, nothing in the process can write to stderr.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
