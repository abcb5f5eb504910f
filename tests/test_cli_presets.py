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
from rtq.presets import shipped_presets

REPO = Path(__file__).resolve().parent.parent
GOOD = "name: mine\nchain:\n  - requantize: {bits: 16, dither: tpdf, shaping: shibata}\n"
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
    assert capsys.readouterr() == ("good.yaml: ok\ncd-16-shibata: ok\n", "")


def test_validate_reports_every_problem_and_exits_2(files, capsys):
    assert main(["validate", "good.yaml", "bad.yaml", "missing.yaml"]) == 2
    out, err = capsys.readouterr()
    assert out.splitlines() == ["good.yaml: ok"]
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
    assert result.stdout.splitlines() == ["good.yaml: ok"]
    assert result.stderr.splitlines() == BAD_LINES
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize("rate", ["0", "-5", "nan"])
def test_info_at_a_rate_that_is_not_positive_is_one_line(rate, capsys):
    assert main(["info", "tpdf-16", "--samplerate", rate]) == 2
    assert capsys.readouterr() == ("", f"rtq: --samplerate must be a positive number, not {float(rate):g}\n")
