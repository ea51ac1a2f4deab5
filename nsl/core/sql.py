"""Arbitrary SQL against a nsl database: read-only unless asked, and never able to rewrite history.

Read-only is enforced by SQLite (`PRAGMA query_only`), not by looking at the SQL text; an authorizer
keeps even writable SQL away from nsl's own tables, except through nsl's change-tracking triggers.
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


def _nsl(name) -> bool:
    return (name or "").lower().startswith("nsl_")


def _protect_history(action, arg1, arg2, dbname, source):
    # A trigger named nsl_* may write nsl's tables (that is how changes are noted), so user SQL may
    # neither make nor drop one, nor hang any trigger on nsl's tables.
    if action in _TRIGGER_ACTIONS and (_nsl(arg1) or _nsl(arg2)):
        return sqlite3.SQLITE_DENY
    name = (arg2 if action in _TABLE_SECOND else arg1) or ""
    if action in _WRITE_ACTIONS and _nsl(name) and not _nsl(source):
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_READ and (arg1 or "").lower() == "nsl_token":
        return sqlite3.SQLITE_DENY  # token hashes and roles are nobody's business over SQL
    if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
        return sqlite3.SQLITE_DENY  # ATTACH creates files, even from "read-only" SQL
    if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() in ("query_only", "writable_schema"):
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def run(db: Database, sql: str, params=(), *, write: bool = False) -> tuple[list[str], Iterator[tuple]]:
    """(column names, rows) of one SQL statement. Writes need write=True and are left uncommitted
    in nsl's sense: the triggers note them and `nsl commit` records them."""
    conn = db.conn
    if not sql or not sql.strip():
        raise SQLError("no SQL given")
    if not write:
        conn.execute("PRAGMA query_only = 1")
        conn.set_authorizer(_protect_history)
        try:
            cur = conn.execute(sql, params)
            cols = [d[0] for d in cur.description or []]
            rows = cur.fetchall()
        except sqlite3.DatabaseError as e:
            if any(w in str(e) for w in ("readonly", "read-only", "query_only", "not authorized")):
                raise ReadOnlySQL("this SQL writes; nsl sql is read-only unless --write is given",
                                  hint="add --write to change user tables (then `nsl commit` records it)") from None
            raise SQLError(f"SQL error: {e}") from None
        except (sqlite3.Warning, ValueError, OverflowError) as e:
            raise SQLError(f"SQL error: {e}") from None
        finally:
            conn.set_authorizer(None)
            conn.execute("PRAGMA query_only = 0")
        return cols, iter(rows)
    with db.write(record_pending=True):
        conn.set_authorizer(_protect_history)
        try:
            cur = conn.execute(sql, params)
            cols = [d[0] for d in cur.description or []]
            rows = cur.fetchall()
        except sqlite3.DatabaseError as e:
            msg = str(e)
            if "not authorized" in msg:
                raise SQLError("SQL error: nsl's own tables (nsl_*) cannot be changed with SQL") from None
            raise SQLError(f"SQL error: {e}") from None
        except (sqlite3.Warning, ValueError, OverflowError) as e:
            raise SQLError(f"SQL error: {e}") from None
        finally:
            conn.set_authorizer(None)
    return cols, iter(rows)
