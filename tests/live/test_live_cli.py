"""``rtq live`` and ``rtq devices`` as a user runs them: real subprocesses on the real
JACK dummy server (or on none), output captured by a JACK client.

* live output equals ``rtq render`` of the same file, bit for bit;
* a dying JACK server ends ``rtq live`` with one line, promptly, without a hang or abort;
* without any audio server ``rtq live`` plays into the silent real-time stream;
* one-line errors for bad sources, devices and rates;
* Ctrl-C ends a session cleanly with its summary, and a first start's compile;
* a first start on an empty cache says it is compiling.

No timing assertions (machines are noisy): a hang is caught by a generous timeout; how
fast rtq stops after the server dies (0.2-0.4 s, 1.3 s for a frozen server, by design
at most the 1 s stall timeout plus one 50 ms poll) is a measurement, not a test.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from rtq.live.portaudio import JACK_PORTS
from rtq.live.wakeup import DEVICE, system_limit

from .test_engine import Capture, live_span

REPO = Path(__file__).resolve().parents[2]
RATE = 48000


def rtq_command(*args) -> list[str]:
    return [sys.executable, "-m", "rtq", *map(str, args)]


def env_for(server: str | None, **extra) -> dict[str, str]:
    """Environment for an rtq child: this repository first on the path, JACK server ``server``."""
    env = dict(os.environ, JACK_NO_START_SERVER="1", **extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    if server is not None:
        env["JACK_DEFAULT_SERVER"] = server
    return env


def run_rtq(*args, env, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run(rtq_command(*args), env=env, capture_output=True, text=True, timeout=timeout)


# What a session that takes over 2 s to build (a cold cache) says while it compiles.
COMPILING = "rtq: compiling the chain and the audio callback for this machine (cached for later starts)"


@pytest.fixture(scope="module", autouse=True)
def warm_cache():
    """Compile the presets these tests play, once, on the silent built-in output (which
    warms the sound-card path too), so that no test below sees the :data:`COMPILING`
    notice on its stderr or a compile's delay, whatever ran before it.  Not on a machine
    with a sound card, which the warm-up would play through."""
    env = env_for(f"rtq-no-server-{os.getpid()}")
    if "No audio devices found" not in run_rtq("devices", env=env).stdout:
        return
    for preset in ("cd-16-shibata", "tpdf-16", "converter-8bit-8x"):
        done = run_rtq("live", preset, "--duration", 0.1, env=env)
        assert done.returncode == 0, done.stderr


def assert_one_line(stderr: str, prefix: str) -> None:
    assert "Traceback" not in stderr, stderr
    assert stderr.count("\n") == 1 and stderr.startswith(prefix), stderr


def assert_summary(stdout: str, preset: str) -> list[str]:
    lines = stdout.splitlines()
    assert lines and lines[0].startswith(f"rtq live: {preset} at "), stdout
    assert any(line.strip().startswith("xruns: ") for line in lines), stdout
    return lines


def make_signal(rate: int = RATE, seconds: float = 2.5, seed: int = 3) -> np.ndarray:
    """Stereo float32: a sine (different frequency per channel) plus white noise."""
    n = int(rate * seconds)
    t = np.arange(n)
    rng = np.random.default_rng(seed)
    x = np.stack([0.4 * np.sin(2 * np.pi * 1001.0 / rate * t), 0.3 * np.sin(2 * np.pi * 441.0 / rate * t)], axis=1)
    x += 0.05 * rng.standard_normal((n, 2))
    return x.astype(np.float32)


@pytest.fixture
def signal_file(tmp_path) -> tuple[Path, np.ndarray]:
    path = tmp_path / "in.wav"
    x = make_signal()
    sf.write(path, x, RATE, subtype="FLOAT")
    return path, x


def locate(captured: np.ndarray, start: int, reference: np.ndarray, key: int = 256) -> int | None:
    """Index ``q`` with reference[q:q + key] == captured[start:start + key] exactly (unique), or None."""
    want = captured[start:start + key]
    candidates = np.flatnonzero(np.all(reference == want[0], axis=1))
    found = [int(q) for q in candidates
             if q + key <= len(reference) and np.array_equal(reference[q:q + key], want)]
    return found[0] if len(found) == 1 else None


def approximate_lag(captured: np.ndarray, start: int, reference: np.ndarray, n: int = 16384) -> int:
    """Best lag of reference against captured[start:start + n] by cross-correlation (diagnostics)."""
    a = captured[start:start + n, 0].astype(np.float64)
    b = reference[:, 0].astype(np.float64)
    size = 1 << int(np.ceil(np.log2(len(a) + len(b))))
    corr = np.fft.irfft(np.fft.rfft(b, size) * np.conj(np.fft.rfft(a, size)), size)
    return int(np.argmax(corr[:len(b)]))


def exact_segments(captured, reference, start, end, key=256, period=64):
    """Cut captured[start:end] into stretches that equal stretches of the reference exactly.

    Returns ``(segments, skipped)``: ``segments`` lists ``(lo, hi, offset)`` with
    ``captured[lo:hi] == reference[lo - offset:hi - offset]``, in order; after a
    segment ends (the first differing frame), the next one is searched for from
    there on, a JACK period at a time; ``skipped`` counts the frames no segment
    covers.  An uninterrupted stream gives one segment; a JACK xrun that drops
    periods between rtq and the capture shows as a new segment with another offset.
    """
    segments, skipped, pos = [], 0, start
    while end - pos >= key:
        q = locate(captured, pos, reference, key)
        if q is None:
            step = period - pos % period
            skipped += step
            pos += step
            continue
        offset = pos - q
        stop = min(end, offset + len(reference))
        differ = np.flatnonzero(np.any(captured[pos:stop] != reference[pos - offset:stop - offset], axis=1))
        hi = pos + int(differ[0]) if differ.size else stop
        segments.append((pos, hi, offset))
        pos = hi
        if hi == stop:
            break
    return segments, skipped + end - pos


# --------------------------------------------------------------------------
# 1. Live output equals offline rendering.
@pytest.mark.audio
@pytest.mark.parametrize("preset, latency", [("cd-16-shibata", 0), ("converter-8bit-8x", 105)])
def test_live_output_equals_render_bit_for_bit(jack_server, tmp_path, signal_file, preset, latency):
    """``rtq live PRESET --input FILE`` captured from its JACK ports equals ``rtq render``.

    The file loops in ``rtq live``, so the reference is the render of the file repeated
    (its first pass is checked to be the render of the file itself).  The chain's latency
    is not compensated live (the output is the raw stream, delayed by the chain), so the
    reference is rendered with ``--no-latency-compensation``; the compensated render is
    the same stream, ``latency`` samples earlier.  The loopback delay is found by exact
    matching, then every captured sample must equal the reference (float32 equality:
    only the sign of a zero could escape it), from the session's first frame on.

    A JACK xrun can drop periods between rtq and the capture client; the capture then
    continues exactly, at another offset.  Such a break is accepted only if JACK
    reported an xrun (at most one break per xrun), and the exact stretches must still
    cover a whole pass of the file and its loop seam.
    """
    path, x = signal_file
    seed, seconds = 5, 4.0
    looped = tmp_path / "looped.wav"
    sf.write(looped, np.concatenate([x, x, x]), RATE, subtype="FLOAT")
    env = env_for(jack_server)
    renders = {}
    for name, source, extra in (("single", path, ["--no-latency-compensation"]),
                                ("looped", looped, ["--no-latency-compensation"]),
                                ("compensated", path, [])):
        out = tmp_path / f"render-{name}.wav"
        done = run_rtq("render", preset, source, out, "--seed", seed, *extra, env=env)
        assert done.returncode == 0, done.stderr
        renders[name] = sf.read(out, dtype="float32", always_2d=True)[0]
    reference, n = renders["looped"], len(x)
    assert np.array_equal(renders["single"], reference[:n])
    assert np.array_equal(renders["compensated"][:n - latency], reference[latency:n])

    for attempt in range(3):
        stats = tmp_path / f"stats-{attempt}.json"
        with Capture(jack_server, seconds + 10, tmp_path / f"capture-{attempt}.npy") as capture:
            child = subprocess.Popen(
                rtq_command("live", preset, "--input", path, "--blocksize", 64, "--duration", seconds,
                            "--seed", seed, "--stats-json", stats),
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                capture.wait_connected()
                out, err = child.communicate(timeout=120)
            finally:
                if child.poll() is None:
                    child.kill()
                    child.wait()
            captured, info = capture.finish()
        assert child.returncode == 0, err
        assert err == "", err
        assert_summary(out, preset)
        summary = json.loads(stats.read_text())
        xruns = len(info["xruns"]) + summary["xruns"]
        try:
            check_identity(captured, reference, n, xruns)
            return
        except AssertionError:
            if not xruns or attempt == 2:
                raise


def check_identity(captured, reference, n, xruns):
    """The capture is the reference, bit for bit, but for periods dropped at JACK xruns."""
    start, end = live_span(captured)
    q = locate(captured, start, reference)
    assert q is not None, (
        f"live output is not the render: no exact match for the first captured frames "
        f"(cross-correlation lag {approximate_lag(captured, start, reference)})")
    segments, skipped = exact_segments(captured, reference, start, end)
    lo, hi, offset = segments[0]
    assert lo == start and offset == start - q
    # Silence captured before the first sound is the reference's own leading silence.
    first = max(offset, 0)
    assert np.array_equal(captured[first:start], reference[first - offset:q])
    breaks = len(segments) - 1 + (segments[-1][1] < end)
    detail = [(a - o, b - o) for a, b, o in segments]
    if not xruns:
        assert breaks == 0 and skipped == 0, (
            f"live output differs from the render without any xrun: exact stretches (session frames) "
            f"{detail}, {skipped} frames match nothing")
    else:
        assert breaks <= xruns and skipped <= 4 * 64 * breaks, (detail, skipped, xruns)
    assert sum(b - a for a, b, _ in segments) >= n + RATE // 2  # a whole pass of the file and the seam


# --------------------------------------------------------------------------
# 3. The JACK server dies under a running session.
def wait_for_ports(env, pattern: str = JACK_PORTS, timeout: float = 60.0, child=None,
                   connected: bool = False) -> None:
    """Poll ``jack_lsp`` (a separate process: the server may be killed) until a port matches.

    With ``connected``, wait until such a port is also connected: PortAudio registers
    its ports when the stream is opened but connects them only once it has started.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child is not None and child.poll() is not None:
            pytest.fail(f"rtq exited early: {child.stderr.read()}")
        lines = subprocess.run(["jack_lsp", "-c"], env=env, capture_output=True, text=True,
                               timeout=30).stdout.splitlines()
        for line, after in zip(lines, lines[1:] + [""]):
            if re.match(pattern, line) and (not connected or after.startswith(" ")):
                return
        time.sleep(0.05)
    pytest.fail(f"no {'connected ' if connected else ''}port matching {pattern!r} appeared")


