"""Offline rendering: a file in, a file out, through the same compiled chain as live.

The input is streamed through soundfile (libsndfile) in blocks, so memory stays bounded
for any length (and any block size: :data:`MAX_BUFFER_BYTES`); an input that ends before
its header's length is an error unless allowed (:class:`~rtq.files.audio.AudioInput`).
OUTPUT is a :class:`~rtq.files.destination.Destination`: written as an anonymous file
beside it and linked into place only when complete and synced to its disk (its
write-out started while it is written: :mod:`rtq.files.writeback`), never over a file
that exists at that moment unless forced, so an interrupted or killed render leaves
nothing, and a crash after it leaves the whole new file or the old one.  Integer
output is written from the chain's exact codes (the grid value scaled to the file's own
samples, written as bytes, for uncompressed PCM; to int16 or int32 codes, which
libsndfile stores without further rounding, otherwise: :class:`_Encoding`), so reading
the file back returns exactly what the chain produced.  Where float32 holds the input's
and the output grid's samples exactly, blocks are read as float32 (less memory traffic;
the chain computes in float64 either way, so the output is the same).

Latency: a chain with latency L (samples at the stream rate, rounded to the nearest
sample) has its first L output samples dropped and is flushed with L samples of silence
at the end, so OUTPUT is time-aligned with INPUT and has the same length, unless
``compensate_latency=False``.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import os
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from .chain import Chain
from .program import META_MAX_BLOCK
from .errors import UsageError
from .files import pcm
from .files.audio import AudioInput, open_output, output_failure, output_format, raw_layout, write_raw
from .files.destination import Destination, check_destination
from .files.writeback import WriteBack
from .processor import Counts, flush_and_trim
from .stages.base import walk

# Frames read, processed and written at a time by default: each block costs calls and a
# write that updates the file's inode, paid 4x less often than with 32768-frame blocks;
# larger blocks outgrow the caches (BENCHMARKS.md).
DEFAULT_BLOCK = 131072
# Largest --block-size: about 22 s at 48 kHz, far past any gain in speed.
MAX_BLOCK = 1 << 20
# Largest reading or writing buffer (float64 samples); the render keeps _Pipeline.DEPTH
# reading buffers and one writing buffer, so at most 80 MiB whatever the block size and
# channel count.
MAX_BUFFER_BYTES = 16 << 20
# Largest piece the chain's program works on at once (its work buffers, at every rate
# level, are sized for it); longer blocks are taken in pieces, with the same output.
PROGRAM_BLOCK = 8192
# Pieces of a metered chain that runs at the stream rate: its meter reads after every
# piece (render_file's observer), and with pieces of 8192 frames the hand-overs between
# the chain and the reader held a cd-16-shibata report back more than its work did.
METERED_PIECE = 32768
_INT_PCM_BITS = {"PCM_S8": 8, "PCM_U8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32}
_LAW_SUBTYPES = {"mu-law": "ULAW", "a-law": "ALAW"}


@dataclass
class RenderResult:
    """What a render did: frames written, subtype, and the chain's counters."""

    frames: int
    sample_rate: int
    channels: int
    subtype: str
    latency: int
    seconds: float
    clips: list[int] = field(default_factory=list)
    nonfinite: list[int] = field(default_factory=list)
    resets: list[int] = field(default_factory=list)    #: designed-NTF loops reset after overloads
    missing: int = 0                 #: input frames its header promised and it lacked (allow_short)
    shortfall: str | None = None     #: one line saying so, if any
    sha256: str | None = None        #: of OUTPUT's bytes, when asked for
    kept: bool = False               #: OUTPUT existed with exactly these bytes and was left as it was
    overloads: list[int] = field(default_factory=list)  #: samples above a designed-NTF loop's stable amplitude
    limited: list[int] = field(default_factory=list)    #: samples a requantizer's limit kept from clipping


def _output_grid(chain: Chain):
    """The grid the chain's last stage leaves its output on (:meth:`Stage.output_grid
    <rtq.stages.base.Stage.output_grid>`), or None."""
    return chain.stages[-1].output_grid() if chain.stages else None


def output_grid_bits(chain: Chain) -> int | None:
    """Word length of the grid the chain's output lies on (None if it is not on a grid)."""
    grid = _output_grid(chain)
    return grid.bits if grid else None


