"""What each fault did, live: the numbers of :func:`report.fault_report`, kept up to date
while the run goes on, a sentence per fault, and the anomalies grouped by their cause.

:class:`LiveOutcomes` takes, in the order the runner reports them, every event
(:meth:`~LiveOutcomes.event`), every batch of a lane's operation records
(:meth:`~LiveOutcomes.records`) and every batch of anomalies
(:meth:`~LiveOutcomes.anomalies`). The windows are :func:`report.fault_windows`'s own:
it is called on the fault events seen so far, with the run's end not yet known.

Ends known late. A window's end can be decided after operations in it were counted (a
crash's end is its lane's restart plus ``AFTER_S``; an outage's is its end event). An end
decided by a later event is stamped when the runner emits it, which is after every record
it had already handed over was consumed: those records began before that end, so they
are counted as they come, nothing is kept. A stampede's end is the later of its start
plus ``AFTER_S`` and the lanes' "done" reports: until every lane has reported, the records
(and anomalies) that began after the provisional end are held aside (only their start,
kind, outcome and duration; at most ``TENTATIVE_MAX`` per window and lane), then counted
or dropped once the end is decided (or the run ends: :meth:`LiveOutcomes.windows` with
``run_end``). So the final numbers equal :func:`report.fault_report`'s, with two limits
said here: the report counts only the anomalies the auditor keeps (its first 10,000 per
lane), this counts all of them; and the p99 of a window and lane is exact up to
``EXACT_LATENCIES`` operations of one kind, beyond which only the slowest 2 % are kept
(exact unless the rest of the window is much faster than its start; else a lower bound).
While a window is open, a p99 over more than 5,000 operations is refreshed at most every
``P99_EVERY_S`` of run time (its cost is O(n)); a closed window's is computed afresh.

Anomalies need the events of the same round first: the runner reports the lost writes it
finds at a kill before the crash's event (their ``found_at`` is the kill). Feed a round's
anomalies after its events (the observer does).

Groups: each anomaly belongs to one group, (cause, lane, kind). Its cause is the
latest-starting window that contains its ``at`` (on its lane: a crash ends per lane);
else the latest-starting one that contains its ``found_at``; else "no fault". It is
decided when the anomaly arrives; a window whose end is not decided yet contains every
later time. A group counts its anomalies per key for at most ``MAX_GROUP_KEYS``
distinct keys (the workload's key space is smaller in practice); beyond that new keys
are counted in ``count`` but not listed, and ``distinct_keys`` is then a lower bound.

Memory: events (a few per fault), one counter set per window and lane, the windows'
latencies (above), the tentative records of undecided stampedes, and one key counter per
group. No record is kept once it is counted.

Pure Python and numpy: the window's process and the observer's both use it.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from .faultkinds import BY_START
from .report import DONE, NAMES, WINDOW_EVENTS, fault_windows, p99
from .strategykinds import queues_writes

#: Operations of one kind a window keeps per lane for its exact p99 (8 bytes each).
EXACT_LATENCIES = 500_000
#: How often (run time) an open window's p99 over many operations is recomputed.
P99_EVERY_S = 1.0
#: Records of one lane held aside while a stampede's end is not decided.
TENTATIVE_MAX = 200_000
#: Keys counted per anomaly group.
MAX_GROUP_KEYS = 10_000
#: What each anomaly kind is called, one and many.
KIND_WORDS = {
    "stale_read": ("stale read", "stale reads"),
    "lost_write": ("lost write", "lost writes"),
    "dirty_cache": ("dirty cache entry", "dirty cache entries"),
    "stale_cache": ("stale cache entry", "stale cache entries"),
}
_COUNTED = {"stale_read": "stale_reads", "lost_write": "lost_writes"}  # what fault_report counts
NO_FAULT = "no fault"


def fmt_ms(value) -> str:
    """Milliseconds as the command line's tables print them."""
    return "-" if value is None else (f"{value:.3f}" if value < 10 else f"{value:.1f}")


# ------------------------------------------------------------------------------ latencies


