"""The client side of sync: the loop that drives pull, push and sync until nothing is missing on
either side, and clone. The remote keeps no state between rounds; this side does, in its database
(phantoms, unsent, staged artifacts) and, for one run, in `already_sent`.

Each round is one request and one reply; what a reply brings is taken in one SQLite transaction, so
a run killed at any point keeps every round it finished, and the next run goes on from there.
"""
from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..core import commits, objects
from ..core.database import Database, busy_timeout
from ..errors import CheckedOut, ProjectMismatch, SyncBusy, SyncError, UncommittedChanges
from . import artifacts, protocol
from .transport import Transport, open_transport

MAX_ROUNDS = 100_000


@dataclass
class Summary:
    remote: str
    direction: str                      # pull, push, sync or clone
    rounds: int = 0
    artifacts_sent: int = 0
    artifacts_received: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    commits_applied: int = 0
    conflicts: list = field(default_factory=list)   # objects that came out of this run in conflict
    missing: int = 0                    # artifacts heard of that the remote could not send
    head_before: str | None = None
    head_after: str | None = None

    def to_dict(self) -> dict:
        return {"remote": self.remote, "direction": self.direction, "round_trips": self.rounds,
                "sent": {"artifacts": self.artifacts_sent, "bytes": self.bytes_sent},
                "received": {"artifacts": self.artifacts_received, "bytes": self.bytes_received},
                "commits_applied": self.commits_applied,
                "conflicts": [{"table": t, "key": k} for t, k in self.conflicts],
                "missing": self.missing, "head_before": self.head_before, "head_after": self.head_after}


@contextmanager
def sync_lock(path: Path):
    """One sync at a time per database (cron jobs overlap): an flock on DB-synclock, waited for up to
    the busy timeout. The kernel drops it when the process dies, so a killed sync never blocks."""
    lock_path = str(path) + "-synclock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + busy_timeout()
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise SyncBusy(f"another sync is running on {str(path)!r} (waited {busy_timeout():g} s)") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def _check_can_pull(db: Database) -> None:
    if db.meta("checkout"):
        raise CheckedOut("an old commit is checked out; pulling would change the tables you are looking at",
                         hint="run `nsl checkout HEAD` first")
    if objects.status(db):
        raise UncommittedChanges("you have uncommitted changes; pulling could overwrite them")


def run(db: Database, url: str, token: str | None = None, *, pull: bool = True, push: bool = True,
        progress=None, on_round=None, transport: Transport | None = None) -> Summary:
    """Pull and/or push between `db` and the remote at `url` until neither lacks anything."""
    direction = "sync" if pull and push else "pull" if pull else "push"
    summary = Summary(url, direction)
    with sync_lock(db.path):
        tr = transport or open_transport(url, token)
        try:
            _loop(db, tr, summary, pull, push, progress, on_round)
        finally:
            summary.bytes_sent, summary.bytes_received = tr.sent, tr.received
            summary.rounds = tr.round_trips
            if transport is None:
                tr.close()
    return summary


def _unsent(db: Database, skip: set, budget: int, at_least_one: bool = True) -> list[dict]:
    """Cards for unsent artifacts not sent yet in this run, about `budget` bytes of them (at least one,
    however large, unless `at_least_one` is false)."""
    cards, size = [], 0
    cur = db.conn.execute("SELECT a.name FROM nsl_unsent u JOIN nsl_artifact a ON a.rid = u.rid ORDER BY u.rid")
    while size < budget:
        rows = cur.fetchmany(2000)
        if not rows:
            break
        names = [r[0] for r in rows if r[0] not in skip]
        if names:
            more = artifacts.files_of(db, names, budget - size, at_least_one=at_least_one and not cards)
            if not more:
                break       # the next one does not fit: it goes in the next request
            cards += more
            size += sum(map(protocol.card_size, more))
    return cards


