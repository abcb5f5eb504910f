"""The shipped presets of issue 20: the 4-bit Lloyd-Max speech preset (its levels remade by
the commands in its description), NICAM-style block companding 14 to 10 bits, and the
mastering preset with auto-blank and the limit.  Their figures are the README's."""
from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from rtq import Chain, Requantize
from rtq.cli import main
from rtq.meter.chain_meter import ChainMeter
from rtq.presets import load_preset

REPO = Path(__file__).resolve().parent.parent


def db(power_ratio: float) -> float:
    return 10.0 * math.log10(power_ratio)


# --- speech-lloyd-max-4 -------------------------------------------------------------------

@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """The preset's training signal and ``rtq train``'s design on it, made by the commands
    its description gives (run in a fresh folder)."""
    folder = tmp_path_factory.mktemp("speech")
    description = load_preset("speech-lloyd-max-4").description
    commands = re.search(r"made with: (.*)\)$", description).group(1)
    assert commands == "python3 tools/speech_signal.py speech.wav && rtq train speech.wav --bits 4 -o speech-4.yaml"
    generate, train = commands.split(" && ")
    subprocess.run([sys.executable, str(REPO / generate.split()[1]), *generate.split()[2:]], cwd=folder, check=True,
                   timeout=120)
    import os
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        assert main(train.split()[1:]) == 0
    finally:
        os.chdir(cwd)
    x, rate = sf.read(folder / "speech.wav")
    return x, rate, yaml.safe_load((folder / "speech-4.yaml").read_text())


def test_the_speech_presets_levels_are_what_its_training_commands_make(speech, capsys):
    _, _, trained = speech
    shipped = load_preset("speech-lloyd-max-4").chain[0].params
    assert shipped["bits"] == trained["bits"] == 4
    # One set, for every channel; equal here, and within 1e-6 anywhere (a CPU whose NumPy
    # sums in another order may move a float32 level by an ulp; the levels lie 0.02 apart).
    assert len(shipped["levels"]) == 1
    np.testing.assert_allclose(shipped["levels"][0], trained["levels"], rtol=0, atol=1e-6)


def test_on_its_training_speech_lloyd_max_beats_the_uniform_4_bit_grid_by_8_5_db(speech):
    """The meter's SNR for the preset equals the direct computation, and the trainer's
    figure; a uniform 4-bit grid (rtq's, undithered) over the same speech is 8.5 dB worse."""
    x, rate, _ = speech
    y = Chain.from_preset("speech-lloyd-max-4")(x, rate)
    levels = np.asarray(load_preset("speech-lloyd-max-4").chain[0].params["levels"][0])
    nearest = levels[np.argmin(np.abs(x[:, None] - levels[None, :]), axis=1)]
    assert np.array_equal(y, nearest)
    snr = db(np.mean(x ** 2) / np.mean((y - x) ** 2))
    uniform = Chain([Requantize(4, "none")])(x, rate)
    snr_uniform = db(np.mean(x ** 2) / np.mean((uniform - x) ** 2))
    assert snr == pytest.approx(17.92, abs=0.005)
    assert snr_uniform == pytest.approx(9.39, abs=0.005)
    assert snr - snr_uniform == pytest.approx(8.52, abs=0.01)
    assert "8.5 dB more SNR than a uniform 4-bit grid" in load_preset("speech-lloyd-max-4").description


@pytest.mark.parametrize("gain_db,snr_db,uniform_db", [(-10.0, 12.29, 2.54), (-20.0, 4.86, 0.02), (6.0, 11.91, 14.52)])
def test_away_from_its_training_level_the_speech_design_helps_less_or_hurts(speech, gain_db, snr_db, uniform_db):
    """10 dB quieter the levels still beat the uniform grid by 9.75 dB; 6 dB louder the
    speech overloads the outer levels (0.52 of full scale) and the uniform grid wins by
    2.6 dB: a Lloyd-Max design is for the level it was trained at."""
    x, rate, _ = speech
    x = x * 10 ** (gain_db / 20)
    y = Chain.from_preset("speech-lloyd-max-4")(x, rate)
    uniform = Chain([Requantize(4, "none")])(x, rate)
    assert db(np.mean(x ** 2) / np.mean((y - x) ** 2)) == pytest.approx(snr_db, abs=0.005)
    assert db(np.mean(x ** 2) / np.mean((uniform - x) ** 2)) == pytest.approx(uniform_db, abs=0.005)


# --- nicam-14-10 ----------------------------------------------------------------------------

RATE = 32000


