"""The commit graph: ancestors, and which objects have several leaves.

Commits are stored in an order where parents come first (cid order is topological), so walking the
graph backwards from a commit can stop at any cid below the oldest one a question is about.
"""
from __future__ import annotations

from .database import Database


def parent_map(db: Database) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for parent, child in db.conn.execute("SELECT parent, child FROM nsl_plink"):
        out.setdefault(child, []).append(parent)
    return out


def ancestors(parents: dict[int, list[int]], start: list[int], floor: int) -> set[int]:
    """The commits reachable from `start` (included) through parent links, none below `floor`."""
    seen: set[int] = set()
    todo = [c for c in start if c >= floor]
    while todo:
        c = todo.pop()
        if c in seen:
            continue
        seen.add(c)
        todo.extend(p for p in parents.get(c, ()) if p >= floor and p not in seen)
    return seen


def ancestors_sql(db: Database, start: list[int], floor: int) -> set[int]:
    """ancestors() with the links read from the database, for one question."""
    if not start:
        return set()
    ph = ",".join("?" * len(start))
    rows = db.conn.execute(
        f"WITH RECURSIVE anc(cid) AS (SELECT cid FROM nsl_commit WHERE cid IN ({ph}) AND cid >= ? "
        f"UNION SELECT p.parent FROM nsl_plink p JOIN anc ON p.child = anc.cid WHERE p.parent >= ?) "
        f"SELECT cid FROM anc", (*start, floor, floor)).fetchall()
    return {r[0] for r in rows}


def last_lines(db: Database, table: str, keys: list, before_vid: int) -> dict:
    """key -> (vid, cid) of each object's last line before `before_vid`."""
    out = {}
    for i in range(0, len(keys), 500):
        part = keys[i:i + 500]
        q = ",".join("?" * len(part))
        for k, vid, cid in db.conn.execute(
                f"SELECT key, max(vid), cid FROM nsl_version WHERE tbl = ? AND key IN ({q}) AND vid < ? GROUP BY key",
                (table, *part, before_vid)):
            out[k] = (vid, cid)
    return out


def multi_leaf_objects(db: Database, within: set[int] | None = None) -> dict[tuple, set[int]]:
    """(tbl, key) -> leaf vids, for every object whose lineage has several leaves, computed from the
    whole history (or only the commits `within`, a set closed under parents) in cid order. A commit
    whose parents include every leaf so far (all of a straight history, and every local commit)
    supersedes the earlier lines of all it touches; only the others need the graph."""
    from .states import is_linear

    if is_linear(db):
        return {}
    parents = parent_map(db)
    leaf_commits: set[int] = set()
    multi: dict[tuple, set[tuple[int, int]]] = {}
    # With a subset, an object's last line so far is remembered here (lines of other commits
    # must not count); over the whole history the index on (tbl, key) answers it.
    last: dict[tuple, tuple[int, int]] | None = {} if within is not None else None
    for cid, lo, hi in db.conn.execute(
            "SELECT cid, vid_lo, vid_hi FROM nsl_commit ORDER BY cid").fetchall():
        if within is not None and cid not in within:
            continue
        ps = parents.get(cid, [])
        lines = db.conn.execute("SELECT vid, tbl, key FROM nsl_version WHERE vid BETWEEN ? AND ? ORDER BY vid",
                                (lo or 0, hi if hi is not None else -1)).fetchall()
        if leaf_commits.issubset(ps):
            for _, tbl, key in lines:
                multi.pop((tbl, key), None)
        else:
            step(db, parents, cid, lo, lines, multi, last)
        if last is not None:
            for vid, tbl, key in lines:
                last[(tbl, key)] = (vid, cid)
        leaf_commits.difference_update(ps)
        leaf_commits.add(cid)
    return {o: {v for v, _ in lv} for o, lv in multi.items()}


def step(db: Database, parents, cid: int, lo: int, lines, multi: dict, last: dict | None = None) -> None:
    """Update `multi` for one commit that does not descend from every leaf (see multi_leaf_objects)."""
    old: dict[tuple, set] = {}
    by_table: dict[str, list] = {}
    for _, tbl, key in lines:
        if (tbl, key) in multi:
            old[(tbl, key)] = multi[(tbl, key)]
        elif last is not None:
            if (tbl, key) in last:
                old[(tbl, key)] = {last[(tbl, key)]}
        else:
            by_table.setdefault(tbl, []).append(key)
    for tbl, keys in by_table.items():
        for k, (vid, c) in last_lines(db, tbl, keys, lo).items():
            old[(tbl, k)] = {(vid, c)}
    if not old:
        for vid, tbl, key in lines:
            multi.pop((tbl, key), None)
        return
    floor = min(c for lv in old.values() for _, c in lv)
    anc = ancestors(parents, parents.get(cid, []), floor)
    for vid, tbl, key in lines:
        keep = {(v, c) for v, c in old.get((tbl, key), ()) if c not in anc}
        if keep:
            multi[(tbl, key)] = keep | {(vid, cid)}
        else:
            multi.pop((tbl, key), None)
