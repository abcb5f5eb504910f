"""The listening-test page (``rtq listen TEST.yaml --web``): ABX, ABXY and MUSHRA for a
listener at a browser, perhaps on a phone in another room.

The page is a face of the test driver as the terminal is: its messages are the
terminal's actions (:data:`rtq.ui.listen.ABX_KEYS`, :data:`~rtq.ui.listen.MUSHRA_KEYS`),
run by the same :class:`~rtq.ui.listen.ListenControls` on the main thread, plus a rating
set by a slider and loop points dragged on the waveform.  So the test, the log and the
statistics are the terminal's.

What a page is sent is a whitelist (:meth:`ListenSite.state`): where the test is, what
the listener chose to play, the listener's own ratings, the loop.  Never the
assignments, the log or a score: the results and the log's name come in the state once
the test has ended.  One page at a time answers (the newest: a reload, or the listener
moving to another device); an older one is told and closed.
"""
from __future__ import annotations

import os
import time

import numpy as np

from rtq.listen.mushra import RATING_RANGE
from rtq.listen.scoring import result_lines
from rtq.listen.testfile import LIVE
from rtq.schema import Fields, Integer, Number

from .hub import Hub

WAVEFORM_COLUMNS = 800
POSITION_S = 0.1            # the playhead is sent this often
STATUS_S = 8.0              # as on the terminal
LINGER_S = 1.5              # after the end, the page has this long to get the results
BLOCK = 65536


def waveform(path, columns: int = WAVEFORM_COLUMNS) -> dict:
    """The envelope of an audio file (all channels): ``min`` and ``max`` per column,
    read in blocks (memory does not grow with the file), and its ``duration``."""
    import soundfile as sf

    with sf.SoundFile(path) as f:
        frames, rate = f.frames, f.samplerate
        columns = max(1, min(columns, frames))
        lo = np.full(columns, np.inf)
        hi = np.full(columns, -np.inf)
        first = 0
        for block in f.blocks(BLOCK, dtype="float32", always_2d=True):
            cols = (np.arange(first, first + len(block), dtype=np.int64) * columns) // max(frames, 1)
            starts = np.concatenate([[0], np.flatnonzero(np.diff(cols)) + 1])
            np.minimum.at(lo, cols[starts], np.minimum.reduceat(block.min(axis=1), starts))
            np.maximum.at(hi, cols[starts], np.maximum.reduceat(block.max(axis=1), starts))
            first += len(block)
    empty = ~np.isfinite(lo)
    lo[empty] = hi[empty] = 0.0
    return {"duration": frames / rate, "min": np.round(lo, 4).tolist(), "max": np.round(hi, 4).tolist()}


class ListenSite:
    """The page of one test driver (:class:`~rtq.listen.abx.AbxTest` or
    :class:`~rtq.listen.mushra.MushraTest`); :meth:`run` serves it until the test ends."""

    page = "listen"

    def __init__(self, driver):
        from rtq.ui.listen import FIRST_RATING, ListenControls

        self.driver = driver
        self.controls = ListenControls(driver)
        self.hub = Hub(exclusive=True)
        self._item = None
        loop = Fields({"start": Number(0.0), "end": Number(0.0)})
        skipped = {"help", "quit", "type", "cycle", "rate", "slot"}       # the terminal's own, or with arguments
        self._actions = {action: Fields({}) for keys, action, _ in self.controls.keymap if action not in skipped}
        self._actions["set_loop"] = loop
        if self.controls.mushra:
            slot = Integer(0, driver.slots - 1)
            self._actions["slot"] = Fields({"slot": slot})
            self._actions["rate"] = Fields({"slot": slot, "rating": Integer(*RATING_RANGE)})
        else:
            for label in ("A", "B", "X", "Y"):
                if label not in driver.labels:
                    self._actions.pop(f"play_{label}", None)
        test = driver.test
        self.hub.publish("init", {
            "page": "listen", "type": test.type, "name": test.name, "listener": driver.listener,
            "practice": driver.practice, "keys": [[list(keys), action, text] for keys, action, text in self.controls.keymap
                                                   if action not in ("quit", "type", "cycle")],
            "rating": list(RATING_RANGE), "first_rating": FIRST_RATING, "items": len(test.items), "trials": test.trials if test.is_abx else None,
            "sequential": bool(test.is_abx and test.sequential and not driver.practice),
            "labels": list(getattr(driver, "labels", ())), "slots": getattr(driver, "slots", None)})

    def actions(self) -> dict:
        return self._actions

    # -- the main thread ---------------------------------------------------------------------

    def handle(self, command: dict) -> str:
        """Run one checked message as the terminal runs a key; returns its status line."""
        controls, action = self.controls, command["action"]
        controls.status = None
        if action == "slot":
            controls.play_slot(command["slot"])
        elif action == "rate":
            controls.rate(command["slot"], command["rating"])
        elif action == "set_loop":
            controls.set_loop(command["start"], command["end"])
        else:
            controls.act(action)
        return controls.status[0] if controls.status else "ok"

    def state(self) -> dict:
        """What the page shows: never an assignment, the log or a score before the end."""
        driver, controls, test = self.driver, self.controls, self.driver.test
        done = driver.done
        state = {"done": done, "playing": controls.playing, "paused": controls.paused,
                 "item": min(driver.item, len(test.items) - 1)}
        status = controls.status
        state["status"] = (list(status[:2]) if status is not None and time.monotonic() - status[2] < STATUS_S
                           else None)
        if done:
            state["results"] = result_lines(driver.results)
            state["log"] = os.fspath(driver.log_path)
            return state
        item = test.items[driver.item]
        state.update(loop=[round(v, 3) for v in driver.loop],
                     file_loop=None if item.loop is None else list(item.loop),
                     input="the sound card's input" if item.input == LIVE else os.path.basename(item.input))
        if controls.mushra:
            state.update(ratings=list(driver.ratings), complete=driver.complete, selected=controls.selected)
        else:
            state.update(trial=driver.trial)
        return state

    def _publish_item(self) -> None:
        index = self.driver.item
        if self.driver.done or index == self._item:
            return
        self._item = index
        item = self.driver.test.items[index]
        shape = {"duration": None} if item.input == LIVE else waveform(item.input)
        self.hub.publish("waveform", {"item": index, **shape})

    def run(self) -> None:
        """Serve the test until it ends (the page's answers drive it), then send the last
        state.  Ctrl-C (KeyboardInterrupt) leaves it resumable, as on the terminal."""
        self._publish_item()
        self.hub.publish("state", self.state())
        shown = None
        while not self.driver.done:
            self.hub.drain(self.handle, timeout=POSITION_S)
            self._publish_item()
            state = self.state()
            if state != shown:
                self.hub.publish("state", state)
                shown = state
            if not self.driver.done and self.driver.comparison is not None:
                self.hub.publish("position", {"item": self.driver.item,
                                              "seconds": round(self.driver.comparison.position, 3)})
        self.hub.publish("state", self.state())

    def linger(self) -> None:
        """After the end: serve a little longer, so the page shows the results before
        the server stops."""
        time.sleep(LINGER_S)
