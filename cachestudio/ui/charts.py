"""Live charts (pyqtgraph): one ``setData`` per curve per redraw, on the panel's own timer.

Data come from each lane's :class:`~cachestudio.engine.series.Ring` as contiguous numpy
views (no per-point appends). Curves clip to the visible range and downsample by peak,
so a spike survives at any zoom. Fault and burst windows are shaded on every chart as
they happen; an injected fault says so in its label.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QColor, QPen

from ..engine.series import BIN_S, COL, COLUMNS
from .theme import FAULT_SHADE, LANES, Theme

WINDOW_S = 60.0  # seconds of history in view
X_STEP_S = 10.0  # the view moves on in steps of this many seconds
# The charts redraw one at a time, a chart every 62 ms (each chart twice a second): one paint
# of all eight blocked the event loop for 40–90 ms (measured), and at full speed the window
# must leave the cores to the labs.
REDRAW_MS = 62
GROUP = 1

#: (title, unit, [(column, label suffix, pen width factor)], log y?). A title says which
#: line width is which where a chart has more than one line per lane.
PLOTS = [
    ("Read latency (p50 thin, p99 thick)", "ms",
     [("read_p50", "p50", 0.6), ("read_p95", "p95", 1.0), ("read_p99", "p99", 1.6)], True),
    ("Write latency (p50 thin, p99 thick)", "ms",
     [("write_p50", "p50", 0.6), ("write_p95", "p95", 1.0), ("write_p99", "p99", 1.6)], True),
    ("Throughput", "ops/s", [("ops_s", "", 1.0)], False),
    ("Hit ratio", "", [("hit_ratio", "", 1.0)], False),
    ("Write queue depth", "entries", [("queue_depth", "", 1.0)], False),
    ("DB reads (thin), writes (thick) /s", "/s", [("db_reads_s", "reads", 0.7), ("db_writes_s", "writes", 1.4)], False),
    ("Errors (thin), rejected (thick) /s", "/s", [("errors_s", "errors", 1.0), ("rejected_s", "rejected", 1.6)], False),
    ("Stale reads, lost (thick), at risk", "", [("stale_reads", "stale reads", 1.0),
                                                               ("lost_writes", "lost writes", 1.6),
                                                               ("at_risk", "at risk", 0.6)], False),
]
# Chart lines are solid: Qt strokes a dashed path several times slower (measured: 2.7×
# the paint time of the panel), and the charts redraw all the time. Lanes are told apart
# by their Okabe–Ito colour (safe for colour-blind viewers), the key above the charts and
# a label at the end of each lane's main line (direct labelling: no colour needed).
SWATCH = "━━━"


class DecadeAxis(pg.AxisItem):
    """A log axis labelled at decades (0.01, 0.1, 1, 10 … ms), with 2 and 5 between them
    only when fewer than two decades are in view: readable at any chart height."""

    def logTickValues(self, minVal, maxVal, size, stdTicks):  # noqa: N802,N803 - pyqtgraph's names
        lo, hi = math.floor(minVal), math.ceil(maxVal)
        majors = [float(d) for d in range(lo, hi + 1) if minVal <= d <= maxVal]
        minors = []
        if len(majors) < 2:
            minors = [d + math.log10(m) for d in range(lo, hi + 1) for m in (2, 5)
                      if minVal <= d + math.log10(m) <= maxVal]
        return [(1.0, majors), (None, minors)]

    def logTickStrings(self, values, scale, spacing):  # noqa: N802 - pyqtgraph's name
        return [f"{10 ** v:.3g}" for v in values]


class ChartPanel(pg.GraphicsLayoutWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.plots: list[pg.PlotItem] = []
        self.curves: list[list[tuple]] = []  # per plot: (lane, column, PlotCurveItem, width factor)
        self.series = []
        self.strategies: list[str] = []
        self.regions: list[dict] = []  # {"kind", "start", "end" (None: ongoing), "items"}
        self.marker: list[pg.InfiniteLine] = []
        self.labels: list = []  # (plot, lane, column, log axis?, TextItem) at the end of a lane's line
        self.theme: Theme | None = None
        self.now = 0.0
        self.timer = QTimer(self)
        self.timer.setInterval(REDRAW_MS)
        self.timer.timeout.connect(self.redraw)
        self.frames = 0
        self._dirty = False
        self._pending: list[int] = []  # first chart of each group still to redraw this round
        self._build()

    def _build(self) -> None:
        self.clear()
        self.plots = []
        self.key = pg.LabelItem("", justify="left")
        for title, unit, _, log in PLOTS:
            axes = {"left": DecadeAxis("left")} if log else None
            p = pg.PlotItem(title=title, axisItems=axes)
            p.showGrid(x=False, y=True, alpha=0.25)  # an x grid too would cost every redraw, for little
            if unit:
                p.setLabel("left", unit)
            if log:  # curves get log10 values; only the axis knows (cheaper than PlotDataItem's log mode)
                p.getAxis("left").setLogMode(True)
            else:
                p.getViewBox().setLimits(yMin=0)
                p.getAxis("left").enableAutoSIPrefix(False)
            p.setMouseEnabled(x=False, y=False)
            p.hideButtons()
            self.plots.append(p)
        self.columns = 0
        self.arrange(2)

    def arrange(self, columns: int) -> None:
        """Lay the charts out in 2 or 4 columns, under one key of the lanes' line styles."""
        if columns == self.columns:
            return
        for item in [self.key, *self.plots]:
            if item.scene() is not None:
                self.ci.removeItem(item)
        self.ci.addItem(self.key, row=0, col=0, colspan=columns)
        for i, p in enumerate(self.plots):
            self.ci.addItem(p, row=1 + i // columns, col=i % columns)
        self.columns = columns

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        if not getattr(self, "plots", None):
            return  # pyqtgraph resizes during its own __init__, before the charts exist
        # Wide and low (a big screen with the flow view above): 4 columns; else 2.
        self.arrange(4 if self.width() > 1.8 * self.height() else 2)

    def _update_key(self) -> None:
        if self.theme is None:
            return
        parts = []
        for strategy in self.strategies:
            colour, style, short = LANES[strategy]
            parts.append(f'<span style="color:{colour}; font-weight:bold">{SWATCH} {short}</span>'
                         f' <span style="color:{self.theme.text}">{strategy}</span>')
        note = f'<span style="color:{self.theme.muted}">x axis: run time (s) · shaded: faults and bursts</span>'
        size = f"{9 * self.theme.font_scale:.0f}pt"
        self.key.setText("&nbsp;&nbsp;&nbsp;".join(parts + [note]), size=size)

    def set_theme(self, theme: Theme) -> None:
        self.theme = theme
        self.setBackground(theme.panel)
        for p in self.plots:
            for axis in ("left", "bottom"):
                ax = p.getAxis(axis)
                ax.setPen(pg.mkPen(theme.muted))
                ax.setTextPen(pg.mkPen(theme.text))
            p.titleLabel.setText(p.titleLabel.text, color=theme.text, size=f"{9 * theme.font_scale:.0f}pt")
        self.set_lanes(self.strategies, self.series)

    def set_lanes(self, strategies: list[str], series: list) -> None:
        """Bind the curves to the lanes' series (one curve per lane and column). The same
        lanes again (a theme change) only restyle the curves they have."""
        same = list(strategies) == self.strategies and self.curves
        self.strategies, self.series = list(strategies), list(series)
        width = self.theme.line_width if self.theme else 2.0
        if same:
            for curves in self.curves:
                for lane, col, curve, factor in curves:
                    pen = QPen(curve.opts["pen"])
                    pen.setWidthF(width * factor)
                    curve.setPen(pen)
            self._update_key()
            self._dirty = True
            return
        for p, _, _, _, label in self.labels:
            p.removeItem(label)
        for p, curves in zip(self.plots, self.curves):
            for _, _, curve, _ in curves:
                p.removeItem(curve)
        self.labels = []
        self.curves = []
        for p, (_, _, cols, log) in zip(self.plots, PLOTS):
            curves = []
            for lane, strategy in enumerate(self.strategies):
                colour, _, short = LANES[strategy]
                for col, suffix, factor in cols:
                    if col == "queue_depth" and strategy != "write-behind":
                        continue
                    pen = QPen(QColor(colour))
                    pen.setWidthF(width * factor)
                    pen.setCosmetic(True)
                    # PlotCurveItem, not PlotDataItem: no scatter item, no clip/downsample
                    # pipeline; redraw() hands it just the rows in view (~250 points).
                    curve = pg.PlotCurveItem(pen=pen, connect="finite")
                    p.addItem(curve)
                    curves.append((lane, COL[col], curve, factor))
                main = max((c for c in cols if not (c[0] == "queue_depth" and strategy != "write-behind")),
                           key=lambda c: c[2], default=None)
                if main is not None:
                    label = pg.TextItem(short, color=colour, anchor=(1, 1))
                    label.setZValue(20)
                    p.addItem(label, ignoreBounds=True)
                    self.labels.append((p, lane, COL[main[0]], log, label))
            self.curves.append(curves)
        self._update_key()
        for region in self.regions:
            region["items"] = []
        self._dirty = True

    # -- faults -------------------------------------------------------------------------

    def fault(self, kind: str, start: float, end: float | None = None, label: str | None = None,
              merge: bool = False) -> None:
        """Shade [start, end] on every chart (end None: still going on). With ``merge``, a
        band of that kind still open takes this one in (one band, both labels)."""
        colour, default = FAULT_SHADE[kind]
        if merge and end is None:
            open_band = next((r for r in reversed(self.regions) if r["kind"] == kind and r["end"] is None), None)
            if open_band is not None:
                text = label or default
                if text not in open_band["label"].split(" + "):
                    open_band["label"] += f" + {text}"
                    for _, item in open_band["items"]:
                        if isinstance(item, pg.TextItem):
                            item.setText(open_band["label"])
                self._dirty = True
                return
        self.regions.append({"kind": kind, "start": start, "end": end, "label": label or default,
                             "colour": colour, "items": []})
        self._dirty = True

    def fault_end(self, kind: str, at: float) -> None:
        """End every open band of ``kind`` at ``at``: an end closes what came before it, so
        no band is ever left open (two starts and one end leave nothing shaded on)."""
        for region in self.regions:
            if region["kind"] == kind and region["end"] is None:
                region["end"] = max(at, region["start"])
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
            for _, _, curve, _ in curves:
                curve.setData([], [])

    # -- drawing ------------------------------------------------------------------------

    def touch(self, now: float) -> None:
        self.now = now
        self._dirty = True

    def redraw(self) -> None:
        """Redraw the next group of ``GROUP`` charts (all of them every ``GROUPS`` calls):
        a paint of two charts is short, so the flow view's frames never wait long."""
        if not self._dirty and not self._pending:
            return
        if self._dirty and not self._pending:
            self._dirty = False
            self._pending = list(range(0, len(self.plots), GROUP))
        first = self._pending.pop(0)
        self.draw_plots(range(first, min(first + GROUP, len(self.plots))))
        self.frames += 1

    def x_range(self) -> tuple[float, float]:
        """The visible run time: WINDOW_S wide, moved on in steps of X_STEP_S (not every
        redraw: a still axis is drawn from its cache, a moving one is laid out again)."""
        hi = max(2 * X_STEP_S, math.ceil((self.now + 1.0) / X_STEP_S) * X_STEP_S)
        return max(0.0, hi - WINDOW_S), hi

    def redraw_all(self) -> None:
        """Every chart now (for a screenshot or an export)."""
        self._dirty, self._pending = False, []
        self.draw_plots(range(len(self.plots)))
        self.frames += 1

    def draw_plots(self, which) -> None:
        which = set(which)
        chosen = [self.plots[i] for i in sorted(which)]
        rows = int(WINDOW_S / BIN_S) + 8  # what the view can show
        for i in which:
            log = PLOTS[i][3]
            for lane, col, curve, _ in self.curves[i] if i < len(self.curves) else ():
                if lane >= len(self.series):
                    continue
                ring = self.series[lane].ring
                if len(ring):
                    y = ring.view(col)[-rows:]
                    if log:
                        with np.errstate(divide="ignore", invalid="ignore"):
                            y = np.log10(y)
                    curve.setData(ring.view(COL["t"])[-rows:], y)
        for p, lane, col, log, label in self.labels:
            if p not in chosen:
                continue
            ring = self.series[lane].ring if lane < len(self.series) else None
            values = ring.view(col)[-8:] if ring is not None and len(ring) else np.array([])
            finite = np.flatnonzero(np.isfinite(values) & ((values > 0) if log else True))
            label.setVisible(len(finite) > 0)
            if len(finite):
                i = finite[-1]
                t, v = ring.view(COL["t"])[-len(values):][i], values[i]
                label.setPos(t, math.log10(v) if log else v)
        lo, hi = self.x_range()
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
                        p.addItem(text, ignoreBounds=True)
                        region["items"].append((p, text))
            for p, item in region["items"]:
                if p not in chosen:
                    continue
                if isinstance(item, pg.LinearRegionItem):
                    item.setRegion((region["start"], max(end, region["start"] + 0.05)))
                else:
                    vb = p.getViewBox().viewRange()
                    item.setPos(region["start"], vb[1][1])
        for p in chosen:
            p.setXRange(lo, hi, padding=0)
        if self.plots[3] in chosen:
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
