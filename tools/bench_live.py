#!/usr/bin/env python3
"""Benchmark: the live engine on a JACK dummy server, against JACK's own C clients.

For each block size (32, 64 and 256 frames; the server's period is the block size) it
starts a private ``jackd -d dummy`` at 48 kHz (real-time scheduling if the system
allows it), then alternates, each for ``--seconds`` in all, in ``--slots`` turns
(rtq, jack_thru, rtq, jack_thru, ...: this VM's background noise drifts over minutes,
and short turns expose all clients to the same drift), for each variant of rtq asked
for (``--variants``, ``KIND:QOS`` each):

* ``command``: the ``rtq live`` command, as a user runs it (``rtq live PRESET --input
  noise:-20 --blocksize N --stats-json F``, stdout not a terminal: no screen);
* ``screen``: the same command in a terminal (a tmux pane 160 x 50), with its screen;
* ``driver``: a :class:`~rtq.live.session.LiveSession` in a small driver script (what
  this benchmark measured before; ``--busy thread`` adds a spinning Python thread to
  it);

and the CPU latency request (``/dev/cpu_dma_latency`` = 0 us) as ``QOS`` says:
``own`` (default): what a user gets: ``rtq live`` holds it during its own turn (it
does on a sound card), the C clients run without it; ``all``: this benchmark holds it
through every client's turn (a tuned system; what it did before); ``off``: nobody.
Against each variant run, in turns of their own:

* ``jack_thru``: JACK's example client copying capture to playback (C, no Python);
* ``jack_cpu -c P`` (with ``--peers thru,cpu``): JACK's example client that busy-waits
  P % of every period (C), P matched to rtq's p50 callback load: a client doing as
  much per cycle as rtq, so the VM's pauses land in it as often.

``--busy process`` adds a spinning Python process beside every client.  Xruns are
counted on the server side, from jackd's own log, for all alike, from 1 s after rtq's
ports appear (or the C client's) to ``--seconds / --slots`` later: no monitoring
client joins the graph, so none can cause them.  An xrun is a cycle the server
reports to its clients: its timer woke late ("driver late") or a client had not
finished ("Process error"; the log names the late client).  For rtq it also reports
the callback load (duration / period: p99 from the engine's histogram, and the
maximum, over the whole run) and PortAudio's xrun flags.

The ratio of two xrun rates comes with a 95 % confidence interval: xruns are rare
events (tens per measurement), so the counts are Poisson and the interval is the exact
one for a ratio of Poisson rates (Clopper-Pearson on rtq's share of all xruns).  Over
several turns, rtq's p50 load is the median of the turns' and its p99 and maximum the
highest (a conservative pooling: the turns' histograms are not kept).  With both
``command`` and ``screen`` variants, a row compares the two (screen on over off).

Switching (``--switches N``, at 64 frames or the first block size): a session plays
the preset and makes N switches through the session API (the calls the screen's keys
make), on the first of ``--switch-presets``, in cycles of dither, shaping, bits,
bypass, solo, preset (to the second) and back: before each switch a steady window of 0.1 s, then the
switch (prepare, hand over, crossfade, retire the old chain) and 20 ms.  It reports
the callback's maximum in each switch window against 2x the steady p99 (of the larger
of the two chains, from the steady windows' histograms), and the xruns (jackd's log,
PortAudio's flags) in the switch windows against those in the steady windows.

The silent built-in output (``--null-seconds S``): ``rtq live`` with its screen in a
terminal, no audio server, for each of ``--null-presets``: the underflows in S seconds
(0 is the target), and beside it ``cyclictest`` (rt-tests): a C thread at the same
priority and period, whose wake-ups more than a period late are the machine's own.

Then it times ``rtq live`` from spawn to the first audio frame at a capture client
(warm cache; the first of the repeats also warms it), at block size 64.

The preset is the heaviest shipped one that keeps up: ``dsd64-1bit`` (1-bit
sigma-delta at 64x) if its callback p99 in a short probe stays under half a
32-frame period, else ``converter-8bit-8x``.

Usage::

    python tools/bench_live.py [--seconds 30] [--slots 1] [--blocksizes 32,64,256]
                               [--preset NAME] [--starts 4] [--variants command:own,screen:own]
                               [--busy idle,process] [--peers thru,cpu] [--switches 100]
                               [--switch-presets dsd64-1bit,cd-16-shibata]
                               [--null-seconds 600]

``--seconds 120 --slots 4`` gives the figures asked for in the issue.  jack_cpu's P is
set once per block size, from rtq's first turn, and kept for all turns of that block
size.  ``--variants command:own,driver:all`` compares what a user runs with what this
benchmark measured before.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
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

# The switching row: a LiveSession making SWITCHES switches through the session API, each
# after a steady window; writes per-window callback maxima, histograms and xruns (JSON).
SWITCH_DRIVER = r"""
import json, os, re, sys, time
import numpy as np
from rtq.live import callback as cb
from rtq.live.session import LiveSession
from rtq.live.sources import Source

