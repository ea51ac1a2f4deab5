"""The artifact store as sync sees it: every artifact by name, what is unclustered, unsent, missing
(phantoms) or received and waiting (staged), clusters, and receiving artifacts from a peer.

Three kinds of artifact, each named by the hash of its content:

    version  its typed encoding (nsl_version.content); the name is the typed digest
    commit   its canonical text (header and lines); the name is the commit uuid
    cluster  "cluster\\n" then "M <name>\\n" for each member, sorted; the name is its hash

nsl_artifact indexes them by name. It is derived and filled lazily by catch_up() at the start of a
sync, not by every save: an index on random hashes would cost a bulk save more than the rest of it.

An artifact is unclustered when no cluster here lists it. A cluster can arrive before what it lists
(or while it waits in nsl_staged): such names are marked, so that they are not unclustered when they
come. The mark is the case of the kind: nsl_phantom.kind 'c', 'v' or NULL for a name no cluster here
lists, 'C', 'V' or 'M' (kind unknown) for one a cluster lists; nsl_staged.kind 'c'/'v', or 'C'/'V'.
"""
from __future__ import annotations

import re

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


def register(db: Database, name: str, kind: str, ref: int, clustered: bool = False) -> int | None:
    """Index an artifact that arrived from a peer (not unsent; unclustered unless a cluster here lists
    it). Returns its rid, or None when it was indexed already."""
    cur = db.conn.execute("INSERT OR IGNORE INTO nsl_artifact(name, kind, ref) VALUES (?, ?, ?)", (name, kind, ref))
    if not cur.rowcount:
        return None
    rid = cur.lastrowid
    if not clustered:
        db.conn.execute("INSERT OR IGNORE INTO nsl_unclustered(rid) VALUES (?)", (rid,))
    return rid


def _chunks(names: list, n: int = 500):
    for i in range(0, len(names), n):
        part = names[i:i + n]
        yield part, ",".join("?" * len(part))


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
        "SELECT name FROM nsl_phantom ORDER BY kind IN ('c', 'C') DESC, name LIMIT ?", (limit,))]


def _clustered_phantoms(db: Database, names: list[str]) -> set[str]:
    """Which of `names` are phantoms that a cluster here lists."""
    out: set[str] = set()
    for part, q in _chunks(names):
        out.update(r[0] for r in db.conn.execute(
            f"SELECT name FROM nsl_phantom WHERE name IN ({q}) AND kind IN ('C', 'V', 'M')", part))
    return out


def take_members(db: Database, members: list[str]) -> int:
    """A cluster here lists `members`: those here are no longer unclustered, those waiting or missing
    are marked so they will not be when they come, and those not heard of yet become phantoms.
    Returns how many phantoms are new."""
    c = db.conn
    for part, q in _chunks(members):
        c.execute(f"DELETE FROM nsl_unclustered WHERE rid IN (SELECT rid FROM nsl_artifact WHERE name IN ({q}))", part)
        c.execute(f"UPDATE nsl_staged SET kind = upper(kind) WHERE name IN ({q}) AND kind IN ('c', 'v')", part)
        c.execute(f"UPDATE nsl_phantom SET kind = coalesce(upper(kind), 'M') WHERE name IN ({q}) "
                  f"AND (kind IS NULL OR kind IN ('c', 'v'))", part)
    have = known(db, members)
    missing = [n for n in dict.fromkeys(members) if n not in have]
    if not missing:
        return 0
    before = c.total_changes
    c.executemany("INSERT OR IGNORE INTO nsl_phantom(name, kind) VALUES (?, 'M')", [(n,) for n in missing])
    return c.total_changes - before


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
        kind = kind.lower()
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


