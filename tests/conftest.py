"""Fixtures shared by every test: a hermetic environment and fresh nsl databases."""
from __future__ import annotations

import pytest

import nsl


@pytest.fixture(autouse=True)
def hermetic_env(tmp_path_factory, monkeypatch):
    """No test reads the developer's config, colours, or an NSL_DB from the outside."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.delenv("NSL_DB", raising=False)
    monkeypatch.delenv("NSL_AUTHOR", raising=False)


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "test.db"


@pytest.fixture
def db(db_path):
    """A fresh, empty nsl database (library API)."""
    database, _ = nsl.init(db_path)
    yield database
    database.close()
