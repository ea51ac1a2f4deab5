"""Objects with more than one current version: their leaves, the version each table's policy shows,
listing them (`nsl conflicts`) and merging them (`nsl resolve`).

An object's *leaves* are its commit lines that no later line of the same object descends from, in
the commit graph. A local commit has every leaf commit as a parent, so any local write of an object
supersedes all its leaves; only a sync can bring two lines that do not descend from each other.
Such objects are listed in nsl_conflict (one row per leaf line) and nsl_shown names what the table
shows, chosen by the table's policy (`nsl config table.NAME.conflicts`):

    lww           (default) the live leaf of the newest commit (date, then uuid); a live version wins
                  over a deletion. Every replica holding the same artifacts shows the same rows.
    merge-fields  columns changed on one side only are merged (against the nearest common version);
                  when a column was changed differently on two sides, lww decides the whole object.
    manual        the table keeps showing the leaf that was here first, until `nsl resolve`; this is
                  the one policy under which replicas may show different rows.

Everything here is derived from the artifacts: `nsl rebuild` recomputes it, `nsl verify` checks it.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import BadInput, UnknownObject
from . import rowtext
from .database import Database
from .values import to_object

POLICIES = ("lww", "merge-fields", "manual")
DEFAULT_POLICY = "lww"


@dataclass(frozen=True)
class Leaf:
    vid: int
    cid: int
    op: str
    uuid: str | None        # the version (None for a deletion)
    parents: str | None     # parent version uuids, comma separated
    date: str               # its commit's date and uuid decide lww
    commit: str

    @property
    def live(self) -> bool:
        return self.op != "D"


# ---- policy ----------------------------------------------------------------------------------------

def policy(db: Database, table: str) -> str:
    row = db.conn.execute("SELECT value FROM nsl_config WHERE name=?", (f"table.{table}.conflicts",)).fetchone()
    return row[0] if row and row[0] in POLICIES else DEFAULT_POLICY


def check_policy(value: str) -> str:
    if value not in POLICIES:
        raise BadInput(f"invalid conflict policy {value!r}: use one of {', '.join(POLICIES)}")
    return value


def has_any(db: Database, table: str | None = None) -> bool:
    if table is None:
        return db.conn.execute("SELECT 1 FROM nsl_conflict LIMIT 1").fetchone() is not None
    return db.conn.execute("SELECT 1 FROM nsl_conflict WHERE tbl=? LIMIT 1", (table,)).fetchone() is not None


# ---- leaves --------------------------------------------------------------------------------------

_LEAF_COLS = "v.vid, v.cid, v.op, v.uuid, v.parents, c.date, c.uuid"


def _leaf(row) -> Leaf:
    return Leaf(*row)


def leaves(db: Database, table: str, key, *, before_vid: int | None = None) -> list[Leaf]:
    """The object's leaf lines: its nsl_conflict rows, or else its last line (before `before_vid`)."""
    rows = db.conn.execute(
        f"SELECT {_LEAF_COLS} FROM nsl_conflict k JOIN nsl_version v ON v.vid = k.vid "
        f"JOIN nsl_commit c ON c.cid = v.cid WHERE k.tbl = ? AND k.key = ? ORDER BY v.vid", (table, key)).fetchall()
    if rows:
        return [_leaf(r) for r in rows]
    hi = before_vid if before_vid is not None else (1 << 62)
    row = db.conn.execute(
        f"SELECT {_LEAF_COLS} FROM nsl_version v JOIN nsl_commit c ON c.cid = v.cid WHERE v.vid = "
        f"(SELECT max(vid) FROM nsl_version WHERE tbl = ? AND key = ? AND vid < ?)", (table, key, hi)).fetchone()
    return [_leaf(row)] if row else []


def line_leaf(db: Database, vid: int) -> Leaf:
    return _leaf(db.conn.execute(
        f"SELECT {_LEAF_COLS} FROM nsl_version v JOIN nsl_commit c ON c.cid = v.cid WHERE v.vid = ?",
        (vid,)).fetchone())


