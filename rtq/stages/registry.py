"""The stage kinds by name, and building stages from validated preset specs."""
from __future__ import annotations

from ..errors import PresetError
from ..spec import StageSpec
from .base import Stage
from .gain import Gain
from .oversample import Oversample
from .quantize import Quantize
from .requantize import Requantize

KINDS: dict[str, type[Stage]] = {kind.kind: kind for kind in (Gain, Requantize, Quantize, Oversample)}
"""Every stage kind by the name presets give it, in the order help lists them."""


def stage_from_spec(spec: StageSpec) -> Stage:
    """Build the stage a validated preset spec describes (nested stages too)."""
    p = spec.params
    if spec.kind == "gain":
        return Gain(p["db"], where=spec.where)
    if spec.kind == "requantize":
        return Requantize(p["bits"], p["dither"]["type"], p["dither"]["amplitude"],
                          p["shaping"], where=spec.where)
    if spec.kind == "quantize":
        return Quantize(p["law"], p["bits"], where=spec.where)
    if spec.kind == "oversample":
        return Oversample(p["factor"], [stage_from_spec(s) for s in p["chain"]], p["phase"],
                          p["quality"], p["integer_latency"], where=spec.where)
    raise PresetError(f"{spec.location()}: stage '{spec.kind}' is not supported yet")
