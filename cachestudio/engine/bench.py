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

from .backends import Store
from .config import LaneConfig, Latency, StoreKnobs, Workload, WriteBehindKnobs
from .lab import Lab, LanePaths
from .queue import Flusher, VolatileQueue
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
        rows.append(_row(f"{strategy} ops/s", engine, "seed's plain loop", seed, ">= 1.0"))
    return rows


def _row(figure: str, values: list[float], yard: str, yard_values: list[float], target: str, unit: str = "",
         higher_is_better: bool = True) -> dict:
    v, y = statistics.median(values), statistics.median(yard_values)
    ratio = v / y if y else None
    return {"figure": figure, "value": round(v, 3), "unit": unit, "yardstick": yard, "yardstick_value": round(y, 3),
            "ratio": None if ratio is None else round(ratio, 2), "target": target, "reps": len(values),
            "met": _met(ratio, target), "samples": [round(x, 3) for x in values],
            "yardstick_samples": [round(x, 3) for x in yard_values]}


def _met(value: float | None, target: str) -> bool | None:
    if value is None or not target:
        return None
    op, _, bound = target.partition(" ")
    return value >= float(bound) if op == ">=" else value <= float(bound)


# -- the cache-aside hit path vs a bare diskcache get loop -------------------------------

HIT_KEYS = 1000


def hit_path_rate(duration_s: float, workdir: Path, seed: int) -> float:
    """Hits per second of the lab's own client loop on a warm cache (every key cached):
    operation stream, strategy read, history record written per operation, as in a run."""
    w = Workload(rate=0.0, read_ratio=1.0, keys=HIT_KEYS, distribution="zipf")
    cfg = LaneConfig(strategy="cache-aside", workload=w, seed=seed)
    lab = Lab(cfg, LanePaths(workdir / "lane"))
    try:
        lab.store.write_batch([(f"k{i}", 1, f"k{i}:v1:" + "x" * 90) for i in range(HIT_KEYS)])
        for i in range(HIT_KEYS):
            lab.cache.set(f"k{i}", 1, f"k{i}:v1:" + "x" * 90)
        started = time.monotonic()
        lab.start_clients(started)
        time.sleep(duration_s)  # the clients run on their own threads meanwhile
        lab.stop_clients()
        return lab.done / (time.monotonic() - started)
    finally:
        lab.close()


def bare_get_rate(duration_s: float, workdir: Path, seed: int) -> float:
    """A bare ``diskcache.Cache.get`` loop over the same keys, same values, same order."""
    w = Workload(rate=0.0, read_ratio=1.0, keys=HIT_KEYS, distribution="zipf")
    keys = [op.key for op, _ in zip(OpStream(w, seed).ops(), range(192 * 1024))]  # whole slices of 1024
    cache = diskcache.Cache(str(workdir / "bare-cache"))
    try:
        for i in range(HIT_KEYS):
            cache.set(f"k{i}", f"1|k{i}:v1:" + "x" * 90)
        get, n, started = cache.get, 0, time.monotonic()
        deadline = started + duration_s
        while time.monotonic() < deadline:
            for key in keys[n % len(keys): n % len(keys) + 1024]:
                get(key)
            n += 1024
        return n / (time.monotonic() - started)
    finally:
        cache.close()


def hit_path_vs_bare_get(duration_s: float, reps: int, seed: int = 7) -> dict:
    ours, bare = [], []
    for _ in range(reps):  # interleaved
        with tempfile.TemporaryDirectory(prefix="cachestudio-bench-") as tmp:
            ours.append(hit_path_rate(duration_s, Path(tmp), seed))
        with tempfile.TemporaryDirectory(prefix="cachestudio-bench-") as tmp:
            bare.append(bare_get_rate(duration_s, Path(tmp), seed))
    return _row("cache-aside hit path hits/s", ours, "bare diskcache get loop", bare, ">= 0.5")


# -- the write-behind drain vs a bare batched executemany -----------------------------------

DRAIN_ROWS = 50_000


