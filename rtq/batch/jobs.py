"""Planning a batch: every input times every preset, each job exactly
``rtq render PRESET INPUT OUTPUT --seed S``, checked before anything runs.

Output names come from a template (``--name``, default :data:`DEFAULT_NAME`) with the
fields ``{stem}`` (the input's name without its extension), ``{relpath}`` (its path
from its root, without the extension: ``{relpath}`` keeps the input tree under the
output folder), ``{preset}`` (the preset's name) and ``{ext}``: the input's own
extension when its format holds the output exactly (FLAC stays FLAC for a 16-bit
preset), else ``.wav`` (else ``.aiff``).  Everything the plan can know is checked here,
each as one line: presets, the template, inputs (none found, a glob that matches
nothing), two jobs that would write one output, an input that is also an output, an
output folder that cannot be written, a subtype a preset's output does not fit.
"""
from __future__ import annotations

import os
import string
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf

from ..chain import Chain
from ..errors import UsageError
from ..presets import PRESET_DIR, load_preset
from ..files.audio import output_format
from ..render import choose_subtype
from ..spec import MAX_SEED, PresetSpec, checked_integer
from .identity import derive_seed, preset_sha256
from .inputs import find_inputs

DEFAULT_NAME = "{stem}.{preset}{ext}"
MANIFEST_NAME = "rtq-batch.jsonl"
TEMPLATE_FIELDS = ("stem", "relpath", "preset", "ext")
_FALLBACK_EXTENSIONS = (".wav", ".aiff")


@dataclass(frozen=True)
class Job:
    """One render of a batch: ``input`` through the preset ``preset`` into ``output``
    with ``seed``, as ``rtq render`` would (:meth:`command`)."""

    input: str                  # absolute path
    relpath: str                # from the input's root, "/" between folders: the seed's
    preset: str                 # the preset's name
    preset_sha256: str          # of its canonical form (rtq.batch.identity)
    preset_file: str            # the YAML file it was read from
    seed: int
    output: str                 # absolute path
    manifest: str               # the batch's manifest (absolute path)
    subtype: str | None = None  # asked for (--subtype); None: render's default
    report: str | None = None   # where the render report goes, if asked for
    force: bool = False         # may replace an output the batch did not write
    allow_short: bool = False   # render inputs shorter than their header says
    spec: PresetSpec | None = field(default=None, repr=False, compare=False)

    def command(self) -> list[str]:
        """The ``rtq render`` command that makes the same output."""
        shipped = Path(self.preset_file).parent == PRESET_DIR and Path(self.preset_file).stem == self.preset
        argv = ["rtq", "render", self.preset if shipped else self.preset_file, self.input, self.output,
                "--seed", str(self.seed)]
        return argv + (["--subtype", self.subtype] if self.subtype else []) + \
            (["--allow-short"] if self.allow_short else [])


def plan(presets, inputs, out, *, name: str = DEFAULT_NAME, seed: int | None = None, subtype: str | None = None,
         report: bool = False, force: bool = False, allow_short: bool = False, manifest=None,
         stdin=None) -> list[Job]:
    """The jobs of a batch: every input (in the order found) through every preset.

    Parameters
    ----------
    presets : sequence of str, os.PathLike or PresetSpec
        Shipped preset names or YAML files.
    inputs : sequence of str or os.PathLike
        Files, folders (searched recursively for audio files), globs; ``"-"`` reads
        paths from ``stdin`` (:mod:`rtq.batch.inputs`).
    out : str or os.PathLike
        The output folder (made when the batch runs).
    name : str
        The output name template (:data:`DEFAULT_NAME`), relative to ``out``.
    seed : int, optional
        The base seed (default each preset's, else 0) each job's seed is derived from
        (:func:`rtq.batch.identity.derive_seed`).
    subtype : str, optional
        Output subtype for every job (default: render's, per preset).
    report : bool
        Write each job's render report beside its output (``OUTPUT.json``).
    force : bool
        Let jobs replace existing outputs the batch did not write.
    allow_short : bool
        Render inputs that end before their header's length (else such a job fails).
    manifest : str or os.PathLike, optional
        The JSON Lines manifest (default ``out/rtq-batch.jsonl``).

    Raises
    ------
    UsageError, PresetError
        One line for anything that stops the batch before it runs.
    """
    specs = [spec if isinstance(spec, PresetSpec) else load_preset(spec) for spec in presets]
    if not specs:
        raise UsageError("no presets: name at least one")
    _check_preset_names(specs)
    if seed is not None:
        try:
            checked_integer(seed, "--seed", 0, MAX_SEED)
        except ValueError as err:
            raise UsageError(str(err)) from None
    _check_template(name)
    out = os.path.abspath(out)
    manifest = os.path.abspath(manifest) if manifest is not None else os.path.join(out, MANIFEST_NAME)
    found = find_inputs(inputs, exclude=[out, manifest], stdin=stdin)
    if not found:
        raise UsageError("no inputs: --inputs - read no paths from standard input")
    chains = {spec.name: Chain.from_spec(spec) for spec in specs}
    hashes = {spec.name: preset_sha256(spec) for spec in specs}
    checked: dict[tuple[str, str], str] = {}
    jobs = []
    for item in found:
        for spec in specs:
            chain = chains[spec.name]
            ext = _extension(chain, item.path, subtype, checked)
            output = _output_path(out, name, item.relpath, spec.name, ext)
            _check_format(chain, output, subtype, checked)
            base = seed if seed is not None else (spec.seed if spec.seed is not None else 0)
            jobs.append(Job(item.path, item.relpath, spec.name, hashes[spec.name], os.path.abspath(spec.source),
                            derive_seed(base, spec.name, item.relpath), output, manifest,
                            subtype.upper() if subtype else None, output + ".json" if report else None, force,
                            allow_short, spec))
    _check_outputs(jobs, manifest)
    return jobs


