"""The sync commands as a user types them: remote, clone, push, pull, sync, conflicts, resolve, config;
their --json summaries, their errors, and two cron jobs syncing one database at once."""
from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import time

import pytest

from synctools import TIMEOUT, nsl_env, user_rows

pytestmark = pytest.mark.timeout(300)


class Shell:
    """`nsl` in a subprocess, in the test's own directory and HOME."""

    def __init__(self, tmp_path):
        self.cwd = tmp_path
        self.home = tmp_path / "home"
        (self.home / ".config").mkdir(parents=True, exist_ok=True)

    def __call__(self, *args, env=None, input=None):
        p = subprocess.run([sys.executable, "-m", "nsl", *map(str, args)], cwd=self.cwd,
                           env=nsl_env(self.home, **(env or {})), capture_output=True, text=True,
                           timeout=TIMEOUT, input=input, stdin=None if input is not None else subprocess.DEVNULL)
        assert "Traceback" not in p.stderr, p.stderr
        return p

    def ok(self, *args, **kw):
        p = self(*args, **kw)
        assert p.returncode == 0, f"{args}: {p.stdout}\n{p.stderr}"
        return p

    def json(self, *args, **kw):
        return json.loads(self.ok(*args, "--json", **kw).stdout)


@pytest.fixture
def sh(tmp_path):
    return Shell(tmp_path)


def jsonl(objs) -> str:
    return "".join(json.dumps(o) + "\n" for o in objs)


def count(path, sql: str) -> int:
    conn = sqlite3.connect(str(path), timeout=TIMEOUT)
    try:
        return conn.execute(sql).fetchone()[0]
    finally:
        conn.close()


def test_a_users_session_with_two_clones(sh, serve, tmp_path):
    sh.ok("--db", "hub.db", "init")
    sh.ok("--db", "hub.db", "save", "people", '[{"id": 1, "name": "Ada"}, {"id": 2, "name": "Alan"}]', "-m", "seed")
    tok = sh.ok("--db", "hub.db", "token", "add", "laptops", "--role", "sync").stdout.strip()
    srv = serve(tmp_path / "hub.db")

    # Clone with the token in the environment, named by --token-env (never on the command line).
    out = sh.json("clone", srv.url, "laptop.db", "--token-env", "HUB_TOKEN", env={"HUB_TOKEN": tok})
    assert out["commits_applied"] == 1 and out["path"] == "laptop.db"
    assert sh.json("--db", "laptop.db", "remote", "list") == {
        "remotes": [{"name": "origin", "url": srv.url, "token_env": "HUB_TOKEN"}]}
    sh.ok("clone", srv.url, "desk.db", env={"NSL_TOKEN": tok})

    sh.ok("--db", "laptop.db", "save", "people", '{"id": 3, "name": "Grace"}', "-m", "on the laptop")
    s = sh.json("--db", "laptop.db", "push", env={"HUB_TOKEN": tok})
    assert s["direction"] == "push" and s["sent"]["artifacts"] >= 2 and s["round_trips"] >= 1
    assert set(s) >= {"sent", "received", "round_trips", "conflicts", "head_before", "head_after"}
    # Without the token the hub says 401, clearly, and nothing changes.
    p = sh("--db", "desk.db", "pull")
    assert p.returncode == 1 and p.stderr.startswith("error: ") and "token" in p.stderr
    s = sh.json("--db", "desk.db", "pull", env={"NSL_TOKEN": tok})
    assert s["received"]["artifacts"] >= 2 and s["head_after"] != s["head_before"]
    assert json.loads(sh.ok("--db", "desk.db", "get", "people", "3").stdout)["name"] == "Grace"

    # Concurrent edits of one object: a conflict, the same winner on both, resolved once for all.
    sh.ok("--db", "laptop.db", "save", "people", '{"id": 1, "name": "Ada Lovelace"}')
    time.sleep(0.01)
    sh.ok("--db", "desk.db", "save", "people", '{"id": 1, "name": "Countess"}')
    sh.ok("--db", "laptop.db", "sync", "-q", env={"HUB_TOKEN": tok})
    s = sh.json("--db", "desk.db", "sync", env={"NSL_TOKEN": tok})
    assert s["conflicts"] == [{"table": "people", "key": 1}]
    sh.ok("--db", "laptop.db", "sync", "-q", env={"HUB_TOKEN": tok})
    for db in ("laptop.db", "desk.db"):
        assert json.loads(sh.ok("--db", db, "get", "people", "1").stdout)["name"] == "Countess"
        (c,) = sh.json("--db", db, "conflicts")["conflicts"]
        assert c["theirs"][0]["object"]["name"] == "Ada Lovelace"
    text = sh.ok("--db", "desk.db", "conflicts").stdout
    assert "people/1" in text and "ours" in text and "theirs" in text
    loser = sh.json("--db", "desk.db", "conflicts")["conflicts"][0]["theirs"][0]["version"]
    sh.ok("--db", "desk.db", "resolve", "people", "1", "--take", loser[:10], "-m", "the full name")
    assert sh.json("--db", "desk.db", "conflicts") == {"conflicts": []}
    sh.ok("--db", "desk.db", "sync", "-q", env={"NSL_TOKEN": tok})
    sh.ok("--db", "laptop.db", "sync", "-q", env={"HUB_TOKEN": tok})
    for db in ("laptop.db", "desk.db", "hub.db"):
        assert sh.json("--db", db, "conflicts") == {"conflicts": []}
        assert json.loads(sh.ok("--db", db, "get", "people", "1").stdout)["name"] == "Ada Lovelace"
        sh.ok("--db", db, "verify")
    heads = {sh.ok("--db", db, "head").stdout for db in ("laptop.db", "desk.db", "hub.db")}
    assert len(heads) == 1


