"""Lloyd-Max design: the MSE-optimal non-uniform quantizer for a distribution or for data.

A quantizer with levels ``y_1 < ... < y_K`` and thresholds ``t_1 < ... < t_{K-1}`` is
MSE-optimal only if (Lloyd 1957/1982, Max 1960) every threshold is the midpoint of its
two levels and every level is the centroid (the conditional mean) of its cell.  Lloyd's
iteration alternates the two conditions; each step lowers the MSE, and for log-concave
densities (Gaussian, Laplacian, and most audio amplitude distributions close to them)
the fixed point is unique (Fleischer 1964), so the iteration finds the global optimum.

Two sources of cell moments (count, sum, sum of squares):

* a distribution (:func:`design_for_pdf`): Gaussian or Laplacian of a given standard
  deviation, optionally restricted to a support such as full scale; the moments of a
  cell are closed forms (differences of the partial moments below), exact to rounding;
* data (:class:`Histogram`, :func:`design_from_histogram`): samples are streamed into a
  fixed histogram over full scale that keeps, per bin, the count, the sum and the sum of
  squares of the samples in it.  Memory is the histogram's (independent of the data's
  length); cell moments are exact sums over whole bins, and the bin a threshold falls
  in is split as if its samples were spread evenly over it (bins are 2^-(bits+9) of
  full scale wide at most, see :func:`histogram_bins`): continuous in the thresholds,
  so Lloyd's iteration converges as on the data itself, and the design's MSE is exact
  but for the samples of the K - 1 bins that hold a threshold.

Why not an exact 1-D k-means library (``kmeans1d``, which finds the global optimum by
dynamic programming): it needs every sample in memory at once (or a random reservoir,
which designs for a sample of the data, not the data) and takes O(K N log N) time (K =
65536 levels over 10^6 samples: hours); it takes no weights, so it cannot run on a
histogram.  The tests use it as an oracle on data small enough for it.

Design code only (NumPy and SciPy, at prepare or train time); the kernel that applies a
quantizer's levels is :mod:`rtq.dsp.levels`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..jit import kernel

PDFS = ("gaussian", "laplacian")
MAX_LEVELS = 65536
MAX_ITERATIONS = 100_000
# ... and at most this many level updates in all (65536 levels: 2048 iterations).
MAX_UPDATES = 1 << 27
# Lloyd stops when no level moves by more than this fraction of the levels' span.
TOLERANCE = 1e-13
# Histogram bins per level at most, and the most bins a channel's histogram holds.
BINS_PER_LEVEL = 1024
MAX_BINS = 1 << 22


@dataclass(frozen=True)
class Figures:
    """A quantizer's error over a source: ``mse``, the source's ``power`` (mean square),
    SNR (power over MSE) and PSNR (full scale, peak 1.0, over MSE, as the meter reads it), in dB."""

    mse: float
    power: float

    @property
    def snr_db(self) -> float:
        return 10.0 * math.log10(self.power / self.mse) if self.mse > 0 else math.inf

    @property
    def psnr_db(self) -> float:
        return 10.0 * math.log10(1.0 / self.mse) if self.mse > 0 else math.inf


@dataclass(frozen=True)
class Design(Figures):
    """A designed quantizer: ``levels`` (sorted), ``thresholds`` (the midpoints), its
    ``mse`` over the source, the source's ``power`` and the Lloyd ``iterations`` it took."""

    levels: np.ndarray
    thresholds: np.ndarray
    iterations: int


def midpoints(levels: np.ndarray) -> np.ndarray:
    """The decision thresholds of ``levels``: midpoints of neighbours (Lloyd-Max's
    first condition), as the kernel uses them."""
    levels = np.asarray(levels, dtype=np.float64)
    return 0.5 * (levels[:-1] + levels[1:])


# -- distributions --------------------------------------------------------------------


