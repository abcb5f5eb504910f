"""``quantize``: a fixed non-uniform law: G.711 companding (mu-law or A-law, 8 bits, via
the 16-bit grid), or Lloyd-Max levels (given, or trained by ``rtq train``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..dsp import g711
from ..dsp import levels as levels_kernel
from ..errors import PresetError
from ..levels_file import LEVELS_BITS, Levels, LevelSets, bits_for, read_levels, resolve
from ..program import OP_COMPAND, OP_LEVELS
from ..processor import QuantizerInfo
from ..schema import INVALID, Choice, Fields, Integer, Rule, Text
from .base import OutputGrid, Stage

LLOYD_MAX = "lloyd-max"
LAWS = (*g711.LAWS, LLOYD_MAX)


@dataclass(frozen=True)
class Trained(Rule):
    """A levels file written by ``rtq train`` (a path, relative to the preset that names
    it), read and checked here: normalised to its :class:`~rtq.levels_file.Levels`."""

    default: Any = None

    def check(self, value, path, checker):
        if isinstance(value, Levels):       # what a stage holds
            return value
        if Text().check(value, path, checker) is INVALID:
            return INVALID
        try:
            return read_levels(resolve(value, getattr(checker, "filename", None)), value)
        except PresetError as err:
            return checker.add(path, "{name}: " + str(err).splitlines()[0])

    def to_data(self, value):
        return value.path


@dataclass(frozen=True)
class _QuantizeFields(Fields):
    """The fields, then what depends on the law: G.711 is 8 bits and nothing else;
    lloyd-max takes ``levels``, or ``bits`` with ``trained`` (2^bits levels)."""

    def check(self, value, path, checker):
        result = super().check(value, path, checker)
        if result is INVALID or not isinstance(value, dict):
            return result
        if result["law"] != LLOYD_MAX:
            for key in ("levels", "trained"):
                if key in value:
                    return checker.add(path + (key,), f"{{name}} applies only to law {LLOYD_MAX}", at="key")
            if result["bits"] is not None and Choice((8,)).check(result["bits"], path + ("bits",), checker) is INVALID:
                return INVALID
            return {"law": result["law"], "bits": 8}
        given = [key for key in ("levels", "trained") if result[key] is not None]
        if len(given) != 1:
            return checker.add(path, f"{{name}} with law {LLOYD_MAX} needs 'levels' (a sorted list) or 'bits' "
                                     "and 'trained' (a levels file from rtq train)"
                               if not given else "{name} takes 'levels' or 'trained', not both")
        sets = result["levels"] if result["levels"] is not None else result["trained"].sets
        bits = result["bits"]
        if result["trained"] is not None:
            if bits is None:
                return checker.add(path, "{name} is missing required key 'bits' (the trained levels' word length)",
                                   at="missing")
            if bits != result["trained"].bits:
                return checker.add(path + ("bits",), f"{{name}} must be the trained file's ({result['trained'].bits})",
                                   bits)
        elif bits is not None and len(sets[0]) != 2 ** bits:
            return checker.add(path + ("levels",), f"{{name}} must hold 2^bits = {2 ** bits} levels, "
                                                   f"got {len(sets[0])}", at="key")
        return {key: item for key, item in result.items() if item is not None}   # the keys that apply


class Quantize(Stage):
    """A fixed non-uniform quantizer.

    Parameters
    ----------
    law : str
        ``mu-law`` or ``a-law`` (ITU-T G.711, 8 bits, via the 16-bit grid), or
        ``lloyd-max``: each sample becomes the nearest of ``levels`` (thresholds at the
        midpoints: :mod:`rtq.dsp.levels`), no dither.
    bits : int, optional
        8 for G.711; for lloyd-max the trained file's word length (2^bits levels).
    levels : sequence of float, or a sequence of them (one per channel), optional
        Lloyd-Max levels: sorted, distinct, within full scale, 2 to 65536.
    trained : str, optional
        A levels file written by ``rtq train`` (relative to the preset naming it).
    """

    kind = "quantize"
    schema = _QuantizeFields({
        "law": Choice(LAWS),
        "bits": Integer(*LEVELS_BITS).optional(None),
        "levels": LevelSets().optional(None),
        "trained": Trained().optional(None),
    })
    is_quantizer = True

    def __init__(self, law: str = "mu-law", bits: int | None = None, levels=None, trained=None, *, where=None):
        super().__init__(where)
        params = self.checked({"law": law, **{key: value for key, value in
                                              (("bits", bits), ("levels", levels), ("trained", trained))
                                              if value is not None}})
        self.law = params["law"]
        self.levels = params.get("levels")
        self.trained = params.get("trained")
        sets = self.level_sets()
        self.bits = params.get("bits") or bits_for(len(sets[0]))

    @classmethod
    def from_params(cls, params, where):
        return cls(**params, where=where)

    def arguments(self) -> dict:
        return {"law": self.law, "bits": self.bits, "levels": self.levels, "trained": self.trained}

    def level_sets(self) -> tuple[tuple[float, ...], ...] | None:
        """Lloyd-Max levels: one set for every channel, or one per channel; None for G.711."""
        if self.law != LLOYD_MAX:
            return None
        return self.levels if self.levels is not None else self.trained.sets

    def emit(self, builder, ctx):
        sets = self.level_sets()
        if sets is None:
            index = builder.add_op(OP_COMPAND, ctx.level, **g711.pack(self.law))
            return QuantizerInfo(ctx.path, self, 8, 2.0 ** -15, "none", None, ctx.sample_rate, index)
        if len(sets) > 1 and len(sets) != builder.channels:
            key = "trained" if self.trained is not None else "levels"
            raise PresetError(f"{self.location(key)}: {len(sets)} sets of levels (one per channel) for a stream of "
                              f"{builder.channels} channel{'s' * (builder.channels != 1)}")
        first = builder.first_channel
        used = sets if len(sets) == 1 else sets[first:first + builder.channels]
        index = builder.add_op(OP_LEVELS, ctx.level, **levels_kernel.pack(used))
        return QuantizerInfo(ctx.path, self, self.bits, 0.0, "none", None, ctx.sample_rate, index,
                             levels=tuple(used))

    def label(self) -> str:
        if self.law == LLOYD_MAX:
            return f"quantize lloyd-max {len(self.level_sets()[0])} levels"
        return f"quantize {self.law} {self.bits}-bit"

    def info_line(self, rate: float, stream_rate: float) -> str:
        sets = self.level_sets()
        if sets is None:
            return f"quantize {self.law}, {self.bits} bits (G.711)"
        count = len(sets[0])
        source = f" from {self.trained.path}" if self.trained is not None else ""
        per = f", one set per channel ({len(sets)})" if len(sets) > 1 else ""
        span = ", ".join(f"{min(s):.4g} .. {max(s):.4g}" for s in sets[:2]) + (" ..." if len(sets) > 2 else "")
        return f"quantize lloyd-max, {count} levels ({self.bits} bits{per}){source}, no dither; levels {span}"

    def output_grid(self) -> OutputGrid | None:
        """The law's codes, which are values of the 16-bit grid; Lloyd-Max levels lie
        on no grid (files hold them as float)."""
        return None if self.law == LLOYD_MAX else OutputGrid(16, self.law)
