"""Edits made with the real sqlite3 shell, in every form SQLite offers, are caught and committed."""
from __future__ import annotations

import sqlite3

import pytest

from nsl.core import schema

EDITS = {
    "upsert": "INSERT INTO people(id, name) VALUES (1, 'Ada K') ON CONFLICT(id) DO UPDATE SET name = excluded.name",
    "update or abort": "UPDATE OR ABORT people SET name = 'Ada K' WHERE id = 1",
    "update or fail": "UPDATE OR FAIL people SET name = 'Ada K' WHERE id = 1",
    "update or rollback": "UPDATE OR ROLLBACK people SET name = 'Ada K' WHERE id = 1",
    "insert or replace": "INSERT OR REPLACE INTO people(id, name) VALUES (1, 'Ada K')",
    "replace": "REPLACE INTO people(id, name) VALUES (1, 'Ada K')",
}


@pytest.mark.parametrize("form", list(EDITS))
def test_every_conflict_policy_of_an_edit_is_recorded_even_twice(people, form):
    # Twice: the second edit of a key that is already pending must not trip over its note.
    for _ in range(2):
        p = people.sqlite3(EDITS[form])
        assert p.returncode == 0, p.stderr
    st = people.ok("status", "--json").json
    assert [(c["table"], c["key"], c["change"]) for c in st["changes"]] == [("people", 1, "modified")]
    people.ok("commit", "-m", form)
    assert people.ok("get", "people", "1", "--json").json["name"] == "Ada K"
    assert people.ok("status", "--json").json["changes"] == []
    assert people("verify").returncode == 0


def test_insert_or_ignore_of_a_new_key_and_of_a_pending_one(people):
    assert people.sqlite3("INSERT OR IGNORE INTO people(id, name) VALUES (7, 'Gus')").returncode == 0
    assert people.sqlite3("INSERT OR IGNORE INTO people(id, name) VALUES (7, 'Hal')").returncode == 0
    assert people.sqlite3("UPDATE OR IGNORE people SET name = 'Ivy' WHERE id = 7").returncode == 0
    st = people.ok("status", "--json").json
    assert [(c["key"], c["change"]) for c in st["changes"]] == [(7, "added")]
    people.ok("commit", "-m", "gus")
    assert people.ok("get", "people", "7", "--json").json["name"] == "Ivy"


def test_an_edit_after_restore_clears_the_restored_version(people):
    first = people.ok("log", "--json").json[-1]["commit"]
    people.ok("restore", "--source", first, "people", "1")
    p = people.sqlite3("INSERT INTO people(id, name, age) VALUES (1, 'Ada', 99) "
                       "ON CONFLICT(id) DO UPDATE SET age = excluded.age")
    assert p.returncode == 0, p.stderr
    people.ok("commit", "-m", "edited after restore")
    assert people.ok("get", "people", "1", "--json").json["age"] == 99
    assert people("verify").returncode == 0


def test_a_file_with_the_old_triggers_gets_the_new_ones_when_opened(people):
    # The schema-2 triggers used INSERT OR REPLACE, which an upsert's policy overrides.
    c = sqlite3.connect(people.db)
    tid = c.execute("SELECT tid FROM nsl_table WHERE name = 'people'").fetchone()[0]
    for stmt in schema.drop_trigger_sql(tid):
        c.execute(stmt)
    c.execute(f"CREATE TRIGGER nsl_upd_{tid} AFTER UPDATE ON people WHEN NOT EXISTS (SELECT 1 FROM nsl_busy) "
              f"BEGIN INSERT OR REPLACE INTO nsl_pending(tid, key) VALUES ({tid}, OLD.id); "
              f"INSERT OR REPLACE INTO nsl_pending(tid, key) VALUES ({tid}, NEW.id); END")
    c.execute("UPDATE nsl_meta SET value = '2' WHERE name = 'schema_version'")
    c.commit()
    c.close()
    assert people.sqlite3(EDITS["upsert"]).returncode != 0   # what the old trigger did
    people.ok("status")                                       # opening the file upgrades it
    assert people.sqlite3(EDITS["upsert"]).returncode == 0
    assert people.sqlite3(EDITS["upsert"]).returncode == 0
    assert [c["key"] for c in people.ok("status", "--json").json["changes"]] == [1]
    assert people.sqlite3("SELECT value FROM nsl_meta WHERE name = 'schema_version'").stdout.strip() == \
        str(schema.SCHEMA_VERSION)
    assert people("verify").returncode == 0


@pytest.mark.parametrize("edit", [EDITS["upsert"], "INSERT INTO people(id, name) VALUES (9, 'Ivy')",
                                  "DELETE FROM people WHERE id = 2", "UPDATE people SET age = age + 1"])
