"""What the ABX and MUSHRA drivers share: the log and its commitment, resuming, and the
:class:`~rtq.listen.comparison.Comparison` of each item.

A driver never prints and never reads keys: a host, a scripted listener or the terminal
UI (:mod:`rtq.ui.listen`) calls its methods.
"""
from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from pathlib import Path

from rtq.errors import UsageError

from . import log as logfile
from .testfile import LIVE, MIN_LOOP_SECONDS, ListeningTest, preset_yaml

RTQ_VERSION_UNKNOWN = "unknown"


def now() -> str:
    """The time as logged: UTC, ISO 8601, milliseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def rtq_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rtq")
    except PackageNotFoundError:
        return RTQ_VERSION_UNKNOWN


def default_log_path(test: ListeningTest, listener: str) -> Path:
    """``NAME-LISTENER-YYYYmmddTHHMMSSZ.jsonl`` in the current folder."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in f"{test.name}-{listener}")
    return Path(f"{safe}-{stamp}.jsonl")


def header_record(test: ListeningTest, *, listener: str, practice: bool, device, blocksize: int,
                  commitment: str) -> dict:
    """The log's first record: what was tested, with what, by whom, and the commitment."""
    conditions = []
    for condition in test.conditions:
        text = None if condition.preset is None else preset_yaml(condition.preset)
        conditions.append({
            "name": condition.name, "source": condition.source, "role": condition.role,
            "file": None if condition.preset is None else os.path.abspath(condition.preset.source),
            "yaml": text, "sha256": None if text is None else logfile.sha256_text(text)})
    items = []
    for item in test.items:
        items.append({"input": item.input if item.input == LIVE else os.path.abspath(item.input),
                      "sha256": None if item.input == LIVE else logfile.sha256_file(item.input),
                      "loop": None if item.loop is None else list(item.loop)})
    return {
        "record": "header", "format": logfile.FORMAT, "rtq": rtq_version(),
        "test": {"path": os.path.abspath(test.path), "sha256": test.sha256, "text": test.text},
        "name": test.name, "type": test.type, "practice": practice,
        "trials": test.trials if test.is_abx else len(test.items),
        "sequential": test.sequential and test.is_abx and not practice,
        "seed": test.seed, "switch": test.switch, "level_match": test.level_match,
        "items": items, "conditions": conditions,
        "device": None if device is None else str(device), "blocksize": blocksize,
        "listener": listener, "time": now(), "commitment": commitment,
    }


