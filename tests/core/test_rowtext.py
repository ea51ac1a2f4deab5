"""Row text and hashes: byte for byte what the sqlite3 CLI prints, checked against recorded vectors
and against the real sqlite3 CLI in a bash pipeline."""
from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nsl
from nsl.core import rowtext
from nsl.core.rowtext import float_text, row_text

VECTORS = json.loads((Path(__file__).parent.parent / "data" / "row_text_v1.json").read_text())
needs_cli = pytest.mark.skipif(shutil.which("sqlite3") is None, reason="the sqlite3 CLI is not installed")


def _decode(v):
    if isinstance(v, dict) and "real" in v:
        return float.fromhex(v["real"])
    if isinstance(v, dict) and "blob" in v:
        return base64.b64decode(v["blob"])
    return v


@pytest.mark.parametrize("vec", VECTORS["rows"], ids=[r["cli_text"][:20] for r in VECTORS["rows"]])
def test_vector_row_text_and_sha1(vec):
    values = [_decode(v) for v in vec["values"]]
    text = row_text(values)
    assert text == vec["cli_text"].encode("utf-8")
    assert hashlib.sha1(text).hexdigest() == vec["sha1"]


@pytest.mark.parametrize("x,expected", [
    (1.0e20, "1.0e+20"), (0.1, "0.1"), (3.0, "3.0"), (-0.0, "0.0"), (1 / 3, "0.333333333333333"),
    (100.0, "100.0"), (1e-7, "1.0e-07"), (float("inf"), "Inf"), (float("-inf"), "-Inf"),
    (1e15, "1.0e+15"), (123456789.123456789, "123456789.123457"), (5e-324, "4.94065645841247e-324"),
])
def test_float_text_is_sqlite_style(x, expected):
    assert float_text(x) == expected


def _cli_rows(db_file: Path, sql: str) -> bytes:
    return subprocess.run(["sqlite3", "-init", "/dev/null", str(db_file), sql], capture_output=True,
                          check=True, timeout=30).stdout


@needs_cli
def test_vectors_against_the_installed_cli(tmp_path):
    """The recorded vectors still hold for the sqlite3 CLI on this machine (everyday values)."""
    import sqlite3

    f = tmp_path / "v.db"
    c = sqlite3.connect(f)
    c.execute("create table t(id INTEGER PRIMARY KEY, name TEXT, n INTEGER, x REAL, b BLOB)")
    for vec in VECTORS["rows"]:
        c.execute("insert into t values (?,?,?,?,?)", [_decode(v) for v in vec["values"]])
    c.commit()
    for vec in VECTORS["rows"]:
        out = _cli_rows(f, f"select * from t where id={vec['values'][0]}")
        assert out[:-1] == vec["cli_text"].encode()


def _pipeline(db_file: Path, table: str, key_col: str, key) -> str:
    sql = f'select * from "{table}" where "{key_col}"={key}'
    out = subprocess.run(["bash", "-c", f"sqlite3 -init /dev/null {db_file} '{sql}' | head -c -1 | sha1sum"],
                         capture_output=True, check=True, timeout=30, text=True).stdout
    return out.split()[0]


# Everyday values have at most 15 significant digits (here at most 14: below 1e10, 4 decimals). A value
# whose 16th digit is an exact tie (974552712050.0625) is the documented exception: the sqlite3 shells
# of different versions round it differently (README, "Floating-point values and the shell pipeline").
everyday_floats = st.floats(min_value=-1e10, max_value=1e10, allow_nan=False).map(lambda x: round(x, 4))
cell = st.one_of(st.none(), st.integers(-2**63, 2**63 - 1), everyday_floats,
                 st.text(st.characters(blacklist_categories=("Cs",)), max_size=12), st.booleans(),
                 st.lists(st.integers(-5, 5), max_size=3))


