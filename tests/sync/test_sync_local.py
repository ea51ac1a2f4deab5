"""push, pull and sync between databases on this machine (the local-path transport: the same protocol
and server code as over HTTP, in this process)."""
from __future__ import annotations

import time

import pytest

import nsl
from nsl.errors import NslError, ProjectMismatch, RemoteError, UncommittedChanges
from nsl.sync.clone import clone

from synctools import Replica, user_rows, versions

PEOPLE = [{"id": 1, "name": "Ada", "born": 1815}, {"id": 2, "name": "Alan", "born": 1912}]


def test_clone_copies_everything_with_its_own_db_code(project, tmp_path):
    a, = project(1, seed=PEOPLE)
    a.save("people", {"id": 3, "name": "Grace", "tags": ["COBOL"], "alive": False, "h": 1.5})
    b_path = tmp_path / "b.db"
    s = clone(str(a.path), b_path)
    b = Replica(b_path)
    try:
        assert b.head() == a.head()
        assert b.rows() == a.rows()
        assert versions(b.path) == versions(a.path)
        assert b.get("people", 3) == {"id": 3, "name": "Grace", "tags": ["COBOL"], "alive": False, "h": 1.5}
        assert b.db.db_code != a.db.db_code
        assert b.db.meta("project_code") == a.db.meta("project_code")
        assert s.commits_applied == 2
        b.verify()
        assert nsl.config.remotes(b.db)["origin"]["url"] == str(a.path.resolve())
    finally:
        b.close()


def test_clone_refuses_an_existing_file(project, tmp_path):
    a, = project(1, seed=PEOPLE)
    target = tmp_path / "there.db"
    target.write_bytes(b"keep me")
    with pytest.raises(NslError, match="exists already"):
        clone(str(a.path), target)
    assert target.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.glob(".there.db*")) == []


def test_changes_on_both_sides_meet_in_one_sync(project):
    a, b = project(2, seed=PEOPLE)
    a.save("people", {"id": 3, "name": "Grace", "born": 1906})
    b.save("people", {"id": 4, "name": "Edsger", "born": 1930})
    b.delete("people", [2])
    s = b.sync(a)
    assert a.head() == b.head() == s.head_after
    assert a.rows() == b.rows()
    keys = sorted(o["id"] for o in nsl.find(a.db, "people"))
    assert keys == [1, 3, 4]
    assert s.commits_applied == 1 and s.artifacts_sent >= 3
    a.verify()
    b.verify()
    # Both leaves are parents of the next commit, on either side.
    a.save("people", {"id": 5, "name": "Barbara"})
    assert len(nsl.show(a.db, "HEAD")["parents"]) == 2


def test_a_sync_with_nothing_new_is_one_small_round_trip(project):
    a, b = project(2, seed=[{"id": i, "v": i} for i in range(3000)])
    b.sync(a)
    s = b.sync(a)
    assert s.rounds == 1
    assert s.bytes_sent < 1024 and s.bytes_received < 1024
    assert s.artifacts_sent == s.artifacts_received == 0


def test_pulling_a_few_new_objects_costs_what_is_new(project):
    a, b = project(2, seed=[{"id": i, "v": i} for i in range(5000)])
    b.pull(a)
    a.save("people", [{"id": f"n{i}", "v": i} for i in range(10)])
    s = b.pull(a)
    assert s.rounds <= 2
    assert s.bytes_sent + s.bytes_received < 64 * 1024
    assert b.head() == a.head()


