#!/usr/bin/env python3
"""Benchmark: `rtq render` against SoX and FFmpeg on the same file, in one run.

Makes (once) a 10-minute 24-bit 44.1 kHz stereo file of noise-like music stand-in, then
times whole processes (start-up included), every tool once per round, round after round
(so a busy spell of a shared machine hits them all alike), and reports each one's median
and best wall time over --repeat rounds:

* rtq render cd-16-shibata (gain -0.1 dB, TPDF, 20-tap Shibata) against
  sox IN -b 16 OUT dither -f shibata and ffmpeg -af aresample=osf=s16:dither_method=shibata;
* the do-nothing renders against SoX without dither (``sox -D``: the file I/O floor):
  rtq undithered 16-bit (requantize: {bits: 16, dither: none, shaping: none}) against
  sox -D -b 16, and rtq gain 0 dB to PCM_24 (gain: {db: 0} then requantize: {bits: 24,
  dither: none, shaping: none}, which leaves a 24-bit input as it is) against sox -D;
* the cost of ``--report``: rtq render --report against rtq render, cd-16-shibata on
  the first minute and dsd64-1bit on the first 40 s of the same music.

Then the requantize kernel's cost per sample per channel in-process, on one core (a
stereo pair in one thread, as ``rtq render`` runs a CD chain) and with a channel per
core, on a block that stays in cache.  Prints the machine's CPU model and load.
Usage: ``python tools/bench_render.py [--minutes 10] [--repeat 5]``.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
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


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def as_installed() -> None:
    """Run rtq as a user's install does: with its modules' bytecode (pip writes it at
    install time), even where the environment says not to write any
    (PYTHONDONTWRITEBYTECODE, set on the project's machines): otherwise every process
    compiles rtq's modules from source, ~45 ms of CPU no user pays."""
    import compileall

    import rtq
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    compileall.compile_dir(Path(rtq.__file__).parent, quiet=1)


def wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def rounds(rows: dict[str, list[str]], repeat: int) -> dict[str, list[float]]:
    """Every command once per round, ``repeat`` rounds; wall seconds per command."""
    times: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(repeat):
        for name, cmd in rows.items():
            times[name].append(wall(cmd))
    return times


def kernel_ns_per_sample(cores: int) -> float:
    """CPU time of the requantizer (20-tap Shibata, TPDF) over a cache-resident stereo
    block, per sample per channel: the two channels in one thread (``cores`` 1: as a
    pair, as ``rtq render`` runs them) or one channel per thread (2)."""
    from rtq.chain import Chain
    from rtq.stages import Requantize

    x = np.random.default_rng(0).standard_normal((32768, 2)) * 0.1
    chain = Chain([Requantize(16, "tpdf", shaping="shibata")])
    groups = [chain.prepare(44100, 2, 8192)] if cores == 1 else \
        [Chain([Requantize(16, "tpdf", shaping="shibata")]).prepare(44100, 1, 8192, first_channel=c) for c in (0, 1)]
    best = float("inf")
    for _ in range(7):
        busy = 0.0
        for c, group in enumerate(groups):
            y = np.ascontiguousarray(x if cores == 1 else x[:, c:c + 1])
            start = time.thread_time()
            for _ in range(32):
                group.process(y)
            busy = max(busy, time.thread_time() - start)    # the channels' threads run side by side
        best = min(best, busy)
    return best / (32 * x.size / (1 if cores == 1 else 2)) * 1e9


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "rtq-bench")
    args = parser.parse_args()
    as_installed()
    args.workdir.mkdir(parents=True, exist_ok=True)
    src = args.workdir / f"in-{args.minutes:g}min-24bit-44k1.wav"
    if not src.exists():
        print(f"making {src} ...", file=sys.stderr)
        make_input(src, args.minutes)
    cuts = {}
    for name, seconds in (("1min", 60), ("40s", 40)):
        cuts[name] = args.workdir / f"cut-{name}.wav"
        if not cuts[name].exists():
            data, rate = sf.read(src, frames=int(seconds * 44100))
            sf.write(cuts[name], data, rate, subtype="PCM_24")
    undithered = args.workdir / "undithered-16.yaml"
    undithered.write_text("chain:\n  - requantize: {bits: 16, dither: none, shaping: none}\n")
    unity = args.workdir / "gain-0.yaml"
    unity.write_text("chain:\n  - gain: {db: 0}\n  - requantize: {bits: 24, dither: none, shaping: none}\n")
    out = args.workdir / "out.wav"
    report = args.workdir / "report.json"
    rtq = [sys.executable, "-m", "rtq", "render"]
    rows = {"rtq render cd-16-shibata": [*rtq, "cd-16-shibata", str(src), str(out), "--force"],
            "rtq undithered 16-bit": [*rtq, str(undithered), str(src), str(out), "--force"],
            "rtq gain 0 dB to PCM_24": [*rtq, str(unity), str(src), str(out), "--force"]}
    if shutil.which("sox"):
        rows.update({"sox dither -f shibata": ["sox", str(src), "-b", "16", str(out), "dither", "-f", "shibata"],
                     "sox -D -b 16 (I/O floor)": ["sox", "-D", str(src), "-b", "16", str(out)],
                     "sox -D (24-bit copy)": ["sox", "-D", str(src), str(out)]})
    if shutil.which("ffmpeg"):
        rows["ffmpeg aresample shibata"] = ["ffmpeg", "-y", "-v", "error", "-i", str(src), "-af",
                                            "aresample=osf=s16:dither_method=shibata", str(out)]
    for preset, cut in (("cd-16-shibata", "1min"), ("dsd64-1bit", "40s")):
        plain = [*rtq, preset, str(cuts[cut]), str(out), "--force"]
        rows[f"rtq render {preset} ({cut})"] = plain
        rows[f"rtq render {preset} ({cut}) --report"] = [*plain, "--report", str(report)]
    for cmd in rows.values():
        if cmd[:len(rtq)] == rtq:
            subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)   # warms the caches (Numba's, rtq's objects)
    load_before = os.getloadavg()
    times = rounds(rows, args.repeat)
    load_after = os.getloadavg()
    median = {name: statistics.median(t) for name, t in times.items()}
    print(f"CPU: {cpu_model()}; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    print(f"{args.minutes:g}-minute 24-bit 44.1 kHz stereo file; whole processes, {args.repeat} rounds")
    print(f"{'command':<44}{'median s':>10}{'best s':>9}")
    for name in rows:
        print(f"{name:<44}{median[name]:10.3f}{min(times[name]):9.3f}")

    def ratio(a: str, b: str, goal: str) -> None:
        if a in median and b in median:
            print(f"{a + ' / ' + b:<80}{median[a] / median[b]:6.2f}  (goal {goal})")

    print("ratios of medians:")
    ratio("rtq render cd-16-shibata", "sox dither -f shibata", "<= 0.33")
    ratio("rtq render cd-16-shibata", "ffmpeg aresample shibata", "<= 0.5")
    ratio("rtq undithered 16-bit", "sox -D -b 16 (I/O floor)", "<= 1")
    ratio("rtq gain 0 dB to PCM_24", "sox -D (24-bit copy)", "<= 1")
    for preset, cut in (("cd-16-shibata", "1min"), ("dsd64-1bit", "40s")):
        ratio(f"rtq render {preset} ({cut}) --report", f"rtq render {preset} ({cut})", "<= 1.5")
    for cores in (1, 2):
        how = "a stereo pair on one core" if cores == 1 else "a channel per core"
        print(f"requantize kernel, 20-tap Shibata + TPDF, {how}: {kernel_ns_per_sample(cores):.2f} ns per sample "
              "per channel (goal <= 3.5 on one core)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
