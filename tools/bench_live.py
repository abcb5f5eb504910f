#!/usr/bin/env python3
"""Benchmark: the live engine on a JACK dummy server, against JACK's own C clients.

For each block size (32, 64 and 256 frames; the server's period is the block size) it
starts a private ``jackd -d dummy`` at 48 kHz (real-time scheduling if the system
allows it), then alternates, each for ``--seconds`` in all, in ``--slots`` turns
(rtq, jack_thru, jack_cpu, rtq, ...: this VM's background noise drifts over minutes,
and short turns expose all clients to the same drift):

* rtq: a :class:`~rtq.live.session.LiveSession` (the real engine and stream, what
  ``rtq live`` runs) playing ``noise:-20`` through the preset, in a child process;
* ``jack_thru``: JACK's example client copying capture to playback (C, no Python);
* ``jack_cpu -c P``: JACK's example client that busy-waits P % of every period (C), P
  matched to rtq's p50 callback load: a client doing as much per cycle as rtq, so the
  VM's pauses land in it as often;

once with the process otherwise idle and once with a busy Python thread in rtq's
process (standing in for the display; for the C clients, a busy Python process
instead, the same CPU pressure; ``--busy process`` gives rtq the same, to tell the two
apart).  Xruns are counted on the server side, from
jackd's own log, for all alike: no monitoring client joins the graph, so none can
cause them.  An xrun is a cycle the server reports to its clients: its timer woke
late ("driver late") or a client had not finished ("Process error"; the log names
the late client).  For rtq it also reports the callback load (duration / period:
p99 from the engine's histogram, and the maximum) and PortAudio's xrun flags.

The ratio of the two xrun rates comes with a 95 % confidence interval: xruns are rare
events (tens per measurement), so the counts are Poisson and the interval is the exact
one for a ratio of Poisson rates (Clopper-Pearson on rtq's share of all xruns).  Over
several turns, rtq's p50 load is the median of the turns' and its p99 and maximum the
highest (a conservative pooling: the turns' histograms are not kept).

Then it times ``rtq live`` from spawn to the first audio frame at a capture client
(warm cache; the first of the repeats also warms it), at block size 64.

The preset is the heaviest shipped one that keeps up: ``dsd64-1bit`` (1-bit
sigma-delta at 64x) if its callback p99 in a short probe stays under half a
32-frame period, else ``converter-8bit-8x``.

Usage::

    python tools/bench_live.py [--seconds 30] [--slots 1] [--blocksizes 32,64,256]
                               [--preset NAME] [--starts 4] [--cpu-latency-qos on|off|both]
                               [--busy idle,thread,process]

``--seconds 120 --slots 4`` gives the figures asked for in the issue (about 40 minutes
for the three block sizes, three clients).  jack_cpu's P is set once per block size,
from rtq's first turn, and kept for all turns of that block size.
``--cpu-latency-qos`` (default on) holds the 0 us CPU latency request that ``rtq live``
holds on a sound card (:mod:`rtq.live.wakeup`) through every client's turn, as a tuned
system would; ``both`` also measures without it, in turns alternating with the ones
with it.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from jack_server import JackServer, _reachable, stop_clients  # noqa: E402

from rtq.live.wakeup import WakeupLatency  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
RATE = 48000
HEAVY, FALLBACK = "dsd64-1bit", "converter-8bit-8x"

# The rtq side, in its own process: a LiveSession, optionally with a busy Python thread.
# Prints "running" at the first callback, "done" after SECONDS more, then writes the
# session summary (JSON) to OUT.
DRIVER = r"""
import json, sys, threading, time
from rtq.live.session import LiveSession
from rtq.live.sources import Source

preset, blocksize, seconds, busy, out, qos = (sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4] == "1",
                                              sys.argv[5], sys.argv[6] == "1")
session = LiveSession(preset, samplerate=48000, blocksize=blocksize, source=Source.noise(-20),
                      cpu_latency_qos=qos)
halt = threading.Event()


def spin():  # pure Python: holds the GIL but for the interpreter's switch interval
    n = 0
    while not halt.is_set():
        n += 1


if busy:
    threading.Thread(target=spin, daemon=True).start()
state = {"t0": None}


def tick(s):
    now = time.monotonic()
    if state["t0"] is None and s.stream.stats().callbacks > 0:
        state["t0"] = now
        print("running", flush=True)
    elif state["t0"] is not None and now - state["t0"] >= seconds:
        raise KeyboardInterrupt


try:
    session.run(seconds + 60, tick=tick, interval=0.05)
except KeyboardInterrupt:
    pass
