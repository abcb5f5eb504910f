"""Explicit vector code for the loops LLVM will not vectorise by itself.

:func:`lane_sums` computes four (or, for two channels, eight) running sums side by side
in one vector register.  Each lane adds its products in the same order as the scalar
loop would, so the result is bit-identical to scalar accumulators; only the throughput
changes.

:data:`float64x2` is a Numba type for one ``<2 x double>`` register value, so a loop can
carry vectors from one iteration to the next: the states of two channels' recursive
error filters, word ``k`` of both channels in the two lanes of register ``k``
(:func:`word_pairs`).  One vector operation then serves both channels, no lane ever
moves (the state's shift is a renaming of registers), and the loop carries exactly as
many registers as the filter has words.

:data:`float64x4` is four float64 lanes (``<4 x double>``, one AVX register) for loops
whose operands LLVM would reload on every pass (a FIR's taps read the same input
vectors as its neighbours): :func:`load_quad`, :func:`splat_like`, :func:`store_vector`,
and ``+``, ``*`` lane by lane, each one rounding as the scalar operation (no
contraction into fused multiply-adds), so vector code gives the scalar code's bits;
:func:`store_interleaved` / :func:`store_deinterleaved` write two of them as one
interleaved run of eight values, or split a run of eight into its even and odd values
(a polyphase filter's two branches), straight from the registers.

:data:`float64x8` is eight lanes (``<8 x double>``: one AVX-512 register, or two AVX
ones, with the same results, where the CPU has no AVX-512), with ``+``, ``*``,
:func:`load_octet`, :func:`store_octet`, :func:`vector_of`, :func:`lanes_of` and the
functions that take either width (:func:`load_like`, :func:`splat_like`,
:func:`store_vector`, :func:`lane_count`, the interleaving stores): the requantizer's
FIR loop carries its recent history and running sums in them (four samples of two
channels, interleaved), the oversampler's half-band FIR sixteen outputs at a time.
"""
import operator

from llvmlite import ir

from ..jit import cgutils, defined_with_numba, intrinsic, types

_VEC = ir.VectorType(ir.DoubleType(), 4)
_I32 = ir.IntType(32)


