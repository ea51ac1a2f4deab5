"""The one place the CLI prints: JSON documents, row streams (json, jsonl, csv, table) and messages."""
from __future__ import annotations

import csv
import io
import os
import sys
from typing import Iterable

import click
import orjson

from ..core.values import dumps


def _stdout():
    return click.get_binary_stream("stdout")


def console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True,
                   no_color=bool(os.environ.get("NO_COLOR")) or os.environ.get("TERM") == "dumb")


def emit_json(doc) -> None:
    """One machine-readable JSON document on stdout."""
    out = _stdout()
    out.write(dumps(doc) + b"\n")
    out.flush()


def emit_pretty_json(doc) -> None:
    out = _stdout()
    out.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2, default=_fallback) + b"\n")
    out.flush()


def _fallback(v):
    return dumps(v).decode()


def plural(n: int, noun: str) -> str:
    """'1 object', '2 objects': a count with its noun."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def info(msg: str) -> None:
    """A human message on stderr (never mixed into data on stdout)."""
    click.echo(msg, err=True)


def row_options(f):
    """--json / --jsonl / --csv for every command that prints rows (default: a table)."""
    f = click.option("--csv", "fmt", flag_value="csv", help="Print CSV with a header row.")(f)
    f = click.option("--jsonl", "fmt", flag_value="jsonl", help="Print one JSON object per line.")(f)
    f = click.option("--json", "fmt", flag_value="json", help="Print one JSON array.")(f)
    return f


def _cell(v):
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    return dumps(v).decode()


def emit_rows(rows: Iterable[dict], fmt: str | None, columns: list[str] | None = None) -> int:
    """Print rows in the chosen format, streaming where the format allows. Returns the row count."""
    out = _stdout()
    n = 0
    if fmt == "json":
        out.write(b"[")
        for r in rows:
            out.write((b",\n" if n else b"\n") + dumps(r))
            n += 1
        out.write(b"\n]\n" if n else b"]\n")
    elif fmt == "jsonl":
        for r in rows:
            out.write(dumps(r) + b"\n")
            n += 1
    elif fmt == "csv":
        rows = list(rows)
        cols = columns or _columns(rows)
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(cols)
        for r in rows:
            w.writerow([_cell(r.get(c)) for c in cols])
            n += 1
        out.write(buf.getvalue().encode())
    else:
        from rich.table import Table

        rows = list(rows)
        cols = columns or _columns(rows)
        t = Table(show_header=True, header_style="bold", box=None if not sys.stdout.isatty() else None)
        for c in cols:
            t.add_column(c, overflow="fold")
        for r in rows:
            t.add_row(*[_cell(r.get(c)) for c in cols])
            n += 1
        console().print(t)
    out.flush()
    return n


def _columns(rows: list[dict]) -> list[str]:
    seen = {}
    for r in rows:
        for k in r:
            seen.setdefault(k, None)
    return list(seen)
