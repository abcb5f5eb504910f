"""Processing stages: gain, requantize (uniform N-bit grid) and quantize (G.711 laws).

A stage describes itself to a :class:`~rtq.program.ProgramBuilder` (``emit``); the
chain turns all stages into one flat program run by one compiled call.  Stages are also
processors on their own (``prepare`` / ``process`` / ``reset`` / ``latency``, like
JUCE's dsp processors), each then running a one-stage program.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .dsp import shaping
from .dsp.g711 import LAW_A, LAW_MU
from .dsp.ntf import design_ntf
from .dsp.oversample import design_oversampler
from .dsp.requantize import (DITHER_CODES, RESET_AFTER_OVERLOADS, HISTORY_SLACK, dither_peak_lsb, history_length,
                             kernel_coefficients, state_per_channel)
from .dsp.rng import stream_seed
from .errors import PresetError
from .processor import Processor
from .spec import BITS_RANGE, GAIN_DB_RANGE, MIN_BAND_HZ, NTF_ORDER_RANGE, STREAM_RATE_HZ, checked_integer, checked_number
from .program import (OP_COMPAND, OP_GAIN, OP_OVERSAMPLE_DOWN, OP_OVERSAMPLE_UP, OP_REQUANTIZE,
                      ProgramBuilder)


@dataclass
class EmitContext:
    """Where a stage is being placed: its rate, work level, dither-stream path, and
    whether quantizers get meter taps."""

    sample_rate: float
    level: int = 0
    seed: int = 0
    path: tuple[int, ...] = ()
    taps: bool = False
    stream_rate: float = 0.0        # the rate outside every oversample stage


@dataclass(frozen=True)
class RateRange:
    """Stream rates from ``low`` (excluded if ``low_open``) to ``high`` (included), in Hz."""

    low: float
    high: float = math.inf
    low_open: bool = False

    def __and__(self, other: "RateRange") -> "RateRange | None":
        if self.low != other.low:
            low, low_open = max((self.low, self.low_open), (other.low, other.low_open))
        else:
            low, low_open = self.low, self.low_open or other.low_open
        high = min(self.high, other.high)
        return RateRange(low, high, low_open) if low < high or (low == high and not low_open) else None

    def whole_rates(self) -> tuple[int, float]:
        """The first and last whole rates inside (the last may be ``inf``)."""
        first = math.floor(self.low) + 1 if self.low_open else math.ceil(self.low)
        return first, self.high if self.high == math.inf else math.floor(self.high)


# What no stage limits: the stream rates rtq runs at all (spec.STREAM_RATE_HZ).
ANY_RATE = (RateRange(float(STREAM_RATE_HZ[0]), float(STREAM_RATE_HZ[1])),)


@dataclass(frozen=True)
class RateLimit:
    """Stream rates one stage can run at (``ranges``), where it says so, and why."""

    where: str
    reason: str
    ranges: tuple[RateRange, ...]


def _merged(ranges) -> tuple[RateRange, ...]:
    merged: list[RateRange] = []
    for r in sorted(ranges, key=lambda r: (r.low, r.low_open)):
        if merged and r.low <= merged[-1].high:
            last = merged[-1]
            merged[-1] = RateRange(last.low, max(last.high, r.high), last.low_open)
        else:
            merged.append(r)
    return tuple(merged)


def usable_rates(stages) -> tuple[tuple[RateRange, ...], list[RateLimit]]:
    """The stream rates at which every one of ``stages`` can be prepared (merged ranges;
    :data:`ANY_RATE` when nothing limits them; empty when no rate can), and the limits
    that set them."""
    limits = [limit for stage in stages for limit in stage.rate_limits()]
    ranges = ANY_RATE
    for limit in limits:
        ranges = _merged(both for a in ranges for b in limit.ranges if (both := a & b) is not None)
    return ranges, limits


def format_rates(ranges) -> str:
    """The whole rates inside ``ranges``: ``41895-50400 Hz``, ``above 60000 Hz``, joined
    by commas (``no whole rate`` when none is)."""
    parts = []
    for r in ranges:
        first, last = r.whole_rates()
        if last == math.inf:
            parts.append(f"above {r.low:.12g} Hz" if r.low_open else f"from {first} Hz")
        elif first <= last:
            parts.append(f"{first}-{last} Hz" if first < last else f"{first} Hz")
    return ", ".join(parts) or "no whole rate"


def emit_stages(stages, builder: ProgramBuilder, ctx: EmitContext) -> None:
    """Emit ``stages`` in order; with ``ctx.taps``, tap each quantizer's input and output."""
    for index, stage in enumerate(stages):
        here = replace(ctx, path=ctx.path + (index,))
        tap_in = builder.add_tap(ctx.level) if ctx.taps and stage.is_quantizer else None
        stage.emit(builder, here)
        if tap_in is not None:
            stage.info.taps = (tap_in, builder.add_tap(ctx.level))


