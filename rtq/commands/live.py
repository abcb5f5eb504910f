"""``rtq live [PRESET]``: the sound card through a preset's chain, with the meter.

This module reads the command line (``--input`` text, ``--latency``, device names and
indices, ``--meter-stage``) into the typed arguments of
:class:`~rtq.live.session.LiveSession`, puts its errors in the options' words, and
prints the exit summary.
"""
from __future__ import annotations

import argparse
import math
import os
import sys

from rtq.commands import add_web_options, check_positive, check_seed, interrupts_kept, web_address
from rtq.errors import RtqError, UsageError
from rtq.live.limits import MAX_BLOCKSIZE, MAX_CHANNELS
from rtq.spec import check_samplerate


def add(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("live", help="play through a preset live (sound card in and out)")
    parser.add_argument("preset", nargs="?", metavar="PRESET",
                        help="preset file or shipped name (default cd-16-shibata)")
    parser.add_argument("--device", metavar="NAME|INDEX", help="device for input and output")
    parser.add_argument("--input-device", metavar="NAME|INDEX")
    parser.add_argument("--output-device", metavar="NAME|INDEX")
    parser.add_argument("--samplerate", type=float, metavar="HZ",
                        help="stream rate in whole Hz (1000-768000; default: an --input file's rate, "
                             "else the output device's default rate)")
    parser.add_argument("--blocksize", type=int, default=0, metavar="N",
                        help=f"frames per block, up to {MAX_BLOCKSIZE} (default 0: the host's choice)")
    parser.add_argument("--latency", default="low", metavar="low|high|SECONDS")
    parser.add_argument("--channels", type=int, default=2, metavar="N",
                        help=f"channels, 1 to {MAX_CHANNELS} (default 2)")
    parser.add_argument("--input", metavar="SOURCE",
                        help="tone:HZ:DBFS, noise:DBFS or an audio file (looped) instead of the device input; "
                             "dBFS is RMS against amplitude 1 (a full-scale sine is -3.01 dBFS)")
    parser.add_argument("--seed", type=int, help="dither seed (overrides the preset's)")
    parser.add_argument("--duration", type=float, metavar="SECONDS",
                        help="play for this long, counted from the first block (a first start on a fresh "
                             "cache compiles before it plays, and says so), then stop")
    parser.add_argument("--stats-json", metavar="FILE", help="write the exit summary as JSON")
    parser.add_argument("--force", action="store_true", help="replace the --stats-json file if it exists")
    parser.add_argument("--json", action="store_true",
                        help="instead of the screen, write one JSON line every 0.1 s to stdout: the "
                             "metered stage's momentary figures (spectrum in 1/3-octave bands), xruns "
                             "and callback load; the exit summary then goes to stderr.  Without "
                             "--json, when stdout is not a terminal (or with --no-display), nothing "
                             "is printed during the run, only the exit summary")
    parser.add_argument("--no-display", action="store_true", help="no screen, even on a terminal")
    add_web_options(parser, "the meter and its controls (updated 20 times a second; with --json the lines "
                            "come at that rate too, each the record the page shows, and the address goes to stderr)")
    parser.add_argument("--cpu-latency-qos", choices=("auto", "on", "off"), default="auto",
                        help="while playing, ask the kernel to keep idle CPUs quick to wake "
                             "(/dev/cpu_dma_latency = 0 us: fewer late wake-ups, more power; needs "
                             "root or write permission on the device); auto (default): on for a "
                             "sound card, off for the silent built-in output")
    parser.add_argument("--meter-stage", type=int, metavar="N",
                        help="stage to meter first: N-th quantizer of the chain (1 = first), 0 = end "
                             "to end; default the last quantizer (keys m/tab cycle on the screen)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rtq.chain import Chain
    from rtq.live.session import DEFAULT_PRESET, checked_blocksize, checked_channels
    from rtq.presets import load_preset
    from rtq.files.destination import check_destination

    check_positive(args.duration, "--duration")
    check_samplerate(args.samplerate)
    _check(checked_channels, args.channels, "--channels")
    _check(checked_blocksize, args.blocksize, "--blocksize")
    latency = parse_latency(args.latency)
    if args.stats_json:
        check_destination(args.stats_json, "--stats-json", keep=[("--input", args.input)], force=args.force)
    check_seed(args.seed)
    args.address = web_address(args)
    if args.web:
        from rtq.web import require

        require()
    spec = load_preset(args.preset or DEFAULT_PRESET)
    stage = resolve_stage(Chain.from_spec(spec), args.meter_stage)
    source = parse_input(args.input, args.channels)
    if source is not None and args.input_device is not None:
        raise UsageError(f"--input-device has no use with --input {args.input}")
    session = None
    try:
        with interrupts_kept():  # a first start compiles here (10-35 s): Ctrl-C must not be lost
            session = _open_session(args, spec, source, latency)
        return _play(args, session, stage)
    finally:
        if session is not None:
            session.close()


def _check(rule, value, option: str) -> None:
    """``rule(value, option)`` (a library check that names what it checks), its
    ValueError as a one-line usage error."""
    try:
        rule(value, option)
    except ValueError as err:
        raise UsageError(str(err)) from None


def _open_session(args, spec, source, latency):
    """The session the options ask for; its errors about the source in the options' words."""
    from rtq.live.portaudio.stream import UnsupportedRate
    from rtq.live.session import LiveSession
    from rtq.live.sources import SourceRateError

    try:
        return LiveSession(spec, device=device_option(args.device), input_device=device_option(args.input_device),
                           output_device=device_option(args.output_device), samplerate=args.samplerate,
                           blocksize=args.blocksize, latency=latency, channels=args.channels, source=source,
                           seed=args.seed,
                           cpu_latency_qos={"auto": None, "on": True, "off": False}[args.cpu_latency_qos])
    except SourceRateError as err:
        hint = f"; use --samplerate {err.source_rate:g}" if err.source_rate else ""
        raise UsageError(f"--input {err.problem}{hint}") from None
    except UnsupportedRate as err:
        if args.samplerate is None and source is not None and source.samplerate:
            raise UnsupportedRate(f"{err} (the rate of --input {args.input}; resample the file to one of "
                                  "those rates)") from None
        raise


def parse_input(text: str | None, channels: int):
    """``--input``: ``tone:HZ:DBFS``, ``noise:DBFS`` or an audio file (looped), as a
    :class:`~rtq.live.sources.Source` for ``channels``; None (the device input) if not given."""
    from rtq.live.sources import Source

    if text is None:
        return None
    kind, *fields = text.split(":")
    if kind in ("tone", "noise"):
        try:
            numbers = [float(field) for field in fields]
        except ValueError:
            numbers = []
        if (len(numbers) != (2 if kind == "tone" else 1) or not all(map(math.isfinite, numbers))
                or (kind == "tone" and numbers[0] <= 0)):
            raise UsageError(f"bad --input {text!r}; use tone:HZ:DBFS (e.g. tone:1000:-20) or noise:DBFS")
        try:
            return Source.tone(*numbers) if kind == "tone" else Source.noise(*numbers)
        except ValueError as err:   # a level that would clip
            raise UsageError(f"--input {text}: {err}") from None
    if not os.path.exists(text):
        raise UsageError(f"--input {text}: no such file (or use tone:HZ:DBFS / noise:DBFS)")
    try:
        source = Source.file(text)
    except RtqError as err:         # its message starts with the path
        raise type(err)(f"--input {err}") from None
    try:
        return source.for_channels(channels)
    except ValueError as err:
        raise UsageError(f"--input {err} (use --channels)") from None


def parse_latency(text: str):
    """``--latency``: ``low``, ``high`` or seconds (a number >= 0)."""
    if text in ("low", "high"):
        return text
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0):
        raise UsageError(f"--latency must be low, high or seconds, not {text!r}")
    return seconds


def device_option(text: str | None):
    """A device on the command line: an index (digits) or a name substring."""
    if text is None:
        return None
    return int(text) if text.strip().isdigit() else text


def _play(args, session, stage) -> int:
    """Run the session (screen, JSON lines or neither), then report; the exit status."""
    from rtq.live.callback import StreamLost

    display = None
    status = 0
    try:
        if args.web:
            _serve_meter(args, session, stage)
        elif args.json:
            from rtq.ui.jsonlines import run_json   # no terminal library: rich is not loaded

            run_json(session, args.duration, stage=stage)   # builds the meter, then starts: all metered
        else:
            session.start()   # audio first; the meter (SciPy, 0.5 s) loads while it plays
            if sys.stdout.isatty() and not args.no_display:
                from rtq.ui.screen import run_screen

                display = run_screen(session, args.duration, stage=stage)
            else:
                session.run(args.duration)
    except KeyboardInterrupt:
        pass
    except StreamLost as err:
        session.lost = str(err)
        print(f"rtq: {err}", file=sys.stderr)
        status = err.exit_status
    out = sys.stderr if args.json else sys.stdout
    print(format_summary(session.summary()), file=out)
    if display is not None and display.cost_ms is not None:
        print(f"  display: {display.cost_ms:.1f} ms CPU per frame (median), "
              f"{display.rate_hz:.1f} frames/s", file=out)
    if args.stats_json:
        try:
            session.write_stats(args.stats_json, force=args.force)
        except RtqError as err:  # checked before the run; the disk can still fill up
            print(f"rtq: {err}", file=sys.stderr)
            status = status or err.exit_status
    if session.lost:
        # PortAudio still holds the abandoned stream, and libjack's thread for it may
        # outlive the server; the interpreter's teardown then crashed now and then
        # (SIGSEGV in the main thread, after every Python frame): end without it.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status


def _serve_meter(args, session, stage) -> None:
    """``--web``: the meter page (and ``--json``'s lines, from the same records)."""
    from rtq.ui.jsonlines import line_writer, run_records
    from rtq.web.live import REFRESH_S, LiveSite
    from rtq.web.server import WebServer, announce

    site = LiveSite(session)
    with WebServer(site, *args.address) as server:
        announce(server, sys.stderr if args.json else sys.stdout)
        sinks = ([line_writer()] if args.json else []) + [site.sink]
        run_records(session, args.duration, stage=stage, interval=REFRESH_S, sinks=sinks)


def resolve_stage(chain, number: int | None) -> int | str | None:
    """``--meter-stage N`` (1 = first quantizer of ``chain``, 0 = end to end) as a
    :class:`~rtq.ui.meterview.MeterView` stage choice; a :class:`~rtq.errors.UsageError`
    if the chain has no such quantizer."""
    from rtq.ui.meterview import END

    if number is None:
        return None
    if number == 0:
        return END
    count = len(chain.quantizers())
    if not 1 <= number <= count:
        raise UsageError(f"--meter-stage {number}: the chain has {count} quantizer"
                         f"{'s' if count != 1 else ''} (use 1 to {count}, or 0 for end to end)")
    return number - 1


def format_summary(summary: dict) -> str:
    """The exit summary, a few lines."""
    load = summary["callback_load"]

    def pct(v):
        return "-" if v is None else f"{v * 100:.1f} %"

    return "\n".join([
        f"rtq live: {summary['preset']} at {summary['samplerate']:g} Hz for {summary['seconds']:.1f} s, "
        f"{summary['callbacks']} callbacks, {summary['frames']} frames",
        f"  xruns: {summary['xruns']} (input overflows {summary['input_overflows']}, "
        f"output underflows {summary['output_underflows']})",
        f"  callback load (of the block period): p50 {pct(load['p50'])}, p99 {pct(load['p99'])}, "
        f"max {pct(load['max'])}",
        f"  clips per channel: {summary['clips']}; noise-shaping loop resets: {summary['loop_resets']}; "
        f"samples above the loop's maximum stable amplitude: {summary['overloads']}",
        f"  non-finite input samples: {summary['nonfinite']}; chain switches: {summary['switches']}",
        f"  CPU wake-up latency request: {summary['cpu_latency_qos']}"
        + (f"; audio thread: {summary['audio_thread']}" if summary.get("audio_thread") else ""),
    ])
