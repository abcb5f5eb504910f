"""The batch manifest: JSON Lines, one record per finished job, appended and made
durable (``fsync``) as each job ends.

A record holds what identifies the result (input path and SHA-256, preset name, file
and SHA-256 of its canonical form, seed, rtq version, output path, subtype and SHA-256),
what the render counted (frames written, frames an allowed short input lacked, clips,
non-finite input samples and loop resets per channel, and with ``--report`` the
end-to-end error figures), the status (``done`` or ``failed``, with the one-line ``error``), and how it
was scheduled (:data:`SCHEDULING_FIELDS`: the worker, the wall time, the attempt).
Every other field depends on the job alone, so two runs of a batch give the same
records apart from those, whatever ran them, in the order the jobs finished.

Reading takes the last record of each output: a job rendered again (its output was
damaged or its input changed) is appended, not rewritten.  A run killed while it wrote
leaves at most an unfinished last line; it is cut off before the next record is added
(its job is simply run again).
"""
from __future__ import annotations

import json
import os

SCHEDULING_FIELDS = ("worker", "wall_seconds", "attempt")
"""Fields that say how a job was run, not what it made."""


def read_records(path) -> dict[str, dict]:
    """The last complete record of each output in the manifest at ``path`` ({} if none)."""
    records: dict[str, dict] = {}
    try:
        with open(path, "rb") as f:
            lines = f.read().split(b"\n")
    except FileNotFoundError:
        return records
    for line in lines[:-1]:          # the last piece is "" or an unfinished line
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("output"), str):
            records[record["output"]] = record
    return records


def dumps(record: dict) -> str:
    """One manifest line (with its newline): compact JSON, keys in the record's order."""
    return json.dumps(record, separators=(",", ":")) + "\n"


class ManifestWriter:
    """Appends records to a manifest, durable before :meth:`append` returns."""

    def __init__(self, path):
        self.path = os.fspath(path)
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        self._cut_unfinished_line()

    def _cut_unfinished_line(self) -> None:
        size = os.lseek(self._fd, 0, os.SEEK_END)
        end = size
        while end > 0:
            chunk = os.pread(self._fd, min(end, 1 << 16), end - min(end, 1 << 16))
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                end = end - len(chunk) + newline + 1
                break
            end -= len(chunk)
        if end != size:
            os.ftruncate(self._fd, end)
            os.fsync(self._fd)

    def append(self, records: list[dict]) -> None:
        """Append ``records`` (one write, one ``fsync``: a task's records come back together)."""
        if not records:
            return
        data = "".join(map(dumps, records)).encode()
        os.lseek(self._fd, 0, os.SEEK_END)
        while data:
            data = data[os.write(self._fd, data):]
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
