"""Predicate compiler: SQL results agree with matches(), MongoDB rules hold, bad input is refused,
nothing reaches the SQL text unquoted, and plain columns keep their indexes."""
from __future__ import annotations

import dataclasses
import json
import random
import re
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nsl as nsllib
from nsl.core import query, schema
from nsl.core.query import Fields, compile_sort, compile_where, matches, register_functions
from nsl.core.rowtext import ABSENT, FALSE, JSON, TRUE, header, typed_cell
from nsl.core.values import inherit_kinds, to_cell, to_object
from nsl.errors import InvalidPredicate

TABLE = "docs"


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def build(conn, columns, objects, raw=(), stale=None):
    """A user table holding `objects` the way nsl stores them; ids in `raw` have no version content
    (as if written by plain SQL), and stale[id] is the object the version of a row changed outside
    nsl holds. Returns Fields with json_columns and bool_columns as nsl would have recorded them (from
    every version's kinds)."""
    stale = stale or {}
    json_cols, bool_cols = set(), set()
    conn.execute("BEGIN")
    for stmt in schema.statements(schema.ARTIFACT_TABLES + schema.DERIVED_TABLES):
        conn.execute(stmt)
    conn.execute(f"DROP TABLE IF EXISTS {q(TABLE)}")
    conn.execute("DELETE FROM nsl_version")
    conn.execute(f"CREATE TABLE {q(TABLE)} ({', '.join(q(c) for c in columns)})")
    head = header(columns)
    for vid, obj in enumerate(objects, 1):
        cells = _cells(columns, obj)
        conn.execute(
            f"INSERT INTO {q(TABLE)} VALUES ({', '.join('?' * len(columns))})", [v for v, _ in cells]
        )
        if obj["id"] in raw:
            continue
        if obj["id"] in stale:
            cells = _cells(columns, stale[obj["id"]])
        content = head + "\n" + "|".join(typed_cell(v, k) for v, k in cells)
        conn.execute("INSERT INTO nsl_version(vid, cid, tbl, key, op, content) VALUES (?, 1, ?, ?, 'I', ?)",
                     (vid, TABLE, obj["id"], content))
        json_cols |= {c for c, (_, k) in zip(columns, cells) if k == JSON}
        bool_cols |= {c for c, (_, k) in zip(columns, cells) if k in (TRUE, FALSE)}
    conn.execute("COMMIT")
    return Fields(list(columns), json_cols, key="id", bool_columns=bool_cols, table=TABLE)


def _cells(columns, obj):
    return [to_cell(obj[c]) if c in obj else (None, ABSENT) for c in columns]


# The find query of nsl.core.objects.find_sql: the row's current version joined as `v`.
JOIN = "LEFT JOIN nsl_version AS v ON v.vid = " + schema.current_version("?", 't."id"') + " AND v.op != 'D'"


def find_sql(fields, pred, sort=None):
    where, params = compile_where(pred, fields)
    order = compile_sort(sort, fields)
    sql = (
        f"SELECT t.*, v.content FROM {q(TABLE)} AS t {JOIN}"
        f" WHERE {where}" + (f" ORDER BY {order}" if order else "") + " LIMIT ? OFFSET ?"
    )
    return sql, [TABLE, *params, -1, 0]


def find_ids(conn, fields, pred, sort=None) -> list:
    sql, params = find_sql(fields, pred, sort)
    return [r[0] for r in conn.execute(sql, params)]


def seen_by_sql(obj, raw, old=None, columns=None):
    """The object as nsl judges a row: without a version, by the SQL values alone (NULL is absent,
    true is 1, a nested value is its JSON text, a string); changed outside nsl since its version
    `old`, as `nsl commit` will record it (kinds carried over where the values still fit them)."""
    if not raw and old is None:
        return obj
    columns = columns or list(obj)
    values = [v for v, _ in _cells(columns, obj)]
    if old is None:
        return to_object(columns, values, inherit_kinds(values, [], []))
    old_cells = _cells(columns, old)
    return to_object(columns, values, inherit_kinds(values, [v for v, _ in old_cells], [k for _, k in old_cells]))


def connect(path=":memory:"):
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")  # scratch databases: no fsync per statement
    register_functions(conn)
    return conn


# --------------------------------------------------------------------------------------------------
# 1. Property: SQL and matches() agree.

COLUMNS = ["id", "a", "b", "c", "tags", "sub", "items"]
# Small pools so that random predicates hit some rows and miss others.
# Booleans, the numbers they are stored as, and strings that read as JSON share every column.
JSONISH = ["[1]", "[5,6]", '{"x":1}', "[]", "true", "1", '["x"]', "[true]"]
scalars = st.one_of(
    st.integers(-1, 2),
    st.sampled_from([0.5, 2.0, -1.5, 1.0, 0.0]),
    st.booleans(),
    st.sampled_from(["", "x", "y", "ab", "Xy", "5", "é", "a%b"]),
    st.sampled_from(JSONISH),
    st.none(),
)
arrays = st.lists(scalars, max_size=3)
deep = st.fixed_dictionaries(
    {}, optional={"w": st.one_of(scalars, st.lists(st.fixed_dictionaries({"v": scalars}), max_size=2))}
)
sub_objects = st.fixed_dictionaries(
    {}, optional={"x": st.one_of(scalars, arrays), "y": scalars, "z": st.one_of(deep, st.lists(deep, max_size=2))}
)
MISSING = object()


def _maybe(strategy):
    # Keys are present three times in four: sparse objects make every predicate all-or-nothing.
    return st.one_of(st.just(MISSING), strategy, strategy, strategy)


