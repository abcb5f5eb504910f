"""Listening-test files: YAML in, a validated :class:`ListeningTest` out.

A test file is read exactly as presets are (the preset reader's machinery,
:func:`rtq.presets.parse_document` over rules of :mod:`rtq.schema`: safe loading, the
size and alias limits, every problem one ``file:line:column: message`` line, exit
status 2, unknown keys and words named with the closest valid one)::

    name: shaping-abx            # default: the file's stem
    type: abx                    # abx | abxy | mushra
    trials: 16                   # abx, abxy (default 16)
    sequential: false            # abx, abxy: may end early at a corrected boundary
    seed: 7                      # the chains' dither seed
    switch: dip                  # dip | crossfade | cut
    level_match: true
    items:
      - input: music.flac        # a file (relative to the test file) or `live`
        loop: [12.0, 22.0]       # seconds, at least 0.5 s apart; default the whole file
    conditions:                  # abx, abxy: exactly A and B; mushra: 1 to 12 named
      A: cd-16-shibata           # a shipped preset, a preset file, or `original`
      B: tpdf-16
    reference: original          # mushra: what the conditions are compared with
    anchors: [lowpass-3500, lowpass-7000]   # mushra (the default); [] for none

Input files and preset files are checked when the test is read (a missing file, a
file that is not audio, a loop past its end, a preset with problems: each one line at
the test file's place that names it).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from rtq.errors import PresetError
from rtq.schema import INVALID, Boolean, Choice, Fields, Integer, ListOf, Rule, Text, did_you_mean
from rtq.spec import MAX_SEED, STREAM_RATE_HZ, PresetSpec, requirement

from .stats import MAX_TRIALS

TYPES = ("abx", "abxy", "mushra")
SWITCHES = ("dip", "crossfade", "cut")
ORIGINAL = "original"
LIVE = "live"
REFERENCE = "reference"
"""The name of the MUSHRA reference condition (played open by ``r``, and hidden among the others)."""
DEFAULT_ANCHORS = ("lowpass-3500", "lowpass-7000")
DEFAULT_TRIALS = 16
MIN_LOOP_SECONDS = 0.5
MAX_ITEMS = 100
MAX_CONDITIONS = 12
"""The most named conditions of a MUSHRA test (the hidden reference and anchors come on top)."""
MAX_ANCHORS = 4
MAX_CHANNELS = 2


@dataclass(frozen=True)
class Item:
    """One programme item: an audio file (looped between the loop points) or ``live``."""

    input: str                                   # a path, or "live" (the sound card's input)
    loop: tuple[float, float] | None = None      # seconds; None: the whole file


@dataclass(frozen=True)
class Condition:
    """One chain under test: ``preset`` None is the unprocessed input ('original')."""

    name: str
    source: str                                  # as written: 'original', a shipped name or a path
    preset: PresetSpec | None
    role: str = "condition"                      # "condition" | "reference" | "anchor"


@dataclass(frozen=True)
class ListeningTest:
    """A validated listening-test file.

    ``conditions`` holds every chain the test plays, in order: for ``abx``/``abxy`` A and
    B; for ``mushra`` the reference (named :data:`REFERENCE`), the named conditions, then
    the anchors.  ``text`` and ``sha256`` are the file's, for the log.
    """

    name: str
    type: str
    items: tuple[Item, ...]
    conditions: tuple[Condition, ...]
    trials: int = DEFAULT_TRIALS
    seed: int | None = None
    switch: str = "dip"
    level_match: bool = True
    sequential: bool = False
    description: str = ""
    path: str = "<test>"
    text: str = ""
    sha256: str = ""

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(condition.name for condition in self.conditions)

    def condition(self, name: str) -> Condition:
        return next(condition for condition in self.conditions if condition.name == name)

    @property
    def is_abx(self) -> bool:
        return self.type in ("abx", "abxy")


def preset_yaml(preset: PresetSpec) -> str:
    """A preset in canonical YAML (the file grammar, keys sorted), as the log keeps it."""
    import yaml

    from rtq.presets import preset_to_dict

    return yaml.safe_dump(preset_to_dict(preset), sort_keys=True, default_flow_style=False, allow_unicode=False)


def item_of_trial(trial: int, trials: int, items: int) -> int:
    """The item an ABX trial plays: trials are split into consecutive, near-equal runs,
    one per item, in the file's order (16 trials over 3 items: 6, 5, 5)."""
    return trial * items // trials


# ----------------------------------------------------------------------------- reading