@intrinsic
def lane_sums(typingctx, coeffs, hist, pos, first, last, start):
    """Running sums side by side in one vector register, ``start`` holding their initial
    values: a tuple of four floats (one channel) or eight (two, interleaved).

    Four lanes: ``s_t = start_t + sum_{j = last-1 .. first} coeffs[j] * hist[pos - j - 1 + t]``.
    Eight lanes read a history of two channels interleaved (``hist[2 k + c]`` is channel
    ``c``'s sample ``k``): lane ``2 t + c`` is ``s_t`` of channel ``c``.

    ``j`` runs downwards (oldest history first), as in the scalar form, each product
    added to the running sum in turn (no fused multiply-add), so a sum over taps
    ``[first, last)`` continued from one over ``[last, n)`` (its ``start``) is the sum
    over ``[first, n)`` to the bit, and each lane is what one scalar accumulator gives.
    Both arrays must be C-contiguous float64; the caller keeps every index in range
    (no checks).
    """
    if not (isinstance(start, types.UniTuple) and start.count in (4, 8)):
        return None
    width = start.count
    sig = types.UniTuple(types.float64, width)(coeffs, hist, types.intp, types.intp, types.intp, start)
    vec = ir.VectorType(ir.DoubleType(), width)

    def codegen(context, builder, signature, args):
        c_arr = context.make_array(signature.args[0])(context, builder, args[0])
        h_arr = context.make_array(signature.args[1])(context, builder, args[1])
        pos, first, last, init = args[2], args[3], args[4], args[5]
        one = ir.Constant(pos.type, 1)
        scale = ir.Constant(pos.type, width // 4)
        value = ir.Constant(vec, ir.Undefined)
        for t in range(width):
            value = builder.insert_element(value, builder.extract_value(init, t), ir.Constant(_I32, t))
        acc = cgutils.alloca_once_value(builder, value)
        count = builder.sub(last, first)
        count = builder.select(builder.icmp_signed(">", count, ir.Constant(count.type, 0)), count,
                               ir.Constant(count.type, 0))
        with cgutils.for_range(builder, count) as loop:
            j = builder.sub(builder.sub(last, one), loop.index)
            cj = builder.load(builder.gep(c_arr.data, [j]))
            where = builder.gep(h_arr.data, [builder.mul(builder.sub(builder.sub(pos, j), one), scale)])
            h = builder.load(builder.bitcast(where, vec.as_pointer()), align=8)
            builder.store(builder.fadd(builder.load(acc), builder.fmul(splat(builder, cj, width), h)), acc)
        total = builder.load(acc)
        lanes = [builder.extract_element(total, ir.Constant(_I32, t)) for t in range(width)]
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


_PAIR = ir.VectorType(ir.DoubleType(), 2)
_QUAD = ir.VectorType(ir.DoubleType(), 4)
#: ``<8 x double>`` (for code generation).
OCTET = ir.VectorType(ir.DoubleType(), 8)


def _vector_types():
    """The vector types and what is made from them: a Numba type is a class of Numba's,
    so they are defined when :mod:`rtq.jit` loads Numba."""
    from numba.core import types as numba_types
    from numba.extending import models, register_model

    class FloatVector(numba_types.Type):
        """``lanes`` float64 lanes in one vector register (LLVM ``<lanes x double>``), a
        value like a float."""

        def __init__(self, lanes):
            self.lanes = lanes
            super().__init__(name=f"float64x{lanes}")

    FloatVector.__module__, FloatVector.__qualname__ = __name__, "FloatVector"     # as pickles name it

    @register_model(FloatVector)
    class _FloatVectorModel(models.PrimitiveModel):
        def __init__(self, dmm, fe_type):
            super().__init__(dmm, fe_type, ir.VectorType(ir.DoubleType(), fe_type.lanes))

    pair, quad, octet = FloatVector(2), FloatVector(4), FloatVector(8)
    load_pair, store_pair = _vector_access(pair, _PAIR)
    load_quad = _vector_access(quad, _QUAD)[0]
    load_octet, store_octet = _vector_access(octet, OCTET)
    for wide in (quad, octet):
        _quad_operator(operator.add, wide, lambda builder, a, b: builder.fadd(a, b))
        _quad_operator(operator.mul, wide, lambda builder, a, b: builder.fmul(a, b))
    # Numba unpickles a cache index before it checks the index's stamp: indexes written
    # when the pair type had a class of its own name it, so the name stays.
    return {"FloatVector": FloatVector, "Float64x2": FloatVector, "float64x2": pair, "float64x4": quad,
            "float64x8": octet, "load_pair": load_pair, "store_pair": store_pair, "load_quad": load_quad,
            "load_octet": load_octet, "store_octet": store_octet}


def c_float64(array):
    """Whether ``array`` is a C-contiguous float64 array (a Numba type)."""
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
    if not (c_float64(c) and c_float64(d) and isinstance(like, types.BaseTuple)):
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
    if not (c_float64(c) and c_float64(d)) or n is None:
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


@intrinsic
def pair_of(typingctx, u, v):
    """A :data:`float64x2` with lanes ``u``, ``v`` (both float64)."""
    if not (u == types.float64 and v == types.float64):
        return None

    def codegen(context, builder, signature, args):
        return make_pair(builder, *args)

    return float64x2(u, v), codegen


def _float64_row(array):
    return isinstance(array, types.Array) and array.dtype == types.float64 and array.ndim == 1


def load_lanes(context, builder, array_type, array, index, ir_vector):
    """``array[index : index + lanes]`` of a C-contiguous array as one vector load (code
    generation; no checks)."""
    where = builder.gep(_data(context, builder, array_type, array), [index])
    return builder.load(builder.bitcast(where, ir_vector.as_pointer()), align=8)


def store_lanes(context, builder, array_type, array, index, vector):
    """``array[index : index + lanes] = vector``: one vector store into a C-contiguous
    array, lane by lane through the stride into any other 1-D float64 array (code
    generation; no checks)."""
    if array_type.layout == "C":
        where = builder.gep(_data(context, builder, array_type, array), [index])
        builder.store(vector, builder.bitcast(where, vector.type.as_pointer()), align=8)
        return
    view = context.make_array(array_type)(context, builder, array)
    for t in range(vector.type.count):
        at = builder.add(index, ir.Constant(index.type, t))
        where = cgutils.get_item_pointer(context, builder, array_type, view, [at])
        builder.store(builder.extract_element(vector, ir.Constant(_I32, t)), where)


def _vector_access(vector, ir_vector):
    """``load(array, index)``, ``array[index : index + lanes]`` as a ``vector`` value
    from a C-contiguous float64 array, and ``store(array, index, value)``, its inverse,
    into any 1-D float64 array (no checks: the caller keeps the lanes inside the array)."""

    @intrinsic
    def load(typingctx, array, index):
        if not (c_float64(array) and isinstance(index, types.Integer)):
            return None

        def codegen(context, builder, signature, args):
            return load_lanes(context, builder, signature.args[0], args[0], args[1], ir_vector)

        return vector(array, index), codegen

    @intrinsic
    def store(typingctx, array, index, value):
        if not (_float64_row(array) and isinstance(index, types.Integer) and value == vector):
            return None

        def codegen(context, builder, signature, args):
            store_lanes(context, builder, signature.args[0], args[0], args[1], args[2])
            return context.get_dummy_value()

        return types.void(array, index, value), codegen

    return load, store


@intrinsic
def lanes_of(typingctx, vector):
    """The lanes of a :class:`FloatVector` (:data:`float64x2`, ...) as a tuple of floats."""
    if not isinstance(vector, FloatVector):
        return None

    def codegen(context, builder, signature, args):
        lanes = [builder.extract_element(args[0], ir.Constant(_I32, k)) for k in range(vector.lanes)]
        return context.make_tuple(builder, signature.return_type, lanes)

    return types.UniTuple(types.float64, vector.lanes)(vector), codegen


@intrinsic
def vector_of(typingctx, values):
    """The inverse of :func:`lanes_of`: a tuple of 2, 4 or 8 floats as one :class:`FloatVector`."""
    if not (isinstance(values, types.UniTuple) and values.dtype == types.float64 and values.count in (2, 4, 8)):
        return None
    lanes = values.count

    def codegen(context, builder, signature, args):
        vector = ir.Constant(ir.VectorType(ir.DoubleType(), lanes), ir.Undefined)
        for k in range(lanes):
            vector = builder.insert_element(vector, builder.extract_value(args[0], k), ir.Constant(_I32, k))
        return vector

    return FloatVector(lanes)(values), codegen


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


def splat(builder, value, lanes):
    """A ``<lanes x double>`` value with ``value`` in every lane (code generation)."""
    vector = ir.VectorType(ir.DoubleType(), lanes)
    one = builder.insert_element(ir.Constant(vector, ir.Undefined), value, ir.Constant(_I32, 0))
    return builder.shuffle_vector(one, ir.Constant(vector, ir.Undefined),
                                  ir.Constant(ir.VectorType(_I32, lanes), [0] * lanes))


def _quad_operator(op, quad, emit):
    """Numba's ``op`` on two ``quad`` values, lane by lane, emitted by ``emit``."""
    from numba.extending import overload

    @intrinsic
    def lanewise(typingctx, a, b):
        def codegen(context, builder, signature, args):
            return emit(builder, *args)

        return quad(a, b), codegen

    @overload(op)
    def quad_op(a, b):
        if a == quad and b == quad:
            return lambda a, b: lanewise(a, b)
        return None


#: ``load_pair(array, index)``: ``array[index : index + 2]`` as a :data:`float64x2`;
#: ``store_pair(array, index, pair)`` writes it back; ``load_quad`` the same load for
#: :data:`float64x4` (stored with :func:`store_vector`), ``load_octet``, ``store_octet``
#: for :data:`float64x8`.
(FloatVector, Float64x2, float64x2, float64x4, float64x8, load_pair, store_pair, load_quad, load_octet,
 store_octet) = defined_with_numba(_vector_types, "FloatVector", "Float64x2", "float64x2", "float64x4", "float64x8",
                                   "load_pair", "store_pair", "load_quad", "load_octet", "store_octet")


def _wide(vector):
    return vector in (float64x4, float64x8)


@intrinsic
def load_like(typingctx, array, index, like):
    """``array[index : index + lanes]`` as a vector of ``like``'s type (:data:`float64x4`
    or :data:`float64x8`; a C-contiguous float64 array; no checks)."""
    if not (c_float64(array) and isinstance(index, types.Integer) and _wide(like)):
        return None

    def codegen(context, builder, signature, args):
        return load_lanes(context, builder, signature.args[0], args[0], args[1],
                           ir.VectorType(ir.DoubleType(), like.lanes))

    return like(array, index, like), codegen


@intrinsic
def store_vector(typingctx, array, index, value):
    """``array[index : index + lanes] = value`` for a :data:`float64x4` or
    :data:`float64x8` (any 1-D float64 array; no checks)."""
    if not (_float64_row(array) and isinstance(index, types.Integer) and _wide(value)):
        return None

    def codegen(context, builder, signature, args):
        store_lanes(context, builder, signature.args[0], args[0], args[1], args[2])
        return context.get_dummy_value()

    return types.void(array, index, value), codegen


@intrinsic
def splat_like(typingctx, like, value):
    """``value`` (float64) in every lane of a vector of ``like``'s type."""
    if not (_wide(like) and value == types.float64):
        return None

    def codegen(context, builder, signature, args):
        return splat(builder, args[1], like.lanes)

    return like(like, value), codegen


@intrinsic
def lane_count(typingctx, vector):
    """The number of lanes of a :data:`float64x4` or :data:`float64x8` (a constant)."""
    if not _wide(vector):
        return None

    def codegen(context, builder, signature, args):
        return ir.Constant(ir.IntType(64), vector.lanes)

    return types.int64(vector), codegen


def shuffle(builder, a, b, lanes):
    """Lanes ``lanes`` of ``a`` followed by ``b`` (``b`` None: ``a`` alone) (code generation)."""
    lanes = list(lanes)
    return builder.shuffle_vector(a, b if b is not None else ir.Constant(a.type, ir.Undefined),
                                  ir.Constant(ir.VectorType(_I32, len(lanes)), lanes))


@intrinsic
def store_interleaved(typingctx, array, index, a, b):
    """``array[index + 2 t] = a[t]`` and ``array[index + 2 t + 1] = b[t]`` for every lane
    ``t``: two :data:`float64x4` (:data:`float64x8`) interleaved into eight (sixteen)
    consecutive values (any 1-D float64 array; no checks)."""
    if not (_float64_row(array) and isinstance(index, types.Integer) and _wide(a) and a == b):
        return None
    n = a.lanes

    def codegen(context, builder, signature, args):
        both = shuffle(builder, args[2], args[3], [lane for t in range(n) for lane in (t, n + t)])
        store_lanes(context, builder, signature.args[0], args[0], args[1], both)
        return context.get_dummy_value()

    return types.void(array, index, a, b), codegen


@intrinsic
def store_deinterleaved(typingctx, evens, even_index, odds, odd_index, a, b):
    """The inverse of :func:`store_interleaved`: of the values ``a[0], a[1], ..., b[0],
    b[1], ...`` in that order, the 1st, 3rd, 5th ... to ``evens[even_index :]``, the
    others to ``odds[odd_index :]``, as many to each as a vector has lanes (any 1-D
    float64 arrays; no checks)."""
    if not (_float64_row(evens) and _float64_row(odds) and isinstance(even_index, types.Integer)
            and isinstance(odd_index, types.Integer) and _wide(a) and a == b):
        return None
    n = a.lanes

    def codegen(context, builder, signature, args):
        for array, lane in ((0, 0), (2, 1)):
            values = shuffle(builder, args[4], args[5], list(range(lane, 2 * n, 2)))
            store_lanes(context, builder, signature.args[array], args[array], args[array + 1], values)
        return context.get_dummy_value()

    return types.void(evens, even_index, odds, odd_index, a, b), codegen
