"""Several processes on one database: a writer that holds the lock, a save killed with SIGKILL halfway,
and two saves at once. The database must never be left corrupt or half-written."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from nsl.errors import Locked

from clitools import PEOPLE, TIMEOUT, Result, assert_one_error

HOLDER = textwrap.dedent("""
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
    conn.execute("BEGIN IMMEDIATE")
    # An uncommitted change, so a reader seeing it (or a writer keeping it) would show.
    conn.execute("UPDATE people SET name = 'LOCKER' WHERE id = 1")
    print("holding", flush=True)
    sys.stdin.read()          # until the test closes our stdin
    conn.execute("ROLLBACK")
    conn.close()
    print("released", flush=True)
""")


@pytest.fixture
def lock_holder(people):
    """Another Python process holding `BEGIN IMMEDIATE` on the database until release() (or the test end)."""
    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(people.db)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "holding", p.stderr.read()

    def release():
        if p.poll() is None:
            out, err = p.communicate("", timeout=TIMEOUT)
            assert p.returncode == 0 and "released" in out, err

    yield release
    try:
        release()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=TIMEOUT)


WRITES = [
    ["save", "people", '{"id": 9, "name": "Eve"}'],
    ["save", "newtable", '{"id": 1}'],
    ["delete", "people", "2"],
    ["sql", "UPDATE people SET age = 0", "--write"],
    ["revert", "HEAD"],
    ["checkout", "HEAD~1"],
]


def test_locked_database_fails_cleanly_after_the_busy_timeout(people, lock_holder):
    before = people.snapshot()
    env = people.env(NSL_BUSY_TIMEOUT=1)
    for args in WRITES:
        t0 = time.monotonic()
        r = people(*args, env=env)
        waited = time.monotonic() - t0
        assert_one_error(r, Locked.exit_code, "locked", str(people.db.name))
        assert "hint:" in r.stderr
        assert waited >= 1.0, f"{args}: gave up after {waited:.2f} s, before NSL_BUSY_TIMEOUT=1"
        assert waited < 8, f"{args}: waited {waited:.2f} s, much longer than NSL_BUSY_TIMEOUT=1"
    # Readers are not blocked by the writer (WAL), and never see its uncommitted change.
    assert people.ok("get", "people", "1", "--json").json["name"] == "Ada"
    assert len(people.ok("find", "people", "--json").json) == len(PEOPLE)
    lock_holder()
    people.assert_unchanged(before, verify=True)
    # Once the lock is gone the same save works.
    people.ok("save", "people", '{"id": 9, "name": "Eve"}', env=env)
    assert people.ok("get", "people", "9", "--json").json == {"id": 9, "name": "Eve"}
    people.assert_verify_ok()


def test_a_writer_waits_for_a_lock_released_in_time(people, lock_holder):
    """With the default busy timeout a save waits for the other writer, then succeeds."""
    p = people.popen("save", "people", '{"id": 9, "name": "Eve"}', stdin=subprocess.DEVNULL)
    time.sleep(1.5)
    assert p.poll() is None, "the save did not wait for the lock"
    lock_holder()
    out, err = p.communicate(timeout=TIMEOUT)
    assert p.returncode == 0, err
    assert len(out.decode().strip()) == 40
    assert people.ok("get", "people", "9", "--json").json == {"id": 9, "name": "Eve"}
    assert people.ok("get", "people", "1", "--json").json["name"] == "Ada"
    people.assert_verify_ok()


# ---- SIGKILL in the middle of a large save ----------------------------------------------------------------

N_BIG = 300_000


@pytest.fixture(scope="module")
def big_jsonl(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("big") / "objects.jsonl"
    with open(path, "w") as f:
        for i in range(N_BIG):
            f.write(json.dumps({"id": i, "name": f"name {i}", "n": i * 3, "x": i / 7, "tags": [i % 5]}) + "\n")
    return path


def _wal_size(db: Path) -> int:
    try:
        return os.path.getsize(str(db) + "-wal")
    except FileNotFoundError:
        return 0


def _leftover_processes(db: Path) -> list[int]:
    """Processes (a killed save's helpers, say) still running with NSL_DB pointing at this database."""
    needle = f"NSL_DB={db}".encode() + b"\0"
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and int(d.name) != os.getpid():
            try:
                env = (d / "environ").read_bytes()
                state = (d / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if needle in env + b"\0" and state != "Z":
                found.append(int(d.name))
    return found


@pytest.mark.parametrize("kill_at", ["3 MB of WAL", "30 MB of WAL", "commit printed"])
def test_sigkill_during_a_large_save_leaves_all_or_nothing(nsl, big_jsonl, kill_at):
    """Kill -9 a save of 300,000 objects early, midway, and just after it printed its commit (while it
    may still be checkpointing): afterwards the table holds all of them with one commit, or none."""
    nsl.ok("init")
    nsl.ok("save", "people", json.dumps(PEOPLE))
    before = nsl.snapshot()
    out, err = nsl.cwd / "save.out", nsl.cwd / "save.err"
    with open(big_jsonl, "rb") as fin, open(out, "wb") as fout, open(err, "wb") as ferr:
        p = subprocess.Popen(nsl.argv("save", "big"), stdin=fin, stdout=fout, stderr=ferr, env=nsl.env(),
                             cwd=nsl.cwd)
    if kill_at.endswith("MB of WAL"):
        mb = int(kill_at.split()[0])
        in_progress = lambda: _wal_size(nsl.db) < mb * 1e6  # noqa: E731
    else:
        in_progress = lambda: len(out.read_bytes().strip()) < 40  # noqa: E731
    deadline = time.monotonic() + 45
    try:
        while in_progress() and p.poll() is None:
            assert time.monotonic() < deadline, "the save never got going"
            time.sleep(0.002)
        killed = p.poll() is None
        os.kill(p.pid, signal.SIGKILL)
    finally:
        p.kill()
        p.wait(timeout=TIMEOUT)
    if kill_at == "3 MB of WAL":
        assert killed, "the save finished before it could be killed:\n" + err.read_text()
    else:
        assert killed or p.returncode == 0, err.read_text()
    # A helper process of the save (a parse worker) may finish its current batch, but must not outlive
    # the killed save for long.
    grace = time.monotonic() + 5
    while _leftover_processes(nsl.db) and time.monotonic() < grace:
        time.sleep(0.05)
    for pid in _leftover_processes(nsl.db):
        os.kill(pid, signal.SIGKILL)
        pytest.fail(f"process {pid} of the killed save was still running 5 s after the kill")

    r = nsl("verify")
    assert r.returncode == 0 and r.stdout.rstrip().endswith("ok"), str(r)
    n = nsl.table_count("big")
    log = nsl.ok("log", "--json").json
    assert n in (0, N_BIG), f"a killed save left {n} of {N_BIG} objects"
    if n == 0:
        assert log == before["log"], "no objects but a commit"
        nsl.assert_unchanged(before)
    else:
        assert len(log) == len(before["log"]) + 1 and log[1:] == before["log"]
        assert log[0]["inserted"] == N_BIG
        assert kill_at != "3 MB of WAL"
    if kill_at == "commit printed":
        assert n == N_BIG and log[0]["commit"] == out.read_text().strip()
    # The database is fully usable afterwards: the same save again works and gives all the objects.
    with open(big_jsonl, "rb") as fin:
        nsl.ok("save", "big", stdin=fin)
    assert nsl.table_count("big") == N_BIG
    assert nsl.ok("get", "big", "123456", "--json").json == \
        {"id": 123456, "name": "name 123456", "n": 370368, "x": 123456 / 7, "tags": [1]}
    assert nsl.table_count("people") == len(PEOPLE)


# ---- two writers at once ----------------------------------------------------------------------------------------

def _lines(start: int, n: int) -> bytes:
    return "".join(json.dumps({"id": i, "v": f"value {i}", "n": i}) + "\n" for i in range(start, start + n)).encode()


@pytest.mark.parametrize("busy_timeout", [None, "0.05"])
@pytest.mark.parametrize("same_table", [True, False])
def test_two_concurrent_saves_never_corrupt(nsl, busy_timeout, same_table):
    nsl.ok("init")
    env = nsl.env(**({"NSL_BUSY_TIMEOUT": busy_timeout} if busy_timeout else {}))
    n = 30_000
    jobs = [("a" if same_table else "ta", 0), ("a" if same_table else "tb", n)]
    files = []
    for i, (table, start) in enumerate(jobs):
        f = nsl.cwd / f"in{i}.jsonl"
        f.write_bytes(_lines(start, n))
        files.append(f)
    procs = []
    for (table, _), f in zip(jobs, files):
        with open(f, "rb") as fin:
            procs.append(subprocess.Popen(nsl.argv("save", table, "--json"), stdin=fin, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, env=env, cwd=nsl.cwd))
    results = []
    for p, (table, _) in zip(procs, jobs):
        so, se = p.communicate(timeout=TIMEOUT)
        results.append(Result(["save", table], p.returncode, so.decode(), se.decode()))
    ok = [r for r in results if r.returncode == 0]
    for r in results:
        if r.returncode != 0:  # the only acceptable failure: the other one held the lock too long
            assert_one_error(r, Locked.exit_code, "locked")
        else:
            assert r.json["count"] == n and len(r.json["commit"]) == 40, str(r)
    assert ok, "neither save succeeded"
    if busy_timeout is None:
        assert len(ok) == 2, "with the default busy timeout both saves should succeed: " + "\n".join(map(str, results))
    nsl.assert_verify_ok()
    log = nsl.ok("log", "--json").json
    assert sorted(c["commit"] for c in log) == sorted(r.json["commit"] for r in ok)
    assert all(c["inserted"] == n for c in log)
    if len(log) == 2:
        assert log[0]["parents"] == [log[1]["commit"]]
    counts = {t: nsl.table_count(t) for t in {j[0] for j in jobs}}
    assert sum(counts.values()) == n * len(ok)
    for r, (table, start) in zip(results, jobs):
        if r.returncode == 0:
            assert nsl.ok("get", table, str(start + n - 1), "--json").json["v"] == f"value {start + n - 1}"
