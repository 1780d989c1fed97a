"""Slow motion on the charts: a mark per request. The latency charts add a dot per request
(fill: its outcome, ring: its lane), the rate charts become a raster (a row per lane, a
mark per request), the hit ratio is taken over each lane's last reads. The newest
``REQUEST_BUFFER`` requests of each lane are kept for it."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg

from ..engine.strategykinds import queues_writes
from .chartlayout import ChartLayout
from .chartparts import HIT_CHART, HIT_READS, LATENCY_CHARTS, MARK_PX, RATE_CHARTS, REQUEST_BUFFER
from .theme import TOKENS, lane_style

#: request outcome -> (index, pyqtgraph symbol); colours from theme.TOKENS
_SYMBOL = {"circle": "o", "triangle": "t", "square": "s", "diamond": "d", "cross": "x", "bar": "|"}
OUTCOMES = ("hit", "miss", "write", "error", "rejected", "other")
_OUTCOME = {name: i for i, name in enumerate(OUTCOMES)}
# buffer columns
_START, _LAT, _KIND, _OUT = range(4)


class ChartMarks(ChartLayout):
    """The panel with its request marks (see the module's docstring)."""

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
            rows.append(
                (
                    r["start"],
                    (r["end"] - r["start"]) * 1000.0,
                    kind == "write",
                    _OUTCOME.get(outcome, _OUTCOME["other"]),
                )
            )
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
