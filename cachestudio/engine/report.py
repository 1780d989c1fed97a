"""What each fault did: for every fault window of a run and every lane, the operations that
began in it, their errors and rejections, p99 latency, and the anomalies of that window.

Computed at the end of a run from the lanes' history files and the fault events (nothing
here is estimated). Windows: a crash lasts from the kill to one second after the lane's
restart (the downtime and the first second back, when the cache may be cold and a durable
queue replays); an outage, a slow DB, a slow cache and a burst from their start to their
end; a cold cache and a stampede from their start for one second (a stampede until the
last lane reports it done, if later). Which event starts, ends or closes each kind's window
and what it is called are :mod:`faultkinds`' declarations (``start_event``, ``end_event``,
``back_event``, ``done_event``, ``label``).
"""

from __future__ import annotations

import numpy as np

from .faultkinds import BY_START, FAULTS
from .history import read_history

AFTER_S = 1.0
#: The event that starts a fault's window -> the event that ends it.
ENDS = {k.start_event: k.end_event for k in FAULTS if k.end_event}
#: The event that starts a fault's window -> the window's name.
NAMES = {k.start_event: k.label for k in FAULTS}
#: Faults that end, per lane, when the lane is back (this event of the lane), plus AFTER_S.
BACK = {k.start_event: k.back_event for k in FAULTS if k.back_event}
#: Faults that end when every lane has said it is done (this event), AFTER_S at least.
DONE = {k.start_event: k.done_event for k in FAULTS if k.done_event}
#: Every event that starts, ends or closes a window (the rest cannot change one).
WINDOW_EVENTS = frozenset(NAMES) | frozenset(ENDS.values()) | frozenset(BACK.values()) | frozenset(DONE.values())


def fault_windows(events: list[dict], run_end: float, lanes: list[str]) -> list[dict]:
    """[{"kind", "name", "start", "end": {lane: end}}] in order of start."""
    out = []
    for i, e in enumerate(events):
        kind, t = e["kind"], e["start"]
        if kind not in NAMES:
            continue
        later = events[i + 1 :]
        if kind in BACK:
            ends = {}
            for lane in lanes:
                back = next((x["start"] for x in later if x["kind"] == BACK[kind] and x["lane"] == lane), None)
                ends[lane] = run_end if back is None else min(run_end, back + AFTER_S)
        elif kind in ENDS:
            stop = next((x["start"] for x in later if x["kind"] == ENDS[kind]), run_end)
            ends = dict.fromkeys(lanes, stop)
        elif kind in DONE:
            done = [x["start"] for x in later if x["kind"] == DONE[kind]][: len(lanes)]
            ends = dict.fromkeys(lanes, max([t + AFTER_S] + done))
        else:
            ends = dict.fromkeys(lanes, min(run_end, t + AFTER_S))
        label = window_name(kind, e["detail"])
        out.append({"kind": kind, "name": label, "start": t, "end": ends, "detail": e["detail"]})
    return out


def window_name(event_kind: str, detail: str) -> str:
    """A window's name: its kind's label, and for a kind with a choice (a burst's op) the
    choice its event's detail begins with ("burst write")."""
    kind = BY_START[event_kind]
    first = detail.split(" ", 1)[0]
    chosen = [first for p in kind.params if p.choices and first in p.choices]
    return " ".join([kind.label, *chosen[:1]])


def p99(values) -> float | None:
    """The 99th percentile in ms of durations in seconds (a list or a numpy array)."""
    return round(float(np.percentile(np.asarray(values) * 1000.0, 99)), 3) if len(values) else None


def fault_report(lanes, events: list[dict], run_end: float) -> list[dict]:
    """``lanes``: the runner's LabHandles (their history files and auditors)."""
    names = [lane.cfg.label for lane in lanes]
    if not fault_windows(events, run_end, names):
        return []
    records = []
    for lane in lanes:
        ops: list[dict] = []
        for inc in range(lane.inc + 1):
            f = lane.paths.history_file(inc)
            if f.exists():
                ops.extend(r for r in read_history(f) if r["kind"] in ("read", "write"))
        records.append(ops)
    anomalies = [
        [{"kind": a.kind, "at": a.at, "found_at": a.found_at} for a in lane.auditor.anomalies] for lane in lanes
    ]
    return fault_report_records(names, records, anomalies, events, run_end)


def fault_report_records(
    names: list[str], records: list[list[dict]], anomalies: list[list[dict]], events: list[dict], run_end: float
) -> list[dict]:
    """The same from the lanes' operation records and anomalies (dicts with ``kind``,
    ``at``, ``found_at``): what a recording holds."""
    windows = fault_windows(events, run_end, names)
    if not windows:
        return []
    for w in windows:
        w["lanes"] = {}
    for name, ops, found_all in zip(names, records, anomalies):
        ops = [r for r in ops if r["kind"] in ("read", "write")]
        for w in windows:
            lo, hi = w["start"], w["end"].get(name, run_end)
            inside = [r for r in ops if lo <= r["start"] < hi]
            reads = [r["end"] - r["start"] for r in inside if r["kind"] == "read"]
            writes = [r["end"] - r["start"] for r in inside if r["kind"] == "write"]
            # an anomaly belongs to the window it happened in, or was found in (a kill)
            found = [
                a for a in found_all if any(t is not None and lo <= t < hi for t in (a.get("at"), a.get("found_at")))
            ]
            w["lanes"][name] = {
                "ops": len(inside),
                "errors": sum(r["outcome"] == "error" for r in inside),
                "rejected": sum(r["outcome"] == "rejected" for r in inside),
                "indeterminate": sum(r["outcome"] == "indeterminate" for r in inside),
                "read_p99_ms": p99(reads),
                "write_p99_ms": p99(writes),
                "stale_reads": sum(a["kind"] == "stale_read" for a in found),
                "lost_writes": sum(a["kind"] == "lost_write" for a in found),
            }
    for w in windows:
        w["end"] = max(w["end"].values()) if w["end"] else run_end
    return windows
