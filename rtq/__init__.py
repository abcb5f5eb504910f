"""rtq: real-time and offline audio requantizer.

Subpackages load on first use: ``import rtq`` starts no audio and compiles nothing;
``rtq.listen`` (listening tests) is imported when first named.
"""
from __future__ import annotations

import importlib

_LAZY = ("listen",)


def __getattr__(name: str):
    if name in _LAZY:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'rtq' has no attribute {name!r}")