def live_parents(db: Database, table: str, key, shown_uuid: str | None) -> str | None:
    """The parents a new local line of this object names: every live leaf when it is in conflict
    (the new line merges them), else the version it shows."""
    if not has_any(db, table):
        return shown_uuid
    rows = db.conn.execute(
        "SELECT DISTINCT v.uuid FROM nsl_conflict k JOIN nsl_version v ON v.vid = k.vid "
        "WHERE k.tbl = ? AND k.key = ? AND v.op != 'D' ORDER BY v.uuid", (table, key)).fetchall()
    if not rows:
        return shown_uuid
    return ",".join(r[0] for r in rows)


def clear_for_lines(db: Database, lo: int, hi: int) -> None:
    """A local commit with lines lo..hi descends from every leaf: the objects it touches are merged."""
    if not has_any(db):
        return
    for t in ("nsl_conflict", "nsl_shown"):
        db.conn.execute(f"DELETE FROM {t} WHERE (tbl, key) IN "
                        f"(SELECT tbl, key FROM nsl_version WHERE vid BETWEEN ? AND ?)", (lo, hi))


# ---- choosing what a table shows -----------------------------------------------------------------

def _lww(live: list[Leaf]) -> Leaf:
    return max(live, key=lambda lf: (lf.date, lf.commit, lf.vid))


def choose(db: Database, table: str, lvs: list[Leaf]) -> tuple[Leaf, str | None]:
    """(the leaf shown, merged content or None) for an object with several leaves."""
    live = [lf for lf in lvs if lf.live]
    if not live:
        return max(lvs, key=lambda lf: lf.vid), None
    pol = policy(db, table)
    if pol == "manual":
        return min(live, key=lambda lf: lf.vid), None
    winner = _lww(live)
    if pol == "merge-fields" and len(live) > 1:
        merged = merge_fields(db, table, live, winner)
        if merged is not None:
            return winner, merged
    return winner, None


def set_leaves(db: Database, table: str, key, lvs: list[Leaf]) -> int | None:
    """Record an object's leaves; returns the vid the table should show (None: merged content, read
    it from nsl_shown). One leaf: no conflict, the object shows it."""
    db.conn.execute("DELETE FROM nsl_conflict WHERE tbl = ? AND key = ?", (table, key))
    db.conn.execute("DELETE FROM nsl_shown WHERE tbl = ? AND key = ?", (table, key))
    if len(lvs) <= 1:
        return lvs[0].vid if lvs else None
    db.conn.executemany("INSERT INTO nsl_conflict(tbl, key, vid) VALUES (?, ?, ?)",
                        [(table, key, lf.vid) for lf in lvs])
    shown, merged = choose(db, table, lvs)
    db.conn.execute("INSERT INTO nsl_shown(tbl, key, vid, content) VALUES (?, ?, ?, ?)",
                    (table, key, shown.vid, merged))
    return None if merged is not None else shown.vid


def shown_row(db: Database, table: str, key) -> tuple[int | None, str | None] | None:
    """(vid, merged content) nsl_shown holds for an object in conflict, or None."""
    row = db.conn.execute("SELECT vid, content FROM nsl_shown WHERE tbl = ? AND key = ?", (table, key)).fetchone()
    return (row[0], row[1]) if row else None


def merged_content(db: Database, table: str, key) -> str | None:
    row = db.conn.execute("SELECT content FROM nsl_shown WHERE tbl = ? AND key = ? AND content IS NOT NULL",
                          (table, key)).fetchone()
    return row[0] if row else None


# ---- merge-fields -----------------------------------------------------------------------------------

def _content(db: Database, vid: int) -> str | None:
    row = db.conn.execute("SELECT content FROM nsl_version WHERE vid=?", (vid,)).fetchone()
    return row[0] if row else None


