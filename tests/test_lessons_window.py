"""The lesson in the window: the Lesson tab, a fault's say line as the caption, and the
run paused where the lesson says so. A real window (offscreen), real labs."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from helpers import LESSON, write  # noqa: E402
from windowing import WAIT_MS, win  # noqa: F401 - fixtures; sets Qt offscreen first

LONG = os.environ.get("CACHESTUDIO_LONG") == "1"


def test_the_window_shows_the_lesson_says_its_line_and_pauses_there(qtbot, tmp_path, win):  # noqa: F811
    w = win
    assert w.load_scenario(write(tmp_path, LESSON.format(wb=">0").replace("duration = 3", "duration = 6")))
    text = w.lesson_view.toPlainText()
    for part in (
        "A tiny crash",
        "Watch for: the queue",
        "You will learn: volatile queues lose writes",
        "Kill it.",
        '"write-behind".lost_writes > 0',
    ):
        assert part in text
    w.start()
    qtbot.waitUntil(lambda: any(e["kind"] == "crash" for e in w.session.run.events), timeout=WAIT_MS)
    qtbot.waitUntil(
        lambda: w.session.paused and w.session.tape.flags and w.session.tape.flags[-1]["paused"], timeout=WAIT_MS
    )
    crash = next(e["start"] for e in w.session.run.events if e["kind"] == "crash")
    # the line as it fires; what the crash did follows it once measured
    assert w.caption_bar.caption.text().startswith(f"{crash:.1f} s — Kill it.")
    assert w.session.now() < 6  # paused at the line, not at the scenario's end
    assert "✓" in w.lesson_view.toPlainText()


NAMED = """name = "two-leases"
title = "Two cache-aside lanes"
watch_for = "The stale counters. Then everything else."
you_will_learn = "Leases close the race."
seed = 3
duration = 20

[workload]
rate = 400
keys = 20

[[lanes]]
name = "no protection"
strategy = "cache-aside"

[[lanes]]
name = "lease"
strategy = "cache-aside"
cache.stampede = "lease"

[[faults]]
at = 0.5
kind = "stampede"
readers = 10
"""


def test_named_lanes_are_named_and_told_apart_in_every_view(qtbot, tmp_path, win):  # noqa: F811
    from cachestudio.ui.theme import lane_style

    w = win
    assert w.load_scenario(write(tmp_path, NAMED, "two-leases"))
    assert w.lane_combo.currentText() == "two-leases: no protection | lease"
    assert [(ln.name, ln.strategy, ln.title) for ln in w.flow.lanes] == [
        ("no protection", "cache-aside", "no protection (cache-aside)"),
        ("lease", "cache-aside", "lease (cache-aside)"),
    ]
    assert w.charts.strategies == ["no protection", "lease"] and w.charts.kinds == ["cache-aside", "cache-aside"]
    assert lane_style("no protection")[0] != lane_style("lease")[0]
    assert w.caption_bar.caption.text() == "Watch for: The stale counters. Then everything else."
    w.start()
    qtbot.waitUntil(
        lambda: (
            w.session.run is not None and [ln.cfg.label for ln in w.session.run.lanes] == ["no protection", "lease"]
        ),
        timeout=WAIT_MS,
    )
    assert [ln.cfg.cache.stampede for ln in w.session.run.lanes] == ["none", "lease"]
    # a knob changed in the window leaves the lane that sets it itself
    w._on_knob("cache", "stampede", "single-flight")
    assert [c.cache.stampede for c in w.session.lane_configs()] == ["single-flight", "lease"]
    # each lane's stampede is counted under its own name in the caption and the Events tab
    qtbot.waitUntil(
        lambda: (lambda ev: ev is not None and len(ev.get("done", {})) == 2)(
            next((e for e in w.strip.events if e["kind"] == "stampede"), None)
        ),
        timeout=WAIT_MS,
    )
    ev = next(e for e in w.strip.events if e["kind"] == "stampede")
    assert set(ev["done"]) == {"no protection", "lease"}
    assert "no protection" in w._caption(ev) and "(lease)" in w._caption(ev)


def test_a_window_with_named_lanes_saves_a_scenario_that_loads_them_back(tmp_path, win):  # noqa: F811
    from cachestudio.engine import scenario as scenarios
    from cachestudio.engine.scenariofile import scenario_toml

    assert win.load_scenario(write(tmp_path, NAMED, "two-leases"))
    saved = tmp_path / "saved.toml"
    saved.write_text(scenario_toml(win.scenario_state()))
    again = scenarios.load(saved)
    assert again.specs == win.session.specs
    assert [c.cache.stampede for c in again.lanes] == ["none", "lease"]


def _history(lane_dir) -> list[dict]:
    """A lane's raw history as its labs wrote it (the run directory's files, not the window's)."""
    import json

    return [json.loads(line) for f in sorted((lane_dir / "history").glob("inc-*.jsonl")) for line in f.open()]


