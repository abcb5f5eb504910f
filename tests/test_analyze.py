"""``rtq analyze``: alignment, gain, and the error of files processed elsewhere (SoX)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from rtq.cli import main
from rtq.commands.analyze import analyze_files
from rtq.dsp.shaping import select_table
from signals import faded_sine, sigma_delta_presets

FS = 44100
Q16 = 2.0 ** -15


def noise(n, channels=2, level_db=-26.0, seed=0):
    return np.random.default_rng(seed).standard_normal((n, channels)) * 10 ** (level_db / 20)


def tpdf_16(x, seed=1):
    """Numpy TPDF requantization to 16 bits (the expected error is q^2/4, -96.33 dBFS)."""
    rng = np.random.default_rng(seed)
    d = rng.random(x.shape) + rng.random(x.shape) - 1.0
    return np.clip(np.rint(x / Q16 + d), -32768, 32767) * Q16


@pytest.fixture(scope="module")
def sox_shibata(tmp_path_factory):
    sox = shutil.which("sox")
    if sox is None:
        pytest.skip("sox is not installed (needed to produce a SoX-dithered file)")
    folder = tmp_path_factory.mktemp("sox")
    ref, out = folder / "in.wav", folder / "sox16.wav"
    sf.write(ref, noise(4 * FS), FS, subtype="FLOAT")
    subprocess.run([sox, str(ref), "-b", "16", str(out), "dither", "-f", "shibata"], check=True,
                   capture_output=True)
    return ref, out


def test_analyze_recovers_sox_shibata_shaping(sox_shibata):
    """SoX's ``dither -f shibata`` (TPDF plus the 44.1 kHz Shibata error filter) measured
    blind: no lag, no gain (SoX applies none here: the estimate is within its own noise,
    ~1e-4 dB, of unity, so unity is applied), 16 bits from PCM_16, and the error spectrum
    is (q^2/4)|NTF|^2 of rtq's Shibata table, TPDF included.  Found over 25 SoX runs: the
    level within 0.07 dB, the shape within 0.72 dB (9-bin smoothing) over 1-18 kHz.
    (Applying the raw gain estimate instead put its noise times the reference into the
    Shibata notch near 4 kHz: up to +2.5 dB there.)"""
    ref, out = sox_shibata
    result = analyze_files(ref, out)
    a, m = result["alignment"], result["stages"][0]
    assert a["lag_samples"] == 0 and abs(a["gain_db"]) < 0.001 and a["gain_applied_db"] == 0.0
    assert m["bits"] == 16 and m["bits_source"] == "PCM_16"
    freq = np.array(m["spectrum"]["freq_hz"])
    measured = np.mean(10 ** (np.array(m["spectrum"]["psd_dbfs"], float) / 10), axis=0)
    share = np.full(len(freq), 2 / 4096)
    share[[0, -1]] = 1 / 4096
    theory = Q16 ** 2 / 4 * np.abs(select_table("shibata", FS).ntf(2 * np.pi * freq / FS)) ** 2 * share
    kernel = np.ones(9) / 9
    diff = 10 * np.log10(np.convolve(measured, kernel, "same") / np.convolve(theory, kernel, "same"))
    band = (freq >= 1000) & (freq <= 18000)
    shape = diff[band] - diff[band].mean()
    assert np.abs(shape).max() < 2.0          # spectral shape within 2 dB
    assert abs(diff[band].mean()) < 0.5       # and the level: TPDF included, no extra gain
    # Shaped error is far above plain TPDF (-96.33) yet mostly out of the ear's way.
    assert all(-74 < v < -70 for v in m["rms_dbfs"])
    assert all(v < -88 for v in m["itu468_dbfs"])


def test_known_delay_and_gain_are_recovered(tmp_path):
    x = noise(3 * FS, 2, level_db=-20, seed=3)
    delay, gain_db = 123, -6.0
    y = tpdf_16(np.concatenate([np.zeros((delay, 2)), x * 10 ** (gain_db / 20)])[:len(x)])
    sf.write(tmp_path / "ref.wav", x, FS, subtype="FLOAT")
    sf.write(tmp_path / "proc.wav", y, FS, subtype="PCM_16")
    result = analyze_files(tmp_path / "ref.wav", tmp_path / "proc.wav")
    a, m = result["alignment"], result["stages"][0]
    assert a["lag_samples"] == delay
    assert a["lag_ms"] == pytest.approx(1000 * delay / FS)
    assert a["gain_db"] == pytest.approx(gain_db, abs=0.001)
    assert a["gain_applied_db"] == a["gain_db"]          # a real gain is applied
    assert a["frames"] == len(x) - delay
    np.testing.assert_allclose(m["rms_dbfs"], -96.33, atol=0.1)
    # Processed early (leading part cut): negative lag.
    sf.write(tmp_path / "early.wav", tpdf_16(x[77:]), FS, subtype="PCM_24")
    result = analyze_files(tmp_path / "ref.wav", tmp_path / "early.wav")
    assert result["alignment"]["lag_samples"] == -77
    assert result["stages"][0]["bits"] == 24      # from PCM_24


def test_streaming_does_not_change_the_figures(tmp_path):
    x = noise(2 * FS, 1, seed=5)
    sf.write(tmp_path / "ref.wav", x, FS, subtype="FLOAT")
    sf.write(tmp_path / "proc.wav", tpdf_16(x), FS, subtype="PCM_16")
    ref, proc = tmp_path / "ref.wav", tmp_path / "proc.wav"
    whole = analyze_files(ref, proc, align_s=0.5)
    streamed = analyze_files(ref, proc, block_frames=1000, align_s=0.5)
    a, b = whole["stages"][0], streamed["stages"][0]
    assert a["frames"] == b["frames"] == len(x)
    # Aligning on the first 0.5 s only moves the gain estimate a little.
    full = analyze_files(ref, proc)
    assert full["alignment"]["gain_db"] == pytest.approx(whole["alignment"]["gain_db"], abs=1e-4)
    np.testing.assert_allclose(full["stages"][0]["rms_dbfs"], a["rms_dbfs"], atol=0.001)
    np.testing.assert_allclose(a["rms_dbfs"], b["rms_dbfs"], atol=1e-9)
    np.testing.assert_allclose(np.array(a["spectrum"]["psd_dbfs"], float),
                               np.array(b["spectrum"]["psd_dbfs"], float), atol=1e-9)


def test_cli_summary_report_and_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    x = noise(FS, 2, level_db=-20, seed=6)
    sf.write(tmp_path / "ref.wav", x, FS, subtype="FLOAT")
    sf.write(tmp_path / "proc.wav", tpdf_16(np.concatenate([np.zeros((44, 2)), x])[:FS] * 0.5), FS,
             subtype="PCM_16")
    report, plot = tmp_path / "a.json", tmp_path / "a.png"
    assert main(["analyze", str(tmp_path / "ref.wav"), str(tmp_path / "proc.wav"),
                 "--report", str(report), "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "lag:         44 samples (0.998 ms, processed is late)" in out
    assert "gain:        -6.021 dB (processed vs reference, +-" in out
    assert "bits:        16 (from PCM_16)" in out
    assert "error rms:   -96.3" in out
    data = json.loads(report.read_text(), parse_constant=lambda t: pytest.fail(f"{t} in JSON"))
    assert data["command"] == "analyze" and data["alignment"]["lag_samples"] == 44
    assert {"rms_dbfs", "a_weighted_dbfs", "itu468_dbfs", "histogram", "spectrum", "enob"} <= set(data["stages"][0])
    assert plot.read_bytes().startswith(b"\x89PNG")


def test_float_file_has_no_bits_unless_given(tmp_path):
    x = noise(FS // 2, 1, seed=7)
    sf.write(tmp_path / "ref.wav", x, FS, subtype="FLOAT")
    sf.write(tmp_path / "proc.wav", tpdf_16(x), FS, subtype="FLOAT")
    assert analyze_files(tmp_path / "ref.wav", tmp_path / "proc.wav")["stages"][0]["bits"] is None
    given = analyze_files(tmp_path / "ref.wav", tmp_path / "proc.wav", bits=16)["stages"][0]
    assert given["bits"] == 16 and sum(given["bits_in_use"][0]) == 16


@pytest.mark.parametrize("case", ["rate", "channels", "unreadable", "missing"])
def test_one_line_errors(tmp_path, capsys, case):
    x = noise(FS // 4, 2)
    ref = tmp_path / "ref.wav"
    sf.write(ref, x, FS, subtype="FLOAT")
    other = tmp_path / "other.wav"
    if case == "rate":
        sf.write(other, x, 48000, subtype="PCM_16")
    elif case == "channels":
        sf.write(other, x[:, :1], FS, subtype="PCM_16")
    elif case == "unreadable":
        other.write_text("not audio")
    status = main(["analyze", str(ref), str(other), "--report", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("rtq: ") and err.count("\n") == 1, err
    assert {"rate": "sample rates differ", "channels": "channel counts differ",
            "unreadable": "not a readable audio file", "missing": "no such file"}[case] in err
    assert not (tmp_path / "r.json").exists()


def test_gain_within_its_estimation_noise_counts_as_unity():
    from rtq.commands.analyze import _applied_gain

    rng = np.random.default_rng(8)
    ref = rng.standard_normal((10000, 1)) * 0.1
    proc = ref + rng.standard_normal(ref.shape) * 1e-3      # sigma of the estimate: 1e-4
    gain = np.sum(ref * proc) / np.sum(ref ** 2)
    applied, sigma = _applied_gain(ref, proc, gain)
    assert sigma == pytest.approx(1e-4, rel=0.05) and applied == 1.0
    applied, _ = _applied_gain(ref, proc * 1.002, gain * 1.002)    # 20 sigma away: real
    assert applied == pytest.approx(gain * 1.002)
    # Under 0.01 dB and no larger than the error: unity (an error that follows the signal
    # moves the fit that much), and measured as error.
    applied, _ = _applied_gain(ref, proc * 1.0008, gain * 1.0008)
    assert applied == 1.0


def test_a_real_gain_before_a_coarse_quantizer_is_applied(tmp_path):
    """-1 dB, then 4-bit TPDF (error 0.036 RMS) on noise at -20 dBFS (0.1 RMS): the
    gain's contribution (0.011 RMS) is smaller than the error, and still applied."""
    x = noise(FS, 2, level_db=-20, seed=12)
    q = 2.0 ** -3
    rng = np.random.default_rng(2)
    y = np.rint(x * 10 ** (-1 / 20) / q + rng.random(x.shape) + rng.random(x.shape) - 1.0) * q
    sf.write(tmp_path / "ref.wav", x, FS, subtype="FLOAT")
    sf.write(tmp_path / "proc.wav", y, FS, subtype="FLOAT")
    result = analyze_files(tmp_path / "ref.wav", tmp_path / "proc.wav")
    assert result["alignment"]["gain_applied_db"] == pytest.approx(-1.0, abs=0.05)
    np.testing.assert_allclose(result["stages"][0]["rms_dbfs"], 20 * np.log10(q / 2), atol=0.1)   # TPDF: q^2/4


