"""``quantize``: 8-bit G.711 companding (mu-law or A-law), via the 16-bit grid."""
from __future__ import annotations

from ..dsp import g711
from ..program import OP_COMPAND
from ..processor import QuantizerInfo
from ..schema import Choice, Fields
from .base import OutputGrid, Stage


class Quantize(Stage):
    """8-bit G.711 companding (``law`` = ``mu-law`` or ``a-law``), via the 16-bit grid."""

    kind = "quantize"
    schema = Fields({"law": Choice(tuple(g711.LAWS)), "bits": Choice((8,)).optional(8)})
    is_quantizer = True

    def __init__(self, law: str = "mu-law", bits: int = 8, *, where=None):
        super().__init__(where)
        params = self.checked({"law": law, "bits": bits})
        self.law = params["law"]
        self.bits = params["bits"]

    def arguments(self) -> dict:
        return {"law": self.law, "bits": self.bits}

    def emit(self, builder, ctx):
        index = builder.add_op(OP_COMPAND, ctx.level, **g711.pack(self.law))
        return QuantizerInfo(ctx.path, self, 8, 2.0 ** -15, "none", None, ctx.sample_rate, index)

    def label(self) -> str:
        return f"quantize {self.law} {self.bits}-bit"

    def info_line(self, rate: float, stream_rate: float) -> str:
        return f"quantize {self.law}, {self.bits} bits (G.711)"

    def output_grid(self) -> OutputGrid:
        """The law's codes, which are values of the 16-bit grid."""
        return OutputGrid(16, self.law)
