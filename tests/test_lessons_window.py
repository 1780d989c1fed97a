"""The lesson in the window: the Lesson tab, a fault's say line as the caption, and the
run paused where the lesson says so. A real window (offscreen), real labs."""

from __future__ import annotations

from windowing import WAIT_MS, win  # noqa: F401 - fixtures; sets Qt offscreen first

from test_lessons import LESSON, write  # noqa: E402



def test_the_window_shows_the_lesson_says_its_line_and_pauses_there(qtbot, tmp_path, win):  # noqa: F811
    w = win
    assert w.load_scenario(write(tmp_path, LESSON.format(wb=">0").replace("duration = 3", "duration = 6")))
    text = w.lesson_view.toPlainText()
    for part in ("A tiny crash", "Watch for: the queue", "You will learn: volatile queues lose writes",
                 "Kill it.", '"write-behind".lost_writes > 0'):
        assert part in text
    w.start()
    qtbot.waitUntil(lambda: any(e["kind"] == "crash" for e in w.session.run.events), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: w.session.paused and w.session.tape.flags and w.session.tape.flags[-1]["paused"],
                    timeout=WAIT_MS)
    crash = next(e["start"] for e in w.session.run.events if e["kind"] == "crash")
    assert w.caption_bar.caption.text() == f"{crash:.1f} s — Kill it."
    assert w.session.now() < 6  # paused at the line, not at the scenario's end
    assert "✓" in w.lesson_view.toPlainText()
