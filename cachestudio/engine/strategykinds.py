"""Every strategy, declared once: its name, its flows, how it is drawn and told.

The code of each strategy is in :mod:`strategies` (it reads like the seed). This table is
what everything else needs to know *about* a strategy, so that no other module compares a
lane's strategy (let alone its name) with a literal: the command line's choices, the
config's check, record codes, the flow view's paths and narration, the charts' colours and
pens, the HTML report's dashes, the auditor's and the captions' reasons are derived from it
(``tests/test_declarations.py`` fails, naming what is missing, when a strategy lacks one).

Decisions are made by property (``queues_writes``), never by name: a named lane
("volatile=write-behind") and a fourth strategy take the same path as the three of the seed.

No Qt here: colours are names of the Okabe–Ito palette (:mod:`palette`).
"""

from __future__ import annotations

from dataclasses import dataclass

#: The nodes a request visits, as the flow view draws them.
NODES = ("clients", "cache", "db", "queue")

#: A read's path by its outcome, the same for every strategy of the seed: (nodes, token, fails).
READ_PATHS: dict[str, tuple[tuple[str, ...], str, bool]] = {
    "hit": (("clients", "cache", "clients"), "hit", False),
    "miss": (("clients", "cache", "db", "cache", "clients"), "miss", False),
    "error": (("clients", "cache", "db"), "error", True),
}


@dataclass(frozen=True)
class StrategyKind:
    name: str
    #: Short code in record ids ("wb#123") and file names.
    code: str
    #: The label of its lane where space is short (charts' legends, the event strip).
    short: str
    #: Okabe–Ito colour name, Qt pen style name, SVG dash pattern (the HTML report).
    colour: str
    pen: str
    dash: str
    #: It acknowledges a write before the database has it (a write queue and a flusher):
    #: it can lose acknowledged writes in a crash, it has a queue depth, its writes reach
    #: the database later.
    queues_writes: bool
    #: A write's path by its outcome: (nodes, token kind, stops with a failure).
    write_paths: dict[str, tuple[tuple[str, ...], str, bool]]
    #: The node whose step makes a write reach the store, or certain to (the DB commit; the
    #: enqueue of a strategy that queues writes: its flusher writes whatever was queued, a
    #: volatile queue as surely as it does an acknowledged write's). It is on the ``ok``
    #: path. An error after it is ``indeterminate`` (the client saw an error, the write may
    #: have applied: DESIGN.md §4); an error before or in it is an ``error``.
    applies_at: str
    #: What an acknowledged write does, in a few words (the flow view's narration).
    write_steps: str
    #: The strategy in one sentence (the window's lane tooltip, the guides).
    summary: str

    @property
    def indeterminate_path(self) -> tuple[tuple[str, ...], str, bool] | None:
        """A write that failed after the step that applies it: the ``ok`` path up to its
        last step, which failed (drawn as an error: the client saw one). None when that
        step is the write's last (nothing after it can fail)."""
        nodes = self.write_paths["ok"][0]
        steps = nodes[1:-1]  # between the client's request and its reply
        if self.applies_at not in steps or steps.index(self.applies_at) == len(steps) - 1:
            return None
        return nodes[:-1], "error", True

    @property
    def paths(self) -> dict[tuple[str, str], tuple[tuple[str, ...], str, bool]]:
        """(operation, outcome) -> (nodes, token kind, stops with a failure)."""
        out = {("read", o): p for o, p in READ_PATHS.items()}
        out.update({("write", o): p for o, p in self.write_paths.items()})
        if self.indeterminate_path is not None:
            out[("write", "indeterminate")] = self.indeterminate_path
        return out


STRATEGY_KINDS: tuple[StrategyKind, ...] = (
    StrategyKind(
        name="cache-aside",
        code="ca",
        short="CA",
        colour="blue",
        pen="solid",
        dash="",
        queues_writes=False,
        write_paths={
            "ok": (("clients", "db", "cache", "clients"), "write", False),  # DB, then delete key
            "error": (("clients", "db"), "error", True),  # the DB write failed: not applied
        },
        applies_at="db",
        write_steps="DB write → delete cache key",
        summary="reads fill the cache on a miss; a write goes to the database, then deletes the cached key",
    ),
    StrategyKind(
        name="write-through",
        code="wt",
        short="WT",
        colour="orange",
        pen="dash",
        dash="7 3",
        queues_writes=False,
        write_paths={
            "ok": (("clients", "cache", "db", "clients"), "write", False),
            "error": (("clients", "cache", "db"), "error", True),
        },
        applies_at="db",  # the last step: a write-through write is never indeterminate
        write_steps="set cache → DB write",
        summary="a write sets the cache and then the database before it is acknowledged",
    ),
    StrategyKind(
        name="write-behind",
        code="wb",
        short="WB",
        colour="green",
        pen="dot",
        dash="2 2.5",
        queues_writes=True,
        write_paths={
            "ok": (("clients", "queue", "cache", "clients"), "write", False),
            "rejected": (("clients", "queue"), "rejected", True),  # never touches the cache
            "error": (("clients", "queue"), "error", True),  # the enqueue failed
        },  # enqueued, then the cache set failed: indeterminate (its path is derived)
        applies_at="queue",
        write_steps="queued → set cache; DB write later",
        summary="a write is queued and set in the cache, acknowledged at once; a flusher writes the database later",
    ),
)

BY_NAME: dict[str, StrategyKind] = {s.name: s for s in STRATEGY_KINDS}
#: The strategies' names, in the order lanes are shown.
STRATEGIES: tuple[str, ...] = tuple(s.name for s in STRATEGY_KINDS)
#: The path of a queued write from the queue to the database (the flusher).
FLUSH_PATH: tuple[tuple[str, ...], str, bool] = (("queue", "db"), "flush", False)


def queues_writes(strategy: str) -> bool:
    """Does this strategy acknowledge writes before the database has them?"""
    kind = BY_NAME.get(strategy)
    return kind is not None and kind.queues_writes
