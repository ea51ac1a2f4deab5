"""nsl's own tables in a database file, and the triggers that catch changes made outside nsl.

Artifacts (immutable, hashed, what sync will exchange): nsl_commit headers and nsl_version lines.
Everything else is derived from them and `nsl rebuild` makes it again.
"""
from __future__ import annotations

SCHEMA_VERSION = 5

ARTIFACT_TABLES = """
CREATE TABLE IF NOT EXISTS nsl_meta(
  name TEXT PRIMARY KEY,
  value
) WITHOUT ROWID;

-- A commit artifact: header fields, its lines are the nsl_version rows with its cid.
CREATE TABLE IF NOT EXISTS nsl_commit(
  cid INTEGER PRIMARY KEY,
  uuid TEXT NOT NULL UNIQUE,
  db TEXT NOT NULL,
  date TEXT NOT NULL,
  parents TEXT NOT NULL,          -- parent uuids, sorted, space separated
  meta TEXT,                      -- canonical JSON or NULL
  objects_uuid TEXT NOT NULL,     -- hash of the I/U/D lines
  nlines INTEGER NOT NULL,
  vid_lo INTEGER,                 -- its lines are the nsl_version rows with vid_lo <= vid <= vid_hi
  vid_hi INTEGER
);

-- One row per commit line. content is the version's typed encoding (NULL for a deletion).
CREATE TABLE IF NOT EXISTS nsl_version(
  vid INTEGER PRIMARY KEY,
  cid INTEGER NOT NULL,
  tbl TEXT NOT NULL,
  key,
  op TEXT NOT NULL,               -- I, U or D
  uuid TEXT,                      -- version uuid (NULL for D)
  digest TEXT,                    -- typed digest (NULL for D)
  parents TEXT,                   -- parent version uuids, comma separated (U and D)
  content TEXT
);

-- A cluster artifact (sync): a line "cluster", then a line "M <artifact name>" per member, sorted.
CREATE TABLE IF NOT EXISTS nsl_cluster(
  kid INTEGER PRIMARY KEY,
  uuid TEXT NOT NULL UNIQUE,
  content TEXT NOT NULL
);
"""

DERIVED_TABLES = """
CREATE TABLE IF NOT EXISTS nsl_table(
  tid INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  key_col TEXT NOT NULL
);
-- Columns that have held nested JSON (predicates need any-element logic only there).
CREATE TABLE IF NOT EXISTS nsl_json_column(
  tid INTEGER NOT NULL,
  name TEXT NOT NULL,
  PRIMARY KEY(tid, name)
) WITHOUT ROWID;
-- Columns that have held true or false (predicates need to tell booleans from the integers 1/0
-- stored for them only there).
CREATE TABLE IF NOT EXISTS nsl_bool_column(
  tid INTEGER NOT NULL,
  name TEXT NOT NULL,
  PRIMARY KEY(tid, name)
) WITHOUT ROWID;
-- Keys changed in user tables and not yet committed (filled by triggers, in plain SQL).
-- vid: set by `nsl restore` to the version it put back, so `nsl commit` need not hash the row again;
-- any later edit replaces the row and clears it.
CREATE TABLE IF NOT EXISTS nsl_pending(
  tid INTEGER NOT NULL,
  key,
  vid INTEGER,
  PRIMARY KEY(tid, key)
) WITHOUT ROWID;
-- Commit parent links.
CREATE TABLE IF NOT EXISTS nsl_plink(
  parent INTEGER NOT NULL,
  child INTEGER NOT NULL,
  PRIMARY KEY(parent, child)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS nsl_plink_child ON nsl_plink(child);
CREATE TABLE IF NOT EXISTS nsl_leaf(cid INTEGER PRIMARY KEY);
-- Present only inside nsl's own write transactions: tells the triggers not to record nsl's writes.
CREATE TABLE IF NOT EXISTS nsl_busy(x);
-- Versions are found through their object: an index on the random uuids alone would cost more
-- than the rest of a bulk save (inserts all over the tree), and every lookup knows the object.
-- With op (and the rowid, vid) in it, "each object's last line, and is it a deletion" is read
-- from the index alone.
CREATE INDEX IF NOT EXISTS nsl_version_obj ON nsl_version(tbl, key, op);
-- Objects whose version lineage has several leaves (after a sync brought concurrent changes): one row
-- per leaf line. Objects with one leaf (nearly all) have no row: their leaf is their last line.
CREATE TABLE IF NOT EXISTS nsl_conflict(
  tbl TEXT NOT NULL,
  key,
  vid INTEGER NOT NULL,
  PRIMARY KEY(tbl, key, vid)
) WITHOUT ROWID;
-- For each object of nsl_conflict, what its table shows by the table's conflict policy: the line vid,
-- or (vid NULL) content merged from several leaves. current_version() looks here first.
CREATE TABLE IF NOT EXISTS nsl_shown(
  tbl TEXT NOT NULL,
  key,
  vid INTEGER,
  content TEXT,
  PRIMARY KEY(tbl, key)
) WITHOUT ROWID;
-- Every artifact by name (version digests, commit and cluster uuids), for sync: kind v/c/k and the
-- local row holding it (a vid, cid or kid). Filled lazily, before each sync, from the artifact tables.
CREATE TABLE IF NOT EXISTS nsl_artifact(
  rid INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL,
  ref INTEGER NOT NULL
);
"""