def holds_exactly(chain: Chain, subtype: str) -> bool:
    """Whether a file of ``subtype`` stores the chain's output without changing it."""
    grid = _output_grid(chain)
    if subtype in _INT_PCM_BITS:
        return grid is not None and grid.bits <= _INT_PCM_BITS[subtype]
    if subtype in _LAW_SUBTYPES.values():
        return grid is not None and grid.law is not None and _LAW_SUBTYPES[grid.law] == subtype
    if subtype == "FLOAT":
        return grid is None or grid.bits <= 24
    return subtype == "DOUBLE"


# What a default may be, smallest first (8-bit PCM, signed or not, before 16-bit ...).
_BY_SIZE = ("PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE")


def default_subtype(chain: Chain, fmt: str) -> str | None:
    """The smallest subtype of the container ``fmt`` that holds the chain's output
    exactly: the law's own codes after a G.711 quantize, else the smallest integer PCM
    that holds the output grid (PCM_U8 for 8 bits in WAV, PCM_S8 in AIFF, PCM_24 for 20
    bits), else FLOAT (DOUBLE for a grid FLOAT cannot hold, in a container without
    PCM_32); None if the container holds none."""
    available = sf.available_subtypes(fmt)
    grid = _output_grid(chain)
    if grid is not None and grid.law and _LAW_SUBTYPES[grid.law] in available:
        return _LAW_SUBTYPES[grid.law]
    return next((s for s in _BY_SIZE if s in available and holds_exactly(chain, s)), None)


def choose_subtype(chain: Chain, fmt: str, requested: str | None) -> str:
    """Validate ``requested`` against the container and the chain, or choose the
    :func:`default_subtype`.

    Only subtypes that hold the chain's output exactly are accepted: anything else would
    round it a second time, without dither.
    """
    available = sf.available_subtypes(fmt)
    if requested:
        subtype = requested.upper()
        if subtype not in available:
            raise UsageError(f"subtype {requested} is not available for {fmt} files; "
                             f"choose from {', '.join(sorted(available))}")
        if not holds_exactly(chain, subtype):
            raise UsageError(f"subtype {subtype} cannot hold this chain's output ({_describe_output(chain)}) "
                             "exactly: it would be rounded a second time, without dither; end the "
                             "chain with a matching requantize or quantize stage, or choose another subtype")
        return subtype
    subtype = default_subtype(chain, fmt)
    if subtype is None:
        raise UsageError(f"{fmt} files cannot hold this chain's output ({_describe_output(chain)}) exactly; "
                         "choose another format")
    return subtype


def _describe_output(chain: Chain) -> str:
    grid = _output_grid(chain)
    return str(grid) if grid else "not on an integer grid"


def with_output_bits(chain: Chain, bits: int) -> Chain:
    """``chain`` with its last stage, a requantize, at ``bits`` (``rtq render --bits``)."""
    from .stages import Requantize   # start-up cost: the stage kinds

    last = chain.stages[-1] if chain.stages else None
    if not isinstance(last, Requantize):
        raise UsageError(f"--bits sets the word length of the chain's last stage, which must be a requantize; "
                         f"this chain ends with {last.label() if last else 'nothing'}")
    try:
        stage = last.replaced(bits=bits)
    except ValueError as err:
        raise UsageError(f"--bits: {err}") from None
    return Chain([*chain.stages[:-1], stage], seed=chain.seed, name=chain.name, description=chain.description)


def auto_output(input_path, output_path, subtype: str | None) -> tuple[int, str]:
    """``rtq render --bits auto``: the output subtype (``subtype``; else INPUT's integer
    PCM subtype where OUTPUT's container holds it; else the container's default) and
    its word length, which the chain is to requantize to."""
    fmt = output_format(output_path)
    if subtype is None:
        with AudioInput(input_path) as src:
            kept = src.subtype if src.subtype in _INT_PCM_BITS and src.subtype in sf.available_subtypes(fmt) else None
        subtype = kept or sf.default_subtype(fmt)
    subtype = subtype.upper()
    if subtype not in _INT_PCM_BITS:
        raise UsageError(f"--bits auto requantizes to an integer PCM subtype's grid; {subtype} has none "
                         "(choose --subtype PCM_16, PCM_24, ...)")
    return _INT_PCM_BITS[subtype], subtype


