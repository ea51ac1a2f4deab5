"""nsl (NoSQLite): git for SQLite data.

The library API: open or create a database, then call the verbs on it.

    import nsl
    db, _ = nsl.init("app.db")
    nsl.save(db, "people", [{"id": 1, "name": "Ada"}], message="first")
    list(nsl.find(db, "people", {"name": "Ada"}))
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .core.database import Database

# The API's names and where they live, imported on first use (PEP 562): a command such as `nsl save`
# then loads only the modules it needs, not the sync client, verify or time travel.
_LAZY = {
    "config": (".core.config", None),
    "init": (".core.adopt", "init"),
    "head": (".core.commits", "head"),
    "Database": (".core.database", "Database"),
    "diff": (".core.history", "diff"),
    "history": (".core.history", "history"),
    "log": (".core.history", "log"),
    "show": (".core.history", "show"),
    "commit": (".core.objects", "commit_pending"),
    "delete": (".core.objects", "delete"),
    "find": (".core.objects", "find"),
    "get": (".core.objects", "get"),
    "row_hash": (".core.objects", "row_hash"),
    "save": (".core.objects", "save"),
    "status": (".core.objects", "status"),
    "sql": (".core.sql", "run"),
    "checkout": (".core.travel", "checkout"),
    "restore": (".core.travel", "restore"),
    "revert": (".core.travel", "revert"),
    "rebuild": (".core.verify", "rebuild"),
    "verify": (".core.verify", "verify"),
    "NslError": (".errors", "NslError"),
}


def __getattr__(name: str):
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = importlib.import_module(module, __name__)
    if attr is not None:
        value = getattr(value, attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__version__ = "0.1.0"


def open(path=None) -> Database:  # noqa: A001  (the verb users expect)
    """Open an existing nsl database (path, then $NSL_DB, then ./nsl.db)."""
    from .core.database import Database

    return Database.open(path)


def pull(db: Database, remote: str | None = None, **kw):
    """Fetch what the remote (a name, an http(s) URL or a path) has and `db` lacks. See nsl.sync.client."""
    from .core import config
    from .sync import client

    url, token, _ = config.resolve_remote(db, remote)
    return client.run(db, url, kw.pop("token", token), pull=True, push=False, **kw)


def push(db: Database, remote: str | None = None, **kw):
    """Send the remote what `db` has and it lacks."""
    from .core import config
    from .sync import client

    url, token, _ = config.resolve_remote(db, remote)
    return client.run(db, url, kw.pop("token", token), pull=False, push=True, **kw)


def clone(url: str, path, token: str | None = None, **kw):
    """A new database at `path` holding everything the remote at `url` has."""
    from .sync.clone import clone as _clone

    return _clone(url, path, token, **kw)


__all__ = [
    "Database", "NslError", "init", "open", "save", "get", "find", "delete", "commit", "status", "diff",
    "log", "show", "history", "checkout", "restore", "revert", "head", "verify", "rebuild", "row_hash", "sql",
    "config", "pull", "push", "clone",
]
