"""A lesson's claims: what a scenario says will happen, checked against a run's summary.

A scenario file states its expected outcome in an ``[expect]`` table, one claim per lane
and figure::

    [expect]
    "write-behind".lost_writes = ">0"
    "cache-aside".lost_writes = 0
    "write-through".stale_reads = "<= 5"

A claim is a number (the figure must equal it) or a string: an operator (``>``, ``>=``,
``<``, ``<=``, ``==``, ``!=``) and a number. Figures are the summary's, per lane
(:data:`METRICS`). ``cachestudio check --run FILE`` runs the scenario headless and says,
claim by claim, whether it held.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

#: figure name -> how to read it from a lane of the summary (DESIGN.md §6)
METRICS = {
    "ops": lambda lane: lane["ops"],
    "reads": lambda lane: lane["reads"],
    "writes": lambda lane: lane["writes"],
    "errors": lambda lane: lane["errors"],
    "rejected": lambda lane: lane["rejected"],
    "indeterminate": lambda lane: lane["indeterminate"],
    "hit_ratio": lambda lane: lane["hit_ratio"],
    "stale_reads": lambda lane: lane["anomalies"]["stale_reads"],
    "lost_writes": lambda lane: lane["anomalies"]["lost_writes"],
    "dirty_cache": lambda lane: lane["anomalies"]["dirty_cache"],
    "stale_cache": lambda lane: lane["anomalies"]["stale_cache"],
    "db_reads": lambda lane: lane["db"]["reads"],
    "db_writes": lambda lane: lane["db"]["writes"],
    "incarnations": lambda lane: lane["incarnations"],
    "queue_max_depth": lambda lane: lane["queue"]["max_depth"],
    "dead_letters": lambda lane: lane["queue"]["dead_letters"],
    "read_p50_ms": lambda lane: lane["latency_ms"]["read"]["p50"],
    "read_p99_ms": lambda lane: lane["latency_ms"]["read"]["p99"],
    "write_p50_ms": lambda lane: lane["latency_ms"]["write"]["p50"],
    "write_p99_ms": lambda lane: lane["latency_ms"]["write"]["p99"],
}
STAMPEDE_DB_READS = re.compile(r"caused (\d+) DB reads?")
CACHED_AFTER_RESTART = re.compile(r"holds ([\d,]+) cached entries")
#: Figures read from the run's events rather than the lane's table.
EVENT_METRICS: dict[str, Callable[[str, list[dict]], int]] = {
    # DB reads the lane's stampedes caused, all of them together (the runner's
    # "stampede-done" event: "LANE: N readers of KEY caused M DB reads ...")
    "stampede_db_reads": lambda lane, events: sum(
        int(m.group(1))
        for ev in events
        if ev.get("kind") == "stampede-done" and ev.get("lane") == lane
        for m in [STAMPEDE_DB_READS.search(ev.get("detail") or "")]
        if m
    ),
    # cache entries the lane found in its Redis server when it came back from a kill (the
    # runner's "cache-server-back" event), over every such restart
    "cached_after_restart": lambda lane, events: sum(
        int(m.group(1).replace(",", ""))
        for ev in events
        if ev.get("kind") == "cache-server-back" and ev.get("lane") == lane
        for m in [CACHED_AFTER_RESTART.search(ev.get("detail") or "")]
        if m
    ),
}
FIGURES = {**METRICS, **EVENT_METRICS}
OPERATORS = {
    ">=": operator.ge,
    "<=": operator.le,
    "!=": operator.ne,
    "==": operator.eq,
    ">": operator.gt,
    "<": operator.lt,
    "=": operator.eq,
}
_CLAIM = re.compile(r"^\s*(>=|<=|!=|==|>|<|=)?\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


class ClaimError(ValueError):
    """A claim that cannot be read; the message is one line."""


@dataclass(frozen=True)
class Claim:
    lane: str
    metric: str
    op: str  # one of OPERATORS (normalised: "=" is "==")
    value: float

    def text(self) -> str:
        v = f"{self.value:g}"
        return f'"{self.lane}".{self.metric} {self.op} {v}'

    def holds(self, actual) -> bool:
        if actual is None or (isinstance(actual, float) and math.isnan(actual)):
            return False
        return OPERATORS[self.op](actual, self.value)


def parse_claim(lane: str, metric: str, value) -> Claim:
    """One claim of an ``[expect]`` table; :class:`ClaimError` says what is wrong."""
    if metric not in FIGURES:
        raise ClaimError(f"unknown figure {metric!r} (known: {', '.join(FIGURES)})")
    if isinstance(value, bool):
        raise ClaimError(f'a claim is a number or a string like ">0", got {str(value).lower()}')
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ClaimError(f"a claim's number must be finite, got {value}")
        return Claim(lane, metric, "==", float(value))
    if not isinstance(value, str):
        raise ClaimError(f'a claim is a number or a string like ">0", got {type(value).__name__}')
    m = _CLAIM.match(value)
    if m is None or len(value) > 60:
        raise ClaimError(
            f'a claim is an operator (> >= < <= == !=) and a number, like ">0" or "<= 5"; got {value[:60]!r}'
        )
    number = float(m.group(2))
    if not math.isfinite(number):
        raise ClaimError(f"a claim's number must be finite, got {value[:60]!r}")
    op = m.group(1) or "=="
    return Claim(lane, metric, "==" if op == "=" else op, number)


def actual(claim: Claim, summary: dict):
    """The figure a claim is about, from a run's summary (None if the lane is not there)."""
    for lane in summary["lanes"]:
        name = lane.get("name") or lane["strategy"]
        if name == claim.lane:
            if claim.metric in EVENT_METRICS:
                return EVENT_METRICS[claim.metric](name, summary.get("events") or [])
            return METRICS[claim.metric](lane)
    return None


def check(claims: list[Claim], summary: dict) -> list[tuple[Claim, object, bool]]:
    """Each claim with the figure measured and whether it held."""
    return [(c, actual(c, summary), c.holds(actual(c, summary))) for c in claims]
