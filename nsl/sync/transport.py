"""How a sync message reaches a remote: over HTTP (POST URL/sync, with requests) or, for a path, to
the database in this process through the same server code. Both count the bytes each way."""
from __future__ import annotations

import time
from pathlib import Path

import orjson

from ..errors import NslError, RemoteError, SyncError
from . import protocol

TIMEOUT = (10, 300)     # connect, read (seconds): a reply is bounded to about 20 s of work
RETRIES = 4             # a lost connection (a restarted server) is retried; every round is idempotent


class Transport:
    url: str
    sent = 0
    received = 0
    round_trips = 0

    def exchange(self, message: dict) -> dict:
        raise NotImplementedError

    def close(self):
        pass


def open_transport(url: str, token: str | None = None) -> Transport:
    if url.lower().startswith(("http://", "https://")):
        from ..core.config import check_url

        check_url(url)      # no credentials in a URL: the token travels as a header only
        return HttpTransport(url, token)
    path = url[len("file://"):] if url.lower().startswith("file://") else url
    return LocalTransport(path)


class HttpTransport(Transport):
    """POST each message as JSON to URL/sync, with the token as a Bearer header."""

    def __init__(self, url: str, token: str | None = None):
        import requests

        base = url.rstrip("/")
        self.url = base if base.endswith("/sync") else base + "/sync"
        self.token = token
        self.session = requests.Session()
        self.sent = self.received = self.round_trips = 0

    def exchange(self, message: dict) -> dict:
        import requests

        body = orjson.dumps(message)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        delay = 0.25
        for attempt in range(RETRIES + 1):
            try:
                r = self.session.post(self.url, data=body, headers=headers, timeout=TIMEOUT)
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as e:
                # A server restarted between rounds drops the pooled connection: a round is
                # idempotent (what was received is kept, what is known is skipped), so try again.
                self.session.close()
                if attempt == RETRIES:
                    raise SyncError(f"cannot reach {self.url}: {_reason(e)}") from None
            else:
                # A remote busy with another writer (another client's push) is asked again, a little later.
                if r.status_code != 503 or attempt == RETRIES or _code(r) not in ("locked", "timeout"):
                    break
            time.sleep(delay)
            delay = min(delay * 2, 4.0)
        self.sent += len(body)
        self.received += len(r.content)
        self.round_trips += 1
        try:
            doc = orjson.loads(r.content)
        except orjson.JSONDecodeError:
            doc = None
        if r.status_code != 200:
            err = doc.get("error") if isinstance(doc, dict) and isinstance(doc.get("error"), dict) else {}
            msg = err.get("message") or f"HTTP {r.status_code}"
            hint = err.get("hint")
            if r.status_code == 401:
                hint = hint or "give the remote's token with NSL_TOKEN or `nsl remote add NAME URL --token-env VAR`"
            raise RemoteError(f"{self.url} refused: {msg}", status=r.status_code, remote_code=err.get("code"),
                              hint=hint)
        if doc is None:
            raise SyncError(f"{self.url} did not answer with JSON: is it a nsl server?")
        return doc

    def close(self):
        self.session.close()


def _code(r) -> str | None:
    try:
        return orjson.loads(r.content)["error"]["code"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None


def _reason(e) -> str:
    text = str(e)
    for marker in ("Connection refused", "Name or service not known", "timed out", "Connection reset",
                   "Connection aborted", "RemoteDisconnected"):
        if marker in text:
            return marker.lower()
    return text[:200]


class LocalTransport(Transport):
    """A database on this machine: the server code runs in this process on its own connection, and
    messages still go through JSON so both transports say exactly the same."""

    def __init__(self, path: str):
        from ..core.database import Database

        self.url = str(path)
        p = Path(path)
        try:
            self.db = Database.open(p)
        except NslError as e:
            raise SyncError(f"cannot sync with {path!r}: {e.message}") from None
        self.sent = self.received = self.round_trips = 0

    def exchange(self, message: dict) -> dict:
        from .server import handle

        body = orjson.dumps(message)
        if len(body) > protocol.REQUEST_BYTES * 20:
            raise SyncError("request too large")
        try:
            reply = handle(self.db, orjson.loads(body), may_push=True)
        except NslError as e:
            raise RemoteError(f"{self.url} refused: {e.message}", remote_code=e.code,
                              status=getattr(e, "http_status", None), hint=e.hint) from None
        out = orjson.dumps(reply)
        self.sent += len(body)
        self.received += len(out)
        self.round_trips += 1
        return orjson.loads(out)

    def close(self):
        self.db.close()
