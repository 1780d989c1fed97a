"""Live charts (pyqtgraph): one ``setData`` per curve per redraw, on the panel's own timer.

Data come from each lane's :class:`~cachestudio.engine.series.Ring` as contiguous numpy
views (no per-point appends). Fault and burst windows are shaded on every chart as they
happen; their names are said on the window's event strip, not on the charts (so nothing
collides or is cut at the edge).

Presenter-grade: one factor (:meth:`ChartPanel.set_scale`) sizes every text and line;
every visible chart shows the same x range at all times; latency charts show one
percentile per lane (:meth:`ChartPanel.set_percentile`); the lane labels at the end of the
lines are pushed apart so they never overlap and never leave the plot area; in slow
motion each request can be drawn as a mark (:meth:`ChartPanel.set_request_marks`).
"""

from __future__ import annotations

import csv
import functools
import itertools
import math
import sys
import weakref
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetricsF, QPen
from PySide6.QtWidgets import QGraphicsItem, QGraphicsSimpleTextItem

from ..engine.outputs import OutputError, OutputWriteError, write_output
from ..engine.series import BIN_S, COL, COLUMNS, SETTLE_S
from ..engine.strategykinds import queues_writes
from .theme import FAULT_SHADE, THEMES, TOKENS, Theme, lane_pairs, lane_style, register_lanes, text_px

WINDOW_S = 60.0  # seconds of history in view
X_STEP_S = 10.0  # the view moves on in steps of this many seconds
# The charts redraw one at a time, a chart every 94 ms (each of eight every 0.75 s; four in the
# presentation mode every 0.4 s; 62 ms cost the labs about 1 % more at full speed): one paint
# of all eight blocked the event loop for 40–90 ms (measured), and at full speed the window
# must leave the cores to the labs. The x range is the exception: when it steps on, every
# visible chart gets it in the same call (a setXRange per chart every 10 s; unchanged
# ranges are not set again).
REDRAW_MS = 94
GROUP = 1

#: Percentiles a latency chart can show (one per lane at a time).
PERCENTILES = ("p50", "p95", "p99")
#: Short ids of the eight charts, in PLOTS order (for the presentation mode's choice).
CHART_NAMES = ("read", "write", "throughput", "hit", "queue", "db", "errors", "anomalies")
LATENCY_CHARTS = (0, 1)
RATE_CHARTS = (2, 5, 6)  # a per-request raster in slow motion
#: requests kept per lane for the request marks (the newest)
REQUEST_BUFFER = 2000
#: Charts that can also draw one line per app node (set_node_lines): those a node's own
#: records and gauges make. The DB and error charts have two lines per lane already, and the
#: auditor judges a lane, not a node.
NODE_CHARTS = (0, 1, 2, 3, 4)
NODE_WIDTH = 0.55  # a node's line, against its lane's (the lane total stays the bold one)
NODE_ALPHA = 170

#: (title, unit, [(column, label suffix, pen width factor)], log y?). A title says which
#: line width is which where a chart has more than one line per lane: ─ thin, ▬ thick. The latency charts'
#: column follows the chosen percentile (set_percentile).
PLOTS = [
    ("Read latency", "ms", [("read_p99", "p99", 1.0)], True),
    ("Write latency", "ms", [("write_p99", "p99", 1.0)], True),
    ("Throughput", "ops/s", [("ops_s", "", 1.0)], False),
    ("Hit ratio", "", [("hit_ratio", "", 1.0)], False),
    ("Write-behind queue", "entries", [("queue_depth", "", 1.0)], False),
    ("DB reads ─ writes ▬", "/s", [("db_reads_s", "reads", 0.6), ("db_writes_s", "writes", 1.4)], False),
    ("Errors ─ rejected ▬", "/s", [("errors_s", "errors", 0.6), ("rejected_s", "rejected", 1.4)], False),
    ("Stale reads, lost ▬, at risk ─", "", [("stale_reads", "stale reads", 1.0),
                                                      ("lost_writes", "lost writes", 1.6),
                                                      ("at_risk", "at risk", 0.5)], False),
]
#: Shorter titles where a chart is too narrow for its long one (then elided if need be).
SHORT_TITLES = ["Read latency", "Write latency", "Throughput", "Hit ratio", "WB queue",
                "DB reads ─ writes ▬", "Errors ─ rejected ▬", "Stale, lost ▬, risk ─"]
#: Titles of the rate charts when they show each request (set_request_marks).
RASTER_TITLES = {2: "Requests (each one)", 5: "DB reads, writes: each", 6: "Errors, rejected: each"}

# Text and line sizes in pixels at scale 1 (set_scale multiplies them all). The smallest is
# 11 px; with the projector theme's font_scale (1.35) 15 px.
TITLE_PX = 14
TICK_PX = 11
AXIS_LABEL_PX = 11
KEY_PX = 12
END_LABEL_PX = 12
MARK_PX = 8  # request marks (symbol size)
MIN_CHART_W, MIN_CHART_H = 220, 110  # a chart's least size at scale 1, for the column choice
CELL_ASPECT = 1.6  # the chart shape the column choice aims at (width / height)

# Chart lines are solid: Qt strokes a dashed path several times slower (measured: 2.7×
# the paint time of the panel), and the charts redraw all the time. Lanes are told apart
# by their Okabe–Ito colour (safe for colour-blind viewers), the key above the charts and
# a label at the end of each lane's main line (direct labelling: no colour needed).
SWATCH = "━━━"

#: request outcome -> (index, pyqtgraph symbol); colours from theme.TOKENS
_SYMBOL = {"circle": "o", "triangle": "t", "square": "s", "diamond": "d", "cross": "x", "bar": "|"}
OUTCOMES = ("hit", "miss", "write", "error", "rejected", "other")
_OUTCOME = {name: i for i, name in enumerate(OUTCOMES)}
# buffer columns
_START, _LAT, _KIND, _OUT = range(4)
HIT_CHART = 3
HIT_READS = 10  # slow motion: the hit ratio over each lane's last this many reads


