"""A live session: what ``rtq live`` runs, and the control API its screen and listening
tests use.

The session picks the stream (a sound card through PortAudio, or, when there is none,
a :class:`~rtq.live.nullstream.NullStream` clocked in real time), builds the
:class:`~rtq.live.engine.LiveEngine`, and offers the controls: switch preset, change a
requantize stage's bits, dither or shaping, bypass, error solo.  Every control prepares
the new chain on the calling thread and hands it to the audio thread, which crossfades
at a block boundary.  A control that cannot be honoured (a shaping table missing at
the stream's rate, say) raises :class:`~rtq.errors.RtqError` and leaves the sound as it
was.

Arguments are typed (a :class:`~rtq.live.sources.Source`, seconds, device indices or
names) and checked first, in the session's own words: ``LiveSession(channels=0)``
raises a ValueError about ``channels``.  Reading command-line text is the command's job
(:mod:`rtq.commands.live`).
"""
from __future__ import annotations

import contextlib
import copy
import json
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable

from ..chain import Chain
from ..errors import PresetError, RtqError, UsageError
from ..files.destination import write_atomic
from ..presets import load_preset, shipped_presets
from ..dsp.requantize import DITHER_TYPES
from ..dsp.shaping import SHAPING_NAMES
from ..spec import STREAM_RATE_HZ, PresetSpec, checked_integer, requirement, stream_rate
from ..stages import BlockCompand, Requantize
from .callback import COMMAND, COMPLETE
from .engine import LiveEngine
from .limits import MAX_BLOCKSIZE, MAX_CHANNELS
from .sources import DEVICE, Source
from .wakeup import WakeupLatency

DEFAULT_PRESET = "cd-16-shibata"
#: What plays when there is no audio device and no source was given.
FALLBACK_SOURCE = Source.tone(1000.0, -20.0)
DITHERS = DITHER_TYPES      # the controls' cycles, in rtq.dsp's order
SHAPINGS = SHAPING_NAMES
LATENCIES = ("low", "high")


def checked_channels(value, name: str = "channels") -> int:
    """``value`` as a channel count (1 to :data:`~rtq.live.limits.MAX_CHANNELS`), or a
    ValueError naming ``name``."""
    return checked_integer(value, name, 1, MAX_CHANNELS)


def checked_blocksize(value, name: str = "blocksize") -> int:
    """``value`` as frames per callback (0, the host's choice, to
    :data:`~rtq.live.limits.MAX_BLOCKSIZE`), or a ValueError naming ``name``."""
    if requirement(value, 0, MAX_BLOCKSIZE, integer=True):
        raise ValueError(f"{name} must be 0 (the host's choice) or a whole number of frames up to "
                         f"{MAX_BLOCKSIZE}, got {value!r}")
    return int(value)


def checked_latency(value, name: str = "latency"):
    """``value`` as a suggested stream latency: ``"low"``, ``"high"`` (the device's
    defaults) or seconds (a finite number >= 0); otherwise a ValueError naming ``name``."""
    if isinstance(value, str) and value in LATENCIES:
        return value
    if requirement(value, 0.0):
        raise ValueError(f"{name} must be 'low', 'high' or seconds >= 0, got {value!r}")
    return float(value)


@dataclass
class _StreamChoice:
    """Where a session plays: a device (through PortAudio) or the null stream, at which
    rate, opened by ``factory(callback, user_words)``."""

    on_device: bool
    samplerate: float
    factory: Callable


