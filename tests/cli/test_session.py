"""A user's session with the real `nsl` command (and the real `sqlite3` shell next to it)."""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys


from clitools import SQLITE3, TIMEOUT, Nsl

ADA = {"id": 1, "name": "Ada", "age": 36, "city": "London", "score": 0.5, "langs": ["en", "fr"], "active": True}
BOB = {"id": 2, "name": "Bob", "age": 20, "city": "Oslo", "score": 1.25, "active": False}
CY = {"id": 3, "name": "Cy", "age": 50, "city": "Bergen", "address": {"zip": "5003", "street": "Bryggen"}}
DI = {"id": 4, "name": "Di", "age": 28, "city": "Oslo"}
ED = {"id": 5, "name": "Zoë Ed", "age": 41, "city": "Bergen", "nick": None}


def sha1_pipeline(db: Nsl, sql: str) -> str:
    """The documented shell pipeline: sqlite3 DB "select ..." | head -c -1 | sha1sum."""
    p = subprocess.run(["bash", "-c", f'{SQLITE3} -init /dev/null "$DB" "$SQL" | head -c -1 | sha1sum'],
                       env={**db.env(), "DB": str(db.db), "SQL": sql}, capture_output=True, text=True,
                       timeout=TIMEOUT)
    assert p.returncode == 0, p.stderr
    return p.stdout.split()[0]