def files_of(db: Database, names: list[str], budget: int, deadline: float | None = None, *,
             at_least_one: bool = True) -> list[dict]:
    """File cards for the artifacts here among `names`, about `budget` bytes of them at most (at least
    one, unless `at_least_one` is false: an artifact larger than the budget then waits for a message
    of its own), looked up in batches; commits first, since each one tells a receiver what else it
    lacks."""
    import time

    cards: list[dict] = []
    size = 0

    def fits(n: int) -> bool:
        return size + n <= budget or (at_least_one and not cards)

    rows: list[tuple] = []
    for part, q in _chunks(names):
        rows += db.conn.execute(f"SELECT name, kind, ref FROM nsl_artifact WHERE name IN ({q})", part).fetchall()
    found = {r[0] for r in rows}
    rest = [n for n in names if n not in found]
    for part, q in _chunks(rest):
        for name, kind, content, extra in db.conn.execute(
                f"SELECT name, lower(kind), content, extra FROM nsl_staged WHERE name IN ({q})", part):
            card = {"kind": KIND_NAMES[kind], "name": name, "content": content}
            if kind == COMMIT:
                card["keys"] = orjson.loads(extra)
            if fits(protocol_size(card)):
                cards.append(card)
                size += protocol_size(card)
    rows.sort(key=lambda r: (r[1] != COMMIT, r[1] != CLUSTER))
    versions = [r for r in rows if r[1] == VERSION]
    for name, kind, ref in rows:
        if kind == VERSION or size >= budget:
            continue
        card = file_of(db, name)
        if fits(protocol_size(card)):
            cards.append(card)
            size += protocol_size(card)
    full = False
    for part, _ in _chunks(versions):
        if full or size >= budget or (deadline is not None and time.monotonic() > deadline and cards):
            break
        by_vid = dict(db.conn.execute(
            f"SELECT vid, content FROM nsl_version WHERE vid IN ({','.join('?' * len(part))})",
            [r[2] for r in part]).fetchall())
        for name, _, ref in part:
            content = by_vid[ref]
            if not fits(len(content) + 100):
                full = True
                break
            cards.append({"kind": "version", "name": name, "content": content})
            size += len(content) + 100
    return cards


def protocol_size(card: dict) -> int:
    return len(card["content"]) + 120 + 16 * len(card.get("keys", ()))


_LINE_TABLE = re.compile(r"^[IUD] (\S+) ", re.M)
_LINE_DIGEST = re.compile(r"^[IU] \S+ [0-9a-f]+ ([0-9a-f]+)", re.M)
_PARENT = re.compile(r"^parent ([0-9a-f]+)$", re.M)


def key_columns(db: Database, cards: list[dict]) -> dict[str, str]:
    """The key column of every table the commit cards name (a receiver needs it to make the table)."""
    from ..core.commits import decode_name

    tables: set[str] = set()
    for card in cards:
        if card["kind"] == "commit":
            tables.update(map(decode_name, set(_LINE_TABLE.findall(card["content"]))))
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