class LiveSession:
    """One run of the live engine.

    Parameters
    ----------
    preset : str or PresetSpec or None
        Path or shipped name, or a loaded preset; default :data:`DEFAULT_PRESET`.
    device, input_device, output_device : int, str or None
        A device index or a case-insensitive name substring
        (:func:`~rtq.live.portaudio.devices.resolve`); None for the default device.
        ``device`` serves both directions unless the other two say otherwise.
    samplerate : float or None
        Stream rate, whole Hz from 1000 to 768000; default: a source buffer's rate, else
        the output device's default rate (48000 Hz on the null stream).
    blocksize : int
        Frames per callback, 0 (the host's choice) to :data:`~rtq.live.limits.MAX_BLOCKSIZE`.
    latency : "low", "high" or float
        The device's default low or high latency, or seconds.
    channels : int
        1 to :data:`~rtq.live.limits.MAX_CHANNELS`.
    source : Source or None
        What plays through the chain (:class:`~rtq.live.sources.Source`); default the
        device input (with no audio device: :data:`FALLBACK_SOURCE`).
    seed : int or None
        Overrides the preset's seed.
    notice : callable
        Receives one-line notices (default: print to stderr), from this thread or, for
        the notice that a slow build is compiling, from a timer thread.
    cpu_latency_qos : bool or None
        Hold a 0 us CPU latency request (:mod:`~rtq.live.wakeup`) while playing; None
        (default): for a sound card, not for the silent built-in output, which has no
        deadline to meet.
    align_latency : int or None
        Samples by which the dry path is delayed and every chain aligned (0 to
        :data:`~rtq.live.engine.MAX_ALIGN`; default: the first chain's latency, rounded).
        A listening test that switches between known chains passes the largest of their
        latencies, so that every switch and bypass stays time-aligned from the start.

    Raises
    ------
    ValueError
        An argument out of range, naming it; a
        :class:`~rtq.live.sources.SourceRateError` for a source the stream's rate cannot
        play.
    RtqError
        A preset that cannot be used (:class:`~rtq.errors.PresetError`), a device or rate
        the audio system refuses (one line).

    Notes
    -----
    The controls below may be called from any one thread at a time (the screen's, or a
    listening test's); each prepares what it needs on that thread and hands it to the
    audio thread without locks, which crossfades at the next block boundary.  After
    :meth:`close` they raise :class:`~rtq.errors.RtqError`.
    """

    def __init__(self, preset: str | PresetSpec | None = None, *, device=None, input_device=None,
                 output_device=None, samplerate: float | None = None, blocksize: int = 0,
                 latency="low", channels: int = 2, source: Source | None = None, seed: int | None = None,
                 notice=None, cpu_latency_qos: bool | None = None, align_latency: int | None = None):
        self.closed = False
        self.notice = notice or (lambda line: print(f"rtq: {line}", file=sys.stderr))
        # The arguments, each checked in its own name, before anything is opened.
        self.channels = checked_channels(channels)
        self.blocksize = checked_blocksize(blocksize)
        latency = checked_latency(latency)
        asked_rate = None if samplerate is None else stream_rate(samplerate, "samplerate")
        if source is not None and not isinstance(source, Source):
            raise TypeError(f"source must be an rtq.live.sources.Source, got {type(source).__name__}")
        source = (source or Source.device()).for_channels(self.channels)
        if source.kind != DEVICE and input_device is not None:
            raise ValueError(f"input_device has no use with a source other than the device input "
                             f"({source.describe()})")
        self.seed = seed
        self.spec = preset if isinstance(preset, PresetSpec) else load_preset(preset or DEFAULT_PRESET)
        chain = self._chain(self.spec)

        # Where to play, and at which rate; then what that rate allows.
        choice = choose_stream(source, self.channels, asked_rate, self.blocksize, latency,
                                device, input_device, output_device)
        if not choice.on_device and source.kind == DEVICE:
            source = FALLBACK_SOURCE
        self.source = source
        source.check_rate(choice.samplerate)
        chain.check(choice.samplerate)
        if not choice.on_device:  # after the checks: an error is the only line, not a second one
            self.notice(f"no audio device found; playing {source.describe()} through the "
                        "chain into a silent real-time output")

        self.wakeup = WakeupLatency(0)
        self._hold_wakeup = choice.on_device if cpu_latency_qos is None else bool(cpu_latency_qos)
        with _notice_if_slow(self.notice, 2.0, "compiling the chain and the audio callback for "
                             "this machine (cached for later starts)"):
            self.engine = LiveEngine(choice.factory, chain, samplerate=choice.samplerate,
                                     channels=self.channels, blocksize=self.blocksize, source=source,
                                     align_latency=align_latency)
        self.stream = self.engine.stream
        self.samplerate = self.stream.samplerate
        self.started: float | None = None   # time.monotonic() of start() and of the stop
        self.stopped: float | None = None
        self.lost: str | None = None

    # -- set-up helpers -----------------------------------------------------------
    def _chain(self, spec) -> Chain:
        return Chain.from_spec(spec, seed=self.seed)

    # -- running ------------------------------------------------------------------
    def start(self) -> None:
        """Start playing (a no-op once started); :meth:`run` starts too, if needed."""
        self._check_open()
        if self.started is None:
            if self._hold_wakeup:
                self.wakeup.acquire()
            try:
                self.engine.start()
            except BaseException:
                self.wakeup.release()
                raise
            self.started = time.monotonic()

    def run(self, duration: float | None = None, tick=None, interval: float = 0.1) -> None:
        """Play for ``duration`` seconds from the first block (None: until Ctrl-C), or
        until the stream is lost; then close the session.

        ``tick(session)`` is called every ``interval`` seconds on this thread (the
        screen), on a fixed schedule: a tick that takes part of the interval does not
        delay the next one, and one that takes more than half of it is followed by half
        an interval's rest, so the screen never keeps this thread (and a core) busy.  A
        tick that would end after ``duration`` (judged by the last one's cost) is left
        out, and the stream stops at ``duration`` even while a tick runs (a timer thread
        sets the command word the callback returns): a meter update of a heavily
        oversampled stage can take seconds (a 1024x stage's, 17 s on a busy machine),
        and the stream played on until it returned.  The update under way still
        finishes; if that takes over a second, a notice says so.  Raises
        :class:`~rtq.live.callback.StreamLost` when the audio server or device goes away
        (within 2 s).
        """
        self.start()
        end = None if duration is None else self.started + duration
        due = self.started + interval
        cost = 0.0
        timer = None
        if end is not None:
            timer = threading.Timer(max(end - time.monotonic(), 0.0), self._end_stream)
            timer.daemon = True
            timer.start()
        try:
            while True:
                now = time.monotonic()
                if end is not None and now >= end:
                    break
                wait = max(due - now, 0.0)
                if not self.stream.wait(wait if end is None else min(wait, end - now)):
                    break
                now = time.monotonic()
                if now >= due:
                    if tick is not None and (end is None or now + cost < end):
                        tick(self)
                        cost = time.monotonic() - now
                    due = max(due + interval, time.monotonic() + interval / 2)
            late = time.monotonic() - end if end is not None else 0.0
            if late > 1.0:
                self.notice(f"played {duration:g} s as asked; the meter update under way then took "
                            f"{late:.1f} s more to finish")
        finally:
            if timer is not None:
                timer.cancel()
            self.close()

    def _end_stream(self) -> None:
        """Ask the callback to end the stream (a plain store of the command word; any
        thread), noting when."""
        if self.stopped is None:
            self.stopped = time.monotonic()
        self.stream.ctl[COMMAND] = COMPLETE

    def close(self) -> None:
        """Stop the stream (after its clients are done) and release it and the CPU
        latency request; idempotent.  The session cannot be started again."""
        self.closed = True
        if self.started is not None and self.stopped is None:
            self.stopped = time.monotonic()
        try:
            self.engine.close()
        finally:
            self.wakeup.release()

    def __enter__(self) -> "LiveSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- controls -------------------------------------------------------------------
    # Each prepares on the calling thread and hands over to the audio thread without
    # locks (see LiveEngine); one control call at a time.  A control on a closed session
    # raises RtqError.
    @property
    def chain(self) -> Chain:
        """The chain playing (or fading in)."""
        return self.engine.chain

    @property
    def mode(self) -> str:
        """``normal`` (the chain), ``bypass`` (the dry input, aligned) or ``solo`` (the error)."""
        return self.engine.mode

    @property
    def solo_gain_db(self) -> float:
        """Gain of the error in solo mode, dB."""
        return self.engine.solo_gain_db

    def switch_preset(self, name: str | PresetSpec) -> None:
        """Crossfade to another preset (path, shipped name or loaded preset)."""
        self._check_open()
        spec = name if isinstance(name, PresetSpec) else load_preset(name)
        self.engine.switch(self._chain(spec))
        self.spec = spec

    def next_preset(self, step: int = 1) -> str:
        """Crossfade to the next shipped preset that works at this rate; returns its name."""
        self._check_open()
        names = [p.name for p in shipped_presets()]
        start = names.index(self.spec.name) if self.spec.name in names else -1
        for k in range(1, len(names) + 1):
            name = names[(start + step * k) % len(names)]
            try:
                self.switch_preset(name)
                return name
            except (PresetError, ValueError):
                continue
        raise RtqError("no shipped preset works at this rate")

    def quantizer(self) -> Requantize | BlockCompand | None:
        """The stage the controls change: the chain's last requantize or blockcompand (the
        quantizers with bits, dither and shaping; None if none).  Read its ``bits``,
        ``dither`` and ``shaping`` for the current settings."""
        return _last_controlled(self.chain)

    def set_bits(self, bits: int) -> int:
        """Crossfade to the chain with the controlled stage at ``bits`` (a requantize's 1-32,
        a blockcompand's from its ``range_bits`` less 23 to them, at least 2); returns them."""
        return self._edit("set_bits", bits=bits).bits

    def set_dither(self, dither: str) -> str:
        """Crossfade to the chain with the controlled stage's dither ``dither`` (one of
        :data:`DITHERS`, at its amplitude); returns it."""
        return self._edit("set_dither", dither=dither).dither

    def set_shaping(self, shaping: str | dict | None) -> dict:
        """Crossfade to the chain with the controlled stage's noise shaping ``shaping``
        (as :class:`~rtq.stages.Requantize` takes it: a table name, ``"none"``/None,
        ``{"coefficients": [...]}`` or ``{"order": K, "band_hz": B}``); returns it,
        normalised.  A table with no entry at the stream's rate raises PresetError.  The
        setters' errors start with the call: ``set_shaping('lipshitz'): ...``."""
        return self._edit("set_shaping", shaping=shaping).shaping

    def change_bits(self, delta: int) -> int:
        """:meth:`set_bits` to the current bits plus ``delta`` (an integer), kept within the
        stage's word lengths (:meth:`set_bits`)."""
        delta = checked_integer(delta, "delta")
        stage = self._controlled()
        low, high = stage.bits_range()
        return self.set_bits(min(max(stage.bits + delta, low), high))

    def cycle_dither(self) -> str:
        """:meth:`set_dither` to the next of :data:`DITHERS`; returns it."""
        dither = self._controlled().dither
        return self.set_dither(DITHERS[(DITHERS.index(dither) + 1) % len(DITHERS)])

    def cycle_shaping(self) -> str:
        """:meth:`set_shaping` to the next of :data:`SHAPINGS` that has a table at this
        rate (``none`` included); returns its name."""
        stage = self._controlled()
        current = stage.shaping.get("name", "none")
        start = SHAPINGS.index(current) if current in SHAPINGS else 0
        for k in range(1, len(SHAPINGS) + 1):
            name = SHAPINGS[(start + k) % len(SHAPINGS)]
            try:
                self.set_shaping(name)
                return name
            except PresetError:
                continue
        return current

    def set_bypass(self, on: bool = True) -> None:
        """Hear the dry input, delayed by the alignment latency (``on``), or the chain."""
        self._check_open()
        self.engine.bypass(bool(on))

    def set_solo(self, on: bool = True, gain_db: float | None = None) -> None:
        """Hear the error the chain adds beyond its gain, amplified by ``gain_db`` (0-120
        dB; default: the last one, initially :data:`~rtq.live.engine.SOLO_GAIN_DB`), or
        (``on`` false) the chain.  The amplified error is clipped at full scale: a coarse
        quantizer's error at +40 dB would otherwise go far past it."""
        self._check_open()
        self.engine.solo(bool(on), gain_db)

    def toggle_bypass(self) -> bool:
        """:meth:`set_bypass` to the other state; returns whether bypass is on."""
        self.set_bypass(self.mode != "bypass")
        return self.mode == "bypass"

    def toggle_solo(self, gain_db: float | None = None) -> bool:
        """:meth:`set_solo` to the other state; returns whether error solo is on."""
        self.set_solo(self.mode != "solo", gain_db)
        return self.mode == "solo"

    def _check_open(self) -> None:
        if self.closed:
            raise RtqError("the live session is closed")

    def _controlled(self) -> Requantize | BlockCompand:
        self._check_open()
        stage = self.quantizer()
        if stage is None:
            raise RtqError("this chain has no requantize or blockcompand stage to change")
        return stage

    def _edit(self, call: str, **changes) -> Requantize | BlockCompand:
        """Crossfade to a copy of the chain whose controlled stage has ``changes``, checked
        as the stage's constructor checks its arguments; returns that stage.  An
        error names ``call`` and its argument (``set_shaping('lipshitz'): ...``), not the
        preset the stage came from: the user never wrote that line."""
        current = self._controlled()
        try:
            checked = current.replaced(**changes)     # the changed parameters lose the preset's location
            chain = copy.deepcopy(self.chain)
            stage = _last_controlled(chain)
            stage.bits, stage.dither, stage.shaping, stage.where = (checked.bits, checked.dither, checked.shaping,
                                                                     checked.where)
            self.engine.switch(chain)
        except (ValueError, PresetError) as err:
            arguments = ", ".join(repr(value) for value in changes.values())
            raise _prefixed(err, f"{call}({arguments})") from None
        return stage

    # -- status ---------------------------------------------------------------------
    def summary(self) -> dict:
        """Counters and callback load, for the exit summary and ``--stats-json``.

        ``audio_thread`` says what the audio thread runs under when rtq chose it (the
        silent built-in output's clock: real-time, or why not), else None (a sound card's
        thread is its audio system's: JACK's is real-time when jackd runs with -R).

        ``blocksize`` is the frames each callback had: the one asked for, else the
        stream's (256 on the built-in output), else (the host's choice) the mean."""
        st = self.stream.stats()
        blocksize = self.blocksize or self.stream.blocksize or (
            round(st.frames / st.callbacks) if st.callbacks else 0)
        period = blocksize / self.samplerate
        counts = self.engine.counts()
        return {
            "preset": self.spec.name,
            "samplerate": self.samplerate,
            "blocksize": blocksize,
            "seconds": round((self.stopped or time.monotonic()) - self.started, 3) if self.started else 0.0,
            "callbacks": st.callbacks,
            "frames": st.frames,
            "input_overflows": st.input_overflows,
            "output_underflows": st.output_underflows,
            "xruns": st.xruns,
            "callback_load": {"p50": st.load_p50, "p99": st.load_p99, "max": st.load_max},
            "period_ms": round(period * 1e3, 3) if period else None,
            "clips": counts.clips,
            "loop_resets": counts.loop_resets,
            "overloads": counts.overloads,
            "nonfinite": sum(counts.nonfinite),
            "switches": self.engine.switches,
            "lost": self.lost,
            "cpu_latency_qos": self.wakeup.status,
            "audio_thread": self.stream.scheduling,
        }

    def write_stats(self, path: str, *, force: bool = False) -> None:
        """Write :meth:`summary` as JSON to ``path`` (replacing a file only with ``force``)."""
        write_atomic(path, json.dumps(self.summary(), indent=2), force=force)


