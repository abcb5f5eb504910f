"""The fractional-delay filter that meets a chain's exact latency (rtq.meter.delay)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from rtq.dsp.oversample_design import PASSBAND
from rtq.meter.delay import ERROR_FLOOR_DB, FractionalDelay, fractional_taps


@pytest.mark.parametrize("fraction", [1e-3, 0.125, 0.28125, 0.454545, 0.5, 0.75, 0.999])
def test_error_is_below_its_floor_over_the_protected_band(fraction):
    """|H(e^jw) - e^(-jwD)| against scipy.signal.freqz over 0 .. 0.4535 fs (20 kHz at
    44.1 kHz): under -170 dB for every fraction (measured -173.4 dB at 0.5)."""
    taps, bulk = fractional_taps(fraction)
    f = np.linspace(0.0, PASSBAND, 4001)
    w, h = signal.freqz(taps, worN=2 * np.pi * f)
    error = np.abs(h - np.exp(-1j * w * (bulk + fraction)))
    assert 20 * np.log10(error.max()) < ERROR_FLOOR_DB
    # and the floor is tight: the design is not longer than it needs to be
    assert len(taps) == 132 and bulk == 65


def test_streaming_equals_one_block_and_delays_a_band_limited_signal():
    """Sinusoids anywhere in 0 .. 0.4535 fs come out delayed by exactly bulk + fraction
    (to the floor), and blocks of any size give what one block gives."""
    rng = np.random.default_rng(0)
    freq = rng.uniform(0.0, PASSBAND, 40)               # cycles per sample
    phase = rng.uniform(0.0, 2 * np.pi, 40)

    def tones(t):
        return np.sum(np.sin(2 * np.pi * freq * t[:, None] + phase), axis=1)

    t = np.arange(6000.0)
    x = np.stack([tones(t), tones(t + 100.0)], axis=1)
    delay = FractionalDelay(0.3, 2)
    whole = delay(x)
    delay.reset()
    pieces = np.concatenate([delay(x[i:i + k]) for i, k in zip(range(0, 6000, 700), [700] * 8 + [400])])
    np.testing.assert_allclose(pieces, whole, rtol=0, atol=1e-12)
    d = delay.bulk + 0.3
    exact = np.stack([tones(t - d), tones(t + 100.0 - d)], axis=1)
    settled = slice(delay.warmup, None)         # before: the zeros ahead of the stream
    error = whole[settled] - exact[settled]
    assert 10 * np.log10(np.mean(error ** 2) / np.mean(exact[settled] ** 2)) < ERROR_FLOOR_DB


def test_a_fraction_outside_0_1_is_refused():
    for bad in (0.0, 1.0, -0.2):
        with pytest.raises(ValueError, match="strictly between 0 and 1"):
            fractional_taps(bad)
