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
    ``bits`` from 1 to 32; ``dither`` is a type name (see :data:`DITHER_TYPES`, default
    ``tpdf``) or a mapping ``{type, amplitude}`` (amplitude >= 0, default 1.0);
    ``shaping`` (default none) is one of ``{"kind": "none"}``,
    ``{"kind": "table", "name": str}`` (see :data:`SHAPING_TABLES`),
    ``{"kind": "fir", "coefficients": tuple[float, ...]}`` (1 to 64 values) or
    ``{"kind": "design", "order": int, "band_hz": float | None}`` (order 1 to 7).
``quantize``
    ``{"law": "mu-law" | "a-law", "bits": 8}``.
``oversample``
    ``{"factor": int, "phase": str, "quality": str, "integer_latency": bool,
    "chain": tuple[StageSpec, ...]}``; the nested chain uses the same grammar.

Every problem found in a file is reported as one ``file:line:column: message`` line, and
all of a file's problems are raised together as one :class:`~rtq.errors.PresetError`.
Checks that depend on the stream's sample rate happen when the chain is prepared; they
use :attr:`StageSpec.where <rtq.spec.StageSpec.where>` to point into the file.
"""
from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from collections.abc import Callable
from typing import Any

import yaml

from rtq.errors import PresetError
from rtq.spec import (BITS_RANGE, GAIN_DB_RANGE, MAX_SEED, MIN_BAND_HZ, NTF_ORDER_RANGE, PresetSpec, StageSpec,
                      requirement)

PRESET_DIR = Path(__file__).resolve().parent.parent / "presets"
"""The folder of shipped presets (``presets/`` at the top of the repository)."""

DITHER_TYPES = ("none", "rpdf", "tpdf", "tpdf-hp", "gaussian")
SHAPING_TABLES = (
    "first-order",
    "lipshitz",
    "f-weighted",
    "modified-e-weighted",
    "improved-e-weighted",
    "gesemann",
    "shibata",
    "low-shibata",
    "high-shibata",
)
COMPANDING_LAWS = ("mu-law", "a-law")
OVERSAMPLE_FACTORS = (2, 4, 8, 16, 32, 64)
OVERSAMPLE_PHASES = ("linear", "minimum")
OVERSAMPLE_QUALITIES = ("draft", "normal", "high")
MAX_FIR_TAPS = 64

_YAML_TAG = "tag:yaml.org,2002:"
# The tags a preset's nodes may carry: those YAML gives plain values anyway.
_PLAIN_TAGS = {
    yaml.ScalarNode: {_YAML_TAG + t for t in ("str", "int", "float", "bool", "null", "timestamp")},
    yaml.MappingNode: {_YAML_TAG + "map"},
    yaml.SequenceNode: {_YAML_TAG + "seq"},
}
_REQUIRED = object()
_NOT_SCALAR = object()

_Reader = Callable[["_Context", yaml.Node, str], Any]
"""Reads one value node: ``reader(context, node, path)``; raises :class:`_Invalid`."""


class _Invalid(Exception):
    """One bad value: reported at ``node`` and skipped, so the rest of the file is still checked."""

    def __init__(self, node: yaml.Node, message: str):
        super().__init__(message)
        self.node = node
        self.message = message


class _Context:
    """The file being read and the problems found in it so far."""

    def __init__(self, filename: str):
        self.filename = filename
        self.problems: list[tuple[int, int, str]] = []
        self._constructor = yaml.constructor.SafeConstructor()

    def at(self, node: yaml.Node) -> str:
        mark = node.start_mark
        return f"{self.filename}:{mark.line + 1}:{mark.column + 1}"

    def add(self, node: yaml.Node, message: str) -> None:
        mark = node.start_mark
        self.problems.append((mark.line, mark.column, f"{self.at(node)}: {message}"))

    def raise_problems(self) -> None:
        if self.problems:
            raise PresetError("\n".join(line for *_, line in sorted(self.problems)))

    def read(self, reader: _Reader, node: yaml.Node, path: str) -> Any:
        """Run ``reader``; on a bad value record the problem and return None."""
        try:
            return reader(self, node, path)
        except _Invalid as bad:
            self.add(bad.node, bad.message)
            return None

    def scalar(self, node: yaml.Node) -> Any:
        """The Python value of a scalar node, or ``_NOT_SCALAR`` for lists and mappings."""
        if not isinstance(node, yaml.ScalarNode):
            return _NOT_SCALAR
        if node.tag == _YAML_TAG + "timestamp":
            return node.value  # dates are only ever wanted as text (e.g. in a description)
        try:
            return self._constructor.construct_object(node)
        except (ValueError, KeyError):  # an explicit tag on text of another type: !!int sixteen
            raise _Invalid(node, f"cannot read '{node.value}' as {_short_tag(node.tag)}") from None

    def mapping(self, node: yaml.Node, path: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """``{key: (key_node, value_node)}``; reports non-text and duplicate keys."""
        if not isinstance(node, yaml.MappingNode):
            raise _Invalid(node, f"{path or 'preset'} must be a mapping, got {_show(node)}")
        pairs: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            key = self.scalar(key_node)
            if not isinstance(key, str):
                self.add(key_node, f"keys must be text, got {_show(key_node)}")
            elif key in pairs:
                first = pairs[key][0].start_mark.line + 1
                self.add(key_node, f"duplicate key '{key}' in {path or 'preset'} (first at line {first})")
            else:
                pairs[key] = (key_node, value_node)
        return pairs


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


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _did_you_mean(word: Any, choices: tuple | list) -> str:
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, [str(c) for c in choices], n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


# ----------------------------------------------------------------------------- value readers


def _integer(lo: int | None = None, hi: int | None = None) -> _Reader:
    def read(ctx: _Context, node: yaml.Node, path: str) -> int:
        value = ctx.scalar(node)
        problem = requirement(value, lo, hi, integer=True)
        if problem is None:
            return value
        raise _Invalid(node, f"{path} {problem}, got {_show(node)}")

    return read


# Numbers YAML 1.1 reads as text: an exponent without a point or without a sign (1e-3, 1.0e3).
_TEXT_EXPONENT = re.compile(r"[-+]?[0-9][0-9_]*(\.[0-9_]*)?[eE][-+]?[0-9]+")


def _number(lo: float | None = None, hi: float | None = None) -> _Reader:
    def read(ctx: _Context, node: yaml.Node, path: str) -> float:
        value = ctx.scalar(node)
        problem = requirement(value, lo, hi)
        if problem is None:
            return float(value)
        hint = ""
        if isinstance(value, str) and node.style is None and _TEXT_EXPONENT.fullmatch(value):
            hint = "; YAML reads it as text: write the exponent as in 1.0e-3 or 1.0e+3"
        raise _Invalid(node, f"{path} {problem}, got {_show(node)}{hint}")

    return read


def _choice(options: tuple) -> _Reader:
    def read(ctx: _Context, node: yaml.Node, path: str) -> Any:
        value = ctx.scalar(node)
        if any(type(value) is type(option) and value == option for option in options):
            return value
        wanted = str(options[0]) if len(options) == 1 else "one of " + ", ".join(map(str, options))
        raise _Invalid(node, f"{path} must be {wanted}, got {_show(node)}{_did_you_mean(value, options)}")

    return read


def _text(ctx: _Context, node: yaml.Node, path: str) -> str:
    value = ctx.scalar(node)
    if isinstance(value, str):
        return value
    raise _Invalid(node, f"{path} must be text, got {_show(node)}")


def _boolean(ctx: _Context, node: yaml.Node, path: str) -> bool:
    value = ctx.scalar(node)
    if isinstance(value, bool):
        return value
    raise _Invalid(node, f"{path} must be true or false, got {_show(node)}")


def _fields(
    ctx: _Context,
    node: yaml.Node,
    path: str,
    schema: dict[str, tuple[_Reader, Any]],
    where: dict[str, str] | None = None,
    missing_at: yaml.Node | None = None,
) -> dict[str, Any]:
    """Read a mapping against ``schema`` (``{key: (reader, default or _REQUIRED)}``).

    Unknown keys and missing required keys are reported (the latter at ``missing_at``,
    default the mapping itself); the positions of the values present go into ``where``.
    """
    pairs = ctx.mapping(node, path)
    for key, (key_node, _) in pairs.items():
        if key not in schema:
            where_text = f"in {path}" if path else "at top level"
            hint = _did_you_mean(key, list(schema)) or f" (valid keys: {', '.join(schema)})"
            ctx.add(key_node, f"unknown key '{key}' {where_text}{hint}")
    values = {}
    for key, (reader, default) in schema.items():
        if key in pairs:
            value_node = pairs[key][1]
            values[key] = ctx.read(reader, value_node, _join(path, key))
            if where is not None:
                where[key] = ctx.at(value_node)
        elif default is _REQUIRED:
            ctx.add(missing_at or node, f"{path or 'preset'} is missing required key '{key}'")
        else:
            values[key] = default
    return values


_DITHER_FIELDS = {
    "type": (_choice(DITHER_TYPES), "tpdf"),
    "amplitude": (_number(0), 1.0),
}


def _dither(ctx: _Context, node: yaml.Node, path: str) -> dict[str, Any]:
    if isinstance(node, yaml.MappingNode):
        return _fields(ctx, node, path, _DITHER_FIELDS)
    return {"type": _choice(DITHER_TYPES)(ctx, node, path), "amplitude": 1.0}


def _coefficients(ctx: _Context, node: yaml.Node, path: str) -> tuple[float, ...]:
    if not isinstance(node, yaml.SequenceNode) or not 1 <= len(node.value) <= MAX_FIR_TAPS:
        raise _Invalid(node, f"{path} must be a list of 1 to {MAX_FIR_TAPS} finite numbers, got {_show(node)}")
    return tuple(ctx.read(_number(), item, f"{path}[{i}]") for i, item in enumerate(node.value))


_SHAPING_FIELDS = {
    "coefficients": (_coefficients, None),
    "order": (_integer(*NTF_ORDER_RANGE), None),
    "band_hz": (_number(MIN_BAND_HZ), None),
}


def _shaping(ctx: _Context, node: yaml.Node, path: str) -> dict[str, Any]:
    if not isinstance(node, yaml.MappingNode):
        name = _choice(("none",) + SHAPING_TABLES)(ctx, node, path)
        return {"kind": "none"} if name == "none" else {"kind": "table", "name": name}
    values = _fields(ctx, node, path, _SHAPING_FIELDS)
    keys = {key.value: key for key, _ in node.value}
    if "coefficients" in keys and "order" in keys:
        raise _Invalid(node, f"{path} takes 'coefficients' or 'order', not both")
    if "coefficients" in keys:
        if "band_hz" in keys:
            raise _Invalid(keys["band_hz"], f"{path}.band_hz applies only to a designed filter ('order')")
        return {"kind": "fir", "coefficients": values["coefficients"]}
    if "order" in keys:
        return {"kind": "design", "order": values["order"], "band_hz": values["band_hz"]}
    raise _Invalid(node, f"{path} needs 'coefficients' (an FIR filter) or 'order' (a designed filter)")


def _chain(ctx: _Context, node: yaml.Node, path: str) -> tuple[StageSpec, ...]:
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        raise _Invalid(node, f"{path} must be a non-empty list of stages, got {_show(node)}")
    return tuple(ctx.read(_stage, item, f"{path}[{i}]") for i, item in enumerate(node.value))


def _stage(ctx: _Context, node: yaml.Node, path: str) -> StageSpec:
    pairs = ctx.mapping(node, path)
    if len(pairs) != 1:
        found = f": {', '.join(pairs)} (start each stage with '- ')" if pairs else ""
        raise _Invalid(node, f"{path} must have exactly one key (the stage kind), got {len(pairs)}{found}")
    [(kind, (key_node, value_node))] = pairs.items()
    if kind not in _STAGES:
        hint = _did_you_mean(kind, list(_STAGES)) or f" (stages: {', '.join(_STAGES)})"
        raise _Invalid(key_node, f"unknown stage '{kind}' in {path}{hint}")
    # Top-level stages are named by kind alone (requantize.bits), nested ones by full path.
    stage_path = kind if path.startswith("chain[") else f"{path}.{kind}"
    where = {"": ctx.at(key_node)}
    params = _fields(ctx, value_node, stage_path, _STAGES[kind], where, missing_at=key_node)
    return StageSpec(kind, params, where)


_STAGES: dict[str, dict[str, tuple[_Reader, Any]]] = {
    "gain": {"db": (_number(*GAIN_DB_RANGE), _REQUIRED)},
    "requantize": {
        "bits": (_integer(*BITS_RANGE), _REQUIRED),
        "dither": (_dither, {"type": "tpdf", "amplitude": 1.0}),
        "shaping": (_shaping, {"kind": "none"}),
    },
    "quantize": {
        "law": (_choice(COMPANDING_LAWS), _REQUIRED),
        "bits": (_choice((8,)), 8),
    },
    "oversample": {
        "factor": (_choice(OVERSAMPLE_FACTORS), _REQUIRED),
        "phase": (_choice(OVERSAMPLE_PHASES), "linear"),
        "quality": (_choice(OVERSAMPLE_QUALITIES), "high"),
        "integer_latency": (_boolean, False),
        "chain": (_chain, _REQUIRED),
    },
}
STAGE_KINDS = tuple(_STAGES)

_TOP_FIELDS = {
    "name": (_text, None),
    "description": (_text, ""),
    "seed": (_integer(0, MAX_SEED), None),
    "chain": (_chain, _REQUIRED),
}


def _top_level(ctx: _Context, node: yaml.Node, path: str) -> dict[str, Any]:
    return _fields(ctx, node, path, _TOP_FIELDS)


# ----------------------------------------------------------------------------- documents


def _compose(text: str, filename: str) -> yaml.Node:
    """The document's node tree; YAML errors keep the parser's position."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
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
    if root is None:
        raise PresetError(f"{filename}:1:1: preset is empty (expected a mapping with a 'chain' list)")
    return root