class Stage(Processor):
    """Base class: one element of a chain."""

    kind = ""
    is_quantizer = False

    def __init__(self, where: dict[str, str] | None = None):
        super().__init__()
        self.where = where or {}

    def _stages(self):
        return [self]

    def emit(self, builder: ProgramBuilder, ctx: EmitContext) -> None:
        raise NotImplementedError

    @property
    def latency(self) -> float:
        """Delay the stage adds, in samples at the rate it runs at."""
        return 0.0

    def net_gain(self) -> float:
        """Linear gain the stage applies to the signal (quantizers: 1)."""
        return 1.0

    def describe(self) -> dict[str, Any]:
        """The stage's resolved parameters as plain data."""
        raise NotImplementedError

    def rate_limits(self, factor: int = 1) -> list[RateLimit]:
        """What limits the stream rate this stage can run at, when it runs at ``factor``
        times the stream rate (empty: any rate)."""
        return []

    def _location(self, key: str) -> str:
        return self.where.get(key) or self.where.get("", "<chain>")


class Gain(Stage):
    """Multiply by ``10^(db/20)``."""

    kind = "gain"

    def __init__(self, db: float = 0.0, *, where=None):
        super().__init__(where)
        self.db = checked_number(db, "gain.db", *GAIN_DB_RANGE)

    def emit(self, builder, ctx):
        builder.add_op(OP_GAIN, ctx.level, params=[self.net_gain()])

    def net_gain(self) -> float:
        return 10.0 ** (self.db / 20.0)

    def describe(self):
        return {"db": self.db}


@dataclass
class QuantizerInfo:
    """What the meter needs to know about a quantizer once it is prepared."""

    bits: int
    step: float
    dither: str
    error_filter: shaping.ErrorFilter | None
    sample_rate: float
    op_index: int = field(default=-1)
    taps: tuple | None = None       # (input Tap, output Tap) when prepared with taps


