"""POST /sync with messages that are wrong: each is refused with a clean 4xx in the one error shape, and
the served database is unchanged. Artifacts that lie about themselves are refused whole."""
from __future__ import annotations

import hashlib
import sqlite3

import pytest
import requests

import nsl
from nsl.core import commits

from synctools import TIMEOUT


@pytest.fixture
def hub(tmp_path, serve):
    db, _ = nsl.init(tmp_path / "hub.db")
    nsl.save(db, "people", [{"id": 1, "name": "Ada"}])
    ident = {"nsl": 1, "project": db.meta("project_code"), "from": "0" * 40, "hash": "sha1", "head": None,
             "pull": True, "push": True}
    db.close()
    return serve(tmp_path / "hub.db"), ident, tmp_path / "hub.db"


def dump(path):
    conn = sqlite3.connect(path)
    try:
        return [r for r in conn.iterdump() if "nsl_meta" not in r or "sync_" not in r]
    finally:
        conn.close()


def post(srv, body, raw=None):
    return requests.post(srv.url + "/sync", json=body if raw is None else None, data=raw,
                         headers={"Content-Type": "application/json"}, timeout=TIMEOUT)


def sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


BAD = [
    ("not an object", ["nsl", 1]),
    ("no protocol", {"project": "0" * 40}),
    ("protocol true", {"nsl": True, "clone": {"after": None}}),
    ("protocol 2", {"nsl": 2, "clone": {"after": None}}),
    ("clone after", {"nsl": 1, "clone": {"after": [1]}}),
    ("clone and more", {"nsl": 1, "clone": {"after": None}, "push": True}),
    ("unknown field", {"nsl": 1, "project": "0" * 40, "from": "0" * 40, "hash": "sha1", "x": 1}),
    ("bad hash algo", {"nsl": 1, "project": "0" * 40, "from": "0" * 40, "hash": "md5"}),
    ("bad head", {"nsl": 1, "project": "0" * 40, "from": "0" * 40, "hash": "sha1", "head": "HEAD"}),
    ("igot not names", {"nsl": 1, "project": "0" * 40, "from": "0" * 40, "hash": "sha1", "igot": ["x"]}),
    ("card kind", {"nsl": 1, "project": "0" * 40, "from": "0" * 40, "hash": "sha1",
                   "files": [{"kind": "blob", "name": "0" * 40, "content": ""}]}),
    ("commit without keys", {"nsl": 1, "project": "0" * 40, "from": "0" * 40, "hash": "sha1",
                             "files": [{"kind": "commit", "name": "0" * 40, "content": "x"}]}),
    ("push flag", {"nsl": 1, "project": "0" * 40, "from": "0" * 40, "hash": "sha1", "push": "yes"}),
]


@pytest.mark.parametrize("what,body", BAD, ids=[b[0] for b in BAD])
def test_malformed_messages_are_refused(hub, what, body):
    srv, _, path = hub
    before = dump(path)
    r = post(srv, body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] in ("protocol", "bad_input") and err["message"]
    assert dump(path) == before


def test_not_json_and_other_projects(hub):
    srv, ident, path = hub
    before = dump(path)
    r = post(srv, None, raw=b"{not json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    r = post(srv, {**ident, "project": "1" * 40})
    assert r.status_code == 409 and r.json()["error"]["code"] == "project_mismatch"
    r = post(srv, {**ident, "hash": "sha256"})
    assert r.status_code == 409
    assert dump(path) == before


def test_artifacts_that_lie_are_refused_whole(hub):
    srv, ident, path = hub
    good = "6964|6E616D65\ni2|t416C616E"                                   # {"id": 2, "name": "Alan"}
    cases = {
        "name is not the hash": [{"kind": "version", "name": sha1(good)[::-1], "content": good}],
        "not canonical": [{"kind": "version", "name": sha1(good.lower()), "content": good.lower()}],
        "not a cluster": [{"kind": "cluster", "name": sha1("cluster\nM x\n"), "content": "cluster\nM x\n"}],
        "not a commit": [{"kind": "commit", "name": sha1("commit\n"), "content": "commit\n", "keys": []}],
    }
    # A commit whose text hashes to its name but whose line names a version with another row text.
    db = nsl.open(path)
    parent = nsl.head(db)
    db.close()
    header = commits.header_text("a" * 40, "2026-12-01T00:00:00.000Z", [parent], None)
    forged = header + f"I people {'0' * 40} {sha1(good)}\n"
    cases["row text does not match"] = [{"kind": "version", "name": sha1(good), "content": good},
                                        {"kind": "commit", "name": sha1(forged), "content": forged, "keys": [2]}]
    wrong_key = header + f"I people {sha1('2|Alan')} {sha1(good)}\n"
    cases["key does not match"] = [{"kind": "version", "name": sha1(good), "content": good},
                                   {"kind": "commit", "name": sha1(wrong_key), "content": wrong_key, "keys": [3]}]
    before = dump(path)
    for what, files in cases.items():
        r = post(srv, {**ident, "files": files, "tables": {"people": "id"}})
        assert r.status_code == 422, (what, r.text)
        assert r.json()["error"]["code"] == "bad_artifact", what
        assert dump(path) == before, what
    # The honest commit goes in.
    honest = header + f"I people {sha1('2|Alan')} {sha1(good)}\n"
    r = post(srv, {**ident, "files": [{"kind": "version", "name": sha1(good), "content": good},
                                      {"kind": "commit", "name": sha1(honest), "content": honest, "keys": [2]}],
                   "tables": {"people": "id"}})
    assert r.status_code == 200 and r.json()["received"]["applied"] == 1, r.text
    db = nsl.open(path)
    try:
        assert nsl.get(db, "people", 2) == {"id": 2, "name": "Alan"}
        assert nsl.verify(db).ok
    finally:
        db.close()
