"""Offline rendering through ``render_file``: the file read back is exactly the chain's
output (no second rounding by libsndfile), output subtypes, FLAC fallback, atomic
output on interruption, bounded memory, non-finite input and clip counters."""
from __future__ import annotations

import contextlib
import io
import os
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from figures import assert_same_figures
from filesystems import anonymous_files
from signals import make_signal, write_input

from rtq.chain import Chain
from rtq.errors import PresetError, UsageError
from rtq.program import TapReader
from rtq.presets import load_preset
from rtq.render import _ChannelGroups, _Progress, render_file
from rtq.stages import Requantize


def exact32(x: np.ndarray) -> np.ndarray:
    """``x`` rounded to float32 values (what a FLOAT WAV stores), as float64."""
    return np.asarray(x, dtype=np.float32).astype(np.float64)


def listing(directory: Path) -> set[str]:
    return set(os.listdir(directory))


# (preset, rate, channels, subtype the last stage implies)
EXACT_CASES = [
    ("cd-16-shibata", 44100, 2, "PCM_16"),
    ("cd-16-shibata", 48000, 2, "PCM_16"),
    ("tpdf-24", 48000, 2, "PCM_24"),
    ("telephone-mulaw", 8000, 2, "ULAW"),
    ("telephone-alaw", 8000, 2, "ALAW"),
    ("lofi-6", 44100, 2, "PCM_U8"),        # 6-bit grid: WAV's smallest exact integer subtype
    ("cd-16-gesemann", 44100, 2, "PCM_16"),
    ("cd-16-gesemann", 48000, 1, "PCM_16"),
]


@pytest.mark.parametrize("preset,rate,channels,subtype", EXACT_CASES,
                         ids=[f"{p}-{r}-{c}ch" for p, r, c, _ in EXACT_CASES])
def test_file_equals_python_api_bit_for_bit(tmp_path, preset, rate, channels, subtype):
    x = make_signal(5000, channels, seed=rate + channels, rate=rate)
    if channels == 1:
        x = x[:, 0]
    inp = write_input(tmp_path / "in.wav", x, rate)
    out = tmp_path / "out.wav"

    result = render_file(Chain.from_preset(preset), inp, out, progress=False)
    y = Chain.from_preset(preset)(x, rate)
    z, zrate = sf.read(str(out), dtype="float64")

    assert result.subtype == subtype and sf.info(str(out)).subtype == subtype
    assert (result.frames, result.sample_rate, result.channels, result.latency) == (5000, rate, channels, 0)
    assert zrate == rate and z.shape == y.shape
    assert not np.array_equal(y, x)                       # the chain did something
    assert np.array_equal(z, y)                           # bit for bit
    assert listing(tmp_path) == {"in.wav", "out.wav"}     # no temp file left behind


@pytest.mark.parametrize("preset,rate,channels,subtype", EXACT_CASES,
                         ids=[f"{p}-{r}-{c}ch" for p, r, c, _ in EXACT_CASES])
def test_stored_codes_are_the_stage_output(tmp_path, preset, rate, channels, subtype):
    """The integers in the file are exactly the chain's grid codes: libsndfile neither
    rounds nor dithers a second time."""
    x = make_signal(4000, channels, seed=7, rate=rate)
    inp = write_input(tmp_path / "in.wav", x, rate)
    out = tmp_path / "out.wav"
    render_file(Chain.from_preset(preset), inp, out, progress=False)
    y = Chain.from_preset(preset)(x, rate)

    if subtype in ("PCM_16", "ULAW", "ALAW", "PCM_U8"):
        codes = sf.read(str(out), dtype="int16", always_2d=True)[0]
        expected = np.rint(y * 32768.0)
        assert np.array_equal(expected, y * 32768.0)      # y lies on the 16-bit grid
        assert np.array_equal(codes.astype(np.float64), expected)
        if subtype == "PCM_U8":                           # lofi-6: the 6-bit grid, in 8 bits
            assert np.array_equal(np.rint(y * 32.0), y * 32.0) and len(np.unique(y)) > 30
    else:
        assert subtype == "PCM_24"
        raw = sf.read(str(out), dtype="int32", always_2d=True)[0]
        assert not np.any(raw & 0xFF)                     # 24-bit container, low byte zero
        expected = np.rint(y * 2.0 ** 23)
        assert np.array_equal(expected, y * 2.0 ** 23)
        assert np.array_equal((raw >> 8).astype(np.float64), expected)
        assert len(np.unique(raw)) > 1000                 # not a trivially coarse signal


