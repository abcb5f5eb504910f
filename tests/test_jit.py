"""rtq's kernels compile with Numba's on-disk cache, keyed by all of rtq's source."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import rtq

CALLER = '''from rtq.jit import kernel
from rtq._probe_callee import value


@kernel
def caller():
    return value() + 1.0
'''
CALLEE = '''from rtq.jit import kernel


@kernel
def value():
    return {}
'''


def test_a_kernel_whose_callee_changed_is_compiled_again(tmp_path):
    """Numba keys a cached function by its own file's time stamp and size only, so a
    kernel whose own file is unchanged kept the machine code of a callee that changed
    in another file (after a checkout, an edit or an upgrade that leaves the caller's
    file alone), and rtq's native cache then stored that stale code under the new
    source's key.  Keyed by the digest of all of rtq's source, it is compiled again."""
    package = tmp_path / "site" / "rtq"
    shutil.copytree(Path(rtq.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__"))
    (package / "_probe_caller.py").write_text(CALLER)
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site"), "RTQ_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("NUMBA_CACHE_DIR", None)
    code = "from rtq._probe_caller import caller; print(caller())"
    results = []
    for constant in ("1.0", "20.0"):
        (package / "_probe_callee.py").write_text(CALLEE.format(constant))
        done = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        results.append(done.stdout.strip())
    assert results == ["2.0", "21.0"]
    assert any((package / "__pycache__").glob("_probe_caller.*.nbi"))    # the cache was used
