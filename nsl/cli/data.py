"""Commands that write and read objects: save, get, find, delete, sql, index."""
from __future__ import annotations

import io
import sys

import click

from ..core import bulk, objects, sql as sqlmod
from ..core.schema import quote
from ..core.values import loads
from ..errors import BadInput, InvalidPredicate
from .main import cli, pass_state
from .output import emit_json, emit_pretty_json, emit_rows, info, row_options

json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
message_options = [
    click.option("-m", "--message", help="Commit message."),
    click.option("--author", envvar="NSL_AUTHOR", help="Commit author (default: $NSL_AUTHOR)."),
]


def with_message(f):
    for opt in reversed(message_options):
        f = opt(f)
    return f


def parse_predicate(text: str | None):
    if text is None or text.strip() == "":
        return None
    value = loads(text)
    if not isinstance(value, dict):
        raise InvalidPredicate("a predicate must be a JSON object, like '{\"age\": {\"$gt\": 30}}'")
    return value


@cli.command()
@click.argument("table")
@click.argument("json_text", metavar="[JSON]", required=False)
@click.option("--key", "key", metavar="COLUMN", help="The key attribute of a new table (default: id).")
@with_message
@json_option
@pass_state
def save(state, table, json_text, key, message, author, as_json):
    """Save objects into TABLE, all in one commit.

    JSON is one object, an array of objects, or (when JSON is - or absent) objects read from stdin:
    one JSON document or JSON lines. An object whose key exists becomes a new version of it; new
    attributes become new columns. Prints the commit uuid.
    """
    if json_text is None or json_text == "-":
        if json_text is None and sys.stdin.isatty():
            raise BadInput("no objects given: pass JSON as an argument or on stdin")
        stream = click.get_binary_stream("stdin")
    else:
        stream = io.BufferedReader(io.BytesIO(json_text.encode("utf-8", "surrogatepass")))
    db = state.open()
    res = bulk.save_lines(db, table, stream, key=key, message=message, author=author, collect_keys=as_json)
    if as_json:
        emit_json(res.to_dict())
    elif res.commit:
        click.echo(res.commit)
    else:
        info("nothing changed: every object already had that content")


@cli.command()
@click.argument("table")
@click.argument("key")
@json_option
@pass_state
def get(state, table, key, as_json):
    """Print the object with KEY from TABLE."""
    obj = objects.get(state.open(), table, key)
    (emit_json if as_json else emit_pretty_json)(obj)


@cli.command()
@click.argument("table")
@click.argument("predicate", required=False)
@click.option("--sort", metavar="FIELD[,-FIELD]", help="Sort by fields; a leading - sorts descending.")
@click.option("--limit", type=int, metavar="N", help="At most N objects (0: no limit, as in MongoDB).")
@click.option("--skip", type=int, metavar="N", help="Skip the first N objects.")
@click.option("--fields", metavar="a,b", help="Only these fields (dotted paths allowed).")
@row_options
@pass_state
def find(state, table, predicate, sort, limit, skip, fields, fmt):
    """Find objects in TABLE matching PREDICATE, a MongoDB-style JSON query.

    \b
    Examples:
      nsl find people '{"age": {"$gte": 30}, "city": {"$in": ["Oslo", "Bergen"]}}'
      nsl find people '{"address.city": "Oslo"}' --sort -age --limit 10 --json
    Operators: $eq $ne $gt $gte $lt $lte $in $nin $exists $and $or $nor $not $regex $like.
    """
    pred = parse_predicate(predicate)
    # An empty --fields names an empty field, which is refused (as is an empty --sort).
    field_list = [f.strip() for f in fields.split(",")] if fields is not None else None
    db = state.open()
    rows = objects.find(db, table, pred, sort=sort, limit=limit or None, skip=skip, fields=field_list)
    emit_rows(rows, fmt, columns=field_list)


@cli.command()
@click.argument("table")
@click.argument("keys", nargs=-1)
@click.option("--where", "where", metavar="PREDICATE", help="Delete every object matching PREDICATE.")
@with_message
@json_option
@pass_state
def delete(state, table, keys, where, message, author, as_json):
    """Delete objects from TABLE by KEY (or --where PREDICATE), in one commit.

    The objects stay in the history; `nsl revert` or `nsl restore` brings them back.
    """
    if bool(keys) == bool(where):
        raise BadInput("give KEYs or --where PREDICATE (one of the two)")
    db = state.open()
    res = objects.delete(db, table, list(keys) or None, where=parse_predicate(where) if where else None,
                         message=message, author=author)
    if as_json:
        emit_json(res.to_dict())
    elif res.commit:
        click.echo(res.commit)
    else:
        info("nothing deleted: no object matched")


@cli.command("sql")
@click.argument("query")
@click.option("--param", "params", multiple=True, metavar="V",
              help="A value for the next ? (JSON if it parses as JSON, else text). Repeatable.")
@click.option("--write", is_flag=True, help="Allow the SQL to change user tables (record with `nsl commit`).")
@row_options
@pass_state
def sql_cmd(state, query, params, write, fmt):
    """Run one SQL statement; read-only unless --write is given.

    Changes made with --write are tracked like any SQLite client's: `nsl status` shows them and
    `nsl commit` records them. nsl's own tables cannot be changed this way.
    """
    values = []
    for p in params:
        try:
            v = loads(p)
            values.append(v if not isinstance(v, (dict, list)) else p)
        except BadInput:
            values.append(p)
    cols, rows = sqlmod.run(state.open(), query, values, write=write)
    if not cols:
        if fmt in ("json",):
            emit_json([])
        return
    emit_rows(({c: v for c, v in zip(cols, r)} for r in rows), fmt or ("table" if sys.stdout.isatty() else None),
              columns=cols)


@cli.command()
@click.argument("table")
@click.argument("field_name", metavar="FIELD")
@click.option("--drop", is_flag=True, help="Remove the index instead.")
@json_option
@pass_state
def index(state, table, field_name, drop, as_json):
    """Create (or --drop) an index on FIELD of TABLE, so finds on it take milliseconds.

    Equality, $in and range predicates on FIELD then use the index.
    """
    db = state.open()
    with db.write(check_checkout=False):
        tbl = db.table(table)
        name = f"nsl_idx_{tbl.tid}_{field_name}"
        if drop:
            db.conn.execute(f"DROP INDEX IF EXISTS {quote(name)}")
        else:
            col = {c.lower(): c for c in tbl.columns}.get(field_name.lower())
            if col is None:
                raise BadInput(f"table {tbl.name!r} has no field {field_name!r} (only top-level fields can be indexed)")
            db.conn.execute(f"CREATE INDEX IF NOT EXISTS {quote(name)} ON {tbl.q} ({quote(col)})")
    if as_json:
        emit_json({"table": tbl.name, "field": field_name, "index": name, "dropped": drop})
    else:
        info(("dropped index " if drop else "index ") + name)