def _check_preset_names(specs) -> None:
    seen = {}
    for spec in specs:
        if not spec.name or "/" in spec.name or "\0" in spec.name or spec.name in (".", ".."):
            raise UsageError(f"{spec.source}: preset name {spec.name!r} cannot be part of a file name")
        if spec.name in seen:
            raise UsageError(f"two presets are called {spec.name}: {seen[spec.name]} and {spec.source}")
        seen[spec.name] = spec.source


def _check_template(template: str) -> None:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as err:
        raise UsageError(f"--name {template}: {err}") from None
    for _, field_name, spec, conversion in parsed:
        if field_name is not None and (field_name not in TEMPLATE_FIELDS or spec or conversion):
            raise UsageError(f"--name {template}: unknown field {{{field_name}}}; use "
                             + ", ".join(f"{{{f}}}" for f in TEMPLATE_FIELDS))


def _extension(chain: Chain, input_path: str, subtype: str | None, checked) -> str:
    """``{ext}``: the input's extension if its format holds the output, else a fallback."""
    own = os.path.splitext(input_path)[1]
    candidates = [ext for ext in (own, *_FALLBACK_EXTENSIONS) if ext]
    for ext in candidates:
        if _fits(chain, "x" + ext, subtype, checked) is None:
            return ext
    # Explain with a container that has the subtype, if one does.
    offering = [ext for ext in candidates
                if subtype is None or subtype.upper() in sf.available_subtypes(output_format(Path("x" + ext)))]
    raise UsageError(f"preset {chain.name}: {_fits(chain, 'x' + (offering or candidates)[0], subtype, checked)}")


def _fits(chain: Chain, path: str, subtype: str | None, checked) -> str | None:
    """None if a file named like ``path`` holds the chain's output (as ``subtype``),
    else why not (memoised per preset and extension)."""
    key = (chain.name, os.path.splitext(path)[1].lower())
    if key not in checked:
        try:
            choose_subtype(chain, output_format(Path(path)), subtype)
            checked[key] = None
        except UsageError as err:
            checked[key] = str(err)
    return checked[key]


def _check_format(chain: Chain, output: str, subtype: str | None, checked) -> None:
    problem = _fits(chain, output, subtype, checked)
    if problem is not None:
        raise UsageError(f"{output} (preset {chain.name}): {problem}")


def _output_path(out: str, template: str, relpath: str, preset: str, ext: str) -> str:
    stem_path = os.path.splitext(relpath)[0]
    name = template.format(stem=os.path.basename(stem_path), relpath=stem_path, preset=preset, ext=ext)
    path = os.path.normpath(os.path.join(out, name))
    if os.path.isabs(name) or not path.startswith(out + os.sep):
        raise UsageError(f"--name {template} gives {name!r}, which is not inside the output folder {out}")
    return path


def _check_outputs(jobs: list[Job], manifest: str) -> None:
    """Two jobs never write one file, no input is an output, and every folder a job
    writes in is, or can be made, a writable folder."""
    writers: dict[str, Job] = {}
    for job in jobs:
        other = writers.setdefault(job.output, job)
        if other is not job:
            raise UsageError(f"two jobs would write {job.output}: {other.input} through {other.preset} and "
                             f"{job.input} through {job.preset}; put {{relpath}} or {{preset}} in --name")
    if manifest in writers:
        raise UsageError(f"the manifest {manifest} would be a job's output")
    outputs = {os.path.realpath(path) for path in writers}
    for job in jobs:
        if job.input == manifest or os.path.realpath(job.input) in outputs or os.path.realpath(job.input) == \
                os.path.realpath(manifest):
            raise UsageError(f"{job.input} is an input and an output of this batch; choose another --out or --name")
    folders = {os.path.dirname(path) for path in writers} | {os.path.dirname(manifest)}
    for folder in sorted(folders):
        _check_folder(folder)


def _check_folder(folder: str) -> None:
    """A folder that exists and can be written, or can be made: its nearest existing
    ancestor is a writable folder."""
    probe = folder
    while not os.path.lexists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise UsageError(f"cannot make the folder {folder}: {probe} is not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write in {probe}" + ("" if probe == folder else f" (to make {folder})"))
