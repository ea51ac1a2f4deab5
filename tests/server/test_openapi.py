"""GET /openapi.json: an OpenAPI 3.1 document of every route, public, and true to what the server answers.

- The document lists exactly the routes of the route table, and building it refuses a route that has no
  description (so a new route cannot be added without one).
- A session's answers, good and bad, match the schemas and content types it gives.
- schemathesis, run against a real server on a fresh database with a write token (so that writes happen),
  finds no server error and no answer that breaks the document, within a bounded time
  (NSL_SCHEMATHESIS_SECONDS, default 45); the database verifies clean afterwards.
"""
from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys

import jsonschema
import pytest

import nsl
from nsl.core import tokens
from nsl.server import api as apimod
from nsl.server import openapi
from nsl.server.app import PUBLIC, Route

DOC = openapi.document(apimod.ROUTES)
SCHEMATHESIS_SECONDS = int(os.environ.get("NSL_SCHEMATHESIS_SECONDS", "45"))


def _operations(doc) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in doc["paths"].items() for method in item}


def _token(db_path, role="write") -> str:
    db = nsl.open(db_path)
    try:
        return tokens.add(db, role, role)
    finally:
        db.close()


# ---- the document and the route table -----------------------------------------------------------

def test_every_route_is_described_and_nothing_else():
    assert _operations(DOC) == {(r.method, r.pattern) for r in apimod.ROUTES}
    assert ("GET", "/openapi.json") in _operations(DOC)


def test_the_document_is_valid_openapi_3_1():
    from openapi_spec_validator import validate

    assert DOC["openapi"].startswith("3.1")
    validate(DOC)


def test_each_operation_has_its_parameters_body_and_answers():
    for r in apimod.ROUTES:
        op = DOC["paths"][r.pattern][r.method.lower()]
        where = f"{r.method} {r.pattern}"
        assert op["summary"] and op["operationId"] == r.handler.__name__, where
        params = {(p["in"], p["name"]) for p in op.get("parameters", [])}
        for name in r.regex.groupindex:
            assert ("path", name) in params, where
        assert {n for i, n in params if i == "query"} == set(r.query), where
        assert ("requestBody" in op) == (r.body is not None), where
        if r.body is not None:
            assert op["requestBody"]["required"] == (r.body == "json"), where
        statuses = set(op["responses"])
        assert any(s.startswith("2") for s in statuses), where
        assert {"400", "413", "500"} <= statuses, where
        if r.permission == PUBLIC:
            assert op["security"] == [], where
            assert not {"401", "403", "503"} & statuses, where
        else:
            assert op["security"] == [{"bearer": []}], where
            assert {"401", "503"} <= statuses, where
            assert ("403" in statuses) == (r.permission != "read" or r.pattern.endswith(("/sql", "/sync"))), where
        if r.regex.groupindex:
            assert "404" in statuses, where
        for status, resp in op["responses"].items():
            if status >= "400":
                schema = resp["content"]["application/json"]["schema"]
                assert schema["allOf"][0] == {"$ref": "#/components/schemas/Error"}, where


def test_error_codes_are_those_the_server_raises():
    codes = openapi.error_codes()
    assert {"unauthorized", "invalid_token"} == set(codes[401])
    assert {"unknown_route", "unknown_table", "unknown_object", "unknown_commit", "unknown_file"} <= set(codes[404])
    assert {"bad_input", "invalid_json", "invalid_name", "invalid_predicate", "sql_error"} <= set(codes[400])
    assert {"invalid_object", "value_out_of_range", "bad_artifact"} == set(codes[422])
    assert {"locked", "timeout"} <= set(codes[503])
    assert "internal" in codes[500] and "method_not_allowed" in codes[405]