objects = st.fixed_dictionaries(
    {
        "a": _maybe(scalars),  # never nested: a plain column, compiled to the sargable forms
        "b": _maybe(st.one_of(scalars, arrays)),
        "c": _maybe(st.one_of(st.booleans(), st.sampled_from([0, 1, "x", "[1]"]), st.none())),  # mostly booleans
        "tags": _maybe(st.one_of(arrays, scalars, st.lists(arrays, max_size=2))),
        "sub": _maybe(st.one_of(sub_objects, sub_objects, scalars, arrays, st.lists(sub_objects, max_size=2))),
        "items": _maybe(st.one_of(st.lists(st.one_of(sub_objects, scalars), max_size=3), sub_objects)),
    },
).map(lambda o: {k: v for k, v in o.items() if v is not MISSING})
# How each row stands: as saved, written outside nsl (no version), or changed outside nsl since its
# version (which holds the other object).
ROW_STATES = st.sampled_from(["saved", "saved", "raw", "changed"])
datasets = st.lists(st.tuples(objects, ROW_STATES, objects), min_size=3, max_size=10).map(
    lambda xs: (
        [{"id": i, **o} for i, (o, _, _) in enumerate(xs, 1)],
        {i for i, (_, how, _) in enumerate(xs, 1) if how == "raw"},
        {i: {"id": i, **old} for i, (_, how, old) in enumerate(xs, 1) if how == "changed"},
    )
)

PATHS = [
    "a", "b", "c", "tags", "sub", "items", "A", "Sub.x", "sub.x", "sub.y", "sub.z.w", "sub.z", "sub.x.0",
    "sub.0", "sub.0.x", "tags.0", "tags.1", "items.x", "items.y", "items.z.w", "items.0.x", "nope", "nope.x", "a.x",
    "sub.z.w.v", "items.z.w.v", "items.z.0.w", "sub.z.w.0.v", "items.1.z.w.v",
]
POOL = [-1, 0, 1, 2, 0.5, 2.0, -1.5, 1.0, 0.0, "", "x", "y", "ab", "Xy", "5", "é", "a%b", None, True, False,
        [], ["x"], [1, 2], ["x", None], {}, {"x": 1}, {"x": "y"}, [1], [True], [5, 6], *JSONISH]
ORDERED = [-1, 0, 1, 2, 0.5, 2.0, 1.0, 0.0, "", "x", "ab", "y", "Xy", "1", "[1]", None, True, False]
REGEXES = ["^x", "y$", "a|b", "X", "^$", "é", r"\d", "^(x|ab)$"]
LIKES = ["x%", "%b", "_", "A%", "%", "x_y", "", "a%b", "%Y"]


def _paths_in(x, prefix, out):
    """Dotted paths the value holds (through arrays of objects, as queries reach them) -> values."""
    out.setdefault(prefix, []).append(x)
    if isinstance(x, list):
        for e in x:
            out[prefix].append(e)
            if isinstance(e, dict):
                for k, v in e.items():
                    _paths_in(v, f"{prefix}.{k}", out)
    elif isinstance(x, dict):
        for k, v in x.items():
            _paths_in(v, f"{prefix}.{k}", out)
    return out


class PredicateMaker:
    """Random predicates over every operator. Plain random draws from a seed hypothesis picks spread
    over the operators evenly, where hypothesis' own strategies (and its `randoms()`) mostly try the
    first choice. Paths and operands are often ones the data holds, so results are mixed."""

    def __init__(self, rng, objs):
        self.rng = rng
        self.by_path = {}
        for o in objs:
            for k, x in o.items():
                if k != "id":
                    _paths_in(x, k, self.by_path)
        self.path = None

    def value(self):
        found = self.by_path.get(self.path)
        if found and self.rng.random() < 0.7:
            return self.rng.choice(found)
        return self.rng.choice(POOL)

    def ordered(self):
        vals = [v for v in self.by_path.get(self.path, ()) if isinstance(v, (int, float, str))]
        return self.rng.choice(vals) if vals and self.rng.random() < 0.6 else self.rng.choice(ORDERED)

    def op(self, depth):
        rng = self.rng
        kind = rng.choice(["$eq", "$ne", "$cmp", "$cmp", "$in", "$nin", "$exists", "$regex", "$like", "$not"])
        if kind in ("$eq", "$ne"):
            return {kind: self.value()}
        if kind == "$cmp":
            return {rng.choice(["$gt", "$gte", "$lt", "$lte"]): self.ordered()}
        if kind in ("$in", "$nin"):
            return {kind: [self.value() for _ in range(rng.randint(0, 3))]}
        if kind == "$exists":
            return {kind: rng.choice([True, False, 0, 1])}
        if kind == "$regex":
            opts = rng.choice(["", "", "i", "s", "im"])
            return {"$regex": rng.choice(REGEXES), **({"$options": opts} if opts else {})}
        if kind == "$like":
            return {kind: rng.choice(LIKES)}
        if depth > 0 and rng.random() < 0.8:
            return {"$not": self.op_doc(depth - 1)}
        return {"$not": rng.choice(REGEXES)}

    def op_doc(self, depth):
        doc = {}
        for _ in range(self.rng.choice([1, 1, 2])):
            doc.update(self.op(depth))
        return doc

    def condition(self):
        return self.value() if self.rng.random() < 0.3 else self.op_doc(2)

    def predicate(self, depth=0):
        rng = self.rng
        if depth < 2 and rng.random() < 0.3:
            op = rng.choice(["$and", "$or", "$nor"])
            return {op: [self.predicate(depth + 1) for _ in range(rng.randint(1, 3))]}
        if rng.random() < 0.05:
            return {}
        pred = {}
        for _ in range(rng.choice([1, 1, 2])):
            known = list(self.by_path)
            self.path = rng.choice(known) if known and rng.random() < 0.7 else rng.choice(PATHS)
            pred[self.path] = self.condition()
        return pred


@pytest.fixture(scope="module")
def prop_conn(tmp_path_factory):
    conn = connect(tmp_path_factory.mktemp("query") / "prop.db")
    yield conn
    conn.close()


# Dotted paths compile two ways (nested CASE up to query._UNROLL_MEMBERS members, a json_each chain
# beyond): 0 sends every path through the chain, 3 through the nested form as far as the data goes.
UNROLL_MODES = [query._UNROLL_MEMBERS, 0, 3]


