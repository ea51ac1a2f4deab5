"""`nsl serve` under mixed load: 16 keep-alive clients reading and writing for 30 s.

    python bench/serve_load.py [--seconds 30] [--clients 16] [--threads 4] [--seed 1] [--keep]

A fresh nsl database with a write token is served by `nsl serve --port 0` (a subprocess on 127.0.0.1).
CLIENTS threads, each with its own `requests.Session`, send a random mix for SECONDS:

    get    GET  /tables/load/objects/{key}          one of the client's own live objects (must equal it)
    find   POST /find {"where": {"owner": me}}      (must list exactly the client's live keys)
    list   GET  /tables/load/objects?where=...      (the same, through the query string)
    sql    POST /sql SELECT count(*) ... owner = ?  (must count them)
    save   POST /tables/load/objects                a new object, one commit (201)
    put    PUT  /tables/load/objects/{key}          a new version of an own object
    delete DELETE /tables/load/objects/{key}        an own object
    commit POST /commits                            two new objects and a delete, one commit
    log    GET  /log?n=5, GET /head

Each client is the only writer of its keys, so everything it reads must show its acknowledged writes.
Afterwards the server is stopped (SIGTERM) and the database checked through the library: every
acknowledged write is there (each key's last state, and every acknowledged commit in its history), and
`nsl verify` passes.

Prints requests/s, the count of errors (any 5xx, unexpected status or body, or socket error), and p50 /
p99 latency per kind of request and overall. tests/server/test_load.py runs the same load (`run_load`,
`check_database`) against the test suite's in-process server.
"""
from __future__ import annotations

import math
import random
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import requests

TABLE = "load"
API = "/api/v1"
MIX = {"get": 25, "find": 6, "list": 4, "sql": 10, "save": 20, "put": 15, "delete": 6, "commit": 6, "log": 8}
REQUEST_TIMEOUT = 30.0


@dataclass
class ClientLog:
    """What one client did and saw."""

    expected: dict = field(default_factory=dict)          # key -> last acknowledged object, None if deleted
    commits: dict = field(default_factory=lambda: defaultdict(list))  # key -> acknowledged commit uuids
    latencies: dict = field(default_factory=lambda: defaultdict(list))  # kind -> seconds
    statuses: Counter = field(default_factory=Counter)    # (kind, status)
    errors: list = field(default_factory=list)            # what went wrong, in words

    def alive(self) -> list:
        return [k for k, v in self.expected.items() if v is not None]


@dataclass
class LoadResult:
    seconds: float
    logs: list

    @property
    def requests(self) -> int:
        return sum(len(v) for log in self.logs for v in log.latencies.values())

    @property
    def errors(self) -> list:
        return [e for log in self.logs for e in log.errors]

    @property
    def server_errors(self) -> int:
        return sum(n for log in self.logs for (_, status), n in log.statuses.items() if status >= 500)

    @property
    def writes(self) -> int:
        return sum(len(c) for log in self.logs for c in log.commits.values())

    def latencies(self, kind: str | None = None) -> list:
        return sorted(x for log in self.logs for k, v in log.latencies.items() if kind in (None, k) for x in v)

    def summary(self) -> dict:
        return {"seconds": round(self.seconds, 2), "clients": len(self.logs), "requests": self.requests,
                "requests_per_s": round(self.requests / self.seconds, 1) if self.seconds else 0.0,
                "acknowledged_writes": self.writes, "errors": len(self.errors), "5xx": self.server_errors,
                "p50_ms": round(percentile(self.latencies(), 50) * 1000, 2),
                "p99_ms": round(percentile(self.latencies(), 99) * 1000, 2)}


def percentile(sorted_values: list, p: float) -> float:
    """The nearest-rank percentile of sorted values (0 for none)."""
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(p / 100 * len(sorted_values)) - 1))]


