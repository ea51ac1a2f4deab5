"""Several saves and deletes, over any tables, in one commit: all of them happen, or none.

This is the seed's beginTransaction/commit: a list of operations

    [{"save": {"table": "people", "object": {...}}},           # "key": COLUMN names a new table's key
     {"delete": {"table": "people", "key": 7}}]

applied in order inside one SQLite transaction and recorded as one commit. Saving an object twice keeps
the last state; saving and deleting the same object in one commit is refused (a commit names each
object's change once). Any failure rolls everything back and names the operation that failed.
"""
from __future__ import annotations

from ..errors import BadInput, InvalidObject, NothingToCommit, NslError, UnknownObject
from .commits import CommitWriter
from .database import Database, check_column_name, check_table_name
from .objects import WriteResult, _find_row, _meta, _Saver
from .schema import current_version

MAX_OPS = 100_000


class _NoChange(Exception):
    pass


def _json_type(v) -> str:
    return {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number",
            bool: "a boolean", type(None): "null"}.get(type(v), type(v).__name__)


def parse_ops(ops) -> list[tuple]:
    """Check the shape of an op list; ("save", table, object, key column or None) / ("delete", table, key)."""
    if not isinstance(ops, list):
        raise BadInput(f"ops must be an array of operations, got {_json_type(ops)}")
    if not ops:
        raise InvalidObject("nothing to commit: ops is empty")
    if len(ops) > MAX_OPS:
        raise BadInput(f"too many operations ({len(ops)}): at most {MAX_OPS} in one commit")
    plan = []
    for i, op in enumerate(ops, 1):
        where = f"op {i}"
        if not isinstance(op, dict) or len(op) != 1:
            raise BadInput(f'{where}: expected {{"save": {{...}}}} or {{"delete": {{...}}}}')
        (verb, args), = op.items()
        if verb not in ("save", "delete"):
            raise BadInput(f"{where}: unknown operation {verb!r} (use save or delete)")
        if not isinstance(args, dict):
            raise BadInput(f"{where}: {verb} takes an object, got {_json_type(args)}")
        allowed = {"save": {"table", "object", "key"}, "delete": {"table", "key"}}[verb]
        extra = sorted(set(args) - allowed)
        if extra:
            raise BadInput(f"{where}: unknown field {extra[0]!r} in {verb} (fields: {', '.join(sorted(allowed))})")
        table = args.get("table")
        if not isinstance(table, str):
            raise BadInput(f"{where}: table must be a string, got {_json_type(table)}")
        if verb == "save":
            obj = args.get("object")
            if type(obj) is not dict:
                raise InvalidObject(f"{where}: object must be a JSON object, got {_json_type(obj)}")
            key_col = args.get("key")
            if key_col is not None and not isinstance(key_col, str):
                raise BadInput(f"{where}: key (the key column of a new table) must be a string")
            plan.append(("save", table, obj, key_col))
        else:
            if "key" not in args:
                raise BadInput(f"{where}: delete needs a key")
            key = args["key"]
            if type(key) is not str and type(key) is not int:
                raise BadInput(f"{where}: key must be a string or an integer, got {_json_type(key)}")
            plan.append(("delete", table, key))
    return plan


def apply(db: Database, ops, *, message=None, author=None, meta=None) -> WriteResult:
    """Apply save/delete operations in one commit. Returns the commit (None when nothing changed),
    the number of objects changed, and [{"op", "table", "key"}] for each operation."""
    plan = parse_ops(ops)
    result = WriteResult(None, 0, [])
    try:
        with db.write():
            w = CommitWriter(db, _meta(message, author, meta))
            run = _Run(db, w)
            for i, op in enumerate(plan, 1):
                try:
                    result.keys.append(run.save(*op[1:]) if op[0] == "save" else run.delete(*op[1:]))
                except NslError as e:
                    raise type(e)(f"op {i}: {e.message}", hint=e.hint, **e.data) from None
            for saver in run.savers.values():
                saver.finish()
            try:
                result.commit = w.seal()
            except NothingToCommit:
                raise _NoChange from None
            # One line per object changed (an object saved twice is one line, changed in place).
            result.count = db.conn.execute("SELECT nlines FROM nsl_commit WHERE cid=?", (w.cid,)).fetchone()[0]
    except _NoChange:
        result.commit = None
        result.count = 0
    return result


class _Run:
    """The state of one apply(): a saver per table, all writing lines into the one commit."""

    def __init__(self, db: Database, writer: CommitWriter):
        self.db, self.w = db, writer
        self.savers: dict[str, _Saver] = {}
        self.saved: set = set()
        self.removed: set = set()

    def save(self, table, obj, key_col):
        check_table_name(table)
        if key_col is not None:
            check_column_name(key_col)
        saver = self.savers.get(table.lower())
        if saver is None:
            tbl = self.db.table(table, missing_ok=True)
            if tbl is not None and key_col is not None and key_col != tbl.key_col:
                raise BadInput(f"table {tbl.name!r} is keyed by {tbl.key_col!r}, not {key_col!r}")
            saver = _Saver(self.db, tbl, table, key_col or (tbl.key_col if tbl else "id"), {}, True)
            saver.writer = self.w
            if tbl is not None:
                saver._mute_triggers()
            self.savers[table.lower()] = saver
        elif key_col is not None and key_col != saver.key_col:
            raise BadInput(f"table {saver.name!r} is keyed by {saver.key_col!r}, not {key_col!r}")
        saver.add_batch([dict(obj)])
        key = saver.keys[-1]
        ident = (saver.tbl.name.lower(), type(key), key)
        if ident in self.removed:
            raise BadInput(f"object {key!r} of table {saver.tbl.name!r} is deleted earlier in this commit; "
                           "a commit may save or delete an object, not both")
        self.saved.add(ident)
        return {"op": "save", "table": saver.tbl.name, "key": key}

    def delete(self, table, key):
        db = self.db
        tbl = db.table(table)
        row = _find_row(db, tbl, key)
        if row is None:
            raise UnknownObject(f"no object with key {key!r} in table {tbl.name!r}", table=tbl.name, key=key)
        k = row[tbl.columns.index(tbl.key_col)]
        ident = (tbl.name.lower(), type(k), k)
        if ident in self.saved:
            raise BadInput(f"object {k!r} of table {tbl.name!r} is saved earlier in this commit; "
                           "a commit may save or delete an object, not both")
        cur = db.conn.execute(
            f"SELECT uuid FROM nsl_version WHERE vid = {current_version('?', '?')} AND op != 'D'",
            (tbl.name, k)).fetchone()
        if cur is not None:
            self.w.insert_lines([(self.w.take_vids(1), self.w.cid, tbl.name, k, "D", None, None, cur[0], None)])
        db.conn.execute(f"DELETE FROM {tbl.q} WHERE {tbl.qkey} = ?", (k,))
        db.conn.execute("DELETE FROM nsl_pending WHERE tid=? AND key=?", (tbl.tid, k))
        self.removed.add(ident)
        return {"op": "delete", "table": tbl.name, "key": k}


__all__ = ["apply", "parse_ops"]
