"""Faults that really happen: hot-key stampede and its protection (single-flight, lease),
the cache-aside stale-set race, DB outage, slow DB and slow cache, cold cache. Real
diskcache, real SQLite, real lab processes where the runner is involved."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers import drive, wait_until

from cachestudio.engine.backends import CacheBackend, Store, cache_versions, store_versions
from cachestudio.engine.config import CacheKnobs, LaneConfig, Latency, StoreKnobs, Workload
from cachestudio.engine.lab import Lab, LanePaths
from cachestudio.engine.runner import Plan, Run, run
from cachestudio.engine.strategies import CacheAside

READERS = 24


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# ---------------------------------------------------------------------------- stampede


@pytest.mark.parametrize("strategy", ["cache-aside", "write-through", "write-behind"])
@pytest.mark.parametrize("mode, db_reads", [("none", READERS), ("single-flight", 1), ("lease", 1)])
def test_stampede_of_a_hot_key_costs_n_db_reads_without_protection_and_one_with(tmp_path, strategy, mode, db_reads):
    # The hot key's DB read is slow (injected), so every reader misses before anyone fills.
    cfg = LaneConfig(strategy=strategy, cache=CacheKnobs(stampede=mode), latency=Latency(db_read_ms=300))
    paths = LanePaths(tmp_path / "lane")
    lab = Lab(cfg, paths)
    try:
        lab.store.write("k0", 5, "hot value")
        lab.cache.set("k0", 5, "hot value")
        before = lab.store.reads
        done = []
        lab.stampede(READERS, reply=done.append).join(timeout=30)
        assert lab.store.reads - before == db_reads
        assert done == [
            {
                "key": "k0",
                "readers": READERS,
                "protection": mode,
                "db_reads": db_reads,
                "errors": 0,
                "not_started": 0,
                "expire_failed": "",
                "max_ms": done[0]["max_ms"],
            }
        ]
        assert lab.cache.get("k0") == (5, "hot value")
    finally:
        lab.close()
    recs = [r for r in lines(paths.history_file(0)) if (r["detail"] or "").startswith("stampede")]
    assert len(recs) == READERS
    assert all(r["version"] == 5 and r["acked"] for r in recs)  # everyone got the value
    assert sum(r["outcome"] == "miss" for r in recs) == db_reads
    assert len({r["id"] for r in recs}) == READERS  # ids from the operation stream: unique
    if mode != "none":
        waited = [r for r in recs if r["outcome"] == "hit"]
        assert len(waited) == READERS - 1 and all("waited" in r["detail"] for r in waited)


def test_a_waiter_takes_over_when_the_lock_holder_fails(tmp_path):
    """A holder whose DB read fails gives its lock back; a waiter fetches instead."""
    cache = CacheBackend(tmp_path / "cache", CacheKnobs(stampede="single-flight", lease_ttl_s=5), Latency())
    store = Store(tmp_path / "store.sqlite", StoreKnobs(), Latency())
    try:
        store.write("k0", 3, "v")
        held, token = cache.get_or_lease("k0")
        assert held is None and token
        assert cache.get_or_lease("k0") == (None, None)  # someone holds it: wait
        cache.release("k0", token)  # the holder failed and gave it back
        result = CacheAside(cache, store).read("k0")
        assert result[:3] == ("miss", 3, True)
        assert cache.get("k0") == (3, "v")
    finally:
        cache.close()
        store.close()


# ---------------------------------------------------------------------- stale-set race


@pytest.mark.parametrize("mode, cached_after", [("none", 1), ("single-flight", 1), ("lease", None)])
def test_the_stale_set_race_step_by_step(tmp_path, mode, cached_after):
    """Reader misses and reads v1; a write of v2 commits and invalidates; the reader sets.
    Without a lease the cache ends at v1 behind the store's v2 (stale cache); the lease
    holder's set is refused because the write invalidated its lease."""
    knobs = CacheKnobs(stampede=mode)
    cache = CacheBackend(tmp_path / "cache", knobs, Latency())
    store = Store(tmp_path / "store.sqlite", StoreKnobs(), Latency())
    try:
        store.write("k", 1, "one")
        held, token = cache.get_or_lease("k") if mode != "none" else (cache.get("k"), None)
        assert held is None
        row = store.read("k")  # the reader's DB read: v1
        CacheAside(cache, store).write("k", 2, "two")  # the writer: DB v2, then delete
        if mode == "lease":
            assert cache.set_leased("k", token, *row) is False
        else:
            cache.set("k", *row)
            if token:
                cache.release("k", token)
        cached = cache.get("k")
        assert (cached[0] if cached else None) == cached_after
        assert store_versions(tmp_path / "store.sqlite") == {"k": 2}
    finally:
        cache.close()
        store.close()


