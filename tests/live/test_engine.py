"""The live engine on the real JACK dummy server: switching, bypass and error solo,
heard through a capture client.

The session runs in this process (as ``rtq live`` does); its output ports are
captured by a JACK-Client in a helper process (:class:`Capture`), so that this
process's Python work (preparing chains, the GIL) cannot make the capture late.

No timing assertions: only sample values.  A check that fails while JACK reported
an xrun is repeated (a noisy VM can drop a block anywhere in the graph); a failure
without an xrun is final.
"""
from __future__ import annotations

import json
import math
import queue
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

# The capture client, run in its own process:
#   python -c CAPTURE_SCRIPT SERVER SECONDS OUT.npy [PORT ...]
# Registers two input ports, prints "ready", then waits for the output ports to
# capture: the PORTs given, or else the first two output ports of the rtq client
# (rtq.live.portaudio names it) that appear after "ready".  It connects them (in channel order),
# prints "connected", and records every frame from the connection on until
# SECONDS are full or the captured ports disappear.  (From the connection, not
# from its activation: with a cold cache, compiling the chain before its ports
# appear takes 20 s or more, which must not use up the capture.)  It then saves
# the frames (float32, (frames, 2)) and prints one JSON line: xruns (the capture
# frame at which each xrun was notified) and ports.
#
# Its process callback is compiled (a Numba cfunc that libjack calls directly), so
# the capture never waits for a Python interpreter: it cannot be the cause of the
# xruns it watches for.  It does not import rtq (PortAudio would open a JACK client).
CAPTURE_SCRIPT = r"""
import ctypes, ctypes.util, json, re, sys, threading, time
import jack
import numba
import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def address_as_void_pointer(typingctx, address):
    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return types.voidptr(address), codegen

server, seconds, path = sys.argv[1], float(sys.argv[2]), sys.argv[3]
wanted = sys.argv[4:]
client = jack.Client("rtq-capture", no_start_server=True, servername=server)
frames = int(seconds * client.samplerate)
buf = np.zeros((frames, 2), np.float32)
buf.fill(1.0)  # touch every page now: a page fault on the audio thread (a fresh 2 MiB
buf.fill(0.0)  # transparent huge page) costs more than a period
sinks = [client.inports.register(f"in_{c}") for c in range(2)]
# ctl: frames written, capacity, the two ports, the buffer's address, recording (0/1)
ctl = np.array([0, frames, *(int(jack._ffi.cast("intptr_t", p._ptr)) for p in sinks), buf.ctypes.data, 0],
               np.int64)
libjack = ctypes.CDLL(ctypes.util.find_library("jack") or "libjack.so.0")
port_buffer = libjack.jack_port_get_buffer
port_buffer.argtypes, port_buffer.restype = [ctypes.c_void_p, ctypes.c_uint32], ctypes.c_void_p


@numba.cfunc(types.int32(types.uint32, types.intp), error_model="numpy")
def process(n, arg):
    state = numba.carray(address_as_void_pointer(arg), (6,), np.int64)
    if state[5] == 0:
        return 0
    pos, capacity = state[0], state[1]
    out = numba.carray(address_as_void_pointer(state[4]), (capacity, 2), np.float32)
    for c in range(2):
        data = numba.carray(address_as_void_pointer(port_buffer(address_as_void_pointer(state[2 + c]), n)), (n,), np.float32)
        for i in range(min(n, capacity - pos)):
            out[pos + i, c] = data[i]
    state[0] = pos + n
    return 0


assert jack._lib.jack_set_process_callback(
    client._ptr, jack._ffi.cast("JackProcessCallback", process.address), jack._ffi.cast("void *", ctl.ctypes.data)) == 0
xruns = []
changed = threading.Event()
def on_xrun(delay):
    if ctl[5]:  # only from the connection on
        xruns.append(int(ctl[0]))


client.set_xrun_callback(on_xrun)
client.set_port_registration_callback(lambda port, register: changed.set(), only_available=False)


def outputs():
    while True:
        try:
            return [p.name for p in client.get_ports(is_output=True, is_audio=True)]
        except jack.JackError:  # a port went away while being listed
            continue


def number(name):
    return int(name.rsplit("_", 1)[1])


before = set(outputs())
client.activate()
print("ready", flush=True)
deadline = time.monotonic() + 120
ports = None
while ports is None and time.monotonic() < deadline:
    changed.wait(0.01)
    changed.clear()
    names = outputs()
    if wanted:
        found = [n for n in wanted if n in names]
    else:
        found = sorted((n for n in names if n not in before and re.match(r"rtq(-[0-9]+)?:", n)), key=number)[:2]
    if len(found) == 2:
        ctl[5] = 1
        for source, sink in zip(found, sinks):
            client.connect(source, sink)
        ports = found
print("connected" if ports else "timeout", flush=True)
while ports and ctl[0] < frames:
    changed.wait(0.1)
    changed.clear()
    if not set(ports) <= set(outputs()):
        break
client.deactivate()
np.save(path, buf[: min(int(ctl[0]), frames)])
print(json.dumps({"xruns": xruns, "ports": ports}), flush=True)
client.close()
"""


