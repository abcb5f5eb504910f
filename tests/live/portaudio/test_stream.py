"""DuplexStream on the real JACK dummy server: bit-exactness, counters, GIL freedom, faults.

No timing assertions on callback durations (machines are noisy): only counts,
sample values and "the program stops within 2 s when its server dies".
"""

import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import jack
import numba
import numpy as np
import pytest

from rtq.errors import RtqError
from rtq.jit import address_as_void_pointer, kernel
from rtq.live.callback import CALLBACKS, COMMAND, COMPLETE, FINISHED, USER
from rtq.live.portaudio import JACK_PORTS
from rtq.live.portaudio.stream import DuplexStream
from rtq.live.wakeup import WakeupLatency

from ..blocks import make_callback, passthrough

# User words of ramp_recorder: bound recording array (address, frames, channels), armed flag, frame counter.
REC, ARMED, COUNT = 0, 3, 4


@kernel
def ramp_recorder(ctl, inp, out, n):
    """Once armed, play a ramp (a function of the frame number) and record the input."""
    rec = numba.carray(address_as_void_pointer(ctl[USER + REC]), (ctl[USER + 1], ctl[USER + 2]), np.float32)
    armed = ctl[USER + ARMED] != 0
    start = ctl[USER + COUNT]
    for i in range(n):
        frame = start + i
        for c in range(out.shape[1]):
            out[i, c] = ((frame * 7 + c * 3) % 2048 - 1023) / 1024.0 if armed else 0.0
        if armed and frame < rec.shape[0]:
            rec[frame, :] = inp[i, :]
    if armed:
        ctl[USER + COUNT] = start + n


def ramp(frames, channels):
    frame = np.arange(frames)[:, None]
    channel = np.arange(channels)[None, :]
    return (((frame * 7 + channel * 3) % 2048 - 1023) / 1024.0).astype(np.float32)


@kernel
def complete_after_20(ctl, inp, out, n):
    out[:n] = 0.0
    if ctl[CALLBACKS] >= 20:
        ctl[COMMAND] = COMPLETE


@pytest.fixture
def client(jack_server):
    """A JACK-Client used to wire ports (and, when given a process callback, as a test source/sink)."""
    c = jack.Client("rtq-harness", no_start_server=True, servername=jack_server)
    yield c
    c.deactivate()
    c.close()


def stream_ports(client):
    """Names of the open stream's (input, output) JACK ports, in channel order.

    PortAudio numbers ports with a per-process counter (the second stream
    gets in_2, in_3, ...), so they are looked up, not assumed.
    """

    def number(port):
        return int(port.name.rsplit("_", 1)[1])

    ports = client.get_ports(JACK_PORTS, is_audio=True)
    ins = sorted((p for p in ports if p.is_input), key=number)
    outs = sorted((p for p in ports if p.is_output), key=number)
    return [p.name for p in ins], [p.name for p in outs]


def rewire(client, connections):
    """Disconnect the stream's ports from everything, then make ``connections`` (pairs of port names)."""
    for port in client.get_ports(JACK_PORTS, is_audio=True):
        for other in client.get_all_connections(port):
            if port.is_output:
                client.disconnect(port, other)
            else:
                client.disconnect(other, port)
    for source, destination in connections:
        client.connect(source, destination)


def bits(a):
    return np.ascontiguousarray(a).view(np.uint32)


# Each attempt is 0.6 s of audio; the VM's noise reaches several xruns a second at times.
ATTEMPTS = 8


@pytest.mark.audio
def test_passthrough_is_bit_exact_through_jack(client):
    frames, blocksize = 24000, 64
    source = np.random.default_rng(7).uniform(-1, 1, (frames, 2)).astype(np.float32)
    captured = np.zeros((frames + 4096, 2), np.float32)
    harness = {"pos": -1, "xruns": 0}
    sources = [client.outports.register(f"src_{c}") for c in range(2)]
    sinks = [client.inports.register(f"cap_{c}") for c in range(2)]

    @client.set_process_callback
    def process(n):
        pos = harness["pos"]
        for c in range(2):
            out = sources[c].get_array()
            out[:] = 0.0
            if pos >= 0:
                chunk = source[pos : pos + n, c]
                out[: chunk.size] = chunk
                end = min(pos + n, captured.shape[0])
                captured[pos:end, c] = sinks[c].get_array()[: end - pos]
        if pos >= 0:
            harness["pos"] = pos + n

    client.set_xrun_callback(lambda delay: harness.__setitem__("xruns", harness["xruns"] + 1))
    # As rtq live on a sound card: the CPU latency request halves this VM's xruns.
    with WakeupLatency(0), DuplexStream(make_callback(passthrough), blocksize=blocksize, channels=2) as stream:
        stream.start()
        client.activate()
        stream.wait(0.05)  # let PortAudio finish its own connections first
        ins, outs = stream_ports(client)
        rewire(client, [(p.name, i) for p, i in zip(sources, ins)] + [(o, p.name) for o, p in zip(outs, sinks)])
        for _attempt in range(ATTEMPTS):  # a JACK xrun anywhere in the graph can drop a block: retry
            stream.wait(0.1)
            captured[:] = 0.0
            harness["xruns"] = 0
            harness["pos"] = 0
            while harness["pos"] < captured.shape[0]:
                stream.wait(0.05)
            harness["pos"] = -1
            if harness["xruns"] == 0:
                break
        else:
            pytest.fail(f"JACK reported xruns in {ATTEMPTS} attempts")
        stats = stream.stats()
    delay = int(np.argmax(captured[:, 0] != 0))
    assert 0 < delay < 4096
    assert not captured[:delay].any()
    assert np.array_equal(bits(captured[delay : delay + frames]), bits(source))
    assert stats.callbacks > 0.5 * 48000 / blocksize
    assert stats.frames == stats.callbacks * blocksize
    assert stats.load_p50 <= stats.load_p99 <= stats.load_max * 2 ** (1 / 16)
    longest = stats.max_duration
    assert stats.seconds_since_callback is not None and longest > 0


