"""The WSGI application: one route table, one request pipeline, and one JSON error shape.

A request passes through, in order (the steps of `App.respond`, one function: a request is mostly
the cost of this layer and one query, so it is not a chain of wrappers):

    errors      every exception becomes {"error": {"code", "message"}} with its HTTP status; anything
                that is not an NslError is a 500 "internal error" (the traceback goes to stderr only)
    body cap    Content-Length beyond the cap is refused (413) before anything is read, and the input
                stream is capped as it is read
    routing     unknown path: 404; known path, other method: 405 with an Allow header
    database    the request's connection (one per server thread), and a time limit on its SQL; a GET
                (which changes nothing) is answered tentatively from kept tokens and metadata, checked
                by its own statements, and again from one read transaction if they had changed
    auth        Bearer token; with no tokens in the database access is open if the app allows it (on
                loopback), else every request is a 401; 401 / 403
                (routes whose permission is PUBLIC, the web interface's files, skip database and auth)
    JSON body   parsed exactly (orjson; no silently rounded integer); invalid: 400 (so is a body of
                whitespace only: a route whose body is optional takes no bytes at all instead)
    handler     one core call per write

Handlers return a JSON-able document (or a Response) and raise NslError for anything that goes wrong.
"""
from __future__ import annotations

import http.client
import re
import sqlite3
import sys
import threading
import time
import traceback
import types
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import parse_qsl, unquote_to_bytes

from ..core import tokens
from ..core.database import Database
from ..core.values import dumps, loads
from ..errors import BadInput, InvalidJSON, Locked, NotFound, NslError

DEFAULT_MAX_BODY = 16 * 1024 * 1024
DEFAULT_TIME_LIMIT = 60.0

# What each role may do. read may pull (POST /sync asks for "sync" only when it pushes); sync may
# pull and push but not use the write API; write and admin may do both.
PERMISSIONS = {
    "read": frozenset({"read"}),
    "sync": frozenset({"read", "sync"}),
    "write": frozenset({"read", "write", "sync"}),
    "admin": frozenset({"read", "write", "sync", "admin"}),
}
PUBLIC = "public"  # a route's permission for what anyone may fetch without a token (the web page)


# ---- HTTP-level errors (part of the one hierarchy: they are NslErrors) ----------------------------

class Unauthorized(NslError):
    http_status = 401
    code = "unauthorized"
    headers = [("WWW-Authenticate", 'Bearer realm="nsl"')]


class InvalidToken(Unauthorized):
    code = "invalid_token"
    headers = [("WWW-Authenticate", 'Bearer realm="nsl", error="invalid_token"')]


class Forbidden(NslError):
    http_status = 403
    code = "forbidden"


class UnknownRoute(NotFound):
    code = "unknown_route"


class MethodNotAllowed(NslError):
    http_status = 405
    code = "method_not_allowed"

    def __init__(self, message, allow, **kw):
        super().__init__(message, **kw)
        self.headers = [("Allow", ", ".join(allow))]


class BodyTooLarge(NslError):
    http_status = 413
    code = "body_too_large"


class MalformedRequest(BadInput):
    """waitress could not parse the request (its line, a header, Content-Length, chunked framing)."""

    code = "malformed_request"


class HeadersTooLarge(NslError):
    http_status = 431
    code = "headers_too_large"


class NotImplementedHere(NslError):
    """A part of HTTP the server does not do (a Transfer-Encoding other than chunked)."""

    http_status = 501
    code = "not_implemented"


class Timeout(NslError):
    http_status = 503
    code = "timeout"


class Stopping(NslError):
    http_status = 503
    code = "stopping"
    hint = "the server is being stopped; try again when it is back"


class Internal(NslError):
    http_status = 500
    code = "internal"


# ---- routes, requests, responses ----------------------------------------------------------------