def load_test(path: str | os.PathLike) -> ListeningTest:
    """Read and check a listening-test file.

    Parameters
    ----------
    path : path
        The YAML file.  Input files and preset files it names are found relative to its
        folder (shipped presets by name).

    Returns
    -------
    ListeningTest

    Raises
    ------
    PresetError
        One ``file:line:column: message`` line per problem (exit status 2 from the CLI).
    """
    from rtq.presets import parse_document, read_text

    filename = os.fspath(path)
    text = read_text(path, filename, what="test file")
    fields = parse_document(text, filename, _test_rules(Path(filename).parent), what="test file")
    kind = fields["type"]
    if kind == "mushra":
        reference = fields["reference"] or (ORIGINAL, None)
        conditions = ((Condition(REFERENCE, reference[0], reference[1], "reference"),)
                      + tuple(Condition(name, *condition) for name, condition in fields["conditions"].items())
                      + tuple(Condition(_anchor_name(source), source, preset, "anchor")
                              for source, preset in fields["anchors"]))
    else:
        conditions = tuple(Condition(name, *fields["conditions"][name]) for name in ("A", "B"))
    return ListeningTest(
        name=fields["name"] or Path(filename).stem, type=kind,
        items=tuple(Item(item["input"], item["loop"]) for item in fields["items"]),
        conditions=conditions, trials=fields["trials"] if kind != "mushra" else len(fields["items"]),
        seed=fields["seed"], switch=fields["switch"], level_match=fields["level_match"],
        sequential=bool(fields["sequential"]), description=fields["description"],
        path=filename, text=text, sha256=hashlib.sha256(text.encode("utf-8")).hexdigest())


def _anchor_name(source: str) -> str:
    """An anchor's name: the shipped preset's name, or a preset file's stem."""
    return Path(source).stem if ("/" in source or Path(source).suffix) else source


def _test_rules(base: Path):
    """The rules of a test file whose relative paths start at ``base``."""
    preset = _Preset(base)
    return _TestFile(Fields({
        "name": Text().optional(None),
        "description": Text().optional(""),
        "type": Choice(TYPES),
        "trials": Integer(1, MAX_TRIALS).optional(None),
        "sequential": Boolean().optional(None),
        "seed": Integer(0, MAX_SEED).optional(None),
        "switch": Choice(SWITCHES).optional("dip"),
        "level_match": Boolean().optional(True),
        "items": ListOf(_Item(base, Fields({"input": Text(), "loop": _Loop().optional(None)})), 1, MAX_ITEMS),
        "conditions": _Named(preset, 1, MAX_CONDITIONS),
        "reference": preset.optional(None),
        "anchors": ListOf(preset, 0, MAX_ANCHORS).optional(None),
    }))


@dataclass(frozen=True)
class _Preset(Rule):
    """A condition: ``original``, a shipped preset's name, or a preset file (relative to
    the test file).  Checked value: ``(source as written, PresetSpec or None)``."""

    base: Path = Path(".")
    default: object = None
    what = "presets"

    def check(self, value, path, checker):
        from rtq.presets import load_preset

        if not isinstance(value, str) or not value:
            return checker.add(path, "{name} must be a preset (a shipped name or a file) or 'original'", value)
        if value == ORIGINAL:
            return value, None
        looks_like_file = "/" in value or bool(Path(value).suffix)
        local = self.base / value
        try:
            spec = load_preset(os.fspath(local) if looks_like_file or local.is_file() else value)
        except PresetError as err:
            lines = str(err).splitlines()
            more = f" (and {len(lines) - 1} more: rtq validate lists them)" if len(lines) > 1 else ""
            return checker.add(path, "{name}: " + lines[0] + more)
        return value, spec


@dataclass(frozen=True)
class _Named(Rule):
    """A mapping of condition names (text) to presets, ``lo`` to ``hi`` of them."""

    item: Rule
    lo: int = 1
    hi: int = MAX_CONDITIONS
    default: object = None

    def check(self, value, path, checker):
        if not isinstance(value, dict):
            return checker.add(path, f"{{name}} must be a mapping of {self.lo} to {self.hi} named presets", value)
        if not self.lo <= len(value) <= self.hi:
            return checker.add(path, f"{{name}} must name {self.lo} to {self.hi} presets, got {len(value)}")
        result = {name: self.item.check(preset, path + (name,), checker) for name, preset in value.items()}
        return INVALID if INVALID in result.values() else result


@dataclass(frozen=True)
class _Loop(Rule):
    """``[start, end]`` in seconds, ``start >= 0``, at least :data:`MIN_LOOP_SECONDS` apart."""

    default: object = None

    def check(self, value, path, checker):
        if (isinstance(value, list) and len(value) == 2 and all(requirement(v, 0) is None for v in value)
                and value[1] - value[0] >= MIN_LOOP_SECONDS):
            return float(value[0]), float(value[1])
        numbers = isinstance(value, list) and all(requirement(v) is None for v in value)
        got = f", got [{', '.join(f'{v:g}' for v in value)}]" if numbers else ""
        return checker.add(path, f"{{name}} must be [start, end] in seconds, start >= 0 and end at least "
                                 f"{MIN_LOOP_SECONDS:g} s after it{got}", *(() if numbers else (value,)))