def test_a_users_session(nsl):
    db = nsl
    # -- init ---------------------------------------------------------------------------------------------
    r = db.ok("init")
    assert "created" in r.stderr and db.db.exists()
    assert db.ok("head").stdout == "" and "no commits" in db.ok("head").stderr
    assert db.ok("log", "--json").json == []

    # -- save: an argument, an array, JSON lines on stdin, and `-` ------------------------------------------
    c1 = db.ok("save", "people", json.dumps(ADA), "-m", "Ada", "--author", "me <me@example.com>").stdout.strip()
    assert len(c1) == 40 and int(c1, 16) >= 0
    # Saving the same content again changes nothing and makes no commit.
    r = db.ok("save", "people", json.dumps(ADA))
    assert r.stdout == "" and "nothing changed" in r.stderr
    assert db.ok("head").stdout.strip() == c1
    r = db.ok("save", "people", json.dumps([BOB, CY]), "-m", "Bob and Cy", "--json")
    c2 = r.json["commit"]
    assert r.json == {"commit": c2, "count": 2, "keys": [2, 3]}
    c3 = db.ok("save", "people", "-m", "Di", input=json.dumps(DI) + "\n").stdout.strip()
    r = db.ok("save", "people", "-", "--json", "-m", "Ed", input=json.dumps(ED) + "\n")
    c4 = r.json["commit"]
    assert r.json["count"] == 1 and r.json["keys"] == [5]
    # JSON lines on stdin (no argument at all), with a new table keyed by another attribute.
    r = db.ok("save", "cities", "--key", "name", "--json",
              input='{"name": "Oslo", "pop": 709000}\n\n{"name": "Bergen", "pop": 285900}\n')
    assert r.json["count"] == 2 and r.json["keys"] == ["Oslo", "Bergen"]
    # Objects without a key get one.
    r = db.ok("save", "notes", '[{"text": "hello"}, {"text": "world"}]', "--json")
    assert r.json["count"] == 2 and len(r.json["keys"]) == 2
    k0 = r.json["keys"][0]
    assert isinstance(k0, str) and len(k0) == 26
    assert db.ok("get", "notes", k0, "--json").json == {"id": k0, "text": "hello"}

    # -- get ------------------------------------------------------------------------------------------------
    assert db.ok("get", "people", "1", "--json").json == ADA
    assert json.loads(db.ok("get", "people", "3").stdout) == CY  # pretty JSON by default
    assert db.ok("get", "people", "5", "--json").json == ED
    assert db.ok("get", "cities", "Oslo", "--json").json == {"name": "Oslo", "pop": 709000}

    # -- find -----------------------------------------------------------------------------------------------
    everyone = [ADA, BOB, CY, DI, ED]
    assert db.ok("find", "people", "--json").json == everyone
    assert db.ok("find", "people", "--jsonl").jsonl == everyone
    assert db.ok("find", "people", '{"city": "Oslo"}', "--json").json == [BOB, DI]
    assert db.ok("find", "people", '{"age": {"$gte": 36}}', "--sort", "-age", "--json").json == [CY, ED, ADA]
    assert db.ok("find", "people", '{"address.zip": "5003"}', "--json").json == [CY]
    assert db.ok("find", "people", '{"langs": "fr"}', "--json").json == [ADA]
    assert db.ok("find", "people", '{"active": true}', "--json").json == [ADA]
    assert db.ok("find", "people", "--sort", "age", "--limit", "2", "--json").json == [BOB, DI]
    assert db.ok("find", "people", "--sort", "age", "--skip", "1", "--limit", "2", "--json").json == [DI, ADA]
    assert db.ok("find", "people", "--sort", "city,-age", "--fields", "name,age", "--json").json == [
        {"name": "Cy", "age": 50}, {"name": "Zoë Ed", "age": 41}, {"name": "Ada", "age": 36},
        {"name": "Di", "age": 28}, {"name": "Bob", "age": 20}]
    assert db.ok("find", "people", '{"id": 3}', "--fields", "name,address.zip", "--jsonl").jsonl == \
        [{"name": "Cy", "address": {"zip": "5003"}}]
    assert db.ok("find", "people", '{"name": "nobody"}', "--json").json == []
    rows = list(csv.reader(io.StringIO(db.ok("find", "people", "--csv", "--sort", "id", "--fields",
                                               "id,name,langs,active").stdout)))
    assert rows == [["id", "name", "langs", "active"], ["1", "Ada", '["en","fr"]', "true"],
                    ["2", "Bob", "", "false"], ["3", "Cy", "", ""], ["4", "Di", "", ""], ["5", "Zoë Ed", "", ""]]
    table = db.ok("find", "people", '{"id": 2}').stdout  # the default: a table for people
    assert "Bob" in table and "Oslo" in table

    # -- update: a new version, linked to the old one -----------------------------------------------------
    c5 = db.ok("save", "people", json.dumps({**ADA, "age": 37}), "-m", "Ada's birthday").stdout.strip()
    assert db.ok("get", "people", "1", "--json").json == {**ADA, "age": 37}
    hist = db.ok("history", "people", "1", "--json").json
    assert [h["op"] for h in hist] == ["U", "I"]
    assert [h["commit"] for h in hist] == [c5, c1]
    assert [h["object"]["age"] for h in hist] == [37, 36]
    assert hist[0]["parents"] == [hist[1]["version"]] and hist[1]["parents"] == []
    assert hist[1]["author"] == "me <me@example.com>" and hist[0]["message"] == "Ada's birthday"
    assert "Ada's birthday" in db.ok("history", "people", "1").stdout

    # -- delete -----------------------------------------------------------------------------------------------
    r = db.ok("delete", "people", "4", "-m", "bye Di", "--json")
    c6 = r.json["commit"]
    assert r.json["count"] == 1 and r.json["keys"] == [4]
    assert db("get", "people", "4").returncode == 1
    assert db.ok("history", "people", "4", "--json").json[0]["op"] == "D"
    r = db.ok("delete", "notes", "--where", '{"text": {"$regex": "^w"}}')
    assert len(r.stdout.strip()) == 40
    assert [n["text"] for n in db.ok("find", "notes", "--json").json] == ["hello"]

    # -- an edit with the real sqlite3 shell: status, diff, commit ---------------------------------------------
    assert db.ok("status").stdout.strip().endswith("nothing to commit")
    head_before = db.ok("head").stdout.strip()
    p = db.sqlite3("UPDATE people SET city = 'Paris', age = age + 1 WHERE id = 2")
    assert p.returncode == 0, p.stderr
    p = db.sqlite3("INSERT INTO people(id, name) VALUES (6, 'Fay')")
    assert p.returncode == 0, p.stderr
    st = db.ok("status", "--json").json
    assert st["head"] == head_before
    assert [(c["table"], c["key"], c["change"]) for c in st["changes"]] == \
        [("people", 2, "modified"), ("people", 6, "added")]
    assert st["changes"][0]["old"] == BOB and st["changes"][0]["new"] == {**BOB, "city": "Paris", "age": 21}
    text = db.ok("status").stdout
    assert "modified" in text and "people/2" in text and "people/6" in text
    d = db.ok("diff", "--json").json
    assert [(e["table"], e["key"], e["change"]) for e in d] == [("people", 2, "modified"), ("people", 6, "added")]
    assert d[0]["fields"] == {"age": [20, 21], "city": ["Oslo", "Paris"]}
    text = db.ok("diff").stdout
    assert "~ people/2" in text and '"Oslo" -> "Paris"' in text and "+ people/6" in text
    assert db.ok("head").stdout.strip() == head_before  # nothing recorded yet
    r = db.ok("commit", "-m", "edited with sqlite3", "--json")
    c7 = r.json["commit"]
    assert r.json["count"] == 2
    assert db.ok("status", "--json").json["changes"] == []
    assert db.ok("head").stdout.strip() == c7
    assert db.ok("get", "people", "2", "--json").json == {**BOB, "city": "Paris", "age": 21}
    assert db.ok("get", "people", "6", "--json").json == {"id": 6, "name": "Fay"}
    assert "no differences" in db.ok("diff").stderr

    # -- log and show (a uuid prefix works) --------------------------------------------------------------------
    log = db.ok("log", "--json").json
    commits = [e["commit"] for e in log]
    assert commits[0] == c7 and commits[-1] == c1
    assert {c2, c3, c4, c5, c6} <= set(commits)
    for newer, older in zip(log, log[1:]):
        assert newer["parents"] == [older["commit"]]
    assert log[-1]["parents"] == []
    assert [e["message"] for e in db.ok("log", "people", "1", "--json").json] == ["Ada's birthday", "Ada"]
    assert len(db.ok("log", "-n", "2", "--json").json) == 2
    text = db.ok("log").stdout
    assert f"commit {c7}" in text and "edited with sqlite3" in text and "Author: me <me@example.com>" in text
    s = db.ok("show", c2[:7], "--json").json
    assert s["commit"] == c2 and s["parents"] == [c1] and s["message"] == "Bob and Cy"
    assert [(ln["op"], ln["table"], ln["key"]) for ln in s["lines"]] == [("I", "people", 2), ("I", "people", 3)]
    text = db.ok("show", c5[:4]).stdout
    assert f"commit {c5}" in text and "U people/1" in text
    assert db.ok("show", "HEAD", "--json").json["commit"] == c7
    assert db.ok("show", "HEAD~1", "--json").json["commit"] == commits[1]

    # -- checkout an old commit, then HEAD -----------------------------------------------------------------------
    r = db.ok("checkout", c2[:8], "--json")
    assert r.json["commit"] == c2
    assert db.ok("find", "people", "--sort", "id", "--json").json == [ADA, BOB, CY]
    assert db("get", "cities", "Oslo").returncode == 1  # saved after c2
    assert "checked out" in db.ok("status").stdout
    assert db.ok("head").stdout.strip() == c7  # the head is untouched
    # sqlite3 sees the old state too: the user tables show it.
    assert db.sqlite3("SELECT count(*) FROM people").stdout.strip() == "3"
    db.assert_verify_ok()
    r = db.ok("checkout", "HEAD", "--json")
    assert r.json["commit"] is None
    assert db.ok("get", "people", "1", "--json").json["age"] == 37
    assert len(db.ok("find", "people", "--json").json) == 5
    assert db.ok("status", "--json").json == {"head": c7, "checkout": None, "leaves": 1, "conflicts": 0,
                                              "changes": []}

    # -- revert ----------------------------------------------------------------------------------------------------
    r = db.ok("revert", c6[:10], "--json")  # undo the deletion of Di
    c8 = r.json["commit"]
    assert r.json["count"] == 1
    assert db.ok("get", "people", "4", "--json").json == DI
    s = db.ok("show", c8, "--json").json
    assert s["message"] == f"Revert {c6}" and s["meta"]["revert"] == c6 and s["parents"] == [c7]
    db.ok("delete", "people", "4", "-m", "bye again Di")
    assert db("get", "people", "4").returncode == 1
    # Undo an update, then undo the undo.
    c9 = db.ok("revert", c5[:8]).stdout.strip()
    assert db.ok("get", "people", "1", "--json").json == ADA
    c10 = db.ok("revert", "HEAD").stdout.strip()
    assert db.ok("get", "people", "1", "--json").json == {**ADA, "age": 37}
    assert db.ok("head").stdout.strip() == c10
    assert [h["commit"] for h in db.ok("history", "people", "1", "--json").json[:2]] == [c10, c9]
    # A commit whose objects changed again since cannot be reverted.
    r = db("revert", c1[:8])
    assert r.returncode == 1 and "changed again" in r.stderr and "people/1" in r.stderr

    # -- restore --source: one table, then one key ---------------------------------------------------------------
    db.ok("save", "cities", '{"name": "Oslo", "pop": 1}')
    db.ok("delete", "cities", "Bergen")
    r = db.ok("restore", "--source", "HEAD~2", "cities", "--json")
    assert r.json["changed"] == 2
    assert db.ok("find", "cities", "--sort", "name", "--json").json == [
        {"name": "Bergen", "pop": 285900}, {"name": "Oslo", "pop": 709000}]
    st = db.ok("status", "--json").json["changes"]
    assert sorted((c["table"], c["key"], c["change"]) for c in st) == \
        [("cities", "Bergen", "added"), ("cities", "Oslo", "modified")]
    db.ok("commit", "-m", "cities back")
    assert db.ok("find", "people", "--sort", "id", "--json").json == [{**ADA, "age": 37}, {**BOB, "city": "Paris", "age": 21},
                                                      CY, ED, {"id": 6, "name": "Fay"}]
    r = db.ok("restore", "--source", c1[:6], "people", "1", "--json")
    assert r.json["changed"] == 1 and r.json["commit"] == c1
    assert db.ok("get", "people", "1", "--json").json == ADA  # booleans and arrays come back exactly
    assert [c["key"] for c in db.ok("status", "--json").json["changes"]] == [1]
    assert db.ok("get", "people", "2", "--json").json["city"] == "Paris"  # only that key
    last = db.ok("commit", "-m", "Ada is 36 again", "--json").json["commit"]
    assert db.ok("history", "people", "1", "--json").json[0]["object"] == ADA
    # restore without --source discards uncommitted changes
    assert db.sqlite3("DELETE FROM people WHERE id = 3").returncode == 0
    assert db.ok("status", "--json").json["changes"][0]["change"] == "deleted"
    db.ok("restore")
    assert db.ok("get", "people", "3", "--json").json == CY
    assert db.ok("status", "--json").json["changes"] == []
    assert db.ok("head").stdout.strip() == last

    # -- nsl sql, read-only and --write ----------------------------------------------------------------------------
    r = db.ok("sql", "SELECT name, age FROM people WHERE age > ? ORDER BY age", "--param", "40", "--json")
    assert r.json == [{"name": "Zoë Ed", "age": 41}, {"name": "Cy", "age": 50}]
    db.ok("sql", "UPDATE people SET nick = 'Bobby' WHERE id = 2", "--write")
    assert db.ok("status", "--json").json["changes"][0]["key"] == 2
    db.ok("commit", "-m", "nick")
    assert db.ok("get", "people", "2", "--json").json["nick"] == "Bobby"

    # -- hash: equal to the sqlite3 | head -c -1 | sha1sum pipeline --------------------------------------------------
    for key in ("1", "2", "3", "5", "6"):
        h = db.ok("hash", "people", key).stdout.strip()
        assert h == sha1_pipeline(db, f"select * from people where id={key}"), key
    assert db.ok("hash", "cities", "Oslo").stdout.strip() == \
        sha1_pipeline(db, "select * from cities where name='Oslo'")

    # -- verify ----------------------------------------------------------------------------------------------------
    r = db("verify", "--json")
    assert r.returncode == 0, str(r)
    assert r.json["ok"] is True and r.json["problems"] == [] and r.json["head"] == db.ok("head").stdout.strip()
    db.assert_verify_ok()


