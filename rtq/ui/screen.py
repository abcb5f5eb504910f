"""The live error meter on the terminal: what ``rtq live`` shows, and its keys.

:class:`LiveDisplay` draws, about ten times a second, what the
:class:`~rtq.meter.chain_meter.ChainMeter` of the running chain measures at one point of
the chain (a quantizer, by default the last one, or end to end; see
:class:`~rtq.ui.meterview.MeterView`), and turns key presses into calls of the session's
control API (:class:`rtq.live.session.LiveSession`).

The screen shows

* the preset, the last requantize (or blockcompand) stage's bits, dither and shaping, the mode (normal,
  bypass, error solo), the stream's xruns and callback load (p99 and max, as a share of
  the block period);
* the figures over the momentary (~300 ms) and integrated windows: error RMS and peak,
  MSE, PSNR, SNR, A-weighted and ITU-R 468 weighted error, DC in LSB, SINAD and ENOB
  (when the input is a sine), clips, non-finite samples, loop resets and samples over a
  sigma-delta loop's maximum stable amplitude, and the theoretical level;
* the error spectrum (momentary) on a log frequency axis in braille dots
  (:mod:`rtq.ui.canvas`), with the theoretical floor (rounding plus dither) and target
  (floor times ``|NTF|^2``) drawn alongside;
* the error histogram in LSB, the bits of the output word that toggle (for a Lloyd-Max
  quantizer: the share of the output at each of its levels; for a block compander also
  the share of blocks coded at each scale), and the noise modulation (error level
  against input level).

Keys (also listed by ``h``): see :data:`KEYMAP`; :mod:`rtq.ui.keys` reads them.

Cost: the display runs on the main thread; the audio path is compiled code that never
takes the GIL.  Each frame polls the meter, asks it for the selected stage's figures
only (:class:`~rtq.ui.meterview.MeterView` decides when), and draws one Text of
pre-formatted lines.  :attr:`LiveDisplay.cost_ms` holds the main thread's CPU time per
frame (``rtq live`` prints it at exit; BENCHMARKS.md has the figures).
"""
from __future__ import annotations

import contextlib
import math
import time
from collections import deque

import numpy as np
from rich.console import Console
from rich.live import Live
from rich.text import Text

from ..dsp.requantize import DITHER_TYPES
from ..live.engine import SOLO_GAIN_DB
from .canvas import Canvas, freq_axis, log_bin_powers, log_columns
from .figures import block_period_s, db_power_sum, figure_rows, fmt, pct, shaping_text
from .keys import KeyReader
from .meterview import REFRESH_S, MeterView, levels
from .quit import Quit, SigtermAsQuit
from .units import rate_text

KEY_POLL_S = 0.02        # keys are read every 20 ms
STATUS_S = 8.0           # how long a status message stays

# (keys, action, description) -- the help overlay and handle_key use this table.
KEYMAP: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("+", "=", "up"), "bits_up", "one bit more (last requantize or blockcompand stage)"),
    (("-", "_", "down"), "bits_down", "one bit less"),
    (("d",), "dither", "next dither: " + ", ".join(DITHER_TYPES)),
    (("s",), "shaping", "next noise shaping that exists at this rate"),
    (("b",), "bypass", "bypass on/off (hear the input)"),
    (("e",), "solo", f"error solo on/off (hear the error, +{SOLO_GAIN_DB:g} dB, clipped at full scale)"),
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

_BLOCKS = " ▁▂▃▄▅▆▇█"
# The levels-in-use row's width: more levels are shown summed in this many columns.
LEVEL_COLUMNS = 48
_DB_STEPS = (1.0, 2.0, 5.0, 10.0, 15.0, 20.0)


