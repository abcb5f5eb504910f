"""Errors that reach the user as one clear line (never a traceback)."""


class RtqError(Exception):
    """A user-facing error: the CLI prints ``str(err)`` on one line and exits with ``exit_status``."""

    exit_status = 1


class PresetError(RtqError):
    """A preset that cannot be used; messages start with ``file:line:column:`` (or the
    file's name, or for a stage built in Python the parameter's name), except those made
    with ``located=False`` (an unknown preset name), which the CLI prefixes with ``rtq:``."""

    exit_status = 2

    def __init__(self, message: str = "", *, located: bool = True):
        super().__init__(message)
        self.located = located


class UsageError(RtqError):
    """Bad command-line use or bad input file."""

    exit_status = 2


class LimitError(RtqError, ValueError):
    """A request beyond one of rtq's documented limits (preset size, stages, oversampling,
    buffer memory); a ValueError too, as other arguments out of range are."""

    exit_status = 2
