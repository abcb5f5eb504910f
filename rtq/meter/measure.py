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
    Welch spectrum of every fourth segment (:data:`SINE_TEST_EVERY`; the first is always
    one, and an input that is a sine is one in every segment); otherwise both are None.

Levels of zero power (-inf dB) and undefined figures are None; results hold only
lists, floats, ints, bools and None, so they serialise with ``json.dumps``.

Windows: ``result("integrated")`` covers everything since construction or
:meth:`ErrorMeter.reset`; ``result("momentary")`` covers the last ``K`` complete blocks of
``nfft/2`` frames with ``K = round(momentary_s * fs / (nfft/2))`` (7 blocks, 298.7 ms
at 48 kHz), and the spectrum segments ending in them.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import accumulate as acc
from .weighting import power_weighting

NFFT = 4096
MOMENTARY_S = 0.3
HIST_RANGE_LSB = 4
HIST_BINS_PER_LSB = 8
BAND_EDGES_DBFS = np.arange(-96.0, 1.0, 6.0)
MIN_BAND_COUNT = 1000
SINE_FRACTION = 0.99
SINE_LINE_BINS = 3
SINE_TEST_EVERY = 4      # the input's spectrum (for the sine test) from every 4th segment
OFF_GRID_LSB = 1e-6
FULL_SCALE_RANGE = 2.0     # IEEE 1241's FSR: full scale is +-1
_FFT_BATCH_SAMPLES = 1 << 18   # samples transformed at once (their temporaries stay in cache)
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
    """The figures' sums over a stretch of frames, read from the meter's packed rows
    (:mod:`rtq.meter.accumulate`): ``fsums`` (channels, F_WIDTH) and ``counts``
    (channels, I_WIDTH), the spectra ``spec`` (channels, 2, bins) and the segments."""

    def __init__(self, fsums: np.ndarray, counts: np.ndarray, spec: np.ndarray, segments: int, frames: int):
        self.frames = frames
        self.segments = segments
        self.sum_e = fsums[:, acc.F_SUM_E]
        self.sum_e2 = fsums[:, acc.F_SUM_E2]
        self.sum_x2 = fsums[:, acc.F_SUM_X2]
        self.peak = fsums[:, acc.F_PEAK]
        self.band_e2 = fsums[:, acc.F_BAND_E2:acc.F_BAND_E2 + acc.BANDS]
        self.band_n = counts[:, acc.I_BAND_N:acc.I_BAND_N + acc.BANDS]
        self.hist = counts[:, acc.I_HIST:acc.I_HIST + acc.HIST_WIDTH]
        self.off_grid = counts[:, acc.I_OFF_GRID]
        self.bits_one = counts[:, acc.I_BITS_ONE]
        self.bits_zero = counts[:, acc.I_BITS_ZERO]
        for k, name in enumerate(COUNTS):
            setattr(self, name, counts[:, k])
        # Gram matrix of [x, x - x_prev, 1, e] over the frames that have an x_prev.
        g = fsums[:, acc.F_GRAM:acc.F_GRAM + 10]
        order = [[0, 1, 2, 3], [1, 4, 5, 6], [2, 5, 7, 8], [3, 6, 8, 9]]
        self.gram = g[:, order]
        self.spec_e = spec[:, 0]
        self.spec_x = spec[:, 1]

    @staticmethod
    def combine(fsums: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows (rows, channels, width) combined into one: sums, but the peak's maximum
        and the bits' OR."""
        f = fsums.sum(axis=0)
        f[:, acc.F_PEAK] = fsums[:, :, acc.F_PEAK].max(axis=0, initial=0.0)
        n = counts.sum(axis=0)
        for k in (acc.I_BITS_ONE, acc.I_BITS_ZERO):
            n[:, k] = np.bitwise_or.reduce(counts[:, :, k], axis=0)
        return f, n


def _close_open_row(figures: np.ndarray) -> None:
    """A block closed: its figures (the open row, the last) join the total (row 0)."""
    figures[0] += figures[-1]
    figures[-1] = 0


@functools.cache
def _band_thresholds() -> np.ndarray:
    """For each band edge, the smallest ``|x|`` whose level ``20 log10|x|`` (as NumPy
    computes it) reaches the edge: the kernel compares magnitudes, the same bands."""
    def level(a):
        return 20.0 * np.log10(a)

    thresholds = []
    for edge in BAND_EDGES_DBFS:
        t = 10.0 ** (edge / 20.0)
        while level(np.nextafter(t, 0.0)) >= edge:
            t = np.nextafter(t, 0.0)
        while level(t) < edge:
            t = np.nextafter(t, np.inf)
        thresholds.append(t)
    return np.array(thresholds)


def db_list(power) -> list:
    """``10 log10(power)`` as (nested) lists; None where power <= 0 or not finite."""
    p = np.asarray(power, dtype=float)
    if p.ndim > 1:
        return [db_list(row) for row in p]
    with np.errstate(divide="ignore", invalid="ignore"):
        db = 10.0 * np.log10(p)
    values = db.tolist()
    if np.isfinite(db).all():
        return values
    return [v if v - v == 0.0 else None for v in values]      # v - v: 0 when finite


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

    # An Executor of one thread (it runs its jobs in order), set by the owner: it shares
    # each batch of the spectra's transforms with the caller, and with split_channels
    # the compiled pass too (the upper half of the channels); with defer_spectra it
    # transforms and adds the spectra of each update as a job of their own instead,
    # while the caller goes on (the next update waits only for the job before the last:
    # two [e, x] buffers take turns).
    executor = None
    split_channels = True
    defer_spectra = False

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
        self._grid = np.zeros(acc.G_TABLES + 4096)
        self._grid[acc.G_TABLES:] = np.concatenate(acc.band_tables(_band_thresholds()))
        if bits is None:
            self._step = self._floor = self._target = None
        else:
            self._step = grid_step(bits)
            self._grid[:acc.G_TABLES] = (self._step, 1.0 / self._step, 0.5 if bits == 1 else 0.0,
                                         -2 ** (bits - 1), 2 ** (bits - 1) - 1, (1 << bits) - 1, 0, 0)
            density = _ROUNDING_LSB2 + dither_amplitude ** 2 * _DITHER_PSD_LSB2[dither](w)
            self._floor = self._step ** 2 * density * self._share
            self._target = self._floor * _ntf_power(ntf, w)
        self._levels = None
        if levels is not None:
            sets = [np.asarray(s, dtype=np.float64) for s in levels]
            self._levels = [sets[c if len(sets) > 1 else 0] for c in range(self.channels)]
        self._momentary_blocks = max(1, round(momentary_s * self.sample_rate / self._hop))
        self._jobs: list = []     # the spectra's jobs on the executor (Futures), oldest first
        self.reset()

    def reset(self) -> None:
        """Forget everything measured (both windows)."""
        self.settle()
        rows = self._momentary_blocks + 2     # the closed blocks' total, then a ring: current + momentary
        self._fsums = np.zeros((rows, self.channels, acc.F_WIDTH))
        self._counts = np.zeros((rows, self.channels, acc.I_WIDTH), dtype=np.int64)
        # Figures formed here rather than in the compiled pass, by block like the sums, with
        # one more row: the current block's share of the total, added when it closes.
        self._spec = np.zeros((rows + 1, self.channels, 2, len(self._freq)))   # [e, x] spectra
        self._segments = np.zeros(rows + 1, dtype=np.int64)
        self._level_n = None if self._levels is None else \
            np.zeros((rows + 1, self.channels, self._levels[0].size + 1), dtype=np.int64)   # + off the levels
        self._state = np.array([0, 1, 0], dtype=np.int64)    # frames in the block, its row, blocks closed
        self._last = np.full(self.channels, np.nan)          # previous x, for the sine fit
        self._frames = 0
        self._ex = np.empty((self.channels, 2, 2 * self._nfft))   # [e, x] from the next segment's start
        self._spare = None       # the other such buffer, while a job on the executor reads it
        self._pending = 0                                     # frames of it
        self._done = 0                                        # frames of it already measured
        self._seen = 0                                        # segments transformed since reset

    def update(self, x, y) -> np.ndarray:
        """Measure one chunk; returns its error ``y - x`` (0 where either is not finite),
        a (frames, channels) view valid until the next call.

        Parameters
        ----------
        x, y : array_like, shape (frames, channels)
            Stage input and output (any number of frames, possibly 0).
        """
        x, y = self._frames_of(x), self._frames_of(y)
        if x.shape != y.shape:
            raise ValueError(f"x and y differ in shape: {x.shape} vs {y.shape}")
        n = len(x)
        ring = len(self._fsums) - 1
        deferred = self.executor is not None and self.defer_spectra
        extras = self._extras(spectra=not deferred)
        taken = [1 + block % ring for block in range(self._frames // self._hop + 1,
                                                       (self._frames + n) // self._hop + 1)[-ring:]]
        for row in taken:
            for figures in extras:
                figures[row] = 0       # a ring row taken by a new block
        self._next_buffer(n, deferred)
        pending = self._pending
        bad = self._accumulate(x.ctypes.data, y.ctypes.data, n, self.channels, self._ex.ctypes.data,
                               self._ex.shape[-1], pending, self._grid.ctypes.data, len(self._grid),
                               self._last.ctypes.data, self._fsums.ctypes.data, self._counts.ctypes.data,
                               len(self._fsums), self._hop)
        before = self._frames
        self._frames += n
        self._pending += n
        closed = before // self._hop < self._frames // self._hop    # the block that was current has closed
        if closed:
            for figures in extras:
                _close_open_row(figures)
        if self._levels is not None:
            self._add_levels(np.where(np.isfinite(x) & np.isfinite(y), y, 0.0) if bad else y, before)
        e = self._ex[:, 0, pending:pending + n].T
        self._add_segments(taken, closed, deferred)
        return e

    def _next_buffer(self, n: int, deferred: bool) -> None:
        """Make :attr:`_ex` hold the unfinished segment's frames from its start and room
        for ``n`` more.  ``deferred``: in the other buffer (a job on the executor may
        still read this one), once the job before that one is done."""
        source, keep = self._ex, self._pending - self._done
        target = source
        if deferred:
            while len(self._jobs) > 1:
                self._jobs.pop(0).result()
            target = self._spare if self._spare is not None else np.empty_like(source)
            self._spare = source
        if keep + n > target.shape[-1]:
            target = np.empty((self.channels, 2, max(keep + n, 2 * target.shape[-1])))
        if target is not source or self._done:
            target[:, :, :keep] = source[:, :, self._done:self._done + keep].copy() if target is source else \
                source[:, :, self._done:self._done + keep]
        self._ex, self._pending, self._done = target, keep, 0

    def settle(self) -> None:
        """Wait until the spectra handed to the executor are added (their first error is
        raised here)."""
        jobs, self._jobs = self._jobs, []
        for job in jobs:
            job.result()

    def _accumulate(self, *args) -> int:
        """The compiled pass (:func:`rtq.meter.accumulate.accumulate_entry`'s ``args``
        but the state and channels) over every channel; with an :attr:`executor`, the
        upper half of the channels on its thread meanwhile (the pass releases the GIL),
        with a copy of the block state, which both calls advance alike (unless
        :attr:`split_channels` is false)."""
        run = acc.accumulate_entry.ctypes
        half = self.channels // 2
        if self.executor is None or not half or not self.split_channels:
            return run(*args, self._state.ctypes.data, 0, self.channels)
        state = self._state.copy()
        other = self.executor.submit(run, *args, state.ctypes.data, half, self.channels)
        bad = run(*args, self._state.ctypes.data, 0, half)
        return bad + other.result()

    def _extras(self, spectra: bool = True) -> list[np.ndarray]:
        """The per-block figures formed outside the compiled pass (rows: total, ring, open);
        the spectra's only with ``spectra``."""
        return ([self._spec, self._segments] if spectra else []) + \
            ([self._level_n] if self._level_n is not None else [])

    def _rows(self, blocks: np.ndarray, block_now: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Where figures of stream blocks ``blocks`` (integers) go: each one's total row
        (the open row while the block is current, added to the total when it closes);
        whether it is recent (the momentary window may see it); and its ring row then.
        ``block_now``: the current block."""
        ring = len(self._fsums) - 1
        return np.where(blocks < block_now, 0, ring + 1), block_now - blocks < ring, 1 + blocks % ring

    def _add_levels(self, y: np.ndarray, start: int) -> None:
        """Count the output's levels (a non-uniform quantizer), block by block; frames
        ``start ..`` of the stream."""
        done = 0
        while done < len(y):
            block = (start + done) // self._hop
            stop = min(len(y), (block + 1) * self._hop - start)
            total, recent, ring_row = self._rows(np.int64(block), self._frames // self._hop)
            rows = [int(total), int(ring_row)] if recent else [int(total)]
            for c, levels in enumerate(self._levels):
                v = y[done:stop, c]
                index = np.minimum(np.searchsorted(levels, v), levels.size - 1)
                exact = levels[index] == v
                found = np.bincount(index[exact], minlength=levels.size)
                for row in rows:
                    self._level_n[row, c, :-1] += found
                    self._level_n[row, c, -1] += np.count_nonzero(~exact)
            done = stop

    def restart_segment(self) -> None:
        """The next frames do not continue the last ones (a reader skipped some): start
        the next spectrum segment with them and drop the pending one, so no segment
        joins two pieces of signal (the splice would leak into every bin).  The level
        and histogram figures are unaffected."""
        self._pending = self._done = 0
        self._last[:] = np.nan

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
            self._counts[self._state[1], :, COUNTS.index(name)] += count

    def result(self, window: str = "integrated") -> dict:
        """The figures over ``window`` (``"integrated"`` or ``"momentary"``) as a JSON-ready dict."""
        self.settle()
        current = int(self._state[1])
        if window == "integrated":
            rows, extra_rows, frames = [0, current], [0, len(self._fsums)], self._frames
        elif window == "momentary":
            rows = extra_rows = [r for r in range(1, len(self._fsums)) if r != current]
            frames = min(int(self._state[2]), self._momentary_blocks) * self._hop
        else:
            raise ValueError(f"unknown window {window!r}; expected one of {WINDOWS}")
        fsums, counts = _Stats.combine(self._fsums[rows], self._counts[rows])
        stats = _Stats(fsums, counts, self._spec[extra_rows].sum(axis=0), int(self._segments[extra_rows].sum()),
                       frames)
        if self._level_n is not None:
            levels = self._level_n[extra_rows].sum(axis=0)
            stats.level_count, stats.off_grid = levels[:, :-1], levels[:, -1]
        return self._report(stats, window)

    # -- accumulation -------------------------------------------------------------------

    def _frames_of(self, a) -> np.ndarray:
        a = np.ascontiguousarray(a, dtype=np.float64)
        if a.ndim == 1 and self.channels == 1:
            a = a[:, None]
        if a.ndim != 2 or a.shape[1] != self.channels:
            raise ValueError(f"expected shape (frames, {self.channels}), got {a.shape}")
        return a

    def _power(self, segments: np.ndarray) -> np.ndarray:
        """Power spectra of windowed ``segments`` (..., segments, nfft); with an
        :attr:`executor`, the second half of the segments on its thread meanwhile
        (the transforms release the GIL)."""
        count = segments.shape[-2]
        if self.executor is None or count < 2:
            return self._power_of(segments)
        other = self.executor.submit(self._power_of, segments[..., count // 2:, :])
        first = self._power_of(segments[..., :count // 2, :])
        return np.concatenate([first, other.result()], axis=-2)

    def _power_of(self, segments: np.ndarray) -> np.ndarray:
        spectra = np.fft.rfft(segments * self._window, axis=-1)
        power = np.square(spectra.real)
        power += np.square(spectra.imag)
        return power

    def _add_segments(self, taken: list[int], closed: bool, deferred: bool) -> None:
        """Spectra of the segments the pending frames complete (all at once), each added
        to the block its last frame belongs to (:meth:`_rows`).  ``deferred``: as a job
        on the executor, which first does what the update did to the spectra's other
        rows (clears the ring rows ``taken``; adds the open row to the total if
        ``closed``), so the spectra see the same steps in the same order."""
        count = (self._pending - self._nfft) // self._hop + 1 if self._pending >= self._nfft else 0
        if count or deferred and (taken or closed):
            args = (self._ex[:, :, :self._pending], count, self._frames - self._pending + self._nfft,
                    self._frames // self._hop, self._seen, self._spec, self._segments)
            if deferred:
                self._jobs.append(self.executor.submit(self._spectra_job, taken, closed, *args))
            else:
                self._add_spectra(*args, power=self._power)
        self._seen += count
        self._done = count * self._hop     # dropped at the next update (the error returned stays valid)

    def _spectra_job(self, taken, closed, *args) -> None:
        spec, segments = args[-2:]
        for row in taken:
            spec[row] = 0
            segments[row] = 0
        if closed:
            _close_open_row(spec)
            _close_open_row(segments)
        self._add_spectra(*args, power=self._power_of)

    def _add_spectra(self, data, count, first_end, block_now, seen, spec, segments, power) -> None:
        """Add the spectra of the ``count`` segments of ``data`` (channels, [e, x], frames;
        the first ends at stream position ``first_end``; ``seen`` segments before them
        since the reset) into the rows of ``spec`` and ``segments``."""
        if not count:
            return
        windows = sliding_window_view(data, self._nfft, axis=-1)[:, :, ::self._hop][:, :, :count]
        batch = max(1, _FFT_BATCH_SAMPLES // (2 * self.channels * self._nfft))   # temporaries stay small
        for first in range(0, count, batch):
            chosen = windows[:, :, first:first + batch]
            index = first + np.arange(chosen.shape[2])
            blocks = (first_end + index * self._hop - 1) // self._hop      # where each segment ends
            picks = (seen + index) % SINE_TEST_EVERY == 0
            powers = [(power(chosen[:, 0]), slice(None)), (power(chosen[:, 1, picks]), picks)]
            for side, (power_of_side, which) in enumerate(powers):   # (channels, segments, bins): [e, x]
                totals, recent, ring_rows = self._rows(blocks[which], block_now)
                # The total rows (the open row for segments ending in the current block) ...
                for row in sorted(set(totals.tolist())):     # not np.unique: it imports numpy.ma
                    mine = totals == row
                    spec[row, :, side] += power_of_side[:, mine].sum(axis=1)
                    if side == 0:
                        segments[row] += np.count_nonzero(mine)
                # ... and the ring row of each recent block (one segment ends in each block).
                rows = ring_rows[recent]
                spec[rows, :, side] += power_of_side[:, recent].transpose(1, 0, 2)
                if side == 0:
                    segments[rows] += 1

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
            "rms_dbfs": db_list(mse),
            "peak_dbfs": db_list(st.peak ** 2),
            "mse": [float(v) for v in mse] if n else [None] * self.channels,
            "psnr_db": db_list(psnr),
            "snr_db": db_list(snr),
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
        floor = None if self._floor is None else db_list(self._floor)
        target = None if self._target is None else db_list(self._target)
        if not st.segments:
            psd = None
            weighted = {key: [None] * self.channels for key in self._weighting}
        else:
            power = st.spec_e / st.segments * self._bin_power
            psd = db_list(power)
            weighted = {key: db_list(power @ w) for key, w in self._weighting.items()}
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
        error_dbfs = db_list(power)
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
