"""Maximum stable amplitude (MSA) of a designed-NTF (sigma-delta) loop, by simulation.

A loop with an aggressive noise transfer function is stable only for inputs up to some
level below full scale.  Above it, a 1-bit order-5 loop at 64x falls into a large limit
cycle: its in-band SQNR collapses from 123 dB to 35-70 dB, yet its quantizer overloads
only now and then (never :data:`~rtq.dsp.requantize.RESET_AFTER_OVERLOADS` samples in a
row), so nothing resets it.  Below it, the quantizer never overloads at all.  That gives
the criterion, measured at design time on rtq's own loop (the requantize kernel through
a one-op program: the same NTF, word length, dither and error clamp as the chain runs):

    The MSA is the largest peak amplitude of a sine (re full scale, on a 0.1 dB grid)
    at which the quantizer does not overload -- no sample saturates it (a 1-bit loop's
    quantizer input stays within +-2) -- over :data:`RUN_SAMPLES` samples at each of
    four tone frequencies, ``B/80``, ``B/40``, ``B/20`` and ``B/7`` (``B`` the band
    edge: 250 Hz, 500 Hz, 1 kHz and 2.9 kHz for a 20 kHz band).  Searched from the top:
    0 dB first (a loop that passes there is stable to full scale, MSA 1.0), else down
    in 1 dB steps to the first level that passes, then by bisection on the 0.1 dB grid
    between it and the level above, which failed.

The overload witness agrees with the SQNR: for the 1-bit order-5 loop at OSR 76.8 (64 x
48 kHz, 20 kHz band) the criterion gives -5.3 dB (0.54); the in-band SQNR stays within
3 dB of its low-level trend over 2^21 samples at -5.5 dB, and collapses within that run
at -5.0 dB (tests hold stored designs to this).  The figures for the shipped designs
and others are in the README.  Results are stored (:func:`rtq.cache.stored_design`):
each design is simulated once (0.1-0.5 s).
"""
from __future__ import annotations

import numpy as np

from ..cache import stored_design
from ..program import OP_REQUANTIZE, ProgramBuilder, process_in_place, program_words, reset_program
from . import requantize as loop
from .rng import stream_seed

RUN_SAMPLES = 1 << 20
TONES = (1 / 80, 1 / 40, 1 / 20, 1 / 7)        # fractions of the band edge
COARSE_DB = 1.0
FINE_DB = 0.1
LOWEST_DB = -40.0
_PIECE = 1 << 14


def maximum_stable_amplitude(a, b, band_fraction: float, bits: int, dither: str, amplitude: float) -> float:
    """The MSA (peak, re full scale, at most 1.0) of the loop with error-feedback
    coefficients ``a``, ``b`` (:class:`rtq.dsp.shaping.ErrorFilter`), a band edge of
    ``band_fraction`` of its rate, a ``bits``-bit quantizer and ``dither`` at
    ``amplitude`` (see the module docstring)."""
    level_db = _msa_db(tuple(float(v) for v in a), tuple(float(v) for v in b), float(band_fraction), int(bits),
                       str(dither), float(amplitude))
    return min(10.0 ** (level_db / 20.0), 1.0)


@stored_design
def _msa_db(a: tuple, b: tuple, band_fraction: float, bits: int, dither: str, amplitude: float) -> float:
    """The MSA in dB re full scale (the search of the module docstring)."""
    loop_run = _Loop(a, b, band_fraction, bits, dither, amplitude)
    if loop_run.stable(0.0):
        return 0.0
    failed, passed = 0.0, -COARSE_DB
    while not loop_run.stable(passed):
        failed, passed = passed, passed - COARSE_DB
        if passed < LOWEST_DB:
            return LOWEST_DB
    steps = round((failed - passed) / FINE_DB)   # bisection on the 0.1 dB grid
    low, high = 0, steps
    while high - low > 1:
        middle = (low + high) // 2
        if loop_run.stable(passed + middle * FINE_DB):
            low = middle
        else:
            high = middle
    return round(passed + low * FINE_DB, 1)


class _Loop:
    """The loop as a one-op program over four channels, one test tone each."""

    def __init__(self, a, b, band_fraction, bits, dither, amplitude):
        coef_a, coef_b = loop.kernel_coefficients(a, b)
        builder = ProgramBuilder(len(TONES), _PIECE)
        self.row = builder.add_op(OP_REQUANTIZE, 0, rng_seeds=[stream_seed(0, c) for c in range(len(TONES))],
                                  **loop.pack(bits, dither, amplitude, coef_a, coef_b, loop.RESET_AFTER_OVERLOADS))
        self.program, self.init = builder.build()
        self.words = program_words(self.program)
        cycles = np.array(TONES) * band_fraction
        self.tones = np.sin(2.0 * np.pi * np.outer(np.arange(RUN_SAMPLES), cycles))
        self.block = np.empty((_PIECE, len(TONES)))

    def stable(self, level_db: float) -> bool:
        """No overload in :data:`RUN_SAMPLES` samples of each tone at ``level_db`` peak
        (the run stops at the first)."""
        reset_program(self.program, self.init)
        gain = 10.0 ** (level_db / 20.0)
        clips = self.program.counters[self.row, :, loop.COUNT_CLIPS]
        for start in range(0, RUN_SAMPLES, _PIECE):
            np.multiply(self.tones[start:start + _PIECE], gain, out=self.block)
            process_in_place.ctypes(self.words.ctypes.data, self.block.ctypes.data, _PIECE, len(TONES), 0, True)
            if clips.any():
                return False
        return True
