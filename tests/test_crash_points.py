"""Twenty seeded crash points in a row, each a real SIGKILL of the lab, each followed by
a restart and more writes to the same keys.

For each kill, the test itself reads the SQLite file right after the kill (before the
node comes back) and the killed incarnation's history file; from those alone it computes
which acknowledged writes can never arrive. Only then does it compare with the auditor,
record by record. Later writes to the same keys (the node comes back and goes on) must
not hide a loss.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from helpers import drive, wait_until

from cachestudio.engine.backends import store_versions
from cachestudio.engine.config import LaneConfig, Workload, WriteBehindKnobs
from cachestudio.engine.runner import Plan, Run

CRASHES = 20
WORKLOAD = Workload(rate=1500, read_ratio=0.5, keys=200, distribution="zipf", zipf_s=1.0)


def lane(strategy: str, durable: bool = False) -> LaneConfig:
    knobs = WriteBehindKnobs(flush_interval_s=0.3, batch_size=200, durable=durable)
    return LaneConfig(strategy=strategy, workload=WORKLOAD, write_behind=knobs, seed=11)


def acked_in(path: Path) -> list[dict]:
    if not path.exists():
        return []
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    return [r for r in recs if r["kind"] == "write" and r["acked"]]


def crash_many(tmp_path: Path, lanes: list[LaneConfig], seed: int):
    """CRASHES kills at seeded moments; returns (root, per-kill facts, summary, anomalies)."""
    rng = random.Random(seed)
    root = tmp_path / "run"
    anomalies = {c.strategy: [] for c in lanes}

    def on_records(i, _records, found):
        anomalies[lanes[i].strategy].extend(found)

    run = Run(Plan(lanes=lanes, duration_s=3600, restart_delay_s=0.05, run_dir=root), on_records=on_records)
    kills = []  # (strategy -> (incarnation killed, store versions right after the kill))
    try:
        run.start()
        for _ in range(CRASHES):
            wait_until(lambda: (run.tick() or True) and all(ln.state == "running" for ln in run.lanes), timeout=30)
            drive(run, run.now() + rng.uniform(0.2, 0.6))
            run.crash()
            kills.append({ln.cfg.strategy: (ln.inc, store_versions(ln.paths.store)) for ln in run.lanes})
        wait_until(lambda: (run.tick() or True) and all(ln.state == "running" for ln in run.lanes), timeout=30)
        drive(run, run.now() + 0.3)
        summary = run.finish()
    finally:
        run.abort()
        run.cleanup()
    return root, kills, summary, anomalies


def expected_losses(root: Path, strategy: str, kills: list[dict]) -> list[set[str]]:
    """Per kill: ids of the acknowledged writes of the killed incarnation that the store
    did not hold right after the kill (store versions only grow: they can never arrive)."""
    out = []
    for kill in kills:
        inc, store = kill[strategy]
        hist = root / strategy / "history" / f"inc-{inc:04d}.jsonl"
        out.append({r["id"] for r in acked_in(hist) if r["version"] > store.get(r["key"], 0)})
    return out


def lost_ids(anomalies: list) -> set[str]:
    return {rid for a in anomalies if a.kind == "lost_write" for rid in a.records}


def test_volatile_write_behind_loses_exactly_what_was_unflushed_at_each_kill(tmp_path):
    root, kills, summary, anomalies = crash_many(tmp_path, [lane("write-behind", durable=False)], seed=20)
    per_kill = expected_losses(root, "write-behind", kills)
    assert sum(1 for ids in per_kill if ids) >= CRASHES // 2, "most kills must find writes still queued"
    expected = set().union(*per_kill)
    assert lost_ids(anomalies["write-behind"]) == expected
    assert summary["lanes"][0]["anomalies"]["lost_writes"] == len(expected)
    # The node came back each time and wrote the same keys again: the final store alone
    # would hide many of these losses (the reason the auditor judges at each kill).
    final = store_versions(root / "write-behind" / "store.sqlite")
    lost_records = [
        r
        for f in sorted((root / "write-behind" / "history").glob("inc-*.jsonl"))
        for r in acked_in(f)
        if r["id"] in expected
    ]
    assert any(r["version"] <= final.get(r["key"], 0) for r in lost_records)


def test_durable_write_behind_write_through_and_cache_aside_lose_nothing(tmp_path):
    lanes = [lane("cache-aside"), lane("write-through"), lane("write-behind", durable=True)]
    root, kills, summary, anomalies = crash_many(tmp_path, lanes, seed=21)
    queued_at_kill = expected_losses(root, "write-behind", kills)
    assert sum(1 for ids in queued_at_kill if ids) >= CRASHES // 2, "the durable queue must hold writes at kills"
    for cfg, lane_summary in zip(lanes, summary["lanes"]):
        strategy = cfg.strategy
        final = store_versions(root / strategy / "store.sqlite")
        acked = [r for f in sorted((root / strategy / "history").glob("inc-*.jsonl")) for r in acked_in(f)]
        assert acked
        assert [r["id"] for r in acked if r["version"] > final.get(r["key"], 0)] == []
        assert lost_ids(anomalies[strategy]) == set()
        assert lane_summary["anomalies"]["lost_writes"] == 0
        if strategy != "write-behind":  # synchronous: nothing acknowledged is missing at any kill
            assert expected_losses(root, strategy, kills) == [set()] * CRASHES
