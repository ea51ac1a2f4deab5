"""Where the time of one served GET goes: nsl's WSGI app timed in process, part by part.

    python bench/serve_parts.py [--n 100000] [--lookups 20000] [--repeat 6]

The data of bench/serve.py (N objects, text keys "k1".."kN", saved by nsl into table t); no HTTP, no
threads: `App.__call__` on a WSGI environ like waitress's, for random existing keys, then the parts
of that answer one at a time, and the bare app's work (bench/_bare_app.py: one SELECT, a dict,
orjson) on the same file. Each figure is the smallest per-request time over chunks of 250 requests
(repeated --repeat times): the machine's other load only ever adds time, so the minimum is the figure
least disturbed by it. Informational: no goals (bench/serve.py has them). Under HTTP load each
microsecond here costs several more (waitress, the GIL, cold caches); the ratios between the lines
are what this is for.
"""
from __future__ import annotations

import io
import random
import sqlite3
import time

import orjson

import _common
from _common import gen_objects, header, table, workdir

CHUNK = 250


def extra_args(ap):
    ap.add_argument("--lookups", type=int, default=20_000, help="random keys per measurement (default 20,000)")
    ap.add_argument("--repeat", type=int, default=6, help="passes over the keys (default 6)")


def per_call(fn, items, repeat: int) -> float:
    """Smallest mean seconds per call of fn over chunks of CHUNK items."""
    best = float("inf")
    for _ in range(repeat):
        for i in range(0, len(items), CHUNK):
            part = items[i:i + CHUNK]
            t0 = time.perf_counter()
            for x in part:
                fn(x)
            best = min(best, (time.perf_counter() - t0) / len(part))
    return best


def environ(path: str) -> dict:
    return {"REQUEST_METHOD": "GET", "PATH_INFO": path, "REQUEST_URI": path, "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8080", "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": "127.0.0.1:8080", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""),
            "wsgi.input_terminated": True}


def main():
    args = _common.parse_args(__doc__.splitlines()[0], 100_000, extra_args)
    import nsl
    from nsl.core import objects, tokens
    from nsl.core.values import dumps
    from nsl.server.app import App, Request

    header("serve_parts: one GET /api/v1/tables/t/objects/KEY, in process", args.n)
    with workdir(args.keep) as work:
        path = work / "nsl.db"
        db, _ = nsl.init(path)
        objs = []
        for o in gen_objects(args.n):
            o["id"] = f"k{o['id']}"
            objs.append(o)
        nsl.save(db, "t", objs)
        db.close()

        rnd = random.Random(1)
        keys = [f"k{rnd.randint(1, args.n)}" for _ in range(args.lookups)]
        envs = [environ(f"/api/v1/tables/t/objects/{k}") for k in keys]
        app = App(path)
        statuses = []

        def start_response(status, headers):
            statuses.append(status)

        for e in envs[:10]:
            app(dict(e), start_response)
        assert set(statuses) == {"200 OK"}, statuses
        sdb = app.open_db()
        tbl = sdb.table("t")
        sql = tbl.sql("get", objects._get_sql, 1)
        rows = [sdb.conn.execute(sql, ("t", k)).fetchone() for k in keys[:CHUNK]]

        def core(k):
            with sdb.tentative():
                tokens.count(sdb)
                dumps(objects.get(sdb, "t", k))

        def request_and_route(e):
            req = Request(dict(e), app)
            app.cap_body(req)
            app.route(req)

        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)

        def bare(k):
            cur = conn.execute('SELECT * FROM "t" WHERE "id" = ?', (k,))
            orjson.dumps(dict(zip([d[0] for d in cur.description], cur.fetchone())))

        r = args.repeat
        whole = per_call(lambda e: app(dict(e), start_response), envs, r)
        core_t = per_call(core, keys, r)
        parts = [
            ("the whole nsl App (App.__call__)", whole),
            ("- the App layer: Request, body cap, routing, time limit, tentative block, auth, handler "
             "dispatch, Response, headers", whole - core_t),
            ("  - of which Request + body cap + routing", per_call(request_and_route, envs, r)),
            ("- token check + objects.get + dumps (kept tokens and table)", core_t),
            ("  - the one statement: row, current version, data_version (execute + fetchone)",
             per_call(lambda k: sdb.conn.execute(sql, ("t", k)).fetchone(), keys, r)),
            ("  - exact_object: the row checked against its version, the object built",
             per_call(lambda row: objects._exact_object(tbl.columns, list(row[:-2]), row[-2]), rows, r)),
            ("the bare app: SELECT * ... WHERE id = ?, a dict, orjson.dumps", per_call(bare, keys, r)),
        ]
        app.close()
        conn.close()
    table([(label, f"{t * 1e6:.1f}") for label, t in parts], ["part of one GET", "us"])
    print(f"info app/bare {whole / parts[-1][1]:.2f}x (in process)")


if __name__ == "__main__":
    main()
