"""What a connection keeps between reads (table metadata, tokens) follows every change to the database:
by another process, by another connection, and by its own SQL."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import nsl
from nsl.core import tokens

REPO = Path(__file__).resolve().parents[2]


def other_process(db_path, code: str) -> str:
    """Run `code` in another Python process, with `db` open on the same file; returns its stdout."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    prog = f"import nsl\nfrom nsl.core import tokens\ndb = nsl.open({str(db_path)!r})\n{code}\ndb.close()\n"
    p = subprocess.run([sys.executable, "-c", prog], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_columns_and_json_columns_from_another_process(db, db_path):
    nsl.save(db, "t", [{"id": 1, "a": 1, "tags": "x"}])
    assert db.table("t").columns == ["id", "a", "tags"]
    assert nsl.get(db, "t", 1) == {"id": 1, "a": 1, "tags": "x"}
    assert [o["id"] for o in nsl.find(db, "t", {"tags": "y"})] == []

    # A new column (a schema change), and nested JSON in a column that had none (a data change only).
    other_process(db_path, 'nsl.save(db, "t", [{"id": 2, "b": {"deep": [True, 9223372036854775807]}, '
                           '"tags": ["x", "y"]}])')
    tbl = db.table("t")
    assert tbl.columns == ["id", "a", "tags", "b"]
    assert tbl.json_columns == {"b", "tags"}
    got = nsl.get(db, "t", 2)
    assert got == {"id": 2, "b": {"deep": [True, 9223372036854775807]}, "tags": ["x", "y"]}
    assert got["b"]["deep"][0] is True
    assert nsl.get(db, "t", 1) == {"id": 1, "a": 1, "tags": "x"}
    assert [o["id"] for o in nsl.find(db, "t", {"tags": "y"})] == [2]  # any-element logic, now that tags holds JSON

    # A column added with plain SQL, outside nsl.
    other_process(db_path, 'db.conn.execute(\'ALTER TABLE "t" ADD COLUMN "c"\')')
    assert db.table("t").columns == ["id", "a", "tags", "b", "c"]
    assert nsl.get(db, "t", 1) == {"id": 1, "a": 1, "tags": "x"}

    # A table dropped and made again under the same name by another process.
    other_process(db_path, 'db.conn.execute("DELETE FROM nsl_table WHERE name = \'t\'")\n'
                           'db.conn.execute(\'DROP TABLE "t"\')\n'
                           'nsl.save(db, "t", [{"k": "z", "v": 1}], key="k")')
    assert db.table("t").key_col == "k" and db.table("t").columns == ["k", "v"]
    assert nsl.get(db, "t", "z") == {"k": "z", "v": 1}


def test_changes_by_the_connection_itself(db):
    nsl.save(db, "t", [{"id": 1, "a": 1}])
    assert db.table("t").columns == ["id", "a"]
    db.conn.execute('ALTER TABLE "t" ADD COLUMN "z"')  # plain SQL on this very connection
    assert db.table("t").columns == ["id", "a", "z"]
    nsl.save(db, "t", [{"id": 2, "n": [1]}])
    assert db.table("t").columns == ["id", "a", "z", "n"] and db.table("t").json_columns == {"n"}
    assert db.table("u", missing_ok=True) is None
    nsl.save(db, "u", [{"id": 1}])
    assert db.table("u").columns == ["id"]


def test_a_write_reads_its_own_table(db):
    nsl.save(db, "t", [{"id": 1}])
    kept = db.table("t")
    with db.write():
        mine = db.table("t")
        assert mine is not kept
        mine.columns.append("scribbled")  # a writer may change its copy
    assert db.table("t").columns == ["id"]


def test_tokens_from_another_process(db, db_path):
    assert tokens.count(db) == 0 and tokens.check(db, "nsl_x") is None
    made = other_process(db_path, 'print(tokens.add(db, "ci", "read"))').strip()
    assert tokens.count(db) == 1 and tokens.check(db, made) == ("ci", "read")
    other_process(db_path, 'tokens.add(db, "admin", "admin")\ntokens.remove(db, "ci")')
    assert tokens.count(db) == 1 and tokens.check(db, made) is None
    mine = tokens.add(db, "mine", "write")  # this connection's own write
    assert tokens.check(db, mine) == ("mine", "write") and tokens.count(db) == 2


def test_one_look_per_read_transaction(db):
    """Inside one read(), whether the database changed is asked once; a kept table costs no query."""
    nsl.save(db, "t", [{"id": 1, "a": 1}])
    nsl.get(db, "t", 1)
    tokens.count(db)
    seen = []
    db.conn.set_trace_callback(seen.append)
    try:
        with db.read():
            tokens.count(db)
            assert nsl.get(db, "t", 1) == {"id": 1, "a": 1}
            assert nsl.get(db, "t", 1) == {"id": 1, "a": 1}
    finally:
        db.conn.set_trace_callback(None)
    assert seen[:3] == ["BEGIN", "PRAGMA schema_version", "PRAGMA data_version"]
    assert len(seen) == 6 and seen[-1] == "COMMIT"  # and the two lookups of the object


def _statements(db):
    seen = []
    db.conn.set_trace_callback(lambda s: seen.append(s) if not s.startswith("--") else None)
    return seen


def test_tentative_uses_what_is_kept_and_its_statement_checks_it(db):
    nsl.save(db, "t", [{"id": 1, "a": True}])
    tokens.count(db)
    assert nsl.get(db, "t", 1) == {"id": 1, "a": True}
    seen = _statements(db)
    with db.tentative() as t:
        assert tokens.count(db) == 0
        assert nsl.get(db, "t", 1) == {"id": 1, "a": True}
    db.conn.set_trace_callback(None)
    assert t.ok and len(seen) == 1 and seen[0].startswith("SELECT t.*, v.content, (SELECT data_version")


def test_tentative_notices_what_another_process_changed(db, db_path):
    nsl.save(db, "t", [{"id": 1}])
    assert tokens.count(db) == 0 and nsl.get(db, "t", 1) == {"id": 1}
    other_process(db_path, 'tokens.add(db, "ci", "read")\nnsl.save(db, "t", [{"id": 1, "b": [1, 2]}])')
    with db.tentative() as t:
        assert tokens.count(db) == 0  # kept, not asked: the block's statements tell it changed
        assert nsl.get(db, "t", 1) == {"id": 1, "b": [1, 2]}  # get itself read again
    assert not t.ok
    assert tokens.count(db) == 1
    other_process(db_path, 'tokens.remove(db, "ci")')  # the table unchanged: get's own statement tells
    with db.tentative() as t:
        assert tokens.count(db) == 1
        assert nsl.get(db, "t", 1) == {"id": 1, "b": [1, 2]}
    assert not t.ok and tokens.count(db) == 0


def test_tentative_without_a_checking_statement_asks_at_its_end(db, db_path):
    assert tokens.count(db) == 0
    with db.tentative() as t:
        assert tokens.count(db) == 0
    assert t.ok
    other_process(db_path, 'tokens.add(db, "ci", "read")')
    seen = _statements(db)
    with db.tentative() as t:
        assert tokens.count(db) == 0
    db.conn.set_trace_callback(None)
    assert not t.ok and len(seen) == 1 and tokens.count(db) == 1
    with db.tentative() as t:
        with db.read():  # inside a transaction, kept values are checked as always
            assert tokens.count(db) == 1
    assert t.ok


def test_get_in_one_statement_sees_a_table_changed_since(db, db_path):
    nsl.save(db, "t", [{"id": 1, "a": 1}])
    assert nsl.get(db, "t", 1) == {"id": 1, "a": 1}
    other_process(db_path, 'db.conn.execute(\'ALTER TABLE "t" RENAME COLUMN "a" TO "b"\')')
    with db.tentative():
        assert nsl.get(db, "t", 1) == {"id": 1, "b": 1}  # as the row now holds it (changed outside nsl)
    other_process(db_path, 'db.conn.execute(\'ALTER TABLE "t" RENAME COLUMN "id" TO "k"\')')
    # The key column is gone from under nsl: the statement built from the kept metadata fails, and get
    # fails as it does in a transaction (nsl_table still names "id"), not with an answer of old metadata.
    with pytest.raises(sqlite3.OperationalError, match="no such column"):
        with db.tentative():
            nsl.get(db, "t", 1)
    with pytest.raises(sqlite3.OperationalError, match="no such column"), db.read():
        nsl.get(db, "t", 1)


def test_a_schema_change_through_nsl_is_seen_by_a_tentative_get(db):
    """A write() that changes no row (only the schema) still moves what a statement's own check
    compares: the count of this connection's write() blocks."""
    nsl.save(db, "t", [{"id": 1, "a": 1}])
    assert nsl.get(db, "t", 1) == {"id": 1, "a": 1}
    changes = db.conn.total_changes
    nsl.sql(db, 'ALTER TABLE "t" RENAME COLUMN "a" TO "b"', write=True)
    assert db.conn.total_changes == changes
    with db.tentative() as t:
        assert nsl.get(db, "t", 1) == {"id": 1, "b": 1}
    assert not t.ok
