"""The one way rtq compiles its audio kernels.

``kernel`` is ``numba.njit`` with the real-time settings every audio-path function
needs: ``cache=True`` (no compiling at start-up once the cache is warm), ``nogil=True``
(offline threads and the live callback run without the GIL) and
``error_model="numpy"`` (no Python exception paths: a division by zero gives inf/nan
instead of taking the GIL to raise).

Numba's on-disk cache keys a function by its own file's time stamp and size, so a
kernel whose file is unchanged would keep the machine code of a callee changed in
another file (after a checkout, an edit or an upgrade that leaves the caller's file
alone), and :mod:`rtq.native` would store that stale code under the new source's key.
rtq's functions are therefore cached under the digest of the rtq source their module
can reach through its imports (:func:`rtq.cache.module_digest`, as the native cache
is): a change to anything a kernel could call or read compiles it again; a change
elsewhere (the CLI, batch, the UI) does not.

``address_as_void_pointer`` lets compiled code view memory it was given as an address
(C entry points, PortAudio's buffers) with ``numba.carray``; ``float_bits`` reads a
float64's bit pattern.
"""
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.core.caching import CacheImpl, InTreeCacheLocator, UserWideCacheLocator
from numba.extending import intrinsic

from .cache import is_rtq_source, module_digest


class _ReachableSourceStamp:
    """A cache locator mixin for rtq's own files: the source stamp is the digest of the
    source the function's module can reach."""

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

kernel = njit(cache=True, nogil=True, error_model="numpy")


@intrinsic
def address_as_void_pointer(typingctx, address):
    """Turn an integer address into a ``void *`` usable with ``numba.carray``."""
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
