"""The write-behind queue and flusher: coalescing, batching, back-pressure, retry, durability."""

from __future__ import annotations

import threading
import time

import pytest
from helpers import wait_until

from cachestudio.engine.backends import Latency, OutageLock, Store, store_versions
from cachestudio.engine.config import StoreKnobs, WriteBehindKnobs
from cachestudio.engine.queue import DurableQueue, Flusher, VolatileQueue


def make_queue(kind, tmp_path, knobs):
    return DurableQueue(tmp_path / "queue", knobs) if kind == "durable" else VolatileQueue(knobs)


def test_volatile_coalescing_keeps_latest_version_per_key(store):
    knobs = WriteBehindKnobs(coalesce=True, batch_size=100)
    q = VolatileQueue(knobs)
    for v in range(1, 11):
        assert q.put(("k1", v, f"v{v}"), False, 0)
    q.put(("k2", 1, "a"), False, 0)
    assert q.depth() == 2
    Flusher(q, store, knobs).flush_once()
    assert store.rows_written == 2  # ten writes of k1 became one row
    assert store.read("k1") == (10, "v10")


def test_without_coalescing_every_write_is_queued_and_written(store):
    knobs = WriteBehindKnobs(coalesce=False, batch_size=100)
    q = VolatileQueue(knobs)
    for v in range(1, 11):
        q.put(("k1", v, f"v{v}"), False, 0)
    assert q.depth() == 10
    Flusher(q, store, knobs).flush_once()
    assert store.rows_written == 10
    assert store.read("k1") == (10, "v10")


def test_durable_queue_coalesces_within_a_batch(tmp_path, store):
    knobs = WriteBehindKnobs(coalesce=True, batch_size=100, durable=True)
    q = DurableQueue(tmp_path / "queue", knobs)
    for v in range(1, 6):
        q.put(("k1", v, f"v{v}"), False, 0)
    assert q.depth() == 5  # on disk as written
    Flusher(q, store, knobs).flush_once()
    assert store.rows_written == 1
    assert store.read("k1") == (5, "v5")
    assert q.depth() == 0
    q.close()


@pytest.mark.parametrize("kind", ["volatile", "durable"])
def test_batching_writes_batch_size_rows_per_transaction(kind, tmp_path, store):
    knobs = WriteBehindKnobs(batch_size=7, coalesce=False)
    q = make_queue(kind, tmp_path, knobs)
    for i in range(20):
        q.put((f"k{i}", 1, "x"), False, 0)
    Flusher(q, store, knobs).flush_once()
    assert store.transactions == 3  # 7 + 7 + 6
    assert store.rows_written == 20
    assert len(store_versions(store.path)) == 20
    q.close()


@pytest.mark.parametrize("kind", ["volatile", "durable"])
def test_reject_policy_refuses_writes_beyond_capacity(kind, tmp_path):
    knobs = WriteBehindKnobs(capacity=3, backpressure="reject", coalesce=False)
    q = make_queue(kind, tmp_path, knobs)
    assert [q.put((f"k{i}", 1, "x"), False, 0) for i in range(4)] == [True, True, True, False]
    assert q.depth() == 3
    q.close()


def test_coalesced_update_of_a_queued_key_is_admitted_when_full():
    q = VolatileQueue(WriteBehindKnobs(capacity=1, coalesce=True))
    assert q.put(("k1", 1, "a"), False, 0)
    assert q.put(("k1", 2, "b"), False, 0)  # replaces the queued entry, needs no room
    assert not q.put(("k2", 1, "c"), False, 0)