@dataclass(frozen=True)
class Route:
    """One endpoint. `pattern` is a path like /api/v1/tables/{table}; each {name} matches one segment."""

    method: str
    pattern: str
    handler: Callable
    permission: str                 # read, write or admin
    query: tuple = ()               # the query parameters it accepts
    body: str | None = None         # None: no body; "json": a JSON body is required; "optional"
    summary: str = ""
    regex: re.Pattern = field(init=False, compare=False, repr=False)
    # The pattern's segments, for matching without the regex: how many, the fixed ones by position,
    # and the named ones by position.
    nseg: int = field(init=False, compare=False, repr=False)
    fixed: tuple = field(init=False, compare=False, repr=False)
    named: tuple = field(init=False, compare=False, repr=False)

    def __post_init__(self):
        parts, fixed, named = [], [], []
        segs = self.pattern.strip("/").split("/")
        for i, seg in enumerate(segs):
            if seg.startswith("{") and seg.endswith("}"):
                parts.append(f"(?P<{seg[1:-1]}>[^/]+)")
                named.append((i, seg[1:-1]))
            else:
                parts.append(re.escape(seg))
                fixed.append((i, seg))
        object.__setattr__(self, "regex", re.compile("/" + "/".join(parts)))
        object.__setattr__(self, "nseg", len(segs))
        object.__setattr__(self, "fixed", tuple(fixed))
        object.__setattr__(self, "named", tuple(named))

    def matches(self, segs: list[str]) -> bool:
        """Whether a path split at '/' (without its leading one) fits the pattern: what `regex` says
        of the path, with string comparisons only (each {name} is one segment, not empty)."""
        if len(segs) != self.nseg:
            return False
        for i, text in self.fixed:
            if segs[i] != text:
                return False
        for i, _ in self.named:
            if not segs[i]:
                return False
        return True


class Response:
    """What a handler may return instead of a document: a status, its own headers, ready bytes."""

    __slots__ = ("status", "doc", "headers", "body")

    def __init__(self, status: int, doc: object = None, headers: list | tuple = (), body: bytes | None = None):
        self.status = status
        self.doc = doc
        self.headers = headers
        self.body = body                # the serialized doc, made inside the error handling


class Request:
    """What a handler sees: the path parameters, the query, the parsed body, the caller, the database."""

    # Until set for this request (class attributes: one request object is made per request).
    route: Route | None = None
    params: dict[str, str] = types.MappingProxyType({})
    _query: dict | None = None
    json = None
    db: Database | None = None
    token_name: str | None = None
    role: str | None = None

    def __init__(self, environ: dict, app: "App"):
        self.environ = environ
        self.app = app
        self.method = environ.get("REQUEST_METHOD", "GET").upper()
        self.raw_path = _raw_path(environ)

    # -- the caller
    def may(self, permission: str) -> bool:
        return permission in PERMISSIONS.get(self.role or "", ())

    # -- the query string
    @property
    def query(self) -> dict[str, str]:
        if self._query is None:
            qs = self.environ.get("QUERY_STRING", "")
            if not qs:
                self._query = {}
                return self._query
            try:
                pairs = parse_qsl(qs, keep_blank_values=True, encoding="utf-8", errors="strict")
            except (UnicodeDecodeError, ValueError):
                raise BadInput("the query string is not valid UTF-8") from None
            out = {}
            allowed = self.route.query if self.route else ()
            for k, v in pairs:
                if k not in allowed:
                    raise BadInput(f"unknown query parameter {k!r}" + (
                        f" (this endpoint takes: {', '.join(allowed)})" if allowed else " (this endpoint takes none)"))
                if k in out:
                    raise BadInput(f"query parameter {k!r} is given twice")
                out[k] = v
            self._query = out
        return self._query

    def int_arg(self, name: str, default=None, *, maximum: int | None = None):
        text = self.query.get(name)
        if text is None:
            return default  # given but empty (?limit=) is not a number: a 400 like any other
        if not re.fullmatch(r"[0-9]{1,18}", text):
            raise BadInput(f"{name} must be a whole number of 0 or more, not {text!r}")
        n = int(text)
        if maximum is not None and n > maximum:
            raise BadInput(f"{name} must be at most {maximum}")
        return n

    # -- the body
    def read_body(self) -> bytes:
        stream = self.environ.get("wsgi.input")
        if stream is None:
            return b""
        length = self.environ.get("nsl.content_length")
        if length is not None:
            chunks, left = [], length
            while left > 0:
                chunk = stream.read(min(left, 1 << 20))
                if not chunk:
                    break
                chunks.append(chunk)
                left -= len(chunk)
            return b"".join(chunks)
        if self.environ.get("wsgi.input_terminated"):
            return stream.read()
        return b""