def precision_at_most(input_path, bits: int) -> str | None:
    """Why INPUT already lies on the ``bits``-bit grid (so dithering it to that grid only
    adds noise), or None: its integer PCM subtype is that coarse, or every sample is on
    the grid (a 16-bit master in a 24-bit or float file).  Reads until the first sample
    off the grid: at once for real high-resolution audio, the whole file otherwise."""
    with AudioInput(input_path) as src:
        declared = _INT_PCM_BITS.get(src.subtype)
        if declared is not None and declared <= bits:
            return f"{input_path} is {declared}-bit PCM"
        scale = 2.0 ** (bits - 1)
        buf = np.empty((65536, src.channels))
        while n := src.read_into(buf):
            block = buf[:n] * scale
            if np.any(block != np.round(block)) or np.any(np.abs(block) > scale):
                return None
        return f"every sample of {input_path} lies on the {bits}-bit grid"


class _Progress:
    """A one-line progress bar on a terminal; silent otherwise."""

    def __init__(self, total: int, stream=None):
        self.total = max(total, 1)
        self.stream = sys.stderr if stream is None else stream
        self.active = self.stream.isatty()
        self.last = 0.0

    def update(self, done: int, final: bool = False) -> None:
        now = time.monotonic()
        if not self.active or (not final and now - self.last < 0.2):
            return
        self.last = now
        frac = min(done / self.total, 1.0)
        bar = "#" * int(frac * 30)
        self.stream.write(f"\rrendering [{bar:<30}] {frac * 100:5.1f} %")
        if final:
            self.stream.write("\n")
        self.stream.flush()


def check_block_size(block_size) -> int:
    """``--block-size`` is a whole number of frames from 1 to :data:`MAX_BLOCK`."""
    if isinstance(block_size, bool) or not isinstance(block_size, int) or not 1 <= block_size <= MAX_BLOCK:
        raise UsageError(f"--block-size must be a whole number of frames from 1 to {MAX_BLOCK}, got {block_size}")
    return block_size