@pytest.mark.parametrize("unroll", UNROLL_MODES)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dataset=datasets, data=st.data())
def test_sql_agrees_with_matches(prop_conn, unroll, dataset, data):
    objs, raw, changed = dataset
    fields = build(prop_conn, COLUMNS, objs, raw, changed)
    maker = PredicateMaker(random.Random(data.draw(st.integers(0, 2**32), label="seed")), objs)
    saved, query._UNROLL_MEMBERS = query._UNROLL_MEMBERS, unroll
    try:
        for i in range(8):
            pred = maker.predicate()
            # Conditions read the version themselves (the table named) or through the find query's join.
            f = fields if i % 2 else dataclasses.replace(fields, table=None)
            try:
                got = sorted(find_ids(prop_conn, f, pred))
            except InvalidPredicate as e:
                # Nesting every path 3 levels deep can outgrow SQLite's parser; the default cannot.
                assert unroll == 3 and "too deeply" in str(e), pred
                continue
            want = sorted(o["id"] for o in objs
                          if matches(pred, seen_by_sql(o, o["id"] in raw, changed.get(o["id"]), COLUMNS), f))
            assert got == want, (pred, f.json_columns, f.bool_columns, f.table)
    finally:
        query._UNROLL_MEMBERS = saved


@settings(max_examples=60, deadline=None)
@given(objs=st.lists(objects, max_size=6), data=st.data())
def test_matches_with_and_without_fields_agree_on_native_data(objs, data):
    # With every column declared JSON and boolean, the table view changes nothing for native objects.
    fields = Fields(COLUMNS, set(COLUMNS), bool_columns=set(COLUMNS))
    maker = PredicateMaker(random.Random(data.draw(st.integers(0, 2**32), label="seed")), objs)
    pred = maker.predicate()
    for o in objs:
        o = {"id": 0, **o}
        assert matches(pred, o, fields) == matches(pred, o)


# --------------------------------------------------------------------------------------------------
# 2. The MongoDB rules, case by case.

HAND_COLUMNS = ["id", "name", "n", "tags", "sub", "items", "nul", "flag"]
HAND = [
    {"id": 1, "name": "bob", "n": 5, "tags": ["x", "y"], "sub": {"x": 1, "y": "a"},
     "items": [{"sku": "A", "q": 1}, {"sku": "B", "q": 5}]},
    {"id": 2, "name": "alice", "n": 5.0, "tags": "x", "sub": {"x": [1, 2]}, "nul": None},
    {"id": 3, "name": "Bob", "n": "5", "tags": [], "sub": "plain", "nul": 1},
    {"id": 4, "n": None, "tags": ["z", ["x"]], "sub": {"x": None}, "items": {"sku": "A"}},
    {"id": 5, "name": None, "n": 7, "flag": True},
    {"id": 6, "name": "carol", "n": 2.5, "flag": False, "tags": [1, 5, 9]},
    {"id": 7, "name": "dave", "n": None},  # written outside nsl: no content, so n is absent
    {"id": 8, "sub": "{not json", "tags": "[x"},
]
HAND_RAW = {7}
ALL = set(range(1, 9))

