"""The processor protocol shared by stages and chains (after JUCE's dsp module).

``prepare(sample_rate, channels, max_block)`` is the only method that allocates or
compiles (or loads compiled code); ``process(block)`` works in place and allocates
nothing, in one call of the compiled program runner; ``reset()`` clears
state and rewinds the dither generators, so a reset processor repeats its output
exactly; ``latency`` is in samples at the stream rate.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np

from .dsp.overload import COUNT_OVERLOADS
from .dsp.requantize import COUNT_CLIPS, COUNT_RESETS, G_LIMITED, GUARD_WORDS
from .dsp.shaping import ErrorFilter
from .program import (COUNT_NONFINITE, OP_SANITIZE, Program, ProgramBuilder, Tap, process_in_place, program_words,
                      reset_program)
from .spec import checked_integer, stream_rate

DEFAULT_MAX_BLOCK = 4096
_FLOAT64 = np.dtype(np.float64)
_BLOCK_DTYPES = (np.dtype(np.float32), _FLOAT64)


@dataclass(frozen=True)
class QuantizerInfo:
    """What the meter needs to know about a prepared quantizer; the prepared processor
    keeps one per quantizer (:attr:`Processor.quantizer_info`), the stage holds none."""

    path: tuple[int, ...]   # the quantizer's place in the tree (rtq.stages.walk)
    stage: object           # the Requantize or Quantize stage
    bits: int
    step: float
    dither: str
    error_filter: ErrorFilter | None
    sample_rate: float
    op_index: int           # the op's row in the program (its counters)
    taps: tuple[Tap, Tap] | None = None     # (input, output) when prepared with taps
    msa: float | None = None                # a designed-NTF loop's maximum stable amplitude
    overload_op: int | None = None          # the row counting input above it
    levels: tuple | None = None             # a non-uniform quantizer's level sets (one, or one per channel)
    scales: tuple | None = None             # block companding: (istate index of its per-channel scale counts, steps)
    guard_state: int | None = None          # a guarded requantizer: istate index of its per-channel guard words


class Counts(NamedTuple):
    """What a processor counted, per channel (:meth:`Processor.counts`)."""

    clips: list[int]        # samples the quantizers saturated
    nonfinite: list[int]    # non-finite input samples (made 0 or full scale)
    loop_resets: list[int]  # designed-NTF loops reset after RESET_AFTER_OVERLOADS overloads in a row
    overloads: list[int]    # samples entering a designed-NTF loop above its maximum stable amplitude
    limited: list[int]      # samples a requantizer's limit kept from clipping (its shaped noise would have)


@dataclass
class EmitContext:
    """Where a stage is being placed: its rate, work level, dither-stream path, and
    whether quantizers get meter taps; ``quantizers`` collects what they report."""

    sample_rate: float
    level: int = 0
    seed: int = 0
    path: tuple[int, ...] = ()
    taps: bool = False
    stream_rate: float = 0.0        # the rate outside every oversample stage
    quantizers: dict = field(default_factory=dict)   # path -> QuantizerInfo, shared by nested contexts


def emit_stages(stages, builder: ProgramBuilder, ctx: EmitContext) -> None:
    """Emit ``stages`` in order; with ``ctx.taps``, tap each quantizer's input and output."""
    for index, stage in enumerate(stages):
        here = replace(ctx, path=ctx.path + (index,))
        tap_in = builder.add_tap(ctx.level) if ctx.taps and stage.is_quantizer else None
        info = stage.emit(builder, here)
        if info is not None:
            taps = (tap_in, builder.add_tap(ctx.level)) if tap_in is not None else None
            ctx.quantizers[here.path] = replace(info, taps=taps)


def flush_and_trim(blocks, latency: int, silence: np.ndarray):
    """Latency compensation, the one rule for ``chain(x, rate)`` and ``rtq render``: the
    pieces to process are every block of ``blocks``, then ``latency`` frames of silence
    (taken from ``silence``, zeroed before each use, in pieces of at most its length);
    each is yielded with how many of its first frames to drop once processed, so that
    what is kept is the input's length, aligned with it."""
    to_skip = latency

    def pieces():
        yield from blocks
        left = latency
        while left > 0:
            n = min(left, silence.shape[0])
            silence[:n] = 0.0
            yield silence[:n]
            left -= n

    for block in pieces():
        skip = min(to_skip, block.shape[0])
        to_skip -= skip
        yield block, skip


