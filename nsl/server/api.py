"""The REST JSON API under /api/v1: the route table and its handlers.

Every handler checks its input's shape, then makes one core call (reads may take a few); whatever the
core raises becomes the JSON error of the app's error middleware. Keys in URLs are text: the core's key
resolution matches them to integer keys too.
"""
from __future__ import annotations

import re
import sqlite3

from ..core import batch, commits, conflicts, history, objects, sql as sqlmod
from ..core import verify as verifymod
from ..core.values import INT64_MAX, INT64_MIN, loads
from ..errors import (AmbiguousRef, BadInput, InvalidName, InvalidObject, InvalidPredicate, ReadOnlySQL,
                      UnknownObject)
from . import openapi, static
from .app import PUBLIC, Forbidden, Request, Response, Route, sqlite_code

API = "/api/v1"
DEFAULT_LIMIT = 1000        # objects per find when no limit is given
MAX_LIMIT = 100_000
DEFAULT_LOG = 100           # commits per log when no n is given
MAX_LOG = 100_000
DEFAULT_LINES = 1000        # lines of a commit shown when no lines is given
MAX_LINES = 1_000_000


def _type(v) -> str:
    return {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number",
            bool: "a boolean", type(None): "null"}.get(type(v), type(v).__name__)


def _body_object(req: Request, allowed: set, required: set = frozenset()) -> dict:
    body = req.json if req.json is not None else {}
    if not isinstance(body, dict):
        raise BadInput(f"the body must be a JSON object, got {_type(body)}")
    extra = sorted(set(body) - allowed)
    if extra:
        raise BadInput(f"unknown field {extra[0]!r} " + (
            f"(fields: {', '.join(sorted(allowed))})" if allowed else "(this endpoint takes none)"))
    for name in sorted(required):
        if name not in body:
            raise BadInput(f"the body needs a {name!r} field")
    return body


def _opt_str(body: dict, name: str) -> str | None:
    v = body.get(name)
    if v is not None and not isinstance(v, str):
        raise BadInput(f"{name} must be a string, got {_type(v)}")
    return v


def _opt_count(value, name: str, default, maximum):
    if value is None:
        return default
    if type(value) is float and value.is_integer():
        value = int(value)  # 76.0 is the integer 76 to JSON Schema, and so to the OpenAPI document
    if type(value) is not int or value < 0:
        raise BadInput(f"{name} must be a whole number of 0 or more, got {_type(value)} {value!r}")
    if value > maximum:
        raise BadInput(f"{name} must be at most {maximum}")
    return value


def _writable_table_name(name: str) -> str:
    """Names that read as paths are refused for writes over HTTP (a lookup of one is simply a 404)."""
    if name in (".", "..") or "/" in name or "\\" in name:
        raise InvalidName(f"invalid table name {name!r}: '/', '\\\\', '.' and '..' are not table names here")
    if "{" in name or "}" in name:
        # The core builds commit text for all-new rows with str.format on the table's name: a brace
        # there fails (or, doubled, records a commit whose hash verify rejects). Until it is fixed there,
        # such names are refused over HTTP.
        raise InvalidName(f"invalid table name {name!r}: '{{' and '}}' are not allowed in table names here")
    return name


def _keyed(obj: dict, key_col: str, where: str) -> dict:
    """An object to save over HTTP: a null key means "give it a new key" (the attribute is dropped, so
    no row is ever stored under a NULL key), and an empty key is refused (no URL could name it)."""
    if key_col in obj:
        k = obj[key_col]
        if k is None:
            return {a: v for a, v in obj.items() if a != key_col}
        if k == "":
            raise InvalidObject(f"{where}: the key {key_col!r} is empty; a URL could not name the object",
                                hint=f"leave {key_col!r} out (or null) to get a new key")
    return obj


def _who(req: Request) -> tuple[str | None, str | None]:
    """(message, author) of a write: ?message= and ?author=, the author defaulting to the token's name."""
    q = req.query
    return q.get("message") or None, q.get("author") or req.token_name


def _created(res) -> Response:
    return Response(201 if res.commit else 200, res.to_dict())


# ---- tables and objects -------------------------------------------------------------------------

def list_tables(req: Request):
    db = req.db
    out = []
    with db.read():
        for t in db.tables():
            try:
                n = db.conn.execute(f"SELECT count(*) FROM {t.q}").fetchone()[0]
            except sqlite3.OperationalError:
                n = None  # tracked, but dropped with plain SQL since
            out.append({"name": t.name, "key": t.key_col, "columns": t.columns, "count": n})
    return {"tables": out}


