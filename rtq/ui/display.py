"""The live error meter on the terminal, and its JSON-lines form.

:class:`LiveDisplay` draws, about ten times a second, what the
:class:`~rtq.meter.chain_meter.ChainMeter` of the running chain measures at one point of
the chain (a quantizer, by default the last one, or end to end), and turns key presses
into calls of the session's control API (:class:`rtq.live.session.LiveSession`).

The screen shows

* the preset, the last requantize stage's bits, dither and shaping, the mode (normal,
  bypass, error solo), the stream's xruns and callback load (p99 and max, as a share of
  the block period);
* the figures over the momentary (~300 ms) and integrated windows: error RMS and peak,
  MSE, PSNR, SNR, A-weighted and ITU-R 468 weighted error, DC in LSB, SINAD and ENOB
  (when the input is a sine), clips, non-finite samples, and the theoretical level;
* the error spectrum (momentary) on a log frequency axis in braille dots, with the
  theoretical floor (rounding plus dither) and target (floor times ``|NTF|^2``) drawn
  alongside;
* the error histogram in LSB, the bits of the output word that toggle, and the noise
  modulation (error level against input level).

Keys (also listed by ``h``): see :data:`KEYMAP`.

Cost: the display runs on the main thread; the audio path is compiled code that never
takes the GIL.  Each frame polls the meter (which reads the taps), asks it for the
selected stage's figures only, and refreshes the integrated window at most once a
second (the momentary one every frame, backing off when it is expensive, as for the
64x-oversampled stage of ``dsd64-1bit``); the screen is one Text of pre-formatted lines.
:attr:`LiveDisplay.cost_ms` holds the main thread's CPU time per frame (``rtq live``
prints it at exit).  Measured on a 2-core machine, 120x50 terminal, 10 frames/s:
about 10-13 ms per frame for 48 kHz chains (tpdf-16, cd-16-shibata, telephone-alaw),
of which ~3 ms is the meter's poll and ~5 ms its momentary report; 43 ms for
converter-8bit-8x and 70 ms for dsd64-1bit, where the meter's poll of the 8x and 64x
stage alone takes most of it.

Without a terminal, :func:`run_json` writes one JSON line per interval instead
(:func:`json_record`).
"""
from __future__ import annotations

import contextlib
import json
import math
import signal
import sys
import threading
import time
from collections import deque

import numpy as np
from rich.console import Console
from rich.live import Live
from rich.text import Text

from ..errors import UsageError
from ..meter.chain_meter import ChainMeter, quantizer_stages, stage_label
from .keys import KeyReader

REFRESH_S = 0.1          # one frame every 100 ms: 10 Hz
KEY_POLL_S = 0.02        # keys are read every 20 ms
STATUS_S = 8.0           # how long a status message stays
MOMENTARY_DUTY = 3.0     # momentary figures: at most one refresh per 3x its cost
INTEGRATED_S = 1.0       # integrated figures: at most once a second ...
INTEGRATED_DUTY = 10.0   # ... and at most one refresh per 10x its cost
END = "end"              # the end-to-end meter, as a stage choice

# (keys, action, description) -- the help overlay and handle_key use this table.
KEYMAP: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("+", "=", "up"), "bits_up", "one bit more (last requantize stage)"),
    (("-", "_", "down"), "bits_down", "one bit less"),
    (("d",), "dither", "next dither: none, rpdf, tpdf, tpdf-hp, gaussian"),
    (("s",), "shaping", "next noise shaping that exists at this rate"),
    (("b",), "bypass", "bypass on/off (hear the input)"),
    (("e",), "solo", "error solo on/off (hear the error, +40 dB, clipped at full scale)"),
    (("n", "right"), "next_preset", "next shipped preset"),
    (("p", "left"), "prev_preset", "previous shipped preset"),
    (("tab", "m"), "next_stage", "meter the next stage (quantizers, then end to end)"),
    (("shift-tab", "M"), "prev_stage", "meter the previous stage"),
    (("c",), "channel", "next channel for the graphs"),
    (("r",), "reset", "reset the meter (both windows)"),
    (("h", "?"), "help", "show/hide this help (esc hides it)"),
    (("q",), "quit", "quit (Ctrl-C works too)"),
)
ACTIONS = {key: action for keys, action, _ in KEYMAP for key in keys}
KEY_NAMES = {"up": "↑", "down": "↓", "left": "←", "right": "→", "tab": "tab",
             "shift-tab": "shift-tab"}


