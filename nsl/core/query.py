"""Compile MongoDB-style predicates and sort specs to SQLite SQL, and evaluate them in Python alike."""
from __future__ import annotations

import functools
import operator
import re
import sqlite3
from dataclasses import dataclass, field

import orjson

from ..errors import InvalidPredicate
from .rowtext import decode_header
from .schema import current_version

# The find query aliases the user table `t` and joins the row's stored typed encoding as `v.content`.
# The compiled SQL is only valid inside that query, so these names are fixed here and nowhere else.
# A condition that reads v.content is tested only once the join has found the version, for every row
# the rest of the WHERE clause leaves; so when the caller names the table (Fields.table) conditions
# fetch the content themselves, and only for the rows that reach the question (see _Compiler).
TABLE = "t"
CONTENT = "v.content"

LOGICAL_OPS = ("$and", "$or", "$nor")
FIELD_OPS = (
    "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin",
    "$exists", "$regex", "$options", "$like", "$not",
)
SUPPORTED_OPS = LOGICAL_OPS + FIELD_OPS
_CMP_OPS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_PY_CMP = {"$gt": operator.gt, "$gte": operator.ge, "$lt": operator.lt, "$lte": operator.le}
_REGEX_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
# Dotted paths up to this many members are compiled to nested CASE/EXISTS (fastest, but each level
# doubles the SQL and deepens the nesting); longer ones to a flat chain of json_each joins (linear
# size and constant nesting, about three times slower per row).
_UNROLL_MEMBERS = 1
# The chain takes two FROM items per member and SQLite joins at most 64.
MAX_PATH_MEMBERS = 24
# Compiled SQL nesting parentheses/CASE deeper than this is test-parsed (see _check_parses). One
# level holds at most about ten entries of SQLite's 100-entry parser stack, so shallower SQL is safe.
_PROBE_NESTING = 8

# A predicate may nest objects and arrays this deep (MongoDB's limit for documents, and its query
# parser's for nested expressions); deeper ones are refused before anything recurses through them.
MAX_NESTING = 100

# Type names as typeof() and json_type() spell them. Booleans are a type of their own, as in MongoDB:
# json_type() says 'true'/'false', and so does _SqlColumn.typ() for a top-level cell whose version
# records a boolean (SQLite stores true/false as the integers 1/0).
_NUM_TYPES = "('integer','real')"
_BOOL_TYPES = "('true','false')"
_CONTAINER_TYPES = "('array','object')"


@dataclass
class Fields:
    """What the compiler needs to know about a table (built by the caller)."""

    columns: list[str]
    json_columns: set[str] = field(default_factory=set)
    key: str | None = None  # tiebreak for sorting when the table has no rowid
    rowid: bool = True  # False for WITHOUT ROWID tables
    bool_columns: set[str] = field(default_factory=set)  # columns that have held true or false
    table: str | None = None  # the table's name (with `key`, lets conditions read a version lazily)


# --------------------------------------------------------------------------------------------------
# Parsing: one validated tree shared by the SQL compiler and the Python evaluator, so that both
# refuse the same predicates and cannot drift apart on what an operator means.


def _unknown_op(op: str, where: str) -> InvalidPredicate:
    return InvalidPredicate(
        f"unknown operator {op!r} {where}; supported: {', '.join(SUPPORTED_OPS)}", operator=op
    )


