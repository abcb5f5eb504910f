"""A chain: an ordered list of stages run as one compiled program (pedalboard style)."""
from __future__ import annotations

import os
from typing import Iterable

import numpy as np

from .presets import load_preset
from .processor import Processor
from .spec import MAX_SEED, PresetSpec, checked_integer
from .stages import Stage, stage_from_spec, walk
from .stages.limits import check_tree


class Chain(Processor):
    """Stages applied in order.

    Examples
    --------
    >>> chain = Chain([Gain(-0.1), Requantize(16, "tpdf", shaping="shibata")], seed=1)
    >>> y = chain(x, 44100)                      # whole signal, fresh state
    >>> chain.prepare(48000, 2, 256)             # or block by block (real-time safe)
    >>> chain.process(block)
    """

    def __init__(self, stages: Iterable[Stage], seed: int = 0, name: str = "", description: str = ""):
        super().__init__()
        self.stages = list(stages)
        for stage in self.stages:
            if not isinstance(stage, Stage):
                raise TypeError(f"a chain holds stages (Gain, Requantize, Quantize, Oversample from rtq.stages), "
                                f"got {stage!r}")
        check_tree(self.stages)
        self.seed = checked_integer(seed, "seed", 0, MAX_SEED)
        self.name = name
        self.description = description

    def _stages(self):
        return self.stages

    @property
    def latency(self) -> float:
        """Delay of the output, in samples at the stream rate (fractional for some
        oversamplers); :meth:`process` output is this late, ``chain(x, rate)`` and
        ``rtq render`` compensate it (rounded to the nearest sample:
        :attr:`latency_samples`)."""
        return sum(stage.latency for stage in self.stages)

    def net_gain(self) -> float:
        """Product of the stages' linear gains."""
        return float(np.prod([stage.net_gain() for stage in self.stages]))

    def quantizers(self) -> list[Stage]:
        """The requantize and quantize stages, in order, nested ones included."""
        return [place.stage for place in walk(self.stages) if place.stage.is_quantizer]

    @classmethod
    def from_spec(cls, spec: PresetSpec, seed: int | None = None) -> "Chain":
        """Build the chain a validated preset describes; ``seed`` overrides the preset's."""
        stages = [stage_from_spec(s) for s in spec.chain]
        chosen = seed if seed is not None else (spec.seed if spec.seed is not None else 0)
        return cls(stages, seed=chosen, name=spec.name, description=spec.description)

    @classmethod
    def from_preset(cls, source: str | os.PathLike, seed: int | None = None) -> "Chain":
        """Load a preset (a path or a shipped name) and build its chain."""
        return cls.from_spec(load_preset(source), seed)
