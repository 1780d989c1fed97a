"""Fault windows on the charts: each shaded on every chart in its declared shade
(engine/faultkinds.py through theme.FAULT_SHADE) as it happens, a burst joining the band
still open; the selected anomaly's marker line; a moment of the run shown again from
scratch, its bands kept across a rewind."""

from __future__ import annotations

import itertools

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor

from .chartlanes import ChartLanes
from .theme import FAULT_SHADE


class ChartFaults(ChartLanes):
    """The panel with its fault bands and marker (see the module's docstring)."""

    def fault(
        self, kind: str, start: float, end: float | None = None, label: str | None = None, merge: bool = False
    ) -> None:
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
        self.regions.append(
            {"kind": kind, "start": start, "end": end, "label": label or default, "colour": colour, "items": []}
        )
        self._dirty = True

    def fault_end(self, kind: str, at: float) -> None:
        """End every open band of ``kind`` at ``at``: an end closes what came before it, so
        no band is ever left open (two starts and one end leave nothing shaded on)."""
        for region in self.regions:
            if region["kind"] == kind and region["end"] is None:
                region["end"] = max(at, region["start"])
        self._dirty = True

    def _draw_regions(self, chosen: set) -> None:
        """Every band on every chart, made the first time it is drawn; its extent set on the
        charts in ``chosen`` (ids of plots) only."""
        for region in self.regions:
            end = region["end"] if region["end"] is not None else self.now
            if not region["items"]:
                brush = QColor(region["colour"])
                brush.setAlpha(60)
                for p in self.plots:
                    item = pg.LinearRegionItem(
                        values=(region["start"], max(end, region["start"] + 0.05)),
                        movable=False,
                        brush=brush,
                        pen=pg.mkPen(None),
                    )
                    item.setZValue(-10)
                    p.addItem(item)
                    region["items"].append((p, item))
            for p, item in region["items"]:
                if id(p) in chosen:
                    item.setRegion((region["start"], max(end, region["start"] + 0.05)))

    def mark(self, at: float | None) -> None:
        """A vertical line at ``at`` on every chart (the selected anomaly); None clears."""
        for p, line in zip(self.plots, self.marker):
            p.removeItem(line)
        self.marker = []
        if at is None:
            return
        for p in self.plots:
            line = pg.InfiniteLine(
                pos=at, angle=90, pen=pg.mkPen("#D55E00", width=2 * self.scale, style=Qt.PenStyle.DashLine)
            )
            p.addItem(line)
            self.marker.append(line)

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
