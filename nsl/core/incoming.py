"""Commits made elsewhere, put into this history: the lines, the links, the leaves, and the user rows.

The caller (sync) has checked each artifact's hash and that every parent commit is here; this module
checks that the lines are consistent with what they name (each version's row text hashes to its uuid,
keys match their version's key column, parents are earlier versions of the same object), writes the
commit, and makes the user tables show what the history now says. All inside the caller's write.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import BadArtifact, InvalidName
from . import conflicts, graph, rowtext, states
from .commits import ParsedCommit, lines_hash
from .database import Database, Table, check_table_name
from .schema import bool_columns, json_columns, quote


@dataclass
class Applied:
    cid: int
    objects: int = 0
    conflicts: list = field(default_factory=list)   # (table, key) that now have several leaves


def _create_table(db: Database, name: str, key_col: str, columns: list[str]) -> Table:
    cols = ", ".join([f"{quote(key_col)} PRIMARY KEY"] + [quote(c) for c in columns if c != key_col])
    db.conn.execute(f"CREATE TABLE {quote(name)} ({cols})")
    return db.track_table(name, key_col)


def _table_for(db: Database, name: str, key_cols: dict, first_content: str | None) -> Table:
    try:
        check_table_name(name)
    except InvalidName as e:
        raise BadArtifact(f"a commit names table {name!r}, which nsl does not allow: {e.message}") from None
    tbl = db.table(name, missing_ok=True)
    hint = key_cols.get(name)
    if tbl is not None:
        if tbl.name != name:
            raise BadArtifact(f"table {name!r} differs only in case from the table {tbl.name!r} here")
        if hint is not None and hint != tbl.key_col:
            raise BadArtifact(f"table {name!r} is keyed by {hint!r} there but by {tbl.key_col!r} here")
        return tbl
    if db.conn.execute("SELECT 1 FROM sqlite_master WHERE lower(name) = lower(?)", (name,)).fetchone():
        raise BadArtifact(f"table {name!r} exists here but nsl does not track it")
    if hint is None or first_content is None:
        raise BadArtifact(f"table {name!r} is new here, and its key column was not sent")
    cols = rowtext.decode_header(first_content.partition("\n")[0])
    if hint not in cols:
        raise BadArtifact(f"table {name!r}: its first version has no key column {hint!r}")
    return _create_table(db, name, hint, cols)


def apply(db: Database, pc: ParsedCommit, keys: list, content_of, key_cols: dict) -> Applied:
    """Write commit `pc` (parents already here) with `keys[i]` the key of line i and `content_of(digest)`
    the typed content of each version it introduces."""
    c = db.conn
    algo = db.hash_algo
    h = rowtext.hasher(algo)
    if len(keys) != len(pc.lines):
        raise BadArtifact(f"commit {pc.uuid[:12]}: {len(pc.lines)} lines but {len(keys)} keys")
    parent_cids = []
    for p in pc.parents:
        row = c.execute("SELECT cid FROM nsl_commit WHERE uuid=?", (p,)).fetchone()
        if row is None:
            raise BadArtifact(f"commit {pc.uuid[:12]}: parent {p[:12]} is not here")
        parent_cids.append(row[0])
    leaf_cids = {r[0] for r in c.execute("SELECT cid FROM nsl_leaf")}
    fast_forward = leaf_cids.issubset(parent_cids)

    # Tables, contents and keys, all checked before anything is written.
    tables: dict[str, Table] = {}
    rows = []
    seen = set()
    json_cols: dict[str, set] = {}
    bool_cols: dict[str, set] = {}
    new_headers: dict[str, dict] = {}   # table -> headers of its versions, in line order
    groups: dict[tuple, list] = {}      # (table, header) -> [(line index, body)]
    for i, ((op, tname, uuid, digest, parents), key) in enumerate(zip(pc.lines, keys)):
        if type(key) not in (str, int) or (type(key) is int and not -(1 << 63) <= key < (1 << 63)):
            raise BadArtifact(f"commit {pc.uuid[:12]}: a line of {tname!r} has an invalid key {key!r}")
        content = content_of(digest) if op != "D" else None
        if op != "D" and content is None:
            raise BadArtifact(f"commit {pc.uuid[:12]}: version {digest[:12]} was not sent")
        if tname not in tables:
            tables[tname] = _table_for(db, tname, key_cols, content)
        if (tname, key) in seen:
            raise BadArtifact(f"commit {pc.uuid[:12]}: {tname}/{key} has two lines")
        seen.add((tname, key))
        if content is not None:
            head, _, body = content.partition("\n")
            groups.setdefault((tname, head), []).append((i, body))
        rows.append((tname, key, op, uuid, digest, parents, content))
    # Each version's row text hashes to the uuid its line names, and its key column holds the key;
    # a column at a time per table and header.
    for (tname, head), items in groups.items():
        try:
            cols = rowtext.decode_header(head)
            bodies = [b for _, b in items]
            texts = rowtext.cells_row_texts(bodies, len(cols))
        except (ValueError, UnicodeDecodeError):
            raise BadArtifact(f"commit {pc.uuid[:12]}: a version of {tname!r} cannot be decoded") from None
        for (i, _), text in zip(items, texts):
            if h(text).hexdigest() != rows[i][3]:
                r = rows[i]
                raise BadArtifact(f"version {r[4][:12]} of {tname}/{r[1]}: its row text does not hash to "
                                  f"the version uuid {r[3][:12]} its commit names")
        kc = tables[tname].key_col
        if kc not in cols:
            raise BadArtifact(f"commit {pc.uuid[:12]}: a version of {tname!r} has no key column {kc!r}")
        bad = rowtext.key_mismatch(bodies, cols.index(kc), [rows[i][1] for i, _ in items])
        if bad is not None:
            r = rows[items[bad][0]]
            raise BadArtifact(f"version {r[4][:12]}: its key column does not hold the key {r[1]!r}")
        json_cols.setdefault(tname, set()).update(json_columns(cols, bodies))
        bool_cols.setdefault(tname, set()).update(bool_columns(cols, bodies))
        new_headers.setdefault(tname, {}).setdefault(head, None)

    lo = (c.execute("SELECT ifnull(max(vid), 0) FROM nsl_version").fetchone()[0]) + 1
    # Parents of updates and deletions must be earlier versions of the same object.
    for tname, key, op, _, _, parents, _ in rows:
        for p in (parents or "").split(",") if parents else ():
            if not c.execute("SELECT 1 FROM nsl_version WHERE tbl=? AND key=? AND uuid=? LIMIT 1",
                             (tname, key, p)).fetchone():
                raise BadArtifact(f"commit {pc.uuid[:12]}: {tname}/{key} names parent version {p[:12]}, "
                                  f"which is not an earlier version of it")

    # Old leaves of what this commit touches, before its lines go in. A commit that descends from
    # every leaf supersedes them all, so only the others need to look.
    old: dict[tuple, list] = {}
    if not fast_forward:
        for tname, key, *_ in rows:
            lvs = conflicts.leaves(db, tname, key, before_vid=lo)
            if lvs:
                old[(tname, key)] = lvs
    in_conflict = {t for t in tables if conflicts.has_any(db, t)}

    cur = c.execute(
        "INSERT INTO nsl_commit(uuid, db, date, parents, meta, objects_uuid, nlines, vid_lo, vid_hi) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (pc.uuid, pc.db, pc.date, " ".join(pc.parents), pc.meta, lines_hash(pc.text, algo), len(rows),
         lo, lo + len(rows) - 1))
    cid = cur.lastrowid
    c.executemany("INSERT INTO nsl_version(vid, cid, tbl, key, op, uuid, digest, parents, content) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                  [(lo + i, cid, t, k, op, u, d, ps, ct) for i, (t, k, op, u, d, ps, ct) in enumerate(rows)])
    c.executemany("INSERT OR IGNORE INTO nsl_plink(parent, child) VALUES (?, ?)", [(p, cid) for p in parent_cids])
    c.executemany("DELETE FROM nsl_leaf WHERE cid = ?", [(p,) for p in parent_cids])
    c.execute("INSERT INTO nsl_leaf(cid) VALUES (?)", (cid,))
    for tname, cols in json_cols.items():
        c.executemany("INSERT OR IGNORE INTO nsl_json_column(tid, name) VALUES (?, ?)",
                      [(tables[tname].tid, col) for col in cols])
    for tname, cols in bool_cols.items():
        c.executemany("INSERT OR IGNORE INTO nsl_bool_column(tid, name) VALUES (?, ?)",
                      [(tables[tname].tid, col) for col in cols])
    # A table has every column any of its versions has, shown or not, so replicas holding the same
    # history have the same columns whatever order their syncs came in.
    for tname, heads in new_headers.items():
        tbl = tables[tname]
        for head in heads:
            for col in rowtext.decode_header(head):
                if col not in tbl.columns:
                    c.execute(f"ALTER TABLE {tbl.q} ADD COLUMN {quote(col)}")
                    tbl.columns.append(col)

    # What each object shows now: the new line, unless an old leaf does not descend into it.
    res = Applied(cid, len(rows))
    shown: dict[str, list] = {}
    merged: dict[str, list] = {}
    anc = None
    for i, (tname, key, op, *_rest) in enumerate(rows):
        vid = lo + i
        keep = []
        lvs = old.get((tname, key))
        if lvs:
            if anc is None:
                anc = graph.ancestors_sql(db, parent_cids, min(lf.cid for v in old.values() for lf in v))
            keep = [lf for lf in lvs if lf.cid not in anc]
        if not keep:
            if tname in in_conflict:
                conflicts.set_leaves(db, tname, key, [])
            shown.setdefault(tname, []).append((key, None if op == "D" else vid))
            continue
        target = conflicts.set_leaves(db, tname, key, keep + [conflicts.line_leaf(db, vid)])
        res.conflicts.append((tname, key))
        if target is None:
            merged.setdefault(tname, []).append(key)
        else:
            shown.setdefault(tname, []).append((key, None if _op(db, target) == "D" else target))
    for tname, items in shown.items():
        states.write_rows(db, tables[tname], items)
    for tname, keys_ in merged.items():
        write_merged(db, tables[tname], keys_)
    return res


def _op(db: Database, vid: int) -> str:
    return db.conn.execute("SELECT op FROM nsl_version WHERE vid=?", (vid,)).fetchone()[0]


def write_merged(db: Database, tbl: Table, keys: list) -> None:
    """Rows for objects whose table shows content merged from several leaves (merge-fields)."""
    for key in keys:
        content = conflicts.merged_content(db, tbl.name, key)
        cols, vals, _ = rowtext.decode_content(content)
        for col in cols:
            if col not in tbl.columns:
                db.conn.execute(f"ALTER TABLE {tbl.q} ADD COLUMN {quote(col)}")
                tbl.columns.append(col)
        db.conn.execute(f"DELETE FROM {tbl.q} WHERE {tbl.qkey} = ?", (key,))
        db.conn.execute(f"INSERT INTO {tbl.q} ({', '.join(quote(x) for x in cols)}) "
                        f"VALUES ({', '.join('?' * len(cols))})", vals)
