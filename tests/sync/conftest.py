"""Fixtures for the sync tests: replicas of one project (the library API, in this process) and real
`nsl serve` processes to sync with over HTTP, each killed at teardown."""
from __future__ import annotations

import pytest

import nsl
from nsl.sync.clone import clone

from synctools import Replica, Served


@pytest.fixture
def project(tmp_path):
    """make(n) -> n replicas of one project: an origin database and clones of it (all empty)."""
    made: list[Replica] = []

    def make(n: int = 2, *, seed: list | None = None) -> list[Replica]:
        origin = tmp_path / "r0.db"
        db, _ = nsl.init(origin)
        if seed:
            nsl.save(db, "people", seed, message="seed")
        db.close()
        paths = [origin]
        for i in range(1, n):
            p = tmp_path / f"r{i}.db"
            clone(str(origin), p)
            paths.append(p)
        reps = [Replica(p) for p in paths]
        made.extend(reps)
        return reps

    yield make
    for r in made:
        r.close()


@pytest.fixture
def serve(tmp_path):
    """serve(db_path) -> Served; every server is stopped (or killed) at teardown."""
    running: list[Served] = []
    home = tmp_path / "serve-home"
    (home / ".config").mkdir(parents=True, exist_ok=True)

    def start(db, port: int = 0) -> Served:
        s = Served(db, home, port)
        running.append(s)
        return s

    yield start
    for s in running:
        s.stop()