def _find(db, table, where, sort, limit, skip, fields):
    if where is not None and not isinstance(where, dict):
        raise InvalidPredicate(f"where must be a JSON object, got {_type(where)}")
    if sort is not None and not isinstance(sort, (str, list)):
        raise InvalidPredicate(f"sort must be a string or an array of strings, got {_type(sort)}")
    if isinstance(fields, str):
        fields = [f.strip() for f in fields.split(",")] if fields.strip() else None
    elif fields is not None:
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            raise BadInput("fields must be a string (a,b.c) or an array of strings")
    limit = _opt_count(limit, "limit", DEFAULT_LIMIT, MAX_LIMIT)
    skip = _opt_count(skip, "skip", 0, 1 << 62)
    with db.read():
        found = list(objects.find(db, table, where, sort=sort, limit=limit, skip=skip, fields=fields or None))
    return {"objects": found, "limit": limit, "skip": skip}


def find_objects(req: Request):
    q = req.query
    where = q.get("where")
    if where is not None and where.strip():
        where = loads(where)
    else:
        where = None
    return _find(req.db, req.params["table"], where, q.get("sort") or None,
                 req.int_arg("limit"), req.int_arg("skip"), q.get("fields"))


def find_post(req: Request):
    body = _body_object(req, {"table", "where", "sort", "limit", "skip", "fields"}, {"table"})
    table = body["table"]
    if not isinstance(table, str):
        raise BadInput(f"table must be a string, got {_type(table)}")
    return _find(req.db, table, body.get("where"), body.get("sort"), body.get("limit"), body.get("skip"),
                 body.get("fields"))


def save_objects(req: Request):
    table = _writable_table_name(req.params["table"])
    body = req.json
    items = body if isinstance(body, list) else [body]
    for i, obj in enumerate(items, 1):
        if not isinstance(obj, dict):
            raise InvalidObject(f"object {i}: expected a JSON object, got {_type(obj)}")
    tbl = req.db.table(table, missing_ok=True)
    key_col = tbl.key_col if tbl is not None else "id"
    items = [_keyed(obj, key_col, f"object {i}") for i, obj in enumerate(items, 1)]
    message, author = _who(req)
    res = objects.save(req.db, table, items, message=message, author=author, collect_keys=True)
    return _created(res)


def _url_key(text: str):
    """The key a URL names for a new object: an integer when written as one (no sign or zero padding
    games), else the text. An existing object is always found whichever it is."""
    if text.isascii() and text.lstrip("-").isdigit() and str(int(text)) == text and INT64_MIN <= int(text) <= INT64_MAX:
        return int(text)
    return text


def _lookup_key(text: str):
    """The key to hand the core's lookups for a key named in a URL (or ?key=).

    The core reads text that looks like an integer as one too (/objects/7 finds 7 and "7"). Two of its edge
    cases are worked around here until it is fixed: "-9223372036854775808" (the smallest 64-bit integer,
    20 characters) is not tried as an integer, and text such as "\u00b2" or "--5" passes its digit test but
    then fails int() (a 500)."""
    s = text.strip()
    if s.lstrip("-").isdigit():
        if not (s.isascii() and re.fullmatch(r"-?[0-9]+", s)):
            raise BadInput(f"key {text!r} cannot be looked up: a key that reads as a number must be ASCII "
                           "digits with at most one leading '-'")
        if len(s) >= 20 and INT64_MIN <= int(s) <= INT64_MAX:
            return int(s)
    return text


def get_object(req: Request):
    return objects.get(req.db, req.params["table"], _lookup_key(req.params["key"]))


def put_object(req: Request):
    db, table, key = req.db, _writable_table_name(req.params["table"]), req.params["key"]
    body = req.json
    if not isinstance(body, dict):
        raise InvalidObject(f"the body must be one JSON object, got {_type(body)}")
    tbl = db.table(table, missing_ok=True)
    key_col = tbl.key_col if tbl is not None else "id"
    if key_col in body:
        v = body[key_col]
        if type(v) not in (str, int) or str(v) != key:
            raise BadInput(f"the object's {key_col!r} is {v!r}, but the URL names key {key!r}",
                           hint=f"leave {key_col!r} out of the body, or make it equal to the key in the URL")
        stored = v
    else:
        stored = _url_key(key)
        if tbl is not None:
            try:
                stored = objects.get(db, tbl.name, _lookup_key(key))[key_col]
            except (UnknownObject, BadInput):  # BadInput: a key _lookup_key refuses is text, as stored is
                pass
    obj = {key_col: stored, **{k: v for k, v in body.items() if k != key_col}}
    message, author = _who(req)
    res = objects.save(db, table, [obj], message=message, author=author, collect_keys=True)
    return res.to_dict()


