"""The pages in a real headless Chromium (Selenium, Debian's chromium and chromedriver):
a scripted listener clicks through a whole ABX test and a MUSHRA item over the JACK
dummy server, and the logs they leave verify and hold exactly the answers clicked; the
meter page shows the figures of ``rtq live --json``'s line of the same moment; a report
in the page; every page photographed (kept under a temporary directory), on a desktop
window, at 200 % zoom and on a phone's screen."""
from __future__ import annotations

import json
import random
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from selenium.webdriver.common.action_chains import ActionChains   # the test extra (never skipped)
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from rtq.ui.figures import FIGURES, fmt

from .browser import Served, chromium, console_errors, rtq_env, screenshot, wait_until

RATE = 48000
SCREENS = {"desktop": None, "zoom-200": (640, 900, 2, False), "phone": (390, 844, 3, True)}


@pytest.fixture(scope="module")
def browser():
    driver = chromium()
    yield driver
    driver.quit()


def open_page(browser, url):
    """``url`` in the browser, its console's log starting empty (not the last page's)."""
    browser.get("about:blank")
    browser.get_log("browser")
    browser.get(url)


def text(browser, selector) -> str:
    return browser.execute_script("const e = document.querySelector(arguments[0]); return e ? e.textContent : ''",
                                  selector)


def click(browser, selector):
    browser.find_element(By.CSS_SELECTOR, selector).click()


def photograph(browser, name):
    """The page on each screen of :data:`SCREENS`: a screenshot of its size, nothing wider
    than the screen (no sideways scrolling at 200 % zoom or on a phone)."""
    for screen, metrics in SCREENS.items():
        width = browser.execute_script("return window.innerWidth")
        size = None
        if metrics:
            width, height, scale, mobile = metrics
            browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                    {"width": width, "height": height, "deviceScaleFactor": scale, "mobile": mobile})
            size = (width * scale, height * scale)
        try:
            # The override reaches the layout a moment later (on a loaded machine, after the
            # first measurement: the desktop page's width was read against the small screen).
            wait_until(lambda: browser.execute_script("return window.innerWidth") == width)
            wait_until(lambda: browser.execute_script("return document.readyState") == "complete")
            overflow = browser.execute_script("return document.documentElement.scrollWidth") - width
            assert overflow <= 0, f"{name} on {screen}: {overflow} px wider than the screen"
            screenshot(browser, f"{name}-{screen}", size)
        finally:
            if metrics:
                browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def write_item(path, seconds=3.0):
    rng = np.random.default_rng(5)
    t = np.arange(int(seconds * RATE)) / RATE
    x = 0.3 * np.sin(2 * np.pi * np.array([441.0, 1234.5]) * t[:, None]) + 0.02 * rng.standard_normal((len(t), 2))
    sf.write(path, x.astype(np.float32), RATE, subtype="FLOAT")


