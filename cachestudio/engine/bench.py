"""Benchmarks as ratios against yardsticks measured in the same run (DESIGN.md §7).

The yardstick for each strategy is the seed's snippets (``shared/seed``), written as
plainly as the seed shows them, on diskcache and sqlite-utils, fed the same seeded
operation stream with the same SQLite durability settings. Repetitions of a figure and
its yardstick are interleaved (A B A B …) so that a noisy machine moves both alike; each
figure is the median of its repetitions. On Redis + PostgreSQL (``--remote``, issue 14) the
yardstick is the same snippets written plainly with redis-py and psycopg, on the same servers.
"""

from __future__ import annotations

import contextlib
import shutil
import statistics
import threading
import time
from dataclasses import replace
from pathlib import Path

import diskcache
import sqlite_utils

from .backends import Store, Writer
from .config import Backends, ConfigError, LaneConfig, Latency, StoreKnobs, Workload, WriteBehindKnobs
from .lab import Lab, LanePaths
from .queue import Flusher, VolatileQueue
from .runner import Plan, run
from .strategies import CacheAside, WriteBehind, WriteThrough
from .strategykinds import STRATEGIES, queues_writes
from .tempfolders import make_folder, temp_folder
from .workload import READ, OpStream


def _seed_db(path: Path, knobs: StoreKnobs) -> sqlite_utils.db.Table:
    db = sqlite_utils.Database(path)
    db.execute(f"PRAGMA journal_mode={knobs.journal_mode}")
    db.execute(f"PRAGMA synchronous={knobs.synchronous}")
    table = db.table("items")  # (db["items"] is a View if it names one: not in the seed's own file)
    table.create({"key": str, "value": str}, pk="key", if_not_exists=True)
    return table


#: The seed's write snippet of each strategy it has one for (a strategy's read is the seed's
#: ``get_item``); only these strategies have a yardstick.
SEED_WRITES = {CacheAside.name: "update_item", WriteThrough.name: "write_through", WriteBehind.name: "write_behind"}
#: The strategies measured against the seed's snippets.
SEED_STRATEGIES = tuple(s for s in STRATEGIES if s in SEED_WRITES)


class SeedSnippets:
    """The seed's three snippets (``shared/seed/caching-strategies.md``), as the seed writes
    them, over a ``cache`` (get / set / delete) and a ``db`` (read / write): one text for
    every yardstick loop, whatever clients it is written with. ``write_batch(db, batch)``
    writes a batch of (key, value) in one transaction (the tuned flusher); ``cache_none``:
    the cache can hold a None (diskcache can, Redis cannot: a miss on a row the DB does not
    have is then not cached)."""

    def __init__(self, cache, db, batch_size: int, write_batch, cache_none: bool = True):
        self.cache, self.db = cache, db
        self.batch_size, self.write_batch, self.cache_none = batch_size, write_batch, cache_none
        self.write_queue: list = []  # in-memory buffer
        self.write = {strategy: getattr(self, snippet) for strategy, snippet in SEED_WRITES.items()}

    def get_item(self, key):
        value = self.cache.get(key)
        if value is None:  # cache miss
            value = self.db.read(key)  # fetch from DB
            if value is not None or self.cache_none:
                self.cache.set(key, value)  # populate cache
        return value

    def update_item(self, key, new_value):
        self.db.write(key, new_value)  # update DB first
        self.cache.delete(key)  # invalidate cache

    def write_through(self, key, value):
        self.cache.set(key, value)  # write to cache immediately
        self.db.write(key, value)  # synchronously persist to DB

    def write_behind(self, key, value):
        self.cache.set(key, value)  # update cache immediately
        self.write_queue.append((key, value))  # schedule async DB write

    def flush_queue(self, db):
        while self.write_queue:
            key, value = self.write_queue.pop(0)
            db.write(key, value)  # persist to DB in background

    def flush_batches(self, db):  # tuned: a batch per transaction
        while self.write_queue:
            batch = self.write_queue[: self.batch_size]
            del self.write_queue[: self.batch_size]
            self.write_batch(db, batch)

    def drive(self, ops, strategy: str, workload: Workload, deadline: float) -> int:
        """Feed ``ops`` (an OpStream's) to the snippets until ``deadline``; how many ran."""
        write, filler, n = self.write[strategy], "x" * workload.value_size, 0
        for op in ops:
            if op.kind == READ:
                self.get_item(op.key)
            else:
                head = f"{op.key}:v{op.version}:"
                write(op.key, head + filler[: max(0, workload.value_size - len(head))])
            n += 1
            if not n % 64 and time.monotonic() >= deadline:
                break
        return n


