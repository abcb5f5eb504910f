"""Validated, normalised preset data shared by the preset loader and the chain builder.

The loader (:mod:`rtq.presets`) turns YAML into these objects; the chain builder
(:mod:`rtq.chain`) turns them into prepared stages.  Every spec remembers where it came
from (``file:line:column``) so errors found only at prepare time (for example a shaping
table with no entry for the stream's rate) can still point into the preset.
"""
from __future__ import annotations

import math
import numbers
import reprlib
from dataclasses import dataclass, field
from typing import Any

from .errors import UsageError

# Largest dither seed (the generators' state is 64-bit; a larger one would wrap).
MAX_SEED = 2 ** 64 - 1
# Stream rates a user may ask for (--samplerate), in whole Hz: 8 kHz telephony to 768 kHz
# converters, with room below.  Devices and files run at whole rates, and a number
# outside this range is a slip (48 for 48 kHz), not a request.
STREAM_RATE_HZ = (1000, 768000)


def requirement(value, lo=None, hi=None, *, integer: bool = False) -> str | None:
    """None if ``value`` is an integer (with ``integer``) or else a finite number, from
    ``lo`` to ``hi`` (either may be None); otherwise what it must be, for the message:
    ``must be an integer from 1 to 32``.  Booleans are not numbers here."""
    kind = numbers.Integral if integer else numbers.Real
    if (isinstance(value, kind) and not isinstance(value, bool) and (integer or math.isfinite(value))
            and (lo is None or value >= lo) and (hi is None or value <= hi)):
        return None

    def show(bound):  # integers exactly (the seed's bound has 20 digits)
        return str(bound) if isinstance(bound, int) else f"{bound:g}"

    bounds = "" if lo is None else (f" from {show(lo)} to {show(hi)}" if hi is not None else f" >= {show(lo)}")
    return ("must be an integer" if integer else "must be a finite number") + bounds


def checked_integer(value, name: str, lo: int | None = None, hi: int | None = None) -> int:
    """``value`` as an int, or a ValueError naming ``name`` and the range (the Python
    API's argument checks, in the words the preset loader uses)."""
    problem = requirement(value, lo, hi, integer=True)
    if problem is not None:
        raise ValueError(f"{name} {problem}, got {value!r}")
    return int(value)


def checked_number(value, name: str, lo: float | None = None, hi: float | None = None) -> float:
    """``value`` as a float, or a ValueError naming ``name`` and the range."""
    problem = requirement(value, lo, hi)
    if problem is not None:
        raise ValueError(f"{name} {problem}, got {value!r}")
    return float(value)


def stream_rate(value, name: str = "sample_rate") -> float:
    """``value`` as a float if it is a stream rate (whole Hz within :data:`STREAM_RATE_HZ`),
    else a ValueError naming ``name``: the one rule for ``--samplerate``, files' rates and
    ``prepare``."""
    lo, hi = STREAM_RATE_HZ
    try:   # a number of any kind (numpy scalars and 0-d arrays too), not a bool or text
        rate = math.nan if isinstance(value, (bool, str, bytes)) else float(value)
    except (TypeError, ValueError, OverflowError):
        rate = math.nan
    if rate.is_integer() and lo <= rate <= hi:
        return rate
    shown = f"{rate:g}" if not math.isnan(rate) or isinstance(value, float) else reprlib.repr(value)
    in_hz = round(rate * 1000, 6)    # 48 or 44.1 meant in kHz
    hint = f"; did you mean {in_hz:g}?" if 0 < rate < lo and in_hz.is_integer() and lo <= in_hz <= hi else ""
    raise ValueError(f"{name} must be a whole number of Hz from {lo} to {hi}, got {shown}{hint}")


def check_samplerate(value, option: str = "--samplerate") -> None:
    """A stream rate asked for (``--samplerate``, a session's ``samplerate``) is one
    (:func:`stream_rate`), if given; otherwise a one-line :class:`~rtq.errors.UsageError`."""
    if value is not None:
        try:
            stream_rate(value, option)
        except ValueError as err:
            raise UsageError(str(err)) from None


def check_file_rate(rate: int, path) -> None:
    """An audio file to be rendered, played or analyzed runs at a stream rate
    (:func:`stream_rate`); otherwise a one-line :class:`~rtq.errors.UsageError` naming the
    file and its rate (in whole Hz where it is whole: 1000000, not 1e+06)."""
    try:
        stream_rate(rate)
    except ValueError:
        lo, hi = STREAM_RATE_HZ
        shown = f"{int(rate)}" if float(rate).is_integer() else f"{rate:g}"
        raise UsageError(f"{path} runs at {shown} Hz; rtq runs streams at whole rates from {lo} to {hi} Hz "
                         "(resample the file)") from None


@dataclass(frozen=True)
class StageSpec:
    """One stage of a chain.

    kind
        ``"gain"``, ``"requantize"``, ``"quantize"`` or ``"oversample"``.
    params
        Normalised parameters (see :mod:`rtq.presets` for the schema); for
        ``oversample``, ``params["chain"]`` is a tuple of nested :class:`StageSpec`.
    where
        ``{key: "file:line:col"}`` for the stage itself (key ``""``) and each parameter.
    """

    kind: str
    params: dict[str, Any]
    where: dict[str, str] = field(default_factory=dict, compare=False)

    def location(self, key: str = "") -> str:
        return self.where.get(key) or self.where.get("", "<preset>")


@dataclass(frozen=True)
class PresetSpec:
    name: str
    description: str
    chain: tuple[StageSpec, ...]
    seed: int | None = None
    source: str = "<preset>"
