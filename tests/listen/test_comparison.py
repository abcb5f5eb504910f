"""Comparison without an audio server (the null stream, or its callback driven block by
block): level matching against BS.1770 (pyloudnorm), the callback-cost refusal, the
history of what was played, the playhead."""
from __future__ import annotations

import numpy as np
import pytest

from rtq.chain import Chain
from rtq.live.nullstream import NullStream
from rtq.listen.comparison import Comparison, TooHeavy
from rtq.listen.level import linear, loudness_lufs
from rtq.stages import Gain

from live.expected import FADE, RATE, music


def null_stream(blocksize=64):
    def factory(callback, words):
        return NullStream(callback, samplerate=RATE, blocksize=blocksize, channels=2, user_words=words)
    return factory


def conditions():
    return {"original": None, "shaped": Chain.from_preset("cd-16-shibata"),
            "quieter": Chain([Gain(-4.5)]), "louder": Chain([Gain(2.0), *Chain.from_preset("tpdf-16").stages])}


def test_level_matching_brings_every_condition_within_0_1_db_of_the_reference():
    x = music(4 * RATE)
    loop = (0.5, 3.5)
    with Comparison(conditions(), x, samplerate=RATE, loop=loop, stream=null_stream()) as comparison:
        gains, lufs = comparison.gains_db, comparison.loudness_lufs
        region = x[RATE // 2:7 * RATE // 2]
        reference = loudness_lufs(region, RATE)
        assert lufs["original"] == pytest.approx(reference, abs=1e-9) and gains["original"] == 0.0
        assert gains["quieter"] == pytest.approx(4.5, abs=0.01) and gains["louder"] == pytest.approx(-2.0, abs=0.01)
        for name, chain in conditions().items():
            heard = linear(gains[name]) * (chain or Chain([]))(region, RATE)
            assert abs(loudness_lufs(heard, RATE) - reference) < 0.1, name
        assert list(comparison.engine.gains) == [linear(gains[name]) for name in comparison.names]


def test_without_level_matching_every_gain_is_one():
    with Comparison(conditions(), music(RATE), samplerate=RATE, level_match=False,
                    stream=null_stream()) as comparison:
        assert set(comparison.gains_db.values()) == {0.0} and np.all(comparison.engine.gains == 1.0)


def test_a_silent_loop_region_cannot_be_level_matched():
    x = np.zeros((RATE, 2))
    with pytest.raises(Exception, match="cannot level-match the loop region: .* is silent"):
        Comparison(conditions(), x, samplerate=RATE, stream=null_stream())


def test_conditions_too_heavy_for_real_time_are_refused_naming_the_heaviest():
    chains = {"light": Chain([Gain(-1)]), "heavy": Chain.from_preset("dsd64-1bit")}
    with pytest.raises(TooHeavy) as refused:
        Comparison(chains, music(RATE), samplerate=RATE, stream=null_stream(), max_load=0.001)
    message = str(refused.value)
    assert "\n" not in message and "heaviest: heavy" in message and "rtq listen export" in message
    assert refused.value.costs["heavy"] > refused.value.costs["light"] > 0
    assert refused.value.cost > 0.001


def test_measuring_the_cost_leaves_a_fresh_state():
    """The measurement runs the real callback, then rewinds: the first sound is still
    the loop's start, through chains that start from scratch."""
    x = music(RATE)
    with Comparison({"shaped": Chain.from_preset("cd-16-shibata")}, x, samplerate=RATE, level_match=False,
                    stream=null_stream()) as comparison:
        assert comparison.callback_cost > 0
        assert comparison.stream_info() == {"devices": None, "blocksize": 64, "output_latency_s": 0.0}
        engine = comparison.engine
        assert engine.frames == 0 and engine.frozen and comparison.position == 0.0
        comparison.select("shaped")
        call, ctl = engine.stream._callback.ctypes, engine.stream.ctl.ctypes.data
        out = np.zeros((4096, 2), np.float32)
        inp = np.zeros_like(out)
        call(inp.ctypes.data, out.ctypes.data, 4096, 0, 0, ctl)
        render = Chain.from_preset("cd-16-shibata")(x, RATE).astype(np.float32)
        assert np.array_equal(out[FADE:], render[FADE:4096])


def test_played_history_and_playhead():
    x = music(2 * RATE)
    with Comparison({"A": None, "B": Chain([Gain(-1)])}, x, samplerate=RATE, loop=(0.25, 1.25),
                    stream=null_stream(), level_match=False) as comparison:
        engine = comparison.engine
        call, ctl = engine.stream._callback.ctypes, engine.stream.ctl.ctypes.data
        buf = np.zeros((64, 2), np.float32)

        def play(blocks):
            for _ in range(blocks):
                call(buf.ctypes.data, buf.ctypes.data, 64, 0, 0, ctl)

        assert comparison.selected is None and comparison.loop == (0.25, 1.25)
        comparison.select("A")
        play(100)
        assert comparison.position == pytest.approx(0.25 + 100 * 64 / RATE)
        comparison.select("B")
        play(100)
        comparison.pause()
        play(20)
        assert comparison.selected is None and engine.frozen
        played = comparison.played
        assert played == [("A", 0, 100 * 64 + FADE), ("B", 100 * 64 + FADE, played[1][2])]
        assert 100 * 64 - FADE < played[1][2] <= 100 * 64
        comparison.start()            # starts the (null) stream, resuming B
        assert comparison.selected == "B"
        with pytest.raises(ValueError, match="no condition 'C'"):
            comparison.select("C")
        with pytest.raises(ValueError, match="shorter than 0.5 s"):
            comparison.loop = (0.5, 0.9)


def test_a_live_input_is_level_matched_on_the_pink_noise_stand_in():
    """The sound card's input is unknown in advance: the gains come from 10 s of pink
    noise at -23 LUFS; a low-pass anchor loses its top octaves, so it gains."""
    from rtq.listen.level import STAND_IN_LUFS

    with Comparison({"original": None, "anchor": Chain.from_preset("lowpass-3500")}, "live", samplerate=RATE,
                    stream=null_stream()) as comparison:
        assert comparison.live_input and comparison.loudness_lufs["original"] == pytest.approx(STAND_IN_LUFS)
        # The gain is the stand-in's loudness over the anchor's output, measured here
        # with pyloudnorm directly (BS.1770-4): a 3.5 kHz low-pass of pink noise gains.
        import pyloudnorm

        from rtq.listen.level import stand_in

        noise = stand_in(RATE, 2)
        meter = pyloudnorm.Meter(RATE)
        expected = meter.integrated_loudness(noise) - meter.integrated_loudness(
            Chain.from_preset("lowpass-3500")(noise, RATE))
        assert expected > 1.0
        assert comparison.gains_db["anchor"] == pytest.approx(expected, abs=1e-9)
        assert comparison.position == 0.0 and not comparison.engine.frozen
        with pytest.raises(ValueError, match="no loop points"):
            comparison.loop = (0.0, 1.0)