def verify(log):
    done = subprocess.run([sys.executable, "-m", "rtq", "listen", "verify", str(log)], env=rtq_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("ok: "), done.stdout + done.stderr
    return [json.loads(line) for line in log.read_text().splitlines()]


def watch_states(browser):
    """Keep every state message the page receives (to show none reveals anything)."""
    browser.execute_script("window.seen = []; rtq.on('state', (m) => window.seen.push(JSON.stringify(m)));")


def served_test(tmp_path, test_text, listener):
    write_item(tmp_path / "item.wav")
    (tmp_path / "test.yaml").write_text(test_text)
    log = tmp_path / f"{listener}.jsonl"
    served = Served(["listen", "test.yaml", "--web", "--listener", listener, "--log", log, "--blocksize", "64"],
                    cwd=tmp_path, env=rtq_env(XDG_STATE_HOME=str(tmp_path / "state")))
    return served, log


ABX = """\
name: web-abx
type: abx
trials: 4
level_match: false
items:
  - input: item.wav
    loop: [0.5, 2.0]
conditions:
  A: original
  B: undithered-8
"""


@pytest.mark.audio
def test_a_listener_clicks_through_an_abx_test(browser, tmp_path):
    served, log = served_test(tmp_path, ABX, "clicker")
    with served:
        open_page(browser, served.url)
        wait_until(lambda: "trial 1 of 4" in text(browser, "#progress"), 60)
        watch_states(browser)
        photograph(browser, "abx")
        # The loop region's end dragged from 2.0 s to about 1.5 s (the item lasts 3 s).
        canvas = browser.find_element(By.ID, "wave")
        width = canvas.rect["width"]
        ActionChains(browser).move_to_element_with_offset(canvas, round(width * (2.0 / 3.0 - 0.5)), 0) \
            .click_and_hold().move_by_offset(-round(width / 6), 0).release().perform()
        wait_until(lambda: "to 2.00 s" not in text(browser, "#loop"), what="the loop to move")
        dragged = json.loads(browser.execute_script("return JSON.stringify(window.seen[window.seen.length - 1])"))
        loop = json.loads(dragged)["loop"]
        assert loop[0] == 0.5 and 1.4 < loop[1] < 1.6, loop
        answers, rng = [], random.Random(3)
        for trial in range(4):
            for label in ("A", "B", "X"):
                click(browser, f"#play-{label}")
                wait_until(lambda: text(browser, "#playing") == f"playing {label}", what=f"playing {label}")
            browser.find_element(By.TAG_NAME, "body").send_keys("a")          # the terminal's key
            wait_until(lambda: text(browser, "#playing") == "playing A", what="key a")
            answer = rng.choice("AB")
            answers.append(answer)
            click(browser, f"#answer-{answer}")
            if trial < 3:
                wait_until(lambda: f"trial {trial + 2} of 4" in text(browser, "#progress"), what="the next trial")
        wait_until(lambda: browser.find_element(By.ID, "done").is_displayed(), 30, what="the end")
        results = text(browser, "#results")
        assert "/4 correct, p = " in results and str(log) in text(browser, "#log")
        photograph(browser, "abx-done")
        seen = browser.execute_script("return window.seen")
        assert console_errors(browser) == []
        assert served.wait(30) == 0
    before_end = [json.loads(s) for s in seen if not json.loads(s)["done"]]
    assert before_end and all(set(s) <= {"topic", "done", "playing", "paused", "item", "status", "loop", "file_loop",
                                          "input", "trial"} for s in before_end)
    records = verify(log)
    trials = [r for r in records if r["record"] == "trial"]
    assert [r["answer"] for r in trials] == answers
    assert trials[0]["loop"] == loop
    assert [label for label, _ in trials[0]["played"]] == ["A", "B", "X", "A"]
    final = records[-1]
    correct = sum(a == x for a, x in zip(answers, final["assignments"]))
    assert f"{correct}/4 correct" in results and any(f"{correct}/4 correct" in line for line in served.lines)


@pytest.mark.audio
def test_an_abxy_page_has_y_and_takes_the_keys(browser, tmp_path):
    """ABXY: a Y button (the one X is not), the terminal's keys (y, 1, 2) answering; the
    log holds what was played and answered."""
    served, log = served_test(tmp_path, ABX.replace("type: abx", "type: abxy").replace("trials: 4", "trials: 2"),
                              "keys")
    with served:
        open_page(browser, served.url)
        wait_until(lambda: "trial 1 of 2" in text(browser, "#progress"), 60)
        assert [b.text for b in browser.find_elements(By.CSS_SELECTOR, "#abx-play button")] == ["A", "B", "X", "Y"]
        click(browser, "#play-Y")
        wait_until(lambda: text(browser, "#playing") == "playing Y", what="playing Y")
        body = browser.find_element(By.TAG_NAME, "body")
        body.send_keys("x")
        wait_until(lambda: text(browser, "#playing") == "playing X", what="key x")
        body.send_keys("2")                                            # answer "X is B"
        wait_until(lambda: "trial 2 of 2" in text(browser, "#progress"), what="the next trial")
        body.send_keys("y")
        wait_until(lambda: text(browser, "#playing") == "playing Y", what="key y")
        click(browser, "#answer-A")
        wait_until(lambda: browser.find_element(By.ID, "done").is_displayed(), 30, what="the end")
        assert console_errors(browser) == []
        assert served.wait(30) == 0
    trials = [r for r in verify(log) if r["record"] == "trial"]
    assert [r["answer"] for r in trials] == ["B", "A"]
    assert [[label for label, _ in r["played"]] for r in trials] == [["Y", "X"], ["Y"]]


MUSHRA = """\
name: web-mushra
type: mushra
level_match: false
items: [{input: item.wav, loop: [0.5, 2.5]}]
conditions: {tpdf: tpdf-16, lofi: lofi-6}
"""


def set_slider(browser, slot, rating):
    """Rate with the keyboard on the slider, as a listener can: Home (0), Page Up (+10),
    arrow up (+1)."""
    slider = browser.find_element(By.ID, f"rate-{slot}")
    browser.execute_script("arguments[0].focus()", slider)
    slider.send_keys(Keys.HOME + Keys.PAGE_UP * (rating // 10) + Keys.ARROW_UP * (rating % 10))


@pytest.mark.audio
def test_a_listener_rates_a_mushra_item(browser, tmp_path):
    served, log = served_test(tmp_path, MUSHRA, "rater")
    ratings = [87, 35, 100, 12, 64]
    with served:
        open_page(browser, served.url)
        wait_until(lambda: "item 1 of 1" in text(browser, "#progress"), 60)
        watch_states(browser)
        assert len(browser.find_elements(By.CSS_SELECTOR, "input.vslider")) == 5
        click(browser, "#reference")
        wait_until(lambda: text(browser, "#playing") == "playing reference", what="the reference")
        for slot, rating in enumerate(ratings):
            assert not browser.find_element(By.ID, "next").is_enabled()
            click(browser, f"#play-{slot}")
            wait_until(lambda: text(browser, "#playing") == f"playing {slot + 1}", what=f"slot {slot + 1}")
            set_slider(browser, slot, rating)
            wait_until(lambda: text(browser, f"#value-{slot}") == str(rating), what=f"rating {rating}")
        wait_until(lambda: browser.find_element(By.ID, "next").is_enabled(), what="next to be enabled")
        browser.execute_script("rtq.send('rate', {slot: 0, rating: 101})")          # refused, changes nothing
        wait_until(lambda: "rate: rating must be" in text(browser, "#status"), what="the refusal")
        last = json.loads(browser.execute_script("return window.seen[window.seen.length - 1]"))
        assert last["ratings"] == ratings and last["complete"]
        photograph(browser, "mushra")
        click(browser, "#next")
        wait_until(lambda: browser.find_element(By.ID, "done").is_displayed(), 30, what="the end")
        assert "mean" in text(browser, "#results")
        photograph(browser, "mushra-done")
        assert served.wait(30) == 0
    records = verify(log)
    (rated,) = [r for r in records if r["record"] == "ratings"]
    assert rated["ratings"] == ratings
    assert [label for label, _ in rated["played"]] == ["reference", "1", "2", "3", "4", "5"]


@pytest.mark.audio
def test_a_listener_rates_a_mushra_item_with_the_keys_alone(browser, tmp_path):
    """The terminal's MUSHRA keys on the page, no mouse: r plays the reference, a digit
    plays and selects its condition, up / down start at 50 and step 1, right / left step
    10 (clamped to 0..100), enter goes on only once every condition is rated; tab is
    left to move the focus, as on any page, and the page's help does not offer it."""
    served, log = served_test(tmp_path, MUSHRA, "keys")
    with served:
        open_page(browser, served.url)
        wait_until(lambda: "item 1 of 1" in text(browser, "#progress"), 60)
        body = browser.find_element(By.TAG_NAME, "body")
        body.send_keys("r")
        wait_until(lambda: text(browser, "#playing") == "playing reference", what="the reference")
        assert "tab" not in text(browser, "#help-list")
        presses = ([Keys.ARROW_UP], [Keys.ARROW_UP, Keys.ARROW_RIGHT, Keys.ARROW_RIGHT], [Keys.ARROW_DOWN, Keys.ARROW_LEFT],
                   [Keys.ARROW_RIGHT] * 7, [Keys.ARROW_LEFT] * 6 + [Keys.ARROW_UP])
        # the first press gives 50 whichever it is; then +1, +10, -1, -10, clamped to 0..100
        ratings = [50, 70, 40, 100, 1]
        for slot, keys in enumerate(presses):
            body.send_keys(str(slot + 1))
            wait_until(lambda: text(browser, "#playing") == f"playing {slot + 1}", what=f"slot {slot + 1}")
            if slot == 1:
                body.send_keys(Keys.ENTER)                                  # not every condition rated yet
                wait_until(lambda: "rate every condition" in text(browser, "#status"), what="the refusal")
            for key in keys:
                before = text(browser, f"#value-{slot}")
                body.send_keys(key)
                if before != "100":
                    wait_until(lambda: text(browser, f"#value-{slot}") != before, what=f"slot {slot + 1}'s rating")
            wait_until(lambda: text(browser, f"#value-{slot}") == str(ratings[slot]), what=f"rating {ratings[slot]}")
        body.send_keys(Keys.ENTER)
        wait_until(lambda: browser.find_element(By.ID, "done").is_displayed(), 30, what="the end")
        assert served.wait(30) == 0
    (rated,) = [r for r in verify(log) if r["record"] == "ratings"]
    assert rated["ratings"] == ratings
    assert [label for label, _ in rated["played"]] == ["reference", "1", "2", "3", "4", "5"]


@pytest.mark.audio
def test_the_meter_page_shows_the_json_lines_figures(browser, tmp_path):
    """The page's figures and its header's time are those of `rtq live --json`'s line of
    the same moment (both come from one record per update); the page's controls reach
    the session (the lines after them say so)."""
    with Served(["live", "tpdf-16", "--web", "--json", "--input", "tone:1000:-20", "--duration", "14",
                 "--blocksize", "64"], cwd=tmp_path) as served:
        open_page(browser, served.url)
        wait_until(lambda: "error RMS" in text(browser, "#figures") and " t " in text(browser, "#h-stream"), 60)
        wait_until(lambda: text(browser, "#figures tbody tr:first-child td:nth-child(3)") not in ("", "-"), 30,
                   what="momentary figures")
        snapshots = []
        for _ in range(3):
            snapshots.append(browser.execute_script("""
                return [document.getElementById('h-stream').textContent,
                        [...document.querySelectorAll('#figures tbody tr')].map(
                            (tr) => [...tr.children].map((td) => td.textContent))];"""))
            seen = browser.execute_script("return window.rtqStats.updates")
            wait_until(lambda: browser.execute_script("return window.rtqStats.updates") > seen + 10)
        photograph(browser, "live")
        click(browser, "#bits-down")
        wait_until(lambda: text(browser, "#bits") == "15", what="bits 15")
        Select(browser.find_element(By.ID, "dither")).select_by_value("rpdf")
        wait_until(lambda: "dither rpdf" in text(browser, "#h-quantizer"), what="dither rpdf")
        assert console_errors(browser) == []
        assert served.wait(60) == 0
    lines = [json.loads(line) for line in served.lines if line.startswith("{")]
    by_time = {f"{line['time_s']:.3f}": line for line in lines}
    for header, rows in snapshots:
        shown_time = header.rsplit(" t ", 1)[1].split()[0]
        line = by_time[shown_time]                 # the line of the very update the page showed
        channels = len(line["meter"]["rms_dbfs"])
        for (label, key, unit, spec), row in zip(FIGURES, rows):
            assert row[0] == label and row[2:2 + channels] == [fmt(spec, v) for v in line["meter"][key]], (label, row)
    assert lines[0]["bits"] == 16 and lines[-1]["bits"] == 15 and lines[-1]["dither"] == "rpdf"


@pytest.mark.parametrize("preset,shown", [
    ("speech-lloyd-max-4", ["levels in use (lowest … highest)", "int. ", " 9/16"]),    # a -20 dBFS tone: 9 levels
    ("nicam-14-10", ["bits in use (MSB … LSB)", "scales (int., step 2^-k): 9:0%  10:0%  11:100%  12:0%  13:0%"]),
])
def test_the_meter_page_shows_levels_in_use_and_scales(browser, tmp_path, preset, shown):
    """The terminal screen's rows for a Lloyd-Max quantizer (its levels in use) and a block
    compander (the share of blocks at each scale) are on the page too."""
    with Served(["live", preset, "--web", "--input", "tone:1000:-20", "--duration", "8", "--blocksize", "64"],
                cwd=tmp_path) as served:
        open_page(browser, served.url)
        wait_until(lambda: all(part in text(browser, "main") for part in shown), 60, what=", ".join(shown))
        assert console_errors(browser) == []
        assert served.wait(60) == 0


def test_a_report_in_the_page(browser, tmp_path):
    write_item(tmp_path / "in.wav", 1.0)
    subprocess.run([sys.executable, "-m", "rtq", "render", "cd-16-shibata", "in.wav", "out.wav", "--report", "r.json"],
                   cwd=tmp_path, env=rtq_env(), check=True, capture_output=True, timeout=300)
    report = json.loads((tmp_path / "r.json").read_text())
    with Served(["report", "r.json", "--web"], cwd=tmp_path) as served:
        open_page(browser, served.url)
        wait_until(lambda: "error RMS" in text(browser, "#stages"), 30)
        rows = browser.execute_script("""return [...document.querySelectorAll('#stages table')].map((t) =>
            [...t.querySelectorAll('tbody tr')].map((tr) => [...tr.children].map((td) => td.textContent)))""")
        entries = report["stages"] + [report["end_to_end"]]
        assert len(rows) == len(entries)
        for table, entry in zip(rows, entries):
            assert table[0][2:] == [fmt("{:.1f}", v) for v in entry["rms_dbfs"]]
        photograph(browser, "report")
        assert console_errors(browser) == []
        served.process.terminate()
        assert served.wait(20) == 0
