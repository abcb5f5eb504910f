"""The stream rates a chain can run at: each stage says what limits its own rate
(:meth:`Stage.rate_limits <rtq.stages.base.Stage.rate_limits>`), and
:func:`usable_rates` intersects them over the whole tree."""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..spec import STREAM_RATE_HZ
from .base import walk


@dataclass(frozen=True)
class RateRange:
    """Stream rates from ``low`` (excluded if ``low_open``) to ``high`` (included), in Hz."""

    low: float
    high: float = math.inf
    low_open: bool = False

    def __and__(self, other: "RateRange") -> "RateRange | None":
        if self.low != other.low:
            low, low_open = max((self.low, self.low_open), (other.low, other.low_open))
        else:
            low, low_open = self.low, self.low_open or other.low_open
        high = min(self.high, other.high)
        return RateRange(low, high, low_open) if low < high or (low == high and not low_open) else None

    def __contains__(self, rate: float) -> bool:
        return self.low <= rate <= self.high and not (self.low_open and rate == self.low)

    def whole_rates(self) -> tuple[int, float]:
        """The first and last whole rates inside (the last may be ``inf``)."""
        first = math.floor(self.low) + 1 if self.low_open else math.ceil(self.low)
        return first, self.high if self.high == math.inf else math.floor(self.high)


# What no stage limits: the stream rates rtq runs at all (spec.STREAM_RATE_HZ).
ANY_RATE = (RateRange(float(STREAM_RATE_HZ[0]), float(STREAM_RATE_HZ[1])),)


@dataclass(frozen=True)
class RateLimit:
    """Stream rates one stage can run at (``ranges``), where it says so, and why."""

    where: str
    reason: str
    ranges: tuple[RateRange, ...]


def _merged(ranges) -> tuple[RateRange, ...]:
    merged: list[RateRange] = []
    for r in sorted(ranges, key=lambda r: (r.low, r.low_open)):
        if merged and r.low <= merged[-1].high:
            last = merged[-1]
            merged[-1] = RateRange(last.low, max(last.high, r.high), last.low_open)
        else:
            merged.append(r)
    return tuple(merged)


def usable_rates(stages) -> tuple[tuple[RateRange, ...], list[RateLimit]]:
    """The stream rates at which every one of ``stages`` can be prepared (merged ranges;
    :data:`ANY_RATE` when nothing limits them; empty when no rate can), and the limits
    that set them."""
    limits = [limit for place in walk(stages) for limit in place.stage.rate_limits(place.factor)]
    ranges = ANY_RATE
    for limit in limits:
        ranges = _merged(both for a in ranges for b in limit.ranges if (both := a & b) is not None)
    return ranges, limits


def format_rates(ranges) -> str:
    """The whole rates inside ``ranges``: ``41895-50400 Hz``, ``above 60000 Hz``, joined
    by commas (``no whole rate`` when none is)."""
    parts = []
    for r in ranges:
        first, last = r.whole_rates()
        if last == math.inf:
            parts.append(f"above {r.low:.12g} Hz" if r.low_open else f"from {first} Hz")
        elif first <= last:
            parts.append(f"{first}-{last} Hz" if first < last else f"{first} Hz")
    return ", ".join(parts) or "no whole rate"