def delete_object(req: Request):
    message, author = _who(req)
    res = objects.delete(req.db, req.params["table"], [_lookup_key(req.params["key"])], message=message, author=author)
    return res.to_dict()


def object_history(req: Request):
    return {"history": history.history(req.db, req.params["table"], _lookup_key(req.params["key"]))}


# ---- SQL, commits, history ----------------------------------------------------------------------

def run_sql(req: Request):
    body = _body_object(req, {"sql", "params", "write"}, {"sql"})
    text = body["sql"]
    if not isinstance(text, str):
        raise BadInput(f"sql must be a string, got {_type(text)}")
    params = body.get("params")
    if params is None:
        params = ()
    elif isinstance(params, list):
        bad = [p for p in params if isinstance(p, (dict, list))]
    elif isinstance(params, dict):
        bad = [p for p in params.values() if isinstance(p, (dict, list))]
    else:
        raise BadInput(f"params must be an array (for ?) or an object (for :name), got {_type(params)}")
    if params and bad:
        raise BadInput("params must be strings, numbers, booleans or null")
    want = body.get("write")
    if want is not None and not isinstance(want, bool):
        raise BadInput(f"write must be true or false, got {_type(want)}")
    may_write = req.may("write")
    if want and not may_write:
        raise Forbidden(f"token {req.token_name!r} has role {req.role!r}, which may not write",
                        hint="use a token whose role allows write")
    # SQLite decides what writes (query_only), never the SQL's text: the statement is first run
    # read-only, and run again allowing writes only if SQLite refused it and the caller may write
    # (a refused statement has had no effect). So reads never wait for the write lock.
    write = bool(want)
    try:
        try:
            cols, rows = sqlmod.run(req.db, text, params, write=write)
        except ReadOnlySQL as e:
            what = e.data.get("what")
            detail = f" ({what})" if what else ""
            if want is False:
                raise ReadOnlySQL(f'this SQL writes{detail}, and the request says "write": false') from None
            if not may_write:
                if not e.data.get("writable", True):  # a setting no SQL may change, whatever the role
                    raise ReadOnlySQL(f"this SQL writes{detail}, and token {req.token_name!r} (role {req.role!r}) "
                                      "may only read; no SQL may change this setting") from None
                raise ReadOnlySQL(f"this SQL writes{detail}, and token {req.token_name!r} (role {req.role!r}) "
                                  "may only read", hint="use a token whose role allows write") from None
            write = True
            cols, rows = sqlmod.run(req.db, text, params, write=True)
    except sqlite3.OperationalError as e:
        if sqlite_code(e) == sqlite3.SQLITE_INTERRUPT:
            raise req.app.interrupted() from None
        raise
    return {"columns": cols, "rows": [list(r) for r in rows], "write": write}


def post_commit(req: Request):
    body = _body_object(req, {"message", "author", "ops"}, {"ops"})
    message, author = _opt_str(body, "message"), _opt_str(body, "author")
    ops = body["ops"]
    if isinstance(ops, list):
        for i, op in enumerate(ops, 1):
            if isinstance(op, dict) and isinstance(op.get("save"), dict):
                t = op["save"].get("table")
                if isinstance(t, str):
                    _writable_table_name(t)
                    obj, key_col = op["save"].get("object"), op["save"].get("key")
                    if type(obj) is dict and (key_col is None or isinstance(key_col, str)):
                        if key_col is None:
                            tbl = req.db.table(t, missing_ok=True)
                            key_col = tbl.key_col if tbl is not None else "id"
                        op["save"]["object"] = _keyed(obj, key_col, f"op {i}")
    res = batch.apply(req.db, ops, message=message, author=author or req.token_name)
    return _created(res)


def get_log(req: Request):
    q = req.query
    table, key = q.get("table") or None, q.get("key")
    if key is not None and table is None:
        raise BadInput("key needs table")
    n = req.int_arg("n", DEFAULT_LOG, maximum=MAX_LOG)
    return {"commits": history.log(req.db, table, _lookup_key(key) if key else None, limit=n)}


def get_commit(req: Request):
    lines = req.int_arg("lines", DEFAULT_LINES, maximum=MAX_LINES)
    ref = req.params["uuid"]
    rest = ref.strip()[4:] if ref.strip()[:4].upper() == "HEAD" else ""
    if rest[1:] and not (rest[1:].isascii() and rest[1:].isdigit()):
        # HEAD~N takes ASCII digits only (the core's isdigit() lets "²" through to int(), which fails).
        raise AmbiguousRef(f"cannot understand {ref!r}: use HEAD, HEAD~N or a commit uuid prefix")
    return history.show(req.db, ref, limit_lines=lines)


