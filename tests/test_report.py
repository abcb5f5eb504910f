"""``rtq render --report/--plot`` and the report writer."""
from __future__ import annotations

import json
import re
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from rtq.cli import main
from rtq.plot import MISSING
from rtq.report import clean, dumps, write_report
from signals import faded_sine, sigma_delta_presets, write_input

FS = 44100
STAGE_KEYS = {"index", "stage", "bits", "rms_dbfs", "peak_dbfs", "mse", "psnr_db", "snr_db",
              "a_weighted_dbfs", "itu468_dbfs", "dc_lsb", "clips", "nonfinite", "bits_in_use",
              "histogram", "spectrum", "noise_modulation", "sinad_db", "enob"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def strict_json(text: str):
    def reject(token):
        raise ValueError(f"{token} is not JSON")

    return json.loads(text, parse_constant=reject)


@pytest.fixture
def wav(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2 * FS, 2)) * 0.05
    path = tmp_path / "in.wav"
    sf.write(path, x, FS, subtype="FLOAT")
    return path, x


def test_report_has_every_contract_key_and_the_right_numbers(wav, tmp_path, capsys):
    path, x = wav
    out, report_path = tmp_path / "out.wav", tmp_path / "report.json"
    assert main(["render", "tpdf-16", str(path), str(out), "--report", str(report_path)]) == 0
    report = strict_json(report_path.read_text())
    assert {"sample_rate", "channels", "stages", "end_to_end"} <= set(report)
    assert report["sample_rate"] == FS and report["channels"] == 2 and report["command"] == "render"
    assert len(report["stages"]) == 1
    for entry in (*report["stages"], report["end_to_end"]):
        assert STAGE_KEYS <= set(entry), STAGE_KEYS - set(entry)
        assert {"lsb", "count"} <= set(entry["histogram"])
        assert {"freq_hz", "psd_dbfs", "floor_dbfs", "target_dbfs"} <= set(entry["spectrum"])
        assert entry["frames"] == len(x)
    # The integrated figures are those of the file that was written.
    y = sf.read(out)[0]
    e = y - x * 10 ** (report["net_gain_db"] / 20)
    np.testing.assert_allclose(report["end_to_end"]["rms_dbfs"], 10 * np.log10(np.mean(e ** 2, axis=0)),
                               atol=1e-6)
    np.testing.assert_allclose(report["stages"][0]["rms_dbfs"], -96.33, atol=0.15)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "out.wav", "report.json"]


def test_shaped_preset_report_and_plot(wav, tmp_path):
    pytest.importorskip("matplotlib")
    path, _ = wav
    out, report_path, plot_path = tmp_path / "out.flac", tmp_path / "r.json", tmp_path / "r.png"
    assert main(["render", "cd-16-shibata", str(path), str(out), "--report", str(report_path),
                 "--plot", str(plot_path), "--block-size", "1000"]) == 0
    stage = strict_json(report_path.read_text())["stages"][0]
    assert stage["stage"] == "requantize 16-bit tpdf shibata"
    # Shibata puts the error power up (about +24 dB over plain TPDF at 44.1 kHz).
    assert -74 < stage["rms_dbfs"][0] < -70
    data = plot_path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 20_000


def test_a_report_is_the_same_to_the_bit_whatever_the_blocks_and_threads(tmp_path):
    """The meter adds the same numbers in the same order in every run: its reads (their
    sizes follow the blocks and the threads' timing) are measured in fixed pieces of the
    stream, so spectra and level history do not change in the last bit between runs."""
    x = np.random.default_rng(3).standard_normal((150_000, 2)) * 0.1     # past two measured pieces
    path = tmp_path / "in.wav"
    sf.write(path, x, FS, subtype="FLOAT")
    reports = set()
    for block in ("1000", "6007", "131072", "131072"):
        assert main(["render", "cd-16-shibata", str(path), str(tmp_path / "out.wav"), "--block-size", block,
                     "--report", str(tmp_path / "r.json"), "--force"]) == 0
        reports.add((tmp_path / "r.json").read_bytes())
    assert len(reports) == 1


def test_missing_matplotlib_is_one_line_before_rendering(wav, tmp_path, monkeypatch, capsys):
    path, _ = wav
    monkeypatch.setitem(sys.modules, "matplotlib", None)       # import matplotlib fails
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    out = tmp_path / "out.wav"
    status = main(["render", "tpdf-16", str(path), str(out), "--plot", str(tmp_path / "p.png"),
                   "--report", str(tmp_path / "r.json")])
    assert status == 2
    assert capsys.readouterr().err == f"rtq: {MISSING}\n"
    assert MISSING == "--plot needs matplotlib: pip install 'rtq[plot]'"
    assert not out.exists() and not (tmp_path / "r.json").exists()


