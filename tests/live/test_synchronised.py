"""The select mixer driven block by block through the engine's real callback (no audio
server): every sample against offline rendering of the same input, bit for bit, and
every dip, crossfade and cut sample against its declared gain, exactly."""
from __future__ import annotations

import numpy as np
import pytest

from rtq.chain import Chain
from rtq.live.engine import fade_out_shape
from rtq.live.nullstream import NullStream
from rtq.live.sources import Source
from rtq.live.synchronised import SynchronisedEngine

RATE = 48000
FADE = 240          # 5 ms at 48 kHz
BLOCK = 64


def music(frames: int, seed: int = 3) -> np.ndarray:
    """Two tones and some noise, stereo, well below full scale."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None] / RATE
    x = 0.3 * np.sin(2 * np.pi * np.array([441.0, 1234.5]) * t) + 0.05 * rng.standard_normal((frames, 2))
    return x.astype(np.float32).astype(np.float64)   # exact in float32, as a file's samples are


def chains():
    """Three conditions of different latencies: 0, 105 (oversampled) and the input itself."""
    return [Chain.from_preset("cd-16-shibata"), Chain.from_preset("converter-8bit-8x"), Chain([])]


def make(x, loop=None, switch="dip", gains=None, blocksize=BLOCK):
    def factory(callback, words):
        return NullStream(callback, samplerate=RATE, blocksize=blocksize, channels=2, user_words=words)
    return SynchronisedEngine(factory, chains(), samplerate=RATE, channels=2, blocksize=blocksize,
                              source=Source.buffer(x, RATE), switch=switch, gains=gains, loop=loop)


class Player:
    """Calls the engine's callback block by block; actions run before given blocks."""

    def __init__(self, engine):
        self.engine = engine
        self.call = engine.stream._callback.ctypes
        self.ctl = engine.stream.ctl.ctypes.data
        self.blocks: list[np.ndarray] = []

    def play(self, blocks: int, n: int = BLOCK) -> None:
        for _ in range(blocks):
            inp = np.zeros((n, 2), np.float32)
            out = np.zeros((n, 2), np.float32)
            assert self.call(inp.ctypes.data, out.ctypes.data, n, 0, 0, self.ctl) == 0
            self.blocks.append(out)

    @property
    def output(self) -> np.ndarray:
        return np.concatenate(self.blocks)


