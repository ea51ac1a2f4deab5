"""Stopping a server in process: the grace outlasts a request's time limit, and what still runs after it
is cut off cleanly (503 `stopping`, its transaction rolled back), not dropped with its connection."""
from __future__ import annotations

import threading
import time

import requests

import nsl
from nsl.server.app import App
from nsl.server.run import GRACE, Server

SLOW = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 2000000000) "
        "SELECT count(*) FROM c")


def test_the_grace_outlasts_a_requests_time_limit(server_db):
    for limit in (1.0, 60.0, 300.0):
        server = Server(App(server_db, time_limit=limit), "127.0.0.1", 0, threads=1)
        try:
            assert server.grace >= GRACE and server.grace >= limit + 5
        finally:
            server.stop()
            server.serve_forever()


def test_requests_still_running_after_the_grace_are_cut_off_cleanly(server_db):
    db = nsl.open(server_db)
    nsl.save(db, "people", [{"id": 1, "name": "Ada"}])
    db.close()
    server = Server(App(server_db), "127.0.0.1", 0, threads=2)
    port = server.addresses[0][1]
    reported = []
    loop = threading.Thread(target=server.serve_forever, kwargs={"grace": 0.5, "report": reported.append},
                            daemon=True)
    loop.start()
    answers = {}

    def ask(name, sql):
        answers[name] = requests.post(f"http://127.0.0.1:{port}/api/v1/sql", json={"sql": sql}, timeout=30)

    clients = [threading.Thread(target=ask, args=("read", SLOW)),
               threading.Thread(target=ask, args=("write", f"UPDATE people SET name = ({SLOW})"))]
    for c in clients:
        c.start()
    time.sleep(0.5)
    asked = time.monotonic()
    server.stop()
    loop.join(10)
    assert not loop.is_alive()
    for c in clients:
        c.join(10)
    assert time.monotonic() - asked < 5
    for name in ("read", "write"):
        r = answers[name]
        assert r.status_code == 503, r.text
        assert r.headers["Content-Type"] == "application/json"
        err = r.json()["error"]
        assert err["code"] == "stopping" and "nothing was changed" in err["message"]
    assert reported[0].startswith("stopping: waiting up to 0.5 s for 2 requests in flight")
    assert reported[1].startswith("stopping now: 2 requests still in flight stopped")
    db = nsl.open(server_db)
    try:
        assert nsl.get(db, "people", 1) == {"id": 1, "name": "Ada"}
        rep = nsl.verify(db)
        assert rep.ok and rep.uncommitted == 0
    finally:
        db.close()
