"""Benchmarks as ratios against yardsticks measured in the same run (DESIGN.md §7).

The yardstick for each strategy is the seed's snippets (``shared/seed``), written as
plainly as the seed shows them, on diskcache and sqlite-utils, fed the same seeded
operation stream with the same SQLite durability settings. Repetitions of a figure and
its yardstick are interleaved (A B A B …) so that a noisy machine moves both alike; each
figure is the median of its repetitions.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import diskcache
import sqlite_utils

from .config import LaneConfig, StoreKnobs
from .runner import Plan, run
from .workload import READ, OpStream


def _seed_db(path: Path, knobs: StoreKnobs):
    db = sqlite_utils.Database(path)
    db.execute(f"PRAGMA journal_mode={knobs.journal_mode}")
    db.execute(f"PRAGMA synchronous={knobs.synchronous}")
    table = db["items"]
    table.create({"key": str, "value": str}, pk="key", if_not_exists=True)
    return table


def seed_loop(cfg: LaneConfig, duration_s: float, workdir: Path) -> float:
    """Operations per second of the seed's plain snippets for ``cfg.strategy``."""
    cache = diskcache.Cache(str(workdir / "seed-cache"))
    table = _seed_db(workdir / "seed.sqlite", cfg.store)
    filler = "x" * cfg.workload.value_size

    class DB:
        """The seed's ``db``: read and write through sqlite-utils, plainly."""

        def __init__(self, table):
            self.table = table

        def read(self, key):
            try:
                return self.table.get(key)["value"]
            except sqlite_utils.db.NotFoundError:
                return None

        def write(self, key, value):
            self.table.upsert({"key": key, "value": value}, pk="key")

    db = DB(table)

    def get_item(key):
        value = cache.get(key)
        if value is None:  # cache miss
            value = db.read(key)  # fetch from DB
            cache.set(key, value)  # populate cache
        return value

    def update_item(key, new_value):
        db.write(key, new_value)  # update DB first
        cache.delete(key)  # invalidate cache

    def write_through(key, value):
        cache.set(key, value)  # write to cache immediately
        db.write(key, value)  # synchronously persist to DB

    write_queue: list = []  # in-memory buffer
    stop = threading.Event()

    def write_behind(key, value):
        cache.set(key, value)  # update cache immediately
        write_queue.append((key, value))  # schedule async DB write

    def flush_queue(db):
        while write_queue:
            key, value = write_queue.pop(0)
            db.write(key, value)  # persist to DB in background

    def flusher():  # "flush_queue runs as a background worker", with its own connection
        own = DB(_seed_db(workdir / "seed.sqlite", cfg.store))
        while not stop.is_set():
            flush_queue(own)
            stop.wait(cfg.write_behind.flush_interval_s)
        own.table.db.conn.close()

    write = {"cache-aside": update_item, "write-through": write_through, "write-behind": write_behind}[cfg.strategy]
    worker = None
    if cfg.strategy == "write-behind":
        worker = threading.Thread(target=flusher, daemon=True)
        worker.start()
    ops = 0
    started = time.monotonic()
    deadline = started + duration_s
    for op in OpStream(cfg.workload, cfg.seed).ops():
        if op.kind == READ:
            get_item(op.key)
        else:
            head = f"{op.key}:v{op.version}:"
            write(op.key, head + filler[: max(0, cfg.workload.value_size - len(head))])
        ops += 1
        if not ops % 64 and time.monotonic() >= deadline:
            break
    elapsed = time.monotonic() - started
    stop.set()
    if worker is not None:
        worker.join()
    cache.close()
    table.db.conn.close()
    return ops / elapsed


def engine_rate(cfg: LaneConfig, duration_s: float) -> float:
    """Operations per second of the engine's lane (lab process, telemetry and auditor on)."""
    summary = run(Plan(lanes=[cfg], duration_s=duration_s))
    return summary["lanes"][0]["ops_per_s"]


def strategies_vs_seed(base: LaneConfig, duration_s: float = 5.0, reps: int = 3) -> list[dict]:
    rows = []
    for strategy in ("cache-aside", "write-through", "write-behind"):
        cfg = replace(base, strategy=strategy)
        engine, seed = [], []
        for _ in range(reps):  # interleaved: A B A B …
            engine.append(engine_rate(cfg, duration_s))
            with tempfile.TemporaryDirectory(prefix="cachestudio-seed-") as tmp:
                seed.append(seed_loop(cfg, duration_s, Path(tmp)))
        e, s = statistics.median(engine), statistics.median(seed)
        rows.append({"figure": f"{strategy} ops/s", "value": round(e, 1), "yardstick": "seed's plain loop",
                     "yardstick_value": round(s, 1), "ratio": round(e / s, 2), "target": ">= 1.0",
                     "reps": reps, "samples": [round(x) for x in engine], "yardstick_samples": [round(x) for x in seed]})
    return rows
