"""Streaming measurement of one stage's quantization error (off the audio thread).

:class:`ErrorMeter` is fed the input ``x`` and output ``y`` of one stage, chunk by chunk,
and measures the error ``e = y - x``.  Memory is bounded whatever the total length, and
the results do not depend on how the stream is cut into chunks: every statistic is a sum
over frames, and the spectrum is built from FFT segments at fixed stream positions (a
partial segment waits in an internal buffer).

End-to-end metering (chain output against chain input) uses the same class: pass the
input delayed by the chain's latency as ``x`` (offline, :func:`rtq.meter.align.align`
finds the lag and trims both signals to their overlap).

Conventions: full scale is +-1.0, dBFS is ``10 log10(power)`` re amplitude 1.0 (a
full-scale sine reads -3.01 dBFS), the grid step of an N-bit stage is
``q = 2^(1 - N)`` (``q = 2`` for the 1-bit sign quantizer, as in
:mod:`rtq.dsp.requantize`), one LSB is ``q``.

Figures (``result()``, one list entry per channel unless noted)
----------------------------------------------------------------
``rms_dbfs``, ``peak_dbfs``
    ``10 log10(mean(e^2))`` and ``20 log10(max|e|)``.
``mse``, ``psnr_db``
    ``mean(e^2)`` and ``10 log10(1 / mse)`` (peak = full scale = 1.0).
``snr_db``
    ``10 log10(sum(x^2) / sum(e^2))``: input power over error power.
``dc_lsb``
    ``mean(e) / q``.
``a_weighted_dbfs``, ``itu468_dbfs``
    ``10 log10(sum_k P_k |W(f_k)|^2)`` with ``P_k`` the error power of spectrum bin ``k``
    (below) and ``|W|^2`` the curve's power weighting (0 dB at 1 kHz for A, the
    BS.468-4 curve's own gain for 468, read as RMS).  A white error of power ``P``
    therefore reads ``10 log10(P) + white_noise_gain_db(curve, fs)``
    (:func:`rtq.meter.weighting.white_noise_gain_db`, the band average of ``|W|^2``).
``spectrum``
    Welch average of the error: periodic Hann window of ``nfft`` (default 4096) frames,
    50 % overlap, segments at stream positions ``0, nfft/2, nfft, ...``, only complete
    segments.  ``psd_dbfs`` is the power per one-sided bin, so the bins' powers add up
    to ``mean(e^2)`` (DC and Nyquist bins carry half the share of the others).
    ``floor_dbfs`` is the theoretical error of the stage's dither spread over the same
    bins (rounding ``q^2/12`` plus the dither: rpdf ``q^2/12``, tpdf ``q^2/6``, tpdf-hp
    ``(q^2/12) |1 - e^-jw|^2`` (high-passed, not white), gaussian ``(q/2)^2``, each
    times ``dither_amplitude^2``).  ``target_dbfs`` is the floor times ``|NTF|^2`` (equal
    to the floor without an ``ntf``).  Both are one list for all channels.
``histogram``
    Counts of ``e / q`` in bins of 1/8 LSB over [-4, 4) LSB (``lsb`` holds the bin
    centres); ``under`` and ``over`` count errors outside that range.
``noise_modulation``
    The error power in bands of the instantaneous input level ``20 log10|x|``: 6 dB
    bands from -96 dBFS up, the top band [-6, 0] taking everything louder; samples
    below -96 dBFS (digital silence included) are not counted.  ``error_dbfs`` is None
    for bands with fewer than ``MIN_BAND_COUNT`` samples; ``spread_db`` is max - min of
    ``error_dbfs`` over the other bands.  TPDF dither keeps the spread near 0 dB;
    undithered rounding of low-level signals does not.
``level_histogram``
    For a non-uniform quantizer (``levels``): ``levels`` (its set of levels; per
    channel when each channel has its own), ``count`` (per channel, the output samples
    at each level) and ``in_use`` (per channel, the levels that occurred); ``off_grid``
    then counts output samples that are none of the levels.  None otherwise.
``bits_in_use``
    For each bit of the N-bit output code (two's complement of ``rint(y / q)``, clamped
    to the code range; LSB first), whether it was seen both 0 and 1.  ``off_grid``
    counts output samples more than 1e-6 LSB away from the grid.
``clips``, ``nonfinite``, ``loop_resets``, ``overloads``
    Counts the caller reports with :meth:`ErrorMeter.add_counts` (:data:`COUNTS`; a
    chain's meter reports its program's counters: samples clipped, non-finite input
    samples, resets of designed-NTF loops, samples above a designed NTF's maximum stable
    amplitude); ``nonfinite`` also counts sample positions where ``x`` or ``y`` was not
    finite (the meter zeroes both there, so the error is 0 at those positions).
``sinad_db``, ``enob``
    When the input is a sine: ``SINAD = 10 log10(signal / residual)`` from a
    least-squares fit of ``y`` by ``a x[n] + b (x[n] - x[n-1]) + c``.  For a sine ``x``
    the first two regressors span every sinusoid of the input's frequency, so this is
    the IEEE 1057 three-parameter sine fit at the input's exact frequency (no frequency
    estimate); ``signal`` is the fitted sine's AC power, ``residual`` everything else
    (noise and distortion the stage adds).  ``enob`` is IEEE 1241's effective number of
    bits, ``log2(FSR / (sqrt(12) NAD))`` with ``NAD`` the RMS of that residual and
    ``FSR = 2`` (full scale +-1): SINAD referred to a full-scale sine, so it does not
    depend on the test tone's level -- ``(SINAD - 1.76 + 20 log10(A_fs / A)) / 6.02``
    for a tone of peak ``A`` against ``A_fs = 1``.  An ideal N-bit rounding of a busy
    signal reads N bits, with TPDF dither ``N - log2(sqrt(3)) = N - 0.79``.  The
    input counts as a sine when its spectral line (the strongest bin above DC +-3 bins,
    together with bins 0..2 for a DC offset) holds at least 99 % of its power in the
    Welch spectrum; otherwise both are None.

Levels of zero power (-inf dB) and undefined figures are None; results hold only
lists, floats, ints, bools and None, so they serialise with ``json.dumps``.

Windows: ``result("integrated")`` covers everything since construction or
:meth:`ErrorMeter.reset`; ``result("momentary")`` covers the last ``K`` complete blocks of
``nfft/2`` frames with ``K = round(momentary_s * fs / (nfft/2))`` (7 blocks, 298.7 ms
at 48 kHz), and the spectrum segments ending in them.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

import numpy as np

from .weighting import power_weighting

NFFT = 4096
MOMENTARY_S = 0.3
HIST_RANGE_LSB = 4
HIST_BINS_PER_LSB = 8
BAND_EDGES_DBFS = np.arange(-96.0, 1.0, 6.0)
MIN_BAND_COUNT = 1000
SINE_FRACTION = 0.99
SINE_LINE_BINS = 3
OFF_GRID_LSB = 1e-6
FULL_SCALE_RANGE = 2.0     # IEEE 1241's FSR: full scale is +-1
# What the figures are, for their labels.
ENOB_DEFINITION = "IEEE 1241: SINAD referred to a full-scale sine"
ITU468_DETECTOR = "RMS, not the standard's quasi-peak"
WINDOWS = ("integrated", "momentary")
COUNTS = ("clips", "nonfinite", "loop_resets", "overloads")

# Dither power density in LSB^2 per unit amplitude^2, as a function of w (rad/sample);
# its mean over [0, pi] is the dither's power.
_DITHER_PSD_LSB2: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none": lambda w: np.zeros_like(w),
    "rpdf": lambda w: np.full_like(w, 1.0 / 12.0),
    "tpdf": lambda w: np.full_like(w, 1.0 / 6.0),
    "tpdf-hp": lambda w: np.sin(w / 2.0) ** 2 / 3.0,
    "gaussian": lambda w: np.full_like(w, 0.25),
}
_ROUNDING_LSB2 = 1.0 / 12.0

Ntf = Callable[[np.ndarray], np.ndarray] | tuple[Sequence[float], Sequence[float]]


def enob(nad_power: float) -> float:
    """IEEE 1241 effective number of bits of a noise-and-distortion power (mean square,
    full scale +-1): ``log2(FSR / (sqrt(12) NAD))`` with ``FSR = 2``."""
    return float(0.5 * np.log2(FULL_SCALE_RANGE ** 2 / (12.0 * nad_power)))


def grid_step(bits: int) -> float:
    """Grid step ``q`` of an N-bit stage: ``2^(1 - N)``, and 2 for the 1-bit sign quantizer."""
    return 2.0 if bits == 1 else 2.0 ** (1 - bits)


class _Stats:
    """Sufficient statistics of a stretch of frames; stretches combine with :meth:`add`."""

    _MAX = frozenset({"peak"})
    _OR = frozenset({"bits_one", "bits_zero"})

    def __init__(self, channels: int, nbins: int):
        def zeros(*shape, dtype=float):
            return np.zeros((channels, *shape), dtype)

        self.frames = 0
        self.segments = 0
        self.sum_e = zeros()
        self.sum_e2 = zeros()
        self.sum_x2 = zeros()
        self.peak = zeros()
        self.hist = zeros(2 * HIST_RANGE_LSB * HIST_BINS_PER_LSB + 2, dtype=np.int64)
        self.band_e2 = zeros(len(BAND_EDGES_DBFS) - 1)
        self.band_n = zeros(len(BAND_EDGES_DBFS) - 1, dtype=np.int64)
        self.bits_one = zeros(dtype=np.int64)
        self.bits_zero = zeros(dtype=np.int64)
        self.off_grid = zeros(dtype=np.int64)
        # Gram matrix of [x, x - x_prev, 1, e] over the frames that have an x_prev.
        self.gram = zeros(4, 4)
        self.spec_e = zeros(nbins)
        self.spec_x = zeros(nbins)
        for name in COUNTS:
            setattr(self, name, zeros(dtype=np.int64))

    def add(self, other: _Stats) -> None:
        for name, value in vars(other).items():
            mine = getattr(self, name)
            if name in self._MAX:
                np.maximum(mine, value, out=mine)
            elif name in self._OR:
                np.bitwise_or(mine, value, out=mine)
            else:
                setattr(self, name, mine + value)


def _bincount(index: np.ndarray, width: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Per-channel bincount of ``index`` (frames, channels) with values in [0, width)."""
    channels = index.shape[1]
    flat = (index + width * np.arange(channels)).ravel()
    w = None if weights is None else weights.ravel()
    return np.bincount(flat, w, minlength=width * channels).reshape(channels, width)


