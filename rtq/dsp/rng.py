"""Counter-based random numbers for dither (SplitMix64).

Each channel of each dither source owns one 64-bit state word; every draw advances it by
the golden-ratio increment and hashes it.  The stream has period 2^64 (no cyclic noise
table, it never repeats in practice), costs a handful of integer operations, and depends
only on how many draws were made, so block boundaries cannot change the noise.

Because the n-th draw is a function of ``state + n * increment`` alone, a kernel can also
make several draws at once in the lanes of a vector register (:func:`mix_lanes`, for
code generation): the same numbers, in the same order, as the scalar draws.
"""
import numpy as np
from llvmlite import ir

from ..jit import njit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_TWO_M53 = 1.0 / 9007199254740992.0
_MASK64 = (1 << 64) - 1


@njit(inline="always")
def _mix(z):
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@njit(inline="always")
def next_bits(state):
    """Advance a generator state; returns ``(new_state, 64 random bits)``.

    Scalars in and out: kernels keep the state in a register for a whole block (an
    array argument to an inlined helper would cost reference counting per sample).
    """
    state = state + _GOLDEN
    return state, _mix(state)


@njit(inline="always")
def next_uniform(state):
    """Advance a generator state; returns ``(new_state, uniform double in [0, 1))``."""
    state, z = next_bits(state)
    return state, np.float64(z >> _S11) * _TWO_M53


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def mix_lanes(builder, states, draws):
    """Code generation: the bits of draw ``draws[k]`` (1 = the next draw) from generator
    state ``states[k]``, in lane ``k`` of an ``<n x i64>`` vector: :func:`next_bits`
    ``draws[k]`` times, without advancing the states (the caller does: :func:`advanced`)."""
    lanes = len(draws)
    vec = ir.VectorType(ir.IntType(64), lanes)

    def splat(value):
        return ir.Constant(vec, [_signed(value)] * lanes)

    z = builder.add(states, ir.Constant(vec, [_signed(int(_GOLDEN) * d & _MASK64) for d in draws]))
    for shift, factor in ((_S30, _MIX1), (_S27, _MIX2)):
        z = builder.mul(builder.xor(z, builder.lshr(z, splat(int(shift)))), splat(int(factor)))
    return builder.xor(z, builder.lshr(z, splat(int(_S31))))


@njit(inline="always")
def advanced(state, draws):
    """``state`` after ``draws`` draws (modulo 2^64, as the draws themselves: negative
    ``draws`` rewind it)."""
    return state + _GOLDEN * np.uint64(draws)


def _mix_int(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def stream_seed(seed: int, *path: int) -> int:
    """Initial state for the dither stream identified by ``seed`` and a path of indices.

    The path is (stage index, ..., channel); hashing each element in turn gives streams
    that are independent for every stage and channel and reproducible from the seed.
    """
    z = _mix_int((seed + 0x9E3779B97F4A7C15) & _MASK64)
    for p in path:
        z = _mix_int((z ^ (p + 1) * 0x9E3779B97F4A7C15) & _MASK64)
    return z
