"""Running a batch: jobs out to any ``concurrent.futures.Executor``, records back as
they finish, each made durable in the manifest before it is yielded.

Scheduling never changes an output (seeds are the plan's), only the order of the
manifest's lines.  At most :func:`window` jobs are in flight, so a broken pool loses
little and progress is honest.

A worker process that dies (killed, out of memory, a crash in a library) fails the
jobs it held; for a local pool that is every job in flight.  Each such job is run again
once, alone (nothing else in flight), on another worker process: a job whose worker
dies again then fails with that error, and no other job is blamed for it.
"""
from __future__ import annotations

import os
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Executor, wait
from collections.abc import Iterator

from ..errors import RtqError
from .executors import ProcessPool, cores, worker_lost
from .manifest import ManifestWriter, read_records
from .worker import base_record, render_job

WORKER_DIED = "its worker process died twice while rendering it (killed, or out of memory)"


def threads_per_render(workers: int) -> int:
    """Channel groups each render may run in parallel when ``workers`` processes share
    this machine's cores: the cores each process has (at least 1), so N processes never
    run more compute threads than there are cores."""
    return max(1, cores() // max(workers, 1))


def run(jobs, executor: Executor | None = None, *, workers: int | None = None, threads: int | None = None
        ) -> Iterator[dict]:
    """Render ``jobs`` (from :func:`rtq.batch.plan`) and yield each job's record as it
    finishes (status ``done``, ``skipped`` or ``failed``; see :mod:`rtq.batch.manifest`).

    Parameters
    ----------
    executor : concurrent.futures.Executor, optional
        Where jobs run (a Dask ``Client.get_executor()`` too).  Default: a
        :class:`~rtq.batch.executors.ProcessPool` of ``workers`` processes, stopped when
        the iteration ends.
    workers : int, optional
        Jobs the executor runs at once (default: this machine's cores for the default
        pool; else one per core).
    threads : int, optional
        Channel groups per render (default :func:`threads_per_render` of ``workers``).

    Resume is built in: a job whose output and manifest record still match is skipped
    (its record is yielded with status ``skipped`` and not written again).
    """
    jobs = list(jobs)
    if not jobs:
        return
    manifests = {job.manifest for job in jobs}
    if len(manifests) != 1:
        raise ValueError("the jobs of one run share one manifest (plan them together)")
    previous = read_records(jobs[0].manifest)
    for folder in sorted({os.path.dirname(job.output) for job in jobs}):
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as err:
            raise RtqError(f"cannot make the folder {folder}: {err.strerror or err}") from None
    own = executor is None
    workers = workers or cores()
    threads = threads or threads_per_render(workers)
    if own:
        executor = ProcessPool(workers)
    finished = False
    try:
        with ManifestWriter(jobs[0].manifest) as manifest:
            for record in _schedule(jobs, executor, previous, window(workers), threads):
                if record["status"] != "skipped":
                    manifest.append(record)
                yield record
        finished = True
    finally:
        if own:
            if finished:
                executor.shutdown()
            else:            # interrupted, or the caller stopped iterating
                executor.terminate()


def window(workers: int) -> int:
    """Jobs in flight at once: two per worker, so none waits for the next."""
    return 2 * max(workers, 1)


def _schedule(jobs, executor, previous, limit: int, threads: int):
    waiting = deque(jobs)
    suspects: deque = deque()      # jobs whose worker died: run again, one at a time
    flying: dict = {}              # future -> (job, attempt)

    def submit(job, attempt):
        future = executor.submit(render_job, job, previous.get(job.output), threads)
        flying[future] = (job, attempt)

    while waiting or suspects or flying:
        if suspects:
            if not flying:
                submit(suspects.popleft(), 2)
        else:
            while waiting and len(flying) < limit:
                submit(waiting.popleft(), 1)
        done, _ = wait(list(flying), return_when=FIRST_COMPLETED)
        for future in done:
            job, attempt = flying.pop(future)
            error = future.exception()
            if error is None:
                record = future.result()
            elif worker_lost(error) and attempt == 1:
                suspects.append(job)
                continue
            else:
                record = base_record(job)
                record["error"] = WORKER_DIED if worker_lost(error) else \
                    f"internal error: {type(error).__name__}: {error}".splitlines()[0]
                record["worker"], record["wall_seconds"] = None, None
            record["attempt"] = attempt
            yield record
