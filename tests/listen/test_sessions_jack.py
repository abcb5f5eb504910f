"""Whole sessions on the real JACK dummy server: a scripted listener drives AbxTest (and
MushraTest) over real Comparisons; for ABX a JACK client in another process captures
the output.

X is what the log's final record reveals, and the audio captured while the listener
played X (and A, and B) is that condition's output, bit for bit: the conditions are
memoryless (the input itself, and 8-bit rounding without dither), so each captured
stretch must equal the condition applied to consecutive samples of the looped region,
wherever the playhead stood (it waits during the silences between trials).  Edges of
each stretch (the 5 ms dips, a block of control latency) and the dips around loop jumps
are left out.  A run during which JACK reported an xrun is repeated.
"""
from __future__ import annotations

import hashlib
import json
import random
import time

import numpy as np
import pytest
import soundfile as sf

from live.test_engine import Capture
from rtq.chain import Chain
from rtq.listen import AbxTest, verify
from rtq.listen.testfile import Condition, Item, ListeningTest
from rtq.presets import load_preset

RATE = 48000
LOOP = (0.25, 1.25)
FADE = 240                      # BS.1534-3's 5 ms dip at 48 kHz
EDGE = 1500                     # frames left out at each end of a stretch
RUN = 32                        # frames that must match in a row to place a stretch in the loop
SCRIPT = (("A", 0.15), ("B", 0.15), ("X", 0.3))
TRIALS = 6



TEST = f"""\
name: jack-abx
type: abx
trials: {TRIALS}
level_match: false
items:
  - input: item.wav
    loop: [{LOOP[0]}, {LOOP[1]}]
conditions:
  A: original
  B: undithered-8
"""


def abx_test(tmp_path) -> ListeningTest:
    """The test as load_test reads :data:`TEST`: A the input itself, B 8-bit rounding
    without dither, no level matching (both are then memoryless and exact)."""
    path = tmp_path / "jack-abx.yaml"
    path.write_text(TEST)
    return ListeningTest(name="jack-abx", type="abx", items=(Item(str(tmp_path / "item.wav"), LOOP),),
                         conditions=(Condition("A", "original", None),
                                     Condition("B", "undithered-8", load_preset("undithered-8"))),
                         trials=TRIALS, level_match=False, path=str(path), text=TEST,
                         sha256=hashlib.sha256(TEST.encode()).hexdigest())


def item(frames: int) -> np.ndarray:
    """Two tones and noise, stereo, float32-exact: every frame differs from its neighbours."""
    rng = np.random.default_rng(11)
    t = np.arange(frames)[:, None] / RATE
    x = 0.3 * np.sin(2 * np.pi * np.array([441.0, 1234.5]) * t) + 0.05 * rng.standard_normal((frames, 2))
    return x.astype(np.float32)


def run_session(server, tmp_path, attempt):
    """The scripted session; returns the capture, the xruns seen, the log and the
    stream-frame windows [(trial, label, first, end)] of what was played."""
    log = tmp_path / f"session-{attempt}.jsonl"
    windows = []
    rng = random.Random(attempt)
    with Capture(server, 12.0, tmp_path / f"capture-{attempt}.npy") as capture:
        with AbxTest(abx_test(tmp_path), listener="script", log=log, blocksize=64) as abx:
            capture.wait_connected()
            while not abx.done:
                for label, seconds in SCRIPT:
                    abx.play(label)
                    first = abx.comparison.frames
                    time.sleep(seconds)
                    windows.append((abx.trial, label, first, abx.comparison.frames))
                abx.answer(rng.choice("AB"))
            played = abx.comparison.played
            xruns = abx.comparison.engine.stream.stats().xruns
        captured, info = capture.finish()
    return captured, xruns + len(info["xruns"]), log, windows, played


def place(stretch: np.ndarray, rendered: np.ndarray) -> int | None:
    """Where in ``rendered`` (the condition over the loop region) ``stretch`` starts: the
    loop index of its first frame, found from the first run of RUN frames that matches
    (within the first frames: a loop jump's dip may cover the very first)."""
    for k in range(0, min(2 * FADE + RUN, len(stretch) - RUN)):
        candidates = np.flatnonzero(np.all(rendered == stretch[k], axis=1))
        for p in candidates:
            index = (p + np.arange(RUN)) % len(rendered)
            if np.array_equal(rendered[index], stretch[k:k + RUN]):
                return int(p - k) % len(rendered)
    return None