def test_concurrent_updates_pick_the_same_winner_everywhere(project):
    a, b, c = project(3, seed=PEOPLE)
    a.save("people", {"id": 1, "name": "Ada Lovelace", "born": 1815}, message="a's edit")
    time.sleep(0.005)
    b.save("people", {"id": 1, "name": "Ada", "born": 1816}, message="b's edit (newer)")
    # c hears of the two edits in one order, a and b in the other.
    c.pull(a)
    c.pull(b)
    b.sync(a)
    for r in (a, b, c):
        assert r.get("people", 1) == {"id": 1, "name": "Ada", "born": 1816}
        (conf,) = r.conflicts()
        assert conf["ours"]["object"]["born"] == 1816
        assert [t["object"]["name"] for t in conf["theirs"]] == ["Ada Lovelace"]
        assert conf["base"]["object"] == {"id": 1, "name": "Ada", "born": 1815}
        assert conf["theirs"][0]["changed"] == {"name": ["Ada", "Ada Lovelace"]}
        r.verify()
    # A resolution made anywhere ends the conflict everywhere.
    from nsl.core.conflicts import resolve

    loser = c.conflicts()[0]["theirs"][0]["version"]
    resolve(c.db, "people", 1, take=loser[:8], message="keep the full name")
    c.sync(a)
    c.sync(b)
    b.sync(a)
    for r in (a, b, c):
        assert r.conflicts() == []
        assert r.get("people", 1) == {"id": 1, "name": "Ada Lovelace", "born": 1815}
        r.verify()
    assert a.head() == b.head() == c.head()


def test_a_live_version_wins_over_a_deletion(project):
    a, b = project(2, seed=PEOPLE)
    b.delete("people", [2])
    time.sleep(0.005)
    a.save("people", {"id": 2, "name": "Alan", "born": 1912, "note": "kept"})
    b.sync(a)
    for r in (a, b):
        assert r.get("people", 2)["note"] == "kept"
        (conf,) = r.conflicts()
        assert conf["theirs"][0]["op"] == "deleted"
        r.verify()


def test_merge_fields_merges_disjoint_changes_and_falls_back_to_lww(project):
    a, b = project(2, seed=PEOPLE)
    for r in (a, b):
        nsl.config.set_(r.db, "table.people.conflicts", "merge-fields")
    a.save("people", {"id": 1, "name": "Ada Lovelace", "born": 1815})
    time.sleep(0.005)   # b's commit is the newer one (commit dates have milliseconds)
    b.save("people", {"id": 1, "name": "Ada", "born": 1816})
    a.save("people", {"id": 2, "name": "Alan T", "born": 1912})
    time.sleep(0.005)
    b.save("people", {"id": 2, "name": "Alan M T", "born": 1912})
    b.sync(a)
    for r in (a, b):
        assert r.get("people", 1) == {"id": 1, "name": "Ada Lovelace", "born": 1816}   # merged
        assert r.get("people", 2)["name"] == "Alan M T"                                 # same field: lww
        states = {(c["key"], c["state"]) for c in r.conflicts()}
        assert states == {(1, "merged"), (2, "conflict")}
        r.verify()
    assert a.rows() == b.rows()
    # Back to lww: the newest leaf shows again.
    nsl.config.set_(a.db, "table.people.conflicts", "lww")
    assert a.get("people", 1) == {"id": 1, "name": "Ada", "born": 1816}
    a.verify()


def test_a_new_column_on_one_side_arrives_with_exact_types(project):
    a, b = project(2, seed=PEOPLE)
    odd = {"id": 9, "name": "Types", "big": 2 ** 63 - 1, "neg0": -0.0, "f": 0.1, "t": True, "n": None,
           "nested": {"a": [1, {"b": None}]}, "s": "é|x"}
    a.save("people", odd)
    b.pull(a)
    got = b.get("people", 9)
    assert got == odd and str(got["neg0"]) == "-0.0" and got["t"] is True
    assert "nested" in b.db.table("people").columns
    assert list(nsl.find(b.db, "people", {"nested.a": 1})) == [odd]   # nested JSON is still queryable
    b.verify()


def test_columns_added_in_different_orders_on_two_sides(project):
    a, b = project(2, seed=PEOPLE)
    a.save("people", {"id": 10, "x": 1, "y": 2})
    b.save("people", {"id": 11, "y": 3, "x": 4})
    b.sync(a)
    assert a.rows() == b.rows()
    assert a.get("people", 11) == b.get("people", 11) == {"id": 11, "y": 3, "x": 4}
    a.verify()
    b.verify()


