"""The engine's audio path: a source, chain slots with delay rings, and one of two mixers.

Everything here runs inside the stream's compiled callback (:mod:`rtq.live.callback`):
:func:`engine_block` rebuilds the engine's arrays from addresses in the control block
and makes one compiled call per block that fills the source block (the device input,
a looped buffer, a tone or noise) and cleans it with a chain's own input sanitizer
(:func:`rtq.program.sanitize_input`: NaN -> 0, +-Inf -> full scale), so no path (the
chains, the dry path, the speakers) sees a non-finite sample and each is counted once,
in that chain's counters, where its meter and the exit summary read it (the live
mixer: the playing chain's; the select mixer: slot 0's), runs chain programs (:func:`rtq.program.run_program`, the same code as offline
rendering), delays each slot's output by ``D - its latency`` so every path is aligned
to the alignment latency ``D``, and mixes.  The mixer is chosen once (``MIXER``):

The live mixer (``rtq live``, :class:`LiveEngine`; two slots)
    runs the active slot's chain and, while a switch is in progress, the incoming
    one's too; delays the dry input by ``D``; mixes ``out = gw * wet + gd * dry`` where
    the gains ramp linearly to their targets: normal ``(1, 0)``, bypass ``(0, 1)``,
    error solo ``(G, -G * chain gain)`` (the error the chain adds beyond its gain,
    amplified by ``G``, and clipped at full scale while solo fades in, plays or fades
    out: a plain 4-bit TPDF quantizer's error at +40 dB peaks at 18 times full scale);
    a chain switch crossfades the wet signal from the old chain to the new one with
    equal gains (the two are correlated).  The incoming chain starts from a fresh state
    at the request, and what the mix reads from it is its response to the input only
    ``D`` samples later (its own latency, then its alignment delay): the fade starts
    then.  With the gains at ``(1, 0)`` and no switch in progress, the output is exactly
    the chain's output (``1 * w + 0 * d == w``), so live output equals offline
    rendering bit for bit.

The select mixer (listening tests, :class:`rtq.live.synchronised.SynchronisedEngine`; N slots)
    runs *every* slot's chain on every block, on the same input, so each has always
    processed everything the listener could hear from it; the output is one slot's
    aligned output times its level-matching gain (``gains``), selected by ``WANT``.
    A change of selection is played as ``SWITCH`` says: ``dip`` (ITU-R BS.1534-3: the
    table ``shape`` down, then up, no overlap), ``crossfade`` (down on the old slot
    while up on the new one) or ``cut`` (at the first frame of the next block).
    ``shape`` holds the fade-out gains ``0.5 (1 + cos(pi (i + 1/2) / L))``, ``i < L``
    (5 ms: L = 240 at 48 kHz), strictly between 0 and 1; the fade-in is the same table
    read backwards.  A buffer source loops between ``LOOP_START`` and ``LOOP_END``;
    every jump back is heard ``D`` frames after the input made it, and the output dips
    around that moment (down before, up after), as it rises from silence where the
    first input is heard (frame ``D``; the first ``D`` frames are the chains' start-up
    and stay silent).  Selecting nothing (``WANT = -1``) dips to silence and, with a
    buffer source, then freezes the playhead: no input is read and no chain runs until
    a slot is selected again, when the output rises where it stopped.  Each change of
    the audible slot is written into the ``events`` ring (stream frame, slot), from
    which the played history is read.  Outside the dips and fades, the output is
    exactly ``gain * chain output`` (``1.0 * x == x``), the samples offline rendering
    gives, times the gain.

Control from other threads is lock-free: the main thread prepares what it hands over
(allocation happens there), writes it, then sets a request word the callback reads at
the next block.  Live: it writes a new program's addresses into the idle slot, then
sets ``REQUEST``; the callback starts the crossfade at the next block and, once it is
over, makes that slot active and increments ``ACK``; the main thread keeps the old
program alive until it has seen the ``ACK``.  Select: ``WANT``, and new loop points in
``PENDING_START``/``PENDING_END`` published by incrementing ``LOOP_REQUEST``.
"""
from __future__ import annotations

