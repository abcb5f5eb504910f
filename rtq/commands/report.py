"""``rtq report REPORT.json --web``: a measurement report (``rtq render --report``,
``rtq analyze --report``) in a browser page drawn as the live meter is."""
from __future__ import annotations

import argparse
import sys
import time

from rtq.commands import add_web_options, web_address
from rtq.errors import UsageError


def add(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("report", help="show a measurement report (render/analyze --report) in a browser")
    parser.add_argument("report", metavar="REPORT.json")
    add_web_options(parser, "the report")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    address = web_address(args)
    if not args.web:
        raise UsageError("rtq report shows a report in a browser page: add --web (--plot FILE of render and "
                         "analyze draws one into a file)")
    from rtq.web import require

    require()
    from rtq.web.report import ReportSite, load_report
    from rtq.web.server import WebServer, announce

    site = ReportSite(load_report(args.report), args.report)
    with WebServer(site, *address) as server:
        announce(server, sys.stdout)
        print("  (Ctrl-C stops the server)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:     # how a page is closed: Ctrl-C (or SIGTERM)
            pass
    return 0
