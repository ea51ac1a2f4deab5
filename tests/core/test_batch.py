"""batch.apply: saves and deletes over several tables in one commit, or nothing at all."""
from __future__ import annotations

import pytest

import nsl
from nsl.core import batch
from nsl.errors import BadInput, CheckedOut, InvalidName, InvalidObject, UnknownObject, UnknownTable


@pytest.fixture
def seeded(db):
    nsl.save(db, "people", [{"id": 1, "name": "Ada"}, {"id": 2, "name": "Bob"}, {"id": "x", "name": "Xi"}],
             message="seed")
    return db


def save(table, obj, **kw):
    return {"save": {"table": table, "object": obj, **kw}}


def delete(table, key):
    return {"delete": {"table": table, "key": key}}


def test_one_commit_over_tables(seeded):
    db = seeded
    parent = nsl.head(db)
    res = batch.apply(db, [save("people", {"id": 3, "name": "Cy"}), save("pets", {"id": "rex", "owner": 3}),
                           save("people", {"id": 1, "name": "Ada", "age": 37}), delete("people", "2"),
                           save("people", {"id": 3, "name": "Cy", "age": 1})],
                      message="batch", author="me")
    assert res.commit == nsl.head(db) and res.count == 4
    assert [(k["op"], k["table"], k["key"]) for k in res.keys] == [
        ("save", "people", 3), ("save", "pets", "rex"), ("save", "people", 1), ("delete", "people", 2),
        ("save", "people", 3)]
    c = nsl.show(db, res.commit)
    assert c["parents"] == [parent] and c["message"] == "batch" and c["author"] == "me"
    assert [(ln["op"], ln["table"], ln["key"]) for ln in c["lines"]] == [
        ("I", "people", 3), ("I", "pets", "rex"), ("U", "people", 1), ("D", "people", 2)]
    assert nsl.get(db, "people", 3) == {"id": 3, "name": "Cy", "age": 1}  # the last save of an object wins
    assert nsl.get(db, "pets", "rex") == {"id": "rex", "owner": 3}
    with pytest.raises(UnknownObject):
        nsl.get(db, "people", 2)
    assert nsl.verify(db).ok
    assert nsl.status(db) == []
    # It reverts like any commit.
    nsl.revert(db, res.commit)
    assert nsl.get(db, "people", 2) == {"id": 2, "name": "Bob"}
    assert nsl.verify(db).ok


def test_new_table_with_key_column(db):
    res = batch.apply(db, [save("things", {"sku": "a1", "n": 1}, key="sku"), save("things", {"sku": "b2"})])
    assert [k["key"] for k in res.keys] == ["a1", "b2"]
    assert db.table("things").key_col == "sku"
    with pytest.raises(BadInput, match="keyed by 'sku'"):
        batch.apply(db, [save("things", {"id": 1}, key="id")])
    assert nsl.verify(db).ok


def test_nothing_changed_makes_no_commit(seeded):
    head = nsl.head(seeded)
    res = batch.apply(seeded, [save("people", {"id": 1, "name": "Ada"})])
    assert res.commit is None and res.count == 0
    assert nsl.head(seeded) == head and nsl.log(seeded)[0]["commit"] == head


@pytest.mark.parametrize("ops,error", [
    ([save("people", {"id": 9}), delete("people", 99)], UnknownObject),
    ([save("people", {"id": 9}), delete("nope", 1)], UnknownTable),
    ([save("people", {"id": 9}), save("nsl_meta", {"id": 1})], InvalidName),
    ([save("new_table", {"id": 9, "v": [1]}), save("people", {"id": [1]})], InvalidObject),
    ([save("people", {"id": 9, "new_col": 1}), save("people", {"id": 10, "NEW_COL": 1})], InvalidName),
    ([save("people", {"id": 1, "name": "A2"}), delete("people", 1)], BadInput),
    ([delete("people", 1), save("people", {"id": 1})], BadInput),
    ([delete("people", 1), delete("people", 1)], UnknownObject),
    ([], InvalidObject),
    ("ops", BadInput),
    ([{"save": {"table": "people"}}], InvalidObject),
    ([{"save": {"table": "people", "object": []}}], InvalidObject),
    ([{"save": {"table": 5, "object": {}}}], BadInput),
    ([{"delete": {"table": "people"}}], BadInput),
    ([{"delete": {"table": "people", "key": 1.5}}], BadInput),
    ([{"delete": {"table": "people", "key": 1, "x": 1}}], BadInput),
    ([{"upsert": {"table": "people"}}], BadInput),
    ([{"save": {}, "delete": {}}], BadInput),
    ([save("people", {"id": 2 ** 63})], nsl.NslError),
])
def test_failing_op_changes_nothing(seeded, ops, error):
    db = seeded
    head = nsl.head(db)
    tables = [t.name for t in db.tables()]
    cols = db.table("people").columns
    with pytest.raises(error) as e:
        batch.apply(db, ops, message="no")
    assert e.value.message
    assert nsl.head(db) == head
    assert [t.name for t in db.tables()] == tables and db.table("people").columns == cols
    assert sorted(o["id"] for o in nsl.find(db, "people") if isinstance(o["id"], int)) == [1, 2]
    assert nsl.status(db) == [] and nsl.verify(db).ok


def test_error_names_the_op(seeded):
    with pytest.raises(UnknownObject, match=r"^op 2: no object with key 99"):
        batch.apply(seeded, [save("people", {"id": 9}), delete("people", 99)])


def test_refused_while_checked_out(seeded):
    nsl.save(seeded, "people", [{"id": 5}])
    nsl.checkout(seeded, "HEAD~1")
    with pytest.raises(CheckedOut):
        batch.apply(seeded, [save("people", {"id": 6})])
    nsl.checkout(seeded, "HEAD")
    assert nsl.verify(seeded).ok
