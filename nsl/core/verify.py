"""verify: recompute every hash and compare the user tables with the history; rebuild: regenerate every
derived table from the artifacts, as `fossil rebuild` does."""
from __future__ import annotations

import operator
from dataclasses import dataclass, field

from . import commits, rowtext, schema, states
from .database import Database, gc_pause, gc_resume
from .rowtext import JSON, decode_content
from .schema import current_version, quote


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
_utf8 = operator.methodcaller("encode", "utf-8", "surrogatepass")


def verify(db: Database) -> VerifyReport:
    """Recompute every hash (versions, typed digests, commits, head) and compare the user tables with
    the state the history gives them. Nothing is changed."""
    gc_was_on = gc_pause()
    helper = None
    try:
        with db.read():
            rep = VerifyReport(commits.head(db))
            h = rowtext.hasher(db.hash_algo)
            helper = _tables_helper(db)
            _verify_versions(db, rep, h)
            if len(rep.problems) <= MAX_PROBLEMS:
                _verify_lineage(db, rep)
                _verify_commits(db, rep, h)
                _verify_derived(db, rep)
                if helper is None:
                    _verify_tables(db, rep)
                else:
                    rows, uncommitted, problems = helper.receive()
                    rep.rows, rep.uncommitted = rows, uncommitted
                    rep.problems.extend(problems)
            return rep
    finally:
        if helper is not None:
            helper.close()
        gc_resume(gc_was_on)


PARALLEL_VERSIONS = 20_000  # below this, a helper process costs more than it saves


def _tables_helper(db: Database):
    """A forked helper that compares the user tables with the history (a third of verify's work)
    on its own connection while this one hashes the versions, or None where that does not pay or
    cannot be done (a server's threads, a write in progress that another connection cannot see)."""
    from .bulk import parallel_ok
    from .workers import Worker

    if db._in_write or not parallel_ok():
        return None
    if db.conn.execute("SELECT ifnull(max(vid), 0) FROM nsl_version").fetchone()[0] < PARALLEL_VERSIONS:
        return None
    return Worker(_tables_elsewhere, str(db.path))


def _tables_elsewhere(path: str):
    """_verify_tables on a connection of the (forked) helper's own: (rows, uncommitted, problems)."""
    db = Database.open(path)
    try:
        rep = VerifyReport(None)
        with db.read():
            _verify_tables(db, rep)
        yield rep.rows, rep.uncommitted, rep.problems
    finally:
        db.close()


def _verify_versions(db: Database, rep: VerifyReport, h):
    """Each version's row text hashes to its uuid and its typed encoding to its digest; its stored
    key is its key column's value. Batches are grouped by header and checked a column at a time."""
    p = rep.problems
    key_cols = {n: k for n, k in db.conn.execute("SELECT name, key_col FROM nsl_table")}
    hexd = operator.methodcaller("hexdigest")
    cur = db.conn.execute("SELECT vid, tbl, key, op, uuid, digest, parents, content FROM nsl_version")
    while len(p) <= MAX_PROBLEMS:
        batch = cur.fetchmany(5000)
        if not batch:
            break
        rep.versions += len(batch)
        groups: dict[str, list] = {}
        for r in batch:
            op, content = r[3], r[7]
            if op == "D":
                if not r[6]:
                    p.append(f"version {r[0]} ({r[1]}/{r[2]}): deletion names no parent version")
                continue
            if op not in ("I", "U") or content is None:
                p.append(f"version {r[4] or r[0]} ({r[1]}/{r[2]}): malformed line (op {op!r})")
                continue
            head, _, body = content.partition("\n")
            groups.setdefault(head, []).append((r, body))
        for head, items in groups.items():
            try:
                cols = rowtext.decode_header(head)
                bodies = [b for _, b in items]
                texts = rowtext.cells_row_texts(bodies, len(cols))
            except (ValueError, UnicodeDecodeError) as e:
                for r, _ in items:
                    p.append(f"version {r[4]} ({r[1]}/{r[2]}): content cannot be decoded: {e}")
                continue
            uuids = list(map(hexd, map(h, texts)))
            prefix = head + "\n"
            digests = list(map(hexd, map(h, map(_utf8, map(prefix.__add__, bodies)))))
            rows = [r for r, _ in items]
            if uuids != [r[4] for r in rows] or digests != [r[5] for r in rows]:
                for r, u, d in zip(rows, uuids, digests):
                    where = f"version {r[4]} ({r[1]}/{r[2]})"
                    if u != r[4]:
                        p.append(f"{where}: row text does not hash to the version uuid")
                    if d != r[5]:
                        p.append(f"{where}: typed values do not match the digest recorded in its commit")
            kc = key_cols.get(rows[0][1])
            if kc is not None:
                if kc not in cols:
                    p.extend(f"version {r[4]} ({r[1]}/{r[2]}): has no key column {kc!r}" for r in rows)
                    continue
                ki = cols.index(kc)
                # Keys are text or integers, never a JSON kind: their cells compare as encoded.
                stored = rowtext.encode_values([(r[2],) for r in rows], 1)
                actual = [b.split("|", ki + 1)[ki] for b in bodies]
                if stored != actual:
                    for r, a, b in zip(rows, actual, stored):
                        if a != b:
                            p.append(f"version {r[4]} ({r[1]}/{r[2]}): stored key does not match the version's key column")


