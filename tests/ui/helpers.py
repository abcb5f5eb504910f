"""Helpers for the live UI tests: sessions on a tone, a recording console, reading the
screen's figures, scripted keys."""
from __future__ import annotations

import io
import os
import re
import time
from pathlib import Path

import numpy as np
from rich.console import Console

ROOT = Path(__file__).resolve().parents[2]
TONE = "tone:1000:-20"             # --input of the command; make_session plays the same
TPDF_16_DBFS = -6.02 * 16          # -96.33 dBFS: TPDF dither at 16 bits (theory.md)
TPDF_15_DBFS = -6.02 * 15


def make_session(preset="tpdf-16", source=None, **kw):
    from rtq.live.session import LiveSession
    from rtq.live.sources import Source

    return LiveSession(preset, source=source or Source.tone(1000, -20), samplerate=48000,
                       notice=lambda line: None, **kw)


def nan_laced(seconds: float = 10.0, rate: int = 48000):
    """A stereo -20 dBFS 1 kHz tone with a burst of non-finite samples in its first 0.1 s
    (NaN, +Inf and -Inf on both channels, 53 in all) and none after: a session shorter
    than ``seconds`` meets each once.  Returns (samples, count)."""
    t = np.arange(int(seconds * rate)) / rate
    x = np.repeat((0.1 * np.sin(2 * np.pi * 1000 * t))[:, None], 2, axis=1)
    x[1000:1030, 0] = np.nan
    x[2000:2010, 1] = np.inf
    x[3000:3013:3, 0] = -np.inf
    x[4000:4008, 1] = np.nan
    return x, int(np.count_nonzero(~np.isfinite(x)))


def recording_console(height=50):
    return Console(record=True, width=120, height=height, file=io.StringIO(), color_system=None)


def screen_text(display) -> str:
    console = display.console
    console.print(display.render())
    return console.export_text()


def figure_row(text: str, label: str) -> list[str]:
    """The cells after the label and unit of one row of the figures table."""
    for line in text.splitlines():
        if line.startswith(label):
            cells = line[:62].split()
            return cells[len(label.split()):]
    raise AssertionError(f"no row {label!r} in\n{text}")


def numbers(cells) -> list[float]:
    return [float(c) for c in cells if re.fullmatch(r"[-+]?\d+(\.\d+)?(e[-+]?\d+)?", c)]


class ScriptedKeys:
    """A key source for LiveDisplay.tick: ``(seconds after start, key)`` pairs."""

    def __init__(self, script):
        self.script = list(script)
        self.start = None
        self.active = True

    def read(self):
        now = time.monotonic()
        if self.start is None:
            self.start = now
        keys = []
        while self.script and now - self.start >= self.script[0][0]:
            keys.append(self.script.pop(0)[1])
        return keys


def run_for(session, display, seconds, until=None):
    """Run the session with ``display`` ticking; stop after ``seconds`` or once
    ``until(display)`` holds (checked every tick)."""
    class Done(Exception):
        pass

    def tick(s):
        display.tick(s)
        if until is not None and until(display):
            raise Done()

    try:
        session.run(seconds, tick=tick, interval=0.02)
    except Done:
        pass


def settled(display, frames=2048 * 7):
    """The momentary window is full (7 blocks of 2048 frames at 48 kHz)."""
    m, i = display.view.momentary, display.view.integrated
    return m is not None and m["frames"] >= frames and i is not None and i["frames"] >= frames


def rtq_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env
