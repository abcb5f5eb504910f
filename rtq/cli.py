"""The ``rtq`` command line: argument parsing and one-line user errors.

Each subcommand lives in its own module under :mod:`rtq.commands`.
"""
from __future__ import annotations

import argparse
import importlib
import gc
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Sequence

from rtq.commands import interrupts_kept, report_error, starting
from rtq.errors import RtqError

COMMANDS = ("presets", "validate", "render", "batch", "train", "info", "analyze", "report", "live", "listen",
            "devices")
"""Subcommand names, each a module of :mod:`rtq.commands`, in help order."""


def build_parser(commands: Sequence[str] = COMMANDS) -> argparse.ArgumentParser:
    """The argument parser with the subcommands ``commands`` (default: every one in
    :data:`COMMANDS`)."""
    parser = argparse.ArgumentParser(prog="rtq", description="Real-time and offline audio requantizer.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in commands:
        importlib.import_module(f"rtq.commands.{name}").add(subparsers)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C's interrupt, so every command
    cleans up the same way (a render removes its partial file; live prints its summary)."""


@contextlib.contextmanager
def _sigterm_as_interrupt():
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rtq`` command line.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after the program name; default ``sys.argv[1:]``.

    Returns
    -------
    int
        The exit status: 0 on success, ``err.exit_status`` for a user error, 2 for bad usage,
        130 after Ctrl-C, 143 after SIGTERM -- except ``rtq live``, whose session those end
        normally (status 0, after the summary) once it plays.
    """
    # rtq's work runs in its own compiled kernels, not in BLAS: OpenBLAS starting a thread
    # per core when NumPy loads only costs every command's start-up (30-50 ms of CPU).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    argv = sys.argv[1:] if argv is None else list(argv)
    # A command line that starts with a command's name parses the same with that command's
    # parser alone (its usage, help and errors are its own), which spares building and
    # importing the others.
    commands = argv[:1] if argv[:1] and argv[0] in COMMANDS else COMMANDS
    with starting():
        args = build_parser(commands).parse_args(argv)
    try:
        with _sigterm_as_interrupt(), interrupts_kept():
            return args.run(args)
    except RtqError as err:
        report_error(err)
        return err.exit_status
    except Terminated:
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``rtq presets | head``): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        # What is alive now (mostly Numba's and NumPy's module objects) lives until the
        # process ends: keeping it out of the collections at interpreter shutdown saves
        # 0.04 s of every command.
        gc.freeze()