@pytest.mark.audio
@pytest.mark.parametrize("blocksize", [64, 256, 0])
def test_bound_arrays_and_loopback_delay(client, blocksize):
    """Own outputs wired to own inputs: the recorded ramp is bit-exact, late by period + blocksize."""
    client.activate()
    recording = np.zeros((12000, 2), np.float32)
    with DuplexStream(make_callback(ramp_recorder), blocksize=blocksize, user_words=5) as stream:
        assert stream.bind(REC, recording) == 3
        stream.start()
        stream.wait(0.05)  # let PortAudio finish its own connections first
        ins, outs = stream_ports(client)
        rewire(client, list(zip(outs, ins)))
        stream.wait(0.05)
        stream.ctl[USER + ARMED] = 1
        while stream.ctl[USER + COUNT] < recording.shape[0]:
            stream.wait(0.05)
    delay = client.blocksize + blocksize
    assert not recording[:delay].any()
    assert np.array_equal(bits(recording[delay:]), bits(ramp(recording.shape[0] - delay, 2)))


def spin(seconds=1.5):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def frames_while_python_spins(stream) -> tuple[int, float]:
    """Frames the running ``stream`` plays while a thread spins in Python for 1.5 s
    under a 250 ms switch interval (a GIL-bound callback, or clock, would wait up to
    250 ms per block), and the frames expected in that time."""
    stream.wait(0.2)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.25)
    try:
        frames0, t0 = stream.stats().frames, time.monotonic()
        busy = threading.Thread(target=spin)
        busy.start()
        busy.join()
        frames1, t1 = stream.stats().frames, time.monotonic()
    finally:
        sys.setswitchinterval(interval)
    assert stream.check()
    return frames1 - frames0, (t1 - t0) * stream.samplerate


@pytest.mark.audio
def test_busy_python_thread_does_not_stop_callbacks():
    """A thread spinning in Python holds the GIL for 1.5 s; the callback never needs it."""
    with DuplexStream(make_callback(passthrough), blocksize=64) as stream:
        stream.start()
        frames, expected = frames_while_python_spins(stream)
    assert 0.9 * expected <= frames <= 1.1 * expected + 64


@pytest.mark.audio
def test_block_fn_can_end_the_stream_and_it_restarts():
    with DuplexStream(make_callback(complete_after_20), blocksize=64) as stream:
        stream.start()
        assert stream.wait(5) is False  # finished before the timeout
        first = stream.stats().callbacks
        assert first >= 21 and stream.ctl[FINISHED] == 1
        stream.stop()
        stream.start()
        assert stream.wait(5) is False
        assert stream.stats().callbacks > first
    assert stream.closed


@pytest.mark.audio
@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"device": "no such card"}, r"no input device matches 'no such card'; available: \[0\] system"),
        ({"samplerate": 44100}, r"sample rate 44100 Hz is not supported .*; supported: 48000$"),
        ({"channels": 3}, r"input device \[0\] system .* offers 1\.\.2 input channels, not 3"),
        ({"channels": (1, 0)}, r"output device .* offers 1\.\.2 output channels, not 0"),
        ({"blocksize": -1}, r"blocksize must be a whole number of frames >= 0, not -1"),
        ({"latency": "medium"}, r"latency must be 'low', 'high' or seconds >= 0, not 'medium'"),
    ],
)
def test_open_errors_are_one_clear_line(kwargs, expected):
    with pytest.raises(RtqError, match=expected) as err:
        DuplexStream(make_callback(passthrough), **kwargs)
    assert "\n" not in str(err.value)


TESTS = Path(__file__).resolve().parents[2]
CHILD = f"import sys\nsys.path.insert(0, {str(TESTS)!r})\n" + """
from live.blocks import make_callback, passthrough
from rtq.errors import RtqError
from rtq.live.portaudio.stream import DuplexStream
try:
    with DuplexStream(make_callback(passthrough), blocksize=64) as stream:
        stream.start()
        print("running", flush=True)
        stream.wait()
except RtqError as err:
    print(f"rtq: {err}", file=sys.stderr)
    sys.exit(1)
"""


@pytest.mark.audio
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGSTOP], ids=lambda s: s.name)
def test_dying_server_stops_the_program_with_a_message(throwaway_jack_server, sig):
    """Kill (or freeze) the JACK server under a running stream: exit 1 within 2 s, no hang, no abort."""
    server = throwaway_jack_server
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], env=server.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        ready, _, _ = select.select([child.stdout], [], [], 60)
        assert ready and child.stdout.readline() == "running\n", child.stderr.read()
        time.sleep(0.3)
        server.kill(sig)
        try:
            status = child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail("the program hung after its JACK server went away")
        message = child.stderr.read()
    finally:
        child.kill()
        child.wait()
        if sig == signal.SIGSTOP:
            server.kill(signal.SIGCONT)
    assert status == 1, message
    assert message.startswith("rtq: audio stream lost: ") and message.count("\n") == 1