class _Latencies:
    """Durations (s) of a window's reads or writes on one lane, for their p99."""

    __slots__ = ("_p99", "_p99_at", "_p99_seen", "buf", "dropped", "seen", "size")

    def __init__(self) -> None:
        self.buf = np.empty(0)
        self.size = 0  # kept values
        self.seen = 0  # all values
        self.dropped = 0  # the fastest ones, not kept
        self._p99: float | None = None
        self._p99_at = -math.inf  # the run time at which it was computed
        self._p99_seen = 0  # ``seen`` then

    def add(self, values: np.ndarray) -> None:
        k = len(values)
        if not k:
            return
        need = self.size + k
        if need > len(self.buf):
            buf = np.empty(max(need, 2 * len(self.buf), 256))
            buf[: self.size] = self.buf[: self.size]
            self.buf = buf
        self.buf[self.size : need] = values
        self.size = need
        self.seen += k
        if self.size > max(EXACT_LATENCIES, 4 * self._top()):
            keep = self._top() * 2
            kept = np.partition(self.buf[: self.size], self.size - keep)[self.size - keep :]
            self.dropped += self.size - keep
            self.buf = np.concatenate([kept, np.empty(keep)])
            self.size = keep

    def _top(self) -> int:
        return int(self.seen * 0.01) + 2

    def p99(self, fresh: bool, clock: float = 0.0) -> float | None:
        """In ms, rounded as the report does. ``fresh``: compute it now; else (an open
        window) a large one is recomputed at most every ``P99_EVERY_S`` of run time."""
        if not self.seen:
            return None
        if self.seen != self._p99_seen and (fresh or self.size < 5_000 or clock - self._p99_at >= P99_EVERY_S):
            self._p99, self._p99_at, self._p99_seen = self._compute(), clock, self.seen
        return self._p99

    def _compute(self) -> float | None:
        values = self.buf[: self.size]
        if not self.dropped:
            return p99(values)
        pos = 0.99 * (self.seen - 1)
        lo = math.floor(pos) - self.dropped
        if lo < 0:  # the fastest were dropped and the rest were faster: a lower bound
            return round(float(values.min()) * 1000.0, 3)
        s = np.sort(values)
        hi = min(lo + 1, len(s) - 1)
        return round(float(s[lo] + (s[hi] - s[lo]) * (pos - math.floor(pos))) * 1000.0, 3)


# ------------------------------------------------------------------------------ windows


