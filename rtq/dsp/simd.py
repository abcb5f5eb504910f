"""Explicit vector code for the loops LLVM will not vectorise by itself.

:func:`lane_sums4` computes four running sums side by side in one ``<4 x double>``
register.  Each lane adds its products in the same order as the scalar loop would, so
the result is bit-identical to four scalar accumulators; only the throughput changes.

:data:`float64x4` is a Numba type for one ``<4 x double>`` register value, so a loop can
carry vectors from one iteration to the next: the eight-word states of two channels'
recursive error filters, held word by word side by side (:func:`interleave_channels`),
fit in four of them, where sixteen scalars would be spilled to the stack, and one vector
operation serves both channels.
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

_VEC = ir.VectorType(ir.DoubleType(), 4)
_I32 = ir.IntType(32)


@intrinsic
def lane_sums4(typingctx, coeffs, hist, pos, first):
    """``(s_0, s_1, s_2, s_3)`` with ``s_t = sum_{j = n-1 .. first} coeffs[j] * hist[pos - j - 1 + t]``.

    ``j`` runs downwards (oldest history first), as in the scalar form.  Both arrays
    must be C-contiguous float64; the caller keeps every index in range (no checks).
    """
    sig = types.UniTuple(types.float64, 4)(coeffs, hist, types.intp, types.intp)

    def codegen(context, builder, signature, args):
        c_arr = context.make_array(signature.args[0])(context, builder, args[0])
        h_arr = context.make_array(signature.args[1])(context, builder, args[1])
        pos, first = args[2], args[3]
        n = builder.extract_value(c_arr.shape, 0)
        one = ir.Constant(n.type, 1)
        acc = cgutils.alloca_once_value(builder, ir.Constant(_VEC, [0.0] * 4))
        with cgutils.for_range(builder, builder.sub(n, first)) as loop:
            j = builder.sub(builder.sub(n, one), loop.index)
            cj = builder.load(builder.gep(c_arr.data, [j]))
            where = builder.gep(h_arr.data, [builder.sub(builder.sub(pos, j), one)])
            h = builder.load(builder.bitcast(where, _VEC.as_pointer()), align=8)
            splat = builder.insert_element(ir.Constant(_VEC, ir.Undefined), cj, ir.Constant(_I32, 0))
            splat = builder.shuffle_vector(splat, ir.Constant(_VEC, ir.Undefined),
                                           ir.Constant(ir.VectorType(_I32, 4), [0] * 4))
            builder.store(builder.fadd(builder.load(acc), builder.fmul(splat, h)), acc)
        total = builder.load(acc)
        lanes = [builder.extract_element(total, ir.Constant(_I32, t)) for t in range(4)]
        return context.make_tuple(builder, signature.return_type, lanes)

    return sig, codegen


@intrinsic
def fused_multiply_add(typingctx, a, b, c):
    """``a * b + c`` with one rounding (LLVM's ``llvm.fma``: the FMA instruction where the
    CPU has one), the same on every path, unlike letting the compiler contract."""
    sig = types.float64(types.float64, types.float64, types.float64)

    def codegen(context, builder, signature, args):
        return fma_vector(builder, *args)

    return sig, codegen


def fma_vector(builder, a, b, c):
    """Emit ``llvm.fma`` on doubles or ``<4 x double>`` (one rounding per lane)."""
    kind = "v4f64" if isinstance(a.type, ir.VectorType) else "f64"
    fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(a.type, [a.type] * 3), f"llvm.fma.{kind}")
    return builder.call(fma, [a, b, c])


class Float64x4(types.Type):
    """Four float64 lanes in one vector register (LLVM ``<4 x double>``)."""

    def __init__(self):
        super().__init__(name="float64x4")


float64x4 = Float64x4()


@register_model(Float64x4)
class _Float64x4Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _VEC)


def _c_float64(array):
    return isinstance(array, types.Array) and array.dtype == types.float64 and array.layout == "C"


def _element(context, builder, array_type, array, index):
    data = context.make_array(array_type)(context, builder, array).data
    return builder.bitcast(builder.gep(data, [index]), _VEC.as_pointer())


@intrinsic
def load_vector(typingctx, array, index):
    """``array[index:index + 4]`` as a :data:`float64x4` (C-contiguous float64; the caller
    keeps the range inside the array: no checks)."""
    if not _c_float64(array):
        return None

    def codegen(context, builder, signature, args):
        return builder.load(_element(context, builder, signature.args[0], *args), align=8)

    return float64x4(array, types.intp), codegen


@intrinsic
def store_vector(typingctx, array, index, vector):
    """``array[index:index + 4] = vector`` (as :func:`load_vector`)."""
    if not _c_float64(array) or vector != float64x4:
        return None

    def codegen(context, builder, signature, args):
        builder.store(args[2], _element(context, builder, signature.args[0], args[0], args[1]), align=8)
        return context.get_dummy_value()

    return types.void(array, types.intp, float64x4), codegen


def shuffle(builder, a, b, lanes):
    """LLVM ``shufflevector`` of ``a`` and ``b`` (lanes of ``b`` numbered after ``a``'s)."""
    return builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(_I32, len(lanes)), lanes))


