"""rtq's kernels compile with Numba's on-disk cache, keyed by the rtq source their module can reach;
a warm process runs them without loading Numba."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

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


RENDER = """
import json, sys
from rtq.cli import main
status = main(sys.argv[1:])
heavy = [m for m in sys.modules if m.split(".")[0] in ("numba", "scipy")]
print(json.dumps({"status": status, "heavy": sorted(heavy)}))
"""


def render(tmp_path, *argv, **env):
    environment = {**os.environ, **env}
    done = subprocess.run([sys.executable, "-c", RENDER, "render", *map(str, argv), "--force"], env=environment,
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("preset", ["cd-16-shibata", "dsd64-1bit"])
def test_a_warm_render_imports_neither_numba_nor_scipy(tmp_path, preset):
    """Importing Numba's package costs more CPU than a do-nothing render of a 10-minute
    file spends on its audio (BENCHMARKS.md): once rtq's compiled code is in its cache, ``rtq
    render`` (with ``--report``, which adds a compiled meter) links it without Numba, and
    writes the bytes a process that runs Numba writes.  Filter designs come from the
    cache too (rtq.cache.stored_design), so SciPy is not imported either."""
    source = tmp_path / "in.wav"
    x = np.random.default_rng(3).uniform(-0.7, 0.7, (22050, 2))
    sf.write(source, x, 44100, subtype="PCM_24")
    render(tmp_path, preset, source, tmp_path / "warm-up.wav", "--report", tmp_path / "warm-up.json")  # may compile
    warm = render(tmp_path, preset, source, tmp_path / "warm.wav", "--report", tmp_path / "warm.json")
    assert warm["status"] == 0
    # Only the C helpers compiled code calls, loaded from their files (rtq.native._engine).
    assert set(warm["heavy"]) <= {"numba._helperlib", "numba._dynfunc", "numba.core.runtime._nrt_python"}
    with_numba = render(tmp_path, preset, source, tmp_path / "numba.wav", "--report", tmp_path / "numba.json",
                        RTQ_NATIVE_CACHE="0")
    assert with_numba["status"] == 0 and "numba" in with_numba["heavy"]
    assert (tmp_path / "warm.wav").read_bytes() == (tmp_path / "numba.wav").read_bytes()
    reports = [json.loads((tmp_path / f"{name}.json").read_text()) for name in ("warm", "numba")]
    assert [report.pop("output") for report in reports] == [str(tmp_path / "warm.wav"), str(tmp_path / "numba.wav")]
    assert reports[0] == reports[1]


OWN_KERNELS = """
import json, sys
import numba
import numpy as np
import rtq.jit
from rtq.dsp.rng import next_uniform
from rtq.jit import address_as_void_pointer, carray

before = rtq.jit.numba_loaded()


@numba.njit
def draws(state, n):
    out = np.empty(n)
    for i in range(n):
        state, out[i] = next_uniform(state)
    return out


@numba.njit
def total(address):
    return carray(address_as_void_pointer(address), (2,), np.float64).sum()


x = np.array([1.5, 2.0])
print(json.dumps({"before": before, "compiled": list(draws(np.uint64(1), 2)), "python": next_uniform(np.uint64(1))[1],
                  "total": total(x.ctypes.data)}))
"""


def test_functions_jitted_around_rtqs_kernels_before_numba_is_loaded():
    """A module that imported rtq's kernels while they were stand-ins (Numba not loaded
    yet) can call them from Python and from its own compiled functions."""
    done = subprocess.run([sys.executable, "-c", OWN_KERNELS], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["before"] is False
    assert result["compiled"][0] == result["python"]
    assert result["total"] == 3.5


NUMBA_AFTER_LINKING = """
import json, sys
import numpy as np
from rtq.cli import main
import rtq.jit

status = main(["render", "cd-16-shibata", "in.wav", "out.wav", "--force"])
linked_first = sorted(m for m in sys.modules if m.startswith("numba"))

import numba
from numba import _helperlib, cfunc, njit, types
from numba.core.runtime import _nrt_python
from rtq.dsp.rng import next_uniform


@njit
def scaled(x, state):
    state, u = next_uniform(state)
    return [x * i + u for i in range(3)]      # a list: the runtime's allocator (NRT)


@cfunc(types.float64(types.float64))
def plus_one(x):
    return x + 1.0


own = sys.modules["numba._helperlib"] is _helperlib and sys.modules["numba.core.runtime._nrt_python"] is _nrt_python
rtq.jit.load_numba()
attributes = (numba._helperlib, numba._dynfunc, numba.core.runtime._nrt_python) == tuple(
    sys.modules[m] for m in ("numba._helperlib", "numba._dynfunc", "numba.core.runtime._nrt_python"))
print(json.dumps({"status": status, "linked_first": linked_first, "from_sys_modules": own, "attributes": attributes,
                  "scaled": scaled(2.0, np.uint64(1)), "python": next_uniform(np.uint64(1))[1],
                  "plus_one": plus_one.ctypes(1.5)}))
"""


def test_numba_imported_after_a_stored_object_was_linked_compiles(tmp_path):
    """A warm process links rtq's stored machine code with Numba's C helpers loaded from
    their files (rtq.native._engine), before Numba's package exists.  Importing Numba
    afterwards reuses those modules: Numba still compiles (njit with the runtime's
    allocator, cfunc, a kernel of rtq's) with its C helpers its own, reachable as Numba
    imports them and, once rtq.jit loaded Numba, as attributes of their packages."""
    x = np.random.default_rng(4).uniform(-0.7, 0.7, (4410, 2))
    sf.write(tmp_path / "in.wav", x, 44100, subtype="PCM_24")
    render(tmp_path, "cd-16-shibata", tmp_path / "in.wav", tmp_path / "warm-up.wav", RTQ_NATIVE_CACHE="1")  # may compile
    done = subprocess.run([sys.executable, "-c", NUMBA_AFTER_LINKING], env={**os.environ, "RTQ_NATIVE_CACHE": "1"},
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["status"] == 0
    assert result["linked_first"] == ["numba._dynfunc", "numba._helperlib", "numba.core.runtime._nrt_python"]
    assert result["from_sys_modules"] is True and result["attributes"] is True
    assert result["scaled"] == [result["python"] + 2.0 * i for i in range(3)]
    assert result["plus_one"] == 2.5
