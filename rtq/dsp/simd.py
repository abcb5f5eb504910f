"""Explicit vector code for the loops LLVM will not vectorise by itself.

:func:`lane_sums4` computes four running sums side by side in one ``<4 x double>``
register.  Each lane adds its products in the same order as the scalar loop would, so
the result is bit-identical to four scalar accumulators; only the throughput changes.

:data:`float64x2` is a Numba type for one ``<2 x double>`` register value, so a loop can
carry vectors from one iteration to the next: the states of two channels' recursive
error filters, word ``k`` of both channels in the two lanes of register ``k``
(:func:`word_pairs`).  One vector operation then serves both channels, no lane ever
moves (the state's shift is a renaming of registers), and the loop carries exactly as
many registers as the filter has words.
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
    """Emit ``llvm.fma`` on doubles or vectors of doubles (one rounding per lane)."""
    kind = f"v{a.type.count}f64" if isinstance(a.type, ir.VectorType) else "f64"
    fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(a.type, [a.type] * 3), f"llvm.fma.{kind}")
    return builder.call(fma, [a, b, c])


class Float64x2(types.Type):
    """Two float64 lanes in one vector register (LLVM ``<2 x double>``)."""

    def __init__(self):
        super().__init__(name="float64x2")


float64x2 = Float64x2()
_PAIR = ir.VectorType(ir.DoubleType(), 2)


@register_model(Float64x2)
class _Float64x2Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _PAIR)


def _c_float64(array):
    return isinstance(array, types.Array) and array.dtype == types.float64 and array.layout == "C"


def pair_count(pairs):
    """Length of a tuple of :data:`float64x2` values (None for anything else)."""
    if isinstance(pairs, types.UniTuple) and pairs.dtype == float64x2:
        return pairs.count
    return None


def _data(context, builder, array_type, array):
    return context.make_array(array_type)(context, builder, array).data


@intrinsic
def word_pairs(typingctx, c, d, like):
    """``([c[0], d[0]], ..., [c[n-1], d[n-1]])``: word ``k`` of two arrays in the lanes of
    pair ``k``, for ``n`` the length of the tuple ``like`` (its type carries ``n``).  The
    arrays are C-contiguous float64 and the caller keeps ``n`` inside both (no checks).
    ``word_pairs(a, a, like)`` spreads ``a``."""
    if not (_c_float64(c) and _c_float64(d) and isinstance(like, types.BaseTuple)):
        return None
    n = len(like)

    def codegen(context, builder, signature, args):
        c_data = _data(context, builder, signature.args[0], args[0])
        d_data = _data(context, builder, signature.args[1], args[1])
        pairs = []
        for k in range(n):
            index = ir.Constant(ir.IntType(64), k)
            lanes = [builder.load(builder.gep(data, [index])) for data in (c_data, d_data)]
            pairs.append(make_pair(builder, *lanes))
        return context.make_tuple(builder, signature.return_type, pairs)

    return types.UniTuple(float64x2, n)(c, d, like), codegen


@intrinsic
def store_word_pairs(typingctx, c, d, pairs):
    """The inverse of :func:`word_pairs`: lane 0 of pair ``k`` to ``c[k]``, lane 1 to ``d[k]``."""
    n = pair_count(pairs)
    if not (_c_float64(c) and _c_float64(d)) or n is None:
        return None

    def codegen(context, builder, signature, args):
        datas = [_data(context, builder, signature.args[j], args[j]) for j in (0, 1)]
        for k in range(n):
            pair = builder.extract_value(args[2], k)
            index = ir.Constant(ir.IntType(64), k)
            for lane, data in enumerate(datas):
                builder.store(builder.extract_element(pair, ir.Constant(_I32, lane)), builder.gep(data, [index]))
        return context.get_dummy_value()

    return types.void(c, d, pairs), codegen


def make_pair(builder, u, v):
    """A ``<2 x double>`` value with lanes ``u``, ``v`` (for code generation)."""
    undef = ir.Constant(_PAIR, ir.Undefined)
    return builder.insert_element(builder.insert_element(undef, u, ir.Constant(_I32, 0)), v, ir.Constant(_I32, 1))


@intrinsic
def clear_lane(typingctx, pairs, lane):
    """``pairs`` with lane ``lane`` (0 or 1: the channel) of every pair set to zero."""
    n = pair_count(pairs)
    if n is None or not isinstance(lane, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        first = builder.icmp_signed("==", args[1], ir.Constant(args[1].type, 0))
        keep_second = ir.Constant(ir.VectorType(ir.IntType(1), 2), [0, 1])
        keep_first = ir.Constant(ir.VectorType(ir.IntType(1), 2), [1, 0])
        zero = ir.Constant(_PAIR, [0.0, 0.0])
        cleared = []
        for k in range(n):
            p = builder.extract_value(args[0], k)
            cleared.append(builder.select(first, builder.select(keep_second, p, zero),
                                          builder.select(keep_first, p, zero)))
        return context.make_tuple(builder, signature.return_type, cleared)

    return pairs(pairs, lane), codegen


@intrinsic
def first_word(typingctx, pairs, lane):
    """Lane ``lane`` (0 or 1: the channel) of ``pairs[0]``: a recursive loop's filter
    output for this sample."""
    if pair_count(pairs) is None or not isinstance(lane, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        index = builder.trunc(args[1], _I32) if args[1].type.width > 32 else args[1]
        return builder.extract_element(builder.extract_value(args[0], 0), index)

    return types.float64(pairs, lane), codegen
