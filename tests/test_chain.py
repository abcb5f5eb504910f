"""Chain behaviour: block-size invariance, seeds and stream independence, reset, and
non-finite input handling."""
from __future__ import annotations

import numpy as np
import pytest

from rtq.chain import Chain
from rtq.dsp.shaping import select_table
from rtq.program import COUNT_NONFINITE, MAX_PROGRAM_BYTES, OP_SANITIZE
from rtq.errors import LimitError, PresetError
from rtq.stages import Gain, Oversample, Quantize, Requantize, format_rates, usable_rates

CUSTOM = {"coefficients": [1.5, -0.6, 0.2, -0.05, 0.01, 0.003]}   # > 4 taps: far-tap path

CHAINS = {
    "gain+shibata": (48000, lambda: [Gain(-3.0), Requantize(16, "tpdf", shaping="shibata")]),
    "gesemann-iir": (44100, lambda: [Requantize(16, "tpdf", shaping="gesemann")]),
    "none+custom": (48000, lambda: [Gain(-1.5), Requantize(12, "none", shaping=CUSTOM)]),
    "rpdf+custom": (48000, lambda: [Gain(-1.5), Requantize(12, "rpdf", shaping=CUSTOM)]),
    "tpdf+custom": (48000, lambda: [Gain(-1.5), Requantize(12, "tpdf", shaping=CUSTOM)]),
    "tpdf-hp+custom": (48000, lambda: [Gain(-1.5), Requantize(12, "tpdf-hp", shaping=CUSTOM)]),
    "gaussian+custom": (48000, lambda: [Gain(-1.5), Requantize(12, "gaussian", shaping=CUSTOM)]),
    "rpdf-flat-8": (48000, lambda: [Requantize(8, "rpdf", 0.7)]),
    "first-order-1bit": (48000, lambda: [Requantize(1, "tpdf", 0.5, shaping="first-order")]),
    "gain+mu-law": (8000, lambda: [Gain(2.0), Quantize("mu-law")]),
    "mixed": (44100, lambda: [Requantize(20, "tpdf-hp", shaping="lipshitz"), Gain(-0.5),
                              Requantize(16, "gaussian", shaping="high-shibata"),
                              Quantize("a-law")]),
}

N_FRAMES = 9000


