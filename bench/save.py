"""Bulk save: nsl against plain sqlite3 + orjson and against sqlite-utils.

    python bench/save.py [--n 100000] [--runs 3]

(a) reference: sqlite3 + orjson, executemany into a 5-column table in one transaction (WAL,
    synchronous=NORMAL); (b) nsl's JSON-lines save in-process (bulk.save_lines: what `nsl save` runs,
    parsing and hashing in a forked worker while this process writes); (b') nsl.save of parsed
    objects in one process; (c) `nsl save t < file` as a subprocess (start-up included);
    (d) `sqlite-utils insert db t file --nl --pk id` as a subprocess.
Each is the best of --runs runs into a fresh database. Goals: nsl <= 3x the reference, faster than
sqlite-utils.
"""
from __future__ import annotations

import sqlite3
import sys
import time

import _common as C
import orjson


def reference(db_path, jsonl):
    t0 = time.perf_counter()
    conn = sqlite3.connect(str(db_path), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute('CREATE TABLE t("id" PRIMARY KEY, "name", "age", "score", "city")')
    with open(jsonl, "rb") as f:
        objs = [orjson.loads(line) for line in f if line.strip()]
    conn.execute("BEGIN")
    conn.executemany('INSERT INTO t("id", "name", "age", "score", "city") VALUES (?, ?, ?, ?, ?)',
                     [(o["id"], o["name"], o["age"], o["score"], o["city"]) for o in objs])
    conn.execute("COMMIT")
    conn.close()
    return time.perf_counter() - t0


def nsl_in_process(db_path, jsonl):
    t0 = time.perf_counter()
    db, res = C.save_jsonl_in_process(db_path, "t", jsonl)
    db.conn.close()
    dt = time.perf_counter() - t0
    assert res.count == N, (res.count, N)
    return dt


def nsl_lines_in_process(db_path, jsonl):
    import nsl
    from nsl.core import bulk

    t0 = time.perf_counter()
    db, _ = nsl.init(str(db_path))
    with open(jsonl, "rb") as f:
        res = bulk.save_lines(db, "t", f)
    db.conn.close()
    dt = time.perf_counter() - t0
    assert res.count == N, (res.count, N)
    return dt


def nsl_cli(db_path, jsonl):
    C.run(C.nsl_cmd() + ["--db", str(db_path), "init"])  # not timed: creating the empty database
    dt, _ = C.time_run(C.nsl_cmd() + ["--db", str(db_path), "save", "t"], stdin_path=jsonl)
    return dt


def sqlite_utils_cli(db_path, jsonl):
    dt, _ = C.time_run([SQLITE_UTILS, "insert", str(db_path), "t", str(jsonl), "--nl", "--pk", "id"])
    return dt


def count_rows(db_path) -> int:
    conn = sqlite3.connect(str(db_path))
    try:
        return conn.execute("SELECT count(*) FROM t").fetchone()[0]
    finally:
        conn.close()


def main():
    global N, SQLITE_UTILS
    args = C.parse_args(__doc__.splitlines()[0], 100_000,
                        lambda ap: ap.add_argument("--runs", type=int, default=3, help="runs per contender"))
    N = args.n
    SQLITE_UTILS = C.tool("sqlite-utils")
    C.header("save: bulk insert of small objects from JSON lines", N)
    if SQLITE_UTILS is None:
        print("sqlite-utils not found: pip install 'sqlite-utils>=3.35' (the `bench` extra); skipping (d)")
    contenders = [("reference sqlite3+orjson executemany", reference),
                  ("nsl JSON-lines save (in-process)", nsl_lines_in_process),
                  ("nsl.save (in-process)", nsl_in_process),
                  ("nsl save t < file (CLI)", nsl_cli)]
    if SQLITE_UTILS:
        contenders.append(("sqlite-utils insert --nl (CLI)", sqlite_utils_cli))
    with C.workdir(args.keep) as d:
        jsonl = d / "objects.jsonl"
        size = C.write_jsonl(jsonl, C.gen_objects(N))
        print(f"input: {jsonl.name}, {size / 1e6:.1f} MB, {N:,} objects; best of {args.runs} runs each")
        best = {}
        for run_i in range(args.runs):
            # Interleave the contenders so drift in machine load hits them all alike.
            for label, fn in contenders:
                db_path = d / f"run{run_i}-{fn.__name__}.db"
                C.remove_db(db_path)
                dt = fn(db_path, jsonl)
                rows = count_rows(db_path)
                if rows != N:
                    sys.exit(f"{label}: expected {N} rows, found {rows}")
                best[label] = min(best.get(label, dt), dt)
                C.remove_db(db_path)
        ref = best[contenders[0][0]]
        rows = [[label, C.fmt_s(t), f"{N / t:,.0f}", f"{t / ref:.2f}x"] for label, t in best.items()]
        C.table(rows, ["contender", "best time", "objects/s", "vs reference"])
        print()
        nsl_lines = best["nsl JSON-lines save (in-process)"]
        nsl_ip = best["nsl.save (in-process)"]
        nsl_cl = best["nsl save t < file (CLI)"]
        C.goal("nsl-jsonl-save/ref", nsl_lines / ref, 3.0)
        C.goal("nsl.save/ref", nsl_ip / ref, 3.0)
        C.goal("nsl-cli/ref", nsl_cl / ref, 3.0)
        if SQLITE_UTILS:
            su = best["sqlite-utils insert --nl (CLI)"]
            C.goal("nsl-cli/sqlite-utils", nsl_cl / su, 1.0, less_than=True)
            C.goal("nsl.save/sqlite-utils", nsl_ip / su, 1.0, less_than=True)
        C.summary()


if __name__ == "__main__":
    main()
