"""The live engine's compiled audio path, driven block by block through its real
PortAudio callback (called directly, no audio server): live output against offline
rendering, bypass, error solo, chain switches, non-finite input, the first callback of
a wide stream."""
from __future__ import annotations

import os

import numpy as np
import pytest

from rtq.chain import Chain
from rtq.live.callback import CONTINUE
from rtq.live.engine import LiveEngine, engine_callback
from rtq.live.nullstream import NullStream
from rtq.live.sources import Source
from rtq.program import META_CAPTURE
from rtq.stages import Gain, Oversample, Requantize

RATE = 48000


def make_engine(chain, source=Source.device(), blocksize=64, **options):
    def factory(callback, words):
        return NullStream(callback, samplerate=RATE, blocksize=blocksize, channels=2, user_words=words)
    return LiveEngine(factory, chain, samplerate=RATE, channels=2, blocksize=blocksize,
                      source=source, **options)


def pump(engine, inp, sizes):
    """Run the callback over ``inp`` in blocks of the given sizes (cycled); returns the output."""
    inp = np.ascontiguousarray(inp, dtype=np.float32)
    out = np.zeros_like(inp)
    call = engine.stream._callback.ctypes
    ctl = engine.stream.ctl.ctypes.data
    start, k = 0, 0
    while start < len(inp):
        n = min(sizes[k % len(sizes)], len(inp) - start)
        block_in = np.ascontiguousarray(inp[start:start + n])
        block_out = np.zeros_like(block_in)
        assert call(block_in.ctypes.data, block_out.ctypes.data, n, 0, 0, ctl) == 0
        out[start:start + n] = block_out
        start += n
        k += 1
    return out


def signal(n=24000, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)[:, None] / RATE
    x = 0.4 * np.sin(2 * np.pi * np.array([997.0, 1503.0]) * t) + 0.05 * rng.standard_normal((n, 2))
    return x.astype(np.float32)


@pytest.mark.parametrize("sizes", [[64], [1, 7, 64, 33], [512]])
def test_live_output_equals_offline_rendering(sizes):
    x = signal()
    expected = Chain.from_preset("cd-16-shibata")(x.astype(np.float64), RATE).astype(np.float32)
    engine = make_engine(Chain.from_preset("cd-16-shibata"), blocksize=64)
    assert np.array_equal(pump(engine, x, sizes), expected)


def test_file_source_loops_and_equals_offline_rendering():
    x = signal(5000).astype(np.float64)
    engine = make_engine(Chain.from_preset("tpdf-16"), source=Source.buffer(x))
    out = pump(engine, np.zeros((5000, 2)), [64])
    assert np.array_equal(out, Chain.from_preset("tpdf-16")(x, RATE).astype(np.float32))


def test_oversampled_chain_is_bit_identical_to_offline():
    chain = lambda: Chain([Gain(-1), Oversample(4, [Requantize(8, "tpdf", shaping={"kind": "design", "order": 3, "band_hz": None})],
                                                 "minimum", "high")], seed=4)
    x = signal(12000)
    expected = chain()(x.astype(np.float64), RATE, compensate_latency=False).astype(np.float32)
    engine = make_engine(chain())
    assert np.array_equal(pump(engine, x, [64, 17]), expected)
    # With no meter attached, its oversampled taps recorded nothing (the stream-rate ones did).
    prog = engine.chain.program
    stage_taps = engine.chain.quantizer_info[(1, 0)].taps
    assert prog.meta[META_CAPTURE] == 0
    assert [int(prog.istate[t.written_index]) for t in stage_taps] == [0, 0]
    assert int(prog.istate[engine.chain.output_tap.written_index]) == len(x)


