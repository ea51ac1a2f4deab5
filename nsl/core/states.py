"""What the user tables hold at a commit, and writing such a state back into them.

A state is a temp table (tbl, key, vid) naming, for every live object, the version it shows. At the
head each object shows its last line; at an older commit, its last line among that commit's ancestors.
"""
from __future__ import annotations

import itertools
from itertools import chain

from . import rowtext
from .commits import ancestors_sql, line_range
from .database import Database, Table
from .multirow import insert_many
from .schema import quote

_counter = itertools.count()


def head_state(db: Database) -> str:
    """A temp table holding the head's state: every object's last line (or, for an object with
    several leaves, the one nsl_shown names), unless it is a deletion."""
    name = f"nsl_state_{next(_counter)}"
    db.conn.execute(f"CREATE TEMP TABLE {name}(tbl TEXT, key, vid INTEGER, PRIMARY KEY(tbl, key)) WITHOUT ROWID")
    db.conn.execute(
        f"INSERT INTO {name} SELECT s.tbl, s.key, v.vid FROM (SELECT tbl, key, max(vid) AS vid FROM nsl_version "
        f"GROUP BY tbl, key) s LEFT JOIN nsl_shown h ON h.tbl = s.tbl AND h.key = s.key "
        f"JOIN nsl_version v ON v.vid = ifnull(h.vid, s.vid) WHERE v.op != 'D'")
    return name


def state_of(db: Database, ref: str | None) -> str:
    """The state a reference names: HEAD (or None) is the head's state, whatever the number of
    leaves; anything else is the state at that commit."""
    if ref is None or ref.strip().upper() == "HEAD":
        return head_state(db)
    from .commits import resolve

    return state_at(db, resolve(db, ref)[0])


def state_at(db: Database, cid: int) -> str:
    """A temp table holding the state at commit `cid`: what each object shows when only the commit's
    ancestors are there (its last line among them, or the policy's choice among several leaves)."""
    name = f"nsl_state_{next(_counter)}"
    db.conn.execute(f"CREATE TEMP TABLE {name}(tbl TEXT, key, vid INTEGER, PRIMARY KEY(tbl, key)) WITHOUT ROWID")
    linear = is_linear(db)
    if linear:
        # A straight history: the ancestors are exactly the commits up to cid, no recursion needed.
        src = "SELECT tbl, key, max(vid) AS vid FROM nsl_version WHERE vid <= :hi GROUP BY tbl, key"
    else:
        src = (ancestors_sql() + " SELECT tbl, key, max(vid) AS vid FROM nsl_version "
               "WHERE cid IN (SELECT cid FROM anc) GROUP BY tbl, key")
    db.conn.execute(
        f"INSERT INTO {name} SELECT s.tbl, s.key, s.vid FROM ({src}) s JOIN nsl_version v ON v.vid = s.vid "
        f"WHERE v.op != 'D'", {"cid": cid, "hi": line_range(db, cid)[1]})
    if not linear:
        _settle_forks(db, name, cid)
    return name


def _settle_forks(db: Database, name: str, cid: int) -> None:
    """Objects with several leaves among the ancestors show what their table's policy picks (lww
    where the head would show merged content: an old state shows versions only)."""
    from . import conflicts, graph

    within = {r[0] for r in db.conn.execute(ancestors_sql() + " SELECT cid FROM anc", {"cid": cid})}
    for (tbl, key), vids in graph.multi_leaf_objects(db, within).items():
        lvs = [conflicts.line_leaf(db, v) for v in sorted(vids)]
        shown, _ = conflicts.choose(db, tbl, lvs)
        db.conn.execute(f"DELETE FROM temp.{name} WHERE tbl = ? AND key = ?", (tbl, key))
        if shown.live:
            db.conn.execute(f"INSERT INTO temp.{name}(tbl, key, vid) VALUES (?, ?, ?)", (tbl, key, shown.vid))


def drop(db: Database, *names: str):
    for n in names:
        if n:
            db.conn.execute(f"DROP TABLE IF EXISTS temp.{n}")