def test_flac_of_a_16_bit_chain_is_pcm_16_and_exact(tmp_path):
    x = make_signal(4000, 2, seed=3)
    inp = write_input(tmp_path / "in.wav", x, 44100)
    result = render_file(Chain.from_preset("cd-16-shibata"), inp, tmp_path / "out.flac", progress=False)
    info = sf.info(str(tmp_path / "out.flac"))
    assert (result.subtype, info.format, info.subtype) == ("PCM_16", "FLAC", "PCM_16")
    y = Chain.from_preset("cd-16-shibata")(x, 44100)
    codes = sf.read(str(tmp_path / "out.flac"), dtype="int16")[0]
    assert np.array_equal(codes.astype(np.float64), np.rint(y * 32768.0))
    assert np.array_equal(sf.read(str(tmp_path / "out.flac"))[0], y)


def test_flac_of_lofi_6_falls_back_to_the_smallest_exact_integer_subtype(tmp_path):
    x = make_signal(4000, 2, seed=4)
    inp = write_input(tmp_path / "in.wav", x, 44100)
    result = render_file(Chain.from_preset("lofi-6"), inp, tmp_path / "out.flac", progress=False)
    assert result.subtype == "PCM_S8"                      # FLAC has no FLOAT; 8 >= 6 bits
    assert sf.info(str(tmp_path / "out.flac")).subtype == "PCM_S8"
    y = Chain.from_preset("lofi-6")(x, 44100)
    assert np.array_equal(sf.read(str(tmp_path / "out.flac"))[0], y)


def test_a_28_bit_chain_reads_back_exactly(tmp_path):
    x = make_signal(4000, 2, seed=5)
    inp = write_input(tmp_path / "in.wav", x, 44100)
    render_file(Chain([Requantize(28, "tpdf")], seed=3), inp, tmp_path / "out.wav", progress=False)
    y = Chain([Requantize(28, "tpdf")], seed=3)(x, 44100)
    assert np.array_equal(sf.read(str(tmp_path / "out.wav"))[0], y)


# --- atomic output ---------------------------------------------------------------------

HANG_SECONDS = 2.0   # a 3000-frame render takes milliseconds; longer means a deadlock


def call_with_timeout(fn, timeout=HANG_SECONDS):
    """Run ``fn()`` on a daemon thread; return the exception it raised (None if it
    returned); fail if it does not finish within ``timeout`` seconds."""
    outcome = {}

    def target():
        try:
            fn()
            outcome["exc"] = None
        except BaseException as err:       # KeyboardInterrupt included
            outcome["exc"] = err

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        pytest.fail(f"render did not return within {timeout} s after being interrupted (deadlock)")
    return outcome["exc"]


class Interrupt:
    """An observer that raises ``exc`` on its ``at``-th block, after noting what the
    directory lists and which unnamed files (O_TMPFILE) this process holds open in it at
    that moment.  It first waits a little, as a Ctrl-C during a long render would find
    the I/O threads idle, waiting for buffers (without the wait the outcome would depend
    on thread timing)."""

    def __init__(self, directory: Path, exc: BaseException, at: int = 4):
        self.directory, self.exc, self.at = directory, exc, at
        self.calls = 0
        self.seen: set[str] = set()
        self.unnamed: list[str] = []

    def __call__(self, chain):
        self.calls += 1
        if self.calls == self.at:
            time.sleep(0.2)
            self.seen = listing(self.directory)
            self.unnamed = anonymous_files("self", self.directory)
            raise self.exc


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), RuntimeError("disk on fire")],
                         ids=["KeyboardInterrupt", "RuntimeError"])