class _Lane:
    """One window's numbers on one lane."""

    __slots__ = (
        "end",
        "errors",
        "final",
        "held",
        "held_anomalies",
        "indeterminate",
        "lost_writes",
        "n_held",
        "ops",
        "reads",
        "rejected",
        "stale_reads",
        "writes",
    )

    def __init__(self) -> None:
        self.end = math.inf  # the end as known so far (inf: not known)
        self.final = False  # the end is decided
        self.ops = self.errors = self.rejected = self.indeterminate = self.stale_reads = self.lost_writes = 0
        self.reads, self.writes = _Latencies(), _Latencies()
        self.held: list[tuple] = []  # chunks of (starts, is read, outcomes, durations) columns
        self.n_held = 0
        self.held_anomalies: list[tuple[str, float | None, float | None]] = []

    def count(self, starts, is_read, is_write, outcome, durations, lo: float) -> None:
        """Count the records (numpy columns) whose start lies in [lo, end); hold the later
        ones while the end is not decided."""
        inside = (starts >= lo) & (starts < self.end)
        n = int(inside.sum())
        if n:
            self.ops += n
            self.errors += int((inside & (outcome == "error")).sum())
            self.rejected += int((inside & (outcome == "rejected")).sum())
            self.indeterminate += int((inside & (outcome == "indeterminate")).sum())
            self.reads.add(durations[inside & is_read])
            self.writes.add(durations[inside & is_write])
        if not self.final and self.end < math.inf:
            later = np.flatnonzero(starts >= max(lo, self.end))[: max(0, TENTATIVE_MAX - self.n_held)]
            if len(later):
                self.held.append((starts[later], is_read[later], outcome[later], durations[later]))
                self.n_held += len(later)

    def count_anomaly(self, kind: str, times: tuple, lo: float) -> bool:
        if any(t is not None and lo <= t < self.end for t in times):
            setattr(self, _COUNTED[kind], getattr(self, _COUNTED[kind]) + 1)
            return True
        if (
            not self.final
            and len(self.held_anomalies) < TENTATIVE_MAX
            and any(t is not None and t >= max(lo, self.end) for t in times)
        ):
            self.held_anomalies.append((kind, *times))
        return False

    def settle(self, end: float, final: bool, lo: float) -> bool:
        """The end moved (or was decided): count what it now covers. True if anything changed."""
        if end == self.end and final == self.final:
            return False
        self.end, self.final = end, final
        held, self.held, self.n_held = self.held, [], 0
        if held:
            starts, is_read, outcome, durations = (np.concatenate(column) for column in zip(*held))
            self.count(starts, is_read, ~is_read, outcome, durations, lo)
        anomalies, self.held_anomalies = self.held_anomalies, []
        for kind, *times in anomalies:
            self.count_anomaly(kind, tuple(times), lo)
        return True

    def numbers(self, fresh: bool, clock: float) -> dict:
        return {
            "ops": self.ops,
            "errors": self.errors,
            "rejected": self.rejected,
            "indeterminate": self.indeterminate,
            "read_p99_ms": self.reads.p99(fresh, clock),
            "write_p99_ms": self.writes.p99(fresh, clock),
            "stale_reads": self.stale_reads,
            "lost_writes": self.lost_writes,
        }


class _Window:
    __slots__ = ("detail", "event_index", "id", "kind", "lanes", "name", "start")

    def __init__(self, wid: int, w: dict, event_index: int, lanes: list[str]) -> None:
        self.id, self.kind, self.name, self.start, self.detail = wid, w["kind"], w["name"], w["start"], w["detail"]
        self.event_index = event_index
        self.lanes = {name: _Lane() for name in lanes}

    def decided(self) -> bool:
        return all(x.final for x in self.lanes.values())

    def contains(self, lane: str, t: float | None) -> bool:
        """Whether run time ``t`` lies in the window on ``lane`` (for grouping: while its
        end is not decided, every later time does)."""
        x = self.lanes[lane]
        return t is not None and self.start <= t and (not x.final or t < x.end)


# ------------------------------------------------------------------------------ groups


class _Group:
    __slots__ = ("capped", "cause", "count", "fault_id", "first_at", "id", "keys", "kind", "lane", "last_at")

    def __init__(self, gid: str, fault_id: int | None, cause: str, lane: str, kind: str) -> None:
        self.id, self.fault_id, self.cause, self.lane, self.kind = gid, fault_id, cause, lane, kind
        self.count = 0
        self.keys: Counter = Counter()
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.capped = False  # keys beyond MAX_GROUP_KEYS were not listed

    def add(self, key: str, t: float | None) -> None:
        self.count += 1
        if key in self.keys or len(self.keys) < MAX_GROUP_KEYS:
            self.keys[key] += 1
        else:
            self.capped = True
        if t is not None:
            self.first_at = t if self.first_at is None else min(self.first_at, t)
            self.last_at = t if self.last_at is None else max(self.last_at, t)

    def as_dict(self) -> dict:
        top = self.keys.most_common(3)
        one, many = KIND_WORDS.get(self.kind, (self.kind, self.kind))
        distinct = len(self.keys)
        on = f"{distinct:,}{'+' if self.capped else ''} key{'' if distinct == 1 and not self.capped else 's'}"
        line = f"{self.cause}: {self.count:,} {one if self.count == 1 else many} on {on}"
        if top:
            line += ", " + ", ".join(f"{k} ×{n:,}" for k, n in top) + (" …" if distinct > 3 or self.capped else "")
        return {
            "id": self.id,
            "fault_id": self.fault_id,
            "cause": self.cause,
            "lane": self.lane,
            "kind": self.kind,
            "count": self.count,
            "distinct_keys": distinct,
            "keys": [[k, n] for k, n in top],
            "first_at": self.first_at,
            "last_at": self.last_at,
            "line": line,
        }