def seed_loop(cfg: LaneConfig, duration_s: float, workdir: Path, tuned: bool = False, threads: int = 1) -> float:
    """Operations per second of the seed's plain snippets for ``cfg.strategy``.

    ``tuned``: the seed's loops written with a little care — the write-behind flusher takes
    what is queued in batches of ``batch_size`` and writes each batch with sqlite-utils
    ``upsert_all`` in one transaction (the literal flusher pops one item and commits each).
    ``threads``: client threads sharing the loop's cache, database and queue (each with its
    own slice of the operation stream), as the lab's clients share its lane."""
    cache = diskcache.Cache(str(workdir / "seed-cache"))
    table = _seed_db(workdir / "seed.sqlite", cfg.store)

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

    def write_batch(db, batch):
        with db.table.db.conn:
            db.table.upsert_all([{"key": k, "value": v} for k, v in batch], pk="key")

    seed = SeedSnippets(cache, db, cfg.write_behind.batch_size, write_batch)
    stop = threading.Event()

    def flusher():  # "flush_queue runs as a background worker", with its own connection
        own = DB(_seed_db(workdir / "seed.sqlite", cfg.store))
        flush = seed.flush_batches if tuned else seed.flush_queue
        while not stop.is_set():
            flush(own)
            stop.wait(cfg.write_behind.flush_interval_s)
        own.table.db.conn.close()

    worker = None
    if queues_writes(cfg.strategy):
        worker = threading.Thread(target=flusher, daemon=True)
        worker.start()
    counts = [0] * threads
    conns = threading.local()
    if threads > 1:  # sqlite3 connections are per thread: each client's snippets use its own

        class PerThread:
            def _db(self):
                own = getattr(conns, "db", None)
                if own is None:
                    own = conns.db = DB(_seed_db(workdir / "seed.sqlite", cfg.store))
                return own

            def read(self, key):
                return self._db().read(key)

            def write(self, key, value):
                return self._db().write(key, value)

        seed.db = PerThread()
    started = time.monotonic()
    deadline = started + duration_s

    def client(index: int) -> None:  # a stream of its own
        counts[index] = seed.drive(OpStream(cfg.workload, cfg.seed + index).ops(), cfg.strategy, cfg.workload, deadline)
        own = getattr(conns, "db", None)
        if own is not None:
            own.table.db.conn.close()

    workers = [threading.Thread(target=client, args=(i,)) for i in range(1, threads)]
    for t in workers:
        t.start()
    client(0)
    for t in workers:
        t.join()
    ops = sum(counts)
    elapsed = time.monotonic() - started
    stop.set()
    if worker is not None:
        worker.join()
    cache.close()
    table.db.conn.close()
    return ops / elapsed


def engine_rate(cfg: LaneConfig, duration_s: float, redis_url: str = "", postgres_url: str = "") -> float:
    """Operations per second of the engine's lane (lab process, telemetry and auditor on);
    ``redis_url``/``postgres_url``: servers the run uses instead of starting its own."""
    summary = run(Plan(lanes=[cfg], duration_s=duration_s, redis_url=redis_url, postgres_url=postgres_url))
    return summary["lanes"][0]["ops_per_s"]


