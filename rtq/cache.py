"""rtq's cache directory: compiled entry points (:mod:`rtq.native`) and filter designs.

The directory is ``$RTQ_CACHE_DIR``, else ``$XDG_CACHE_HOME/rtq``, else ``~/.cache/rtq``.
Everything in it is keyed by the rtq source it was made from (:func:`module_digest`) and
the versions of what produced it, written atomically, and checked when read, so it can
be deleted at any time.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
from pathlib import Path

from .files.destination import DestinationError, write_atomic


def cache_dir() -> Path:
    if os.environ.get("RTQ_CACHE_DIR"):
        return Path(os.environ["RTQ_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rtq"


_PACKAGE = Path(__file__).resolve().parent


def is_rtq_source(path) -> bool:
    """Whether the file ``path`` is one of rtq's own modules."""
    return Path(path).resolve().is_relative_to(_PACKAGE)


@functools.cache
def _files() -> dict[str, bytes]:
    """rtq's modules by dotted name (a package's as ``package.__init__``), with their source."""
    # rglob's paths are under the resolved package already: no resolve per file (resolve stats every component of every path).
    return {_dotted(path.relative_to(_PACKAGE)): path.read_bytes() for path in sorted(_PACKAGE.rglob("*.py"))}


def _module_name(path: Path) -> str:
    return _dotted(path.resolve().relative_to(_PACKAGE))


def _dotted(relative: Path) -> str:
    return ".".join(("rtq", *relative.with_suffix("").parts))


@functools.cache
def source_digest() -> str:
    """Digest of all of rtq's source."""
    digest = hashlib.sha256()
    for name, source in _files().items():
        digest.update(name.encode() + b"\0" + source + b"\0")
    return digest.hexdigest()


def module_digest(path) -> str:
    """Digest of the source the module in file ``path`` can reach: itself, the rtq
    modules it imports (anywhere in its body, transitively) and their packages.

    What a compiled function can see is its module's globals, and every one of those is
    defined in that closure, so the digest changes whenever anything that could change
    its machine code does; an edit elsewhere (the CLI, batch, the UI) keeps it.  The
    table for the current source is computed once (parsing every module, ~0.3 s) and
    stored in the cache directory under :func:`source_digest`.  A file outside rtq (a
    user's or a test's) is keyed by its own bytes and all of rtq's source.
    """
    path = Path(path)
    if not is_rtq_source(path):
        return hashlib.sha256(path.read_bytes() + b"\0" + source_digest().encode()).hexdigest()
    return _module_digests()[_module_name(path)]


@functools.cache
def _module_digests() -> dict[str, str]:
    path = cache_dir() / "source" / f"{source_digest()}.json"
    try:
        table = json.loads(path.read_text())
        if isinstance(table, dict) and table.keys() == _files().keys():
            return table
    except (OSError, ValueError):
        pass
    table = closure_digests(_files())
    write_atomically(path, json.dumps(table).encode())
    return table


def closure_digests(files: dict[str, bytes]) -> dict[str, str]:
    """For every module in ``files`` (dotted name -> source), the digest of its import
    closure within ``files``."""
    imports = {name: _imported(name, source, files) for name, source in files.items()}
    digests = {}
    for name in files:
        reached, todo = set(), [name]
        while todo:
            module = todo.pop()
            if module not in reached:
                reached.add(module)
                todo.extend(imports[module])
        digest = hashlib.sha256()
        for module in sorted(reached):
            digest.update(module.encode() + b"\0" + files[module] + b"\0")
        digests[name] = digest.hexdigest()
    return digests


def _imported(name: str, source: bytes, files) -> set[str]:
    """The modules of ``files`` that module ``name`` imports, with their packages."""
    package = name.rpartition(".")[0]
    found = {package}    # a module's packages run before it
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # "from a import b" imports a, and a.b if that is a module
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        found.update(targets)
    modules = set()
    for target in found:
        parts = target.split(".")
        for i in range(1, len(parts) + 1):
            modules.update((".".join(parts[:i]), ".".join((*parts[:i], "__init__"))))
    return modules & files.keys()


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
        from importlib import metadata     # imports of its own: here only where a design is used

        key = repr((fn.__module__, fn.__qualname__, args, metadata.version("numpy"), metadata.version("scipy"),
                    module_digest(fn.__code__.co_filename)))
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