def io_frames(block_size: int, channels: int, length: int) -> int:
    """Frames per reading and writing buffer: ``block_size``, but no more than the
    ``length`` of the stream (frames, flush included) nor :data:`MAX_BUFFER_BYTES` of
    float64 samples (the output is the same for any)."""
    return max(1, min(block_size, length, MAX_BUFFER_BYTES // (8 * channels)))


def render_file(chain: Chain, input_path, output_path, *, block_size: int = DEFAULT_BLOCK,
                subtype: str | None = None, force: bool = False,
                compensate_latency: bool = True, progress: bool = True,
                observer=None, allow_short: bool = False, threads: int | None = None,
                sha256: bool = False, keep_identical: bool = False) -> RenderResult:
    """Render ``input_path`` through ``chain`` into ``output_path``.

    Parameters
    ----------
    chain : Chain
        Prepared here for the file's rate and channel count.
    block_size : int
        Frames per block, 1 to :data:`MAX_BLOCK` (the output does not depend on it).
    subtype : str, optional
        libsndfile subtype; default the smallest that holds the chain's output exactly.
    force : bool
        Replace an existing OUTPUT (never the INPUT itself), even one that appears
        during the render.
    allow_short : bool
        Render an input that ends before the length its header promises (the result
        says how much was missing) instead of failing.
    observer : callable, optional
        Called as ``observer(chain)`` after every program piece (pieces of
        :data:`METERED_PIECE` frames for a chain at the stream rate; with a true
        ``observer.concurrent``: on a thread of its own, at most one piece behind the
        chain, the last call before this returns); the chain is then prepared
        with meter taps (:class:`~rtq.program.TapReader` reads them), which is how
        :class:`~rtq.meter.chain_meter.RenderMeter` measures a render.  The chain
        then runs as one channel group, unless ``observer.channel_groups`` is true:
        then it is called as ``observer(chain, parts)``, ``parts`` the chains (with
        taps) that run the channel groups, in channel order.  An ``observer.before_piece``
        is called before every piece (see :class:`_Observing`), and an
        ``observer.close()`` when the render fails (to stop its threads).
    threads : int, optional
        The render's core budget: the most channel groups that run in parallel (fewer
        when the chain has fewer channels, or pairs of them), as given, with an observer
        too (its own threads come on top: ``rtq batch`` passes each render its share of
        the cores, ``RenderMeter(workers=threads)`` with ``--report``); one with an
        observer without ``channel_groups``.  Default: the cores this process may run on,
        one fewer (at least one) with a concurrent observer, whose measuring needs a core
        of its own (README, "Which report figures are exact, which estimated").  A budget
        of one core (``threads=1``, or the default on one core) reads, and encodes and
        writes, on the calling thread in turn with the chain (``rtq batch``'s one-core
        workers; README, "Threads per render"); otherwise on threads of their own,
        overlapping the chain.
    sha256 : bool
        Compute the SHA-256 of OUTPUT's bytes (``result.sha256``) from the finished
        file, before it gets its name.
    keep_identical : bool
        An existing OUTPUT that holds exactly this render's bytes is left as it is
        (``result.kept``) instead of being refused; one that differs is refused as
        without it, once rendered.  (``rtq batch``, resuming after a kill.)

    Raises
    ------
    UsageError, PresetError
        One-line user errors (unreadable input, existing output, unsupported subtype,
        shaping table missing at the file's rate).
    RtqError
        The input failed or ended early (:class:`~rtq.files.audio.InputError`), OUTPUT
        could not be written, or it appeared during the render
        (:class:`~rtq.files.destination.DestinationTaken`); OUTPUT was not changed.
    """
    try:
        inp, out = Path(input_path), Path(output_path)
        check_block_size(block_size)
        check_destination(out, "OUTPUT", keep=[("INPUT", inp)], force=force or keep_identical)
        fmt = output_format(out)
        started = time.perf_counter()
        with AudioInput(inp, allow_short=allow_short) as src:
            rate, channels = src.samplerate, src.channels
            piece = METERED_PIECE if observer is not None and runs_at_stream_rate(chain) else PROGRAM_BLOCK
            chain.prepare(rate, channels, min(block_size, piece), taps=observer is not None)
            subtype = choose_subtype(chain, fmt, subtype)
            latency = chain.latency_samples if compensate_latency else 0
            with Destination(out, force=force) as destination:
                dst = open_output(destination, rate, channels, subtype, fmt)
                try:
                    budget = threads or cores()
                    grouped = not observer or getattr(observer, "channel_groups", False)
                    # By default a concurrent observer (the report's meter) keeps a core of its
                    # own (README, "Which report figures are exact, which estimated").
                    spare = 1 if threads is None and getattr(observer, "concurrent", False) else 0
                    with _ChannelGroups(chain, max(1, budget - spare) if grouped else 1) as groups:
                        length = block_size if src.promised is None else src.promised + latency
                        written = _stream(groups, src, dst, io_frames(block_size, channels, length), latency, subtype,
                                          _Progress(src.promised) if progress and src.promised else None, observer,
                                          budget > 1, WriteBack(destination.fd))
                    dst.close()
                    # soundfile's close syncs before libsndfile rewrites the header (its lengths)
                    # for the last time: the whole file is synced here, before it gets its name.
                    os.fdatasync(destination.fd)
                except (OSError, sf.LibsndfileError) as err:
                    raise output_failure(dst, out, err) from None
                finally:
                    if not dst.closed:    # failing already: the header's rewrite no longer matters
                        with contextlib.suppress(Exception):
                            dst.close()
                digest = _sha256(destination.fd) if sha256 or keep_identical else None
                kept = keep_identical and not force and out.exists()
                if kept and _sha256(out) != digest:
                    raise UsageError(f"OUTPUT {out} exists; use --force to replace it")
                if not kept:
                    destination.publish()
        counts = groups.counts()
        return RenderResult(written, rate, channels, subtype, latency, time.perf_counter() - started, counts.clips,
                            counts.nonfinite, counts.loop_resets, src.missing, src.shortfall,
                            digest if sha256 else None, kept, counts.overloads, counts.limited)
    except BaseException:
        close = getattr(observer, "close", None)
        if close is not None:        # its threads stop; the render's error is the one raised
            with contextlib.suppress(Exception):
                close()
        raise


def _sha256(file) -> str:
    """SHA-256 (hex) of a file's bytes: ``file`` is a path, or a descriptor (read from
    its start with ``pread``, its offset untouched)."""
    if not isinstance(file, int):
        with open(file, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    digest, offset = hashlib.sha256(), 0
    while chunk := os.pread(file, 1 << 20, offset):
        digest.update(chunk)
        offset += len(chunk)
    return digest.hexdigest()


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def group_bounds(channels: int, cores: int, paired: bool) -> list[int]:
    """First channel of each channel group, and the channel count last: as many groups as
    ``cores`` (at most one per channel), sizes as even as can be; ``paired``: channels
    stay in pairs (0-1, 2-3, ...), so at most one group per pair."""
    unit = 2 if paired else 1
    units = -(-channels // unit)
    count = max(1, min(cores, units))
    return [min(channels, unit * round(k * units / count)) for k in range(count + 1)]


def runs_at_stream_rate(chain: Chain) -> bool:
    """Whether every stage of the chain runs at the stream rate (no oversampler): known
    from its stages, before it is prepared."""
    return all(place.stage.rate_factor == 1 for place in walk(chain.stages))


class _ChannelGroups:
    """The prepared chain split into groups of channels, one core each.

    Each group is a copy of the chain prepared for its channels (with their dither
    streams: ``first_channel``), so together they give exactly the output of the whole
    chain.  The first group runs on the calling thread, the others on their own threads;
    the compiled call releases the GIL, so they run in parallel on the same block.
    With one group, it is the chain itself.

    A chain running at the stream rate keeps channels in pairs: its requantizers run two
    channels in the lanes of one register, 1.5 times the speed of one channel alone
    (BENCHMARKS.md), so one core on a stereo pair takes less CPU than two cores on a
    channel each and leaves the other to reading and writing.  Oversampling filters run
    per channel: such a chain spreads its channels over the cores.
    """

    def __init__(self, chain: Chain, cores: int):
        channels = chain.channels
        bounds = group_bounds(channels, cores, runs_at_stream_rate(chain))
        self.chain = chain
        if len(bounds) == 2:
            self.parts = [(chain, 0)]
        else:
            max_block = chain.program.meta[META_MAX_BLOCK]
            taps = chain.input_tap is not None
            program, chain.program = chain.program, None     # each copy prepares its own: none copied
            try:
                self.parts = [(copy.deepcopy(chain).prepare(chain.sample_rate, hi - lo, max_block, taps=taps,
                                                            first_channel=lo), lo)
                              for lo, hi in zip(bounds, bounds[1:])]
            finally:
                chain.program = program
        self._jobs = [queue.SimpleQueue() for _ in self.parts[1:]]
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, args=(part, jobs), daemon=True)
                         for part, jobs in zip(self.parts[1:], self._jobs)]
        for thread in self._threads:
            thread.start()

    def _work(self, part, jobs) -> None:
        group, first = part
        while (block := jobs.get()) is not None:
            try:
                group.process_columns(block, first)
                self._done.put(None)
            except BaseException as err:  # handed to the calling thread
                self._done.put(err)

    def process(self, block: np.ndarray) -> None:
        """Process ``block`` (frames, channels) in place, every group in parallel."""
        for jobs in self._jobs:
            jobs.put(block)
        group, first = self.parts[0]
        try:
            group.process_columns(block, first)
        finally:
            errors = [self._done.get() for _ in self._jobs]
        for err in errors:
            if err is not None:
                raise err

    def counts(self) -> Counts:
        """Per channel, as :meth:`Processor.counts` counts them."""
        parts = [group.counts() for group, _ in self.parts]
        return Counts(*([n for part in parts for n in part[k]] for k in range(len(Counts._fields))))

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        for jobs in self._jobs:
            jobs.put(None)
        for thread in self._threads:
            thread.join()


class _Pipeline:
    """Reading, and encoding and writing, on their own threads, overlapping the chain's
    compute (``threaded``; else both on the chain's thread, in turn).

    libsndfile calls (through cffi), the compiled conversions and the compiled chain
    release the GIL, so the three run in parallel.  ``DEPTH`` input buffers circulate
    (threaded; else one): read, processed in place, then encoded and written, and read
    into again; one buffer holds the encoded bytes.  So memory stays bounded, and the
    chain's thread does nothing but the chain.  After each write, ``write_back()`` (a
    :class:`~rtq.files.writeback.WriteBack`) starts the write-out of what was written.
    """

    DEPTH = 4

    def __init__(self, src, dst, block_size: int, work_dtype, encoding: "_Encoding", write_back,
                 threaded: bool = True):
        self.src, self.dst, self.encoding, self.write_back = src, dst, encoding, write_back
        self.free_in: queue.Queue = queue.Queue()
        self.filled: queue.Queue = queue.Queue()
        self.to_write: queue.Queue = queue.Queue()
        # In turn with the chain, a block is written before the next is read: one buffer,
        # used again while it is in the cache (a ring of DEPTH cost a tenth of the render).
        self.inputs = [np.zeros((block_size, src.channels), dtype=work_dtype)
                       for _ in range(self.DEPTH if threaded else 1)]
        for buf in self.inputs:
            self.free_in.put(buf)
        self.out = encoding.buffer(block_size, src.channels)
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.threads = [threading.Thread(target=self._guard, args=(f,), daemon=True)
                        for f in (self._read, self._write)] if threaded else []

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            self.stop.set()
            self.free_in.put(None)      # wakes a reader waiting for a buffer
        self.to_write.put(None)
        for t in self.threads:
            t.join()
        if self.error is not None and exc[0] is None:
            raise self.error

    def _guard(self, work):
        try:
            work()
        except BaseException as err:     # handed to the main thread
            self.error = err
            self.stop.set()
            self.filled.put(None)

    def _read(self):
        while True:
            buf = self.free_in.get()
            if self.stop.is_set():
                return
            n = self.src.read_into(buf)
            self.filled.put((buf, n) if n else None)
            if not n:
                return

    def _write(self):
        while (item := self.to_write.get()) is not None:
            self._write_one(*item)

    def _write_one(self, block, skip, buf):
        if block.shape[0] > skip and not self.stop.is_set():
            self.encoding.write(self.dst, self.encoding.encode(block[skip:], self.out))
            self.write_back()
        if buf is not None:
            self.free_in.put(buf)

    def blocks(self):
        """Yield filled input blocks until the end of the file; each is to be handed
        back to :meth:`write`."""
        if not self.threads:        # read here, in turn with the chain and the writes
            while n := self.src.read_into(buf := self.free_in.get_nowait()):
                yield buf[:n]
            return
        while True:
            item = self.filled.get()
            if item is None:
                if self.error is not None:
                    raise self.error
                return
            buf, n = item
            yield buf[:n]

    def write(self, block: np.ndarray, skip: int) -> None:
        """Encode and write ``block`` (processed) from its frame ``skip`` on, on the
        writing thread (or here); a block that is not one of :meth:`blocks` (the flush's
        silence, used again at once) is copied first if it waits for the writing thread."""
        buf = next((b for b in self.inputs if block.base is b), None)
        if not self.threads:
            self._write_one(block, skip, buf)
        else:
            self.to_write.put((block, skip, buf) if buf is not None else (block[skip:].copy(), 0, None))


class _Observing:
    """Calls ``observer(chain)`` (``observer(chain, parts)`` for one taking the channel
    groups, see :func:`render_file`) after every program piece: in the render's thread, or
    for an observer whose ``concurrent`` attribute is true, on a thread of its own while
    the chain goes on with the next piece (at most one piece behind, so the meter taps'
    rings, four pieces, always hold what it has still to read; its first error is raised
    in the render's thread).  An observer with a ``before_piece`` method is also called
    as ``observer.before_piece(chain, frames[, parts])`` in the render's thread before
    every piece of ``frames`` stream frames, while no group runs (to tell the taps what
    to record: :meth:`~rtq.meter.chain_meter.RenderMeter.before_piece`)."""

    def __init__(self, observer, groups):
        self.chain = groups.chain
        grouped = getattr(observer, "channel_groups", False)
        parts = {"parts": [part for part, _ in groups.parts]} if grouped else {}
        self.observer = functools.partial(observer, **parts) if parts else observer
        before = getattr(observer, "before_piece", None)
        self._before = None if before is None else functools.partial(before, **parts)
        self.error: BaseException | None = None
        self._go = threading.Semaphore(0)
        self._idle = threading.Semaphore(1)
        self._closing = False
        concurrent = getattr(observer, "concurrent", False)
        self._thread = threading.Thread(target=self._run, daemon=True) if concurrent else None

    def _run(self) -> None:
        while True:
            self._go.acquire()
            if self._closing:
                return
            try:
                if self.error is None:
                    self.observer(self.chain)
            except BaseException as err:     # handed to the render's thread
                self.error = err
            finally:
                self._idle.release()

    def before_piece(self, frames: int) -> None:
        if self._before is not None:
            self._before(self.chain, frames)

    def after_piece(self) -> None:
        if self._thread is None:
            self.observer(self.chain)
            return
        self._idle.acquire()        # the last call is done
        if self.error is not None:
            self._idle.release()
            raise self.error
        self._go.release()

    def __enter__(self):
        if self._thread is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._thread is None:
            return
        self._idle.acquire()
        self._closing = True
        self._go.release()
        self._thread.join()
        if self.error is not None and exc[0] is None:
            raise self.error


def _stream(groups, src, dst, block_size, latency, subtype, progress, observer, io_threads: bool,
            write_back) -> int:
    """The block loop: read, process in place, drop the latency, write (``write_back()``
    after each write), flush."""
    work_dtype = _work_dtype(src.subtype, subtype)
    tail = np.zeros((min(latency, block_size) if latency else 1, src.channels), dtype=work_dtype)
    done = 0
    written = 0
    with _Pipeline(src, dst, block_size, work_dtype, _Encoding(dst), write_back, io_threads) as pipe, \
            _Observing(observer, groups) as watch:
        for block, start in flush_and_trim(pipe.blocks(), latency, tail):
            n = block.shape[0]
            done += n
            if observer:   # it reads the meter taps, which hold a few program pieces
                piece = int(groups.chain.program.meta[META_MAX_BLOCK])
                for first in range(0, n, piece):
                    watch.before_piece(min(piece, n - first))
                    groups.process(block[first:first + piece])
                    watch.after_piece()
            else:
                groups.process(block)
            pipe.write(block, start)
            written += max(n - start, 0)
            if progress:
                progress.update(min(done, src.promised))
    if progress:
        progress.update(src.promised, final=True)
    return written


# Input subtypes whose samples float32 holds exactly (reading float32 halves the traffic).
_FLOAT32_EXACT = {"PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "FLOAT", "ULAW", "ALAW"}
# Integer subtypes libsndfile takes as int16 codes (y * 2^15: G.711 files too, whose law
# libsndfile encodes back to the same codes), the others as int32 codes (y * 2^31).
_INT16_CODES = {"PCM_16", "ULAW", "ALAW"}


class _Encoding:
    """How a block of the chain's output becomes the bytes of OUTPUT (``dst``): for
    uncompressed integer PCM (:func:`~rtq.files.audio.raw_layout`), the file's own
    samples written as they are; for other integer subtypes, exact int16 or int32 codes
    that libsndfile stores without rounding; floats as they are."""

    def __init__(self, dst):
        self.raw = raw_layout(dst)
        self.width = 2 if dst.subtype in _INT16_CODES else 4 if dst.subtype in _INT_PCM_BITS else None

    def buffer(self, frames: int, channels: int) -> np.ndarray | None:
        """The buffer :meth:`encode` fills (None: float output is written as it is)."""
        if self.raw is not None:
            return np.zeros(frames * channels * self.raw[0], np.uint8)
        if self.width is not None:
            return np.zeros((frames, channels), np.int16 if self.width == 2 else np.int32)
        return None

    def encode(self, block: np.ndarray, out: np.ndarray | None) -> np.ndarray:
        """``block`` (C-contiguous) as what :meth:`write` takes: the file's samples or
        exact codes, in ``out``; float output as it is."""
        if self.raw is not None:
            pcm.encode(block, out, *self.raw)
            return out[:block.size * self.raw[0]]
        if self.width is not None:
            pcm.encode(block, out, self.width, False)
            return out[:block.shape[0]]
        return block

    def write(self, dst, data: np.ndarray) -> None:
        if self.raw is not None:
            write_raw(dst, data)
        else:
            dst.write(data)


def _work_dtype(src_subtype: str, out_subtype: str):
    """float32 where it is exact for both the input and the output grid, else float64."""
    exact_out = out_subtype in ("PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "ULAW", "ALAW", "FLOAT")
    return np.float32 if src_subtype in _FLOAT32_EXACT and exact_out else np.float64
