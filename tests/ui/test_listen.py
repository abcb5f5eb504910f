"""The terminal of ``rtq listen`` (rtq.ui.listen) over the real drivers, on
SilentComparison (what is asked to play, no audio): keys become driver calls, the
screen shows no score, practice tells answers."""
from __future__ import annotations

import json
import re
import sys
import time

import pytest

from rtq.listen import AbxTest, MushraTest, verify
from rtq.ui.listen import ListenScreen, run_listen_screen
from rtq.ui.quit import Quit

from listening import SilentComparison, make_test
from .helpers import recording_console
from .test_screen import needs_tmux


@pytest.fixture(autouse=True)
def private_state(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


class Keys:
    """Keys for run_listen_screen: one batch per read."""

    def __init__(self, *batches):
        self.batches = [list(batch) for batch in batches]

    def read(self):
        return self.batches.pop(0) if self.batches else ["q"]


def text_of(screen) -> str:
    screen.console.print(screen.render())
    return screen.console.export_text()


def abx(tmp_path, **options):
    kind = options.pop("kind", "abx")
    test = make_test(tmp_path, kind=kind, trials=options.pop("trials", 4))
    return AbxTest(test, listener="ann", log=tmp_path / "a.jsonl", comparison=SilentComparison, **options)


def test_abx_keys_play_and_answer(tmp_path):
    with abx(tmp_path) as driver:
        screen = ListenScreen(driver, recording_console())
        for key, selected in (("a", "A"), ("b", "B"), ("x", driver.assignments[0]), ("s", None)):
            screen.handle_key(key)
            assert driver.comparison.selected == selected
        screen.handle_key("x")
        text = text_of(screen)
        assert "trial 1 of 4" in text and "playing X" in text and "[ X ]" in text
        assert "1 X is A  2 X is B" in text
        screen.handle_key("y")                                   # not an ABXY test
        assert "Y is not played in an ABX test" in text_of(screen)
        screen.handle_key("2")
        assert driver.trial == 1 and "answered trial 1: X is B" in text_of(screen)
        for _ in range(3):
            screen.handle_key("1")
        assert driver.done
        for word in ("correct", "p =", "score", "right", "wrong"):
            assert word not in text_of(screen)                   # no running score, ever


def test_abxy_and_practice(tmp_path):
    with abx(tmp_path, kind="abxy", practice=True) as driver:
        screen = ListenScreen(driver, recording_console())
        screen.handle_key("y")
        assert driver.comparison.selected == ("B" if driver.assignments[0] == "A" else "A")
        truth = driver.assignments[0]
        screen.handle_key("1")
        verdict = "right" if truth == "A" else "wrong"
        assert f"practice: X was {truth}: {verdict}" in text_of(screen)
        assert "ABXY practice" in text_of(screen)


def test_pause_and_loop_points(tmp_path):
    with abx(tmp_path) as driver:
        screen = ListenScreen(driver, recording_console())
        screen.handle_key(" ")
        assert not driver.comparison.running and "paused" in text_of(screen)
        screen.handle_key(" ")
        assert driver.comparison.running
        driver.comparison.position = 0.3
        screen.handle_key("[")
        assert driver.comparison.loop == (0.3, 1.0) and "loop 0.30 to 1.00 s" in text_of(screen)
        driver.comparison.position = 0.5
        screen.handle_key("]")                                   # 0.2 s: too short
        assert driver.comparison.loop == (0.3, 1.0)
        assert "at least 0.5 s apart" in text_of(screen)
        screen.handle_key("\\")
        assert driver.comparison.loop == (0.0, 1.0)


def test_help_lists_every_key(tmp_path):
    with abx(tmp_path) as driver:
        screen = ListenScreen(driver, recording_console())
        screen.handle_key("h")
        text = text_of(screen)
        for description in ("play A", "answer: X is B", "loop start at the playhead", "quit: the log keeps"):
            assert description in text
        screen.handle_key("esc")
        assert "loop start at the playhead" not in text_of(screen)
        with pytest.raises(Quit):
            screen.handle_key("q")


def test_mushra_keys_select_rate_and_go_on(tmp_path):
    test = make_test(tmp_path, kind="mushra", items=2)
    with MushraTest(test, listener="bob", log=tmp_path / "m.jsonl", comparison=SilentComparison) as driver:
        screen = ListenScreen(driver, recording_console())
        screen.handle_key("r")
        assert driver.comparison.selected == "reference"
        screen.handle_key("3")
        assert driver.comparison.selected == driver.assignments[0][2] and screen.selected == 2
        screen.handle_key("up")
        screen.handle_key("up")
        screen.handle_key("left")
        assert driver.ratings[2] == 41                           # 50, +1, -10
        screen.handle_key("tab")
        assert screen.selected == 3
        for key in ("=", "8", "7", "enter"):
            screen.handle_key(key)
        assert driver.ratings[3] == 87
        screen.handle_key("enter")                               # two not rated yet
        assert driver.item == 0 and "rate every condition before going on (not rated: 1, 2)" in text_of(screen)
        text = text_of(screen)
        assert "item 1 of 2" in text and "2 conditions to rate" in text and " 87" in text
        for key in ("1", "down", "2", "=", "1", "0", "0", "enter", "shift-tab"):
            screen.handle_key(key)
        assert driver.ratings == [50, 100, 41, 87] and screen.selected == 0      # first press: 50
        screen.handle_key("enter")
        assert driver.item == 1 and "item 2 of 2" in text_of(screen)


def test_run_listen_screen_ends_with_the_test(tmp_path):
    with abx(tmp_path, trials=2) as driver:
        screen = run_listen_screen(driver, console=recording_console(), keys=Keys(["a", "x"], ["1"], [], ["2"]))
        assert driver.done and screen.driver is driver
    final = json.loads((tmp_path / "a.jsonl").read_text().splitlines()[-1])
    assert final["record"] == "final"


def test_run_listen_screen_quits_leaving_the_log_resumable(tmp_path):
    with abx(tmp_path, trials=3) as driver:
        run_listen_screen(driver, console=recording_console(), keys=Keys(["1"], ["q"]))
        assert not driver.done and driver.trial == 1
    records = [json.loads(line)["record"] for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert records == ["header", "item", "trial"]


# ---------------------------------------------------------------------------------------
# end to end in a terminal (tmux), on the JACK dummy server

def write_abx_test(tmp_path, trials=3):
    import numpy as np
    import soundfile as sf

    sf.write(tmp_path / "music.wav", 0.1 * np.random.default_rng(2).standard_normal((72000, 2)), 48000,
             subtype="FLOAT")
    path = tmp_path / "abx.yaml"
    path.write_text(f"name: tmux-abx\ntype: abx\ntrials: {trials}\nitems: [{{input: music.wav, loop: [0.25, 1.25]}}]\n"
                    "conditions: {A: tpdf-16, B: original}\n")
    return path


def listen_pane(tmp_path, arguments):
    from .test_screen import Pane

    state = tmp_path / "state"
    return Pane(f"XDG_STATE_HOME={state} {sys.executable} -m rtq listen {arguments}", tmp_path)


@needs_tmux
@pytest.mark.audio
def test_tmux_a_whole_abx_test(tmp_path):
    """`rtq listen` on a terminal: keys play A, X, the help; three answers end the test,
    which prints its result and where the log is, and the terminal is restored."""
    test, log = write_abx_test(tmp_path), tmp_path / "ann.jsonl"
    pane = listen_pane(tmp_path, f"{test} --listener ann --log {log}")
    try:
        text = pane.wait_for(lambda t: "trial 1 of 3" in t, timeout=120)
        assert "rtq listen · tmux-abx · ABX · listener ann" in text and "silence" in text
        pane.keys("a")
        pane.wait_for(lambda t: "playing A" in t)
        pane.keys("x")
        pane.wait_for(lambda t: "playing X" in t)
        pane.keys("h")
        pane.wait_for(lambda t: "answer: X is A" in t)
        pane.keys("Escape", "1")
        pane.wait_for(lambda t: "trial 2 of 3" in t and "answered trial 1" in t)
        pane.keys("2")
        pane.wait_for(lambda t: "trial 3 of 3" in t)
        pane.keys("1")
        text = pane.wait_for(lambda t: "exit=" in t, timeout=30)
        assert "exit=0" in text
        assert re.search(r"\d/3 correct, p = [\d.]+", text), text
        assert f"log: {log} (rtq listen verify {log} checks it)" in text.replace("\n", "")
        assert re.search(r"^commitment [0-9a-f]{64} ", text, re.MULTILINE)
        before = (tmp_path / "stty-before").read_text()
        pane.wait_for(lambda t: (tmp_path / "stty-after").exists())
        time.sleep(0.2)
        assert (tmp_path / "stty-after").read_text() == before
    finally:
        pane.close()
    verified = verify(log)
    commitment = verified.header["commitment"]
    assert verified.results["trials"] == 3 and verified.summary.endswith(commitment)


@needs_tmux
@pytest.mark.audio
def test_tmux_quit_then_resume(tmp_path):
    """'q' after one answer: the log holds it, the command says how to go on (exit 130);
    --resume continues at trial 2 with the same assignments, and the log verifies."""
    test, log = write_abx_test(tmp_path), tmp_path / "bob.jsonl"
    pane = listen_pane(tmp_path, f"{test} --listener bob --log {log}")
    try:
        pane.wait_for(lambda t: "trial 1 of 3" in t, timeout=120)
        pane.keys("2")
        pane.wait_for(lambda t: "trial 2 of 3" in t)
        pane.keys("q")
        text = pane.wait_for(lambda t: "exit=" in t, timeout=30)
        assert "exit=130" in text
        assert f"rtq listen {test} --resume {log} continues the test" in text.replace("\n", "")
    finally:
        pane.close()
    assert [json.loads(line)["record"] for line in log.read_text().splitlines()] == ["header", "item", "trial"]
    pane = listen_pane(tmp_path, f"{test} --resume {log}")
    try:
        pane.wait_for(lambda t: "trial 2 of 3" in t and "listener bob" in t, timeout=120)
        pane.keys("1")
        pane.wait_for(lambda t: "trial 3 of 3" in t)
        pane.keys("1")
        text = pane.wait_for(lambda t: "exit=" in t, timeout=30)
        assert "exit=0" in text
    finally:
        pane.close()
    records = [json.loads(line)["record"] for line in log.read_text().splitlines()]
    assert records == ["header", "item", "trial", "resume", "item", "trial", "trial", "final"]
    assert verify(log).results["trials"] == 3
