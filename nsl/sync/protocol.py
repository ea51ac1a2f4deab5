"""The sync message format: what a request and a reply may hold, checked, and the limits of each.

A message is one JSON object (docs/sync-protocol.md describes it with an example exchange):

    request  {"nsl": 1, "project", "from", "hash", "head", "pull", "push",
              "files": [card...], "tables": {table: key column}, "igot": [name...], "gimme": [name...]}
             or, to clone, {"nsl": 1, "clone": {"after": [cid, line] | null}}
    reply    {"nsl": 1, "project", "from", "hash", "head", "files", "tables", "igot", "igot_complete",
              "gimme", "received": {...}}  or  {..., "clone": {"commits": [...], "next": ...}}
    card     {"kind": "version" | "commit" | "cluster", "name": HASH, "content": TEXT, "keys": [...]}

This module knows nothing of HTTP: transports carry the bytes, the client and server use these checks.
"""
from __future__ import annotations

import re

from ..errors import ProtocolError

PROTOCOL = 1

# Bounds, after Fossil's: a request carries about 1 MB (files, names asked for and told of), a reply
# about 5 MB or 20 seconds of work; the artifacts asked for per round start small and grow while the
# remote keeps up, as far as a request has room for their names.
REQUEST_BYTES = 1_000_000
PUSH_ROOM = 250_000     # room a request that pushes always keeps for files (Fossil's max-upload)
REPLY_BYTES = 5_000_000
REPLY_SECONDS = 20.0
GIMME_FIRST = 1_000
REPLY_GIMME_MAX = 50_000    # phantoms a server asks for in one reply (at most 3.4 MB of names)
IGOT_MAX = 20_000
MAX_CARDS = 200_000
CLONE_BYTES = 5_000_000

_HASH = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_CODE = re.compile(r"[0-9a-f]{40}")
CARD_KINDS = ("version", "commit", "cluster")


def _type(v) -> str:
    return {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number",
            bool: "a boolean", type(None): "null"}.get(type(v), type(v).__name__)


def _names(msg: dict, field: str, who: str) -> list[str]:
    v = msg.get(field, [])
    if not isinstance(v, list) or len(v) > MAX_CARDS:
        raise ProtocolError(f"{who}: {field} must be an array of at most {MAX_CARDS} names")
    for n in v:
        if not isinstance(n, str) or not _HASH.fullmatch(n):
            raise ProtocolError(f"{who}: {field} holds {str(n)[:50]!r}, which is not an artifact name")
    return v


def _cards(msg: dict, who: str) -> list[dict]:
    v = msg.get("files", [])
    if not isinstance(v, list) or len(v) > MAX_CARDS:
        raise ProtocolError(f"{who}: files must be an array of at most {MAX_CARDS} cards")
    for c in v:
        if not isinstance(c, dict):
            raise ProtocolError(f"{who}: a file card must be an object, got {_type(c)}")
        extra = set(c) - {"kind", "name", "content", "keys"}
        if extra:
            raise ProtocolError(f"{who}: unknown field {sorted(extra)[0]!r} in a file card")
        if c.get("kind") not in CARD_KINDS:
            raise ProtocolError(f"{who}: a file card's kind must be one of {', '.join(CARD_KINDS)}")
        if not isinstance(c.get("name"), str) or not _HASH.fullmatch(c["name"]):
            raise ProtocolError(f"{who}: a file card's name must be an artifact hash")
        if not isinstance(c.get("content"), str):
            raise ProtocolError(f"{who}: a file card's content must be a string")
        if ("keys" in c) != (c["kind"] == "commit") or ("keys" in c and not isinstance(c["keys"], list)):
            raise ProtocolError(f"{who}: a commit card (and only a commit card) carries the keys of its lines")
        if "keys" in c and not all(type(k) in (str, int) for k in c["keys"]):
            raise ProtocolError(f"{who}: a commit's keys are strings or integers")
    return v


def _tables(msg: dict, who: str) -> dict:
    v = msg.get("tables", {})
    if not isinstance(v, dict) or not all(isinstance(k, str) and isinstance(x, str) for k, x in v.items()):
        raise ProtocolError(f"{who}: tables must map table names to key column names")
    return v


