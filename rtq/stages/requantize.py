"""``requantize``: a uniform N-bit grid with dither and error-feedback noise shaping."""
from __future__ import annotations

import math

from ..dsp import requantize as kernel
from ..dsp import shaping
from ..dsp.ntf import default_band_hz, design_ntf
from ..dsp.rng import stream_seed
from ..errors import PresetError
from ..processor import QuantizerInfo
from ..program import OP_REQUANTIZE
from ..spec import BITS_RANGE, MIN_BAND_HZ, NTF_ORDER_RANGE, checked_integer, checked_number
from .base import OutputGrid, Stage
from .rates import RateLimit, RateRange, format_rates


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
        if dither not in kernel.DITHER_CODES:
            raise ValueError(f"requantize.dither must be one of {', '.join(kernel.DITHER_TYPES)}, got {dither!r}")
        self.dither = dither
        self.amplitude = checked_number(amplitude, "requantize.dither.amplitude", 0.0)
        self.shaping = _normalise_shaping(shaping)

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
        a, b = kernel.kernel_coefficients(filt.a if filt else (), filt.b if filt else ())
        # A designed NTF drives sigma-delta loops: a run of overloads means the loop has
        # gone unstable, and it is reset (PCM tables only clip with the input: no reset).
        reset_after = kernel.RESET_AFTER_OVERLOADS if self.shaping["kind"] == "design" else 0
        seeds = [stream_seed(ctx.seed, *ctx.path, builder.first_channel + c) for c in range(builder.channels)]
        index = builder.add_op(OP_REQUANTIZE, ctx.level, rng_seeds=seeds,
                               **kernel.pack(self.bits, self.dither, self.amplitude, a, b, reset_after))
        step = kernel.grid_of(self.bits)[0]
        return QuantizerInfo(ctx.path, self, self.bits, step, self.dither, filt, ctx.sample_rate, index)

    def describe(self):
        return {"bits": self.bits, "dither": {"type": self.dither, "amplitude": self.amplitude},
                "shaping": dict(self.shaping)}

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
        return label

    def info_line(self, rate: float, stream_rate: float) -> str:
        text = f"requantize to {self.bits} bit{'s' if self.bits > 1 else ''}, "
        text += "no dither" if self.dither == "none" else f"{self.dither} dither ({self.amplitude:g} LSB)"
        return text + ", " + self._shaping_text(rate, stream_rate)

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
            band = self.shaping.get("band_hz") or default_band_hz(stream_rate)
            return f"designed order-{self.shaping['order']} shaping (band {band:g} Hz, {taps})"
        return f"custom FIR shaping ({taps})"

    def output_grid(self) -> OutputGrid | None:
        """The ``bits``-bit grid; none for 1 bit (its +-1.0 is no PCM code)."""
        return OutputGrid(self.bits) if self.bits >= 2 else None


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
