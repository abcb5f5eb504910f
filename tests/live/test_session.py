"""LiveSession's control API as a listening test uses it: setters, state, argument
checks, a closed session, the alignment latency (on the JACK dummy server; the stream
is opened but not started, so each switch completes at once)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from rtq.errors import PresetError, RtqError
from rtq.live.sources import Source, SourceRateError

RATE = 48000


@pytest.fixture
def session(jack_server):
    from rtq.live.session import LiveSession

    session = LiveSession("tpdf-16", samplerate=RATE, blocksize=64, source=Source.tone(1000, -20))
    yield session
    session.close()


def test_setters_change_the_controlled_stage_and_report_it(session):
    assert (session.quantizer().bits, session.quantizer().dither, session.mode) == (16, "tpdf", "normal")
    assert session.set_bits(12) == 12 and session.quantizer().bits == 12
    assert session.change_bits(-20) == 1 and session.change_bits(+40) == 32
    assert session.set_dither("rpdf") == "rpdf" and session.quantizer().dither == "rpdf"
    assert session.set_shaping("shibata") == {"kind": "table", "name": "shibata"}
    assert session.set_shaping({"order": 3}) == {"kind": "design", "order": 3, "band_hz": None}
    assert session.set_shaping(None) == {"kind": "none"}
    shibata = session.set_shaping("shibata")
    assert session.set_shaping(shibata) == shibata            # what it returns, it takes back
    assert session.engine.switches == 9
    session.set_bypass(True)
    assert session.mode == "bypass"
    session.set_solo(True, 30.0)
    assert (session.mode, session.solo_gain_db) == ("solo", 30.0)
    assert session.toggle_solo() is False and session.mode == "normal"
    assert session.toggle_solo() is True and session.solo_gain_db == 30.0   # the last gain is kept
    session.set_bypass(False)
    assert session.mode == "normal"


def test_the_controls_change_a_block_compander_within_its_scales(jack_server):
    """nicam-14-10's last quantizer is its blockcompand: bits move within range_bits - 23
    .. range_bits (here 2 .. 14), dither and shaping as a requantize's; the 14-bit
    requantize before it is left alone."""
    from rtq.live.session import LiveSession
    from rtq.stages import BlockCompand, Requantize

    session = LiveSession("nicam-14-10", samplerate=RATE, blocksize=64, source=Source.tone(1000, -20))
    try:
        stage = session.quantizer()
        assert isinstance(stage, BlockCompand) and (stage.bits, stage.range_bits, stage.dither) == (10, 14, "none")
        assert session.change_bits(+1) == 11 and session.change_bits(+10) == 14 and session.change_bits(-40) == 2
        with pytest.raises(ValueError, match=r"set_bits\(15\): blockcompand.range_bits must be from bits \(15\)"):
            session.set_bits(15)
        assert session.set_dither("tpdf") == "tpdf" and session.set_shaping("shibata")["name"] == "shibata"
        first, last = session.chain.stages
        assert isinstance(first, Requantize) and (first.bits, first.dither, first.shaping) == (14, "tpdf",
                                                                                                 {"kind": "none"})
        assert (last.bits, last.range_bits, last.dither, last.shaping["name"]) == (2, 14, "tpdf", "shibata")
        assert session.engine.switches == 5
    finally:
        session.close()


@pytest.mark.parametrize("control, value", [
    ("set_bits", 0.5), ("set_bits", 33), ("change_bits", 0.5), ("change_bits", "x"),
    ("set_dither", "blue"), ("set_shaping", "nope"), ("set_shaping", {"order": 9}),
    ("set_shaping", {"kind": "table", "name": "bogus"}), ("set_shaping", {"kind": "design", "order": 99}),
    ("set_shaping", {"kind": "fir", "coefficients": ["x"]}), ("set_shaping", {"kind": "table"}),
])
def test_bad_values_are_refused_and_the_chain_keeps_playing(session, control, value):
    with pytest.raises(ValueError):
        getattr(session, control)(value)
    stage = session.quantizer()
    assert (stage.bits, stage.dither, stage.shaping) == (16, "tpdf", {"kind": "none"})
    assert session.engine.switches == 0


@pytest.mark.parametrize("gain_db", [-1.0, 121.0, math.nan, "40"])
def test_solo_gain_out_of_range_is_refused(session, gain_db):
    with pytest.raises(ValueError, match="solo gain_db"):
        session.set_solo(True, gain_db)
    assert session.mode == "normal" and session.solo_gain_db == 40.0


def test_a_shaping_table_missing_at_the_rate_is_a_preset_error(session):
    with pytest.raises(PresetError, match="no table for 48000 Hz"):
        session.set_shaping("high-shibata")   # 44.1 kHz only
    assert session.quantizer().shaping == {"kind": "none"}


@pytest.mark.parametrize("call, argument, rest", [
    ("set_shaping", "lipshitz", "requantize.shaping: shaping 'lipshitz' has no table for 48000 Hz"),
    ("set_dither", "blue", "requantize.dither must be one of"),
    ("set_bits", 33, "requantize.bits must be an integer from 1 to 32, got 33"),
])
def test_a_setters_error_names_the_call_and_its_argument(jack_server, call, argument, rest):
    """Issue 15 item 17: on a shipped preset, set_shaping('lipshitz') at 48 kHz reported
    the error at that preset's line, which the user never wrote."""
    from rtq.live.session import LiveSession

    with LiveSession("cd-16-shibata", samplerate=RATE, source=Source.noise(-30)) as session:
        with pytest.raises((ValueError, PresetError)) as caught:
            getattr(session, call)(argument)
    message = str(caught.value)
    assert message.startswith(f"{call}({argument!r}): {rest}"), message
    assert "cd-16-shibata.yaml" not in message and "\n" not in message


