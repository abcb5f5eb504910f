"""Helpers for the web pages' tests: an rtq command serving a page (its address read from
its output), a headless Chromium driven by Selenium (Debian's chromium and chromedriver:
nothing is downloaded), screenshots kept under a temporary directory."""
from __future__ import annotations

import os
import queue
import re
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Without the background-networking flags Chromium calls Google's hosts, which this closed
# network refuses many at a time; a fresh profile each time.
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage")
URL = re.compile(r"open in a browser: (http://\S+)")
SHOTS = Path(os.environ.get("RTQ_SCREENSHOTS") or Path(tempfile.gettempdir()) / "rtq-web-screenshots")


def rtq_env(**extra) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


class Served:
    """``python -m rtq ARGS`` in a child process serving a page: :attr:`url` once printed;
    every output line kept (:attr:`lines`); ended by its own id."""

    def __init__(self, args, *, cwd=None, env=None, timeout: float = 240.0, stdout_json=False):
        self.process = subprocess.Popen([sys.executable, "-m", "rtq", *map(str, args)], cwd=cwd,
                                        env=env or rtq_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.errors: list[str] = []
        self._found: queue.Queue = queue.Queue()
        for stream, into in ((self.process.stdout, self.lines), (self.process.stderr, self.errors)):
            threading.Thread(target=self._read, args=(stream, into), daemon=True).start()
        try:
            self.url = self._found.get(timeout=timeout)
        except queue.Empty:
            self.stop()
            raise AssertionError(f"no address printed: {self.lines} {self.errors}") from None
        self.base = self.url.split("?")[0].rstrip("/")
        self.token = self.url.split("token=")[1]

    def _read(self, stream, into):
        for line in stream:
            into.append(line.rstrip("\n"))
            found = URL.search(line)
            if found:
                self._found.put(found.group(1))

    def wait(self, timeout: float = 60.0) -> int:
        status = self.process.wait(timeout)
        time.sleep(0.1)                  # the readers take the last lines
        return status

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def chromium(width: int = 1280, height: int = 1000):
    """A headless Chromium (Selenium with Debian's chromedriver; Selenium Manager is never
    asked for anything)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            pytest.fail(f"{path} is missing: tools/setup.sh installs chromium and chromium-driver", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='rtq-chromium-')}")
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def wait_until(condition, timeout: float = 30.0, interval: float = 0.05, what: str = "the page"):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def screenshot(driver, name: str, size=None) -> Path:
    """A PNG of the whole window, kept under :data:`SHOTS`; its size is checked: the
    window's pixels (or ``size``, an emulated screen's), and enough bytes to be more
    than a blank page."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    assert driver.save_screenshot(str(path))
    data = path.read_bytes()
    width, height = struct.unpack(">II", data[16:24])
    if size is None:
        size = driver.execute_script("return [window.innerWidth * devicePixelRatio, window.innerHeight * devicePixelRatio]")
    assert (width, height) == tuple(round(v) for v in size), (width, height, size)
    assert len(data) > 20000, f"{path}: {len(data)} bytes, a blank page?"
    return path


def console_errors(driver) -> list[str]:
    """The page's errors (scripts, CSP refusals) from Chromium's console."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