def make_clusters(db: Database, *, unsent: bool = False) -> list[str]:
    """Gather the unclustered artifacts into clusters (Fossil's rule: at least CLUSTER_MIN of them,
    at most CLUSTER_MAX per cluster, the last one taking the rest). The new clusters are unclustered
    in turn, and gathered again while there are enough of them; with `unsent` (a client about to
    push) they are unsent too, so they go out with what they list. Returns the names that were
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
        if unsent:
            c.executemany("INSERT OR IGNORE INTO nsl_unsent(rid) VALUES (?)", [(r,) for r in new])
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
    checked = [_check_name(card, algo) for card in cards]
    here = known(db, [name for _, name, _ in checked])
    marked = _clustered_phantoms(db, [name for _, name, _ in checked])
    c.executemany("DELETE FROM nsl_phantom WHERE name = ?", [(name,) for _, name, _ in checked])
    versions, commits_, clusters = [], [], []
    seen = set()
    for card, (kind, name, content) in zip(cards, checked):
        if name in here or name in seen:
            res.duplicates += 1
            continue
        seen.add(name)
        res.files += 1
        if kind == VERSION:
            try:
                rowtext.check_content(content)
            except ValueError as e:
                raise BadArtifact(f"version {name[:12]} is not a valid typed encoding: {e}") from None
            versions.append((name, content))
        elif kind == CLUSTER:
            try:
                clusters.append((name, content, parse_cluster(content, algo)))
            except ValueError as e:
                raise BadArtifact(f"cluster {name[:12]} is malformed: {e}") from None
        else:
            try:
                pc = parse_commit_text(content, algo)
            except ValueError as e:
                raise BadArtifact(f"commit {name[:12]} is malformed: {e}") from None
            keys = card.get("keys")
            if not isinstance(keys, list) or len(keys) != len(pc.lines):
                raise BadArtifact(f"commit {name[:12]} came without the key of each of its lines")
            commits_.append((name, content, pc, keys))
    # Everything the batch brings is staged (or, a cluster, stored) before anything it names is looked
    # up: a commit and a cluster listing it can come in one reply, in any order, and neither may
    # then be taken for missing.
    c.executemany("INSERT INTO nsl_staged(name, kind, content) VALUES (?, ?, ?)",
                  [(name, "V" if name in marked else "v", content) for name, content in versions])
    c.executemany("INSERT INTO nsl_staged(name, kind, content, extra) VALUES (?, ?, ?, ?)",
                  [(name, "C" if name in marked else "c", content, orjson.dumps(keys).decode())
                   for name, content, _, keys in commits_])
    for name, content, _ in clusters:
        kid = c.execute("INSERT INTO nsl_cluster(uuid, content) VALUES (?, ?)", (name, content)).lastrowid
        register(db, name, CLUSTER, kid, clustered=name in marked)
    for _, _, pc, _ in commits_:
        res.new_phantoms += add_phantoms(db, pc.parents, COMMIT)
        res.new_phantoms += add_phantoms(db, [ln[3] for ln in pc.lines if ln[3]], VERSION)
    for _, _, members in clusters:
        res.new_phantoms += take_members(db, members)
    if versions or commits_:
        apply_ready(db, key_cols, res)
    return res


def _contents(db: Database, digests: list[str]) -> dict[str, str]:
    """digest -> typed content of the versions here (received and waiting, or in the history)."""
    out: dict[str, str] = {}
    for i in range(0, len(digests), 500):
        part = digests[i:i + 500]
        q = ",".join("?" * len(part))
        out.update(db.conn.execute(f"SELECT name, content FROM nsl_staged WHERE kind IN ('v', 'V') AND name IN ({q})",
                                   part).fetchall())
        rest = [d for d in part if d not in out]
        if rest:
            q = ",".join("?" * len(rest))
            out.update(db.conn.execute(
                f"SELECT a.name, v.content FROM nsl_artifact a JOIN nsl_version v ON v.vid = a.ref "
                f"WHERE a.kind = 'v' AND a.name IN ({q})", rest).fetchall())
    return out


def _count_here(db: Database, digests: list[str]) -> int:
    n = 0
    for i in range(0, len(digests), 500):
        part = digests[i:i + 500]
        q = ",".join("?" * len(part))
        n += db.conn.execute(f"SELECT (SELECT count(*) FROM nsl_staged WHERE kind IN ('v', 'V') AND name IN ({q})) + "
                             f"(SELECT count(*) FROM nsl_artifact WHERE kind = 'v' AND name IN ({q}) AND name NOT IN "
                             f"(SELECT name FROM nsl_staged WHERE name IN ({q})))", (*part, *part, *part)).fetchone()[0]
    return n


def apply_ready(db: Database, key_cols: dict, res: Received | None = None) -> Received:
    """Write every staged commit whose parents and versions are all here, parents first."""
    res = res or Received()
    c = db.conn
    algo = db.hash_algo
    # A waiting commit is only parsed once all it names is here: checking is cheap (its parent and
    # digest fields, found by pattern), parsing a large one is not, and it may wait many rounds.
    staged = {}
    for name, kind, content, extra in c.execute(
            "SELECT name, kind, content, extra FROM nsl_staged WHERE kind IN ('c', 'C')").fetchall():
        staged[name] = (content, extra, _PARENT.findall(content), kind == "C")  # only header lines start with "parent "
    if not staged:
        return res
    parents = list({p for _, _, ps, _ in staged.values() for p in ps})
    have_commits = set()
    for i in range(0, len(parents), 500):
        part = parents[i:i + 500]
        have_commits.update(r[0] for r in c.execute(
            f"SELECT uuid FROM nsl_commit WHERE uuid IN ({','.join('?' * len(part))})", part))
    progress = True
    while staged and progress:
        progress = False
        for name in sorted(staged):
            content, extra, ps, clustered = staged[name]
            if not all(p in have_commits for p in ps):
                continue
            digests = list(dict.fromkeys(_LINE_DIGEST.findall(content)))
            if _count_here(db, digests) < len(digests):
                continue
            pc, keys = parse_commit_text(content, algo), orjson.loads(extra)
            contents = _contents(db, digests)
            marked = []     # versions a cluster here lists: they are not unclustered
            for part, q in _chunks(digests):
                marked += [r[0] for r in c.execute(f"SELECT name FROM nsl_staged WHERE kind = 'V' AND name IN ({q})",
                                                   part)]
            applied = incoming.apply(db, pc, keys, contents.get, key_cols)
            register(db, name, COMMIT, applied.cid, clustered=clustered)
            lo = c.execute("SELECT vid_lo FROM nsl_commit WHERE cid = ?", (applied.cid,)).fetchone()[0]
            new = [(ln[3], lo + i) for i, ln in enumerate(pc.lines) if ln[3]]
            before = c.execute("SELECT ifnull(max(rid), 0) FROM nsl_artifact").fetchone()[0]
            c.executemany("INSERT OR IGNORE INTO nsl_artifact(name, kind, ref) VALUES (?, 'v', ?)", new)
            c.execute("INSERT OR IGNORE INTO nsl_unclustered(rid) SELECT rid FROM nsl_artifact WHERE rid > ?", (before,))
            for part, q in _chunks(marked):
                c.execute(f"DELETE FROM nsl_unclustered WHERE rid IN (SELECT rid FROM nsl_artifact "
                          f"WHERE rid > ? AND name IN ({q}))", (before, *part))
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
    return dict(db.conn.execute("SELECT lower(kind), count(*) FROM nsl_staged GROUP BY lower(kind)").fetchall())
