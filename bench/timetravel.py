"""Time travel on 100,000 objects: checkout, back to HEAD, restore + commit, against the first save.

    python bench/timetravel.py [--n 100000] [--runs 3]

Saves n objects (timed, best of --runs fresh databases: the reference), then saves all of them again
with changed values (a second commit), then times nsl.checkout(db, first_commit) and
nsl.checkout(db, "HEAD") (best of --runs round trips), nsl.restore(db, source=first_commit) and the
nsl.commit that records it (best of --runs, each run on a copy of the database as it was before). Each
result is checked against the objects row for row, and the database is verified at the end. Goal:
checkout, back to HEAD and restore each < 1.0x the first save (the commit after a restore is shown too).

Then the same through the command line, each a process of its own as a user runs it: `nsl save t <
first.jsonl` (best of --runs fresh databases: the reference), `nsl save t < second.jsonl`, `nsl checkout
FIRST`, `nsl checkout HEAD` (best of --runs round trips), `nsl restore --source FIRST` and `nsl commit`
(best of --runs, from a copy).
"""
from __future__ import annotations

import shutil
import sqlite3
import time

import _common as C


def user_rows(db_path):
    conn = sqlite3.connect(str(db_path))
    try:
        return conn.execute('SELECT "id", "name", "age", "score", "city" FROM t ORDER BY "id"').fetchall()
    finally:
        conn.close()


def main():
    args = C.parse_args(__doc__.splitlines()[0], 100_000, lambda ap: ap.add_argument(
        "--runs", type=int, default=3, help="first saves and checkout round trips (best is kept)"))
    n = args.n
    C.header("timetravel: checkout / restore of a whole table", n)
    import nsl

    with C.workdir(args.keep) as d:
        db_path = d / "tt.db"
        first = list(C.gen_objects(n, seed=1))
        second = [dict(o, age=o["age"] + 1, score=round(o["score"] / 2, 3), city=o["city"].upper())
                  for o in first]
        # The reference: the best of --runs first saves, each into a fresh database; the last one is kept.
        t_save1 = float("inf")
        for i in range(args.runs):
            C.remove_db(db_path)
            db, _ = nsl.init(str(db_path))
            dt, r1 = C.timed(nsl.save, db, "t", [dict(o) for o in first], message="first")
            t_save1 = min(t_save1, dt)
            if i < args.runs - 1:
                db.conn.close()
        t_save2, r2 = C.timed(nsl.save, db, "t", second, message="second: every object changed")
        assert r1.count == n and r2.count == n, (r1.count, r2.count)
        ref = t_save1
        v1 = [(o["id"], o["name"], o["age"], o["score"], o["city"]) for o in first]
        v2 = [(o["id"], o["name"], o["age"], o["score"], o["city"]) for o in second]

        # Checkouts leave no trace, so they are repeated: best of --runs round trips.
        t_co1 = t_co2 = float("inf")
        for _ in range(args.runs):
            dt, res_co1 = C.timed(nsl.checkout, db, r1.commit)
            t_co1 = min(t_co1, dt)
            if user_rows(db_path) != v1:
                raise SystemExit("checkout first: the table does not show the first save")
            dt, res_co2 = C.timed(nsl.checkout, db, "HEAD")
            t_co2 = min(t_co2, dt)
            if user_rows(db_path) != v2:
                raise SystemExit("checkout HEAD: the table does not show the second save")
        # restore and the commit after it change the database: each of --runs starts from a copy.
        db.conn.close()
        backup = d / "tt-before-restore.db"
        shutil.copy(db_path, backup)
        t_rs = t_cm = float("inf")
        for _ in range(args.runs):
            C.remove_db(db_path)
            shutil.copy(backup, db_path)
            db = nsl.open(str(db_path))
            dt, res_rs = C.timed(nsl.restore, db, source=r1.commit)
            t_rs = min(t_rs, dt)
            if user_rows(db_path) != v1:
                raise SystemExit("restore: the table does not show the first save")
            dt, res_cm = C.timed(nsl.commit, db, message="restore first")
            t_cm = min(t_cm, dt)
            if res_cm.count != n:
                raise SystemExit(f"commit after restore recorded {res_cm.count} objects, expected {n}")
            db.conn.close()
        db = nsl.open(str(db_path))
        t0 = time.perf_counter()
        rep = nsl.verify(db)
        t_vf = time.perf_counter() - t0
        if not rep.ok:
            raise SystemExit(f"verify after restore+commit: {rep.problems[:5]}")
        db.conn.close()

        rows = [
            [f"nsl.save (first, best of {args.runs}, ref)", C.fmt_s(t_save1), "1.00x", n],
            ["nsl.save (second, all updated)", C.fmt_s(t_save2), f"{t_save2 / ref:.2f}x", r2.count],
            [f"nsl.checkout(first_commit) best of {args.runs}", C.fmt_s(t_co1), f"{t_co1 / ref:.2f}x", res_co1.changed],
            [f'nsl.checkout("HEAD") best of {args.runs}', C.fmt_s(t_co2), f"{t_co2 / ref:.2f}x", res_co2.changed],
            [f"nsl.restore(source=first_commit) best of {args.runs}", C.fmt_s(t_rs), f"{t_rs / ref:.2f}x",
             res_rs.changed],
            [f"nsl.commit (records the restore) best of {args.runs}", C.fmt_s(t_cm), f"{t_cm / ref:.2f}x",
             res_cm.count],
            ["restore + commit", C.fmt_s(t_rs + t_cm), f"{(t_rs + t_cm) / ref:.2f}x", ""],
            ["(nsl.verify afterwards, info)", C.fmt_s(t_vf), f"{t_vf / ref:.2f}x", rep.versions],
        ]
        C.table(rows, ["operation", "time", "vs first save", "objects"])
        print()
        C.goal("checkout-first/save", t_co1 / ref, 1.0, less_than=True)
        C.goal("checkout-HEAD/save", t_co2 / ref, 1.0, less_than=True)
        C.goal("restore/save", t_rs / ref, 1.0, less_than=True)
        print(f"ratio commit-after-restore/save {t_cm / ref:.2f}x (info)")
        print()
        cli(d, first, second, v1, v2, args.runs)
        C.summary()