class _Client:
    def __init__(self, idx: int, base: str, token: str | None, deadline: float, seed: int):
        self.idx, self.base, self.deadline = idx, base.rstrip("/") + API, deadline
        self.rnd = random.Random(seed * 1000 + idx)
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        self.log = ClientLog()
        self.n = 0

    # -- one request, timed and classified
    def call(self, kind: str, method: str, path: str, expect: int, **kw):
        t0 = time.perf_counter()
        try:
            r = self.session.request(method, self.base + path, timeout=REQUEST_TIMEOUT, **kw)
        except requests.RequestException as e:
            self.log.latencies[kind].append(time.perf_counter() - t0)
            self.log.errors.append(f"{kind} {method} {path}: {type(e).__name__}: {e}")
            return None
        self.log.latencies[kind].append(time.perf_counter() - t0)
        self.log.statuses[kind, r.status_code] += 1
        if r.status_code != expect:
            self.log.errors.append(f"{kind} {method} {path}: {r.status_code} (expected {expect}): {r.text[:300]}")
            return None
        try:
            return r.json()
        except ValueError:
            self.log.errors.append(f"{kind} {method} {path}: not JSON: {r.text[:300]}")
            return None

    def wrong(self, kind: str, what: str):
        self.log.errors.append(f"{kind}: {what}")

    def new_object(self) -> dict:
        self.n += 1
        return {"id": f"c{self.idx}-{self.n}", "owner": self.idx, "n": self.n, "v": 0,
                "tags": ["load", self.rnd.choice("abc")], "pad": "x" * self.rnd.randrange(0, 200)}

    def acked(self, key, obj, doc):
        commit = doc.get("commit") if isinstance(doc, dict) else None
        if not commit:
            self.wrong("write", f"no commit for a change of {key!r}: {doc}")
            return
        self.log.expected[key] = obj
        self.log.commits[key].append(commit)

    # -- the kinds of request
    def op_save(self):
        obj = self.new_object()
        doc = self.call("save", "POST", f"/tables/{TABLE}/objects", 201, json=obj)
        if doc is not None:
            if doc.get("keys") != [obj["id"]]:
                self.wrong("save", f"keys {doc.get('keys')} for {obj['id']!r}")
            self.acked(obj["id"], obj, doc)

    def op_put(self, key):
        obj = dict(self.log.expected[key], v=self.log.expected[key]["v"] + 1, pad="y" * self.rnd.randrange(0, 200))
        body = {k: v for k, v in obj.items() if k != "id"}
        doc = self.call("put", "PUT", f"/tables/{TABLE}/objects/{key}", 200, json=body)
        if doc is not None:
            self.acked(key, obj, doc)

    def op_delete(self, key):
        doc = self.call("delete", "DELETE", f"/tables/{TABLE}/objects/{key}", 200)
        if doc is not None:
            self.acked(key, None, doc)

    def op_get(self, key):
        doc = self.call("get", "GET", f"/tables/{TABLE}/objects/{key}", 200)
        if doc is not None and doc != self.log.expected[key]:
            self.wrong("get", f"{key!r} is {doc}, the last acknowledged write made it {self.log.expected[key]}")

    def _check_found(self, kind, doc):
        if doc is None:
            return
        got = sorted(o["id"] for o in doc["objects"])
        want = sorted(self.log.alive())
        if got != want:
            self.wrong(kind, f"client {self.idx} sees {len(got)} objects, has {len(want)} live")

    def op_find(self):
        self._check_found("find", self.call("find", "POST", "/find", 200, json={
            "table": TABLE, "where": {"owner": self.idx}, "fields": ["id"], "limit": 100_000}))

    def op_list(self):
        self._check_found("list", self.call("list", "GET", f"/tables/{TABLE}/objects", 200, params={
            "where": f'{{"owner": {self.idx}}}', "fields": "id", "limit": "100000"}))

    def op_sql(self):
        doc = self.call("sql", "POST", "/sql", 200, json={
            "sql": f'SELECT count(*) FROM "{TABLE}" WHERE owner = ?', "params": [self.idx]})
        if doc is not None:
            if doc["write"] is not False or doc["rows"] != [[len(self.log.alive())]]:
                self.wrong("sql", f"client {self.idx}: {doc} (has {len(self.log.alive())} live)")

    def op_commit(self, key):
        a, b = self.new_object(), self.new_object()
        ops = [{"save": {"table": TABLE, "object": a}}, {"save": {"table": TABLE, "object": b}}]
        if key is not None:
            ops.append({"delete": {"table": TABLE, "key": key}})
        doc = self.call("commit", "POST", "/commits", 201, json={"message": f"client {self.idx}", "ops": ops})
        if doc is not None:
            for o in (a, b):
                self.acked(o["id"], o, doc)
            if key is not None:
                self.acked(key, None, doc)

    def op_log(self):
        if self.rnd.random() < 0.5:
            doc = self.call("log", "GET", "/log", 200, params={"n": "5"})
            if doc is not None and len(doc["commits"]) != 5:
                self.wrong("log", f"{len(doc['commits'])} commits, not 5")
        else:
            doc = self.call("log", "GET", "/head", 200)
            if doc is not None and not doc["head"]:
                self.wrong("log", "no head")

    def run(self):
        kinds, weights = list(MIX), list(MIX.values())
        try:
            while time.monotonic() < self.deadline:
                kind = self.rnd.choices(kinds, weights)[0]
                alive = self.log.alive()
                key = self.rnd.choice(alive) if alive else None
                if kind in ("get", "put", "delete") and key is None:
                    kind = "save"
                if kind == "save":
                    self.op_save()
                elif kind in ("get", "put", "delete"):
                    getattr(self, "op_" + kind)(key)
                elif kind == "commit":
                    self.op_commit(key if self.rnd.random() < 0.5 else None)
                else:
                    getattr(self, "op_" + kind)()
        except Exception as e:  # noqa: BLE001  (a client's own bug must show, not end the run silently)
            self.log.errors.append(f"client {self.idx} crashed: {type(e).__name__}: {e}")
        finally:
            self.session.close()


