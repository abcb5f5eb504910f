#!/usr/bin/env python3
"""Benchmark: listening tests (rtq.listen.Comparison) on a JACK dummy server.

Three measurements, each against JACK's ``jack_thru`` (C, no Python) and ``rtq live``
(one chain, :class:`~rtq.live.session.LiveSession`) in alternating turns of the same run
(listen, jack_thru, live, listen, ...; this VM's background noise drifts over minutes,
and short turns expose all to the same drift), xruns counted from jackd's own log as in
``tools/bench_live.py`` (whose server, log, clients and statistics this reuses):

* ABX at 64 frames: two conditions of the ``cd-16-shibata`` class (``cd-16-shibata``
  and ``cd-16-low-shibata``: 16-bit TPDF with 9-tap noise shaping) running at once on a
  looped 10 s noise item, the selection switching A/B every 0.5 s (dips included);
  targets: callback p99 at most 10 % of the period, xruns at most 1.5x jack_thru's;
* MUSHRA at 256 frames: twelve shipped presets that run at 48 kHz at once (ten systems,
  the oversampled ``converter-8bit-8x`` and ``bitcrush-4bit-oversampled`` among them,
  and the two anchors; :data:`MUSHRA`), switching every 0.5 s;
* time from starting the command ``rtq listen abx.yaml`` (on a terminal: a pty, with the
  key ``a`` typed ahead, so A plays as soon as the test is ready) to the first audio
  frame at a capture client, warm caches (target under 1 s), beside ``rtq live``'s in
  the same run.

Usage::

    python tools/bench_listen.py [--seconds 30] [--slots 3] [--starts 4]

The callback load (duration / period) comes from the engine's histogram (p50, p99) and
its exact maximum; the prepare-time cost estimate (what the 70 % refusal uses) is
printed beside it.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_live import (RATE, Log, causes, env_for, merged, pct, per_minute, rate_ratio, run_thru,  # noqa: E402
                        start_server, time_to_first_audio, wait_line)
from bench_live import run_rtq as run_live  # noqa: E402
from jack_server import JackServer, stop_clients  # noqa: E402

ABX = ["cd-16-shibata", "cd-16-low-shibata"]
MUSHRA = ["cd-16-shibata", "cd-16-low-shibata", "cd-16-f-weighted", "cd-16-gesemann", "cd-16-improved-e-weighted",
          "cd-16-modified-e-weighted", "tpdf-16", "tpdf-24", "converter-8bit-8x", "bitcrush-4bit-oversampled",
          "lowpass-3500", "lowpass-7000"]

# The rtq side, in its own process: a Comparison of PRESETS over ITEM (a file), block
# BLOCK, switching every 0.5 s; prints "running" at the first callback, "done" after
# SECONDS more, then writes the stream's statistics and the cost estimate (JSON) to OUT.
DRIVER = r"""
import json, sys, time
from rtq.chain import Chain
from rtq.listen import Comparison

presets, item, block, seconds, out = sys.argv[1].split(","), sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
with Comparison({name: Chain.from_preset(name) for name in presets}, item, blocksize=block) as comparison:
    comparison.select(presets[0])
    comparison.start()
    stream = comparison.engine.stream
    while stream.stats().callbacks == 0:
        stream.wait(0.01)
    print("running", flush=True)
    began = time.monotonic()
    k = 0
    while time.monotonic() - began < seconds:
        stream.wait(0.5)
        k += 1
        comparison.select(presets[k % len(presets)])
    st = stream.stats()
print("done", flush=True)
with open(out, "w") as f:
    json.dump({"callback_load": {"p50": st.load_p50, "p99": st.load_p99, "max": st.load_max},
               "xruns": st.xruns, "estimate": comparison.callback_cost}, f)
