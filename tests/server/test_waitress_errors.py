"""Requests waitress refuses before the app sees them are answered in nsl's error shape too.

Each is sent as raw bytes on its own connection (no HTTP library would send them): a Content-Length
that is not a number, a Transfer-Encoding other than chunked, headers over the limit, a body over the
server's limit (announced, and chunked), a broken chunk. Each answer is JSON
{"error": {"code", "message"}} with its status, and the connection is closed after it.
"""
from __future__ import annotations

import json
import socket

import pytest

from nsl.server.run import Server

HEADER_LIMIT = 4096
BODY_LIMIT = 2000


def exchange(port: int, raw: bytes) -> tuple[int, dict, bytes]:
    """Send `raw` on a new connection and read the answer until the server closes it:
    (status, headers with lower-case names, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(raw)
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    return status, headers, body[:int(headers["content-length"])]


def chunked(body: bytes, size: int = 100) -> bytes:
    parts = [b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size]) for i in range(0, len(body), size)]
    return b"".join(parts) + b"0\r\n\r\n"


def post(headers: str, body: bytes = b"") -> bytes:
    return (f"POST /api/v1/find HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n").encode("latin-1") + body


CASES = [
    # (what, raw request, status, code)
    ("Content-Length that is not a number", post("Content-Length: abc\r\n"), 400, "malformed_request"),
    ("negative Content-Length", post("Content-Length: -5\r\n"), 400, "malformed_request"),
    ("Transfer-Encoding gzip", post("Transfer-Encoding: gzip\r\n"), 501, "not_implemented"),
    ("headers over the limit", post("X-Big: " + "a" * (2 * HEADER_LIMIT) + "\r\n"), 431, "headers_too_large"),
    ("announced body over the limit", post(f"Content-Length: {10 * BODY_LIMIT}\r\n"), 413, "body_too_large"),
    ("chunked body over the limit", post("Transfer-Encoding: chunked\r\n", chunked(b"x" * (3 * BODY_LIMIT))),
     413, "body_too_large"),
    ("broken chunk size", post("Transfer-Encoding: chunked\r\n", b"zz\r\nabc\r\n0\r\n\r\n"), 400, "malformed_request"),
    ("a header line without a colon", post("Just some words\r\n"), 400, "malformed_request"),
    ("bare LF in a header", b"GET /api/v1/head HTTP/1.1\r\nHost: x\nX: y\r\n\r\n", 400, "malformed_request"),
]


@pytest.fixture
def small_server(server_db, start_server):
    return start_server(server_db, server_kw={"max_request_header_size": HEADER_LIMIT,
                                              "max_request_body_size": BODY_LIMIT})


@pytest.mark.parametrize("what, raw, status, code", CASES, ids=[c[0] for c in CASES])
def test_waitress_refusals_are_json(small_server, what, raw, status, code):
    port = int(small_server.url.rsplit(":", 1)[1])
    got, headers, body = exchange(port, raw)
    assert got == status, (what, body)
    assert headers["content-type"] == "application/json", (what, headers)
    assert headers["connection"].lower() == "close"
    doc = json.loads(body)
    assert set(doc) == {"error"} and set(doc["error"]) <= {"code", "message", "hint"}, doc
    assert doc["error"]["code"] == code and doc["error"]["message"], doc
    assert "waitress" not in body.decode() and "Traceback" not in body.decode()
    # The server is still there, and the app answers as usual.
    api = small_server.api()
    assert api.get("head").json() == {"head": None}


def test_a_body_within_the_limit_still_works_chunked(small_server):
    """A chunked body under the server's limit reaches the app, which parses it."""
    port = int(small_server.url.rsplit(":", 1)[1])
    body = json.dumps({"table": "nope"}).encode()
    status, headers, answer = exchange(port, post("Transfer-Encoding: chunked\r\nConnection: close\r\n",
                                                  chunked(body, 5)))
    assert status == 404 and json.loads(answer)["error"]["code"] == "unknown_table"


def test_an_app_that_fails_gets_a_json_500(server_db):
    """Were the app itself to raise, waitress's 500 would be JSON too (never its text or a traceback)."""
    import threading

    def broken(environ, start_response):
        raise RuntimeError("boom")

    server = Server(broken, "127.0.0.1", 0, threads=1)
    t = threading.Thread(target=server.serve_forever, kwargs={"grace": 2}, daemon=True)
    t.start()
    try:
        status, headers, body = exchange(server.addresses[0][1], b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 500 and headers["content-type"] == "application/json"
        assert json.loads(body) == {"error": {"code": "internal", "message": "internal error"}}
    finally:
        server.stop()
        t.join(10)