def _raw_path(environ) -> str:
    """The path as the client sent it, still percent-encoded, so that %2F inside a key stays inside it.
    (waitress gives REQUEST_URI; elsewhere PATH_INFO, already decoded, is the best there is.)"""
    uri = environ.get("REQUEST_URI") or environ.get("RAW_URI")
    if uri:
        path = uri.split("?", 1)[0].split("#", 1)[0]
        if "://" in path:  # absolute-form request target
            path = "/" + path.split("://", 1)[1].partition("/")[2]
        return path or "/"
    return environ.get("PATH_INFO", "") or "/"


def _decode_segment(seg: str) -> str:
    if "%" not in seg and seg.isascii():
        return seg  # nothing to decode (the usual case)
    try:
        return unquote_to_bytes(seg).decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput("the path is not valid UTF-8 once percent-decoded") from None


class _CappedInput:
    """wsgi.input that refuses to hand out more than `cap` bytes."""

    def __init__(self, stream, cap: int):
        self.stream, self.cap, self.seen = stream, cap, 0

    def _count(self, data: bytes) -> bytes:
        self.seen += len(data)
        if self.seen > self.cap:
            raise BodyTooLarge(f"the request body is larger than {self.cap} bytes")
        return data

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self.cap + 1 - self.seen
        return self._count(self.stream.read(max(0, min(size, self.cap + 1 - self.seen))))

    def readline(self, size: int = -1) -> bytes:
        limit = self.cap + 1 - self.seen
        return self._count(self.stream.readline(limit if size is None or size < 0 else min(size, limit)))

    def __iter__(self):
        while True:
            line = self.readline()
            if not line:
                return
            yield line


# ---- the application ----------------------------------------------------------------------------

