"""The time machine: a run's past, kept so that any moment of it can be shown again.

:class:`UpdateBuilder` turns a run's stream (operation records, events, anomalies and the
labs' gauges) into the updates the window draws (chart rows, lane state, a sample of
records for the flow view's tokens, events, anomalies, what each fault did). The observer
process builds them live (:mod:`.observer`); a recording is turned into the same updates
offline (:meth:`Tape.from_recording`), so a replay shows what the live window showed,
computed by the same code.

:class:`Tape` keeps the updates, indexed by lab time: :meth:`Tape.frame` is every view's
state at time t (cumulative: the events, anomalies and fault outcomes up to t, the lanes
as they were, the chart rows up to t), and :meth:`Tape.between` the updates in a span
(for playing forward). Memory stays bounded: the flow view's sample is thinned to
``KEEP_SAMPLE`` records per lane per update, and the anomalies to the ones the anomaly
panel lists (``KEEP_PER_GROUP`` per group; every one is counted in its group).
"""

from __future__ import annotations

import bisect
import heapq
from collections import Counter
from collections.abc import Iterable

import numpy as np

from .outcomes import LiveOutcomes
from .series import COL, COLUMNS, LaneSeries

SAMPLE_RECORDS = 64  # records per lane per update, for the flow view's tokens
MAX_ANOMALIES = 200  # anomalies per lane per update (all are counted)
KEEP_SAMPLE = 16  # records per lane per update kept on the tape
KEEP_PER_GROUP = 100  # anomalies kept per group (as many as the panel lists)
SAMPLE_SPAN_S = 0.3  # a frame's token sample: the records of the updates this far back
#: A live tape thins what is older than THIN_AFTER_S: one update in THIN_EVERY keeps the
#: lanes' state and THIN_SAMPLE records per lane, the others only their counts. Measured
#: reasoning: at 20 updates a second, three lanes and 16 records each, an hour unthinned
#: would hold 3.5 million record dicts (GBs); thinned, about 90 thousand.
THIN_AFTER_S = 120.0
THIN_EVERY = 5
THIN_SAMPLE = 2


def node_series() -> LaneSeries:
    """A node's series: what its records and gauges say; no anomaly columns."""
    s = LaneSeries()
    s.set_gauges(None, None, None)  # until the node's gauges come
    s.set_anomalies(np.nan, np.nan, np.nan)
    return s


def node_series_for(cfgs) -> list[list[LaneSeries]]:
    """Per lane, one series per app node (lanes of one node: none)."""
    return [[node_series() for _ in range(cfg.backends.nodes)] if cfg.backends.nodes > 1 else [] for cfg in cfgs]


def even_sample(records: list[dict], k: int) -> list[dict]:
    if len(records) <= k:
        return list(records)  # a copy: the caller clears its list after sending
    n = len(records)
    return [records[int((j + 0.5) * n / k)] for j in range(k)]


