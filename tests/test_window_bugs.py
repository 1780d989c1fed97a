"""The window's bugs of issue 11, each with its test: the real window offscreen, real lab
processes, no blind sleeps (every wait is on a condition)."""

from __future__ import annotations

import os
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from helpers import ROOT  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtGui import QImage  # noqa: E402
from PySide6.QtWidgets import QApplication, QDialog, QDialogButtonBox, QTableWidget  # noqa: E402
from windowing import WAIT_MS, speed_index, started, win  # noqa: F401 - first: Qt offscreen; win is a fixture

from cachestudio.engine.tempfolders import start_time  # noqa: E402
from cachestudio.ui import app as ui_app  # noqa: E402
from cachestudio.ui.charts import ChartPanel  # noqa: E402
from cachestudio.ui.window import SPEEDS  # noqa: E402

SCENARIOS = ROOT / "resources" / "scenarios"


# -- 1 and 7: the speed box shows the rate in force; a speed key always applies ----------------


def test_open_shows_the_scenarios_speed_and_a_speed_key_applies(qtbot, win):
    win.speed_combo.setCurrentIndex(speed_index(0.0))  # "Full speed" before the scenario
    assert win.load_scenario(SCENARIOS / "slow-motion.toml")
    assert win.session.base.workload.rate == 2
    assert win.speed_combo.currentData() == 2.0 and "2/s" in win.speed_combo.currentText()
    assert win.speed_combo.count() == len(SPEEDS)

    assert win.load_scenario(SCENARIOS / "side-by-side.toml")  # 1,500/s: no such speed in the box
    assert win.session.base.workload.rate == 1500
    assert win.speed_combo.currentText() == "Scenario: 1,500/s" and win.speed_combo.currentData() == 1500.0
    assert win.speed_combo.count() == len(SPEEDS) + 1  # one extra item, not one per Open
    assert win.load_scenario(SCENARIOS / "slow-motion.toml")
    assert win.speed_combo.count() == len(SPEEDS) and win.speed_combo.currentData() == 2.0

    # the rate knob changes what is in force: the box follows
    win.knobs.widgets[("workload", "rate")].setValue(750)
    assert win.speed_combo.currentText() == "Scenario: 750/s"

    # a key for the speed the box shows applies it all the same
    win.session.set_knob("workload", "rate", 123.0)  # behind the box's back
    win.speed_combo.blockSignals(True)
    win.speed_combo.setCurrentIndex(speed_index(20.0))
    win.speed_combo.blockSignals(False)
    qtbot.keyClick(win, Qt.Key.Key_2)
    assert win.session.base.workload.rate == 20.0
    assert win.knobs.widgets[("workload", "rate")].value() == 20.0


def test_speed_keys_reach_a_running_scenario_and_say_the_speed(qtbot, win):
    assert win.load_scenario(SCENARIOS / "slow-motion.toml")
    started(qtbot, win, rows=2, latency=False)
    run = win.session.run
    assert all(lane.cfg.workload.rate == 2 for lane in run.lanes)
    qtbot.keyClick(win, Qt.Key.Key_5)  # full speed
    assert win.speed_combo.currentData() == 0.0
    qtbot.waitUntil(lambda: all(lane.cfg.workload.rate == 0 for lane in run.lanes), timeout=WAIT_MS)
    qtbot.waitUntil(
        lambda: any(e["kind"] == "knob" and e["detail"] == "speed: full speed (flat out)" for e in run.events),
        timeout=WAIT_MS,
    )
    qtbot.waitUntil(lambda: "speed: full speed (flat out)" in win.statusBar().currentMessage(), timeout=WAIT_MS)
    assert "workload.rate" not in win.statusBar().currentMessage()
    qtbot.keyClick(win, Qt.Key.Key_1)  # back to slow motion
    qtbot.waitUntil(
        lambda: any(e["kind"] == "knob" and e["detail"] == "speed: 2 operations/s" for e in run.events), timeout=WAIT_MS
    )
    qtbot.waitUntil(lambda: all(lane.cfg.workload.rate == 2 for lane in run.lanes), timeout=WAIT_MS)


def test_a_speed_change_without_a_lab_says_the_speed(win):
    win.speed_combo.setCurrentIndex(speed_index(0.0))
    assert win.statusBar().currentMessage() == "speed: full speed (flat out)"
    win.speed_combo.setCurrentIndex(speed_index(2000.0))
    assert win.statusBar().currentMessage() == "speed: 2,000 operations/s"