def test_report_into_a_missing_folder_fails_before_rendering(wav, tmp_path, capsys):
    path, _ = wav
    out = tmp_path / "out.wav"
    status = main(["render", "tpdf-16", str(path), str(out), "--report", str(tmp_path / "no" / "r.json")])
    assert status == 2 and not out.exists()
    err = capsys.readouterr().err
    assert err.startswith("rtq: --report") and err.count("\n") == 1


def test_report_of_a_companding_preset_is_strict_json(wav, tmp_path):
    path, _ = wav
    report_path = tmp_path / "r.json"
    assert main(["render", "telephone-mulaw", str(path), str(tmp_path / "t.wav"),
                 "--report", str(report_path)]) == 0
    report = strict_json(report_path.read_text())
    stage = report["stages"][0]
    assert stage["law"] == "mu-law" and stage["histogram"] is None
    assert report["net_gain_db"] == pytest.approx(-1.0)
    assert 30 < stage["snr_db"][0] < 40          # 8-bit mu-law on noise: ~37 dB


def test_clean_and_dumps_never_write_nan(tmp_path):
    data = {"a": float("nan"), "b": np.float32(1.5), "c": np.arange(3), "d": (np.inf, True, None)}
    assert clean(data) == {"a": None, "b": 1.5, "c": [0, 1, 2], "d": [None, True, None]}
    text = dumps(data)
    assert strict_json(text)["a"] is None
    path = tmp_path / "x.json"
    write_report(path, data)
    assert strict_json(path.read_text()) == clean(data)
    assert list(tmp_path.iterdir()) == [path]          # no temporary file left


def test_dumps_writes_every_number_exactly():
    """Numbers (written by orjson) read back to the very values: shortest round-trip
    digits, subnormals and extremes included; a path that is not UTF-8 is escaped."""
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.standard_normal(2000) * 10.0 ** rng.integers(-300, 300, 2000),
                             [5e-324, -2.2250738585072014e-308, 1.7976931348623157e308, -0.0, 0.1, 1e16, 1e-5]])
    data = {"spectrum": values.tolist(), "rows": [values[:3], [1, None, np.nan]], "input": "caf\udcff.wav",
            "count": np.int64(2 ** 62), "flag": np.bool_(True)}
    back = strict_json(dumps(data))
    assert back == clean(data)
    assert [np.float64(v).tobytes() for v in back["spectrum"]] == [v.tobytes() for v in values]
    assert back["input"] == "caf\udcff.wav" and back["count"] == 2 ** 62


def test_end_to_end_figures_meet_a_fractional_latency(tmp_path):
    """render --report of the 64x sigma-delta chain (latency 106.28125 samples): the end
    to end SNR read 28.7 dB against 94.8 dB with integer_latency (the input was
    compared 106 samples late); compared exactly late, the two agree within 0.5 dB."""
    rate = 48000
    path = write_input(tmp_path / "sine.wav", faded_sine(1.0, rate), rate)
    figures = {}
    for padded, preset in sigma_delta_presets(tmp_path).items():
        report_path = tmp_path / f"{preset.stem}.json"
        assert main(["render", str(preset), str(path), str(tmp_path / f"{preset.stem}.wav"),
                     "--report", str(report_path)]) == 0
        report = strict_json(report_path.read_text())
        figures[padded] = report["end_to_end"]
        assert report["latency_samples"] == (107 if padded else 106.28125)
    for key in ("snr_db", "sinad_db", "rms_dbfs"):
        np.testing.assert_allclose(figures[False][key], figures[True][key], atol=0.5)
    assert min(figures[False]["snr_db"]) > 105


def render_tone(tmp_path, capsys, chain_yaml: str, peak: float, frames: int, *options) -> tuple[dict, list[str]]:
    """render --report of a 1 kHz tone of ``peak`` at 48 kHz (stereo) through the chain
    ``chain_yaml``: the report and stderr's lines."""
    preset = tmp_path / "preset.yaml"
    preset.write_text("chain:\n" + chain_yaml)
    x = peak * np.sin(np.arange(frames) * 2 * np.pi * 1000 / 48000)[:, None] * np.ones((1, 2))
    path = write_input(tmp_path / "tone.wav", x.astype(np.float32).astype(np.float64), 48000)
    report_path = tmp_path / "r.json"
    assert main(["render", str(preset), str(path), str(tmp_path / "out.wav"), "--report", str(report_path),
                 *options]) == 0
    return strict_json(report_path.read_text()), capsys.readouterr().err.splitlines()


