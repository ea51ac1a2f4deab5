"""POST /api/v1/sql and `nsl sql` cannot change how the database or the server's connections work.

A read token's SQL is read-only, PRAGMAs included: it may read harmless settings and describe tables, but
any PRAGMA that sets a value is refused (403 read_only). Even a write token cannot change a setting of the
connection the server keeps for later requests (journal mode, synchronous, busy timeout, ...): 400.
"""
from __future__ import annotations

import sqlite3

import nsl
from nsl.core import tokens
from servetools import nsl_run

# Settings a reader tried to change, and what they would have done to the file or the kept connection.
SETTING_PRAGMAS = [
    "PRAGMA journal_mode = DELETE",          # persists in the file: no more WAL
    "PRAGMA journal_mode=OFF",
    "PRAGMA main.journal_mode = delete",
    'PRAGMA "JOURNAL_MODE" = \'truncate\'',
    "PRAGMA synchronous=0",
    "PRAGMA synchronous = OFF",
    "PRAGMA busy_timeout=0",
    "PRAGMA ignore_check_constraints=1",
    "PRAGMA foreign_keys=1",
    "PRAGMA recursive_triggers=1",
    "PRAGMA wal_autocheckpoint=0",
    "PRAGMA reverse_unordered_selects=1",
    "PRAGMA cache_size=1",
    "PRAGMA locking_mode = EXCLUSIVE",
    "PRAGMA query_only = 0",
    "PRAGMA writable_schema = 1",
    "PRAGMA mmap_size = 268435456",
    "PRAGMA temp_store = MEMORY",
    "PRAGMA secure_delete = 1",
    "PRAGMA automatic_index = 0",
    "PRAGMA case_sensitive_like = 1",
    "PRAGMA trusted_schema = 1",
    "PRAGMA defer_foreign_keys = 1",
    "PRAGMA soft_heap_limit = 1",
    "PRAGMA wal_checkpoint(TRUNCATE)",
    "PRAGMA wal_checkpoint",
    "PRAGMA optimize",
]

# The settings of the server's connection, as a reader may read them.
READ_BACK = ["journal_mode", "synchronous", "busy_timeout", "ignore_check_constraints", "foreign_keys",
             "recursive_triggers", "wal_autocheckpoint", "reverse_unordered_selects", "cache_size", "locking_mode",
             "query_only", "mmap_size", "temp_store", "secure_delete", "automatic_index", "trusted_schema",
             "defer_foreign_keys", "user_version"]


def _setup(db_path):
    db = nsl.open(db_path)
    try:
        nsl.save(db, "t", [{"id": 1, "name": "Ada", "born": 1815}, {"id": 2, "name": "Alan", "born": 1912}],
                 message="seed")
        return tokens.add(db, "reader", "read"), tokens.add(db, "writer", "write")
    finally:
        db.close()


def _settings(client) -> dict:
    out = {}
    for name in READ_BACK:
        r = client.post("sql", json={"sql": f"PRAGMA {name}"})
        assert r.status_code == 200, (name, r.text)
        out[name] = r.json()["rows"]
    return out


def _file_journal_mode(path) -> str:
    conn = sqlite3.connect(str(path))
    try:
        return conn.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        conn.close()


