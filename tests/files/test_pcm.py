"""Integer PCM moved as bytes (libsndfile's raw calls) and converted by rtq.files.pcm:
the same values as libsndfile's own conversion when read, the same file bytes when
written, in every container and byte order the raw path takes."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from rtq.files import pcm
from rtq.files.audio import _RAW_CONTAINERS, _RAW_WIDTHS, AudioInput, raw_layout, write_raw

# (container, subtype, endian) libsndfile writes, the raw path's every case: AIFF and AU
# are big-endian, CAF and the RIFF family little-endian by default.
CASES = [(fmt, subtype, endian) for fmt in sorted(_RAW_CONTAINERS) for subtype in _RAW_WIDTHS
         for endian in ("FILE", "BIG", "LITTLE")
         if sf.check_format(fmt, subtype, endian)]


def codes(bits: int, frames: int, channels: int, seed: int) -> np.ndarray:
    """Random codes of ``bits`` bits with both extremes and zero, as int32 (code x 2^(32 - bits))."""
    rng = np.random.default_rng(seed)
    c = rng.integers(-2 ** (bits - 1), 2 ** (bits - 1), size=(frames, channels), dtype=np.int64)
    c[:3, 0] = (-2 ** (bits - 1), 2 ** (bits - 1) - 1, 0)
    return (c << (32 - bits)).astype(np.int32)


def test_every_case_is_taken_by_the_raw_path():
    assert len(CASES) >= len(_RAW_CONTAINERS) * len(_RAW_WIDTHS)
    assert {endian for _, _, endian in CASES} >= {"BIG", "LITTLE"}


@pytest.mark.parametrize("fmt,subtype,endian", CASES)
def test_raw_reads_give_libsndfiles_values(tmp_path, fmt, subtype, endian):
    bits = 8 * _RAW_WIDTHS[subtype]
    path = tmp_path / f"in.{fmt.lower()}"
    sf.write(str(path), codes(bits, 5000, 3, seed=bits), 44100, subtype=subtype, format=fmt, endian=endian)
    for dtype in ("float32", "float64") if bits < 32 else ("float64",):
        expected = sf.read(str(path), dtype=dtype, always_2d=True)[0]
        with AudioInput(path) as audio:
            assert audio._raw is not None and audio._raw[0] == bits // 8
            got = np.zeros((1701, 3), dtype)       # blocks that do not divide the length (nor 4 samples)
            blocks = []
            while n := audio.read_into(got):
                blocks.append(got[:n].copy())
        assert np.array_equal(np.concatenate(blocks), expected), dtype
        assert np.concatenate(blocks).dtype == expected.dtype


@pytest.mark.parametrize("fmt,subtype,endian", CASES)
def test_raw_writes_give_libsndfiles_bytes(tmp_path, fmt, subtype, endian):
    """The chain's grid values encoded here and written raw make the file libsndfile
    makes from their int32 codes, header and all."""
    bits = 8 * _RAW_WIDTHS[subtype]
    c = codes(bits, 5000, 2, seed=bits + 1)
    values = c / 2.0 ** 31
    theirs, ours = tmp_path / f"theirs.{fmt.lower()}", tmp_path / f"ours.{fmt.lower()}"
    sf.write(str(theirs), c, 44100, subtype=subtype, format=fmt, endian=endian)
    with sf.SoundFile(str(ours), "w", 44100, 2, subtype, format=fmt, endian=endian) as out:
        width, swap = raw_layout(out)
        for first in range(0, 5000, 1701):
            for dtype in (np.float64,) if bits == 32 else (np.float32,):
                block = np.ascontiguousarray(values[first:first + 1701], dtype)
                raw = np.zeros(block.size * width, np.uint8)
                pcm.encode(block, raw, width, swap)
                write_raw(out, raw)
    assert ours.read_bytes() == theirs.read_bytes()


def test_other_files_take_libsndfiles_conversion(tmp_path):
    """Compressed, 8-bit, law and float files are read and written by libsndfile."""
    for fmt, subtype in (("FLAC", "PCM_24"), ("WAV", "PCM_U8"), ("WAV", "ULAW"), ("WAV", "FLOAT"), ("OGG", "VORBIS")):
        path = tmp_path / f"x.{fmt.lower()}"
        sf.write(str(path), np.zeros((100, 1)), 44100, subtype=subtype, format=fmt)
        with sf.SoundFile(str(path)) as f:
            assert raw_layout(f) is None, (fmt, subtype)
