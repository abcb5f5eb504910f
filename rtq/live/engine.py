"""The live engine's audio path: source, two chain slots, crossfades, bypass, error solo.

Everything here runs inside the stream's compiled callback (:mod:`rtq.live.callback`):
:func:`engine_block` rebuilds the engine's arrays from addresses in the control block
and makes one compiled call that

1. fills the source block (the device input, a looped file, a tone or noise), replacing
   NaN/Inf (counted) so that no path ever sees them;
2. runs the active chain's program (:func:`rtq.program.run_program`, the same code as
   offline rendering) and, while a switch is in progress, the incoming chain's too;
3. delays the dry input by the alignment latency ``D`` and each chain's output by
   ``D - chain latency``, so dry, A and B stay time-aligned;
4. mixes ``out = gw * wet + gd * dry`` where the gains ramp linearly to their targets:
   normal ``(1, 0)``, bypass ``(0, 1)``, error solo ``(G, -G * chain gain)`` (the error
   the chain adds beyond its gain, amplified by ``G``, and clipped at full scale while
   solo fades in, plays or fades out: a plain 4-bit TPDF quantizer's error at +40 dB
   peaks at 18 times full scale); a chain switch crossfades the wet signal from the old
   chain to the new one with equal gains (the two are correlated).  The incoming chain starts from a fresh state at the request, and what
   the mix reads from it is its response to the input only ``D`` samples later (its own
   latency, then its alignment delay): the fade starts then.

With the gains at ``(1, 0)`` and no switch in progress, the output is exactly the
chain's output (``1 * w + 0 * d == w``), so live output equals offline rendering bit for
bit.

Control from other threads is lock-free: the main thread prepares a new program
(allocation happens there), writes its array addresses into the idle slot, then sets
``REQUEST``; the callback starts the crossfade at the next block and, once it is over,
makes that slot active and increments ``ACK``.  The main thread keeps the old program
alive until it has seen the ``ACK``.
"""
from __future__ import annotations

import time

import numba
import numpy as np

from ..jit import kernel
from ..program import META_CAPTURE, PROGRAM_WORDS, program_at, program_words, run_program
from ..spec import checked_integer, checked_number, stream_rate
from ..dsp.rng import next_uniform
from ..jit import address_as_void_pointer
from ..native import Entry
from .callback import CALLBACK_SIGNATURE, USER, begin_callback, end_callback, prefault
from .limits import MAX_BLOCKSIZE, MAX_CHANNELS, PIECE
from .sources import BUFFER, DEVICE, NOISE, TONE, Source

# Integer control words (engine array ``eng``).
ACTIVE = 0          # slot whose chain is playing
REQUEST = 1         # 1: switch to the other slot (written by the main thread)
ACK = 2             # completed switches
XF_POS = 3          # samples into the running chain crossfade, -1 when none
XF_LEN = 4          # chain crossfade length in samples
SOURCE = 5          # SOURCE_* below
SOURCE_POS = 6      # read position in the looped source buffer
DRY_DELAY = 7       # alignment latency D
SLOT_DELAY = 8      # two words: D - latency of each slot's chain
RING_POS = 10       # write position of the delay rings
NONFINITE = 11      # NaN/Inf samples replaced in the source
FRAMES = 12         # frames processed
SLOTS = 16          # program addresses, PROGRAM_WORDS per slot
ENGINE_WORDS = SLOTS + 2 * PROGRAM_WORDS

SOURCE_DEVICE = 0
SOURCE_BUFFER = 1
SOURCE_TONE = 2
SOURCE_NOISE = 3

# Float control words (array ``fctl``).
GAIN_WET = 0        # current mix gains
GAIN_DRY = 1
TARGET_WET = 2      # targets (written by the main thread after the steps)
TARGET_DRY = 3
STEP_WET = 4        # per-sample ramp steps (positive)
STEP_DRY = 5
TONE_PHASE = 6      # cycles, in [0, 1)
TONE_STEP = 7       # cycles per sample
TONE_AMP = 8
NOISE_AMP = 9       # peak of the uniform noise
FLOAT_WORDS = 16

