"""Starting the window, and rendering it offscreen for screenshots."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path


def _qt_environment(offscreen: bool) -> None:
    # pyqtgraph prefers PyQt6 when both bindings are installed; we ship PySide6.
    os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
    if offscreen:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"


#: Qt messages that say nothing to a user (the offscreen platform cannot resize windows to
#: their hints; it draws them at the size asked, which is what a screenshot wants).
QUIET = ("This plugin does not support propagateSizeHints()",)
_previous_handler = None


def _filter_messages(mode, context, message) -> None:
    if message in QUIET:
        return
    if _previous_handler is not None:
        _previous_handler(mode, context, message)
    else:
        sys.stderr.write(message + "\n")


def _app():
    global _previous_handler
    from PySide6.QtCore import Qt, qInstallMessageHandler
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        _previous_handler = qInstallMessageHandler(_filter_messages)
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
        app = QApplication(sys.argv[:1])
        app.setApplicationName("Cache Studio")
        app.setOrganizationName("CacheStudio")
        app.setDesktopFileName("cachestudio")
    return app


def no_display_reason() -> str | None:
    """Why a window cannot open here (Linux without a display), or None."""
    if os.environ.get("QT_QPA_PLATFORM"):
        return None
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return ("no display to open the window on (DISPLAY is not set); run it on a desktop, "
                "under xvfb-run, or use `cachestudio run` for the headless lab")
    return None


def run_window(scenario: str | None = None) -> int:
    _qt_environment(offscreen=False)
    app = _app()
    from .window import MainWindow

    win = MainWindow()
    if scenario is not None:
        win.load_scenario(Path(scenario))
    win.show()
    code = app.exec()
    return code


def screenshot(scenario_path: Path, at: float, out: Path, size: tuple[int, int]) -> list[Path]:
    """Run a scenario offscreen with its seed; at run time ``at`` save the window and panels."""
    _qt_environment(offscreen=True)
    app = _app()
    from PySide6.QtCore import QSettings

    from ..engine.outputs import write_output
    from .bench_chart import png_bytes
    from .window import MainWindow

    # The window's settings go to a file of our own (never into --out, never os.devnull).
    scratch = tempfile.TemporaryDirectory(prefix="cachestudio-screenshot-")
    settings = QSettings(str(Path(scratch.name) / "settings.ini"), QSettings.Format.IniFormat)
    win = MainWindow(settings)
    try:
        if not win.load_scenario(scenario_path):
            raise RuntimeError("scenario did not load")
        win.resize(*size)
        win.show()
        win.start()
        deadline = time.monotonic() + at + 120  # starting the labs is not part of `at`
        while win.session.now() < at:
            app.processEvents()
            if time.monotonic() > deadline:
                raise RuntimeError(f"the lab did not reach {at:g} s")
            time.sleep(0.005)
        win.charts.redraw_all()
        app.processEvents()
        shots = {"window": win, "flow": win.flow, "charts": win.charts, "anomalies": win.anomaly_panel}
        written = []
        for name, widget in shots.items():
            path = out / f"{name}.png"
            write_output(path, "--out", png_bytes(widget.grab()))  # never replaces what is not ours
            written.append(path)
        return written
    finally:
        win.close()
        # Delete the window (and pyqtgraph's items) now, not in PySide's clean-up at exit,
        # which was seen to crash (SIGSEGV) with the interpreter half torn down.
        import shiboken6

        shiboken6.delete(win)
        app.processEvents()
        del settings
        scratch.cleanup()
