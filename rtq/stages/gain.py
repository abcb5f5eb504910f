"""``gain``: multiply by ``10^(db/20)``."""
from __future__ import annotations

from ..dsp import gain as kernel
from ..program import OP_GAIN
from ..spec import GAIN_DB_RANGE, checked_number
from .base import Stage


class Gain(Stage):
    """Multiply by ``10^(db/20)`` (``db`` from -120 to +24)."""

    kind = "gain"

    def __init__(self, db: float = 0.0, *, where=None):
        super().__init__(where)
        self.db = checked_number(db, "gain.db", *GAIN_DB_RANGE)

    def emit(self, builder, ctx):
        builder.add_op(OP_GAIN, ctx.level, **kernel.pack(self.net_gain()))

    def net_gain(self) -> float:
        return 10.0 ** (self.db / 20.0)

    def describe(self):
        return {"db": self.db}

    def info_line(self, rate: float, stream_rate: float) -> str:
        return f"gain {self.db:+.2f} dB"