def rendered(x, start, end, frames, gains=(1.0, 1.0, 1.0)):
    """Each condition's offline rendering (``chain(x, rate)``) of what the engine feeds its
    chains: the loop region, again and again; times its gain."""
    region = x[start:end]
    fed = np.concatenate([region] * (frames // len(region) + 2))
    return [gain * chain(fed, RATE) for gain, chain in zip(gains, chains())]


def test_fade_shape_is_a_raised_cosine_strictly_inside_0_1():
    shape = fade_out_shape(FADE)
    assert shape.shape == (FADE,) and np.all((shape > 0) & (shape < 1))
    assert np.allclose(shape + shape[::-1], 1.0, atol=1e-15)
    assert np.all(np.diff(shape) < 0)


def declared(length, d, changes, jumps, switch="dip"):
    """The gain and the condition heard at every output frame, from the declared shapes:
    silence for the chains' start-up (``d`` frames), a rise where the first input is
    heard and where the first selection starts, a dip (or crossfade, or cut) at each
    ``(frame, slot)`` change, a dip around each loop jump."""
    shape = fade_out_shape(FADE)
    rise = shape[::-1]
    gain = np.ones(length)
    which = np.zeros(length, int)
    incoming = np.full(length, -1)
    gain_in = np.zeros(length)
    gain[:d] = 0.0
    gain[d:d + FADE] *= rise
    if switch != "cut":       # the first selection rises from silence, as after a pause
        gain[:FADE] *= rise
    for q, slot in changes:
        if switch == "dip":
            gain[q:q + FADE] *= shape
            gain[q + FADE:q + 2 * FADE] *= rise
            which[q + FADE:] = slot
        elif switch == "crossfade":
            gain[q:q + FADE] *= shape
            incoming[q:q + FADE] = slot
            gain_in[q:q + FADE] = rise
            which[q + FADE:] = slot
        else:
            which[q:] = slot
    for jump in jumps:
        gain[jump - FADE:jump] *= shape
        gain[jump:jump + FADE] *= rise
        gain_in[jump - FADE:jump] *= shape
        gain_in[jump:jump + FADE] *= rise
    return gain, which, incoming, gain_in


def expected_output(x, start, end, length, d, changes, jumps, switch="dip", gains=(1.0, 1.0, 1.0)):
    renders = rendered(x, start, end, length, gains)
    gain, which, incoming, gain_in = declared(length, d, changes, jumps, switch)
    index = np.maximum(np.arange(length) - d, 0)
    heard = np.stack([renders[s][i] for i, s in zip(index, which)])
    value = gain[:, None] * heard
    crossing = incoming >= 0
    if crossing.any():
        other = np.stack([renders[s][i] for i, s in zip(index[crossing], incoming[crossing])])
        value[crossing] += gain_in[crossing, None] * other
    return value, heard, gain == 1.0


def play_script(engine, script):
    """``script``: [(blocks to play, slot selected before them)]; returns the output."""
    player = Player(engine)
    for blocks, slot in script:
        engine.select(slot)
        player.play(blocks)
    return player.output.astype(np.float64)


@pytest.mark.parametrize("switch", ["dip", "crossfade", "cut"])
def test_switches_and_loop_jumps_equal_rendering_times_the_declared_gains(switch):
    """Select A, switch to B, to the input itself, back to A, across a loop jump: outside
    the fades every sample equals the selected chain's offline rendering bit for bit;
    inside them it is the declared gain times it (and, crossfading, plus the other's);
    a dip is exactly 240 frames down and 240 up."""
    x = music(40000)
    start, end = 5000, 30000
    engine = make(x, loop=(start, end), switch=switch)
    d = engine.align
    assert d == 105
    out = play_script(engine, [(100, 0), (150, 1), (150, 2), (100, 0)])
    changes = [(100 * BLOCK, 1), (250 * BLOCK, 2), (400 * BLOCK, 0)]
    jumps = [(end - start) + d]       # the loop's jump back, heard D frames after it is made
    want, heard, full = expected_output(x, start, end, len(out), d, changes, jumps, switch)
    assert np.array_equal(out[full], heard[full].astype(np.float32))
    assert np.abs(out - want).max() <= 2e-7
    if switch == "dip":
        for q, _ in changes:     # exactly 240 frames differ going down, 240 coming up
            differs = np.flatnonzero(np.any(out[q - 10:q + 2 * FADE + 10] != heard[q - 10:q + 2 * FADE + 10].astype(np.float32), axis=1)) + q - 10
            assert differs[0] == q and differs[-1] == q + 2 * FADE - 1 and len(differs) == 2 * FADE
    bottom = {"dip": FADE, "crossfade": 0, "cut": 0}[switch]
    assert engine.history() == [(0, 0)] + [(q + bottom, slot) for q, slot in changes]


def test_pause_holds_the_playhead_and_resumes_where_it_stopped():
    """Silence dips out and freezes: no input is read and no chain runs; selecting again
    rises where it stopped (the block in which the dip ended was processed, unheard)."""
    x = music(40000)
    engine = make(x, loop=(0, 40000))
    out = play_script(engine, [(50, 0), (20, None), (50, 0)])
    assert engine.frozen is False
    q = 50 * BLOCK
    paused = out[q + FADE:q + 20 * BLOCK]
    assert not paused.any()
    # the chains processed 50 + 4 blocks before the freeze (the dip ends inside the 4th)
    processed = 50 * BLOCK + 4 * BLOCK
    assert engine.frames == processed + 50 * BLOCK
    render = chains()[0](x, RATE)
    d = engine.align
    resumed = out[70 * BLOCK + FADE:]
    first = processed - d
    assert np.array_equal(resumed, render[first + FADE:first + FADE + len(resumed)].astype(np.float32))


def test_gains_scale_the_output_exactly():
    x = music(30000)
    gains = (10 ** (-1.5 / 20), 10 ** (0.7 / 20), 1.0)
    engine = make(x, gains=gains)
    out = play_script(engine, [(100, 1)])
    d = engine.align
    render = chains()[1](x, RATE)
    q = d + FADE
    assert np.array_equal(out[q:], (gains[1] * render[q - d:len(out) - d]).astype(np.float32))