# -- 2: a burst band always ends at the burst-end that follows ---------------------------------


def test_two_bursts_and_one_end_leave_no_band_open(qtbot):
    charts = ChartPanel()
    qtbot.addWidget(charts)
    charts.fault("burst", 1.0, label="write burst")
    charts.fault("burst", 1.5, label="read burst")  # not merged: two bands ...
    charts.fault_end("burst", 4.0)  # ... one end closes both
    assert [r["end"] for r in charts.regions] == [4.0, 4.0]
    charts.clear_run()
    charts.fault("burst", 1.0, label="write burst", merge=True)
    charts.redraw_all()  # the band's items exist: the label is updated in place
    charts.fault("burst", 1.5, label="read burst", merge=True)
    assert len(charts.regions) == 1 and charts.regions[0]["label"] == "write burst + read burst"
    charts.fault_end("burst", 4.0)
    assert charts.regions[0]["end"] == 4.0


def test_write_then_read_burst_in_a_lab_leaves_no_band_open(qtbot, win):
    win.speed_combo.setCurrentIndex(speed_index(200.0))
    started(qtbot, win, rows=2, latency=False)
    run = win.session.run
    qtbot.keyClick(win, Qt.Key.Key_B)
    qtbot.keyClick(win, Qt.Key.Key_B, Qt.KeyboardModifier.ShiftModifier)
    qtbot.waitUntil(lambda: sum(e["kind"] == "burst" for e in run.events) == 2, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: any(e["kind"] == "burst-end" for e in run.events), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not any(lane.burst_active() for lane in run.lanes), timeout=WAIT_MS)
    bands = [r for r in win.charts.regions if r["kind"] == "burst"]
    assert bands and all(r["end"] is not None for r in bands), bands
    assert any("read burst" in r["label"] for r in bands)
    if sum(e["kind"] == "burst-end" for e in run.events) == 1:  # the engine queued them: one band
        assert len(bands) == 1 and bands[0]["label"] == "write burst ×2,000 + read burst ×2,000"
    # and the band stays closed as the run goes on
    frames = win.charts.frames
    qtbot.waitUntil(lambda: win.charts.frames > frames + 8, timeout=WAIT_MS)
    assert all(r["end"] is not None for r in win.charts.regions if r["kind"] == "burst")


# -- 3: one keys dialog, no row numbers, a Close button, Esc closes it --------------------------


def test_keys_dialog_is_one_dialog_with_close_and_esc(qtbot, win):
    for _ in range(3):
        win.act_keys.trigger()
    qtbot.keyClick(win, Qt.Key.Key_F1)
    dialogs = [d for d in win.findChildren(QDialog) if d.objectName() == "keys-dialog"]
    assert len(dialogs) == 1 and dialogs[0].isVisible()
    dlg = dialogs[0]
    table = dlg.findChild(QTableWidget)
    assert table.rowCount() == len(win.keys) and not table.verticalHeader().isVisible()
    close = dlg.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Close)
    assert close is not None and close.isVisible()
    qtbot.mouseClick(close, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dlg.isVisible())
    win.act_keys.trigger()
    assert dlg.isVisible() and win.keys_dialog is dlg
    qtbot.waitUntil(lambda: QApplication.activeWindow() is dlg)  # shown on top, with the keyboard
    qtbot.keyClick(dlg, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not dlg.isVisible())
    assert "start the lab first" not in win.statusBar().currentMessage()  # Esc did not reach Heal all


# -- 4: Export PNG: the charts or the whole window, said in the status bar, never replacing a link


def test_export_png_of_charts_and_window_is_confirmed(win, tmp_path):
    charts = tmp_path / "charts.png"
    assert win.export_png("charts", charts)
    assert str(charts) in win.statusBar().currentMessage()
    img = QImage(str(charts))
    ratio = win.charts.devicePixelRatioF()
    part = win.lower_half  # the charts with their caption and event strip: what they show is named there
    assert (img.width(), img.height()) == (round(part.width() * ratio), round(part.height() * ratio))
    window = tmp_path / "window.png"
    assert win.export_png("window", window)
    assert str(window) in win.statusBar().currentMessage() and "window" in win.statusBar().currentMessage()
    img = QImage(str(window))
    assert (img.width(), img.height()) == (round(win.width() * ratio), round(win.height() * ratio))
    # through an existing symlink: the link stays, its target gets the PNG
    target = tmp_path / "target.png"
    target.write_bytes(b"old")
    link = tmp_path / "link.png"
    link.symlink_to(target)
    assert win.export_png("charts", link)
    assert link.is_symlink() and target.read_bytes().startswith(b"\x89PNG")
    # a path that cannot be written: said, not raised
    assert not win.export_png("charts", tmp_path / "no-such-dir" / "x.png")
    assert "export failed" in win.statusBar().currentMessage()


