"""Row text and typed encoding: the two byte strings every version is named and checked by.

The row text is what `sqlite3 DB "select * from T where ..."` prints in list mode (values joined by
`|`, NULL as empty, no final newline); its SHA-1 is the version uuid. The typed encoding says the same
row without ambiguity (type tag per cell, hex for text) and is what nsl stores as a version's content;
its hash is the typed digest recorded in the commit line.
"""
from __future__ import annotations

import functools
import hashlib
from itertools import repeat as _repeat
import math
import operator
import re
import struct
import sys

_SHORT_REPR = sys.float_repr_style == "short"
_pack_double = struct.Struct(">d").pack
_INF = math.inf

# Tags of the typed encoding. The first five are SQLite storage classes; the CLI computes them with
#   CASE typeof(c) WHEN 'null' THEN 'n' WHEN 'integer' THEN 'i'||c
#   WHEN 'real' THEN 'r'||hex(ieee754_to_blob(c)) WHEN 'text' THEN 't'||hex(c) ELSE 'b'||hex(c) END
# The last four keep a JSON value's kind where SQLite has no type for it, so what is saved is what
# comes back: true/false are stored as integers 1/0, objects and arrays as JSON text, and an
# attribute the object did not have as NULL.
NULL, INT, REAL, TEXT, BLOB = "n", "i", "r", "t", "b"
TRUE, FALSE, JSON, ABSENT = "T", "F", "j", "-"


def float_text(x: float) -> str:
    """A REAL as SQLite's `%!.15g` prints it, correctly rounded: 1.0e+20, 0.1, 3.0, Inf, 0.0."""
    if x != x:
        return ""  # SQLite stores NaN as NULL
    if x == 0.0:
        return "0.0"  # -0.0 too: SQLite prints no sign for zero
    if x == _INF:
        return "Inf"
    if x == -_INF:
        return "-Inf"
    s = format(x, ".15g")
    if "e" in s:
        mant, _, exp = s.partition("e")
        if "." not in mant:
            mant += ".0"
        return mant + "e" + exp
    if "." not in s:
        s += ".0"
    return s


def float_texts(vals) -> list[str]:
    """float_text over a column of finite floats: format() runs in C, and only the few strings it
    leaves without a decimal point (100 -> 100.0, 1e+20 -> 1.0e+20, -0 -> 0.0) are fixed in Python.

    First try repr(), a third faster: the shortest digits that read back as the same double. When
    those are at most 15 significant digits they are exactly what rounding to 15 digits gives (the
    15-digit grid is 4.5x coarser than a double's spacing, so no other 15-digit number is as near),
    and a repr without exponent, of at most 16 characters with its point, has at most 15 digits
    (leading zeros included) and a magnitude under 1e15, where %.15g does not use an exponent either."""
    if _SHORT_REPR:
        out = list(map(repr, vals))
        joined = "".join(out)
        # ("n": inf and nan print differently, "-0.0": SQLite prints no sign for zero)
        if out and max(map(len, out)) <= 16 and "e" not in joined and "n" not in joined and "-0.0" not in out:
            return out
    out = list(map(format, vals, _repeat(".15g")))
    for j, s in enumerate(out):
        if "." not in s or "e" in s:
            out[j] = float_text(vals[j])
    return out


def _cell_text(v) -> str:
    if v is None:
        return ""
    t = type(v)
    if t is str:
        return v if "\0" not in v else v.partition("\0")[0]  # the CLI prints text as a C string
    if t is int:
        return str(v)
    if t is float:
        return float_text(v)
    raise TypeError(t)


def row_text(values) -> bytes:
    """The sqlite3 CLI list-mode text of a row of SQL values (None, int, float, str, bytes)."""
    try:
        return "|".join([_cell_text(v) for v in values]).encode("utf-8", "surrogatepass")
    except TypeError:
        pass
    parts = []
    for v in values:
        if isinstance(v, (bytes, bytearray, memoryview)):
            b = bytes(v)
            nul = b.find(b"\0")  # the CLI prints a blob as a C string
            parts.append(b if nul < 0 else b[:nul])
        elif isinstance(v, bool):
            parts.append(b"1" if v else b"0")
        else:
            parts.append(_cell_text(v).encode("utf-8", "surrogatepass"))
    return b"|".join(parts)