class App:
    """The nsl WSGI application for the database at `db_path`.

    max_body caps request bodies (bytes); time_limit bounds the SQL work of one request (seconds).
    open_access says what a database without any token allows: every request, as admin (True, for a
    server reachable from this machine only: `nsl serve` on loopback, or with --insecure), or nothing
    but 401 (False), so that removing the last token never opens a server to the network.
    """

    def __init__(self, db_path, *, routes=None, max_body: int = DEFAULT_MAX_BODY,
                 time_limit: float = DEFAULT_TIME_LIMIT, open_access: bool = True, log=None):
        if routes is None:
            from .api import ROUTES as routes
        self.db_path = db_path
        self.routes: list[Route] = list(routes)
        self.max_body = int(max_body)
        self.time_limit = float(time_limit)
        self.open_access = bool(open_access)
        self.log = log  # None: whatever sys.stderr is when an error happens
        self._local = threading.local()
        self._opened: list[Database] = []
        self._lock = threading.Lock()
        self._generation = 0
        self._stopping = False

    # -- WSGI
    def __call__(self, environ, start_response):
        resp = self.respond(Request(environ, self))
        body = resp.body if resp.body is not None else dumps(resp.doc)
        status = resp.status
        if not resp.headers and status != 304:
            headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                       ("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff")]
        else:
            defaults = [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                        ("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff")]
            given = {k.lower() for k, _ in resp.headers}  # a response's own headers replace the defaults
            if status == 304:
                given |= {"content-type", "content-length"}  # no body, and no type or length of one
            headers = [h for h in defaults if h[0].lower() not in given] + list(resp.headers)
        start_response(status_line(status), headers)
        return [body]

    def close(self):
        """Close every connection the server threads opened (a later request opens a new one)."""
        with self._lock:
            opened, self._opened = self._opened, []
            self._generation += 1
            self._stopping = False
        for db in opened:
            try:
                db.close()
            except sqlite3.Error:
                pass

    def interrupt(self):
        """Stop the SQL running on every connection now (from another thread: the server stopping).
        Each request then rolls back and answers 503 `stopping`."""
        self._stopping = True
        with self._lock:
            opened = list(self._opened)
        for db in opened:
            try:
                db.conn.interrupt()
            except sqlite3.Error:
                pass

    def interrupted(self) -> NslError:
        """The error of a request whose SQL was interrupted: its time limit, or the server stopping."""
        if self._stopping:
            return Stopping("the server is stopping: the request was stopped, and nothing was changed")
        return Timeout(f"the request took longer than {self.time_limit:g} s and was stopped; nothing was changed")

    def open_db(self) -> Database:
        """This thread's connection to the database, opened on first use."""
        cached = getattr(self._local, "db", None)
        if cached is not None and cached[0] == self._generation:
            return cached[1]
        db = Database.open(self.db_path)
        with self._lock:
            self._opened.append(db)
            self._local.db = (self._generation, db)
        return db

    # -- the pipeline
    def respond(self, req: Request) -> Response:
        """The Response to one request: the steps of the module's docstring, in that order, with every
        exception turned into the JSON error shape."""
        try:
            self.cap_body(req)
            self.route(req)
            if req.route.permission == PUBLIC:
                resp = self.handle(req)  # the web interface's files: no database, no token
            else:
                resp = self.with_database(req)
            if resp.body is None:  # a Response may carry its bytes already (the web interface's files)
                resp.body = dumps(resp.doc)
            return resp
        except NslError as e:
            return error_response(e)
        except UnicodeError:
            # Only a string holding a lone surrogate (which JSON escapes can make) gets this far.
            return error_response(BadInput("a string holds a lone surrogate (invalid Unicode); it cannot be stored"))
        except sqlite3.OperationalError as e:
            code = sqlite_code(e)  # SQLite's result code: the message may hold a user's names
            if code == sqlite3.SQLITE_INTERRUPT:
                return error_response(self.interrupted())
            if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                return error_response(Locked("the database is busy; try again"))
            return self._internal(req)
        except Exception:
            return self._internal(req)

    def _internal(self, req: Request) -> Response:
        try:
            log = self.log or sys.stderr
            log.write(f"nsl serve: error in {req.method} {req.raw_path}\n{traceback.format_exc()}")
            log.flush()
        except Exception:  # noqa: BLE001  (a broken log must not turn a 500 into a crash)
            pass
        return error_response(Internal("internal error"))

    def cap_body(self, req: Request) -> None:
        env = req.environ
        text = env.get("CONTENT_LENGTH")
        if text:
            text = text.strip()
        if text:
            if not re.fullmatch(r"[0-9]{1,20}", text):
                raise BadInput(f"invalid Content-Length {text!r}")
            n = int(text)
            if n > self.max_body:
                raise BodyTooLarge(f"the request body ({n} bytes) is larger than the {self.max_body} bytes allowed")
            env["nsl.content_length"] = n
        if env.get("wsgi.input") is not None:
            env["wsgi.input"] = _CappedInput(env["wsgi.input"], self.max_body)

    def route(self, req: Request) -> None:
        """Find the request's route and its path parameters: the first route whose pattern and method
        fit; a path some route fits with other methods only is a 405 naming them."""
        path = req.raw_path
        segs = path[1:].split("/") if path.startswith("/") else None
        allow = []
        if segs is not None:
            n = len(segs)
            for route in self.routes:
                if route.nseg != n or not route.matches(segs):
                    continue
                if route.method == req.method:
                    req.route = route
                    req.params = {name: _decode_segment(segs[i]) for i, name in route.named}
                    return
                allow.append(route.method)
        if allow:
            raise MethodNotAllowed(f"{req.method} is not allowed here; use {' or '.join(allow)}", allow)
        raise UnknownRoute(f"no such endpoint: {req.method} {req.raw_path[:200]}",
                           hint="the API lives under /api/v1 (for example GET /api/v1/tables)")

    def with_database(self, req: Request) -> Response:
        db = self.open_db()
        conn = db.conn
        if conn.in_transaction:  # never inherit a transaction a failed request left behind
            conn.execute("ROLLBACK")
        deadline = time.monotonic() + self.time_limit
        conn.set_progress_handler(lambda: time.monotonic() > deadline, 20_000)
        req.db = db
        try:
            if req.method == "GET":
                return self.answer_get(req)
            self.authorize(req)
            return self.handle(req)
        finally:
            conn.set_progress_handler(None, 0)
            if conn.in_transaction:
                conn.execute("ROLLBACK")

    def answer_get(self, req: Request) -> Response:
        """A GET (which changes nothing) is answered from the tokens and table metadata the connection
        keeps, tentatively: the handler's own statements check that they still held (one GET of an
        object is then one statement in all). If the database had changed, the answer, whatever it
        was (a 401 included), is dropped and the GET is answered again from one read transaction."""
        db = req.db
        with db.tentative() as check:
            try:
                self.authorize(req)
                resp = self.handle(req)
            except (NslError, sqlite3.Error) as e:
                resp = e
        if not check.ok:
            req.token_name = req.role = None
            with db.read():
                self.authorize(req)
                return self.handle(req)
        if isinstance(resp, BaseException):
            raise resp
        return resp

    def authorize(self, req: Request) -> None:
        """Set the caller's token name and role from the Authorization header, or refuse the request."""
        if tokens.count(req.db) == 0:
            if not self.open_access:
                raise Unauthorized("this server needs a token, and its database has none: no request is allowed",
                                   hint="an admin makes one with `nsl token add NAME --role ROLE`")
            req.role = "admin"  # no tokens: open access (loopback, or --insecure)
        else:
            header = req.environ.get("HTTP_AUTHORIZATION", "")
            scheme, _, token = header.strip().partition(" ")
            if not header:
                raise Unauthorized("this server needs a token: send Authorization: Bearer TOKEN",
                                   hint="an admin makes one with `nsl token add NAME --role ROLE`")
            if scheme.lower() != "bearer" or not token.strip():
                raise InvalidToken("the Authorization header must be: Bearer TOKEN")
            found = tokens.check(req.db, token.strip())
            if found is None:
                raise InvalidToken("the token is not valid for this database")
            req.token_name, req.role = found
        need = req.route.permission
        if not req.may(need):
            raise Forbidden(f"token {req.token_name!r} has role {req.role!r}, which may not {need}",
                            hint=f"use a token whose role allows {need}")

    def handle(self, req: Request) -> Response:
        """Parse the JSON body (when the route takes one), check the query, run the handler."""
        mode = req.route.body
        if mode is not None:
            raw = req.read_body()
            if raw.strip():
                req.json = loads(raw)
            elif mode == "json":
                raise BadInput("this request needs a JSON body")
            elif raw:
                # An optional body is left out by sending no bytes at all; whitespace alone is not JSON.
                raise InvalidJSON("invalid JSON: the body is only whitespace; send a JSON document, or no body")
        req.query  # noqa: B018  (unknown query parameters fail before the handler runs)
        out = req.route.handler(req)
        return out if isinstance(out, Response) else Response(200, out)


def sqlite_code(e: BaseException) -> int:
    """The primary result code (SQLITE_BUSY, SQLITE_INTERRUPT, ...) of a sqlite3 exception; 0 if none."""
    code = getattr(e, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else 0


# "200 OK" and the like, made once.
_STATUS_LINES = {code: f"{code} {reason}" for code, reason in http.client.responses.items()}


def status_line(status: int) -> str:
    """The status as WSGI wants it: "404 Not Found"."""
    line = _STATUS_LINES.get(status)
    return line if line is not None else f"{status} {http.client.responses.get(status, '')}"


def error_response(e: NslError) -> Response:
    status = getattr(e, "http_status", 500)
    if not isinstance(status, int) or not 400 <= status <= 599:
        status = 500
    doc = {"error": {k: _clean(v) for k, v in e.to_dict().items()}}
    return Response(status, doc, list(getattr(e, "headers", ()) or ()), dumps(doc))


def _clean(text) -> str:
    """Text JSON can carry: a lone surrogate (from a bad key or name) is shown escaped."""
    text = str(text)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