def test_bypass_fades_to_the_dry_signal_and_back():
    x = signal(20000)
    engine = make_engine(Chain.from_preset("undithered-8"), fade_ms=10.0)
    pump(engine, x[:4000], [64])
    engine.bypass(True)
    out = pump(engine, x[4000:12000], [64])
    fade = engine.fade
    assert fade == 480
    assert np.array_equal(out[fade:], x[4000 + fade:12000])          # exactly the input
    wet = Chain.from_preset("undithered-8")(x.astype(np.float64), RATE)[4000:4000 + fade]
    ramp = (np.arange(1, fade + 1) / fade)[:, None]
    expected = (1 - ramp) * wet + ramp * x[4000:4000 + fade]
    np.testing.assert_allclose(out[:fade], expected, atol=1e-6)    # a linear crossfade
    engine.bypass(False)
    back = pump(engine, x[12000:], [64])
    ref = Chain.from_preset("undithered-8")(x.astype(np.float64), RATE).astype(np.float32)
    assert np.array_equal(back[fade:], ref[12000 + fade:])            # the chain's own output again


def test_error_solo_plays_the_amplified_error():
    x = signal(20000)
    engine = make_engine(Chain([Gain(-6), Requantize(8, "tpdf")], seed=2))
    engine.solo(True, gain_db=20.0)
    out = pump(engine, x, [64]).astype(np.float64)
    y = Chain([Gain(-6), Requantize(8, "tpdf")], seed=2)(x.astype(np.float64), RATE)
    expected = 10.0 * (y - 10 ** (-6 / 20) * x.astype(np.float64))
    np.testing.assert_allclose(out[engine.fade:], expected[engine.fade:], atol=1e-6)
    rms_lsb = np.sqrt(np.mean((out[engine.fade:] / 10.0) ** 2)) / 2.0 ** -7
    assert abs(rms_lsb - 0.5) < 0.01                                  # TPDF: q^2/4


@pytest.mark.parametrize("bits, gain_db", [(4, 40.0), (1, 0.0)])
def test_error_solo_of_a_coarse_quantizer_is_clipped_at_full_scale(bits, gain_db):
    """4-bit TPDF error at +40 dB would peak at 18 times full scale, a 1-bit one at 0 dB
    at 1.6 times: the solo output is the amplified error where that stays within +-1,
    and +-1 where it does not."""
    x = signal(20000)
    stages = lambda: [Requantize(bits, "tpdf")]
    engine = make_engine(Chain(stages(), seed=2))
    engine.solo(True, gain_db=gain_db)
    out = pump(engine, x, [64]).astype(np.float64)[engine.fade:]
    error = Chain(stages(), seed=2)(x.astype(np.float64), RATE) - x.astype(np.float64)
    amplified = (10 ** (gain_db / 20) * error)[engine.fade:]
    assert np.abs(amplified).max() > 1.5
    inside = np.abs(amplified) <= 1.0
    assert 0.05 < inside.mean() < 0.95
    np.testing.assert_allclose(out[inside], amplified[inside], atol=1e-6)
    assert np.array_equal(out[~inside], np.sign(amplified[~inside]))


def test_switch_crossfades_to_the_new_chain():
    x = signal(30000)
    engine = make_engine(Chain.from_preset("tpdf-16"))
    pump(engine, x[:6400], [64])
    engine.switch(Chain.from_preset("undithered-8"), wait=False)
    out = pump(engine, x[6400:], [64])
    assert engine.switches == 1
    assert engine.chain.name == "undithered-8"
    fresh = Chain.from_preset("undithered-8")(x[6400:].astype(np.float64), RATE).astype(np.float32)
    assert np.array_equal(out[engine.fade:], fresh[engine.fade:])


def test_switch_to_a_chain_with_latency_raises_the_alignment():
    x = signal(30000)
    engine = make_engine(Chain.from_preset("tpdf-16"))
    assert engine.align == 0
    pump(engine, x[:640], [64])
    slow = Chain([Oversample(4, [Requantize(16, "tpdf")], "linear", "normal", True)], seed=1)
    engine.switch(slow, wait=False)
    pump(engine, x[640:6400], [64])
    assert engine.align == round(slow.latency) > 0
    engine.bypass(True)
    out = pump(engine, x[6400:], [64])
    delay = engine.align
    assert np.array_equal(out[engine.fade:], x[6400 + engine.fade - delay:len(x) - delay])


