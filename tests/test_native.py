"""C entry points: the stored machine code gives the same samples as Numba's, without
Numba's start-up (rtq.native)."""
from __future__ import annotations

import copy
import re
from pathlib import Path

import numpy as np
import pytest
from probes import run_probe

from rtq.chain import Chain
from rtq.live.engine import engine_callback
from rtq.presets import load_preset
from rtq.program import process_in_place

# Runs a chain with shaping, oversampling and the 1-bit modulator over noise and reports
# the output's digest, how the entry point was obtained and whether Numba's compiler
# registry (numba.np.arraymath, imported by its first compile or cache load) was loaded.
PROBE = """
import hashlib, json, sys
import numpy as np
from rtq.chain import Chain
from rtq.presets import load_preset
from rtq.program import process_in_place
digest = hashlib.sha256()
for name in ("cd-16-shibata", "converter-8bit-8x", "dsd64-1bit"):
    chain = Chain.from_spec(load_preset(name)).prepare(44100, 2, 1000)
    x = np.random.default_rng(5).uniform(-0.6, 0.6, (4410, 2))
    for start in range(0, x.shape[0], 1000):
        chain.process(x[start:start + 1000])
    digest.update(x.tobytes())
print(json.dumps({"digest": digest.hexdigest(),
                  "numba_compiled": type(process_in_place._keepalive).__name__ == "CFunc",
                  "numba_registry_loaded": "numba.np.arraymath" in sys.modules}))
"""


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("rtq-cache")


@pytest.fixture(scope="module")
def first(cache):
    """The first process with an empty cache compiles with Numba and stores the object."""
    return run_probe(PROBE, cache)


def stored_object(cache: Path) -> Path:
    (path,) = cache.glob("rtq.program.process_in_place-*.o")
    return path


def test_the_first_process_compiles_and_stores_the_entry(cache, first):
    assert first["numba_compiled"]
    assert stored_object(cache).read_bytes().startswith(b"rtq-native-object 2\n")


def test_later_processes_link_the_stored_object_without_numbas_compiler(cache, first):
    later = run_probe(PROBE, cache)
    assert not later["numba_compiled"]
    assert not later["numba_registry_loaded"]
    assert later["digest"] == first["digest"]


def test_the_stored_machine_code_matches_numbas_own_compilation(cache, first):
    numba_only = run_probe(PROBE, cache, RTQ_NATIVE_CACHE="0")
    assert numba_only["numba_compiled"]
    assert numba_only["digest"] == first["digest"]


def test_a_damaged_object_is_compiled_again(cache, first):
    path = stored_object(cache)
    data = path.read_bytes()
    path.write_bytes(data[:-4096] + bytes(4096))  # the end of the machine code zeroed
    again = run_probe(PROBE, cache)
    assert again["numba_compiled"] and again["digest"] == first["digest"]
    assert run_probe(PROBE, cache)["numba_compiled"] is False  # and stored anew


def test_this_process_runs_the_same_samples(first):
    import hashlib

    digest = hashlib.sha256()
    for name in ("cd-16-shibata", "converter-8bit-8x", "dsd64-1bit"):
        chain = Chain.from_spec(load_preset(name)).prepare(44100, 2, 1000)
        x = np.random.default_rng(5).uniform(-0.6, 0.6, (4410, 2))
        chain.process(x)  # one call: the entry splits it into blocks of 1000 itself
        digest.update(x.tobytes())
    assert digest.hexdigest() == first["digest"]


@pytest.mark.parametrize("block, problem", [
    (np.zeros((64, 2), np.float64)[::2], "C-contiguous"),
    (np.zeros((64, 2), np.int32), "int32"),
    (np.zeros((2, 64), np.float64).T, "C-contiguous"),
])
def test_process_refuses_blocks_it_cannot_work_on_in_place(block, problem):
    chain = Chain.from_spec(load_preset("cd-16-shibata")).prepare(44100, 2, 64)
    with pytest.raises(ValueError, match=problem):
        chain.process(block)


