"""The PortAudio backend's stream: full duplex, float32, a compiled callback.

:class:`DuplexStream` opens a PortAudio stream (through sounddevice's cffi bindings, see
:mod:`rtq.live.portaudio`) whose callback is compiled code (:mod:`rtq.live.callback`):
PortAudio calls it directly through the C function pointer passed to ``Pa_OpenStream``,
so the audio thread never takes the GIL.  It also watches for a lost audio server,
which PortAudio itself does not survive cleanly (see :class:`DuplexStream`).
"""

from __future__ import annotations

import atexit
import time
import weakref

import numpy as np

from rtq.errors import RtqError
from rtq.live.callback import (COMMAND, CONTINUE, FINISHED, LAST_START_NS, CallbackStream, StreamLost,
                               control_block)
from rtq.live.portaudio import sd
from rtq.live.portaudio.devices import Device, resolve
from rtq.live.portaudio.quiet import silenced_stderr
from rtq.native import Entry

_STANDARD_RATES = (8000, 11025, 16000, 22050, 32000, 44100, 48000, 88200, 96000, 176400, 192000)


@Entry("void(int64)")
def _finished_callback(user_data):
    """PaStreamFinishedCallback: mark the control block when the stream becomes inactive."""
    control_block(user_data)[FINISHED] = 1


def _pa_error_text(err: int) -> str:
    text = sd._ffi.string(sd._lib.Pa_GetErrorText(err)).decode()
    if err == sd._lib.paUnanticipatedHostError:
        info = sd._lib.Pa_GetLastHostErrorInfo()
        text += f" ({sd._ffi.string(info.errorText).decode()}, code {info.errorCode})"
    return text


def _check(err: int, what: str) -> int:
    if err < 0:
        raise RtqError(f"{what}: {_pa_error_text(err)}")
    return err


def _split(value, name):
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise RtqError(f"{name} must be one value or an (input, output) pair, not {value!r}")
        return tuple(value)
    return value, value


def _stream_parameters(device: Device, kind: str, channels: int, latency):
    available = device.channels(kind)
    if not isinstance(channels, (int, np.integer)) or not 1 <= channels <= available:
        raise RtqError(
            f"{kind} device {device.describe()} offers 1..{available} {kind} channels, "
            f"not {channels!r}"
        )
    if latency in ("low", "high"):
        pair = device.default_low_latency if latency == "low" else device.default_high_latency
        seconds = pair[0 if kind == "input" else 1]
    elif isinstance(latency, (int, float)) and latency >= 0:
        seconds = float(latency)
    else:
        raise RtqError(f"latency must be 'low', 'high' or seconds >= 0, not {latency!r}")
    return sd._ffi.new(
        "PaStreamParameters*", (device.index, int(channels), sd._lib.paFloat32, seconds, sd._ffi.NULL)
    )


def _route(in_device: Device | None, out_device: Device) -> str:
    return out_device.describe() if in_device is None else f"{in_device.describe()} -> {out_device.describe()}"


def _close_stream(ptr, keepalive) -> None:
    """Close a PaStream; ``keepalive`` (callback, control block, bound arrays) lives until then."""
    sd._lib.Pa_CloseStream(ptr)


class UnsupportedRate(RtqError):
    """The devices cannot run the stream at the sample rate asked for (the message lists
    the standard rates they can)."""


#: Resources of lost streams.  PortAudio still holds pointers to them, so they are never freed.
_abandoned: list = []


