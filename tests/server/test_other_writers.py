"""The server keeps table metadata and tokens between requests; what other processes change is still
seen by the very next request: tokens added or removed, columns added, objects saved."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ROUNDS = 12  # requests per check, so that every server thread (4) likely answers some


def nsl_cli(tmp_path, db, *args, input=None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NSL_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    p = subprocess.run([sys.executable, "-m", "nsl", "--db", str(db), *args], cwd=tmp_path, env=env, input=input,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"nsl {' '.join(args)} -> {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p.stdout


def statuses(client, path) -> set:
    return {client.get(path).status_code for _ in range(ROUNDS)}


def test_tokens_added_and_removed_by_another_process(served, tmp_path):
    anon = served.api()
    assert anon.post("tables/t/objects", json={"id": 1}).status_code == 201
    assert statuses(anon, "head") == {200}  # no tokens: open
    assert statuses(anon, "tables/t/objects/1") == {200}
    ci = nsl_cli(tmp_path, served.db_path, "token", "add", "ci", "--role", "read").strip()
    assert statuses(anon, "head") == {401}
    assert statuses(anon, "tables/t/objects/1") == {401}
    reader = served.api(ci)
    assert statuses(reader, "head") == {200}
    assert statuses(reader, "tables/t/objects/1") == {200}
    assert statuses(reader, "tables/t/objects/2") == {404}
    assert reader.post("find", json={"table": "t"}).status_code == 200  # not a GET: checked the same way
    admin = nsl_cli(tmp_path, served.db_path, "token", "add", "admin", "--role", "admin").strip()
    nsl_cli(tmp_path, served.db_path, "token", "remove", "ci")
    assert statuses(reader, "tables/t/objects/1") == {401}
    assert statuses(reader, "head") == {401}
    assert reader.post("find", json={"table": "t"}).status_code == 401
    assert statuses(served.api(admin), "head") == {200}
    nsl_cli(tmp_path, served.db_path, "token", "remove", "admin")
    assert statuses(anon, "head") == {200}  # no tokens left: open again


def test_objects_and_columns_changed_by_another_process(api, served, tmp_path):
    db = served.db_path
    assert api.post("tables/t/objects", json={"id": "a", "n": 1, "tags": "x"}).status_code == 201
    for _ in range(ROUNDS):
        assert api.get("tables/t/objects/a").json() == {"id": "a", "n": 1, "tags": "x"}

    # Another process saves a new version with a new column: booleans, nested JSON, 64-bit integers.
    new = {"id": "a", "n": 2, "tags": "x", "deep": {"ok": True, "list": [1, False, None, {"x": -9223372036854775808}]},
           "big": 9223372036854775807}
    nsl_cli(tmp_path, db, "save", "t", input=json.dumps(new))
    for _ in range(ROUNDS):
        got = api.get("tables/t/objects/a").json()
        assert got == new and got["deep"]["ok"] is True and got["deep"]["list"][1] is False

    # A column added with plain SQL by another program: part of the table, empty for this object.
    with sqlite3.connect(db) as conn:
        conn.execute('ALTER TABLE "t" ADD COLUMN "later"')
    conn.close()
    for _ in range(ROUNDS):
        assert api.get("tables/t/objects/a").json() == new
    cols = [t for t in api.get("tables").json()["tables"] if t["name"] == "t"][0]["columns"]
    assert cols == ["id", "n", "tags", "deep", "big", "later"]

    # Nested JSON in a column that had none: no schema change, and finds see it at once.
    where = {"where": json.dumps({"tags": "y"})}
    assert api.get("tables/t/objects", params=where).json()["objects"] == []
    nsl_cli(tmp_path, db, "save", "t", input=json.dumps({"id": "b", "tags": ["x", "y"], "later": 5}))
    for _ in range(ROUNDS):
        assert api.get("tables/t/objects/b").json() == {"id": "b", "tags": ["x", "y"], "later": 5}
        assert [o["id"] for o in api.get("tables/t/objects", params=where).json()["objects"]] == ["b"]

    # Deleted by another process: gone at the next request.
    nsl_cli(tmp_path, db, "delete", "t", "a")
    assert statuses(api, "tables/t/objects/a") == {404}


def test_a_table_made_by_another_process_after_a_404(api, served, tmp_path):
    assert statuses(api, "tables/later/objects/1") == {404}
    assert statuses(api, "tables/later/objects") == {404}
    nsl_cli(tmp_path, served.db_path, "save", "later", input=json.dumps({"id": 1, "ok": True}))
    for _ in range(ROUNDS):
        assert api.get("tables/later/objects/1").json() == {"id": 1, "ok": True}
        assert api.get("tables/later/objects").json()["objects"] == [{"id": 1, "ok": True}]


def test_a_get_of_an_object_is_one_statement(server_db, tmp_path):
    """With nothing changed since, the one query that reads the object also checks the kept tokens
    and table metadata: one SQL statement per GET (a change made elsewhere costs a second answer)."""
    import io

    import nsl
    from nsl.server.app import App

    db = nsl.open(server_db)
    nsl.save(db, "t", [{"id": 1, "x": {"deep": [1, 2]}}])
    db.close()
    app = App(server_db)
    statuses_seen = []

    def get(path):
        env = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "REQUEST_URI": path, "QUERY_STRING": "",
               "wsgi.input": io.BytesIO(b"")}
        body = b"".join(app(env, lambda status, headers: statuses_seen.append(status)))
        return statuses_seen[-1], json.loads(body)

    try:
        assert get("/api/v1/tables/t/objects/1") == ("200 OK", {"id": 1, "x": {"deep": [1, 2]}})
        conn = app.open_db().conn
        seen = []
        conn.set_trace_callback(lambda s: seen.append(s) if not s.startswith("--") else None)
        assert get("/api/v1/tables/t/objects/1") == ("200 OK", {"id": 1, "x": {"deep": [1, 2]}})
        assert len(seen) == 1, seen
        nsl_cli(tmp_path, server_db, "save", "t", input=json.dumps({"id": 1, "x": None}))
        seen.clear()
        assert get("/api/v1/tables/t/objects/1") == ("200 OK", {"id": 1, "x": None})
        assert len(seen) > 1  # answered again, from one read transaction
        seen.clear()
        assert get("/api/v1/tables/t/objects/1") == ("200 OK", {"id": 1, "x": None})
        assert len(seen) == 1
    finally:
        app.close()