def differences(db: Database, a: str, b: str, table: str | None = None, key=None):
    """(tbl, key, vid_in_a or None, vid_in_b or None) for every object whose version differs."""
    cond, params = "", []
    if table is not None:
        cond = " AND x.tbl = ?"
        params.append(table)
        if key is not None:
            cond += " AND x.key = ?"
            params.append(key)
    sql = (
        f"SELECT x.tbl, x.key, x.vid, y.vid FROM {a} x LEFT JOIN {b} y ON y.tbl=x.tbl AND y.key=x.key "
        f"WHERE (y.vid IS NULL OR (y.vid != x.vid AND (SELECT uuid FROM nsl_version WHERE vid=y.vid) IS NOT "
        f"(SELECT uuid FROM nsl_version WHERE vid=x.vid))){cond} "
        f"UNION ALL "
        f"SELECT x.tbl, x.key, NULL, x.vid FROM {b} x WHERE NOT EXISTS "
        f"(SELECT 1 FROM {a} y WHERE y.tbl=x.tbl AND y.key=x.key){cond}"
    )
    return db.conn.execute(sql, params + params).fetchall()


def is_linear(db: Database) -> bool:
    """True while no commit has two parents or two children: then the ancestors of a commit are
    exactly the commits before it, and going back needs only what changed since."""
    return db.conn.execute(
        "SELECT NOT EXISTS (SELECT 1 FROM nsl_plink GROUP BY child HAVING count(*) > 1) "
        "AND NOT EXISTS (SELECT 1 FROM nsl_plink GROUP BY parent HAVING count(*) > 1)").fetchone()[0]


def objects_table(db: Database) -> str:
    """A fresh temp table (tbl, key) to collect the objects an operation looks at."""
    name = f"nsl_objs_{next(_counter)}"
    db.conn.execute(f"CREATE TEMP TABLE {name}(tbl TEXT, key, PRIMARY KEY(tbl, key)) WITHOUT ROWID")
    return name


def add_touched_after(db: Database, objs: str, cid: int, table: str | None = None, key=None) -> None:
    """Add to `objs` every object some commit after `cid` changed (linear history)."""
    sql = f"INSERT OR IGNORE INTO temp.{objs} SELECT tbl, key FROM nsl_version WHERE vid > ?"
    params = [line_range(db, cid)[1]]
    if table is not None:
        sql += " AND tbl = ?"
        params.append(table)
        if key is not None:
            sql += " AND key = ?"
            params.append(key)
    db.conn.execute(sql, params)


def compare_since(db: Database, cid: int, a_cid: int | None, b_cid: int | None, table: str | None = None,
                  key=None, also: str | None = None) -> list[tuple]:
    """compare() for every object some commit after `cid` changed (linear history), and for the
    objects of the temp table `also`. When most of the history came after `cid`, one pass over the
    whole (tbl, key) index is cheaper than collecting the objects first and seeking each."""
    hi = line_range(db, cid)[1]
    last = db.conn.execute("SELECT ifnull(max(vid), 0) FROM nsl_version").fetchone()[0]
    if table is not None or last - hi < last // 3:
        objs = objects_table(db)
        try:
            add_touched_after(db, objs, cid, table, key)
            if also:
                db.conn.execute(f"INSERT OR IGNORE INTO temp.{objs} SELECT tbl, key FROM temp.{also}")
            return compare(db, objs, a_cid, b_cid)
        finally:
            drop(db, objs)
    bounds = [_bound(db, c) for c in (a_cid, b_cid)]
    rows = db.conn.execute(
        f"SELECT v.tbl, v.key, max({bounds[0]}), max({bounds[1]}) FROM nsl_version v GROUP BY v.tbl, v.key "
        f"HAVING max(v.vid) > {int(hi)}").fetchall()
    out = _unpacked(rows)
    if also:
        seen = {(t, k) for t, k, _, _ in out}
        extra = [r for r in compare(db, also, a_cid, b_cid) if (r[0], r[1]) not in seen]
        out += extra
    return out


def _bound(db: Database, cid: int | None) -> str:
    """A line packed as vid*2 + is-deletion, or NULL past commit `cid` (None: the head)."""
    if cid is None:
        return "v.vid * 2 + (v.op = 'D')"
    return f"CASE WHEN v.vid <= {int(line_range(db, cid)[1])} THEN v.vid * 2 + (v.op = 'D') END"


def _unpacked(rows) -> list[tuple]:
    unpack = lambda x: None if x is None or x & 1 else x >> 1  # noqa: E731
    return [(t, k, unpack(a), unpack(b)) for t, k, a, b in rows]


