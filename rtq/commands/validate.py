"""``rtq validate FILE...``: check presets and report every problem.

Beyond the file itself, a preset can be valid and still unusable at some rates: a
shaping table exists for given rates only, and a designed NTF's ``band_hz`` needs the
stage to run above twice the band.  ``validate`` works out the stream rates that every
stage accepts and prints them (``ok`` alone means any rate); a preset no rate can run is
an error that names each limit.  With ``--samplerate`` it also designs the chain at
that rate (without compiling), with the errors ``rtq render`` and ``rtq live`` would
give there.  It warns of a designed-NTF (sigma-delta) loop that a full-scale input
drives above its maximum stable amplitude (at ``--samplerate``, else at the rate ``rtq
info`` chooses; ``rtq info`` shows every loop's figures).
"""
from __future__ import annotations

import argparse

from rtq.errors import PresetError
from rtq.presets import load_preset
from rtq.commands import report_error, sigma_delta_lines
from rtq.commands.info import default_rate
from rtq.spec import STREAM_RATE_HZ, check_samplerate


def add(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("validate", help="check preset files and report every problem")
    parser.add_argument("files", nargs="+", metavar="FILE", help="preset YAML file (or shipped preset name)")
    parser.add_argument("--samplerate", type=float, metavar="HZ",
                        help="also design each chain at this stream rate (whole Hz, 1000-768000)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    check_samplerate(args.samplerate)
    status = 0
    for file in args.files:
        try:
            print(f"{file}: {_check(file, args.samplerate)}")
        except PresetError as err:
            report_error(err)
            status = err.exit_status
    return status


def _check(file: str, rate: float | None) -> str:
    """What ``file`` is good for (``ok``, with the rates it is limited to); raises
    :class:`PresetError` for the problems found (every one in the file itself; the
    first one at ``rate``)."""
    from rtq.chain import Chain   # start-up cost: NumPy and the DSP modules, which parsing the command line does without
    from rtq.stages import format_rates, usable_rates

    chain = Chain.from_spec(load_preset(file))
    ranges, limits = usable_rates(chain.stages)
    if not ranges:
        raise PresetError(f"{file}: no stream rate can run this preset: "
                          + "; ".join(f"{limit.where}: {limit.reason}" for limit in limits)
                          + f" (rtq runs streams at {STREAM_RATE_HZ[0]}-{STREAM_RATE_HZ[1]} Hz)")
    if rate is not None:
        chain.check(rate)
        verdict = f"ok at {rate:g} Hz"
    else:
        verdict = "ok" if not limits else f"ok; stream rates {format_rates(ranges)}"
        rate, _ = default_rate(chain.stages)       # rtq info's rate
        if not any(rate in r for r in ranges):    # no common rate: the first it runs at
            rate = float(ranges[0].whole_rates()[0])
    return "\n  ".join([verdict, *(line for line in sigma_delta_lines(chain.stages, rate) if line.startswith("warning:"))])
