"""A user's session over HTTP: save, read, change, find, history, delete, batch commits, log, SQL, verify."""
from __future__ import annotations

import json

import nsl

PEOPLE = [
    {"id": 1, "name": "Ada", "age": 36, "city": "London", "tags": ["math"], "active": True},
    {"id": 2, "name": "Bob", "age": 20, "city": "Oslo"},
    {"id": 3, "name": "Zoë", "age": 50, "city": "Bergen", "address": {"zip": "5003"}},
]


def ok(r, status=200):
    assert r.status_code == status, f"{r.request.method} {r.url} -> {r.status_code}: {r.text}"
    assert r.headers["Content-Type"] == "application/json"
    return r.json()


def test_session(api, dbfile):
    # An empty database.
    assert ok(api.get("tables")) == {"tables": []}
    assert ok(api.get("head")) == {"head": None}

    # Save an array: one commit, 201.
    res = ok(api.post("tables/people/objects", json=PEOPLE, params={"message": "first", "author": "ann"}), 201)
    assert res["count"] == 3 and res["keys"] == [1, 2, 3] and len(res["commit"]) == 40
    first = res["commit"]
    assert ok(api.get("head")) == {"head": first}
    tables = ok(api.get("tables"))["tables"]
    assert tables == [{"name": "people", "key": "id", "count": 3,
                       "columns": ["id", "name", "age", "city", "tags", "active", "address"]}]

    # One object (keys in URLs are text, and match integer keys), exactly as saved.
    assert ok(api.get("tables/people/objects/1")) == PEOPLE[0]
    assert ok(api.get("tables/people/objects/3")) == PEOPLE[2]

    # Save one object (not an array); a new key is made when none is given.
    res = ok(api.post("tables/notes/objects", json={"text": "hello"}), 201)
    (note_key,) = res["keys"]
    assert isinstance(note_key, str) and len(note_key) == 26
    assert ok(api.get(f"tables/notes/objects/{note_key}")) == {"id": note_key, "text": "hello"}

    # PUT replaces the object with that key; the key may be left out of the body, or be equal.
    res = ok(api.put("tables/people/objects/2", json={"name": "Bob", "age": 21, "city": "Oslo"},
                     params={"message": "birthday"}))
    assert res["count"] == 1 and res["keys"] == [2]
    assert ok(api.get("tables/people/objects/2")) == {"id": 2, "name": "Bob", "age": 21, "city": "Oslo"}
    ok(api.put("tables/people/objects/4", json={"id": 4, "name": "Cy", "age": 9}))
    assert ok(api.get("tables/people/objects/4"))["id"] == 4
    # A PUT of exactly what is stored changes nothing and makes no commit.
    head = ok(api.get("head"))["head"]
    res = ok(api.put("tables/people/objects/4", json={"name": "Cy", "age": 9}))
    assert res["commit"] is None
    assert ok(api.get("head"))["head"] == head
    # A text key that looks like a number stays text when the body says so.
    ok(api.put("tables/codes/objects/007", json={"v": 1}))
    assert ok(api.get("tables/codes/objects/007")) == {"id": "007", "v": 1}

    # find, as a query string and as a POST.
    found = ok(api.get("tables/people/objects", params={"where": json.dumps({"age": {"$gt": 20}}),
                                                        "sort": "-age", "limit": 2}))["objects"]
    assert [p["name"] for p in found] == ["Zoë", "Ada"]
    found = ok(api.get("tables/people/objects", params={"where": '{"age": {"$gt": 20}}', "sort": "age",
                                                        "skip": 1, "fields": "name,address.zip"}))["objects"]
    assert found == [{"name": "Ada"}, {"name": "Zoë", "address": {"zip": "5003"}}]
    found = ok(api.post("find", json={"table": "people", "where": {"city": {"$in": ["Oslo", "Bergen"]}},
                                      "sort": ["name"], "fields": ["name"]}))["objects"]
    assert found == [{"name": "Bob"}, {"name": "Zoë"}]
    assert ok(api.post("find", json={"table": "people", "limit": 0}))["objects"] == []

    # An object's history, newest first.
    hist = ok(api.get("tables/people/objects/2/history"))["history"]
    assert [h["op"] for h in hist] == ["U", "I"]
    assert hist[0]["message"] == "birthday" and hist[1]["message"] == "first"
    assert hist[0]["object"]["age"] == 21 and hist[1]["object"]["age"] == 20

    # DELETE: one commit; then the object is gone, its history stays.
    res = ok(api.delete("tables/people/objects/4", params={"message": "bye"}))
    assert res["count"] == 1 and res["commit"]
    assert ok(api.get("tables/people/objects/4"), 404)["error"]["code"] == "unknown_object"
    assert [h["op"] for h in ok(api.get("tables/people/objects/4/history"))["history"]] == ["D", "I"]

    # Several tables in one commit.
    before = ok(api.get("head"))["head"]
    res = ok(api.post("commits", json={"message": "batch", "author": "ann", "ops": [
        {"save": {"table": "people", "object": {"id": 5, "name": "Eve"}}},
        {"save": {"table": "pets", "object": {"id": "rex", "owner": 5}}},
        {"save": {"table": "people", "object": {"id": 1, "name": "Ada", "age": 37}}},
        {"delete": {"table": "people", "key": "3"}},
    ]}), 201)
    assert res["count"] == 4
    commit = ok(api.get(f"commits/{res['commit']}"))
    assert commit["parents"] == [before] and commit["message"] == "batch" and commit["author"] == "ann"
    assert sorted((ln["op"], ln["table"], ln["key"]) for ln in commit["lines"]) == [
        ("D", "people", 3), ("I", "people", 5), ("I", "pets", "rex"), ("U", "people", 1)]
    assert ok(api.get("head"))["head"] == res["commit"]

    # A batch with a failing op changes nothing: not even the ops before it.
    head = res["commit"]
    for bad_ops in (
        [{"save": {"table": "people", "object": {"id": 6, "name": "Fay"}}},
         {"delete": {"table": "people", "key": 999}}],
        [{"save": {"table": "brand_new", "object": {"x": 1}}},
         {"save": {"table": "people", "object": {"id": 7, "n": 1.5, "new_column": [1]}}},
         {"save": {"table": "people", "object": {"id": {"no": "object keys"}}}}],
    ):
        r = api.post("commits", json={"message": "must not happen", "ops": bad_ops})
        assert 400 <= r.status_code < 500, r.text
        assert set(r.json()["error"]) >= {"code", "message"}
    assert ok(api.get("head"))["head"] == head
    assert ok(api.get("tables/people/objects/6"), 404)
    tables = {t["name"]: t for t in ok(api.get("tables"))["tables"]}
    assert "brand_new" not in tables and "new_column" not in tables["people"]["columns"]

    # log, of everything and of one object.
    log = ok(api.get("log"))["commits"]
    assert log[0]["commit"] == head and log[-1]["commit"] == first
    assert [c["message"] for c in ok(api.get("log", params={"table": "people", "key": "2"}))["commits"]] == [
        "birthday", "first"]
    assert len(ok(api.get("log", params={"n": 2}))["commits"]) == 2
    assert ok(api.get("commits/HEAD"))["commit"] == head
    assert ok(api.get(f"commits/{first[:8]}"))["commit"] == first

    # verify: ok, and the head is the head.
    rep = ok(api.post("verify"))
    assert rep["ok"] is True and rep["head"] == head and rep["problems"] == []

    # The database the server wrote is a valid nsl database with what the session did.
    db = dbfile()
    assert nsl.verify(db).ok
    assert nsl.head(db) == head
    assert nsl.get(db, "people", 1)["age"] == 37