def kill_server_under_rtq_live(server, stats, sig, *, running: bool):
    """Start ``rtq live`` on ``server``, send ``sig`` to the server; return (child, out, err).

    ``running``: wait until the stream runs (its ports are connected) and half a second
    more; otherwise strike as soon as the stream's ports exist, while it is starting.
    """
    env = env_for(server.name)
    child = subprocess.Popen(
        rtq_command("live", "cd-16-shibata", "--input", "tone:1000:-20", "--blocksize", 64,
                    "--stats-json", stats),
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_ports(env, JACK_PORTS + "out_", child=child, connected=running)
        if running:
            time.sleep(0.5)
        server.kill(sig)
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pytest.fail("rtq live hung after its JACK server went away")
        out, err = child.communicate()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if sig == signal.SIGSTOP:
            server.kill(signal.SIGCONT)
    assert child.returncode == 1, (child.returncode, err)  # not a signal (no abort, no core dump)
    assert_one_line(err, "rtq: audio stream lost: ")
    assert_summary(out, "cd-16-shibata")
    summary = json.loads(stats.read_text())
    assert summary["lost"] and summary["lost"].startswith("audio stream lost: ")
    return summary


@pytest.mark.audio
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGSTOP], ids=lambda s: s.name)
def test_dying_server_ends_rtq_live_with_one_line(throwaway_jack_server, tmp_path, sig):
    summary = kill_server_under_rtq_live(throwaway_jack_server, tmp_path / "stats.json", sig, running=True)
    assert summary["callbacks"] > 0