#: SQLite's two modes of the yardsticks: the lab's default and SQLite's own default.
MODES = {
    "WAL + NORMAL": StoreKnobs(journal_mode="wal", synchronous="normal"),
    "SQLite defaults (DELETE + FULL)": StoreKnobs(journal_mode="delete", synchronous="full"),
}
#: Tuned-yardstick targets per mode (issue 15): the engine ≥ 1.2× in WAL + NORMAL, ≥ 1.0× with
#: SQLite's defaults (fsync-bound: both sides wait for the disk alike).
TUNED_TARGET = {"WAL + NORMAL": ">= 1.2", "SQLite defaults (DELETE + FULL)": ">= 1.0"}


def strategies_vs_yardsticks(
    base: LaneConfig, duration_s: float = 5.0, reps: int = 3, modes=tuple(MODES), distributions=("uniform", "zipf")
) -> list[dict]:
    """Each strategy in the engine against both yardsticks — the seed's loops written
    literally and tuned (a batch per transaction in the write-behind flusher) — in each
    SQLite mode and key distribution; one engine run is compared with both (E L T E L T …)."""
    rows = []
    for mode in modes:
        for dist in distributions:
            w = replace(base.workload, keys=1000, read_ratio=0.8, distribution=dist)
            for strategy in SEED_STRATEGIES:
                cfg = replace(base, strategy=strategy, workload=w, store=MODES[mode])
                engine: list[float] = []
                literal: list[float] = []
                tuned: list[float] = []
                for _ in range(reps):
                    engine.append(engine_rate(cfg, duration_s))
                    for out, care in ((literal, False), (tuned, True)):
                        with temp_folder("seed") as tmp:
                            out.append(seed_loop(cfg, duration_s, Path(tmp), tuned=care))
                where = f"{strategy} ops/s, {mode}, {dist}"
                rows.append(figure_row(where, engine, "seed's loop, literal", literal, ">= 1.0"))
                rows.append(figure_row(where, engine, "seed's loop, tuned", tuned, TUNED_TARGET[mode]))
    return rows


def concurrency_vs_tuned(base: LaneConfig, duration_s: float, reps: int, threads=(1, 2, 4, 8)) -> list[dict]:
    """Throughput at 1, 2, 4, 8 client threads per lane against the tuned loop with as many
    threads (WAL + NORMAL, uniform keys). No target: where it stops growing is the finding."""
    rows = []
    w = replace(base.workload, keys=1000, read_ratio=0.8, distribution="uniform")
    for strategy in SEED_STRATEGIES:
        for n in threads:
            cfg = replace(base, strategy=strategy, workload=replace(w, concurrency=n), store=MODES["WAL + NORMAL"])
            engine, tuned = [], []
            for _ in range(reps):
                engine.append(engine_rate(cfg, duration_s))
                with temp_folder("seed") as tmp:
                    tuned.append(seed_loop(cfg, duration_s, Path(tmp), tuned=True, threads=n))
            rows.append(
                figure_row(
                    f"{strategy} ops/s, {n} client thread{'s' if n > 1 else ''}",
                    engine,
                    f"tuned loop, {n} thread{'s' if n > 1 else ''}",
                    tuned,
                    "",
                )
            )
    return rows


# -- on Redis + PostgreSQL (issue 14) -------------------------------------------------------

#: The plain loop's own places on the bench's servers, apart from every lane's (a lane's
#: keys are under ``cs:<run>:<lane>:`` in database 0, its rows in schema ``cs_<run>_<lane>``).
PLAIN_REDIS_DB = 1
PLAIN_SCHEMA = "plain_seed"
#: The lanes of the Redis + PostgreSQL figures: 80 % reads over 1,000 uniform keys, flat out.
REMOTE = Backends(cache="redis", store="postgresql")


