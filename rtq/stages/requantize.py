"""``requantize``: a uniform N-bit grid with dither and error-feedback noise shaping."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from typing import Any

from ..dsp import overload
from ..dsp import requantize as kernel
from ..dsp import shaping
from ..dsp.ntf import MAX_ORDER, default_band_hz, design_ntf
from ..dsp.rng import stream_seed
from ..dsp.stability import maximum_stable_amplitude
from ..errors import PresetError
from ..processor import QuantizerInfo
from ..program import COL_I_OFF, OP_OVERLOAD, OP_REQUANTIZE, OP_REQUANTIZE_GUARDED
from ..schema import INVALID, Boolean, Choice, Fields, Integer, ListOf, Number, Rule
from .base import OutputGrid, Stage
from .rates import RateLimit, RateRange, format_rates

BITS_RANGE = (1, 32)
MAX_AUTO_BLANK_S = 3600.0
# Passthrough turns on after this many samples in a row on the grid (and from the
# start): 32, as SoX's dither -a (a hi-res signal lands 32 times in a row on a 16-bit
# grid with probability 2^-256; silence and truly 16-bit material at once).
PASSTHROUGH_RUN = 32
# The limit leaves at least this much of full scale below its knee (beyond: refused).
MIN_KNEE = 0.5
MAX_FIR_TAPS = 64
MIN_BAND_HZ = 1.0
_SHAPING_FIELDS = Fields({
    "coefficients": ListOf(Number(), 1, MAX_FIR_TAPS).optional(None),
    "order": Integer(1, MAX_ORDER).optional(None),
    "band_hz": Number(MIN_BAND_HZ).optional(None),
})


@dataclass(frozen=True)
class Shaping(Rule):
    """Noise shaping: a name (``none`` or a table family, :data:`rtq.dsp.shaping.SHAPING_NAMES`),
    ``{coefficients: [...]}`` (an FIR error filter of 1 to :data:`MAX_FIR_TAPS` taps) or
    ``{order: K, band_hz: B}`` (an NTF designed at prepare time, ``band_hz`` optional).
    Normalised to ``{"kind": "none" | "table" | "fir" | "design", ...}``."""

    default: Any = None

    def check(self, value, path, checker):
        if not isinstance(value, dict):
            name = Choice(shaping.SHAPING_NAMES).check(value, path, checker)
            if name is INVALID:
                return INVALID
            return {"kind": "none"} if name == "none" else {"kind": "table", "name": name}
        values = _SHAPING_FIELDS.check(value, path, checker)
        if "coefficients" in value and "order" in value:
            return checker.add(path, "{name} takes 'coefficients' or 'order', not both")
        if "coefficients" in value:
            if "band_hz" in value:
                return checker.add(path + ("band_hz",), "{name} applies only to a designed filter ('order')",
                                   at="key")
            return INVALID if values is INVALID else {"kind": "fir", "coefficients": values["coefficients"]}
        if "order" in value:
            return INVALID if values is INVALID else {"kind": "design", "order": values["order"],
                                                      "band_hz": values["band_hz"]}
        return checker.add(path, "{name} needs 'coefficients' (an FIR filter) or 'order' (a designed filter)")

    def to_data(self, value):
        kind = value["kind"]
        if kind == "none":
            return "none"
        if kind == "table":
            return value["name"]
        if kind == "fir":
            return {"coefficients": list(value["coefficients"])}
        band = {} if value["band_hz"] is None else {"band_hz": value["band_hz"]}
        return {"order": value["order"], **band}


DITHER = Fields({"type": Choice(kernel.DITHER_TYPES).optional("tpdf"), "amplitude": Number(0).optional(1.0)},
                 short="type")
"""The ``dither`` parameter: a type name, or ``{type, amplitude}`` (requantize, blockcompand)."""


_FEATURES = {"auto_blank": 0.0, "passthrough_exact": False, "limit": False}


@dataclass(frozen=True)
class _RequantizeFields(Fields):
    """The fields; the mastering features only where they are on, so a preset without
    them reads as it always did."""

    def check(self, value, path, checker):
        result = super().check(value, path, checker)
        if result is INVALID:
            return result
        return {key: item for key, item in result.items() if _FEATURES.get(key, object()) != item}


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
    auto_blank : float
        Seconds (0: off, the default; at most 3600): after that long of exact zeros on a
        channel its output is exact zeros (no dither hiss between tracks); dither comes
        back at the first non-zero sample, the error filter's state cleared there.  Off
        by default: a chain must add the noise it was asked to, and a listening test's
        conditions must not change character in quiet passages.
    passthrough_exact : bool
        Input on the output grid (for :data:`PASSTHROUGH_RUN` samples in a row, and from
        the start) passes bit-exactly, as SoX's ``dither`` does by default.  Off by
        default: an input that lies on the grid only by chance (silence, a generated
        test signal) would lose its dither, and with it the error's independence from
        the signal, exactly where a measurement or listening test looks; ``rtq render
        --bits auto`` refuses such a file instead.
    limit : bool
        A soft limit (no look-ahead: ``knee + (ceiling - knee) tanh((|x| - knee) /
        (ceiling - knee))`` in LSB, continuous slope) into a ceiling that no dither value
        and no error-filter output can round past, so full-scale program never clips
        (:meth:`limit_range`; about the last 0.05 dB with Shibata shaping at 16 bits,
        0.08 dB with high-Shibata); the samples it kept from clipping are counted.  Cost:
        one comparison per sample below the knee.
    """

    kind = "requantize"
    schema = _RequantizeFields({
        "bits": Integer(*BITS_RANGE),
        "dither": DITHER.optional({"type": "tpdf", "amplitude": 1.0}),
        "shaping": Shaping().optional({"kind": "none"}),
        "auto_blank": Number(0.0, MAX_AUTO_BLANK_S).optional(0.0),
        "passthrough_exact": Boolean().optional(False),
        "limit": Boolean().optional(False),
    })
    is_quantizer = True

    def __init__(self, bits: int = 16, dither: str | dict = "tpdf", amplitude: float | None = None,
                 shaping: str | dict | None = None, *, auto_blank: float = 0.0, passthrough_exact: bool = False,
                 limit: bool = False, where=None):
        super().__init__(where)
        if amplitude is not None and not (isinstance(dither, str) and type(amplitude) in (int, float)
                                          and amplitude == 1.0):   # at the default: the short form
            dither = {"type": dither, "amplitude": amplitude}
        if shaping is None:
            shaping = "none"
        elif isinstance(shaping, dict) and "kind" in shaping:   # the normalised form a stage holds
            shaping = denormalised_shaping(shaping)
        params = self.checked({"bits": bits, "dither": dither, "shaping": shaping, "auto_blank": auto_blank,
                               "passthrough_exact": passthrough_exact, "limit": limit})
        self.bits = params["bits"]
        self.dither = params["dither"]["type"]
        self.amplitude = params["dither"]["amplitude"]
        self.shaping = params["shaping"]
        features = {**_FEATURES, **params}
        self.auto_blank = features["auto_blank"]
        self.passthrough_exact = features["passthrough_exact"]
        self.limit = features["limit"]

    @classmethod
    def from_params(cls, params, where):
        return cls(params["bits"], params["dither"]["type"], params["dither"]["amplitude"], params["shaping"],
                   **{key: params.get(key, default) for key, default in _FEATURES.items()}, where=where)

    def arguments(self) -> dict:
        return {"bits": self.bits, "dither": self.dither, "amplitude": self.amplitude, "shaping": self.shaping,
                "auto_blank": self.auto_blank, "passthrough_exact": self.passthrough_exact, "limit": self.limit}

    def bits_range(self) -> tuple[int, int]:
        """The word lengths this stage takes (the live controls keep within them)."""
        return BITS_RANGE

    @property
    def guarded(self) -> bool:
        """Auto-blank, passthrough or the limit is on (the guarded kernel variant runs)."""
        return bool(self.auto_blank or self.passthrough_exact or self.limit)

    def limit_range(self, error_filter) -> tuple[float, float]:
        """The limit's knee and ceiling in LSB: the ceiling is the largest input no dither
        value and no filter output can round past the top code (``hi + 1/2`` less the
        dither's peak and the filter output's bound: the L1 norm of its response to the
        error times the error's bound); the knee lies as far below it as it lies below
        full scale, so full scale maps to 0.96 of the way from knee to ceiling.  A
        PresetError where the knee would fall under half of full scale."""
        step, off, lo, hi = kernel.grid_of(self.bits)
        peak = kernel.dither_peak_lsb(kernel.DITHER_CODES[self.dither], self.amplitude)
        bound = _response_l1(error_filter) * (0.5 + peak) if error_filter else 0.0
        full = hi + 1.0
        ceiling = hi + 0.5 - peak - bound - 1e-6
        knee = 2.0 * ceiling - full
        if self.bits < 2 or knee < MIN_KNEE * full:
            raise PresetError(f"{self.location('limit')}: the limit needs {full - knee:.3g} LSB of headroom at "
                              f"{self.bits} bits with this dither and shaping (the shaped noise can reach "
                              f"{peak + bound:.3g} LSB), more than half of full scale")
        return knee, ceiling

    def guard(self, sample_rate: float, error_filter) -> tuple[float, float, float, float] | None:
        """The kernel's guard (:func:`rtq.dsp.requantize.pack`) at ``sample_rate``, or None."""
        if not self.guarded:
            return None
        knee, ceiling = self.limit_range(error_filter) if self.limit else (math.inf, math.inf)
        blank = max(1, round(self.auto_blank * sample_rate)) if self.auto_blank else 0
        return float(blank), float(PASSTHROUGH_RUN if self.passthrough_exact else 0), knee, ceiling

    def _where_key(self, argument: str) -> str:
        return "dither" if argument == "amplitude" else argument

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
                design = design_ntf(self.shaping["order"], sample_rate, self.design_band_hz(stream_rate or sample_rate))
            except ValueError as err:
                raise PresetError(f"{self.location('shaping')}: {err}") from None
            A, B = design.error_feedback()
            return shaping.ErrorFilter(tuple(A), tuple(B))
        if kind == "table":
            name = self.shaping["name"]
            filt = shaping.select_table(name, sample_rate)
            if filt is None:
                raise PresetError(
                    f"{self.location('shaping')}: shaping '{name}' has no table for "
                    f"{sample_rate:g} Hz; it supports {shaping.rates_text(name)}")
            return filt
        raise PresetError(f"{self.location('shaping')}: shaping kind '{kind}' is not available")

    def stable_amplitude(self, sample_rate: float, stream_rate: float = 0.0, error_filter=None) -> float | None:
        """A designed-NTF (sigma-delta) loop's maximum stable amplitude at ``sample_rate``
        (peak, re full scale; :mod:`rtq.dsp.stability`), None for other shaping.
        ``error_filter``: :meth:`error_filter`'s, if already made."""
        if self.shaping["kind"] != "design":
            return None
        filt = error_filter or self.error_filter(sample_rate, stream_rate)
        band = self.design_band_hz(stream_rate or sample_rate)
        return maximum_stable_amplitude(filt.a, filt.b, band / sample_rate, self.bits, self.dither, self.amplitude)

    def design_band_hz(self, stream_rate: float) -> float:
        """The band a designed NTF protects: ``band_hz``, else the default for the stream
        rate (:func:`rtq.dsp.ntf.default_band_hz`)."""
        return self.shaping.get("band_hz") or default_band_hz(stream_rate)

    def rate_limits(self, factor: int = 1) -> list[RateLimit]:
        kind, where = self.shaping["kind"], self.location("shaping")
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
        a, b = kernel.kernel_coefficients(filt.a if filt else (), filt.b if filt else ())
        # A designed NTF drives sigma-delta loops: a run of overloads means the loop has
        # gone unstable, and it is reset (PCM tables only clip with the input: no reset).
        reset_after = kernel.RESET_AFTER_OVERLOADS if self.shaping["kind"] == "design" else 0
        seeds = [stream_seed(ctx.seed, *ctx.path, builder.first_channel + c) for c in range(builder.channels)]
        msa = self.stable_amplitude(ctx.sample_rate, ctx.stream_rate, filt)
        # A sigma-delta loop counts what comes in above its maximum stable amplitude.
        overload_row = None if msa is None else builder.add_op(OP_OVERLOAD, ctx.level, **overload.pack(msa))
        # Auto-blank, passthrough and the limit run in a variant of the kernel, its own
        # op: without them the op and its code are exactly as they were.
        guard = self.guard(ctx.sample_rate, filt)
        index = builder.add_op(OP_REQUANTIZE if guard is None else OP_REQUANTIZE_GUARDED, ctx.level, rng_seeds=seeds,
                               **kernel.pack(self.bits, self.dither, self.amplitude, a, b, reset_after, guard,
                                             builder.channels))
        step = kernel.grid_of(self.bits)[0]
        guard_state = None if guard is None else int(builder.rows[index][COL_I_OFF]) + 2
        return QuantizerInfo(ctx.path, self, self.bits, step, self.dither, filt, ctx.sample_rate, index,
                             msa=msa, overload_op=overload_row, guard_state=guard_state)

    def label(self) -> str:
        label = f"requantize {self.bits}-bit {self.dither}"
        if self.amplitude != 1.0:
            label += f" x{self.amplitude:g}"
        kind = self.shaping["kind"]
        if kind == "table":
            label += f" {self.shaping['name']}"
        elif kind == "fir":
            label += f" fir({len(self.shaping['coefficients'])})"
        elif kind == "design":
            label += f" ntf order {self.shaping['order']}"
        for on, word in ((self.auto_blank, "auto-blank"), (self.passthrough_exact, "passthrough"), (self.limit, "limit")):
            label += f" {word}" if on else ""
        return label

    def info_line(self, rate: float, stream_rate: float) -> str:
        text = f"requantize to {self.bits} bit{'s' if self.bits > 1 else ''}, "
        text += "no dither" if self.dither == "none" else f"{self.dither} dither ({self.amplitude:g} LSB)"
        return text + ", " + self._shaping_text(rate, stream_rate) + self._guard_text(rate, stream_rate)

    def _guard_text(self, rate: float, stream_rate: float) -> str:
        parts = []
        if self.auto_blank:
            parts.append(f"auto-blank after {self.auto_blank:g} s of digital silence")
        if self.passthrough_exact:
            parts.append(f"input on the grid passes exactly (after {PASSTHROUGH_RUN} samples on it)")
        if self.limit:
            knee, ceiling = self.limit_range(self.error_filter(rate, stream_rate))
            full = kernel.grid_of(self.bits)[3] + 1.0
            parts.append(f"soft limit from {20 * math.log10(knee / full):.4f} dBFS to a ceiling of "
                         f"{20 * math.log10(ceiling / full):.4f} dBFS")
        return "".join("; " + part for part in parts)

    def _shaping_text(self, rate: float, stream_rate: float) -> str:
        kind = self.shaping["kind"]
        if kind == "none":
            return "no noise shaping"
        filt = self.error_filter(rate, stream_rate)
        taps = f"{len(filt.a)}+{len(filt.b)} taps" if filt.b else f"{len(filt.a)} taps"
        if kind == "table":
            nominal, _ = shaping.table_for_rate(self.shaping["name"], rate)
            where = f"{nominal} Hz table" if nominal else "any rate"
            return f"{self.shaping['name']} shaping ({where}, {taps})"
        if kind == "design":
            band = self.design_band_hz(stream_rate)
            return f"designed order-{self.shaping['order']} shaping (band {band:g} Hz, {taps})"
        return f"custom FIR shaping ({taps})"

    def output_grid(self) -> OutputGrid | None:
        """The ``bits``-bit grid; none for 1 bit (its +-1.0 is no PCM code)."""
        return OutputGrid(self.bits) if self.bits >= 2 else None


