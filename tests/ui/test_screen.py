"""The live error meter's screen and keys (rtq.ui.screen), on real sessions.

Sessions play ``tone:1000:-20`` at 48 kHz: on the null stream when no audio device
exists, on the JACK dummy server under tools/test.sh (PortAudio initialises once per
process; either works).  The screen is rendered into a recording rich Console; the
end-to-end tests drive ``python -m rtq live`` in a tmux pane.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from rtq.ui.quit import Quit
from rtq.ui.screen import KEYMAP, LiveDisplay

from .helpers import (ROOT, TONE, TPDF_15_DBFS, TPDF_16_DBFS, ScriptedKeys, figure_row, make_session, nan_laced,
                      numbers, recording_console, rtq_env, run_for, screen_text, settled)


# ---------------------------------------------------------------------------------------
# the screen on a running session


def test_screen_shows_the_figures():
    session = make_session("tpdf-16")
    display = LiveDisplay(session, console=recording_console())
    run_for(session, display, 6.0, until=settled)
    assert settled(display)
    text = screen_text(display)

    assert "tpdf-16" in text and "bits 16" in text and "dither tpdf" in text
    assert "NORMAL" in text
    assert "requantize 16-bit tpdf" in text                      # the metered stage
    rms = numbers(figure_row(text, "error RMS"))
    assert len(rms) == 4                                         # mom. L R, int. L R
    assert all(abs(v - TPDF_16_DBFS) < 1.0 for v in rms), rms
    assert all(abs(v - 96.3) < 1.0 for v in numbers(figure_row(text, "PSNR")))
    # a -20 dBFS sine over a -96.3 dBFS error: SNR ~76 dB, and SINAD/ENOB shown
    assert all(abs(v - 76.3) < 1.0 for v in numbers(figure_row(text, "SNR")))
    assert all(abs(v - 76.3) < 1.5 for v in numbers(figure_row(text, "SINAD")))
    # IEEE 1241 ENOB, referred to full scale whatever the tone's level: 16-bit TPDF
    # (error q^2/4) reads 16 - log2(sqrt(3)) = 15.21 bits (it read 12.39 re the tone)
    enob = numbers(figure_row(text, "ENOB re FS"))
    assert len(enob) == 4 and all(abs(v - 15.21) < 0.1 for v in enob), enob
    for label in ("error peak", "MSE", "A-weighted", "ITU-468 RMS", "DC", "clips", "non-finite", "loop resets", "over MSA",
                  "noise mod."):
        assert len(numbers(figure_row(text, label))) == 4, label
    assert numbers(figure_row(text, "clips")) == [0, 0, 0, 0]
    assert "theory: floor -96.3 dBFS" in text
    assert "16/16" in text                                       # every bit toggles
    assert "LSB" in text and "error histogram" in text
    assert "error spectrum" in text and "1k" in text and "10k" in text
    assert any(0x2800 < ord(ch) <= 0x28FF for ch in text)       # braille plot drawn
    assert re.search(r"xruns \d+ · callback load p99 [\d.]+ %", text)
    assert "h help" in text and "q quit" in text                 # the key hint


def test_screen_names_rates_and_capture_gaps_plainly():
    """The 64x stage of dsd64-1bit runs at 3.072 MHz (it read 3.072e+06 Hz), and the
    frames the live meter skips between capture windows are said to be that, not
    'dropped'."""
    session = make_session("dsd64-1bit")
    try:
        display = LiveDisplay(session, console=recording_console())
        run_for(session, display, 8.0, until=lambda d: (d.view.momentary or {}).get("dropped_frames"))
        text = screen_text(display)
    finally:
        session.close()
    assert "requantize 1-bit none ntf order 5 at 3.072 MHz" in text
    assert re.search(r"meter capture gaps: \d+ frames not metered", text), text
    assert "e+0" not in text and "dropped" not in text


def test_a_lloyd_max_quantizer_shows_its_levels_in_use_and_its_figures():
    """The -20 dBFS tone (peak 0.1414) reaches the cells of 9 of speech-lloyd-max-4's 16
    levels (-0.1454 .. 0.1258: 0.1414 is below the midpoint 0.1540 to the next); the
    figures are the non-uniform quantizer's, against a direct computation."""
    import numpy as np
    from rtq import Chain
    from rtq.presets import load_preset

    session = make_session("speech-lloyd-max-4")
    try:
        display = LiveDisplay(session, console=recording_console())
        run_for(session, display, 6.0, until=settled)
        text = screen_text(display)
        integ = display.view.integrated
    finally:
        session.close()
    assert "quantize lloyd-max 16 levels" in text and "levels in use" in text and "bits in use" not in text
    levels = np.asarray(load_preset("speech-lloyd-max-4").chain[0].params["levels"][0])
    peak = 10 ** (-20 / 20) * np.sqrt(2)
    cells = np.concatenate([[-np.inf], (levels[:-1] + levels[1:]) / 2, [np.inf]])
    reached = int(np.count_nonzero((cells[1:] > -peak) & (cells[:-1] < peak)))
    assert reached == 9
    assert integ["level_histogram"]["in_use"] == [reached, reached]
    assert re.search(r"int\. [·▁▂▃▄▅▆▇█]{16} 9/16", text), text
    # The figures: those of one period of the tone through the quantizer, computed here.
    t = np.arange(48) / 48000
    x = np.repeat((peak * np.sin(2 * np.pi * 1000 * t))[:, None], 2, axis=1)
    e = Chain.from_preset("speech-lloyd-max-4")(x, 48000) - x
    mse = np.mean(e ** 2)
    assert all(abs(v - 10 * np.log10(mse)) < 0.2 for v in numbers(figure_row(text, "error RMS"))), text
    assert all(abs(v + 10 * np.log10(mse)) < 0.2 for v in numbers(figure_row(text, "PSNR")))
    assert all(abs(v - 10 * np.log10(peak ** 2 / 2 / mse)) < 0.2 for v in numbers(figure_row(text, "SNR")))


