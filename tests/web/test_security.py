"""The web server's security, against a real ``rtq live --web`` (uvicorn, starlette): a
table of requests that must be refused (no token, a wrong one, a foreign Origin on the
WebSocket, paths reaching for files, other methods), a table of control messages that
must be refused with their reason and change nothing, and a flood of 1000 messages in a
second, every one answered (run or refused as busy) and the session still in order."""
from __future__ import annotations

import http.client
import json
import time

import pytest
from websockets.exceptions import InvalidStatus   # rtq[web]: tools/setup.sh installs it (never skipped)
from websockets.sync.client import connect

from .browser import Served

pytestmark = pytest.mark.audio     # the page under test is `rtq live` on the JACK dummy server


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with Served(["live", "tpdf-16", "--web", "--input", "tone:1000:-20", "--duration", "300"],
                cwd=tmp_path_factory.mktemp("live")) as served:
        yield served


def get(served, path, headers=None, method="GET"):
    """A request sent as written (http.client does not normalise ``..``)."""
    host, port = served.base[len("http://"):].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request(method, path, headers=headers or {})
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response, body


SECRET_WORDS = (b"root:", b"import ", b"token_urlsafe", b"BEGIN")


@pytest.mark.parametrize("path, with_token, status", [
    ("/", False, 403),
    ("/?token=wrong", False, 403),
    ("/static/rtq.css", False, 403),
    ("/static/vendor/uPlot.LICENSE", False, 403),
    ("/ws", False, 403),
    ("/static/../server.py", True, 404),
    ("/static/..%2fserver.py", True, 404),
    ("/static/%2e%2e/%2e%2e/errors.py", True, 404),
    ("/static/../../../../../../etc/passwd", True, 404),
    ("/static//etc/passwd", True, 404),
    ("/static/vendor/../../web/server.py", True, 404),
    ("/../../../etc/passwd", True, 404),
    ("/etc/passwd", True, 404),
    ("/static/", True, 404),
    ("/static/rtq.css", True, 200),
    ("/", True, 200),
])
def test_requests(served, path, with_token, status):
    sep = "&" if "?" in path else "?"
    response, body = get(served, path + (f"{sep}token={served.token}" if with_token else ""))
    assert response.status == status, (path, body[:200])
    if status != 200:
        assert not any(word in body for word in SECRET_WORDS)
    else:
        assert response.getheader("content-security-policy").startswith("default-src 'none'")
        assert response.getheader("x-frame-options") == "DENY"


def test_wrong_token_of_right_length_and_methods(served):
    almost = served.token[:-1] + ("A" if served.token[-1] != "A" else "B")
    assert get(served, f"/?token={almost}")[0].status == 403
    assert get(served, f"/?token={served.token}", method="POST")[0].status == 405
    assert get(served, f"/?token={served.token}", method="HEAD")[0].status == 200
    assert get(served, "/", method="POST")[0].status == 403


def test_the_token_cookie(served):
    response, _ = get(served, f"/?token={served.token}")
    cookie = response.getheader("set-cookie")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    name_value = cookie.split(";")[0]
    assert get(served, "/static/common.js", {"Cookie": name_value})[0].status == 200
    assert get(served, "/static/common.js", {"Cookie": name_value[:-2] + "xx"})[0].status == 403


def ws_url(served, token):
    return served.base.replace("http://", "ws://") + "/ws" + ("" if token is None else f"?token={token}")


@pytest.mark.parametrize("token, origin", [
    (None, "own"), ("wrong", "own"), ("own", "http://evil.example"), ("own", None),
    ("own", "http://127.0.0.1:1"), ("own", "https://{host}"), ("own", "null"),
])
def test_websocket_handshakes_refused(served, token, origin):
    host = served.base[len("http://"):]
    origin = served.base if origin == "own" else (None if origin is None else origin.replace("{host}", host))
    with pytest.raises(InvalidStatus) as refused:
        with connect(ws_url(served, served.token if token == "own" else token), origin=origin, open_timeout=10):
            pass
    assert refused.value.response.status_code == 403


class Page:
    """A page's WebSocket, scripted: send actions, read replies and the newest update."""

    def __init__(self, socket):
        self.socket = socket
        self.latest: dict = {}
        self.replies: list = []
        self.next_id = 0

    def pump(self, until, timeout=20.0):
        deadline = time.monotonic() + timeout
        while not until():
            message = json.loads(self.socket.recv(timeout=max(deadline - time.monotonic(), 0.01)))
            if message["topic"] == "reply":
                self.replies.append(message)
            else:
                self.latest[message["topic"]] = message

    def send_text(self, text):
        self.socket.send(text)

    def request(self, action, **args):
        self.next_id += 1
        ident = self.next_id
        self.socket.send(json.dumps({"action": action, "id": ident, **args}))
        self.pump(lambda: any(r["id"] == ident for r in self.replies))
        return next(r for r in self.replies if r["id"] == ident)

    def header(self):
        count = self.latest.get("meter", {}).get("line", {}).get("time_s")
        self.pump(lambda: self.latest.get("meter", {}).get("line", {}).get("time_s") != count)
        return self.latest["meter"]["header"]


@pytest.fixture
def page(served):
    with connect(ws_url(served, served.token), origin=served.base, open_timeout=10, max_size=2 ** 24) as socket:
        page = Page(socket)
        page.pump(lambda: "meter" in page.latest and "init" in page.latest, timeout=120)
        yield page


