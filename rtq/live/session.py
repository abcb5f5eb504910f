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
"""
from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np

from ..chain import Chain
from ..errors import PresetError, RtqError, UsageError
from ..presets import load_preset, shipped_presets
from ..spec import (BITS_RANGE, STREAM_RATE_HZ, PresetSpec, check_file_rate, check_samplerate, checked_integer,
                    requirement, stream_rate)
from ..stages import Requantize
from .wakeup import WakeupLatency

DEFAULT_PRESET = "cd-16-shibata"
FULL_SCALE_SINE_DBFS = 20 * math.log10(math.sqrt(0.5))  # -3.01: dBFS is RMS against amplitude 1
FULL_SCALE_NOISE_DBFS = 20 * math.log10(1 / math.sqrt(3))  # -4.77: uniform noise peaks at sqrt(3) RMS
FALLBACK_SOURCE = "tone:1000:-20"
DITHERS = ("none", "rpdf", "tpdf", "tpdf-hp", "gaussian")
SHAPINGS = ("none", "first-order", "lipshitz", "f-weighted", "modified-e-weighted",
            "improved-e-weighted", "gesemann", "shibata", "low-shibata", "high-shibata")


@dataclass
class Source:
    """Where the audio comes from: the device input, a looped file, a tone or noise."""

    kind: str                      # "device" | "buffer" | "tone" | "noise"
    data: np.ndarray | None = None
    samplerate: float | None = None
    hz: float = 0.0
    dbfs: float = 0.0
    path: str = ""                 # of a "buffer"

    def engine_source(self):
        return {"device": ("device",), "buffer": ("buffer", self.data),
                "tone": ("tone", self.hz, self.dbfs), "noise": ("noise", self.dbfs)}[self.kind]

    def describe(self) -> str:
        if self.kind == "tone":
            return f"tone:{self.hz:g}:{self.dbfs:g}"
        if self.kind == "noise":
            return f"noise:{self.dbfs:g}"
        return f"{self.path} (looped)" if self.kind == "buffer" else "device input"


def parse_source(text: str | None, channels: int) -> Source:
    """``tone:HZ:DBFS``, ``noise:DBFS``, a path to an audio file (looped), or None."""
    if text is None:
        return Source("device")
    kind, *fields = text.split(":")
    if kind not in ("tone", "noise"):
        return _file_source(text, channels)
    try:
        numbers = [float(field) for field in fields]
    except ValueError:
        numbers = []
    if (len(numbers) != (2 if kind == "tone" else 1) or not all(map(math.isfinite, numbers))
            or (kind == "tone" and numbers[0] <= 0)):
        raise UsageError(f"bad --input {text!r}; use tone:HZ:DBFS (e.g. tone:1000:-20) or noise:DBFS")
    if kind == "noise":
        if numbers[0] > FULL_SCALE_NOISE_DBFS:
            raise UsageError(f"--input {text}: noise above {FULL_SCALE_NOISE_DBFS:.2f} dBFS would clip (it is "
                             "uniform: its peaks are sqrt(3) times its RMS)")
        return Source("noise", dbfs=numbers[0])
    if numbers[1] > FULL_SCALE_SINE_DBFS:
        raise UsageError(f"--input {text}: a tone above {FULL_SCALE_SINE_DBFS:.2f} dBFS would clip (dBFS is "
                         "RMS against amplitude 1, so a full-scale sine reads -3.01 dBFS)")
    return Source("tone", hz=numbers[0], dbfs=numbers[1])


def _file_source(path: str, channels: int) -> Source:
    import soundfile as sf

    if not os.path.exists(path):
        raise UsageError(f"--input {path}: no such file (or use tone:HZ:DBFS / noise:DBFS)")
    try:
        with sf.SoundFile(path) as audio:
            check_file_rate(audio.samplerate, f"--input {path}")
            data, rate = audio.read(dtype="float64", always_2d=True), audio.samplerate
    except (sf.LibsndfileError, RuntimeError) as err:
        raise UsageError(f"--input {path}: not a readable audio file ({err})") from None
    if not len(data):
        raise UsageError(f"--input {path}: the file holds no audio")
    if data.shape[1] == 1 and channels > 1:
        data = np.repeat(data, channels, axis=1)
    elif data.shape[1] != channels:
        raise UsageError(f"--input {path} has {data.shape[1]} channels; the stream has {channels} "
                         "(use --channels)")
    return Source("buffer", data=np.ascontiguousarray(data), samplerate=float(rate), path=path)


def _device_query(value: str | None):
    """A device given on the command line: an index or a name substring."""
    if value is None:
        return None
    return int(value) if value.strip().isdigit() else value


def _latency(value: str):
    if value in ("low", "high"):
        return value
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0):
        raise UsageError(f"--latency must be low, high or seconds, not {value!r}")
    return seconds


class LiveSession:
    """One run of the live engine.

    Parameters
    ----------
    preset : str or PresetSpec or None
        Path or shipped name, or a loaded preset; default :data:`DEFAULT_PRESET`.
    device, input_device, output_device : str or None
        Index or name substring; None for the default device.
    samplerate : float or None
        Stream rate; default: the device's (or the input file's, or 48000 Hz).
    blocksize : int
        Frames per block; 0 lets the host choose.
    latency : str
        ``low``, ``high`` or seconds.
    channels : int
    source : str or None
        ``--input``: ``tone:HZ:DBFS``, ``noise:DBFS`` or a file.
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

    Notes
    -----
    The controls below may be called from any one thread at a time (the screen's, or a
    listening test's); each prepares what it needs on that thread and hands it to the
    audio thread without locks, which crossfades at the next block boundary.  After
    :meth:`close` they raise :class:`~rtq.errors.RtqError`.
    """

    def __init__(self, preset: str | None = None, *, device=None, input_device=None,
                 output_device=None, samplerate=None, blocksize: int = 0, latency: str = "low",
                 channels: int = 2, source: str | None = None, seed: int | None = None,
                 notice=None, cpu_latency_qos: bool | None = None, align_latency: int | None = None):
        self.closed = False
        self.notice = notice or (lambda line: print(f"rtq: {line}", file=sys.stderr))
        self.seed = seed
        check_samplerate(samplerate)
        if requirement(channels, 1, integer=True):
            raise UsageError(f"--channels must be a whole number at least 1, not {channels!r}")
        self.channels = int(channels)
        if requirement(blocksize, 0, integer=True):
            raise UsageError(f"--blocksize must be 0 (host's choice) or a whole number of frames, not {blocksize!r}")
        self.spec = preset if isinstance(preset, PresetSpec) else load_preset(preset or DEFAULT_PRESET)
        self.source = parse_source(source, self.channels)
        stream_latency = _latency(latency)
        explicit = any(d is not None for d in (device, input_device, output_device))
        from .engine import LiveEngine
        from .nullstream import NullStream
        from .portaudio.devices import devices   # initialises PortAudio: quietly, as rtq's JACK client
        from .portaudio.stream import DuplexStream, UnsupportedRate

        usable = [d for d in devices() if d.max_output_channels > 0]
        on_device = bool(usable or explicit)
        self.wakeup = WakeupLatency(0)
        self._hold_wakeup = on_device if cpu_latency_qos is None else bool(cpu_latency_qos)
        if on_device:
            rate = samplerate or self.source.samplerate
            if self.source.kind != "device" and input_device is not None:
                raise UsageError(f"--input-device has no use with --input {source}")
            in_dev = _device_query(input_device if input_device is not None else device)
            out_dev = _device_query(output_device if output_device is not None else device)
            # A built-in source needs no capture: output only (a playback-only device works).
            in_channels = self.channels if self.source.kind == "device" else 0

            def factory(callback, words):
                try:
                    return DuplexStream(callback, device=(in_dev, out_dev), samplerate=rate,
                                        blocksize=blocksize, latency=stream_latency,
                                        channels=(in_channels, self.channels), user_words=words)
                except UnsupportedRate as err:
                    if samplerate is None and self.source.samplerate:
                        raise UnsupportedRate(f"{err} (the rate of --input {source}; resample the file to "
                                              "one of those rates)") from None
                    raise
        else:
            if self.source.kind == "device":
                self.source = parse_source(FALLBACK_SOURCE, self.channels)
            rate = samplerate or self.source.samplerate or 48000.0

            def factory(callback, words):
                return NullStream(callback, samplerate=rate, blocksize=blocksize or 256,
                                  channels=self.channels, user_words=words)
        rate = rate or _default_output_rate()
        if self.source.kind == "tone" and self.source.hz >= rate / 2:
            raise UsageError(f"--input tone at {self.source.hz:g} Hz: at or above half the stream's "
                             f"{rate:g} Hz")
        if self.source.samplerate and abs(self.source.samplerate - rate) > 0.5:
            raise UsageError(f"--input file runs at {self.source.samplerate:g} Hz but the stream at "
                             f"{rate:g} Hz; use --samplerate {self.source.samplerate:g}")
        chain = self._chain(self.spec)
        chain.check(rate)
        if not on_device:  # after the checks: a usage error is the only line, not a second one
            self.notice(f"no audio device found; playing {self.source.describe()} through the "
                        "chain into a silent real-time output")
        with _notice_if_slow(self.notice, 2.0, "compiling the chain and the audio callback for "
                             "this machine (cached for later starts)"):
            self.engine = LiveEngine(factory, chain, samplerate=rate, channels=self.channels,
                                     blocksize=blocksize or 1024, source=self.source.engine_source(),
                                     align_latency=align_latency)
        self.stream = self.engine.stream
        self.samplerate = self.stream.samplerate
        self.blocksize = blocksize
        self.started = None
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
        """Play until ``duration`` seconds have passed, Ctrl-C, or the stream is lost.

        ``tick(session)`` is called every ``interval`` seconds on this thread (the
        screen), on a fixed schedule: a tick that takes part of the interval does not
        delay the next one, and one that takes more than half of it is followed by half
        an interval's rest, so the screen never keeps this thread (and a core) busy.
        Raises :class:`~rtq.live.callback.StreamLost` when the audio server or device goes
        away (within 2 s).
        """
        self.start()
        due = self.started + interval
        try:
            while True:
                now = time.monotonic()
                left = None if duration is None else self.started + duration - now
                if left is not None and left <= 0:
                    break
                wait = max(due - now, 0.0)
                if not self.stream.wait(min(wait, left) if left is not None else wait):
                    break
                if time.monotonic() >= due:
                    if tick is not None:
                        tick(self)
                    due = max(due + interval, time.monotonic() + interval / 2)
        finally:
            self.close()

    def close(self) -> None:
        """Stop the stream (after its clients are done) and release it and the CPU
        latency request; idempotent.  The session cannot be started again."""
        self.closed = True
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

    def quantizer(self) -> Requantize | None:
        """The requantize stage the controls change: the chain's last one (None if none).
        Read its ``bits``, ``dither`` and ``shaping`` for the current settings."""
        return _last_requantize(self.chain)

    def set_bits(self, bits: int) -> int:
        """Crossfade to the chain with the controlled stage at ``bits`` (1-32); returns them."""
        return self._edit(bits=bits).bits

    def set_dither(self, dither: str) -> str:
        """Crossfade to the chain with the controlled stage's dither ``dither`` (one of
        :data:`DITHERS`, at its amplitude); returns it."""
        return self._edit(dither=dither).dither

    def set_shaping(self, shaping: str | dict | None) -> dict:
        """Crossfade to the chain with the controlled stage's noise shaping ``shaping``
        (as :class:`~rtq.stages.Requantize` takes it: a table name, ``"none"``/None,
        ``{"coefficients": [...]}`` or ``{"order": K, "band_hz": B}``); returns it,
        normalised.  A table with no entry at the stream's rate raises PresetError."""
        return self._edit(shaping=shaping).shaping

    def change_bits(self, delta: int) -> int:
        """:meth:`set_bits` to the current bits plus ``delta`` (an integer), kept within 1-32."""
        delta = checked_integer(delta, "delta")
        return self.set_bits(min(max(self._controlled().bits + delta, BITS_RANGE[0]), BITS_RANGE[1]))

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

    def _controlled(self) -> Requantize:
        self._check_open()
        stage = self.quantizer()
        if stage is None:
            raise RtqError("this chain has no requantize stage to change")
        return stage

    def _edit(self, **changes) -> Requantize:
        """Crossfade to a copy of the chain whose controlled stage has ``changes``, checked
        as :class:`~rtq.stages.Requantize` checks its arguments; returns that stage."""
        current = self._controlled()
        params = {"bits": current.bits, "dither": current.dither, "shaping": current.shaping, **changes}
        checked = Requantize(params["bits"], params["dither"], current.amplitude, params["shaping"],
                             where=current.where)
        chain = copy.deepcopy(self.chain)
        stage = _last_requantize(chain)
        stage.bits, stage.dither, stage.shaping = checked.bits, checked.dither, checked.shaping
        self.engine.switch(chain)
        return stage

    # -- status ---------------------------------------------------------------------
    def summary(self) -> dict:
        """Counters and callback load, for the exit summary and ``--stats-json``.

        ``blocksize`` is the frames each callback had: the one asked for, else the
        stream's (256 on the built-in output), else (the host's choice) the mean."""
        st = self.stream.stats()
        blocksize = self.blocksize or self.stream.blocksize or (
            round(st.frames / st.callbacks) if st.callbacks else 0)
        period = blocksize / self.samplerate
        clips, _, resets = self.chain.counts()
        return {
            "preset": self.spec.name,
            "samplerate": self.samplerate,
            "blocksize": blocksize,
            "seconds": round(time.monotonic() - self.started, 3) if self.started else 0.0,
            "callbacks": st.callbacks,
            "frames": st.frames,
            "input_overflows": st.input_overflows,
            "output_underflows": st.output_underflows,
            "xruns": st.xruns,
            "callback_load": {"p50": st.load_p50, "p99": st.load_p99, "max": st.load_max},
            "period_ms": round(period * 1e3, 3) if period else None,
            "clips": clips,
            "loop_resets": resets,
            "nonfinite": self.engine.nonfinite,
            "switches": self.engine.switches,
            "lost": self.lost,
            "cpu_latency_qos": self.wakeup.status,
        }

    def write_stats(self, path: str) -> None:
        from ..report import write_atomic

        write_atomic(path, json.dumps(self.summary(), indent=2))