def test_a_block_compander_shows_the_scales_it_used():
    """The -20 dBFS tone (peak 0.1414) is coded at the scale whose range is 0.25: step 2^-11."""
    session = make_session("nicam-14-10")
    try:
        display = LiveDisplay(session, console=recording_console())
        run_for(session, display, 6.0, until=settled)
        text = screen_text(display)
    finally:
        session.close()
    assert "blockcompand 10-bit/14 block 32 none" in text
    assert "scales int. step 2^-k: 9:0%  10:0%  11:100%  12:0%  13:0%" in text, text


def test_rates_read_as_people_write_them():
    from rtq.ui.units import rate_text

    assert [rate_text(r) for r in (44100, 48000.0, 352800, 2822400, 3072000, 768000 * 64)] == [
        "44100 Hz", "48000 Hz", "352800 Hz", "2.8224 MHz", "3.072 MHz", "49.152 MHz"]


def test_non_finite_source_samples_show_on_the_screen_as_in_the_summary():
    """A NaN-laced source: the meter's integrated non-finite count, on the screen, is
    the exit summary's (it read 0 and 0 while the summary counted them)."""
    from rtq.live.sources import Source

    samples, count = nan_laced()
    session = make_session("tpdf-16", source=Source.buffer(samples, 48000))
    display = LiveDisplay(session, console=recording_console())
    run_for(session, display, 6.0, until=settled)
    display.view.update(force=True)
    text = screen_text(display)
    shown = numbers(figure_row(text, "non-finite"))
    assert len(shown) == 4 and sum(shown[2:]) == count == 53, text   # integrated L + R
    assert session.summary()["nonfinite"] == count


def test_help_overlay_lists_every_key():
    session = make_session("tpdf-16")
    display = LiveDisplay(session, console=recording_console())
    try:
        display.handle_key("h")
        text = screen_text(display)
        for _, _, description in KEYMAP:
            assert description in text
        display.handle_key("esc")
        assert "show/hide this help" not in screen_text(display)
        display.handle_key("?")
        assert display.show_help
    finally:
        session.close()


