"""Real filesystems for the file-handling tests: what a process holds open, and small
tmpfs mounts that fill up (root only)."""
from __future__ import annotations

import contextlib
import os
import subprocess
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
