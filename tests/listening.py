"""A Comparison-like object without audio, and test files built in Python, for the tests
of the drivers, the log and the statistics (no sound needed there)."""
from __future__ import annotations

import hashlib

import numpy as np
import soundfile as sf

from rtq.listen.testfile import Condition, Item, ListeningTest
from rtq.presets import load_preset


class SilentComparison:
    """What the drivers use of :class:`rtq.listen.comparison.Comparison`, without a stream:
    ``frames`` grows by :meth:`listen` (the test's stand-in for time passing)."""

    instances: list["SilentComparison"] = []

    def __init__(self, conditions, source, *, samplerate=None, blocksize=0, device=None, switch="dip",
                 level_match=True, reference=None, loop=None, channels=2, stream=None, seed=None):
        self.conditions = conditions
        self.names = tuple(conditions)
        self.source = source
        self.seed = seed
        self.samplerate = samplerate or 48000
        self.blocksize = blocksize
        self.switch = switch
        self.reference = reference
        self.loop = loop or (0.0, 1.0)
        self.selected = None
        self.position = 0.0
        self.gains_db = {name: 0.0 for name in conditions}
        self.loudness_lufs = {name: -23.0 for name in conditions}
        self.latency = 0
        self.callback_cost = 0.01
        self.frames = 0
        self.running = False
        self.closed = False
        SilentComparison.instances.append(self)

    def stream_info(self) -> dict:
        return {"devices": None, "blocksize": self.blocksize, "output_latency_s": 0.0}

    def select(self, name):
        assert name is None or name in self.names, name
        self.selected = name

    def listen(self, seconds: float) -> None:
        self.frames += int(round(seconds * self.samplerate))

    def start(self):
        self.running = True

    def pause(self):
        self.running = False

    def close(self):
        self.closed = True


def write_input(path, seconds=2.0, rate=48000):
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, np.stack([0.1 * np.sin(2 * np.pi * 1000 * t)] * 2, axis=1), rate, subtype="PCM_24")
    return str(path)


def make_test(tmp_path, kind="abx", trials=16, sequential=False, items=1, conditions=None, text=None):
    """A ListeningTest built directly (as load_test would return it)."""
    inputs = tuple(Item(write_input(tmp_path / f"in{i}.wav"), (0.0, 1.0)) for i in range(items))
    if kind == "mushra":
        named = conditions or {"tpdf": "tpdf-16", "lofi": "lofi-6"}
        conds = (Condition("reference", "original", None, "reference"),) + tuple(
            Condition(name, source, load_preset(source)) for name, source in named.items()) + (
            Condition("lowpass", "undithered-8", load_preset("undithered-8"), "anchor"),)
    else:
        conds = (Condition("A", "tpdf-16", load_preset("tpdf-16")), Condition("B", "original", None))
    text = text or f"name: t\ntype: {kind}\n"
    path = tmp_path / "test.yaml"
    path.write_text(text)
    return ListeningTest(name="t", type=kind, items=inputs, conditions=conds, trials=trials, seed=7,
                         sequential=sequential, path=str(path), text=text,
                         sha256=hashlib.sha256(text.encode()).hexdigest())
