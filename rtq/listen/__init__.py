"""Listening tests over live chains: blind ABX and MUSHRA (``rtq listen``).

The public API, imported on first use (``import rtq.listen`` starts no audio and loads
no NumPy kernels):

:func:`binomial_p`
    the exact one-sided binomial p-value of an ABX score (:mod:`rtq.listen.stats`).
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "binomial_p": "stats",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rtq.listen' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