def test_keys_drive_the_running_chain():
    """Keys fed through handle_key while the session plays change what plays."""
    session = make_session("tpdf-16")
    display = LiveDisplay(session, console=recording_console())
    seen = {}

    def step(key, check):
        display.handle_key(key)
        time.sleep(0.05)            # let the crossfade finish before the next key
        display.frame()
        seen[key] = check()

    def script(d):
        if "start" not in seen:
            seen["start"] = session.quantizer().bits
            step("-", lambda: (session.quantizer().bits, d.view.meter.chain is session.chain))
            step("d", lambda: session.quantizer().dither)
            step("s", lambda: session.quantizer().shaping.get("name", "none"))
            step("b", lambda: session.engine.mode)
            step("b", lambda: session.engine.mode)
            step("e", lambda: session.engine.mode)
            step("e", lambda: session.engine.mode)
            step("+", lambda: session.quantizer().bits)
            step("down", lambda: session.quantizer().bits)
            return False
        return settled(d)

    run_for(session, display, 8.0, until=script)
    assert seen["start"] == 16
    assert seen["-"] == (15, True)          # new chain, and a new meter on it
    assert seen["d"] == "tpdf-hp"
    assert seen["s"] == "first-order"
    assert seen["b"] == "normal"            # toggled twice
    assert seen["e"] == "normal"
    assert seen["+"] == 16 and seen["down"] == 15
    assert display.view.meters_created >= 5
    # The meter follows: the 15-bit chain's error (first-order shaped TPDF-HP here, so
    # compare with the theory line the screen prints for that chain)
    text = screen_text(display)
    assert "bits 15" in text and "first-order" in text
    theory = float(re.search(r"target (-[\d.]+) dBFS", text).group(1))
    rms = numbers(figure_row(text, "error RMS"))[:2]
    assert all(abs(v - theory) < 1.0 for v in rms), (rms, theory)


def test_bypass_and_solo_show_on_screen():
    session = make_session("tpdf-16")
    display = LiveDisplay(session, console=recording_console())
    try:
        session.engine.start()
        display.handle_key("b")
        assert session.engine.mode == "bypass" and "BYPASS" in screen_text(display)
        display.handle_key("e")
        assert session.engine.mode == "solo" and "ERROR SOLO" in screen_text(display)
        display.handle_key("e")
        assert session.engine.mode == "normal" and "NORMAL" in screen_text(display)
    finally:
        session.close()


def test_control_changes_report_success():
    """After '-' the status line says what happened (not an error)."""
    session = make_session("tpdf-16")
    display = LiveDisplay(session, console=recording_console())
    try:
        session.engine.start()
        time.sleep(0.1)
        display.handle_key("-")
        assert display.status[0] == "bits: 15", display.status
        display.handle_key("d")
        assert display.status[0] == "dither: tpdf-hp", display.status
    finally:
        session.close()


def test_next_and_previous_preset():
    session = make_session("tpdf-16")
    display = LiveDisplay(session, console=recording_console())
    try:
        session.engine.start()
        time.sleep(0.1)
        display.handle_key("n")
        assert session.spec.name == "tpdf-24"
        display.frame()
        assert display.view.meter.chain is session.chain
        assert "tpdf-24" in screen_text(display) and "bits 24" in screen_text(display)
        display.handle_key("p")
        assert session.spec.name == "tpdf-16"
    finally:
        session.close()


def test_next_preset_switches_the_chain():
    """Whatever the status says, 'n' crossfades to another preset's chain."""
    session = make_session("tpdf-16")
    display = LiveDisplay(session, console=recording_console())
    try:
        session.engine.start()
        time.sleep(0.1)
        before = session.chain
        display.handle_key("n")
        time.sleep(0.1)
        assert session.chain is not before
        assert session.quantizer().bits == 24                # tpdf-24 follows tpdf-16
        display.frame()
        assert display.view.meter.chain is session.chain
        assert "bits 24" in screen_text(display)
    finally:
        session.close()


def test_control_error_is_a_one_line_status():
    """telephone-alaw has no requantize or blockcompand stage: '-' cannot work; the screen says why."""
    session = make_session("telephone-alaw")
    display = LiveDisplay(session, console=recording_console())
    try:
        display.handle_key("-")
        message, style, _ = display.status
        assert "no requantize or blockcompand stage" in message and "\n" not in message and "red" in style
        text = screen_text(display)
        assert "no requantize or blockcompand stage" in text and "Traceback" not in text
        display.handle_key("d")
        assert "no requantize or blockcompand stage" in display.status[0]
    finally:
        session.close()


