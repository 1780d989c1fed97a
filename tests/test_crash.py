"""Crashes of the cache node: real lab processes, real SIGKILL, real files.

What was lost is computed here from the SQLite file and the history files alone, and
only then compared with what the auditor says.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import drive, wait_until

from cachestudio.engine.backends import store_versions
from cachestudio.engine.config import LaneConfig, Workload, WriteBehindKnobs
from cachestudio.engine.runner import Plan, Run

WORKLOAD = Workload(rate=2000, read_ratio=0.5, keys=100, distribution="uniform")


def lane(strategy: str, seed: int = 1, **wb) -> LaneConfig:
    knobs = WriteBehindKnobs(flush_interval_s=0.5, batch_size=500, **wb)
    return LaneConfig(strategy=strategy, workload=WORKLOAD, write_behind=knobs, seed=seed)


def history(root: Path, strategy: str) -> list[dict]:
    records = []
    for f in sorted((root / strategy / "history").glob("inc-*.jsonl")):
        records += [json.loads(line) for line in f.read_text().splitlines()]
    return records


def acked_writes(records: list[dict]) -> set[tuple[str, int]]:
    return {(r["key"], r["version"]) for r in records if r["kind"] == "write" and r["acked"]}


def newer_than(writes: set[tuple[str, int]], store: dict[str, int]) -> set[tuple[str, int]]:
    return {(k, v) for k, v in writes if v > store.get(k, 0)}


def crash_and_finish(tmp_path: Path, lanes: list[LaneConfig], crash_at: float, duration: float = 2.5):
    """Run, kill the node at ``crash_at``, keep it down to the end, drain; return files."""
    root = tmp_path / "run"
    run = Run(Plan(lanes=lanes, duration_s=duration, restart_delay_s=600, run_dir=root))
    try:
        run.start()
        drive(run, crash_at)
        run.crash()
        at_kill = {c.strategy: store_versions(root / c.strategy / "store.sqlite") for c in lanes}
        drive(run, duration)
        summary = run.finish()
    finally:
        run.abort()
        run.cleanup()
    return root, at_kill, summary


@pytest.mark.parametrize("crash_at", [1.1, 1.7])
def test_volatile_queue_loses_exactly_the_acked_writes_not_flushed_at_the_kill(tmp_path, crash_at):
    cfg = lane("write-behind", seed=int(crash_at * 10), durable=False)
    root, at_kill, summary = crash_and_finish(tmp_path, [cfg], crash_at)
    records = history(root, "write-behind")
    acked = acked_writes(records)
    unflushed_at_kill = newer_than(acked, at_kill["write-behind"])
    lost = newer_than(acked, store_versions(root / "write-behind" / "store.sqlite"))
    assert unflushed_at_kill, "the test needs acknowledged writes still queued at the kill"
    assert lost == unflushed_at_kill
    assert summary["lanes"][0]["anomalies"]["lost_writes"] == len(lost)


@pytest.mark.parametrize("crash_at", [1.1, 1.7])
def test_durable_queue_loses_no_acknowledged_write(tmp_path, crash_at):
    cfg = lane("write-behind", seed=int(crash_at * 10), durable=True)
    root, at_kill, summary = crash_and_finish(tmp_path, [cfg], crash_at)
    acked = acked_writes(history(root, "write-behind"))
    assert newer_than(acked, at_kill["write-behind"]), "nothing was queued at the kill"
    assert newer_than(acked, store_versions(root / "write-behind" / "store.sqlite")) == set()
    assert summary["lanes"][0]["anomalies"]["lost_writes"] == 0
    assert summary["lanes"][0]["queue"]["pending_at_end"] == 0


def test_write_through_and_cache_aside_lose_nothing_in_a_crash(tmp_path):
    lanes = [lane("cache-aside"), lane("write-through")]
    root, _, summary = crash_and_finish(tmp_path, lanes, 1.2)
    for cfg, lane_summary in zip(lanes, summary["lanes"]):
        acked = acked_writes(history(root, cfg.strategy))
        assert acked
        assert newer_than(acked, store_versions(root / cfg.strategy / "store.sqlite")) == set()
        assert lane_summary["anomalies"]["lost_writes"] == 0


def test_crash_restarts_the_lab_and_the_stream_goes_on(tmp_path):
    cfg = lane("write-behind", durable=True)
    root = tmp_path / "run"
    run = Run(Plan(lanes=[cfg], duration_s=3.0, restart_delay_s=0.2, run_dir=root))
    try:
        run.start()
        drive(run, 0.8)
        first_pid = run.lanes[0].proc.pid
        run.crash()
        seq_at_kill = run.lanes[0].stats.max_seq  # the dead lab's history, read to its end
        wait_until(lambda: (run.tick(), run.lanes[0].state == "running" and run.lanes[0].inc == 1)[1])
        assert run.lanes[0].proc.pid != first_pid
        # the new incarnation's operations reach the history (not "by run time 3 s": a
        # loaded machine may take that long to start the new lab)
        drive(run, lambda: run.lanes[0].stats.max_seq > seq_at_kill + 100)
        summary = run.finish()
    finally:
        run.abort()
        run.cleanup()
    records = history(root, "write-behind")
    seqs = [int(r["id"].split("#")[1]) for r in records if r["inc"] == 1]
    assert seqs and min(seqs) == seq_at_kill + 1  # resumed right after the last op recorded
    assert [e["kind"] for e in summary["events"]][:2] == ["crash", "restart"]
    assert summary["lanes"][0]["incarnations"] == 2
    assert summary["lanes"][0]["anomalies"]["lost_writes"] == 0


def test_outage_makes_write_through_fail_and_write_behind_queue_then_drain(tmp_path):
    lanes = [lane("write-through"), replace(lane("write-behind", durable=True, retry_limit=1000, retry_backoff_s=0.01))]
    root = tmp_path / "run"
    run = Run(Plan(lanes=lanes, duration_s=2.5, outages=[(0.5, 1.0)], run_dir=root))
    try:
        run.start()
        drive(run, 0.7)
        wb = run.lanes[1]
        wait_until(lambda: (run.tick(), wb.gauges.get("queue_depth", 0) > 50)[1])  # the queue grows
        drive(run, 2.5)
        summary = run.finish()
    finally:
        run.abort()
        run.cleanup()
    wt, wbs = summary["lanes"]
    assert wt["errors"] > 0
    assert wbs["queue"]["max_depth"] > 50
    assert wbs["queue"]["retries"] > 0
    assert wbs["anomalies"]["lost_writes"] == 0
    acked = acked_writes(history(root, "write-behind"))
    assert newer_than(acked, store_versions(root / "write-behind" / "store.sqlite")) == set()
    kinds = [e["kind"] for e in summary["events"]]
    assert "outage-start" in kinds and "outage-end" in kinds


def test_a_history_line_cut_by_a_kill_is_not_read(tmp_path):
    """A SIGKILL can cut a write(2) short where it crosses a page (CI saw a file end in a
    lone "{"): every cut of a last line leaves the complete records, read as written."""
    from cachestudio.engine.history import op_line, read_history

    lines = [
        op_line(1, seq, "write-behind", "write", f"k{seq}", seq, 0.1 * seq, 0.1 * seq + 0.001, "ok", True, 0)
        for seq in range(5)
    ]
    whole = "".join(lines).encode()
    last = lines[-1].encode()
    for cut in range(1, len(last)):  # every place the last write could have stopped
        path = tmp_path / f"inc-{cut}.jsonl"
        path.write_bytes(whole[: len(whole) - len(last)] + last[:cut])
        records = read_history(path)
        assert [r["id"] for r in records] == [f"1#{seq}" for seq in range(4)]
    path = tmp_path / "whole.jsonl"
    path.write_bytes(whole)
    assert [r["id"] for r in read_history(path)] == [f"1#{seq}" for seq in range(5)]
