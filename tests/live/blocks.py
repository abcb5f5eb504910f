"""Block functions for testing stream backends, and the compiled callbacks that run them.

rtq itself plays through one C entry point (:func:`rtq.live.engine.engine_callback`);
these wrap any ``@kernel`` block function the same way, for tests.
"""
from __future__ import annotations

import functools

import numba
from numba.core.ccallback import CFunc

from rtq.jit import kernel
from rtq.live.callback import CALLBACK_SIGNATURE, begin_callback, end_callback
from rtq.native import Entry


@functools.cache
def make_callback(block_fn):
    """The PortAudio callback that runs ``block_fn(ctl, inp, out, n)`` on every block
    (see :mod:`rtq.live.callback`); an already compiled callback is returned as is.
    Memoised per ``block_fn``.  Compiled on every process start (Numba's cache key for
    a closure includes a per-process UUID), which a test can afford."""
    if isinstance(block_fn, (CFunc, Entry)):
        return block_fn

    @numba.cfunc(CALLBACK_SIGNATURE, error_model="numpy")
    def callback(input_addr, output_addr, frames, time_info, status, user_data):
        ctl, inp, out, n, start = begin_callback(input_addr, output_addr, frames, user_data)
        block_fn(ctl, inp, out, n)
        return end_callback(ctl, status, n, start)

    return callback


@kernel
def passthrough(ctl, inp, out, n):
    """Copy input to output (channels beyond the input's are silent)."""
    shared = min(inp.shape[1], out.shape[1])
    out[:n, :shared] = inp[:n, :shared]
    out[:n, shared:] = 0.0