@pytest.mark.audio
def test_server_dying_while_the_stream_starts_ends_rtq_live_with_one_line(throwaway_jack_server, tmp_path):
    """The server is killed between opening and starting the stream (or just after):
    closing such a stream aborts inside PortAudio, so rtq must abandon it."""
    kill_server_under_rtq_live(throwaway_jack_server, tmp_path / "stats.json", signal.SIGKILL, running=False)


# --------------------------------------------------------------------------
# 4. No audio device at all: the silent real-time stream.
@pytest.fixture(scope="module")
def no_server_env():
    """Environment naming a JACK server that does not run (and may not be started)."""
    env = env_for(f"rtq-no-server-{os.getpid()}")
    listing = run_rtq("devices", env=env)
    assert listing.returncode == 0, listing.stderr
    if "No audio devices found" not in listing.stdout:
        pytest.skip("this machine has audio devices besides JACK")
    return env


@pytest.mark.parametrize("source, described", [
    (None, "tone:1000:-20"),
    ("tone:440:-20", "tone:440:-20"),
    ("noise:-30", "noise:-30"),
    ("FILE", "FILE (looped)"),
])
def test_without_audio_device_plays_into_the_null_stream(no_server_env, tmp_path, signal_file, source, described):
    stats = tmp_path / "stats.json"
    args = ["live", "--duration", 2, "--stats-json", stats]
    if source is not None:
        args += ["--input", signal_file[0] if source == "FILE" else source]
    described = described.replace("FILE", str(signal_file[0]))
    done = run_rtq(*args, env=no_server_env)
    assert done.returncode == 0, done.stderr
    assert_one_line(done.stderr, f"rtq: no audio device found; playing {described} through the chain")
    assert_summary(done.stdout, "cd-16-shibata")
    summary = json.loads(stats.read_text())
    assert summary["preset"] == "cd-16-shibata" and summary["samplerate"] == RATE
    assert summary["callbacks"] > 0 and summary["frames"] == 256 * summary["callbacks"]
    assert summary["blocksize"] == 256
    for key in ("xruns", "input_overflows", "output_underflows", "nonfinite", "switches"):
        assert isinstance(summary[key], int) and summary[key] >= 0, key
    assert summary["lost"] is None
    assert len(summary["clips"]) == 2 and summary["loop_resets"] == [0, 0]