def _num(v: float) -> str:
    """A tick value: 0.001 … 999, then 1k, 12.5k, 1M (short, so the axis stays narrow)."""
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.3g}M"
    if a >= 1e3:
        return f"{v / 1e3:.3g}k"
    return f"{v:.3g}"


def _title_min(label) -> None:
    """LabelItem.updateMin for chart titles: their height only (no least width), so a
    long title never widens its column; _fit_text makes each fit its chart."""
    h = label.itemRect().height()
    label.setMinimumWidth(0)
    label.setMinimumHeight(h)
    label._sizeHint = {Qt.SizeHint.MinimumSize: (0, h), Qt.SizeHint.PreferredSize: (0, h),
                       Qt.SizeHint.MaximumSize: (-1, -1), Qt.SizeHint.MinimumDescent: (0, 0)}
    label.updateGeometry()


def _close_as_line(d: str) -> str:
    """An SVG path's "Z" tokens as explicit lines back to the subpath's start: pyqtgraph's
    SVG exporter (0.14) reads every token as "x,y" and fails on the "Z" Qt 6 writes."""
    out, start = [], None
    for tok in d.split():
        if tok in ("Z", "z"):
            if start is not None:
                out.append("L" + start)
            continue
        if tok[0] in "Mm":
            start = tok[1:]
        out.append(tok)
    return " ".join(out)


def _svg_bytes(item) -> bytes:
    """pyqtgraph's SVG of ``item`` (each plot clipped to its view box), made to read the
    closed paths of Qt 6's SVG generator (patched for this call only)."""
    from pyqtgraph.exporters import SVGExporter

    module = sys.modules[SVGExporter.__module__]
    original = module.correctCoordinates

    def correct(node, defs, item, options):
        for el in node.getElementsByTagName("path"):
            d = el.getAttribute("d")
            if "Z" in d or "z" in d:
                el.setAttribute("d", _close_as_line(d))
        return original(node, defs, item, options)

    module.correctCoordinates = correct
    try:
        return SVGExporter(item).export(toBytes=True)
    finally:
        module.correctCoordinates = original


def _nice_top(v: float) -> float:
    """The least of 1, 2, 2.5, 5 × 10^k at or above ``v`` (1 for nothing)."""
    if not v > 0:
        return 1.0
    k = math.floor(math.log10(v))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if m * 10 ** k >= v * (1 - 1e-9):
            return m * 10 ** k
    return 10.0 ** (k + 1)


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
        return [f"{float(f'{10 ** v:.3g}'):g}" if 10 ** v < 9999.5 else _num(10 ** v) for v in values]  # 1000, then 10k


class RateAxis(pg.AxisItem):
    """A linear axis whose big values read 1k, 12.5k (not 12500): the axis stays narrow."""

    def tickStrings(self, values, scale, spacing):  # noqa: N802 - pyqtgraph's name
        if not values or max(abs(v) for v in values) < 1000:
            return super().tickStrings(values, scale, spacing)
        return [_num(v) for v in values]


class EndLabel(QGraphicsSimpleTextItem):
    """A lane's short name at the end of its line, on a patch of the panel's colour.
    A child of the chart's ViewBox, placed in its pixels (ChartPanel._place_labels)."""

    def __init__(self, text: str, parent=None):
        super().__init__(text, parent)
        self.background = QColor(255, 255, 255, 210)

    def paint(self, painter, option, widget=None):
        painter.fillRect(self.boundingRect(), self.background)
        super().paint(painter, option, widget)


