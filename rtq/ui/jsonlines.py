"""``rtq live --json``: one JSON line of meter figures per interval, without a terminal.

:func:`run_json` writes, every :data:`~rtq.ui.meterview.REFRESH_S`, one line
(:func:`json_record`): the selected stage's momentary figures, its spectrum summed into
1/3-octave bands, and the stream's health.  This module loads no terminal library (no
rich): a pipe needs none, and the import would cost start-up time.
"""
from __future__ import annotations

import json
import math
import sys
import time

import numpy as np

from ..report import clean
from .meterview import REFRESH_S, MeterView, levels
from .quit import Quit, SigtermAsQuit


def third_octave_bands(freq) -> tuple[np.ndarray, np.ndarray]:
    """Centres of the 1/3-octave bands (base 2, 1 kHz reference) that hold at least
    one spectrum bin above DC, and each bin's band index (-1: none)."""
    freq = np.asarray(freq, float)
    k_lo = round(3 * math.log2(freq[1] / 1000.0))      # the band holding the first bin
    k_hi = round(3 * math.log2(freq[-1] / 1000.0))     # ... and the one holding Nyquist
    centres = 1000.0 * 2.0 ** (np.arange(k_lo, k_hi + 1) / 3.0)
    edges = np.concatenate([centres * 2.0 ** (-1 / 6), centres[-1:] * 2.0 ** (1 / 6)])
    band = np.searchsorted(edges, freq, side="right") - 1
    band[(band >= len(centres)) | (freq <= 0)] = -1
    used = np.unique(band[band >= 0])
    remap = np.full(len(centres), -1)
    remap[used] = np.arange(len(used))
    return centres[used], np.where(band >= 0, remap[np.maximum(band, 0)], -1)


def _band_levels(db_values, band, nbands) -> list:
    """Per-bin levels (dB, None = no power) summed into bands, as dB (None = no power)."""
    a = levels(db_values)
    power = np.where(np.isfinite(a), 10.0 ** (a / 10.0), 0.0)
    inside = band >= 0
    total = np.bincount(band[inside], power[inside], minlength=nbands)
    with np.errstate(divide="ignore"):
        db = 10.0 * np.log10(total)
    return [float(v) if np.isfinite(v) else None for v in db]


def compact_spectrum(spectrum: dict, view: MeterView) -> dict:
    """The meter's per-bin spectrum summed into 1/3-octave bands (band power, dBFS)."""
    centres, band = view.static(("third-octave",), lambda: third_octave_bands(spectrum["freq_hz"]))
    n = len(centres)
    psd = spectrum["psd_dbfs"]
    out = {"band_hz": [float(f) for f in centres],
           "psd_dbfs": None if psd is None else [_band_levels(row, band, n) for row in psd]}
    for key in ("floor_dbfs", "target_dbfs"):
        values = spectrum[key]
        out[key] = None if values is None else view.static(
            (key, "third-octave"), lambda v=values: _band_levels(v, band, n))
    out["segments"] = spectrum["segments"]
    return out


def json_record(session, view: MeterView) -> dict:
    """One JSON line: the selected stage's momentary report (its level history left
    out, its spectrum in 1/3-octave bands), the stream's health, and ``counts``: per
    channel since the session started, the samples clipped, the non-finite source
    samples replaced, the loop resets and the samples above a sigma-delta loop's maximum
    stable amplitude (what the exit summary will say), so a reader
    of the last line has the run's totals, which the momentary window cannot hold."""
    st = session.stream.stats()
    counts = session.engine.counts()
    q = session.quantizer()
    report = dict(view.momentary or {})
    report.pop("level_history", None)       # the whole run's history: not momentary
    if report.get("spectrum"):
        report["spectrum"] = compact_spectrum(report["spectrum"], view)
    return clean({
        "time_s": round(time.monotonic() - session.started, 3),   # since the first block
        "preset": session.spec.name,
        "mode": session.engine.mode,
        "bits": None if q is None else q.bits,
        "dither": None if q is None else q.dither,
        "shaping": None if q is None else (q.shaping.get("name") or q.shaping.get("kind")),
        "stage": view.label,
        "xruns": st.xruns,
        "callback_load": {"p50": st.load_p50, "p99": st.load_p99, "max": st.load_max},
        "counts": counts._asdict(),
        "meter": report,
    })


def run_records(session, duration: float | None = None, *, stage=None, interval: float = REFRESH_S,
                sinks=()) -> MeterView:
    """Run ``session``, forming one :func:`json_record` per ``interval`` (the momentary
    figures refreshed for it) and handing it to each of ``sinks`` (``sink(record,
    view)``, on this thread): the lines of ``--json``, the web page's updates
    (:mod:`rtq.web.live`), or both from the same record.  A sink ends the run by raising
    :class:`~rtq.ui.quit.Quit`; so do Ctrl-C and SIGTERM.  The meter is built before the
    session starts (if it has not), so ``duration`` is all metered: its set-up (SciPy,
    filter designs: seconds on a cold cache) no longer ate into it."""
    view = MeterView(session, stage)

    def tick(_session):
        view.update(windows=("momentary",), force=True)
        record = json_record(session, view)
        for sink in sinks:
            sink(record, view)

    with SigtermAsQuit():
        try:
            session.run(duration, tick=tick, interval=interval)
        except (Quit, KeyboardInterrupt):
            pass
    return view


def line_writer(out=None):
    """A sink for :func:`run_records` writing each record as one strict JSON line to
    ``out`` (stdout); a closed pipe ends the run quietly."""
    def write(record, _view):
        stream = sys.stdout if out is None else out
        try:
            stream.write(json.dumps(record, allow_nan=False) + "\n")
            stream.flush()
        except BrokenPipeError:
            raise Quit() from None
    return write


def run_json(session, duration: float | None = None, *, stage=None, out=None,
             interval: float = REFRESH_S) -> MeterView:
    """Run ``session`` writing one JSON line per ``interval`` to ``out`` (stdout):
    see :func:`json_record` and :func:`run_records`.  Ends quietly when the reader closes
    the pipe."""
    return run_records(session, duration, stage=stage, interval=interval, sinks=(line_writer(out),))
