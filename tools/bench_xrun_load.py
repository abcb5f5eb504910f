#!/usr/bin/env python3
"""Benchmark: how a JACK client's xrun rate grows with the time it spends per cycle.

``tools/bench_live.py`` compares rtq with ``jack_thru`` (no work) and with one
``jack_cpu`` load matched to rtq's.  This one measures the whole curve on the same
server in one run: ``jack_thru`` and ``jack_cpu -c P`` for several P (JACK's C client
that busy-waits P % of every period, in whole frames of its frame clock), with rtq
playing the preset in the same alternating turns (rtq, jack_thru, jack_cpu at each
load, rtq, ...).  On a machine whose vCPUs are paused now and then for longer than a
period, a client still working when the pause comes is caught late: its xrun rate
rises with its busy time per cycle, whoever wrote its code.  The curve tells how
much of rtq's excess over ``jack_thru`` any client doing rtq's work per cycle would
show on this machine.

Each row: the client, its busy time per cycle (jack_cpu: ``k - 1/2`` frames for
``k = int(blocksize P / 100)``; rtq: its p50 callback time), xruns per minute, the
ratio to ``jack_thru``'s with its exact 95 % interval, and the late cycles jackd's log
blames on the client (how many of those it was still running).

Usage::

    python tools/bench_xrun_load.py [--blocksize 64] [--percents 2,4,5,7,10]
                                    [--seconds 120] [--slots 4] [--busy idle,thread,process]

``--busy thread`` runs a spinning Python thread in rtq's process (as the issue's busy
run) and a spinning Python process beside each C client; ``--busy process`` a spinning
process beside every client, rtq included (as ``bench_live.py --busy``).  The 0 us CPU latency request that
``rtq live`` holds on a sound card is held through every turn (as bench_live's ``driver:all`` variant).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_live import (RATE, cpu_busy_frames, merged, per_minute, rate_ratio, run_cpu, run_rtq,  # noqa: E402
                        run_thru, start_server)
from jack_server import stop_clients  # noqa: E402

from rtq.live.wakeup import WakeupLatency  # noqa: E402


def late_cycles(result: dict, prefix: str) -> str:
    x = result["xruns"]
    names = [n for n in x["late_clients"] if n.startswith(prefix)]
    late = sum(x["late_clients"][n] for n in names)
    running = sum(x["running_clients"][n] for n in names)
    return f"{late} ({running} running)"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocksize", type=int, default=64)
    parser.add_argument("--percents", default="2,4,5,7,10", help="jack_cpu -c values (default 2,4,5,7,10)")
    parser.add_argument("--preset", default="dsd64-1bit")
    parser.add_argument("--seconds", type=float, default=120.0, help="per client, over all turns (default 120)")
    parser.add_argument("--slots", type=int, default=4, help="turns (default 4)")
    parser.add_argument("--busy", default="idle,thread", help="idle, thread, process (default idle,thread)")
    args = parser.parse_args(argv)
    percents = [int(p) for p in args.percents.split(",")]
    modes = args.busy.split(",")
    if not set(modes) <= {"idle", "thread", "process"}:
        parser.error("--busy takes idle, thread and process")
    slots = max(args.slots, 1)
    turn = args.seconds / slots
    name = f"rtq-xrun-load-{os.getpid()}"
    began = time.monotonic()
    tables = []
    with WakeupLatency(0) as held:
        if not held.held:
            sys.exit(f"bench_xrun_load: CPU latency QoS {held.status}")
        server = start_server(name, args.blocksize)
        try:
            for busy in modes:
                loaded = busy != "idle"
                turns = []
                for k in range(slots):
                    row = {"rtq": run_rtq(server, args.preset, args.blocksize, turn, busy),
                           "jack_thru": run_thru(server, turn, loaded)}
                    for p in percents:
                        row[p] = run_cpu(server, p, turn, loaded)
                    turns.append(row)
                    print(f"  {busy}: turn {k + 1} of {slots} done", file=sys.stderr, flush=True)
                tables.append((busy, {key: merged([t[key] for t in turns]) for key in turns[0]}))
        finally:
            stop_clients(name)
            server.stop()

    period_us = 1e6 * args.blocksize / RATE
    print(f"xruns against busy time per cycle: jackd -d dummy, {RATE} Hz, {args.blocksize} frames "
          f"({period_us:.0f} us), {'real-time' if server.realtime else 'NOT real-time'}; {args.seconds:g} s per "
          f"client in {slots} alternating turns; CPU latency request held; total {time.monotonic() - began:.0f} s")
    for busy, merged_rows in tables:
        thru = merged_rows["jack_thru"]
        print()
        print(f"{busy}:")
        header = f"{'client':>18} | {'busy/cycle':>10} | {'xruns/min':>9} | {'/ jack_thru (95 % CI)':>21} | late cycles blamed on it"
        print(header)
        print("-" * len(header))
        rtq = merged_rows["rtq"]
        rtq_us = rtq["summary"]["callback_load"]["p50"] * period_us
        entries = [("jack_thru", 0.0, thru, "jack_thru"), (f"rtq {args.preset}", rtq_us, rtq, "rtq")]
        entries += [(f"jack_cpu -c {p}", cpu_busy_frames(p, args.blocksize) * 1e6 / RATE, merged_rows[p], "jack-cpu")
                    for p in percents]
        for label, us, result, prefix in sorted(entries, key=lambda e: e[1]):
            ratio, lo, hi = rate_ratio(result, thru)
            print(f"{label:>18} | {us:>7.0f} us | {per_minute(result):>9.1f} | "
                  f"{f'{ratio:.2f} ({lo:.2f}-{hi:.2f})':>21} | {late_cycles(result, prefix)}")
        load = rtq["summary"]["callback_load"]
        print(f"rtq callback load: p50 {100 * load['p50']:.1f} %, p99 {100 * load['p99']:.1f} % (highest turn), "
              f"max {100 * load['max']:.1f} % of the period")
    print()
    print("busy/cycle: jack_cpu's mean busy-wait per cycle; rtq's p50 callback time.  xruns/min as in "
          "bench_live (jackd's log: timer late + clients not finished).  process: a spinning Python "
          "process beside each client; thread: a spinning Python thread in rtq's process (a spinning process beside "
          "the C clients).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
