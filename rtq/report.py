"""Measurement reports as JSON files (``rtq render --report``, ``rtq analyze --report``).

A report is the dict :meth:`rtq.meter.chain_meter.ChainMeter.report` returns (or the
one ``rtq analyze`` builds, with one entry in ``stages``), plus what was measured
(``command``, files, preset).  Every figure a meter could not form is ``null``: the file
is strict JSON (no NaN or Infinity), and is a :class:`~rtq.files.destination.Destination`
like rendered audio: it appears complete, and over an existing file only with ``force``.
"""
from __future__ import annotations

import json
import math
import os

import numpy as np
import orjson

from .files.destination import check_destination, write_atomic
from .plot import check_plot_path, plot_report

FORMAT_VERSION = 1


_KEPT = {int, str, type(None)}        # list items clean() leaves as they are
_NUMBERS = {float} | _KEPT


def clean(value):
    """``value`` as plain JSON data: numpy scalars and arrays to Python, NaN and +-Inf to
    None, tuples to lists."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        kinds = set(map(type, value))       # lists of plain numbers (spectra, counts): at once
        if kinds <= _KEPT:
            return list(value)
        if kinds <= _NUMBERS:
            if kinds == {float} and all(map(math.isfinite, value)):
                return list(value)
            return [v if type(v) is not float or math.isfinite(v) else None for v in value]
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
    """Strict JSON text of a report, cleaned as :func:`clean` cleans (NaN and +-Inf as
    null): one member per line, indented by depth; a list of numbers (a spectrum) on one
    line."""
    return _text(report, 0) + "\n"


_NESTED = {dict, list, tuple, np.ndarray}


def _text(value, depth: int) -> str:
    if isinstance(value, np.ndarray) and value.ndim > 1:
        value = list(value)
    if isinstance(value, dict):
        kinds, nested = {dict}, bool(value)
    elif isinstance(value, (list, tuple)):
        kinds = set(map(type, value))
        nested = not kinds.isdisjoint(_NESTED)
    else:
        kinds, nested = {type(value)}, False
    if nested:
        return _nested(value, depth)
    if str in kinds:
        return json.dumps(clean(value))     # ASCII escapes: a path may hold undecodable bytes
    # Numbers: orjson writes a float's shortest round-trip digits, as repr does, in a
    # tenth of json's time (a DSD report's spectra hold 90,000), and non-finite ones as null.
    return orjson.dumps(value, default=clean, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def _nested(value, depth: int) -> str:
    pad = "\n" + " " * (depth + 1)
    if isinstance(value, dict):
        items = [f"{json.dumps(str(k))}: {_text(v, depth + 1)}" for k, v in value.items()]
        return "{" + pad + ("," + pad).join(items) + "\n" + " " * depth + "}"
    return "[" + pad + ("," + pad).join(_text(v, depth + 1) for v in value) + "\n" + " " * depth + "]"


def write_report(path, report: dict, *, force: bool = False) -> None:
    """Write ``report`` as strict JSON to ``path`` (:func:`~rtq.files.destination.write_atomic`)."""
    write_atomic(path, dumps(report), force=force)


def save(measurements: dict, command: str, report_path=None, plot_path=None,
         title: str | None = None, *, force: bool = False, **about) -> dict:
    """Write the report JSON to ``report_path`` and/or its plot to ``plot_path`` (either
    may be None; an existing file is replaced only with ``force``); returns the report."""
    report = make_report(measurements, command, **about)
    if report_path:
        write_report(report_path, report, force=force)
    if plot_path:
        plot_report(report, plot_path, title, force=force)
    return report


def check_outputs(report_path=None, plot_path=None, *, keep=(), force: bool = False) -> None:
    """Before any work: the plot's format and matplotlib (:func:`~rtq.plot.check_plot_path`),
    and both destinations can be written (:func:`check_destination`), neither over the other."""
    if plot_path:
        check_plot_path(plot_path)
        check_destination(plot_path, "--plot", keep=keep, force=force)
    if report_path:
        check_destination(report_path, "--report", keep=[*keep, ("--plot", plot_path)], force=force)
