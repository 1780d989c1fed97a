"""RedisCache and PostgresStore, drop-ins for the diskcache cache and the SQLite store,
on real throw-away servers (servers.py, started once for this module): what only they
have -- the lock timeout of an outage, the version guard, TTL and eviction settings,
leases and single-flight, crashed servers. The strategies' flows run on them in
test_strategies.py, with the embedded backends.

Without redis-server or PostgreSQL these tests are skipped (a failure under CI=true)."""

from __future__ import annotations

import itertools
import threading

import pytest
from helpers import pg_outage, wait_until
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cachestudio.engine.backends import LEASE, CacheUnavailable, StoreUnavailable, Writer
from cachestudio.engine.config import CacheKnobs
from cachestudio.engine.pg_store import pg_store_versions
from cachestudio.engine.redis_cache import redis_cache_versions
from cachestudio.engine.strategies import CacheAside

_names = itertools.count(1)


@pytest.fixture
def cache(make_redis_cache):
    return make_redis_cache()


@pytest.fixture
def store(make_pg_store):
    return make_pg_store()


# -- outages ------------------------------------------------------------------------------


def test_outage_lock_fails_reads_and_writes_within_the_timeout_then_they_succeed(make_pg_store, pg_srv):
    store = make_pg_store(timeout_ms=100)
    store.write("k", 1, "a")
    with pg_outage(pg_srv.conninfo, store.table):
        for call in (
            lambda: store.read("k"),
            lambda: store.write("k", 2, "b"),
            lambda: store.write_batch([("k", 3, "c"), ("j", 1, "d")]),
        ):
            with pytest.raises(StoreUnavailable) as failed:
                call()
            # the server's lock_timeout (timeout_ms) ended the wait, not the statement timeout
            assert not failed.value.hard and "lock timeout" in str(failed.value)
    assert store.read("k") == (1, "a")  # nothing landed: the batch was all or nothing
    assert store.write("k", 2, "b") is True
    store.write_batch([("k", 3, "c"), ("j", 1, "d")])
    assert pg_store_versions(pg_srv.conninfo, store.table) == {"k": 3, "j": 1}


# -- the version guard -----------------------------------------------------------------


def test_an_older_version_never_overwrites_a_newer_one(store):
    assert store.write("k", 5, "five") is True
    assert store.write("k", 3, "three") is False
    assert store.write("k", 5, "again") is False  # same version: unchanged
    assert store.read("k") == (5, "five")
    store.write_batch([("k", 4, "four"), ("j", 2, "b"), ("j", 1, "a")])  # a key twice in one batch
    assert store.read("k") == (5, "five")
    assert store.read("j") == (2, "b")
    store.write_batch([("k", 6, "six")])
    assert store.read("k") == (6, "six")
    assert store.read("absent") is None


_ops = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.sampled_from("abc"), st.integers(1, 20)),
        st.tuples(st.just("batch"), st.lists(st.tuples(st.sampled_from("abc"), st.integers(1, 20)), max_size=5)),
    ),
    max_size=12,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_ops)
def test_any_interleaving_of_versions_keeps_the_highest(store, ops):
    run = f"r{next(_names)}-"
    model: dict[str, int] = {}
    for op in ops:
        if op[0] == "write":
            _, key, version = op
            changed = store.write(run + key, version, f"{key}{version}")
            assert changed == (version > model.get(key, 0))
            model[key] = max(version, model.get(key, 0))
        else:
            store.write_batch([(run + key, version, f"{key}{version}") for key, version in op[1]])
            for key, version in op[1]:
                model[key] = max(version, model.get(key, 0))
    for key in "abc":
        expected = model.get(key)
        assert store.read(run + key) == (None if expected is None else (expected, f"{key}{expected}"))


# -- cache semantics: TTL, clear, eviction config, bad entries ---------------------------


def test_ttl_expires_an_entry_and_no_ttl_keeps_it(make_redis_cache):
    cache = make_redis_cache(ttl_s=0.05)
    cache.set("k", 1, "a")
    assert cache.client.pttl(cache.prefix + "k") > 0
    wait_until(lambda: cache.get("k") is None)
    forever = make_redis_cache()
    forever.set("k", 1, "a")
    assert forever.client.pttl(forever.prefix + "k") == -1


def test_clear_deletes_only_this_caches_keys(make_redis_cache, redis_srv):
    mine, other = make_redis_cache(), make_redis_cache()
    for cache in (mine, other):
        cache.set("a", 1, "x")
        cache.set("b*", 2, "y")
    mine.clear()
    assert redis_cache_versions(redis_srv.url, mine.prefix) == {}
    assert redis_cache_versions(redis_srv.url, other.prefix) == {"a": 1, "b*": 2}