CASES = [
    # equality, missing and null
    ({"name": "bob"}, {1}),
    ({"name": {"$eq": "bob"}}, {1}),
    ({"name": None}, {4, 5, 8}),
    ({"name": {"$ne": None}}, {1, 2, 3, 6, 7}),
    ({"name": {"$exists": True}}, {1, 2, 3, 5, 6, 7}),
    ({"name": {"$exists": False}}, {4, 8}),
    ({"n": {"$exists": True}}, {1, 2, 3, 4, 5, 6}),  # 4 holds an explicit null
    ({"n": {"$exists": False}}, {7, 8}),  # 7: NULL without content is absent
    ({"nul": None}, ALL - {3}),
    ({"nul": {"$exists": True}}, {2, 3}),
    ({"nul": {"$exists": 0}}, ALL - {2, 3}),
    # type brackets
    ({"n": 5}, {1, 2}),  # 5 == 5.0, never "5"
    ({"n": 5.0}, {1, 2}),
    ({"n": "5"}, {3}),
    ({"n": {"$gt": 4}}, {1, 2, 5}),
    ({"n": {"$gte": 5, "$lt": 7}}, {1, 2}),
    ({"n": {"$lte": 2.5}}, {6}),
    ({"n": {"$gt": "4"}}, {3}),
    ({"n": {"$gt": None}}, set()),
    ({"n": {"$gte": None}}, {4, 7, 8}),
    ({"name": {"$gte": "b", "$lt": "c"}}, {1}),
    ({"name": {"$lt": "a"}}, {3}),  # "Bob": uppercase sorts first
    ({"n": {"$ne": 5}}, {3, 4, 5, 6, 7, 8}),
    # booleans are a type of their own (stored as 1/0, told apart by the version's kind)
    ({"flag": True}, {5}),
    ({"flag": 1}, set()),
    ({"flag": False}, {6}),
    ({"flag": 0}, set()),
    ({"flag": {"$ne": True}}, ALL - {5}),
    ({"flag": {"$gt": False}}, {5}),
    ({"flag": {"$gte": 0}}, set()),
    ({"flag": {"$in": [True, 0]}}, {5}),
    ({"n": {"$gte": True}}, set()),
    # arrays
    ({"tags": "x"}, {1, 2}),  # element or scalar; ["x"] inside an array is one level too deep
    ({"tags": ["x"]}, {4}),  # an element equal to the array
    ({"tags": ["x", "y"]}, {1}),  # the whole array
    ({"tags": ["y", "x"]}, set()),
    ({"tags": []}, {3}),
    ({"tags": {"$ne": "x"}}, {3, 4, 5, 6, 7, 8}),
    ({"tags": {"$nin": ["x", "z"]}}, {3, 5, 6, 7, 8}),
    ({"tags": {"$gt": 4}}, {6}),
    ({"tags": {"$gt": 4, "$lt": 6}}, {6}),  # 5 in one element
    ({"tags": {"$in": [9, "y"]}}, {1, 6}),
    ({"tags.0": "x"}, {1}),
    ({"tags.1": ["x"]}, {4}),
    # nested paths
    ({"sub.x": 1}, {1, 2}),
    ({"sub.y": "a"}, {1}),
    ({"sub.x": None}, {3, 4, 5, 6, 7, 8}),
    ({"sub.x": {"$exists": True}}, {1, 2, 4}),
    ({"sub.x": {"$exists": False}}, {3, 5, 6, 7, 8}),
    ({"sub.x": {"$ne": None}}, {1, 2}),
    ({"sub.x.y": None}, ALL),
    ({"sub": {"x": 1, "y": "a"}}, {1}),
    ({"sub": {"y": "a", "x": 1}}, set()),  # key order matters, as in MongoDB
    ({"sub": "plain"}, {3}),
    ({"items.sku": "A"}, {1, 4}),  # through the array of objects, and into the object
    ({"items.q": {"$gte": 5}}, {1}),
    ({"items.0.sku": "A"}, {1}),
    ({"items.1.sku": "A"}, set()),
    ({"items.sku": {"$exists": True}}, {1, 4}),
    # $not, $in, $nin with null
    ({"n": {"$not": {"$gt": 4}}}, {3, 4, 6, 7, 8}),
    ({"name": {"$not": {"$regex": "^b"}}}, {2, 3, 4, 5, 6, 7, 8}),
    ({"name": {"$not": "^b"}}, {2, 3, 4, 5, 6, 7, 8}),
    ({"name": {"$in": ["bob", "carol", None]}}, {1, 4, 5, 6, 8}),
    ({"name": {"$in": []}}, set()),
    ({"name": {"$nin": ["bob", None]}}, {2, 3, 6, 7}),
    ({"n": {"$in": [5, "5"]}}, {1, 2, 3}),
    # text operators
    ({"name": {"$regex": "^b"}}, {1}),
    ({"name": {"$regex": "^b", "$options": "i"}}, {1, 3}),
    ({"name": {"$regex": "E$"}}, set()),
    ({"tags": {"$regex": "x"}}, {1, 2, 8}),  # strings only: not the JSON text of the nested ["x"] in 4
    ({"name": {"$like": "B%"}}, {1, 3}),
    ({"name": {"$like": "_a%"}}, {6, 7}),
    ({"n": {"$like": "5"}}, {3}),  # only strings
    # logic
    ({"$or": [{"n": 7}, {"name": "alice"}]}, {2, 5}),
    ({"$nor": [{"name": "bob"}, {"name": None}]}, {2, 3, 6, 7}),
    ({"$and": [{"n": {"$gte": 2}}, {"n": {"$lt": 6}}]}, {1, 2, 6}),
    ({"name": "bob", "n": 5}, {1}),
    ({}, ALL),
    (None, ALL),
    # columns
    ({"NAME": "bob"}, {1}),  # column names are case-insensitive
    ({"nope": None}, ALL),
    ({"nope": 1}, set()),
    ({"nope": {"$exists": True}}, set()),
    ({"nope": {"$ne": 1}}, ALL),
    ({"nope.x": None}, ALL),
    ({"name.x": None}, ALL),
]


@pytest.fixture(params=UNROLL_MODES, ids=lambda n: f"unroll{n}")
def hand(tmp_path, monkeypatch, request):
    monkeypatch.setattr(query, "_UNROLL_MEMBERS", request.param)
    conn = connect(tmp_path / "hand.db")
    fields = build(conn, HAND_COLUMNS, HAND, HAND_RAW)
    assert fields.json_columns == {"tags", "sub", "items"}
    assert fields.bool_columns == {"flag"}
    yield conn, fields
    conn.close()


@pytest.mark.parametrize("pred,want", CASES, ids=[repr(c[0]) for c in CASES])
def test_case(hand, pred, want):
    conn, fields = hand
    assert set(find_ids(conn, fields, pred)) == want
    if pred is not None:
        ref = {o["id"] for o in HAND if matches(pred, seen_by_sql(o, o["id"] in HAND_RAW), fields)}
        assert ref == want


def test_where_is_never_null(hand):
    conn, fields = hand
    for pred, _ in CASES:
        where, params = compile_where(pred, fields)
        sql = f"SELECT ({where}) FROM {q(TABLE)} AS t {JOIN}"
        assert {r[0] for r in conn.execute(sql, [*params, TABLE])} <= {0, 1}, pred


def test_matches_without_fields():
    assert matches({"tags": "x"}, {"tags": ["x"]})
    assert matches({"a": None}, {})
    assert not matches({"a": {"$exists": True}}, {})
    assert matches({"a": {"$exists": True}}, {"a": None})
    assert matches({"A": 1}, {"a": 1})  # column names fold like SQLite's
    assert not matches({"a.B": 1}, {"a": {"b": 1}})  # nested keys do not
    assert not matches({"a": 1}, {"a": True}) and not matches({"a": True}, {"a": 1})
    assert not matches({"a": 1}, {"a": "[1]"}) and matches({"a": 1}, {"a": [1]})
    assert matches({"a": {"$lt": True}}, {"a": False}) and not matches({"a": {"$lt": 2}}, {"a": False})


