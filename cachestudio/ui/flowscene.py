"""The flow view's scene: a lane row per lane (its nodes, the edges its strategy's paths use,
its write queue when it queues writes, its title, health and narration), the legend, and
how the scene fits the view (its width follows the view's shape; text grows in a low view).
Items are built once per lane and theme (:meth:`FlowScene._rebuild`) and then only updated
(the ``_apply_*`` methods); static items are drawn from a pixmap cache."""

from __future__ import annotations

import time

from PySide6.QtCore import QPointF, QRectF, Qt, QTimer
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetricsF, QPainter, QPainterPath, QPen, QPolygonF, QTransform
from PySide6.QtWidgets import QGraphicsItem, QGraphicsRectItem, QGraphicsScene, QGraphicsSimpleTextItem, QGraphicsView

from .flowmodel import HEALTH_WORDS, Lane, Token, lane_edges, rate_text
from .theme import OKABE_ITO, THEMES, TOKENS, Theme

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
#: The smallest text of the scene, in scene units at font scale 1 (queue count, edge rates…).
SMALLEST_PX = 13.0
#: How far text may grow beyond the scene's own scale to stay readable when the scene is
#: fitted into a low view (the boxes keep their size; beyond this, text would leave them).
MAX_TEXT_BOOST = 1.4


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


def injected_colour(t: Theme) -> str:
    return OKABE_ITO["vermillion"] if t.name != "dark" else "#ff8a4c"


