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

import os
from pathlib import Path
from typing import Any

from rtq.documents import MAX_PRESET_BYTES, MAX_YAML_VALUES, parse_document, read_text
from rtq.errors import PresetError
from rtq.schema import Fields, Integer, Stages, Text
from rtq.spec import MAX_SEED, PresetSpec, StageSpec

__all__ = ["PRESET_DIR", "MAX_PRESET_BYTES", "MAX_YAML_VALUES", "TOP_LEVEL", "parse_document", "read_text",
           "parse_preset", "load_preset", "shipped_presets", "preset_to_dict"]

PRESET_DIR = Path(__file__).resolve().parent.parent / "presets"
"""The folder of shipped presets (``presets/`` at the top of the repository)."""

TOP_LEVEL = Fields({
    "name": Text().optional(None),
    "description": Text().optional(""),
    "seed": Integer(0, MAX_SEED).optional(None),
    "chain": Stages(),
})
"""The rules of a preset's top level (the stages' are their kinds')."""


def _stage_kinds():
    """The stage kinds (:data:`rtq.stages.KINDS`) and the stage limit, with its words."""
    from rtq.stages import KINDS   # start-up cost: the stage kinds import NumPy and the DSP modules, which parsing rtq's command line does without
    from rtq.stages.limits import MAX_STAGES, TOO_MANY_STAGES

    return KINDS, (MAX_STAGES, TOO_MANY_STAGES)


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
    fields = parse_document(text, filename, TOP_LEVEL, stage_kinds=_stage_kinds)
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
            import difflib    # only for this message: not a cost of every render

            names = [p.stem for p in sorted(PRESET_DIR.glob("*.yaml"))]
            close = difflib.get_close_matches(source, names, n=3, cutoff=0.4)
            raise PresetError(
                f"unknown preset '{source}'; "
                + (f"closest shipped presets: {', '.join(close)}" if close else f"shipped presets: {', '.join(names)}"),
                located=False)
        filename = os.fspath(path)
    return parse_preset(read_text(path, filename), filename)


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
