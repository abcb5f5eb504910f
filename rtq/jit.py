"""The one way rtq compiles its audio kernels, and the one place that loads Numba.

``kernel`` is ``numba.njit`` with the real-time settings every audio-path function
needs: ``cache=True`` (no compiling at start-up once the cache is warm), ``nogil=True``
(offline threads and the live callback run without the GIL) and
``error_model="numpy"`` (no Python exception paths: a division by zero gives inf/nan
instead of taking the GIL to raise).

Numba is loaded only when something needs it.  A warm process runs rtq's compiled code
through the machine code :mod:`rtq.native` stored, and never imports Numba's package
(importing it costs more CPU than a do-nothing render of a 10-minute file spends on its
audio: BENCHMARKS.md).  So rtq's modules take every name of Numba's from here:
``kernel``, ``njit``, ``intrinsic``, ``register_jitable``, ``literal_unroll``,
``carray``, ``types`` and ``cgutils``.  Until Numba is loaded each is a stand-in
(:class:`StandIn`) for what Numba would have made; :func:`load_numba` (run by the
first need: a Python call of a kernel, an attribute of one, an entry point
:mod:`rtq.native` must compile, Numba typing a stand-in) imports Numba, makes the real
objects, and puts them in place of their stand-ins in the globals of every loaded rtq
module, where Numba's passes look for them (``inline="always"``, ``literal_unroll`` and
intrinsics are recognised by identity).  A stand-in held elsewhere (a test module's
``from rtq.dsp.rng import next_uniform``) still works: called from Python it forwards,
and Numba types it as the real object (``_numba_type_``).  Names a module defines with
Numba's classes (a Numba type, its data model) are made by a function
:func:`defined_with_numba` runs on loading.

Numba's on-disk cache keys a function by its own file's time stamp and size, so a
kernel whose file is unchanged would keep the machine code of a callee changed in
another file (after a checkout, an edit or an upgrade that leaves the caller's file
alone), and :mod:`rtq.native` would store that stale code under the new source's key.
rtq's functions are therefore cached under the digest of the rtq source their module
can reach through its imports (:func:`rtq.cache.module_digest`, as the native cache
is): a change to anything a kernel could call or read compiles it again; a change
elsewhere (the CLI, batch, the UI) does not.

``address_as_void_pointer`` lets compiled code view memory it was given as an address
(C entry points, PortAudio's buffers) with ``carray``; ``float_bits`` reads a float64's
bit pattern.
"""
from __future__ import annotations

import functools
import sys
import threading

from llvmlite import ir

from .cache import is_rtq_source, module_digest

_lock = threading.RLock()
_loaded = False
_definitions = []     # functions register_jitable and defined_with_numba queued (_on_load), run on loading


class StandIn:
    """What a name of Numba's (or an object made with Numba) is until Numba is loaded.

    ``make()`` returns the real object once Numba is loaded.  Calling a stand-in or
    reading an attribute of it loads Numba and forwards to the real object.
    """

    def __init__(self, make, like=None):
        self._make = make
        self._value = None
        if like is not None:
            functools.update_wrapper(self, like, updated=())

    def resolve(self):
        if self._value is None:
            with _lock:
                load_numba()
                if self._value is None:
                    self._value = self._make()
        return self._value

    def __call__(self, *args, **kwargs):
        return self.resolve()(*args, **kwargs)

    def __getattr__(self, name):
        if name.startswith("__"):     # introspection (copy, pickle, inspect) must not load Numba
            raise AttributeError(name)
        return getattr(self.resolve(), name)

    @property
    def _numba_type_(self):
        """Numba's type for the real object (typeof looks for this attribute)."""
        from numba.core.registry import cpu_target

        value = self.resolve()
        context = cpu_target.typing_context
        context.refresh()       # registers intrinsics and overloads made since its last use
        return context.resolve_value_type(value)

    def __repr__(self):
        return f"<rtq.jit stand-in for {getattr(self, '__qualname__', self._make)}>"


def _numba_name(module: str, name: str) -> StandIn:
    return StandIn(lambda: getattr(__import__(module, fromlist=[name]), name))


def _decorator(module: str, name: str, **options):
    """A stand-in for Numba's decorator ``name``, with or without options."""
    def decorate(*args, **kwargs):
        if args and callable(args[0]) and not kwargs:
            return _wrapped(args[0], options)
        return lambda fn: _wrapped(fn, {**options, **kwargs})

    def _wrapped(fn, opts):
        if _loaded:
            real = getattr(__import__(module, fromlist=[name]), name)
            return real(**opts)(fn) if opts else real(fn)
        return StandIn(lambda: _wrapped(fn, opts), like=fn)

    decorate.__name__ = decorate.__qualname__ = name
    return decorate