class ChartPanel(pg.GraphicsLayoutWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.plots: list[pg.PlotItem] = []
        self.curves: list[list[tuple]] = []  # per plot: (lane, column, PlotCurveItem, width factor)
        self.series = []
        self.strategies: list[str] = []  # the lanes' names
        self.kinds: list[str] = []  # the lanes' strategies
        self.regions: list[dict] = []  # {"kind", "start", "end" (None: ongoing), "label", "colour", "items"}
        self.marker: list[pg.InfiniteLine] = []
        self.labels: list = []  # (plot, lane, column, log axis?, EndLabel) at the end of a lane's line
        # One line per app node, on demand: per chart, ((lane, node), column, curve, width
        # factor), drawn from node_series[lane][node]; their end labels are in `labels` with
        # (lane, node) for the lane.
        self.node_series: list = []
        self.node_lines = False
        self.node_curves: dict[int, list[tuple]] = {}
        self.theme: Theme | None = None
        self.now = 0.0
        self.cursor: float | None = None  # the scrubbed lab time (None: now)
        self._spare_regions: dict = {}  # (kind, start) -> a band kept across a rewind
        self.scale = 1.0
        self._scale_set = False  # set_scale called: the theme's font_scale no longer decides
        self.percentile = "p99"
        self.shown: list[int] = list(range(len(PLOTS)))
        self.request_marks = False
        self.marks: dict[int, pg.ScatterPlotItem] = {}  # chart index -> its request marks
        self._requests: dict[int, np.ndarray] = {}  # lane -> rows (start, latency ms, kind, outcome)
        self._targets: dict[int, list] = {}  # chart -> [(EndLabel, t, y) or (EndLabel, None, None)]
        self._x_applied: dict[int, tuple[float, float]] = {}
        self._y_applied: dict[int, tuple[float, float]] = {}  # chart -> the y range set (_steady_y)
        self._titles: dict[int, str] = {}
        self._key_html = ""
        self.last_export_error = ""
        self.timer = QTimer(self)
        self.timer.setInterval(REDRAW_MS)
        self.timer.timeout.connect(self.redraw)
        self.frames = 0
        self._dirty = False
        self._pending: list[int] = []  # first chart of each group still to redraw this round
        self._build()

    # -- layout -------------------------------------------------------------------------

    def _build(self) -> None:
        self.clear()
        self.plots = []
        self.key = pg.LabelItem("", justify="left")
        self.key.item.document().setDocumentMargin(2)
        for i, (title, unit, _, log) in enumerate(PLOTS):
            axes = {"left": DecadeAxis("left") if log else RateAxis("left"), "bottom": pg.AxisItem("bottom")}
            p = pg.PlotItem(title=title, axisItems=axes)
            p.titleLabel.item.document().setDocumentMargin(1)
            # every column equally wide, whatever its title (titles are fitted by _fit_text)
            # (a weak proxy: a bound method on the label itself would make a cycle that Qt dislikes at exit)
            p.titleLabel.updateMin = functools.partial(_title_min, weakref.proxy(p.titleLabel))
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
            # An axis (with its grid, which spans the plot) is drawn into a pixmap and blitted
            # while its range stays: replaying its tick text on every repaint of the curves
            # was a sixth of the window's CPU time at full speed (py-spy).
            for name in ("left", "bottom"):
                p.getAxis(name).setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
            p.getViewBox().sigTransformChanged.connect(self._on_transform)  # no lambda: no cycle through self
            self.plots.append(p)
        self._reset_y()
        self.columns = 0
        self._restyle()
        self.arrange(2)

    def arrange(self, columns: int, force: bool = False) -> None:
        """Lay the shown charts out in ``columns`` columns, under one key of the lanes."""
        columns = max(1, int(columns))
        if columns == self.columns and not force:
            return
        for item in [self.key, *self.plots]:
            if item.scene() is not None:
                self.ci.removeItem(item)
        self.ci.addItem(self.key, row=0, col=0, colspan=columns)
        for k, i in enumerate(self.shown):
            self.ci.addItem(self.plots[i], row=1 + k // columns, col=k % columns)
        layout = self.ci.layout
        for c in range(layout.columnCount()):
            layout.setColumnStretchFactor(c, 1 if c < columns else 0)
        for r in range(layout.rowCount()):
            layout.setRowStretchFactor(r, 0 if r == 0 else 1)
        self.columns = columns
        self._fit_text()

    def show_charts(self, indices=None) -> None:
        """Lay out only these charts (indices into PLOTS, or names of CHART_NAMES), in this
        order; None: all eight. Hidden charts are not redrawn."""
        if indices is None:
            shown = list(range(len(PLOTS)))
        else:
            shown = []
            for i in indices:
                i = CHART_NAMES.index(i) if isinstance(i, str) else int(i)
                if 0 <= i < len(PLOTS) and i not in shown:
                    shown.append(i)
            shown = shown or list(range(len(PLOTS)))
        if shown == self.shown:
            return
        self.shown = shown
        self._pending = []
        self.arrange(self._auto_columns(), force=True)
        self._dirty = True

    def _auto_columns(self) -> int:
        """Columns for the shown charts at this size and scale: every chart at least
        MIN_CHART_W × MIN_CHART_H (× scale), the shape nearest CELL_ASPECT among those."""
        n = len(self.shown)
        if n <= 1:
            return 1
        candidates = [4, 2] if n % 2 == 0 and n >= 4 else list(range(1, min(4, n) + 1))
        s = self.scale
        w = max(1.0, self.width() - 8.0)
        h = max(1.0, self.height() - self._key_height() - 8.0)
        best, best_score = candidates[0], None
        for c in candidates:
            rows = math.ceil(n / c)
            cw, ch = w / c, h / rows
            fit = min(cw / (MIN_CHART_W * s), ch / (MIN_CHART_H * s))
            shape = abs(math.log((cw / ch) / CELL_ASPECT))
            score = (0, shape) if fit >= 1.0 else (1, -fit)
            if best_score is None or score < best_score:
                best, best_score = c, score
        return best

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        if not getattr(self, "plots", None) or getattr(self, "closed", False):
            return  # pyqtgraph resizes during its own __init__ (no charts yet) and close() (items gone)
        columns = self._auto_columns()
        if columns != self.columns:
            self.arrange(columns)
        else:
            self._fit_text()

    def _key_height(self) -> float:
        return self.key.item.boundingRect().height() if self.key.scene() is not None else KEY_PX * self.scale * 1.6

    # -- style: theme and scale ----------------------------------------------------------

    def _t(self) -> Theme:
        return self.theme or THEMES["light"]

    def _font(self, base_px: float, bold: bool = False) -> QFont:
        f = QFont()
        f.setPixelSize(text_px(base_px, self.scale))
        f.setBold(bold)
        return f

    def set_scale(self, s: float) -> None:
        """One factor for every text and line of the charts (the window's: its theme's
        font_scale × its zoom). Cheap when ``s`` has not changed."""
        s = min(6.0, max(0.5, float(s)))
        self._scale_set = True
        if s == self.scale:
            return
        self.scale = s
        self._restyle()

    def _restyle(self) -> None:
        t, s = self._t(), self.scale
        tick_font = self._font(TICK_PX)
        fm = QFontMetricsF(tick_font)
        label_fm = QFontMetricsF(self._font(AXIS_LABEL_PX))
        offset, tick_len = max(2, round(4 * s)), max(3, round(5 * s))
        # One width for every left axis: the charts of a column line up, and no tick text is cut.
        text_w = max(fm.horizontalAdvance(x) for x in ("0.001", "12.5k", "1.05", "WB", "1000"))
        left_w = math.ceil(text_w + offset + tick_len + label_fm.height() + 4 * s)
        bottom_h = math.ceil(fm.height() + offset + tick_len + 2 * s)
        axis_pen = pg.mkPen(t.muted, width=max(1.0, round(s)))
        for i, p in enumerate(self.plots):
            for name in ("left", "bottom"):
                ax = p.getAxis(name)
                ax.setPen(axis_pen)
                ax.setTextPen(pg.mkPen(t.text))
                ax.setStyle(tickFont=tick_font, tickTextOffset=offset, tickLength=tick_len)
            p.getAxis("left").setWidth(left_w)
            p.getAxis("bottom").setHeight(bottom_h)
            self._set_unit(i)
        self._left_w = left_w
        self._titles.clear()
        self._fit_text()
        width = t.line_width * s
        for curves in itertools.chain(self.curves, self.node_curves.values()):
            for _, _, curve, factor in curves:
                pen = QPen(curve.opts["pen"])
                pen.setWidthF(width * factor)
                curve.setPen(pen)
        end_font = self._font(END_LABEL_PX, bold=True)
        bg = QColor(t.panel)
        bg.setAlpha(215)
        for *_, label in self.labels:
            label.setFont(end_font)
            label.background = bg
            label.update()
        for line in self.marker:
            line.setPen(pg.mkPen("#D55E00", width=2 * s, style=Qt.PenStyle.DashLine))
        for i, item in self.marks.items():
            item.setSize(MARK_PX * s * (1.25 if i in RATE_CHARTS else 1.0))
        for i in range(len(self.plots)):
            self._place_labels(i)
        self._dirty = True

    def _set_unit(self, i: int) -> None:
        unit = PLOTS[i][1]
        p = self.plots[i]
        if self.request_marks and i in RATE_CHARTS:
            unit = ""
        if unit:
            p.setLabel("left", unit, **{"font-size": f"{text_px(AXIS_LABEL_PX, self.scale)}px",
                                         "color": self._t().text})
        else:
            p.getAxis("left").showLabel(False)

    def _title(self, i: int, short: bool = False) -> str:
        if self.request_marks and i in RATE_CHARTS:
            return RASTER_TITLES[i]
        title = SHORT_TITLES[i] if short else PLOTS[i][0]
        if i in LATENCY_CHARTS:
            title = f"{title} (each request)" if self.request_marks else f"{title} {self.percentile}"
        elif i == HIT_CHART and self.request_marks:
            title = f"{title} (last {HIT_READS} reads)"
        return title

    def _fit_text(self) -> None:
        """Titles that fit their chart (long, short, else elided) and a key that fits the
        panel's width (on two lines when it must). Only texts that changed are set again."""
        if not self.plots:
            return
        t = self._t()
        title_px = text_px(TITLE_PX, self.scale)
        font = self._font(TITLE_PX, bold=True)
        fm = QFontMetricsF(font)
        columns = max(1, self.columns or 2)
        avail = max(20.0, self.width() / columns - getattr(self, "_left_w", 40) - 16)
        row_h = math.ceil(fm.height() + 4)
        for i, p in enumerate(self.plots):
            text = self._title(i)
            if fm.horizontalAdvance(text) > avail:
                text = self._title(i, short=True)
            if fm.horizontalAdvance(text) > avail:
                text = fm.elidedText(text, Qt.TextElideMode.ElideRight, avail)
            key = f"{text}|{title_px}|{t.text}"
            if self._titles.get(i) != key:
                self._titles[i] = key
                p.titleLabel.setText(text, color=t.text, size=f"{title_px}px", bold=True)
                row_h = max(row_h, math.ceil(p.titleLabel.item.boundingRect().height()))
                p.titleLabel.setMaximumHeight(row_h)
                p.layout.setRowFixedHeight(0, row_h)
        self._update_key()

    def _update_key(self) -> None:
        t = self._t()
        parts = []
        for strategy in self.strategies:
            colour, _, short = lane_style(strategy)
            parts.append(f'<span style="color:{colour}; font-weight:bold">{SWATCH} {short}</span>'
                         + (f' <span style="color:{t.text}">{strategy}</span>' if short != strategy else ""))
        note = "x: run time (s) · shaded: faults, named on the event strip"
        if getattr(self, "compact_key", False):  # presentation mode: every pixel to the charts
            note = ""
        if getattr(self, "page_note", ""):
            note = f"{self.page_note} · {note}" if note else self.page_note
        if self.request_marks:
            note += " · marks: one per request (fill: outcome, ring: lane)"
        elif self.node_lines and self.has_nodes:
            note += " · thin lines: one per app node (n0, n1 …)"
        note = f'<span style="color:{t.muted}">{note}</span>'
        size = f"{text_px(KEY_PX, self.scale)}px"
        avail = max(50.0, self.width() - 16.0)
        gap = "&nbsp;&nbsp;&nbsp;"
        for html in (gap.join(parts + [note]), gap.join(parts) + "<br>" + note, "<br>".join(parts + [note])):
            if html + size != self._key_html:
                self._key_html = html + size
                self.key.setText(html, size=size)
            if self.key.item.boundingRect().width() <= avail:
                break

    def set_compact_key(self, on: bool) -> None:
        """The key without its note on the axes (presentation mode: the room knows)."""
        if on != getattr(self, "compact_key", False):
            self.compact_key = on
            self._update_key()

    def set_page_note(self, text: str) -> None:
        """A few words in the key when not every chart is shown ("charts 1–4 of 8 · G: …")."""
        if text != getattr(self, "page_note", ""):
            self.page_note = text
            self._update_key()

    def set_theme(self, theme: Theme) -> None:
        self.theme = theme
        self.setBackground(theme.panel)
        if not self._scale_set:
            self.scale = theme.font_scale
        self._restyle()
        self.set_lanes(list(zip(self.strategies, self.kinds)), self.series)

    def set_percentile(self, p: str) -> None:
        """Which latency percentile the latency charts show (one line per lane)."""
        if p not in PERCENTILES:
            raise ValueError(f"percentile must be one of {', '.join(PERCENTILES)}, not {p!r}")
        if p == self.percentile:
            return
        self.percentile = p
        for i, kind in zip(LATENCY_CHARTS, ("read", "write")):
            col = COL[f"{kind}_{p}"]
            if i < len(self.curves):
                self.curves[i] = [(lane, col, curve, f) for lane, _, curve, f in self.curves[i]]
            if i in self.node_curves:
                self.node_curves[i] = [(src, col, curve, f) for src, _, curve, f in self.node_curves[i]]
        kinds = {id(self.plots[i]): kind for i, kind in zip(LATENCY_CHARTS, ("read", "write"))}
        self.labels = [(pl, lane, COL[f"{kinds[id(pl)]}_{p}"] if id(pl) in kinds else col, log, lab)
                       for pl, lane, col, log, lab in self.labels]
        self._fit_text()
        if self.series:
            self.draw_plots([i for i in LATENCY_CHARTS if i in self.shown])
        self._dirty = True

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
                for col, suffix, factor in cols:
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
                main = max((c for c in cols if not (c[0] == "queue_depth" and not queues_writes(strategy))),
                           key=lambda c: c[2], default=None)
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

    # -- one line per app node ------------------------------------------------------------

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
            for lane, nodes in enumerate(self.node_series[:len(self.strategies)]):
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

    # -- faults -------------------------------------------------------------------------

    def fault(self, kind: str, start: float, end: float | None = None, label: str | None = None,
              merge: bool = False) -> None:
        """Shade [start, end] on every chart (end None: still going on). With ``merge``, a
        band of that kind still open takes this one in (one band, both labels). The label
        is kept in ``regions`` (the event strip names the band; the charts only shade it)."""
        colour, default = FAULT_SHADE[kind]
        spare = self._spare_regions.pop((kind, start), None)
        if spare is not None:  # the same band as before a rewind: its items are reused
            spare.update(end=end, label=label or default)
            for _, item in spare["items"]:
                item.setVisible(True)
            self.regions.append(spare)
            self._dirty = True
            return
        if merge and end is None:
            open_band = next((r for r in reversed(self.regions) if r["kind"] == kind and r["end"] is None), None)
            if open_band is not None:
                text = label or default
                if text not in open_band["label"].split(" + "):
                    open_band["label"] += f" + {text}"
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
            line = pg.InfiniteLine(pos=at, angle=90,
                                   pen=pg.mkPen("#D55E00", width=2 * self.scale, style=Qt.PenStyle.DashLine))
            p.addItem(line)
            self.marker.append(line)

    def _reset_y(self) -> None:
        """Every chart's y range back to a neutral one, then automatic again (log axes too):
        nothing of the last run's ranges is left."""
        self._y_applied = {}
        for i, p in enumerate(self.plots):
            log = PLOTS[i][3]
            if i == 3:  # hit ratio: always 0..1
                p.setYRange(0, 1.05, padding=0)
            elif self.request_marks and i in RATE_CHARTS:
                n = max(1, len(self.strategies))
                p.setYRange(0.4, n + 0.6, padding=0)
            else:
                p.setYRange(-1.0, 2.0, padding=0) if log else p.setYRange(0, 1, padding=0)
                p.enableAutoRange(axis="y", enable=True)

    def clear_moment(self) -> None:
        """Forget the shading, the marker and the request marks, keeping the axes' ranges
        (steady: a scrub to another moment only moves what must move), for a moment of the
        tape to be shown from scratch."""
        self._spare_regions.update({(r["kind"], r["start"]): r for r in self.regions})
        self.regions = []
        self.mark(None)
        self._targets = {}
        self._requests = {}
        for item in self.marks.values():
            item.setData([], [])
        self._pending = []
        self._dirty = True

    def end_moment(self, keep: bool = True) -> None:
        """After a moment was shown again: the bands it does not have are hidden, kept for
        the next moment that has them (``keep``), or removed."""
        for region in self._spare_regions.values():
            for p, item in region["items"]:
                if keep:
                    item.setVisible(False)
                else:
                    p.removeItem(item)
        if not keep:
            self._spare_regions = {}

    def clear_run(self) -> None:
        self.end_moment(keep=False)
        for region in self.regions:
            for p, item in region["items"]:
                p.removeItem(item)
        self.regions = []
        self.mark(None)
        self.now = 0.0
        for curves in itertools.chain(self.curves, self.node_curves.values()):
            for _, _, curve, _ in curves:
                curve.setData([], [])
        for *_, label in self.labels:
            label.setVisible(False)
        self._targets = {}
        self._requests = {}
        for item in self.marks.values():
            item.setData([], [])
        self._reset_y()
        self._pending = []
        self._sync_x()
        self._dirty = True

    # -- request marks (slow motion) -------------------------------------------------------

    def set_request_marks(self, on: bool) -> None:
        """Slow motion: latency charts add a dot per request (fill: outcome, ring: lane);
        the rate charts become a raster, one row per lane, a mark per request. Off: lines."""
        on = bool(on)
        if on == self.request_marks:
            return
        self.request_marks = on
        for i in (*LATENCY_CHARTS, *RATE_CHARTS):
            p = self.plots[i]
            if on:
                item = pg.ScatterPlotItem(pxMode=True, size=MARK_PX * self.scale * (1.25 if i in RATE_CHARTS else 1.0))
                item.setZValue(10)
                p.addItem(item)
                self.marks[i] = item
            else:
                item = self.marks.pop(i, None)
                if item is not None:
                    p.removeItem(item)
            if i in RATE_CHARTS:
                for _, _, curve, _ in self.curves[i] if i < len(self.curves) else ():
                    curve.setVisible(not on)
                self._raster_axis(i)
        for curves in self.node_curves.values():  # slow motion: a mark per request, no line per node
            for _, _, curve, _ in curves:
                curve.setVisible(not on)
        self._titles.clear()
        self._fit_text()
        for i in RATE_CHARTS:
            self._place_labels(i)
        self._dirty = True

    def _raster_axis(self, i: int) -> None:
        """Chart ``i``'s y axis: a row per lane (CA, WT, WB from the top) in raster mode."""
        p, ax = self.plots[i], self.plots[i].getAxis("left")
        n = max(1, len(self.strategies))
        if self.request_marks:
            ax.setTicks([[(n - k, lane_style(s)[2]) for k, s in enumerate(self.strategies)], []])
            p.enableAutoRange(axis="y", enable=False)
            p.setYRange(0.4, n + 0.6, padding=0)
        else:
            ax.setTicks(None)
            p.enableAutoRange(axis="y", enable=True)
        self._set_unit(i)

    def add_requests(self, lane: int, records: list[dict]) -> None:
        """Keep the lane's requests (the newest REQUEST_BUFFER) for the request marks:
        dicts with kind (read|write), start and end (s since run start) and outcome."""
        if not records:
            return
        rows = []
        for r in records[-REQUEST_BUFFER:]:
            kind = r.get("kind")
            if kind != "read" and kind != "write":
                continue
            outcome = r.get("outcome")
            if kind == "write" and outcome == "ok":
                outcome = "write"
            rows.append((r["start"], (r["end"] - r["start"]) * 1000.0, kind == "write",
                         _OUTCOME.get(outcome, _OUTCOME["other"])))
        if not rows:
            return
        new = np.asarray(rows, dtype=float)
        old = self._requests.get(lane)
        self._requests[lane] = (new if old is None else np.concatenate([old, new]))[-REQUEST_BUFFER:]
        self._dirty = True

    def request_count(self) -> int:
        """Requests held for the marks, all lanes together."""
        return sum(len(rows) for rows in self._requests.values())

    def _mark_styles(self):
        t = self._t()
        if getattr(self, "_styles_for", None) != (t.name, self.scale, tuple(self.strategies)):
            fills = []
            for name in OUTCOMES:
                colour, shape, _ = TOKENS.get(name, (t.muted, "circle", name))
                if name == "rejected" and t.name == "dark":
                    colour = "#e8e8e8"  # black on the dark panel would not show
                fills.append((pg.mkBrush(colour), _SYMBOL[shape]))
            rings = [pg.mkPen(lane_style(s)[0], width=max(1.5, 1.5 * self.scale)) for s in self.strategies]
            edge = pg.mkPen(t.panel, width=1)  # raster: the row says the lane; an edge keeps marks apart
            self._styles = (fills, rings, edge)
            self._styles_for = (t.name, self.scale, tuple(self.strategies))
        return self._styles

    def _draw_marks(self, i: int, lo: float, hi: float) -> None:
        item = self.marks.get(i)
        if item is None:
            return
        fills, rings, edge = self._mark_styles()
        n = len(self.strategies)
        xs, ys, brushes, symbols, pens = [], [], [], [], []
        for lane in range(n):
            buf = self._requests.get(lane)
            if buf is None or not len(buf):
                continue
            keep = (buf[:, _START] >= lo) & (buf[:, _START] <= hi)
            out = buf[:, _OUT]
            if i == 0:
                keep &= buf[:, _KIND] == 0
            elif i == 1:
                keep &= buf[:, _KIND] == 1
            elif i == 5:  # what reached the DB then: read misses, and writes but those queued
                db_write = (out == _OUTCOME["write"]) & (not queues_writes(self.kinds[lane]))
                keep &= (out == _OUTCOME["miss"]) | db_write
            elif i == 6:
                keep &= (out == _OUTCOME["error"]) | (out == _OUTCOME["rejected"])
            rows = buf[keep]
            if not len(rows):
                continue
            xs.append(rows[:, _START])
            if i in LATENCY_CHARTS:
                ys.append(np.log10(np.maximum(rows[:, _LAT], 1e-3)))
            else:
                ys.append(np.full(len(rows), n - lane, dtype=float))
            for code in rows[:, _OUT].astype(int):
                brush, symbol = fills[code]
                brushes.append(brush)
                symbols.append(symbol)
            pens.extend([rings[lane] if i in LATENCY_CHARTS else edge] * len(rows))
        if not xs:
            item.setData([], [])
            return
        item.setData(x=np.concatenate(xs), y=np.concatenate(ys), brush=brushes, symbol=symbols, pen=pens)

    # -- drawing ------------------------------------------------------------------------

    def touch(self, now: float) -> None:
        if self.cursor is None:  # scrubbed back, the charts stay at the cursor
            self.now = now
        self._dirty = True

    def redraw(self) -> None:
        """Redraw the next group of ``GROUP`` shown charts (all of them every round): a
        paint of one chart is short, so the flow view's frames never wait long. The x
        range is set on every shown chart at once (draw_plots)."""
        if not self._dirty and not self._pending:
            return
        if self._dirty and not self._pending:
            self._dirty = False
            self._pending = list(self.shown)
        group, self._pending = self._pending[:GROUP], self._pending[GROUP:]
        self.draw_plots(group)
        self.frames += 1

    def x_range(self) -> tuple[float, float]:
        """The visible run time: WINDOW_S wide, moved on in steps of X_STEP_S (not every
        redraw: a still axis is drawn from its cache, a moving one is laid out again)."""
        hi = max(2 * X_STEP_S, math.ceil((self.now + 1.0) / X_STEP_S) * X_STEP_S)
        return max(0.0, hi - WINDOW_S), hi

    def _sync_x(self) -> None:
        """The x range on every shown chart, in one go; an unchanged range is not set again."""
        xr = self.x_range()
        for i in self.shown:
            if self._x_applied.get(i) != xr:
                self.plots[i].setXRange(*xr, padding=0)
                self._x_applied[i] = xr

    def redraw_all(self) -> None:
        """Every shown chart now (for a screenshot or an export)."""
        self._dirty, self._pending = False, []
        self.draw_plots(self.shown)
        self.frames += 1

    def _upto(self, ring) -> int:
        """How many of a ring's rows the charts show: all, or those up to the cursor."""
        if self.cursor is None:
            return len(ring)
        # a row is shown once its bin has settled, as the live charts showed it then
        return int(np.searchsorted(ring.view(COL["t"]), self.cursor - SETTLE_S + 1e-9, side="right"))

    def set_cursor(self, t: float | None) -> None:
        """Show the charts as they were at lab time ``t`` (None: as they are now)."""
        self.cursor = t
        if t is not None:
            self.now = t
        self._dirty = True

    def draw_plots(self, which) -> None:
        which = [i for i in dict.fromkeys(which) if 0 <= i < len(self.plots)]
        rows = int(WINDOW_S / BIN_S) + 8  # what the view can show
        lo, hi = self.x_range()
        for i in which:
            log = PLOTS[i][3]
            for src, col, curve, _ in self._chart_curves(i):
                ring = self._ring(src)
                if ring is None:
                    continue
                n = self._upto(ring)
                if n:
                    y = ring.view(col)[:n][-rows:]
                    if log:
                        with np.errstate(divide="ignore", invalid="ignore"):
                            y = np.log10(y)
                    curve.setData(ring.view(COL["t"])[:n][-rows:], y)
                else:
                    curve.setData([], [])
            if self.request_marks and i == HIT_CHART:
                self._rolling_hits()
            if self.request_marks and i in self.marks:
                self._draw_marks(i, lo, hi)
        chosen = {id(self.plots[i]) for i in which}
        index = {id(p): i for i, p in enumerate(self.plots)}
        for p, lane, col, log, label in self.labels:
            if id(p) not in chosen:
                continue
            ring = self._ring(lane) if not (self.request_marks and isinstance(lane, tuple)) else None
            n = self._upto(ring) if ring is not None else 0
            values = ring.view(col)[:n][-20:] if n else np.array([])
            finite = np.flatnonzero(np.isfinite(values) & ((values > 0) if log else True))
            targets = self._targets.setdefault(index[id(p)], [])
            targets[:] = [e for e in targets if e[0] is not label]
            if len(finite):
                k = finite[-1]
                t, v = ring.view(COL["t"])[:n][-len(values):][k], values[k]
                targets.append((label, float(t), math.log10(v) if log else float(v)))
            else:
                targets.append((label, None, None))
        if self.request_marks and HIT_CHART in which:  # end labels at the rolling ratio's last read
            ends = {lane: curve for lane, _, curve, _ in self.curves[HIT_CHART]}
            for p, lane, _, _, label in self.labels:
                if p is self.plots[HIT_CHART] and lane in ends:
                    x, y = ends[lane].xData, ends[lane].yData
                    targets = self._targets.setdefault(HIT_CHART, [])
                    targets[:] = [e for e in targets if e[0] is not label]
                    has = x is not None and len(x)
                    targets.append((label, float(x[-1]) if has else None, float(y[-1]) if has else None))
        for region in self.regions:
            end = region["end"] if region["end"] is not None else self.now
            if not region["items"]:
                brush = QColor(region["colour"])
                brush.setAlpha(60)
                for p in self.plots:
                    item = pg.LinearRegionItem(values=(region["start"], max(end, region["start"] + 0.05)),
                                               movable=False, brush=brush, pen=pg.mkPen(None))
                    item.setZValue(-10)
                    p.addItem(item)
                    region["items"].append((p, item))
            for p, item in region["items"]:
                if id(p) in chosen:
                    item.setRegion((region["start"], max(end, region["start"] + 0.05)))
        self._sync_x()
        for i in which:
            self._steady_y(i)
            # Transform now (the paint would do it anyway), so the end labels are placed in
            # the pixels the chart will show.
            self.plots[i].getViewBox().prepareForPaint()
            self._place_labels(i)

    def _rolling_hits(self) -> None:
        """Slow motion: each lane's hit ratio over its last HIT_READS reads, at every read
        (0.25 s bins hold no read at 2 requests a second: the ratio per bin is mostly empty)."""
        for lane, _, curve, _ in self.curves[HIT_CHART] if HIT_CHART < len(self.curves) else ():
            buf = self._requests.get(lane)
            reads = buf[buf[:, _KIND] == 0] if buf is not None and len(buf) else None
            if reads is None or not len(reads):
                curve.setData([], [])
                continue
            hits = (reads[:, _OUT] == _OUTCOME["hit"]).astype(float)
            sums = np.convolve(hits, np.ones(HIT_READS))[: len(hits)]
            counts = np.minimum(np.arange(1, len(hits) + 1), HIT_READS)
            curve.setData(reads[:, _START], sums / counts)

    def _steady_y(self, i: int) -> None:
        """Chart ``i``'s y range from its data, changed only when the data leave it or fill
        less than a third of it (linear: a round top from 1, 2, 2.5, 5 × 10^k; log: whole
        decades). A steady axis is readable across the room, and it is drawn from its cache:
        redrawing tick labels on every auto range was a fifth of the window's CPU time
        (measured with py-spy at full speed)."""
        if i == 3 or (self.request_marks and i in RATE_CHARTS):
            return  # fixed ranges (hit ratio 0..1, the request raster's rows)
        log = PLOTS[i][3]
        hi = -math.inf
        lo = math.inf
        for _, _, curve, _ in self._chart_curves(i):
            if not curve.isVisible():
                continue
            y = curve.yData
            if y is None or not len(y):
                continue
            finite = y[np.isfinite(y)]
            if len(finite):
                hi, lo = max(hi, float(finite.max())), min(lo, float(finite.min()))
        item = self.marks.get(i) if self.request_marks else None
        if item is not None and i in LATENCY_CHARTS:
            ys = item.data["y"] if len(item.data) else []
            if len(ys):
                hi, lo = max(hi, float(np.max(ys))), min(lo, float(np.min(ys)))
        if not math.isfinite(hi):
            return
        current = self._y_applied.get(i)
        if log:
            want = (math.floor(lo), max(math.ceil(hi), math.floor(lo) + 1))
            if current is not None and current[0] <= lo and hi <= current[1] \
                    and (current[1] - current[0]) <= (want[1] - want[0]) + 1:
                return
        else:
            if current is not None and hi <= current[1] and hi >= current[1] / 3:
                return
            want = (0.0, _nice_top(hi * 1.05))
        if want != current:
            vb = self.plots[i].getViewBox()
            vb.enableAutoRange(axis="y", enable=False)
            self.plots[i].setYRange(*want, padding=0)
            self._y_applied[i] = want

    def _on_transform(self, vb) -> None:
        for i, p in enumerate(self.plots):
            if p.getViewBox() is vb:
                self._place_labels(i)
                return

    def _place_labels(self, i: int) -> None:
        """Put chart ``i``'s end labels next to their line ends, pushed apart vertically so
        none overlaps another, all inside the plot area (labels that cannot fit are hidden:
        the key still names every lane)."""
        entries = self._targets.get(i)
        if not entries:
            return
        vb = self.plots[i].getViewBox()
        raster = self.request_marks and i in RATE_CHARTS
        rect = vb.boundingRect()
        width, height = rect.width(), rect.height()
        pad = 4 * self.scale
        placed = []
        for label, t, y in entries:
            if t is None or raster or height <= 0:
                label.setVisible(False)
                continue
            pt = vb.childGroup.mapToParent(QPointF(t, y))
            br = label.boundingRect()
            w, h = br.width(), br.height()
            x = pt.x() + pad
            if x + w > width:
                x = pt.x() - pad - w
            x = min(max(0.0, x), max(0.0, width - w))
            top = pt.y() - h / 2
            if not math.isfinite(top):
                label.setVisible(False)
                continue
            placed.append([top, h, w, x, label])
        fits, total = [], 0.0
        for entry in placed:  # in lane order: the first lanes keep their labels
            if total + entry[1] <= height and entry[2] <= width:
                fits.append(entry)
                total += entry[1]
            else:
                entry[4].setVisible(False)
        fits.sort(key=lambda e: e[0])
        for e in fits:
            e[0] = min(max(0.0, e[0]), height - e[1])
        for a, b in itertools.pairwise(fits):  # push down
            b[0] = max(b[0], a[0] + a[1])
        nxt = height
        for e in reversed(fits):  # push up from the bottom edge
            e[0] = min(e[0], nxt - e[1])
            nxt = e[0]
        for top, _, _, x, label in fits:
            label.setPos(x, max(0.0, top))
            label.setVisible(True)

    # -- geometry (for tests and the window) ----------------------------------------------

    def _to_widget(self, item) -> QRectF:
        r = item.mapRectToScene(item.boundingRect())
        r = self.viewportTransform().mapRect(r)
        vp = self.viewport().pos()
        return QRectF(r).translated(vp.x(), vp.y())

    def label_rects(self) -> list[tuple[str, QRectF]]:
        """Every visible text of the charts (titles, end labels, the key) and its rectangle
        in this widget's coordinates."""
        out = []
        if self.key.scene() is not None and self.key.isVisible() and self.key.text:
            out.append(("key", self._to_widget(self.key.item)))
        for i in self.shown:
            p = self.plots[i]
            if p.scene() is None:
                continue
            if p.titleLabel.isVisible():
                out.append((f"title:{CHART_NAMES[i]}", self._to_widget(p.titleLabel.item)))
        for p, lane, _, _, label in self.labels:
            if p.scene() is not None and label.isVisible():
                i = self.plots.index(p)
                out.append((f"end:{CHART_NAMES[i]}:{label.text()}", self._to_widget(label)))
        return out

    def plot_rects(self) -> list[QRectF]:
        """Each shown chart's plot area (its view box) in this widget's coordinates."""
        return [self._to_widget(self.plots[i].getViewBox()) for i in self.shown
                if self.plots[i].scene() is not None]

    # -- export -------------------------------------------------------------------------

    def export_svg(self, path) -> bool:
        """The shown charts as one SVG, written through engine.outputs (an existing symlink
        or device is never replaced). False (and ``last_export_error`` says why) when the
        path cannot be written; never raises for that."""
        self.last_export_error = ""
        self.redraw_all()
        try:
            data = _svg_bytes(self.ci)
        except ValueError:  # pyqtgraph could not read what Qt's SVG generator wrote
            data = self._svg_render()
        try:
            write_output(path, "export", data)
        except (OutputError, OutputWriteError, OSError) as exc:
            self.last_export_error = str(exc)
            return False
        return True

    def _svg_render(self) -> bytes:
        """The panel painted by QSvgGenerator (no per-plot clipping; the fallback)."""
        from PySide6.QtCore import QBuffer, QIODevice, QRect, QSize
        from PySide6.QtGui import QPainter
        from PySide6.QtSvg import QSvgGenerator

        buf = QBuffer()
        buf.open(QIODevice.OpenModeFlag.WriteOnly)
        gen = QSvgGenerator()
        gen.setOutputDevice(buf)
        gen.setSize(QSize(self.width(), self.height()))
        gen.setViewBox(QRect(0, 0, self.width(), self.height()))
        painter = QPainter(gen)
        self.render(painter)
        painter.end()
        return bytes(buf.data())

    def export_csv(self, path: Path) -> int:
        """Every chart row of every lane; returns rows written."""
        rows = 0
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["lane"] + list(COLUMNS))
            named = list(zip(self.strategies, self.series))
            if self.node_lines:  # what the charts show: each node's rows too
                named += [(f"{self.strategies[lane]} node {k}", s) for lane, nodes in enumerate(self.node_series)
                          if lane < len(self.strategies) for k, s in enumerate(nodes)]
            for strategy, series in named:
                ring = series.ring
                data = np.column_stack([ring.view(i) for i in range(len(COLUMNS))]) if len(ring) else []
                for row in data:
                    w.writerow([strategy] + ["" if np.isnan(v) else f"{v:.6g}" for v in row])
                    rows += 1
        return rows