def plain_remote_loop(cfg: LaneConfig, duration_s: float, redis_url: str, conninfo: str, tuned: bool = True) -> float:
    """Operations per second of the seed's three snippets written plainly with redis-py and
    psycopg 3, fed the same seeded operation stream as :func:`seed_loop`.

    The cache is Redis database ``PLAIN_REDIS_DB`` (``decode_responses=True``), the DB a table
    ``plain_seed.items(key text primary key, value text)`` on an autocommit connection (each
    statement its own transaction, as the engine's store). ``tuned``: the write-behind
    flusher (a background thread with its own connection) takes what is queued in batches of
    ``batch_size`` and writes each with psycopg's ``executemany`` (pipelined) of a plain
    ``ON CONFLICT`` upsert inside one transaction; without, it pops one item and commits it."""
    import psycopg
    import redis

    cache = redis.Redis.from_url(redis_url, db=PLAIN_REDIS_DB, decode_responses=True)
    cache.flushdb()
    conn = psycopg.connect(conninfo, autocommit=True)
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {PLAIN_SCHEMA}")
    conn.execute(f"DROP TABLE IF EXISTS {PLAIN_SCHEMA}.items")
    conn.execute(f"CREATE TABLE {PLAIN_SCHEMA}.items (key text PRIMARY KEY, value text)")
    select = f"SELECT value FROM {PLAIN_SCHEMA}.items WHERE key = %s"
    upsert = (
        f"INSERT INTO {PLAIN_SCHEMA}.items (key, value) VALUES (%s, %s) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
    )

    class DB:
        """The seed's ``db``: read and write through psycopg, plainly."""

        def __init__(self, conn):
            self.conn = conn

        def read(self, key):
            row = self.conn.execute(select, (key,)).fetchone()
            return None if row is None else row[0]

        def write(self, key, value):
            self.conn.execute(upsert, (key, value))

    db = DB(conn)

    def write_batch(db, batch):
        with db.conn.transaction(), db.conn.cursor() as cur:
            cur.executemany(upsert, batch)

    seed = SeedSnippets(cache, db, cfg.write_behind.batch_size, write_batch, cache_none=False)
    stop = threading.Event()

    def flusher():  # "flush_queue runs as a background worker", with its own connection
        own = DB(psycopg.connect(conninfo, autocommit=True))
        flush = seed.flush_batches if tuned else seed.flush_queue
        try:
            while not stop.is_set():
                flush(own)
                stop.wait(cfg.write_behind.flush_interval_s)
        finally:
            own.conn.close()

    worker = None
    if queues_writes(cfg.strategy):
        worker = threading.Thread(target=flusher, daemon=True)
        worker.start()
    started = time.monotonic()
    deadline = started + duration_s
    try:  # seed_loop's stream (its client 0)
        n = seed.drive(OpStream(cfg.workload, cfg.seed).ops(), cfg.strategy, cfg.workload, deadline)
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        if worker is not None:
            worker.join()
        conn.execute(f"DROP SCHEMA IF EXISTS {PLAIN_SCHEMA} CASCADE")
        conn.close()
        cache.flushdb()
        cache.connection_pool.disconnect()
    return n / elapsed


@contextlib.contextmanager
def bench_servers():
    """One redis-server and one PostgreSQL of the bench's own, on unix sockets in a temporary
    directory (mode 711: as root, PostgreSQL runs as ``postgres``, who must get through),
    stopped and removed at the end. Yields ``(redis_url, conninfo)``. A server that is not
    installed or does not start: a ConfigError (one line)."""
    from .servers import PostgresServer, RedisServer, ServerError, postgres_bindir, redis_server
    from .storage import traversable

    try:
        redis_server()
        postgres_bindir()
    except ServerError as exc:
        raise ConfigError(str(exc)) from None
    root = Path(make_folder("bench"))
    traversable(root)
    cache, pg = RedisServer(root / "redis"), PostgresServer(root)
    try:
        try:
            cache.start()
            pg.start()
        except ServerError as exc:
            raise ConfigError(str(exc)) from None
        yield cache.url, pg.conninfo
    finally:
        for server in (cache, pg):
            try:
                server.stop()
            except Exception:  # noqa: BLE001 - stop the other whatever this one did
                pass
        shutil.rmtree(root, ignore_errors=True)