class UpdateBuilder:
    """Collects a run's stream between two updates; :meth:`build` makes the update."""

    def __init__(self, cfgs: list) -> None:
        n = self.n = len(cfgs)
        self.series = [LaneSeries() for _ in range(n)]
        self.events: list[dict] = []
        self.samples: list[list[dict]] = [[] for _ in range(n)]
        self.counts: list[Counter] = [Counter() for _ in range(n)]
        self.found: list[list] = [[] for _ in range(n)]
        self.found_groups: list[list[str]] = [[] for _ in range(n)]
        self.outcomes = LiveOutcomes([cfg.label for cfg in cfgs], cfgs)
        self.revealed: list[list] = [[] for _ in range(n)]  # this round's anomalies, for after its events
        # A lane of several app nodes also has one series per node (the charts' lines per
        # node, on demand): its records split by their "node". Their anomaly columns stay
        # empty: the auditor judges a lane, not a node.
        self.node_series = node_series_for(cfgs)

    def on_event(self, ev: dict) -> None:
        self.events.append(ev)
        self.outcomes.event(ev)

    def on_records(self, i: int, records: list, anomalies: list) -> None:
        if records:
            self.series[i].add_records(records)
            nodes = self.node_series[i]
            if nodes:
                split: list[list[dict]] = [[] for _ in nodes]
                for r in records:
                    k = r.get("node", 0)
                    if isinstance(k, int) and 0 <= k < len(split):
                        split[k].append(r)
                for s, part in zip(nodes, split):
                    if part:
                        s.add_records(part)
            self.counts[i].update((r["kind"], r["outcome"]) for r in records)
            self.samples[i].extend(even_sample(records, SAMPLE_RECORDS))
            self.outcomes.records(i, records)
        self.revealed[i].extend(anomalies)

    def take_anomalies(self) -> None:
        for i in range(self.n):
            if not self.revealed[i]:
                continue
            ids = self.outcomes.anomalies(i, self.revealed[i])
            room = max(0, MAX_ANOMALIES - len(self.found[i]))
            self.found[i].extend(self.revealed[i][:room])
            self.found_groups[i].extend(ids[:room])
            self.revealed[i].clear()

    def build(
        self,
        now: float,
        flags: dict,
        lanes: list[dict],
        gauges: list[tuple],
        risks: list[tuple],
        node_gauges: list[list[tuple]] | None = None,
    ) -> dict:
        """``flags``: paused, outage_on, slow_db_ms, slow_cache_ms; ``lanes``: each lane's
        state; ``gauges``: (db_reads, db_writes, queue_depth) per lane; ``risks``: (stale
        reads, lost writes, at risk) per lane; ``node_gauges``: per lane, the same gauges
        per node (lanes of one node: empty)."""
        self.take_anomalies()
        self.outcomes.advance(now)
        rows = []
        for s, g, r in zip(self.series, gauges, risks):
            s.set_gauges(*g)
            s.set_anomalies(*r)
            added = s.close(now)
            rows.append(s.ring.tail(added))
        node_rows = []
        for i, nodes in enumerate(self.node_series):
            per_lane = node_gauges[i] if node_gauges and i < len(node_gauges) else []
            out = []
            for k, s in enumerate(nodes):
                s.set_gauges(*(per_lane[k] if k < len(per_lane) else (None, None, None)))
                out.append(s.ring.tail(s.close(now)))
            node_rows.append(out)
        n = self.n
        update = {
            "now": now,
            **flags,
            "events": self.events[:],
            "lanes": lanes,
            "rows": rows,
            "node_rows": node_rows,
            "records": [(even_sample(self.samples[i], SAMPLE_RECORDS), dict(self.counts[i])) for i in range(n)],
            "anomalies": [f[:] for f in self.found],
        }
        update["outcomes"], update["groups"] = self.outcomes.changes()
        update["anomaly_groups"] = [g[:] for g in self.found_groups]
        self.events.clear()
        for i in range(n):
            self.samples[i].clear()
            self.counts[i].clear()
            self.found[i].clear()
            self.found_groups[i].clear()
        return update