def test_the_sqlite3_shell_cannot_change_a_checked_out_state(people, edit):
    # A change made while an old commit is shown would be undone by the return to the head: refused.
    people.ok("save", "people", '{"id": 1, "name": "Ada L"}')
    head = people.ok("head").stdout.strip()
    old = people.ok("log", "--json").json[-1]["commit"]
    people.ok("checkout", old)
    shown = people.sqlite3("SELECT * FROM people ORDER BY id").stdout
    p = people.sqlite3(edit)
    assert p.returncode != 0
    assert "an old commit is checked out, so the tables are read-only; run nsl checkout HEAD" in p.stderr
    assert people.sqlite3("SELECT * FROM people ORDER BY id").stdout == shown
    assert people.ok("status", "--json").json["changes"] == []
    people.ok("checkout", "HEAD")
    assert people.ok("head").stdout.strip() == head
    assert people.ok("get", "people", "1", "--json").json["name"] == "Ada L"
    assert people("verify").returncode == 0
    assert people.sqlite3(edit).returncode == 0     # at the head, the shell writes again


def test_a_column_renamed_with_the_sqlite3_shell_is_recorded_by_commit(people):
    assert people.sqlite3("ALTER TABLE people RENAME COLUMN city TO town").returncode == 0
    st = people.ok("status", "--json").json
    assert [(c["key"], c["change"]) for c in st["changes"]] == [(1, "modified"), (2, "modified"), (3, "modified")]
    people.ok("commit", "-m", "city is now town")
    ada = people.ok("get", "people", "1", "--json").json
    assert ada["town"] == "London" and "city" not in ada
    assert ada["active"] is True and ada["tags"] == ["math", "code"]   # JSON kinds carried over
    assert people.ok("status", "--json").json["changes"] == []
    assert people("verify").returncode == 0


def test_a_dropped_column_and_a_dropped_table_are_recorded_by_commit(people):
    people.ok("save", "pets", '[{"id": 1, "name": "Rex"}, {"id": 2, "name": "Tom"}]')
    assert people.sqlite3("ALTER TABLE people DROP COLUMN score; DROP TABLE pets").returncode == 0
    st = people.ok("status", "--json").json
    assert sorted((c["table"], c["key"], c["change"]) for c in st["changes"]) == [
        ("people", 1, "modified"), ("people", 2, "modified"), ("people", 3, "modified"),
        ("pets", 1, "deleted"), ("pets", 2, "deleted")]
    people.ok("commit", "-m", "no more scores, no more pets")
    assert "score" not in people.ok("get", "people", "2", "--json").json
    assert people.ok("history", "pets", "1", "--json").json[0]["op"] == "D"
    assert people.ok("status", "--json").json["changes"] == []
    assert people("verify").returncode == 0
    # a table made again under the name starts afresh
    people.ok("save", "pets", '{"id": 3, "name": "Kit"}')
    assert people("verify").returncode == 0


def test_a_table_dropped_and_made_again_with_rows_is_noticed(people):
    # Dropping the table dropped its triggers too: its new rows were never noted, yet they are found.
    assert people.sqlite3("DROP TABLE people; CREATE TABLE people(id PRIMARY KEY, name); "
                          "INSERT INTO people VALUES (1, 'Ada'), (7, 'Gus')").returncode == 0
    st = people.ok("status", "--json").json
    assert [(c["key"], c["change"]) for c in st["changes"]] == [
        (1, "modified"), (2, "deleted"), (3, "deleted"), (7, "added")]
    people.ok("commit", "-m", "made again")
    assert people.sqlite3("INSERT INTO people VALUES (8, 'Hal')").returncode == 0   # triggers are back
    assert [c["key"] for c in people.ok("status", "--json").json["changes"]] == [8]
    people.ok("commit", "-m", "hal")
    assert people("verify").returncode == 0


def test_a_renamed_key_column_is_a_clear_error_until_renamed_back(people):
    assert people.sqlite3("ALTER TABLE people RENAME COLUMN id TO ident").returncode == 0
    for cmd in (["status"], ["commit", "-m", "x"]):
        r = people(*cmd)
        assert r.returncode == 1
        assert r.error_lines == ["error: table 'people' has no column 'id' any more, the key nsl tracks its "
                                 "objects by"]
        assert "RENAME COLUMN" in r.stderr
    assert people.sqlite3("ALTER TABLE people RENAME COLUMN ident TO id").returncode == 0
    assert people.ok("status", "--json").json["changes"] == []
    assert people("verify").returncode == 0