def test_a_cold_cache_says_it_is_compiling(no_server_env, tmp_path):
    """A first start on an empty rtq cache compiles the callback (Numba's own cache of the
    kernels warm, as earlier tests left it): rtq says so instead of looking hung."""
    env = dict(no_server_env, RTQ_CACHE_DIR=str(tmp_path / "cache"))
    done = run_rtq("live", "--duration", 0.5, env=env)
    assert done.returncode == 0, done.stderr
    notice = "rtq: no audio device found; playing tone:1000:-20 through the chain into a silent real-time output"
    assert done.stderr.splitlines() == [notice, COMPILING], done.stderr
    warm = run_rtq("live", "--duration", 0.5, env=env)
    assert warm.returncode == 0 and warm.stderr.splitlines() == [notice], warm.stderr


@pytest.mark.parametrize("args, message", [
    (["--input", "tone:30000:-20"], "rtq: --input tone at 30000 Hz: at or above half the stream's 48000 Hz"),
    (["--samplerate", 44100, "--input", "FILE"],
     "rtq: --input file runs at 48000 Hz but the stream at 44100 Hz; use --samplerate 48000"),
    (["--meter-stage", 2], "rtq: --meter-stage 2: the chain has 1 quantizer (use 1 to 1, or 0 for end to end)"),
    (["--channels", 100000], "rtq: --channels must be an integer from 1 to 64, got 100000"),
    (["--blocksize", 100000000],
     "rtq: --blocksize must be 0 (the host's choice) or a whole number of frames up to 16384, got 100000000"),
], ids=["tone-above-nyquist", "file-at-another-rate", "no-such-meter-stage", "too-many-channels",
        "too-large-blocks"])
