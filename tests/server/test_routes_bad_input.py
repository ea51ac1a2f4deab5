"""Every route of the route table, walked with bad input: each answer is a clean JSON 4xx error and
nothing changes (same head, same tables, verify clean, no file touched)."""
from __future__ import annotations

import io
import json
from urllib.parse import quote

import pytest

import nsl
from nsl.core import values
from nsl.server import api as apimod
from nsl.server.app import App

SMALL_CAP = 64 * 1024
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")

# Raw path segments (already percent-encoded as a client would send them).
INJECTIONS = [
    quote("x'; DROP TABLE people; --", safe=""),
    quote('people"; DELETE FROM people; --', safe=""),
    quote("1 OR 1=1", safe=""),
    quote("people WHERE 1=1", safe=""),
    "nsl_commit", "sqlite_master", "%2E%2E", "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd", "a%2Fb", "%2Fetc%2Fpasswd",
    "%00", "%FF%FE", "%C0%AE%C0%AE", "x" * 300, "%252E%252E",
]

MALFORMED = [b"{", b"[1,", b"nul", b"{'a': 1}", b"\xff\xfe{}", b'{"a": NaN}', b'{"a": Infinity}', b'{"a": 1}x',
             b'{"a": 99999999999999999999999}', b'"\\ud800"']
WRONG_TYPES = [b"[]", b'"text"', b"5", b"true", b"null", b"[1, 2]"]

BAD_QUERIES = {
    "GET /api/v1/tables/{table}/objects": [
        "where=%7B", "where=%5B1%5D", "where=%7B%22%24where%22%3A%221%22%7D",
        "where=%7B%22a%22%3A%7B%22%24regex%22%3A1%7D%7D",
        "where=" + quote(json.dumps({"$or": "x'; DROP TABLE people; --"})),
        "where=" + quote(json.dumps({"name": {"$in": "x' OR 1=1"}})),
        "where=" + quote(json.dumps({"name": {"$gt": {"$lt": 1}, "$drop": 1}})),
        "limit=-1", "limit=abc", "limit=1e3", "limit=99999999999999999999", "skip=-1", "skip=x",
        "sort=-", "sort=a,,b", "fields=a,,b", "fields=.", "where=%FF", "limit=1&limit=2",
    ],
    "GET /api/v1/log": ["n=-1", "n=x", "key=1", "table=nope", "table=" + quote("x' OR 1=1 --"),
                        "table=people&key=999", "table=people&key=" + quote("1 OR 1=1")],
    "GET /api/v1/commits/{uuid}": ["lines=-5", "lines=x", "lines=999999999"],
}

