"""Helpers for the command-line tests (imported by conftest.py and the test modules): every test runs the real `nsl` in a subprocess.

The environment is hermetic (HOME, XDG_CONFIG_HOME and the working directory are the test's own
tmp_path, NO_COLOR=1, no NSL_* variable leaks in from outside) and every subprocess has a timeout.
"""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 60
SQLITE3 = shutil.which("sqlite3") or "/usr/bin/sqlite3"

# Rows every "people" fixture starts with: strings, ints, floats, null, booleans, nested JSON, unicode.
PEOPLE = [
    {"id": 1, "name": "Ada", "age": 36, "city": "London", "score": 0.5, "tags": ["math", "code"], "active": True},
    {"id": 2, "name": "Bob", "age": 20, "city": "Oslo", "score": 1.25, "tags": [], "active": False},
    {"id": 3, "name": "Zoë", "age": 50, "city": "Bergen", "score": None, "address": {"zip": "5003"}},
]


@dataclass
class Result:
    args: list
    returncode: int
    stdout: str
    stderr: str

    @property
    def json(self):
        return json.loads(self.stdout)

    @property
    def jsonl(self):
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    @property
    def error_lines(self) -> list[str]:
        return [ln for ln in self.stderr.splitlines() if ln.startswith("error:")]

    def __str__(self):
        return (f"$ nsl {' '.join(map(str, self.args))}\n[exit {self.returncode}]\n"
                f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}")


def base_env(home: Path, db: Path | None = None, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NSL_")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), NO_COLOR="1", TERM="dumb",
               PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""))
    env.pop("COLUMNS", None)
    if db is not None:
        env["NSL_DB"] = str(db)
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Nsl:
    """Runs `python -m nsl` against one database file, like a user in a shell."""

    def __init__(self, db: Path, home: Path, cwd: Path):
        self.db = db
        self.home = home
        self.cwd = cwd

    def env(self, **extra) -> dict:
        return base_env(self.home, self.db, **extra)

    def argv(self, *args) -> list[str]:
        return [sys.executable, "-m", "nsl", *map(str, args)]

    def __call__(self, *args, input: str | bytes | None = None, env: dict | None = None,
                 stdin=None, timeout: float = TIMEOUT) -> Result:
        if isinstance(input, str):
            input = input.encode("utf-8")
        kw = {"input": input} if input is not None else {"stdin": stdin if stdin is not None else subprocess.DEVNULL}
        p = subprocess.run(self.argv(*args), env=env or self.env(), cwd=self.cwd, capture_output=True,
                           timeout=timeout, **kw)
        return Result(list(args), p.returncode, p.stdout.decode("utf-8", "replace"),
                      p.stderr.decode("utf-8", "replace"))

    def ok(self, *args, **kw) -> Result:
        r = self(*args, **kw)
        assert r.returncode == 0, str(r)
        assert "Traceback" not in r.stderr, str(r)
        return r

    def popen(self, *args, stdin=None, env: dict | None = None) -> subprocess.Popen:
        return subprocess.Popen(self.argv(*args), env=env or self.env(), cwd=self.cwd, stdin=stdin,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def sqlite3(self, sql: str) -> subprocess.CompletedProcess:
        """The real sqlite3 command-line shell, as a user would run it on the file."""
        return subprocess.run([SQLITE3, "-init", "/dev/null", str(self.db), sql], cwd=self.cwd,
                              capture_output=True, text=True, timeout=TIMEOUT, env=self.env())

    # ---- looking at the file --------------------------------------------------------------------
    def dump(self) -> list[str]:
        """Every table, index, trigger and row of the file (Python's sqlite3 iterdump)."""
        conn = sqlite3.connect(str(self.db), timeout=TIMEOUT)
        try:
            return list(conn.iterdump())
        finally:
            conn.close()

    def user_tables(self) -> dict[str, list]:
        """{table name: sorted rows} of every table that is not nsl's or SQLite's own."""
        conn = sqlite3.connect(str(self.db), timeout=TIMEOUT)
        try:
            names = [r[0] for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'nsl\\_%' ESCAPE '\\' "
                "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'")]
            out = {}
            for n in names:
                q = '"' + n.replace('"', '""') + '"'
                out[n] = sorted(conn.execute(f"SELECT * FROM {q}").fetchall(), key=repr)
            return out
        finally:
            conn.close()

    def many(self, *commands: list, timeout: float = TIMEOUT) -> list[Result]:
        """Run several read-only commands at once (they only read, so order does not matter)."""
        procs = [(args, self.popen(*args, stdin=subprocess.DEVNULL)) for args in commands]
        out = []
        for args, p in procs:
            try:
                so, se = p.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()
                raise
            out.append(Result(list(args), p.returncode, so.decode("utf-8", "replace"),
                              se.decode("utf-8", "replace")))
        return out

    def snapshot(self, _extra: tuple = ()) -> dict:
        """What must not change when a command fails: `nsl head`, `nsl log --json` and the whole file's
        content (every table, index, trigger and row, as Python's sqlite3 iterdump prints it)."""
        head, log, *rest = self.many(["head"], ["log", "--json"], *_extra)
        for r in (head, log):
            assert r.returncode == 0 and "Traceback" not in r.stderr, str(r)
        snap = {"head": head.stdout, "log": log.json, "dump": self.dump()}
        if rest:
            snap["_extra"] = rest
        return snap

    def assert_unchanged(self, before: dict, *, verify: bool = False):
        after = self.snapshot((["verify"],) if verify else ())
        assert after["head"] == before["head"]
        assert after["log"] == before["log"]
        assert after["dump"] == before["dump"]
        if verify:
            self._check_verify(after["_extra"][0])

    @staticmethod
    def _check_verify(r: Result):
        assert r.returncode == 0, str(r)
        assert r.stdout.rstrip().endswith("ok"), str(r)

    def assert_verify_ok(self):
        self._check_verify(self("verify"))

    def table_count(self, table: str) -> int:
        """Rows of `table` through `nsl sql`, 0 when the table does not exist."""
        r = self.ok("sql", "SELECT count(*) AS n FROM sqlite_master WHERE type='table' AND name=?",
                    "--param", table, "--json")
        if r.json[0]["n"] == 0:
            return 0
        q = '"' + table.replace('"', '""') + '"'
        return self.ok("sql", f"SELECT count(*) AS n FROM {q}", "--json").json[0]["n"]


def assert_one_error(r: Result, exit_code: int, *words: str):
    """A clean failure: the exit code, exactly one `error:` line naming the problem, nothing on stdout."""
    assert r.returncode == exit_code, str(r)
    assert "Traceback" not in r.stderr, str(r)
    assert len(r.error_lines) == 1, str(r)
    assert r.stderr.startswith("error: "), str(r)
    line = r.error_lines[0].lower()
    for w in words:
        assert w.lower() in line, f"{w!r} not in the error line\n{r}"
    assert r.stdout == "", str(r)
