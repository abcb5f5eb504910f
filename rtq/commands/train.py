"""``rtq train INPUT... --bits N -o LEVELS``: Lloyd-Max levels designed on audio (or for a
distribution), written as a levels file for ``quantize: {law: lloyd-max, trained: ...}``."""
from __future__ import annotations

import argparse
import math

from rtq.commands import check_positive
from rtq.errors import UsageError

BITS = (1, 16)


def add(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="design Lloyd-Max quantizer levels on audio files (or a distribution)",
        description="Design the MSE-optimal (Lloyd-Max) levels for the amplitude distribution of INPUT files, "
                    "streamed in bounded memory, and write them as a levels file that a preset's "
                    "'quantize: {law: lloyd-max, bits: N, trained: FILE}' reads. Prints the design's MSE, SNR "
                    "and PSNR beside those of a uniform grid with as many levels.")
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help="audio files to train on")
    parser.add_argument("--bits", type=int, required=True, metavar="N", help="2^N levels (1-16)")
    parser.add_argument("-o", "--output", required=True, metavar="LEVELS", help="levels file to write (YAML)")
    parser.add_argument("--channels", choices=("joint", "each"), default="joint",
                        help="one design over every channel (joint, the default) or one per channel (each)")
    parser.add_argument("--max-seconds", type=float, metavar="S", help="read at most S seconds of each INPUT")
    parser.add_argument("--pdf", choices=("gaussian", "laplacian"),
                        help="design for this distribution (within full scale) instead of INPUT files")
    parser.add_argument("--rms-dbfs", type=float, default=-20.0, metavar="DB",
                        help="with --pdf: the distribution's RMS level in dBFS (default -20)")
    parser.add_argument("--force", action="store_true", help="replace LEVELS if it exists")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rtq.files.destination import check_destination, write_atomic
    from rtq.levels_file import levels_text
    from rtq.train import report_lines, train_files, train_pdf

    if not BITS[0] <= args.bits <= BITS[1]:
        raise UsageError(f"--bits must be a whole number from {BITS[0]} to {BITS[1]}, got {args.bits}")
    check_positive(args.max_seconds, "--max-seconds")
    if args.pdf and args.inputs:
        raise UsageError("give INPUT files or --pdf, not both")
    if not args.pdf and not args.inputs:
        raise UsageError("give INPUT files to train on (or --pdf gaussian|laplacian)")
    if args.pdf and not (math.isfinite(args.rms_dbfs) and -200.0 <= args.rms_dbfs <= 0.0):
        raise UsageError(f"--rms-dbfs must be from -200 to 0, got {args.rms_dbfs:g}")
    check_destination(args.output, "LEVELS", keep=[("INPUT", p) for p in args.inputs], force=args.force)
    if args.pdf:
        training = train_pdf(args.pdf, args.bits, args.rms_dbfs)
        made = f"rtq train --pdf {args.pdf} --rms-dbfs {args.rms_dbfs:g} --bits {args.bits}"
    else:
        training = train_files(args.inputs, args.bits, channels=args.channels, max_seconds=args.max_seconds)
        made = "rtq train " + " ".join(args.inputs) + f" --bits {args.bits} --channels {args.channels}" + (
            f" --max-seconds {args.max_seconds:g}" if args.max_seconds is not None else "")
    lines = report_lines(training)
    write_atomic(args.output, levels_text(training.bits, training.sets, [made, *lines]), force=args.force)
    for line in lines:
        print(line)
    print(f"wrote {args.output}")
    return 0
