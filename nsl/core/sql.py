"""Arbitrary SQL against a nsl database: read-only unless asked, and never able to rewrite history.

Read-only is enforced by SQLite (`PRAGMA query_only`), not by looking at the SQL text. An authorizer
(one per statement, `_Guard`) keeps even writable SQL away from nsl's own tables, except through
nsl's change-tracking triggers, and decides which PRAGMAs may run:

- read-only SQL may only read the harmless PRAGMAs of `READ_PRAGMAS` (no value given) and ask about a
  table or index with those of `TABLE_PRAGMAS` (`PRAGMA table_info(t)`); any PRAGMA that sets a value
  is refused as a write;
- SQL that may write may also set `user_version` and `application_id` (values kept in the file that
  nsl does not use), but nothing else: every other setting (journal_mode, synchronous, busy_timeout,
  locking_mode, foreign_keys, cache_size, ...) belongs to the connection, which a server keeps for
  later requests, or changes how the file is written.

No SQL may ATTACH or DETACH (nor VACUUM, which attaches), read `nsl_token`, or control transactions
(BEGIN, COMMIT, ROLLBACK, SAVEPOINT): each statement is one transaction, nsl's own when it writes.

The guard notes why it refused, so a failure is told apart by what the authorizer saw and by SQLite's
error code, never by the text of the message (which may echo the user's own names).
"""
from __future__ import annotations

import sqlite3
from typing import Iterator

from ..errors import ReadOnlySQL, SQLError
from .database import Database

_WRITE_ACTIONS = {
    sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE, sqlite3.SQLITE_DROP_TABLE,
    sqlite3.SQLITE_ALTER_TABLE, sqlite3.SQLITE_CREATE_TRIGGER, sqlite3.SQLITE_DROP_TRIGGER,
    sqlite3.SQLITE_CREATE_INDEX, sqlite3.SQLITE_DROP_INDEX,
}


# For these actions SQLite passes the table's name second (first: the index, trigger or database).
_TABLE_SECOND = {sqlite3.SQLITE_CREATE_INDEX, sqlite3.SQLITE_DROP_INDEX, sqlite3.SQLITE_CREATE_TRIGGER,
                 sqlite3.SQLITE_DROP_TRIGGER, sqlite3.SQLITE_ALTER_TABLE}


_TRIGGER_ACTIONS = {sqlite3.SQLITE_CREATE_TRIGGER, sqlite3.SQLITE_DROP_TRIGGER,
                    sqlite3.SQLITE_CREATE_TEMP_TRIGGER, sqlite3.SQLITE_DROP_TEMP_TRIGGER}

# PRAGMAs that only report something when given no value.
READ_PRAGMAS = frozenset({
    "application_id", "auto_vacuum", "automatic_index", "busy_timeout", "cache_size", "cache_spill",
    "cell_size_check", "checkpoint_fullfsync", "collation_list", "compile_options", "data_version",
    "database_list", "defer_foreign_keys", "encoding", "foreign_keys", "freelist_count", "fullfsync",
    "function_list", "ignore_check_constraints", "journal_mode", "journal_size_limit", "legacy_alter_table",
    "locking_mode", "max_page_count", "mmap_size", "module_list", "page_count", "page_size", "pragma_list",
    "query_only", "read_uncommitted", "recursive_triggers", "reverse_unordered_selects", "schema_version",
    "secure_delete", "synchronous", "temp_store", "trusted_schema", "user_version", "wal_autocheckpoint",
})

# PRAGMAs whose value names a table or an index (or bounds a check): they read, whatever they are given.
TABLE_PRAGMAS = frozenset({
    "table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo", "foreign_key_list",
    "foreign_key_check", "integrity_check", "quick_check",
})

# PRAGMAs that do something even when given no value.
_ACTING_PRAGMAS = frozenset({"optimize", "wal_checkpoint", "incremental_vacuum", "shrink_memory"})

# PRAGMAs SQL that may write may set: values stored in the file's header, which nsl leaves to its users.
DATA_PRAGMAS = frozenset({"user_version", "application_id"})

# Why a guard refused.
_READ_ONLY = "read_only"    # the statement writes (or sets a PRAGMA) and the SQL is read-only
_READ_ONLY_PRAGMA = "read_only_pragma"  # likewise, but writing SQL may not do it either
_REFUSED = "refused"        # nothing may do it through SQL


def _nsl(name) -> bool:
    return (name or "").lower().startswith("nsl_")


