"""Synchronised slots: N chains on one stream, every one processing every block, the
output selecting one (the engine's select mixer, :mod:`rtq.live.engine`).

This is what a listening test plays through (:class:`rtq.listen.Comparison` builds it):
a switch never prepares, resets or re-seeds a chain, and the playhead never jumps, so
what the listener hears after a switch is exactly what that chain has been producing
all along.  Every slot is delayed to the largest latency among them, so all are aligned
with each other and with the input.
"""
from __future__ import annotations

import time

from .engine import (CURRENT, DRY_DELAY, EVENT_COUNT, FRAMES, FROZEN, HOLDS, JUMP_FROM, JUMP_LAST,
                     JUMP_PREV, JUMP_TO, LOOP_END, LOOP_REQUEST, LOOP_SEEN, LOOP_START, MAX_ALIGN, MIXER_SELECT,
                     NEVER, NEXT_JUMP, OUT_FRAMES, PENDING_END, PENDING_START, PHASE, PHASE_IDLE, SOURCE,
                     SOURCE_BUFFER, SOURCE_POS, SWITCH, SWITCH_CROSSFADE, SWITCH_CUT, SWITCH_DIP, WANT, Engine)
from .sources import Source

SWITCHES = {"dip": SWITCH_DIP, "crossfade": SWITCH_CROSSFADE, "cut": SWITCH_CUT}
"""How a change of selection is played: BS.1534-3's dip (fade out, then in; no overlap),
a crossfade (out and in at once, equal gains: the conditions are correlated), or a cut."""
FADE_MS = 5.0
"""Each fade of a dip or crossfade (BS.1534-3: 5 ms; 240 frames at 48 kHz)."""