def _verify_lineage(db: Database, rep: VerifyReport):
    """Every updated or deleted version names parents that are earlier versions of the same object."""
    p = rep.problems
    for vid, tbl, key, uuid, parents in db.conn.execute(
            "SELECT v.vid, v.tbl, v.key, v.uuid, v.parents FROM nsl_version v WHERE v.op IN ('U', 'D') "
            "AND NOT EXISTS (SELECT 1 FROM nsl_version x WHERE x.tbl = v.tbl AND x.key = v.key "
            "AND x.uuid = v.parents AND x.vid < v.vid)").fetchall():
        for par in (parents or "").split(","):
            if not db.conn.execute(
                    "SELECT 1 FROM nsl_version WHERE tbl=? AND key=? AND uuid=? AND vid<?",
                    (tbl, key, par, vid)).fetchone():
                p.append(f"version {uuid or vid} ({tbl}/{key}): parent version {par[:12]} is not earlier "
                         f"in the object's history")


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
    """The derived tables agree with the history (else: run rebuild): commit links, leaves, and each
    commit's line range."""
    p = rep.problems
    by_uuid = {u: cid for cid, u in db.conn.execute("SELECT cid, uuid FROM nsl_commit")}
    want = set()
    for cid, parents in db.conn.execute("SELECT cid, parents FROM nsl_commit"):
        want.update((by_uuid[x], cid) for x in (parents or "").split() if x in by_uuid)
    if want != set(db.conn.execute("SELECT parent, child FROM nsl_plink").fetchall()):
        p.append("the commit links do not match the commits' parents (run `nsl rebuild`)")
    leaves = {r[0] for r in db.conn.execute(
        "SELECT cid FROM nsl_commit WHERE cid NOT IN (SELECT parent FROM nsl_plink)")}
    if leaves != {r[0] for r in db.conn.execute("SELECT cid FROM nsl_leaf")}:
        p.append("the leaf list does not match the commits (run `nsl rebuild`)")
    ranges = dict((cid, (lo, hi)) for cid, lo, hi in db.conn.execute(
        "SELECT cid, min(vid), max(vid) FROM nsl_version GROUP BY cid"))
    bad = sum(1 for cid, lo, hi in db.conn.execute("SELECT cid, vid_lo, vid_hi FROM nsl_commit")
              if ranges.get(cid, (None, None)) != (lo, hi))
    if bad:
        p.append(f"{bad} commits have a wrong line range (run `nsl rebuild`)")
    _verify_conflicts(db, rep)
    _verify_sync_tables(db, rep)


def _verify_conflicts(db: Database, rep: VerifyReport):
    """nsl_conflict lists exactly the objects with several leaves, and nsl_shown what their table's
    policy picks for each."""
    from . import conflicts, graph

    p = rep.problems
    want = graph.multi_leaf_objects(db)
    have: dict[tuple, set] = {}
    for tbl, key, vid in db.conn.execute("SELECT tbl, key, vid FROM nsl_conflict"):
        have.setdefault((tbl, key), set()).add(vid)
    if want != have:
        wrong = sorted({o for o in set(want) ^ set(have)} | {o for o in want if o in have and want[o] != have[o]},
                       key=lambda o: (o[0], str(o[1])))
        p.append(f"the conflict list does not match the history for {len(wrong)} objects, e.g. "
                 f"{wrong[0][0]}/{wrong[0][1]} (run `nsl rebuild`)")
        return
    shown = {(t, k): (v, c) for t, k, v, c in db.conn.execute("SELECT tbl, key, vid, content FROM nsl_shown")}
    if set(shown) != set(have):
        p.append("the shown-version list does not match the conflict list (run `nsl rebuild`)")
        return
    for (tbl, key), vids in want.items():
        lvs = [conflicts.line_leaf(db, v) for v in sorted(vids)]
        leaf, merged = conflicts.choose(db, tbl, lvs)
        if shown[(tbl, key)] != (leaf.vid, merged):
            p.append(f"{tbl}/{key}: the table shows another version than its conflict policy picks "
                     f"(run `nsl rebuild`)")


