"""Browser pages served by rtq itself: listening tests (``rtq listen TEST.yaml --web``),
the live meter (``rtq live --web``) and measurement reports (``rtq report r.json --web``).

The page never carries audio: it asks the process that owns the session or the test
(its main thread) to act, and shows what that measures.  The server (uvicorn with
starlette, the optional extra ``rtq[web]``) runs on its own thread, off the audio path;
the compiled callback never waits for Python, so nothing a page does can delay it.

Modules: :mod:`~rtq.web.server` (the app, its security, the thread it runs on),
:mod:`~rtq.web.hub` (commands in, updates out, between the server and the main thread),
:mod:`~rtq.web.messages` (control messages checked as presets are),
:mod:`~rtq.web.panels` (a meter report as what the page draws), and one module per page:
:mod:`~rtq.web.live`, :mod:`~rtq.web.listen`, :mod:`~rtq.web.report`.  The pages
themselves (HTML, CSS, JavaScript, and uPlot, vendored with its licence) are files of
the package, under ``static/``; no build step, nothing fetched from the network.
"""
from __future__ import annotations

from rtq.errors import UsageError

MISSING = "the web pages need uvicorn and starlette: pip install 'rtq[web]'"


def require() -> None:
    """Raise a one-line :class:`~rtq.errors.UsageError` if the web extra is missing."""
    from importlib.util import find_spec

    if any(find_spec(name) is None for name in ("uvicorn", "starlette", "websockets")):
        raise UsageError(MISSING)
