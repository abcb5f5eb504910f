"""A comparison: the conditions of one listening-test item, all running at once.

Every condition's chain processes the same input in the same compiled callback
(:class:`~rtq.live.synchronised.SynchronisedEngine`), aligned to the largest latency
among them; the output plays the selected one.  So a switch never prepares, restarts or
re-seeds anything and the playhead never jumps: after a switch the listener hears what
that chain has been producing all along.  :class:`rtq.listen.AbxTest` and
:class:`rtq.listen.MushraTest` drive one; a host can too.
"""
from __future__ import annotations

import time

import numpy as np

from ..chain import Chain
from ..errors import RtqError, UsageError
from ..spec import PresetSpec
from ..live.callback import HIST_ADDR, HIST_BINS, HIST_LEN, IN_CHANNELS, LAST_DURATION_NS
from ..live.session import choose_stream
from ..live.sources import DEVICE, Source
from ..live.synchronised import SWITCHES, SynchronisedEngine
from .level import level_matched, linear, stand_in

ORIGINAL = "original"
"""The condition name of the unprocessed input (an empty chain)."""
MAX_LOAD = 0.70
"""The largest callback cost, as a fraction of real time, a comparison may need live."""
MIN_LOOP_SECONDS = 0.5
_MEASURE_SECONDS = 0.15     # wall time spent measuring the callback's cost, at most


class TooHeavy(RtqError):
    """The conditions together need more of real time than :data:`MAX_LOAD`."""

    def __init__(self, message: str, cost: float, costs: dict[str, float]):
        super().__init__(message)
        self.cost = cost
        self.costs = costs