def _db(power) -> list:
    """``10 log10(power)`` as (nested) lists; None where power <= 0 or not finite."""
    p = np.asarray(power, dtype=float)
    if p.ndim > 1:
        return [_db(row) for row in p]
    with np.errstate(divide="ignore", invalid="ignore"):
        db = 10.0 * np.log10(p)
    return [float(v) if np.isfinite(v) else None for v in db]


def _ntf_power(ntf: Ntf | None, w: np.ndarray) -> np.ndarray:
    """``|NTF(e^jw)|^2`` from a callable of ``w`` or a ``(b, a)`` polynomial pair."""
    if ntf is None:
        return np.ones_like(w)
    if callable(ntf):
        response = ntf(w)
    else:
        from scipy import signal  # imported where used: 0.5 s at start-up otherwise

        b, a = ntf
        _, response = signal.freqz(b, a, worN=w)
    return np.abs(np.asarray(response)) ** 2


class ErrorMeter:
    """Streaming meter of one stage's error ``e = y - x`` (see the module docstring).

    Parameters
    ----------
    sample_rate : float
        Sample rate in Hz.
    channels : int
        Number of channels.
    bits : int, optional
        Output word length of the stage; None for a stage without a grid (then the
        figures in LSB, the floor, target and bit usage are None).
    dither : {"tpdf", "none", "rpdf", "tpdf-hp", "gaussian"}
        The stage's dither, for the theoretical floor.
    ntf : callable or (b, a), optional
        Noise transfer function of the stage's error feedback: a callable taking
        ``w`` (rad/sample, array) and returning ``NTF(e^jw)``, such as
        :meth:`rtq.dsp.shaping.ErrorFilter.ntf`, or numerator and denominator
        coefficients in ``z^-1``.
    dither_amplitude : float
        Dither amplitude relative to the nominal one.
    nfft : int
        Spectrum segment length (even); blocks and spectrum hops are ``nfft // 2``.
    momentary_s : float
        Length of the momentary window in seconds (rounded to whole blocks).
    index, stage : optional
        Position and name of the stage in its chain, echoed in the results.
    levels : sequence of sorted level sets, optional
        A non-uniform quantizer's levels (one set, or one per channel): the meter counts
        the output's levels (``level_histogram``).
    """

    def __init__(self, sample_rate: float, channels: int, bits: int | None = None,
                 dither: str = "tpdf", ntf: Ntf | None = None, *, dither_amplitude: float = 1.0,
                 nfft: int = NFFT, momentary_s: float = MOMENTARY_S,
                 index: int | None = None, stage: str | None = None, levels=None):
        if sample_rate <= 0 or channels < 1:
            raise ValueError("sample_rate must be > 0 and channels >= 1")
        if bits is not None and not 1 <= bits <= 32:
            raise ValueError(f"bits must be in 1..32, got {bits}")
        if dither not in _DITHER_PSD_LSB2:
            raise ValueError(f"unknown dither {dither!r}; expected one of {sorted(_DITHER_PSD_LSB2)}")
        if nfft < 8 or nfft % 2:
            raise ValueError(f"nfft must be even and >= 8, got {nfft}")
        self.sample_rate = float(sample_rate)
        self.channels = int(channels)
        self.bits = bits
        self.dither = dither
        self.index = index
        self.stage = stage
        self._nfft = nfft
        self._hop = nfft // 2
        # The periodic Hann window (scipy.signal's "hann"), from NumPy: importing
        # scipy.signal costs 0.5-1.6 s, which would delay the live meter by as much.
        self._window = np.hanning(nfft + 1)[:-1]
        self._freq = np.fft.rfftfreq(nfft, 1.0 / self.sample_rate)
        w = 2.0 * np.pi * self._freq / self.sample_rate
        # Share of the total power a white error puts in each one-sided bin.
        self._share = np.full(len(w), 2.0 / nfft)
        self._share[[0, -1]] = 1.0 / nfft
        self._bin_power = self._share / np.sum(self._window ** 2)
        self._weighting = {key: power_weighting(self._freq, curve)
                           for key, curve in (("a_weighted_dbfs", "a"), ("itu468_dbfs", "itu468"))}
        if bits is None:
            self._step = self._floor = self._target = None
        else:
            self._step = grid_step(bits)
            self._offset = 0.5 if bits == 1 else 0.0
            self._code_lo, self._code_hi = -2 ** (bits - 1), 2 ** (bits - 1) - 1
            density = _ROUNDING_LSB2 + dither_amplitude ** 2 * _DITHER_PSD_LSB2[dither](w)
            self._floor = self._step ** 2 * density * self._share
            self._target = self._floor * _ntf_power(ntf, w)
        self._levels = None
        if levels is not None:
            sets = [np.asarray(s, dtype=np.float64) for s in levels]
            self._levels = [sets[c if len(sets) > 1 else 0] for c in range(self.channels)]
        self._momentary_blocks = max(1, round(momentary_s * self.sample_rate / self._hop))
        self.reset()

    def reset(self) -> None:
        """Forget everything measured (both windows)."""
        self._total = self._new_stats()
        self._block = self._new_stats()
        self._recent: deque[_Stats] = deque(maxlen=self._momentary_blocks)
        self._segment = np.zeros((self._nfft, self.channels, 2))  # [e, x] of the pending segment
        self._fill = 0
        self._x_last: np.ndarray | None = None

    def update(self, x, y) -> None:
        """Measure one chunk.

        Parameters
        ----------
        x, y : array_like, shape (frames, channels)
            Stage input and output (any number of frames, possibly 0).
        """
        x, y = self._frames(x), self._frames(y)
        if x.shape != y.shape:
            raise ValueError(f"x and y differ in shape: {x.shape} vs {y.shape}")
        start = 0
        while start < len(x):
            stop = start + min(len(x) - start, self._hop - self._block.frames)
            self._absorb(x[start:stop], y[start:stop])
            start = stop
            if self._block.frames == self._hop:
                self._close_block()

    def restart_segment(self) -> None:
        """The next frames do not continue the last ones (a reader skipped some): start
        the next spectrum segment with them and drop the pending one, so no segment
        joins two pieces of signal (the splice would leak into every bin).  The level
        and histogram figures are unaffected."""
        self._fill = 0
        self._x_last = None

    def add_counts(self, **counts) -> None:
        """Add events the meter cannot see in ``(x, y)``, e.g. saturation inside the stage.

        Parameters
        ----------
        clips, nonfinite, loop_resets, overloads : int or array_like of int, shape (channels,)
            Counts to add (a scalar applies to every channel); see :data:`COUNTS`.
        """
        for name, count in counts.items():
            if name not in COUNTS:
                raise ValueError(f"unknown count {name!r}; expected one of {COUNTS}")
            count = np.broadcast_to(np.asarray(count, dtype=np.int64), (self.channels,))
            if np.any(count < 0):
                raise ValueError(f"{name} counts must be >= 0")
            setattr(self._block, name, getattr(self._block, name) + count)

    def result(self, window: str = "integrated") -> dict:
        """The figures over ``window`` (``"integrated"`` or ``"momentary"``) as a JSON-ready dict."""
        stats = self._new_stats()
        if window == "integrated":
            stats.add(self._total)
            stats.add(self._block)
        elif window == "momentary":
            for block in self._recent:
                stats.add(block)
        else:
            raise ValueError(f"unknown window {window!r}; expected one of {WINDOWS}")
        return self._report(stats, window)

    # -- accumulation -------------------------------------------------------------------

    def _new_stats(self) -> _Stats:
        stats = _Stats(self.channels, len(self._freq))
        if self._levels is not None:
            stats.level_count = np.zeros((self.channels, self._levels[0].size), np.int64)
            stats.off_grid = np.zeros(self.channels, np.int64)
        return stats

    def _frames(self, a) -> np.ndarray:
        a = np.asarray(a, dtype=np.float64)
        if a.ndim == 1 and self.channels == 1:
            a = a[:, None]
        if a.ndim != 2 or a.shape[1] != self.channels:
            raise ValueError(f"expected shape (frames, {self.channels}), got {a.shape}")
        return a

    def _absorb(self, x: np.ndarray, y: np.ndarray) -> None:
        """Add frames that all fall into the current block."""
        st = self._block
        bad = ~(np.isfinite(x) & np.isfinite(y))
        if bad.any():
            st.nonfinite += bad.sum(axis=0)
            x, y = np.where(bad, 0.0, x), np.where(bad, 0.0, y)
        e = y - x
        st.frames += len(e)
        st.sum_e += e.sum(axis=0)
        st.sum_e2 += np.einsum("nc,nc->c", e, e)
        st.sum_x2 += np.einsum("nc,nc->c", x, x)
        np.maximum(st.peak, np.abs(e).max(axis=0), out=st.peak)

        with np.errstate(divide="ignore"):
            level = 20.0 * np.log10(np.abs(x))
        nbands = len(BAND_EDGES_DBFS) - 1
        band = np.minimum(np.searchsorted(BAND_EDGES_DBFS, level, side="right"), nbands)
        st.band_e2 += _bincount(band, nbands + 1, e * e)[:, 1:]  # column 0: below the bands
        st.band_n += _bincount(band, nbands + 1)[:, 1:]

        if self._step is not None:
            self._absorb_grid(st, e, y)
        elif self._levels is not None:
            self._absorb_levels(st, y)

        if self._x_last is None:
            xf, xp, ef = x[1:], x[:-1], e[1:]
        else:
            xf, xp, ef = x, np.concatenate([self._x_last[None], x[:-1]]), e
        self._x_last = x[-1].copy()
        z = np.stack([xf, xf - xp, np.ones_like(xf), ef], axis=-1)
        st.gram += np.einsum("nci,ncj->cij", z, z)

        start = 0
        while start < len(e):
            take = min(len(e) - start, self._nfft - self._fill)
            self._segment[self._fill:self._fill + take, :, 0] = e[start:start + take]
            self._segment[self._fill:self._fill + take, :, 1] = x[start:start + take]
            self._fill += take
            start += take
            if self._fill == self._nfft:
                self._close_segment(st)

    def _absorb_grid(self, st: _Stats, e: np.ndarray, y: np.ndarray) -> None:
        """Histogram, bit usage and grid check for a stage with a word length."""
        per_lsb, half = HIST_BINS_PER_LSB, HIST_RANGE_LSB * HIST_BINS_PER_LSB
        pos = np.clip(np.floor(e / self._step * per_lsb), -half - 1, half)
        st.hist += _bincount(pos.astype(np.int64) + half + 1, 2 * half + 2)

        code = np.rint(y / self._step - self._offset)
        st.off_grid += (np.abs(y / self._step - self._offset - code) > OFF_GRID_LSB).sum(axis=0)
        code = np.clip(code, self._code_lo, self._code_hi).astype(np.int64)
        mask = (1 << self.bits) - 1
        st.bits_one |= np.bitwise_or.reduce(code & mask, axis=0)
        st.bits_zero |= np.bitwise_or.reduce(~code & mask, axis=0)

    def _absorb_levels(self, st: _Stats, y: np.ndarray) -> None:
        """The output's levels, for a non-uniform quantizer."""
        for c, levels in enumerate(self._levels):
            index = np.minimum(np.searchsorted(levels, y[:, c]), levels.size - 1)
            exact = levels[index] == y[:, c]
            st.level_count[c] += np.bincount(index[exact], minlength=levels.size)
            st.off_grid[c] += int(np.count_nonzero(~exact))

    def _close_segment(self, st: _Stats) -> None:
        """Add the full pending segment's spectra to ``st``; keep its second half."""
        spectrum = np.abs(np.fft.rfft(self._segment * self._window[:, None, None], axis=0)) ** 2
        st.spec_e += spectrum[..., 0].T
        st.spec_x += spectrum[..., 1].T
        st.segments += 1
        self._segment[:self._hop] = self._segment[self._hop:]
        self._fill = self._hop

    def _close_block(self) -> None:
        self._total.add(self._block)
        self._recent.append(self._block)
        self._block = self._new_stats()

    # -- figures --------------------------------------------------------------------------

    def _report(self, st: _Stats, window: str) -> dict:
        n = st.frames
        with np.errstate(divide="ignore", invalid="ignore"):
            mse = st.sum_e2 / n
            snr = st.sum_x2 / st.sum_e2
            psnr = 1.0 / mse
        step = self._step
        report = {
            "index": self.index,
            "stage": self.stage,
            "bits": self.bits,
            "window": window,
            "frames": int(n),
            "sample_rate": self.sample_rate,
            "rms_dbfs": _db(mse),
            "peak_dbfs": _db(st.peak ** 2),
            "mse": [float(v) for v in mse] if n else [None] * self.channels,
            "psnr_db": _db(psnr),
            "snr_db": _db(snr),
            "dc_lsb": [float(v) for v in st.sum_e / n / step] if n and step else None,
            **{name: getattr(st, name).tolist() for name in COUNTS},
            "off_grid": st.off_grid.tolist() if step or self._levels is not None else None,
            "level_histogram": self._level_histogram(st),
            "bits_in_use": self._bits_in_use(st),
            "histogram": self._histogram(st),
            "noise_modulation": self._noise_modulation(st),
        }
        report.update(self._spectral(st))
        fits = [self._sine_fit(st, c) for c in range(self.channels)]
        report["sinad_db"] = [None if fit is None else float(10.0 * np.log10(fit[0] / fit[1])) for fit in fits]
        report["enob"] = [None if fit is None else enob(fit[1]) for fit in fits]
        return report

    def _spectral(self, st: _Stats) -> dict:
        """Spectrum and the weighted levels (None before the first complete segment)."""
        floor = None if self._floor is None else _db(self._floor)
        target = None if self._target is None else _db(self._target)
        if not st.segments:
            psd = None
            weighted = {key: [None] * self.channels for key in self._weighting}
        else:
            power = st.spec_e / st.segments * self._bin_power
            psd = _db(power)
            weighted = {key: _db(power @ w) for key, w in self._weighting.items()}
        spectrum = {"freq_hz": self._freq.tolist(), "psd_dbfs": psd,
                    "floor_dbfs": floor, "target_dbfs": target, "segments": st.segments}
        return {**weighted, "spectrum": spectrum}

    def _histogram(self, st: _Stats) -> dict | None:
        if self._step is None:
            return None
        half = HIST_RANGE_LSB * HIST_BINS_PER_LSB
        centres = (np.arange(-half, half) + 0.5) / HIST_BINS_PER_LSB
        return {"lsb": centres.tolist(), "count": st.hist[:, 1:-1].tolist(),
                "under": st.hist[:, 0].tolist(), "over": st.hist[:, -1].tolist()}

    def _level_histogram(self, st: _Stats) -> dict | None:
        if self._levels is None:
            return None
        distinct = [self._levels[0].tolist()] if all(l is self._levels[0] for l in self._levels) else \
            [levels.tolist() for levels in self._levels]
        return {"levels": distinct if len(distinct) > 1 else distinct[0], "count": st.level_count.tolist(),
                "in_use": [int(np.count_nonzero(row)) for row in st.level_count]}

    def _noise_modulation(self, st: _Stats) -> dict:
        with np.errstate(divide="ignore", invalid="ignore"):
            power = np.where(st.band_n >= MIN_BAND_COUNT, st.band_e2 / st.band_n, np.nan)
        error_dbfs = _db(power)
        spread = []
        for row in error_dbfs:
            levels = [v for v in row if v is not None]
            spread.append(max(levels) - min(levels) if levels else None)
        return {"band_lo_dbfs": BAND_EDGES_DBFS[:-1].tolist(), "band_hi_dbfs": BAND_EDGES_DBFS[1:].tolist(),
                "error_dbfs": error_dbfs, "count": st.band_n.tolist(), "spread_db": spread}

    def _bits_in_use(self, st: _Stats) -> list | None:
        if self._step is None:
            return None
        toggled = st.bits_one & st.bits_zero
        return [[bool(t >> bit & 1) for bit in range(self.bits)] for t in toggled.tolist()]

    def _is_sine(self, st: _Stats, c: int) -> bool:
        power = st.spec_x[c] * self._share
        total = power.sum()
        if not st.segments or total <= 0:
            return False
        k = np.arange(len(power))
        peak = 1 + int(np.argmax(power[1:]))
        line = (np.abs(k - peak) <= SINE_LINE_BINS) | (k <= 2)
        return power[line].sum() >= SINE_FRACTION * total

    def _sine_fit(self, st: _Stats, c: int) -> tuple[float, float] | None:
        """The fitted sine's mean AC power and the mean power of the rest (noise and
        distortion), or None when the input is no sine."""
        if not self._is_sine(st, c):
            return None
        gram = st.gram[c]
        a, b, see = gram[:3, :3], gram[:3, 3], gram[3, 3]
        scale = np.sqrt(np.diag(a))
        scale[scale == 0] = 1.0
        coef = np.linalg.lstsq(a / np.outer(scale, scale), b / scale, rcond=None)[0] / scale
        residual = see - coef @ b  # error left after the fit; y = x + e, x lies in the fit
        fit = coef + np.array([1.0, 0.0, 0.0])
        fitted_ac = fit @ a @ fit - (fit @ a[:, 2]) ** 2 / a[2, 2]
        if residual <= 0 or fitted_ac <= 0:
            return None
        frames = a[2, 2]        # the fit's frames (those with a previous one)
        return float(fitted_ac / frames), float(residual / frames)