import time

import numpy as np

from ..jit import address_as_void_pointer, carray, kernel
from ..program import META_CAPTURE, PROGRAM_WORDS, program_at, program_words, run_program, sanitize_input
from ..processor import Counts
from ..spec import checked_integer, checked_number, stream_rate
from ..dsp.rng import next_uniform
from ..native import Entry
from .callback import CALLBACK_SIGNATURE, USER, begin_callback, end_callback, prefault
from .limits import MAX_BLOCKSIZE, MAX_CHANNELS, PIECE
from .sources import BUFFER, DEVICE, NOISE, TONE, Source

# Integer control words (engine array ``eng``).
ACTIVE = 0          # live: slot whose chain is playing
REQUEST = 1         # live: 1: switch to the other slot (written by the main thread)
ACK = 2             # live: completed switches
XF_POS = 3          # live: samples into the running chain crossfade, -1 when none
XF_LEN = 4          # live: chain crossfade length in samples
SOURCE = 5          # SOURCE_* below
SOURCE_POS = 6      # read position in the source buffer
DRY_DELAY = 7       # alignment latency D
MIXER = 8           # MIXER_* below
RING_POS = 10       # write position of the delay rings
FRAMES = 12         # frames processed (the chains' input frames; a frozen playhead holds it)
LOOP_START = 13     # the buffer source plays [LOOP_START, LOOP_END) in a loop
LOOP_END = 14
NEXT_JUMP = 15      # processed frame at which the buffer source next jumps to LOOP_START
# The select mixer's words (the main thread writes WANT, SWITCH and the loop requests).
WANT = 16           # requested slot, -1: silence
CURRENT = 17        # slot audible now (fading out in PHASE_DOWN, in in PHASE_UP), -1: none
INCOMING = 18       # the slot a crossfade goes to
PHASE = 19          # PHASE_* below
PHASE_POS = 20      # samples into the phase
SWITCH = 21         # SWITCH_* below: how a change of WANT is played
FROZEN = 22         # 1: the playhead is held (nothing is read or processed)
HOLDS = 23          # 1: silence freezes the playhead (a buffer source); 0: the input runs on
JUMP_LAST = 24      # processed frame at which the latest loop jump is heard
JUMP_PREV = 25      # the one before it
JUMP_FROM = 26      # buffer position the latest jump left, and the one it went to
JUMP_TO = 27
LOOP_REQUEST = 28   # loop changes requested (main thread) and applied (callback); the
LOOP_SEEN = 29      # new points are in PENDING_START, PENDING_END
PENDING_START = 30
PENDING_END = 31
OUT_FRAMES = 32     # stream frames since start, frozen ones too: the events' clock
EVENT_COUNT = 33    # events written into the events ring
ENGINE_WORDS = 40

SOURCE_DEVICE = 0
SOURCE_BUFFER = 1
SOURCE_TONE = 2
SOURCE_NOISE = 3

MIXER_LIVE = 0
MIXER_SELECT = 1

PHASE_IDLE = 0
PHASE_DOWN = 1      # CURRENT fades out (the dip's first half, or to silence)
PHASE_UP = 2        # CURRENT fades in (the dip's second half, or from silence)
PHASE_CROSS = 3     # CURRENT fades out while INCOMING fades in

SWITCH_DIP = 0
SWITCH_CROSSFADE = 1
SWITCH_CUT = 2

NEVER = 1 << 62     # a frame no stream reaches

# Per-slot words (array ``slots``, one row per slot).
SLOT_DELAY = 0      # D - the slot's chain latency
SLOT_PROGRAM = 4    # the program's addresses (PROGRAM_WORDS words)
SLOT_WORDS = SLOT_PROGRAM + PROGRAM_WORDS

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

