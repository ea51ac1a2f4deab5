"""A save's rows worked out from its objects, without a database: each row's SQL values, version uuid,
typed digest and typed encoding (docs/storage.md), a column at a time where the batch allows it.

Pure computation, so that a bulk save can run it in a worker process (bulk.py) while the writer
inserts the previous batch. The row text and typed encoding made here are the stored format: every
shortcut below yields exactly the bytes rowtext.row_text() and rowtext.typed_cell() give.
"""
from __future__ import annotations

import itertools
import math
import operator
import os
import struct
import time
from collections import deque
from typing import NamedTuple

import orjson

from ..errors import InvalidJSON, InvalidObject, ValueOutOfRange
from .rowtext import float_text, float_texts, header
from .values import INT64_MAX, INT64_MIN

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_pack = struct.Struct(">d").pack
_hexdigest = operator.methodcaller("hexdigest")
_encode = operator.methodcaller("encode")
_float_ok = math.isfinite
_repeat = itertools.repeat


def new_key() -> str:
    """A random, time-sortable key (ULID layout): objects made on two replicas never collide by accident."""
    n = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(_CROCKFORD[(n >> s) & 31] for s in range(125, -5, -5))


def new_int_key() -> int:
    """A random, time-sortable positive 63-bit integer key, for a table keyed by an INTEGER PRIMARY KEY:
    the milliseconds since 1970 (which fit in 42 bits until the year 2109), then 21 random bits."""
    return (int(time.time() * 1000) << 21) | int.from_bytes(os.urandom(3), "big") >> 3


class Prepared(NamedTuple):
    """A batch ready to insert, by column: `values[i]` holds column cols[i] of every row, and row j's
    version is (keys[j], uuids[j], digests[j], contents[j]). Keys are distinct, in first-seen order.
    Unhashed (see compute_columns), uuids and digests are None and texts holds each row's row text.
    A worker sends it as a plain tuple (marshal takes no subclasses): Prepared._make() restores it."""
    cols: list
    keys: list
    values: list
    uuids: list | None
    digests: list | None
    contents: list
    texts: list | None
    new_json: set
    count: int      # objects in the batch (more than the rows when a key came twice)
    new_bool: set = frozenset()  # columns that got true or false


def normalize(batch: list, key_col: str, pos: int = 0, int_keys: bool = False) -> None:
    """Check that each item is an object with a usable key; give a new key to those without one (an
    integer one when `int_keys`)."""
    if set(map(type, batch)) == {dict} and \
            set(map(type, map(operator.methodcaller("get", key_col), batch))) <= {str, int}:
        return  # the common case, checked in C: every item an object with a text or integer key
    for i, obj in enumerate(batch):
        if type(obj) is not dict:
            raise InvalidObject(f"object {pos + i + 1}: expected a JSON object, got {_json_type(obj)}")
        k = obj.get(key_col)
        if k is None:
            # A null key means "make one": the new key replaces it, in front.
            batch[i] = {key_col: new_int_key() if int_keys else new_key(),
                        **{a: v for a, v in obj.items() if a != key_col}}
        elif type(k) is not str and type(k) is not int:
            raise InvalidObject(
                f"object {pos + i + 1}: key {key_col!r} must be a string or an integer, not {_json_type(k)}")


def compute_rows(batch, cols, key_col, algo, known_json=frozenset()):
    """key -> (values, uuid, digest, content) for normalized objects whose attributes are all in
    `cols`, plus the sets of columns that got nested JSON and true/false. Later objects with the same
    key win."""
    idx = {c: i for i, c in enumerate(cols)}
    hdr = header(cols) + "\n"
    sha = _hasher(algo)
    key_i = idx[key_col]
    try:
        out = _columnar(batch, cols, idx, hdr)
        if out is not None:
            values, texts, contents = out
            uuids, digests = hexdigests(sha, texts), hexdigests(sha, list(map(_encode, contents)))
            return dict(zip(values[key_i], zip(zip(*values), uuids, digests, contents))), set(), set()
        new_json, new_bool = set(), set()
        return _rowwise(batch, len(cols), idx, hdr, sha, key_i, new_json, new_bool), new_json, new_bool
    except UnicodeEncodeError:
        raise _surrogate() from None


def _surrogate():
    return InvalidJSON("a string holds a lone surrogate (invalid Unicode); it cannot be stored")


