"""The studio window, offscreen, driving real lab processes. No blind sleeps: every wait
is on a condition (qtbot.waitUntil)."""

from __future__ import annotations

import os
import signal  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from helpers import cli  # noqa: E402
from PySide6.QtGui import QImage  # noqa: E402
from windowing import WAIT_MS, speed, started, win  # noqa: F401 - first: Qt offscreen; win is a fixture

from cachestudio.engine.series import COL  # noqa: E402


def column(w, lane: int, name: str) -> np.ndarray:
    return w.session.series[lane].ring.view(COL[name])


def test_window_opens_with_its_parts(win):
    assert win.windowTitle().startswith("Cache Studio")
    assert len(win.charts.plots) == 8
    assert win.lane_combo.currentIndex() == 0  # all three side by side
    keys = dict(win.keys)
    for key in ("Space", "C", "O", "S", "L", "F", "K", "B", "H / Esc", "? / F1", "PgDown", "PgUp", "."):
        assert key in keys, key
    assert not win.windowIcon().isNull()


def test_start_reaches_the_labs_and_the_charts_receive_data(qtbot, win):
    speed(win, 200.0)
    started(qtbot, win)
    frames = win.charts.frames
    qtbot.waitUntil(lambda: win.charts.frames > frames + 1, timeout=WAIT_MS)
    for plot_curves in win.charts.curves:
        xs = [curve.getData()[0] for _, _, curve, _ in plot_curves]
        assert any(x is not None and len(x) > 0 for x in xs)
    assert np.nanmax(column(win, 0, "ops_s")) > 0
    assert "running" in win.clock.text()
    # requests travel on the flow view, and the narration line says what just happened
    qtbot.waitUntil(
        lambda: all(win.flow.narration(i).startswith(("read k", "write k")) for i in range(3)), timeout=WAIT_MS
    )
    assert win.flow.token_count() > 0


def test_burst_raises_the_throughput_series(qtbot, win):
    speed(win, 200.0)
    started(qtbot, win, rows=8)
    before = float(np.nanmax(column(win, 2, "ops_s")))
    assert before < 600  # paced at 200/s
    win.act_burst.trigger()
    qtbot.waitUntil(lambda: float(np.nanmax(column(win, 2, "ops_s"))) > 3 * before, timeout=WAIT_MS)
    assert any(r["kind"] == "burst" for r in win.charts.regions)


def test_crash_shows_the_lab_restarting(qtbot, win):
    speed(win, 200.0)
    started(qtbot, win)
    pids = [lane.proc.pid for lane in win.session.run.lanes]
    win.act_crash.trigger()  # a command to the observer process; its answer comes with the next update
    qtbot.waitUntil(lambda: "down" in win.health.text() or "starting" in win.health.text(), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: all(h == "running" for _, h in win.session.lab_health()), timeout=WAIT_MS)
    assert all(lane.inc == 1 and lane.proc.pid != pid for lane, pid in zip(win.session.run.lanes, pids))
    crash = [r for r in win.charts.regions if r["kind"] == "crash"]
    assert crash and crash[0]["end"] is not None  # shaded from kill to restart


def test_outage_shows_errors_and_queue_growth(qtbot, win):
    speed(win, 200.0)
    started(qtbot, win)
    win.act_outage.trigger()
    qtbot.waitUntil(lambda: np.nanmax(column(win, 1, "errors_s")) > 0, timeout=WAIT_MS)  # write-through
    qtbot.waitUntil(lambda: np.nanmax(column(win, 2, "queue_depth")) > 0, timeout=WAIT_MS)  # write-behind
    assert any(r["kind"] == "outage" for r in win.charts.regions)
    qtbot.waitUntil(lambda: not win.session.run.outage_on, timeout=WAIT_MS)  # ends by itself


