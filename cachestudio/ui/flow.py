"""The flow view: one lane row per lane, requests travelling as tokens hop by hop.

Every path follows the strategies' code (engine/strategies.py) exactly: the paths, the
narration and whether a lane has a write queue come from each strategy's declaration
(engine/strategykinds.py), gathered in :mod:`.flowmodel`. The scene is built in
:mod:`.flowscene`, the tokens move in :mod:`.flowtokens` (one timer for all, a sample at
high rates, every record counted on the edge labels); this module is the view's public
API. Every token kind has its own colour *and* shape, and the legend names them.
"""

from __future__ import annotations

import time

from PySide6.QtWidgets import QGraphicsSimpleTextItem

from .flowmodel import PATHS, Lane, describe, edge_key, rate_text  # noqa: F401 - importable from here
from .flowtokens import FlowTokens
from .theme import Theme, lane_pairs


class FlowView(FlowTokens):
    """The flow view (see the module's docstring)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._rebuild()

    # -- public API ---------------------------------------------------------------------

    def set_lanes(self, lanes: list) -> None:
        """``lanes``: strategies, (name, strategy) pairs or LaneConfigs (theme.lane_pairs)."""
        self.lanes = [Lane(n, s) for n, s in lane_pairs(lanes)]
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
        entry = ln.items.get("edges", {}).get(edge_key(a, b))
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
