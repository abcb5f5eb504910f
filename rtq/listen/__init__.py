"""Listening tests over live chains: blind ABX and MUSHRA (``rtq listen``).

The public API, imported on first use (``import rtq.listen`` starts no audio and loads
no NumPy kernels):

:class:`Comparison`
    the conditions of one item running at once, the output selecting one
    (:mod:`rtq.listen.comparison`; :class:`TooHeavy` when they cannot run in real time);
:class:`AbxTest`, :class:`MushraTest`
    a whole test driven from Python: a host or a scripted listener, no terminal;
:func:`load_test`, :class:`ListeningTest`
    read and check a test file; the checked test (:mod:`rtq.listen.testfile`);
:func:`binomial_p`
    the exact one-sided binomial p-value of an ABX score (:mod:`rtq.listen.stats`);
:func:`verify`
    check a test's log (:mod:`rtq.listen.verification`).
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "Comparison": "comparison",
    "TooHeavy": "comparison",
    "AbxTest": "abx",
    "MushraTest": "mushra",
    "ListeningTest": "testfile",
    "load_test": "testfile",
    "binomial_p": "stats",
    "verify": "verification",
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
