#!/usr/bin/env python3
"""Benchmark: the live engine with its meter on a web page, against the terminal meter,
no meter, and JACK's ``jack_thru`` (issue 21's row of the live benchmark).

On a private ``jackd -d dummy`` at 48 kHz and 64 frames (tools/bench_live.py's server
and xrun accounting: jackd's own log, no monitoring client in the graph), it alternates
turns of, in one run:

* ``none``: a LiveSession playing ``noise:-20`` through the preset, no meter;
* ``screen``: the same with the terminal screen (rtq.ui.screen's LiveDisplay drawing
  through rich's Live into a terminal-less console: every frame built and rendered, as
  ``rtq live`` does on a terminal);
* ``web``: the same with the meter page (``rtq live --web``'s code: LiveSite, WebServer,
  updates at 20 Hz) open in a headless Chromium;
* ``socket``: the same server, its updates read by a plain WebSocket client in the
  benchmark's process instead of a browser (the page on another device: what the server
  costs without Chromium drawing 20 frames a second on the same two cores);
* ``flood``: as ``web``, while a WebSocket client sends 1000 control messages a
  second (``set_bits`` 15, 16, 15, ...: each one run prepares a new chain);
* ``jack_thru``: JACK's C client copying capture to playback.

Per turn: jackd's xruns, rtq's callback load (p50, p99, max of the period) and
PortAudio's flags, the CPU time of rtq's main thread (the meter) and of the web server's
thread, the updates sent and the ones the page received (its rate), and the browser's CPU.
Xrun ratios against ``none`` come with exact 95 % intervals (Poisson counts).

Usage::

    python tools/bench_web.py [--seconds 120] [--slots 4] [--preset cd-16-shibata]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_live import (Log, env_for, merged, pct, per_minute, rate_ratio, run_thru,  # noqa: E402
                        start_server, wait_line)
from bench_batch import cpu_model  # noqa: E402
from jack_server import stop_clients  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BLOCK = 64
MODES = ("none", "screen", "web", "socket", "flood", "jack_thru")
SERVED = ("web", "socket", "flood")

# rtq's side, in its own process.  Prints the page's address (web modes), "running" at
# the first callback, "done" after SECONDS more; then writes the summary and CPU figures.
DRIVER = r"""
import io, json, os, sys, threading, time
from rtq.live.session import LiveSession
from rtq.live.sources import Source

preset, seconds, mode, out = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
session = LiveSession(preset, samplerate=48000, blocksize=64, source=Source.noise(-20), cpu_latency_qos=True)
state = {"t0": None, "cpu0": None, "ticks": 0}
server = None