def _remote_cfg(base: LaneConfig, strategy: str, nodes: int = 1) -> LaneConfig:
    w = replace(base.workload, rate=0.0, keys=1000, read_ratio=0.8, distribution="uniform", concurrency=1)
    return replace(base, strategy=strategy, workload=w, backends=replace(REMOTE, nodes=nodes))


def remote_vs_plain(
    base: LaneConfig, duration_s: float, reps: int, servers: tuple[str, str] | None = None
) -> list[dict]:
    """Each strategy's lane on Redis + PostgreSQL against the seed's snippets written plainly
    with redis-py and psycopg (tuned flusher), on the same two servers, interleaved (E P E P
    …). ``servers``: ``(redis_url, conninfo)`` to use; None: started here and stopped after."""
    if servers is None:
        with bench_servers() as own:
            return remote_vs_plain(base, duration_s, reps, own)
    redis_url, conninfo = servers
    rows = []
    for strategy in SEED_STRATEGIES:
        cfg = _remote_cfg(base, strategy)
        engine, plain = [], []
        for _ in range(reps):
            engine.append(engine_rate(cfg, duration_s, redis_url, conninfo))
            plain.append(plain_remote_loop(cfg, duration_s, redis_url, conninfo, tuned=True))
        rows.append(
            figure_row(
                f"{strategy} ops/s, Redis + PostgreSQL", engine, "plain redis-py + psycopg loop, tuned", plain, ">= 1.0"
            )
        )
    return rows


def nodes_scaling(
    base: LaneConfig, duration_s: float, reps: int, nodes=(1, 2, 4), servers: tuple[str, str] | None = None
) -> list[dict]:
    """Each strategy's lane on Redis + PostgreSQL, flat out, at 1, 2 and 4 app nodes (one lab
    process each, one client thread each), against the same lane at ``nodes[0]`` node(s): the
    ratio is the scaling. No target. Repetitions interleave the node counts (1 2 4 1 2 4 …)."""
    if servers is None:
        with bench_servers() as own:
            return nodes_scaling(base, duration_s, reps, nodes, own)
    redis_url, conninfo = servers
    rows = []
    for strategy in STRATEGIES:
        rates: dict[int, list[float]] = {n: [] for n in nodes}
        for _ in range(reps):
            for n in nodes:
                rates[n].append(engine_rate(_remote_cfg(base, strategy, n), duration_s, redis_url, conninfo))
        first = nodes[0]
        for n in nodes:
            rows.append(
                figure_row(
                    f"{strategy} ops/s, Redis + PostgreSQL, {n} node{'s' if n > 1 else ''}",
                    rates[n],
                    f"{first} node{'s' if first > 1 else ''}",
                    rates[first],
                    "",
                )
            )
    return rows


# -- the key space: a lab's memory and start-up time --------------------------------------------

KEY_SPACES = (1_000, 100_000, 1_000_000, 10_000_000)