def test_hash_matches_the_sqlite3_pipeline(people):
    """`nsl hash people 1` is what the docs say: sqlite3 DB "select * ..." | head -c -1 | sha1sum."""
    h = people.ok("hash", "people", "1").stdout.strip()
    assert len(h) == 40
    assert h == sha1_pipeline(people, "select * from people where id=1")
    # Every kind of value: floats, null, booleans, nested JSON and non-ASCII text.
    people.ok("save", "odd", json.dumps({"id": 1, "f": 0.1, "g": 1e20, "h": 3.0, "neg": -2.5, "n": None,
                                         "t": True, "u": "Zoë ☃ 日本", "nested": {"a": [1, {"b": None}]},
                                         "pipe": "a|b", "nl": "two\nlines", "big": 9223372036854775807}))
    assert people.ok("hash", "odd", "1").stdout.strip() == sha1_pipeline(people, "select * from odd where id=1")
    r = people.ok("hash", "people", "3", "--json").json
    assert r == {"table": "people", "key": 3, "hash": sha1_pipeline(people, "select * from people where id=3")}


def test_stdin_forms_of_save(nsl):
    """One document over several lines, an array over several lines, and JSON lines with blank lines."""
    nsl.ok("init")
    pretty = json.dumps({"id": 1, "a": {"b": [1, 2]}}, indent=2)
    assert nsl.ok("save", "t", "--json", input=pretty + "\n").json["count"] == 1
    arr = json.dumps([{"id": 2}, {"id": 3, "x": "y"}], indent=2)
    assert nsl.ok("save", "t", "-", "--json", input=arr).json["keys"] == [2, 3]
    lines = '\n{"id": 4}\n\n{"id": 5}\n   \n{"id": 6, "x": null}'  # no final newline
    assert nsl.ok("save", "t", "--json", input=lines).json["keys"] == [4, 5, 6]
    assert [o["id"] for o in nsl.ok("find", "t", "--json").json] == [1, 2, 3, 4, 5, 6]
    assert nsl.ok("get", "t", "1", "--json").json == {"id": 1, "a": {"b": [1, 2]}}
    # The same key twice in one save: the last one wins, one commit, one version.
    r = nsl.ok("save", "t", "--json", input='{"id": 7, "v": 1}\n{"id": 7, "v": 2}\n')
    assert nsl.ok("get", "t", "7", "--json").json == {"id": 7, "v": 2}
    assert [h["op"] for h in nsl.ok("history", "t", "7", "--json").json] == ["I"]
    assert nsl.ok("show", r.json["commit"], "--json").json["changes"] == 1
    nsl.assert_verify_ok()