njit = _decorator("numba", "njit")
intrinsic = _decorator("numba.extending", "intrinsic")
kernel = _decorator("numba", "njit", cache=True, nogil=True, error_model="numpy")
kernel.__name__ = kernel.__qualname__ = "kernel"
literal_unroll = _numba_name("numba", "literal_unroll")
carray = _numba_name("numba", "carray")
types = _numba_name("numba.core", "types")
cgutils = _numba_name("numba.core", "cgutils")


def _on_load(run) -> bool:
    """Run ``run`` now if Numba is loaded (returning True), else queue it for
    :func:`load_numba` (returning False).  The check and the queueing hold the lock
    load_numba runs the queue under, so a module imported on another thread while
    Numba loads cannot queue a definition after the queue ran.  ``run`` itself runs
    outside the lock: Numba is loaded by then."""
    with _lock:
        if not _loaded:
            _definitions.append(run)
            return False
    run()
    return True


def register_jitable(fn):
    """``numba.extending.register_jitable``: ``fn`` stays a Python function (called from
    Python, it runs as Python), which compiled code can call once Numba is loaded."""
    def register():
        from numba.extending import register_jitable as register_with_numba

        register_with_numba(fn)

    _on_load(register)
    return fn


def defined_with_numba(define, *names):
    """Stand-ins for the globals ``names`` that ``define()`` (a function of the calling
    module, run once, when Numba is loaded) returns as a dict and sets in its module."""
    def run():
        define.__globals__.update(define())

    ran = _on_load(run)
    namespace = define.__globals__
    return tuple(namespace[name] if ran else StandIn(lambda name=name: namespace[name]) for name in names)


def numba_loaded() -> bool:
    return _loaded


def _attach_submodules(package: str) -> None:
    """Make every loaded submodule of ``package`` an attribute of its parent, as importing
    it normally does.  rtq.native loads Numba's C helpers from their files before Numba's
    package exists, and a later import finds them in ``sys.modules`` without setting the
    attribute: Numba itself is unaffected (it imports them with ``from numba import``,
    which falls back to ``sys.modules``), but ``numba._helperlib`` would not be there."""
    for name, module in list(sys.modules.items()):
        parent, _, child = name.rpartition(".")
        if module is not None and parent.split(".")[0] == package and parent in sys.modules \
                and not hasattr(sys.modules[parent], child):
            setattr(sys.modules[parent], child, module)


def load_numba() -> None:
    """Import Numba, install rtq's cache locators, run the module definitions and put
    the real objects in place of the stand-ins in every loaded rtq module."""
    global _loaded
    with _lock:
        if _loaded:
            return
        from numba.core.caching import CacheImpl, InTreeCacheLocator, UserWideCacheLocator

        class _ReachableSourceStamp:
            """A cache locator mixin for rtq's own files: the source stamp is the digest of
            the source the function's module can reach."""

            @classmethod
            def from_function(cls, py_func, py_file):
                if not is_rtq_source(py_file):
                    return None
                return super().from_function(py_func, py_file)

            def get_source_stamp(self):
                return module_digest(self._py_file)

        class _InTree(_ReachableSourceStamp, InTreeCacheLocator):
            pass

        class _UserWide(_ReachableSourceStamp, UserWideCacheLocator):   # where the package is read-only
            pass

        CacheImpl._locator_classes[:0] = [_InTree, _UserWide]
        _attach_submodules("numba")
        # Under the lock, as _on_load checks and queues: a definition queued is run here,
        # one made after sees _loaded.  A definition that needs Numba again (a stand-in,
        # load_numba) re-enters this lock on this thread (an RLock) and finds _loaded;
        # another thread's resolve waits here until every definition has run.
        _loaded = True
        queued = _definitions[:]
        _definitions.clear()
        for define in queued:    # in the order the modules made them
            define()
        for name, module in list(sys.modules.items()):
            if (name == "rtq" or name.startswith("rtq.")) and module is not None:
                namespace = vars(module)
                for key, value in list(namespace.items()):
                    if isinstance(value, StandIn):
                        namespace[key] = value.resolve()


@intrinsic
def address_as_void_pointer(typingctx, address):
    """Turn an integer address into a ``void *`` usable with ``carray``."""
    if not isinstance(address, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return types.voidptr(address), codegen


@intrinsic
def float_bits(typingctx, value):
    """The bit pattern of a float64 as a uint64 (sign, 11 exponent bits, 52 fraction bits)."""
    if value != types.float64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.uint64(value), codegen
