"""``gain``: multiply by ``10^(db/20)``."""
from __future__ import annotations

from ..dsp import gain as kernel
from ..program import OP_GAIN
from ..schema import Fields, Number
from .base import Stage

GAIN_DB_RANGE = (-120.0, 24.0)


class Gain(Stage):
    """Multiply by ``10^(db/20)`` (``db`` from -120 to +24)."""

    kind = "gain"
    schema = Fields({"db": Number(*GAIN_DB_RANGE)})

    def __init__(self, db: float = 0.0, *, where=None):
        super().__init__(where)
        self.db = self.checked({"db": db})["db"]

    def arguments(self) -> dict:
        return {"db": self.db}

    def emit(self, builder, ctx):
        # 0 dB multiplies by exactly 1.0, which changes no sample: no op, no pass over
        # the buffer
        if self.net_gain() != 1.0:
            builder.add_op(OP_GAIN, ctx.level, **kernel.pack(self.net_gain()))

    def net_gain(self) -> float:
        return 10.0 ** (self.db / 20.0)

    def info_line(self, rate: float, stream_rate: float) -> str:
        return f"gain {self.db:+.2f} dB"
