"""The live meter's page (``rtq live PRESET --web``): what the terminal screen shows,
updated at 20 Hz, and the controls, each a call of the same
:class:`~rtq.live.session.LiveSession` method the screen's keys end in.

Every update is built on the main thread from one :func:`rtq.ui.jsonlines.json_record`
(carried whole as ``line``: with ``--json`` the same record is the line written, so the
page and the lines agree at every moment) plus what the screen shows beyond it (the
integrated window, the spectrum per column, the header), formatted by the screen's own
code.  Control messages wait in the :class:`~rtq.web.hub.Hub` and run between updates,
on that thread, as keys do on the terminal.
"""
from __future__ import annotations

import time

from rtq.dsp.requantize import DITHER_TYPES
from rtq.dsp.shaping import SHAPING_NAMES
from rtq.errors import RtqError
from rtq.presets import shipped_presets
from rtq.schema import Boolean, Choice, Fields, Integer
from rtq.stages.limits import MAX_STAGES
from rtq.stages.requantize import BITS_RANGE
from rtq.ui.figures import block_period_s, pct, shaping_text
from rtq.ui.screen import KEYMAP
from rtq.ui.meterview import END
from rtq.ui.units import rate_text

from .hub import Hub
from .panels import panel, table

REFRESH_S = 0.05            # 20 updates a second


class LiveSite:
    """The meter page of one :class:`~rtq.live.session.LiveSession`; :meth:`sink` is a
    :func:`~rtq.ui.jsonlines.run_records` sink."""

    page = "live"

    def __init__(self, session):
        self.session = session
        self.hub = Hub()
        self.view = None
        self.presets = {spec.name: spec for spec in shipped_presets()}
        self._actions = {
            "set_bits": Fields({"value": Integer(*BITS_RANGE)}),
            "set_dither": Fields({"value": Choice(DITHER_TYPES)}),
            "set_shaping": Fields({"value": Choice(SHAPING_NAMES)}),
            "set_bypass": Fields({"on": Boolean()}),
            "set_solo": Fields({"on": Boolean()}),
            "switch_preset": Fields({"name": Choice(tuple(self.presets))}),
            "set_stage": Fields({"stage": Integer(0, MAX_STAGES)}),   # the chain's own count: when run
            "reset": Fields({}),
        }
        self.hub.publish("init", {
            "page": "live", "dithers": list(DITHER_TYPES), "shapings": list(SHAPING_NAMES),
            "presets": list(self.presets), "bits": list(BITS_RANGE), "refresh_s": REFRESH_S,
            "keys": [[list(keys), action, text] for keys, action, text in KEYMAP]})

    def actions(self) -> dict:
        return self._actions

    # -- the main thread ---------------------------------------------------------------------

    def sink(self, record: dict, view) -> None:
        """Publish the update of ``record``, then run the control messages waiting."""
        self.view = view
        view.update(windows=("integrated",))          # at most once a second (MeterView decides)
        self.hub.publish("meter", self.update(record, view))
        self.hub.drain(self.handle)

    def update(self, record: dict, view) -> dict:
        s = self.session
        q = s.quantizer()
        period = block_period_s(s)
        mom, integ = view.momentary, view.integrated
        return {
            "line": record,
            "header": {
                "preset": s.spec.name, "samplerate": f"{s.samplerate:g} Hz", "channels": s.channels,
                "input": s.source.describe(), "seconds": round(time.monotonic() - (s.started or time.monotonic()), 1),
                "bits": None if q is None else q.bits, "dither": None if q is None else q.dither,
                "shaping": None if q is None else shaping_text(q.shaping), "mode": s.engine.mode,
                "stage": view.position, "stages": [*view.labels, "end to end"], "rate": rate_text(view.rate),
                "load": f"p99 {pct(record['callback_load']['p99'])} max {pct(record['callback_load']['max'])}"
                        + (f" of {period * 1e3:.3g} ms" if period else " of the block period"),
            },
            "table": table({"momentary": mom, "integrated": integ}, s.channels),
            "momentary": panel(mom, view.static),
            "integrated": None if integ is None else {"bits_in_use": integ.get("bits_in_use"),
                                                      "level_histogram": integ.get("level_histogram"),
                                                      "scale_factors": integ.get("scale_factors"),
                                                      "off_grid": integ.get("off_grid"),
                                                      "noise_modulation": integ.get("noise_modulation")},
        }

    def handle(self, command: dict) -> str:
        """Run one checked control message; returns the status line the screen would show."""
        s, action = self.session, command["action"]
        if action == "set_bits":
            return f"bits: {s.set_bits(command['value'])}"
        if action == "set_dither":
            return f"dither: {s.set_dither(command['value'])}"
        if action == "set_shaping":
            s.set_shaping(command["value"])
            return f"shaping: {command['value']}"
        if action == "set_bypass":
            s.set_bypass(command["on"])
            return "bypass on" if command["on"] else "bypass off"
        if action == "set_solo":
            s.set_solo(command["on"])
            return f"error solo on ({s.solo_gain_db:+g} dB)" if command["on"] else "error solo off"
        if action == "switch_preset":
            s.switch_preset(self.presets[command["name"]])
            return f"preset: {command['name']}"
        if action == "set_stage":
            view = self.view
            if not command["stage"] <= view.count:
                raise RtqError(f"set_stage: stage must be an integer from 0 to {view.count} (this chain has "
                               f"{view.count} quantizer{'s' * (view.count != 1)}; {view.count} is end to end), "
                               f"got {command['stage']}")
            view.choice = END if command["stage"] == view.count else command["stage"]
            view.invalidate()
            return f"metering {view.label}"
        if action == "reset":
            self.view.reset()
            return "meter reset"
        raise RtqError(f"no action {action!r}")
