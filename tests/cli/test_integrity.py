"""`nsl verify` from the command line: tampering done with the sqlite3 shell is found and named, with
exit code 1; and a database made with `nsl init --hash sha256` hashes everything with SHA-256."""
from __future__ import annotations

import hashlib
import subprocess

from clitools import SQLITE3


def test_verify_names_each_tampered_thing_and_exits_1(people):
    assert people.ok("verify").stdout.splitlines()[-1] == "ok"
    # 1. NULL turned into '' in a stored version: the row text ("3|Zoë|50|Bergen||...") does not change
    assert "|n|" in people.sqlite3("SELECT content FROM nsl_version WHERE key = 3").stdout   # score: null
    assert people.sqlite3(
        "UPDATE nsl_version SET content = replace(content, '|n|', '|t|') WHERE key = 3").returncode == 0
    # 2. a row changed behind the triggers' back (nsl_busy holds a row, as inside nsl's own writes)
    assert people.sqlite3("BEGIN; INSERT INTO nsl_busy VALUES (1); UPDATE people SET age = 99 WHERE id = 2; "
                          "DELETE FROM nsl_busy; COMMIT").returncode == 0
    r = people("verify")
    assert r.returncode == 1, str(r)
    lines = r.stdout.splitlines()
    problems = [ln for ln in lines if ln.startswith("✗")]
    assert sorted(problems) == sorted([
        next(p for p in problems if p.startswith("✗ version ")),
        "✗ people/2: column 'age' is 99 in the table but 20 in the history",
        "✗ people/3: column 'score' is None in the table but '' in the history"]), r.stdout
    assert "(people/3): typed values do not match the digest recorded in its commit" in problems[0]
    assert lines[-1] == "3 problems"
    j = people("verify", "--json")
    assert j.returncode == 1 and j.json["ok"] is False and sorted(j.json["problems"]) == sorted(
        p[2:] for p in problems)


def test_a_sha256_database_hashes_with_sha256(nsl):
    nsl.ok("init", "--hash", "sha256")
    commit = nsl.ok("save", "t", '{"id": 1, "name": "Ada", "score": 0.5}').stdout.strip()
    assert len(commit) == 64 and commit == nsl.ok("head").stdout.strip()
    row_hash = nsl.ok("hash", "t", "1").stdout.strip()
    shell = subprocess.run(f"{SQLITE3} -init /dev/null {nsl.db} 'select * from t where id=1' | head -c -1 | sha256sum",
                           shell=True, capture_output=True, text=True, check=True).stdout.split()[0]
    assert row_hash == shell == hashlib.sha256(b"1|Ada|0.5").hexdigest()
    assert nsl.ok("history", "t", "1", "--json").json[0]["version"] == row_hash
    assert nsl.ok("verify").returncode == 0
    # the algorithm is fixed at init: a second init keeps it
    nsl.ok("init")
    assert len(nsl.ok("save", "t", '{"id": 2}').stdout.strip()) == 64