def test_a_closed_session_refuses_every_control(session):
    session.close()
    for call in (lambda: session.set_bypass(True), lambda: session.toggle_bypass(),
                 lambda: session.set_solo(True), lambda: session.set_bits(8), lambda: session.cycle_dither(),
                 lambda: session.switch_preset("tpdf-24"), lambda: session.next_preset(), lambda: session.start(),
                 lambda: session.run(0.1)):
        with pytest.raises(RtqError, match="the live session is closed"):
            call()
    session.close()   # still idempotent


def test_align_latency_is_the_listening_tests_choice(jack_server):
    """The README's listening-test example, with the session as a context manager."""
    from rtq.live.session import LiveSession

    with LiveSession("tpdf-16", samplerate=RATE, blocksize=64, source=Source.noise(-30),
                     align_latency=107) as session:
        assert session.engine.align == 107
        session.start()
        session.switch_preset("dsd64-1bit")   # 107 samples: no misaligned crossfade
        session.set_bypass(True)
        assert session.engine.align == 107 and session.mode == "bypass" and session.chain.name == "dsd64-1bit"
    assert session.closed
    for bad in (9000, -1, 7.5):
        with pytest.raises(ValueError, match="align_latency must be an integer from 0 to 8192"):
            LiveSession("tpdf-16", source=Source.noise(-30), align_latency=bad)


@pytest.mark.parametrize("options, message", [
    ({"samplerate": 48}, "samplerate must be a whole number of Hz from 1000 to 768000, got 48; did you mean 48000?"),
    ({"samplerate": 44100.5}, "samplerate must be a whole number of Hz from 1000 to 768000, got 44100.5"),
    ({"blocksize": 3.5}, "blocksize must be 0 (the host's choice) or a whole number of frames up to 16384, got 3.5"),
    ({"blocksize": 100_000_000}, "blocksize must be 0 (the host's choice) or a whole number of frames up to 16384, "
                                 "got 100000000"),
    ({"channels": 0}, "channels must be an integer from 1 to 64, got 0"),
    ({"channels": 100_000}, "channels must be an integer from 1 to 64, got 100000"),
    ({"latency": "medium"}, "latency must be 'low', 'high' or seconds >= 0, got 'medium'"),
    ({"latency": -0.1}, "latency must be 'low', 'high' or seconds >= 0, got -0.1"),
    ({"source": Source.noise(-30), "input_device": 0},
     "input_device has no use with a source other than the device input (noise:-30)"),
    ({"source": Source.buffer([[0.0, 0.1, 0.2]]), "channels": 2}, "source buffer has 3 channels; the stream has 2"),
])
def test_session_arguments_are_checked_first_in_their_own_names(jack_server, options, message):
    """The library names its parameters (the command line, its options: test_live_cli)."""
    from rtq.live.session import LiveSession

    options = {"source": Source.tone(1000, -20), **options}
    with pytest.raises(ValueError) as caught:
        LiveSession("tpdf-16", **options)
    assert str(caught.value) == message


@pytest.mark.parametrize("source, message", [
    (Source.tone(30000, -20), "source tone at 30000 Hz: at or above half the stream's 48000 Hz"),
    (Source.buffer([[0.0, 0.0]], samplerate=44100), "source buffer runs at 44100 Hz but the stream at 48000 Hz"),
])
def test_a_source_the_rate_cannot_play_is_refused(jack_server, source, message):
    from rtq.live.session import LiveSession

    with pytest.raises(SourceRateError) as caught:
        LiveSession("tpdf-16", samplerate=RATE, source=source)
    assert str(caught.value) == message


