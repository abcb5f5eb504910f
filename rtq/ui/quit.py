"""Ending a running live session from the UI: :class:`Quit`, and SIGTERM turned into it."""
from __future__ import annotations

import signal
import threading


class Quit(Exception):
    """Raised from a tick to end the session (the ``q`` key, SIGTERM, a closed pipe)."""


class SigtermAsQuit:
    """While active (on the main thread), SIGTERM raises :class:`Quit`, so the session
    ends like ``q``: the terminal is restored and the summary printed."""

    def __enter__(self):
        self._old = None
        if threading.current_thread() is threading.main_thread():
            def handler(signum, frame):
                raise Quit()
            self._old = signal.signal(signal.SIGTERM, handler)
        return self

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)
