"""Noise-transfer-function (NTF) design for error-feedback requantizers.

``shaping: {order: K, band_hz: B}`` designs, at prepare time, an NTF for the rate the
requantizer runs at (often ``L x`` the stream rate inside an ``oversample`` stage):

zeros
    ``K`` zeros on the unit circle spread across the band ``0 .. B``, at the positions
    that minimise the in-band noise power of the zeros' polynomial: ``+-x_i w_b`` with
    ``x_i`` the roots of the Legendre polynomial ``P_K`` and ``w_b = 2 pi B / rate``
    (this is the minimiser of ``integral_{-1}^{1} prod (x - x_i)^2 dx``, the same
    positions as Schreier's ``synthesizeNTF(..., opt=1)``).  Odd ``K`` has one zero at
    DC; ``K = 1`` is the plain DC zero.  ``optimize_zeros=False`` puts all of them at DC.
poles
    From the spectral factorisation ``|D(e^jw)|^2 ~ |N(e^jw)|^2 + lambda`` (``N`` the
    zeros' polynomial, ``D`` its minimum-phase factor), so

        ``|NTF|^2 = c |N|^2 / (|N|^2 + lambda)``

    a maximally flat high-pass shape (exactly a Butterworth high-pass in the variable
    ``|N|`` when the zeros are at DC): the noise is pushed out of band and the
    out-of-band gain is flat.  ``lambda`` is solved (Brent) so that
    ``max |NTF| = h_inf`` on the unit circle, 1.5 by default (Lee's rule: keeps even a
    1-bit, two-level loop stable for inputs up to the measured limit below).

Result: ``NTF(z) = b(z) / a(z)`` with ``b``, ``a`` polynomials in ``z^-1``,
``b[0] = a[0] = 1`` (monic, causal, realisable in a feedback loop), poles inside the
unit circle, zeros on it (minimum phase: ``mean log|NTF| = 0``, Gerzon-Craven).

Error-feedback form (the IIR structure of ``noise-shaping.md``, as used by the
requantizer)::

    o[n] = sum_j A[j] e[n-j] - sum_j B[j] o[n-j]     (j = 1 .. K)
    d = x[n] - o[n];  y[n] = Q(d + dither);  e[n] = y[n] - d
    NTF(z) = (1 + B(z) - A(z)) / (1 + B(z))  =>  B = a[1:],  A = a[1:] - b[1:]

Measured with the 1-bit loop :func:`ef_two_level` (64 x 44.1 kHz = 2.8224 MHz, band
20 kHz, so OSR 70.6; ``h_inf = 1.5``; 1 kHz sine; levels relative to a full-scale sine,
i.e. peak amplitude, as in the delta-sigma literature -- the project meter's RMS dBFS
reads 3.01 dB lower):

* order 5, -6 dB (peak 0.5): in-band SQNR 120.7 dB (tone bins against the rest of
  ``0 .. B``; 117.1 dB if everything in ``y - x`` counts as noise, since part of the
  shaped error is coherent with the tone).  Schreier's toolbox quotes roughly
  100-110 dB peak SQNR for OSR 64, order 5, ``H_inf = 1.5``.
* maximum stable input: :mod:`rtq.dsp.stability` measures it for every designed loop
  on rtq's own kernel (order 5 here: -5.2 dB peak; the README has a table).  Above it
  the plain loop runs away; the requantizer bounds the fed-back error (clips ``e``) so
  that an overload recovers, and counts the input above it.

The in-band noise (:meth:`NtfDesign.inband_noise_gain`) follows the textbook
``pi^(2K) / ((2K + 1) OSR^(2K + 1))`` for zeros at DC (once the flat in-band pole
factor ``1 / |a(1)|^2`` is taken out), falls ``3.01 (2K + 1)`` dB per doubling of the
rate, and the Legendre zeros gain 3.5 / 8.0 / 12.8 / 17.9 / 23.2 / 28.6 dB more for
K = 2 .. 7 (high-OSR limit).  The expanded float64 polynomials move clustered zeros slightly (order 7
at 64x: ~4e-5); the realised loop's in-band noise is unchanged to 0.05 dB.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..cache import stored_design
from ..jit import kernel

__all__ = [
    "MAX_ORDER",
    "DEFAULT_BAND_HZ",
    "BAND_FRACTION",
    "NtfDesign",
    "optimal_zero_positions",
    "design_ntf",
    "error_feedback",
    "ntf_response",
    "inband_noise_gain",
    "dc_zero_inband_gain",
    "ef_state_size",
    "ef_two_level",
]

MAX_ORDER = 7
#: Default band edge, Hz (capped by ``BAND_FRACTION`` of the original stream rate).
DEFAULT_BAND_HZ = 20000.0
#: Band edge as a fraction of the original stream rate (20 kHz at 44.1 kHz).
BAND_FRACTION = 0.4535
_GRID = 16384


@dataclass(frozen=True)
class NtfDesign:
    """A designed noise transfer function.

    Attributes
    ----------
    order : int
        ``K``.
    rate : float
        Rate the loop runs at, Hz.
    band_hz : float
        Band edge ``B``, Hz.
    h_inf : float
        Achieved ``max |NTF|`` on the unit circle.
    zeros, poles : ndarray of complex
        NTF zeros (on the unit circle) and poles (inside it).
    b, a : ndarray of float64, shape (K + 1,)
        Numerator and denominator in ``z^-1``; ``b[0] = a[0] = 1``.
    """

    order: int
    rate: float
    band_hz: float
    h_inf: float
    zeros: np.ndarray
    poles: np.ndarray
    b: np.ndarray
    a: np.ndarray

    @property
    def osr(self) -> float:
        """Oversampling ratio ``rate / (2 B)``."""
        return self.rate / (2.0 * self.band_hz)

    def response(self, f_hz: np.ndarray | float) -> np.ndarray:
        """Complex NTF at frequencies ``f_hz`` (evaluated from zeros and poles)."""
        return _response_zp(self.zeros, self.poles, 2 * np.pi * np.asarray(f_hz, dtype=float) / self.rate)

    def error_feedback(self) -> tuple[np.ndarray, np.ndarray]:
        """``(A, B)`` for the error-feedback structure, see :func:`error_feedback`."""
        return error_feedback(self.b, self.a)

    def inband_noise_gain(self) -> float:
        """Fraction of white error power left in ``0 .. B`` (see :func:`inband_noise_gain`)."""
        return _power_integral(lambda w: _response_zp(self.zeros, self.poles, w), self.band_hz, self.rate)


def optimal_zero_positions(order: int) -> np.ndarray:
    """Zero positions in units of the band edge: the roots of the Legendre ``P_order``.

    They minimise ``integral_{-1}^{1} prod_i (x - x_i)^2 dx`` over monic polynomials
    (the monic Legendre polynomial is orthogonal to every lower degree).
    """
    x, _ = np.polynomial.legendre.leggauss(order)
    return np.sort(x)


def ntf_response(b: np.ndarray, a: np.ndarray, w: np.ndarray | float) -> np.ndarray:
    """``b(e^jw) / a(e^jw)`` for polynomials in ``z^-1``, ``w`` in rad/sample."""
    z1 = np.exp(-1j * np.asarray(w, dtype=float))
    return np.polyval(np.asarray(b)[::-1], z1) / np.polyval(np.asarray(a)[::-1], z1)


def error_feedback(b: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients of the error-feedback loop realising ``NTF = b / a``.

    Parameters
    ----------
    b, a : array_like
        Monic NTF numerator and denominator in ``z^-1`` (``b[0] = a[0] = 1``); the
        shorter one is zero-padded.

    Returns
    -------
    A, B : ndarray of float64, shape (K,)
        ``A[j-1]`` multiplies ``e[n-j]``, ``B[j-1]`` multiplies ``o[n-j]`` in
        ``o[n] = sum A[j] e[n-j] - sum B[j] o[n-j]``, so that
        ``NTF = (1 + B - A) / (1 + B)``.  An FIR NTF gives ``B = 0``.
    """
    b = np.asarray(b, dtype=float)
    a = np.asarray(a, dtype=float)
    k = max(len(a), len(b))
    b = np.pad(b, (0, k - len(b)))
    a = np.pad(a, (0, k - len(a)))
    if b[0] != 1.0 or a[0] != 1.0:
        raise ValueError("NTF numerator and denominator must be monic (b[0] = a[0] = 1)")
    return a[1:] - b[1:], a[1:].copy()


