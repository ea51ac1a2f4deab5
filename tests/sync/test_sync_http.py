"""Sync over HTTP with real `nsl serve` processes: tokens and roles, a tampered server, a server killed
or restarted in the middle, a client killed in the middle of a large pull."""
from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time

import pytest

import nsl
from nsl.core import tokens
from nsl.errors import BadArtifact, RemoteError, SyncError
from nsl.sync import client
from nsl.sync.clone import clone
from nsl.sync.transport import HttpTransport

from synctools import TIMEOUT, Replica, nsl_env, user_rows, versions

pytestmark = pytest.mark.timeout(240)


def _origin(tmp_path, n=20):
    db, _ = nsl.init(tmp_path / "origin.db")
    nsl.save(db, "people", [{"id": i, "name": f"p{i}", "n": i} for i in range(n)], message="seed")
    return db


def test_clone_push_and_pull_over_http_with_roles(tmp_path, serve):
    db = _origin(tmp_path)
    read_tok = tokens.add(db, "reader", "read")
    sync_tok = tokens.add(db, "syncer", "sync")
    db.close()
    srv = serve(tmp_path / "origin.db")

    # A read token can clone and pull...
    clone(srv.url, tmp_path / "mine.db", read_tok)
    mine = Replica(tmp_path / "mine.db")
    assert mine.rows() == user_rows(tmp_path / "origin.db")
    mine.save("people", {"id": 100, "name": "mine"})
    before = versions(tmp_path / "origin.db")
    # ...but not push: 403, and the server is unchanged.
    with pytest.raises(RemoteError) as e:
        client.run(mine.db, srv.url, read_tok)
    assert e.value.status == 403 and "push" in e.value.message
    with pytest.raises(RemoteError) as e:
        client.run(mine.db, srv.url, None)
    assert e.value.status == 401
    with pytest.raises(RemoteError) as e:
        client.run(mine.db, srv.url, "nsl_not-a-token")
    assert e.value.status == 401
    assert versions(tmp_path / "origin.db") == before
    assert client.run(mine.db, srv.url, read_tok, push=False).artifacts_received == 0
    # A sync token pushes.
    s = client.run(mine.db, srv.url, sync_tok)
    assert s.artifacts_sent >= 2
    origin = nsl.open(tmp_path / "origin.db")
    try:
        assert nsl.get(origin, "people", 100) == {"id": 100, "name": "mine"}
        assert nsl.head(origin) == mine.head()
        assert nsl.verify(origin).ok
    finally:
        origin.close()
    mine.verify()
    mine.close()


TAMPERING = {
    # the stored version of the new object (it still decodes: "honest" -> "liars")
    "version": "UPDATE nsl_version SET content = replace(content, '686F6E657374', '6C69617273') WHERE key = 50",
    # the commit's message, in its header
    "commit": "UPDATE nsl_commit SET meta = '{\"message\":\"nothing to see\"}' WHERE cid = (SELECT max(cid) FROM nsl_commit)",
    # the commit's line names another version uuid (its version's row text then does not match)
    "line": "UPDATE nsl_version SET uuid = '0000000000000000000000000000000000000000' WHERE key = 50",
}


@pytest.mark.parametrize("what", sorted(TAMPERING))
def test_a_tampered_server_makes_the_pull_fail_and_nothing_is_applied(tmp_path, serve, what):
    db = _origin(tmp_path)
    db.close()
    clone(str(tmp_path / "origin.db"), tmp_path / "mine.db")
    db = nsl.open(tmp_path / "origin.db")
    nsl.save(db, "people", [{"id": 50, "name": "honest"}], message="honest")
    db.close()
    # Someone edits the server's history behind nsl's back, with the sqlite3 shell's SQL.
    conn = sqlite3.connect(str(tmp_path / "origin.db"))
    conn.execute(TAMPERING[what])
    conn.commit()
    conn.close()
    srv = serve(tmp_path / "origin.db")
    mine = Replica(tmp_path / "mine.db")
    before = (mine.head(), mine.rows(), versions(mine.path))
    with pytest.raises((BadArtifact, RemoteError)) as e:
        client.run(mine.db, srv.url, push=False)
    assert "does not hash" in str(e.value) or "changed or damaged" in str(e.value)
    assert (mine.head(), mine.rows(), versions(mine.path)) == before
    mine.verify()
    mine.close()