def prepare(db) -> None:
    """Make the table the load uses (the SQL reads need it to exist from the first request)."""
    import nsl

    nsl.save(db, TABLE, [{"id": "seed", "owner": -1, "n": 0, "v": 0, "tags": [], "pad": ""}], message="seed")


def run_load(base_url: str, token: str | None, *, seconds: float = 30.0, clients: int = 16,
             seed: int = 1) -> LoadResult:
    """CLIENTS threads sending the mix to the server at base_url for SECONDS; what each did and saw."""
    deadline = time.monotonic() + seconds
    workers = [_Client(i, base_url, token, deadline, seed) for i in range(clients)]
    threads = [threading.Thread(target=w.run, name=f"load-{i}", daemon=True) for i, w in enumerate(workers)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + REQUEST_TIMEOUT + 30)
        if t.is_alive():
            workers[0].log.errors.append(f"{t.name} did not finish")
    return LoadResult(time.perf_counter() - t0, [w.log for w in workers])


def check_database(db, result: LoadResult) -> list[str]:
    """Problems with the acknowledged writes in the (no longer served) database, and verify's findings."""
    import nsl
    from nsl.errors import UnknownObject

    problems = []
    live = {"seed"}
    for log in result.logs:
        for key, want in log.expected.items():
            try:
                got = nsl.get(db, TABLE, key)
            except UnknownObject:
                got = None
            if got != want:
                problems.append(f"{key!r}: stored {got}, last acknowledged {want}")
            if want is not None:
                live.add(key)
            made = {v["commit"] for v in nsl.history(db, TABLE, key)}
            lost = [c for c in log.commits[key] if c not in made]
            if lost:
                problems.append(f"{key!r}: acknowledged commits missing from its history: {lost}")
    stored = {o["id"] for o in nsl.find(db, TABLE, {}, fields=["id"])}
    if stored != live:
        problems.append(f"the table holds {len(stored)} objects, the clients acknowledged {len(live)} "
                        f"(extra: {sorted(stored - live)[:5]}, missing: {sorted(live - stored)[:5]})")
    report = nsl.verify(db)
    if not report.ok:
        problems.append(f"verify: {report.problems[:5]}")
    return problems