def _power_integral(response, band_hz: float, rate: float) -> float:
    wb = 2 * np.pi * band_hz / rate
    x, wt = np.polynomial.legendre.leggauss(32)
    edges = np.linspace(0.0, wb, 65)
    half = 0.5 * np.diff(edges)[:, None]
    w = (edges[:-1, None] + half * (x[None, :] + 1.0)).ravel()
    h = np.abs(response(w)) ** 2
    return float(np.sum((half * wt[None, :]).ravel() * h) / np.pi)


def inband_noise_gain(b: np.ndarray, a: np.ndarray, band_hz: float, rate: float) -> float:
    """In-band share of a white error's power after shaping by ``b / a``.

    ``(1 / pi) integral_0^{w_b} |NTF(e^jw)|^2 dw`` with ``w_b = 2 pi B / rate``: the
    in-band noise power relative to the unshaped, full-band power.  Composite
    Gauss-Legendre quadrature (64 panels x 32 nodes), exact to double precision for
    these smooth integrands (the expanded polynomials themselves lose a few digits in
    band at high oversampling ratios; :meth:`NtfDesign.inband_noise_gain` uses the
    zeros and poles instead).
    """
    return _power_integral(lambda w: ntf_response(b, a, w), band_hz, rate)


def dc_zero_inband_gain(order: int, osr: float) -> float:
    """Textbook in-band gain of ``(1 - z^-1)^K``: ``pi^(2K) / ((2K + 1) OSR^(2K + 1))``.

    Uses ``|1 - e^-jw| ~ w``; in-band noise falls ``3 (2K + 1)`` dB per doubling.
    """
    return math.pi ** (2 * order) / ((2 * order + 1) * osr ** (2 * order + 1))