def typed_cell(v, kind: str | None = None) -> str:
    """One cell of the typed encoding. `kind` is T/F/j/- for JSON kinds SQLite cannot tell apart."""
    if kind is not None:
        if kind == JSON:
            return "j" + v.encode("utf-8", "surrogatepass").hex().upper()
        return kind
    if v is None:
        return "n"
    t = type(v)
    if t is int:
        return "i" + str(v)
    if t is str:
        return "t" + v.encode("utf-8", "surrogatepass").hex().upper()
    if t is float:
        return "r" + _pack_double(v).hex().upper()
    if isinstance(v, (bytes, bytearray, memoryview)):
        return "b" + bytes(v).hex().upper()
    raise TypeError(f"cannot encode {t.__name__}")


def header(columns) -> str:
    """The first line of a typed encoding: the column names, hex of UTF-8, joined by `|`."""
    return "|".join([c.encode("utf-8", "surrogatepass").hex().upper() for c in columns])


def decode_header(line: str) -> list[str]:
    return [bytes.fromhex(h).decode("utf-8", "surrogatepass") for h in line.split("|")] if line else []


def decode_cell(cell: str):
    """(sql_value, kind) of one typed cell; kind is None for the five SQLite storage classes."""
    tag = cell[:1]
    if tag == "i":
        return int(cell[1:]), None
    if tag == "t":
        return bytes.fromhex(cell[1:]).decode("utf-8", "surrogatepass"), None
    if tag == "n":
        return None, None
    if tag == "r":
        return struct.unpack(">d", bytes.fromhex(cell[1:]))[0], None
    if tag == "j":
        return bytes.fromhex(cell[1:]).decode("utf-8", "surrogatepass"), JSON
    if tag == "T":
        return 1, TRUE
    if tag == "F":
        return 0, FALSE
    if tag == "-":
        return None, ABSENT
    if tag == "b":
        return bytes.fromhex(cell[1:]), None
    raise ValueError(f"bad typed cell {cell[:20]!r}")


@functools.lru_cache(maxsize=1024)
def header_names(line: str) -> tuple:
    """decode_header as a tuple, decoded once per distinct header (a table's versions share a few)."""
    return tuple(decode_header(line))


def decode_content(content: str):
    """(columns, sql_values, kinds) of a stored typed encoding."""
    head, _, body = content.partition("\n")
    # Reading objects is mostly this function: the common cells are decoded inline.
    columns = list(header_names(head))
    values, kinds = [], []
    if columns:
        add_value, add_kind = values.append, kinds.append
        for cell in body.split("|"):
            tag = cell[:1]
            if tag == "t":
                add_value(bytes.fromhex(cell[1:]).decode("utf-8", "surrogatepass"))
                add_kind(None)
            elif tag == "i":
                add_value(int(cell[1:]))
                add_kind(None)
            elif tag == "r":
                add_value(_unpack(bytes.fromhex(cell[1:]))[0])
                add_kind(None)
            else:
                v, k = decode_cell(cell)
                add_value(v)
                add_kind(k)
    if len(values) != len(columns):
        raise ValueError("typed encoding has a different number of cells and columns")
    return columns, values, kinds


_tail = operator.itemgetter(slice(1, None))
_unpack = struct.Struct(">d").unpack
_first = operator.itemgetter(0)
_encode = operator.methodcaller("encode", "utf-8", "surrogatepass")
_utf8_decode = operator.methodcaller("decode", "utf-8", "surrogatepass")


def decode_bodies(bodies: list[str], ncols: int) -> list[tuple]:
    """SQL values of many typed-encoding bodies at once (kinds dropped), a tuple per body."""
    flat = decode_bodies_flat(bodies, ncols)
    return list(zip(*[iter(flat)] * ncols)) if flat else []


