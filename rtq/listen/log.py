"""The log of a listening test: JSON Lines, hash-chained, written record by record.

Each line is one record, a JSON object in canonical form (keys sorted, no spaces, ASCII
only), carrying ``prev``, the ``hash`` of the record before it (64 zeros for the first),
and its own ``hash``: the SHA-256 of the line as it would read without ``hash``.  So
changing, adding or removing any byte of a log breaks a record's own hash, or its
canonical form, or the next record's ``prev`` (see :mod:`rtq.listen.verification`).  Records
are written with one ``write`` each and ``fsync``-ed before the test goes on: a crash
or Ctrl-C loses no completed trial, and leaves at most one unfinished last line, which
``--resume`` removes.

What is kept from the listener is committed to at the start: the header holds
``commitment`` = SHA-256 of ``nonce`` followed by the canonical JSON of the secret
assignments (:func:`commitment`); the final record reveals both.  Between the two the
secret lives in a private file of the user's state folder (:func:`store_secret`:
``$XDG_STATE_HOME/rtq/listen/COMMITMENT.json``, mode 0600), so that ``--resume`` can
continue with the same assignments; it is deleted once the final record is written.
It is not in the log, which the listener may see during the test.  (A listener who
can read the tester's files can read the secret: blinding against the person at the
keyboard needs the test run under another account.)

Nothing in a hash chain is secret, so anyone can rewrite a whole log and recompute
every hash; what the chain proves is that the log was not edited after someone noted
its commitment or a record's hash (``rtq listen`` prints the commitment at the start).
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import stat
from pathlib import Path

from rtq.errors import RtqError

FORMAT = "rtq-listen-log/1"
GENESIS = "0" * 64
MAX_LOG_BYTES = 64 * 1024 * 1024
"""The largest log read (a 500-trial ABX test writes 160 kB)."""


class LogError(RtqError):
    """A log that cannot be used (or, from verify, one that does not hold): one line,
    ``LOG:LINE: message`` where a line is at fault."""

    exit_status = 1


def canonical(value) -> str:
    """``value`` as canonical JSON: sorted keys, no spaces, ASCII only, no NaN."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def seal(record: dict, prev: str) -> tuple[str, str]:
    """The line of ``record`` after ``prev`` and its hash: ``(line, hash)``."""
    body = {**record, "prev": prev}
    body.pop("hash", None)
    digest = sha256_text(canonical(body))
    return canonical({**body, "hash": digest}), digest


def commitment(nonce: str, assignments) -> str:
    """The SHA-256 (hex) of ``nonce`` followed by the canonical JSON of ``assignments``."""
    return sha256_text(nonce + canonical(assignments))


def new_nonce() -> str:
    """256 bits from the operating system's secret randomness, as hex."""
    return secrets.token_hex(32)


# ----------------------------------------------------------------------------- writing


def _fsync_folder(path: Path) -> None:
    fd = os.open(path.parent if str(path.parent) else ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LogWriter:
    """Appends sealed records to a log, one ``write`` and one ``fsync`` each.

    Use :meth:`create` for a new log and :meth:`reopen` to continue one.
    """

    def __init__(self, path: Path, fd: int, last_hash: str, records: int):
        self.path = path
        self._fd = fd
        self.last_hash = last_hash
        self.records = records

    @classmethod
    def create(cls, path: str | os.PathLike) -> "LogWriter":
        """A new, empty log at ``path``; never replaces a file (a LogError if one exists)."""
        path = Path(path)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o644)
        except FileExistsError:
            raise LogError(f"{path}: the log exists; name another (--log), or continue it with --resume") from None
        except OSError as err:
            raise LogError(f"{path}: cannot create the log: {err.strerror}") from None
        _fsync_folder(path)
        return cls(path, fd, GENESIS, 0)

    @classmethod
    def reopen(cls, path: str | os.PathLike, last_hash: str, records: int, keep_bytes: int) -> "LogWriter":
        """Continue the log at ``path`` after its first ``keep_bytes`` bytes (what follows,
        an unfinished record left by a crash, is cut off)."""
        path = Path(path)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        except OSError as err:
            raise LogError(f"{path}: cannot open the log: {err.strerror}") from None
        if os.fstat(fd).st_size != keep_bytes:
            os.ftruncate(fd, keep_bytes)
            os.fsync(fd)
        return cls(path, fd, last_hash, records)

    def write(self, record: dict) -> str:
        """Seal ``record`` after the last one, write it and fsync; returns its hash."""
        line, digest = seal(record, self.last_hash)
        data = (line + "\n").encode("ascii")
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]
        os.fsync(self._fd)
        self.last_hash = digest
        self.records += 1
        return digest

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


