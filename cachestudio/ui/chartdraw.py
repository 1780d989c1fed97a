"""Drawing the charts: one ``setData`` per curve per redraw, on the panel's own timer, one
chart at a time (a paint of all eight blocked the event loop), from each lane's ring up to
now or to the scrubbed moment; y ranges that stay steady while the data fit them."""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QTimer

from ..engine.series import BIN_S, COL, SETTLE_S
from .chartfaults import ChartFaults
from .chartparts import GROUP, HIT_CHART, LATENCY_CHARTS, PERCENTILES, PLOTS, RATE_CHARTS, REDRAW_MS, WINDOW_S


def _nice_top(v: float) -> float:
    """The least of 1, 2, 2.5, 5 × 10^k at or above ``v`` (1 for nothing)."""
    if not v > 0:
        return 1.0
    k = math.floor(math.log10(v))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if m * 10**k >= v * (1 - 1e-9):
            return m * 10**k
    return 10.0 ** (k + 1)


class ChartDrawing(ChartFaults):
    """The panel, drawn (see the module's docstring)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.timer = QTimer(self)
        self.timer.setInterval(REDRAW_MS)
        self.timer.timeout.connect(self.redraw)

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
        self.labels = [
            (pl, lane, COL[f"{kinds[id(pl)]}_{p}"] if id(pl) in kinds else col, log, lab)
            for pl, lane, col, log, lab in self.labels
        ]
        self._fit_text()
        if self.series:
            self.draw_plots([i for i in LATENCY_CHARTS if i in self.shown])
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
        self._label_targets(chosen, HIT_CHART in which)
        self._draw_regions(chosen)
        self._sync_x()
        for i in which:
            self._steady_y(i)
            # Transform now (the paint would do it anyway), so the end labels are placed in
            # the pixels the chart will show.
            self.plots[i].getViewBox().prepareForPaint()
            self._place_labels(i)

    def _label_targets(self, chosen: set, hit_chart: bool) -> None:
        """Where the end labels of the charts in ``chosen`` (ids of plots) go: each line's
        last finite point (in slow motion, the hit ratio's last read)."""
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
                t, v = ring.view(COL["t"])[:n][-len(values) :][k], values[k]
                targets.append((label, float(t), math.log10(v) if log else float(v)))
            else:
                targets.append((label, None, None))
        if self.request_marks and hit_chart:  # end labels at the rolling ratio's last read
            ends = {lane: curve for lane, _, curve, _ in self.curves[HIT_CHART]}
            for p, lane, _, _, label in self.labels:
                if p is self.plots[HIT_CHART] and lane in ends:
                    x, y = ends[lane].xData, ends[lane].yData
                    targets = self._targets.setdefault(HIT_CHART, [])
                    targets[:] = [e for e in targets if e[0] is not label]
                    has = x is not None and len(x)
                    targets.append((label, float(x[-1]) if has else None, float(y[-1]) if has else None))

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
        want: tuple[float, float]
        if log:
            want = (math.floor(lo), max(math.ceil(hi), math.floor(lo) + 1))
            if (
                current is not None
                and current[0] <= lo
                and hi <= current[1]
                and (current[1] - current[0]) <= (want[1] - want[0]) + 1
            ):
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
