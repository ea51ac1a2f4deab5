"""nsl.verify on 100,000 objects, against the time their save took.

    python bench/verify.py [--n 100000] [--runs 3]

Saves n objects into a fresh database (timed: the reference), then times nsl.verify(db) on it (best
of --runs runs, each on a fresh connection). Goal: verify <= 2.0x the save.
"""
from __future__ import annotations

import _common as C


def main():
    args = C.parse_args(__doc__.splitlines()[0], 100_000,
                        lambda ap: ap.add_argument("--runs", type=int, default=3, help="verify runs"))
    n = args.n
    C.header("verify: recompute every hash of a freshly saved table", n)
    import nsl

    with C.workdir(args.keep) as d:
        db_path = d / "verify.db"
        objs = list(C.gen_objects(n))
        db, _ = nsl.init(str(db_path))
        t_save, res = C.timed(nsl.save, db, "t", objs, message="all")
        assert res.count == n
        db.conn.close()
        times = []
        for _ in range(args.runs):
            db = nsl.open(str(db_path))
            dt, rep = C.timed(nsl.verify, db)
            db.conn.close()
            if not rep.ok:
                raise SystemExit(f"verify found problems on a fresh save: {rep.problems[:5]}")
            times.append(dt)
        t_verify = min(times)
        C.table([
            ["nsl.save (reference)", C.fmt_s(t_save), f"{n / t_save:,.0f}", "1.00x"],
            [f"nsl.verify (best of {args.runs})", C.fmt_s(t_verify), f"{n / t_verify:,.0f}",
             f"{t_verify / t_save:.2f}x"],
        ], ["operation", "time", "objects/s", "vs save"])
        print(f"verify checked {rep.versions:,} versions, {rep.commits} commits, {rep.rows:,} rows")
        print()
        C.goal("verify/save", t_verify / t_save, 2.0)
        C.summary()


if __name__ == "__main__":
    main()