def test_remotes_and_settings(sh, tmp_path, monkeypatch):
    sh.ok("--db", "a.db", "init")
    sh.ok("--db", "a.db", "remote", "add", "hub", "https://nsl.example.org:8443/", "--token-env", "HUB")
    sh.ok("--db", "a.db", "remote", "add", "backup", str(tmp_path / "backup.db"))
    assert [r["name"] for r in sh.json("--db", "a.db", "remote")["remotes"]] == ["backup", "hub"]
    assert "hub\thttps://nsl.example.org:8443/\t(token from $HUB)" in sh.ok("--db", "a.db", "remote", "list").stdout
    p = sh("--db", "a.db", "remote", "add", "hub", "http://other")
    assert p.returncode == 2 and "exists already" in p.stderr
    for bad in (["remote", "add", "bad name", "http://x"], ["remote", "add", "x", "ftp://x"],
                ["remote", "add", "x", "http://x", "--token-env", "1BAD"]):
        p = sh("--db", "a.db", *bad)
        assert p.returncode == 2 and p.stderr.startswith("error: "), p.stderr
    sh.ok("--db", "a.db", "remote", "remove", "backup")
    p = sh("--db", "a.db", "remote", "remove", "backup")
    assert p.returncode == 1 and "no remote" in p.stderr
    p = sh("--db", "a.db", "push")
    assert p.returncode == 1 and "origin" in p.stderr
    # Settings.
    sh.ok("--db", "a.db", "config", "table.people.conflicts", "merge-fields")
    assert sh.ok("--db", "a.db", "config", "table.people.conflicts").stdout.strip() == "merge-fields"
    assert sh.json("--db", "a.db", "config")["settings"]["table.people.conflicts"] == "merge-fields"
    for bad in (["config", "table.people.conflicts", "newest"], ["config", "no.such", "x"]):
        p = sh("--db", "a.db", *bad)
        assert p.returncode == 2 and p.stderr.startswith("error: "), p.stderr
    sh.ok("--db", "a.db", "config", "--unset", "table.people.conflicts")
    assert sh("--db", "a.db", "config", "table.people.conflicts").returncode == 1
    # The user's config file may hold a remote's token (git syntax).
    (sh.home / ".config" / "nsl").mkdir(parents=True)
    (sh.home / ".config" / "nsl" / "config").write_text('[remote "hub"]\n    token = secret-from-file\n')
    from nsl.core import config

    monkeypatch.setenv("XDG_CONFIG_HOME", str(sh.home / ".config"))
    assert config.token_for("hub", {}) == "secret-from-file"
    monkeypatch.setenv("NSL_TOKEN", "from-env")
    assert config.token_for("other", {}) == "from-env"
    monkeypatch.setenv("HUB", "from-hub-var")
    assert config.token_for("hub", {"token-env": "HUB"}) == "from-hub-var"