class Driver:
    """The part of a test every type shares.  Subclasses draw the assignments
    (:meth:`_draw`), restore their progress from a log (:meth:`_restore`) and compute
    their results (:meth:`_results`).

    Parameters
    ----------
    test : ListeningTest
    listener : str
        Who listens (logged).
    log : path, optional
        The log to write (never an existing file); default
        ``NAME-LISTENER-TIME.jsonl`` in the current folder.
    practice : bool
        Unscored: each answer is told right after it.
    resume : path, optional
        Continue this interrupted log instead (same test file, same assignments).
    device, blocksize
        For the Comparison (see :mod:`rtq.listen.comparison`).
    comparison : callable, optional
        Builds each item's Comparison; called as ``Comparison`` is (default:
        :class:`rtq.listen.comparison.Comparison`).
    """

    reference_name = "A"

    def __init__(self, test: ListeningTest, *, listener: str = "", log=None, practice: bool = False,
                 resume=None, device=None, blocksize: int = 0, comparison=None):
        self.test = test
        self.device = device
        self.blocksize = blocksize
        self._factory = comparison
        self.comparison = None
        self._item = None
        self._segments: list[tuple[str | None, int]] = []   # (label, stream frame) of each change since
        self._paused_label: str | None = None                # the trial began; None = silence
        self._started = time.monotonic()
        self.results: dict | None = None
        if resume is not None:
            self._log, records = self._reopen(resume, listener)
            self._restore(records)
            self._log.write({"record": "resume", "time": now(), "completed": self._completed()})
        else:
            self.listener = listener
            self.practice = practice
            self.nonce = logfile.new_nonce()
            self.assignments = self._draw()
            self.commitment = logfile.commitment(self.nonce, self.assignments)
            path = Path(log) if log is not None else default_log_path(test, listener or "listener")
            self._log = logfile.LogWriter.create(path)
        try:
            if resume is None:
                logfile.store_secret(self.commitment, self.nonce, self.assignments)
                self._log.write(header_record(test, listener=listener, practice=practice, device=device,
                                              blocksize=blocksize, commitment=self.commitment))
            self._continue()
        except BaseException:
            # A test that could not start (a comparison too heavy to play, no device)
            # leaves no log; a resumed one keeps its log (the attempt recorded in it).
            self._close_comparison()
            self._log.close()
            if resume is None:
                os.unlink(self._log.path)
                logfile.drop_secret(self.commitment)
            raise

    # -- the log -------------------------------------------------------------------------

    @property
    def log_path(self) -> Path:
        return self._log.path

    def _reopen(self, path, listener: str):
        from .verification import check_records

        lines, _ = logfile.read_lines(path, allow_unfinished=True)
        header, _, final = check_records(path, lines)
        if header["test"]["sha256"] != self.test.sha256:
            raise UsageError(f"{path} is a log of another test file (or of another version of "
                             f"{self.test.path}: its SHA-256 differs)")
        if final is not None:
            raise UsageError(f"{path}: the test is complete; there is nothing to resume")
        if listener and listener != header["listener"]:
            raise UsageError(f"{path} is {header['listener']!r}'s test, not {listener!r}'s")
        self.listener = header["listener"]
        self.practice = header["practice"]
        self.commitment = header["commitment"]
        self.nonce, self.assignments = logfile.load_secret(self.commitment, path)
        writer = logfile.LogWriter.reopen(path, lines[-1].record["hash"], len(lines), lines[-1].end)
        return writer, [line.record for line in lines[1:]]

    def _finish(self) -> None:
        """Write the final record (the reveal and the results) and forget the secret."""
        self.results = self._results()
        self._log.write({"record": "final", "time": now(), "nonce": self.nonce,
                         "assignments": self.assignments, "results": self.results})
        logfile.drop_secret(self.commitment)
        if self.comparison is not None:
            self.comparison.select(None)

    @property
    def done(self) -> bool:
        return self.results is not None

    # -- the comparison of an item --------------------------------------------------------

    def _open_item(self, index: int) -> None:
        """Make item ``index``'s Comparison the one playing (built on first use)."""
        if self._item == index:
            return
        self._close_comparison()
        item = self.test.items[index]
        factory = self._factory
        if factory is None:
            from .comparison import Comparison as factory
        self.comparison = factory({condition.name: condition.preset for condition in self.test.conditions},
                                  item.input, seed=self.test.seed, blocksize=self.blocksize, device=self.device,
                                  switch=self.test.switch, level_match=self.test.level_match,
                                  reference=self.reference_name, loop=item.loop)
        self._item = index
        self._log.write({
            "record": "item", "item": index, "time": now(),
            "samplerate": self.comparison.samplerate, **self.comparison.stream_info(),
            "latency": self.comparison.latency, "callback_cost": self.comparison.callback_cost,
            "gains_db": dict(self.comparison.gains_db), "loudness_lufs": dict(self.comparison.loudness_lufs)})
        self.comparison.start()

    def _close_comparison(self) -> None:
        if self.comparison is not None:
            self.comparison.close()
            self.comparison = None
            self._item = None

    def _select(self, label: str | None, condition: str | None) -> None:
        """Play ``condition`` (None: silence) for the listener's ``label``, remembered for the log."""
        if self.done:
            raise RuntimeError("the test has ended")
        self.comparison.select(condition)
        self._paused_label = None
        self._segments.append((label, self.comparison.frames))

    def _begin(self) -> None:
        """Start a trial (or item): silence, and a new account of what is played."""
        self._select(None, None)
        self._segments = []
        self._elapsed()

    def _played(self) -> list:
        """``[[label, seconds], ...]`` since the trial (or item) began, in order, timed in
        stream frames from each change to the next (silence and pauses left out)."""
        ends = [frame for _, frame in self._segments[1:]] + [self.comparison.frames]
        rate = self.comparison.samplerate
        return [[label, round((end - start) / rate, 3)]
                for (label, start), end in zip(self._segments, ends) if label is not None]

    @property
    def loop(self) -> tuple[float, float]:
        """The loop points of the item playing (seconds); settable (at least 0.5 s apart)."""
        return self.comparison.loop

    @loop.setter
    def loop(self, points) -> None:
        start, end = (float(points[0]), float(points[1]))
        if not (0 <= start and end - start >= MIN_LOOP_SECONDS):
            raise ValueError(f"loop points must be at least {MIN_LOOP_SECONDS} s apart from 0 s on, "
                             f"got {start:g} to {end:g}")
        self.comparison.loop = (start, end)

    def pause(self) -> None:
        """Silence, holding the playhead; :meth:`resume_playing` goes on with what played."""
        label = self._segments[-1][0] if self._segments else None
        self.comparison.pause()
        self._segments.append((None, self.comparison.frames))
        self._paused_label = label

    def resume_playing(self) -> None:
        self.comparison.start()
        if self._paused_label is not None:
            self._segments.append((self._paused_label, self.comparison.frames))
            self._paused_label = None

    def _elapsed(self) -> float:
        """Seconds since the trial (or item) began; restarts the count."""
        now_s = time.monotonic()
        elapsed, self._started = now_s - self._started, now_s
        return round(elapsed, 3)

    # -- life cycle -----------------------------------------------------------------------

    def close(self) -> None:
        """Stop playing and close the log (an unfinished test stays resumable)."""
        self._close_comparison()
        self._log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- what each type says ---------------------------------------------------------------

    def _draw(self):
        raise NotImplementedError

    def _continue(self) -> None:
        """Begin the next trial (or item), or finish the test when none is left."""
        raise NotImplementedError

    def _restore(self, records: list[dict]) -> None:
        raise NotImplementedError

    def _completed(self) -> int:
        raise NotImplementedError

    def _results(self) -> dict:
        raise NotImplementedError
