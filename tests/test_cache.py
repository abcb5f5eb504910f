"""Stored filter designs: a warm start designs nothing and imports no SciPy (rtq.cache)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from probes import run_probe

import rtq

# What the designs need (importing numba itself imports the top-level scipy package).
DESIGN_PACKAGES = {"scipy.signal", "scipy.optimize", "scipy.special"}

# Prepares the presets that design filters at prepare time (FIR and IIR half-bands, an
# order-5 NTF for the 1-bit loop, order-3 NTFs) and reports the designs and which SciPy
# packages were imported.
PROBE = """
import json, sys
from rtq.chain import Chain
from rtq.dsp.ntf import design_ntf
from rtq.dsp.oversample_design import design_oversampler
from rtq.presets import load_preset
for name in ("dsd64-1bit", "converter-8bit-8x", "bitcrush-4bit-oversampled"):
    Chain.from_spec(load_preset(name)).prepare(44100, 2, 256)
ntf = design_ntf(5, 64 * 44100.0, stream_rate=44100.0)
minimum = design_oversampler(4, "minimum", "high")
print(json.dumps({"ntf": [list(ntf.b), list(ntf.a), ntf.h_inf], "iir": minimum.coeffs.tolist(),
                  "scipy": sorted(m for m in sys.modules if m.startswith("scipy."))}))
"""


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("rtq-cache")


@pytest.fixture(scope="module")
def cold(cache):
    return run_probe(PROBE, cache)


def test_a_cold_start_designs_with_scipy_and_stores_the_designs(cache, cold):
    assert DESIGN_PACKAGES <= set(cold["scipy"])
    assert len(list((cache / "designs").glob("*.json"))) >= 3


def test_a_warm_start_reads_the_same_designs_without_importing_scipy(cache, cold):
    warm = run_probe(PROBE, cache)
    assert not DESIGN_PACKAGES & set(warm["scipy"])
    assert warm["ntf"] == cold["ntf"] and warm["iir"] == cold["iir"]


def test_a_damaged_design_is_designed_again(cache, cold):
    for path in (cache / "designs").glob("*.json"):
        path.write_text(path.read_text()[:-3])
    again = run_probe(PROBE, cache)
    assert again["ntf"] == cold["ntf"] and again["iir"] == cold["iir"]
    assert not DESIGN_PACKAGES & set(run_probe(PROBE, cache)["scipy"])


# Prints the source digest a start uses (found by the files' stamp when stored), the stamp,
# and the digest hashed from the files' bytes; argv[1]: how long ago (ns) every file must
# have changed for the state to get a stamp.
DIGEST = """
import json, sys
from rtq import cache
cache._SETTLED_NS = int(sys.argv[1])
used, stamp = cache.source_digest(), cache._stamp()
cache._stamp = lambda: None
cache.source_digest.cache_clear()
print(json.dumps({"used": used, "stamp": stamp, "hashed": cache.source_digest()}))
"""


def test_the_source_digest_is_found_by_the_files_stat_and_follows_every_change(tmp_path):
    package = tmp_path / "site" / "rtq"
    shutil.copytree(Path(rtq.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site"), "RTQ_CACHE_DIR": str(tmp_path / "cache")}

    def start(settled_ns=0):
        done = subprocess.run([sys.executable, "-c", DIGEST, str(settled_ns)], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    first = start()
    assert first["used"] == first["hashed"] and first["stamp"]
    stored = tmp_path / "cache" / "source" / f"stamp-{first['stamp']}.txt"
    assert stored.read_text() == first["hashed"]
    stored.write_text("0" * 64)
    assert start()["used"] == "0" * 64               # a start goes by the stamp alone
    # An edit that keeps the file's size and modification time still changes its stat.
    module = package / "dsp" / "gain.py"
    before, source = module.stat(), module.read_bytes()
    module.write_bytes(source.replace(b"gain", b"GAIN", 1))
    os.utime(module, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = start()
    assert after["stamp"] != first["stamp"]
    assert after["used"] == after["hashed"] != first["hashed"]
    # A file changed within the last seconds may change again unseen: no stamp, nothing stored.
    module.write_bytes(source)
    stamps = set((tmp_path / "cache" / "source").glob("stamp-*"))
    racy = start(settled_ns=10**12)
    assert racy["stamp"] is None and racy["used"] == racy["hashed"] == first["hashed"]
    assert set((tmp_path / "cache" / "source").glob("stamp-*")) == stamps
