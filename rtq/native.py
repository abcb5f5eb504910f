"""C entry points into the compiled audio path that load without Numba's start-up cost.

Numba's on-disk cache (``cache=True``) saves compiling, not starting: the first cached
function a process calls makes Numba import its whole typing and lowering registry,
about 0.3 s on these machines (half of it importing scipy.linalg, which
``numba.np.arraymath`` wants for ``np.dot``).  That was half of the wall time of
``rtq render`` on a short file and a third of ``rtq live``'s time to first audio.

An :class:`Entry` is a function with a C signature (a ``numba.cfunc``: no Python objects
cross it) at the boundary between Python and the compiled audio path: one call per
block, from the render loop, :meth:`rtq.processor.Processor.process` or PortAudio.
The first process that needs it compiles it with Numba and stores the machine code
Numba's JIT produced (an ELF object holding the entry and everything it calls) in
rtq's cache directory.  Later processes link that object with llvmlite's MCJIT, which
takes milliseconds, and call it at its address.  It is the same machine code either
way, so the results are bit-identical (``tests/test_native.py`` checks both routes).

A stored object is used only when its key matches: the rtq source its module can reach
(:func:`rtq.cache.module_digest`), the Python, NumPy, Numba and llvmlite versions,
``NUMBA_*`` settings and the host CPU's name and features as LLVM sees them
(:func:`_host_cpu`).  Objects are written atomically (in
:func:`rtq.cache.cache_dir`); one that cannot be read or linked is compiled again.
``RTQ_NATIVE_CACHE=0`` always compiles with Numba, from Numba's own cache.

Real-time rules: an entry is resolved (loaded or compiled) on first use, under a lock,
so stream and render set-up resolve every entry they need before audio starts; calling
a resolved entry's address takes no lock and allocates nothing.
"""
from __future__ import annotations

import builtins
import contextlib
import ctypes
import fcntl
import functools
import hashlib
import importlib.machinery
import importlib.util
import json
import os
import platform
import sys
import threading
from pathlib import Path

from .cache import cache_dir, module_digest, write_atomically
from .jit import load_numba

_MAGIC = b"rtq-native-object 2\n"
_lock = threading.Lock()

# The scalar types an entry's signature may name (Numba's names) and their ctypes.
_CTYPES = {
    "int32": ctypes.c_int32,
    "int64": ctypes.c_int64,
    "uint64": ctypes.c_uint64,
    "intp": ctypes.c_ssize_t,
    "uintp": ctypes.c_size_t,
    "float64": ctypes.c_double,
    "voidptr": ctypes.c_void_p,
    "void": None,
}


def _parse_signature(signature: str) -> tuple[str, list[str]]:
    """``"int32(int64, voidptr)"`` -> ``("int32", ["int64", "voidptr"])``, checked
    against the types an entry may take."""
    restype, sep, rest = signature.replace(" ", "").partition("(")
    argtypes = rest[:-1].split(",") if rest[:-1] else []
    if not sep or not rest.endswith(")") or any(t not in _CTYPES for t in (restype, *argtypes)):
        raise ValueError(f"not an entry signature of scalar types {sorted(_CTYPES)}: {signature!r}")
    return restype, argtypes