def test_without_audio_device_a_usage_error_is_the_only_line(no_server_env, signal_file, args, message):
    """Not the no-device notice and then the error: the user sees what to fix."""
    args = [signal_file[0] if a == "FILE" else a for a in args]
    done = run_rtq("live", "--duration", 1, *args, env=no_server_env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [message]
    assert done.stdout == ""


def test_a_truncated_input_file_is_one_line_with_both_counts(no_server_env, signal_file, tmp_path):
    """rtq live --input reads its file by rtq's input rules: one cut short on disk (it
    was looped as it was, silently) is an error naming both counts, status 1."""
    path, _ = signal_file
    cut = tmp_path / "cut.wav"
    cut.write_bytes(path.read_bytes()[:-8 * 1000])       # FLOAT stereo: 1000 frames short
    done = run_rtq("live", "--duration", 1, "--input", cut, env=no_server_env)
    assert done.returncode == 1, done.stderr
    frames = len(make_signal())
    assert done.stderr.splitlines() == [
        f"rtq: --input {cut} ended after {frames - 1000} of the {frames} frames its header promises: "
        f"1000 frames (0.021 s) missing"], done.stderr
    assert done.stdout == ""


def test_stats_json_never_replaces_the_input_file_and_needs_force_for_others(no_server_env, signal_file, tmp_path):
    path, _ = signal_file
    for force in ([], ["--force"]):
        done = run_rtq("live", "--duration", 1, "--input", path, "--stats-json", path, *force, env=no_server_env)
        assert done.returncode == 2 and done.stderr.splitlines() == [
            f"rtq: --stats-json {path} is the --input file; rtq never writes over it"], done.stderr
    assert sf.info(path).frames > 0
    stats = tmp_path / "stats.json"
    stats.write_text("earlier")
    done = run_rtq("live", "--duration", 0.5, "--stats-json", stats, env=no_server_env)
    assert done.returncode == 2 and done.stderr.splitlines() == [
        f"rtq: --stats-json {stats} exists; use --force to replace it"], done.stderr
    done = run_rtq("live", "--duration", 0.5, "--stats-json", stats, "--force", env=no_server_env)
    assert done.returncode == 0, done.stderr
    assert json.loads(stats.read_text())["preset"] == "cd-16-shibata"


@pytest.mark.parametrize("args, message", [
    (["--samplerate", 96000], "presets/cd-16-shibata.yaml:9:16: shaping 'shibata' has no table for 96000 Hz"),
], ids=["no-table-for-the-rate"])
def test_without_audio_device_a_preset_error_at_the_rate_is_the_only_line(no_server_env, args, message):
    done = run_rtq("live", "--duration", 1, *args, env=no_server_env)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.splitlines()) == 1 and message in done.stderr, done.stderr


def test_without_audio_device_a_named_device_is_an_error(no_server_env):
    done = run_rtq("live", "--device", "no such card", "--duration", 1, env=no_server_env)
    assert done.returncode == 1, done.stderr
    assert_one_line(done.stderr, "rtq: no input device matches 'no such card'; no input devices are available")


@pytest.mark.audio
@pytest.mark.parametrize("args, status, prefix, contains", [
    (["--input", "tone:loud:-20"], 2, "rtq: bad --input 'tone:loud:-20'; use tone:HZ:DBFS", None),
    (["--input", "noise"], 2, "rtq: bad --input 'noise'; use tone:HZ:DBFS", None),
    (["--input", "/no/such/file.wav"], 2, "rtq: --input /no/such/file.wav: no such file", None),
    (["--device", "no such card"], 1, "rtq: no input device matches 'no such card'; available: ",
     "system (JACK Audio Connection Kit, 2 in, 2 out)"),
    (["--samplerate", 44100], 1, "rtq: sample rate 44100 Hz is not supported by ", "supported: 48000"),
    (["--blocksize", -1], 2, "rtq: --blocksize must be 0", None),
    (["no-such-preset"], 2, "", "no-such-preset"),
    (["--duration", "nan"], 2, "rtq: --duration must be a positive number, not nan", None),
    (["--samplerate", 0], 2, "rtq: --samplerate must be a whole number of Hz from 1000 to 768000, got 0", None),
    (["--samplerate", 48], 2, "rtq: --samplerate must be a whole number of Hz from 1000 to 768000, got 48", None),
    (["--latency", "medium"], 2, "rtq: --latency must be low, high or seconds, not 'medium'", None),
    (["--input", "noise:nan"], 2, "rtq: bad --input 'noise:nan'; use tone:HZ:DBFS", None),
    (["--input", "tone:-5:-20"], 2, "rtq: bad --input 'tone:-5:-20'; use tone:HZ:DBFS", None),
    (["--input", "tone:1000:0"], 2, "rtq: --input tone:1000:0: a tone above -3.01 dBFS would clip", None),
    (["--input", "noise:-4.5"], 2, "rtq: --input noise:-4.5: noise above -4.77 dBFS would clip", None),
    (["--input", "tone:30000:-20"], 2, "rtq: --input tone at 30000 Hz: at or above half the stream's 48000 Hz",
     None),
    (["--stats-json", "/no/such/dir/s.json"], 2, "rtq: --stats-json /no/such/dir/s.json: no such directory",
     None),
    (["--meter-stage", 3], 2, "rtq: --meter-stage 3: the chain has 1 quantizer", None),
    (["--channels", 0], 2, "rtq: --channels must be an integer from 1 to 64, got 0", None),
    (["--channels", 100000], 2, "rtq: --channels must be an integer from 1 to 64, got 100000", None),
    (["--blocksize", 100000000], 2, "rtq: --blocksize must be 0 (the host's choice) or a whole number of frames "
                                    "up to 16384, got 100000000", None),
    (["--input", "noise:-30", "--input-device", "0"], 2, "rtq: --input-device has no use with --input noise:-30",
     None),
], ids=["bad-tone", "bad-noise", "missing-file", "bad-device", "bad-rate", "bad-blocksize", "bad-preset",
        "nan-duration", "zero-rate", "rate-in-khz", "bad-latency", "nan-noise", "negative-tone", "clipping-tone", "clipping-noise",
        "tone-above-nyquist", "stats-in-missing-directory", "no-such-meter-stage",
        "no-channels", "too-many-channels", "too-large-blocks", "input-device-with-a-source"])
