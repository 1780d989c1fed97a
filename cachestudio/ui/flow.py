"""The flow view: one lane row per strategy, requests travelling as tokens hop by hop.

Every path follows the strategies' code (engine/strategies.py) exactly: the paths, the
narration and whether a lane has a write queue come from each strategy's declaration
(engine/strategykinds.py). At high rates a
lane animates a sample (at most ``SAMPLE_PER_S`` new tokens a second, picked evenly) and
says so in its narration; the edge labels always count *every* record. ``add_records``
only counts and keeps a few samples (no item per record); one 30 Hz timer moves all the
tokens. Every token kind has its own colour *and* shape, and the legend names them.
"""

from __future__ import annotations

import itertools
import re
import time
from collections import Counter, deque

from PySide6.QtCore import QPointF, QRectF, Qt, QTimer
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetricsF, QPainter, QPainterPath, QPen, QPolygonF, QTransform
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsPathItem,
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsSimpleTextItem,
    QGraphicsView,
)

from ..engine import strategykinds
from ..engine.strategykinds import STRATEGY_KINDS
from .theme import OKABE_ITO, THEMES, TOKENS, Theme, lane_pairs

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

# Layout, in scene units (the view scales the scene to fit).
SCENE_W = 1120.0
TITLE_X = 14.0
X = {"clients": 300.0, "cache": 600.0, "db": 960.0, "queue": 780.0}
NODE_W, NODE_H = 130.0, 50.0
QUEUE_W, QUEUE_H = 170.0, 66.0
NODE_Y = 62.0  # node centres
PORT_DY = 9.0  # tokens travel below the node names
QUEUE_Y = 136.0
LANE_H = 120.0
LANE_H_QUEUE = 198.0
LANE_GAP = 8.0
LEGEND_H = 34.0
NARRATION_X = X["clients"] - NODE_W / 2

NODE_NAMES = {"clients": "Clients", "cache": "Cache", "db": "Database", "queue": "Write queue"}
#: The strategies a lane can have, in the order lanes are shown (engine/strategykinds.py).
STRATEGIES = strategykinds.STRATEGIES

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
    return tuple(out[len(EDGES):])


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
#: The smallest text of the scene, in scene units at font scale 1 (queue count, edge rates…).
SMALLEST_PX = 13.0
#: How far text may grow beyond the scene's own scale to stay readable when the scene is
#: fitted into a low view (the boxes keep their size; beyond this, text would leave them).
MAX_TEXT_BOOST = 1.4


def _edge(a: str, b: str) -> tuple[str, str]:
    """The edge between two nodes, as it is keyed in a lane (either order accepted)."""
    return (a, b) if (a, b) in ALL_EDGES else (b, a)


def _path_edges(nodes: tuple) -> tuple:
    """Each edge a path traverses, once."""
    out = []
    for a, b in itertools.pairwise(nodes):
        e = _edge(a, b)
        if e not in out:
            out.append(e)
    return tuple(out)


#: (strategy, kind, outcome) -> edges, precomputed for add_records
PATH_EDGES = {s: {k: _path_edges(v[0]) for k, v in p.items()} for s, p in PATHS.items()}


def rate_text(n: float) -> str:
    """1234 -> "1.2k/s", 35 -> "35/s"."""
    if n >= 100_000:
        return f"{n / 1000:.0f}k/s"
    if n >= 1000:
        return f"{n / 1000:.1f}k/s"
    return f"{n:.0f}/s"


def _ms(rec: dict) -> str:
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
            return f"{head}hit v{v}{_ms(rec)}"
        if outcome == "miss":
            if v is None:
                return f"{head}miss → not in DB{_ms(rec)}"
            return f"{head}miss → read DB v{v} → set cache{_ms(rec)}"
        if outcome == "error":
            return f"{head}error: {detail or 'failed'}"
        return f"{head}{outcome}"
    head = f"write {key} v{v}: "
    if outcome == "ok":
        kind_of = strategykinds.BY_NAME.get(strategy)
        steps = kind_of.write_steps if kind_of is not None else "ok"
        return f"{head}{steps}{_ms(rec)}"
    if outcome == "rejected":
        return f"{head}rejected, {detail or 'write queue full'}"
    if outcome == "error":
        return f"{head}error: {detail or 'failed'}"
    return f"{head}{outcome}"