def test_read_token_cannot_change_settings_with_pragmas(server_db, start_server):
    read_tok, write_tok = _setup(server_db)
    # One worker thread: every request uses the one connection the server keeps, so a setting a request
    # changed would be seen by the next.
    served = start_server(server_db, threads=1)
    reader, writer = served.api(read_tok), served.api(write_tok)
    before = _settings(reader)
    assert before["journal_mode"] == [["wal"]] and before["synchronous"] == [[1]]
    assert before["foreign_keys"] == [[0]] and before["busy_timeout"][0][0] > 0

    for sql in SETTING_PRAGMAS:
        r = reader.post("sql", json={"sql": sql})
        assert r.status_code == 403, (sql, r.text)
        err = r.json()["error"]
        assert err["code"] == "read_only" and "may only read" in err["message"], (sql, err)
        assert "PRAGMA" in err["message"], (sql, err)
        # A writer may not change them either: they belong to the connection other requests share.
        r = writer.post("sql", json={"sql": sql})
        assert r.status_code == 400, (sql, r.text)
        err = r.json()["error"]
        assert err["code"] == "sql_error" and "cannot be run" in err["message"], (sql, err)
        r = writer.post("sql", json={"sql": sql, "write": True})
        assert r.status_code == 400 and r.json()["error"]["code"] == "sql_error", (sql, r.text)

    # Also through the table-valued form of a PRAGMA, which runs the PRAGMA with its argument.
    r = reader.post("sql", json={"sql": "SELECT * FROM pragma_journal_mode('delete')"})
    assert r.status_code in (400, 403), r.text

    # A value kept in the file for its users (user_version) is a write: a reader may not, a writer may.
    r = reader.post("sql", json={"sql": "PRAGMA user_version = 7"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "read_only"
    assert "use a token whose role allows write" in r.json()["error"]["hint"]

    # Nothing changed: not the file, not the connection.
    assert _settings(reader) == before
    assert _file_journal_mode(served.db_path) == "wal"

    # A later write through the same connection is committed the usual way: in WAL mode, synchronously,
    # and everything reads it back (a fresh connection included).
    r = writer.post("tables/t/objects", json={"id": 3, "name": "Grace", "born": 1906})
    assert r.status_code == 201, r.text
    assert served.db_path.with_name(served.db_path.name + "-wal").stat().st_size > 0
    assert _settings(reader) == before
    conn = sqlite3.connect(str(served.db_path))
    try:
        assert conn.execute("SELECT name FROM t WHERE id = 3").fetchone() == ("Grace",)
    finally:
        conn.close()
    r = writer.post("sql", json={"sql": "PRAGMA user_version = 7"})
    assert r.status_code == 200 and r.json()["write"] is True
    assert reader.post("sql", json={"sql": "PRAGMA user_version"}).json()["rows"] == [[7]]
    db = nsl.open(served.db_path)
    try:
        rep = nsl.verify(db)
        assert rep.ok and rep.uncommitted == 0
    finally:
        db.close()


def test_reading_pragmas_still_work(server_db, start_server):
    read_tok, _ = _setup(server_db)
    served = start_server(server_db)
    reader = served.api(read_tok)

    def rows(sql):
        r = reader.post("sql", json={"sql": sql})
        assert r.status_code == 200, (sql, r.text)
        assert r.json()["write"] is False
        return r.json()["rows"]

    assert [c[1] for c in rows("PRAGMA table_info(t)")] == ["id", "name", "born"]
    assert [c[1] for c in rows('PRAGMA main.table_xinfo("t")')] == ["id", "name", "born"]
    assert [c[0] for c in rows("SELECT name FROM pragma_table_info('t') ORDER BY cid")] == ["id", "name", "born"]
    assert rows("PRAGMA index_list(t)") == rows("SELECT * FROM pragma_index_list('t')")
    assert rows("PRAGMA foreign_key_list(t)") == []
    assert rows("PRAGMA journal_mode") == [["wal"]]
    assert rows("PRAGMA user_version") == [[0]]
    assert rows("PRAGMA page_size")[0][0] >= 512 and rows("PRAGMA page_count")[0][0] > 0
    assert isinstance(rows("PRAGMA freelist_count")[0][0], int)
    assert isinstance(rows("PRAGMA data_version")[0][0], int) and isinstance(rows("PRAGMA schema_version")[0][0], int)
    assert rows("PRAGMA database_list")[0][1] == "main"
    assert rows("PRAGMA compile_options") and rows("PRAGMA function_list") and rows("PRAGMA pragma_list")
    assert rows("PRAGMA collation_list")
    assert rows("PRAGMA quick_check") == [["ok"]]
    # A PRAGMA nsl does not know is refused, not silently ignored.
    r = reader.post("sql", json={"sql": "PRAGMA no_such_pragma"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "sql_error"


def test_refusals_are_told_by_sqlite_not_by_the_message(server_db, start_server):
    """An error that happens to contain words like "readonly" or "interrupted" is still the error it is."""
    read_tok, _ = _setup(server_db)
    served = start_server(server_db, time_limit=0.5)
    reader = served.api(read_tok)
    for sql in ("SELECT * FROM readonly_x", "SELECT * FROM read_only", "SELECT * FROM interrupted",
                'SELECT "not authorized" FROM locked', "SELECT * FROM busy"):
        r = reader.post("sql", json={"sql": sql})
        assert r.status_code == 400, (sql, r.text)
        err = r.json()["error"]
        assert err["code"] == "sql_error" and "no such table" in err["message"], (sql, err)
    r = reader.post("sql", json={"sql": "DELETE FROM t WHERE name = 'readonly'"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "read_only"
    # SQL that runs over the request's time limit is stopped: 503 timeout.
    slow = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    r = reader.post("sql", json={"sql": slow})
    assert r.status_code == 503 and r.json()["error"]["code"] == "timeout", r.text
    assert reader.post("sql", json={"sql": "SELECT count(*) FROM t"}).json()["rows"] == [[2]]


def test_nsl_sql_refuses_the_same_pragmas(tmp_path):
    """`nsl sql` runs the same code: read-only without --write, and settings stay out of reach with it."""
    db = tmp_path / "nsl.db"
    nsl_run(tmp_path, db, "init")
    nsl_run(tmp_path, db, "save", "t", '{"id": 1, "name": "Ada"}')
    for sql in ("PRAGMA journal_mode = DELETE", "PRAGMA synchronous = 0", "PRAGMA foreign_keys = 1"):
        p = nsl_run(tmp_path, db, "sql", sql, check=False)
        assert p.returncode == 2 and "read-only" in p.stderr and "PRAGMA" in p.stderr, (sql, p.stderr)
        p = nsl_run(tmp_path, db, "sql", sql, "--write", check=False)
        assert p.returncode == 2 and "cannot be run" in p.stderr, (sql, p.stderr)
    p = nsl_run(tmp_path, db, "sql", "PRAGMA user_version = 3", check=False)
    assert p.returncode == 2 and "--write" in p.stderr
    nsl_run(tmp_path, db, "sql", "PRAGMA user_version = 3", "--write")
    assert nsl_run(tmp_path, db, "sql", "PRAGMA user_version", "--json").stdout.strip().startswith("[")
    p = nsl_run(tmp_path, db, "sql", "PRAGMA table_info(t)", "--json")
    assert '"name"' in p.stdout
    assert _file_journal_mode(db) == "wal"
    nsl_run(tmp_path, db, "verify")


def test_sql_cannot_control_transactions(server_db, start_server):
    """A COMMIT in SQL would end the transaction a write runs in before nsl does; a BEGIN would leave one
    open on the connection. Both are refused (400), for readers and writers, and change nothing."""
    read_tok, write_tok = _setup(server_db)
    served = start_server(server_db, threads=1)
    reader, writer = served.api(read_tok), served.api(write_tok)
    for sql in ("COMMIT", "ROLLBACK", "BEGIN", "BEGIN IMMEDIATE", "END", "SAVEPOINT s", "RELEASE s",
                "ROLLBACK TO s"):
        for client, body in ((reader, {"sql": sql}), (writer, {"sql": sql}), (writer, {"sql": sql, "write": True})):
            r = client.post("sql", json=body)
            assert r.status_code == 400, (sql, body, r.text)
            err = r.json()["error"]
            assert err["code"] == "sql_error" and "transaction" in err["message"], (sql, err)
    r = writer.post("sql", json={"sql": "UPDATE t SET born = born + 1 WHERE id = 1"})
    assert r.status_code == 200 and r.json()["write"] is True
    assert reader.get("tables/t/objects/1").json()["born"] == 1816
    db = nsl.open(served.db_path)
    try:
        rep = nsl.verify(db)
        assert rep.ok and rep.uncommitted == 1
    finally:
        db.close()
