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
    for line in describe_lines(chain.stages, args.samplerate, args.samplerate):
        print(line)
    latency = chain.latency
    print(f"latency: {latency:.4g} samples ({latency / args.samplerate * 1e3:.3f} ms)")
    return 0


def describe_lines(stages, rate: float, stream_rate: float, depth: int = 1) -> list[str]:
    """One line per stage (nested stages indented), with the rate each runs at."""
    from rtq.stages import Gain, Oversample, Quantize, Requantize

    lines = []
    pad = "  " * depth
    for number, stage in enumerate(stages, 1):
        if isinstance(stage, Gain):
            text = f"gain {stage.db:+.2f} dB"
        elif isinstance(stage, Requantize):
            text = f"requantize to {stage.bits} bit{'s' if stage.bits > 1 else ''}, "
            text += "no dither" if stage.dither == "none" else f"{stage.dither} dither ({stage.amplitude:g} LSB)"
            text += ", " + _shaping_text(stage, rate, stream_rate)
        elif isinstance(stage, Quantize):
            text = f"quantize {stage.law}, {stage.bits} bits (G.711)"
        elif isinstance(stage, Oversample):
            text = (f"oversample x{stage.factor}, {stage.phase} phase, {stage.quality} quality, "
                    f"latency {stage.design.latency:.4g} samples")
        else:
            text = stage.kind
        lines.append(f"{pad}{number}. {text}  [{rate:.0f} Hz]")
        if isinstance(stage, Oversample):
            lines += describe_lines(stage.stages, rate * stage.factor, stream_rate, depth + 1)
    return lines


def _shaping_text(stage, rate: float, stream_rate: float) -> str:
    shaping = stage.shaping
    if shaping["kind"] == "none":
        return "no noise shaping"
    filt = stage.error_filter(rate, stream_rate)
    taps = f"{len(filt.a)}+{len(filt.b)} taps" if filt.b else f"{len(filt.a)} taps"
    if shaping["kind"] == "table":
        from rtq.dsp.shaping import table_for_rate

        nominal, _ = table_for_rate(shaping["name"], rate)
        where = f"{nominal} Hz table" if nominal else "any rate"
        return f"{shaping['name']} shaping ({where}, {taps})"
    if shaping["kind"] == "design":
        from rtq.dsp.ntf import default_band_hz

        band = shaping.get("band_hz") or default_band_hz(stream_rate)
        return f"designed order-{shaping['order']} shaping (band {band:g} Hz, {taps})"
    return f"custom FIR shaping ({taps})"
