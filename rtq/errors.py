"""Errors that reach the user as one clear line (never a traceback)."""


class RtqError(Exception):
    """A user-facing error: the CLI prints ``str(err)`` on one line and exits with ``exit_status``."""

    exit_status = 1


class PresetError(RtqError):
    """A preset that cannot be used; messages start with ``file:line:column:``."""

    exit_status = 2


class UsageError(RtqError):
    """Bad command-line use or bad input file."""

    exit_status = 2
