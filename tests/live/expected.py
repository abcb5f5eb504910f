"""What the select mixer must play, from the declared shapes and offline rendering
(shared by the block-driven tests and the JACK capture tests)."""
from __future__ import annotations

import numpy as np

from rtq.live.engine import fade_out_shape

RATE = 48000
FADE = 240          # 5 ms at 48 kHz


def music(frames: int, seed: int = 3) -> np.ndarray:
    """Two tones and some noise, stereo, well below full scale."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None] / RATE
    x = 0.3 * np.sin(2 * np.pi * np.array([441.0, 1234.5]) * t) + 0.05 * rng.standard_normal((frames, 2))
    return x.astype(np.float32).astype(np.float64)   # exact in float32, as a file's samples are


def rendered(chains, x, start, end, frames, gains):
    """Each condition's offline rendering (``chain(x, rate)``) of what the engine feeds its
    chains: the loop region, again and again; times its gain."""
    region = x[start:end]
    fed = np.concatenate([region] * (frames // len(region) + 2))
    return [gain * chain(fed, RATE) for gain, chain in zip(gains, chains)]


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


def expected_output(chains, x, start, end, length, d, changes, jumps, switch="dip", gains=None):
    """The output (and the rendering heard, and where the gain is 1) for ``changes``
    [(frame, slot)] and loop ``jumps`` (frames where they are heard)."""
    renders = rendered(chains, x, start, end, length, gains or [1.0] * len(chains))
    gain, which, incoming, gain_in = declared(length, d, changes, jumps, switch)
    index = np.maximum(np.arange(length) - d, 0)
    heard = np.stack([renders[s][i] for i, s in zip(index, which)])
    value = gain[:, None] * heard
    crossing = incoming >= 0
    if crossing.any():
        other = np.stack([renders[s][i] for i, s in zip(index[crossing], incoming[crossing])])
        value[crossing] += gain_in[crossing, None] * other
    return value, heard, gain == 1.0