def test_pull_refuses_uncommitted_changes_and_changes_nothing(project):
    a, b = project(2, seed=PEOPLE)
    a.save("people", {"id": 3, "name": "Grace"})
    nsl.sql(b.db, "UPDATE people SET born = 1 WHERE id = 1", write=True)
    before = (b.head(), user_rows(b.path))
    with pytest.raises(UncommittedChanges):
        b.pull(a)
    assert (b.head(), user_rows(b.path)) == before
    # Pushing is fine: it sends committed history only.
    b.push(a)


def test_databases_of_two_projects_do_not_sync(tmp_path):
    one, _ = nsl.init(tmp_path / "one.db")
    two, _ = nsl.init(tmp_path / "two.db")
    nsl.save(one, "t", [{"id": 1}])
    nsl.save(two, "t", [{"id": 2}])
    from nsl.sync import client

    with pytest.raises((ProjectMismatch, RemoteError), match="project"):
        client.run(one, str(tmp_path / "two.db"))
    assert [o["id"] for o in nsl.find(two, "t")] == [2]
    one.close()
    two.close()


def test_checked_out_databases_do_not_pull(project):
    a, b = project(2, seed=PEOPLE)
    b.save("people", {"id": 3})
    nsl.checkout(b.db, "HEAD~1")
    a.save("people", {"id": 4})
    with pytest.raises(NslError, match="checked out"):
        b.pull(a)
    nsl.checkout(b.db, "HEAD")
    b.pull(a)
    b.verify()


def test_time_travel_and_restore_after_a_fork(project):
    a, b = project(2, seed=PEOPLE)
    a.save("people", {"id": 1, "name": "A", "born": 1})
    time.sleep(0.005)
    b.save("people", {"id": 1, "name": "B", "born": 2})
    b.save("people", {"id": 7, "name": "new"})
    b.pull(a)
    assert b.get("people", 1)["name"] == "B"
    first = nsl.log(b.db)[-1]["commit"]
    nsl.checkout(b.db, first)
    assert sorted(o["id"] for o in nsl.find(b.db, "people")) == [1, 2]
    b.verify()
    nsl.checkout(b.db, "HEAD")
    assert b.get("people", 1)["name"] == "B"
    b.verify()
    nsl.restore(b.db, source=first)
    nsl.commit(b.db, message="back to the seed")
    assert b.get("people", 1)["name"] == "Ada" and b.conflicts() == []
    b.verify()
    b.sync(a)
    assert a.rows() == b.rows()
    a.verify()


def test_rebuild_derives_the_same_conflicts(project):
    a, b = project(2, seed=PEOPLE)
    a.save("people", {"id": 1, "name": "A"})
    b.save("people", {"id": 1, "name": "B"})
    b.sync(a)
    before = b.conflicts()
    nsl.rebuild(b.db)
    assert b.conflicts() == before
    b.verify()
    # A sync after a rebuild still knows what the other side has.
    b.save("people", {"id": 8})
    b.sync(a)
    assert a.head() == b.head()


def test_a_database_does_not_sync_with_itself(project):
    a, = project(1, seed=PEOPLE)
    with pytest.raises(NslError, match="itself"):
        a.sync(a)
    a.verify()


def test_status_tells_of_leaves_and_conflicts(project):
    a, b = project(2, seed=PEOPLE)
    a.save("people", {"id": 1, "name": "A"})
    b.save("people", {"id": 1, "name": "B"})
    b.pull(a)
    from nsl.cli.main import main

    import io
    import contextlib

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            main(["--db", str(b.path), "status"])
        except SystemExit as e:
            assert e.code == 0
    text = out.getvalue()
    assert "2 leaves" in text and "1 object in conflict" in text
    b.save("people", {"id": 9})     # the next commit merges the leaves
    assert len(nsl.show(b.db, "HEAD")["parents"]) == 2


