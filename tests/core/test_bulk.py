"""Bulk saves of JSON lines: the two-process pipeline gives exactly what the plain path gives."""
from __future__ import annotations

import io
import itertools

import orjson
import pytest

import nsl
from nsl.core import bulk, objects, workers
from nsl.errors import InvalidJSON, InvalidObject, ValueOutOfRange


@pytest.fixture(params=["parallel", "single", "parallel, every other block to the writer"])
def mode(request, monkeypatch):
    monkeypatch.setattr(objects, "BATCH", 50)
    if request.param == "single":
        monkeypatch.setenv("NSL_WORKERS", "0")
    else:
        monkeypatch.delenv("NSL_WORKERS", raising=False)
        if not bulk.parallel_ok():
            pytest.skip("this machine cannot fork a worker")
    if request.param.endswith("writer"):
        # As if the writer asked for every other block (it asks when it runs out of work): those
        # blocks reach it as lines, and the worker has to keep counting lines and objects past them.
        turns = itertools.cycle([True, False])
        monkeypatch.setattr(workers.Requests, "take", lambda self: next(turns))
    return request.param


def lines(objs) -> io.BufferedReader:
    return io.BufferedReader(io.BytesIO(b"".join(orjson.dumps(o) + b"\n" for o in objs)))


def test_bulk_equals_plain_save(db, tmp_path, mode):
    objs = [{"id": i, "name": f"n{i}", "score": i / 7, "ok": i % 3 == 0} for i in range(400)]
    objs[123]["extra"] = {"nested": [1, 2]}           # a new column in a worker's batch
    objs[300] = {"id": 300, "name": None}              # a different shape
    objs.append({"id": 5, "name": "again"})            # a key seen in an earlier batch
    res = bulk.save_lines(db, "t", lines(objs), message="bulk", collect_keys=True)
    assert res.count == 401 and len(res.keys) == 401
    other, _ = nsl.init(tmp_path / "plain.db")
    nsl.save(other, "t", objs, message="bulk")
    got = {o["id"]: o for o in nsl.find(db, "t")}
    want = {o["id"]: o for o in nsl.find(other, "t")}
    assert got == want
    assert got[5] == {"id": 5, "name": "again"} and got[123]["extra"] == {"nested": [1, 2]}
    assert nsl.verify(db).ok
    assert len(nsl.log(db)) == 1


@pytest.mark.parametrize("bad,err,where", [
    (b'{"id": 1, "a": \n', InvalidJSON, "line 251"),
    (b'42\n', InvalidObject, "object 251"),
    (b'{"id": 1, "n": 123456789012345678901234567890}\n', ValueOutOfRange, "64 bits"),
])
def test_a_bad_line_anywhere_saves_nothing(db, mode, bad, err, where):
    nsl.save(db, "t", [{"id": -1}])
    head = nsl.head(db)
    good = b"".join(orjson.dumps({"id": i}) + b"\n" for i in range(250))
    with pytest.raises(err, match=where):
        bulk.save_lines(db, "t", io.BufferedReader(io.BytesIO(good + bad + good)))
    assert nsl.head(db) == head
    assert [o["id"] for o in nsl.find(db, "t")] == [-1]
    assert nsl.verify(db).ok


def test_one_json_document_on_stdin(db, mode):
    doc = b'{\n  "id": 1,\n  "a": [1, 2]\n}\n'
    bulk.save_lines(db, "t", io.BufferedReader(io.BytesIO(doc)))
    assert nsl.get(db, "t", 1) == {"id": 1, "a": [1, 2]}
    bulk.save_lines(db, "t", io.BufferedReader(io.BytesIO(b'[{"id": 2}, {"id": 3}]')))
    assert len(list(nsl.find(db, "t"))) == 3


def test_new_attributes_in_any_block_and_mode(db, tmp_path, mode):
    """A new attribute first seen in a block the writer got as lines: the worker does not know the
    column yet, and the blocks it prepared for the old columns are widened by the writer."""
    objs = [{"id": i, "n": i} for i in range(300)]
    objs[60]["late"] = "x"      # block 2 (lines 51-100): the writer's, in the every-other-block mode
    objs[160]["later"] = 1.5    # block 4
    bulk.save_lines(db, "t", lines(objs))
    other, _ = nsl.init(tmp_path / "plain.db")
    nsl.save(other, "t", objs)
    assert {o["id"]: o for o in nsl.find(db, "t")} == {o["id"]: o for o in nsl.find(other, "t")}
    assert [r[:3] for r in db.conn.execute("SELECT key, uuid, digest FROM nsl_version ORDER BY vid")] == \
        [r[:3] for r in other.conn.execute("SELECT key, uuid, digest FROM nsl_version ORDER BY vid")]
    assert nsl.verify(db).ok
