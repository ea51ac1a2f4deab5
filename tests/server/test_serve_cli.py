"""`nsl serve` and `nsl token` as a user runs them: real subprocesses, real signals."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests

import nsl
from nsl.server.run import is_loopback
from servetools import TIMEOUT, env_for, nsl_run, start_serve, stop


def test_serve_sigterm(tmp_path):
    db = tmp_path / "nsl.db"
    nsl_run(tmp_path, db, "init")
    proc, url = start_serve(tmp_path, db)
    try:
        assert url.startswith("http://127.0.0.1:") and url.endswith("/")
        r = requests.post(url + "api/v1/tables/people/objects", json=[{"id": 1, "name": "Ada"}], timeout=TIMEOUT)
        assert r.status_code == 201, r.text
        commit = r.json()["commit"]
        assert requests.get(url + "api/v1/tables/people/objects/1", timeout=TIMEOUT).json() == {"id": 1, "name": "Ada"}

        # A request in flight when SIGTERM arrives still gets its answer.
        # (About a second of SQL; the signal comes while it runs.)
        slow = {"sql": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 6000000) "
                       "SELECT count(*) FROM c"}
        answer = []

        def ask():
            answer.append(requests.post(url + "api/v1/sql", json=slow, timeout=TIMEOUT))
            answer.append(time.monotonic())

        t = threading.Thread(target=ask, daemon=True)
        t.start()
        time.sleep(0.3)
    finally:
        signalled = time.monotonic()
        code, err = stop(proc)
    t.join(TIMEOUT)
    assert code == 0, err
    assert answer and answer[0].status_code == 200 and answer[0].json()["rows"] == [[6000000]]
    assert answer[1] > signalled, "the slow request should have been in flight when the signal came"
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "api/v1/head", timeout=2)
    database = nsl.open(db)
    try:
        assert nsl.verify(database).ok and nsl.head(database) == commit
    finally:
        database.close()
    assert json.loads(nsl_run(tmp_path, db, "verify", "--json").stdout)["ok"] is True


def test_serve_json_and_sigint(tmp_path):
    db = tmp_path / "nsl.db"
    nsl_run(tmp_path, db, "init")
    proc = subprocess.Popen([sys.executable, "-m", "nsl", "--db", str(db), "serve", "--port", "0", "--json"],
                            cwd=tmp_path, env=env_for(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        line = []
        reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(TIMEOUT)
        doc = json.loads(line[0])
        assert doc["url"] == f"http://127.0.0.1:{doc['port']}/" and doc["tokens"] == 0
        assert requests.get(doc["url"] + "api/v1/head", timeout=TIMEOUT).json() == {"head": None}
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0


def test_non_loopback_without_tokens_is_refused(tmp_path):
    db = tmp_path / "nsl.db"
    nsl_run(tmp_path, db, "init")
    for host in ("0.0.0.0", "::", "192.0.2.10", "example.com"):
        p = nsl_run(tmp_path, db, "serve", "--host", host, "--port", "0", check=False)
        assert p.returncode == 2, p.stderr
        assert p.stderr.startswith(f"error: refusing to serve on {host}: the database has no tokens")
        assert "nsl token add" in p.stderr and "--insecure" in p.stderr
        assert p.stdout == ""


def test_loopback_names():
    for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost", "LOCALHOST"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "10.0.0.1", "example.com", "", "127.0.0.1.example.com"):
        assert not is_loopback(host), host


def test_token_commands(tmp_path):
    db = tmp_path / "nsl.db"
    nsl_run(tmp_path, db, "init")
    assert json.loads(nsl_run(tmp_path, db, "token", "list", "--json").stdout) == []
    made = json.loads(nsl_run(tmp_path, db, "token", "add", "ci", "--role", "read", "--json").stdout)
    assert made["name"] == "ci" and made["role"] == "read" and made["token"].startswith("nsl_")
    plain = nsl_run(tmp_path, db, "token", "add", "admin", "--role", "admin")
    admin_token = plain.stdout.strip()
    assert admin_token.startswith("nsl_") and "cannot be shown again" in plain.stderr

    listed = nsl_run(tmp_path, db, "token", "list", "--json").stdout
    assert [t["name"] for t in json.loads(listed)] == ["admin", "ci"]
    assert made["token"] not in listed and admin_token not in listed
    assert json.loads(nsl_run(tmp_path, db, "token", "--json").stdout) == json.loads(listed)
    human = nsl_run(tmp_path, db, "token").stdout
    assert "ci" in human and "read" in human and made["token"] not in human

    # Once the database has tokens, the server wants one, and the role decides.
    proc, url = start_serve(tmp_path, db)
    try:
        assert requests.get(url + "api/v1/head", timeout=TIMEOUT).status_code == 401
        r = requests.get(url + "api/v1/head", headers={"Authorization": f"Bearer {made['token']}"}, timeout=TIMEOUT)
        assert r.status_code == 200
        r = requests.post(url + "api/v1/tables/t/objects", json={"id": 1}, timeout=TIMEOUT,
                          headers={"Authorization": f"Bearer {made['token']}"})
        assert r.status_code == 403
        r = requests.post(url + "api/v1/tables/t/objects", json={"id": 1}, timeout=TIMEOUT,
                          headers={"Authorization": f"Bearer {admin_token}"})
        assert r.status_code == 201
    finally:
        assert stop(proc)[0] == 0

    bad = nsl_run(tmp_path, db, "token", "add", "ci", "--role", "write", check=False)
    assert bad.returncode == 2 and "exists already" in bad.stderr
    bad = nsl_run(tmp_path, db, "token", "add", "x", "--role", "root", check=False)
    assert bad.returncode == 2
    bad = nsl_run(tmp_path, db, "token", "add", "bad name", "--role", "read", check=False)
    assert bad.returncode == 2 and "invalid token name" in bad.stderr
    assert json.loads(nsl_run(tmp_path, db, "token", "remove", "ci", "--json").stdout) == {"removed": "ci"}
    gone = nsl_run(tmp_path, db, "token", "remove", "ci", check=False)
    assert gone.returncode == 1 and "no token named 'ci'" in gone.stderr
    assert [t["name"] for t in json.loads(nsl_run(tmp_path, db, "token", "list", "--json").stdout)] == ["admin"]
    assert json.loads(nsl_run(tmp_path, db, "verify", "--json").stdout)["ok"] is True


def test_serve_needs_a_database(tmp_path):
    p = nsl_run(tmp_path, tmp_path / "missing.db", "serve", "--port", "0", check=False)
    assert p.returncode == 1 and p.stderr.startswith("error: no nsl database")


def test_off_loopback_server_stays_closed_when_its_last_token_is_removed(tmp_path):
    """A server on 0.0.0.0 was allowed because the database had a token; removing that token must not
    open it to the network: every request is then a 401 (on loopback, no tokens means open access)."""
    db = tmp_path / "nsl.db"
    nsl_run(tmp_path, db, "init")
    nsl_run(tmp_path, db, "save", "people", '{"id": 1, "name": "Ada"}')
    admin = nsl_run(tmp_path, db, "token", "add", "admin", "--role", "admin").stdout.strip()
    proc, url = start_serve(tmp_path, db, "--host", "0.0.0.0")
    try:
        assert url.startswith("http://0.0.0.0:")
        base = url.replace("0.0.0.0", "127.0.0.1", 1) + "api/v1/"
        auth = {"Authorization": f"Bearer {admin}"}
        assert requests.get(base + "tables/people/objects/1", headers=auth, timeout=TIMEOUT).status_code == 200
        assert requests.get(base + "tables/people/objects/1", timeout=TIMEOUT).status_code == 401

        nsl_run(tmp_path, db, "token", "remove", "admin")
        for method, path, body in (("GET", "tables/people/objects/1", None), ("GET", "tables", None),
                                   ("POST", "tables/people/objects", {"id": 2, "name": "Eve"}),
                                   ("DELETE", "tables/people/objects/1", None),
                                   ("POST", "sql", {"sql": "DELETE FROM people"})):
            for headers in ({}, auth):
                r = requests.request(method, base + path, json=body, headers=headers, timeout=TIMEOUT)
                assert r.status_code == 401, (method, path, r.text)
                err = r.json()["error"]
                assert err["code"] in ("unauthorized", "invalid_token") and r.headers["WWW-Authenticate"]
                if not headers:
                    assert "has none" in err["message"] and "nsl token add" in err["hint"]
        # The web page (public, no data) is still served; it asks for a token.
        assert requests.get(url.replace("0.0.0.0", "127.0.0.1", 1), timeout=TIMEOUT).status_code == 200

        # A new token opens it again, to that token only.
        reader = nsl_run(tmp_path, db, "token", "add", "ci", "--role", "read").stdout.strip()
        r = requests.get(base + "tables/people/objects/1", headers={"Authorization": f"Bearer {reader}"},
                         timeout=TIMEOUT)
        assert r.status_code == 200 and r.json() == {"id": 1, "name": "Ada"}
        assert requests.get(base + "tables/people/objects/1", timeout=TIMEOUT).status_code == 401
    finally:
        assert stop(proc)[0] == 0
    p = nsl_run(tmp_path, db, "find", "people", "--json")
    assert json.loads(p.stdout) == [{"id": 1, "name": "Ada"}]
    nsl_run(tmp_path, db, "verify")


def test_serve_options_insecure_max_body_threads(tmp_path):
    """One `nsl serve --host 0.0.0.0 --insecure --max-body 1000 --threads 2`: it binds off loopback
    without a token and is open; a body over 1000 bytes is a JSON 413; two requests occupy its two
    threads, so a third waits for one of them."""
    import sqlite3

    db = tmp_path / "nsl.db"
    nsl_run(tmp_path, db, "init")
    proc, url = start_serve(tmp_path, db, "--host", "0.0.0.0", "--insecure", "--max-body", "1000", "--threads", "2")
    try:
        assert url.startswith("http://0.0.0.0:")
        base = url.replace("0.0.0.0", "127.0.0.1", 1) + "api/v1/"
        # --insecure: no token, yet served off loopback, and open.
        r = requests.post(base + "tables/t/objects", json={"id": 1, "note": "x" * 100}, timeout=TIMEOUT)
        assert r.status_code == 201, r.text

        # --max-body 1000: announced or chunked, a larger body is refused in JSON; 1000 bytes are fine.
        def body_of(n):
            doc = json.dumps({"id": 2, "note": ""})
            return doc.replace('""', '"' + "y" * (n - len(doc)) + '"').encode()

        assert len(body_of(1000)) == 1000
        r = requests.post(base + "tables/t/objects", data=body_of(1001), timeout=TIMEOUT)
        assert r.status_code == 413 and r.headers["Content-Type"] == "application/json"
        assert r.json()["error"]["code"] == "body_too_large" and "1000 bytes" in r.json()["error"]["message"]
        r = requests.post(base + "tables/t/objects", data=iter([body_of(1500)[:700], body_of(1500)[700:]]),
                          timeout=TIMEOUT)  # chunked: no Content-Length
        assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
        assert requests.get(base + "tables/t/objects/2", timeout=TIMEOUT).status_code == 404
        r = requests.post(base + "tables/t/objects", data=body_of(1000), timeout=TIMEOUT)
        assert r.status_code == 201, r.text

        # --threads 2: another client holds the write lock, so each write request waits in a server thread.
        lock = sqlite3.connect(str(db), isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")
        done = {}

        def call(name, method, path, **kw):
            r = requests.request(method, base + path, timeout=TIMEOUT, **kw)
            done[name] = (r.status_code, time.monotonic())

        try:
            w1 = threading.Thread(target=call, args=("w1", "POST", "tables/t/objects"), kwargs={"json": {"id": 3}})
            w1.start()
            time.sleep(0.5)
            r = requests.get(base + "head", timeout=TIMEOUT)  # one thread is still free
            assert r.status_code == 200 and "w1" not in done
            w2 = threading.Thread(target=call, args=("w2", "POST", "tables/t/objects"), kwargs={"json": {"id": 4}})
            w2.start()
            time.sleep(0.5)
            reader = threading.Thread(target=call, args=("read", "GET", "head"))
            reader.start()
            time.sleep(1.0)
            assert "read" not in done, "both threads are busy: the read must wait"
            released = time.monotonic()
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        for t in (w1, w2, reader):
            t.join(TIMEOUT)
        assert done["w1"][0] == 201 and done["w2"][0] == 201 and done["read"][0] == 200
        assert done["read"][1] > released
    finally:
        code, err = stop(proc)
    assert code == 0, err
    assert "no tokens: access is open" in err
    assert json.loads(nsl_run(tmp_path, db, "verify", "--json").stdout)["ok"] is True


def _slow_sql(rows: int) -> dict:
    """SQL that counts `rows` rows one by one (about a second per 6,000,000 here)."""
    return {"sql": f"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT {rows}) "
                   "SELECT count(*) FROM c"}


def test_ctrl_c_lets_the_request_in_flight_finish(tmp_path):
    db = tmp_path / "nsl.db"
    nsl_run(tmp_path, db, "init")
    proc, url = start_serve(tmp_path, db)
    answer = []
    try:
        r = requests.post(url + "api/v1/tables/people/objects", json={"id": 1, "name": "Ada"}, timeout=TIMEOUT)
        assert r.status_code == 201
        commit = r.json()["commit"]

        def ask():
            answer.append(requests.post(url + "api/v1/sql", json=_slow_sql(6_000_000), timeout=TIMEOUT))
            answer.append(time.monotonic())

        t = threading.Thread(target=ask, daemon=True)
        t.start()
        time.sleep(0.3)
    finally:
        signalled = time.monotonic()
        code, err = stop(proc, signal.SIGINT)
    t.join(TIMEOUT)
    assert code == 0, err
    assert answer and answer[0].status_code == 200 and answer[0].json()["rows"] == [[6000000]]
    assert answer[1] > signalled, "the slow request should have been in flight when Ctrl-C came"
    assert "stopping: waiting up to" in err and "1 request in flight" in err and "Ctrl-C" in err
    assert err.rstrip().endswith("stopped") and "Traceback" not in err
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "api/v1/head", timeout=2)
    database = nsl.open(db)
    try:
        assert nsl.verify(database).ok and nsl.head(database) == commit
    finally:
        database.close()


@pytest.mark.parametrize("first, second", [(signal.SIGINT, signal.SIGINT), (signal.SIGTERM, signal.SIGINT),
                                           (signal.SIGINT, signal.SIGTERM)])
def test_a_second_stop_signal_stops_at_once(tmp_path, first, second):
    """A second Ctrl-C (or SIGTERM) does not wait for the requests in flight: their SQL is stopped, a write
    among them rolls back, they answer 503 `stopping`, and the server is gone at once."""
    db = tmp_path / "nsl.db"
    nsl_run(tmp_path, db, "init")
    nsl_run(tmp_path, db, "save", "people", '{"id": 1, "name": "Ada"}')
    proc, url = start_serve(tmp_path, db, "--threads", "2")
    answers = {}
    long_count = 2_000_000_000  # minutes of work

    def ask(name, body):
        try:
            answers[name] = requests.post(url + "api/v1/sql", json=body, timeout=30)
        except requests.ConnectionError as e:
            answers[name] = e

    write = {"sql": "UPDATE people SET name = (" + _slow_sql(long_count)["sql"] + ")"}
    threads = [threading.Thread(target=ask, args=("read", _slow_sql(long_count)), daemon=True),
               threading.Thread(target=ask, args=("write", write), daemon=True)]
    try:
        for t in threads:
            t.start()
        time.sleep(0.5)
        proc.send_signal(first)
        time.sleep(1.0)
        assert proc.poll() is None, "the first signal waits for the requests in flight"
    finally:
        second_at = time.monotonic()
        code, err = stop(proc, second)
    stopped_in = time.monotonic() - second_at
    for t in threads:
        t.join(TIMEOUT)
    assert code == 0, err
    assert stopped_in < 5, f"a second signal should stop at once, took {stopped_in:.1f} s"
    assert "stopping now: 2 requests still in flight stopped" in err and "Traceback" not in err
    for name in ("read", "write"):
        r = answers[name]
        assert isinstance(r, requests.Response), (name, r)  # the answer went out before the server was gone
        assert r.status_code == 503 and r.json()["error"]["code"] == "stopping", r.text
    assert json.loads(nsl_run(tmp_path, db, "find", "people", "--json").stdout) == [{"id": 1, "name": "Ada"}]
    assert json.loads(nsl_run(tmp_path, db, "status", "--json").stdout)["changes"] == []
    assert json.loads(nsl_run(tmp_path, db, "verify", "--json").stdout)["ok"] is True