def _verify_sync_tables(db: Database, rep: VerifyReport):
    """Every indexed artifact name is its artifact's hash; every cluster hashes to its name."""
    p = rep.problems
    h = rowtext.hasher(db.hash_algo)
    bad = db.conn.execute(
        "SELECT count(*) FROM nsl_artifact a LEFT JOIN nsl_version v ON a.kind = 'v' AND v.vid = a.ref "
        "LEFT JOIN nsl_commit c ON a.kind = 'c' AND c.cid = a.ref LEFT JOIN nsl_cluster k ON a.kind = 'k' "
        "AND k.kid = a.ref WHERE a.name IS NOT coalesce(v.digest, c.uuid, k.uuid)").fetchone()[0]
    if bad:
        p.append(f"{bad} entries of the artifact index name the wrong artifact (run `nsl rebuild`)")
    for uuid, content in db.conn.execute("SELECT uuid, content FROM nsl_cluster"):
        if h(content.encode("utf-8", "surrogatepass")).hexdigest() != uuid:
            p.append(f"cluster {uuid[:12]}: its text does not hash to its name")


def _verify_tables(db: Database, rep: VerifyReport):
    """Every user row equals the version its state names, typed value for typed value."""
    p = rep.problems
    co = db.meta("checkout")
    state = states.state_at(db, commits.resolve(db, co)[0]) if co else None
    hcache: dict[str, bool] = {}
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
            tkey = f"t.{quote(tbl.key_col)}"
            if state:
                join = (f"LEFT JOIN temp.{state} s ON s.tbl = ? AND s.key = +{tkey} "
                        f"LEFT JOIN nsl_version v ON v.vid = s.vid")
            else:
                join = f"LEFT JOIN nsl_version v ON v.vid = {current_version('?', tkey)} AND v.op != 'D'"
            cur = db.conn.execute(f"SELECT t.*, v.content FROM {tbl.q} AS t {join}", (tbl.name,))
            n = len(cols)
            # Objects whose table shows content merged from several leaves (merge-fields).
            merged = {} if state else dict(db.conn.execute(
                "SELECT key, content FROM nsl_shown WHERE tbl = ? AND content IS NOT NULL", (tbl.name,)).fetchall())
            while True:
                batch = cur.fetchmany(5000)
                if not batch:
                    break
                rep.rows += len(batch)
                # Compare typed encodings: the row's cells against the version's, JSON kinds mapped
                # to the SQL values stored for them; a version made before later columns were added
                # covers a prefix of the row, and the rest must be NULL.
                encoded = rowtext.encode_values([r[:n] for r in batch], n)
                for r, enc in zip(batch, encoded):
                    content = r[n]
                    key = r[ki]
                    if merged and key in merged:
                        content = merged[key]
                    if content is None:
                        if (tbl.name, key) not in pending:
                            p.append(f"{tbl.name}/{key}: row is not in the history (changed without nsl's triggers)")
                        continue
                    head, _, body = content.partition("\n")
                    want = rowtext.plain_body(body)
                    if enc == want or (enc.startswith(want + "|") and set(enc[len(want) + 1:].split("|")) == {"n"}):
                        ok = hcache.get(head)
                        if ok is None:
                            ok = hcache[head] = rowtext.decode_header(head) == cols[:head.count("|") + 1]
                        if ok:
                            continue
                    if (tbl.name, key) in pending or _same_by_name(cols, r[:n], content):
                        continue
                    p.append(_row_difference(tbl.name, key, cols, r[:n], content))
                if len(p) > MAX_PROBLEMS:
                    return
            if state:
                live = f"SELECT key FROM temp.{state} WHERE tbl = ?"
            else:
                live = ("SELECT s.key FROM (SELECT key, max(vid) AS vid FROM nsl_version WHERE tbl = ?1 "
                        "GROUP BY key) s LEFT JOIN nsl_shown h ON h.tbl = ?1 AND h.key = s.key "
                        "JOIN nsl_version v ON v.vid = ifnull(h.vid, s.vid) WHERE v.op != 'D'")
            missing = db.conn.execute(
                f"SELECT l.key FROM ({live}) l WHERE NOT EXISTS "
                f"(SELECT 1 FROM {tbl.q} t WHERE t.{quote(tbl.key_col)} = l.key)", (tbl.name,)).fetchall()
            for (key,) in missing:
                if (tbl.name, key) not in pending:
                    p.append(f"{tbl.name}/{key}: row is missing from the table but live in the history")
    finally:
        if state:
            states.drop(db, state)


