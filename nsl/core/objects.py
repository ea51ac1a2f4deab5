"""Saving, deleting, reading and finding objects; recording changes made outside nsl as a commit."""
from __future__ import annotations

import itertools
import sqlite3
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import orjson

from ..errors import (
    BadInput,
    InvalidJSON,
    InvalidName,
    InvalidObject,
    KeyColumnMissing,
    NothingToCommit,
    UnknownObject,
)
from . import affinity, conflicts, query, rowtext, schema
from .commits import CommitWriter
from .database import Database, Table, check_column_name, check_table_name
from .multirow import insert_many
from .prepare import Prepared, compute_columns, compute_rows, hash_rows, new_key, normalize, rows_of  # noqa: F401
from .rowtext import FALSE, JSON, TRUE, header, typed_cell
from .schema import current_version, quote, sql_literal
from .values import INT64_MAX, INT64_MIN, exact_object, has_long_int, inherit_kinds, plain_object, to_object

BATCH = 2000


@dataclass
class WriteResult:
    commit: str | None
    count: int
    keys: list = field(default_factory=list)

    def to_dict(self):
        return {"commit": self.commit, "count": self.count, "keys": self.keys}


class _NoChange(Exception):
    pass


def _chunks(it: Iterable, n: int) -> Iterator[list]:
    buf = []
    for x in it:
        buf.append(x)
        if len(buf) >= n:
            yield buf
            buf = []
    if buf:
        yield buf


def version_of(columns, values, kinds, algo="sha1") -> tuple[str, str, str]:
    """(uuid, typed digest, content) of a row of SQL values with their JSON kinds."""
    h = rowtext.hasher(algo)
    uuid = h(rowtext.row_text(values)).hexdigest()
    content = header(columns) + "\n" + "|".join(
        [typed_cell(v, k) for v, k in zip(values, kinds)])
    return uuid, h(content.encode("utf-8", "surrogatepass")).hexdigest(), content


def _meta(message, author, meta):
    m = dict(meta or {})
    if author:
        m["author"] = author
    if message:
        m["message"] = message
    return m


def _create_table(db: Database, name: str, key_col: str, columns: list[str]) -> Table:
    cols = ", ".join([f"{quote(key_col)} PRIMARY KEY"] + [quote(c) for c in columns if c != key_col])
    db.conn.execute(f"CREATE TABLE {quote(name)} ({cols})")
    return db.track_table(name, key_col)


def save(db: Database, table: str, objects: Iterable, *, key: str | None = None, message=None,
         author=None, meta=None, collect_keys: bool = False) -> WriteResult:
    """Save objects into `table` in one commit. New keys are inserted, existing keys get a new version."""
    def feed(saver):
        seen = False
        for batch in _chunks(objects, BATCH):
            seen = True
            saver.add_batch(batch)
        return seen

    return save_with(db, table, feed, key=key, meta=_meta(message, author, meta), collect_keys=collect_keys)


def save_with(db: Database, table: str, feed, *, key=None, meta=None, collect_keys=False) -> WriteResult:
    """One save transaction; `feed(saver)` hands the objects to the saver and says if there were any."""
    check_table_name(table)
    if key is not None:
        check_column_name(key)
    result = WriteResult(None, 0)
    try:
        with db.write():
            tbl = db.table(table, missing_ok=True)
            if tbl is not None and key is not None and key != tbl.key_col:
                raise BadInput(f"table {tbl.name!r} is keyed by {tbl.key_col!r}, not {key!r}")
            saver = _Saver(db, tbl, table, key or (tbl.key_col if tbl else "id"), meta or {}, collect_keys)
            if not feed(saver):
                raise InvalidObject("nothing to save: the input holds no objects")
            saver.finish()
            result.keys = saver.keys
            result.count = saver.changed
            if saver.writer is None or saver.changed == 0:
                raise _NoChange
            result.commit = saver.writer.seal()
    except _NoChange:
        result.commit = None
    return result


