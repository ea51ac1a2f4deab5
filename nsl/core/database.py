"""The one place that opens a nsl database: connection settings, write transactions, table metadata."""
from __future__ import annotations

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
from . import schema
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

    @property
    def q(self) -> str:
        return quote(self.name)

    @property
    def qkey(self) -> str:
        return quote(self.key_col)

    def index_of(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.columns)}


class Database:
    """An open nsl database. Use `Database.open(path)` or `Database.init(path)`."""

    def __init__(self, path: Path, conn: sqlite3.Connection):
        self.path = path
        self.conn = conn
        self._meta_cache: dict = {}
        self._in_write = False

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
        # The file is never opened outside SQLite: closing any descriptor of a file drops every POSIX
        # lock this process holds on it, so a server thread opening the database would take away the
        # locks of the other threads' connections (and a checkpoint elsewhere could then delete the
        # WAL they write to). SQLite itself shares one descriptor per file within a process.
        if not os.access(p, os.R_OK):
            raise NoDatabase(f"cannot read {str(p)!r}: permission denied")
        not_sqlite = "give --db the path of a nsl database, or `nsl init` a new path"
        if p.stat().st_size == 0:
            raise NotANslDatabase(f"{str(p)!r} is an empty file, not a nsl database")
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
            if getattr(e, "sqlite_errorcode", None) == 26 or "not a database" in str(e):  # SQLITE_NOTADB
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
        """Bring a file made by an older nsl up to this schema: only tables are added, never changed."""
        with self.write(check_checkout=False):
            for stmt in schema.statements(schema.ALL_TABLES):
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
        existed = p.exists() and p.stat().st_size > 0
        if existed:
            probe = cls._connect(p, configure=False)
            try:
                probe.execute("PRAGMA query_only=1")
                probe.execute("SELECT count(*) FROM sqlite_master").fetchone()
            except sqlite3.DatabaseError:
                raise NotANslDatabase(f"{str(p)!r} exists and is not a SQLite database") from None
            finally:
                probe.close()
        conn = cls._connect(p, configure=False)
        if not existed:
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
            gc_resume(gc_was_on)

    @contextmanager
    def read(self):
        """A consistent snapshot for reads spanning several statements."""
        if self._in_write or self.conn.in_transaction:
            yield self
            return
        self.conn.execute("BEGIN")
        try:
            yield self
        finally:
            if self.conn.in_transaction:
                self.conn.execute("COMMIT")

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
        try:
            self.conn.execute(f"SELECT rowid FROM {quote(name)} LIMIT 0")
            has_rowid = True
        except sqlite3.OperationalError:
            has_rowid = False  # a WITHOUT ROWID table adopted from an existing file
        return Table(tid, name, key_col, self.table_columns(name), json_cols, has_rowid)

    def table(self, name: str, *, missing_ok: bool = False) -> Table | None:
        row = self.conn.execute(
            "SELECT tid, name, key_col FROM nsl_table WHERE name=?", (name,)).fetchone()
        if row is None:
            row = self.conn.execute(
                "SELECT tid, name, key_col FROM nsl_table WHERE lower(name)=lower(?)", (name,)
            ).fetchone()
        if row is None:
            if missing_ok:
                return None
            known = [r[0] for r in self.conn.execute("SELECT name FROM nsl_table ORDER BY name")]
            raise UnknownTable(
                f"no table {name!r}" + (f" (tables: {', '.join(known)})" if known else " (the database has no tables yet)"),
                table=name,
            )
        return self._table(*row)

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
