"""Preset files: YAML in, validated :class:`~rtq.spec.PresetSpec` out.

A preset is a YAML mapping::

    name: cd-16-shibata          # optional, defaults to the file stem
    description: 24-bit master to 16-bit CD, TPDF dither, Shibata noise shaping
    seed: 1                      # optional integer, 0 to 2**64 - 1
    chain:                       # non-empty list; each item is {stage-kind: parameters}
      - gain: {db: -0.1}
      - requantize: {bits: 16, dither: tpdf, shaping: shibata}

Normalised :attr:`StageSpec.params <rtq.spec.StageSpec.params>` by stage kind (every key
present, defaults filled):

``gain``
    ``{"db": float}``, from -120 to +24 dB.
``requantize``
    ``{"bits": int, "dither": {"type": str, "amplitude": float}, "shaping": dict}``;
    ``bits`` from 1 to 32; ``dither`` is a type name (see
    :data:`rtq.dsp.requantize.DITHER_TYPES`, default ``tpdf``) or a mapping ``{type,
    amplitude}`` (amplitude >= 0, default 1.0); ``shaping`` (default none) is one of
    ``{"kind": "none"}``, ``{"kind": "table", "name": str}`` (see
    :data:`rtq.dsp.shaping.TABLE_NAMES`),
    ``{"kind": "fir", "coefficients": tuple[float, ...]}`` (1 to 64 values) or
    ``{"kind": "design", "order": int, "band_hz": float | None}`` (order 1 to 7).
``quantize``
    ``{"law": "mu-law" | "a-law", "bits": 8}``.
``lowpass``
    ``{"hz": float}``, from 10 to 100000 Hz: BS.1534-3's anchor low-pass at ``hz``.
``oversample``
    ``{"factor": int, "phase": str, "quality": str, "integer_latency": bool,
    "chain": tuple[StageSpec, ...]}``; the nested chain uses the same grammar.

The rules are each stage kind's ``schema`` (:mod:`rtq.stages`; the Python constructors
follow the same rules) and :data:`TOP_LEVEL`.  Every problem found in a file is
reported as one ``file:line:column: message`` line, and all of a file's problems are
raised together as one :class:`~rtq.errors.PresetError`.

Limits (so that no file can exhaust the machine; each far beyond real presets, whose
largest is under 1 KiB): a preset file holds at most :data:`MAX_PRESET_BYTES` bytes (no
more is read), expands to at most :data:`MAX_YAML_VALUES` YAML values counting what
aliases repeat (a "billion laughs" file answers at once), and has at most
:data:`~rtq.stages.limits.MAX_STAGES` stages; the oversampling limits are the stages'
(:mod:`rtq.stages.limits`).
Checks that depend on the stream's sample rate happen when the chain is prepared; they
use :attr:`StageSpec.where <rtq.spec.StageSpec.where>` to point into the file.
"""
from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any

import yaml

from rtq.errors import PresetError
from rtq.schema import INVALID, NO_VALUE, Checker, Fields, Integer, Problem, Stages, Text, did_you_mean
from rtq.spec import MAX_SEED, PresetSpec, StageSpec

PRESET_DIR = Path(__file__).resolve().parent.parent / "presets"
"""The folder of shipped presets (``presets/`` at the top of the repository)."""

MAX_PRESET_BYTES = 64 * 1024
MAX_YAML_VALUES = 100_000

TOP_LEVEL = Fields({
    "name": Text().optional(None),
    "description": Text().optional(""),
    "seed": Integer(0, MAX_SEED).optional(None),
    "chain": Stages(),
})
"""The rules of a preset's top level (the stages' are their kinds')."""

