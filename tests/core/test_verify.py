"""verify catches tampering with the history and the user tables; rebuild regenerates derived state."""
from __future__ import annotations

import sqlite3

import pytest

import nsl


def raw(db_path, sql, params=()):
    """Tampering done behind nsl's back, the way an attacker with the sqlite3 CLI would."""
    c = sqlite3.connect(db_path)
    c.execute(sql, params)
    c.commit()
    c.close()


@pytest.fixture
def filled(db, db_path):
    nsl.save(db, "t", [{"id": 1, "a": None, "b": "x", "c": 1}, {"id": 2, "a": "p|q", "b": "r", "c": 2.5}])
    nsl.save(db, "t", [{"id": 1, "a": None, "b": "y", "c": 1}])
    nsl.save(db, "u", [{"id": "k", "v": [1, 2]}])
    assert nsl.verify(db).ok
    return db, db_path


def problems(db):
    rep = nsl.verify(db)
    assert not rep.ok
    return "\n".join(rep.problems)


def test_clean_database_verifies(filled):
    db, _ = filled
    rep = nsl.verify(db)
    assert rep.ok and rep.commits == 3 and rep.versions == 4 and rep.rows == 3


def test_null_changed_to_empty_text_in_history_is_caught(filled):
    """Same row text (NULL and '' both print empty), different typed values."""
    db, path = filled
    vid, content = db.conn.execute(
        "SELECT vid, content FROM nsl_version WHERE key=1 AND op='I'").fetchone()
    cells = content.split("\n")[1].split("|")
    assert cells[1] == "n"
    cells[1] = "t"
    raw(path, "UPDATE nsl_version SET content=? WHERE vid=?", (content.split("\n")[0] + "\n" + "|".join(cells), vid))
    assert "typed values do not match the digest" in problems(db)


def test_pipe_moved_between_text_columns_is_caught(filled):
    db, path = filled
    vid, content = db.conn.execute("SELECT vid, content FROM nsl_version WHERE key=2").fetchone()
    head, body = content.split("\n")
    cells = body.split("|")
    cells[1] = "t" + "p".encode().hex().upper()          # a: 'p'
    cells[2] = "t" + "q|r".encode().hex().upper()        # b: 'q|r'   (row text unchanged: 2|p|q|r|2.5)
    raw(path, "UPDATE nsl_version SET content=? WHERE vid=?", (head + "\n" + "|".join(cells), vid))
    out = problems(db)
    assert "typed values do not match" in out and "row text does not hash" not in out


def test_rewritten_digest_breaks_the_commit_hash(filled):
    db, path = filled
    vid, content = db.conn.execute("SELECT vid, content FROM nsl_version WHERE key=2").fetchone()
    assert "r4004000000000000" in content  # c = 2.5
    forged = content.replace("r4004000000000000", "r4008000000000000")  # c = 3.0
    import hashlib
    raw(path, "UPDATE nsl_version SET content=?, digest=? WHERE vid=?",
        (forged, hashlib.sha1(forged.encode()).hexdigest(), vid))
    assert "hashes to" in problems(db)


def test_user_table_edit_without_triggers_is_caught(filled):
    db, path = filled
    c = sqlite3.connect(path)
    c.execute("DELETE FROM nsl_pending")
    for (name,) in c.execute("SELECT name FROM sqlite_master WHERE type='trigger'").fetchall():
        c.execute(f'DROP TRIGGER "{name}"')
    c.execute("UPDATE t SET b='' WHERE id=1")
    c.execute("UPDATE t SET a='' WHERE id=1")  # NULL -> '' : same row text
    c.commit()
    c.close()
    out = problems(db)
    assert "t/1: column 'a'" in out or "t/1: column 'b'" in out
    assert "trigger" in out


def test_deleted_commit_is_caught(filled):
    db, path = filled
    raw(path, "DELETE FROM nsl_commit WHERE cid=(SELECT min(cid) FROM nsl_commit)")
    assert "not an earlier commit" in problems(db)


def test_uncommitted_changes_are_reported_not_failed(filled):
    db, path = filled
    raw(path, "UPDATE t SET b='z' WHERE id=2")
    rep = nsl.verify(db)
    assert rep.ok and rep.uncommitted == 1


def test_rebuild_regenerates_derived_tables(filled):
    db, path = filled
    head = nsl.head(db)
    links = set(db.conn.execute("SELECT parent, child FROM nsl_plink"))
    raw(path, "DELETE FROM nsl_plink")
    raw(path, "DELETE FROM nsl_leaf")
    raw(path, "UPDATE nsl_commit SET vid_hi = NULL")
    out = problems(db)
    assert "run `nsl rebuild`" in out
    res = nsl.rebuild(db)
    assert res["head"] == head and res["objects"] == 3
    assert set(db.conn.execute("SELECT parent, child FROM nsl_plink")) == links
    assert nsl.verify(db).ok


def test_a_large_database_is_verified_in_two_processes_with_the_same_findings(db, db_path):
    # From verify.PARALLEL_VERSIONS versions on, a forked helper compares the user tables while the
    # versions are hashed: what it finds must be reported exactly as one process would.
    from nsl.core import verify as verifymod

    n = verifymod.PARALLEL_VERSIONS
    nsl.save(db, "t", [{"id": i, "v": f"x{i}"} for i in range(n)])
    rep = nsl.verify(db)
    assert rep.ok and rep.versions == n and rep.rows == n
    raw(db_path, "UPDATE t SET v = 'y' WHERE id = 7")         # an outside edit: uncommitted, not a problem
    c = sqlite3.connect(db_path)
    c.execute("INSERT INTO nsl_busy VALUES (1)")              # bypass the triggers, as an attacker could
    c.execute("UPDATE t SET v = 'tampered' WHERE id = 9")
    c.execute("DELETE FROM t WHERE id = 11")
    c.execute("DELETE FROM nsl_busy")
    c.execute("UPDATE nsl_version SET content = replace(content, '7832', '7833') WHERE key = 2")  # 'x2' -> 'x3'
    c.commit()
    c.close()
    rep = nsl.verify(db)
    out = "\n".join(rep.problems)
    assert rep.rows == n - 1 and rep.uncommitted == 1
    assert "version" in rep.problems[0] and "does not hash" in out
    assert "t/9: column 'v'" in out and "t/11: row is missing" in out
    assert "t/7" not in out