class Quit(Exception):
    """Raised from a tick to end the session (the ``q`` key, SIGTERM)."""


# ---------------------------------------------------------------------------------------
# Meter side: which stage, when to ask the meter for figures


class MeterView:
    """The meter of the session's current chain and the stage being looked at.

    ``stage``: None for the default (the last quantizer), an int for quantizer number
    ``stage`` (0-based, chain order), or :data:`END` for end to end.  The choice survives
    chain changes (clamped to the new chain's quantizers).
    """

    def __init__(self, session, stage: int | str | None = None):
        self.session = session
        self.choice = stage
        self.meter: ChainMeter | None = None
        self.labels: list[str] = []
        self.rates: list[float] = []
        self.momentary: dict | None = None
        self.integrated: dict | None = None
        self._due = {"momentary": 0.0, "integrated": 0.0}
        self.report_ms = {"momentary": 0.0, "integrated": 0.0}
        self.meters_created = 0
        self._static: dict = {}
        self.sync()

    # -- which chain, which stage ----------------------------------------------------
    def sync(self) -> bool:
        """Follow the session's chain; True when a new meter was created."""
        chain = self.session.chain
        if self.meter is not None and self.meter.chain is chain:
            return False
        self.meter = ChainMeter(chain, from_start=True, windowed=True)
        self.meters_created += 1
        found = quantizer_stages(chain.stages)
        self.labels = [stage_label(s) for _, s in found]
        self.rates = [float(s.info.sample_rate) for _, s in found]
        self._static = {}
        self.invalidate()
        return True

    @property
    def count(self) -> int:
        """Quantizers in the chain (the end-to-end view comes after them)."""
        return len(self.labels)

    @property
    def position(self) -> int:
        """0 ... count-1 for a quantizer, count for end to end."""
        if self.choice == END or not self.count:
            return self.count
        if self.choice is None:
            return self.count - 1
        return min(int(self.choice), self.count - 1)

    @property
    def stage(self) -> int | None:
        """Quantizer number for :meth:`ChainMeter.stage_report` (None: end to end)."""
        p = self.position
        return None if p == self.count else p

    @property
    def label(self) -> str:
        p = self.position
        return "end to end" if p == self.count else self.labels[p]

    @property
    def rate(self) -> float:
        p = self.position
        return float(self.session.samplerate) if p == self.count else self.rates[p]

    def cycle(self, step: int = 1) -> str:
        p = (self.position + step) % (self.count + 1)
        self.choice = END if p == self.count else p
        self.invalidate()
        return self.label

    # -- figures ---------------------------------------------------------------------
    def invalidate(self) -> None:
        self.momentary = self.integrated = None
        self._due = {"momentary": 0.0, "integrated": 0.0}

    def reset(self) -> None:
        self.meter.reset()
        self.invalidate()

    def update(self, windows=("momentary", "integrated"), now: float | None = None,
               force: bool = False) -> None:
        """Poll the taps, then refresh the windows' figures that are due (all with
        ``force``)."""
        self.sync()
        self.meter.poll()
        now = time.monotonic() if now is None else now
        for window in windows:
            if not force and getattr(self, window) is not None and now < self._due[window]:
                continue
            t = time.perf_counter()
            report = self.meter.stage_report(self.stage, window)
            setattr(self, window, report)
            cost = time.perf_counter() - t
            self.report_ms[window] = cost * 1e3
            if not report["frames"]:
                self._due[window] = now             # nothing yet: ask again next frame
            elif window == "momentary":
                self._due[window] = now + MOMENTARY_DUTY * cost
            else:
                self._due[window] = now + max(INTEGRATED_S, INTEGRATED_DUTY * cost)

    def static(self, key, make):
        """A value that only changes with the meter or stage (cached)."""
        key = (self.position, *key)
        if key not in self._static:
            self._static[key] = make()
        return self._static[key]