@contextlib.contextmanager
def _notice_if_slow(notice, seconds: float, line: str):
    """Send ``line`` to ``notice`` if the block takes longer than ``seconds``.

    With a warm cache, a session is built in about 0.1 s; with a cold one (a fresh
    machine, a new rtq version) Numba compiles first (measured: 10-12 s with only rtq's
    own cache empty, 21 s for a JACK session, over 33 s once in CI on a fresh
    checkout), which must not look like a hang.  The notice comes from a timer thread,
    while the compiler runs; it is never sent after the block."""
    timer = threading.Timer(seconds, notice, (line,))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        timer.join()  # a notice being sent finishes before the block's caller goes on


def _last_requantize(chain: Chain) -> Requantize | None:
    stages = [q for q in chain.quantizers() if isinstance(q, Requantize)]
    return stages[-1] if stages else None


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
                         f"(whole Hz from {STREAM_RATE_HZ[0]} to {STREAM_RATE_HZ[1]}); use --samplerate") from None


def format_summary(summary: dict) -> str:
    """The exit summary, a few lines."""
    load = summary["callback_load"]

    def pct(v):
        return "-" if v is None else f"{v * 100:.1f} %"

    return "\n".join([
        f"rtq live: {summary['preset']} at {summary['samplerate']:g} Hz for {summary['seconds']:.1f} s, "
        f"{summary['callbacks']} callbacks, {summary['frames']} frames",
        f"  xruns: {summary['xruns']} (input overflows {summary['input_overflows']}, "
        f"output underflows {summary['output_underflows']})",
        f"  callback load (of the block period): p50 {pct(load['p50'])}, p99 {pct(load['p99'])}, "
        f"max {pct(load['max'])}",
        f"  clips per channel: {summary['clips']}; noise-shaping loop resets: {summary['loop_resets']}",
        f"  non-finite input samples: {summary['nonfinite']}; chain switches: {summary['switches']}",
        f"  CPU wake-up latency request: {summary['cpu_latency_qos']}",
    ])
