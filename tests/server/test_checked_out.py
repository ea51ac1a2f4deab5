"""While an old commit is checked out (`nsl checkout OLD`), the database is read-only: every write over
HTTP is a 409 `checked_out` in the error shape, and changes nothing. Reads show the old state; after
`nsl checkout HEAD` writes work again."""
from __future__ import annotations

import json

import nsl
from nsl.core import tokens
from servetools import nsl_run


def test_writes_while_an_old_commit_is_checked_out_are_409(tmp_path, start_server):
    db = tmp_path / "nsl.db"
    nsl_run(tmp_path, db, "init")
    nsl_run(tmp_path, db, "save", "people", '{"id": 1, "name": "Ada", "born": 1815}', "-m", "first")
    nsl_run(tmp_path, db, "save", "people", '{"id": 1, "name": "Ada Lovelace", "born": 1815}', "-m", "second")
    nsl_run(tmp_path, db, "save", "people", '{"id": 2, "name": "Alan", "born": 1912}', "-m", "third")
    log = json.loads(nsl_run(tmp_path, db, "log", "--json").stdout)
    first, head = log[-1]["commit"], log[0]["commit"]
    conn = nsl.open(db)
    try:
        writer = tokens.add(conn, "writer", "write")  # tokens are no history: made whatever is checked out
    finally:
        conn.close()
    served = start_server(db)
    api = served.api(writer)

    nsl_run(tmp_path, db, "checkout", first[:12])
    # Reads show the old state.
    assert api.get("tables/people/objects/1").json() == {"id": 1, "name": "Ada", "born": 1815}
    assert api.get("tables/people/objects/2").status_code == 404

    writes = [
        ("POST", "tables/people/objects", {"id": 3, "name": "Grace"}),
        ("POST", "tables/people/objects", [{"id": 3, "name": "Grace"}, {"id": 4, "name": "Edsger"}]),
        ("POST", "tables/other/objects", {"id": 1}),
        ("PUT", "tables/people/objects/1", {"name": "Countess"}),
        ("PUT", "tables/people/objects/9", {"name": "New"}),
        ("DELETE", "tables/people/objects/1", None),
        ("POST", "commits", {"message": "m", "ops": [{"save": {"table": "people", "object": {"id": 5}}},
                                                     {"delete": {"table": "people", "key": 1}}]}),
        ("POST", "sql", {"sql": "UPDATE people SET name = 'x'"}),
        ("POST", "sql", {"sql": "DELETE FROM people", "write": True}),
        ("POST", "sql", {"sql": "INSERT INTO people(id, name) VALUES (7, 'y')"}),
    ]
    for method, path, body in writes:
        r = api.request(method, path, json=body)
        assert r.status_code == 409, (method, path, r.text)
        assert r.headers["Content-Type"] == "application/json"
        doc = r.json()
        assert set(doc) == {"error"} and set(doc["error"]) <= {"code", "message", "hint"}, doc
        assert doc["error"]["code"] == "checked_out", (method, path, doc)
        assert "checked out" in doc["error"]["message"] and "nsl checkout HEAD" in doc["error"]["hint"]

    # Nothing changed: the same old state, the same history, still checked out, verify clean.
    assert api.get("tables/people/objects/1").json() == {"id": 1, "name": "Ada", "born": 1815}
    assert api.get("tables/other/objects/1").status_code == 404
    assert api.get("log").json()["commits"][0]["commit"] == head
    status = json.loads(nsl_run(tmp_path, db, "status", "--json").stdout)
    assert status["changes"] == []
    nsl_run(tmp_path, db, "verify")
    assert json.loads(nsl_run(tmp_path, db, "log", "--json").stdout) == log

    # Back at the head, the same write goes through.
    nsl_run(tmp_path, db, "checkout", "HEAD")
    r = api.put("tables/people/objects/1", json={"name": "Countess", "born": 1815})
    assert r.status_code == 200 and r.json()["commit"]
    assert api.get("tables/people/objects/2").json()["name"] == "Alan"
