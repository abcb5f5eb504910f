"""What a job does with bad inputs and existing outputs: each bad file fails alone with
its one-line error while the good ones finish; a full disk fails the jobs that hit it;
an output the batch wrote and someone damaged is rendered again; an output with no
record is kept when it holds exactly the job's bytes, else refused without --force."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from .helpers import audio_files, make_corpus, manifest_lines, run_rtq


def write(path: Path, seconds: float, rate: int) -> Path:
    x = np.clip(0.3 * np.random.default_rng(rate).standard_normal((int(seconds * rate), 2)), -1, 1)
    sf.write(path, x, rate, subtype="PCM_16")
    return path


BAD_INPUTS = {   # name: (how it is made, what its error says)
    "not-audio.wav": (lambda p: p.write_text("these are words, not samples\n"), "not-audio.wav"),
    "empty.wav": (lambda p: p.write_bytes(b""), "empty.wav"),
    "truncated.wav": (lambda p: p.write_bytes(write(p, 0.5, 44100).read_bytes()[:30000]), "truncated.wav"),
    "telephone.wav": (lambda p: write(p, 0.1, 8000), "shibata"),
    "slow.wav": (lambda p: write(p, 1.0, 500), "runs at 500 Hz"),
    "missing.wav": (lambda p: None, "No such file or directory"),
}


def test_each_bad_input_fails_alone_with_one_line(tmp_path):
    good = make_corpus(tmp_path / "good", 3, nested=False)
    bad = tmp_path / "bad"
    bad.mkdir()
    for name, (make, _) in BAD_INPUTS.items():
        make(bad / name)
    out = tmp_path / "out"
    result = run_rtq("batch", "cd-16-shibata", "--inputs", *good, *(bad / name for name in BAD_INPUTS),
                     "--out", out, "--jobs", "2")
    assert result.returncode == 1
    records = {Path(r["input"]).name: r for r in manifest_lines(out / "rtq-batch.jsonl")}
    assert {name for name, r in records.items() if r["status"] == "done"} == {p.name for p in good}
    for name, (_, needle) in BAD_INPUTS.items():
        record = records[name]
        assert record["status"] == "failed" and record["output_sha256"] is None, record
        assert needle in record["error"] and "\n" not in record["error"] and "Traceback" not in record["error"], \
            record["error"]
    assert sorted(audio_files(out)) == sorted(f"{p.stem}.cd-16-shibata.wav" for p in good)
    lines = result.stderr.splitlines()
    assert lines[0].startswith("rtq batch: 9 jobs: 3 done, 0 skipped, 6 failed;")
    assert [line.split(" (cd-16-shibata)")[0] for line in lines[1:6]] == \
        [f"rtq: failed: {bad / name}" for name in BAD_INPUTS][:5]
    assert lines[6:] == [f"rtq: ... and 1 more failed job: see {out / 'rtq-batch.jsonl'}"]


def test_a_full_disk_fails_the_jobs_it_stops(tmp_path):
    from filesystems import small_tmpfs

    inputs = make_corpus(tmp_path / "in", 5, seconds=0.5, nested=False)   # 88 kB each at 16 bits
    with small_tmpfs(tmp_path / "small", "256k") as small:
        out = small / "out"
        result = run_rtq("batch", "cd-16-shibata", "--inputs", *inputs, "--out", out, "--jobs", "1",
                         "--manifest", tmp_path / "manifest.jsonl")
        assert result.returncode == 1
        records = manifest_lines(tmp_path / "manifest.jsonl")
        done = [r for r in records if r["status"] == "done"]
        failed = [r for r in records if r["status"] == "failed"]
        assert len(done) == 2 and len(failed) == 3, records
        assert all("No space left on device" in r["error"] for r in failed), failed
        # what is there is complete; nothing partial or hidden
        assert sorted(os.listdir(out)) == sorted(Path(r["output"]).name for r in done)
        for record in done:
            assert sf.info(record["output"]).frames == 22050


@pytest.fixture
def rendered(tmp_path):
    """A finished batch of 3 files through tpdf-16: (argv, out folder, manifest path)."""
    inputs = make_corpus(tmp_path / "in", 3, nested=False)
    out = tmp_path / "out"
    argv = ("batch", "tpdf-16", "--inputs", *inputs, "--out", out, "--jobs", "1")
    assert run_rtq(*argv).returncode == 0
    return argv, out, out / "rtq-batch.jsonl"


def test_a_damaged_output_is_rendered_again(rendered):
    argv, out, manifest = rendered
    before = audio_files(out)
    target = out / "take01.tpdf-16.wav"
    data = bytearray(target.read_bytes())
    data[-100] ^= 0x01
    target.write_bytes(bytes(data))
    result = run_rtq(*argv)
    assert result.returncode == 0 and " 1 done, 2 skipped, 0 failed" in result.stderr
    assert audio_files(out) == before
    assert len(manifest_lines(manifest)) == 4


def test_an_output_without_its_record_is_kept_when_identical(rendered):
    """A kill after the output appeared and before its record was written."""
    argv, out, manifest = rendered
    lines = manifest.read_text().splitlines(keepends=True)
    manifest.write_text("".join(lines[:-1]))
    target = Path(json.loads(lines[-1])["output"])
    inode = target.stat().st_ino
    result = run_rtq(*argv)
    assert result.returncode == 0 and " 1 done, 2 skipped, 0 failed" in result.stderr
    assert target.stat().st_ino == inode            # left as it was, not replaced
    assert manifest.read_text().splitlines(keepends=True)[-1].split('"worker"')[0] == \
        lines[-1].split('"worker"')[0]


def test_someone_elses_file_needs_force(rendered):
    argv, out, manifest = rendered
    manifest.unlink()
    target = out / "take02.tpdf-16.wav"
    theirs = target.read_bytes()[:-2] + b"\0\0"
    target.write_bytes(theirs)
    result = run_rtq(*argv)
    assert result.returncode == 1 and " 2 done, 0 skipped, 1 failed" in result.stderr
    assert f"rtq: failed: {out.parent / 'in' / 'take02.wav'} (tpdf-16): OUTPUT {target} exists; use --force" \
        in result.stderr
    assert target.read_bytes() == theirs
    result = run_rtq(*argv, "--force")
    assert result.returncode == 0 and " 1 done, 2 skipped, 0 failed" in result.stderr
    assert target.read_bytes() != theirs
