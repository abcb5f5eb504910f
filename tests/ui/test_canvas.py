"""The braille canvas and the log frequency axis (rtq.ui.canvas)."""
from __future__ import annotations

import numpy as np

from rtq.ui.canvas import Canvas, freq_axis, log_bin_powers, log_columns


def test_log_bin_powers_keeps_a_flat_level():
    freq = np.fft.rfftfreq(4096, 1 / 48000)
    col, nearest = log_columns(freq, 200, 20.0, 24000.0)
    flat = np.full(len(freq), -129.4)
    out = log_bin_powers(flat, col, nearest, 200)
    assert np.allclose(out, -129.4)
    # every column has a value (narrow low columns take their nearest bin)
    assert np.isfinite(out).all()
    # a column's level is the mean power of its bins
    db = np.where(np.arange(len(freq)) % 2, -100.0, -110.0)
    out = log_bin_powers(db, col, nearest, 200)
    assert abs(out[-1] - 10 * np.log10((1e-10 + 1e-11) / 2)) < 0.5
    # no power: NaN (not drawn)
    assert np.isnan(log_bin_powers(np.full(len(freq), np.nan), col, nearest, 200)).all()


def test_canvas_line_is_connected_and_layered():
    canvas = Canvas(10, 2, layers=2)
    canvas.line(1, np.linspace(0, 7, 20))       # a ramp over the whole canvas, lower layer
    canvas.line(0, np.full(20, 3.0))            # a flat line on top
    rows = canvas.rows(["bold", "dim"])
    assert len(rows) == 2 and all(len(r.plain) == 10 for r in rows)
    # every dot column has a dot of the ramp: the line is unbroken
    ys = [y for y in range(8) for x in range(20)
          if canvas.bits[1, y // 4, x // 2] & [[1, 8], [2, 16], [4, 32], [64, 128]][y % 4][x % 2]]
    assert len(ys) >= 20
    assert all(ch != " " for ch in rows[0].plain)    # the flat line crosses row 0
    # cells holding the top layer take its style
    assert any(span.style == "bold" for span in rows[0].spans)


def test_freq_axis_labels():
    ticks, labels = freq_axis(100, 20.0, 24000.0)
    assert len(ticks) == 100
    for label in ("100", "1k", "10k"):
        assert label in labels.split()
    assert labels.index("100") < labels.index("1k") < labels.index("10k")
