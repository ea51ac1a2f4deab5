"""Settings: the database's own (`nsl config`, kept in nsl_config), the user's config file, remotes,
and where a remote's token comes from.

Names are git-style `section.name` or `section.sub.name`:

    remote.<name>.url         where `nsl push NAME` goes (an http(s) URL or a path to a database)
    remote.<name>.token-env   the environment variable holding that remote's token
    table.<name>.conflicts    lww | merge-fields | manual (see nsl.core.conflicts)

The user's file `$XDG_CONFIG_HOME/nsl/config` (else `~/.config/nsl/config`) uses git's syntax and is
read after the database's settings; there a remote may also hold a `token` (keep the file private).
Tokens never come from a command-line argument, so they never land in shell history.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import BadInput, UnknownRemote
from .database import Database

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_KEY = re.compile(r"[a-z][a-z0-9-]*(\.[^\x00-\x1f]+)?\.[a-z][a-z0-9-]*")
KNOWN = {"remote": {"url", "token-env"}, "table": {"conflicts"}}


def check_remote_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise BadInput(f"invalid remote name {name!r}: use letters, digits, '.', '_' or '-'")
    return name


def split_key(key: str) -> tuple[str, str | None, str]:
    """(section, subsection or None, name) of a setting, checked against the ones nsl knows."""
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise BadInput(f"invalid setting {key!r}: use section.name or section.subsection.name")
    section, _, rest = key.partition(".")
    sub, _, name = rest.rpartition(".")
    if section not in KNOWN or name not in KNOWN[section] or not sub:
        known = ", ".join(f"{s}.<name>.{n}" for s, names in KNOWN.items() for n in sorted(names))
        raise BadInput(f"unknown setting {key!r} (settings: {known})")
    return section, sub, name


def check_value(key: str, value: str) -> str:
    section, sub, name = split_key(key)
    if section == "table" and name == "conflicts":
        from .conflicts import check_policy

        check_policy(value)
    if section == "remote" and name == "url":
        check_url(value)
    if section == "remote" and name == "token-env" and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value or ""):
        raise BadInput(f"invalid environment variable name {value!r}")
    return value


# ---- the database's settings ---------------------------------------------------------------------

def get(db: Database, key: str):
    row = db.conn.execute("SELECT value FROM nsl_config WHERE name=?", (key,)).fetchone()
    if row is not None:
        return row[0]
    return user_config().get(key)


def set_(db: Database, key: str, value: str) -> None:
    check_value(key, value)
    with db.write(check_checkout=False):
        db.conn.execute("INSERT OR REPLACE INTO nsl_config(name, value) VALUES (?, ?)", (key, value))
        section, sub, name = split_key(key)
        if section == "table" and name == "conflicts":
            _repick(db, sub)


def unset(db: Database, key: str) -> bool:
    split_key(key)
    with db.write(check_checkout=False):
        n = db.conn.execute("DELETE FROM nsl_config WHERE name=?", (key,)).rowcount
        section, sub, name = split_key(key)
        if n and section == "table" and name == "conflicts":
            _repick(db, sub)
    return bool(n)


def items(db: Database) -> dict:
    return dict(db.conn.execute("SELECT name, value FROM nsl_config ORDER BY name").fetchall())


def _repick(db: Database, table: str) -> None:
    """A new conflict policy for a table: what its objects in conflict show is chosen again."""
    from . import conflicts, incoming, states

    tbl = db.table(table, missing_ok=True)
    if tbl is None or not conflicts.has_any(db, tbl.name):
        return
    shown, merged = [], []
    for (key,) in db.conn.execute("SELECT DISTINCT key FROM nsl_conflict WHERE tbl=?", (tbl.name,)).fetchall():
        target = conflicts.set_leaves(db, tbl.name, key, conflicts.leaves(db, tbl.name, key))
        if target is None:
            merged.append(key)
        else:
            op = db.conn.execute("SELECT op FROM nsl_version WHERE vid=?", (target,)).fetchone()[0]
            shown.append((key, None if op == "D" else target))
    if not db.meta("checkout"):
        states.write_rows(db, tbl, shown)
        incoming.write_merged(db, tbl, merged)


# ---- remotes ----------------------------------------------------------------------------------------

def check_url(url: str) -> str:
    if not isinstance(url, str) or not url.strip() or any(ord(ch) < 32 for ch in url):
        raise BadInput(f"invalid remote URL {url!r}")
    low = url.lower()
    if low.startswith(("http://", "https://")):
        scheme, _, rest = url.partition("://")
        authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
        if "@" in authority:
            # Never echo it: the part before @ is a secret that must not land in logs or the config.
            shown = f"{scheme}://***@{authority.rpartition('@')[2]}"
            raise BadInput(f"a remote URL must not hold credentials ({shown}): a URL is kept in settings and "
                           f"shell history",
                           hint="put the token in an environment variable named with --token-env VAR "
                                "(`nsl remote add NAME URL --token-env VAR`, `nsl clone URL --token-env VAR`), "
                                "or in NSL_TOKEN")
        if not re.fullmatch(r"https?://[^/\s?#]+(/[^\s?#]*)?", url, re.I):
            raise BadInput(f"invalid remote URL {url!r}: expected http(s)://HOST[:PORT][/PATH]")
    elif "://" in url and not low.startswith("file://"):
        raise BadInput(f"unsupported remote URL {url!r}: use http://, https:// or a path to a database")
    return url


def remotes(db: Database) -> dict[str, dict]:
    out: dict[str, dict] = {}
    merged = dict(user_config())
    merged.update(items(db))
    for key, value in merged.items():
        if key.startswith("remote."):
            sub, _, name = key[len("remote."):].rpartition(".")
            if sub and name in ("url", "token-env"):
                out.setdefault(sub, {})[name] = value
    return {k: v for k, v in sorted(out.items()) if "url" in v}


def add_remote(db: Database, name: str, url: str, token_env: str | None = None) -> None:
    check_remote_name(name)
    check_url(url)
    if token_env is not None:
        check_value(f"remote.{name}.token-env", token_env)
    if name in remotes(db) and db.conn.execute("SELECT 1 FROM nsl_config WHERE name=?",
                                               (f"remote.{name}.url",)).fetchone():
        raise BadInput(f"remote {name!r} exists already", hint=f"remove it first: nsl remote remove {name}")
    with db.write(check_checkout=False):
        db.conn.execute("INSERT OR REPLACE INTO nsl_config(name, value) VALUES (?, ?)", (f"remote.{name}.url", url))
        if token_env:
            db.conn.execute("INSERT OR REPLACE INTO nsl_config(name, value) VALUES (?, ?)",
                            (f"remote.{name}.token-env", token_env))


def remove_remote(db: Database, name: str) -> None:
    check_remote_name(name)
    with db.write(check_checkout=False):
        n = db.conn.execute("DELETE FROM nsl_config WHERE name LIKE ? ESCAPE '\\'",
                            (f"remote.{_like(name)}.%",)).rowcount
    if not n:
        raise UnknownRemote(f"no remote {name!r} in this database")


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def resolve_remote(db: Database, remote: str | None) -> tuple[str, str | None, str]:
    """(url, token, name) for a remote name, a URL or a path (default: origin)."""
    remote = remote or "origin"
    known = remotes(db)
    if remote in known:
        url = check_url(known[remote]["url"])
        return url, token_for(remote, known[remote]), remote
    if remote.lower().startswith(("http://", "https://", "file://")) or "/" in remote or remote.endswith(".db") \
            or os.path.exists(remote):
        check_url(remote)
        return remote, token_for(None, {}), remote
    if remote == "origin":
        raise UnknownRemote("this database has no remote 'origin'",
                            hint="add one with `nsl remote add origin URL`, or name a URL or path")
    raise UnknownRemote(f"no remote {remote!r} (and it is not a URL or a path)")


def token_for(name: str | None, settings: dict) -> str | None:
    """A remote's token: from the variable its token-env names, else the user config's
    remote.NAME.token, else $NSL_TOKEN."""
    var = settings.get("token-env")
    if var and os.environ.get(var):
        return os.environ[var]
    if name:
        tok = user_config().get(f"remote.{name}.token")
        if tok:
            return tok
    return os.environ.get("NSL_TOKEN") or None


# ---- the user's config file ----------------------------------------------------------------------

def user_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "nsl" / "config"


def user_config() -> dict[str, str]:
    """The user's config file as flat `section.sub.name` keys (git syntax; missing file: empty)."""
    path = user_config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError, PermissionError, IsADirectoryError):
        return {}
    except UnicodeDecodeError:
        raise BadInput(f"{path}: not UTF-8 text") from None
    out: dict[str, str] = {}
    section = None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        m = re.fullmatch(r'\[\s*([A-Za-z][A-Za-z0-9-]*)(?:\s+"((?:[^"\\]|\\.)*)")?\s*\]', line)
        if m:
            section = m.group(1).lower() + (f".{m.group(2)}" if m.group(2) is not None else "")
            continue
        m = re.fullmatch(r'([A-Za-z][A-Za-z0-9-]*)\s*=\s*(.*)', line)
        if not m or section is None:
            raise BadInput(f"{path}, line {n}: cannot read {raw.strip()[:60]!r} (git config syntax expected)")
        value = m.group(2).strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        out[f"{section}.{m.group(1).lower()}"] = value
    return out
