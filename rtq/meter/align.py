"""Time and gain alignment of a processed file against its reference (``rtq analyze``).

The aligned pair feeds :class:`rtq.meter.measure.ErrorMeter` as ``x = reference`` and
``y = processed`` (divided by the gain first to measure the error without the level
change).
"""
from __future__ import annotations

import numpy as np

from ..errors import UsageError

# Reference frames per cross-correlation block (at least; see _cross_correlation).
BLOCK_FRAMES = 1 << 16


def align(reference, processed, sample_rate: float, max_lag_s: float = 1.0):
    """Find the integer lag and gain of ``processed`` against ``reference``.

    The lag maximises the magnitude of the cross-correlation
    ``sum_n sum_ch reference[n] processed[n + lag]`` over
    ``|lag| <= max_lag_s * sample_rate`` (FFT correlation, block by block so memory
    stays proportional to the block and lag range, not to the file).  The gain is the
    least-squares gain of ``processed`` against ``reference`` over their overlap; it must
    be positive (a polarity-inverted file is reported, not silently accepted).

    Parameters
    ----------
    reference, processed : array_like, shape (frames, channels) or (frames,)
        The two signals, with the same number of channels.
    sample_rate : float
        Sample rate in Hz (both signals).
    max_lag_s : float
        Largest lag searched, in seconds, either way.

    Returns
    -------
    lag_samples : int
        Positive when ``processed`` is late: ``processed[n + lag] ~ g * reference[n]``.
    gain_db : float
        ``20 log10(g)`` with ``g = sum(ref * proc) / sum(ref^2)`` over the overlap.
    ref_aligned, proc_aligned : numpy.ndarray
        Both signals trimmed to their overlap at that lag (same length, same number of
        dimensions as given; ``proc_aligned`` is not gain-corrected; non-finite samples
        are zeros).

    Raises
    ------
    rtq.errors.UsageError
        Empty input, channel counts differ, or the best alignment within the lag range
        has no positive gain (polarity inversion).  A silent reference (all zeros) is
        taken as it is: lag 0, gain 0 dB.
    """
    if max_lag_s < 0:
        raise ValueError(f"max_lag_s must be >= 0, got {max_lag_s}")
    # Non-finite samples (counted by the meter) are zeros here: one NaN made every lag's
    # correlation NaN.
    ref, proc = (np.nan_to_num(np.asarray(a, dtype=float), nan=0.0, posinf=0.0, neginf=0.0)
                 for a in (reference, processed))
    ref2 = ref[:, None] if ref.ndim == 1 else ref
    proc2 = proc[:, None] if proc.ndim == 1 else proc
    if ref2.shape[1] != proc2.shape[1]:
        raise UsageError(f"reference has {ref2.shape[1]} channels but processed has {proc2.shape[1]}")
    if not len(ref) or not len(proc):
        raise UsageError("reference and processed must not be empty")
    if not np.any(ref2):     # digital silence: nothing to align on; measure as it is
        n = min(len(ref), len(proc))
        return 0, 0.0, ref[:n], proc[:n]
    max_lag = min(int(round(max_lag_s * sample_rate)), max(len(ref), len(proc)))
    corr, lags = _cross_correlation(ref2, proc2, max_lag, max(BLOCK_FRAMES, 4 * max_lag))
    lag = _least_lag(ref2, proc2, corr, lags)
    r0, p0 = max(-lag, 0), max(lag, 0)
    n = min(len(ref) - r0, len(proc) - p0)
    ref_aligned, proc_aligned = ref[r0:r0 + n], proc[p0:p0 + n]
    energy = np.sum(ref_aligned ** 2)
    cross = np.sum(ref_aligned * proc_aligned)
    if n <= 0 or energy <= 0 or cross <= 0:
        raise UsageError(f"processed does not follow reference within +-{max_lag_s:g} s "
                         "(polarity-inverted, unrelated, or silent where they overlap)")
    return lag, float(20.0 * np.log10(cross / energy)), ref_aligned, proc_aligned


# A periodic signal (a test tone) correlates as well, or all but, at whole periods of
# lag as at the true one: a 1 kHz tone trimmed to its first second aligned at -40 ms.
CANDIDATE_CORRELATION = 1e-3     # relative shortfall from the peak that makes a candidate
CANDIDATE_RESIDUAL_DB = 0.1      # how much more residual error a smaller lag may leave
MAX_CANDIDATES = 64


def _least_lag(ref, proc, corr, lags) -> int:
    """The lag of the correlation peak, or the smallest lag (in magnitude) that fits as
    well: among the lags correlating within :data:`CANDIDATE_CORRELATION` of the peak,
    the first by ``|lag|`` whose least-squares residual error is within
    :data:`CANDIDATE_RESIDUAL_DB` of the peak's.  A broadband signal has no such
    candidate but its peak (its neighbours leave far more residual)."""
    size = np.abs(corr)
    best = int(np.argmax(size))
    near = np.flatnonzero(size >= (1.0 - CANDIDATE_CORRELATION) * size[best])
    near = near[np.argsort(np.abs(lags[near]), kind="stable")][:MAX_CANDIDATES]
    bound = _residual(ref, proc, int(lags[best])) * 10.0 ** (CANDIDATE_RESIDUAL_DB / 10.0)
    for index in near:
        if abs(lags[index]) >= abs(lags[best]):
            break
        if _residual(ref, proc, int(lags[index])) <= bound:
            return int(lags[index])
    return int(lags[best])


def _residual(ref, proc, lag: int) -> float:
    """Mean square of ``proc - g ref`` at ``lag`` with the least-squares gain ``g``."""
    r0, p0 = max(-lag, 0), max(lag, 0)
    n = min(len(ref) - r0, len(proc) - p0)
    if n <= 0:
        return np.inf
    x, y = ref[r0:r0 + n], proc[p0:p0 + n]
    energy = float(np.sum(x * x))
    cross = float(np.sum(x * y))
    left = float(np.sum(y * y)) - (cross * cross / energy if energy > 0 else 0.0)
    return max(left, 0.0) / n


def _cross_correlation(ref: np.ndarray, proc: np.ndarray, max_lag: int, block: int):
    """``c[lag] = sum_n sum_ch ref[n] proc[n + lag]`` for ``-max_lag <= lag <= max_lag``.

    ``ref`` is cut into blocks; each block is correlated (mode "valid") with the stretch of
    ``proc`` it can reach, zero beyond ``proc``'s ends, and the results add up exactly.

    Returns
    -------
    corr, lags : numpy.ndarray
    """
    from scipy import signal  # imported where used: the live screen imports this package

    total = np.zeros(2 * max_lag + 1)
    for start in range(0, len(ref), block):
        part = ref[start:start + block]
        lo, hi = start - max_lag, start + len(part) + max_lag
        reach = np.zeros((hi - lo, proc.shape[1]))
        a, b = max(lo, 0), min(hi, len(proc))
        if b > a:
            reach[a - lo:b - lo] = proc[a:b]
        # 2-D "valid" correlation of equal widths sums over the channels.
        total += signal.correlate(reach, part, mode="valid", method="fft")[:, 0]
        lags = signal.correlation_lags(len(reach), len(part), mode="valid") + lo - start
    return total, lags