def get_head(req: Request):
    db = req.db
    with db.read():
        return {"head": commits.head(db)}


def post_verify(req: Request):
    _body_object(req, set())  # no options yet: an empty body or {}
    return verifymod.verify(req.db).to_dict()


def list_conflicts(req: Request):
    table = req.query.get("table")
    with req.db.read():
        if table is not None:
            table = req.db.table(table).name
        return {"conflicts": conflicts.conflict_list(req.db, table)}


def resolve_conflict(req: Request):
    body = _body_object(req, {"take", "object", "message", "author"})
    msg, author = _opt_str(body, "message"), _opt_str(body, "author") or req.token_name
    res = conflicts.resolve(req.db, req.params["table"], _lookup_key(req.params["key"]), take=body.get("take"),
                            obj=body.get("object"), message=msg, author=author)
    return _created(res)


def post_sync(req: Request):
    """One round of sync (nsl push/pull/sync/clone): the reply to a sync message. Pulling needs the
    read permission; sending artifacts needs sync (the roles sync, write and admin)."""
    from ..sync import server as syncserver

    return syncserver.handle(req.db, req.json, may_push=req.may("sync"))


# ---- the one route table ------------------------------------------------------------------------

_WHO = ("message", "author")

ROUTES = [
    Route("GET", f"{API}/tables", list_tables, "read",
          summary="Tracked tables: name, key column, columns and object count."),
    Route("GET", f"{API}/tables/{{table}}/objects", find_objects, "read",
          query=("where", "sort", "limit", "skip", "fields"),
          summary="Objects of a table matching ?where=<JSON predicate>, sorted, paged, picked."),
    Route("POST", f"{API}/tables/{{table}}/objects", save_objects, "write", query=_WHO, body="json",
          summary="Save one object or an array of objects in one commit (201)."),
    Route("GET", f"{API}/tables/{{table}}/objects/{{key}}", get_object, "read",
          summary="One object by key."),
    Route("PUT", f"{API}/tables/{{table}}/objects/{{key}}", put_object, "write", query=_WHO, body="json",
          summary="Save the body as the object with this key (a new version, or a new object)."),
    Route("DELETE", f"{API}/tables/{{table}}/objects/{{key}}", delete_object, "write", query=_WHO,
          summary="Delete one object, in one commit."),
    Route("GET", f"{API}/tables/{{table}}/objects/{{key}}/history", object_history, "read",
          summary="Every version of one object, newest first."),
    Route("POST", f"{API}/find", find_post, "read", body="json",
          summary='Find: {"table", "where", "sort", "limit", "skip", "fields"}.'),
    Route("POST", f"{API}/sql", run_sql, "read", body="json",
          summary='One SQL statement {"sql", "params"}; read-only unless the token may write.'),
    Route("POST", f"{API}/commits", post_commit, "write", body="json",
          summary='Saves and deletes over any tables in one commit, or none: {"message", "author", "ops"}.'),
    Route("GET", f"{API}/log", get_log, "read", query=("table", "key", "n"),
          summary="Commits, newest first (of a table or an object when given)."),
    Route("GET", f"{API}/commits/{{uuid}}", get_commit, "read", query=("lines",),
          summary="One commit with its lines (uuid, a unique prefix, HEAD or HEAD~N)."),
    Route("GET", f"{API}/head", get_head, "read",
          summary="The head: the newest commit's uuid, standing for all the data."),
    Route("POST", f"{API}/verify", post_verify, "read", body="optional",
          summary="Recompute every hash and compare the tables with the history."),
    Route("GET", f"{API}/conflicts", list_conflicts, "read", query=("table",),
          summary="Objects changed on two sides (after a sync): ours, theirs, their base, what each changed."),
    Route("POST", f"{API}/tables/{{table}}/objects/{{key}}/resolve", resolve_conflict, "write", body="json",
          summary='Merge an object in conflict: {"take": VERSION} (or "deleted") or {"object": {...}} (201).'),
    Route("POST", "/sync", post_sync, "read", body="json",
          summary="Sync between nsl databases (push, pull, clone): one round, one JSON message each way."),
    Route("GET", "/openapi.json", openapi.serve, PUBLIC,
          summary="This API's OpenAPI 3.1 document (public)."),
    # The web interface (static files shipped in nsl/server/web; public: the page asks for a token itself).
    Route("GET", "/", static.index, PUBLIC, summary="The web interface (HTML)."),
    Route("GET", "/static/{file}", static.static_file, PUBLIC, query=("v",),
          summary="The web interface's CSS, JS and icon (?v=: the version the page names)."),
]
