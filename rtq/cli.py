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


def _add_render(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("render", help="render an audio file through a preset")
    parser.add_argument("preset", metavar="PRESET", help="preset file or shipped preset name")
    parser.add_argument("input", metavar="INPUT", help="audio file to read")
    parser.add_argument("output", metavar="OUTPUT", help="audio file to write (format from its extension)")
    parser.add_argument("--seed", type=int, help="dither seed (overrides the preset's)")
    parser.add_argument("--block-size", type=int, default=8192, metavar="N",
                        help="frames per block (does not change the output; default 8192)")
    parser.add_argument("--subtype", metavar="S",
                        help="output subtype (PCM_16, PCM_24, FLOAT, ULAW, ...); default follows the last stage")
    parser.add_argument("--force", action="store_true", help="replace OUTPUT if it exists")
    parser.add_argument("--no-latency-compensation", action="store_true",
                        help="keep the chain's delay instead of time-aligning OUTPUT with INPUT")
    parser.set_defaults(run=_run_render)


def _run_render(args: argparse.Namespace) -> int:
    from rtq.chain import Chain
    from rtq.render import render_file

    chain = Chain.from_spec(load_preset(args.preset), seed=args.seed)
    result = render_file(chain, args.input, args.output, block_size=args.block_size,
                         subtype=args.subtype, force=args.force,
                         compensate_latency=not args.no_latency_compensation)
    for label, counts in (("clipped", result.clips), ("non-finite input", result.nonfinite)):
        if any(counts):
            per_channel = ", ".join(f"ch{c + 1} {n}" for c, n in enumerate(counts))
            print(f"rtq: {sum(counts)} samples {label} ({per_channel})", file=sys.stderr)
    return 0


COMMANDS = (_add_presets, _add_validate, _add_render)


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
