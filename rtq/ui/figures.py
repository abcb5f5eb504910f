"""The meter's figures table, as text cells: what the terminal screen (:mod:`rtq.ui.screen`)
and the web page (:mod:`rtq.web.live`) both show, formatted once.

No terminal library here: the web server and ``rtq live --json`` load it without rich.
"""
from __future__ import annotations

import numpy as np

from .meterview import levels

FIGURES = (
    # label, report key, unit, format
    ("error RMS", "rms_dbfs", "dBFS", "{:.1f}"),
    ("error peak", "peak_dbfs", "dBFS", "{:.1f}"),
    ("MSE", "mse", "", "{:.3g}"),
    ("PSNR", "psnr_db", "dB", "{:.1f}"),
    ("SNR", "snr_db", "dB", "{:.1f}"),
    ("A-weighted", "a_weighted_dbfs", "dBFS", "{:.1f}"),
    ("ITU-468 RMS", "itu468_dbfs", "dBFS", "{:.1f}"),   # RMS, not BS.468's quasi-peak
    ("DC", "dc_lsb", "LSB", "{:+.3f}"),
    ("SINAD", "sinad_db", "dB", "{:.1f}"),
    ("ENOB re FS", "enob", "bits", "{:.2f}"),           # IEEE 1241: re a full-scale sine
    ("clips", "clips", "", "{:d}"),
    ("non-finite", "nonfinite", "", "{:d}"),
    ("loop resets", "loop_resets", "", "{:d}"),
    ("over MSA", "overloads", "", "{:d}"),      # samples above a sigma-delta loop's stable amplitude
)
SPREAD_ROW = ("noise mod.", "dB", "{:.1f}")   # the last row: noise modulation's spread


def fmt(spec: str, value) -> str:
    """``value`` formatted by ``spec`` ("-" for a figure the meter could not form)."""
    if value is None:
        return "-"
    try:
        return spec.format(value)
    except (ValueError, TypeError):
        return str(value)


def pct(v) -> str:
    """A share (callback load) as a percentage."""
    return "-" if v is None else f"{v * 100:.1f} %"


def shaping_text(shaping: dict) -> str:
    """A requantize stage's noise shaping in a word or three (header lines)."""
    if shaping.get("kind") == "design":
        return f"ntf order {shaping.get('order')}"
    return shaping.get("name") or shaping.get("kind", "none")


def block_period_s(session) -> float:
    """The session's block period in seconds (0 when the host chooses and has not said)."""
    return (session.blocksize or getattr(session.stream, "blocksize", 0) or 0) / session.samplerate


def figure_rows(windows, channels) -> list[tuple[str, str, list[str]]]:
    """``(label, unit, cells)`` per row of the table: for each report of ``windows``
    (the screen's momentary and integrated, a file's one) one cell per channel of
    ``channels``; the noise modulation's spread last.  A window not formed yet (None)
    gives "-" cells."""
    rows = []
    for label, key, unit, spec in FIGURES:
        cells = []
        for report in windows:
            values = None if report is None else report.get(key)
            cells += [fmt(spec, None if values is None else values[c]) for c in channels]
        rows.append((label, unit, cells))
    label, unit, spec = SPREAD_ROW
    cells = []
    for report in windows:
        spread = None if report is None else report["noise_modulation"]["spread_db"]
        cells += [fmt(spec, None if spread is None else spread[c]) for c in channels]
    rows.append((label, unit, cells))
    return rows


def db_power_sum(values) -> float | None:
    """``10 log10`` of the summed power of a list of per-bin levels in dB (the theory's
    floor and target as one level)."""
    if values is None:
        return None
    a = levels(values)
    total = np.nansum(10.0 ** (a / 10.0))
    return float(10.0 * np.log10(total)) if total > 0 else None
