"""Audio files through libsndfile (soundfile): inputs read with their length checked,
outputs written reproducibly, and one-line errors that name the file that failed.

Inputs.  :class:`AudioInput` opens a file once (the descriptor it checks is the one it
reads), reads blocks straight into the caller's buffers, and counts the frames it
delivers.  A file that ends before the length its header promises (truncated on disk,
damaged, or cut while it was being read) is an :class:`InputError` naming both counts,
unless the caller allows a short input, which is then reported by
:attr:`AudioInput.shortfall`.  libsndfile quietly shortens the length of an uncompressed
file whose data chunk runs past its end (a WAV whose header says 480 000 frames and that
holds 250 reads as 250 frames); the header's own figure is had by letting libsndfile
parse the header of a view of the file that claims to be longer than any real file
(:func:`declared_frames`).

Outputs.  :func:`open_output` writes into a :class:`~rtq.files.destination.Destination`'s
descriptor.  The same samples give the same bytes: libsndfile's PEAK chunk, which holds
the time of writing, is left out, and the one container that stamps the time of writing
into its header whatever rtq asks (MAT5) is refused, as is SD2, whose resource fork
libsndfile writes as a second file.  A system error (a full disk) is
:func:`~rtq.files.destination.write_failure` whenever it happens; a container that
cannot hold the stream is a usage error.

Uncompressed integer PCM (16, 24 and 32 bits in the containers of :data:`_RAW_CONTAINERS`)
moves as bytes, through libsndfile's raw calls, and is converted by :mod:`rtq.files.pcm`
(the same values, at a tenth of libsndfile's cost for 24-bit samples); libsndfile still
parses and writes the headers and bounds the data.

Both sides call libsndfile through soundfile's cffi handle (``soundfile._snd``) where
soundfile's own methods fall short: its ``read`` seeks back and forth around every block
and, when a decoder fails, raises without the count of frames it delivered; it does not
declare ``SFC_SET_ADD_PEAK_CHUNK``; and its errors carry libsndfile's generic text
(``System error.``) where ``sf_strerror`` has the system's (``No space left on device``).
"""
from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

import numpy as np
import soundfile as sf

from ..errors import RtqError, UsageError
from ..spec import check_file_rate
from .destination import write_failure

_SFE_SYSTEM = 2                # libsndfile's error code for a failed system call
_SFC_SET_ADD_PEAK_CHUNK = 0x1050   # sndfile.h; soundfile does not declare it
_SFC_RAW_DATA_NEEDS_ENDSWAP = 0x1110
# Containers to which libsndfile adds a PEAK chunk (float and double data only).  Only
# these may be told to leave it out: told so, RF64 adds one instead (libsndfile 1.2.2).
_PEAK_CONTAINERS = {"WAV", "WAVEX", "AIFF"}
_PEAK_SUBTYPES = {"FLOAT", "DOUBLE"}
# Containers rtq does not write, and why.
_REFUSED = {"MAT5": "libsndfile stamps them with the time of writing, so the same render would not give "
                    "the same bytes (use .mat4)",
            "SD2": "libsndfile writes their resource fork as a second file (._NAME), which cannot appear "
                   "atomically with it"}
_EXTENSION_ALIASES = {"aif": "aiff", "oga": "ogg"}

# Containers whose data chunk declares its length, and which libsndfile cuts to the
# bytes present (see declared_frames); the size in bits of that length field.
_DECLARED_LENGTH_BITS = {"WAV": 32, "WAVEX": 32, "AIFF": 32, "AU": 32, "RF64": 64}
_BYTES_PER_SAMPLE = {"PCM_S8": 1, "PCM_U8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4,
                     "DOUBLE": 8, "ULAW": 1, "ALAW": 1}
# Integer PCM subtypes whose samples these containers store as they are (two's complement,
# one byte order, frames interleaved): bytes per sample.
_RAW_CONTAINERS = {"WAV", "WAVEX", "RF64", "W64", "AIFF", "AU", "CAF"}
_RAW_WIDTHS = {"PCM_16": 2, "PCM_24": 3, "PCM_32": 4}
# The length the view claims: a count derived from it is no declaration.
_VIEW_BYTES = 1 << 50


class InputError(RtqError):
    """An input that failed while it was read, or ended before its header's length
    (exit status 1)."""


