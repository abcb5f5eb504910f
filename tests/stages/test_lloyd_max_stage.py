"""``quantize: {law: lloyd-max}``: presets, constructors, the kernel, the meter, and
``rtq train`` writing what the stage reads."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from rtq import Chain, Quantize
from rtq.cli import main
from rtq.dsp.lloyd_max import design_for_pdf
from rtq.errors import PresetError
from rtq.levels_file import read_levels
from rtq.meter.chain_meter import ChainMeter
from rtq.presets import parse_preset

LEVELS = design_for_pdf("laplacian", 8, 0.1, (-1.0, 1.0)).levels.tolist()


def laplacian(frames, channels=2, rms=0.1, seed=0):
    x = np.random.default_rng(seed).laplace(size=(frames, channels)) * rms / math.sqrt(2)
    return np.clip(x, -1.0, 1.0)


def test_each_sample_becomes_the_nearest_level():
    x = laplacian(20000)
    y = Chain([Quantize("lloyd-max", levels=LEVELS)])(x, 48000)
    nearest = np.asarray(LEVELS)[np.argmin(np.abs(x[..., None] - np.asarray(LEVELS)), axis=-1)]
    assert np.array_equal(y, nearest)


def test_output_does_not_depend_on_the_block_size():
    x = laplacian(10000)
    whole = Chain([Quantize("lloyd-max", levels=LEVELS)])(x, 48000)
    chain = Chain([Quantize("lloyd-max", levels=LEVELS)]).prepare(48000, 2, 37)
    y = x.copy()
    for start in range(0, len(y), 1001):
        chain.process(y[start:start + 1001])
    assert np.array_equal(y, whole)


def test_live_output_equals_offline_rendering():
    from tests.live.test_engine_core import make_engine, pump

    x = laplacian(6000, seed=3).astype(np.float32)
    chain = lambda: Chain([Quantize("lloyd-max", levels=LEVELS)])
    expected = chain()(x.astype(np.float64), 48000).astype(np.float32)
    assert len(np.unique(expected)) == len(LEVELS)
    assert np.array_equal(pump(make_engine(chain()), x, [64, 17, 1]), expected)


def test_input_beyond_full_scale_takes_the_outer_level_and_counts_as_clipped():
    chain = Chain([Quantize("lloyd-max", levels=[-0.5, 0.5])])
    y = chain(np.array([[-1.5], [2.0], [0.9], [1.0]]), 48000)
    assert y[:, 0].tolist() == [-0.5, 0.5, 0.5, 0.5]
    assert chain.counts()[0] == [2]


def test_the_meter_reads_mse_psnr_snr_of_a_non_uniform_quantizer_and_its_levels_in_use():
    x = laplacian(50000)
    chain = Chain([Quantize("lloyd-max", levels=LEVELS)]).prepare(48000, 2, 4096, taps=True)
    meter = ChainMeter(chain)
    y = x.copy()
    for start in range(0, len(y), 4096):
        chain.process(y[start:start + 4096])
        meter.poll()
    stage = meter.report()["stages"][0]
    e = y - x
    mse = np.mean(e ** 2, axis=0)
    assert stage["stage"] == "quantize lloyd-max 8 levels"
    assert stage["frames"] == len(x)
    assert np.allclose(stage["mse"], mse, rtol=1e-12)
    assert np.allclose(stage["psnr_db"], 10 * np.log10(1 / mse), atol=1e-9)
    assert np.allclose(stage["snr_db"], 10 * np.log10(np.sum(x ** 2, axis=0) / np.sum(e ** 2, axis=0)), atol=1e-9)
    histogram = stage["level_histogram"]
    assert histogram["levels"] == LEVELS
    expected = [np.bincount(np.searchsorted(LEVELS, y[:, c]), minlength=8).tolist() for c in range(2)]
    assert histogram["count"] == expected and histogram["in_use"] == [8, 8]
    assert stage["off_grid"] == [0, 0]


@pytest.mark.parametrize("text, message", [
    ("{law: lloyd-max}", "quantize with law lloyd-max needs 'levels' (a sorted list) or 'bits' and 'trained'"),
    ("{law: lloyd-max, levels: [0.1, 0.1]}", "quantize.levels[1] must be above the level before it (0.1)"),
    ("{law: lloyd-max, levels: [0.1, 1.5]}", "quantize.levels[1] must be a finite number from -1 to 1, got 1.5"),
    ("{law: lloyd-max, levels: [0.5]}", "quantize.levels must be a list of 2 to 65536 finite numbers, got a list of 1 item"),
    ("{law: lloyd-max, bits: 2, levels: [-0.5, 0.5]}", "quantize.levels must hold 2^bits = 4 levels, got 2"),
    ("{law: mu-law, levels: [-0.5, 0.5]}", "quantize.levels applies only to law lloyd-max"),
    ("{law: a-law, bits: 4}", "quantize.bits must be 8, got 4"),
    ("{law: lloyd-max, bits: 2, trained: missing.yaml}", "quantize.trained: missing.yaml: cannot read levels file"),
])
def test_presets_refuse_what_the_constructor_refuses(text, message):
    with pytest.raises(PresetError, match="p.yaml:2:") as err:
        parse_preset(f"chain:\n  - quantize: {text}\n", "p.yaml")
    assert message in str(err.value)
    with pytest.raises(ValueError) as err:
        Quantize(**yaml.safe_load(text))
    assert message in str(err.value)


def test_trained_levels_are_read_relative_to_the_preset(tmp_path, monkeypatch):
    folder = tmp_path / "presets"
    folder.mkdir()
    (folder / "levels.yaml").write_text("law: lloyd-max\nbits: 1\nlevels: [-0.25, 0.75]\n")
    (folder / "p.yaml").write_text("chain:\n  - quantize: {law: lloyd-max, bits: 1, trained: levels.yaml}\n")
    monkeypatch.chdir(tmp_path)
    chain = Chain.from_preset("presets/p.yaml")
    assert chain(np.array([0.0, 0.3, -0.9]), 48000).tolist() == [-0.25, 0.75, -0.25]   # threshold 0.25


def test_a_broken_levels_file_is_named_at_its_own_line(tmp_path):
    (tmp_path / "levels.yaml").write_text("law: lloyd-max\nbits: 1\nlevels: [0.5, 0.25]\n")
    (tmp_path / "p.yaml").write_text("chain:\n  - quantize: {law: lloyd-max, bits: 1, trained: levels.yaml}\n")
    with pytest.raises(PresetError) as err:
        Chain.from_preset(str(tmp_path / "p.yaml"))
    assert str(err.value) == (f"{tmp_path}/p.yaml:2:50: quantize.trained: levels.yaml:3:15: levels[1] must be above the "
                              "level before it (0.5): levels are sorted and distinct, got 0.25")


def _write_noise(path, frames=96000, channels=2, seed=3):
    sf.write(path, laplacian(frames, channels, seed=seed), 48000, subtype="PCM_24")


def test_rtq_train_writes_levels_the_preset_uses_and_prints_the_figures(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _write_noise("a.wav")
    assert main(["train", "a.wav", "--bits", "3", "-o", "levels.yaml"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Lloyd-Max, 8 levels (3 bits), trained on 192000 samples (2.0 s) of a.wav")
    design, uniform = out[1], out[2]
    assert design.startswith("lloyd-max MSE ") and "SNR" in design and "PSNR" in design
    assert uniform.startswith("uniform 3-bit grid MSE ")
    levels = read_levels("levels.yaml")
    assert levels.bits == 3 and len(levels.sets) == 1 and len(levels.sets[0]) == 8
    # The printed MSE is the design's over the file, as the stage quantizes it.
    x, _ = sf.read("a.wav")
    y = Chain([Quantize("lloyd-max", bits=3, trained="levels.yaml")])(x, 48000)
    printed = float(design.split()[2].rstrip(","))
    assert np.mean((y - x) ** 2) == pytest.approx(printed, rel=1e-3)
    uniform_y = np.clip(np.rint(x * 4), -4, 3) / 4
    assert np.mean((uniform_y - x) ** 2) == pytest.approx(float(uniform.split()[4].rstrip(",")), rel=1e-3)
    # Levels are float32 values: a float file holds the quantizer's output exactly.
    assert all(np.float32(v) == v for v in levels.sets[0])


def test_rtq_train_never_replaces_a_file_without_force(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _write_noise("a.wav")
    Path("levels.yaml").write_text("mine\n")
    assert main(["train", "a.wav", "--bits", "2", "-o", "levels.yaml"]) == 2
    assert "levels.yaml exists; use --force" in capsys.readouterr().err
    assert Path("levels.yaml").read_text() == "mine\n"
    assert main(["train", "a.wav", "--bits", "2", "-o", "levels.yaml", "--force"]) == 0
    assert read_levels("levels.yaml").bits == 2
    assert [p.name for p in tmp_path.iterdir()] == sorted(["a.wav", "levels.yaml"], reverse=True) or \
        sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "levels.yaml"]


def test_training_streams_files_of_any_length_and_split_files_train_alike(tmp_path, monkeypatch):
    """The histogram does not depend on how the data arrive: one file, or the same samples
    in two files, give the same levels; --max-seconds reads that much of each."""
    monkeypatch.chdir(tmp_path)
    x = laplacian(150000, 1)
    sf.write("whole.wav", x, 48000, subtype="FLOAT")
    sf.write("first.wav", x[:70001], 48000, subtype="FLOAT")
    sf.write("second.wav", x[70001:], 48000, subtype="FLOAT")
    assert main(["train", "whole.wav", "--bits", "4", "-o", "one.yaml"]) == 0
    assert main(["train", "first.wav", "second.wav", "--bits", "4", "-o", "two.yaml"]) == 0
    assert read_levels("one.yaml").sets == read_levels("two.yaml").sets
    assert main(["train", "whole.wav", "--bits", "4", "--max-seconds", "1", "-o", "head.yaml"]) == 0
    sf.write("head.wav", x[:48000], 48000, subtype="FLOAT")
    assert main(["train", "head.wav", "--bits", "4", "-o", "head2.yaml"]) == 0
    assert read_levels("head.yaml").sets == read_levels("head2.yaml").sets


def test_each_channel_gets_its_own_levels(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    x = laplacian(60000)
    x[:, 1] *= 0.1
    sf.write("a.wav", x, 48000, subtype="FLOAT")
    assert main(["train", "a.wav", "--bits", "2", "--channels", "each", "-o", "levels.yaml"]) == 0
    levels = read_levels("levels.yaml")
    assert len(levels.sets) == 2 and max(levels.sets[1]) < 0.3 * max(levels.sets[0])
    chain = Chain([Quantize("lloyd-max", bits=2, trained="levels.yaml")])
    y = chain(x, 48000)
    assert set(y[:, 0]) <= set(levels.sets[0]) and set(y[:, 1]) <= set(levels.sets[1])
    with pytest.raises(PresetError, match="2 sets of levels .one per channel. for a stream of 1 channel"):
        chain(x[:, :1], 48000)


def test_rtq_train_for_a_distribution(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--pdf", "laplacian", "--rms-dbfs", "-20", "--bits", "3", "-o", "l.yaml"]) == 0
    out = capsys.readouterr().out
    assert "lloyd-max MSE 0.000544338, SNR 12.64 dB" in out     # Paez and Glisson's 12.64 dB (scaled)
    levels = np.array(read_levels("l.yaml").sets[0])
    # Conditioned on full scale (10 sigma), the outer level moves by 5e-5.
    assert np.allclose(levels[4:], np.array([0.2334, 0.8330, 1.6725, 3.0867]) * 0.1, atol=1e-4)


@pytest.mark.parametrize("argv, message", [
    (["--bits", "17", "-o", "l.yaml", "a.wav"], "--bits must be a whole number from 1 to 16"),
    (["--bits", "4", "-o", "l.yaml"], "give INPUT files to train on"),
    (["--bits", "4", "-o", "l.yaml", "--pdf", "gaussian", "a.wav"], "give INPUT files or --pdf, not both"),
    (["--bits", "4", "-o", "l.yaml", "--max-seconds", "0", "a.wav"], "--max-seconds must be a positive number"),
    (["--bits", "4", "-o", "l.yaml", "missing.wav"], "missing.wav: no such file"),
])
def test_rtq_train_refuses_in_one_line(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    _write_noise("a.wav", 1000)
    assert main(["train", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.splitlines()) == 1
    assert not Path("l.yaml").exists()
