"""Planning a batch (in process): jobs are every input times every preset; inputs from
files, folders, globs and standard input with their roots; output names; and every
mistake the plan can see is one line before anything runs (nothing is made)."""
from __future__ import annotations

import io
import os
import subprocess

import numpy as np
import pytest
import soundfile as sf

from rtq.batch.identity import derive_seed
from rtq.batch.jobs import plan
from rtq.cli import main

from .helpers import make_corpus

PRESETS = ["cd-16-shibata", "tpdf-16"]


@pytest.fixture
def corpus(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_corpus(tmp_path / "in", 4, seconds=0.05)
    (tmp_path / "in" / "notes.txt").write_text("not audio")
    (tmp_path / "in" / "._take00.wav").write_bytes(b"\0\5\26\7")     # macOS AppleDouble
    return tmp_path / "in"


def one_line_error(argv, capsys, *needles) -> str:
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert status == 2 and out == "" and len(lines) == 1, (status, out, err)
    assert lines[0].startswith("rtq: ") and "Traceback" not in lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def test_every_input_times_every_preset(corpus, tmp_path):
    jobs = plan(PRESETS, [corpus], tmp_path / "out")
    assert [(os.path.basename(j.input), j.preset) for j in jobs] == [
        (f"take{i:02d}.wav", p) for i in (0, 2, 1, 3) for p in PRESETS]   # folder first, then sub/
    assert {j.relpath for j in jobs} == {"take00.wav", "take02.wav", "sub/take01.wav", "sub/take03.wav"}
    job = jobs[0]
    assert job.output == str(tmp_path / "out" / "take00.cd-16-shibata.wav")
    assert job.seed == derive_seed(1, "cd-16-shibata", "take00.wav")      # the preset's seed is 1
    assert job.manifest == str(tmp_path / "out" / "rtq-batch.jsonl")
    assert job.command() == ["rtq", "render", "cd-16-shibata", job.input, job.output, "--seed", str(job.seed)]


def test_roots_of_files_globs_and_stdin(corpus, tmp_path):
    by_glob = plan(["tpdf-16"], ["in/**/*.wav"], "out", seed=5)
    assert [j.relpath for j in by_glob] == ["sub/take01.wav", "sub/take03.wav", "take00.wav", "take02.wav"]
    named = plan(["tpdf-16"], ["in/sub/take01.wav"], "out", seed=5)
    assert named[0].relpath == "take01.wav" and named[0].seed == derive_seed(5, "tpdf-16", "take01.wav")
    piped = plan(["tpdf-16"], ["-"], "out", seed=5, stdin=io.StringIO("in/sub/take01.wav\n\nin/take02.wav\n"))
    assert [j.relpath for j in piped] == ["take01.wav", "take02.wav"]
    # the same relative path gives the same seed from another current folder
    os.chdir(corpus)
    again = plan(["tpdf-16"], ["**/*.wav"], tmp_path / "out", seed=5)
    assert [j.seed for j in again] == [j.seed for j in by_glob]


def test_name_template_keeps_the_tree_and_picks_the_extension(corpus, tmp_path):
    x = np.zeros((100, 2))
    sf.write(corpus / "sub" / "song.flac", x, 44100, subtype="PCM_24")
    (tmp_path / "float.yaml").write_text("name: float\nchain:\n  - gain: {db: -1}\n")
    jobs = plan(["cd-16-shibata", tmp_path / "float.yaml"], [corpus / "sub" / "song.flac"], "out",
                name="{preset}/{relpath}{ext}")
    # FLAC holds 16-bit PCM but not FLOAT: that one goes to WAV
    assert [os.path.relpath(j.output, "out") for j in jobs] == ["cd-16-shibata/song.flac", "float/song.wav"]
    tree = plan(["tpdf-16"], [corpus], "out", name="{relpath}-{stem}{ext}")
    assert os.path.relpath(tree[-1].output, "out") == "sub/take03-take03.wav"


def test_output_folder_and_hidden_files_are_not_searched(corpus, tmp_path):
    out = corpus / "rendered"
    make_corpus(out, 2, seconds=0.01, nested=False)     # outputs of an earlier run
    jobs = plan(["tpdf-16"], [corpus], out)
    assert not any("rendered" in j.input or "._" in j.input for j in jobs)
    assert len(jobs) == 4


@pytest.mark.parametrize("extra,needles", [
    (["--name", "{stem}{ext}"], ["two jobs would write", "take01.wav", "put {relpath} or {preset} in --name"]),
    (["--name", "{stem}.{bits}{ext}"], ["unknown field {bits}"]),
    (["--name", "../{stem}{ext}"], ["not inside the output folder"]),
    (["--name", "{stem}.txt"], ["cannot tell the audio format"]),
    (["--subtype", "PCM_S8"], ["cannot hold this chain's output"]),
    (["--jobs", "0"], ["--jobs must be at least 1"]),
    (["--local-cluster", "0"], ["--local-cluster must be at least 1"]),
    (["--seed", "-1"], ["--seed must be an integer from 0"]),
])
def test_plan_mistakes_are_one_line_before_anything_runs(corpus, tmp_path, capsys, extra, needles):
    both = [corpus / "sub"] if "--name" in extra and "{stem}.{bits}" not in extra[1] else []
    one_line_error(["batch", "cd-16-shibata", "--inputs", corpus, *both, "--out", tmp_path / "out", *extra],
                   capsys, *needles)
    assert not (tmp_path / "out").exists()


def test_no_inputs(corpus, tmp_path, capsys, monkeypatch):
    (tmp_path / "empty").mkdir()
    one_line_error(["batch", "tpdf-16", "--inputs", tmp_path / "empty", "--out", "out"], capsys,
                   "no audio files in this folder")
    one_line_error(["batch", "tpdf-16", "--inputs", "in/*.mp3", "--out", "out"], capsys, "matches no audio file")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    one_line_error(["batch", "tpdf-16", "--inputs", "-", "--out", "out"], capsys, "no inputs")
    assert not (tmp_path / "out").exists()


def test_an_input_that_is_an_output(corpus, tmp_path, capsys):
    one_line_error(["batch", "tpdf-16", "--inputs", corpus / "take00.wav", "--out", corpus, "--name", "{stem}{ext}"],
                   capsys, "is an input and an output of this batch")


def test_output_folder_that_cannot_be_written(corpus, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    one_line_error(["batch", "tpdf-16", "--inputs", corpus, "--out", tmp_path / "file" / "out"], capsys,
                   "is not a folder")
    if os.geteuid() != 0:
        pytest.skip("mounting a read-only filesystem needs root (CI runs as root)")
    readonly = tmp_path / "ro"
    readonly.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "rtq-test", str(readonly)], check=True)
    try:
        one_line_error(["batch", "tpdf-16", "--inputs", corpus, "--out", readonly / "out"], capsys,
                       f"cannot write in {readonly}")
    finally:
        subprocess.run(["umount", "-l", str(readonly)], check=True)


def test_presets_that_cannot_name_files(corpus, tmp_path, capsys):
    (tmp_path / "a.yaml").write_text("name: x/y\nchain:\n  - gain: {db: -1}\n")
    one_line_error(["batch", tmp_path / "a.yaml", "--inputs", corpus, "--out", "out"], capsys,
                   "cannot be part of a file name")
    (tmp_path / "b.yaml").write_text("name: tpdf-16\nchain:\n  - gain: {db: -1}\n")
    one_line_error(["batch", "tpdf-16", tmp_path / "b.yaml", "--inputs", corpus, "--out", "out"], capsys,
                   "two presets are called tpdf-16")