@dataclass(frozen=True)
class _Item(Rule):
    """An item: its fields, then its input (``live``, or an audio file rtq can stream, its
    path relative to the test file) and its loop within the file."""

    base: Path
    fields: Rule
    what = "items ({input, loop})"

    def check(self, value, path, checker):
        item = self.fields.check(value, path, checker)
        if item is INVALID:
            return INVALID
        if item["input"] == LIVE:
            if item["loop"] is not None:
                return checker.add(path + ("loop",), "{name}: the live input has no loop points")
            return item
        return self._file(item, value, path, checker)

    def _file(self, item, value, path, checker):
        import soundfile

        file = self.base / item["input"]
        at = path + ("input",)
        try:
            info = soundfile.info(os.fspath(file))
        except (RuntimeError, soundfile.LibsndfileError, OSError) as err:
            if not file.exists():
                near = "; did you mean 'live'?" if did_you_mean(item["input"], (LIVE,)) else ""
                return checker.add(at, f"{{name}}: no such file {os.fspath(file)}{near}")
            return checker.add(at, f"{{name}}: {os.fspath(file)} is not an audio file rtq can read ({err})")
        lo, hi = STREAM_RATE_HZ
        if not (float(info.samplerate).is_integer() and lo <= info.samplerate <= hi):
            return checker.add(at, f"{{name}}: {os.fspath(file)} runs at {info.samplerate:g} Hz; rtq streams "
                                   f"whole rates from {lo} to {hi} Hz (resample the file)")
        if info.channels > MAX_CHANNELS:
            return checker.add(at, f"{{name}}: {os.fspath(file)} has {info.channels} channels; listening tests "
                                   "play mono or stereo")
        seconds = info.frames / info.samplerate
        if item["loop"] is not None and item["loop"][1] > seconds:
            return checker.add(path + ("loop",), f"{{name}} ends at {item['loop'][1]:g} s, after the end of "
                                                 f"{os.fspath(file)} ({seconds:g} s)")
        if item["loop"] is None and seconds < MIN_LOOP_SECONDS:
            return checker.add(at, f"{{name}}: {os.fspath(file)} lasts {seconds:g} s; an item loops at least "
                                   f"{MIN_LOOP_SECONDS:g} s")
        return {"input": os.fspath(file), "loop": item["loop"]}


@dataclass(frozen=True)
class _TestFile(Rule):
    """The top level: its fields, then what depends on the test's type."""

    fields: Rule

    def check(self, value, path, checker):
        fields = self.fields.check(value, path, checker)
        if fields is INVALID or not isinstance(value, dict):
            return INVALID
        kind = fields["type"]
        abx = kind in ("abx", "abxy")
        for key in ("trials", "sequential") if not abx else ("reference", "anchors"):
            if key in value:
                applies = "abx and abxy tests" if not abx else "mushra tests"
                checker.add((key,), f"{key} applies to {applies}, not {kind}", at="key")
        conditions = fields["conditions"]
        if abx:
            fields["trials"] = fields["trials"] or DEFAULT_TRIALS
            self._abx_conditions(conditions, value["conditions"], checker)
        else:
            fields["anchors"] = self._anchors(fields["anchors"], checker)
            if fields["anchors"] is INVALID:
                return INVALID
            self._names(conditions, fields["anchors"], "anchors" in value, checker)
        return INVALID if checker.problems else fields

    @staticmethod
    def _names(conditions, anchors, anchors_given: bool, checker) -> None:
        """Every MUSHRA condition has a name of its own: the hidden reference is
        'reference', an anchor is named by its preset."""
        for name in conditions:
            if name == REFERENCE:
                checker.add(("conditions", name), "'reference' is the hidden reference's name; name this "
                                                  "condition otherwise", at="key")
        seen = set(conditions) | {REFERENCE}
        for index, (source, _) in enumerate(anchors):
            name = _anchor_name(source)
            if name in seen:
                where = ("anchors", index) if anchors_given else ()
                checker.add(where, f"anchor '{name}' is named like another condition or anchor (an anchor "
                                   "takes its preset's name)")
            seen.add(name)

    @staticmethod
    def _abx_conditions(conditions, given, checker) -> None:
        for name in given:
            if name not in ("A", "B"):
                checker.add(("conditions", name), f"unknown condition '{name}': an ABX test compares exactly "
                                                  "A and B" + did_you_mean(name, ("A", "B")), at="key")
        for name in ("A", "B"):
            if name not in given:
                checker.add(("conditions",), f"{{name}} is missing condition '{name}' (an ABX test compares "
                                             "exactly A and B)", at="missing")

    @staticmethod
    def _anchors(anchors, checker):
        if anchors is not None:
            return anchors
        from rtq.presets import load_preset

        try:
            return tuple((name, load_preset(name)) for name in DEFAULT_ANCHORS)
        except PresetError as err:     # a broken installation, not the file's fault
            return checker.add((), f"the default anchors ({', '.join(DEFAULT_ANCHORS)}) cannot be loaded: "
                                   f"{str(err).splitlines()[0]}; name the anchors (anchors: [...])")