def test_undithered_tone_is_measured_at_unity_gain(tmp_path):
    """16-bit rounding (no dither) of a 1 kHz tone at 48 kHz: the error follows the
    signal, and a fitted gain (-0.000375 dB) took part of it away (channel 1 read
    -103.58 dBFS, channel 2 -99.34, against -101.01 and -99.81).  At unity gain the
    figures are the true error's: those of processed - reference, to 0.01 dB."""
    rate = 48000
    t = np.arange(2 * rate)[:, None] / rate
    x = np.sqrt(2) * np.array([0.1, 0.05]) * np.sin(2 * np.pi * 1000 * t)
    sf.write(tmp_path / "ref.wav", x, rate, subtype="PCM_24")
    x = sf.read(tmp_path / "ref.wav")[0]
    y = np.rint(x / Q16) * Q16
    sf.write(tmp_path / "proc.wav", y, rate, subtype="PCM_16")
    result = analyze_files(tmp_path / "ref.wav", tmp_path / "proc.wav")
    assert result["alignment"]["gain_applied_db"] == 0.0
    direct = 20 * np.log10(np.sqrt(np.mean((y - x) ** 2, axis=0)))
    np.testing.assert_allclose(result["stages"][0]["rms_dbfs"], direct, atol=0.01)
    assert direct[0] == pytest.approx(20 * np.log10(Q16 / np.sqrt(12)), abs=0.2)   # q^2/12: -101.1 dBFS


