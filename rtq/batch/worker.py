"""The job function: what a worker process runs for each job of a batch.

Workers are long-lived: a worker (each of its threads) builds each preset's chain once and renders every
file of that preset with it (setting the job's seed and preparing it for the file,
which allocates and designs nothing new: designs and compiled code are kept by the
process), so a job costs no process start, import or compile.  The render is
:func:`rtq.render.render_file`, exactly as ``rtq render PRESET INPUT OUTPUT --seed S``
runs it.

An existing output is handled by who wrote it:

- the batch did (the manifest's last record for it is a finished job): if the record
  still matches (input, preset, seed, rtq version, the output's own SHA-256, the
  report present if asked for), the job is skipped; otherwise the output is stale or
  damaged and is rendered again, replacing it;
- anything else: replaced only with ``force``; without it the job renders anyway and
  the existing file is kept if it holds exactly the same bytes (a run killed after an
  output appeared and before its record was written, or a manifest deleted), else the
  job fails with ``exists; use --force``.

Every failure a file can cause (unreadable, a rate the preset cannot serve, a full disk,
a bug) becomes the record's one-line ``error``; only the death of the process itself
escapes, which :func:`rtq.batch.scheduler.run` handles.
"""
from __future__ import annotations

import functools
import os
import socket
import threading
import time

from ..chain import Chain
from ..errors import RtqError, UsageError
from .identity import file_sha256

_MOST_CHAINS = 32
# Each thread its own chains: a prepared chain's state belongs to one render at a time
# (a Dask worker or a thread pool may run several jobs in one process).
_local = threading.local()


@functools.cache
def rtq_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rtq")
    except PackageNotFoundError:
        return "unknown"


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _chain(job) -> Chain:
    """This thread's chain for the job's preset (built once), with the job's seed."""
    _chains = _local.__dict__.setdefault("chains", {})
    chain = _chains.get(job.preset_sha256)
    if chain is None:
        if len(_chains) >= _MOST_CHAINS:
            _chains.pop(next(iter(_chains)))
        chain = _chains[job.preset_sha256] = Chain.from_spec(job.spec)
    chain.seed = job.seed
    return chain


def base_record(job) -> dict:
    """The fields of a job's record known before it runs, in the manifest's order."""
    return {"input": job.input, "input_sha256": None, "preset": job.preset, "preset_file": job.preset_file,
            "preset_sha256": job.preset_sha256, "seed": job.seed, "rtq_version": rtq_version(),
            "output": job.output, "subtype": None, "output_sha256": None, "sample_rate": None,
            "channels": None, "frames": None, "missing": None, "clips": None, "nonfinite": None, "loop_resets": None,
            "status": "failed", "error": None}


def up_to_date(job, previous: dict | None, input_sha256: str) -> bool:
    """Whether ``previous`` (the manifest's last record for the job's output) still
    describes what is on disk and what the job would make."""
    if not previous or previous.get("status") != "done":
        return False
    same = all(previous.get(key) == value for key, value in (
        ("input_sha256", input_sha256), ("preset_sha256", job.preset_sha256), ("seed", job.seed),
        ("rtq_version", rtq_version()), ("subtype", previous.get("subtype") if job.subtype is None else job.subtype)))
    if not same or (job.report and ("figures" not in previous or not os.path.isfile(job.report))):
        return False
    try:
        return file_sha256(job.output) == previous.get("output_sha256")
    except OSError:
        return False


def render_job(job, previous: dict | None = None, threads: int = 1) -> dict:
    """Run ``job``; returns its record (status ``done``, ``skipped`` or ``failed``).

    ``previous`` is the manifest's last record for the job's output (None: none);
    ``threads`` is how many channel groups the render may run in parallel.
    """
    started = time.perf_counter()
    record = base_record(job)
    try:
        try:
            record["input_sha256"] = file_sha256(job.input)
        except OSError as err:
            raise UsageError(f"cannot read {job.input}: {err.strerror or err}") from None
        if os.path.lexists(job.output) and up_to_date(job, previous, record["input_sha256"]):
            record = {**previous, "status": "skipped"}
        else:
            ours = bool(previous) and previous.get("status") == "done"
            record.update(_render(job, threads, replace=ours or job.force))
            record["status"] = "done"
    except RtqError as err:
        record["error"] = _one_line(str(err))
    except Exception as err:   # a bug, or MemoryError: this job fails, the batch goes on
        record["error"] = _one_line(f"internal error: {type(err).__name__}: {err}")
    record["worker"] = worker_id()
    record["wall_seconds"] = round(time.perf_counter() - started, 6)
    return record


def render_jobs(jobs, previous, threads: int = 1) -> list[dict]:
    """Run ``jobs`` one after another in this worker; returns their records, in order.

    One call (one task of the executor) runs several jobs so that a job's cost is the
    render, not a round trip through the executor (:mod:`rtq.batch.scheduler` sizes the
    chunks); ``previous`` holds each job's last manifest record (or None).
    """
    return [render_job(job, before, threads) for job, before in zip(jobs, previous)]


def _render(job, threads: int, replace: bool) -> dict:
    from ..render import render_file

    chain = _chain(job)
    meter = None
    if job.report:
        from ..meter.chain_meter import RenderMeter

        meter = RenderMeter(workers=threads)
    result = render_file(chain, job.input, job.output, subtype=job.subtype, force=replace, keep_identical=not replace,
                         progress=False, observer=meter, allow_short=job.allow_short, threads=threads, sha256=True)
    fields = {"subtype": result.subtype, "output_sha256": result.sha256, "sample_rate": result.sample_rate,
              "channels": result.channels, "frames": result.frames, "missing": result.missing, "clips": result.clips,
              "nonfinite": result.nonfinite, "loop_resets": result.resets}
    if meter is not None:
        fields["figures"] = _write_report(job, chain, meter, replace)
    return fields


# Per-channel end-to-end figures a batch summary lists (the report's names).
FIGURES = ("rms_dbfs", "peak_dbfs", "snr_db", "a_weighted_dbfs", "itu468_dbfs")


def _write_report(job, chain, meter, replace: bool) -> dict:
    """Write the job's render report (as ``rtq render --report`` does) beside its
    output; returns its end-to-end figures for the manifest."""
    from ..report import dumps, make_report

    report = make_report(meter.finish(chain).report(), "render", preset=job.preset, input=job.input,
                         output=job.output, seed=job.seed)
    _write_beside(job.report, dumps(report).encode(), replace)
    end = report.get("end_to_end") or {}
    return {name: end.get(name) for name in FIGURES}


def _write_beside(path: str, data: bytes, replace: bool) -> None:
    """Write a file that goes with an output: an existing one is kept if it holds the
    same bytes, replaced if the batch owns it (``replace``), else refused."""
    from ..files.destination import write_atomic

    if os.path.lexists(path) and not replace:
        try:
            with open(path, "rb") as f:
                if f.read(len(data) + 1) == data:
                    return
        except OSError:
            pass
        raise UsageError(f"{path} exists; use --force to replace it")
    write_atomic(path, data, force=True)


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " / ".join(lines) if lines else "failed"
