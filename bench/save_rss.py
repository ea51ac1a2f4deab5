"""Peak memory of a big CLI save: `nsl save t < file` with 1,000,000 objects, as a subprocess.

    python bench/save_rss.py [--n 1000000]

The peak RSS is the child's own ru_maxrss (os.wait4 on its pid), so nothing else this script runs
is counted. Reference, in the same run: the peak RSS of a bare `python -c 'import nsl'` (what the
interpreter and imports cost before any data). Goal: peak RSS under 150 MB.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import _common as C

GOAL_MB = 150.0


def run_measured(cmd, stdin_path=None) -> tuple[float, float, int, bytes]:
    """(seconds, peak RSS in MB, exit code, stderr) of one child process."""
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    try:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        err = p.stderr.read()
        _, status, ru = os.wait4(p.pid, 0)
        dt = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)  # keep Popen from waiting again
    finally:
        if stdin_path:
            stdin.close()
    kb = ru.ru_maxrss  # kilobytes on Linux
    if sys.platform == "darwin":
        kb /= 1024  # bytes there
    return dt, kb / 1024, p.returncode, err


def main():
    args = C.parse_args(__doc__.splitlines()[0], 1_000_000)
    n = args.n
    C.header("save_rss: peak RSS of `nsl save` on a large JSON lines file", n)
    with C.workdir(args.keep) as d:
        jsonl = d / "objects.jsonl"
        t0 = time.perf_counter()
        size = C.write_jsonl(jsonl, C.gen_objects(n))
        print(f"input: {size / 1e6:.1f} MB, {n:,} objects (written in {time.perf_counter() - t0:.1f} s)")
        db_path = d / "big.db"
        C.run(C.nsl_cmd() + ["--db", str(db_path), "init"])

        base_t, base_rss, rc, err = run_measured([sys.executable, "-c", "import nsl, nsl.cli.main"])
        if rc:
            sys.exit(f"baseline failed: {err.decode(errors='replace')}")
        dt, rss, rc, err = run_measured(C.nsl_cmd() + ["--db", str(db_path), "save", "t"], stdin_path=jsonl)
        if rc:
            sys.exit(f"nsl save failed ({rc}): {err.decode(errors='replace')[-2000:]}")
        db_size = sum(os.path.getsize(p) for p in d.glob("big.db*"))
        C.table([
            ["python -c 'import nsl' (baseline)", C.fmt_s(base_t), f"{base_rss:.1f} MB", "", ""],
            ["nsl save t < file", C.fmt_s(dt), f"{rss:.1f} MB", f"{n / dt:,.0f}", f"{db_size / 1e6:.1f} MB"],
        ], ["process", "wall time", "peak RSS", "objects/s", "db size"])
        print()
        print(f"input file size: {size / 1e6:.1f} MB; peak RSS above the bare import: {rss - base_rss:.1f} MB; "
              f"peak RSS / input size: {rss * 1024 * 1024 / size:.2f}")
        print(f"peak RSS {rss:.1f} MB, goal < {GOAL_MB:g} MB")
        C.goal(f"peak-rss/{GOAL_MB:g}MB", rss / GOAL_MB, 1.0, less_than=True)
        C.summary()


if __name__ == "__main__":
    main()
