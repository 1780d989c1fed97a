"""Each strategy's read and write flow, step by step, on every pair of real backends: the
diskcache cache and the SQLite store (always), and a Redis cache and a PostgreSQL store on
throw-away servers (skipped without redis-server or PostgreSQL; a failure under CI=true).
One test per flow, run once per pair; what only one backend has is in test_remote_backends.py
(Redis, PostgreSQL) or test_queue.py and test_store_guard.py (SQLite)."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from helpers import pg_outage

from cachestudio.engine.backends import (
    CacheBackend,
    Latency,
    OutageLock,
    Store,
    StoreKnobs,
    store_versions,
)
from cachestudio.engine.config import CacheKnobs, WriteBehindKnobs
from cachestudio.engine.pg_store import pg_store_versions
from cachestudio.engine.queue import Flusher, VolatileQueue
from cachestudio.engine.strategies import CacheAside, WriteBehind, WriteThrough

_files = itertools.count(1)


@dataclass
class Pair:
    """A cache and a store on one kind of backend: how to make them, read what the store
    holds (as the auditor does) and hold a real outage on the store."""

    name: str
    make_cache: Callable[[], Any]
    make_store: Callable[..., Any]  # StoreKnobs as keywords
    versions: Callable[[Any], dict[str, int]]
    outage: Callable[[Any], contextlib.AbstractContextManager]


@contextlib.contextmanager
def sqlite_outage(store: Store):
    """Another connection holds the database's exclusive lock (readers too, unless WAL)."""
    lock = OutageLock(store.path)
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


def embedded(tmp_path, made: list) -> Pair:
    def make_cache():
        made.append(CacheBackend(tmp_path / f"cache-{next(_files)}", CacheKnobs(), Latency()))
        return made[-1]

    def make_store(**knobs):
        made.append(Store(tmp_path / f"store-{next(_files)}.sqlite", StoreKnobs(**knobs), Latency()))
        return made[-1]

    return Pair("diskcache+sqlite", make_cache, make_store, lambda store: store_versions(store.path), sqlite_outage)


def servers(request) -> Pair:
    make_cache, make_store = request.getfixturevalue("make_redis_cache"), request.getfixturevalue("make_pg_store")
    conninfo = request.getfixturevalue("pg_srv").conninfo
    return Pair(
        "redis+postgresql",
        make_cache,
        make_store,
        lambda store: pg_store_versions(conninfo, store.table),
        lambda store: pg_outage(conninfo, store.table),
    )


@pytest.fixture(params=["diskcache+sqlite", "redis+postgresql"])
def pair(request, tmp_path):
    made: list = []
    yield embedded(tmp_path, made) if request.param == "diskcache+sqlite" else servers(request)
    for backend in made:
        backend.close()


@pytest.fixture
def cache(pair):
    return pair.make_cache()


@pytest.fixture
def store(pair):
    return pair.make_store()


# -- reads ------------------------------------------------------------------------------


def test_read_through_miss_reads_db_then_sets_cache_then_hits(cache, store):
    store.write("k1", 3, "three")
    strategy = CacheAside(cache, store)
    assert cache.get("k1") is None
    assert strategy.read("k1") == ("miss", 3, True, None)
    assert cache.get("k1") == (3, "three")  # populated on the miss
    reads_before = store.reads
    assert strategy.read("k1") == ("hit", 3, True, None)
    assert store.reads == reads_before  # a hit does not touch the DB


def test_read_of_absent_key_is_a_miss_returning_nothing(cache, store):
    assert CacheAside(cache, store).read("nope") == ("miss", None, True, None)
    assert cache.get("nope") is None


@pytest.mark.parametrize("strategy_cls", [CacheAside, WriteThrough])
def test_read_during_db_outage_hit_is_served_and_miss_fails(pair, cache, strategy_cls):
    store = pair.make_store(journal_mode="delete", timeout_ms=50)  # SQLite: not WAL, whose readers pass a lock
    store.write("hot", 1, "x")
    store.write("cold", 1, "y")
    strategy = strategy_cls(cache, store)
    strategy.read("hot")  # now cached
    with pair.outage(store):
        assert strategy.read("hot")[0] == "hit"
        outcome, _, acked, detail = strategy.read("cold")
    assert (outcome, acked) == ("error", False)
    assert "lock" in detail
    assert store.outage_is_real_for_reads


# -- writes -----------------------------------------------------------------------------


