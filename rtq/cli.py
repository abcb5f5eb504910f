"""The ``rtq`` command line.

Each subcommand is a pair of functions: ``_add_<name>(subparsers)`` declares its
arguments and sets ``run`` to ``_run_<name>(args) -> int`` (the exit status).  To add a
subcommand, write that pair and list the ``_add_`` function in :data:`COMMANDS`.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rtq.errors import PresetError, RtqError
from rtq.presets import load_preset, shipped_presets


def _add_presets(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("presets", help="list the shipped presets")
    parser.set_defaults(run=_run_presets)


def _run_presets(args: argparse.Namespace) -> int:
    presets = shipped_presets()
    width = max(len(preset.name) for preset in presets)
    for preset in presets:
        print(f"{preset.name:<{width}}  {preset.description}")
    return 0


def _add_validate(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("validate", help="check preset files and report every problem")
    parser.add_argument("files", nargs="+", metavar="FILE", help="preset YAML file (or shipped preset name)")
    parser.set_defaults(run=_run_validate)


def _run_validate(args: argparse.Namespace) -> int:
    status = 0
    for file in args.files:
        try:
            load_preset(file)
        except PresetError as err:
            _report(err)
            status = err.exit_status
        else:
            print(f"{file}: ok")
    return status


COMMANDS = (_add_presets, _add_validate)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand in :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(prog="rtq", description="Real-time and offline audio requantizer.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(subparsers)
    return parser


def _report(err: RtqError) -> None:
    """Print a user error to stderr: preset problems as they are (``file:line:col: ...``), others after ``rtq:``."""
    prefix = "" if isinstance(err, PresetError) else "rtq: "
    for line in str(err).splitlines():
        print(prefix + line, file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rtq`` command line.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after the program name; default ``sys.argv[1:]``.

    Returns
    -------
    int
        The exit status: 0 on success, ``err.exit_status`` for a user error, 2 for bad usage.
    """
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except RtqError as err:
        _report(err)
        return err.exit_status