class Tape:
    """Every update of a run, indexed by lab time (``now``)."""

    def __init__(self, names: list[str], thin: bool = True) -> None:
        self.names = list(names)
        self.thin = thin  # a live tape thins its old updates; a recording's keeps them all
        self._thinned = 0
        n = len(names)
        self.times: list[float] = []
        self.lanes: list[list[dict]] = []  # per update: the lanes' state
        self.flags: list[dict] = []  # per update: paused, outage_on, slow_db_ms, slow_cache_ms
        self.samples: list[list[list[dict]]] = []  # per update, per lane: a few records
        self.counts: list[list[dict]] = []  # per update, per lane: {(kind, outcome): n}
        self.events: list[dict] = []
        self.event_times: list[float] = []  # lab time of the update that brought each event
        self.anomalies: list[tuple[float, int, object, object]] = []  # (update time, lane, anomaly, group id)
        self.anomaly_times: list[float] = []
        self._per_group: Counter = Counter()
        self.outcomes: dict = {}  # window id -> [(time, window dict)]
        self.groups: dict = {}  # group id -> [(time, group dict)]
        self.series: list[LaneSeries] | None = None  # a recording's chart rows (live: the session's)
        self.node_series: list[list[LaneSeries]] = []  # a recording's rows per node (live: the session's)
        self._n = n

    def __len__(self) -> int:
        return len(self.times)

    @property
    def end(self) -> float:
        return self.times[-1] if self.times else 0.0

    def add(self, u: dict) -> None:
        t = float(u["now"])
        if self.times and t < self.times[-1]:
            t = self.times[-1]  # the clock never goes back on the tape
        self.times.append(t)
        self.lanes.append(u["lanes"])
        self.flags.append({k: u.get(k) for k in ("paused", "outage_on", "slow_db_ms", "slow_cache_ms")})
        self.samples.append([even_sample(sample, KEEP_SAMPLE) for sample, _ in u["records"]])
        self.counts.append([counts for _, counts in u["records"]])
        for ev in u["events"]:
            self.events.append(ev)
            self.event_times.append(t)
        ids = u.get("anomaly_groups") or [[None] * len(f) for f in u["anomalies"]]
        for lane, (found, gids) in enumerate(zip(u["anomalies"], ids)):
            for a, gid in zip(found, gids):
                if self._per_group[(lane, gid)] >= KEEP_PER_GROUP:
                    continue
                self._per_group[(lane, gid)] += 1
                self.anomalies.append((t, lane, a, gid))
                self.anomaly_times.append(t)
        for w in u.get("outcomes") or ():
            self.outcomes.setdefault(w["id"], []).append((t, w))
        for g in u.get("groups") or ():
            self.groups.setdefault(g["id"], []).append((t, g))
        if self.thin:
            self._thin(t)

    def _thin(self, t: float) -> None:
        times = self.times
        while self._thinned < len(times) - 1 and times[self._thinned] < t - THIN_AFTER_S:
            j = self._thinned
            if j % THIN_EVERY:
                self.samples[j] = [[] for _ in range(self._n)]
                self.lanes[j] = None
            else:
                self.samples[j] = [sample[:THIN_SAMPLE] for sample in self.samples[j]]
            self._thinned += 1

    def _lanes_at(self, k: int):
        """The lanes' state at update ``k``, or at the last one before it that kept it."""
        while k >= 0 and self.lanes[k] is None:
            k -= 1
        return self.lanes[k] if k >= 0 else None

    def index(self, t: float) -> int:
        """The last update at or before ``t`` (-1: none)."""
        return bisect.bisect_right(self.times, t) - 1

    @staticmethod
    def _as_of(versions: dict, t: float) -> list[dict]:
        out = []
        for history in versions.values():
            k = bisect.bisect_right(history, t, key=lambda item: item[0]) - 1
            if k >= 0:
                out.append(history[k][1])
        return out

    def frame(self, t: float) -> dict:
        """Every view's state at lab time ``t`` (cumulative where the views accumulate)."""
        k = self.index(t)
        ne = bisect.bisect_right(self.event_times, t)
        na = bisect.bisect_right(self.anomaly_times, t)
        first = bisect.bisect_left(self.times, t - SAMPLE_SPAN_S, 0, k + 1)
        records: list[list[dict]] = [[] for _ in range(self._n)]
        counts: list[Counter] = [Counter() for _ in range(self._n)]
        for j in range(first, k + 1):
            for i in range(self._n):
                records[i].extend(self.samples[j][i])
                counts[i].update(self.counts[j][i])
        found: list[list] = [[] for _ in range(self._n)]
        gids: list[list] = [[] for _ in range(self._n)]
        for _, lane, a, gid in self.anomalies[:na]:
            found[lane].append(a)
            gids[lane].append(gid)
        return {
            "now": t,
            "index": k,
            **(self.flags[k] if k >= 0 else {}),
            "lanes": self._lanes_at(k),
            "events": self.events[:ne],
            "records": [(r, dict(c)) for r, c in zip(records, counts)],
            "anomalies": found,
            "anomaly_groups": gids,
            "outcomes": self._as_of(self.outcomes, t),
            "groups": self._as_of(self.groups, t),
        }

    def records_between(self, t0: float, t1: float) -> list[list[dict]]:
        """Per lane, the records the tape kept from the updates in (t0, t1] (every record
        at slow-motion rates; a sample at high rates)."""
        out: list[list[dict]] = [[] for _ in range(self._n)]
        for j in self.between(t0, t1):
            for i in range(self._n):
                out[i].extend(self.samples[j][i])
        return out

    def between(self, t0: float, t1: float) -> list[int]:
        """Indexes of the updates in (t0, t1]."""
        return list(range(bisect.bisect_right(self.times, t0), bisect.bisect_right(self.times, t1)))

    def update_at(self, j: int) -> dict:
        """Update ``j`` as the window takes it (rows excepted: the charts read the series)."""
        t = self.times[j]
        lo = bisect.bisect_left(self.event_times, t)
        hi = bisect.bisect_right(self.event_times, t)
        alo = bisect.bisect_left(self.anomaly_times, t)
        ahi = bisect.bisect_right(self.anomaly_times, t)
        found: list[list] = [[] for _ in range(self._n)]
        gids: list[list] = [[] for _ in range(self._n)]
        for _, lane, a, gid in self.anomalies[alo:ahi]:
            found[lane].append(a)
            gids[lane].append(gid)
        return {
            "now": t,
            **self.flags[j],
            "lanes": self._lanes_at(j),
            "events": self.events[lo:hi],
            "records": list(zip(self.samples[j], self.counts[j])),
            "anomalies": found,
            "anomaly_groups": gids,
            "outcomes": [w for h in self.outcomes.values() for (wt, w) in h if wt == t],
            "groups": [g for h in self.groups.values() for (gt, g) in h if gt == t],
        }

    # -- for the report ------------------------------------------------------------------

    def series_lists(self) -> dict[str, dict[str, list[float]]]:
        """Every lane's chart columns as plain lists (a recording's tape)."""
        out = {}
        for name, s in zip(self.names, self.series or []):
            out[name] = {c: s.ring.view(COL[c]).tolist() for c in COLUMNS}
        return out

    def node_series_lists(self) -> dict[str, list[dict[str, list[float]]]]:
        """Each lane of several app nodes: every node's chart columns as plain lists."""
        return {
            name: [{c: s.ring.view(COL[c]).tolist() for c in COLUMNS} for s in nodes]
            for name, nodes in zip(self.names, self.node_series)
            if nodes
        }

    def group_list(self) -> list[dict]:
        """The anomaly groups as they ended."""
        return self._as_of(self.groups, float("inf"))

    # -- from a recording ----------------------------------------------------------------

    @classmethod
    def from_recording(cls, rec) -> Tape:
        """Rebuild the window's updates from a recording, one per recorded tick, with the
        observer's own code (:class:`UpdateBuilder`)."""
        from .auditor import Anomaly
        from .telemetry import LaneStats

        cfgs = rec.configs
        names = rec.lane_names
        tape = cls(names, thin=False)
        b = UpdateBuilder(cfgs)
        n = len(names)
        stats = [LaneStats(name) for name in names]
        kinds: list[Counter] = [Counter() for _ in range(n)]
        # One time-ordered stream: records by end, events by start, anomalies by the time
        # the auditor reached them, ticks by their time (a tick comes after what ended by then).
        streams: list[Iterable[tuple[float, int, int, dict]]] = []
        for i in range(n):
            ops = sorted(rec.ops[i], key=lambda r: r["end"])
            streams.append([(r["end"], 1, i, r) for r in ops])
            streams.append([(a["t"] if a.get("t") is not None else 0.0, 2, i, a) for a in rec.anomalies[i]])
        streams.append((e["start"], 0, -1, e) for e in rec.events)
        streams.append((tk["t"], 3, -1, tk) for tk in rec.ticks)
        pending: list[list] = [[] for _ in range(n)]

        def flush_records() -> None:
            for i in range(n):
                if pending[i]:
                    stats[i].add(pending[i])
                    b.on_records(i, pending[i], [])
                    pending[i] = []

        for at, order, i, item in heapq.merge(*streams, key=lambda x: (x[0], x[1])):
            if order == 1:
                pending[i].append(item)
            elif order == 0:
                flush_records()
                b.on_event(item)
            elif order == 2:
                flush_records()
                a = Anomaly(
                    item["kind"],
                    str(item.get("lane", names[i])),
                    str(item.get("key", "?")),
                    str(item.get("sentence", "")),
                    item.get("records") or [],
                    item.get("at"),
                    item.get("found_at"),
                )
                kinds[i][a.kind] += 1
                b.on_records(i, [], [a])
            else:
                flush_records()
                lanes = []
                for j, ls in enumerate(item["lanes"][:n]):
                    s = stats[j]
                    lanes.append(
                        {
                            "name": names[j],
                            "strategy": cfgs[j].strategy,
                            "cfg": cfgs[j],
                            "inc": ls.get("inc", 0),
                            "pid": None,
                            "state": ls.get("state", "down"),
                            "health": ls.get("health", "down"),
                            "gauges": {"queue_depth": ls.get("queue_depth", 0)},
                            "totals": ls.get("totals", {}),
                            "counts": dict(kinds[j]),
                            "at_risk": ls.get("at_risk", 0),
                            "ops": s.ops,
                            "reads": s.reads,
                            "writes": s.writes,
                            "burst": ls.get("burst", False),
                            "failures": [],
                        }
                    )
                gauges = [
                    (ls["totals"].get("db_reads", 0), ls["totals"].get("db_writes", 0), ls["gauges"]["queue_depth"])
                    for ls in lanes
                ]
                risks = [(kinds[j]["stale_read"], kinds[j]["lost_write"], lanes[j]["at_risk"]) for j in range(n)]
                flags = {k: item.get(k) for k in ("paused", "outage_on", "slow_db_ms", "slow_cache_ms")}
                node_gauges = [tick_node_gauges(ls) for ls in item["lanes"][:n]]
                tape.add(b.build(at, flags, lanes, gauges, risks, node_gauges))
        flush_records()
        tape.series = b.series
        tape.node_series = b.node_series
        return tape

    def rows_upto(self, lane: int, t: float) -> int:
        """How many of a recording's chart rows end at or before ``t``."""
        ring = self.series[lane].ring
        return int(np.searchsorted(ring.view(COL["t"]), t, side="right"))


def tick_node_gauges(lane: dict) -> list[tuple]:
    """A recorded tick's gauges per node of one lane (``"nodes"``, written for lanes of
    several nodes): (db_reads, db_writes, queue_depth) each; [] when the tick has none."""
    nodes = lane.get("nodes")
    if not isinstance(nodes, list):
        return []
    out = []
    for g in nodes:
        vals = [g.get(k) for k in ("db_reads", "db_writes", "queue_depth")] if isinstance(g, dict) else [None]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
            return []  # not what a recording writes: the nodes' gauge columns stay empty
        out.append(tuple(vals))
    return out
