"""``blockcompand``: near-instantaneous block companding (NICAM-style): a coarse quantizer
whose step follows each block's peak (:mod:`rtq.dsp.blockcompand`)."""
from __future__ import annotations

from dataclasses import dataclass

from ..dsp import blockcompand as kernel
from ..dsp.rng import stream_seed
from ..program import COL_I_OFF, OP_BLOCKCOMPAND
from ..processor import QuantizerInfo
from ..schema import INVALID, Fields, Integer
from .base import OutputGrid, Stage
from .requantize import DITHER, Requantize, Shaping, denormalised_shaping

BITS_RANGE = (2, 24)
RANGE_BITS = (2, 32)
BLOCK_RANGE = (1, 4096)


@dataclass(frozen=True)
class _BlockFields(Fields):
    """The fields, then the scales: ``range_bits`` from ``bits`` to ``bits`` + 23."""

    def check(self, value, path, checker):
        result = super().check(value, path, checker)
        if result is INVALID:
            return result
        scales = result["range_bits"] - result["bits"] + 1
        if not 1 <= scales <= kernel.MAX_SCALES:
            return checker.add(path + ("range_bits",), f"{{name}} must be from bits ({result['bits']}) to bits + "
                                                       f"{kernel.MAX_SCALES - 1}", result["range_bits"])
        return result


class BlockCompand(Stage):
    """Block companding: per ``block`` samples, the step of a ``bits``-bit quantizer is
    chosen from the block's peak among ``range_bits - bits + 1`` scales (the finest is
    the ``range_bits`` grid's step), and the block decoded.

    Parameters
    ----------
    bits : int
        The coarse quantizer's word length (2 ... 24); NICAM: 10.
    block : int
        Samples per block (1 ... 4096); NICAM: 32. Also the stage's latency.
    range_bits : int
        The word length of the finest scale (``bits`` ... ``bits + 23``); NICAM: 14.
    dither, amplitude, shaping
        As :class:`~rtq.stages.Requantize`'s, at the block's step.
    """

    kind = "blockcompand"
    schema = _BlockFields({
        "bits": Integer(*BITS_RANGE),
        "block": Integer(*BLOCK_RANGE).optional(32),
        "range_bits": Integer(*RANGE_BITS),
        "dither": DITHER.optional({"type": "tpdf", "amplitude": 1.0}),
        "shaping": Shaping().optional({"kind": "none"}),
    })
    is_quantizer = True

    def __init__(self, bits: int, block: int = 32, range_bits: int | None = None, dither: str | dict = "tpdf",
                 amplitude: float | None = None, shaping: str | dict | None = None, *, where=None):
        super().__init__(where)
        if amplitude is not None:
            dither = {"type": dither, "amplitude": amplitude}
        shaping = "none" if shaping is None else denormalised_shaping(shaping) if isinstance(shaping, dict) else shaping
        params = self.checked({"bits": bits, "block": block, "dither": dither, "shaping": shaping,
                               **({} if range_bits is None else {"range_bits": range_bits})})
        self.bits, self.block, self.range_bits = params["bits"], params["block"], params["range_bits"]
        self.dither = params["dither"]["type"]
        self.amplitude = params["dither"]["amplitude"]
        self.shaping = params["shaping"]

    @classmethod
    def from_params(cls, params, where):
        return cls(params["bits"], params["block"], params["range_bits"], params["dither"]["type"],
                   params["dither"]["amplitude"], params["shaping"], where=where)

    def arguments(self) -> dict:
        return {"bits": self.bits, "block": self.block, "range_bits": self.range_bits, "dither": self.dither,
                "amplitude": self.amplitude, "shaping": self.shaping}

    def _where_key(self, argument: str) -> str:
        return "dither" if argument == "amplitude" else argument

    def bits_range(self) -> tuple[int, int]:
        """The coarse word lengths this stage takes with its ``range_bits`` (the live
        controls keep within them)."""
        return max(BITS_RANGE[0], self.range_bits - kernel.MAX_SCALES + 1), min(BITS_RANGE[1], self.range_bits)

    def _error_shaper(self) -> Requantize:
        """The error filter comes from a requantize stage's rules (tables, coefficients,
        designed NTFs), at the rate this stage runs at."""
        return Requantize(self.range_bits, self.dither, self.amplitude, self.shaping, where=self.where)

    def error_filter(self, sample_rate: float, stream_rate: float = 0.0):
        return self._error_shaper().error_filter(sample_rate, stream_rate)

    def rate_limits(self, factor: int = 1) -> list:
        return self._error_shaper().rate_limits(factor)

    @property
    def latency(self) -> float:
        """One block: its scale is chosen once the block is complete."""
        return float(self.block)

    def steps(self):
        """The step of each scale, coarsest first."""
        return kernel.steps(self.bits, self.range_bits)

    def emit(self, builder, ctx):
        filt = self.error_filter(ctx.sample_rate, ctx.stream_rate)
        a, b = (filt.a, filt.b) if filt else ((), ())
        seeds = [stream_seed(ctx.seed, *ctx.path, builder.first_channel + c) for c in range(builder.channels)]
        index = builder.add_op(OP_BLOCKCOMPAND, ctx.level, rng_seeds=seeds,
                               **kernel.pack(self.bits, self.range_bits, self.block, self.dither, self.amplitude, a,
                                             b, builder.channels))
        counts_at = int(builder.rows[index][COL_I_OFF]) + 2     # after the block and ring positions
        return QuantizerInfo(ctx.path, self, self.range_bits, 0.0, self.dither, filt, ctx.sample_rate, index,
                             scales=(counts_at, tuple(self.steps())))

    def label(self) -> str:
        label = f"blockcompand {self.bits}-bit/{self.range_bits} block {self.block} {self.dither}"
        return label + ("" if self.shaping["kind"] == "none" else " shaped")

    def info_line(self, rate: float, stream_rate: float) -> str:
        scales = self.range_bits - self.bits + 1
        text = (f"block companding to {self.bits} bits in blocks of {self.block} samples ({scales} scale"
                f"{'s' * (scales != 1)}: steps 2^-{self.bits - 1} .. 2^-{self.range_bits - 1}, a {self.range_bits}-bit "
                f"range), ")
        text += "no dither" if self.dither == "none" else f"{self.dither} dither ({self.amplitude:g} LSB of the block's step)"
        shaping = self._error_shaper()._shaping_text(rate, stream_rate)
        return f"{text}, {shaping}; latency {self.block} samples"

    def output_grid(self) -> OutputGrid:
        """Every scale's step is a multiple of the finest: the ``range_bits`` grid."""
        return OutputGrid(self.range_bits)

