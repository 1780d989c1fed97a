"""The independent recomputation of the auditor's verdicts (DESIGN.md §4), from a run's
``--history`` records and the files left in its ``--run-dir`` only (the SQLite files and
the cache directories), by plainer code than the auditor's (no step functions, no live
pruning). It shares no code with ``cachestudio.engine.auditor``; it reads the files with
plain ``sqlite3`` and the backends' plain readers.

Lost writes at a kill are judged against the store's own commit log (the ``commits`` table
of ``DIR/<lane>/store.sqlite``, whatever the backend): at each ``death`` row, the store
then is every version committed before that row plus every commit of the dead incarnation
(whenever it landed); the dead incarnation's acknowledged writes newer than it are lost.

Used by ``test_audit_recompute.py``, ``test_fault_timelines.py`` and ``test_nodes_remote.py``."""

from __future__ import annotations

import bisect
import json
import sqlite3
from collections import defaultdict
from pathlib import Path

from cachestudio.engine.backends import cache_versions, store_versions


def recompute(history: list[dict], lane_dir: Path, lane: str) -> dict[str, set]:
    ops = [r for r in history if r.get("lane") == lane and r["kind"] in ("read", "write")]
    writes = [r for r in ops if r["kind"] == "write" and r["acked"]]

    # stale reads: a read that began after version w was acknowledged and returned older
    acked_by_key = defaultdict(list)  # key -> sorted [(end, version)]
    for w in writes:
        acked_by_key[w["key"]].append((w["end"], w["version"]))
    # a write that failed after the step that applies it ("indeterminate") counts as
    # committed from the later of its end and the end of the first read that returned it
    for at, key, version in applied_indeterminate(ops):
        acked_by_key[key].append((at, version))
    newest_before = {}
    for key, items in acked_by_key.items():
        items.sort()
        running, best = [], 0
        for _end, version in items:
            best = max(best, version)
            running.append(best)
        newest_before[key] = ([end for end, _ in items], running)
    stale = set()
    for r in ops:
        if r["kind"] != "read" or not r["acked"] or r["key"] not in newest_before:
            continue
        ends, running = newest_before[r["key"]]
        i = bisect.bisect_left(ends, r["start"])
        if i and (r["version"] is None or r["version"] < running[i - 1]):
            stale.add(r["id"])

    # lost writes: at each death in the commit log (a node killed without a durable queue),
    # against the store at that death; then at the end (against the drained store)
    lost, judged = set(), set()
    for inc, held in stores_at_deaths(lane_dir / "store.sqlite").items():
        for w in writes:
            if w["inc"] == inc:
                judged.add(w["id"])
                if w["version"] > held.get(w["key"], 0):
                    lost.add(w["id"])
    final = store_versions(lane_dir / "store.sqlite")
    for w in writes:
        if w["id"] not in judged and w["version"] > final.get(w["key"], 0):
            lost.add(w["id"])

    at_end = lane_dir / "cache-at-end.json"  # a Redis cache's entries, as the audit read them
    cached = json.loads(at_end.read_text()) if at_end.exists() else cache_versions(lane_dir / "cache")
    dirty = {k for k, v in cached.items() if v > final.get(k, 0)}
    stale_cache = {k for k, v in cached.items() if v < final.get(k, 0)}
    return {"stale_reads": stale, "lost_writes": lost, "dirty_cache": dirty, "stale_cache": stale_cache}


def stores_at_deaths(path: Path) -> dict[int, dict[str, int]]:
    """Incarnation -> {key: version} of the store at its death, from the commit log."""
    conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        log = conn.execute("SELECT seq, kind, key, version, inc FROM commits ORDER BY seq").fetchall()
    finally:
        conn.close()
    out = {}
    for seq, kind, _key, _version, inc in log:
        if kind != "death":
            continue
        held: dict[str, int] = {}
        for s2, k2, key, version, inc2 in log:
            if k2 != "death" and (s2 < seq or (k2 == "commit" and inc2 == inc)):
                held[key] = max(held.get(key, 0), version)
        out[inc] = held
    return out


def applied_indeterminate(ops: list[dict]) -> list[tuple[float, str, int]]:
    """(time, key, version) of each indeterminate write some read returned: the later of its
    end and the earliest end of an answered read of its key that returned its version."""
    first_read: dict[tuple[str, int], float] = {}
    for r in ops:
        if r["kind"] == "read" and r["acked"] and r["version"] is not None:
            k = (r["key"], r["version"])
            first_read[k] = min(first_read.get(k, r["end"]), r["end"])
    out = []
    for w in ops:
        if w["kind"] == "write" and w["outcome"] == "indeterminate":
            seen = first_read.get((w["key"], w["version"]))
            if seen is not None:
                out.append((max(seen, w["end"]), w["key"], w["version"]))
    return out


def recount_outcomes(history: list[dict], lane: str) -> dict[str, int]:
    """A lane's operations by outcome, counted from the history alone, as the summary's
    ``errors``, ``rejected`` and ``indeterminate`` (writes that failed but may have
    applied) give them."""
    ops = [r for r in history if r.get("lane") == lane and r["kind"] in ("read", "write")]
    return {
        "errors": sum(1 for r in ops if r["outcome"] == "error"),
        "rejected": sum(1 for r in ops if r["outcome"] == "rejected"),
        "indeterminate": sum(1 for r in ops if r["outcome"] == "indeterminate"),
    }