# Control-block user words: where :class:`LiveEngine` binds its arrays.
BIND_ENG = 0        # int64[ENGINE_WORDS]              1 + 1 words
BIND_FCTL = 2       # float64[FLOAT_WORDS]             1 + 1
BIND_SRC = 4        # float64[max_n, channels]         1 + 2
BIND_WET = 7        # float64[2, max_n, channels]      1 + 3
BIND_DRY = 11       # float64[channels, ring]          1 + 2
BIND_RINGS = 14     # float64[2, channels, ring]       1 + 3
BIND_SOURCE = 18    # float64[frames, channels]        1 + 2
BIND_NOISE = 21     # uint64[channels]                 1 + 1
USER_WORDS = 23


@kernel
def _fill_source(eng, fctl, src, source, noise, inp, n):
    """Write ``n`` frames of the selected source into ``src`` (NaN -> 0, +-Inf -> +-1)."""
    kind = eng[SOURCE]
    nch = src.shape[1]
    for t in range(n):
        if kind == SOURCE_TONE:
            v = fctl[TONE_AMP] * np.sin(2.0 * np.pi * fctl[TONE_PHASE])
            phase = fctl[TONE_PHASE] + fctl[TONE_STEP]
            fctl[TONE_PHASE] = phase - np.floor(phase)
            for c in range(nch):
                src[t, c] = v
        elif kind == SOURCE_BUFFER:
            pos = eng[SOURCE_POS]
            for c in range(nch):
                src[t, c] = source[pos, c]
            eng[SOURCE_POS] = pos + 1 if pos + 1 < source.shape[0] else 0
        elif kind == SOURCE_NOISE:
            for c in range(nch):
                state, u = next_uniform(noise[c])
                noise[c] = state
                src[t, c] = fctl[NOISE_AMP] * (2.0 * u - 1.0)
        else:
            for c in range(nch):
                src[t, c] = inp[t, c]
        for c in range(nch):
            v = src[t, c]
            if not np.isfinite(v):
                eng[NONFINITE] += 1
                src[t, c] = 0.0 if np.isnan(v) else (1.0 if v > 0 else -1.0)


@kernel
def _ramp(fctl, current, target, step):
    """Move ``fctl[current]`` one step towards ``fctl[target]``."""
    g = fctl[current]
    goal = fctl[target]
    s = fctl[step]
    if g < goal:
        g = min(g + s, goal)
    elif g > goal:
        g = max(g - s, goal)
    fctl[current] = g
    return g


@kernel
def engine_process(eng, fctl, src, wet, dry, rings, source, noise, inp, out, n):
    """Process one block of ``n`` frames (``n`` at most ``src.shape[0]``) into ``out``."""
    nch = src.shape[1]
    _fill_source(eng, fctl, src, source, noise, inp, n)
    active = eng[ACTIVE]
    other = 1 - active
    if eng[REQUEST] == 1 and eng[XF_POS] < 0:
        eng[XF_POS] = 0
    fading = eng[XF_POS] >= 0
    run_program(program_at(eng, SLOTS + active * PROGRAM_WORDS), src[:n], wet[active, :n])
    if fading:
        run_program(program_at(eng, SLOTS + other * PROGRAM_WORDS), src[:n], wet[other, :n])
    mask = dry.shape[1] - 1
    pos = eng[RING_POS]
    d_dry = eng[DRY_DELAY]
    d_a = eng[SLOT_DELAY + active]
    d_b = eng[SLOT_DELAY + other]
    xf_len = eng[XF_LEN]
    for t in range(n):
        w = (pos + t) & mask
        gw = _ramp(fctl, GAIN_WET, TARGET_WET, STEP_WET)
        gd = _ramp(fctl, GAIN_DRY, TARGET_DRY, STEP_DRY)
        soloed = gw > 1.0 or gd < 0.0   # error solo, or fading to or from it (normal: 1, 0 exactly)
        mix = 0.0
        if fading:
            mix = min(max((eng[XF_POS] + t + 1 - d_dry) / xf_len, 0.0), 1.0)
        for c in range(nch):
            dry[c, w] = src[t, c]
            rings[active, c, w] = wet[active, t, c]
            value = rings[active, c, (w - d_a) & mask]
            if fading:
                rings[other, c, w] = wet[other, t, c]
                value += mix * (rings[other, c, (w - d_b) & mask] - value)
            v = gw * value + gd * dry[c, (w - d_dry) & mask]
            out[t, c] = min(max(v, -1.0), 1.0) if soloed else v
    eng[RING_POS] = (pos + n) & mask
    eng[FRAMES] += n
    if fading:
        eng[XF_POS] += n
        if eng[XF_POS] >= xf_len + d_dry:
            eng[XF_POS] = -1
            eng[ACTIVE] = other
            eng[REQUEST] = 0
            eng[ACK] += 1


