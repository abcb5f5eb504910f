"""Low-pass FIR: the BS.1534-3 anchors' filter, designed at prepare time, and its kernel.

Design (:func:`design_lowpass`): a linear-phase (odd-length, symmetric) FIR by the
Parks-McClellan algorithm (``scipy.signal.remez``) meeting the mask ITU-R BS.1534-3
sets for its anchors, scaled to the corner ``hz``: passband within +-0.1 dB up to
``hz``, at least 25 dB down at ``8/7 hz`` and at least 50 dB from ``9/7 hz`` on (the
3.5 kHz anchor: 4 kHz and 4.5 kHz; the 7 kHz anchor: 8 and 9 kHz).  The design asks
for a margin on each limit (:data:`RIPPLE_DESIGN_DB`, :data:`STOP_DESIGN_DB`) with a
stopband from ``8/7 hz`` (so 8/7 hz already meets the 50 dB limit) and takes the
shortest length whose response, checked on a dense grid, keeps them.  Latency: ``(N -
1) / 2`` samples, whole.

Kernel (:func:`lowpass_op`): a direct-form FIR per channel over a mirrored history ring
in the filter state (each input written twice, so the last N inputs are always one
contiguous run); allocates nothing, and the output does not depend on how the stream
is cut into blocks.
"""
from __future__ import annotations

import numpy as np

from ..cache import stored_design
from ..jit import kernel

PASS_RIPPLE_DB = 0.1          # BS.1534-3: the passband within +-0.1 dB
STOP_EDGES = ((8 / 7, 25.0), (9 / 7, 50.0))   # (frequency / hz, least attenuation in dB)
RIPPLE_DESIGN_DB = 0.05       # what the design aims at: half the allowed ripple
STOP_DESIGN_DB = 56.0         # and 6 dB beyond the deepest limit


@stored_design
def design_lowpass(hz: float, rate: float) -> tuple[float, ...]:
    """The taps of the shortest FIR meeting the anchor mask at ``hz`` (with margins) at
    sample rate ``rate`` (``9/7 hz`` below ``rate / 2``)."""
    from scipy import signal

    stop = STOP_EDGES[0][0] * hz
    ripple = 10 ** (RIPPLE_DESIGN_DB / 20) - 1
    rejection = 10 ** (-STOP_DESIGN_DB / 20)
    numtaps, _ = signal.kaiserord(STOP_DESIGN_DB, (stop - hz) / (rate / 2))
    numtaps = max(numtaps // 2 * 2 + 1, 3) - 2 * (numtaps // 8)   # remez needs fewer than Kaiser
    while True:
        taps = signal.remez(numtaps, [0, hz, stop, rate / 2], [1, 0], weight=[1, ripple / rejection], fs=rate)
        if meets(taps, hz, rate, RIPPLE_DESIGN_DB, STOP_DESIGN_DB):
            return tuple(float(t) for t in taps)
        numtaps += 2


def response_db(taps, freqs, rate: float) -> np.ndarray:
    """The filter's gain in dB at ``freqs`` (Hz)."""
    from scipy import signal

    _, h = signal.freqz(taps, worN=np.asarray(freqs, dtype=float), fs=rate)
    return 20 * np.log10(np.maximum(np.abs(h), 1e-300))


def meets(taps, hz: float, rate: float, ripple_db: float = PASS_RIPPLE_DB, stop_db: float | None = None) -> bool:
    """Whether ``taps`` keep the passband within ``ripple_db`` up to ``hz`` and the stop
    limits (each at least ``stop_db`` if given, else BS.1534-3's), on a dense grid."""
    passband = response_db(taps, np.linspace(0, hz, 2000), rate)
    if np.abs(passband).max() > ripple_db:
        return False
    for ratio, least in STOP_EDGES:
        edge = ratio * hz
        stopband = response_db(taps, np.linspace(edge, rate / 2, 4000), rate)
        if stopband.max() > -(least if stop_db is None else max(least, stop_db)):
            return False
    return True


def pack(taps) -> dict:
    """A low-pass op for :meth:`rtq.program.ProgramBuilder.add_op`: the taps reversed
    (``params``) and, per channel, a mirrored ring of ``2 N`` samples plus its position."""
    n = len(taps)
    return {"params": np.asarray(taps, dtype=np.float64)[::-1], "state_per_channel": 2 * n, "istate": (0,),
            "args": (n,)}


@kernel
def lowpass_op(buf, n, reversed_taps, args, state, position):
    """Filter ``buf[:, :n]`` (channels, frames) in place: channel ``c``'s ring is
    ``state[c * 2N : (c + 1) * 2N]``, ``position[0]`` the next write index (shared)."""
    taps = args[0]
    h = reversed_taps[:taps]
    pos = position[0]
    for c in range(buf.shape[0]):
        ring = state[c * 2 * taps:(c + 1) * 2 * taps]
        p = pos
        x = buf[c]
        for t in range(n):
            ring[p] = x[t]
            ring[p + taps] = x[t]
            p += 1
            if p == taps:
                p = 0
            acc = 0.0
            for k in range(taps):       # ring[p .. p + N - 1]: the last N inputs, oldest first
                acc += h[k] * ring[p + k]
            x[t] = acc
    position[0] = (pos + n) % taps
