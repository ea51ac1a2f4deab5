"""nsl clone over loopback HTTP against fossil clone, artifacts per second, measured in one script.

    python bench/clone.py [--n 100000] [--per-commit 1000] [--runs 3]

The nsl database holds n objects of 5 fields saved in commits of --per-commit objects (n version
artifacts and n / per-commit commits; the clone also carries the clusters the server makes). The Fossil
repository (Debian's fossil, made with `fossil import --git`) holds the same number of artifacts: n files
of the same JSON text in n / per-commit check-ins. Each is served on 127.0.0.1 as a subprocess
(`nsl serve`, `fossil server`), and each clone is a fresh CLI process into a new file, the two taking
turns; best of --runs, after one nsl clone that warms the server up (the first clone of a history makes
the server index and cluster it, once).
Goal: nsl's artifacts/s at least 1.0x Fossil's.
"""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess

import _common as C


def make_fossil(d, objs: list[dict], per: int) -> tuple[str, int]:
    stream = d / "import.fi"
    mark = 1
    with open(stream, "wb") as f:
        for c in range(0, len(objs), per):
            marks = []
            for o in objs[c:c + per]:
                data = json.dumps(o).encode() + b"\n"
                f.write(b"blob\nmark :%d\ndata %d\n" % (mark, len(data)) + data + b"\n")
                marks.append((mark, o["id"]))
                mark += 1
            msg = b"commit %d" % c
            f.write(b"commit refs/heads/trunk\nmark :%d\ncommitter A <a@example.org> %d +0000\ndata %d\n%s\n"
                    % (mark, 1700000000 + c, len(msg), msg))
            mark += 1
            for m, i in marks:
                f.write(b"M 100644 :%d objects/%d.json\n" % (m, i))
            f.write(b"\n")
    repo = d / "src.fossil"
    C.run(["fossil", "import", "--git", str(repo)], stdin_path=stream, env=_fossil_env(d))
    n = sqlite3.connect(repo).execute("SELECT count(*) FROM blob").fetchone()[0]
    return str(repo), n


def _fossil_env(d):
    return {**os.environ, "USER": "bench", "HOME": str(d)}


def main():
    args = C.parse_args(__doc__.splitlines()[0], 100_000, lambda ap: (
        ap.add_argument("--per-commit", type=int, default=1000, help="objects per commit"),
        ap.add_argument("--runs", type=int, default=3, help="clones of each")))
    n, per = args.n, args.per_commit
    C.header("clone: nsl clone vs fossil clone over loopback HTTP", n)
    fossil = C.tool("fossil")
    import nsl

    with C.workdir(args.keep) as d:
        objs = list(C.gen_objects(n))
        src = d / "src.db"
        db, _ = nsl.init(str(src))
        for c in range(0, n, per):
            nsl.save(db, "t", objs[c:c + per], message=f"part {c // per}")
        db.close()
        procs = []
        rows = []
        try:
            nport = C.free_port()
            p = subprocess.Popen(C.nsl_cmd() + ["--db", str(src), "serve", "--port", str(nport)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            procs.append(p)
            C.wait_port(nport, p)
            # The first clone makes the server index and cluster its history (once, then kept): warm up.
            t_first, _ = C.time_run(C.nsl_cmd() + ["clone", f"http://127.0.0.1:{nport}", str(d / "warm.db"), "-q"])
            if fossil:
                repo, _ = make_fossil(d, objs, per)
                fport = C.free_port()
                fp = subprocess.Popen([fossil, "server", "--port", str(fport), "--localhost", repo],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_fossil_env(d))
                procs.append(fp)
                C.wait_port(fport, fp)
            nsl_times, f_times = [], []
            for r in range(args.runs):  # interleaved, so both see the same machine load
                dst = d / f"nsl-clone-{r}.db"
                dt, _ = C.time_run(C.nsl_cmd() + ["clone", f"http://127.0.0.1:{nport}", str(dst), "-q"])
                nsl_times.append(dt)
                if fossil:
                    dst = d / f"fossil-clone-{r}.fossil"
                    dt, _ = C.time_run([fossil, "clone", f"http://127.0.0.1:{fport}/", str(dst)], env=_fossil_env(d))
                    f_times.append(dt)
            con = sqlite3.connect(d / "nsl-clone-0.db")
            nsl_artifacts = (con.execute("SELECT count(DISTINCT digest) FROM nsl_version WHERE digest IS NOT NULL")
                             .fetchone()[0] + con.execute("SELECT count(*) FROM nsl_commit").fetchone()[0]
                             + con.execute("SELECT count(*) FROM nsl_cluster").fetchone()[0])
            con.close()
            t_nsl = min(nsl_times)
            rows.append(["nsl clone (CLI, http)", nsl_artifacts, C.fmt_s(t_nsl), f"{nsl_artifacts / t_nsl:,.0f}"])
            rows.append(["(nsl: the first clone of this history, once)", nsl_artifacts, C.fmt_s(t_first),
                         f"{nsl_artifacts / t_first:,.0f}"])
            if fossil:
                t_f = min(f_times)
                got = sqlite3.connect(d / "fossil-clone-0.fossil").execute("SELECT count(*) FROM blob").fetchone()[0]
                rows.append(["fossil clone (http)", got, C.fmt_s(t_f), f"{got / t_f:,.0f}"])
        finally:
            C.stop_all(procs)
        C.table(rows, ["contender", "artifacts", f"best of {args.runs}", "artifacts/s"])
        print()
        if fossil:
            ratio = (nsl_artifacts / t_nsl) / (got / t_f)
            C.goal("fossil-rate/nsl-rate", 1 / ratio, 1.0)
            print(f"(nsl clones {ratio:.2f}x as many artifacts per second as fossil)")
        else:
            print("fossil is not installed (apt-get install fossil): no reference")
        C.summary()


if __name__ == "__main__":
    main()