def test_a_server_killed_mid_push_loses_nothing_and_the_next_push_finishes(tmp_path, serve):
    db = _origin(tmp_path, 1)
    db.close()
    clone(str(tmp_path / "origin.db"), tmp_path / "mine.db")
    mine = Replica(tmp_path / "mine.db")
    for c in range(6):
        mine.save("people", [{"id": f"{c}-{i}", "v": i, "s": "x" * 40} for i in range(4000)])
    srv = serve(tmp_path / "origin.db")

    def kill_at(rnd):
        if rnd == 3:
            srv.kill()

    with pytest.raises(SyncError):
        client.run(mine.db, srv.url, pull=False, on_round=kill_at)
    for path in (tmp_path / "origin.db", mine.path):
        d = nsl.open(path)
        try:
            assert nsl.verify(d).ok
        finally:
            d.close()
    conn = sqlite3.connect(str(tmp_path / "origin.db"))
    try:    # some rounds had landed before the kill: artifacts waiting for the rest of their commit
        assert conn.execute("SELECT count(*) FROM nsl_staged").fetchone()[0] > 1000
    finally:
        conn.close()
    srv.start()
    client.run(mine.db, srv.url, pull=False)
    assert versions(tmp_path / "origin.db") == versions(mine.path)
    assert user_rows(tmp_path / "origin.db") == mine.rows()
    d = nsl.open(tmp_path / "origin.db")
    try:
        assert nsl.head(d) == mine.head()
        assert nsl.verify(d).ok
    finally:
        d.close()
    mine.close()


def _copy(src, dst):
    """A consistent copy of a database file (its WAL included), made with SQLite's backup."""
    a, b = sqlite3.connect(str(src)), sqlite3.connect(str(dst))
    try:
        a.backup(b)
    finally:
        a.close()
        b.close()


def _nsl_verify(path, home):
    p = subprocess.run([sys.executable, "-m", "nsl", "--db", str(path), "verify"], env=nsl_env(home),
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT)
    assert p.returncode == 0, p.stdout + p.stderr


class _Watched(HttpTransport):
    """HTTP to a served database, noting for each request how long the server worked on it: from the
    moment it had read the request's bytes (its read count in /proc) to its reply. When armed, it
    kills the server (SIGKILL) `kill_after` seconds into that work, if the reply has not come back
    by then (else it tries again in the next request)."""

    def __init__(self, srv, kill_round=None, kill_after=0.0):
        super().__init__(srv.url)
        self.srv, self.kill_round, self.kill_after = srv, kill_round, kill_after
        self.worked: list[float] = []
        self.in_flight = False
        self.killed = False

    def _read_bytes(self) -> int:
        with open(f"/proc/{self.srv.proc.pid}/io") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("rchar:"))

    def _watch(self, before: int, size: int, armed: bool, read_at: list):
        deadline = time.monotonic() + TIMEOUT
        while self.in_flight and self._read_bytes() - before < size and time.monotonic() < deadline:
            time.sleep(0.0005)
        read_at.append(time.monotonic())
        if armed:
            time.sleep(self.kill_after)
            if self.in_flight:
                self.srv.kill()
                self.killed = True

    def exchange(self, message):
        import threading

        import orjson

        armed = self.kill_round is not None and message["round"] >= self.kill_round and not self.killed
        read_at: list[float] = []
        watch = threading.Thread(target=self._watch,
                                 args=(self._read_bytes(), len(orjson.dumps(message)), armed, read_at))
        self.in_flight = True
        watch.start()
        try:
            return super().exchange(message)
        finally:
            self.in_flight = False
            done = time.monotonic()
            watch.join()
            self.worked.append(done - read_at[0])