print("done", flush=True)
halt.set()
with open(out, "w") as f:
    json.dump(session.summary(), f)
"""

SPINNER = "while True: pass"


# ---------------------------------------------------------------------------
def start_server(name: str, period: int) -> JackServer:
    """``jackd -d dummy`` at 48 kHz with ``period`` frames, real-time if allowed."""
    if not shutil.which("jackd"):
        sys.exit("bench_live: jackd not found (run tools/setup.sh)")
    for realtime in (True, False):
        fd, log_path = tempfile.mkstemp(prefix=f"jackd-{name}-", suffix=".log")
        cmd = ["jackd", "-n", name, "-R" if realtime else "-r", "-d", "dummy", "-r", str(RATE),
               "-p", str(period), "-C", "2", "-P", "2"]
        process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=fd, stderr=subprocess.STDOUT,
                                   start_new_session=True, env=dict(os.environ, JACK_NO_START_SERVER="1"))
        os.close(fd)
        server = JackServer(name, process, realtime, log_path)
        if process.poll() is None and _reachable(name, 10) and process.poll() is None:
            if not realtime or "Cannot use real-time scheduling" not in Path(log_path).read_text():
                return server
        server._terminate()
    sys.exit(f"bench_live: jackd -n {name} -p {period} did not start")


class Log:
    """jackd's log from a given point on: xrun cycles and the clients they name."""

    def __init__(self, server: JackServer):
        self.path = Path(server.log_path)
        self.offset = self.path.stat().st_size

    def xruns(self) -> dict:
        with open(self.path, errors="replace") as f:
            f.seek(self.offset)
            text = f.read()
        # A client is "not finished" (still running, or not started: state Triggered) or,
        # caught up in the meantime, "finished after current callback" (it was running).
        late = re.findall(r"JackEngine::XRun: client = (.+?) was not finished, state = (\w+)", text)
        late += [(name, "Running") for name in
                 re.findall(r"JackEngine::XRun: client (?:= )?(.+?) finished after current callback", text)]
        names = sorted({name for name, _ in late})
        return {
            "driver_late": len(re.findall(r"JackTimedDriver::Process XRun", text)),
            "process_error": len(re.findall(r"Process error", text)),
            "late_clients": {name: sum(n == name for n, _ in late) for name in names},
            "running_clients": {name: sum(n == name and st == "Running" for n, st in late) for name in names},
        }


def env_for(server: JackServer) -> dict:
    env = server.env
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return env


def wait_line(process: subprocess.Popen, word: str, timeout: float = 120.0) -> None:
    lines = []

    def read():
        lines.append(process.stdout.readline())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    if not lines or lines[0].strip() != word:
        process.kill()
        raise RuntimeError(f"expected {word!r}, got {lines[:1]}: {process.stderr.read() if process.stderr else ''}")


