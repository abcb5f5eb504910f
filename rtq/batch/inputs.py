"""Finding a batch's inputs: files, folders searched for audio files, globs, and paths
read from standard input, each with the root its relative path (and so its seed) is
taken from.

- A file named on the command line or read from standard input: its root is the folder
  it is in, so its relative path is its name.
- A folder: searched recursively for files whose extension names a format libsndfile
  reads (hidden files and folders, whose names start with ``.``, are left out: macOS
  leaves ``._NAME.wav`` beside copied files); the folder is the root.
- A glob (``*``, ``?``, ``[``; ``**`` spans folders): the files it matches that have
  such an extension; the root is the part of the pattern before the first wildcard.

The batch's output folder and manifest are never searched.  Relative paths do not
depend on the current folder, so neither do seeds.
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from ..errors import UsageError

# Extensions of the formats libsndfile reads, beside their format names (RAW needs to be
# told the format, so it is not searched for).
_ALIASES = {"aif": "AIFF", "aifc": "AIFF", "oga": "OGG", "opus": "OGG", "snd": "AU"}


@dataclass(frozen=True)
class Input:
    """An input file: ``path`` (absolute) and ``relpath`` (from its root, ``/`` between folders)."""

    path: str
    relpath: str


def audio_extensions() -> frozenset[str]:
    """Lower-case extensions (without the dot) of files a folder or glob search takes."""
    names = {fmt.lower() for fmt in sf.available_formats() if fmt != "RAW"}
    return frozenset(names | set(_ALIASES))


def is_audio_name(name: str) -> bool:
    return not name.startswith(".") and Path(name).suffix.lower().lstrip(".") in audio_extensions()


def find_inputs(sources, *, exclude=(), stdin=None) -> list[Input]:
    """The input files ``sources`` name (see the module's description), in the order given,
    each folder's and glob's files sorted; ``"-"`` reads one path a line from ``stdin``.
    ``exclude`` holds paths (the output folder, the manifest) no search enters or returns.
    Duplicates (same file, same relative path) are dropped.

    Raises UsageError for a glob that matches no audio file or a folder that holds none.
    A named file that does not exist is kept: its job fails alone, with its error.
    """
    excluded = {os.path.abspath(p) for p in exclude}
    found: list[Input] = []
    for source in sources:
        source = os.fspath(source)
        if source == "-":   # paths as they are: no glob expansion
            for line in (stdin.read() if stdin is not None else "").splitlines():
                if line.strip():
                    found.extend(_path(line.rstrip("\r"), excluded))
        elif glob.has_magic(source):
            found.extend(_globbed(source, excluded))
        else:
            found.extend(_path(source, excluded))
    unique, seen = [], set()
    for item in found:
        if item not in seen:
            seen.add(item)
            unique.append(item)
    return unique


def _path(path: str, excluded: set[str]) -> list[Input]:
    if os.path.isdir(path):
        return _searched(path, excluded)
    return [Input(os.path.abspath(path), os.path.basename(os.path.normpath(path)))]


def _searched(folder: str, excluded: set[str]) -> list[Input]:
    root = os.path.abspath(folder)
    found = []
    for here, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and os.path.join(here, d) not in excluded)
        for name in sorted(files):
            path = os.path.join(here, name)
            if is_audio_name(name) and path not in excluded:
                found.append(Input(path, Path(os.path.relpath(path, root)).as_posix()))
    if not found:
        raise UsageError(f"--inputs {folder}: no audio files in this folder "
                         f"(searched for {', '.join('.' + e for e in sorted(audio_extensions()))})")
    return found


def _globbed(pattern: str, excluded: set[str]) -> list[Input]:
    parts = Path(pattern).parts
    fixed = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    root = os.path.abspath(os.path.join(*parts[:fixed]) if fixed else ".")
    found = []
    for match in sorted(glob.glob(pattern, recursive=True)):
        path = os.path.abspath(match)
        if os.path.isfile(path) and is_audio_name(os.path.basename(path)) and \
                not any(path == e or path.startswith(e + os.sep) for e in excluded):
            found.append(Input(path, Path(os.path.relpath(path, root)).as_posix()))
    if not found:
        raise UsageError(f"--inputs {pattern}: matches no audio file")
    return found
