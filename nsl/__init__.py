"""nsl (NoSQLite): git for SQLite data.

The library API: open or create a database, then call the verbs on it.

    import nsl
    db, _ = nsl.init("app.db")
    nsl.save(db, "people", [{"id": 1, "name": "Ada"}], message="first")
    list(nsl.find(db, "people", {"name": "Ada"}))
"""
from .core import config
from .core.adopt import init
from .core.commits import head
from .core.database import Database
from .core.history import diff, history, log, show
from .core.objects import commit_pending as commit
from .core.objects import delete, find, get, row_hash, save, status
from .core.sql import run as sql
from .core.travel import checkout, restore, revert
from .core.verify import rebuild, verify
from .errors import NslError

__version__ = "0.1.0"


def open(path=None) -> Database:  # noqa: A001  (the verb users expect)
    """Open an existing nsl database (path, then $NSL_DB, then ./nsl.db)."""
    return Database.open(path)


def pull(db: Database, remote: str | None = None, **kw):
    """Fetch what the remote (a name, an http(s) URL or a path) has and `db` lacks. See nsl.sync.client."""
    from .sync import client

    url, token, _ = config.resolve_remote(db, remote)
    return client.run(db, url, kw.pop("token", token), pull=True, push=False, **kw)


def push(db: Database, remote: str | None = None, **kw):
    """Send the remote what `db` has and it lacks."""
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
