"""Near-instantaneous block companding (NICAM-style): a coarse ``bits``-bit quantizer whose
step is chosen per block of samples from the block's peak.

For every block of ``block`` samples (counted from the stream's start, so any split of
the stream into calls gives the same blocks) the encoder picks the scale ``s`` from 0
to ``S = range_bits - bits``: the largest for which the block's peak, plus the dither's
peak, stays within the coarse quantizer's codes at step ``q_s = 2^(1 - bits - s)``.  A
quiet block gets a fine step (down to ``2^(1 - range_bits)``, the ``range_bits`` grid:
lossless for input already on it), a loud one a coarse step that still spans its peak.
Each sample is then quantized at ``q_s`` with dither (in LSB of ``q_s``) and optional
error feedback, and the decoded value ``q_s * code`` is the output: always a value of
the ``range_bits`` grid.  NICAM-728 is ``bits = 10, range_bits = 14, block = 32`` at
32 kHz (five scales, 1 ms blocks).

The encoder needs a whole block before it can choose its scale, so the output is
``block`` samples late (the stage's latency): each call outputs the decoded samples of
the previous block while it collects the next.

Error feedback runs on the absolute error (the step changes from block to block; the
noise transfer function shapes the error whatever its step), in direct form:
``o[n] = sum_j a[j] e[n-1-j] - sum_j b[j] o[n-1-j]``, the error clamped to half a step
plus the dither's peak (as :mod:`rtq.dsp.requantize` does) where the output saturates.

Per channel and scale, the blocks coded at that scale are counted (for the meter).

Real-time rules: allocates nothing; the block buffers, filter histories, positions and
counts are the op's state, cleared by ``reset``.
"""
import numpy as np

from ..jit import kernel
from .requantize import COUNT_CLIPS, DITHER_CODES, dither_peak_lsb, dither_sample

# Error-filter history rings (powers of two): past errors (FIR taps, up to 64) and past
# filter outputs (recursive taps, up to 7).
E_RING = 64
O_RING = 8
MAX_SCALES = 24


def steps(bits: int, range_bits: int) -> np.ndarray:
    """The step of each scale ``s = 0 .. range_bits - bits``: ``2^(1 - bits - s)``."""
    return 2.0 ** (1 - bits - np.arange(range_bits - bits + 1))


def state_per_channel(block: int) -> int:
    """fstate words per channel: the block collected, the block decoded, the error and
    filter-output rings, the tpdf-hp draw."""
    return 2 * block + E_RING + O_RING + 1


def pack(bits: int, range_bits: int, block: int, dither: str, amplitude: float, a, b, channels: int) -> dict:
    """A block compander's op for :meth:`rtq.program.ProgramBuilder.add_op`, read back by
    :func:`blockcompand_op`.  ``params``: the dither amplitude, its peak in LSB, then
    ``a`` and ``b``; ``args``: bits, scales, block, dither code, len(a), len(b); integer
    state: the block position, the ring position, then ``channels x scales`` counts."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.size > E_RING or b.size > O_RING - 1:
        raise ValueError(f"block companding takes error filters of up to {E_RING} + {O_RING - 1} taps")
    scales = range_bits - bits + 1
    kind = DITHER_CODES[dither]
    return {"params": np.concatenate([[amplitude, dither_peak_lsb(kind, amplitude)], a, b]),
            "state_per_channel": state_per_channel(block),
            "istate": (0, 0) + (0,) * (channels * scales),
            "args": (bits, scales, block, kind, a.size, b.size)}


@kernel
def blockcompand_op(buf, n, params, args, state, ist, rng, counters):
    """Run the op :func:`pack` laid out (``ist``: its integer state, ``state``: its
    channels' fstate)."""
    bits, scales, block, kind = args[0], args[1], args[2], args[3]
    na, nb = args[4], args[5]
    nch = buf.shape[0]
    stride = state.shape[0] // nch
    position = ist[0]
    ring = ist[1]
    for c in range(nch):
        position, ring = _channel(buf[c, :n], params[2:2 + na], params[2 + na:2 + na + nb], params[0], params[1],
                                  bits, scales, block, kind, state[c * stride:(c + 1) * stride],
                                  ist[0], ist[1], ist[2 + c * scales:2 + (c + 1) * scales], rng[c:c + 1], counters[c])
    ist[0] = position
    ist[1] = ring


@kernel
def _channel(x, a, b, amp, dither_peak, bits, scales, block, kind, st, position, ring, counts, rng, counters):
    """One channel's samples through the block delay and the coder; returns the block
    and ring positions after them (the same for every channel)."""
    collected = st[:block]
    decoded = st[block:2 * block]
    errors = st[2 * block:2 * block + E_RING]
    outputs = st[2 * block + E_RING:2 * block + E_RING + O_RING]
    misc = st[2 * block + E_RING + O_RING:]
    for i in range(x.shape[0]):
        v = x[i]
        x[i] = decoded[position]
        collected[position] = v
        position += 1
        if position == block:
            ring = _code_block(collected, decoded, a, b, amp, dither_peak, bits, scales, kind, errors, outputs,
                               misc, ring, counts, rng, counters)
            position = 0
    return position, ring


@kernel
def _code_block(collected, decoded, a, b, amp, dither_peak, bits, scales, kind, errors, outputs, misc, ring,
                counts, rng, counters):
    """Choose the block's scale from its peak, quantize it at that step into ``decoded``."""
    peak = 0.0
    for v in collected:
        peak = max(peak, abs(v))
    top = 2.0 ** (bits - 1)
    s = scales - 1
    # The largest scale at which the peak plus the dither's stays within the codes.
    while s > 0 and peak * top * 2.0 ** s > top - 1.0 - dither_peak:
        s -= 1
    counts[s] += 1
    step = 2.0 ** (1 - bits - s)
    inv_step = 1.0 / step
    ebound = (0.5 + dither_peak) * step
    lo = -top
    hi = top - 1.0
    na = a.shape[0]
    nb = b.shape[0]
    gen = rng[0]
    prev = misc[0]
    for i in range(collected.shape[0]):
        o = 0.0
        for j in range(na):
            o += a[j] * errors[(ring - 1 - j) & (E_RING - 1)]
        for j in range(nb):
            o -= b[j] * outputs[(ring - 1 - j) & (O_RING - 1)]
        target = collected[i] - o
        r, gen, prev = dither_sample(kind, amp, gen, prev)
        q = np.rint(target * inv_step + r)
        if q > hi:
            q = hi
            counters[COUNT_CLIPS] += 1
        elif q < lo:
            q = lo
            counters[COUNT_CLIPS] += 1
        y = (q + 0.0) * step        # + 0.0: code -0 is +0, as a file holds it (no negative zeros out)
        decoded[i] = y
        e = min(max(y - target, -ebound), ebound)
        errors[ring & (E_RING - 1)] = e
        outputs[ring & (O_RING - 1)] = o
        ring = (ring + 1) & (E_RING * O_RING - 1)
    rng[0] = gen
    misc[0] = prev
    return ring
