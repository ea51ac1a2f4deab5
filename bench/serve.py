"""`nsl serve` speed: GET one object by key, against Datasette and a bare waitress + sqlite3 app.

    python bench/serve.py [--n 100000] [--seconds 10] [--rounds 5] [--warmup 2] [--clients 8]
                          [--threads 4] [--gen auto|wrk|python] [--write-seconds 5] [--batch 100] [--keep]

One nsl database of N objects (table t, text keys "k1".."kN", saved with the nsl CLI) is served, each
server a subprocess on 127.0.0.1, by:

  (a) Datasette: `datasette serve DB --setting num_sql_threads THREADS`, in its default read-only mode
      (mode=ro) and with -i (immutable), answering `/DB/t/KEY.json`;
  (b) a bare waitress + sqlite3 WSGI app (bench/_bare_app.py, THREADS waitress threads), the stack's
      ceiling: `/api/v1/tables/t/objects/KEY` -> the row as a JSON object;
  (c) `nsl --db DB serve --port 0 --threads THREADS`: `GET /api/v1/tables/t/objects/KEY`.

Each server answers a sample key first (checked against the row). Then CLIENTS keep-alive clients ask
for random existing keys: WARMUP seconds per server unrecorded, then ROUNDS rounds in which each server
in turn (the order rotating) gets SECONDS/ROUNDS seconds, so a change in the machine's background load
hits all of them alike. The load generator is wrk when installed (CLIENTS connections; its latency
histogram is pooled over the rounds), else CLIENTS Python threads each with its own `requests.Session`.
Reported: requests/s, p50 and p99 latency (client side), errors (any status but 200, or socket errors).

Then, against nsl alone (info): single-object `POST /api/v1/tables/t/objects` saves of new objects (each
its own commit) and BATCH-object array POSTs (one commit each), from CLIENTS Python threads (a client
that waits for every answer, so the acknowledged saves can be counted): requests/s and objects/s.
Afterwards the table must hold exactly the acknowledged saves, and `nsl verify` must pass.

Why text keys: Datasette binds the key from its URL as text, and nsl's key column is untyped (no
affinity), so an integer key 5 would not match Datasette's '5'. nsl finds text and integer keys alike.
"""
from __future__ import annotations

import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import orjson
import requests

import _common
from _common import ROOT, gen_objects, header, nsl_cmd, run, table, tool, workdir, write_jsonl

HERE = Path(__file__).resolve().parent
TABLE = "t"


def extra_args(ap):
    ap.add_argument("--seconds", type=float, default=10.0, help="measured seconds per server (default 10)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds the measured seconds are split into (default 5)")
    ap.add_argument("--warmup", type=float, default=2.0, help="unrecorded seconds per server first (default 2)")
    ap.add_argument("--clients", type=int, default=8, help="concurrent keep-alive clients (default 8)")
    ap.add_argument("--threads", type=int, default=4,
                    help="server threads: nsl serve --threads, the bare app's waitress threads, Datasette's "
                         "num_sql_threads (default 4, nsl serve's default)")
    ap.add_argument("--gen", choices=["auto", "wrk", "python"], default="auto",
                    help="GET load generator; auto (default): wrk when installed, else Python threads")
    ap.add_argument("--no-immutable", action="store_true", help="skip Datasette -i (immutable)")
    ap.add_argument("--write-seconds", type=float, default=5.0, help="measured seconds per write test (default 5)")
    ap.add_argument("--batch", type=int, default=100, help="objects per batch POST (default 100)")


def goal_at_least(label: str, value: float, limit: float) -> bool:
    """A `ratio LABEL VALUE goal >= LIMIT PASS/MISS` line (the _common helper has only <= and <)."""
    ok = value >= limit
    _common.RESULTS.append(ok)
    print(f"ratio {label} {value:.2f}x goal >= {limit:g}x {'PASS' if ok else 'MISS'}")
    return ok