def race_run(tmp_path: Path, mode: str) -> dict:
    """Cache-aside, many concurrent clients on few keys, slow DB reads (injected)."""
    cfg = LaneConfig(
        strategy="cache-aside",
        seed=5,
        workload=Workload(rate=0, read_ratio=0.6, keys=4, distribution="uniform", concurrency=8),
        cache=CacheKnobs(stampede=mode),
        latency=Latency(db_read_ms=6),
    )
    return run(Plan(lanes=[cfg], duration_s=4.0, run_dir=tmp_path / mode))


def test_the_stale_set_race_under_load_is_found_without_leases_and_never_with(tmp_path):
    without = race_run(tmp_path, "none")["lanes"][0]
    with_leases = race_run(tmp_path, "lease")["lanes"][0]
    a = without["anomalies"]
    assert a["stale_reads"] > 0, "the race must show: reads served the older version after a write"
    assert a["stale_cache"] + a["stale_reads"] > 0
    assert with_leases["anomalies"]["stale_reads"] == 0
    assert with_leases["anomalies"]["stale_cache"] == 0
    # and at rest, recomputed from the files: no cached version behind the store's
    store = store_versions(tmp_path / "lease" / "cache-aside" / "store.sqlite")
    cached = cache_versions(tmp_path / "lease" / "cache-aside" / "cache")
    assert [k for k, v in cached.items() if v < store.get(k, 0)] == []


# ---------------------------------------------------------------------------- outage


def test_outage_write_through_leaves_dirty_cache_cache_aside_serves_hits_and_fails_misses(tmp_path):
    w = Workload(rate=1500, read_ratio=0.6, keys=300, distribution="uniform")
    fast_fail = StoreKnobs(timeout_ms=20)  # a locked DB fails a call after 20 ms
    lanes = [
        LaneConfig(strategy="write-through", workload=w, store=fast_fail, seed=3),
        LaneConfig(strategy="cache-aside", workload=w, store=fast_fail, seed=3),
    ]
    root = tmp_path / "run"
    # The outage lasts to the end of the run: no later write can repair a dirty entry.
    summary = run(Plan(lanes=lanes, duration_s=2.0, outages=[(0.8, 1.2)], run_dir=root))
    ev = {e["kind"]: e["start"] for e in summary["events"]}
    t0, t1 = ev["outage-start"], ev["outage-end"]

    wt = lines(root / "write-through" / "history" / "inc-0000.jsonl")
    failed = [r for r in wt if r["kind"] == "write" and r["outcome"] == "error" and t0 <= r["start"] < t1]
    assert failed, "write-through writes must fail during the outage"
    # Cache set first, DB write failed: the cache holds versions the store never committed.
    store = store_versions(root / "write-through" / "store.sqlite")
    cache = cache_versions(root / "write-through" / "cache")
    dirty = {k for k, v in cache.items() if v > store.get(k, 0)}
    assert dirty
    wt_summary = summary["lanes"][0]
    assert wt_summary["anomalies"]["dirty_cache"] == len(dirty)
    named = {a["key"] for a in wt_summary["anomaly_list"] if a["kind"] == "dirty_cache"}
    assert named == dirty

    ca = lines(root / "cache-aside" / "history" / "inc-0000.jsonl")
    during = [r for r in ca if r["kind"] == "read" and t0 + 0.05 <= r["start"] and r["end"] < t1]
    assert any(r["outcome"] == "hit" and r["acked"] for r in during)
    assert any(r["outcome"] == "error" for r in during)
    assert not any(r["outcome"] == "miss" for r in during)  # no miss can be answered


# ---------------------------------------------------------- timeline faults, headless


