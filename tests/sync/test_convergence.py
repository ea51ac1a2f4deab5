"""Property: replicas that change independently and sync in any pairs and order end up identical.

Three databases of one project get random saves, updates and deletes of a few keys, with syncs between
random pairs in between. Synced until quiet, every replica has the same head, the same user tables
row for row (whatever the conflicts), and every version any of them ever made.
"""
from __future__ import annotations

import itertools
import shutil

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import nsl
from nsl.sync import client
from nsl.sync.clone import clone

from synctools import user_rows, versions

KEYS = st.sampled_from([1, 2, 3, "k4", "k5"])
VALUE = st.one_of(st.integers(-2 ** 63, 2 ** 63 - 1), st.text(max_size=5), st.booleans(), st.none(),
                  st.floats(allow_nan=False, allow_infinity=False), st.lists(st.integers(0, 3), max_size=2))
OP = st.one_of(
    st.tuples(st.just("save"), st.integers(0, 2), KEYS, st.dictionaries(st.sampled_from(["a", "b", "c"]), VALUE,
                                                                      max_size=3)),
    st.tuples(st.just("delete"), st.integers(0, 2), KEYS),
    st.tuples(st.just("sync"), st.integers(0, 2), st.integers(0, 2), st.sampled_from(["sync", "pull", "push"])),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
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


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(order=st.permutations([(0, 1), (1, 2), (0, 2), (1, 0), (2, 1), (2, 0)]),
       deleter=st.sampled_from([None, 0, 1, 2]))
def test_concurrent_updates_have_one_winner_whatever_the_sync_order(tmp_path_factory, order, deleter):
    """Each replica changes object 1 (one may delete it instead); whatever order they sync in, all
    show the same version (the newest live one), list the same losers, and a resolution anywhere
    ends the conflict everywhere."""
    d = tmp_path_factory.mktemp("det")
    origin = d / "r0.db"
    db, _ = nsl.init(origin)
    nsl.save(db, "t", [{"id": 1, "v": "base"}])
    db.close()
    paths = [origin] + [d / f"r{i}.db" for i in (1, 2)]
    for p in paths[1:]:
        clone(str(origin), p)
    dbs = [nsl.open(p) for p in paths]
    try:
        made = {}
        for i, x in enumerate(dbs):
            if i == deleter:
                nsl.delete(x, "t", [1])
            else:
                made[i] = nsl.save(x, "t", [{"id": 1, "v": f"from {i}"}]).commit
        for a, b in order + order:
            client.run(dbs[a], str(paths[b]))
        shown = [nsl.get(x, "t", 1) for x in dbs]
        assert shown[0] == shown[1] == shown[2]
        # lww: the live version of the newest commit (by date, then uuid) wins.
        dated = {i: (nsl.show(dbs[0], c)["date"], c) for i, c in made.items()}
        assert shown[0]["v"] == f"from {max(dated, key=dated.get)}"
        from nsl.core.conflicts import conflict_list, resolve

        lists = [conflict_list(x) for x in dbs]
        losers = [sorted(str(t["version"]) for t in c[0]["theirs"]) for c in lists]
        assert losers[0] == losers[1] == losers[2] and len(losers[0]) == 2
        resolve(dbs[2], "t", 1, obj={"id": 1, "v": "merged"})
        for a, b in order:
            client.run(dbs[a], str(paths[b]))
        for x in dbs:
            assert conflict_list(x) == [] and nsl.get(x, "t", 1) == {"id": 1, "v": "merged"}
            assert nsl.verify(x).ok
        assert len({nsl.head(x) for x in dbs}) == 1
    finally:
        for x in dbs:
            x.close()
        shutil.rmtree(d, ignore_errors=True)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(ops=st.lists(st.tuples(st.sampled_from(["save", "sync", "pull", "push"]), st.integers(0, 2),
                              st.integers(0, 2)), min_size=1, max_size=10))
@example(ops=[("save", 1, 0), ("save", 1, 0), ("push", 1, 0), ("save", 2, 0), ("sync", 2, 1), ("save", 0, 0),
              ("pull", 2, 0), ("save", 2, 0), ("save", 2, 0), ("push", 2, 1)])
def test_replicas_that_cluster_converge(tmp_path_factory, ops):
    """Saves of 60 objects: replicas pass 100 unclustered artifacts and make clusters, a pushing client
    as well as a remote answering a pull, and what one cluster lists travels to third peers alike."""
    d = tmp_path_factory.mktemp("clu")
    origin = d / "r0.db"
    db, _ = nsl.init(origin)
    nsl.save(db, "t", [{"id": k, "v": 0} for k in range(5)])
    db.close()
    paths = [origin] + [d / f"r{i}.db" for i in (1, 2)]
    for p in paths[1:]:
        clone(str(origin), p)
    dbs = [nsl.open(p) for p in paths]
    try:
        made = set()
        for n, (what, r1, r2) in enumerate(ops):
            if what == "save":
                nsl.save(dbs[r1], "t", [{"id": f"{r1}-{n}-{i}", "v": i} for i in range(60)]
                         + [{"id": k, "v": f"{r1}-{n}"} for k in (n % 5, (n + 1) % 5)])
            elif r1 != r2:
                client.run(dbs[r1], str(paths[r2]), pull=what != "push", push=what != "pull")
        for p in paths:
            made |= versions(p)
        for r1, r2 in itertools.islice(itertools.cycle([(0, 1), (1, 2), (2, 0)]), 6):
            client.run(dbs[r1], str(paths[r2]))
        assert len({nsl.head(x) for x in dbs}) == 1
        rows = [user_rows(p) for p in paths]
        assert rows[0] == rows[1] == rows[2]
        for p, x in zip(paths, dbs):
            assert versions(p) == made
            assert x.conn.execute("SELECT count(*) FROM nsl_phantom").fetchone()[0] == 0
            assert x.conn.execute("SELECT count(*) FROM nsl_staged").fetchone()[0] == 0
            rep = nsl.verify(x)
            assert rep.ok, rep.problems[:5]
    finally:
        for x in dbs:
            x.close()
        shutil.rmtree(d, ignore_errors=True)
