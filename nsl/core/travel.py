"""Going back without losing anything: checkout (look at an old state), restore (bring an old state
back as uncommitted changes) and revert (a new commit that undoes one)."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import CheckedOut, RevertConflict, UncommittedChanges
from . import commits, states
from .commits import CommitWriter
from .database import Database
from .objects import WriteResult, _meta, resolve_key, status
from .schema import current_version


@dataclass
class TravelResult:
    commit: str | None      # the commit now shown (None: the head)
    changed: int            # objects whose row was rewritten

    def to_dict(self):
        return {"commit": self.commit, "changed": self.changed}


def _apply(db: Database, diffs, target_col: int) -> int:
    """Rewrite user rows so each differing object shows the version in column `target_col` of diffs."""
    by_table: dict[str, list] = {}
    for d in diffs:
        by_table.setdefault(d[0], []).append((d[1], d[target_col]))
    for name, items in by_table.items():
        tbl = db.table(name, missing_ok=True)
        if tbl is not None:
            states.write_rows(db, tbl, items)
    return len(diffs)


def _shown_state(db: Database) -> str:
    co = db.meta("checkout")
    if co:
        cid, _ = commits.resolve(db, co)
        return states.state_at(db, cid)
    return states.head_state(db)


def _merged_rows(db: Database, table: str | None = None, key=None) -> None:
    """Rows of objects whose table shows content merged from several leaves (head states hold the
    lww leaf for them)."""
    from .incoming import write_merged

    q = "SELECT tbl, key FROM nsl_shown WHERE content IS NOT NULL"
    by_table: dict[str, list] = {}
    for t, k in db.conn.execute(q).fetchall():
        if (table is None or t == table) and (key is None or k == key):
            by_table.setdefault(t, []).append(k)
    for t, keys in by_table.items():
        tbl = db.table(t, missing_ok=True)
        if tbl is not None:
            write_merged(db, tbl, keys)


def checkout(db: Database, ref: str) -> TravelResult:
    """Make the user tables show the state at `ref` (read-only), or the head again for HEAD."""
    with db.write(check_checkout=False):
        back_to_head = ref.strip().upper() == "HEAD"
        co = db.meta("checkout")
        if not co and status(db):
            raise UncommittedChanges("you have uncommitted changes; checkout would hide them")
        cid, uuid = commits.resolve(db, ref)
        if states.is_linear(db):
            shown = commits.resolve(db, co)[0] if co else None
            target = None if back_to_head else cid
            n = 0
            if shown != target:
                # Only objects changed after the older of the two commits can differ between them.
                since = min(c for c in (shown, target) if c is not None)
                n = states.write_since(db, since, shown, target)
                if n is None:
                    diff = states.diff_since(db, since, shown, target)
                    try:
                        db.conn.execute(f"DELETE FROM temp.{diff} WHERE a IS b")
                        n = states.write_diff(db, diff, "b")
                    finally:
                        states.drop(db, diff)
        else:
            src = _shown_state(db)
            dst = states.head_state(db) if back_to_head else states.state_at(db, cid)
            try:
                n = _apply(db, states.differences(db, src, dst), 3)
            finally:
                states.drop(db, src, dst)
            if back_to_head:
                _merged_rows(db)
        db.set_meta("checkout", None if back_to_head else uuid)
        return TravelResult(None if back_to_head else uuid, n)


def restore(db: Database, source: str = "HEAD", table: str | None = None, key=None) -> TravelResult:
    """Put the state at `source` back into the user tables (all, one table, or one object) as
    uncommitted changes, as `git restore --source` does; `nsl commit` records them."""
    with db.write():
        cid, uuid = commits.resolve(db, source)
        tname, k = None, None
        if table is not None:
            tbl = db.table(table)
            tname = tbl.name
            if key is not None:
                k = resolve_key(db, tbl, key)
        cond, params = "", []
        if tname is not None:
            cond, params = " AND t.name = ?", [tname]
            if k is not None:
                cond += " AND p.key = ?"
                params.append(k)
        if tname is None and states.is_linear(db) and not db.conn.execute("SELECT 1 FROM nsl_pending").fetchone():
            # Nothing changed outside nsl: the objects that differ are rewritten as they are found,
            # each noted as an uncommitted change with the version it shows.
            n = states.write_since(db, cid, None, cid, notes=True)
            if n is not None:
                return TravelResult(uuid, n)
        objs = states.objects_table(db)
        diff = None
        try:
            # Keys changed outside nsl since the head are rewritten too, so the result is exactly `source`.
            db.conn.execute(f"INSERT OR IGNORE INTO temp.{objs} SELECT t.name, p.key FROM nsl_pending p "
                            f"JOIN nsl_table t ON t.tid = p.tid WHERE 1{cond}", params)
            if states.is_linear(db):
                diff = states.diff_since(db, cid, None, cid, tname, k, also=objs)
            else:
                diff = states.diff_table(db)
                dst = states.state_of(db, source)
                src = states.head_state(db)
                try:
                    db.conn.execute(f"INSERT OR IGNORE INTO temp.{objs} SELECT tbl, key FROM "
                                    f"(SELECT tbl, key FROM temp.{dst} UNION SELECT tbl, key FROM temp.{src}) "
                                    f"WHERE (? IS NULL OR tbl = ?) AND (? IS NULL OR key = ?)", (tname, tname, k, k))
                    db.conn.execute(
                        f"INSERT INTO temp.{diff} SELECT o.tbl, o.key, "
                        f"(SELECT s.vid FROM temp.{src} s WHERE s.tbl=o.tbl AND s.key=o.key), "
                        f"(SELECT d.vid FROM temp.{dst} d WHERE d.tbl=o.tbl AND d.key=o.key) FROM temp.{objs} o")
                finally:
                    states.drop(db, dst, src)
            # What differs, and what was changed outside nsl (objs holds those, and more when not linear).
            db.conn.execute(f"DELETE FROM temp.{diff} WHERE a IS b AND NOT EXISTS (SELECT 1 FROM nsl_pending p "
                            f"JOIN nsl_table t ON t.tid = p.tid WHERE t.name = temp.{diff}.tbl "
                            f"AND p.key = temp.{diff}.key)")
            n = states.write_diff(db, diff, "b")
            if source.strip().upper() == "HEAD":
                _merged_rows(db, tname, k)
            # The rewritten objects are uncommitted changes now, each remembering the version it shows;
            # those back at the head's version are not changes at all.
            db.conn.execute(f"INSERT OR REPLACE INTO nsl_pending(tid, key, vid) SELECT t.tid, d.key, d.b "
                            f"FROM temp.{diff} d JOIN nsl_table t ON t.name = d.tbl WHERE d.a IS NOT d.b")
            db.conn.execute(f"DELETE FROM nsl_pending WHERE (tid, key) IN (SELECT t.tid, d.key FROM temp.{diff} d "
                            f"JOIN nsl_table t ON t.name = d.tbl WHERE d.a IS d.b)")
        finally:
            states.drop(db, objs, diff)
        return TravelResult(uuid, n)


def revert(db: Database, ref: str, *, message=None, author=None) -> WriteResult:
    """A new commit that undoes commit `ref`. Objects changed again since then make it refuse."""
    with db.write():
        if status(db):
            raise UncommittedChanges("you have uncommitted changes; revert would mix them into its commit")
        cid, uuid = commits.resolve(db, ref)
        lines = db.conn.execute(commits.lines_sql("tbl, key, op, uuid, parents"),
                                commits.line_range(db, cid)).fetchall()
        plan, conflicts = [], []
        for tbl, key, op, vuuid, parents in lines:
            cur = db.conn.execute(
                f"SELECT vid, uuid FROM nsl_version WHERE vid = {current_version('?', '?')} AND op != 'D'",
                (tbl, key)).fetchone()
            if (op == "D" and cur is not None) or (op != "D" and (cur is None or cur[1] != vuuid)):
                conflicts.append(f"{tbl}/{key}")
                continue
            if op == "I":
                plan.append((tbl, key, "D", None, cur[1]))
            else:
                parent = parents.split(",")[0]
                prow = db.conn.execute(
                    "SELECT vid FROM nsl_version WHERE tbl=? AND key=? AND uuid=? ORDER BY vid LIMIT 1",
                    (tbl, key, parent)).fetchone()
                # Undoing a deletion makes the object anew (an I line), so that reverting that revert
                # deletes it again; undoing an update goes back to the parent version.
                plan.append((tbl, key, "U" if op == "U" else "I", prow[0], cur[1] if cur else None))
        if conflicts:
            raise RevertConflict(
                f"cannot revert {uuid[:12]}: changed again since then: {', '.join(conflicts[:10])}"
                + (" ..." if len(conflicts) > 10 else ""), objects=conflicts)
        w = CommitWriter(db, _meta(message or f"Revert {uuid}", author, {"revert": uuid}))
        out = []
        for tbl, key, op, pvid, cur_uuid in plan:
            vid = w.take_vids(1)
            if op == "D":
                out.append((vid, w.cid, tbl, key, "D", None, None, cur_uuid, None))
            else:
                u, d, content = db.conn.execute(
                    "SELECT uuid, digest, content FROM nsl_version WHERE vid=?", (pvid,)).fetchone()
                out.append((vid, w.cid, tbl, key, op, u, d, cur_uuid, content))
        w.insert_lines(out)
        by_table: dict[str, list] = {}
        for tbl, key, op, pvid, _ in plan:
            by_table.setdefault(tbl, []).append((key, pvid if op != "D" else None))
        for tbl, items in by_table.items():
            states.write_rows(db, db.table(tbl), items)
        return WriteResult(w.seal(), len(out), [])


def ensure_not_checked_out(db: Database):
    co = db.meta("checkout")
    if co:
        raise CheckedOut(f"commit {co[:12]} is checked out", hint="run `nsl checkout HEAD` to return")
