"""The one place that opens a nsl database: connection settings, transactions, table metadata.

Table metadata (and anything else read through `Database.cached`) is kept per connection for as long as
the database has not changed under it: a stamp that any change moves (`Database.stamp`) is checked
before each use, or, inside `Database.tentative()`, by the statements that follow it; so a column added
or a token removed by another process is seen by the next read.
"""
from __future__ import annotations

import errno
import gc
import os
import secrets
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import (
    CheckedOut,
    InvalidName,
    Locked,
    NoDatabase,
    NotANslDatabase,
    UnknownTable,
)
from . import affinity, schema
from .schema import quote

DEFAULT_DB = "nsl.db"
# The page size of a file nsl creates (an existing file keeps its own). Larger than SQLite's 4096
# because every save writes each row twice over, as a user row and as a history line with its typed
# encoding: with 16 KiB pages a bulk save of 100,000 objects spends about a third less in SQLite
# (fewer pages to split, cache and write to the WAL, and the commit's checkpoint makes a quarter as
# many writes), while one object's lookup still reads a page or two per B-tree.
PAGE_SIZE = 16384


def busy_timeout() -> float:
    """Seconds a writer waits for another one before giving up (NSL_BUSY_TIMEOUT, default 10)."""
    try:
        return float(os.environ.get("NSL_BUSY_TIMEOUT", "10"))
    except ValueError:
        return 10.0


def resolve_path(path: str | os.PathLike | None) -> Path:
    """--db PATH, then NSL_DB, then ./nsl.db."""
    if path:
        return Path(path)
    env = os.environ.get("NSL_DB")
    return Path(env) if env else Path(DEFAULT_DB)


# The smallest page size: a file that is not empty and shorter than this is not a SQLite database.
MIN_SQLITE_FILE = 512


def _readable_size(p: Path) -> int:
    """The file's size, once it is known that this process may read it.

    Whether a file is SQLite's is asked of SQLite, never read with open(): closing any file descriptor
    of a database file drops every POSIX lock this process holds on it, those of its other open
    connections included (a server thread's, say), and such a connection then goes on reading a stale
    snapshot, blind to what other processes commit, or worse (sqlite.org/howtocorrupt.html, 2.2)."""
    try:
        size = p.stat().st_size
    except OSError as e:
        raise NoDatabase(f"cannot read {str(p)!r}: {e.strerror}") from None
    if not os.access(p, os.R_OK):
        raise NoDatabase(f"cannot read {str(p)!r}: {os.strerror(errno.EACCES)}")
    return size


def _not_a_database(e: sqlite3.DatabaseError) -> bool:
    return getattr(e, "sqlite_errorname", None) == "SQLITE_NOTADB" or "file is not a database" in str(e)


def check_table_name(name: str) -> str:
    if not isinstance(name, str) or not name or name.strip() != name:
        raise InvalidName(f"invalid table name {name!r}: names must be non-empty, without leading or trailing spaces")
    if any(ord(ch) < 32 for ch in name):
        raise InvalidName(f"invalid table name {name!r}: control characters are not allowed")
    if name.lower().startswith(("nsl_", "sqlite_")):
        raise InvalidName(f"invalid table name {name!r}: names starting with nsl_ or sqlite_ are reserved")
    return name


def check_column_name(name: str) -> str:
    if not isinstance(name, str) or not name:
        raise InvalidName("invalid attribute name '': attribute names must be non-empty")
    if any(ord(ch) < 32 for ch in name):
        raise InvalidName(f"invalid attribute name {name!r}: control characters are not allowed")
    if "." in name or name.startswith("$"):
        raise InvalidName(
            f"invalid attribute name {name!r}: '.' and a leading '$' are reserved for query paths and operators"
        )
    return name