_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)   # libyaml, where PyYAML was built with it
_YAML_TAG = "tag:yaml.org,2002:"
# The tags a preset's nodes may carry: those YAML gives plain values anyway.
_PLAIN_TAGS = {
    yaml.ScalarNode: {_YAML_TAG + t for t in ("str", "int", "float", "bool", "null", "timestamp")},
    yaml.MappingNode: {_YAML_TAG + "map"},
    yaml.SequenceNode: {_YAML_TAG + "seq"},
}
# Numbers YAML 1.1 reads as text: an exponent without a point or without a sign (1e-3, 1.0e3).
_TEXT_EXPONENT = re.compile(r"[-+]?[0-9][0-9_]*(\.[0-9_]*)?[eE][-+]?[0-9]+")
# What an audio file starts with (a preset given where audio was meant, or the reverse).
_AUDIO_MAGIC = ((b"RIFF", "WAV"), (b"RF64", "WAV"), (b"riff", "Wave64"), (b"fLaC", "FLAC"), (b"OggS", "Ogg"),
                (b"FORM", "AIFF"), (b"caff", "CAF"), (b".snd", "AU"), (b"ID3", "MP3"), (b"wvpk", "WavPack"))
_AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".opus", ".aif", ".aiff", ".caf", ".au", ".w64", ".mp3", ".wv"}


def _stage_kinds():
    """The stage kinds (:data:`rtq.stages.KINDS`) and the stage limit, with its words."""
    from rtq.stages import KINDS   # start-up cost: the stage kinds load Numba, which parsing rtq's command line does without
    from rtq.stages.limits import MAX_STAGES, TOO_MANY_STAGES

    return KINDS, (MAX_STAGES, TOO_MANY_STAGES)


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_YAML_TAG):] if tag.startswith(_YAML_TAG) else tag


def _show(node: yaml.Node) -> str:
    """How a value is quoted in messages: as written for scalars, described for collections."""
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        count = len(node.value)
        return f"a list of {count} item{'s' * (count != 1)}" if count else "an empty list"
    if node.tag == _YAML_TAG + "null":
        return "null"
    # One line, however the scalar was written: control characters escaped, long text cut.
    text = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in node.value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"'{text}'" if node.tag == _YAML_TAG + "str" else text


def _name(path: tuple) -> str:
    """A part of the file as messages name it: top-level stages by kind alone
    (``requantize.bits``), nested ones by their path (``oversample.chain[0].gain.db``)."""
    parts = path[2:] if len(path) > 2 and path[0] == "chain" else path
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in parts).lstrip(".")


