"""A FUSE filesystem that passes every call through to a directory, without O_TMPFILE
(as network and many FUSE filesystems are), optionally without hard links too.

    python passthrough_fs.py ROOT MOUNTPOINT [--no-links] [--log FILE]

Runs in the foreground until unmounted (``fusermount3 -u MOUNTPOINT``).  With ``--log``,
every write, sync, link, rename and unlink is appended to FILE as it is done, one line
each (``write PATH OFFSET SIZE``, ``fsync PATH``, ``link SOURCE TARGET``, ``rename OLD
NEW``, ``unlink PATH``; paths from the mount's root): the order in which a program's
data reached the filesystem (the kernel passes a write on before the call returns; the
filesystem keeps no cache of its own).  Built on
mfusepy (libfuse 3); the kernel answers O_TMPFILE with EOPNOTSUPP because the filesystem
has no ``tmpfile`` operation.  ``flock`` is the kernel's own (local) locking; renames
honour RENAME_NOREPLACE (as vfat and exfat do, which have no hard links either).
"""
from __future__ import annotations

import ctypes
import errno
import os
import sys
import threading

from mfusepy import FUSE, FuseOSError, Operations

_LIBC = ctypes.CDLL(None, use_errno=True)


class FlagsFUSE(FUSE):
    """mfusepy drops rename's flags (RENAME_NOREPLACE would replace): pass them on."""

    def rename_fuse_3(self, old: bytes, new: bytes, flags: int) -> int:
        return self.operations.rename(old.decode(self.encoding, self.errors),
                                      new.decode(self.encoding, self.errors), flags)


class Passthrough(Operations):
    use_ns = True

    def __init__(self, root: str, links: bool, log: str | None = None):
        self.root = os.path.realpath(root)
        self.links = links
        self._log = None if log is None else open(log, "a", buffering=1)
        self._log_lock = threading.Lock()

    def _logged(self, *event) -> None:
        if self._log is not None:
            with self._log_lock:
                self._log.write(" ".join(map(str, event)) + "\n")

    def _full(self, path: str) -> str:
        return os.path.join(self.root, path.lstrip("/"))

    def _call(self, fn, *args):
        try:
            return fn(*args)
        except OSError as err:
            raise FuseOSError(err.errno) from None

    def getattr(self, path, fh=None):
        st = self._call(os.lstat, self._full(path))
        return {**{key: getattr(st, key) for key in ("st_mode", "st_nlink", "st_size", "st_uid", "st_gid", "st_ino")},
                **{key: getattr(st, key + "_ns") for key in ("st_atime", "st_mtime", "st_ctime")}}

    def readdir(self, path, fh):
        names = [".", "..", *self._call(os.listdir, self._full(path))]
        return [(name, self.getattr(os.path.join(path, name)), 0) for name in names]

    def access(self, path, amode):
        if not os.access(self._full(path), amode):
            raise FuseOSError(errno.EACCES)
        return 0

    def statfs(self, path):
        st = self._call(os.statvfs, self._full(path))
        return {key: getattr(st, key) for key in ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail",
                                                  "f_ffree", "f_files", "f_flag", "f_frsize", "f_namemax")}

    def open(self, path, flags):
        return self._call(os.open, self._full(path), flags & ~os.O_CREAT)

    def create(self, path, mode, fi=None):
        return self._call(os.open, self._full(path), os.O_RDWR | os.O_CREAT | os.O_EXCL, mode)

    def read(self, path, size, offset, fh):
        return self._call(os.pread, fh, size, offset)

    def write(self, path, data, offset, fh):
        written = self._call(os.pwrite, fh, data, offset)
        self._logged("write", path, offset, written)
        return written

    def truncate(self, path, length, fh=None):
        self._call(os.truncate, fh if fh is not None else self._full(path), length)
        return 0

    def flush(self, path, fh):
        return 0

    def fsync(self, path, datasync, fh):
        self._call(os.fsync, fh)
        self._logged("fsync", path)
        return 0

    def release(self, path, fh):
        self._call(os.close, fh)
        return 0

    def unlink(self, path):
        self._call(os.unlink, self._full(path))
        self._logged("unlink", path)
        return 0

    def rename(self, old, new, flags=0):
        if not flags:
            self._call(os.rename, self._full(old), self._full(new))
        elif _LIBC.renameat2(-100, os.fsencode(self._full(old)), -100, os.fsencode(self._full(new)), flags):
            raise FuseOSError(ctypes.get_errno())    # (-100: AT_FDCWD)
        self._logged("rename", old, new)
        return 0

    def link(self, target, source):
        if not self.links:
            raise FuseOSError(errno.EPERM)
        self._call(os.link, self._full(source), self._full(target))
        self._logged("link", source, target)
        return 0

    def chmod(self, path, mode):
        self._call(os.chmod, self._full(path), mode)
        return 0

    def utimens(self, path, times=None):
        self._call(os.utime, self._full(path), ns=times) if times else self._call(os.utime, self._full(path))
        return 0

    def mkdir(self, path, mode):
        self._call(os.mkdir, self._full(path), mode)
        return 0

    def rmdir(self, path):
        self._call(os.rmdir, self._full(path))
        return 0


if __name__ == "__main__":
    root, mountpoint, *options = sys.argv[1:]
    log = options[options.index("--log") + 1] if "--log" in options else None
    FlagsFUSE(Passthrough(root, links="--no-links" not in options, log=log), mountpoint, foreground=True,
              allow_other=True, use_ino=True)