class SynchronisedEngine(Engine):
    """Runs ``chains`` at once on a stream's audio thread; the output selects one.

    Parameters
    ----------
    stream_factory : callable
        As for :class:`~rtq.live.engine.LiveEngine`.
    chains : list of Chain
        Prepared here (no meter taps); slot ``k`` plays ``chains[k]``.
    samplerate, channels, blocksize : stream format
    source : Source
        What plays through the chains (:class:`~rtq.live.sources.Source`): the device
        input, or a buffer (a file) played between its loop points; a tone or noise too.
    switch : str
        A key of :data:`SWITCHES`.
    gains : sequence of float, optional
        Linear gain of each slot's output (level matching); default 1.
    loop : (int, int), optional
        Loop points of a buffer source, in frames (default: the whole buffer).

    Notes
    -----
    Until :meth:`select` names a slot the output is silent; with a buffer source the
    playhead waits at the loop start, so the first sound is the loop's beginning.
    Real-time rules as for :class:`~rtq.live.engine.LiveEngine`: only the constructor
    allocates; the controls write words the callback reads at its next block.
    """

    def __init__(self, stream_factory, chains, *, samplerate: float, channels: int, blocksize: int,
                 source: Source | None = None, switch: str = "dip", gains=None, loop: tuple[int, int] | None = None,
                 fade_ms: float = FADE_MS):
        if switch not in SWITCHES:
            raise ValueError(f"switch must be one of {', '.join(SWITCHES)}, got {switch!r}")
        if not chains:
            raise ValueError("a synchronised engine needs at least one chain")
        self._format(samplerate, channels, blocksize)
        source = self._checked_source(source)
        for chain in chains:
            chain.prepare(self.samplerate, self.channels, self.max_block)
        self.chains = list(chains)
        self.align = max(chain.latency_samples for chain in chains)
        if self.align > MAX_ALIGN:
            raise ValueError(f"chain latency {self.align} exceeds the {MAX_ALIGN} samples the engine can align")
        self.fade = max(1, int(round(fade_ms * 1e-3 * self.samplerate)))
        self._open(stream_factory, source=source, slots=len(chains), mixer=MIXER_SELECT, fade=self.fade)
        for k, chain in enumerate(chains):
            self._install(k, chain, self.align - chain.latency_samples)
        if gains is not None:
            self.gains[:] = gains
        self.eng[DRY_DELAY] = self.align
        self.eng[SWITCH] = SWITCHES[switch]
        self.eng[WANT] = self.eng[CURRENT] = -1
        self.eng[JUMP_LAST] = self.align      # the first input is heard at frame D: rise there
        self.eng[JUMP_PREV] = -NEVER
        if self.eng[SOURCE] == SOURCE_BUFFER:
            self.eng[HOLDS] = self.eng[FROZEN] = 1
            start, end = (0, len(self.source)) if loop is None else self._checked_loop(*loop)
            self.eng[LOOP_START] = self.eng[SOURCE_POS] = self.eng[JUMP_FROM] = self.eng[JUMP_TO] = start
            self.eng[LOOP_END] = end
            self.eng[NEXT_JUMP] = end - start
        else:
            self.eng[NEXT_JUMP] = NEVER
        self._initial = (self.eng.copy(), self.fctl.copy(), self.noise.copy())
        self._events_read = 0
        self._history: list[tuple[int, int]] = []    # (stream frame, slot) changes, oldest first

    def _checked_loop(self, start: int, end: int) -> tuple[int, int]:
        start, end = int(start), int(end)
        if not 0 <= start < end <= len(self.source):
            raise ValueError(f"loop [{start}, {end}) must lie within the source's {len(self.source)} frames")
        if end - start < 4 * self.fade + 2 * self.align:
            raise ValueError(f"loop of {end - start} frames is too short for its dips")
        return start, end

    # -- control ---------------------------------------------------------------
    def select(self, slot: int | None) -> None:
        """Play slot ``slot`` (None: silence) from the next block on, with the switch shape."""
        self.eng[WANT] = -1 if slot is None else int(slot)

    @property
    def wanted(self) -> int | None:
        """The slot last asked for (None: silence)."""
        return None if self.eng[WANT] < 0 else int(self.eng[WANT])

    @property
    def loop(self) -> tuple[int, int]:
        """The buffer source's loop points, in frames ``[start, end)``; set them to move
        them (applied at the next block; the jump back dips like every other).  Points
        set but not yet applied (the playhead is held while nothing is selected) read as
        set: what the listener chose, for the screen and the log."""
        if self.eng[LOOP_REQUEST] != self.eng[LOOP_SEEN]:
            return int(self.eng[PENDING_START]), int(self.eng[PENDING_END])
        return int(self.eng[LOOP_START]), int(self.eng[LOOP_END])

    @loop.setter
    def loop(self, points: tuple[int, int]) -> None:
        if self.eng[SOURCE] != SOURCE_BUFFER:
            raise ValueError("only a buffer source has loop points")
        start, end = self._checked_loop(*points)
        self._wait(lambda: self.eng[LOOP_REQUEST] == self.eng[LOOP_SEEN])
        self.eng[PENDING_START] = start
        self.eng[PENDING_END] = end
        self.eng[LOOP_REQUEST] += 1          # publishes the points (stored before it)

    def settled(self) -> bool:
        """No change is being played: the selection is heard at full gain (or silence is)."""
        return self.eng[PHASE] == PHASE_IDLE and self.eng[CURRENT] == self.eng[WANT]

    def wait_settled(self, timeout: float = 2.0) -> None:
        """Wait until :meth:`settled` (the stream must be running)."""
        self._wait(self.settled, timeout)

    def _wait(self, done, timeout: float = 2.0) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if not self.stream.running:
                return
            if time.monotonic() > deadline:
                raise TimeoutError("the audio thread did not take the change")
            time.sleep(0.002)

    def rewind(self) -> None:
        """Back to the state the constructor left (stream stopped): every chain reset,
        rings cleared, the playhead at the loop start, nothing selected."""
        if self.stream.running:
            raise RuntimeError("rewind() needs the stream stopped")
        for chain in self.chains:
            chain.reset()
        eng, fctl, noise = self._initial
        self.eng[:] = eng
        self.fctl[:] = fctl
        self.noise[:] = noise
        self.rings[:] = 0.0
        self.wet[:] = 0.0
        self.events[:] = 0
        self._events_read = 0
        self._history = []

    # -- status -----------------------------------------------------------------
    @property
    def frozen(self) -> bool:
        """The playhead is held (paused, or before the first selection)."""
        return bool(self.eng[FROZEN])

    @property
    def stream_frames(self) -> int:
        """Stream frames since the start (paused ones too): the clock of :meth:`history`."""
        return int(self.eng[OUT_FRAMES])

    @property
    def position(self) -> int:
        """Frame of the source buffer heard now (the playhead; 0 for other sources)."""
        if self.eng[SOURCE] != SOURCE_BUFFER:
            return 0
        frames, jump = int(self.eng[FRAMES]), int(self.eng[JUMP_LAST])
        if frames >= jump:
            return int(self.eng[JUMP_TO]) + frames - jump
        return max(int(self.eng[JUMP_FROM]) - (jump - frames), int(self.eng[LOOP_START]))

    def history(self) -> list[tuple[int, int]]:
        """Every change of what is heard, oldest first: ``(stream frame, slot)`` with slot
        -1 for silence.  A dip's change is at its bottom, a crossfade's at its start."""
        count = int(self.eng[EVENT_COUNT])
        first = max(self._events_read, count - len(self.events))
        for k in range(first, count):
            frame, slot = self.events[k % len(self.events)]
            self._history.append((int(frame), int(slot)))
        self._events_read = count
        return list(self._history)
