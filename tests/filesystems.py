"""Real filesystems for the file-handling tests: what a process holds open, small tmpfs
mounts that fill up, and a FUSE filesystem without O_TMPFILE (root only)."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest


def anonymous_files(pid, directory: Path) -> list[str]:
    """The files process ``pid`` ("self" or a number) holds open in ``directory`` that
    have no name: Linux shows an ``O_TMPFILE`` as ``/dir/#12345 (deleted)``."""
    prefix = f"{os.path.realpath(directory)}/#"
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith(prefix) and target.endswith(" (deleted)"):
                found.append(target)
    return found


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str):
    """A tmpfs of ``size`` (``"256k"``) mounted at ``path`` (created), unmounted after."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root (CI runs as root)")
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0777", "rtq-test", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def fill(directory: Path) -> None:
    """Fill the filesystem of ``directory`` to the last byte."""
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for size in (1 << 16, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    assert os.statvfs(directory).f_bavail == 0


@contextlib.contextmanager
def without_tmpfile(base: Path, links: bool = True, log: Path | None = None):
    """A directory on a real filesystem that has no O_TMPFILE (and, unless ``links``, no
    hard links): :mod:`passthrough_fs` over ``base/fuse-root``, mounted at ``base/fuse``;
    with ``log``, it logs there what reached it, in order (``--log``)."""
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        pytest.skip("mounting a FUSE filesystem needs root and /dev/fuse (CI has both)")
    root, mountpoint = base / "fuse-root", base / "fuse"
    root.mkdir()
    mountpoint.mkdir()
    server = subprocess.Popen([sys.executable, str(Path(__file__).with_name("passthrough_fs.py")), str(root),
                               str(mountpoint), *([] if links else ["--no-links"]),
                               *([] if log is None else ["--log", str(log)])],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not os.path.ismount(mountpoint):
            assert server.poll() is None, server.communicate()
            assert time.monotonic() < deadline, "the FUSE filesystem did not mount"
            time.sleep(0.05)
        yield mountpoint
    finally:
        subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], check=False)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