STATE = ("bits", "dither", "shaping", "mode", "preset", "stage")
BAD_MESSAGES = [
    ("not json", "this is not JSON"),
    ("[1, 2]", "a control message is a JSON object, got a list of 2 items"),
    ('"set_bits"', "a control message is a JSON object, got 'set_bits'"),
    ("{}", "missing required key 'action'"),
    ('{"action": "set_bitz", "value": 3}', "did you mean 'set_bits'?"),
    ('{"action": 7}', "action must be one of"),
    ('{"action": "set_bits"}', "set_bits: the message is missing required key 'value'"),
    ('{"action": "set_bits", "value": 40}', "set_bits: value must be"),
    ('{"action": "set_bits", "value": 0}', "got 0"),
    ('{"action": "set_bits", "value": 12.5}', "got 12.5"),
    ('{"action": "set_bits", "value": "12"}', "set_bits: value must be"),
    ('{"action": "set_bits", "value": true}', "set_bits: value must be"),
    ('{"action": "set_bits", "value": NaN}', "NaN is not a number JSON allows"),
    ('{"action": "set_bits", "value": 1e999}', "set_bits: value must be"),
    ('{"action": "set_bits", "value": 12, "extra": 1}', "unknown key 'extra' in the message"),
    ('{"action": "set_bits", "value": 12, "id": -1}', "set_bits: id must be"),
    ('{"action": "set_dither", "value": "tpfd"}', "did you mean 'tpdf'?"),
    ('{"action": "set_shaping", "value": {"coefficients": [1e9]}}', "set_shaping: value must be one of"),
    ('{"action": "set_shaping", "value": "lipshitz"}', "has no table for 48000 Hz"),
    ('{"action": "set_bypass", "on": "yes"}', "set_bypass: on must be true or false"),
    ('{"action": "set_solo", "on": 1}', "set_solo: on must be true or false"),
    ('{"action": "switch_preset", "name": "../../../etc/passwd"}', "switch_preset: name must be one of"),
    ('{"action": "switch_preset", "name": "/tmp/preset.yaml"}', "switch_preset: name must be one of"),
    ('{"action": "set_stage", "stage": 2}', "set_stage: stage must be an integer from 0 to 1"),
    ('{"action": "set_stage", "stage": -1}', "set_stage: stage must be"),
    ("x" * 5000, "at most 4096 characters, got 5000"),
]


@pytest.mark.parametrize("text, reason", BAD_MESSAGES, ids=[f"m{k}" for k in range(len(BAD_MESSAGES))])
def test_bad_control_messages_are_refused_and_change_nothing(page, text, reason):
    before = {key: page.header()[key] for key in STATE}
    count = len(page.replies)
    page.send_text(text)
    page.pump(lambda: len(page.replies) > count)
    reply = page.replies[-1]
    assert not reply["ok"] and reason in reply["message"], reply
    time.sleep(0.1)
    assert {key: page.header()[key] for key in STATE} == before


def test_binary_frames_are_refused(page):
    count = len(page.replies)
    page.socket.send(b'{"action": "reset"}')
    page.pump(lambda: len(page.replies) > count)
    assert page.replies[-1] == {"topic": "reply", "id": None, "ok": False,
                                "message": "a control message is JSON text, not binary"}


def test_good_control_messages_act(page):
    assert page.request("set_bits", value=12) == {"topic": "reply", "id": page.next_id, "ok": True,
                                                  "message": "bits: 12"}
    assert page.request("set_dither", value="rpdf")["message"] == "dither: rpdf"
    assert page.request("set_bypass", on=True)["ok"]
    header = page.header()
    assert (header["bits"], header["dither"], header["mode"]) == (12, "rpdf", "bypass")
    for action, args in (("set_bypass", {"on": False}), ("set_dither", {"value": "tpdf"}), ("set_bits", {"value": 16})):
        assert page.request(action, **args)["ok"]


def test_a_flood_of_control_messages(page):
    """1000 messages in about a second: each is answered, run or refused as busy (the
    queue holds 8); the last one run is what plays.  (What the flood costs the audio
    callback is measured in tools/bench_web.py, not asserted here.)"""
    sent, started = 1000, time.monotonic()
    count = len(page.replies)
    for k in range(sent):
        page.socket.send(json.dumps({"action": "set_bits", "value": 15 + k % 2, "id": 10000 + k}))
        time.sleep(max(0.0, started + (k + 1) / 1000 - time.monotonic()))
        while True:                      # keep reading, as a browser does
            try:
                message = json.loads(page.socket.recv(timeout=0))
            except TimeoutError:
                break
            if message["topic"] == "reply":
                page.replies.append(message)
    page.pump(lambda: len(page.replies) >= count + sent, timeout=60)
    replies = page.replies[count:]
    assert sorted(r["id"] for r in replies) == list(range(10000, 10000 + sent))
    done = [r for r in replies if r["ok"]]
    busy = [r for r in replies if not r["ok"]]
    assert all(r["message"].startswith("busy: 8 control messages are waiting") for r in busy)
    assert done and all(r["message"] == f"bits: {15 + (r['id'] - 10000) % 2}" for r in done)
    time.sleep(0.2)
    assert page.header()["bits"] == int(done[-1]["message"].split()[-1])
    assert page.request("set_bits", value=16)["ok"]
