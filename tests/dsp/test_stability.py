"""Maximum stable amplitude of designed-NTF loops (rtq.dsp.stability) and the overload
count before them (rtq.dsp.overload)."""
from __future__ import annotations

import numpy as np
import pytest

from rtq.chain import Chain
from rtq.stages import Gain, Oversample, Requantize

RATE = 768000.0      # the loops below run at this rate, their band scaled to keep the OSR


def loop(order, factor, bits=1, dither="none"):
    """A designed loop as it runs inside ``oversample`` x ``factor`` at 48 kHz (band
    20 kHz), at 768 kHz with the band scaled alike: the same NTF, the same MSA."""
    band = 20000.0 * RATE / (48000.0 * factor)
    chain = Chain([Requantize(bits, dither, shaping={"order": order, "band_hz": band})], seed=1)
    chain.prepare(RATE, 1, 8192)
    return chain, band / RATE, next(iter(chain.quantizer_info.values())).msa


def inband_sqnr(chain, band_fraction, level_db, segments=64, n=1 << 15, settle=4096):
    """In-band SQNR (tone against the rest of 0 .. B, periodic Blackman window) of each
    of ``segments`` consecutive runs of ``n`` samples of a tone at B/20."""
    k = int(round(band_fraction / 20 * n))
    t = np.arange(settle + segments * n)
    y = (10 ** (level_db / 20) * np.sin(2 * np.pi * k / n * t))[:, None].copy()
    chain.reset()
    chain.process(y)
    e = y[settle:, 0].reshape(segments, n)
    power = np.abs(np.fft.rfft(e * np.blackman(n + 1)[:-1], axis=1)) ** 2
    tone = power[:, k - 2:k + 3].sum(axis=1)
    noise = power[:, 1:int(band_fraction * n) + 1].sum(axis=1) - tone
    return 10 * np.log10(tone / noise), chain.counts()


@pytest.mark.parametrize("order, factor, msa_db", [(5, 64, -5.4), (7, 64, -6.1), (6, 32, -5.9), (4, 16, -4.0),
                                                   (3, 64, -3.0)])
def test_the_msa_marks_where_the_in_band_sqnr_collapses(order, factor, msa_db):
    """Over 2^21 samples (0.7 s at 3 MHz): 0.5 dB under the MSA the in-band SQNR of every
    2^15-sample stretch stays within 5 dB of its low-level trend (SQNR rising dB for dB;
    the floor rises a little near the MSA), and no sample is counted as an overload;
    1 dB over it the loop has fallen into its large limit cycle somewhere (at least
    20 dB under the trend: 23-120 dB measured), with every sample above it counted.
    (A 1-bit order-5 loop at 64x read 123.5 dB at -5 dB and 35 dB at -4 dB in a short
    run; its README claim was 'stable up to full scale'.)"""
    chain, band, msa = loop(order, factor)
    assert 20 * np.log10(msa) == pytest.approx(msa_db, abs=0.05)
    trend = np.median([np.median(inband_sqnr(chain, band, level, segments=4)[0]) - level for level in (-30, -26, -22)])
    level = 20 * np.log10(msa)
    below, counts = inband_sqnr(chain, band, level - 0.5)
    assert below.min() > trend + level - 0.5 - 5.0
    assert counts.overloads == [0] and counts.loop_resets == [0]
    above, counts = inband_sqnr(chain, band, level + 1.0)
    assert above.min() < trend + level + 1.0 - 20.0
    assert counts.overloads[0] > 0


def test_the_issue_s_loop_counts_overloads_between_its_msa_and_full_scale():
    """The 1-bit order-5 loop at 64x, 1 kHz tone: between 0.55 and 1.0 peak it neither
    reset nor said anything while its SNR collapsed (94.8 dB at 0.5, 48 dB at 0.6, 14 dB
    at 0.99).  Now every loop sample above its MSA (0.537 at 48 kHz) is counted."""
    t = np.arange(9600)[:, None] / 48000.0
    results = {}
    for peak in (0.5, 0.6, 0.99):
        chain = Chain([Oversample(64, [Requantize(1, "none", shaping={"order": 5})])])
        chain(peak * np.sin(2 * np.pi * 1000 * t) * np.ones((1, 2)), 48000)
        results[peak] = chain.counts()
        msa = next(iter(chain.quantizer_info.values())).msa
        assert msa == pytest.approx(0.537, abs=0.001)
    assert results[0.5].overloads == [0, 0]
    for peak in (0.6, 0.99):
        assert results[peak].loop_resets == [0, 0]          # still no reset, but counted:
        # the share of a sine's period above the MSA, 1 - (2/pi) asin(MSA / peak), of
        # the 64 x 9600 loop samples (29.5 % at 0.6, 63.5 % at 0.99)
        share = 1 - 2 / np.pi * np.arcsin(msa / peak)
        np.testing.assert_allclose(results[peak].overloads, share * 64 * 9600, rtol=0.01)


