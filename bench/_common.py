"""Helpers shared by the benchmark scripts: data generation, timing, tables and goal lines.

Not a benchmark itself; the scripts import it as `_common` (they run with bench/ on sys.path).
"""
from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

CITIES = ["Oslo", "Bergen", "Paris", "Lyon", "Berlin", "Hamburg", "Madrid", "Rome", "Vienna", "Prague",
          "Lisbon", "Dublin", "Warsaw", "Athens", "Zurich", "Tokyo", "Osaka", "Lima", "Quito", "Cairo"]
NAMES = ["Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Ken", "Dennis", "Linus", "Guido",
         "Margaret", "Frances", "John", "Niklaus", "Tony", "Leslie", "Radia", "Sophie", "Bjarne", "Anders"]


def parse_args(description: str, default_n: int, extra=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--n", type=int, default=default_n, help=f"number of objects (default {default_n:,})")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (its path is printed)")
    if extra:
        extra(ap)
    return ap.parse_args()


def small_object(i: int, rnd: random.Random) -> dict:
    """The 5-field object of the spec: id int, name str, age int, score float, city str."""
    return {"id": i, "name": f"{rnd.choice(NAMES)} {i}", "age": rnd.randint(18, 90),
            "score": round(rnd.random() * 100, 3), "city": rnd.choice(CITIES)}


def gen_objects(n: int, seed: int = 1, start: int = 1):
    rnd = random.Random(seed)
    for i in range(start, start + n):
        yield small_object(i, rnd)


def write_jsonl(path: Path, objs) -> int:
    """Write objects as JSON lines; returns the file size in bytes."""
    with open(path, "wb") as f:
        buf = []
        for o in objs:
            buf.append(orjson.dumps(o))
            if len(buf) >= 10000:
                f.write(b"\n".join(buf) + b"\n")
                buf = []
        if buf:
            f.write(b"\n".join(buf) + b"\n")
    return path.stat().st_size


@contextmanager
def workdir(keep: bool = False):
    d = Path(tempfile.mkdtemp(prefix="nsl-bench-"))
    try:
        yield d
    finally:
        if keep:
            print(f"(kept {d})")
        else:
            shutil.rmtree(d, ignore_errors=True)


def remove_db(path: Path):
    for suffix in ("", "-wal", "-shm", "-journal"):
        p = Path(str(path) + suffix)
        if p.exists():
            p.unlink()


class Timer:
    def __init__(self):
        self.seconds = None

    def __enter__(self):
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self._t0


def timed(fn, *args, **kwargs):
    """(seconds, result) of one call."""
    t0 = time.perf_counter()
    r = fn(*args, **kwargs)
    return time.perf_counter() - t0, r


def tool(name: str) -> str | None:
    """A console script installed beside this Python (no pyenv shim in between), else one on PATH."""
    here = Path(sys.executable).parent / name
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    return shutil.which(name)


def nsl_cmd() -> list[str]:
    """How to run the nsl CLI: the installed `nsl` script, else `python -m nsl`."""
    exe = tool("nsl")
    return [exe] if exe else [sys.executable, "-m", "nsl"]


def run(cmd, *, stdin_path=None, cwd=None, env=None, check=True) -> subprocess.CompletedProcess:
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    try:
        p = subprocess.run(cmd, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, env=env)
    finally:
        if stdin_path:
            stdin.close()
    if check and p.returncode != 0:
        raise SystemExit(f"command failed ({p.returncode}): {' '.join(map(str, cmd))}\n"
                         f"{p.stderr.decode(errors='replace')[-2000:]}")
    return p


def time_run(cmd, **kw) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    p = run(cmd, **kw)
    return time.perf_counter() - t0, p


def percentile(values, q: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    k = min(len(s) - 1, max(0, int(round(q / 100 * (len(s) - 1)))))
    return s[k]


def median(values) -> float:
    return statistics.median(values)


def machine_line() -> str:
    return (f"machine: {platform.platform()} | cpus: {os.cpu_count()} | python {platform.python_version()} | "
            f"sqlite {sqlite3.sqlite_version}")


def header(title: str, n: int):
    print(f"== {title} (n={n:,}) ==")
    print(machine_line())


def table(rows, headers):
    """Print a small aligned table; numbers are formatted by the caller."""
    rows = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    print(line)
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))))


def fmt_s(seconds: float) -> str:
    return f"{seconds:.3f} s"


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms"


RESULTS: list[bool] = []


def goal(label: str, value: float, limit: float, *, less_than: bool = False, unit: str = "x"):
    """Print `ratio LABEL VALUE goal <= LIMIT PASS/MISS` (or `<` when less_than). A goal on an absolute
    figure (unit other than x) prints `value` in place of `ratio`."""
    ok = value < limit if less_than else value <= limit
    RESULTS.append(ok)
    op = "<" if less_than else "<="
    kind = "ratio" if unit == "x" else "value"
    print(f"{kind} {label} {value:.2f}{unit} goal {op} {limit:g}{unit} {'PASS' if ok else 'MISS'}")
    return ok


def summary():
    passed = sum(RESULTS)
    print(f"goals: {passed}/{len(RESULTS)} PASS")


def save_jsonl_in_process(db_path: Path, table_name: str, jsonl: Path, **kw):
    """nsl.init + nsl.save of a JSON lines file through iter_json_input (the CLI's parser)."""
    import nsl
    from nsl.core.objects import iter_json_input

    db, _ = nsl.init(str(db_path))
    with open(jsonl, "rb") as f:
        res = nsl.save(db, table_name, iter_json_input(f), **kw)
    return db, res


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc, timeout: float = 30):
    """Wait until something listens on 127.0.0.1:port (the server process `proc` must not exit)."""
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read().decode(errors='replace')[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on port {port}")


def stop_all(procs) -> None:
    """SIGTERM each server process, then SIGKILL what has not stopped after 10 s."""
    import signal

    for p in procs:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