class FlowScene(QGraphicsView):
    """The scene's items and layout (see the module's docstring); the tokens' motion is
    :class:`~.flowtokens.FlowTokens`'s, the public API :class:`~.flow.FlowView`'s."""

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
        self.lanes: list[Lane] = []
        self.tokens: list[Token] = []  # items on the scene, moved by the token layer
        self._shapes: dict[str, QPainterPath] = {}
        self._legend: list = []
        self._w, self._x = SCENE_W, dict(X)
        self._s = 1.0
        self.min_text_px = 0.0  # the window's floor for text on screen (logical px); 0: none
        self._boost = 1.0  # text × this, so that fitted into the view it stays above the floor
        # A resize re-lays the scene out to the view's shape (debounced: a drag is many resizes).
        self._relayout = QTimer(self)
        self._relayout.setSingleShot(True)
        self._relayout.setInterval(120)
        self._relayout.timeout.connect(self._maybe_relayout)

    def _wake(self) -> None:
        """Something may move now: the token layer starts its timer."""

    # -- layout -----------------------------------------------------------------------------

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

    def _lane(self, i: int) -> Lane | None:
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

    def _build_lane(self, ln: Lane, y0: float) -> float:
        """Build one lane's items from y0 down; returns the lane's height."""
        t, s = self.theme, self._s
        h = (LANE_H_QUEUE if ln.queues else LANE_H) * s
        it = ln.items
        it["y0"] = y0
        frame = QPainterPath()
        frame.addRoundedRect(QRectF(4, y0, self._w - 8, h), 8, 8)
        bg = self._scene.addPath(frame, QPen(QColor(t.edge), 1.0), QBrush(QColor(t.panel)))
        bg.setZValue(-10)
        hl = self._scene.addPath(frame, self._pen(t.text, max(3.0, 2.0 * t.line_width)), QBrush(Qt.BrushStyle.NoBrush))
        hl.setZValue(-9)
        it["highlight"] = hl
        it["title"] = self._text(ln.title, 17, t.text, bold=True)
        b = self._boost  # the left column's lines move apart as their text grows
        it["title"].setPos(TITLE_X, y0 + 8 * s * b)
        it["health"] = self._text("", 13, t.text)
        it["health"].setPos(TITLE_X, y0 + 31 * s * b)
        it["injected"] = self._text("", 13, injected_colour(t))
        it["injected"].setPos(TITLE_X, y0 + 52 * s * b)
        it["narration"] = self._text("", 14, t.text)
        it["narration"].setPos(NARRATION_X, y0 + h - (5 + 18 * b) * s)
        it["selected"] = self._text("", 14, t.text, bold=True)
        it["selected"].setPos(TITLE_X, y0 + h - (5 + 18 * b) * s)
        self._build_nodes(ln, y0)
        if ln.queues:
            self._build_queue(ln)
        self._build_edges(ln, y0)
        return h

    def _build_nodes(self, ln: Lane, y0: float) -> None:
        """The lane's nodes: a name on top; tokens travel through each node's port, below the name."""
        t, s = self.theme, self._s
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
        ln.items["nodes"] = nodes
        ln.items["ports"] = ports

    def _build_queue(self, ln: Lane) -> None:
        """The write queue's fill bar, its count and the flusher's totals beside it."""
        t, s, it = self.theme, self._s, ln.items
        box, _, q = it["nodes"]["queue"]
        bar = QRectF(q.left() + 10, q.bottom() - 18 * s, q.width() - 20, 13 * s)
        bar_bg = QGraphicsRectItem(bar, box)
        bar_bg.setPen(QPen(QColor(t.node_border), 1.0))
        bar_bg.setBrush(QBrush(QColor(t.panel)))
        fill = QGraphicsRectItem(QRectF(bar.left(), bar.top(), 0, bar.height()), box)
        fill.setPen(QPen(Qt.PenStyle.NoPen))
        fill.setBrush(QBrush(QColor(OKABE_ITO["sky"])))
        it["queue_bar"] = (bar_bg, fill)
        it["queue_text"] = self._text("0", 13, t.text, parent=box)
        it["flush_text"] = self._text("", 13, t.muted)
        it["flush_text"].setPos(q.right() + 14, q.center().y() - 8 * s)

    def _edge_geometry(self, ports: dict, y0: float) -> dict:
        """Every edge a lane may draw: its path (port to port; tokens follow it) and where its
        rate label goes (x, y, alignment)."""
        s, x = self._s, self._x

        def straight(a, b):
            p = QPainterPath(ports[a])
            p.lineTo(ports[b])
            return p

        top = y0 + (NODE_Y - NODE_H / 2) * s
        arc = QPainterPath(ports["clients"])
        arc.lineTo(x["clients"], top)
        arc.quadTo(QPointF((x["clients"] + x["db"]) / 2, top - 62 * s), QPointF(x["db"], top))
        arc.lineTo(ports["db"])
        py = ports["cache"].y()
        lab = 20 * s  # a rate label's height
        above = py - lab - 14 * s
        out = {
            ("clients", "cache"): (straight("clients", "cache"), ((x["clients"] + x["cache"]) / 2, above, "c")),
            ("cache", "db"): (straight("cache", "db"), ((x["cache"] + x["db"]) / 2, above, "c")),
            ("clients", "db"): (arc, ((x["clients"] + x["db"]) / 2, top - 19 * s, "c")),
        }
        if "queue" in ports:
            qp = ports["queue"]
            lshape = QPainterPath(ports["clients"])
            lshape.lineTo(x["clients"], qp.y())
            lshape.lineTo(qp)
            below = y0 + (NODE_Y + NODE_H / 2) * s + 6
            mid = (x["clients"] + x["queue"] - QUEUE_W / 2) / 2
            out[("clients", "queue")] = (lshape, (mid, qp.y() - lab - 14 * s, "c"))
            out[("queue", "cache")] = (straight("queue", "cache"), (x["cache"] + 40, below, "r"))
            out[("queue", "db")] = (straight("queue", "db"), (x["db"] - 28, below, "l"))
        return out

    def _build_edges(self, ln: Lane, y0: float) -> None:
        """The edges the lane's strategy uses (flowmodel.lane_edges), drawn under the nodes,
        each with its rate label."""
        t = self.theme
        geometry = self._edge_geometry(ln.items["ports"], y0)
        edges = {}
        for key in lane_edges(ln.strategy):
            if key not in geometry:
                continue  # an edge this scene has no place for: nothing travels it
            path, anchor = geometry[key]
            line = self._scene.addPath(path, self._pen(t.edge), QBrush(Qt.BrushStyle.NoBrush))
            line.setZValue(-5)
            label = self._text("0/s", 13, t.muted)
            label.setZValue(-4)
            edges[key] = (path, label, anchor, line)
        ln.items["edges"] = edges

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
        for text in (
            "tokens: a sample at high rates · edge labels: every request, last second",
            "tokens: a sample · labels: every request",
        ):
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

    def _title_text(self, ln: Lane) -> str:
        if ln.health == "running":
            return ln.title
        return f"{ln.title} — {HEALTH_WORDS.get(ln.health, ln.health)}"

    def _apply_health(self, ln: Lane) -> None:
        it = ln.items
        if not it:
            return
        t = self.theme
        running = ln.health == "running"
        it["title"].setText(ln.title)
        it["health"].setText("" if running else "— " + HEALTH_WORDS.get(ln.health, ln.health))
        it["health"].setBrush(QColor(t.text if running else injected_colour(t)))
        for name, (box, label, _) in it["nodes"].items():
            grey = not running and name in ("cache", "queue")
            box.setPen(
                self._pen(
                    t.muted if grey else t.node_border, None, Qt.PenStyle.DashLine if grey else Qt.PenStyle.SolidLine
                )
            )
            box.setBrush(QBrush(QColor(t.window if grey else t.node)))
            label.setBrush(QColor(t.muted if grey else t.text))
            box.setData(0, "grey" if grey else "")

    def _apply_injected(self, ln: Lane) -> None:
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

    def _apply_highlight(self, ln: Lane) -> None:
        it = ln.items
        if not it:
            return
        it["highlight"].setVisible(bool(ln.selected))
        it["selected"].setText(f"selected: {ln.selected}" if ln.selected else "")
        it["selected"].setVisible(bool(ln.selected))

    def _apply_narration(self, ln: Lane) -> None:
        item = ln.items.get("narration")
        if item is None:
            return
        width = self._w - 20 - NARRATION_X
        item.setText(QFontMetricsF(item.font()).elidedText(ln.narration, Qt.TextElideMode.ElideRight, width))

    def _apply_gauges(self, ln: Lane) -> None:
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

    def _apply_rates(self, ln: Lane, now: float) -> None:
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
