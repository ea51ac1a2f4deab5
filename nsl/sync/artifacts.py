"""The artifact store as sync sees it: every artifact by name, what is unclustered, unsent, missing
(phantoms) or received and waiting (staged), clusters, and receiving artifacts from a peer.

Three kinds of artifact, each named by the hash of its content:

    version  its typed encoding (nsl_version.content); the name is the typed digest
    commit   its canonical text (header and lines); the name is the commit uuid
    cluster  "cluster\\n" then "M <name>\\n" for each member, sorted; the name is its hash

nsl_artifact indexes them by name. It is derived and filled lazily by catch_up() at the start of a
sync, not by every save: an index on random hashes would cost a bulk save more than the rest of it.
"""
from __future__ import annotations

import orjson

from ..core import incoming, rowtext
from ..core.commits import commit_text, is_hash, parse_commit_text
from ..core.database import Database
from ..errors import BadArtifact

VERSION, COMMIT, CLUSTER = "v", "c", "k"
KIND_NAMES = {VERSION: "version", COMMIT: "commit", CLUSTER: "cluster"}
KINDS = {v: k for k, v in KIND_NAMES.items()}

CLUSTER_MIN = 100     # a pull clusters the unclustered artifacts once there are this many (Fossil: 100)
CLUSTER_MAX = 800     # members per cluster (Fossil: 800)


# ---- the index -------------------------------------------------------------------------------------

def catch_up(db: Database) -> int:
    """Index the artifacts made here since the last call; they are unclustered and unsent. Received
    artifacts are indexed as they arrive, so they are not taken for new ones. Inside a write."""
    c = db.conn
    w_cid = int(db.meta("sync_cid", 0) or 0)
    w_vid = int(db.meta("sync_vid", 0) or 0)
    max_cid = c.execute("SELECT ifnull(max(cid), 0) FROM nsl_commit").fetchone()[0]
    max_vid = c.execute("SELECT ifnull(max(vid), 0) FROM nsl_version").fetchone()[0]
    if max_cid <= w_cid and max_vid <= w_vid:
        return 0
    before = c.execute("SELECT ifnull(max(rid), 0) FROM nsl_artifact").fetchone()[0]
    # Versions first, grouped (and so sorted) by digest: the inserts walk the name index in order.
    c.execute("INSERT INTO nsl_artifact(name, kind, ref) SELECT digest, 'v', min(vid) FROM nsl_version "
              "WHERE vid > ? AND digest IS NOT NULL GROUP BY digest "
              "HAVING NOT EXISTS (SELECT 1 FROM nsl_artifact a WHERE a.name = digest)", (w_vid,))
    c.execute("INSERT INTO nsl_artifact(name, kind, ref) SELECT uuid, 'c', cid FROM nsl_commit c "
              "WHERE cid > ? AND NOT EXISTS (SELECT 1 FROM nsl_artifact a WHERE a.name = c.uuid) ORDER BY cid",
              (w_cid,))
    c.execute("INSERT INTO nsl_unclustered(rid) SELECT rid FROM nsl_artifact WHERE rid > ?", (before,))
    n = c.execute("INSERT INTO nsl_unsent(rid) SELECT rid FROM nsl_artifact WHERE rid > ?", (before,)).rowcount
    db.set_meta("sync_cid", max_cid)
    db.set_meta("sync_vid", max_vid)
    return n


def register(db: Database, name: str, kind: str, ref: int) -> int | None:
    """Index an artifact that arrived from a peer (unclustered, not unsent). Returns its rid, or None
    when it was indexed already."""
    cur = db.conn.execute("INSERT OR IGNORE INTO nsl_artifact(name, kind, ref) VALUES (?, ?, ?)", (name, kind, ref))
    if not cur.rowcount:
        return None
    rid = cur.lastrowid
    db.conn.execute("INSERT OR IGNORE INTO nsl_unclustered(rid) VALUES (?)", (rid,))
    return rid


