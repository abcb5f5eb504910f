"""Running batches in real processes: local worker processes and a real Dask
LocalCluster give the same bytes and manifests; a job is ``rtq render`` with its seed;
SIGKILL of the whole batch at several moments, then the same command again, gives the
uninterrupted batch; a worker that dies fails only its own job, retried once, alone."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import rtq.batch
from rtq.batch.scheduler import WORKER_DIED
from rtq.cli import main

from .helpers import (audio_files, environment, final_records, make_corpus, manifest_lines, processes_holding,
                      rtq_command, run_rtq, start_rtq)

PRESETS = ("cd-16-shibata", "dsd64-1bit")
NAME = "{relpath}.{preset}{ext}"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("corpus") / "in"
    make_corpus(folder, 8, seconds=1.0)
    return folder


@pytest.fixture(scope="module")
def reference(corpus, tmp_path_factory) -> Path:
    """The batch run once, uninterrupted, on two local worker processes."""
    out = tmp_path_factory.mktemp("reference") / "out"
    result = run_rtq("batch", *PRESETS, "--inputs", corpus, "--out", out, "--name", NAME, "--jobs", "2")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("rtq batch: 16 jobs: 16 done, 0 skipped, 0 failed; 16.0 s of audio rendered in ")
    assert len(result.stderr.splitlines()) == 1
    return out


def batch_argv(corpus, out, *extra):
    return ("batch", *PRESETS, "--inputs", corpus, "--out", out, "--name", NAME, *extra)


@contextlib.contextmanager
def dask_default_port_taken():
    """Port 8787 (Dask's dashboard) held on the loopback, as another cluster on this
    machine would (if it is not taken already)."""
    with socket.socket() as held:
        with contextlib.suppress(OSError):
            held.bind(("127.0.0.1", 8787))
            held.listen(1)
        yield


@pytest.mark.parametrize("where", [("--jobs", "1"), ("--local-cluster", "2")])
def test_same_bytes_and_manifest_whatever_runs_the_jobs(corpus, reference, tmp_path, where):
    out = tmp_path / "out"
    with dask_default_port_taken():      # Dask would warn that it uses another port
        result = run_rtq(*batch_argv(corpus, out, *where))
    assert result.returncode == 0, result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr      # no Dask chatter
    assert audio_files(out) == audio_files(reference)
    assert final_records(out / "rtq-batch.jsonl", out) == final_records(reference / "rtq-batch.jsonl", reference)
    lines = manifest_lines(out / "rtq-batch.jsonl")
    assert len(lines) == 16 and {r["status"] for r in lines} == {"done"} and {r["attempt"] for r in lines} == {1}
    workers = {r["worker"] for r in lines}
    assert len(workers) == (1 if where[1] == "1" else 2), workers


@pytest.fixture
def dask_cluster(tmp_path):
    """A running Dask cluster as the README starts one: ``dask scheduler`` (retrying no
    task itself) and two ``dask worker ADDRESS --nthreads 1 --preload rtq.batch.warm``
    processes; yields the scheduler's address."""
    env = {**environment(), "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"}
    started = []

    def start(*argv):
        process = subprocess.Popen([sys.executable, "-m", "distributed.cli." + argv[0], *argv[1:]], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        started.append(process)

    info = tmp_path / "scheduler.json"
    try:
        start("dask_scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", info)
        deadline = time.monotonic() + 60
        while not info.exists() or not info.read_text().strip():
            assert time.monotonic() < deadline and started[0].poll() is None, "dask scheduler did not start"
            time.sleep(0.1)
        address = json.loads(info.read_text())["address"]
        for _ in range(2):
            start("dask_worker", address, "--nthreads", "1", "--no-dashboard", "--preload", "rtq.batch.warm")
        yield address
    finally:
        for process in reversed(started):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in started:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def test_a_running_dask_scheduler_gives_the_same_bytes_and_manifest(corpus, reference, tmp_path, dask_cluster):
    """``--scheduler ADDRESS``: the workers of a cluster started apart from rtq (the
    README's ``dask scheduler`` / ``dask worker``) render the same bytes and records."""
    import distributed

    with distributed.Client(dask_cluster, timeout="30s") as client:
        client.wait_for_workers(2, timeout=60)
    out = tmp_path / "out"
    result = run_rtq(*batch_argv(corpus, out, "--scheduler", dask_cluster))
    assert result.returncode == 0, result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert audio_files(out) == audio_files(reference)
    assert final_records(out / "rtq-batch.jsonl", out) == final_records(reference / "rtq-batch.jsonl", reference)
    lines = manifest_lines(out / "rtq-batch.jsonl")
    assert len(lines) == 16 and {r["status"] for r in lines} == {"done"}
    assert len({r["worker"] for r in lines}) == 2


def test_an_unreachable_scheduler_is_one_line(corpus, tmp_path):
    with socket.socket() as free:       # a port nothing listens on
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    result = run_rtq(*batch_argv(corpus, tmp_path / "out", "--scheduler", f"tcp://127.0.0.1:{port}",
                                 "--connect-timeout", "1"))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"rtq: --scheduler tcp://127.0.0.1:{port}: cannot connect ("), result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@contextlib.contextmanager
def silent_server():
    """A port that accepts connections and never answers (some other server, a stuck
    scheduler); yields its address."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held = []

    def accept():
        with contextlib.suppress(OSError):
            while True:
                held.append(server.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield "tcp://127.0.0.1:%d" % server.getsockname()[1]
    finally:
        server.close()
        for connection in held:
            connection.close()


def test_a_scheduler_that_never_answers_fails_in_one_line_within_the_timeout(corpus, tmp_path):
    """Dask's Client(timeout=...) bounds the TCP connection, not its handshake: a port
    that accepts and never answers kept the batch waiting for ever."""
    pytest.importorskip("distributed")
    with silent_server() as address:
        try:
            result = run_rtq(*batch_argv(corpus, tmp_path / "out", "--scheduler", address, "--connect-timeout", "1"),
                             timeout=30)
        except subprocess.TimeoutExpired:
            raise AssertionError("the batch waited for the silent scheduler past its timeout") from None
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"rtq: --scheduler {address}: cannot connect (no Dask scheduler answered within 1 s)\n"
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_job_is_rtq_render_with_the_recorded_seed(reference, tmp_path, capsys):
    records = manifest_lines(reference / "rtq-batch.jsonl")
    for record in records[::5]:
        out = tmp_path / Path(record["output"]).name
        assert main(["render", record["preset"], record["input"], str(out), "--seed", str(record["seed"])]) == 0
        assert out.read_bytes() == Path(record["output"]).read_bytes()
        assert record["output_sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
        assert record["input_sha256"] == hashlib.sha256(Path(record["input"]).read_bytes()).hexdigest()
    capsys.readouterr()


def test_python_api_with_any_executor(corpus, reference, tmp_path):
    jobs = rtq.batch.plan(PRESETS, [corpus], tmp_path / "out", name=NAME)
    with ThreadPoolExecutor(2) as executor:
        records = list(rtq.batch.run(jobs, executor, workers=2))
    assert sorted(r["output"] for r in records) == sorted(j.output for j in jobs)
    assert audio_files(tmp_path / "out") == audio_files(reference)
    assert list(rtq.batch.run(jobs, executor=None, workers=1)) and \
        {r["status"] for r in rtq.batch.run(jobs, workers=1)} == {"skipped"}


def wait_for_records(manifest: Path, count: int, process, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if manifest.exists() and manifest.read_bytes().count(b"\n") >= count:
            return
        time.sleep(0.002)
    assert process.poll() is None, "the batch ended before it could be killed"


def test_sigkill_at_several_moments_then_resume(corpus, reference, tmp_path):
    out = tmp_path / "out"
    manifest = out / "rtq-batch.jsonl"
    expected = audio_files(reference)
    # during start-up, early, in the middle, near the end: each time the whole process group
    for records in (None, 1, 7, 13):
        batch = start_rtq(*batch_argv(corpus, out, "--jobs", "2"))
        if records is None:
            time.sleep(0.5)
        else:
            wait_for_records(manifest, records, batch)
        os.killpg(batch.pid, signal.SIGKILL)
        batch.wait()
        batch.stdout.close(), batch.stderr.close()
        # nothing partial or left over: every file there is complete
        for name, data in audio_files(out).items():
            assert expected.get(name) == data, name
    result = run_rtq(*batch_argv(corpus, out, "--jobs", "2"))
    assert result.returncode == 0, result.stderr
    assert audio_files(out) == expected
    assert final_records(manifest, out) == final_records(reference / "rtq-batch.jsonl", reference)
    lines = manifest_lines(manifest)
    assert len(lines) == len({r["output"] for r in lines}) == 16     # one record per job, none lost or doubled
    again = run_rtq(*batch_argv(corpus, out, "--jobs", "2"))
    assert again.returncode == 0 and " 0 done, 16 skipped, 0 failed" in again.stderr
    assert manifest_lines(manifest) == lines


def kill_reader(path: Path, process, timeout: float = 60) -> int:
    """Wait for a process other than this one to open ``path``; SIGKILL it and wait
    until it is gone (a dying process still holds its files for a while)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        holders = [pid for pid in processes_holding(path) if pid != os.getpid()]
        if holders:
            os.kill(holders[0], signal.SIGKILL)
            while holders[0] in processes_holding(path):
                assert time.monotonic() < deadline
                time.sleep(0.001)
            return holders[0]
        time.sleep(0.001)
    raise AssertionError(f"no process opened {path}")


def finish(process, timeout: float = 120) -> str:
    """The batch's standard error once it ends; the whole process group is killed if it
    has not ended in time (the test then fails)."""
    try:
        return process.communicate(timeout=timeout)[1]
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise


def test_ctrl_c_while_planning_does_not_wait_for_a_silent_scheduler(tmp_path):
    """--scheduler at an address that accepts the connection and never answers (the
    handshake waits): Ctrl-C during the planning (paths still coming on standard
    input) ends the batch at once, not after Dask's connect timeout."""
    pytest.importorskip("distributed")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        batch = subprocess.Popen(rtq_command("batch", "cd-16-shibata", "--inputs", "-", "--out", tmp_path / "out",
                                             "--scheduler", "tcp://127.0.0.1:%d" % silent.getsockname()[1]),
                                 env=environment(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, start_new_session=True,
                                 preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        silent.settimeout(60)
        connection, _ = silent.accept()          # the batch is connecting, and planning
        with connection:
            time.sleep(0.5)
            interrupted = time.monotonic()
            batch.send_signal(signal.SIGINT)
            try:
                stderr = batch.communicate(timeout=5)[1]
            except subprocess.TimeoutExpired:
                os.killpg(batch.pid, signal.SIGKILL)
                batch.communicate()
                raise AssertionError("Ctrl-C waited for the scheduler") from None
    assert batch.returncode == 130, stderr
    assert time.monotonic() - interrupted < 5


def test_a_killed_worker_fails_nothing(corpus, reference, tmp_path):
    out = tmp_path / "out"
    batch = start_rtq(*batch_argv(corpus, out, "--jobs", "2"))
    victim = sorted(corpus.rglob("*.wav"))[4]
    kill_reader(victim, batch)
    stderr = finish(batch)
    assert batch.returncode == 0, stderr
    assert audio_files(out) == audio_files(reference)
    lines = manifest_lines(out / "rtq-batch.jsonl")
    retried = [r for r in lines if r["attempt"] == 2]
    assert str(victim) in {r["input"] for r in retried}
    assert {r["status"] for r in lines} == {"done"} and len(lines) == 16


def open_when_read(fifo: Path, process, timeout: float = 60) -> int:
    """Open ``fifo`` for writing once a worker opens it for reading (its open then
    returns, and its read waits for data); the writer's descriptor."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            assert time.monotonic() < deadline and process.poll() is None, "no worker opened the input"
            time.sleep(0.005)


@pytest.mark.parametrize("where", [("--jobs", "2"), ("--local-cluster", "2")])
def test_workers_end_with_a_batch_killed_alone(tmp_path, where):
    """SIGKILL of the batch's PID alone (as the OOM killer does), while a worker is busy:
    its workers and the server they fork from are gone within seconds, not left idle
    for ever holding their memory."""
    fifo = tmp_path / "stuck.wav"      # a worker reading it waits there
    os.mkfifo(fifo)
    batch = start_rtq("batch", "cd-16-shibata", "--inputs", fifo, "--out", tmp_path / "out", *where)
    writer = open_when_read(fifo, batch)      # a worker has the fifo open, reading it
    os.kill(batch.pid, signal.SIGKILL)
    batch.wait()
    batch.stdout.close(), batch.stderr.close()        # a worker left over would hold them open
    os.close(writer)
    deadline = time.monotonic() + 15
    while True:
        try:
            os.killpg(batch.pid, 0)        # anything left of the batch's process group?
        except ProcessLookupError:
            break
        if time.monotonic() > deadline:
            os.killpg(batch.pid, signal.SIGKILL)
            raise AssertionError("the batch's workers outlived it")
        time.sleep(0.05)


@pytest.mark.parametrize("where", [("--jobs", "2"), ("--local-cluster", "2")])
def test_a_job_whose_worker_dies_twice_fails_alone(tmp_path, where):
    """The stuck job travels in a task with others (21 jobs: after the first four tasks
    of one job, tasks of two or three): its task's other jobs (and a local pool's other
    tasks in flight) are run again and finish; the stuck one fails alone."""
    fifo = tmp_path / "stuck.wav"      # a worker reading it waits until it is killed
    os.mkfifo(fifo)
    good = make_corpus(tmp_path / "in", 20, seconds=0.1, nested=False)
    inputs = [*good[:10], fifo, *good[10:]]
    out = tmp_path / "out"
    batch = start_rtq("batch", "cd-16-shibata", "--inputs", *inputs, "--out", out, *where)
    for _ in range(2):
        writer = open_when_read(fifo, batch)
        kill_reader(fifo, batch)
        os.close(writer)
    stderr = finish(batch)
    assert batch.returncode == 1, stderr
    records = {Path(r["input"]).name: r for r in manifest_lines(out / "rtq-batch.jsonl")}
    assert records["stuck.wav"]["status"] == "failed" and records["stuck.wav"]["error"] == WORKER_DIED
    assert records["stuck.wav"]["attempt"] == 2
    assert all(records[p.name]["status"] == "done" for p in good)
    assert any(records[p.name]["attempt"] == 2 for p in good)     # it shared a task
    assert stderr.splitlines()[1:] == [f"rtq: failed: {fifo} (cd-16-shibata): {WORKER_DIED}"]   # and nothing else


def test_ctrl_c_stops_the_workers_and_the_same_command_resumes(corpus, reference, tmp_path):
    out = tmp_path / "out"
    batch = start_rtq(*batch_argv(corpus, out, "--jobs", "2"))
    wait_for_records(out / "rtq-batch.jsonl", 3, batch)
    os.killpg(batch.pid, signal.SIGINT)           # what a terminal's Ctrl-C does
    stderr = finish(batch, 60)
    assert batch.returncode == 130
    assert stderr.startswith("rtq batch: 16 jobs: ") and stderr.endswith("; interrupted: the same command resumes it\n")
    deadline = time.monotonic() + 10               # no worker outlives it (the fork server
    while time.monotonic() < deadline:             # and resource tracker see their parent go)
        try:
            os.killpg(batch.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("processes of the batch outlived it")
    result = run_rtq(*batch_argv(corpus, out, "--jobs", "2"))
    assert result.returncode == 0 and audio_files(out) == audio_files(reference)