def test_live_usage_errors_are_one_line(jack_server, args, status, prefix, contains):
    done = run_rtq("live", "--duration", 1, *args, env=env_for(jack_server))
    assert done.returncode == status, done.stderr
    assert_one_line(done.stderr, prefix)
    if contains:
        assert contains in done.stderr
    assert done.stdout == ""


@pytest.mark.audio
def test_input_file_at_another_rate_is_one_line(jack_server, tmp_path):
    """The stream runs at the file's rate unless --samplerate says otherwise."""
    path = tmp_path / "44k.wav"
    sf.write(path, make_signal(44100, 0.5), 44100, subtype="FLOAT")
    env = env_for(jack_server)
    done = run_rtq("live", "--input", path, "--duration", 1, env=env)
    assert done.returncode == 1, done.stderr
    assert_one_line(done.stderr, "rtq: sample rate 44100 Hz is not supported by ")
    assert f"supported: 48000 (the rate of --input {path}; resample the file to one of those rates)" in done.stderr
    done = run_rtq("live", "--input", path, "--samplerate", RATE, "--duration", 1, env=env)
    assert done.returncode == 2, done.stderr
    assert_one_line(done.stderr, "rtq: --input file runs at 44100 Hz but the stream at 48000 Hz; "
                                 "use --samplerate 44100")


@pytest.mark.audio
def test_a_built_in_source_plays_on_a_device_without_capture(playback_only_jack_server):
    """--input needs no capture device: it opened a duplex stream and failed with 'no
    default input device' on a server with playback ports only."""
    env = playback_only_jack_server.env
    done = run_rtq("live", "tpdf-16", "--duration", 1, "--input", "tone:1000:-20", env=env)
    assert done.returncode == 0, done.stderr
    assert_summary(done.stdout, "tpdf-16")
    done = run_rtq("live", "tpdf-16", "--duration", 1, env=env)
    assert done.returncode == 1
    assert_one_line(done.stderr, "rtq: no default input device; no input devices are available; for a built-in "
                                 "source instead, use --input tone:1000:-20")
    done = run_rtq("live", "tpdf-16", "--duration", 1, "--input", "noise:-30", "--input-device", 0, env=env)
    assert done.returncode == 2
    assert_one_line(done.stderr, "rtq: --input-device has no use with --input noise:-30")


# --------------------------------------------------------------------------
# 5. rtq devices
@pytest.mark.audio
def test_devices_lists_jack(jack_server):
    done = run_rtq("devices", env=env_for(jack_server))
    assert done.returncode == 0 and done.stderr == "", done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("Host APIs: ") and "JACK Audio Connection Kit (" in lines[0]
    system = [line for line in lines if " system " in line]
    assert len(system) == 1
    assert system[0].split()[-4:] == ["JACK", "Audio", "Connection", "Kit"]
    assert system[0].startswith(" * ") and " 2  " in system[0] and "48000" in system[0]


