"""``cachestudio self-check``: does this installation work? For CI and for a user whose
install misbehaves.

Opens the window offscreen (no display needed), starts the three lanes, crashes the cache
node (a real SIGKILL of every lab process), waits for every lane to be back and serving,
renders a frame, and says what it did, one line a step. Exit status 0 when all is well,
1 with the step that failed. Its settings are a temporary file of its own (the user's
window settings are left alone).
"""

from __future__ import annotations

import os
import shutil
import sys
import time

from ..engine.tempfolders import make_folder


class CheckFailed(Exception):
    pass


def _wait(app, condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        app.processEvents()
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise CheckFailed(f"{what} (waited {timeout:g} s)")
        time.sleep(0.01)


def run_self_check(
    crash_after_s: float = 1.5, serve_after_s: float = 1.0, timeout_s: float = 90.0, out=sys.stdout
) -> int:
    t0 = time.monotonic()
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from .app import qt_app, qt_environment

    qt_environment(offscreen=True)

    def say(text: str) -> None:
        print(f"self-check: {text} ({time.monotonic() - t0:.1f} s)", file=out, flush=True)

    folder = make_folder("self-check")
    win = None
    app = qt_app()
    try:
        from PySide6.QtCore import QSettings

        from ..paths import resources_root
        from .window import MainWindow, icon_path

        say(f"resources in {resources_root()}")
        settings = QSettings(os.path.join(folder, "settings.ini"), QSettings.Format.IniFormat)
        win = MainWindow(settings)
        if not icon_path().is_file():
            raise CheckFailed(f"no window icon at {icon_path()}")
        win.resize(1200, 800)
        win.show()
        say("window open (offscreen)")
        session = win.session
        events: list[dict] = []
        session.lab_event.connect(events.append)
        win.start()
        _wait(
            app,
            lambda: session.run is not None and all(h == "running" for _, h in session.lab_health()),
            timeout_s,
            "the three lanes did not start",
        )
        lanes = [s for s, _ in session.lab_health()]
        say(f"lanes running: {', '.join(lanes)}")

        def ops() -> list[int]:
            return [lane.stats.ops for lane in session.run.lanes]

        _wait(
            app,
            lambda: session.now() >= crash_after_s and all(n > 0 for n in ops()),
            timeout_s,
            "the lanes served no operation",
        )
        before = ops()
        session.crash()
        _wait(app, lambda: any(e.get("kind") == "crash" for e in events), timeout_s, "no crash event after a crash")
        say(f"cache node crashed (SIGKILL) after {sum(before):,} operations")
        restarts = lambda: {e.get("lane") for e in events if e.get("kind") == "restart"}  # noqa: E731
        _wait(
            app,
            lambda: len(restarts()) >= len(lanes) and all(h == "running" for _, h in session.lab_health()),
            timeout_s,
            "not every lane came back after the crash",
        )
        after_restart = ops()
        _wait(
            app,
            lambda: all(a > b for a, b in zip(ops(), after_restart)),
            timeout_s,
            "a lane serves no operation after its restart",
        )
        t_serve = session.now() + serve_after_s
        _wait(app, lambda: session.now() >= t_serve, timeout_s, "the run stopped")
        say(f"every lane restarted and serving: {sum(ops()):,} operations in all")

        win.charts.redraw_all()
        app.processEvents()
        image = win.grab().toImage()
        colours = {image.pixel(x, y) for x in range(0, image.width(), 30) for y in range(0, image.height(), 30)}
        if image.isNull() or len(colours) < 8:
            raise CheckFailed("the window rendered an empty frame")
        say(f"frame rendered: {image.width()}x{image.height()}, {len(colours)} colours sampled")
        say("ok")
        return 0
    except CheckFailed as exc:
        print(f"self-check: FAILED: {exc}", file=out, flush=True)
        return 1
    finally:
        if win is not None:
            win.close()
            win.session.reset()
            # Delete the window while Python is whole: left to PySide's clean-up at exit, the
            # destruction of pyqtgraph's items calls their Python overrides mid-teardown and
            # crashes (SIGSEGV in shiboken) in about one exit in six.
            import shiboken6

            shiboken6.delete(win)
            app.processEvents()
        shutil.rmtree(folder, ignore_errors=True)
