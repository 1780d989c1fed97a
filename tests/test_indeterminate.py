"""Indeterminate writes (DESIGN.md §4, issue 24 item 6): a write that reports an error after
the step that applies it (its strategy's declared ``applies_at``: the DB commit, or the
enqueue of a strategy that queues writes) may have applied. It is counted as its own
outcome, never as a failed write and never as an acknowledged one.

Checked against the store itself, a witness the code under test did not write: after each
write of a step-by-step run (the store read by a plain reader), and in a whole run, by a
trigger of the test's own on each lane's ``items`` table that logs every committed version.
Every write recorded ``error`` never reached the store; every acknowledged synchronous
write did; an ``indeterminate`` one may have or not. Failures are real: the cache's own
database refuses writes (a trigger) or is locked (its writes time out), a Redis server
refuses writes (``min-replicas-to-write``), the store is locked.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import random
import sqlite3
from pathlib import Path

import pytest
from helpers import cli, pg_outage, start_cli, wait_until
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from recompute import recompute, recount_outcomes

from cachestudio.engine.auditor import audit
from cachestudio.engine.backends import CacheBackend, Latency, OutageLock, Store, StoreKnobs, store_versions
from cachestudio.engine.config import CacheKnobs
from cachestudio.engine.history import INDETERMINATE, read_history
from cachestudio.engine.htmlreport import render_report
from cachestudio.engine.lessons import METRICS
from cachestudio.engine.queue import DurableQueue, Flusher, VolatileQueue
from cachestudio.engine.strategies import make_strategy
from cachestudio.engine.strategykinds import STRATEGY_KINDS
from cachestudio.textreport import format_table

_names = itertools.count(1)
SEEDS = range(6)


# -- real cache and store failures ------------------------------------------------------


@contextlib.contextmanager
def diskcache_refuses_writes(directory: Path):
    """The cache's own SQLite database refuses every change to its entries (a trigger of
    another connection's making): each set or delete of an entry fails at once."""
    conn = sqlite3.connect(str(directory / "cache.db"), timeout=5.0, isolation_level=None)
    for op in ("INSERT", "UPDATE", "DELETE"):
        conn.execute(
            f"CREATE TRIGGER refuse_{op.lower()} BEFORE {op} ON Cache "
            "BEGIN SELECT RAISE(ABORT, 'the cache refuses writes (test)'); END"
        )
    try:
        yield
    finally:
        for op in ("insert", "update", "delete"):
            conn.execute(f"DROP TRIGGER refuse_{op}")
        conn.close()


@contextlib.contextmanager
def redis_refuses_writes(url: str):
    """The Redis server refuses every write command: it wants a replica it does not have."""
    import redis

    client = redis.Redis.from_url(url)
    client.config_set("min-replicas-to-write", 1)
    try:
        yield
    finally:
        client.config_set("min-replicas-to-write", 0)
        client.close()


@contextlib.contextmanager
def sqlite_outage(path: Path):
    lock = OutageLock(path)
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


class Backends:
    """A cache and a store of one kind, made fresh per strategy, with their real failures
    and a plain reader of the store's versions (the witness)."""

    def __init__(self, request, tmp_path: Path):
        self.made: list = []
        self.kind = request.param
        self.tmp = tmp_path
        if self.kind == "redis+postgresql":
            self.redis = request.getfixturevalue("redis_srv")
            self.make_redis = request.getfixturevalue("make_redis_cache")
            self.make_pg = request.getfixturevalue("make_pg_store")
            self.conninfo = request.getfixturevalue("pg_srv").conninfo

    def make(self):
        n = next(_names)
        if self.kind == "redis+postgresql":
            return self.make_redis(), self.make_pg(timeout_ms=50)
        cache = CacheBackend(self.tmp / f"cache-{n}", CacheKnobs(), Latency())
        store = Store(self.tmp / f"store-{n}.sqlite", StoreKnobs(timeout_ms=50), Latency())
        self.made += [cache, store]
        return cache, store

    def queue(self, knobs):
        """A write queue that can fail: a durable one on disk (on the embedded pair; on
        Redis a stream queue shares the cache's server, so its enqueue fails first and its
        writes are never indeterminate: a volatile queue there)."""
        if self.kind == "redis+postgresql":
            return VolatileQueue(knobs)
        queue = DurableQueue(self.tmp / f"queue-{next(_names)}", knobs)
        self.made.append(queue)
        return queue

    def cache_refuses(self, cache):
        if self.kind == "redis+postgresql":
            return redis_refuses_writes(self.redis.url)
        return diskcache_refuses_writes(Path(cache.cache.directory))

    def store_outage(self, store):
        if self.kind == "redis+postgresql":
            return pg_outage(self.conninfo, store.table)
        return sqlite_outage(store.path)

    def versions(self, store) -> dict[str, int]:
        if self.kind == "redis+postgresql":
            from cachestudio.engine.pg_store import pg_store_versions

            return pg_store_versions(self.conninfo, store.table)
        return store_versions(store.path)

    def close(self) -> None:
        for backend in self.made:
            backend.close()


