"""``rtq validate FILE...``: check presets and report every problem."""
from __future__ import annotations

import argparse

from rtq.errors import PresetError
from rtq.presets import load_preset
from rtq.commands import report_error


def add(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("validate", help="check preset files and report every problem")
    parser.add_argument("files", nargs="+", metavar="FILE", help="preset YAML file (or shipped preset name)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    status = 0
    for file in args.files:
        try:
            load_preset(file)
        except PresetError as err:
            report_error(err)
            status = err.exit_status
        else:
            print(f"{file}: ok")
    return status
