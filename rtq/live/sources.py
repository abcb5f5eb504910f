"""Where a live session's audio comes from: the device input, a looped buffer (a file),
a tone or noise.

A :class:`Source` is checked when it is made (:meth:`Source.tone`, :meth:`Source.noise`,
:meth:`Source.buffer`, :meth:`Source.file`, :meth:`Source.device`); what depends on the
stream (its channel count, its rate) is checked by :meth:`Source.for_channels` and
:meth:`Source.check_rate` once the session knows it.  Levels are dBFS as everywhere in
rtq: RMS against amplitude 1, so a full-scale sine reads -3.01 dBFS; a tone or noise
that would clip is refused.  Non-finite samples in a buffer are allowed: the engine's
sanitizer replaces and counts them, as it does for a device's input.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from ..errors import UsageError
from ..spec import checked_number, requirement, stream_rate
from .limits import MAX_SOURCE_SAMPLES

FULL_SCALE_SINE_DBFS = 20 * math.log10(math.sqrt(0.5))   # -3.01: dBFS is RMS against amplitude 1
FULL_SCALE_NOISE_DBFS = 20 * math.log10(1 / math.sqrt(3))  # -4.77: uniform noise peaks at sqrt(3) RMS

DEVICE, BUFFER, TONE, NOISE = "device", "buffer", "tone", "noise"


class SourceRateError(ValueError):
    """The source cannot play at the stream's rate: a tone at or above half of it, a
    buffer recorded at another rate.  ``problem`` says which; ``source_rate`` is the
    buffer's own rate (None for a tone)."""

    def __init__(self, problem: str, source_rate: float | None = None):
        super().__init__(f"source {problem}")
        self.problem = problem
        self.source_rate = source_rate