def test_a_knob_changes_the_labs_behaviour(qtbot, win):
    speed(win, 200.0)
    started(qtbot, win)
    assert np.nanmax(column(win, 0, "read_p50")) > 0
    rows_before = len(win.session.series[0].ring)
    win.knobs.widgets[("workload", "read_ratio")].setValue(0.0)  # only writes from now on
    lane = win.session.run.lanes[0]
    reads = lane.stats.reads
    qtbot.waitUntil(lambda: len(win.session.series[0].ring) > rows_before + 6, timeout=WAIT_MS)
    writes = lane.stats.writes
    qtbot.waitUntil(lambda: lane.stats.writes > writes + 100, timeout=WAIT_MS)
    assert lane.stats.reads - reads < 100  # a few in flight at the change, then none
    assert np.isnan(column(win, 0, "read_p50")[-3:]).all()


def test_out_of_range_and_at_reset_knobs_are_refused_with_a_message(qtbot, win):
    rate = win.knobs.widgets[("workload", "rate")]
    rate.setValue(-50)
    assert rate.value() == 0  # cannot be entered
    started(qtbot, win, rows=1)
    win.knobs.widgets[("write_behind", "durable")].setChecked(True)
    assert "next reset" in win.statusBar().currentMessage()
    assert win.session.base.write_behind.durable  # kept for the next reset ...
    assert not any(lane.cfg.write_behind.durable for lane in win.session.run.lanes)  # ... not applied now
    assert all(lane.health() == "running" for lane in win.session.run.lanes)  # nothing of the run lost
    assert win.session.set_knob("workload", "read_ratio", 7.0) is not None  # refused by validation
    assert win.session.base.workload.read_ratio == 0.8


