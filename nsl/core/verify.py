"""verify: recompute every hash and compare the user tables with the history; rebuild: regenerate every
derived table from the artifacts, as `fossil rebuild` does."""
from __future__ import annotations

from dataclasses import dataclass, field

from . import commits, rowtext, schema, states
from .database import Database
from .rowtext import JSON, decode_content, row_text
from .schema import quote


@dataclass
class VerifyReport:
    head: str | None
    versions: int = 0
    commits: int = 0
    rows: int = 0
    problems: list[str] = field(default_factory=list)
    uncommitted: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self):
        return {"ok": self.ok, "head": self.head, "versions": self.versions, "commits": self.commits,
                "rows": self.rows, "uncommitted": self.uncommitted, "problems": self.problems}


MAX_PROBLEMS = 1000


def verify(db: Database) -> VerifyReport:
    with db.read():
        rep = VerifyReport(commits.head(db))
        p = rep.problems
        h = rowtext.hasher(db.hash_algo)
        seen_uuid = {}
        key_cols = {n: k for n, k in db.conn.execute("SELECT name, key_col FROM nsl_table")}
        cur = db.conn.execute(
            "SELECT vid, tbl, key, op, uuid, digest, parents, content FROM nsl_version ORDER BY vid")
        while True:
            batch = cur.fetchmany(2000)
            if not batch:
                break
            for vid, tbl, key, op, uuid, digest, parents, content in batch:
                rep.versions += 1
                where = f"version {uuid or vid} ({tbl}/{key})"
                if op == "D":
                    if not parents:
                        p.append(f"{where}: deletion names no parent version")
                    elif (tbl, parents) not in seen_uuid:
                        p.append(f"{where}: deleted version {parents[:12]} is not earlier in the history")
                    continue
                if op not in ("I", "U") or content is None:
                    p.append(f"{where}: malformed line (op {op!r})")
                    continue
                try:
                    cols, vals, kinds = decode_content(content)
                except (ValueError, UnicodeDecodeError) as e:
                    p.append(f"{where}: content cannot be decoded: {e}")
                    continue
                if h(row_text(vals)).hexdigest() != uuid:
                    p.append(f"{where}: row text does not hash to the version uuid")
                if h(content.encode("utf-8", "surrogatepass")).hexdigest() != digest:
                    p.append(f"{where}: typed values do not match the digest recorded in its commit")
                kc = key_cols.get(tbl)
                if kc is not None:
                    if kc not in cols or vals[cols.index(kc)] != key or type(vals[cols.index(kc)]) is not type(key):
                        p.append(f"{where}: stored key does not match the version's key column")
                if op == "U":
                    for par in (parents or "").split(","):
                        if (tbl, par) not in seen_uuid:
                            p.append(f"{where}: parent version {par[:12]} is not earlier in the history")
                seen_uuid[(tbl, uuid)] = vid
            if len(p) > MAX_PROBLEMS:
                break
        seen_uuid = None
        _verify_commits(db, rep, h)
        _verify_derived(db, rep)
        _verify_tables(db, rep)
        return rep


def _verify_commits(db: Database, rep: VerifyReport, h):
    p = rep.problems
    known = set()
    for cid, uuid, dbc, date, parents, meta, objects_uuid, nlines in db.conn.execute(
            "SELECT cid, uuid, db, date, parents, meta, objects_uuid, nlines FROM nsl_commit ORDER BY cid").fetchall():
        rep.commits += 1
        plist = parents.split() if parents else []
        header = commits.header_text(dbc, date, plist, meta)
        got, objs, n = commits.commit_hashes(db, cid, header)
        if got != uuid:
            p.append(f"commit {uuid[:12]}: its text hashes to {got[:12]} (the commit or one of its lines was changed)")
        if objs != objects_uuid:
            p.append(f"commit {uuid[:12]}: objects hash differs from the recorded one")
        if n != nlines:
            p.append(f"commit {uuid[:12]}: has {n} lines, records {nlines}")
        for par in plist:
            if par not in known:
                p.append(f"commit {uuid[:12]}: parent {par[:12]} is not an earlier commit")
        if plist != sorted(plist):
            p.append(f"commit {uuid[:12]}: parents are not sorted")
        known.add(uuid)


def _verify_derived(db: Database, rep: VerifyReport):
    p = rep.problems
    leaves = {r[0] for r in db.conn.execute(
        "SELECT cid FROM nsl_commit WHERE cid NOT IN (SELECT parent FROM nsl_plink)")}
    stored = {r[0] for r in db.conn.execute("SELECT cid FROM nsl_leaf")}
    if leaves != stored:
        p.append("the leaf list does not match the commits (run `nsl rebuild`)")
    hc = commits.head_cid(db)
    if hc is None:
        if db.conn.execute("SELECT count(*) FROM nsl_cur").fetchone()[0]:
            p.append("current-version map is not empty but there are no commits (run `nsl rebuild`)")
        return
    s = states.state_at(db, hc) if len(stored) == 1 else None
    if s is None:
        return
    hs = states.head_state(db)
    try:
        n = len(states.differences(db, s, hs))
        if n:
            p.append(f"current-version map differs from the history for {n} objects (run `nsl rebuild`)")
    finally:
        states.drop(db, s, hs)


