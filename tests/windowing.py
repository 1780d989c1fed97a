"""What every window test shares: Qt offscreen, a fresh window with settings of its own,
and waits on conditions (never blind sleeps). Imported before anything of Qt."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PySide6.QtCore import QSettings  # noqa: E402

from cachestudio.engine.series import COL  # noqa: E402
from cachestudio.ui.window import SPEEDS, MainWindow  # noqa: E402

WAIT_MS = 60_000


@pytest.fixture
def win(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    w = MainWindow(settings)
    qtbot.addWidget(w)
    w.resize(1600, 1000)
    w.show()
    yield w
    w.close()


def speed_index(rate: float) -> int:
    return next(i for i, (_, r) in enumerate(SPEEDS) if r == rate)


def speed(w, ops_per_s: float) -> None:
    w.speed_combo.setCurrentIndex(speed_index(ops_per_s))


def started(qtbot, w, rows: int = 4, latency: bool = True) -> None:
    """Start, then wait until every lane is running and its chart has ``rows`` rows and has
    seen operations (and, with ``latency``, a read latency: on a busy machine the first
    rows can close before a lab's first operation)."""
    w.act_start.trigger()
    qtbot.waitUntil(
        lambda: (
            bool(w.session.series)
            and all(len(s.ring) >= rows for s in w.session.series)
            and all(h == "running" for _, h in w.session.lab_health())
            and all(np.nanmax(s.ring.view(COL["ops_s"]), initial=0) > 0 for s in w.session.series)
            and (not latency or all(np.isfinite(s.ring.view(COL["read_p50"])).any() for s in w.session.series))
        ),
        timeout=WAIT_MS,
    )
