"""``rtq info PRESET [--samplerate HZ]``: the resolved chain and its latency."""
from __future__ import annotations

import argparse

from rtq.commands import sigma_delta_lines
from rtq.spec import check_samplerate
from rtq.ui.units import rate_text


def add(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("info", help="show a preset's resolved chain and latency")
    parser.add_argument("preset", metavar="PRESET", help="preset file or shipped preset name")
    parser.add_argument("--samplerate", type=float, metavar="HZ",
                        help="stream rate in whole Hz (1000-768000) to resolve the chain at (default 48000, or "
                             "the first of 44100, 96000, 88200, ... the preset can run at)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rtq.chain import Chain   # start-up cost: NumPy and the DSP modules, which parsing the command line does without
    from rtq.presets import load_preset

    check_samplerate(args.samplerate)
    spec = load_preset(args.preset)
    chain = Chain.from_spec(spec)
    rate, why = (args.samplerate, "") if args.samplerate is not None else default_rate(chain.stages)
    chain.prepare(rate, 1, 64)
    print(f"{spec.name}: {spec.description}" if spec.description else spec.name)
    print(f"seed {chain.seed}; stream rate {rate:g} Hz{why}")
    for line in describe_lines(chain.stages, rate):
        print(line)
    latency = chain.latency
    print(f"latency: {latency:.4g} samples ({latency / rate * 1e3:.3f} ms)")
    for line in sigma_delta_lines(chain.stages, rate):
        print(line)
    return 0


# The rates tried, in order, when none is asked for: the common ones.
COMMON_RATES = (48000, 44100, 96000, 88200, 192000, 176400, 32000, 22050, 16000, 8000, 384000, 352800, 768000)


def default_rate(stages) -> tuple[float, str]:
    """The rate ``rtq info`` resolves a chain at when none is asked for: 48000 Hz if the
    chain can run at it, else the first of :data:`COMMON_RATES` it can, said so (else
    48000 Hz, where preparing it says why not)."""
    from rtq.stages import format_rates, usable_rates   # start-up cost (NumPy, the DSP modules), as in run

    ranges, _ = usable_rates(stages)
    usable = [rate for rate in COMMON_RATES if any(rate in r for r in ranges)]
    if not usable or usable[0] == COMMON_RATES[0]:
        return float(COMMON_RATES[0]), ""
    return float(usable[0]), f" (the preset cannot run at {COMMON_RATES[0]} Hz; its rates: {format_rates(ranges)})"


def describe_lines(stages, stream_rate: float) -> list[str]:
    """One line per stage (nested stages indented), with the rate each runs at."""
    from rtq.stages import walk   # start-up cost (NumPy, the DSP modules), as in run

    return [f"{'  ' * len(place.path)}{place.path[-1] + 1}. "
            f"{place.stage.info_line(stream_rate * place.factor, stream_rate)}  [{rate_text(stream_rate * place.factor)}]"
            for place in walk(stages)]
