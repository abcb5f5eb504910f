"""Level matching: every condition loudness-matched to the reference.

Loudness is ITU-R BS.1770's integrated loudness (gated, K-weighted), measured by
pyloudnorm on each condition's offline output over the item's loop region (the same
chain code the live test runs).  A condition's gain is the reference's loudness minus
its own, applied to its output as one linear factor (:func:`linear`), live and in the
exported stimuli alike.  Quantizers barely change loudness; low-pass anchors lose the
energy above their corner, and the gain brings them back up.
"""
from __future__ import annotations

import hashlib
import json
from importlib import metadata

import numpy as np

from ..cache import cache_dir, write_atomically
from ..errors import RtqError

STAND_IN_SECONDS = 10.0
STAND_IN_LUFS = -23.0


def loudness_lufs(audio: np.ndarray, samplerate: float) -> float:
    """Integrated loudness of ``audio`` ((frames,) or (frames, channels)) in LUFS (ITU-R
    BS.1770-4, pyloudnorm); -inf for silence (below the absolute gate).

    Stored in rtq's cache, keyed by the samples themselves (their SHA-256), the rate and
    pyloudnorm's version: a test started again measures nothing and imports neither
    pyloudnorm nor the SciPy it loads (seconds on a busy machine; the first sound is
    meant to come within one)."""
    audio = np.ascontiguousarray(audio, dtype=np.float64)
    digest = hashlib.sha256(repr((audio.shape, float(samplerate), metadata.version("pyloudnorm"))).encode())
    digest.update(memoryview(audio).cast("B"))
    path = cache_dir() / "loudness" / f"{digest.hexdigest()[:40]}.json"
    try:
        return float(json.loads(path.read_text()))
    except (OSError, ValueError):
        pass
    import pyloudnorm

    value = float(pyloudnorm.Meter(int(samplerate)).integrated_loudness(audio))
    write_atomically(path, json.dumps(value).encode())
    return value


def linear(db: float) -> float:
    """The factor a gain of ``db`` multiplies samples by (the one rule, live and offline)."""
    return 10.0 ** (db / 20.0)


def matching_gains(outputs: dict[str, np.ndarray], samplerate: float, reference: str,
                   what: str = "the item") -> tuple[dict[str, float], dict[str, float]]:
    """Gains (dB) that bring every output to ``reference``'s loudness, and the loudness
    measured for each (LUFS).  A silent output cannot be matched: one-line RtqError."""
    lufs = {name: loudness_lufs(audio, samplerate) for name, audio in outputs.items()}
    silent = [name for name, value in lufs.items() if not np.isfinite(value)]
    if silent:
        raise RtqError(f"cannot level-match {what}: {', '.join(silent)} is silent there (below BS.1770's "
                       "-70 LUFS gate); choose a louder loop region or set level_match: false")
    return {name: lufs[reference] - value for name, value in lufs.items()}, lufs


def level_matched(chains: dict, region: np.ndarray, samplerate: float, reference: str, match: bool = True,
                  what: str = "the item") -> tuple[dict[str, np.ndarray], dict[str, float], dict[str, float]]:
    """Each chain's offline output over ``region`` (``chain(region, rate)``: latency
    compensated, from a fresh state, exactly what the live comparison plays on its first
    pass), the gains (dB) that loudness-match them to ``reference`` (all 0 without
    ``match``), and the loudness measured (empty without ``match``): the one rule the
    live comparison and the export share."""
    outputs = {name: chain(region, samplerate) for name, chain in chains.items()}
    if not match:
        return outputs, {name: 0.0 for name in chains}, {}
    gains, lufs = matching_gains(outputs, samplerate, reference, what)
    return outputs, gains, lufs


def stand_in(samplerate: float, channels: int) -> np.ndarray:
    """What a `live` item (the sound card's input, unknown in advance) is level-matched
    on: pink noise (a spectrum music approaches on average), 10 s at -23 LUFS, the same
    every time (a fixed seed)."""
    frames = int(STAND_IN_SECONDS * samplerate)
    rng = np.random.default_rng(1770)
    spectrum = np.fft.rfft(rng.standard_normal((frames, channels)), axis=0)
    f = np.fft.rfftfreq(frames, 1.0 / samplerate)
    spectrum[1:] /= np.sqrt(f[1:, None])
    spectrum[0] = 0.0
    noise = np.fft.irfft(spectrum, frames, axis=0)
    return noise * linear(STAND_IN_LUFS - loudness_lufs(noise, samplerate))