def sine(dbfs: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return np.repeat((10 ** (dbfs / 20) * math.sqrt(2) * np.sin(2 * np.pi * 997.0 * t))[:, None], 2, axis=1)


def nicam_stages(x: np.ndarray):
    """The 14-bit PCM (the preset's first stage) and the preset's output, and the
    compander's scale counts."""
    chain = Chain.from_preset("nicam-14-10").prepare(RATE, 2, 4096, taps=True)
    meter = ChainMeter(chain)
    pcm = Chain.from_preset("nicam-14-10").stages[0]
    y = x.copy()
    chain.process(y)
    meter.poll()
    pcm14 = Chain([pcm], seed=chain.seed)(x, RATE)
    report = meter.report()["stages"][1]
    return pcm14, y[32:], report["scale_factors"]["blocks"]


def test_nicam_codes_quiet_program_losslessly_at_14_bits():
    """Below 2^-4 of full scale (a -30 dBFS sine: peak -27 dBFS), every block takes the
    finest scale, the 14-bit grid: the 14-bit PCM passes unchanged."""
    pcm14, y, blocks = nicam_stages(sine(-30))
    assert np.array_equal(y, pcm14[:len(y)])
    assert [row[-1] for row in blocks] == [RATE // 32] * 2 and sum(blocks[0]) == RATE // 32


@pytest.mark.parametrize("dbfs,scale,penalty_db", [(-6, 0, 24.12), (-12, 1, 18.20), (-18, 2, 12.55),
                                                   (-24, 3, 7.78)])
def test_nicam_loud_program_is_coded_at_10_bits_of_the_blocks_scale(dbfs, scale, penalty_db):
    """Above it, the compander rounds the 14-bit PCM, undithered, to the block's step
    q = M 14-bit steps (M = 2^(4 - scale)).  Its input takes M values per step, so the
    error takes M values (a tie, rounded half to even, at q/2): power q^2/12 (1 + 2/M^2),
    within 0.1 dB; that is 24.12 dB (the coarsest scale) .. 7.78 dB above the 14-bit
    grid's rounding noise q_14^2/12."""
    pcm14, y, blocks = nicam_stages(sine(dbfs))
    assert [row[scale] for row in blocks] == [sum(blocks[0])] * 2       # every block at that scale
    m = 2.0 ** (4 - scale)
    q14 = 2.0 ** -13
    e = y - pcm14[:len(y)]
    assert db(np.mean(e ** 2) / (q14 * q14 / 12)) == pytest.approx(penalty_db, abs=0.1)
    assert penalty_db == pytest.approx(db(m * m * (1 + 2 / m ** 2)), abs=0.005)


def test_nicam_preset_is_block_size_invariant_and_the_same_rendered(tmp_path, capsys):
    x = (sine(-18, 0.5) + 0.01 * np.random.default_rng(5).standard_normal((RATE // 2, 2))).astype(np.float32)
    x = x.astype(np.float64)
    whole = Chain.from_preset("nicam-14-10")(x, RATE)
    path = tmp_path / "in.wav"
    sf.write(path, x, RATE, subtype="FLOAT")
    for block in (1, 33, 4096):
        out = tmp_path / f"out{block}.wav"
        assert main(["render", "nicam-14-10", str(path), str(out), "--block-size", str(block)]) == 0
        assert sf.info(out).subtype == "PCM_16"
        y = sf.read(out)[0]
        assert np.array_equal(y, whole)
        assert not np.any(np.signbit(y) & (y == 0))
    assert not np.any(np.signbit(whole) & (whole == 0))     # no negative zeros: the file holds what the chain made


# --- mastering-16-auto-blank -------------------------------------------------------------------

def test_the_mastering_preset_blanks_the_gap_between_tracks_and_never_clips(tmp_path, capsys):
    rate = 44100
    t = np.arange(rate) / rate
    track = np.sign(np.sin(2 * np.pi * 441 * t))          # a full-scale square wave
    x = np.concatenate([track, np.zeros(2 * rate), 0.25 * track])
    x = np.repeat(x[:, None], 2, axis=1)
    path, out = tmp_path / "album.wav", tmp_path / "album16.wav"
    sf.write(path, x, rate, subtype="FLOAT")
    assert main(["render", "mastering-16-auto-blank", str(path), str(out)]) == 0
    err = capsys.readouterr().err
    assert not re.search(r"samples? clipped", err)
    assert re.fullmatch(r"rtq: \d+ samples kept from clipping by the limit \(the shaped noise would have clipped them\) "
                        r"\(ch1 \d+, ch2 \d+\)\n", err), err
    y = sf.read(out)[0]
    gap, delay = rate, rate // 2
    assert np.any(y[gap:gap + delay] != 0)                      # dither until 0.5 s of silence
    assert not np.any(y[gap + delay:3 * rate])                   # then exact zeros
    back = y[3 * rate:]                                          # and back with the next track
    assert np.count_nonzero(back) > 0.99 * len(back)
    assert np.max(np.abs(back - x[3 * rate:])) < 64 * 2.0 ** -15       # shaped dither, some 36 LSB peak
    # Without the limit, the same chain's shaped noise clips the square wave's samples.
    plain = Chain([Requantize(16, "tpdf", shaping="shibata")], seed=1).prepare(rate, 2, 4096)
    plain.process(x.copy())
    assert sum(plain.counts().clips) > 1000


# --- rtq info and rtq validate ------------------------------------------------------------------

@pytest.mark.parametrize("preset,lines", [
    ("speech-lloyd-max-4", ["  1. quantize lloyd-max, 16 levels (4 bits), no dither; levels -0.4261 .. 0.5223  [48000 Hz]",
                            "latency: 0 samples (0.000 ms)"]),
    ("nicam-14-10", ["  1. requantize to 14 bits, tpdf dither (1 LSB), no noise shaping  [48000 Hz]",
                     "  2. block companding to 10 bits in blocks of 32 samples (5 scales: steps 2^-9 .. 2^-13, a "
                     "14-bit range), no dither, no noise shaping; latency 32 samples  [48000 Hz]",
                     "latency: 32 samples (0.667 ms)"]),
    ("mastering-16-auto-blank", ["  1. requantize to 16 bits, tpdf dither (1 LSB), shibata shaping (48000 Hz table, 16 "
                                 "taps); auto-blank after 0.5 s of digital silence; soft limit from -0.0265 dBFS to a "
                                 "ceiling of -0.0132 dBFS  [48000 Hz]",
                                 "latency: 0 samples (0.000 ms)"]),
])
def test_info_and_validate_describe_the_new_quantizers(preset, lines, capsys):
    assert main(["info", preset]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[2:] == lines, out
    assert main(["validate", preset]) == 0
    verdict = capsys.readouterr().out
    assert verdict.startswith(f"{preset}: ok")