def _loop(db, tr, summary: Summary, pull, push, progress, on_round):
    if pull:
        _check_can_pull(db)
    with db.write(check_checkout=False):
        artifacts.catch_up(db)
        if push and artifacts.unclustered_count(db) >= artifacts.CLUSTER_MIN:
            # A pushing client clusters as a server does when pulled from: its igot list then stays
            # short however long its history, and the new clusters, unsent, go out with what they
            # list, so the remote need not cluster that again.
            artifacts.make_clusters(db, unsent=True)
    summary.head_before = commits.head(db)
    already_sent: set[str] = set()
    igot_sent: set[str] = set()
    remote_has: set[str] = set()        # names the remote listed as its own: never worth telling it of
    server_gimme: list[str] = []
    gimme_cap = protocol.GIMME_FIRST
    seen_complete_igot = False
    heads_equal = False
    for rnd in range(1, MAX_ROUNDS + 1):
        if on_round is not None:
            on_round(rnd)
        with db.write(check_checkout=False):
            artifacts.catch_up(db)   # saves made while the sync runs go out too
        with db.read():
            # A request holds about REQUEST_BYTES: the names asked for first (as many as the cap,
            # keeping PUSH_ROOM for files when pushing), then files, or names told of, in the rest.
            room = protocol.REQUEST_BYTES
            gimme = []
            if pull:
                most = protocol.names_in(room - (protocol.PUSH_ROOM if push else 0), db.hash_algo)
                gimme = artifacts.phantoms(db, min(gimme_cap, most))
                room -= len(gimme) * protocol.name_size(db.hash_algo)
            files, size = [], 0
            if push:
                wanted = [n for n in server_gimme if n not in already_sent]
                if wanted:
                    files = artifacts.files_of(db, wanted, room)
                    size = sum(map(protocol.card_size, files))
                if size < room:
                    names = {f["name"] for f in files}
                    files += _unsent(db, already_sent | names, room - size, at_least_one=not files)
            igot = []
            if push and rnd > 1 and not heads_equal and not files:
                # Unsent is spent and the heads still differ: say what is here, so the remote can
                # ask for what it lacks (artifacts that came from elsewhere are never "unsent").
                most = min(protocol.IGOT_MAX, protocol.names_in(room, db.hash_algo))
                igot = [n for n in artifacts.unclustered_names(db)
                        if n not in igot_sent and n not in remote_has][:most]
            request = {"nsl": protocol.PROTOCOL, "project": db.meta("project_code"), "from": db.db_code,
                       "hash": db.hash_algo, "head": commits.head(db), "pull": pull, "push": push,
                       "files": files, "tables": artifacts.key_columns(db, files), "igot": igot,
                       "gimme": gimme, "round": rnd}
        raw = tr.exchange(request)
        reply = protocol.check_reply(raw)
        if reply["project"] != db.meta("project_code"):
            raise ProjectMismatch("the remote belongs to another project")
        if reply["hash"] != db.hash_algo:
            raise ProjectMismatch(f"the remote hashes with {reply['hash']}, this database with {db.hash_algo}")
        sent_names = [f["name"] for f in files]
        with db.write(check_checkout=False):
            if pull and (reply["files"] or reply["igot"]):
                _check_can_pull(db)
            rec = artifacts.receive(db, reply["files"], reply["tables"]) if reply["files"] else artifacts.Received()
            new_phantoms = rec.new_phantoms
            if pull and reply["igot"]:
                new_phantoms += artifacts.add_phantoms(db, reply["igot"])
            # What the remote just took, or listed as its own, need not be pushed again.
            done = sent_names + [n for n in reply["igot"] if n not in remote_has]
            if done:
                for i in range(0, len(done), 500):
                    part = done[i:i + 500]
                    q = ",".join("?" * len(part))
                    db.conn.execute(f"DELETE FROM nsl_unsent WHERE rid IN (SELECT rid FROM nsl_artifact "
                                    f"WHERE name IN ({q}))", part)
            left = artifacts.phantom_count(db)
            my_head = commits.head(db)
        already_sent.update(sent_names)
        igot_sent.update(igot)
        remote_has.update(reply["igot"])
        summary.artifacts_sent += len(files)
        summary.artifacts_received += rec.files
        summary.commits_applied += rec.applied
        summary.conflicts.extend(rec.conflicts)
        server_gimme = [n for n in reply["gimme"] if n not in already_sent]
        heads_equal = my_head is not None and my_head == reply["head"]
        if reply["igot_complete"]:
            seen_complete_igot = True
        if gimme and len(reply["files"]) >= len(gimme):
            gimme_cap = min(gimme_cap * 2, protocol.names_in(protocol.REQUEST_BYTES, db.hash_algo))
        if progress is not None:
            progress({"round": rnd, "received": summary.artifacts_received, "sent": summary.artifacts_sent,
                      "missing": left, "applied": summary.commits_applied})
        pull_done = not pull or heads_equal or (seen_complete_igot and left == 0)
        with db.read():
            unsent_left = bool(_unsent(db, already_sent, 1))
            all_igot = not (set(artifacts.unclustered_names(db)) - igot_sent - remote_has)
        push_done = not push or (not server_gimme and not unsent_left and (heads_equal or (rnd > 1 and all_igot)))
        if pull_done and push_done:
            break
        # Nothing moved and nothing is left to say: what is still missing, this remote does not have.
        nothing_to_say = not push or (not unsent_left and (heads_equal or all_igot))
        stuck = (not files and not igot and rec.files == 0 and new_phantoms == 0 and not server_gimme
                 and nothing_to_say and (not pull or seen_complete_igot or heads_equal))
        if stuck:
            if pull and left:
                summary.missing = left
            break
    else:
        raise SyncError(f"gave up after {MAX_ROUNDS} rounds")
    summary.head_after = commits.head(db)
    if pull:
        summary.missing = artifacts.phantom_count(db)
    # An object can be in conflict and merged again within one run: list what still is.
    from ..core import conflicts

    summary.conflicts = sorted({(t, k) for t, k in summary.conflicts if len(conflicts.leaves(db, t, k)) > 1},
                               key=lambda x: (x[0], str(x[1])))
