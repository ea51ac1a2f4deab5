"""Reading the history: log, show, an object's history, and diffs between states."""
from __future__ import annotations

import orjson

from ..errors import BadInput
from . import commits, rowtext, states
from .database import Database
from .objects import key_candidates, resolve_key, status
from .values import to_object


def _meta(meta):
    return orjson.loads(meta) if meta else {}


def _commit_dict(db: Database, row, counts=True) -> dict:
    cid, uuid, date, parents, meta, nlines = row
    m = _meta(meta)
    out = {"commit": uuid, "date": date, "parents": parents.split() if parents else [],
           "author": m.get("author"), "message": m.get("message"), "meta": m, "changes": nlines}
    if counts:
        c = dict(db.conn.execute("SELECT op, count(*) FROM nsl_version WHERE vid BETWEEN ? AND ? GROUP BY op",
                                 commits.line_range(db, cid)).fetchall())
        out["inserted"], out["updated"], out["deleted"] = c.get("I", 0), c.get("U", 0), c.get("D", 0)
    return out


_COMMIT_COLS = "c.cid, c.uuid, c.date, c.parents, c.meta, c.nlines"


def log(db: Database, table: str | None = None, key=None, limit: int | None = None) -> list[dict]:
    """Commits newest first; only those touching `table` (and `key`) when given."""
    if limit is not None and limit < 0:
        raise BadInput("-n must be 0 or more")
    lim = -1 if limit is None else limit
    with db.read():
        if table is None:
            rows = db.conn.execute(
                f"SELECT {_COMMIT_COLS} FROM nsl_commit c ORDER BY c.cid DESC LIMIT ?", (lim,)).fetchall()
        else:
            tbl = db.table(table)
            if key is None:
                rows = db.conn.execute(
                    f"SELECT {_COMMIT_COLS} FROM nsl_commit c WHERE c.cid IN "
                    f"(SELECT cid FROM nsl_version WHERE tbl=?) ORDER BY c.cid DESC LIMIT ?",
                    (tbl.name, lim)).fetchall()
            else:
                k = resolve_key(db, tbl, key)
                rows = db.conn.execute(
                    f"SELECT {_COMMIT_COLS} FROM nsl_commit c WHERE c.cid IN "
                    f"(SELECT cid FROM nsl_version WHERE tbl=? AND key=?) ORDER BY c.cid DESC LIMIT ?",
                    (tbl.name, k, lim)).fetchall()
        return [_commit_dict(db, r) for r in rows]


def show(db: Database, ref: str, *, limit_lines: int | None = None) -> dict:
    """One commit: its header, its lines (with keys), and its canonical text's hash."""
    with db.read():
        cid, uuid = commits.resolve(db, ref)
        row = db.conn.execute(f"SELECT {_COMMIT_COLS} FROM nsl_commit c WHERE cid=?", (cid,)).fetchone()
        out = _commit_dict(db, row)
        out["objects_uuid"] = db.conn.execute(
            "SELECT objects_uuid FROM nsl_commit WHERE cid=?", (cid,)).fetchone()[0]
        lines = []
        q = commits.lines_sql("op, tbl, key, uuid, parents")
        if limit_lines is not None:
            q += f" LIMIT {int(limit_lines)}"
        for op, tbl, key, vuuid, parents in db.conn.execute(q, commits.line_range(db, cid)):
            lines.append({"op": op, "table": tbl, "key": key, "version": vuuid,
                          "parents": parents.split(",") if parents else []})
        out["lines"] = lines
        return out


