"""A non-uniform quantizer: each sample becomes the nearest of a sorted set of levels.

The decision thresholds are the midpoints of neighbouring levels (Lloyd-Max's first
optimality condition, :mod:`rtq.dsp.lloyd_max`), so "nearest level" and "the level of
the cell" agree; a sample exactly on a threshold takes the upper level (the error is the
same either way).  A binary search over the thresholds (16 comparisons for 65536
levels) finds the cell.  No dither: a Lloyd-Max quantizer minimises the MSE of the
undithered error, which dither at a varying step would not preserve.

Channels share one set of levels, or each has its own (a design trained with
``--channels each``).  Input beyond full scale (+-1) takes the outer level and is
counted as clipped.

Real-time rules: allocates nothing, no state; the levels are the op's parameters.
"""
import numpy as np

from ..jit import kernel
from .lloyd_max import midpoints

COUNT_CLIPS = 0


def pack(level_sets) -> dict:
    """A quantizer's op for :meth:`rtq.program.ProgramBuilder.add_op`, read back by
    :func:`levels_op`: ``level_sets`` is one sorted set of levels for every channel,
    or one per channel (all of the same size).  ``params`` holds, per set, its
    thresholds then its levels; ``args`` the level count and the number of sets."""
    sets = [np.asarray(levels, dtype=np.float64) for levels in level_sets]
    count = sets[0].size
    params = np.concatenate([np.concatenate([midpoints(levels), levels]) for levels in sets])
    return {"params": params, "args": (count, len(sets))}


@kernel
def levels_op(buf, n, params, args, counters):
    """Run the op :func:`pack` laid out."""
    count = args[0]
    sets = args[1]
    width = 2 * count - 1
    for c in range(buf.shape[0]):
        base = (c if sets > 1 else 0) * width
        quantize_levels(buf[c, :n], params[base:base + count - 1], params[base + count - 1:base + width],
                        counters[c])


@kernel
def quantize_levels(x, thresholds, levels, counters):
    """Replace each sample of ``x`` (in place) by the level of its cell: the first
    ``k`` with ``x < thresholds[k]``, else the last; ``counters[COUNT_CLIPS]`` counts
    samples beyond full scale."""
    last = thresholds.shape[0]
    for i in range(x.shape[0]):
        v = x[i]
        if v > 1.0 or v < -1.0:
            counters[COUNT_CLIPS] += 1
        lo = 0
        hi = last
        while lo < hi:      # the number of thresholds <= v
            mid = (lo + hi) >> 1
            if thresholds[mid] <= v:
                lo = mid + 1
            else:
                hi = mid
        x[i] = levels[lo]
