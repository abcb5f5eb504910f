"""The ``rtq`` subcommands, one module each.

A subcommand module has ``add(subparsers)``, which declares its arguments and sets
``run`` (``run(args) -> int``, the exit status).  To add a subcommand, write such a module
and list it in :data:`rtq.cli.COMMANDS`.  Modules import their heavy dependencies
(Numba kernels, PortAudio) inside ``run``, so parsing stays fast and ``rtq presets``
never pays for them.
"""
from __future__ import annotations

import sys

from rtq.errors import PresetError, RtqError


def report_error(err: RtqError) -> None:
    """Print a user error to stderr: preset problems as they are (``file:line:col: ...``),
    others after ``rtq:``."""
    prefix = "" if isinstance(err, PresetError) else "rtq: "
    for line in str(err).splitlines():
        print(prefix + line, file=sys.stderr)
