"""ChainMeter: per-stage and end-to-end figures of a running chain against numpy and theory."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from rtq.chain import Chain
from rtq.dsp.shaping import select_table
from rtq.meter.chain_meter import ChainMeter, LevelHistory, RenderMeter, TapPair, keep_freed_memory, populate
from rtq.stages import Gain, Quantize, Requantize
from figures import assert_same_figures
from signals import faded_sine

FS = 48000
N = 1 << 17
Q16 = 2.0 ** -15


def noise(n=N, channels=2, level_db=-20.0, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, channels)) * 10 ** (level_db / 20)


def run(chain, x, fs=FS, block=1024, poll_every=1, **meter_options):
    """Process ``x`` block by block with taps; returns (output, meter)."""
    chain.prepare(fs, x.shape[1], block, taps=True)
    meter = ChainMeter(chain, **meter_options)
    y = np.ascontiguousarray(x.copy())
    for k, i in enumerate(range(0, len(y), block)):
        chain.process(y[i:i + block])
        if k % poll_every == 0:
            meter.poll()
    meter.poll()
    return y, meter


def db(power):
    return 10 * np.log10(power)


def welch_bin_power(e, nfft=4096):
    """Independent Welch (periodic Hann, hop nfft/2, complete segments only): power per
    one-sided bin, adding up to mean(e^2) for white noise."""
    hop = nfft // 2
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(nfft) / nfft)
    segments = [e[s:s + nfft] for s in range(0, len(e) - nfft + 1, hop)]
    power = np.mean([np.abs(np.fft.rfft(seg * window)) ** 2 for seg in segments], axis=0)
    share = np.full(nfft // 2 + 1, 2.0)
    share[[0, -1]] = 1.0
    return power * share / nfft / np.sum(window ** 2)


def a_weighting_power(f):
    """|A(f)|^2 from the IEC 61672 formula (theory.md), 0 dB at 1 kHz."""
    f2 = f ** 2
    ra = 12194.0 ** 2 * f2 ** 2 / ((f2 + 20.6 ** 2) * np.sqrt((f2 + 107.7 ** 2) * (f2 + 737.9 ** 2))
                                   * (f2 + 12194.0 ** 2))
    return (ra * 10 ** (2.0 / 20)) ** 2


def test_tpdf_16_stage_matches_numpy_and_theory():
    x = noise()
    y, meter = run(Chain([Requantize(16, "tpdf")], seed=5), x)
    stage = meter.report()["stages"][0]
    e = y - x
    assert stage["stage"] == "requantize 16-bit tpdf" and stage["bits"] == 16 and stage["index"] == 0
    assert stage["frames"] == N and stage["dropped_frames"] == 0
    np.testing.assert_allclose(stage["rms_dbfs"], db(np.mean(e ** 2, axis=0)), atol=1e-9)
    np.testing.assert_allclose(stage["rms_dbfs"], -96.33, atol=0.1)             # q^2/4
    np.testing.assert_allclose(stage["peak_dbfs"], 20 * np.log10(np.abs(e).max(axis=0)), atol=1e-9)
    np.testing.assert_allclose(stage["dc_lsb"], e.mean(axis=0) / Q16, atol=1e-9)
    np.testing.assert_allclose(stage["snr_db"], db(np.sum(x ** 2, axis=0) / np.sum(e ** 2, axis=0)), atol=1e-9)
    # Spectrum and A-weighting against an independent Welch and the IEC formula.
    freq = np.array(stage["spectrum"]["freq_hz"])
    for c in range(2):
        power = welch_bin_power(e[:, c])
        np.testing.assert_allclose(stage["spectrum"]["psd_dbfs"][c][1:], db(power[1:]), atol=0.01)
        weighted = db(np.sum(power[1:] * a_weighting_power(freq[1:])))
        assert abs(stage["a_weighted_dbfs"][c] - weighted) < 0.1
    # TPDF floor: (q^2/4) per unit bandwidth spread over the bins.
    assert stage["spectrum"]["floor_dbfs"][100] == pytest.approx(db(Q16 ** 2 / 4 * 2 / 4096), abs=1e-6)
    # The histogram holds every error (TPDF + rounding stays within 1.5 LSB).
    counts = np.array(stage["histogram"]["count"])
    np.testing.assert_array_equal(counts.sum(axis=1), [N, N])
    expected = np.histogram(e[:, 0] / Q16, bins=np.arange(-32, 33) / 8)[0]
    np.testing.assert_array_equal(counts[0], expected)
    assert all(all(row) for row in stage["bits_in_use"])


def test_undithered_full_scale_sine_snr_and_enob():
    t = np.arange(N) / FS
    x = ((1 - Q16) * np.sin(2 * np.pi * 997.0 * t))[:, None]
    y, meter = run(Chain([Requantize(16, "none")]), x)
    stage = meter.report()["stages"][0]
    e = y - x
    assert stage["snr_db"][0] == pytest.approx(db(np.sum(x ** 2) / np.sum(e ** 2)), abs=1e-9)
    assert stage["snr_db"][0] == pytest.approx(6.02 * 16 + 1.76, abs=0.2)       # 98.09 dB
    assert stage["rms_dbfs"][0] == pytest.approx(-6.02 * 16 - 4.77, abs=0.1)    # q^2/12
    assert stage["enob"][0] == pytest.approx(16.0, abs=0.05)
    assert stage["clips"] == [0]


def test_shibata_spectrum_follows_its_target():
    fs = 44100
    x = noise(3 * fs, 1, seed=2)
    y, meter = run(Chain([Requantize(16, "tpdf", shaping="shibata")], seed=3), x, fs=fs)
    stage = meter.report()["stages"][0]
    spectrum = stage["spectrum"]
    freq = np.array(spectrum["freq_hz"])
    # The target is (q^2/4) |NTF|^2 per unit bandwidth, computed here from the table.
    ntf = select_table("shibata", fs).ntf(2 * np.pi * freq / fs)
    share = np.full(len(freq), 2 / 4096)
    share[[0, -1]] = 1 / 4096
    np.testing.assert_allclose(spectrum["target_dbfs"], db(Q16 ** 2 / 4 * np.abs(ntf) ** 2 * share), atol=1e-6)
    # Measured equals the independent Welch ...
    e = (y - x)[:, 0]
    measured = 10 ** (np.array(spectrum["psd_dbfs"][0]) / 10)
    np.testing.assert_allclose(db(measured[1:]), db(welch_bin_power(e)[1:]), atol=0.01)
    # ... and follows the target within 1 dB from 100 Hz to 0.45 fs (power averaged over
    # 9 neighbouring bins, ~97 Hz, to tame the Welch estimate's own scatter).
    target = 10 ** (np.array(spectrum["target_dbfs"]) / 10)
    kernel = np.ones(9) / 9
    ratio = db(np.convolve(measured, kernel, "same") / np.convolve(target, kernel, "same"))
    band = (freq >= 100) & (freq <= 0.45 * fs)
    assert np.abs(ratio[band]).max() < 1.0
    # Total shaped error power against its theoretical value (q^2/4) mean |NTF|^2.
    w = np.linspace(0, np.pi, 1 << 15)
    theory = db(Q16 ** 2 / 4 * np.mean(np.abs(select_table("shibata", fs).ntf(w)) ** 2))
    assert stage["rms_dbfs"][0] == pytest.approx(theory, abs=0.1)


def test_report_does_not_depend_on_block_size_or_polling():
    x = noise(40000, 2, seed=4)

    def report(block, poll_every):
        return run(Chain([Gain(-1.0), Requantize(12, "tpdf", shaping="lipshitz")], seed=9), x, fs=44100,
                   block=block, poll_every=poll_every, history_s=0.05)[1].report()

    reference = report(4096, 1)
    for block, poll_every in ((64, 1), (1000, 3), (8192, 1), (333, 40)):
        other = report(block, poll_every)
        for key in ("stages", "end_to_end"):
            a = reference[key][0] if key == "stages" else reference[key]
            b = other[key][0] if key == "stages" else other[key]
            assert a["frames"] == b["frames"] == 40000
            np.testing.assert_allclose(a["rms_dbfs"], b["rms_dbfs"], rtol=0, atol=1e-9)
            np.testing.assert_allclose(np.array(a["spectrum"]["psd_dbfs"], float),
                                       np.array(b["spectrum"]["psd_dbfs"], float), atol=1e-9)
            assert a["histogram"]["count"] == b["histogram"]["count"]
            np.testing.assert_allclose(np.array(a["level_history"]["rms_dbfs"], float),
                                       np.array(b["level_history"]["rms_dbfs"], float), atol=1e-9)
            assert b["dropped_frames"] == 0


def test_end_to_end_compares_against_input_times_net_gain():
    x = noise()
    y, meter = run(Chain([Gain(-6.0), Requantize(16, "tpdf")], seed=1), x)
    report = meter.report()
    stage, e2e = report["stages"][0], report["end_to_end"]
    assert report["net_gain_db"] == pytest.approx(-6.0) and report["latency_samples"] == 0
    assert e2e["frames"] == N and e2e["stage"] == "end to end"
    expected = db(np.mean((y - x * 10 ** (-6 / 20)) ** 2, axis=0))
    np.testing.assert_allclose(e2e["rms_dbfs"], expected, atol=1e-9)
    np.testing.assert_allclose(e2e["rms_dbfs"], stage["rms_dbfs"], atol=1e-9)
    np.testing.assert_allclose(e2e["rms_dbfs"], -96.33, atol=0.1)


def test_every_quantizer_of_a_chain_is_metered_at_its_own_word_length():
    x = noise()
    chain = Chain([Requantize(24, "tpdf"), Gain(-3.0), Requantize(8, "none"), Quantize("mu-law")], seed=2)
    _, meter = run(chain, x)
    stages = meter.report()["stages"]
    assert [(s["index"], s["bits"]) for s in stages] == [(0, 24), (2, 8), (3, 8)]
    np.testing.assert_allclose(stages[0]["rms_dbfs"], -6.02 * 24, atol=0.1)          # TPDF q^2/4
    np.testing.assert_allclose(stages[1]["rms_dbfs"], -6.02 * 8 - 4.77, atol=0.1)    # rounding q^2/12
    mulaw = stages[2]
    assert mulaw["law"] == "mu-law" and mulaw["histogram"] is None
    # mu-law of an 8-bit grid signal: the error is the companding error, far above 16 bits.
    assert -60 < mulaw["rms_dbfs"][0] < -40


def test_clips_and_nonfinite_come_from_the_program_counters():
    x = noise(8192, 2, level_db=-10)
    x[100:110, 0] = 1.5          # clips in channel 0
    x[200:203, 1] = np.nan       # sanitized to 0 and counted
    chain = Chain([Requantize(16, "tpdf"), Requantize(8, "tpdf")], seed=1)
    _, meter = run(chain, x, block=512)
    report = meter.report()
    counters = chain.program.counters
    for stage, q in zip(report["stages"], chain.quantizer_info.values()):
        assert stage["clips"] == counters[q.op_index, :, 0].tolist()
        assert stage["nonfinite"] == [0, 3]
    assert report["stages"][0]["clips"][0] >= 10
    assert report["end_to_end"]["clips"] == [sum(s["clips"][c] for s in report["stages"]) for c in range(2)]
    assert report["end_to_end"]["nonfinite"] == [0, 3]
    meter.reset()
    assert meter.report()["stages"][0]["clips"] == [0, 0]


def test_momentary_window_covers_the_last_blocks():
    x = noise()
    y, meter = run(Chain([Requantize(16, "rpdf")], seed=7), x)
    momentary = meter.report("momentary")["stages"][0]
    blocks = round(0.3 * FS / 2048)
    assert momentary["frames"] == blocks * 2048
    tail = (y - x)[-blocks * 2048:]
    np.testing.assert_allclose(momentary["rms_dbfs"], db(np.mean(tail ** 2, axis=0)), atol=1e-9)


def test_polling_from_another_thread_while_the_chain_runs():
    """Live use: the audio side runs freely; the meter only ever pairs matching frames."""
    x = noise(FS * 2, 2, seed=11)
    chain = Chain([Gain(-0.5), Requantize(16, "tpdf")], seed=4)
    chain.prepare(FS, 2, 64, taps=True)
    meter = ChainMeter(chain, from_start=False)
    y = x.copy()
    done = threading.Event()

    def audio():
        for i in range(0, len(y), 64):
            chain.process(y[i:i + 64])
        done.set()

    thread = threading.Thread(target=audio)
    thread.start()
    while not done.wait(0.002):        # a display thread polling at up to ~500 Hz
        meter.poll()
    thread.join()
    meter.poll()
    report = meter.report()
    for entry in (report["stages"][0], report["end_to_end"]):
        assert entry["frames"] + entry["dropped_frames"] == len(x)
        assert entry["frames"] > 0
        # A mismatched pair would be an error of the signal's size (-20 dBFS), not -96.
        np.testing.assert_allclose(entry["rms_dbfs"], -96.33, atol=0.3)
        assert entry["peak_dbfs"][0] < 20 * np.log10(2 * Q16)


class FakeReader:
    """A tap reader over a known stream, handing out chunks of chosen sizes."""

    def __init__(self, stream):
        self.stream, self.position, self.available, self.dropped = stream, 0, 0, 0

    def read(self, settled=False):
        data = self.stream[self.position:self.available]
        self.position = self.available
        return data


def test_tap_pair_delays_x_and_waits_for_the_slower_tap():
    rng = np.random.default_rng(0)
    stream = rng.standard_normal((5000, 1))
    delay = 37
    delayed = np.concatenate([np.zeros((delay, 1)), stream])[:len(stream)]
    rx, ry = FakeReader(stream), FakeReader(delayed)
    pair = TapPair(rx, ry, 1, delay=delay)
    xs, ys = [], []
    while ry.available < len(stream):
        # The x tap runs ahead of the y tap by a random amount, as inside a block.
        ry.available = min(len(stream), ry.available + int(rng.integers(0, 300)))
        rx.available = max(rx.available, min(len(stream), ry.available + int(rng.integers(0, 200))))
        x, y = pair.read()
        assert len(x) == len(y)
        xs.append(x)
        ys.append(y)
    x, y = np.concatenate(xs), np.concatenate(ys)
    assert len(x) == len(stream) and pair.dropped == 0
    np.testing.assert_array_equal(x, y)          # y[n] = x[n - delay], x < 0 is zero


def test_tap_pair_counts_lapped_frames_as_dropped():
    stream = np.arange(1000.0)[:, None]
    rx, ry = FakeReader(stream), FakeReader(stream)
    pair = TapPair(rx, ry, 1)
    rx.available = ry.available = 100
    pair.read()
    rx.position = ry.position = 400      # both lapped: 100..400 lost
    rx.available = ry.available = 500
    x, y = pair.read()
    np.testing.assert_array_equal(x[:, 0], np.arange(400, 500))
    assert pair.dropped == 300


def test_level_history_is_bounded_and_keeps_the_energy():
    history = LevelHistory(1000.0, 1, interval_s=0.01, max_points=16)
    e = np.random.default_rng(1).standard_normal((100_000, 1))
    for i in range(0, len(e), 777):
        history.update(e[i:i + 777])
    result = history.result()
    assert len(result["time_s"]) <= 17
    interval = round(result["interval_s"] * 1000)
    assert interval == 10 * 2 ** 10         # 17 values of 5120 frames (87 s) do not fit in 16
    complete = len(result["time_s"]) - 1
    expected = db(np.mean(e[:complete * interval].reshape(complete, interval) ** 2, axis=1))
    np.testing.assert_allclose(result["rms_dbfs"][0][:complete], expected, atol=1e-9)


def test_render_meter():
    chain = Chain([Requantize(16, "tpdf")], seed=1)
    chain.prepare(FS, 1, 256, taps=True)
    x = noise(4096, 1)
    observer = RenderMeter()
    y = x.copy()
    for i in range(0, len(y), 256):
        chain.process(y[i:i + 256])
        if i >= 1024:                              # created late: still reads from the start
            observer(chain)
    report = observer.finish(chain).report()
    assert report["stages"][0]["frames"] == 4096
    np.testing.assert_allclose(report["stages"][0]["rms_dbfs"], db(np.mean((y - x) ** 2)), atol=1e-9)


def test_end_to_end_shares_the_only_quantizers_meter_while_its_frames_are_the_same():
    """Gain then a requantizer: end to end sees exactly the stage's frames (the input
    times the net gain is the stage's input, to the bit), so it shares the stage's meter;
    its figures are those of a meter of its own, and so are they after a fork midway."""
    x = noise(N, 2)
    chain = Chain([Gain(-0.1), Requantize(16, "tpdf", shaping="shibata")], seed=5)
    chain.prepare(FS, 2, 1024, taps=True)
    twinned, alone, forked = (ChainMeter(chain) for _ in range(3))
    # Frames gathered before measuring (as a render's meter does): the same again.
    batched, batched_forked = (ChainMeter(chain, batch_frames=5000) for _ in range(2))
    alone._end_to_end.fork()
    y = x.copy()
    for k, i in enumerate(range(0, N, 1024)):
        chain.process(y[i:i + 1024])
        if k == 60:
            forked._end_to_end.fork()
            batched_forked._end_to_end.fork()        # while the stage holds frames not yet measured
        for meter in (twinned, alone, forked, batched, batched_forked):
            meter.poll()
    assert twinned._end_to_end.twin is twinned._entries[0]       # never forked: the frames were the same
    assert batched._end_to_end.twin is batched._entries[0]
    assert alone._end_to_end.twin is None and forked._end_to_end.twin is None
    expected = alone.report()["end_to_end"]
    assert expected["frames"] == N and expected["stage"] == "end to end" and expected["index"] is None
    for meter in (twinned, forked, batched, batched_forked):
        assert_same_figures(meter.report()["end_to_end"], expected)
        assert_same_figures(meter.report()["stages"], alone.report()["stages"])
    e = y - x * 10 ** (-0.1 / 20)
    np.testing.assert_allclose(expected["rms_dbfs"], db(np.mean(e ** 2, axis=0)), atol=1e-9)


def test_batches_measured_on_threads_of_their_own_give_the_same_figures():
    """With workers (rtq render --report), each point measures a batch on a thread of
    its own while the next is read: the figures are those measured in line, before and
    after a twin's fork, clips counted on the way included; and for an oversampled
    stage measured on sampled windows beside end to end (no twin there: end to end
    and the oversampled stage read different taps)."""
    from rtq.presets import load_preset

    x = noise(N, 2)
    x[5000:5040, 1] = 1.5                            # clipped: counted while measuring
    cases = [(Chain([Gain(-0.1), Requantize(16, "tpdf", shaping="shibata")], seed=5), FS, 1024, {}, True),
             (Chain.from_spec(load_preset("dsd64-1bit")), 44100, 4096, {"sample": (2048, 16384)}, False)]
    for chain, rate, block, options, twinned in cases:
        chain.prepare(rate, 2, block, taps=True)
        # twinned: the last two fork midway
        meters = [ChainMeter(chain, batch_frames=5000, workers=workers, **options)
                  for workers in ((1, 2, 1, 2) if twinned else (1, 2))]
        assert [meter._end_to_end.twin is not None for meter in meters] == [twinned] * len(meters)
        y = x.copy()
        for k, i in enumerate(range(0, N, block)):
            chain.process(y[i:i + block])
            if k == N // block // 2 and twinned:
                for meter in meters[2:]:
                    meter._end_to_end.fork()
                    assert meter._end_to_end.twin is None
            for meter in meters:
                meter.poll()
        for meter in meters:
            meter.close()
        reports = [meter.report() for meter in meters]
        assert reports[0]["end_to_end"]["clips"][1] > 0
        assert_same_figures(reports[1], reports[0])
        if twinned:
            assert [meter._end_to_end.twin is not None for meter in meters] == [True, True, False, False]
            assert_same_figures(reports[3], reports[2])
            assert_same_figures(reports[2], reports[0])


def test_measurements_wait_for_older_ones_only_beyond_the_queue():
    """A point's measurements queue on its measurer while those queued hold at most
    ``queue`` frames (the stream time of the tap rings, at the point's rate: a sampled
    window's burst queues while the chain goes on); beyond, they wait for the oldest."""
    chain = Chain([Gain(-0.1), Requantize(8, "tpdf")], seed=5)
    _, meter = run(chain, noise(8192, 2), block=1024, batch_frames=2000, workers=2)
    entry = meter._entries[0]
    assert entry.queue == chain.program.taps.shape[2]
    release = threading.Event()
    done = []
    entry.queue = 3000
    entry._submit(release.wait, frames=1)                  # the measurer busy
    entry._submit(done.append, (1,), frames=2000)          # 1 frame queued before it
    entry._submit(done.append, (2,), frames=2000)          # 2001
    third = threading.Thread(target=entry._submit, args=(done.append, (3,)), kwargs={"frames": 10})
    third.start()                                          # 4001 queued: waits for the oldest
    third.join(0.2)
    assert third.is_alive() and done == []
    release.set()
    third.join(10)
    entry.wait()
    assert done == [1, 2, 3]
    meter.close()


def test_populate_leaves_the_contents_as_they_are():
    """RenderMeter faults in the taps' rings while the chain writes them: populate
    must not write (a madvise that discards pages would zero them)."""
    written = np.arange(3 << 20, dtype=np.float64)
    fresh = np.zeros(1 << 20)
    populate([written, fresh, written[1:7], fresh[:0]])
    assert np.array_equal(written, np.arange(3 << 20)) and not fresh.any()


def test_keep_freed_memory_reuses_a_freed_block():
    """RenderMeter keeps the memory the process frees for reuse: a block of a few MB
    (a 64x tap's read, 2048 pages) freed and taken again faults in none of its pages
    (without it: 483 faults here). The thread's count also holds the interpreter's own
    small allocations (2 seen once in CI, 0 usually): at most 16 faults are allowed."""
    import resource

    keep_freed_memory()
    block = np.ones(1 << 20)
    del block
    before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
    block = np.ones(1 << 20)
    assert resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before <= 16


def test_close_stops_every_thread_when_a_measurement_failed():
    """close() waits for every point, stops every thread, then raises the first error."""
    chain = Chain([Gain(-0.1), Requantize(8, "tpdf")], seed=5)
    before = set(threading.enumerate())
    _, meter = run(chain, noise(8192, 2), block=1024, batch_frames=2000, workers=3)
    entries = [*meter._entries, meter._end_to_end]
    assert all(entry.measurer is not None for entry in entries)

    def fails(message):
        raise RuntimeError(message)

    for entry, message in zip(entries, ("first", "second")):
        entry._pending.append((entry.measurer.submit(fails, message), 0))
    with pytest.raises(RuntimeError, match="first"):
        meter.close()
    assert all(entry.measurer is None for entry in entries) and meter._pool is None and meter._transforms is None
    assert set(threading.enumerate()) == before


def test_end_to_end_goes_its_own_way_when_its_frames_differ_from_the_stages():
    """A low-pass before the requantizer: the stage's input is filtered, end to end's
    is the delayed input, so end to end measures alone (and reads the filtering)."""
    from rtq.stages import Lowpass

    x = noise(1 << 15, 1)
    chain = Chain([Lowpass(15000.0), Requantize(16, "tpdf")], seed=2)
    y, meter = run(chain, x)
    report = meter.report()
    assert meter._end_to_end.twin is None
    latency = chain.latency_samples
    e = y[latency:, 0] - x[:len(x) - latency, 0]
    assert report["end_to_end"]["frames"] == len(x)
    e_all = np.concatenate([y[:latency, 0], e])       # the input before the start is zeros
    np.testing.assert_allclose(report["end_to_end"]["rms_dbfs"][0], db(np.mean(e_all ** 2)), atol=1e-9)
    np.testing.assert_allclose(report["stages"][0]["rms_dbfs"][0], db(Q16 ** 2 / 4), atol=0.2)   # TPDF: q^2/4


def test_a_renders_sampled_stage_reads_the_exact_figures_within_the_stated_bounds():
    """RenderMeter measures a stage at an oversampled rate on SAMPLE's windows only
    (the README's estimated figures): on a steady signal, the DSD preset's loop read
    there within 0.05 dB of a meter of every sample in its levels, 0.1 dB in its
    weighted levels, 0.5 dB per spectrum bin on average; end to end, measured on every
    sample, exactly the same."""
    from rtq.presets import load_preset

    every = RenderMeter.SAMPLE[1]
    n = 2 * every + RenderMeter.SAMPLE[0]              # three windows
    t = np.arange(n) / 44100
    x = (0.5 * np.sin(2 * np.pi * 997.0 * t))[:, None] + noise(n, 1, level_db=-30.0)
    chain = Chain.from_spec(load_preset("dsd64-1bit"))
    chain.prepare(44100, 1, 8192, taps=True)
    sampled, exact = RenderMeter(), RenderMeter(sample=None)
    y = x.copy()
    for i in range(0, n, 8192):
        chain.process(y[i:i + 8192])
        sampled(chain)
        exact(chain)
    reports = [observer.finish(chain).report() for observer in (sampled, exact)]
    estimate, truth = (report["stages"][0] for report in reports)
    assert truth["frames"] == 64 * n and estimate["frames"] == 64 * 3 * RenderMeter.SAMPLE[0]
    assert estimate["dropped_frames"] == truth["frames"] - estimate["frames"]
    for key in ("rms_dbfs", "psnr_db", "snr_db"):
        np.testing.assert_allclose(estimate[key], truth[key], atol=0.05)
    for key in ("a_weighted_dbfs", "itu468_dbfs"):
        np.testing.assert_allclose(estimate[key], truth[key], atol=0.1)
    bins = np.abs(np.array(estimate["spectrum"]["psd_dbfs"]) - np.array(truth["spectrum"]["psd_dbfs"]))
    assert np.mean(bins) < 0.5
    assert estimate["peak_dbfs"][0] <= truth["peak_dbfs"][0]
    assert_same_figures(reports[0]["end_to_end"], reports[1]["end_to_end"])


def test_untapped_chain_is_refused():
    chain = Chain([Requantize(16)])
    chain.prepare(FS, 1, 256)
    with pytest.raises(ValueError, match="taps=True"):
        ChainMeter(chain)


def test_oversampled_stage_is_metered_at_its_rate_and_end_to_end_through_the_latency():
    from rtq.stages import Oversample

    n = 1 << 15
    t = np.arange(n) / FS
    x = np.stack([0.5 * np.sin(2 * np.pi * 1000.0 * t), 0.5 * np.sin(2 * np.pi * 1300.0 * t + 1)], axis=1)
    chain = Chain([Gain(-1.0), Oversample(8, [Requantize(8, "tpdf")], integer_latency=True)], seed=3)
    y, meter = run(chain, x, block=512)
    report = meter.report()
    stage, e2e = report["stages"][0], report["end_to_end"]
    assert stage["path"] == [1, 0] and stage["sample_rate"] == 8 * FS and stage["frames"] == 8 * n
    np.testing.assert_allclose(stage["rms_dbfs"], -6.02 * 8, atol=0.1)      # TPDF at 8 bits, at 8 fs
    latency = report["latency_samples"]
    assert latency == round(chain.latency) > 0
    g = 10 ** (-1 / 20)
    expected = y - g * np.concatenate([np.zeros((latency, 2)), x])[:n]
    np.testing.assert_allclose(e2e["rms_dbfs"], db(np.mean(expected ** 2, axis=0)), atol=1e-9)
    # Back at the stream rate only the band below fs/2 of the white 8 fs error is left
    # (1/8 of it): the delay lines up, or the sines would dominate the error.
    np.testing.assert_allclose(e2e["rms_dbfs"], -6.02 * 8 - 10 * np.log10(8), atol=0.5)


def sigma_delta_64x(integer_latency):
    """The issue's chain: a 1-bit order-5 loop at 64x (fractional latency by default)."""
    from rtq.stages import Oversample

    return Chain([Oversample(64, [Requantize(1, "none", shaping={"order": 5})],
                             integer_latency=integer_latency)])


def test_end_to_end_meets_a_fractional_latency_exactly():
    """64x linear-phase oversampling delays by 106.28125 samples.  The input rounded to
    106 samples late read the 0.28 sample left as error: SNR 28.7 dB on a 1 kHz sine of
    peak 0.5 (the bare resampler: the same).  Delayed exactly, the figures are those of
    the same chain padded to 107 samples (integer_latency), within 0.5 dB: 110.6 dB
    (the modulator's in-band noise and what the decimator lets through above 20 kHz)."""
    from rtq.stages import Oversample

    x = faded_sine(0.5)
    figures = {}
    for padded in (False, True):
        chain = sigma_delta_64x(padded)
        _, meter = run(chain, x, block=1024)
        report = meter.report()
        figures[padded] = report["end_to_end"]
        assert report["latency_samples"] == (107 if padded else 106.28125)
    assert figures[False]["fractional_delay"] == {"taps": 132, "error_floor_db": -170.0}
    assert figures[True]["fractional_delay"] is None
    for key in ("snr_db", "sinad_db", "rms_dbfs"):
        np.testing.assert_allclose(figures[False][key], figures[True][key], atol=0.5)
    assert min(figures[False]["snr_db"]) > 105
    # The resampler alone: its error is its 140 dB design's, not the misalignment's.
    _, meter = run(Chain([Oversample(64, [Gain(0.0)])]), x, block=1024)
    assert min(meter.report()["end_to_end"]["snr_db"]) > 125


def test_net_gain_is_rounded_to_a_millionth_of_a_db():
    chain = Chain([Gain(-0.05), Gain(-0.05), Requantize(16)])
    assert 20 * np.log10(chain.net_gain()) != -0.1            # -0.09999999999999984
    _, meter = run(chain, noise(4096))
    assert meter.report()["net_gain_db"] == -0.1


def test_oversampled_taps_record_capture_windows_only_when_asked():
    """meta[META_CAPTURE]: 0 records nothing at oversampled rates (the stream-rate taps go
    on), N records exactly N stream frames (both taps of a quantizer the same ones) then
    stops, -1 records everything."""
    from rtq.program import CAPTURE_ALWAYS, META_CAPTURE
    from rtq.stages import Oversample

    chain = Chain([Oversample(8, [Requantize(8, "tpdf")])], seed=3)
    chain.prepare(FS, 2, 64, taps=True)
    tap_in, tap_out = chain.quantizer_info[(0, 0)].taps
    written = chain.program.istate

    def counts():
        return (int(written[chain.input_tap.written_index]), int(written[tap_in.written_index]),
                int(written[tap_out.written_index]))

    x = noise(64 * 10)
    assert chain.program.meta[META_CAPTURE] == CAPTURE_ALWAYS
    chain.process(x[:64].copy())
    assert counts() == (64, 8 * 64, 8 * 64)
    chain.program.meta[META_CAPTURE] = 0
    chain.process(x[64:192].copy())
    assert counts() == (192, 8 * 64, 8 * 64)
    chain.program.meta[META_CAPTURE] = 100          # ends inside the second 64-frame piece
    for i in range(192, 640, 64):
        chain.process(x[i:i + 64].copy())
    assert counts() == (640, 8 * 164, 8 * 164)
    assert chain.program.meta[META_CAPTURE] == 0


def test_windowed_meter_measures_an_oversampled_stage_as_the_full_one():
    """A live meter (windowed) sees only capture windows of the 64x stage, yet measures its
    error as a meter reading everything does, and counts the frames it skipped."""
    from rtq.stages import Oversample

    def make():
        return Chain([Oversample(64, [Requantize(12, "tpdf")])], seed=2)

    x = noise(1 << 14, level_db=-30.0)       # never near full scale: no clipping
    full_chain = make()
    _, full = run(full_chain, x, block=64)
    windowed_chain = make()
    # polls every 2048 frames, windows of the whole 32768-frame ring at 64x = 512 frames
    y, windowed = run(windowed_chain, x, block=64, poll_every=32, windowed=True)
    a, b = full.report()["stages"][0], windowed.report()["stages"][0]
    assert a["frames"] == 64 * len(x) and a["dropped_frames"] == 0
    assert 0 < b["frames"] <= a["frames"] // 4
    assert b["frames"] + b["dropped_frames"] >= 0.9 * a["frames"]
    np.testing.assert_allclose(b["rms_dbfs"], -6.02 * 12, atol=0.2)   # TPDF at 12 bits (theory.md)
    np.testing.assert_allclose(b["rms_dbfs"], a["rms_dbfs"], atol=0.2)
    # the audio does not depend on what the taps record
    np.testing.assert_array_equal(y, run(make(), x, block=64)[0])


def test_windowed_meter_spectrum_joins_no_two_windows():
    """A 1-bit fifth-order modulator at 64x has its error 130 dB below full scale in the
    audio band and near full scale above it.  Capture windows are pieces of that signal
    from different times: a spectrum segment spanning two of them leaks the splice into
    every bin (the in-band error read -60 dB when segments did).  Windows of one ring,
    each starting a new segment, read the in-band error as the full meter does."""
    from rtq.stages import Oversample

    def make():
        order5 = Requantize(1, "none", shaping={"kind": "design", "order": 5})
        return Chain([Gain(-6.0), Oversample(64, [order5], integer_latency=True)], seed=1)

    def in_band_db(meter):
        spectrum = meter.report()["stages"][0]["spectrum"]
        freq = np.array(spectrum["freq_hz"])
        band = (freq > 0) & (freq <= 20000)
        return db((10 ** (np.array(spectrum["psd_dbfs"]) / 10))[:, band].sum(axis=1))

    x = noise(1 << 15, level_db=-20.0)
    _, full = run(make(), x, block=64)
    _, windowed = run(make(), x, block=64, poll_every=32, windowed=True)
    stage = windowed.report()["stages"][0]
    ring = windowed.program.taps.shape[2]
    assert stage["frames"] > 0 and stage["frames"] % ring == 0      # whole windows only
    assert np.all(in_band_db(full) < -125.0)
    np.testing.assert_allclose(in_band_db(windowed), in_band_db(full), atol=0.5)
