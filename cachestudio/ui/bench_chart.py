"""The benchmark chart (``cachestudio bench --chart FILE``): one bar per figure that has a
yardstick, its ratio against the yardstick, with the target marked. Drawn with QPainter
on an image (offscreen: no display needed)."""

from __future__ import annotations

import os

from .images import png_bytes
from .theme import OKABE_ITO


def render_chart(rows: list[dict], title: str) -> bytes:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QLineF, QRectF, Qt
    from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen

    from .app import qt_app

    qt_app()
    bars = [r for r in rows if r.get("ratio") is not None]
    row_h, left, right, top = 40, 820, 300, 70
    width, height = 1600, top + row_h * max(1, len(bars)) + 60
    hi = max([2.0] + [r["ratio"] * 1.1 for r in bars])
    plot_w = width - left - right
    image = QImage(width, height, QImage.Format.Format_ARGB32)
    image.fill(QColor("#ffffff"))
    p = QPainter(image)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    font = QFont()
    font.setPixelSize(14)
    p.setFont(font)
    p.setPen(QColor("#1a1a1a"))
    head = QFont(font)
    head.setPixelSize(20)
    head.setBold(True)
    p.setFont(head)
    p.drawText(QRectF(20, 14, width - 40, 30), Qt.AlignmentFlag.AlignLeft, title)
    p.setFont(font)

    def x_of(ratio: float) -> float:
        return left + plot_w * ratio / hi

    grid = QPen(QColor("#cccccc"))
    for tick in [t / 2 for t in range(0, int(hi * 2) + 1)]:
        p.setPen(grid)
        p.drawLine(QLineF(x_of(tick), top - 6, x_of(tick), top + row_h * len(bars)))
        p.setPen(QColor("#555555"))
        p.drawText(
            QRectF(x_of(tick) - 30, top + row_h * len(bars) + 4, 60, 20), Qt.AlignmentFlag.AlignHCenter, f"{tick:g}×"
        )
    for i, r in enumerate(bars):
        y = top + i * row_h
        met = r.get("met")
        colour = QColor(OKABE_ITO["green"] if met else OKABE_ITO["vermillion"] if met is False else OKABE_ITO["sky"])
        p.fillRect(QRectF(left, y + 8, x_of(r["ratio"]) - left, row_h - 16), colour)
        p.setPen(QColor("#1a1a1a"))
        p.drawText(
            QRectF(10, y, left - 20, row_h),
            Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
            f"{r['figure']} vs {r['yardstick']}" if r.get("yardstick") else r["figure"],
        )
        target = r.get("target") or ""
        if target:
            bound = float(target.split()[1])
            pen = QPen(QColor("#000000"), 3)
            p.setPen(pen)
            p.drawLine(QLineF(x_of(bound), y + 4, x_of(bound), y + row_h - 4))
        p.setPen(QColor("#1a1a1a"))
        verdict = "" if met is None else (" met" if met else " NOT met")
        p.drawText(
            QRectF(width - right + 10, y, right - 20, row_h),
            Qt.AlignmentFlag.AlignVCenter,
            f"{r['ratio']:.2f}×"
            + (f" (target {target.replace('>=', '≥').replace('<=', '≤')}){verdict}" if target else ""),
        )
    p.setPen(QColor("#555555"))
    p.drawText(
        QRectF(20, height - 30, width - 40, 24),
        Qt.AlignmentFlag.AlignHCenter,
        "ratio to the yardstick measured in the same run · black line: target · "
        f"median of {bars[0]['reps'] if bars else 0} interleaved repetitions",
    )
    p.end()
    return png_bytes(image)