def _check_tags(ctx: _Context, node: yaml.Node, open_nodes: set[int]) -> None:
    """Report tags that would build Python objects (or anything but plain values) and alias loops."""
    if id(node) in open_nodes:
        ctx.add(node, "an alias refers to a node that contains it (recursive structure)")
        return
    if node.tag not in _PLAIN_TAGS[type(node)]:
        ctx.add(node, f"unsupported YAML tag '{_short_tag(node.tag)}': presets hold only plain values")
    children = []
    if isinstance(node, yaml.MappingNode):
        children = [child for pair in node.value for child in pair]
    elif isinstance(node, yaml.SequenceNode):
        children = node.value
    open_nodes.add(id(node))
    for child in children:
        _check_tags(ctx, child, open_nodes)
    open_nodes.discard(id(node))


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
    ctx = _Context(filename)
    root = _compose(text, filename)
    _check_tags(ctx, root, set())
    ctx.raise_problems()
    fields = ctx.read(_top_level, root, "")
    ctx.raise_problems()
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
                + (f"closest shipped presets: {', '.join(close)}" if close else f"shipped presets: {', '.join(names)}")
            )
        filename = os.fspath(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise PresetError(f"{filename}: cannot read preset: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise PresetError(f"{filename}: cannot read preset: not UTF-8 text") from None
    return parse_preset(text, filename)


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
    data["chain"] = _chain_to_list(preset.chain)
    return data


def _chain_to_list(chain: tuple[StageSpec, ...]) -> list[dict[str, Any]]:
    return [{stage.kind: _params_to_dict(stage)} for stage in chain]


def _params_to_dict(stage: StageSpec) -> dict[str, Any]:
    params = dict(stage.params)
    if stage.kind == "requantize":
        params["dither"] = dict(params["dither"])
        params["shaping"] = _shaping_to_data(params["shaping"])
    elif stage.kind == "oversample":
        params["chain"] = _chain_to_list(params["chain"])
    return params


def _shaping_to_data(shaping: dict[str, Any]) -> str | dict[str, Any]:
    kind = shaping["kind"]
    if kind == "none":
        return "none"
    if kind == "table":
        return shaping["name"]
    if kind == "fir":
        return {"coefficients": list(shaping["coefficients"])}
    band = {} if shaping["band_hz"] is None else {"band_hz": shaping["band_hz"]}
    return {"order": shaping["order"], **band}