def cause_of(window: _Window | None) -> str:
    return NO_FAULT if window is None else f"{window.name} at {window.start:.1f} s"


def group_id(fault_id: int | None, lane: str, kind: str) -> str:
    return f"{'-' if fault_id is None else fault_id}/{lane}/{kind}"


def assign(windows, lane: str, at: float | None, found_at: float | None):
    """The window that caused an anomaly of ``lane``: the latest-starting one that contains
    ``at`` on that lane, else the latest-starting one that contains ``found_at``, else
    None (of two that start together, the later). ``windows``: objects with ``start`` and
    ``contains(lane, t)``, in the order they opened."""
    for t in (at, found_at):
        best = None
        for w in windows:
            if w.contains(lane, t) and (best is None or w.start >= best.start):
                best = w
        if best is not None:
            return best
    return None


# ------------------------------------------------------------------------------ live


class LiveOutcomes:
    """What each fault did so far; see the module's docstring."""

    def __init__(self, lanes: list[str], cfgs: list | None = None) -> None:
        self.lanes = list(lanes)
        self.cfgs = list(cfgs) if cfgs is not None else None
        self.clock = 0.0  # the latest run time seen (events, record ends)
        self._events: list[dict] = []  # the events that start or end windows
        self._windows: list[_Window] = []
        self._groups: dict[str, _Group] = {}
        self._changed_windows: set[int] = set()
        self._changed_groups: set[str] = set()
        self._open: set[int] = set()  # windows not closed as of the last advance

    # -- input ---------------------------------------------------------------------------

    def event(self, ev: dict) -> None:
        """One run event (the runner's event dicts, in order)."""
        self.clock = max(self.clock, ev["start"])
        if ev["kind"] not in WINDOW_EVENTS:
            return
        self._events.append(ev)
        spans = fault_windows(self._events, math.inf, self.lanes)
        starts = [k for k, e in enumerate(self._events) if e["kind"] in NAMES]
        for wid, (w, k) in enumerate(zip(spans, starts)):
            if wid == len(self._windows):
                self._windows.append(_Window(wid, w, k, self.lanes))
                self._open.add(wid)
                self._changed_windows.add(wid)
            win = self._windows[wid]
            for name, end in w["end"].items():
                if win.lanes[name].settle(end, self._final(win, end), win.start):
                    self._changed_windows.add(wid)

    def _final(self, win: _Window, end: float) -> bool:
        if win.kind in DONE:  # until every lane has said it is done
            later = self._events[win.event_index + 1 :]
            return sum(e["kind"] == DONE[win.kind] for e in later) >= len(self.lanes)
        return end < math.inf

    def records(self, i: int, records: list[dict]) -> None:
        """Lane ``i``'s new history records (any kinds; reads and writes are counted)."""
        ops = [r for r in records if r["kind"] in ("read", "write")]
        if not ops:
            return
        starts = np.array([r["start"] for r in ops])
        ends = np.array([r["end"] for r in ops])
        self.clock = max(self.clock, float(ends.max()))
        first, last, name = float(starts.min()), float(starts.max()), self.lanes[i]
        candidates = [
            w for w in self._windows if w.start <= last and not (w.lanes[name].final and w.lanes[name].end <= first)
        ]
        if not candidates:
            return
        is_read = np.array([r["kind"] == "read" for r in ops])
        outcome = np.array([r["outcome"] for r in ops])
        durations = ends - starts
        for w in candidates:
            lane = w.lanes[name]
            before = lane.ops
            lane.count(starts, is_read, ~is_read, outcome, durations, w.start)
            if lane.ops != before:
                self._changed_windows.add(w.id)

    def anomalies(self, i: int, found: list) -> list[str]:
        """Lane ``i``'s new anomalies (auditor.Anomaly): count them into the windows and
        their groups. Returns each one's group id, in order. Feed a round's events first."""
        name, ids = self.lanes[i], []
        for a in found:
            times = (a.at, a.found_at)
            if a.kind in _COUNTED:
                for w in self._windows:
                    if w.lanes[name].count_anomaly(a.kind, times, w.start):
                        self._changed_windows.add(w.id)
            win = assign(self._windows, name, a.at, a.found_at)
            fid = None if win is None else win.id
            gid = group_id(fid, name, a.kind)
            g = self._groups.get(gid)
            if g is None:
                g = self._groups[gid] = _Group(gid, fid, cause_of(win), name, a.kind)
            g.add(a.key, a.at if a.at is not None else a.found_at)
            self._changed_groups.add(gid)
            ids.append(gid)
        return ids

    def advance(self, now: float) -> None:
        """The run's clock (each tick): windows that closed by the time pass show it."""
        self.clock = max(self.clock, now)
        for wid in list(self._open):
            if not self._is_open(self._windows[wid]):
                self._open.discard(wid)
                self._changed_windows.add(wid)

    # -- output --------------------------------------------------------------------------

    def _is_open(self, win: _Window) -> bool:
        return not win.decided() or self.clock < max(x.end for x in win.lanes.values())

    def changes(self) -> tuple[list[dict], list[dict]]:
        """(windows, groups) that changed since the last call, as :meth:`windows` and
        :meth:`groups` give them."""
        wids, self._changed_windows = sorted(self._changed_windows), set()
        gids, self._changed_groups = sorted(self._changed_groups), set()
        return [self._as_dict(self._windows[w], None) for w in wids], [self._groups[g].as_dict() for g in gids]

    def windows(self, run_end: float | None = None) -> list[dict]:
        """Every window in :func:`report.fault_report`'s shape, plus ``id`` (its rank among
        the run's windows), ``open`` and ``caption``. With ``run_end`` (the run is over)
        the ends and numbers are the report's. Without it, an open window's ``end`` is the
        latest run time seen so far (a float, never None)."""
        ends = None
        if run_end is not None:
            self.clock = max(self.clock, run_end)
            ends = fault_windows(self._events, run_end, self.lanes)
        return [self._as_dict(w, None if ends is None else ends[w.id]["end"]) for w in self._windows]

    def groups(self) -> list[dict]:
        """Every anomaly group: ``id`` ("<fault id or ->/<lane>/<kind>"), ``fault_id``,
        ``cause``, ``lane``, ``kind``, ``count``, ``distinct_keys``, ``keys`` (the top 3
        [key, n]), ``first_at`` and ``last_at`` (run times: ``at``, else ``found_at``; None
        for anomalies found at rest, which have neither) and ``line`` (one sentence)."""
        return [g.as_dict() for g in self._groups.values()]

    def _as_dict(self, win: _Window, final_ends: dict | None) -> dict:
        if final_ends is not None:
            is_open, end = False, max(final_ends.values()) if final_ends else win.start
        else:
            is_open = self._is_open(win)
            known = max(x.end for x in win.lanes.values())
            end = min(known, max(self.clock, win.start)) if is_open else known
        fresh = not is_open
        out = {
            "id": win.id,
            "kind": win.kind,
            "name": win.name,
            "start": win.start,
            "end": end,
            "detail": win.detail,
            "lanes": {n: x.numbers(fresh, self.clock) for n, x in win.lanes.items()},
            "open": is_open,
        }
        out["caption"] = caption(out, self.lanes, self.cfgs)
        return out