def test_a_server_killed_inside_a_push_request_keeps_its_database_valid(tmp_path, serve):
    """SIGKILL while the server is taking in a push (the request sent, its reply not back yet): the
    round's transaction is lost whole, `nsl verify` finds the database clean, and once restarted the
    same push finishes with the result of a push that was never interrupted."""
    db = _origin(tmp_path, 1)
    db.close()
    clone(str(tmp_path / "origin.db"), tmp_path / "mine.db")
    mine = Replica(tmp_path / "mine.db")
    for c in range(2):
        mine.save("people", [{"id": f"{c}-{i}", "v": i, "s": "x" * 40} for i in range(10000)])
    mine.close()
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)

    def fresh(name):
        for db in ("origin", "mine"):
            _copy(tmp_path / f"{db}.db", tmp_path / f"{db}-{name}.db")
        return tmp_path / f"origin-{name}.db", Replica(tmp_path / f"mine-{name}.db")

    # The uninterrupted push: the result to compare with, and how long each round took.
    origin, m = fresh("control")
    srv = serve(origin)
    control = _Watched(srv)
    client.run(m.db, srv.url, pull=False, transport=control)
    m.close()
    srv.stop()
    d = nsl.open(origin)
    want = (versions(origin), user_rows(origin), nsl.head(d))
    d.close()
    last = len(control.worked)
    assert last >= 3, control.worked

    # Killed halfway through a round that stages versions, and twice in the last one, which applies
    # the commits (20,000 rows written).
    # The kill lands a fraction of the control's time into the request; a machine that works faster
    # this time can reply first, so then the same kill is tried again, sooner, on fresh copies.
    for n, (rnd, part) in enumerate([(2, 0.5), (last, 0.2), (last, 0.5)]):
        after = part * control.worked[rnd - 1]
        for attempt in range(6):
            origin, m = fresh(f"{n}-{attempt}")
            srv = serve(origin)
            tr = _Watched(srv, rnd, after)
            try:
                client.run(m.db, srv.url, pull=False, transport=tr)
            except SyncError:
                break
            srv.stop()
            m.close()
            after /= 3
        else:
            pytest.fail(f"the server always replied before it could be killed: {rnd, part, control.worked}")
        assert tr.killed, (rnd, part, control.worked)
        _nsl_verify(origin, home)
        srv.start()
        client.run(m.db, srv.url, pull=False)
        srv.stop()
        d = nsl.open(origin)
        try:
            assert (versions(origin), user_rows(origin), nsl.head(d)) == want
        finally:
            d.close()
        m.close()
        _nsl_verify(origin, home)


def test_a_server_restarted_between_round_trips_does_not_break_a_sync(tmp_path, serve):
    db = _origin(tmp_path, 1)
    db.close()
    clone(str(tmp_path / "origin.db"), tmp_path / "mine.db")
    origin = nsl.open(tmp_path / "origin.db")
    nsl.save(origin, "people", [{"id": f"o{i}", "v": i} for i in range(3000)])
    origin.close()
    mine = Replica(tmp_path / "mine.db")
    mine.save("people", [{"id": f"m{i}", "v": i} for i in range(3000)])
    srv = serve(tmp_path / "origin.db")
    restarts = []

    def restart(rnd):
        if rnd in (2, 4):
            srv.restart()
            restarts.append(rnd)

    s = client.run(mine.db, srv.url, on_round=restart)
    assert restarts and s.rounds >= 2
    d = nsl.open(tmp_path / "origin.db")
    try:
        assert nsl.head(d) == mine.head()
        assert nsl.verify(d).ok
    finally:
        d.close()
    assert user_rows(tmp_path / "origin.db") == mine.rows()
    mine.close()