def lineage(db: Database, table: str, key, vid: int) -> set[int]:
    """The lines (vids) a line descends from through its parents, itself included. A parent uuid
    names every line of the object with that uuid in an ancestor commit (row text can repeat, so a
    uuid alone may name several), which every replica resolves alike."""
    from . import graph

    out: set[int] = set()
    todo = [vid]
    while todo:
        v = todo.pop()
        if v in out:
            continue
        out.add(v)
        row = db.conn.execute("SELECT parents, cid FROM nsl_version WHERE vid=?", (v,)).fetchone()
        if row is None or not row[0]:
            continue
        ps = row[0].split(",")
        cands = db.conn.execute(
            f"SELECT vid, cid FROM nsl_version WHERE tbl = ? AND key = ? AND uuid IN ({','.join('?' * len(ps))}) "
            f"AND vid != ?", (table, key, *ps, v)).fetchall()
        if not cands:
            continue
        start = [r[0] for r in db.conn.execute("SELECT parent FROM nsl_plink WHERE child = ?", (row[1],))]
        anc = graph.ancestors_sql(db, start, min(c for _, c in cands))
        todo.extend(cv for cv, cc in cands if cc in anc and cv not in out)
    return out


def base_of(db: Database, table: str, key, lvs: list[Leaf]) -> int | None:
    """The vid of the nearest line every leaf descends from (None: they share none); among several,
    the one of the newest commit, as every replica would pick."""
    common = None
    for lf in lvs:
        lin = lineage(db, table, key, lf.vid) - {lf.vid}
        common = lin if common is None else common & lin
    if not common:
        return None
    q = ",".join("?" * len(common))
    return db.conn.execute(
        f"SELECT v.vid FROM nsl_version v JOIN nsl_commit c ON c.cid = v.cid WHERE v.vid IN ({q}) "
        f"ORDER BY c.date DESC, c.uuid DESC LIMIT 1", list(common)).fetchone()[0]


def _cells(content: str) -> tuple[list[str], dict[str, str]]:
    head, _, body = content.partition("\n")
    cols = rowtext.decode_header(head)
    cells = body.split("|") if cols else []
    return cols, dict(zip(cols, cells))


def merge_fields(db: Database, table: str, live: list[Leaf], winner: Leaf) -> str | None:
    """Typed content merging the leaves' changes against their base, or None when two leaves changed
    one column differently (or the merge is simply one of the leaves)."""
    key = db.conn.execute("SELECT key FROM nsl_version WHERE vid=?", (winner.vid,)).fetchone()[0]
    base_vid = base_of(db, table, key, live)
    base = _cells(_content(db, base_vid))[1] if base_vid is not None else {}
    ordered = sorted(live, key=lambda lf: (lf.date, lf.commit, lf.vid), reverse=True)
    sides = [_cells(_content(db, lf.vid)) for lf in ordered]
    columns: list[str] = []
    for cols, _ in sides:
        columns.extend(c for c in cols if c not in columns)
    merged = {}
    for c in columns:
        before = base.get(c, "-")
        changed = {cells.get(c, "-") for _, cells in sides if cells.get(c, "-") != before}
        if len(changed) > 1:
            return None
        merged[c] = changed.pop() if changed else before
    content = rowtext.header(columns) + "\n" + "|".join(merged[c] for c in columns)
    if any(content == _content(db, lf.vid) for lf in live):
        return None
    return content


# ---- listing and resolving -------------------------------------------------------------------------

def _object(content: str | None):
    return to_object(*rowtext.decode_content(content)) if content else None


def _changed(base: dict | None, obj: dict | None) -> dict:
    from .history import field_changes

    return field_changes(base, obj) if obj is not None else {"(deleted)": [None, None]}


