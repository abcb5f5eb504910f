"""The batch summary ``--report`` writes in the output folder: every job's record with
its end-to-end error figures, as JSON (per channel) and CSV (one row per job, the worst
channel's figure: the highest error levels, the lowest SNR).  Both are rewritten at the
end of each run, like the manifest they are the batch's own files."""
from __future__ import annotations

import csv
import io
import json
import os

from ..files.destination import write_atomic
from .worker import FIGURES

SUMMARY_NAME = "rtq-batch-summary"
_COLUMNS = ("input", "preset", "output", "status", "seed", "sample_rate", "channels", "frames", "clips",
            "nonfinite", "loop_resets")
# Worst over channels: the lowest SNR, the highest error level.
_WORST = {"snr_db": min}


def summary_paths(out: str) -> tuple[str, str]:
    return (os.path.join(out, SUMMARY_NAME + ".json"), os.path.join(out, SUMMARY_NAME + ".csv"))


def write_summary(records: list[dict], out: str) -> tuple[str, str]:
    """Write the summary of ``records`` (one per job, in the jobs' order) in ``out``.
    A job skipped as up to date is listed as what made it: done."""
    json_path, csv_path = summary_paths(out)
    records = [{**r, "status": "done"} if r["status"] == "skipped" else r for r in records]
    keep = _COLUMNS + ("error", "figures")
    jobs = [{key: record.get(key) for key in keep} for record in records]
    write_atomic(json_path, json.dumps({"format": 1, "command": "batch", "jobs": jobs}, indent=1,
                                       allow_nan=False) + "\n", force=True)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(_COLUMNS + FIGURES + ("error",))
    for record in records:
        row = [_cell(record.get(key)) for key in _COLUMNS]
        figures = record.get("figures") or {}
        row += [_worst(name, figures.get(name)) for name in FIGURES]
        writer.writerow(row + [record.get("error") or ""])
    write_atomic(csv_path, text.getvalue(), force=True)
    return json_path, csv_path


def _cell(value):
    if isinstance(value, list):
        return sum(value)
    return "" if value is None else value


def _worst(name: str, values):
    values = [v for v in values or [] if v is not None]
    return _WORST.get(name, max)(values) if values else ""
