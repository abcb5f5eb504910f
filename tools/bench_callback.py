#!/usr/bin/env python3
"""Benchmark: one preset's block cost in process, back to back and paced like a callback.

The live callback runs one block per period and the CPU idles in between; on a virtual
machine that idle time costs the next block its caches.  This times ``Chain.process``
on one block (prepared as the live engine prepares it: meter taps on, no meter
reading), in rounds that alternate four ways of running it, so all four see the same
drift of a noisy machine:

* back to back, and paced (each block starts one period after the previous one, the
  thread sleeping in between, as the audio thread does);
* each without and with the 0 us CPU latency request that ``rtq live`` holds on a
  sound card (:mod:`rtq.live.wakeup`; needs root).

It prints p10 / p50 / p99 in microseconds and as a share of the period.  No audio
server is involved: this is the preset's own cost, to set beside the callback load
``tools/bench_live.py`` measures on JACK.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from rtq.chain import Chain  # noqa: E402
from rtq.live.wakeup import WakeupLatency  # noqa: E402
from rtq.program import META_CAPTURE  # noqa: E402


def time_blocks(chain: Chain, blocks: np.ndarray, period: float | None) -> np.ndarray:
    """Microseconds per block; ``period``: start each block that long after the last."""
    times = np.empty(len(blocks))
    due = time.monotonic()
    for k, block in enumerate(blocks):
        x = block.copy()
        if period is not None:
            due += period
            time.sleep(max(due - time.monotonic(), 0.0))
        t0 = time.perf_counter_ns()
        chain.process(x)
        times[k] = (time.perf_counter_ns() - t0) / 1e3
    return times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="dsd64-1bit")
    parser.add_argument("--blocksize", type=int, default=64)
    parser.add_argument("--samplerate", type=float, default=48000.0)
    parser.add_argument("--blocks", type=int, default=6000, help="timed blocks per way (default 6000)")
    parser.add_argument("--rounds", type=int, default=6, help="rounds the blocks are split into (default 6)")
    args = parser.parse_args(argv)
    period = args.blocksize / args.samplerate
    chain = Chain.from_preset(args.preset)
    chain.prepare(args.samplerate, 2, args.blocksize, taps=True)
    chain.program.meta[META_CAPTURE] = 0
    per_round = max(args.blocks // args.rounds, 1)
    blocks = np.random.default_rng(0).uniform(-0.1, 0.1, (per_round, args.blocksize, 2)).astype(np.float32)
    time_blocks(chain, blocks[:100], None)  # compiled and warm
    ways = [(paced, qos) for qos in (False, True) for paced in (False, True)]
    times = {way: [] for way in ways}
    status = "not requested"
    for _ in range(args.rounds):
        for paced, qos in ways:
            with WakeupLatency(0) if qos else contextlib.nullcontext() as held:
                if held is not None:
                    status = held.status
                    if not held.held:
                        continue
                times[paced, qos].append(time_blocks(chain, blocks, period if paced else None))
    print(f"{args.preset}, {args.blocksize}-frame stereo blocks at {args.samplerate:g} Hz "
          f"(period {period * 1e6:.0f} us), {per_round * args.rounds} blocks per way in {args.rounds} "
          f"alternating rounds; CPU latency request: {status}")
    print(f"{'way':<38} {'p10':>14} {'p50':>14} {'p99':>14}")
    for (paced, qos), parts in times.items():
        if not parts:
            continue
        t = np.concatenate(parts)
        way = f"{'paced, one block per period' if paced else 'back to back'}, QoS {'on' if qos else 'off'}"
        cells = [f"{v:6.1f} us {100 * v / (period * 1e6):4.1f}%" for v in np.percentile(t, [10, 50, 99])]
        print(f"{way:<38} " + " ".join(f"{c:>14}" for c in cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
