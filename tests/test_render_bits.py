"""``rtq render --bits N|auto``: the chain's last requantize set to the output's word
length, and no second dither for a file already at or below it unless asked."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from signals import make_signal

from rtq import Chain, Requantize
from rtq.cli import main

RATE = 44100


def rtq(argv, capsys) -> tuple[int, list[str]]:
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert out == ""
    return status, err.splitlines()


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    x = np.clip(make_signal(3000, 2, seed=4), -0.99, 0.99)
    sf.write("hires.wav", x, RATE, subtype="FLOAT")            # off every integer grid
    sf.write("in24.wav", x, RATE, subtype="PCM_24")
    return tmp_path


def test_auto_requantizes_to_the_subtype_asked_for(work, capsys):
    """tpdf-24 rendered with --bits auto --subtype PCM_16 is the same chain at 16 bits."""
    status, lines = rtq(["render", "tpdf-24", "in24.wav", "out.wav", "--bits", "auto", "--subtype", "PCM_16"],
                        capsys)
    assert status == 0, lines
    assert sf.info("out.wav").subtype == "PCM_16"
    x = sf.read("in24.wav")[0]
    expected = Chain([Requantize(16, "tpdf")], seed=Chain.from_preset("tpdf-24").seed)(x, RATE)
    assert np.array_equal(sf.read("out.wav")[0], expected)
    assert len(np.unique(expected)) > 1000 and not np.array_equal(expected, np.round(x * 2 ** 23) / 2 ** 23)


@pytest.mark.parametrize("output,subtype,bits", [("out.wav", "PCM_16", 16), ("out.flac", "PCM_16", 16),
                                                  ("out.aiff", "PCM_16", 16)])
def test_auto_takes_the_containers_default_for_a_float_input(work, capsys, output, subtype, bits):
    status, lines = rtq(["render", "cd-16-shibata", "hires.wav", output, "--bits", "auto"], capsys)
    assert status == 0, lines
    assert sf.info(output).subtype == subtype
    assert np.array_equal(sf.read(output)[0], Chain.from_preset("cd-16-shibata")(sf.read("hires.wav")[0], RATE))


def test_auto_keeps_the_inputs_word_length_and_so_refuses_to_redither_it(work, capsys):
    status, lines = rtq(["render", "tpdf-16", "in24.wav", "out.flac", "--bits", "auto"], capsys)
    assert status == 2 and len(lines) == 1
    assert lines[0] == ("rtq: in24.wav is 24-bit PCM, at or below the output's 24 bits (PCM_24): dithering it "
                        "again only adds noise; --redither does it anyway")
    assert not (work / "out.flac").exists()


@pytest.mark.parametrize("subtype", ["PCM_16", "FLOAT", "PCM_24"])
def test_a_file_already_on_the_grid_is_refused_whatever_its_container(work, capsys, subtype):
    """16-bit material, in a 16-bit, float or 24-bit file, is not dithered to 16 bits again
    (every sample is read to know: one sample off the grid would make it high-resolution)."""
    x = np.round(sf.read("hires.wav")[0] * 2 ** 15) / 2 ** 15
    sf.write("cd.wav", x, RATE, subtype=subtype)
    status, lines = rtq(["render", "tpdf-24", "cd.wav", "out.wav", "--bits", "auto", "--subtype", "PCM_16"],
                        capsys)
    assert status == 2 and len(lines) == 1
    why = "cd.wav is 16-bit PCM" if subtype == "PCM_16" else "every sample of cd.wav lies on the 16-bit grid"
    assert lines[0].startswith(f"rtq: {why}, at or below the output's 16 bits (PCM_16)")
    assert not (work / "out.wav").exists()
    # One sample off the grid, the last: dithered.
    x[-1, 1] += 2.0 ** -20
    sf.write("cd.wav", x, RATE, subtype="FLOAT")
    status, lines = rtq(["render", "tpdf-24", "cd.wav", "out.wav", "--bits", "auto", "--subtype", "PCM_16"],
                        capsys)
    assert status == 0, lines


def test_redither_dithers_it_anyway(work, capsys):
    x = np.round(sf.read("hires.wav")[0] * 2 ** 15) / 2 ** 15
    sf.write("cd.wav", x, RATE, subtype="PCM_16")
    status, lines = rtq(["render", "tpdf-24", "cd.wav", "out.wav", "--bits", "auto", "--redither"], capsys)
    assert status == 0, lines
    y = sf.read("out.wav")[0]
    assert sf.info("out.wav").subtype == "PCM_16"
    assert np.array_equal(y, Chain([Requantize(16, "tpdf")], seed=Chain.from_preset("tpdf-24").seed)(x, RATE))
    # Input on the grid plus TPDF dither (+-1 LSB) rounds to +-1 LSB where |dither| > 1/2,
    # a quarter of the time: error power q^2/4 (the same as off the grid), all of it added noise.
    e = (y - x) * 2 ** 15
    assert set(np.unique(e)) == {-1.0, 0.0, 1.0}
    assert np.mean(e ** 2) == pytest.approx(0.25, rel=0.05)


def test_bits_n_sets_the_last_requantize(work, capsys):
    status, lines = rtq(["render", "cd-16-shibata", "hires.wav", "out.wav", "--bits", "12"], capsys)
    assert status == 0, lines
    x = sf.read("hires.wav")[0]
    spec = Chain.from_preset("cd-16-shibata")
    expected = Chain([*spec.stages[:-1], spec.stages[-1].replaced(bits=12)], seed=spec.seed)(x, RATE)
    y = sf.read("out.wav")[0]
    assert np.array_equal(y, expected)
    assert np.array_equal(y * 2 ** 11, np.round(y * 2 ** 11))
    assert sf.info("out.wav").subtype == "PCM_16"


@pytest.mark.parametrize("argv,message", [
    (["tpdf-16", "hires.wav", "out.wav", "--bits", "sixteen"], "--bits must be a whole number of bits or auto"),
    (["tpdf-16", "hires.wav", "out.wav", "--bits", "40"], "--bits: "),
    (["tpdf-16", "hires.wav", "out.wav", "--redither"], "--redither applies only with --bits auto"),
    (["telephone-alaw", "hires.wav", "out.wav", "--bits", "auto"], "must be a requantize; this chain ends with"),
    (["tpdf-16", "hires.wav", "out.wav", "--bits", "auto", "--subtype", "FLOAT"],
     "--bits auto requantizes to an integer PCM subtype's grid; FLOAT has none"),
])
def test_refusals_are_one_line(work, capsys, argv, message):
    status, lines = rtq(["render", *argv], capsys)
    assert status == 2 and len(lines) == 1, lines
    assert lines[0].startswith("rtq: ") and message in lines[0], lines
    assert not (work / "out.wav").exists()
