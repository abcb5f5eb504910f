"""Which stage the live UI meters (rtq.ui.meterview), and the meter's per-stage report it reads."""
from __future__ import annotations

import json

import numpy as np
import pytest

from rtq.commands.live import resolve_stage
from rtq.ui.meterview import END, MeterView

from .helpers import make_session


def test_chain_meter_stage_report_matches_the_full_report():
    from rtq.chain import Chain
    from rtq.meter.chain_meter import ChainMeter
    from rtq.presets import load_preset

    chain = Chain.from_spec(load_preset("cd-16-shibata"), seed=1)
    chain.prepare(48000, 2, 1024, taps=True)
    meter = ChainMeter(chain)
    t = np.arange(48000) / 48000
    x = np.stack([0.1 * np.sin(2 * np.pi * 1000 * t)] * 2, axis=1)
    for k in range(0, len(x), 1024):
        chain.process(x[k:k + 1024])
        meter.poll()
    full = meter.report("integrated")
    mine = meter.stage_report(0, "integrated")
    assert json.dumps(mine, sort_keys=True) == json.dumps(full["stages"][0], sort_keys=True)
    e2e = meter.stage_report(None, "momentary")
    assert json.dumps(e2e, sort_keys=True) == json.dumps(meter.report("momentary")["end_to_end"],
                                                         sort_keys=True)


def test_meter_stage_choice():
    session = make_session("converter-8bit-8x")
    try:
        assert resolve_stage(session.chain, None) is None
        assert resolve_stage(session.chain, 0) == END
        assert resolve_stage(session.chain, 1) == 0
        from rtq.errors import UsageError

        with pytest.raises(UsageError, match="1 quantizer"):
            resolve_stage(session.chain, 2)
        view = MeterView(session, END)
        assert view.label == "end to end" and view.rate == 48000
        view = MeterView(session, None)
        assert view.label.startswith("requantize 8-bit") and view.rate == 8 * 48000
    finally:
        session.close()
