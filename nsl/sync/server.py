"""The server side of sync: answer one request message against a database.

Nothing is remembered between requests; each one is a single SQLite transaction. What the server
learns from a push (phantoms for what the client has and it lacks) lives in the database itself,
as in Fossil, and the client drives the loop.
"""
from __future__ import annotations

import time

from ..core import commits, objects
from ..core.database import Database
from ..errors import CheckedOut, ProjectMismatch, PushRefused, SyncError, UncommittedChanges
from . import artifacts, protocol

def _identity(db: Database) -> dict:
    return {"nsl": protocol.PROTOCOL, "project": db.meta("project_code"), "from": db.db_code,
            "hash": db.hash_algo}


def handle(db: Database, message, *, may_push: bool = True) -> dict:
    """The reply to one sync request (`message` is the parsed JSON). `may_push` says whether the
    caller's role allows sending artifacts; refusing changes nothing."""
    req = protocol.check_request(message)
    if "clone" in req:
        return clone_reply(db, req["clone"]["after"])
    if req["project"] != db.meta("project_code"):
        raise ProjectMismatch("the two databases belong to different projects (different project codes)")
    if req["from"] == db.db_code:
        raise SyncError("a database cannot sync with itself (the remote is this very database)")
    if req["hash"] != db.hash_algo:
        raise ProjectMismatch(f"this database hashes with {db.hash_algo}, the other with {req['hash']}")
    pushing = bool(req["files"] or req["igot"])
    if pushing and not may_push:
        raise PushRefused("this token may pull but not push", hint="push with a token whose role is sync, write or admin")
    if req["files"] and db.meta("checkout"):
        raise CheckedOut("the remote database has an old commit checked out and takes no pushes until it returns")
    started = time.monotonic()
    reply = _identity(db)
    with db.write(check_checkout=False):
        artifacts.catch_up(db)
        received = artifacts.Received()
        if req["files"]:
            if objects.status(db):
                raise UncommittedChanges("the remote database has uncommitted changes; it takes no pushes until "
                                         "they are committed", hint="run `nsl commit` (or `nsl restore`) on the remote")
            received = artifacts.receive(db, req["files"], req["tables"])
        if req["igot"]:
            artifacts.add_phantoms(db, req["igot"])
        reply["gimme"] = artifacts.phantoms(db, protocol.REPLY_GIMME_MAX) if req["push"] else []
        files = []
        just_clustered: list[str] = []
        if req["pull"]:
            if artifacts.unclustered_count(db) >= artifacts.CLUSTER_MIN:
                just_clustered = artifacts.make_clusters(db)
            if req["gimme"]:
                files = artifacts.files_of(db, req["gimme"], protocol.REPLY_BYTES,
                                           started + protocol.REPLY_SECONDS)
        head = commits.head(db)
        reply["head"] = head
        reply["files"] = files
        reply["tables"] = artifacts.key_columns(db, files)
        if req["pull"] and req["head"] != head:
            reply["igot"] = artifacts.unclustered_names(db)
            # What was unclustered a moment ago is told of too (when it is not much), so a client
            # that lacks it asks for it now instead of asking for the new cluster first.
            if len(just_clustered) <= 2 * artifacts.CLUSTER_MAX:
                known = set(reply["igot"])
                reply["igot"] += [n for n in just_clustered if n not in known]
            reply["igot_complete"] = True
        else:
            reply["igot"] = []
            reply["igot_complete"] = False
        reply["received"] = received.to_dict()
    return reply


def clone_reply(db: Database, after) -> dict:
    """The next part of a clone: whole commits and lines in local order after `after` ([cid, line]),
    about CLONE_BYTES of them; the last part also carries every cluster."""
    reply = _identity(db)
    if after is None:
        # A clone starts by clustering what is unclustered, so the copy begins with few loose ends.
        with db.write(check_checkout=False):
            artifacts.catch_up(db)
            if artifacts.unclustered_count(db) >= artifacts.CLUSTER_MIN:
                artifacts.make_clusters(db)
    with db.read():
        c = db.conn
        start_cid, start_line = after if after is not None else (0, 0)
        chunks, size, nxt = [], 0, None
        tables = {}
        rows = c.execute("SELECT cid, uuid, db, date, parents, meta, nlines, vid_lo, vid_hi FROM nsl_commit "
                         "WHERE cid >= ? ORDER BY cid", (start_cid,))
        for cid, uuid, dbc, date, parents, meta, nlines, lo, hi in rows.fetchall():
            first = start_line if cid == start_cid else 0
            if first >= nlines:
                continue
            budget = max(1, (protocol.CLONE_BYTES - size) // 200)
            lines = c.execute("SELECT op, tbl, key, uuid, digest, parents, content FROM nsl_version "
                              "WHERE vid BETWEEN ? AND ? ORDER BY vid LIMIT ?", (lo + first, hi, budget)).fetchall()
            chunk = {"uuid": uuid, "db": dbc, "date": date, "parents": parents.split() if parents else [],
                     "meta": meta, "nlines": nlines, "first": first, "lines": [list(r) for r in lines]}
            chunks.append(chunk)
            size += 200 + sum(len(r[6] or "") + 100 for r in lines)
            for r in lines:
                tables.setdefault(r[1], None)
            if first + len(lines) < nlines:
                nxt = [cid, first + len(lines)]
                break
            if size >= protocol.CLONE_BYTES:
                nxt = [cid + 1, 0]
                break
        key_cols = dict(c.execute("SELECT name, key_col FROM nsl_table").fetchall())
        out = {"commits": chunks, "next": nxt, "tables": {t: key_cols[t] for t in tables if t in key_cols}}
        if nxt is None:
            out["clusters"] = [{"kind": "cluster", "name": u, "content": t}
                               for u, t in c.execute("SELECT uuid, content FROM nsl_cluster ORDER BY kid")]
        reply["head"] = commits.head(db)
        reply["clone"] = out
        reply["files"], reply["tables"], reply["igot"], reply["gimme"] = [], {}, [], []
    return reply