# -- 5: no X server, or no libxcb-cursor: one line and exit 2, before Qt is loaded --------------


def _free_display() -> int:
    n = 55
    while os.path.exists(f"/tmp/.X11-unix/X{n}") or os.path.exists(f"/tmp/.X{n}-lock"):
        n += 1
    return n


def _gui_env(display: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY", "XDG_SESSION_TYPE")}
    env["DISPLAY"] = display
    return env


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("cachestudio")
    return [str(script)] if script.exists() else [sys.executable, "-m", "cachestudio"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11 on Linux")
def test_no_x_server_is_one_line_and_exit_2(tmp_path):
    display = f":{_free_display()}"
    proc = subprocess.run(_cli(), capture_output=True, text=True, timeout=120, cwd=tmp_path, env=_gui_env(display))
    assert proc.returncode == 2, (proc.returncode, proc.stderr)  # not 134 (SIGABRT)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"no X server answers on DISPLAY={display}" in lines[0]
    assert not list(tmp_path.glob("core*"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11 on Linux")
def test_missing_xcb_cursor_says_the_package(monkeypatch):
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr(ui_app, "_x_display_problem", lambda display: None)  # a server answers
    monkeypatch.setattr(ui_app, "XCB_LIBRARIES", (("libxcb-cursor-absent-for-the-test.so.0", "libxcb-cursor0"),))
    reason = ui_app.no_display_reason()
    assert reason is not None and "\n" not in reason
    assert "sudo apt-get install libxcb-cursor0" in reason


@pytest.mark.skipif(shutil.which("Xvfb") is None, reason="needs Xvfb")
def test_a_real_x_server_passes_the_check(tmp_path):
    n = _free_display()
    xvfb = subprocess.Popen(["Xvfb", f":{n}", "-nolisten", "tcp"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(f"/tmp/.X11-unix/X{n}"):  # waits on the server's socket
            assert xvfb.poll() is None and time.monotonic() < deadline, "Xvfb did not start"
            time.sleep(0.05)
        code = "from cachestudio.ui.app import no_display_reason; print(no_display_reason())"
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=_gui_env(f":{n}"), cwd=ROOT
        )
        assert proc.returncode == 0 and proc.stdout.strip() == "None", proc.stdout + proc.stderr
    finally:
        xvfb.terminate()
        xvfb.wait(30)


# -- 6: the temp folders of a window killed with SIGKILL are removed at the next start ----------


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: the pid names no process now
    return child.pid


def _folder(root: Path, name: str, owner: str | None) -> Path:
    d = root / name
    (d / "run").mkdir(parents=True)
    (d / "run" / "cache.db").write_bytes(b"x" * 1000)
    if owner is not None:
        (d / "owner.pid").write_text(owner)
    return d


def test_stale_window_folders_are_removed_only_when_ours_and_dead(qtbot, win, tmp_path, monkeypatch):
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    live = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        dead = _folder(root, "cachestudio-window-dead", f"{_dead_pid()} 12345\n")
        dead_no_time = _folder(root, "cachestudio-window-dead2", f"{_dead_pid()}\n")
        alive = _folder(root, "cachestudio-window-alive", f"{live.pid} {start_time(live.pid)}\n")
        no_owner = _folder(root, "cachestudio-window-noowner", None)
        garbage = _folder(root, "cachestudio-window-garbage", "not a pid\n")
        other = _folder(root, "someone-else", f"{_dead_pid()}\n")
        elsewhere = _folder(tmp_path, "cachestudio-window-elsewhere", f"{_dead_pid()}\n")
        link = root / "cachestudio-window-link"
        link.symlink_to(elsewhere)
        win.session.start()
        assert not dead.exists() and not dead_no_time.exists()
        for kept in (alive, no_owner, garbage, other, elsewhere):
            assert (kept / "run" / "cache.db").exists(), kept
        assert link.is_symlink()
        # the new run's folder names its owner
        mine = Path(win.session._tmp)
        assert mine.parent == root and mine.name.startswith("cachestudio-window-")
        assert int((mine / "owner.pid").read_text().split()[0]) == os.getpid()
    finally:
        live.stdin.close()
        live.wait(30)
    win.session.reset()
    assert not mine.exists()