@dataclass
class Table:
    tid: int
    name: str
    key_col: str
    columns: list[str]
    json_columns: set[str] = field(default_factory=set)
    has_rowid: bool = True
    # Columns with a declared type that converts values (an adopted table's; see affinity.py), and
    # whether the key is an INTEGER PRIMARY KEY (SQLite's rowid, which takes integers only).
    affinities: dict = field(default_factory=dict)
    int_key: bool = False
    bool_columns: set[str] = field(default_factory=set)  # columns that have held true or false
    # SQL built for this table (see `sql`): it lives as long as the metadata it was built from.
    statements: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def q(self) -> str:
        return quote(self.name)

    @property
    def qkey(self) -> str:
        return quote(self.key_col)

    def upsert_tail(self, cols: list[str] | None = None) -> str:
        """` ON CONFLICT(key) DO UPDATE SET ...` for an INSERT of `cols` (default: every column); the
        table's other columns become NULL. An existing row is rewritten in place (REPLACE would delete
        it and insert it anew, and could delete rows that clash on another unique column). SQLite
        refuses it when the key has no unique index."""
        given = self.columns if cols is None else cols
        sets = [f"{quote(c)}=excluded.{quote(c)}" for c in given if c != self.key_col]
        sets += [f"{quote(c)}=NULL" for c in self.columns if c != self.key_col and c not in given]
        return f" ON CONFLICT({self.qkey}) DO " + (f"UPDATE SET {', '.join(sets)}" if sets else "NOTHING")

    def index_of(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.columns)}

    def sql(self, name, build, *args) -> str:
        """The statement `build(self, *args)` makes, built once per (name, args) for this Table."""
        k = (name, *args)
        text = self.statements.get(k)
        if text is None:
            text = self.statements[k] = build(self, *args)
        return text


