"""``rtq presets`` and ``rtq validate``, in process and as a real ``python -m rtq``."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import rtq.commands.presets
from rtq.cli import main
from rtq.errors import UsageError
from rtq.presets import MAX_PRESET_BYTES
from rtq.presets import shipped_presets

REPO = Path(__file__).resolve().parent.parent
GOOD = "name: mine\nchain:\n  - requantize: {bits: 16, dither: tpdf, shaping: shibata}\n"
SHIBATA_RATES = "20948-23152 Hz, 30400-33600 Hz, 35910-39690 Hz, 41895-50400 Hz"
BAD = "chain:\n  - requantize:\n      bits: sixteen\n      ditherr: tpdf\n"
BAD_LINES = [
    "bad.yaml:3:13: requantize.bits must be an integer from 1 to 32, got 'sixteen'",
    "bad.yaml:4:7: unknown key 'ditherr' in requantize; did you mean 'dither'?",
]


@pytest.fixture
def files(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "bad.yaml").write_text(BAD)
    return tmp_path


def test_presets_lists_every_shipped_preset_with_its_description(capsys):
    assert main(["presets"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert err == ""
    assert [line.split()[0] for line in lines] == [p.name for p in shipped_presets()]
    for line, preset in zip(lines, shipped_presets()):
        assert line.endswith("  " + preset.description)


def test_validate_good_files_and_names(files, capsys):
    assert main(["validate", "good.yaml", "cd-16-shibata"]) == 0
    assert capsys.readouterr() == (f"good.yaml: ok; stream rates {SHIBATA_RATES}\n"
                                   f"cd-16-shibata: ok; stream rates {SHIBATA_RATES}\n", "")
    assert main(["validate", "tpdf-16", "dsd64-1bit"]) == 0
    assert capsys.readouterr() == ("tpdf-16: ok\ndsd64-1bit: ok\n", "")


BAND = "  - oversample:\n      factor: 4\n      chain:\n        - requantize: {bits: 4, shaping: {order: 3, band_hz: 120000}}\n"


def test_validate_names_every_limit_of_a_preset_no_rate_can_run(files, capsys):
    (files / "band.yaml").write_text("chain:\n" + BAND)
    (files / "clash.yaml").write_text(GOOD + BAND)
    assert main(["validate", "band.yaml", "clash.yaml"]) == 2
    out, err = capsys.readouterr()
    # (a 4-bit order-3 loop is stable to 0.676 peak at 96 kHz: validate warns of full scale)
    assert out == ("band.yaml: ok; stream rates 60001-768000 Hz\n  warning: sigma-delta loop 1.1 is stable up to "
                   "0.676 peak (-3.4 dB re full scale, at 384000 Hz); a full-scale input reaches it at 1.000 (+0.0 dB): "
                   "input peaks above -3.4 dB re full scale overload it and its noise floor collapses (counted as "
                   "overloads)\n")
    assert err == ("clash.yaml: no stream rate can run this preset: "
                   "clash.yaml:3:51: shaping 'shibata' has tables for 22050, 32000, 37800, 44100, 48000 Hz (+-5 %); "
                   "clash.yaml:7:42: band_hz 120000 needs the stage to run above 240000 Hz "
                   "(it runs at x4: stream rates above 60000 Hz) (rtq runs streams at 1000-768000 Hz)\n")


def test_validate_refuses_a_band_only_rates_rtq_does_not_run_could_hold(files, capsys):
    (files / "wide.yaml").write_text("chain:\n" + BAND.replace("120000", "2000000"))   # streams above 1 MHz
    assert main(["validate", "wide.yaml"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("wide.yaml: no stream rate can run this preset: ")
    assert err.endswith("(rtq runs streams at 1000-768000 Hz)\n")


def test_validate_at_a_rate_prepares_the_chain(files, capsys):
    assert main(["validate", "--samplerate", "44100", "good.yaml"]) == 0
    assert capsys.readouterr() == ("good.yaml: ok at 44100 Hz\n", "")
    assert main(["validate", "--samplerate", "96000", "good.yaml", "tpdf-16"]) == 2
    assert capsys.readouterr() == (
        "tpdf-16: ok at 96000 Hz\n",
        "good.yaml:3:51: shaping 'shibata' has no table for 96000 Hz; it supports 22050, 32000, 37800, 44100, "
        "48000 Hz (+-5 %)\n")


def test_validate_reports_every_problem_and_exits_2(files, capsys):
    assert main(["validate", "good.yaml", "bad.yaml", "missing.yaml"]) == 2
    out, err = capsys.readouterr()
    assert out.splitlines() == [f"good.yaml: ok; stream rates {SHIBATA_RATES}"]
    assert err.splitlines() == BAD_LINES + ["missing.yaml: cannot read preset: No such file or directory"]


def test_other_user_errors_are_prefixed_and_keep_their_status(monkeypatch, capsys):
    def broken():
        raise UsageError("first line\nsecond line")

    monkeypatch.setattr(rtq.commands.presets, "shipped_presets", broken)
    assert main(["presets"]) == 2
    assert capsys.readouterr() == ("", "rtq: first line\nrtq: second line\n")


@pytest.mark.parametrize("argv", [[], ["frobnicate"], ["validate"]])
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    assert "usage: rtq" in capsys.readouterr().err


def test_python_dash_m_rtq_validate(files):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(
        [sys.executable, "-m", "rtq", "validate", "good.yaml", "bad.yaml"],
        cwd=files, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert result.stdout.splitlines() == [f"good.yaml: ok; stream rates {SHIBATA_RATES}"]
    assert result.stderr.splitlines() == BAD_LINES
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize("command", ["info", "validate"])
@pytest.mark.parametrize("rate", ["0", "-5", "nan", "inf", "48", "999", "44100.5", "768001", "1e300"])
def test_a_rate_that_is_not_a_stream_rate_is_one_line(command, rate, capsys):
    """Stream rates are whole Hz from 1000 to 768000: 48 (kHz meant) or 44100.5 is a slip."""
    assert main([command, "tpdf-16", "--samplerate", rate]) == 2
    assert capsys.readouterr() == (
        "", f"rtq: --samplerate must be a whole number of Hz from 1000 to 768000, got {float(rate):g}"
            + ("; did you mean 48000?" if rate == "48" else "") + "\n")


@pytest.mark.parametrize("rate", ["1000", "768000", "44100.0"])
def test_stream_rates_at_the_ends_of_the_range_resolve(rate, capsys):
    assert main(["info", "tpdf-16", "--samplerate", rate]) == 0
    assert f"stream rate {float(rate):g} Hz" in capsys.readouterr().out


# --- presets that would exhaust the machine, and messages a new user meets --------------

LAUGHS = "".join(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9) if prev else ', '.join(['lol'] * 9)}]\n"
                 for prev, name in zip([None, *"abcdefgh"], "abcdefghi"))


def rtq_subprocess(*argv, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    # The timeout only stops a run that would not end: these inputs once took minutes (and
    # memory) to read; now they are refused after reading a bounded part.
    return subprocess.run([sys.executable, "-m", "rtq", *map(str, argv)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("name, content, message", [
    ("laughs.yaml", LAUGHS + "chain: [gain: {db: 0}]\n",
     "laughs.yaml: the preset expands to more than 100000 YAML values (counting what aliases repeat), rtq's limit"),
    ("big.yaml", "chain: [gain: {db: 0}]\n" + "#" * MAX_PRESET_BYTES + "\n",
     "big.yaml: the preset is larger than 65536 bytes, rtq's limit for a preset"),
    ("/dev/zero", None, "/dev/zero: the preset is larger than 65536 bytes, rtq's limit for a preset"),
], ids=["billion-laughs", "too-large", "dev-zero"])
def test_presets_that_would_exhaust_the_machine_get_one_line(files, name, content, message):
    """A 375-byte preset of nested aliases kept validate busy 166 s (about 8x per level:
    this one, of nine levels, would take about 20 minutes); /dev/zero was read until a
    MemoryError.  Both are refused having read a bounded part."""
    if content is not None:
        (files / name).write_text(content)
        assert name != "laughs.yaml" or len(LAUGHS) < 400
    result = rtq_subprocess("validate", name, cwd=files)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", message + "\n")


def test_a_preset_just_within_the_size_limit_is_read(files, capsys):
    text = "chain: [gain: {db: 0}]\n"
    (files / "padded.yaml").write_text(text + "#" * (MAX_PRESET_BYTES - len(text) - 1) + "\n")
    assert main(["validate", "padded.yaml"]) == 0
    assert capsys.readouterr() == ("padded.yaml: ok\n", "")


@pytest.fixture
def audio(files):
    import soundfile as sf

    sf.write(str(files / "in.wav"), [[0.0, 0.0]] * 20000, 44100)   # 80 kB: over the preset size limit
    (files / "notes.flac").write_bytes(b"\xff\xfe\x00not flac")
    return files


@pytest.mark.parametrize("argv, status, out, err", [
    (["validate", "no.yaml"], 2, "",
     "no.yaml:2:36: requantize.dither must be one of none, rpdf, tpdf, tpdf-hp, gaussian, got no; "
     "YAML reads no as false; did you mean 'none'?\n"),
    (["validate", "upper.yaml"], 2, "",
     "upper.yaml:2:36: requantize.dither must be one of none, rpdf, tpdf, tpdf-hp, gaussian, got 'TPDF'; "
     "did you mean 'tpdf'?\n"),
    (["validate", "tpdf16"], 2, "", "rtq: unknown preset 'tpdf16'; closest shipped presets: tpdf-16, tpdf-24\n"),
    (["render", "in.wav", "cd-16-shibata", "out.wav"], 2, "",
     "in.wav: cannot read preset: it looks like an audio file (WAV), not a YAML preset\n"),
    (["validate", "notes.flac"], 2, "", "notes.flac: cannot read preset: not UTF-8 text (it looks like an audio file)\n"),
    (["info", "tpdf-16", "--samplerate", "44.1"], 2, "",
     "rtq: --samplerate must be a whole number of Hz from 1000 to 768000, got 44.1; did you mean 44100?\n"),
], ids=["yaml-no", "upper-case", "unknown-preset", "swapped-arguments", "binary-file", "rate-in-khz"])
def test_messages_a_new_user_meets(audio, capsys, argv, status, out, err):
    (audio / "no.yaml").write_text("chain:\n  - requantize: {bits: 16, dither: no}\n")
    (audio / "upper.yaml").write_text("chain:\n  - requantize: {bits: 16, dither: TPDF}\n")
    assert main(argv) == status
    assert capsys.readouterr() == (out, err)
    assert not (audio / "out.wav").exists()


def test_info_without_a_rate_uses_one_the_preset_runs_at_and_says_so(capsys):
    """cd-16-lipshitz (a 44.1 kHz table) failed at info's default 48 kHz with no hint."""
    assert main(["info", "cd-16-lipshitz"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "seed 1; stream rate 44100 Hz (the preset cannot run at 48000 Hz; its rates: 41895-46305 Hz)"
    assert "lipshitz shaping (44100 Hz table, 5 taps)  [44100 Hz]" in out[3]
    assert main(["info", "cd-16-shibata"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == "seed 1; stream rate 48000 Hz"