preset, other, blocksize, switches, out, log_path = (sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]),
                                                     sys.argv[5], sys.argv[6])
STEADY_S, AFTER_S = 0.1, 0.02
CYCLE = ["dither", "shaping", "bits", "bypass", "solo", "preset", "preset"]


def jack_xruns(offset):
    time.sleep(0.05)   # jackd writes its log from a thread of its own
    with open(log_path, errors="replace") as f:
        f.seek(offset)
        text = f.read()
    return len(re.findall(r"JackTimedDriver::Process XRun", text)) + len(re.findall(r"Process error", text))


session = LiveSession(preset, samplerate=48000, blocksize=blocksize, source=Source.noise(-20))
session.start()
ctl, hist = session.stream.ctl, session.stream._hist
while ctl[cb.CALLBACKS] == 0:
    time.sleep(0.01)
time.sleep(1.0)


def flags():
    return int(sum(ctl[w] for w in (cb.INPUT_UNDERFLOWS, cb.INPUT_OVERFLOWS, cb.OUTPUT_UNDERFLOWS, cb.OUTPUT_OVERFLOWS)))


def act(kind):
    if kind == "preset":
        session.switch_preset(other if session.spec.name == preset else preset)
    elif kind == "bits":
        session.change_bits(-1 if session.quantizer().bits > 8 else 1)
    else:
        {"dither": session.cycle_dither, "shaping": session.cycle_shaping, "bypass": session.toggle_bypass,
         "solo": session.toggle_solo}[kind]()


steady, switched = {}, []
for k in range(switches):
    kind, name = CYCLE[k % len(CYCLE)], session.spec.name
    s = steady.setdefault(name, {"hist": np.zeros_like(hist), "max": [], "flags": 0, "jack": 0, "seconds": 0.0})
    before, offset, f0 = hist.copy(), os.path.getsize(log_path), flags()
    ctl[cb.MAX_LOAD_PPM] = 0
    time.sleep(STEADY_S)
    s["hist"] += hist - before
    s["max"].append(int(ctl[cb.MAX_LOAD_PPM]) / 1e6)
    s["flags"] += flags() - f0
    s["seconds"] += STEADY_S
    s["jack"] += jack_xruns(offset)
    offset, f0, t0 = os.path.getsize(log_path), flags(), time.monotonic()
    ctl[cb.MAX_LOAD_PPM] = 0
    act(kind)
    time.sleep(AFTER_S)
    switched.append({"kind": kind, "from": name, "to": session.spec.name, "max": int(ctl[cb.MAX_LOAD_PPM]) / 1e6,
                     "flags": flags() - f0, "seconds": time.monotonic() - t0, "jack": jack_xruns(offset)})
summary = session.summary()
session.close()
with open(out, "w") as f:
    json.dump({"steady": {n: {"p50": cb._percentile(s["hist"], 0.5), "p99": cb._percentile(s["hist"], 0.99),
                              "max": s["max"], "flags": s["flags"], "jack": s["jack"], "seconds": s["seconds"]}
                          for n, s in steady.items()},
               "switches": switched, "summary": summary}, f)
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


