"""Between the server's event loop and the main thread, which owns the session or the
test driver (their controls are for one thread at a time).

Commands go one way, through a short bounded queue: the server thread submits a checked
message and awaits its reply; the main thread runs it (:meth:`Hub.drain`) between meter
updates or while the listener thinks.  A message that finds the queue full is refused at
once ("busy"), so a flood of messages costs the main thread nothing beyond the ones it
runs, and the audio thread nothing at all (it never waits for Python).

Updates go the other way: :meth:`Hub.publish` hands a topic's newest JSON text to the
event loop, which sends it to every page; a page that reads slowly gets only the newest
text of each topic, never a growing backlog.
"""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import json
import queue

PENDING = 8                 # commands waiting for the main thread, at most
REPLIES = 256               # replies waiting for a slow page, at most (the oldest go)


class Busy(Exception):
    """The command queue is full."""


class Client:
    """One page's WebSocket: what waits to be sent to it (replies in order, and the
    newest text of each topic)."""

    def __init__(self, websocket):
        self.websocket = websocket
        self._replies: collections.deque[str] = collections.deque(maxlen=REPLIES)
        self._topics: dict[str, str] = {}
        self._wake = asyncio.Event()
        self.closing: str | None = None

    def post(self, topic: str, text: str) -> None:
        self._topics[topic] = text
        self._wake.set()

    def reply(self, text: str) -> None:
        self._replies.append(text)
        self._wake.set()

    def close(self, reason: str) -> None:
        """Send ``reason`` (topic ``closed``), then close."""
        self.closing = reason
        self._wake.set()

    async def send_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._replies:
                await self.websocket.send_text(self._replies.popleft())
            while self._topics:
                topic = next(iter(self._topics))
                await self.websocket.send_text(self._topics.pop(topic))
            if self.closing is not None:
                await self.websocket.send_text(json.dumps({"topic": "closed", "message": self.closing}))
                await self.websocket.close(1000)
                return


class Hub:
    """Commands in, updates out.  ``exclusive``: one page at a time (a listening test:
    the newest page takes over, the older one is told and closed)."""

    def __init__(self, *, exclusive: bool = False, pending: int = PENDING):
        self.exclusive = exclusive
        self.pending = pending
        self._commands: queue.Queue = queue.Queue(maxsize=pending)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clients: list[Client] = []
        self._latest: dict[str, str] = {}

    # -- the event loop's side -------------------------------------------------------------

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Called on the loop when the server starts: from now on :meth:`publish` goes
        through it."""
        self._loop = loop

    def connect(self, client: Client) -> None:
        if self.exclusive:
            for other in self._clients:
                other.close("this page was opened again elsewhere; this copy no longer answers")
            self._clients.clear()
        self._clients.append(client)
        for topic, text in self._latest.items():
            client.post(topic, text)

    def disconnect(self, client: Client) -> None:
        if client in self._clients:
            self._clients.remove(client)

    def current(self, client: Client) -> bool:
        """Whether ``client`` may still act (not replaced by a newer page)."""
        return client in self._clients

    def submit(self, command: dict) -> asyncio.Future:
        """Queue ``command`` for the main thread; the future gives its reply (or raises
        what the command raised).  :class:`Busy` if the queue is full."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        try:
            self._commands.put_nowait((command, future))
        except queue.Full:
            raise Busy() from None
        return asyncio.wrap_future(future)

    def _post(self, topic: str, text: str) -> None:
        self._latest[topic] = text
        for client in self._clients:
            client.post(topic, text)

    # -- the main thread's side ------------------------------------------------------------

    def publish(self, topic: str, data: dict) -> None:
        """Send ``data`` (plain JSON data) to every page as topic ``topic``, and to pages
        that connect later (the newest of each topic is kept)."""
        text = json.dumps({"topic": topic, **data}, allow_nan=False, separators=(",", ":"))
        if self._loop is None:
            self._latest[topic] = text          # before the server runs: no other thread yet
        else:
            try:
                self._loop.call_soon_threadsafe(self._post, topic, text)
            except RuntimeError:                # the loop has closed: the server is stopping
                pass

    def drain(self, handle, timeout: float = 0.0) -> int:
        """Run the waiting commands through ``handle(command) -> reply text`` on this
        thread, waiting up to ``timeout`` seconds for the first; returns how many ran.
        At most a queue's worth (``pending``) per call: under a flood the queue refills as
        fast as it empties, and the caller's own work (the meter's updates, the end of
        ``--duration``) must still come round."""
        ran = 0
        while ran < self.pending:
            try:
                command, future = self._commands.get(timeout=timeout) if timeout and not ran \
                    else self._commands.get_nowait()
            except queue.Empty:
                return ran
            ran += 1
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(handle(command))
            except Exception as err:     # the reply carries it to the page
                future.set_exception(err)
        return ran