def test_every_timeline_fault_is_real_and_in_the_history(tmp_path):
    cfg = LaneConfig(
        strategy="cache-aside",
        seed=9,
        cache=CacheKnobs(stampede="lease"),
        workload=Workload(rate=800, read_ratio=0.9, keys=50),
    )
    root = tmp_path / "run"
    summary = run(
        Plan(
            lanes=[cfg],
            duration_s=4.0,
            slow_db=[(0.5, 0.6, 40.0)],
            slow_cache=[(1.3, 0.5, 15.0)],
            cold_at=[2.0],
            stampedes=[(2.3, 30)],
            bursts=[(3.0, "read", 300)],
            run_dir=root,
        )
    )
    kinds = [e["kind"] for e in summary["events"]]
    for kind in (
        "slow-db-start",
        "slow-db-end",
        "slow-cache-start",
        "slow-cache-end",
        "cold-cache",
        "stampede",
        "stampede-done",
        "burst",
        "burst-end",
    ):
        assert kind in kinds
    events = {e["kind"]: e for e in summary["events"]}
    assert events["slow-db-start"]["injected"] and events["slow-cache-start"]["injected"]
    recs = lines(root / "cache-aside" / "history" / "inc-0000.jsonl")
    t = {k: events[k]["start"] for k in events}
    # One DB read per lease: the holder's, and one more for each write to k0 meanwhile (a
    # write invalidates the lease: the holder's value is not cached, a waiter takes a new one).
    found = re.search(
        r"30 readers of k0 caused (\d+) DB reads? \(protection: lease\)", events["stampede-done"]["detail"]
    )
    writes = sum(
        1
        for r in recs
        if r["kind"] == "write"
        and r["key"] == "k0"
        and t["stampede"] - 0.1 <= r["end"]
        and r["start"] <= t["stampede-done"]
    )
    assert found and int(found.group(1)) <= 1 + writes, (events["stampede-done"]["detail"], writes)

    def slowest(kind, outcome, lo, hi):
        got = [
            r["end"] - r["start"]
            for r in recs
            if r["kind"] == kind and r["outcome"] == outcome and lo <= r["start"] and r["end"] <= hi
        ]
        return max(got, default=0.0)

    assert slowest("read", "miss", t["slow-db-start"], t["slow-db-end"]) >= 0.040
    assert slowest("read", "hit", t["slow-cache-start"], t["slow-cache-end"]) >= 0.015
    assert slowest("read", "hit", t["slow-cache-end"] + 0.1, t["cold-cache"]) < 0.015  # healed
    after_cold = [r for r in recs if r["kind"] == "read" and t["cold-cache"] < r["start"] < t["cold-cache"] + 0.1]
    assert any(r["outcome"] == "miss" for r in after_cold)
    # what each fault did: one window per fault, in order, with the lane's figures
    report = summary["faults"]
    assert [f["kind"] for f in report] == ["slow-db-start", "slow-cache-start", "cold-cache", "stampede", "burst"]
    assert report[-1]["end"] == t["burst-end"] > report[-1]["start"]
    burst_reads = [r for r in recs if r["kind"] == "read" and t["burst"] <= r["start"] < t["burst-end"]]
    assert len(burst_reads) >= 300  # the burst's reads, and the paced ones around them
    slow = report[0]
    assert slow["start"] == t["slow-db-start"] and slow["end"] == t["slow-db-end"]
    assert slow["lanes"]["cache-aside"]["read_p99_ms"] >= 40.0  # the injected 40 ms shows
    inside = [r for r in recs if slow["start"] <= r["start"] < slow["end"]]
    assert slow["lanes"]["cache-aside"]["ops"] == len(inside)


def test_heal_ends_every_fault_at_once(tmp_path):
    cfg = LaneConfig(
        strategy="write-behind", seed=2, workload=Workload(rate=500, keys=50), latency=Latency(db_read_ms=1.0)
    )
    r = Run(Plan(lanes=[cfg], duration_s=30, run_dir=tmp_path / "run"))
    try:
        r.start()
        r.outage_start(20)
        r.slow_db(50)
        r.slow_cache(20)
        drive(r, r.now() + 0.2)
        r.heal()
        assert not r.outage_on and r.slow_db_ms == 0 and r.slow_cache_ms == 0
        assert r.lanes[0].cfg.latency == Latency(db_read_ms=1.0)  # back to what was configured
        written = r.lanes[0].totals()["db_writes"]
        wait_until(lambda: (r.tick() or True) and r.lanes[0].totals()["db_writes"] > written + 20)  # flushing again
        r.finish()
    finally:
        r.abort()
        r.cleanup()