def decode_bodies_flat(bodies: list[str], ncols: int) -> list:
    """decode_bodies as one list of every body's values in turn (what a multi-row INSERT binds), a
    column at a time: a column whose cells share one tag decodes with a few C-level calls."""
    if not bodies:
        return []
    if set(map(str.count, bodies, _repeat("|"))) != {ncols - 1}:
        raise ValueError("typed encoding has a different number of cells and columns")
    # One split of all the bodies, then every ncols-th cell is a column: C-level slices, where a split
    # per body and a transposition of the lists cost three times as much. Each column's values go
    # back into the same slots.
    flat = "|".join(bodies).split("|")
    for i in range(ncols):
        col = flat[i::ncols]
        tags = set(map(_first, col))
        tag = tags.pop() if len(tags) == 1 else None
        if tag == "i":
            flat[i::ncols] = _int_column(col)
        elif tag in ("t", "j"):
            flat[i::ncols] = _text_column(col, tag)
        elif tag == "r" and set(map(len, col)) == {17}:
            # every cell 8 bytes: the whole column in one unpack
            flat[i::ncols] = struct.unpack(f">{len(col)}d", bytes.fromhex("".join(col).replace("r", "")))
        elif tag in ("n", "-"):
            flat[i::ncols] = [None] * len(col)
        else:
            flat[i::ncols] = [decode_cell(c)[0] for c in col]
    return flat


def _int_column(col: list[str]) -> list[int]:
    # The tags become the separators of one split ("i" never occurs in a payload); a cell without
    # digits would vanish from it, and then each cell is read on its own (and the bad one raises).
    vals = "".join(col).replace("i", " ").split()
    if len(vals) != len(col):
        return list(map(int, map(_tail, col)))
    return list(map(int, vals))


def _text_column(col: list[str], tag: str) -> list[str]:
    # The tags become NUL bytes, so the column is one hex string, one bytes and one UTF-8 text, split
    # at the NULs. The hex of the tags' letters never occurs in a payload; a payload of an odd length
    # would shift the bytes, and a value holding a NUL would add a piece: then each cell on its own.
    if all(n & 1 for n in set(map(len, col))):
        vals = bytes.fromhex("".join(col).replace(tag, "00")[2:]).decode("utf-8", "surrogatepass").split("\0")
        if len(vals) == len(col):
            return vals
    return list(map(_utf8_decode, map(bytes.fromhex, map(_tail, col))))


def _text_cell(cell: str) -> str:
    """The row-text piece of one typed cell (blobs excluded: they are bytes, see cells_row_text)."""
    tag = cell[:1]
    if tag == "i":
        return cell[1:]
    if tag in ("t", "j"):
        return _cell_text(bytes.fromhex(cell[1:]).decode("utf-8", "surrogatepass"))
    if tag == "r":
        return float_text(_unpack(bytes.fromhex(cell[1:]))[0])
    if tag == "T":
        return "1"
    if tag == "F":
        return "0"
    if tag in ("n", "-"):
        return ""
    raise TypeError(tag)


def cells_row_texts(bodies: list[str], ncols: int) -> list[bytes]:
    """Row texts of many typed-encoding bodies, a column at a time (what verify hashes)."""
    if not bodies:
        return []
    cells = [b.split("|") for b in bodies]
    if any(len(c) != ncols for c in cells):
        raise ValueError("typed encoding has a different number of cells and columns")
    cols = []
    for col in zip(*cells):
        tags = {c[:1] for c in col}
        tag = tags.pop() if len(tags) == 1 else None
        if tag == "i":
            cols.append(list(map(_tail, col)))
        elif tag in ("t", "j"):
            texts = [b.decode("utf-8", "surrogatepass") for b in map(bytes.fromhex, map(_tail, col))]
            if "\0" in "".join(texts):
                texts = [_cell_text(t) for t in texts]
            cols.append(texts)
        elif tag == "r":
            cols.append(float_texts(list(map(_first, map(_unpack, map(bytes.fromhex, map(_tail, col)))))))
        elif tag in ("n", "-"):
            cols.append([""] * len(col))
        else:
            try:
                cols.append([_text_cell(c) for c in col])
            except TypeError:
                # A blob somewhere in this column: those rows go the slow, byte-exact way.
                return [row_text(decode_bodies([b], ncols)[0]) for b in bodies]
    return [t.encode("utf-8", "surrogatepass") for t in map("|".join, zip(*cols))]


def encode_values(rows: list, ncols: int) -> list[str]:
    """Typed-encoding bodies of SQL rows (no JSON kinds), a column at a time."""
    cols = []
    for col in zip(*rows) if rows else []:
        types = set(map(type, col))
        t = types.pop() if len(types) == 1 else None
        if t is str:
            cols.append(list(map("t".__add__, map(str.upper, map(bytes.hex, map(_encode, col))))))
        elif t is int:
            cols.append(list(map("i".__add__, map(str, col))))
        elif t is float:
            cols.append(list(map("r".__add__, map(str.upper, map(bytes.hex, map(_pack_double, col))))))
        elif t is type(None):
            cols.append(["n"] * len(col))
        else:
            cols.append([typed_cell(v) for v in col])
    return list(map("|".join, zip(*cols)))


