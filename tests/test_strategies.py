"""Each strategy's read and write flow, step by step, on a real cache and store."""

from __future__ import annotations

import pytest

from cachestudio.engine.backends import OutageLock, StoreKnobs, store_versions
from cachestudio.engine.config import WriteBehindKnobs
from cachestudio.engine.queue import Flusher, VolatileQueue
from cachestudio.engine.strategies import CacheAside, WriteBehind, WriteThrough


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


def test_cache_aside_write_updates_db_then_deletes_cache_key(cache, store):
    strategy = CacheAside(cache, store)
    cache.set("k1", 1, "old")
    assert strategy.write("k1", 2, "new") == ("ok", 2, True, None)
    assert store.read("k1") == (2, "new")
    assert cache.get("k1") is None  # invalidated, not updated


def test_write_through_sets_cache_and_db_before_ack(cache, store):
    assert WriteThrough(cache, store).write("k1", 5, "five") == ("ok", 5, True, None)
    assert cache.get("k1") == (5, "five")
    assert store.read("k1") == (5, "five")


def test_write_through_db_failure_leaves_dirty_cache(tmp_path, cache):
    from cachestudio.engine.backends import Latency, Store

    store = Store(tmp_path / "locked.sqlite", StoreKnobs(timeout_ms=20), Latency())
    lock = OutageLock(store.path)
    lock.acquire()
    try:
        outcome, version, acked, detail = WriteThrough(cache, store).write("k1", 1, "one")
    finally:
        lock.release()
    assert (outcome, acked) == ("error", False)
    assert "locked" in detail
    assert cache.get("k1") == (1, "one")  # set before the failed DB write: dirty
    assert store_versions(store.path) == {}
    store.close()


def test_cache_aside_db_failure_is_an_error_and_cache_keeps_nothing_new(tmp_path, cache):
    from cachestudio.engine.backends import Latency, Store

    store = Store(tmp_path / "locked.sqlite", StoreKnobs(timeout_ms=20), Latency())
    cache.set("k1", 1, "one")
    lock = OutageLock(store.path)
    lock.acquire()
    try:
        result = CacheAside(cache, store).write("k1", 2, "two")
    finally:
        lock.release()
    assert result[:3] == ("error", 2, False)
    assert cache.get("k1") == (1, "one")  # the DB write failed first: nothing deleted
    store.close()


def test_write_behind_acks_before_the_db_write_and_converges_after_drain(cache, store, wb_knobs):
    queue = VolatileQueue(wb_knobs)
    strategy = WriteBehind(cache, store, queue, wb_knobs)
    for v in range(1, 4):
        assert strategy.write("k1", v, f"v{v}") == ("ok", v, True, None)
    assert strategy.write("k2", 1, "a") == ("ok", 1, True, None)
    # Acknowledged, in the cache, queued, and not yet in the DB.
    assert cache.get("k1") == (3, "v3")
    assert store_versions(store.path) == {}
    assert queue.depth() == 2  # coalesced: one entry per key
    assert strategy.read("k1") == ("hit", 3, True, None)
    flusher = Flusher(queue, store, wb_knobs)
    assert flusher.drain()
    assert store_versions(store.path) == {"k1": 3, "k2": 1}
    assert store.read("k1") == (3, "v3")


def test_write_behind_rejected_write_never_touches_the_cache(cache, store):
    knobs = WriteBehindKnobs(capacity=1, backpressure="reject")
    strategy = WriteBehind(cache, store, VolatileQueue(knobs), knobs)
    assert strategy.write("k1", 1, "a")[0] == "ok"
    outcome, version, acked, detail = strategy.write("k2", 1, "b")
    assert (outcome, acked) == ("rejected", False)
    assert "full" in detail
    assert cache.get("k2") is None


@pytest.mark.parametrize("strategy_cls", [CacheAside, WriteThrough])
def test_read_during_db_outage_hit_is_served_and_miss_fails(tmp_path, cache, strategy_cls):
    from cachestudio.engine.backends import Latency, Store

    store = Store(tmp_path / "s.sqlite", StoreKnobs(journal_mode="delete", timeout_ms=20), Latency())
    store.write("hot", 1, "x")
    store.write("cold", 1, "y")
    strategy = strategy_cls(cache, store)
    strategy.read("hot")  # now cached
    lock = OutageLock(store.path)
    lock.acquire()
    try:
        assert strategy.read("hot")[0] == "hit"
        outcome, _, acked, detail = strategy.read("cold")
    finally:
        lock.release()
    assert (outcome, acked) == ("error", False)
    assert "locked" in detail
    store.close()


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