def _status_kb(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _key_space_probe(cfg: LaneConfig, root: str, run_s: float, conn) -> None:
    """In a process of its own, as the runner starts a lab: build the lab, time it, run its
    clients for ``run_s``, and report the peak resident memory."""
    started = time.monotonic()
    lab = Lab(cfg, LanePaths(Path(root)))
    lab.start_flusher()
    ready = time.monotonic() - started
    lab.start_clients(time.monotonic())
    time.sleep(run_s)  # the clients run on their threads meanwhile
    lab.stop_clients()
    ops = lab.done
    lab.close()
    conn.send({"ready_s": ready, "peak_kb": _status_kb("VmHWM"), "ops": ops})
    conn.close()


def key_space(base: LaneConfig, run_s: float = 3.0, reps: int = 1, sizes=KEY_SPACES) -> list[dict]:
    """A cache-aside lab's peak memory and start-up time at each key-space size (zipf keys),
    against the same at the smallest size. Targets: memory ≤ 1.2× (the store and cache files
    are files, not memory) and ready in ≤ 5 s at 10 million keys."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter, as a lab's memory starts
    results: dict[int, list[dict]] = {n: [] for n in sizes}
    for _ in range(reps):
        for n in sizes:
            cfg = replace(base, strategy=CacheAside.name, workload=replace(base.workload, keys=n, distribution="zipf"))
            with temp_folder("keys") as tmp:
                parent, child = ctx.Pipe(duplex=False)
                proc = ctx.Process(target=_key_space_probe, args=(cfg, tmp, run_s, child))
                proc.start()
                child.close()
                if not parent.poll(run_s + 300):
                    proc.kill()
                    raise RuntimeError(f"the key-space probe at {n:,} keys did not answer")
                results[n].append(parent.recv())
                proc.join(30)
    small = sizes[0]
    rows = []
    base_mb = [r["peak_kb"] / 1024 for r in results[small]]
    for n in sizes:
        mb = [r["peak_kb"] / 1024 for r in results[n]]
        rows.append(
            figure_row(
                f"lab peak memory, {n:,} keys", mb, f"{small:,} keys", base_mb, "<= 1.2", "MiB", higher_is_better=False
            )
        )
        ready = [r["ready_s"] for r in results[n]]
        row = figure_row(f"lab ready, {n:,} keys", ready, "", [1.0] * len(ready), "", "s", higher_is_better=False)
        row.update(
            {
                "yardstick": "",
                "yardstick_value": None,
                "ratio": None,
                "target": "<= 5 s",
                "met": statistics.median(ready) <= 5.0,
                "yardstick_samples": [],
            }
        )
        rows.append(row)
    return rows


def figure_row(
    figure: str,
    values: list[float],
    yard: str,
    yard_values: list[float],
    target: str,
    unit: str = "",
    higher_is_better: bool = True,
) -> dict:
    """A figure: the median of ``values`` against the median of its yardstick's, their ratio and
    whether it meets ``target`` (">= 1.2", "<= 33" or "" for none)."""
    v, y = statistics.median(values), statistics.median(yard_values)
    ratio = v / y if y else None
    return {
        "figure": figure,
        "value": round(v, 3),
        "unit": unit,
        "yardstick": yard,
        "yardstick_value": round(y, 3),
        "ratio": None if ratio is None else round(ratio, 2),
        "target": target,
        "reps": len(values),
        "met": target_met(ratio, target),
        "samples": [round(x, 3) for x in values],
        "yardstick_samples": [round(x, 3) for x in yard_values],
    }


def target_met(value: float | None, target: str) -> bool | None:
    """Does ``value`` meet ``target`` (">= X" or "<= X")? None when there is no target or value."""
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
    cfg = LaneConfig(strategy=CacheAside.name, workload=w, seed=seed)
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
            for key in keys[n % len(keys) : n % len(keys) + 1024]:
                get(key)
            n += 1024
        return n / (time.monotonic() - started)
    finally:
        cache.close()


def hit_path_vs_bare_get(duration_s: float, reps: int, seed: int = 7) -> dict:
    ours, bare = [], []
    for _ in range(reps):  # interleaved
        with temp_folder("bench") as tmp:
            ours.append(hit_path_rate(duration_s, Path(tmp), seed))
        with temp_folder("bench") as tmp:
            bare.append(bare_get_rate(duration_s, Path(tmp), seed))
    return figure_row("cache-aside hit path hits/s", ours, "bare diskcache get loop", bare, ">= 0.8")


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
        sql = (
            "INSERT INTO items (key, version, value, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET version = excluded.version, value = excluded.value, "
            "updated_at = excluded.updated_at"
        )
        started = time.perf_counter()
        for i in range(0, rows, batch):
            conn.execute("BEGIN")
            conn.executemany(sql, data[i : i + batch])
            conn.execute("COMMIT")
        return rows / (time.perf_counter() - started)
    finally:
        conn.close()


def drain_vs_executemany(reps: int, rows: int = DRAIN_ROWS, batch: int | None = None) -> dict:
    knobs = StoreKnobs()
    batch = batch or WriteBehindKnobs().batch_size
    ours, bare = [], []
    for _ in range(reps):  # interleaved
        with temp_folder("bench") as tmp:
            ours.append(drain_rate(rows, Path(tmp), knobs, batch))
        with temp_folder("bench") as tmp:
            bare.append(bare_executemany_rate(rows, Path(tmp), knobs, batch))
    row = figure_row(f"write-behind drain rows/s (batch {batch})", ours, "bare batched executemany", bare, ">= 0.8")
    row["rows"] = rows
    return row


# -- the commit log: what logging every committed version costs -----------------------------

LOG_ROWS = 5_000


def store_write_rate(workdir: Path, knobs: StoreKnobs, rows: int, logged: bool, batch: int = 0) -> float:
    """Rows per second written through the store (``Store.write``: one guarded upsert per
    transaction; ``batch``: ``write_batch`` of that many rows), with the commit log
    (``logged``) or without it (the same store, no writer: no trigger)."""
    store = Store(workdir / "store.sqlite", knobs, Latency(), writer=Writer("bench") if logged else None)
    data = [(f"k{i % 1000}", i + 1, "x" * 100) for i in range(rows)]
    try:
        started = time.perf_counter()
        if batch:
            for i in range(0, rows, batch):
                store.write_batch(data[i : i + batch])
        else:
            for key, version, value in data:
                store.write(key, version, value)
        return rows / (time.perf_counter() - started)
    finally:
        store.close()


def commit_log_cost(reps: int, rows: int = LOG_ROWS, modes=tuple(MODES)) -> list[dict]:
    """The store's writes with the commit log against the same writes without it, in each
    SQLite mode, single writes and batches of 100, interleaved (the log's cost as a ratio)."""
    out = []
    for mode in modes:
        for batch in (0, 100):
            logged, bare = [], []
            n = rows if batch else rows // (10 if MODES[mode].synchronous == "full" else 1)
            for _ in range(reps):
                with temp_folder("bench") as tmp:
                    logged.append(store_write_rate(Path(tmp), MODES[mode], n, True, batch))
                with temp_folder("bench") as tmp:
                    bare.append(store_write_rate(Path(tmp), MODES[mode], n, False, batch))
            what = f"batches of {batch}" if batch else "one per transaction"
            row = figure_row(
                f"store rows/s with the commit log ({what}, {mode})",
                logged,
                "the same store without the log",
                bare,
                ">= 0.5",
            )
            row["rows"] = n
            out.append(row)
    return out


# -- the time machine: what recording costs --------------------------------------------


def recorded_rate(lanes: list[LaneConfig], duration_s: float, record: bool) -> float:
    """Operations per second of all the lanes together, with or without a recording."""
    from .recording import SUFFIX, RecordingWriter, check_target, plan_header

    plan = Plan(lanes=list(lanes), duration_s=duration_s)
    with temp_folder("rec") as tmp:
        w = RecordingWriter(check_target(Path(tmp) / f"run{SUFFIX}"), plan_header(plan)) if record else None
        summary = run(plan, recorder=w)
        if w is not None:
            w.target.commit()
    return sum(lane["ops_per_s"] for lane in summary["lanes"])


def recording_cost(base: LaneConfig, duration_s: float, reps: int) -> dict:
    """Throughput with the run recorded (compressed, flushed every 0.5 s) against the same
    run unrecorded, interleaved: the three lanes flat out."""
    lanes = [replace(base, strategy=s) for s in STRATEGIES]
    on, off = [], []
    for _ in range(reps):
        on.append(recorded_rate(lanes, duration_s, True))
        off.append(recorded_rate(lanes, duration_s, False))
    return figure_row("ops/s, run recorded", on, "the same run, not recorded", off, ">= 0.95")