def test_credentials_in_a_remote_url_are_refused(sh, tmp_path):
    sh.ok("--db", "a.db", "init")
    sh.ok("--db", "a.db", "save", "t", '{"id": 1}')
    before = sh.json("--db", "a.db", "remote")
    for args in (["--db", "a.db", "remote", "add", "hub", "https://ann:s3cret@nsl.example.org/"],
                 ["--db", "a.db", "remote", "add", "hub", "http://s3cret@127.0.0.1:9"],
                 ["--db", "a.db", "config", "remote.hub.url", "http://ann:s3cret@127.0.0.1:9/"],
                 ["clone", "http://ann:s3cret@127.0.0.1:9/", "copy.db"],
                 ["--db", "a.db", "push", "http://ann:s3cret@127.0.0.1:9"],
                 ["--db", "a.db", "pull", "https://ann:s3cret@127.0.0.1:9/nsl"],
                 ["--db", "a.db", "sync", "http://ann:s3cret@127.0.0.1:9", "--json"]):
        p = sh(*args)
        assert p.returncode == 2, (args, p.stderr)
        assert p.stderr.startswith("error: a remote URL must not hold credentials"), p.stderr
        assert "--token-env" in p.stderr and "NSL_TOKEN" in p.stderr
        assert "s3cret" not in p.stderr + p.stdout
    assert sh.json("--db", "a.db", "remote") == before
    assert not (tmp_path / "copy.db").exists()
    # A remote with credentials in the user's config file is refused when used, too.
    (sh.home / ".config" / "nsl").mkdir(parents=True)
    (sh.home / ".config" / "nsl" / "config").write_text('[remote "old"]\n    url = http://ann:s3cret@127.0.0.1:9\n')
    p = sh("--db", "a.db", "pull", "old")
    assert p.returncode == 2 and "--token-env" in p.stderr and "s3cret" not in p.stderr, p.stderr


def test_clone_errors_change_nothing(sh, tmp_path):
    sh.ok("--db", "a.db", "init")
    sh.ok("--db", "a.db", "save", "t", '{"id": 1}')
    (tmp_path / "taken.db").write_text("mine")
    p = sh("clone", "a.db", "taken.db")
    assert p.returncode == 2 and "exists already" in p.stderr
    assert (tmp_path / "taken.db").read_text() == "mine"
    p = sh("clone", "http://127.0.0.1:9/", "x.db")
    assert p.returncode == 1 and "cannot reach" in p.stderr
    p = sh("clone", "missing.db", "y.db")
    assert p.returncode == 1 and "missing.db" in p.stderr
    assert not (tmp_path / "x.db").exists() and not (tmp_path / "y.db").exists()
    assert not list(tmp_path.glob(".*.clone-*"))