def _partial_moments(pdf: str, t: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``P(X <= t)``, ``E[X; X <= t]`` and ``E[X^2; X <= t]`` of a zero-mean ``pdf`` of
    standard deviation ``sigma`` (``t`` may hold +-inf)."""
    from scipy.special import ndtr   # start-up cost: only designs need SciPy

    t = np.asarray(t, dtype=np.float64)
    if pdf == "gaussian":
        z = t / sigma
        density = np.where(np.isfinite(z), np.exp(-0.5 * z * z) / (sigma * math.sqrt(2.0 * math.pi)), 0.0)
        finite_t = np.where(np.isfinite(t), t, 0.0)
        f0 = ndtr(z)
        return f0, -sigma ** 2 * density, sigma ** 2 * (f0 - finite_t * density)
    if pdf == "laplacian":
        beta = sigma / math.sqrt(2.0)
        u = np.abs(t)
        tail = np.exp(-u / beta)         # 0 at +-inf
        u = np.where(np.isfinite(u), u, 0.0)
        below = t < 0
        f0 = np.where(below, 0.5 * tail, 1.0 - 0.5 * tail)
        f1 = -0.5 * (u + beta) * tail   # E[X; X <= t] for t >= 0, and the same for t < 0
        second_tail = 0.5 * (u * u + 2.0 * u * beta + 2.0 * beta * beta) * tail
        f2 = np.where(below, second_tail, 2.0 * beta * beta - second_tail)
        return f0, f1, f2
    raise ValueError(f"pdf must be one of {', '.join(PDFS)}, got {pdf!r}")


def design_for_pdf(pdf: str, count: int, sigma: float = 1.0, support: tuple[float, float] | None = None) -> Design:
    """The Lloyd-Max quantizer of ``count`` levels for a zero-mean ``pdf`` ("gaussian"
    or "laplacian") of standard deviation ``sigma``, restricted to ``support`` (the
    density conditioned on it, e.g. full scale ``(-1, 1)``; None: the whole line).

    Cell moments are closed forms, so the design is exact to rounding: it meets Max's
    (1960) Gaussian table to all its digits.
    """
    _check_count(count)
    lo, hi = support if support is not None else (-math.inf, math.inf)
    f0, f1, f2 = _partial_moments(pdf, np.array([lo, hi]), sigma)
    mass = f0[1] - f0[0]
    power = (f2[1] - f2[0]) / mass

    def moments(thresholds):
        edges = np.concatenate([[lo], thresholds, [hi]])
        g0, g1, g2 = _partial_moments(pdf, edges, sigma)
        return np.diff(g0), np.diff(g1), np.diff(g2)

    # Start where high-resolution theory puts the levels (Panter and Dite 1951): at
    # equal steps of the cumulative cube root of the density, which for both densities
    # is the same law at sqrt(3) (Gaussian) or 3 (Laplacian) times the scale.
    stretched = sigma * (math.sqrt(3.0) if pdf == "gaussian" else 3.0)
    g0 = _partial_moments(pdf, np.array([lo, hi]), stretched)[0]
    targets = g0[0] + (g0[1] - g0[0]) * (np.arange(count) + 0.5) / count
    return _lloyd(_quantiles(pdf, targets, stretched), moments, mass, power)


def _quantiles(pdf: str, p: np.ndarray, sigma: float) -> np.ndarray:
    """The inverse of ``P(X <= t)`` for a zero-mean ``pdf`` of standard deviation ``sigma``."""
    from scipy.special import ndtri

    if pdf == "gaussian":
        return sigma * ndtri(p)
    beta = sigma / math.sqrt(2.0)
    return np.where(p < 0.5, beta * np.log(2.0 * p), -beta * np.log(2.0 * (1.0 - p)))


def pdf_mse(pdf: str, levels: np.ndarray, sigma: float = 1.0, support: tuple[float, float] | None = None) -> float:
    """The MSE of any ``levels`` (thresholds at their midpoints) for ``pdf``, as
    :func:`design_for_pdf` defines the source."""
    lo, hi = support if support is not None else (-math.inf, math.inf)
    levels = np.asarray(levels, dtype=np.float64)
    edges = np.clip(np.concatenate([[lo], midpoints(levels), [hi]]), lo, hi)
    g0, g1, g2 = (np.diff(g) for g in _partial_moments(pdf, edges, sigma))
    return float(np.sum(g2 - 2.0 * levels * g1 + levels * levels * g0) / g0.sum())


# -- data -------------------------------------------------------------------------------


def histogram_bins(levels: int, channels: int = 1, max_bytes: int = 256 << 20) -> int:
    """Bins of a training histogram over full scale: :data:`BINS_PER_LEVEL` per level
    (so the bins are at least 1024 times finer than the finest uniform grid of as many
    levels, and thresholds land within 2^-(bits+9) of full scale of where Lloyd puts
    them), at most :data:`MAX_BINS`, and at most ``max_bytes`` for all ``channels``
    together (24 bytes a bin); a power of two, at least 4096."""
    by_memory = max(max_bytes // (24 * channels), 4096)
    bins = min(BINS_PER_LEVEL * levels, MAX_BINS, by_memory)
    return max(4096, 1 << (bins.bit_length() - 1))


class Histogram:
    """Samples in full scale, streamed into ``bins`` equal bins over [-1, 1] per channel
    (samples beyond full scale count at +-1, where the quantizer saturates), keeping
    each bin's count, sum and sum of squares: enough for exact cell moments at bin
    edges, in memory that does not grow with the data (24 bytes a bin and channel)."""

    def __init__(self, bins: int, channels: int = 1):
        self.bins = int(bins)
        self.channels = int(channels)
        self.count = np.zeros((channels, bins), np.int64)
        self.sum = np.zeros((channels, bins))
        self.sum2 = np.zeros((channels, bins))

    @property
    def samples(self) -> int:
        return int(self.count.sum())

    def add(self, block: np.ndarray, channel: int | None = None) -> None:
        """Add ``block``: (frames, channels) into each channel's histogram, or with
        ``channel`` any array of samples into that one."""
        block = np.asarray(block)
        if channel is None:
            for c in range(self.channels):
                _accumulate(self.count[c], self.sum[c], self.sum2[c], np.ascontiguousarray(block[:, c]))
        else:
            _accumulate(self.count[channel], self.sum[channel], self.sum2[channel],
                        np.ascontiguousarray(block).ravel())

    def joint(self) -> "Histogram":
        """All channels in one histogram."""
        merged = Histogram(self.bins, 1)
        merged.count[0] = self.count.sum(axis=0)
        merged.sum[0] = self.sum.sum(axis=0)
        merged.sum2[0] = self.sum2.sum(axis=0)
        return merged

    def moments(self, channel: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cumulative count, sum and sum of squares at each bin edge (``bins + 1`` each)."""
        def cumulative(a):
            return np.concatenate([[0], np.cumsum(a[channel])])
        return cumulative(self.count), cumulative(self.sum), cumulative(self.sum2)


@kernel
def _accumulate(count, total, total2, x):
    bins = count.shape[0]
    half = bins * 0.5
    for i in range(x.shape[0]):
        v = min(max(np.float64(x[i]), -1.0), 1.0)
        if v != v:          # NaN: no sample
            continue
        k = min(int((v + 1.0) * half), bins - 1)
        count[k] += 1
        total[k] += v
        total2[k] += v * v


def design_from_histogram(hist: Histogram, count: int, channel: int = 0) -> Design:
    """The Lloyd-Max quantizer of ``count`` levels for the samples in ``hist`` (one
    channel): started from the data's quantiles, iterated until the MSE stops falling.  Raises ValueError when the data fill fewer than ``count`` bins (fewer
    distinct values than levels)."""
    _check_count(count)
    c0, c1, c2 = hist.moments(channel)
    n = c0[-1]
    used = int(np.count_nonzero(hist.count[channel]))
    if used < count:
        raise ValueError(f"the data hold {used} distinct value{'s' * (used != 1)} (at the histogram's "
                         f"resolution), fewer than the {count} levels asked for")
    edges_x = np.linspace(-1.0, 1.0, hist.bins + 1)
    power = c2[-1] / n

    def cumulative(thresholds):
        # Between edges, linear: samples spread evenly over their bin.  Continuous in
        # the thresholds, so Lloyd's small late steps are not lost to rounding to edges.
        position = np.clip((thresholds + 1.0) * (hist.bins / 2.0), 0.0, hist.bins)
        j = np.minimum(position.astype(np.int64), hist.bins - 1)
        f = position - j
        return [np.concatenate([[0.0], c[j] + f * (c[j + 1] - c[j]), [float(c[-1])]]) for c in (c0, c1, c2)]

    def moments(thresholds):
        return tuple(np.diff(c) for c in cumulative(thresholds))

    levels = _global_start(hist.count[channel], hist.sum[channel], hist.sum2[channel], count, edges_x)
    design = _lloyd(levels, moments, float(n), power, empty_ok=True)
    return design


# Exact search: at most this many atoms per level, and atoms times levels.
GLOBAL_ATOMS_PER_LEVEL = 64
GLOBAL_MAX_WORK = 1 << 25


def _global_start(count, total, total2, levels: int, edges_x) -> np.ndarray:
    """Where Lloyd starts on data: the globally optimal quantizer of the histogram merged
    to at most :data:`GLOBAL_ATOMS_PER_LEVEL` atoms per level (exact 1-D k-means by
    dynamic programming, as ``kmeans1d`` computes it), when that takes at most
    :data:`GLOBAL_MAX_WORK` atoms times levels (up to about 700 levels, 9 bits); else
    the levels high-resolution theory gives (Panter and Dite 1951: equal steps of the
    cumulative cube root of the density).  Lloyd's iteration alone finds only a local
    optimum on data: started from the data's quantiles it stopped 3 % above the optimum
    at 64 levels of 2 * 10^5 Gaussian samples (43 % at 256), caught in the sparse tails.
    """
    bins = count.shape[0]
    group = max(1, bins // (GLOBAL_ATOMS_PER_LEVEL * levels))
    w = count.reshape(-1, group).sum(axis=1).astype(np.float64)
    s1 = total.reshape(-1, group).sum(axis=1)
    s2 = total2.reshape(-1, group).sum(axis=1)
    keep = w > 0
    w, s1, s2 = w[keep], s1[keep], s2[keep]
    if w.size * levels <= GLOBAL_MAX_WORK and w.size >= levels:
        ends = _optimal_partition(np.cumsum(w), np.cumsum(s1), np.cumsum(s2), levels)
        starts = np.concatenate([[0], ends[:-1]])
        cw = np.concatenate([[0.0], np.cumsum(w)])
        cs = np.concatenate([[0.0], np.cumsum(s1)])
        return (cs[ends] - cs[starts]) / (cw[ends] - cw[starts])
    root = np.concatenate([[0.0], np.cumsum(np.cbrt(count.astype(np.float64)))])
    return np.interp(root[-1] * (np.arange(levels) + 0.5) / levels, root, edges_x)


@kernel
def _cell_cost(cw, cs, cs2, i, j):
    """Squared error of atoms i .. j-1 (0-based, j > i) about their centroid."""
    w = cw[j - 1] - (cw[i - 1] if i > 0 else 0.0)
    s = cs[j - 1] - (cs[i - 1] if i > 0 else 0.0)
    s2 = cs2[j - 1] - (cs2[i - 1] if i > 0 else 0.0)
    return max(s2 - s * s / w, 0.0) if w > 0 else 0.0


@kernel
def _optimal_partition(cw, cs, cs2, levels):
    """End index (exclusive) of each of ``levels`` cells of the atoms with cumulative
    weights, sums and sums of squares ``cw``, ``cs``, ``cs2``: the partition of least
    squared error.  Dynamic programming over cells, each layer by divide and conquer
    (the best split point moves right with the end: Wu 1991, Gronlund et al. 2017),
    O(levels n log n) time, levels times n words to trace back."""
    n = cw.shape[0]
    previous = np.empty(n + 1)
    current = np.empty(n + 1)
    for j in range(n + 1):
        previous[j] = _cell_cost(cw, cs, cs2, 0, j) if j > 0 else 0.0
    split = np.zeros((levels, n + 1), np.int32)
    stack = np.empty((4 * (n + 2), 4), np.int64)
    for k in range(1, levels):
        for j in range(n + 1):
            current[j] = np.inf
        # (j range lo..hi, candidate split range from..to)
        top = 0
        stack[0, 0], stack[0, 1], stack[0, 2], stack[0, 3] = k + 1, n, k, n - 1
        top = 1
        while top > 0:
            top -= 1
            lo, hi, a, b = stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3]
            if lo > hi:
                continue
            mid = (lo + hi) // 2
            best = np.inf
            arg = a
            for i in range(a, min(b, mid - 1) + 1):
                value = previous[i] + _cell_cost(cw, cs, cs2, i, mid)
                if value < best:
                    best = value
                    arg = i
            current[mid] = best
            split[k, mid] = arg
            stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3] = lo, mid - 1, a, arg
            stack[top + 1, 0], stack[top + 1, 1], stack[top + 1, 2], stack[top + 1, 3] = mid + 1, hi, arg, b
            top += 2
        for j in range(n + 1):
            previous[j] = current[j]
    ends = np.empty(levels, np.int64)
    j = n
    for k in range(levels - 1, -1, -1):
        ends[k] = j
        j = split[k, j] if k > 0 else 0
    return ends


