"""What ``rtq render`` guarantees about files, with real files and real processes:
OUTPUT appears complete and never over a file that exists at that moment without
--force (even one that appears during the render, or another render's); nothing is left
behind after SIGKILL; an input that ends before its header's length is an error unless
--allow-short; errors name the side that failed."""
from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from filesystems import anonymous_files, fill, small_tmpfs, without_tmpfile
from signals import make_signal, write_input

from rtq.chain import Chain
from rtq.cli import main

REPO = Path(__file__).resolve().parent.parent
LONG_FRAMES = 48000 * 120     # dsd64-1bit takes several seconds over it


def listing(directory: Path) -> set[str]:
    return set(os.listdir(directory))


def start_render(*argv, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen([sys.executable, "-m", "rtq", "render", *map(str, argv)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_until_writing(child: subprocess.Popen, directory: Path) -> None:
    """Until ``child`` holds its unnamed OUTPUT open in ``directory``."""
    deadline = time.monotonic() + 60
    while not anonymous_files(child.pid, directory):
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)


@pytest.fixture(scope="module")
def long_input(tmp_path_factory) -> Path:
    """120 s of 48 kHz stereo PCM_16 (noise whose peaks, -6 dB in dsd64-1bit, stay below its
    loop's maximum stable amplitude: at 0.2 RMS, 10 loop samples went above and were said)."""
    path = tmp_path_factory.mktemp("long") / "long.wav"
    rng = np.random.default_rng(15)
    with sf.SoundFile(path, "w", 48000, 2, "PCM_16") as f:
        for _ in range(LONG_FRAMES // 480000):
            f.write((0.15 * rng.standard_normal((480000, 2))).astype(np.float32))
    return path


@pytest.fixture
def work(tmp_path, long_input, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    os.link(long_input, tmp_path / "long.wav")
    return tmp_path


MEDIUM_FRAMES = 48000 * 20    # dsd64-1bit renders it in a few seconds: long enough to race


@pytest.fixture
def medium(tmp_path, long_input, monkeypatch) -> Path:
    """A directory (the cwd) holding medium.wav, the first 20 s of the long input."""
    monkeypatch.chdir(tmp_path)
    sf.write(str(tmp_path / "medium.wav"), sf.read(str(long_input), frames=MEDIUM_FRAMES, dtype="int16")[0], 48000,
             subtype="PCM_16")
    return tmp_path


# --- no-clobber at the end, no leftovers -------------------------------------------------

def test_a_file_that_appears_at_output_during_a_render_survives_byte_for_byte(medium):
    """It was replaced by rtq's WAV (the check ran before the render, os.replace after)."""
    work = medium
    child = start_render("dsd64-1bit", "medium.wav", "precious.wav", cwd=work)
    wait_until_writing(child, work)
    (work / "precious.wav").write_bytes(b"PRECIOUS\n")
    out, err = child.communicate(timeout=120)
    assert (child.returncode, out) == (1, "")
    assert err.splitlines() == ["rtq: precious.wav appeared while rtq worked; it was left alone and the result "
                                "is in precious.rtq-1.wav (--force replaces it)"]
    assert (work / "precious.wav").read_bytes() == b"PRECIOUS\n"
    assert sf.info(str(work / "precious.rtq-1.wav")).frames == MEDIUM_FRAMES      # complete
    assert listing(work) == {"medium.wav", "precious.wav", "precious.rtq-1.wav"}


def test_two_renders_to_one_output_one_wins_the_other_exits_1(medium):
    """Both exited 0 and one result was silently lost."""
    work = medium
    children = [start_render("dsd64-1bit", "medium.wav", "out.wav", cwd=work) for _ in range(2)]
    results = [(child.wait(120), *child.communicate()) for child in children]
    assert sorted(status for status, _, _ in results) == [0, 1], results
    (_, _, won), (_, _, lost) = sorted(results)
    assert won == "" and lost.splitlines() == [
        "rtq: out.wav appeared while rtq worked; it was left alone and the result is in out.rtq-1.wav "
        "(--force replaces it)"]
    assert (work / "out.wav").read_bytes() == (work / "out.rtq-1.wav").read_bytes()
    assert sf.info(str(work / "out.wav")).frames == MEDIUM_FRAMES
    assert listing(work) == {"medium.wav", "out.wav", "out.rtq-1.wav"}


def test_output_is_synced_after_its_last_write_before_it_gets_its_name(tmp_path, capsys):
    """soundfile's close syncs before libsndfile's last rewrite of the header (its
    lengths): after a crash, OUTPUT (over the file it replaced, with --force) could have
    had the header of an empty file.  A filesystem logs what reaches it, in order."""
    source = write_input(tmp_path / "in.wav", make_signal(4800, 2, seed=5, rate=48000), 48000)
    log = tmp_path / "filesystem.log"
    with without_tmpfile(tmp_path, log=log) as directory:
        (directory / "out.wav").write_bytes(b"the user's file")
        assert main(["render", "tpdf-16", str(source), str(directory / "out.wav"), "--force"]) == 0, capsys.readouterr()
        assert sf.info(str(directory / "out.wav")).frames == 4800
    events = [line.split() for line in log.read_text().splitlines()]
    published = next(i for i, event in enumerate(events) if event[0] == "rename" and event[2] == "/out.wav")
    temporary = events[published][1]
    last_write = max(i for i, event in enumerate(events) if event[:2] == ["write", temporary])
    assert events[last_write][2] == "0"      # the header, rewritten on closing
    assert ["fsync", temporary] in events[last_write:published], events[last_write:]


@pytest.mark.parametrize("force", [False, True], ids=["plain", "force"])
def test_sigkill_at_random_moments_leaves_no_file(work, force):
    """4 of 10 kills left a hidden .partial file (32 MB to 885 MB) that nothing removed."""
    (work / "out.wav").write_bytes(b"old") if force else None
    before = listing(work)
    rng = random.Random(15 + force)
    for delay in sorted(rng.uniform(0.0, 2.5) for _ in range(6)):
        child = start_render("dsd64-1bit", "long.wav", "out.wav", *(["--force"] if force else []), cwd=work)
        time.sleep(delay)
        assert child.poll() is None, child.communicate()     # still rendering
        child.send_signal(signal.SIGKILL)
        child.communicate()
        assert listing(work) == before, delay
    if force:
        assert (work / "out.wav").read_bytes() == b"old"


# --- inputs that end early and inputs that fail ------------------------------------------

def truncated_wav(path: Path) -> tuple[int, int]:
    """A WAV whose header promises 480 000 frames and which holds 250."""
    sf.write(str(path), np.zeros((480000, 1), dtype=np.int16), 48000, subtype="PCM_16")
    header = path.stat().st_size - 480000 * 2
    os.truncate(path, header + 250 * 2)
    return 480000, 250


def corrupted_in_the_middle(path: Path, fmt: str, subtype: str) -> tuple[int, int]:
    """A compressed file with 2000 bytes zeroed in its middle: (frames promised, frames
    it decodes to, as soundfile reads it)."""
    x = 0.3 * make_signal(240000, 2, seed=5, rate=48000)
    sf.write(str(path), x, 48000, format=fmt, subtype=subtype)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 2000] = bytes(2000)
    path.write_bytes(bytes(data))
    promised = sf.info(str(path)).frames
    try:
        present = len(sf.read(str(path))[0])
    except sf.LibsndfileError:
        present = None                    # the decoder fails: the error says after how many
    return promised, present


SHORT = {   # name: (input file, how it is made)
    "truncated-wav": ("in.wav", truncated_wav),
    "ogg-corrupted": ("in.ogg", lambda p: corrupted_in_the_middle(p, "OGG", "VORBIS")),
    "flac-corrupted": ("in.flac", lambda p: corrupted_in_the_middle(p, "FLAC", "PCM_16")),
}


@pytest.mark.parametrize("case", list(SHORT))
def test_an_input_that_ends_early_is_an_error_naming_both_counts(tmp_path, monkeypatch, capsys, case):
    """A truncated WAV, an Ogg corrupted in the middle: short output, exit 0, no word; a
    corrupt FLAC: 'cannot write o/x.wav: ... flac decoder lost sync' (the input failed)."""
    monkeypatch.chdir(tmp_path)
    name, make = SHORT[case]
    promised, present = make(tmp_path / name)
    assert present is None or present < promised
    status = main(["render", "tpdf-16", name, "out.wav"])
    out, err = capsys.readouterr()
    assert (status, out) == (1, "") and err.count("\n") == 1, err
    if present is None:
        found = re.fullmatch(rf"rtq: cannot read {name}: flac decoder lost sync after (\d+) of {promised} "
                             r"frames\n", err)
    else:
        found = re.fullmatch(rf"rtq: {name} ends after (\d+) of the {promised} frames its header promises "
                             rf"\({promised - present} missing: truncated or damaged\); --allow-short takes "
                             r"what is there\n", err)
    assert found, err
    assert present is None or int(found[1]) == present
    assert listing(tmp_path) == {name}


@pytest.mark.parametrize("case", list(SHORT))
def test_allow_short_renders_what_is_there_and_says_how_much_is_missing(tmp_path, monkeypatch, capsys, case):
    monkeypatch.chdir(tmp_path)
    name, make = SHORT[case]
    promised, present = make(tmp_path / name)
    status = main(["render", "tpdf-16", name, "out.wav", "--allow-short"])
    out, err = capsys.readouterr()
    assert (status, out) == (0, "")
    why = r" \(flac decoder lost sync\)" if present is None else ""
    found = re.fullmatch(rf"rtq: {name} ended after (\d+) of the {promised} frames its header promises{why}: "
                         r"(\d+) frames \((\d+\.\d{3}) s\) missing\n", err)
    assert found, err
    rendered, missing = int(found[1]), int(found[2])
    assert present is None or rendered == present
    assert rendered + missing == promised and float(found[3]) == round(missing / 48000, 3)
    assert sf.info("out.wav").frames == rendered > 0
    if present is not None:   # the frames that were there, through the chain
        x = sf.read(name, always_2d=True)[0]
        assert np.array_equal(sf.read("out.wav", always_2d=True)[0], Chain.from_preset("tpdf-16")(x, 48000))


@pytest.mark.parametrize("allow_short", [False, True], ids=["default", "allow-short"])
def test_an_input_truncated_while_rendering(tmp_path, long_input, allow_short):
    """A file cut while it was rendered gave a short OUTPUT and exit 0 (753 s of 1200 s)."""
    shutil.copyfile(long_input, tmp_path / "long.wav")
    child = start_render("dsd64-1bit", "long.wav", "out.wav", *(["--allow-short"] if allow_short else []),
                         cwd=tmp_path)
    wait_until_writing(child, tmp_path)
    header = (tmp_path / "long.wav").stat().st_size - LONG_FRAMES * 4
    os.truncate(tmp_path / "long.wav", header + LONG_FRAMES // 3 * 4)     # a third is left
    out, err = child.communicate(timeout=120)
    pattern = (rf"rtq: long.wav ended after (\d+) of the {LONG_FRAMES} frames its header promises: (\d+) frames "
               r"\(\d+\.\d{3} s\) missing\n" if allow_short else
               rf"rtq: long.wav ends after (\d+) of the {LONG_FRAMES} frames its header promises \((\d+) missing: "
               r"truncated or damaged\); --allow-short takes what is there\n")
    found = re.fullmatch(pattern, err)
    assert child.returncode == (0 if allow_short else 1) and found, err
    rendered, missing = int(found[1]), int(found[2])
    assert rendered + missing == LONG_FRAMES and LONG_FRAMES // 3 <= rendered < LONG_FRAMES
    if allow_short:
        assert sf.info(str(tmp_path / "out.wav")).frames == rendered
        assert listing(tmp_path) == {"long.wav", "out.wav"}
    else:
        assert listing(tmp_path) == {"long.wav"}


def test_a_directory_as_input_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    assert main(["render", "tpdf-16", "sub", "out.wav"]) == 2
    assert capsys.readouterr() == ("", "rtq: sub is a directory, not an audio file\n")


# --- a full disk: one rule ---------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs at tmp_path/disk."""
    with small_tmpfs(tmp_path / "disk", "256k") as disk:
        yield disk


def one_line(status_out_err) -> tuple[int, str]:
    status, (out, err) = status_out_err
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err, err
    return status, err.rstrip("\n")


@pytest.mark.parametrize("when", ["at-open", "midway"])
def test_a_full_disk_is_one_rule_whenever_it_fills(tmp_path, monkeypatch, capsys, small_disk, when):
    """At open it said '(System error.)' with status 2, midway 'no space left' with 1."""
    monkeypatch.chdir(tmp_path)
    sf.write("in.wav", make_signal(48000 * 2, 2, seed=4, rate=48000), 48000, subtype="FLOAT")   # 375 KiB as PCM_16
    if when == "at-open":
        fill(small_disk)
    before = listing(small_disk)
    result = one_line((main(["render", "tpdf-16", "in.wav", "disk/out.wav"]), capsys.readouterr()))
    assert result == (1, "rtq: cannot write disk/out.wav: No space left on device (no file was changed)")
    assert listing(small_disk) == before


@pytest.mark.parametrize("command", ["render", "analyze"])
@pytest.mark.parametrize("option", ["--report", "--plot"])
def test_report_and_plot_on_a_full_disk_are_one_line(tmp_path, monkeypatch, capsys, small_disk, command, option):
    """Both were tracebacks."""
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    x = make_signal(4800, 2, seed=4, rate=48000)
    sf.write("in.wav", x, 48000, subtype="FLOAT")
    sf.write("proc.wav", x, 48000, subtype="PCM_16")
    fill(small_disk)
    name = "disk/r.json" if option == "--report" else "disk/r.png"
    argv = (["render", "tpdf-16", "in.wav", "out.wav"] if command == "render" else ["analyze", "in.wav", "proc.wav"])
    status = main([*argv, option, name])
    out, err = capsys.readouterr()
    assert status == 1 and "Traceback" not in err
    assert err.splitlines() == [f"rtq: cannot write {name}: No space left on device (no file was changed)"]
    assert not (tmp_path / name).exists()


# --- bounded memory whatever the block size ------------------------------------------------

@pytest.mark.parametrize("block", ["0", "1048577", "999999999999"])
def test_a_block_size_beyond_the_limit_is_one_line_with_status_2(tmp_path, monkeypatch, capsys, block):
    """--block-size 999999999999 (14.6 TiB) was a traceback."""
    monkeypatch.chdir(tmp_path)
    sf.write("in.wav", make_signal(1000, 2), 44100, subtype="FLOAT")
    assert one_line((main(["render", "tpdf-16", "in.wav", "out.wav", "--block-size", block]),
                     capsys.readouterr())) == (
        2, f"rtq: --block-size must be a whole number of frames from 1 to 1048576, got {block}")
    assert listing(tmp_path) == {"in.wav"}


@pytest.mark.parametrize("frames,channels,limit", [
    (2000, 2, 2_000_000),              # a short file: buffers no longer than the file
    (400_000, 16, 110 * 2 ** 20),      # many channels: 16 MiB per buffer, 6 in flight
], ids=["short-file", "many-channels"])
def test_memory_does_not_grow_with_the_block_size(tmp_path, frames, channels, limit):
    """Memory grew with --block-size rather than with the file (6 buffers of block x
    channels float64: 805 MB for the second case at the largest block size)."""
    import tracemalloc

    from rtq.render import MAX_BLOCK, render_file

    rng = np.random.default_rng(3)
    with sf.SoundFile(str(tmp_path / "in.wav"), "w", 48000, channels, "PCM_16") as f:
        for start in range(0, frames, 100_000):
            f.write((0.2 * rng.standard_normal((min(100_000, frames - start), channels))).astype(np.float32))
    render_file(Chain.from_preset("tpdf-16"), tmp_path / "in.wav", tmp_path / "warm.wav", progress=False)
    tracemalloc.start()
    try:
        render_file(Chain.from_preset("tpdf-16"), tmp_path / "in.wav", tmp_path / "out.wav", block_size=MAX_BLOCK,
                    progress=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sf.info(str(tmp_path / "out.wav")).frames == frames
    assert peak < limit, peak


def test_a_wav_written_to_a_pipe_promises_no_length_and_renders_whole(tmp_path, monkeypatch, capsys):
    """ffmpeg writing a WAV to a pipe leaves 0xFFFFFFFF as its sizes: that is no
    promise, and the file is not short."""
    monkeypatch.chdir(tmp_path)
    with open(tmp_path / "piped.wav", "wb") as f:
        subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=1000:duration=1",
                        "-c:a", "pcm_s16le", "-f", "wav", "-"], stdout=f, check=True)
    assert (tmp_path / "piped.wav").read_bytes()[4:8] == b"\xff\xff\xff\xff"
    assert main(["render", "tpdf-16", "piped.wav", "out.wav"]) == 0
    assert capsys.readouterr() == ("", "")
    assert sf.info("out.wav").frames == sf.info("piped.wav").frames == 44100


def test_an_input_read_from_a_pipe_promises_no_length_and_renders_whole(tmp_path):
    """libsndfile cannot measure a pipe (a WAV from ffmpeg says 0xFFFFFFFF): nothing to
    compare, no probe of a file that cannot be read twice, not a word on stderr."""
    ffmpeg = subprocess.Popen(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=1000:duration=1",
                               "-c:a", "pcm_s16le", "-f", "wav", "-"], stdout=subprocess.PIPE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-m", "rtq", "render", "tpdf-16", "/dev/stdin", "out.wav"],
                          stdin=ffmpeg.stdout, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    ffmpeg.stdout.close()
    assert ffmpeg.wait(30) == 0
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert sf.info(str(tmp_path / "out.wav")).frames == 44100
