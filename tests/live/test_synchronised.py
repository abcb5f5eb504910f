"""The select mixer driven block by block through the engine's real callback (no audio
server): every sample against offline rendering of the same input, bit for bit, and
every dip, crossfade and cut sample against its declared gain, exactly."""
from __future__ import annotations

import numpy as np
import pytest

from rtq.chain import Chain
from rtq.live.engine import LOOP_REQUEST, LOOP_SEEN, fade_out_shape
from rtq.live.nullstream import NullStream
from rtq.live.sources import Source
from rtq.live.synchronised import SynchronisedEngine

from .expected import FADE, RATE, expected_output, music

BLOCK = 64


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


def test_fade_shape_is_a_raised_cosine_strictly_inside_0_1():
    shape = fade_out_shape(FADE)
    assert shape.shape == (FADE,) and np.all((shape > 0) & (shape < 1))
    assert np.allclose(shape + shape[::-1], 1.0, atol=1e-15)
    assert np.all(np.diff(shape) < 0)


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
    want, heard, full = expected_output(chains(), x, start, end, len(out), d, changes, jumps, switch)
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


def test_loop_points_set_while_held_are_taken_at_once():
    """With nothing selected (the playhead held) the callback still takes new loop points,
    block by block: a second change never waits for playback to resume (the web page's
    drag, then a loop key, before anything plays), and the points read as set."""
    x = music(40000)
    engine = make(x, loop=(0, 40000))
    player = Player(engine)
    player.play(2)
    assert engine.frozen
    for points in ((5000, 30000), (10000, 20000)):
        engine.loop = points
        player.play(1)
        assert engine.eng[LOOP_SEEN] == engine.eng[LOOP_REQUEST] and engine.loop == points
    assert engine.frozen and not player.output.any()


def test_gains_scale_the_output_exactly():
    x = music(30000)
    gains = (10 ** (-1.5 / 20), 10 ** (0.7 / 20), 1.0)
    engine = make(x, gains=gains)
    out = play_script(engine, [(100, 1)])
    d = engine.align
    render = chains()[1](x, RATE)
    q = d + FADE
    assert np.array_equal(out[q:], (gains[1] * render[q - d:len(out) - d]).astype(np.float32))