@dataclass(frozen=True)
class Source:
    """One of: the device input (``kind`` "device"), a buffer of ``(frames, channels)``
    samples played in a loop ("buffer", recorded at ``samplerate`` if known), a sine of
    ``hz`` at ``dbfs`` ("tone") or uniform white noise of ``dbfs`` RMS ("noise").  Make
    one with the class methods, which check their arguments."""

    kind: str
    data: np.ndarray | None = field(default=None, repr=False, compare=False)
    samplerate: float | None = None
    hz: float = 0.0
    dbfs: float = 0.0
    path: str | None = None

    @classmethod
    def device(cls) -> Source:
        """The input of the session's input device."""
        return cls(DEVICE)

    @classmethod
    def tone(cls, hz: float = 1000.0, dbfs: float = -20.0) -> Source:
        """A sine of ``hz`` (above 0; below half the stream's rate, checked later) at
        ``dbfs`` RMS (at most :data:`FULL_SCALE_SINE_DBFS`)."""
        if requirement(hz) or hz <= 0:
            raise ValueError(f"tone hz must be a finite number above 0, got {hz!r}")
        dbfs = checked_number(dbfs, "tone dbfs")
        if dbfs > FULL_SCALE_SINE_DBFS:
            raise ValueError(f"a tone above {FULL_SCALE_SINE_DBFS:.2f} dBFS would clip (dBFS is RMS against "
                             "amplitude 1, so a full-scale sine reads -3.01 dBFS)")
        return cls(TONE, hz=float(hz), dbfs=dbfs)

    @classmethod
    def noise(cls, dbfs: float = -30.0) -> Source:
        """Uniform white noise of ``dbfs`` RMS (at most :data:`FULL_SCALE_NOISE_DBFS`: its
        peaks are sqrt(3) times its RMS)."""
        dbfs = checked_number(dbfs, "noise dbfs")
        if dbfs > FULL_SCALE_NOISE_DBFS:
            raise ValueError(f"noise above {FULL_SCALE_NOISE_DBFS:.2f} dBFS would clip (it is uniform: its "
                             "peaks are sqrt(3) times its RMS)")
        return cls(NOISE, dbfs=dbfs)

    @classmethod
    def buffer(cls, data, samplerate: float | None = None) -> Source:
        """``data`` (frames, or frames x channels; at least one frame, at most
        :data:`~rtq.live.limits.MAX_SOURCE_SAMPLES` samples) played in a loop;
        ``samplerate``, if given, is the rate it was recorded at (a stream rate), which
        the stream must then run at."""
        if np.size(data) > MAX_SOURCE_SAMPLES:
            raise ValueError(f"source buffer holds {np.size(data)} samples; a looped source holds at most "
                             f"{MAX_SOURCE_SAMPLES}")
        array = np.array(data, dtype=np.float64, order="C", ndmin=1)
        if array.ndim == 1:
            array = array[:, None]
        if array.ndim != 2 or not array.shape[0] or not array.shape[1]:
            raise ValueError(f"source buffer must hold frames x channels samples, got shape {np.shape(data)}")
        rate = None if samplerate is None else stream_rate(samplerate, "source buffer samplerate")
        return cls(BUFFER, data=array, samplerate=rate)

    @classmethod
    def file(cls, path) -> Source:
        """The audio file at ``path``, read whole (as float64) and played in a loop at its
        own rate (:class:`~rtq.files.audio.AudioInput`: the rules every input of rtq
        follows).  One line starting with the path: a :class:`~rtq.errors.UsageError` for
        a missing file, not audio, a rate rtq does not run, no audio, or more than
        :data:`~rtq.live.limits.MAX_SOURCE_SAMPLES` samples; an
        :class:`~rtq.files.audio.InputError` for a file shorter than its header promises
        or a read error."""
        from ..files.audio import AudioInput, InputError

        with AudioInput(path, allow_short=True) as audio:
            most = MAX_SOURCE_SAMPLES // audio.channels
            chunks, frames = [], 0
            while frames <= most:      # in pieces: a pipe's length is not known
                chunk = audio.read(min(1 << 16, most + 1 - frames))
                if not len(chunk):
                    break
                chunks.append(chunk)
                frames += len(chunk)
            if frames > most:
                raise UsageError(f"{audio.path} is too long to loop: a looped source holds at most "
                                 f"{MAX_SOURCE_SAMPLES} samples ({most} frames of {audio.channels} channels, "
                                 f"{most / audio.samplerate:.0f} s at {audio.samplerate} Hz)")
            if audio.shortfall:
                raise InputError(audio.shortfall)
            if not frames:
                raise UsageError(f"{audio.path}: the file holds no audio")
            rate = float(audio.samplerate)
        return cls(BUFFER, data=np.ascontiguousarray(np.concatenate(chunks)), samplerate=rate, path=os.fspath(path))

    @property
    def channels(self) -> int | None:
        """A buffer's channel count (None for the others, which fill any)."""
        return None if self.data is None else self.data.shape[1]

    def for_channels(self, channels: int) -> Source:
        """This source for a stream of ``channels``: a mono buffer is repeated on every
        channel; a buffer with another count is a ValueError."""
        if self.data is None or self.data.shape[1] == channels:
            return self
        if self.data.shape[1] == 1:
            return Source(BUFFER, data=np.repeat(self.data, channels, axis=1), samplerate=self.samplerate,
                          path=self.path)
        raise ValueError(f"{self._name()} has {self.data.shape[1]} channels; the stream has {channels}")

    def check_rate(self, samplerate: float) -> None:
        """A :class:`SourceRateError` if the source cannot play at ``samplerate``."""
        if self.kind == TONE and self.hz >= samplerate / 2:
            raise SourceRateError(f"tone at {self.hz:g} Hz: at or above half the stream's {samplerate:g} Hz")
        if self.samplerate and abs(self.samplerate - samplerate) > 0.5:
            raise SourceRateError(f"{'file' if self.path else 'buffer'} runs at {self.samplerate:g} Hz but the "
                                  f"stream at {samplerate:g} Hz", self.samplerate)

    def describe(self) -> str:
        """A few words for notices and the screen: ``tone:1000:-20``, ``noise:-30``,
        ``PATH (looped)``, ``device input``."""
        if self.kind == TONE:
            return f"tone:{self.hz:g}:{self.dbfs:g}"
        if self.kind == NOISE:
            return f"noise:{self.dbfs:g}"
        return f"{self._name()} (looped)" if self.kind == BUFFER else "device input"

    def _name(self) -> str:
        return self.path or "source buffer"
