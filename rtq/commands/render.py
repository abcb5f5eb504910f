"""``rtq render PRESET INPUT OUTPUT``: offline rendering."""
from __future__ import annotations

import argparse
import sys


def add(subparsers: argparse._SubParsersAction) -> None:
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
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rtq.chain import Chain
    from rtq.presets import load_preset
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
