"""nsl (NoSQLite): git for SQLite data.

The library API: open or create a database, then call the verbs on it.

    import nsl
    db, _ = nsl.init("app.db")
    nsl.save(db, "people", [{"id": 1, "name": "Ada"}], message="first")
    list(nsl.find(db, "people", {"name": "Ada"}))
"""
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


__all__ = [
    "Database", "NslError", "init", "open", "save", "get", "find", "delete", "commit", "status", "diff",
    "log", "show", "history", "checkout", "restore", "revert", "head", "verify", "rebuild", "row_hash", "sql",
]
