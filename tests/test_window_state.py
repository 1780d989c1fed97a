"""Visible state in the window (issue 11): toggles that look pressed while on, and an opened
scenario that stops at its duration. Offscreen, real labs, no blind sleeps."""

from __future__ import annotations

import os

from windowing import WAIT_MS, speed, started, win  # noqa: F401 - first: Qt offscreen; win is a fixture

from cachestudio.ui.session import OPEN_ENDED_S  # noqa: E402


def scenario(tmp_path, name: str, duration: float, faults: str = "") -> os.PathLike:
    path = tmp_path / f"{name}.toml"
    path.write_text(
        f'name = "{name}"\ntitle = "A test"\nseed = 7\nduration = {duration}\nstrategy = "all"\n\n'
        f"[workload]\nrate = 200\n\n{faults}",
        encoding="utf-8",
    )
    return path


def test_slow_toggles_are_pressed_exactly_while_on(qtbot, win):
    assert win.act_slow_db.isCheckable() and win.act_slow_cache.isCheckable()
    win.act_slow_db.trigger()  # no lab yet: nothing is on, nothing looks pressed
    assert not win.act_slow_db.isChecked()
    speed(win, 200.0)
    started(qtbot, win, rows=2, latency=False)
    run = win.session.run

    win.act_slow_db.trigger()
    assert not win.act_slow_db.isChecked()  # a click asks; the lab's event presses it
    qtbot.waitUntil(lambda: win.act_slow_db.isChecked() and run.slow_db_ms == 20, timeout=WAIT_MS)
    win.act_slow_cache.trigger()
    qtbot.waitUntil(lambda: win.act_slow_cache.isChecked() and run.slow_cache_ms == 5, timeout=WAIT_MS)
    assert win.act_slow_db.isChecked()

    win.act_heal.trigger()  # heal all ends both
    qtbot.waitUntil(lambda: not win.act_slow_db.isChecked() and not win.act_slow_cache.isChecked(), timeout=WAIT_MS)
    assert run.slow_db_ms == 0 and run.slow_cache_ms == 0

    win.act_slow_db.trigger()  # on, then off again with the same key
    qtbot.waitUntil(win.act_slow_db.isChecked, timeout=WAIT_MS)
    win.act_slow_db.trigger()
    qtbot.waitUntil(lambda: not win.act_slow_db.isChecked() and run.slow_db_ms == 0, timeout=WAIT_MS)

    win.act_slow_cache.trigger()
    qtbot.waitUntil(win.act_slow_cache.isChecked, timeout=WAIT_MS)
    win.act_reset.trigger()  # a reset throws the run away: nothing is on
    assert not win.act_slow_db.isChecked() and not win.act_slow_cache.isChecked()


def test_a_scenarios_slow_db_window_presses_and_releases_the_toggle(qtbot, win, tmp_path):
    path = scenario(tmp_path, "slow-window", 30, '[[faults]]\nat = 0.5\nkind = "slow-db"\nduration = 1.5\nms = 20\n')
    assert win.load_scenario(path)
    seen: list[bool] = []
    win.act_slow_db.toggled.connect(seen.append)
    win.act_start.trigger()
    qtbot.waitUntil(lambda: seen[:2] == [True, False], timeout=WAIT_MS)  # on at 0.5 s, off at 2 s
    assert not win.act_slow_db.isChecked() and not win.act_slow_cache.isChecked()
    events = [e["kind"] for e in win.session.run.events]
    assert "slow-db-start" in events and "slow-db-end" in events


def test_an_opened_scenario_stops_at_its_duration(qtbot, win, tmp_path):
    assert win.session.duration_s == OPEN_ENDED_S  # no scenario: the run lasts until reset
    assert win.load_scenario(scenario(tmp_path, "short-run", 2))
    assert win.session.duration_s == 2
    win.act_start.trigger()
    qtbot.waitUntil(lambda: win.clock.text().startswith("ended"), timeout=WAIT_MS)
    run = win.session.run
    assert win.session.paused and win.session.scenario_ended and win.session.now() >= 2
    assert win.statusBar().currentMessage() == "scenario short-run ended at 2 s — Shift+R runs it again; Space goes on"
    assert win.caption_bar.caption.text() == "2 s — short-run ended: Shift+R runs it again, Space goes on"
    assert win.act_start.text() == "Resume"
    # the labs say their clients stopped, and the op count stops growing
    qtbot.waitUntil(lambda: all(lane.gauges.get("running") is False for lane in run.lanes), timeout=WAIT_MS)
    n = len(win.session.tape)  # updates keep coming while paused; lab time stands still
    qtbot.waitUntil(lambda: len(win.session.tape) >= n + 5, timeout=WAIT_MS)
    ops = [lane.stats.ops for lane in run.lanes]
    assert all(n > 0 for n in ops)
    t = win.session.now()
    n = len(win.session.tape)
    qtbot.waitUntil(lambda: len(win.session.tape) >= n + 20, timeout=WAIT_MS)
    assert [lane.stats.ops for lane in run.lanes] == ops
    assert win.session.now() == t, "lab time moved while paused"
    assert win.clock.text().startswith("ended")
    assert [e["kind"] for e in run.events].count("pause") == 1

    win.act_reset.trigger()  # R: a fresh run of the same scenario, which will end again
    assert not win.session.scenario_ended and win.session.duration_s == 2
    assert win.clock.text().startswith("idle")