BAD_BODIES = {
    "POST /api/v1/tables/{table}/objects": [
        [1], [{"id": [1]}], [], {"id": {"a": 1}}, {"a.b": 1}, {"$x": 1}, {"": 1}, {"id": 1, "ID": 2},
        [{"id": 10}, "x"], {"id": 1.5}, {"id": True}],
    "PUT /api/v1/tables/{table}/objects/{key}": [
        {"id": 2}, {"id": "1x"}, {"id": True}, [{"id": 1}], {"a.b": 1}, {"id": 1, "ID": 1}],
    "POST /api/v1/find": [
        {"table": 5}, {}, {"table": "nope"}, {"table": "people", "limit": "x"}, {"table": "people", "limit": -1},
        {"table": "people", "limit": True}, {"table": "people", "skip": 1.5}, {"table": "people", "where": []},
        {"table": "people", "where": {"$where": "1"}}, {"table": "people", "fields": [1]},
        {"table": "people", "fields": 5}, {"table": "people", "sort": 5}, {"table": "people", "bogus": 1},
        {"table": "x'; DROP TABLE people; --"}, {"table": "people", "where": {"id": {"$regex": "("}}},
        {"table": "people", "where": {"name') OR 1=1 --": {"$bogus": 1}}}],
    "POST /api/v1/sql": [
        {"sql": 5}, {"sql": ""}, {}, {"sql": "SELEC 1"}, {"sql": "SELECT ?", "params": "x"},
        {"sql": "SELECT ?", "params": [{}]}, {"sql": "SELECT 1; DROP TABLE people"},
        {"sql": "DROP TABLE people", "write": "yes"}, {"sql": "DELETE FROM nsl_version"},
        {"sql": "ATTACH DATABASE 'evil.db' AS evil"}, {"sql": "PRAGMA query_only = 0"},
        {"sql": "DELETE FROM people", "write": False}, {"sql": "SELECT * FROM nope"},
        {"sql": "SELECT 1", "bogus": 1}, {"sql": "SELECT :a", "params": {"a": [1]}},
        {"sql": "CREATE TRIGGER nsl_x AFTER INSERT ON people BEGIN SELECT 1; END"},
        {"sql": "UPDATE nsl_meta SET value = 'x'"}],
    "POST /api/v1/commits": [
        {"ops": "x"}, {"ops": []}, {}, {"ops": [{"save": {"table": "people", "object": [1]}}]},
        {"ops": [{"delete": {"table": "people", "key": 1}}], "message": 5},
        {"ops": [{"delete": {"table": "people", "key": 1}}], "author": ["x"]},
        {"ops": [{"save": {"table": "people", "object": {"id": 5}}}, {"delete": {"table": "people", "key": 999}}]},
        {"ops": [{"save": {"table": "x'; DROP TABLE people; --", "object": {"id": {"a": 1}}}}]},
        {"ops": [{"save": {"table": "..", "object": {"id": 1}}}]},
        {"ops": [{"save": {"table": "a/b", "object": {"id": 1}}}]},
        {"ops": [{"save": {"table": "nsl_commit", "object": {"id": 1}}}]},
        {"ops": [{"drop": {"table": "people"}}]}, {"bogus": 1, "ops": []},
        {"ops": [{"delete": {"table": "people", "key": {"$gt": 0}}}]},
        {"ops": [{"save": {"table": "people", "object": {"id": 1, "name": "A"}}},
                 {"delete": {"table": "people", "key": 1}}]}],
    "POST /api/v1/verify": [{"deep": True}],
}

GOOD_PARAMS = {"table": "people", "key": "1", "uuid": "HEAD", "file": "app.js"}
UNKNOWN_ROUTES = ["/index.html", "/api", "/api/v1", "/api/v1/", "/api/v2/tables", "/api/v1/tables/", "/etc/passwd",
                  "/api/v1/tables/people/objects/1/history/x", "//api/v1/tables", "/api/v1/TABLES",
                  "/api/v1/tables/people/objects/%2E%2E/%2E%2E/history", "/static/../../etc/passwd", "/static/", "/static/web/app.js", "/static/%2E%2E%2Fapi.py",
                  "/api/v1/tables/people/objects/1/..%2F..%2F..%2Fetc%2Fpasswd/history"]

_TRACE_WORDS = ("Traceback", 'File "', "site-packages", "nsl/core", "sqlite3.", "Error:", "line ")


def check_error(r, where=""):
    what = f"{r.request.method} {r.request.url} {where} -> {r.status_code}: {r.text[:300]}"
    assert 400 <= r.status_code < 500, what
    assert r.headers.get("Content-Type") == "application/json", what
    doc = r.json()
    assert set(doc) == {"error"}, what
    err = doc["error"]
    assert set(err) <= {"code", "message", "hint"}, what
    assert isinstance(err["code"], str) and isinstance(err["message"], str), what
    assert err["code"] and err["message"], what
    for word in _TRACE_WORDS[:4]:
        assert word not in r.text, what
    return err


def fill(pattern: str, **params) -> str:
    values_ = {**GOOD_PARAMS, **params}
    out = pattern
    for k, v in values_.items():
        out = out.replace("{" + k + "}", v)
    return out


def route_id(route) -> str:
    return f"{route.method} {route.pattern}"


SEED = [{"id": 1, "name": "Ada", "age": 36}, {"id": 2, "name": "Bob", "age": 20}]


