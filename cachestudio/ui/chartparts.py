"""What the live charts show and the pieces they are drawn with: the eight charts (title,
unit, columns, scale), the sizes of their text at scale 1, the timing of their redraws,
and the axes and end labels pyqtgraph draws them with. No state: the panel is
:class:`~.charts.ChartPanel`."""

from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QGraphicsSimpleTextItem

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
    (
        "Stale reads, lost ▬, at risk ─",
        "",
        [("stale_reads", "stale reads", 1.0), ("lost_writes", "lost writes", 1.6), ("at_risk", "at risk", 0.5)],
        False,
    ),
]
#: Shorter titles where a chart is too narrow for its long one (then elided if need be).
SHORT_TITLES = [
    "Read latency",
    "Write latency",
    "Throughput",
    "Hit ratio",
    "WB queue",
    "DB reads ─ writes ▬",
    "Errors ─ rejected ▬",
    "Stale, lost ▬, risk ─",
]
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


class DecadeAxis(pg.AxisItem):
    """A log axis labelled at decades (0.01, 0.1, 1, 10 … ms), with 2 and 5 between them
    only when fewer than two decades are in view: readable at any chart height."""

    def logTickValues(self, minVal, maxVal, size, stdTicks):  # noqa: N802,N803 - pyqtgraph's names
        lo, hi = math.floor(minVal), math.ceil(maxVal)
        majors = [float(d) for d in range(lo, hi + 1) if minVal <= d <= maxVal]
        minors = []
        if len(majors) < 2:
            minors = [
                d + math.log10(m) for d in range(lo, hi + 1) for m in (2, 5) if minVal <= d + math.log10(m) <= maxVal
            ]
        return [(1.0, majors), (None, minors)]

    def logTickStrings(self, values, scale, spacing):  # noqa: N802 - pyqtgraph's name
        return [f"{float(f'{10**v:.3g}'):g}" if 10**v < 9999.5 else _num(10**v) for v in values]  # 1000, then 10k


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
