"""``rtq batch`` as a user meets it: the dry run, --report's files, the progress bar on
a terminal and quiet elsewhere, the missing-Dask line, and a light ``import rtq.batch``."""
from __future__ import annotations

import csv
import json
import os
import pty
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

import rtq.batch.jobs
from rtq.cli import main

from .helpers import environment, make_corpus, manifest_lines, rtq_command, run_rtq


@pytest.fixture
def corpus(tmp_path):
    make_corpus(tmp_path / "in", 3, seconds=0.3, nested=False)
    return tmp_path / "in"


def test_dry_run_lists_jobs_and_renders_nothing(corpus, tmp_path):
    out = tmp_path / "out"
    argv = ("batch", "tpdf-16", "cd-16-shibata", "--inputs", corpus, "--out", out, "--dry-run")
    result = run_rtq(*argv)
    assert result.returncode == 0 and result.stderr == ""
    lines = result.stdout.splitlines()
    assert len(lines) == 7 and lines[-1] == "6 jobs: 6 render"
    assert lines[0].startswith(f"render   {corpus / 'take00.wav'} -> {out / 'take00.tpdf-16.wav'} (tpdf-16, seed ")
    assert not out.exists()
    assert run_rtq("batch", "tpdf-16", "--inputs", corpus, "--out", out, "--jobs", "1").returncode == 0
    (out / "take01.tpdf-16.wav").write_bytes(b"damaged")
    lines = run_rtq(*argv).stdout.splitlines()
    assert [line.split()[0] for line in lines[:-1]] == ["skip", "render", "replace", "render", "skip", "render"]
    assert lines[-1] == "6 jobs: 2 skip, 3 render, 1 replace"


def test_report_beside_each_output_and_a_summary(corpus, tmp_path, capsys):
    out = tmp_path / "out"
    result = run_rtq("batch", "cd-16-shibata", "--inputs", corpus, "--out", out, "--report", "--jobs", "2")
    assert result.returncode == 0, result.stderr
    records = {r["output"]: r for r in manifest_lines(out / "rtq-batch.jsonl")}
    # each job's report is rtq render --report's for that seed
    record = records[str(out / "take01.cd-16-shibata.wav")]
    assert main(["render", "cd-16-shibata", record["input"], str(tmp_path / "alone.wav"), "--seed",
                 str(record["seed"]), "--report", str(tmp_path / "alone.json")]) == 0
    capsys.readouterr()
    batch_report = json.loads(Path(record["output"] + ".json").read_text())
    alone = json.loads((tmp_path / "alone.json").read_text())
    assert batch_report["seed"] == record["seed"]
    assert batch_report["end_to_end"] == alone["end_to_end"] and batch_report["stages"] == alone["stages"]
    assert record["figures"]["snr_db"] == alone["end_to_end"]["snr_db"]
    summary = json.loads((out / "rtq-batch-summary.json").read_text())
    assert [job["output"] for job in summary["jobs"]] == sorted(records)
    with open(out / "rtq-batch-summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["output"] for row in rows] == sorted(records)
    row = rows[1]
    assert float(row["snr_db"]) == min(alone["end_to_end"]["snr_db"])            # the worst channel
    assert float(row["rms_dbfs"]) == max(alone["end_to_end"]["rms_dbfs"])
    assert int(row["frames"]) == 13230 and row["status"] == "done" and row["error"] == ""
    # a second run skips everything and still writes the whole summary
    again = run_rtq("batch", "cd-16-shibata", "--inputs", corpus, "--out", out, "--report", "--jobs", "2")
    assert " 0 done, 3 skipped, 0 failed" in again.stderr
    assert json.loads((out / "rtq-batch-summary.json").read_text()) == summary


def test_progress_bar_on_a_terminal_only(corpus, tmp_path):
    quiet = run_rtq("batch", "tpdf-16", "--inputs", corpus, "--out", tmp_path / "quiet", "--jobs", "1")
    assert quiet.stdout == "" and len(quiet.stderr.splitlines()) == 1
    leader, follower = pty.openpty()
    batch = subprocess.Popen(rtq_command("batch", "tpdf-16", "--inputs", corpus, "--out", tmp_path / "tty",
                                         "--jobs", "1"),
                             env={**environment(), "COLUMNS": "150", "TERM": "xterm"}, stdout=subprocess.DEVNULL,
                             stderr=follower, start_new_session=True)
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    assert batch.wait(60) == 0
    text = shown.decode(errors="replace")
    assert "rendering" in text and "3/3 files" in text and "x real time" in text, text
    assert "rtq batch: 3 jobs: 3 done" in text


def test_without_dask_a_cluster_is_one_line(corpus, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)     # as if not installed
    status = main(["batch", "tpdf-16", "--inputs", str(corpus), "--out", str(tmp_path / "out"),
                   "--local-cluster", "2"])
    err = capsys.readouterr().err
    assert status == 2
    assert err == "rtq: a Dask cluster needs Dask and distributed: pip install 'rtq[cluster]'\n"


def test_rtq_batch_is_public_and_loads_neither_dask_nor_numba():
    code = ("import sys, rtq; rtq.batch; heavy = [m for m in ('dask', 'distributed', 'numba', 'rtq.render') "
            "if m in sys.modules]; print(heavy, callable(rtq.batch.plan), 'rtq.render' in sys.modules, "
            "'numba' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], env=environment(), capture_output=True, text=True)
    # plan and run load the renderer on use, which does not import Numba (rtq.jit)
    assert result.stdout == "[] True True False\n", result.stderr


def test_the_summarys_wall_time_counts_the_planning(corpus, tmp_path, capsys, monkeypatch):
    """The summary's "rendered in" is the command's wall time from planning on (hashing
    the inputs, reading their headers), not only the rendering."""
    planned = rtq.batch.jobs.plan

    def slow_plan(*args, **kwargs):
        time.sleep(1.5)
        return planned(*args, **kwargs)

    monkeypatch.setattr(rtq.batch.jobs, "plan", slow_plan)
    assert main(["batch", "tpdf-16", "--inputs", str(corpus), "--out", str(tmp_path / "out"), "--jobs", "1"]) == 0
    err = capsys.readouterr().err
    wall = float(re.search(r"of audio rendered in ([0-9.]+) s", err).group(1))
    assert wall >= 1.5, err