def test_cache_aside_write_updates_db_then_deletes_cache_key(cache, store):
    cache.set("k1", 1, "old")
    assert CacheAside(cache, store).write("k1", 2, "new") == ("ok", 2, True, None)
    assert store.read("k1") == (2, "new")
    assert cache.get("k1") is None  # invalidated, not updated


def test_write_through_sets_cache_and_db_before_ack(cache, store):
    assert WriteThrough(cache, store).write("k1", 5, "five") == ("ok", 5, True, None)
    assert cache.get("k1") == (5, "five")
    assert store.read("k1") == (5, "five")


def test_write_through_db_failure_leaves_dirty_cache(pair, cache):
    store = pair.make_store(timeout_ms=50)
    with pair.outage(store):
        outcome, _, acked, detail = WriteThrough(cache, store).write("k1", 1, "one")
    assert (outcome, acked) == ("error", False)
    assert "lock" in detail
    assert cache.get("k1") == (1, "one")  # set before the failed DB write: dirty
    assert pair.versions(store) == {}


def test_cache_aside_db_failure_is_an_error_and_cache_keeps_nothing_new(pair, cache):
    store = pair.make_store(timeout_ms=50)
    cache.set("k1", 1, "one")
    with pair.outage(store):
        result = CacheAside(cache, store).write("k1", 2, "two")
    assert result[:3] == ("error", 2, False)
    assert cache.get("k1") == (1, "one")  # the DB write failed first: nothing deleted


def test_write_behind_acks_from_the_cache_and_the_flusher_writes_one_batch(pair, cache, store, wb_knobs):
    queue = VolatileQueue(wb_knobs)
    strategy = WriteBehind(cache, store, queue, wb_knobs)
    for v in range(1, 4):
        assert strategy.write("k1", v, f"v{v}") == ("ok", v, True, None)
    assert strategy.write("k2", 1, "a") == ("ok", 1, True, None)
    # Acknowledged, in the cache, queued, and not yet in the DB.
    assert cache.get("k1") == (3, "v3")
    assert pair.versions(store) == {}
    assert queue.depth() == 2  # coalesced: one entry per key
    assert strategy.read("k1") == ("hit", 3, True, None)
    assert Flusher(queue, store, wb_knobs).drain()
    assert pair.versions(store) == {"k1": 3, "k2": 1}
    assert store.read("k1") == (3, "v3")
    assert (store.transactions, store.rows_written) == (1, 2)  # one batch, one transaction


def test_write_behind_rejected_write_never_touches_the_cache(cache, store):
    knobs = WriteBehindKnobs(capacity=1, backpressure="reject")
    strategy = WriteBehind(cache, store, VolatileQueue(knobs), knobs)
    assert strategy.write("k1", 1, "a")[0] == "ok"
    outcome, _, acked, detail = strategy.write("k2", 1, "b")
    assert (outcome, acked) == ("rejected", False)
    assert "full" in detail
    assert cache.get("k2") is None


def test_every_declared_strategy_has_its_code_and_make_strategy_builds_it(cache, store, wb_knobs):
    """strategykinds declares each strategy; strategies holds its code: neither without the other."""
    from cachestudio.engine.strategies import STRATEGY_CLASSES, make_strategy
    from cachestudio.engine.strategykinds import STRATEGY_KINDS

    declared = [k.name for k in STRATEGY_KINDS]
    assert [n for n in declared if n not in STRATEGY_CLASSES] == [], "declared, but no class in strategies.py"
    assert [n for n in STRATEGY_CLASSES if n not in declared] == [], "a class not declared in strategykinds.py"
    for kind in STRATEGY_KINDS:
        queue = VolatileQueue(wb_knobs) if kind.queues_writes else None
        built = make_strategy(kind.name, cache, store, queue, wb_knobs)
        assert type(built) is STRATEGY_CLASSES[kind.name] and built.name == kind.name
        key = f"k-{kind.code}"
        assert built.write(key, 1, "one")[0] == "ok"
        if kind.queues_writes:  # acknowledged before the database has it: queued
            assert queue.depth() == 1 and store.read(key) is None
            with pytest.raises(ValueError, match="queue"):
                make_strategy(kind.name, cache, store)
        else:
            assert store.read(key) == (1, "one")
    with pytest.raises(ValueError, match="unknown strategy"):
        make_strategy("write-around", cache, store)