def test_stage_cycle_reset_and_channel():
    session = make_session("cd-16-shibata")
    display = LiveDisplay(session, console=recording_console())
    run_for(session, display, 6.0, until=settled)
    view = display.view
    assert view.count == 1 and view.label == "requantize 16-bit tpdf shibata"
    text = screen_text(display)
    assert "meter 1/2: requantize 16-bit tpdf shibata" in text
    shaped = numbers(figure_row(text, "error RMS"))[0]
    display.handle_key("tab")
    assert view.label == "end to end" and view.momentary is None
    view.update(force=True)
    text = screen_text(display)
    assert "meter 2/2: end to end" in text
    # end to end, this chain (gain then the quantizer) adds the quantizer's error plus
    # the -0.1 dB gain's (removed by the net-gain scaling): about the same level
    assert abs(numbers(figure_row(text, "error RMS"))[0] - shaped) < 1.0
    display.handle_key("m")
    assert view.label.startswith("requantize")
    display.handle_key("M")
    assert view.label == "end to end"
    display.handle_key("r")
    view.update(force=True)
    assert view.integrated["frames"] < 48000 // 2
    display.handle_key("c")
    assert display.channel == 1 and "graphs ch 2" in screen_text(display)
    display.handle_key("c")
    assert display.channel == 0


def test_quit_ends_the_loop():
    session = make_session("tpdf-16")
    display = LiveDisplay(session, console=recording_console(), keys=ScriptedKeys([(0.3, "q")]))
    t = time.monotonic()
    with pytest.raises(Quit):
        session.run(20.0, tick=display.tick, interval=0.02)
    assert time.monotonic() - t < 5.0
    assert session.stream.closed


def test_frames_keep_a_10_hz_schedule_and_record_their_cost(monkeypatch):
    """On a clock the test drives (no timing assertion: the cost itself is a benchmark
    figure, printed by ``rtq live`` at exit): ticks every 20 ms draw a frame every
    100 ms; a key draws an extra frame without moving the schedule; a stalled main
    thread skips the frames it missed and starts a new schedule from then on."""
    import rtq.ui.screen as display_module

    class Clock:
        """The display's ``time`` module, with ``monotonic`` set by the test."""

        now = 0.0

        def monotonic(self):
            return self.now

        def __getattr__(self, name):
            return getattr(time, name)

    clock = Clock()
    monkeypatch.setattr(display_module, "time", clock)
    session = make_session("tpdf-16")
    try:
        display = LiveDisplay(session, console=recording_console())
        drawn = []
        for step in range(100):                     # 5 ms .. 1.985 s, off the 100 ms grid
            clock.now = 0.005 + step * 0.02
            before = display.frames
            display.tick(session)
            if display.frames > before:
                drawn.append(round(clock.now, 3))
        assert drawn == [round(0.005 + 0.1 * k, 3) for k in range(20)]
        assert display.rate_hz == pytest.approx(10.0)
        display.handle_key("b")                     # bypass: redrawn at once
        display.tick(session)
        assert display.frames == 21
        clock.now = 2.005                           # the schedule did not move
        display.tick(session)
        assert display.frames == 22
        for now in (2.4, 2.45, 2.51, 2.55, 2.59):  # stalled: one frame at 2.4, the next due at 2.5
            clock.now = now
            display.tick(session)
        assert display.frames == 24
        assert display.cost_ms is not None and display.cost_ms > 0
    finally:
        session.close()