def conflict_list(db: Database, table: str | None = None) -> list[dict]:
    """Objects in conflict: what each table shows (ours), the other leaves (theirs), their nearest
    common version (base), and what each side changed from it, as Dolt's conflict tables do."""
    with db.read():
        q = "SELECT DISTINCT tbl, key FROM nsl_conflict" + (" WHERE tbl = ?" if table else "") + " ORDER BY tbl, key"
        out = []
        for tbl, key in db.conn.execute(q, (table,) if table else ()).fetchall():
            lvs = leaves(db, tbl, key)
            if not any(lf.live for lf in lvs):
                continue  # deleted on every side: nothing to choose between
            shown = shown_row(db, tbl, key)
            shown_vid, merged = shown if shown else (lvs[-1].vid, None)
            base_vid = base_of(db, tbl, key, lvs)
            base_obj = _object(_content(db, base_vid)) if base_vid is not None else None
            ours = next(lf for lf in lvs if lf.vid == shown_vid)
            ours_obj = _object(_content(db, ours.vid)) if ours.live else None

            def side(lf: Leaf) -> dict:
                obj = _object(_content(db, lf.vid)) if lf.live else None
                return {"version": lf.uuid, "commit": lf.commit, "date": lf.date,
                        "op": "deleted" if not lf.live else ("inserted" if lf.op == "I" else "updated"),
                        "object": obj, "changed": _changed(base_obj, obj)}

            out.append({
                "table": tbl, "key": key, "policy": policy(db, tbl),
                "state": "merged" if merged else "conflict",
                "shown": _object(merged) if merged else ours_obj,
                "base": ({"version": db.conn.execute("SELECT uuid FROM nsl_version WHERE vid=?", (base_vid,))
                          .fetchone()[0], "object": base_obj} if base_vid is not None else None),
                "ours": side(ours),
                "theirs": [side(lf) for lf in lvs if lf.vid != ours.vid],
            })
        return out


def take_object(db: Database, table: str, key, version: str) -> dict | None:
    """The object of the leaf whose version uuid starts with `version` (None: a deletion leaf, named
    by `deleted`), for `nsl resolve --take`."""
    lvs = leaves(db, table, key)
    if len(lvs) < 2:
        raise UnknownObject(f"{table}/{key} is not in conflict", table=table, key=key)
    v = (version or "").strip().lower()
    if v == "deleted":
        if not any(not lf.live for lf in lvs):
            raise BadInput(f"no side of {table}/{key} deleted it")
        return None
    found = [lf for lf in lvs if lf.live and lf.uuid.startswith(v)] if len(v) >= 4 else []
    if len({lf.uuid for lf in found}) != 1:
        named = ", ".join(sorted({lf.uuid[:12] for lf in lvs if lf.live}))
        raise BadInput(f"{version!r} does not name one of the versions in conflict for {table}/{key} ({named})")
    return _object(_content(db, found[0].vid))


def recompute(db: Database) -> int:
    """Derive nsl_conflict and nsl_shown from the whole history again (rebuild, clone, a policy
    change). Returns the number of objects with several leaves. Inside a write."""
    from . import graph

    db.conn.execute("DELETE FROM nsl_conflict")
    db.conn.execute("DELETE FROM nsl_shown")
    multi = graph.multi_leaf_objects(db)
    for (tbl, key), vids in multi.items():
        set_leaves(db, tbl, key, [line_leaf(db, vid) for vid in sorted(vids)])
    return len(multi)



def resolve(db: Database, table: str, key, *, take: str | None = None, obj: dict | None = None,
            message=None, author=None):
    """Merge an object in conflict in one commit whose line names every live leaf as a parent: keep
    the leaf whose version uuid starts with `take` (`deleted`: delete the object), or save `obj`.
    Synced, that commit supersedes every side everywhere."""
    from .objects import delete, resolve_key, save

    if (take is None) == (obj is None):
        raise BadInput("give exactly one of take (a version) and object")
    if take is not None and not isinstance(take, str):
        raise BadInput("take must be a version uuid (a prefix of at least 4 hex digits) or 'deleted'")
    if obj is not None and not isinstance(obj, dict):
        raise BadInput("object must be a JSON object")
    with db.write():
        tbl = db.table(table)
        k = resolve_key(db, tbl, key)
        if len(leaves(db, tbl.name, k)) < 2:
            raise UnknownObject(f"{tbl.name}/{k} is not in conflict", table=tbl.name, key=k)
        message = message or f"Resolve {tbl.name}/{k}"
        if take is not None:
            chosen = take_object(db, tbl.name, k, take)
        else:
            if tbl.key_col in obj and obj[tbl.key_col] != k:
                raise BadInput(f"the object has {tbl.key_col}={obj[tbl.key_col]!r}, not the key {k!r}")
            chosen = {tbl.key_col: k, **{a: v for a, v in obj.items() if a != tbl.key_col}}
        if chosen is None:
            return delete(db, tbl.name, [k], message=message, author=author)
        return save(db, tbl.name, [chosen], message=message, author=author, collect_keys=True)