class _Reader(Checker):
    """Reads one file: YAML nodes into plain values (remembering each one's node), then
    the rules over those; every problem becomes a ``file:line:column: message`` line."""

    def __init__(self, filename: str, what: str = "preset"):
        super().__init__()
        self.filename = filename
        self.what = what            # what the file is, in messages
        self.lines: list[tuple[int, int, str]] = []   # problems of the YAML itself
        self.fatal: list[tuple[int, int, str]] = []   # ... that stop the reading (tags, alias loops)
        self.nodes: dict[tuple, yaml.Node] = {}        # path -> the value's node
        self.keys: dict[tuple, yaml.Node] = {}         # path -> the node of the key naming it
        self.values = 0
        self.stages = 0
        self._constructor = yaml.constructor.SafeConstructor()
        self.kinds: dict | None = None        # the stage kinds, loaded at the first stage

    def at(self, node: yaml.Node) -> str:
        mark = node.start_mark
        return f"{self.filename}:{mark.line + 1}:{mark.column + 1}"

    def _line(self, node: yaml.Node, message: str) -> tuple[int, int, str]:
        return node.start_mark.line, node.start_mark.column, f"{self.at(node)}: {message}"

    # -- YAML nodes to plain values -------------------------------------------------------

    def plain(self, node: yaml.Node, path: tuple, open_nodes: set[int]) -> Any:
        """The plain value of ``node`` (:data:`INVALID` where it cannot be had)."""
        self.values += 1
        if self.values > MAX_YAML_VALUES:
            raise PresetError(f"{self.filename}: the {self.what} expands to more than {MAX_YAML_VALUES} YAML values "
                              "(counting what aliases repeat), rtq's limit")
        if id(node) in open_nodes:
            self.fatal.append(self._line(node, "an alias refers to a node that contains it (recursive structure)"))
            return INVALID
        self.nodes[path] = node
        tagged = node.tag not in _PLAIN_TAGS[type(node)]
        if tagged:
            self.fatal.append(self._line(node, f"unsupported YAML tag '{_short_tag(node.tag)}': "
                                               f"{self.what}s hold only plain values"))
        if isinstance(node, yaml.ScalarNode):
            return INVALID if tagged else self._scalar(node)
        open_nodes.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.plain(item, path + (i,), open_nodes) for i, item in enumerate(node.value)]
            return self._mapping(node, path, open_nodes)
        finally:
            open_nodes.discard(id(node))

    def _scalar(self, node: yaml.ScalarNode) -> Any:
        if node.tag == _YAML_TAG + "timestamp":
            return node.value  # dates are only ever wanted as text (e.g. in a description)
        try:
            return self._constructor.construct_object(node)
        except (ValueError, KeyError):  # an explicit tag on text of another type: !!int sixteen
            self.lines.append(self._line(node, f"cannot read '{node.value}' as {_short_tag(node.tag)}"))
            return INVALID

    def _mapping(self, node: yaml.MappingNode, path: tuple, open_nodes: set[int]) -> dict:
        """Reports keys that are not text and duplicate keys (the first one counts)."""
        result: dict[str, Any] = {}
        for index, (key_node, value_node) in enumerate(node.value):
            key = self.plain(key_node, path + ((index,),), open_nodes)   # keys' own paths cannot clash
            if key is INVALID:
                continue
            if not isinstance(key, str):
                self.lines.append(self._line(key_node, f"keys must be text, got {_show(key_node)}"))
            elif key in result:
                first = self.keys[path + (key,)].start_mark.line + 1
                self.lines.append(self._line(key_node, f"duplicate key '{key}' in {_name(path) or self.what} "
                                                       f"(first at line {first})"))
            else:
                self.keys[path + (key,)] = key_node
                result[key] = self.plain(value_node, path + (key,), open_nodes)
        return result

    # -- the rules' side ------------------------------------------------------------------

    def stage(self, value: Any, path: tuple) -> Any:
        if self.kinds is None:
            self.kinds, self.max_stages = _stage_kinds()
        self.stages += 1
        if self.stages > self.max_stages[0]:
            return self.add(path, self.max_stages[1]) if self.stages == self.max_stages[0] + 1 else INVALID
        if not isinstance(value, dict):
            return self.add(path, "{name} must be a mapping", value)
        if len(value) != 1:
            found = f": {', '.join(value)} (start each stage with '- ')" if value else ""
            return self.add(path, f"{{name}} must have exactly one key (the stage kind), got {len(value)}{found}")
        [(kind, params)] = value.items()
        if kind not in self.kinds:
            hint = did_you_mean(kind, list(self.kinds)) or f" (stages: {', '.join(self.kinds)})"
            return self.add(path + (kind,), f"unknown stage '{kind}' {{in_parent}}", hint=hint, at="key")
        here = path + (kind,)
        rules = self.kinds[kind].schema
        checked = rules.check(params, here, self)
        if checked is INVALID:
            return INVALID
        where = {"": self.at(self.keys[here])}
        where.update({key: self.at(self.nodes[here + (key,)]) for key in params if key in rules.fields})
        return StageSpec(kind, checked, where)

    def _problem_line(self, problem: Problem) -> tuple[int, int, str]:
        path = problem.path
        if problem.at == "value":
            node = self.nodes[path]
        else:
            node = self.keys.get(path) or self.nodes[path]
        shown = None
        if problem.value is not NO_VALUE:
            shown = _show(self.nodes[path])
            problem = Problem(path, problem.text, problem.value, problem.hint + self._yaml_hint(problem, node),
                              problem.at, problem.number, problem.choices)
        parent = _name(path[:-1])
        return self._line(node, problem.message(_name(path) or self.what, f"in {parent}" if parent else "at top level",
                                                shown))

    @staticmethod
    def _yaml_hint(problem: Problem, node: yaml.Node) -> str:
        """What YAML made of a plain scalar, where that explains the problem."""
        if not isinstance(node, yaml.ScalarNode) or node.style:    # quoted or a block: not plain
            return ""
        if problem.number and node.tag == _YAML_TAG + "str" and _TEXT_EXPONENT.fullmatch(node.value):
            return "; YAML reads it as text: write the exponent as in 1.0e-3 or 1.0e+3"
        if node.tag == _YAML_TAG + "bool" and node.value.lower() not in ("true", "false"):   # yes, no, on, off
            return (f"; YAML reads {node.value} as {'true' if problem.value else 'false'}"
                    + did_you_mean(node.value, problem.choices))
        return ""

    def raise_problems(self, lines) -> None:
        if lines:
            raise PresetError("\n".join(line for *_, line in sorted(lines)))

    def read(self, root: yaml.Node, rules: Fields) -> dict:
        value = self.plain(root, (), set())
        self.raise_problems(self.fatal)
        fields = rules.check(value, (), self)
        self.raise_problems(self.lines + [self._problem_line(problem) for problem in self.problems])
        return fields


