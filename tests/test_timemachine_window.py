"""The time machine in the window: scrub back while live, Live again, step, replay.

A real window (offscreen), real labs. What a view shows is read from the widgets."""

from __future__ import annotations

import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from helpers import ROOT  # noqa: E402
from PySide6.QtCore import QSettings  # noqa: E402
from windowing import WAIT_MS, started, win  # noqa: F401 - fixtures; sets Qt offscreen first

from cachestudio.engine.config import LaneConfig  # noqa: E402
from cachestudio.engine.recording import RecordingWriter, check_target, plan_header, read_recording  # noqa: E402
from cachestudio.engine.runner import Plan, run  # noqa: E402
from cachestudio.ui.window import MainWindow  # noqa: E402


def shown(w) -> dict:
    """What the window shows: counters, anomaly groups, events, lanes, chart extent."""
    p = w.anomaly_panel
    table = [
        [p.table.item(r, c).text() if p.table.item(r, c) else "" for c in range(p.table.columnCount())]
        for r in range(p.table.rowCount())
    ]
    groups = sorted(p.tree.topLevelItem(i).text(0) for i in range(p.tree.topLevelItemCount()))
    events = [w.events_list.topLevelItem(i).text(1) for i in range(w.events_list.topLevelItemCount())]
    strip = [(e["kind"], round(e["start"], 3)) for e in w.strip.events if not e.get("scheduled")]
    view = w.session.view
    lanes = [(lane.state, lane.stats.ops, dict(lane.totals())) for lane in view.lanes]
    w.charts.redraw_all()
    curves = [
        round(float(c.xData[-1]), 3) if c.xData is not None and len(c.xData) else None
        for curves in w.charts.curves
        for _, _, c, _ in curves
    ]
    return {"table": table, "groups": groups, "events": events, "strip": strip, "lanes": lanes, "curves": curves}


def settled(tape, updates: int = 5) -> bool:
    """The last updates of a paused run all say the same: nothing was still in flight."""
    if len(tape) < updates or not all(f["paused"] for f in tape.flags[-updates:]):
        return False
    return len({tuple(lane["ops"] for lane in tape.lanes[j]) for j in range(len(tape) - updates, len(tape))}) == 1


def test_scrubbing_back_shows_what_the_window_showed_then_and_live_returns(qtbot, win):  # noqa: F811
    started(qtbot, win)
    win.act_crash.trigger()
    qtbot.waitUntil(lambda: any(e["kind"] == "restart" for e in win.session.run.events), timeout=WAIT_MS)
    win.act_start.trigger()  # pause
    qtbot.waitUntil(lambda: win.session.run.paused and win.session.tape.flags[-1]["paused"], timeout=WAIT_MS)
    qtbot.waitUntil(lambda: settled(win.session.tape), timeout=WAIT_MS)  # what was in flight at the pause is in
    at = win.session.tape.end
    then = shown(win)
    assert any("crash" in e for e in then["events"])
    win.act_start.trigger()  # resume
    win.act_outage.trigger()
    qtbot.waitUntil(
        lambda: any(e["kind"] == "outage-start" for e in win.session.run.events) and win.session.now() > at + 2,
        timeout=WAIT_MS,
    )
    win.session.scrub(at)
    assert win.session.view_t == at
    again = shown(win)
    assert again == then, "the scrubbed window differs from what it showed at that moment"
    assert "showing" in win.clock.text()
    # the lab went on meanwhile: nothing is lost, and End brings it all back
    qtbot.waitUntil(lambda: win.session.now() > at + 3, timeout=WAIT_MS)
    assert win.session.view_t == at and shown(win)["events"] == then["events"]
    win.act_live.trigger()
    assert win.session.view_t is None
    now = shown(win)
    assert any("outage" in e.lower() for e in now["events"])
    assert sum(lane[1] for lane in now["lanes"]) > sum(lane[1] for lane in then["lanes"])


def test_keys_move_back_and_to_the_previous_fault(qtbot, win):  # noqa: F811
    started(qtbot, win)
    win.act_crash.trigger()
    qtbot.waitUntil(lambda: any(e["kind"] == "crash" for e in win.session.run.events), timeout=WAIT_MS)
    crash = next(e["start"] for e in win.session.run.events if e["kind"] == "crash")
    qtbot.waitUntil(lambda: win.session.now() > crash + 2.5, timeout=WAIT_MS)
    win.scrub_by(-1.0)
    assert win.session.view_t is not None and win.session.view_t < win.session.now()
    win.scrub_fault(-1)
    assert win.session.view_t == pytest.approx(crash)
    assert win.charts.cursor == pytest.approx(crash)
    assert win.timebar.slider.value() == round(crash * 1000)
    win.scrub_fault(+1)  # no later fault: live
    assert win.session.view_t is None and win.charts.cursor is None