def compute_columns(batch, cols, key_col, algo, known_json=frozenset(), *, hashed=True) -> Prepared:
    """The batch as a Prepared, for normalized objects whose attributes are all in `cols`. With
    hashed=False the hashing may be left to hashed(): a bulk save's worker leaves it to the writer,
    which would otherwise wait for the worker a third of the time."""
    idx = {c: i for i, c in enumerate(cols)}
    try:
        out = _columnar(batch, cols, idx, header(cols) + "\n")
    except UnicodeEncodeError:
        raise _surrogate() from None
    if out is not None:
        values, texts, contents = out
        keys = values[idx[key_col]]
        if len(set(keys)) == len(keys):
            p = Prepared(cols, keys, values, None, None, contents, texts, set(), len(batch))
            return hash_rows(p, algo) if hashed else p
    rows, new_json, new_bool = compute_rows(batch, cols, key_col, algo, known_json)
    return from_rows(rows, cols, new_json, len(batch), new_bool)


def hash_rows(p: Prepared, algo: str) -> Prepared:
    """The Prepared with its version uuids and typed digests, computing them if it has none yet."""
    if p.texts is None:
        return p
    sha = _hasher(algo)
    return p._replace(uuids=hexdigests(sha, p.texts), digests=hexdigests(sha, list(map(_encode, p.contents))),
                      texts=None)


def from_rows(rows: dict, cols, new_json, count, new_bool=frozenset()) -> Prepared:
    """The Prepared of rows as compute_rows gives them."""
    if not rows:
        return Prepared(cols, [], [()] * len(cols), [], [], [], None, new_json, count, new_bool)
    vals, uuids, digests, contents = zip(*rows.values())
    return Prepared(cols, list(rows), list(zip(*vals)), uuids, digests, contents, None, new_json, count, new_bool)


def rows_of(p: Prepared) -> dict:
    """The rows of a hashed Prepared as compute_rows gives them (for the general write path)."""
    return dict(zip(p.keys, zip(zip(*p.values), p.uuids, p.digests, p.contents)))


def _hasher(algo: str):
    import hashlib

    return hashlib.sha1 if algo == "sha1" else hashlib.sha256


def hexdigests(sha, datas: list) -> list[str]:
    """sha(d).hexdigest() for each d: copies of one empty hash object, all in C (a copy costs less
    than making a hash object anew)."""
    h0 = sha()
    kind = type(h0)
    hs = list(map(kind.copy, _repeat(h0, len(datas))))
    deque(map(kind.update, hs, datas), 0)
    return list(map(_hexdigest, hs))


_SLICES: dict = {}


def _slices(m: int, width: int) -> list:
    """slice(j * width, (j + 1) * width) for j < m, kept for the few batch sizes a save has."""
    got = _SLICES.get((m, width))
    if got is None:
        got = list(map(slice, range(0, m * width, width), range(width, (m + 1) * width, width)))
        if len(_SLICES) < 16:
            _SLICES[(m, width)] = got
    return got


def text_hex(colvals) -> list[str]:
    """Uppercase hex of each string's UTF-8 (the payload of a `t` cell). For an ASCII column, one
    hex() of all of it, cut where each string ends: one new string per cell instead of three."""
    joined = "".join(colvals)
    if not joined.isascii():
        return list(map(str.upper, map(bytes.hex, map(_encode, colvals))))
    hexed = joined.encode().hex().upper()
    ends = list(itertools.accumulate(map((2).__mul__, map(len, colvals)), initial=0))
    return list(map(hexed.__getitem__, map(slice, ends, itertools.islice(ends, 1, None))))


def real_hex(colvals) -> list[str]:
    """Uppercase hex of each float's 8 big-endian bytes (the payload of an `r` cell), packed and
    hexed as one string and cut every 16 digits."""
    m = len(colvals)
    hexed = struct.pack(f">{m}d", *colvals).hex().upper()
    return list(map(hexed.__getitem__, _slices(m, 16)))