def test_a_broken_scenario_file_says_which_line(win, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("seed = 3\n[workload]\nrate = 10\nread_ration = 2\n")
    assert not win.load_scenario(bad)
    assert "line 4" in win.statusBar().currentMessage()
    assert win.load_scenario(Path("resources/scenarios/slow-motion.toml").resolve())
    assert win.session.base.workload.rate == 2


def test_a_lab_that_dies_or_hangs_is_shown_and_comes_back(qtbot, win):
    speed(win, 200.0)
    started(qtbot, win)
    lane = win.session.run.lanes[1]
    os.kill(lane.proc.pid, signal.SIGSTOP)  # hung: alive, silent
    try:
        qtbot.waitUntil(lambda: "not responding" in win.health.text(), timeout=WAIT_MS)
    finally:
        os.kill(lane.proc.pid, signal.SIGCONT)
    qtbot.waitUntil(lambda: lane.health() == "running", timeout=WAIT_MS)
    os.kill(lane.proc.pid, signal.SIGKILL)  # died
    qtbot.waitUntil(lambda: lane.inc == 1 and lane.health() == "running", timeout=WAIT_MS)
    assert any(e["kind"] == "lab-died" for e in win.session.run.events)
    # a lab failure stays on screen (not a 6 s message) until the next run
    qtbot.waitUntil(lambda: "1 lab failure" in win.health.text(), timeout=WAIT_MS)
    assert "write-through lab exited unexpectedly" in win.health.toolTip()


def test_themes_and_keys_sheet(qtbot, win):
    for name in ("dark", "projector", "light"):
        win.theme_actions[name].trigger()
        assert win.theme.name == name
    win.act_keys.trigger()
    assert win.keys_dialog.isVisible()
    assert win.keys_dialog.findChild(type(win.anomaly_panel.table)).rowCount() >= 12


def test_heal_all_ends_every_fault(qtbot, win):
    speed(win, 200.0)
    started(qtbot, win)
    run = win.session.run
    win.act_outage.trigger()
    win.act_slow_db.trigger()
    qtbot.waitUntil(lambda: bool(run.outage_on and run.slow_db_ms), timeout=WAIT_MS)
    win.act_heal.trigger()
    qtbot.waitUntil(lambda: not run.outage_on and not run.slow_db_ms, timeout=WAIT_MS)
    assert all(lane.cfg.latency.db_read_ms == 0 for lane in run.lanes)


def test_slow_cache_and_stampede_from_the_toolbar(qtbot, win):
    speed(win, 200.0)
    assert win.session.set_knob("cache", "stampede", "lease") is None  # a live knob
    started(qtbot, win)
    win.act_slow_cache.trigger()
    run = win.session.run
    qtbot.waitUntil(
        lambda: bool(run.slow_cache_ms) and all(lane.cfg.latency.cache_ms > 0 for lane in run.lanes), timeout=WAIT_MS
    )
    qtbot.waitUntil(lambda: all("cache" in win.flow.injected_text(i) for i in range(3)), timeout=WAIT_MS)
    assert any(r["kind"] == "slow-cache" for r in win.charts.regions)
    win.act_slow_cache.trigger()  # toggles off
    qtbot.waitUntil(lambda: not run.slow_cache_ms, timeout=WAIT_MS)
    win.act_stampede.trigger()
    qtbot.waitUntil(lambda: sum(e["kind"] == "stampede-done" for e in run.events) == 3, timeout=WAIT_MS)
    for e in run.events:
        if e["kind"] == "stampede-done":
            assert "protection: lease" in e["detail"]
    assert any(r["kind"] == "stampede" for r in win.charts.regions)


def test_a_hundred_crash_restart_cycles_leave_the_window_responsive_and_the_lab_running(qtbot, win):
    from PySide6.QtCore import QTimer

    win.lane_combo.setCurrentIndex(1)  # cache-aside alone: the cycles are about the node, not the lanes
    speed(win, 200.0)
    win.session.restart_delay_s = 0.02
    started(qtbot, win)
    ticks = [0]
    probe = QTimer()
    probe.setInterval(16)
    probe.timeout.connect(lambda: ticks.__setitem__(0, ticks[0] + 1))
    probe.start()
    lane = win.session.run.lanes[0]
    pids = set()
    for cycle in range(100):
        before = ticks[0]
        pids.add(lane.proc.pid)
        win.act_crash.trigger()
        qtbot.waitUntil(lambda c=cycle: lane.inc == c + 1 and lane.health() == "running", timeout=WAIT_MS)
        assert ticks[0] > before, f"the event loop was blocked for all of cycle {cycle}"
    probe.stop()
    assert len(pids) == 100 and lane.proc.pid not in pids  # a new process each time
    done = lane.gauges.get("done", 0)
    qtbot.waitUntil(lambda: lane.gauges.get("done", 0) > done + 20, timeout=WAIT_MS)  # still serving
    assert sum(e["kind"] == "crash" for e in win.session.run.events) == 100
    assert win.isVisible() and "running" in win.health.text()


def test_screenshot_command_writes_png_files_of_the_requested_size(tmp_path):
    out = tmp_path / "shots"
    proc = cli(
        "screenshot", "--scenario", "side-by-side", "--at", "3", "--out", str(out), "--size", "1000x700", timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    window = QImage(str(out / "window.png"))
    assert (window.width(), window.height()) == (1000, 700)
    for name in ("window", "flow", "charts", "anomalies"):
        img = QImage(str(out / f"{name}.png"))
        assert not img.isNull(), name
        small = img.scaled(64, 64)
        colours = {small.pixel(x, y) for x in range(64) for y in range(64)}
        assert len(colours) > 8, f"{name}.png looks blank"


def test_screenshot_bad_input_is_one_line(tmp_path):
    proc = cli(
        "screenshot", "--scenario", "side-by-side", "--at", "3", "--out", str(tmp_path), "--size", "huge", timeout=60
    )
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "--size" in proc.stderr


def test_the_knobs_choose_redis_postgresql_and_nodes_at_the_next_reset(qtbot, win):
    """Backends are chosen among the knobs and take effect at the next reset; the flow
    view then names what each lane talks to and its nodes (the run's own servers)."""
    from helpers import require

    from cachestudio.engine.servers import postgres_bindir, redis_server

    require(redis_server)
    require(postgres_bindir)
    speed(win, 200.0)
    win.knobs.widgets[("backends", "cache")].setCurrentText("redis")
    win.knobs.widgets[("backends", "store")].setCurrentText("postgresql")
    win.knobs.widgets[("backends", "nodes")].setValue(2)
    assert win.session.base.backends.cache == "redis" and win.session.base.backends.nodes == 2
    win.reset()
    started(qtbot, win, rows=2)
    qtbot.waitUntil(lambda: all("Redis" in " ".join(win.flow.node_names(i)) for i in range(3)), timeout=WAIT_MS)
    names = win.flow.node_names(0)
    assert any(n.startswith("PostgreSQL") for n in names)
    assert all(win.flow.title(i).endswith("· 2 nodes") for i in range(3))
    assert {lane.cfg.backends.nodes for lane in win.session.run.lanes} == {2}


def test_one_line_per_node_on_demand_draws_each_nodes_rows(qtbot, win, tmp_path):
    """Shift+N adds a thin line per app node (labelled "WB n1" …) under each lane's total on
    the charts a node's own records make; what it draws adds up to the lane's line."""
    from cachestudio.ui.charts import NODE_CHARTS

    speed(win, 200.0)
    win.knobs.widgets[("backends", "nodes")].setValue(2)
    win.reset()
    started(qtbot, win, rows=6)
    assert not win.charts.node_curves and win.charts.has_nodes  # lane totals until asked
    qtbot.waitUntil(lambda: all(win.flow.title(i).endswith("· 2 nodes") for i in range(3)), timeout=WAIT_MS)
    win.act_node_lines.trigger()
    assert win.charts.node_lines and win.act_node_lines.isChecked()
    kinds = win.charts.kinds
    for i in NODE_CHARTS:
        srcs = [src for src, *_ in win.charts.node_curves[i]]
        lanes = [lane for lane, kind in enumerate(kinds) if i != 4 or kind == "write-behind"]
        assert srcs == [(lane, k) for lane in lanes for k in (0, 1)], i
    throughput = 2
    # every node has drawn rows, and served operations (on a loaded machine a node can start late)
    qtbot.waitUntil(
        lambda: all(
            curve.getData()[0] is not None and len(curve.getData()[0]) > 4 and np.nansum(curve.getData()[1]) > 0
            for _, _, curve, _ in win.charts.node_curves[throughput]
        ),
        timeout=WAIT_MS,
    )
    win.session.toggle_pause()  # hold the rows still while the curves are compared
    win.charts.redraw_all()
    lane_y = {lane: curve.getData() for lane, _, curve, _ in win.charts.curves[throughput]}
    node_y = {}
    for (lane, _k), _, curve, _ in win.charts.node_curves[throughput]:
        node_y.setdefault(lane, []).append(curve.getData())
    for lane, (x, y) in lane_y.items():
        (x0, y0), (x1, y1) = node_y[lane]
        assert np.array_equal(x, x0) and np.array_equal(x, x1)
        assert np.allclose(y0 + y1, y), lane
        assert np.nansum(y0) > 0 and np.nansum(y1) > 0, "a node drew nothing"
    assert "one per app node" in win.charts.key.text
    ends = [name for name, _ in win.charts.label_rects() if name.startswith("end:throughput:")]
    assert any(name.endswith(" n1") for name in ends), ends
    win.grab().save(str(tmp_path / "node-lines.png"))
    import csv

    rows = win.charts.export_csv(tmp_path / "charts.csv")
    with open(tmp_path / "charts.csv", newline="") as fh:
        lanes = [r[0] for r in csv.reader(fh)][1:]
    assert len(lanes) == rows
    assert {f"{name} node {k}" for name in win.charts.strategies for k in (0, 1)} <= set(lanes)
    win.act_node_lines.trigger()  # off again: the lanes' totals only
    assert not win.charts.node_curves and not win.charts.node_lines
    assert not any(name.endswith((" n0", " n1")) for name, _ in win.charts.label_rects())