def _error_text(err: BaseException) -> str:
    """A soundfile error's text without soundfile's ``Error opening ...:`` prefix."""
    text = err.error_string if isinstance(err, sf.LibsndfileError) else str(err)
    return text.strip().rstrip(".") or type(err).__name__


def libsndfile_reason(handle=None) -> str:
    """libsndfile's own words for the last error of ``handle`` (a SoundFile; None: the
    last failed open), which for a system error include the system's
    (``No space left on device``)."""
    ptr = sf._ffi.NULL if handle is None else handle._file
    text = sf._ffi.string(sf._snd.sf_strerror(ptr)).decode("utf-8", "replace").strip()
    if text.startswith("System error :"):
        text = text.removeprefix("System error :").strip()
    elif text.startswith("Error :"):
        text = text.removeprefix("Error :").strip()
    return text.rstrip(".") or "unknown error"


def raw_layout(file: sf.SoundFile) -> tuple[int, bool] | None:
    """``(bytes per sample, byte-swapped)`` of an open file whose samples libsndfile's raw
    calls move as :mod:`rtq.files.pcm` converts them; None for any other file."""
    width = _RAW_WIDTHS.get(file.subtype)
    if width is None or file.format not in _RAW_CONTAINERS:
        return None
    return width, bool(sf._snd.sf_command(file._file, _SFC_RAW_DATA_NEEDS_ENDSWAP, sf._ffi.NULL, 0))


# --- inputs --------------------------------------------------------------------------

class _LongView:
    """A read-only view of a file descriptor that claims :data:`_VIEW_BYTES` bytes (the
    file's own bytes, then nothing): libsndfile then takes a header's length as written."""

    def __init__(self, fd: int):
        self.fd, self.pos = fd, 0

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self.pos, os.SEEK_END: _VIEW_BYTES}[whence]
        self.pos = max(base + offset, 0)
        return self.pos

    def tell(self) -> int:
        return self.pos

    def read(self, size: int = -1) -> bytes:
        try:
            data = os.pread(self.fd, max(size, 0), self.pos)
        except OSError:         # (an exception would only be printed by the cffi callback)
            data = b""
        self.pos += len(data)
        return data

    def write(self, data) -> int:
        raise OSError("read-only")


