"""Access tokens for serving a database: named, with a role, stored only as a SHA-256 hash.

A token is `nsl_` + 32 random bytes (URL-safe base64). It is shown once, when made; the database keeps
its SHA-256, never the token. With 256 random bits a plain hash is enough (no salt or slow KDF is
needed: there is nothing to guess). `check` compares the hash of a presented token with every stored
hash in constant time, so the time it takes says nothing about how close a guess was.

The tokens live in `nsl_token`, made on first use. They are not history: no commit records them, and
they may be changed while an old commit is checked out.

A server checks a token on every request: the stored hashes are read once per state of the database
(`Database.cached`), so a token added or removed by another process counts from the next request on.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from ..errors import BadInput, NotFound
from .database import Database, now_iso

ROLES = ("read", "write", "sync", "admin")
PREFIX = "nsl_"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")

_CREATE = """
CREATE TABLE IF NOT EXISTS nsl_token(
  name TEXT PRIMARY KEY,
  role TEXT NOT NULL,
  hash TEXT NOT NULL,              -- SHA-256 of the token, hex
  created TEXT NOT NULL
)"""


class UnknownToken(NotFound):
    code = "unknown_token"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def check_name(name) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise BadInput(
            f"invalid token name {name!r}: use 1 to 64 letters, digits, '.', '_', '-' or '@', "
            "starting with a letter or digit")
    return name


def check_role(role) -> str:
    if role not in ROLES:
        raise BadInput(f"invalid role {role!r}: use one of {', '.join(ROLES)}")
    return role


def _exists(db: Database) -> bool:
    return db.conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='nsl_token'").fetchone() is not None


def add(db: Database, name: str, role: str) -> str:
    """Make a token NAME with ROLE and return it; only its hash is stored, so this is the one chance
    to see it."""
    check_name(name)
    check_role(role)
    token = PREFIX + secrets.token_urlsafe(32)
    with db.write(check_checkout=False):
        db.conn.execute(_CREATE)
        if db.conn.execute("SELECT 1 FROM nsl_token WHERE name=?", (name,)).fetchone():
            raise BadInput(f"a token named {name!r} exists already",
                           hint=f"remove it first with `nsl token remove {name}`, or choose another name")
        db.conn.execute("INSERT INTO nsl_token(name, role, hash, created) VALUES (?, ?, ?, ?)",
                        (name, role, _hash(token), now_iso()))
    return token


def _list(db: Database) -> list[dict]:
    """Every token's name, role and creation date (never the token or its hash), by name."""
    if not _exists(db):
        return []
    return [{"name": n, "role": r, "created": c} for n, r, c in db.conn.execute(
        "SELECT name, role, created FROM nsl_token ORDER BY name")]


def remove(db: Database, name: str) -> None:
    """Remove token NAME: requests carrying it are refused from then on."""
    if not isinstance(name, str) or not name:
        raise BadInput("give the name of the token to remove")
    with db.write(check_checkout=False):
        gone = _exists(db) and db.conn.execute("DELETE FROM nsl_token WHERE name=?", (name,)).rowcount
        if not gone:
            raise UnknownToken(f"no token named {name!r}", hint="`nsl token list` shows the tokens", name=name)


def _read_stored(db: Database) -> tuple:
    if not _exists(db):
        return ()
    return tuple((name, role, str(stored).encode()) for name, role, stored in
                 db.conn.execute("SELECT name, role, hash FROM nsl_token"))


def _stored(db: Database) -> tuple:
    """(name, role, hash as bytes) of every token, as the database holds them now."""
    return db.cached("tokens", _read_stored, db)


def count(db: Database) -> int:
    """How many tokens there are; with none, a server on loopback is open to every request."""
    return len(_stored(db))


def check(db: Database, token) -> tuple[str, str] | None:
    """(name, role) of the token, or None when it is not one of this database's tokens.

    Every stored hash is compared, each with hmac.compare_digest, whatever matched before.
    """
    if not isinstance(token, str) or not token:
        return None
    stored = _stored(db)
    if not stored:
        return None
    digest = _hash(token).encode()
    found = None
    for name, role, h in stored:
        if hmac.compare_digest(h, digest) and found is None:
            found = (name, role)
    return found


# The verb users expect; defined last so the module's own code never meets the shadowed builtin.
list = _list  # noqa: A001

__all__ = ["ROLES", "add", "list", "remove", "check", "count", "check_name", "check_role", "UnknownToken"]