def _type_name(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def _check_value(v, op: str):
    """A JSON value the database could hold (booleans stay booleans: they are a type of their own)."""
    t = type(v)
    if v is None or t is str or t is bool:
        return v
    if t is int:
        if not _INT64_MIN <= v <= _INT64_MAX:
            raise InvalidPredicate(f"{op}: integer {v} does not fit in 64 bits")
        return v
    if t is float:
        if v != v:
            raise InvalidPredicate(f"{op}: NaN is not a JSON value")
        return v
    if t is list or t is dict:
        _check_nested(v, op)
        return v
    raise InvalidPredicate(f"{op}: a value of type {t.__name__} is not a JSON value")


def _check_nested(v, op):
    t = type(v)
    if t is dict:
        for k, x in v.items():
            if not isinstance(k, str):
                raise InvalidPredicate(f"{op}: object keys must be strings")
            _check_nested(x, op)
    elif t is list:
        for x in v:
            _check_nested(x, op)
    else:
        _check_value(v, op)


def _regex(pattern, options, op="$regex"):
    if not isinstance(pattern, str):
        raise InvalidPredicate(f"{op} needs a string pattern, got {_type_name(pattern)}")
    if options is None:
        options = ""
    if not isinstance(options, str) or any(c not in _REGEX_FLAGS for c in options):
        raise InvalidPredicate(f"$options must be a string of the letters i, m, s, x; got {options!r}")
    flags = 0
    for c in options:
        flags |= _REGEX_FLAGS[c]
    try:
        _compiled(pattern, flags)
    except re.error as e:
        raise InvalidPredicate(f"{op}: invalid regular expression {pattern!r}: {e}") from None
    return ("$regex", pattern, flags)


def _check_nesting(pred) -> None:
    """Refuse a predicate nesting objects and arrays more than MAX_NESTING levels deep, without
    recursing (a Python recursion through it would fail long before SQLite's own limits)."""
    level = [pred] if isinstance(pred, (dict, list)) else []
    depth = 0
    while level:
        depth += 1
        if depth > MAX_NESTING:
            raise InvalidPredicate(
                f"the predicate nests objects and arrays too deeply (more than {MAX_NESTING} levels); flatten it"
            )
        nxt = []
        for x in level:
            for y in (x.values() if isinstance(x, dict) else x):
                if isinstance(y, (dict, list)):
                    nxt.append(y)
        level = nxt


def parse(pred):
    """The validated tree of a predicate (see _parse); refuses one nested too deeply first."""
    _check_nesting(pred)
    return _parse(pred)


def _parse(pred, where="the predicate"):
    """('$and', [node, ...]) for a predicate object; a node is ('$and'|'$or'|'$nor', [node, ...]) or
    ('field', name, [op, ...]) with ops like ('$gt', 5), ('$regex', pattern, flags), ('$not', [op, ...])."""
    if not isinstance(pred, dict):
        raise InvalidPredicate(f"{where} must be a JSON object, got {_type_name(pred)}")
    nodes = []
    for k, v in pred.items():
        if not isinstance(k, str):
            raise InvalidPredicate(f"field names must be strings, got {_type_name(k)}")
        if k.startswith("$"):
            if k not in LOGICAL_OPS:
                if k in FIELD_OPS:
                    raise InvalidPredicate(
                        f"{k} applies to a field: write {{\"field\": {{\"{k}\": ...}}}}", operator=k
                    )
                raise _unknown_op(k, "at the top of a predicate")
            if not isinstance(v, list) or not v or not all(isinstance(x, dict) for x in v):
                raise InvalidPredicate(f"{k} needs a non-empty array of predicate objects")
            nodes.append((k, [_parse(x, f"each element of {k}") for x in v]))
        else:
            if not k:
                raise InvalidPredicate("a field name is empty")
            nodes.append(("field", k, _parse_cond(v, k)))
    return ("$and", nodes)


def _is_operator_doc(v) -> bool:
    return isinstance(v, dict) and any(isinstance(k, str) and k.startswith("$") for k in v)


def _parse_cond(v, name):
    if not _is_operator_doc(v):
        # A plain value (an object without $-keys included) is an equality, as in MongoDB.
        return [("$eq", _check_value(v, f"field {name!r}"))]
    if not all(isinstance(k, str) and k.startswith("$") for k in v):
        raise InvalidPredicate(
            f"field {name!r} mixes operators and plain keys; put an object to compare with under $eq"
        )
    if "$options" in v and "$regex" not in v:
        raise InvalidPredicate("$options needs $regex next to it")
    ops = []
    for op, arg in v.items():
        if op == "$options":
            continue
        ops.append(_parse_op(op, arg, v.get("$options"), name))
    return ops


def _parse_op(op, arg, options, name):
    if op in ("$eq", "$ne"):
        return (op, _check_value(arg, op))
    if op in _CMP_OPS:
        arg = _check_value(arg, op)
        if isinstance(arg, (list, dict)):
            raise InvalidPredicate(f"{op} compares with a number or a string, not an {_type_name(arg)}")
        return (op, arg)
    if op in ("$in", "$nin"):
        if not isinstance(arg, list):
            raise InvalidPredicate(f"{op} needs an array of values, got {_type_name(arg)}")
        return (op, [_check_value(x, op) for x in arg])
    if op == "$exists":
        if arg is True or arg is False or (type(arg) is int and arg in (0, 1)):
            return (op, bool(arg))
        raise InvalidPredicate(f"$exists needs true or false, got {arg!r}")
    if op == "$regex":
        return _regex(arg, options)
    if op == "$like":
        if not isinstance(arg, str):
            raise InvalidPredicate(f"$like needs a string pattern, got {_type_name(arg)}")
        return (op, arg)
    if op == "$not":
        if isinstance(arg, str):
            return (op, [_regex(arg, None, "$not")])
        if not isinstance(arg, dict) or not arg or not _is_operator_doc(arg):
            raise InvalidPredicate("$not needs an object of operators (e.g. {\"$gt\": 5}) or a regex string")
        return (op, _parse_cond(arg, name))
    raise _unknown_op(op, f"in the condition on {name!r}")


# --------------------------------------------------------------------------------------------------
# Field names: the first segment is a column, the rest are members inside its JSON.

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_BAD_MEMBER = re.compile(r'["\\\x00-\x1f]')


def _fold(name: str) -> str:
    # SQLite folds only ASCII letters when it compares identifiers.
    return name.translate(_ASCII_LOWER)


def _positional(seg: str) -> bool:
    # "items.0" indexes an array as in MongoDB; a leading zero or a huge number is just a key.
    return seg.isascii() and seg.isdigit() and len(seg) <= 9 and (seg == "0" or seg[0] != "0")


class _Resolver:
    def __init__(self, columns, json_columns, bool_columns):
        self.by_fold = {}
        for c in columns:
            self.by_fold.setdefault(_fold(c), c)
        self.json = {_fold(c) for c in json_columns}
        self.bool = {_fold(c) for c in bool_columns}

    @classmethod
    def of(cls, fields):
        return cls(fields.columns, getattr(fields, "json_columns", ()) or (),
                   getattr(fields, "bool_columns", ()) or ())

    def resolve(self, name):
        """('missing',) | ('col', column, is_json, is_bool) | ('path', column, members).

        A path into a column that has never held a nested value reaches nothing: text there is only
        ever a string, however JSON-like it looks."""
        col = self.by_fold.get(_fold(name))
        if col is not None:  # a column whose own name has a dot wins over a path
            return ("col", col, _fold(col) in self.json, _fold(col) in self.bool)
        segs = name.split(".")
        if any(not s for s in segs):
            raise InvalidPredicate(f"field {name!r} has an empty name between dots")
        if len(segs) == 1:
            return ("missing",)
        members = segs[1:]
        if len(members) > MAX_PATH_MEMBERS:
            raise InvalidPredicate(f"field {name!r} is nested too deep (at most {MAX_PATH_MEMBERS} levels)")
        for m in members:
            # SQLite JSON paths have no escapes: a key with a quote or backslash cannot be named.
            if _BAD_MEMBER.search(m):
                raise InvalidPredicate(
                    f"field {name!r}: a nested key cannot contain a double quote, backslash or control character"
                )
        col = self.by_fold.get(_fold(segs[0]))
        if col is None or _fold(col) not in self.json:
            return ("missing",)
        return ("path", col, members)


# --------------------------------------------------------------------------------------------------
# SQL building. A fragment is a list of SQL text pieces and _P parameters; joining fragments keeps
# every parameter next to its `?`, so an expression can be repeated (array branches do) safely.


class _P:
    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


def _f(*parts) -> list:
    out = []
    for p in parts:
        if isinstance(p, list):
            out.extend(p)
        else:
            out.append(p)
    return out


def _render(frag) -> tuple[str, list]:
    sql, params = [], []
    for p in frag:
        if isinstance(p, _P):
            sql.append("?")
            params.append(p.value)
        else:
            sql.append(p)
    return "".join(sql), params


def _join(parts, word, empty):
    if not parts:
        return [empty]
    if len(parts) == 1:
        return parts[0]
    # AND/OR of 0/1 terms commute, and SQLite's parser holds every pending left operand on a stack
    # of about a hundred entries ("parser stack overflow"): the biggest (deepest) term goes first.
    parts = sorted(parts, key=len, reverse=True)
    out = ["("]
    for i, p in enumerate(parts):
        if i:
            out.append(f" {word} ")
        out.extend(p)
    out.append(")")
    return out


def _join_plain(parts, sep):
    out = []
    for i, p in enumerate(parts):
        if i:
            out.append(sep)
        out.extend(p)
    return out


def _not(frag):
    return _f("(NOT ", frag, ")")


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _member(seg: str) -> str:
    return '."' + seg + '"'


def _json_text(v) -> str:
    return orjson.dumps(v).decode()


# Leaf conditions: (value, type) -> a 0/1 expression. The value is only looked at under CASE after
# its type is known, so json() never sees non-JSON text and a comparison never sees NULL.


def _is_bool(v) -> bool:
    return type(v) is bool


def _is_num(v) -> bool:
    return type(v) is int or type(v) is float


def _c_eq(v):
    if isinstance(v, (list, dict)):
        p = _P(_json_text(v))
        return lambda val, typ: _f(
            "CASE WHEN ", typ, f" IN {_CONTAINER_TYPES} THEN json(", val, ") = ", p, " ELSE 0 END"
        )
    return _c_cmp("=", v)


def _c_cmp(sqlop, v):
    if _is_bool(v):
        p, types = _P(int(v)), f"IN {_BOOL_TYPES}"  # the value of JSON true/false is 1/0
    else:
        p, types = _P(v), "= 'text'" if isinstance(v, str) else f"IN {_NUM_TYPES}"
    return lambda val, typ: _f("CASE WHEN ", typ, f" {types} THEN ", val, f" {sqlop} ", p, " ELSE 0 END")


def _plist(ps):
    return _f(*[_f(", " if i else "", p) for i, p in enumerate(ps)])


def _c_in(values):
    nums = [_P(v) for v in values if _is_num(v)]
    bools = [_P(int(v)) for v in values if _is_bool(v)]
    strs = [_P(v) for v in values if isinstance(v, str)]
    conts = [_P(_json_text(v)) for v in values if isinstance(v, (list, dict))]

    def cond(val, typ):
        out = ["CASE"]
        if nums:
            out += _f(" WHEN ", typ, f" IN {_NUM_TYPES} THEN ", val, " IN (", _plist(nums), ")")
        if bools:
            out += _f(" WHEN ", typ, f" IN {_BOOL_TYPES} THEN ", val, " IN (", _plist(bools), ")")
        if strs:
            out += _f(" WHEN ", typ, " = 'text' THEN ", val, " IN (", _plist(strs), ")")
        if conts:
            out += _f(" WHEN ", typ, f" IN {_CONTAINER_TYPES} THEN json(", val, ") IN (", _plist(conts), ")")
        out.append(" ELSE 0 END")
        return out

    return cond


def _c_null(val, typ):
    return _f("(", typ, " IS 'null')")


def _c_regex(pattern, flags):
    pp, pf = _P(pattern), _P(flags)
    # Python's re, registered by register_functions(), so SQL and matches() agree to the letter.
    return lambda val, typ: _f(
        "CASE WHEN ", typ, " = 'text' THEN nsl_regexp(", pp, ", ", pf, ", ", val, ") ELSE 0 END"
    )


def _c_like(pattern):
    p = _P(pattern)
    return lambda val, typ: _f("CASE WHEN ", typ, " = 'text' THEN ", val, " LIKE ", p, " ELSE 0 END")


class _SqlMissing:
    """A column the table does not have (or a path into one that never held a nested value): absent
    from every row, so every test is a constant."""

    def any(self, cond):
        return ["0"]

    def exists(self):
        return ["0"]

    def missing(self):
        return ["1"]

    def null_or_missing(self):
        return ["1"]


def _kind_in(content, col, tags: str):
    """0/1: the kind the row's version (its typed encoding `content`, a fragment) records for column
    `col` (a parameter or a quoted literal) is one of `tags` (typed-encoding tags, e.g. "('T', 'F')").
    0 without a version."""
    return _f("nsl_kind(", content, ", ", col, f") IN {tags}")


def _is_text_doc(v: str):
    """0/1: the cell is text that is a JSON array or object (json_valid() alone would accept '5' or
    '"x"'). It holds a nested value only if its version says so too (kind j, see _kind_in): a
    string is a string, however JSON-like. Only ever a CASE WHEN condition, so the json_*() calls it
    guards never see other text."""
    return [f"(typeof({v}) = 'text' AND substr({v}, 1, 1) IN ('[', '{{') AND json_valid({v}))"]


class _SqlColumn:
    """A whole top-level column. Plain columns hold scalars only; JSON columns may hold a document.
    In a column that has held true or false, a 1 or 0 is a boolean when its version says so."""

    def __init__(self, comp, col, is_json, is_bool):
        self.comp, self.col, self.is_json, self.is_bool = comp, col, is_json, is_bool
        self.v = f"{TABLE}.{quote_ident(col)}"

    def bool_test(self):
        """0/1: the cell is true or false (never NULL, so NOT of it is safe)."""
        v = self.v
        return _f(f"CASE WHEN typeof({v}) = 'integer' AND {v} IN (0, 1) THEN ",
                  _kind_in(self.comp.content, _P(self.col), "('T', 'F')"), " ELSE 0 END")

    def typ(self):
        """The cell's type as json_type() would name it: typeof(), with 'true'/'false' for booleans."""
        v = self.v
        if not self.is_bool:
            return [f"typeof({v})"]
        return _f(f"CASE WHEN typeof({v}) = 'integer' AND {v} IN (0, 1) AND ",
                  _kind_in(self.comp.content, _P(self.col), "('T', 'F')"),
                  f" THEN CASE {v} WHEN 1 THEN 'true' ELSE 'false' END ELSE typeof({v}) END")

    def any(self, cond):
        v = self.v
        scalar = cond([v], self.typ())
        if not self.is_json:
            return scalar
        doc = self.comp.leaf_any(cond)([v], [_P("$")])
        # JSON-looking text is a nested value or a string by its version's kind, which is asked
        # (a Python call) only where the two readings differ: the row matches as one of them.
        j = _kind_in(self.comp.content, _P(self.col), "('j')")
        return _f("CASE WHEN ", _is_text_doc(v), " THEN CASE WHEN ", doc, " THEN CASE WHEN ", j, " THEN 1 ELSE ",
                  scalar, " END WHEN ", scalar, " THEN NOT ", j, " ELSE 0 END ELSE ", scalar, " END")

    def exists(self):
        # NULL is both "absent" and "null"; only the version's typed cell can tell them apart.
        return _f(f"CASE WHEN {self.v} IS NOT NULL THEN 1 ELSE nsl_present(", self.comp.content, ", ", _P(self.col),
                  ") END")

    def missing(self):
        return _f(f"CASE WHEN {self.v} IS NOT NULL THEN 0 ELSE NOT nsl_present(", self.comp.content, ", ",
                  _P(self.col), ") END")

    def null_or_missing(self):
        if not self.is_json:
            return [f"({self.v} IS NULL)"]  # sargable: an index serves `IS NULL`
        return _f(f"CASE WHEN {self.v} IS NULL THEN 1 ELSE ", self.any(_c_null), " END")


class _SqlPath:
    """Members inside a column's JSON; arrays on the way are looked through as in MongoDB."""

    def __init__(self, comp, col, members):
        self.comp, self.col, self.members = comp, col, members
        self.v = f"{TABLE}.{quote_ident(col)}"

    def _walk(self, leaf):
        d = [self.v]
        if len(self.members) <= _UNROLL_MEMBERS:
            body = self.comp.reach(d, "$", self.members, leaf)
        else:
            joins, where, path = self.comp.chain(d, self.members)
            body = _f("EXISTS (SELECT 1 FROM ", joins, " WHERE ", where, " AND ", leaf(d, path), ")")
        # The guard keeps every json_*() call away from text that is not a JSON document; such text
        # is a string unless its version says it is a nested value (asked only when the path matches).
        return _f("CASE WHEN ", _is_text_doc(self.v), " THEN CASE WHEN ", body, " THEN ",
                  _kind_in(self.comp.content, _P(self.col), "('j')"), " ELSE 0 END ELSE 0 END")

    def any(self, cond):
        return self._walk(self.comp.leaf_any(cond))

    def exists(self):
        return self._walk(lambda d, p: _f("(json_type(", d, ", ", p, ") IS NOT NULL)"))

    def missing(self):
        return _not(self.exists())

    def null_or_missing(self):
        return _f("(", self.missing(), " OR ", self.any(_c_null), ")")


class _Compiler:
    def __init__(self, fields):
        self.res = _Resolver.of(fields)
        self.n = 0
        table, key = getattr(fields, "table", None), getattr(fields, "key", None)
        if table is None or key is None:
            self.content = [CONTENT]
        else:
            # The content the find query joins as v.content, fetched by the condition that needs it.
            head, tail = current_version("?", f"{TABLE}.{quote_ident(key)}").split("?", 1)  # `?`: the table
            self.content = _f("(SELECT nsl_cv.content FROM nsl_version AS nsl_cv WHERE nsl_cv.vid = ", head,
                              _P(table), tail, " AND nsl_cv.op != 'D')")

    def alias(self):
        self.n += 1
        return f"nsl_e{self.n}"

    def leaf_any(self, cond):
        """Leaf test: the value at (doc, path) matches, or it is an array with a matching element."""

        def leaf(d, p):
            typ = _f("json_type(", d, ", ", p, ")")
            val = _f("json_extract(", d, ", ", p, ")")
            a = self.alias()
            return _f(
                "(", cond(val, typ), " OR CASE WHEN ", typ, " = 'array' THEN EXISTS (SELECT 1 FROM json_each(",
                d, ", ", p, f") AS {a} WHERE ", cond([f"{a}.value"], [f"{a}.type"]), ") ELSE 0 END)",
            )

        return leaf

    def reach(self, d, path, members, leaf):
        """`leaf` holds for some value the members lead to from `path` in document `d`."""
        if not members:
            return leaf(d, [_P(path)])
        m, rest = members[0], members[1:]
        through_object = self.reach(d, path + _member(m), rest, leaf)
        if _positional(m):
            through_array = self.reach(d, f"{path}[{int(m)}]", rest, leaf)
        else:
            a = self.alias()
            inner = self.reach([f"{a}.value"], "$" + _member(m), rest, leaf)
            through_array = _f(
                "EXISTS (SELECT 1 FROM json_each(", d, ", ", _P(path),
                f") AS {a} WHERE CASE WHEN {a}.type = 'object' THEN ", inner, " ELSE 0 END)",
            )
        return _f(
            "CASE json_type(", d, ", ", _P(path), ") WHEN 'object' THEN ", through_object,
            " WHEN 'array' THEN ", through_array, " ELSE 0 END",
        )

    def chain(self, d, members):
        """(FROM items, WHERE terms, leaf path expression) enumerating what `members` reach in `d`.

        Flat where reach() nests: one json_each per member walks the array elements (or a one-row
        dummy when the node is no array), and a json_each over a one-element JSON array binds the
        next node's path to a name, so the SQL grows linearly and its nesting stays constant."""
        prev = [_P("$")]
        joins, alive = [], []
        for m in members:
            a, b = self.alias(), self.alias()
            typ = _f("json_type(", d, ", ", prev, ")")
            joins.append(_f(
                "json_each(CASE WHEN ", typ, " = 'array' THEN ", d, " ELSE '[0]' END, CASE WHEN ", typ,
                " = 'array' THEN ", prev, " ELSE '$' END) AS ", a,
            ))
            member = _P(_member(m))
            if _positional(m):
                # One row for the position, not one per element (json_each skips empty arrays, which
                # have no position to reach anyway).
                in_array = _f(f"CASE WHEN {a}.key = 0 THEN ", prev, " || ", _P(f"[{int(m)}]"), " END")
            else:
                in_array = _f(
                    f"CASE WHEN {a}.type = 'object' THEN ", prev, f" || '[' || {a}.key || ']' || ", member, " END"
                )
            nxt = _f(
                "CASE ", typ, " WHEN 'object' THEN ", prev, " || ", member, " WHEN 'array' THEN ", in_array, " END"
            )
            joins.append(_f("json_each(json_array(", nxt, f")) AS {b}"))
            alive.append(f"{b}.value IS NOT NULL")
            prev = [f"{b}.value"]
        return _join_plain(joins, ", "), [" AND ".join(alive)], prev

    def source(self, name):
        r = self.res.resolve(name)
        if r[0] == "missing":
            return _SqlMissing()
        if r[0] == "col":
            return _SqlColumn(self, r[1], r[2], r[3])
        return _SqlPath(self, r[1], r[2])

    def node(self, node):
        kind = node[0]
        if kind == "field":
            src = self.source(node[1])
            return _join([self.op(src, op) for op in node[2]], "AND", "1")
        parts = [self.node(n) for n in node[1]]
        if kind == "$and":
            return _join(parts, "AND", "1")
        if kind == "$or":
            return _join(parts, "OR", "0")
        return _not(_join(parts, "OR", "0"))  # $nor

    def _plain(self, src):
        return isinstance(src, _SqlColumn) and not src.is_json

    def op(self, src, op):
        name = op[0]
        if name == "$eq":
            return self.eq(src, op[1])
        if name == "$ne":
            return _not(self.eq(src, op[1]))
        if name == "$in":
            return self.in_(src, op[1])
        if name == "$nin":
            return _not(self.in_(src, op[1]))
        if name in _CMP_OPS:
            return self.cmp(src, name, op[1])
        if name == "$exists":
            return src.exists() if op[1] else src.missing()
        if name == "$regex":
            return src.any(_c_regex(op[1], op[2]))
        if name == "$like":
            return src.any(_c_like(op[1]))
        if name == "$not":
            return _not(_join([self.op(src, o) for o in op[1]], "AND", "1"))
        raise AssertionError(name)

    # The plain-column forms below are written so SQLite's planner sees `col = ?`, `col IN (...)` or
    # a two-sided range on the bare column (an index serves them); the typeof() terms only filter.
    # Each form is also 0/1 on NULL (NULL AND 0 is 0), so NOT/$nor around it stay two-valued. In a
    # column that has held booleans, a 1 or 0 is tested for being one (bool_test) only where the
    # predicate's value could meet it, so other values keep the plain form.

    def eq(self, src, v):
        if v is None:
            return src.null_or_missing()
        if not self._plain(src):
            return src.any(_c_eq(v))
        if isinstance(v, (list, dict)):
            return ["0"]  # a plain column never held a nested value
        c = src.v
        if _is_bool(v):
            if not src.is_bool:
                return ["0"]  # nor a boolean
            return _f(f"({c} = ", _P(int(v)), f" AND typeof({c}) = 'integer' AND ", src.bool_test(), ")")
        guard = "= 'text'" if isinstance(v, str) else "IN ('integer','real')"
        if src.is_bool and _is_num(v) and v in (0, 1):
            return _f(f"({c} = ", _P(v), f" AND typeof({c}) {guard} AND NOT ", src.bool_test(), ")")
        return _f(f"({c} = ", _P(v), f" AND typeof({c}) {guard})")

    def in_(self, src, values):
        parts = []
        others = [v for v in values if v is not None]
        if others:
            if self._plain(src):
                scalars = [v for v in others if not isinstance(v, (list, dict)) and not _is_bool(v)]
                bools = [int(v) for v in others if _is_bool(v)] if src.is_bool else []
                c = src.v
                if scalars:
                    types = []
                    if any(_is_num(v) for v in scalars):
                        types += ["'integer'", "'real'"]
                    if any(isinstance(v, str) for v in scalars):
                        types.append("'text'")
                    form = _f(f"({c} IN (", _plist([_P(v) for v in scalars]),
                              f") AND typeof({c}) IN ({','.join(types)})")
                    if src.is_bool and any(_is_num(v) and v in (0, 1) for v in scalars):
                        form += _f(" AND NOT ", src.bool_test())
                    parts.append(form + [")"])
                if bools:
                    parts.append(_f(f"({c} IN (", _plist([_P(v) for v in bools]),
                                    f") AND typeof({c}) = 'integer' AND ", src.bool_test(), ")"))
            else:
                parts.append(src.any(_c_in(others)))
        if any(v is None for v in values):
            parts.append(src.null_or_missing())
        return _join(parts, "OR", "0")

    def cmp(self, src, name, v):
        if v is None:
            # As in MongoDB: null is only equal to null, so >= and <= mean == and > and < nothing.
            return self.eq(src, None) if name in ("$gte", "$lte") else ["0"]
        sqlop = _CMP_OPS[name]
        if not self._plain(src):
            return src.any(_c_cmp(sqlop, v))
        c = src.v
        # SQLite orders NULL < numbers < text < blobs, so -Inf (-9e999), '' and x'' bound a type's
        # range. With both ends on the bare column the planner picks the index even against the
        # rowid tiebreak in ORDER BY (a one-sided range loses to a rowid-ordered scan), and the scan
        # covers that type's values only.
        if isinstance(v, str):
            bound = f"{c} < x''" if name in ("$gt", "$gte") else f"{c} >= ''"
            guard = "= 'text'"
        else:
            bound = f"{c} < ''" if name in ("$gt", "$gte") else f"{c} >= -9e999"
            guard = "IN ('integer','real')"
        if _is_bool(v):
            # false < true, as in MongoDB; booleans are stored as 1/0, so the number range serves.
            if not src.is_bool:
                return ["0"]
            return _f(f"({c} {sqlop} ", _P(int(v)), f" AND {bound} AND typeof({c}) = 'integer' AND ",
                      src.bool_test(), ")")
        if src.is_bool and _is_num(v) and (_PY_CMP[name](0, v) or _PY_CMP[name](1, v)):
            return _f(f"({c} {sqlop} ", _P(v), f" AND {bound} AND typeof({c}) {guard} AND NOT ", src.bool_test(), ")")
        return _f(f"({c} {sqlop} ", _P(v), f" AND {bound} AND typeof({c}) {guard})")


_NESTING_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|[()]|\bCASE\b|\bEND\b")


@functools.lru_cache(maxsize=256)
def _nesting(sql: str) -> int:
    depth = deepest = 0
    for tok in _NESTING_TOKENS.findall(sql):  # quoted names and literals are skipped whole
        if tok in ("(", "CASE"):
            depth += 1
            deepest = max(deepest, depth)
        elif tok in (")", "END"):
            depth -= 1
    return deepest


_TOO_DEEP = ("parser stack overflow", "Expression tree is too large", "too many FROM clause terms")


def _check_parses(sql: str, params: list, columns) -> None:
    """Refuse SQL this SQLite cannot parse because it nests too deeply.

    SQLite before 3.46 parses with a fixed stack of 100 entries and fails with "parser stack
    overflow" on deeply nested SQL; how deep a predicate may nest depends on the operators and
    paths in it, so the SQL is prepared once on a throw-away connection (under a few extra
    parentheses, for the caller's surrounding query) instead of guessing. The verdict depends on
    the SQL text alone (values are parameters), so it is kept for the next predicate of that shape."""
    if _parse_error(sql, len(params), tuple(columns)):
        raise InvalidPredicate("the predicate nests $and/$or/$nor/$not or paths too deeply for SQLite; flatten it")


@functools.lru_cache(maxsize=256)
def _parse_error(sql: str, nparams: int, columns: tuple) -> bool:
    conn = sqlite3.connect(":memory:")
    try:
        register_functions(conn)
        # The tables a condition reading the row's version refers to (see _Compiler.content).
        conn.execute("CREATE TABLE nsl_version(vid INTEGER PRIMARY KEY, tbl, key, op, content)")
        conn.execute("CREATE TABLE nsl_shown(tbl, key, vid, content)")
        cols = ", ".join(f"NULL AS {quote_ident(c)}" for c in columns) or "NULL AS x"
        conn.execute(
            f"EXPLAIN SELECT 1 FROM (SELECT {cols}) AS {TABLE}, (SELECT NULL AS content) AS v "
            f"WHERE (((({sql}))))",
            [None] * nparams,
        )
    except sqlite3.OperationalError as e:
        if any(m in str(e) for m in _TOO_DEEP):
            return True
        raise
    finally:
        conn.close()
    return False


def compile_where(pred: dict | None, fields) -> tuple[str, list]:
    """SQL boolean expression (never NULL-valued: always 0/1) and its bound parameters."""
    if pred is None:
        return "1", []
    tree = parse(pred)
    sql, params = _render(_Compiler(fields).node(tree))
    if _nesting(sql) > _PROBE_NESTING:
        _check_parses(sql, params, fields.columns)
    return sql, params


def compile_sort(sort: str | list[str] | None, fields) -> str:
    """An ORDER BY list (without the words ORDER BY), ending with a stable tiebreak.

    `sort` is "a,-b.c" or ["a", "-b.c"]; "-" sorts descending. Fields the table does not have sort as
    NULL everywhere and are left out. Returns '' only when nothing is asked and the table has neither
    a rowid nor a key to break ties with."""
    if sort is None:
        items = []
    elif isinstance(sort, str):
        items = sort.split(",")  # so '' is an empty name, refused below
    elif isinstance(sort, (list, tuple)):
        items = []
        for s in sort:
            if not isinstance(s, str):
                raise InvalidPredicate(f"sort fields must be strings, got {_type_name(s)}")
            items.append(s)
    else:
        raise InvalidPredicate(f"sort must be a string or an array of strings, got {_type_name(sort)}")
    res = _Resolver.of(fields)
    out = []
    for item in items:
        item = item.strip()
        desc = item.startswith("-")
        if item.startswith(("-", "+")):
            item = item[1:].strip()
        if not item:
            raise InvalidPredicate("a sort field name is empty")
        r = res.resolve(item)
        if r[0] == "missing":
            continue
        c = f"{TABLE}.{quote_ident(r[1])}"
        if r[0] == "col":
            expr = c  # the bare column, so an index can deliver the order
        else:
            # ORDER BY has no parameters here, so the path goes in as a quoted SQL literal; members
            # were checked to hold no quote, backslash or control character.
            path = "$" + "".join(_member(m) for m in r[2])
            lit = "'" + path.replace("'", "''") + "'"
            col = "'" + r[1].replace("'", "''") + "'"  # the column's name, from the table
            j = "".join(_kind_in([CONTENT], col, "('j')"))
            expr = (f"CASE WHEN {_is_text_doc(c)[0]} THEN CASE WHEN json_type({c}, {lit}) IS NOT NULL AND {j} "
                    f"THEN json_extract({c}, {lit}) END END")
        out.append(expr + (" DESC" if desc else ""))
    if getattr(fields, "rowid", True):
        out.append(f"{TABLE}.rowid")
    elif getattr(fields, "key", None):
        out.append(f"{TABLE}.{quote_ident(fields.key)}")
    return ", ".join(out)


# --------------------------------------------------------------------------------------------------
# SQL functions.


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str, flags: int):
    return re.compile(pattern, flags)


