"""Which stage of the running chain the live UI meters, and when it asks for figures.

:class:`MeterView` follows the session's chain (a new :class:`~rtq.meter.chain_meter.ChainMeter`
for every chain the session switches to) and the stage being looked at, and refreshes the
figures of the two windows at a rate that keeps the main thread's share bounded: the
momentary window every frame, backing off when a report is expensive (as for the
64x-oversampled stage of ``dsd64-1bit``), the integrated one at most once a second.  The
screen (:mod:`rtq.ui.screen`) and the JSON lines (:mod:`rtq.ui.jsonlines`) both read it;
nothing here draws, so JSON mode never loads the terminal library.
"""
from __future__ import annotations

import time

import numpy as np

from ..meter.chain_meter import ChainMeter

REFRESH_S = 0.1          # one frame (or JSON line) every 100 ms: 10 Hz
MOMENTARY_DUTY = 3.0     # momentary figures: at most one refresh per 3x its cost
INTEGRATED_S = 1.0       # integrated figures: at most once a second ...
INTEGRATED_DUTY = 10.0   # ... and at most one refresh per 10x its cost
END = "end"              # the end-to-end meter, as a stage choice


def levels(values) -> np.ndarray | None:
    """A report's list of levels in dB (None: no power) as a float array with NaN."""
    return np.array([np.nan if v is None else v for v in values], float) if values is not None else None


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
        found = chain.quantizer_info.values()
        self.labels = [info.stage.label() for info in found]
        self.rates = [float(info.sample_rate) for info in found]
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
