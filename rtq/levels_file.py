"""Quantizer levels: their rule (presets and constructors), and the levels file
``rtq train`` writes and ``quantize: {law: lloyd-max, bits: N, trained: FILE}`` reads.

A levels file is YAML, read exactly as presets are (safe plain values, every problem at
``file:line:column``), within its own limits (:data:`MAX_LEVELS_FILE_BYTES`,
:data:`MAX_LEVELS_FILE_VALUES`)::

    # comments: how it was made, its MSE, SNR and PSNR
    law: lloyd-max
    bits: 4                  # 2^bits levels per set
    channels: joint          # one set for every channel; each: one set per channel
    levels: [-0.21, ...]     # joint: one sorted list; each: a list of them, channel order

Levels are finite, within full scale (-1 to 1) and strictly increasing.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import PresetError
from .schema import INVALID, Choice, Fields, Integer, ListOf, Number, Rule

MAX_LEVELS = 65536
LEVELS_BITS = (1, 16)
MAX_SETS = 64
MAX_LEVELS_FILE_BYTES = 8 << 20
MAX_LEVELS_FILE_VALUES = 1_100_000


def _is_lists(value) -> bool:
    """A non-empty list of lists (sets of levels), not one list of numbers."""
    return (isinstance(value, (list, tuple)) and len(value) > 0
            and all(isinstance(item, (list, tuple)) or getattr(item, "ndim", 0) == 1 for item in value))


def _sorted_levels(values, path, checker):
    """``values`` (already numbers) strictly increasing, else a problem."""
    for i in range(1, len(values)):
        if not values[i] > values[i - 1]:
            return checker.add(path + (i,), f"{{name}} must be above the level before it ({values[i - 1]!r}): "
                                            "levels are sorted and distinct", values[i])
    return values


@dataclass(frozen=True)
class LevelSet(Rule):
    """A sorted list of 2 to :data:`MAX_LEVELS` distinct levels within full scale."""

    default: Any = None
    what = "levels"

    def check(self, value, path, checker):
        values = ListOf(Number(-1.0, 1.0), 2, MAX_LEVELS).check(value, path, checker)
        return INVALID if values is INVALID else _sorted_levels(values, path, checker)

    def to_data(self, value):
        return list(value)


@dataclass(frozen=True)
class LevelSets(Rule):
    """One level set, or a list of 1 to :data:`MAX_SETS` sets of equal size (one per
    channel); normalised to a tuple of sets."""

    default: Any = None

    def check(self, value, path, checker):
        if _is_lists(value):
            if len(value) > MAX_SETS:
                return checker.add(path, f"{{name}} must hold 1 to {MAX_SETS} sets of levels (one per channel)",
                                   value)
            sets = tuple(LevelSet().check(item, path + (i,), checker) for i, item in enumerate(value))
            if INVALID in sets:
                return INVALID
            if len({len(s) for s in sets}) > 1:
                return checker.add(path, "{name} must hold sets of the same size (one per channel)")
            return sets
        levels = LevelSet().check(value, path, checker)
        return INVALID if levels is INVALID else (levels,)

    def to_data(self, value):
        return list(value[0]) if len(value) == 1 else [list(s) for s in value]


LEVELS_FILE = Fields({
    "law": Choice(("lloyd-max",)),
    "bits": Integer(*LEVELS_BITS),
    "channels": Choice(("joint", "each")).optional("joint"),
    "levels": LevelSets(),
})
"""The rules of a levels file's top level."""


@dataclass(frozen=True)
class Levels:
    """Levels read from a file: ``sets`` (one per channel, or one for all), ``bits``."""

    path: str
    bits: int
    sets: tuple[tuple[float, ...], ...]


def read_levels(path: str | os.PathLike, filename: str | None = None) -> Levels:
    """The levels file at ``path`` (``filename`` names it in messages), checked; a
    PresetError names each problem at its ``file:line:column``."""
    from .documents import parse_document, read_text   # start-up cost: YAML, only for a file

    filename = filename or os.fspath(path)
    text = read_text(path, filename, "levels file", max_bytes=MAX_LEVELS_FILE_BYTES)
    fields = parse_document(text, filename, LEVELS_FILE, "levels file", max_bytes=MAX_LEVELS_FILE_BYTES,
                            max_values=MAX_LEVELS_FILE_VALUES)
    count = 2 ** fields["bits"]
    sets = fields["levels"]
    if len(sets[0]) != count:
        raise PresetError(f"{filename}: levels holds {len(sets[0])} levels per set, but bits {fields['bits']} "
                          f"means {count}")
    if fields["channels"] == "joint" and len(sets) > 1:
        raise PresetError(f"{filename}: channels: joint holds one list of levels, not {len(sets)}")
    return Levels(os.fspath(path), fields["bits"], tuple(tuple(s) for s in sets))


def levels_text(bits: int, sets, comments: list[str]) -> str:
    """A levels file's text: ``comments`` (one line each) above the data; levels written
    with 17 significant digits, so they read back exactly."""
    lines = [f"# {line}" for line in comments]
    lines += ["law: lloyd-max", f"bits: {bits}", f"channels: {'each' if len(sets) > 1 else 'joint'}", "levels:"]
    for levels in sets:
        numbers = ", ".join(repr(float(v)) for v in levels)
        lines.append(f"  - [{numbers}]" if len(sets) > 1 else f"  [{numbers}]")
    if len(sets) == 1:      # one flow list, not a list holding one list
        lines[-2:] = [f"levels: [{', '.join(repr(float(v)) for v in sets[0])}]"]
    return "\n".join(lines) + "\n"


def resolve(path: str, base_file: str | None) -> Path:
    """A ``trained:`` path as written: relative to the preset file that names it (the
    working directory for a stage built in Python)."""
    candidate = Path(os.path.expanduser(path))
    if candidate.is_absolute() or not base_file:
        return candidate
    return Path(base_file).parent / candidate


def bits_for(count: int) -> int:
    """The word length that holds ``count`` levels' indices."""
    return max(1, math.ceil(math.log2(count)))
