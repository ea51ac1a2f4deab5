"""Helpers for the sync tests (imported by conftest.py and the test modules): replicas of one project
driven with the library API, and real `nsl serve` processes, each bounded by timeouts."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path


import nsl
from nsl.core import commits
from nsl.sync import client

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 60


def user_rows(path) -> dict[str, list]:
    """{table: rows sorted} of every user table of the file, read with plain sqlite3."""
    conn = sqlite3.connect(str(path), timeout=TIMEOUT)
    try:
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'nsl\\_%' ESCAPE '\\' "
            "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name")]
        out = {}
        for n in names:
            cols = [r[1] for r in conn.execute(f'PRAGMA table_info("{n}")')]
            rows = conn.execute(f'SELECT * FROM "{n}"').fetchall()
            # Compare by column name: replicas may have added the same columns in another order.
            out[n] = sorted((tuple(sorted(zip(cols, r), key=lambda cv: cv[0])) for r in rows), key=repr)
        return out
    finally:
        conn.close()


def versions(path) -> set:
    """Every (table, key, version uuid, typed digest) the file's history holds."""
    conn = sqlite3.connect(str(path), timeout=TIMEOUT)
    try:
        return set(conn.execute("SELECT tbl, key, op, uuid, digest FROM nsl_version").fetchall())
    finally:
        conn.close()


class Replica:
    """One database of the project, driven with the library API."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.db = nsl.open(self.path)

    def save(self, table, objs, **kw):
        return nsl.save(self.db, table, objs if isinstance(objs, list) else [objs], **kw)

    def delete(self, table, keys, **kw):
        return nsl.delete(self.db, table, keys, **kw)

    def get(self, table, key):
        return nsl.get(self.db, table, key)

    def head(self):
        return commits.head(self.db)

    def sync(self, other: "Replica | str", **kw) -> client.Summary:
        url = str(other.path) if isinstance(other, Replica) else other
        return client.run(self.db, url, **kw)

    def pull(self, other, **kw):
        return self.sync(other, push=False, **kw)

    def push(self, other, **kw):
        return self.sync(other, pull=False, **kw)

    def rows(self):
        return user_rows(self.path)

    def verify(self):
        rep = nsl.verify(self.db)
        assert rep.ok, rep.problems[:10]
        return rep

    def conflicts(self, table=None):
        from nsl.core.conflicts import conflict_list

        return conflict_list(self.db, table)

    def close(self):
        self.db.close()


# ---- real servers ---------------------------------------------------------------------------------

def nsl_env(home: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NSL_")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), NO_COLOR="1", TERM="dumb",
               PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""))
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Served:
    """`nsl serve` on a database, as a real process on 127.0.0.1."""

    def __init__(self, db: Path, home: Path, port: int = 0):
        self.db, self.home = Path(db), home
        self.port = port
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nsl", "--db", str(self.db), "serve", "--port", str(self.port), "--json"],
            env=nsl_env(self.home), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + TIMEOUT
        line = b""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.strip():
                break
            if self.proc.poll() is not None:
                raise AssertionError(f"nsl serve exited: {self.proc.stderr.read().decode()}")
        info = json.loads(line)
        self.url = info["url"].rstrip("/")
        self.port = info["port"]

    def kill(self):
        """SIGKILL: the server dies on the spot, whatever it was doing."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(TIMEOUT)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(TIMEOUT)

    def restart(self):
        self.stop()
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                self.start()
                return
            except (AssertionError, json.JSONDecodeError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