class _Saver:
    """The hot path of save: one pass per batch, hashing in Python a column at a time (prepare.py),
    writing with multi-row INSERTs (multirow.py)."""

    def __init__(self, db, tbl, name, key_col, meta, collect_keys):
        self.db, self.tbl, self.name, self.key_col = db, tbl, name, key_col
        self.meta = meta
        self.collect = collect_keys
        self.keys = []
        self.changed = 0
        self.writer: CommitWriter | None = None
        self.algo = db.hash_algo
        self.sha = rowtext.hasher(self.algo)
        self.pos = 0
        self.known_json = set(tbl.json_columns) if tbl else set()
        self.known_bool = set(tbl.bool_columns) if tbl else set()
        self.created_here = tbl is None
        self.optimistic = None

    def admit(self, batch):
        """Check every object, give keys to those without, add new attributes as columns (the first
        batch creates the table and starts the commit)."""
        key_col = self.key_col
        normalize(batch, key_col, self.pos, self.tbl is not None and self.tbl.int_key)
        cols = self.tbl.columns if self.tbl else [key_col]
        known = set(cols)
        lower = {c.lower(): c for c in cols}
        new_cols = []
        for obj in (() if all(map(known.issuperset, batch)) else batch):
            if not known.issuperset(obj):
                for a in obj:
                    if a in known:
                        continue
                    check_column_name(a)
                    clash = lower.get(a.lower())
                    if clash is not None:
                        raise InvalidName(
                            f"attribute {a!r} clashes with column {clash!r}: SQLite column names ignore case")
                    known.add(a)
                    lower[a.lower()] = a
                    new_cols.append(a)
        if self.tbl is None:
            self.tbl = _create_table(self.db, self.name, key_col, new_cols)
            self._mute_triggers()
        else:
            if self.writer is None:
                self._mute_triggers()
            for c in new_cols:
                self.db.conn.execute(f"ALTER TABLE {self.tbl.q} ADD COLUMN {quote(c)}")
            if new_cols:
                self.tbl.columns = self.tbl.columns + new_cols
        if self.writer is None:
            self.writer = CommitWriter(self.db, self.meta)

    def _mute_triggers(self):
        """See Database.muted_triggers: off for the save, back on in finish()."""
        self.db.mute_triggers(self.tbl)
        self._muted = True

    def finish(self):
        if getattr(self, "_muted", False):
            self.db.unmute_triggers(self.tbl)
            self._muted = False

    def add_batch(self, batch):
        self.admit(batch)
        if self.tbl.affinities:
            batch = affinity.coerce(self.db.conn, self.tbl.affinities, batch, self.key_col, self.tbl.int_key,
                                    self.pos)
        self.add_prepared(compute_columns(batch, self.tbl.columns, self.key_col, self.algo, self.known_json))

    def _optimistic(self) -> bool:
        """Whether batches may go in with a plain INSERT, without looking their keys up first (most bulk
        saves bring new keys only; a key that exists makes the INSERT fail, and the batch is redone with
        lookups). Not when keys were deleted outside nsl and not yet committed: they have a live version
        but no row, which a plain INSERT would not notice. (An object in conflict with a live leaf
        always has its row: the table shows a live leaf whenever there is one.)"""
        if self.optimistic is None:
            self.optimistic = not self.db.conn.execute(
                "SELECT 1 FROM nsl_pending WHERE tid=? LIMIT 1", (self.tbl.tid,)).fetchone()
        return self.optimistic

    def add_prepared(self, p: Prepared):
        """Write a batch prepared here or in a worker: when all its keys are new, two multi-row INSERTs
        and one hash update; otherwise (or if columns were added since it was prepared) the general
        path."""
        tbl, w, conn = self.tbl, self.writer, self.db.conn
        p = hash_rows(p, self.algo)
        if p.new_bool and not self.known_bool.issuperset(p.new_bool):
            conn.executemany("INSERT OR IGNORE INTO nsl_bool_column(tid, name) VALUES (?, ?)",
                             [(tbl.tid, c) for c in p.new_bool])
            self.known_bool |= p.new_bool
        if p.cols != tbl.columns or not self._optimistic():
            self.add_rows(rows_of(p), p.new_json, p.cols, p.count)
            return
        self._note_json(p.new_json)
        n, m = len(p.cols), len(p.keys)
        chain = itertools.chain.from_iterable
        conn.execute("SAVEPOINT nsl_batch")
        try:
            insert_many(conn, self._insert_head(), self._row_sql(n), n, chain(zip(*p.values)), m)
            # vid is left to SQLite: the next rowids, in order, which is what take_vids gives. The
            # constants of every line are SQL literals, so each line binds four parameters, not eight.
            insert_many(conn, "INSERT INTO nsl_version(cid, tbl, key, op, uuid, digest, parents, content) VALUES ",
                        f"({int(w.cid)}, {sql_literal(tbl.name)}, ?, 'I', ?, ?, NULL, ?)", 4,
                        chain(zip(p.keys, p.uuids, p.digests, p.contents)), m)
        except sqlite3.IntegrityError:
            conn.execute("ROLLBACK TO nsl_batch")
            conn.execute("RELEASE nsl_batch")
            self.add_rows(rows_of(p), p.new_json, p.cols, p.count)
            return
        conn.execute("RELEASE nsl_batch")
        w.add_inserts(tbl.name, p.uuids, p.digests)
        self.pos += p.count
        self.changed += m
        if self.collect:
            self.keys.extend(p.keys)

    def _insert_head(self) -> str:
        return f"INSERT INTO {self.tbl.q} ({', '.join(quote(c) for c in self.tbl.columns)}) VALUES "

    @staticmethod
    def _row_sql(n: int) -> str:
        return "(" + ", ".join("?" * n) + ")"

    def _note_json(self, new_json):
        """Record columns that got nested JSON for the first time (query predicates need to know)."""
        new_json = new_json - self.known_json
        if new_json:
            self.db.conn.executemany("INSERT OR IGNORE INTO nsl_json_column(tid, name) VALUES (?, ?)",
                                     [(self.tbl.tid, c) for c in new_json])
            self.known_json |= new_json

    def add_rows(self, rows: dict, new_json: set, cols: list, count: int):
        """Write rows computed by compute_rows (here or in a worker process) for columns `cols`."""
        tbl = self.tbl
        if cols != tbl.columns:
            rows = _widen(rows, cols, tbl.columns, self.sha)
        self.pos += count
        self._note_json(new_json)
        if self.collect:
            self.keys.extend(rows)
        self._write(rows, len(tbl.columns))

    def _existing(self, keys):
        """key -> (vid, uuid, cid) of the current version of each key that has one."""
        out = {}
        conn, name = self.db.conn, self.tbl.name
        for i in range(0, len(keys), 500):
            part = keys[i:i + 500]
            q = ",".join("?" * len(part))
            # The bare columns come from the row holding max(vid): the object's last line.
            for k, vid, uuid, cid, op, digest in conn.execute(
                    f"SELECT key, max(vid), uuid, cid, op, digest FROM nsl_version WHERE tbl=? AND key IN ({q}) "
                    f"GROUP BY key", (name, *part)):
                if op != "D":
                    out[k] = (vid, uuid, cid, digest)
        if conflicts.has_any(self.db, name):
            # An object with several leaves: the new version merges them (its parents are every
            # live leaf), so it is written even when it equals the version shown.
            for k in keys:
                if k in out and self.writer is not None and out[k][2] == self.writer.cid:
                    continue  # already given its merging line earlier in this save
                shown = conflicts.shown_row(self.db, name, k)
                if shown is None:
                    continue
                row = conn.execute("SELECT vid, uuid, cid, digest FROM nsl_version WHERE vid = ? AND op != 'D'",
                                   (shown[0],)).fetchone()
                parents = conflicts.live_parents(self.db, name, k, row[1] if row else None)
                if row is None and parents is None:
                    out.pop(k, None)
                else:
                    out[k] = (row[0] if row else None, parents, None, None, True)
        return out

    def _write(self, rows: dict, n: int):
        # Optimistic (see _optimistic): insert first, look the keys up only if that fails.
        conn = self.db.conn
        if not self._optimistic():
            self._write_rows(rows, n, self._existing(list(rows)), plain=False)
            return
        conn.execute("SAVEPOINT nsl_batch")
        cp = self.writer.checkpoint()
        try:
            self._write_rows(rows, n, {}, plain=True)
        except sqlite3.IntegrityError:
            self.writer.rollback_to(cp)
            conn.execute("ROLLBACK TO nsl_batch")
            conn.execute("RELEASE nsl_batch")
            self._write_rows(rows, n, self._existing(list(rows)), plain=False)
        else:
            conn.execute("RELEASE nsl_batch")

    def _write_rows(self, rows: dict, n: int, existing: dict, plain: bool):
        db, tbl, w = self.db, self.tbl, self.writer
        cid, name = w.cid, tbl.name
        ins_versions, user_rows, inplace = [], [], []
        vid = w.next_vid
        for k, (vals, uuid, digest, content) in rows.items():
            old = existing.get(k)
            if old is None:
                ins_versions.append((vid, cid, name, k, "I", uuid, digest, None, content))
                vid += 1
            elif len(old) > 4:  # in conflict: always a new line, naming every live leaf
                ins_versions.append((vid, cid, name, k, "U", uuid, digest, old[1], content))
                vid += 1
            elif old[1] == uuid or _same_but_wider(content, old[3], self.sha):
                continue
            elif old[2] == cid:
                inplace.append((uuid, digest, content, old[0]))
            else:
                ins_versions.append((vid, cid, name, k, "U", uuid, digest, old[1], content))
                vid += 1
            user_rows.append(vals)
        w.next_vid = vid
        try:
            insert_many(db.conn, self._insert_head(), self._row_sql(n), n, itertools.chain.from_iterable(user_rows),
                        len(user_rows), "" if plain else self.tbl.upsert_tail())
        except sqlite3.IntegrityError as e:
            if plain:
                raise
            raise InvalidObject(f"table {name!r} refused an object: {e}") from None
        except sqlite3.OperationalError as e:
            if "ON CONFLICT clause does not match" in str(e):
                raise InvalidObject(
                    f"table {name!r} has no unique index on its key column {tbl.key_col!r}") from None
            raise
        w.insert_lines(ins_versions)
        if inplace:
            db.conn.executemany("UPDATE nsl_version SET uuid=?, digest=?, content=? WHERE vid=?", inplace)
            w.dirty = True
        self.changed += len(user_rows)


