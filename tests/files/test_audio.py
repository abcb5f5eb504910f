"""Audio files rtq writes: the smallest exact subtype each container holds (read back as
exact codes), and the same bytes for the same render, in every container and subtype
rtq writes."""
from __future__ import annotations

import time

import numpy as np
import pytest
import soundfile as sf
from signals import make_signal, write_input

from rtq.chain import Chain
from rtq.errors import UsageError
from rtq.render import render_file
from rtq.stages import Gain, Quantize, Requantize

# The output grids a chain can end on, and the chains that end on them.
GRIDS = {
    "8": lambda: Chain([Requantize(8, "tpdf")], seed=1),
    "12": lambda: Chain([Requantize(12, "tpdf")], seed=1),
    "16": lambda: Chain([Requantize(16, "tpdf")], seed=1),
    "20": lambda: Chain([Requantize(20, "tpdf")], seed=1),
    "24": lambda: Chain([Requantize(24, "tpdf")], seed=1),
    "28": lambda: Chain([Requantize(28, "tpdf")], seed=1),
    "mu-law": lambda: Chain([Quantize("mu-law")]),
    "a-law": lambda: Chain([Quantize("a-law")]),
    "none": lambda: Chain([Gain(-3.0)]),
}
# The default subtype of each container for each grid: the smallest that holds it
# exactly (None: the container holds no such subtype; the render is refused).
S8, U8, P16, P24, P32 = "PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "PCM_32"
WAV_LIKE = {"8": U8, "12": P16, "16": P16, "20": P24, "24": P24, "28": P32, "mu-law": "ULAW", "a-law": "ALAW",
            "none": "FLOAT"}
SIGNED_8 = {**WAV_LIKE, "8": S8}
DEFAULTS = {
    "wav": WAV_LIKE, "wavex": WAV_LIKE, "rf64": WAV_LIKE, "w64": WAV_LIKE,
    "aiff": SIGNED_8, "caf": SIGNED_8, "au": SIGNED_8,
    "flac": {"8": S8, "12": P16, "16": P16, "20": P24, "24": P24, "28": None, "mu-law": P16, "a-law": P16,
             "none": None},
}


@pytest.fixture(scope="module")
def signal_file(tmp_path_factory):
    return write_input(tmp_path_factory.mktemp("in") / "in.wav", make_signal(3000, 2, seed=9, rate=44100), 44100)


