"""The web server: a starlette app on uvicorn, on a thread of its own, and its security.

What it serves: ``/`` (the site's page), ``/static/NAME`` (the package's own files,
read once at start into memory: no path from a request reaches the file system) and
``/ws`` (the page's WebSocket: control messages in, updates out).  Anything else is 404.

Security (:class:`Guard`, around everything):

* every request and the WebSocket carry the server's random token (the printed URL's
  ``?token=``; the page's first response also sets it as an HttpOnly, SameSite=Strict
  cookie for the files the page loads); without it, 403.  The token is asked for on
  127.0.0.1 too (the default host): another user of the machine, or a web page using
  DNS rebinding, cannot reach the server without it;
* the WebSocket's ``Origin`` must be the server's own (``http://`` + the Host it was
  asked by): a page from another site cannot drive it, even with the cookie; 403 otherwise;
* only GET and HEAD (405 otherwise); responses forbid framing, sniffing, referrers,
  caching, and anything the page did not come with (Content-Security-Policy: the
  page's own scripts, styles and WebSocket only).

Control messages are checked by :mod:`rtq.web.messages` and run on the main thread
through :class:`~rtq.web.hub.Hub`.
"""
from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import secrets
import socket
import threading
from http.cookies import SimpleCookie
from importlib import resources
from urllib.parse import parse_qs, quote

from rtq.errors import RtqError, UsageError

from .hub import Busy, Client, Hub
from .messages import Refused, parse

TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".js": "text/javascript; charset=utf-8", ".LICENSE": "text/plain; charset=utf-8"}
HEADERS = [
    (b"content-security-policy", b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                 b"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]
FORBIDDEN = "403: this page needs the address rtq printed (with its token)"
WS_MAX_BYTES = 65536        # uvicorn closes a WebSocket sending a larger frame


def packaged_files() -> dict[str, tuple[bytes, str]]:
    """The files under ``rtq/web/static`` (name relative to it -> bytes, content type)."""
    files = {}
    root = resources.files("rtq.web") / "static"

    def walk(folder, prefix):
        for entry in folder.iterdir():
            if entry.is_dir():
                walk(entry, f"{prefix}{entry.name}/")
            elif not entry.name.startswith("."):
                suffix = entry.name[entry.name.rfind("."):]
                files[prefix + entry.name] = (entry.read_bytes(), TYPES.get(suffix, "application/octet-stream"))

    walk(root, "")
    return files


def _query_token(scope) -> str | None:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
    return values[0] if values else None


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


class Guard:
    """ASGI middleware: the token, the WebSocket's Origin, the methods, the headers."""

    def __init__(self, app, token: str, cookie: str):
        self.app = app
        self.token = token
        self.cookie = cookie

    def _cookie_token(self, scope) -> str | None:
        text = _header(scope, b"cookie")
        if not text:
            return None
        jar = SimpleCookie()
        with contextlib.suppress(Exception):
            jar.load(text)
        morsel = jar.get(self.cookie)
        return morsel.value if morsel else None

    def _authorised(self, scope) -> bool:
        expected = self.token.encode()
        return any(given is not None and hmac.compare_digest(given.encode("utf-8", "replace"), expected)
                   for given in (_query_token(scope), self._cookie_token(scope)))

    async def __call__(self, scope, receive, send):
        kind = scope["type"]
        if kind == "lifespan":
            return await self.app(scope, receive, send)
        if kind == "websocket":
            origin, host = _header(scope, b"origin"), _header(scope, b"host")
            if not self._authorised(scope) or origin is None or host is None or origin != f"http://{host}":
                await receive()                                    # the connect event
                await send({"type": "websocket.close", "code": 1008})   # uvicorn answers 403
                return
            return await self.app(scope, receive, send)
        if not self._authorised(scope):
            return await self._plain(send, 403, FORBIDDEN)
        if scope["method"] not in ("GET", "HEAD"):
            return await self._plain(send, 405, "405: only GET", extra=[(b"allow", b"GET, HEAD")])
        cookie = (f"{self.cookie}={self.token}; Path=/; HttpOnly; SameSite=Strict").encode()

        async def guarded_send(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", [])) + HEADERS
                if _query_token(scope) is not None:
                    headers.append((b"set-cookie", cookie))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, guarded_send)

    async def _plain(self, send, status: int, text: str, extra=()) -> None:
        body = (text + "\n").encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode()), *extra, *HEADERS]})
        await send({"type": "http.response.body", "body": body})