def _sql_regexp(pattern, flags, value):
    if not isinstance(value, str) or not isinstance(pattern, str):
        return 0
    try:
        return 1 if _compiled(pattern, int(flags or 0)).search(value) else 0
    except (re.error, TypeError, ValueError):
        return 0  # an exception inside SQLite aborts the statement with a useless message


@functools.lru_cache(maxsize=1024)
def _header_positions(head: str) -> dict:
    pos = {}
    for i, name in enumerate(decode_header(head)):
        pos.setdefault(_fold(name), i)
    return pos


@functools.lru_cache(maxsize=4096)
def _cell_index(head: str, column: str):
    """The position of `column` (folded as SQLite folds names) in a typed encoding's header, or None."""
    return _header_positions(head).get(_fold(column))


def _sql_kind(content, column):
    """The tag of `column`'s cell in a typed encoding (T, F, j, -, or a storage class i r t b n), or ''
    when there is none: no stored version (a row written outside nsl), or a column added since."""
    if type(content) is not str or type(column) is not str:
        return ""
    nl = content.find("\n")
    try:
        i = _cell_index(content[:nl], column) if nl > 0 else None
    except ValueError:
        return ""
    if i is None:
        return ""
    pos = nl
    for _ in range(i):
        pos = content.find("|", pos + 1)
        if pos < 0:
            return ""
    return content[pos + 1 : pos + 2]


