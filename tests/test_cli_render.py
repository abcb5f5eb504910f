"""``rtq render PRESET INPUT OUTPUT``: block-size invariance, seeds, output subtypes,
--force and input protection, one-line user errors (in process and through a real
``python -m rtq``), counter lines on stderr, quiet progress off a terminal."""
from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from filesystems import anonymous_files
from signals import make_signal, write_input

from rtq.chain import Chain
from rtq.cli import main
from rtq.presets import PRESET_DIR

REPO = Path(__file__).resolve().parent.parent


def listing(directory: Path) -> set[str]:
    return set(os.listdir(directory))


def rtq(argv, capsys) -> tuple[int, list[str]]:
    """Run ``rtq`` in process; returns (status, stderr lines); stdout must stay empty."""
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert out == ""
    return status, err.splitlines()


def rtq_ok(argv, capsys) -> list[str]:
    """Run a render that must succeed; stderr may only hold the clip counter line."""
    status, lines = rtq(argv, capsys)
    assert status == 0, lines
    assert all(re.fullmatch(r"rtq: (1 sample|\d+ samples) clipped \(.*\)", line) for line in lines), lines
    return lines


def rtq_subprocess(argv, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "rtq", "render", *map(str, argv)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def assert_one_line_error(status: int, lines: list[str], *needles: str, prefix: str = "rtq: "):
    assert status == 2
    assert len(lines) == 1, lines
    assert lines[0].startswith(prefix), lines[0]
    assert "Traceback" not in lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.fixture
def work(tmp_path, monkeypatch) -> Path:
    """A directory (the cwd) holding in.wav (44.1 kHz stereo) and in48.wav (48 kHz)."""
    monkeypatch.chdir(tmp_path)
    write_input(tmp_path / "in.wav", make_signal(2000, 2, seed=1), 44100)
    write_input(tmp_path / "in48.wav", make_signal(2000, 2, seed=2, rate=48000), 48000)
    return tmp_path


INPUTS = {"in.wav", "in48.wav"}


# --- output does not depend on the block size ------------------------------------------

@pytest.mark.parametrize("preset,rate", [("cd-16-gesemann", 44100), ("tpdf-24", 48000),
                                         ("telephone-alaw", 8000)])
def test_block_size_does_not_change_the_file(work, capsys, preset, rate):
    x = make_signal(1500, 2, seed=rate, rate=rate)
    write_input(work / "short.wav", x, rate)
    files, reports = {}, {}
    for block in (1, 7, 64, 4096):
        name = f"b{block}.wav"
        reports[block] = rtq_ok(["render", preset, "short.wav", name, "--block-size", block], capsys)
        files[block] = (work / name).read_bytes()
    assert files[1] == files[7] == files[64] == files[4096]
    assert reports[1] == reports[7] == reports[64] == reports[4096]
    y = Chain.from_preset(preset)(x, rate)
    assert np.array_equal(sf.read("b1.wav")[0], y)
    assert len(np.unique(y)) > 100


def test_block_size_must_be_positive(work, capsys):
    status, lines = rtq(["render", "tpdf-16", "in.wav", "out.wav", "--block-size", "0"], capsys)
    assert_one_line_error(status, lines, "--block-size")
    assert listing(work) == INPUTS


# --- seeds -----------------------------------------------------------------------------

def test_seed_overrides_the_presets_seed(work, capsys):
    x = sf.read("in.wav")[0]
    for argv in (["plain.wav"], ["s1.wav", "--seed", "1"], ["s7a.wav", "--seed", "7"],
                 ["s7b.wav", "--seed", "7"], ["s8.wav", "--seed", "8"]):
        rtq_ok(["render", "cd-16-shibata", "in.wav", *argv], capsys)
    data = {name: (work / name).read_bytes() for name in ("plain.wav", "s1.wav", "s7a.wav", "s7b.wav", "s8.wav")}
    assert data["plain.wav"] == data["s1.wav"]             # the preset says seed: 1
    assert data["s7a.wav"] == data["s7b.wav"]              # same seed, same file
    assert data["s7a.wav"] != data["s8.wav"]               # different seed, different file
    assert data["s7a.wav"] != data["plain.wav"]
    assert np.array_equal(sf.read("s7a.wav")[0], Chain.from_preset("cd-16-shibata", seed=7)(x, 44100))
    assert np.array_equal(sf.read("plain.wav")[0], Chain.from_preset("cd-16-shibata")(x, 44100))
    # the seeds really change the dither: most samples differ by at least one LSB
    diff = np.abs(sf.read("s7a.wav", dtype="int16")[0].astype(int) - sf.read("s8.wav", dtype="int16")[0])
    assert np.count_nonzero(diff) > 0.5 * diff.size


# --- output subtype --------------------------------------------------------------------

@pytest.mark.parametrize("preset,output,subtype", [
    ("cd-16-shibata", "out.wav", "PCM_16"),
    ("tpdf-16", "out.wav", "PCM_16"),
    ("tpdf-24", "out.wav", "PCM_24"),
    ("telephone-mulaw", "out.wav", "ULAW"),
    ("telephone-alaw", "out.wav", "ALAW"),
    ("lofi-6", "out.wav", "PCM_U8"),
    ("undithered-8", "out.wav", "PCM_U8"),
    ("undithered-8", "out.aiff", "PCM_S8"),
    ("cd-16-shibata", "out.flac", "PCM_16"),
    ("tpdf-24", "out.flac", "PCM_24"),
    ("lofi-6", "out.flac", "PCM_S8"),
    ("cd-16-shibata", "out.aiff", "PCM_16"),
])
def test_default_subtype_follows_the_last_stage(work, capsys, preset, output, subtype):
    rtq_ok(["render", preset, "in.wav", output], capsys)
    assert sf.info(output).subtype == subtype
    assert np.array_equal(sf.read(output)[0], Chain.from_preset(preset)(sf.read("in.wav")[0], 44100))


@pytest.mark.parametrize("preset,requested,subtype", [
    ("cd-16-shibata", "PCM_24", "PCM_24"),
    ("cd-16-shibata", "float", "FLOAT"),
    ("cd-16-shibata", "PCM_32", "PCM_32"),
    ("telephone-mulaw", "PCM_16", "PCM_16"),
    ("tpdf-24", "DOUBLE", "DOUBLE"),
])
def test_subtype_option_overrides_and_stays_exact(work, capsys, preset, requested, subtype):
    rtq_ok(["render", preset, "in.wav", "out.wav", "--subtype", requested], capsys)
    assert sf.info("out.wav").subtype == subtype
    y = Chain.from_preset(preset)(sf.read("in.wav")[0], 44100)
    assert np.array_equal(sf.read("out.wav")[0], y)
    if subtype == "PCM_24":
        raw = sf.read("out.wav", dtype="int32")[0]
        assert np.array_equal(raw >> 8, (np.rint(y * 32768.0) * 256).astype(np.int32))


@pytest.mark.parametrize("output,requested", [("out.flac", "FLOAT"), ("out.wav", "VORBIS"),
                                              ("out.wav", "PCM_17")])
def test_subtype_the_container_lacks_is_a_one_line_error(work, capsys, output, requested):
    status, lines = rtq(["render", "cd-16-shibata", "in.wav", output, "--subtype", requested], capsys)
    assert_one_line_error(status, lines, requested, "not available")
    assert listing(work) == INPUTS


GAIN_ONLY = "name: gain-only\nchain:\n  - gain: {db: -3}\n"
BITS_32 = "name: r32\nseed: 2\nchain:\n  - requantize: {bits: 32, dither: tpdf}\n"


@pytest.mark.parametrize("preset,requested", [
    ("tpdf-24", "PCM_16"),
    ("gain-only.yaml", "PCM_24"),         # not on any grid
    ("tpdf-16", "PCM_U8"),
    ("tpdf-16", "ULAW"),
    ("telephone-mulaw", "ALAW"),
    ("r32.yaml", "FLOAT"),
])
def test_subtype_coarser_than_the_chain_is_refused(work, capsys, preset, requested):
    (work / "gain-only.yaml").write_text(GAIN_ONLY)
    (work / "r32.yaml").write_text(BITS_32)
    before = listing(work)
    status, lines = rtq(["render", preset, "in.wav", "out.wav", "--subtype", requested], capsys)
    assert_one_line_error(status, lines, requested)
    assert listing(work) == before


def test_container_that_cannot_hold_the_stream_is_a_one_line_error(work, capsys):
    write_input(work / "nine.wav", np.zeros((100, 9)), 44100)
    status, lines = rtq(["render", "tpdf-16", "nine.wav", "nine.flac"], capsys)
    assert_one_line_error(status, lines, "nine.flac")
    assert "nine.flac" not in listing(work)


# --- existing output and the input itself ----------------------------------------------

def test_existing_output_needs_force(work, capsys):
    out = work / "out.wav"
    out.write_bytes(b"precious")
    os.utime(out, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    status, lines = rtq(["render", "tpdf-16", "in.wav", "out.wav"], capsys)
    assert_one_line_error(status, lines, "out.wav", "--force")
    assert out.read_bytes() == b"precious"
    assert out.stat().st_mtime_ns == 1_000_000_000_000_000_000
    assert listing(work) == INPUTS | {"out.wav"}

    rtq_ok(["render", "tpdf-16", "in.wav", "out.wav", "--force"], capsys)
    rtq_ok(["render", "tpdf-16", "in.wav", "fresh.wav"], capsys)
    assert out.read_bytes() == (work / "fresh.wav").read_bytes()
    assert sf.info("out.wav").subtype == "PCM_16"
    assert listing(work) == INPUTS | {"out.wav", "fresh.wav"}


@pytest.mark.parametrize("force", [False, True], ids=["plain", "force"])
@pytest.mark.parametrize("report, label", [("in.wav", "INPUT"), ("./link.wav", "INPUT"), ("out.wav", "OUTPUT"),
                                           ("new.wav", "OUTPUT")],
                         ids=["input", "input-symlink", "existing-output", "output-to-be"])
def test_report_over_an_audio_file_is_refused_even_with_force(work, capsys, report, label, force):
    """--report in.wav replaced the input with JSON, exit 0."""
    os.symlink("in.wav", work / "link.wav")
    (work / "out.wav").write_bytes(b"precious")
    output = "new.wav" if report == "new.wav" else "out.wav"
    status, lines = rtq(["render", "tpdf-16", "in.wav", output, "--report", report]
                        + (["--force"] if force else []), capsys)
    assert_one_line_error(status, lines, f"--report {report.removeprefix('./')} is the {label} file")
    assert sf.info("in.wav").frames == 2000 and (work / "out.wav").read_bytes() == b"precious"
    assert listing(work) == INPUTS | {"link.wav", "out.wav"}


def test_existing_report_needs_force(work, capsys):
    (work / "r.json").write_text("earlier")
    status, lines = rtq(["render", "tpdf-16", "in.wav", "out.wav", "--report", "r.json"], capsys)
    assert_one_line_error(status, lines, "--report r.json exists; use --force to replace it")
    assert (work / "r.json").read_text() == "earlier" and not (work / "out.wav").exists()
    rtq_ok(["render", "tpdf-16", "in.wav", "out.wav", "--report", "r.json", "--force"], capsys)
    assert json.loads((work / "r.json").read_text())["command"] == "render"


@pytest.mark.parametrize("force", [False, True], ids=["plain", "force"])
@pytest.mark.parametrize("spelling", ["same", "dot-slash", "absolute", "dot-dot", "symlink", "hardlink"])
def test_output_that_is_the_input_is_refused(work, capsys, spelling, force):
    (work / "sub").mkdir()
    os.symlink("in.wav", work / "link.wav")
    os.link(work / "in.wav", work / "hard.wav")
    os.utime(work / "in.wav", ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    original = (work / "in.wav").read_bytes()
    before = listing(work)
    inp, out = {"same": ("in.wav", "in.wav"),
                "dot-slash": ("in.wav", "./in.wav"),
                "absolute": (str(work / "in.wav"), "in.wav"),
                "dot-dot": ("sub/../in.wav", "in.wav"),
                "symlink": ("in.wav", "link.wav"),
                "hardlink": ("hard.wav", "in.wav")}[spelling]
    status, lines = rtq(["render", "tpdf-16", inp, out] + (["--force"] if force else []), capsys)
    assert_one_line_error(status, lines, "INPUT")
    assert (work / "in.wav").read_bytes() == original
    assert (work / "in.wav").stat().st_mtime_ns == 1_000_000_000_000_000_000
    assert os.path.islink(work / "link.wav")
    assert listing(work) == before


# --- one-line user errors --------------------------------------------------------------

BAD_PRESET = "chain:\n  - requantize:\n      bits: sixteen\n"


def lipshitz_position() -> str:
    """``file:line:col`` of the shaping value in the shipped cd-16-lipshitz preset."""
    path = PRESET_DIR / "cd-16-lipshitz.yaml"
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if "shaping:" in line:
            return f"{path}:{number}:{line.index('lipshitz') + 1}"
    raise AssertionError("no shaping line in cd-16-lipshitz.yaml")


ERRORS = {   # name: (argv after "render", prefix, needles)
    "missing-input": (["tpdf-16", "missing.wav", "out.wav"], "rtq: ", ["missing.wav"]),
    "not-audio": (["tpdf-16", "notes.wav", "out.wav"], "rtq: ", ["notes.wav", "not a readable audio file"]),
    "directory-input": (["tpdf-16", "sub", "out.wav"], "rtq: ", ["sub"]),
    "unknown-extension": (["tpdf-16", "in.wav", "out.xyz"], "rtq: ", ["out.xyz"]),
    "no-extension": (["tpdf-16", "in.wav", "out"], "rtq: ", ["out"]),
    "missing-directory": (["tpdf-16", "in.wav", "nodir/out.wav"], "rtq: ", ["nodir"]),
    "directory-output": (["tpdf-16", "in.wav", "sub", "--force"], "rtq: ", ["OUTPUT sub is a directory"]),
    "file-as-directory": (["tpdf-16", "in.wav", "in48.wav/out.wav"], "rtq: ", ["in48.wav: not a directory"]),
    "negative-seed": (["tpdf-16", "in.wav", "out.wav", "--seed", "-1"], "rtq: ",
                      [f"--seed must be an integer from 0 to {2 ** 64 - 1}, got -1"]),
    "huge-seed": (["tpdf-16", "in.wav", "out.wav", "--seed", str(2 ** 64)], "rtq: ", [f"got {2 ** 64}"]),
    "no-shaping-table": (["cd-16-lipshitz", "in48.wav", "out.wav"], None, ["44100", "48000"]),
    "bad-preset": (["bad.yaml", "in.wav", "out.wav"], "bad.yaml:3:13: ", ["bits"]),
    "unknown-preset": (["no-such-preset", "in.wav", "out.wav"], "", ["no-such-preset"]),
}


def error_fixture_files(work: Path) -> None:
    (work / "notes.wav").write_text("these are not samples\n")
    (work / "bad.yaml").write_text(BAD_PRESET)
    (work / "sub").mkdir(exist_ok=True)


@pytest.mark.parametrize("case", list(ERRORS))
def test_user_errors_are_one_line_with_status_2(work, capsys, case):
    error_fixture_files(work)
    argv, prefix, needles = ERRORS[case]
    before = listing(work)
    status, lines = rtq(["render", *argv], capsys)
    assert_one_line_error(status, lines, *needles,
                          prefix=lipshitz_position() + ": " if prefix is None else prefix)
    assert listing(work) == before


@pytest.mark.parametrize("case", ["missing-input", "not-audio", "unknown-extension",
                                  "no-shaping-table", "bad-preset"])
def test_user_errors_through_python_dash_m_rtq(work, case):
    error_fixture_files(work)
    argv, prefix, needles = ERRORS[case]
    before = listing(work)
    result = rtq_subprocess(argv, work)
    assert result.stdout == ""
    assert_one_line_error(result.returncode, result.stderr.splitlines(), *needles,
                          prefix=lipshitz_position() + ": " if prefix is None else prefix)
    assert "Traceback" not in result.stderr
    assert listing(work) == before


def test_clean_render_through_python_dash_m_rtq_is_silent(work):
    """stderr is a pipe, not a terminal: no progress bar, no counter lines."""
    x = make_signal(2000, 2, seed=9) * 0.5
    write_input(work / "quiet.wav", x, 44100)
    result = rtq_subprocess(["cd-16-shibata", "quiet.wav", "out.flac"], work)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert np.array_equal(sf.read("out.flac")[0], Chain.from_preset("cd-16-shibata")(x, 44100))
    assert listing(work) == INPUTS | {"quiet.wav", "out.flac"}


def test_output_that_cannot_be_created_is_one_line_with_status_1(work, capsys):
    status, lines = rtq(["render", "tpdf-16", "in.wav", "/proc/out.wav"], capsys)
    assert status == 1 and lines == ["rtq: cannot write /proc/out.wav: No such file or directory "
                                     "(no file was changed)"], lines


def test_a_write_that_fails_midway_is_one_line_and_changes_nothing(work):
    """The file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored) makes a write fail after 64 KiB,
    as a full disk would: one line, status 1, the old output intact, no partial file."""
    write_input(work / "long.wav", make_signal(96000, 2, seed=4), 48000)
    (work / "out.wav").write_bytes(b"the previous render")
    before = listing(work)

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-m", "rtq", "render", "tpdf-16", "long.wav", "out.wav", "--force"],
                            cwd=work, env=env, capture_output=True, text=True, timeout=120,
                            preexec_fn=limit_file_size)
    assert result.returncode == 1 and result.stdout == "", result.stderr
    assert result.stderr.splitlines() == ["rtq: cannot write out.wav: File too large (no file was changed)"]
    assert listing(work) == before
    assert (work / "out.wav").read_bytes() == b"the previous render"


# --- counters on stderr ----------------------------------------------------------------

def test_clips_are_reported_on_stderr(work, capsys):
    x = (0.25 * np.sin(np.arange(3000) / 5.0)[:, None] * np.ones((1, 2))).astype(np.float32)
    x[100:200, 0] = 1.5 * np.where(np.arange(100) % 2, 1.0, -1.0)
    x[500:537, 1] = 1.5
    write_input(work / "loud.wav", x, 44100)
    assert rtq(["render", "tpdf-16", "loud.wav", "out.wav"], capsys) == (
        0, ["rtq: 137 samples clipped (ch1 100, ch2 37)"])
    x[100:200, 0], x[501:537, 1] = 0.0, 0.0
    write_input(work / "one.wav", x, 44100)
    assert rtq(["render", "tpdf-16", "one.wav", "out1.wav"], capsys) == (0, ["rtq: 1 sample clipped (ch1 0, ch2 1)"])


def test_loop_resets_are_reported_on_stderr(work, capsys):
    """A sigma-delta loop driven 6 dB over full scale overloads and is reset; the README
    says the resets are counted, and nothing showed them."""
    (work / "hot.yaml").write_text("chain:\n  - gain: {db: 6.0}\n  - oversample:\n      factor: 4\n"
                                   "      chain:\n        - requantize: {bits: 1, dither: none, shaping: {order: 5}}\n")
    x = (0.99 * np.sin(np.arange(6000) * 2 * np.pi * 1000 / 48000)[:, None] * np.ones((1, 2))).astype(np.float32)
    write_input(work / "tone.wav", x, 48000)
    status, lines = rtq(["render", "hot.yaml", "tone.wav", "out.wav", "--subtype", "FLOAT"], capsys)
    assert status == 0
    found = [re.fullmatch(r"rtq: (\d+) noise-shaping loop resets after overloads \(ch1 (\d+), ch2 (\d+)\)", line)
             for line in lines]
    total, ch1, ch2 = next(map(int, m.groups()) for m in found if m)
    assert total == ch1 + ch2 and ch1 == ch2 > 0          # the same tone in both channels


def test_nonfinite_input_is_reported_on_stderr(work, capsys):
    x = make_signal(2000, 2) * 0.5
    x[10, 0], x[20, 0], x[30, 0] = np.nan, np.inf, -np.inf
    x[5, 1], x[1999, 1] = np.nan, np.nan
    write_input(work / "nan.wav", x, 44100)
    status, lines = rtq(["render", "tpdf-24", "nan.wav", "out.wav"], capsys)
    assert status == 0
    assert "rtq: 5 samples non-finite input (ch1 3, ch2 2)" in lines
    assert all(line.startswith("rtq: ") for line in lines)
    y = sf.read("out.wav")[0]
    assert np.all(np.isfinite(y))
    assert np.array_equal(y, Chain.from_preset("tpdf-24")(x, 44100))


def test_clean_render_prints_nothing(work, capsys):
    write_input(work / "quiet.wav", make_signal(2000, 2) * 0.5, 44100)
    assert rtq(["render", "cd-16-gesemann", "quiet.wav", "out.wav"], capsys) == (0, [])


def test_the_start_runs_without_the_cyclic_collector_and_the_render_with_it(work, capsys, monkeypatch):
    """rtq.commands.starting: the preset is read with the collector off; it is back on
    for the render, and after the command, whether it succeeded or failed."""
    import gc

    from rtq import presets, render

    seen = {}
    for module, name in ((presets, "load_preset"), (render, "render_file")):
        def spy(*args, __real=getattr(module, name), __name=name, **kwargs):
            seen[__name] = gc.isenabled()
            return __real(*args, **kwargs)

        monkeypatch.setattr(module, name, spy)
    assert gc.isenabled()
    assert rtq(["render", "cd-16-gesemann", "in.wav", "out.wav"], capsys)[0] == 0
    assert seen == {"load_preset": False, "render_file": True} and gc.isenabled()
    assert rtq(["render", "no-such-preset", "in.wav", "out2.wav"], capsys)[0] == 2
    assert gc.isenabled()


# --- latency compensation --------------------------------------------------------------

@pytest.mark.parametrize("preset", ["cd-16-shibata", "telephone-mulaw"])
def test_no_latency_compensation_is_accepted_and_neutral_without_latency(work, capsys, preset):
    assert Chain.from_preset(preset).latency == 0
    assert rtq_ok(["render", preset, "in.wav", "a.wav"], capsys) == \
        rtq_ok(["render", preset, "in.wav", "b.wav", "--no-latency-compensation"], capsys)
    assert (work / "a.wav").read_bytes() == (work / "b.wav").read_bytes()
    assert sf.info("b.wav").frames == 2000


# --- Ctrl-C ----------------------------------------------------------------------------

def test_ctrl_c_exits_130_and_leaves_no_files(work, capsys, monkeypatch):
    calls = []
    original = Chain.process_columns

    def interrupted(self, block, first):
        calls.append(len(block))
        if len(calls) == 4:
            time.sleep(0.2)            # the I/O threads are idle when Ctrl-C comes
            raise KeyboardInterrupt
        original(self, block, first)

    monkeypatch.setattr(Chain, "process_columns", interrupted)
    outcome = {}
    worker = threading.Thread(daemon=True, target=lambda: outcome.setdefault(
        "status", main(["render", "tpdf-16", "in.wav", "out.wav", "--block-size", "100"])))
    worker.start()
    worker.join(2.0)
    assert not worker.is_alive(), "rtq render did not return within 2 s of Ctrl-C (deadlock)"
    assert outcome["status"] == 130
    assert len(calls) == 4
    assert listing(work) == INPUTS


def test_sigterm_exits_143_and_leaves_no_files(work):
    """SIGTERM left the partial file behind (Ctrl-C did not)."""
    write_input(work / "long.wav", make_signal(48000 * 60, 2, seed=3, rate=48000), 48000)
    child = subprocess.Popen([sys.executable, "-m", "rtq", "render", "dsd64-1bit", "long.wav", "out.wav"],
                             cwd=work, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": os.pathsep.join(
                                 filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))})
    deadline = time.monotonic() + 60
    while not anonymous_files(child.pid, work):      # writing OUTPUT, into a file with no name
        assert child.poll() is None and time.monotonic() < deadline, child.stderr.read()
        time.sleep(0.05)
    child.send_signal(signal.SIGTERM)
    assert child.wait(30) == 143, child.stderr.read()
    assert listing(work) == INPUTS | {"long.wav"}
