"""RedisStreamQueue, the durable write-behind queue on a Redis Stream, a drop-in for the
diskcache DurableQueue, on a real throw-away redis-server (servers.py): FIFO, take
without removing, done removing exactly what was taken, back-pressure, the flusher's
wait, replay by a new incarnation after the writer process is SIGKILLed, and what a
killed redis-server keeps (nothing without persistence; every acknowledged entry with
an append-only file fsynced on each write).

Without redis-server these tests are skipped (a failure under CI=true)."""

from __future__ import annotations

import itertools
import os
import random
import secrets
import signal
import subprocess
import sys
import threading
import time

import pytest
from helpers import ROOT, wait_until
from hypothesis import given, settings
from hypothesis import strategies as st

from cachestudio.engine.backends import CacheBackend, Store, store_versions
from cachestudio.engine.config import CacheKnobs, Latency, StoreKnobs, WriteBehindKnobs
from cachestudio.engine.queue import Flusher, QueueUnavailable
from cachestudio.engine.redis_queue import RedisStreamQueue, redis_queue_depth
from cachestudio.engine.strategies import Health, WriteBehind

_run = secrets.token_hex(3)
_names = itertools.count(1)


def stream_name() -> str:
    return f"cs:{_run}:t{next(_names)}:queue:node0"


@pytest.fixture
def make_queue(redis_srv):
    """A RedisStreamQueue on a stream of its own (tests share the server)."""
    made = []

    def make(stream: str | None = None, url: str | None = None, **knobs) -> RedisStreamQueue:
        q = RedisStreamQueue(url or redis_srv.url, stream or stream_name(), WriteBehindKnobs(**knobs))
        made.append(q)
        return q

    yield make
    for q in made:
        q.close()


# -- the interface against a model --------------------------------------------------------

_ops = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.sampled_from("abc")),
        st.tuples(st.just("take"), st.integers(0, 6)),
        st.tuples(st.just("done"), st.integers(0, 6)),  # done with the first m entries taken
        st.tuples(st.just("reopen")),  # a new incarnation of the node opens the stream
    ),
    max_size=30,
)


@settings(max_examples=40, deadline=None)
@given(ops=_ops, capacity=st.integers(1, 8))
def test_any_sequence_of_put_take_done_behaves_as_a_list(redis_srv, ops, capacity):
    """FIFO; take reads the oldest without removing; done removes exactly what was taken,
    never an entry put since; a full queue rejects; a new object on the stream sees what
    was not done. The model is a plain list."""
    stream = stream_name()
    knobs = WriteBehindKnobs(capacity=capacity, coalesce=False)
    q = RedisStreamQueue(redis_srv.url, stream, knobs)
    model: list = []
    taken: list = []
    versions = dict.fromkeys("abc", 0)
    try:
        for op in ops:
            if op[0] == "put":
                versions[op[1]] += 1
                entry = (op[1], versions[op[1]], f"{op[1]}{versions[op[1]]}|x")
                room = len(model) < capacity
                assert q.put(entry, False, 0) is room
                if room:
                    model.append(entry)
            elif op[0] == "take":
                taken = q.take(op[1])
                assert taken == model[: op[1]]
            elif op[0] == "done":
                batch = taken[: op[1]]
                q.done(batch)
                assert model[: len(batch)] == batch  # what was taken is still the oldest
                model = model[len(batch) :]
                taken = taken[len(batch) :]
            else:
                q.close()
                q = RedisStreamQueue(redis_srv.url, stream, knobs)
                taken = []  # the new incarnation took nothing yet
            assert q.depth() == len(model)
        assert q.take(100) == model
        assert redis_queue_depth(redis_srv.url, stream) == len(model)
    finally:
        q.close()


