"""Running a batch: jobs out to any ``concurrent.futures.Executor``, records back as
they finish, each made durable in the manifest before it is yielded.

Scheduling never changes an output (seeds are the plan's), only the order of the
manifest's lines.  Jobs travel in chunks, several per task (:class:`Chunks`): a short
file renders in about what a Dask task costs the client, scheduler and worker
(BENCHMARKS.md), so one job per task spent about as much CPU on scheduling as on
audio.  A chunk is sized from the jobs finished so far to about :data:`TASK_SECONDS`
of work and to at most a :data:`TASKS_PER_WORKER`-th of each worker's share of what is
left, so chunks shrink toward the end and no worker idles while another finishes a
long one.  At most two chunks per worker are in flight, so a broken pool loses little
and progress is honest.  A chunk's records come back, and are written, when its last
job ends; the records of the tasks that ended together are written with one ``write``
and one ``fsync``.

A worker process that dies (killed, out of memory, a crash in a library) fails the
chunks it held; for a local pool that is every chunk in flight.  Each of their jobs is
then run again once, alone (one job, nothing else in flight), on another worker
process: a job whose worker dies again then fails with that error, and no other job is
blamed for it.  (Jobs of the chunk that had finished are rendered again too: their
outputs exist without a record, and a render that makes the same bytes keeps them.)
"""
from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Executor
from queue import SimpleQueue

from ..errors import RtqError
from .executors import ProcessPool, cores, worker_lost
from .manifest import ManifestWriter, read_records
from .worker import base_record, render_jobs

WORKER_DIED = "its worker process died twice while rendering it (killed, or out of memory)"
TASK_SECONDS = 1.0
"""Work per task the chunks aim at (from the jobs finished so far): long enough that a
task's round trip is a small part of it, short enough that the end of a batch and a
worker's death cost little."""
TASKS_PER_WORKER = 4
"""A chunk holds at most this fraction of each worker's share of the jobs left."""


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
            for records in _schedule(jobs, executor, previous, workers, threads):
                manifest.append([record for record in records if record["status"] != "skipped"])
                yield from records
        finished = True
    finally:
        if own:
            if finished:
                executor.shutdown()
            else:            # interrupted, or the caller stopped iterating
                executor.terminate()


def window(workers: int) -> int:
    """Tasks in flight at once: two per worker, so none waits for the next."""
    return 2 * max(workers, 1)


class Chunks:
    """Takes the next task's jobs from the front of the queue: at least one; more while
    the work predicted for them stays within :data:`TASK_SECONDS` and their number
    within ``ceil(jobs left / (TASKS_PER_WORKER * workers))``.  The prediction is the
    jobs' input sizes times the seconds per input byte of the jobs finished so far;
    until one has finished, a task is one job."""

    def __init__(self, workers: int):
        self.workers = max(workers, 1)
        self.seconds = 0.0       # wall time of the jobs finished so far
        self.bytes = 0           # and their inputs' sizes
        self.sizes: dict[str, int] = {}

    def _size(self, job) -> int:
        size = self.sizes.get(job.input)
        if size is None:
            try:
                size = os.path.getsize(job.input)
            except OSError:
                size = 0
            self.sizes[job.input] = size
        return size

    def take(self, waiting: deque) -> list:
        chunk = [waiting.popleft()]
        if not self.bytes:
            return chunk
        most = math.ceil((len(waiting) + 1) / (TASKS_PER_WORKER * self.workers))
        per_byte = self.seconds / self.bytes
        work = self._size(chunk[0]) * per_byte
        while waiting and len(chunk) < most:
            work += self._size(waiting[0]) * per_byte
            if work > TASK_SECONDS:
                break
            chunk.append(waiting.popleft())
        return chunk

    def learn(self, chunk, records) -> None:
        for job, record in zip(chunk, records):
            if record.get("wall_seconds") is not None:
                self.seconds += record["wall_seconds"]
                self.bytes += self._size(job)


def _schedule(jobs, executor, previous, workers: int, threads: int):
    """Yields the records of the tasks that ended since the last yield (a list: each
    task's in its jobs' order)."""
    waiting = deque(jobs)
    suspects: deque = deque()      # jobs whose worker died: run again, one at a time
    flying: dict = {}              # future -> (jobs, attempt)
    ended: SimpleQueue = SimpleQueue()    # futures as they end: O(1) per task, however many fly
    chunks = Chunks(workers)
    limit = window(workers)

    def submit(chunk, attempt):
        future = executor.submit(render_jobs, chunk, [previous.get(job.output) for job in chunk], threads)
        flying[future] = (chunk, attempt)
        future.add_done_callback(ended.put)

    while waiting or suspects or flying:
        if suspects:
            if not flying:
                submit([suspects.popleft()], 2)
        else:
            while waiting and len(flying) < limit:
                submit(chunks.take(waiting), 1)
        done = [ended.get()]
        while not ended.empty():
            done.append(ended.get())
        records = []
        for future in done:
            chunk, attempt = flying.pop(future)
            error = future.exception()
            if error is None:
                ours = future.result()
                chunks.learn(chunk, ours)
            elif worker_lost(error) and attempt == 1:
                suspects.extend(chunk)
                continue
            else:
                ours = [_failed(job, error) for job in chunk]
            for record in ours:
                record["attempt"] = attempt
            records += ours
        if records:
            yield records


def _failed(job, error: BaseException) -> dict:
    """The record of a job whose task raised (its worker died twice, or an executor's
    own error)."""
    record = base_record(job)
    record["error"] = WORKER_DIED if worker_lost(error) else \
        f"internal error: {type(error).__name__}: {error}".splitlines()[0]
    record["worker"], record["wall_seconds"] = None, None
    return record