# Control-block user words: where :class:`Engine` binds its arrays.
BIND_ENG = 0        # int64[ENGINE_WORDS]              1 + 1 words
BIND_FCTL = 2       # float64[FLOAT_WORDS]             1 + 1
BIND_SRC = 4        # float64[max_n, channels]         1 + 2
BIND_WET = 7        # float64[slots, max_n, channels]  1 + 3
BIND_DRY = 11       # float64[channels, ring]          1 + 2
BIND_RINGS = 14     # float64[slots, channels, ring]   1 + 3
BIND_SOURCE = 18    # float64[frames, channels]        1 + 2
BIND_NOISE = 21     # uint64[channels]                 1 + 1
BIND_SLOTS = 23     # int64[slots, SLOT_WORDS]         1 + 2
BIND_GAINS = 26     # float64[slots]                   1 + 1
BIND_SHAPE = 28     # float64[fade]                    1 + 1
BIND_EVENTS = 30    # int64[events, 2]                 1 + 2
USER_WORDS = 33


@kernel
def _fill_source(eng, fctl, src, source, noise, inp, n, counting):
    """Write ``n`` frames of the selected source into ``src``, cleaned by the input
    sanitizer of the program ``counting`` (which counts what it replaces).

    The buffer source jumps back to ``LOOP_START`` at processed frame ``NEXT_JUMP`` and
    notes when the jump will be heard (``JUMP_LAST``); positions past the buffer's end
    read silence."""
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
            frame = eng[FRAMES] + t
            pos = eng[SOURCE_POS]
            if frame == eng[NEXT_JUMP]:
                eng[JUMP_PREV] = eng[JUMP_LAST]
                eng[JUMP_LAST] = frame + eng[DRY_DELAY]
                eng[JUMP_FROM] = pos
                pos = eng[LOOP_START]
                eng[JUMP_TO] = pos
                eng[NEXT_JUMP] = frame + eng[LOOP_END] - pos
            if pos < source.shape[0]:
                for c in range(nch):
                    src[t, c] = source[pos, c]
            else:
                for c in range(nch):
                    src[t, c] = 0.0
            eng[SOURCE_POS] = pos + 1
        elif kind == SOURCE_NOISE:
            for c in range(nch):
                state, u = next_uniform(noise[c])
                noise[c] = state
                src[t, c] = fctl[NOISE_AMP] * (2.0 * u - 1.0)
        else:
            for c in range(nch):
                src[t, c] = inp[t, c]
    sanitize_input(counting, src, n)


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
def _live_mix(eng, fctl, src, wet, dry, rings, slots, out, n):
    """The live mixer over ``n`` frames already in ``src`` (see the module's docstring)."""
    nch = src.shape[1]
    active = eng[ACTIVE]
    other = 1 - active
    if eng[REQUEST] == 1 and eng[XF_POS] < 0:
        eng[XF_POS] = 0
    fading = eng[XF_POS] >= 0
    run_program(program_at(slots[active], SLOT_PROGRAM), src[:n], wet[active, :n])
    if fading:
        run_program(program_at(slots[other], SLOT_PROGRAM), src[:n], wet[other, :n])
    mask = dry.shape[1] - 1
    pos = eng[RING_POS]
    d_dry = eng[DRY_DELAY]
    d_a = slots[active, SLOT_DELAY]
    d_b = slots[other, SLOT_DELAY]
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
def _edge(frame, jump, shape):
    """Gain at output ``frame`` around a loop jump heard at ``jump``: the fade-out over
    the ``L`` frames before it, the fade-in over the ``L`` frames from it, else 1."""
    fade = shape.shape[0]
    ahead = jump - frame
    if 0 < ahead <= fade:
        return shape[fade - ahead]
    if -fade < ahead <= 0:
        return shape[fade - 1 + ahead]
    return 1.0


@kernel
def _event(eng, events, frame, slot):
    """Note that ``slot`` (-1: none) is what is heard from stream frame ``frame`` on."""
    k = eng[EVENT_COUNT] % events.shape[0]
    events[k, 0] = frame
    events[k, 1] = slot
    eng[EVENT_COUNT] += 1      # after the data: a reader that sees the count sees them