@kernel
def _bound(ctl, word):
    return address_as_void_pointer(ctl[USER + word])


@kernel
def engine_block(ctl, inp, out, n):
    """The engine's block function: rebuild the engine's arrays from ``ctl`` and process
    ``n`` frames, in pieces of at most the engine's block size."""
    u = USER
    eng = numba.carray(_bound(ctl, BIND_ENG), (ctl[u + BIND_ENG + 1],), np.int64)
    fctl = numba.carray(_bound(ctl, BIND_FCTL), (ctl[u + BIND_FCTL + 1],), np.float64)
    src = numba.carray(_bound(ctl, BIND_SRC), (ctl[u + BIND_SRC + 1], ctl[u + BIND_SRC + 2]), np.float64)
    wet = numba.carray(_bound(ctl, BIND_WET), (2, ctl[u + BIND_WET + 2], ctl[u + BIND_WET + 3]), np.float64)
    dry = numba.carray(_bound(ctl, BIND_DRY), (ctl[u + BIND_DRY + 1], ctl[u + BIND_DRY + 2]), np.float64)
    rings = numba.carray(_bound(ctl, BIND_RINGS), (2, ctl[u + BIND_RINGS + 2], ctl[u + BIND_RINGS + 3]),
                         np.float64)
    source = numba.carray(_bound(ctl, BIND_SOURCE), (ctl[u + BIND_SOURCE + 1], ctl[u + BIND_SOURCE + 2]),
                          np.float64)
    noise = numba.carray(_bound(ctl, BIND_NOISE), (ctl[u + BIND_NOISE + 1],), np.uint64)
    max_n = src.shape[0]
    start = 0
    while start < n:
        m = min(max_n, n - start)
        engine_process(eng, fctl, src, wet, dry, rings, source, noise,
                       inp[start:start + m], out[start:start + m], m)
        start += m


@Entry(CALLBACK_SIGNATURE)
def engine_callback(input_addr, output_addr, frames, time_info, status, user_data):
    """The engine's PortAudio callback (a C entry point: see :mod:`rtq.native`)."""
    ctl, inp, out, n, start = begin_callback(input_addr, output_addr, frames, user_data)
    engine_block(ctl, inp, out, n)
    return end_callback(ctl, status, n, start)


# ---------------------------------------------------------------------------
# Python side


MAX_ALIGN = 8192   # samples of latency the delay rings can align (170 ms at 48 kHz)
SOLO_GAIN_DB = 40.0           # error solo's default gain: a 16-bit TPDF error (-96 dBFS) at -56 dBFS
SOLO_GAIN_RANGE_DB = (0.0, 120.0)


def _ring_length(frames: int) -> int:
    return 1 << int(np.ceil(np.log2(max(frames, 2))))


