"""``rtq live --json`` (rtq.ui.jsonlines): the records, their bands, the command."""
from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest

from rtq.ui.jsonlines import json_record, run_json, third_octave_bands

from .helpers import ROOT, TONE, TPDF_16_DBFS, make_session, nan_laced, rtq_env


def test_third_octave_bands_keep_the_power():
    freq = np.fft.rfftfreq(4096, 1 / 48000)
    centres, band = third_octave_bands(freq)
    assert abs(centres[np.argmin(np.abs(centres - 1000))] - 1000) < 1e-6
    assert band[0] == -1 and (band[1:] >= 0).all()      # DC aside, every bin lands in a band
    assert np.all(np.diff(centres) > 0)


def test_json_record_is_compact_and_strict():
    session = make_session("tpdf-16")
    out = io.StringIO()
    run_json(session, 1.0, out=out)
    lines = out.getvalue().splitlines()
    assert 5 <= len(lines) <= 12
    record = json.loads(lines[-1])
    assert len(lines[-1]) < 20000
    spectrum = record["meter"]["spectrum"]
    band_power = sum(10 ** (v / 10) for v in spectrum["psd_dbfs"][0] if v is not None)
    assert abs(10 * np.log10(band_power) - record["meter"]["rms_dbfs"][0]) < 0.5
    assert json_record.__doc__


JSON_KEYS = {"time_s", "preset", "mode", "bits", "dither", "shaping", "stage", "xruns",
             "callback_load", "meter"}
METER_KEYS = {"rms_dbfs", "peak_dbfs", "mse", "psnr_db", "snr_db", "a_weighted_dbfs", "itu468_dbfs",
              "dc_lsb", "clips", "nonfinite", "sinad_db", "enob", "histogram", "bits_in_use",
              "noise_modulation", "spectrum", "frames", "window"}


def test_cli_json_lines():
    proc = subprocess.run(
        [sys.executable, "-m", "rtq", "live", "tpdf-16", "--input", TONE, "--samplerate", "48000",
         "--duration", "2", "--json"],
        capture_output=True, text=True, timeout=60, env=rtq_env(), cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) >= 10, proc.stdout[:500]
    for line in lines:
        record = json.loads(line)
        assert JSON_KEYS <= set(record), set(record)
        assert record["preset"] == "tpdf-16" and record["bits"] == 16
        assert METER_KEYS <= set(record["meter"]), set(record["meter"])
        assert record["meter"]["window"] == "momentary"
        assert set(record["callback_load"]) == {"p50", "p99", "max"}
        assert isinstance(record["xruns"], int)
    last = json.loads(lines[-1])
    assert all(abs(v - TPDF_16_DBFS) < 1.0 for v in last["meter"]["rms_dbfs"])
    assert "rtq live: tpdf-16" in proc.stderr             # the summary, off stdout


def test_cli_json_end_to_end_meets_a_fractional_latency(tmp_path):
    """rtq live --json, end to end (--meter-stage 0), through the 64x sigma-delta chain
    on a 1 kHz tone of peak 0.5 (-9.03 dBFS): SNR 28.7 dB beside a SINAD of 110 dB
    while its 106.28125-sample latency was rounded; now the figures of the same chain
    padded to 107 samples, within 0.5 dB (both about 110.5 dB, momentary)."""
    from signals import sigma_delta_presets

    snr = {}
    for padded, preset in sigma_delta_presets(tmp_path).items():
        proc = subprocess.run(
            [sys.executable, "-m", "rtq", "live", str(preset), "--input", "tone:1000:-9.0309",
             "--samplerate", "48000", "--duration", "2.5", "--json", "--meter-stage", "0"],
            capture_output=True, text=True, timeout=120, env=rtq_env(), cwd=ROOT)
        assert proc.returncode == 0, proc.stderr
        meter = json.loads(proc.stdout.splitlines()[-1])["meter"]
        assert meter["stage"] == "end to end" and meter["frames"] > 10000
        snr[padded] = meter["snr_db"]
    np.testing.assert_allclose(snr[False], snr[True], atol=0.5)
    assert min(snr[False]) > 105


