"""Every kind of fault, declared once: what it takes, how it is spelled, what it is called.

A :class:`FaultKind` is the one place a fault kind is written down. The command line's flag
and its parser, the scenario file's keys and their checks, the plan's field and its
scheduling, the events that start and end its window, the label on the event strip and in
the report, the shade on the charts, the lesson guides' words and the window's one-key
action are all derived from it (``tests/test_declarations.py`` fails, naming what is
missing, when a kind lacks one of them).

A fault's entry in a timeline (:mod:`timeline`, :class:`runner.Plan`) is its time alone when
it has no parameters (``crash_at: [3.0]``), else the tuple ``(time, *parameters)`` in the
order of :attr:`FaultKind.params` (``slow_db: [(3.0, 5.0, 50.0)]``).

No Qt here: the window takes its colours from :mod:`palette` by the names given here.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import MAX_NODES

#: Faults in one run (a scenario's and the command line's together).
MAX_FAULTS = 1000
#: The longest outage or slow window, in seconds (also after merging).
MAX_WINDOW_S = 3600.0
#: Operations of one burst.
MAX_BURST = 10_000_000
#: Concurrent readers of one stampede (threads in each lab).
MAX_READERS = 500
#: The longest injected latency, in ms.
MAX_INJECTED_MS = 10_000.0


@dataclass(frozen=True)
class Param:
    """One parameter of a fault: its scenario key, its type, default and range.

    ``default`` None: required (in a scenario file and on the command line). ``live``: the
    value the window's one-key action uses, where it differs from ``default`` (a window
    action has no file to read a required value from)."""

    name: str
    type: type  # float, int or str
    default: float | int | str | None
    lo: float | None = None
    hi: float | None = None
    unit: str = ""
    choices: tuple[str, ...] = ()
    live: float | int | str | None = None
    help: str = ""
    #: How a message names it, where its name would not say it ("--slow-db latency"); "": its name.
    what: str = ""

    @property
    def word(self) -> str:
        return self.what or self.name

    @property
    def live_value(self) -> float | int | str:
        value = self.default if self.live is None else self.live
        assert value is not None, f"{self.name} has neither a default nor a live value"
        return value


@dataclass(frozen=True)
class Variant:
    """A second one-key action of a fault kind in the window: its text, keys and the
    parameter values it sets on top of :meth:`FaultKind.live_values` (the read burst)."""

    text: str
    keys: tuple[str, ...]
    values: tuple[tuple[str, float | int | str], ...]


@dataclass(frozen=True)
class FaultKind:
    """A kind of fault. See the module's docstring for what derives from each field."""

    #: The scenario file's ``kind`` and the stem of the command-line flag: ``slow-db``.
    name: str
    #: The timeline's and :class:`runner.Plan`'s field: ``slow_db``.
    field: str
    params: tuple[Param, ...]
    #: The command-line flag (repeatable) and the help it prints.
    flag: str
    help: str
    #: "a slow DB": how a sentence names one (``an outage at 12 s is outside the run``).
    noun: str
    #: The name of its window in the report, the captions and the event strip: "slow DB (injected)".
    label: str
    #: The history event that starts it, and the one that ends its window (None: it is an
    #: instant, or it ends per lane with ``back_event``).
    start_event: str
    end_event: str | None
    #: A fault that lasts, per lane, until the lane is back: this event of the lane.
    back_event: str | None
    #: The shade on the charts and the event strip (a name in :data:`SHADES`).
    shade: str
    #: Its effect is injected by the lab (a delay), not a real failure: labelled so everywhere.
    injected: bool
    #: What it does, in one sentence (the lesson guides' fault table, the window's tooltip).
    sentence: str
    #: The window's action: its text and keys (None: no one-key action, see ``no_action``).
    action: str | None
    keys: tuple[str, ...] = ()
    #: Why the window has no one-key action for it, when it has none.
    no_action: str = ""
    #: What the run needs for it: "" (any run), "redis" (the run's own redis-server).
    needs: str = ""
    #: How :func:`timeline.normalize` merges faults of this kind: "instant" (at one instant:
    #: one), "window" (overlapping or touching windows: one), "same" (identical ones: one),
    #: "keep" (every one happens). ``merge_why``: the note's reason for an "instant" merge.
    merge: str = "keep"
    merge_why: str = ""
    #: It kills app nodes (their lab processes, a volatile write queue with them).
    kills_nodes: bool = False
    #: The event each lane sends when its part is over (its window lasts until every lane
    #: has sent it, and at least one second): None for the rest.
    done_event: str | None = None
    #: The window's action turns it on until it is pressed again (its duration is not used).
    toggles: bool = False
    #: More one-key actions of this kind in the window (each with values of its own).
    variants: tuple[Variant, ...] = ()

    @property
    def metavar(self) -> str:
        """``SEC:DURATION[:MS]``: the time, then each parameter; optional ones in brackets
        (a trailing parameter with a default may be left out)."""
        text, optional = "SEC", 0
        for p in self.params:
            word = p.name.upper()
            if p.default is None:
                text += f":{word}"
            else:  # each optional one only after the one before it: SEC[:OP[:COUNT]]
                text += f"[:{word}"
                optional += 1
        return text + "]" * optional

    @property
    def command(self) -> str:
        """The :class:`runner.Run` method that fires it now (``slow_db``)."""
        return self.name.replace("-", "_")

    @property
    def window(self) -> bool:
        """A fault with a duration (its end is an event of its own)."""
        return self.end_event is not None

    def entry(self, at: float, values: dict) -> float | tuple:
        """The timeline entry of one fault at ``at`` with its parameter ``values`` (by name)."""
        if not self.params:
            return at
        return (at, *(values[p.name] for p in self.params))

    def values(self, entry: float | tuple) -> tuple[float, dict]:
        """The time and the parameters (by name) of a timeline entry: :meth:`entry` undone."""
        if not self.params:
            return float(entry), {}  # type: ignore[arg-type]
        at, *rest = entry  # type: ignore[misc]
        return float(at), {p.name: v for p, v in zip(self.params, rest, strict=True)}

    def live_values(self, variant: Variant | None = None) -> dict:
        """The parameters of the window's one-key action (or of one of its ``variants``)."""
        values = {p.name: p.live_value for p in self.params}
        return values if variant is None else {**values, **dict(variant.values)}

    @property
    def time_word(self) -> str:
        """What its time is called in messages: "start" for a fault that lasts, else "time"."""
        return "start" if any(p.name == "duration" for p in self.params) else "time"

    def describe(self, values: dict) -> str:
        """One fault in words (the lesson guides' timeline): its label, its sentence with the
        parameters' values in place of their names (``MS`` → ``50``), and the values the
        sentence does not name in brackets: ``DB outage: another connection … (duration 4 s)``."""
        text, rest = self.sentence, []
        for p in self.params:
            value = values[p.name]
            shown = f"{value:,}" if isinstance(value, int) else f"{value:g}" if isinstance(value, float) else str(value)
            if p.name.upper() in text:
                text = text.replace(p.name.upper(), shown)
            else:
                rest.append(f"{p.name} {shown}{' ' + p.unit if p.unit else ''}")
        return f"{self.label}: {text}" + (f" ({', '.join(rest)})" if rest else "")


