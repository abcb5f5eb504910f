"""Reading rtq's YAML documents (presets, listening tests, levels files): safe plain
values only, size and alias limits, and every problem at ``file:line:column``.

:func:`read_text` reads a file within its size limit; :func:`parse_document` checks the
text against rules of :mod:`rtq.schema` and returns the checked values, raising one
:class:`~rtq.errors.PresetError` with every problem.  A document that holds stages
(a preset's ``chain``) needs the stage kinds: the caller passes ``stage_kinds`` (see
:func:`rtq.presets.parse_preset`), so this module depends on no stage and a stage kind
may read a document of its own (``quantize``'s trained levels).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from rtq.errors import PresetError
from rtq.schema import INVALID, NO_VALUE, Checker, Fields, Problem, did_you_mean
from rtq.spec import StageSpec

MAX_PRESET_BYTES = 64 * 1024
MAX_YAML_VALUES = 100_000


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

    def __init__(self, filename: str, what: str = "preset", max_values: int = MAX_YAML_VALUES, stage_kinds=None):
        super().__init__()
        self.stage_kinds = stage_kinds    # () -> (kinds by name, (most stages, its words))
        self.filename = filename
        self.what = what            # what the file is, in messages
        self.max_values = max_values
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
        if self.values > self.max_values:
            raise PresetError(f"{self.filename}: the {self.what} expands to more than {self.max_values} YAML values "
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
            if self.stage_kinds is None:
                raise RuntimeError("a document holding stages is read with its stage kinds (stage_kinds=)")
            self.kinds, self.max_stages = self.stage_kinds()
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


def _too_large(filename: str, what: str, max_bytes: int = MAX_PRESET_BYTES) -> PresetError:
    return PresetError(f"{filename}: the {what} is larger than {max_bytes} bytes, rtq's limit for a {what}")


def parse_document(text: str, filename: str, rules: Fields, what: str = "preset", *,
                   max_bytes: int = MAX_PRESET_BYTES, max_values: int = MAX_YAML_VALUES, stage_kinds=None) -> dict:
    """YAML text checked against ``rules`` as a preset is (safe plain values only, the
    size and alias limits, every problem at ``filename:line:column``, all raised together
    as one :class:`~rtq.errors.PresetError`); returns the checked, normalised values.
    For files of rtq's own that hold presets' kind of data (listening tests, trained
    levels); ``what`` names such a file in messages (``test is empty``); ``max_bytes``
    and ``max_values`` are its limits (a preset's by default); ``stage_kinds`` gives the
    stage kinds to a document that holds stages."""
    if len(text) > max_bytes or len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise _too_large(filename, what, max_bytes)
    try:
        return _Reader(filename, what, max_values, stage_kinds).read(_compose(text, filename, what), rules)
    except RecursionError:
        raise PresetError(f"{filename}:1:1: invalid YAML: nested too deeply") from None


def read_text(path: str | os.PathLike, filename: str, what: str = "preset", *,
              max_bytes: int = MAX_PRESET_BYTES) -> str:
    """The text of a YAML file rtq reads (a preset, or ``what``): at most
    ``max_bytes`` (:data:`MAX_PRESET_BYTES`; no more is read), UTF-8; an audio file is
    named as one.  PresetError otherwise."""
    try:
        with open(path, "rb") as file:
            data = file.read(max_bytes + 1)    # no more: /dev/zero is not read to the end
    except OSError as exc:
        raise PresetError(f"{filename}: cannot read {what}: {exc.strerror}") from None
    # An audio file is named as one whatever its size (swapped arguments are the usual cause).
    audio = next((kind for magic, kind in _AUDIO_MAGIC if data.startswith(magic)), None)
    if audio is not None:
        raise PresetError(f"{filename}: cannot read {what}: it looks like an audio file ({audio}), not a YAML {what}")
    if len(data) > max_bytes:
        raise _too_large(filename, what, max_bytes)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        audio = " (it looks like an audio file)" if Path(path).suffix.lower() in _AUDIO_SUFFIXES else ""
        raise PresetError(f"{filename}: cannot read {what}: not UTF-8 text{audio}") from None
