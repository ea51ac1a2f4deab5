"""Property: replicas that change independently and sync in any pairs and order end up identical.

Three databases of one project get random saves, updates and deletes of a few keys, with syncs between
random pairs in between. Synced until quiet, every replica has the same head, the same user tables
row for row (whatever the conflicts), and every version any of them ever made.
"""
from __future__ import annotations

import itertools
import shutil

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nsl
from nsl.sync import client
from nsl.sync.clone import clone

from conftest import user_rows, versions

KEYS = st.sampled_from([1, 2, 3, "k4", "k5"])
VALUE = st.one_of(st.integers(-2 ** 63, 2 ** 63 - 1), st.text(max_size=5), st.booleans(), st.none(),
                  st.floats(allow_nan=False, allow_infinity=False), st.lists(st.integers(0, 3), max_size=2))
OP = st.one_of(
    st.tuples(st.just("save"), st.integers(0, 2), KEYS, st.dictionaries(st.sampled_from(["a", "b", "c"]), VALUE,
                                                                      max_size=3)),
    st.tuples(st.just("delete"), st.integers(0, 2), KEYS),
    st.tuples(st.just("sync"), st.integers(0, 2), st.integers(0, 2), st.sampled_from(["sync", "pull", "push"])),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(ops=st.lists(OP, min_size=1, max_size=25), policy=st.sampled_from(["lww", "merge-fields"]))
def test_replicas_converge(tmp_path_factory, ops, policy):
    d = tmp_path_factory.mktemp("conv")
    origin = d / "r0.db"
    db, _ = nsl.init(origin)
    nsl.save(db, "t", [{"id": 1, "a": 0}])
    db.close()
    paths = [origin]
    for i in (1, 2):
        clone(str(origin), d / f"r{i}.db")
        paths.append(d / f"r{i}.db")
    dbs = [nsl.open(p) for p in paths]
    try:
        for x in dbs:
            nsl.config.set_(x, "table.t.conflicts", policy)
        made = set()
        for op in ops:
            if op[0] == "save":
                _, r, key, attrs = op
                nsl.save(dbs[r], "t", [{"id": key, **attrs}])
            elif op[0] == "delete":
                _, r, key = op
                if any(o["id"] == key for o in nsl.find(dbs[r], "t", {"id": key})):
                    nsl.delete(dbs[r], "t", [key])
            else:
                _, r1, r2, how = op
                if r1 != r2:
                    client.run(dbs[r1], str(paths[r2]), pull=how != "push", push=how != "pull")
            for p in paths:
                made |= versions(p)
        # Sync until quiet: around the ring twice is enough for three replicas.
        for r1, r2 in itertools.islice(itertools.cycle([(0, 1), (1, 2), (2, 0)]), 6):
            client.run(dbs[r1], str(paths[r2]))
        heads = {nsl.head(x) for x in dbs}
        assert len(heads) == 1, heads
        rows = [user_rows(p) for p in paths]
        assert rows[0] == rows[1] == rows[2]
        for p in paths:
            assert versions(p) == made
        for x in dbs:
            rep = nsl.verify(x)
            assert rep.ok, rep.problems[:5]
    finally:
        for x in dbs:
            x.close()
        shutil.rmtree(d, ignore_errors=True)