def _widen(rows: dict, old_cols: list, cols: list, sha) -> dict:
    """Rows computed before columns were added: the new columns are absent in each of them."""
    extra = len(cols) - len(old_cols)
    hdr = header(cols) + "\n"
    out = {}
    for k, (vals, _, _, content) in rows.items():
        vals = list(vals) + [None] * extra
        content = hdr + content.partition("\n")[2] + "|-" * extra
        out[k] = (vals, sha(rowtext.row_text(vals)).hexdigest(), sha(content.encode()).hexdigest(), content)
    return out


def _same_but_wider(content: str, old_digest: str, sha) -> bool:
    """Whether a new version only differs from the old one by columns added to the table since,
    which this object does not have: then it is the same object, not a change."""
    head, _, body = content.partition("\n")
    if not body.endswith("|-"):
        return False
    cells = body.split("|")
    m = len(cells)
    while m > 1 and cells[m - 1] == "-":
        m -= 1
    narrow = "|".join(head.split("|")[:m]) + "\n" + "|".join(cells[:m])
    return sha(narrow.encode()).hexdigest() == old_digest


# ---- reading -------------------------------------------------------------------------------------

def _row_object(columns, values, content, db: Database | None = None, table: str | None = None,
                key_col: str | None = None):
    """The exact JSON object of a row: from its version's typed encoding when the row matches it,
    else from the history version with the same row text (a checked-out or restored state), else
    (a change made outside nsl, not yet committed) from the SQL values alone."""
    obj = _exact_object(columns, values, content)
    if obj is not None:
        return obj
    if db is not None:
        merged = _merged_for(db, table, columns, values, key_col)
        if merged is not None:
            return merged
        found = version_by_row_text(db, table, columns, values, key_col)
        if found is not None:
            return to_object(*rowtext.decode_content(found[2]))
    return plain_object(columns, values)