def test_a_route_without_a_description_is_refused():
    def handler(req):
        return {}

    new = Route("GET", "/api/v1/new", handler, "read")
    with pytest.raises(openapi.Undescribed, match="GET /api/v1/new: no description"):
        openapi.document([*apimod.ROUTES, new])
    # ... and a description without a route, or one that disagrees with its route
    with pytest.raises(openapi.Undescribed, match="not in the route table"):
        openapi.document(apimod.ROUTES[1:])
    first = apimod.ROUTES[0]
    changed = Route(first.method, first.pattern, first.handler, first.permission, query=("extra",))
    with pytest.raises(openapi.Undescribed, match="query parameters"):
        openapi.document([changed, *apimod.ROUTES[1:]])
    with_body = Route(first.method, first.pattern, first.handler, first.permission, body="json")
    with pytest.raises(openapi.Undescribed, match="body"):
        openapi.document([with_body, *apimod.ROUTES[1:]])
    # Served, the document still lists an undescribed route rather than failing.
    loose = openapi.document([*apimod.ROUTES, new], strict=False)
    assert "/api/v1/new" in loose["paths"]


# ---- served -------------------------------------------------------------------------------------

def test_served_without_a_token_as_json(served):
    _token(served.db_path)
    anon = served.api()
    assert anon.get("tables").status_code == 401  # the server does want a token
    r = anon.get("/openapi.json")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    assert r.json() == json.loads(json.dumps(DOC))
    assert anon.get("/openapi.json").content == r.content  # made once
    r = anon.post("/openapi.json")
    assert r.status_code == 405 and r.headers["Allow"] == "GET"
    assert anon.get("/openapi.json?x=1").status_code == 400


class Checker:
    """Checks answers against the document: a documented status, content type and schema."""

    def __init__(self, doc):
        self.doc = doc

    def check(self, r, method: str, pattern: str):
        op = self.doc["paths"][pattern][method.lower()]
        where = f"{method} {r.request.url} -> {r.status_code} {r.text[:300]}"
        resp = op["responses"].get(str(r.status_code))
        assert resp is not None, f"undocumented status: {where}"
        content = resp.get("content")
        if not content:
            assert not r.content, where
            return
        ctype = r.headers["Content-Type"].split(";")[0].strip()
        assert ctype in content, f"undocumented content type {ctype}: {where}"
        if ctype == "application/json":
            schema = {**content[ctype]["schema"], "components": self.doc["components"]}
            errors = list(jsonschema.Draft202012Validator(schema).iter_errors(r.json()))
            assert not errors, f"{where}: {[e.message for e in errors[:3]]}"


