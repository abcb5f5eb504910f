"""Running a script in a fresh Python process with its own rtq cache directory."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_probe(script: str, cache: Path, **env) -> dict:
    """Run ``script`` (which prints one JSON object) with ``RTQ_CACHE_DIR=cache``; return it."""
    environment = dict(os.environ, RTQ_CACHE_DIR=str(cache), **env)
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