# ---- the benchmark ------------------------------------------------------------------------------

def main() -> int:
    import argparse
    import json
    import signal
    import subprocess

    from _common import header, nsl_cmd, table, workdir

    import nsl
    from nsl.core import tokens

    ap = argparse.ArgumentParser(description="nsl serve under concurrent clients' mixed reads and writes")
    ap.add_argument("--seconds", type=float, default=30.0, help="seconds of load (default 30)")
    ap.add_argument("--clients", type=int, default=16, help="concurrent keep-alive clients (default 16)")
    ap.add_argument("--threads", type=int, default=4, help="nsl serve --threads (default 4)")
    ap.add_argument("--seed", type=int, default=1, help="random seed of the mix (default 1)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (its path is printed)")
    args = ap.parse_args()

    header(f"serve_load: {args.clients} clients, {args.seconds:g} s, nsl serve --threads {args.threads}", 1)
    with workdir(args.keep) as d:
        path = d / "load.db"
        db, _ = nsl.init(path)
        prepare(db)
        token = tokens.add(db, "load", "write")
        db.close()
        log_path = d / "serve.stderr"
        with open(log_path, "wb") as log:  # waitress warns "Task queue depth is N" whenever clients wait
            proc = subprocess.Popen([*nsl_cmd(), "--db", str(path), "serve", "--port", "0", "--threads",
                                     str(args.threads), "--json"], stdout=subprocess.PIPE, stderr=log, text=True)
            try:
                url = json.loads(proc.stdout.readline())["url"]
                result = run_load(url, token, seconds=args.seconds, clients=args.clients, seed=args.seed)
            finally:
                proc.send_signal(signal.SIGTERM)
                rc = proc.wait(60)
        server_log = log_path.read_text(errors="replace").splitlines()
        db = nsl.open(path)
        try:
            problems = check_database(db, result)
        finally:
            db.close()
    s = result.summary()
    rows = []
    for kind in MIX:
        lat = result.latencies(kind)
        if lat:
            rows.append([kind, f"{len(lat):,}", f"{len(lat) / result.seconds:,.1f}",
                         f"{percentile(lat, 50) * 1000:.2f}", f"{percentile(lat, 99) * 1000:.2f}"])
    rows.append(["all", f"{s['requests']:,}", f"{s['requests_per_s']:,.1f}", f"{s['p50_ms']:.2f}",
                 f"{s['p99_ms']:.2f}"])
    table(rows, ["request", "count", "req/s", "p50 ms", "p99 ms"])
    print(f"acknowledged writes {s['acknowledged_writes']:,}; errors {s['errors']} (5xx {s['5xx']}); "
          f"server exit code {rc}")
    queue = sum(1 for line in server_log if line.startswith("Task queue depth"))
    other = [line for line in server_log if not line.startswith("Task queue depth")]
    print(f"server stderr: {queue} waitress 'Task queue depth' warnings, {len(other)} other lines")
    for line in other[:20]:
        print("  server:", line)
    for e in result.errors[:10]:
        print("  error:", e)
    for p in problems[:10]:
        print("  lost or wrong:", p)
    print(f"value errors {s['errors']} goal == 0 {'PASS' if not result.errors else 'MISS'}")
    print(f"value lost-writes+verify-problems {len(problems)} goal == 0 {'PASS' if not problems else 'MISS'}")
    print(json.dumps(s))
    return 0 if not result.errors and not problems and rc == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
