"""Bulk saves of JSON lines on two cores: a worker process reads, parses and lays out the next batches
(row texts and typed encodings) while this process hashes and writes the current one into SQLite.

That work costs more than SQLite's inserts, and Python threads cannot overlap it, so it is split
across processes. The worker is forked, only computes, and never touches the database: the single
writer stays this process, in one transaction. It reads the input itself after the first block and
streams prepared batches over a pipe (workers.py); when the writer runs out of work anyway (the worker
is slower, or gets less CPU on a busy machine) it asks for the next block as lines and does all of it.
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
from .workers import Requests, Worker


def parallel_ok() -> bool:
    """Whether to use a worker (NSL_WORKERS=0 says no). Fork is safe only in a single-threaded process
    (a server's threads could hold locks)."""
    if os.environ.get("NSL_WORKERS", "").strip() == "0":
        return False
    return (os.cpu_count() or 1) > 1 and threading.active_count() == 1 and hasattr(os, "fork")


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


def _produce(stream, size, lineno, pos, cols, key_col, algo, requests=None):
    """In the worker: the rest of the stream, a block of `size` lines at a time, parsed, checked, given
    keys and laid out for the columns `cols`, as plain tuples (what the pipe carries). A block with new
    attributes goes back as its objects, since only the writer may add columns; the worker then works
    for the columns the writer adds for them (the writer checks, see add_prepared). The hashing is
    left to the writer, which would otherwise wait for the worker a third of the time; and when the
    writer still runs out of work (on a busy machine the worker gets less CPU), it asks (`requests`)
    and the next block goes to it as lines, for it to do all of it."""
    while True:
        block = list(itertools.islice(stream, size))
        if not block:
            return
        if requests is not None and requests.take():
            item = ("lines", block, lineno)
            lineno += len(block)
            pos += len(block) - sum(map(bytes.isspace, block))  # the objects in it (see parse_lines)
            del block
            yield item
            del item
            continue
        objs = parse_lines(block, lineno)
        lineno += len(block)
        del block
        prepare.normalize(objs, key_col, pos)
        pos += len(objs)
        if all(map(set(cols).issuperset, objs)):
            item = ("prepared", tuple(prepare.compute_columns(objs, cols, key_col, algo, hashed=False)))
        else:
            cols = _with_new_attributes(cols, objs)
            item = ("objects", objs)
        # Only the item stays alive while it is sent: one batch at a time fits in the CPU's cache, and
        # marshal need not keep track of values shared with the objects.
        del objs
        yield item
        del item


def _with_new_attributes(cols, objs) -> list:
    """The columns once the objects' new attributes are added, in the order _Saver.admit adds them."""
    known = set(cols)
    out = list(cols)
    for obj in objs:
        if not known.issuperset(obj):
            for a in obj:
                if a not in known:
                    known.add(a)
                    out.append(a)
    return out


def save_lines(db: Database, table: str, stream: BinaryIO, *, key=None, message=None, author=None,
               meta=None, collect_keys=False) -> objects.WriteResult:
    """Save the objects of a JSON-lines (or JSON) stream into `table` in one commit, a block of lines
    at a time. With a worker, the worker reads the stream after the first block."""
    head = stream.peek(64)[:64] if hasattr(stream, "peek") else b""
    first = head.lstrip()[:1]
    if first in (b"[", b""):
        return objects.save(db, table, objects.iter_json_input(stream), key=key, message=message,
                            author=author, meta=meta, collect_keys=collect_keys)
    block0 = list(itertools.islice(stream, objects.BATCH))
    if not block0:
        return objects.save(db, table, [], key=key)  # says there is nothing to save
    try:
        objs0 = parse_lines(block0, 1)
    except InvalidJSON:
        # Perhaps one JSON document over several lines rather than JSON lines.
        rest = b"".join(block0) + stream.read()
        return objects.save(db, table, objects.iter_json_input(io.BytesIO(rest)), key=key, message=message,
                            author=author, meta=meta, collect_keys=collect_keys)
    workers: list[Worker] = []  # the one worker, once forked

    def feed(saver):
        algo = db.hash_algo
        saver.admit(objs0)  # the table now has the first batch's columns: the worker works for those
        if saver.tbl.affinities:
            # Values for typed columns pass through SQLite before they are hashed (affinity.py), which
            # only the writer can do: the whole save happens here, a block at a time.
            saver.add_batch(objs0)
            lineno = len(block0) + 1
            for block in iter(lambda: list(itertools.islice(stream, objects.BATCH)), []):
                saver.add_batch(parse_lines(block, lineno))
                lineno += len(block)
            return True
        rest = (stream, objects.BATCH, len(block0) + 1, len(objs0), list(saver.tbl.columns), saver.key_col, algo)
        if len(block0) == objects.BATCH and parallel_ok():  # (a shorter first block was all of it)
            requests = Requests()
            workers.append(Worker(_produce, *rest, requests))
            items = _received(workers[0], requests)
        else:
            items = _produce(*rest)  # the same work in this process, never asked for lines
        saver.add_prepared(prepare.compute_columns(objs0, saver.tbl.columns, saver.key_col, algo,
                                                   saver.known_json))
        for item in items:
            _apply(saver, item)
        return True

    try:
        return objects.save_with(db, table, feed, key=key, meta=objects._meta(message, author, meta),
                                 collect_keys=collect_keys)
    finally:
        for w in workers:
            w.close()


def _received(worker: Worker, requests: Requests):
    while True:
        if not worker.ready():
            requests.ask()  # nothing to do until it comes: take the block after it in this process
        item = worker.receive()
        if item is None:
            return
        yield item


def _apply(saver, result):
    kind, payload = result[:2]
    if kind == "objects":
        saver.add_batch(payload)
    elif kind == "lines":
        saver.add_batch(parse_lines(payload, result[2]))
    else:
        saver.add_prepared(prepare.Prepared._make(payload))


__all__ = ["save_lines", "parallel_ok", "parse_lines", "NslError", "InvalidObject"]
