"""`nsl init` on an existing SQLite file: track its tables and record their rows as a first commit."""
from __future__ import annotations

from dataclasses import dataclass, field

from . import schema
from .commits import CommitWriter
from .database import Database
from .objects import version_of
from .values import inherit_kinds
from .schema import quote


@dataclass
class InitResult:
    path: str
    created: bool
    db_code: str
    tracked: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    commit: str | None = None

    def to_dict(self):
        return {"path": self.path, "created": self.created, "db_code": self.db_code,
                "tracked": self.tracked, "skipped": self.skipped, "commit": self.commit}


def _key_column(db: Database, name: str) -> str | None:
    info = db.conn.execute(f"PRAGMA table_info({quote(name)})").fetchall()
    pks = [r for r in info if r[5]]
    if len(pks) == 1:
        return pks[0][1]
    if pks:
        return None
    cols = {r[1] for r in info}
    if "id" in cols:
        for idx in db.conn.execute(f"PRAGMA index_list({quote(name)})").fetchall():
            if idx[2]:  # unique
                icols = [r[2] for r in db.conn.execute(f"PRAGMA index_info({quote(idx[1])})")]
                if icols == ["id"]:
                    return "id"
    return None


def init(path=None, *, hash_algo: str = "sha1", message: str | None = None) -> tuple[Database, InitResult]:
    """Create a nsl database, or adopt an existing SQLite file's tables (one commit of their rows)."""
    db, created = Database.init(path, hash_algo=hash_algo)
    res = InitResult(str(db.path), created, db.db_code)
    with db.write(check_checkout=False):
        tracked = {r[0] for r in db.conn.execute("SELECT name FROM nsl_table")}
        names = [r[0] for r in db.conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'nsl\\_%' ESCAPE '\\' "
            "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name")]
        w = None
        for name in names:
            if name in tracked:
                continue
            key_col = _key_column(db, name)
            if key_col is None:
                res.skipped[name] = "no single-column primary key (or unique id column) to use as the key"
                continue
            tbl = db.track_table(name, key_col)
            res.tracked.append(name)
            ki = tbl.columns.index(key_col)
            rows = []
            for row in db.conn.execute(f"SELECT * FROM {tbl.q}"):
                row = list(row)
                if row[ki] is None:
                    continue
                w = w or CommitWriter(db, {"message": message or "nsl init: adopt existing tables"})
                uuid, digest, content = version_of(tbl.columns, row, inherit_kinds(row, [], []), db.hash_algo)
                vid = w.take_vids(1)
                rows.append((vid, w.cid, name, row[ki], "I", uuid, digest, None, content))
            if rows:
                w.insert_lines(rows)
        if w is not None:
            res.commit = w.seal()
    return db, res


__all__ = ["init", "InitResult", "schema"]