def _sql_present(content, column):
    """1 when the typed encoding has a cell for `column` that is not `-` (absent). Without one (no
    stored version: a row written outside nsl; or a column added since), NULL means absent."""
    kind = _sql_kind(content, column)
    return 1 if kind and kind != "-" else 0


def register_functions(conn) -> None:
    """Registers the SQL functions the compiled SQL needs (nsl_present, nsl_kind, nsl_regexp)."""
    conn.create_function("nsl_present", 2, _sql_present, deterministic=True)
    conn.create_function("nsl_kind", 2, _sql_kind, deterministic=True)
    conn.create_function("nsl_regexp", 3, _sql_regexp, deterministic=True)


# --------------------------------------------------------------------------------------------------
# Python evaluation, mirroring the SQL rule for rule (the tests hold the two against each other).

_ABSENT = object()


def _py_reach(x, members):
    if not members:
        return [x]
    m, rest = members[0], members[1:]
    if type(x) is dict:
        return _py_reach(x[m], rest) if m in x else []
    if type(x) is list:
        if _positional(m):
            i = int(m)
            return _py_reach(x[i], rest) if i < len(x) else []
        out = []
        for e in x:
            if type(e) is dict and m in e:
                out += _py_reach(e[m], rest)
        return out
    return []


def _py_same_type(x, v) -> bool:
    """x and the scalar v are of one MongoDB type: numbers (int and float), booleans, or strings."""
    if type(v) is bool:
        return type(x) is bool
    if type(v) is str:
        return type(x) is str
    return type(x) is int or type(x) is float


