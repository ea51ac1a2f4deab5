"""Commands about history: status, diff, commit, log, show, history, checkout, revert, restore."""
from __future__ import annotations

import click

from ..core import commits, history as hist, objects, travel
from ..core.values import dumps
from ..errors import BadInput
from .data import json_option, with_message
from .main import cli, pass_state
from .output import console, emit_json, info, plural


def _short(u):
    return (u or "")[:12]


@cli.command()
@json_option
@pass_state
def status(state, as_json):
    """Show uncommitted changes: rows changed with SQL (any SQLite client) since the last commit."""
    from ..core import conflicts

    db = state.open()
    changes = objects.status(db)
    co = db.meta("checkout")
    n_conflicts = db.conn.execute("SELECT count(*) FROM nsl_shown").fetchone()[0]
    leaves = db.conn.execute("SELECT count(*) FROM nsl_leaf").fetchone()[0]
    if as_json:
        emit_json({"head": commits.head(db), "checkout": co, "leaves": leaves, "conflicts": n_conflicts,
                   "changes": [c.to_dict() for c in changes]})
        return
    out = console()
    out.print(f"head {commits.head(db) or '(no commits yet)'}"
              + (f" ({leaves} leaves, from a sync: the next commit merges them)" if leaves > 1 else ""))
    if co:
        out.print(f"checked out {co} (read-only; `nsl checkout HEAD` returns)")
    if n_conflicts and conflicts.has_any(db):
        out.print(f"{plural(n_conflicts, 'object')} in conflict (see `nsl conflicts`)")
    if not changes:
        out.print("nothing to commit")
        return
    for c in changes:
        out.print(f"{c.op:>9}  {c.table}/{c.key}", markup=False)


@cli.command()
@click.argument("from_ref", metavar="[FROM", required=False)
@click.argument("to_ref", metavar="[TO]]", required=False)
@click.option("--table", help="Only this table.")
@json_option
@pass_state
def diff(state, from_ref, to_ref, table, as_json):
    """Show what differs between FROM and TO (commits; default: HEAD and the tables as they are now)."""
    db = state.open()
    entries = hist.diff(db, from_ref, to_ref, table)
    if as_json:
        emit_json(entries)
        return
    out = console()
    for e in entries:
        mark = {"added": "+", "deleted": "-", "modified": "~"}[e["change"]]
        out.print(f"{mark} {e['table']}/{e['key']}", markup=False)
        if e["change"] == "modified":
            for f, (a, b) in e["fields"].items():
                out.print(f"    {f}: {dumps(a).decode()} -> {dumps(b).decode()}", markup=False)
        else:
            out.print("    " + dumps(e["new"] if e["change"] == "added" else e["old"]).decode(), markup=False)
    if not entries:
        info("no differences")


@cli.command()
@with_message
@json_option
@pass_state
def commit(state, message, author, as_json):
    """Record changes made outside nsl (with SQL) as one commit."""
    res = objects.commit_pending(state.open(), message=message, author=author)
    if as_json:
        emit_json({"commit": res.commit, "count": res.count})
    else:
        click.echo(res.commit)


@cli.command()
@click.argument("table", required=False)
@click.argument("key", required=False)
@click.option("-n", "limit", type=int, metavar="N", help="At most N commits.")
@json_option
@pass_state
def log(state, table, key, limit, as_json):
    """List commits, newest first (only those touching TABLE, or one object, when given)."""
    entries = hist.log(state.open(), table, key, limit)
    if as_json:
        emit_json(entries)
        return
    out = console()
    for e in entries:
        out.print(f"[yellow]commit {e['commit']}[/]")
        if e["author"]:
            out.print(f"Author: {e['author']}", markup=False)
        out.print(f"Date:   {e['date']}")
        out.print(f"        +{e['inserted']} ~{e['updated']} -{e['deleted']}")
        if e["message"]:
            out.print(f"\n    {e['message']}", markup=False)
        out.print()


@cli.command()
@click.argument("ref", metavar="COMMIT")
@json_option
@pass_state
def show(state, ref, as_json):
    """Show one commit (a uuid prefix, HEAD or HEAD~N): header and changed objects."""
    c = hist.show(state.open(), ref)
    if as_json:
        emit_json(c)
        return
    out = console()
    out.print(f"[yellow]commit {c['commit']}[/]")
    for p in c["parents"]:
        out.print(f"parent {p}")
    if c["author"]:
        out.print(f"Author: {c['author']}", markup=False)
    out.print(f"Date:   {c['date']}")
    if c["message"]:
        out.print(f"\n    {c['message']}\n", markup=False)
    for ln in c["lines"]:
        out.print(f"{ln['op']} {ln['table']}/{ln['key']} {_short(ln['version'] or ','.join(ln['parents']))}",
                  markup=False)


@cli.command()
@click.argument("table")
@click.argument("key")
@json_option
@pass_state
def history(state, table, key, as_json):
    """Every version of one object, newest first."""
    entries = hist.history(state.open(), table, key)
    if as_json:
        emit_json(entries)
        return
    out = console()
    for e in entries:
        what = {"I": "inserted", "U": "updated", "D": "deleted"}[e["op"]]
        out.print(f"[yellow]{_short(e['commit'])}[/] {e['date']} {what}"
                  + (f"  {e['message']}" if e["message"] else ""))
        if e["object"] is not None:
            out.print("    " + dumps(e["object"]).decode(), markup=False)


@cli.command()
@click.argument("ref", metavar="COMMIT")
@json_option
@pass_state
def checkout(state, ref, as_json):
    """Show the database as it was at COMMIT (read-only); `nsl checkout HEAD` returns.

    Nothing is lost either way: the history is untouched, only the user tables' rows change.
    """
    res = travel.checkout(state.open(), ref)
    if as_json:
        emit_json(res.to_dict())
    elif res.commit:
        differ = "differs" if res.changed == 1 else "differ"
        info(f"now showing {res.commit} ({plural(res.changed, 'object')} {differ} from the head); "
             "writes are refused until `nsl checkout HEAD`")
    else:
        info(f"back at the head ({plural(res.changed, 'object')} restored)")


@cli.command()
@click.argument("ref", metavar="COMMIT")
@with_message
@json_option
@pass_state
def revert(state, ref, message, author, as_json):
    """Make a new commit that undoes COMMIT."""
    res = travel.revert(state.open(), ref, message=message, author=author)
    if as_json:
        emit_json({"commit": res.commit, "count": res.count})
    else:
        click.echo(res.commit)


@cli.command()
@click.option("--source", default="HEAD", show_default=True, metavar="COMMIT", help="The state to bring back.")
@click.argument("table", required=False)
@click.argument("key", required=False)
@json_option
@pass_state
def restore(state, source, table, key, as_json):
    """Bring the user tables (or TABLE, or one object) back to a commit's state, as uncommitted changes.

    Like `git restore --source`: review with `nsl status`, record with `nsl commit`. Without
    --source it discards uncommitted changes.
    """
    if key is not None and table is None:
        raise BadInput("give TABLE with KEY")
    res = travel.restore(state.open(), source, table, key)
    if as_json:
        emit_json(res.to_dict())
    else:
        info(f"restored {plural(res.changed, 'object')} to {_short(res.commit)}; `nsl commit` records them")