def known(db: Database, names: list[str]) -> set[str]:
    """Which of `names` are here: indexed, or received and waiting."""
    out: set[str] = set()
    for i in range(0, len(names), 500):
        part = names[i:i + 500]
        q = ",".join("?" * len(part))
        out.update(r[0] for r in db.conn.execute(f"SELECT name FROM nsl_artifact WHERE name IN ({q}) "
                                                 f"UNION SELECT name FROM nsl_staged WHERE name IN ({q})",
                                                 (*part, *part)))
    return out


def add_phantoms(db: Database, names: list[str], kind: str | None = None) -> int:
    """Note artifacts a peer has and this database lacks; returns how many are new phantoms."""
    if not names:
        return 0
    have = known(db, names)
    missing = [n for n in dict.fromkeys(names) if n not in have]
    if not missing:
        return 0
    before = db.conn.total_changes
    db.conn.executemany("INSERT OR IGNORE INTO nsl_phantom(name, kind) VALUES (?, ?)", [(n, kind) for n in missing])
    return db.conn.total_changes - before


def phantoms(db: Database, limit: int) -> list[str]:
    # Commits first: each one names what else is missing.
    return [r[0] for r in db.conn.execute(
        "SELECT name FROM nsl_phantom ORDER BY kind = 'c' DESC, name LIMIT ?", (limit,))]


def phantom_count(db: Database) -> int:
    return db.conn.execute("SELECT count(*) FROM nsl_phantom").fetchone()[0]


def unclustered_names(db: Database, limit: int = -1) -> list[str]:
    return [r[0] for r in db.conn.execute(
        "SELECT a.name FROM nsl_unclustered u JOIN nsl_artifact a ON a.rid = u.rid ORDER BY u.rid LIMIT ?",
        (limit,))]


def unclustered_count(db: Database) -> int:
    return db.conn.execute("SELECT count(*) FROM nsl_unclustered").fetchone()[0]


# ---- content of artifacts, to send -----------------------------------------------------------------