def history(db: Database, table: str, key) -> list[dict]:
    """Every version of one object, newest first, with the commit that made it."""
    with db.read():
        tbl = db.table(table, missing_ok=True)
        if tbl is not None:
            name, k = tbl.name, resolve_key(db, tbl, key)
        else:
            # A table dropped outside nsl (and its objects' deletion committed) keeps its history.
            name, k = table, next((c for c in key_candidates(key) if db.conn.execute(
                "SELECT 1 FROM nsl_version WHERE tbl=? AND key=? LIMIT 1", (table, c)).fetchone()), None)
            if k is None:
                db.table(table)  # raises UnknownTable, naming the tables there are
        out = []
        for op, vuuid, parents, content, cuuid, date, meta in db.conn.execute(
                "SELECT v.op, v.uuid, v.parents, v.content, c.uuid, c.date, c.meta FROM nsl_version v "
                "JOIN nsl_commit c ON c.cid=v.cid WHERE v.tbl=? AND v.key=? ORDER BY v.vid DESC",
                (name, k)):
            m = _meta(meta)
            out.append({
                "commit": cuuid, "date": date, "op": op, "version": vuuid,
                "parents": parents.split(",") if parents else [],
                "author": m.get("author"), "message": m.get("message"),
                "object": to_object(*rowtext.decode_content(content)) if content else None,
            })
        return out


def _obj(db: Database, vid):
    if vid is None:
        return None
    (content,) = db.conn.execute("SELECT content FROM nsl_version WHERE vid=?", (vid,)).fetchone()
    return to_object(*rowtext.decode_content(content))


def field_changes(old: dict | None, new: dict | None) -> dict:
    """{field: [old, new]} for the top-level fields that differ."""
    old, new = old or {}, new or {}
    out = {}
    for f in list(old) + [f for f in new if f not in old]:
        a, b = old.get(f, _MISSING), new.get(f, _MISSING)
        if a is _MISSING or b is _MISSING or type(a) is not type(b) or a != b:
            out[f] = [None if a is _MISSING else a, None if b is _MISSING else b]
    return out


_MISSING = object()


def _entry(table, key, old, new) -> dict:
    kind = "added" if old is None else "deleted" if new is None else "modified"
    return {"table": table, "key": key, "change": kind, "old": old, "new": new,
            "fields": field_changes(old, new) if kind == "modified" else {}}


def diff(db: Database, from_ref: str | None = None, to_ref: str | None = None,
         table: str | None = None) -> list[dict]:
    """Objects that differ between two commits, or between a commit (default HEAD) and the user
    tables as they are now (uncommitted changes included)."""
    with db.read():
        tname = db.table(table).name if table else None
        for ref in (from_ref, to_ref):
            if ref is not None:
                commits.resolve(db, ref)  # an unknown or ambiguous reference fails here
        a = states.state_of(db, from_ref) if (from_ref or commits.head_cid(db)) else _empty_state(db)
        b = states.state_of(db, to_ref)
        try:
            out = {}
            for tbl, key, va, vb in states.differences(db, a, b, tname):
                out[(tbl, key)] = _entry(tbl, key, _obj(db, va), _obj(db, vb))
            if to_ref is None:
                # Working tree: overlay the uncommitted changes on the head's state.
                for ch in status(db):
                    if tname and ch.table != tname:
                        continue
                    row = db.conn.execute(f"SELECT vid FROM {a} WHERE tbl=? AND key=?",
                                          (ch.table, ch.key)).fetchone()
                    old = _obj(db, row[0]) if row else None
                    if old == ch.new and (old is None or field_changes(old, ch.new) == {}):
                        out.pop((ch.table, ch.key), None)
                    else:
                        out[(ch.table, ch.key)] = _entry(ch.table, ch.key, old, ch.new)
        finally:
            states.drop(db, a, b)
        return [out[k] for k in sorted(out, key=lambda k: (k[0], str(type(k[1])), k[1]))]


def _empty_state(db: Database) -> str:
    name = "nsl_state_empty"
    db.conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {name}(tbl TEXT, key, vid INTEGER, PRIMARY KEY(tbl, key)) WITHOUT ROWID")
    return name


__all__ = ["log", "show", "history", "diff", "field_changes", "key_candidates"]
