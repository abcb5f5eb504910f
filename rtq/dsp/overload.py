"""Overload counting before a sigma-delta loop: samples above its maximum stable amplitude.

A designed-NTF loop (:mod:`rtq.dsp.ntf`) is stable only for inputs up to its maximum
stable amplitude (MSA, :mod:`rtq.dsp.stability`); above it a 1-bit loop can fall into a
large limit cycle whose in-band noise is 70-100 dB higher, without overloading long
enough to be reset.  The op here counts, per channel, the samples whose magnitude
exceeds the MSA, on the block the loop is about to take: a read-only pass of its own,
so the loop's kernel stays as fast as it is and the samples do not change.

Real-time rules: allocates nothing, takes no locks.
"""
import numpy as np

from ..jit import kernel

# Counter slot of the op's own row (per channel): samples above the threshold.
COUNT_OVERLOADS = 3


def pack(threshold: float) -> dict:
    """The op for :meth:`rtq.program.ProgramBuilder.add_op`: count ``|x| > threshold``."""
    return {"params": np.array([threshold], dtype=np.float64)}


@kernel
def overload_op(buf, n, params, counters):
    """Add, per channel, the samples of ``buf[:, :n]`` above ``params[0]`` in magnitude to
    ``counters[c, COUNT_OVERLOADS]``."""
    threshold = params[0]
    for c in range(buf.shape[0]):
        row = buf[c]
        count = 0
        for t in range(n):
            count += abs(row[t]) > threshold
        counters[c, COUNT_OVERLOADS] += count