# Sync bookkeeping and settings: neither artifacts nor derived from them (rebuild keeps these, and
# re-derives the two that name artifact rids).
STATE_TABLES = """
-- Artifacts no cluster known here lists yet (Fossil's unclustered), and artifacts made here and not
-- yet pushed (Fossil's unsent).
CREATE TABLE IF NOT EXISTS nsl_unclustered(rid INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS nsl_unsent(rid INTEGER PRIMARY KEY);
-- Artifacts a peer has told of that are not here yet: kind c or v when known, in capitals (C, V, or M
-- when unknown) once a cluster here lists them, so they are not counted unclustered when they arrive.
CREATE TABLE IF NOT EXISTS nsl_phantom(
  name TEXT PRIMARY KEY,
  kind TEXT
) WITHOUT ROWID;
-- Received artifacts, hash checked, waiting for what they need (a commit for its parents and
-- versions, a version for its commit). extra: a commit's line keys, as JSON.
CREATE TABLE IF NOT EXISTS nsl_staged(
  sid INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL,
  content TEXT NOT NULL,
  extra TEXT
);
-- Settings of this database (`nsl config`, `nsl remote`): remote.<name>.url, table.<name>.conflicts...
CREATE TABLE IF NOT EXISTS nsl_config(
  name TEXT PRIMARY KEY,
  value
) WITHOUT ROWID;
"""

DERIVED_NAMES = ("nsl_json_column", "nsl_bool_column", "nsl_plink", "nsl_leaf", "nsl_conflict", "nsl_shown",
                 "nsl_artifact")
ALL_TABLES = ARTIFACT_TABLES + DERIVED_TABLES + STATE_TABLES


def bool_columns(cols, bodies) -> set:
    """The columns among `cols` whose cell is true or false (tag T or F) in one of the typed-encoding
    bodies (each with a cell per column). No other cell holds a T, or starts with an F."""
    found = set()
    for b in bodies:
        if "T" in b or "|F" in b or b[:1] == "F":
            found.update([c for c, cell in zip(cols, b.split("|")) if cell == "T" or cell == "F"])
    return found


def json_columns(cols, bodies) -> set:
    """The columns among `cols` whose cell holds JSON text (tag j) in one of the typed-encoding bodies."""
    found = set()
    for b in bodies:
        if b[:1] == "j" or "|j" in b:
            found.update([c for c, cell in zip(cols, b.split("|")) if cell[:1] == "j"])
    return found


def record_bool_columns(conn) -> None:
    """Fill nsl_bool_column from every version (rebuild, and files made before schema 5)."""
    from .rowtext import header_names

    found = set()
    for tbl, content in conn.execute(
            "SELECT tbl, content FROM nsl_version WHERE content IS NOT NULL AND (instr(content, 'T') > 0 "
            "OR instr(content, '|F') > 0 OR instr(content, char(10) || 'F') > 0)"):
        head, _, body = content.partition("\n")
        found.update((tbl, c) for c in bool_columns(header_names(head), [body]))
    conn.executemany("INSERT OR IGNORE INTO nsl_bool_column(tid, name) SELECT tid, ? FROM nsl_table WHERE name = ?",
                     sorted((c, t) for t, c in found))