class Capture:
    """A capture client in its own process (see :data:`CAPTURE_SCRIPT`)."""

    def __init__(self, server: str, seconds: float, path, ports=(), env=None):
        self.path = str(path)
        self.process = subprocess.Popen(
            [sys.executable, "-c", CAPTURE_SCRIPT, server, str(seconds), self.path, *ports],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        self._lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self._expect("ready")

    def _read(self):
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def _expect(self, word: str, timeout: float = 60.0) -> str:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            line = "(nothing)"
        if line is None or not line.startswith(word):
            self.close()
            pytest.fail(f"capture client: expected {word!r}, got {line!r}; stderr: {self.process.stderr.read()}")
        return line

    def wait_connected(self, timeout: float = 60.0) -> None:
        self._expect("connected", timeout)

    def finish(self, timeout: float = 60.0) -> tuple[np.ndarray, dict]:
        """Wait until the captured ports are gone (or the capture is full); (frames, info)."""
        info = json.loads(self._expect("{", timeout))
        self.process.wait(timeout)
        return np.load(self.path), info

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def live_span(captured: np.ndarray) -> tuple[int, int]:
    """First and one-past-last frame where the capture is not silent."""
    loud = np.flatnonzero(np.any(captured != 0, axis=1))
    assert loud.size, "the capture is silent"
    return int(loud[0]), int(loud[-1]) + 1


def longest_zero_run(x: np.ndarray) -> int:
    """Longest run of frames that are exactly zero on every channel."""
    zero = np.all(x == 0, axis=1).astype(np.int8)
    edges = np.diff(np.concatenate(([0], zero, [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return int((ends - starts).max()) if starts.size else 0


# --------------------------------------------------------------------------
# The tone the sessions play, and the bounds it implies.
RATE = 48000
FADE = 480  # the engine's crossfades (chain switch, bypass, solo): 10 ms
TONE_HZ, TONE_DBFS = 997.0, -12.0
TONE_AMP = math.sqrt(2.0) * 10.0 ** (TONE_DBFS / 20.0)
TONE_W = 2.0 * math.pi * TONE_HZ / RATE
TONE_SLOPE = TONE_AMP * TONE_W  # largest sample-to-sample step of the tone
LSB8 = 2.0 / 2 ** 8
LSB16 = 2.0 / 2 ** 16
# Largest distance of each chain's output from a pure tone (its gain times the input,
# delayed by its latency), with margin over what was measured on this tone:
SHAPED_16 = 64 * LSB16     # cd-16-shibata: Shibata-shaped TPDF 16-bit, measured 25 LSB
UNDITHERED_8 = LSB8 / 2    # undithered-8: rounding, exactly half a step
CONVERTER = LSB8 / 4       # converter-8bit-8x: measured 0.12 of its 8-bit step in band
#                            (its shaped noise lies above what the decimator passes)


def residual(x: np.ndarray) -> np.ndarray:
    """x[k+1] - 2 cos(w) x[k] + x[k-1] on every channel: zero for any sinusoid of the
    tone's frequency, whatever its amplitude and phase.

    So it ignores level changes, delays and slow crossfades between such tones, and
    shows what breaks the waveform: a step of size s (a click, a dropped or repeated
    block, a gap) gives about s; an error e of the chain at most 4 e."""
    x = x.astype(np.float64)
    return x[2:] - 2.0 * math.cos(TONE_W) * x[1:-1] + x[:-2]


def residual_bound(error: float) -> float:
    """Largest residual of chains whose outputs lie within ``error`` of a pure tone,
    while crossfading between them: 4 errors, plus the kinks where a linear fade of
    two tones (at most twice the amplitude apart) starts and stops."""
    return 4.0 * error + 2.0 * TONE_AMP / FADE


def fit_tone(x: np.ndarray, start: int, length: int = 4800) -> tuple[float, float]:
    """Least-squares (a, b) with x[start + k] ~ a sin(wk) + b cos(wk)."""
    k = np.arange(length)
    basis = np.stack([np.sin(TONE_W * k), np.cos(TONE_W * k)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, x[start:start + length], rcond=None)
    return float(coef[0]), float(coef[1])


def tone_deviation(x: np.ndarray, start: int, end: int) -> float:
    """Largest distance of x[start:end] (both channels) from the tone fitted at its start.

    A dropped, repeated or silenced block shifts or breaks the tone's phase, which
    shows as a deviation of the order of the tone's amplitude."""
    a, b = fit_tone(x[:, 0].astype(np.float64), start)
    k = np.arange(end - start)
    ideal = a * np.sin(TONE_W * k) + b * np.cos(TONE_W * k)
    return float(np.abs(x[start:end].astype(np.float64) - ideal[:, None]).max())


def tone_phase(x: np.ndarray, start: int, end: int, window: int = 241) -> np.ndarray:
    """Phase (radians, in (-pi, pi]) of the tone in x[start:end] relative to its first
    4800 frames, one value per frame from ``start + window // 2`` on: the tone
    demodulated to 0 Hz and averaged over ``window`` frames (about ten periods of twice
    its frequency, which the averaging removes).  A delay of d frames shows as a
    phase of -2 pi f d / rate."""
    k = np.arange(end - start)
    z = x[start:end].astype(np.float64) * np.exp(-1j * TONE_W * k)
    smooth = np.convolve(z, np.ones(window) / window, mode="valid")
    return np.angle(smooth / smooth[:4800].mean())


@pytest.fixture(scope="module", autouse=True)
def compiled_presets():
    """Compile every preset these sessions play or switch to, once, before the first one.

    The schedules time each action against the session's clock and the checks expect
    its effect within a few hundred ms.  With a cold cache, ``switch_preset`` would
    first compile the chain on the tick's thread (measured: 4.9 s for cd-16-shibata,
    1.2 s more for converter-8bit-8x), which delays every later action; the audio
    keeps playing meanwhile, but the schedule no longer fits the session."""
    from rtq.chain import Chain
    from rtq.presets import load_preset

    for name in ("cd-16-shibata", "converter-8bit-8x", "tpdf-16", "undithered-8"):
        Chain.from_spec(load_preset(name)).prepare(RATE, 2, 64, taps=True)


def run_captured(server, tmp_path, preset, schedule, seconds, check, attempts=4):
    """Play ``tone:997:-12`` through ``preset`` in a LiveSession (blocksize 64), run
    ``schedule`` [(seconds after start, action(session)), ...] from the session's tick,
    capture its output and call ``check(captured, summary, session)``.

    When ``check`` fails and JACK reported an xrun during the capture (to the capture
    client or to the session's stream), the run is repeated: the xrun, not rtq, may
    have broken the sound.  A failure without an xrun is final."""
    from rtq.live.session import LiveSession
    from rtq.live.sources import Source

    for attempt in range(attempts):
        with Capture(server, seconds + 10, tmp_path / f"capture-{attempt}.npy") as capture:
            session = LiveSession(preset, samplerate=RATE, blocksize=64,
                                  source=Source.tone(TONE_HZ, TONE_DBFS))
            try:
                capture.wait_connected()
                pending = sorted(schedule, key=lambda item: item[0])

                def tick(s):
                    while pending and time.monotonic() - s.started >= pending[0][0]:
                        pending.pop(0)[1](s)

                session.run(seconds, tick=tick, interval=0.02)
            finally:
                session.close()
            captured, info = capture.finish()
        summary = session.summary()
        assert not pending, "the session ended before the schedule"
        try:
            check(captured, summary, session)
            return
        except AssertionError:
            if not (info["xruns"] or summary["xruns"]) or attempt == attempts - 1:
                raise


def assert_unbroken(span: np.ndarray, error: float) -> None:
    """No gap (run of exact zeros) and no click in a captured tone whose chains lie within
    ``error`` of a pure tone: the sample-to-sample step stays within the tone's slope
    plus twice the error, and the residual (see :func:`residual`) within its bound."""
    assert longest_zero_run(span) <= 4
    step = np.abs(np.diff(span.astype(np.float64), axis=0)).max()
    assert step <= TONE_SLOPE + 2 * TONE_AMP / FADE + 2 * error, f"step {step:.5f}"
    worst = np.abs(residual(span)).max(axis=1)
    at = int(np.argmax(worst))
    assert worst[at] <= residual_bound(error), f"click of about {worst[at]:.4f} at frame {at + 1}"


# --------------------------------------------------------------------------
@pytest.mark.audio
def test_bypass_toggles_without_gaps_or_clicks(jack_server, tmp_path):
    """Bypass on and off every 250 ms: the captured tone never breaks."""
    toggles = [(0.25 * k, lambda s: s.toggle_bypass()) for k in range(1, 12)]

    def check(captured, summary, session):
        assert session.engine.mode == "bypass"  # 11 toggles
        assert summary["switches"] == 0
        start, end = live_span(captured)
        assert end - start > 2.5 * RATE
        # Wet (gain -0.1 dB, shaped 16-bit) and dry only ramp into each other.
        assert_unbroken(captured[start:end], SHAPED_16)
        gain = 10 ** (-0.1 / 20)
        assert tone_deviation(captured, start, end) <= TONE_AMP * (1 - gain) + SHAPED_16

    run_captured(jack_server, tmp_path, "cd-16-shibata", toggles, 3.2, check)


@pytest.mark.audio
def test_preset_switches_and_bypass_without_gaps(jack_server, tmp_path):
    """Switch presets and toggle bypass every 250 ms: no silence, no click, every switch counted."""
    presets = ["tpdf-16", "undithered-8", "cd-16-shibata", "undithered-8", "tpdf-16", "cd-16-shibata"]
    schedule = []
    for k, name in enumerate(presets):
        schedule.append((0.25 + 0.5 * k, lambda s, name=name: s.switch_preset(name)))
        schedule.append((0.5 + 0.5 * k, lambda s: s.toggle_bypass()))

    def check(captured, summary, session):
        assert summary["switches"] == session.engine.switches == len(presets)
        assert session.spec.name == "cd-16-shibata" and session.engine.mode == "normal"
        start, end = live_span(captured)
        assert end - start > 3.0 * RATE
        # Every output sample is the tone plus one chain's error, or a linear mix of two
        # (crossfade, bypass ramp); undithered 8-bit has the largest error.
        assert_unbroken(captured[start:end], UNDITHERED_8)
        # The tone is fitted on the first (cd-16-shibata, -0.1 dB) stretch; unity-gain
        # presets and bypass lie 0.1 dB above it.
        gain = 10 ** (-0.1 / 20)
        assert tone_deviation(captured, start, end) <= TONE_AMP * (1 - gain) + UNDITHERED_8 + SHAPED_16

    run_captured(jack_server, tmp_path, "cd-16-shibata", schedule, 3.6, check)


@pytest.mark.audio
def test_switches_across_latencies_keep_dry_and_wet_aligned(jack_server, tmp_path):
    """cd-16-shibata (no latency) to converter-8bit-8x (105 samples): the alignment grows
    once, in that one crossfade (the tone moves 105 samples later, a brief comb, no
    click); from then on bypass, and the switch to tpdf-16 (no latency, so delayed 105
    samples), keep the tone's phase: every path is delayed alike.  No gap, no click."""
    latency = 105
    schedule = [(0.3, lambda s: s.switch_preset("converter-8bit-8x")),
                (0.8, lambda s: s.toggle_bypass()), (1.3, lambda s: s.toggle_bypass()),
                (1.8, lambda s: s.switch_preset("tpdf-16")),
                (2.3, lambda s: s.toggle_bypass()), (2.8, lambda s: s.toggle_bypass())]

    def check(captured, summary, session):
        assert summary["switches"] == session.engine.switches == 2
        assert session.engine.align == latency and session.engine.mode == "normal"
        start, end = live_span(captured)
        assert end - start > 3.0 * RATE
        assert_unbroken(captured[start:end], max(CONVERTER, SHAPED_16))
        shift = np.angle(np.exp(-1j * TONE_W * latency))
        phase = tone_phase(captured[:, 0], start, end - 480)
        before = np.abs(phase) < 0.05            # one sample of delay would be 0.13 rad
        after = np.abs(np.angle(np.exp(1j * (phase - shift)))) < 0.05
        moving = np.flatnonzero(~(before | after))
        assert moving.size, "the switch to the converter did not delay the tone"
        first, last = moving[0], moving[-1]
        assert last - first < FADE + latency + 241 + 64, "the phase moved more than once (a misaligned path)"
        assert before[:first].all() and after[last + 1:].all()
        assert first > 0.2 * RATE and len(phase) - last > 2.0 * RATE

    run_captured(jack_server, tmp_path, "cd-16-shibata", schedule, 3.4, check)


@pytest.mark.parametrize("first, then", [("cd-16-shibata", "converter-8bit-8x"),
                                         ("converter-8bit-8x", "tpdf-16")],
                         ids=["alignment-grows", "less-latency"])
def test_crossfade_with_alignment_does_not_click(first, then):
    """The engine driven block by block (deterministic, no device): a chain switch where
    the alignment is 105 samples, timed so that the incoming tone peaks where its delay
    ends (where a fade that began too early would step).  The output must stay an
    unbroken tone (levels and delays may change)."""
    from rtq.chain import Chain
    from rtq.live.engine import LiveEngine, engine_callback
    from rtq.live.nullstream import NullStream
    from rtq.live.sources import Source

    block = 64
    engine = LiveEngine(
        lambda callback, words: NullStream(callback, samplerate=RATE, blocksize=block, user_words=words),
        Chain.from_preset(first), samplerate=RATE, channels=2, blocksize=block,
        source=Source.tone(TONE_HZ, TONE_DBFS))
    inp, out = np.zeros((block, 2), np.float32), np.zeros((block, 2), np.float32)
    ctl = engine.stream.ctl

    def play(blocks):
        result = []
        for _ in range(blocks):
            engine_callback.ctypes(inp.ctypes.data, out.ctypes.data, block, 0, 0, ctl.ctypes.data)
            result.append(out.copy())
        return result

    # The incoming side's first valid sample (D = 105 samples into the fade) is its
    # response to the tone at the fade's start: start where the tone peaks.
    cycles = np.arange(40, 200) * block * TONE_HZ / RATE
    blocks = 40 + int(np.argmin(np.abs(cycles % 1.0 - 0.25)))
    before = play(blocks)
    engine.switch(Chain.from_preset(then), wait=False)
    after = play(2 * FADE // block + 4)
    assert engine.switches == 1 and engine.chain.name == then and engine.align == 105
    output = np.concatenate(before + after)[(blocks - 20) * block:]  # past every start-up
    assert_unbroken(output, max(CONVERTER, SHAPED_16))


@pytest.mark.audio
def test_error_solo_level_is_the_chains_error(jack_server, tmp_path):
    """Error solo of TPDF 16-bit at +40 dB: the error's RMS, about -96.3 + 40 dBFS."""

    def check(captured, summary, session):
        assert session.engine.mode == "solo"
        start, end = live_span(captured)
        assert end - start > 1.5 * RATE
        tone = captured[start + 2400:start + 12000].astype(np.float64)  # before the solo
        assert abs(20 * np.log10(np.sqrt(np.mean(tone ** 2))) - TONE_DBFS) < 0.1
        solo = captured[end - RATE:end - 480].astype(np.float64)  # the last second: solo only
        assert np.abs(solo).max() < 0.01  # no tone left
        expected = 20 * np.log10(LSB16 / 2) + 40.0  # TPDF-dithered error: RMS of half a step
        for c in range(2):
            level = 20 * np.log10(np.sqrt(np.mean(solo[:, c] ** 2)))
            assert abs(level - expected) < 1.0, (c, level, expected)

    run_captured(jack_server, tmp_path, "tpdf-16", [(0.3, lambda s: s.toggle_solo(40.0))], 2.0, check)


@pytest.mark.audio
@pytest.mark.parametrize("with_tick", [False, True])
def test_run_waits_out_each_interval(jack_server, with_tick):
    """One wait per interval, tick or not (without a tick, run() once spun on zero-length
    waits: a core busy, and the dying-server test crashed at exit 5 times in 8)."""
    from rtq.live.session import LiveSession
    from rtq.live.sources import Source

    session = LiveSession("tpdf-16", samplerate=RATE, blocksize=64, source=Source.noise(-30))
    waits, ticks = [], []
    wait = session.stream.wait

    def counted(timeout=None, **options):
        waits.append(timeout)
        return wait(timeout, **options)

    session.stream.wait = counted
    session.run(0.5, tick=ticks.append if with_tick else None, interval=0.1)
    assert 3 <= len(waits) <= 12, waits[:20]
    assert 3 <= len(ticks) <= 6 if with_tick else not ticks
