"""Where rtq writes: checked destinations, and files that appear complete or not at all,
never over one that exists unless forced.

Every file rtq writes (rendered audio, ``--report``, ``--plot``, ``--stats-json``, cache
entries) goes through a :class:`Destination`.  It is written as an anonymous file
(Linux ``O_TMPFILE``) in its destination's directory, so it has no name until
:meth:`Destination.publish` links it into place: nothing a dying process leaves behind
(SIGKILL included) can outlive it.  Publishing is ``linkat``, which fails if the name
exists at that moment, so a file that appeared during the work (another render's, the
user's) is left alone; with ``force`` the file is linked under a temporary name and
renamed over the destination.

Where the filesystem has no ``O_TMPFILE`` (some network and FUSE filesystems), the file is
written under a temporary name (:func:`temporary_name`, with the writer's PID), locked
with ``flock`` while its writer lives, and published by ``link`` (``renameat2`` with
``RENAME_NOREPLACE`` where the filesystem has no hard links) and unlink.  A temporary
whose writer was killed is removed by the next rtq that makes one in that directory:
only one whose PID is no running process and whose lock is free.

When the name is taken at the end, the result is kept beside it (:func:`kept_name`) and
:class:`DestinationTaken` says where; the caller's work is not lost and nothing is
replaced.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
from pathlib import Path

from ..errors import RtqError, UsageError

# The writer's PID and a random token; matched by remove_stale_temporaries.
_TEMPORARY = re.compile(r"\..*\.rtq-(\d+)-[0-9a-f]{8}\.tmp\Z", re.DOTALL)
# errno values of a filesystem that lacks O_TMPFILE (EISDIR: a kernel that predates it
# reads the flag as O_DIRECTORY), and of one that lacks hard links.
_NO_TMPFILE = {errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL}
_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK}
_RENAME_NOREPLACE = 1
_MOST_KEPT = 1000


class DestinationError(RtqError):
    """A destination that could not be written (exit status 1); nothing was changed."""


class DestinationTaken(DestinationError):
    """The destination's name was taken when the result was complete: the existing file
    was left alone; the result is at ``kept`` (None: discarded)."""

    def __init__(self, path: Path, kept: Path | None):
        where = f"the result is in {kept}" if kept else "the result was discarded"
        super().__init__(f"{path} appeared while rtq worked; it was left alone and {where} "
                         "(--force replaces it)")
        self.path, self.kept = path, kept


def reason(err: BaseException) -> str:
    """The text of an error for a one-line message: the system's words for an OSError
    (``No space left on device``), else the error's own first line."""
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def write_failure(path, cause) -> DestinationError:
    """The one rule for a file rtq could not write: ``cannot write PATH: REASON (no file
    was changed)``, exit status 1, whether it failed at opening, midway or at the end.
    ``cause`` is an exception or the reason's text."""
    text = cause if isinstance(cause, str) else reason(cause)
    return DestinationError(f"cannot write {path}: {text} (no file was changed)")


def same_file(a, b) -> bool:
    """True if the paths ``a`` and ``b`` name one file: the same inode when both exist,
    else the same real path."""
    a, b = Path(a), Path(b)
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return os.path.realpath(a) == os.path.realpath(b)


def check_destination(path, what: str = "--report", *, keep=(), force: bool = False) -> Path:
    """Fail early (before any work) if ``path`` cannot or must not be written.

    Its folder must exist, be a folder and be writable, and ``path`` must not be a
    folder.  ``keep`` holds ``(label, path)`` pairs of the command's other files, which
    ``path`` may never be, even with ``force``; any other existing file is replaced only
    with ``force``.  (:meth:`Destination.publish` checks again when the work is done.)
    """
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{what} {path} is a directory")
    if not path.parent.exists():
        raise UsageError(f"{what} {path}: no such directory {path.parent}")
    if not path.parent.is_dir():
        raise UsageError(f"{what} {path}: {path.parent}: not a directory")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise UsageError(f"{what} {path}: cannot write in {path.parent}")
    for label, other in keep:
        if other is not None and same_file(path, other):
            raise UsageError(f"{what} {path} is the {label} file; rtq never writes over it")
    if path.exists() and not force:
        raise UsageError(f"{what} {path} exists; use --force to replace it")
    return path


def temporary_name(name: str) -> str:
    """A fresh temporary name for a file to be called ``name``: hidden, with this
    process's PID (``.out.wav.rtq-4242-1f2e3d4c.tmp``)."""
    return f".{name}.rtq-{os.getpid()}-{os.urandom(4).hex()}.tmp"


def kept_name(name: str, n: int) -> str:
    """The ``n``-th name for a result whose destination ``name`` was taken:
    ``out.rtq-1.wav`` (the suffix stays, so the file still opens as what it is)."""
    path = Path(name)
    return f"{path.stem}.rtq-{n}{path.suffix}"


def _pid_is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # another user's process
        return True
    return True


def remove_stale_temporaries(directory) -> list[str]:
    """Remove the temporaries (:func:`temporary_name`) of writers that died in
    ``directory``; returns their names.

    A temporary is stale only if its PID is no running process and no process holds its
    lock (which its writer takes when it creates it, and the kernel drops when the
    writer dies, whatever kills it): a PID reused by another process, or one from
    another PID namespace, keeps it.  Best effort: what cannot be checked stays."""
    removed = []
    with contextlib.suppress(OSError):
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for name in os.listdir(dir_fd):
                found = _TEMPORARY.match(name)
                if found is None or int(found[1]) <= 0 or _pid_is_running(int(found[1])):
                    continue
                with contextlib.suppress(OSError):
                    if _remove_if_unlocked(dir_fd, name):
                        removed.append(name)
        finally:
            os.close(dir_fd)
    return removed