def _merged_for(db: Database, table, columns, values, key_col):
    """The object of a row showing content merged from several leaves (merge-fields), if it is one."""
    if key_col is None or key_col not in columns or not conflicts.has_any(db, table):
        return None
    content = conflicts.merged_content(db, table, values[columns.index(key_col)])
    if content is None:
        return None
    ccols, cvals, ckinds = rowtext.decode_content(content)
    by_name = dict(zip(columns, values))
    if all(type(by_name.get(c)) is type(v) and by_name.get(c) == v for c, v in zip(ccols, cvals)):
        return to_object(ccols, cvals, ckinds)
    return None


def _exact_object(columns, values, content) -> dict | None:
    """The object of a row that holds exactly the values of its version's typed encoding, else None."""
    return None if content is None else exact_object(columns, values, content)


def version_by_row_text(db: Database, table: str, columns, values, key_col: str | None = None):
    """(uuid, digest, content) of a history version whose typed values are exactly this row's."""
    if key_col is None:
        key_col = db.table(table).key_col
    if key_col not in columns:
        return None
    key = values[columns.index(key_col)]
    h = rowtext.hasher(db.hash_algo)
    n = len(values)
    while True:
        uuid = h(rowtext.row_text(values[:n])).hexdigest()
        for found in db.conn.execute(
                "SELECT uuid, digest, content FROM nsl_version WHERE tbl=? AND key=? AND uuid=? LIMIT 3",
                (table, key, uuid)):
            ccols, cvals, _ = rowtext.decode_content(found[2])
            if ccols == columns[:len(ccols)] and _same_values(values, cvals):
                return found
        # Columns added after a version was made print as trailing empty cells now.
        if n == 0 or values[n - 1] is not None:
            return None
        n -= 1


def _same_values(row, vvals) -> bool:
    """Whether the row holds exactly these values, then NULLs only (columns added since)."""
    n = len(vvals)
    if len(row) < n:
        return False
    head = row[:n] if len(row) > n else row
    # Equal as lists, then of the same types (1 == 1.0 == True): compared in C, a read's hot path.
    return (head == vvals and list(map(type, head)) == list(map(type, vvals))
            and (len(row) == n or row[n:].count(None) == len(row) - n))


def key_candidates(key) -> list:
    """A key typed on a command line may name a text key or an integer key."""
    if isinstance(key, str):
        out = [key]
        s = key.strip()
        digits = s[1:] if s.startswith("-") else s
        if digits.isascii() and digits.isdigit():
            n = int(s)
            if INT64_MIN <= n <= INT64_MAX:
                out.append(n)
        return out
    return [key]


def _find_row_sql(tbl: Table, n: int) -> str:
    return (f"SELECT t.*, v.content FROM {tbl.q} AS t LEFT JOIN nsl_version v ON v.vid = "
            f"{current_version('?', 't.' + tbl.qkey)} AND v.op != 'D' WHERE t.{tbl.qkey} IN ({','.join('?' * n)})")


def _find_row(db: Database, tbl: Table, key):
    """The user row of `key` (any of its candidates) with its current version's content, or None."""
    cands = key_candidates(key)
    return db.conn.execute(tbl.sql("find_row", _find_row_sql, len(cands)), (tbl.name, *cands)).fetchone()


def get(db: Database, table: str, key) -> dict:
    """The object with `key` in `table`: as saved, or as its row now holds it (see _row_object)."""
    if not db.conn.in_transaction:
        obj = _get_in_one_statement(db, table, key)
        if obj is not None:
            return obj
    with db.read():
        tbl = db.table(table)
        row = _find_row(db, tbl, key)
        if row is None:
            raise UnknownObject(f"no object with key {key!r} in table {tbl.name!r}", table=tbl.name, key=key)
        return _row_object(tbl.columns, list(row[:-1]), row[-1], db, tbl.name, tbl.key_col)


def _get_sql(tbl: Table, n: int) -> str:
    return (f"SELECT t.*, v.content, {Database.DATA_VERSION_COLUMN} FROM {tbl.q} AS t LEFT JOIN nsl_version v ON v.vid = "
            f"{current_version('?', 't.' + tbl.qkey)} AND v.op != 'D' WHERE t.{tbl.qkey} IN ({','.join('?' * n)})")


