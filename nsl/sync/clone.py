"""`nsl clone`: a new database holding everything a remote has, streamed in the remote's own order
(Fossil's clone protocol: every reply goes on from where the last one stopped), not the phantom loop.

The copy is built in a temporary file next to the target and renamed into place only when complete,
so an interrupted clone leaves nothing behind. Every hash is checked as it arrives: each version's
digest and row text, each commit's uuid over its whole text, each cluster's name.
"""
from __future__ import annotations

import fcntl
import os
import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..core import commits, conflicts, rowtext, states
from ..core.commits import is_hash
from ..core.database import Database, check_table_name, gc_pause, gc_resume
from ..core.schema import bool_columns, json_columns, quote
from ..errors import BadArtifact, BadInput, InvalidName, SyncError
from . import artifacts, protocol
from .client import Summary
from .transport import open_transport


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal", "-synclock"):
        try:
            os.remove(str(path) + suffix)
        except FileNotFoundError:
            pass


def _remove_stale(target: Path) -> None:
    """Remove what clones into `target` that were killed left behind (their lock is free)."""
    for p in target.parent.glob(f".{target.name}.clone-*"):
        if p.name.endswith(("-wal", "-shm", "-journal", "-synclock")):
            continue
        fd = os.open(str(p) + "-synclock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # a clone in progress
        finally:
            os.close(fd)
        _remove(p)


class _Builder:
    """Writes the streamed commits into the new database, checking every hash."""

    def __init__(self, db: Database, key_cols: dict):
        self.db = db
        self.c = db.conn
        self.algo = db.hash_algo
        self.h = rowtext.hasher(self.algo)
        self.key_cols = key_cols
        self.tables: dict = {}      # name -> Table
        self.json_cols: set[tuple[str, str]] = set()
        self.bool_cols: set[tuple[str, str]] = set()
        self.cur = None          # the commit being received: [uuid, cid, whole hasher, objs hasher, n, nlines]
        self.by_uuid: dict[str, int] = {}
        self.next_vid = 1
        self.applied = 0
        self.lines = 0
        self.leaves: set[int] = set()
        self.headers: dict[str, dict] = {}   # table -> headers in the order they came

    def table(self, name: str, head: str):
        """The user table (made on first sight, its triggers off until finish), with every column of
        `head` (columns are added in the order they first appear, as the remote's saves added them)."""
        tbl = self.tables.get(name)
        if tbl is None:
            try:
                check_table_name(name)
            except InvalidName as e:
                raise BadArtifact(f"the remote has a table named {name!r}, which nsl does not allow: {e.message}") from None
            key_col = self.key_cols.get(name)
            cols = rowtext.decode_header(head)
            if key_col is None or key_col not in cols:
                raise BadArtifact(f"table {name!r}: the remote did not say which column is its key")
            body = ", ".join([f"{quote(key_col)} PRIMARY KEY"] + [quote(x) for x in cols if x != key_col])
            self.c.execute(f"CREATE TABLE {quote(name)} ({body})")
            tbl = self.tables[name] = self.db.track_table(name, key_col)
            self.db.mute_triggers(tbl)
        if head not in self.headers.setdefault(name, {}):
            self.headers[name][head] = None
            for col in rowtext.decode_header(head):
                if col not in tbl.columns:
                    self.c.execute(f"ALTER TABLE {tbl.q} ADD COLUMN {quote(col)}")
                    tbl.columns.append(col)
        return tbl

    def chunk(self, ch: dict) -> None:
        c = self.c
        uuid, first, nlines, lines = ch.get("uuid"), ch.get("first"), ch.get("nlines"), ch.get("lines")
        if not is_hash(uuid, self.algo) or type(first) is not int or type(nlines) is not int \
                or not isinstance(lines, list) or not lines:
            raise SyncError("the remote sent a malformed clone part")
        if first == 0:
            if self.cur is not None:
                raise SyncError(f"the remote left commit {self.cur[0][:12]} unfinished")
            parents = ch.get("parents") or []
            meta = ch.get("meta")
            if not all(p in self.by_uuid for p in parents) or parents != sorted(set(parents)):
                raise BadArtifact(f"commit {uuid[:12]} names parents the remote did not send first")
            try:
                header = commits.checked_header(ch.get("db"), ch.get("date"), parents, meta, self.algo)
            except ValueError as e:
                raise BadArtifact(f"commit {uuid[:12]}: {e}") from None
            cid = c.execute("INSERT INTO nsl_commit(uuid, db, date, parents, meta, objects_uuid, nlines, vid_lo) "
                            "VALUES (?, ?, ?, ?, ?, '', ?, ?)",
                            (uuid, ch["db"], ch["date"], " ".join(parents), meta, nlines, self.next_vid)).lastrowid
            pcids = [self.by_uuid[p] for p in parents]
            c.executemany("INSERT INTO nsl_plink(parent, child) VALUES (?, ?)", [(p, cid) for p in pcids])
            self.leaves.difference_update(pcids)
            self.leaves.add(cid)
            self.cur = [uuid, cid, self.h(header.encode("utf-8", "surrogatepass")), self.h(), 0, nlines, header]
        elif self.cur is None or self.cur[0] != uuid or self.cur[4] != first:
            raise SyncError("the remote's clone parts do not follow on")
        cid = self.cur[1]
        rows = []
        groups: dict[tuple, list] = {}
        vid = self.next_vid
        for i, ln in enumerate(lines):
            try:
                op, tbl, key, vuuid, digest, parents, content = ln
            except (TypeError, ValueError):
                raise SyncError("the remote sent a malformed commit line") from None
            if type(tbl) is not str or type(key) not in (str, int) or (parents is not None and type(parents) is not str):
                raise SyncError("the remote sent a malformed commit line")
            if op == "D":
                if content is not None or not parents or vuuid is not None or digest is not None:
                    raise BadArtifact(f"commit {uuid[:12]}: a deletion line carries content or no parent")
            elif op == "I" or op == "U":
                if type(content) is not str or (op == "U") != (parents is not None):
                    raise BadArtifact(f"commit {uuid[:12]}: a line of {tbl}/{key} is malformed")
                head, sep, body = content.partition("\n")
                groups.setdefault((tbl, head), []).append((i, body))
            else:
                raise SyncError("the remote sent a malformed commit line")
            rows.append((vid + i, cid, tbl, key, op, vuuid, digest, parents, content))
        self._check_versions(rows, groups, uuid)
        self._deletions(rows)
        text = "".join([commits.line_text(r[4], r[2], r[5], r[6], r[7]) for r in rows])
        chunk = text.encode("utf-8", "surrogatepass")
        self.cur[2].update(chunk)
        self.cur[3].update(chunk)
        c.executemany("INSERT INTO nsl_version(vid, cid, tbl, key, op, uuid, digest, parents, content) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        self.next_vid += len(rows)
        self.lines += len(rows)
        self.cur[4] += len(rows)
        if self.cur[4] > self.cur[5]:
            raise SyncError("the remote sent more lines than its commit has")
        if self.cur[4] == self.cur[5]:
            got = self.cur[2].hexdigest()
            if got != uuid:
                raise BadArtifact(f"commit {uuid[:12]} does not hash to its name (its text gives {got[:12]}): "
                                  f"the remote's copy was changed or damaged")
            c.execute("UPDATE nsl_commit SET objects_uuid = ?, vid_hi = ? WHERE cid = ?",
                      (self.cur[3].hexdigest(), self.next_vid - 1, cid))
            self.by_uuid[uuid] = cid
            self.cur = None
            self.applied += 1

    def _check_versions(self, rows, groups, uuid):
        """Every version as nsl writes it, its digest and row text, and its key; a column at a time per
        table and header. Parents of updates and deletions must name versions (checked by hash form
        here; `nsl verify` checks they are earlier versions of the object)."""
        algo = self.algo
        for r in rows:
            if r[7] is not None and not all(is_hash(x, algo) for x in r[7].split(",")):
                raise BadArtifact(f"commit {uuid[:12]}: a line of {r[2]}/{r[3]} names a malformed parent")
        h = self.h
        for (tname, head), items in groups.items():
            try:
                cols = rowtext.check_header(head)
                bodies = [b for _, b in items]
                for b in bodies:
                    rowtext.check_body(b, len(cols))
                texts = rowtext.cells_row_texts(bodies, len(cols))
            except (ValueError, UnicodeDecodeError) as e:
                raise BadArtifact(f"commit {uuid[:12]}: a version of table {tname!r} is not a valid typed "
                                  f"encoding: {e}") from None
            tbl = self.table(tname, head)
            prefix = head + "\n"
            for (i, b), text in zip(items, texts):
                r = rows[i]
                if h((prefix + b).encode("utf-8", "surrogatepass")).hexdigest() != r[6]:
                    raise BadArtifact(f"version {str(r[6])[:12]} of {r[2]}/{r[3]} does not hash to its name")
                if h(text).hexdigest() != r[5]:
                    raise BadArtifact(f"version {str(r[6])[:12]} of {r[2]}/{r[3]}: its row text does not hash "
                                      f"to its uuid")
            kc = self.key_cols.get(tname)
            if kc not in cols:
                raise BadArtifact(f"table {tname!r}: a version has no key column {kc!r}")
            bad = rowtext.key_mismatch(bodies, cols.index(kc), [rows[i][3] for i, _ in items])
            if bad is not None:
                r = rows[items[bad][0]]
                raise BadArtifact(f"version of {r[2]}/{r[3]}: its key column does not hold its key")
            self.json_cols.update((tname, cc) for cc in json_columns(cols, bodies))
            self.bool_cols.update((tname, cc) for cc in bool_columns(cols, bodies))
            # The row each line makes, now: lines come in history order, so the last one written for
            # an object is its last line, which is what it shows unless it has several leaves (finish
            # puts those right).
            self.c.executemany(
                f"INSERT OR REPLACE INTO {tbl.q} ({', '.join(quote(x) for x in cols)}) "
                f"VALUES ({', '.join('?' * len(cols))})", rowtext.decode_bodies(bodies, len(cols)))

    def _deletions(self, rows):
        by_table: dict[str, list] = {}
        for r in rows:
            if r[4] == "D":
                by_table.setdefault(r[2], []).append(r[3])
        for tname, keys in by_table.items():
            tbl = self.tables.get(tname)
            if tbl is None:
                raise BadArtifact(f"a deletion in table {tname!r} comes before anything was made there")
            for i in range(0, len(keys), 500):
                part = keys[i:i + 500]
                self.c.execute(f"DELETE FROM {tbl.q} WHERE {tbl.qkey} IN ({','.join('?' * len(part))})", part)

    def finish(self, clusters: list[dict]) -> None:
        if self.cur is not None:
            raise SyncError(f"the remote ended the clone inside commit {self.cur[0][:12]}")
        c = self.c
        c.executemany("INSERT INTO nsl_leaf(cid) VALUES (?)", [(x,) for x in sorted(self.leaves)])
        for tbl, col in self.json_cols:
            c.execute("INSERT OR IGNORE INTO nsl_json_column(tid, name) SELECT tid, ? FROM nsl_table WHERE name = ?",
                      (col, tbl))
        for tbl, col in self.bool_cols:
            c.execute("INSERT OR IGNORE INTO nsl_bool_column(tid, name) SELECT tid, ? FROM nsl_table WHERE name = ?",
                      (col, tbl))
        # Rows are in; objects with several leaves show their policy's pick, and triggers come back.
        if conflicts.recompute(self.db):
            state = states.head_state(self.db)
            try:
                for (tname,) in c.execute("SELECT DISTINCT tbl FROM nsl_shown").fetchall():
                    items = c.execute(f"SELECT s.key, (SELECT x.vid FROM temp.{state} x WHERE x.tbl = s.tbl "
                                      f"AND x.key = s.key) FROM nsl_shown s WHERE s.tbl = ?", (tname,)).fetchall()
                    states.write_rows(self.db, self.tables[tname], [tuple(r) for r in items])
            finally:
                states.drop(self.db, state)
            from ..core.travel import _merged_rows

            _merged_rows(self.db)
        for tbl in self.tables.values():
            self.db.unmute_triggers(tbl)
        # The artifact index, as received (nothing is unsent); clusters as the remote made them.
        c.execute("INSERT INTO nsl_artifact(name, kind, ref) SELECT digest, 'v', min(vid) FROM nsl_version "
                  "WHERE digest IS NOT NULL GROUP BY digest")
        c.execute("INSERT OR IGNORE INTO nsl_artifact(name, kind, ref) SELECT uuid, 'c', cid FROM nsl_commit ORDER BY cid")
        c.execute("CREATE TEMP TABLE nsl_clustered(name TEXT PRIMARY KEY) WITHOUT ROWID")
        h = rowtext.hasher(self.algo)
        for card in clusters:
            if not isinstance(card, dict) or not isinstance(card.get("content"), str):
                raise SyncError("the remote sent a malformed cluster")
            name, text = card.get("name"), card["content"]
            if h(text.encode()).hexdigest() != name:
                raise BadArtifact(f"cluster {str(name)[:12]} does not hash to its name")
            try:
                members = artifacts.parse_cluster(text, self.algo)
            except ValueError as e:
                raise BadArtifact(f"cluster {name[:12]} is malformed: {e}") from None
            kid = c.execute("INSERT OR IGNORE INTO nsl_cluster(uuid, content) VALUES (?, ?)", (name, text)).lastrowid
            c.execute("INSERT OR IGNORE INTO nsl_artifact(name, kind, ref) VALUES (?, 'k', ?)", (name, kid))
            c.executemany("INSERT OR IGNORE INTO temp.nsl_clustered(name) VALUES (?)", [(m,) for m in members])
        c.execute("INSERT INTO nsl_unclustered(rid) SELECT rid FROM nsl_artifact a WHERE NOT EXISTS "
                  "(SELECT 1 FROM temp.nsl_clustered m WHERE m.name = a.name)")
        c.execute("DROP TABLE temp.nsl_clustered")
        self.db.set_meta("sync_cid", c.execute("SELECT ifnull(max(cid), 0) FROM nsl_commit").fetchone()[0])
        self.db.set_meta("sync_vid", c.execute("SELECT ifnull(max(vid), 0) FROM nsl_version").fetchone()[0])


def clone(url: str, path, token: str | None = None, *, token_env: str | None = None, progress=None) -> Summary:
    """Make a new database at `path` (which must not exist) holding everything the remote has, with
    the remote as `origin`. Its own db_code is new; its project code is the remote's."""
    target = Path(path)
    if target.exists() and (target.is_dir() or target.stat().st_size > 0):
        raise BadInput(f"{str(target)!r} exists already; clone makes a new database",
                       hint="give another path, or remove that file first")
    _remove_stale(target)
    tmp = target.with_name(f".{target.name}.clone-{secrets.token_hex(4)}")
    summary = Summary(url, "clone")
    tr = open_transport(url, token)
    # Held while the copy is built, so a later clone can tell a killed one's leftovers from a live one.
    held = os.open(str(tmp) + "-synclock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(held, fcntl.LOCK_EX)
    gc_was_on = gc_pause()
    db = None
    # The next part is fetched while this one is written: the remote's work and the network overlap
    # with the checking and writing here (one request at a time, in order).
    pool = ThreadPoolExecutor(1, thread_name_prefix="nsl-clone")

    def fetch(after):
        return protocol.check_reply(tr.exchange({"nsl": protocol.PROTOCOL, "clone": {"after": after}}))

    try:
        after = None
        builder = None
        rnd = 0
        pending = pool.submit(fetch, None)
        while True:
            rnd += 1
            reply = pending.result()
            cl = reply.get("clone")
            if cl is None:
                raise SyncError("the remote did not answer the clone request with a clone part")
            nxt = cl.get("next")
            if nxt is not None:
                if not (isinstance(nxt, list) and len(nxt) == 2 and all(type(x) is int for x in nxt)) or nxt == after:
                    raise SyncError("the remote's clone does not move forward")
                pending = pool.submit(fetch, nxt)
            if db is None:
                db, _ = Database.init(tmp, hash_algo=reply["hash"])
                with db.write(check_checkout=False):
                    db.set_meta("project_code", reply["project"])
                    summary.head_before = None
            key_cols = cl.get("tables") or {}
            if not isinstance(key_cols, dict):
                raise SyncError("the remote sent a malformed clone part")
            with db.write(check_checkout=False):
                if builder is None:
                    builder = _Builder(db, {})
                builder.key_cols.update(key_cols)
                for ch in cl["commits"]:
                    if not isinstance(ch, dict):
                        raise SyncError("the remote sent a malformed clone part")
                    builder.chunk(ch)
                if nxt is None:
                    builder.finish(cl.get("clusters") or [])
                    db.conn.execute("INSERT OR REPLACE INTO nsl_config(name, value) VALUES ('remote.origin.url', ?)",
                                    (url if url.lower().startswith(("http://", "https://")) else
                                     str(Path(url).resolve()),))
                    if token_env:
                        db.conn.execute("INSERT OR REPLACE INTO nsl_config(name, value) "
                                        "VALUES ('remote.origin.token-env', ?)", (token_env,))
            summary.artifacts_received = builder.lines + builder.applied
            summary.commits_applied = builder.applied
            if progress is not None:
                progress({"round": rnd, "received": summary.artifacts_received, "applied": builder.applied})
            if nxt is None:
                break
            after = nxt
        summary.head_after = commits.head(db)
        summary.conflicts = [tuple(r) for r in db.conn.execute("SELECT DISTINCT tbl, key FROM nsl_conflict")]
        db.close()
        db = None
        if target.exists():
            target.unlink()
        os.replace(tmp, target)
        return summary
    except BaseException:
        if db is not None:
            db.close()
        _remove(tmp)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        os.close(held)
        _remove(Path(str(tmp) + "-synclock"))
        gc_resume(gc_was_on)
        summary.bytes_sent, summary.bytes_received, summary.rounds = tr.sent, tr.received, tr.round_trips
        tr.close()