def token_shape(shape: str, size: float) -> QPainterPath:
    """A token's outline, centred on (0, 0)."""
    h = size / 2.0
    p = QPainterPath()
    if shape == "circle":
        p.addEllipse(QPointF(0, 0), h, h)
    elif shape == "triangle":
        p.addPolygon(QPolygonF([QPointF(0, -h * 1.1), QPointF(h * 1.1, h * 0.85), QPointF(-h * 1.1, h * 0.85)]))
        p.closeSubpath()
    elif shape == "square":
        p.addRect(QRectF(-h * 0.9, -h * 0.9, h * 1.8, h * 1.8))
    elif shape == "diamond":
        p.addPolygon(QPolygonF([QPointF(0, -h * 1.2), QPointF(h * 1.2, 0), QPointF(0, h * 1.2), QPointF(-h * 1.2, 0)]))
        p.closeSubpath()
    elif shape == "cross":
        arm = QPainterPath()
        arm.addRect(QRectF(-h * 1.25, -h * 0.36, h * 2.5, h * 0.72))
        p = QTransform().rotate(45).map(arm).united(QTransform().rotate(-45).map(arm)).simplified()
    elif shape == "bar":
        p.addRect(QRectF(-h * 1.3, -h * 0.45, h * 2.6, h * 0.9))
    else:
        p.addEllipse(QPointF(0, 0), h, h)
    return p


class _Token:
    __slots__ = ("item", "hops", "t0", "fail", "lane")

    def __init__(self, item, hops, t0, fail, lane):
        self.item = item
        self.hops = hops  # [(QPainterPath, reversed)]
        self.t0 = t0
        self.fail = fail
        self.lane = lane


class _Lane:
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