def test_seeded_random_runs_keep_fifo_order_across_many_flushes(make_queue):
    for seed in range(5):
        rng = random.Random(seed)
        q = make_queue(capacity=10_000, coalesce=False)
        put, flushed = [], []
        for i in range(300):
            entry = (f"k{rng.randrange(20)}", i, "v" * rng.randrange(50))
            assert q.put(entry, False, 0)
            put.append(entry)
            if rng.random() < 0.1:
                batch = q.take(rng.randrange(1, 40))
                flushed += batch
                q.done(batch)
        while batch := q.take(17):
            flushed += batch
            q.done(batch)
        assert flushed == put
        assert q.depth() == 0


def test_a_put_between_take_and_done_is_kept(make_queue):
    q = make_queue(coalesce=False)
    for v in (1, 2):
        q.put(("k", v, f"v{v}"), False, 0)
    batch = q.take(10)
    q.put(("k", 3, "v3"), False, 0)  # queued while the batch is being written
    q.done(batch)
    assert q.take(10) == [("k", 3, "v3")]
    assert q.depth() == 1


def test_the_interface_matches_the_durable_queue(make_queue):
    q = make_queue(capacity=7, coalesce=True)
    assert q.durable is True and q.capacity == 7 and q.coalesce is True
    assert q.take(0) == [] and q.take(5) == []
    q.done([])  # nothing taken: nothing to remove
    assert q.depth() == 0


# -- back-pressure -----------------------------------------------------------------------


def test_reject_policy_refuses_writes_beyond_capacity(make_queue):
    q = make_queue(capacity=3, coalesce=False)
    assert [q.put((f"k{i}", 1, "x"), False, 0) for i in range(4)] == [True, True, True, False]
    assert q.depth() == 3
    q.capacity = 4  # the lab changes it live
    assert q.put(("k4", 1, "x"), False, 0)
    assert not q.put(("k5", 1, "x"), False, 0)


def test_a_durable_queue_admits_no_update_of_a_queued_key_when_full(make_queue):
    """As DurableQueue: coalescing happens in the flush batch, not on put."""
    q = make_queue(capacity=1, coalesce=True)
    assert q.put(("k1", 1, "a"), False, 0)
    assert not q.put(("k1", 2, "b"), False, 0)


def test_concurrent_writers_never_overfill(make_queue):
    q = make_queue(capacity=25, coalesce=False)
    admitted = []

    def writer(n: int):
        for i in range(20):
            if q.put((f"w{n}", i, "x"), False, 0):
                admitted.append((n, i))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(admitted) == 25 == q.depth()  # the check and the XADD are one script


# -- the flusher's wait --------------------------------------------------------------------


def test_wait_returns_after_the_timeout_when_too_little_is_queued(make_queue):
    q = make_queue()
    q.put(("k", 1, "x"), False, 0)
    started = time.monotonic()
    q.wait(0.2, 2)
    assert time.monotonic() - started >= 0.2


def test_wait_wakes_at_the_threshold_put_by_this_process_or_another_client(make_queue):
    q = make_queue(coalesce=False)
    for other in (q, make_queue(stream=q.stream)):  # the same object, then another client
        q.done(q.take(100))
        writer = threading.Thread(target=lambda other=other: [other.put((f"k{i}", 1, "x"), False, 0) for i in range(5)])
        waiter = threading.Thread(target=q.wait, args=(3600, 5), daemon=True)  # its timeout never comes
        waiter.start()
        writer.start()
        wait_until(lambda waiter=waiter: not waiter.is_alive())  # woken by the fifth put
        writer.join()
        assert q.depth() == 5


# -- with the real Flusher, Store and strategy ------------------------------------------------