def _response_zp(zeros: np.ndarray, poles: np.ndarray, w: np.ndarray | float) -> np.ndarray:
    """``prod (1 - z_i e^-jw) / prod (1 - p_i e^-jw)``: accurate even where the zeros
    cluster (the expanded polynomials lose digits in band at high oversampling)."""
    z1 = np.exp(-1j * np.asarray(w, dtype=float))[..., None]
    num = np.prod(1.0 - zeros * z1, axis=-1)
    den = np.prod(1.0 - poles * z1, axis=-1) if len(poles) else 1.0
    return num / den


def _max_gain(zeros: np.ndarray, poles: np.ndarray) -> float:
    """``max |NTF|`` over the unit circle (dense grid, then a bounded refinement)."""
    from scipy import optimize  # design time only: keeps start-up light
    w = np.linspace(0.0, np.pi, _GRID)
    h = np.abs(_response_zp(zeros, poles, w))
    i = int(np.argmax(h))
    if 0 < i < len(w) - 1:
        res = optimize.minimize_scalar(
            lambda v: -abs(_response_zp(zeros, poles, v)), bounds=(w[i - 1], w[i + 1]),
            method="bounded", options={"xatol": 1e-12},
        )
        return float(max(h[i], -res.fun))
    return float(h[i])


def _poles(x: np.ndarray, wb: float, scale: float) -> np.ndarray:
    """Poles: the inside roots of ``N(z) N(1/z) + scale^K = 0``.

    On the unit circle ``N N* = Q(u) = prod_i (u - u_i)`` with ``u = 2 - 2 cos w`` and
    ``u_i = 2 - 2 cos(x_i wb)`` (a polynomial of degree K in ``u``).  The K roots of
    ``Q(u) = -scale^K`` are found in the normalised variable ``v = u / scale`` (well
    conditioned at any oversampling ratio), then ``z + 1/z = 2 - u`` gives one pole
    inside the unit circle per root.
    """
    ui = 2.0 - 2.0 * np.cos(x * wb)
    q = np.poly(ui / scale)  # monic, degree K, in v
    q[-1] += 1.0
    u = scale * np.roots(q)
    r = np.sqrt(u * (u - 4.0))
    z = np.stack(((2.0 - u - r) / 2.0, (2.0 - u + r) / 2.0))
    pick = np.argmin(np.abs(z), axis=0)
    return z[pick, np.arange(len(u))]


def default_band_hz(stream_rate: float) -> float:
    """The audio band a designed NTF protects by default: 20 kHz, or 0.4535 x the stream
    rate when that is lower."""
    return min(DEFAULT_BAND_HZ, BAND_FRACTION * float(stream_rate))


@stored_design
def _pole_scale(order: int, wb: float, h_inf: float, optimize_zeros: bool) -> tuple[float | None, float]:
    """Log of the pole scale that brings ``max |NTF|`` to ``h_inf`` (None: the zeros alone
    stay below it, an FIR NTF), and the ``max |NTF|`` reached."""
    from scipy import optimize  # design time only; stored, so a warm start skips it
    x = optimal_zero_positions(order) if optimize_zeros else np.zeros(order)
    zeros = np.exp(1j * wb * x)
    fir_gain = _max_gain(zeros, np.zeros(0, dtype=complex))
    if fir_gain <= h_inf:
        return None, fir_gain

    # max |NTF| grows monotonically with the scale (poles move in from the zeros)
    def excess(log_scale: float) -> float:
        return _max_gain(zeros, _poles(x, wb, math.exp(log_scale))) - h_inf

    hi = math.log(4.0)  # |N|^2 <= 4^K on the circle: scale^K >= max |N|^2
    lo = hi
    while excess(lo) > 0.0:
        lo -= 2.0
        if lo < -60.0:
            raise ValueError("NTF design failed: cannot reach the target gain")
    while excess(hi) < 0.0:
        hi += 2.0
        if hi > 60.0:
            raise ValueError("NTF design failed: cannot reach the target gain")
    log_scale = optimize.brentq(excess, lo, hi, xtol=1e-13, rtol=1e-13)
    return log_scale, _max_gain(zeros, _poles(x, wb, math.exp(log_scale)))


