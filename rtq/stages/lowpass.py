"""``lowpass``: a linear-phase low-pass FIR meeting ITU-R BS.1534-3's anchor mask at its
corner ``hz`` (the MUSHRA anchors are ``lowpass: {hz: 3500}`` and ``{hz: 7000}``),
designed at prepare time for the rate it runs at (:mod:`rtq.dsp.lowpass`)."""
from __future__ import annotations

import math

from ..dsp import lowpass as kernel
from ..errors import PresetError
from ..program import OP_LOWPASS
from ..schema import Fields, Number
from .base import Stage
from .rates import RateLimit, RateRange, format_rates


LOWPASS_HZ_RANGE = (10.0, 100000.0)


class Lowpass(Stage):
    """Low-pass at ``hz`` (passband within +-0.1 dB up to ``hz``, at least 25 dB down at
    ``8/7 hz`` and 50 dB from ``9/7 hz`` on: BS.1534-3's anchor mask, scaled).

    The filter is designed for the rate the stage runs at, so its length and latency
    (``(taps - 1) / 2`` samples) are known once it is prepared; it needs that rate above
    ``18/7 hz`` (the mask's last edge below Nyquist).
    """

    kind = "lowpass"
    schema = Fields({"hz": Number(*LOWPASS_HZ_RANGE)})

    def __init__(self, hz: float, *, where=None):
        super().__init__(where)
        self.hz = self.checked({"hz": hz})["hz"]
        self._taps: tuple[float, ...] | None = None

    def arguments(self) -> dict:
        return {"hz": self.hz}

    def taps(self, rate: float) -> tuple[float, ...]:
        """The filter at ``rate`` (a PresetError at the preset's line if the mask does not
        fit below its Nyquist frequency)."""
        edge = kernel.STOP_EDGES[-1][0] * self.hz
        if edge >= rate / 2:
            raise PresetError(f"{self.location('hz')}: lowpass at {self.hz:g} Hz runs at rates above "
                              f"{2 * edge:.0f} Hz (its mask reaches {edge:.0f} Hz), not {rate:g} Hz")
        return kernel.design_lowpass(self.hz, float(rate))

    def emit(self, builder, ctx):
        self._taps = self.taps(ctx.sample_rate)
        builder.add_op(OP_LOWPASS, ctx.level, **kernel.pack(self._taps))

    @property
    def latency(self) -> float:
        """``(taps - 1) / 2`` at the rate the stage was last prepared for."""
        if self._taps is None:
            raise RuntimeError("a lowpass stage's latency depends on its rate: prepare it first")
        return (len(self._taps) - 1) / 2

    def rate_limits(self, factor: int = 1) -> list[RateLimit]:
        edge = kernel.STOP_EDGES[-1][0] * self.hz
        ranges = (RateRange(2 * edge / factor, math.inf, True),)
        reason = f"lowpass at {self.hz:g} Hz needs the stage to run above {2 * edge:.0f} Hz"
        if factor > 1:
            reason += f" (it runs at x{factor}: stream rates {format_rates(ranges)})"
        return [RateLimit(self.location("hz"), reason, ranges)]

    def label(self) -> str:
        return f"lowpass {self.hz:g} Hz"

    def info_line(self, rate: float, stream_rate: float) -> str:
        taps = self.taps(rate)
        return (f"lowpass at {self.hz:g} Hz (BS.1534-3 anchor mask), {len(taps)} taps, "
                f"latency {(len(taps) - 1) // 2} samples")
