"""Commands that reach other databases: remote, clone, push, pull, sync; and the conflicts a sync can
leave: conflicts, resolve; and the settings that steer them: config."""
from __future__ import annotations

import sys

import click

from ..core import config as configmod
from ..core import conflicts as conflictsmod
from ..errors import BadInput
from .data import json_option, parse_predicate, with_message
from .main import cli, pass_state
from .output import console, emit_json, info, plural

quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress or summary on stderr.")


def _progress(quiet: bool, what: str):
    """A progress callback drawing on stderr when it is a terminal (and not -q), else None."""
    if quiet or not sys.stderr.isatty():
        return None, None
    from rich.status import Status

    status = Status(f"{what}…", console=console(stderr=True))
    status.start()

    def update(ev: dict):
        parts = [f"round {ev['round']}", f"{ev.get('received', 0)} received"]
        if "sent" in ev:
            parts.append(f"{ev['sent']} sent")
        if ev.get("missing"):
            parts.append(f"{ev['missing']} still to fetch")
        status.update(f"{what}: " + ", ".join(parts))

    return update, status


def _report(summary, as_json: bool, quiet: bool):
    if as_json:
        emit_json(summary.to_dict())
        return
    if quiet:
        return
    d = summary.to_dict()
    info(f"{d['direction']} {d['remote']}: {d['received']['artifacts']} artifacts received, "
         f"{d['sent']['artifacts']} sent, {d['round_trips']} round trips "
         f"({d['sent']['bytes']} bytes out, {d['received']['bytes']} in)")
    if d["head_before"] != d["head_after"]:
        info(f"head {(d['head_before'] or '(none)')[:12]} -> {(d['head_after'] or '(none)')[:12]}")
    else:
        info(f"head {(d['head_after'] or '(none)')[:12]} (unchanged)")
    if d["conflicts"]:
        info(f"{plural(len(d['conflicts']), 'object')} in conflict: see `nsl conflicts`")
    if d.get("missing"):
        info(f"warning: {plural(d['missing'], 'artifact')} the remote told of could not be fetched")


def _sync(state, remote, as_json, quiet, pull, push):
    from ..sync import client

    db = state.open()
    url, token, _ = configmod.resolve_remote(db, remote)
    what = "sync" if pull and push else "pull" if pull else "push"
    update, status = _progress(quiet or as_json, f"{what} {url}")
    try:
        summary = client.run(db, url, token, pull=pull, push=push, progress=update)
    finally:
        if status is not None:
            status.stop()
    _report(summary, as_json, quiet)


@cli.command()
@click.argument("remote", required=False)
@quiet_option
@json_option
@pass_state
def push(state, remote, quiet, as_json):
    """Send the remote every artifact it lacks (REMOTE: a remote's name, a URL or a path; default origin).

    The token comes from the remote's --token-env variable, the user config, or $NSL_TOKEN.
    """
    _sync(state, remote, as_json, quiet, pull=False, push=True)


@cli.command()
@click.argument("remote", required=False)
@quiet_option
@json_option
@pass_state
def pull(state, remote, quiet, as_json):
    """Fetch every artifact the remote has and this database lacks, and show what they bring.

    Concurrent changes to one object become a conflict: the table shows the version its policy picks
    (`nsl config table.NAME.conflicts`), `nsl conflicts` lists the others.
    """
    _sync(state, remote, as_json, quiet, pull=True, push=False)


@cli.command("sync")
@click.argument("remote", required=False)
@quiet_option
@json_option
@pass_state
def sync_cmd(state, remote, quiet, as_json):
    """Push and pull at once until both databases hold the same artifacts (default remote: origin)."""
    _sync(state, remote, as_json, quiet, pull=True, push=True)


@cli.command()
@click.argument("url")
@click.argument("path", required=False)
@click.option("--token-env", metavar="VAR", help="Environment variable holding the remote's token (kept as "
                                                  "origin's token-env).")
@quiet_option
@json_option
@click.pass_context
def clone(ctx, url, path, token_env, quiet, as_json):
    """Make a new database at PATH holding everything the remote at URL has, with URL as origin.

    URL is http(s)://HOST:PORT of `nsl serve`, or a path to a database. PATH defaults to --db, $NSL_DB,
    then ./nsl.db, and must not exist. The copy gets its own db_code and shares the remote's project.
    """
    import os

    from ..core.database import resolve_path
    from ..sync.clone import clone as do_clone

    configmod.check_url(url)
    if token_env is not None:
        configmod.check_value("remote.origin.token-env", token_env)
    token = (os.environ.get(token_env) if token_env else None) or os.environ.get("NSL_TOKEN") or None
    target = resolve_path(path or ctx.obj.db_path)
    update, status = _progress(quiet or as_json, f"clone {url}")
    try:
        summary = do_clone(url, target, token, token_env=token_env, progress=update)
    finally:
        if status is not None:
            status.stop()
    if as_json:
        emit_json({**summary.to_dict(), "path": str(target)})
    elif not quiet:
        d = summary.to_dict()
        info(f"cloned {url} into {target}: {d['commits_applied']} commits, {d['received']['artifacts']} artifacts, "
             f"{d['round_trips']} round trips; head {(d['head_after'] or '(none)')[:12]}")


# ---- remotes ------------------------------------------------------------------------------------

