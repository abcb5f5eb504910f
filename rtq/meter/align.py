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
        dimensions as given; ``proc_aligned`` is not gain-corrected).

    Raises
    ------
    rtq.errors.UsageError
        Empty input, channel counts differ, or the best alignment within the lag range
        has no positive gain (silence, polarity inversion).
    """
    if max_lag_s < 0:
        raise ValueError(f"max_lag_s must be >= 0, got {max_lag_s}")
    ref, proc = np.asarray(reference, dtype=float), np.asarray(processed, dtype=float)
    ref2 = ref[:, None] if ref.ndim == 1 else ref
    proc2 = proc[:, None] if proc.ndim == 1 else proc
    if ref2.shape[1] != proc2.shape[1]:
        raise UsageError(f"reference has {ref2.shape[1]} channels but processed has {proc2.shape[1]}")
    if not len(ref) or not len(proc):
        raise UsageError("reference and processed must not be empty")
    max_lag = min(int(round(max_lag_s * sample_rate)), max(len(ref), len(proc)))
    corr, lags = _cross_correlation(ref2, proc2, max_lag, max(BLOCK_FRAMES, 4 * max_lag))
    lag = int(lags[np.argmax(np.abs(corr))])
    r0, p0 = max(-lag, 0), max(lag, 0)
    n = min(len(ref) - r0, len(proc) - p0)
    ref_aligned, proc_aligned = ref[r0:r0 + n], proc[p0:p0 + n]
    energy = np.sum(ref_aligned ** 2)
    cross = np.sum(ref_aligned * proc_aligned)
    if n <= 0 or energy <= 0 or cross <= 0:
        raise UsageError(f"processed does not follow reference within +-{max_lag_s:g} s "
                         "(silent, polarity-inverted or unrelated)")
    return lag, float(20.0 * np.log10(cross / energy)), ref_aligned, proc_aligned


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