def _remove_if_unlocked(dir_fd: int, name: str) -> bool:
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False               # its writer lives (in another PID namespace)
        if os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_ino != os.fstat(fd).st_ino:
            return False               # replaced meanwhile
        os.unlink(name, dir_fd=dir_fd)
        return True
    finally:
        os.close(fd)


def _rename_noreplace(dir_fd: int, src: str, dst: str) -> None:
    """``renameat2(RENAME_NOREPLACE)``: FileExistsError if ``dst`` exists."""
    import ctypes   # only on filesystems without hard links

    libc = ctypes.CDLL(None, use_errno=True)
    rename = getattr(libc, "renameat2", None)
    if rename is None:
        raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS))
    if rename(dir_fd, os.fsencode(src), dir_fd, os.fsencode(dst), _RENAME_NOREPLACE) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), dst)


class Destination:
    """A file being written for ``path``, invisible until :meth:`publish`.

    Write through :attr:`fd` (a read-write descriptor at offset 0; libsndfile can take
    it), then call :meth:`publish`.  Leaving the ``with`` block without publishing
    discards the file; either way the descriptors are closed.  The file is created with
    mode 0666 less the umask, like any new file.

    Raises :class:`DestinationError` (one line, nothing changed) when the file cannot be
    made or published, :class:`DestinationTaken` when ``path`` exists at the end and
    ``force`` is false.
    """

    def __init__(self, path, *, force: bool = False):
        self.path = Path(path)
        self.force = force
        self.published = False
        self.fd = self._dir = -1
        self._temp: str | None = None      # the file's name while it has one (no O_TMPFILE)
        try:
            self._dir = os.open(self.path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            self._create()
        except OSError as err:
            self.close()
            raise write_failure(self.path, err) from None

    @property
    def anonymous(self) -> bool:
        """Whether the file is an ``O_TMPFILE`` (nothing to remove if the process dies)."""
        return self._temp is None

    def _create(self) -> None:
        if os.path.isdir("/proc/self/fd"):    # linkat needs the file's /proc link
            try:
                self.fd = os.open(".", os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o666, dir_fd=self._dir)
                return
            except OSError as err:
                if err.errno not in _NO_TMPFILE:
                    raise
        remove_stale_temporaries(self.path.parent)
        temp = temporary_name(self.path.name)
        self.fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666,
                          dir_fd=self._dir)
        self._temp = temp
        with contextlib.suppress(OSError):   # a filesystem without locks: the PID alone guards it
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def publish(self) -> Path:
        """Give the complete file its name; returns ``path``.

        Without ``force`` this fails if ``path`` exists now (however recently it
        appeared): the file is then kept under :func:`kept_name` and
        :class:`DestinationTaken` raised."""
        try:
            if self.force:
                self._replace(self.path.name)
            else:
                try:
                    self._link(self.path.name)
                except FileExistsError:
                    raise DestinationTaken(self.path, self._keep()) from None
        except OSError as err:
            raise write_failure(self.path, err) from None
        self.published = True
        return self.path

    def _link(self, name: str) -> None:
        """Give the file the new name ``name`` (FileExistsError if it is taken)."""
        if self._temp is None:
            os.link(f"/proc/self/fd/{self.fd}", name, dst_dir_fd=self._dir, follow_symlinks=True)
            return
        try:
            os.link(self._temp, name, src_dir_fd=self._dir, dst_dir_fd=self._dir, follow_symlinks=False)
        except OSError as err:
            if err.errno not in _NO_HARD_LINKS:
                raise
            _rename_noreplace(self._dir, self._temp, name)
        else:
            os.unlink(self._temp, dir_fd=self._dir)
        self._temp = None

    def _replace(self, name: str) -> None:
        if self._temp is None:           # an anonymous file gets a temporary name first
            remove_stale_temporaries(self.path.parent)
            temp = temporary_name(self.path.name)
            os.link(f"/proc/self/fd/{self.fd}", temp, dst_dir_fd=self._dir, follow_symlinks=True)
            self._temp = temp
        os.replace(self._temp, name, src_dir_fd=self._dir, dst_dir_fd=self._dir)
        self._temp = None

    def _keep(self) -> Path | None:
        """Link the file under the first free :func:`kept_name`; None if none could be had."""
        for n in range(1, _MOST_KEPT + 1):
            name = kept_name(self.path.name, n)
            try:
                self._link(name)
            except FileExistsError:
                continue
            except OSError:
                return None
            self.published = True
            return self.path.with_name(name)
        return None

    def close(self) -> None:
        """Discard the file unless published, and close the descriptors (idempotent)."""
        if self._temp is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._temp, dir_fd=self._dir)
            self._temp = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self._dir >= 0:
            os.close(self._dir)
            self._dir = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_atomic(path, data: bytes | str, *, force: bool = False) -> Path:
    """Write ``data`` (text is UTF-8) as the file ``path`` through a :class:`Destination`:
    it appears complete or not at all, and replaces an existing file only with
    ``force``.  Raises :class:`DestinationError` (one line) when it cannot."""
    view = memoryview(data.encode() if isinstance(data, str) else data)
    with Destination(path, force=force) as destination:
        try:
            while view:
                view = view[os.write(destination.fd, view):]
        except OSError as err:
            raise write_failure(path, err) from None
        return destination.publish()