def test_step_in_the_window_releases_one_request_per_lane(qtbot, win):  # noqa: F811
    started(qtbot, win)
    win.act_step.trigger()  # running: the first step pauses
    qtbot.waitUntil(lambda: win.session.run.paused and win.session.tape.flags[-1]["paused"], timeout=WAIT_MS)
    n = len(win.session.tape)
    qtbot.waitUntil(lambda: len(win.session.tape) >= n + 3, timeout=WAIT_MS)
    before = [lane.stats.ops for lane in win.session.run.lanes]
    win.act_step.trigger()
    qtbot.waitUntil(
        lambda: all(lane.stats.ops >= b + 1 for lane, b in zip(win.session.run.lanes, before)), timeout=WAIT_MS
    )
    n = len(win.session.tape)
    qtbot.waitUntil(lambda: len(win.session.tape) >= n + 3, timeout=WAIT_MS)
    assert [lane.stats.ops for lane in win.session.run.lanes] == [b + 1 for b in before]


def record(path: Path, p: Plan) -> dict:
    """Run the plan headless, recorded to ``path``; its summary."""
    w = RecordingWriter(check_target(path), plan_header(p))
    summary = run(p, recorder=w)
    w.target.commit()
    return summary


def replay_window(qtbot, tmp_path, path: Path) -> MainWindow:
    """The window replaying the recording at ``path``, shown and started (settings of its own)."""
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    w = MainWindow(settings, replay=[read_recording(path)])
    qtbot.addWidget(w)
    w.resize(1600, 1000)
    w.show()
    w.start()
    return w


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    path = tmp_path_factory.mktemp("replay") / "run.csrec"
    summary = record(
        path,
        Plan(
            lanes=[LaneConfig(s, seed=4) for s in ("cache-aside", "write-through", "write-behind")],
            duration_s=3.0,
            crash_at=[1.2],
            outages=[(2.0, 0.5)],
        ),
    )
    return path, json.loads(json.dumps(summary))


def test_a_replay_shows_the_recorded_run_at_the_scrubbed_time_with_no_lab(qtbot, tmp_path, recording):
    path, summary = recording
    w = replay_window(qtbot, tmp_path, path)
    try:
        assert "replay" in w.windowTitle() and not w.fault_bar.isVisible()
        end = w.session.live_end
        w.session.scrub(end)
        last = shown(w)
        assert [lane[1] for lane in last["lanes"]] == [lane["ops"] for lane in summary["lanes"]]
        lost = [lane["anomalies"]["lost_writes"] for lane in summary["lanes"]]
        assert [int(row[1].replace(",", "")) for row in last["table"]] == lost
        w.session.scrub(1.0)  # before the crash: no crash shown, fewer operations
        early = shown(w)
        assert not any(k == "crash" for k, _ in early["strip"])
        assert all(a[1] < b[1] for a, b in zip(early["lanes"], last["lanes"]))
        assert all(c is None or c <= 1.0 for c in early["curves"])
        w.session.set_speed(16.0)
        w.session.toggle_pause()  # play
        qtbot.waitUntil(lambda: w.session.paused and w.session.now() >= end - 1e-9, timeout=WAIT_MS)
        assert shown(w)["strip"] == last["strip"]
        w.session.crash()  # no lab: said, nothing happens
        assert "replay" in w.statusBar().currentMessage()
    finally:
        w.close()