def design_ntf(
    order: int,
    rate: float,
    band_hz: float | None = None,
    *,
    stream_rate: float | None = None,
    h_inf: float = 1.5,
    optimize_zeros: bool = True,
) -> NtfDesign:
    """Design an error-feedback NTF for a loop running at ``rate`` (prepare time).

    Parameters
    ----------
    order : int
        ``K``, 1 .. :data:`MAX_ORDER`.
    rate : float
        Rate the requantizer runs at, Hz (``L x`` the stream rate when oversampled).
    band_hz : float, optional
        Band edge ``B``; default ``min(20 kHz, 0.4535 x stream_rate)``.
    stream_rate : float, optional
        The original stream rate (for the default band), default ``rate``.
    h_inf : float
        Target ``max |NTF|`` (> 1); 1.5 is Lee's rule for two-level loops.
    optimize_zeros : bool
        Legendre-optimal zeros across the band (default) or all zeros at DC.

    Returns
    -------
    NtfDesign

    Raises
    ------
    ValueError
        On an order out of range, a band not inside ``0 .. rate / 2`` or ``h_inf <= 1``.
    """
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or not 1 <= order <= MAX_ORDER:
        raise ValueError(f"noise-shaping order must be 1 .. {MAX_ORDER}, got {order!r}")
    rate = float(rate)
    if band_hz is None:
        band_hz = default_band_hz(stream_rate or rate)
    band_hz = float(band_hz)
    if not 0.0 < band_hz < rate / 2:
        raise ValueError(f"noise-shaping band {band_hz} Hz must lie inside 0 .. {rate / 2} Hz")
    if not h_inf > 1.0:
        raise ValueError(f"h_inf must be > 1, got {h_inf}")
    order = int(order)
    wb = 2 * np.pi * band_hz / rate
    x = optimal_zero_positions(order) if optimize_zeros else np.zeros(order)
    zeros = np.exp(1j * wb * x)
    log_scale, reached = _pole_scale(order, wb, float(h_inf), bool(optimize_zeros))
    poles = np.zeros(0, dtype=complex) if log_scale is None else _poles(x, wb, math.exp(log_scale))
    b = np.real(np.poly(zeros))
    a = np.real(np.poly(poles)) if len(poles) else np.array([1.0])
    a = np.pad(a, (0, len(b) - len(a)))
    return NtfDesign(
        order=order, rate=rate, band_hz=band_hz, h_inf=reached,
        zeros=zeros, poles=poles, b=b, a=a,
    )


# --------------------------------------------------------------------------------------
# Reference loop: two-level (1-bit) error-feedback quantizer
# --------------------------------------------------------------------------------------


def ef_state_size(order: int) -> int:
    """State length of :func:`ef_two_level`: ``2 K + 1``."""
    return 2 * int(order) + 1


@kernel
def ef_two_level(x, n, A, B, state, y):
    """Two-level (+-1) error-feedback quantizer, one channel.

    Parameters
    ----------
    x : float64 1-D
        Input (full scale +-1).
    n : int
        Samples to process.
    A, B : float64 1-D, length K
        From :func:`error_feedback`.
    state : float64 1-D, length ``2 K + 1``
        ``[e[n-1] .. e[n-K], o[n-1] .. o[n-K], max |d| seen]``; zero-fill to reset.
    y : float64 1-D
        Output, +-1.0.

    Notes
    -----
    ``o = A.e_past - B.o_past; d = x - o; y = sign(d); e = y - d``, so
    ``y = x + NTF e``.  The last state slot records the largest quantizer input
    magnitude, the loop's stability witness.  Real-time safe (no allocation).
    """
    k = A.shape[0]
    peak = state[2 * k]
    for i in range(n):
        o = 0.0
        for j in range(k):
            o += A[j] * state[j] - B[j] * state[k + j]
        d = x[i] - o
        q = 1.0 if d >= 0.0 else -1.0
        for j in range(k - 1, 0, -1):
            state[j] = state[j - 1]
            state[k + j] = state[k + j - 1]
        state[0] = q - d
        state[k] = o
        ad = abs(d)
        if ad > peak:
            peak = ad
        y[i] = q
    state[2 * k] = peak
