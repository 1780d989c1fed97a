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

The panel is built in layers, each a module of its own: :mod:`.chartparts` (what the
charts are), :mod:`.chartlayout` (layout, style, end labels), :mod:`.chartmarks` (slow
motion), :mod:`.chartlanes` (the lines), :mod:`.chartfaults` (the bands), :mod:`.chartdraw`
(redraws); this module adds the geometry for tests and the exports, and keeps every name
importable from here.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QRectF

from ..engine.outputs import OutputError, OutputWriteError, write_output
from ..engine.series import COLUMNS
from .chartdraw import ChartDrawing
from .chartmarks import OUTCOMES  # noqa: F401 - importable from here
from .chartparts import (  # noqa: F401 - the charts' names, importable from here as before
    AXIS_LABEL_PX,
    CHART_NAMES,
    END_LABEL_PX,
    HIT_CHART,
    HIT_READS,
    KEY_PX,
    LATENCY_CHARTS,
    MIN_CHART_H,
    MIN_CHART_W,
    NODE_CHARTS,
    PERCENTILES,
    PLOTS,
    RATE_CHARTS,
    REDRAW_MS,
    REQUEST_BUFFER,
    TICK_PX,
    TITLE_PX,
    WINDOW_S,
    X_STEP_S,
    DecadeAxis,
    EndLabel,
    RateAxis,
)
from .theme import text_px  # noqa: F401 - importable from here


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

    module: Any = sys.modules[SVGExporter.__module__]  # pyqtgraph's, untyped (no py.typed)
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


class ChartPanel(ChartDrawing):
    """The eight live charts (see the module's docstring)."""

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
        for p, _lane, _, _, label in self.labels:
            if p.scene() is not None and label.isVisible():
                i = self.plots.index(p)
                out.append((f"end:{CHART_NAMES[i]}:{label.text()}", self._to_widget(label)))
        return out

    def plot_rects(self) -> list[QRectF]:
        """Each shown chart's plot area (its view box) in this widget's coordinates."""
        return [self._to_widget(self.plots[i].getViewBox()) for i in self.shown if self.plots[i].scene() is not None]

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
        return bytes(buf.data().data())  # QByteArray -> bytes

    def export_csv(self, path: str | Path) -> int:
        """Every chart row of every lane, written through engine.outputs (an existing symlink
        or device is never replaced); returns rows written. A path that cannot be written
        raises OutputError or OutputWriteError, with one line for the user."""
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["lane"] + list(COLUMNS))
        named = list(zip(self.strategies, self.series))
        if self.node_lines:  # what the charts show: each node's rows too
            named += [
                (f"{self.strategies[lane]} node {k}", s)
                for lane, nodes in enumerate(self.node_series)
                if lane < len(self.strategies)
                for k, s in enumerate(nodes)
            ]
        rows = 0
        for strategy, series in named:
            ring = series.ring
            data: np.ndarray | list = np.column_stack([ring.view(i) for i in range(len(COLUMNS))]) if len(ring) else []
            for row in data:
                w.writerow([strategy] + ["" if np.isnan(v) else f"{v:.6g}" for v in row])
                rows += 1
        write_output(path, "export", buf.getvalue())
        return rows
