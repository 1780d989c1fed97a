"""Starting the window, and rendering it offscreen for screenshots."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path

from ..engine.tempfolders import temp_folder


def qt_environment(offscreen: bool) -> None:
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


def qt_app():
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


def _x_display_problem(display: str) -> str | None:
    """Whether an X server answers on ``display`` (asked through libxcb with ctypes, the
    library Qt's xcb platform uses, so Qt is not loaded and cannot abort), or None."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("xcb")
    if name is None:
        # Without libxcb only a local display's socket can be looked at.
        number = display.rpartition(":")[2].split(".")[0]
        local = display.rpartition(":")[0] in ("", "unix") and number.isdigit()
        if local and not os.path.exists(f"/tmp/.X11-unix/X{number}"):
            return f"no X server answers on DISPLAY={display}; start one, run under xvfb-run, or fix DISPLAY"
        return "libxcb (the X client library) is not installed; on Debian or Ubuntu: sudo apt-get install libxcb1"
    try:
        xcb = ctypes.CDLL(name)
        xcb.xcb_connect.restype = ctypes.c_void_p
        xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
        xcb.xcb_connection_has_error.restype = ctypes.c_int
        xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
        xcb.xcb_disconnect.restype = None
        xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
    except (OSError, AttributeError):
        return None  # cannot ask: let Qt try
    conn = xcb.xcb_connect(display.encode(), None)
    if not conn:
        return f"no X server answers on DISPLAY={display}; start one, run under xvfb-run, or fix DISPLAY"
    try:
        error = xcb.xcb_connection_has_error(conn)
    finally:
        xcb.xcb_disconnect(conn)
    if error == 5:  # XCB_CONN_CLOSED_PARSE_ERR
        return f"DISPLAY={display} is not a display name (like :0); fix DISPLAY"
    if error:
        number = display.rpartition(":")[2].split(".")[0]
        local = display.rpartition(":")[0] in ("", "unix") and number.isdigit()
        refused = (
            "" if local and not os.path.exists(f"/tmp/.X11-unix/X{number}") else " (or it refused us: check XAUTHORITY)"
        )
        return f"no X server answers on DISPLAY={display}{refused}; start one, run under xvfb-run, or fix DISPLAY"
    return None


#: the libraries Qt's xcb platform plugin needs beyond libxcb itself, and their packages
XCB_LIBRARIES = (("libxcb-cursor.so.0", "libxcb-cursor0"),)


def _missing_library() -> str | None:
    import ctypes

    for soname, package in XCB_LIBRARIES:
        try:
            ctypes.CDLL(soname)
        except OSError:
            return (
                f"{soname} is missing (Qt needs it to open a window on X11); "
                f"on Debian or Ubuntu: sudo apt-get install {package}"
            )
    return None


def no_display_reason() -> str | None:
    """Why a window cannot open here (Linux without a display that answers, or without a
    library Qt's X11 platform needs), in one line, or None. Checked before Qt is loaded:
    Qt aborts (SIGABRT, a core dump) where this says one line and the CLI exits 2."""
    if os.environ.get("QT_QPA_PLATFORM"):
        return None
    if not sys.platform.startswith("linux"):
        return None
    display, wayland = os.environ.get("DISPLAY"), os.environ.get("WAYLAND_DISPLAY")
    if not (display or wayland):
        return (
            "no display to open the window on (DISPLAY is not set); run it on a desktop, "
            "under xvfb-run, or use `cachestudio run` for the headless lab"
        )
    if wayland and os.environ.get("XDG_SESSION_TYPE") == "wayland":
        return None  # Qt picks its Wayland platform here
    if not display:
        return None
    return _x_display_problem(display) or _missing_library()


def run_window(scenario: str | None = None, replay: list | None = None) -> int:
    """The studio window; ``replay``: recordings to replay instead of a lab."""
    qt_environment(offscreen=False)
    app = qt_app()
    from .window import MainWindow

    win: MainWindow | CompareWindow
    if replay and len(replay) > 1:
        from .compare import CompareWindow

        win = CompareWindow(replay)  # (never with a scenario: `replay A --compare B` opens none)
    else:
        win = MainWindow(replay=replay)
        if scenario is not None:
            win.load_scenario(Path(scenario))
    win.show()
    if replay:
        win.start()
    code = app.exec()
    return code


@contextlib.contextmanager
def _scenario_window(
    scenario_path: Path, size: tuple[int, int], theme: str | None, present: bool, node_lines: bool = False
):
    """An offscreen window with a scenario loaded and started (its seed, its timeline), at
    ``size`` in ``theme`` (default light), with a chart line per app node if ``node_lines``;
    the window is closed and deleted afterwards."""
    qt_environment(offscreen=True)
    app = qt_app()
    from PySide6.QtCore import QSettings

    from .window import MainWindow

    # The window's settings go to a file of our own (never into --out, never os.devnull).
    with temp_folder("screenshot") as scratch:  # removed however the block ends (a signal too)
        settings = QSettings(str(Path(scratch) / "settings.ini"), QSettings.Format.IniFormat)
        win = MainWindow(settings)
        try:
            if not win.load_scenario(scenario_path):
                raise RuntimeError("scenario did not load")
            win.set_theme(theme or "light")
            win.set_node_lines(node_lines)
            win.resize(*size)
            win.show()
            if present:
                win.set_present(True, full_screen=False)  # offscreen: the size asked, not the screen's
            win.start()
            yield app, win
        finally:
            win.close()
            # Delete the window (and pyqtgraph's items) now, not in PySide's clean-up at exit,
            # which was seen to crash (SIGSEGV) with the interpreter half torn down.
            import shiboken6

            shiboken6.delete(win)
            app.processEvents()
            del settings


def _run_to(app, win, at: float, deadline: float) -> None:
    """Let the run go on until lab time ``at``, then let the views catch up. A lesson's line
    with ``pause = true`` pauses the run: it is resumed at once (a picture is not a talk)."""
    while win.session.now() < at:
        app.processEvents()
        if time.monotonic() > deadline:
            raise RuntimeError(f"the lab did not reach {at:g} s")
        if win.session.paused and not win.session.scenario_ended:
            win.session.toggle_pause()
        time.sleep(0.005)
    for _ in range(3):  # the layouts follow the last data (a key that grew a line, say)
        win.charts.redraw_all()
        app.processEvents()


def screenshot(
    scenario_path: Path,
    at: float,
    out: Path,
    size: tuple[int, int],
    theme: str | None = None,
    present: bool = False,
    node_lines: bool = False,
) -> list[Path]:
    """Run a scenario offscreen with its seed; at run time ``at`` save the window and panels.
    ``theme``: light, dark or projector (default: light); ``present``: presentation mode;
    ``node_lines``: the charts also draw a line per app node."""
    from ..engine.outputs import write_output
    from .images import png_bytes

    with _scenario_window(scenario_path, size, theme, present, node_lines) as (app, win):
        _run_to(app, win, at, time.monotonic() + at + 120)  # starting the labs is not part of `at`
        report = win.layout_report()  # before the pictures: a hidden panel's grab lays it out
        if not win.dock.isVisible():  # collapsed at this size: its picture is still taken, at its own size
            win.anomaly_panel.resize(round(440 * win.scale), round(win.height() * 0.8))
        shots = {"window": win, "flow": win.flow, "charts": win.charts, "anomalies": win.anomaly_panel}
        written = []
        for name, widget in shots.items():
            path = out / f"{name}.png"
            write_output(path, "--out", png_bytes(widget.grab()))  # never replaces what is not ours
            written.append(path)
        # Where every chart, label and button is (window pixels): the layout tests read it.
        path = out / "layout.json"
        write_output(path, "--out", (json.dumps(report, indent=1) + "\n").encode("utf-8"))
        written.append(path)
        return written


def window_pictures(
    scenario_path: Path,
    moments: list[tuple[float, str]],
    out: Path,
    size: tuple[int, int],
    theme: str | None = None,
    present: bool = False,
    comment: str | dict | None = None,
    regions: bool = False,
) -> list[Path]:
    """Several moments of ONE live run of a scenario (its seed, its timeline): at each lab
    time ``at`` of ``moments`` (``(at, name)``, any order), the whole window as
    ``out/NAME.png``. Light theme unless ``theme``; the pictures are encoded and written once
    the last is taken (encoding at 2x takes a few tenths of a second: the run would go on
    meanwhile, and the views lag behind it). ``comment``: a text put in each PNG (its
    ``Comment`` chunk), or {name: text}. ``regions``: also ``out/NAME.regions.json``, where the window drew
    measured data at that moment (:func:`live_regions`), taken after the picture."""
    from ..engine.outputs import write_output
    from .images import png_bytes

    taken = []
    with _scenario_window(scenario_path, size, theme, present) as (app, win):
        last = max((at for at, _ in moments), default=0.0)
        deadline = time.monotonic() + last + 120  # starting the labs is not part of `at`
        for at, name in sorted(moments, key=lambda m: m[0]):
            _run_to(app, win, at, deadline)
            taken.append((name, win.grab(), live_regions(win) if regions else None))
    written = []
    for name, pixmap, where in taken:
        if where is not None:
            path = out / f"{name}.regions.json"
            write_output(path, "--out", (json.dumps(where, indent=1) + "\n").encode("utf-8"))
            written.append(path)
        image = pixmap.toImage()
        text = comment.get(name) if isinstance(comment, dict) else comment
        if text:
            image.setText("Comment", text)
        path = out / f"{name}.png"
        write_output(path, "--out", png_bytes(image))  # never replaces what is not ours
        written.append(path)
    return written


def live_regions(win) -> dict:
    """Where the window draws what a run measured (it differs from one live run to the next:
    tokens and narration of the flow view, the charts' lines, their axes and end labels, the
    caption's figures, the status bar, the side panel's counts), in window pixels, as
    ``[x, y, width, height]``; ``window``: the window's size. Pictures are compared with
    these parts counting less (:mod:`cachestudio.lessondocs`)."""
    from PySide6.QtCore import QPointF, QRectF

    def box(widget, rect=None) -> list[float]:
        r = (QRectF(widget.rect()) if rect is None else rect).translated(widget.mapTo(win, QPointF(0.0, 0.0)))
        return [round(r.x(), 2), round(r.y(), 2), round(r.width(), 2), round(r.height(), 2)]

    def shown(w) -> bool:
        return w.isVisible() and w.width() > 0 and w.height() > 0

    return {
        "window": [win.width(), win.height()],
        "flow": box(win.flow) if shown(win.flow) else None,
        "caption": box(win.caption_bar) if shown(win.caption_bar) else None,
        "status": box(win.statusBar()) if shown(win.statusBar()) else None,
        "dock": box(win.dock) if shown(win.dock) else None,
        "plots": [box(win.charts, r) for r in win.charts.plot_rects()] if shown(win.charts) else [],
        "chart_labels": [box(win.charts, r) for n, r in win.charts.label_rects() if n.startswith("end")]
        if shown(win.charts)
        else [],
    }
