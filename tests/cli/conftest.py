"""Fixtures for the command-line tests: a hermetic environment and nsl databases driven by subprocesses."""
from __future__ import annotations

import json
import os
import shutil

import pytest

from clitools import PEOPLE, Nsl


@pytest.fixture(autouse=True)
def cli_env(tmp_path, monkeypatch):
    """Hermetic: the test's own HOME and config dir, no colours, no NSL_* from outside."""
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("NO_COLOR", "1")
    for k in list(os.environ):
        if k.startswith("NSL_"):
            monkeypatch.delenv(k, raising=False)
    monkeypatch.chdir(tmp_path)
    return home


@pytest.fixture
def nsl(tmp_path, cli_env) -> Nsl:
    """`nsl` on tmp_path/nsl.db (not created yet)."""
    return Nsl(tmp_path / "nsl.db", cli_env, tmp_path)


@pytest.fixture(scope="session")
def people_template(tmp_path_factory):
    """The PEOPLE table in two commits (the second one updates Ada's age), made once with the real CLI."""
    d = tmp_path_factory.mktemp("people-template")
    (d / "home").mkdir()
    t = Nsl(d / "nsl.db", d / "home", d)
    t.ok("init")
    t.ok("save", "people", json.dumps(PEOPLE), "-m", "first people")
    t.ok("save", "people", json.dumps({**PEOPLE[0], "age": 37}), "-m", "Ada's birthday")
    assert sorted(p.name for p in d.glob("nsl.db*")) == ["nsl.db"]
    return t.db


@pytest.fixture
def people(nsl, people_template) -> Nsl:
    """A fresh copy of the people database for this test."""
    shutil.copy(people_template, nsl.db)
    return nsl
