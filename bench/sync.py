"""What a sync costs when little is new: round trips, bytes each way and time, against history size.

    python bench/sync.py [--n 100000] [--small 1000] [--new 10] [--runs 7]

Two remotes are served by `nsl serve` on 127.0.0.1: one with --n objects of history (in commits of
1,000), one with --small. Each is cloned over HTTP, then:

  nothing new   `sync` of the clone against its remote: goal one round trip, under 1 KB each way
                (whatever the size of the history)
  incremental   --new objects saved on the remote, then `pull` (the library's client over HTTP), --runs
                times: goal at most 2 round trips and under 64 KB in all, and the median time from the
                big remote at most 2x the median time from the small one (the cost follows what is new)
"""
from __future__ import annotations

import subprocess
import time

import _common as C


def serve(db_path):
    port = C.free_port()
    p = subprocess.Popen(C.nsl_cmd() + ["--db", str(db_path), "serve", "--port", str(port)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    C.wait_port(port, p)
    return p, f"http://127.0.0.1:{port}"


def make_remote(path, n: int):
    import nsl

    db, _ = nsl.init(str(path))
    objs = list(C.gen_objects(n))
    for c in range(0, n, 1000):
        nsl.save(db, "t", objs[c:c + 1000], message=f"part {c // 1000}")
    db.close()


def main():
    args = C.parse_args(__doc__.splitlines()[0], 100_000, lambda ap: (
        ap.add_argument("--small", type=int, default=1000, help="objects of the small remote"),
        ap.add_argument("--new", type=int, default=10, help="new objects per incremental pull"),
        ap.add_argument("--runs", type=int, default=7, help="incremental pulls from each remote")))
    C.header("sync: nothing new, and a few new objects, against history size", args.n)
    import nsl
    from nsl.sync import client

    with C.workdir(args.keep) as d:
        remotes = {}
        procs = []
        try:
            for label, n in (("big", args.n), ("small", args.small)):
                src = d / f"{label}.db"
                make_remote(src, n)
                p, url = serve(src)
                procs.append(p)
                C.run(C.nsl_cmd() + ["clone", url, str(d / f"{label}-clone.db"), "-q"])
                remotes[label] = (src, url, nsl.open(str(d / f"{label}-clone.db")), n)

            rows = []
            src, url, mine, n = remotes["big"]
            client.run(mine, url)      # the first sync indexes the clone's artifacts
            s = client.run(mine, url)
            rows.append([f"nothing new ({n:,} objects of history)", s.rounds, s.bytes_sent, s.bytes_received, "-"])
            nothing = s

            times: dict[str, list] = {}
            worst: dict[str, tuple] = {}
            counter = 0
            for r in range(args.runs):
                for label in ("big", "small"):  # interleaved, so both see the same machine load
                    src, url, mine, n = remotes[label]
                    remote = nsl.open(str(src))
                    nsl.save(remote, "t", [{"id": f"new-{counter}-{i}", "name": "new", "n": i} for i in range(args.new)])
                    remote.close()
                    counter += 1
                    t0 = time.perf_counter()
                    s = client.run(mine, url, push=False)
                    dt = time.perf_counter() - t0
                    assert s.artifacts_received >= args.new + 1, s.to_dict()  # (and a cluster, now and then)
                    times.setdefault(label, []).append(dt)
                    w = worst.get(label, (0, 0))
                    worst[label] = (max(w[0], s.rounds), max(w[1], s.bytes_sent + s.bytes_received))
            for label in ("big", "small"):
                n = remotes[label][3]
                rows.append([f"pull {args.new} new ({n:,} of history), worst of {args.runs}", worst[label][0],
                             "", worst[label][1], C.fmt_ms(C.median(times[label])) + " median"])
            for _, _, mine, _ in remotes.values():
                rep = nsl.verify(mine)
                if not rep.ok:
                    raise SystemExit(f"verify failed on a clone: {rep.problems[:5]}")
                mine.close()
        finally:
            C.stop_all(procs)
        C.table(rows, ["case", "round trips", "bytes sent", "bytes received (or both)", "time"])
        print()
        C.goal("nothing-new-round-trips", nothing.rounds, 1, unit=" rt")
        C.goal("nothing-new-bytes-sent", nothing.bytes_sent, 1024, less_than=True, unit=" B")
        C.goal("nothing-new-bytes-received", nothing.bytes_received, 1024, less_than=True, unit=" B")
        C.goal("incremental-round-trips", worst["big"][0], 2, unit=" rt")
        C.goal("incremental-bytes", worst["big"][1], 64 * 1024, less_than=True, unit=" B")
        C.goal("incremental-time-big/small", C.median(times["big"]) / C.median(times["small"]), 2.0)
        C.summary()


if __name__ == "__main__":
    main()
