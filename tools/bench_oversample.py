#!/usr/bin/env python3
"""Benchmark: a 4x up-and-down round trip, rtq against python-soxr and scipy, in one run.

Not a test: prints a table.  For each resampler, on the same machine in the same run:

* throughput of the round trip (48 kHz -> 192 kHz -> 48 kHz), stereo, ``--seconds`` of
  white noise, best of ``--repeat`` rounds, as "x real time" (audio seconds per second);
  each round times every resampler once, in turn, so a machine whose load drifts
  (shared VMs) slows all of them alike and the ratios stay comparable;
* image rejection of the up-sampler and alias rejection of the down-sampler, measured
  the same way for all (see :func:`image_rejection_db` / :func:`alias_rejection_db`):
  coherent tones, exact-bin levels of periodic steady-state outputs, worst case over the
  tones and over every band that images / aliases into 0 .. 0.4535 fs.

Resamplers: rtq ``Oversample(4, [Gain(0.0)], phase, quality)`` chains (linear high, linear normal,
minimum high; throughput through a prepared :class:`~rtq.chain.Chain`, rejection through
the same kernels' up and down halves), ``soxr.resample`` at HQ and VHQ (whole signal: up,
then down) and soxr's stream API (``ResampleStream``, blocks of 4096 frames, no
whole-signal intermediate), ``scipy.signal.resample_poly`` (its default Kaiser filter,
whose transition band reaches into 0 .. 0.4535 fs).  Also the 1-bit 64x 5th-order modulator
(``dsd64-1bit``) throughput, stereo.

Usage: ``python tools/bench_oversample.py [--seconds 60] [--repeat 3]``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from bench_render import cpu_model

# The offline up/down wrapper the tests use (tests/dsp/oversampler.py).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

RATE = 48000
FACTOR = 4
N_TONE = 8192                    # stream samples per period of the measurement tones
# 1, 10, 20 kHz and the band edge 0.4535 fs (21.77 kHz), as stream bins of N_TONE
TONE_BINS = (171, 1707, 3413, int(0.4535 * N_TONE))


# ------------------------------------------------------------------------- resamplers


class Resampler:
    """A named pair of functions: ``up(x)`` (n, C) -> (4n, C), ``down(v)`` -> (n, C),
    each on a whole signal from a clean state; ``round_trip(x)`` is what is timed."""

    def __init__(self, name, up, down, round_trip=None):
        self.name = name
        self.up = up
        self.down = down
        self.round_trip = round_trip or (lambda x: down(up(x)))


def rtq_resampler(phase: str, quality: str) -> Resampler:
    from rtq.chain import Chain
    from rtq.dsp.oversample_design import design_oversampler
    from dsp.oversampler import Oversampler
    from rtq.stages import Gain, Oversample

    design = design_oversampler(FACTOR, phase, quality)

    def up(x):
        return Oversampler(design, x.shape[1]).up(x)

    def down(v):
        return Oversampler(design, v.shape[1]).down(v)

    chains: dict[int, Chain] = {}

    def round_trip(x):
        chain = chains.get(x.shape[1])
        if chain is None:
            chain = chains[x.shape[1]] = Chain([Oversample(FACTOR, [Gain(0.0)], phase, quality)])
            chain.prepare(RATE, x.shape[1], 4096)
        chain.reset()
        y = x.copy()
        chain.process(y)
        return y

    return Resampler(f"rtq {phase} {quality}", up, down, round_trip)


def soxr_resampler(quality: str) -> Resampler:
    import soxr

    return Resampler(f"soxr {quality}",
                     lambda x: soxr.resample(x, RATE, FACTOR * RATE, quality=quality),
                     lambda v: soxr.resample(v, FACTOR * RATE, RATE, quality=quality))


def soxr_stream_resampler(quality: str, block: int = 4096) -> Resampler:
    """soxr's stream API, up and down block by block (no whole-signal intermediate)."""
    import soxr

    def run(x, rate_in, rate_out, blk):
        s = soxr.ResampleStream(rate_in, rate_out, x.shape[1], dtype="float64", quality=quality)
        out = [s.resample_chunk(x[i:i + blk], last=i + blk >= len(x)) for i in range(0, len(x), blk)]
        return np.concatenate(out)

    def round_trip(x):
        up = soxr.ResampleStream(RATE, FACTOR * RATE, x.shape[1], dtype="float64", quality=quality)
        down = soxr.ResampleStream(FACTOR * RATE, RATE, x.shape[1], dtype="float64", quality=quality)
        out = []
        for i in range(0, len(x), block):
            last = i + block >= len(x)
            out.append(down.resample_chunk(up.resample_chunk(x[i:i + block], last=last), last=last))
        return np.concatenate(out)

    return Resampler(f"soxr {quality} stream", lambda x: run(x, RATE, FACTOR * RATE, block),
                     lambda v: run(v, FACTOR * RATE, RATE, FACTOR * block), round_trip)


def scipy_resampler() -> Resampler:
    from scipy import signal

    return Resampler("scipy resample_poly",
                     lambda x: signal.resample_poly(x, FACTOR, 1, axis=0),
                     lambda v: signal.resample_poly(v, 1, FACTOR, axis=0))


# -------------------------------------------------------------------- measurements


def _bin_amplitude(y: np.ndarray, k: int) -> float:
    """Amplitude of the component in bin k of an exactly periodic y (rectangular)."""
    return 2.0 * abs(np.fft.rfft(y)[k]) / len(y)


def _periodic_tone(k: int, n: int, periods: int) -> np.ndarray:
    return np.sin(2 * np.pi * k * np.arange(n * periods) / n)[:, None]