def test_interrupted_render_leaves_no_output_and_no_temp_file(tmp_path, exc):
    inp = write_input(tmp_path / "in.wav", make_signal(3000, 2), 44100)
    stop = Interrupt(tmp_path, exc)
    raised = call_with_timeout(lambda: render_file(
        Chain.from_preset("cd-16-shibata"), inp, tmp_path / "out.wav",
        block_size=256, progress=False, observer=stop))
    assert raised is exc
    assert stop.calls == 4
    assert len(stop.unnamed) == 1              # it was streaming, into a file with no name
    assert stop.seen == {"in.wav"}
    assert listing(tmp_path) == {"in.wav"} and anonymous_files("self", tmp_path) == []


def test_interrupt_on_the_last_block_leaves_no_output_and_no_temp_file(tmp_path):
    """Interrupted while the last block is in hand (the reader has reached the end)."""
    inp = write_input(tmp_path / "in.wav", make_signal(3000, 2), 44100)
    stop = Interrupt(tmp_path, KeyboardInterrupt(), at=3)
    raised = call_with_timeout(lambda: render_file(
        Chain.from_preset("cd-16-shibata"), inp, tmp_path / "out.wav",
        block_size=1024, progress=False, observer=stop))
    assert isinstance(raised, KeyboardInterrupt)
    assert stop.calls == 3
    assert len(stop.unnamed) == 1 and stop.seen == {"in.wav"}
    assert listing(tmp_path) == {"in.wav"} and anonymous_files("self", tmp_path) == []


def test_interrupted_forced_render_keeps_the_old_output(tmp_path):
    inp = write_input(tmp_path / "in.wav", make_signal(3000, 2), 44100)
    out = tmp_path / "out.wav"
    out.write_bytes(b"previous contents")
    stop = Interrupt(tmp_path, KeyboardInterrupt(), at=3)
    raised = call_with_timeout(lambda: render_file(
        Chain.from_preset("tpdf-16"), inp, out, block_size=100, force=True, progress=False, observer=stop))
    assert isinstance(raised, KeyboardInterrupt)
    assert len(stop.unnamed) == 1 and stop.seen == {"in.wav", "out.wav"}
    assert out.read_bytes() == b"previous contents"
    assert listing(tmp_path) == {"in.wav", "out.wav"}


def test_observer_is_called_per_block_and_the_taps_hold_every_frame(tmp_path):
    x = make_signal(3000, 2)
    inp = write_input(tmp_path / "in.wav", x, 44100)
    seen_in, seen_out = [], []
    readers = {}

    def observer(chain):
        if not readers:
            readers["in"] = TapReader(chain.program, chain.input_tap)
            readers["out"] = TapReader(chain.program, chain.output_tap)
            readers["in"].position = readers["out"].position = 0
        seen_in.append(readers["in"].read())
        seen_out.append(readers["out"].read())

    render_file(Chain.from_preset("tpdf-16"), inp, tmp_path / "out.wav", block_size=700,
                progress=False, observer=observer)
    assert [len(b) for b in seen_out] == [700, 700, 700, 700, 200]
    assert np.array_equal(np.concatenate(seen_in), x)
    assert np.array_equal(np.concatenate(seen_out), sf.read(str(tmp_path / "out.wav"))[0])


# --- memory ----------------------------------------------------------------------------

class ThreadsSeen:
    """An observer that notes how many threads the process has while the render runs."""

    def __init__(self):
        self.counts = set()

    def __call__(self, chain):
        self.counts.add(threading.active_count())


@pytest.mark.parametrize("preset", ["cd-16-shibata", "bitcrush-4bit-oversampled"])
def test_a_render_of_one_core_writes_the_same_bytes_on_one_thread(tmp_path, preset):
    """threads=1 (rtq batch's one-core workers): reading and writing in turn with the
    chain on the calling thread, latency flush included, gives the same file."""
    inp = write_input(tmp_path / "in.wav", make_signal(20000, 2, seed=5), 44100)
    render_file(Chain.from_preset(preset), inp, tmp_path / "threaded.wav", progress=False, block_size=3000)
    seen = ThreadsSeen()
    before = threading.active_count()
    result = render_file(Chain.from_preset(preset), inp, tmp_path / "inline.wav", progress=False, block_size=3000,
                         threads=1, observer=seen)
    assert seen.counts == {before}
    assert result.frames == 20000
    assert (tmp_path / "inline.wav").read_bytes() == (tmp_path / "threaded.wav").read_bytes()


