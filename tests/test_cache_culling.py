"""Who culls the cache (issue 15): a small cache on every set, as diskcache does by
default (its evictions are what a lesson shows); a roomy one on a background thread, so a
set does less SQL. Either way the limit and the TTL hold. Real diskcache directories."""

from __future__ import annotations

import pytest
from helpers import wait_until
from hypothesis import given
from hypothesis import strategies as st

from cachestudio.engine.backends import AUTO_CULL_BELOW_MB, CacheBackend, cull_limit
from cachestudio.engine.config import CacheKnobs, Latency


@given(st.floats(0.01, 4096.0))
def test_only_a_cache_of_at_least_the_threshold_leaves_culling_to_the_background(size_mb):
    assert (cull_limit(CacheKnobs(size_limit_mb=size_mb)) == 0) == (size_mb >= AUTO_CULL_BELOW_MB)


def test_a_roomy_cache_culls_expired_entries_in_the_background(tmp_path):
    cache = CacheBackend(tmp_path / "c", CacheKnobs(size_limit_mb=1024, ttl_s=0.05), Latency())
    cache.start_culler()
    try:
        assert cache.cache.cull_limit == 0
        for i in range(200):
            cache.set(f"k{i}", 1, "v")
        wait_until(lambda: len(cache.cache) == 0)  # nobody sets any more: only the culler removes them
        assert all(cache.get(f"k{i}") is None for i in range(200))
    finally:
        cache.stop_culler()
        cache.close()


def test_a_small_cache_still_evicts_on_the_set_that_fills_it(tmp_path):
    cache = CacheBackend(tmp_path / "c", CacheKnobs(size_limit_mb=0.1), Latency())  # no culler started
    try:
        assert cache.cache.cull_limit == 10
        for i in range(3000):
            cache.set(f"k{i}", 1, "x" * 100)
        assert len(cache.cache) < 3000  # evicted by the sets themselves (no culler runs)
        assert cache.get("k0") is None and cache.get("k2999") == (1, "x" * 100)
    finally:
        cache.close()


@pytest.mark.parametrize("before, after", [(1024.0, 0.1), (0.1, 1024.0)])
def test_a_size_limit_changed_live_changes_who_culls(tmp_path, before, after):
    cache = CacheBackend(tmp_path / "c", CacheKnobs(size_limit_mb=before), Latency())
    try:
        cache.apply(CacheKnobs(size_limit_mb=after))
        assert cache.cache.cull_limit == cull_limit(CacheKnobs(size_limit_mb=after))
    finally:
        cache.close()
