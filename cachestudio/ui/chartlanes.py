"""The charts' lines: one curve per lane and column, bound to each lane's series, in the
lane's colour with its short label at the line's end; the queue chart has a line for each
lane whose strategy queues writes (engine/strategykinds.py); on demand a thin line per app
node under its lane's total."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtGui import QBrush, QColor, QPen

from ..engine.series import COL
from ..engine.strategykinds import queues_writes
from .chartmarks import ChartMarks
from .chartparts import LATENCY_CHARTS, NODE_ALPHA, NODE_CHARTS, NODE_WIDTH, PLOTS, RATE_CHARTS, EndLabel
from .theme import Theme, lane_pairs, lane_style, register_lanes


class ChartLanes(ChartMarks):
    """The panel with its lanes' lines (see the module's docstring)."""

    def set_theme(self, theme: Theme) -> None:
        self.theme = theme
        self.setBackground(theme.panel)
        if not self._scale_set:
            self.scale = theme.font_scale
        self._restyle()
        self.set_lanes(list(zip(self.strategies, self.kinds)), self.series)

    def set_lanes(self, lanes: list, series: list, node_series: list | None = None) -> None:
        """Bind the curves to the lanes' series (one curve per lane and column). ``lanes``:
        strategies, (name, strategy) pairs or LaneConfigs (theme.lane_pairs). The same
        lanes again (a theme change) only restyle the curves they have. ``node_series``:
        per lane, a series per app node (none for a lane of one node), drawn when
        :meth:`set_node_lines` is on; None keeps the ones bound."""
        pairs = lane_pairs(lanes)
        register_lanes(pairs)
        names = [n for n, _ in pairs]
        same = names == self.strategies and self.curves
        self.strategies, self.series = names, list(series)
        if node_series is not None:
            self.node_series = [list(nodes) for nodes in node_series]
        self.kinds = [k for _, k in pairs]  # each lane's strategy
        if same:
            self._build_node_curves()
            self._restyle()
            return
        for *_, label in self.labels:
            label.setParentItem(None)
            if label.scene() is not None:
                label.scene().removeItem(label)
        for p, curves in zip(self.plots, self.curves):
            for _, _, curve, _ in curves:
                p.removeItem(curve)
        self.labels = []
        self.curves = []
        self._targets = {}
        for i, (p, (_, _, cols, log)) in enumerate(zip(self.plots, PLOTS)):
            if i in LATENCY_CHARTS:
                kind = "read" if i == 0 else "write"
                cols = [(f"{kind}_{self.percentile}", self.percentile, 1.0)]
            curves = []
            for lane, (name, strategy) in enumerate(zip(self.strategies, self.kinds)):
                colour, _, short = lane_style(name)
                for col, _suffix, factor in cols:
                    if col == "queue_depth" and not queues_writes(strategy):
                        continue
                    pen = QPen(QColor(colour))
                    pen.setCosmetic(True)
                    # PlotCurveItem, not PlotDataItem: no scatter item, no clip/downsample
                    # pipeline; redraw() hands it just the rows in view (~250 points).
                    curve = pg.PlotCurveItem(pen=pen, connect="finite")
                    curve.setVisible(not (self.request_marks and i in RATE_CHARTS))
                    p.addItem(curve)
                    curves.append((lane, COL[col], curve, factor))
                main = max(
                    (c for c in cols if not (c[0] == "queue_depth" and not queues_writes(strategy))),
                    key=lambda c: c[2],
                    default=None,
                )
                if main is not None:
                    label = EndLabel(short, p.getViewBox())
                    label.setBrush(QBrush(QColor(colour)))
                    label.setZValue(20)
                    label.setVisible(False)
                    self.labels.append((p, lane, COL[main[0]], log, label))
            self.curves.append(curves)
        for region in self.regions:
            for p, item in region["items"]:
                p.removeItem(item)
            region["items"] = []
        self._requests = {}
        if self.request_marks:
            for i in RATE_CHARTS:
                self._raster_axis(i)
        self._build_node_curves()
        self._restyle()

    @property
    def has_nodes(self) -> bool:
        """Some lane runs several app nodes (so there are lines per node to show)."""
        return any(self.node_series)

    def set_node_lines(self, on: bool) -> None:
        """Also draw one thin line per app node (in its lane's colour, labelled "WB n1" …)
        on the charts of NODE_CHARTS, under the lane's total. Lanes of one node have none."""
        on = bool(on)
        if on == self.node_lines:
            return
        self.node_lines = on
        self._build_node_curves()
        self._restyle()
        self._update_key()

    def _build_node_curves(self) -> None:
        for i, curves in self.node_curves.items():
            for _, _, curve, _ in curves:
                self.plots[i].removeItem(curve)
        gone = {id(entry[4]) for entry in self.labels if isinstance(entry[1], tuple)}  # the nodes' end labels
        for *_, label in self.labels:
            if id(label) in gone:
                label.setParentItem(None)
                if label.scene() is not None:
                    label.scene().removeItem(label)
        self.labels = [entry for entry in self.labels if id(entry[4]) not in gone]
        self.node_curves = {}
        for i in self._targets:
            self._targets[i] = [e for e in self._targets[i] if id(e[0]) not in gone]
        if not self.node_lines or not self.plots:
            return
        for i in NODE_CHARTS:
            p, (_, _, cols, log) = self.plots[i], PLOTS[i]
            col = f"{('read', 'write')[i]}_{self.percentile}" if i in LATENCY_CHARTS else cols[0][0]
            curves = []
            for lane, nodes in enumerate(self.node_series[: len(self.strategies)]):
                if col == "queue_depth" and not queues_writes(self.kinds[lane]):
                    continue
                colour, _, short = lane_style(self.strategies[lane])
                for k in range(len(nodes)):
                    c = QColor(colour)
                    c.setAlpha(NODE_ALPHA)
                    pen = QPen(c)
                    pen.setCosmetic(True)
                    curve = pg.PlotCurveItem(pen=pen, connect="finite")
                    curve.setZValue(-1)  # under the lanes' totals
                    curve.setVisible(not self.request_marks)
                    p.addItem(curve)
                    curves.append(((lane, k), COL[col], curve, NODE_WIDTH))
                    label = EndLabel(f"{short} n{k}", p.getViewBox())
                    label.setBrush(QBrush(QColor(colour)))
                    label.setZValue(19)
                    label.setVisible(False)
                    self.labels.append((p, (lane, k), COL[col], log, label))
            self.node_curves[i] = curves
        self._dirty = True

    def _ring(self, src):
        """The ring of a lane (an index) or of one of its nodes ((lane, node)); None if gone."""
        if isinstance(src, tuple):
            lane, node = src
            nodes = self.node_series[lane] if lane < len(self.node_series) else ()
            return nodes[node].ring if node < len(nodes) else None
        return self.series[src].ring if src < len(self.series) else None

    def _chart_curves(self, i: int):
        """Chart ``i``'s curves: the lanes', then the nodes' (when shown)."""
        yield from self.curves[i] if i < len(self.curves) else ()
        yield from self.node_curves.get(i, ())
