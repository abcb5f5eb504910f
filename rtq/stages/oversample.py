"""``oversample``: run an inner chain at ``factor`` times the rate, between cascaded
half-band up- and down-samplers (designed by :mod:`rtq.dsp.oversample_design`, run by
:mod:`rtq.dsp.oversample`)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..dsp import oversample as kernel
from ..dsp.oversample_design import FACTORS, PHASES, QUALITIES, design_oversampler
from ..processor import emit_stages
from ..program import OP_OVERSAMPLE_DOWN, OP_OVERSAMPLE_UP
from ..schema import Boolean, Choice, Fields, Stages
from .base import Stage
from .limits import check_tree


class Oversample(Stage):
    """Run ``stages`` at ``factor`` times the rate: cascaded half-band up-sampling, the
    inner chain, then down-sampling (:mod:`rtq.dsp.oversample`).

    Parameters
    ----------
    factor : int
        2, 4, 8, 16, 32 or 64 (nested stages multiply, up to
        :data:`~rtq.stages.limits.MAX_OVERSAMPLING` in all).
    stages : list of Stage
        The inner chain (at least one stage; ``[Gain(0)]`` for the filters alone).
    phase : str
        ``linear`` (FIR, exact latency) or ``minimum`` (IIR, lowest latency).
    quality : str
        ``draft``, ``normal`` or ``high`` (declared ripple and rejection).
    integer_latency : bool
        Pad the latency to a whole number of stream samples.
    """

    kind = "oversample"
    schema = Fields({
        "factor": Choice(FACTORS),
        "phase": Choice(PHASES).optional("linear"),
        "quality": Choice(tuple(QUALITIES)).optional("high"),
        "integer_latency": Boolean().optional(False),
        "chain": Stages(),
    })

    def __init__(self, factor: int, stages, phase: str = "linear", quality: str = "high",
                 integer_latency: bool = False, *, where=None):
        super().__init__(where)
        if not isinstance(stages, (list, tuple, str, bytes, dict)) and hasattr(stages, "__iter__"):
            stages = list(stages)
        params = self.checked({"factor": factor, "chain": stages, "phase": phase, "quality": quality,
                               "integer_latency": integer_latency})
        self.factor = params["factor"]
        self.stages = list(params["chain"])
        self.phase = params["phase"]
        self.quality = params["quality"]
        self.integer_latency = params["integer_latency"]
        check_tree([self])
        self.design = design_oversampler(self.factor, self.phase, self.quality, self.integer_latency)

    @classmethod
    def from_params(cls, params, where):
        return cls(params["factor"], params["chain"], params["phase"], params["quality"], params["integer_latency"],
                   where=where)

    def arguments(self) -> dict:
        return {"factor": self.factor, "stages": self.stages, "phase": self.phase, "quality": self.quality,
                "integer_latency": self.integer_latency}

    def _where_key(self, argument: str) -> str:
        return "chain" if argument == "stages" else argument

    @property
    def rate_factor(self) -> int:
        return self.factor

    def children(self) -> list[Stage]:
        return self.stages

    @property
    def latency(self) -> float:
        """The up and down filters' delay plus the inner stages', in stream samples."""
        return self.design.latency + sum(s.latency for s in self.stages) / self.factor

    def net_gain(self) -> float:
        return float(np.prod([s.net_gain() for s in self.stages]))

    def emit(self, builder, ctx):
        inner = builder.add_level(builder.levels[ctx.level] * self.factor)
        up = builder.add_op(OP_OVERSAMPLE_UP, ctx.level, **kernel.pack(self.design, builder.channels, inner))
        emit_stages(self.stages, builder, replace(ctx, level=inner, sample_rate=ctx.sample_rate * self.factor))
        builder.add_op(OP_OVERSAMPLE_DOWN, inner, args=(ctx.level, up))

    def info_line(self, rate: float, stream_rate: float) -> str:
        return (f"oversample x{self.factor}, {self.phase} phase, {self.quality} quality, "
                f"latency {self.design.latency:.4g} samples")