@pytest.mark.parametrize("kind", ["volatile", "durable", "redis"])
def test_block_policy_waits_for_room_then_gives_up(kind, tmp_path, store, request):
    knobs = WriteBehindKnobs(capacity=2, backpressure="block", coalesce=False, batch_size=10)
    if kind == "redis":  # the durable queue on a Redis stream (redis_queue.py), on a real server
        from cachestudio.engine.redis_queue import RedisStreamQueue

        q = RedisStreamQueue(request.getfixturevalue("redis_srv").url, f"cs:test:{tmp_path.name}:queue", knobs)
    else:
        q = make_queue(kind, tmp_path, knobs)
    q.put(("k0", 1, "x"), True, 1)
    q.put(("k1", 1, "x"), True, 1)
    # Full and nobody drains: the writer blocks for its timeout, then is refused.
    t = time.monotonic()
    assert not q.put(("k2", 1, "x"), True, 0.2)
    assert time.monotonic() - t >= 0.2
    # Full, and the flusher drains meanwhile: the blocked writer gets in.
    result = {}
    writer = threading.Thread(target=lambda: result.setdefault("ok", q.put(("k3", 1, "x"), True, 30)))
    writer.start()
    wait_until(lambda: writer.is_alive())
    Flusher(q, store, knobs).flush_once()
    writer.join(30)
    assert result == {"ok": True}
    Flusher(q, store, knobs).flush_once()  # k3, unless that flush already took it
    assert store_versions(store.path) == {"k0": 1, "k1": 1, "k3": 1}  # k2 was refused
    q.close()


def test_retry_with_backoff_then_success(tmp_path):
    store = Store(tmp_path / "s.sqlite", StoreKnobs(timeout_ms=10), Latency())
    knobs = WriteBehindKnobs(retry_limit=1000, retry_backoff_s=0.01)
    q = VolatileQueue(knobs)
    q.put(("k1", 1, "a"), False, 0)
    lock = OutageLock(store.path)
    lock.acquire()
    flusher = Flusher(q, store, knobs)
    t = threading.Thread(target=flusher.flush_once)
    t.start()
    wait_until(lambda: flusher.retries >= 3)  # failing and retrying while locked
    lock.release()
    t.join(30)
    assert store_versions(store.path) == {"k1": 1}
    assert flusher.dead_letters == []
    assert q.depth() == 0
    store.close()


def test_retry_limit_exhausted_moves_batch_to_dead_letters(tmp_path):
    store = Store(tmp_path / "s.sqlite", StoreKnobs(timeout_ms=5), Latency())
    knobs = WriteBehindKnobs(retry_limit=3, retry_backoff_s=0.001)
    q = VolatileQueue(knobs)
    q.put(("k1", 1, "a"), False, 0)
    q.put(("k2", 1, "b"), False, 0)
    lock = OutageLock(store.path)
    lock.acquire()
    try:
        flusher = Flusher(q, store, knobs)
        flusher.flush_once()
    finally:
        lock.release()
    assert flusher.failures == 4  # the first attempt and three retries
    assert flusher.retries == 3
    assert sorted(flusher.dead_letters) == [("k1", 1, "a"), ("k2", 1, "b")]
    assert q.depth() == 0
    assert store_versions(store.path) == {}
    store.close()


def test_durable_queue_survives_reopening_and_replays(tmp_path, store):
    knobs = WriteBehindKnobs(durable=True, coalesce=False)
    q = DurableQueue(tmp_path / "queue", knobs)
    for v in (1, 2, 3):
        q.put(("k1", v, f"v{v}"), False, 0)
    q.close()  # the process that held it is gone
    again = DurableQueue(tmp_path / "queue", knobs)
    assert again.depth() == 3
    Flusher(again, store, knobs).flush_once()
    assert store.read("k1") == (3, "v3")
    again.close()


def test_replaying_a_flushed_batch_is_harmless(tmp_path, store):
    """At-least-once: a batch written but not removed before a crash is written again."""
    knobs = WriteBehindKnobs(durable=True, coalesce=False)
    q = DurableQueue(tmp_path / "queue", knobs)
    q.put(("k1", 1, "a"), False, 0)
    q.put(("k1", 2, "b"), False, 0)
    batch = q.take(10)
    store.write_batch(batch)  # committed ... and the process dies before q.done(batch)
    store.write("k1", 3, "c")  # meanwhile a newer version reached the store
    Flusher(q, store, knobs).flush_once()  # the replay
    assert store.read("k1") == (3, "c")
    q.close()


def test_flusher_thread_flushes_on_interval(store):
    knobs = WriteBehindKnobs(flush_interval_s=0.02, batch_size=1000)
    q = VolatileQueue(knobs)
    flusher = Flusher(q, store, knobs)
    flusher.start()
    q.put(("k1", 1, "a"), False, 0)
    wait_until(lambda: store_versions(store.path) == {"k1": 1})
    assert flusher.drain(10)
