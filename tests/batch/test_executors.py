"""rtq.batch.executors.Starting: a context manager entered on a thread of its own."""
from __future__ import annotations

import gc
import signal
import threading

import pytest

from rtq.batch.executors import ProcessPool, Starting
from rtq.cli import main

from .helpers import make_corpus


class Slow:
    """Enters when ``gate`` opens; logs its entry and exit."""

    def __init__(self):
        self.gate = threading.Event()
        self.log = []

    def __enter__(self):
        self.gate.wait(10)
        self.log.append("entered")
        return "value"

    def __exit__(self, *exc):
        self.log.append("exited")


def interrupt_main_thread_after(seconds: float) -> threading.Timer:
    timer = threading.Timer(seconds, signal.pthread_kill, (threading.main_thread().ident, signal.SIGINT))
    timer.start()
    return timer


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals reach the main thread")
def test_ctrl_c_while_waiting_still_exits_what_entered():
    """Ctrl-C while waiting for the start (a local cluster's): the exit waits until the
    other one has entered, then exits it.  With Thread.join the interrupted wait left the
    thread marked as ended (CPython 3.11), the exit did not wait, and exiting a context
    the other thread was still in raised RuntimeError."""
    slow = Slow()
    threading.Timer(0.3, slow.gate.set).start()
    interrupt_main_thread_after(0.1)
    with pytest.raises(KeyboardInterrupt):
        with Starting(slow) as starting:
            starting.result()
    assert slow.log == ["entered", "exited"]


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals reach the main thread")
def test_ctrl_c_while_waiting_abandons_a_remote_start():
    """``abandon_on_interrupt``: an interrupted wait leaves the other one to its thread."""
    slow = Slow()
    interrupt_main_thread_after(0.1)
    with pytest.raises(KeyboardInterrupt):
        with Starting(slow, abandon_on_interrupt=True) as starting:
            starting.result()
    assert slow.log == []
    slow.gate.set()


def test_the_value_and_the_error_of_the_start():
    slow = Slow()
    slow.gate.set()
    with Starting(slow) as starting:
        assert starting.result() == "value"
    assert slow.log == ["entered", "exited"]

    class Failing(Slow):
        def __enter__(self):
            raise OSError("no")

    failing = Failing()
    with pytest.raises(OSError, match="no"):
        with Starting(failing) as starting:
            starting.result()
    assert failing.log == []


def collector_state() -> tuple[bool, int]:
    return gc.isenabled(), gc.get_freeze_count()


def test_local_workers_collect_garbage_and_start_with_the_renderer_frozen():
    """The fork server imports the renderer with the cyclic collector off (rtq.batch.warm):
    its workers must have it on again, with what was imported frozen."""
    pool = ProcessPool(1)
    try:
        enabled, frozen = pool.submit(collector_state).result(timeout=60)
    finally:
        pool.shutdown()
    assert enabled
    assert frozen > 10000


def test_the_batch_command_turns_the_collector_back_on(tmp_path, capsys):
    """`rtq batch` starts with the collector off (its imports and plan); it is on again
    once the workers run, and after the command, whatever happened."""
    make_corpus(tmp_path / "in", 1, seconds=0.1)
    assert main(["batch", "cd-16-shibata", "--inputs", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                 "--jobs", "1"]) == 0
    assert gc.isenabled()
    assert main(["batch", "no-such-preset", "--inputs", str(tmp_path / "in"), "--out", str(tmp_path / "out")]) == 2
    assert gc.isenabled()
    capsys.readouterr()
