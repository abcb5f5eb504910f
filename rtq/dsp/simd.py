"""Explicit vector code for the loops LLVM will not vectorise by itself.

:func:`lane_sums4` computes four running sums side by side in one ``<4 x double>``
register.  Each lane adds its products in the same order as the scalar loop would, so
the result is bit-identical to four scalar accumulators; only the throughput changes.

:data:`float64x4` is a Numba type for one ``<4 x double>`` register value, so a loop can
carry vectors from one iteration to the next.  :func:`transposed_update8` steps the
eight-word state of a transposed direct form II filter held in two of them: the whole
state of a recursive error filter stays in registers (and one copy per channel fits
twice), where eight scalars per channel would be spilled to the stack.
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
        return _fma(builder, *args)

    return sig, codegen


def _fma(builder, a, b, c):
    """``llvm.fma`` on doubles or ``<4 x double>`` (one rounding per lane)."""
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


@intrinsic
def zero_vector(typingctx):
    """A :data:`float64x4` of zeros."""

    def codegen(context, builder, signature, args):
        return ir.Constant(_VEC, [0.0] * 4)

    return float64x4(), codegen


@intrinsic
def first_lane(typingctx, vector):
    """Lane 0 of a :data:`float64x4` (free: the scalar register it already is)."""
    if vector != float64x4:
        return None

    def codegen(context, builder, signature, args):
        return builder.extract_element(args[0], ir.Constant(_I32, 0))

    return types.float64(float64x4), codegen


def _splat(builder, value):
    one = builder.insert_element(ir.Constant(_VEC, ir.Undefined), value, ir.Constant(_I32, 0))
    return builder.shuffle_vector(one, ir.Constant(_VEC, ir.Undefined), ir.Constant(ir.VectorType(_I32, 4), [0] * 4))


@intrinsic
def transposed_update8(typingctx, a_low, a_high, b_low, b_high, e, o, s_low, s_high):
    """One step of ``o[n] = sum_j a[j] e[n-1-j] - sum_j b[j] o[n-1-j]`` (``j < 8``) in
    transposed direct form II: ``s'[k] = a[k] e + (s[k+1] - b[k] o)`` with ``s[8] = 0``,
    each fused (one rounding per multiply-add).  ``a``, ``b`` and the state ``s`` come as
    low (words 0-3) and high (4-7) :data:`float64x4` halves; ``e`` and ``o`` are this
    sample's error and filter output.  Returns ``(s'_low, s'_high)``; lane 0 of
    ``s'_low`` is the next filter output.  A filter of lower order has zero-padded
    coefficients, and its unused state words stay exactly zero."""
    vec = float64x4
    if not all(arg == vec for arg in (a_low, a_high, b_low, b_high, s_low, s_high)):
        return None
    sig = types.UniTuple(vec, 2)(vec, vec, vec, vec, types.float64, types.float64, vec, vec)

    def codegen(context, builder, signature, args):
        a_lo, a_hi, b_lo, b_hi, err, out, s_lo, s_hi = args
        shift = ir.Constant(ir.VectorType(_I32, 4), [1, 2, 3, 4])
        next_lo = builder.shuffle_vector(s_lo, s_hi, shift)                          # s1 s2 s3 s4
        next_hi = builder.shuffle_vector(s_hi, ir.Constant(_VEC, [0.0] * 4), shift)  # s5 s6 s7 0
        e_all = _splat(builder, err)
        o_all = _splat(builder, out)
        low = _fma(builder, a_lo, e_all, _fma(builder, builder.fneg(b_lo), o_all, next_lo))
        high = _fma(builder, a_hi, e_all, _fma(builder, builder.fneg(b_hi), o_all, next_hi))
        return context.make_tuple(builder, signature.return_type, [low, high])

    return sig, codegen