class Entry:
    """A C-ABI function compiled by Numba, loaded from rtq's object cache when possible.

    Use as a decorator, like ``numba.cfunc``::

        @Entry("void(int64, int64)")
        def fill(address, n): ...

    The function must be defined at module level (so Numba can cache it) and may only
    take and return the scalar types its signature names (Numba's type names, a string
    so that defining an entry needs no Numba; addresses as integers).

    Attributes
    ----------
    address : int
        The function's address (resolving it on first access).
    ctypes : ctypes function
        A ctypes wrapper for calling it from Python.
    """

    def __init__(self, signature: str):
        _parse_signature(signature)
        self.signature = signature
        self.pyfunc = None
        self._address = None
        self._ctypes = None
        self._keepalive = None

    def __call__(self, pyfunc):
        self.pyfunc = pyfunc
        functools.update_wrapper(self, pyfunc)
        return self

    @property
    def address(self) -> int:
        if self._address is None:
            self._resolve()
        return self._address

    @property
    def ctypes(self):
        if self._ctypes is None:
            restype, argtypes = _parse_signature(self.signature)
            self._ctypes = ctypes.CFUNCTYPE(_CTYPES[restype], *(_CTYPES[t] for t in argtypes))(self.address)
        return self._ctypes

    @property
    def qualified_name(self) -> str:
        return f"{self.pyfunc.__module__}.{self.pyfunc.__qualname__}"

    def _resolve(self) -> None:
        with _lock:
            if self._address is not None:
                return
            if not _enabled():
                compiled = _numba_cfunc()(self.signature, cache=True, error_model="numpy")(self.pyfunc)
                self._address, self._keepalive = compiled.address, compiled
                return
            path = cache_dir() / f"{self.qualified_name}-{_cache_key(self.pyfunc, self.signature)}.o"
            if self._load(path):
                return
            # One process compiles, others on this machine (a batch's workers) wait and link.
            with _compiling(path):
                if self._load(path):
                    return
                # Not from Numba's cache: a library loaded from there no longer holds its object.
                compiled = _numba_cfunc()(self.signature, error_model="numpy")(self.pyfunc)
                _store(path, compiled)
                self._address, self._keepalive = compiled.address, compiled

    def _load(self, path: Path) -> bool:
        try:
            self._address, self._keepalive = _link(path.read_bytes())
            return True
        except (OSError, ValueError, RuntimeError):
            return False   # missing, unreadable or stale: compile it


