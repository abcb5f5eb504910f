#!/usr/bin/env python3
"""Benchmark: `rtq render` against SoX and FFmpeg on the same file, in one run.

Makes (once) a 10-minute 24-bit 44.1 kHz stereo file of noise-like music stand-in, then
times, each the best of --repeat runs with a warm cache:

* rtq render cd-16-shibata (gain -0.1 dB, TPDF, 20-tap Shibata)
* sox IN -b 16 OUT dither -f shibata
* ffmpeg -af aresample=osf=s16:dither_method=shibata
* sox IN -b 16 OUT (no dither: the file I/O floor)

and prints wall times and ratios, plus the requantize kernel's cost per sample per
channel measured in-process.  Usage: ``python tools/bench_render.py [--minutes 10]``.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf


def make_input(path: Path, minutes: float, rate: int = 44100) -> None:
    rng = np.random.default_rng(7)
    frames = int(minutes * 60 * rate)
    with sf.SoundFile(path, "w", rate, 2, "PCM_24") as f:
        block = rate * 10
        t0 = 0
        while t0 < frames:
            n = min(block, frames - t0)
            t = (t0 + np.arange(n)) / rate
            tone = 0.3 * np.sin(2 * np.pi * 441.3 * t)[:, None]
            f.write(tone + 0.05 * rng.standard_normal((n, 2)))
            t0 += n


def best_time(cmd: list[str], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - start)
    return best


def kernel_ns_per_sample(cores: int) -> float:
    """Wall time of the requantizer over a stereo block, per sample per channel, with the
    channels on ``cores`` cores (the render's channel groups)."""
    from rtq.chain import Chain
    from rtq.render import _ChannelGroups
    from rtq.stages import Requantize

    x = (np.random.default_rng(0).standard_normal((1 << 22, 2)) * 0.1).astype(np.float32)
    chain = Chain([Requantize(16, "tpdf", shaping="shibata")]).prepare(44100, 2, 8192)
    best = float("inf")
    with _ChannelGroups(chain, cores) as groups:
        for _ in range(3):
            y = x.copy()
            start = time.perf_counter()
            for first in range(0, y.shape[0], 32768):
                groups.process(y[first:first + 32768])
            best = min(best, time.perf_counter() - start)
    return best / x.size * 1e9


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "rtq-bench")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    src = args.workdir / f"in-{args.minutes:g}min-24bit-44k1.wav"
    if not src.exists():
        print(f"making {src} ...", file=sys.stderr)
        make_input(src, args.minutes)
    out = args.workdir / "out.wav"
    rtq = [sys.executable, "-m", "rtq", "render", "cd-16-shibata", str(src), str(out), "--force"]
    subprocess.run(rtq, check=True)          # warms the caches (Numba's and rtq's native objects)
    rows = [("rtq render cd-16-shibata", rtq)]
    if shutil.which("sox"):
        rows += [("sox dither -f shibata", ["sox", str(src), "-b", "16", str(out), "dither", "-f", "shibata"]),
                 ("sox -b 16 (no dither, I/O floor)", ["sox", str(src), "-b", "16", str(out)])]
    if shutil.which("ffmpeg"):
        rows.append(("ffmpeg aresample shibata", ["ffmpeg", "-y", "-v", "error", "-i", str(src), "-af",
                                                  "aresample=osf=s16:dither_method=shibata", str(out)]))
    times = {name: best_time(cmd, args.repeat) for name, cmd in rows}
    ours = times[rows[0][0]]
    print(f"{args.minutes:g}-minute 24-bit 44.1 kHz stereo file, best of {args.repeat}")
    print(f"{'tool':<36}{'wall s':>8}{'rtq / tool':>12}")
    for name, seconds in times.items():
        print(f"{name:<36}{seconds:8.3f}{ours / seconds:12.2f}")
    for cores in (1, 2):
        print(f"requantize kernel, 20-tap shibata + TPDF, channels on {cores} core{'s' * (cores > 1)}: "
              f"{kernel_ns_per_sample(cores):.2f} ns per sample per channel")
    return 0


if __name__ == "__main__":
    sys.exit(main())
