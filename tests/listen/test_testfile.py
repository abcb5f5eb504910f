"""Listening-test files (rtq.listen.testfile): read like presets, every problem one
``file:line:column: message`` line and exit status 2."""
from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest
import soundfile as sf

from rtq.cli import main
from rtq.errors import PresetError
from rtq.listen.testfile import DEFAULT_TRIALS, ORIGINAL, REFERENCE, load_test

ABX = """\
name: shaping-abx
type: abx
items:
  - input: music.wav
    loop: [0.0, 1.0]
conditions:
  A: tpdf-16
  B: original
"""
MUSHRA = ABX.replace("type: abx", "type: mushra").replace("name: shaping-abx", "name: shapers")


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A test folder with a 2 s stereo file, a text file and a broken preset; the
    current folder is elsewhere (paths are the test file's)."""
    sf.write(tmp_path / "music.wav", np.zeros((96000, 2)), 48000, subtype="PCM_16")
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "bad.yaml").write_text("chain:\n  - requantize: {bits: 40}\n")
    (tmp_path / "mine.yaml").write_text("name: mine\nchain:\n  - requantize: {bits: 12}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return tmp_path


def write(folder, text, name="test.yaml"):
    path = folder / name
    path.write_text(text)
    return path


def test_an_abx_file(folder):
    path = write(folder, ABX + "seed: 7\nswitch: crossfade\nsequential: true\n")
    test = load_test(path)
    assert (test.name, test.type, test.trials, test.seed, test.switch) == ("shaping-abx", "abx", DEFAULT_TRIALS, 7,
                                                                           "crossfade")
    assert test.sequential and test.level_match
    assert [(c.name, c.source, c.role) for c in test.conditions] == [("A", "tpdf-16", "condition"),
                                                                    ("B", ORIGINAL, "condition")]
    assert test.conditions[0].preset.name == "tpdf-16" and test.conditions[1].preset is None
    assert test.items[0].input == os.fspath(folder / "music.wav") and test.items[0].loop == (0.0, 1.0)
    assert test.text == path.read_text() and test.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_mushra_file(folder):
    path = write(folder, MUSHRA.replace("  A: tpdf-16\n  B: original\n", "  tpdf: tpdf-16\n  mine: mine.yaml\n")
                 .replace("    loop: [0.0, 1.0]\n", "  - input: music.wav\n    loop: [0.5, 1.5]\n")
                 + "reference: tpdf-24\nanchors: [undithered-8, lofi-6]\n", "m.yaml")
    test = load_test(path)
    assert test.names == (REFERENCE, "tpdf", "mine", "undithered-8", "lofi-6")
    assert [c.role for c in test.conditions] == ["reference", "condition", "condition", "anchor", "anchor"]
    assert test.condition("mine").preset.chain[0].params["bits"] == 12   # relative to the test file
    assert test.condition(REFERENCE).source == "tpdf-24"
    assert [item.loop for item in test.items] == [None, (0.5, 1.5)] and test.trials == 2


def test_mushra_anchors_default_to_bs1534s_lowpass_presets(folder):
    test = load_test(write(folder, MUSHRA))
    assert test.names == (REFERENCE, "A", "B", "lowpass-3500", "lowpass-7000")
    anchors = [c for c in test.conditions if c.role == "anchor"]
    assert [c.preset.chain[0].kind for c in anchors] == ["lowpass", "lowpass"]
    assert [c.preset.chain[0].params["hz"] for c in anchors] == [3500.0, 7000.0]


MU = (("type: abx", "type: mushra"),)
BROKEN = [
    # (what, the change to the ABX file: text added, or (old, new) replacements, the line expected)
    ("type", (("type: abx", "type: abc"),),
     "2:7: type must be one of abx, abxy, mushra, got 'abc'; did you mean 'abx'?"),
    ("unknown key", "trails: 16\n", "9:1: unknown key 'trails' at top level; did you mean 'trials'?"),
    ("trials", "trials: 0\n", "9:9: trials must be an integer from 1 to 500, got 0"),
    ("a third condition", "  C: tpdf-24\n", "9:3: unknown condition 'C': an ABX test compares exactly A and B"),
    ("B missing", (("  B: original\n", ""),),
     "6:1: conditions is missing condition 'B' (an ABX test compares exactly A and B)"),
    ("mushra trials", MU + (("  B: original\n", "  B: original\ntrials: 4\nanchors: []\n"),),
     "9:1: trials applies to abx and abxy tests, not mushra"),
    ("abx anchors", "anchors: []\n", "9:1: anchors applies to mushra tests, not abx"),
    ("short loop", (("[0.0, 1.0]", "[1.0, 1.2]"),), "5:11: items[0].loop must be [start, end] in seconds, "
     "start >= 0 and end at least 0.5 s after it, got [1, 1.2]"),
    ("loop past the end", (("[0.0, 1.0]", "[1.0, 3.0]"),),
     "5:11: items[0].loop ends at 3 s, after the end of {folder}/music.wav (2 s)"),
    ("no such input", (("music.wav", "nope.wav"),), "4:12: items[0].input: no such file {folder}/nope.wav"),
    ("live misspelt", (("music.wav", "liv"),), "4:12: items[0].input: no such file {folder}/liv; did you mean 'live'?"),
    ("not audio", (("music.wav", "notes.txt"),),
     "4:12: items[0].input: {folder}/notes.txt is not an audio file rtq can read"),
    ("live with a loop", (("music.wav", "live"),), "5:11: items[0].loop: the live input has no loop points"),
    ("unknown preset", (("tpdf-16", "tpdf-17"),),
     "7:6: conditions.A: unknown preset 'tpdf-17'; closest shipped presets: tpdf-16, tpdf-24"),
    ("broken preset", (("B: original", "B: bad.yaml"),),
     "8:6: conditions.B: {folder}/bad.yaml:2:24: requantize.bits must be an integer from 1 to 32, got 40"),
    ("reference as a name", MU + (("A: tpdf", "reference: tpdf"), ("B: original", "B: original\nanchors: []")),
     "7:3: 'reference' is the hidden reference's name; name this condition otherwise"),
    ("13 conditions", MU + (("  A: tpdf-16\n  B: original\n", "".join(f"  c{i}: tpdf-16\n" for i in range(13))
                             + "anchors: []\n"),), "7:3: conditions must name 1 to 12 presets, got 13"),
    ("two anchors alike", MU + (("B: original", "B: original\nanchors: [tpdf-24, tpdf-24]"),),
     "9:20: anchor 'tpdf-24' is named like another condition or anchor (an anchor takes its preset's name)"),
    ("invalid YAML", "seed: [1\n",
     "10:1: invalid YAML: while parsing a flow sequence, expected ',' or ']', but got '<stream end>'"),
    ("seed", "seed: -1\n", "9:7: seed must be an integer from 0 to 18446744073709551615, got -1"),
    ("switch", "switch: dipp\n", "9:9: switch must be one of dip, crossfade, cut, got 'dipp'; did you mean 'dip'?"),
    ("level_match", "level_match: maybe\n", "9:14: level_match must be true or false, got 'maybe'"),
    ("python tag", "description: !!python/object:os.system x\n",
     "9:14: unsupported YAML tag '!!python/object:os.system': test files hold only plain values"),
    ("empty", ((ABX, ""),), "1:1: test file is empty (expected a mapping)"),
    ("no items", (("items:\n  - input: music.wav\n    loop: [0.0, 1.0]\n", "items: []\n"),),
     "3:8: items must be a list of 1 to 100 items ({{input, loop}}), got an empty list"),
    ("a list", ((ABX, "- a\n- b\n"),), "1:1: test file must be a mapping, got a list of 2 items"),
]


def changed(text: str, change) -> str:
    if isinstance(change, str):
        return text + change
    for old, new in change:
        text = text.replace(old, new)
    return text


@pytest.mark.parametrize("change, expected", [case[1:] for case in BROKEN], ids=[case[0] for case in BROKEN])
def test_broken_test_files_get_one_line_and_exit_2(folder, capsys, change, expected):
    path = write(folder, changed(ABX, change))
    expected = f"{path}:" + expected.format(folder=folder)
    with pytest.raises(PresetError) as error:
        load_test(path)
    assert str(error.value).startswith(expected), str(error.value)
    assert main(["listen", str(path)]) == 2
    assert capsys.readouterr().err.startswith(expected)


def test_every_problem_of_a_file_is_reported(folder):
    path = write(folder, ABX.replace("type: abx", "type: abxy").replace("tpdf-16", "tpdf-17") + "seed: x\nswitch: 1\n")
    with pytest.raises(PresetError) as error:
        load_test(path)
    assert [line.split(": ")[0] for line in str(error.value).splitlines()] == [
        f"{path}:7:6", f"{path}:9:7", f"{path}:10:9"]


def test_test_files_have_the_presets_limits(folder):
    path = write(folder, ABX + "description: " + "x" * 300_000 + "\n")
    with pytest.raises(PresetError, match="the test file is larger than"):
        load_test(path)
    path = write(folder, "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{k}: &{k} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, k in zip("abcdefgh", "bcdefghi")))
    with pytest.raises(PresetError, match="the test file expands to more than"):
        load_test(path)
