"""The one way rtq compiles its audio kernels.

``kernel`` is ``numba.njit`` with the real-time settings every audio-path function
needs: ``cache=True`` (no compiling at start-up once the cache is warm), ``nogil=True``
(offline threads and the live callback run without the GIL) and
``error_model="numpy"`` (no Python exception paths: a division by zero gives inf/nan
instead of taking the GIL to raise).

``address_as_void_pointer`` lets compiled code view memory it was given as an address
(C entry points, PortAudio's buffers) with ``numba.carray``; ``float_bits`` reads a
float64's bit pattern.
"""
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

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
