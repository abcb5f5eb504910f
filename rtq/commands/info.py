"""``rtq info PRESET [--samplerate HZ]``: the resolved chain and its latency."""
from __future__ import annotations

import argparse

from rtq.spec import check_samplerate


def add(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("info", help="show a preset's resolved chain and latency")
    parser.add_argument("preset", metavar="PRESET", help="preset file or shipped preset name")
    parser.add_argument("--samplerate", type=float, default=48000.0, metavar="HZ",
                        help="stream rate in whole Hz (1000-768000) to resolve the chain at (default 48000)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rtq.chain import Chain
    from rtq.presets import load_preset

    check_samplerate(args.samplerate)
    spec = load_preset(args.preset)
    chain = Chain.from_spec(spec)
    chain.prepare(args.samplerate, 1, 64)
    print(f"{spec.name}: {spec.description}" if spec.description else spec.name)
    print(f"seed {chain.seed}; stream rate {args.samplerate:g} Hz")
    for line in describe_lines(chain.stages, args.samplerate):
        print(line)
    latency = chain.latency
    print(f"latency: {latency:.4g} samples ({latency / args.samplerate * 1e3:.3f} ms)")
    return 0


def describe_lines(stages, stream_rate: float) -> list[str]:
    """One line per stage (nested stages indented), with the rate each runs at."""
    from rtq.stages import walk

    return [f"{'  ' * len(place.path)}{place.path[-1] + 1}. "
            f"{place.stage.info_line(stream_rate * place.factor, stream_rate)}  [{stream_rate * place.factor:.0f} Hz]"
            for place in walk(stages)]
