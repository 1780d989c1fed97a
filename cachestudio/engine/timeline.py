"""The fault timeline of a run: bounded, merged where faults overlap, refused where they conflict.

A timeline is the dict that :class:`scenario.Scenario` (``timeline``) and :class:`runner.Plan`
(its fields) share::

    crash_at    [t]                      cold_at    [t]
    outages     [(start, duration)]      bursts     [(t, "read" | "write", count)]
    slow_db     [(start, duration, ms)]  stampedes  [(t, readers)]
    slow_cache  [(start, duration, ms)]  node_crashes    [(t, node)]
                                         server_crashes  [t]   (the cache server)

Its fields, their entries and how each kind merges are :mod:`faultkinds`' declarations
(``field``, ``params``, ``merge``); the limits (``MAX_*``) are declared there and re-exported.

Why this module: at run time the runner keeps *one* state per kind of fault (one outage lock,
one injected slow-DB latency, one injected slow-cache latency). A second fault of a kind
that began while the first still lasted was lost without a word: a second outage was
ignored and the first one's end ended both; a second slow-DB window replaced the latency
and the first one's end removed it. (A second burst used to replace what was left of the
first; a lab now queues bursts, so every burst runs in full.) :func:`normalize` decides
before anything runs what each overlap means, and says so in one note per decision (the
command line and ``cachestudio check`` print them):

* **outages** that overlap or touch become one outage from the earliest start to the latest
  end: the database is down exactly while any of them asked for it. Touching ones too,
  because an end and a start at the same instant would race in the runner's schedule.
* **slow-db / slow-cache** windows that overlap or touch with the same ``ms`` become one
  window, for the same reasons. Windows that *overlap* with different ``ms`` are refused
  (:class:`TimelineConflict`, naming both): which latency applies in the overlap is the
  user's choice, not ours. Windows that only touch with different ``ms`` are kept: a step
  from one latency to the other (the output is sorted by start, and the runner keeps the
  order of events due at the same instant, so the first ends before the second begins).
* A merged window longer than :data:`MAX_WINDOW_S` (the longest a single fault may be) is
  refused rather than kept, so every window of a normalized timeline is one a user could
  have written: the runner's checks accept it and ``timeline_toml`` saves a file that loads.
* **crashes** at the same instant become one crash (a dead node cannot die twice at once);
  so do **cold** caches at the same instant (flushing an empty cache again does nothing).
* **bursts** are kept as given, even at the same instant: a lab queues a burst behind the
  one under way (one of the same op adds to it), so each runs in full, one after the other.
* **stampedes** are kept as given, even at the same instant: each is its own set of readers
  behind its own barrier (at most :data:`MAX_READERS` each), as a presenter pressing K five
  times would get.

Every other combination is kept as given. Faults are never dropped.

:func:`check_count` bounds the number of faults (:data:`MAX_FAULTS`): each one is
scheduled, watched and reported after the run (about 5 ms each), and 10,000 faults added
46 s to a 5 s run.

The functions expect entries whose values were already checked one by one (finite, in
range); they check only what arises from combining them.
"""

from __future__ import annotations

import math
from collections import defaultdict

from .config import ConfigError
from .faultkinds import BY_FIELD, FIELDS, MAX_BURST, MAX_FAULTS, MAX_READERS, MAX_WINDOW_S

__all__ = [
    "FIELDS",
    "KIND",
    "MAX_BURST",
    "MAX_FAULTS",
    "MAX_READERS",
    "MAX_WINDOW_S",
    "TimelineConflict",
    "check_count",
    "fault_count",
    "normalize",
]

#: The name of one fault of each field, as a scenario file and the notes spell it.
KIND = {k.field: k.name for k in BY_FIELD.values()}


class TimelineConflict(ConfigError):
    """Faults that cannot all happen as asked. ``entries`` are the input entries involved
    (of ``field``), so that a scenario file can name the line of one of them."""

    def __init__(self, message: str, field: str, entries: list) -> None:
        super().__init__(message)
        self.field = field
        self.entries = list(entries)


def _t(x: float) -> str:
    """A time or a latency as people write it (``1.5``, not ``1.5000000000000002``)."""
    return f"{x:.10g}"


def _span(start: float, end: float) -> str:
    return f"{_t(start)}-{_t(end)} s"


