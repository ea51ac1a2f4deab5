"""Saving into an adopted table whose columns have declared types (as sqlite-utils and most schemas make
them): SQLite converts each value by its column's affinity, and nsl records the value as stored, so
`get` shows what any SQLite client sees, the version uuid is the hash the sqlite3 shell computes, and
`nsl verify` stays clean."""
from __future__ import annotations

import io
import sqlite3

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nsl
from nsl.core import affinity, bulk
from nsl.core.rowtext import hasher, row_text
from nsl.errors import InvalidObject

SCHEMA = ('CREATE TABLE {name} ("id" INTEGER PRIMARY KEY, "r" REAL, "i" INTEGER, "s" TEXT, "n" NUMERIC, '
          '"b" BLOB, "v" VARCHAR(10), "f" DOUBLE PRECISION, "d" DECIMAL(10,2), "u")')
TYPED = ["r", "i", "s", "n", "b", "v", "f", "d", "u"]


def adopted(path):
    conn = sqlite3.connect(path)
    conn.execute(SCHEMA.format(name="t"))
    conn.commit()
    conn.close()
    db, res = nsl.init(path)
    assert res.tracked == ["t"]
    return db


def as_sqlite_stores(path, objs):
    """The rows plain SQLite keeps for these objects, in a twin table with the same declared types:
    true/false bound as 1/0, nested values as JSON text."""
    conn = sqlite3.connect(path)
    conn.execute(SCHEMA.format(name="twin"))
    out = {}
    for o in objs:
        vals = [o.get(c) for c in ["id"] + TYPED]
        vals = [orjson.dumps(v).decode() if isinstance(v, (dict, list)) else v for v in vals]
        # (read back with SELECT: RETURNING shows a REAL column's whole number as an integer)
        rowid = conn.execute(f"INSERT INTO twin VALUES ({','.join('?' * len(vals))})", vals).lastrowid
        out[rowid] = conn.execute("SELECT * FROM twin WHERE rowid = ?", (rowid,)).fetchone()
    conn.execute("DROP TABLE twin")
    conn.commit()
    conn.close()
    return out


def test_affinity_rules():
    assert [affinity.of_declared(d) for d in ["INTEGER", "bigint", "VARCHAR(5)", "clob", "", "blob", "REAL",
                                              "double precision", "FLOAT", "DECIMAL(10,2)", "BOOLEAN", "date"]] \
        == ["INTEGER", "INTEGER", "TEXT", "TEXT", "BLOB", "BLOB", "REAL", "REAL", "REAL", "NUMERIC", "NUMERIC",
            "NUMERIC"]


def test_values_are_recorded_as_the_typed_columns_store_them(tmp_path):
    db = adopted(tmp_path / "x.db")
    obj = {"id": 1, "r": 5, "i": "42", "s": 7, "n": "12", "b": 5, "v": True, "f": "2.5", "d": 3.0, "u": "7"}
    nsl.save(db, "t", [obj])
    got = nsl.get(db, "t", 1)
    assert got == {"id": 1, "r": 5.0, "i": 42, "s": "7", "n": 12, "b": 5, "v": "1", "f": 2.5, "d": 3, "u": "7"}
    assert type(got["r"]) is float and type(got["d"]) is int
    # what SQLite itself keeps, read back by a plain client
    row = db.conn.execute('SELECT * FROM "t" WHERE id=1').fetchone()
    assert list(row) == [got[c] for c in ["id"] + TYPED]
    assert nsl.row_hash(db, "t", 1) == nsl.history(db, "t", 1)[0]["version"]
    assert nsl.verify(db).ok
    # saving what `get` returned changes nothing
    assert nsl.save(db, "t", [got]).commit is None


def test_a_text_key_that_looks_like_an_integer_becomes_the_integer_key(tmp_path):
    db = adopted(tmp_path / "x.db")
    res = nsl.save(db, "t", [{"id": "3", "s": 1.5}], collect_keys=True)
    assert res.keys == [3]
    assert nsl.get(db, "t", 3) == {"id": 3, "s": "1.5"}
    assert nsl.verify(db).ok


def test_objects_without_a_key_get_integer_keys_in_an_integer_primary_key_table(tmp_path):
    db = adopted(tmp_path / "x.db")
    res = nsl.save(db, "t", [{"r": 1}, {"r": 2}], collect_keys=True)
    assert all(type(k) is int and 0 < k < 2**63 for k in res.keys) and len(set(res.keys)) == 2
    assert sorted(o["r"] for o in nsl.find(db, "t")) == [1.0, 2.0]
    assert nsl.verify(db).ok


def test_a_key_the_integer_primary_key_cannot_hold_is_refused_and_nothing_changes(tmp_path):
    db = adopted(tmp_path / "x.db")
    nsl.save(db, "t", [{"id": 1, "s": "a"}])
    head = nsl.head(db)
    with pytest.raises(InvalidObject, match=r"object 2: key 'id' must be an integer .*INTEGER PRIMARY KEY.*'x'"):
        nsl.save(db, "t", [{"id": 2}, {"id": "x"}])
    with pytest.raises(InvalidObject, match="must be an integer"):
        nsl.save(db, "t", [{"id": "2.5"}])
    assert nsl.head(db) == head
    assert [o["id"] for o in nsl.find(db, "t")] == [1]
    assert nsl.verify(db).ok


def test_bulk_json_lines_into_a_typed_table(tmp_path):
    db = adopted(tmp_path / "x.db")
    lines = b"".join(orjson.dumps({"id": i, "r": i, "s": i * 0.5, "n": str(i)}) + b"\n" for i in range(1, 5001))
    res = bulk.save_lines(db, "t", io.BufferedReader(io.BytesIO(lines)))
    assert res.count == 5000
    assert nsl.get(db, "t", 4999) == {"id": 4999, "r": 4999.0, "s": "2499.5", "n": 4999}
    assert nsl.verify(db).ok


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-2**63, 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", " 12 ", "12", "-0", "1e3", "0x10", "1.50", "9223372036854775808", "abc", "3.0", ".5"]),
    st.text(max_size=6),
    st.lists(st.integers(0, 3), max_size=2),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.fixed_dictionaries({}, optional={c: scalars for c in TYPED}), min_size=1, max_size=5))
def test_any_value_in_any_typed_column_is_what_sqlite_stores(tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("aff") / "x.db"
    db = adopted(path)
    objs = [{"id": i + 1, **r} for i, r in enumerate(rows)]
    nsl.save(db, "t", objs)
    expected = as_sqlite_stores(path, objs)
    for k, row in expected.items():
        got = nsl.get(db, "t", k)
        assert [got.get(c) for c in ["id"] + TYPED] == [
            (o if isinstance(o, (dict, list)) and isinstance(v, str) else
             o if type(o) is bool and v == int(o) and type(v) is int else v)
            for v, o in zip(row, [objs[k - 1].get(c) for c in ["id"] + TYPED])]
        # the version's uuid is the hash of the row as SQLite holds it (what the sqlite3 shell prints)
        assert nsl.history(db, "t", k)[0]["version"] == hasher(db.hash_algo)(row_text(list(row))).hexdigest()
    assert nsl.verify(db).ok
    db.close()
