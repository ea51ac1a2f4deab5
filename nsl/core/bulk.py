"""Bulk saves of JSON lines on two cores: a worker process parses and hashes the next batch while this
process writes the current one into SQLite.

Hashing (two SHA-1s and a typed encoding per object) costs more than SQLite's inserts, and Python
threads cannot overlap them, so the work is split across processes. The worker is forked, only
computes, and never touches the database: the single writer stays this process, in one transaction.
It talks with the writer over two pipes (workers.py) and gets each batch's lines as one bytes object.
"""
from __future__ import annotations

import io
import itertools
import os
import threading
from typing import BinaryIO

import orjson

from ..errors import InvalidJSON, InvalidObject, NslError
from . import objects, prepare
from .database import Database
from .values import has_long_int, loads
from .workers import Worker

WORKERS = 1  # the writer and one worker: one process per core


def worker_count() -> int:
    """Worker processes for a bulk save: NSL_WORKERS if set (0: none, parse in this process)."""
    env = os.environ.get("NSL_WORKERS", "").strip()
    if env.isdigit():
        return int(env)
    return WORKERS


def parallel_ok() -> bool:
    """Fork is safe only in a single-threaded process (a server's threads could hold locks)."""
    return (worker_count() > 0 and (os.cpu_count() or 1) > 1 and threading.active_count() == 1
            and hasattr(os, "fork"))


def parse_lines(lines: list[bytes], first_lineno: int, data: bytes | None = None) -> list:
    """Objects of a block of JSON lines, with the line number of any bad line in the error. `data`,
    when given, is the block's text (the lines joined with their newlines)."""
    if not has_long_int(b"".join(lines) if data is None else data):
        try:
            return list(map(orjson.loads, filter(bytes.strip, lines)))
        except orjson.JSONDecodeError:
            pass
    out = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            out.append(loads(line))
        except InvalidJSON as e:
            raise InvalidJSON(f"line {first_lineno + i}: {e.message}") from None
    return out


def _prepare(data, first_lineno, pos, cols, key_col, algo, known_json):
    """In the worker: parse, check, give keys and hash a block of lines, for the writer's columns
    `cols`. Objects with new attributes go back unhashed, since only the writer may add columns.
    Returns plain tuples, which is what the pipe carries."""
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # the newline ending the block's last line
    objs = parse_lines(lines, first_lineno, data)
    prepare.normalize(objs, key_col, pos)
    if not all(map(set(cols).issuperset, objs)):
        return ("objects", objs)
    return ("prepared", tuple(prepare.compute_columns(objs, cols, key_col, algo, known_json)))


def _blocks(stream: BinaryIO, size: int):
    """(lines, number of the first line, number of objects in them) of each block of `size` lines."""
    lineno = 1
    while True:
        block = list(itertools.islice(stream, size))
        if not block:
            return
        yield block, lineno, len(block) - sum(map(bytes.isspace, block))
        lineno += len(block)


def save_lines(db: Database, table: str, stream: BinaryIO, *, key=None, message=None, author=None,
               meta=None, collect_keys=False) -> objects.WriteResult:
    """Save the objects of a JSON-lines (or JSON) stream into `table` in one commit."""
    head = stream.peek(64)[:64] if hasattr(stream, "peek") else b""
    first = head.lstrip()[:1]
    if not parallel_ok() or first in (b"[", b""):
        return objects.save(db, table, objects.iter_json_input(stream), key=key, message=message,
                            author=author, meta=meta, collect_keys=collect_keys)
    blocks = _blocks(stream, objects.BATCH)
    try:
        block0, _, _ = next(blocks)
    except StopIteration:
        return objects.save(db, table, [], key=key)  # says there is nothing to save
    try:
        objs0 = parse_lines(block0, 1)
    except InvalidJSON:
        # Perhaps one JSON document over several lines rather than JSON lines.
        rest = b"".join(block0) + stream.read()
        return objects.save(db, table, objects.iter_json_input(io.BytesIO(rest)), key=key, message=message,
                            author=author, meta=meta, collect_keys=collect_keys)
    workers: list[Worker] = []

    def feed(saver):
        algo = db.hash_algo
        saver.admit(objs0)  # the table now has the first batch's columns: the workers hash for those
        pos = saver.pos + len(objs0)

        def task(block, lineno, nobjs):
            nonlocal pos
            args = (b"".join(block), lineno, pos, list(saver.tbl.columns), saver.key_col, algo,
                    frozenset(saver.known_json))
            pos += nobjs
            return args

        # Each worker has one batch at a time: it prepares batch k + len(workers) while this process
        # writes batch k, and a pipe never holds more than one message each way (no deadlock).
        queue = []  # (worker) in the order of their batches
        for block, lineno, nobjs in itertools.islice(blocks, worker_count()):
            w = Worker(_prepare, [x for v in workers for x in v.fds()])
            workers.append(w)
            w.send(task(block, lineno, nobjs))
            queue.append(w)
        saver.add_prepared(prepare.compute_columns(objs0, saver.tbl.columns, saver.key_col, algo,
                                                   saver.known_json))
        while queue:
            w = queue.pop(0)
            result = w.receive()
            nxt = next(blocks, None)
            if nxt is None:
                w.finish()  # no more work: it exits, while this process goes on writing
            else:
                w.send(task(*nxt))
                queue.append(w)
            _apply(saver, result)
        return True

    try:
        return objects.save_with(db, table, feed, key=key, meta=objects._meta(message, author, meta),
                                 collect_keys=collect_keys)
    finally:
        for w in workers:
            w.close()


def _apply(saver, result):
    kind, payload = result
    if kind == "objects":
        saver.add_batch(payload)
    else:
        saver.add_prepared(prepare.Prepared._make(payload))


__all__ = ["save_lines", "parallel_ok", "parse_lines", "NslError", "InvalidObject"]