class Requantize(Stage):
    """Requantize to ``bits`` (1...32) with dither and optional error-feedback shaping.

    Parameters
    ----------
    bits : int
        Output word length; 1 is the two-level +-1 sign quantizer.
    dither : str
        ``none``, ``rpdf`` (1 LSB p-p), ``tpdf`` (2 LSB p-p), ``tpdf-hp``, ``gaussian``
        (sigma 0.5 LSB); scaled by ``amplitude``.
    shaping : str or dict or None
        A table family name (:data:`rtq.dsp.shaping.TABLE_NAMES`), ``{"coefficients":
        [...]}`` for a custom FIR error filter, ``{"order": K, "band_hz": B}`` for an NTF
        designed at prepare time (:func:`rtq.dsp.ntf.design_ntf`; ``band_hz`` optional),
        or None.
    """

    kind = "requantize"
    is_quantizer = True

    def __init__(self, bits: int = 16, dither: str = "tpdf", amplitude: float = 1.0,
                 shaping: str | dict | None = None, *, where=None):
        super().__init__(where)
        self.bits = checked_integer(bits, "requantize.bits", *BITS_RANGE)
        if dither not in DITHER_CODES:
            raise ValueError(f"requantize.dither must be one of {', '.join(DITHER_CODES)}, got {dither!r}")
        self.dither = dither
        self.amplitude = checked_number(amplitude, "requantize.dither.amplitude", 0.0)
        self.shaping = _normalise_shaping(shaping)
        self.info: QuantizerInfo | None = None

    def error_filter(self, sample_rate: float, stream_rate: float = 0.0) -> shaping.ErrorFilter | None:
        """The error-feedback filter used at ``sample_rate`` (None for no shaping).

        ``stream_rate`` (default: ``sample_rate``) sets the default band of a designed
        NTF (``{"kind": "design"}``) when the stage runs oversampled."""
        kind = self.shaping["kind"]
        if kind == "none":
            return None
        if kind == "fir":
            return shaping.ErrorFilter(tuple(self.shaping["coefficients"]))
        if kind == "design":
            try:
                design = design_ntf(self.shaping["order"], sample_rate, self.shaping.get("band_hz"),
                                    stream_rate=stream_rate or sample_rate)
            except ValueError as err:
                raise PresetError(f"{self._location('shaping')}: {err}") from None
            A, B = design.error_feedback()
            return shaping.ErrorFilter(tuple(A), tuple(B))
        if kind == "table":
            name = self.shaping["name"]
            filt = shaping.select_table(name, sample_rate)
            if filt is None:
                raise PresetError(
                    f"{self._location('shaping')}: shaping '{name}' has no table for "
                    f"{sample_rate:g} Hz; it supports {shaping.rates_text(name)}")
            return filt
        raise PresetError(f"{self._location('shaping')}: shaping kind '{kind}' is not available")

    def rate_limits(self, factor: int = 1) -> list[RateLimit]:
        kind, where = self.shaping["kind"], self._location("shaping")
        if kind == "table" and shaping.supported_rates(self.shaping["name"]):
            name, tol = self.shaping["name"], shaping.RATE_TOLERANCE
            ranges = tuple(RateRange(r * (1 - tol) / factor, r * (1 + tol) / factor)
                           for r in shaping.supported_rates(name))
            reason = f"shaping '{name}' has tables for {shaping.rates_text(name)}"
        elif kind == "design" and self.shaping.get("band_hz") is not None:
            band = self.shaping["band_hz"]
            ranges = (RateRange(2 * band / factor, math.inf, True),)
            reason = f"band_hz {band:g} needs the stage to run above {2 * band:g} Hz"
        else:
            return []
        if factor > 1:
            reason += f" (it runs at x{factor}: stream rates {format_rates(ranges)})"
        return [RateLimit(where, reason, ranges)]

    def emit(self, builder, ctx):
        filt = self.error_filter(ctx.sample_rate, ctx.stream_rate)
        a, b = kernel_coefficients(filt.a if filt else (), filt.b if filt else ())
        if self.bits == 1:
            step, off, lo, hi = 2.0, 0.5, -0.5, 0.5
        else:
            step = 2.0 ** (1 - self.bits)
            off, lo, hi = 0.0, -(2.0 ** (self.bits - 1)), 2.0 ** (self.bits - 1) - 1
        kind = DITHER_CODES[self.dither]
        ebound = 0.5 + dither_peak_lsb(kind, self.amplitude)
        # A designed NTF drives sigma-delta loops: a run of overloads means the loop has
        # gone unstable, and it is reset (PCM tables only clip with the input: no reset).
        reset_after = RESET_AFTER_OVERLOADS if self.shaping["kind"] == "design" else 0
        grid = [step, 1.0 / step, off, lo, hi, ebound, reset_after]
        seeds = [stream_seed(ctx.seed, *ctx.path, builder.first_channel + c) for c in range(builder.channels)]
        keep = history_length(a.size) - HISTORY_SLACK
        index = builder.add_op(
            OP_REQUANTIZE, ctx.level,
            params=np.concatenate([grid, [self.amplitude], a, b]),
            state_per_channel=state_per_channel(a.size, b.size), istate=(keep, 0),
            rng_seeds=seeds, args=(a.size, b.size, kind))
        self.info = QuantizerInfo(self.bits, step, self.dither, filt, ctx.sample_rate, index)

    def describe(self):
        return {"bits": self.bits, "dither": {"type": self.dither, "amplitude": self.amplitude},
                "shaping": dict(self.shaping)}