def test_a_lessons_end_in_the_window_is_the_headless_end_and_the_lesson_tab_judges_its_claims(
    qtbot,
    win,  # noqa: F811
):
    """db-outage in the window, to its end: the run drains and is audited at rest as
    ``check --run`` does, and the Lesson tab shows every claim judged on that audit; the
    dirty cache write-through left (judged only at rest) is there, equal to a recount from
    the run directory's files (tests/recompute.py)."""
    from recompute import recompute

    from cachestudio.engine import scenario as scenarios
    from cachestudio.engine.lessons import check

    w = win
    assert w.load_scenario(scenarios.find("db-outage"))
    before = w.lesson_view.toPlainText()
    assert "What it claims (judged at the lesson's end" in before and "✓" not in before
    w.start()
    qtbot.waitUntil(lambda: w.session.run is not None and w.session.run.summary is not None, timeout=4 * WAIT_MS)
    summary = w.session.run.summary
    assert summary["status"] == "ok", summary["failures"]
    assert w.session.scenario_ended and w.clock.text().startswith("ended")
    assert [e["kind"] for e in summary["events"]].count("drain") == 1  # the headless end: drained
    assert all(lane["audited"] for lane in summary["lanes"])
    text = w.lesson_view.toPlainText()
    verdicts = check(w.lesson.expect, summary)
    for v in verdicts:
        mark = "✓ held" if v.held else "✗ did not hold"
        assert f"{mark}: {v.claim.text()} (measured {v.measured()}" in text, (v, text)
    assert f"{sum(v.held for v in verdicts)} of {len(verdicts)} held at the lesson's end" in text
    # the point of the lesson, visible: write-through's dirty cache, recounted from the files
    run_dir = Path(w.session._tmp or "") / "run"  # the window's run folder, until the reset
    [dirty] = [v for v in verdicts if v.claim.text() == '"write-through".dirty_cache > 0']
    lane_dir = run_dir / "write-through"
    recount = recompute(_history(lane_dir), lane_dir, "write-through")
    assert dirty.value == len(recount["dirty_cache"]) > 0, (dirty, recount["dirty_cache"])
    assert (
        w.statusBar()
        .currentMessage()
        .startswith(f"lesson db-outage ended at 16 s, drained and audited: {sum(v.held for v in verdicts)} of")
    )
    w.session.toggle_pause()  # Space: the run is over, nothing resumes
    assert w.session.run.summary is summary and w.session.paused
    w.act_reset.trigger()  # R: a fresh run; the claims wait for its end again
    assert "✓" not in w.lesson_view.toPlainText() and "judged at the lesson's end" in w.lesson_view.toPlainText()


def _lesson_names() -> list[str]:
    from cachestudio.engine import scenario as scenarios

    return [sc.name for sc in scenarios.builtin_scenarios() if sc.expect]


#: Every built-in lesson runs in the window under CACHESTUDIO_LONG=1; CI runs a seeded sample.
_SAMPLE = set(random.Random(24).sample(_lesson_names(), 2))


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(
            n, marks=pytest.mark.skipif(not LONG and n not in _SAMPLE, reason="CACHESTUDIO_LONG=1 runs every lesson")
        )
        for n in _lesson_names()
    ],
)
def test_every_lesson_ends_in_the_window_with_each_claim_judged_and_held(qtbot, win, name):  # noqa: F811
    """The path a presenter takes: open the lesson, start it, let it reach its end. The
    window's end is the headless one (drained, audited), the Lesson tab shows each claim
    judged as ``check --run`` judges it, and every claim holds in the window too."""
    from cachestudio.engine import scenario as scenarios
    from cachestudio.engine.lessons import check

    w = win
    assert w.load_scenario(scenarios.find(name))
    w.start()
    while w.session.run is None or w.session.run.summary is None:
        if w.session.paused and not w.session.scenario_ended:
            w.session.toggle_pause()  # a line that pauses: the presenter goes on (Space)
        qtbot.wait(100)
        assert w.session.now() < w.session.duration_s + 120, f"{name}: no end in the window"
    summary = w.session.run.summary
    assert summary["status"] == "ok", summary["failures"]
    text = w.lesson_view.toPlainText()
    verdicts = check(w.lesson.expect, summary)
    for v in verdicts:
        mark = "✓ held" if v.held else "✗ did not hold"
        assert f"{mark}: {v.claim.text()} (measured {v.measured()}" in text, (name, v)
    assert [v.claim.text() for v in verdicts if not v.held] == [], name