def make_signal(n=N_FRAMES, channels=2, seed=0):
    """Noise plus a sine, with a loud burst that clips (exercises the saturating path)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    x = 0.05 * rng.standard_normal((n, channels))
    x += 0.3 * np.sin(2.0 * np.pi * 997.0 / 48000.0 * t)[:, None]
    x[2000:2600] *= 6.0
    return x


def block_sizes(kind, n, rng):
    if kind == "random":
        sizes = []
        while sum(sizes) < n:
            sizes.append(int(rng.choice([0, 1, 2, 3, 5, 63, 64, 65, 127, 500, 4096, 5000])))
        return sizes
    return [kind] * (n // kind + 1)


def process_in_blocks(chain, x, sizes):
    buf = np.ascontiguousarray(x.copy())
    start = 0
    for s in sizes:
        if start >= len(buf):
            break
        chain.process(buf[start:start + s])
        start += s
    return buf


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", CHAINS)
def test_block_size_invariance(name, dtype):
    fs, make = CHAINS[name]
    x = make_signal().astype(dtype)
    whole = Chain(make(), seed=3)(x.astype(np.float64), fs).astype(dtype)
    assert np.all(np.isfinite(whole))
    rng = np.random.default_rng(1)
    for kind, max_block in [(1, 4096), (7, 4096), (64, 4096), (4096, 4096), ("random", 4096),
                            ("random", 100), (N_FRAMES, 333)]:
        chain = Chain(make(), seed=3).prepare(fs, 2, max_block)
        out = process_in_blocks(chain, x, block_sizes(kind, N_FRAMES, rng))
        assert out.dtype == dtype
        diff = np.flatnonzero(np.any(out != whole, axis=1))
        assert diff.size == 0, f"blocks of {kind} (max {max_block}): first difference at frame {diff[0]}"


def test_float32_block_matches_float64_processing():
    fs, make = CHAINS["gain+shibata"]
    x = make_signal().astype(np.float32)
    y64 = Chain(make(), seed=3)(x.astype(np.float64), fs)
    chain = Chain(make(), seed=3).prepare(fs, 2, 512)
    buf = x.copy()
    chain.process(buf)
    # 16-bit codes are exact in float32
    assert np.array_equal(buf.astype(np.float64), y64)


def test_same_seed_same_output_different_seed_different():
    fs, make = CHAINS["gain+shibata"]
    x = make_signal()
    a = Chain(make(), seed=7)(x, fs)
    b = Chain(make(), seed=7)(x, fs)
    c = Chain(make(), seed=8)(x, fs)
    assert np.array_equal(a, b)
    assert np.mean(a != c) > 0.5


def test_channels_have_independent_dither():
    """The same input on 4 channels: the errors differ and are uncorrelated."""
    n = 1 << 18
    q = 2.0 ** -15
    x = np.repeat((0.2 * np.sin(np.arange(n) * 0.01))[:, None], 4, axis=1)
    for stages in ([Requantize(16, "tpdf")], [Requantize(16, "rpdf", shaping="shibata")],
                   [Requantize(16, "gaussian", shaping="gesemann")]):
        e = (Chain(stages, seed=1)(x, 48000) - x) / q
        r = np.corrcoef(e.T)
        off = r[~np.eye(4, dtype=bool)]
        # s.e. of a correlation coefficient: 1/sqrt(n) = 0.002
        assert np.max(np.abs(off)) < 5.0 / np.sqrt(n)


def test_stages_have_independent_dither():
    """Two 16-bit TPDF stages in a row on silence: stage 1 outputs round(r1), stage 2 adds
    round(r2).  With the same noise stream the two would be identical (correlation 1)."""
    n = 1 << 18
    x = np.zeros((n, 2))
    y1 = Chain([Requantize(16, "tpdf")], seed=5)(x, 48000)
    y2 = Chain([Requantize(16, "tpdf"), Requantize(16, "tpdf")], seed=5)(x, 48000)
    e2 = y2 - y1
    assert np.any(e2 != 0.0)
    for c in range(2):
        assert abs(np.corrcoef(y1[:, c], e2[:, c])[0, 1]) < 5.0 / np.sqrt(n)


@pytest.mark.parametrize("name", ["gain+shibata", "gesemann-iir", "mixed", "tpdf-hp+custom"])
def test_reset_repeats_output_exactly(name):
    fs, make = CHAINS[name]
    x = make_signal()
    chain = Chain(make(), seed=2).prepare(fs, 2, 256)
    first = process_in_blocks(chain, x, [256] * 40)
    counters = chain.program.counters.copy()
    assert counters.sum() > 0                    # the burst clipped
    chain.reset()
    assert chain.program.counters.sum() == 0
    second = process_in_blocks(chain, x, [100] * 100)
    assert np.array_equal(first, second)
    assert np.array_equal(chain.program.counters, counters)
    # __call__ is from a fresh state every time
    assert np.array_equal(chain(x, fs), chain(x, fs))


# ---------------------------------------------------------------------------------------
# NaN / Inf input
# ---------------------------------------------------------------------------------------

def with_bad_samples():
    x = make_signal(6000, 2, seed=3)
    bad = x.copy()
    bad[[10, 11, 500, 3001], 0] = np.nan
    bad[[12, 4000], 0] = np.inf
    bad[[0, 7], 1] = -np.inf
    bad[[1, 2, 3, 5999], 1] = np.nan
    bad[[4500], 1] = np.inf
    fixed = bad.copy()
    fixed[np.isnan(fixed)] = 0.0
    fixed[np.isposinf(fixed)] = 1.0
    fixed[np.isneginf(fixed)] = -1.0
    return bad, fixed, [6, 7]


@pytest.mark.parametrize("name", ["gain+shibata", "gesemann-iir", "mixed", "gain+mu-law"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_non_finite_input_is_sanitised_before_the_quantizer(name, dtype):
    fs, make = CHAINS[name]
    bad, fixed, per_channel = with_bad_samples()
    bad, fixed = bad.astype(dtype), fixed.astype(dtype)
    ref_chain = Chain(make(), seed=4).prepare(fs, 2, 64)
    ref = process_in_blocks(ref_chain, fixed, [64] * 100)
    chain = Chain(make(), seed=4).prepare(fs, 2, 64)
    out = process_in_blocks(chain, bad, [37] * 200)
    assert np.all(np.isfinite(out))
    assert np.array_equal(out, ref)               # bit-identical: nothing else leaked
    assert np.all(np.isfinite(chain.program.fstate))
    assert chain.program.ops[0, 0] == OP_SANITIZE
    assert list(chain.program.counters[0, :, COUNT_NONFINITE]) == per_channel
    assert ref_chain.program.counters[0, :, COUNT_NONFINITE].sum() == 0
    # quantizer clip counts match too (+Inf became +1.0, which saturates the top code)
    assert np.array_equal(chain.program.counters[1:], ref_chain.program.counters[1:])


def test_non_finite_replacement_values():
    x = np.array([np.nan, np.inf, -np.inf, 0.25])
    stage = Requantize(16, "none")
    chain = Chain([stage])
    y = chain(x, 48000)
    assert list(y) == [0.0, 1.0 - 2.0 ** -15, -1.0, 0.25]
    assert chain.program.counters[0, 0, COUNT_NONFINITE] == 3
    assert chain.program.counters[chain.quantizer_info[(0,)].op_index, 0, 0] == 1     # +1.0 saturates


RATE_CASES = {
    "shibata": lambda: [Requantize(16, "tpdf", shaping="shibata")],
    "shibata+band-at-its-edge": lambda: [Requantize(16, "tpdf", shaping="shibata"),
                                         Requantize(8, "none", shaping={"order": 2, "band_hz": 24000})],
    "lipshitz+band-in-4x": lambda: [Requantize(16, "tpdf", shaping="lipshitz"),
                                    Oversample(4, [Requantize(4, "none", shaping={"order": 3, "band_hz": 40000})])],
    "band-in-8x": lambda: [Oversample(8, [Requantize(1, "none", shaping={"order": 5, "band_hz": 100000})])],
    "table-in-2x": lambda: [Oversample(2, [Requantize(16, "tpdf", shaping="gesemann")])],
    "odd-band-in-3-stages": lambda: [Oversample(2, [Oversample(2, [Requantize(1, "none", shaping={
        "order": 3, "band_hz": 33333.3})])])],
}


def inside(ranges, rate) -> bool:
    return any((r.low < rate or (r.low == rate and not r.low_open)) and rate <= r.high for r in ranges)


def prepares(stages, rate, how) -> bool:
    try:
        how(Chain(stages), rate)
    except PresetError:         # a stage's limit
        return False
    except ValueError as err:   # not a stream rate at all (above 768000 Hz)
        assert "must be a whole number of Hz from 1000 to 768000" in str(err)
        return False
    return True


@pytest.mark.parametrize("name", RATE_CASES)
def test_usable_rates_are_exactly_the_whole_rates_that_prepare(name):
    """Each range's first and last whole rate prepares, the whole rates just outside do
    not (unless another range has them); ``check`` agrees with ``prepare``."""
    stages = RATE_CASES[name]()
    ranges, limits = usable_rates(stages)
    assert ranges and limits
    for r in ranges:
        first, last = r.whole_rates()
        probes = [first, first - 1] + ([last, last + 1] if last < np.inf else [first * 10])
        for rate in probes:
            assert prepares(stages, rate, Chain.check) == inside(ranges, rate), (name, rate)
        for rate in (first, first - 1):
            assert prepares(stages, rate, lambda c, f: c.prepare(f, 1, 64)) == inside(ranges, rate), (name, rate)


def test_usable_rates_print_the_whole_rates_and_stay_small():
    ranges, _ = usable_rates(RATE_CASES["shibata+band-at-its-edge"]())
    assert format_rates(ranges) == "48001-50400 Hz"        # band 24000 Hz needs the rate above 48000
    ranges, _ = usable_rates(RATE_CASES["odd-band-in-3-stages"]())
    assert format_rates(ranges) == "16667-768000 Hz"       # above 16666.65 Hz, up to rtq's highest stream rate
    many, _ = usable_rates([Requantize(16, "tpdf", shaping="shibata") for _ in range(40)])
    assert many == usable_rates(RATE_CASES["shibata"]())[0] and len(many) == 4


def test_check_leaves_a_prepared_chain_as_it_was():
    chain = Chain([Requantize(16, "tpdf", shaping="shibata")]).prepare(44100, 2, 64, taps=True)
    info = chain.quantizer_info[(0,)]
    chain.check(48000)
    with pytest.raises(PresetError, match="no table for 96000 Hz"):
        chain.check(96000)
    assert chain.quantizer_info[(0,)] is info and info.taps is not None


@pytest.mark.parametrize("make, message", [
    (lambda: Requantize(-3, "none"), "requantize.bits must be an integer from 1 to 32, got -3"),
    (lambda: Requantize(40), "requantize.bits must be an integer from 1 to 32, got 40"),
    (lambda: Requantize(True), "requantize.bits must be an integer from 1 to 32, got True"),
    (lambda: Requantize(16, "blue"), "requantize.dither must be one of none, rpdf, tpdf, tpdf-hp, gaussian"),
    (lambda: Requantize(16, "tpdf", -1.0), "requantize.dither.amplitude must be a finite number >= 0"),
    (lambda: Requantize(16, shaping={"order": 2.5}), "requantize.shaping.order must be an integer from 1 to 7, got 2.5"),
    (lambda: Requantize(16, shaping={"order": 3, "band_hz": 0.5}),
     "requantize.shaping.band_hz must be a finite number >= 1"),
    (lambda: Requantize(16, shaping={"order": 3, "bandhz": 5}),
     "unknown key 'bandhz' in requantize.shaping; did you mean 'band_hz'?"),
    (lambda: Gain(float("nan")), "gain.db must be a finite number from -120 to 24, got nan"),
    (lambda: Gain(1e6), "gain.db must be a finite number from -120 to 24"),
], ids=["negative-bits", "40-bits", "bool-bits", "unknown-dither", "negative-amplitude", "fractional-order",
        "band-below-1-hz", "misspelt-key", "nan-gain", "huge-gain"])
def test_stages_check_their_arguments_like_presets(make, message):
    """Requantize(-3) gave every sample -15.0; Gain(nan) NaN output; Requantize(16, 'blue')
    a bare KeyError."""
    with pytest.raises(ValueError) as caught:
        make()
    assert str(caught.value).startswith(message), caught.value


def test_counts_report_clips_nonfinite_input_and_loop_resets():
    """A 1-bit order-5 loop is stable up to full scale (no reset at -6 dB) and overloads
    above it (+6 dB: its state is cleared after 16 overloads in a row, and counted)."""
    t = np.arange(12000)[:, None] / 48000
    x = 0.99 * np.sin(2 * np.pi * 1000 * t) * np.ones((1, 2))
    x[5, 1] = np.nan
    results = {}
    for db in (-6.0, 6.0):
        chain = Chain([Gain(db), Oversample(4, [Requantize(1, "none", shaping={"order": 5})])])
        chain(x, 48000)
        results[db] = chain.counts()
    quiet, loud = results[-6.0], results[6.0]
    assert quiet[1] == loud[1] == [0, 1]
    assert quiet[2] == [0, 0] and min(loud[2]) > 0
    assert min(loud[0]) > 0


def test_whole_signal_call_compensates_latency_like_render():
    """``chain(x, rate)`` is aligned with its input and as long (an impulse at 1000 comes
    out at 1000 through 107 samples of latency); ``compensate_latency=False`` gives
    the stream's output, 107 samples late, and ``process`` agrees with it."""
    chain = Chain.from_preset("dsd64-1bit")
    assert chain.latency == 107
    x = np.zeros((4000, 2))
    x[1000] = 0.5
    aligned = chain(x, 48000)
    raw = chain(x, 48000, compensate_latency=False)
    assert aligned.shape == raw.shape == x.shape
    assert np.argmax(np.abs(aligned[:, 0])) == 1000 and np.argmax(np.abs(raw[:, 0])) == 1107
    assert np.array_equal(aligned[:-107], raw[107:])
    streamed = x.copy()
    chain.prepare(48000, 2, 64)
    chain.process(streamed)
    assert np.array_equal(streamed, raw)
    mono = chain(x[:, 0], 48000)
    assert mono.shape == (4000,) and np.argmax(np.abs(mono)) == 1000


