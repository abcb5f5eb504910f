"""Plots of a measurement report (``--plot FILE``), with matplotlib's Agg renderer.

matplotlib is the optional extra ``rtq[plot]``: :func:`require_matplotlib` fails with one
clear line when it is missing, so commands can check before doing any work.  The file's
extension chooses the format (:data:`FORMATS`); the same report gives the same bytes
(no creation date in PDF or SVG, fixed SVG ids).

One row per metered stage (and end to end): the error spectrum with the theoretical
floor and target curves, the error histogram in LSB, and the error level over time.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from .errors import UsageError
from .files.destination import write_atomic

MISSING = "--plot needs matplotlib: pip install 'rtq[plot]'"
# Extension: (matplotlib's format, metadata without the time of drawing).
FORMATS = {".png": ("png", {}), ".pdf": ("pdf", {"CreationDate": None}), ".svg": ("svg", {"Date": None})}


def require_matplotlib() -> None:
    """Raise :class:`~rtq.errors.UsageError` (exit 2) if matplotlib cannot be imported."""
    try:
        import matplotlib  # noqa: F401
        from matplotlib.figure import Figure  # noqa: F401
    except ImportError:
        raise UsageError(MISSING) from None


def plot_format(path) -> str:
    """The format the plot file ``path`` is drawn in, from its extension; a one-line
    :class:`~rtq.errors.UsageError` for any other."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise UsageError(f"--plot {path}: rtq draws PNG, PDF or SVG; name the file .png, .pdf or .svg")
    return FORMATS[suffix][0]


def check_plot_path(path) -> None:
    """Before any work: ``path`` names a format rtq draws, and matplotlib is there."""
    plot_format(path)
    require_matplotlib()


def _values(rows) -> np.ndarray:
    """Nested lists with None -> float array with NaN."""
    return np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=float)


def _channel_label(c: int, channels: int) -> str:
    return f"ch{c + 1}" if channels > 1 else "error"


def _spectrum(ax, entry: dict) -> None:
    spectrum = entry.get("spectrum") or {}
    freq = np.asarray(spectrum.get("freq_hz") or [], dtype=float)
    ax.set_title(f"{entry.get('stage') or 'stage'}: error spectrum", fontsize=9)
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel(f"dBFS per bin ({max(2 * (len(freq) - 1), 0)}-point FFT)")
    if spectrum.get("psd_dbfs") is None or len(freq) < 2:
        ax.text(0.5, 0.5, "not enough frames for a spectrum", ha="center", va="center",
                transform=ax.transAxes)
        return
    keep = freq > 0
    psd = _values(spectrum["psd_dbfs"])
    for c, row in enumerate(psd):
        ax.plot(freq[keep], row[keep], lw=0.6, alpha=0.8, label=_channel_label(c, len(psd)))
    for key, style, label in (("floor_dbfs", ":", "floor (theory)"), ("target_dbfs", "--", "target (floor x |NTF|^2)")):
        curve = spectrum.get(key)
        if curve is not None:
            ax.plot(freq[keep], _values([curve])[0][keep], style, color="k", lw=1.0, label=label)
    ax.set_xscale("log")
    ax.set_xlim(max(freq[1], 10.0), freq[-1])
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="best")


def _histogram(ax, entry: dict) -> None:
    hist = entry.get("histogram")
    ax.set_title("error histogram", fontsize=9)
    ax.set_xlabel("error (LSB)")
    ax.set_ylabel("probability density (1/LSB)")
    if not hist:
        ax.text(0.5, 0.5, "no uniform grid (no LSB)", ha="center", va="center", transform=ax.transAxes)
        return
    lsb = np.asarray(hist["lsb"], dtype=float)
    width = lsb[1] - lsb[0] if len(lsb) > 1 else 1.0
    counts = np.asarray(hist["count"], dtype=float)
    outside = np.asarray(hist.get("under", 0), dtype=float) + np.asarray(hist.get("over", 0), dtype=float)
    totals = counts.sum(axis=1) + outside
    for c, row in enumerate(counts):
        density = row / totals[c] / width if totals[c] else row
        ax.step(lsb, density, where="mid", lw=0.9, label=_channel_label(c, len(counts)))
    if totals.sum() and outside.sum():
        share = 100.0 * outside.sum() / totals.sum()
        ax.set_title(f"error histogram ({share:.3g} % outside +-{lsb[-1] + width / 2:g} LSB)", fontsize=9)
    ax.grid(True, alpha=0.3)
    if len(counts) > 1:
        ax.legend(fontsize=7)


def _level(ax, entry: dict) -> None:
    history = entry.get("level_history")
    ax.set_title("error level over time", fontsize=9)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("error RMS (dBFS)")
    if not history or not history.get("time_s"):
        ax.text(0.5, 0.5, "no level history", ha="center", va="center", transform=ax.transAxes)
        return
    t = np.asarray(history["time_s"], dtype=float)
    level = _values(history["rms_dbfs"])
    for c, row in enumerate(level):
        ax.step(t, row, where="post", lw=0.9, label=_channel_label(c, len(level)))
    ax.grid(True, alpha=0.3)
    if len(level) > 1:
        ax.legend(fontsize=7)


def plot_report(report: dict, path, title: str | None = None, *, force: bool = False) -> None:
    """Draw ``report`` (a ChainMeter or analyze report) into ``path`` (PNG, PDF or SVG by
    its extension), written by :func:`~rtq.files.destination.write_atomic` (``force``
    replaces an existing file).

    Rows: each entry of ``report["stages"]``, then ``report["end_to_end"]`` when present.
    """
    fmt = plot_format(path)
    require_matplotlib()
    import matplotlib
    from matplotlib.figure import Figure

    entries = list(report.get("stages") or [])
    if report.get("end_to_end"):
        entries.append(report["end_to_end"])
    rows = max(len(entries), 1)
    fig = Figure(figsize=(16, 3.6 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, 3, squeeze=False)
    for row, entry in zip(axes, entries):
        _spectrum(row[0], entry)
        _histogram(row[1], entry)
        _level(row[2], entry)
    if not entries:
        axes[0][0].text(0.5, 0.5, "no quantizer stages", ha="center", va="center")
    if title:
        fig.suptitle(title, fontsize=11)
    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": "rtq"}):   # SVG ids: fixed, not random
        fig.savefig(buf, format=fmt, dpi=100, metadata=FORMATS[Path(path).suffix.lower()][1])
    write_atomic(path, buf.getvalue(), force=force)
