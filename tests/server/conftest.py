"""Fixtures for the server tests: the real app under waitress on 127.0.0.1 (a free port), in a thread,
on a fresh database, driven with requests. Every request has a timeout."""
from __future__ import annotations

import threading

import pytest
import requests

import nsl
from nsl.server.app import App
from nsl.server.run import Server

TIMEOUT = 10


class Api:
    """requests against one server, with a token when given; paths are relative to /api/v1."""

    def __init__(self, base: str, token: str | None = None):
        self.base = base.rstrip("/")
        self.token = token
        self.session = requests.Session()

    def url(self, path: str) -> str:
        return self.base + ("" if path.startswith("/") else "/api/v1/") + path

    def request(self, method: str, path: str, *, token: str | None = None, **kw) -> requests.Response:
        kw.setdefault("timeout", TIMEOUT)
        headers = dict(kw.pop("headers", None) or {})
        tok = token if token is not None else self.token
        if tok:
            headers.setdefault("Authorization", f"Bearer {tok}")
        return self.session.request(method, self.url(path), headers=headers, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def put(self, path, **kw):
        return self.request("PUT", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def as_token(self, token: str | None) -> "Api":
        return Api(self.base, token)

    def close(self):
        self.session.close()


class Running:
    """One server on a database: its URL, the app, and a way to stop it."""

    def __init__(self, db_path, *, threads: int = 4, server_kw=None, **app_kw):
        self.db_path = db_path
        self.app = App(db_path, **app_kw)
        self.server = Server(self.app, "127.0.0.1", 0, threads=threads, **(server_kw or {}))
        host, port = self.server.addresses[0]
        self.url = f"http://{host}:{port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"grace": 5}, daemon=True)
        self.thread.start()
        self.clients: list[Api] = []

    def api(self, token: str | None = None) -> Api:
        a = Api(self.url, token)
        self.clients.append(a)
        return a

    def stop(self):
        for c in self.clients:
            c.close()
        self.server.stop()
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive(), "the server did not stop"


@pytest.fixture
def server_db(tmp_path):
    """A fresh nsl database file (closed), for a server to open."""
    path = tmp_path / "served.db"
    db, _ = nsl.init(path)
    db.close()
    return path


@pytest.fixture
def start_server():
    """start_server(db_path, threads=4, server_kw={Server options}, **App options) -> Running; every server
    is stopped at teardown."""
    running = []

    def start(db_path, **kw):
        r = Running(db_path, **kw)
        running.append(r)
        return r

    yield start
    for r in running:
        r.stop()


@pytest.fixture
def served(server_db, start_server):
    return start_server(server_db)


@pytest.fixture
def api(served) -> Api:
    """An open server (no tokens) on a fresh database, and a client for it."""
    return served.api()


@pytest.fixture
def dbfile(server_db):
    """Open the served database directly (for checks from outside the server)."""
    opened = []

    def open_():
        db = nsl.open(server_db)
        opened.append(db)
        return db

    yield open_
    for db in opened:
        db.close()
