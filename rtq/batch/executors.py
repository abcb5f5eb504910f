"""Where a batch runs: worker processes on this machine, or a Dask cluster, all behind
``concurrent.futures.Executor``'s interface (Dask's through ``Client.get_executor``).

- :class:`ProcessPool`: ``--jobs N``, long-lived processes forked from a server that has
  loaded the renderer (:mod:`rtq.batch.warm`); a pool broken by the death of one of
  its processes is replaced at the next submit.
- :func:`dask_executor`: ``--local-cluster N`` starts a Dask ``LocalCluster`` of N
  single-threaded worker processes on this machine; ``--scheduler ADDRESS`` connects to
  a running scheduler.  Dask and distributed are imported only here, and only then.
"""
from __future__ import annotations

import contextlib
import contextvars
import logging
import multiprocessing
import os
import select
import signal
import threading
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from ..errors import UsageError

INSTALL_HINT = "pip install 'rtq[cluster]'"


def cores() -> int:
    """CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _start_worker(batch: int) -> None:
    # Ctrl-C reaches the whole process group: the batch process stops the workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_with(batch)


def exit_with(batch: int) -> None:
    """End this worker process as soon as the batch process (PID ``batch``, the one
    that created the pool) is gone.

    A pool's worker forked from the server waits for work on a queue it holds both ends
    of, so it would outlive a batch killed alone (SIGKILL of its PID, the OOM killer),
    and keep the server alive with it (Dask's worker processes watch their nanny
    themselves).  A thread waits on the batch's pidfd (Linux >= 5.3): no
    polling, no CPU."""
    if not hasattr(os, "pidfd_open"):
        return
    try:
        fd = os.pidfd_open(batch)
    except ProcessLookupError:
        os._exit(1)
    except OSError:
        return

    def wait() -> None:
        select.select([fd], [], [])
        os._exit(1)

    threading.Thread(target=wait, name="rtq-batch-watch", daemon=True).start()


def start_server(cluster: bool = False):
    """Start the server worker processes on this machine fork from (it imports
    :mod:`rtq.batch.warm`, or for a ``LocalCluster``'s workers :mod:`rtq.batch.warm_dask`:
    Dask's ``distributed`` too); returns its ``multiprocessing`` context.  Called early,
    the server loads the renderer while this process plans the batch; the first call's
    ``cluster`` decides what the server preloads."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["rtq.batch.warm_dask" if cluster else "rtq.batch.warm"])
    from multiprocessing import forkserver

    forkserver.ensure_running()
    return context


class ProcessPool(Executor):
    """``workers`` long-lived processes on this machine (a ``ProcessPoolExecutor`` whose
    processes fork from a server that imported :mod:`rtq.batch.warm`).

    When a process dies (killed, out of memory), ``ProcessPoolExecutor`` fails every
    call in flight with ``BrokenProcessPool`` and takes no more; this pool then starts
    a fresh one at the next :meth:`submit`.
    """

    def __init__(self, workers: int):
        self.workers = workers
        self._context = start_server()
        self._pool: ProcessPoolExecutor | None = None

    def _new_pool(self) -> ProcessPoolExecutor:
        # Created in the batch process (here, as the broken pool's replacement too): its
        # workers watch this process, not the server they fork from.
        return ProcessPoolExecutor(self.workers, mp_context=self._context, initializer=_start_worker,
                                   initargs=(os.getpid(),))

    def submit(self, fn, /, *args, **kwargs):
        if self._pool is None:
            self._pool = self._new_pool()
        try:
            return self._pool.submit(fn, *args, **kwargs)
        except BrokenProcessPool:
            self._pool.shutdown(wait=False)
            self._pool = self._new_pool()
            return self._pool.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)

    def terminate(self) -> None:
        """Stop at once: cancel what waits and kill the processes (their renders leave
        nothing: outputs appear only when complete)."""
        if self._pool is None:
            return
        processes = list((getattr(self._pool, "_processes", None) or {}).values())
        self._pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            with contextlib.suppress(Exception):
                process.kill()
        for process in processes:
            with contextlib.suppress(Exception):
                process.join(5)


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise UsageError(f"a Dask cluster needs Dask and distributed: {INSTALL_HINT}") from None
    return distributed


CONNECT_TIMEOUT = 10.0
"""Seconds ``--scheduler`` waits for the scheduler to answer (``--connect-timeout``)."""


def _connect(distributed, scheduler: str, timeout: float):
    """A Dask client of the scheduler at ``scheduler``, connected within ``timeout``
    seconds, else a one-line :class:`UsageError`.

    ``Client(timeout=...)`` bounds the TCP connection but not Dask's handshake, which
    waits for ever on a port that accepts and never answers (some other server, a
    scheduler that is stuck): the client is made on a daemon thread, left to itself
    (and closed if it ever connects) when the time is up."""
    outcome: list = []          # the client, or its error, while the caller waits
    ready, lock = threading.Event(), threading.Lock()

    def make() -> None:
        try:
            # Not the process's default client: nothing looks it up, and Dask's exit
            # hook would wait for an abandoned one to close.
            made = distributed.Client(scheduler, timeout=timeout, set_as_default=False)
        except BaseException as err:     # handed to the caller
            made = err
        with lock:
            if not ready.is_set():
                outcome.append(made)
                ready.set()
                return
        if not isinstance(made, BaseException):     # too late: the caller has given up
            made.close()

    threading.Thread(target=make, name="rtq-batch-connect", daemon=True).start()
    ready.wait(timeout)
    with lock:
        ready.set()
    if not outcome:
        raise UsageError(f"--scheduler {scheduler}: cannot connect (no Dask scheduler answered within {timeout:g} s)")
    if isinstance(outcome[0], (OSError, TimeoutError)):
        raise UsageError(f"--scheduler {scheduler}: cannot connect ({outcome[0]})") from None
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


