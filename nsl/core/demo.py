"""A small demo database nsl makes itself: a few commits worth of people and cities to explore."""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from .adopt import init
from .objects import commit_pending, delete, save

PEOPLE = [
    {"id": 1, "name": "Ada Lovelace", "born": 1815, "city": "London", "fields": ["math", "computing"]},
    {"id": 2, "name": "Alan Turing", "born": 1912, "city": "London", "fields": ["math", "computing"]},
    {"id": 3, "name": "Grace Hopper", "born": 1906, "city": "New York", "fields": ["computing"]},
    {"id": 4, "name": "Edsger Dijkstra", "born": 1930, "city": "Rotterdam", "fields": ["computing"]},
    {"id": 5, "name": "Emmy Noether", "born": 1882, "city": "Erlangen", "fields": ["math", "physics"]},
]
CITIES = [
    {"id": "London", "country": "UK", "population": 8_982_000},
    {"id": "New York", "country": "US", "population": 8_336_000},
    {"id": "Rotterdam", "country": "NL", "population": 651_000, "port": True},
]


def remove_file(path) -> None:
    """Remove a database file and its SQLite companions, if there."""
    for suffix in ("", "-wal", "-shm", "-synclock"):
        f = Path(str(path) + suffix)
        if f.exists():
            os.remove(f)


def make_demo(path) -> dict:
    """(Re)create a demo database at `path` with a short history. Returns what was made."""
    p = Path(path)
    remove_file(p)
    db, _ = init(p)
    try:
        commits = [
            save(db, "people", PEOPLE, message="The first people", author="demo").commit,
            save(db, "cities", CITIES, message="Where they lived", author="demo").commit,
            save(db, "people", [{**PEOPLE[0], "known_for": "the first program"}],
                 message="Ada's note", author="demo").commit,
        ]
        # A change made with plain SQL, as any SQLite client would, then recorded.
        c = sqlite3.connect(p)
        c.execute("UPDATE cities SET population = 8799800 WHERE id = 'London'")
        c.commit()
        c.close()
        commits.append(commit_pending(db, message="Census update (made with SQL)", author="demo").commit)
        commits.append(delete(db, "people", [5], message="Emmy moves to another table", author="demo").commit)
        return {"path": str(p), "commits": commits, "tables": ["people", "cities"]}
    finally:
        db.close()