def _as_promise(frames: int, info: sf.SoundFile) -> int | None:
    """``frames`` as a promise of the header of ``info``, or None where it is none: a
    32-bit length field at its maximum (0xFFFFFFFF: a WAV written to a pipe), libsndfile's
    "unknown" (a stream it cannot measure), or a count derived from :class:`_LongView`'s
    length."""
    frame_bytes = _BYTES_PER_SAMPLE.get(info.subtype, 1) * info.channels
    if frames * frame_bytes >= _VIEW_BYTES // 2:
        return None
    if (_DECLARED_LENGTH_BITS.get(info.format) == 32 and info.subtype in _BYTES_PER_SAMPLE
            and frames >= (2 ** 32 - 1) // frame_bytes):
        return None
    return frames


def declared_frames(fd: int, info: sf.SoundFile) -> int | None:
    """The frames the header of the open file ``info`` declares where libsndfile would cut
    that to the bytes present (a regular file in one of :data:`_DECLARED_LENGTH_BITS`'s
    containers, uncompressed); None elsewhere, and where the header promises no length
    (:func:`_as_promise`)."""
    if (info.format not in _DECLARED_LENGTH_BITS or info.subtype not in _BYTES_PER_SAMPLE
            or not stat.S_ISREG(os.fstat(fd).st_mode)):
        return None
    try:
        with sf.SoundFile(_LongView(fd)) as view:
            return _as_promise(view.frames, info)
    except (sf.LibsndfileError, RuntimeError, OSError):
        return None


class AudioInput:
    """An audio file opened for reading (``with`` closes it).

    Parameters
    ----------
    path : path-like
    allow_short : bool
        Take a file that ends before its header's length as it is (:attr:`shortfall`
        then says how much is missing) instead of raising :class:`InputError`.

    Attributes
    ----------
    promised : int or None
        The frames the header promises (None: it promises no length, as a stream read
        from a pipe or a WAV written to one).
    frames : int
        The frames libsndfile offers (fewer than promised for a file cut on disk).

    Raises
    ------
    UsageError
        One line naming the file: missing, a directory, not audio, or at a rate rtq
        does not run streams at.
    """

    def __init__(self, path, *, allow_short: bool = False):
        self.path = Path(path)
        self.allow_short = allow_short
        self.failure: str | None = None       # why reading stopped early (allow_short)
        self.end: int | None = None           # where the file was seen to end
        self._exhausted = False
        self._fd = -1
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise UsageError(f"{self.path}: no such file") from None
        except OSError as err:
            raise UsageError(f"{self.path}: cannot read it ({err.strerror})") from None
        try:
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                raise UsageError(f"{self.path} is a directory, not an audio file")
            try:
                self.file = sf.SoundFile(fd, closefd=False)
            except (sf.LibsndfileError, RuntimeError) as err:
                detail = libsndfile_reason() if getattr(err, "code", None) == _SFE_SYSTEM else _error_text(err)
                raise UsageError(f"{self.path}: not a readable audio file ({detail})") from None
            try:
                check_file_rate(self.file.samplerate, self.path)
                promises = [n for n in (_as_promise(self.file.frames, self.file), declared_frames(fd, self.file))
                            if n is not None]
                self.promised = max(promises) if promises else None     # None: no length known
                if self.promised is not None and self.promised > self.file.frames:   # cut on disk: known now
                    self._check_end(self.file.frames)
            except BaseException:
                self.file.close()
                raise
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self.samplerate, self.channels = self.file.samplerate, self.file.channels
        self.subtype, self.format = self.file.subtype, self.file.format
        self.frames = self.file.frames     # what libsndfile offers (promised: what the header says)
        self.position = 0
        self._raw = raw_layout(self.file)
        self._raw_buffer = np.empty(0, np.uint8)

    def read_into(self, buf: np.ndarray) -> int:
        """Fill ``buf`` (C-contiguous float32 or float64, (frames, channels)) from the
        current position; the frames filled, fewer at the end (then 0).  The end is
        checked against :attr:`promised`."""
        if self._exhausted:
            return 0
        if self._raw is not None and (buf.dtype == np.float64 or self._raw[0] < 4):
            n = self._read_raw_into(buf, *self._raw)
        else:
            read = sf._snd.sf_readf_double if buf.dtype == np.float64 else sf._snd.sf_readf_float
            ctype = "double*" if buf.dtype == np.float64 else "float*"
            n = read(self.file._file, sf._ffi.cast(ctype, buf.ctypes.data), buf.shape[0])
        failure = libsndfile_reason(self.file) if sf._snd.sf_error(self.file._file) else None
        self.position += n
        if failure is not None:
            if not self.allow_short:
                of = "" if self.promised is None else f" of {self.promised}"
                raise InputError(f"cannot read {self.path}: {failure} after {self.position}{of} frames")
            self.failure = failure
        if failure is not None or n < buf.shape[0]:
            self._exhausted = True
            self._check_end(self.position)
        return n

    def _read_raw_into(self, buf: np.ndarray, width: int, swap: bool) -> int:
        """:meth:`read_into` through libsndfile's raw read and :func:`rtq.files.pcm.decode`."""
        from . import pcm   # Numba's compiled code: only for readers of integer PCM

        frame_bytes = width * self.channels
        if self._raw_buffer.size < buf.shape[0] * frame_bytes:
            self._raw_buffer = np.empty(buf.shape[0] * frame_bytes, np.uint8)
        got = sf._snd.sf_read_raw(self.file._file, sf._ffi.cast("void*", self._raw_buffer.ctypes.data),
                                  buf.shape[0] * frame_bytes)
        n = max(got, 0) // frame_bytes
        pcm.decode(self._raw_buffer, buf[:n], width, swap)
        return n

    def read(self, frames: int, dtype: str = "float64", always_2d: bool = True) -> np.ndarray:
        """Up to ``frames`` frames from the current position, as float64 (frames,
        channels): :meth:`soundfile.SoundFile.read` with those arguments, for readers of
        either."""
        if dtype != "float64" or not always_2d:
            raise ValueError("AudioInput.read gives float64 (frames, channels) only")
        buf = np.empty((frames, self.channels))
        return buf[:self.read_into(buf)]

    def seek(self, frame: int) -> None:
        """Go to ``frame`` (from the start) for the next read."""
        self.file.seek(frame)
        self.position, self._exhausted = frame, False

    def _check_end(self, end: int) -> None:
        """The file ends at frame ``end``: fine if that is the length promised or more;
        else an :class:`InputError`, or with ``allow_short`` :attr:`missing` frames."""
        self.end = end if self.end is None else min(self.end, end)
        if self.promised is not None and end < self.promised and not self.allow_short:
            raise self._short(end)

    def _short(self, end: int) -> InputError:
        return InputError(f"{self.path} ends after {end} of the {self.promised} frames its header promises "
                          f"({self.promised - end} missing: truncated or damaged); --allow-short takes what "
                          "is there")

    @property
    def missing(self) -> int:
        """Frames the header promised that the file did not have (once its end was seen)."""
        return 0 if self.end is None or self.promised is None else max(self.promised - self.end, 0)

    @property
    def shortfall(self) -> str | None:
        """One line on a short input taken as it is (``allow_short``), else None."""
        if not self.missing:
            return None
        why = f" ({self.failure})" if self.failure else ""
        return (f"{self.path} ended after {self.end} of the {self.promised} frames its header "
                f"promises{why}: {self.missing} frames ({self.missing / self.samplerate:.3f} s) missing")

    def close(self) -> None:
        if self._fd >= 0:
            self.file.close()
            os.close(self._fd)
            self._fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- outputs -------------------------------------------------------------------------

def output_format(path) -> str:
    """The libsndfile container for an output path, from its extension; one-line
    :class:`UsageError` for an unknown extension or a container rtq does not write."""
    path = Path(path)
    ext = path.suffix.lower().lstrip(".")
    formats = {k.lower(): k for k in sf.available_formats()}
    fmt = formats.get(_EXTENSION_ALIASES.get(ext, ext))
    if fmt is None:
        raise UsageError(f"cannot tell the audio format of {path} from its extension; use .wav, .flac, .aiff, ...")
    if fmt in _REFUSED:
        raise UsageError(f"rtq does not write {fmt} files ({path}): {_REFUSED[fmt]}")
    return fmt


def open_output(destination, rate: int, channels: int, subtype: str, fmt: str) -> sf.SoundFile:
    """A SoundFile writing into ``destination`` (a :class:`~rtq.files.destination.Destination`),
    without the PEAK chunk's time stamp.  A container that cannot hold the stream is a
    one-line :class:`UsageError`; a failed system call (a full disk) is the destination's
    :func:`~rtq.files.destination.write_failure`."""
    try:
        out = sf.SoundFile(destination.fd, "w", rate, channels, subtype, format=fmt, closefd=False)
    except (sf.LibsndfileError, RuntimeError) as err:
        if getattr(err, "code", None) == _SFE_SYSTEM:
            raise write_failure(destination.path, libsndfile_reason()) from None
        raise UsageError(f"cannot write {destination.path}: libsndfile cannot write a {fmt} {subtype} file "
                         f"with {channels} channels at {rate} Hz ({libsndfile_reason()})") from None
    if fmt in _PEAK_CONTAINERS and subtype in _PEAK_SUBTYPES:
        sf._snd.sf_command(out._file, _SFC_SET_ADD_PEAK_CHUNK, sf._ffi.NULL, sf._snd.SF_FALSE)
    return out


def write_raw(out: sf.SoundFile, data: np.ndarray) -> None:
    """Append the bytes of ``data`` (whole frames of samples as :func:`raw_layout` says
    ``out`` stores them) to ``out``; :class:`soundfile.LibsndfileError` if they were not
    all written (:func:`output_failure` words it)."""
    written = sf._snd.sf_write_raw(out._file, sf._ffi.cast("void*", data.ctypes.data), data.nbytes)
    code = sf._snd.sf_error(out._file)
    if code or written != data.nbytes:
        raise sf.LibsndfileError(code or _SFE_SYSTEM)


def output_failure(out: sf.SoundFile, path, err: BaseException):
    """The one-line error for ``out`` (the file for ``path``) whose writing or closing
    failed with ``err``."""
    if not isinstance(err, sf.LibsndfileError):
        return write_failure(path, err)
    if not out.closed:
        return write_failure(path, libsndfile_reason(out))
    # Closing (the header's last rewrite) lost the handle and with it the system's words.
    text = _error_text(err)
    if err.code == _SFE_SYSTEM:
        with contextlib.suppress(OSError):
            if os.statvfs(Path(path).parent).f_bavail == 0:
                text = os.strerror(errno.ENOSPC)
    return write_failure(path, text)