def _vectors(n):
    return types.UniTuple(float64x4, n)


@intrinsic
def interleave_channels(typingctx, c_low, c_high, d_low, d_high):
    """Two channels' eight-word states (low and high halves each) as four vectors of
    word pairs ``[c0 d0 c1 d1], [c2 d2 c3 d3], [c4 d4 c5 d5], [c6 d6 c7 d7]``."""
    if not all(arg == float64x4 for arg in (c_low, c_high, d_low, d_high)):
        return None

    def codegen(context, builder, signature, args):
        c_lo, c_hi, d_lo, d_hi = args
        pairs = [shuffle(builder, c, d, lanes) for c, d in ((c_lo, d_lo), (c_hi, d_hi))
                 for lanes in ([0, 4, 1, 5], [2, 6, 3, 7])]
        return context.make_tuple(builder, signature.return_type, pairs)

    return _vectors(4)(float64x4, float64x4, float64x4, float64x4), codegen


@intrinsic
def separate_channels(typingctx, pairs):
    """The inverse of :func:`interleave_channels`: ``(c_low, c_high, d_low, d_high)``."""
    if pairs != _vectors(4):
        return None

    def codegen(context, builder, signature, args):
        p = [builder.extract_value(args[0], k) for k in range(4)]
        halves = [shuffle(builder, p[k], p[k + 1], lanes) for lanes in ([0, 2, 4, 6], [1, 3, 5, 7])
                  for k in (0, 2)]
        return context.make_tuple(builder, signature.return_type, halves)

    return _vectors(4)(pairs), codegen


@intrinsic
def spread_pairs(typingctx, low, high):
    """Eight coefficients (two halves) laid out for interleaved states: each word twice,
    ``[k0 k0 k1 k1], [k2 k2 k3 k3], [k4 k4 k5 k5], [k6 k6 k7 k7]``."""
    if low != float64x4 or high != float64x4:
        return None

    def codegen(context, builder, signature, args):
        spread = [shuffle(builder, half, half, lanes) for half in args for lanes in ([0, 0, 1, 1], [2, 2, 3, 3])]
        return context.make_tuple(builder, signature.return_type, spread)

    return _vectors(4)(float64x4, float64x4), codegen


@intrinsic
def clear_channel(typingctx, pairs, channel):
    """Interleaved states with every word of ``channel`` (0 or 1) set to zero."""
    if pairs != _vectors(4) or not isinstance(channel, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        zero = ir.Constant(_VEC, [0.0] * 4)
        first = builder.icmp_signed("==", args[1], ir.Constant(args[1].type, 0))
        cleared = []
        for k in range(4):
            p = builder.extract_value(args[0], k)
            cleared.append(builder.select(first, shuffle(builder, p, zero, [4, 1, 6, 3]),
                                          shuffle(builder, p, zero, [0, 5, 2, 7])))
        return context.make_tuple(builder, signature.return_type, cleared)

    return _vectors(4)(pairs, channel), codegen