def _get_in_one_statement(db: Database, table: str, key) -> dict | None:
    """The usual case of get, in one statement (its own snapshot): the row, its current version, and
    the data_version that says whether the table's kept metadata still held then (Database.confirm).
    None whenever that is not all it takes (no such row, metadata changed since, a row that differs
    from its version): get then reads again in one transaction, where every case is handled."""
    tbl = db.table(table)
    cands = key_candidates(key)
    try:
        row = db.conn.execute(tbl.sql("get", _get_sql, len(cands)), (tbl.name, *cands)).fetchone()
    except sqlite3.OperationalError as e:
        if str(e).startswith("no such"):
            return None  # kept metadata of a table or key column that is gone
        raise
    if row is None or not db.confirm(row[-1]):
        return None
    return _exact_object(tbl.columns, list(row[:-2]), row[-2])


def resolve_key(db: Database, tbl: Table, key):
    """The stored key value a (possibly textual) key names, from the user table or the history."""
    row = _find_row(db, tbl, key)
    if row is not None:
        return row[tbl.columns.index(tbl.key_col)]
    for c in key_candidates(key):
        if db.conn.execute("SELECT 1 FROM nsl_version WHERE tbl=? AND key=? LIMIT 1", (tbl.name, c)).fetchone():
            return c
    raise UnknownObject(f"no object with key {key!r} in table {tbl.name!r}", table=tbl.name, key=key)


def find(db: Database, table: str, where: dict | None = None, *, sort=None, limit: int | None = None,
         skip: int | None = None, fields: list[str] | None = None) -> Iterator[dict]:
    """Objects of `table` matching a MongoDB-style predicate, as an iterator of dicts."""
    tbl = db.table(table)
    if limit is not None and limit < 0:
        raise BadInput("--limit must be 0 or more")
    if skip is not None and skip < 0:
        raise BadInput("--skip must be 0 or more")
    sql, params = find_sql(tbl, where, sort)
    sql += " LIMIT ? OFFSET ?"
    params = [*params, -1 if limit is None else limit, skip or 0]
    picker = _picker(fields)
    # Everything that can be wrong with the request fails here, before the first object is yielded.
    cur = db.conn.execute(sql, params)
    return _objects(db, tbl, cur, picker)


def _objects(db: Database, tbl: Table, cur, picker) -> Iterator[dict]:
    cols = tbl.columns
    while True:
        rows = cur.fetchmany(1000)
        if not rows:
            break
        for r in rows:
            obj = _row_object(cols, list(r[:-1]), r[-1], db, tbl.name, tbl.key_col)
            yield picker(obj) if picker else obj


def find_sql(tbl: Table, where, sort) -> tuple[str, list]:
    fields = query.Fields(tbl.columns, tbl.json_columns, key=tbl.key_col, rowid=tbl.has_rowid,
                          bool_columns=tbl.bool_columns, table=tbl.name)
    cond, params = query.compile_where(where, fields)
    order = query.compile_sort(sort, fields)
    sql = (f"SELECT t.*, v.content FROM {tbl.q} AS t LEFT JOIN nsl_version AS v ON v.vid = "
           f"{current_version('?', 't.' + tbl.qkey)} AND v.op != 'D' WHERE {cond}")
    if order:
        sql += f" ORDER BY {order}"
    return sql, [tbl.name, *params]


def _picker(fields):
    if not fields:
        return None
    paths = [f.split(".") for f in fields]
    for f in fields:
        if not f or any(not p for p in f.split(".")):
            raise BadInput(f"invalid field {f!r} in --fields")

    def pick(obj):
        out = {}
        for path in paths:
            cur = obj
            ok = True
            for p in path:
                if isinstance(cur, dict) and p in cur:
                    cur = cur[p]
                else:
                    ok = False
                    break
            if ok:
                dst = out
                for p in path[:-1]:
                    dst = dst.setdefault(p, {})
                dst[path[-1]] = cur
        return out
    return pick


# ---- deleting ------------------------------------------------------------------------------------