# ---------------------------------------------------------------------------------------
# Drawing helpers: braille canvas, axes, bars

_BRAILLE = np.array([[0x01, 0x08], [0x02, 0x10], [0x04, 0x20], [0x40, 0x80]], np.uint8)
_BLOCKS = " ▁▂▃▄▅▆▇█"
_DB_STEPS = (1.0, 2.0, 5.0, 10.0, 15.0, 20.0)


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


def _array(values) -> np.ndarray:
    """A list with None (no power) as a float array with NaN."""
    return np.array([np.nan if v is None else v for v in values], float) if values is not None else None


def _log_columns(freq: np.ndarray, columns: int, f_lo: float, f_hi: float):
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


def _freq_axis(width: int, f_lo: float, f_hi: float) -> tuple[str, str]:
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


def _db_power_sum(values) -> float | None:
    """``10 log10`` of the summed power of a list of per-bin levels in dB."""
    if values is None:
        return None
    a = _array(values)
    total = np.nansum(10.0 ** (a / 10.0))
    return float(10.0 * np.log10(total)) if total > 0 else None


# ---------------------------------------------------------------------------------------
# The display


_FIGURES = (
    # label, report key, unit, format
    ("error RMS", "rms_dbfs", "dBFS", "{:.1f}"),
    ("error peak", "peak_dbfs", "dBFS", "{:.1f}"),
    ("MSE", "mse", "", "{:.3g}"),
    ("PSNR", "psnr_db", "dB", "{:.1f}"),
    ("SNR", "snr_db", "dB", "{:.1f}"),
    ("A-weighted", "a_weighted_dbfs", "dBFS", "{:.1f}"),
    ("ITU-R 468", "itu468_dbfs", "dBFS", "{:.1f}"),
    ("DC", "dc_lsb", "LSB", "{:+.3f}"),
    ("SINAD", "sinad_db", "dB", "{:.1f}"),
    ("ENOB", "enob", "bits", "{:.2f}"),
    ("clips", "clips", "", "{:d}"),
    ("non-finite", "nonfinite", "", "{:d}"),
)
_CURVES = (("error PSD", "bold yellow"), ("target", "cyan"), ("floor", "magenta"))
_MODES = {"normal": ("NORMAL", "bold green"), "bypass": ("BYPASS", "bold yellow"),
          "solo": ("ERROR SOLO", "bold red")}


def _fmt(fmt: str, value) -> str:
    if value is None:
        return "-"
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def _pct(v) -> str:
    return "-" if v is None else f"{v * 100:.1f} %"