@pytest.mark.parametrize("make, message", [
    (lambda: Source.tone(0, -20), "tone hz must be a finite number above 0, got 0"),
    (lambda: Source.tone(1000, -3), "a tone above -3.01 dBFS would clip"),
    (lambda: Source.tone(1000, math.nan), "tone dbfs must be a finite number, got nan"),
    (lambda: Source.noise(-4.7), "noise above -4.77 dBFS would clip"),
    (lambda: Source.buffer([]), "source buffer must hold frames x channels samples"),
    (lambda: Source.buffer([0.5], samplerate=48), "source buffer samplerate must be a whole number of Hz"),
])
def test_sources_check_their_arguments(make, message):
    with pytest.raises(ValueError) as caught:
        make()
    assert str(caught.value).startswith(message)


def test_a_mono_buffer_plays_on_every_channel():
    source = Source.buffer([0.25, -0.5]).for_channels(3)
    assert source.data.shape == (2, 3) and (source.data[:, 2] == [0.25, -0.5]).all()
    assert source.describe() == "source buffer (looped)"


def test_run_leaves_out_a_tick_that_would_end_after_the_duration(session):
    """``run(duration)`` plays for ``duration``: a tick is left out when, at the last
    tick's cost, it would end after it (a 64x stage's meter tick takes 0.45 s here, and
    ``--duration 2`` played 2.3 s).  Checked on the ticks' own clock, not on speed."""
    import time

    spans = []

    def slow_tick(s):
        began = time.monotonic()
        time.sleep(0.3)
        spans.append((began - s.started, time.monotonic() - s.started))

    session.run(1.0, tick=slow_tick, interval=0.1)
    assert spans, "no tick ran"
    for (began, ended), (next_began, _) in zip(spans, spans[1:]):
        assert next_began + (ended - began) < 1.0 + 0.01, spans
    assert session.summary()["seconds"] == round(session.stopped - session.started, 3)


def test_the_stream_stops_at_the_duration_while_a_tick_runs_on(jack_server):
    """A tick far longer than the duration (a 1024x stage's meter update took 17 s): the
    stream still stops at the duration (it played on until the tick returned: 20.5 s
    for --duration 2), the tick finishes, and a notice says how long it took."""
    import time

    from rtq.live.session import LiveSession

    notices, seen = [], {}
    session = LiveSession("tpdf-16", samplerate=RATE, blocksize=64, source=Source.noise(-30),
                          notice=notices.append)

    def long_tick(s):
        if not seen:
            time.sleep(1.6)
            seen["frames"], seen["ended"] = s.stream.stats().frames, time.monotonic()

    session.run(0.3, tick=long_tick, interval=0.1)
    assert session.stopped < seen["ended"]                     # asked to stop while the tick ran
    assert session.stream.stats().frames == seen["frames"]     # and nothing played after it
    assert len(notices) == 1 and notices[0].startswith("played 0.3 s as asked; the meter update under way "
                                                       "then took "), notices


def test_a_file_source_reads_as_every_input_does(tmp_path, monkeypatch):
    """Source.file follows rtq's input rules (rtq.files.audio): a file shorter than its
    header promises is an InputError naming both counts (it was played as it was), a
    directory says so, and a looped source holds at most MAX_SOURCE_SAMPLES (here made
    small; a file is kept in memory whole)."""
    import soundfile as sf

    from rtq.errors import UsageError
    from rtq.files.audio import InputError
    import rtq.live.sources as sources

    path = tmp_path / "tone.wav"
    sf.write(path, np.full((4800, 2), 0.25), RATE, subtype="PCM_16")
    assert Source.file(path).data.shape == (4800, 2)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(path.read_bytes()[:-4000])
    with pytest.raises(InputError, match=r"cut.wav ended after 3800 of the 4800 frames its header promises"):
        Source.file(cut)
    with pytest.raises(UsageError, match="is a directory, not an audio file"):
        Source.file(tmp_path)
    monkeypatch.setattr(sources, "MAX_SOURCE_SAMPLES", 9000)
    with pytest.raises(UsageError, match=r"tone.wav is too long to loop: a looped source holds at most 9000 "
                                         r"samples \(4500 frames of 2 channels"):
        Source.file(path)
    with pytest.raises(ValueError, match="source buffer holds 9002 samples; a looped source holds at most 9000"):
        Source.buffer(np.broadcast_to(0.0, (4501, 2)))