RTQ_PORTS = r"^rtq(-[0-9]+)?:"


def live_command(preset: str, blocksize: int, seconds: float, stats: Path, qos: str, screen: bool) -> list[str]:
    """``rtq live`` as a user types it, for ``seconds`` (plus a start-up margin)."""
    return [sys.executable, "-m", "rtq", "live", preset, "--input", "noise:-20", "--blocksize", str(blocksize),
            "--duration", f"{seconds:g}", "--stats-json", str(stats),
            "--cpu-latency-qos", "off" if qos == "off" else "auto"] + ([] if screen else ["--no-display"])


class Terminal:
    """A command in a tmux pane of its own server (160 x 50): a terminal, so ``rtq
    live`` draws its screen."""

    def __init__(self, command: list[str], env: dict):
        self.socket = f"rtq-bench-{os.getpid()}-{time.monotonic_ns()}"
        keep = {k: env[k] for k in ("PYTHONPATH", "JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER") if k in env}
        line = " ".join(shlex.quote(a) for a in ["env", *(f"{k}={v}" for k, v in keep.items()), *command])
        subprocess.run(["tmux", "-L", self.socket, "new-session", "-d", "-x", "160", "-y", "50", line],
                       check=True, env=env)

    def running(self) -> bool:
        return subprocess.run(["tmux", "-L", self.socket, "has-session"], capture_output=True).returncode == 0

    def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.running():
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("rtq live in tmux did not end")
            time.sleep(0.2)

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