def _duration() -> Param:
    return Param("duration", float, None, 0.001, MAX_WINDOW_S, "s", live=5.0, help="how long it lasts")


def _ms(default: float, live: float) -> Param:
    return Param(
        "ms", float, default, 0.001, MAX_INJECTED_MS, "ms", live=live, help="added to every call", what="latency"
    )


#: Every fault kind, in the order the window, the guides and the help list them.
FAULTS: tuple[FaultKind, ...] = (
    FaultKind(
        name="crash",
        field="crash_at",
        params=(),
        flag="--crash-at",
        help="SIGKILL the cache node at SEC and restart it (repeatable)",
        noun="a crash",
        label="crash",
        start_event="crash",
        end_event=None,
        back_event="restart",
        shade="crash",
        injected=False,
        sentence="the lab's process (cache node and write queue) is killed with SIGKILL and restarted "
        "after the restart delay",
        action="Crash cache node",
        keys=("C",),
        merge="instant",
        merge_why="a dead node cannot die twice at once",
        kills_nodes=True,
    ),
    FaultKind(
        name="outage",
        field="outages",
        params=(_duration(),),
        flag="--outage",
        help="hold the database lock from SEC for DURATION seconds (repeatable)",
        noun="an outage",
        label="DB outage",
        start_event="outage-start",
        end_event="outage-end",
        back_event=None,
        shade="outage",
        injected=False,
        sentence="another connection holds the database's lock, so every database call fails or waits until it ends",
        action="DB outage",
        keys=("O",),
        merge="window",
    ),
    FaultKind(
        name="slow-db",
        field="slow_db",
        params=(_duration(), _ms(50.0, 20.0)),
        flag="--slow-db",
        help="inject MS (default 50) on every DB call for DURATION (repeatable)",
        noun="a slow DB",
        label="slow DB (injected)",
        start_event="slow-db-start",
        end_event="slow-db-end",
        back_event=None,
        shade="slow-db",
        injected=True,
        sentence="every database call waits MS milliseconds more (injected by the lab)",
        action="Slow DB",
        keys=("S",),
        toggles=True,
        merge="window",
    ),
    FaultKind(
        name="slow-cache",
        field="slow_cache",
        params=(_duration(), _ms(20.0, 5.0)),
        flag="--slow-cache",
        help="inject MS (default 20) on every cache call for DURATION (repeatable)",
        noun="a slow cache",
        label="slow cache (injected)",
        start_event="slow-cache-start",
        end_event="slow-cache-end",
        back_event=None,
        shade="slow-cache",
        injected=True,
        sentence="every cache call waits MS milliseconds more (injected by the lab)",
        action="Slow cache",
        keys=("L",),
        toggles=True,
        merge="window",
    ),
    FaultKind(
        name="cold",
        field="cold_at",
        params=(),
        flag="--cold-at",
        help="flush every cache at SEC: a cold cache (repeatable)",
        noun="a cold cache",
        label="cold cache",
        start_event="cold-cache",
        end_event=None,
        back_event=None,
        shade="cold",
        injected=False,
        sentence="every cache is emptied at once, so the next reads all miss",
        action="Cold cache",
        keys=("F",),
        merge="instant",
        merge_why="an empty cache stays empty",
    ),
    FaultKind(
        name="burst",
        field="bursts",
        params=(
            Param("op", str, "write", choices=("read", "write"), help="what the burst does"),
            Param("count", int, 2000, 1, MAX_BURST, "operations", help="operations per lane"),
        ),
        flag="--burst",
        help="at SEC, COUNT extra reads or writes per lane, flat out (repeatable)",
        noun="a burst",
        label="burst",
        start_event="burst",
        end_event="burst-end",
        back_event=None,
        shade="burst",
        injected=False,
        sentence="each lane runs COUNT extra reads or writes as fast as it can",
        action="Write burst",
        keys=("B",),
        variants=(Variant("Read burst", ("Shift+B",), (("op", "read"),)),),
    ),
    FaultKind(
        name="stampede",
        field="stampedes",
        params=(Param("readers", int, 50, 2, MAX_READERS, "readers", help="clients reading at once"),),
        flag="--stampede",
        help="at SEC the hot key k0 expires and READERS (default 50) clients read it at once",
        noun="a stampede",
        label="stampede",
        start_event="stampede",
        end_event=None,
        back_event=None,
        done_event="stampede-done",
        shade="stampede",
        injected=False,
        sentence="the hot key k0 expires and READERS clients read it at the same moment",
        action="Stampede",
        keys=("K",),
    ),
    FaultKind(
        name="crash-node",
        field="node_crashes",
        params=(Param("node", int, 0, 0, MAX_NODES - 1, "", help="which app node (0 is the first)"),),
        flag="--crash-node",
        help="kill one app node of each lane (SIGKILL) at SEC (repeatable)",
        noun="a node's crash",
        label="node crash",
        start_event="crash-node",
        end_event=None,
        back_event="restart",
        shade="crash",
        injected=False,
        sentence="one app node of each lane (its process, queue included) is killed with SIGKILL and "
        "restarted after the restart delay",
        action=None,
        no_action="a lane with one node has only the cache node: Crash cache node (C) kills it",
        merge="same",
        kills_nodes=True,
    ),
    FaultKind(
        name="crash-cache-server",
        field="server_crashes",
        params=(),
        flag="--crash-cache-server",
        help="kill the run's own redis-server (SIGKILL) at SEC; it restarts after the restart delay",
        noun="a cache server's crash",
        label="cache server crash",
        start_event="crash-cache-server",
        end_event=None,
        back_event="cache-server-back",
        shade="crash",
        injected=False,
        sentence="the run's own redis-server is killed with SIGKILL and started again after the restart delay",
        action=None,
        no_action="needs the run's own redis-server: chosen in scenario files and on the command line",
        needs="redis",
        merge="instant",
        merge_why="a dead server cannot die twice at once",
    ),
)