def file_of(db: Database, name: str) -> dict | None:
    """The file card for an artifact here: {"kind", "name", "content"} (and "keys" for a commit)."""
    row = db.conn.execute("SELECT kind, ref FROM nsl_artifact WHERE name = ?", (name,)).fetchone()
    if row is None:
        row = db.conn.execute("SELECT kind, content, extra FROM nsl_staged WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        kind, content, extra = row
        card = {"kind": KIND_NAMES[kind], "name": name, "content": content}
        if kind == COMMIT:
            card["keys"] = orjson.loads(extra)
        return card
    kind, ref = row
    if kind == VERSION:
        (content,) = db.conn.execute("SELECT content FROM nsl_version WHERE vid = ?", (ref,)).fetchone()
        return {"kind": "version", "name": name, "content": content}
    if kind == COMMIT:
        lo, hi = db.conn.execute("SELECT vid_lo, vid_hi FROM nsl_commit WHERE cid = ?", (ref,)).fetchone()
        keys = [r[0] for r in db.conn.execute("SELECT key FROM nsl_version WHERE vid BETWEEN ? AND ? ORDER BY vid",
                                              (lo, hi))]
        return {"kind": "commit", "name": name, "content": commit_text(db, ref), "keys": keys}
    (content,) = db.conn.execute("SELECT content FROM nsl_cluster WHERE kid = ?", (ref,)).fetchone()
    return {"kind": "cluster", "name": name, "content": content}


def key_columns(db: Database, cards: list[dict]) -> dict[str, str]:
    """The key column of every table the commit cards name (a receiver needs it to make the table)."""
    tables: set[str] = set()
    for card in cards:
        if card["kind"] == "commit":
            for row in card["content"].split("\n"):
                if row[:2] in ("I ", "U ", "D "):
                    from ..core.commits import decode_name

                    tables.add(decode_name(row.split(" ")[1]))
    if not tables:
        return {}
    return {n: k for n, k in db.conn.execute("SELECT name, key_col FROM nsl_table") if n in tables}


# ---- clusters ----------------------------------------------------------------------------------------

def cluster_text(names: list[str]) -> str:
    return "cluster\n" + "".join(f"M {n}\n" for n in sorted(names))


def parse_cluster(text: str, algo: str) -> list[str]:
    rows = text.split("\n")
    if rows[0] != "cluster" or rows[-1] != "" or len(rows) < 3:
        raise ValueError("not a cluster")
    names = []
    for row in rows[1:-1]:
        if not row.startswith("M ") or not is_hash(row[2:], algo):
            raise ValueError("bad cluster line")
        names.append(row[2:])
    if names != sorted(set(names)):
        raise ValueError("cluster members are not sorted and distinct")
    return names


def make_clusters(db: Database) -> list[str]:
    """Gather the unclustered artifacts into clusters (Fossil's rule: at least CLUSTER_MIN of them,
    at most CLUSTER_MAX per cluster, the last one taking the rest). The new clusters are unclustered
    in turn, and gathered again while there are enough of them. Returns the names that were
    unclustered before (clusters made here included)."""
    c = db.conn
    h = rowtext.hasher(db.hash_algo)
    made: list[str] = []
    while unclustered_count(db) >= CLUSTER_MIN:
        rows = c.execute("SELECT a.rid, a.name FROM nsl_unclustered u JOIN nsl_artifact a ON a.rid = u.rid "
                         "ORDER BY a.name").fetchall()
        groups, i = [], 0
        while i < len(rows):
            n = CLUSTER_MAX if len(rows) - i - CLUSTER_MAX >= CLUSTER_MIN else len(rows) - i
            groups.append(rows[i:i + n])
            i += n
        new = []
        made.extend(name for _, name in rows)
        for g in groups:
            text = cluster_text([name for _, name in g])
            uuid = h(text.encode()).hexdigest()
            c.executemany("DELETE FROM nsl_unclustered WHERE rid = ?", [(rid,) for rid, _ in g])
            if c.execute("SELECT 1 FROM nsl_artifact WHERE name = ?", (uuid,)).fetchone():
                continue
            kid = c.execute("INSERT INTO nsl_cluster(uuid, content) VALUES (?, ?)", (uuid, text)).lastrowid
            new.append(c.execute("INSERT INTO nsl_artifact(name, kind, ref) VALUES (?, 'k', ?)", (uuid, kid)).lastrowid)
        c.executemany("INSERT OR IGNORE INTO nsl_unclustered(rid) VALUES (?)", [(r,) for r in new])
        if not new:
            break
    return made


# ---- receiving -------------------------------------------------------------------------------------

class Received:
    def __init__(self):
        self.files = 0          # new artifacts taken in
        self.duplicates = 0     # artifacts that were here already
        self.applied = 0        # commits written into the history
        self.objects = 0        # lines of those commits
        self.conflicts: list = []   # (table, key) that now have several leaves
        self.new_phantoms = 0

    def to_dict(self):
        return {"files": self.files, "duplicates": self.duplicates, "applied": self.applied,
                "objects": self.objects, "conflicts": len(self.conflicts)}


def _check_name(card: dict, algo: str) -> tuple[str, str, str]:
    kind, name, content = card["kind"], card["name"], card["content"]
    h = rowtext.hasher(algo)
    if h(content.encode("utf-8", "surrogatepass")).hexdigest() != name:
        raise BadArtifact(f"the {kind} artifact sent as {name[:12]} does not hash to that name: "
                          f"the remote's copy was changed or damaged; nothing from it was applied")
    return KINDS[kind], name, content


def receive(db: Database, cards: list[dict], key_cols: dict) -> Received:
    """Take artifacts from a peer: check each one's hash, keep what is new, note what they name and
    is missing, and write every commit that has all it needs. Inside a write; any bad artifact raises
    BadArtifact and the caller's transaction takes back everything."""
    algo = db.hash_algo
    res = Received()
    c = db.conn
    for card in cards:
        kind, name, content = _check_name(card, algo)
        if known(db, [name]):
            res.duplicates += 1
            c.execute("DELETE FROM nsl_phantom WHERE name = ?", (name,))
            continue
        res.files += 1
        c.execute("DELETE FROM nsl_phantom WHERE name = ?", (name,))
        if kind == VERSION:
            try:
                rowtext.check_content(content)
            except ValueError as e:
                raise BadArtifact(f"version {name[:12]} is not a valid typed encoding: {e}") from None
            c.execute("INSERT INTO nsl_staged(name, kind, content) VALUES (?, 'v', ?)", (name, content))
        elif kind == CLUSTER:
            try:
                members = parse_cluster(content, algo)
            except ValueError as e:
                raise BadArtifact(f"cluster {name[:12]} is malformed: {e}") from None
            kid = c.execute("INSERT INTO nsl_cluster(uuid, content) VALUES (?, ?)", (name, content)).lastrowid
            register(db, name, CLUSTER, kid)
            for i in range(0, len(members), 500):
                part = members[i:i + 500]
                q = ",".join("?" * len(part))
                c.execute(f"DELETE FROM nsl_unclustered WHERE rid IN (SELECT rid FROM nsl_artifact WHERE name IN ({q}))",
                          part)
            res.new_phantoms += add_phantoms(db, members)
        else:
            try:
                pc = parse_commit_text(content, algo)
            except ValueError as e:
                raise BadArtifact(f"commit {name[:12]} is malformed: {e}") from None
            keys = card.get("keys")
            if not isinstance(keys, list) or len(keys) != len(pc.lines):
                raise BadArtifact(f"commit {name[:12]} came without the key of each of its lines")
            c.execute("INSERT INTO nsl_staged(name, kind, content, extra) VALUES (?, 'c', ?, ?)",
                      (name, content, orjson.dumps(keys).decode()))
            res.new_phantoms += add_phantoms(db, pc.parents, COMMIT)
            res.new_phantoms += add_phantoms(db, [ln[3] for ln in pc.lines if ln[3]], VERSION)
    if any(card["kind"] != "cluster" for card in cards):
        apply_ready(db, key_cols, res)
    return res


def _content_of(db: Database, digest: str) -> str | None:
    row = db.conn.execute("SELECT content FROM nsl_staged WHERE name = ? AND kind = 'v'", (digest,)).fetchone()
    if row:
        return row[0]
    row = db.conn.execute("SELECT v.content FROM nsl_artifact a JOIN nsl_version v ON v.vid = a.ref "
                          "WHERE a.name = ? AND a.kind = 'v'", (digest,)).fetchone()
    return row[0] if row else None


def apply_ready(db: Database, key_cols: dict, res: Received | None = None) -> Received:
    """Write every staged commit whose parents and versions are all here, parents first."""
    res = res or Received()
    c = db.conn
    algo = db.hash_algo
    staged = {}
    for name, content, extra in c.execute("SELECT name, content, extra FROM nsl_staged WHERE kind = 'c'").fetchall():
        staged[name] = (parse_commit_text(content, algo), orjson.loads(extra))
    if not staged:
        return res
    have_commits = set()
    progress = True
    while staged and progress:
        progress = False
        for name in sorted(staged, key=lambda n: (staged[n][0].date, n)):
            pc, keys = staged[name]
            missing = [p for p in pc.parents if p not in have_commits and not c.execute(
                "SELECT 1 FROM nsl_commit WHERE uuid = ?", (p,)).fetchone()]
            if missing:
                continue
            contents = {}
            for ln in pc.lines:
                if ln[3] and ln[3] not in contents:
                    ct = _content_of(db, ln[3])
                    if ct is None:
                        break
                    contents[ln[3]] = ct
            else:
                applied = incoming.apply(db, pc, keys, contents.get, key_cols)
                register(db, name, COMMIT, applied.cid)
                lo = c.execute("SELECT vid_lo FROM nsl_commit WHERE cid = ?", (applied.cid,)).fetchone()[0]
                for i, ln in enumerate(pc.lines):
                    if ln[3]:
                        register(db, ln[3], VERSION, lo + i)
                c.execute("DELETE FROM nsl_staged WHERE name = ?", (name,))
                c.executemany("DELETE FROM nsl_staged WHERE name = ?", [(d,) for d in contents])
                have_commits.add(name)
                del staged[name]
                res.applied += 1
                res.objects += applied.objects
                res.conflicts.extend(applied.conflicts)
                progress = True
    return res


def staged_count(db: Database) -> dict:
    return dict(db.conn.execute("SELECT kind, count(*) FROM nsl_staged GROUP BY kind").fetchall())
