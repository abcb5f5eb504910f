"""rtq's cache directory: compiled entry points (:mod:`rtq.native`) and filter designs.

The directory is ``$RTQ_CACHE_DIR``, else ``$XDG_CACHE_HOME/rtq``, else ``~/.cache/rtq``.
Everything in it is keyed by rtq's own source (and the versions of what produced it),
written atomically, and checked when read, so it can be deleted at any time.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
from importlib import metadata
from pathlib import Path

from .files.destination import DestinationError, write_atomic


def cache_dir() -> Path:
    if os.environ.get("RTQ_CACHE_DIR"):
        return Path(os.environ["RTQ_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rtq"


@functools.cache
def source_digest() -> str:
    """Digest of rtq's own source: any change to any module invalidates every entry."""
    root = Path(__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def write_atomically(path: Path, data: bytes) -> None:
    """Store ``data`` as ``path`` (:func:`~rtq.files.destination.write_atomic`: complete or
    not at all, replacing an entry another process stored meanwhile); a failure only
    costs the cache entry."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data, force=True)
    except (OSError, DestinationError):
        pass


def stored_design(fn):
    """Memoise a filter-design function of numbers, in memory and in the cache directory.

    The function must be pure and return numbers, ``None`` and tuples of them.  A warm
    start then designs nothing and imports no SciPy (0.1-0.5 s per SciPy package here;
    the heaviest shipped preset started 0.5 s faster).  Results are JSON (floats
    round-trip exactly), keyed by the function, its arguments, the NumPy and SciPy
    versions and rtq's source.
    """
    @functools.cache
    def designed(*args):
        key = repr((fn.__module__, fn.__qualname__, args, metadata.version("numpy"), metadata.version("scipy"),
                    source_digest()))
        path = cache_dir() / "designs" / f"{fn.__qualname__}-{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"
        try:
            return _as_tuples(json.loads(path.read_text()))
        except (OSError, ValueError):
            pass
        result = fn(*args)
        write_atomically(path, json.dumps(result).encode())
        return result

    return functools.wraps(fn)(designed)


def _as_tuples(value):
    return tuple(_as_tuples(v) for v in value) if isinstance(value, list) else value