class Processor:
    """Base of :class:`~rtq.stages.Stage` and :class:`~rtq.chain.Chain`.

    For users (the public API): :meth:`prepare`, :meth:`process`, :meth:`reset`, calling
    it on a whole signal (:meth:`__call__`), :attr:`latency` and :attr:`latency_samples`,
    :meth:`counts`, :meth:`check`, and :attr:`sample_rate` and :attr:`channels` once
    prepared; :meth:`process_columns` for hosts that run processors for the parts of a
    stream on threads of their own.

    For rtq's meters and engines (internal, may change): :attr:`program` (the compiled
    program's arrays), :attr:`quantizer_info`, :attr:`input_tap` and :attr:`output_tap`.
    """

    seed = 0

    def __init__(self):
        self.program: Program | None = None
        self._init = None
        self.sample_rate: float | None = None
        self.channels: int | None = None
        self.quantizer_info: dict[tuple[int, ...], QuantizerInfo] = {}

    def _stages(self):
        raise NotImplementedError

    def __getstate__(self):
        # The program's addresses belong to this object's arrays, not to a copy's.
        state = self.__dict__.copy()
        state.pop("_words", None)
        state.pop("_words_address", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if self.program is not None:
            self._locate()

    def prepare(self, sample_rate: float, channels: int, max_block: int = DEFAULT_MAX_BLOCK,
                taps: bool = False, first_channel: int = 0):
        """Allocate all state for this rate, channel count and largest block; returns self.

        With ``taps``, meter taps record the chain's input and output
        (:attr:`input_tap`, :attr:`output_tap`) and every quantizer's input and output
        (``taps`` of its :attr:`quantizer_info`).  ``first_channel`` makes this processor stand for channels
        ``first_channel ..`` of a wider stream: it takes their dither streams, so
        processors for the parts of a stream (see :meth:`process_columns`) together give
        exactly the output of one processor for all of it.  May raise
        :class:`~rtq.errors.PresetError` (for example a shaping table with no entry for
        ``sample_rate``), and ValueError for arguments out of range: ``sample_rate``
        whole Hz from 1000 to 768000 (:func:`~rtq.spec.stream_rate`), ``channels`` and
        ``max_block`` at least 1, ``first_channel`` at least 0.
        """
        sample_rate = stream_rate(sample_rate)
        channels = checked_integer(channels, "channels", 1)
        builder = ProgramBuilder(channels, checked_integer(max_block, "max_block", 1),
                                 checked_integer(first_channel, "first_channel", 0))
        builder.add_op(OP_SANITIZE, 0)
        self.input_tap = builder.add_tap(0) if taps else None
        ctx = EmitContext(sample_rate, 0, int(self.seed), (), taps, sample_rate)
        emit_stages(self._stages(), builder, ctx)
        self.quantizer_info = ctx.quantizers
        self.output_tap = builder.add_tap(0) if taps else None
        self.program, self._init = builder.build()
        self._locate()
        process_in_place.ctypes  # resolved (loaded or compiled) here, not in process()
        self.sample_rate = sample_rate
        self.channels = channels
        return self

    def counts(self) -> Counts:
        """Per channel since :meth:`prepare` or :meth:`reset` (see :class:`Counts`)."""
        counters = self.program.counters
        rows = [info.op_index for info in self.quantizer_info.values()]
        watched = [info.overload_op for info in self.quantizer_info.values() if info.overload_op is not None]

        def per_channel(rows, slot):
            return [int(counters[rows, c, slot].sum()) for c in range(self.channels)]

        guarded = [info.guard_state for info in self.quantizer_info.values() if info.guard_state is not None]
        limited = [sum(int(self.program.istate[index + c * GUARD_WORDS + G_LIMITED]) for index in guarded)
                   for c in range(self.channels)]
        return Counts(per_channel(rows, COUNT_CLIPS), per_channel([0], COUNT_NONFINITE),
                      per_channel(rows, COUNT_RESETS), per_channel(watched, COUNT_OVERLOADS), limited)

    def check(self, sample_rate: float) -> None:
        """Raise the :class:`~rtq.errors.PresetError` that :meth:`prepare` would raise at
        ``sample_rate`` (a shaping table with no entry for it, a designed band at or
        above its Nyquist), without allocating the state or compiling anything."""
        sample_rate = stream_rate(sample_rate)
        emit_stages(self._stages(), ProgramBuilder(1, 1), EmitContext(sample_rate, 0, int(self.seed), (), False,
                                                                       sample_rate))

    @property
    def latency(self) -> float:
        """Delay of the output, in samples at the stream rate (may be fractional)."""
        raise NotImplementedError

    @property
    def latency_samples(self) -> int:
        """:attr:`latency` rounded to the nearest sample: what ``chain(x, rate)`` and
        ``rtq render`` drop from the start, and what the meter and the live engine align by."""
        return int(round(self.latency))

    def process(self, block: np.ndarray) -> None:
        """Process ``block`` (frames, channels), float32 or float64, C-contiguous, in place.

        Any number of frames (work is done in pieces of at most ``max_block``).
        Allocates nothing; output is identical however the stream is cut into blocks.
        """
        self._run(block, 0, whole=True)

    def process_columns(self, block: np.ndarray, first: int) -> None:
        """Process columns ``first .. first + channels - 1`` of a wider ``block`` in place.

        As :meth:`process`; the other columns are neither read nor written, so
        processors for disjoint columns may run on the same block in parallel threads
        (the compiled call releases the GIL).
        """
        self._run(block, first, whole=False)

    def _run(self, block: np.ndarray, first: int, whole: bool) -> None:
        if self.program is None:
            raise RuntimeError("prepare() must be called before process()")
        if not isinstance(block, np.ndarray):
            raise TypeError(f"expected a numpy array (frames, channels), got {type(block).__name__}")
        width = block.shape[1] if block.ndim == 2 else -1
        if (whole and width != self.channels) or not 0 <= first <= width - self.channels:
            expected = (f"a (frames, {self.channels}) block" if whole else
                        f"a block with columns {first} .. {first + self.channels - 1}")
            raise ValueError(f"expected {expected}, got shape {block.shape}")
        dtype, flags = block.dtype, block.flags
        wrong = [what for what, bad in ((dtype, dtype not in _BLOCK_DTYPES),
                                        ("not C-contiguous", not flags.c_contiguous),
                                        ("read-only", not flags.writeable)) if bad]
        if wrong:   # the dtype's name is made only here: str() of a dtype costs more than the checks
            raise ValueError(f"expected a writeable C-contiguous float32 or float64 block (processed in "
                             f"place), got one that is {', '.join(map(str, wrong))}")
        process_in_place.ctypes(self._words_address, block.ctypes.data, block.shape[0], width, first,
                                dtype == _FLOAT64)

    def _locate(self) -> None:
        """The words locating the program, and their address, for :meth:`_run` (a call's
        own cost: reading an array's address makes a ctypes object)."""
        self._words = program_words(self.program)
        self._words_address = self._words.ctypes.data

    def reset(self) -> None:
        """Clear state and counters and rewind dither; the next output repeats the first."""
        if self.program is not None:
            reset_program(self.program, self._init)

    def __call__(self, audio: np.ndarray, sample_rate: float, *, compensate_latency: bool = True) -> np.ndarray:
        """Process a whole signal from a clean state; returns a new float64 array of the
        same shape (pedalboard style).

        ``audio`` is (frames,) or (frames, channels) of floating-point samples, full scale
        +-1.0 (integer PCM is refused rather than guessed at: divide int16 by 32768).
        With ``compensate_latency`` (the default), the output is aligned with the input
        and as long, exactly as ``rtq render`` writes it: the chain is flushed with
        :attr:`latency_samples` frames of silence and as many of its first frames are
        dropped (:func:`flush_and_trim`).
        ``compensate_latency=False`` returns what a stream hears (:meth:`process`): the
        same samples, ``latency`` frames late.
        """
        samples = np.asarray(audio)
        if samples.dtype.kind != "f" or samples.ndim not in (1, 2):
            raise TypeError(f"expected floating-point audio (full scale +-1.0) of shape (frames,) or "
                            f"(frames, channels), got {samples.dtype} of shape {samples.shape}")
        frames = samples.shape[0]
        channels = 1 if samples.ndim == 1 else samples.shape[1]
        if self.program is None or self.sample_rate != sample_rate or self.channels != channels:
            self.prepare(sample_rate, channels)
        else:
            self.reset()
        delay = self.latency_samples if compensate_latency else 0   # known once prepared (a lowpass's)
        x = np.zeros((frames + delay, channels))
        x[:frames] = samples.reshape(frames, channels)
        dropped = 0     # the silence is x's tail: what is kept is contiguous, x[delay:]
        for block, skip in flush_and_trim([x[:frames]], delay, x[frames:]):
            self.process(block)
            dropped += skip
        y = x[dropped:]
        return y[:, 0].copy() if samples.ndim == 1 else y