class Comparison:
    """The conditions of one item over one stream, synchronised.

    Parameters
    ----------
    conditions : dict
        Name -> :class:`~rtq.chain.Chain`, :class:`~rtq.spec.PresetSpec`, or None for the
        unprocessed input (``original``).  Chains are prepared here.
    source : str, os.PathLike or numpy.ndarray
        An audio file (played in a loop), ``"live"`` (the sound card's input), or samples
        ``(frames, channels)`` at ``samplerate``.
    samplerate : float, optional
        The stream's rate: default the file's (for ``live``, the output device's).
    channels, blocksize, device : stream format and device (``blocksize`` 0: the host's
        choice; ``device`` an index or name, None: the default).
    switch : str
        ``dip`` (ITU-R BS.1534-3), ``crossfade`` or ``cut`` (:data:`~rtq.live.synchronised.SWITCHES`).
    level_match : bool
        Loudness-match every condition to ``reference`` (ITU-R BS.1770, over the loop
        region; :mod:`rtq.listen.level`).
    reference : str, optional
        The condition whose loudness the others match (default ``original`` if present,
        else the first).
    loop : (float, float), optional
        Loop points in seconds (default: the whole file), at least 0.5 s apart.
    stream : callable, optional
        A stream factory (``factory(callback, user_words)``), for tests and hosts; default
        a sound card if one is found, else the silent real-time null stream.
    seed : int, optional
        Dither seed for conditions given as presets (chains keep their own).
    max_load : float
        Refuse (:class:`TooHeavy`) when the measured callback cost exceeds it.

    Notes
    -----
    Nothing plays until :meth:`select` names a condition; with a file the playhead waits
    at the loop start.  Controls may be called from any one thread at a time; each
    writes a word the audio thread reads at its next block (no locks).
    """

    def __init__(self, conditions, source, *, samplerate=None, channels: int = 2, blocksize: int = 0,
                 device=None, switch: str = "dip", level_match: bool = True, reference: str | None = None,
                 loop=None, stream=None, seed: int | None = None, max_load: float = MAX_LOAD):
        if not conditions:
            raise ValueError("a comparison needs at least one condition")
        if switch not in SWITCHES:
            raise ValueError(f"switch must be one of {', '.join(SWITCHES)}, got {switch!r}")
        self.names: tuple[str, ...] = tuple(conditions)
        self.presets: dict[str, PresetSpec | None] = {
            name: value if isinstance(value, PresetSpec) else None for name, value in conditions.items()}
        chains = [condition_chain(name, value, seed) for name, value in conditions.items()]
        self.reference = reference if reference is not None else (ORIGINAL if ORIGINAL in self.names
                                                                   else self.names[0])
        if self.reference not in self.names:
            raise ValueError(f"reference {self.reference!r} is not one of the conditions ({', '.join(self.names)})")
        item = _item(source, samplerate)
        self.live_input = item.kind == DEVICE
        if stream is None:
            choice = choose_stream(item, channels, samplerate, blocksize, "low", device, None, None)
            if self.live_input and not choice.on_device:
                raise UsageError("the test plays the sound card's input (`live`), but no audio device was found")
            stream, samplerate = choice.factory, choice.samplerate
        self.samplerate = float(samplerate or item.samplerate or 48000.0)
        self.channels = int(channels)
        item = item.for_channels(self.channels)
        item.check_rate(self.samplerate)
        data = item.data
        if data is not None:
            self._frames = len(data)
            start, end = self._loop_frames(loop if loop is not None else (0.0, len(data) / self.samplerate))
        elif loop is not None:
            raise ValueError("the live input has no loop points")
        # Level matching, offline, through the same chains: over the loop region, or for
        # the live input a stand-in (rtq.listen.level.stand_in).
        if level_match:
            region = data[start:end] if data is not None else stand_in(self.samplerate, self.channels)
            _, self.gains_db, self.loudness_lufs = level_matched(
                dict(zip(self.names, chains)), region, self.samplerate, self.reference, True,
                "the live input's stand-in" if data is None else "the loop region")
        else:
            self.gains_db, self.loudness_lufs = {name: 0.0 for name in self.names}, {}
        self.engine = SynchronisedEngine(
            stream, chains, samplerate=self.samplerate, channels=self.channels,
            blocksize=blocksize, source=item, switch=switch,
            gains=[linear(self.gains_db[name]) for name in self.names],
            loop=None if data is None else (start, end))
        self.switch = switch
        self.chains = dict(zip(self.names, chains))
        self.latency: int = self.engine.align
        try:
            self.callback_cost, self.condition_costs = self._measure()
            if self.callback_cost > max_load:
                raise self._too_heavy(max_load)
        except BaseException:
            self.engine.close()
            raise
        self._resume: str | None = None
        self._started = False

    # -- set-up ---------------------------------------------------------------------
    def _loop_frames(self, loop) -> tuple[int, int]:
        try:
            start_s, end_s = (float(v) for v in loop)
        except (TypeError, ValueError):
            raise ValueError(f"loop must be (start, end) in seconds, got {loop!r}") from None
        start, end = round(start_s * self.samplerate), round(end_s * self.samplerate)
        if not (np.isfinite(start_s) and np.isfinite(end_s) and 0 <= start and end <= self._frames):
            raise ValueError(f"loop [{start_s:g}, {end_s:g}] s must lie within the item's "
                             f"{self._frames / self.samplerate:g} s")
        if end - start < MIN_LOOP_SECONDS * self.samplerate:
            raise ValueError(f"loop [{start_s:g}, {end_s:g}] s is shorter than {MIN_LOOP_SECONDS:g} s")
        return start, end

    def _measure(self) -> tuple[float, dict[str, float]]:
        """The callback's cost per block, as a fraction of the block's period: the median
        over blocks of the real callback on the real arrays (then everything is rewound:
        the test starts from a fresh state); and each condition's chain alone."""
        engine = self.engine
        stream = engine.stream
        n = int(getattr(stream, "blocksize", 0) or engine.max_block)
        period = n / self.samplerate
        ctl = stream.ctl.copy()
        hist = np.zeros(HIST_BINS, np.int64)
        ctl[HIST_ADDR], ctl[HIST_LEN] = hist.ctypes.data, hist.size
        inp = np.zeros((n, max(int(ctl[IN_CHANNELS]), 1)), np.float32)
        out = np.zeros((n, self.channels), np.float32)
        call = stream._callback.ctypes
        engine.select(0)
        durations = []
        deadline = time.perf_counter() + _MEASURE_SECONDS
        for k in range(203):
            call(inp.ctypes.data, out.ctypes.data, n, 0, 0, ctl.ctypes.data)
            if k >= 3:      # the first blocks fault caches in
                durations.append(int(ctl[LAST_DURATION_NS]))
            if k >= 13 and time.perf_counter() > deadline:
                break
        block = np.zeros((n, self.channels))
        costs = {}
        for name, chain in self.chains.items():
            times = []
            for k in range(8):
                started = time.perf_counter_ns()
                chain.process(block)
                times.append(time.perf_counter_ns() - started)
            costs[name] = float(np.median(times[2:])) * 1e-9 / period
        engine.rewind()
        return float(np.median(durations)) * 1e-9 / period, costs

    def stream_info(self) -> dict:
        """What this comparison plays through, for the log: the devices opened (None for
        rtq's built-in silent output), the frames per callback asked of the host (0: the
        host's choice, e.g. JACK's period) and the output latency the host reported."""
        stream = self.engine.stream
        devices = stream.devices
        return {
            "devices": None if devices is None else {
                "input": None if devices[0] is None else devices[0].describe(), "output": devices[1].describe()},
            "blocksize": int(stream.blocksize), "output_latency_s": float(stream.latency[1])}

    def _too_heavy(self, limit: float) -> TooHeavy:
        heaviest = sorted(self.condition_costs.items(), key=lambda item: -item[1])[:3]
        named = ", ".join(f"{name} {cost * 100:.0f} %" for name, cost in heaviest)
        n = int(getattr(self.engine.stream, "blocksize", 0) or self.engine.max_block)
        return TooHeavy(f"these {len(self.names)} conditions need {self.callback_cost * 100:.0f} % of real time "
                        f"(measured per {n}-frame block on this machine; at most {limit * 100:.0f} % plays "
                        f"reliably), heaviest: {named}; render them with `rtq listen export TEST.yaml DIR` and "
                        "play the stimuli instead", self.callback_cost, dict(self.condition_costs))

    # -- control ----------------------------------------------------------------------
    def select(self, name: str | None) -> None:
        """Play condition ``name`` from the next block on, switching with the comparison's
        shape; None dips to silence and pauses (a file's playhead waits)."""
        if name is not None and name not in self.names:
            raise ValueError(f"no condition {name!r} (conditions: {', '.join(self.names)})")
        self._resume = None
        self.engine.select(None if name is None else self.names.index(name))

    @property
    def selected(self) -> str | None:
        """The condition playing (or switched to); None: silence or paused."""
        slot = self.engine.wanted
        return None if slot is None else self.names[slot]

    def start(self) -> None:
        """Start the stream; after :meth:`pause`, resume the condition that was playing."""
        if not self._started:
            self.engine.start()
            self._started = True
        if self._resume is not None:
            name, self._resume = self._resume, None
            self.select(name)

    def pause(self) -> None:
        """Dip to silence and hold the playhead (a file's; the stream runs on, silent);
        :meth:`start` resumes the condition that was playing."""
        resume = self.selected
        self.select(None)
        self._resume = resume

    def close(self) -> None:
        self.engine.close()

    def __enter__(self) -> "Comparison":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def loop(self) -> tuple[float, float]:
        """Loop points in seconds; setting them takes effect at the next block (the jump
        back dips like a switch)."""
        start, end = self.engine.loop
        return start / self.samplerate, end / self.samplerate

    @loop.setter
    def loop(self, seconds) -> None:
        if self.live_input:
            raise ValueError("the live input has no loop points")
        self.engine.loop = self._loop_frames(seconds)

    @property
    def position(self) -> float:
        """Seconds into the item of what is heard now (the playhead)."""
        return self.engine.position / self.samplerate

    @property
    def frames(self) -> int:
        """Stream frames output since the start (paused ones too): the clock of
        :attr:`played`; monotonic, readable from the control thread."""
        return self.engine.stream_frames

    @property
    def played(self) -> list[tuple[str, int, int]]:
        """What was heard: ``(condition, first frame, frames)`` in order (stream frames
        since the start; a dip's change counts from its bottom, a crossfade's from its
        start); the last entry runs to now."""
        changes = self.engine.history() + [(self.engine.stream_frames, -1)]
        return [(self.names[slot], frame, following - frame)
                for (frame, slot), (following, _) in zip(changes, changes[1:]) if slot >= 0]


def condition_chain(name: str, value, seed: int | None = None) -> Chain:
    """The chain of condition ``name``: ``value`` itself (a Chain), a PresetSpec's chain
    (with ``seed``, else the preset's), or for None an empty chain (``original``)."""
    if value is None:
        return Chain([], name=ORIGINAL)
    if isinstance(value, Chain):
        return value
    if isinstance(value, PresetSpec):
        return Chain.from_spec(value, seed)
    raise TypeError(f"condition {name!r} must be a Chain, a PresetSpec or None, got {type(value).__name__}")


def _item(source, samplerate) -> Source:
    """The item: a file, samples at ``samplerate``, or the sound card's input (``live``)."""
    if isinstance(source, str) and source == "live":
        return Source.device()
    if isinstance(source, np.ndarray):
        if samplerate is None:
            raise ValueError("samples given as an array need a samplerate")
        return Source.buffer(source, samplerate)
    return Source.file(source)
