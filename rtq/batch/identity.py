"""What identifies a batch job's result: its seed, the preset's canonical form and the
files' SHA-256.

Seeds.  A job's dither seed is derived from the base seed (``--seed``, else the preset's,
else 0), the preset's name and the input's path relative to its root, with SHA-256:
the first 8 bytes (big-endian) of ``SHA-256(b"rtq-batch-seed-1\\n" + base + b"\\n" +
name + b"\\n" + relpath)``, the base in decimal and the name in UTF-8, the relative path
as the file system spells it (its bytes, with ``/`` between folders).  So a seed is
0 .. 2**64 - 1 and depends on nothing a scheduler decides (which worker, in what
order, how many) nor on the current folder: any one output can be made again with
``rtq render PRESET INPUT OUTPUT --seed S``.  The preset's name rather than its hash:
two conditions of a listening test that share a chain still get independent dither,
and correcting a preset leaves the dither sequence of every input as it was.
"""
from __future__ import annotations

import hashlib
import json
import os

from ..presets import preset_to_dict
from ..spec import PresetSpec

_SEED_DOMAIN = b"rtq-batch-seed-1\n"


def derive_seed(base: int, preset_name: str, relpath: str) -> int:
    """The seed of the job that renders the input at ``relpath`` (relative to its root,
    ``/`` between folders) through the preset called ``preset_name``."""
    material = b"\n".join([str(int(base)).encode(), preset_name.encode("utf-8", "surrogateescape"),
                           os.fsencode(relpath)])
    return int.from_bytes(hashlib.sha256(_SEED_DOMAIN + material).digest()[:8], "big")


def canonical_preset(spec: PresetSpec) -> bytes:
    """The preset as compact JSON with sorted keys: its name, seed and normalised chain
    (the description changes no sample and is left out)."""
    data = preset_to_dict(spec)
    data.pop("description", None)
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def preset_sha256(spec: PresetSpec) -> str:
    """SHA-256 (hex) of :func:`canonical_preset`."""
    return hashlib.sha256(canonical_preset(spec)).hexdigest()


def file_sha256(path) -> str:
    """SHA-256 (hex) of a file's bytes (OSError if it cannot be read)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