class Database:
    """An open nsl database. Use `Database.open(path)` or `Database.init(path)`."""

    def __init__(self, path: Path, conn: sqlite3.Connection):
        self.path = path
        self.conn = conn
        self._in_write = False
        self._writes = 0            # write() blocks ended on this connection (committed or not)
        self._in_read = False       # inside a read() that began the transaction
        self._read_stamp = None     # (schema_version, data_version) of that transaction's snapshot
        self._cache: dict = {}
        self._cache_stamp = None
        self._tentative: _Tentative | None = None

    # ---- opening -------------------------------------------------------------------------------
    @staticmethod
    def _connect(path: Path, configure: bool = True) -> sqlite3.Connection:
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False,
                               timeout=busy_timeout())
        if configure:
            Database._configure(conn)
        return conn

    @staticmethod
    def _configure(conn: sqlite3.Connection) -> None:
        """Settings every nsl connection has; applied only once the file is known to be nsl's, since
        WAL mode rewrites the file's header."""
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=OFF")
        # Version uuids are random, so their index is written all over: give it room to stay in memory.
        conn.execute("PRAGMA cache_size=-65536")
        from . import query

        query.register_functions(conn)

    @classmethod
    def open(cls, path=None) -> "Database":
        p = resolve_path(path)
        if not p.exists():
            raise NoDatabase(f"no nsl database at {str(p)!r}")
        if p.is_dir():
            raise NotANslDatabase(f"{str(p)!r} is a directory, not a nsl database")
        size = _readable_size(p)
        not_sqlite = "give --db the path of a nsl database, or `nsl init` a new path"
        if size == 0:
            raise NotANslDatabase(f"{str(p)!r} is an empty file, not a nsl database")
        if size < MIN_SQLITE_FILE:
            raise NotANslDatabase(f"{str(p)!r} is not a SQLite database", hint=not_sqlite)
        # Look before configuring: a file that is not nsl's must be left exactly as it was.
        conn = cls._connect(p, configure=False)
        try:
            conn.execute("PRAGMA query_only=1")
            ok = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='nsl_meta'").fetchone()
            ok = ok and conn.execute("SELECT value FROM nsl_meta WHERE name='db_code'").fetchone()
            version = ok and conn.execute("SELECT value FROM nsl_meta WHERE name='schema_version'").fetchone()
            conn.execute("PRAGMA query_only=0")
        except sqlite3.DatabaseError as e:
            conn.close()
            if _not_a_database(e):  # SQLite's own check of the file's header (its magic string first)
                raise NotANslDatabase(f"{str(p)!r} is not a SQLite database", hint=not_sqlite) from None
            raise NotANslDatabase(f"{str(p)!r} is not a readable SQLite database ({e})", hint=not_sqlite) from None
        if not ok:
            conn.close()
            raise NotANslDatabase(f"{str(p)!r} is a SQLite file but not a nsl database")
        cls._configure(conn)
        db = cls(p, conn)
        if not version or int(version[0]) < schema.SCHEMA_VERSION:
            db._upgrade()
        return db

    def _upgrade(self):
        """Bring a file made by an older nsl up to this schema: tables are added, never changed, and
        the change-tracking triggers are made anew (version 3 made them work under any conflict policy,
        version 4 has them refuse changes while an old commit is checked out; version 5 added
        nsl_bool_column, filled here from the history)."""
        with self.write(check_checkout=False):
            before = int(self.meta("schema_version") or 0)
            for stmt in schema.statements(schema.ALL_TABLES):
                self.conn.execute(stmt)
            if before < 5:
                schema.record_bool_columns(self.conn)
            for tbl in self.tables():
                if self.conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?",
                                     (tbl.name,)).fetchone():
                    for stmt in schema.drop_trigger_sql(tbl.tid) + schema.trigger_sql(tbl.tid, tbl.name, tbl.key_col):
                        self.conn.execute(stmt)
            self.set_meta("schema_version", schema.SCHEMA_VERSION)

    @classmethod
    def init(cls, path=None, *, hash_algo: str = "sha1") -> tuple["Database", bool]:
        """Create a nsl database, or make an existing SQLite file one. Returns (db, created)."""
        p = resolve_path(path)
        if p.is_dir():
            raise InvalidName(f"{str(p)!r} is a directory")
        if hash_algo not in ("sha1", "sha256"):
            raise InvalidName(f"unknown hash {hash_algo!r}: use sha1 or sha256")
        if not p.parent.is_dir():
            raise NoDatabase(f"cannot create {str(p)!r}: there is no directory {str(p.parent)!r}",
                             hint="create the directory first, or give another path")
        existed = p.exists() and _readable_size(p) > 0
        if existed:
            if p.stat().st_size < MIN_SQLITE_FILE:
                raise NotANslDatabase(f"{str(p)!r} exists and is not a SQLite database")
            conn = cls._connect(p, configure=False)
            try:
                conn.execute("PRAGMA schema_version").fetchone()
            except sqlite3.DatabaseError as e:
                conn.close()
                if _not_a_database(e):
                    raise NotANslDatabase(f"{str(p)!r} exists and is not a SQLite database") from None
                raise NotANslDatabase(f"{str(p)!r} is not a readable SQLite database ({e})") from None
            cls._configure(conn)
        else:
            conn = cls._connect(p, configure=False)
            conn.execute(f"PRAGMA page_size={PAGE_SIZE}")  # only before WAL mode writes the header
            cls._configure(conn)
        db = cls(p, conn)
        with db.write(check_checkout=False):
            for stmt in schema.statements(schema.ALL_TABLES):
                conn.execute(stmt)
            created = db.meta("db_code") is None
            if created:
                db.set_meta("db_code", secrets.token_hex(20))
                db.set_meta("project_code", secrets.token_hex(20))
                db.set_meta("hash", hash_algo)
                db.set_meta("schema_version", schema.SCHEMA_VERSION)
                db.set_meta("created", now_iso())
        return db, created

    def close(self):
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- meta ------------------------------------------------------------------------------------
    def meta(self, name, default=None):
        row = self.conn.execute("SELECT value FROM nsl_meta WHERE name=?", (name,)).fetchone()
        return default if row is None else row[0]

    def set_meta(self, name, value):
        if value is None:
            self.conn.execute("DELETE FROM nsl_meta WHERE name=?", (name,))
        else:
            self.conn.execute("INSERT OR REPLACE INTO nsl_meta(name, value) VALUES (?, ?)", (name, value))

    @property
    def db_code(self) -> str:
        return self.meta("db_code")

    @property
    def hash_algo(self) -> str:
        return self.meta("hash", "sha1")

    # ---- transactions ----------------------------------------------------------------------------
    @contextmanager
    def write(self, *, check_checkout: bool = True, record_pending: bool = False):
        """One SQLite transaction for one nsl operation: all of it happens, or none of it.

        Waits for another writer up to the busy timeout, then raises Locked. nsl's own writes are hidden
        from the change-tracking triggers unless record_pending is set (restore leaves its changes
        pending on purpose).
        """
        if self._in_write:
            yield self
            return
        deadline = time.monotonic() + busy_timeout()
        while True:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) and "busy" not in str(e):
                    raise
                if time.monotonic() >= deadline:
                    raise Locked(
                        f"database {str(self.path)!r} is locked by another writer "
                        f"(waited {busy_timeout():g} s)"
                    ) from None
                time.sleep(0.05)
        self._in_write = True
        gc_was_on = gc_pause()
        try:
            has_busy = self.conn.execute(
                "SELECT 1 FROM sqlite_master WHERE name='nsl_busy'").fetchone()
            if check_checkout:
                co = self.meta("checkout")
                if co:
                    raise CheckedOut(
                        f"commit {co[:12]} is checked out; the database is read-only until you return",
                        hint="run `nsl checkout HEAD` to return to the newest state",
                    )
            if has_busy and not record_pending:
                self.conn.execute("INSERT INTO nsl_busy VALUES (1)")
            yield self
            if has_busy:
                self.conn.execute("DELETE FROM nsl_busy")
            self.conn.execute("COMMIT")
        except BaseException:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            raise
        finally:
            self._in_write = False
            self._writes += 1
            gc_resume(gc_was_on)

    def read(self) -> "_Read":
        """A consistent snapshot for reads spanning several statements: `with db.read(): ...`."""
        return _Read(self)

    # ---- what this connection keeps of the database -------------------------------------------
    # PRAGMA data_version as a result column: a statement that selects it says itself whether what is
    # kept still held in its snapshot (see `confirm`).
    DATA_VERSION_COLUMN = "(SELECT data_version FROM pragma_data_version)"

    def stamp(self) -> tuple:
        """A value that differs whenever the database may have changed since it was last taken.

        (schema_version, data_version, total_changes, writes): PRAGMA schema_version moves with any
        schema change (by any connection, this one included), PRAGMA data_version with any commit by
        another connection (another process, or another server thread), the connection's
        total_changes with its own row changes, and the count of its write() blocks with its own
        writes through nsl, schema changes included. Inside a read() the snapshot cannot move, so the
        pragmas are read once per transaction (the first read also starts the snapshot, so what is
        read after it is as of the stamp); outside one, both come from one statement, one snapshot.
        """
        s = self._read_stamp
        if s is None:
            c = self.conn
            if self._in_read:
                s = self._read_stamp = (c.execute("PRAGMA schema_version").fetchone()[0],
                                        c.execute("PRAGMA data_version").fetchone()[0])
            else:
                s = c.execute(_BOTH_VERSIONS).fetchone()
        return (*s, self.conn.total_changes, self._writes)

    def confirm(self, data_version) -> bool:
        """Whether what this connection keeps still held in the snapshot of a statement that selected
        DATA_VERSION_COLUMN (which returned `data_version`). When not, it is dropped: read again.

        The rest of the stamp is this connection's own: its rows changed and its write() blocks
        (schema_version is not asked: another connection's schema change moves data_version too, and
        this one's, through nsl, happen in write()). So a statement's own check is only as good as
        that: for a connection used through nsl alone, such as a server's."""
        kept = self._cache_stamp
        same = (kept is not None and kept[1] == data_version and kept[2] == self.conn.total_changes
                and kept[3] == self._writes)
        if not same:
            self._cache.clear()
            self._cache_stamp = None  # unknown until a whole stamp is taken again
        self._note_check(same)
        return same

    def _check(self, stamp) -> bool:
        same = stamp == self._cache_stamp
        if not same:
            self._cache.clear()
            self._cache_stamp = stamp
        self._note_check(same)
        return same

    def _note_check(self, same: bool) -> None:
        t = self._tentative
        if t is not None:
            t.checked = True
            if not same and t.used:
                t.stale = True

    def cached(self, key, build, *args):
        """`build(*args)`, or what it returned for `key` before if the database has not changed since.

        For small things read on every request (table metadata, tokens). The stamp is taken before
        `build` reads, so a change made meanwhile only makes the next call read again. Inside write()
        nothing is kept or reused: a write changes what it reads, and may yet roll back. Inside
        tentative() and outside a transaction, a kept value is returned without asking (see there).
        """
        if self._in_write:
            return build(*args)
        cache = self._cache
        t = self._tentative
        if t is not None and key in cache and not self.conn.in_transaction:
            t.used = True
            return cache[key]
        self._check(self.stamp())
        try:
            return cache[key]
        except KeyError:
            value = cache[key] = build(*args)
            return value

    def tentative(self) -> "_Tentative":
        """`with db.tentative() as t:` kept values are used as they are, without asking the database
        whether they still hold; the statements that select DATA_VERSION_COLUMN (and any stamp taken
        in the block) check them as the block goes, and if none did, the block's end asks once.
        Afterwards `t.ok` says whether all that was used still held: when not, the work must be done
        again (in a read(), say). For a connection used through nsl alone (see `confirm`): a server's,
        where a GET is then one statement, its own query checking the token and table metadata it
        was answered with. Nested blocks are part of the outermost one."""
        return self._tentative or _Tentative(self)

    # ---- tables ----------------------------------------------------------------------------------
    def table_columns(self, name: str) -> list[str]:
        return [r[1] for r in self.conn.execute(f"PRAGMA table_info({quote(name)})")]

    def tables(self) -> list[Table]:
        out = []
        for tid, name, key_col in self.conn.execute(
            "SELECT tid, name, key_col FROM nsl_table ORDER BY name"
        ).fetchall():
            out.append(self._table(tid, name, key_col))
        return out

    def _table(self, tid, name, key_col) -> Table:
        json_cols = {r[0] for r in self.conn.execute(
            "SELECT name FROM nsl_json_column WHERE tid=?", (tid,))}
        bool_cols = {r[0] for r in self.conn.execute("SELECT name FROM nsl_bool_column WHERE tid=?", (tid,))}
        try:
            self.conn.execute(f"SELECT rowid FROM {quote(name)} LIMIT 0")
            has_rowid = True
        except sqlite3.OperationalError:
            has_rowid = False  # a WITHOUT ROWID table adopted from an existing file
        info = self.conn.execute(f"PRAGMA table_info({quote(name)})").fetchall()
        int_key = has_rowid and any(r[1] == key_col and r[5] and (r[2] or "").upper() == "INTEGER" for r in info) \
            and sum(1 for r in info if r[5]) == 1
        return Table(tid, name, key_col, [r[1] for r in info], json_cols, has_rowid,
                     affinity.of_table(info), int_key, bool_cols)

    def table(self, name: str, *, missing_ok: bool = False) -> Table | None:
        """The tracked table `name` (matched ignoring case when no name matches exactly).

        Outside write() the Table is kept until the database changes (see `cached`): callers must not
        change it. Inside write() it is read afresh, and a writer may change its copy."""
        tbl = self.cached(("table", name), self._load_table, name)
        if tbl is None:
            if missing_ok:
                return None
            known = [r[0] for r in self.conn.execute("SELECT name FROM nsl_table ORDER BY name")]
            raise UnknownTable(
                f"no table {name!r}" + (f" (tables: {', '.join(known)})" if known else " (the database has no tables yet)"),
                table=name,
            )
        return tbl

    def _load_table(self, name: str) -> Table | None:
        row = self.conn.execute(
            "SELECT tid, name, key_col FROM nsl_table WHERE name=?", (name,)).fetchone()
        if row is None:
            row = self.conn.execute(
                "SELECT tid, name, key_col FROM nsl_table WHERE lower(name)=lower(?)", (name,)
            ).fetchone()
        return None if row is None else self._table(*row)

    def table_by_tid(self, tid: int) -> Table:
        row = self.conn.execute("SELECT tid, name, key_col FROM nsl_table WHERE tid=?", (tid,)).fetchone()
        return self._table(*row)

    @contextmanager
    def muted_triggers(self, tbl: Table):
        """Inside a write: the table's change-tracking triggers are dropped, then put back before the
        commit, so no other connection ever sees the table without them. nsl records its own bulk
        writes, and a trigger evaluated per row would cost a third of their time."""
        self.mute_triggers(tbl)
        yield
        # On an exception the transaction is rolled back, and that brings the triggers back.
        self.unmute_triggers(tbl)

    def mute_triggers(self, tbl: Table):
        assert self._in_write
        for stmt in schema.drop_trigger_sql(tbl.tid):
            self.conn.execute(stmt)

    def unmute_triggers(self, tbl: Table):
        for stmt in schema.trigger_sql(tbl.tid, tbl.name, tbl.key_col):
            self.conn.execute(stmt)

    def track_table(self, name: str, key_col: str) -> Table:
        """Register a user table that exists in SQLite and install its triggers (inside a write)."""
        cur = self.conn.execute("INSERT INTO nsl_table(name, key_col) VALUES (?, ?)", (name, key_col))
        tid = cur.lastrowid
        for stmt in schema.trigger_sql(tid, name, key_col):
            self.conn.execute(stmt)
        return self._table(tid, name, key_col)