@contextlib.contextmanager
def _compiling(path: Path):
    """Hold an exclusive lock beside ``path`` (``flock``, dropped by the kernel however
    the process ends) while one entry is compiled; no lock if none can be had."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _enabled() -> bool:
    return os.environ.get("RTQ_NATIVE_CACHE", "1") != "0"


def _numba_cfunc():
    load_numba()
    import numba

    return numba.cfunc


def _numba_file(module: str) -> Path:
    """The file of Numba's module ``module`` (found without importing Numba's package)."""
    package = Path(importlib.util.find_spec("numba").submodule_search_locations[0])
    base = package.joinpath(*module.split(".")[1:])
    for suffix in (".py", *importlib.machinery.EXTENSION_SUFFIXES):
        if base.with_name(base.name + suffix).exists():
            return base.with_name(base.name + suffix)
    raise ImportError(f"no file for {module}")


def _numba_extension(module: str):
    """Numba's C extension ``module``, loaded without running Numba's ``__init__`` (which
    imports the whole compiler); a later ``import numba`` reuses it from ``sys.modules``."""
    if module not in sys.modules:
        path = _numba_file(module)
        loader = importlib.machinery.ExtensionFileLoader(module, str(path))
        extension = importlib.util.module_from_spec(importlib.util.spec_from_file_location(module, path, loader=loader))
        loader.exec_module(extension)
        sys.modules[module] = extension
    return sys.modules[module]


@functools.cache
def _host_description() -> str:
    import llvmlite    # its version: the package, without the binding that loads LLVM
    import numpy

    settings = sorted((k, v) for k, v in os.environ.items() if k.startswith("NUMBA_") and k != "NUMBA_CACHE_DIR")
    numba_version = _numba_file("numba._version").read_text()    # version and revision, without importing Numba
    return repr((sys.version, platform.machine(), numpy.__version__, numba_version, llvmlite.__version__,
                 *_host_cpu(), settings))


# The lines of /proc/cpuinfo that name the processor, its microcode and its features (x86, Arm).
_CPU_LINES = ("vendor_id", "cpu family", "model", "model name", "stepping", "microcode", "flags",
              "CPU implementer", "CPU architecture", "CPU variant", "CPU part", "CPU revision", "Features")


def _host_cpu() -> tuple[str, str]:
    """The host CPU's name and features as LLVM gives them (what Numba compiles for),
    remembered in the cache directory for this boot of this machine.

    Asking LLVM means loading its library before a key can be made.  What
    LLVM answers comes from the processor's identification (CPUID on x86, the ID
    registers on Arm) and the extended states the kernel enabled at boot; neither
    changes while the machine runs, except by a microcode update loaded late, or by
    moving a virtual machine to another host, which hypervisors allow only where the
    guest keeps the processor it booted with (its kernel chose features at boot too).
    So the answer is stored under the kernel's boot id (a new random one every boot,
    and another on every machine sharing the cache directory), the llvmlite version, and
    the lines of /proc/cpuinfo that name the processor, its microcode revision and its
    features: a late microcode update, or anything else the kernel sees change, asks
    LLVM again.  Objects' keys hold LLVM's own answer, as before; without /proc (not
    Linux) LLVM is asked every time.
    """
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        with open("/proc/cpuinfo") as cpuinfo:
            lines = []
            for line in cpuinfo:     # the first processor's block, the same on every core
                if not line.strip():
                    break
                if line.partition(":")[0].strip() in _CPU_LINES:
                    lines.append(" ".join(line.split()))
    except OSError:
        return _llvm_host_cpu()
    import llvmlite

    key = repr((boot, lines, llvmlite.__version__))
    path = cache_dir() / "host" / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"
    try:
        stored = json.loads(path.read_text())
        if isinstance(stored, list) and len(stored) == 2 and all(isinstance(text, str) for text in stored):
            return stored[0], stored[1]
    except (OSError, ValueError):
        pass
    answer = _llvm_host_cpu()
    write_atomically(path, json.dumps(answer).encode())
    return answer


def _llvm_host_cpu() -> tuple[str, str]:
    import llvmlite.binding as llvm

    return llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()


def _cache_key(pyfunc, signature) -> str:
    key = f"{module_digest(pyfunc.__code__.co_filename)}|{_host_description()}|{signature}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _store(path: Path, compiled) -> None:
    """Store the machine code of a freshly compiled cfunc (its library's final module,
    which holds everything it calls) after its symbol name and SHA-256."""
    library = compiled._library
    obj = library._codegen._tm.emit_object(library._final_module)
    write_atomically(path, _MAGIC + compiled.native_name.encode() + b"\n" + hashlib.sha256(obj).hexdigest().encode()
                     + b"\n" + obj)


def _link(data: bytes):
    """Link a stored object into this process; returns (address, what must stay alive)."""
    import llvmlite.binding as llvm

    if not data.startswith(_MAGIC):
        raise ValueError("not an rtq native object")
    name, _, rest = data[len(_MAGIC):].partition(b"\n")
    digest, _, obj = rest.partition(b"\n")
    # LLVM aborts the process on a malformed object, so a damaged file must not reach it.
    if hashlib.sha256(obj).hexdigest().encode() != digest:
        raise ValueError("damaged rtq native object")
    engine = _engine()
    engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
    engine.finalize_object()
    address = engine.get_function_address(name.decode())
    if not address:
        raise ValueError(f"symbol {name!r} not in the stored object")
    return address, engine


@functools.cache
def _engine():
    """One MCJIT engine for every stored object, with the symbols Numba's code imports.

    Numba's compiled code calls its C helpers and the runtime's allocator (only on paths
    that raise, which the audio path never takes) and refers to Python's exception
    classes by their ``PyExc_*`` names; Numba registers all of these when it starts,
    and so does this, the same way.
    """
    import llvmlite.binding as llvm

    _helperlib, _dynfunc, _nrt_python = map(_numba_extension, ("numba._helperlib", "numba._dynfunc",
                                                                "numba.core.runtime._nrt_python"))
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    llvm.add_symbol("_Py_NoneStruct", id(None))
    for helpers in (_helperlib.c_helpers, _dynfunc.c_helpers):
        for name, address in helpers.items():
            llvm.add_symbol("numba_" + name, address)
    for name, address in _nrt_python.c_helpers.items():
        llvm.add_symbol(name if name.startswith("_") else "NRT_" + name, address)
    for obj in builtins.__dict__.values():
        if isinstance(obj, type) and issubclass(obj, BaseException):
            llvm.add_symbol(f"PyExc_{obj.__name__}", id(obj))
    machine = llvm.Target.from_default_triple().create_target_machine()
    return llvm.create_mcjit_compiler(llvm.parse_assembly(""), machine)
