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


def faded_sine(seconds: float, rate: int = 48000, hz: float = 1000.0, peak: float = 0.5,
               fade_s: float = 0.02, channels: int = 2) -> np.ndarray:
    """A sine with raised-cosine fades at both ends (float32-exact): its onset and end
    are band-limited, so a chain's filters add no transient that depends on how its
    latency is padded."""
    n = int(round(seconds * rate))
    x = peak * np.sin(2.0 * np.pi * hz / rate * np.arange(n))
    k = int(round(fade_s * rate))
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(k) / k)
    x[:k] *= ramp
    x[n - k:] *= ramp[::-1]
    return np.repeat(x[:, None], channels, axis=1).astype(np.float32).astype(np.float64)


SIGMA_DELTA_64X = """name: {name}
chain:
  - oversample:
      factor: 64
      integer_latency: {padded}
      chain:
        - requantize: {{bits: 1, dither: none, shaping: {{order: 5}}}}
"""


def sigma_delta_presets(folder: Path) -> dict[bool, Path]:
    """Issue 15's chain, a 1-bit order-5 loop at 64x, as preset files: its latency left
    fractional (106.28125 samples at any rate, False) and padded to 107 (True)."""
    paths = {}
    for padded in (False, True):
        path = folder / f"sd64-{'padded' if padded else 'fractional'}.yaml"
        path.write_text(SIGMA_DELTA_64X.format(name=path.stem, padded=str(padded).lower()))
        paths[padded] = path
    return paths