@contextlib.contextmanager
def _notice_if_slow(notice, seconds: float, line: str):
    """Send ``line`` to ``notice`` if the block takes longer than ``seconds``.

    With a warm cache a session is built in a fraction of a second; with a cold one (a
    fresh machine, a new rtq version) Numba compiles first, for tens of seconds (the
    README has the figures), which must not look like a hang.  The notice comes from a
    timer thread, while the compiler runs; it is never sent after the block."""
    timer = threading.Timer(seconds, notice, (line,))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        timer.join()  # a notice being sent finishes before the block's caller goes on


def _prefixed(err: Exception, call: str) -> Exception:
    """``err`` (same type) with its message after ``call: ``; not located in a file."""
    renamed = copy.copy(err)
    renamed.args = (f"{call}: {err}",)
    if isinstance(renamed, PresetError):
        renamed.located = False
    return renamed


def _last_controlled(chain: Chain) -> Requantize | BlockCompand | None:
    stages = [q for q in chain.quantizers() if isinstance(q, (Requantize, BlockCompand))]
    return stages[-1] if stages else None


def choose_stream(source: Source, channels: int, samplerate: float | None, blocksize: int, latency,
                   device, input_device, output_device) -> _StreamChoice:
    """A sound card (through PortAudio) if one with outputs exists or a device was named,
    else the null stream; at ``samplerate``, else the source buffer's rate, else the
    output device's default rate (48000 Hz on the null stream)."""
    from .nullstream import NullStream
    from .portaudio.devices import devices   # initialises PortAudio: quietly, as rtq's JACK client
    from .portaudio.stream import DuplexStream

    named = any(d is not None for d in (device, input_device, output_device))
    if named or any(d.max_output_channels > 0 for d in devices()):
        rate = samplerate or source.samplerate or _default_output_rate()
        in_device = input_device if input_device is not None else device
        out_device = output_device if output_device is not None else device
        # A built-in source needs no capture: output only (a playback-only device works).
        in_channels = channels if source.kind == DEVICE else 0

        def factory(callback, words):
            return DuplexStream(callback, device=(in_device, out_device), samplerate=rate, blocksize=blocksize,
                                latency=latency, channels=(in_channels, channels), user_words=words)

        return _StreamChoice(True, rate, factory)
    rate = samplerate or source.samplerate or 48000.0

    def null_factory(callback, words):
        return NullStream(callback, samplerate=rate, blocksize=blocksize or 256, channels=channels,
                          user_words=words)

    return _StreamChoice(False, rate, null_factory)


def _default_output_rate() -> float:
    """The default output device's default rate, to whole Hz (PortAudio reports ALSA's as
    a ratio, not always whole); a UsageError if rtq runs no stream at it."""
    from .portaudio.devices import devices

    outs = [d for d in devices() if d.is_default_output] or [d for d in devices() if d.max_output_channels]
    reported = outs[0].default_samplerate if outs else 48000.0
    try:
        return stream_rate(round(reported))
    except ValueError:
        raise UsageError(f"the output device's default rate, {reported:g} Hz, is not a stream rate rtq runs "
                       f"(whole Hz from {STREAM_RATE_HZ[0]} to {STREAM_RATE_HZ[1]}); ask for a samplerate") from None