def _verify_tables(db: Database, rep: VerifyReport):
    """Every user row equals the version its state names, typed value for typed value."""
    p = rep.problems
    co = db.meta("checkout")
    if co:
        cid, _ = commits.resolve(db, co)
        state = states.state_at(db, cid)
    else:
        state = states.head_state(db)
    try:
        pending = set(db.conn.execute(
            "SELECT t.name, p.key FROM nsl_pending p JOIN nsl_table t ON t.tid=p.tid").fetchall())
        rep.uncommitted = len(pending)
        for tbl in db.tables():
            exists = db.conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (tbl.name,)).fetchone()
            if not exists:
                p.append(f"table {tbl.name}: tracked but missing from the database")
                continue
            cols = tbl.columns
            ki = cols.index(tbl.key_col) if tbl.key_col in cols else None
            if ki is None:
                p.append(f"table {tbl.name}: key column {tbl.key_col!r} is missing")
                continue
            for op in ("ins", "upd", "del"):
                if not db.conn.execute("SELECT 1 FROM sqlite_master WHERE type='trigger' AND name=?",
                                       (f"nsl_{op}_{tbl.tid}",)).fetchone():
                    p.append(f"table {tbl.name}: change-tracking trigger nsl_{op}_{tbl.tid} is missing (run `nsl rebuild`)")
            cur = db.conn.execute(
                f"SELECT t.*, v.content, s.key IS NOT NULL FROM {tbl.q} AS t LEFT JOIN temp.{state} s "
                f"ON s.tbl = ? AND s.key = t.{quote(tbl.key_col)} LEFT JOIN nsl_version v ON v.vid = s.vid",
                (tbl.name,))
            n = len(cols)
            while True:
                batch = cur.fetchmany(2000)
                if not batch:
                    break
                for r in batch:
                    rep.rows += 1
                    key = r[ki]
                    if (tbl.name, key) in pending:
                        continue
                    content = r[n]
                    if content is None:
                        p.append(f"{tbl.name}/{key}: row is not in the history (changed without nsl's triggers)")
                        continue
                    try:
                        ccols, cvals, _ = decode_content(content)
                    except (ValueError, UnicodeDecodeError):
                        continue  # reported by the version check above
                    by_name = dict(zip(ccols, cvals))
                    for c, v in zip(cols, r[:n]):
                        w = by_name.get(c)
                        if type(v) is not type(w) or v != w:
                            if isinstance(v, float) and isinstance(w, float) and v != v and w != w:
                                continue
                            p.append(f"{tbl.name}/{key}: column {c!r} is {v!r} in the table but {w!r} in the history")
                            break
                if len(p) > MAX_PROBLEMS:
                    return
            missing = db.conn.execute(
                f"SELECT s.key FROM temp.{state} s WHERE s.tbl = ? AND NOT EXISTS "
                f"(SELECT 1 FROM {tbl.q} t WHERE t.{quote(tbl.key_col)} = s.key)", (tbl.name,)).fetchall()
            for (key,) in missing:
                if (tbl.name, key) not in pending:
                    p.append(f"{tbl.name}/{key}: row is missing from the table but live in the history")
    finally:
        states.drop(db, state)


def rebuild(db: Database) -> dict:
    """Regenerate every derived table (current versions, links, leaves, JSON columns, triggers) from the
    artifacts. The user tables and the history are left as they are."""
    with db.write(check_checkout=False):
        c = db.conn
        for stmt in schema.DERIVED_TABLES.split(";"):
            if stmt.strip():
                c.execute(stmt)
        for name in ("nsl_json_column", "nsl_cur", "nsl_plink", "nsl_leaf"):
            c.execute(f"DELETE FROM {name}")
        by_uuid = {u: cid for cid, u in c.execute("SELECT cid, uuid FROM nsl_commit")}
        links = []
        for cid, parents in c.execute("SELECT cid, parents FROM nsl_commit").fetchall():
            for par in (parents or "").split():
                if par in by_uuid:
                    links.append((by_uuid[par], cid))
        c.executemany("INSERT OR IGNORE INTO nsl_plink(parent, child) VALUES (?, ?)", links)
        c.execute("INSERT INTO nsl_leaf(cid) SELECT cid FROM nsl_commit WHERE cid NOT IN (SELECT parent FROM nsl_plink)")
        # Keys are derived from the versions' key column.
        key_cols = {n: k for n, k in c.execute("SELECT name, key_col FROM nsl_table")}
        fix, json_cols = [], set()
        for vid, tbl, key, content in c.execute(
                "SELECT vid, tbl, key, content FROM nsl_version WHERE content IS NOT NULL").fetchall():
            cols, vals, kinds = decode_content(content)
            kc = key_cols.get(tbl)
            if kc in cols and vals[cols.index(kc)] != key:
                fix.append((vals[cols.index(kc)], vid))
            for col, k in zip(cols, kinds):
                if k == JSON:
                    json_cols.add((tbl, col))
        c.executemany("UPDATE nsl_version SET key=? WHERE vid=?", fix)
        c.executemany("INSERT OR IGNORE INTO nsl_json_column(tid, name) SELECT tid, ? FROM nsl_table WHERE name=?",
                      [(col, t) for t, col in json_cols])
        hc = commits.head_cid(db)
        if hc is not None:
            s = states.state_at(db, hc)
            c.execute(f"INSERT INTO nsl_cur(tid, key, vid) SELECT t.tid, s.key, s.vid FROM temp.{s} s "
                      f"JOIN nsl_table t ON t.name = s.tbl")
            states.drop(db, s)
        for tid, name, key_col in c.execute("SELECT tid, name, key_col FROM nsl_table").fetchall():
            if c.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone():
                for stmt in schema.drop_trigger_sql(tid) + schema.trigger_sql(tid, name, key_col):
                    c.execute(stmt)
        c.execute("REINDEX nsl_version")
        return {"commits": c.execute("SELECT count(*) FROM nsl_commit").fetchone()[0],
                "versions": c.execute("SELECT count(*) FROM nsl_version").fetchone()[0],
                "objects": c.execute("SELECT count(*) FROM nsl_cur").fetchone()[0],
                "head": commits.head(db)}
