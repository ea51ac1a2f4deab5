"""Saving and reading objects through the library: what is saved is what comes back."""
from __future__ import annotations

import io
import math

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nsl
from nsl.core.objects import iter_json_input
from nsl.errors import InvalidJSON, InvalidName, InvalidObject, UnknownObject, ValueOutOfRange

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-2**63, 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False), st.text(st.characters(blacklist_categories=("Cs",)), max_size=20),
)
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=4)), max_leaves=8)
attr = st.sampled_from(["a", "b", "c", "d", "nested", "list"])


def same(a, b):
    """Equal as JSON values, with types (True is not 1, 1.0 is not 1) and -0.0 kept."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b) or (a != a and b != b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(objs=st.lists(st.dictionaries(attr, json_values, max_size=5), min_size=1, max_size=6))
def test_round_trip_exact(tmp_path_factory, objs):
    db, _ = nsl.init(tmp_path_factory.mktemp("rt") / "rt.db")
    saved = [{"id": i, **o} for i, o in enumerate(objs)]
    nsl.save(db, "t", saved)
    for o in saved:
        assert same(nsl.get(db, "t", o["id"]), o)
    found = {o["id"]: o for o in nsl.find(db, "t")}
    for o in saved:
        assert same(found[o["id"]], o)
    assert nsl.verify(db).ok
    db.close()


def test_update_makes_a_new_version_with_the_old_as_parent(db):
    c1 = nsl.save(db, "people", [{"id": 1, "name": "Ada"}]).commit
    c2 = nsl.save(db, "people", [{"id": 1, "name": "Ada L", "born": 1815}]).commit
    assert c1 != c2
    assert nsl.get(db, "people", 1) == {"id": 1, "name": "Ada L", "born": 1815}
    h = nsl.history(db, "people", 1)
    assert [e["op"] for e in h] == ["U", "I"]
    assert h[0]["parents"] == [h[1]["version"]]
    assert h[1]["object"] == {"id": 1, "name": "Ada"}


def test_resaving_identical_objects_makes_no_commit(db):
    nsl.save(db, "t", [{"id": 1, "x": 1}])
    res = nsl.save(db, "t", [{"id": 1, "x": 1}])
    assert res.commit is None and res.count == 0
    assert len(nsl.log(db)) == 1


def test_same_key_twice_in_one_save_keeps_the_last(db):
    res = nsl.save(db, "t", [{"id": 1, "x": 1}, {"id": 1, "x": 2}], collect_keys=True)
    assert nsl.get(db, "t", 1) == {"id": 1, "x": 2}
    assert len(nsl.history(db, "t", 1)) == 1
    assert res.keys == [1]
    assert nsl.verify(db).ok


def test_same_key_in_two_batches_of_one_save(db, monkeypatch):
    from nsl.core import objects

    monkeypatch.setattr(objects, "BATCH", 3)
    nsl.save(db, "t", [{"id": i, "v": i} for i in range(5)] + [{"id": 1, "v": "again"}])
    assert nsl.get(db, "t", 1) == {"id": 1, "v": "again"}
    assert len(nsl.log(db)) == 1
    assert nsl.verify(db).ok


def test_missing_keys_are_generated_time_sortable_and_unique(db):
    res = nsl.save(db, "t", [{"x": i} for i in range(50)], collect_keys=True)
    keys = res.keys
    assert len(set(keys)) == 50 and all(isinstance(k, str) and len(k) == 26 for k in keys)
    later = nsl.save(db, "t", [{"x": "later"}], collect_keys=True).keys[0]
    assert later > max(keys)[:10]


def test_new_attributes_become_columns_and_old_rows_keep_their_hash(db):
    nsl.save(db, "t", [{"id": 1, "a": 1}])
    nsl.save(db, "t", [{"id": 2, "a": 2, "b": "new"}])
    assert db.table("t").columns == ["id", "a", "b"]
    assert nsl.get(db, "t", 1) == {"id": 1, "a": 1}
    assert nsl.verify(db).ok


def test_key_column_option(db):
    nsl.save(db, "users", [{"email": "a@x", "n": 1}], key="email")
    assert nsl.get(db, "users", "a@x") == {"email": "a@x", "n": 1}
    with pytest.raises(Exception, match="keyed by 'email'"):
        nsl.save(db, "users", [{"email": "b@x"}], key="id")


@pytest.mark.parametrize("objs,err", [
    ([{"id": 1, "n": 2**64}], ValueOutOfRange),
    ([{"id": 1.5}], InvalidObject),
    ([{"id": True}], InvalidObject),
    ([42], InvalidObject),
    ([{"id": 1, "a.b": 1}], InvalidName),
    ([{"id": 1, "$x": 1}], InvalidName),
    ([{"id": 1, "": 1}], InvalidName),
])
def test_bad_objects_change_nothing(db, objs, err):
    nsl.save(db, "t", [{"id": 0, "ok": True}])
    head = nsl.head(db)
    with pytest.raises(err):
        nsl.save(db, "t", [{"id": 5, "fine": 1}] + objs)
    assert nsl.head(db) == head
    assert [o["id"] for o in nsl.find(db, "t")] == [0]
    assert db.table("t").columns == ["id", "ok"]
    assert nsl.verify(db).ok


def test_attribute_differing_only_in_case_is_refused(db):
    nsl.save(db, "t", [{"id": 1, "name": "a"}])
    with pytest.raises(InvalidName, match="ignore case"):
        nsl.save(db, "t", [{"id": 2, "Name": "b"}])


def test_big_integers_in_json_text_are_refused_not_rounded():
    with pytest.raises(ValueOutOfRange):
        list(iter_json_input(io.BytesIO(b'{"id":1,"n":123456789012345678901234567890}\n')))
    with pytest.raises(ValueOutOfRange):
        list(iter_json_input(io.BytesIO(b'[{"n": -9223372036854775809}]')))
    ok = list(iter_json_input(io.BytesIO(b'{"n": 9223372036854775807, "f": 0.1234567890123456789012}\n')))
    assert ok == [{"n": 9223372036854775807, "f": 0.1234567890123456789012}]


def test_json_input_forms():
    def parse(b):
        return list(iter_json_input(io.BytesIO(b)))
    assert parse(b'{"a":1}') == [{"a": 1}]
    assert parse(b'[{"a":1},{"a":2}]') == [{"a": 1}, {"a": 2}]
    assert parse(b'{"a":1}\n\n{"a":2}\n') == [{"a": 1}, {"a": 2}]
    assert parse(b'{\n  "a": 1\n}\n') == [{"a": 1}]
    with pytest.raises(InvalidJSON, match="line 3"):
        parse(b'{"a":1}\n{"a":2}\n{"a":\n')


def test_get_unknown_key(db):
    nsl.save(db, "t", [{"id": 1}])
    with pytest.raises(UnknownObject):
        nsl.get(db, "t", 2)


def test_text_and_integer_keys_from_the_command_line(db):
    nsl.save(db, "t", [{"id": 5, "v": "int"}, {"id": "x", "v": "text"}])
    assert nsl.get(db, "t", "5")["v"] == "int"
    assert nsl.get(db, "t", "x")["v"] == "text"


def test_find_with_predicate_sort_limit_fields(db):
    nsl.save(db, "p", [{"id": i, "age": a, "city": c, "addr": {"zip": z}}
                       for i, (a, c, z) in enumerate([(30, "Oslo", 1), (40, "Rome", 2), (50, "Oslo", 3)])])
    got = list(nsl.find(db, "p", {"city": "Oslo"}, sort="-age", fields=["id", "addr.zip"]))
    assert got == [{"id": 2, "addr": {"zip": 3}}, {"id": 0, "addr": {"zip": 1}}]
    assert [o["id"] for o in nsl.find(db, "p", {"age": {"$gte": 40}}, sort="age", limit=1, skip=1)] == [2]


def test_delete_by_key_and_where(db):
    nsl.save(db, "t", [{"id": i, "even": i % 2 == 0} for i in range(6)])
    nsl.delete(db, "t", [1])
    res = nsl.delete(db, "t", where={"even": True})
    assert sorted(res.keys) == [0, 2, 4]
    assert [o["id"] for o in nsl.find(db, "t")] == [3, 5]
    with pytest.raises(UnknownObject):
        nsl.delete(db, "t", [3, 99])
    assert [o["id"] for o in nsl.find(db, "t")] == [3, 5]
    assert nsl.history(db, "t", 1)[0]["op"] == "D"
    assert nsl.verify(db).ok


def test_library_and_orjson_agree_on_saved_json(db):
    obj = {"id": 1, "f": 1e20, "neg0": -0.0, "nested": {"a": [1, 2.5, None, True]}}
    nsl.save(db, "t", [obj])
    assert orjson.dumps(nsl.get(db, "t", 1)) == orjson.dumps(obj)


def test_adopted_integer_key_table_finds_versions_through_the_index(tmp_path):
    """A key column declared INTEGER must not make every lookup scan the table's history."""
    import sqlite3

    from nsl.core.objects import find_sql

    path = tmp_path / "adopted.db"
    c = sqlite3.connect(path)
    c.execute("CREATE TABLE w(id INTEGER PRIMARY KEY, city TEXT)")
    c.executemany("INSERT INTO w VALUES (?, ?)", [(i, "Oslo" if i % 2 else "Rome") for i in range(50)])
    c.commit()
    c.close()
    db, res = nsl.init(path)
    assert res.tracked == ["w"] and res.commit
    sql, params = find_sql(db.table("w"), {"city": "Oslo"}, None)
    plan = " ".join(r[3] for r in db.conn.execute("EXPLAIN QUERY PLAN " + sql, params))
    assert "(tbl=? AND key=?)" in plan
    assert len(list(nsl.find(db, "w", {"city": "Oslo"}))) == 25
    assert nsl.get(db, "w", "3") == {"id": 3, "city": "Oslo"}
    assert nsl.verify(db).ok


def test_edge_keys_and_names(db):
    """A null key gets a new one; braces in a table name; the smallest 64-bit key from text."""
    res = nsl.save(db, "a{b}", [{"id": None, "x": 1}, {"id": -2**63}], collect_keys=True)
    assert isinstance(res.keys[0], str) and res.keys[1] == -2**63
    assert nsl.get(db, "a{b}", str(-2**63)) == {"id": -2**63}
    with pytest.raises(UnknownObject):
        nsl.get(db, "a{b}", "²")
    assert nsl.verify(db).ok