# ----------------------------------------------------------------------------- documents


def _compose(text: str, filename: str, what: str = "preset") -> yaml.Node:
    """The document's node tree; YAML errors keep the parser's position.

    libyaml composes (four times faster); a document it refuses is composed again by
    PyYAML's own parser, whose messages rtq reports (and which has the last word)."""
    root = None
    try:
        root = yaml.compose(text, Loader=_FAST_LOADER)
    except Exception:   # noqa: BLE001 (whatever libyaml refuses, PyYAML judges and words)
        root = _compose_in_python(text, filename)
    if root is None:
        raise PresetError(f"{filename}:1:1: {what} is empty (expected a mapping"
                          + (" with a 'chain' list)" if what == "preset" else ")"))
    return root


def _compose_in_python(text: str, filename: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        problem = ", ".join(filter(None, (exc.context, exc.problem)))
        raise PresetError(f"{filename}:{mark.line + 1}:{mark.column + 1}: invalid YAML: {problem}") from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - text.rfind("\n", 0, exc.position)
        raise PresetError(f"{filename}:{line}:{column}: invalid YAML: {str(exc).splitlines()[0]}") from None
    except RecursionError:
        raise PresetError(f"{filename}:1:1: invalid YAML: nested too deeply") from None


def _too_large(filename: str, what: str) -> PresetError:
    return PresetError(f"{filename}: the {what} is larger than {MAX_PRESET_BYTES} bytes, rtq's limit for a {what}")


def parse_document(text: str, filename: str, rules: Fields, what: str = "preset") -> dict:
    """YAML text checked against ``rules`` as a preset is (safe plain values only, the
    size and alias limits, every problem at ``filename:line:column``, all raised together
    as one :class:`~rtq.errors.PresetError`); returns the checked, normalised values.
    For files of rtq's own that hold presets' kind of data (listening tests); ``what``
    names such a file in messages (``test is empty``)."""
    if len(text) > MAX_PRESET_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_PRESET_BYTES:
        raise _too_large(filename, what)
    try:
        return _Reader(filename, what).read(_compose(text, filename, what), rules)
    except RecursionError:
        raise PresetError(f"{filename}:1:1: invalid YAML: nested too deeply") from None


def parse_preset(text: str, filename: str) -> PresetSpec:
    """Parse and validate the YAML text of a preset.

    Parameters
    ----------
    text : str
        The YAML document.
    filename : str
        Used as-is at the start of every message, and (its stem) as the default name.

    Returns
    -------
    PresetSpec
        The normalised preset; ``source`` is ``filename``.

    Raises
    ------
    PresetError
        With one ``file:line:column: message`` line per problem found.
    """
    fields = parse_document(text, filename, TOP_LEVEL)
    return PresetSpec(
        name=fields["name"] or Path(filename).stem,
        description=fields["description"],
        chain=fields["chain"],
        seed=fields["seed"],
        source=filename,
    )


def load_preset(source: str | os.PathLike) -> PresetSpec:
    """Load a preset from a YAML file or by the name of a shipped preset.

    Parameters
    ----------
    source : str or os.PathLike
        A path to a YAML file, or the name (file stem) of a preset in :data:`PRESET_DIR`.
        A bare word with no folder and no suffix that is not an existing file is taken
        as a shipped preset's name.

    Returns
    -------
    PresetSpec
        The normalised preset.

    Raises
    ------
    PresetError
        If the file cannot be read or is not a valid preset, or no shipped preset has
        that name (the message then lists the closest names).
    """
    path = Path(source)
    filename = os.fspath(source)
    if isinstance(source, str) and not path.exists() and path.name == source and not path.suffix:
        path = PRESET_DIR / f"{source}.yaml"
        if not path.is_file():
            names = [p.stem for p in sorted(PRESET_DIR.glob("*.yaml"))]
            close = difflib.get_close_matches(source, names, n=3, cutoff=0.4)
            raise PresetError(
                f"unknown preset '{source}'; "
                + (f"closest shipped presets: {', '.join(close)}" if close else f"shipped presets: {', '.join(names)}"),
                located=False)
        filename = os.fspath(path)
    return parse_preset(read_text(path, filename), filename)


def read_text(path: str | os.PathLike, filename: str, what: str = "preset") -> str:
    """The text of a YAML file rtq reads (a preset, or ``what``): at most
    :data:`MAX_PRESET_BYTES` (no more is read), UTF-8; an audio file is named as one.
    PresetError otherwise."""
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_PRESET_BYTES + 1)    # no more: /dev/zero is not read to the end
    except OSError as exc:
        raise PresetError(f"{filename}: cannot read {what}: {exc.strerror}") from None
    if len(data) > MAX_PRESET_BYTES:
        raise _too_large(filename, what)
    audio = next((kind for magic, kind in _AUDIO_MAGIC if data.startswith(magic)), None)
    if audio is not None:
        raise PresetError(f"{filename}: cannot read {what}: it looks like an audio file ({audio}), not a YAML {what}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        audio = " (it looks like an audio file)" if Path(path).suffix.lower() in _AUDIO_SUFFIXES else ""
        raise PresetError(f"{filename}: cannot read {what}: not UTF-8 text{audio}") from None


def shipped_presets() -> list[PresetSpec]:
    """Every preset in :data:`PRESET_DIR`, sorted by name.

    Returns
    -------
    list of PresetSpec
    """
    return sorted((load_preset(path) for path in PRESET_DIR.glob("*.yaml")), key=lambda preset: preset.name)


def preset_to_dict(preset: PresetSpec) -> dict[str, Any]:
    """Turn a preset back into plain data in the file grammar.

    Parameters
    ----------
    preset : PresetSpec

    Returns
    -------
    dict
        Lists, mappings, text and numbers only; ``yaml.safe_dump`` of it parses back to
        an equal preset.
    """
    data: dict[str, Any] = {"name": preset.name, "description": preset.description}
    if preset.seed is not None:
        data["seed"] = preset.seed
    data["chain"] = [_stage_to_data(stage) for stage in preset.chain]
    return data


def _stage_to_data(stage: StageSpec) -> dict[str, Any]:
    rules = _stage_kinds()[0][stage.kind].schema.fields
    return {stage.kind: {key: [_stage_to_data(inner) for inner in value] if isinstance(rules[key], Stages)
                         else rules[key].to_data(value) for key, value in stage.params.items()}}