def test_the_overload_count_is_the_samples_above_the_msa():
    """A loop at the stream rate: the count is numpy's count of |x| > MSA, per channel."""
    chain = Chain([Gain(-1.0), Requantize(1, "none", shaping={"order": 3, "band_hz": 3000})])
    rng = np.random.default_rng(3)
    x = rng.uniform(-1.0, 1.0, (20000, 2)) * np.array([0.85, 1.0])
    chain(x, 48000)
    msa = next(iter(chain.quantizer_info.values())).msa
    expected = np.sum(np.abs(x * 10 ** (-1 / 20)) > msa, axis=0)
    assert 0 < expected[0] < expected[1]
    assert chain.counts().overloads == expected.tolist()
    assert 0.6 < msa < 0.9


def test_only_designed_loops_are_watched():
    for stage in (Requantize(16, "tpdf", shaping="shibata"), Requantize(8, "tpdf"),
                  Requantize(16, "tpdf", shaping={"coefficients": [1.0]})):
        chain = Chain([stage]).prepare(44100, 1, 64)
        info = next(iter(chain.quantizer_info.values()))
        assert info.msa is None and info.overload_op is None
        assert chain.counts().overloads == [0]


def test_msas_are_stored_like_the_designs(tmp_path, monkeypatch):
    """Simulated once, then read back (rtq.cache.stored_design): no simulation when stored."""
    from rtq.dsp import stability

    monkeypatch.setenv("RTQ_CACHE_DIR", str(tmp_path))
    stability._msa_db.cache_clear()                 # forget what this process has found
    _, _, simulated = loop(5, 64)
    assert len(list((tmp_path / "designs").glob("_msa_db-*.json"))) == 1

    def no_simulation(*args):
        raise AssertionError("simulated again")

    stability._msa_db.cache_clear()
    monkeypatch.setattr(stability, "_Loop", no_simulation)
    assert loop(5, 64)[2] == simulated == pytest.approx(0.537, abs=0.001)


def test_info_and_validate_tell_each_loop_s_headroom(tmp_path, capsys):
    """rtq info shows every designed loop's MSA and where a full-scale input reaches it;
    validate warns when full scale goes above it (the README said 'stable up to full
    scale' of the 1-bit order-5 loop)."""
    from rtq.cli import main

    assert main(["info", "dsd64-1bit", "--samplerate", "44100"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "sigma-delta loop 2.1 is stable up to 0.550 peak (-5.2 dB re full scale, at 2.8224 MHz); a full-scale "
        "input reaches it at 0.501 (-6.0 dB), 0.8 dB below")
    hot = tmp_path / "hot.yaml"
    hot.write_text("chain:\n  - gain: {db: -3}\n  - oversample:\n      factor: 64\n      chain:\n"
                   "        - requantize: {bits: 1, dither: none, shaping: {order: 5}}\n")
    assert main(["validate", "dsd64-1bit", str(hot)]) == 0
    assert capsys.readouterr().out == (
        f"dsd64-1bit: ok\n{hot}: ok\n  warning: sigma-delta loop 2.1 is stable up to 0.537 peak (-5.4 dB re full "
        "scale, at 3.072 MHz); a full-scale input reaches it at 0.708 (-3.0 dB): input peaks above -2.4 dB re full "
        "scale overload it and its noise floor collapses (counted as overloads)\n")


def test_the_overload_op_changes_no_sample(monkeypatch):
    """dsd64-1bit with its overload count and without (no MSA, no op): the same samples
    (driven 1.6 dB over full scale, so its -6 dB gain leaves it above the MSA)."""
    x = 1.2 * np.sin(np.arange(4800) * 2 * np.pi * 1000 / 48000)[:, None] * np.ones((1, 2))
    watched = Chain.from_preset("dsd64-1bit")
    y = watched(x, 48000)
    monkeypatch.setattr(Requantize, "stable_amplitude", lambda self, *args: None)
    bare = Chain.from_preset("dsd64-1bit")
    assert np.array_equal(bare(x, 48000), y)
    assert len(bare.program.ops) == len(watched.program.ops) - 1
    assert min(watched.counts().overloads) > 0 and bare.counts().overloads == [0, 0]
