"""The ``lowpass`` stage: BS.1534-3's anchor masks met, measured with sines through the
chain; the kernel against scipy.signal.lfilter; presets and rates."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from rtq.chain import Chain
from rtq.dsp.lowpass import design_lowpass
from rtq.errors import PresetError
from rtq.presets import parse_preset
from rtq.stages import Lowpass

PASS_DB = 0.1


def sine_gain_db(hz: float, corner: float, rate: int) -> float:
    """The chain's gain at ``hz``: a 0.5 s sine through ``lowpass: {hz: corner}``
    (latency compensated), fitted by least squares away from the ends."""
    n = rate // 2
    t = np.arange(n) / rate
    x = 0.5 * np.sin(2 * np.pi * hz * t)
    y = Chain([Lowpass(corner)])(x, rate)
    middle = slice(n // 4, 3 * n // 4)
    basis = np.stack([np.sin(2 * np.pi * hz * t[middle]), np.cos(2 * np.pi * hz * t[middle])], axis=1)
    coef, *_ = np.linalg.lstsq(basis, y[middle], rcond=None)
    return 20 * np.log10(np.hypot(*coef) / 0.5)


@pytest.mark.parametrize("rate", [44100, 48000, 96000])
@pytest.mark.parametrize("corner", [3500.0, 7000.0])
def test_anchor_masks_are_met_with_sines(corner, rate):
    """Passband within +-0.1 dB up to the corner; at least 25 dB down at 8/7 of it (4 kHz
    for the 3.5 kHz anchor) and 50 dB from 9/7 (4.5 kHz) up to Nyquist."""
    assert max(abs(sine_gain_db(hz, corner, rate)) for hz in np.linspace(20, corner, 25)) <= PASS_DB
    assert sine_gain_db(corner * 8 / 7, corner, rate) <= -25.0
    stop = np.geomspace(corner * 9 / 7, 0.49 * rate, 25)
    assert max(sine_gain_db(hz, corner, rate) for hz in stop) <= -50.0


def test_the_kernel_is_the_designed_fir():
    rate = 48000
    taps = np.array(design_lowpass(3500.0, float(rate)))
    x = np.random.default_rng(1).standard_normal((9000, 2))
    chain = Chain([Lowpass(3500)])
    y = chain(x, rate, compensate_latency=False)
    assert chain.latency == (len(taps) - 1) / 2 and len(taps) % 2 == 1
    assert np.allclose(y, signal.lfilter(taps, 1.0, x, axis=0), rtol=0, atol=1e-13)
    chain.prepare(rate, 2, 64)          # any cut of the stream gives the same samples
    blocks = [x[i:i + 37].copy() for i in range(0, len(x), 37)]
    for block in blocks:
        chain.process(block)
    assert np.array_equal(np.concatenate(blocks), y)


def test_a_preset_can_use_it_and_a_rate_too_low_is_refused_at_its_line():
    spec = parse_preset("name: anchor\nchain:\n  - lowpass: {hz: 7000}\n", "anchor.yaml")
    chain = Chain.from_spec(spec)
    chain.prepare(48000, 2, 64)
    with pytest.raises(PresetError, match=r"anchor.yaml:3:19: lowpass at 7000 Hz runs at rates above 18000 Hz .*, not 16000 Hz"):
        Chain.from_spec(spec).prepare(16000, 2, 64)
    with pytest.raises(PresetError, match=r"lowpass.hz must be"):
        parse_preset("chain:\n  - lowpass: {hz: 0}\n", "bad.yaml")
