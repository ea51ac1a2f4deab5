"""The OpenAPI 3.1 document of the server, served at GET /openapi.json.

It is generated from the route table (`App.routes`: methods, paths, path and query parameters, whether a
body is taken, the permission) and from the declarations below, one per route, keyed "METHOD pattern":
the schemas of the query parameters, of the request body, of the answers, and the error statuses the
route can give beyond those every route of its kind gives. `document()` refuses a route without a
declaration, a declaration without a route, and a query parameter declared on one side only, so a new
route cannot be added without describing it (tests/server/test_openapi.py builds it strictly).

Error answers are all `{"error": {"code", "message"[, "hint"]}}`; for each status the `code` is one of
the codes of the error classes with that status (found by walking the NslError hierarchy), so the
document cannot drift from the errors the server really raises.

Statuses every route can give, added here rather than declared per route:
    400   an unknown or repeated query parameter, an invalid Content-Length or query string
    413   a body over the cap (the cap is checked before routing, so even a GET with a body)
    500   an unexpected failure ("internal")
    401   a missing or invalid token          (routes that read the database)
    503   the database stayed locked, the request's SQL ran over the time limit, or the server
          stopped while it ran                                                         (likewise)
    403   a token whose role may not do it    (routes needing the write or admin permission)
    404   an unknown table, object or commit  (routes with path parameters)
    422   an integer in a JSON body beyond 64 bits (routes taking a body)
405 (a method the path does not take, with an Allow header) and 404 for unknown paths are answers to
requests outside every operation, so they are told in the document's description, not per operation;
so are the answers to requests the HTTP server refuses before any route (431, 501, and a 400 or 413
for a malformed request or one over the server's own size limits).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .. import __version__
from ..errors import NslError
from .app import PERMISSIONS, PUBLIC, Request, Response, Route
from . import static
from .static import TYPES as STATIC_TYPES

OPENAPI_VERSION = "3.1.0"


# ---- schemas ------------------------------------------------------------------------------------

def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}


HASH = {"type": "string", "pattern": "^[0-9a-f]{40}([0-9a-f]{24})?$",
        "description": "A SHA-1 (40 hex digits) or SHA-256 (64) hash, as the database was created with."}
DATE = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$",
        "description": "UTC, ISO 8601 (2024-05-01T12:00:00.123Z)."}
COUNT = {"type": "integer", "minimum": 0}
# What every commit summary holds (the log's entries; a shown commit adds its lines).
COMMIT = {
    "commit": HASH,
    "date": DATE,
    "parents": {"type": "array", "items": HASH},
    "author": {"type": ["string", "null"]},
    "message": {"type": ["string", "null"]},
    "meta": {"type": "object"},
    "changes": COUNT,
    "inserted": COUNT,
    "updated": COUNT,
    "deleted": COUNT,
}
# The patterns of request parameters must take exactly what the server's checks take, in Python's
# dialect (schemathesis, jsonschema) and in ECMA-262's (JSON Schema's own):
# - whitespace is what Python's str.strip() removes, spelled out: "\s" is not quite that in ECMA-262;
# - a pattern ends with END: Python's "$" also matches before a final newline, "(?!\n)" stops that.
WS = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
END = r"$(?!\n)"
# A table a write may create: not empty, no control characters, no leading or trailing space, not
# nsl_* or sqlite_* (reserved), and over HTTP not ".", ".." nor holding "/", "\\", "{" or "}".
NEW_TABLE = {"type": "string",
             "pattern": r"^(?![Nn][Ss][Ll]_|[Ss][Qq][Ll][Ii][Tt][Ee]_|\.\.?$)"
                        rf"[^\x00-\x1f{WS}/\\{{}}](?:[^\x00-\x1f/\\{{}}]*[^\x00-\x1f{WS}/\\{{}}])?{END}",
             "description": "A table name (a new table is made on its first save)."}
# An attribute name (and so a key column): not empty, no control characters or '.', no leading '$'.
ATTRIBUTE = {"type": "string", "pattern": rf"^[^.$\x00-\x1f][^.\x00-\x1f]*{END}"}
# A commit: HEAD, HEAD~N (HEAD~ is HEAD~1) or at least 4 hex digits of its uuid, spaces around allowed.
COMMIT_REF = {"type": "string",
              "pattern": rf"^[{WS}]*(?:[Hh][Ee][Aa][Dd](?:~[0-9]*)?|[0-9A-Fa-f]{{4,}})[{WS}]*{END}",
              "description": "A commit uuid, a unique prefix of one (at least 4 hex digits), HEAD or HEAD~N."}
NAME = {"type": "string", "minLength": 1}

_SYNC_NAMES = {"type": "array", "maxItems": 200_000, "items": HASH}
_CODE = {"type": "string", "pattern": "^[0-9a-f]{40}$"}
_SYNC_CARD = {
    "type": "object",
    "description": "An artifact: a version (its typed encoding), a commit (its text, and the key of each "
                   "line) or a cluster. Its name is the hash of its content.",
    "required": ["kind", "name", "content"],
    "additionalProperties": False,
    "properties": {"kind": {"enum": ["version", "commit", "cluster"]}, "name": HASH,
                   "content": {"type": "string"},
                   "keys": {"type": "array", "items": {"type": ["string", "integer"]}}},
    "oneOf": [{"properties": {"kind": {"const": "commit"}}, "required": ["keys"]},
              {"properties": {"kind": {"enum": ["version", "cluster"]}}, "not": {"required": ["keys"]}}],
}
_SYNC_TABLES = {"type": "object", "additionalProperties": {"type": "string"},
                "description": "The key column of each table the commits name."}

_CONFLICT_SIDE = {
    "type": "object",
    "required": ["version", "commit", "date", "op", "object", "changed"],
    "additionalProperties": False,
    "properties": {
        "version": {**nullable(HASH), "description": "null for a deletion."},
        "commit": HASH, "date": DATE, "op": {"enum": ["inserted", "updated", "deleted"]},
        "object": {"anyOf": [{"type": "object"}, {"type": "null"}]},
        "changed": {"type": "object", "description": "field: [base value, this side's value]."},
    },
}

SCHEMAS = {
    "Conflicts": {
        "type": "object", "required": ["conflicts"], "additionalProperties": False,
        "properties": {"conflicts": {"type": "array", "items": {
            "type": "object",
            "required": ["table", "key", "policy", "state", "shown", "base", "ours", "theirs"],
            "additionalProperties": False,
            "properties": {
                "table": NAME, "key": {"type": ["string", "integer"]},
                "policy": {"enum": ["lww", "merge-fields", "manual"]},
                "state": {"enum": ["conflict", "merged"]},
                "shown": {"anyOf": [{"type": "object"}, {"type": "null"}], "description": "What the table shows."},
                "base": {"anyOf": [{"type": "null"}, {
                    "type": "object", "required": ["version", "object"], "additionalProperties": False,
                    "properties": {"version": HASH, "object": {"type": "object"}}}]},
                "ours": _CONFLICT_SIDE, "theirs": {"type": "array", "items": _CONFLICT_SIDE},
            }}}},
    },
    "ResolveRequest": {
        "type": "object", "additionalProperties": False,
        "description": "Exactly one of take (a version uuid prefix of the object's leaves, or \"deleted\") and object.",
        "properties": {"take": {"type": "string"}, "object": {"type": "object"},
                       "message": {"type": "string"}, "author": {"type": "string"}},
        "oneOf": [{"required": ["take"], "not": {"required": ["object"]}},
                  {"required": ["object"], "not": {"required": ["take"]}}],
    },
    "SyncRequest": {
        "description": "One round of sync (docs/sync-protocol.md), or a part of a clone.",
        "oneOf": [
            {"type": "object", "required": ["nsl", "project", "from", "hash"], "additionalProperties": False,
             "properties": {
                 "nsl": {"const": 1}, "project": _CODE, "from": _CODE, "hash": {"enum": ["sha1", "sha256"]},
                 "head": nullable(HASH), "pull": {"type": "boolean"}, "push": {"type": "boolean"},
                 "files": {"type": "array", "maxItems": 200_000, "items": _SYNC_CARD}, "tables": _SYNC_TABLES,
                 "igot": _SYNC_NAMES, "gimme": _SYNC_NAMES, "round": {"type": "integer", "minimum": 0}}},
            {"type": "object", "required": ["nsl", "clone"], "additionalProperties": False,
             "properties": {"nsl": {"const": 1}, "clone": {
                 "type": "object", "additionalProperties": False,
                 "properties": {"after": nullable({"type": "array", "minItems": 2, "maxItems": 2,
                                                   "items": {"type": "integer", "minimum": 0}})}}}},
        ],
    },
    "SyncReply": {
        "type": "object",
        "required": ["nsl", "project", "from", "hash", "head", "files", "tables", "igot", "gimme"],
        "properties": {
            "nsl": {"const": 1}, "project": _CODE, "from": _CODE, "hash": {"enum": ["sha1", "sha256"]},
            "head": nullable(HASH), "files": {"type": "array", "items": _SYNC_CARD}, "tables": _SYNC_TABLES,
            "igot": _SYNC_NAMES, "igot_complete": {"type": "boolean"}, "gimme": _SYNC_NAMES,
            "received": {"type": "object"},
            "clone": {"type": "object", "required": ["commits", "next"],
                      "properties": {"commits": {"type": "array", "items": {"type": "object"}},
                                     "next": nullable({"type": "array", "items": {"type": "integer"}}),
                                     "tables": _SYNC_TABLES,
                                     "clusters": {"type": "array", "items": _SYNC_CARD}}},
        },
    },
    "Error": {
        "type": "object",
        "description": "Every error answer: a stable code, a message for people, and sometimes a hint.",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {"error": {
            "type": "object",
            "required": ["code", "message"],
            "additionalProperties": False,
            "properties": {
                "code": {"type": "string", "pattern": "^[a-z][a-z_]*$"},
                "message": {"type": "string", "minLength": 1},
                "hint": {"type": "string", "minLength": 1},
            },
        }},
    },
    "Key": {"type": ["string", "integer"], "description": "An object's key: text or a 64-bit integer."},
    "Object": {"type": "object", "description": "A stored JSON object (its key attribute included)."},
    "NewObject": {
        "type": "object",
        "description": "A JSON object to save. Attribute names are non-empty, without control characters "
                       "or '.', and do not start with '$'; integers fit in 64 bits. The table's key "
                       "attribute (id, unless the table was made with another key) holds text (not "
                       "empty) or a 64-bit integer; an object without it, or with it null, gets a new "
                       "key (a ULID). Which attribute is the key depends on the table (in a table keyed "
                       "by another attribute, id is an ordinary one), so this schema cannot say more.",
        "propertyNames": ATTRIBUTE,
        "additionalProperties": ref("Value"),
    },
    "Value": {
        "description": "Any JSON value. An integer written without a fraction or exponent must fit in 64 "
                       "bits, however deep (else 422; write it as a string to keep it exact). JSON Schema "
                       "cannot tell 1e300 (a float, stored as one) from that many digits, so this schema "
                       "says no more."},
    "Cell": {
        "description": "One SQL value: null, a number, text, or a blob as {\"$base64\": ...} "
                       "(an infinite float is null).",
        "anyOf": [
            {"type": ["null", "integer", "number", "string"]},
            {"type": "object", "required": ["$base64"], "additionalProperties": False,
             "properties": {"$base64": {"type": "string", "contentEncoding": "base64"}}},
        ],
    },
    "Param": {"type": ["null", "boolean", "integer", "number", "string"], "description": "An SQL parameter."},
    "Table": {
        "type": "object",
        "required": ["name", "key", "columns", "count"],
        "additionalProperties": False,
        "properties": {
            "name": NAME,
            "key": NAME,
            "columns": {"type": "array", "items": NAME},
            "count": {**nullable(COUNT), "description": "Rows; null if the table was dropped with plain SQL."},
        },
    },
    "Tables": {
        "type": "object", "required": ["tables"], "additionalProperties": False,
        "properties": {"tables": {"type": "array", "items": ref("Table")}},
    },
    "Found": {
        "type": "object",
        "required": ["objects", "limit", "skip"],
        "additionalProperties": False,
        "properties": {
            "objects": {"type": "array", "items": ref("Object")},
            "limit": {"type": "integer", "minimum": 0, "maximum": 100_000},
            "skip": COUNT,
        },
    },
    "WriteResult": {
        "type": "object",
        "description": "commit is null when nothing changed (then the answer to a POST is 200, not 201).",
        "required": ["commit", "count", "keys"],
        "additionalProperties": False,
        "properties": {
            "commit": nullable(HASH),
            "count": COUNT,
            "keys": {"type": "array", "items": ref("Key")},
        },
    },
    "CommitResult": {
        "type": "object",
        "required": ["commit", "count", "keys"],
        "additionalProperties": False,
        "properties": {
            "commit": nullable(HASH),
            "count": COUNT,
            "keys": {"type": "array", "items": {
                "type": "object", "required": ["op", "table", "key"], "additionalProperties": False,
                "properties": {"op": {"enum": ["save", "delete"]}, "table": NAME, "key": ref("Key")},
            }},
        },
    },
    "Version": {
        "type": "object",
        "required": ["commit", "date", "op", "version", "parents", "author", "message", "object"],
        "additionalProperties": False,
        "properties": {
            "commit": HASH,
            "date": DATE,
            "op": {"enum": ["I", "U", "D"], "description": "Inserted, updated, deleted."},
            "version": {**nullable(HASH), "description": "null for a deletion."},
            "parents": {"type": "array", "items": HASH},
            "author": {"type": ["string", "null"]},
            "message": {"type": ["string", "null"]},
            "object": {"anyOf": [ref("Object"), {"type": "null"}], "description": "null for a deletion."},
        },
    },
    "History": {
        "type": "object", "required": ["history"], "additionalProperties": False,
        "properties": {"history": {"type": "array", "items": ref("Version")}},
    },
    "Commit": {
        "type": "object", "required": list(COMMIT), "additionalProperties": False, "properties": COMMIT,
    },
    "Log": {
        "type": "object", "required": ["commits"], "additionalProperties": False,
        "properties": {"commits": {"type": "array", "items": ref("Commit")}},
    },
    "CommitShown": {
        "type": "object",
        "required": [*COMMIT, "objects_uuid", "lines"],
        "additionalProperties": False,
        "properties": {
            **COMMIT,
            "objects_uuid": HASH,
            "lines": {"type": "array", "items": {
                "type": "object",
                "required": ["op", "table", "key", "version", "parents"],
                "additionalProperties": False,
                "properties": {
                    "op": {"enum": ["I", "U", "D"]},
                    "table": NAME,
                    "key": ref("Key"),
                    "version": {**nullable(HASH), "description": "null for a deletion."},
                    "parents": {"type": "array", "items": HASH},
                },
            }},
        },
    },
    "Head": {
        "type": "object", "required": ["head"], "additionalProperties": False,
        "properties": {"head": {**nullable(HASH), "description": "null before the first commit."}},
    },
    "Verify": {
        "type": "object",
        "required": ["ok", "head", "versions", "commits", "rows", "uncommitted", "problems"],
        "additionalProperties": False,
        "properties": {
            "ok": {"type": "boolean"},
            "head": nullable(HASH),
            "versions": COUNT,
            "commits": COUNT,
            "rows": COUNT,
            "uncommitted": COUNT,
            "problems": {"type": "array", "items": {"type": "string"}},
        },
    },
    "SQLResult": {
        "type": "object",
        "required": ["columns", "rows", "write"],
        "additionalProperties": False,
        "properties": {
            "columns": {"type": "array", "items": {"type": "string"}},
            "rows": {"type": "array", "items": {"type": "array", "items": ref("Cell")}},
            "write": {"type": "boolean", "description": "Whether the statement ran allowing writes."},
        },
    },
    # -- request bodies
    "FindRequest": {
        "type": "object",
        "required": ["table"],
        "additionalProperties": False,
        "properties": {
            "table": {"type": "string"},
            "where": {"type": ["object", "null"], "description": "A predicate, as `nsl find` takes."},
            "sort": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}},
                               {"type": "null"}],
                     "description": "a,-b (minus: descending), or an array of such names."},
            "limit": {"type": ["integer", "null"], "minimum": 0, "maximum": 100_000},
            "skip": {"type": ["integer", "null"], "minimum": 0, "maximum": 2 ** 62},
            "fields": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}},
                                 {"type": "null"}], "description": "a,b.c or an array of paths."},
        },
    },
    "SQLRequest": {
        "type": "object",
        "required": ["sql"],
        "additionalProperties": False,
        "properties": {
            "sql": {"type": "string", "pattern": rf"^[^\x00]*[^\x00{WS}][^\x00]*{END}",
                    "description": "One SQL statement (not blank; SQLite takes no NUL character in it)."},
            "params": {"anyOf": [{"type": "array", "items": ref("Param")},
                                 {"type": "object", "additionalProperties": ref("Param")},
                                 {"type": "null"}],
                       "description": "Values for ? (an array) or :name (an object)."},
            "write": {"type": ["boolean", "null"],
                      "description": "false: read-only; true: allow writes (needs the write permission); "
                                     "absent: read-only unless SQLite refuses it and the token may write."},
        },
    },
    "CommitRequest": {
        "type": "object",
        "required": ["ops"],
        "additionalProperties": False,
        "properties": {
            "message": {"type": ["string", "null"]},
            "author": {"type": ["string", "null"]},
            "ops": {"type": "array", "minItems": 1, "maxItems": 100_000, "items": {"oneOf": [
                {"type": "object", "required": ["save"], "additionalProperties": False, "properties": {
                    "save": {"type": "object", "required": ["table", "object"], "additionalProperties": False,
                             "properties": {"table": NEW_TABLE, "object": ref("NewObject"),
                                            "key": {"anyOf": [ATTRIBUTE, {"type": "null"}],
                                                    "description": "the key column of a new table"}}}}},
                {"type": "object", "required": ["delete"], "additionalProperties": False, "properties": {
                    "delete": {"type": "object", "required": ["table", "key"], "additionalProperties": False,
                               "properties": {"table": {"type": "string"}, "key": ref("Key")}}}},
            ]}},
        },
    },
    "VerifyRequest": {"type": ["object", "null"], "additionalProperties": False, "maxProperties": 0,
                      "description": "No options yet: no body, {} or null."},
}


def json_content(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


# ---- what each route declares -------------------------------------------------------------------

@dataclass(frozen=True)
class Op:
    """The description of one route.

    ok: {status: schema, or a full OpenAPI response object (a dict with "description")}
    query: {name: schema} for every query parameter the route takes (exactly Route.query)
    path: {name: schema} for path parameters whose schema is not a plain non-empty string
    body: the request body's JSON schema (required exactly when Route.body == "json")
    errors: statuses this route can give beyond those implied by its kind (see the module's doc)
    headers: request header parameters, {name: schema}
    links: OpenAPI links of the first success status
    """

    ok: dict
    query: dict = field(default_factory=dict)
    path: dict = field(default_factory=dict)
    body: dict | None = None
    errors: tuple = ()
    headers: dict = field(default_factory=dict)
    links: dict = field(default_factory=dict)
    description: str = ""


def _int_query(maximum: int, default: int | None = None) -> dict:
    s = {"type": "integer", "minimum": 0, "maximum": maximum}
    if default is not None:
        s["default"] = default
    return s


_TEXT = {"type": "string"}
_WHO = {"message": {**_TEXT, "description": "The commit message."},
        "author": {**_TEXT, "description": "The commit's author (default: the token's name)."}}
_FIND_QUERY = {
    "where": {**_TEXT, "description": 'A predicate as JSON text, e.g. {"age": {"$gt": 30}}.'},
    "sort": {**_TEXT, "description": "Attribute names, comma-separated; a leading - sorts descending."},
    "limit": _int_query(100_000, 1000),
    "skip": _int_query(999_999_999_999_999_999, 0),
    "fields": {**_TEXT, "description": "The attributes to return, comma-separated (a.b for nested ones)."},
}
_OBJECT_LINKS = {
    "GetSavedObject": {"operationId": "get_object",
                       "parameters": {"table": "$request.path.table", "key": "$response.body#/keys/0"}},
    "PutSavedObject": {"operationId": "put_object",
                       "parameters": {"table": "$request.path.table", "key": "$response.body#/keys/0"}},
    "SavedObjectHistory": {"operationId": "object_history",
                           "parameters": {"table": "$request.path.table", "key": "$response.body#/keys/0"}},
    "DeleteSavedObject": {"operationId": "delete_object",
                          "parameters": {"table": "$request.path.table", "key": "$response.body#/keys/0"}},
}

_FIRST_TABLE = "$response.body#/tables/0/name"


def _static_file_param() -> dict:
    try:
        names = sorted(static.assets())
    except OSError:  # no web folder: the route then answers 404 to every name
        names = []
    if not names:
        return {"type": "string", "minLength": 1, "description": "A file name."}
    return {"type": "string", "enum": names, "description": "A file shipped in nsl/server/web."}


_STATIC_HEADERS = {"If-None-Match": {**_TEXT, "description": "An ETag from an earlier answer (then 304)."}}
_STATIC_ANSWER_HEADERS = {"ETag": {"schema": {"type": "string"}, "required": True},
                          "Cache-Control": {"schema": {"const": "no-cache"}, "required": True}}
# A file fetched with ?v= its current version (as the page names it) is cached for good.
_FILE_ANSWER_HEADERS = {**_STATIC_ANSWER_HEADERS, "Cache-Control": {
    "schema": {"enum": ["no-cache", "public, max-age=31536000, immutable"]}, "required": True}}

API = "/api/v1"
OPS: dict[str, Op] = {
    f"GET {API}/tables": Op({200: ref("Tables")}, links={
        "FirstTableObjects": {"operationId": "find_objects", "parameters": {"table": _FIRST_TABLE}},
        "FirstTableLog": {"operationId": "get_log", "parameters": {"table": _FIRST_TABLE}}}),
    f"GET {API}/tables/{{table}}/objects": Op({200: ref("Found")}, query=_FIND_QUERY, errors=(422,)),
    f"POST {API}/tables/{{table}}/objects": Op(
        {201: ref("WriteResult"), 200: ref("WriteResult")}, query=_WHO,
        body={"anyOf": [ref("NewObject"), {"type": "array", "minItems": 1, "items": ref("NewObject")}]},
        path={"table": NEW_TABLE}, errors=(409,), links=_OBJECT_LINKS),
    f"GET {API}/tables/{{table}}/objects/{{key}}": Op({200: ref("Object")}),
    f"PUT {API}/tables/{{table}}/objects/{{key}}": Op({200: ref("WriteResult")}, query=_WHO,
                                                     body=ref("NewObject"), path={"table": NEW_TABLE}, errors=(409,)),
    f"DELETE {API}/tables/{{table}}/objects/{{key}}": Op({200: ref("WriteResult")}, query=_WHO, errors=(409,)),
    f"GET {API}/tables/{{table}}/objects/{{key}}/history": Op({200: ref("History")}),
    f"POST {API}/find": Op({200: ref("Found")}, body=ref("FindRequest"), errors=(404,)),
    f"POST {API}/sql": Op({200: ref("SQLResult")}, body=ref("SQLRequest"), errors=(403, 409)),
    f"POST {API}/commits": Op({201: ref("CommitResult"), 200: ref("CommitResult")},
                              body=ref("CommitRequest"), errors=(404, 409)),
    f"GET {API}/log": Op({200: ref("Log")}, query={
        "table": {**_TEXT, "description": "Only commits touching this table."},
        "key": {**_TEXT, "description": "Only commits touching this object (needs table)."},
        "n": _int_query(100_000, 100)}, errors=(404,)),
    f"GET {API}/commits/{{uuid}}": Op({200: ref("CommitShown")}, query={"lines": _int_query(1_000_000, 1000)},
                                      path={"uuid": COMMIT_REF}),
    f"GET {API}/head": Op({200: ref("Head")}),
    f"POST {API}/verify": Op({200: ref("Verify")}, body=ref("VerifyRequest")),
    f"GET {API}/conflicts": Op({200: ref("Conflicts")}, query={
        "table": {**_TEXT, "description": "Only the objects of this table."}}, errors=(404,)),
    f"POST {API}/tables/{{table}}/objects/{{key}}/resolve": Op(
        {201: ref("WriteResult")}, body=ref("ResolveRequest"), errors=(409,)),
    "POST /sync": Op({200: ref("SyncReply")}, body=ref("SyncRequest"), errors=(403, 409)),
    "GET /openapi.json": Op({200: {"description": "This document (OpenAPI 3.1).",
                                   "content": json_content({"type": "object", "required": ["openapi", "paths"]})}}),
    "GET /": Op({200: {"description": "The web interface's page.",
                       "headers": _STATIC_ANSWER_HEADERS, "content": {"text/html": {"schema": _TEXT}}},
                 304: {"description": "Not modified (If-None-Match matched the ETag)."}},
                headers=_STATIC_HEADERS),
    "GET /static/{file}": Op({200: {"description": "A file of the web interface.",
                                    "headers": _FILE_ANSWER_HEADERS,
                                    "content": {t.split(";")[0]: {"schema": _TEXT if t.startswith("text/") else
                                                                  {"type": "string", "contentMediaType": t}}
                                                for t in dict.fromkeys(STATIC_TYPES.values())}},
                              304: {"description": "Not modified (If-None-Match matched the ETag)."}},
                             path={"file": _static_file_param()},
                             query={"v": {**_TEXT, "description": "The version the page names (ignored)."}},
                             headers=_STATIC_HEADERS, errors=(404,)),
}


# ---- building the document ----------------------------------------------------------------------

class Undescribed(Exception):
    """The route table and the declarations above disagree."""


def _error_classes():
    seen, todo = [], [NslError]
    while todo:
        cls = todo.pop()
        if cls not in seen:
            seen.append(cls)
            todo.extend(cls.__subclasses__())
    return seen


def error_codes() -> dict[int, list[str]]:
    """{HTTP status: the codes of the error classes with that status}."""
    out: dict[int, set] = {}
    for cls in _error_classes():
        status = getattr(cls, "http_status", 500)
        if not isinstance(status, int) or not 400 <= status <= 599:
            status = 500
        out.setdefault(status, set()).add(cls.code)
    return {s: sorted(c) for s, c in sorted(out.items())}


_REASONS = {
    400: "Bad input (malformed JSON, a wrong type, an unknown field or query parameter, bad SQL).",
    401: "No token, or a token this database does not know.",
    403: "The token's role may not do this.",
    404: "No such table, object, commit or file.",
    409: "Refused in the database's state (a commit is checked out).",
    413: "The request body is larger than the server allows.",
    422: "A well-formed object that cannot be stored (a bad attribute name, an integer beyond 64 bits, ...).",
    500: "An unexpected failure (logged on the server; never a traceback).",
    503: "The database stayed locked by another writer, the request ran over its time limit, or the server "
         "was stopped while it ran.",
}


def _error_response(status: int, codes: dict[int, list[str]]) -> dict:
    schema = {"allOf": [ref("Error"), {"properties": {"error": {"properties": {
        "code": {"enum": codes.get(status, [])}}}}}]}
    resp = {"description": _REASONS.get(status, "An error."), "content": json_content(schema)}
    if status == 401:
        resp["headers"] = {"WWW-Authenticate": {"schema": {"type": "string", "pattern": "^Bearer "},
                                                "required": True}}
    return resp


def _statuses(route: Route, op: Op) -> set[int]:
    out = {400, 413, 500} | set(op.errors)
    if route.permission != PUBLIC:
        out |= {401, 503}
        if any(route.permission not in perms for perms in PERMISSIONS.values()):
            out.add(403)
    if "{" in route.pattern:
        out.add(404)
    if route.body is not None:
        out.add(422)
    return out


def _success(status: int, spec: dict, links: dict) -> dict:
    if "description" in spec:
        resp = dict(spec)
    else:
        resp = {"description": "Created." if status == 201 else "OK.", "content": json_content(spec)}
    if links:
        resp["links"] = links
    return resp


def _operation(route: Route, op: Op, codes) -> dict:
    params = []
    for name in re.findall(r"{([^}]+)}", route.pattern):
        params.append({"name": name, "in": "path", "required": True,
                       "schema": op.path.get(name, {"type": "string", "minLength": 1})})
    for name in route.query:
        params.append({"name": name, "in": "query", "required": False, "schema": op.query[name]})
    for name, schema in op.headers.items():
        params.append({"name": name, "in": "header", "required": False, "schema": schema})
    out = {"operationId": route.handler.__name__, "summary": route.summary or route.handler.__name__}
    if op.description:
        out["description"] = op.description
    if params:
        out["parameters"] = params
    if op.body is not None:
        out["requestBody"] = {"required": route.body == "json", "content": json_content(op.body)}
    responses = {}
    first = True
    for status, spec in op.ok.items():
        responses[str(status)] = _success(status, spec, op.links if first else {})
        first = False
    for status in sorted(_statuses(route, op)):
        responses[str(status)] = _error_response(status, codes)
    out["responses"] = responses
    out["security"] = [] if route.permission == PUBLIC else [{"bearer": []}]
    return out


def _check(route: Route, op: Op | None) -> list[str]:
    key = f"{route.method} {route.pattern}"
    if op is None:
        return [f"{key}: no description in nsl/server/openapi.py OPS"]
    problems = []
    if set(op.query) != set(route.query):
        problems.append(f"{key}: query parameters {sorted(route.query)} but described {sorted(op.query)}")
    path_names = set(re.findall(r"{([^}]+)}", route.pattern))
    if set(op.path) - path_names:
        problems.append(f"{key}: describes path parameters {sorted(set(op.path) - path_names)} it does not have")
    if (route.body is None) != (op.body is None):
        problems.append(f"{key}: body {route.body!r} but {'a' if op.body else 'no'} body schema is described")
    return problems


def document(routes, *, strict: bool = True) -> dict:
    """The OpenAPI document of `routes`. strict: raise Undescribed if a route and OPS disagree (else a
    route without a description is still listed, with what the route table says about it)."""
    routes = list(routes)
    problems = []
    for r in routes:
        problems += _check(r, OPS.get(f"{r.method} {r.pattern}"))
    known = {f"{r.method} {r.pattern}" for r in routes}
    if strict:
        problems += [f"{k}: described in OPS but not in the route table" for k in OPS if k not in known]
        if problems:
            raise Undescribed("; ".join(problems))
    codes = error_codes()
    paths: dict[str, dict] = {}
    for r in routes:
        op = OPS.get(f"{r.method} {r.pattern}")
        if op is None or _check(r, op):  # only when not strict: what the route table knows
            op = Op({200: {"description": "OK."}}, query={q: {"type": "string"} for q in r.query},
                    body={} if r.body else None)
        paths.setdefault(r.pattern, {})[r.method.lower()] = _operation(r, op, codes)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "nsl serve",
            "version": __version__,
            "summary": "git for SQLite data: a nsl database's versioned JSON objects over HTTP.",
            "description": (
                "JSON in, JSON out. Requests carry `Authorization: Bearer TOKEN`; a database with no token "
                "at all is open to every request (served on loopback only). Every error is "
                '`{"error": {"code", "message"[, "hint"]}}` with its status; a path no route has is a 404 '
                "`unknown_route`, and a method a path does not take a 405 `method_not_allowed` with an "
                "`Allow` header. A request the HTTP server cannot take is refused before any route, in the "
                "same shape: 400 `malformed_request` (a bad request line, header, Content-Length or chunk), "
                "413 `body_too_large`, 431 `headers_too_large`, 501 `not_implemented` (a Transfer-Encoding "
                "other than chunked). A failed request changes nothing."),
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "A token made with `nsl token add NAME --role ROLE`."}},
        },
    }


def serve(req: Request) -> Response:
    """GET /openapi.json: the document of the app's own route table (made once per app)."""
    cached = getattr(req.app, "_openapi_doc", None)
    if cached is None or cached[0] is not req.app.routes:
        from ..core.values import dumps
        cached = (req.app.routes, dumps(document(req.app.routes, strict=False)))
        req.app._openapi_doc = cached
    return Response(200, headers=[("Cache-Control", "no-cache")], body=cached[1])