@pytest.fixture(params=["diskcache+sqlite", "redis+postgresql"])
def backends(request, tmp_path):
    made = Backends(request, tmp_path)
    yield made
    made.close()


# -- step by step -----------------------------------------------------------------------


def _step_run(backends: Backends, kind, seed: int, wb_knobs) -> dict[str, int]:
    """Random reads and writes on 4 keys, some while the cache refuses writes, some during a
    store outage; after each write, its outcome is checked against the store. Returns the
    count of each write outcome."""
    rng = random.Random(seed)
    cache, store = backends.make()
    queue = backends.queue(wb_knobs) if kind.queues_writes else None
    faults = ["none", "cache", "store"] + (["queue"] if isinstance(queue, DurableQueue) else [])
    strategy = make_strategy(kind.name, cache, store, queue, wb_knobs)
    flusher = Flusher(queue, store, wb_knobs) if queue is not None else None
    version = dict.fromkeys(("a", "b", "c", "d"), 0)
    seen: dict[str, int] = {}
    for _ in range(40):
        key = rng.choice(sorted(version))
        fault = rng.choices(faults, weights=[3, 3, 1, 1][: len(faults)])[0]
        manager = {
            "none": contextlib.nullcontext,
            "cache": lambda: backends.cache_refuses(cache),
            "store": lambda: backends.store_outage(store),
            "queue": lambda: diskcache_refuses_writes(Path(queue._q.directory)),
        }[fault]()
        if rng.random() < 0.4:
            with manager:
                outcome, _, _, _ = strategy.read(key)
            assert outcome in ("hit", "miss", "error"), f"{kind.name}: a read ended {outcome!r}"
            continue
        version[key] += 1
        v = version[key]
        with manager:
            outcome, got, acked, detail = strategy.write(key, v, f"{key}{v}")
        assert got == v
        if flusher is not None:
            assert flusher.drain(), f"{kind.name}: the queue did not drain"
        held = backends.versions(store).get(key, 0)
        where = f"{kind.name} seed {seed}: write {key} v{v} during {fault!r} ended {outcome!r} ({detail})"
        if outcome == "ok":
            assert acked and held == v, f"{where}, acknowledged, but the store holds v{held}"
        elif outcome == "error":
            assert not acked and held < v, f"{where}, but the store holds v{held}: it applied"
        else:
            assert outcome == INDETERMINATE and not acked, where
            assert kind.indeterminate_path is not None, (
                f"{where}: its strategy declares no step after {kind.applies_at}"
            )
            assert "may have applied" in detail
        seen[outcome] = seen.get(outcome, 0) + 1
    return seen


@pytest.mark.parametrize("kind", STRATEGY_KINDS, ids=[k.name for k in STRATEGY_KINDS])
def test_a_write_is_indeterminate_exactly_when_it_failed_after_the_step_that_applies_it(backends, kind, wb_knobs):
    """Over seeds: errors never reached the store, acknowledged writes did; a write is
    indeterminate only where a step follows the one that applies it (cache-aside's delete
    after the commit, write-behind's cache set after the enqueue), and there it happens."""
    seen: dict[str, int] = {}
    for seed in SEEDS:
        for outcome, n in _step_run(backends, kind, seed, wb_knobs).items():
            seen[outcome] = seen.get(outcome, 0) + n
    if kind.indeterminate_path is not None:
        assert seen.get(INDETERMINATE), f"{kind.name}: no write failed after its {kind.applies_at} step: {seen}"
    if not (kind.queues_writes and backends.kind == "redis+postgresql"):  # a volatile queue never fails
        assert seen.get("error"), f"{kind.name}: no write failed before it applied: {seen}"


