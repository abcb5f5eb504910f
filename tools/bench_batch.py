#!/usr/bin/env python3
"""Benchmark: `rtq batch` against a shell loop of `rtq render` and against SoX under
`xargs -P 2`, and Dask scaling from one to two LocalCluster workers, in one run.

Makes (once, in --dir) FILES files of SECONDS s, 24-bit 44.1 kHz stereo (a tone and
noise, peaks under 0.5), then times, cache warm, each into an empty folder:

* rtq batch cd-16-shibata --jobs 2 (gain -0.1 dB, TPDF, Shibata; one thread per render)
* for f in ...; do rtq render cd-16-shibata "$f" ...; done (one process per file)
* xargs -P 2: sox IN -b 16 OUT dither -f shibata (TPDF, Shibata; no gain stage)
* rtq batch --local-cluster 1 and --local-cluster 2 (start-up of the cluster included)

For each it prints the wall time, the speed in times real time (audio / wall), the
steady rate between the first and the last output written (file times: start-up
excluded) and the CPU time of all its processes (with the cores it kept busy on
average: on a shared machine the one figure the others' load hardly changes); then
the ratios the issue targets, the CPU model, and the load average before and after
each measurement (the machine may be shared).  Also the fixed cost of a batch of one
short file, per executor, against one ``rtq render``.

Usage: ``python tools/bench_batch.py [--files 200] [--seconds 20] [--dir DIR] [--tools batch,sox,...]
[--rounds N] [--no-fixed]``: ``--tools`` and fewer ``--files`` for a quick same-run check,
``--rounds`` to pool several runs on a shared machine.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from bench_render import as_installed

RATE = 44100
PRESET = "cd-16-shibata"
TOOLS = ("batch", "sox", "cluster1", "cluster2", "loop")


def make_corpus(folder: Path, files: int, seconds: float) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    rng = np.random.default_rng(18)
    frames = int(seconds * RATE)
    t = np.arange(frames) / RATE
    for i in range(files):
        path = folder / f"take{i:03d}.wav"
        paths.append(path)
        if path.exists() and sf.info(path).frames == frames:
            continue
        x = 0.3 * np.sin(2 * np.pi * (220.0 + i) * t)[:, None] + 0.03 * rng.standard_normal((frames, 2))
        sf.write(path, x, RATE, subtype="PCM_24")
    return paths


def rtq() -> list[str]:
    return [sys.executable, "-m", "rtq"]


def cpu_model() -> str:
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def become_subreaper() -> None:
    """Orphaned descendants (a batch's fork server, which its workers' CPU time goes to)
    become this process's children, so their CPU time counts in ``children_cpu``."""
    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)       # PR_SET_CHILD_SUBREAPER


def reap_orphans() -> None:
    """Wait for every descendant left after a command (its CPU time then counts)."""
    while True:
        try:
            os.wait()
        except ChildProcessError:
            return