def cli(d, first, second, v1, v2, runs):
    """The same operations as commands, each a process (Python's start-up included on both sides)."""
    nsl = C.nsl_cmd()
    db_path = d / "cli.db"
    f1, f2 = d / "first.jsonl", d / "second.jsonl"
    C.write_jsonl(f1, first)
    C.write_jsonl(f2, second)
    t_save = float("inf")
    for _ in range(runs):
        C.remove_db(db_path)
        C.run(nsl + ["--db", str(db_path), "init"])
        dt, p = C.time_run(nsl + ["--db", str(db_path), "save", "t", "-m", "first"], stdin_path=f1)
        t_save = min(t_save, dt)
    c1 = p.stdout.decode().strip()
    C.run(nsl + ["--db", str(db_path), "save", "t", "-m", "second"], stdin_path=f2)
    t_co1 = t_co2 = float("inf")
    for _ in range(runs):
        t_co1 = min(t_co1, C.time_run(nsl + ["--db", str(db_path), "checkout", c1])[0])
        if user_rows(db_path) != v1:
            raise SystemExit("nsl checkout FIRST: the table does not show the first save")
        t_co2 = min(t_co2, C.time_run(nsl + ["--db", str(db_path), "checkout", "HEAD"])[0])
        if user_rows(db_path) != v2:
            raise SystemExit("nsl checkout HEAD: the table does not show the second save")
    backup = d / "cli-before-restore.db"
    shutil.copy(db_path, backup)   # (nsl closed it: no WAL is left beside it)
    t_rs = t_cm = float("inf")
    for _ in range(runs):
        C.remove_db(db_path)
        shutil.copy(backup, db_path)
        t_rs = min(t_rs, C.time_run(nsl + ["--db", str(db_path), "restore", "--source", c1])[0])
        if user_rows(db_path) != v1:
            raise SystemExit("nsl restore: the table does not show the first save")
        t_cm = min(t_cm, C.time_run(nsl + ["--db", str(db_path), "commit", "-m", "restore first"])[0])
        C.run(nsl + ["--db", str(db_path), "verify"])
    ref = t_save
    C.table([
        [f"nsl save t < first.jsonl (best of {runs}, ref)", C.fmt_s(t_save), "1.00x"],
        [f"nsl checkout FIRST (best of {runs})", C.fmt_s(t_co1), f"{t_co1 / ref:.2f}x"],
        [f"nsl checkout HEAD (best of {runs})", C.fmt_s(t_co2), f"{t_co2 / ref:.2f}x"],
        [f"nsl restore --source FIRST (best of {runs})", C.fmt_s(t_rs), f"{t_rs / ref:.2f}x"],
        [f"nsl commit (records the restore; best of {runs}, info)", C.fmt_s(t_cm), f"{t_cm / ref:.2f}x"],
    ], ["command", "time", "vs first save"])
    print()
    C.goal("cli: checkout-first/save", t_co1 / ref, 1.0, less_than=True)
    C.goal("cli: checkout-HEAD/save", t_co2 / ref, 1.0, less_than=True)
    C.goal("cli: restore/save", t_rs / ref, 1.0, less_than=True)


if __name__ == "__main__":
    main()