@pytest.mark.parametrize(
    "eviction, policy",
    [
        ("least-recently-stored", "allkeys-lru"),
        ("least-recently-used", "allkeys-lru"),
        ("least-frequently-used", "allkeys-lfu"),
        ("none", "noeviction"),
    ],
)
def test_size_limit_and_eviction_map_onto_the_server_config(cache, eviction, policy):
    cache.apply(CacheKnobs(size_limit_mb=64, eviction=eviction))
    assert cache.client.config_get("maxmemory")["maxmemory"] == str(64 * 2**20)
    assert cache.client.config_get("maxmemory-policy")["maxmemory-policy"] == policy
    cache.apply(CacheKnobs())


def test_a_cache_on_a_given_server_never_changes_its_config(make_redis_cache, redis_srv):
    """On a server the run was given, the size and eviction knobs set nothing: its own
    settings stay, at the start, through knob changes and calls alike."""
    import redis

    with redis.Redis.from_url(redis_srv.url) as client:
        before = client.config_get("*")
    cache = make_redis_cache(configure=False, size_limit_mb=3, eviction="least-frequently-used")
    cache.apply(CacheKnobs(size_limit_mb=5, eviction="least-recently-used"))
    cache.set("k", 1, "a")
    assert cache.get("k") == (1, "a")
    with redis.Redis.from_url(redis_srv.url) as client:
        assert client.config_get("*") == before


def test_an_entry_that_is_not_a_versioned_value_is_a_hard_failure(cache):
    cache.client.set(cache.prefix + "k", "garbage")
    with pytest.raises(CacheUnavailable) as failed:
        cache.get("k")
    assert failed.value.hard


# -- leases and single-flight ------------------------------------------------------------


def test_a_write_during_a_lease_invalidates_it(make_redis_cache):
    cache = make_redis_cache(stampede="lease")
    held, token = cache.get_or_lease("k")
    assert held is None and token
    assert cache.get_or_lease("k") == (None, None)  # someone is fetching
    cache.delete("k")  # a writer's invalidation drops the lease too
    assert cache.set_leased("k", token, 1, "stale") is False
    assert cache.get("k") is None
    held, token = cache.get_or_lease("k")
    cache.set("k", 2, "new")  # a writer's set, same
    assert cache.set_leased("k", token, 1, "stale") is False
    assert cache.get("k") == (2, "new")


def test_a_valid_lease_lands_once_and_release_needs_the_token(make_redis_cache):
    cache = make_redis_cache(stampede="lease", lease_ttl_s=5)
    _, token = cache.get_or_lease("k")
    cache.release("k", "not-the-token")
    assert cache.get_or_lease("k") == (None, None)  # still held
    assert cache.set_leased("k", token, 1, "one") is True
    assert cache.client.exists(cache.prefix + LEASE + "k") == 0
    assert cache.get_or_lease("k") == ((1, "one"), None)
    _, token = cache.get_or_lease("j")
    cache.release("j", token)
    assert cache.get_or_lease("j")[1] is not None  # free again


def test_a_lease_expires_after_lease_ttl(make_redis_cache):
    cache = make_redis_cache(stampede="lease", lease_ttl_s=0.05)
    assert cache.get_or_lease("k")[1]
    wait_until(lambda: cache.get_or_lease("k")[1] is not None)