def test_sort(hand):
    conn, fields = hand
    # NULL < numbers < text, ties by rowid
    assert find_ids(conn, fields, None, "n") == [4, 7, 8, 6, 1, 2, 5, 3]
    assert find_ids(conn, fields, None, "-n") == [3, 5, 1, 2, 6, 4, 7, 8]
    # '[1,2]' (text) > 1 > NULLs; the NULLs by name (NULL first), then by rowid
    assert find_ids(conn, fields, None, ["-sub.x", "name"]) == [2, 1, 4, 5, 8, 3, 6, 7]
    assert find_ids(conn, fields, None, "-sub.x,name") == [2, 1, 4, 5, 8, 3, 6, 7]
    assert find_ids(conn, fields, {"sub.x": {"$exists": True}}, "-sub.x") == [2, 1, 4]  # '[1,2]' text > 1 > null
    assert find_ids(conn, fields, None, "nope,-id") == [8, 7, 6, 5, 4, 3, 2, 1]
    assert find_ids(conn, fields, None, None) == list(range(1, 9))
    assert compile_sort(None, fields) == "t.rowid"
    assert compile_sort(" name , -n ", fields) == 't."name", t."n" DESC, t.rowid'
    assert compile_sort("+N", fields) == 't."n", t.rowid'
    assert compile_sort(None, Fields(["k"], set(), key="k", rowid=False)) == 't."k"'
    assert compile_sort(None, Fields(["k"], set(), rowid=False)) == ""
    for bad in ("a,,b", "-", ["a", ""], "sub..x", [1]):
        with pytest.raises(InvalidPredicate):
            compile_sort(bad, fields)


# --------------------------------------------------------------------------------------------------
# 3. Refused predicates and injection attempts.

BAD = [
    ({"$where": "1"}, "$where"),
    ({"a": {"$size": 2}}, "$size"),
    ({"a": {"$elemMatch": {}}}, "$elemMatch"),
    ({"$gt": 1}, "$gt"),
    ([], "JSON object"),
    ("a", "JSON object"),
    ({"a": {"$in": 5}}, "$in"),
    ({"a": {"$nin": "x"}}, "$nin"),
    ({"a": {"$exists": "yes"}}, "$exists"),
    ({"a": {"$exists": 2}}, "$exists"),
    ({"$and": []}, "$and"),
    ({"$or": [1]}, "$or"),
    ({"$nor": {"a": 1}}, "$nor"),
    ({"$and": [{"a": {"$bad": 1}}]}, "$bad"),
    ({"a": {"$regex": "("}}, "regular expression"),
    ({"a": {"$regex": 5}}, "$regex"),
    ({"a": {"$regex": "x", "$options": "q"}}, "$options"),
    ({"a": {"$options": "i"}}, "$options"),
    ({"a": {"$not": 5}}, "$not"),
    ({"a": {"$not": {}}}, "$not"),
    ({"a": {"$not": {"b": 1}}}, "$not"),
    ({"a": {"$not": "("}}, "regular expression"),
    ({"a": {"$like": 1}}, "$like"),
    ({"a": {"$gt": [1]}}, "$gt"),
    ({"a": {"$gt": 1, "b": 2}}, "mixes"),
    ({"": 1}, "empty"),
    ({"a..b": 1}, "empty"),
    ({"a.": 1}, "empty"),
    ({".a": 1}, "empty"),
    ({"sub.x\"y": 1}, "double quote"),
    ({"sub.x\\y": 1}, "backslash"),
    ({"a": 2**70}, "64 bits"),
    ({"a": float("nan")}, "NaN"),
    ({"a": {"$eq": object()}}, "JSON value"),
    ({"sub." + ".".join("x" * 25): 1}, "deep"),
]


# ids must not show an object()'s address: they are the same in every process (pytest-xdist compares them).
@pytest.mark.parametrize("pred,word", BAD, ids=[re.sub(r" at 0x[0-9a-f]+", "", repr(b[0])) for b in BAD])
def test_invalid(pred, word):
    fields = Fields(["a", "sub"], {"sub"})
    with pytest.raises(InvalidPredicate) as e:
        compile_where(pred, fields)
    assert word in str(e.value)
    with pytest.raises(InvalidPredicate):
        matches(pred, {"a": 1}, fields)


def test_unknown_operator_message_lists_supported():
    with pytest.raises(InvalidPredicate) as e:
        compile_where({"a": {"$size": 1}}, Fields(["a"]))
    msg = str(e.value)
    assert "$size" in msg and "$eq" in msg and "$regex" in msg and "$like" in msg
    assert e.value.code == "invalid_predicate"


EVIL = 'a"; DROP TABLE docs; --'


def test_injection_is_harmless(hand):
    conn, fields = hand
    attempts = [
        {EVIL: 1},
        {EVIL: None},
        {"name": EVIL},
        {"name": {"$in": [EVIL, "x'); DROP TABLE docs; --"]}},
        {"name": {"$regex": EVIL}},
        {"name": {"$like": EVIL}},
        {"sub.x'); DROP TABLE docs; --": 1},
        {"sub": {EVIL: EVIL}},
        {"tags": {"$gt": "'; DROP TABLE docs; --"}},
    ]
    for pred in attempts:
        where, params = compile_where(pred, fields)
        assert "DROP" not in where
        find_ids(conn, fields, pred)
    with pytest.raises(InvalidPredicate):
        compile_where({'sub.x"]; DROP TABLE docs; --': 1}, fields)
    for sort in (EVIL, "-" + EVIL, "sub.x'); DROP TABLE docs; --", ["name", EVIL]):
        find_ids(conn, fields, None, sort)
    assert conn.execute(f"SELECT count(*) FROM {q(TABLE)}").fetchone()[0] == len(HAND)


def test_odd_column_names(tmp_path):
    conn = connect(tmp_path / "odd.db")
    cols = ["id", 'we"ird', "sp ace", "x'y"]
    objs = [{"id": 1, 'we"ird': 1, "sp ace": {"k": "v"}, "x'y": "q"}, {"id": 2, 'we"ird': 2}]
    fields = build(conn, cols, objs)
    assert find_ids(conn, fields, {'WE"IRD': 2}) == [2]
    assert find_ids(conn, fields, {"sp ace.k": "v"}) == [1]
    assert find_ids(conn, fields, {"x'y": {"$exists": False}}) == [2]
    assert find_ids(conn, fields, None, ["-we\"ird", "sp ace.k", "-x'y"]) == [2, 1]


