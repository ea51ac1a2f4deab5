"""The `nsl` command group: global options, opening the database, and turning errors into exit codes."""
from __future__ import annotations

import importlib
import sqlite3
import sys

import click

from ..errors import NslError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class NslGroup(click.Group):
    """Maps every nsl error to one line on stderr and its exit code (DESIGN: 0 ok, 1 failed, 2 input)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except NslError as e:
            click.echo(f"error: {e.message}", err=True)
            if e.hint:
                click.echo(f"hint: {e.hint}", err=True)
            ctx.exit(e.exit_code)
        except sqlite3.DatabaseError as e:
            # SQLite itself failed (disk full, I/O error, corrupt file): the transaction was rolled back.
            click.echo(f"error: SQLite: {e}", err=True)
            ctx.exit(1)
        except BrokenPipeError:
            sys.stderr.close()
            ctx.exit(0)

    def get_command(self, ctx, name):
        if name not in self.commands:
            module = COMMAND_MODULES.get(name)
            if module is None:
                _register()  # an unknown name: every command, for the error's suggestions
            else:
                importlib.import_module(f"{__package__}.{module}")
        return super().get_command(ctx, name)

    def list_commands(self, ctx):
        _register()
        # The order a newcomer meets them in, as in git's help; anything unlisted goes last.
        order = {name: i for i, name in enumerate(COMMAND_ORDER)}
        return sorted(self.commands, key=lambda n: (order.get(n, len(order)), n))


COMMAND_ORDER = [
    "init", "save", "get", "find", "delete", "sql", "index", "status", "diff", "commit", "log", "show",
    "history", "checkout", "revert", "restore", "head", "verify", "rebuild", "hash", "remote", "clone", "push",
    "pull", "sync", "conflicts", "resolve", "config", "serve", "token", "demo",
]


# The module defining each command, imported when the command runs (every one for --help): `nsl save`
# then starts without importing the server, the sync client or verify, a tenth of a big save's time.
# tests/cli/test_session.py checks that this names every command.
COMMAND_MODULES = {
    **dict.fromkeys(["save", "get", "find", "delete", "sql", "index"], "data"),
    **dict.fromkeys(["init", "demo", "head", "verify", "rebuild", "hash"], "integrity"),
    **dict.fromkeys(["serve", "token"], "serve"),
    **dict.fromkeys(["push", "pull", "sync", "clone", "remote", "config", "conflicts", "resolve"], "sync"),
    **dict.fromkeys(["status", "diff", "commit", "log", "show", "history", "checkout", "revert", "restore"],
                    "timeline"),
}


class State:
    def __init__(self, db_path):
        self.db_path = db_path
        self._db = None

    def open(self):
        """The database, opened on first use (so `nsl init` and `--help` need none)."""
        if self._db is None:
            from ..core.database import Database

            self._db = Database.open(self.db_path)
        return self._db


@click.group(cls=NslGroup, context_settings=CONTEXT_SETTINGS)
@click.option("--db", "db_path", metavar="PATH", envvar="NSL_DB",
              help="The nsl database (default: $NSL_DB, then ./nsl.db).")
@click.version_option(package_name="nsl", prog_name="nsl")
@click.pass_context
def cli(ctx, db_path):
    """nsl: git for SQLite data.

    A SQLite file holding your tables plus an immutable, hash-chained history of every change:
    save JSON objects, find them with JSON predicates or SQL, see log, diff and history, revert,
    time travel, and verify that nothing was tampered with.

    Exit codes: 0 ok, 1 the operation failed, 2 bad usage or input.
    """
    ctx.obj = State(db_path)


pass_state = click.make_pass_decorator(State)


def _register():
    from . import data, integrity, serve, sync, timeline  # noqa: F401  (commands attach themselves to `cli`)


def main(argv=None):
    return cli.main(args=argv, prog_name="nsl")