@pytest.mark.parametrize("how", ["save", "bulk lines"])
def test_a_bulk_save_of_an_object_in_conflict_names_every_live_leaf(project, monkeypatch, how):
    """A conflicted object saved among new keys (the optimistic bulk path, which falls back to looking
    keys up) gets a U line whose parents are all its live leaves, in one or two processes alike."""
    import io

    import orjson

    from nsl.core import bulk, objects

    a, b = project(2, seed=PEOPLE)
    a.save("people", {"id": 2, "name": "Alan", "born": 1912, "note": "a"})
    time.sleep(0.005)
    b.save("people", {"id": 2, "name": "Alan", "born": 1912, "note": "b"})
    b.sync(a)
    (conf,) = b.conflicts()
    leaves = sorted(r[0] for r in b.db.conn.execute(
        "SELECT v.uuid FROM nsl_conflict k JOIN nsl_version v ON v.vid = k.vid WHERE k.key = 2"))
    assert len(leaves) == 2
    new = [{"id": i, "name": f"n{i}"} for i in range(10, 70)] + [{"id": 2, "name": "Alan T."}]
    new += [{"id": i, "name": f"n{i}"} for i in range(70, 130)]
    if how == "bulk lines":
        monkeypatch.setattr(objects, "BATCH", 20)
        bulk.save_lines(b.db, "people", io.BufferedReader(io.BytesIO(b"".join(orjson.dumps(o) + b"\n" for o in new))))
    else:
        b.save("people", new)
    op, parents = b.db.conn.execute("SELECT op, parents FROM nsl_version WHERE tbl='people' AND key=2 "
                                    "ORDER BY vid DESC LIMIT 1").fetchone()
    assert (op, parents) == ("U", ",".join(leaves))
    assert b.conflicts() == [] and b.get("people", 2) == {"id": 2, "name": "Alan T."}
    b.verify()
    a.sync(b)
    assert a.get("people", 2) == b.get("people", 2) and a.conflicts() == []
    a.verify()


class Recorded:
    """The local transport, noting what each request held."""

    def __new__(cls, path):
        import orjson

        from nsl.sync.transport import LocalTransport

        class _Recorded(LocalTransport):
            requests: list

            def exchange(self, message):
                self.requests.append({"bytes": len(orjson.dumps(message)), "gimme": len(message["gimme"]),
                                      "igot": len(message["igot"]),
                                      "largest file": max((len(f["content"]) for f in message["files"]), default=0),
                                      "files": len(message["files"])})
                return super().exchange(message)

        tr = _Recorded(str(path))
        tr.requests = []
        return tr


def test_requests_stay_within_about_1_mb(tmp_path):
    """Asking for 30,000 missing artifacts takes rounds of growing size, each request within about
    1 MB of names (SHA-256 names are the longest); pushing sends about 1 MB per request too, and a
    commit larger than that alone."""
    from nsl.sync import protocol

    db, _ = nsl.init(tmp_path / "a.db", hash_algo="sha256")
    nsl.save(db, "people", PEOPLE)
    db.close()
    clone(str(tmp_path / "a.db"), tmp_path / "b.db")
    a, b = Replica(tmp_path / "a.db"), Replica(tmp_path / "b.db")
    try:
        for c in range(200):    # small commits: a reply never has to leave some of what was asked for
            a.save("people", [{"id": f"{c}-{i}", "n": i} for i in range(150)])
        tr = Recorded(a.path)
        s = b.pull(a, transport=tr)
        assert s.missing == 0 and b.head() == a.head() and s.artifacts_received > 30000
        most = protocol.REQUEST_BYTES // 67      # names of 64 hex digits, quoted, with a comma
        assert max(r["gimme"] for r in tr.requests) == most, tr.requests
        assert all(r["bytes"] <= 1.05 * protocol.REQUEST_BYTES for r in tr.requests), tr.requests

        b.save("people", [{"id": f"b{i}", "n": i} for i in range(9000)])    # a commit text of 1.2 MB
        tr = Recorded(a.path)
        s = b.push(a, transport=tr)
        assert b.head() == a.head() and s.artifacts_sent > 9000
        big = [r for r in tr.requests if r["bytes"] > 1.05 * protocol.REQUEST_BYTES]
        assert len(big) == 1 and big[0]["files"] == 1 and big[0]["largest file"] > protocol.REQUEST_BYTES, tr.requests
        assert len(tr.requests) <= 4, tr.requests
        assert a.rows() == b.rows()
        a.verify()
        b.verify()
    finally:
        a.close()
        b.close()
