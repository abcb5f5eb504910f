"""Explicit 4-lane vector code for the one loop LLVM will not vectorise by itself.

:func:`lane_sums4` computes four running sums side by side in one ``<4 x double>``
register.  Each lane adds its products in the same order as the scalar loop would, so
the result is bit-identical to four scalar accumulators; only the throughput changes.
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

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
        double = ir.DoubleType()
        fma = builder.module.declare_intrinsic("llvm.fma", [double], ir.FunctionType(double, [double] * 3))
        return builder.call(fma, args)

    return sig, codegen
