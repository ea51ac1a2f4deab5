"""Bulk saves of JSON lines on two cores: a worker process parses and hashes the next batch while this
process writes the current one into SQLite.

Hashing (two SHA-1s and a typed encoding per object) costs about as much as SQLite's inserts, and
Python threads cannot overlap them, so the work is split across processes. The worker is forked, only
computes, and never touches the database: the single writer stays this process, in one transaction.
"""
from __future__ import annotations

import io
import itertools
import multiprocessing
import os
import threading
from collections import deque
from typing import BinaryIO

import orjson

from ..errors import InvalidJSON, InvalidObject, NslError
from . import objects
from .database import Database
from .values import has_long_int, loads

DEPTH = 3  # batches in flight: enough to keep both cores busy, little memory
WORKERS = 1  # the writer and one worker: one process per core


def parallel_ok() -> bool:
    """Fork is safe only in a single-threaded process (a server's threads could hold locks)."""
    if os.environ.get("NSL_WORKERS", "").strip() == "0":
        return False
    return ((os.cpu_count() or 1) > 1 and threading.active_count() == 1
            and "fork" in multiprocessing.get_all_start_methods())


def parse_lines(lines: list[bytes], first_lineno: int) -> list:
    """Objects of a block of JSON lines, with the line number of any bad line in the error."""
    if not has_long_int(b"".join(lines)):
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


def _prepare(lines, first_lineno, pos, cols, key_col, algo, known_json, cid, table):
    """In the worker: parse, check, give keys, hash, and lay out the rows exactly as the writer will
    insert them if every key is new, so that it only has to run two executemany(). Objects with new
    attributes go back unhashed, since only the writer may add columns."""
    objs = parse_lines(lines, first_lineno)
    objects.normalize(objs, key_col, pos)
    known = set(cols)
    if not all(map(known.issuperset, objs)):
        return "objects", objs, None, cols, len(objs)
    rows, new_json = objects.compute_rows(objs, cols, key_col, algo, known_json)
    return "prepared", objects.lay_out(rows, cid, table), new_json, cols, len(objs)


def _blocks(stream: BinaryIO, size: int):
    lineno = 1
    while True:
        block = list(itertools.islice(stream, size))
        if not block:
            return
        yield block, lineno
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
        block0, _ = next(blocks)
    except StopIteration:
        return objects.save(db, table, [], key=key)  # says there is nothing to save
    try:
        objs0 = parse_lines(block0, 1)
    except InvalidJSON:
        # Perhaps one JSON document over several lines rather than JSON lines.
        rest = b"".join(block0) + stream.read()
        return objects.save(db, table, objects.iter_json_input(io.BytesIO(rest)), key=key, message=message,
                            author=author, meta=meta, collect_keys=collect_keys)

    def feed(saver):
        saver.add_batch(objs0)
        pending = deque()
        pos = saver.pos
        with multiprocessing.get_context("fork").Pool(WORKERS) as pool:
            for block, lineno in blocks:
                pending.append(pool.apply_async(_prepare, (
                    block, lineno, pos, list(saver.tbl.columns), saver.key_col, db.hash_algo,
                    frozenset(saver.known_json), saver.writer.cid, saver.tbl.name)))
                pos += len(block)
                if len(pending) >= DEPTH:
                    _apply(saver, pending.popleft().get())
            while pending:
                _apply(saver, pending.popleft().get())
        return True

    return objects.save_with(db, table, feed, key=key, meta=objects._meta(message, author, meta),
                             collect_keys=collect_keys)


def _apply(saver, result):
    kind, payload, new_json, cols, count = result
    if kind == "objects":
        saver.add_batch(payload)
    else:
        saver.add_prepared(payload, new_json, cols, count)


__all__ = ["save_lines", "parallel_ok", "parse_lines", "NslError", "InvalidObject"]
