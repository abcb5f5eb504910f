"""The dither features mastering engineers expect: auto-blank, passthrough of input on the
grid, and the limit that keeps shaped noise from clipping full-scale program."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from rtq import Chain, Requantize
from rtq.cli import main
from rtq.dsp.requantize import GUARD_WORDS
from rtq.errors import PresetError
from rtq.presets import parse_preset

RATE = 44100
SHAPINGS = ["none", "shibata", "gesemann"]      # no filter, FIR, recursive


def gapped(seed=0):
    """0.5 s of tone, 1 s of digital silence, 0.5 s of noise, stereo."""
    rng = np.random.default_rng(seed)
    x = np.zeros((2 * RATE, 2))
    t = np.arange(RATE // 2) / RATE
    x[:RATE // 2] = 0.3 * np.sin(2 * np.pi * 1000 * t)[:, None]
    x[3 * RATE // 2:] = 0.2 * rng.standard_normal((RATE // 2, 2))
    return x


def filter_cleared_at(shaping, x, at):
    """A chain without auto-blank whose error filter (only) is cleared at sample ``at``:
    the dither streams run on as they do."""
    chain = Chain([Requantize(16, "tpdf", shaping=shaping)], seed=1).prepare(RATE, 2, 4096)
    y = x.copy()
    chain.process(y[:at])
    chain.program.fstate[:] = 0.0      # tpdf keeps no state there: this is the filter alone
    chain.process(y[at:])
    return y


@pytest.mark.parametrize("shaping", SHAPINGS)
def test_auto_blank_outputs_exact_zeros_after_the_delay_and_dither_returns_at_the_first_sample(shaping):
    x = gapped()
    blanked = Chain([Requantize(16, "tpdf", shaping=shaping, auto_blank=0.5)], seed=1)(x, RATE, compensate_latency=False)
    plain = Chain([Requantize(16, "tpdf", shaping=shaping)], seed=1)(x, RATE, compensate_latency=False)
    gap, back, delay = RATE // 2, 3 * RATE // 2, RATE // 2
    # Until the silence has lasted 0.5 s, nothing changes; then the output is exact zeros.
    assert np.array_equal(blanked[:gap + delay], plain[:gap + delay])
    assert np.any(plain[gap + delay:back] != 0)                       # dither hiss without it
    assert not np.any(blanked[gap + delay:back])
    # From the first non-zero sample on, it is the chain that never blanked, but for
    # the error filter's state, cleared there: the same dither, no click.
    assert np.array_equal(blanked[back:], filter_cleared_at(shaping, x, back)[back:])
    if shaping == "none":
        assert np.array_equal(blanked[back:], plain[back:])
    assert np.max(np.abs(blanked[back:back + 64] - x[back:back + 64])) < 40 * 2.0 ** -15


def test_auto_blank_is_per_channel_and_block_size_invariant():
    x = gapped()
    x[RATE // 2:3 * RATE // 2, 1] = 1e-3     # the right channel is never silent
    chain = lambda: Chain([Requantize(16, "tpdf", shaping="shibata", auto_blank=0.25)], seed=2)
    whole = chain()(x, RATE, compensate_latency=False)
    streaming = chain().prepare(RATE, 2, 512)
    y = x.copy()
    for start in range(0, len(y), 333):
        streaming.process(y[start:start + 333])
    assert np.array_equal(y, whole)
    assert not np.any(whole[RATE // 2 + RATE // 4 + 1:3 * RATE // 2, 0])
    assert np.all(whole[RATE // 2:3 * RATE // 2, 1] != 0)


@pytest.mark.parametrize("shaping", ["shibata", "gesemann"])
def test_live_output_equals_offline_rendering_with_every_guard(shaping):
    """Auto-blank, passthrough and the limit, live through the engine's callback in odd
    block sizes, are the offline chain's output sample for sample."""
    from tests.live.test_engine_core import RATE as LIVE_RATE, make_engine, pump

    rng = np.random.default_rng(9)
    x = np.zeros((LIVE_RATE, 2))
    x[:12000] = np.sign(np.sin(2 * np.pi * 480 * np.arange(12000) / LIVE_RATE))[:, None]   # full scale
    x[30000:36000] = np.round(rng.standard_normal((6000, 2)) * 2000) / 32768               # on the grid
    x[40000:] = 0.1 * rng.standard_normal((LIVE_RATE - 40000, 2))
    x = x.astype(np.float32)
    chain = lambda: Chain([Requantize(16, "tpdf", shaping=shaping, auto_blank=0.1, passthrough_exact=True,
                                      limit=True)], seed=4)
    expected = chain()(x.astype(np.float64), LIVE_RATE).astype(np.float32)
    assert not np.any(expected[12000 + LIVE_RATE // 10 + 1:30000])                           # blanked
    assert np.array_equal(expected[30032:36000], x[30032:36000])                            # passed through
    assert np.array_equal(pump(make_engine(chain()), x, [64, 17, 1, 333]), expected)


@pytest.mark.parametrize("shaping", SHAPINGS)
def test_a_16_bit_file_to_16_bits_passes_bit_exactly_with_passthrough(tmp_path, shaping):
    rng = np.random.default_rng(4)
    codes = np.clip(np.round(rng.standard_normal((RATE, 2)) * 3000), -32768, 32767).astype(np.int16)
    sf.write(tmp_path / "in.wav", codes, RATE, subtype="PCM_16")
    preset = tmp_path / "p.yaml"
    preset.write_text(f"chain:\n  - requantize: {{bits: 16, shaping: {shaping}, passthrough_exact: true}}\n")
    assert main(["render", str(preset), str(tmp_path / "in.wav"), str(tmp_path / "out.wav")]) == 0
    out, _ = sf.read(tmp_path / "out.wav", dtype="int16")
    assert np.array_equal(out, codes)
    # Without it the file is dithered again (SoX passes it by default; rtq asks).
    plain = tmp_path / "plain.yaml"
    plain.write_text(f"chain:\n  - requantize: {{bits: 16, shaping: {shaping}}}\n")
    assert main(["render", str(plain), str(tmp_path / "in.wav"), str(tmp_path / "dithered.wav")]) == 0
    assert not np.array_equal(sf.read(tmp_path / "dithered.wav", dtype="int16")[0], codes)


def test_passthrough_dithers_input_off_the_grid_and_returns_after_32_samples_on_it():
    x = np.zeros((4000, 1))
    x[1000:2000, 0] = 0.25 + 2.0 ** -20          # off the 16-bit grid
    x[2000:, 0] = 0.25                           # on it again
    y = Chain([Requantize(16, "tpdf", passthrough_exact=True)], seed=3)(x, RATE)
    plain = Chain([Requantize(16, "tpdf")], seed=3)(x, RATE)
    assert np.array_equal(y[:1000], x[:1000])                     # silence passes (it is on the grid)
    assert np.array_equal(y[1000:2031], plain[1000:2031])         # dithered until 32 samples lie on the grid
    assert np.array_equal(y[2031:], x[2031:])


@pytest.mark.parametrize("shaping", ["high-shibata", "shibata", "gesemann", "lipshitz"])
def test_a_full_scale_square_wave_counts_no_clips_with_the_limit(shaping):
    top = 1.0 - 2.0 ** -15                                       # the largest 16-bit code
    square = np.where(np.sin(2 * np.pi * 100 * np.arange(RATE) / RATE) >= 0, top, -1.0)
    x = np.stack([square, -square], axis=1)
    limited = Chain([Requantize(16, "tpdf", shaping=shaping, limit=True)], seed=5)
    y = limited(x, RATE)
    counts = limited.counts()
    assert counts.clips == [0, 0]
    plain = Chain([Requantize(16, "tpdf", shaping=shaping)], seed=5)
    plain(x, RATE)
    # Without the limit the shaped noise clips about every other sample; the limited chain
    # says how often it would have, with its own dither and filter state: fewer than the
    # unlimited run clips, whose clamped errors push further samples over (measured: 72 %
    # of them for lipshitz, 95-98 % for the shibata tables, 87-95 % for gesemann).
    for would, did in zip(counts.limited, plain.counts().clips):
        assert 0.6 * did <= would <= did and would > 15000
    # The limit takes at most the last fraction of a dB, and leaves the rest alone.
    assert np.max(np.abs(y)) <= 1.0
    quiet = np.abs(x[:, 0]) < 0.5
    assert not np.any(quiet)        # a square wave has no quiet samples; a sine below the knee:
    sine = 0.9 * np.sin(2 * np.pi * 997 * np.arange(RATE) / RATE)[:, None]
    assert np.array_equal(Chain([Requantize(16, "tpdf", shaping=shaping, limit=True)], seed=5)(sine, RATE),
                          Chain([Requantize(16, "tpdf", shaping=shaping)], seed=5)(sine, RATE))


def test_the_limit_is_the_last_fraction_of_a_db():
    stage = Requantize(16, "tpdf", shaping="high-shibata", limit=True)
    knee, ceiling = stage.limit_range(stage.error_filter(RATE))
    full = 32768.0
    assert -0.1 < 20 * np.log10(knee / full) < -0.05       # measured: knee -0.083 dBFS
    assert -0.05 < 20 * np.log10(ceiling / full) < -0.03   # ceiling -0.041 dBFS
    assert "soft limit from -0.0826 dBFS to a ceiling of -0.0412 dBFS" in stage.info_line(RATE, RATE)
    with pytest.raises(PresetError, match="the limit needs .* LSB of headroom at 4 bits"):
        Chain([Requantize(4, "tpdf", shaping="high-shibata", limit=True)])(np.zeros(10), RATE)


def test_render_reports_what_the_limit_kept_from_clipping(tmp_path, capsys):
    top = 1.0 - 2.0 ** -15
    square = np.where(np.sin(2 * np.pi * 100 * np.arange(RATE) / RATE) >= 0, top, -1.0)
    sf.write(tmp_path / "in.wav", square, RATE, subtype="FLOAT")
    preset = tmp_path / "p.yaml"
    preset.write_text("chain:\n  - requantize: {bits: 16, shaping: high-shibata, limit: true}\n")
    assert main(["render", str(preset), str(tmp_path / "in.wav"), str(tmp_path / "out.wav")]) == 0
    err = capsys.readouterr().err
    assert "kept from clipping by the limit (the shaped noise would have clipped them)" in err
    assert "clipped (" not in err


def test_features_off_use_the_unguarded_op_and_presets_validate_them():
    from rtq.program import OP_REQUANTIZE, OP_REQUANTIZE_GUARDED

    plain = Chain([Requantize(16, "tpdf", shaping="shibata")]).prepare(RATE, 2, 64)
    guarded = Chain([Requantize(16, "tpdf", shaping="shibata", auto_blank=0.5)]).prepare(RATE, 2, 64)
    assert plain.program.ops[1, 0] == OP_REQUANTIZE
    assert guarded.program.ops[1, 0] == OP_REQUANTIZE_GUARDED
    assert guarded.program.istate.size == plain.program.istate.size + 2 * GUARD_WORDS
    for text, message in (("auto_blank: -1", "requantize.auto_blank must be a finite number from 0 to 3600"),
                          ("limit: yes please", "requantize.limit must be true or false"),
                          ("passthrough_exact: 1", "requantize.passthrough_exact must be true or false")):
        with pytest.raises(PresetError, match=message):
            parse_preset(f"chain:\n  - requantize: {{bits: 16, {text}}}\n", "p.yaml")
    stage = Requantize(16, "tpdf", auto_blank=0.5, passthrough_exact=True, limit=True)
    assert stage.label() == "requantize 16-bit tpdf auto-blank passthrough limit"
