"""Per-lane statistics built from the history stream, with bounded memory.

Latencies go into a log-bucketed histogram (1 % wide buckets from 0.1 µs to 1000 s),
so a ten-minute run costs the same memory as a ten-second one and the percentiles are
within 1 % of the exact ones.
"""

from __future__ import annotations

import math

import numpy as np

HIST_BASE_S = 1e-7  # lower edge of the first bucket: 0.1 µs
HIST_GROWTH = 1.01  # each bucket 1 % wider than the one before
HIST_BUCKETS = int(math.log(1e3 / HIST_BASE_S) / math.log(HIST_GROWTH)) + 1  # up to 1000 s
_LOG_G = math.log(HIST_GROWTH)


class LatencyHistogram:
    def __init__(self) -> None:
        self.counts = np.zeros(HIST_BUCKETS, dtype=np.int64)
        self.total = 0

    def add(self, seconds: list[float]) -> None:
        if not seconds:
            return
        x = np.maximum(np.asarray(seconds, dtype=np.float64), HIST_BASE_S)
        idx = np.minimum((np.log(x / HIST_BASE_S) / _LOG_G).astype(np.int64), HIST_BUCKETS - 1)
        self.counts += np.bincount(idx, minlength=HIST_BUCKETS)
        self.total += len(seconds)

    def percentile_ms(self, p: float) -> float | None:
        """The p-th percentile (0–100) in milliseconds; None when empty."""
        if not self.total:
            return None
        rank = max(1, math.ceil(self.total * p / 100.0))
        i = int(np.searchsorted(np.cumsum(self.counts), rank))
        mid = HIST_BASE_S * HIST_GROWTH ** (i + 0.5)  # geometric middle of the bucket
        return round(mid * 1000.0, 4)

    def summary(self) -> dict:
        return {f"p{p}": self.percentile_ms(p) for p in (50, 95, 99)}


class LaneStats:
    """Counts and latencies of one lane, from its operation records."""

    def __init__(self, strategy: str):
        self.strategy = strategy
        self.reads = self.writes = self.hits = self.misses = 0
        self.errors = self.rejected = self.indeterminate = self.acked_writes = 0
        self.max_seq = -1
        self.latency = {"read": LatencyHistogram(), "write": LatencyHistogram()}

    @property
    def ops(self) -> int:
        return self.reads + self.writes

    def add(self, records: list[dict]) -> None:
        lat: dict[str, list[float]] = {"read": [], "write": []}
        for r in records:
            kind = r["kind"]
            if kind not in lat:
                continue
            seq = int(r["id"].rpartition("#")[2])
            if seq > self.max_seq:
                self.max_seq = seq
            outcome = r["outcome"]
            if kind == "read":
                self.reads += 1
                if outcome == "hit":
                    self.hits += 1
                elif outcome == "miss":
                    self.misses += 1
            else:
                self.writes += 1
                if r["acked"]:
                    self.acked_writes += 1
            if outcome == "error":
                self.errors += 1
            elif outcome == "rejected":
                self.rejected += 1
            elif outcome == "indeterminate":
                self.indeterminate += 1
            lat[kind].append(r["end"] - r["start"])
        for kind, values in lat.items():
            self.latency[kind].add(values)

    def hit_ratio(self) -> float | None:
        answered = self.hits + self.misses
        return round(self.hits / answered, 4) if answered else None