class _Guard:
    """The authorizer of one statement. `refused` is (why, message) of its first refusal, or None."""

    __slots__ = ("write", "refused")

    def __init__(self, write: bool):
        self.write = write
        self.refused: tuple[str, str] | None = None

    def _deny(self, why: str, message: str) -> int:
        if self.refused is None:
            self.refused = (why, message)
        return sqlite3.SQLITE_DENY

    def _nsl_tables(self) -> int:
        if not self.write:
            return self._deny(_READ_ONLY, "")
        return self._deny(_REFUSED, "nsl's own tables (nsl_*) cannot be changed with SQL")

    def __call__(self, action, arg1, arg2, dbname, source):
        # A trigger named nsl_* may write nsl's tables (that is how changes are noted), so user SQL may
        # neither make nor drop one, nor hang any trigger on nsl's tables.
        if action in _TRIGGER_ACTIONS and (_nsl(arg1) or _nsl(arg2)):
            return self._nsl_tables()
        if action in _WRITE_ACTIONS:
            name = (arg2 if action in _TABLE_SECOND else arg1) or ""
            if _nsl(name) and not _nsl(source):
                return self._nsl_tables()
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_READ and (arg1 or "").lower() == "nsl_token":
            # Token hashes and roles are nobody's business over SQL.
            return self._deny(_REFUSED, "nsl_token (the server's tokens) cannot be read with SQL")
        if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
            # ATTACH (and VACUUM, which attaches) create files, even from "read-only" SQL.
            return self._deny(_REFUSED, "ATTACH, DETACH and VACUUM are not allowed in nsl SQL")
        if action == sqlite3.SQLITE_PRAGMA:
            return self._pragma((arg1 or "").lower(), arg2)
        if action in (sqlite3.SQLITE_TRANSACTION, sqlite3.SQLITE_SAVEPOINT):
            # The statement runs in nsl's transaction (or its own): a COMMIT would end nsl's early, a BEGIN
            # would leave one open on the connection.
            return self._deny(_REFUSED, "BEGIN, COMMIT, ROLLBACK and savepoints are not allowed in nsl SQL: "
                                        "each statement is a transaction of its own")
        return sqlite3.SQLITE_OK

    def _pragma(self, name: str, value) -> int:
        if (value is None and name in READ_PRAGMAS) or name in TABLE_PRAGMAS:
            return sqlite3.SQLITE_OK
        if value is None and name not in _ACTING_PRAGMAS:
            return self._deny(_REFUSED, f"PRAGMA {name} is not one nsl SQL may run (those allowed read a "
                                        "setting, or describe tables and indexes)")
        if not self.write:
            what = "sets a value" if value is not None else "changes the database"
            return self._deny(_READ_ONLY if name in DATA_PRAGMAS else _READ_ONLY_PRAGMA, f"PRAGMA {name} {what}")
        if name in DATA_PRAGMAS:
            return sqlite3.SQLITE_OK
        return self._deny(_REFUSED, f"PRAGMA {name} cannot be run with nsl SQL: it changes how the database "
                                    "file or the connection works (durability, locking, limits, checks), "
                                    "which other requests share")


def _error_code(e: BaseException) -> int:
    """SQLite's primary result code of a sqlite3 exception (0 when it carries none)."""
    code = getattr(e, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else 0


def _failure(e: sqlite3.DatabaseError, guard: _Guard) -> Exception:
    """The NslError for a failed statement, from the guard's own note and SQLite's error code."""
    code = _error_code(e)
    if code == sqlite3.SQLITE_INTERRUPT:
        return e  # the caller's time limit, not the SQL's fault: the caller maps it
    if guard.refused is not None:
        why, message = guard.refused
        if why == _READ_ONLY:
            return _read_only(message)
        if why == _READ_ONLY_PRAGMA:
            return ReadOnlySQL(f"this SQL writes ({message}); nsl sql is read-only, and not even "
                               "--write allows this", what=message, writable=False)
        return SQLError(f"SQL error: {message}")
    if code == sqlite3.SQLITE_READONLY and not guard.write:
        return _read_only("")
    return SQLError(f"SQL error: {e}")


def _read_only(what: str) -> ReadOnlySQL:
    detail = f" ({what})" if what else ""
    return ReadOnlySQL(f"this SQL writes{detail}; nsl sql is read-only unless --write is given",
                       hint="add --write to change user tables (then `nsl commit` records it)",
                       what=what, writable=True)


def _execute(conn: sqlite3.Connection, sql: str, params, guard: _Guard) -> tuple[list[str], list]:
    conn.set_authorizer(guard)
    try:
        cur = conn.execute(sql, params)
        cols = [d[0] for d in cur.description or []]
        return cols, cur.fetchall()
    except sqlite3.DatabaseError as e:
        err = _failure(e, guard)
        if err is e:
            raise
        raise err from None
    except (sqlite3.Warning, ValueError, OverflowError) as e:
        raise SQLError(f"SQL error: {e}") from None
    finally:
        conn.set_authorizer(None)


def run(db: Database, sql: str, params=(), *, write: bool = False) -> tuple[list[str], Iterator[tuple]]:
    """(column names, rows) of one SQL statement. Writes need write=True and are left uncommitted
    in nsl's sense: the triggers note them and `nsl commit` records them.

    Read-only SQL that writes raises ReadOnlySQL; SQL nothing may run (nsl's tables, ATTACH, a PRAGMA
    that is not allowed) raises SQLError; a statement stopped by the connection's progress handler
    re-raises SQLite's own "interrupted" error for the caller to map."""
    conn = db.conn
    if not sql or not sql.strip():
        raise SQLError("no SQL given")
    if not write:
        conn.execute("PRAGMA query_only = 1")
        try:
            cols, rows = _execute(conn, sql, params, _Guard(False))
        finally:
            conn.execute("PRAGMA query_only = 0")
        return cols, iter(rows)
    with db.write(record_pending=True):
        cols, rows = _execute(conn, sql, params, _Guard(True))
    return cols, iter(rows)