def delete(db: Database, table: str, keys: list | None = None, *, where: dict | None = None,
           message=None, author=None, meta=None) -> WriteResult:
    """Delete objects by key or by predicate, in one commit. Unknown keys change nothing."""
    with db.write():
        tbl = db.table(table)
        if where is not None:
            sql, params = find_sql(tbl, where, None)
            ki = tbl.columns.index(tbl.key_col)
            targets = [r[ki] for r in db.conn.execute(sql, params)]
        else:
            targets, missing = [], []
            for k in keys or []:
                row = _find_row(db, tbl, k)
                if row is None:
                    missing.append(k)
                else:
                    targets.append(row[tbl.columns.index(tbl.key_col)])
            if missing:
                raise UnknownObject(
                    f"no object with key {', '.join(map(repr, missing))} in table {tbl.name!r}; nothing deleted",
                    table=tbl.name, keys=missing)
        targets = list(dict.fromkeys(targets))
        if not targets:
            return WriteResult(None, 0, [])
        lines, w = [], None
        for k in targets:
            cur = db.conn.execute(
                f"SELECT uuid FROM nsl_version WHERE vid = {current_version('?', '?')} AND op != 'D'",
                (tbl.name, k)).fetchone()
            if cur is not None:
                w = w or CommitWriter(db, _meta(message, author, meta))
                lines.append((w.take_vids(1), w.cid, tbl.name, k, "D", None, None,
                              conflicts.live_parents(db, tbl.name, k, cur[0]), None))
        if lines:
            w.insert_lines(lines)
        for i in range(0, len(targets), 500):
            part = targets[i:i + 500]
            q = ",".join("?" * len(part))
            db.conn.execute(f"DELETE FROM {tbl.q} WHERE {tbl.qkey} IN ({q})", part)
        # Keys only ever saved outside nsl and never committed leave no line; they are simply gone.
        db.conn.executemany("DELETE FROM nsl_pending WHERE tid=? AND key=?", [(tbl.tid, k) for k in targets])
        if not lines:
            return WriteResult(None, len(targets), targets)
        return WriteResult(w.seal(), len(targets), targets)


# ---- changes made outside nsl --------------------------------------------------------------------

@dataclass
class Change:
    table: str
    key: object
    op: str                 # added, modified, deleted
    old: dict | None
    new: dict | None

    def to_dict(self):
        return {"table": self.table, "key": self.key, "change": self.op, "old": self.old, "new": self.new}


def status(db: Database) -> list[Change]:
    """Uncommitted changes to tracked tables (made with any SQLite client), against the head."""
    out = []
    with db.read():
        for tbl, k, row, cur, _ in _pending_rows(db):
            change = _classify(db, tbl, row, cur)
            if change:
                op, old, new = change
                out.append(Change(tbl.name, k, op, old, new))
    return out


def _classify(db: Database, tbl: Table, row, cur):
    if row is None and cur is None:
        return None
    old, cvals, ckinds = None, [], []
    if cur is not None:
        ccols, cvals, ckinds = rowtext.decode_content(cur[2])
        old = to_object(ccols, cvals, ckinds)
        if row is not None and ccols == tbl.columns[:len(ccols)] and _same_values(row, cvals):
            return None
        cvals, ckinds = _aligned(ccols, cvals, ckinds, tbl.columns)
    if row is None:
        return "deleted", old, None
    found = version_by_row_text(db, tbl.name, tbl.columns, row, tbl.key_col)
    if found is not None:
        new = to_object(*rowtext.decode_content(found[2]))
    else:
        # What `nsl commit` will record: the row's values with the kinds they had before, where they fit.
        kinds = inherit_kinds(row, cvals, ckinds) if cur is not None else inherit_kinds(row, [], [])
        new = to_object(tbl.columns, row, kinds)
    return ("modified" if cur else "added"), old, new


def _aligned(ccols, cvals, ckinds, columns):
    """A version's values and kinds laid out for the table's columns now, for kinds to carry over: as
    they are when the version's columns begin the table's, by position when the columns were renamed
    (as many as before), else by name."""
    if ccols == columns[:len(ccols)] or len(ccols) == len(columns):
        return cvals, ckinds
    at = {c: i for i, c in enumerate(ccols)}
    return ([cvals[at[c]] if c in at else None for c in columns],
            [ckinds[at[c]] if c in at else None for c in columns])


def reshaped_tables(db: Database) -> list[Table]:
    """Tracked tables whose schema was changed outside nsl (with the sqlite3 shell, say): dropped, a
    column renamed or dropped (the newest version names a column the table no longer has), or their
    change-tracking triggers gone (the table was dropped and made again). Every object of such a
    table is a pending change: status shows it, and commit records it."""
    out = []
    master = db.conn.execute("SELECT type, name FROM sqlite_master WHERE type IN ('table', 'trigger')").fetchall()
    tables = {n for t, n in master if t == "table"}
    triggers = {n for t, n in master if t == "trigger"}
    for tbl in db.tables():
        if tbl.columns and tbl.key_col not in tbl.columns:
            raise KeyColumnMissing(
                f"table {tbl.name!r} has no column {tbl.key_col!r} any more, the key nsl tracks its objects by",
                hint=f"rename the column back: sqlite3 DB 'ALTER TABLE {tbl.q} RENAME COLUMN ... TO {tbl.qkey}'",
                table=tbl.name)
        if tbl.name not in tables or not {f"nsl_{op}_{tbl.tid}" for op in ("ins", "upd", "del")} <= triggers:
            out.append(tbl)
            continue
        # The newest version has the most columns (nsl only adds columns); most often it is among the
        # last lines written, which a scan from the end finds at once, else the index does.
        row = db.conn.execute(
            "SELECT content FROM (SELECT tbl, op, content FROM nsl_version ORDER BY vid DESC LIMIT 20000) "
            "WHERE tbl = ? AND op != 'D' LIMIT 1", (tbl.name,)).fetchone() or db.conn.execute(
            "SELECT content FROM nsl_version WHERE vid = (SELECT max(vid) FROM nsl_version WHERE tbl = ? "
            "AND op != 'D')", (tbl.name,)).fetchone()
        if row is not None and not set(rowtext.header_names(row[0].partition("\n")[0])) <= set(tbl.columns):
            out.append(tbl)
    return out


