"""JSON values <-> SQLite cells: what is saved is what comes back.

Strings, 64-bit integers, floats and null map to SQLite's own types; true/false are stored as 1/0 and
objects/arrays as compact JSON text, with the kind kept in the version's typed encoding. Integers
outside 64 bits are refused: SQLite cannot hold them and rounding them would lose data silently.
"""
from __future__ import annotations

import base64
import struct

import orjson

from ..errors import InvalidJSON, InvalidObject, ValueOutOfRange
from . import rowtext
from .rowtext import ABSENT, FALSE, JSON, TRUE

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# orjson turns integer literals beyond 64 bits into floats without a word, so text holding a run of
# 19+ digits that is not part of a float literal goes to the exact (slower) stdlib parser, which keeps
# such integers as ints so they can be refused. The scan is a translate + find: ~1 ms per MB.
_DIGITS_TO_ZERO = bytes.maketrans(b"0123456789", b"0" * 10)
_RUN = b"0" * 19


def has_long_int(data: bytes) -> bool:
    t = data.translate(_DIGITS_TO_ZERO)
    pos = t.find(_RUN)
    while pos >= 0:
        end = pos + 19
        while end < len(t) and t[end] == 48:
            end += 1
        # Digits after a decimal point or before an exponent belong to a float literal.
        if data[pos - 1:pos] != b"." and data[end:end + 1] not in (b".", b"e", b"E"):
            return True
        pos = t.find(_RUN, end)
    return False


def _reject_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def loads(data: bytes | str):
    """Parse JSON exactly: never a silently rounded integer, never NaN."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    try:
        if not has_long_int(data):
            return orjson.loads(data)
        import json

        value = json.loads(data, parse_constant=_reject_constant)
        _check_ints(value)
    except (orjson.JSONDecodeError, ValueError, UnicodeDecodeError) as e:
        raise InvalidJSON(f"invalid JSON: {e}") from None
    except RecursionError:  # orjson refuses such depths itself ("depth limit exceeded")
        raise InvalidJSON("invalid JSON: arrays and objects nest too deeply") from None
    return value


def _check_ints(value):
    t = type(value)
    if t is int:
        if not INT64_MIN <= value <= INT64_MAX:
            raise ValueOutOfRange(
                f"integer {value} does not fit in 64 bits; store it as a string to keep it exact",
                value=str(value),
            )
    elif t is dict:
        for v in value.values():
            _check_ints(v)
    elif t is list:
        for v in value:
            _check_ints(v)


def dumps(value) -> bytes:
    return orjson.dumps(value, default=_default)


def _default(v):
    if isinstance(v, (bytes, bytearray, memoryview)):
        return {"$base64": base64.b64encode(bytes(v)).decode()}
    raise TypeError(type(v).__name__)


def to_cell(v):
    """(sql_value, kind) for one top-level JSON value; kind None means a plain SQLite value."""
    t = type(v)
    if t is str or t is float or v is None:
        return v, None
    if t is int:
        if INT64_MIN <= v <= INT64_MAX:
            return v, None
        raise ValueOutOfRange(f"integer {v} does not fit in 64 bits; store it as a string to keep it exact")
    if t is bool:
        return (1, TRUE) if v else (0, FALSE)
    if t is dict or t is list:
        try:
            return orjson.dumps(v).decode(), JSON
        except orjson.JSONEncodeError as e:
            raise ValueOutOfRange(f"cannot store nested value: {e}") from None
    raise InvalidObject(f"cannot store a value of type {t.__name__}")


def from_cell(v, kind):
    """The JSON value of a cell, given its kind (None when it is a plain SQLite value)."""
    if kind is None:
        if isinstance(v, (bytes, memoryview)):
            return {"$base64": base64.b64encode(bytes(v)).decode()}
        return v
    if kind == TRUE:
        return True
    if kind == FALSE:
        return False
    if kind == JSON:
        return orjson.loads(v)
    raise ValueError(kind)


def to_object(columns, values, kinds) -> dict:
    if kinds.count(None) == len(kinds):  # no JSON kinds (most rows): the values as they are, unless a blob
        types = set(map(type, values))
        if bytes not in types and memoryview not in types:
            return dict(zip(columns, values))
    obj = {}
    for c, v, k in zip(columns, values, kinds):
        if k is None:
            obj[c] = v if not isinstance(v, (bytes, memoryview)) else from_cell(v, None)
        elif k != ABSENT:
            obj[c] = from_cell(v, k)
    return obj


_fromhex = bytes.fromhex
_unpack_double = struct.Struct(">d").unpack


def exact_object(columns, values, content: str) -> dict | None:
    """The object of a row (its columns and SQL values) when the row holds exactly the values of the
    typed encoding `content` (columns added since then empty), else None.

    The same as to_object(*rowtext.decode_content(content)) after checking the decoded columns and
    values against the row (same types: 1 is not 1.0), in one pass over the cells: reading an object is
    mostly this, and it stops at the first cell that differs."""
    head, _, body = content.partition("\n")
    names = rowtext.header_names(head)
    n = len(names)
    cells = body.split("|") if n else ()
    if len(cells) != n:
        raise ValueError("typed encoding has a different number of cells and columns")
    if len(columns) < n or len(values) < n or tuple(columns[:n]) != names:
        return None
    obj = {}
    for name, v, cell in zip(names, values, cells):
        tag = cell[:1]
        if tag == "t":
            c = _fromhex(cell[1:]).decode("utf-8", "surrogatepass")
            if type(v) is not str or v != c:
                return None
        elif tag == "i":
            c = int(cell[1:])
            if type(v) is not int or v != c:
                return None
        elif tag == "r":
            c = _unpack_double(_fromhex(cell[1:]))[0]
            if type(v) is not float or v != c:
                return None
        elif tag == "n":
            if v is not None:
                return None
            c = None
        else:
            c, kind = rowtext.decode_cell(cell)
            if type(v) is not type(c) or v != c:
                return None
            if kind == ABSENT:
                continue
            c = from_cell(c, kind)
        obj[name] = c
    if len(values) > n and values[n:].count(None) != len(values) - n:
        return None
    return obj


def plain_object(columns, values) -> dict:
    """An object from a row whose JSON kinds are unknown (a change made outside nsl)."""
    return {c: from_cell(v, None) for c, v in zip(columns, values) if v is not None}


def inherit_kinds(values, old_values, old_kinds):
    """Kinds for a row edited outside nsl: keep a previous JSON kind where the new value still fits it."""
    kinds = []
    for i, v in enumerate(values):
        k = old_kinds[i] if i < len(old_kinds) else (ABSENT if v is None else None)
        if k is None:
            kinds.append(None)
        elif k == ABSENT:
            kinds.append(ABSENT if v is None else None)
        elif k in (TRUE, FALSE):
            kinds.append((TRUE if v else FALSE) if type(v) is int and v in (0, 1) else None)
        elif k == JSON:
            ok = False
            if type(v) is str:
                try:
                    ok = type(orjson.loads(v)) in (dict, list)
                except orjson.JSONDecodeError:
                    ok = False
            kinds.append(JSON if ok else None)
        else:
            kinds.append(None)
    return kinds
