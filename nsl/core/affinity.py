"""Declared column types: SQLite converts a value by its column's type affinity before storing it, so
nsl passes values bound for a typed column (an adopted table's) through SQLite first and records them
as stored. Tables nsl creates have untyped columns, where every value is kept as it is.
"""
from __future__ import annotations

import sqlite3

from ..errors import InvalidObject

INTEGER, TEXT, BLOB, REAL, NUMERIC = "INTEGER", "TEXT", "BLOB", "REAL", "NUMERIC"

# One scratch column per affinity that converts: a value stored in it comes back as the user table's
# column of that affinity would hold it (INTEGER and NUMERIC columns store values alike).
_SCRATCH = {INTEGER: "n", NUMERIC: "n", TEXT: "t", REAL: "r"}
_CREATE = "CREATE TEMP TABLE IF NOT EXISTS nsl_affinity(n NUMERIC, t TEXT, r REAL)"


def of_declared(decl: str | None) -> str:
    """The affinity of a declared column type, by SQLite's rules (datatype3.html, section 3.1)."""
    d = (decl or "").upper()
    if "INT" in d:
        return INTEGER
    if "CHAR" in d or "CLOB" in d or "TEXT" in d:
        return TEXT
    if "BLOB" in d or not d:
        return BLOB
    if "REAL" in d or "FLOA" in d or "DOUB" in d:
        return REAL
    return NUMERIC


def of_table(table_info: list) -> dict[str, str]:
    """Column -> affinity for the columns of `PRAGMA table_info` rows that convert values (not BLOB)."""
    out = {}
    for row in table_info:
        aff = of_declared(row[2])
        if aff != BLOB:
            out[row[1]] = aff
    return out


def _needs_sqlite(aff: str, v) -> bool:
    """Whether SQLite might store `v` differently in a column of affinity `aff` (True errs on the side
    of asking SQLite)."""
    t = type(v)
    if aff == TEXT:
        return t is float
    if aff == REAL:
        return t is int or t is str
    return t is str or t is float  # INTEGER, NUMERIC


def coerce(conn: sqlite3.Connection, affinities: dict[str, str], batch: list[dict], key_col: str,
           int_key: bool, pos: int = 0) -> list[dict]:
    """The objects of `batch` as a table with these column affinities stores them. A JSON kind that
    survives storage is kept (true/false in an INTEGER or NUMERIC column are still 1/0; an object or
    array is text that no affinity converts); other values become what SQLite stores."""
    asks: dict[str, list] = {}   # scratch column -> [(object index, attribute, value)]
    out = batch
    copied = False
    for i, obj in enumerate(batch):
        for a, v in obj.items():
            aff = affinities.get(a)
            if aff is None or v is None or type(v) is dict or type(v) is list:
                continue
            if type(v) is bool:
                if aff == TEXT:
                    new = "1" if v else "0"
                elif aff == REAL:
                    new = 1.0 if v else 0.0
                else:
                    continue
            elif aff == TEXT and type(v) is int:
                new = str(v)
            elif _needs_sqlite(aff, v):
                asks.setdefault(_SCRATCH[aff], []).append((i, a, v))
                continue
            else:
                continue
            if not copied:
                out, copied = list(batch), True
            if out[i] is batch[i]:
                out[i] = dict(obj)
            out[i][a] = new
    if asks:
        conn.execute(_CREATE)
        for col, cells in asks.items():
            conn.executemany(f"INSERT INTO temp.nsl_affinity({col}) VALUES (?)", [(c[2],) for c in cells])
            stored = [r[0] for r in conn.execute(f"SELECT {col} FROM temp.nsl_affinity ORDER BY rowid")]
            conn.execute("DELETE FROM temp.nsl_affinity")
            for (i, a, v), s in zip(cells, stored):
                if type(s) is type(v) and s == v:
                    continue
                if not copied:
                    out, copied = list(batch), True
                if out[i] is batch[i]:
                    out[i] = dict(batch[i])
                out[i][a] = s
    if int_key:
        for i, obj in enumerate(out):
            k = obj.get(key_col)
            if type(k) is not int:
                raise InvalidObject(
                    f"object {pos + i + 1}: key {key_col!r} must be an integer (the table's key is an "
                    f"INTEGER PRIMARY KEY), got {k!r}")
    elif copied:
        for i, obj in enumerate(out):
            k = obj.get(key_col)
            if type(k) is not str and type(k) is not int:
                raise InvalidObject(
                    f"object {pos + i + 1}: key {key_col!r} {batch[i].get(key_col)!r} would be stored as "
                    f"{k!r} by the column's type; a key must stay a string or an integer")
    return out
