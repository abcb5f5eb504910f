"""Drawing in a terminal: a braille dot canvas and a log frequency axis.

:class:`Canvas` packs 2 x 4 dots into each character cell (Unicode braille), so a
120-column terminal gives a 240-dot-wide plot; layers drawn in priority order give each
cell one style.  :func:`log_columns`, :func:`log_bin_powers` and :func:`freq_axis` put an
FFT's bins on a log frequency axis.
"""
from __future__ import annotations

import math

import numpy as np
from rich.text import Text

_BRAILLE = np.array([[0x01, 0x08], [0x02, 0x10], [0x04, 0x20], [0x40, 0x80]], np.uint8)


class Canvas:
    """A character grid of braille cells (2 x 4 dots each), with layers drawn in
    priority order (layer 0 on top): a cell takes the style of its top layer."""

    def __init__(self, width: int, height: int, layers: int = 1):
        self.width, self.height = int(width), int(height)
        self.bits = np.zeros((layers, self.height, self.width), np.uint8)

    @property
    def dots(self) -> tuple[int, int]:
        return 2 * self.width, 4 * self.height

    def plot(self, layer: int, x, y) -> None:
        """Set dots at integer coordinates (x right, y down); outside ones are dropped."""
        x = np.asarray(x, np.int64)
        y = np.asarray(y, np.int64)
        keep = (x >= 0) & (x < 2 * self.width) & (y >= 0) & (y < 4 * self.height)
        x, y = x[keep], y[keep]
        np.bitwise_or.at(self.bits[layer], (y // 4, x // 2), _BRAILLE[y % 4, x % 2])

    def line(self, layer: int, y) -> None:
        """A curve given by one dot row per dot column (NaN: no point), joined vertically."""
        y = np.asarray(y, float)
        xs, ys = [], []
        prev = None
        for x, v in enumerate(y):
            if not np.isfinite(v):
                prev = None
                continue
            v = int(round(v))
            lo, hi = (v, v) if prev is None else (min(v, (v + prev) // 2), max(v, (v + prev) // 2))
            span = range(lo, hi + 1)
            xs.extend([x] * len(span))
            ys.extend(span)
            if prev is not None and x > 0:       # the other half of the join, one column back
                lo2, hi2 = sorted((prev, (v + prev) // 2))
                xs.extend([x - 1] * (hi2 - lo2 + 1))
                ys.extend(range(lo2, hi2 + 1))
            prev = v
        if xs:
            self.plot(layer, xs, ys)

    def rows(self, styles: list[str]) -> list[Text]:
        """One Text per character row."""
        top = np.zeros((self.height, self.width), np.int64) - 1
        for layer in range(len(self.bits) - 1, -1, -1):
            top = np.where(self.bits[layer] > 0, layer, top)
        cells = np.bitwise_or.reduce(self.bits, axis=0)
        lines = []
        for r in range(self.height):
            text = Text()
            chars = [chr(0x2800 + int(c)) if c else " " for c in cells[r]]
            owner = top[r]
            start = 0
            for c in range(1, self.width + 1):
                if c == self.width or owner[c] != owner[start]:
                    style = styles[owner[start]] if owner[start] >= 0 else ""
                    text.append("".join(chars[start:c]), style=style)
                    start = c
            lines.append(text)
        return lines


def log_columns(freq: np.ndarray, columns: int, f_lo: float, f_hi: float):
    """For a log axis of ``columns`` dot columns from ``f_lo`` to ``f_hi``: each bin's
    column (or -1), and for every column the nearest bin (for columns with no bin)."""
    ratio = math.log(f_hi / f_lo)
    with np.errstate(divide="ignore", invalid="ignore"):
        pos = np.floor(np.log(freq / f_lo) / ratio * columns)
    col = np.where((freq >= f_lo) & (freq <= f_hi) & np.isfinite(pos), np.minimum(pos, columns - 1), -1)
    centres = f_lo * np.exp((np.arange(columns) + 0.5) / columns * ratio)
    nearest = np.clip(np.searchsorted(freq, centres), 1, len(freq) - 1)
    left = freq[nearest - 1]
    nearest = np.where(np.abs(centres - left) < np.abs(freq[nearest] - centres), nearest - 1, nearest)
    return col.astype(np.int64), nearest


def log_bin_powers(db: np.ndarray, col: np.ndarray, nearest: np.ndarray, columns: int) -> np.ndarray:
    """Mean power (dB) of the bins in each column; a column without bins takes its
    nearest bin's; NaN where there is no power."""
    power = np.where(np.isfinite(db), 10.0 ** (db / 10.0), 0.0)
    inside = col >= 0
    total = np.bincount(col[inside], power[inside], minlength=columns)
    count = np.bincount(col[inside], minlength=columns)
    mean = np.where(count > 0, total / np.maximum(count, 1), power[nearest])
    with np.errstate(divide="ignore"):
        out = 10.0 * np.log10(mean)
    return np.where(mean > 0, out, np.nan)


def _hz(f: float) -> str:
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if f >= scale:
            v = f / scale
            return f"{v:g}{unit}"
    return f"{f:g}"


def freq_axis(width: int, f_lo: float, f_hi: float) -> tuple[str, str]:
    """Tick line and label line for a log axis ``width`` characters wide."""
    ticks = [" "] * width
    labels = [" "] * (width + 6)
    ratio = math.log(f_hi / f_lo)
    decade = 10.0 ** math.floor(math.log10(f_lo))
    marks = []
    while decade <= f_hi:
        for m in (1, 2, 5):
            f = decade * m
            if f_lo <= f <= f_hi:
                marks.append(f)
        decade *= 10
    used_until = -1
    for f in marks:
        x = int(round(math.log(f / f_lo) / ratio * (width - 1)))
        ticks[x] = "┴" if str(f)[0] == "1" else "╵"
        label = _hz(f)
        start = max(0, x - len(label) // 2)
        if start > used_until and start + len(label) <= len(labels):
            labels[start:start + len(label)] = label
            used_until = start + len(label)
    return "".join(ticks), "".join(labels).rstrip()