class FlowView(QGraphicsView):
    def __init__(self, parent=None):
        super().__init__(parent)
        self._scene = QGraphicsScene(self)
        self.setScene(self._scene)
        self.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        self.setRenderHint(QPainter.RenderHint.TextAntialiasing, True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        self.setOptimizationFlag(QGraphicsView.OptimizationFlag.DontSavePainterState, True)
        self.setFrameShape(QGraphicsView.Shape.NoFrame)
        self.setMinimumSize(320, 160)
        self.theme: Theme = THEMES["light"]
        self.lanes: list[_Lane] = []
        self.tokens: list[_Token] = []
        self._shapes: dict[str, QPainterPath] = {}
        self._legend: list = []
        self._last_labels = 0.0
        self.timer = QTimer(self)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)
        self._w, self._x = SCENE_W, dict(X)
        self.min_text_px = 0.0  # the window's floor for text on screen (logical px); 0: none
        self._boost = 1.0  # text × this, so that fitted into the view it stays above the floor
        # A resize re-lays the scene out to the view's shape (debounced: a drag is many resizes).
        self._relayout = QTimer(self)
        self._relayout.setSingleShot(True)
        self._relayout.setInterval(120)
        self._relayout.timeout.connect(self._maybe_relayout)
        self._rebuild()

    # -- public API ---------------------------------------------------------------------

    def set_lanes(self, lanes: list) -> None:
        """``lanes``: strategies, (name, strategy) pairs or LaneConfigs (theme.lane_pairs)."""
        self.lanes = [_Lane(n, s) for n, s in lane_pairs(lanes)]
        self._rebuild()

    def set_theme(self, theme: Theme) -> None:
        self.theme = theme
        self._rebuild()

    def clear_moment(self) -> None:
        """Forget the tokens, rates and narration (a moment of the run is shown again from
        scratch), keeping the scene: cheaper than ``set_lanes`` with the same lanes."""
        for tok in self.tokens:
            self._scene.removeItem(tok.item)
        self.tokens.clear()
        now = time.monotonic()
        for ln in self.lanes:
            ln.window.clear()
            ln.total = ln.sampled = 0
            ln.edge_counts.clear()
            ln.pending.clear()
            ln.db_writes.clear()
            ln.narration = ""
            self._apply_narration(ln)
            self._apply_rates(ln, now)

    def set_capacity(self, lane: int, n: int) -> None:
        ln = self._lane(lane)
        if ln is not None:
            ln.capacity = max(1, int(n))
            self._apply_gauges(ln)

    def add_records(self, lane: int, records: list[dict], counted: dict | None = None) -> None:
        """New operations of a lane. ``counted``: {(kind, outcome): count} of all of them,
        when ``records`` is only a sample (the observer sends at most a few per update)."""
        ln = self._lane(lane)
        if ln is None or not (records or counted):
            return
        now = time.monotonic()
        edges_of = PATH_EDGES.get(ln.strategy, {})
        if counted is None:
            counted = Counter((r.get("kind"), r.get("outcome")) for r in records)
        edges: Counter = Counter()
        n = 0
        for ko, c in counted.items():
            es = edges_of.get(ko)
            if es is None:
                continue  # not an operation (or an unknown outcome): nothing travels
            n += c
            for e in es:
                edges[e] += c
        if not n:
            return
        ln.expire(now)
        ln.total += n
        ln.edge_counts.update(edges)
        # Sample: every record at a low rate, else at most SAMPLE_PER_S a second, evenly.
        ln.allowance = min(SAMPLE_PER_S, ln.allowance + (now - ln.last_refill) * SAMPLE_PER_S)
        ln.last_refill = now
        size = len(records)
        if ln.total <= ALL_BELOW:
            picks = range(size)
        else:
            k = min(size, int(ln.allowance))
            picks = [int((j + 0.5) * size / k) for j in range(k)] if k else ()
        sampled = 0
        for i in picks:
            rec = records[i]
            if (rec.get("kind"), rec.get("outcome")) in edges_of:
                ln.pending.append(rec)
                sampled += 1
        if ln.total > ALL_BELOW:
            ln.allowance -= sampled
        ln.sampled += sampled
        ln.window.append((now, n, sampled, edges))
        self._apply_rates(ln, now)
        self._wake()

    def set_gauges(self, lane: int, gauges: dict) -> None:
        ln = self._lane(lane)
        if ln is None:
            return
        now = time.monotonic()
        ln.gauges = dict(gauges)
        batches = int(gauges.get("batches", 0) or 0)
        if batches < ln.batches:  # a new run
            ln.batches = batches
        elif batches > ln.batches:
            new = min(FLUSH_PER_CALL, batches - ln.batches)
            ln.batches = batches
            if ln.queues:  # one token per new batch, spaced out; a backlog beyond FLUSH_AHEAD_S is dropped
                at = max(now, ln.next_flush)
                for _ in range(new):
                    if at - now > FLUSH_AHEAD_S or not self._launch(ln, FLUSH_PATH, at):
                        break
                    at += FLUSH_GAP_S
                ln.next_flush = at
        writes = gauges.get("db_writes")
        if writes is not None:
            if ln.db_writes and writes < ln.db_writes[-1][1]:
                ln.db_writes.clear()
            ln.db_writes.append((now, int(writes)))
        self._apply_gauges(ln)
        self._apply_rates(ln, now)
        self._wake()

    def set_health(self, lane: int, health: str) -> None:
        ln = self._lane(lane)
        if ln is not None and ln.health != health:
            ln.health = health
            self._apply_health(ln)

    def highlight(self, lane: int, key: str) -> None:
        for i, ln in enumerate(self.lanes):
            ln.selected = key if i == lane else ""
            self._apply_highlight(ln)

    def backend_label(self, lane: int, text: str) -> None:
        """Name what the lane talks to (the run's "backends" event): the cache and database
        boxes say "Redis 7.0" and "PostgreSQL 15", their tooltips the whole line."""
        ln = self._lane(lane)
        if ln is not None and ln.backends != text:
            ln.backends = text
            self._rebuild()

    def injected_label(self, lane: int, text: str) -> None:
        ln = self._lane(lane)
        if ln is not None:
            ln.injected = text or ""
            self._apply_injected(ln)

    def narration(self, lane: int) -> str:
        ln = self._lane(lane)
        return ln.narration if ln is not None else ""

    # -- read-only helpers (tests, screenshots) -----------------------------------------

    def title(self, lane: int) -> str:
        ln = self._lane(lane)
        return self._title_text(ln) if ln is not None else ""

    def injected_text(self, lane: int) -> str:
        """The injected-latency line shown on a lane ("" when nothing is injected)."""
        ln = self._lane(lane)
        item = ln.items.get("injected") if ln is not None else None
        return item.text() if item is not None and item.isVisible() else ""

    def edge_rate(self, lane: int, a: str, b: str) -> str:
        """The rate label on the edge between nodes a and b ("" if the lane has no such edge)."""
        ln = self._lane(lane)
        if ln is None:
            return ""
        entry = ln.items.get("edges", {}).get(_edge(a, b))
        return entry[1].text() if entry else ""

    def node_names(self, lane: int) -> list[str]:
        ln = self._lane(lane)
        return [ln.node_name(n) for n in ln.items.get("nodes", {})] if ln is not None else []

    def text_px(self) -> list[tuple[str, float]]:
        """Every visible text of the view with its height on screen in logical pixels (its
        font's pixel size × the view's scale): what a layout test holds to a minimum."""
        k = self.transform().m11()
        out = []
        for item in self._scene.items():
            if isinstance(item, QGraphicsSimpleTextItem) and item.isVisible() and item.text():
                out.append((item.text(), item.font().pixelSize() * k * item.sceneTransform().m11()))
        return out

    def token_count(self, lane: int | None = None) -> int:
        return sum(1 for t in self.tokens if lane is None or t.lane == lane)

    def queue_text(self, lane: int) -> str:
        ln = self._lane(lane)
        item = ln.items.get("queue_text") if ln is not None else None
        return item.text() if item is not None else ""

    def selected_text(self, lane: int) -> str:
        ln = self._lane(lane)
        item = ln.items.get("selected") if ln is not None else None
        return item.text() if item is not None and item.isVisible() else ""

    # -- Qt -----------------------------------------------------------------------------

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._fit()
        self._relayout.start()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        self._fit()
        self._maybe_relayout()

    def _scene_height(self) -> float:
        s = max(1.0, self.theme.font_scale)
        lanes = sum((LANE_H_QUEUE if ln.queues else LANE_H) * s + LANE_GAP for ln in self.lanes)
        return LANE_GAP + lanes + LEGEND_H * s

    def _ideal_width(self) -> float:
        """The scene is as wide as the view's shape asks (so lanes fill a wide view), 1–2× the base."""
        vp = self.viewport().size()
        if vp.width() < 50 or vp.height() < 50:
            return SCENE_W
        return min(2 * SCENE_W, max(SCENE_W, self._scene_height() * vp.width() / vp.height()))

    def _maybe_relayout(self) -> None:
        if abs(self._ideal_width() - self._w) > 0.03 * self._w or abs(self._text_boost() - self._boost) > 0.03:
            self._rebuild()

    def settle(self) -> None:
        """Lay the scene out for the view's size now, not after the resize debounce."""
        self._relayout.stop()
        self._maybe_relayout()
        self._fit()

    def set_min_text_px(self, px: float) -> None:
        """The smallest text this view may show on screen: the scene's text grows (up to
        MAX_TEXT_BOOST) when the view is too low for it at the scene's own scale."""
        if abs(px - self.min_text_px) > 0.01:
            self.min_text_px = px
            self._maybe_relayout()

    def height_for_text(self, px: float) -> float:
        """The view height at which its smallest text is ``px`` on screen (with the text
        grown by MAX_TEXT_BOOST): lower than that, it is smaller."""
        return px * self._scene_height() / (SMALLEST_PX * self.theme.font_scale * MAX_TEXT_BOOST)

    def _text_boost(self) -> float:
        vp = self.viewport().size()
        if not self.min_text_px or vp.width() < 50 or vp.height() < 50:
            return 1.0
        fit = min(vp.width() / self._ideal_width(), vp.height() / self._scene_height())
        smallest = SMALLEST_PX * self.theme.font_scale * fit
        # aim half a pixel above the floor: font sizes are whole pixels, rounded
        return min(MAX_TEXT_BOOST, max(1.0, (self.min_text_px + 0.5) / max(0.1, smallest)))

    def _fit(self) -> None:
        self.fitInView(self._scene.sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)

    # -- building -----------------------------------------------------------------------

    def _lane(self, i: int) -> _Lane | None:
        return self.lanes[i] if 0 <= i < len(self.lanes) else None

    def _font(self, px: float, bold: bool = False) -> QFont:
        f = QFont()
        f.setPixelSize(max(6, round(px * self.theme.font_scale * self._boost)))
        f.setBold(bold)
        return f

    def _text(self, text: str, px: float, color: str, bold: bool = False, parent=None) -> QGraphicsSimpleTextItem:
        item = QGraphicsSimpleTextItem(text, parent)
        item.setFont(self._font(px, bold))
        item.setBrush(QColor(color))
        if parent is None:
            self._scene.addItem(item)
        return item

    def _pen(self, color: str, width: float | None = None, style=Qt.PenStyle.SolidLine) -> QPen:
        pen = QPen(QColor(color), self.theme.line_width if width is None else width)
        pen.setStyle(style)
        pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
        pen.setCosmetic(False)
        return pen

    def _rebuild(self) -> None:
        """(Re)create every item from the lanes' state, in the current theme."""
        for tok in self.tokens:
            self._scene.removeItem(tok.item)
        self.tokens.clear()
        self._scene.clear()
        t = self.theme
        # Bigger type needs taller rows (the scene's width is fixed: it is fitted to the view).
        self._s = s = max(1.0, t.font_scale)
        self._boost = self._text_boost()
        # Wider than the base: the title column keeps its place, the nodes spread out.
        self._w = self._ideal_width()
        k = (self._w - SCENE_W + (X["db"] - X["clients"])) / (X["db"] - X["clients"])
        self._x = {name: X["clients"] + (x - X["clients"]) * k for name, x in X.items()}
        self.setBackgroundBrush(QColor(t.window))
        self._shapes = {k: token_shape(shape, 15.0 * s) for k, (_, shape, _) in TOKENS.items()}
        y = LANE_GAP
        for ln in self.lanes:
            ln.items = {}
            ln.pending.clear()
            y += self._build_lane(ln, y) + LANE_GAP
        y += self._build_legend(y)
        self._scene.setSceneRect(QRectF(0, 0, self._w, y))
        now = time.monotonic()
        for ln in self.lanes:
            self._apply_health(ln)
            self._apply_injected(ln)
            self._apply_highlight(ln)
            self._apply_gauges(ln)
            self._apply_narration(ln)
            self._apply_rates(ln, now)
        # Everything built so far is static between updates: drawn once into a pixmap and
        # blitted on each frame, instead of rasterised again (tokens are added later).
        for item in self._scene.items():
            item.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self._fit()
        self._wake()

    def _build_lane(self, ln: _Lane, y0: float) -> float:
        """Build one lane's items from y0 down; returns the lane's height."""
        t, s = self.theme, self._s
        h = (LANE_H_QUEUE if ln.queues else LANE_H) * s
        it = ln.items
        it["y0"] = y0
        frame = QPainterPath()
        frame.addRoundedRect(QRectF(4, y0, self._w - 8, h), 8, 8)
        bg = self._scene.addPath(frame, QPen(QColor(t.edge), 1.0), QBrush(QColor(t.panel)))
        bg.setZValue(-10)
        hl = self._scene.addPath(frame, self._pen(t.text, max(3.0, 2.0 * t.line_width)),
                                 QBrush(Qt.BrushStyle.NoBrush))
        hl.setZValue(-9)
        it["highlight"] = hl
        it["title"] = self._text(ln.title, 17, t.text, bold=True)
        b = self._boost  # the left column's lines move apart as their text grows
        it["title"].setPos(TITLE_X, y0 + 8 * s * b)
        it["health"] = self._text("", 13, t.text)
        it["health"].setPos(TITLE_X, y0 + 31 * s * b)
        it["injected"] = self._text("", 13, _injected_colour(t))
        it["injected"].setPos(TITLE_X, y0 + 52 * s * b)
        it["narration"] = self._text("", 14, t.text)
        it["narration"].setPos(NARRATION_X, y0 + h - (5 + 18 * b) * s)
        it["selected"] = self._text("", 14, t.text, bold=True)
        it["selected"].setPos(TITLE_X, y0 + h - (5 + 18 * b) * s)

        # Nodes: a name on top; tokens travel through each node's port, below the name.
        nodes, ports = {}, {}
        names = ["clients", "cache", "db"] + (["queue"] if ln.queues else [])
        for name in names:
            # a box as wide as its name needs (text grown by the boost), never narrower than the base
            need = QFontMetricsF(self._font(15, True)).horizontalAdvance(ln.node_name(name)) + 16
            if name == "queue":
                w, hh, cy = max(QUEUE_W, need), QUEUE_H * s, y0 + QUEUE_Y * s
                port = QPointF(self._x[name], cy + 1 * s)
            else:
                w, hh, cy = max(NODE_W, need), NODE_H * s, y0 + NODE_Y * s
                port = QPointF(self._x[name], cy + PORT_DY * s)
            rect = QRectF(self._x[name] - w / 2, cy - hh / 2, w, hh)
            shape = QPainterPath()
            shape.addRoundedRect(rect, 7, 7)
            box = self._scene.addPath(shape, self._pen(t.node_border), QBrush(QColor(t.node)))
            box.setZValue(0)
            label = self._text(ln.node_name(name), 15, t.text, bold=True, parent=box)
            if ln.backends and name in ("cache", "db"):
                box.setToolTip(ln.backends)
            br = label.boundingRect()
            label.setPos(self._x[name] - br.width() / 2, rect.top() + 2 * s)
            nodes[name] = (box, label, rect)
            ports[name] = port
        it["nodes"] = nodes
        it["ports"] = ports
        if ln.queues:
            q = nodes["queue"][2]
            bar = QRectF(q.left() + 10, q.bottom() - 18 * s, q.width() - 20, 13 * s)
            bar_bg = QGraphicsRectItem(bar, nodes["queue"][0])
            bar_bg.setPen(QPen(QColor(t.node_border), 1.0))
            bar_bg.setBrush(QBrush(QColor(t.panel)))
            fill = QGraphicsRectItem(QRectF(bar.left(), bar.top(), 0, bar.height()), nodes["queue"][0])
            fill.setPen(QPen(Qt.PenStyle.NoPen))
            fill.setBrush(QBrush(QColor(OKABE_ITO["sky"])))
            qtext = self._text("0", 13, t.text, parent=nodes["queue"][0])
            it["queue_bar"] = (bar_bg, fill)
            it["queue_text"] = qtext
            it["flush_text"] = self._text("", 13, t.muted)
            it["flush_text"].setPos(q.right() + 14, q.center().y() - 8 * s)

        # Edges: drawn under the nodes, port to port; tokens follow the same paths.
        def straight(a, b):
            p = QPainterPath(ports[a])
            p.lineTo(ports[b])
            return p

        top = y0 + (NODE_Y - NODE_H / 2) * s
        arc = QPainterPath(ports["clients"])
        arc.lineTo(self._x["clients"], top)
        arc.quadTo(QPointF((self._x["clients"] + self._x["db"]) / 2, top - 62 * s), QPointF(self._x["db"], top))
        arc.lineTo(ports["db"])
        paths = {("clients", "cache"): straight("clients", "cache"),
                 ("cache", "db"): straight("cache", "db"),
                 ("clients", "db"): arc}
        py = ports["cache"].y()
        lab = 20 * s  # a rate label's height
        anchors = {("clients", "cache"): ((self._x["clients"] + self._x["cache"]) / 2, py - lab - 14 * s, "c"),
                   ("cache", "db"): ((self._x["cache"] + self._x["db"]) / 2, py - lab - 14 * s, "c"),
                   ("clients", "db"): ((self._x["clients"] + self._x["db"]) / 2, top - 19 * s, "c")}
        if ln.queues:
            qp = ports["queue"]
            lshape = QPainterPath(ports["clients"])
            lshape.lineTo(self._x["clients"], qp.y())
            lshape.lineTo(qp)
            paths[("clients", "queue")] = lshape
            paths[("queue", "cache")] = straight("queue", "cache")
            paths[("queue", "db")] = straight("queue", "db")
            below = y0 + (NODE_Y + NODE_H / 2) * s + 6
            anchors[("clients", "queue")] = ((self._x["clients"] + self._x["queue"] - QUEUE_W / 2) / 2, qp.y() - lab - 14 * s, "c")
            anchors[("queue", "cache")] = (self._x["cache"] + 40, below, "r")
            anchors[("queue", "db")] = (self._x["db"] - 28, below, "l")
        edges = {}
        for key, path in paths.items():
            line = self._scene.addPath(path, self._pen(t.edge), QBrush(Qt.BrushStyle.NoBrush))
            line.setZValue(-5)
            label = self._text("0/s", 13, t.muted)
            label.setZValue(-4)
            edges[key] = (path, label, anchors[key], line)
        it["edges"] = edges
        return h

    def _build_legend(self, y: float) -> float:
        """The legend row: every token shape with its word. Returns its height."""
        t, s = self.theme, self._s
        h = LEGEND_H * s
        x = 16.0
        cy = y + h / 2 - 2
        head = self._text("legend:", 13, t.muted)
        head.setPos(x, cy - head.boundingRect().height() / 2)
        x += head.boundingRect().width() + 16 * s
        for kind in ("hit", "miss", "write", "flush", "error", "rejected"):
            colour, _, word = TOKENS[kind]
            tok = self._scene.addPath(self._shapes[kind], self._token_pen(), QBrush(QColor(colour)))
            tok.setPos(x + 10 * s, cy)
            label = self._text(word, 13, t.text)
            label.setPos(x + 24 * s, cy - label.boundingRect().height() / 2)
            x += 24 * s + label.boundingRect().width() + 22 * s
        for text in ("tokens: a sample at high rates · edge labels: every request, last second",
                     "tokens: a sample · labels: every request"):
            note = self._text(text, 13, t.muted)
            w = note.boundingRect().width()
            if x + 10 + w <= self._w - 14:
                note.setPos(self._w - 14 - w, cy - note.boundingRect().height() / 2)
                break
            self._scene.removeItem(note)
        return h

    def _token_pen(self) -> QPen:
        return QPen(QColor(self.theme.text), 1.2)

    # -- applying state to items ---------------------------------------------------------

    def _title_text(self, ln: _Lane) -> str:
        if ln.health == "running":
            return ln.title
        return f"{ln.title} — {HEALTH_WORDS.get(ln.health, ln.health)}"

    def _apply_health(self, ln: _Lane) -> None:
        it = ln.items
        if not it:
            return
        t = self.theme
        running = ln.health == "running"
        it["title"].setText(ln.title)
        it["health"].setText("" if running else "— " + HEALTH_WORDS.get(ln.health, ln.health))
        it["health"].setBrush(QColor(t.text if running else _injected_colour(t)))
        for name, (box, label, _) in it["nodes"].items():
            grey = not running and name in ("cache", "queue")
            box.setPen(self._pen(t.muted if grey else t.node_border, None,
                                 Qt.PenStyle.DashLine if grey else Qt.PenStyle.SolidLine))
            box.setBrush(QBrush(QColor(t.window if grey else t.node)))
            label.setBrush(QColor(t.muted if grey else t.text))
            box.setData(0, "grey" if grey else "")

    def _apply_injected(self, ln: _Lane) -> None:
        item = ln.items.get("injected")
        if item is None:
            return
        text = ln.injected
        if text:
            if "injected" not in text.lower():
                text = "injected: " + text
            head, _, rest = text.partition(": ")
            text = head + ":\n" + rest.replace(", ", "\n") if rest else head
        item.setText(text)
        item.setVisible(bool(text))

    def _apply_highlight(self, ln: _Lane) -> None:
        it = ln.items
        if not it:
            return
        it["highlight"].setVisible(bool(ln.selected))
        it["selected"].setText(f"selected: {ln.selected}" if ln.selected else "")
        it["selected"].setVisible(bool(ln.selected))

    def _apply_narration(self, ln: _Lane) -> None:
        item = ln.items.get("narration")
        if item is None:
            return
        width = self._w - 20 - NARRATION_X
        item.setText(QFontMetricsF(item.font()).elidedText(ln.narration, Qt.TextElideMode.ElideRight, width))

    def _apply_gauges(self, ln: _Lane) -> None:
        it = ln.items
        if not it or not ln.queues:
            return
        g = ln.gauges
        depth = int(g.get("queue_depth", 0) or 0)
        bar_bg, fill = it["queue_bar"]
        r = bar_bg.rect()
        frac = min(1.0, max(0.0, depth / ln.capacity))
        fill.setRect(QRectF(r.left(), r.top(), r.width() * frac, r.height()))
        fill.setBrush(QBrush(QColor(OKABE_ITO["vermillion"] if frac >= 0.9 else OKABE_ITO["sky"])))
        qt = it["queue_text"]
        qt.setText(f"{depth:,} / {ln.capacity:,}")
        br = qt.boundingRect()
        qt.setPos(r.center().x() - br.width() / 2, r.center().y() - br.height() / 2)
        if "batches" in g or "db_writes" in g:
            b, w = int(g.get("batches", 0) or 0), int(g.get("db_writes", 0) or 0)
            it["flush_text"].setText(f"flushed: {b:,} batch{'es' if b != 1 else ''}\n{w:,} DB writes")

    def _apply_rates(self, ln: _Lane, now: float) -> None:
        edges = ln.items.get("edges")
        if not edges:
            return
        ln.expire(now)
        counts = ln.edge_counts
        for key, (_, label, (ax, ay, align), _) in edges.items():
            n = ln.flush_rate(now) if key == ("queue", "db") else counts.get(key, 0)
            text = rate_text(n)
            if label.text() != text or not label.data(0):
                label.setText(text)
                label.setData(0, True)
                w = label.boundingRect().width()
                label.setPos(ax - w / 2 if align == "c" else ax - w if align == "r" else ax, ay)

    # -- tokens ----------------------------------------------------------------------------

    def _launch(self, ln: _Lane, route, t0: float) -> bool:
        if len(self.tokens) >= MAX_TOKENS or not ln.items:
            return False
        nodes, kind, fail = route
        edges = ln.items["edges"]
        hops = []
        for a, b in itertools.pairwise(nodes):
            key = _edge(a, b)
            hops.append((edges[key][0], key != (a, b)))
        item = QGraphicsPathItem(self._shapes[kind])
        item.setPen(self._token_pen())
        item.setBrush(QBrush(QColor(TOKENS[kind][0])))
        item.setZValue(10)
        item.setVisible(False)
        item.setPos(self._at(hops[0], 0.0))
        self._scene.addItem(item)
        self.tokens.append(_Token(item, hops, t0, fail, self.lanes.index(ln)))
        return True

    def _at(self, hop, f: float) -> QPointF:
        """Where a token is a fraction f along a hop: on the edge, shifted a little to the right
        of its direction of travel, so requests and replies on one edge pass side by side."""
        path, rev = hop
        g = 1.0 - f if rev else f
        p = path.pointAtPercent(min(1.0, max(0.0, g)))
        e = 0.02 if g < 0.98 else -0.02
        q = path.pointAtPercent(g + e)
        dx, dy = q.x() - p.x(), q.y() - p.y()
        if (e < 0) != rev:  # q lies behind p in the direction of travel
            dx, dy = -dx, -dy
        n = (dx * dx + dy * dy) ** 0.5
        if n == 0:
            return p
        k = SIDE_OFFSET * self._s / n
        return QPointF(p.x() - dy * k, p.y() + dx * k)

    def _wake(self) -> None:
        if not self.timer.isActive():
            self.timer.start()

    def _tick(self) -> None:
        now = time.monotonic()
        for ln in self.lanes:
            if ln.pending and now >= ln.next_launch and len(self.tokens) < MAX_TOKENS:
                rec = ln.pending.popleft()
                route = PATHS[ln.strategy].get((rec.get("kind"), rec.get("outcome")))
                if route is not None and self._launch(ln, route, now):
                    ln.next_launch = now + LAUNCH_GAP_S
                    ln.expire(now)
                    text = describe(ln.strategy, rec)
                    if ln.total > ALL_BELOW:
                        text += f" — showing {ln.sampled:,} of {ln.total:,} requests/s"
                    ln.narration = text
                    self._apply_narration(ln)
        alive = []
        for tok in self.tokens:
            el = now - tok.t0
            if el < 0:
                alive.append(tok)
                continue
            i = int(el / HOP_S)
            n = len(tok.hops)
            if i >= n:
                if tok.fail and el < n * HOP_S + LINGER_S:
                    tok.item.setPos(self._at(tok.hops[-1], 1.0))
                    tok.item.setVisible(True)
                    alive.append(tok)
                else:
                    self._scene.removeItem(tok.item)
                continue
            f = (el - i * HOP_S) / HOP_S
            tok.item.setPos(self._at(tok.hops[i], f))
            tok.item.setVisible(True)
            alive.append(tok)
        self.tokens = alive
        if now - self._last_labels >= LABEL_EVERY_S:
            self._last_labels = now
            busy = False
            for ln in self.lanes:
                self._apply_rates(ln, now)
                busy = busy or bool(ln.window) or (ln.queues and ln.flush_rate(now) > 0)
            if not busy and not self.tokens and not any(ln.pending for ln in self.lanes):
                self.timer.stop()


def _injected_colour(t: Theme) -> str:
    return OKABE_ITO["vermillion"] if t.name != "dark" else "#ff8a4c"
