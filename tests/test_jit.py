"""rtq's kernels compile with Numba's on-disk cache, keyed by the rtq source their module can reach."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import rtq
from rtq import cache

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
    source's key.  Keyed by the digest of the source its module reaches through its
    imports, it is compiled again; an edit to a module it cannot reach leaves its cache
    alone."""
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
    stored = {p: p.stat().st_mtime_ns for p in (package / "__pycache__").glob("_probe_caller.*.nb?")}
    assert stored                                                          # the cache was used
    (package / "commands" / "batch.py").write_text("# an edit the kernel cannot reach\n", "utf-8")
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert (done.returncode, done.stdout.strip()) == (0, "21.0"), done.stderr
    assert {p: p.stat().st_mtime_ns for p in (package / "__pycache__").glob("_probe_caller.*.nb?")} == stored


def test_a_module_digest_covers_exactly_what_its_module_can_reach():
    files = cache._files()
    before = cache.closure_digests(files)

    def after(module):
        return cache.closure_digests({**files, module: files[module] + b"\n# edited\n"})

    kernel = "rtq.dsp.requantize"
    for module in ("rtq.dsp.simd", "rtq.dsp.__init__", "rtq.__init__", "rtq.jit", kernel):
        assert after(module)[kernel] != before[kernel], module
    for module in ("rtq.commands.batch", "rtq.batch.jobs", "rtq.ui.__init__", "rtq.render"):
        assert after(module)[kernel] == before[kernel], module
    assert after("rtq.dsp.simd")["rtq.render"] != before["rtq.render"]      # render's kernels reach simd


def test_relative_imports_resolve_to_the_modules_they_name():
    files = {"rtq.__init__": b"", "rtq.a.__init__": b"", "rtq.a.b": b"from . import c\nfrom ..d import e\n",
             "rtq.a.c": b"", "rtq.d": b"", "rtq.x": b"def f():\n    from .a import b\n"}
    digests = cache.closure_digests(files)
    for module in ("rtq.a.c", "rtq.d", "rtq.a.__init__", "rtq.__init__"):
        assert cache.closure_digests({**files, module: b"# edited"})["rtq.a.b"] != digests["rtq.a.b"], module
    assert cache.closure_digests({**files, "rtq.x": b"# edited"})["rtq.a.b"] == digests["rtq.a.b"]
    assert cache.closure_digests({**files, "rtq.a.c": b"# edited"})["rtq.x"] != digests["rtq.x"]   # via b
