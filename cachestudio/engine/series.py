"""Time series for the live charts, binned by when operations really ended.

Operation records go into fixed bins of ``BIN_S`` seconds by their ``end`` time (not by
when the observer happened to read them), so a chart shows when things happened. A bin
is closed once records ending ``SETTLE_S`` later have been seen (or the clock has moved
on that far); each closed bin becomes one row of a :class:`Ring`: preallocated, bounded,
and handed to the charts as contiguous numpy views (one ``setData`` per redraw).
"""

from __future__ import annotations

import numpy as np

BIN_S = 0.25  # width of one chart sample, seconds
SETTLE_S = 0.3  # a bin closes when the clock is this far past its end
CAPACITY = 4 * 60 * 30  # samples kept per lane: 30 minutes of 0.25 s bins

COLUMNS = (
    "t",
    "ops_s",
    "read_p50",
    "read_p95",
    "read_p99",
    "write_p50",
    "write_p95",
    "write_p99",
    "hit_ratio",
    "errors_s",
    "rejected_s",
    "db_reads_s",
    "db_writes_s",
    "queue_depth",
    "stale_reads",
    "lost_writes",
    "at_risk",
)
COL = {name: i for i, name in enumerate(COLUMNS)}


class Ring:
    """A bounded table of float rows; ``view(col)`` is the ordered column, no copy."""

    def __init__(self, columns: int, capacity: int = CAPACITY):
        self.capacity = capacity
        self._data = np.full((2 * capacity, columns), np.nan)
        self._start = 0
        self._end = 0

    def __len__(self) -> int:
        return self._end - self._start

    def append(self, row) -> None:
        if self._end == len(self._data):  # slide the last `capacity` rows to the front
            keep = self._data[self._end - self.capacity + 1 : self._end].copy()
            self._data[: len(keep)] = keep
            self._start, self._end = 0, len(keep)
        self._data[self._end] = row
        self._end += 1
        if self._end - self._start > self.capacity:
            self._start += 1

    def view(self, col: int) -> np.ndarray:
        return self._data[self._start : self._end, col]

    def tail(self, n: int) -> list[list[float]]:
        """The last ``n`` rows, as plain lists (to send to another process)."""
        return self._data[self._end - n : self._end].tolist() if n > 0 else []

    def last(self, col: int) -> float:
        return float(self._data[self._end - 1, col]) if len(self) else float("nan")


class _Bin:
    __slots__ = ("reads", "writes", "hits", "misses", "errors", "rejected")

    def __init__(self):
        self.reads: list[float] = []
        self.writes: list[float] = []
        self.hits = self.misses = self.errors = self.rejected = 0


class LaneSeries:
    """One lane's chart rows, from its records and its gauges."""

    def __init__(self, capacity: int = CAPACITY):
        self.ring = Ring(len(COLUMNS), capacity)
        self._bins: dict[int, _Bin] = {}
        self._next = 0  # index of the next bin to close
        self._db = (0, 0)  # cumulative DB reads / writes at the last closed bin
        self._gauges = {"db_reads": 0, "db_writes": 0, "queue_depth": 0}
        self._anomalies: tuple[float, float, float] = (0, 0, 0)  # NaN: a node's series has none

    def add_records(self, records: list[dict]) -> None:
        bins = self._bins
        for r in records:
            kind = r["kind"]
            if kind != "read" and kind != "write":
                continue
            i = int(r["end"] / BIN_S)
            if i < self._next:
                i = self._next  # late for its bin: counted in the first open one
            b = bins.get(i)
            if b is None:
                b = bins[i] = _Bin()
            latency = r["end"] - r["start"]
            outcome = r["outcome"]
            if kind == "read":
                b.reads.append(latency)
                if outcome == "hit":
                    b.hits += 1
                elif outcome == "miss":
                    b.misses += 1
            else:
                b.writes.append(latency)
            if outcome == "error":
                b.errors += 1
            elif outcome == "rejected":
                b.rejected += 1

    def set_gauges(self, db_reads: int | None, db_writes: int | None, queue_depth: int | None) -> None:
        """The labs' counters now; None: not known (the gauge columns stay empty)."""
        self._gauges = {"db_reads": db_reads, "db_writes": db_writes, "queue_depth": queue_depth}

    def set_anomalies(self, stale_reads: float, lost_writes: float, at_risk: float) -> None:
        self._anomalies = (stale_reads, lost_writes, at_risk)

    def close(self, now: float) -> int:
        """Close every bin that ended ``SETTLE_S`` before ``now``; return rows added."""
        added = 0
        while (self._next + 1) * BIN_S + SETTLE_S <= now:
            b = self._bins.pop(self._next, None) or _Bin()
            g = self._gauges
            db_r, db_w = g["db_reads"], g["db_writes"]
            if db_r is None or db_w is None:
                d_reads = d_writes = np.nan
            else:
                d_reads = max(0, db_r - self._db[0]) / BIN_S
                d_writes = max(0, db_w - self._db[1]) / BIN_S
                self._db = (db_r, db_w)
            row = [(self._next + 1) * BIN_S, (len(b.reads) + len(b.writes)) / BIN_S]
            for values in (b.reads, b.writes):
                if values:
                    row.extend(np.percentile(np.asarray(values) * 1000.0, (50, 95, 99)).tolist())
                else:
                    row.extend((np.nan, np.nan, np.nan))
            answered = b.hits + b.misses
            row.append(b.hits / answered if answered else np.nan)
            depth = np.nan if g["queue_depth"] is None else g["queue_depth"]
            row.extend((b.errors / BIN_S, b.rejected / BIN_S, d_reads, d_writes, depth))
            row.extend(self._anomalies)
            self.ring.append(row)
            self._next += 1
            added += 1
        return added
