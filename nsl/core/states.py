"""What the user tables hold at a commit, and writing such a state back into them.

A state is a temp table (tbl, key, vid) naming, for every live object, the version it shows. At the
head each object shows its last line; at an older commit, its last line among that commit's ancestors.
"""
from __future__ import annotations

import itertools
from contextlib import contextmanager

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


def diff_table(db: Database) -> str:
    """A fresh temp table (tbl, key, a, b): for each object, the vid it shows in two states (NULL
    where it is deleted or not yet made)."""
    name = f"nsl_diff_{next(_counter)}"
    db.conn.execute(f"CREATE TEMP TABLE {name}(tbl TEXT, key, a INTEGER, b INTEGER, PRIMARY KEY(tbl, key)) "
                    f"WITHOUT ROWID")
    return name


def diff_since(db: Database, cid: int, a_cid: int | None, b_cid: int | None, table: str | None = None,
               key=None, also: str | None = None) -> str:
    """A diff table (see diff_table) of the states at a_cid and b_cid (None: the head), for every object
    some commit after `cid` changed and each object of the temp table `also` (linear history). One
    pass over each object's lines: a line is packed as vid*2 + is-deletion, so max() finds the last
    line and whether it deletes. When most of the history came after `cid`, one pass over the whole
    (tbl, key) index is cheaper than collecting the objects first and seeking each."""
    out = diff_table(db)
    hi = line_range(db, cid)[1]
    last = db.conn.execute("SELECT ifnull(max(vid), 0) FROM nsl_version").fetchone()[0]
    pa, pb = (_bound(db, c) for c in (a_cid, b_cid))
    unpacked = "SELECT tbl, key, " + ", ".join(
        f"CASE WHEN p{c} IS NULL OR p{c} & 1 THEN NULL ELSE p{c} >> 1 END AS {c}" for c in "ab") + " FROM "
    of_objects = (f"(SELECT o.tbl AS tbl, o.key AS key, max({pa}) AS pa, max({pb}) AS pb FROM temp.{{}} o "
                  f"LEFT JOIN nsl_version v ON v.tbl = o.tbl AND v.key = o.key GROUP BY o.tbl, o.key)")
    if table is not None or last - hi < last // 3:
        objs = objects_table(db)
        try:
            add_touched_after(db, objs, cid, table, key)
            if also:
                db.conn.execute(f"INSERT OR IGNORE INTO temp.{objs} SELECT tbl, key FROM temp.{also}")
            db.conn.execute(f"INSERT INTO temp.{out}(tbl, key, a, b) {unpacked}{of_objects.format(objs)}")
        finally:
            drop(db, objs)
        return out
    db.conn.execute(
        f"INSERT INTO temp.{out}(tbl, key, a, b) {unpacked}(SELECT v.tbl AS tbl, v.key AS key, max({pa}) AS pa, "
        f"max({pb}) AS pb FROM nsl_version v GROUP BY v.tbl, v.key HAVING max(v.vid) > {int(hi)})")
    if also:
        db.conn.execute(f"INSERT OR IGNORE INTO temp.{out}(tbl, key, a, b) {unpacked}{of_objects.format(also)}")
    return out


def _bound(db: Database, cid: int | None) -> str:
    """A line packed as vid*2 + is-deletion, or NULL past commit `cid` (None: the head)."""
    if cid is None:
        return "v.vid * 2 + (v.op = 'D')"
    return f"CASE WHEN v.vid <= {int(line_range(db, cid)[1])} THEN v.vid * 2 + (v.op = 'D') END"


