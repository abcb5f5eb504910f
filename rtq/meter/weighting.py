"""Frequency-weighting curves for weighted error levels.

The curves are the closed forms in ``shared/reference/theory.md``:

* A-weighting (IEC 61672), normalised to 0 dB at 1 kHz;
* ITU-R BS.468-4, the curve only (the standard's quasi-peak detector is not modelled:
  rtq reads weighted levels as RMS, the common "468, RMS" practice).

Both are magnitude responses of the frequency ``f`` in Hz; they depend on ``|f|`` only
and are ``-inf`` dB at ``f = 0``.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

# A-weighting pole frequencies (Hz) and the gain that puts 1 kHz at 0 dB.
_A_F1, _A_F2, _A_F3, _A_F4 = 20.6, 107.7, 737.9, 12194.0
_A_OFFSET_DB = 2.00

# ITU-R BS.468-4 polynomial coefficients and gain.
_H1 = (-4.737338981378384e-24, 2.043828333606125e-15, -1.363894795463638e-07, 1.0)  # f^6, f^4, f^2, 1
_H2 = (1.306612257412824e-19, -2.118150887518656e-11, 5.559488023498642e-04)  # f^5, f^3, f
_R468 = 1.246332637532143e-04
_468_OFFSET_DB = 18.2


def _db20(magnitude: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return 20.0 * np.log10(magnitude)


def a_weighting_db(f):
    """A-weighting gain in dB.

    Parameters
    ----------
    f : array_like
        Frequency in Hz (the sign is ignored).

    Returns
    -------
    numpy.ndarray or numpy.float64
        ``20 log10 RA(f) + 2.00``; ``-inf`` at ``f = 0``.
    """
    f2 = np.square(np.asarray(f, dtype=float))
    ra = (_A_F4 ** 2 * f2 * f2
          / ((f2 + _A_F1 ** 2) * np.sqrt((f2 + _A_F2 ** 2) * (f2 + _A_F3 ** 2)) * (f2 + _A_F4 ** 2)))
    return _db20(ra) + _A_OFFSET_DB


def itu468_weighting_db(f):
    """ITU-R BS.468-4 weighting gain in dB.

    Parameters
    ----------
    f : array_like
        Frequency in Hz (the sign is ignored).

    Returns
    -------
    numpy.ndarray or numpy.float64
        ``18.2 + 20 log10 R(f)``; ``-inf`` at ``f = 0``.
    """
    f = np.abs(np.asarray(f, dtype=float))
    f2 = f * f
    h1 = np.polyval(_H1, f2)
    h2 = f * np.polyval(_H2, f2)
    return _db20(_R468 * f / np.hypot(h1, h2)) + _468_OFFSET_DB


CURVES: dict[str, Callable] = {"a": a_weighting_db, "itu468": itu468_weighting_db}
"""Weighting curves by name: ``"a"`` and ``"itu468"``."""


def power_weighting(freq_hz, curve: str) -> np.ndarray:
    """Linear power weighting ``|W(f)|^2`` (0 at DC), e.g. on an FFT frequency grid.

    Parameters
    ----------
    freq_hz : array_like
        Frequencies in Hz, e.g. ``numpy.fft.rfftfreq(nfft, 1 / fs)``.
    curve : {"a", "itu468"}
        Weighting curve.

    Returns
    -------
    numpy.ndarray
        ``10 ** (W_dB(f) / 10)``.
    """
    return 10.0 ** (_curve(curve)(freq_hz) / 10.0)


def white_noise_gain_db(curve: str, sample_rate: float) -> float:
    """Gain the weighting applies to white noise band-limited to ``sample_rate / 2``.

    A white error of power ``P`` reads ``10 log10(P) + gain`` weighted, where
    ``gain = 10 log10((2 / fs) * integral_0^{fs/2} |W(f)|^2 df)``, i.e. the mean of the
    power weighting over the band.

    Parameters
    ----------
    curve : {"a", "itu468"}
        Weighting curve.
    sample_rate : float
        Sample rate in Hz.

    Returns
    -------
    float
        The gain in dB.
    """
    from scipy import integrate  # imported where used: the live screen imports this module

    db = _curve(curve)
    nyquist = sample_rate / 2.0
    area, _ = integrate.quad(lambda f: 10.0 ** (db(f) / 10.0), 0.0, nyquist, limit=200)
    return float(10.0 * np.log10(area / nyquist))


def _curve(curve: str) -> Callable:
    try:
        return CURVES[curve]
    except KeyError:
        raise ValueError(f"unknown weighting curve {curve!r}; expected one of {sorted(CURVES)}") from None