"""

# The ABX test the start is timed on: the two conditions of the ABX row over ITEM.
ABX_TEST = "name: bench-start\ntype: abx\ntrials: 16\nitems: [{input: item.wav}]\nconditions: {A: %s, B: %s}\n"


def run_rtq(server: JackServer, presets, item, blocksize, seconds) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "summary.json"
        child = subprocess.Popen([sys.executable, "-c", DRIVER, ",".join(presets), item, str(blocksize),
                                  str(seconds), str(out)], env=env_for(server), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        try:
            wait_line(child, "running")
            time.sleep(0.5)
            log = Log(server)
            wait_line(child, "done", seconds + 60)
            xruns = log.xruns()
            child.wait(60)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        summary = json.loads(out.read_text())
    return {"xruns": xruns, "seconds": seconds - 0.5, "summary": summary}


def time_to_first_sound(server: JackServer, item: str, starts: int) -> list[float]:
    """Seconds from starting ``rtq listen`` on a pty (``script``) with ``a`` typed ahead
    to the first audio frame, per start (after one start that warms the caches); ``q``
    ends each test 2.5 s later (status 130: interrupted, as a listener leaving)."""
    folder = Path(item).parent
    test = folder / "abx.yaml"
    test.write_text(ABX_TEST % tuple(ABX))
    listen = f"{shlex.quote(sys.executable)} -m rtq listen {shlex.quote(str(test))} --listener bench --blocksize 64"
    script = (f"export XDG_STATE_HOME={shlex.quote(str(folder / 'state'))}; "
              f"log=$(mktemp -u {shlex.quote(str(folder))}/log-XXXXXX.jsonl); "
              f"(printf a; sleep 2.5; printf q) | script -qfec \"{listen} --log $log\" /dev/null >/dev/null; "
              f"test $? -eq 130")
    return [first for _, first in time_to_first_audio(server, ABX[0], starts + 1, ["sh", "-c", script])[1:]]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each measurement (default 30)")
    parser.add_argument("--slots", type=int, default=3, help="turns alternating rtq and jack_thru (default 3)")
    parser.add_argument("--starts", type=int, default=4, help="starts timed (default 4)")
    args = parser.parse_args(argv)
    import numpy as np
    import soundfile as sf

    slots = max(args.slots, 1)
    seconds = max(args.seconds, 2.0 * slots)
    began = time.monotonic()
    rows = []
    starts, live_starts = [], []
    with tempfile.TemporaryDirectory() as tmp:
        item = str(Path(tmp) / "item.wav")   # named so in the ABX test file (ABX_TEST)
        noise = np.random.default_rng(0).uniform(-0.3, 0.3, (10 * RATE, 2))
        sf.write(item, noise, RATE, subtype="PCM_24")
        for label, presets, blocksize in (("ABX", ABX, 64), ("MUSHRA", MUSHRA, 256)):
            name = f"rtq-bench-listen-{os.getpid()}"
            server = start_server(name, blocksize)
            try:
                turns = []
                for _ in range(slots):
                    turns.append((run_rtq(server, presets, item, blocksize, seconds / slots),
                                  run_thru(server, seconds / slots, False),
                                  run_live(server, presets[0], blocksize, seconds / slots, "idle")))
                rtq, thru, live = (merged([t[k] for t in turns]) for k in range(3))
                rtq["summary"]["estimate"] = statistics.median(t[0]["summary"]["estimate"] for t in turns)
                rows.append((label, len(presets), blocksize, rtq, thru, live))
                print(f"  {label} block {blocksize}: rtq {per_minute(rtq):.1f} xruns/min, jack_thru "
                      f"{per_minute(thru):.1f}, rtq live {per_minute(live):.1f}", file=sys.stderr, flush=True)
                if blocksize == 64:
                    starts = time_to_first_sound(server, item, args.starts)
                    live_starts = [first for _, first in time_to_first_audio(server, ABX[0], args.starts)]
            finally:
                stop_clients(name)
                server.stop()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?")
    print(f"rtq listen benchmark: jackd -d dummy, {RATE} Hz, period = block size; {seconds:g} s per measurement "
          f"in {slots} turns alternating with jack_thru; {os.cpu_count()} CPUs ({cpu}); load average "
          f"{os.getloadavg()[0]:.1f}; total {time.monotonic() - began:.0f} s")
    print()
    header = (f"{'test':>6} {'conds':>5} {'block':>5} | {'estimate':>8} {'p50 load':>8} {'p99 load':>8} {'max load':>8} | "
              f"{'xruns/min':>9} {'jack_thru':>9} {'rtq live':>8} | {'/ jack_thru (95 % CI)':>21} | "
              f"{'/ rtq live (95 % CI)':>20} | causes (listen; jack_thru; rtq live)")
    print(header)
    print("-" * len(header))
    for label, count, blocksize, rtq, thru, live in rows:
        load = rtq["summary"]["callback_load"]
        ratio, lo, hi = rate_ratio(rtq, thru)
        l_ratio, l_lo, l_hi = rate_ratio(rtq, live)
        print(f"{label:>6} {count:>5} {blocksize:>5} | {pct(rtq['summary']['estimate']):>8} {pct(load['p50']):>8} "
              f"{pct(load['p99']):>8} {pct(load['max']):>8} | {per_minute(rtq):>9.1f} {per_minute(thru):>9.1f} "
              f"{per_minute(live):>8.1f} | {f'{ratio:.2f} ({lo:.2f}-{hi:.2f})':>21} | "
              f"{f'{l_ratio:.2f} ({l_lo:.2f}-{l_hi:.2f})':>20} | {causes(rtq)}; {causes(thru)}; {causes(live)}")
    print()
    print("estimate: the callback cost the comparison measured when it was built (what the 70 % refusal "
          "uses); load: callback time / period from the engine's histogram; xruns/min: xrun notifications "
          "in jackd's log; rtq live: a LiveSession of the first preset alone (noise:-20), in the same turns; "
          "causes: timer = jackd's dummy driver woke late, a client = it had not finished its cycle "
          "(running: it was still running; otherwise it had not been scheduled yet)")
    if starts:
        print()
        print(f"rtq listen to first sound (ABX, block 64, warm caches, {len(starts)} starts): median "
              f"{statistics.median(starts):.2f} s (min {min(starts):.2f}, max {max(starts):.2f}); rtq live "
              f"{ABX[0]} in the same run: median {statistics.median(live_starts):.2f} s "
              f"(ratio {statistics.median(starts) / statistics.median(live_starts):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
