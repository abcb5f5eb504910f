"""Shared fixtures: access to the JACK dummy server started by tools/test.sh.

Tests that need audio carry the ``audio`` marker (or request ``jack_server``).
Without a reachable server they are skipped, or fail when
``RTQ_REQUIRE_AUDIO=1`` (as tools/test.sh sets it, so CI cannot silently
skip them).
"""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))

from jack_server import JackServer  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "audio: needs the JACK dummy server started by tools/test.sh (fixture jack_server)"
    )


def pytest_collection_modifyitems(items):
    for item in items:
        if item.get_closest_marker("audio") and "jack_server" not in item.fixturenames:
            item.fixturenames.insert(0, "jack_server")


def _server_problem(name: str) -> str | None:
    """Why the JACK server ``name`` cannot be used by this process, or None."""
    import jack

    jack.set_error_function(lambda message: None)
    try:
        jack.Client("rtq-pytest-probe", no_start_server=True, servername=name).close()
    except jack.JackOpenError:
        return f"no JACK server {name!r} (run tools/test.sh)"
    finally:
        jack.set_error_function()
    from rtq.live.portaudio import sd   # as rtq imports it: its JACK client is "rtq"

    if not any(api["name"].startswith("JACK") for api in sd.query_hostapis()):
        return f"PortAudio does not list JACK: server {name!r} started after sounddevice was imported"
    return None


@pytest.fixture(scope="session")
def jack_server() -> str:
    """Name of the running JACK server (``$JACK_DEFAULT_SERVER``, else 'default')."""
    name = os.environ.get("JACK_DEFAULT_SERVER", "default")
    problem = _server_problem(name)
    if problem is not None:
        if os.environ.get("RTQ_REQUIRE_AUDIO") == "1":
            pytest.fail(problem + " and RTQ_REQUIRE_AUDIO=1", pytrace=False)
        pytest.skip("no JACK server (run tools/test.sh)")
    return name


_throwaway_ids = itertools.count()


@pytest.fixture
def throwaway_jack_server(jack_server):
    """A separate, private JACK dummy server that the test may kill.

    Yields a :class:`jack_server.JackServer`; ``server.env`` is the
    environment for child processes that should use it (this process's
    PortAudio stays bound to the main server).  The test must end the
    clients it started before returning; the server is stopped afterwards
    (and its registry slot reclaimed if it was killed).
    """
    server = JackServer.start(f"rtq-throwaway-{os.getpid()}-{next(_throwaway_ids)}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def playback_only_jack_server(jack_server):
    """Like :func:`throwaway_jack_server`, but with playback ports only (no capture)."""
    server = JackServer.start(f"rtq-playback-{os.getpid()}-{next(_throwaway_ids)}", capture=0)
    try:
        yield server
    finally:
        server.stop()