def _py_eq(x, v) -> bool:
    if isinstance(v, (list, dict)):
        return type(x) in (list, dict) and orjson.dumps(x) == orjson.dumps(v)
    return _py_same_type(x, v) and x == v


@functools.lru_cache(maxsize=256)
def _like_regex(pattern: str):
    parts = []
    for ch in _fold(pattern):
        parts.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
    return re.compile("".join(parts), re.DOTALL)


def _py_like(value: str, pattern: str) -> bool:
    # SQLite's LIKE: % and _ wildcards, no escape character, case folded for ASCII letters only.
    return _like_regex(pattern).fullmatch(_fold(value)) is not None


class _Subject:
    """What a field name finds in one object: whether it is there, and the values to test."""

    __slots__ = ("present", "cands")

    def __init__(self, present, cands):
        self.present, self.cands = present, cands


class _Evaluator:
    def __init__(self, obj, fields):
        self.obj = obj
        self.fields = fields
        if fields is not None:
            self.res = _Resolver.of(fields)
        else:
            self.res = _Resolver(list(obj), list(obj), list(obj))
        self.keys = {}
        for k in obj:
            self.keys.setdefault(_fold(k), k)

    def value(self, col):
        k = self.keys.get(_fold(col), _ABSENT)
        return _ABSENT if k is _ABSENT else self.obj[k]

    def subject(self, name) -> _Subject:
        r = self.res.resolve(name)
        if r[0] == "missing":
            return _Subject(False, [])
        x = self.value(r[1])
        if x is _ABSENT:
            return _Subject(False, [])
        if r[0] == "col":
            if self.fields is not None:
                # What SQL can see of a cell in a column nsl never recorded a nested value (or a
                # boolean) in: the JSON text (the integer) stored for it.
                if not r[2] and isinstance(x, (list, dict)):
                    x = orjson.dumps(x).decode()
                elif not r[3] and type(x) is bool:
                    x = int(x)
            return _Subject(True, [x] + (x if type(x) is list else []))
        if type(x) not in (list, dict):
            return _Subject(False, [])
        leaves = _py_reach(x, r[2])
        cands = []
        for leaf in leaves:
            cands.append(leaf)
            if type(leaf) is list:
                cands += leaf
        return _Subject(bool(leaves), cands)

    def node(self, node) -> bool:
        kind = node[0]
        if kind == "field":
            s = self.subject(node[1])
            return all(self.op(s, op) for op in node[2])
        if kind == "$and":
            return all(self.node(n) for n in node[1])
        if kind == "$or":
            return any(self.node(n) for n in node[1])
        return not any(self.node(n) for n in node[1])

    def eq(self, s, v):
        if v is None:
            return not s.present or any(c is None for c in s.cands)
        return any(_py_eq(c, v) for c in s.cands)

    def op(self, s, op) -> bool:
        name = op[0]
        if name == "$eq":
            return self.eq(s, op[1])
        if name == "$ne":
            return not self.eq(s, op[1])
        if name in ("$in", "$nin"):
            hit = any(self.eq(s, v) for v in op[1])
            return hit if name == "$in" else not hit
        if name in _CMP_OPS:
            v = op[1]
            if v is None:
                return self.eq(s, None) if name in ("$gte", "$lte") else False
            f = _PY_CMP[name]
            return any(_py_same_type(c, v) and f(c, v) for c in s.cands)
        if name == "$exists":
            return s.present == op[1]
        if name == "$regex":
            rx = _compiled(op[1], op[2])
            return any(type(c) is str and rx.search(c) is not None for c in s.cands)
        if name == "$like":
            return any(type(c) is str and _py_like(c, op[1]) for c in s.cands)
        if name == "$not":
            return not all(self.op(s, o) for o in op[1])
        raise AssertionError(name)


def matches(pred: dict, obj: dict, fields=None) -> bool:
    """Whether `obj` satisfies `pred`, with the same semantics as compile_where.

    With `fields`, column resolution and JSON and boolean columns follow the table exactly as the SQL
    does (unknown columns are missing, a plain column's nested value is only text, a boolean in a
    column not among fields.bool_columns only an integer); without it, the object's own keys are the
    columns, its arrays/objects are nested values and its booleans booleans."""
    tree = parse(pred)
    return _Evaluator(obj, fields).node(tree)
