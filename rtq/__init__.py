"""rtq: a real-time and offline audio requantizer.

The public API (everything else in the package is internal and may change)::

    from rtq import (Chain, Gain, Requantize, Quantize, BlockCompand, Oversample, Lowpass, LiveSession, Source,
                     load_preset, RtqError)

    chain = Chain([Gain(-0.1), Requantize(16, "tpdf", shaping="shibata")], seed=1)
    y = chain(x, 44100)                         # a whole signal, latency compensated
    chain = Chain.from_preset("cd-16-shibata")  # or a preset (a path or a shipped name)

and the subpackages ``rtq.listen`` (listening tests) and ``rtq.batch`` (batch rendering:
``rtq.batch.plan``, ``rtq.batch.run``).  Names load when first used (PEP
562): ``import rtq`` starts no audio and compiles nothing, and only ``LiveSession``
loads the live engine, which initialises PortAudio.
"""
from __future__ import annotations

import importlib

_NAMES = {
    "Chain": "rtq.chain",
    "Gain": "rtq.stages",
    "Requantize": "rtq.stages",
    "Quantize": "rtq.stages",
    "BlockCompand": "rtq.stages",
    "Oversample": "rtq.stages",
    "Lowpass": "rtq.stages",
    "LiveSession": "rtq.live.session",
    "Source": "rtq.live.sources",
    "load_preset": "rtq.presets",
    "RtqError": "rtq.errors",
}
_SUBPACKAGES = ("listen", "batch")

__all__ = [*_NAMES, *_SUBPACKAGES]


def __getattr__(name: str):
    if name in _NAMES:
        value = getattr(importlib.import_module(_NAMES[name]), name)
    elif name in _SUBPACKAGES:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module 'rtq' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