@kernel
def _apply_loop(eng, fade):
    """Take the pending loop points.  The next jump is where the playhead leaves the new
    loop, but never so soon that its dip would start before now or overlap the last
    jump's: until then the source reads on (the output is dipped there)."""
    start = eng[PENDING_START]
    end = eng[PENDING_END]
    eng[LOOP_START] = start
    eng[LOOP_END] = end
    eng[LOOP_SEEN] = eng[LOOP_REQUEST]
    frame = eng[FRAMES]
    pos = eng[SOURCE_POS]
    d = eng[DRY_DELAY]
    earliest = max(frame, frame + fade - d, eng[JUMP_LAST] + 2 * fade - d)
    jump = frame + end - pos if start <= pos < end else earliest
    eng[NEXT_JUMP] = max(jump, earliest)


@kernel
def _select(eng, fctl, src, wet, rings, slots, gains, shape, events, source, noise, inp, out, n):
    """The select mixer over one block of ``n`` frames (see the module's docstring)."""
    nch = src.shape[1]
    fade = shape.shape[0]
    clock = eng[OUT_FRAMES]
    eng[OUT_FRAMES] = clock + n
    want = eng[WANT]
    if eng[LOOP_REQUEST] != eng[LOOP_SEEN]:     # taken while held too: a second change need not wait
        _apply_loop(eng, fade)
    if eng[FROZEN] == 1:
        if want < 0:
            for t in range(n):
                for c in range(nch):
                    out[t, c] = 0.0
            return
        eng[FROZEN] = 0
    _fill_source(eng, fctl, src, source, noise, inp, n, program_at(slots[0], SLOT_PROGRAM))
    count = slots.shape[0]
    for k in range(count):
        run_program(program_at(slots[k], SLOT_PROGRAM), src[:n], wet[k, :n])
    mask = rings.shape[2] - 1
    pos = eng[RING_POS]
    first = eng[FRAMES]
    d = eng[DRY_DELAY]
    upcoming = eng[NEXT_JUMP] + d if eng[SOURCE] == SOURCE_BUFFER else NEVER
    last = eng[JUMP_LAST]
    prev = eng[JUMP_PREV]
    cur = eng[CURRENT]
    incoming = eng[INCOMING]
    phase = eng[PHASE]
    step = eng[PHASE_POS]
    if phase == PHASE_IDLE and want != cur:
        how = eng[SWITCH]
        if how == SWITCH_CUT:
            cur = want
            _event(eng, events, clock, cur)
        elif cur < 0:
            cur = want
            phase = PHASE_UP
            _event(eng, events, clock, cur)
        elif how == SWITCH_DIP or want < 0:
            phase = PHASE_DOWN
        else:
            incoming = want
            phase = PHASE_CROSS
            _event(eng, events, clock, incoming)
        step = 0
    for t in range(n):
        w = (pos + t) & mask
        for k in range(count):
            for c in range(nch):
                rings[k, c, w] = wet[k, t, c]
        q = first + t
        env = 0.0
        if q >= d:
            env = _edge(q, last, shape) * _edge(q, prev, shape) * _edge(q, upcoming, shape)
        g_cur = 1.0
        g_in = 0.0
        if phase == PHASE_DOWN:
            g_cur = shape[step]
        elif phase == PHASE_UP:
            g_cur = shape[fade - 1 - step]
        elif phase == PHASE_CROSS:
            g_cur = shape[step]
            g_in = shape[fade - 1 - step]
        for c in range(nch):
            v = 0.0
            if cur >= 0:
                v = g_cur * (gains[cur] * rings[cur, c, (w - slots[cur, SLOT_DELAY]) & mask])
            if phase == PHASE_CROSS:
                v += g_in * (gains[incoming] * rings[incoming, c, (w - slots[incoming, SLOT_DELAY]) & mask])
            out[t, c] = env * v
        if phase != PHASE_IDLE:
            step += 1
            if step == fade:
                step = 0
                if phase == PHASE_DOWN:
                    cur = want     # the latest request: one made during the fade-out counts
                    phase = PHASE_UP if cur >= 0 else PHASE_IDLE
                    _event(eng, events, clock + t + 1, cur)
                elif phase == PHASE_CROSS:
                    cur = incoming
                    phase = PHASE_IDLE
                else:
                    phase = PHASE_IDLE
    eng[CURRENT] = cur
    eng[INCOMING] = incoming
    eng[PHASE] = phase
    eng[PHASE_POS] = step
    eng[RING_POS] = (pos + n) & mask
    eng[FRAMES] = first + n
    if phase == PHASE_IDLE and cur < 0 and want < 0 and eng[HOLDS] == 1:
        eng[FROZEN] = 1