def compare(db: Database, objs: str, a_cid: int | None, b_cid: int | None) -> list[tuple]:
    """(tbl, key, vid at a, vid at b) for each object of `objs` (linear history; None: the head),
    None where the object is deleted or not yet made. One pass over each object's lines: a line
    is packed as vid*2 + is-deletion, so max() finds the last line and whether it deletes."""
    bounds = [_bound(db, c) for c in (a_cid, b_cid)]
    rows = db.conn.execute(
        f"SELECT o.tbl, o.key, max({bounds[0]}), max({bounds[1]}) FROM temp.{objs} o "
        f"LEFT JOIN nsl_version v ON v.tbl = o.tbl AND v.key = o.key GROUP BY o.tbl, o.key").fetchall()
    return _unpacked(rows)


def write_rows(db: Database, tbl: Table, items) -> None:
    """Make the user table show, for each (key, vid or None), that version's row or no row."""
    if len(items) > 100:
        with db.muted_triggers(tbl):
            _write_rows(db, tbl, items)
    else:
        _write_rows(db, tbl, items)


def _only_the_key_is_unique(db: Database, tbl: Table) -> bool:
    """Whether the key is the table's one uniqueness constraint (then a REPLACE can only replace the
    object's own row)."""
    uniques = [r[1] for r in db.conn.execute(f"PRAGMA index_list({tbl.q})") if r[2]]
    return len(uniques) <= 1 and all(
        [r[2] for r in db.conn.execute(f"PRAGMA index_info({quote(u)})")] == [tbl.key_col] for u in uniques)


def _write_rows(db: Database, tbl: Table, items) -> None:
    # A row that gets another version is replaced in one step; only rows that go are deleted first.
    replace = _only_the_key_is_unique(db, tbl)
    keys = [k for k, v in items if v is None] if replace else [k for k, _ in items]
    for i in range(0, len(keys), 500):
        part = keys[i:i + 500]
        db.conn.execute(f"DELETE FROM {tbl.q} WHERE {tbl.qkey} IN ({','.join('?' * len(part))})", part)
    vids = [v for _, v in items if v is not None]
    groups: dict[str, list] = {}
    for i in range(0, len(vids), 500):
        part = vids[i:i + 500]
        for (content,) in db.conn.execute(
                f"SELECT content FROM nsl_version WHERE vid IN ({','.join('?' * len(part))})", part):
            head, _, body = content.partition("\n")
            groups.setdefault(head, []).append(body)
    for head in groups:
        for c in rowtext.decode_header(head):
            if c not in tbl.columns:
                db.conn.execute(f"ALTER TABLE {tbl.q} ADD COLUMN {quote(c)}")
                tbl.columns.append(c)
    verb = "INSERT OR REPLACE" if replace else "INSERT"
    for head, rows in _decoded(groups):
        cols = rowtext.decode_header(head)
        insert_many(db.conn, f"{verb} INTO {tbl.q} ({', '.join(quote(c) for c in cols)}) VALUES ",
                    f"({', '.join('?' * len(cols))})", len(cols), chain.from_iterable(rows), len(rows))


PARALLEL_ROWS = 20_000   # below this, a helper process costs more than it saves
_CHUNK = 5_000


def _decode_chunks(groups: dict):
    for head, bodies in groups.items():
        ncols = head.count("|") + 1
        for i in range(0, len(bodies), _CHUNK):
            # Only values matter here: the user table holds SQL values, kinds live in the history.
            yield head, rowtext.decode_bodies(bodies[i:i + _CHUNK], ncols)


def _decoded(groups: dict):
    """(header, rows of SQL values) of the typed bodies in `groups`, a chunk at a time. Many rows are
    decoded in a forked helper (which has the bodies already, and never touches the database) while
    this process inserts the chunks it has: decoding costs about as much as the inserts."""
    from .bulk import parallel_ok
    from .workers import Worker

    if sum(map(len, groups.values())) < PARALLEL_ROWS or not parallel_ok():
        yield from _decode_chunks(groups)
        return
    w = Worker(_decode_chunks, groups)
    try:
        while True:
            item = w.receive()
            if item is None:
                return
            yield item
    finally:
        w.close()