@pytest.mark.parametrize("audio, message", [
    ((np.ones((10, 2)) * 3000).astype(np.int16), "expected floating-point audio (full scale +-1.0)"),
    (np.zeros((2, 2, 2)), "expected floating-point audio"),
    ([1, 0, 0], "expected floating-point audio"),
])
def test_whole_signal_call_refuses_what_is_not_float_audio(audio, message):
    with pytest.raises(TypeError, match=message.replace("+", r"\+").replace("(", r"\(").replace(")", r"\)")):
        Chain([Requantize(16)])(audio, 48000)


@pytest.mark.parametrize("block, kind, message", [
    ([[0.0, 0.0]], TypeError, "expected a numpy array (frames, channels), got list"),
    (np.zeros((8, 2), np.int32), ValueError, "got one that is int32"),
    (np.zeros((8, 4))[:, ::2], ValueError, "got one that is not C-contiguous"),
    (np.zeros((8, 2)).view(), ValueError, "got one that is read-only"),
])
def test_process_says_what_is_wrong_with_a_block(block, kind, message):
    chain = Chain([Requantize(16)]).prepare(48000, 2, 64)
    if message.endswith("read-only"):
        block.flags.writeable = False
    with pytest.raises(kind) as caught:
        chain.process(block)
    assert str(caught.value).endswith(message)