class LiveDisplay:
    """The screen of ``rtq live`` for one :class:`~rtq.live.session.LiveSession`.

    Parameters
    ----------
    session : LiveSession
    stage : int, "end" or None
        The stage to meter first: quantizer number (0-based, chain order), :data:`END`
        or None for the last quantizer.
    console : rich Console, optional
        Where to draw (its size sets the layout).
    keys : object with ``read() -> list[str]``, optional
        Key source; default none (:func:`run_screen` passes a :class:`KeyReader`).
    """

    def __init__(self, session, stage: int | str | None = None, console: Console | None = None,
                 keys=None):
        self.session = session
        self.console = console or Console()
        self.keys = keys
        self.view = MeterView(session, stage)
        self.channel = 0
        self.show_help = False
        self.status: tuple[str, str, float] | None = None
        self.live: Live | None = None
        self.frames = 0
        self.costs: deque[float] = deque(maxlen=100)     # main-thread CPU seconds per frame
        self._started = self._last_frame = time.monotonic()
        self._next_frame = 0.0
        self._dirty = True
        self._y_range: tuple[float, float] | None = None
        self._height = 0

    # -- keys --------------------------------------------------------------------------
    def say(self, message: str, style: str = "green") -> None:
        """Show a one-line status message."""
        self.status = (message.splitlines()[0] if message else "", style, time.monotonic())
        self._dirty = True

    def handle_key(self, key: str) -> None:
        """Act on one key (a name from :func:`rtq.ui.keys.decode_keys`).

        Raises :class:`Quit` for ``q``.  An error from the session's controls becomes a
        status message.
        """
        action = ACTIONS.get(key)
        if key == "esc" and self.show_help:
            action = "help"
        if action is None:
            return
        self._dirty = True
        if action == "quit":
            raise Quit()
        if action == "help":
            self.show_help = not self.show_help
            return
        if action in ("next_stage", "prev_stage"):
            label = self.view.cycle(1 if action == "next_stage" else -1)
            self.say(f"metering {label}")
            return
        if action == "channel":
            self.channel = (self.channel + 1) % self.session.channels
            self.say(f"graphs show channel {self.channel + 1}")
            return
        if action == "reset":
            self.view.reset()
            self.say("meter reset")
            return
        s = self.session
        try:
            if action == "bits_up":
                self.say(f"bits: {s.change_bits(+1)}")
            elif action == "bits_down":
                self.say(f"bits: {s.change_bits(-1)}")
            elif action == "dither":
                self.say(f"dither: {s.cycle_dither()}")
            elif action == "shaping":
                self.say(f"shaping: {s.cycle_shaping()}")
            elif action == "bypass":
                self.say("bypass on" if s.toggle_bypass() else "bypass off")
            elif action == "solo":
                self.say(f"error solo on ({s.solo_gain_db:+g} dB)" if s.toggle_solo() else "error solo off")
            elif action == "next_preset":
                self.say(f"preset: {s.next_preset(1)}")
            elif action == "prev_preset":
                self.say(f"preset: {s.next_preset(-1)}")
        except Exception as err:          # a control that cannot be honoured: one line
            text = str(err) or type(err).__name__
            self.say(f"{action.replace('_', ' ')}: {text}", "bold red")
        self.view.sync()

    # -- the loop ----------------------------------------------------------------------
    def tick(self, session=None) -> None:
        """Read keys; draw a frame when one is due (every :data:`REFRESH_S`)."""
        if self.keys is not None:
            for key in self.keys.read():
                self.handle_key(key)
        now = time.monotonic()
        if self._dirty or now >= self._next_frame:
            self.frame(now)

    def frame(self, now: float | None = None) -> None:
        """Update the figures and draw (to the Live display, if attached)."""
        now = time.monotonic() if now is None else now
        t0 = time.thread_time()
        self.view.update(now=now)
        renderable = self.render()
        if self.live is not None:
            self.live.update(renderable, refresh=True)
        self.costs.append(time.thread_time() - t0)
        self.frames += 1
        if self.frames == 1:
            self._started = now
        self._last_frame = now
        self._dirty = False
        if now >= self._next_frame:         # on schedule (a key's extra frame leaves it be)
            nxt = self._next_frame + REFRESH_S
            self._next_frame = nxt if nxt > now else now + REFRESH_S

    @property
    def cost_ms(self) -> float | None:
        """Median main-thread CPU time per frame over the last 100 frames, in ms."""
        return float(np.median(self.costs)) * 1e3 if self.costs else None

    @property
    def rate_hz(self) -> float:
        """Frames drawn per second so far."""
        elapsed = self._last_frame - self._started
        return (self.frames - 1) / elapsed if self.frames > 1 and elapsed > 0 else 0.0

    # -- drawing -----------------------------------------------------------------------
    def render(self) -> Text:
        """The whole screen as one rich Text (lines, no wrapping: cheap to draw)."""
        width = self.console.width
        height = self.console.height
        lines = self._header()
        left, right = self._figures(), self._side()
        if width >= 110:
            left_w = max(t.cell_len for t in left)
            for k in range(max(len(left), len(right))):
                line = left[k].copy() if k < len(left) else Text()
                line.pad_right(left_w - line.cell_len + 2)
                if k < len(right):
                    line.append_text(right[k])
                lines.append(line)
        else:
            lines += left + right
        if self.show_help:
            lines += self._help()
        else:
            rows = int(min(16, max(5, height - len(lines) - 6)))
            lines += self._spectrum(max(40, width - 9), rows)
        lines.append(self._footer())
        screen = Text("\n", no_wrap=True, overflow="crop").join(lines)
        screen.no_wrap, screen.overflow = True, "crop"
        return screen

    def _header(self) -> list[Text]:
        s = self.session
        v = self.view
        text = Text()
        text.append("rtq live ", style="bold")
        text.append(s.spec.name, style="bold cyan")
        text.append(f"  {s.samplerate:g} Hz · {s.channels} ch · input {s.source.describe()}"
                    f" · {time.monotonic() - (s.started or time.monotonic()):5.1f} s\n")
        q = s.quantizer()
        if q is not None:
            shaping = q.shaping.get("name") or q.shaping.get("kind", "none")
            if q.shaping.get("kind") == "design":
                shaping = f"ntf order {q.shaping.get('order')}"
            text.append(f"bits {q.bits}", style="bold")
            text.append(f" · dither {q.dither} · shaping {shaping}")
        else:
            text.append("no requantize stage")
        mode, style = _MODES.get(s.engine.mode, (s.engine.mode, "bold"))
        text.append(" · mode ")
        text.append(mode, style=style)
        text.append("\n")
        text.append(f"meter {v.position + 1}/{v.count + 1}: ", style="bold")
        text.append(v.label, style="cyan")
        text.append(f" at {v.rate:g} Hz")
        if s.channels > 1:
            text.append(f" · graphs ch {self.channel + 1}")
        dropped = (v.momentary or {}).get("dropped_frames")
        if dropped:
            text.append(f" · dropped {dropped} frames", style="yellow")
        text.append("\n")
        st = s.stream.stats()
        period = (s.blocksize or getattr(s.stream, "blocksize", 0) or 0) / s.samplerate
        text.append("xruns ")
        text.append(str(st.xruns), style="bold red" if st.xruns else "bold green")
        text.append(f" · callback load p99 {_pct(st.load_p99)} max {_pct(st.load_max)}"
                    + (f" of {period * 1e3:.3g} ms" if period else " of the block period"))
        cost = self.cost_ms
        if cost is not None:
            text.append(f" · display {cost:.1f} ms/frame", style="dim")
        return list(text.split("\n"))

    def _channels(self) -> list[int]:
        return list(range(self.session.channels)) if self.session.channels <= 2 else [self.channel]

    def _figures(self) -> list[Text]:
        mom, integ = self.view.momentary, self.view.integrated
        chans = self._channels()
        if self.session.channels == 1:
            names = [""]
        elif len(chans) == 2:
            names = ["L", "R"]
        else:
            names = [f"ch{c + 1}" for c in chans]
        head = f"{'figure':<12}{'unit':<5}" + "".join(
            f"{f'{w[:3]}. {n}'.rstrip():>11}" for w in ("momentary", "integrated") for n in names)
        lines = [Text(head, style="bold"), Text("─" * len(head), style="dim")]

        def row(label, unit, key_values):
            line = Text(f"{label:<12}")
            line.append(f"{unit:<5}", style="dim")
            line.append("".join(f"{v:>11}" for v in key_values))
            lines.append(line)

        for label, key, unit, fmt in _FIGURES:
            cells = []
            for report in (mom, integ):
                values = None if report is None else report.get(key)
                cells += [_fmt(fmt, None if values is None else values[c]) for c in chans]
            row(label, unit, cells)
        cells = []
        for report in (mom, integ):
            spread = None if report is None else report["noise_modulation"]["spread_db"]
            cells += [_fmt("{:.1f}", None if spread is None else spread[c]) for c in chans]
        row("noise mod.", "dB", cells)
        if mom is not None and mom["spectrum"]["floor_dbfs"] is not None:
            floor = self.view.static(("floor",), lambda: _db_power_sum(mom["spectrum"]["floor_dbfs"]))
            target = self.view.static(("target",), lambda: _db_power_sum(mom["spectrum"]["target_dbfs"]))
            lines.append(Text(f"theory: floor {_fmt('{:.1f}', floor)} dBFS, "
                              f"target {_fmt('{:.1f}', target)} dBFS", style="dim"))
        return lines

    def _side(self) -> list[Text]:
        mom, integ = self.view.momentary, self.view.integrated
        c = self.channel
        lines: list = []
        # bits in use
        title = Text("bits in use ", style="bold")
        title.append("MSB … LSB, █ toggles", style="dim")
        lines.append(title)
        for name, report in (("mom.", mom), ("int.", integ)):
            line = Text(f"{name} ")
            bits = None if report is None else report.get("bits_in_use")
            if bits is None:
                line.append("-" if report is None else "no grid (companding or no quantizer)", style="dim")
            else:
                row = bits[c]
                for on in reversed(row):
                    line.append("█" if on else "·", style="green" if on else "dim")
                line.append(f" {sum(row)}/{len(row)}")
                off = report.get("off_grid")
                if off and off[c]:
                    line.append(f" off-grid {off[c]}", style="yellow")
            lines.append(line)
        # noise modulation
        title = Text("noise modulation ", style="bold")
        title.append("int., error per 6 dB band of input", style="dim")
        lines.append(title)
        lines.append(self._noise_modulation(integ, c))
        # histogram
        title = Text("error histogram ", style="bold")
        title.append("mom., in LSB", style="dim")
        lines.append(title)
        lines.extend(self._histogram(mom, c))
        return lines

    def _noise_modulation(self, report, c) -> Text:
        line = Text("-96 dBFS ")
        if report is None:
            line.append("-")
            return line
        nm = report["noise_modulation"]
        levels = _array(nm["error_dbfs"][c])
        valid = levels[np.isfinite(levels)]
        if not len(valid):
            line.append("(not enough samples)", style="dim")
            return line
        mid = (valid.max() + valid.min()) / 2
        span = max(valid.max() - valid.min(), 6.0)
        for v in levels:
            if not np.isfinite(v):
                line.append("·", style="dim")
            else:
                k = int(round((v - (mid - span / 2)) / span * 7)) + 1
                line.append(_BLOCKS[min(max(k, 1), 8)], style="cyan")
        line.append(" 0 dBFS")
        spread = nm["spread_db"][c]
        line.append(f"  spread {_fmt('{:.1f}', spread)} dB", style="bold")
        return line

    def _histogram(self, report, c, width: int = 32, height: int = 4) -> list[Text]:
        hist = None if report is None else report.get("histogram")
        if hist is None:
            return [Text("-" if report is None else "no grid", style="dim")]
        counts = np.asarray(hist["count"][c], float)
        canvas = Canvas(width, height)
        peak = counts.max()
        if peak > 0:
            levels = np.ceil(counts / peak * 4 * height).astype(int)
            xs, ys = [], []
            for x, h in enumerate(levels):
                xs.extend([x] * h)
                ys.extend(range(4 * height - h, 4 * height))
            canvas.plot(0, xs, ys)
        rows = canvas.rows(["green"])
        lo, hi = hist["lsb"][0], hist["lsb"][-1]
        span = round(hi - lo + (hist["lsb"][1] - hist["lsb"][0]))
        axis = [" "] * (width + 3)
        per_lsb = width / span
        for k in range(-(span // 2), span // 2 + 1):
            label = f"{k:+d}" if k else "0"
            x = int(round((k + span / 2) * per_lsb)) - (len(label) // 2)
            x = max(0, min(x, len(axis) - len(label)))
            axis[x:x + len(label)] = label
        rows.append(Text("".join(axis) + " LSB", style="dim"))
        under, over = hist["under"][c], hist["over"][c]
        if under or over:
            rows.append(Text(f"beyond ±{span // 2} LSB: {under} below, {over} above", style="yellow"))
        return rows

    def _spectrum(self, width: int, height: int) -> list[Text]:
        mom = self.view.momentary
        title = Text("error spectrum ", style="bold")
        title.append("(mom., dBFS per bin, log frequency) ", style="dim")
        for name, style in _CURVES:
            title.append("━ ", style=style)
            title.append(name + "  ")
        if mom is None or mom["spectrum"]["psd_dbfs"] is None:
            return [title, Text("waiting for a full spectrum segment ...", style="dim")]
        spec = mom["spectrum"]
        label_w = 7
        columns = 2 * width
        freq = self.view.static(("freq",), lambda: np.asarray(spec["freq_hz"], float))
        f_lo = max(20.0, float(freq[1]))
        f_hi = float(freq[-1])
        col, nearest = self.view.static(("cols", width), lambda: _log_columns(freq, columns, f_lo, f_hi))
        curves = [log_bin_powers(_array(spec["psd_dbfs"][self.channel]), col, nearest, columns)]
        for key in ("target_dbfs", "floor_dbfs"):
            curves.append(None if spec[key] is None else self.view.static(
                (key, width), lambda k=key: log_bin_powers(_array(spec[k]), col, nearest, columns)))
        top, step = self._scale([c for c in curves if c is not None], height)
        canvas = Canvas(width, height, 3)
        for layer, curve in enumerate(curves):
            if curve is not None:
                # Row r is centred on top - r * step (its dots 4r ... 4r + 3).
                canvas.line(layer, np.clip((top - curve) / step * 4 + 1.5, 0, 4 * height - 1))
        rows = canvas.rows([style for _, style in _CURVES])
        out = [title]
        for r, row in enumerate(rows):
            if r % 2 == 0:
                line = Text(f"{top - r * step:>{label_w - 2}g} ┤", style="dim")
            else:
                line = Text(" " * (label_w - 1) + "│", style="dim")
            line.append_text(row)
            out.append(line)
        ticks, labels = _freq_axis(width, f_lo, f_hi)
        out.append(Text(" " * (label_w - 1) + "└" + ticks, style="dim"))
        out.append(Text(" " * label_w + labels + "  Hz", style="dim"))
        return out

    def _scale(self, curves, height: int) -> tuple[float, float]:
        """``(top, step)``: the level of the first row and dB per row, the smallest of
        :data:`_DB_STEPS` that fits every finite value (beyond 20 dB per row the extremes
        are clipped to the edges), kept while the values still fit."""
        values = np.concatenate([c[np.isfinite(c)] for c in curves]) if curves else np.zeros(0)
        if not len(values):
            return self._y_range or (-100.0, 5.0)
        lo, hi = float(values.min()), float(values.max())
        need = max(hi - lo + 4.0, 20.0)
        rows = max(height - 1, 1)
        step = next((s for s in _DB_STEPS if s * rows >= need), _DB_STEPS[-1])
        if self._y_range is not None and self._height == height:
            top, old = self._y_range
            if top - rows * old <= lo - 1 and hi + 1 <= top and old <= 2 * step:
                return self._y_range
        top = math.ceil((hi + 2.0) / step) * step
        bottom = top - rows * step
        if lo - 2.0 > bottom and need < rows * step:   # centre the spare room
            top += math.floor((lo - 2.0 - bottom) / 2 / step) * step
        self._y_range, self._height = (float(top), float(step)), height
        return self._y_range

    def _help(self) -> list[Text]:
        lines = [Text("keys", style="bold")]
        for keys, _, description in KEYMAP:
            names = "  ".join(KEY_NAMES.get(k, k) for k in keys)
            line = Text(f"  {names:<16}", style="bold cyan")
            line.append(description)
            lines.append(line)
        lines.append(Text("  (h, ? or esc closes this help)", style="dim"))
        return lines

    def _footer(self) -> Text:
        text = Text()
        if self.status is not None:
            message, style, at = self.status
            if time.monotonic() - at < STATUS_S:
                text.append(message, style=style)
                text.append("  ")
        text.append("+/- bits  d dither  s shaping  b bypass  e solo  n/p preset  m/tab stage  "
                    "c channel  r reset  h help  q quit", style="dim")
        if self.keys is not None and not getattr(self.keys, "active", True):
            text.append("  (keys off: stdin is not a terminal)", style="yellow")
        return text


# ---------------------------------------------------------------------------------------
# Running


def resolve_stage(chain, number: int | None) -> int | str | None:
    """``--meter-stage N`` (1 = first quantizer of ``chain``, 0 = end to end) as a
    stage choice; a :class:`~rtq.errors.UsageError` if the chain has no such quantizer."""
    if number is None:
        return None
    if number == 0:
        return END
    count = len(chain.quantizers())
    if not 1 <= number <= count:
        raise UsageError(f"--meter-stage {number}: the chain has {count} quantizer"
                         f"{'s' if count != 1 else ''} (use 1 to {count}, or 0 for end to end)")
    return number - 1


class _SigtermAsQuit:
    """While active, SIGTERM ends the session like ``q`` (the terminal is restored)."""

    def __enter__(self):
        self._old = None
        if threading.current_thread() is threading.main_thread():
            def handler(signum, frame):
                raise Quit()
            self._old = signal.signal(signal.SIGTERM, handler)
        return self

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)


def run_screen(session, duration: float | None = None, *, stage=None, console: Console | None = None,
               keys=None) -> LiveDisplay:
    """Run ``session`` with the screen until ``duration``, ``q``, Ctrl-C or SIGTERM; the
    terminal is restored in every case (also when an exception escapes).  Returns the
    display (for its :attr:`~LiveDisplay.cost_ms`)."""
    console = console or Console()
    reader = KeyReader() if keys is None else keys
    display = LiveDisplay(session, stage, console, reader)
    with contextlib.ExitStack() as stack:
        stack.enter_context(_SigtermAsQuit())
        if hasattr(reader, "__enter__"):
            stack.enter_context(reader)         # cbreak mode, restored on the way out
        live = stack.enter_context(Live(console=console, screen=True, auto_refresh=False))
        display.live = live
        try:
            session.run(duration, tick=display.tick, interval=KEY_POLL_S)
        except (Quit, KeyboardInterrupt):
            pass
        finally:
            display.live = None
    return display


def _finite(value):
    """Replace non-finite floats by None, recursively (strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


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
    a = _array(db_values)
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


def json_record(session, view: MeterView, started: float) -> dict:
    """One JSON line: the selected stage's momentary report (its level history left
    out, its spectrum in 1/3-octave bands) and the stream's health."""
    st = session.stream.stats()
    q = session.quantizer()
    report = dict(view.momentary or {})
    report.pop("level_history", None)       # the whole run's history: not momentary
    if report.get("spectrum"):
        report["spectrum"] = compact_spectrum(report["spectrum"], view)
    return _finite({
        "time_s": round(time.monotonic() - started, 3),
        "preset": session.spec.name,
        "mode": session.engine.mode,
        "bits": None if q is None else q.bits,
        "dither": None if q is None else q.dither,
        "shaping": None if q is None else (q.shaping.get("name") or q.shaping.get("kind")),
        "stage": view.label,
        "xruns": st.xruns,
        "callback_load": {"p50": st.load_p50, "p99": st.load_p99, "max": st.load_max},
        "meter": report,
    })


def run_json(session, duration: float | None = None, *, stage=None, out=None,
             interval: float = REFRESH_S) -> MeterView:
    """Run ``session`` writing one JSON line per ``interval`` to ``out`` (stdout):
    see :func:`json_record`.  Ends quietly when the reader closes the pipe."""
    out = sys.stdout if out is None else out
    view = MeterView(session, stage)
    started = time.monotonic()

    def tick(_session):
        view.update(windows=("momentary",), force=True)
        try:
            out.write(json.dumps(json_record(session, view, started), allow_nan=False) + "\n")
            out.flush()
        except BrokenPipeError:
            raise Quit() from None

    with _SigtermAsQuit():
        try:
            session.run(duration, tick=tick, interval=interval)
        except (Quit, KeyboardInterrupt):
            pass
    return view