def test_cli_quiet_when_stdout_is_not_a_terminal():
    proc = subprocess.run(
        [sys.executable, "-m", "rtq", "live", "tpdf-16", "--input", TONE, "--samplerate", "48000",
         "--duration", "1", "--meter-stage", "0"],
        capture_output=True, text=True, timeout=60, env=rtq_env(), cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("rtq live: tpdf-16")
    assert "\x1b" not in proc.stdout and "error RMS" not in proc.stdout
    lines = proc.stdout.splitlines()
    assert len(lines) == 6 and lines[-1].startswith("  CPU wake-up latency request: ")  # the summary only


# ---------------------------------------------------------------------------------------
# end to end in a terminal (tmux)

TMUX = shutil.which("tmux")
needs_tmux = pytest.mark.skipif(TMUX is None, reason="tmux is not installed (apt install tmux); "
                                                     "the end-to-end terminal tests need it")


class Pane:
    """A command in a private tmux server's 120x50 pane."""

    def __init__(self, command: str, tmp_path: Path):
        self.socket = f"rtq-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.tmp = tmp_path
        script = tmp_path / "run.sh"
        exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in rtq_env().items()
                          if k in ("PYTHONPATH", "JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER",
                                   "PATH", "HOME"))
        script.write_text(f"{exports}cd {shlex.quote(str(ROOT))}\nstty -g > {tmp_path}/stty-before\n"
                          f"{command}\necho \"exit=$?\"\nstty -a > {tmp_path}/stty-modes\n"
                          f"stty -g > {tmp_path}/stty-after\n"
                          "sleep 60\n")
        self.tmux("new-session", "-d", "-s", "rtq", "-x", "120", "-y", "50", f"bash {script}")

    def tmux(self, *args):
        return subprocess.run([TMUX, "-L", self.socket, "-f", "/dev/null", *args],
                              capture_output=True, text=True, timeout=10)

    def capture(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "rtq").stdout

    def keys(self, *keys):
        self.tmux("send-keys", "-t", "rtq", *keys)

    def wait_for(self, predicate, timeout=20.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.capture()
            if predicate(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; the pane shows:\n{text}")
            time.sleep(0.1)

    def close(self):
        self.tmux("kill-server")


def momentary_rms(text: str) -> list[float]:
    try:
        return numbers(figure_row(text, "error RMS"))[:2]
    except AssertionError:
        return []


@needs_tmux
def test_tmux_screen_keys_and_quit(tmp_path):
    """`rtq live` in a terminal: the figures, '-', 'b', 'h', then 'q' ends it early and the
    terminal is restored.  (--duration 10 leaves room for slow start-up; 'q' ends it.)"""
    pane = Pane(f"{sys.executable} -m rtq live tpdf-16 --input {TONE} --samplerate 48000 "
                "--duration 10", tmp_path)
    try:
        text = pane.wait_for(lambda t: len(momentary_rms(t)) == 2 and "16/16" in t)
        assert all(abs(v - TPDF_16_DBFS) < 1.0 for v in momentary_rms(text)), text
        assert "rtq live tpdf-16" in text and "bits 16" in text and "NORMAL" in text
        assert "error spectrum" in text and "h help" in text
        start = time.monotonic()
        pane.keys("-")
        pane.wait_for(lambda t: "bits 15" in t and "requantize 15-bit" in t)
        pane.keys("b")
        pane.wait_for(lambda t: "BYPASS" in t)
        pane.keys("h")
        pane.wait_for(lambda t: "show/hide this help" in t)
        pane.keys("Escape")
        pane.wait_for(lambda t: "show/hide this help" not in t)
        # the 15-bit error shows up in the momentary figures (TPDF, no shaping)
        pane.wait_for(lambda t: all(abs(v - TPDF_15_DBFS) < 1.0 for v in momentary_rms(t) or [0]))
        pane.keys("q")
        text = pane.wait_for(lambda t: "exit=" in t)
        assert time.monotonic() - start < 8
        assert "exit=0" in text
        summary = re.search(r"rtq live: tpdf-16 at 48000 Hz for ([\d.]+) s", text)
        assert summary and float(summary.group(1)) < 10, text
        assert re.search(r"display: [\d.]+ ms CPU per frame", text)
        before = (tmp_path / "stty-before").read_text()
        pane.wait_for(lambda t: (tmp_path / "stty-after").exists())
        time.sleep(0.2)
        after = (tmp_path / "stty-after").read_text()
        assert after == before                                # cbreak undone, echo back
        modes = (tmp_path / "stty-modes").read_text().split()
        assert "icanon" in modes and "echo" in modes
    finally:
        pane.close()


@needs_tmux
def test_tmux_ctrl_c_restores_the_terminal(tmp_path):
    pane = Pane(f"{sys.executable} -m rtq live cd-16-shibata --input {TONE} --samplerate 48000 "
                "--duration 30", tmp_path)
    try:
        pane.wait_for(lambda t: len(momentary_rms(t)) == 2)
        pane.keys("C-c")
        text = pane.wait_for(lambda t: "exit=" in t)
        assert "exit=0" in text and "rtq live: cd-16-shibata" in text and "Traceback" not in text
        pane.wait_for(lambda t: (tmp_path / "stty-after").exists())
        time.sleep(0.2)
        assert (tmp_path / "stty-after").read_text() == (tmp_path / "stty-before").read_text()
    finally:
        pane.close()