def test_a_session_answers_as_documented(served):
    tok = _token(served.db_path)
    api = served.api(tok)
    c = Checker(DOC)
    objs = "/api/v1/tables/{table}/objects"
    obj = objs + "/{key}"
    calls = [
        ("GET", "/api/v1/head", "head", {}),
        ("POST", "/api/v1/verify", "verify", {}),
        ("POST", objs, "tables/people/objects", {"json": [{"id": 1, "name": "Ada", "tags": ["a"]},
                                                          {"name": "Bob", "blob": {"x": 1.5}}]}),
        ("POST", objs, "tables/people/objects", {"json": {"id": 1, "name": "Ada", "tags": ["a"]}}),
        ("POST", objs, "tables/people/objects", {"json": {"id": None, "name": "new key"}}),
        ("POST", objs, "tables/people/objects", {"json": {"id": "", "name": "empty key"}}),
        ("POST", objs, "tables/a%7Bb/objects", {"json": {"id": 1}}),
        ("POST", objs, "tables/people/objects", {"json": {"id": 2 ** 70}}),
        ("GET", "/api/v1/tables", "tables", {}),
        ("GET", objs, "tables/people/objects", {"params": {"where": '{"name": "Ada"}', "limit": "5"}}),
        ("GET", objs, "tables/people/objects", {"params": {"limit": ""}}),
        ("GET", objs, "tables/nope/objects", {}),
        ("GET", obj, "tables/people/objects/1", {}),
        ("GET", obj, "tables/people/objects/%C2%B2", {}),
        ("GET", obj, "tables/people/objects/-9223372036854775808", {}),
        ("PUT", obj, "tables/people/objects/1", {"json": {"name": "Ada L."}}),
        ("PUT", obj, "tables/people/objects/1", {"json": {"id": 2}}),
        ("GET", obj + "/history", "tables/people/objects/1/history", {}),
        ("POST", "/api/v1/find", "find", {"json": {"table": "people", "sort": "-id", "fields": ["id"]}}),
        ("POST", "/api/v1/find", "find", {"json": {"table": "people", "where": {"$bogus": 1}}}),
        ("POST", "/api/v1/sql", "sql", {"json": {"sql": "SELECT 1, 2.5, 'x', x'00ff', NULL, 1e999"}}),
        ("POST", "/api/v1/sql", "sql", {"json": {"sql": "SELEC"}}),
        ("POST", "/api/v1/commits", "commits", {"json": {"message": "two", "ops": [
            {"save": {"table": "other", "object": {"id": "k", "v": [1, 2]}}},
            {"delete": {"table": "people", "key": 1}}]}}),
        ("POST", "/api/v1/commits", "commits", {"json": {"ops": [{"delete": {"table": "people", "key": 999}}]}}),
        ("GET", obj + "/history", "tables/people/objects/1/history", {}),
        ("DELETE", obj, "tables/other/objects/k", {}),
        ("GET", "/api/v1/log", "log", {"params": {"n": "3"}}),
        ("GET", "/api/v1/log", "log", {"params": {"table": "people", "key": "1"}}),
        ("GET", "/api/v1/commits/{uuid}", "commits/HEAD", {}),
        ("GET", "/api/v1/commits/{uuid}", "commits/HEAD~1", {"params": {"lines": "1"}}),
        ("GET", "/api/v1/commits/{uuid}", "commits/HEAD~%C2%B2", {}),
        ("GET", "/api/v1/commits/{uuid}", "commits/ffff", {}),
        ("POST", "/api/v1/verify", "verify", {"json": {}}),
        ("GET", "/openapi.json", "/openapi.json", {}),
        ("GET", "/", "/", {}),
    ]
    for method, pattern, path, kw in calls:
        r = api.request(method, path, **kw)
        assert r.status_code < 500, f"{method} {path}: {r.status_code} {r.text[:300]}"
        c.check(r, method, pattern)
    for name in DOC["paths"]["/static/{file}"]["get"]["parameters"][0]["schema"].get("enum", []):
        r = api.get("/static/" + name)
        c.check(r, "GET", "/static/{file}")
        etag = r.headers["ETag"]
        c.check(api.get("/static/" + name, headers={"If-None-Match": etag}), "GET", "/static/{file}")
    c.check(api.get("/static/nope.js"), "GET", "/static/{file}")
    # The answers that are refusals, and what they say.
    assert api.get("tables/people/objects/1").status_code == 404  # deleted by the commit above
    assert api.post("tables/people/objects", json={"id": ""}).status_code == 422
    assert api.post("tables/x%7D/objects", json={"id": 1}).json()["error"]["code"] == "invalid_name"
    assert api.get("tables/people/objects", params={"limit": ""}).status_code == 400
    assert api.get("commits/HEAD~%C2%B2").json()["error"]["code"] == "ambiguous_ref"
    assert served.api().get("tables").status_code == 401
    read = served.api(_token(served.db_path, "read"))
    r = read.post("tables/people/objects", json={"id": 5})
    assert r.status_code == 403
    c.check(r, "POST", objs)
    db = nsl.open(served.db_path)
    try:
        assert nsl.verify(db).ok
    finally:
        db.close()


def test_a_null_key_gets_a_new_key_and_the_smallest_integer_key_is_found(api, dbfile):
    r = api.post("tables/t/objects", json=[{"id": None, "a": 1}])
    assert r.status_code == 201
    (key,) = r.json()["keys"]
    assert isinstance(key, str) and key
    assert api.get(f"tables/t/objects/{key}").json() == {"id": key, "a": 1}
    r = api.post("commits", json={"ops": [{"save": {"table": "t", "object": {"id": None, "a": 2}}}]})
    assert r.status_code == 201 and r.json()["keys"][0]["key"]
    low = -(2 ** 63)
    assert api.post("tables/t/objects", json={"id": low}).status_code == 201
    assert api.get(f"tables/t/objects/{low}").json() == {"id": low}
    assert [v["op"] for v in api.get(f"tables/t/objects/{low}/history").json()["history"]] == ["I"]
    assert api.put(f"tables/t/objects/{low}", json={"b": 1}).json()["keys"] == [low]
    assert api.get("log", params={"table": "t", "key": str(low)}).json()["commits"]
    assert api.delete(f"tables/t/objects/{low}").status_code == 200
    assert api.put(f"tables/t/objects/{low}", json={}).json()["keys"] == [low]  # a new one: an integer
    assert nsl.verify(dbfile()).ok


