"""Jobs travel several to a task: one job per task until one has finished, then as many
as fit in about TASK_SECONDS of work (from the seconds per input byte so far) and in a
TASKS_PER_WORKER-th of each worker's share of what is left; every job still gets its
own record, written once."""
from __future__ import annotations

import math
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import rtq.batch
from rtq.batch.scheduler import TASK_SECONDS, TASKS_PER_WORKER, Chunks

from .helpers import make_corpus, manifest_lines

MB = 1 << 20


def jobs_of(tmp_path, sizes):
    jobs = []
    for i, size in enumerate(sizes):
        path = tmp_path / f"{i}.wav"
        with open(path, "wb") as f:
            f.truncate(size)
        jobs.append(SimpleNamespace(input=str(path)))
    return jobs


def test_one_job_per_task_until_one_has_finished(tmp_path):
    waiting = deque(jobs_of(tmp_path, [MB] * 10))
    chunks = Chunks(workers=2)
    assert [len(chunks.take(waiting)) for _ in range(4)] == [1, 1, 1, 1]


def test_chunks_hold_a_task_s_work_and_shrink_toward_the_end(tmp_path):
    jobs = jobs_of(tmp_path, [MB] * 400)
    chunks = Chunks(workers=2)
    # 0.03 s per MiB: 33 jobs fit in TASK_SECONDS (1.0 s), 34 do not
    chunks.learn(jobs[:2], [{"wall_seconds": 0.03}, {"wall_seconds": 0.03}])
    assert TASK_SECONDS == 1.0 and TASKS_PER_WORKER == 4
    waiting = deque(jobs)
    assert len(chunks.take(waiting)) == 33                    # the time cap
    sizes = []
    while waiting:
        left = len(waiting)
        sizes.append(len(chunks.take(waiting)))
        assert sizes[-1] == min(33, math.ceil(left / (TASKS_PER_WORKER * 2)))
    assert sizes[-4:] == [1, 1, 1, 1] and sum(sizes) == 367


def test_a_long_job_goes_alone(tmp_path):
    jobs = jobs_of(tmp_path, [MB, MB, 100 * MB] + [MB] * 40)
    chunks = Chunks(workers=1)
    chunks.learn(jobs[:1], [{"wall_seconds": 0.02}])          # 0.02 s per MiB: 100 MiB take 2 s
    chunks.learn([SimpleNamespace(input=os.devnull)], [{"wall_seconds": None}])    # a job that failed: no time
    waiting = deque(jobs[1:])
    assert len(chunks.take(waiting)) == 1                     # the long one does not join it
    assert len(chunks.take(waiting)) == 1                     # the long one
    assert len(chunks.take(waiting)) == 10                    # a quarter of the 40 left


def test_every_job_gets_one_record_from_fewer_tasks(tmp_path):
    corpus = tmp_path / "in"
    make_corpus(corpus, 24, seconds=0.1, nested=False)
    jobs = rtq.batch.plan(["tpdf-16"], [corpus], tmp_path / "out")

    class Counting(ThreadPoolExecutor):
        tasks: list[int] = []

        def submit(self, fn, /, *args, **kwargs):
            self.tasks.append(len(args[0]))
            return super().submit(fn, *args, **kwargs)

    with Counting(2) as executor:
        records = list(rtq.batch.run(jobs, executor, workers=2))
    assert sorted(r["output"] for r in records) == sorted(job.output for job in jobs)
    assert {r["status"] for r in records} == {"done"} and {r["attempt"] for r in records} == {1}
    assert sum(Counting.tasks) == 24 and Counting.tasks[:4] == [1, 1, 1, 1] and len(Counting.tasks) < 24
    lines = manifest_lines(tmp_path / "out" / "rtq-batch.jsonl")
    assert [r["output"] for r in lines] == [r["output"] for r in records]