_CURVES = (("error PSD", "bold yellow"), ("target", "cyan"), ("floor", "magenta"))
_MODES = {"normal": ("NORMAL", "bold green"), "bypass": ("BYPASS", "bold yellow"),
          "solo": ("ERROR SOLO", "bold red")}


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
            text.append(f"bits {q.bits}", style="bold")
            text.append(f" · dither {q.dither} · shaping {shaping_text(q.shaping)}")
        else:
            text.append("no requantize or blockcompand stage")
        mode, style = _MODES.get(s.engine.mode, (s.engine.mode, "bold"))
        text.append(" · mode ")
        text.append(mode, style=style)
        text.append("\n")
        text.append(f"meter {v.position + 1}/{v.count + 1}: ", style="bold")
        text.append(v.label, style="cyan")
        text.append(f" at {rate_text(v.rate)}")
        if s.channels > 1:
            text.append(f" · graphs ch {self.channel + 1}")
        dropped = (v.momentary or {}).get("dropped_frames")
        if dropped:
            text.append(f" · meter capture gaps: {dropped} frames not metered", style="yellow")
        text.append("\n")
        st = s.stream.stats()
        period = block_period_s(s)
        text.append("xruns ")
        text.append(str(st.xruns), style="bold red" if st.xruns else "bold green")
        text.append(f" · callback load p99 {pct(st.load_p99)} max {pct(st.load_max)}"
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

        for label, unit, cells in figure_rows((mom, integ), chans):
            row(label, unit, cells)
        if mom is not None and mom["spectrum"]["floor_dbfs"] is not None:
            floor = self.view.static(("floor",), lambda: db_power_sum(mom["spectrum"]["floor_dbfs"]))
            target = self.view.static(("target",), lambda: db_power_sum(mom["spectrum"]["target_dbfs"]))
            lines.append(Text(f"theory: floor {fmt('{:.1f}', floor)} dBFS, "
                              f"target {fmt('{:.1f}', target)} dBFS", style="dim"))
        return lines

    def _side(self) -> list[Text]:
        mom, integ = self.view.momentary, self.view.integrated
        c = self.channel
        lines: list = []
        # bits in use, or a non-uniform quantizer's levels in use; a block compander's scales
        if any(report is not None and report.get("level_histogram") for report in (mom, integ)):
            title = Text("levels in use ", style="bold")
            title.append("lowest … highest, height: share", style="dim")
            lines.append(title)
            for name, report in (("mom.", mom), ("int.", integ)):
                lines.append(_levels_in_use(name, report, c))
        else:
            title = Text("bits in use ", style="bold")
            title.append("MSB … LSB, █ toggles", style="dim")
            lines.append(title)
            for name, report in (("mom.", mom), ("int.", integ)):
                lines.append(_bits_in_use(name, report, c))
        scales = None if integ is None else integ.get("scale_factors")
        if scales is not None:
            lines.append(_scale_factors(scales, c))
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
        error = levels(nm["error_dbfs"][c])
        valid = error[np.isfinite(error)]
        if not len(valid):
            line.append("(not enough samples)", style="dim")
            return line
        mid = (valid.max() + valid.min()) / 2
        span = max(valid.max() - valid.min(), 6.0)
        for v in error:
            if not np.isfinite(v):
                line.append("·", style="dim")
            else:
                k = int(round((v - (mid - span / 2)) / span * 7)) + 1
                line.append(_BLOCKS[min(max(k, 1), 8)], style="cyan")
        line.append(" 0 dBFS")
        spread = nm["spread_db"][c]
        line.append(f"  spread {fmt('{:.1f}', spread)} dB", style="bold")
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
        col, nearest = self.view.static(("cols", width), lambda: log_columns(freq, columns, f_lo, f_hi))
        curves = [log_bin_powers(levels(spec["psd_dbfs"][self.channel]), col, nearest, columns)]
        for key in ("target_dbfs", "floor_dbfs"):
            curves.append(None if spec[key] is None else self.view.static(
                (key, width), lambda k=key: log_bin_powers(levels(spec[k]), col, nearest, columns)))
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
        ticks, labels = freq_axis(width, f_lo, f_hi)
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


def run_screen(session, duration: float | None = None, *, stage=None, console: Console | None = None,
               keys=None) -> LiveDisplay:
    """Run ``session`` with the screen until ``duration``, ``q``, Ctrl-C or SIGTERM; the
    terminal is restored in every case (also when an exception escapes).  Returns the
    display (for its :attr:`~LiveDisplay.cost_ms`)."""
    console = console or Console()
    reader = KeyReader() if keys is None else keys
    display = LiveDisplay(session, stage, console, reader)
    with contextlib.ExitStack() as stack:
        stack.enter_context(SigtermAsQuit())
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


def _bits_in_use(name: str, report, c: int) -> Text:
    line = Text(f"{name} ")
    bits = None if report is None else report.get("bits_in_use")
    if bits is None:
        line.append("-" if report is None else "no grid (companding or no quantizer)", style="dim")
        return line
    row = bits[c]
    for on in reversed(row):
        line.append("█" if on else "·", style="green" if on else "dim")
    line.append(f" {sum(row)}/{len(row)}")
    off = report.get("off_grid")
    if off and off[c]:
        line.append(f" off-grid {off[c]}", style="yellow")
    return line


def _levels_in_use(name: str, report, c: int) -> Text:
    """One bar per level (or per group of levels, beyond :data:`LEVEL_COLUMNS`), its
    height the level's share of the output; ``·`` for a level never used."""
    line = Text(f"{name} ")
    hist = None if report is None else report.get("level_histogram")
    if hist is None:
        line.append("-", style="dim")
        return line
    counts = np.asarray(hist["count"][c], float)
    groups = np.array_split(counts, min(len(counts), LEVEL_COLUMNS))
    sums = np.array([g.sum() for g in groups])
    peak = sums.max()
    for v in sums:
        if v == 0:
            line.append("·", style="dim")
        else:
            line.append(_BLOCKS[max(1, int(math.ceil(v / peak * 8)))], style="green")
    line.append(f" {hist['in_use'][c]}/{len(counts)}")
    off = report.get("off_grid")
    if off and off[c]:
        line.append(f" off-levels {off[c]}", style="yellow")
    return line


def _scale_factors(scales: dict, c: int) -> Text:
    """A block compander's blocks per scale (integrated), as shares, coarsest first."""
    blocks = scales["blocks"][c]
    total = sum(blocks)
    line = Text("scales int. ", style="bold")
    line.append("step 2^-k: ", style="dim")
    line.append("  ".join(f"{-round(math.log2(step))}:{100 * n / total:.0f}%" if total else
                          f"{-round(math.log2(step))}:-" for step, n in zip(scales["steps"], blocks)))
    return line