@pytest.mark.parametrize("coalesce", [True, False])
def test_the_flusher_drains_concurrent_writers_into_the_store(make_queue, store, coalesce):
    knobs = WriteBehindKnobs(
        flush_interval_s=0.02, batch_size=16, capacity=50, backpressure="block", coalesce=coalesce, retry_backoff_s=0.01
    )
    q = make_queue(stream=None, **vars(knobs))
    flusher = Flusher(q, store, knobs)
    flusher.start()
    latest: dict[str, int] = {}

    def writer(n: int):
        rng = random.Random(n)
        for v in range(1, 101):
            key = f"k{rng.randrange(12)}"
            version = v * 8 + n  # distinct per writer, increasing per writer
            assert q.put((key, version, f"{key}@{version}"), True, 30)
            latest[f"{n}:{key}"] = version

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert flusher.drain(30)
    expected: dict[str, int] = {}
    for nk, version in latest.items():
        key = nk.split(":")[1]
        expected[key] = max(expected.get(key, 0), version)
    assert store_versions(store.path) == expected
    for key, version in expected.items():
        assert store.read(key) == (version, f"{key}@{version}")
    assert redis_queue_depth(q.url, q.stream) == 0
    assert flusher.failures == 0 and flusher.dead_letters == []
    if coalesce:
        assert store.rows_written < 400
    else:
        assert store.rows_written == 400


def test_the_durable_queue_coalesces_within_a_batch(make_queue, store):
    knobs = WriteBehindKnobs(coalesce=True, batch_size=100)
    q = make_queue(coalesce=True, batch_size=100)
    for v in range(1, 6):
        q.put(("k1", v, f"v{v}"), False, 0)
    assert q.depth() == 5  # in the stream as written
    Flusher(q, store, knobs).flush_once()
    assert store.rows_written == 1
    assert store.read("k1") == (5, "v5")
    assert q.depth() == 0


def test_write_behind_on_the_stream_acks_then_fails_softly_while_redis_is_down(make_queue, store, tmp_path, redis_srv):
    knobs = WriteBehindKnobs(coalesce=False)
    q = make_queue(coalesce=False)
    cache = CacheBackend(tmp_path / "cache", CacheKnobs(), Latency())
    health = Health()
    strategy = WriteBehind(cache, store, q, knobs, health)
    try:
        assert strategy.write("k", 1, "a") == ("ok", 1, True, None)
        assert q.take(10) == [("k", 1, "a")]
        redis_srv.kill()
        try:
            outcome, _, acked, detail = strategy.write("k", 2, "b")
        finally:
            redis_srv.start()
        assert (outcome, acked) == ("error", False) and "write queue push failed" in detail
        assert health.hard_failures == 0
        assert cache.get("k") == (1, "a")  # enqueue first: a failed write never touches the cache
        assert strategy.write("k", 3, "c") == ("ok", 3, True, None)  # the same objects work again
        assert q.take(10) == [("k", 3, "c")]  # the restarted server came back empty
    finally:
        cache.close()


# -- crashes ---------------------------------------------------------------------------------

WRITER = """
import os, signal, sys
sys.path.insert(0, sys.argv[1])
from cachestudio.engine.config import WriteBehindKnobs
from cachestudio.engine.redis_queue import RedisStreamQueue

q = RedisStreamQueue(sys.argv[2], sys.argv[3], WriteBehindKnobs(coalesce=False, capacity=10**9))
for v in range(1, 21):
    q.put((f"k{v % 3}", v, f"v{v}"), False, 0)
q.done(q.take(5))  # flushed
q.take(5)  # a batch being written when the node dies: never done
print("flushed 5", flush=True)
v = 21
while True:  # acknowledged writes, until the SIGKILL
    q.put((f"k{v % 3}", v, f"v{v}"), False, 0)
    print(v, flush=True)
    v += 1
"""


