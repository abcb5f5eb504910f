"""``rtq.files.destination``: files that appear complete or not at all, never over one
that exists without ``force`` (even one that appears during the work), and temporaries
of dead writers removed safely.  Real files and real processes."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from filesystems import anonymous_files, fill, small_tmpfs, without_tmpfile

from rtq.files.destination import (Destination, DestinationError, DestinationTaken, remove_stale_temporaries,
                                   temporary_name, write_atomic)


REPO = Path(__file__).resolve().parents[2]


def listing(directory: Path) -> set[str]:
    return set(os.listdir(directory))


def test_a_destination_has_no_name_until_published(tmp_path):
    with Destination(tmp_path / "out.bin") as destination:
        assert destination.anonymous
        os.write(destination.fd, b"complete")
        assert listing(tmp_path) == set() and len(anonymous_files("self", tmp_path)) == 1
        destination.publish()
        assert (tmp_path / "out.bin").read_bytes() == b"complete"
    assert listing(tmp_path) == {"out.bin"} and anonymous_files("self", tmp_path) == []
    assert (tmp_path / "out.bin").stat().st_mode & 0o777 == 0o666 & ~current_umask()


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_file_that_appears_meanwhile_is_left_alone_and_the_result_kept_beside_it(tmp_path):
    (tmp_path / "out.rtq-1.wav").write_bytes(b"an earlier kept result")
    with Destination(tmp_path / "out.wav") as destination:
        os.write(destination.fd, b"the render")
        (tmp_path / "out.wav").write_bytes(b"PRECIOUS")         # appears during the work
        with pytest.raises(DestinationTaken) as taken:
            destination.publish()
    assert taken.value.exit_status == 1
    assert str(taken.value) == (f"{tmp_path / 'out.wav'} appeared while rtq worked; it was left alone and the "
                                f"result is in {tmp_path / 'out.rtq-2.wav'} (--force replaces it)")
    assert (tmp_path / "out.wav").read_bytes() == b"PRECIOUS"
    assert (tmp_path / "out.rtq-1.wav").read_bytes() == b"an earlier kept result"
    assert (tmp_path / "out.rtq-2.wav").read_bytes() == b"the render"
    assert listing(tmp_path) == {"out.wav", "out.rtq-1.wav", "out.rtq-2.wav"}


def test_force_replaces_even_a_file_that_appeared_meanwhile(tmp_path):
    (tmp_path / "out.wav").write_bytes(b"old")
    with Destination(tmp_path / "out.wav", force=True) as destination:
        os.write(destination.fd, b"new")
        (tmp_path / "out.wav").unlink()
        (tmp_path / "out.wav").write_bytes(b"appeared")
        destination.publish()
    assert (tmp_path / "out.wav").read_bytes() == b"new"
    assert listing(tmp_path) == {"out.wav"}


def test_leaving_without_publishing_leaves_nothing(tmp_path):
    (tmp_path / "out.wav").write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        with Destination(tmp_path / "out.wav", force=True) as destination:
            os.write(destination.fd, b"half")
            raise KeyboardInterrupt
    assert listing(tmp_path) == {"out.wav"} and (tmp_path / "out.wav").read_bytes() == b"old"
    assert anonymous_files("self", tmp_path) == []


@pytest.mark.parametrize("force", [False, True])
def test_write_atomic(tmp_path, force):
    path = tmp_path / "r.json"
    write_atomic(path, "{}\n", force=force)
    assert path.read_text() == "{}\n"
    if force:
        write_atomic(path, b"[]\n", force=True)
        assert path.read_text() == "[]\n"
    else:
        with pytest.raises(DestinationTaken):
            write_atomic(path, "[]\n")
        assert path.read_text() == "{}\n" and (tmp_path / "r.rtq-1.json").read_text() == "[]\n"


@pytest.mark.parametrize("case", ["missing-directory", "read-only-filesystem"])
def test_what_cannot_be_written_is_one_line_with_status_1(tmp_path, case):
    path = {"missing-directory": tmp_path / "nodir" / "r.json", "read-only-filesystem": Path("/proc/r.json")}[case]
    with pytest.raises(DestinationError) as caught:
        write_atomic(path, "{}")
    assert caught.value.exit_status == 1 and "\n" not in str(caught.value)
    assert str(caught.value).startswith(f"cannot write {path}: ") and str(caught.value).endswith(
        "(no file was changed)")


# --- temporaries of writers that died (filesystems without O_TMPFILE) --------------------

HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
print("locked", flush=True)
time.sleep(60)
"""


