"""The chart panel's layout and style: the eight plots laid out in the columns that fit the
panel, under one key of the lanes; every text and line sized by one factor
(:meth:`ChartLayout.set_scale`) in the theme's colours; titles fitted to their chart; the
x range every shown chart shares; the lane labels at the ends of the lines pushed apart so
none overlaps another or leaves its plot."""

from __future__ import annotations

import functools
import itertools
import math
import weakref

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPen
from PySide6.QtWidgets import QGraphicsItem

from .chartparts import (
    AXIS_LABEL_PX,
    CELL_ASPECT,
    CHART_NAMES,
    END_LABEL_PX,
    HIT_CHART,
    HIT_READS,
    KEY_PX,
    LATENCY_CHARTS,
    MARK_PX,
    MIN_CHART_H,
    MIN_CHART_W,
    PLOTS,
    RASTER_TITLES,
    RATE_CHARTS,
    SHORT_TITLES,
    SWATCH,
    TICK_PX,
    TITLE_PX,
    WINDOW_S,
    X_STEP_S,
    DecadeAxis,
    RateAxis,
)
from .theme import THEMES, Theme, lane_style, text_px


def _title_min(label) -> None:
    """LabelItem.updateMin for chart titles: their height only (no least width), so a
    long title never widens its column; _fit_text makes each fit its chart."""
    h = label.itemRect().height()
    label.setMinimumWidth(0)
    label.setMinimumHeight(h)
    label._sizeHint = {
        Qt.SizeHint.MinimumSize: (0, h),
        Qt.SizeHint.PreferredSize: (0, h),
        Qt.SizeHint.MaximumSize: (-1, -1),
        Qt.SizeHint.MinimumDescent: (0, 0),
    }
    label.updateGeometry()


class ChartLayout(pg.GraphicsLayoutWidget):
    """The panel's plots, their layout and style (see the module's docstring). Holds the
    panel's whole state; the layers above add what it does with it."""

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
        self.frames = 0
        self._dirty = False
        self._pending: list[int] = []  # first chart of each group still to redraw this round
        self._build()
        self._build()

    # -- layout -------------------------------------------------------------------------

    def _build(self) -> None:
        self.clear()
        self.plots = []
        self.key = pg.LabelItem("", justify="left")
        self.key.item.document().setDocumentMargin(2)
        for title, unit, _, log in PLOTS:
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
        h = max(1.0, self.height() - self.key_height() - 8.0)
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

    def key_height(self) -> float:
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
            p.setLabel(
                "left", unit, **{"font-size": f"{text_px(AXIS_LABEL_PX, self.scale)}px", "color": self._t().text}
            )
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
            parts.append(
                f'<span style="color:{colour}; font-weight:bold">{SWATCH} {short}</span>'
                + (f' <span style="color:{t.text}">{strategy}</span>' if short != strategy else "")
            )
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

    # -- ranges and end labels -------------------------------------------------------------

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