# --------------------------------------------------------------------------
# 6. Ctrl-C
def read_line(stream, timeout: float = 60.0) -> str:
    """The next line of ``stream``, or "" after ``timeout`` seconds.  (A reader thread: a
    select() on the pipe would not see lines already in the stream's buffer.)"""
    line = []
    reader = threading.Thread(target=lambda: line.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return line[0] if line else ""


def interrupted_live(args, env, ready) -> tuple[int, str, str]:
    """Start ``rtq live ARGS``, press Ctrl-C once ``ready(child)`` returns; (status,
    stdout, stderr)."""
    child = subprocess.Popen(rtq_command("live", *args), env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        ready(child)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return child.returncode, out, err


@pytest.mark.audio
def test_ctrl_c_ends_a_jack_session_cleanly(jack_server, tmp_path):
    """Also: on a sound card rtq holds the 0 us CPU latency request while it plays."""
    env = env_for(jack_server)
    stats = tmp_path / "stats.json"
    limit_before = system_limit()
    writable = os.access(DEVICE, os.W_OK)
    import jack

    client = jack.Client("rtq-ctrl-c-probe", no_start_server=True, servername=jack_server)
    limit_playing = []

    def playing(child):
        deadline = time.monotonic() + 60
        # Running once PortAudio has connected the stream's outputs (Pa_StartStream).
        while not any(re.match(JACK_PORTS, p.name) for p in client.get_all_connections("system:playback_1")):
            assert child.poll() is None, child.stderr.read()
            assert time.monotonic() < deadline, "rtq live never connected its outputs"
            time.sleep(0.02)
        time.sleep(0.3)
        limit_playing.append(system_limit())

    try:
        status, out, err = interrupted_live(
            ["tpdf-16", "--input", "noise:-30", "--blocksize", 64, "--stats-json", stats], env, playing)
    finally:
        client.close()
    assert status == 0 and err == "", err
    assert_summary(out, "tpdf-16")
    assert f"CPU wake-up latency request: {'held at 0 us' if writable else 'not held'}" in out, out
    summary = json.loads(stats.read_text())
    assert summary["callbacks"] > 0 and summary["lost"] is None
    assert summary["cpu_latency_qos"].startswith("held at 0 us" if writable else "not held")
    if writable and limit_before:  # (0: another process holds it; the kernel would show nothing)
        assert limit_playing == [0]
        assert system_limit() == limit_before


@pytest.mark.audio
def test_cpu_latency_request_can_be_declined(jack_server, tmp_path):
    stats = tmp_path / "stats.json"
    done = run_rtq("live", "tpdf-16", "--input", "noise:-30", "--duration", 1, "--cpu-latency-qos", "off",
                   "--stats-json", stats, env=env_for(jack_server))
    assert done.returncode == 0, done.stderr
    assert "CPU wake-up latency request: not requested" in done.stdout
    summary = json.loads(stats.read_text())
    assert summary["cpu_latency_qos"] == "not requested"
    assert summary["blocksize"] == 64  # not asked for: the server's period (tools/test.sh: -p 64)


def test_ctrl_c_while_a_cold_start_compiles_ends_rtq_live(no_server_env, tmp_path):
    """Ctrl-C during the first compile (the notice comes after 2 s) stops rtq:
    status 130, nothing printed after the notices.  Where the key lands is chance; one
    that lands in a ctypes callback, which drops it, is tested in
    tests/test_cli_interrupts.py."""
    env = dict(no_server_env, RTQ_CACHE_DIR=str(tmp_path / "cache"))

    def compiling(child):
        assert read_line(child.stderr).startswith("rtq: no audio device found; ")
        assert read_line(child.stderr).rstrip("\n") == COMPILING

    status, out, err = interrupted_live([], env, compiling)
    assert status == 130 and err == "" and out == "", err


def test_ctrl_c_ends_a_null_session_cleanly(no_server_env, tmp_path):
    stats = tmp_path / "stats.json"

    def playing(child):
        notice = read_line(child.stderr)
        assert notice.startswith("rtq: no audio device found; "), notice
        time.sleep(1.5)  # the notice comes just before the stream starts

    status, out, err = interrupted_live(["--stats-json", stats], no_server_env, playing)
    assert status == 0 and "Traceback" not in err and err == "", err
    assert_summary(out, "cd-16-shibata")
    summary = json.loads(stats.read_text())
    assert summary["callbacks"] > 0
    assert summary["cpu_latency_qos"] == "not requested"  # a silent output has no deadline