def test_cli_counts_a_sigma_delta_loop_driven_above_its_msa(tmp_path):
    """A 1 kHz tone of peak 0.6 (-7.44 dBFS) into the 1-bit order-5 loop at 64x (stable to
    0.537): the meter's lines and the exit summary count the loop samples above it."""
    preset = tmp_path / "sd.yaml"
    preset.write_text("chain:\n  - oversample:\n      factor: 64\n      chain:\n"
                      "        - requantize: {bits: 1, dither: none, shaping: {order: 5}}\n")
    stats = tmp_path / "stats.json"
    proc = subprocess.run(
        [sys.executable, "-m", "rtq", "live", str(preset), "--input", "tone:1000:-7.4437", "--samplerate", "48000",
         "--duration", "1.5", "--json", "--stats-json", str(stats)],
        capture_output=True, text=True, timeout=120, env=rtq_env(), cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    meter = json.loads(proc.stdout.splitlines()[-1])["meter"]
    assert meter["msa"] == pytest.approx(0.537, abs=0.001) and min(meter["overloads"]) > 0
    summary = json.loads(stats.read_text())
    assert summary["loop_resets"] == [0, 0] and min(summary["overloads"]) > 0
    assert f"samples above the loop's maximum stable amplitude: {summary['overloads']}" in proc.stderr


def test_cli_meter_stage_out_of_range():
    proc = subprocess.run(
        [sys.executable, "-m", "rtq", "live", "tpdf-16", "--input", TONE, "--samplerate", "48000",
         "--duration", "1", "--meter-stage", "3", "--json"],
        capture_output=True, text=True, timeout=60, env=rtq_env(), cwd=ROOT)
    assert proc.returncode == 2
    assert "--meter-stage 3" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_cli_json_mode_imports_no_terminal_library():
    """``rtq live --json`` in a real subprocess: when the session ends, no ``rich``
    module is loaded (the JSON path needs no terminal library); the same run with the
    screen's module imported shows the check can fail."""
    probe = ("import sys, rtq.cli\n"
             "status = rtq.cli.main(['live', 'tpdf-16', '--input', {tone!r}, '--samplerate', '48000',\n"
             "                       '--duration', '0.5', '--json'])\n"
             "{extra}"
             "print(sorted(m for m in sys.modules if m == 'rich' or m.startswith('rich.')), file=sys.stderr)\n"
             "sys.exit(status)\n")
    loaded = {}
    for name, extra in (("json", ""), ("screen", "import rtq.ui.screen\n")):
        proc = subprocess.run([sys.executable, "-c", probe.format(tone=TONE, extra=extra)],
                              capture_output=True, text=True, timeout=60, env=rtq_env(), cwd=ROOT)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.count("\n") >= 3, proc.stdout[:300]          # JSON lines were written
        loaded[name] = proc.stderr.splitlines()[-1]
    assert loaded["json"] == "[]"
    assert "'rich'" in loaded["screen"]


def test_cli_json_shows_non_finite_source_samples_as_the_summary_does(tmp_path):
    """``rtq live --input NAN-LACED.wav --json``: the meter's momentary count holds the
    burst while it is in its window, each line's ``counts`` the run's totals, both equal
    to the exit summary's and the stats file's (the meter read 0 and 0)."""
    import soundfile as sf

    samples, count = nan_laced()
    path, stats = tmp_path / "nan.wav", tmp_path / "stats.json"
    sf.write(path, samples, 48000, subtype="FLOAT")
    proc = subprocess.run(
        [sys.executable, "-m", "rtq", "live", "tpdf-16", "--input", str(path), "--duration", "2", "--json",
         "--stats-json", str(stats)],
        capture_output=True, text=True, timeout=60, env=rtq_env(), cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(records) >= 5
    assert max(sum(r["meter"]["nonfinite"]) for r in records if r["meter"]) == count == 53
    assert sum(records[-1]["counts"]["nonfinite"]) == count
    assert json.loads(stats.read_text())["nonfinite"] == count
    assert f"non-finite input samples: {count};" in proc.stderr


def test_cli_json_meters_the_whole_duration():
    """``rtq live --json`` builds the meter before the first block, so ``--duration`` is
    all metered: with a meter whose set-up takes 1.5 s (SciPy and filter designs on a
    cold cache can take longer), ``--duration 1`` wrote no line at all, the set-up
    having used up the duration after the audio had started."""
    probe = ("import sys, time, rtq.cli, rtq.ui.jsonlines as jsonlines\n"
             "real = jsonlines.MeterView\n"
             "jsonlines.MeterView = lambda *args, **options: (time.sleep(1.5), real(*args, **options))[1]\n"
             f"sys.exit(rtq.cli.main(['live', 'tpdf-16', '--input', {TONE!r}, '--samplerate', '48000',\n"
             "                         '--duration', '1', '--json']))\n")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                          env=rtq_env(), cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) >= 5, proc.stderr