# Keys of the objects live at the head of a table's history (one parameter: the table's name).
_LIVE_KEYS = "SELECT key FROM (SELECT key, op, max(vid) FROM nsl_version WHERE tbl = ? GROUP BY key) WHERE op != 'D'"


def _pending_rows(db: Database, skip_restored: bool = False, reshaped: list[Table] | None = None):
    """Per pending key, in one query per table: (tbl, key, row values or None, current version
    (vid, uuid, content) or None, restored version hint (uuid, digest, content) or None).
    skip_restored leaves out rows `nsl restore` put back and nothing changed since. Every object of a
    table reshaped outside nsl (see reshaped_tables) is pending."""
    if reshaped is None:
        reshaped = reshaped_tables(db)
    whole = {t.tid: t for t in reshaped}
    for tid, tbl in whole.items():
        if not tbl.columns:  # the table was dropped: each of its objects was deleted
            for k, vid, uuid, content in db.conn.execute(
                    f"SELECT v.key, v.vid, v.uuid, v.content FROM ({_LIVE_KEYS}) p "
                    f"JOIN nsl_version v ON v.vid = {current_version('?', 'p.key')} ORDER BY p.key",
                    (tbl.name, tbl.name)).fetchall():
                yield tbl, k, None, (vid, uuid, content), None
    pending = [r[0] for r in db.conn.execute("SELECT DISTINCT tid FROM nsl_pending ORDER BY tid")]
    for tid in sorted(set(pending) | {t for t, tbl in whole.items() if tbl.columns}):
        tbl = whole.get(tid) or db.table_by_tid(tid)
        if not tbl.columns:
            continue
        n = len(tbl.columns)
        if tid in whole:
            keys = (f"(SELECT k.key, NULL AS vid FROM ({_LIVE_KEYS} UNION "
                    f"SELECT {tbl.qkey} FROM {tbl.q}) k)")
            params = (tbl.name, tbl.name)
        else:
            keys, params = "nsl_pending", (tbl.name, tid)
        cur = db.conn.execute(
            f"SELECT p.key, t.{tbl.qkey} IS NOT NULL, v.vid, v.uuid, v.content, h.uuid, h.digest, h.content, t.* "
            f"FROM {keys} p LEFT JOIN {tbl.q} t ON t.{tbl.qkey} = p.key "
            f"LEFT JOIN nsl_version v ON v.vid = {current_version('?', 'p.key')} AND v.op != 'D' "
            f"LEFT JOIN nsl_version h ON h.vid = p.vid WHERE "
            + ("p.key IS NOT NULL " if tid in whole else "p.tid = ? ")
            + (f"AND NOT (p.vid IS NOT NULL AND t.{tbl.qkey} IS NOT NULL) " if skip_restored else "")
            + "ORDER BY p.key", params)
        while True:
            batch = cur.fetchmany(2000)
            if not batch:
                break
            for r in batch:
                row = list(r[8:8 + n]) if r[1] else None
                yield (tbl, r[0], row, (r[2], r[3], r[4]) if r[2] is not None else None,
                       (r[5], r[6], r[7]) if r[5] is not None else None)


def _commit_restored(db: Database, w: CommitWriter) -> int:
    """Lines for the rows `nsl restore` put back, in one INSERT ... SELECT per table: each row is the
    version its hint names (an edit since would have cleared the hint), so nothing is hashed or
    even read into Python. Returns the number of lines."""
    n = 0
    for (tid,) in db.conn.execute(
            "SELECT DISTINCT tid FROM nsl_pending WHERE vid IS NOT NULL ORDER BY tid").fetchall():
        tbl = db.table_by_tid(tid)
        before = db.conn.execute("SELECT ifnull(max(vid), 0) FROM nsl_version").fetchone()[0]
        db.conn.execute(
            f"INSERT INTO nsl_version(cid, tbl, key, op, uuid, digest, parents, content) "
            f"SELECT ?, ?, p.key, CASE WHEN c.uuid IS NULL THEN 'I' ELSE 'U' END, h.uuid, h.digest, c.uuid, "
            f"h.content FROM nsl_pending p JOIN nsl_version h ON h.vid = p.vid "
            f"LEFT JOIN nsl_version c ON c.vid = {current_version('?', 'p.key')} AND c.op != 'D' "
            f"WHERE p.tid = ? AND c.uuid IS NOT h.uuid "
            f"AND EXISTS (SELECT 1 FROM {tbl.q} t WHERE t.{tbl.qkey} = p.key) ORDER BY p.key",
            (w.cid, tbl.name, tbl.name, tid))
        added = db.conn.execute("SELECT ifnull(max(vid), 0) FROM nsl_version").fetchone()[0] - before
        if added:
            n += added
            w.next_vid += added
            w.dirty = True  # these lines were not hashed as they went in: seal() reads them back
    return n


