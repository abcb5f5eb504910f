"""What a batch tells while and after it runs: a progress bar on a terminal (files and
audio done, speed in times real time, time left, failures so far; nothing when
standard error is not a terminal) and a one-line summary at the end, with the first
failures."""
from __future__ import annotations

import os
import time

MOST_FAILURES_LISTED = 5


def audio_seconds(record: dict) -> float:
    frames, rate = record.get("frames"), record.get("sample_rate")
    return frames / rate if frames and rate else 0.0


def duration_text(seconds: float) -> str:
    """``3.2 s``, ``4 min 12 s``, ``2 h 13 min``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min {int(seconds % 60)} s"
    return f"{minutes // 60} h {minutes % 60} min"


class Tally:
    """Counts the records of a batch as they come."""

    def __init__(self, jobs, started: float | None = None):
        """``started``: the ``time.monotonic()`` the wall time counts from (default now)."""
        self.order = {job.output: i for i, job in enumerate(jobs)}
        self.jobs = len(self.order)
        self.counts = {"done": 0, "skipped": 0, "failed": 0}
        self.rendered_seconds = 0.0     # audio rendered in this run
        self.audio_seconds = 0.0        # audio of every finished job, skipped ones included
        self.failures: list[dict] = []
        self.started = time.monotonic() if started is None else started

    def add(self, record: dict) -> None:
        self.counts[record["status"]] += 1
        seconds = audio_seconds(record)
        self.audio_seconds += seconds
        if record["status"] == "done":
            self.rendered_seconds += seconds
        if record["status"] == "failed":
            self.failures.append(record)

    @property
    def finished(self) -> int:
        return sum(self.counts.values())

    def speed(self) -> float:
        """Audio rendered per second of wall time (times real time)."""
        wall = time.monotonic() - self.started
        return self.rendered_seconds / wall if wall > 0 else 0.0

    def summary(self) -> str:
        wall = time.monotonic() - self.started
        counts = ", ".join(f"{n} {what}" for what, n in self.counts.items())
        return (f"rtq batch: {self.jobs} job{'s' * (self.jobs != 1)}: {counts}; "
                f"{duration_text(self.rendered_seconds)} of audio rendered in {duration_text(wall)} "
                f"({self.speed():.0f}x real time)")

    def failure_lines(self, manifest: str) -> list[str]:
        """The first failures in the jobs' order, then how many more."""
        first = sorted(self.failures, key=lambda r: self.order.get(r["output"], 0))[:MOST_FAILURES_LISTED]
        lines = [f"rtq: failed: {r['input']} ({r['preset']}): {_without(r['error'], r['input'])}" for r in first]
        more = len(self.failures) - MOST_FAILURES_LISTED
        if more > 0:
            lines.append(f"rtq: ... and {more} more failed job{'s' * (more != 1)}: see {manifest}")
        return lines


class ProgressBar:
    """A rich progress bar on standard error when it is a terminal; else nothing."""

    def __init__(self, jobs, stream=None):
        from rich.console import Console

        self.console = Console(file=stream, stderr=stream is None)
        self.progress = None
        if not self.console.is_terminal:
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.sizes = {job.output: _size(job.input) for job in jobs}
        self.progress = Progress(
            TextColumn("rendering"), BarColumn(), TextColumn("{task.fields[files]} files"),
            TextColumn("{task.fields[audio]} audio"), TextColumn("{task.fields[speed]}x real time"),
            TimeRemainingColumn(), TextColumn("{task.fields[failed]}"), console=self.console, transient=True)
        self.task = self.progress.add_task("batch", total=sum(self.sizes.values()) or 1, files=f"0/{len(jobs)}",
                                           audio="0.0 s", speed="0", failed="")

    def update(self, record: dict, tally: Tally) -> None:
        if self.progress is None:
            return
        failed = tally.counts["failed"]
        self.progress.update(self.task, advance=self.sizes.get(record["output"], 0),
                             files=f"{tally.finished}/{tally.jobs}", audio=duration_text(tally.audio_seconds),
                             speed=f"{tally.speed():.0f}", failed=f"{failed} failed" if failed else "")

    def __enter__(self):
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()


def _without(error: str, path: str) -> str:
    """An error without the input's path in front (the line names it already)."""
    return error[len(path):].lstrip(": ") if error.startswith(path + ":") or error.startswith(path + " ") else error


def _size(path: str) -> int:
    try:
        return max(os.path.getsize(path), 1)
    except OSError:
        return 1