def test_non_finite_device_input_is_replaced_and_counted():
    x = signal(2000)
    x[100, 0] = np.nan
    x[200, 1] = np.inf
    x[300, 0] = -np.inf
    engine = make_engine(Chain.from_preset("tpdf-16"))
    out = pump(engine, x, [64])
    assert np.all(np.isfinite(out))
    assert engine.nonfinite == 3
    clean = x.copy()
    clean[100, 0], clean[200, 1], clean[300, 0] = 0.0, 1.0, -1.0
    ref = Chain.from_preset("tpdf-16")(clean.astype(np.float64), RATE).astype(np.float32)
    assert np.array_equal(out, ref)


def test_non_finite_input_is_counted_once_where_the_chain_meter_reads_it():
    """One sanitizer: the chain's own (its program's first op), applied to the source
    before the dry path and the chains see it, so the count is in the chain's counters
    (which its meter and the summary read), once (the engine cleaned the source first,
    and the chain's sanitizer, finding nothing, counted 0: the meter read [0, 0])."""
    from rtq.meter.chain_meter import ChainMeter

    x = signal(4000)
    x[100:110, 0] = np.nan
    x[200:203, 1] = np.inf
    x[3000, 1] = -np.inf
    chain = Chain.from_preset("tpdf-16")
    engine = make_engine(chain)
    meter = ChainMeter(chain, from_start=True)
    pump(engine, x, [64])
    meter.poll()
    assert chain.counts()[1] == [10, 4] and engine.counts()[1] == [10, 4] and engine.nonfinite == 14
    assert meter.report("integrated")["end_to_end"]["nonfinite"] == [10, 4]


def test_non_finite_input_never_reaches_the_dry_path():
    """Bypassed (the dry input, aligned) and error solo (which subtracts the dry input):
    every output sample finite, and bypass plays the cleaned input exactly."""
    x = signal(12000)
    x[5000:5100, 0] = np.nan
    x[6000:6050, 1] = np.inf
    x[7000:7050, 0] = -np.inf
    engine = make_engine(Chain.from_preset("undithered-8"))
    engine.bypass(True)
    out = pump(engine, x, [64])
    clean = np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0)
    assert np.all(np.isfinite(out)) and np.array_equal(out[engine.fade:], clean[engine.fade:])
    engine.solo(True)
    assert np.all(np.isfinite(pump(engine, x, [64])))
    assert engine.nonfinite == 2 * 200


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_first_callback_of_a_wide_stream_faults_no_memory_in():
    """Before the fix the first block of 64 channels faulted the 67 MB of meter taps in
    (82 MB more resident, 156 ms in the callback)."""
    chain = Chain.from_preset("tpdf-16")

    def factory(callback, words):
        return NullStream(callback, samplerate=RATE, blocksize=256, channels=64, user_words=words)
    engine = LiveEngine(factory, chain, samplerate=RATE, channels=64, blocksize=256)
    try:
        block = np.zeros((256, 64), np.float32)
        before = resident_bytes()
        status = engine_callback.ctypes(block.ctypes.data, block.ctypes.data, 256, 0, 0,
                                        engine.stream.ctl.ctypes.data)
        assert status == CONTINUE
        assert resident_bytes() - before < (1 << 20)
    finally:
        engine.close()


def test_memory_at_the_stream_limits_is_bounded():
    """The heaviest shipped preset (1-bit at 64x) at the most channels and the largest
    blocks a live stream may ask for: the chain runs on 1024-frame pieces, so memory
    does not grow with the block size (measured: +628 MiB, all of it prefaulted; the
    chain prepared for 16384-frame blocks took 2.3 GiB at 16 channels, about 9.4 GiB at 64)."""
    from rtq.live.limits import MAX_BLOCKSIZE, MAX_CHANNELS

    before = resident_bytes()

    def factory(callback, words):
        return NullStream(callback, samplerate=RATE, blocksize=MAX_BLOCKSIZE, channels=MAX_CHANNELS,
                          user_words=words)
    engine = LiveEngine(factory, Chain.from_preset("dsd64-1bit"), samplerate=RATE, channels=MAX_CHANNELS,
                        blocksize=MAX_BLOCKSIZE)
    try:
        assert engine.max_block == 1024
        assert resident_bytes() - before < (1 << 30)
    finally:
        engine.close()