# ---- servers ------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One server subprocess, in its own session (a Ctrl-C reaches this script, which stops it)."""

    def __init__(self, name: str, cmd: list[str], work: Path, *, url: str | None = None, ready_path: str = "/"):
        self.name, self.cmd, self.url, self.ready_path = name, cmd, url, ready_path
        slug = name.replace(" ", "").replace("-", "")
        self.out_path, self.err_path = work / f"{slug}.out", work / f"{slug}.err"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> "Server":
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                         start_new_session=True, cwd=ROOT)
        LIVE.append(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.fail(f"exited with {self.proc.returncode} before serving")
            if self.url is None:  # it prints "serving http://HOST:PORT/"
                for line in self.out_path.read_text(errors="replace").splitlines():
                    if line.startswith("serving http"):
                        self.url = line.split()[1].rstrip("/")
            if self.url is not None:
                try:
                    requests.get(self.url + self.ready_path, timeout=2)
                    return self
                except requests.RequestException:
                    pass
            time.sleep(0.05)
        self.fail(f"not serving after {timeout:g} s")

    def fail(self, why: str):
        err = self.err_path.read_text(errors="replace")[-2000:] if self.err_path.exists() else ""
        self.stop()
        raise SystemExit(f"{self.name}: {why}\ncommand: {' '.join(map(str, self.cmd))}\n{err}")

    def stop(self):
        p = self.proc
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        if self in LIVE:
            LIVE.remove(self)


LIVE: list[Server] = []


def stop_all():
    for s in list(LIVE):
        try:
            s.stop()
        except Exception as e:  # noqa: BLE001  (stop the others whatever happens)
            print(f"(could not stop {s.name}: {e})", file=sys.stderr)


# ---- results ------------------------------------------------------------------------------------

class Result:
    """Pooled over rounds: good answers, errors, measured seconds, a latency histogram (microseconds)."""

    def __init__(self, name: str):
        self.name = name
        self.hist: Counter = Counter()
        self.ok = 0
        self.errors = 0
        self.seconds = 0.0
        self.acknowledged = 0  # good answers, warm-up included (to count the saves afterwards)
        self.cpu = None         # the server process's CPU seconds (user + system) while measured
        self.objects_per_request = 1
        self.first_error: str | None = None

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def object_rate(self) -> float:
        return self.rate * self.objects_per_request

    def pct(self, q: float) -> float:
        """The q-th percentile latency in seconds."""
        total = sum(self.hist.values())
        if not total:
            return float("nan")
        rank, seen = max(1, round(q / 100 * total)), 0
        for us in sorted(self.hist):
            seen += self.hist[us]
            if seen >= rank:
                return us / 1e6
        return max(self.hist) / 1e6

    def add(self, other: "Result"):
        self.hist.update(other.hist)
        self.ok += other.ok
        self.errors += other.errors
        self.seconds += other.seconds
        self.acknowledged += other.acknowledged
        if other.cpu is not None:
            self.cpu = (self.cpu or 0.0) + other.cpu
        self.first_error = self.first_error or other.first_error


    def cpu_per_request(self) -> str:
        return f"{self.cpu / self.ok * 1e6:.0f} us" if self.cpu is not None and self.ok else "n/a"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


# ---- load generators ----------------------------------------------------------------------------

def py_load(name: str, make_request, *, clients: int, warmup: float, seconds: float, expect: int) -> Result:
    """`clients` threads, each with its own keep-alive Session, calling make_request(session, rnd, idx, i)
    in a loop. The requests that start within the measured window count, latency included."""
    res = Result(name)
    lock = threading.Lock()
    ready = threading.Barrier(clients + 1)
    window = {}

    def client(idx: int):
        rnd = random.Random(random.getrandbits(32) ^ idx)
        hist, ok, err, acked, first_err = Counter(), 0, 0, 0, None
        with requests.Session() as session:
            ready.wait()
            t_measure, t_end = window["measure"], window["end"]
            i = 0
            while True:
                t0 = time.perf_counter()
                if t0 >= t_end:
                    break
                try:
                    r = make_request(session, rnd, idx, i)
                    good = r.status_code == expect
                    if not good and first_err is None:
                        first_err = f"HTTP {r.status_code}: {r.text[:300]}"
                except requests.RequestException as e:
                    good = False
                    if first_err is None:
                        first_err = repr(e)[:300]
                t1 = time.perf_counter()
                i += 1
                acked += good
                if t0 >= t_measure:
                    hist[round((t1 - t0) * 1e6)] += 1
                    ok += good
                    err += not good
        with lock:
            res.hist.update(hist)
            res.ok += ok
            res.errors += err
            res.acknowledged += acked
            res.first_error = res.first_error or first_err

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    now = time.perf_counter()
    window["measure"], window["end"] = now + warmup, now + warmup + seconds
    ready.wait()
    for t in threads:
        while t.is_alive():
            t.join(0.5)
    res.seconds = seconds
    return res


WRK_LUA = r'''
-- bench/serve.py: GET PREFIX .. "k" .. random(1, N) .. SUFFIX; prints a summary and the latency histogram.
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end
function init(args)
  prefix, suffix, n = args[1], args[2], tonumber(args[3])
  math.randomseed(tonumber(args[4]) + tid)
end
function request()
  return wrk.format("GET", prefix .. "k" .. math.random(1, n) .. suffix)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK %d %d %d %d %d %d %d\n", summary.requests, summary.duration,
    e.status, e.connect, e.read, e.write, e.timeout))
  local parts = {}
  for i = 1, #latency do
    local v, c = latency(i)
    parts[#parts + 1] = string.format("%d:%d", v, c)
  end
  io.write("LAT " .. table.concat(parts, ",") .. "\n")
end
'''


def wrk_load(name: str, origin: str, prefix: str, suffix: str, n: int, seconds: float, clients: int,
             script: Path) -> Result:
    cmd = [tool("wrk"), "-t", str(min(clients, os.cpu_count() or 1)), "-c", str(clients), "-d",
           f"{max(1, round(seconds))}s", "--timeout", "30s", "-s", str(script), origin,
           "--", prefix, suffix, str(n), str(random.getrandbits(30))]
    out = run(cmd).stdout.decode(errors="replace")
    res = Result(name)
    for line in out.splitlines():
        if line.startswith("WRK "):
            reqs, dur_us, status, *sock = (int(x) for x in line.split()[1:])
            res.errors = status + sum(sock)
            res.ok = res.acknowledged = reqs - status
            res.seconds = dur_us / 1e6
        elif line.startswith("LAT "):
            for pair in filter(None, line[4:].split(",")):
                v, c = pair.split(":")
                res.hist[int(v)] += int(c)
    if not res.seconds:
        raise SystemExit(f"wrk printed no summary:\n{out}")
    if res.errors:
        res.first_error = f"wrk: {res.errors} errors (non-2xx/3xx answers or socket errors)"
    return res


class GetTarget:
    """One server under the GET load: ORIGIN + PREFIX + "k<random>" + SUFFIX."""

    def __init__(self, label: str, server: Server, prefix: str, suffix: str = ""):
        self.label, self.server, self.prefix, self.suffix = label, server, prefix, suffix
        self.result = Result(label)

    def measure(self, seconds: float, args, script: Path, record: bool = True):
        origin = self.server.url
        cpu0 = cpu_seconds(self.server.proc.pid)
        if args.gen == "wrk":
            r = wrk_load(self.label, origin, self.prefix, self.suffix, args.n, seconds, args.clients, script)
        else:
            def get(session, rnd, idx, i):
                return session.get(f"{origin}{self.prefix}k{rnd.randint(1, args.n)}{self.suffix}", timeout=30)
            r = py_load(self.label, get, clients=args.clients, warmup=0, seconds=seconds, expect=200)
        cpu1 = cpu_seconds(self.server.proc.pid)
        if cpu0 is not None and cpu1 is not None:
            r.cpu = cpu1 - cpu0
        if record:
            self.result.add(r)
        return r


def check_row(name: str, got: dict, want: dict):
    if got != want:
        raise SystemExit(f"{name} answered {got!r} for key {want['id']!r}, expected {want!r}")


# ---- main ---------------------------------------------------------------------------------------

def main():
    args = _common.parse_args(__doc__.splitlines()[0], 100_000, extra_args)
    n = args.n
    if args.gen == "auto":
        args.gen = "wrk" if tool("wrk") else "python"
    elif args.gen == "wrk" and not tool("wrk"):
        raise SystemExit("wrk is not installed (apt-get install -y wrk); or use --gen python")
    datasette = tool("datasette")
    if datasette is None:
        raise SystemExit("datasette is not installed: pip install -e '.[bench]'")
    header(f"serve: GET /api/v1/tables/t/objects/KEY, random keys, {args.clients} keep-alive clients, "
           f"{args.threads} server threads", n)
    ds_version = run([datasette, "--version"]).stdout.decode().strip()
    if args.gen == "wrk":
        wrk_version = run([tool("wrk"), "--version"], check=False).stdout.decode(errors="replace").split("[")[0]
        gen = f"{wrk_version.strip()}, {args.clients} connections on {min(args.clients, os.cpu_count() or 1)} threads"
    else:
        gen = f"{args.clients} Python threads, each its own requests.Session"
    print(f"{ds_version} | requests {requests.__version__} | GET load: {gen}; {args.warmup:g} s warm-up, then "
          f"{args.rounds} rounds of {args.seconds / args.rounds:g} s per server")

    with workdir(args.keep) as work:
        db = work / "nsl.db"
        src = work / "objects.jsonl"
        script = work / "get.lua"
        script.write_text(WRK_LUA)

        def objs():
            for o in gen_objects(n):
                o["id"] = f"k{o['id']}"
                yield o

        write_jsonl(src, objs())
        nsl = nsl_cmd()
        t0 = time.perf_counter()
        run([*nsl, "--db", str(db), "init"])
        run([*nsl, "--db", str(db), "save", TABLE], stdin_path=src)
        print(f"data: {n:,} objects saved with `nsl save` in {time.perf_counter() - t0:.1f} s "
              f"({db.stat().st_size / 1e6:.1f} MB)")
        sample_key = f"k{(n + 1) // 2}"
        c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        cur = c.execute(f'SELECT * FROM "{TABLE}" WHERE "id" = ?', (sample_key,))
        want = dict(zip([d[0] for d in cur.description], cur.fetchone()))
        c.close()

        api = f"/api/v1/tables/{TABLE}/objects/"
        try:
            # All GET servers up at once (idle ones cost next to nothing), each checked on a sample key.
            targets: list[GetTarget] = []
            for label, flags in [("datasette", [])] + ([] if args.no_immutable else [("datasette -i", ["-i"])]):
                port = free_port()
                s = Server(label, [datasette, "serve", *flags, str(db), "-h", "127.0.0.1", "-p", str(port),
                                   "--setting", "num_sql_threads", str(args.threads)],
                           work, url=f"http://127.0.0.1:{port}", ready_path="/-/versions.json").start()
                targets.append(GetTarget(label, s, f"/{db.stem}/{TABLE}/", ".json"))
                r = requests.get(f"{s.url}/{db.stem}/{TABLE}/{sample_key}.json", timeout=10).json()
                check_row(label, dict(zip(r["columns"], r["rows"][0])), want)
            s = Server("bare", [sys.executable, str(HERE / "_bare_app.py"), str(db), "--threads", str(args.threads)],
                       work).start()
            targets.append(GetTarget("bare", s, api))
            check_row("bare app", requests.get(f"{s.url}{api}{sample_key}", timeout=10).json(), want)
            nsl_server = Server("nsl", [*nsl, "--db", str(db), "serve", "--port", "0", "--threads", str(args.threads)],
                                work, ready_path="/api/v1/head").start()
            targets.append(GetTarget("nsl", nsl_server, api))
            check_row("nsl serve", requests.get(f"{nsl_server.url}{api}{sample_key}", timeout=10).json(), want)

            for t in targets:
                t.measure(args.warmup, args, script, record=False)
            per_round = args.seconds / args.rounds
            round_ratios = []
            for rnd in range(args.rounds):
                order = targets[rnd % len(targets):] + targets[:rnd % len(targets)]
                line, rates = [], {}
                for t in order:
                    r = t.measure(per_round, args, script)
                    rates[t.label] = r.rate
                    line.append(f"{t.label} {r.rate:,.0f}")
                round_ratios.append(rates["nsl"] / rates["bare"])
                print(f"  round {rnd + 1}: " + ", ".join(line) + f" req/s; nsl/bare {round_ratios[-1]:.2f}",
                      flush=True)
            for t in targets:
                if t.server is not nsl_server:
                    t.server.stop()

            # Writes (info): single-object saves, then batches; each request is one commit.
            base = f"{nsl_server.url}{api}".rstrip("/")
            json_headers = {"Content-Type": "application/json"}

            def post_one(session, rnd, idx, i):
                o = {"id": f"w{idx}-{i}", "name": f"writer {idx}", "age": rnd.randint(18, 90),
                     "score": round(rnd.random() * 100, 3), "city": "Oslo"}
                return session.post(base, data=orjson.dumps(o), headers=json_headers, timeout=60)

            def post_batch(session, rnd, idx, i):
                objs = [{"id": f"b{idx}-{i}-{j}", "name": f"batch {idx}", "age": rnd.randint(18, 90),
                         "score": round(rnd.random() * 100, 3), "city": "Bergen"} for j in range(args.batch)]
                return session.post(base, data=orjson.dumps(objs), headers=json_headers, timeout=60)

            w1 = py_load("POST 1 object", post_one, clients=args.clients, warmup=1.0, seconds=args.write_seconds,
                         expect=201)
            wb = py_load(f"POST {args.batch} objects", post_batch, clients=args.clients, warmup=1.0,
                         seconds=args.write_seconds, expect=201)
            wb.objects_per_request = args.batch
            nsl_server.stop()
        finally:
            stop_all()

        # Exactly the acknowledged saves (warm-ups included) are there, and the history verifies.
        c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        rows = c.execute(f'SELECT count(*) FROM "{TABLE}"').fetchone()[0]
        singles = c.execute(f'SELECT count(*) FROM "{TABLE}" WHERE "id" LIKE \'w%\'').fetchone()[0]
        batched = c.execute(f'SELECT count(*) FROM "{TABLE}" WHERE "id" LIKE \'b%\'').fetchone()[0]
        c.close()
        t0 = time.perf_counter()
        ver = run([*nsl, "--db", str(db), "verify"], check=False)
        verify_s = time.perf_counter() - t0

        res = {t.label: t.result for t in targets}
        ds_best = max((res[k] for k in ("datasette", "datasette -i") if k in res), key=lambda r: r.rate)
        bare, nslr = res["bare"], res["nsl"]
        labels = {"datasette": "(a) Datasette /DB/t/KEY.json (mode=ro)",
                  "datasette -i": "(a) Datasette -i (immutable)",
                  "bare": f"(b) bare waitress+sqlite3 app, {args.threads} threads",
                  "nsl": f"(c) nsl serve --threads {args.threads}"}
        print()
        print(f"GET one object: {args.clients} clients, {args.seconds:g} s per server ({args.gen})")
        table([[labels[k], f"{r.ok:,}", f"{r.rate:,.0f}", ms(r.pct(50)), ms(r.pct(99)), str(r.errors),
                r.cpu_per_request(), f"{r.rate / ds_best.rate:.2f}x", f"{r.rate / bare.rate:.2f}x"]
               for k, r in res.items()],
              ["server", "requests", "req/s", "p50", "p99", "errors", "server CPU/req", "vs best Datasette",
               "vs bare"])
        print("(server CPU/req: the server process's user + system CPU time while measured, per answer; "
              "the load generator's is not in it)")
        for r in res.values():
            if r.first_error:
                print(f"  {r.name}: first error: {r.first_error}")

        print()
        print(f"writes to nsl serve: {args.clients} Python clients, {args.write_seconds:g} s each, each request one commit")
        table([[r.name, f"{r.ok:,}", f"{r.rate:,.1f}", f"{r.object_rate:,.0f}", ms(r.pct(50)), ms(r.pct(99)),
                str(r.errors)] for r in (w1, wb)],
              ["request", "saved (201)", "req/s", "objects/s", "p50", "p99", "errors"])
        for r in (w1, wb):
            if r.first_error:
                print(f"  {r.name}: first error: {r.first_error}")
        counts_ok = (singles == w1.acknowledged and batched == wb.acknowledged * args.batch
                     and rows == n + singles + batched)
        print(f"afterwards: {rows:,} rows = {n:,} + {singles:,} single saves (acknowledged {w1.acknowledged:,}) + "
              f"{batched:,} batched (acknowledged {wb.acknowledged * args.batch:,}), warm-ups included: "
              f"{'as expected' if counts_ok else 'MISMATCH'}; nsl verify "
              f"{'ok' if ver.returncode == 0 else 'FAILED'} in {verify_s:.1f} s")
        if ver.returncode != 0:
            print(ver.stdout.decode(errors="replace")[-1500:], ver.stderr.decode(errors="replace")[-1500:])

        print()
        print(f"info get.p99 nsl {ms(nslr.pct(99))} | bare {ms(bare.pct(99))} | datasette {ms(ds_best.pct(99))}")
        print(f"info get.nsl/bare per round: {min(round_ratios):.2f}x .. {max(round_ratios):.2f}x "
              f"(median {sorted(round_ratios)[len(round_ratios) // 2]:.2f}x)")
        print(f"info post.single {w1.rate:,.1f} req/s = {w1.object_rate:,.0f} objects/s, p99 {ms(w1.pct(99))}")
        print(f"info post.batch{args.batch} {wb.rate:,.1f} req/s = {wb.object_rate:,.0f} objects/s, "
              f"p99 {ms(wb.pct(99))}")
        goal_at_least("nsl/datasette", nslr.rate / ds_best.rate, 3)
        goal_at_least("nsl/bare", nslr.rate / bare.rate, 0.7)
        errors = sum(r.errors for r in (*res.values(), w1, wb))
        _common.RESULTS.append(errors == 0)
        print(f"value errors {errors} goal 0 {'PASS' if errors == 0 else 'MISS'}")
        sound = ver.returncode == 0 and counts_ok
        _common.RESULTS.append(sound)
        print(f"value saves-kept+verify {'ok' if sound else 'BAD'} goal ok {'PASS' if sound else 'MISS'}")
        _common.summary()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))  # run the finally blocks: stop the servers
    try:
        main()
    except KeyboardInterrupt:
        stop_all()
        sys.exit(130)
    finally:
        stop_all()
