"""Indexed equality finds on a 1,000,000-row table: nsl.find and `nsl find` against raw sqlite3.

    python bench/find.py [--n 1000000] [--lookups 2000] [--cli-runs 10]

Builds the table with nsl.save (chunks of 100,000, one commit each), creates `nsl index t email` and
`nsl index t n`, then times, for random existing values:
  in-process: list(nsl.find(db, "t", {"email": v})) against a plain sqlite3 connection to the same
    file running SELECT * FROM t WHERE email=? (same table, same index); median and p99 per lookup.
  CLI: `nsl find t '{"email": v}' --json` wall time against `sqlite3 -json db "SELECT ..."`
    (the sqlite3 shell, when installed) and against a bare `python -c 'import nsl'`.
Goals (this script's own; the spec says only that indexed finds take milliseconds): median nsl.find
<= 10x the raw sqlite3 lookup and <= 1 ms; the CLI find under 0.5 s.
"""
from __future__ import annotations

import random
import sqlite3
import sys
import time

import _common as C

DOMAINS = ["example.com", "mail.test", "corp.example", "nsl.dev"]
CHUNK = 100_000
# The spec asks only that indexed finds "take milliseconds"; the ratio goal is this script's own choice:
# nsl.find joins two more tables (current version, typed content) and decodes each row into an object.
RATIO_GOAL = 10.0


def person(i: int, rnd: random.Random) -> dict:
    name = rnd.choice(C.NAMES)
    return {"id": i, "name": f"{name} {i}", "email": f"{name.lower()}.{i}@{rnd.choice(DOMAINS)}",
            "n": rnd.randrange(10**12), "age": rnd.randint(18, 90), "city": rnd.choice(C.CITIES)}


def main():
    def extra(ap):
        ap.add_argument("--lookups", type=int, default=2000, help="in-process lookups per field")
        ap.add_argument("--cli-runs", type=int, default=10, help="CLI invocations per command")

    args = C.parse_args(__doc__.splitlines()[0], 1_000_000, extra)
    n = args.n
    C.header("find: indexed equality lookups", n)
    import nsl
    from nsl.core.objects import find_sql

    with C.workdir(args.keep) as d:
        db_path = d / "find.db"
        rnd = random.Random(7)
        people = (person(i, rnd) for i in range(1, n + 1))
        db, _ = nsl.init(str(db_path))
        t0 = time.perf_counter()
        saved = 0
        while saved < n:
            chunk = [next(people) for _ in range(min(CHUNK, n - saved))]
            nsl.save(db, "t", chunk, message=f"chunk {saved // CHUNK}")
            saved += len(chunk)
        build = time.perf_counter() - t0
        db.conn.close()
        t0 = time.perf_counter()
        for f in ("email", "n"):
            C.run(C.nsl_cmd() + ["--db", str(db_path), "index", "t", f])
        index_t = time.perf_counter() - t0
        print(f"built: {n:,} rows saved in {build:.1f} s ({n // CHUNK or 1} commits); "
              f"`nsl index` on email and n: {index_t:.1f} s")

        db = nsl.open(str(db_path))
        raw = sqlite3.connect(str(db_path))
        # Values to look up: random existing rows (sampled by id, read back with their stored values).
        ids = [rnd.randint(1, n) for _ in range(args.lookups)]
        sample = {i: raw.execute("SELECT email, n FROM t WHERE id=?", (i,)).fetchone() for i in set(ids)}
        for f in ("email", "n"):
            sql, params = find_sql(db.table("t"), {f: sample[ids[0]][0 if f == "email" else 1]}, None)
            plan = " / ".join(r[3] for r in db.conn.execute("EXPLAIN QUERY PLAN " + sql, params))
            print(f"nsl.find plan on {f}: {plan}")

        rows_out = []
        ratios = {}
        for fi, f in enumerate(("email", "n")):
            values = [sample[i][fi] for i in ids]
            # warm both connections' caches alike
            for v in values[:50]:
                list(nsl.find(db, "t", {f: v}))
                raw.execute(f'SELECT * FROM t WHERE "{f}"=?', (v,)).fetchall()
            t_nsl, t_raw = [], []
            for v in values:
                t0 = time.perf_counter()
                got = list(nsl.find(db, "t", {f: v}))
                t1 = time.perf_counter()
                ref = raw.execute(f'SELECT * FROM t WHERE "{f}"=?', (v,)).fetchall()
                t2 = time.perf_counter()
                if len(got) != len(ref) or not got:
                    raise SystemExit(f"nsl.find {f}={v!r}: {len(got)} objects, sqlite3 {len(ref)} rows")
                t_nsl.append(t1 - t0)
                t_raw.append(t2 - t1)
            med_n, med_r = C.median(t_nsl), C.median(t_raw)
            ratios[f] = (med_n, med_r)
            rows_out.append([f"nsl.find {{{f}: v}}", C.fmt_ms(med_n), C.fmt_ms(C.percentile(t_nsl, 99)),
                             f"{med_n / med_r:.2f}x"])
            rows_out.append([f"sqlite3 WHERE {f}=? (ref)", C.fmt_ms(med_r), C.fmt_ms(C.percentile(t_raw, 99)),
                             "1.00x"])
        raw.close()
        db.conn.close()
        print(f"\nin-process, {args.lookups:,} random lookups per field:")
        C.table(rows_out, ["lookup", "median", "p99", "median vs ref"])

        # CLI wall times
        email = sample[ids[1]][0]
        pred = '{"email": "%s"}' % email
        cli = {
            "nsl find t PRED --json": C.nsl_cmd() + ["--db", str(db_path), "find", "t", pred, "--json"],
            "python -c 'import nsl' (startup)": [sys.executable, "-c", "import nsl, nsl.cli.main"],
        }
        sqlite3_cli = C.tool("sqlite3")
        if sqlite3_cli:
            esc = email.replace("'", "''")
            cli["sqlite3 -json db SELECT (ref)"] = [sqlite3_cli, "-json", str(db_path),
                                                    f"SELECT * FROM t WHERE email='{esc}'"]
        walls = {}
        for label, cmd in cli.items():
            times = []
            for _ in range(args.cli_runs):
                dt, p = C.time_run(cmd)
                times.append(dt)
            walls[label] = times
            if label.startswith("nsl find") and email not in p.stdout.decode():
                raise SystemExit(f"nsl find did not print the object: {p.stdout[:200]!r}")
        print(f"\nCLI, {args.cli_runs} runs each:")
        C.table([[lbl, C.fmt_ms(C.median(t)), C.fmt_ms(min(t))] for lbl, t in walls.items()],
                ["command", "median wall", "best wall"])
        print()
        for f, (med_n, med_r) in ratios.items():
            C.goal(f"nsl.find/sqlite3 ({f}, median)", med_n / med_r, RATIO_GOAL)
            C.goal(f"nsl.find-median ({f})", med_n * 1000, 1.0, unit=" ms")
        nsl_cli = C.median(walls["nsl find t PRED --json"])
        if sqlite3_cli:
            ref_cli = C.median(walls["sqlite3 -json db SELECT (ref)"])
            print(f"ratio nsl-find-cli/sqlite3-cli {nsl_cli / ref_cli:.2f}x (info: includes Python start-up)")
        start = C.median(walls["python -c 'import nsl' (startup)"])
        print(f"ratio nsl-find-cli/python-import-nsl {nsl_cli / start:.2f}x (info)")
        C.goal("nsl-find-cli-wall", nsl_cli, 0.5, less_than=True, unit=" s")
        C.summary()


if __name__ == "__main__":
    main()