def test_the_db_option_and_nsl_db_variable(nsl, tmp_path):
    """--db wins over NSL_DB; without either, ./nsl.db in the current directory."""
    other = tmp_path / "other.db"
    nsl.ok("init")
    nsl.ok("--db", str(other), "init")
    nsl.ok("--db", str(other), "save", "t", '{"id": 1, "where": "other"}')
    nsl.ok("save", "t", '{"id": 1, "where": "main"}')
    assert nsl.ok("--db", str(other), "get", "t", "1", "--json").json["where"] == "other"
    assert nsl.ok("get", "t", "1", "--json").json["where"] == "main"
    env = nsl.env()
    del env["NSL_DB"]
    assert nsl("get", "t", "1", "--json", env=env).json["where"] == "main"  # cwd is tmp_path: ./nsl.db


def test_saving_an_unchanged_object_makes_no_commit_after_columns_were_added(nsl):
    nsl.ok("init")
    nsl.ok("save", "people", '{"id": 1, "name": "Ada"}')
    nsl.ok("save", "people", '{"id": 2, "name": "Bob", "city": "Oslo"}')  # adds the column city
    head = nsl.ok("head").stdout.strip()
    r = nsl.ok("save", "people", '{"id": 1, "name": "Ada"}', "--json")
    assert r.json["commit"] is None and r.json["count"] == 0
    assert nsl.ok("head").stdout.strip() == head
    assert [h["op"] for h in nsl.ok("history", "people", "1", "--json").json] == ["I"]


