"""``rtq listen``: blind ABX and MUSHRA listening tests over live chains.

::

    rtq listen TEST.yaml [--listener NAME] [--log FILE] [--practice] [--resume LOG] [--device D] [--blocksize N]
    rtq listen verify LOG...
    rtq listen results LOG... [--csv]
    rtq listen export TEST.yaml DIR [--force]

The first form runs a test on the terminal (:mod:`rtq.ui.listen`); at the end it prints
one line per result and where the log is.  Ctrl-C (or ``q``) leaves the log resumable
with ``--resume`` (exit 130).  The others check logs, pool them, or render a test's
stimuli for a browser test (listen-engine's :mod:`rtq.listen.export`).
"""
from __future__ import annotations

import argparse
import os
import sys

from rtq.commands import add_web_options, report_error, web_address
from rtq.errors import RtqError, UsageError

USAGE = """rtq listen TEST.yaml [--listener NAME] [--log FILE] [--practice] [--resume LOG]
                  [--device NAME|INDEX] [--blocksize N] [--web [--host ADDRESS] [--port N]]
       rtq listen verify LOG...
       rtq listen results LOG... [--csv]
       rtq listen export TEST.yaml DIR [--force] [--prefix PATH]"""
DESCRIPTION = ("Run a blind ABX or MUSHRA test on the terminal (TEST.yaml: see the README), check a test's "
               "log (verify), pool the logs of several listeners (results), or render a test's stimuli for "
               "webMUSHRA (export).")
RUN_OPTIONS = ("listener", "log", "practice", "resume", "device", "blocksize", "web", "host", "port")


def _run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--listener", default="", metavar="NAME", help="who listens (logged)")
    parser.add_argument("--log", metavar="FILE",
                        help="the log to write (never replaced; default NAME-LISTENER-TIME.jsonl here)")
    parser.add_argument("--practice", action="store_true",
                        help="unscored trials, each answer told right after it")
    parser.add_argument("--resume", metavar="LOG", help="continue this interrupted test (same assignments)")
    parser.add_argument("--device", metavar="NAME|INDEX", help="the sound card (default: the system's)")
    parser.add_argument("--blocksize", type=int, default=0, metavar="N",
                        help="frames per block (default 0: the host's choice)")
    add_web_options(parser, "the test to a listener")


def add(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("listen", help="blind ABX and MUSHRA listening tests over live chains",
                                   usage=USAGE, description=DESCRIPTION)
    _run_options(parser)
    parser.add_argument("arguments", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not args.arguments:
        raise UsageError("rtq listen needs a test file, or verify, results or export (see rtq listen -h)")
    head, *rest = args.arguments
    if head in _FORMS:
        return _FORMS[head](rest)
    parser = argparse.ArgumentParser(prog="rtq listen", usage=USAGE, description=DESCRIPTION)
    _run_options(parser)
    parser.add_argument("test", metavar="TEST.yaml")
    given = argparse.Namespace(**{name: getattr(args, name) for name in RUN_OPTIONS})
    return _run_test(parser.parse_args(args.arguments, namespace=given))


def _run_test(args: argparse.Namespace) -> int:
    from rtq.listen.abx import AbxTest
    from rtq.listen.mushra import MushraTest
    from rtq.listen.scoring import result_lines
    from rtq.listen.testfile import load_test

    if args.blocksize < 0:
        raise UsageError(f"--blocksize must be 0 (the host's choice) or more, not {args.blocksize}")
    if args.resume and (args.log or args.practice):
        raise UsageError("--resume continues a log as it was started: --log and --practice do not apply")
    address = web_address(args)
    if args.web:
        from rtq.web import require

        require()
    test = load_test(args.test)
    if not args.web and not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("rtq listen runs a test on a terminal (or with --web, in a browser); a program "
                         "drives one through rtq.listen (AbxTest, MushraTest)")
    driver_type = MushraTest if test.type == "mushra" else AbxTest
    device = int(args.device) if args.device is not None and args.device.strip().isdigit() else args.device
    options = dict(listener=args.listener, device=device, blocksize=args.blocksize)
    if args.resume:
        options["resume"] = args.resume
    else:
        options.update(log=args.log, practice=args.practice)
    from rtq.ui.listen import run_listen_screen

    print(f"rtq listen: {test.name}: preparing {len(test.conditions)} conditions "
          f"(level matching, real-time check)...", flush=True)
    with driver_type(test, **options) as driver:
        print(f"commitment {driver.commitment} (the log's first record; rtq listen verify shows it)",
              flush=True)
        if args.web:
            _serve_test(driver, address)
        else:
            run_listen_screen(driver)
        if not driver.done:
            print(f"interrupted: the log {driver.log_path} holds every answer so far; "
                  f"rtq listen {args.test} --resume {driver.log_path} continues the test")
            return 130
    for line in result_lines(driver.results):
        print(line)
    print(f"log: {driver.log_path} (rtq listen verify {driver.log_path} checks it)")
    return 0


def _serve_test(driver, address) -> None:
    """``--web``: the test in a browser page until it ends (or Ctrl-C: resumable)."""
    from rtq.web.listen import ListenSite
    from rtq.web.server import WebServer, announce

    site = ListenSite(driver)
    with WebServer(site, *address) as server:
        announce(server, sys.stdout)
        try:
            site.run()
        except KeyboardInterrupt:
            pass
        if driver.done:
            site.linger()


def _parser(form: str, description: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=f"rtq listen {form}", description=description)


def _verify(argv: list[str]) -> int:
    from rtq.listen.verification import verify

    parser = _parser("verify", "Check listening-test logs: hash chain, commitment, file and preset hashes, "
                               "results.  Prints 'ok: ...' per log, or the first line that does not hold (exit 1).")
    parser.add_argument("logs", nargs="+", metavar="LOG")
    status = 0
    for log in parser.parse_args(argv).logs:
        try:
            print(verify(log).summary)
        except RtqError as err:
            report_error(err)
            status = max(status, err.exit_status)
    return status


def _results(argv: list[str]) -> int:
    from rtq.listen.results import pool

    parser = _parser("results", "Pool the logs of one test: ABX per listener and pooled; MUSHRA per condition "
                                "after BS.1534-3 post-screening.")
    parser.add_argument("logs", nargs="+", metavar="LOG")
    parser.add_argument("--csv", action="store_true",
                        help="write every rating (or ABX answer) in webMUSHRA's result columns to stdout")
    args = parser.parse_args(argv)
    pooled = pool(args.logs)
    sys.stdout.write(pooled.csv() if args.csv else "\n".join(pooled.lines()) + "\n")
    return 0


def _export(argv: list[str]) -> int:
    from rtq.listen.export import export
    from rtq.listen.testfile import load_test

    parser = _parser("export", "Render every condition of every item of a test (the same chains and seed as "
                               "live, loudness-matched) and a webMUSHRA configuration beside them.")
    parser.add_argument("test", metavar="TEST.yaml")
    parser.add_argument("directory", metavar="DIR")
    parser.add_argument("--force", action="store_true", help="write into DIR even if it holds files")
    parser.add_argument("--prefix", metavar="PATH",
                        help="the stimuli's path in the configuration, from webMUSHRA's folder "
                             "(default configs/resources/audio/DIR/)")
    args = parser.parse_args(argv)
    config = export(load_test(args.test), os.fspath(args.directory), force=args.force, prefix=args.prefix)
    print(f"wrote {args.directory}: the stimuli and the webMUSHRA configuration {config}")
    return 0


_FORMS = {"verify": _verify, "results": _results, "export": _export}
