"""``rtq presets``: list the shipped presets."""
from __future__ import annotations

import argparse

from rtq.presets import shipped_presets


def add(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("presets", help="list the shipped presets")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    presets = shipped_presets()
    width = max(len(preset.name) for preset in presets)
    for preset in presets:
        print(f"{preset.name:<{width}}  {preset.description}")
    return 0