def test_cache_aside_delete_timing_out_after_the_commit_is_indeterminate_and_applied(tmp_path):
    """The cache's database locked by another connection: diskcache's delete times out after
    the DB commit. The write is indeterminate, and the store (read plainly) holds it."""
    cache = CacheBackend(tmp_path / "cache", CacheKnobs(), Latency())
    store = Store(tmp_path / "store.sqlite", StoreKnobs(), Latency())
    try:
        strategy = make_strategy(STRATEGY_KINDS[0].name, cache, store)
        assert strategy.read("k") == ("miss", None, True, None)
        store.write("k", 1, "one")
        assert strategy.read("k")[:2] == ("miss", 1)  # cached now
        with sqlite_outage(tmp_path / "cache" / "cache.db"):
            outcome, _, acked, detail = strategy.write("k", 2, "two")
        if STRATEGY_KINDS[0].indeterminate_path is not None:
            assert (outcome, acked) == (INDETERMINATE, False), detail
            assert "timed out" in detail
        assert store_versions(store.path) == {"k": 2}
        assert cache.get("k") == (1, "one")  # the delete failed: the cache is stale now
    finally:
        cache.close()
        store.close()


# -- the auditor's rule, generated ------------------------------------------------------


def _history(draw_ops: list[tuple], lane: str) -> list[dict]:
    recs, t = [], 0.0
    versions: dict[str, int] = {}
    last: dict[str, int] = {}
    for i, (kind, key, outcome, start_gap, took, pick) in enumerate(draw_ops):
        t += start_gap
        rec = {"id": f"x#{i}", "lane": lane, "kind": kind, "key": key, "start": t, "end": t + took, "inc": 0}
        if kind == "write":
            versions[key] = versions.get(key, 0) + 1
            rec.update(version=versions[key], outcome=outcome, acked=outcome == "ok")
            if outcome in ("ok", INDETERMINATE):
                last[key] = versions[key]
        else:
            known = versions.get(key, 0)
            got = None if not known else max(1, known - pick)
            rec.update(version=got, outcome="hit", acked=True)
        recs.append(rec)
    return recs


