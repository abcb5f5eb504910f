"""``rtq devices``: host APIs and audio devices, with channel counts and default rates."""
from __future__ import annotations

import argparse


def add(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("devices", help="list audio host APIs and devices")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rtq.live.portaudio.devices import devices_text   # initialises PortAudio

    print(devices_text())
    return 0