@pytest.mark.parametrize("args, message", [
    ((48000, 2, 0), "max_block must be an integer >= 1, got 0"),   # process() looped for ever
    ((48000, 0, 64), "channels must be an integer >= 1, got 0"),
    ((48000, 2, 64, False, -1), "first_channel must be an integer >= 0, got -1"),
    ((48, 2, 64), "sample_rate must be a whole number of Hz from 1000 to 768000, got 48; did you mean 48000?"),
    ((44100.5, 2, 64), "sample_rate must be a whole number of Hz from 1000 to 768000, got 44100.5"),
])
def test_prepare_refuses_arguments_out_of_range(args, message):
    with pytest.raises(ValueError) as caught:
        Chain([Requantize(16)]).prepare(*args)
    assert str(caught.value) == message


@pytest.mark.parametrize("seed", [-1, 1.5, 2 ** 64, True])
def test_chain_seed_is_a_64_bit_integer(seed):
    with pytest.raises(ValueError, match="seed must be an integer from 0 to 18446744073709551615"):
        Chain([Requantize(16)], seed=seed)
    assert Chain([Requantize(16)], seed=2 ** 64 - 1).seed == 2 ** 64 - 1


def test_chain_holds_stages_only():
    with pytest.raises(TypeError, match="a chain holds stages"):
        Chain(["requantize"])