def _header(msg, who: str, allowed: set) -> None:
    if not isinstance(msg, dict):
        raise ProtocolError(f"{who}: a sync message is a JSON object, got {_type(msg)}")
    if type(msg.get("nsl")) is not int or msg.get("nsl") != PROTOCOL:
        raise ProtocolError(f"{who}: not a nsl sync message of protocol {PROTOCOL} (got nsl={msg.get('nsl')!r})",
                            hint="both sides need a nsl that speaks the same sync protocol")
    extra = set(msg) - allowed
    if extra:
        raise ProtocolError(f"{who}: unknown field {sorted(extra)[0]!r}")


def _identity(msg: dict, who: str):
    """Check who sent a message (project, db code, hash, head); returns the head."""
    for f in ("project", "from"):
        if not isinstance(msg.get(f), str) or not _CODE.fullmatch(msg[f]):
            raise ProtocolError(f"{who}: {f} must be 40 hex digits")
    if msg.get("hash") not in ("sha1", "sha256"):
        raise ProtocolError(f"{who}: hash must be sha1 or sha256")
    head = msg.get("head")
    if head is not None and (not isinstance(head, str) or not _HASH.fullmatch(head)):
        raise ProtocolError(f"{who}: head must be null or a hash")
    return head


_REQUEST_FIELDS = {"nsl", "project", "from", "hash", "head", "pull", "push", "files", "tables", "igot",
                   "gimme", "clone", "round"}
_REPLY_FIELDS = {"nsl", "project", "from", "hash", "head", "files", "tables", "igot", "igot_complete",
                 "gimme", "received", "clone"}


def check_request(msg) -> dict:
    """A request's fields, checked, with defaults filled in."""
    who = "sync request"
    _header(msg, who, _REQUEST_FIELDS)
    if "clone" in msg:
        cl = msg["clone"]
        if set(msg) - {"nsl", "clone"}:
            raise ProtocolError(f"{who}: a clone request holds only nsl and clone")
        if not isinstance(cl, dict) or set(cl) - {"after"}:
            raise ProtocolError(f"{who}: clone must be {{\"after\": [commit, line] | null}}")
        after = cl.get("after")
        if after is not None and not (isinstance(after, list) and len(after) == 2
                                      and all(type(x) is int and x >= 0 for x in after)):
            raise ProtocolError(f"{who}: clone.after must be null or [commit number, line number]")
        return {"clone": {"after": after}}
    head = _identity(msg, who)
    for f in ("pull", "push"):
        if type(msg.get(f, False)) is not bool:
            raise ProtocolError(f"{who}: {f} must be true or false")
    if "round" in msg and (type(msg["round"]) is not int or msg["round"] < 0):
        raise ProtocolError(f"{who}: round must be a whole number")
    return {"project": msg["project"], "from": msg["from"], "hash": msg["hash"], "head": head,
            "pull": msg.get("pull", False), "push": msg.get("push", False), "files": _cards(msg, who),
            "tables": _tables(msg, who), "igot": _names(msg, "igot", who), "gimme": _names(msg, "gimme", who)}


def check_reply(msg) -> dict:
    who = "the remote's reply"
    _header(msg, who, _REPLY_FIELDS)
    head = _identity(msg, who)
    out = {"project": msg["project"], "from": msg["from"], "hash": msg["hash"], "head": head,
           "files": _cards(msg, who), "tables": _tables(msg, who), "igot": _names(msg, "igot", who),
           "igot_complete": bool(msg.get("igot_complete")), "gimme": _names(msg, "gimme", who)}
    if "clone" in msg:
        cl = msg["clone"]
        if not isinstance(cl, dict) or not isinstance(cl.get("commits"), list):
            raise ProtocolError(f"{who}: clone must hold a commits array")
        out["clone"] = cl
    return out


def name_size(algo: str) -> int:
    """Bytes one artifact name takes in a message's list: the hash in quotes, and a comma."""
    return (64 if algo == "sha256" else 40) + 3


def names_in(room: int, algo: str) -> int:
    """How many artifact names fit in `room` bytes of a message."""
    return max(0, room) // name_size(algo)


def card_size(card: dict) -> int:
    return len(card["content"]) + 120 + (16 * len(card.get("keys", ())))