def test_strings_are_never_parsed(tmp_path):
    # Dotted paths into text that is not JSON must not raise "malformed JSON"; and a string is a
    # string even when it reads as JSON, in a column that holds nested values too.
    conn = connect(tmp_path / "t.db")
    objs = [{"id": 1, "s": "[oops"}, {"id": 2, "s": "{\"a\":"}, {"id": 3, "s": {"a": 1}}, {"id": 4, "s": 7},
            {"id": 5, "s": "[1, 2]"}, {"id": 6, "s": '{"a": 1}'}]
    fields = build(conn, ["id", "s"], objs)
    assert find_ids(conn, fields, {"s.a": 1}) == [3]
    assert find_ids(conn, fields, {"s.a": None}) == [1, 2, 4, 5, 6]
    assert find_ids(conn, fields, {"s": 1}) == []
    assert find_ids(conn, fields, {"s": [1, 2]}) == []
    assert find_ids(conn, fields, {"s": "[1, 2]"}) == [5]
    assert find_ids(conn, fields, {"s": {"$regex": "^[{\\[]"}}) == [1, 2, 5, 6]
    assert find_ids(conn, fields, {"s": "[oops"}) == [1]
    assert find_ids(conn, fields, None, "s.a") == [1, 2, 4, 5, 6, 3]  # only the object has a member


def test_plain_column_ranges_keep_to_their_type(tmp_path):
    # The sargable range bounds (-Inf, '', x'') must not let another type in, blobs included.
    conn = connect(tmp_path / "r.db")
    vals = [1, 2.5, -7, "a", "é", "zz", "", None]
    fields = build(conn, ["id", "v"], [{"id": i, "v": v} for i, v in enumerate(vals, 1)])
    conn.execute(f"INSERT INTO {q(TABLE)} VALUES (9, x'00ff')")
    assert find_ids(conn, fields, {"v": {"$gt": 0}}) == [1, 2]
    assert find_ids(conn, fields, {"v": {"$lte": 1}}) == [1, 3]
    assert find_ids(conn, fields, {"v": {"$gt": "b"}}) == [5, 6]
    assert find_ids(conn, fields, {"v": {"$gte": ""}}) == [4, 5, 6, 7]
    assert find_ids(conn, fields, {"v": {"$lt": "b"}}) == [4, 7]
    assert find_ids(conn, fields, {"v": {"$in": [1, "a", 2.5]}}) == [1, 2, 4]
    assert find_ids(conn, fields, {"v": None}) == [8]
    assert find_ids(conn, fields, {"v": {"$ne": None}}) == [1, 2, 3, 4, 5, 6, 7, 9]
    assert find_ids(conn, fields, {"v": {"$regex": "."}}) == [4, 5, 6]


def test_deep_paths_and_nesting(tmp_path):
    conn = connect(tmp_path / "deep.db")
    doc = {"a": {"b": [{"c": {"d": {"e": [{"f": {"g": {"h": "x"}}}]}}}]}}
    fields = build(conn, ["id", "s"], [{"id": 1, "s": doc}, {"id": 2, "s": {"a": 1}}])
    assert find_ids(conn, fields, {"s.a.b.c.d.e.f.g.h": "x"}) == [1]
    assert find_ids(conn, fields, {"s.a.b.0.c.d.e.0.f.g.h": {"$in": ["x"]}}) == [1]
    assert find_ids(conn, fields, {"s.a.b.c.d.e.f.g.h": None}) == [2]
    deepest = "s." + ".".join(["k"] * query.MAX_PATH_MEMBERS)
    assert find_ids(conn, fields, {deepest: {"$exists": False}}) == [1, 2]
    with pytest.raises(InvalidPredicate, match="deep"):
        compile_where({deepest + ".k": 1}, fields)
    # Nesting SQLite can parse is accepted; beyond that, a clear error instead of "parser stack overflow".
    pred = {"s.a.b": 1}
    for i in range(12):
        pred = {["$nor", "$or", "$and"][i % 3]: [pred, {"s": i}]}
    find_ids(conn, fields, pred)
    for i in range(30):  # 84 levels of objects and arrays: within MAX_NESTING, beyond SQLite's parser
        pred = {"$nor": [pred]}
    with pytest.raises(InvalidPredicate, match="for SQLite; flatten it"):
        compile_where(pred, fields)


def test_present_and_kind_functions():
    cols = ["id", "a", "b", "c", "d"]
    content = header(cols) + "\n" + "|".join([typed_cell(1), typed_cell(None), ABSENT, TRUE, typed_cell("[1]", JSON)])
    f = query._sql_present
    assert f(content, "id") == 1 and f(content, "A") == 1 and f(content, "b") == 0 and f(content, "c") == 1
    assert f(content, "zzz") == 0 and f(None, "a") == 0 and f("garbage", "a") == 0 and f("", "a") == 0
    k = query._sql_kind
    assert [k(content, c) for c in ["ID", "a", "b", "c", "d", "zzz"]] == ["i", "n", "-", "T", "j", ""]
    assert k(None, "a") == k("garbage", "a") == k("", "a") == k(header(cols) + "\ni1", "d") == ""


def test_plain_columns_keep_their_sql():
    # Columns that never held a boolean (or a nested value) compile exactly as before booleans were
    # told apart: the benchmarked equality is `col = ?` and a type filter, nothing else.
    fields = Fields(["id", "n", "flag"], set(), bool_columns={"flag"})
    assert compile_where({"n": 5}, fields) == ("""(t."n" = ? AND typeof(t."n") IN ('integer','real'))""", [5])
    assert compile_where({"n": 1}, fields)[0] == compile_where({"n": 5}, fields)[0]
    assert compile_where({"n": True}, fields) == ("0", [])
    assert compile_where({"flag": 5}, fields)[0] == compile_where({"n": 5}, fields)[0].replace('"n"', '"flag"')
    assert "nsl_kind" in compile_where({"flag": 1}, fields)[0]
    assert "nsl_kind" not in compile_where({"flag": {"$gt": 1}}, fields)[0]


# --------------------------------------------------------------------------------------------------
# 4. Plain columns keep their indexes.