def test_a_stage_shared_by_two_chains_keeps_each_chains_preparation():
    """Prepare results live on the prepared chain, keyed by place, not on the stage: the
    second chain's preparation at 48 kHz left the first chain's quantizer reading 48000."""
    q = Requantize(16, "tpdf", shaping="shibata")
    first = Chain([q]).prepare(44100, 2, 64, taps=True)
    second = Chain([Gain(-1), q]).prepare(48000, 2, 64)
    assert first.quantizer_info[(0,)].sample_rate == 44100 and first.quantizer_info[(0,)].taps is not None
    assert second.quantizer_info[(1,)].sample_rate == 48000 and second.quantizer_info[(1,)].taps is None
    assert first.quantizer_info[(0,)].error_filter == select_table("shibata", 44100)
    assert second.quantizer_info[(1,)].error_filter == select_table("shibata", 48000)
    assert first.quantizer_info[(0,)].stage is second.quantizer_info[(1,)].stage is q
    assert not hasattr(q, "info")


def test_a_stage_used_twice_in_one_chain_has_one_entry_per_place():
    q = Requantize(8, "tpdf")
    chain = Chain([q, Oversample(2, [q])]).prepare(48000, 1, 64)
    assert list(chain.quantizer_info) == [(0,), (1, 0)]
    assert [info.sample_rate for info in chain.quantizer_info.values()] == [48000, 96000]
    assert len({info.op_index for info in chain.quantizer_info.values()}) == 2


@pytest.mark.parametrize("channels, max_block, taps", [(100000, 4096, True), (2, 100_000_000, False)])
def test_prepare_refuses_buffers_beyond_the_memory_limit(channels, max_block, taps):
    """``rtq live --channels 100000`` or ``--blocksize 100000000`` (and a 64x chain's
    work buffers at them) once grew until the machine ran out of memory: the program's
    size is known before anything is allocated, and refused in one line above the limit."""
    with pytest.raises(LimitError) as caught:
        Chain.from_preset("dsd64-1bit").prepare(48000, channels, max_block, taps=taps)
    assert str(caught.value).startswith("the chain's buffers would take ")
    assert str(caught.value).endswith(f"above rtq's limit of {MAX_PROGRAM_BYTES // 2 ** 30} GiB: use fewer channels "
                                      "or smaller blocks")
    assert isinstance(caught.value, ValueError)
    assert sum(a.nbytes for a in Chain.from_preset("dsd64-1bit").prepare(44100, 2, 8192, taps=True).program) < 2 ** 28
