"""Commands about serving the database over HTTP: serve, and the tokens that guard it."""
from __future__ import annotations

import signal
import sys

import click

from ..core import tokens as tokensmod
from ..errors import BadInput
from .data import json_option
from .main import State, cli, pass_state
from .output import console, emit_json, info


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but loopback needs a token (or --insecure).")
@click.option("--port", type=click.IntRange(0, 65535), default=5000, show_default=True,
              help="Port to listen on; 0 picks a free one.")
@click.option("--threads", type=click.IntRange(1, 1024), default=4, show_default=True,
              help="Worker threads (requests served at once).")
@click.option("--max-body", type=click.IntRange(1), default=16 * 1024 * 1024, show_default=True,
              metavar="BYTES", help="Largest request body accepted; larger ones get 413.")
@click.option("--insecure", is_flag=True,
              help="Allow a non-loopback address although the database has no tokens (open to anyone).")
@json_option
@pass_state
def serve(state, host, port, threads, max_body, insecure, as_json):
    """Serve the database over HTTP: the REST JSON API under /api/v1 and a web interface at /.

    Open the URL in a browser for the web interface (browse and find objects, add, edit and delete them,
    history with diffs, the log, verify, an API explorer); it uses the same API and tokens.
    Prints the URL it listens on (`serving http://HOST:PORT/`), then serves until SIGTERM or Ctrl-C,
    which stop it cleanly: requests in flight finish, the database stays valid; a second one stops it at
    once (requests still running are stopped and roll back). With no token in the database access is
    open, so only loopback addresses are allowed unless --insecure; make tokens with
    `nsl token add NAME --role ROLE` and send them as `Authorization: Bearer TOKEN`.
    """
    from ..server.app import App
    from ..server.run import Server, is_loopback

    from ..core.database import Database

    with Database.open(state.db_path) as db:  # not kept open: the server threads open their own
        n_tokens = tokensmod.count(db)
        path = db.path.resolve()
    if n_tokens == 0 and not is_loopback(host) and not insecure:
        raise BadInput(
            f"refusing to serve on {host}: the database has no tokens, so anyone who can reach it could "
            "read and change everything",
            hint="make a token with `nsl token add NAME --role ROLE`, serve on 127.0.0.1, or pass --insecure")
    # Open access (no token needed while the database has none) only where nobody else can connect, or
    # when asked: a server on another address answers 401 once its last token is removed.
    app = App(path, max_body=max_body, open_access=is_loopback(host) or insecure)
    try:
        # waitress's own cap (a plain-text 413) sits well above the app's, which answers in JSON.
        server = Server(app, host, port, threads, max_request_body_size=max(4 * max_body, 64 * 1024 * 1024))
    except OSError as e:
        raise BadInput(f"cannot listen on {host}:{port}: {e.strerror or e}") from None

    def stop(signum, frame):
        # The first SIGTERM or Ctrl-C lets the requests in flight finish; another one stops at once.
        server.stop(now=server.stopping)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    urls = server.urls
    if as_json:
        emit_json({"url": urls[0], "urls": urls, "host": server.addresses[0][0], "port": server.addresses[0][1],
                   "tokens": n_tokens})
    else:
        for u in urls:
            click.echo(f"serving {u}")
        sys.stdout.flush()
        if n_tokens == 0:
            info("no tokens: access is open to anyone who can reach this address")
    server.serve_forever(report=info)
    if not as_json:
        info("stopped")


@cli.group("token", invoke_without_command=True)
@json_option
@click.pass_context
def token(ctx, as_json):
    """Manage the access tokens of `nsl serve` (alone: list them).

    Each token has a name and a role: read (GETs, find, read-only SQL, verify), write (also saves,
    deletes, commits, SQL that writes), sync (read, for now) or admin (everything). Only a hash of
    each token is stored; `nsl token add` shows the token once.
    """
    ctx.meta["nsl.token_json"] = as_json
    if ctx.invoked_subcommand is None:
        ctx.invoke(token_list, as_json=as_json)


def _json_wanted(ctx, as_json: bool) -> bool:
    return as_json or bool(ctx.meta.get("nsl.token_json"))


@token.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(tokensmod.ROLES), required=True,
              help="What the token may do: read, write, sync or admin.")
@json_option
@click.pass_context
def token_add(ctx, name, role, as_json):
    """Make a token NAME with ROLE and print it; it is shown this once (only its hash is kept)."""
    t = tokensmod.add(ctx.find_object(State).open(), name, role)
    if _json_wanted(ctx, as_json):
        emit_json({"name": name, "role": role, "token": t})
    else:
        click.echo(t)
        info(f"token {name!r} ({role}) made; keep it now: it cannot be shown again")


@token.command("list")
@json_option
@click.pass_context
def token_list(ctx, as_json):
    """List the tokens: name, role, creation date (never the tokens themselves)."""
    rows = tokensmod.list(ctx.find_object(State).open())
    if _json_wanted(ctx, as_json):
        emit_json(rows)
        return
    if not rows:
        info("no tokens: `nsl serve` is open to anyone who can reach it (loopback only by default)")
        return
    out = console()
    for r in rows:
        out.print(f"{r['name']}\t{r['role']}\t{r['created']}", markup=False, highlight=False)


@token.command("remove")
@click.argument("name")
@json_option
@click.pass_context
def token_remove(ctx, name, as_json):
    """Remove token NAME; requests that carry it are refused from then on."""
    tokensmod.remove(ctx.find_object(State).open(), name)
    if _json_wanted(ctx, as_json):
        emit_json({"removed": name})
    else:
        info(f"removed token {name!r}")