_BOTH_VERSIONS = "SELECT (SELECT schema_version FROM pragma_schema_version), (SELECT data_version FROM pragma_data_version)"


class _Tentative:
    """The state of a Database.tentative() block (see there)."""

    __slots__ = ("db", "depth", "used", "checked", "stale")

    def __init__(self, db: Database):
        self.db = db
        self.depth = 0
        self.used = self.checked = self.stale = False   # a kept value used; a stamp checked; one changed

    def __enter__(self) -> "_Tentative":
        self.depth += 1
        self.db._tentative = self
        return self

    def __exit__(self, *exc) -> None:
        self.depth -= 1
        if self.depth:
            return
        db = self.db
        if self.used and not self.checked:
            db._check(db.stamp())  # nothing in the block said whether what it used still held: ask once
        db._tentative = None

    @property
    def ok(self) -> bool:
        return not self.stale


class _Read:
    """The context manager of Database.read (a class, not @contextmanager: a served GET enters two,
    and the generator machinery cost more than the BEGIN and COMMIT)."""

    __slots__ = ("db", "began")

    def __init__(self, db: Database):
        self.db = db
        self.began = False

    def __enter__(self) -> Database:
        db = self.db
        if not (db._in_write or db.conn.in_transaction):  # else: part of the transaction already open
            db.conn.execute("BEGIN")
            db._in_read = self.began = True
        return db

    def __exit__(self, *exc) -> None:
        if self.began:
            db = self.db
            db._in_read = False
            db._read_stamp = None
            if db.conn.in_transaction:
                db.conn.execute("COMMIT")


def gc_pause() -> bool:
    """Stop Python's cycle collector for a bulk operation; returns whether it was running.

    nsl's bulk work allocates hundreds of thousands of short-lived tuples and strings and no
    cycles; the collector would walk the growing heap again and again for nothing (measured:
    checkout and restore of 100,000 objects 15% faster without it)."""
    was_on = gc.isenabled()
    gc.disable()
    return was_on


def gc_resume(was_on: bool) -> None:
    if was_on:
        gc.enable()


def now_iso() -> str:
    """UTC ISO-8601 with milliseconds: the date format of commits."""
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"
