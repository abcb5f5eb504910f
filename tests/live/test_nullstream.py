"""The null stream (rtq.live.nullstream): its compiled clock plays without the GIL, and
a process that leaves one running still ends cleanly."""
from __future__ import annotations

import ctypes
import os
import subprocess
import sys

import pytest

from rtq.live.nullstream import CLOCK_PRIORITY, NullStream, make_realtime

from .blocks import make_callback, passthrough


def test_the_null_stream_plays_while_this_thread_holds_the_gil():
    """The null stream's clock is native too: its blocks go on while this thread holds
    the GIL in one 0.5 s C call (a Python clock loop played 10 blocks of 281 while a
    thread spun in Python for 1.5 s)."""
    usleep = ctypes.PyDLL(None).usleep      # PyDLL: called with the GIL held
    usleep.argtypes = [ctypes.c_uint]
    with NullStream(make_callback(passthrough), blocksize=256) as stream:
        stream.start()
        stream.wait(0.2)
        before = stream.stats().callbacks
        usleep(500_000)
        during = stream.stats().callbacks - before
    assert during >= 25, during             # 94 are due; a GIL-bound clock plays at most 1


@pytest.mark.parametrize("ending", ["exit", "drop"])
def test_a_null_stream_left_running_ends_the_process_cleanly(ending):
    """The compiled clock never takes the GIL, so nothing stopped it at exit, and it ran
    on into freed arrays (SIGSEGV, 4 runs of 4); nor may dropping the session free the
    chain the clock still runs."""
    script = (
        "import gc, time\n"
        "from rtq.live.session import LiveSession\n"
        "session = LiveSession('tpdf-16', notice=lambda line: None)\n"
        "session.start()\n"
        "time.sleep(0.2)\n"
        + ("del session\ngc.collect()\ntime.sleep(0.2)\n" if ending == "drop" else "")
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "JACK_NO_START_SERVER": "1", "JACK_DEFAULT_SERVER": "rtq-none"})
    assert done.returncode == 0, done.stderr


def test_the_clock_thread_runs_under_real_time_scheduling_where_allowed():
    """Under the normal scheduler the clock woke late behind the screen's work and other
    processes (``rtq live tpdf-16`` with the screen: 12 underflows in 30 s); like an
    audio server's thread it asks for SCHED_FIFO, which root (this suite) is granted."""
    with NullStream(make_callback(passthrough), blocksize=256) as stream:
        stream.start()
        policy = os.sched_getscheduler(stream.clock_thread_id)
        priority = os.sched_getparam(stream.clock_thread_id).sched_priority
        scheduling = stream.scheduling
    if os.geteuid() == 0:
        assert (policy, priority) == (os.SCHED_FIFO, CLOCK_PRIORITY)
        assert scheduling == f"real-time (SCHED_FIFO {CLOCK_PRIORITY})"
    else:
        assert scheduling.startswith("real-time" if policy == os.SCHED_FIFO else "normal scheduling")


def test_a_refused_real_time_request_says_why():
    assert make_realtime(1000) == "normal scheduling (real-time refused: Invalid argument)"
