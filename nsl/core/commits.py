"""Commit artifacts: their canonical text, their uuid, the head, and resolving a commit by prefix.

A commit's text is a header (db, date, sorted parents, meta) followed by one line per version it
touches; hashing it covers every version and, through the parents, all earlier history.
"""
from __future__ import annotations

import itertools
import re
import secrets

import orjson

from ..errors import AmbiguousRef, NothingToCommit, UnknownCommit
from .database import Database, now_iso
from .multirow import insert_many
from .rowtext import hasher

_ENC = str.maketrans({"\\": "\\\\", " ": "\\s", "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def encode_name(name: str) -> str:
    """A table name inside a commit line, Fossil-style: no spaces or newlines left."""
    return name.translate(_ENC)


def decode_name(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append({"\\": "\\", "s": " ", "n": "\n", "r": "\r", "t": "\t"}.get(text[i + 1], text[i + 1]))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def line_text(op, tbl, uuid, digest, parents) -> str:
    t = encode_name(tbl)
    if op == "I":
        return f"I {t} {uuid} {digest}\n"
    if op == "U":
        return f"U {t} {uuid} {digest} {parents}\n"
    return f"D {t} {parents}\n"


def _insert_lines_text(table: str, uuids, digests) -> str:
    """The text of I lines of one table, joined in C from its pieces: no call per line."""
    rep = itertools.repeat
    return "".join(itertools.chain.from_iterable(zip(rep(f"I {encode_name(table)} "), uuids, rep(" "), digests,
                                                     rep("\n"))))


def header_text(db_code, date, parents, meta) -> str:
    out = f"commit\ndb {db_code}\ndate {date}\n"
    for p in parents:
        out += f"parent {p}\n"
    if meta:
        out += f"meta {meta}\n"
    return out


def canonical_meta(meta: dict | None) -> str | None:
    meta = {k: v for k, v in (meta or {}).items() if v is not None}
    if not meta:
        return None
    return orjson.dumps(meta, option=orjson.OPT_SORT_KEYS).decode()


def line_range(db: Database, cid: int) -> tuple[int, int]:
    """(first, last) vid of a commit's lines: a commit's lines are written together, so they are
    contiguous and no index on cid is needed."""
    lo, hi = db.conn.execute("SELECT vid_lo, vid_hi FROM nsl_commit WHERE cid=?", (cid,)).fetchone()
    return (lo or 0), (hi if hi is not None else -1)


def lines_sql(cols: str) -> str:
    return f"SELECT {cols} FROM nsl_version WHERE vid BETWEEN ? AND ? ORDER BY vid"


def commit_hashes(db: Database, cid: int, header: str) -> tuple[str, str, int]:
    """(commit uuid, objects uuid, line count), streaming the lines from the database."""
    h = hasher(db.hash_algo)
    whole, objs = h(header.encode()), h()
    n = 0
    cur = db.conn.execute(lines_sql("op, tbl, uuid, digest, parents"), line_range(db, cid))
    while True:
        rows = cur.fetchmany(4096)
        if not rows:
            break
        chunk = "".join([line_text(*r) for r in rows]).encode("utf-8", "surrogatepass")
        whole.update(chunk)
        objs.update(chunk)
        n += len(rows)
    return whole.hexdigest(), objs.hexdigest(), n


class CommitWriter:
    """Collects the lines of one new commit inside a write transaction, then seals it."""

    def __init__(self, db: Database, meta: dict | None = None):
        self.db = db
        self.meta = canonical_meta(meta)
        self.parents = [r[0] for r in db.conn.execute(
            "SELECT c.uuid FROM nsl_leaf l JOIN nsl_commit c ON c.cid=l.cid ORDER BY c.uuid")]
        self.parent_cids = [r[0] for r in db.conn.execute("SELECT cid FROM nsl_leaf")]
        self.date = now_iso()
        # A placeholder row gives the commit its cid now; its uuid is known only when sealed.
        cur = db.conn.execute(
            "INSERT INTO nsl_commit(uuid, db, date, parents, meta, objects_uuid, nlines, vid_lo) "
            "VALUES (?, ?, ?, ?, ?, '', 0, (SELECT ifnull(max(vid), 0) + 1 FROM nsl_version))",
            ("pending-" + secrets.token_hex(8), db.db_code, self.date, " ".join(self.parents), self.meta),
        )
        self.cid = cur.lastrowid
        self.next_vid = (db.conn.execute("SELECT max(vid) FROM nsl_version").fetchone()[0] or 0) + 1
        # The text is hashed as its lines are written (they arrive in vid order); a line changed in
        # place (the same key twice in one save) makes seal() hash the stored lines again instead.
        h = hasher(db.hash_algo)
        self._whole = h(header_text(db.db_code, self.date, self.parents, self.meta).encode())
        self._objs = h()
        self._nlines = 0
        self.dirty = False

    def insert_lines(self, rows) -> None:
        """Write commit lines (vid, cid, tbl, key, op, uuid, digest, parents, content), in vid order."""
        if not rows:
            return
        insert_many(self.db.conn, "INSERT INTO nsl_version(vid, cid, tbl, key, op, uuid, digest, parents, content) "
                    "VALUES ", "(?, ?, ?, ?, ?, ?, ?, ?, ?)", 9, itertools.chain.from_iterable(rows), len(rows))
        if all(r[4] == "I" for r in rows) and len({r[2] for r in rows}) == 1:
            text = _insert_lines_text(rows[0][2], [r[5] for r in rows], [r[6] for r in rows])
        else:
            text = "".join([line_text(r[4], r[2], r[5], r[6], r[7]) for r in rows])
        self._hash_lines(text, len(rows))

    def add_inserts(self, table: str, uuids, digests) -> None:
        """Account for I lines of `table` that were inserted directly, in vid order, after the others."""
        self._hash_lines(_insert_lines_text(table, uuids, digests), len(uuids))
        self.next_vid += len(uuids)

    def _hash_lines(self, text: str, n: int) -> None:
        chunk = text.encode("utf-8", "surrogatepass")
        self._whole.update(chunk)
        self._objs.update(chunk)
        self._nlines += n

    def checkpoint(self):
        return self._whole.copy(), self._objs.copy(), self._nlines, self.next_vid

    def rollback_to(self, cp):
        self._whole, self._objs, self._nlines, self.next_vid = cp

    def take_vids(self, n: int) -> int:
        first = self.next_vid
        self.next_vid += n
        return first

    def seal(self) -> str:
        """Compute the commit's uuid from its lines and link it into the history. Returns the uuid."""
        db = self.db
        db.conn.execute("UPDATE nsl_commit SET vid_hi=? WHERE cid=?", (self.next_vid - 1, self.cid))
        if self.dirty:
            header = header_text(db.db_code, self.date, self.parents, self.meta)
            uuid, objects_uuid, n = commit_hashes(db, self.cid, header)
        else:
            uuid, objects_uuid, n = self._whole.hexdigest(), self._objs.hexdigest(), self._nlines
        if n == 0:
            raise NothingToCommit("nothing to commit: no object changed")
        db.conn.execute(
            "UPDATE nsl_commit SET uuid=?, objects_uuid=?, nlines=? WHERE cid=?",
            (uuid, objects_uuid, n, self.cid),
        )
        db.conn.executemany("INSERT OR IGNORE INTO nsl_plink(parent, child) VALUES (?, ?)",
                            [(p, self.cid) for p in self.parent_cids])
        db.conn.execute("DELETE FROM nsl_leaf")
        db.conn.execute("INSERT INTO nsl_leaf(cid) VALUES (?)", (self.cid,))
        # Its parents are every leaf, so it descends from every line: objects it touches are merged.
        from .conflicts import clear_for_lines

        clear_for_lines(db, *line_range(db, self.cid))
        return uuid


def commit_text(db: Database, cid: int) -> str:
    row = db.conn.execute("SELECT db, date, parents, meta FROM nsl_commit WHERE cid=?", (cid,)).fetchone()
    dbc, date, parents, meta = row
    lines = db.conn.execute(lines_sql("op, tbl, uuid, digest, parents"), line_range(db, cid))
    return header_text(dbc, date, parents.split() if parents else [], meta) + "".join(
        line_text(*r) for r in lines)


def head(db: Database) -> str | None:
    """The newest commit's uuid, or the hash of the sorted leaf uuids when there are several."""
    leaves = [r[0] for r in db.conn.execute(
        "SELECT c.uuid FROM nsl_leaf l JOIN nsl_commit c ON c.cid=l.cid ORDER BY c.uuid")]
    if not leaves:
        return None
    if len(leaves) == 1:
        return leaves[0]
    return hasher(db.hash_algo)("\n".join(leaves).encode()).hexdigest()


def head_cid(db: Database) -> int | None:
    row = db.conn.execute("SELECT max(cid) FROM nsl_leaf").fetchone()
    return row[0]


def resolve(db: Database, ref: str) -> tuple[int, str]:
    """(cid, uuid) of a commit named by HEAD, HEAD~N, or a unique uuid prefix (at least 4 hex digits)."""
    ref = (ref or "").strip()
    if ref.upper().startswith("HEAD"):
        rest = ref[4:]
        cid = head_cid(db)
        if cid is None:
            raise UnknownCommit("there are no commits yet", ref=ref)
        steps = 0
        if rest:
            if not (rest.startswith("~") and (rest[1:] == "" or (rest[1:].isascii() and rest[1:].isdigit()))):
                raise AmbiguousRef(f"cannot understand {ref!r}: use HEAD, HEAD~N or a commit uuid prefix")
            steps = int(rest[1:] or 1)
        for _ in range(steps):
            row = db.conn.execute(
                "SELECT min(parent) FROM nsl_plink WHERE child=?", (cid,)).fetchone()
            if row[0] is None:
                raise UnknownCommit(f"{ref} goes back past the first commit", ref=ref)
            cid = row[0]
        return cid, db.conn.execute("SELECT uuid FROM nsl_commit WHERE cid=?", (cid,)).fetchone()[0]
    low = ref.lower()
    if len(low) < 4 or any(ch not in "0123456789abcdef" for ch in low):
        raise AmbiguousRef(
            f"{ref!r} is not a commit: give at least 4 hex digits of a commit uuid, or HEAD", ref=ref)
    rows = db.conn.execute(
        "SELECT cid, uuid FROM nsl_commit WHERE uuid >= ? AND uuid < ? ORDER BY cid LIMIT 11",
        (low, low + "g"),
    ).fetchall()
    if not rows:
        raise UnknownCommit(f"no commit matches {ref!r}", ref=ref)
    if len(rows) > 1:
        shown = ", ".join(r[1][:12] for r in rows[:10])
        raise AmbiguousRef(f"{ref!r} is ambiguous: it matches {shown}", ref=ref,
                           candidates=[r[1] for r in rows])
    return rows[0]


def ancestors_sql() -> str:
    """A CTE body listing the cids reachable from :cid (itself included)."""
    return ("WITH RECURSIVE anc(cid) AS (SELECT :cid UNION "
            "SELECT p.parent FROM nsl_plink p JOIN anc ON p.child = anc.cid)")


# ---- commits from elsewhere ----------------------------------------------------------------------

_HEX = frozenset("0123456789abcdef")


def is_hash(text, algo: str) -> bool:
    return (isinstance(text, str) and len(text) == (40 if algo == "sha1" else 64)
            and _HEX.issuperset(text))


class ParsedCommit:
    """A commit artifact's text taken apart: header fields and lines (op, tbl, uuid, digest, parents)."""

    __slots__ = ("uuid", "db", "date", "parents", "meta", "lines", "text")

    def __init__(self, uuid, db, date, parents, meta, lines, text):
        self.uuid, self.db, self.date, self.parents, self.meta = uuid, db, date, parents, meta
        self.lines, self.text = lines, text


_DB_CODE = re.compile(r"[0-9a-f]{40}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")


def checked_header(db_code, date, parents, meta, algo: str) -> str:
    """A commit's header text from its fields, each checked to be as nsl writes it (ValueError)."""
    if not isinstance(db_code, str) or not _DB_CODE.fullmatch(db_code):
        raise ValueError("bad db code")
    if not isinstance(date, str) or not _DATE.fullmatch(date):
        raise ValueError("bad date")
    if not isinstance(parents, list) or not all(is_hash(p, algo) for p in parents) or parents != sorted(set(parents)):
        raise ValueError("parents must be distinct commit hashes, sorted")
    if meta is not None:
        try:
            value = orjson.loads(meta) if isinstance(meta, str) else None
        except orjson.JSONDecodeError:
            value = None
        if not isinstance(value, dict) or not value or canonical_meta(value) != meta:
            raise ValueError("meta is not canonical JSON of an object")
    return header_text(db_code, date, parents, meta)


def parse_commit_text(text: str, algo: str) -> ParsedCommit:
    """Parse and check a commit's text: it must be exactly what nsl writes (ValueError otherwise)."""
    if not text.endswith("\n"):
        raise ValueError("commit text does not end with a newline")
    rows = text[:-1].split("\n")
    if len(rows) < 3 or rows[0] != "commit":
        raise ValueError("not a commit")
    if not rows[1].startswith("db ") or not re.fullmatch(r"[0-9a-f]{40}", rows[1][3:]):
        raise ValueError("bad db line")
    if not rows[2].startswith("date ") or not re.fullmatch(
            r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z", rows[2][5:]):
        raise ValueError("bad date line")
    i, parents, meta = 3, [], None
    while i < len(rows) and rows[i].startswith("parent "):
        p = rows[i][7:]
        if not is_hash(p, algo):
            raise ValueError("bad parent line")
        parents.append(p)
        i += 1
    if parents != sorted(set(parents)):
        raise ValueError("parents are not sorted and distinct")
    if i < len(rows) and rows[i].startswith("meta "):
        meta = rows[i][5:]
        try:
            value = orjson.loads(meta)
        except orjson.JSONDecodeError:
            raise ValueError("meta is not JSON") from None
        if not isinstance(value, dict) or not value or canonical_meta(value) != meta:
            raise ValueError("meta is not canonical JSON of an object")
        i += 1
    lines = []
    for row in rows[i:]:
        parts = row.split(" ")
        op = parts[0]
        if op == "I" and len(parts) == 4:
            _, t, u, d = parts
            ps = None
        elif op == "U" and len(parts) == 5:
            _, t, u, d, ps = parts
        elif op == "D" and len(parts) == 3:
            _, t, ps = parts
            u = d = None
        else:
            raise ValueError(f"bad commit line {row[:60]!r}")
        if u is not None and not (is_hash(u, algo) and is_hash(d, algo)):
            raise ValueError("bad version hash in a commit line")
        if ps is not None and not all(is_hash(p, algo) for p in ps.split(",")):
            raise ValueError("bad parent version in a commit line")
        tbl = decode_name(t)
        if not tbl or encode_name(tbl) != t:
            raise ValueError("bad table name in a commit line")
        lines.append((op, tbl, u, d, ps))
    if not lines:
        raise ValueError("a commit has at least one line")
    db_code, date = rows[1][3:], rows[2][5:]
    if header_text(db_code, date, parents, meta) + "".join(line_text(*ln) for ln in lines) != text:
        raise ValueError("commit text is not in canonical form")
    return ParsedCommit(hasher(algo)(text.encode("utf-8", "surrogatepass")).hexdigest(), db_code, date,
                        parents, meta, lines, text)


def lines_hash(text: str, algo: str) -> str:
    """objects_uuid of a commit text: the hash of its lines alone (everything after the header)."""
    rows = text.split("\n")
    i = 3
    while i < len(rows) and (rows[i].startswith("parent ") or rows[i].startswith("meta ")):
        i += 1
    return hasher(algo)("\n".join(rows[i:]).encode("utf-8", "surrogatepass")).hexdigest()