def write_diff(db: Database, diff: str, col: str) -> int:
    """Make the user tables show, for each object of the diff table, the version in its column `col`
    ('a' or 'b'). Returns the number of objects."""
    assert col in ("a", "b")
    n = 0
    for (name,) in db.conn.execute(f"SELECT DISTINCT tbl FROM temp.{diff}").fetchall():
        count = db.conn.execute(f"SELECT count(*) FROM temp.{diff} WHERE tbl = ?", (name,)).fetchone()[0]
        n += count
        tbl = db.table(name, missing_ok=True)
        if tbl is None:
            continue
        # The versions' contents in one join (the diff is in key order, and so mostly in vid
        # order): no (key, vid) pairs are made, and only the keys of rows that go are fetched.
        upsert = _key_is_unique(db, tbl)
        gone = [k for (k,) in db.conn.execute(
            f"SELECT key FROM temp.{diff} WHERE tbl = ?" + (f" AND {col} IS NULL" if upsert else ""), (name,))]
        contents = [c for (c,) in db.conn.execute(
            f"SELECT v.content FROM temp.{diff} d JOIN nsl_version v ON v.vid = d.{col} WHERE d.tbl = ?", (name,))]

        def first_seen(heads, name=name):
            # Headers in the order their first versions came (the order new columns are added in).
            at = dict(db.conn.execute(
                f"SELECT substr(v.content, 1, instr(v.content, char(10)) - 1), min(v.vid) FROM temp.{diff} d "
                f"JOIN nsl_version v ON v.vid = d.{col} WHERE d.tbl = ? GROUP BY 1", (name,)))
            return sorted(heads, key=at.__getitem__)

        with _muted(db, tbl, count):
            _delete(db, tbl, gone)
            _insert(db, tbl, upsert, _decoded(_by_header(contents)), first_seen)
    return n


def write_rows(db: Database, tbl: Table, items) -> None:
    """Make the user table show, for each (key, vid or None), that version's row or no row."""
    with _muted(db, tbl, len(items)):
        upsert = _key_is_unique(db, tbl)
        # A row that gets another version is rewritten in place by an upsert; only rows that go are deleted.
        _delete(db, tbl, [k for k, v in items if v is None] if upsert else [k for k, _ in items])
        # The contents come in vid order: headers are first seen in it.
        groups = _by_header([c for (c,) in _contents(db, [v for _, v in items if v is not None])])
        _insert(db, tbl, upsert, _decoded(groups), list)


@contextmanager
def _muted(db: Database, tbl: Table, n: int):
    if n > 100:
        with db.muted_triggers(tbl):
            yield
    else:
        yield


def _key_is_unique(db: Database, tbl: Table) -> bool:
    """Whether SQLite accepts ON CONFLICT(key): the key is the primary key or has a unique index."""
    pks = [r[1] for r in db.conn.execute(f"PRAGMA table_info({tbl.q})") if r[5]]
    if pks == [tbl.key_col]:
        return True
    return any(r[2] and [c[2] for c in db.conn.execute(f"PRAGMA index_info({quote(r[1])})")] == [tbl.key_col]
               for r in db.conn.execute(f"PRAGMA index_list({tbl.q})").fetchall())


def _delete(db: Database, tbl: Table, keys: list) -> None:
    for i in range(0, len(keys), 500):
        part = keys[i:i + 500]
        db.conn.execute(f"DELETE FROM {tbl.q} WHERE {tbl.qkey} IN ({','.join('?' * len(part))})", part)


def _insert(db: Database, tbl: Table, upsert: bool, chunks, first_seen) -> None:
    """Write the rows of each (header, values of its rows in turn) of `chunks`: an upsert when the key
    is unique, so a row that gets another version is rewritten in place. Rows whose header has columns
    the table lacks wait until the rest is written; those columns are then added in the order
    first_seen(headers) gives, and a row written before a column came holds NULL there, as it would
    have."""
    known = set(tbl.columns)
    later = []
    for head, flat in chunks:
        cols = rowtext.header_names(head)
        if known.issuperset(cols):
            _insert_rows(db, tbl, upsert, cols, flat)
        else:
            later.append((head, flat))
    if not later:
        return
    heads = list(dict.fromkeys(h for h, _ in later))
    for head in (first_seen(heads) if len(heads) > 1 else heads):
        for c in rowtext.decode_header(head):
            if c not in tbl.columns:
                db.conn.execute(f"ALTER TABLE {tbl.q} ADD COLUMN {quote(c)}")
                tbl.columns.append(c)
    for head, flat in later:
        _insert_rows(db, tbl, upsert, rowtext.header_names(head), flat)


