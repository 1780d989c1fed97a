"""What the flow view shows, before it is drawn: each strategy's paths and the edges its lane
draws (from engine/strategykinds.py), a sentence per operation, and a lane's state (its
rates over the last second, its sampled records waiting to travel, its gauges). No widget
here: the scene is built by :mod:`.flowscene`, the tokens moved by :mod:`.flowtokens`."""

from __future__ import annotations

import itertools
import re
import time
from collections import Counter, deque

from ..engine import strategykinds
from ..engine.strategykinds import STRATEGY_KINDS

HOP_S = 0.35  # seconds per hop
LINGER_S = 0.6  # a failed path's token stays this long at the node where it stopped
TICK_MS = 20  # 50 Hz: the frame interval stays under 33 ms even when a chart paints between frames
SAMPLE_PER_S = 5.0  # new tokens per lane per second at most, when sampling (8 cost the labs 2 % more: bench --gui)
ALL_BELOW = 5  # a lane at <= this many records/s animates every record
MAX_TOKENS = 90  # live tokens, all lanes together
PENDING_MAX = 8  # sampled records waiting to be launched, per lane
LAUNCH_GAP_S = 0.1  # tokens of one lane leave the clients at least this far apart
FLUSH_PER_CALL = 4
FLUSH_GAP_S = 0.15  # flush tokens leave the queue at least this far apart
FLUSH_AHEAD_S = 0.5
SIDE_OFFSET = 5.0  # tokens keep this far to the right of an edge (scene units)
RATE_WINDOW_S = 1.0
LABEL_EVERY_S = 0.25

NODE_NAMES = {"clients": "Clients", "cache": "Cache", "db": "Database", "queue": "Write queue"}

#: strategy -> {(kind, outcome): (nodes visited, token kind, stops with a failure)}: each
#: strategy's declared paths (they follow its code in engine/strategies.py)
PATHS = {s.name: s.paths for s in STRATEGY_KINDS}
#: A queued write's way from the queue to the database (the flusher).
FLUSH_PATH = strategykinds.FLUSH_PATH

#: The edges every lane draws (a lane that queues writes adds those of its queue).
EDGES = (("clients", "cache"), ("cache", "db"), ("clients", "db"))


def _edges_of(paths) -> tuple:
    """The edges after EDGES that ``paths`` (node sequences) traverse, each once in the
    orientation first met."""
    out = list(EDGES)
    for nodes in paths:
        for a, b in itertools.pairwise(nodes):
            if (a, b) not in out and (b, a) not in out:
                out.append((a, b))
    return tuple(out[len(EDGES) :])


def lane_edges(strategy: str) -> tuple:
    """The edges a lane of ``strategy`` draws: EDGES, then those of its paths (and of the
    flusher when it queues writes)."""
    kind = strategykinds.BY_NAME.get(strategy)
    if kind is None:
        return EDGES
    paths = [nodes for nodes, _, _ in kind.paths.values()]
    if kind.queues_writes:
        paths.append(FLUSH_PATH[0])
    return EDGES + _edges_of(paths)


#: Every edge any lane draws, each in the orientation a lane keys it by.
ALL_EDGES = EDGES + _edges_of([nodes for p in PATHS.values() for nodes, _, _ in p.values()] + [FLUSH_PATH[0]])

HEALTH_WORDS = {"down": "down (restarting)"}


def edge_key(a: str, b: str) -> tuple[str, str]:
    """The edge between two nodes, as it is keyed in a lane (either order accepted)."""
    return (a, b) if (a, b) in ALL_EDGES else (b, a)


def path_edges(nodes: tuple) -> tuple:
    """Each edge a path traverses, once."""
    out = []
    for a, b in itertools.pairwise(nodes):
        e = edge_key(a, b)
        if e not in out:
            out.append(e)
    return tuple(out)


#: (strategy, kind, outcome) -> edges, precomputed for add_records
PATH_EDGES = {s: {k: path_edges(v[0]) for k, v in p.items()} for s, p in PATHS.items()}


def rate_text(n: float) -> str:
    """1234 -> "1.2k/s", 35 -> "35/s"."""
    if n >= 100_000:
        return f"{n / 1000:.0f}k/s"
    if n >= 1000:
        return f"{n / 1000:.1f}k/s"
    return f"{n:.0f}/s"


def _took(rec: dict) -> str:
    try:
        ms = (float(rec["end"]) - float(rec["start"])) * 1000.0
    except (KeyError, TypeError, ValueError):
        return ""
    return f" ({ms:.2f} ms)" if ms < 10 else f" ({ms:.1f} ms)" if ms < 100 else f" ({ms:.0f} ms)"