def statements(sql: str) -> list[str]:
    return [s for s in sql.split(";") if s.strip()]


def current_version(tbl: str, key: str) -> str:
    """SQL for the vid of the line an object shows at the head (the caller checks the line is not a
    deletion): its last line, unless the object has several leaves and nsl_shown names the one its
    table's conflict policy picked. The index on (tbl, key) makes this one seek, and the look into
    the (nearly always empty) nsl_shown one more. `tbl` appears once, so it may be a `?`."""
    # The unary + strips the key expression's column affinity: against a user column declared
    # INTEGER, SQLite would otherwise convert x.key and give up the index (a scan per row).
    return (f"(SELECT ifnull(s.vid, x.vid) FROM (SELECT max(vid) AS vid, tbl, key FROM nsl_version "
            f"WHERE tbl = {tbl} AND key = +{key}) x LEFT JOIN nsl_shown s ON s.tbl = x.tbl AND s.key = x.key)")


def quote(name: str) -> str:
    """An SQL identifier, quoted; never paste a name into SQL any other way."""
    return '"' + name.replace('"', '""') + '"'


def sql_literal(value) -> str:
    """A literal for DDL where parameters are not allowed (trigger bodies)."""
    if isinstance(value, int):
        return str(int(value))
    return "'" + str(value).replace("'", "''") + "'"


# While `nsl checkout` shows an old commit, the tables are read-only for every SQLite client too: a
# change made then would be undone by the return to the head, so the statement is refused instead.
CHECKED_OUT_MESSAGE = "nsl: an old commit is checked out, so the tables are read-only; run nsl checkout HEAD to return"
READ_ONLY_WHILE_CHECKED_OUT = (f"SELECT RAISE(ABORT, {sql_literal(CHECKED_OUT_MESSAGE)}) "
                               "WHERE EXISTS (SELECT 1 FROM nsl_meta WHERE name = 'checkout')")


def trigger_sql(tid: int, table: str, key_col: str) -> list[str]:
    """Triggers that note changed keys in nsl_pending, in plain SQL so any SQLite client fires them.

    A conflict policy on the statement that fires a trigger (an UPSERT, UPDATE OR ABORT, INSERT OR
    IGNORE) overrides the policies inside its body, so the bodies never rely on one: the key's old
    note is deleted, then a fresh one (no restored version) is inserted."""
    q, k = quote(table), quote(key_col)
    guard = "WHEN NOT EXISTS (SELECT 1 FROM nsl_busy)"
    t = sql_literal(tid)
    name = lambda op: quote(f"nsl_{op}_{tid}")  # noqa: E731

    def note(ref: str) -> str:
        return (f"{READ_ONLY_WHILE_CHECKED_OUT}; "
                f"DELETE FROM nsl_pending WHERE tid = {t} AND key = {ref}; "
                f"INSERT INTO nsl_pending(tid, key) VALUES ({t}, {ref}); ")
    return [
        f"CREATE TRIGGER IF NOT EXISTS {name('ins')} AFTER INSERT ON {q} {guard} BEGIN {note(f'NEW.{k}')}END",
        f"CREATE TRIGGER IF NOT EXISTS {name('upd')} AFTER UPDATE ON {q} {guard} BEGIN {note(f'OLD.{k}')}"
        f"DELETE FROM nsl_pending WHERE tid = {t} AND key = NEW.{k}; "
        f"INSERT INTO nsl_pending(tid, key) VALUES ({t}, NEW.{k}); END",
        f"CREATE TRIGGER IF NOT EXISTS {name('del')} AFTER DELETE ON {q} {guard} BEGIN {note(f'OLD.{k}')}END",
    ]


def drop_trigger_sql(tid: int) -> list[str]:
    return [f"DROP TRIGGER IF EXISTS {quote(f'nsl_{op}_{tid}')}" for op in ("ins", "upd", "del")]
