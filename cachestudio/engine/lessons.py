"""A lesson's claims: what a scenario says will happen, checked against a run's summary.

A scenario file states its expected outcome in an ``[expect]`` table, one claim per lane
and figure::

    [expect]
    "write-behind".lost_writes = ">0"
    "cache-aside".lost_writes = 0
    "write-through".stale_reads = "<= 5"
    "two nodes".stale_reads = ">= 0.5 * 'one node'.stale_reads"

A claim is a number (the figure must equal it) or a string: an operator (``>``, ``>=``,
``<``, ``<=``, ``==``, ``!=``) and either a number or another lane's figure, written
``'LANE'.FIGURE`` in single quotes, optionally times a number (``0.5 * 'one node'.stale_reads``):
a comparison between lanes of the same run. Figures are the summary's, per lane
(:data:`METRICS`), and figures of an event (:data:`EVENT_METRICS`).

A claim holds only on something measured. A figure that was not measured reads "—"
(None) and no claim on it holds, with the reason (:attr:`Verdict.why`): a figure of an
event reads "—" in a lane where that event never happened ("no stampede happened in this
lane"; the event is its fault kind's, :class:`EventFigure`), the hit ratio where there was no
read, an anomaly the end-of-run audit judges where that audit did not run; a comparison
with a figure that reads "—" does not hold either. ``cachestudio check --run FILE`` runs the
scenario headless and says, claim by claim, whether it held; the window's Lesson tab shows
the same verdicts at a lesson's end.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from .faultkinds import BY_NAME, FaultKind

#: figure name -> how to read it from a lane of the summary (DESIGN.md §6)
METRICS: dict[str, Callable[[dict], object]] = {
    "ops": lambda lane: lane["ops"],
    "reads": lambda lane: lane["reads"],
    "writes": lambda lane: lane["writes"],
    "errors": lambda lane: lane["errors"],
    "rejected": lambda lane: lane["rejected"],
    "indeterminate": lambda lane: lane.get("indeterminate"),  # "—" in a summary older than the figure
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
#: Why a figure of :data:`METRICS` reads "—" (None), by figure.
NOT_MEASURED = {
    "hit_ratio": "no read in this lane",
    "read_p50_ms": "no read in this lane",
    "read_p99_ms": "no read in this lane",
    "write_p50_ms": "no write in this lane",
    "write_p99_ms": "no write in this lane",
}
#: The anomalies judged at rest by the end-of-run audit: "—" in a lane it did not audit.
AUDITED = ("lost_writes", "dirty_cache", "stale_cache")


@dataclass(frozen=True)
class EventFigure:
    """A figure read from one fault kind's event of a lane (its ``done_event``, else its
    ``back_event``: the lane's own word that the fault is over), summed over every such
    event. In a lane where that event never came, the figure is "—" (None): the fault did
    not happen there, and a claim on what it did does not hold."""

    #: The fault kind (a name in :data:`faultkinds.BY_NAME`).
    fault: str
    #: The number in the event's detail (group 1; thousands separated by commas or not).
    pattern: re.Pattern
    #: What the figure is, in a few words (the docs' list of figures).
    help: str

    @property
    def kind(self) -> FaultKind:
        return BY_NAME[self.fault]

    @property
    def event(self) -> str:
        """The lane's event this figure is read from."""
        event = self.kind.done_event or self.kind.back_event
        assert event is not None, f"fault kind {self.fault} has no per-lane event to read a figure from"
        return event

    def why_absent(self, lane: str, events: list[dict]) -> str:
        """Why the figure reads "—" in ``lane``."""
        if not any(ev.get("kind") == self.kind.start_event for ev in events):
            return f"no {self.kind.label} happened in this run"
        if any(ev.get("kind") == self.event and ev.get("lane") == lane for ev in events):
            return f"a {self.event} event of this lane has no count"
        return f"no {self.kind.label} happened in this lane (no {self.event} event)"

    def __call__(self, lane: str, events: list[dict]) -> int | None:
        """The figure in ``lane``: the sum over its events, None when it had none (or one
        whose detail has no count: a figure partly known is not known)."""
        found = [ev for ev in events if ev.get("kind") == self.event and ev.get("lane") == lane]
        numbers = [self.pattern.search(ev.get("detail") or "") for ev in found]
        if not found or not all(numbers):
            return None
        return sum(int(m.group(1).replace(",", "")) for m in numbers if m)


#: Figures read from the run's events rather than the lane's table, each about one fault kind.
EVENT_METRICS: dict[str, EventFigure] = {
    # the runner's "stampede-done": "LANE: N readers of KEY caused M DB reads ..."
    "stampede_db_reads": EventFigure(
        "stampede", re.compile(r"caused (\d+) DB reads?"), "the DB reads the lane's stampedes caused, together"
    ),
    # the runner's "cache-server-back": "... before any client could reach it, it held N cached
    # entries of LANE" (counted on a socket no client knew yet)
    "cached_after_restart": EventFigure(
        "crash-cache-server",
        re.compile(r"held ([\d,]+) cached entries"),
        "the entries the lane's Redis held when it came back from a kill, over every restart",
    ),
}
FIGURES: dict[str, object] = {**METRICS, **EVENT_METRICS}
OPERATORS = {
    ">=": operator.ge,
    "<=": operator.le,
    "!=": operator.ne,
    "==": operator.eq,
    ">": operator.gt,
    "<": operator.lt,
    "=": operator.eq,
}
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_CLAIM = re.compile(rf"^\s*(>=|<=|!=|==|>|<|=)?\s*({_NUMBER})\s*$")
#: ``> 'one node'.stale_reads`` or ``>= 0.5 * 'one node'.stale_reads``
_VERSUS = re.compile(rf"^\s*(>=|<=|!=|==|>|<|=)?\s*(?:({_NUMBER})\s*\*\s*)?'([^']{{1,80}})'\.(\w{{1,40}})\s*$")
MAX_CLAIM = 160