@cli.group("remote", invoke_without_command=True)
@json_option
@click.pass_context
def remote(ctx, as_json):
    """Manage remotes: named URLs (or paths) to push to and pull from (alone: list them)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(remote_list, as_json=as_json)


@remote.command("add")
@click.argument("name")
@click.argument("url")
@click.option("--token-env", metavar="VAR", help="Environment variable that holds this remote's token.")
@json_option
@pass_state
def remote_add(state, name, url, token_env, as_json):
    """Add remote NAME at URL (http(s)://HOST:PORT or a path); its token is read from $VAR when given."""
    configmod.add_remote(state.open(), name, url, token_env)
    if as_json:
        emit_json({"name": name, "url": url, "token_env": token_env})
    else:
        info(f"added remote {name} {url}")


@remote.command("list")
@json_option
@pass_state
def remote_list(state, as_json):
    """List the remotes: name, URL and where the token comes from (never the token itself)."""
    rs = configmod.remotes(state.open())
    if as_json:
        emit_json({"remotes": [{"name": n, "url": r["url"], "token_env": r.get("token-env")} for n, r in rs.items()]})
        return
    for n, r in rs.items():
        click.echo(f"{n}\t{r['url']}" + (f"\t(token from ${r['token-env']})" if r.get("token-env") else ""))


@remote.command("remove")
@click.argument("name")
@json_option
@pass_state
def remote_remove(state, name, as_json):
    """Remove remote NAME (the artifacts it brought stay)."""
    configmod.remove_remote(state.open(), name)
    if as_json:
        emit_json({"removed": name})
    else:
        info(f"removed remote {name}")


# ---- settings -------------------------------------------------------------------------------------

@cli.command("config")
@click.argument("name", required=False)
@click.argument("value", required=False)
@click.option("--unset", is_flag=True, help="Remove the setting NAME.")
@json_option
@pass_state
def config_cmd(state, name, value, unset, as_json):
    """Show or change the database's settings (alone: list them).

    NAME is remote.<name>.url, remote.<name>.token-env or table.<name>.conflicts (lww, merge-fields or
    manual). Changing a table's policy re-picks what its objects in conflict show.
    """
    db = state.open()
    if name is None:
        if value is not None or unset:
            raise BadInput("give a setting NAME")
        items = configmod.items(db)
        if as_json:
            emit_json({"settings": items})
        else:
            for k, v in items.items():
                click.echo(f"{k}={v}")
        return
    if unset:
        if value is not None:
            raise BadInput("--unset takes no VALUE")
        done = configmod.unset(db, name)
        if as_json:
            emit_json({"name": name, "unset": done})
        elif not done:
            info(f"{name} was not set")
        return
    if value is None:
        configmod.split_key(name)
        v = configmod.get(db, name)
        if as_json:
            emit_json({"name": name, "value": v})
        elif v is None:
            raise click.exceptions.Exit(1)
        else:
            click.echo(v)
        return
    configmod.set_(db, name, value)
    if as_json:
        emit_json({"name": name, "value": value})


# ---- conflicts -------------------------------------------------------------------------------------

@cli.command()
@click.argument("table", required=False)
@json_option
@pass_state
def conflicts(state, table, as_json):
    """List objects with more than one current version: what the table shows (ours), the other versions
    (theirs), their common base, and what each side changed."""
    db = state.open()
    if table is not None:
        table = db.table(table).name
    found = conflictsmod.conflict_list(db, table)
    if as_json:
        emit_json({"conflicts": found})
        return
    if not found:
        info("no conflicts")
        return
    out = console()
    for c in found:
        out.print(f"[bold]{c['table']}/{c['key']}[/]  ({c['state']}, policy {c['policy']})", highlight=False)
        ours = c["ours"]
        out.print(f"  ours    {str(ours['version'] or 'deleted')[:12]}  {ours['date']}  "
                  f"{_changes(ours['changed'])}", markup=False)
        for t in c["theirs"]:
            out.print(f"  theirs  {str(t['version'] or 'deleted')[:12]}  {t['date']}  {_changes(t['changed'])}",
                      markup=False)
        if c["base"]:
            out.print(f"  base    {c['base']['version'][:12]}", markup=False)


def _changes(changed: dict) -> str:
    if "(deleted)" in changed:
        return "deleted it"
    if not changed:
        return "no change from base"
    return ", ".join(f"{k}: {_short(a)} -> {_short(b)}" for k, (a, b) in list(changed.items())[:6])


def _short(v) -> str:
    from ..core.values import dumps

    s = dumps(v).decode()
    return s if len(s) <= 30 else s[:27] + "..."


@cli.command()
@click.argument("table")
@click.argument("key")
@click.option("--take", "take", metavar="VERSION", help="Keep this version (a uuid prefix; `deleted` to delete).")
@click.option("--object", "obj", metavar="JSON", help="Keep this object instead (its key must be KEY).")
@with_message
@json_option
@pass_state
def resolve(state, table, key, take, obj, message, author, as_json):
    """Merge an object in conflict: one commit whose new version descends from every side.

    Sync the commit and the conflict is gone everywhere.
    """
    if (take is None) == (obj is None):
        raise BadInput("give exactly one of --take VERSION and --object JSON")
    chosen = None
    if obj is not None:
        chosen = parse_predicate(obj)
        if chosen is None:
            raise BadInput("--object needs a JSON object")
    res = conflictsmod.resolve(state.open(), table, key, take=take, obj=chosen, message=message, author=author)
    if as_json:
        emit_json(res.to_dict())
    else:
        click.echo(res.commit)
