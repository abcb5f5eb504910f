"""Parameter rules, declared once and applied two ways.

Each stage kind declares its parameters as a :class:`Fields` of rules (``schema`` in its
module under :mod:`rtq.stages`); a preset's top level is declared the same way
(:mod:`rtq.presets`).  A rule checks a plain Python value (numbers, text, lists,
mappings) and returns it normalised; what is wrong is reported to a :class:`Checker` as
:class:`Problem` objects that carry the path of the bad part.  The preset reader turns
YAML into plain values, checks them, and reports every problem at its
``file:line:column``; a stage's constructor checks its arguments with the same rules and
raises a ValueError naming the parameter.  So both refuse the same things, in the same
words: only how the bad value is shown differs (as written in the file, or its Python
repr).
"""
from __future__ import annotations

import numbers
import reprlib
from dataclasses import dataclass, replace
from typing import Any

from .spec import requirement

NO_VALUE = object()
"""A problem that is not about a value (a missing key, two keys that exclude each other)."""
REQUIRED = object()
"""The default of a field that must be given."""
INVALID = object()
"""What a rule returns for a value it refused (the problem is with the checker)."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a checked value.

    ``path`` leads from the checked root to the part at fault (mapping keys and list
    indices).  In ``text``, ``{name}`` stands for that part's name and ``{in_parent}``
    for "in <the name of the mapping or list holding it>" (the reader and the
    constructors name parts their own way).  ``value`` (unless :data:`NO_VALUE`) is
    shown after ", got ", then ``hint``.  ``at`` says what a reader points at: the part
    (``value``), the key that names it (``key``), or, for a key missing from a mapping,
    the mapping's key if it has one (``missing``).
    """

    path: tuple
    text: str
    value: Any = NO_VALUE
    hint: str = ""
    at: str = "value"
    number: bool = False        # a number was wanted (the reader explains YAML's text exponents)
    choices: tuple = ()         # the words wanted (the reader suggests one for YAML's booleans)

    def message(self, name: str, in_parent: str, shown: str | None) -> str:
        text = self.text.replace("{name}", name).replace("{in_parent}", in_parent)
        return text + ("" if shown is None else f", got {shown}") + self.hint


class Checker:
    """Collects the problems rules find, and reads the items of stage lists (which the
    preset reader and the constructors hold differently: preset data or stages)."""

    def __init__(self):
        self.problems: list[Problem] = []

    def add(self, path: tuple, text: str, value: Any = NO_VALUE, **details) -> object:
        """Record a problem; returns :data:`INVALID` (what the rule returns)."""
        self.problems.append(Problem(tuple(path), text, value, **details))
        return INVALID

    def stage(self, value: Any, path: tuple) -> Any:
        """An item of a stage list, checked (or :data:`INVALID`)."""
        raise NotImplementedError


def _is_bool(value: Any) -> bool:
    """A bool, NumPy's included (rtq.schema does not import NumPy: start-up cost)."""
    return isinstance(value, bool) or (type(value).__module__ == "numpy" and type(value).__name__.startswith("bool"))


def _is_list(value: Any) -> bool:
    """A list, a tuple or a one-dimensional array."""
    return isinstance(value, (list, tuple)) or (getattr(value, "ndim", None) == 1 and hasattr(value, "__len__"))


def did_you_mean(word: Any, choices) -> str:
    """``; did you mean 'x'?`` for the choice closest to ``word`` (case ignored), or ''."""
    if not isinstance(word, str):
        return ""
    import difflib    # only for messages: not a cost of every render

    by_lower = {str(c).lower(): str(c) for c in choices}
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1)
    return f"; did you mean '{by_lower[close[0]]}'?" if close else ""


def shown(value: Any) -> str:
    """How a Python value is quoted in messages: its repr for scalars, described for
    collections (as the reader describes YAML's)."""
    if _is_list(value):
        count = len(value)
        return f"a list of {count} item{'s' * (count != 1)}" if count else "an empty list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, numbers.Integral) and not _is_bool(value):
        return str(int(value))
    if isinstance(value, numbers.Real) and not _is_bool(value):
        return repr(float(value))
    return reprlib.repr(value)


def check(rule: "Rule", value: Any, path: tuple, checker: Checker) -> Any:
    """``rule.check(value, ...)``, except for a value already refused (:data:`INVALID`:
    its problem is reported, and one is enough)."""
    return INVALID if value is INVALID else rule.check(value, path, checker)


class Rule:
    """A rule for one value: :meth:`check` returns it normalised or reports problems."""

    default: Any = REQUIRED
    what = ""           # what the value must be, as in "a list of ... {what}"

    def check(self, value: Any, path: tuple, checker: Checker) -> Any:
        raise NotImplementedError

    def to_data(self, value: Any) -> Any:
        """The normalised value written back in the preset grammar."""
        return value

    def optional(self, default: Any) -> "Rule":
        """This rule with a default (the value when the key is absent)."""
        return replace(self, default=default)


@dataclass(frozen=True)
class Integer(Rule):
    lo: int | None = None
    hi: int | None = None
    default: Any = REQUIRED

    def check(self, value, path, checker):
        problem = requirement(value, self.lo, self.hi, integer=True)
        if problem is not None:
            return checker.add(path, "{name} " + problem, value, number=True)
        return int(value)


