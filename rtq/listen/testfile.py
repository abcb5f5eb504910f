"""Listening-test files: YAML in, a validated :class:`ListeningTest` out.

(The reader comes with the preset reader's per-kind schemas; see the module's later
revision.  This revision holds the data the drivers and the log use.)
"""
from __future__ import annotations

from dataclasses import dataclass, field

from rtq.spec import PresetSpec

TYPES = ("abx", "abxy", "mushra")
SWITCHES = ("dip", "crossfade", "cut")
ORIGINAL = "original"
LIVE = "live"
REFERENCE = "reference"
"""The name of the MUSHRA reference condition (played open by ``r``, and hidden among the others)."""
DEFAULT_ANCHORS = ("lowpass-3500", "lowpass-7000")
DEFAULT_TRIALS = 16
MIN_LOOP_SECONDS = 0.5


@dataclass(frozen=True)
class Item:
    """One programme item: an audio file (looped between the loop points) or ``live``."""

    input: str                                   # a path, or "live" (the sound card's input)
    loop: tuple[float, float] | None = None      # seconds; None: the whole file
    where: str = field(default="", compare=False)


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