def image_rejection_db(r: Resampler) -> float:
    """Up-sampler: a stream-rate tone in bin k (period N_TONE, 5 periods), up-sampled;
    on the 4th period at the top rate (steady state), the largest image at
    m N_TONE +- k (m = 1, 2, below the top Nyquist) relative to the tone.  Worst case
    over ``TONE_BINS``."""
    worst = np.inf
    n, top = N_TONE, FACTOR * N_TONE
    for k in TONE_BINS:
        v = r.up(_periodic_tone(k, n, 5))[:, 0]
        seg = v[3 * top:4 * top]
        tone = _bin_amplitude(seg, k)
        for m in range(1, FACTOR // 2 + 1):
            for img in (m * n - k, m * n + k):
                if img < top // 2:
                    worst = min(worst, 20 * np.log10(tone / max(_bin_amplitude(seg, img), 1e-300)))
    return float(worst)


def alias_rejection_db(r: Resampler) -> float:
    """Down-sampler: a top-rate tone at m fs +- f (every band that folds onto
    f in ``TONE_BINS``), down-sampled; the level of its alias at f on the 4th period
    (steady state) relative to the tone's amplitude.  Worst case."""
    worst = np.inf
    n, top = N_TONE, FACTOR * N_TONE
    for k in TONE_BINS:
        for m in range(1, FACTOR // 2 + 1):
            for src in (m * n - k, m * n + k):
                if src >= top // 2:
                    continue
                y = r.down(_periodic_tone(src, top, 5))[:, 0]
                alias = _bin_amplitude(y[3 * n:4 * n], k)
                worst = min(worst, -20 * np.log10(max(alias, 1e-300)))
    return float(worst)


def passband_ripple_db(r: Resampler) -> float:
    """Round trip: largest |gain error| of the tones in ``TONE_BINS``, dB."""
    worst = 0.0
    for k in TONE_BINS:
        y = r.round_trip(_periodic_tone(k, N_TONE, 5))[:, 0]
        worst = max(worst, abs(20 * np.log10(_bin_amplitude(y[3 * N_TONE:4 * N_TONE], k))))
    return worst


def throughputs(fns: list, x: np.ndarray, repeat: int) -> list[float]:
    """Audio seconds processed per wall second for each of ``fns``, best of ``repeat``
    rounds; every round runs each function once, in turn (alternating windows)."""
    for fn in fns:
        fn(x[:RATE])                  # warm up (JIT, plans)
    best = [np.inf] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn(x)
            best[i] = min(best[i], time.perf_counter() - start)
    return [x.shape[0] / RATE / b for b in best]


def modulator_throughput(seconds: float, repeat: int) -> float:
    from rtq.chain import Chain

    rng = np.random.default_rng(2)
    rate = 44100
    x = 0.2 * rng.standard_normal((int(seconds * rate), 2))
    chain = Chain.from_preset("dsd64-1bit").prepare(rate, 2, 4096)
    chain.process(x[:4096].copy())
    best = np.inf
    for _ in range(repeat):
        chain.reset()
        y = x.copy()
        start = time.perf_counter()
        chain.process(y)
        best = min(best, time.perf_counter() - start)
    return seconds / best


# ------------------------------------------------------------------------------ main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="noise length (default 60)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs, best kept (default 3)")
    parser.add_argument("--modulator-seconds", type=float, default=20.0,
                        help="input length for the 1-bit 64x modulator (default 20)")
    args = parser.parse_args()

    rng = np.random.default_rng(1)
    x = 0.25 * rng.standard_normal((int(args.seconds * RATE), 2))
    resamplers = [rtq_resampler("linear", "high"), rtq_resampler("linear", "normal"),
                  rtq_resampler("minimum", "high"), soxr_resampler("HQ"), soxr_resampler("VHQ"),
                  soxr_stream_resampler("HQ"), soxr_stream_resampler("VHQ"), scipy_resampler()]
    print(f"CPU: {cpu_model()}; load average {os.getloadavg()[0]:.2f}")
    print(f"4x round trip 48 kHz -> 192 kHz -> 48 kHz, stereo, {args.seconds:g} s of white "
          f"noise, best of {args.repeat} alternating rounds")
    print(f"{'resampler':<22} {'x real time':>11} {'image rej':>10} {'alias rej':>10} "
          f"{'ripple':>9} {'/ soxr HQ':>10} {'/ HQ stream':>11}")
    speeds = throughputs([r.round_trip for r in resamplers], x, args.repeat)
    rows = [(r.name, speed, image_rejection_db(r), alias_rejection_db(r), passband_ripple_db(r))
            for r, speed in zip(resamplers, speeds)]
    ref = next(speed for name, speed, *_ in rows if name == "soxr HQ")
    ref_stream = next(speed for name, speed, *_ in rows if name == "soxr HQ stream")
    for name, speed, img, ali, rip in rows:
        print(f"{name:<22} {speed:>10.0f}x {img:>7.1f} dB {ali:>7.1f} dB {rip:>9.2g} "
              f"{speed / ref:>9.2f}x {speed / ref_stream:>10.2f}x")
    print("throughput ratios: x real time / that of soxr HQ (resample, whole signal) and of soxr "
          "HQ stream (4096-frame blocks)")
    print("image rej: worst image of 1/10/20/21.77 kHz tones going up; alias rej: worst "
          "alias onto them going down (dB); ripple: worst round-trip gain error of those tones (dB)")
    mod = modulator_throughput(args.modulator_seconds, args.repeat)
    print(f"1-bit 64x order-5 modulator (dsd64-1bit, 44.1 kHz stereo, {args.modulator_seconds:g} s "
          f"of noise): {mod:.1f}x real time")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