def test_two_cron_syncs_at_once_never_corrupt(sh, tmp_path):
    sh.ok("--db", "hub.db", "init")
    lines = lambda objs: "".join(json.dumps(o) + "\n" for o in objs)  # noqa: E731
    sh.ok("--db", "hub.db", "save", "t", input=lines({"id": i, "v": "x" * 50} for i in range(20000)))
    sh.ok("clone", "hub.db", "mine.db")
    sh.ok("--db", "hub.db", "save", "t", input=lines({"id": f"n{i}", "v": i} for i in range(20000)))
    sh.ok("--db", "mine.db", "save", "t", input=lines({"id": f"m{i}", "v": i} for i in range(20000)))
    procs = [subprocess.Popen([sys.executable, "-m", "nsl", "--db", "mine.db", "sync", "--json"], cwd=tmp_path,
                              env=nsl_env(sh.home, NSL_BUSY_TIMEOUT="60"), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=TIMEOUT * 2) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert "Traceback" not in err
        assert p.returncode == 0 or "another sync" in err, err
    assert any(p.returncode == 0 for p in procs)
    sh.ok("--db", "mine.db", "verify")
    sh.ok("--db", "hub.db", "verify")
    assert sh.ok("--db", "mine.db", "head").stdout == sh.ok("--db", "hub.db", "head").stdout
    assert user_rows(tmp_path / "mine.db") == user_rows(tmp_path / "hub.db")
    # While a sync holds the lock, another one waits up to the busy timeout, then refuses cleanly.
    from nsl.sync.client import sync_lock

    before = user_rows(tmp_path / "mine.db")
    with sync_lock(tmp_path / "mine.db"):
        p = sh("--db", "mine.db", "sync", env={"NSL_BUSY_TIMEOUT": "0.5"})
    assert p.returncode == 1 and "another sync is running" in p.stderr, p.stderr
    assert user_rows(tmp_path / "mine.db") == before


def test_a_clone_killed_midway_leaves_nothing_and_the_next_one_cleans_up(sh, serve, tmp_path):
    import signal

    sh.ok("--db", "hub.db", "init")
    for part in range(3):
        sh.ok("--db", "hub.db", "save", "t",
              input="".join(json.dumps({"id": f"{part}-{i}", "v": "x" * 100}) + "\n" for i in range(60000)))
    srv = serve(tmp_path / "hub.db")
    proc = subprocess.Popen([sys.executable, "-m", "nsl", "clone", srv.url, "copy.db", "-q"], cwd=tmp_path,
                            env=nsl_env(sh.home), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and not list(tmp_path.glob(".copy.db.clone-*-wal")):
        time.sleep(0.02)
    time.sleep(0.3)
    assert proc.poll() is None, "the clone finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(TIMEOUT)
    assert not (tmp_path / "copy.db").exists()        # never a partial database under the name
    assert list(tmp_path.glob(".copy.db.clone-*"))     # the killed one's leftovers...
    out = sh.json("clone", srv.url, "copy.db")
    assert out["commits_applied"] == 3
    assert not list(tmp_path.glob(".copy.db.clone-*"))  # ...are gone after the next clone
    sh.ok("--db", "copy.db", "verify")
    assert user_rows(tmp_path / "copy.db") == user_rows(tmp_path / "hub.db")


def test_a_pull_the_hub_clusters_for_leaves_nothing_missing(sh, serve, tmp_path):
    """Past 100 unclustered artifacts the hub gathers them into clusters when it is pulled from, and
    one reply then brings a commit together with the cluster that lists it."""
    sh.ok("--db", "hub.db", "init")
    sh.ok("--db", "hub.db", "save", "people", '{"id": 0, "name": "seed"}')
    srv = serve(tmp_path / "hub.db")
    sh.ok("clone", srv.url, "laptop.db", "-q")
    sh.ok("--db", "hub.db", "save", "people", input=jsonl({"id": i, "name": f"p{i}"} for i in range(1, 901)))
    assert count(tmp_path / "hub.db", "SELECT count(*) FROM nsl_cluster") == 0

    p = sh.ok("--db", "laptop.db", "pull")
    assert count(tmp_path / "hub.db", "SELECT count(*) FROM nsl_cluster") >= 2     # clustered on the way
    assert "warning" not in p.stderr and "could not be fetched" not in p.stderr, p.stderr
    assert count(tmp_path / "laptop.db", "SELECT count(*) FROM nsl_phantom") == 0
    sh.ok("--db", "hub.db", "save", "people", input=jsonl({"id": i, "name": f"q{i}"} for i in range(901, 1801)))
    s = sh.json("--db", "laptop.db", "pull")
    assert s["missing"] == 0 and s["commits_applied"] == 1 and s["received"]["artifacts"] >= 901
    assert count(tmp_path / "laptop.db", "SELECT count(*) FROM nsl_phantom") == 0
    # What the hub's clusters list is clustered here too: few loose ends, whatever was pulled.
    assert count(tmp_path / "laptop.db", "SELECT count(*) FROM nsl_unclustered") < 100
    s = sh.json("--db", "laptop.db", "sync")
    assert s["round_trips"] == 1 and s["sent"]["bytes"] < 1024 and s["received"]["bytes"] < 1024, s
    assert s["missing"] == 0 and s["received"]["artifacts"] == 0
    sh.ok("--db", "laptop.db", "verify")


def test_a_push_brings_the_clusters_made_for_it_along(sh, serve, tmp_path):
    """The other way: a laptop clusters what it pushes, and its clusters go to the hub in one request
    with the commit they list; the hub keeps nothing missing and has few loose ends."""
    sh.ok("--db", "hub.db", "init")
    sh.ok("--db", "hub.db", "save", "people", '{"id": 0, "name": "seed"}')
    srv = serve(tmp_path / "hub.db")
    sh.ok("clone", srv.url, "laptop.db", "-q")
    sh.ok("clone", srv.url, "desk.db", "-q")
    sh.ok("--db", "laptop.db", "save", "people", input=jsonl({"id": f"l{i}", "name": "l"} for i in range(900)))
    s = sh.json("--db", "laptop.db", "push")
    assert s["round_trips"] == 1 and s["sent"]["artifacts"] >= 903
    assert count(tmp_path / "hub.db", "SELECT count(*) FROM nsl_phantom") == 0
    assert count(tmp_path / "hub.db", "SELECT count(*) FROM nsl_staged") == 0
    assert count(tmp_path / "hub.db", "SELECT count(*) FROM nsl_unclustered") < 100
    s = sh.json("--db", "desk.db", "pull")
    assert s["missing"] == 0 and s["commits_applied"] == 1
    assert count(tmp_path / "desk.db", "SELECT count(*) FROM nsl_phantom") == 0
    for db in ("laptop.db", "desk.db"):
        s = sh.json("--db", db, "sync")
        assert s["round_trips"] == 1 and s["sent"]["bytes"] < 1024 and s["received"]["bytes"] < 1024, (db, s)
    assert user_rows(tmp_path / "desk.db") == user_rows(tmp_path / "laptop.db") == user_rows(tmp_path / "hub.db")
    for db in ("laptop.db", "desk.db", "hub.db"):
        sh.ok("--db", db, "verify")


@pytest.mark.parametrize("history", [1000, 20000])
def test_a_client_that_only_pushes_pays_for_what_is_new(sh, serve, tmp_path, history):
    """A laptop that never pulls clusters what it pushes, so telling the hub what it has (igot) stays
    short however long its own history grows."""
    sh.ok("--db", "hub.db", "init")
    sh.ok("--db", "hub.db", "save", "people", '{"id": 0, "name": "seed"}')
    srv = serve(tmp_path / "hub.db")
    sh.ok("clone", srv.url, "laptop.db", "-q")
    sh.ok("--db", "hub.db", "save", "people", '{"id": "hub", "name": "made on the hub"}')   # never pulled
    sh.ok("--db", "laptop.db", "save", "people", input=jsonl({"id": i, "name": f"p{i}"} for i in range(history)))
    first = sh.json("--db", "laptop.db", "push")
    assert first["sent"]["artifacts"] > history
    for n in range(2):
        sh.ok("--db", "laptop.db", "save", "people", json.dumps({"id": f"new{n}", "name": "one more"}))
        s = sh.json("--db", "laptop.db", "push")
        assert s["sent"]["artifacts"] == 2 and s["round_trips"] <= 2, s
        assert s["sent"]["bytes"] < 6 * 1024 and s["received"]["bytes"] < 2 * 1024, s
    assert count(tmp_path / "laptop.db", "SELECT count(*) FROM nsl_unclustered") < 100
    # Everything arrived, and a peer that pulls from the hub gets all of it.
    sh.ok("clone", srv.url, "desk.db", "-q")
    s = sh.json("--db", "laptop.db", "pull")
    assert s["missing"] == 0 and s["received"]["artifacts"] == 2
    assert user_rows(tmp_path / "laptop.db") == user_rows(tmp_path / "hub.db") == user_rows(tmp_path / "desk.db")
    sh.ok("--db", "hub.db", "verify")


def _on_a_terminal(sh, *args, timeout=TIMEOUT):
    """Run nsl with stderr on a pseudo-terminal (as in an interactive shell): (exit code, stdout, what
    the terminal showed)."""
    import os
    import pty
    import threading

    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "nsl", *map(str, args)], cwd=sh.cwd,
                            env=nsl_env(sh.home, TERM="xterm", COLUMNS="200", LINES="40"),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    shown = []

    def read():
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:         # the other end is closed
                return
            if not data:
                return
            shown.append(data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout)
        reader.join(timeout)
        os.close(master)
    text = b"".join(shown).decode("utf-8", "replace")
    return proc.returncode, out.decode(), re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


def test_progress_shows_on_a_terminal_and_q_silences_everything(sh, serve, tmp_path):
    sh.ok("--db", "hub.db", "init")
    sh.ok("--db", "hub.db", "save", "t", input=jsonl({"id": i, "v": "x" * 40} for i in range(3000)))
    srv = serve(tmp_path / "hub.db")
    sh.ok("clone", srv.url, "mine.db", "-q")
    sh.ok("--db", "hub.db", "save", "t", input=jsonl({"id": f"n{i}", "v": i} for i in range(3000)))

    # stderr is a terminal: rich draws the progress there (round, what came in), then the summary.
    rc, out, shown = _on_a_terminal(sh, "--db", "mine.db", "pull")
    assert rc == 0 and out == ""
    assert re.search(rf"pull {re.escape(srv.url)}: round \d+, [1-9]\d* received", shown), shown
    assert re.search(r"pull .*: 30\d\d artifacts received, 0 sent", shown), shown
    # -q: nothing at all, terminal or not.
    sh.ok("--db", "hub.db", "save", "t", '{"id": "one more"}')
    assert _on_a_terminal(sh, "--db", "mine.db", "pull", "-q") == (0, "", "")
    # Not a terminal: no progress, only the summary.
    sh.ok("--db", "hub.db", "save", "t", '{"id": "and another"}')
    p = sh.ok("--db", "mine.db", "pull")
    assert "round 1," not in p.stderr and "artifacts received" in p.stderr and p.stdout == ""

    sh.ok("--db", "mine.db", "save", "t", '{"id": "mine"}')
    for args in (["--db", "mine.db", "push", "-q"], ["--db", "mine.db", "sync", "-q"],
                 ["--db", "mine.db", "pull", "-q"], ["clone", srv.url, "copy.db", "-q"],
                 ["clone", "mine.db", "copy2.db", "-q"]):
        p = sh.ok(*args)
        assert (p.stdout, p.stderr) == ("", ""), args
    assert user_rows(tmp_path / "copy.db") == user_rows(tmp_path / "mine.db") == user_rows(tmp_path / "hub.db")


def test_the_manual_policy_keeps_the_local_version_until_resolved(sh, serve, tmp_path):
    sh.ok("--db", "hub.db", "init")
    sh.ok("--db", "hub.db", "save", "people", '[{"id": 1, "name": "Ada"}, {"id": 2, "name": "Alan"}]')
    srv = serve(tmp_path / "hub.db")
    for db in ("laptop.db", "desk.db"):
        sh.ok("clone", srv.url, db, "-q")
        sh.ok("--db", db, "config", "table.people.conflicts", "manual")
    sh.ok("--db", "laptop.db", "save", "people", '{"id": 1, "name": "Ada Lovelace"}', "-m", "on the laptop")
    time.sleep(0.01)
    sh.ok("--db", "desk.db", "save", "people", '{"id": 1, "name": "Countess"}', "-m", "on the desk (newer)")
    for db in ("laptop.db", "desk.db", "laptop.db"):
        sh.ok("--db", db, "sync", "-q")
    heads = {sh.ok("--db", db, "head").stdout for db in ("laptop.db", "desk.db", "hub.db")}
    assert len(heads) == 1
    # Each side keeps showing its own version, and lists the other as the conflict.
    for db, mine, theirs in (("laptop.db", "Ada Lovelace", "Countess"), ("desk.db", "Countess", "Ada Lovelace")):
        assert json.loads(sh.ok("--db", db, "get", "people", "1").stdout)["name"] == mine
        (c,) = sh.json("--db", db, "conflicts")["conflicts"]
        assert c["policy"] == "manual" and c["key"] == 1
        assert c["ours"]["object"]["name"] == mine and [t["object"]["name"] for t in c["theirs"]] == [theirs]
        assert c["base"]["object"] == {"id": 1, "name": "Ada"}
    # The hub has the default policy: the newest version.
    assert json.loads(sh.ok("--db", "hub.db", "get", "people", "1").stdout)["name"] == "Countess"
    # Resolving on the laptop, with the desk's version, clears it everywhere once synced.
    theirs = sh.json("--db", "laptop.db", "conflicts")["conflicts"][0]["theirs"][0]["version"]
    sh.ok("--db", "laptop.db", "resolve", "people", "1", "--take", theirs[:8], "-m", "the desk was right")
    assert sh.json("--db", "laptop.db", "conflicts") == {"conflicts": []}
    for db in ("laptop.db", "desk.db"):
        sh.ok("--db", db, "sync", "-q")
    for db in ("laptop.db", "desk.db", "hub.db"):
        assert sh.json("--db", db, "conflicts") == {"conflicts": []}
        assert json.loads(sh.ok("--db", db, "get", "people", "1").stdout) == {"id": 1, "name": "Countess"}
        sh.ok("--db", db, "verify")


def test_resolve_with_an_object_from_the_command_line(sh, serve, tmp_path):
    sh.ok("--db", "hub.db", "init")
    sh.ok("--db", "hub.db", "save", "people", '{"id": 1, "name": "Ada", "born": 1815}')
    srv = serve(tmp_path / "hub.db")
    for db in ("laptop.db", "desk.db"):
        sh.ok("clone", srv.url, db, "-q")
    sh.ok("--db", "laptop.db", "save", "people", '{"id": 1, "name": "Ada Lovelace", "born": 1815}')
    time.sleep(0.01)
    sh.ok("--db", "desk.db", "save", "people", '{"id": 1, "name": "Ada", "born": 1816}')
    for db in ("laptop.db", "desk.db", "laptop.db"):
        sh.ok("--db", db, "sync", "-q")
    assert len(sh.json("--db", "laptop.db", "conflicts")["conflicts"]) == 1
    # Bad objects are refused and change nothing.
    for bad in ('{"id": 2, "name": "x"}', "{not json"):
        p = sh("--db", "desk.db", "resolve", "people", "1", "--object", bad)
        assert p.returncode == 2 and p.stderr.startswith("error: "), p.stderr
    assert len(sh.json("--db", "desk.db", "conflicts")["conflicts"]) == 1
    out = sh.json("--db", "desk.db", "resolve", "people", "1", "--object", '{"name": "Ada Lovelace", "born": 1816}',
                  "-m", "both were right")
    assert out["commit"]
    assert sh.json("--db", "desk.db", "conflicts") == {"conflicts": []}
    assert len(sh.json("--db", "laptop.db", "conflicts")["conflicts"]) == 1    # not synced yet
    sh.ok("--db", "desk.db", "sync", "-q")
    s = sh.json("--db", "laptop.db", "sync")
    assert s["conflicts"] == [] and s["commits_applied"] == 1
    for db in ("laptop.db", "desk.db", "hub.db"):
        assert sh.json("--db", db, "conflicts") == {"conflicts": []}
        assert json.loads(sh.ok("--db", db, "get", "people", "1").stdout) == {"id": 1, "name": "Ada Lovelace",
                                                                              "born": 1816}
        sh.ok("--db", db, "verify")
    assert len({sh.ok("--db", db, "head").stdout for db in ("laptop.db", "desk.db", "hub.db")}) == 1
