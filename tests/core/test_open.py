"""Opening a database never disturbs the connections this process has open on it already."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import nsl
from nsl.errors import NotANslDatabase

REPO = Path(__file__).resolve().parents[2]


def _commit_elsewhere(db_path, key):
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    code = f"import nsl\ndb = nsl.open({str(db_path)!r})\nnsl.save(db, 't', [{{'id': {key}}}])\ndb.close()\n"
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)


def test_connections_opened_one_after_another_see_other_processes(db, db_path):
    """Reading the file with open() and closing it would drop the POSIX locks of every connection of
    this process on the file (a server opens one per thread): they then went on reading a stale
    snapshot, blind to commits made by other processes."""
    nsl.save(db, "t", [{"id": 0}])
    first, second, third = nsl.open(db_path), nsl.open(db_path), nsl.open(db_path)
    try:
        nsl.init(db_path)[0].close()  # init on an existing database opens it too
        for key in (1, 2, 3):
            _commit_elsewhere(db_path, key)
            for conn in (db, first, second, third):
                assert [o["id"] for o in nsl.find(conn, "t", sort="id")] == list(range(key + 1))
    finally:
        for conn in (first, second, third):
            conn.close()


@pytest.mark.parametrize("content", [b"x", b"SQLite format 3\x00", b"SQLite format 3\x00" + b"\x00" * 500,
                                     b"not sqlite at all " * 100])
def test_short_or_foreign_files_are_not_sqlite(tmp_path, content):
    p = tmp_path / "f.db"
    p.write_bytes(content)
    with pytest.raises(NotANslDatabase, match="is not a SQLite database"):
        nsl.open(p)
    with pytest.raises(NotANslDatabase, match="exists and is not a SQLite database"):
        nsl.init(p)
    assert sorted(f.name for f in tmp_path.iterdir()) == ["f.db"] and p.read_bytes() == content
