"""Time to the first painted window, in a fresh process (``cachestudio bench --gui``).

The benchmark starts this process, reads one number from its standard output (seconds from
the process's first line of our code to the first paint) and the process ends at once.
``studio``: the studio window; ``bare``: a bare PySide6 + pyqtgraph window, the yardstick.

It is started as ``cachestudio --bench-first-paint WHICH`` through :func:`command`, never
with ``python -c``: a frozen (PyInstaller) executable has no ``-c``, and the same argument
works from a clone, an installed wheel and the bundle (``cachestudio/__main__.py`` looks for
it before anything else is imported). This module imports only the standard library at its
top, so that what is timed is the import and start of Qt, pyqtgraph and the window.
"""

from __future__ import annotations

import os
import sys
import time

FLAG = "--bench-first-paint"
KINDS = ("studio", "bare")


def command(kind: str) -> list[str]:
    """The command line that measures ``kind`` in a fresh process."""
    if kind not in KINDS:
        raise ValueError(f"unknown first-paint kind {kind!r}")
    if getattr(sys, "frozen", False):
        return [sys.executable, FLAG, kind]
    return [sys.executable, "-m", "cachestudio", FLAG, kind]


def main(kind: str) -> int:
    t0 = time.perf_counter()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
    import shutil

    from PySide6.QtCore import QEvent, QObject, QSettings

    from ..engine.tempfolders import make_folder

    scratch = make_folder("first-paint")

    class Spy(QObject):
        def eventFilter(self, obj, event):  # noqa: N802 - Qt's name
            if event.type() == QEvent.Type.Paint:
                print(time.perf_counter() - t0)
                sys.stdout.flush()
                shutil.rmtree(scratch, ignore_errors=True)
                os._exit(0)
            return False

    if kind == "bare":
        import pyqtgraph as pg
        from PySide6.QtWidgets import QApplication

        app = QApplication([])
        w = pg.PlotWidget()
        w.plot([1, 2, 3])
        w.resize(1600, 1000)
        w.viewport().installEventFilter(Spy(w))
    elif kind == "studio":
        from .app import qt_app

        app = qt_app()
        from .window import MainWindow

        # Settings in a file of our own (never os.devnull: QSettings saves by writing a new
        # file and renaming it over the old one, which as root replaced the system's /dev/null).
        w = MainWindow(QSettings(os.path.join(scratch, "settings.ini"), QSettings.Format.IniFormat))
        w.flow.viewport().installEventFilter(Spy(w))
        w.resize(1600, 1000)
    else:
        print(f"unknown first-paint kind {kind!r} (known: {', '.join(KINDS)})", file=sys.stderr)
        return 2
    w.show()
    app.exec()
    shutil.rmtree(scratch, ignore_errors=True)
    return 1  # the window closed before it was painted
