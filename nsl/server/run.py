"""Running the app under waitress, and stopping it cleanly.

`serve()` listens, reports the address, and serves until `stop()` (called from a SIGTERM or SIGINT
handler, or from another thread). Stopping closes the listening sockets at once, lets the requests in
flight finish and their responses go out, closes idle keep-alive connections, then ends the worker
threads: a client never sees a half-written response, and each write request either committed or
rolled back.
"""
from __future__ import annotations

import ipaddress
import threading
import time

from waitress import utilities as wutil
from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, create_server
from waitress.task import ErrorTask

from .app import (BodyTooLarge, HeadersTooLarge, Internal, MalformedRequest, NotImplementedHere, error_response,
                  status_line)

GRACE = 30.0  # seconds in-flight requests get to finish once a stop is asked


def is_loopback(host: str) -> bool:
    """Whether binding to `host` keeps the server reachable from this machine only."""
    h = host.strip().strip("[]")
    if h.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def url_of(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def refusal(error, adj):
    """The NslError for a request waitress refused before the app saw it (`error` is waitress's
    Error: its class says what went wrong, its body the detail)."""
    detail = str(getattr(error, "body", "") or "").strip()[:200]
    if isinstance(error, wutil.RequestHeaderFieldsTooLarge):
        return HeadersTooLarge(f"the request's line and headers are larger than the {adj.max_request_header_size} "
                               "bytes allowed")
    if isinstance(error, wutil.RequestEntityTooLarge):
        return BodyTooLarge(f"the request body is larger than the {adj.max_request_body_size} bytes this "
                            "server reads")
    if isinstance(error, wutil.BadRequest):
        return MalformedRequest(f"malformed HTTP request: {detail or 'it cannot be parsed'}")
    if isinstance(error, wutil.ServerNotImplemented):
        return NotImplementedHere(f"not supported: {detail or 'this request'}",
                                  hint="the only Transfer-Encoding this server takes is chunked")
    return Internal("internal error")


class JSONErrorTask(ErrorTask):
    """waitress's answer to a request it refused itself, in nsl's error shape (the JSON of
    `error_response`) instead of waitress's plain text. The connection is closed after it, as waitress
    does: what follows on it cannot be trusted to start a request."""

    def execute(self):
        resp = error_response(refusal(self.request.error, self.channel.server.adj))
        self.status = status_line(resp.status)
        self.response_headers.extend([("Content-Type", "application/json"), ("Cache-Control", "no-store"),
                                      ("X-Content-Type-Options", "nosniff"), *resp.headers])
        self.set_close_on_finish()
        self.content_length = len(resp.body)
        self.write(resp.body)


class Channel(HTTPChannel):
    """waitress's connection, answering the requests waitress refuses itself in JSON."""

    error_task_class = JSONErrorTask


class Server:
    """A waitress server for `app` on host:port (0: any free port), run with `serve_forever()`."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 5000, threads: int = 4, *,
                 max_request_body_size: int | None = None, max_request_header_size: int | None = None):
        kw = {}
        if max_request_body_size is not None:
            kw["max_request_body_size"] = max_request_body_size
        if max_request_header_size is not None:
            kw["max_request_header_size"] = max_request_header_size
        self.app = app
        self.server = create_server(app, host=host, port=port, threads=threads, clear_untrusted_proxy_headers=True,
                                    **kw)
        self._map = getattr(self.server, "_map", None) or getattr(self.server, "map")
        self._stop = threading.Event()
        for lst in self._listeners():
            lst.channel_class = Channel  # before the first connection is accepted: that is in serve_forever

    @property
    def addresses(self) -> list[tuple[str, int]]:
        s = self.server
        if hasattr(s, "effective_listen"):
            return [(h, p) for h, p in s.effective_listen]
        return [(s.effective_host, s.effective_port)]

    @property
    def urls(self) -> list[str]:
        return [url_of(h, p) for h, p in self.addresses]

    def _listeners(self):
        return [d for d in list(self._map.values()) if isinstance(d, BaseWSGIServer)]

    def _channels(self):
        return [d for d in list(self._map.values()) if isinstance(d, HTTPChannel)]

    def stop(self) -> None:
        """Stop accepting and wind down (safe from a signal handler or another thread)."""
        self._stop.set()
        for lst in self._listeners():
            try:
                lst.pull_trigger()  # wake the loop so it notices at once
            except OSError:
                pass

    def serve_forever(self, grace: float = GRACE) -> None:
        use_poll = self.server.adj.asyncore_use_poll
        try:
            while not self._stop.is_set():
                wasyncore.loop(timeout=1.0, map=self._map, use_poll=use_poll, count=1)
        except KeyboardInterrupt:
            self._stop.set()
        self._drain(grace, use_poll)

    def _drain(self, grace: float, use_poll: bool) -> None:
        listeners = self._listeners()
        for lst in listeners:
            # Only the listening socket: its trigger still wakes the loop for the responses in flight.
            lst.accepting = False
            wasyncore.dispatcher.close(lst)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            busy = False
            for ch in self._channels():
                if ch.requests or ch.request is not None or ch.total_outbufs_len:
                    busy = True
                elif not ch.will_close:
                    ch.will_close = True  # idle keep-alive connection: close it
            if not busy and not self._channels():
                break
            try:
                wasyncore.loop(timeout=0.05, map=self._map, use_poll=use_poll, count=1)
            except KeyboardInterrupt:
                break  # a second Ctrl-C: stop waiting
        dispatcher = getattr(self.server, "task_dispatcher", None)
        if dispatcher is not None:
            dispatcher.shutdown(timeout=max(1.0, deadline - time.monotonic()))
        for lst in listeners:
            try:
                lst.trigger.close()
            except OSError:
                pass
        wasyncore.close_all(self._map)
        close = getattr(self.app, "close", None)
        if close is not None:
            close()
