"""Test signals and input files shared by the rendering tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf


def make_signal(n: int, channels: int = 2, seed: int = 0, rate: int = 44100, burst: int = 200) -> np.ndarray:
    """float32-exact test signal: noise plus a sine, with ``burst`` samples past full scale."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    x = 0.05 * rng.standard_normal((n, channels))
    x += 0.4 * np.sin(2.0 * np.pi * 1001.0 / rate * t)[:, None]
    x[n // 3:n // 3 + burst] *= 3.0
    return x.astype(np.float32).astype(np.float64)


def write_input(path: Path, x: np.ndarray, rate: int) -> Path:
    """A FLOAT WAV holding ``x`` exactly."""
    sf.write(str(path), x, rate, subtype="FLOAT")
    assert np.array_equal(sf.read(str(path), always_2d=x.ndim == 2)[0], x, equal_nan=True)
    return path