def test_a_copy_of_a_prepared_chain_runs_on_its_own_state():
    """The compiled runner finds a program by its arrays' addresses: a copy must use its own."""
    chain = Chain.from_spec(load_preset("cd-16-shibata")).prepare(44100, 2, 256)
    x = np.random.default_rng(2).uniform(-0.5, 0.5, (1024, 2))
    chain.process(x[:512].copy())
    twin = copy.deepcopy(chain)
    ours, theirs = x[512:].copy(), x[512:].copy()
    chain.process(ours)
    twin.process(theirs)
    assert np.array_equal(ours, theirs)


@pytest.mark.parametrize("entry", [process_in_place, engine_callback], ids=lambda e: e.__name__)
def test_the_compiled_audio_path_never_calls_an_allocator(entry):
    """Read from the generated code, so no input can find an allocating path at run time
    (Numba allocates a temporary for a slice copy whose ranges may overlap, for example)."""
    import numba

    compiled = numba.cfunc(entry.signature, error_model="numpy")(entry.pyfunc)
    code = compiled._library.get_llvm_str()
    called = set(re.findall(r"call [^\n]*?@(\w+)\(", code))
    assert "run_program" in code and called
    allocators = {f for f in called if re.fullmatch(r"NRT_(Allocate|MemInfo_alloc|MemInfo_new)\w*|[cm]alloc|realloc", f)}
    assert not allocators


def test_process_columns_refuses_columns_the_block_does_not_have():
    chain = Chain.from_spec(load_preset("cd-16-shibata")).prepare(44100, 2, 64)
    block = np.zeros((64, 3))
    chain.process_columns(block, 1)
    for first in (2, -1):
        with pytest.raises(ValueError, match="columns"):
            chain.process_columns(block, first)


# Three processes resolve the same entry on a machine with an empty cache at once; each
# compile is counted (and slowed, to widen the window) through numba.cfunc.
CONCURRENT_PROBE = """
import os, sys, time
import numba
from rtq import native
compile_cfunc = numba.cfunc
def counted(*args, **kwargs):
    with open(sys.argv[1], "a") as f:
        f.write("compiled\\n")
    time.sleep(0.5)
    return compile_cfunc(*args, **kwargs)
numba.cfunc = counted
@native.Entry("int64(int64)")
def twice(x):
    return 2 * x
print(twice.ctypes(21))
"""


def test_processes_on_one_machine_compile_an_entry_once(tmp_path):
    import os
    import subprocess
    import sys

    script = tmp_path / "probe.py"
    script.write_text(CONCURRENT_PROBE)
    env = {**os.environ, "RTQ_CACHE_DIR": str(tmp_path / "cache"), "RTQ_NATIVE_CACHE": "1"}
    count = tmp_path / "compiles"
    workers = [subprocess.Popen([sys.executable, str(script), str(count)], env=env, stdout=subprocess.PIPE,
                                text=True) for _ in range(3)]
    assert [w.communicate(timeout=120)[0] for w in workers] == ["42\n"] * 3
    assert count.read_text() == "compiled\n"


HOST = """
import json, sys
from rtq import native
remembered = native._host_cpu()
loaded = "llvmlite.binding" in sys.modules
print(json.dumps({"remembered": remembered, "llvm_loaded": loaded, "llvm": native._llvm_host_cpu()}))
"""


def test_the_cpu_llvm_compiles_for_is_asked_once_per_boot(tmp_path):
    first = run_probe(HOST, tmp_path)
    assert first["remembered"] == first["llvm"] and first["llvm_loaded"]
    (stored,) = (tmp_path / "host").glob("*.json")
    stored.write_text('["a-cpu", "+a-feature"]')
    again = run_probe(HOST, tmp_path)
    assert again["remembered"] == ["a-cpu", "+a-feature"] and not again["llvm_loaded"]
    stored.write_text('["damaged"')
    assert run_probe(HOST, tmp_path)["remembered"] == first["llvm"]