@pytest.mark.parametrize("pred,index", [
    ({"name": "bob"}, "ix_name"),
    ({"name": {"$in": ["bob", "carol"]}}, "ix_name"),
    ({"name": {"$in": ["bob", None]}}, "ix_name"),
    ({"name": None}, "ix_name"),
    ({"name": {"$gte": "b", "$lt": "c"}}, "ix_name"),
    ({"n": 5}, "ix_n"),
    ({"n": {"$gt": 4}}, "ix_n"),
    ({"n": {"$lte": 4}}, "ix_n"),
    ({"name": "bob", "sub.x": 1}, "ix_name"),
    ({"$and": [{"n": {"$gt": 1}}, {"tags": "x"}]}, "ix_n"),
    # A column that has held booleans keeps its index too; only 1/0 rows are asked for their kind.
    ({"flag": True}, "ix_flag"),
    ({"flag": 1}, "ix_flag"),
    ({"flag": {"$in": [False, 7]}}, "ix_flag"),
    ({"flag": {"$gte": False}}, "ix_flag"),
    ({"flag": {"$lt": 3}}, "ix_flag"),
])
def test_index_used(hand, pred, index):
    conn, fields = hand
    conn.execute(f"CREATE INDEX ix_name ON {q(TABLE)}(name)")
    conn.execute(f"CREATE INDEX ix_n ON {q(TABLE)}(n)")
    conn.execute(f"CREATE INDEX ix_flag ON {q(TABLE)}(flag)")
    sql, params = find_sql(fields, pred)
    plan = " / ".join(r[-1] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params))
    assert f"USING INDEX {index}" in plan or f"USING COVERING INDEX {index}" in plan, plan
    want = {o["id"] for o in HAND if matches(pred, seen_by_sql(o, o["id"] in HAND_RAW), fields)}
    assert set(find_ids(conn, fields, pred)) == want


# --------------------------------------------------------------------------------------------------
# 5. Booleans and JSON-looking strings: MongoDB's results, through nsl itself.

KINDS = [
    {"id": 1, "a": True},
    {"id": 2, "a": 1},
    {"id": 3, "a": 1.0},
    {"id": 4, "a": "1"},
    {"id": 5, "a": [1, True]},
    {"id": 6, "a": "[1]"},
    {"id": 7, "a": None},
    {"id": 8},
]
EVERY = set(range(1, 9))
# What MongoDB returns for each predicate on KINDS.
MONGO = [
    ({"a": True}, {1, 5}),
    ({"a": False}, set()),
    ({"a": 1}, {2, 3, 5}),
    ({"a": 1.0}, {2, 3, 5}),
    ({"a": "1"}, {4}),
    ({"a": [1, True]}, {5}),
    ({"a": [1]}, set()),
    ({"a": "[1]"}, {6}),
    ({"a": None}, {7, 8}),
    ({"a": {"$eq": True}}, {1, 5}),
    ({"a": {"$ne": 1}}, {1, 4, 6, 7, 8}),
    ({"a": {"$ne": True}}, {2, 3, 4, 6, 7, 8}),
    ({"a": {"$ne": "[1]"}}, EVERY - {6}),
    ({"a": {"$ne": None}}, {1, 2, 3, 4, 5, 6}),
    ({"a": {"$gt": 0}}, {2, 3, 5}),
    ({"a": {"$gte": 1}}, {2, 3, 5}),
    ({"a": {"$lt": 2}}, {2, 3, 5}),
    ({"a": {"$lte": 1}}, {2, 3, 5}),
    ({"a": {"$gt": 1}}, set()),
    ({"a": {"$gt": False}}, {1, 5}),
    ({"a": {"$gte": False}}, {1, 5}),
    ({"a": {"$gte": True}}, {1, 5}),
    ({"a": {"$lt": True}}, set()),
    ({"a": {"$gt": "0"}}, {4, 6}),
    ({"a": {"$lt": "2"}}, {4}),
    ({"a": {"$in": [1]}}, {2, 3, 5}),
    ({"a": {"$in": [True]}}, {1, 5}),
    ({"a": {"$in": [False, 7]}}, set()),
    ({"a": {"$in": ["1", None]}}, {4, 7, 8}),
    ({"a": {"$in": [[1, True], "[1]"]}}, {5, 6}),
    ({"a": {"$nin": [1]}}, {1, 4, 6, 7, 8}),
    ({"a": {"$nin": [True, 1]}}, {4, 6, 7, 8}),
    ({"a": {"$exists": True}}, {1, 2, 3, 4, 5, 6, 7}),
    ({"a": {"$exists": False}}, {8}),
    ({"a": {"$regex": "1"}}, {4, 6}),
    ({"a": {"$regex": "^\\["}}, {6}),
    ({"a": {"$not": {"$gt": 0}}}, {1, 4, 6, 7, 8}),
    ({"a": {"$not": {"$eq": True}}}, {2, 3, 4, 6, 7, 8}),
    ({"$nor": [{"a": 1}]}, {1, 4, 6, 7, 8}),
    ({"$nor": [{"a": True}, {"a": None}]}, {2, 3, 4, 6}),
    ({"$or": [{"a": True}, {"a": "1"}]}, {1, 4, 5}),
    ({"$and": [{"a": 1}, {"a": True}]}, {5}),
    ({"a.0": 1}, {5}),
    ({"a.1": True}, {5}),
    ({"a.0": {"$exists": True}}, {5}),
    ({"a.0": None}, EVERY - {5}),
]


@pytest.fixture(scope="module")
def kinds_db(tmp_path_factory):
    db, _ = nsllib.init(tmp_path_factory.mktemp("kinds") / "kinds.db")
    nsllib.save(db, "t", KINDS, message="every kind")
    yield db
    db.close()