def test_a_new_incarnation_replays_what_a_sigkilled_writer_left(redis_srv, make_queue, store):
    """At-least-once: every acknowledged entry that was not done is replayed, in order,
    including the batch taken but not done; the store ends at each key's last version."""
    stream = stream_name()
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(ROOT), redis_srv.url, stream], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline() == "flushed 5\n"
        acked = 20
        while acked < 220:
            acked = int(child.stdout.readline())
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(10)
    assert child.returncode == -signal.SIGKILL
    q = make_queue(stream=stream, coalesce=False, batch_size=50)
    replay = q.take(10**6)
    last = replay[-1][1]
    assert last >= acked  # every acknowledged write is there (maybe one more: put, not yet said)
    assert replay == [(f"k{v % 3}", v, f"v{v}") for v in range(6, last + 1)]
    assert Flusher(q, store, WriteBehindKnobs(coalesce=False, batch_size=50)).drain()
    assert store_versions(store.path) == {f"k{v % 3}": v for v in range(last - 2, last + 1)}
    assert redis_queue_depth(redis_srv.url, stream) == 0


def test_a_killed_redis_is_a_soft_failure_and_the_queue_is_lost_without_persistence(redis_srv, make_queue, tmp_path):
    knobs = WriteBehindKnobs(flush_interval_s=0.02, batch_size=5, coalesce=False, retry_backoff_s=0.01)
    q = make_queue(flush_interval_s=0.02, batch_size=5, coalesce=False)
    for v in range(1, 11):
        q.put(("k", v, f"v{v}"), False, 0)
    batch = q.take(5)
    store = Store(tmp_path / "s.sqlite", StoreKnobs(), Latency())
    flusher = Flusher(q, store, knobs)
    redis_srv.kill()
    try:
        for call in (
            lambda: q.put(("k", 11, "v11"), False, 0),
            lambda: q.put(("k", 11, "v11"), True, 5),
            lambda: q.take(5),
            lambda: q.done(batch),
            lambda: redis_queue_depth(q.url, q.stream),
        ):
            with pytest.raises(QueueUnavailable) as failed:
                call()
            # at once: the connection was refused, no socket timeout waited out (nor retried with backoff)
            assert "Connection refused" in str(failed.value)
            assert not failed.value.hard
        assert q.depth() == 10  # a gauge: the last depth read, never an exception
        q.wait(0.05, 100)  # nor does the flusher's wait raise
        flusher.start()  # the flusher counts the failures and goes on trying
        wait_until(lambda: flusher.failures >= 2)
        assert store_versions(store.path) == {}
    finally:
        redis_srv.start()
    # No persistence: the server came back empty. Those ten writes were acknowledged and
    # are gone: they will never reach the store (lost writes, for the auditor).
    assert redis_queue_depth(redis_srv.url, q.stream) == 0
    assert q.depth() == 0 and q.take(10) == []
    assert q.put(("k", 12, "v12"), False, 0)  # the same object works again
    assert flusher.drain(30)
    assert store_versions(store.path) == {"k": 12}
    store.close()


def test_with_an_append_only_file_acknowledged_entries_survive_a_killed_redis(aof_srv, make_queue, store):
    # RedisServer fsyncs its AOF every second; fsync on each write makes every acknowledged
    # entry survive even an OS crash (a SIGKILL of the server alone keeps what was written
    # to the file anyway). A restarted server forgets CONFIG SET, which is fine here.
    import redis

    with redis.Redis(unix_socket_path=str(aof_srv.socket)) as admin:
        admin.config_set("appendfsync", "always")
    q = make_queue(url=aof_srv.url, coalesce=False)
    for v in range(1, 101):
        assert q.put((f"k{v % 7}", v, f"v{v}"), False, 0)
    q.done(q.take(30))
    q.take(10)  # taken, not done
    aof_srv.kill()
    with pytest.raises(QueueUnavailable):
        q.put(("k", 101, "x"), False, 0)
    aof_srv.start()
    again = make_queue(stream=q.stream, url=aof_srv.url, coalesce=False)
    assert again.take(1000) == [(f"k{v % 7}", v, f"v{v}") for v in range(31, 101)]
    assert Flusher(again, store, WriteBehindKnobs(coalesce=False)).drain()
    assert store_versions(store.path) == {f"k{v % 7}": v for v in range(94, 101)}
