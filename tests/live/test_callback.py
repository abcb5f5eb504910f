"""The live callback and its control block (rtq.live.callback), called directly (no
audio server): counters, the command word, prefaulting."""
from __future__ import annotations

import ctypes
import mmap

import numpy as np
import pytest

from rtq.live.callback import (ABORT, CALLBACKS, COMMAND, CONTINUE, FRAMES, HIST_ADDR, HIST_BINS, HIST_LEN,
                               IN_CHANNELS, INPUT_OVERFLOWS, LAST_START_NS, OUT_CHANNELS, OUTPUT_UNDERFLOWS,
                               SAMPLERATE, USER, WORDS, prefault)

from .blocks import make_callback, passthrough


def bits(a):
    return np.ascontiguousarray(a).view(np.uint32)


def test_compiled_callback_called_directly_copies_and_counts():
    callback = make_callback(passthrough)
    assert make_callback(passthrough) is callback
    ctl = np.zeros(USER, np.int64)
    hist = np.zeros(HIST_BINS, np.int64)
    ctl[[WORDS, IN_CHANNELS, OUT_CHANNELS, SAMPLERATE]] = USER, 2, 2, 48000
    ctl[[HIST_ADDR, HIST_LEN]] = hist.ctypes.data, hist.size
    inp = np.random.default_rng(1).standard_normal((64, 2)).astype(np.float32)
    out = np.zeros_like(inp)
    status = 2 | 4  # paInputOverflow | paOutputUnderflow
    assert callback.ctypes(inp.ctypes.data, out.ctypes.data, 64, 0, status, ctl.ctypes.data) == CONTINUE
    assert np.array_equal(bits(out), bits(inp))
    assert ctl[CALLBACKS] == 1 and ctl[FRAMES] == 64 and ctl[LAST_START_NS] > 0
    assert ctl[INPUT_OVERFLOWS] == 1 and ctl[OUTPUT_UNDERFLOWS] == 1 and hist.sum() == 1
    ctl[COMMAND] = ABORT
    assert callback.ctypes(inp.ctypes.data, out.ctypes.data, 64, 0, 0, ctl.ctypes.data) == ABORT


def resident_pages(buffer: mmap.mmap) -> np.ndarray:
    """``mincore(2)``: which pages of an anonymous mapping are resident."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    address = ctypes.addressof(ctypes.c_char.from_buffer(buffer))
    pages = np.zeros(len(buffer) // mmap.PAGESIZE, np.uint8)
    assert libc.mincore(address, len(buffer), pages.ctypes.data) == 0, ctypes.get_errno()
    return (pages & 1).astype(bool)


@pytest.mark.parametrize("offset, frames", [(0, 4096), (16, 4096), (16, 4093), (4092, 1)],
                         ids=["aligned", "malloc-offset", "ragged", "straddling"])
@pytest.mark.parametrize("writeable", [True, False], ids=["writable", "read-only"])
def test_prefault_maps_every_page_of_the_array_and_keeps_its_data(offset, frames, writeable):
    """On 4 KiB pages of a fresh mapping (no huge pages): every page the array touches
    is resident afterwards, the pages around it are not (the array at malloc's 16-byte
    offset with a whole number of pages missed its last page before)."""
    pages = 2 + (offset + 8 * frames + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    with mmap.mmap(-1, pages * mmap.PAGESIZE) as buffer:
        start = mmap.PAGESIZE + offset
        first, last = start // mmap.PAGESIZE, (start + 8 * frames - 1) // mmap.PAGESIZE
        array = np.frombuffer(buffer, np.float64, frames, start)
        expected = np.zeros(frames)
        if writeable and frames > 1:
            array[frames // 2] = expected[frames // 2] = 2.5      # one page in the middle
        array.flags.writeable = writeable
        assert resident_pages(buffer)[first:last + 1].sum() == (writeable and frames > 1)
        prefault(array)
        after = resident_pages(buffer)
        assert after[first:last + 1].all() and not after[0] and not after[-1], after
        assert np.array_equal(array, expected)
        del array


def test_prefault_refuses_a_strided_array():
    with pytest.raises(ValueError, match="C-contiguous"):
        prefault(np.zeros((8, 2))[:, 0])
