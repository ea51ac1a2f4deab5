"""History through the library: log, show, diff, status/commit of outside edits, checkout, restore, revert."""
from __future__ import annotations

import sqlite3

import pytest

import nsl
from nsl.core import commits
from nsl.errors import AmbiguousRef, CheckedOut, NothingToCommit, RevertConflict, UncommittedChanges, UnknownCommit


def outside(db_path, sql, params=()):
    """An edit made with another SQLite client, as a user of the sqlite3 CLI would."""
    c = sqlite3.connect(db_path)
    c.execute(sql, params)
    c.commit()
    c.close()


@pytest.fixture
def people(db):
    c1 = nsl.save(db, "people", [{"id": 1, "name": "Ada", "tags": ["math"]}, {"id": 2, "name": "Bob"}],
                  message="first", author="me").commit
    c2 = nsl.save(db, "people", [{"id": 1, "name": "Ada L", "ok": True}], message="second").commit
    c3 = nsl.delete(db, "people", [2], message="third").commit
    return db, [c1, c2, c3]


def test_log_show_and_prefixes(people):
    db, (c1, c2, c3) = people
    log = nsl.log(db)
    assert [e["commit"] for e in log] == [c3, c2, c1]
    assert log[2]["author"] == "me" and log[2]["message"] == "first" and log[2]["inserted"] == 2
    assert nsl.head(db) == c3
    shown = nsl.show(db, c2[:6])
    assert shown["parents"] == [c1] and [ln["op"] for ln in shown["lines"]] == ["U"]
    assert nsl.show(db, "HEAD~2")["commit"] == c1
    assert [e["commit"] for e in nsl.log(db, "people", 2)] == [c3, c1]
    with pytest.raises(UnknownCommit):
        nsl.show(db, "0000000000")
    with pytest.raises(AmbiguousRef):
        nsl.show(db, "zz")


def test_commit_text_hashes_to_its_uuid(people):
    db, cs = people
    for c in cs:
        cid, _ = commits.resolve(db, c)
        text = commits.commit_text(db, cid)
        assert text.startswith("commit\ndb ")
        import hashlib
        assert hashlib.sha1(text.encode()).hexdigest() == c


def test_outside_edits_show_in_status_and_diff_and_commit_records_them(people, db_path):
    db, _ = people
    outside(db_path, "UPDATE people SET name='Ada K' WHERE id=1")
    outside(db_path, "INSERT INTO people(id, name) VALUES (3, 'Cy')")
    st = {(c.key, c.op) for c in nsl.status(db)}
    assert st == {(1, "modified"), (3, "added")}
    d = {e["key"]: e for e in nsl.diff(db)}
    assert d[1]["fields"] == {"name": ["Ada L", "Ada K"]}
    assert d[3]["change"] == "added"
    res = nsl.commit(db, message="outside")
    assert res.count == 2 and nsl.status(db) == []
    # The bool attribute kept its kind across an SQL edit of another column.
    assert nsl.get(db, "people", 1) == {"id": 1, "name": "Ada K", "ok": True}
    with pytest.raises(NothingToCommit):
        nsl.commit(db, message="again")
    assert nsl.verify(db).ok


def test_diff_between_commits(people):
    db, (c1, c2, c3) = people
    d = nsl.diff(db, c1, c3)
    assert {(e["key"], e["change"]) for e in d} == {(1, "modified"), (2, "deleted")}
    assert nsl.diff(db, c3, c3) == []


def test_checkout_shows_the_past_read_only_and_returns(people):
    db, (c1, c2, c3) = people
    res = nsl.checkout(db, c1)
    assert res.commit == c1
    assert nsl.get(db, "people", 1) == {"id": 1, "name": "Ada", "tags": ["math"]}
    assert nsl.get(db, "people", 2) == {"id": 2, "name": "Bob"}
    with pytest.raises(CheckedOut, match="checked out"):
        nsl.save(db, "people", [{"id": 9}])
    assert nsl.verify(db).ok
    nsl.checkout(db, "HEAD")
    assert nsl.get(db, "people", 1) == {"id": 1, "name": "Ada L", "ok": True}
    assert [o["id"] for o in nsl.find(db, "people")] == [1]
    assert nsl.head(db) == c3 and nsl.verify(db).ok


def test_checkout_refuses_with_uncommitted_changes(people, db_path):
    db, (c1, _, _) = people
    outside(db_path, "UPDATE people SET name='x' WHERE id=1")
    with pytest.raises(UncommittedChanges):
        nsl.checkout(db, c1)


def test_restore_source_brings_old_state_back_as_uncommitted_changes(people):
    db, (c1, _, c3) = people
    res = nsl.restore(db, source=c1)
    assert res.changed == 2
    assert nsl.head(db) == c3
    assert {c.key for c in nsl.status(db)} == {1, 2}
    nsl.commit(db, message="back to first")
    assert nsl.get(db, "people", 1) == {"id": 1, "name": "Ada", "tags": ["math"]}
    assert nsl.get(db, "people", 2) == {"id": 2, "name": "Bob"}
    assert nsl.verify(db).ok


def test_restore_one_object_and_discard_changes(people, db_path):
    db, (c1, _, _) = people
    nsl.restore(db, source=c1, table="people", key=2)
    assert [c.key for c in nsl.status(db)] == [2]
    nsl.restore(db)  # back to HEAD: discards
    assert nsl.status(db) == []
    outside(db_path, "DELETE FROM people")
    nsl.restore(db, table="people")
    assert nsl.status(db) == [] and nsl.get(db, "people", 1)["name"] == "Ada L"


def test_revert_makes_a_new_commit_that_undoes_one(people):
    db, (c1, c2, c3) = people
    r = nsl.revert(db, c3)
    assert nsl.get(db, "people", 2) == {"id": 2, "name": "Bob"}
    assert nsl.show(db, r.commit)["meta"]["revert"] == c3
    nsl.revert(db, c2)
    assert nsl.get(db, "people", 1) == {"id": 1, "name": "Ada", "tags": ["math"]}
    assert len(nsl.log(db)) == 5 and nsl.verify(db).ok


def test_revert_refuses_when_the_object_changed_since(people):
    db, (c1, c2, c3) = people
    nsl.save(db, "people", [{"id": 1, "name": "changed again"}])
    head = nsl.head(db)
    with pytest.raises(RevertConflict, match="people/1"):
        nsl.revert(db, c2)
    assert nsl.head(db) == head


def test_restore_removes_rows_inserted_outside_nsl(people, db_path):
    db, _ = people
    outside(db_path, "INSERT INTO people(id, name) VALUES (42, 'never committed')")
    nsl.restore(db)
    assert nsl.status(db) == []
    assert [o["id"] for o in nsl.find(db, "people")] == [1]
    assert nsl.verify(db).ok
