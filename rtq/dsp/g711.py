"""ITU-T G.711 mu-law and A-law companding on 16-bit linear samples.

Scalar Numba kernels, written from the G.711 segment definitions: mu-law works on the
14-bit magnitude (bias 33, 8 segments), A-law on 13 bits (segments from 32 upwards).
Encoding takes the top 14 (mu) or 13 (A) bits of the 16-bit sample by an arithmetic shift,
as the standard's reference coder does, so codes equal Python's ``audioop`` code for code.
"""
import numpy as np

from ..jit import kernel, njit

_MU_BIAS = 33
_MU_CLIP = 8159


@njit(inline="always")
def _segment(value, first_end):
    """Index of the first segment (ends first_end, 2 first_end + 1, ...) holding value; 8 if none."""
    seg = 0
    end = first_end
    while seg < 8 and value > end:
        seg += 1
        end = 2 * end + 1
    return seg


@kernel
def ulaw_encode(sample16):
    """8-bit mu-law code of a 16-bit linear sample."""
    v = sample16 >> 2
    if v < 0:
        v = -v
        mask = 0x7F
    else:
        mask = 0xFF
    if v > _MU_CLIP:
        v = _MU_CLIP
    v += _MU_BIAS
    seg = _segment(v, 0x3F)
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((v >> (seg + 1)) & 0xF)) ^ mask


@kernel
def ulaw_decode(code):
    """16-bit linear sample of an 8-bit mu-law code."""
    u = ~code & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return 0x84 - t if u & 0x80 else t - 0x84


@kernel
def alaw_encode(sample16):
    """8-bit A-law code of a 16-bit linear sample."""
    v = sample16 >> 3
    if v >= 0:
        mask = 0xD5
    else:
        mask = 0x55
        v = -v - 1
    seg = _segment(v, 0x1F)
    if seg >= 8:
        return 0x7F ^ mask
    shift = 1 if seg < 2 else seg
    return ((seg << 4) | ((v >> shift) & 0x0F)) ^ mask


@kernel
def alaw_decode(code):
    """16-bit linear sample of an 8-bit A-law code."""
    a = code ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    if seg == 0:
        t += 8
    else:
        t = (t + 0x108) << (seg - 1)
    return t if a & 0x80 else -t


LAW_MU = 0
LAW_A = 1
LAWS = {"mu-law": LAW_MU, "a-law": LAW_A}
"""The companding laws by name (presets, ``Quantize``)."""


def pack(law: str) -> dict:
    """A compander's op for :meth:`rtq.program.ProgramBuilder.add_op`, read back by
    :func:`compand_op`: ``args`` holds the law's code."""
    return {"args": (LAWS[law],)}


@kernel
def compand_op(buf, n, args, counters):
    """Run the op :func:`pack` laid out."""
    compand_block(buf, n, args[0], counters)


@kernel
def compand_block(buf, n, law, counters):
    """Quantize ``buf[:, :n]`` (channels, frames) in place through G.711 and back to linear.

    The float input is first put on the 16-bit grid (round to nearest, saturating; each
    saturated sample adds one to ``counters[c, 0]``), then encoded and decoded.
    """
    for c in range(buf.shape[0]):
        for i in range(n):
            s = np.rint(buf[c, i] * 32768.0)
            if s > 32767.0:
                s = 32767.0
                counters[c, 0] += 1
            elif s < -32768.0:
                s = -32768.0
                counters[c, 0] += 1
            v = np.int64(s)
            if law == LAW_MU:
                lin = ulaw_decode(ulaw_encode(v))
            else:
                lin = alaw_decode(alaw_encode(v))
            buf[c, i] = lin * (1.0 / 32768.0)