def _insert_rows(db: Database, tbl: Table, upsert: bool, cols, flat: list) -> None:
    if not cols:
        return
    cols = list(cols)
    insert_many(db.conn, f"INSERT INTO {tbl.q} ({', '.join(quote(c) for c in cols)}) VALUES ",
                f"({', '.join('?' * len(cols))})", len(cols), flat, len(flat) // len(cols),
                tbl.upsert_tail(cols) if upsert else "")


def _by_header(contents: list[str]) -> dict[str, list[str]]:
    """The bodies of typed encodings grouped by their header line. A table's versions nearly always
    share one header: one join and one split then find it (a header and a body never hold a newline)."""
    if not contents:
        return {}
    flat = "\n".join(contents).split("\n")
    heads = flat[0::2]
    if len(flat) == 2 * len(contents) and heads.count(heads[0]) == len(heads):
        return {heads[0]: flat[1::2]}
    groups: dict[str, list[str]] = {}
    for content in contents:
        head, _, body = content.partition("\n")
        groups.setdefault(head, []).append(body)
    return groups


def _contents(db: Database, vids: list[int], cols: str = "content", conn=None):
    """The content (or `cols`) of versions `vids`, in vid order. A commit's lines have consecutive
    vids, so long runs are read as ranges of the table (half the cost of seeking each vid); the rest
    by IN lists."""
    conn = conn or db.conn
    vids = sorted(vids)
    singles: list[int] = []
    i = 0
    while i < len(vids):
        j = i
        while j + 1 < len(vids) and vids[j + 1] == vids[j] + 1:
            j += 1
        if j - i >= 63:
            yield from _by_ids(conn, singles, cols)
            singles = []
            yield from conn.execute(f"SELECT {cols} FROM nsl_version WHERE vid BETWEEN ? AND ?", (vids[i], vids[j]))
        else:
            singles.extend(vids[i:j + 1])
        i = j + 1
    yield from _by_ids(conn, singles, cols)


def _by_ids(conn, vids: list[int], cols: str):
    for i in range(0, len(vids), 500):
        part = vids[i:i + 500]
        yield from conn.execute(f"SELECT {cols} FROM nsl_version WHERE vid IN ({','.join('?' * len(part))})", part)


PARALLEL_ROWS = 20_000   # below this, a helper process costs more than it saves
_CHUNK = 5_000


def _decode_chunks(groups: dict, part: int | None = None):
    """(header, rows) of each chunk of the bodies in `groups`; with `part` (0 or 1), only the chunks
    of that parity (the other half is decoded by whoever reads these)."""
    i = 0
    for head, bodies in groups.items():
        ncols = head.count("|") + 1
        for j in range(0, len(bodies), _CHUNK):
            if part is None or i % 2 == part:
                # Only values matter here: the user table holds SQL values, kinds live in the history.
                yield head, rowtext.decode_bodies_flat(bodies[j:j + _CHUNK], ncols)
            i += 1


def _decoded(groups: dict):
    """(header, rows of SQL values) of the typed bodies in `groups`, a chunk at a time. Many rows are
    decoded half here and half in a forked helper (which has the bodies already, and never touches
    the database), which works while this process inserts: decoding costs about as much as the inserts."""
    from .bulk import parallel_ok
    from .workers import Worker

    if sum(map(len, groups.values())) < PARALLEL_ROWS or not parallel_ok():
        yield from _decode_chunks(groups)
        return
    w = Worker(_decode_chunks, groups, 1)
    try:
        i = 0
        for head, bodies in groups.items():
            ncols = head.count("|") + 1
            for j in range(0, len(bodies), _CHUNK):
                if i % 2 == 0:
                    yield head, rowtext.decode_bodies_flat(bodies[j:j + _CHUNK], ncols)
                else:
                    item = w.receive()
                    assert item is not None, "the decoding helper ended early"
                    yield item
                i += 1
    finally:
        w.close()



