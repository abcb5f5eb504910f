"""rtq's cache directory: compiled entry points (:mod:`rtq.native`) and filter designs.

The directory is ``$RTQ_CACHE_DIR``, else ``$XDG_CACHE_HOME/rtq``, else ``~/.cache/rtq``.
Everything in it is keyed by the rtq source it was made from (:func:`module_digest`) and
the versions of what produced it, written atomically, and checked when read, so it can
be deleted at any time.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import time
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
def _sources() -> list[tuple[str, os.stat_result]]:
    """rtq's modules as ``(path relative to the package, its stat)``, in path order: every
    ``*.py`` under the package, not through symbolic links to folders (as ``Path.rglob``)."""
    found = []

    def walk(folder: str, prefix: str) -> None:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    walk(entry.path, f"{prefix}{entry.name}/")
                elif entry.name.endswith(".py"):
                    found.append((f"{prefix}{entry.name}", entry.stat()))

    walk(str(_PACKAGE), "")
    return sorted(found)


@functools.cache
def _files() -> dict[str, bytes]:
    """rtq's modules by dotted name (a package's as ``package.__init__``), with their source."""
    return {_dotted(Path(name)): (_PACKAGE / name).read_bytes() for name, _ in _sources()}


def _module_name(path: Path) -> str:
    return _dotted(path.resolve().relative_to(_PACKAGE))


def _dotted(relative: Path) -> str:
    return ".".join(("rtq", *relative.with_suffix("").parts))


# A file changed this recently may change again within its time stamps' resolution (a
# clock tick) without its stat changing: such a state of the source gets no stamp.
_SETTLED_NS = 2_000_000_000


def _stamp() -> str | None:
    """A name for the present state of rtq's files, from their stat alone; None while
    one of them changed in the last two seconds.

    Every change to a file's bytes, its replacement or its removal changes its stat: the
    inode change time (``st_ctime_ns``) is set by the kernel, to the present, on every
    write, rename, link or ``touch``, and cannot be set back by a program (unlike the
    modification time, which ``touch -d``, ``cp -p`` or ``tar`` can); a new file or a
    new place of the package is a new list.  The one way a stat stays the same across
    a change is a change within the same clock tick as the stat's time stamps, and a
    state with a file that recent gets no stamp (git's "racy" entries, treated alike).
    """
    now = time.time_ns()
    sources = _sources()
    if any(now - stat.st_ctime_ns < _SETTLED_NS for _, stat in sources):
        return None
    state = [(name, stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
             for name, stat in sources]
    return hashlib.sha256(repr((str(_PACKAGE), state)).encode()).hexdigest()[:32]


@functools.cache
def source_digest() -> str:
    """Digest of all of rtq's source.

    Hashing the source means reading every module at every start; the digest is stored
    under the files' :func:`_stamp`, so a start finds it by stat-ing them while they stay
    as they were.  The files are stat-ed before they are read: a file that changed in
    between has a new stamp, and the one stored is never used again.
    """
    stamp = _stamp()
    path = cache_dir() / "source" / f"stamp-{stamp}.txt"
    if stamp is not None:
        try:
            stored = path.read_text()
            if len(stored) == 64 and int(stored, 16) >= 0:
                return stored
        except (OSError, ValueError):
            pass
    digest = hashlib.sha256()
    for name, source in _files().items():
        digest.update(name.encode() + b"\0" + source + b"\0")
    digest = digest.hexdigest()
    if stamp is not None:
        write_atomically(path, digest.encode())
    return digest


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
        if isinstance(table, dict) and table.keys() == {_dotted(Path(name)) for name, _ in _sources()}:
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
    import ast     # only where the table of module digests is made

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
