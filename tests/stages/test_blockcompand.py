"""``blockcompand``: NICAM-style block companding against theory, and like every stage
block-size invariant and the same live as offline."""
from __future__ import annotations

import math

import numpy as np
import pytest

from rtq import BlockCompand, Chain, Requantize
from rtq.errors import PresetError
from rtq.meter.chain_meter import ChainMeter
from rtq.presets import parse_preset

RATE = 32000
LEVELS_DBFS = list(range(-6, -61, -6))


def sine(dbfs, seconds=1.0, hz=997.0, channels=1):
    t = np.arange(int(RATE * seconds)) / RATE
    x = 10 ** (dbfs / 20) * math.sqrt(2) * np.sin(2 * np.pi * hz * t)
    return np.repeat(x[:, None], channels, axis=1)


def metered(chain, x, block=4096):
    """Run ``x`` through ``chain`` (prepared with taps) block by block under a ChainMeter;
    returns (output, the quantizer's report)."""
    chain.prepare(RATE, x.shape[1], block, taps=True)
    meter = ChainMeter(chain)
    y = x.copy()
    for start in range(0, len(y), block):
        chain.process(y[start:start + block])
        meter.poll()
    return y, meter.report()["stages"][0]


@pytest.mark.parametrize("dbfs", LEVELS_DBFS)
def test_error_power_is_the_theory_of_the_scales_chosen(dbfs):
    """TPDF dither at the block's step makes the error power q_s^2/4 whatever the signal;
    averaged over the blocks at each scale (the meter's counts), within 2 % of the
    measured error power (measured: within 0.7 % at every level)."""
    x = sine(dbfs)
    y, report = metered(Chain([BlockCompand(10, 32, 14, "tpdf")]), x)
    block = 32
    e = y[block:] - x[:-block]                     # the stage is one block late
    blocks = np.array(report["scale_factors"]["blocks"][0])
    steps = np.array(report["scale_factors"]["steps"])
    assert blocks.sum() == len(x) // block
    theory = np.sum(blocks * steps ** 2 / 4) / blocks.sum()
    assert np.mean(e ** 2) == pytest.approx(theory, rel=0.02)
    assert report["mse"][0] == pytest.approx(np.mean(e[:len(x) - 2 * block] ** 2), rel=0.02)
    # The block's peak chooses the scale: the finest one whose range holds the sine's
    # peak plus the dither's (no clipping).
    peak = 10 ** (dbfs / 20) * math.sqrt(2)
    fits = [s for s, step in enumerate(steps) if peak / step <= 2 ** 9 - 2]
    assert np.argmax(blocks) == max(fits)
    assert report["clips"] == [0]


@pytest.mark.parametrize("dbfs", [-30, -40, -50, -60])
def test_snr_advantage_over_fixed_10_bits_matches_the_scales_used(dbfs):
    """At low levels the compander's step is 2^s times finer than the fixed 10-bit grid's:
    its SNR is 10 log10(q_10^2 / mean q_s^2) dB better (6.02 dB per scale), within 0.1 dB."""
    x = sine(dbfs, seconds=2.0)
    y, report = metered(Chain([BlockCompand(10, 32, 14, "tpdf")]), x)
    fixed = Chain([Requantize(10, "tpdf")])(x, RATE)
    e_compand = y[32:] - x[:-32]
    e_fixed = fixed - x
    advantage = 10 * np.log10(np.mean(e_fixed ** 2) / np.mean(e_compand ** 2))
    blocks = np.array(report["scale_factors"]["blocks"][0])
    steps = np.array(report["scale_factors"]["steps"])
    expected = 10 * np.log10(steps[0] ** 2 / (np.sum(blocks * steps ** 2) / blocks.sum()))
    assert advantage == pytest.approx(expected, abs=0.1)
    assert expected == pytest.approx(6.0206 * 4, abs=0.01)      # below -30 dBFS: the finest scale


def test_input_on_the_range_grid_passes_losslessly_at_the_finest_scale():
    x = np.round(sine(-40) * 2 ** 13) / 2 ** 13                 # 14-bit samples, peak under 1/16
    y = Chain([BlockCompand(10, 32, 14, "none")])(x, RATE)
    assert np.array_equal(y, x)