def test_memory_stays_bounded_for_a_long_file(tmp_path):
    rate, seconds = 48000, 240
    inp = tmp_path / "long.wav"
    rng = np.random.default_rng(11)
    with sf.SoundFile(str(inp), "w", rate, 2, "PCM_16") as f:
        for _ in range(seconds):
            f.write((0.25 * rng.standard_normal((rate, 2))).astype(np.float32))
    decoded_bytes = seconds * rate * 2 * 8                # 184 MB as float64

    chain = Chain.from_preset("cd-16-shibata")
    # Warm up (JIT cache loading and first-call dispatch allocate ~26 MB of Python
    # objects once per process; that is not the render's working set), with the same
    # kind of input (PCM_16: the compiled PCM decoder is linked, or compiled on a cold
    # cache, at the first such read).
    short = tmp_path / "short.wav"
    sf.write(str(short), make_signal(1000, 2), rate, subtype="PCM_16")
    render_file(chain, short, tmp_path / "short-out.wav", progress=False)

    tracemalloc.start()
    try:
        result = render_file(chain, inp, tmp_path / "out.wav", progress=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Measured: peak 5.4 MB (default 131072-frame blocks, four in flight, and a chain copy
    # per core; 1.5 MB with 32768-frame blocks) against 184 MB for the float64 decode
    # (26 MB allocated on a cold first call, before warm-up).
    assert result.frames == seconds * rate
    assert sf.info(str(tmp_path / "out.wav")).frames == seconds * rate
    assert peak < 10_000_000
    assert peak < decoded_bytes / 20


# --- counters --------------------------------------------------------------------------

def test_nonfinite_input_is_sanitized_and_counted_per_channel(tmp_path):
    x = make_signal(2000, 2) * 0.5       # still float32-exact
    x[10, 0], x[20, 0], x[30, 0] = np.nan, np.inf, -np.inf
    x[5, 1], x[1999, 1] = np.nan, np.nan
    inp = tmp_path / "in.wav"
    sf.write(str(inp), x, 44100, subtype="FLOAT")
    assert np.count_nonzero(~np.isfinite(sf.read(str(inp))[0])) == 5   # stored as such

    result = render_file(Chain.from_preset("tpdf-24"), inp, tmp_path / "out.wav", progress=False)
    z = sf.read(str(tmp_path / "out.wav"))[0]
    assert result.nonfinite == [3, 2]
    assert np.all(np.isfinite(z))
    assert np.array_equal(z, Chain.from_preset("tpdf-24")(x, 44100))


def test_a_renders_report_counts_what_its_first_block_held(tmp_path):
    """The render's meter is created after the first block: its counts must still start
    at the program's start (they missed that block once: 'nonfinite': [0, 0])."""
    from rtq.meter.chain_meter import RenderMeter

    x = make_signal(2000, 2) * 0.5
    x[10, 0], x[20, 1], x[30, 0] = np.nan, np.inf, -np.inf
    x[40, 1] = 1.5
    inp = tmp_path / "in.wav"
    sf.write(str(inp), x, 44100, subtype="FLOAT")
    observer = RenderMeter()
    chain = Chain.from_preset("tpdf-16")
    result = render_file(chain, inp, tmp_path / "out.wav", progress=False, observer=observer)
    report = observer.finish(chain).report()
    # +Inf becomes +1.0 (full scale), which 16 bits clip too, like the 1.5.
    assert result.nonfinite == [2, 1] and result.clips == [0, 2]
    for figures in (report["stages"][0], report["end_to_end"]):
        assert figures["nonfinite"] == result.nonfinite and figures["clips"] == result.clips


def test_a_metered_render_runs_its_channel_groups_and_measures_them_as_one(tmp_path):
    """--report no longer puts a chain that runs on several cores onto one: the meter
    reads every group's taps side by side, with the figures of one program's."""
    from rtq.meter.chain_meter import RenderMeter
    from rtq.stages import Gain, Oversample

    x = exact32(make_signal(40000, 2) * 0.5)
    inp = write_input(tmp_path / "in.wav", x, 44100)
    reports, outputs = [], []
    for threads in (1, 2):
        observer = RenderMeter(sample=(4096, 16384))
        chain = Chain([Gain(-1.0), Oversample(4, [Requantize(8, "tpdf", shaping={"order": 2})], integer_latency=True)],
                      seed=4)
        out = tmp_path / f"out{threads}.wav"
        render_file(chain, inp, out, progress=False, observer=observer, threads=threads, block_size=3000)
        meter = observer.finish(chain)
        assert len(meter.parts) == threads
        reports.append(meter.report())
        outputs.append(sf.read(str(out))[0])
    assert np.array_equal(outputs[0], outputs[1])
    latency = reports[1]["latency_samples"]
    assert reports[1]["channels"] == 2 and reports[1]["end_to_end"]["frames"] == 40000 + latency
    assert reports[1]["stages"][0]["frames"] == 4 * 3 * 4096      # three windows, at 4x
    assert_same_figures(reports[1], reports[0])


def test_a_metered_render_leaves_a_core_to_its_meter(tmp_path, monkeypatch):
    """By default a render runs a channel group per core, but with a meter measuring
    beside it (a concurrent observer) one core fewer: the meter's work needs a core."""
    import rtq.render
    from rtq.meter.chain_meter import RenderMeter
    from rtq.stages import Oversample

    monkeypatch.setattr(rtq.render, "cores", lambda: 4)
    inp = write_input(tmp_path / "in.wav", exact32(make_signal(4000, 4) * 0.5), 44100)
    groups_of = rtq.render._ChannelGroups
    for observer, groups in ((None, 4), (RenderMeter(), 3)):
        chain = Chain([Oversample(2, [Requantize(8, "tpdf")], integer_latency=True)], seed=1)
        seen = []
        monkeypatch.setattr(rtq.render, "_ChannelGroups",
                            lambda chain, count: seen.append(count) or groups_of(chain, count))
        render_file(chain, inp, tmp_path / "out.wav", force=True, progress=False, observer=observer)
        assert seen == [groups]
        if observer is not None:
            assert len(observer.finish(chain).parts) == groups


def test_a_metered_render_whose_reading_fails_midway_leaves_no_meter_threads(tmp_path, monkeypatch):
    """The render's error is raised, and its report meter's threads (measuring, spectrum
    transforms, the pool) are stopped: render_file closes a failing render's observer."""
    from rtq.files.audio import AudioInput, InputError
    from rtq.meter.chain_meter import RenderMeter
    from rtq.stages import Oversample

    inp = write_input(tmp_path / "in.wav", exact32(make_signal(40000, 2) * 0.5), 44100)
    read_into, reads = AudioInput.read_into, []

    def failing(self, buf):
        reads.append(len(buf))
        if len(reads) == 8:
            raise InputError("the disk went away")
        return read_into(self, buf)

    monkeypatch.setattr(AudioInput, "read_into", failing)
    before = set(threading.enumerate())
    observer = RenderMeter(workers=3)
    chain = Chain([Oversample(2, [Requantize(8, "tpdf")], integer_latency=True)], seed=1)
    with pytest.raises(InputError, match="the disk went away"):
        render_file(chain, inp, tmp_path / "out.wav", progress=False, observer=observer, threads=2, block_size=2048)
    assert observer.meter is not None and observer.meter._transforms is None     # it was measuring, and closed
    assert set(threading.enumerate()) == before
    assert not (tmp_path / "out.wav").exists()


def test_a_metered_render_records_its_oversampled_taps_only_around_the_sampled_windows(tmp_path):
    """The render arms the taps at oversampled rates before each piece to record only
    around RenderMeter's windows (a sixteenth of a 64x stage, not all of it): the
    figures are exactly those of taps recording everything, for any block size."""
    from rtq.meter.chain_meter import RenderMeter
    from rtq.stages import Gain, Oversample

    length, every = 2048, 32768      # windows far enough apart for blocks of 6007 (_SampledCapture.SPACING)
    x = exact32(make_signal(3 * every + 5000, 2) * 0.5)
    inp = write_input(tmp_path / "in.wav", x, 44100)

    class Counting(RenderMeter):
        """Counts the frames the oversampled taps record (taps move on by themselves or
        are moved forward by the arming)."""
        concurrent = False

        def before_piece(self, chain, frames, parts=None):
            super().before_piece(chain, frames, parts)
            self.before = [int(program.istate[tap.written_index]) for program, tap in self.taps(parts)]

        def __call__(self, chain, parts=None):
            if parts is not None:      # the render's call after a piece (not finish's)
                after = [int(program.istate[tap.written_index]) for program, tap in self.taps(parts)]
                self.recorded = getattr(self, "recorded", 0) + sum(a - b for a, b in zip(after, self.before))
            super().__call__(chain, parts)

        def taps(self, parts):
            return [(part.program, tap) for part in parts for info in part.quantizer_info.values()
                    for tap in info.taps]

    class Unarmed(RenderMeter):
        def before_piece(self, chain, frames, parts=None):
            pass

    def chain():
        return Chain([Gain(-1.0), Oversample(8, [Requantize(8, "tpdf", shaping={"order": 2})],
                                             integer_latency=True)], seed=6)

    unarmed, metered = Unarmed(sample=(length, every)), chain()
    render_file(metered, inp, tmp_path / "all.wav", progress=False, observer=unarmed, block_size=4096)
    expected = unarmed.finish(metered).report()
    assert expected["stages"][0]["frames"] == 8 * 4 * length        # four windows
    for block in (1000, 4096, 6007):
        observer, metered = Counting(sample=(length, every)), chain()
        render_file(metered, inp, tmp_path / f"out{block}.wav", progress=False, observer=observer, block_size=block)
        assert_same_figures(observer.finish(metered).report(), expected)
        taps, windows = 2 * 2, 4     # a quantizer's input and output, in two channel groups
        assert windows * length * 8 * taps <= observer.recorded <= windows * (length + block) * 8 * taps
        assert sf.read(str(tmp_path / f"out{block}.wav"))[0].tolist() == sf.read(str(tmp_path / "all.wav"))[0].tolist()


def test_clips_are_counted_per_channel(tmp_path):
    x = exact32(0.25 * np.sin(np.arange(3000) / 5.0)[:, None] * np.ones((1, 2)))
    x[100:200, 0] = 1.5 * np.where(np.arange(100) % 2, 1.0, -1.0)   # 100 past full scale
    x[500:537, 1] = 1.5                                               # 37
    inp = write_input(tmp_path / "in.wav", x, 44100)
    result = render_file(Chain.from_preset("tpdf-16"), inp, tmp_path / "out.wav", progress=False)
    assert result.clips == [100, 37]
    assert result.nonfinite == [0, 0]
    z = sf.read(str(tmp_path / "out.wav"), dtype="int16")[0]
    assert np.count_nonzero(z[100:200, 0] == 32767) == 50
    assert np.count_nonzero(z[100:200, 0] == -32768) == 50


def test_clean_input_counts_nothing(tmp_path):
    inp = write_input(tmp_path / "in.wav", exact32(make_signal(2000, 2) / 2.6), 44100)
    result = render_file(Chain.from_preset("cd-16-shibata"), inp, tmp_path / "out.wav", progress=False)
    assert result.clips == [0, 0] and result.nonfinite == [0, 0]


# --- options and errors ----------------------------------------------------------------

def test_latency_compensation_flag_is_neutral_for_zero_latency_chains(tmp_path):
    inp = write_input(tmp_path / "in.wav", make_signal(3000, 2), 48000)
    a = render_file(Chain.from_preset("cd-16-shibata"), inp, tmp_path / "a.wav", progress=False)
    b = render_file(Chain.from_preset("cd-16-shibata"), inp, tmp_path / "b.wav", progress=False,
                    compensate_latency=False)
    assert a.latency == b.latency == 0 and a.frames == b.frames == 3000
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()


def test_missing_shaping_table_is_a_preset_error_with_position_and_rates(tmp_path):
    inp = write_input(tmp_path / "in.wav", make_signal(500, 2), 48000)
    with pytest.raises(PresetError) as caught:
        render_file(Chain.from_preset("cd-16-lipshitz"), inp, tmp_path / "out.wav", progress=False)
    message = str(caught.value)
    assert "\n" not in message
    assert "cd-16-lipshitz.yaml:9:16:" in message and "44100" in message and "48000" in message
    assert listing(tmp_path) == {"in.wav"}


@pytest.mark.parametrize("case", ["missing-input", "not-audio", "bad-extension", "no-directory",
                                  "bad-block-size", "exists"])
def test_user_errors_raise_usage_error(tmp_path, case):
    inp = write_input(tmp_path / "in.wav", make_signal(500, 2), 44100)
    (tmp_path / "text.wav").write_text("not audio\n")
    (tmp_path / "taken.wav").write_bytes(b"keep")
    args = {"missing-input": (tmp_path / "missing.wav", tmp_path / "out.wav", {}),
            "not-audio": (tmp_path / "text.wav", tmp_path / "out.wav", {}),
            "bad-extension": (inp, tmp_path / "out.xyz", {}),
            "no-directory": (inp, tmp_path / "nodir" / "out.wav", {}),
            "bad-block-size": (inp, tmp_path / "out.wav", {"block_size": 0}),
            "exists": (inp, tmp_path / "taken.wav", {})}[case]
    before = listing(tmp_path)
    with pytest.raises(UsageError) as caught:
        render_file(Chain.from_preset("tpdf-16"), args[0], args[1], progress=False, **args[2])
    assert "\n" not in str(caught.value)
    assert listing(tmp_path) == before
    assert (tmp_path / "taken.wav").read_bytes() == b"keep"


# --- progress bar ----------------------------------------------------------------------

class FakeStream(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


def test_progress_bar_draws_on_a_terminal_only():
    tty, pipe = FakeStream(True), FakeStream(False)
    for stream in (tty, pipe):
        bar = _Progress(1000, stream=stream)
        bar.update(500)
        bar.update(1000, final=True)
    assert pipe.getvalue() == ""
    assert tty.getvalue().startswith("\rrendering [")
    assert tty.getvalue().endswith("100.0 %\n")


def test_progress_follows_the_current_stderr(tmp_path):
    inp = write_input(tmp_path / "in.wav", make_signal(1000, 2), 44100)
    terminal = FakeStream(True)
    with contextlib.redirect_stderr(terminal):
        render_file(Chain.from_preset("tpdf-16"), inp, tmp_path / "out.wav")
    assert terminal.getvalue().endswith("100.0 %\n")


@pytest.mark.parametrize("channels", [2, 3, 4])
@pytest.mark.parametrize("preset", ["cd-16-shibata", "converter-8bit-8x", "telephone-mulaw"])
def test_channel_groups_on_their_own_threads_give_the_whole_chains_output(preset, channels):
    """The render splits the chain by channels over the cores (in pairs for a chain at the
    stream rate, whose requantizers run two channels in one register; one by one with
    oversampling); each group takes its own channels' dither streams, so the samples and
    the counts are those of one chain."""
    rng = np.random.default_rng(channels)
    x = rng.uniform(-0.5, 0.5, (20000, channels))
    x[5000:5400] *= 3.0                    # clips
    x[7000, 0], x[9000, channels - 1] = np.nan, np.inf
    rate = 8000 if "telephone" in preset else 44100
    whole = Chain.from_spec(load_preset(preset)).prepare(rate, channels, 4096)
    expected = x.copy()
    whole.process(expected)
    with _ChannelGroups(Chain.from_spec(load_preset(preset)).prepare(rate, channels, 4096), 2) as groups:
        sizes = {2: [2], 3: [2, 1], 4: [2, 2]} if preset != "converter-8bit-8x" else {2: [1, 1], 3: [2, 1], 4: [2, 2]}
        assert [group.channels for group, _ in groups.parts] == sizes[channels]
        got = x.copy()
        for start in range(0, got.shape[0], 5000):
            groups.process(got[start:start + 5000])
        counts = groups.counts()
    assert np.array_equal(got, expected)
    assert counts == whole.counts()
    clips, nonfinite = counts.clips, counts.nonfinite
    assert sum(clips) > 0 and sum(nonfinite) == 2
