"""Integer PCM samples as stored in a file's data, to and from grid values, compiled.

libsndfile converts 24-bit PCM one byte at a time: reading or writing a 10-minute stereo
file costs a quarter of a second of CPU either way, ten times the copy of its bytes.  So
rtq moves the bytes of uncompressed integer PCM with libsndfile's raw calls (it still
parses and writes the headers, and bounds the data) and converts them here, in one
compiled pass.  The values are the same: a ``w``-byte sample is the code ``v`` of a
grid of ``8 w`` bits, and ``v / 2^(8 w - 1)`` is exact in float32 up to 24 bits and in
float64 always, as libsndfile's own conversion gives them; written, the grid value
``y`` becomes the code ``y * 2^(8 w - 1)`` (exact on a grid that fine), saturated at
the largest code (only ``y = +1.0`` reaches it), as libsndfile stores int16 and int32
codes.

Samples are little-endian unless ``swap`` (libsndfile's ``SFC_RAW_DATA_NEEDS_ENDSWAP``
for the file on this machine); frames are interleaved, ``width`` bytes per sample.
"""
import numpy as np

from ..jit import address_as_void_pointer, carray, kernel
from ..native import Entry


@kernel
def _view(address, n, dtype):
    return carray(address_as_void_pointer(address), (n,), dtype)


@kernel
def _decode(address, dst, width, swap, scale):
    """The ``dst.size`` samples of ``width`` bytes at ``address`` as values in ``dst`` (flat)."""
    n = dst.shape[0]
    if width == 2 and not swap:
        codes16 = _view(address, n, np.int16)
        for i in range(n):
            dst[i] = codes16[i] * scale
    elif width == 4 and not swap:
        codes32 = _view(address, n, np.int32)
        for i in range(n):
            dst[i] = codes32[i] * scale
    elif width == 3 and not swap:     # the common case: four samples from three 32-bit words
        words = _view(address, n // 4 * 3, np.uint32)
        for g in range(n // 4):
            w0, w1, w2 = np.int64(words[3 * g]), np.int64(words[3 * g + 1]), np.int64(words[3 * g + 2])
            dst[4 * g] = (np.int32(w0 << 8) >> 8) * scale
            dst[4 * g + 1] = (np.int32(w1 << 16 | (w0 >> 24) << 8) >> 8) * scale
            dst[4 * g + 2] = (np.int32(w2 << 24 | (w1 >> 16) << 8) >> 8) * scale
            dst[4 * g + 3] = (np.int32(w2) >> 8) * scale
        raw = _view(address, n * 3, np.uint8)
        for i in range(n // 4 * 4, n):
            dst[i] = (np.int32(np.int64(raw[3 * i]) << 8 | np.int64(raw[3 * i + 1]) << 16
                               | np.int64(raw[3 * i + 2]) << 24) >> 8) * scale
    else:
        raw = _view(address, n * width, np.uint8)
        last = width - 1
        for i in range(n):
            code = np.int32(0)
            for b in range(width):     # from the least significant byte, each into the top of the word
                code = np.int32(((code >> 8) & 0x00FFFFFF) | (np.int64(raw[width * i + (last - b if swap else b)]) << 24))
            dst[i] = (code >> (32 - 8 * width)) * scale


@kernel
def _encode(src, address, width, swap, scale, top):
    """The grid values ``src`` (flat) as samples of ``width`` bytes at ``address``."""
    n = src.shape[0]
    if width == 2 and not swap:
        codes16 = _view(address, n, np.int16)
        for i in range(n):
            codes16[i] = min(src[i] * scale, top)
    elif width == 4 and not swap:
        codes32 = _view(address, n, np.int32)
        for i in range(n):
            codes32[i] = min(src[i] * scale, top)
    elif width == 3 and not swap:     # four samples into three 32-bit words
        words = _view(address, n // 4 * 3, np.uint32)
        for g in range(n // 4):
            c0 = np.int64(np.int32(min(src[4 * g] * scale, top))) & 0xFFFFFF
            c1 = np.int64(np.int32(min(src[4 * g + 1] * scale, top))) & 0xFFFFFF
            c2 = np.int64(np.int32(min(src[4 * g + 2] * scale, top))) & 0xFFFFFF
            c3 = np.int64(np.int32(min(src[4 * g + 3] * scale, top))) & 0xFFFFFF
            words[3 * g] = np.uint32((c0 | c1 << 24) & 0xFFFFFFFF)
            words[3 * g + 1] = np.uint32((c1 >> 8 | c2 << 16) & 0xFFFFFFFF)
            words[3 * g + 2] = np.uint32((c2 >> 16 | c3 << 8) & 0xFFFFFFFF)
        raw = _view(address, n * 3, np.uint8)
        for i in range(n // 4 * 4, n):
            code = np.int32(min(src[i] * scale, top))
            raw[3 * i] = np.uint8(code & 0xFF)
            raw[3 * i + 1] = np.uint8((code >> 8) & 0xFF)
            raw[3 * i + 2] = np.uint8((code >> 16) & 0xFF)
    else:
        raw = _view(address, n * width, np.uint8)
        last = width - 1
        for i in range(n):
            code = np.int32(min(src[i] * scale, top))
            for b in range(width):     # least significant byte first
                raw[width * i + (last - b if swap else b)] = np.uint8((code >> (8 * b)) & 0xFF)


_SIGNATURE = "void(int64, int64, int64, int64, int64, int64)"


@Entry(_SIGNATURE)
def decode_entry(raw_address, dst_address, samples, width, swap, double):
    """C entry point: ``samples`` samples of ``width`` bytes (2, 3 or 4) at
    ``raw_address`` as float32 or float64 (``double``) values at ``dst_address``."""
    scale = 2.0 ** (1 - 8 * width)
    if double:
        _decode(raw_address, _view(dst_address, samples, np.float64), width, swap, scale)
    else:
        _decode(raw_address, _view(dst_address, samples, np.float32), width, swap, np.float32(scale))


@Entry(_SIGNATURE)
def encode_entry(src_address, raw_address, samples, width, swap, double):
    """C entry point: ``samples`` float32 or float64 (``double``) grid values at
    ``src_address`` as samples of ``width`` bytes (2, 3 or 4) at ``raw_address``.
    Width 2 and 4, not swapped, are the int16 and int32 codes libsndfile takes."""
    scale = 2.0 ** (8 * width - 1)
    if double:
        _encode(_view(src_address, samples, np.float64), raw_address, width, swap, scale, scale - 1.0)
    else:
        _encode(_view(src_address, samples, np.float32), raw_address, width, swap, scale, scale - 1.0)


def decode(raw: np.ndarray, dst: np.ndarray, width: int, swap: bool) -> None:
    """Fill ``dst`` (C-contiguous float64, or float32 for ``width`` up to 3, (frames,
    channels)) from the bytes ``raw``."""
    if dst.dtype != np.float64 and width > 3:
        raise ValueError("32-bit samples are decoded to float64 only (float32 would round them)")
    decode_entry.ctypes(raw.ctypes.data, dst.ctypes.data, dst.size, width, swap, dst.dtype == np.float64)


def encode(src: np.ndarray, raw: np.ndarray, width: int, swap: bool) -> None:
    """Fill ``raw`` (at least ``src.size * width`` bytes) from ``src`` (C-contiguous
    float32 or float64 grid values, (frames, channels))."""
    encode_entry.ctypes(src.ctypes.data, raw.ctypes.data, src.size, width, swap, src.dtype == np.float64)
