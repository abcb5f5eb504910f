"""The hub between the server's event loop and the main thread, without a server."""
from __future__ import annotations

import asyncio

from rtq.web.hub import Busy, Hub


def test_a_drain_runs_at_most_a_queue_worth_even_as_it_refills():
    """Under a flood the queue refills as fast as the main thread empties it; a drain
    still returns after a queue's worth, so the meter's updates (and the end of
    --duration) come round between floods of messages."""
    async def flood():
        hub = Hub(pending=4)
        ran = []

        def handle(command):
            ran.append(command["n"])
            if len(ran) < 20:
                hub.submit({"n": command["n"] + 4})       # another arrives as one runs
            return "ok"

        futures = [hub.submit({"n": n}) for n in range(4)]
        try:
            hub.submit({"n": 99})
            raise AssertionError("a full queue took a fifth command")
        except Busy:
            pass
        assert hub.drain(handle) == 4 and ran == [0, 1, 2, 3]
        assert [await f for f in futures] == ["ok"] * 4
        assert hub.drain(handle) == 4 and ran[4:] == [4, 5, 6, 7]

    asyncio.run(flood())