def test_a_client_killed_mid_pull_of_50000_objects_resumes_to_the_same_result(tmp_path, serve):
    db = _origin(tmp_path, 1)
    db.close()
    for name in ("mine.db", "control.db"):
        clone(str(tmp_path / "origin.db"), tmp_path / name)
    db = nsl.open(tmp_path / "origin.db")
    for c in range(10):
        nsl.save(db, "people", [{"id": c * 5000 + i, "name": f"n{i}", "v": i * 0.5} for i in range(5000)])
    db.close()
    srv = serve(tmp_path / "origin.db")
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    proc = subprocess.Popen([sys.executable, "-m", "nsl", "--db", str(tmp_path / "mine.db"), "pull", srv.url, "-q"],
                            env=nsl_env(home), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    # Kill it once it has taken in part of the history: some rounds are in, the pull is not done.
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        conn = sqlite3.connect(str(tmp_path / "mine.db"), timeout=TIMEOUT)
        try:
            staged = conn.execute("SELECT count(*) FROM nsl_staged").fetchone()[0]
            lines = conn.execute("SELECT count(*) FROM nsl_version").fetchone()[0]
        finally:
            conn.close()
        if staged + lines > 2000 or proc.poll() is not None:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the pull finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(TIMEOUT)
    _nsl_verify(tmp_path / "origin.db", home)      # the server's side is whole too
    mine = Replica(tmp_path / "mine.db")
    mine.verify()
    assert len(versions(mine.path)) < 50_001
    s = client.run(mine.db, srv.url, push=False)
    assert s.missing == 0
    control = Replica(tmp_path / "control.db")
    client.run(control.db, srv.url, push=False)
    assert mine.head() == control.head()
    assert mine.rows() == control.rows()
    assert versions(mine.path) == versions(control.path)
    mine.verify()
    mine.close()
    control.close()


def test_an_application_sees_and_resolves_conflicts_over_the_rest_api(tmp_path, serve):
    import requests

    db = _origin(tmp_path, 2)
    db.close()
    clone(str(tmp_path / "origin.db"), tmp_path / "mine.db")
    origin = nsl.open(tmp_path / "origin.db")
    nsl.save(origin, "people", [{"id": 1, "name": "server side"}])
    origin.close()
    mine = Replica(tmp_path / "mine.db")
    time.sleep(0.005)
    mine.save("people", {"id": 1, "name": "my side"})
    srv = serve(tmp_path / "origin.db")
    client.run(mine.db, srv.url)
    api = srv.url + "/api/v1"
    (c,) = requests.get(f"{api}/conflicts", timeout=TIMEOUT).json()["conflicts"]
    assert c["table"] == "people" and c["key"] == 1 and c["shown"]["name"] == "my side"
    assert requests.get(f"{api}/conflicts", params={"table": "nope"}, timeout=TIMEOUT).status_code == 404
    r = requests.post(f"{api}/tables/people/objects/1/resolve", json={"take": "x"}, timeout=TIMEOUT)
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_input"
    r = requests.post(f"{api}/tables/people/objects/2/resolve", json={"object": {"name": "x"}}, timeout=TIMEOUT)
    assert r.status_code == 404
    r = requests.post(f"{api}/tables/people/objects/1/resolve",
                      json={"object": {"name": "both sides"}, "message": "merged by the app"}, timeout=TIMEOUT)
    assert r.status_code == 201, r.text
    assert requests.get(f"{api}/conflicts", timeout=TIMEOUT).json() == {"conflicts": []}
    client.run(mine.db, srv.url)
    assert mine.get("people", 1) == {"id": 1, "name": "both sides"} and mine.conflicts() == []
    mine.verify()
    mine.close()


def test_two_clients_pushing_to_one_server_at_once(tmp_path, serve):
    import threading

    db = _origin(tmp_path, 1)
    db.close()
    for name in ("a.db", "b.db"):
        clone(str(tmp_path / "origin.db"), tmp_path / name)
    reps = [Replica(tmp_path / n) for n in ("a.db", "b.db")]
    for i, r in enumerate(reps):
        r.save("people", [{"id": f"{i}-{k}", "v": k, "s": "y" * 60} for k in range(8000)])
    srv = serve(tmp_path / "origin.db")
    errors = []

    def push(r):
        try:
            client.run(r.db, srv.url, pull=False)
        except Exception as e:  # noqa: BLE001  (reported below)
            errors.append(e)

    threads = [threading.Thread(target=push, args=(r,)) for r in reps]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 2)
    assert not errors, errors
    for r in reps:
        client.run(r.db, srv.url)
    d = nsl.open(tmp_path / "origin.db")
    try:
        assert nsl.verify(d).ok
        assert len(list(nsl.find(d, "people"))) == 1 + 16000
        assert nsl.head(d) == reps[0].head() == reps[1].head()
    finally:
        d.close()
    for r in reps:
        r.verify()
        r.close()