def children_cpu() -> float:
    """CPU seconds (user + system) of every finished descendant process (a batch's
    workers, fork server and Dask processes included: see ``become_subreaper``)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def steady_rate(out: Path) -> float | None:
    """Files per second between the first and the last output written."""
    times = sorted(p.stat().st_mtime for p in out.rglob("*.wav"))
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 2 and times[-1] > times[0] else None


def timed(name: str, cmd, out: Path, audio_s: float, files: int, shell: bool = False) -> dict:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    before = load()
    reap_orphans()        # what earlier commands left (the fixed-cost runs' fork servers) is not this one's
    start, cpu = time.perf_counter(), children_cpu()
    result = subprocess.run(cmd, shell=shell, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    reap_orphans()
    cpu = children_cpu() - cpu
    if result.returncode != 0:
        raise SystemExit(f"{name} failed: {result.stderr.strip()}")
    written = len(list(out.rglob("*.wav")))
    if written != files:
        raise SystemExit(f"{name} wrote {written} files, not {files}")
    rate = steady_rate(out)
    row = {"name": name, "wall": wall, "xrt": audio_s / wall, "steady_xrt": rate * audio_s / files if rate else None,
           "load": f"{before} -> {load()}"}
    steady = f"{row['steady_xrt']:7.1f}x" if row["steady_xrt"] else "      -"
    print(f"{name:34} {wall:8.2f} s {row['xrt']:7.1f}x real time  steady {steady}  CPU {cpu:6.2f} s "
          f"({cpu / wall:.2f} cores)   load {row['load']}", flush=True)
    shutil.rmtree(out)
    return row


def short_file(work: Path) -> Path:
    (work / "one").mkdir(exist_ok=True)
    short = work / "one" / "short.wav"
    sf.write(short, np.zeros((4410, 2)), RATE, subtype="PCM_24")
    return short


def fixed_cost(work: Path, short: Path, repeats: int = 3) -> None:
    """Wall time of a batch of one 0.1 s file per executor, and of one ``rtq render``
    (median of ``repeats``, alternating)."""
    commands = {f"rtq batch {' '.join(where)}": [*rtq(), "batch", PRESET, "--inputs", short, "--out",
                                                 work / "fixed", *where]
                for where in (["--jobs", "2"], ["--local-cluster", "1"], ["--local-cluster", "2"])}
    commands["rtq render (one process)"] = [*rtq(), "render", PRESET, short, work / "fixed.wav", "--force"]
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(repeats):
        for name, cmd in commands.items():
            shutil.rmtree(work / "fixed", ignore_errors=True)
            start = time.perf_counter()
            subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
            times[name].append(time.perf_counter() - start)
    print(f"fixed cost (a batch of one 0.1 s file; median of {repeats}, load {load()}):")
    for name, values in times.items():
        print(f"  {name:34} {sorted(values)[len(values) // 2]:6.2f} s")


def ratio(a: dict, b: dict, target: float, what: str) -> tuple[float, float | None]:
    """Prints and returns how much faster ``a`` ran than ``b``: wall and steady."""
    value = b["wall"] / a["wall"]
    steady = a["steady_xrt"] / b["steady_xrt"] if a["steady_xrt"] and b["steady_xrt"] else None
    print(f"{what:48} {value:6.2f}x (target >= {target:g}x){'' if value >= target else '  MISSED'}"
          + (f"; steady {steady:.2f}x" if steady else ""))
    return value, steady


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--dir", type=Path, help="where the corpus is made and kept (default a temporary folder)")
    parser.add_argument("--tools", type=lambda text: text.split(","), default=TOOLS,
                        help=f"which to time, comma-separated (default all: {','.join(TOOLS)}); a ratio is "
                             "printed when both its sides ran")
    parser.add_argument("--rounds", type=int, default=1,
                        help="time them all this many times, in turn, and print each round's ratios and the "
                             "medians (a shared machine's load swings between runs)")
    parser.add_argument("--no-fixed", action="store_true", help="skip the fixed-cost measurements")
    args = parser.parse_args()
    as_installed()
    become_subreaper()
    work = args.dir or Path(tempfile.mkdtemp(prefix="rtq-bench-batch-"))
    corpus = make_corpus(work / "in", args.files, args.seconds)
    audio_s = args.files * args.seconds
    print(f"CPU: {cpu_model()}, {len(os.sched_getaffinity(0))} cores; load average {load()} (1/5/15 min)")
    print(f"{args.files} files of {args.seconds:g} s, 24-bit {RATE} Hz stereo: {audio_s / 3600:.2f} h of audio")
    # warm: rtq's native cache and designs, SoX and the page cache
    subprocess.run([*rtq(), "render", PRESET, corpus[0], work / "warm.wav", "--force"], check=True)
    subprocess.run(["sox", corpus[0], "-b", "16", work / "warm.wav", "dither", "-f", "shibata"], check=True,
                   stderr=subprocess.DEVNULL)
    for path in corpus:
        path.read_bytes()

    if not args.no_fixed:
        fixed_cost(work, short_file(work))

    inputs = work / "in"
    commands = {
        "batch": ("rtq batch --jobs 2", [*rtq(), "batch", PRESET, "--inputs", inputs, "--out", work / "out",
                                         "--jobs", "2"], False),
        "sox": ("xargs -P 2 sox ... dither -f shibata",
                f"ls {inputs}/*.wav | xargs -P 2 -I{{}} sh -c "
                f"'sox -V1 \"$1\" -b 16 \"{work}/out/$(basename \"$1\")\" dither -f shibata' _ {{}}", True),
        "cluster1": ("rtq batch --local-cluster 1", [*rtq(), "batch", PRESET, "--inputs", inputs, "--out",
                                                     work / "out", "--local-cluster", "1"], False),
        "cluster2": ("rtq batch --local-cluster 2", [*rtq(), "batch", PRESET, "--inputs", inputs, "--out",
                                                     work / "out", "--local-cluster", "2"], False),
        "loop": ("shell loop of rtq render",
                 f"for f in {inputs}/*.wav; do {' '.join(rtq())} render {PRESET} \"$f\" "
                 f"\"{work}/out/$(basename \"$f\")\" || exit 1; done", True),
    }
    unknown = set(args.tools) - set(commands)
    if unknown:
        raise SystemExit(f"--tools: unknown {', '.join(sorted(unknown))}; choose from {', '.join(commands)}")
    ratios = [("batch", "sox", 2, "rtq batch --jobs 2 / xargs -P 2 sox"),
              ("batch", "loop", 10, "rtq batch --jobs 2 / shell loop of rtq render"),
              ("cluster2", "cluster1", 1.8, "--local-cluster 2 / --local-cluster 1")]
    found: dict[str, list] = {}
    for round_ in range(args.rounds):
        if args.rounds > 1:
            print(f"round {round_ + 1} of {args.rounds}:")
        rows = {key: timed(name, cmd, work / "out", audio_s, args.files, shell=shell)
                for key, (name, cmd, shell) in commands.items() if key in args.tools}
        print("ratios (same run, wall time):")
        for a, b, target, what in ratios:
            if a in rows and b in rows:
                found.setdefault(what, []).append(ratio(rows[a], rows[b], target, what))
    if args.rounds > 1:
        print(f"medians over {args.rounds} rounds (wall; steady):")
        for what, values in found.items():
            walls = sorted(v[0] for v in values)
            steadies = sorted(v[1] for v in values if v[1])
            print(f"{what:48} {walls[len(walls) // 2]:6.2f}x"
                  + (f"; steady {steadies[len(steadies) // 2]:.2f}x" if steadies else ""))
    if args.dir is None:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