OPS = st.lists(
    st.tuples(
        st.sampled_from(["read", "read", "write"]),
        st.sampled_from(["a", "b"]),
        st.sampled_from(["ok", "error", INDETERMINATE]),
        st.floats(0.0, 0.05),
        st.floats(0.0, 0.2),
        st.integers(0, 2),
    ),
    max_size=60,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(OPS)
def test_the_auditor_and_the_recount_judge_indeterminate_writes_alike(tmp_path_factory, ops):
    """Random histories with acknowledged, failed and indeterminate writes: the auditor's
    stale reads equal the independent recount's; no indeterminate write is ever lost; a
    read is judged against an indeterminate write only once a read returned it."""
    lane = STRATEGY_KINDS[0].name
    lane_dir = tmp_path_factory.mktemp("lane")
    Store(lane_dir / "store.sqlite", StoreKnobs(), Latency()).close()  # an empty store
    CacheBackend(lane_dir / "cache", CacheKnobs(), Latency()).close()
    history = _history(ops, lane)
    auditor = audit(history, {}, {}, lane)
    want = recompute(history, lane_dir, lane)
    stale = {a.records[0] for a in auditor.anomalies if a.kind == "stale_read"}
    assert stale == want["stale_reads"]
    lost = {a.records[0] for a in auditor.anomalies if a.kind == "lost_write"}
    assert lost == want["lost_writes"]
    indeterminate = {r["id"] for r in history if r.get("outcome") == INDETERMINATE}
    assert not lost & indeterminate, "an indeterminate write was called lost"


def test_the_auditors_rule_for_an_indeterminate_write():
    """Not lost when the store never had it; a read returning it is no anomaly; once a read
    returned it, a later read of an older version is stale; its cache entry, never
    committed, is dirty."""
    lane = STRATEGY_KINDS[0].name

    def op(i, kind, version, start, end, outcome, acked):
        return {"id": f"x#{i}", "lane": lane, "kind": kind, "key": "k", "version": version}, {
            "start": start,
            "end": end,
            "outcome": outcome,
            "acked": acked,
            "inc": 0,
        }

    recs = [
        {**a, **b}
        for a, b in (
            op(1, "write", 1, 0.0, 0.1, "ok", True),
            op(2, "write", 2, 0.2, 0.3, INDETERMINATE, False),
            op(3, "read", 1, 0.4, 0.5, "hit", True),  # not yet seen applied: fine
            op(4, "read", 2, 0.6, 0.7, "hit", True),  # returns it: fine, and now it counts
            op(5, "read", 1, 0.8, 0.9, "hit", True),  # older, after it was seen: stale
        )
    ]
    auditor = audit(recs, {"k": 1}, {"k": 2}, lane)
    kinds = sorted((a.kind, tuple(a.records)) for a in auditor.anomalies)
    assert kinds == [("dirty_cache", ("x#2",)), ("stale_read", ("x#5", "x#2"))], kinds
    sentence = next(a.sentence for a in auditor.anomalies if a.kind == "stale_read")
    assert "failed but applied" in sentence


# -- a whole run ------------------------------------------------------------------------

WITNESS = (
    "CREATE TABLE IF NOT EXISTS witness(key TEXT, version INTEGER);"
    "INSERT INTO witness SELECT key, version FROM items;"
    "CREATE TRIGGER witness_insert AFTER INSERT ON items BEGIN "
    "INSERT INTO witness VALUES (new.key, new.version); END;"
    "CREATE TRIGGER witness_update AFTER UPDATE ON items BEGIN "
    "INSERT INTO witness VALUES (new.key, new.version); END;"
)


def _has_items(path: Path) -> bool:
    if not path.exists():
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)) as conn:
            return bool(conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'items'").fetchone())
    except sqlite3.Error:
        return False


def _witness(path: Path) -> None:
    """Log every version committed to the store from now on (and what it holds now), in the
    same transaction as the lab's write: the store's own log, not the lab's."""
    with contextlib.closing(sqlite3.connect(str(path), timeout=10.0, isolation_level=None)) as conn:
        conn.executescript("BEGIN IMMEDIATE;" + WITNESS + "COMMIT;")


def _ops(lane_dir: Path) -> list[dict]:
    files = sorted((lane_dir / "history").glob("inc-*.jsonl"))
    return [r for f in files for r in read_history(f) if r["kind"] in ("read", "write")]


@pytest.mark.parametrize("seed", [1, 2])
def test_a_run_with_a_locked_cache_counts_indeterminate_writes_everywhere_and_truly(tmp_path, seed):
    """A real run of every strategy; each lane's cache database is locked by another
    connection until each lane has recorded a failed write (its cache calls time out), and
    the store has an outage of its own later. Against each store's own log: no ``error``
    write ever committed, every acknowledged synchronous write did (or a newer version of
    its key did: the version guard). The count of indeterminate writes is the same in the
    history, the summary, the text table, the HTML report (the run's and its recording's),
    the lessons' figures and the recount."""
    run_dir, hist, out = tmp_path / "run", tmp_path / "history.jsonl", tmp_path / "summary.json"
    names = [k.name for k in STRATEGY_KINDS]
    proc = start_cli(
        "run", "--strategy", "all", "--duration", "8", "--seed", str(seed), "--rate", "300",
        "--keys", "6", "--read-ratio", "0.4", "--concurrency", "2", "--flush-interval", "0.2",
        "--queue", "volatile", "--run-dir", str(run_dir), "--history", str(hist), "--json", str(out),
        "--record", str(tmp_path / "run.rec"), "--outage", "6:0.5", "--db-timeout-ms", "30",
    )  # fmt: skip
    locks: list[OutageLock] = []
    try:
        for name in names:
            wait_until(lambda name=name: _has_items(run_dir / name / "store.sqlite"), timeout=120)
            _witness(run_dir / name / "store.sqlite")
        early = {n: [r["id"] for r in _ops(run_dir / n) if r["outcome"] in ("error", INDETERMINATE)] for n in names}
        assert not any(early.values()), f"writes failed before the witness was in place: {early}"
        wait_until(lambda: all(_ops(run_dir / n) for n in names), timeout=120)  # every lane runs
        for name in names:
            lock = OutageLock(run_dir / name / "cache" / "cache.db")
            lock.acquire(timeout_s=30)
            locks.append(lock)
        wait_until(
            lambda: all(
                any(r["kind"] == "write" and not r["acked"] for r in _ops(run_dir / n) if r["outcome"] != "rejected")
                for n in names
            ),
            timeout=60,
        )
    finally:
        for lock in locks:
            lock.release()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    history = [json.loads(line) for line in hist.read_text().splitlines()]
    summary = json.loads(out.read_text())
    table = format_table(summary)
    html = render_report(summary, {}, {})
    rec_html = tmp_path / "report.html"
    made = cli("report", "--html", str(rec_html), str(tmp_path / "run.rec"))
    assert made.returncode == 0, made.stderr
    recorded = rec_html.read_text()  # the recording's own summary, rebuilt from its records
    for lane in summary["lanes"]:
        name = lane["strategy"]
        kind = next(k for k in STRATEGY_KINDS if k.name == name)
        with contextlib.closing(sqlite3.connect(str(run_dir / name / "store.sqlite"))) as conn:
            committed = set(conn.execute("SELECT key, version FROM witness"))
        writes = [r for r in history if r.get("lane") == name and r["kind"] == "write"]
        errors = [r for r in writes if r["outcome"] == "error" and (r["key"], r["version"]) in committed]
        assert not errors, f"{name}: writes recorded as errors reached the store: {errors[:3]}"
        if not kind.queues_writes:
            newest: dict[str, int] = {}
            for key, version in committed:
                newest[key] = max(version, newest.get(key, 0))
            # the version guard skips an older version that lands after a newer one
            missing = [r for r in writes if r["acked"] and newest.get(r["key"], 0) < r["version"]]
            assert not missing, f"{name}: acknowledged writes the store never committed: {missing[:3]}"
        indeterminate = [r for r in writes if r["outcome"] == INDETERMINATE]
        assert all(not r["acked"] for r in indeterminate)
        if kind.indeterminate_path is None:
            assert not indeterminate, f"{name}: indeterminate writes, but nothing follows its {kind.applies_at} step"
        else:
            assert indeterminate, f"{name}: the locked cache made no write indeterminate"
        counted = recount_outcomes(history, name)
        assert {k: lane[k] for k in counted} == counted, name
        assert METRICS["indeterminate"](lane) == counted["indeterminate"]
        row = next(line for line in table.splitlines() if line.startswith("indeterminate writes"))
        assert f"{counted['indeterminate']:,}" in row.split()[2:], row
        want = recompute(history, run_dir / name, name)
        for what, ids in want.items():
            assert lane["anomalies"][what] == len(ids), (name, what, lane["anomalies"][what], len(ids))
    cells = [f'<td class="num" data-col="indeterminate">{lane["indeterminate"]:,}</td>' for lane in summary["lanes"]]
    missing_cells = [c for c in cells if c not in html]
    assert not missing_cells, missing_cells
    missing_cells = [c for c in cells if c not in recorded]
    assert not missing_cells, f"the recording's report: {missing_cells}"


def test_old_summaries_without_the_count_still_render(tmp_path):
    """A summary written before issue 24 (no ``indeterminate``) still prints and renders."""
    proc = cli("run", "--strategy", STRATEGY_KINDS[0].name, "--duration", "0.5", "--json", str(tmp_path / "s.json"))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    for lane in summary["lanes"]:
        assert lane["indeterminate"] == 0
        del lane["indeterminate"]
    assert "indeterminate writes" in format_table(summary)
    assert "indeter" in render_report(summary, {}, {})
