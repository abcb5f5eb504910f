"""The stage kinds by name, and building stages from validated preset specs."""
from __future__ import annotations

from ..schema import Stages
from ..spec import StageSpec
from .base import Stage
from .blockcompand import BlockCompand
from .gain import Gain
from .lowpass import Lowpass
from .oversample import Oversample
from .quantize import Quantize
from .requantize import Requantize

KINDS: dict[str, type[Stage]] = {kind.kind: kind for kind in (Gain, Requantize, Quantize, BlockCompand, Lowpass, Oversample)}
"""Every stage kind by the name presets give it, in the order help lists them."""


def stage_from_spec(spec: StageSpec) -> Stage:
    """Build the stage a validated preset spec describes (nested stages too)."""
    kind = KINDS[spec.kind]
    params = {key: tuple(map(stage_from_spec, value)) if isinstance(kind.schema.fields[key], Stages) else value
              for key, value in spec.params.items()}
    return kind.from_params(params, spec.where)
