"""`nsl clone`: a new database holding everything a remote has, streamed in the remote's own order
(Fossil's clone protocol: every reply goes on from where the last one stopped), not the phantom loop.

The copy is built in a temporary file next to the target and renamed into place only when complete,
so an interrupted clone leaves nothing behind. Every hash is checked as it arrives: each version's
digest and row text, each commit's uuid over its whole text, each cluster's name.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from ..core import commits, conflicts, rowtext, states
from ..core.commits import header_text, is_hash
from ..core.database import Database, check_table_name, gc_pause, gc_resume
from ..core.schema import quote
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


class _Builder:
    """Writes the streamed commits into the new database, checking every hash."""

    def __init__(self, db: Database, key_cols: dict):
        self.db = db
        self.c = db.conn
        self.algo = db.hash_algo
        self.h = rowtext.hasher(self.algo)
        self.key_cols = key_cols
        self.tables: dict[str, tuple[int, int | None]] = {}   # name -> (tid, key column index per header)
        self.json_cols: set[tuple[str, str]] = set()
        self.cur = None          # the commit being received: [uuid, cid, whole hasher, objs hasher, n, nlines]
        self.by_uuid: dict[str, int] = {}
        self.next_vid = 1
        self.applied = 0
        self.lines = 0
        self.leaves: set[int] = set()
        self.headers: dict[str, dict] = {}   # table -> headers in the order they came

    def table(self, name: str, content: str) -> None:
        if name in self.tables:
            return
        try:
            check_table_name(name)
        except InvalidName as e:
            raise BadArtifact(f"the remote has a table named {name!r}, which nsl does not allow: {e.message}") from None
        key_col = self.key_cols.get(name)
        cols = rowtext.decode_header(content.partition("\n")[0])
        if key_col is None or key_col not in cols:
            raise BadArtifact(f"table {name!r}: the remote did not say which column is its key")
        body = ", ".join([f"{quote(key_col)} PRIMARY KEY"] + [quote(x) for x in cols if x != key_col])
        self.c.execute(f"CREATE TABLE {quote(name)} ({body})")
        tbl = self.db.track_table(name, key_col)
        self.tables[name] = (tbl.tid, None)

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
            if not isinstance(ch.get("db"), str) or not isinstance(ch.get("date"), str) \
                    or (meta is not None and not isinstance(meta, str)):
                raise SyncError("the remote sent a malformed commit header")
            header = header_text(ch["db"], ch["date"], parents, meta)
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
        texts = []
        groups: dict[str, list] = {}
        for i, ln in enumerate(lines):
            if not isinstance(ln, list) or len(ln) != 7:
                raise SyncError("the remote sent a malformed commit line")
            op, tbl, key, vuuid, digest, parents, content = ln
            if op not in ("I", "U", "D") or not isinstance(tbl, str) or type(key) not in (str, int):
                raise SyncError("the remote sent a malformed commit line")
            if op == "D":
                if content is not None or not parents:
                    raise BadArtifact(f"commit {uuid[:12]}: a deletion line carries content or no parent")
            else:
                if not isinstance(content, str):
                    raise BadArtifact(f"commit {uuid[:12]}: a line of {tbl}/{key} has no content")
                try:
                    rowtext.check_content(content)
                except ValueError as e:
                    raise BadArtifact(f"version {str(digest)[:12]}: {e}") from None
                self.table(tbl, content)
                head = content.partition("\n")[0]
                groups.setdefault(head, []).append((i, content))
                self.headers.setdefault(tbl, {}).setdefault(head, None)
            rows.append((self.next_vid + i, cid, tbl, key, op, vuuid, digest, parents, content))
            texts.append(commits.line_text(op, tbl, vuuid, digest, parents))
        self._check_versions(rows, groups, uuid)
        chunk = "".join(texts).encode("utf-8", "surrogatepass")
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
        """Digest and row text of every version, a column at a time per header, and its key."""
        for head, items in groups.items():
            cols = rowtext.decode_header(head)
            bodies = [ct.partition("\n")[2] for _, ct in items]
            texts = rowtext.cells_row_texts(bodies, len(cols))
            for (i, ct), text in zip(items, texts):
                r = rows[i]
                if self.h(ct.encode("utf-8", "surrogatepass")).hexdigest() != r[6]:
                    raise BadArtifact(f"version {str(r[6])[:12]} of {r[2]}/{r[3]} does not hash to its name")
                if self.h(text).hexdigest() != r[5]:
                    raise BadArtifact(f"version {str(r[6])[:12]} of {r[2]}/{r[3]}: its row text does not hash "
                                      f"to its uuid")
            tname = rows[items[0][0]][2]
            kc = self.key_cols.get(tname)
            if kc in cols:
                ki = cols.index(kc)
                keys_enc = rowtext.encode_values([(rows[i][3],) for i, _ in items], 1)
                for (i, ct), b, want in zip(items, bodies, keys_enc):
                    if b.split("|", ki + 1)[ki] != want:
                        raise BadArtifact(f"version of {rows[i][2]}/{rows[i][3]}: its key column does not hold its key")
            if any(b.startswith("j") or "|j" in b for b in bodies):
                for b in bodies:
                    for cc, cell in zip(cols, b.split("|")):
                        if cell.startswith("j"):
                            self.json_cols.add((tname, cc))

    def finish(self, clusters: list[dict]) -> None:
        if self.cur is not None:
            raise SyncError(f"the remote ended the clone inside commit {self.cur[0][:12]}")
        c = self.c
        c.executemany("INSERT INTO nsl_leaf(cid) VALUES (?)", [(x,) for x in sorted(self.leaves)])
        for tbl, col in self.json_cols:
            c.execute("INSERT OR IGNORE INTO nsl_json_column(tid, name) SELECT tid, ? FROM nsl_table WHERE name = ?",
                      (col, tbl))
        # Every column any version of a table has, in the order they first appear in the history (the
        # order the remote's own saves added them in).
        for tbl in self.db.tables():
            seen = list(tbl.columns)
            for head in self.headers.get(tbl.name, ()):
                for col in rowtext.decode_header(head):
                    if col not in seen:
                        c.execute(f"ALTER TABLE {tbl.q} ADD COLUMN {quote(col)}")
                        seen.append(col)
        # The user tables show the head's state; objects with several leaves show their policy's pick.
        conflicts.recompute(self.db)
        state = states.head_state(self.db)
        try:
            for tbl in self.db.tables():
                items = [tuple(r) for r in c.execute(f"SELECT key, vid FROM temp.{state} WHERE tbl = ?", (tbl.name,))]
                _insert_rows(self.db, tbl, items)
        finally:
            states.drop(self.db, state)
        from ..core.travel import _merged_rows

        _merged_rows(self.db)
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


def _insert_rows(db: Database, tbl, items) -> None:
    """Fill an empty user table from (key, vid) pairs, grouped by header, without triggers."""
    if not items:
        return
    db.mute_triggers(tbl)
    _fill(db, tbl, [v for _, v in items])
    db.unmute_triggers(tbl)


def _fill(db: Database, tbl, vids: list[int]) -> None:
    groups: dict[str, list] = {}
    for i in range(0, len(vids), 900):
        part = vids[i:i + 900]
        for (content,) in db.conn.execute(
                f"SELECT content FROM nsl_version WHERE vid IN ({','.join('?' * len(part))})", part):
            head, _, body = content.partition("\n")
            groups.setdefault(head, []).append(body)
    for head, bodies in groups.items():
        cols = rowtext.decode_header(head)
        for col in cols:
            if col not in tbl.columns:
                db.conn.execute(f"ALTER TABLE {tbl.q} ADD COLUMN {quote(col)}")
                tbl.columns.append(col)
        db.conn.executemany(
            f"INSERT INTO {tbl.q} ({', '.join(quote(x) for x in cols)}) VALUES ({', '.join('?' * len(cols))})",
            rowtext.decode_bodies(bodies, len(cols)))


def clone(url: str, path, token: str | None = None, *, token_env: str | None = None, progress=None) -> Summary:
    """Make a new database at `path` (which must not exist) holding everything the remote has, with
    the remote as `origin`. Its own db_code is new; its project code is the remote's."""
    target = Path(path)
    if target.exists() and (target.is_dir() or target.stat().st_size > 0):
        raise BadInput(f"{str(target)!r} exists already; clone makes a new database",
                       hint="give another path, or remove that file first")
    tmp = target.with_name(f".{target.name}.clone-{secrets.token_hex(4)}")
    summary = Summary(url, "clone")
    tr = open_transport(url, token)
    gc_was_on = gc_pause()
    db = None
    try:
        after = None
        builder = None
        rnd = 0
        while True:
            rnd += 1
            raw = tr.exchange({"nsl": protocol.PROTOCOL, "clone": {"after": after}})
            reply = protocol.check_reply(raw)
            cl = reply.get("clone")
            if cl is None:
                raise SyncError("the remote did not answer the clone request with a clone part")
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
                nxt = cl.get("next")
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
            if not (isinstance(nxt, list) and len(nxt) == 2 and all(type(x) is int for x in nxt)) or nxt == after:
                raise SyncError("the remote's clone does not move forward")
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
        gc_resume(gc_was_on)
        summary.bytes_sent, summary.bytes_received, summary.rounds = tr.sent, tr.received, tr.round_trips
        tr.close()

