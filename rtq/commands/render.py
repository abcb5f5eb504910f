"""``rtq render PRESET INPUT OUTPUT``: offline rendering."""
from __future__ import annotations

import argparse
import sys

from rtq.commands import check_seed, starting
from rtq.errors import UsageError


def add(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("render", help="render an audio file through a preset")
    parser.add_argument("preset", metavar="PRESET", help="preset file or shipped preset name")
    parser.add_argument("input", metavar="INPUT", help="audio file to read")
    parser.add_argument("output", metavar="OUTPUT", help="audio file to write (format from its extension)")
    parser.add_argument("--seed", type=int, help="dither seed (overrides the preset's)")
    parser.add_argument("--block-size", type=int, metavar="N",
                        help="frames read, processed and written at a time (does not change the output; "
                             "default 131072, at most 1048576)")
    parser.add_argument("--subtype", metavar="S",
                        help="output subtype (PCM_16, PCM_24, FLOAT, ULAW, ...); default follows the last stage")
    parser.add_argument("--force", action="store_true",
                        help="replace OUTPUT, and the --report and --plot files, if they exist "
                             "(never INPUT)")
    parser.add_argument("--allow-short", action="store_true",
                        help="render an INPUT that ends before the length its header promises "
                             "(truncated or damaged) and say how much was missing; by default that is an error")
    parser.add_argument("--no-latency-compensation", action="store_true",
                        help="keep the chain's delay instead of time-aligning OUTPUT with INPUT")
    parser.add_argument("--bits", metavar="N|auto",
                        help="requantize to N bits (the chain's last stage, a requantize); auto: to the output "
                             "subtype's grid (--subtype, else INPUT's integer subtype where OUTPUT holds it, else "
                             "the container's default), refusing an INPUT already on that grid")
    parser.add_argument("--redither", action="store_true",
                        help="with --bits auto: dither an INPUT that is already at or below the output's precision")
    parser.add_argument("--report", metavar="FILE", help="write the error measurements of the whole file as JSON")
    parser.add_argument("--plot", metavar="FILE",
                        help="draw error spectrum, histogram and level per stage; PNG, PDF or SVG by the "
                             "extension (needs rtq[plot])")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    with starting():
        from rtq.chain import Chain
        from rtq.presets import load_preset
        from rtq.render import DEFAULT_BLOCK, check_block_size, cores, render_file

        metering = bool(args.report or args.plot)
        observer = None
        if metering:   # checked before rendering; taps only copy the signal: same output
            from rtq.meter.chain_meter import RenderMeter
            from rtq.report import check_outputs

            check_outputs(args.report, args.plot, keep=[("INPUT", args.input), ("OUTPUT", args.output)],
                          force=args.force)
            observer = RenderMeter(workers=cores())
        check_seed(args.seed)
        block_size = DEFAULT_BLOCK if args.block_size is None else check_block_size(args.block_size)
        chain = Chain.from_spec(load_preset(args.preset), seed=args.seed)
        subtype = args.subtype
        if args.redither and args.bits != "auto":
            raise UsageError("--redither applies only with --bits auto")
        if args.bits is not None:
            chain, subtype = _output_bits(chain, args)
    result = render_file(chain, args.input, args.output, block_size=block_size,
                         subtype=subtype, force=args.force, allow_short=args.allow_short,
                         compensate_latency=not args.no_latency_compensation, observer=observer)
    if result.shortfall:
        print(f"rtq: {result.shortfall}", file=sys.stderr)
    if metering:
        from rtq.report import save

        save(observer.finish(chain).report(), "render", args.report, args.plot,
             title=f"rtq render {args.preset}: {args.input}", force=args.force, preset=args.preset,
             input=args.input, output=args.output, input_frames_missing=result.missing)
    stable = " / ".join(f"{info.msa:.3g}" for info in chain.quantizer_info.values() if info.msa is not None)
    for what, label, counts in (("sample", "clipped", result.clips), ("sample", "non-finite input", result.nonfinite),
                                ("noise-shaping loop reset", "after overloads", result.resets),
                                ("sample", f"above the noise-shaping loop's maximum stable amplitude ({stable} peak; "
                                           "counted at the loop's rate)", result.overloads),
                                ("sample", "kept from clipping by the limit (the shaped noise would have clipped them)",
                                 result.limited)):
        if any(counts):
            per_channel = ", ".join(f"ch{c + 1} {n}" for c, n in enumerate(counts))
            total = sum(counts)
            print(f"rtq: {total} {what}{'s' if total != 1 else ''} {label} ({per_channel})", file=sys.stderr)
    return 0


def _output_bits(chain, args):
    """``--bits N`` or ``--bits auto``: the chain requantizing to it, and the subtype."""
    from rtq.render import auto_output, precision_at_most, with_output_bits

    if args.bits != "auto":
        try:
            bits = int(args.bits)
        except ValueError:
            raise UsageError(f"--bits must be a whole number of bits or auto, got {args.bits}") from None
        return with_output_bits(chain, bits), args.subtype
    bits, subtype = auto_output(args.input, args.output, args.subtype)
    chain = with_output_bits(chain, bits)       # refused before reading INPUT if the chain cannot
    if not args.redither:
        reason = precision_at_most(args.input, bits)
        if reason:
            raise UsageError(f"{reason}, at or below the output's {bits} bits ({subtype}): dithering it again only "
                             "adds noise; --redither does it anyway")
    return chain, subtype