class ClaimError(ValueError):
    """A claim that cannot be read; the message is one line."""


@dataclass(frozen=True)
class Claim:
    lane: str
    metric: str
    op: str  # one of OPERATORS (normalised: "=" is "==")
    value: float  # the number compared with, or the factor of the other lane's figure
    other: str | None = None  # the lane compared with ('LANE'.FIGURE), or None
    other_metric: str | None = None

    def text(self) -> str:
        return f'"{self.lane}".{self.metric} {self.right(f"{self.value:g}")}'

    def right(self, number: str | None = None) -> str:
        """What the figure is compared with, as a claim's value is written (``number``: how
        the number is written; exactly, by default, so that it reads back as itself)."""
        v = repr(self.value) if number is None else number
        if self.other is None:
            return f"{self.op} {v}"
        factor = "" if self.value == 1 else f"{v} * "
        return f"{self.op} {factor}'{self.other}'.{self.other_metric}"

    def holds(self, actual, bound=None) -> bool:
        """Whether ``actual`` compares with the claim's number (or with ``bound``, the other
        lane's figure, for a comparison between lanes); never on "—" (None or NaN)."""
        if self.other is not None:
            if _missing(bound):
                return False
            bound = self.value * bound
        else:
            bound = self.value
        if _missing(actual):
            return False
        return OPERATORS[self.op](actual, bound)


def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _figure(name: str) -> str:
    if name not in FIGURES:
        raise ClaimError(f"unknown figure {name!r} (known: {', '.join(FIGURES)})")
    return name


def parse_claim(lane: str, metric: str, value) -> Claim:
    """One claim of an ``[expect]`` table; :class:`ClaimError` says what is wrong."""
    _figure(metric)
    if isinstance(value, bool):
        raise ClaimError(f'a claim is a number or a string like ">0", got {str(value).lower()}')
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ClaimError(f"a claim's number must be finite, got {value}")
        return Claim(lane, metric, "==", float(value))
    if not isinstance(value, str):
        raise ClaimError(f'a claim is a number or a string like ">0", got {type(value).__name__}')
    m = _CLAIM.match(value) if len(value) <= MAX_CLAIM else None
    versus = _VERSUS.match(value) if m is None and len(value) <= MAX_CLAIM else None
    if m is None and versus is None:
        raise ClaimError(
            "a claim is an operator (> >= < <= == !=) and a number or another lane's figure, like "
            f'">0", "<= 5" or "> \'one node\'.stale_reads"; got {value[:60]!r}'
        )
    number = float((m or versus).group(2) or 1)
    if not math.isfinite(number):
        raise ClaimError(f"a claim's number must be finite, got {value[:60]!r}")
    op = (m or versus).group(1) or "=="
    op = "==" if op == "=" else op
    if versus is None:
        return Claim(lane, metric, op, number)
    return Claim(lane, metric, op, number, versus.group(3), _figure(versus.group(4)))


def _lane(summary: dict, name: str) -> dict | None:
    return next((ln for ln in summary["lanes"] if (ln.get("name") or ln["strategy"]) == name), None)


def measure(name: str, metric: str, summary: dict) -> tuple[object, str]:
    """A lane's figure from a run's summary, and why it reads "—" when it is None."""
    lane = _lane(summary, name)
    if lane is None:
        return None, f"the run has no lane {name!r}"
    if metric in EVENT_METRICS:
        events = summary.get("events") or []
        count = EVENT_METRICS[metric](name, events)
        return count, "" if count is not None else EVENT_METRICS[metric].why_absent(name, events)
    if metric in AUDITED and lane.get("audited") is False:
        return None, "the end-of-run audit did not run in this lane"
    value = METRICS[metric](lane)
    if _missing(value):
        return None, NOT_MEASURED.get(metric, "not measured in this lane")
    return value, ""


def actual(claim: Claim, summary: dict):
    """The figure a claim is about, from a run's summary (None: "—")."""
    return measure(claim.lane, claim.metric, summary)[0]


class Verdict(NamedTuple):
    """A claim judged on a run: the figure measured, the other lane's (a comparison), whether
    it held and, when it could not hold because a figure reads "—", why."""

    claim: Claim
    value: object
    held: bool
    why: str = ""
    other: object = None

    def measured(self) -> str:
        """``675`` or ``675; 'one node'.stale_reads 300`` or ``—``."""
        text = shown(self.value)
        if self.claim.other is not None:
            text += f"; '{self.claim.other}'.{self.claim.other_metric} {shown(self.other)}"
        return text


def shown(value) -> str:
    """A figure as the verdicts show it: ``1,234``, ``0.52`` or ``—``."""
    if _missing(value):
        return "—"
    return f"{value:g}" if isinstance(value, float) else f"{value:,}"


def judge(claim: Claim, summary: dict) -> Verdict:
    value, why = measure(claim.lane, claim.metric, summary)
    other = None
    if claim.other is not None and claim.other_metric is not None:
        other, why_other = measure(claim.other, claim.other_metric, summary)
        if not why and why_other:
            why = f"'{claim.other}'.{claim.other_metric} reads —: {why_other}"
    return Verdict(claim, value, claim.holds(value, other), why, other)


def check(claims: list[Claim], summary: dict) -> list[Verdict]:
    """Each claim judged on a run's summary: the figure measured and whether it held."""
    return [judge(c, summary) for c in claims]