@pytest.fixture
def walked(server_db, start_server, tmp_path):
    """A client of a server (with a small body cap) on a database with content; at teardown, the
    database must be exactly as it was: same head, same tables and rows, verify clean, no new file."""
    db = nsl.open(server_db)
    head = nsl.save(db, "people", SEED, message="seed").commit
    db.close()
    running = start_server(server_db, max_body=SMALL_CAP)
    files = sorted(p.name for p in tmp_path.rglob("*"))
    client = running.api()
    yield client
    assert client.get("head").json() == {"head": head}
    db = nsl.open(server_db)
    try:
        rep = nsl.verify(db)
        assert rep.ok and rep.uncommitted == 0, rep.problems
        assert rep.head == head
        assert [t.name for t in db.tables()] == ["people"]
        assert db.table("people").columns == ["id", "name", "age"]
        assert list(nsl.find(db, "people")) == SEED
    finally:
        db.close()
    after = sorted(p.name for p in tmp_path.rglob("*"))
    assert [f for f in after if f not in files and not f.startswith("served.db")] == []


def test_every_route_with_bad_input(walked, tmp_path):
    client = walked
    routes = apimod.ROUTES
    seen = set()
    by_pattern = {}
    for route in routes:
        by_pattern.setdefault(route.pattern, set()).add(route.method)
    assert len({route_id(r) for r in routes}) == len(routes), "a route is listed twice"

    for route in routes:
        rid = route_id(route)
        path = fill(route.pattern)
        n_before = len(seen)

        # Wrong methods: 405 with the methods that exist.
        for m in METHODS:
            if m not in by_pattern[route.pattern]:
                r = client.request(m, path, data=b"{}")
                err = check_error(r, "wrong method")
                assert r.status_code == 405 and err["code"] == "method_not_allowed"
                assert set(r.headers["Allow"].split(", ")) == by_pattern[route.pattern]
                seen.add((rid, "405"))

        # An unknown query parameter, and bad values of the known ones.
        for qs in ["bogus=1", "%FF=1"] + BAD_QUERIES.get(rid, []):
            r = client.request(route.method, path + "?" + qs,
                               **({"json": {"table": "people", "ops": [], "sql": "SELECT 1"}} if route.body else {}))
            check_error(r, qs)
            seen.add((rid, "query"))

        # A body over the cap: 413 for every route, before anything else is looked at.
        r = client.request(route.method, path, data=b"x" * (SMALL_CAP + 1))
        err = check_error(r, "huge body")
        assert r.status_code == 413 and err["code"] == "body_too_large"

        # Path parameters: unknown names, injections, traversal.
        names = [p.strip("{}") for p in route.pattern.split("/") if p.startswith("{")]
        for name in names:
            for bad in ["nope", "3"] + INJECTIONS:
                if name == "table" and bad == "3":
                    continue
                body = {"data": b"{"} if route.body == "json" else {}
                r = client.request(route.method, fill(route.pattern, **{name: bad}), **body)
                err = check_error(r, f"{name}={bad}")
                if route.body != "json" and not bad.startswith("%FF") and not bad.startswith("%C0"):
                    if name == "uuid":
                        assert err["code"] in ("unknown_commit", "ambiguous_ref"), err
                    else:
                        assert r.status_code == 404, (bad, err)
                seen.add((rid, "path"))

        # Bodies: malformed JSON, wrong types, wrong shapes.
        if route.body:
            for raw in MALFORMED + WRONG_TYPES:
                if route.body == "optional" and raw == b"null":
                    continue  # "null" is an empty body for an endpoint without options
                r = client.request(route.method, path, data=raw, headers={"Content-Type": "application/json"})
                err = check_error(r, f"body {raw!r}")
                seen.add((rid, "body"))
            if route.body == "json":
                check_error(client.request(route.method, path, data=b""), "empty body")
                check_error(client.request(route.method, path, data=b"  \n"), "blank body")
            for doc in BAD_BODIES.get(rid, []):
                r = client.request(route.method, path, data=values.dumps(doc))
                check_error(r, f"body {doc!r}")
                seen.add((rid, "shape"))
        assert len(seen) > n_before, f"{rid} was not walked"

    # SQL cannot make files.
    evil = tmp_path / "evil.db"
    for sql in (f"ATTACH DATABASE '{evil}' AS evil", f"VACUUM INTO '{evil}'"):
        for write in (None, True):
            body = {"sql": sql} if write is None else {"sql": sql, "write": write}
            check_error(client.post("sql", json=body), sql)
    assert not evil.exists()

    # Unknown routes.
    for p in UNKNOWN_ROUTES:
        for m in ("GET", "POST"):
            r = client.request(m, p)
            err = check_error(r, "unknown route")
            assert r.status_code in (404, 405), err

    # Every route had its bad bodies and queries exercised where it takes them.
    for rid in BAD_BODIES:
        assert (rid, "shape") in seen, rid
    for rid in BAD_QUERIES:
        assert (rid, "query") in seen, rid