def wait_rtq_ports(env: dict, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listing = subprocess.run(["jack_lsp"], env=env, capture_output=True, text=True).stdout
        if any(re.match(RTQ_PORTS, line) for line in listing.splitlines()):
            return
        time.sleep(0.05)
    raise RuntimeError("no rtq JACK port appeared")


def run_command(server: JackServer, preset: str, blocksize: int, seconds: float, busy: str = "idle",
                qos: str = "own", screen: bool = False) -> dict:
    """The ``rtq live`` command (``screen``: in a terminal, drawing its screen), measured
    from 1 s after its ports appear for ``seconds - 1``; ``busy``: "idle" or "process"."""
    env = env_for(server)
    spinner = subprocess.Popen([sys.executable, "-c", SPINNER]) if busy == "process" else None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "summary.json"
        command = live_command(preset, blocksize, seconds + 2.0, out, qos, screen)
        child = Terminal(command, env) if screen else subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            wait_rtq_ports(env)
            time.sleep(1.0)  # the graph settles after the connections
            log = Log(server)
            time.sleep(seconds - 1.0)
            xruns = log.xruns()
            if child.wait(60) not in (None, 0):
                raise RuntimeError(f"rtq live failed: {child.stderr.read()}")
        finally:
            if screen:
                child.kill()
            elif child.poll() is None:
                child.kill()
                child.wait()
            if spinner is not None:
                spinner.kill()
                spinner.wait()
        summary = json.loads(out.read_text())
    return {"xruns": xruns, "seconds": seconds - 1.0, "summary": summary}


def run_switches(server: JackServer, preset: str, other: str, blocksize: int, switches: int) -> dict:
    """The switching row (:data:`SWITCH_DRIVER`): its JSON."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "switches.json"
        subprocess.run([sys.executable, "-c", SWITCH_DRIVER, preset, other, str(blocksize), str(switches), str(out),
                        str(server.log_path)], env=env_for(server), check=True, timeout=60 + 2 * switches,
                       stdout=subprocess.DEVNULL)
        return json.loads(out.read_text())


def print_switches(result: dict, blocksize: int) -> None:
    steady = result["steady"]
    print(f"Switches at {blocksize} frames ({len(result['switches'])}; steady windows 0.1 s before each, "
          f"switch windows from the call to 20 ms after the old chain is retired):")
    for name, s in steady.items():
        print(f"  steady {name}: callback p50 {pct(s['p50'])}, p99 {pct(s['p99'])}, window maxima median "
              f"{pct(statistics.median(s['max']))}, highest {pct(max(s['max']))}; xruns {s['jack']} "
              f"(PortAudio flags {s['flags']}) in {s['seconds']:.1f} s")
    print(f"  {'switch':>8} {'count':>5} | {'max median':>10} {'highest':>8} | {'> 2x p99':>8} | "
          f"{'xruns':>5} {'PA flags':>8} {'seconds':>7}")
    kinds: dict[str, list] = {}
    for r in result["switches"]:
        kinds.setdefault(r["kind"], []).append(r)
    over_all = 0
    for kind, rs in kinds.items():
        over = sum(r["max"] > 2 * max(steady[r["from"]]["p99"], steady[r["to"]]["p99"]) for r in rs)
        over_all += over
        print(f"  {kind:>8} {len(rs):>5} | {pct(statistics.median(r['max'] for r in rs)):>10} "
              f"{pct(max(r['max'] for r in rs)):>8} | {over:>8} | {sum(r['jack'] for r in rs):>5} "
              f"{sum(r['flags'] for r in rs):>8} {sum(r['seconds'] for r in rs):>7.1f}")
    jack = sum(r["jack"] for r in result["switches"])
    seconds = sum(r["seconds"] for r in result["switches"])
    steady_jack = sum(s["jack"] for s in steady.values())
    steady_s = sum(s["seconds"] for s in steady.values())
    print(f"  all: {over_all} of {len(result['switches'])} switches above 2x the steady p99; xruns in switch windows "
          f"{jack} in {seconds:.1f} s ({60 * jack / seconds:.1f}/min), in steady windows {steady_jack} in "
          f"{steady_s:.1f} s ({60 * steady_jack / steady_s:.1f}/min)")


NULL_PERIOD_US = 256 / RATE * 1e6   # the silent output's block (256 frames) at 48 kHz


def run_null(preset: str, seconds: float) -> tuple[dict, dict | None]:
    """``rtq live`` with its screen in a terminal and no audio server: the silent built-in
    output's exit summary; beside it, the same seconds, ``cyclictest`` (rt-tests, if
    installed): a C thread at the clock's priority waking every period, whose wake-ups
    more than a period late (what the silent output counts as underflows) are the
    machine's own."""
    from rtq.live.nullstream import CLOCK_PRIORITY

    env = dict(os.environ, JACK_NO_START_SERVER="1", JACK_DEFAULT_SERVER=f"rtq-bench-none-{os.getpid()}")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    peer = None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "summary.json"
        terminal = Terminal(live_command(preset, 0, seconds, out, "own", True), env)
        if shutil.which("cyclictest"):
            limit = int(3 * NULL_PERIOD_US)
            peer = subprocess.Popen(["cyclictest", "-q", "-t1", "-p", str(CLOCK_PRIORITY), "-i",
                                     str(round(NULL_PERIOD_US)), "-h", str(limit), "-D", f"{seconds:.0f}"],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            terminal.wait(seconds + 120)
            text = peer.communicate(timeout=seconds + 60)[0] if peer is not None else None
        finally:
            terminal.kill()
            if peer is not None and peer.poll() is None:
                peer.kill()
        return json.loads(out.read_text()), (cyclictest_late(text, NULL_PERIOD_US) if text else None)


def cyclictest_late(text: str, period_us: float) -> dict:
    """From ``cyclictest -h``'s histogram: wake-ups, those more than ``period_us`` late,
    and the maximum latency (us)."""
    late = total = 0
    maximum = None
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[0].isdigit():
            us, count = int(fields[0]), int(fields[1])
            total += count
            late += count if us > period_us else 0
        elif line.startswith("# Histogram Overflows:"):
            overflows = int(fields[3])
            late += overflows
            total += overflows
        elif line.startswith("# Max Latencies:"):
            maximum = int(fields[3])
    return {"wakeups": total, "late": late, "max_us": maximum}


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


KINDS, QOS_MODES = ("command", "screen", "driver"), ("own", "all", "off")


def parse_variants(text: str) -> list[tuple[str, str]]:
    variants = []
    for item in text.split(","):
        kind, _, qos = item.partition(":")
        qos = qos or "own"
        if kind not in KINDS or qos not in QOS_MODES:
            raise ValueError(item)
        variants.append((kind, qos))
    return variants


def run_variant(server: JackServer, kind: str, qos: str, preset: str, blocksize: int, seconds: float,
                busy: str) -> dict:
    if kind == "driver":
        return run_rtq(server, preset, blocksize, seconds, busy, qos != "off")
    return run_command(server, preset, blocksize, seconds, busy, qos, screen=kind == "screen")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each measurement (default 30)")
    parser.add_argument("--slots", type=int, default=1,
                        help="turns each measurement is split into, alternating rtq and its peers (default 1)")
    parser.add_argument("--blocksizes", default="32,64,256",
                        help="comma-separated (default 32,64,256; empty: only the --null-seconds rows)")
    parser.add_argument("--preset", help=f"skip the probe and use this preset (default: {HEAVY} if it keeps up)")
    parser.add_argument("--starts", type=int, default=4, help="rtq live starts timed (default 4)")
    parser.add_argument("--variants", default="command:own,screen:own",
                        help="comma-separated KIND:QOS, KIND command (rtq live), screen (rtq live in a "
                             "terminal, drawing its screen) or driver (a LiveSession in a script), QOS own "
                             "(rtq live's own CPU latency request, in its turn only), all (held through every "
                             "client's turn) or off; default command:own,screen:own")
    parser.add_argument("--busy", default="idle",
                        help="comma-separated load beside rtq: idle, process (a spinning Python process beside "
                             "every client), thread (a spinning Python thread in the driver's process; driver "
                             "only); default idle")
    parser.add_argument("--peers", default="thru", help="comma-separated: thru (jack_thru), cpu (jack_cpu "
                                                        "matched to rtq's p50 load); default thru")
    parser.add_argument("--switches", type=int, default=100, help="switches in the switching row (0: none)")
    parser.add_argument("--switch-presets", default=f"{HEAVY},cd-16-shibata",
                        help=f"the switching row's preset and the one it switches to and back (default "
                             f"{HEAVY},cd-16-shibata)")
    parser.add_argument("--null-seconds", type=float, default=0.0,
                        help="seconds of rtq live with its screen on the silent built-in output, per "
                             "--null-presets (default 0: none)")
    parser.add_argument("--null-presets", default="tpdf-16,dsd64-1bit")
    args = parser.parse_args(argv)
    busy_modes = args.busy.split(",")
    if not set(busy_modes) <= {"idle", "thread", "process"}:
        parser.error("--busy takes idle, thread and process")
    try:
        variants = parse_variants(args.variants)
    except ValueError as err:
        parser.error(f"--variants: {err} is not KIND:QOS ({'/'.join(KINDS)}:{'/'.join(QOS_MODES)})")
    if "thread" in busy_modes and any(kind != "driver" for kind, _ in variants):
        parser.error("--busy thread needs driver variants only (a thread cannot join the rtq live command)")
    peers = args.peers.split(",")
    if not set(peers) <= {"thru", "cpu"} or "thru" not in peers:
        parser.error("--peers takes thru and cpu (thru always)")
    if any(kind == "screen" for kind, _ in variants) or args.null_seconds:
        if not shutil.which("tmux"):
            sys.exit("bench_live: tmux not found (the screen rows run rtq live in a tmux pane)")
    blocksizes = [int(b) for b in args.blocksizes.split(",") if b]  # none: only the --null-seconds rows
    for client in ["jack_thru"] + (["jack_cpu"] if "cpu" in peers else []):
        if not shutil.which(client):
            sys.exit(f"bench_live: {client} not found (jackd2's example clients)")
    slots = max(args.slots, 1)
    seconds = max(args.seconds, 3.0 * slots)
    name = f"rtq-bench-{os.getpid()}"
    rows, starts, probe, preset, percent, switching = [], [], None, args.preset, {}, None
    switch_block = 64 if 64 in blocksizes or not blocksizes else blocksizes[0]
    began = time.monotonic()
    load_before = os.getloadavg()
    for blocksize in blocksizes:
        server = start_server(name, blocksize)
        try:
            if preset is None:
                preset, probe = choose_preset(server, blocksize)
                probe["blocksize"] = blocksize
            for busy in busy_modes:
                turns = {v: [] for v in variants}
                for _ in range(slots):
                    for kind, qos in variants:
                        with WakeupLatency(0) if qos == "all" else contextlib.nullcontext() as held:
                            if held is not None and not held.held:
                                sys.exit(f"bench_live: CPU latency QoS {held.status}; use :own or :off")
                            rtq = run_variant(server, kind, qos, preset, blocksize, seconds / slots, busy)
                            if percent.get(blocksize) is None:
                                percent[blocksize] = matched_percent(rtq["summary"]["callback_load"]["p50"],
                                                                     blocksize)
                            loaded = busy != "idle"
                            thru = run_thru(server, seconds / slots, loaded)
                            cpu = (run_cpu(server, percent[blocksize], seconds / slots, loaded)
                                   if "cpu" in peers else None)
                            turns[(kind, qos)].append((rtq, thru, cpu))
                for kind, qos in variants:
                    rtq, thru = (merged([turn[k] for turn in turns[(kind, qos)]]) for k in range(2))
                    cpu = merged([turn[2] for turn in turns[(kind, qos)]]) if "cpu" in peers else None
                    rows.append((blocksize, server.realtime, busy, kind, qos, rtq, thru, (percent[blocksize], cpu)))
                    print(f"  block {blocksize:>3} {busy} {kind}:{qos}: rtq {per_minute(rtq):.1f} xruns/min, "
                          f"jack_thru {per_minute(thru):.1f}"
                          + (f", jack_cpu -c {percent[blocksize]} {per_minute(cpu):.1f}" if cpu else ""),
                          file=sys.stderr, flush=True)
            if blocksize == switch_block and args.switches:
                switching = run_switches(server, *args.switch_presets.split(",")[:2], blocksize, args.switches)
            if blocksize == 64 or (blocksize == blocksizes[-1] and not starts):
                starts = time_to_first_audio(server, preset, args.starts)
        finally:
            stop_clients(name)
            server.stop()
    nulls = [(p, run_null(p, args.null_seconds)) for p in args.null_presets.split(",")] if args.null_seconds else []

    cpu_model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                     "unknown CPU")
    if not rows:
        print(f"rtq live benchmark: {cpu_model}, {os.cpu_count()} CPUs; load average {load_before[0]:.1f} before, "
              f"{os.getloadavg()[0]:.1f} after; total {time.monotonic() - began:.0f} s")
    else:
        print(f"rtq live benchmark: jackd -d dummy, {RATE} Hz, period = block size, "
              f"{'real-time' if all(r[1] for r in rows) else 'NOT real-time'} scheduling; "
              f"{seconds:g} s per measurement in {slots} turn{'s' if slots > 1 else ''}; {cpu_model}, "
              f"{os.cpu_count()} CPUs; load average {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after; "
              f"total {time.monotonic() - began:.0f} s")
        if probe is not None:
            load = probe["summary"]["callback_load"]
            print(f"preset: {preset}  (probe of {HEAVY} at block {probe['blocksize']}: callback p99 {pct(load['p99'])}, "
                  f"max {pct(load['max'])} of the period; {FALLBACK} is used if p99 >= 50 %)")
        else:
            print(f"preset: {preset}")
        print()
        header = (f"{'block':>5} {'period':>8} {'process':>7} {'rtq':>14} | {'rtq xruns/min':>13} {'p50 load':>8} "
                  f"{'p99 load':>8} {'max load':>8} {'PA flags':>8} | {'jack_thru xruns/min':>19} | "
                  f"{'ratio (95 % CI)':>19} | "
                  + (f"{'jack_cpu':>8} {'xruns/min':>9} | {'rtq/jack_cpu (CI)':>19} | " if "cpu" in peers else "")
                  + "causes in jackd's log (rtq; jack_thru" + ("; jack_cpu)" if "cpu" in peers else ")"))
        print(header)
        print("-" * len(header))
        for blocksize, _rt, busy, kind, qos, rtq, thru, (cpu_percent, cpu) in rows:
            s = rtq["summary"]
            load = s["callback_load"]
            ratio, lo, hi = rate_ratio(rtq, thru)
            line = (f"{blocksize:>5} {1e3 * blocksize / RATE:>6.2f}ms {busy:>7} {f'{kind}:{qos}':>14} | "
                    f"{per_minute(rtq):>13.1f} {pct(load['p50']):>8} {pct(load['p99']):>8} {pct(load['max']):>8} "
                    f"{s['xruns']:>8} | {per_minute(thru):>19.1f} | {f'{ratio:.2f} ({lo:.2f}-{hi:.2f})':>19} | ")
            if cpu is not None:
                c_ratio, c_lo, c_hi = rate_ratio(rtq, cpu)
                line += (f"{f'-c {cpu_percent}':>8} {per_minute(cpu):>9.1f} | "
                         f"{f'{c_ratio:.2f} ({c_lo:.2f}-{c_hi:.2f})':>19} | ")
            print(line + f"{causes(rtq)}; {causes(thru)}" + (f"; {causes(cpu)}" if cpu is not None else ""))
        screen_rows = {(r[0], r[2]): {} for r in rows}
        for blocksize, _rt, busy, kind, qos, rtq, *_ in rows:
            if kind in ("command", "screen"):
                screen_rows[(blocksize, busy)].setdefault(qos, {})[kind] = rtq
        for (blocksize, busy), by_qos in screen_rows.items():
            for qos, pair in by_qos.items():
                if len(pair) == 2:
                    ratio, lo, hi = rate_ratio(pair["screen"], pair["command"])
                    print(f"  block {blocksize} {busy} QoS {qos}: screen on / off: xruns {per_minute(pair['screen']):.1f} "
                          f"/ {per_minute(pair['command']):.1f} a minute, ratio {ratio:.2f} (95 % CI {lo:.2f}-{hi:.2f})")
        print()
        print("xruns/min: xrun notifications jackd sent its clients during the measurement (one per cycle "
              "its timer woke late, one per cycle a client had not finished: one hiccup can count twice); "
              "causes: timer = the server's dummy driver woke late, a client name = that "
              "client had not finished its cycle (running: it was still running; otherwise it had not started); "
              "load: callback time / period from rtq's histogram (whole run); PA flags: "
              "blocks PortAudio flagged (input overflow + output underflow, whole run); ratio: rtq's xrun rate "
              "over jack_thru's, with its exact 95 % interval (Poisson counts); rtq: command = rtq live, screen = "
              "rtq live in a terminal drawing its screen, driver = a LiveSession in a script; QoS own: rtq live "
              "holds its 0 us CPU latency request in its own turns, the C clients have none; all: held through "
              "every client's turn; off: none.  process: a spinning Python process beside every client; thread: "
              "a spinning Python thread in the driver's process.")
    if switching is not None:
        print()
        print_switches(switching, switch_block)
    for null_preset, (summary, peer) in nulls:
        load = summary["callback_load"]
        print(f"silent built-in output, rtq live {null_preset} with its screen: {summary['output_underflows']} "
              f"underflows in {summary['seconds']:.0f} s (block {summary['blocksize']}, callback p99 "
              f"{pct(load['p99'])}, max {pct(load['max'])}; audio thread: {summary.get('audio_thread')})")
        if peer is not None:
            print(f"  beside it, cyclictest at the same priority and period: {peer['late']} of {peer['wakeups']} "
                  f"wake-ups more than a period late, the latest {peer['max_us']} us")
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