# ---- many objects: two processes read and decode, this one writes ---------------------------------
# When most of a long straight history came after the older commit, write_since replaces diff_since
# and write_diff: no diff table is made. The objects that differ are found by the same one pass over
# the (tbl, key) index, cut in two at a (tbl, key) split: a forked helper takes the objects from the
# split on, finds them, reads their versions and decodes them, and streams the rows here; this
# process writes them as they come, and while none is waiting it reads and decodes the objects
# before the split itself. The helper opens a connection of its own after the fork (none crosses it),
# read-only, and leaves it to the process's exit (no close, so no checkpoint is tried). Its snapshot
# is this transaction's: the history is append-only, and this process holds the write lock from
# before the fork until the helper is done, so no commit can come between them.

HELPER_ROWS = 20_000   # lines after the older commit below which the diff table is made here
HELPER_SHARE = 0.65    # of the lines after it, the share before which the helper starts


def write_since(db: Database, cid: int, a_cid: int | None, b_cid: int | None, notes: bool = False) -> int | None:
    """What write_diff(diff_since(db, cid, a_cid, b_cid), "b") does for the objects whose versions in
    the two states differ (linear history), for all tables; with `notes`, each rewritten object is
    also noted in nsl_pending with the version it now shows (restore). None when this way does not
    pay (few lines after `cid`, or no helper), and nothing was done."""
    from .bulk import parallel_ok
    from .workers import Worker

    hi = line_range(db, cid)[1]
    last = db.conn.execute("SELECT ifnull(max(vid), 0) FROM nsl_version").fetchone()[0]
    if (last - hi < max(HELPER_ROWS, last // 3) or not parallel_ok()
            or db.conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal"):
        return None
    # Where the helper starts: a sample of the lines after `hi`, evenly spaced, places it.
    step = max(1, (last - hi) // 256)
    sample = list(range(hi + 1, last + 1, step))
    split = tuple(db.conn.execute(
        f"SELECT tbl, key FROM nsl_version WHERE vid IN ({','.join('?' * len(sample))}) ORDER BY tbl, key "
        f"LIMIT 1 OFFSET ?", (*sample, int(len(sample) * (1 - HELPER_SHARE)))).fetchone())
    pa, pb = (_bound(db, c) for c in (a_cid, b_cid))
    # Changed after `cid`: its last line is past hi; where a state is the head, that is its packed
    # line past 2*hi + 1, and max() needs no other aggregate.
    changed = (f"max(v.vid) > {int(hi)}" if a_cid is not None and b_cid is not None
               else f"max({pa if a_cid is None else pb}) > {2 * int(hi) + 1}")
    # b is -1 where it is a: those are left out as they come (a WHERE on the subquery costs more).
    sql = ("SELECT s.tbl, CASE WHEN s.a IS s.b THEN -1 ELSE s.b END, s.key, v.content FROM (SELECT tbl, key, "
           + ", ".join(f"CASE WHEN p{c} IS NULL OR p{c} & 1 THEN NULL ELSE p{c} >> 1 END AS {c}" for c in "ab")
           + f" FROM (SELECT v.tbl AS tbl, v.key AS key, max({pa}) AS pa, max({pb}) AS pb FROM nsl_version v "
             f"WHERE (v.tbl, v.key) {{}} (?, ?) GROUP BY v.tbl, v.key HAVING {changed})) s "
             f"LEFT JOIN nsl_version v ON v.vid = s.b")
    w = Worker(_far_items, str(db.path), sql.format(">="), split)
    try:
        return _write_items(db, w, _items(db.conn.execute(sql.format("<"), split)), notes)
    finally:
        w.close()


def _far_items(path: str, sql: str, params):
    """In the helper: _items of the query `sql`, on a connection of its own."""
    import sqlite3

    from .database import busy_timeout

    conn = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout())
    conn.execute("PRAGMA query_only=1")
    conn.execute("PRAGMA cache_size=-65536")
    conn.execute("BEGIN")
    yield from _items(conn.execute(sql, params))


def _items(cur):
    """The objects of the cursor `cur` (tbl, b or -1 where b is a, key, content of b) whose a is not
    their b, a chunk at a time: ("gone", tbl, keys) for those without a row in b, and ("rows", tbl,
    header, values of its rows in turn, keys, vids) for the others."""
    while True:
        rows = cur.fetchmany(_CHUNK)
        if not rows:
            return
        tbls, vids, keys, contents = zip(*rows)
        if -1 in vids:  # the same version (or none) in both states
            rows = [r for r in rows if r[1] != -1]
            if not rows:
                continue
            tbls, vids, keys, contents = zip(*rows)
        del rows
        if tbls.count(tbls[0]) == len(tbls):
            parts = [(tbls[0], vids, keys, contents)]
        else:
            by_table: dict[str, tuple] = {}
            for row in zip(tbls, vids, keys, contents):
                for lst, x in zip(by_table.setdefault(row[0], ([], [], [])), row[1:]):
                    lst.append(x)
            parts = [(t, *cols) for t, cols in by_table.items()]
        for t, vs, ks, cs in parts:
            if None in vs:
                yield "gone", t, [k for k, v in zip(ks, vs) if v is None]
                kept = [r for r in zip(vs, ks, cs) if r[0] is not None]
                vs, ks, cs = zip(*kept) if kept else ((), (), ())
            for head, (bodies, hkeys, hvids) in _by_header_with(cs, ks, vs).items():
                yield "rows", t, head, rowtext.decode_bodies_flat(bodies, head.count("|") + 1), hkeys, hvids


def _by_header_with(contents, keys, vids) -> dict:
    """header -> (bodies, keys, vids) of typed encodings and the keys and vids they go with."""
    if not contents:
        return {}
    groups = _by_header(list(contents))
    if len(groups) == 1:
        head, bodies = groups.popitem()
        return {head: (bodies, list(keys), list(vids))}
    out: dict[str, tuple] = {}
    for content, k, v in zip(contents, keys, vids):
        head, _, body = content.partition("\n")
        g = out.setdefault(head, ([], [], []))
        g[0].append(body)
        g[1].append(k)
        g[2].append(v)
    return out


def _write_items(db: Database, w, mine, notes: bool) -> int:
    """Write the items the helper `w` sends and those of `mine` (see _items), the helper's first
    whenever one is there; returns the number of objects."""
    n = 0
    tables: dict[str, tuple] = {}   # name -> (Table or None, upsert, tid, rows waiting for columns)
    theirs = True
    while True:
        item = None
        if mine is not None and (not theirs or not w.ready()):
            item = next(mine, None)
            if item is None:
                mine = None
        if item is None and theirs:
            item = w.receive()
            if item is None:
                theirs = False
        if item is None:
            if mine is None and not theirs:
                break
            continue
        name = item[1]
        t = tables.get(name)
        if t is None:
            tbl = db.table(name, missing_ok=True)
            tid = db.conn.execute("SELECT tid FROM nsl_table WHERE name = ?", (name,)).fetchone()
            t = tables[name] = (tbl, tbl is not None and _key_is_unique(db, tbl), tid, [])
            if tbl is not None:
                db.mute_triggers(tbl)  # nsl records its own bulk writes (see Database.muted_triggers)
        tbl, upsert, tid, later = t
        if item[0] == "gone":
            keys, vids = item[2], [None] * len(item[2])
            if tbl is not None:
                _delete(db, tbl, keys)
        else:
            _, _, head, flat, keys, vids = item
            cols = rowtext.header_names(head)
            if tbl is not None:
                if not upsert:
                    _delete(db, tbl, keys)
                if set(tbl.columns).issuperset(cols):
                    _insert_rows(db, tbl, upsert, cols, flat)
                else:
                    later.append((head, flat, min(vids)))
        n += len(keys)
        if notes and tid is not None:
            flat_notes: list = [tid[0]] * (3 * len(keys))
            flat_notes[1::3], flat_notes[2::3] = keys, vids
            insert_many(db.conn, "INSERT OR REPLACE INTO nsl_pending(tid, key, vid) VALUES ", "(?, ?, ?)", 3,
                        flat_notes, len(keys))
    for tbl, upsert, _, later in tables.values():
        if later:
            # Columns the table lacks are added in the order their first versions came.
            first: dict[str, int] = {}
            for head, _, v in later:
                first[head] = min(v, first.get(head, v))
            _insert(db, tbl, upsert, [(h, f) for h, f, _ in later], lambda heads: sorted(heads, key=first.__getitem__))
        if tbl is not None:
            db.unmute_triggers(tbl)
    return n
