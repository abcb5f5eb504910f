"""A measurement report in the page (``rtq report r.json --web``): what ``rtq render
--report`` and ``rtq analyze --report`` wrote, drawn as the live meter draws a stage
(:mod:`rtq.web.panels`), so a rendered file's report and the live meter look alike."""
from __future__ import annotations

import json
import os

from rtq.errors import UsageError

from .hub import Hub
from .panels import panel, table

MAX_REPORT_BYTES = 64 * 2 ** 20      # rtq's reports of hour-long files are a few MB


def load_report(path) -> dict:
    """Read a report file; one-line :class:`~rtq.errors.UsageError` for anything else."""
    try:
        size = os.path.getsize(path)
        if size > MAX_REPORT_BYTES:
            raise UsageError(f"{path}: {size} bytes; a report rtq writes is at most {MAX_REPORT_BYTES} bytes")
        with open(path, "rb") as f:
            report = json.loads(f.read(MAX_REPORT_BYTES + 1))
    except OSError as err:
        raise UsageError(f"{path}: cannot read it ({err.strerror or err})") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise UsageError(f"{path}: not a JSON report ({err})") from None
    entries = report.get("stages") if isinstance(report, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "frames" in e for e in entries):
        raise UsageError(f"{path}: not a report of rtq render --report or rtq analyze --report "
                         "(it has no list of stages)")
    return report


class ReportSite:
    """The page of one report: every stage (and end to end), each as the live meter's panel."""

    page = "report"

    def __init__(self, report: dict, path):
        self.hub = Hub()
        entries = list(report["stages"]) + ([report["end_to_end"]] if report.get("end_to_end") else [])
        channels = int(report.get("channels") or len((entries[0].get("rms_dbfs") or [0])) if entries else 1)
        about = {key: report.get(key) for key in ("command", "preset", "files", "input", "output", "reference",
                                                  "processed", "sample_rate", "channels", "latency_samples")
                 if report.get(key) is not None}
        self.hub.publish("report", {
            "page": "report", "name": os.path.basename(os.fspath(path)), "about": json.loads(json.dumps(about)),
            "stages": [{"label": entry.get("stage") or "end to end",
                        "table": table({entry.get("window") or "whole file": entry}, channels),
                        "panel": panel(entry)} for entry in entries]})

    def actions(self) -> dict:
        return {}