def _request_body_errors(method: str, pattern: str, body) -> list[str]:
    """What the document's request body schema of an operation finds wrong with `body`."""
    op = DOC["paths"][pattern][method.lower()]
    schema = {**op["requestBody"]["content"]["application/json"]["schema"], "components": DOC["components"]}
    return [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(body)]


def test_a_blank_body_is_not_an_absent_one(served):
    """POST /verify takes no body, {} or null; a body of whitespace alone is none of these (it is not JSON),
    and was answered 200 as if no body had been sent (schemathesis: ST201, "invalid syntax: random bytes")."""
    api = served.api(_token(served.db_path))
    c = Checker(DOC)
    for raw in (b"\n", b" ", b"\t\r\n ", b"\x0b", b"\x0c"):
        r = api.post("verify", data=raw, headers={"Content-Type": "application/json"})
        assert r.status_code == 400, (raw, r.status_code, r.text)
        assert r.json()["error"]["code"] == "invalid_json", raw
        c.check(r, "POST", "/api/v1/verify")
    for raw in (b"", b"{}", b"null", b" {} \n"):
        r = api.post("verify", data=raw, headers={"Content-Type": "application/json"})
        assert r.status_code == 200 and r.json()["ok"] is True, (raw, r.text)
    assert api.post("verify").status_code == 200
    # A route whose body is required still says so, blank or empty.
    for raw in (b"", b"\n"):
        r = api.post("tables/t/objects", data=raw, headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "bad_input", raw


def test_id_is_an_ordinary_attribute_of_a_table_keyed_otherwise(api):
    """The document said an object's "id" must be a key (text, not empty; an integer; null), but only a
    table keyed by id takes it as one: these were accepted although the document refused them (ST201)."""
    made = {"ops": [{"save": {"table": "keyed", "key": "k", "object": {"k": 1, "id": ""}}}]}
    assert not _request_body_errors("POST", "/api/v1/commits", made)
    assert api.post("commits", json=made).status_code == 201
    pattern = "/api/v1/tables/{table}/objects"
    for body in ({"id": ""}, {"id": True}, {"id": 1.5}, {"id": [1]}, {"id": {"a": 1}}):
        assert not _request_body_errors("POST", pattern, body), body
        assert not _request_body_errors("PUT", pattern + "/{key}", body), body
        assert api.post("tables/keyed/objects", json=body).status_code == 201, body
        assert api.put("tables/keyed/objects/1", json=body).status_code == 200, body
    assert api.get("tables/keyed/objects/1").json() == {"k": 1, "id": {"a": 1}}
    # In a table keyed by id, it is the key and is checked as one.
    for body in ({"id": ""}, {"id": True}, {"id": 1.5}, {"id": [1]}):
        assert api.post("tables/people/objects", json=body).status_code == 422, body


# Characters where regex dialects and Python's string methods disagree most: ASCII, Latin-1, every
# whitespace of str.isspace(), and a few more (BOM, combining marks, Kelvin sign, dotted I, long s).
_EDGE_CHARS = [chr(c) for c in range(0x250)] + [chr(c) for c in range(0x110000) if chr(c).isspace()] + \
    list("\ufeff\u0307\u0331\u212a\u0130\u017f\u1e96\u1e9a\U0001f600")


def _take(check, *args) -> bool:
    try:
        check(*args)
        return True
    except nsl.NslError:
        return False


def test_the_request_patterns_take_exactly_what_the_server_takes(served):
    """Table names, attribute names, commit refs and SQL text (not blank, no NUL): the document's pattern
    matches exactly when the server's check lets the text through. Python's "$" matches before a final
    newline, and "\\s" is not str.isspace() in every dialect, so the patterns use neither bare."""
    from nsl.core.database import check_column_name, check_table_name
    from nsl.core import commits

    schemas = DOC["components"]["schemas"]
    table = DOC["paths"]["/api/v1/tables/{table}/objects"]["post"]["parameters"][0]["schema"]["pattern"]
    attr = schemas["NewObject"]["propertyNames"]["pattern"]
    ref = DOC["paths"]["/api/v1/commits/{uuid}"]["get"]["parameters"][0]["schema"]["pattern"]
    sql = schemas["SQLRequest"]["properties"]["sql"]["pattern"]

    def table_ok(name):
        return _take(check_table_name, name) and _take(apimod._writable_table_name, name)

    def ref_ok(text):
        try:
            commits.resolve(db, text)
        except nsl.NslError as e:
            return e.http_status == 404
        return True

    db = nsl.open(served.db_path)
    try:
        nsl.save(db, "t", [{"id": 1}])
        for ch in _EDGE_CHARS:
            for name in (ch, f"a{ch}", f"{ch}a", f"a{ch}b", f"nsl{ch}", f"{ch}sl_", f".{ch}", f"{ch}.", ch * 2):
                assert bool(re.search(table, name)) == table_ok(name), repr(name)
                assert bool(re.search(attr, name)) == _take(check_column_name, name), repr(name)
                assert bool(re.search(sql, name)) == (bool(name.strip()) and "\x00" not in name), repr(name)
            for text in (ch, f"HEAD{ch}", f"{ch}HEAD{ch}", f"HEAD~{ch}", f"HEAD~1{ch}", f"hea{ch}", f"{ch}ead",
                         f"abcd{ch}", f"{ch}abcd", f"ab{ch}cd", f"abc{ch}"):
                assert bool(re.search(ref, text)) == ref_ok(text), repr(text)
    finally:
        db.close()
    # ... and the server answers so: a blank line after a name, a ref between spaces.
    api = served.api()
    assert api.post("tables/a%0A/objects", json={}).json()["error"]["code"] == "invalid_name"
    assert api.get("commits/%20HEAD%0A").status_code == 200


def test_a_whole_float_is_an_integer_limit(api):
    """JSON Schema counts 76.0 as an integer, so POST /find takes it as limit or skip."""
    api.post("tables/t/objects", json=[{"id": i} for i in range(5)])
    r = api.post("find", json={"table": "t", "limit": 2.0, "skip": 1.0})
    assert r.status_code == 200 and r.json()["limit"] == 2 and r.json()["skip"] == 1
    assert [o["id"] for o in r.json()["objects"]] == [1, 2]
    assert api.post("find", json={"table": "t", "limit": 2.5}).status_code == 400


# ---- schemathesis -------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.timeout(SCHEMATHESIS_SECONDS + 180)
def test_schemathesis_finds_no_server_error_and_no_schema_violation(server_db, start_server, tmp_path):
    """schemathesis's CLI against the served document, every check but two:

    - positive_data_acceptance wants every schema-valid request accepted, but some inputs are languages
      JSON Schema cannot express (a predicate, SQL text, sort and field lists, a key that must equal the
      one in the URL, attribute names that clash only in case): refusing them with a 4xx is right.
    - use_after_free wants everything under a deleted object's URL to be 404, but an object's history
      outlives it by design.
    """
    pytest.importorskip("schemathesis", reason="pip install -e '.[test]' installs schemathesis")
    db = nsl.open(server_db)
    try:
        nsl.save(db, "people", [{"id": i, "name": f"person {i}", "age": 20 + i} for i in range(1, 6)])
        token = tokens.add(db, "fuzz", "write")
    finally:
        db.close()
    server_log = io.StringIO()
    running = start_server(server_db, log=server_log)
    cmd = [sys.executable, "-m", "schemathesis.cli", "run", f"{running.url}/openapi.json",
           "--header", f"Authorization: Bearer {token}",
           "--checks", "all", "--exclude-checks", "positive_data_acceptance,use_after_free",
           "--max-examples", "30", "--max-time", str(SCHEMATHESIS_SECONDS), "--request-timeout", "10",
           "--suppress-health-check", "all", "--no-color"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEMATHESIS_")}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=SCHEMATHESIS_SECONDS + 120)
    out = proc.stdout + proc.stderr
    running.stop()
    assert proc.returncode == 0, out[-12000:]
    assert "nsl serve: error" not in server_log.getvalue(), server_log.getvalue()[-5000:]
    db = nsl.open(server_db)
    try:
        report = nsl.verify(db)
        assert report.ok, report.problems[:10]
        assert report.commits > 1  # schemathesis's writes went through
    finally:
        db.close()