# -- Lloyd's iteration ------------------------------------------------------------------


def _lloyd(levels: np.ndarray, moments, mass: float, power: float, empty_ok: bool = False) -> Design:
    """Alternate centroids and midpoints from ``levels`` until no level moves by more
    than :data:`TOLERANCE` of their span (at most :data:`MAX_ITERATIONS` times, and
    :data:`MAX_UPDATES` level updates: Lloyd converges linearly, ever more slowly with
    more levels, so the largest designs stop near, not at, the fixed point).

    ``moments(thresholds)`` returns each cell's mass, first and second moments; an empty
    cell keeps its level (``empty_ok``) or ends the design with an error.  (Not until the
    MSE stops falling: near the optimum the MSE is flat, so it stops falling measurably
    while the levels are still 1e-7 of the span from the centroids.)"""
    iterations = 0
    for iterations in range(1, min(MAX_ITERATIONS, max(1000, MAX_UPDATES // levels.size)) + 1):
        m0, m1, m2 = moments(midpoints(levels))
        empty = m0 <= 0
        if empty.any() and not empty_ok:
            raise ValueError("a cell of the design holds no probability")
        centroids = np.where(empty, levels, m1 / np.where(empty, 1.0, m0))
        # Keep the levels strictly increasing (rounding, or an empty cell between two).
        centroids = np.maximum.accumulate(centroids)
        moved = np.max(np.abs(centroids - levels))
        levels = centroids
        if moved <= TOLERANCE * (levels[-1] - levels[0]):
            break
    if np.any(np.diff(levels) <= 0):
        raise ValueError("the design's levels are not distinct (too few distinct values in the data)")
    m0, m1, m2 = moments(midpoints(levels))
    mse = float(np.sum(m2 - 2.0 * levels * m1 + levels * levels * m0) / mass)
    return Design(mse=max(mse, 0.0), power=power, levels=levels, thresholds=midpoints(levels), iterations=iterations)


def uniform_mse(hist: Histogram, bits: int, channel: int = 0) -> float:
    """MSE of rtq's uniform ``bits``-bit grid (step ``2^(1-bits)``, codes ``-2^(bits-1)``
    .. ``2^(bits-1) - 1``, rounding to nearest) over the samples in ``hist``: the same
    number of levels as a ``bits``-bit Lloyd-Max design, for comparison."""
    from .requantize import grid_of

    step, off, lo, hi = grid_of(bits)
    levels = (np.arange(lo, hi + 1) + off) * step
    c0, c1, c2 = hist.moments(channel)
    j = np.clip(np.rint((midpoints(levels) + 1.0) * (hist.bins / 2.0)).astype(np.int64), 0, hist.bins)
    j = np.concatenate([[0], j, [hist.bins]])
    m0, m1, m2 = np.diff(c0[j]).astype(np.float64), np.diff(c1[j]), np.diff(c2[j])
    return float(np.sum(m2 - 2.0 * levels * m1 + levels * levels * m0) / c0[-1])


def _check_count(count: int) -> None:
    if not 2 <= count <= MAX_LEVELS:
        raise ValueError(f"a quantizer needs 2 to {MAX_LEVELS} levels, got {count}")
