"""Under 16 concurrent keep-alive clients doing mixed reads and writes, no request fails with a 5xx, every
read shows the client's acknowledged writes, no acknowledged write is lost, and `nsl verify` is clean.

The load is bench/serve_load.py's (`run_load`, `check_database`), here against the suite's in-process
waitress server (4 threads) on a fresh database with a write token. It runs NSL_LOAD_SECONDS seconds
(default 30; set it lower for a quick local run).
"""
from __future__ import annotations

import importlib.util
import io
import os
import sys
from pathlib import Path

import pytest

import nsl
from nsl.core import tokens

BENCH = Path(__file__).resolve().parents[2] / "bench" / "serve_load.py"
SECONDS = float(os.environ.get("NSL_LOAD_SECONDS", "30"))
CLIENTS = 16


def _load_module():
    spec = importlib.util.spec_from_file_location("nsl_bench_serve_load", BENCH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
@pytest.mark.timeout(SECONDS + 240)
def test_sixteen_clients_mixed_load(server_db, start_server):
    load = _load_module()
    db = nsl.open(server_db)
    try:
        load.prepare(db)
        token = tokens.add(db, "load", "write")
    finally:
        db.close()
    server_log = io.StringIO()
    running = start_server(server_db, log=server_log)

    result = load.run_load(running.url, token, seconds=SECONDS, clients=CLIENTS, seed=1)
    running.stop()  # in-flight requests finish; the database is then checked from outside

    summary = result.summary()
    print(f"\nload: {summary}")
    assert result.server_errors == 0, f"{result.server_errors} answers were 5xx: {result.errors[:5]}"
    assert not result.errors, f"{len(result.errors)} unexpected answers, e.g. {result.errors[:5]}"
    assert "Traceback" not in server_log.getvalue(), server_log.getvalue()[-3000:]
    # Enough happened for the checks to mean something: every client wrote, and the mix was mixed.
    assert all(log.commits for log in result.logs), "a client acknowledged no write"
    kinds = {k for log in result.logs for k in log.latencies}
    assert kinds == set(load.MIX), kinds

    db = nsl.open(server_db)
    try:
        problems = load.check_database(db, result)
        assert not problems, problems[:10]
        assert nsl.verify(db).ok
    finally:
        db.close()
