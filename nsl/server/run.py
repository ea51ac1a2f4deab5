"""Running the app under waitress, and stopping it cleanly.

`Server.serve_forever()` serves until `stop()` (called from a SIGTERM or SIGINT handler, or from
another thread). Stopping closes the listening sockets at once, lets the requests in flight finish and
their responses go out, closes idle keep-alive connections, then ends the worker threads: a client
never sees a half-written response, and each write request either committed or rolled back.

The requests in flight get a grace longer than a request's own time limit. A request still running
after it, or when `stop(now=True)` is asked (`nsl serve` does on a second SIGINT or SIGTERM), is cut
off cleanly: the app interrupts the SQL of every connection (the request's transaction rolls back and
it answers 503), its answer gets a second to go out, and the server is gone.
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

GRACE = 30.0         # seconds in-flight requests get to finish once a stop is asked, at least...
GRACE_MARGIN = 15.0  # ...the app's time limit for a request plus this (waiting for the write lock, answering)
CUT_WAIT = 1.0       # seconds the requests cut off at the end of the grace get to send their 503


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
        self._now = threading.Event()
        # Long enough for any request that keeps to its time limit (its SQL is stopped at the limit).
        self.grace = max(GRACE, float(getattr(app, "time_limit", 0) or 0) + GRACE_MARGIN)
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

    @property
    def stopping(self) -> bool:
        """Whether a stop was asked."""
        return self._stop.is_set()

    def stop(self, *, now: bool = False) -> None:
        """Stop accepting and wind down (safe from a signal handler or another thread). now: do not wait
        for the requests in flight; their SQL is interrupted (their transactions roll back), they get a
        second to answer, and the server is gone."""
        if now:
            self._now.set()
        self._stop.set()
        for lst in self._listeners():
            try:
                lst.pull_trigger()  # wake the loop so it notices at once
            except OSError:
                pass

    def serve_forever(self, grace: float | None = None, report=None) -> None:
        """Serve until stop(); then let the requests in flight finish for up to `grace` seconds (default:
        `self.grace`, longer than a request may take). report(text), when given, is told what stopping
        waits for and what it cut off."""
        use_poll = self.server.adj.asyncore_use_poll
        try:
            while not self._stop.is_set():
                wasyncore.loop(timeout=1.0, map=self._map, use_poll=use_poll, count=1)
        except KeyboardInterrupt:  # Python's own SIGINT handler, when the caller installed none
            self._stop.set()
        self._drain(self.grace if grace is None else grace, use_poll, report or (lambda text: None))

    def _in_flight(self) -> int:
        """Requests received and not yet answered (queued, running, or with their answer still going
        out); idle keep-alive connections are marked to close."""
        n = 0
        for ch in self._channels():
            if ch.requests or ch.request is not None or ch.total_outbufs_len:
                n += max(1, len(ch.requests))
            elif not ch.will_close:
                ch.will_close = True
        return n

    def _drain(self, grace: float, use_poll: bool, report) -> None:
        listeners = self._listeners()
        for lst in listeners:
            # Only the listening socket: its trigger still wakes the loop for the responses in flight.
            lst.accepting = False
            wasyncore.dispatcher.close(lst)
        deadline = time.monotonic() + grace
        cut_at = None
        n = self._in_flight()
        if n and not self._now.is_set():
            report(f"stopping: waiting up to {grace:g} s for {n} request{'s' if n > 1 else ''} in flight "
                   "(stop again, e.g. Ctrl-C, to stop at once)")
        while True:
            n = self._in_flight()
            if not n and not self._channels():
                break
            now = time.monotonic()
            if cut_at is None and (now >= deadline or self._now.is_set()):
                # Out of patience: stop the requests' SQL (each rolls back and answers 503), and give
                # their answers a moment to go out.
                cut_at = now
                if n:
                    report(f"stopping now: {n} request{'s' if n > 1 else ''} still in flight stopped, "
                           "their changes rolled back")
                interrupt = getattr(self.app, "interrupt", None)
                if interrupt is not None:
                    interrupt()
            if cut_at is not None and now >= cut_at + CUT_WAIT:
                break
            try:
                wasyncore.loop(timeout=0.05, map=self._map, use_poll=use_poll, count=1)
            except KeyboardInterrupt:
                self._now.set()  # a second Ctrl-C under Python's own SIGINT handler
        dispatcher = getattr(self.server, "task_dispatcher", None)
        if dispatcher is not None:
            dispatcher.shutdown(timeout=CUT_WAIT if cut_at is not None else 5.0)
        for lst in listeners:
            try:
                lst.trigger.close()
            except OSError:
                pass
        wasyncore.close_all(self._map)
        close = getattr(self.app, "close", None)
        if close is not None:
            close()