def test_files_without_error_say_so_instead_of_n_a(tmp_path, capsys):
    codes = np.round(noise(FS, 2, level_db=-20, seed=8) / Q16).astype(np.int16)
    late = np.concatenate([np.zeros((30, 2), np.int16), codes])
    one_off = codes.copy()
    one_off[::5, 1] += 1
    half = codes // 2 * 2                   # even codes: exactly 6.02 dB above their half
    files = {"ref": codes, "same": codes, "late": late, "one_off": one_off, "even": half,
             "half": half // 2, "short": codes[:FS // 2]}
    for name, data in files.items():
        sf.write(tmp_path / f"{name}.wav", data, FS, subtype="PCM_16")
    nonfinite = codes.astype(np.float32) * np.float32(Q16)
    sf.write(tmp_path / "ref_f.wav", nonfinite, FS, subtype="FLOAT")
    nonfinite[100, 0] = np.nan
    sf.write(tmp_path / "nan_f.wav", nonfinite, FS, subtype="FLOAT")

    def summary(ref, other):
        assert main(["analyze", str(tmp_path / f"{ref}.wav"), str(tmp_path / f"{other}.wav")]) == 0
        return capsys.readouterr().out.splitlines()

    none = "error:       none: processed equals reference in all "
    for ref, other, tail in [("ref", "same", f"{FS} measured frames"),
                             ("ref", "late", f"{FS} measured frames (aligned at 30 samples)"),
                             ("ref", "short", f"{FS // 2} measured frames"),
                             ("even", "half", f"{FS} measured frames (scaled by -6.021 dB)")]:
        out = summary(ref, other)
        assert none + tail in out, out
        assert not any(line.startswith(("error rms", "SNR")) or "n/a" in line for line in out), out
    out = summary("ref_f", "nan_f")         # a NaN is not equal to anything
    assert not any(line.startswith(none) for line in out) and any("non-finite:  1 / 0" in line for line in out)
    out = summary("ref", "one_off")
    # Channel 2: a 1-LSB error in every fifth sample, 10 log10(q^2 / 5) dBFS.
    rms = 10 * np.log10(Q16 ** 2 / 5)
    assert f"error rms:   -inf / {rms:.2f} dBFS   peak -inf / {20 * np.log10(Q16):.2f} dBFS" in out
    assert any(line.startswith("SNR:         n/a / ") for line in out)


def test_a_trimmed_tone_aligns_at_zero_not_at_a_whole_number_of_periods(tmp_path, capsys):
    """A 1 kHz tone at 44.1 kHz correlates exactly at every 441 samples of lag: the first
    second of it aligned at -1764 samples (40 ms)."""
    tone = (0.5 * np.sin(2 * np.pi * 1000 * np.arange(3 * FS) / FS) / Q16).round().astype(np.int16)
    sf.write(tmp_path / "tone.wav", tone, FS, subtype="PCM_16")
    sf.write(tmp_path / "first.wav", tone[:FS], FS, subtype="PCM_16")
    sf.write(tmp_path / "late.wav", tone[FS - 100:2 * FS], FS, subtype="PCM_16")
    # "late" starts 43 900 samples in: 341 short of 100 whole periods, as exact and smaller.
    for other, lag in [("first", 0), ("late", -341)]:
        result = analyze_files(tmp_path / "tone.wav", tmp_path / f"{other}.wav", max_lag_s=1.1)
        assert result["alignment"]["lag_samples"] == lag
        assert result["stages"][0]["mse"] == [0.0]


def test_a_silent_reference_is_measured_at_lag_zero_and_unity_gain(tmp_path, capsys):
    """The noise floor of dithered silence (it was 'processed does not follow reference')."""
    silence = np.zeros((FS, 2))
    sf.write(tmp_path / "silence.wav", silence, FS, subtype="PCM_16")
    sf.write(tmp_path / "dithered.wav", tpdf_16(silence), FS, subtype="PCM_16")
    result = analyze_files(tmp_path / "silence.wav", tmp_path / "dithered.wav")
    assert result["alignment"]["lag_samples"] == 0 and result["alignment"]["gain_db"] == 0.0
    # TPDF on silence: the dither rounds to +-1 LSB with probability 1/4: q^2/4, -96.33 dBFS.
    assert result["stages"][0]["rms_dbfs"] == pytest.approx([10 * np.log10(Q16 ** 2 / 4)] * 2, abs=0.2)


def test_report_never_replaces_a_file_it_measures_and_needs_force_for_others(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sf.write("ref.wav", noise(FS // 4, 2, seed=9), FS, subtype="FLOAT")
    sf.write("proc.wav", tpdf_16(noise(FS // 4, 2, seed=9)), FS, subtype="PCM_16")
    for report, message in [("./ref.wav", "--report ref.wav is the REFERENCE file; rtq never writes over it"),
                            ("proc.wav", "--report proc.wav is the PROCESSED file; rtq never writes over it")]:
        for force in ([], ["--force"]):
            assert main(["analyze", "ref.wav", "proc.wav", "--report", report, *force]) == 2
            assert capsys.readouterr() == ("", f"rtq: {message}\n")
    Path("r.json").write_text("earlier")
    assert main(["analyze", "ref.wav", "proc.wav", "--report", "r.json"]) == 2
    assert capsys.readouterr() == ("", "rtq: --report r.json exists; use --force to replace it\n")
    assert main(["analyze", "ref.wav", "proc.wav", "--report", "r.json", "--force"]) == 0
    assert json.loads(Path("r.json").read_text())["command"] == "analyze"
    assert sf.info("ref.wav").frames == sf.info("proc.wav").frames == FS // 4


def test_a_fractional_lag_is_estimated_and_met(tmp_path, capsys):
    """A render of the 64x sigma-delta chain rounds its 106.28125-sample latency: the
    file is 0.28125 samples late.  analyze measured it at lag 0: SNR 28.68 dB beside a
    SINAD of 82 dB.  It now finds the lag to a fraction of a sample (and says so, with
    the estimate's precision), delays the reference by it, and reads the figures of the
    same chain padded to a whole latency, within 0.5 dB (110.8 dB both)."""
    from rtq.chain import Chain

    rate = 48000
    x = faded_sine(1.0, rate)
    sf.write(tmp_path / "ref.wav", x, rate, subtype="FLOAT")
    results = {}
    for padded, preset in sigma_delta_presets(tmp_path).items():
        out = tmp_path / f"{preset.stem}.wav"
        sf.write(out, Chain.from_preset(preset)(x, rate), rate, subtype="FLOAT")
        results[padded] = analyze_files(tmp_path / "ref.wav", out)
        assert main(["analyze", str(tmp_path / "ref.wav"), str(out)]) == 0
    fractional, padded = results[False], results[True]
    # the modulator's error holds a little of the tone in quadrature: 5e-6 samples
    assert fractional["alignment"]["lag_samples"] == pytest.approx(0.28125, abs=1e-4)
    assert abs(padded["alignment"]["lag_samples"]) < 1e-4
    assert fractional["alignment"]["fractional_delay"] == {"taps": 132, "error_floor_db": -170.0}
    for key in ("snr_db", "sinad_db", "rms_dbfs"):
        np.testing.assert_allclose(fractional["stages"][0][key], padded["stages"][0][key], atol=0.5)
    assert min(fractional["stages"][0]["snr_db"]) > 105
    out = capsys.readouterr().out
    assert re.search(r"lag: +0\.2812\d* \+-\de-\d\d samples \(0\.006 ms, processed is late\); the fraction "
                     r"through a 132-tap fractional-delay filter", out), out


def test_sub_sample_lag_and_its_precision_against_a_known_delay():
    """Band-limited noise delayed by 0.3 samples (exactly, by the DFT) under white noise
    60 dB down: the estimate lies within 4 standard deviations of 0.3 in every trial and
    the stated deviation is that of the trials: their sample deviation over the mean
    stated one lies in the chi-square interval of 200 trials at 1e-4 (0.81-1.20)."""
    from scipy import signal, stats

    from rtq.meter.align import fractional_lag

    rng = np.random.default_rng(5)
    b, a = signal.butter(6, 0.8)
    estimates, sigmas = [], []
    trials = 200
    for _ in range(trials):
        x = signal.lfilter(b, a, rng.standard_normal(24000))
        spectrum = np.fft.rfft(x, 1 << 16)
        late = np.fft.irfft(spectrum * np.exp(-2j * np.pi * np.fft.rfftfreq(1 << 16) * 0.3), 1 << 16)
        ref, proc = x[2000:22000], late[2000:22000] + 1e-3 * np.std(x) * rng.standard_normal(20000)
        lag, sigma = fractional_lag(ref, proc)
        assert abs(lag - 0.3) < 4 * sigma
        estimates.append(lag)
        sigmas.append(sigma)
    low, high = np.sqrt(stats.chi2.ppf([5e-5, 1 - 5e-5], trials - 1) / (trials - 1))
    assert low < np.std(estimates, ddof=1) / np.mean(sigmas) < high


# --- what analyze reads: one-line errors naming the file, the limits, short files ---------

def _pair(tmp_path, x, rate=FS, ref_subtype="FLOAT", proc=None):
    sf.write(tmp_path / "ref.wav", x, rate, subtype=ref_subtype)
    sf.write(tmp_path / "proc.wav", tpdf_16(x) if proc is None else proc, rate, subtype="PCM_16")
    return str(tmp_path / "ref.wav"), str(tmp_path / "proc.wav")


ARGUMENT_ERRORS = {   # name: (extra arguments, how the files are made, the line)
    "max-lag-nan": (["--max-lag", "nan"], None, "rtq: --max-lag must be a finite number from 0 to 60 seconds, got nan"),
    "max-lag-inf": (["--max-lag", "inf"], None, "rtq: --max-lag must be a finite number from 0 to 60 seconds, got inf"),
    "max-lag-beyond": (["--max-lag", "61"], None,
                       "rtq: --max-lag must be a finite number from 0 to 60 seconds, got 61.0"),
    "rate-1-hz": ([], 1, "rtq: {ref} runs at 1 Hz; rtq runs streams at whole rates from 1000 to 768000 Hz "
                         "(resample the file)"),
    "rate-1-mhz": ([], 1_000_000, "rtq: {ref} runs at 1000000 Hz; rtq runs streams at whole rates from 1000 to "
                                  "768000 Hz (resample the file)"),
    "huge-reference": ([], "huge", "rtq: REFERENCE {ref} holds a sample of 1e+30 (+600 dBFS) at frame 0: rtq "
                                   "measures samples within +-1000 (+60 dBFS)"),
    "overflowing-reference": ([], "overflowing", "rtq: REFERENCE {ref} holds a sample of 1e+300 (+6000 dBFS) at "
                                                 "frame 0: rtq measures samples within +-1000 (+60 dBFS)"),
}


@pytest.mark.parametrize("case", list(ARGUMENT_ERRORS))
def test_bad_arguments_and_files_are_one_line_with_status_2(tmp_path, capsys, case):
    """--max-lag nan|inf were tracebacks; 1 Hz and 1 MHz files (which render refuses) were
    measured; a reference of 1e30 read 'gain: -600.000 dB' with status 0, one of 1e300 a
    NumPy RuntimeWarning (overflow in the correlation's sums of squares)."""
    import warnings

    extra, make, line = ARGUMENT_ERRORS[case]
    x = noise(FS // 4, 2)
    if isinstance(make, int):
        ref, proc = _pair(tmp_path, x, rate=make)
    elif make in ("huge", "overflowing"):
        x[0, 0] = 1e30 if make == "huge" else 1e300
        ref, proc = _pair(tmp_path, x, ref_subtype="DOUBLE", proc=noise(FS // 4, 2))
    else:
        ref, proc = _pair(tmp_path, x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        status = main(["analyze", ref, proc, *extra, "--report", str(tmp_path / "r.json")])
    assert (status, capsys.readouterr()) == (2, ("", line.format(ref=ref) + "\n"))
    assert not (tmp_path / "r.json").exists()


def test_a_directory_is_one_line(tmp_path, capsys):
    ref, _ = _pair(tmp_path, noise(FS // 4, 2))
    assert main(["analyze", ref, str(tmp_path)]) == 2
    assert capsys.readouterr() == ("", f"rtq: {tmp_path} is a directory, not an audio file\n")


def test_a_short_file_is_an_error_unless_allowed_and_then_said(tmp_path, capsys):
    """A truncated file was measured over what it held, with no word."""
    x = noise(FS, 2)
    ref, proc = _pair(tmp_path, x)
    size = Path(proc).stat().st_size
    with open(proc, "r+b") as f:
        f.truncate(size - (FS // 2) * 4)           # half the frames go
    assert main(["analyze", ref, proc]) == 1
    assert capsys.readouterr() == ("", f"rtq: {proc} ends after {FS // 2} of the {FS} frames its header promises "
                                       f"({FS // 2} missing: truncated or damaged); --allow-short takes what is "
                                       "there\n")
    assert main(["analyze", ref, proc, "--allow-short"]) == 0
    out, err = capsys.readouterr()
    assert f"measured:    {FS // 2} frames" in out
    assert err == (f"rtq: {proc} ended after {FS // 2} of the {FS} frames its header promises: {FS // 2} frames "
                   f"({FS // 2 / FS:.3f} s) missing\n")


def test_a_file_that_fails_while_read_is_named(tmp_path, capsys):
    x = noise(FS * 2, 2)
    sf.write(tmp_path / "ref.wav", x, FS, subtype="FLOAT")
    sf.write(tmp_path / "proc.flac", tpdf_16(x), FS, subtype="PCM_16")
    data = bytearray((tmp_path / "proc.flac").read_bytes())
    data[len(data) // 2:len(data) // 2 + 2000] = bytes(2000)
    (tmp_path / "proc.flac").write_bytes(bytes(data))
    assert main(["analyze", str(tmp_path / "ref.wav"), str(tmp_path / "proc.flac")]) == 1
    err = capsys.readouterr().err
    assert re.fullmatch(rf"rtq: cannot read {tmp_path / 'proc.flac'}: [^\n]*flac decoder[^\n]* after \d+ of "
                        rf"{2 * FS} frames\n", err), err


@pytest.mark.parametrize("rate,channels,max_lag_s,head_s", [
    (48000, 2, 1.0, 30.0),             # the usual case: 47 MB
    (192000, 2, 1.0, 30.0),
    (96000, 8, 1.0, 21.345),           # 256 MiB hold 2 x 21.3 s + 1 s of 8 channels
    (768000, 8, 1.0, 2.231),
])
def test_the_alignment_window_fits_in_its_memory(rate, channels, max_lag_s, head_s):
    from rtq.commands.analyze import ALIGN_BYTES, alignment_window

    head, max_lag = alignment_window(rate, channels, 30.0, max_lag_s)
    assert max_lag == round(max_lag_s * rate) and head == pytest.approx(head_s * rate, abs=rate * 0.001)
    assert (2 * head + max_lag) * channels * 8 <= ALIGN_BYTES


def test_a_lag_the_window_cannot_hold_is_one_line(tmp_path, capsys):
    """--max-lag 60 with 8 channels at 768 kHz: 2.9 GB to align, before any limit."""
    x = noise(7680, 8)
    sf.write(tmp_path / "ref.wav", x, 768000, subtype="FLOAT")
    sf.write(tmp_path / "proc.wav", x, 768000, subtype="FLOAT")
    assert main(["analyze", str(tmp_path / "ref.wav"), str(tmp_path / "proc.wav"), "--max-lag", "60"]) == 2
    assert capsys.readouterr() == ("", "rtq: --max-lag 60 s leaves less than 1 s to align 8-channel files at 768000 "
                                       "Hz in 256 MiB; at most 3.46 s here\n")