class DuplexStream(CallbackStream):
    """Full-duplex float32 stream whose callback is compiled code.

    Parameters
    ----------
    callback : rtq.native.Entry or numba CFunc
        The compiled ``PaStreamCallback`` (:data:`~rtq.live.callback.CALLBACK_SIGNATURE`)
        PortAudio calls on its audio thread for every block; its block function follows
        the real-time rules of :mod:`rtq.live.callback` (no allocation, no exceptions, no
        blocking, no Python).
    device : int, str, None or pair
        Device index, case-insensitive name substring or None (default
        device); an ``(input, output)`` pair selects them separately.
    samplerate : float, optional
        Sample rate in Hz; default: the output device's default rate.
    blocksize : int
        Frames per callback.  0 lets the host choose (and vary) it.
    latency : {'low', 'high'} or float or pair
        Suggested latency: the device's default low/high latency, or seconds.
    channels : int or pair
        Input and output channel counts (one value for both, or a pair).  An input
        count of 0 opens the output alone (no input device is needed; the block function
        gets an input of no channels).
    user_words : int
        Control-block words reserved for the block function after
        :data:`~rtq.live.callback.USER`.
    stall_timeout : float
        :meth:`check` declares the stream lost when no callback arrived for
        this many seconds while it should be running (also the limit for the
        first callback after :meth:`start`).

    Notes
    -----
    Samples are float32, interleaved; PortAudio's clipping and dithering are
    off (``paClipOff | paDitherOff``), so what the callback writes reaches the
    host API bit-exactly.  The stream is opened in the constructor; use it as
    a context manager (or call :meth:`close`) to release it.

    While the stream runs, the main thread must call :meth:`check` (or
    :meth:`wait`) every ~0.1 s.  When the audio server dies, PortAudio never
    calls the stream-finished callback, any later ``Pa_StopStream``,
    ``Pa_AbortStream``, ``Pa_CloseStream`` or ``Pa_Terminate`` blocks forever,
    and ``Pa_Terminate`` at interpreter exit would hang.  :meth:`check`
    notices the loss (``Pa_IsStreamActive`` drops to 0 within ~10 ms of the
    server dying; a stalled server shows as a missing heartbeat), abandons
    the stream without calling PortAudio again, disarms sounddevice's exit
    handler and raises :class:`StreamLost`, so the program can exit normally.

    Raises
    ------
    RtqError
        One line, for unknown or ambiguous devices, unsupported sample rates
        or channel counts (listing what is available), and PortAudio errors.
    """

    def __init__(
        self,
        callback,
        *,
        device=None,
        samplerate: float | None = None,
        blocksize: int = 256,
        latency="low",
        channels=2,
        user_words: int = 0,
        stall_timeout: float = 1.0,
    ):
        idev, odev = _split(device, "device")
        ich, och = _split(channels, "channels")
        ilat, olat = _split(latency, "latency")
        in_device = None if ich == 0 else resolve(idev, "input")
        out_device = resolve(odev, "output")
        iparams = sd._ffi.NULL if in_device is None else _stream_parameters(in_device, "input", ich, ilat)
        oparams = _stream_parameters(out_device, "output", och, olat)
        if samplerate is None:
            samplerate = out_device.default_samplerate
        if not isinstance(blocksize, (int, np.integer)) or blocksize < 0:
            raise RtqError(f"blocksize must be a whole number of frames >= 0, not {blocksize!r}")
        self._check_format(iparams, oparams, float(samplerate), in_device, out_device)

        self._setup_control(callback, ich, och, samplerate, user_words)
        self._stall_ns = int(stall_timeout * 1e9)

        pp = sd._ffi.new("PaStream**")
        _check(
            sd._lib.Pa_OpenStream(
                pp,
                iparams,
                oparams,
                float(samplerate),
                int(blocksize),
                sd._lib.paClipOff | sd._lib.paDitherOff,
                sd._ffi.cast("PaStreamCallback *", self._callback.address),
                sd._ffi.cast("void *", self._ctl.ctypes.data),
            ),
            f"cannot open stream on {_route(in_device, out_device)}",
        )
        self._ptr = pp[0]
        self._keepalive = (self._callback, self._ctl, self._hist, self._bound, self._held)
        self._closer = weakref.finalize(self, _close_stream, self._ptr, self._keepalive)
        _check(
            sd._lib.Pa_SetStreamFinishedCallback(
                self._ptr, sd._ffi.cast("PaStreamFinishedCallback *", _finished_callback.address)
            ),
            "cannot set the stream-finished callback",
        )
        info = sd._lib.Pa_GetStreamInfo(self._ptr)
        self.samplerate: float = info.sampleRate
        """Actual sample rate in Hz."""
        self.latency: tuple[float, float] = (info.inputLatency, info.outputLatency)
        """(input, output) latency in seconds as reported by PortAudio."""
        self.blocksize: int = int(blocksize)
        self.channels: tuple[int, int] = (int(ich), int(och))
        self.devices: tuple[Device | None, Device] = (in_device, out_device)

    @staticmethod
    def _check_format(iparams, oparams, samplerate, in_device, out_device):
        err = sd._lib.Pa_IsFormatSupported(iparams, oparams, samplerate)
        if err >= 0:
            return
        where = _route(in_device, out_device)
        if err == sd._lib.paInvalidSampleRate:
            ok = [r for r in _STANDARD_RATES if sd._lib.Pa_IsFormatSupported(iparams, oparams, r) >= 0]
            supported = ", ".join(map(str, ok)) if ok else "none of the standard rates"
            raise UnsupportedRate(f"sample rate {samplerate:g} Hz is not supported by {where}; "
                                  f"supported: {supported}")
        raise RtqError(f"cannot use {where}: {_pa_error_text(err)}")

    # -- life cycle ---------------------------------------------------------
    @property
    def closed(self) -> bool:
        """True after :meth:`close` (or after the stream was lost)."""
        return not self._closer.alive

    def start(self) -> None:
        """Start calling the callback.

        Raises
        ------
        StreamLost
            If PortAudio cannot start the stream (typically: the audio server died
            after the stream was opened).  The stream is then abandoned, not closed.
        """
        if self.closed:
            raise RuntimeError("stream is closed")
        self._ctl[COMMAND] = CONTINUE
        self._ctl[FINISHED] = 0
        self._ctl[LAST_START_NS] = 0
        with silenced_stderr():
            err = sd._lib.Pa_StartStream(self._ptr)
        if err < 0:
            # The server may have died since the stream was opened; closing it would
            # then abort the process inside PortAudio, so it is abandoned instead.
            self._abandon(f"cannot start it (audio server gone?): {_pa_error_text(err)}")
        self._started_ns = time.monotonic_ns()

    def check(self) -> bool:
        """Watchdog: call every ~0.1 s while the stream runs.

        Returns
        -------
        bool
            True while the stream is running, False once it is stopped or
            the callback ended it (by setting ``ctl[COMMAND]``).

        Raises
        ------
        StreamLost
            When the stream stopped on its own or no callback arrived within
            ``stall_timeout``.  The stream is then abandoned (see class notes).
        """
        if self._started_ns is None:
            return False
        if sd._lib.Pa_IsStreamActive(self._ptr) != 1:
            if self._ctl[COMMAND] != CONTINUE or self._ctl[FINISHED]:
                return False
            self._abandon("the audio stream stopped unexpectedly (audio server gone?)")
        last = int(self._ctl[LAST_START_NS]) or self._started_ns
        silent = time.monotonic_ns() - last
        if silent > self._stall_ns:
            self._abandon(f"no audio callback for {silent / 1e9:.1f} s (audio server stalled or gone?)")
        return True

    def _abandon(self, reason: str):
        """Forget the stream without calling PortAudio again, then raise StreamLost."""
        self._started_ns = None
        _abandoned.append(self._keepalive)
        self._closer.detach()
        atexit.unregister(sd._exit_handler)
        raise StreamLost(f"audio stream lost: {reason}")

    def stop(self) -> None:
        """Stop after the pending buffers have been played; no-op when not started.

        Raises
        ------
        StreamLost
            If the stream was lost before it could be stopped cleanly.
        """
        if self._started_ns is None:
            return
        self.check()
        if sd._lib.Pa_IsStreamStopped(self._ptr) != 1:
            _check(sd._lib.Pa_StopStream(self._ptr), "cannot stop stream")
        self._started_ns = None

    def close(self) -> None:
        """Stop and release the stream; idempotent, and a no-op once the stream was lost.

        Raises
        ------
        StreamLost
            If the loss is only noticed here; the stream is then abandoned.
        """
        if not self.closed:
            self.stop()
            self._closer()
