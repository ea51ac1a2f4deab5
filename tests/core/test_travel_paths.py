"""checkout and restore of a long straight history take a two-process way (states.write_since: no diff
table, a forked helper reads and decodes part of the objects); its results are exactly those of the
one-process way, which small histories take. Here every history is "long" for one copy of the file
and "short" for the other, and the two must agree row for row."""
from __future__ import annotations

import shutil
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nsl
from nsl.core import bulk, states

values = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False, allow_infinity=False, width=32),
                   st.text(max_size=4), st.lists(st.integers(0, 2), max_size=2))
changes = st.lists(st.tuples(st.sampled_from(["t", "my table"]), st.integers(0, 30),
                             st.one_of(st.none(), st.dictionaries(st.sampled_from(["a", "b", "c", "new"]), values,
                                                                  max_size=3))),
                   min_size=1, max_size=25)


def rows(path) -> dict:
    """Every user table's rows, with their SQLite types, and the pending notes."""
    c = sqlite3.connect(path)
    try:
        out = {}
        for t in ("t", "my table"):
            cols = [r[1] for r in c.execute(f'PRAGMA table_info("{t}")')]
            if cols:
                sel = ", ".join(f'"{x}", typeof("{x}")' for x in cols)
                out[t] = (cols, sorted(map(repr, c.execute(f'SELECT {sel} FROM "{t}"'))))
        out["pending"] = sorted(map(repr, c.execute("SELECT tid, key, vid FROM nsl_pending")))
        out["checkout"] = c.execute("SELECT value FROM nsl_meta WHERE name = 'checkout'").fetchone()
        return out
    finally:
        c.close()


def make_history(path, history):
    db, _ = nsl.init(path)
    commits = [nsl.save(db, "t", [{"id": i, "a": i, "b": "x" * (i % 3)} for i in range(20)]).commit,
               nsl.save(db, "my table", [{"id": i, "c": [i]} for i in range(10)]).commit]
    for table, key, obj in history:
        if obj is None:
            try:
                r = nsl.delete(db, table, [key])
            except nsl.NslError:
                continue
        else:
            r = nsl.save(db, table, [{"id": key, **obj}])
        if r.commit:
            commits.append(r.commit)
    db.close()
    return commits


@pytest.fixture
def two_ways(monkeypatch):
    if not bulk.parallel_ok():
        pytest.skip("this process cannot fork a helper")
    taken = []
    real = states.write_since

    def spy(*args, **kw):
        n = real(*args, **kw)
        taken.append(n is not None)
        return n

    monkeypatch.setattr(states, "write_since", spy)

    def run(path, long: bool, verb, *args, **kw):
        monkeypatch.setattr(states, "HELPER_ROWS", 1 if long else 10**12)
        taken.clear()
        db = nsl.open(path)
        try:
            res = verb(db, *args, **kw)
        finally:
            db.close()
        assert any(taken) == long, "the way under test was not taken"
        return res
    return run


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=changes)
def test_checkout_and_restore_agree_with_the_one_process_way(tmp_path_factory, two_ways, history):
    d = tmp_path_factory.mktemp("paths")
    commits = make_history(d / "base.db", history)
    target = commits[0]   # the first commit: most of the history came after it
    for long in (True, False):
        shutil.copy(d / "base.db", d / f"{long}.db")
    # checkout of the old commit, then back to the head
    for ref in (target, "HEAD"):
        got = [two_ways(d / f"{long}.db", long, nsl.checkout, ref).changed for long in (True, False)]
        assert got[0] == got[1]
        assert rows(d / "True.db") == rows(d / "False.db")
    # restore, then the commit that records it names the same versions
    got = [two_ways(d / f"{long}.db", long, nsl.restore, source=target).changed for long in (True, False)]
    assert got[0] == got[1]
    assert rows(d / "True.db") == rows(d / "False.db")
    lines = []
    for long in (True, False):
        db = nsl.open(d / f"{long}.db")
        try:
            res = nsl.commit(db, message="restored")
            lines.append(sorted(map(repr, db.conn.execute(
                "SELECT tbl, key, op, uuid, parents FROM nsl_version WHERE cid = (SELECT max(cid) FROM nsl_commit)"))))
            assert res.count == len(lines[-1]) and nsl.verify(db).ok
        except nsl.NslError as e:
            lines.append(repr(e))
        finally:
            db.close()
    assert lines[0] == lines[1]