@kernel
def engine_process(eng, fctl, src, wet, dry, rings, slots, gains, shape, events, source, noise, inp, out, n):
    """Process one block of ``n`` frames (``n`` at most ``src.shape[0]``) into ``out``."""
    if eng[MIXER] == MIXER_SELECT:
        _select(eng, fctl, src, wet, rings, slots, gains, shape, events, source, noise, inp, out, n)
    else:
        _fill_source(eng, fctl, src, source, noise, inp, n, program_at(slots[eng[ACTIVE]], SLOT_PROGRAM))
        _live_mix(eng, fctl, src, wet, dry, rings, slots, out, n)


@kernel
def _bound(ctl, word):
    return address_as_void_pointer(ctl[USER + word])


@kernel
def engine_block(ctl, inp, out, n):
    """The engine's block function: rebuild the engine's arrays from ``ctl`` and process
    ``n`` frames, in pieces of at most the engine's block size."""
    u = USER
    eng = carray(_bound(ctl, BIND_ENG), (ctl[u + BIND_ENG + 1],), np.int64)
    fctl = carray(_bound(ctl, BIND_FCTL), (ctl[u + BIND_FCTL + 1],), np.float64)
    src = carray(_bound(ctl, BIND_SRC), (ctl[u + BIND_SRC + 1], ctl[u + BIND_SRC + 2]), np.float64)
    wet = carray(_bound(ctl, BIND_WET), (ctl[u + BIND_WET + 1], ctl[u + BIND_WET + 2],
                                                ctl[u + BIND_WET + 3]), np.float64)
    dry = carray(_bound(ctl, BIND_DRY), (ctl[u + BIND_DRY + 1], ctl[u + BIND_DRY + 2]), np.float64)
    rings = carray(_bound(ctl, BIND_RINGS), (ctl[u + BIND_RINGS + 1], ctl[u + BIND_RINGS + 2],
                                                    ctl[u + BIND_RINGS + 3]), np.float64)
    source = carray(_bound(ctl, BIND_SOURCE), (ctl[u + BIND_SOURCE + 1], ctl[u + BIND_SOURCE + 2]),
                          np.float64)
    noise = carray(_bound(ctl, BIND_NOISE), (ctl[u + BIND_NOISE + 1],), np.uint64)
    slots = carray(_bound(ctl, BIND_SLOTS), (ctl[u + BIND_SLOTS + 1], ctl[u + BIND_SLOTS + 2]), np.int64)
    gains = carray(_bound(ctl, BIND_GAINS), (ctl[u + BIND_GAINS + 1],), np.float64)
    shape = carray(_bound(ctl, BIND_SHAPE), (ctl[u + BIND_SHAPE + 1],), np.float64)
    events = carray(_bound(ctl, BIND_EVENTS), (ctl[u + BIND_EVENTS + 1], ctl[u + BIND_EVENTS + 2]),
                          np.int64)
    max_n = src.shape[0]
    start = 0
    while start < n:
        m = min(max_n, n - start)
        engine_process(eng, fctl, src, wet, dry, rings, slots, gains, shape, events, source, noise,
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
EVENTS = 1024      # the select mixer's events ring (changes of the audible slot)
SOLO_GAIN_DB = 40.0           # error solo's default gain: a 16-bit TPDF error (-96 dBFS) at -56 dBFS
SOLO_GAIN_RANGE_DB = (0.0, 120.0)


def _ring_length(frames: int) -> int:
    return 1 << int(np.ceil(np.log2(max(frames, 2))))


class Engine:
    """The engine's arrays and its stream: what :class:`LiveEngine` and
    :class:`~rtq.live.synchronised.SynchronisedEngine` share.

    ``stream_factory(callback, user_words)`` returns an opened, stopped stream
    (:class:`~rtq.live.portaudio.stream.DuplexStream` or
    :class:`~rtq.live.nullstream.NullStream`) that calls ``callback``.  Every array the
    callback uses is allocated here, on the calling thread, and bound to the stream's
    control block; ``slots`` chain slots, ``mixer`` one of ``MIXER_*``, ``fade`` the
    length of the select mixer's fades (its ``shape`` table).
    """

    def _format(self, samplerate: float, channels: int, blocksize: int) -> None:
        """The stream's format (checked), and the largest piece the chains run on."""
        self.samplerate = stream_rate(samplerate, "samplerate")
        self.channels = checked_integer(channels, "channels", 1, MAX_CHANNELS)
        blocksize = checked_integer(blocksize, "blocksize", 0, MAX_BLOCKSIZE)
        self.max_block = min(blocksize or PIECE, PIECE)

    def _checked_source(self, source: Source | None) -> Source:
        """``source`` (default the device input) for the stream's channels and rate."""
        source = Source.device() if source is None else source
        if not isinstance(source, Source):
            raise TypeError(f"source must be an rtq.live.sources.Source, got {type(source).__name__}")
        source = source.for_channels(self.channels)
        source.check_rate(self.samplerate)
        return source

    def _open(self, stream_factory, *, source: Source, slots: int, mixer: int, fade: int = 1) -> None:
        """Allocate the arrays for ``slots`` slots, open the stream and bind them (after
        :meth:`_format`, once the chains are prepared: a chain that cannot run leaves no
        stream open)."""
        self.eng = np.zeros(ENGINE_WORDS, np.int64)
        self.fctl = np.zeros(FLOAT_WORDS)
        self.src = np.zeros((self.max_block, self.channels))
        self.wet = np.zeros((slots, self.max_block, self.channels))
        ring = _ring_length(MAX_ALIGN + self.max_block + 1)
        self.dry = np.zeros((self.channels, ring))
        self.rings = np.zeros((slots, self.channels, ring))
        self.slots = np.zeros((slots, SLOT_WORDS), np.int64)
        self.gains = np.ones(slots)
        self.shape = fade_out_shape(fade)
        self.events = np.zeros((EVENTS, 2), np.int64)
        self.source = np.zeros((1, self.channels))
        self.noise = np.array([0x5EED + c for c in range(self.channels)], np.uint64)
        self._set_source(source)
        self.eng[MIXER] = mixer
        self.eng[XF_POS] = -1
        self.stream = stream_factory(engine_callback, USER_WORDS)
        for word, array in ((BIND_ENG, self.eng), (BIND_FCTL, self.fctl), (BIND_SRC, self.src),
                            (BIND_WET, self.wet), (BIND_DRY, self.dry), (BIND_RINGS, self.rings),
                            (BIND_SOURCE, self.source), (BIND_NOISE, self.noise), (BIND_SLOTS, self.slots),
                            (BIND_GAINS, self.gains), (BIND_SHAPE, self.shape), (BIND_EVENTS, self.events)):
            self.stream.bind(word, array)

    def _set_source(self, source: Source) -> None:
        """Write ``source`` (checked: the stream's channels and rate) into the control words."""
        if source.kind == DEVICE:
            self.eng[SOURCE] = SOURCE_DEVICE
        elif source.kind == BUFFER:
            self.source = source.data
            self.eng[SOURCE] = SOURCE_BUFFER
            self.eng[LOOP_END] = self.eng[NEXT_JUMP] = len(source.data)
        elif source.kind == TONE:
            self.fctl[TONE_STEP] = source.hz / self.samplerate
            self.fctl[TONE_AMP] = np.sqrt(2.0) * 10.0 ** (source.dbfs / 20.0)
            self.eng[SOURCE] = SOURCE_TONE
        elif source.kind == NOISE:
            self.fctl[NOISE_AMP] = np.sqrt(3.0) * 10.0 ** (source.dbfs / 20.0)
            self.eng[SOURCE] = SOURCE_NOISE

    def _install(self, slot: int, chain, delay: int) -> None:
        """Hand ``chain`` (prepared) to slot ``slot``, its output delayed by ``delay``."""
        # Oversampled taps record only while a meter asks (see rtq.program).
        chain.program.meta[META_CAPTURE] = 0
        for array in chain.program:
            prefault(array)
        self.stream.hold(slot, chain.program)   # the slot holds its arrays' addresses
        self.slots[slot, SLOT_PROGRAM:] = program_words(chain.program)
        self.slots[slot, SLOT_DELAY] = delay

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

    # -- status -----------------------------------------------------------------
    @property
    def frames(self) -> int:
        """Frames the chains have processed."""
        return int(self.eng[FRAMES])


def fade_out_shape(length: int) -> np.ndarray:
    """The select mixer's fade-out: ``0.5 (1 + cos(pi (i + 1/2) / length))`` for ``i <
    length``, every gain strictly between 0 and 1 (the fade-in reads it backwards, so a
    dip is exactly ``length`` frames down and ``length`` up)."""
    return 0.5 * (1.0 + np.cos(np.pi * (np.arange(length) + 0.5) / length))


class LiveEngine(Engine):
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
        self._format(samplerate, channels, blocksize)
        self.fade = max(1, int(round(checked_number(fade_ms, "fade_ms", 0.1, 1000.0) * 1e-3 * self.samplerate)))
        asked = None if align_latency is None else checked_integer(align_latency, "align_latency", 0, MAX_ALIGN)
        source = self._checked_source(source)
        chain.prepare(self.samplerate, self.channels, self.max_block, taps=True)
        self.align = chain.latency_samples if asked is None else asked
        if self.align > MAX_ALIGN:
            raise ValueError(f"chain latency {self.align} exceeds the {MAX_ALIGN} samples the engine can align")
        self._open(stream_factory, source=source, slots=2, mixer=MIXER_LIVE)
        self._slots = [chain, None]
        self._retired = Counts(*([0] * self.channels for _ in Counts._fields))
        self.solo_gain_db = SOLO_GAIN_DB
        self._mode = "normal"
        self.eng[XF_LEN] = self.fade
        self.eng[DRY_DELAY] = self.align
        self.fctl[GAIN_WET] = self.fctl[TARGET_WET] = 1.0
        self._install(0, chain, self.align - chain.latency_samples)

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
        self._install(idle, chain, self.align - latency)
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
        idle = 1 - int(self.eng[ACTIVE])
        if self._slots[idle] is not None:   # retired: its counts are final
            self._retired = Counts(*([a + b for a, b in zip(total, counts)]
                                     for total, counts in zip(self._retired, self._slots[idle].counts())))
            self._slots[idle] = None

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
    def switches(self) -> int:
        return int(self.eng[ACK])

    def counts(self) -> Counts:
        """Per channel since the engine started, over every chain it played (as
        :meth:`~rtq.processor.Processor.counts`): samples the quantizers clipped,
        non-finite source samples replaced, designed-NTF loop resets, samples above such
        a loop's maximum stable amplitude.  While a switch fades, both chains run and
        count."""
        chains = [chain.counts() for chain in self._slots if chain is not None]
        return Counts(*([sum(values) for values in zip(retired, *(counts[k] for counts in chains))]
                        for k, retired in enumerate(self._retired)))

    @property
    def nonfinite(self) -> int:
        """Non-finite source samples replaced, all channels (:meth:`counts`)."""
        return sum(self.counts()[1])