# ------------------------------------------------------------------------------ words


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _plural(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"


def _outcome(x: dict) -> tuple[int, str]:
    """A lane's outcome that matters most: (rank, words); lower ranks matter more."""
    if x["lost_writes"]:
        return 0, "lost " + _plural(x["lost_writes"], "acknowledged write", "acknowledged writes")
    if x["stale_reads"]:
        return 1, "served " + _plural(x["stale_reads"], "stale read", "stale reads")
    indeterminate = x.get("indeterminate", 0)  # a window from before issue 24 has none
    if x["errors"] or x["rejected"] or indeterminate:
        parts = []
        if x["errors"]:
            parts.append("had " + _plural(x["errors"], "error", "errors"))
        if x["rejected"]:
            parts.append("rejected " + _plural(x["rejected"], "operation", "operations"))
        if indeterminate:
            parts.append(_plural(indeterminate, "write", "writes") + " that failed but may have applied")
        return 2, " and ".join(parts)
    p99 = max((v for v in (x["read_p99_ms"], x["write_p99_ms"]) if v is not None), default=None)
    if p99 is None:
        return 4, "ran no operations"
    return 3, f"p99 latency {fmt_ms(p99)} ms"


_NONE = {0: "lost none", 1: "served no stale reads", 2: "had no errors"}


def _explain(window: dict, name: str, cfg) -> str:
    """Why, only where it is certain: a fault that kills app nodes (a crash, a node's
    crash) took the acknowledged writes a volatile queue held. Decided by the lane's
    strategy (it queues writes) and knobs, never by the lane's name."""
    kind = BY_START.get(window["kind"])
    if (
        kind is not None
        and kind.kills_nodes
        and cfg is not None
        and queues_writes(cfg.strategy)
        and not cfg.write_behind.durable
        and window["lanes"][name]["lost_writes"]
    ):
        return " (its volatile queue held them)"
    return ""


def caption(window: dict, lanes: list[str], cfgs=None) -> str:
    """One sentence for a presenter: per lane, the outcome of this window that matters
    most (lost writes, then stale reads, then errors and rejections, then p99 latency),
    lanes with the same words together; "so far" while the window is open."""
    by_name = dict(zip(lanes, cfgs)) if cfgs is not None else {}
    names = [n for n in lanes if n in window["lanes"]]
    outcomes = {n: _outcome(window["lanes"][n]) for n in names}
    top = min((rank for rank, _ in outcomes.values()), default=4)
    phrases: dict[str, list[str]] = {}
    rank_of: dict[str, int] = {}
    for n in names:
        rank, words = outcomes[n]
        if top < 3 and rank > top:  # the lane does not show the fault's main outcome
            words = _NONE[top] + ("" if rank >= 3 else " but " + words)
        elif rank == top and top < 3:
            words += _explain(window, n, by_name.get(n))
        phrases.setdefault(words, []).append(n)
        rank_of.setdefault(words, rank)
    order = sorted(phrases, key=lambda words: rank_of[words])  # the worst first (stable: lane order)
    body = "; ".join(f"{_join(phrases[words])} {words}" for words in order) or "no lanes"
    so_far = " so far" if window.get("open") else ""
    return f"{window['start']:.1f} s — {window['name']}{so_far}: {body}"


def fault_table(windows: list[dict], names: list[str]) -> list[list[str]]:
    """The "what each fault did" table: a header row, then one row per window."""
    head = ["during", "window s"] + names
    body = []
    for f in windows:
        cells = []
        for n in names:
            x = f["lanes"][n]
            p99 = max((v for v in (x["read_p99_ms"], x["write_p99_ms"]) if v is not None), default=None)
            parts = [f"{x['ops']:,} ops", f"p99 {fmt_ms(p99)} ms" if p99 is not None else "p99 -"]
            if x["errors"] or x["rejected"]:
                parts.append(f"{x['errors']:,} err" + (f"/{x['rejected']:,} rej" if x["rejected"] else ""))
            if x.get("indeterminate"):
                parts.append(f"{x['indeterminate']:,} indet")
            if x["stale_reads"]:
                parts.append(f"{x['stale_reads']:,} stale")
            if x["lost_writes"]:
                parts.append(f"{x['lost_writes']:,} lost")
            cells.append(", ".join(parts))
        body.append([f["name"], f"{f['start']:.1f}-{f['end']:.1f}"] + cells)
    return [head] + body