@needs_cli
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.fixed_dictionaries({}, optional={"a": cell, "b": cell, "c": cell}), min_size=1, max_size=4))
def test_nsl_hash_equals_the_shell_pipeline(tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("h") / "h.db"
    db, _ = nsl.init(path)
    objs = [{"id": i, **r} for i, r in enumerate(rows)]
    nsl.save(db, "t", objs)
    for o in objs:
        assert nsl.row_hash(db, "t", o["id"]) == _pipeline(path, "t", "id", o["id"])
    db.close()


@needs_cli
def test_version_uuid_is_the_row_hash_and_digest_is_cli_computable(db, db_path):
    nsl.save(db, "people", [{"id": 7, "name": "pipe|in", "n": None, "x": 2.5, "big": 2**63 - 1}])
    uuid, digest = db.conn.execute("SELECT uuid, digest FROM nsl_version").fetchone()
    assert uuid == _pipeline(db_path, "people", "id", 7)
    cols = db.table("people").columns
    cells = "||'|'||".join(
        f"CASE typeof(\"{c}\") WHEN 'null' THEN 'n' WHEN 'integer' THEN 'i'||\"{c}\" "
        f"WHEN 'real' THEN 'r'||hex(ieee754_to_blob(\"{c}\")) WHEN 'text' THEN 't'||hex(\"{c}\") "
        f"ELSE 'b'||hex(\"{c}\") END" for c in cols)
    header = "||'|'||".join(f"hex('{c}')" for c in cols)
    sql = f"select {header}||char(10)||{cells} from people where id=7"
    text = _cli_rows(db_path, sql)[:-1]
    assert hashlib.sha1(text).hexdigest() == digest


def test_typed_encoding_tells_apart_rows_with_the_same_text():
    a = [None, "", 1]
    b = ["", "", "1"]
    assert row_text(a) == row_text(b)
    enc = lambda vals: "|".join(rowtext.typed_cell(v) for v in vals)  # noqa: E731
    assert enc(a) != enc(b)
    assert row_text(["x|y", "z"]) == row_text(["x", "y|z"])
    assert enc(["x|y", "z"]) != enc(["x", "y|z"])


def test_decode_content_round_trips_every_tag():
    cols = ["a", "b", "c", "d", "e", "f", "g", "h", "i"]
    vals = [None, 5, 2.5, "hé", b"\x00\x01", 1, 0, '{"x":1}', None]
    kinds = [None, None, None, None, None, "T", "F", "j", "-"]
    content = rowtext.header(cols) + "\n" + "|".join(rowtext.typed_cell(v, k) for v, k in zip(vals, kinds))
    assert rowtext.decode_content(content) == (cols, vals, kinds)


# ---- exact_object: decode, compare with the row, build the object, in one pass -------------------

def _composed(columns, values, content):
    """What exact_object must equal: decode_content, compare (same types), to_object."""
    from nsl.core.values import to_object

    ccols, cvals, ckinds = rowtext.decode_content(content)
    n = len(ccols)
    if ccols != columns[:n] or len(values) < n:
        return None
    if any(type(a) is not type(b) or a != b for a, b in zip(values, cvals)):
        return None
    if any(v is not None for v in values[n:]):
        return None
    return to_object(ccols, cvals, ckinds)


ABSENT_MARK = object()  # an attribute the object does not have
_json_value = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**63 - 1),
                        st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=5),
                        st.lists(st.integers(-3, 3), max_size=2), st.dictionaries(st.text(max_size=2), st.booleans(), max_size=2),
                        st.binary(max_size=3), st.just(ABSENT_MARK))


@settings(max_examples=300, deadline=None)
@given(cells=st.lists(_json_value, max_size=5), extra=st.lists(st.one_of(st.none(), st.integers(0, 1)), max_size=2),
       tweak=st.integers(-1, 6), data=st.data())
def test_exact_object_is_decode_compare_and_build(cells, extra, tweak, data):
    from nsl.core.values import exact_object, to_cell

    columns = [f"c{i}" for i in range(len(cells))]
    values, kinds = [], []
    for v in cells:
        if v is ABSENT_MARK:
            values.append(None)
            kinds.append(rowtext.ABSENT)
        elif isinstance(v, bytes):
            values.append(v)
            kinds.append(None)
        else:
            sv, k = to_cell(v)
            values.append(sv)
            kinds.append(k)
    content = rowtext.header(columns) + "\n" + "|".join(rowtext.typed_cell(v, k) for v, k in zip(values, kinds))
    row = values + extra
    cols = columns + [f"x{i}" for i in range(len(extra))]
    if 0 <= tweak < len(row):  # a row changed outside nsl: another value, or another type of it
        row[tweak] = data.draw(st.one_of(st.none(), st.integers(-2, 2), st.floats(-2, 2), st.text(max_size=2),
                                         st.booleans().map(int)))
    if tweak == 6 and cols:
        cols[0] = "renamed"
    assert exact_object(cols, row, content) == _composed(cols, row, content)


_cells = st.one_of(st.none(), st.integers(-2**63, 2**63 - 1), st.floats(allow_nan=False), st.text(max_size=5),
                   st.binary(max_size=3))


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 4).flatmap(lambda n: st.lists(st.lists(_cells, min_size=n, max_size=n), min_size=1, max_size=8)))
def test_many_bodies_decode_as_each_cell_does(rows):
    # checkout, restore and clone decode a column at a time; each value is what the one-cell decoder gives
    bodies = ["|".join(rowtext.typed_cell(v, None) for v in r) for r in rows]
    got = rowtext.decode_bodies(bodies, len(rows[0]))
    assert repr(got) == repr([tuple(rowtext.decode_cell(c)[0] for c in b.split("|")) for b in bodies])
    with pytest.raises(ValueError):
        rowtext.decode_bodies(bodies + [bodies[0] + "|n"], len(rows[0]))
