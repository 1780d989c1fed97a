"""A run's summary (DESIGN.md §6), the part a live run and a recording build alike: one
lane's entry, and the names the summary gives the auditor's kinds. Kept apart from the
run's end (:mod:`runend`) so that a recording rebuilds its summary without the runner.
"""

from __future__ import annotations

from .config import LaneConfig
from .nodes import COUNTERS
from .strategykinds import queues_writes
from .telemetry import LaneStats

#: Auditor kinds as the summary names them (DESIGN.md §6).
SUMMARY_NAMES = {
    "stale_read": "stale_reads",
    "lost_write": "lost_writes",
    "dirty_cache": "dirty_cache",
    "stale_cache": "stale_cache",
}


def lane_summary(
    cfg: LaneConfig,
    stats: LaneStats,
    duration_s: float,
    *,
    totals: dict,
    gauges: dict,
    max_depth: int,
    anomalies: dict,
    anomaly_list: list,
    incarnations: int,
    failures: list,
    audited: bool,
    drained: bool,
    durability_info: dict,
    backends: str = "",
) -> dict:
    """One lane of the summary (DESIGN.md §6), from a live run or a recording."""
    t = {k: totals.get(k, 0) for k in COUNTERS}
    return {
        "name": cfg.label,
        "strategy": cfg.strategy,
        "ops": stats.ops,
        "ops_per_s": round(stats.ops / duration_s, 1),
        "reads": stats.reads,
        "writes": stats.writes,
        "hit_ratio": stats.hit_ratio(),
        "latency_ms": {k: h.summary() for k, h in stats.latency.items()},
        "db": {"reads": t["db_reads"], "writes": t["db_writes"], "transactions": t["db_transactions"]},
        "queue": {
            "max_depth": max_depth,
            "pending_at_end": gauges.get("queue_depth", 0),
            "dead_letters": t["dead_letters"],
            "retries": t["retries"],
            "durable": cfg.write_behind.durable if queues_writes(cfg.strategy) else None,
        },
        "errors": stats.errors,
        "rejected": stats.rejected,
        "indeterminate": stats.indeterminate,  # errors that may have applied (DESIGN.md §4)
        "anomalies": anomalies,
        "anomaly_list": anomaly_list,
        "incarnations": incarnations,
        "injected": cfg.latency.label() or None,
        "drained": drained,
        "durability": durability_info,
        "backends": backends or cfg.backends.label(),  # what the lane ran on
        "nodes": cfg.backends.nodes,
        "failures": failures,
        "audited": audited,
        "unexpected_errors": t["unexpected"],
    }