def dead_pid() -> int:
    """The PID of a process that has exited (and been reaped)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_only_temporaries_of_dead_unlocked_writers_are_removed(tmp_path):
    """A writer killed with SIGKILL leaves its named temporary; the next writer removes
    it.  Kept: this process's own, a live process's, one whose PID is gone but whose
    lock is held (a writer in another PID namespace), and files that are no temporary."""
    name = temporary_name("out.wav")
    assert name.startswith(".out.wav.rtq-") and name.endswith(".tmp")
    killed_name = f".out.wav.rtq-{dead_pid()}-0a1b2c3d.tmp"   # its writer died before locking
    holder_name = f".out.wav.rtq-{dead_pid()}-4e5f6a7b.tmp"   # PID gone, lock held
    (tmp_path / killed_name).write_bytes(b"partial")
    (tmp_path / name).write_bytes(b"ours")
    (tmp_path / "out.wav").write_bytes(b"the user's")
    (tmp_path / ".out.wav.rtq-1-zzzzzzzz.tmp").write_bytes(b"no temporary of rtq's")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / holder_name)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        # a writer that is killed while it holds its lock: the kernel drops the lock
        victim = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "victim.tmp")],
                                  stdout=subprocess.PIPE, text=True)
        assert victim.stdout.readline() == "locked\n"
        victim_name = f".out.wav.rtq-{victim.pid}-8c9d0e1f.tmp"
        os.rename(tmp_path / "victim.tmp", tmp_path / victim_name)
        assert remove_stale_temporaries(tmp_path) == [killed_name]         # the victim lives
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        assert remove_stale_temporaries(tmp_path) == [victim_name]
        assert listing(tmp_path) == {name, holder_name, "out.wav", ".out.wav.rtq-1-zzzzzzzz.tmp"}
    finally:
        holder.kill()
        holder.wait()
    # once its holder is gone too, that one goes
    assert remove_stale_temporaries(tmp_path) == [holder_name]


def test_a_forced_publication_removes_stale_temporaries(tmp_path):
    stale = tmp_path / f".out.wav.rtq-{dead_pid()}-00112233.tmp"
    stale.write_bytes(b"left by a killed writer")
    write_atomic(tmp_path / "out.wav", b"new", force=True)
    assert listing(tmp_path) == {"out.wav"}


def test_sigkill_while_writing_leaves_nothing(tmp_path):
    script = ("import os, sys, time\nfrom rtq.files.destination import Destination\n"
              "d = Destination(sys.argv[1])\nos.write(d.fd, b'x' * 1000000)\nprint('writing', flush=True)\n"
              "time.sleep(60)\n")
    child = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "out.wav")], stdout=subprocess.PIPE,
                             text=True)
    assert child.stdout.readline() == "writing\n"
    assert len(anonymous_files(child.pid, tmp_path)) == 1 and listing(tmp_path) == set()
    child.send_signal(signal.SIGKILL)
    child.wait()
    time.sleep(0.05)
    assert listing(tmp_path) == set()


# --- filesystems without O_TMPFILE (a FUSE filesystem), with and without hard links --------

def temporaries(directory: Path) -> list[str]:
    return [name for name in os.listdir(directory) if re.fullmatch(r"\..*\.rtq-\d+-[0-9a-f]{8}\.tmp", name)]


@pytest.mark.parametrize("links", [True, False], ids=["hard-links", "no-hard-links"])
def test_without_o_tmpfile_a_named_temporary_is_published_without_clobbering(tmp_path, links):
    with without_tmpfile(tmp_path, links) as directory:
        with Destination(directory / "out.wav") as destination:
            assert not destination.anonymous
            os.write(destination.fd, b"first")
            assert len(temporaries(directory)) == 1 and listing(directory) == set(temporaries(directory))
            assert temporaries(directory)[0].startswith(f".out.wav.rtq-{os.getpid()}-")
            destination.publish()
        assert listing(directory) == {"out.wav"} and (directory / "out.wav").read_bytes() == b"first"
        with Destination(directory / "out.wav") as destination:
            os.write(destination.fd, b"second")
            with pytest.raises(DestinationTaken) as taken:
                destination.publish()
        assert taken.value.kept == directory / "out.rtq-1.wav"
        assert (directory / "out.wav").read_bytes() == b"first"
        assert (directory / "out.rtq-1.wav").read_bytes() == b"second"
        write_atomic(directory / "out.wav", b"third", force=True)
        assert (directory / "out.wav").read_bytes() == b"third"
        assert listing(directory) == {"out.wav", "out.rtq-1.wav"}


def test_without_o_tmpfile_a_killed_renders_temporary_is_removed_by_the_next(tmp_path):
    from signals import make_signal, write_input

    with without_tmpfile(tmp_path) as directory:
        write_input(directory / "in.wav", make_signal(48000 * 60, 2, seed=3, rate=48000), 48000)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        argv = [sys.executable, "-m", "rtq", "render", "dsd64-1bit", "in.wav", "out.wav"]
        child = subprocess.Popen(argv, cwd=directory, env=env, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not temporaries(directory):
            assert child.poll() is None and time.monotonic() < deadline, child.communicate()
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        child.wait()
        left = temporaries(directory)
        assert left and left[0].startswith(f".out.wav.rtq-{child.pid}-")
        done = subprocess.run([*argv[:4], "tpdf-16", "in.wav", "out.wav"], cwd=directory, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert listing(directory) == {"in.wav", "out.wav"}


# --- rtq live --stats-json: the same rules --------------------------------------------------

def live(*args, cwd: Path, **popen) -> subprocess.Popen:
    """``rtq live`` on the silent built-in output (a JACK server that does not run)."""
    env = {**os.environ, "JACK_NO_START_SERVER": "1", "JACK_DEFAULT_SERVER": f"rtq-no-server-{os.getpid()}",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen([sys.executable, "-m", "rtq", "live", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def test_live_stats_on_a_full_disk_is_the_one_rule(tmp_path):
    with small_tmpfs(tmp_path / "disk", "64k") as disk:
        fill(disk)
        child = live("--duration", 0.5, "--stats-json", "disk/s.json", cwd=tmp_path)
        out, err = child.communicate(timeout=120)
        assert child.returncode == 1, err
        assert err.splitlines()[-1] == "rtq: cannot write disk/s.json: No space left on device (no file was changed)"
        assert not (disk / "s.json").exists()


def test_live_stats_that_appear_during_the_session_are_left_alone(tmp_path):
    child = live("--duration", 3, "--json", "--stats-json", "s.json", cwd=tmp_path)
    assert child.stdout.readline().startswith("{")         # playing: the check is behind it
    (tmp_path / "s.json").write_text("the user's\n")
    out, err = child.communicate(timeout=120)
    assert child.returncode == 1, err
    assert err.splitlines()[-1] == ("rtq: s.json appeared while rtq worked; it was left alone and the result is in "
                                    "s.rtq-1.json (--force replaces it)")
    assert (tmp_path / "s.json").read_text() == "the user's\n"
    assert json.loads((tmp_path / "s.rtq-1.json").read_text())["preset"]
    assert listing(tmp_path) == {"s.json", "s.rtq-1.json"}