def test_replay_json_prints_the_live_summary(recording):
    path, summary = recording
    out = subprocess.run(
        [sys.executable, "-m", "cachestudio", "replay", str(path), "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == summary
    out = subprocess.run(
        [sys.executable, "-m", "cachestudio", "replay", str(path), "--table"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0 and "write-behind" in out.stdout and "recording of" in out.stdout


def test_two_recordings_side_by_side_move_on_one_time_axis(qtbot, tmp_path, recording):
    from cachestudio.ui.compare import CompareWindow, differences

    path, _ = recording
    other = tmp_path / "durable.csrec"
    record(
        other,
        Plan(
            lanes=[LaneConfig("write-behind", seed=4).with_knob("write_behind", "durable", True)],
            duration_s=2.0,
            crash_at=[1.0],
        ),
    )
    a, b = read_recording(path), read_recording(other)
    da, db = differences(a, b)
    assert "durable=False" in da and "durable=True" in db
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    cw = CompareWindow([a, b], settings)
    qtbot.addWidget(cw)
    cw.resize(1600, 1000)
    cw.show()
    cw.start()
    try:
        assert [p.session.strategies for p in cw.panes] == [a.lane_names, b.lane_names]
        cw.scrub(1.5)
        assert [p.session.now() for p in cw.panes] == [1.5, 1.5]
        assert all(p.charts.cursor == 1.5 for p in cw.panes)
        cw.jump_fault(-1)  # the latest fault of either run before 1.5 s
        from cachestudio.ui.window import SHADE_START

        starts = [e["start"] for r in (a, b) for e in r.events if e["kind"] in SHADE_START and e["start"] < 1.45]
        assert starts and cw.head == pytest.approx(max(starts))
        assert [p.session.now() for p in cw.panes] == [cw.head, cw.head]
        cw.speed = 16.0
        cw.toggle_play()
        qtbot.waitUntil(lambda: not cw.playing, timeout=WAIT_MS)
        assert cw.head == cw.end
        assert [p.session.now() for p in cw.panes] == [min(cw.end, p.session.tape.end) for p in cw.panes]
    finally:
        cw.close()


def test_the_compare_windows_keys_each_do_what_they_say(qtbot, tmp_path, recording):
    """Every key of the compare window's table, pressed on the window (its panes' own keys
    are off: they would be ambiguous), moves the two runs together; nothing reaches Qt."""
    from PySide6.QtGui import QKeySequence
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from cachestudio.ui.actions import missing
    from cachestudio.ui.compare import COMPARE_ACTIONS, CompareWindow

    assert missing(COMPARE_ACTIONS) == []
    path, _ = recording
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    cw = CompareWindow([read_recording(path), read_recording(path)], settings)
    qtbot.addWidget(cw)
    cw.resize(1600, 1000)
    cw.show()
    cw.start()
    cw.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is cw, timeout=WAIT_MS)
    expected = {
        "back-1": lambda h: h - 1,
        "forward-1": lambda h: h + 1,
        "back-10": lambda h: h - 10,
        "forward-10": lambda h: h + 10,
        "start": lambda h: 0.0,
        "end": lambda h: cw.end,
    }
    try:
        for act in COMPARE_ACTIONS:
            for key in act.keys:
                cw.scrub(1.5)
                fired = []

                def spy(*_, key=key, fired=fired):
                    fired.append(key)

                cw.acts[act.name].triggered.connect(spy)
                with qtbot.captureExceptions() as raised:
                    QTest.keySequence(cw, QKeySequence(key))
                cw.acts[act.name].triggered.disconnect(spy)
                assert not raised and fired, f"{act.name} ({key}): fired {fired}, raised {raised}"
                if act.name in expected:
                    want = max(0.0, min(expected[act.name](1.5), cw.end))
                    assert cw.head == pytest.approx(want), act.name
                    assert [p.session.now() for p in cw.panes] == [pytest.approx(want)] * 2, act.name
        assert cw.playing  # Space started the play
    finally:
        cw.close()


def test_the_window_saves_its_recording_exports_a_report_and_opens_a_recording(qtbot, win, tmp_path):  # noqa: F811
    started(qtbot, win)
    win.act_crash.trigger()
    qtbot.waitUntil(lambda: any(e["kind"] == "restart" for e in win.session.run.events), timeout=WAIT_MS)
    qtbot.waitUntil(
        lambda: (
            read_recording(win.session.recording_path).ticks
            and read_recording(win.session.recording_path).ticks[-1]["t"] > win.session.now() - 2
        ),
        timeout=WAIT_MS,
    )
    saved = tmp_path / "saved.csrec"
    assert win.save_recording(saved)
    rec = read_recording(saved)
    assert any(e["kind"] == "crash" for e in rec.events) and sum(len(o) for o in rec.ops) > 0
    report = tmp_path / "report.html"
    assert win.export_report(report)
    html = report.read_text()
    assert html.startswith("<!DOCTYPE html>") and "crash" in html and "<svg" in html
    replay = win.open_recording(saved)
    try:
        assert replay is not None and replay.replaying
        assert replay.session.tape.end == pytest.approx(rec.end_time, abs=0.3)
    finally:
        replay.close()
    assert win.open_recording(report) is None  # not a recording: said in the status bar
    assert "not a Cache Studio recording" in win.statusBar().currentMessage()


def test_a_replay_draws_a_line_per_node_as_recorded(qtbot, tmp_path):
    """A recording of a lane of two nodes, replayed: Shift+N draws each node's recorded rows
    up to the play head, and they add up to the lane's line."""
    import dataclasses

    import numpy as np

    cfg = LaneConfig("write-behind", seed=4)
    cfg = dataclasses.replace(cfg, backends=dataclasses.replace(cfg.backends, nodes=2))
    path = tmp_path / "nodes.csrec"
    record(path, Plan(lanes=[cfg], duration_s=2.5, node_crashes=[(1.2, 0)]))
    w = replay_window(qtbot, tmp_path, path)
    try:
        assert w.charts.has_nodes
        w.act_node_lines.trigger()
        for at in (1.5, w.session.live_end):
            w.session.scrub(at)
            w.charts.redraw_all()
            ((x, y),) = [c.getData() for _, _, c, _ in w.charts.curves[2]]
            nodes = [c.getData() for _, _, c, _ in w.charts.node_curves[2]]
            assert len(nodes) == 2 and len(x) > 2 and x[-1] <= at + 1e-9
            assert all(np.array_equal(nx, x) for nx, _ in nodes)
            assert np.allclose(nodes[0][1] + nodes[1][1], y)
            # the queue chart: each node's own queue (write-behind), from the recorded ticks
            depths = [c.getData()[1] for _, _, c, _ in w.charts.node_curves[4]]
            lane_depth = [c.getData()[1] for _, _, c, _ in w.charts.curves[4]][0]
            assert len(depths) == 2 and np.allclose(depths[0] + depths[1], lane_depth)
        assert "write-behind · 2 nodes" in w.flow.title(0)
    finally:
        w.close()
