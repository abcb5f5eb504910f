"""Fractional delay of a reference signal, so that errors are measured against the exact
latency of a chain (end to end) or the exact lag of a processed file (``rtq analyze``).

A chain with oversampling has a latency that is rarely a whole number of samples (the
shipped ``bitcrush-4bit-oversampled``: 5.454); rounding it leaves up to half a sample of
misalignment, and on a 1 kHz tone at 48 kHz that alone reads as an error 28 dB under the
signal.  The reference is therefore delayed by the fractional part through an FIR filter
(the whole part stays a plain delay), designed off the audio thread:

Design
    A Kaiser-windowed sinc ``h[n] = sinc(n - D) w(n - D)``, ``n = 0 .. N-1``, centred on
    ``D = N/2 - 1 + frac``.  The window's length and shape come from
    :func:`scipy.signal.kaiserord` for :data:`ATTENUATION_DB` over a transition band
    centred on Nyquist and reaching down to :data:`~rtq.dsp.oversample_design.PASSBAND`
    (0.4535 fs: the band rtq's resamplers keep flat, 20 kHz at 44.1 kHz); the window is
    evaluated at the fractional positions ``n - D`` (the Kaiser formula, as
    :func:`scipy.signal.windows.kaiser` evaluates it at whole ones).  132 taps.
Error floor
    ``max |H(e^jw) - e^(-jwD)|`` over ``0 .. 0.4535 fs`` is below :data:`ERROR_FLOOR_DB`
    (-170 dB) for every fraction (measured: -173.4 dB at the worst fraction, 0.5; the
    tests hold every design to the floor with :func:`scipy.signal.freqz`): far below
    any figure it serves (a 24-bit TPDF floor is 141 dB under a full-scale sine; the
    oversamplers' own rejection is 140 dB).  Above 0.4535 fs the reference is not
    delayed exactly; that band is the resamplers' transition band, which they do not
    keep either.
Cost
    A direct FIR of 132 taps per channel, a small part of the end-to-end meter's time
    (measured: README, "Measured against the exact latency").  A whole latency costs
    nothing: no filter is made.

Designs are stored (:func:`rtq.cache.stored_design`): a warm start imports no SciPy.
"""
from __future__ import annotations

import numpy as np

from ..cache import stored_design
from ..dsp.oversample_design import PASSBAND

ATTENUATION_DB = 180.0
ERROR_FLOOR_DB = -170.0


@stored_design
def _taps(frac: float, attenuation_db: float, edge: float) -> tuple[float, ...]:
    """The windowed-sinc taps delaying by ``len / 2 - 1 + frac`` samples, flat (to within
    the attenuation) up to ``edge`` (fraction of the rate)."""
    from scipy import signal  # design time only; stored, so a warm start skips it

    numtaps, beta = signal.kaiserord(attenuation_db, 2.0 * (1.0 - 2.0 * edge))
    half = numtaps // 2 + 1
    t = np.arange(-half + 1, half + 1) - frac
    window = np.i0(beta * np.sqrt(np.clip(1.0 - (t / half) ** 2, 0.0, None))) / np.i0(beta)
    return tuple(float(v) for v in np.sinc(t) * window)


def fractional_taps(fraction: float) -> tuple[np.ndarray, int]:
    """The FIR taps delaying by ``bulk + fraction`` samples (``0 < fraction < 1``), and
    ``bulk``, the whole part of that delay."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must lie strictly between 0 and 1, got {fraction!r}")
    taps = np.array(_taps(float(fraction), ATTENUATION_DB, PASSBAND))
    return taps, len(taps) // 2 - 1


class FractionalDelay:
    """Delays a stream of (frames, channels) blocks by ``bulk + fraction`` samples.

    Each call returns as many frames as it is given; the stream before the first block
    (or a :meth:`reset`) counts as zeros.  ``bulk`` (:func:`fractional_taps`, 65 samples)
    is the whole part the filter adds of itself: a caller wanting a delay of
    ``whole + fraction`` delays by ``whole - bulk`` more (or, when that is negative,
    delays the other signal by as much).

    Parameters
    ----------
    fraction : float
        Strictly between 0 and 1.
    channels : int
    """

    def __init__(self, fraction: float, channels: int):
        self.fraction = float(fraction)
        self.taps, self.bulk = fractional_taps(self.fraction)
        self.channels = int(channels)
        self.reset()

    @property
    def warmup(self) -> int:
        """Frames after a :meth:`reset` whose output still depends on the zeros before it."""
        return len(self.taps) - 1

    def reset(self) -> None:
        """Forget the stream: what comes before the next block counts as zeros."""
        self._history = np.zeros((len(self.taps) - 1, self.channels))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if not len(x):
            return np.zeros((0, self.channels))
        joined = np.concatenate([self._history, x])
        self._history = joined[len(x):]
        return np.stack([np.convolve(joined[:, c], self.taps, "valid") for c in range(self.channels)], axis=1)