@contextlib.contextmanager
def dask_executor(*, local_cluster: int | None = None, scheduler: str | None = None,
                  timeout: float = CONNECT_TIMEOUT):
    """A ``concurrent.futures`` executor on a Dask cluster: a ``LocalCluster`` of
    ``local_cluster`` single-threaded worker processes, or the scheduler at
    ``scheduler`` (``tcp://HOST:8786``), which must answer within ``timeout`` seconds.
    Yields ``(executor, workers)``: ``workers`` counts the threads the cluster has now."""
    distributed = _import_distributed()
    import dask

    # A task on a worker that dies fails at once (KilledWorker): rtq.batch.run retries
    # it once, alone, so a file that kills its worker fails only its own job.
    # Dask's own log lines (a worker lost, a result gathered again) are not the user's:
    # what happens to each job is in its record and the summary.
    logging.getLogger("distributed").setLevel(logging.CRITICAL)
    # A LocalCluster's workers fork from the server that has imported distributed and
    # the renderer (started early by `rtq batch`, while it plans), rather than each being
    # a fresh interpreter importing both (Dask's default, "spawn"): the cluster starts and
    # stops in a fraction of the time (BENCHMARKS.md).  Nobody looks at a dashboard or a
    # worker's statistical profile here, and both cost CPU the renders share; nor do the
    # scheduler, nannies and workers need to wake 50 times a second (the event loop's
    # tick), measure the system twice a second, or look at memory ten times a second
    # (a render's memory is bounded): their idle CPU falls to a fifth (BENCHMARKS.md).
    # Tasks are balanced by their sizes (rtq.batch.scheduler.Chunks), not by stealing.
    settings = {"distributed.scheduler.allowed-failures": 0}
    if local_cluster is not None:
        start_server(cluster=True)
        settings.update({"distributed.worker.multiprocessing-method": "forkserver",
                         "distributed.worker.profile.enabled": False,
                         "distributed.admin.tick.interval": "500ms",
                         "distributed.admin.system-monitor.interval": "2s",
                         "distributed.worker.memory.monitor-interval": "1s",
                         "distributed.scheduler.work-stealing": False})
    with dask.config.set(settings):
        with contextlib.ExitStack() as stack:
            if local_cluster is not None:
                with _prompt_nannies():
                    cluster = stack.enter_context(distributed.LocalCluster(
                        n_workers=local_cluster, threads_per_worker=1, processes=True, dashboard_address=None,
                        silence_logs=logging.CRITICAL, preload=["rtq.batch.warm"],
                        # With no dashboard the scheduler still serves HTTP (health, metrics),
                        # by default on port 8787, and warns on standard error when another
                        # cluster holds it: any free port on this machine's loopback instead.
                        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}))
                client = stack.enter_context(distributed.Client(cluster))
            else:
                client = stack.enter_context(_connect(distributed, scheduler, timeout))
            workers = sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values())
            yield client.get_executor(pure=False), max(workers, 1)


@contextlib.contextmanager
def _prompt_nannies():
    """While a ``LocalCluster`` starts, its nannies look every 5 ms, not every 50 ms
    (Dask's ``WorkerProcess._init_msg_interval``, a private setting), for their worker
    process's word that it is up: the start waited 25 ms for it on average."""
    from distributed.nanny import WorkerProcess

    interval = getattr(WorkerProcess, "_init_msg_interval", None)
    if interval is None:
        yield
        return
    WorkerProcess._init_msg_interval = min(interval, 0.005)
    try:
        yield
    finally:
        WorkerProcess._init_msg_interval = interval


class Starting:
    """A context manager entered on a thread of its own, so that what it waits for (a
    Dask cluster's start, a scheduler's answer) overlaps the caller's own work (the
    batch's planning); :meth:`result` waits for what it gave (or raises its error).
    Used as a context manager itself, it exits the other one (after waiting for it to
    have entered), with its error, if any, left unraised when the caller's is on its way.

    ``abandon_on_interrupt``: when the caller's error is a KeyboardInterrupt (Ctrl-C)
    and the other one is still entering, it is left to its (daemon) thread, neither
    waited for nor exited: for a connection to a remote scheduler, which holds nothing
    of this machine's and which an unreachable scheduler keeps waiting (Dask's connect
    timeout, or longer), while the process is ending.  Not for a local cluster, whose
    processes its exit stops."""

    def __init__(self, manager, abandon_on_interrupt: bool = False):
        self._manager = manager
        self._abandon = abandon_on_interrupt
        self._value = self._error = None
        # Entered and exited in one context (Dask's client keeps itself in a ContextVar).
        self._context = contextvars.copy_context()
        # An event, not Thread.join: a join interrupted by Ctrl-C marks the thread ended
        # while it runs on (CPython 3.11), and the next join would not wait.
        self._entered = threading.Event()
        threading.Thread(target=self._enter, name="rtq-batch-start", daemon=True).start()

    def _enter(self) -> None:
        try:
            self._value = self._context.run(self._manager.__enter__)
        except BaseException as err:     # handed to result()
            self._error = err
        finally:
            self._entered.set()

    def result(self):
        self._entered.wait()
        if self._error is not None:
            raise self._error
        return self._value

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._abandon and isinstance(exc[1], KeyboardInterrupt) and not self._entered.is_set():
            return None
        self._entered.wait()
        if self._error is None:
            return self._context.run(self._manager.__exit__, *exc)
        return None


def worker_lost(err: BaseException) -> bool:
    """Whether a job's exception says its worker process died (not the job's own error)."""
    return isinstance(err, BrokenProcessPool) or (type(err).__name__ == "KilledWorker"
                                                   and type(err).__module__.startswith("distributed"))