@pytest.mark.parametrize("ext", list(DEFAULTS))
@pytest.mark.parametrize("grid", list(GRIDS))
def test_the_default_is_the_smallest_exact_subtype_and_reads_back_as_the_codes(tmp_path, signal_file, ext, grid):
    """8-bit renders were 32-bit FLOAT WAV (2.8 MB where PCM_U8 takes 0.7 MB), and AIFF,
    CAF, W64 and AU fell back to FLOAT too."""
    expected = DEFAULTS[ext][grid]
    out = tmp_path / f"out.{ext}"
    if expected is None:
        with pytest.raises(UsageError, match="cannot hold this chain's output"):
            render_file(GRIDS[grid](), signal_file, out, progress=False)
        assert not out.exists()
        return
    result = render_file(GRIDS[grid](), signal_file, out, progress=False)
    assert result.subtype == expected and sf.info(str(out)).subtype == expected
    y = GRIDS[grid]()(sf.read(str(signal_file))[0], 44100)
    if expected == "FLOAT":
        assert np.array_equal(sf.read(str(out), dtype="float32")[0], y.astype(np.float32))
        return
    codes = sf.read(str(out), dtype="int32")[0].astype(np.float64)   # libsndfile: the code x 2^(32 - bits)
    assert np.array_equal(codes, y * 2.0 ** 31)                     # exact: no rounding by libsndfile
    if grid.isdigit():
        assert np.array_equal(np.rint(y * 2.0 ** (int(grid) - 1)), y * 2.0 ** (int(grid) - 1))
        assert len(np.unique(y)) > min(2 ** int(grid) // 8, 1000)


def test_an_8_bit_wav_is_a_quarter_of_the_float_one(tmp_path, signal_file):
    render_file(Chain.from_preset("undithered-8"), signal_file, tmp_path / "u8.wav", progress=False)
    render_file(Chain.from_preset("undithered-8"), signal_file, tmp_path / "float.wav", subtype="FLOAT",
                progress=False)
    u8, fl = (tmp_path / "u8.wav").stat().st_size, (tmp_path / "float.wav").stat().st_size
    assert sf.info(str(tmp_path / "u8.wav")).subtype == "PCM_U8" and u8 < 0.27 * fl
    assert np.array_equal(sf.read(str(tmp_path / "u8.wav"))[0], sf.read(str(tmp_path / "float.wav"))[0])


def writable():
    """Every (container, subtype) rtq writes: each container with an extension, and
    each subtype of it that some grid holds exactly."""
    from rtq.files.audio import _REFUSED
    from rtq.render import holds_exactly

    cases = []
    for fmt in sorted(sf.available_formats()):
        if fmt in _REFUSED:
            continue
        for subtype in sf.available_subtypes(fmt):
            grids = [g for g, chain in GRIDS.items() if holds_exactly(chain(), subtype)]
            if grids:
                cases.append((fmt, subtype, grids[0]))
    return cases


def test_the_same_render_gives_the_same_bytes_in_every_container_and_subtype(tmp_path, signal_file):
    """libsndfile's PEAK chunk holds the time of writing: two identical FLOAT renders
    differed at byte 61.  Each case is rendered twice, more than a second apart (in
    stereo, or in mono where the container holds one channel only)."""
    mono = write_input(tmp_path / "mono.wav", make_signal(3000, 1, seed=9, rate=44100)[:, 0], 44100)
    first, written = {}, []
    for fmt, subtype, grid in writable():
        for source in (signal_file, mono):
            out = tmp_path / f"a-{fmt}-{subtype}.{fmt.lower()}"
            try:
                render_file(GRIDS[grid](), source, out, subtype=subtype, progress=False)
            except UsageError as err:
                assert "libsndfile cannot write" in str(err) and source is signal_file, err
                continue
            first[fmt, subtype] = out.read_bytes()
            written.append((fmt, subtype, grid, source))
            break
    assert len(written) == len(writable()) >= 100
    time.sleep(1.1)
    for fmt, subtype, grid, source in written:
        out = tmp_path / f"b-{fmt}-{subtype}.{fmt.lower()}"
        render_file(GRIDS[grid](), source, out, subtype=subtype, progress=False)
        assert out.read_bytes() == first[fmt, subtype], (fmt, subtype)


@pytest.mark.parametrize("ext,why", [("mat5", "time of writing"), ("sd2", "resource fork")])
def test_containers_rtq_cannot_write_as_promised_are_refused(tmp_path, signal_file, ext, why):
    with pytest.raises(UsageError, match=f"rtq does not write {ext.upper()} files.*{why}"):
        render_file(GRIDS["16"](), signal_file, tmp_path / f"out.{ext}", progress=False)
    assert not (tmp_path / f"out.{ext}").exists()


# --- inputs: the length the header promises ----------------------------------------------

@pytest.mark.parametrize("fmt,subtype", [("WAV", "PCM_16"), ("WAV", "FLOAT"), ("WAVEX", "PCM_24"), ("RF64", "PCM_16"),
                                         ("AIFF", "PCM_16"), ("AU", "PCM_32"), ("W64", "PCM_16"), ("FLAC", "PCM_16")])
def test_a_file_cut_on_disk_is_short_against_its_header(tmp_path, fmt, subtype):
    """libsndfile cuts the length of an uncompressed file to its bytes (a WAV that
    promises 48 000 frames and holds 32 000 reads as 32 000): the header's own figure is
    the promise.  (W64's reader derives the length from the file's size, so a cut W64
    is short against nothing; FLAC's header length is libsndfile's own.)"""
    from rtq.files.audio import AudioInput, InputError

    path = tmp_path / f"in.{fmt.lower()}"
    sf.write(str(path), np.zeros((48000, 2)), 48000, format=fmt, subtype=subtype)
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[:size * 2 // 3])
    present = sf.info(str(path)).frames
    if fmt == "W64":
        with AudioInput(path) as audio:
            assert audio.promised == audio.frames == present
        return
    if fmt == "FLAC":
        assert present == 48000          # libsndfile's count is the header's: reading finds the cut
        with pytest.raises(InputError, match=r"after \d+ of (the )?48000 frames"):   # ends, or the decoder fails
            with AudioInput(path) as audio:
                while audio.read(8192).shape[0]:
                    pass
        return
    assert present < 48000
    with pytest.raises(InputError) as short:
        AudioInput(path)
    assert str(short.value) == (f"{path} ends after {present} of the 48000 frames its header promises "
                                f"({48000 - present} missing: truncated or damaged); --allow-short takes what is "
                                "there")
    with AudioInput(path, allow_short=True) as audio:
        assert (audio.promised, audio.frames, audio.missing) == (48000, present, 48000 - present)
        assert audio.read(48000).shape == (present, 2)


def test_a_wav_left_unclosed_promises_what_it_holds(tmp_path):
    """A WAV whose writer died before the header's sizes were written (RIFF 8, data 0)."""
    from rtq.files.audio import AudioInput

    path = tmp_path / "unclosed.wav"
    sf.write(str(path), np.zeros((1000, 1)), 48000, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    data[4:8] = (8).to_bytes(4, "little")
    data[40:44] = (0).to_bytes(4, "little")
    assert data[36:40] == b"data"
    path.write_bytes(bytes(data))
    with AudioInput(path) as audio:
        assert audio.promised == audio.frames == 1000 and audio.read(2000).shape == (1000, 1)
        assert audio.missing == 0 and audio.shortfall is None