@dataclass(frozen=True)
class Number(Rule):
    lo: float | None = None
    hi: float | None = None
    default: Any = REQUIRED
    what = "finite numbers"

    def check(self, value, path, checker):
        problem = requirement(value, self.lo, self.hi)
        if problem is not None:
            return checker.add(path, "{name} " + problem, value, number=True)
        return float(value)


@dataclass(frozen=True)
class Choice(Rule):
    """One of ``options`` (text, or integers: an integer equal to one, of any integer type)."""

    options: tuple
    default: Any = REQUIRED

    def check(self, value, path, checker):
        for option in self.options:
            if isinstance(option, str) and isinstance(value, str) and value == option:
                return option
            if isinstance(option, int) and isinstance(value, numbers.Integral) and not _is_bool(value) and value == option:
                return option
        wanted = (str(self.options[0]) if len(self.options) == 1 else
                  "one of " + ", ".join(map(str, self.options)))
        return checker.add(path, "{name} must be " + wanted, value, hint=did_you_mean(value, self.options),
                           choices=tuple(map(str, self.options)))


@dataclass(frozen=True)
class Text(Rule):
    default: Any = REQUIRED

    def check(self, value, path, checker):
        return value if isinstance(value, str) else checker.add(path, "{name} must be text", value)


@dataclass(frozen=True)
class Boolean(Rule):
    default: Any = REQUIRED

    def check(self, value, path, checker):
        if _is_bool(value):
            return bool(value)
        return checker.add(path, "{name} must be true or false", value)


@dataclass(frozen=True)
class ListOf(Rule):
    """A list of ``lo`` to ``hi`` items, each checked by ``item``."""

    item: Rule
    lo: int = 1
    hi: int | None = None
    default: Any = REQUIRED

    def check(self, value, path, checker):
        if not _is_list(value) or not (self.lo <= len(value) and (self.hi is None or len(value) <= self.hi)):
            size = f"{self.lo} to {self.hi}" if self.hi is not None else f"at least {self.lo}"
            return checker.add(path, f"{{name}} must be a list of {size} {self.item.what}", value)
        items = tuple(check(self.item, item, path + (i,), checker) for i, item in enumerate(value))
        return INVALID if INVALID in items else items

    def to_data(self, value):
        return [self.item.to_data(item) for item in value]


@dataclass(frozen=True)
class Stages(Rule):
    """A non-empty list of stages (the checker reads each item)."""

    default: Any = REQUIRED

    def check(self, value, path, checker):
        if not isinstance(value, (list, tuple)) or not value:
            return checker.add(path, "{name} must be a non-empty list of stages", value)
        items = tuple(INVALID if item is INVALID else checker.stage(item, path + (i,)) for i, item in enumerate(value))
        return INVALID if INVALID in items else items


@dataclass(frozen=True)
class Fields(Rule):
    """A mapping of named fields, each with its rule (and default: :meth:`Rule.optional`).

    With ``short``, a value that is not a mapping stands for field ``short`` alone (the
    others take their defaults): ``dither: tpdf`` for ``dither: {type: tpdf}``.
    """

    fields: dict
    short: str | None = None
    default: Any = REQUIRED

    def check(self, value, path, checker):
        if self.short is not None and not isinstance(value, dict):
            result = {key: rule.default for key, rule in self.fields.items()}
            result[self.short] = check(self.fields[self.short], value, path, checker)
            return INVALID if result[self.short] is INVALID else result
        if not isinstance(value, dict):
            return checker.add(path, "{name} must be a mapping", value)
        for key in value:
            if key not in self.fields:
                hint = did_you_mean(key, list(self.fields)) or f" (valid keys: {', '.join(self.fields)})"
                checker.add(path + (key,), f"unknown key '{key}' {{in_parent}}", hint=hint, at="key")
        result = {}
        for key, rule in self.fields.items():
            if key in value:
                result[key] = check(rule, value[key], path + (key,), checker)
            elif rule.default is REQUIRED:
                checker.add(path, f"{{name}} is missing required key '{key}'", at="missing")
                result[key] = INVALID
            else:
                result[key] = rule.default
        return INVALID if INVALID in result.values() else result

    def to_data(self, value):
        return {key: self.fields[key].to_data(item) for key, item in value.items()}


class ArgumentChecker(Checker):
    """Checks a stage's Python arguments: the first problem becomes a ValueError naming
    the parameter (``requantize.bits must be ...``); stage lists hold stages."""

    def __init__(self, kind: str, stage_type: type):
        super().__init__()
        self.kind = kind
        self.stage_type = stage_type

    def name(self, path: tuple) -> str:
        return self.kind + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)

    def stage(self, value, path):
        if isinstance(value, self.stage_type):
            return value
        return self.add(path, "{name} must be a stage (Gain, Requantize, Quantize, Oversample)", value)

    def raise_first(self) -> None:
        if self.problems:
            problem = self.problems[0]
            raise ValueError(problem.message(self.name(problem.path), f"in {self.name(problem.path[:-1])}",
                                             None if problem.value is NO_VALUE else shown(problem.value)))