@pytest.mark.parametrize("sizes", [[1], [7, 64, 33], [4096]])
def test_output_does_not_depend_on_the_block_size(sizes):
    x = sine(-20, 0.5, channels=2) + 0.01 * np.random.default_rng(0).standard_normal((16000, 2))
    chain = lambda: Chain([BlockCompand(10, 32, 14, "tpdf", shaping="shibata")], seed=3)
    whole = chain()(x, 44100, compensate_latency=False)
    streaming = chain().prepare(44100, 2, 4096)
    y = x.copy()
    start, k = 0, 0
    while start < len(y):
        n = sizes[k % len(sizes)]
        streaming.process(y[start:start + n])
        start, k = start + n, k + 1
    assert np.array_equal(y, whole)


def test_live_output_equals_offline_rendering():
    from tests.live.test_engine_core import make_engine, pump, signal

    chain = lambda: Chain([BlockCompand(10, 32, 14, "tpdf")], seed=2)
    x = signal(6000)
    expected = chain()(x.astype(np.float64), 48000, compensate_latency=False).astype(np.float32)
    assert np.array_equal(pump(make_engine(chain()), x, [64, 17, 1]), expected)


def test_latency_is_one_block_and_rendering_compensates_it():
    x = sine(-20, 0.2)
    y = Chain([BlockCompand(10, 48, 14, "none")])(x, RATE)
    late = Chain([BlockCompand(10, 48, 14, "none")])(x, RATE, compensate_latency=False)
    assert Chain([BlockCompand(10, 48, 14)]).latency == 48
    assert np.array_equal(y[:-48], late[48:])
    assert np.max(np.abs(y - x)) <= 2.0 ** -9 / 2 + 1e-12      # the coarsest step's half


def test_noise_shaping_composes_and_shapes_the_error():
    """With an FIR error filter the error's spectrum follows the table's NTF: less error
    at low frequencies than at high ones (shibata at 44.1 kHz, -40 dBFS sine)."""
    x = np.repeat(sine(-40, 1.0), 1, axis=1)
    chain = Chain([BlockCompand(10, 32, 14, "tpdf", shaping="shibata")])
    y = chain(x, 44100)
    e = (y - x)[:, 0]
    spectrum = np.abs(np.fft.rfft(e * np.hanning(len(e)))) ** 2
    freq = np.fft.rfftfreq(len(e), 1 / 44100)
    assert spectrum[(freq > 1000) & (freq < 4000)].mean() < spectrum[freq > 16000].mean() / 100


@pytest.mark.parametrize("text, message", [
    ("{bits: 10, range_bits: 8}", "blockcompand.range_bits must be from bits (10) to bits + 23, got 8"),
    ("{bits: 1, range_bits: 8}", "blockcompand.bits must be an integer from 2 to 24, got 1"),
    ("{bits: 10, range_bits: 14, block: 0}", "blockcompand.block must be an integer from 1 to 4096, got 0"),
    ("{bits: 10}", "blockcompand is missing required key 'range_bits'"),
    ("{bits: 10, range_bits: 14, dither: pink}", "blockcompand.dither must be one of none, rpdf, tpdf"),
])
def test_presets_and_constructors_refuse_alike(text, message):
    import yaml

    with pytest.raises(PresetError) as err:
        parse_preset(f"chain:\n  - blockcompand: {text}\n", "p.yaml")
    assert message in str(err.value)
    with pytest.raises(ValueError) as err:
        BlockCompand(**yaml.safe_load(text))
    assert message in str(err.value)


def test_info_label_and_output_grid():
    stage = BlockCompand(10, 32, 14, "tpdf")
    assert stage.label() == "blockcompand 10-bit/14 block 32 tpdf"
    assert stage.info_line(32000, 32000) == (
        "block companding to 10 bits in blocks of 32 samples (5 scales: steps 2^-9 .. 2^-13, a 14-bit range), "
        "tpdf dither (1 LSB of the block's step), no noise shaping; latency 32 samples")
    assert str(stage.output_grid()) == "14-bit grid"