def _same_by_name(cols, row, content) -> bool:
    """A row holding exactly its version's values, in another column order (replicas that added the
    same columns in different orders), every other column NULL."""
    try:
        ccols, cvals, _ = decode_content(content)
    except (ValueError, UnicodeDecodeError):
        return False
    if ccols == cols[:len(ccols)] or not set(ccols) <= set(cols):
        return False
    want = dict(zip(ccols, cvals))
    for c, v in zip(cols, row):
        w = want.get(c)
        if type(v) is not type(w) or v != w:
            return False
    return True


def _row_difference(table, key, cols, row, content) -> str:
    """Name the first column where a user row and its version differ."""
    try:
        ccols, cvals, _ = decode_content(content)
    except (ValueError, UnicodeDecodeError):
        return f"{table}/{key}: its version cannot be decoded"
    by_name = dict(zip(ccols, cvals))
    for c, v in zip(cols, row):
        w = by_name.get(c)
        if type(v) is not type(w) or v != w:
            return f"{table}/{key}: column {c!r} is {v!r} in the table but {w!r} in the history"
    return f"{table}/{key}: columns differ from its version ({', '.join(ccols)})"


def rebuild(db: Database) -> dict:
    """Regenerate every derived table (current versions, links, leaves, JSON and boolean columns,
    triggers) from the artifacts. The user tables and the history are left as they are."""
    with db.write(check_checkout=False):
        c = db.conn
        for stmt in schema.statements(schema.DERIVED_TABLES + schema.STATE_TABLES):
            c.execute(stmt)
        for name in schema.DERIVED_NAMES:
            c.execute(f"DELETE FROM {name}")
        c.executemany("UPDATE nsl_commit SET vid_lo = ?, vid_hi = ? WHERE cid = ?", [
            (lo, hi, cid) for cid, lo, hi in c.execute(
                "SELECT cid, min(vid), max(vid) FROM nsl_version GROUP BY cid").fetchall()])
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
        schema.record_bool_columns(c)
        for tid, name, key_col in c.execute("SELECT tid, name, key_col FROM nsl_table").fetchall():
            if c.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone():
                for stmt in schema.drop_trigger_sql(tid) + schema.trigger_sql(tid, name, key_col):
                    c.execute(stmt)
        from . import conflicts

        conflicts.recompute(db)
        _reindex_artifacts(db)
        c.execute("REINDEX nsl_version")
        return {"commits": c.execute("SELECT count(*) FROM nsl_commit").fetchone()[0],
                "versions": c.execute("SELECT count(*) FROM nsl_version").fetchone()[0],
                "objects": sum(c.execute(f"SELECT count(*) FROM {t.q}").fetchone()[0] for t in db.tables()),
                "head": commits.head(db)}


def _reindex_artifacts(db: Database) -> None:
    """nsl_artifact from the artifacts again; what no stored cluster lists is unclustered; nothing is
    unsent (the next push finds what a peer lacks through the igot exchange)."""
    c = db.conn
    c.execute("DELETE FROM nsl_unclustered")
    c.execute("DELETE FROM nsl_unsent")
    c.execute("INSERT INTO nsl_artifact(name, kind, ref) SELECT digest, 'v', min(vid) FROM nsl_version "
              "WHERE digest IS NOT NULL GROUP BY digest")
    c.execute("INSERT OR IGNORE INTO nsl_artifact(name, kind, ref) SELECT uuid, 'c', cid FROM nsl_commit ORDER BY cid")
    c.execute("INSERT OR IGNORE INTO nsl_artifact(name, kind, ref) SELECT uuid, 'k', kid FROM nsl_cluster ORDER BY kid")
    c.execute("CREATE TEMP TABLE IF NOT EXISTS nsl_clustered(name TEXT PRIMARY KEY) WITHOUT ROWID")
    c.execute("DELETE FROM temp.nsl_clustered")
    for (content,) in c.execute("SELECT content FROM nsl_cluster").fetchall():
        c.executemany("INSERT OR IGNORE INTO temp.nsl_clustered(name) VALUES (?)",
                      [(row[2:],) for row in content.split("\n")[1:] if row.startswith("M ")])
    c.execute("INSERT INTO nsl_unclustered(rid) SELECT rid FROM nsl_artifact a WHERE NOT EXISTS "
              "(SELECT 1 FROM temp.nsl_clustered m WHERE m.name = a.name)")
    c.execute("DROP TABLE temp.nsl_clustered")
    db.set_meta("sync_cid", c.execute("SELECT ifnull(max(cid), 0) FROM nsl_commit").fetchone()[0])
    db.set_meta("sync_vid", c.execute("SELECT ifnull(max(vid), 0) FROM nsl_version").fetchone()[0])