def describe(strategy: str, rec: dict) -> str:
    """One plain sentence about one operation record."""
    kind, key, v, outcome = rec.get("kind"), rec.get("key"), rec.get("version"), rec.get("outcome")
    detail = rec.get("detail") or ""
    if kind == "read":
        head = f"read {key}: "
        if outcome == "hit":
            return f"{head}hit v{v}{_took(rec)}"
        if outcome == "miss":
            if v is None:
                return f"{head}miss → not in DB{_took(rec)}"
            return f"{head}miss → read DB v{v} → set cache{_took(rec)}"
        if outcome == "error":
            return f"{head}error: {detail or 'failed'}"
        return f"{head}{outcome}"
    head = f"write {key} v{v}: "
    if outcome == "ok":
        kind_of = strategykinds.BY_NAME.get(strategy)
        steps = kind_of.write_steps if kind_of is not None else "ok"
        return f"{head}{steps}{_took(rec)}"
    if outcome == "rejected":
        return f"{head}rejected, {detail or 'write queue full'}"
    if outcome == "error":
        return f"{head}error: {detail or 'failed'}"
    if outcome == "indeterminate":
        return f"{head}indeterminate (an error, but {detail or 'it may have applied'})"
    return f"{head}{outcome}"


class Token:
    __slots__ = ("fail", "hops", "item", "lane", "t0")

    def __init__(self, item, hops, t0, fail, lane):
        self.item = item
        self.hops = hops  # [(QPainterPath, reversed)]
        self.t0 = t0
        self.fail = fail
        self.lane = lane


class Lane:
    """A lane's state; the scene items are rebuilt from it on a theme change."""

    def __init__(self, name: str, strategy: str):
        self.name = name
        self.strategy = strategy
        self.health = "running"
        self.injected = ""
        #: What the lane talks to, as the run said ("Redis 7.0.15 · unix socket + PostgreSQL
        #: 15.18 · unix socket · 2 nodes"); "" for the embedded pair.
        self.backends = ""
        self.selected = ""
        self.capacity = 10000
        self.gauges: dict = {}
        self.batches = 0
        self.db_writes: deque = deque()  # (t, cumulative db writes) for the queue -> DB rate
        self.narration = ""
        self.window: deque = deque()  # (t, records, sampled, {edge: count})
        self.total = 0
        self.sampled = 0
        self.edge_counts: Counter = Counter()
        self.allowance = SAMPLE_PER_S
        self.last_refill = time.monotonic()
        self.pending: deque = deque(maxlen=PENDING_MAX)
        self.next_launch = 0.0
        self.next_flush = 0.0
        self.items: dict = {}  # built by the view

    @property
    def title(self) -> str:
        """The lane's name, and its strategy when the name does not say it (and its number
        of app nodes when it has several)."""
        title = self.name if self.strategy in self.name else f"{self.name} ({self.strategy})"
        nodes = re.search(r" · (\d+) nodes$", self.backends)
        return title + (f" · {nodes.group(1)} nodes" if nodes else "")

    def node_name(self, name: str) -> str:
        """A node's box label: what the cache and the database are, when not the embedded pair
        ("Redis 7.0", "PostgreSQL 15")."""
        cache, _, store = self.backends.partition(" + ")
        part = {"cache": cache, "db": store}.get(name, "")
        for product in ("Redis", "PostgreSQL"):
            m = re.match(product + r" (\d+(?:\.\d+)?)", part)
            if m:
                return f"{product} {m.group(1)}"
        return NODE_NAMES[name]

    @property
    def queues(self) -> bool:
        """Its strategy queues writes: the lane draws a write queue and its flushes."""
        return strategykinds.queues_writes(self.strategy)

    def expire(self, now: float) -> None:
        w = self.window
        cut = now - RATE_WINDOW_S
        while w and w[0][0] < cut:
            _, n, s, edges = w.popleft()
            self.total -= n
            self.sampled -= s
            self.edge_counts.subtract(edges)

    def flush_rate(self, now: float) -> float:
        d = self.db_writes
        while len(d) > 2 and d[1][0] < now - RATE_WINDOW_S:
            d.popleft()
        if len(d) < 2 or now - d[-1][0] > RATE_WINDOW_S:
            return 0.0
        dt = d[-1][0] - d[0][0]
        return max(0.0, (d[-1][1] - d[0][1]) / dt) if dt > 0 else 0.0