def drain_rate(rows: int, workdir: Path, knobs: StoreKnobs, batch: int) -> float:
    """Rows per second the flusher writes into SQLite, draining a full volatile queue."""
    wb = WriteBehindKnobs(batch_size=batch, capacity=rows + 1)
    queue = VolatileQueue(wb)
    for i in range(rows):
        queue.put((f"k{i}", i + 1, f"k{i}:v{i + 1}:" + "x" * 90), False, 0)
    store = Store(workdir / "store.sqlite", knobs, Latency())
    try:
        flusher = Flusher(queue, store, wb)
        started = time.perf_counter()
        written = flusher.flush_once()
        elapsed = time.perf_counter() - started
        if written != rows or queue.depth():
            raise RuntimeError(f"the flusher wrote {written} of {rows} rows")
        return written / elapsed
    finally:
        store.close()


def bare_executemany_rate(rows: int, workdir: Path, knobs: StoreKnobs, batch: int) -> float:
    """A bare batched upsert: ``executemany`` of a plain ``ON CONFLICT`` upsert, one
    transaction per batch, same table shape and the same pragmas."""
    import sqlite3

    conn = sqlite3.connect(str(workdir / "bare.sqlite"), isolation_level=None)
    try:
        conn.execute(f"PRAGMA journal_mode={knobs.journal_mode}")
        conn.execute(f"PRAGMA synchronous={knobs.synchronous}")
        conn.execute("CREATE TABLE items (key TEXT PRIMARY KEY, version INTEGER, value TEXT, updated_at FLOAT)")
        data = [(f"k{i}", i + 1, f"k{i}:v{i + 1}:" + "x" * 90, 0.0) for i in range(rows)]
        sql = ("INSERT INTO items (key, version, value, updated_at) VALUES (?, ?, ?, ?) "
               "ON CONFLICT(key) DO UPDATE SET version = excluded.version, value = excluded.value, "
               "updated_at = excluded.updated_at")
        started = time.perf_counter()
        for i in range(0, rows, batch):
            conn.execute("BEGIN")
            conn.executemany(sql, data[i:i + batch])
            conn.execute("COMMIT")
        return rows / (time.perf_counter() - started)
    finally:
        conn.close()


def drain_vs_executemany(reps: int, rows: int = DRAIN_ROWS, batch: int | None = None) -> dict:
    knobs = StoreKnobs()
    batch = batch or WriteBehindKnobs().batch_size
    ours, bare = [], []
    for _ in range(reps):  # interleaved
        with tempfile.TemporaryDirectory(prefix="cachestudio-bench-") as tmp:
            ours.append(drain_rate(rows, Path(tmp), knobs, batch))
        with tempfile.TemporaryDirectory(prefix="cachestudio-bench-") as tmp:
            bare.append(bare_executemany_rate(rows, Path(tmp), knobs, batch))
    row = _row(f"write-behind drain rows/s (batch {batch})", ours, "bare batched executemany", bare, ">= 0.5")
    row["rows"] = rows
    return row


# -- the time machine: what recording costs --------------------------------------------


def recorded_rate(lanes: list[LaneConfig], duration_s: float, record: bool) -> float:
    """Operations per second of all the lanes together, with or without a recording."""
    from .recording import RecordingWriter, check_target, plan_header

    plan = Plan(lanes=list(lanes), duration_s=duration_s)
    with tempfile.TemporaryDirectory(prefix="cachestudio-rec-") as tmp:
        w = RecordingWriter(check_target(Path(tmp) / "run.csrec"), plan_header(plan)) if record else None
        summary = run(plan, recorder=w)
        if w is not None:
            w.target.commit()
    return sum(lane["ops_per_s"] for lane in summary["lanes"])


def recording_cost(base: LaneConfig, duration_s: float, reps: int) -> dict:
    """Throughput with the run recorded (compressed, flushed every 0.5 s) against the same
    run unrecorded, interleaved: the three lanes flat out."""
    lanes = [replace(base, strategy=s) for s in ("cache-aside", "write-through", "write-behind")]
    on, off = [], []
    for _ in range(reps):
        on.append(recorded_rate(lanes, duration_s, True))
        off.append(recorded_rate(lanes, duration_s, False))
    return _row("ops/s, run recorded", on, "the same run, not recorded", off, ">= 0.95")
