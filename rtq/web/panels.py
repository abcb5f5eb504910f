"""A meter report (a stage's window, live, or an entry of a report file) as what the page
draws: the figures table formatted by the terminal's code (:mod:`rtq.ui.figures`), the
error spectrum on a log frequency axis reduced as the screen reduces it
(:func:`rtq.ui.canvas.log_bin_powers`: mean power per column), the theoretical floor
and target alike, the histogram, the bits in use, the noise modulation and (for a file)
the level over time, as they are in the report."""
from __future__ import annotations

import math

import numpy as np

from rtq.report import clean
from rtq.ui.canvas import log_bin_powers, log_columns
from rtq.ui.figures import db_power_sum, figure_rows, fmt
from rtq.ui.meterview import levels
from rtq.ui.units import rate_text

COLUMNS = 320               # points of the spectrum on its log axis (the screen: 2 per character)
LOWEST_HZ = 20.0


def _direct(_key, make):
    return make()


def _rounded(curve) -> list:
    return [None if not math.isfinite(v) else round(float(v), 2) for v in curve]


def spectrum(spec: dict | None, static=_direct) -> dict | None:
    """The per-bin spectrum (``psd_dbfs`` per channel, ``floor_dbfs``, ``target_dbfs``)
    as :data:`COLUMNS` points from 20 Hz (or the first bin) to Nyquist: ``hz`` and the
    curves in dBFS per bin (None: no power).  ``static(key, make)`` caches what only
    changes with the stage (the axis, the theory's curves)."""
    if not spec or spec.get("psd_dbfs") is None:
        return None
    freq = static(("freq",), lambda: np.asarray(spec["freq_hz"], float))
    f_lo, f_hi = max(LOWEST_HZ, float(freq[1])), float(freq[-1])
    col, nearest = static(("columns",), lambda: log_columns(freq, COLUMNS, f_lo, f_hi))
    hz = static(("hz",), lambda: [round(f_lo * math.exp((k + 0.5) / COLUMNS * math.log(f_hi / f_lo)), 2)
                                  for k in range(COLUMNS)])

    def curve(values):
        return _rounded(log_bin_powers(levels(values), col, nearest, COLUMNS))

    out = {"hz": hz, "psd": [curve(row) for row in spec["psd_dbfs"]], "segments": spec.get("segments")}
    for key, name in (("floor_dbfs", "floor"), ("target_dbfs", "target")):
        values = spec.get(key)
        out[name] = None if values is None else static((key,), lambda v=values: curve(v))
    return out


def theory(spec: dict | None, static=_direct) -> str | None:
    """The screen's line under the table: the floor and the target as one level each."""
    if not spec or spec.get("floor_dbfs") is None:
        return None
    floor = static(("floor",), lambda: db_power_sum(spec["floor_dbfs"]))
    target = static(("target",), lambda: db_power_sum(spec["target_dbfs"]))
    return f"theory: floor {fmt('{:.1f}', floor)} dBFS, target {fmt('{:.1f}', target)} dBFS"


def channel_names(channels: int) -> list[str]:
    """How the table names channels (the screen's words)."""
    if channels == 1:
        return [""]
    if channels == 2:
        return ["L", "R"]
    return [f"ch{c + 1}" for c in range(channels)]


def table(windows: dict, channels: int) -> dict:
    """The figures table: ``windows`` (name -> report or None, in column order), cells
    formatted by the screen's :func:`~rtq.ui.figures.figure_rows`."""
    return {"windows": list(windows), "channels": channel_names(channels),
            "rows": [list(row) for row in figure_rows(tuple(windows.values()), range(channels))]}


def panel(report: dict | None, static=_direct) -> dict | None:
    """The graphs of one report (a window of a stage): spectrum, histogram, bits in use
    (a Lloyd-Max quantizer's levels in use, a block compander's scales), noise
    modulation, level history (absent live)."""
    if report is None:
        return None
    rate = report.get("sample_rate")
    return clean({
        "stage": report.get("stage"), "rate": None if rate is None else rate_text(rate),
        "frames": report.get("frames"), "dropped_frames": report.get("dropped_frames"),
        "spectrum": spectrum(report.get("spectrum"), static),
        "theory": theory(report.get("spectrum"), static),
        "histogram": report.get("histogram"), "bits_in_use": report.get("bits_in_use"),
        "level_histogram": report.get("level_histogram"), "scale_factors": report.get("scale_factors"),
        "off_grid": report.get("off_grid"), "noise_modulation": report.get("noise_modulation"),
        "level_history": report.get("level_history"),
    })