def test_injection_in_values_is_only_data(walked):
    """Injection strings that are valid input are matched as plain text and change nothing."""
    client = walked
    for evil in ("x' OR '1'='1", "1; DROP TABLE people; --", '") OR 1=1 --', "%' OR name LIKE '%"):
        r = client.get("tables/people/objects", params={"where": json.dumps({"name": evil})})
        assert r.status_code == 200 and r.json()["objects"] == []
        r = client.get("tables/people/objects", params={"where": json.dumps({evil: 1})})
        assert r.status_code in (200, 400) and (r.status_code == 400 or r.json()["objects"] == []), r.text
        r = client.post("sql", json={"sql": "SELECT count(*) FROM people WHERE name = ?", "params": [evil]})
        assert r.json()["rows"] == [[0]]
        r = client.get("tables/people/objects/" + quote(evil, safe=""))
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_object"


def test_default_cap_is_16_mib(served):
    client = served.api()
    big = b"[" + b" " * (16 * 1024 * 1024) + b"]"
    r = client.post("tables/t/objects", data=big)
    err = check_error(r)
    assert r.status_code == 413 and err["code"] == "body_too_large"
    r = client.post("tables/t/objects", data=b"[" + b" " * (1024 * 1024) + b'{"id": 1}]')
    assert r.status_code == 201, r.text


def test_body_cap_while_reading():
    """Without a Content-Length the cap holds as the body is read."""
    app = App("unused.db", max_body=100)
    from nsl.server.app import BodyTooLarge, Request, _CappedInput

    env = {"REQUEST_METHOD": "POST", "wsgi.input": io.BytesIO(b"x" * 1000), "wsgi.input_terminated": True}
    app.cap_body(Request(env, app))
    assert isinstance(env["wsgi.input"], _CappedInput)
    with pytest.raises(BodyTooLarge):
        Request(env, app).read_body()
    env = {"REQUEST_METHOD": "POST", "wsgi.input": io.BytesIO(b"x" * 100), "wsgi.input_terminated": True}
    app.cap_body(Request(env, app))
    assert Request(env, app).read_body() == b"x" * 100


def test_internal_errors_are_hidden(served, monkeypatch, capfd):
    """An unexpected exception is a 500 with no detail; the traceback goes to the server's stderr."""
    def boom(req):
        raise RuntimeError("secret detail /etc/shadow")

    route = next(r for r in served.app.routes if r.pattern.endswith("/head"))
    import dataclasses

    served.app.routes[served.app.routes.index(route)] = dataclasses.replace(route, handler=boom)
    r = served.api().get("head")
    assert r.status_code == 500
    assert r.json() == {"error": {"code": "internal", "message": "internal error"}}
    assert "secret" not in r.text
    err = capfd.readouterr().err
    assert "Traceback" in err and "secret detail" in err


def test_time_limit(server_db, start_server):
    """A runaway query is stopped at the time limit: a 503 "timeout", nothing changed, the server fine."""
    running = start_server(server_db, time_limit=0.3)
    client = running.api()
    forever = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    for write in (False, True):
        r = client.post("sql", json={"sql": forever, "write": write})
        assert r.status_code == 503 and r.json()["error"]["code"] == "timeout", r.text
    assert client.post("sql", json={"sql": "SELECT 1"}).json()["rows"] == [[1]]
    assert client.post("verify").json()["ok"] is True
