"""How rtq writes quantities for people (one rule for every command and screen)."""
from __future__ import annotations


def rate_text(hz: float) -> str:
    """A rate in Hz as people read it: ``48000 Hz``, ``352800 Hz``, ``3.072 MHz``
    (never ``3.072e+06 Hz``); every digit of the rate is kept."""
    if hz >= 1e6:
        return f"{hz / 1e6:.10g} MHz"
    return f"{hz:.10g} Hz"
