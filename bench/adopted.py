"""Adopted tables: verify and find on a table nsl did not create, against the same data saved by nsl.

    python bench/adopted.py [--n 20000]

A table made by another tool has typed columns: sqlite-utils (and most schemas) declare
`"id" INTEGER PRIMARY KEY, "name" TEXT, ...`, where nsl creates untyped columns. This script builds
that table with plain sqlite3 (the schema `sqlite-utils insert --pk id` makes), adopts it with
nsl.init, and times nsl.verify and a non-key nsl.find (about 1 row in 20) on it; the reference is the
same objects saved with nsl.save into a fresh database, verified and searched the same way.
Goals: verify and find on the adopted table <= 2x the same on the nsl-made table.

The default n is small on purpose: joins of the user table's key with nsl_cur.key cannot use the
nsl_cur index when the key column has a declared type (SQLite applies the column's affinity to the
untyped nsl_cur.key), which makes them quadratic; see BENCHMARKS.md.
"""
from __future__ import annotations

import sqlite3

import _common as C

TYPED = 'CREATE TABLE t("id" INTEGER PRIMARY KEY, "name" TEXT, "age" INTEGER, "score" REAL, "city" TEXT)'


def main():
    args = C.parse_args(__doc__.splitlines()[0], 20_000)
    n = args.n
    C.header("adopted: verify and find on a typed table adopted by nsl init", n)
    import nsl
    from nsl.core.objects import find_sql

    objs = list(C.gen_objects(n))
    pred = {"city": "Oslo"}
    with C.workdir(args.keep) as d:
        native_path, adopted_path = d / "native.db", d / "adopted.db"
        db, _ = nsl.init(str(native_path))
        t_save, _ = C.timed(nsl.save, db, "t", objs)
        db.conn.close()

        conn = sqlite3.connect(str(adopted_path))
        conn.execute(TYPED)
        conn.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?)",
                         [(o["id"], o["name"], o["age"], o["score"], o["city"]) for o in objs])
        conn.commit()
        conn.close()
        t_adopt, (db, res) = C.timed(nsl.init, str(adopted_path))
        if res.tracked != ["t"]:
            raise SystemExit(f"nsl init did not adopt t: {res.to_dict()}")
        db.conn.close()

        out = {}
        for label, path in (("nsl-made", native_path), ("adopted", adopted_path)):
            db = nsl.open(str(path))
            t_v, rep = C.timed(nsl.verify, db)
            if not rep.ok:
                raise SystemExit(f"{label}: verify found problems: {rep.problems[:5]}")
            t_f, found = C.timed(lambda: list(nsl.find(db, "t", pred)))
            sql, params = find_sql(db.table("t"), pred, None)
            plan = " / ".join(r[3] for r in db.conn.execute("EXPLAIN QUERY PLAN " + sql, params))
            db.conn.close()
            out[label] = (t_v, t_f, len(found), plan)
        if out["adopted"][2] != out["nsl-made"][2]:
            raise SystemExit(f"find found {out['adopted'][2]} adopted objects, {out['nsl-made'][2]} nsl-made ones")

        C.table([
            ["nsl.save (nsl-made table)", C.fmt_s(t_save), ""],
            ["nsl.init (adopt typed table)", C.fmt_s(t_adopt), ""],
            ["nsl.verify, nsl-made (ref)", C.fmt_s(out["nsl-made"][0]), "1.00x"],
            ["nsl.verify, adopted", C.fmt_s(out["adopted"][0]), f"{out['adopted'][0] / out['nsl-made'][0]:.2f}x"],
            [f"nsl.find {pred} nsl-made (ref)", C.fmt_s(out["nsl-made"][1]), "1.00x"],
            [f"nsl.find {pred} adopted", C.fmt_s(out["adopted"][1]), f"{out['adopted'][1] / out['nsl-made'][1]:.2f}x"],
        ], ["operation", "time", "vs nsl-made"])
        print(f"find returned {out['adopted'][2]:,} objects")
        for label in ("nsl-made", "adopted"):
            print(f"find plan, {label}: {out[label][3]}")
        print()
        C.goal("verify-adopted/verify-nsl-made", out["adopted"][0] / out["nsl-made"][0], 2.0)
        C.goal("find-adopted/find-nsl-made", out["adopted"][1] / out["nsl-made"][1], 2.0)
        C.summary()


if __name__ == "__main__":
    main()
