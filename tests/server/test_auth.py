"""Bearer tokens: open access without tokens, 401 without a valid one, 403 for a role that may not."""
from __future__ import annotations

import hmac

import pytest

import nsl
from nsl.core import tokens


def _tokens(db_path, **roles):
    db = nsl.open(db_path)
    try:
        return {name: tokens.add(db, name, role) for name, role in roles.items()}
    finally:
        db.close()


def test_no_tokens_means_open_access(api):
    r = api.post("tables/t/objects", json={"id": 1})
    assert r.status_code == 201
    assert api.get("tables/t/objects/1").json() == {"id": 1}
    assert "WWW-Authenticate" not in r.headers


def test_app_not_open_answers_401_without_tokens(server_db, start_server):
    """An app told that open access is not allowed (nsl serve off loopback) lets nothing through while
    the database has no token, and lets the tokens' holders through once it has one."""
    served = start_server(server_db, open_access=False)
    anon = served.api()
    for method, path, body in (("GET", "tables", None), ("GET", "head", None), ("POST", "tables/t/objects", {"id": 1}),
                               ("POST", "sql", {"sql": "SELECT 1"}), ("POST", "verify", None)):
        r = anon.request(method, path, json=body)
        assert r.status_code == 401, (method, path, r.text)
        assert r.json()["error"]["code"] == "unauthorized" and r.headers["WWW-Authenticate"].startswith("Bearer")
    t = _tokens(server_db, w="write")
    assert served.api(t["w"]).post("tables/t/objects", json={"id": 1}).status_code == 201
    assert anon.get("tables/t/objects/1").status_code == 401
    db = nsl.open(server_db)
    tokens.remove(db, "w")
    db.close()
    assert anon.get("tables/t/objects/1").status_code == 401
    assert served.api(t["w"]).get("tables/t/objects/1").status_code == 401
    assert served.api().get("/openapi.json").status_code == 200  # public


def test_missing_or_wrong_token_is_401(served):
    t = _tokens(served.db_path, admin="admin")
    anon = served.api()
    for path in ("tables", "head", "log", "tables/x/objects/1"):
        r = anon.get(path)
        assert r.status_code == 401, r.text
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert r.json()["error"]["code"] == "unauthorized"
    for bad in (t["admin"] + "x", t["admin"][:-1], "nsl_" + "A" * 43, "x"):
        r = served.api(bad).get("tables")
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "invalid_token"
        assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    for header in (f"Basic {t['admin']}", "Bearer", "Bearer ", t["admin"]):
        r = anon.get("tables", headers={"Authorization": header})
        assert r.status_code == 401, header
    assert served.api(t["admin"]).get("tables").status_code == 200
    assert anon.get("tables", headers={"Authorization": f"bearer  {t['admin']}"}).status_code == 200


def test_roles(served):
    t = _tokens(served.db_path, r="read", w="write", s="sync", a="admin")
    reader, writer, syncer, admin = (served.api(t[k]) for k in "rwsa")
    assert writer.post("tables/t/objects", json={"id": 1, "v": 1}).status_code == 201
    head = admin.get("head").json()["head"]

    for client in (reader, syncer):
        assert client.get("tables/t/objects/1").json() == {"id": 1, "v": 1}
        assert client.post("find", json={"table": "t"}).status_code == 200
        assert client.post("sql", json={"sql": "SELECT count(*) FROM t"}).json()["rows"] == [[1]]
        assert client.post("verify").json()["ok"] is True
        for method, path, body in (("POST", "tables/t/objects", {"id": 2}), ("PUT", "tables/t/objects/1", {"v": 2}),
                                   ("DELETE", "tables/t/objects/1", None),
                                   ("POST", "commits", {"ops": [{"delete": {"table": "t", "key": 1}}]})):
            r = client.request(method, path, json=body)
            assert r.status_code == 403, (method, path, r.text)
            err = r.json()["error"]
            assert err["code"] == "forbidden" and "may not write" in err["message"]
    assert admin.get("head").json()["head"] == head

    assert writer.put("tables/t/objects/1", json={"v": 2}).status_code == 200
    r = admin.post("commits", json={"ops": [{"delete": {"table": "t", "key": 1}}]})
    assert r.status_code == 201
    # The author of a write defaults to the token's name.
    assert admin.get("log", params={"n": 2}).json()["commits"][1]["author"] == "w"
    assert admin.get("log", params={"n": 1}).json()["commits"][0]["author"] == "a"


def test_removed_token_is_refused(served):
    t = _tokens(served.db_path, a="admin", b="read")
    assert served.api(t["b"]).get("tables").status_code == 200
    db = nsl.open(served.db_path)
    tokens.remove(db, "b")
    db.close()
    assert served.api(t["b"]).get("tables").status_code == 401
    assert served.api(t["a"]).get("tables").status_code == 200


def test_check_is_constant_time(served, monkeypatch):
    """Every stored hash is compared with hmac.compare_digest, whether or not an earlier one matched."""
    t = _tokens(served.db_path, one="read", two="read", three="read")
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(tokens.hmac, "compare_digest", spy)
    assert served.api(t["one"]).get("head").status_code == 200
    assert len(calls) == 3
    calls.clear()
    assert served.api(t["one"] + "x").get("head").status_code == 401
    assert len(calls) == 3


def test_tokens_are_stored_only_as_hashes(server_db):
    t = _tokens(server_db, ci="write")["ci"]
    assert t.startswith("nsl_") and len(t) >= 40
    raw = server_db.read_bytes()
    for p in server_db.parent.glob(server_db.name + "*"):
        raw += p.read_bytes()
    assert t.encode() not in raw and t[4:].encode() not in raw
    db = nsl.open(server_db)
    try:
        assert tokens.list(db)[0].keys() == {"name", "role", "created"}
        assert tokens.check(db, t) == ("ci", "write")
    finally:
        db.close()


@pytest.mark.parametrize("name,role", [("", "read"), ("has space", "read"), ("x" * 65, "read"), ("ok", "root"),
                                       ("ok", None), (None, "read"), ("-lead", "read")])
def test_bad_token_names_and_roles(server_db, name, role):
    db = nsl.open(server_db)
    try:
        with pytest.raises(nsl.NslError) as e:
            tokens.add(db, name, role)
        assert e.value.exit_code == 2 and e.value.code == "bad_input"
        assert tokens.list(db) == []
    finally:
        db.close()
