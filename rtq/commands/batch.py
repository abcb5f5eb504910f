"""``rtq batch PRESET [PRESET ...] --inputs ... --out DIR``: many files, many presets."""
from __future__ import annotations

import argparse
import contextlib
import gc
import sys
import time


def add(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "batch", help="render many files through one or more presets, on every core or a Dask cluster",
        description="Render every input through every preset: each job is exactly `rtq render PRESET INPUT "
                    "OUTPUT --seed S`, with S derived from the base seed, the preset and the input's path, so "
                    "outputs do not depend on scheduling. Resumable: run the same command again after an "
                    "interruption and only the missing jobs run.")
    parser.add_argument("presets", metavar="PRESET", nargs="+", help="preset files or shipped preset names")
    parser.add_argument("--inputs", metavar="PATH_OR_GLOB", nargs="+", required=True,
                        help="audio files, folders (searched recursively) or globs; - reads paths from stdin")
    parser.add_argument("--out", metavar="DIR", required=True, help="output folder (made if missing)")
    parser.add_argument("--name", metavar="TEMPLATE", default="{stem}.{preset}{ext}",
                        help="output name under DIR, with {stem}, {relpath}, {preset}, {ext} "
                             "(default {stem}.{preset}{ext})")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--jobs", metavar="N", type=int,
                       help="worker processes on this machine (default: one per core)")
    where.add_argument("--local-cluster", metavar="N", type=int,
                       help="start a Dask LocalCluster of N worker processes (needs rtq[cluster])")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="run on the Dask cluster of this scheduler, tcp://HOST:8786 (needs rtq[cluster])")
    parser.add_argument("--connect-timeout", metavar="SECONDS", type=float,
                        help="with --scheduler: how long to wait for its answer before failing "
                             "(default 10)")
    parser.add_argument("--seed", type=int, help="base seed (default each preset's, else 0)")
    parser.add_argument("--subtype", metavar="S", help="output subtype for every job (default follows each preset)")
    parser.add_argument("--report", action="store_true",
                        help="write each job's render report beside its output (OUTPUT.json) and a summary "
                             "(rtq-batch-summary.json and .csv) in DIR")
    parser.add_argument("--allow-short", action="store_true",
                        help="render inputs that end before the length their header promises (as rtq render)")
    parser.add_argument("--manifest", metavar="FILE", help="JSON Lines manifest (default DIR/rtq-batch.jsonl)")
    parser.add_argument("--force", action="store_true",
                        help="replace existing outputs this batch did not write (never an input)")
    parser.add_argument("--dry-run", action="store_true", help="list the jobs and what would be skipped; render nothing")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()    # the summary's wall time: planning and the workers' start count
    # The start (Dask's and the renderer's imports, the plan, the cluster) makes next to
    # no cyclic garbage, yet its allocations set the cyclic collector off over and over:
    # it is off until the workers are ready (_render), as in rtq.batch.warm.
    gc.disable()
    try:
        return _run(args, started)
    finally:
        gc.enable()


def _run(args: argparse.Namespace, started: float) -> int:
    from rtq.errors import UsageError

    for option in ("jobs", "local_cluster"):
        value = getattr(args, option)
        if value is not None and value < 1:
            raise UsageError(f"--{option.replace('_', '-')} must be at least 1, got {value}")
    if args.connect_timeout is not None and not 0 < args.connect_timeout < 1e6:
        raise UsageError(f"--connect-timeout must be a number of seconds above 0, got {args.connect_timeout:g}")
    with contextlib.ExitStack() as stack:
        cluster = None
        if not args.dry_run:
            from rtq.batch import executors

            if not args.scheduler:
                executors.start_server(cluster=bool(args.local_cluster))    # its imports overlap the planning's
            if args.local_cluster or args.scheduler:
                # The cluster starts (or the scheduler is reached) while this thread plans.
                # Ctrl-C does not wait for a remote scheduler's answer (a local cluster's
                # start, yes: its processes are to be stopped).
                cluster = stack.enter_context(executors.Starting(
                    executors.dask_executor(local_cluster=args.local_cluster, scheduler=args.scheduler,
                                            timeout=args.connect_timeout or executors.CONNECT_TIMEOUT),
                    abandon_on_interrupt=bool(args.scheduler)))
        from rtq.batch.jobs import plan

        jobs = plan(args.presets, args.inputs, args.out, name=args.name, seed=args.seed, subtype=args.subtype,
                    report=args.report, force=args.force, allow_short=args.allow_short, manifest=args.manifest,
                    stdin=sys.stdin)
        if args.dry_run:
            return _dry_run(jobs)
        return _render(jobs, args, started, cluster)


def _render(jobs, args, started: float, cluster) -> int:
    """Run the jobs on ``cluster`` (a :class:`~rtq.batch.executors.Starting` Dask
    executor) or, without one, on this machine's processes."""
    from rtq.batch.executors import cores
    from rtq.batch.progress import ProgressBar, Tally
    from rtq.batch.scheduler import run, threads_per_render

    tally = Tally(jobs, started)
    # Made while the workers start: its library (rich) takes tens of milliseconds to
    # import, which would otherwise come between the cluster's start and its first task.
    bar = ProgressBar(jobs)
    if cluster is not None:
        executor, workers = cluster.result()
        # A Dask worker thread is the unit of CPU, here as on a remote cluster: one
        # render per worker thread, on that thread (so N workers use N cores).
        threads = 1
    else:
        executor, workers = None, args.jobs or cores()
        threads = threads_per_render(workers)
    # What the start loaded lives as long as the batch: frozen, the collections made
    # while it runs need not walk it.
    gc.freeze()
    gc.enable()
    finals = {}
    try:
        with bar:
            for record in run(jobs, executor, workers=workers, threads=threads):
                tally.add(record)
                finals[record["output"]] = record
                bar.update(record, tally)
    except KeyboardInterrupt:     # Ctrl-C or SIGTERM: what is done is recorded
        print(f"{tally.summary()}; interrupted: the same command resumes it", file=sys.stderr)
        raise
    print(tally.summary(), file=sys.stderr)
    for line in tally.failure_lines(jobs[0].manifest):
        print(line, file=sys.stderr)
    if args.report:
        from rtq.batch.summary import write_summary

        write_summary([finals[job.output] for job in jobs], args.out)
    return 1 if tally.counts["failed"] else 0


def _dry_run(jobs) -> int:
    import os

    from rtq.batch.identity import file_sha256
    from rtq.batch.manifest import read_records
    from rtq.batch.worker import up_to_date

    records = read_records(jobs[0].manifest)
    counts: dict[str, int] = {}
    for job in jobs:
        previous = records.get(job.output)
        action = "render"
        if os.path.lexists(job.output):
            ours = bool(previous) and previous.get("status") == "done"
            try:
                fresh = ours and up_to_date(job, previous, file_sha256(job.input))
            except OSError:
                fresh = False
            action = "skip" if fresh else "replace" if ours or job.force else "exists"
        counts[action] = counts.get(action, 0) + 1
        print(f"{action:8} {job.input} -> {job.output} ({job.preset}, seed {job.seed})")
    print(f"{len(jobs)} jobs: " + ", ".join(f"{n} {what}" for what, n in counts.items())
          + ("; 'exists': an output the batch did not write, kept if the render gives the same bytes, "
             "else refused without --force" if "exists" in counts else ""))
    return 0