def thread_cpu(tid):
    fields = open(f"/proc/self/task/{tid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def clock(s):
    now = time.monotonic()
    if state["t0"] is None and s.stream.stats().callbacks > 0:
        state["t0"] = now
        state["cpu0"] = (time.thread_time(), thread_cpu(server.native_id) if server else 0.0, time.process_time())
        state["ticks"] = 0
        print("running", flush=True)
    elif state["t0"] is not None and now - state["t0"] >= seconds:
        raise KeyboardInterrupt
    state["ticks"] += 1       # updates formed (no meter: clock ticks, not shown)


try:
    if mode == "none":
        session.run(seconds + 60, tick=clock, interval=0.05)
    elif mode == "screen":
        from rich.console import Console
        from rich.live import Live
        from rtq.ui.screen import KEY_POLL_S, LiveDisplay
        console = Console(file=io.StringIO(), width=120, height=50, force_terminal=True, color_system="truecolor")
        display = LiveDisplay(session, console=console)
        with Live(console=console, screen=False, auto_refresh=False, redirect_stdout=False, redirect_stderr=False) as live:
            display.live = live

            def tick(s):
                clock(s)
                state["ticks"] -= 1                      # frames are counted, not key polls
                frames = display.frames
                display.tick(s)
                state["ticks"] += display.frames - frames
                console.file.seek(0)
                console.file.truncate()
            session.run(seconds + 60, tick=tick, interval=KEY_POLL_S)
    else:
        from rtq.ui.jsonlines import run_records
        from rtq.web.live import REFRESH_S, LiveSite
        from rtq.web.server import WebServer
        site = LiveSite(session)
        server = WebServer(site).start()
        print(server.url, flush=True)
        run_records(session, seconds + 60, interval=REFRESH_S, sinks=[lambda record, view: clock(session), site.sink])
except KeyboardInterrupt:
    pass
end = (time.thread_time(), thread_cpu(server.native_id) if server else 0.0, time.process_time())
elapsed = time.monotonic() - state["t0"]
print("done", flush=True)
main, web, process = (b - a for a, b in zip(state["cpu0"], end))
with open(out, "w") as f:
    json.dump({"summary": session.summary(), "elapsed": elapsed, "ticks": state["ticks"],
               "cpu": {"main": main, "server": web, "process": process}}, f)
if server:
    server.stop()
"""


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` and its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
        times[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += times.get(p, 0.0)
        todo += children.get(p, [])
    return total


@contextlib.contextmanager
def page_socket(url: str):
    """The page's WebSocket (``url``: the address rtq printed), as a page opens it; the
    end of the turn (its server stopping) ends it quietly."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    base = url.split("?")[0].rstrip("/")
    token = url.split("token=")[1]
    try:
        with connect(base.replace("http://", "ws://") + f"/ws?token={token}", origin=base, max_size=2 ** 24) as ws:
            yield ws
    except ConnectionClosed:
        pass


def flood(url: str, stop: threading.Event, counts: dict) -> None:
    """1000 control messages a second over the page's WebSocket, replies read as they come."""
    started, k = time.monotonic(), 0
    with page_socket(url) as ws:
        while not stop.is_set():
            ws.send(json.dumps({"action": "set_bits", "value": 15 + k % 2, "id": k}))
            k += 1
            while True:
                try:
                    message = json.loads(ws.recv(timeout=0))
                except TimeoutError:
                    break
                if message["topic"] == "reply":
                    counts["ok" if message["ok"] else "refused"] += 1
            time.sleep(max(0.0, started + k / 1000 - time.monotonic()))
    counts["sent"] = k
    counts["seconds"] = time.monotonic() - started


def read_updates(url: str, stop: threading.Event, page: dict) -> None:
    """The page's updates read as a device elsewhere would, not drawn: their rate."""
    started, updates = time.monotonic(), 0
    with page_socket(url) as ws:
        while not stop.is_set():
            try:
                if json.loads(ws.recv(timeout=0.2))["topic"] == "meter":
                    updates += 1
            except TimeoutError:
                pass
    page["rate"] = updates / (time.monotonic() - started)


def run_rtq(server, preset: str, seconds: float, mode: str, browser) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        child = subprocess.Popen([sys.executable, "-c", DRIVER, preset, str(seconds), mode, str(out)],
                                 env=env_for(server), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        stop, counts, client = threading.Event(), {"ok": 0, "refused": 0, "sent": 0}, None
        page = {}
        try:
            if mode in SERVED:
                url = child.stdout.readline().strip()
                if mode == "socket":
                    client = threading.Thread(target=read_updates, args=(url, stop, page), daemon=True)
                else:
                    browser.get(url)
                if mode == "flood":
                    client = threading.Thread(target=flood, args=(url, stop, counts), daemon=True)
            wait_line(child, "running")
            time.sleep(0.5)
            log = Log(server)
            if browser is not None and mode in ("web", "flood"):
                page["updates0"] = browser.execute_script("return window.rtqStats.updates")
                page["cpu0"] = tree_cpu(browser.service.process.pid)
                page["t0"] = time.monotonic()
            if client:
                client.start()
            wait_line(child, "done", seconds + 60)
            xruns = log.xruns()
            if browser is not None and mode in ("web", "flood"):
                page["rate"] = ((browser.execute_script("return window.rtqStats.updates") - page["updates0"])
                                / (time.monotonic() - page["t0"]))
                page["cpu"] = (tree_cpu(browser.service.process.pid) - page["cpu0"]) / (time.monotonic() - page["t0"])
                browser.get("about:blank")
            stop.set()
            if client:
                client.join(10)
            child.wait(60)
        finally:
            stop.set()
            if child.poll() is None:
                child.kill()
                child.wait()
        result = json.loads(out.read_text())
    return {"xruns": xruns, "seconds": seconds - 0.5, "summary": result["summary"], "elapsed": result["elapsed"],
            "ticks": result["ticks"], "cpu": result["cpu"], "page": page, "flood": counts}


def chromium():
    sys.path.insert(0, str(REPO))
    from tests.web.browser import chromium as start

    return start()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="per mode, in all (default 60)")
    parser.add_argument("--slots", type=int, default=3, help="turns per mode, alternating (default 3)")
    parser.add_argument("--preset", default="cd-16-shibata")
    args = parser.parse_args(argv)
    slots = max(args.slots, 1)
    turn = max(args.seconds / slots, 3.0)
    load = os.getloadavg()
    name = f"rtq-bench-web-{os.getpid()}"
    server = start_server(name, BLOCK)
    browser = chromium()
    turns = {mode: [] for mode in MODES}
    began = time.monotonic()
    try:
        for _ in range(slots):
            for mode in MODES:
                if mode == "jack_thru":
                    turns[mode].append(run_thru(server, turn, False))
                else:
                    turns[mode].append(run_rtq(server, args.preset, turn, mode, browser))
                print(f"  {mode}: {per_minute(turns[mode][-1]):.1f} xruns/min", file=sys.stderr, flush=True)
    finally:
        browser.quit()
        stop_clients(name)
        server.stop()
    after = os.getloadavg()
    print(f"rtq live meters: jackd -d dummy, 48000 Hz, {BLOCK} frames ({'real-time' if server.realtime else 'NOT real-time'}), "
          f"{args.preset} on noise:-20, {slots} turns of {turn:g} s per mode, alternating; {cpu_model()}, {os.cpu_count()} CPUs; "
          f"load average {load[0]:.1f} before, {after[0]:.1f} after; total {time.monotonic() - began:.0f} s")
    header = (f"{'mode':>9} | {'xruns/min':>9} {'vs none (95 % CI)':>19} | {'p50 load':>8} {'p99 load':>8} {'max load':>8} "
              f"{'PA flags':>8} | {'meter CPU':>9} {'server CPU':>10} | {'updates/s':>9} {'page got/s':>10} "
              f"{'browser CPU':>11} | flood")
    print(header)
    print("-" * len(header))
    base = merged(turns["none"])
    for mode in MODES:
        parts = turns[mode]
        whole = merged(parts)
        ratio, lo, hi = rate_ratio(whole, base)
        row = f"{mode:>9} | {per_minute(whole):>9.1f} {f'{ratio:.2f} ({lo:.2f}-{hi:.2f})':>19} | "
        if mode == "jack_thru":
            print(row + "-")
            continue
        load_ = whole["summary"]["callback_load"]
        elapsed = sum(p["elapsed"] for p in parts)
        main_cpu = sum(p["cpu"]["main"] for p in parts) / elapsed
        web_cpu = sum(p["cpu"]["server"] for p in parts) / elapsed
        rate = sum(p["ticks"] for p in parts) / elapsed
        pages = [p["page"]["rate"] for p in parts if p["page"]]
        browsers = [p["page"]["cpu"] for p in parts if "cpu" in p["page"]]
        sent = sum(p["flood"]["sent"] for p in parts)
        ok = sum(p["flood"]["ok"] for p in parts)
        refused = sum(p["flood"]["refused"] for p in parts)
        row += (f"{pct(load_['p50']):>8} {pct(load_['p99']):>8} {pct(load_['max']):>8} {whole['summary']['xruns']:>8} | "
                f"{100 * main_cpu:>8.1f}% {100 * web_cpu:>9.1f}% | {rate:>9.1f} "
                f"{(sum(pages) / len(pages) if pages else 0):>10.1f} "
                f"{(f'{100 * sum(browsers) / len(browsers):.1f}%' if browsers else '-'):>11} | ")
        flood_s = sum(p["flood"].get("seconds", 0.0) for p in parts)
        row += (f"{sent / flood_s:.0f} msg/s sent, {ok} run, {refused} refused busy" if mode == "flood" else "-")
        print(row)
    print()
    print("xruns/min: jackd's xrun notifications per minute (as tools/bench_live.py counts them); vs none: the "
          "mode's xrun rate over the no-meter turns', exact 95 % interval; load: callback time / period (p50 "
          "median of turns, p99 and max the highest); meter CPU: rtq's main thread (the meter, the screen or the "
          "page's updates, and the controls run), server CPU: the web server's thread, both as a share of one "
          "core; updates/s: meter updates formed (screen: ticks of its 20 ms key poll, frames at 10 Hz); page got/s: "
          "updates the page received; browser CPU: headless Chromium, all its processes.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
