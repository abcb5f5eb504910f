"""Batch rendering: every input through every preset, on every core or a Dask cluster,
resumable and reproducible (``rtq batch``).

>>> jobs = rtq.batch.plan(["cd-16-shibata", "tpdf-16"], ["corpus/"], "out")
>>> for record in rtq.batch.run(jobs):           # worker processes on this machine
...     print(record["status"], record["output"])

Each job is exactly ``rtq render PRESET INPUT OUTPUT --seed S`` (:meth:`Job.command`),
with a seed derived from the base seed, the preset's name and the input's relative path
(:func:`~rtq.batch.identity.derive_seed`), so outputs do not depend on scheduling.
:func:`run` takes any ``concurrent.futures.Executor``, Dask's included
(:func:`~rtq.batch.executors.dask_executor`); it writes the manifest
(:mod:`rtq.batch.manifest`) as jobs end and skips the jobs it shows done.

Modules: :mod:`~rtq.batch.jobs` (planning, checks), :mod:`~rtq.batch.inputs` (finding
inputs), :mod:`~rtq.batch.identity` (seeds, hashes), :mod:`~rtq.batch.worker` (the job
function), :mod:`~rtq.batch.scheduler` (running, retries), :mod:`~rtq.batch.executors`
(local processes, Dask), :mod:`~rtq.batch.manifest`, :mod:`~rtq.batch.progress`,
:mod:`~rtq.batch.summary`.  Importing this package imports neither Dask nor Numba.
"""
from __future__ import annotations


def __getattr__(name):
    # plan and run pull in the renderer (NumPy, Numba): only when asked for.
    if name in ("plan", "Job", "DEFAULT_NAME"):
        from . import jobs as module
    elif name == "run":
        from . import scheduler as module
    else:
        raise AttributeError(f"module 'rtq.batch' has no attribute {name!r}")
    return getattr(module, name)


__all__ = ["plan", "run", "Job", "DEFAULT_NAME"]
