"""The processor protocol shared by stages and chains (after JUCE's dsp module).

``prepare(sample_rate, channels, max_block)`` is the only method that allocates or
compiles (or loads compiled code); ``process(block)`` works in place and allocates
nothing, in one call of the compiled program runner; ``reset()`` clears
state and rewinds the dither generators, so a reset processor repeats its output
exactly; ``latency`` is in samples at the stream rate.
"""
from __future__ import annotations

import numpy as np

from .program import OP_SANITIZE, Program, ProgramBuilder, process_in_place, program_words, reset_program
from .spec import checked_integer, stream_rate

DEFAULT_MAX_BLOCK = 4096
_BLOCK_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class Processor:
    """Base of :class:`~rtq.stages.Stage` and :class:`~rtq.chain.Chain`."""

    seed = 0

    def __init__(self):
        self.program: Program | None = None
        self._init = None
        self.sample_rate: float | None = None
        self.channels: int | None = None

    def _stages(self):
        raise NotImplementedError

    def __getstate__(self):
        # The program's addresses belong to this object's arrays, not to a copy's.
        state = self.__dict__.copy()
        state.pop("_words", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if self.program is not None:
            self._words = program_words(self.program)

    def prepare(self, sample_rate: float, channels: int, max_block: int = DEFAULT_MAX_BLOCK,
                taps: bool = False, first_channel: int = 0):
        """Allocate all state for this rate, channel count and largest block; returns self.

        With ``taps``, meter taps record the chain's input and output
        (:attr:`input_tap`, :attr:`output_tap`) and every quantizer's input and output
        (``stage.info.taps``).  ``first_channel`` makes this processor stand for channels
        ``first_channel ..`` of a wider stream: it takes their dither streams, so
        processors for the parts of a stream (see :meth:`process_columns`) together give
        exactly the output of one processor for all of it.  May raise
        :class:`~rtq.errors.PresetError` (for example a shaping table with no entry for
        ``sample_rate``), and ValueError for arguments out of range: ``sample_rate``
        whole Hz from 1000 to 768000 (:func:`~rtq.spec.stream_rate`), ``channels`` and
        ``max_block`` at least 1, ``first_channel`` at least 0.
        """
        from .stages import EmitContext, emit_stages

        sample_rate = stream_rate(sample_rate)
        channels = checked_integer(channels, "channels", 1)
        builder = ProgramBuilder(channels, checked_integer(max_block, "max_block", 1),
                                 checked_integer(first_channel, "first_channel", 0))
        builder.add_op(OP_SANITIZE, 0)
        self.input_tap = builder.add_tap(0) if taps else None
        emit_stages(self._stages(), builder, EmitContext(sample_rate, 0, int(self.seed), (), taps, sample_rate))
        self.output_tap = builder.add_tap(0) if taps else None
        self.program, self._init = builder.build()
        self._words = program_words(self.program)
        process_in_place.ctypes  # resolved (loaded or compiled) here, not in process()
        self.sample_rate = sample_rate
        self.channels = channels
        return self

    def counts(self) -> tuple[list[int], list[int], list[int]]:
        """Per channel since :meth:`prepare` or :meth:`reset`: samples the quantizers
        clipped, non-finite input samples (made 0 or full scale), and resets of
        designed-NTF loops that overloaded (:data:`rtq.dsp.requantize.RESET_AFTER_OVERLOADS`
        samples in a row)."""
        from .chain import Chain
        from .dsp.requantize import COUNT_CLIPS, COUNT_RESETS
        from .program import COUNT_NONFINITE

        counters = self.program.counters
        rows = [stage.info.op_index for stage in Chain(self._stages()).quantizers()]
        return ([int(counters[rows, c, COUNT_CLIPS].sum()) for c in range(self.channels)],
                [int(counters[0, c, COUNT_NONFINITE]) for c in range(self.channels)],
                [int(counters[rows, c, COUNT_RESETS].sum()) for c in range(self.channels)])

    def check(self, sample_rate: float) -> None:
        """Raise the :class:`~rtq.errors.PresetError` that :meth:`prepare` would raise at
        ``sample_rate`` (a shaping table with no entry for it, a designed band at or
        above its Nyquist), without allocating the state or compiling anything."""
        from .chain import Chain
        from .stages import EmitContext, emit_stages

        sample_rate = stream_rate(sample_rate)
        prepared = [(stage, stage.info) for stage in Chain(self._stages()).quantizers()]
        try:
            emit_stages(self._stages(), ProgramBuilder(1, 1),
                        EmitContext(sample_rate, 0, int(self.seed), (), False, sample_rate))
        finally:  # what the meter reads of a prepared chain stays as it was
            for stage, info in prepared:
                stage.info = info

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
        wrong = [what for what, bad in ((str(block.dtype), block.dtype not in _BLOCK_DTYPES),
                                        ("not C-contiguous", not block.flags.c_contiguous),
                                        ("read-only", not block.flags.writeable)) if bad]
        if wrong:
            raise ValueError(f"expected a writeable C-contiguous float32 or float64 block (processed in "
                             f"place), got one that is {', '.join(wrong)}")
        process_in_place.ctypes(self._words.ctypes.data, block.ctypes.data, block.shape[0], width, first,
                                block.dtype == np.float64)

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
        ``round(latency)`` frames of silence and as many of its first frames are dropped.
        ``compensate_latency=False`` returns what a stream hears (:meth:`process`): the
        same samples, ``latency`` frames late.
        """
        samples = np.asarray(audio)
        if samples.dtype.kind != "f" or samples.ndim not in (1, 2):
            raise TypeError(f"expected floating-point audio (full scale +-1.0) of shape (frames,) or "
                            f"(frames, channels), got {samples.dtype} of shape {samples.shape}")
        frames = samples.shape[0]
        delay = int(round(self.latency)) if compensate_latency else 0
        channels = 1 if samples.ndim == 1 else samples.shape[1]
        x = np.zeros((frames + delay, channels))
        x[:frames] = samples.reshape(frames, channels)
        if self.program is None or self.sample_rate != sample_rate or self.channels != channels:
            self.prepare(sample_rate, channels)
        else:
            self.reset()
        self.process(x)
        y = x[delay:]
        return y[:, 0].copy() if samples.ndim == 1 else y