def _response_l1(error_filter) -> float:
    """The L1 norm of the filter output's response to the error (FIR: the sum of |a|;
    recursive: of its impulse response, to 1e-12): the most it can be per unit of error."""
    a, b = np.asarray(error_filter.a, dtype=np.float64), np.asarray(error_filter.b, dtype=np.float64)
    if not b.size:
        return float(np.abs(a).sum())
    from scipy.signal import lfilter   # start-up cost: only a recursive filter's limit needs it

    impulse = np.zeros(1 << 16)
    impulse[0] = 1.0
    return float(np.abs(lfilter(np.concatenate([[0.0], a]), np.concatenate([[1.0], b]), impulse)).sum())


_NORMALISED_KEYS = {"none": {"kind"}, "table": {"kind", "name"}, "fir": {"kind", "coefficients"},
                    "design": {"kind", "order", "band_hz"}}


def denormalised_shaping(value: dict) -> Any:
    """A normalised shaping (``{"kind": ...}``, what a stage holds) in the preset grammar,
    to be checked as written there; a malformed one is left for the check to refuse."""
    keys = _NORMALISED_KEYS.get(value.get("kind"))
    if keys is not None and (set(value) == keys or (value["kind"] == "design" and set(value) == keys - {"band_hz"})):
        return Shaping().to_data({"band_hz": None, **value})
    return value
