"""Shared by the batch tests: small corpora, ``rtq batch`` in a real process (its own
process group), and manifests compared without their scheduling fields."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from rtq.batch.manifest import SCHEDULING_FIELDS

REPO = Path(__file__).resolve().parents[2]


def make_corpus(folder: Path, count: int, seconds: float = 0.25, rate: int = 44100, channels: int = 2,
                nested: bool = True) -> list[Path]:
    """``count`` 24-bit WAV files of noise (every other one in a subfolder)."""
    rng = np.random.default_rng(count)
    paths = []
    for i in range(count):
        path = folder / ("sub" if nested and i % 2 else "") / f"take{i:02d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        x = np.clip(0.3 * rng.standard_normal((int(seconds * rate), channels)), -1, 1)
        sf.write(path, x, rate, subtype="PCM_24")
        paths.append(path)
    return paths


def environment() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


def rtq_command(*argv) -> list[str]:
    return [sys.executable, "-m", "rtq", *map(str, argv)]


def run_rtq(*argv, cwd=None, timeout: float = 180, stdin: str | None = None) -> subprocess.CompletedProcess:
    """``python -m rtq ARGV`` to the end, in its own process group."""
    return subprocess.run(rtq_command(*argv), cwd=cwd, env=environment(), capture_output=True, text=True,
                          timeout=timeout, input=stdin, start_new_session=True)


def start_rtq(*argv, cwd=None) -> subprocess.Popen:
    """``python -m rtq ARGV`` started in its own process group (``os.killpg`` ends it all),
    with Ctrl-C's signal handled as on a terminal even when the tests run as a shell's
    background job (which starts them with SIGINT ignored)."""
    return subprocess.Popen(rtq_command(*argv), cwd=cwd, env=environment(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def manifest_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def without_scheduling(record: dict, out: Path | None = None) -> str:
    """A record as compact JSON without :data:`SCHEDULING_FIELDS`, its output folder
    written as OUT (to compare batches run into different folders)."""
    kept = {k: v for k, v in record.items() if k not in SCHEDULING_FIELDS}
    text = json.dumps(kept, separators=(",", ":"))
    return text.replace(str(out), "OUT") if out is not None else text


def final_records(manifest: Path, out: Path | None = None) -> dict[str, str]:
    """The last record of each output, without scheduling fields."""
    records = {}
    for record in manifest_lines(manifest):
        records[record["output"].replace(str(out), "OUT") if out else record["output"]] = \
            without_scheduling(record, out)
    return records


def audio_files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` but the manifest, by relative path, with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "rtq-batch.jsonl"}


def processes_holding(path: Path) -> list[int]:
    """PIDs of processes that have ``path`` open."""
    target = os.path.realpath(path)
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    found.append(int(pid))
                    break
        except OSError:
            continue
    return found
