"""A Comparison on the real JACK dummy server, its output captured by a JACK client in
another process: a whole session of scripted selections loses and repeats no sample.

Outside the fades every captured sample equals the selected condition's offline
rendering of the same input (the loop region, again and again), aligned and times its
level-matching gain, bit for bit; each dip is exactly 240 frames down and 240 up (5 ms
at 48 kHz) with the raised-cosine gains; crossfades and cuts as declared.  A run during
which JACK reported an xrun is repeated (the VM may drop a block anywhere in the graph);
a failure without one is final.
"""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from rtq.chain import Chain
from rtq.listen.comparison import Comparison
from rtq.listen.level import linear

from live.expected import FADE, RATE, expected_output, music
from live.test_engine import Capture

LOOP = (0.25, 1.25)


def conditions():
    return {"A": Chain.from_preset("cd-16-shibata"), "B": Chain.from_preset("converter-8bit-8x"), "original": None}


def capture_session(server, tmp_path, switch, script, attempt):
    """Play ``script`` [(seconds to wait, condition)] through a Comparison of the file;
    returns the capture, the JACK xruns seen, the comparison's history and gains."""
    path = tmp_path / "item.wav"
    if not path.exists():
        sf.write(path, music(3 * RATE // 2), RATE, subtype="FLOAT")
    with Capture(server, 10.0, tmp_path / f"capture-{attempt}.npy") as capture:
        comparison = Comparison(conditions(), str(path), blocksize=64, switch=switch, loop=LOOP)
        try:
            capture.wait_connected()
            for wait, name in script:
                comparison.select(name)
                comparison.start()
                comparison.engine.stream.wait(wait)
            history = comparison.engine.history()
            xruns = comparison.engine.stream.stats().xruns
        finally:
            comparison.close()
        captured, info = capture.finish()
    return captured, xruns + len(info["xruns"]), history, comparison


@pytest.mark.audio
@pytest.mark.parametrize("switch", ["dip", "crossfade", "cut"])
def test_a_captured_session_loses_and_repeats_no_sample(jack_server, tmp_path, switch):
    script = [(0.35, "A"), (0.35, "B"), (0.35, "original"), (0.35, "A"), (0.3, "B")]
    for attempt in range(4):
        captured, xruns, history, comparison = capture_session(jack_server, tmp_path, switch, script, attempt)
        try:
            check(captured, history, comparison, switch)
            return
        except AssertionError:
            if not xruns or attempt == 3:
                raise


def check(captured, history, comparison, switch):
    x = music(3 * RATE // 2)
    start, end = (round(s * RATE) for s in LOOP)
    d = comparison.latency
    assert d == 105 and [slot for _, slot in history] == [0, 1, 2, 0, 1]
    loud = np.flatnonzero(np.any(captured != 0, axis=1))
    offset = int(loud[0]) - d                 # capture frame of stream frame 0
    out = captured[offset:].astype(np.float64)
    bottom = {"dip": FADE, "crossfade": 0, "cut": 0}[switch]
    changes = [(frame - bottom, slot) for frame, slot in history[1:]]
    last = changes[-1][0] + 2 * FADE + 4800   # compare up to 0.1 s after the last change
    out = out[:last]
    assert len(out) == last, "the capture ended too early"
    jumps = [d + k * (end - start) for k in range(1, last // (end - start) + 1)]
    assert jumps, "the session did not cross a loop jump"
    gains = [linear(comparison.gains_db[name]) for name in comparison.names]
    chains = [chain or Chain([]) for chain in conditions().values()]
    want, heard, full = expected_output(chains, x, start, end, last, d, changes, jumps, switch, gains)
    assert np.array_equal(out[full], heard[full].astype(np.float32)), "a sample differs from the rendering"
    assert np.abs(out - want).max() <= 2e-7
    if switch == "dip":
        for q, _ in changes:
            window = slice(q - 10, q + 2 * FADE + 10)
            differs = np.flatnonzero(np.any(out[window] != heard[window].astype(np.float32), axis=1)) + q - 10
            assert (differs[0], differs[-1], len(differs)) == (q, q + 2 * FADE - 1, 2 * FADE)
