"""Live charts (pyqtgraph): one ``setData`` per curve per redraw, on the panel's own timer.

Data come from each lane's :class:`~cachestudio.engine.series.Ring` as contiguous numpy
views (no per-point appends). Curves clip to the visible range and downsample by peak,
so a spike survives at any zoom. Fault and burst windows are shaded on every chart as
they happen; an injected fault says so in its label.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QColor, QPen

from ..engine.series import COL, COLUMNS
from .theme import FAULT_SHADE, LANES, Theme

WINDOW_S = 60.0  # seconds of history in view
REDRAW_MS = 100  # the charts redraw at 10 Hz, whatever the data rate

#: (title, unit, [(column, label suffix, pen width factor, log?)])
PLOTS = [
    ("Read latency", "ms", [("read_p50", "p50", 0.6), ("read_p95", "p95", 1.0), ("read_p99", "p99", 1.6)], True),
    ("Write latency", "ms", [("write_p50", "p50", 0.6), ("write_p95", "p95", 1.0), ("write_p99", "p99", 1.6)], True),
    ("Throughput", "ops/s", [("ops_s", "", 1.0)], False),
    ("Hit ratio", "", [("hit_ratio", "", 1.0)], False),
    ("Write queue depth", "entries", [("queue_depth", "", 1.0)], False),
    ("DB reads / writes per s", "/s", [("db_reads_s", "reads", 0.7), ("db_writes_s", "writes", 1.4)], False),
    ("Errors and rejections per s", "/s", [("errors_s", "errors", 1.0), ("rejected_s", "rejected", 1.6)], False),
    ("Anomalies (count) and writes at risk", "", [("stale_reads", "stale reads", 1.0),
                                                   ("lost_writes", "lost writes", 1.6),
                                                   ("at_risk", "at risk", 0.6)], False),
]
STYLE = {"solid": Qt.PenStyle.SolidLine, "dash": Qt.PenStyle.DashLine, "dot": Qt.PenStyle.DotLine}


class ChartPanel(pg.GraphicsLayoutWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.plots: list[pg.PlotItem] = []
        self.curves: list[list[tuple[int, int, pg.PlotDataItem]]] = []  # per plot: (lane, col, curve)
        self.series = []
        self.strategies: list[str] = []
        self.regions: list[dict] = []  # {"kind", "start", "end" (None: ongoing), "items"}
        self.marker: list[pg.InfiniteLine] = []
        self.theme: Theme | None = None
        self.now = 0.0
        self.timer = QTimer(self)
        self.timer.setInterval(REDRAW_MS)
        self.timer.timeout.connect(self.redraw)
        self.frames = 0
        self._dirty = False
        self._build()

    def _build(self) -> None:
        self.clear()
        self.plots = []
        for i, (title, unit, _, log) in enumerate(PLOTS):
            p = self.addPlot(row=i // 2, col=i % 2)
            p.setTitle(title)
            p.showGrid(x=True, y=True, alpha=0.25)
            p.setClipToView(True)
            p.setDownsampling(mode="peak", auto=True)
            p.setLabel("bottom", "run time", units="s")
            if unit:
                p.setLabel("left", unit)
            if log:
                p.setLogMode(y=True)
                p.getAxis("left").setStyle(textFillLimits=[(0, 0.8), (2, 0.3)])  # fewer minor labels
            else:
                p.getViewBox().setLimits(yMin=0)
                p.getAxis("left").enableAutoSIPrefix(False)
            p.setMouseEnabled(x=False, y=False)
            p.hideButtons()
            p.addLegend(offset=(4, 4), labelTextSize="7pt", colCount=3)
            self.plots.append(p)

    def set_theme(self, theme: Theme) -> None:
        self.theme = theme
        self.setBackground(theme.panel)
        for p in self.plots:
            for axis in ("left", "bottom"):
                ax = p.getAxis(axis)
                ax.setPen(pg.mkPen(theme.muted))
                ax.setTextPen(pg.mkPen(theme.text))
            p.titleLabel.setText(p.titleLabel.text, color=theme.text, size=f"{10 * theme.font_scale:.0f}pt")
        self.set_lanes(self.strategies, self.series)

    def set_lanes(self, strategies: list[str], series: list) -> None:
        """Bind the curves to the lanes' series (one curve per lane and column)."""
        self.strategies, self.series = list(strategies), list(series)
        width = self.theme.line_width if self.theme else 2.0
        self.curves = []
        for p, (_, _, cols, _) in zip(self.plots, PLOTS):
            for item in list(p.listDataItems()):
                p.removeItem(item)
            if p.legend is not None:
                p.legend.clear()
            curves = []
            for lane, strategy in enumerate(self.strategies):
                colour, style, short = LANES[strategy]
                for col, suffix, factor in cols:
                    if col == "queue_depth" and strategy != "write-behind":
                        continue
                    pen = QPen(QColor(colour))
                    pen.setWidthF(width * factor)
                    pen.setStyle(STYLE[style])
                    pen.setCosmetic(True)
                    name = f"{short} {suffix}".strip()
                    curve = p.plot([], [], pen=pen, name=name, connect="finite")
                    curves.append((lane, COL[col], curve))
            self.curves.append(curves)
        for region in self.regions:
            region["items"] = []
        self._dirty = True

    # -- faults -------------------------------------------------------------------------

    def fault(self, kind: str, start: float, end: float | None = None, label: str | None = None) -> None:
        """Shade [start, end] on every chart (end None: still going on)."""
        colour, default = FAULT_SHADE[kind]
        self.regions.append({"kind": kind, "start": start, "end": end, "label": label or default,
                             "colour": colour, "items": []})
        self._dirty = True

    def fault_end(self, kind: str, at: float) -> None:
        for region in reversed(self.regions):
            if region["kind"] == kind and region["end"] is None:
                region["end"] = at
                break
        self._dirty = True

    def mark(self, at: float | None) -> None:
        """A vertical line at ``at`` on every chart (the selected anomaly); None clears."""
        for p, line in zip(self.plots, self.marker):
            p.removeItem(line)
        self.marker = []
        if at is None:
            return
        for p in self.plots:
            line = pg.InfiniteLine(pos=at, angle=90, pen=pg.mkPen("#D55E00", width=2, style=Qt.PenStyle.DashLine))
            p.addItem(line)
            self.marker.append(line)

    def clear_run(self) -> None:
        for region in self.regions:
            for p, item in region["items"]:
                p.removeItem(item)
        self.regions = []
        self.mark(None)
        self.now = 0.0
        for curves in self.curves:
            for _, _, curve in curves:
                curve.setData([], [])

    # -- drawing ------------------------------------------------------------------------

    def touch(self, now: float) -> None:
        self.now = now
        self._dirty = True

    def redraw(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        self.frames += 1
        for curves in self.curves:
            for lane, col, curve in curves:
                if lane >= len(self.series):
                    continue
                ring = self.series[lane].ring
                if len(ring):
                    curve.setData(ring.view(COL["t"]), ring.view(col))
        lo = max(0.0, self.now - WINDOW_S)
        hi = max(self.now, 10.0)
        for region in self.regions:
            end = region["end"] if region["end"] is not None else self.now
            if not region["items"]:
                brush = QColor(region["colour"])
                brush.setAlpha(60)
                for i, p in enumerate(self.plots):
                    item = pg.LinearRegionItem(values=(region["start"], max(end, region["start"] + 0.05)),
                                               movable=False, brush=brush, pen=pg.mkPen(None))
                    item.setZValue(-10)
                    p.addItem(item)
                    region["items"].append((p, item))
                    if i in (2, 3):  # the label on the top charts of each column
                        text = pg.TextItem(region["label"], color=region["colour"], anchor=(0, 0))
                        p.addItem(text)
                        region["items"].append((p, text))
            for p, item in region["items"]:
                if isinstance(item, pg.LinearRegionItem):
                    item.setRegion((region["start"], max(end, region["start"] + 0.05)))
                else:
                    vb = p.getViewBox().viewRange()
                    item.setPos(region["start"], vb[1][1])
        for p in self.plots:
            p.setXRange(lo, hi, padding=0)
        self.plots[3].setYRange(0, 1.05, padding=0)

    def export_csv(self, path: Path) -> int:
        """Every chart row of every lane; returns rows written."""
        rows = 0
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["lane"] + list(COLUMNS))
            for strategy, series in zip(self.strategies, self.series):
                ring = series.ring
                data = np.column_stack([ring.view(i) for i in range(len(COLUMNS))]) if len(ring) else []
                for row in data:
                    w.writerow([strategy] + ["" if np.isnan(v) else f"{v:.6g}" for v in row])
                    rows += 1
        return rows