class LiveEngine:
    """Runs a chain on a stream's audio thread and controls it from any other thread.

    Parameters
    ----------
    stream_factory : callable
        ``stream_factory(callback, user_words)`` returns an opened, stopped stream
        (:class:`~rtq.live.portaudio.stream.DuplexStream` or :class:`~rtq.live.nullstream.NullStream`)
        that calls ``callback``, reserving ``user_words`` control-block words.
    chain : Chain
        The chain to start with (prepared here, with meter taps).
    samplerate : float
        The stream's rate, whole Hz (:func:`~rtq.spec.stream_rate`).
    channels : int
        Channels of the stream, 1 to :data:`~rtq.live.limits.MAX_CHANNELS`.
    blocksize : int
        Frames per callback, 0 to :data:`~rtq.live.limits.MAX_BLOCKSIZE` (0: the host's
        choice); the chain runs on pieces of at most :data:`~rtq.live.limits.PIECE` frames.
    source : Source
        What plays through the chain (:class:`~rtq.live.sources.Source`): the device input,
        a looped buffer (of ``channels`` channels, or mono), a tone or noise.
    align_latency : int, optional
        Samples by which the dry path is delayed and every chain's output is aligned
        (default: the chain's latency, rounded).  Give the largest latency of the chains
        you will switch between (a listening test) to keep every switch aligned; switching
        to a chain with more latency raises it (at most :data:`MAX_ALIGN`).
    fade_ms : float
        Length of every crossfade (chain switch, bypass, solo), 0.1 to 1000 ms.

    Raises
    ------
    ValueError
        For an argument out of range, naming it.

    Notes
    -----
    Real-time rules: only :meth:`start` and the constructor allocate for the audio
    thread; every control method prepares what it needs here, on the calling thread,
    and hands it over with plain stores (no locks).  One control call at a time.
    """

    def __init__(self, stream_factory, chain, *, samplerate: float, channels: int,
                 blocksize: int, source: Source | None = None, align_latency: int | None = None,
                 fade_ms: float = 10.0):
        self.samplerate = stream_rate(samplerate, "samplerate")
        self.channels = checked_integer(channels, "channels", 1, MAX_CHANNELS)
        blocksize = checked_integer(blocksize, "blocksize", 0, MAX_BLOCKSIZE)
        self.max_block = min(blocksize or PIECE, PIECE)
        self.fade = max(1, int(round(checked_number(fade_ms, "fade_ms", 0.1, 1000.0) * 1e-3 * self.samplerate)))
        asked = None if align_latency is None else checked_integer(align_latency, "align_latency", 0, MAX_ALIGN)
        source = Source.device() if source is None else source
        if not isinstance(source, Source):
            raise TypeError(f"source must be an rtq.live.sources.Source, got {type(source).__name__}")
        source = source.for_channels(self.channels)
        source.check_rate(self.samplerate)
        chain.prepare(self.samplerate, self.channels, self.max_block, taps=True)
        self.align = chain.latency_samples if asked is None else asked
        if self.align > MAX_ALIGN:
            raise ValueError(f"chain latency {self.align} exceeds the {MAX_ALIGN} samples the engine can align")
        self._slots = [chain, None]
        self.solo_gain_db = SOLO_GAIN_DB
        self._mode = "normal"
        self.eng = np.zeros(ENGINE_WORDS, np.int64)
        self.fctl = np.zeros(FLOAT_WORDS)
        self.src = np.zeros((self.max_block, self.channels))
        self.wet = np.zeros((2, self.max_block, self.channels))
        ring = _ring_length(MAX_ALIGN + self.max_block + 1)
        self.dry = np.zeros((self.channels, ring))
        self.rings = np.zeros((2, self.channels, ring))
        self.source = np.zeros((1, self.channels))
        self.noise = np.array([0x5EED + c for c in range(self.channels)], np.uint64)
        self._set_source(source)
        self.eng[XF_POS] = -1
        self.eng[XF_LEN] = self.fade
        self.eng[DRY_DELAY] = self.align
        self.fctl[GAIN_WET] = self.fctl[TARGET_WET] = 1.0
        self.stream = stream_factory(engine_callback, USER_WORDS)
        for word, array in ((BIND_ENG, self.eng), (BIND_FCTL, self.fctl), (BIND_SRC, self.src),
                            (BIND_WET, self.wet), (BIND_DRY, self.dry), (BIND_RINGS, self.rings),
                            (BIND_SOURCE, self.source), (BIND_NOISE, self.noise)):
            self.stream.bind(word, array)
        self._install(0, chain)

    def _set_source(self, source: Source) -> None:
        """Write ``source`` (checked: the stream's channels and rate) into the control words."""
        if source.kind == DEVICE:
            self.eng[SOURCE] = SOURCE_DEVICE
        elif source.kind == BUFFER:
            self.source = source.data
            self.eng[SOURCE] = SOURCE_BUFFER
        elif source.kind == TONE:
            self.fctl[TONE_STEP] = source.hz / self.samplerate
            self.fctl[TONE_AMP] = np.sqrt(2.0) * 10.0 ** (source.dbfs / 20.0)
            self.eng[SOURCE] = SOURCE_TONE
        elif source.kind == NOISE:
            self.fctl[NOISE_AMP] = np.sqrt(3.0) * 10.0 ** (source.dbfs / 20.0)
            self.eng[SOURCE] = SOURCE_NOISE

    def _install(self, slot: int, chain) -> None:
        # Oversampled taps record only while a meter asks (see rtq.program).
        chain.program.meta[META_CAPTURE] = 0
        for array in chain.program:
            prefault(array)
        self.stream.hold(slot, chain.program)   # eng holds its arrays' addresses
        base = SLOTS + slot * PROGRAM_WORDS
        self.eng[base:base + PROGRAM_WORDS] = program_words(chain.program)
        self.eng[SLOT_DELAY + slot] = self.align - chain.latency_samples

    # -- life cycle ------------------------------------------------------------
    def start(self) -> None:
        self.stream.start()

    def stop(self) -> None:
        self.stream.stop()

    def close(self) -> None:
        self.stream.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- control ---------------------------------------------------------------
    @property
    def chain(self):
        """The chain playing now (or fading in)."""
        pending = self.eng[REQUEST] == 1
        return self._slots[1 - self.eng[ACTIVE]] if pending else self._slots[self.eng[ACTIVE]]

    def switch(self, chain, wait: bool = True, timeout: float = 2.0) -> None:
        """Crossfade to ``chain`` at the next block boundary.

        ``chain`` is prepared here (with meter taps).  Waits for a previous switch to
        finish first; with ``wait``, also for this one (so the old chain can be freed).
        """
        chain.prepare(self.samplerate, self.channels, self.max_block, taps=True)
        latency = chain.latency_samples
        if latency > MAX_ALIGN:
            raise ValueError(f"chain latency {latency} exceeds the {MAX_ALIGN} samples the engine can align")
        self._wait_idle(timeout)
        idle = 1 - int(self.eng[ACTIVE])
        if latency > self.align:
            # The alignment only grows.  The outgoing chain keeps its delay until it is
            # retired, so this one crossfade is misaligned by the difference (a brief
            # comb, no click); from then on every chain and the dry path line up again.
            self.align = latency
            self.eng[DRY_DELAY] = latency
        self._slots[idle] = chain
        self._install(idle, chain)
        self.eng[REQUEST] = 1
        self._set_mode(self._mode)
        if wait:
            self._wait_idle(timeout)

    def _wait_idle(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.eng[REQUEST] == 1:
            if not self.stream.running:
                # No callbacks are coming: complete the switch here.
                self.eng[ACTIVE] = 1 - self.eng[ACTIVE]
                self.eng[REQUEST] = 0
                self.eng[ACK] += 1
                break
            if time.monotonic() > deadline:
                raise TimeoutError("the audio thread did not complete the switch")
            time.sleep(0.002)
        self._slots[1 - self.eng[ACTIVE]] = None

    def bypass(self, on: bool = True) -> None:
        """Hear the input (delayed by the alignment latency) instead of the chain."""
        self._set_mode("bypass" if on else "normal")

    def solo(self, on: bool = True, gain_db: float | None = None) -> None:
        """Hear the error the chain adds (output minus its gain times the input),
        amplified by ``gain_db`` (:data:`SOLO_GAIN_RANGE_DB`; None: the last one, at first
        :data:`SOLO_GAIN_DB`) and clipped at full scale."""
        if gain_db is not None:
            self.solo_gain_db = checked_number(gain_db, "solo gain_db", *SOLO_GAIN_RANGE_DB)
        self._set_mode("solo" if on else "normal")

    @property
    def mode(self) -> str:
        """``normal``, ``bypass`` or ``solo``."""
        return self._mode

    def _set_mode(self, mode: str) -> None:
        net_gain = self.chain.net_gain()
        solo_gain = 10.0 ** (self.solo_gain_db / 20.0)
        target = {"normal": (1.0, 0.0), "bypass": (0.0, 1.0), "solo": (solo_gain, -solo_gain * net_gain)}[mode]
        f = self.fctl
        f[STEP_WET] = max(abs(target[0] - f[GAIN_WET]), 1e-12) / self.fade
        f[STEP_DRY] = max(abs(target[1] - f[GAIN_DRY]), 1e-12) / self.fade
        f[TARGET_WET], f[TARGET_DRY] = target
        self._mode = mode

    # -- status -----------------------------------------------------------------
    @property
    def frames(self) -> int:
        return int(self.eng[FRAMES])

    @property
    def nonfinite(self) -> int:
        return int(self.eng[NONFINITE])

    @property
    def switches(self) -> int:
        return int(self.eng[ACK])