def test_loop_resets_are_in_the_report(tmp_path, capsys):
    """A sigma-delta loop driven 6 dB over full scale is reset after overloading: stderr
    said how often, the report did not.  Each stage's entry holds its own resets per
    channel, the end-to-end entry the chain's, equal to stderr's count."""
    report, lines = render_tone(tmp_path, capsys, "  - gain: {db: 6.0}\n  - oversample:\n      factor: 4\n"
                                "      chain:\n        - requantize: {bits: 1, dither: none, shaping: {order: 5}}\n",
                                0.99, 6000, "--subtype", "FLOAT")
    line = next(line for line in lines if "loop reset" in line)
    per_channel = [int(n) for n in re.fullmatch(r"rtq: \d+ noise-shaping loop resets after overloads "
                                                r"\(ch1 (\d+), ch2 (\d+)\)", line).groups()]
    assert min(per_channel) > 0
    assert report["stages"][0]["loop_resets"] == report["end_to_end"]["loop_resets"] == per_channel


MAGIC = {".png": PNG_MAGIC, ".pdf": b"%PDF-", ".svg": b"<?xml"}


def test_plot_format_follows_the_extension_and_the_same_report_gives_the_same_bytes(wav, tmp_path):
    """--plot r.pdf wrote PNG data into the .pdf file."""
    pytest.importorskip("matplotlib")
    from rtq.plot import plot_report

    path, _ = wav
    plots = [tmp_path / f"r{ext}" for ext in MAGIC]
    assert main(["render", "tpdf-16", str(path), str(tmp_path / "out.wav"), "--report", str(tmp_path / "r.json"),
                 "--plot", str(plots[1])]) == 0
    report = strict_json((tmp_path / "r.json").read_text())
    for plot in plots:
        plot_report(report, plot, "title", force=True)
        assert plot.read_bytes().startswith(MAGIC[plot.suffix]), plot
    assert b"<svg" in plots[2].read_bytes()[:1000]
    first = [p.read_bytes() for p in plots]
    time.sleep(1.1)
    for plot, data in zip(plots, first):
        plot_report(report, plot, "title", force=True)
        assert plot.read_bytes() == data, plot


@pytest.mark.parametrize("command", ["render", "analyze"])
def test_a_plot_format_rtq_does_not_draw_is_one_line_before_any_work(wav, tmp_path, capsys, command):
    path, _ = wav
    second = tmp_path / "out.wav"
    if command == "analyze":
        sf.write(second, sf.read(path)[0], FS, subtype="PCM_16")
    status = main([command, str(path), str(second), "--plot", str(tmp_path / "r.jpg")] if command == "analyze"
                  else [command, "tpdf-16", str(path), str(second), "--plot", str(tmp_path / "r.jpg")])
    assert (status, capsys.readouterr()) == (2, ("", f"rtq: --plot {tmp_path / 'r.jpg'}: rtq draws PNG, PDF or "
                                                     "SVG; name the file .png, .pdf or .svg\n"))
    assert sorted(p.name for p in tmp_path.iterdir()) == (["in.wav", "out.wav"] if command == "analyze"
                                                          else ["in.wav"])


def test_overloads_of_a_sigma_delta_loop_are_counted_and_reported(tmp_path, capsys):
    """The 1-bit order-5 loop at 64x on a 1 kHz tone of peak 0.6, above its maximum stable
    amplitude (0.537 at 48 kHz): its noise floor collapses without a reset, and nothing
    said so.  stderr counts the loop samples above the MSA; the report has them per stage
    (with the MSA) and end to end."""
    report, lines = render_tone(tmp_path, capsys, "  - oversample:\n      factor: 64\n      chain:\n"
                                "        - requantize: {bits: 1, dither: none, shaping: {order: 5}}\n", 0.6, 4800)
    line = next(line for line in lines if "maximum stable" in line)
    found = re.fullmatch(r"rtq: (\d+) samples above the noise-shaping loop's maximum stable amplitude \(0\.537 peak; "
                         r"counted at the loop's rate\) \(ch1 (\d+), ch2 (\d+)\)", line)
    assert found, line
    total, *per_channel = (int(n) for n in found.groups())
    stage = report["stages"][0]
    assert stage["msa"] == pytest.approx(0.537, abs=0.001)
    assert stage["overloads"] == report["end_to_end"]["overloads"] == per_channel
    # 29.5 % of the 64 x 4800 loop samples: the share of each period above 0.537
    assert total == pytest.approx(2 * 64 * 4800 * (1 - 2 / np.pi * np.arcsin(stage["msa"] / 0.6)), rel=0.01)
