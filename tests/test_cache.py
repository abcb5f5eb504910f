"""Stored filter designs: a warm start designs nothing and imports no SciPy (rtq.cache)."""
from __future__ import annotations

import pytest
from probes import run_probe

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