BY_NAME: dict[str, FaultKind] = {k.name: k for k in FAULTS}
BY_FIELD: dict[str, FaultKind] = {k.field: k for k in FAULTS}
#: The fault kind an event starts (``outage-start`` → outage).
BY_START: dict[str, FaultKind] = {k.start_event: k for k in FAULTS}
#: The fault kind whose window an event ends (``outage-end`` → outage).
BY_END: dict[str, FaultKind] = {k.end_event: k for k in FAULTS if k.end_event}
#: The timeline's fields, in declaration order.
FIELDS: tuple[str, ...] = tuple(k.field for k in FAULTS)

#: The shades of the charts and the event strip: colour name (Okabe–Ito, :mod:`palette`) and
#: the legend's words. Several kinds may share one (every crash is vermillion).
SHADES: dict[str, tuple[str, str]] = {
    "crash": ("vermillion", "crash"),
    "outage": ("purple", "DB outage"),
    "slow-db": ("yellow", "slow DB (injected)"),
    "burst": ("sky", "burst"),
    "cold": ("blue", "cold cache"),
    "slow-cache": ("orange", "slow cache (injected)"),
    "stampede": ("black", "stampede"),
}


def kind_of_event(event_kind: str) -> FaultKind | None:
    """The fault kind an event starts, or None."""
    return BY_START.get(event_kind)
