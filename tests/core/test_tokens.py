"""Tokens: made once, stored as a hash, checked in constant time, listed without secrets."""
from __future__ import annotations

import hashlib

import pytest

import nsl
from nsl.core import tokens
from nsl.errors import BadInput, NotFound


def test_add_list_check_remove(db):
    assert tokens.list(db) == [] and tokens.count(db) == 0
    assert tokens.check(db, "nsl_anything") is None  # no table yet: nothing matches
    a = tokens.add(db, "alice", "admin")
    r = tokens.add(db, "ci.reader", "read")
    assert a.startswith("nsl_") and a != r and len(a) == 4 + 43
    assert [t["name"] for t in tokens.list(db)] == ["alice", "ci.reader"]
    assert [t["role"] for t in tokens.list(db)] == ["admin", "read"]
    assert all(set(t) == {"name", "role", "created"} for t in tokens.list(db))
    assert tokens.check(db, a) == ("alice", "admin")
    assert tokens.check(db, r) == ("ci.reader", "read")
    for wrong in (a + "x", a[:-1], "", None, 42, r.upper()):
        assert tokens.check(db, wrong) is None
    stored = {h for (h,) in db.conn.execute("SELECT hash FROM nsl_token")}
    assert stored == {hashlib.sha256(a.encode()).hexdigest(), hashlib.sha256(r.encode()).hexdigest()}
    tokens.remove(db, "alice")
    assert tokens.check(db, a) is None and tokens.count(db) == 1


def test_duplicate_and_unknown(db):
    tokens.add(db, "x", "write")
    with pytest.raises(BadInput, match="exists already"):
        tokens.add(db, "x", "read")
    with pytest.raises(NotFound, match="no token named 'y'"):
        tokens.remove(db, "y")
    assert [t["role"] for t in tokens.list(db)] == ["write"]


@pytest.mark.parametrize("role", ["", "Admin", "root", None, 1])
def test_bad_role(db, role):
    with pytest.raises(BadInput, match="invalid role"):
        tokens.add(db, "n", role)


@pytest.mark.parametrize("name", ["", " x", "a/b", "../x", "x" * 65, None, "é"])
def test_bad_name(db, name):
    with pytest.raises(BadInput, match="invalid token name"):
        tokens.add(db, name, "read")


def test_tokens_are_not_history(db):
    """Making and removing tokens makes no commit and leaves verify clean, even while checked out."""
    nsl.save(db, "t", [{"id": 1}], message="one")
    nsl.save(db, "t", [{"id": 2}], message="two")
    head = nsl.head(db)
    nsl.checkout(db, "HEAD~1")
    tokens.add(db, "during", "read")
    nsl.checkout(db, "HEAD")
    tokens.remove(db, "during")
    assert nsl.head(db) == head and nsl.verify(db).ok