def _normalise_shaping(shaping_param) -> dict:
    if shaping_param is None or shaping_param == "none":
        return {"kind": "none"}
    if isinstance(shaping_param, str):
        if shaping_param not in shaping.TABLES:
            raise ValueError(f"unknown shaping {shaping_param!r}; choose from {', '.join(shaping.TABLE_NAMES)}")
        return {"kind": "table", "name": shaping_param}
    if "kind" in shaping_param:   # the normalised form (what a stage holds): checked the same way
        kind, fields = shaping_param["kind"], set(shaping_param) - {"kind"}
        if kind == "none" and not fields:
            return {"kind": "none"}
        if kind == "table" and fields == {"name"}:
            return _normalise_shaping(shaping_param["name"])
        if kind == "fir" and fields == {"coefficients"}:
            return _normalise_shaping({"coefficients": shaping_param["coefficients"]})
        if kind == "design" and fields <= {"order", "band_hz"}:
            return _normalise_shaping({key: shaping_param[key] for key in fields})
    if set(shaping_param) == {"coefficients"}:
        return {"kind": "fir", "coefficients": tuple(checked_number(c, "shaping.coefficients[]")
                                                     for c in shaping_param["coefficients"])}
    if "order" in shaping_param and set(shaping_param) <= {"order", "band_hz"}:
        band = shaping_param.get("band_hz")
        return {"kind": "design", "order": checked_integer(shaping_param["order"], "shaping.order", *NTF_ORDER_RANGE),
                "band_hz": None if band is None else checked_number(band, "shaping.band_hz", MIN_BAND_HZ)}
    raise ValueError(f"bad shaping {shaping_param!r}: a table name, {{'coefficients': [...]}} or "
                     "{'order': K, 'band_hz': B}")


class Quantize(Stage):
    """8-bit G.711 companding (``law`` = ``mu-law`` or ``a-law``), via the 16-bit grid."""

    kind = "quantize"
    is_quantizer = True
    LAWS = {"mu-law": LAW_MU, "a-law": LAW_A}

    def __init__(self, law: str = "mu-law", bits: int = 8, *, where=None):
        super().__init__(where)
        if law not in self.LAWS or bits != 8:
            raise ValueError("quantize supports law mu-law or a-law with bits 8")
        self.law = law
        self.bits = bits
        self.info: QuantizerInfo | None = None

    def emit(self, builder, ctx):
        index = builder.add_op(OP_COMPAND, ctx.level, args=(self.LAWS[self.law],))
        self.info = QuantizerInfo(8, 2.0 ** -15, "none", None, ctx.sample_rate, index)

    def describe(self):
        return {"law": self.law, "bits": self.bits}


class Oversample(Stage):
    """Run ``stages`` at ``factor`` times the rate: cascaded half-band up-sampling, the
    inner chain, then down-sampling (:mod:`rtq.dsp.oversample`).

    Parameters
    ----------
    factor : int
        2, 4, 8, 16, 32 or 64.
    phase : str
        ``linear`` (FIR, exact latency) or ``minimum`` (IIR, lowest latency).
    quality : str
        ``draft``, ``normal`` or ``high`` (declared ripple and rejection).
    integer_latency : bool
        Pad the latency to a whole number of stream samples.
    """

    kind = "oversample"

    def __init__(self, factor: int, stages, phase: str = "linear", quality: str = "high",
                 integer_latency: bool = False, *, where=None):
        super().__init__(where)
        self.factor = int(factor)
        self.stages = list(stages)
        self.phase = phase
        self.quality = quality
        self.integer_latency = bool(integer_latency)
        self.design = design_oversampler(self.factor, phase, quality, self.integer_latency)

    @property
    def latency(self) -> float:
        """The up and down filters' delay plus the inner stages', in stream samples."""
        return self.design.latency + sum(s.latency for s in self.stages) / self.factor

    def net_gain(self) -> float:
        return float(np.prod([s.net_gain() for s in self.stages]))

    def rate_limits(self, factor: int = 1) -> list[RateLimit]:
        return [limit for s in self.stages for limit in s.rate_limits(factor * self.factor)]

    def quantizers(self) -> list[Stage]:
        """The quantizers of the inner chain, nested ones included."""
        from .chain import Chain

        return Chain(self.stages).quantizers()

    def emit(self, builder, ctx):
        inner = builder.add_level(builder.levels[ctx.level] * self.factor)
        coeffs = self.design.coeffs
        words = self.design.state_size(builder.channels)
        up = builder.add_op(OP_OVERSAMPLE_UP, ctx.level, params=coeffs, state_words=words,
                            args=(inner, coeffs.size, words))
        emit_stages(self.stages, builder, replace(ctx, level=inner,
                                                  sample_rate=ctx.sample_rate * self.factor))
        builder.add_op(OP_OVERSAMPLE_DOWN, inner, args=(ctx.level, up))

    def describe(self):
        return {"factor": self.factor, "phase": self.phase, "quality": self.quality,
                "integer_latency": self.integer_latency, "latency": self.latency,
                "chain": [{s.kind: s.describe()} for s in self.stages]}