def test_sql_read_and_write(served):
    """SQL is read-only unless the caller may write; SQLite decides what writes, not the text."""
    db = nsl.open(served.db_path)
    nsl.save(db, "people", PEOPLE, message="seed")
    from nsl.core import tokens

    read_tok = tokens.add(db, "reader", "read")
    write_tok = tokens.add(db, "writer", "write")
    db.close()
    reader, writer = served.api(read_tok), served.api(write_tok)

    r = ok(reader.post("sql", json={"sql": "SELECT name FROM people WHERE age > ? ORDER BY name", "params": [30]}))
    assert r == {"columns": ["name"], "rows": [["Ada"], ["Zoë"]], "write": False}

    for sql in ("DELETE FROM people", "UPDATE people SET age = 0", "DROP TABLE people",
                "CREATE TABLE evil(x)", "INSERT INTO people(id, name) VALUES (9, 'x')"):
        r = reader.post("sql", json={"sql": sql})
        assert r.status_code == 403, r.text
        assert r.json()["error"]["code"] == "read_only"
        assert "may only read" in r.json()["error"]["message"]
    # A writer asking for read-only gets it too.
    r = writer.post("sql", json={"sql": "DELETE FROM people", "write": False})
    assert r.status_code == 403 and r.json()["error"]["code"] == "read_only"
    # A reader asking for write is refused before anything runs.
    assert reader.post("sql", json={"sql": "SELECT 1", "write": True}).status_code == 403
    assert ok(reader.get("tables/people/objects/1"))["name"] == "Ada"

    # The writer's SQL changes the user table; nsl sees it as an uncommitted change.
    r = ok(writer.post("sql", json={"sql": "UPDATE people SET age = age + 1 WHERE id = :id", "params": {"id": 2}}))
    assert r["write"] is True
    assert ok(reader.get("tables/people/objects/2"))["age"] == 21
    rep = ok(reader.post("verify"))
    assert rep["ok"] and rep["uncommitted"] == 1
    # nsl's own tables stay out of reach even for a writer.
    r = writer.post("sql", json={"sql": "DELETE FROM nsl_commit"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "sql_error"
    db = nsl.open(served.db_path)
    try:
        assert nsl.verify(db).ok
    finally:
        db.close()


def test_concurrent_clients(served):
    """Several clients reading and writing at once: no 5xx, no lost write, verify clean."""
    import threading

    errors, made = [], []

    def client(n):
        api = served.api()
        try:
            for i in range(15):
                r = api.post("tables/load/objects", json={"id": f"{n}-{i}", "n": n, "i": i})
                if r.status_code != 201:
                    errors.append(r.text)
                    continue
                made.append(f"{n}-{i}")
                for r in (api.get(f"tables/load/objects/{n}-{i}"), api.post("find", json={"table": "load", "limit": 5}),
                          api.get("log", params={"n": 3}), api.put(f"tables/load/objects/{n}-{i}", json={"n": -n})):
                    if r.status_code >= 300:
                        errors.append(r.text)
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    db = nsl.open(served.db_path)
    try:
        assert sorted(o["id"] for o in nsl.find(db, "load")) == sorted(made) and len(made) == 120
        assert all(o["n"] <= 0 for o in nsl.find(db, "load"))
        rep = nsl.verify(db)
        assert rep.ok and rep.commits == 240
    finally:
        db.close()