def _columnar(batch, cols, idx, hdr):
    """The bulk path: every object has the same attributes and each attribute one plain type (str,
    int or float). Works a column at a time with C-level map() calls, several times faster than
    the row-wise path; returns (values by column, row texts as UTF-8, contents), or None when the
    batch does not qualify. Row text and content are each one %-format per row; an absent column is
    a constant in the formats (empty text, `-` cell) and NULL in the values."""
    attrs = tuple(batch[0]) if batch else ()
    na = len(attrs)
    if not na or set(map(len, batch)) != {na}:
        return None
    try:
        tuples = list(map(operator.itemgetter(*attrs), batch)) if na > 1 else [(o[attrs[0]],) for o in batch]
    except KeyError:
        return None
    columns = list(zip(*tuples))
    n = len(cols)
    m = len(batch)
    values = [None] * n
    text_args = [None] * n    # per column: what its %-field in the row text takes, None when absent
    cell_args = [None] * n
    text_fmt = [""] * n
    cell_fmt = ["-"] * n
    for a, colvals in zip(attrs, columns):
        i = idx[a]
        types = set(map(type, colvals))
        if len(types) != 1:
            return None
        t = types.pop()
        if t is str:
            # The CLI prints text as a C string: up to its first NUL.
            text_args[i] = colvals if "\0" not in "".join(colvals) else [x.partition("\0")[0] for x in colvals]
            cell_args[i] = text_hex(colvals)
            text_fmt[i], cell_fmt[i] = "%s", "t%s"
        elif t is int:
            if min(colvals) < INT64_MIN or max(colvals) > INT64_MAX:
                return None
            text_args[i] = cell_args[i] = colvals
            text_fmt[i], cell_fmt[i] = "%d", "i%d"
        elif t is float:
            if not all(map(_float_ok, colvals)):
                return None
            text_args[i] = float_texts(colvals)
            cell_args[i] = real_hex(colvals)
            text_fmt[i], cell_fmt[i] = "%s", "r%s"
        else:
            return None
        values[i] = colvals
    absent = (None,) * m
    for i in range(n):
        if values[i] is None:
            values[i] = absent
    text_fmt = "|".join(text_fmt)
    cell_fmt = hdr.replace("%", "%%") + "|".join(cell_fmt)
    texts = list(map(_encode, map(text_fmt.__mod__, zip(*[a for a in text_args if a is not None]))))
    contents = list(map(cell_fmt.__mod__, zip(*[a for a in cell_args if a is not None])))
    return values, texts, contents


def _rowwise(batch, n, idx, hdr, sha, key_i, new_json, new_bool):
    """The general path: any mix of attributes and value types, one object at a time."""
    rows = {}  # key -> (values, uuid, digest, content); later objects with the same key win
    for obj in batch:
        vals = [None] * n
        texts = [""] * n
        cells = ["-"] * n
        for a, v in obj.items():
            i = idx[a]
            t = type(v)
            if t is str:
                vals[i] = texts[i] = v
                if "\0" in v:
                    texts[i] = v.partition("\0")[0]  # the CLI prints text as a C string
                cells[i] = "t" + v.encode().hex().upper()
            elif t is int:
                if not INT64_MIN <= v <= INT64_MAX:
                    raise ValueOutOfRange(
                        f"integer {v} in {a!r} does not fit in 64 bits; store it as a string to keep it exact")
                vals[i] = v
                texts[i] = s = str(v)
                cells[i] = "i" + s
            elif t is float:
                if v != v or v in (math.inf, -math.inf):
                    raise ValueOutOfRange(f"{a!r}: NaN and infinity are not JSON numbers")
                vals[i] = v
                texts[i] = float_text(v)
                cells[i] = "r" + _pack(v).hex().upper()
            elif v is None:
                cells[i] = "n"
            elif t is bool:
                vals[i] = 1 if v else 0
                texts[i] = "1" if v else "0"
                cells[i] = "T" if v else "F"
                new_bool.add(a)
            elif t is dict or t is list:
                try:
                    s = orjson.dumps(v).decode()
                except orjson.JSONEncodeError as e:
                    raise ValueOutOfRange(f"{a!r}: {e}") from None
                vals[i] = texts[i] = s
                cells[i] = "j" + s.encode().hex().upper()
                new_json.add(a)
            else:
                raise InvalidObject(f"{a!r}: cannot store a value of type {t.__name__}")
        uuid = sha("|".join(texts).encode()).hexdigest()
        content = hdr + "|".join(cells)
        rows[vals[key_i]] = (vals, uuid, sha(content.encode()).hexdigest(), content)
    return rows


def _json_type(v) -> str:
    return {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number",
            bool: "a boolean", type(None): "null"}.get(type(v), type(v).__name__)