def build_app(site, token: str, cookie: str):
    """The ASGI app for ``site`` (see :class:`WebServer`)."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocketDisconnect

    files = packaged_files()
    page = files[f"{site.page}.html"]
    hub: Hub = site.hub

    async def index(request):
        return Response(page[0], media_type=page[1])

    async def static(request):
        found = files.get(request.path_params["name"])
        if found is None:
            return PlainTextResponse("404: no such file\n", status_code=404)
        return Response(found[0], media_type=found[1])

    async def not_found(request, exc):
        return PlainTextResponse("404: no such page\n", status_code=404)

    async def reply(client: Client, command: dict, future) -> None:
        try:
            message, ok = await future, True
        except (RtqError, ValueError, RuntimeError, TimeoutError) as err:
            message, ok = str(err) or type(err).__name__, False
        client.reply(json.dumps({"topic": "reply", "id": command.get("id"), "ok": ok, "message": message}))

    async def ws(websocket):
        await websocket.accept()
        client = Client(websocket)
        hub.connect(client)
        sender = asyncio.create_task(client.send_forever())
        pending = set()
        try:
            while True:
                received = await websocket.receive()
                if received["type"] == "websocket.disconnect":
                    break
                text = received.get("text")
                command = None
                try:
                    if not hub.current(client):
                        raise Refused("this page was opened again elsewhere; this copy no longer answers")
                    command = parse(text, site.actions())
                    task = asyncio.create_task(reply(client, command, hub.submit(command)))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                except Busy:
                    client.reply(json.dumps({"topic": "reply", "id": command.get("id"), "ok": False,
                                             "message": f"busy: {hub.pending} control messages are waiting; "
                                                        "this one changed nothing"}))
                except Refused as err:
                    client.reply(json.dumps({"topic": "reply", "id": None, "ok": False, "message": str(err)}))
        except (WebSocketDisconnect, RuntimeError):
            pass                  # closed while sending
        finally:
            hub.disconnect(client)
            sender.cancel()
            for task in pending:
                task.cancel()

    @contextlib.asynccontextmanager
    async def lifespan(app):
        hub.attach(asyncio.get_running_loop())     # before the first page connects
        yield

    routes = [Route("/", index), Route("/static/{name:path}", static), WebSocketRoute("/ws", ws)]
    app = Starlette(routes=routes, exception_handlers={404: not_found}, lifespan=lifespan)
    return Guard(app, token, cookie)


class WebServer:
    """Serve ``site`` on ``host``:``port`` (0: a free port) from a daemon thread.

    ``site`` has ``page`` (the name of its HTML file in ``static/``), ``hub`` (a
    :class:`~rtq.web.hub.Hub`) and ``actions()`` (action name -> :class:`rtq.schema.Fields`
    of its arguments, for :func:`rtq.web.messages.parse`).  The socket is bound here, so
    a port in use is a one-line error before anything starts.
    """

    def __init__(self, site, host: str = "127.0.0.1", port: int = 0):
        import uvicorn

        self.token = secrets.token_urlsafe(24)
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
            family, _, _, _, address = infos[0]
            self.socket = socket.socket(family, socket.SOCK_STREAM)
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.socket.bind(address)
            self.socket.listen(64)
        except OSError as err:
            raise UsageError(f"--host {host} --port {port}: cannot listen there ({err.strerror or err})") from None
        self.host = host
        self.port = self.socket.getsockname()[1]
        app = build_app(site, self.token, f"rtq-token-{self.port}")
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", ws="websockets-sansio",
                                ws_max_size=WS_MAX_BYTES, server_header=False, date_header=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self.socket]},
                                        name="rtq-web", daemon=True)

    @property
    def url(self) -> str:
        """The address to open, token included."""
        host = self.host
        if host in ("0.0.0.0", "::", ""):
            host = socket.gethostname()
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/?token={quote(self.token)}"

    @property
    def native_id(self) -> int | None:
        """The server thread's id (for measuring its CPU time)."""
        return self._thread.native_id

    def start(self) -> "WebServer":
        self._thread.start()
        while not self._server.started and self._thread.is_alive():
            self._thread.join(0.01)
        if not self._server.started:
            raise RtqError("the web server did not start")
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(5.0)
        self.socket.close()

    def __enter__(self) -> "WebServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def announce(server: WebServer, out) -> None:
    """Print the page's address (one line; another when listening beyond this machine)."""
    print(f"open in a browser: {server.url}", file=out, flush=True)
    if server.host not in ("127.0.0.1", "localhost", "::1"):
        print("  (from another device: this machine's address in place of the host name; the token "
              "stays secret: whoever has this address can use the page)", file=out, flush=True)
