"""Commands about the database itself: init, head, verify, rebuild, hash."""
from __future__ import annotations

import click

from ..core import adopt, commits, objects, verify as verifymod
from .data import json_option
from .main import cli, pass_state
from .output import console, emit_json, info, plural


@cli.command()
@click.argument("path", required=False)
@click.option("--hash", "hash_algo", type=click.Choice(["sha1", "sha256"]), default="sha1", show_default=True,
              help="Hash for versions and commits (fixed at creation).")
@json_option
@click.pass_context
def init(ctx, path, hash_algo, as_json):
    """Create a nsl database at PATH, or adopt an existing SQLite file and track its tables.

    PATH defaults to --db, $NSL_DB, then ./nsl.db. Running it again on a nsl database tracks
    tables created since.
    """
    db, res = adopt.init(path or ctx.obj.db_path, hash_algo=hash_algo)
    db.close()
    if as_json:
        emit_json(res.to_dict())
        return
    info(("created" if res.created else "initialized") + f" nsl database {res.path}")
    for t in res.tracked:
        info(f"  tracking {t}")
    for t, why in res.skipped.items():
        info(f"  not tracking {t}: {why}")
    if res.commit:
        click.echo(res.commit)


@cli.command()
@click.argument("path", default="nsl-demo.db", required=False)
@json_option
def demo(path, as_json):
    """Make a demo database at PATH (default: nsl-demo.db, replaced if there) and show around it.

    It holds two tables and a short history, including a change made with plain SQL. It is cloned to
    PATH-copy (PATH without .db, then -copy.db), the copy gets a new object, and a push brings it back.
    Then try `nsl --db PATH log`, `find`, `history people 1`, `diff HEAD~2`, `checkout HEAD~3`, `verify`.
    """
    from pathlib import Path

    from ..core import demo as demomod
    from ..core import history, objects
    from ..core.database import Database
    from ..sync import client
    from ..sync.clone import clone

    made = demomod.make_demo(path)
    copy = str(Path(path).with_name(Path(path).stem + "-copy.db"))
    demomod.remove_file(copy)
    clone(path, copy)
    with Database.open(copy) as other:
        objects.save(other, "people", [{"id": 6, "name": "Barbara Liskov", "born": 1939, "city": "Boston"}],
                     message="Added on the copy", author="demo")
        pushed = client.run(other, str(Path(path).resolve()), pull=False)
    db = Database.open(path)
    rep = verifymod.verify(db)
    found = list(objects.find(db, "people", {"born": {"$gt": 1900}}, sort="born"))
    if as_json:
        emit_json({**made, "commits": [e["commit"] for e in history.log(db)][::-1], "copy": copy,
                   "pushed": pushed.to_dict(), "verify": rep.ok, "head": rep.head, "found": found})
        return
    out = console()
    out.print(f"made {made['path']}: {plural(len(made['commits']), 'commit')}, tables {', '.join(made['tables'])}\n")
    out.print(f"$ nsl --db {path} log -n 3", markup=False)
    for e in history.log(db, limit=3):
        out.print(f"  [yellow]{e['commit'][:12]}[/] {e['date']}  {e['message']}")
    out.print(f"\n$ nsl --db {path} find people '{{\"born\": {{\"$gt\": 1900}}}}' --sort born", markup=False)
    for o in found:
        out.print(f"  {o['id']}  {o['name']} ({o['born']}, {o['city']})", markup=False)
    out.print(f"\n$ nsl clone {path} {copy}", markup=False)
    out.print(f"$ nsl --db {copy} save people '{{\"id\": 6, \"name\": \"Barbara Liskov\", ...}}'", markup=False)
    out.print(f"$ nsl --db {copy} push", markup=False)
    out.print(f"  {pushed.artifacts_sent} artifacts sent in {pushed.rounds} round trip"
              f"{'s' if pushed.rounds != 1 else ''}; both heads are now {str(pushed.head_after)[:12]}", markup=False)
    out.print(f"\n$ nsl --db {path} verify", markup=False)
    out.print(f"  {plural(rep.commits, 'commit')}, {plural(rep.versions, 'version')}, {plural(rep.rows, 'row')}: "
              + ("ok" if rep.ok else "PROBLEMS") + f"; head {rep.head}", markup=False)
    db.close()


@cli.command()
@json_option
@pass_state
def head(state, as_json):
    """Print the head: the newest commit's uuid, which stands for all the data and its history."""
    h = commits.head(state.open())
    if as_json:
        emit_json({"head": h})
    elif h:
        click.echo(h)
    else:
        info("no commits yet")


@cli.command()
@json_option
@click.pass_context
def verify(ctx, as_json):
    """Recompute every hash and compare the user tables with the history.

    Exit 0 when all holds; 1 with a list of exactly what differs.
    """
    rep = verifymod.verify(ctx.obj.open())
    if as_json:
        emit_json(rep.to_dict())
    else:
        out = console()
        for p in rep.problems:
            out.print(f"[red]✗[/] {p}", markup=True, highlight=False)
        out.print(f"{plural(rep.commits, 'commit')}, {plural(rep.versions, 'version')}, "
                  f"{plural(rep.rows, 'row')} checked; head {rep.head or '(none)'}", markup=False)
        if rep.uncommitted:
            out.print(f"{plural(rep.uncommitted, 'uncommitted change')} (see `nsl status`)")
        out.print("ok" if rep.ok else f"[red]{plural(len(rep.problems), 'problem')}[/]")
    if not rep.ok:
        ctx.exit(1)


@cli.command()
@json_option
@pass_state
def rebuild(state, as_json):
    """Regenerate every derived table (current versions, links, leaves, triggers) from the history."""
    res = verifymod.rebuild(state.open())
    if as_json:
        emit_json(res)
    else:
        info(f"rebuilt: {plural(res['commits'], 'commit')}, {plural(res['versions'], 'version')}, "
             f"{plural(res['objects'], 'live object')}")


@cli.command("hash")
@click.argument("table")
@click.argument("key")
@json_option
@pass_state
def hash_cmd(state, table, key, as_json):
    """Print the SHA-1 of a row as the sqlite3 CLI prints it.

    Equal to: sqlite3 DB "select * from TABLE where KEYCOL=KEY" | head -c -1 | sha1sum
    """
    db = state.open()
    h = objects.row_hash(db, table, key)
    if as_json:
        tbl = db.table(table)
        emit_json({"table": tbl.name, "key": objects.resolve_key(db, tbl, key), "hash": h})
    else:
        click.echo(h)
