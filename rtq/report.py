"""Measurement reports as JSON files (``rtq render --report``, ``rtq analyze --report``).

A report is the dict :meth:`rtq.meter.chain_meter.ChainMeter.report` returns (or the
one ``rtq analyze`` builds, with one entry in ``stages``), plus what was measured
(``command``, files, preset).  Every figure a meter could not form is ``null``: the file
is strict JSON (no NaN or Infinity), and appears atomically, like rendered audio: it is
written beside its destination and renamed over it once complete.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np

from .errors import UsageError

FORMAT_VERSION = 1


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
    with ``force``.
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


def clean(value):
    """``value`` as plain JSON data: numpy scalars and arrays to Python, NaN and +-Inf to
    None, tuples to lists."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return clean(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"cannot put {type(value).__name__} into a report")


def make_report(measurements: dict, command: str, **about) -> dict:
    """The report file's content: ``format``, ``command``, ``about`` (files, preset ...)
    and the measurements' keys."""
    return clean({"format": FORMAT_VERSION, "command": command, **about, **measurements})


def dumps(report: dict) -> str:
    """Strict JSON text of a report (raises ValueError on NaN or Infinity)."""
    return json.dumps(clean(report), allow_nan=False, indent=1) + "\n"


def write_atomic(path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a
    rename, so ``path`` is either the old file or the complete new one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_report(path, report: dict) -> None:
    """Write ``report`` as strict JSON to ``path``, atomically."""
    write_atomic(path, dumps(report))


def save(measurements: dict, command: str, report_path=None, plot_path=None,
         title: str | None = None, **about) -> dict:
    """Write the report JSON to ``report_path`` and/or its plot to ``plot_path`` (either
    may be None); returns the report."""
    report = make_report(measurements, command, **about)
    if report_path:
        write_report(report_path, report)
    if plot_path:
        from .plot import plot_report

        plot_report(report, plot_path, title)
    return report


def check_outputs(report_path=None, plot_path=None, *, keep=(), force: bool = False) -> None:
    """Before any work: matplotlib is there for a plot, and both destinations can be
    written (:func:`check_destination`), neither over the other."""
    if plot_path:
        from .plot import require_matplotlib

        require_matplotlib()
        check_destination(plot_path, "--plot", keep=keep, force=force)
    if report_path:
        check_destination(report_path, "--report", keep=[*keep, ("--plot", plot_path)], force=force)
