"""A synthetic speech-like test signal, the training data of the shipped preset
``speech-lloyd-max-4`` (its description has the commands)::

    python3 tools/speech_signal.py speech.wav [--seconds 60] [--rate 16000] [--seed 2026]

Syllables of a source-filter model: voiced ones a glottal pulse train (f0 90-220 Hz,
gliding) through a glottal low-pass and three formant resonators of a vowel, unvoiced
ones high-passed noise; a raised-cosine envelope each, levels spread over +-8 dB, pauses
between words, a noise floor at -66 dBFS.  Scaled so the active speech (samples within
20 dB of the loudest 50 ms) is at -20 dBFS RMS, written as a float WAV (so training reads
exactly what was made).  What matters for a quantizer is the amplitude distribution,
which is speech's: peaky, near Laplacian, with a long tail and pauses.  Deterministic
for a given seed (NumPy's PCG64 stream).
"""
from __future__ import annotations

import argparse

import numpy as np
import soundfile as sf
from scipy.signal import lfilter

# (F1, F2, F3) in Hz of a few vowels (Peterson & Barney's adult male averages).
VOWELS = ((730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480), (570, 840, 2410),
          (660, 1720, 2410), (490, 1350, 1690))
BANDWIDTHS_HZ = (80.0, 100.0, 140.0)
ACTIVE_RMS_DBFS = -20.0
NOISE_FLOOR_DBFS = -66.0


def resonator(x: np.ndarray, hz: float, bandwidth: float, rate: int) -> np.ndarray:
    """A two-pole resonance at ``hz`` with unit gain at DC."""
    r = np.exp(-np.pi * bandwidth / rate)
    a = [1.0, -2.0 * r * np.cos(2.0 * np.pi * hz / rate), r * r]
    return lfilter([sum(a)], a, x)


def syllable(rng: np.random.Generator, rate: int) -> np.ndarray:
    n = int(rng.uniform(0.12, 0.30) * rate)
    if rng.random() < 0.75:
        f0 = rng.uniform(90.0, 220.0) * np.linspace(1.0, rng.uniform(0.8, 1.2), n)
        phase = np.cumsum(f0 / rate)
        pulses = np.diff(np.floor(phase), prepend=0.0)        # one impulse per period
        x = lfilter([1.0], [1.0, -1.9, 0.9025], pulses)        # glottal low-pass (double pole at 0.95)
        x = np.diff(x, prepend=0.0)                             # lip radiation
        for hz, bw in zip(VOWELS[rng.integers(len(VOWELS))], BANDWIDTHS_HZ):
            x = resonator(x, min(hz, 0.45 * rate), bw, rate)
    else:
        x = np.diff(rng.standard_normal(n), prepend=0.0)        # fricative: noise tilted upwards
        x = lfilter([1.0, -1.0], [1.0], x) * 0.3
    envelope = np.sin(np.pi * np.arange(n) / n) ** 0.7
    x = x * envelope
    return x / (np.sqrt(np.mean(x * x)) + 1e-30) * 10 ** (rng.uniform(-8.0, 8.0) / 20)


def speech(seconds: float, rate: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    total = int(seconds * rate)
    parts, length = [], 0
    while length < total:
        for _ in range(rng.integers(1, 5)):                     # a word of 1-4 syllables
            parts.append(syllable(rng, rate))
            length += parts[-1].size
        pause = np.zeros(int(rng.uniform(0.05, 0.40) * rate))
        parts.append(pause)
        length += pause.size
    x = np.concatenate(parts)[:total]
    hop = int(0.05 * rate)
    frames = x[:x.size // hop * hop].reshape(-1, hop)
    power = np.mean(frames * frames, axis=1)
    active = np.repeat(power > power.max() * 0.01, hop)
    x = x * 10 ** (ACTIVE_RMS_DBFS / 20) / np.sqrt(np.mean(x[:active.size][active] ** 2))
    x += rng.standard_normal(total) * 10 ** (NOISE_FLOOR_DBFS / 20)
    peak = np.max(np.abs(x))
    if peak >= 1.0:
        raise SystemExit(f"the signal peaks at {peak:.3f}: choose another seed")
    return x.astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", help="WAV file to write (float)")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=int, default=16000)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    sf.write(args.output, speech(args.seconds, args.rate, args.seed), args.rate, subtype="FLOAT")


if __name__ == "__main__":
    main()