_PLAIN = (("|T", "|i1"), ("|F", "|i0"), ("|j", "|t"), ("|-", "|n"))


def plain_body(body: str) -> str:
    """A body with JSON kinds replaced by the SQL values stored for them (T -> i1, j -> t, - -> n),
    to compare with a user row's encoding. Tags only ever follow a `|`, hex never holds T, j or -,
    and an F cell is always a whole cell."""
    b = "|" + body
    for a, r in _PLAIN:
        if a in b:
            b = b.replace(a, r)
    return b[1:]


def hasher(algo: str):
    return hashlib.sha1 if algo == "sha1" else hashlib.sha256


def content_row_text(content: str) -> bytes:
    """Row text of a stored version, as the CLI printed it when the version was current."""
    _, values, _ = decode_content(content)
    return row_text(values)


_CELL = (r"(?:[nTF-]|i(?:0|-?[1-9][0-9]{0,18})|r[0-9A-F]{16}|[tb](?:[0-9A-F]{2})*"
         r"|j(?:7B|5B)(?:[0-9A-F]{2})*(?:7D|5D))")
_BODY = re.compile(f"{_CELL}(?:\\|{_CELL})*")
_HEADER = re.compile(r"(?:[0-9A-F]{2})+(?:\|(?:[0-9A-F]{2})+)*")
_LONG_INT = re.compile(r"(?:^|\|)i-?[0-9]{19}(?:\||$)")
_NAN = re.compile(r"(?:^|\|)r[7F]FF[0-9A-F]{13}")


def check_header(head: str) -> list[str]:
    """The column names of a typed encoding's first line, which must be as nsl writes it."""
    if not _HEADER.fullmatch(head):
        raise ValueError("column names must be uppercase hex, joined by |")
    cols = decode_header(head)
    if len(set(cols)) != len(cols):
        raise ValueError("a column is named twice")
    return cols


def check_body(body: str, ncols: int) -> None:
    """Raise ValueError unless a typed encoding's cells are as nsl writes them: known tags, uppercase
    hex, integers within 64 bits, no NaN, JSON cells holding an object or array, one cell per column."""
    if not _BODY.fullmatch(body):
        raise ValueError("cells must be typed cells as nsl writes them")
    if body.count("|") + 1 != ncols:
        raise ValueError("typed encoding has a different number of cells and columns")
    if "i" in body:
        m = _LONG_INT.search(body)
        while m:
            cell = m.group(0).strip("|")
            if not -(1 << 63) <= int(cell[1:]) < (1 << 63):
                raise ValueError(f"integer {cell[1:]} does not fit in 64 bits")
            m = _LONG_INT.search(body, m.end() - 1)
    if "r" in body:
        for m in _NAN.finditer(body):
            x = struct.unpack(">d", bytes.fromhex(m.group(0).lstrip("|")[1:]))[0]
            if x != x:
                raise ValueError("a real cell holds NaN")


def key_mismatch(bodies: list[str], ki: int, keys: list) -> int | None:
    """The index of the first body whose cell `ki` does not encode its key (text or integer), or None."""
    want = encode_values([(k,) for k in keys], 1)
    for n, (b, w) in enumerate(zip(bodies, want)):
        if b.split("|", ki + 1)[ki] != w:
            return n
    return None


def check_content(content: str) -> None:
    """Raise ValueError unless `content` is a typed encoding exactly as nsl writes one, so that one row
    can never travel under two names."""
    if not isinstance(content, str) or content.count("\n") != 1:
        raise ValueError("a typed encoding has exactly two lines")
    head, body = content.split("\n")
    check_body(body, len(check_header(head)))
    # Text must be UTF-8 (lone surrogates are how nsl keeps what JSON escapes can make).
    for cell in body.split("|"):
        if cell[:1] in ("t", "j") and len(cell) > 1:
            bytes.fromhex(cell[1:]).decode("utf-8", "surrogatepass")