def matches(stretch: np.ndarray, rendered: np.ndarray) -> float:
    """The share of ``stretch``'s frames (dips around loop jumps left out) equal to
    consecutive frames of ``rendered``; 0 if it cannot be placed."""
    start = place(stretch, rendered)
    if start is None:
        return 0.0
    index = start + np.arange(len(stretch))
    near_jump = np.minimum(index % len(rendered), len(rendered) - index % len(rendered)) <= FADE
    equal = np.all(rendered[index % len(rendered)] == stretch, axis=1)
    return float(np.mean(equal[~near_jump]))


@pytest.mark.audio
def test_x_is_what_the_log_reveals_and_what_was_heard(jack_server, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    x = item(3 * RATE // 2)
    sf.write(tmp_path / "item.wav", x, RATE, subtype="FLOAT")
    region = x[round(LOOP[0] * RATE):round(LOOP[1] * RATE)]
    rendered = {"A": region, "B": Chain.from_preset("undithered-8")(region.astype(np.float64), RATE)
                .astype(np.float32)}
    assert np.mean(np.all(rendered["A"] == rendered["B"], axis=1)) < 0.01      # the two differ
    for attempt in range(4):
        captured, xruns, log, windows, played = run_session(jack_server, tmp_path, attempt)
        try:
            check(captured, log, windows, played, rendered)
            return
        except AssertionError:
            if not xruns or attempt == 3:
                raise


def check(captured, log, windows, played, rendered):
    assert verify(log).results["trials"] == TRIALS
    final = json.loads(log.read_text().splitlines()[-1])
    truth = final["assignments"]
    # The capture's frame of stream frame 0: the first sound heard is the first selection.
    loud = np.flatnonzero(np.any(captured != 0, axis=1))
    offset = int(loud[0]) - played[0][1]
    for trial, label, first, end in windows:
        condition = truth[trial] if label == "X" else label
        other = "B" if condition == "A" else "A"
        stretch = captured[offset + first + EDGE:offset + end - EDGE]
        assert len(stretch) > 2000, "the capture ended early"
        heard = matches(stretch, rendered[condition])
        assert heard == 1.0, f"trial {trial + 1}, {label} (= {condition}): {heard:.1%} of the frames are it"
        assert matches(stretch, rendered[other]) < 0.05


@pytest.mark.audio
def test_a_mushra_session_over_real_comparisons(jack_server, tmp_path, monkeypatch):
    """A scripted listener through a whole MUSHRA test read from a file (two items, the
    default anchors, level matching on): each slot plays the condition the final record
    reveals for it, the open reference plays the reference, and the log verifies."""
    from rtq.listen import MushraTest, load_test

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    sf.write(tmp_path / "item.wav", item(RATE), RATE, subtype="FLOAT")
    path = tmp_path / "mushra.yaml"
    path.write_text("name: jack-mushra\ntype: mushra\nitems: [{input: item.wav}, {input: item.wav, loop: [0.2, 0.8]}]\n"
                    "conditions: {shibata: cd-16-shibata, lofi: lofi-6}\n")
    heard = []
    with MushraTest(load_test(path), listener="script", log=tmp_path / "m.jsonl", blocksize=64) as test:
        while not test.done:
            test.play_reference()
            assert test.comparison.selected == "reference"
            assert test.comparison.gains_db["reference"] == 0.0
            order = []
            for slot in range(test.slots):
                test.play(slot)
                order.append(test.comparison.selected)
                time.sleep(0.05)
                test.rate(slot, 100 if order[-1] == "reference" else 50)
            heard.append(order)
            test.next()
    verified = verify(tmp_path / "m.jsonl")
    assert heard == verified.assignments
    assert sorted(heard[0]) == ["lofi", "lowpass-3500", "lowpass-7000", "reference", "shibata"]
    reference = next(c for c in verified.results["conditions"] if c["name"] == "reference")
    assert reference["mean"] == 100 and reference["items"] == 2
    # Each item's record says what played: JACK's device through PortAudio, output only
    # (a file plays), the block size asked for, the latency JACK reported.
    records = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    items = [r for r in records if r["record"] == "item"]
    assert len(items) == 2
    for record in items:
        assert record["samplerate"] == RATE and record["blocksize"] == 64
        assert record["devices"]["input"] is None
        assert "JACK Audio Connection Kit" in record["devices"]["output"], record["devices"]
        assert 0 < record["output_latency_s"] < 0.1
