"""Single key presses from the terminal, without blocking and without echo.

:class:`KeyReader` puts the terminal on stdin into cbreak mode (no line buffering, no
echo; Ctrl-C still sends SIGINT) for the length of a ``with`` block and restores the
saved settings when the block ends, however it ends (exception, Ctrl-C).  Its
:meth:`~KeyReader.read` returns the keys pressed since the last call, at once.

Keys are named by :func:`decode_keys`: printable characters stand for themselves;
``up``, ``down``, ``left``, ``right``, ``tab``, ``shift-tab``, ``enter``, ``esc`` and
``backspace`` name the special keys.
"""
from __future__ import annotations

import os
import select
import sys

# Escape sequences of the special keys (ANSI/xterm, normal and application cursor mode).
_SEQUENCES = {
    "\x1b[A": "up", "\x1b[B": "down", "\x1b[C": "right", "\x1b[D": "left",
    "\x1bOA": "up", "\x1bOB": "down", "\x1bOC": "right", "\x1bOD": "left",
    "\x1b[Z": "shift-tab",
}
_SINGLE = {"\t": "tab", "\r": "enter", "\n": "enter", "\x7f": "backspace", "\x08": "backspace"}


def decode_keys(text: str) -> list[str]:
    """Split what the terminal sent into key names (see the module docstring).

    Unknown escape sequences (function keys, mouse reports) are skipped whole.
    """
    keys: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\x1b":
            for seq, name in _SEQUENCES.items():
                if text.startswith(seq, i):
                    keys.append(name)
                    i += len(seq)
                    break
            else:
                if i + 1 < len(text) and text[i + 1] in "[O":
                    # An unknown CSI/SS3 sequence: skip up to its final byte.
                    j = i + 2
                    while j < len(text) and not ("@" <= text[j] <= "~"):
                        j += 1
                    i = j + 1
                else:
                    keys.append("esc")
                    i += 1
            continue
        if ch in _SINGLE:
            keys.append(_SINGLE[ch])
        elif ch.isprintable():
            keys.append(ch)
        i += 1
    return keys


class KeyReader:
    """Non-blocking key reader for a terminal on ``stream`` (default stdin).

    Use as a context manager.  When ``stream`` is not a terminal, :attr:`active` is
    False and :meth:`read` always returns an empty list.
    """

    def __init__(self, stream=None):
        self.stream = sys.stdin if stream is None else stream
        self._saved = None
        self._fd: int | None = None
        try:
            fd = self.stream.fileno()
            self.active = os.isatty(fd)
        except (AttributeError, OSError, ValueError):
            fd, self.active = None, False
        self._fd = fd

    def __enter__(self) -> KeyReader:
        if self.active:
            import termios
            import tty

            self._saved = termios.tcgetattr(self._fd)
            try:
                tty.setcbreak(self._fd, termios.TCSANOW)
            except BaseException:
                self.restore()
                raise
        return self

    def __exit__(self, *exc) -> None:
        self.restore()

    def restore(self) -> None:
        """Put the terminal back as it was (idempotent)."""
        if self._saved is not None:
            import termios

            saved, self._saved = self._saved, None
            try:
                termios.tcsetattr(self._fd, termios.TCSADRAIN, saved)
            except termios.error:
                pass

    def read(self) -> list[str]:
        """The keys pressed since the last call (never waits)."""
        if not self.active:
            return []
        chunks = []
        while select.select([self._fd], [], [], 0)[0]:
            data = os.read(self._fd, 1024)
            if not data:        # end of file: the terminal went away
                self.active = False
                break
            chunks.append(data)
        if not chunks:
            return []
        return decode_keys(b"".join(chunks).decode("utf-8", errors="ignore"))
