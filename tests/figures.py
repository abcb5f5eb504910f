"""Comparing meter reports figure by figure (shared by the meter and render tests)."""
from __future__ import annotations

import pytest


def assert_same_figures(a, b, path: str = "") -> None:
    """Two reports' figures equal: numbers to 1e-12 relative (sums formed over other
    chunks round differently), everything else exactly."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            assert_same_figures(a[key], b[key], f"{path}/{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for k, (u, v) in enumerate(zip(a, b)):
            assert_same_figures(u, v, f"{path}[{k}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-12, abs=1e-300), path
    else:
        assert a == b, path