@pytest.mark.parametrize("pred,want", MONGO, ids=[repr(m[0]) for m in MONGO])
def test_mongodb_results(kinds_db, pred, want):
    assert {o["id"] for o in nsllib.find(kinds_db, "t", pred)} == want
    assert {o["id"] for o in KINDS if matches(pred, o)} == want
    tbl = kinds_db.table("t")
    fields = Fields(tbl.columns, tbl.json_columns, bool_columns=tbl.bool_columns)
    assert (fields.json_columns, fields.bool_columns) == ({"a"}, {"a"})
    assert {o["id"] for o in KINDS if matches(pred, o, fields)} == want


def test_mongodb_results_in_a_plain_column(tmp_path):
    # Without the nested values the column compiles to the index-friendly forms.
    db, _ = nsllib.init(tmp_path / "plain.db")
    nsllib.save(db, "t", [o for o in KINDS if o["id"] != 5])
    tbl = db.table("t")
    assert (tbl.json_columns, tbl.bool_columns) == (set(), {"a"})
    for pred, want in MONGO:
        if any(k.startswith("a.") for k in pred):  # paths reach nothing in a column of scalars
            want = EVERY if pred == {"a.0": None} else set()
        assert {o["id"] for o in nsllib.find(db, "t", pred)} == want - {5}, pred


def test_booleans_and_json_text_changed_outside_nsl(tmp_path):
    """A row changed outside nsl is judged as `nsl commit` will record it: a cell keeps the kind its
    version gave it while the value still fits (1/0 for a boolean, array/object text for a nested
    value); a row without a version is judged by its SQL values alone."""
    path = tmp_path / "out.db"
    db, _ = nsllib.init(path)
    nsllib.save(db, "t", [{"id": 1, "a": True, "j": [1]}, {"id": 2, "a": 1, "j": "[1]"},
                          {"id": 3, "a": False, "j": {"x": 1}}, {"id": 5, "a": 7, "j": 7}])
    conn = sqlite3.connect(path)
    conn.execute("UPDATE t SET j = '[2]' WHERE id = 1")   # still JSON
    conn.execute("UPDATE t SET a = 5, j = 'oops' WHERE id = 3")  # a number and a string now
    conn.execute("UPDATE t SET a = 0 WHERE id = 1")       # false, as the version's kind still fits
    conn.execute("INSERT INTO t (id, a, j) VALUES (4, 1, '[1]')")  # no version: 1 and a string
    conn.commit()
    conn.close()
    preds = {
        '{"a": true}': set(), '{"a": false}': {1}, '{"a": 1}': {2, 4}, '{"a": 5}': {3},
        '{"j": 1}': set(), '{"j": 2}': {1}, '{"j": "[1]"}': {2, 4}, '{"j": "oops"}': {3},
        '{"j.x": {"$exists": true}}': set(), '{"a": {"$gte": 0}}': {2, 3, 4, 5},
    }

    def found():
        return {p: {o["id"] for o in nsllib.find(db, "t", json.loads(p))} for p in preds}

    assert found() == preds
    nsllib.commit(db, message="edits made with sqlite3")
    assert found() == preds
    assert nsllib.get(db, "t", 1) == {"id": 1, "a": False, "j": [2]}
    assert nsllib.get(db, "t", 4) == {"id": 4, "a": 1, "j": "[1]"}


def test_bool_columns_are_derived_state(tmp_path):
    path = tmp_path / "b.db"
    db, _ = nsllib.init(path)
    nsllib.save(db, "t", [{"id": 1, "a": 1, "b": "x"}])
    nsllib.save(db, "t", [{"id": 2, "a": 2, "b": True}, {"id": 3, "c": [False]}])

    def recorded(db):
        return {r[0] for r in db.conn.execute("SELECT name FROM nsl_bool_column")}

    assert recorded(db) == {"b"}  # false inside a nested value is told apart by json_type()
    db.conn.execute("DELETE FROM nsl_bool_column")
    nsllib.rebuild(db)
    assert recorded(db) == {"b"}
    assert [o["id"] for o in nsllib.find(db, "t", {"b": True})] == [2]
    # A file made before the table existed gets it filled from the history when opened.
    db.conn.execute("DROP TABLE nsl_bool_column")
    db.conn.execute("UPDATE nsl_meta SET value = '4' WHERE name = 'schema_version'")
    db.close()
    db = nsllib.Database.open(path)
    assert recorded(db) == {"b"}
    assert [o["id"] for o in nsllib.find(db, "t", {"b": 1})] == []
    # A copy made by clone has it too.
    copy = tmp_path / "copy.db"
    nsllib.clone(str(path), copy)
    with nsllib.Database.open(copy) as c:
        assert recorded(c) == {"b"}
    db.close()


# --------------------------------------------------------------------------------------------------
# 6. Predicates nested too deeply are refused before anything recurses through them.

def _nested(n, inner, wrap):
    s = inner
    for _ in range(n):
        s = wrap(s)
    return s


@pytest.mark.parametrize("pred", [
    _nested(250, {"a": 1}, lambda p: {"$and": [p]}),
    {"a": _nested(600, {"$gt": 1}, lambda p: {"$not": p})},
    {"a": _nested(1000, 1, lambda v: [v])},
    {"a": {"$in": [_nested(1000, 1, lambda v: {"x": v})]}},
    _nested(51, {"a": 1}, lambda p: {"$or": [p]}),  # 103 levels of objects and arrays
])
def test_too_deep_is_refused(pred):
    fields = Fields(["a"], {"a"})
    for check in (lambda: compile_where(pred, fields), lambda: matches(pred, {"a": 1}),
                  lambda: matches(pred, {"a": 1}, fields)):
        with pytest.raises(InvalidPredicate, match="too deeply.*flatten it"):
            check()


def test_nesting_up_to_the_limit_is_accepted():
    fields = Fields(["a"], {"a"})
    value = _nested(query.MAX_NESTING - 1, 1, lambda v: [v])  # the predicate object is one more level
    compile_where({"a": value}, fields)
    assert matches({"a": value}, {"a": value})
    assert matches({"a": _nested(query.MAX_NESTING - 2, {"$gt": 1}, lambda p: {"$not": p})}, {"a": 5})