def wait_ports(env: dict, prefix: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listing = subprocess.run(["jack_lsp"], env=env, capture_output=True, text=True).stdout
        if any(line.startswith(prefix) for line in listing.splitlines()):
            return
        time.sleep(0.05)
    raise RuntimeError(f"no JACK port {prefix}* appeared")


def run_rtq(server: JackServer, preset: str, blocksize: int, seconds: float, busy: str, qos: bool = True) -> dict:
    """``busy``: "idle", "thread" (a spinning thread in rtq's process) or "process" (a
    spinning process beside it, as for the C clients)."""
    spinner = subprocess.Popen([sys.executable, "-c", SPINNER]) if busy == "process" else None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "summary.json"
        child = subprocess.Popen([sys.executable, "-c", DRIVER, preset, str(blocksize), str(seconds),
                                  "1" if busy == "thread" else "0", str(out), "1" if qos else "0"],
                                 env=env_for(server), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_line(child, "running")
            time.sleep(0.5)  # let the graph settle after the connections
            log = Log(server)
            wait_line(child, "done", seconds + 60)
            xruns = log.xruns()
            child.wait(60)
        finally:
            for p in (child, spinner):
                if p is not None and p.poll() is None:
                    p.kill()
                    p.wait()
        summary = json.loads(out.read_text())
    return {"xruns": xruns, "seconds": seconds - 0.5, "summary": summary}


def run_thru(server: JackServer, seconds: float, busy: bool) -> dict:
    return run_c_client(server, ["jack_thru"], "jack_thru:", seconds, busy)


def cpu_busy_frames(percent: int, blocksize: int) -> float:
    """``jack_cpu -c percent``'s mean busy time per cycle, in frames.  jack_cpu spins until
    JACK's frame clock has advanced ``int(blocksize * percent / 100)`` frames from the
    (truncated) frame it started at: k frames busy-wait k - 1/2 frames on average."""
    return max(blocksize * percent // 100 - 0.5, 0.0)


def matched_percent(load: float, blocksize: int) -> int:
    """``jack_cpu -c`` percentage whose busy time per cycle is closest to ``load`` (a
    share of the period)."""
    return min(range(1, 100), key=lambda p: abs(cpu_busy_frames(p, blocksize) - load * blocksize))


def run_cpu(server: JackServer, percent: int, seconds: float, busy: bool) -> dict:
    return run_c_client(server, ["jack_cpu", "-c", str(percent)], "jack-cpu:", seconds, busy)


def run_c_client(server: JackServer, command: list[str], prefix: str, seconds: float, busy: bool) -> dict:
    env = env_for(server)
    client = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    spinner = None
    try:
        wait_ports(env, prefix)
        if busy:
            spinner = subprocess.Popen([sys.executable, "-c", SPINNER])
        time.sleep(0.5)
        log = Log(server)
        time.sleep(seconds - 0.5)
        xruns = log.xruns()
    finally:
        for p in (spinner, client):
            if p is not None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
    return {"xruns": xruns, "seconds": seconds - 0.5}


def merged(parts: list[dict]) -> dict:
    """The turns of one measurement as one: counts and seconds summed; for rtq, the
    median p50 load and the highest p99 and maximum (see the module docstring)."""
    def per_client(key):
        total: dict[str, int] = {}
        for part in parts:
            for name, n in part["xruns"][key].items():
                total[name] = total.get(name, 0) + n
        return total

    result = {"xruns": {"driver_late": sum(p["xruns"]["driver_late"] for p in parts),
                        "process_error": sum(p["xruns"]["process_error"] for p in parts),
                        "late_clients": per_client("late_clients"),
                        "running_clients": per_client("running_clients")},
              "seconds": sum(p["seconds"] for p in parts)}
    if "summary" in parts[0]:
        loads = [p["summary"]["callback_load"] for p in parts]

        def pooled(key, pick):
            values = [load[key] for load in loads if load[key] is not None]
            return pick(values) if values else None

        result["summary"] = {"callback_load": {"p50": pooled("p50", statistics.median),
                                               "p99": pooled("p99", max), "max": pooled("max", max)},
                             "xruns": sum(p["summary"]["xruns"] for p in parts)}
    return result


def xrun_count(result: dict) -> int:
    x = result["xruns"]
    return x["driver_late"] + x["process_error"]


def rate_ratio(a: dict, b: dict) -> tuple[float, float, float]:
    """``a``'s xrun rate over ``b``'s, with its exact 95 % interval (Poisson counts:
    given the total, ``a``'s count is binomial; Clopper-Pearson on its share)."""
    from scipy.stats import beta

    na, nb = xrun_count(a), xrun_count(b)
    exposure = b["seconds"] / a["seconds"]
    n = na + nb
    if n == 0:
        return float("nan"), 0.0, float("inf")
    lo = beta.ppf(0.025, na, nb + 1) if na else 0.0
    hi = beta.ppf(0.975, na + 1, nb) if nb else 1.0

    def odds(share):
        return share / (1.0 - share) * exposure if share < 1.0 else float("inf")

    return (na / nb * exposure if nb else float("inf")), odds(lo), odds(hi)


def per_minute(result: dict) -> float:
    return 60.0 * xrun_count(result) / result["seconds"]


def causes(result: dict) -> str:
    """What jackd's log blames: its own timer waking late, or the named clients (how many
    of those cycles the client was still running; in the others it had not started)."""
    x = result["xruns"]
    parts = [f"timer {x['driver_late']}"] if x["driver_late"] else []
    parts += [f"{name} {n} ({x['running_clients'][name]} running)" for name, n in x["late_clients"].items()]
    return ", ".join(parts) or "-"


# ---------------------------------------------------------------------------
def time_to_first_audio(server: JackServer, preset: str, starts: int, command: list[str] | None = None
                        ) -> list[tuple[float, float]]:
    """(seconds to the ports' registration, seconds to the first audio frame) per start of
    ``rtq live`` (or of ``command``, which plays through rtq's JACK client), measured by a
    capture client connected as soon as the ports appear."""
    import jack
    import numpy as np

    client = jack.Client("bench-first-audio", no_start_server=True, servername=server.name)
    sinks = [client.inports.register(f"in_{c}") for c in range(2)]
    state = {"first": None}
    appeared = threading.Event()

    @client.set_process_callback
    def process(n):
        if state["first"] is None and any(np.any(p.get_array()) for p in sinks):
            state["first"] = time.monotonic()

    client.set_port_registration_callback(lambda port, register: appeared.set(), only_available=False)
    client.activate()
    results = []
    try:
        for _ in range(starts):
            before = {p.name for p in client.get_ports(is_output=True, is_audio=True)}
            state["first"] = None
            appeared.clear()
            spawned = time.monotonic()
            child = subprocess.Popen(
                command or [sys.executable, "-m", "rtq", "live", preset, "--input", "noise:-20", "--blocksize", "64",
                            "--duration", "1.5"], env=env_for(server), stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE, text=True)
            ports = []
            while len(ports) < 2 and child.poll() is None:
                appeared.wait(0.005)
                appeared.clear()
                try:
                    ports = sorted(p.name for p in client.get_ports(r"^rtq(-[0-9]+)?:", is_output=True, is_audio=True)
                                   if p.name not in before)
                except jack.JackError:
                    continue
            registered = time.monotonic()
            for source, sink in zip(ports, sinks):
                client.connect(source, sink)
            child.wait(60)
            if child.returncode != 0 or state["first"] is None:
                raise RuntimeError(f"{(command or ['rtq live'])[0]} failed: {child.stderr.read()}")
            results.append((registered - spawned, state["first"] - spawned))
    finally:
        client.deactivate()
        client.close()
    return results


def choose_preset(server: JackServer, blocksize: int) -> tuple[str, dict]:
    probe = run_rtq(server, HEAVY, blocksize, 5.0, busy="idle")
    load = probe["summary"]["callback_load"]
    return (HEAVY if load["p99"] is not None and load["p99"] < 0.5 else FALLBACK), probe


def pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each measurement (default 30)")
    parser.add_argument("--slots", type=int, default=1,
                        help="turns each measurement is split into, alternating rtq, jack_thru and jack_cpu "
                             "(default 1)")
    parser.add_argument("--blocksizes", default="32,64,256", help="comma-separated (default 32,64,256)")
    parser.add_argument("--preset", help=f"skip the probe and use this preset (default: {HEAVY} if it keeps up)")
    parser.add_argument("--starts", type=int, default=4, help="rtq live starts timed (default 4)")
    parser.add_argument("--cpu-latency-qos", choices=("on", "off", "both"), default="on",
                        help="hold a 0 us CPU latency request (what rtq live does on a sound card) during "
                             "every client's turns, not at all, or both ways in alternating turns (default on)")
    parser.add_argument("--busy", default="idle,thread",
                        help="comma-separated load beside rtq: idle, thread (a spinning Python thread in its "
                             "process, as the issue asks), process (a spinning Python process beside it, as "
                             "for the C clients); default idle,thread")
    args = parser.parse_args(argv)
    busy_modes = args.busy.split(",")
    if not set(busy_modes) <= {"idle", "thread", "process"}:
        parser.error("--busy takes idle, thread and process")
    modes = {"on": (True,), "off": (False,), "both": (True, False)}[args.cpu_latency_qos]
    blocksizes = [int(b) for b in args.blocksizes.split(",")]
    for client in ("jack_thru", "jack_cpu"):
        if not shutil.which(client):
            sys.exit(f"bench_live: {client} not found (jackd2's example clients)")
    slots = max(args.slots, 1)
    seconds = max(args.seconds, 2.0 * slots)
    name = f"rtq-bench-{os.getpid()}"
    rows, starts, probe, preset, percent = [], [], None, args.preset, {}
    began = time.monotonic()
    for blocksize in blocksizes:
        server = start_server(name, blocksize)
        try:
            if preset is None:
                preset, probe = choose_preset(server, blocksize)
                probe["blocksize"] = blocksize
            for busy in busy_modes:
                turns = {qos: [] for qos in modes}
                for _ in range(slots):
                    for qos in modes:
                        with WakeupLatency(0) if qos else contextlib.nullcontext() as held:
                            if held is not None and not held.held:
                                sys.exit(f"bench_live: CPU latency QoS {held.status}; use --cpu-latency-qos off")
                            rtq = run_rtq(server, preset, blocksize, seconds / slots, busy, qos)
                            if percent.get(blocksize) is None:
                                percent[blocksize] = matched_percent(rtq["summary"]["callback_load"]["p50"],
                                                                     blocksize)
                            loaded = busy != "idle"
                            turns[qos].append((rtq, run_thru(server, seconds / slots, loaded),
                                               run_cpu(server, percent[blocksize], seconds / slots, loaded)))
                for qos in modes:
                    rtq, thru, cpu = (merged([turn[k] for turn in turns[qos]]) for k in range(3))
                    rows.append((blocksize, server.realtime, busy, qos, rtq, thru, (percent[blocksize], cpu)))
                    print(f"  block {blocksize:>3} {busy} QoS {'on' if qos else 'off'}: "
                          f"rtq {per_minute(rtq):.1f} xruns/min, jack_thru {per_minute(thru):.1f}, "
                          f"jack_cpu -c {percent[blocksize]} {per_minute(cpu):.1f}", file=sys.stderr, flush=True)
            if blocksize == 64 or (blocksize == blocksizes[-1] and not starts):
                starts = time_to_first_audio(server, preset, args.starts)
        finally:
            stop_clients(name)
            server.stop()

    print(f"rtq live benchmark: jackd -d dummy, {RATE} Hz, period = block size, "
          f"{'real-time' if all(r[1] for r in rows) else 'NOT real-time'} scheduling; "
          f"{seconds:g} s per measurement in {slots} turn{'s' if slots > 1 else ''}, {os.cpu_count()} CPUs; "
          f"total {time.monotonic() - began:.0f} s")
    if probe is not None:
        load = probe["summary"]["callback_load"]
        print(f"preset: {preset}  (probe of {HEAVY} at block {probe['blocksize']}: callback p99 {pct(load['p99'])}, "
              f"max {pct(load['max'])} of the period; {FALLBACK} is used if p99 >= 50 %)")
    else:
        print(f"preset: {preset}")
    print()
    header = (f"{'block':>5} {'period':>8} {'process':>7} {'QoS':>3} | {'rtq xruns/min':>13} {'p50 load':>8} {'p99 load':>8} "
              f"{'max load':>8} {'PA flags':>8} | {'jack_thru xruns/min':>19} | {'ratio (95 % CI)':>19} | "
              f"{'jack_cpu':>8} {'xruns/min':>9} | {'rtq/jack_cpu (CI)':>19} | "
              f"causes in jackd's log (rtq; jack_thru; jack_cpu)")
    print(header)
    print("-" * len(header))
    for blocksize, _rt, busy, qos, rtq, thru, (cpu_percent, cpu) in rows:
        s = rtq["summary"]
        load = s["callback_load"]
        late = f"{causes(rtq)}; {causes(thru)}; {causes(cpu)}"
        ratio, lo, hi = rate_ratio(rtq, thru)
        c_ratio, c_lo, c_hi = rate_ratio(rtq, cpu)
        print(f"{blocksize:>5} {1e3 * blocksize / RATE:>6.2f}ms {busy:>7} {'on' if qos else 'off':>3} | "
              f"{per_minute(rtq):>13.1f} {pct(load['p50']):>8} {pct(load['p99']):>8} {pct(load['max']):>8} "
              f"{s['xruns']:>8} | {per_minute(thru):>19.1f} | {f'{ratio:.2f} ({lo:.2f}-{hi:.2f})':>19} | "
              f"{f'-c {cpu_percent}':>8} {per_minute(cpu):>9.1f} | {f'{c_ratio:.2f} ({c_lo:.2f}-{c_hi:.2f})':>19} | "
              f"{late}")
    print()
    print("xruns/min: xrun notifications jackd sent its clients during the measurement (one per cycle "
          "its timer woke late, one per cycle a client had not finished: one hiccup can count twice); "
          "causes: timer = the server's dummy driver woke late, a client name = that "
          "client had not finished its cycle (running: it was still running; otherwise it had not started); load: callback time / period from rtq's histogram; PA flags: "
          "blocks PortAudio flagged (input overflow + output underflow, whole run); ratio: rtq's xrun rate "
          "over jack_thru's, with its exact 95 % interval (Poisson counts); thread: a pure-Python "
          "thread spinning in rtq's process, process: a spinning Python process beside it (for the C "
          "clients, a spinning Python process in both); QoS: a 0 us "
          "CPU latency request (/dev/cpu_dma_latency) held during all clients' turns, as rtq live holds it "
          "on a sound card; jack_cpu -c P: JACK's C client that busy-waits P % of each period (its frame "
          "clock's whole frames), P matched to rtq's p50 load in the first turn.")
    if starts:
        regs = [r for r, _ in starts]
        firsts = [f for _, f in starts]
        print()
        print(f"rtq live start to first audio (block 64, {preset}, {len(starts)} starts, warm cache): "
              f"median {statistics.median(firsts):.2f} s (min {min(firsts):.2f}, max {max(firsts):.2f}); "
              f"ports registered after {statistics.median(regs):.2f} s")
        print("  each start: " + ", ".join(f"{f:.2f} s" for f in firsts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
