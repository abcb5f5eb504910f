"""Processing stages: one module per kind, and the registry of kinds.

A stage describes itself to a :class:`~rtq.program.ProgramBuilder` (``emit``); the
chain turns all stages into one flat program run by one compiled call.  Stages are also
processors on their own (``prepare`` / ``process`` / ``reset`` / ``latency``, like
JUCE's dsp processors), each then running a one-stage program.

A kind owns what is known about it, in its module: its parameters and their rules, its
construction, its ops (packed by its DSP module), its label and ``rtq info`` line, the
rates it can run at and the grid its output lies on.  To add one: write its module here
(a :class:`~rtq.stages.base.Stage` subclass) and list it in :data:`registry.KINDS`, its
kernel and packing in :mod:`rtq.dsp`, and its opcode with one branch in
:func:`rtq.program._execute`.
"""
from .base import OutputGrid, Place, Stage, walk
from .blockcompand import BlockCompand
from .gain import Gain
from .lowpass import Lowpass
from .oversample import Oversample
from .quantize import Quantize
from .rates import RateLimit, RateRange, format_rates, usable_rates
from .registry import KINDS, stage_from_spec
from .requantize import Requantize

__all__ = ["Stage", "Gain", "Requantize", "Quantize", "BlockCompand", "Oversample", "Lowpass", "KINDS", "stage_from_spec", "walk", "Place",
           "OutputGrid", "RateLimit", "RateRange", "usable_rates", "format_rates"]