def _listing(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def fault_count(timeline: dict[str, list]) -> int:
    return sum(len(timeline.get(f, ())) for f in FIELDS)


def check_count(timeline: dict[str, list]) -> int:
    """The number of faults in ``timeline``; :class:`ConfigError` beyond :data:`MAX_FAULTS`."""
    n = fault_count(timeline)
    if n > MAX_FAULTS:
        raise ConfigError(
            f"{n:,} faults in one run: at most {MAX_FAULTS:,} (each one is scheduled, watched and reported)"
        )
    return n


def _length_to(start: float, end: float) -> float:
    """The duration ``d`` for which the runner's ``start + d`` is ``end``, or else the
    smallest one that goes past it (some ends are not reachable in floating point: then a
    window lasts a few 1e-16 s longer rather than losing them)."""
    d = end - start
    while start + d > end:
        d = math.nextafter(d, 0.0)
    while start + d < end:
        d = math.nextafter(d, math.inf)
    return d


def _windows(field: str, windows: list[tuple], notes: list[str]) -> list[tuple]:
    """Merge overlapping or touching windows of one kind (``(start, duration[, ms])``)."""
    kind = KIND[field]
    out: list[tuple] = []
    group: list[tuple] = []  # windows merged so far, by start
    end = 0.0  # the latest end in the group
    overlap = False  # did a window of the group begin before the group's end (not just touch it)?

    def emitted() -> tuple:
        """The group as one window (the runner ends it at ``start + duration``)."""
        if len(group) == 1:
            return group[0]
        return (group[0][0], _length_to(group[0][0], end)) + group[0][2:]

    def close() -> None:
        window = emitted()
        out.append(window)
        if len(group) == 1:
            return
        start, ms = window[0], window[2:]
        spans = _listing([_span(w[0], w[0] + w[1]) for w in group])
        name = f"{kind}s" if len(group[0]) == 2 else f"{kind} windows"  # outages; slow-db windows
        if window[1] > MAX_WINDOW_S:
            raise TimelineConflict(
                f"{name} {spans} overlap: merged they would last {_t(window[1])} s, more than {MAX_WINDOW_S:g} s",
                field,
                group,
            )
        at = f" at {_t(ms[0])} ms" if ms else ""
        notes.append(
            f"{name} {spans}{at} {'overlap' if overlap else 'touch'}: merged into one "
            f"{kind}{' window' if ms else ''} {_span(start, end)}{at}"
        )

    for w in sorted(windows):
        start, stop = w[0], w[0] + w[1]
        if group:
            current = emitted()
            reached = current[0] + current[1]  # >= end; > only by a few 1e-16 s
            if start <= reached and w[2:] == group[0][2:]:
                overlap = overlap or start < end
                group.append(w)
                end = max(end, stop)
                continue
            if start < reached:  # a different latency in the middle of a window
                first = next((g for g in group if g[0] + g[1] > start), current)
                raise TimelineConflict(
                    f"{kind} {_span(start, stop)} at {_t(w[2])} ms overlaps {kind} "
                    f"{_span(first[0], first[0] + first[1])} at {_t(first[2])} ms: overlapping "
                    f"{kind} windows must have the same ms (or make them one window)",
                    field,
                    [first, w] if first is not current else [*group, w],
                )
            close()
        group, end, overlap = [w], stop, False
    if group:
        close()
    return out


def _instants(field: str, times: list[float], notes: list[str]) -> list[float]:
    kind = BY_FIELD[field]
    seen: dict[float, int] = defaultdict(int)
    for t in times:
        seen[t] += 1
    for t, n in sorted(seen.items()):
        if n > 1:
            notes.append(f"{n} {kind.name} faults at {_t(t)} s: merged into one ({kind.merge_why})")
    return sorted(seen)


def _kept(items: list[tuple]) -> list[tuple]:
    """Bursts and stampedes: every one happens (sorted by time, order kept at one instant)."""
    return sorted(items, key=lambda item: item[0])


def normalize(timeline: dict[str, list]) -> tuple[dict[str, list], list[str]]:
    """The timeline with overlapping faults merged (every list sorted), and one note per
    merge. Raises :class:`TimelineConflict` (a :class:`ConfigError`) for faults that cannot
    all happen as asked. A normalized timeline normalizes to itself, without notes."""
    unknown = set(timeline) - set(FIELDS)
    if unknown:
        raise ValueError(f"not timeline fields: {', '.join(sorted(unknown))}")
    notes: list[str] = []
    out: dict[str, list] = {}
    for kind in BY_FIELD.values():
        given = timeline.get(kind.field, [])
        if kind.merge == "instant":
            out[kind.field] = _instants(kind.field, list(given), notes)
        elif kind.merge == "window":
            out[kind.field] = _windows(kind.field, [tuple(w) for w in given], notes)
        elif kind.merge == "same":  # the same node killed twice at one instant is one kill
            out[kind.field] = sorted({tuple(x) for x in given})
        else:
            out[kind.field] = _kept([tuple(x) for x in given])
    return out, notes