def test_reverting_the_revert_of_a_deletion_deletes_again(nsl):
    nsl.ok("init")
    nsl.ok("save", "people", '{"id": 4, "name": "Di"}')
    nsl.ok("delete", "people", "4")
    nsl.ok("revert", "HEAD")
    assert nsl.ok("get", "people", "4", "--json").json == {"id": 4, "name": "Di"}
    nsl.ok("revert", "HEAD")
    r = nsl("get", "people", "4")
    assert r.returncode == 1 and "no object" in r.stderr
    assert [h["op"] for h in nsl.ok("history", "people", "4", "--json").json][0] == "D"


def test_every_command_is_found_where_the_lazy_command_table_says(nsl):
    """`nsl CMD` imports only CMD's module (COMMAND_MODULES): the table names each command's module, and
    `nsl save` does not load the server, the sync client or verify."""
    code = ("import sys; from nsl.cli import main; main._register(); "
            "print({n: c.callback.__module__.rsplit('.', 1)[1] for n, c in main.cli.commands.items()} "
            "== main.COMMAND_MODULES)")
    r = subprocess.run([sys.executable, "-c", code], env=nsl.env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert r.stdout.strip() == "True", r.stderr
    code = ("import sys; from nsl.cli.main import main\n"
            "try:\n    main(['--db', sys.argv[1], 'save', 't', '{\"id\": 1}'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('nsl.') and m.split('.')[-1] in "
            "('serve', 'server', 'sync', 'client', 'verify', 'travel', 'history', 'timeline', 'integrity')))")
    nsl.ok("init")
    r = subprocess.run([sys.executable, "-c", code, str(nsl.db)], env=nsl.env(), capture_output=True, text=True,
                       timeout=TIMEOUT)
    assert r.stdout.strip().splitlines()[-1] == "[]", r.stdout + r.stderr
    assert nsl.ok("get", "t", "1", "--json").json == {"id": 1}
    assert "Did you mean" in nsl("sav", "t").stderr or "No such command" in nsl("sav", "t").stderr