def commit_pending(db: Database, *, message=None, author=None, meta=None) -> WriteResult:
    """Record the changes made outside nsl (noted by the triggers) as one commit."""
    with db.write():
        w = CommitWriter(db, _meta(message, author, meta))
        algo = db.hash_algo
        lines, json_cols, bool_cols = [], [], []
        reshaped = reshaped_tables(db)
        for tbl, k, row, cur, hint in _pending_rows(db, skip_restored=True, reshaped=reshaped):
            if row is None:
                if cur is not None:
                    lines.append((w.take_vids(1), w.cid, tbl.name, k, "D", None, None,
                                  conflicts.live_parents(db, tbl.name, k, cur[1]), None))
                continue
            if hint is not None:
                # Put back by `nsl restore` and untouched since (an edit would have cleared the hint):
                # the row is that version, exact kinds and all, with no need to hash it again.
                if cur is not None and cur[1] == hint[0]:
                    continue
                uuid, digest, content = hint
            else:
                if cur is not None:
                    ccols, cvals, ckinds = rowtext.decode_content(cur[2])
                    if ccols == tbl.columns[:len(ccols)] and _same_values(row, cvals):
                        continue
                    kinds = inherit_kinds(row, *_aligned(ccols, cvals, ckinds, tbl.columns))
                else:
                    kinds = inherit_kinds(row, [], [])
                found = version_by_row_text(db, tbl.name, tbl.columns, row, tbl.key_col)
                if found is not None:
                    # The row is an earlier version brought back by hand: it keeps its exact kinds.
                    uuid, digest, content = found
                else:
                    for c, kd in zip(tbl.columns, kinds):
                        if kd == JSON:
                            json_cols.append((tbl.tid, c))
                        elif kd == TRUE or kd == FALSE:
                            bool_cols.append((tbl.tid, c))
                    uuid, digest, content = version_of(tbl.columns, row, kinds, algo)
            vid = w.take_vids(1)
            op, parents = ("U", conflicts.live_parents(db, tbl.name, k, cur[1])) if cur is not None else ("I", None)
            lines.append((vid, w.cid, tbl.name, k, op, uuid, digest, parents, content))
        if lines:
            w.insert_lines(lines)
        n = len(lines) + _commit_restored(db, w)
        db.conn.executemany("INSERT OR IGNORE INTO nsl_json_column(tid, name) VALUES (?, ?)", json_cols)
        db.conn.executemany("INSERT OR IGNORE INTO nsl_bool_column(tid, name) VALUES (?, ?)", bool_cols)
        db.conn.execute("DELETE FROM nsl_pending")
        for tbl in reshaped:
            if not tbl.columns:  # dropped: its deletions are recorded, and it is no longer tracked
                db.conn.execute("DELETE FROM nsl_json_column WHERE tid = ?", (tbl.tid,))
                db.conn.execute("DELETE FROM nsl_bool_column WHERE tid = ?", (tbl.tid,))
                db.conn.execute("DELETE FROM nsl_table WHERE tid = ?", (tbl.tid,))
            else:
                for stmt in schema.trigger_sql(tbl.tid, tbl.name, tbl.key_col):
                    db.conn.execute(stmt)
        if not n:
            raise NothingToCommit("nothing to commit: no tracked table changed since the last commit")
        return WriteResult(w.seal(), n, [])


def row_hash(db: Database, table: str, key) -> str:
    """SHA-1 (or the database's hash) of the row as the sqlite3 CLI prints it now."""
    tbl = db.table(table)
    cands = key_candidates(key)
    q = ",".join("?" * len(cands))
    row = db.conn.execute(f"SELECT * FROM {tbl.q} WHERE {tbl.qkey} IN ({q})", cands).fetchone()
    if row is None:
        raise UnknownObject(f"no object with key {key!r} in table {tbl.name!r}", table=tbl.name, key=key)
    return rowtext.hasher(db.hash_algo)(rowtext.row_text(row)).hexdigest()


def iter_json_input(stream) -> Iterator:
    """Objects from a binary stream holding one JSON value, a JSON array, or JSON lines."""
    from .values import loads

    first = b""
    while True:
        line = stream.readline()
        if not line:
            return
        if line.strip():
            first = line
            break
    stripped = first.lstrip()
    if stripped.startswith(b"["):
        value = loads(first + stream.read())
        yield from (value if isinstance(value, list) else [value])
        return
    try:
        value = loads(first)
    except InvalidJSON:
        # Not JSON lines: one JSON document spread over several lines.
        value = loads(first + stream.read())
        yield from (value if isinstance(value, list) else [value])
        return
    yield value
    lineno = 1
    while True:
        block = stream.readlines(1 << 20)
        if not block:
            return
        if not has_long_int(b"".join(block)):
            # The common case: no 19-digit run anywhere, so orjson parses every line exactly.
            try:
                objs = list(map(orjson.loads, filter(bytes.strip, block)))
            except orjson.JSONDecodeError:
                objs = None  # find the bad line below, for a precise message
            if objs is not None:
                lineno += len(block)
                yield from objs
                continue
        for line in block:
            lineno += 1
            if not line.strip():
                continue
            try:
                yield loads(line)
            except InvalidJSON as e:
                raise InvalidJSON(f"line {lineno}: {e.message}") from None