@pytest.mark.parametrize("mode", ["single-flight", "lease"])
def test_only_one_of_many_concurrent_readers_gets_the_token(make_redis_cache, mode):
    cache = make_redis_cache(stampede=mode, lease_ttl_s=10)
    n = 16
    barrier = threading.Barrier(n)
    tokens: list = []

    def reader():
        barrier.wait()
        tokens.append(cache.get_or_lease("hot")[1])

    threads = [threading.Thread(target=reader) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(tokens) == n
    assert len([t for t in tokens if t is not None]) == 1


@pytest.mark.parametrize("mode", ["single-flight", "lease"])
def test_protected_read_flow_fills_the_cache_and_frees_the_key(make_redis_cache, store, mode):
    cache = make_redis_cache(stampede=mode)
    store.write("k", 7, "seven")
    strategy = CacheAside(cache, store)
    assert strategy.read("k") == ("miss", 7, True, None)
    assert cache.get("k") == (7, "seven")
    assert cache.client.exists(cache.prefix + LEASE + "k") == 0
    assert strategy.read("k")[:3] == ("hit", 7, True)


def test_client_threads_share_one_cache_and_one_store(cache, store):
    """A connection per thread (the store), a shared pool (the cache): concurrent
    guarded writes end at each key's highest version, in both."""

    def writer(n: int):
        for v in range(1, 21):
            version = v * 8 + n
            store.write(f"k{v % 4}", version, f"{version}")
            cache.set(f"k{v % 4}", version, f"{version}")
        store.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(4):
        top = max(v * 8 + n for v in range(1, 21) if v % 4 == k for n in range(8))
        assert store.read(f"k{k}") == (top, str(top))
        assert cache.get(f"k{k}") is not None  # the last set wins in a cache: no guard there
    assert store.rows_written == 160


# -- crashed servers ----------------------------------------------------------------------


def test_a_killed_redis_is_a_counted_failure_and_the_same_cache_works_after_restart(make_redis_cache, redis_srv):
    cache = make_redis_cache(stampede="lease", size_limit_mb=512, eviction="least-frequently-used")
    cache.set("k", 1, "a")
    redis_srv.kill()
    try:
        for call in (
            lambda: cache.get("k"),
            lambda: cache.set("k", 2, "b"),
            lambda: cache.delete("k"),
            lambda: cache.get_or_lease("k"),
            lambda: cache.set_leased("k", "t", 1, "a"),
            cache.clear,
        ):
            with pytest.raises(CacheUnavailable) as failed:
                call()
            # at once: the connection was refused, no socket timeout waited out (nor retried with backoff)
            assert "Connection refused" in str(failed.value)
            assert not failed.value.hard
        cache.release("k", "t")  # swallowed: a lease expires on its own
        assert CacheAside(cache, None).read("k")[0] == "error"
    finally:
        redis_srv.start()
    assert cache.get("k") is None  # no appendonly: it came back empty
    cache.set("k", 3, "c")
    assert cache.get("k") == (3, "c")
    # the restarted server forgot CONFIG SET: the cache applied it again
    assert cache.client.config_get("maxmemory")["maxmemory"] == str(512 * 2**20)
    assert cache.client.config_get("maxmemory-policy")["maxmemory-policy"] == "allkeys-lfu"
    assert cache.get_or_lease("j")[1] is not None  # the scripts are loaded again
    cache.apply(CacheKnobs())


@pytest.mark.parametrize("how", ["kill", "stop"])
def test_a_down_postgres_is_a_counted_failure_and_the_same_store_works_after_restart(make_pg_store, pg_srv, how):
    store = make_pg_store()
    store.write("k", 1, "a")
    getattr(pg_srv, how)()
    try:
        for call in (
            lambda: store.read("k"),
            lambda: store.write("k", 2, "b"),
            lambda: store.write_batch([("k", 2, "b")]),
        ):
            with pytest.raises(StoreUnavailable) as failed:
                call()
            assert not failed.value.hard
    finally:
        pg_srv.start()
    assert store.read("k") == (1, "a")  # committed before the crash: the WAL kept it
    assert store.write("k", 2, "b") is True
    store.write_batch([("k", 3, "c")])
    assert store.read("k") == (3, "c")


def test_the_first_call_after_a_restart_succeeds_on_an_idle_connection(cache, store, redis_srv, pg_srv):
    """A pooled connection the restart broke is found out by the next call, which
    reconnects once and succeeds: a restart that nobody called during costs no failure."""
    cache.set("k", 1, "a")
    store.write("k", 1, "a")
    redis_srv.kill()
    redis_srv.start()
    pg_srv.kill()
    pg_srv.start()
    assert cache.get("k") is None  # came back empty: but no failure
    assert store.read("k") == (1, "a")
    assert store.write("k", 2, "b") is True


# -- the auditor's views ------------------------------------------------------------------


def test_versions_are_what_was_written(make_redis_cache, store, redis_srv, pg_srv):
    cache = make_redis_cache(stampede="lease")
    cache.set("a", 3, "x")
    cache.set("b", 1, "y|with a bar")
    cache.get_or_lease("c")  # a lease is not an entry
    assert redis_cache_versions(redis_srv.url, cache.prefix) == {"a": 3, "b": 1}
    store.write("a", 2, "x")
    store.write_batch([("b", 5, "y"), ("c", 1, "z")])
    assert pg_store_versions(pg_srv.conninfo, store.table) == {"a": 2, "b": 5, "c": 1}
    assert pg_store_versions(pg_srv.conninfo, "no_such_table") == {}


# -- the commit log's copy at the end ----------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2])
def test_a_long_commit_log_is_copied_in_its_order_within_the_end_bound(make_pg_store, pg_srv, seed):
    """A long run's log (a row per write) and a few deaths: the end's copy puts every commit
    on the side of each death PostgreSQL saw it on, and is not quadratic in the log (a 12 s
    lesson's copy hit the statement timeout when each commit scanned the whole log)."""
    import random

    from cachestudio.engine.pg_store import pg_commit_rows, pg_connect, pg_mark_death

    rng = random.Random(seed)
    store = make_pg_store()
    with pg_connect(pg_srv.conninfo, timeout_ms=5000) as conn:
        written, deaths = 0, []
        for part in range(3):
            n = rng.randrange(8_000, 12_000)
            store.write_batch([(f"k{rng.randrange(5_000)}", written + i + 1, "v") for i in range(n)])
            written += n
            deaths.append(written)  # every version up to here is before this death
            pg_mark_death(conn, Writer("lane", part, part), table=store.table)
        rows = pg_commit_rows(conn, table=store.table)  # within the 5 s statement timeout
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1))
    seen_deaths = 0
    for _seq, kind, _key, version, *_ in rows:
        if kind == "death":
            seen_deaths += 1
        else:
            assert (seen_deaths == 0 or version > deaths[seen_deaths - 1]) and version <= deaths[seen_deaths]
    assert seen_deaths == 3
