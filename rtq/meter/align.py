"""Time and gain alignment of a processed file against its reference (``rtq analyze``).

:func:`align` finds the whole-sample lag and the gain, :func:`fractional_lag` the lag
to a fraction of a sample (a chain with oversampling delays by 5.454 samples, say; a
file rendered with its latency rounded is then 0.454 samples late), and
:class:`AlignedReference` reads the reference delayed by that lag, fractional part
included (:class:`rtq.meter.delay.FractionalDelay`), block by block.  The aligned pair
feeds :class:`rtq.meter.measure.ErrorMeter` as ``x = gain x reference`` and
``y = processed``.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import UsageError
from .delay import FractionalDelay

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


# A fractional lag within this many standard deviations of a whole number of samples is
# taken as whole: delaying by the estimate's own noise would add error, not remove it.
WHOLE_SIGMAS = 4.0
NEWTON_STEPS = 30
# Share of the signals tapered (half at each end) before the sub-sample estimate.
TAPER = 0.1


def fractional_lag(ref, proc) -> tuple[float, float]:
    """The lag of ``proc`` against ``ref`` to a fraction of a sample, and its standard
    deviation, for two signals already aligned to the nearest whole sample (the result
    lies within +-1).

    Both signals are tapered at their ends (a Tukey window over :data:`TAPER` of them:
    cut off square, the sample the one lacks at each end and the other holds biased the
    estimate by the order of ``1 / frames``, 5e-6 samples over 2 s).  The lag
    maximises the band-limited interpolation of their cross-correlation,
    ``c(t) = sum_k Re(P_k conj(R_k) e^(j w_k t))`` over the one-sided spectra (zero-padded
    to twice the length, so the correlation does not wrap), found by Newton's method on
    ``c'(t) = 0`` from ``t = 0``.  The standard deviation is the linearised one of that
    root for ``proc = g ref(n - t) + e``:
    ``var(t) = (nfft / frames) sum_k w_k^2 |R_k|^2 |E_k|^2 / c''(t)^2``, with ``E`` the
    spectrum of the tapered residual ``proc - g ref(n - t)`` (the reference delayed as
    :class:`AlignedReference` delays it), so shaped errors weigh as they lie.  A
    ``proc`` that is exactly a scaled copy of ``ref`` gives ``(0.0, 0.0)``.

    Parameters
    ----------
    ref, proc : array_like, shape (frames,) or (frames, channels)
        Same shape.

    Returns
    -------
    lag, sigma : float
        ``proc[n] ~ g ref[n - lag]``; ``sigma`` in samples.
    """
    from scipy.signal import windows  # imported where used, like the correlation's

    r = np.asarray(ref, dtype=float)
    p = np.asarray(proc, dtype=float)
    r, p = (a[:, None] if a.ndim == 1 else a for a in (r, p))
    energy = float(np.sum(r * r))
    if not len(r) or energy <= 0 or np.array_equal(p, (float(np.sum(r * p)) / energy) * r):
        return 0.0, 0.0
    taper = windows.tukey(len(r), TAPER)[:, None]
    nfft = 1 << int(2 * len(r) - 1).bit_length()
    spec_r = np.fft.rfft(r * taper, nfft, axis=0)
    spec_p = np.fft.rfft(p * taper, nfft, axis=0)
    w = 2.0 * np.pi * np.arange(len(spec_r)) / nfft
    m = np.full(len(w), 2.0)        # one-sided: every bin but DC and Nyquist counts twice
    m[[0, -1]] = 1.0
    cross = np.sum(spec_p * np.conj(spec_r), axis=1) * m

    def turn(t):
        rotated = cross * np.exp(1j * w * t)
        return -np.sum(w * rotated.imag), -np.sum(w * w * rotated.real)   # c'(t), c''(t)

    t = 0.0
    for _ in range(NEWTON_STEPS):
        slope, curve = turn(t)
        if not curve < 0:
            break
        step = -slope / curve
        t = min(max(t + step, -1.0), 1.0)
        if abs(step) < 1e-12:
            break
    _, curve = turn(t)
    if not curve < 0:
        return float(t), math.inf
    delayed = AlignedReference(r, t, 0).read(len(r))
    gain = float(np.sum(delayed * p) / np.sum(delayed * delayed))
    residual = np.fft.rfft((p - gain * delayed) * taper, nfft, axis=0)
    # |E_k|^2 / frames estimates the error's power density; the padded bins are not
    # independent, hence nfft / frames rather than 1 per bin.
    variance = nfft / len(r) * np.sum((m * w * w)[:, None] * np.abs(spec_r) ** 2 * np.abs(residual) ** 2)
    return float(t), float(np.sqrt(variance) / -curve)


def whole_or_fractional(lag: int, fraction: float, sigma: float) -> float:
    """``lag + fraction``, or the whole ``lag`` when ``fraction`` lies within
    :data:`WHOLE_SIGMAS` standard deviations of 0."""
    return float(lag) if abs(fraction) <= WHOLE_SIGMAS * sigma else lag + fraction


class AlignedReference:
    """``reference[m - lag]`` for consecutive frames ``m`` from ``start`` on, block by block
    (zeros where ``m - lag`` falls outside the reference); a fractional ``lag`` through a
    :class:`~rtq.meter.delay.FractionalDelay`.

    Parameters
    ----------
    source : numpy.ndarray (frames, channels) or soundfile.SoundFile
        The reference (a file is read from where it is sought to, as float64).
    lag : float
        Positive when the processed signal is late.
    start : int
        The first frame ``m`` :meth:`read` returns.

    Attributes
    ----------
    fractional : FractionalDelay or None
        The filter delaying by the fraction (None for a whole lag).
    """

    def __init__(self, source, lag: float, start: int):
        self._source = source
        self._length = len(source) if isinstance(source, np.ndarray) else source.frames
        self._channels = source.shape[1] if isinstance(source, np.ndarray) else source.channels
        whole = math.floor(lag)
        fraction = lag - whole
        self.fractional = FractionalDelay(fraction, self._channels) if fraction else None
        if self.fractional is None:
            self._position = start - whole
        else:   # the filter's output n is reference[n - bulk - fraction]
            first = start - whole + self.fractional.bulk
            self._position = max(first - self.fractional.warmup, 0)
            skip = first - self._position   # after a start past 0, the filter settles first
        if not isinstance(source, np.ndarray):
            source.seek(min(max(self._position, 0), self._length))
        if self.fractional is not None and skip:
            self.fractional(self._raw(skip))

    def _raw(self, n: int) -> np.ndarray:
        """The next ``n`` reference frames from the current position, zeros outside."""
        out = np.zeros((n, self._channels))
        lo = min(max(self._position, 0), self._length)
        hi = min(max(self._position + n, 0), self._length)
        if hi > lo:
            at = lo - self._position
            if isinstance(self._source, np.ndarray):
                out[at:at + hi - lo] = self._source[lo:hi]
            else:
                got = self._source.read(hi - lo, dtype="float64", always_2d=True)
                out[at:at + len(got)] = got
        self._position += n
        return out

    def read(self, n: int) -> np.ndarray:
        """The next ``n`` frames, (n, channels) float64."""
        raw = self._raw(n)
        return raw if self.fractional is None else self.fractional(raw)