# ----------------------------------------------------------------------------- reading


class Line:
    """One record of a log read back: its 1-based line number and its data."""

    __slots__ = ("number", "record", "end")

    def __init__(self, number: int, record: dict, end: int):
        self.number = number
        self.record = record
        self.end = end          # byte offset after its newline

    @property
    def kind(self) -> str:
        return self.record.get("record")


def read_lines(path: str | os.PathLike, *, allow_unfinished: bool = False) -> tuple[list[Line], int]:
    """The records of a log, each checked: canonical form, own hash, chain.

    Returns ``(lines, unfinished)``: ``unfinished`` is the number of bytes after the last
    complete line (a record cut short by a crash); unless ``allow_unfinished`` such bytes
    are an error.  Raises :class:`LogError` ``LOG:LINE: message`` at the first line that
    does not hold.
    """
    path = Path(path)
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_LOG_BYTES + 1)
    except OSError as err:
        raise LogError(f"{path}: cannot read the log: {err.strerror}") from None
    if len(data) > MAX_LOG_BYTES:
        raise LogError(f"{path}: larger than {MAX_LOG_BYTES} bytes, more than any listening test writes")
    if not data:
        raise LogError(f"{path}: the log is empty")
    lines: list[Line] = []
    prev = GENESIS
    start = 0
    number = 0
    while start < len(data):
        number += 1
        end = data.find(b"\n", start)
        if end < 0:
            if allow_unfinished:
                return lines, len(data) - start
            raise LogError(f"{path}:{number}: the record is unfinished (no newline at the end of the file)")
        record = _check_line(path, number, data[start:end], prev)
        prev = record["hash"]
        lines.append(Line(number, record, end + 1))
        start = end + 1
    return lines, 0


def _check_line(path: Path, number: int, raw: bytes, prev: str) -> dict:
    where = f"{path}:{number}"
    try:
        text = raw.decode("ascii")
        record = json.loads(text)
    except (UnicodeDecodeError, ValueError):
        raise LogError(f"{where}: not a JSON record") from None
    if not isinstance(record, dict) or not isinstance(record.get("hash"), str) or "prev" not in record:
        raise LogError(f"{where}: not a record of an rtq listening-test log (no hash or prev)")
    try:
        canonical_text = canonical(record)
    except ValueError:
        canonical_text = None
    if canonical_text != text:
        raise LogError(f"{where}: the record is not in canonical form (it was edited)")
    body = {key: value for key, value in record.items() if key != "hash"}
    if sha256_text(canonical(body)) != record["hash"]:
        raise LogError(f"{where}: the record's hash does not match its content (it was edited)")
    if record["prev"] != prev:
        what = "the start of the log" if prev == GENESIS else f"line {number - 1}"
        raise LogError(f"{where}: prev does not match the hash of {what} (a record was changed, added or removed)")
    return record


# ----------------------------------------------------------------------------- the secret


def _state_folder() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "rtq" / "listen"


def secret_path(commitment_hex: str) -> Path:
    """Where the secret behind ``commitment_hex`` is kept until the test ends."""
    return _state_folder() / f"{commitment_hex}.json"


def store_secret(commitment_hex: str, nonce: str, assignments) -> Path:
    """Keep ``nonce`` and ``assignments`` (private file, fsync-ed) until the test ends."""
    path = secret_path(commitment_hex)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = canonical({"commitment": commitment_hex, "nonce": nonce, "assignments": assignments}).encode("ascii")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, stat.S_IRUSR | stat.S_IWUSR)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    _fsync_folder(path)
    return path


def load_secret(commitment_hex: str, log: str | os.PathLike) -> tuple[str, list]:
    """The nonce and assignments behind ``commitment_hex``, checked against it."""
    path = secret_path(commitment_hex)
    try:
        data = json.loads(path.read_text(encoding="ascii"))
        nonce, assignments = data["nonce"], data["assignments"]
    except FileNotFoundError:
        raise LogError(f"{log}: the test's secret assignments are not on this machine ({path}); a test "
                       "resumes only where it started, as the same user") from None
    except (OSError, ValueError, KeyError, TypeError):
        raise LogError(f"{log}: cannot read the test's secret assignments ({path})") from None
    if not isinstance(nonce, str) or commitment(nonce, assignments) != commitment_hex:
        raise LogError(f"{log}: the secret assignments in {path} do not match the log's commitment")
    return nonce, assignments


def drop_secret(commitment_hex: str) -> None:
    """Delete the secret once the final record has revealed it."""
    try:
        secret_path(commitment_hex).unlink()
    except FileNotFoundError:
        pass
