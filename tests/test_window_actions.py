"""The user's paths through the window's actions (issue 23, drift 4 and item 6): every action
of the table (ui/actions.py) triggered through its menu entry and through each of its keys,
in the normal window and in presentation mode, with a real lab running and the file dialogs
answered; no exception reaches Qt, and each file action wrote or read its file. Also: the
table names a menu entry and keys for every action (or says why not), the menus hold only
the table's actions, and a bad path is a line in the status bar, never a traceback."""

from __future__ import annotations

import os
import shutil
import stat
import tomllib
from pathlib import Path

import pytest  # noqa: E402
from helpers import scenario_fields  # noqa: E402
from PySide6.QtGui import QKeySequence  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication, QMenu  # noqa: E402
from windowing import WAIT_MS, win  # noqa: F401 - the fixture

from cachestudio.engine import scenario as scenarios  # noqa: E402
from cachestudio.engine.faultkinds import FAULTS  # noqa: E402
from cachestudio.ui import actions  # noqa: E402
from cachestudio.ui.actions import ACTIONS, Act  # noqa: E402
from cachestudio.ui.replay import ReplaySession  # noqa: E402
from cachestudio.ui.session import LabSession  # noqa: E402

OPEN_SCENARIO = "crash-the-node"


# ------------------------------------------------------------------------------ the table


def test_every_action_has_a_menu_entry_and_keys_or_says_why():
    assert actions.missing() == []
    lacking = Act("new-thing", "New thing", (), "about")
    assert actions.missing([lacking]) == [
        "new-thing: no menu entry and no reason (no_menu)",
        "new-thing: no keys and no reason (no_keys)",
    ]
    names = [a.name for a in ACTIONS]
    assert len(names) == len(set(names)), "two actions share a name"
    keys = [k for a in ACTIONS for k in a.keys]
    assert len(keys) == len(set(keys)), f"a key is bound twice: {sorted(k for k in keys if keys.count(k) > 1)}"


def test_every_fault_with_a_window_action_is_in_the_table_and_fired_by_name():
    """A fault kind's action (and each variant) is an entry; the lab session and the replay
    have a method of the kind's command taking its parameters by name."""
    import inspect

    for kind in FAULTS:
        if kind.action is None:
            assert kind.no_action, f"{kind.name}: no window action and no reason (no_action)"
            continue
        entries = [a for a in ACTIONS if a.handler == "fire_fault" and a.args[0] == kind.name]
        assert [a.text for a in entries] == [kind.action] + [v.text for v in kind.variants], kind.name
        assert entries[0].keys == kind.keys and all(a.menu == "Faults" and a.toolbar for a in entries)
        method = getattr(LabSession, kind.command, None)
        assert method is not None, f"{kind.name}: LabSession has no method {kind.command}"
        params = set(inspect.signature(method).parameters) - {"self"}
        assert params == {p.name for p in kind.params}, f"{kind.name}: {kind.command}{sorted(params)}"
        assert callable(getattr(ReplaySession, kind.command, None)), f"{kind.name}: ReplaySession has none"


def menu_actions(w) -> dict:
    """Every action in the menu bar's menus (submenus included), by its object name."""
    found = {}

    def walk(menu: QMenu) -> None:
        for a in menu.actions():
            if a.menu() is not None:
                walk(a.menu())
            elif not a.isSeparator():
                found[a.objectName()] = a

    for top in w.menuBar().actions():
        walk(top.menu())
    return found


def test_the_menus_hold_the_table_and_the_key_sheet_lists_it(win):  # noqa: F811
    in_menus = menu_actions(win)
    assert set(in_menus) == {f"action-{a.name}" for a in ACTIONS if a.menu}
    for a in ACTIONS:
        qa = win.acts[a.name]
        assert qa in win.acts.values() and qa in win.findChildren(type(qa))
        assert qa in win.actions(), f"{a.name} is not added to the window: its keys would die with the menu"
        assert [s.toString(QKeySequence.SequenceFormat.PortableText) for s in qa.shortcuts()] == list(a.keys)
    assert win.keys == [(a.key_text, a.tip or a.text) for a in ACTIONS if a.keys]


# ------------------------------------------------------------------------------ walking the table


def lab_running(qtbot, w) -> None:
    """A lab whose recording has its first ticks (what Save recording and the report read)."""
    if w.session.run is None:
        w.start()
    qtbot.waitUntil(
        lambda: (
            w.session.recording_path is not None
            and w.session.recording_path.exists()
            and w.session.recording_path.stat().st_size > 2000
            and all(h == "running" for _, h in w.session.lab_health())
        ),
        timeout=WAIT_MS,
    )


def written(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


def file_steps(tmp: Path, live: bool = True) -> dict:
    """For each file action: (prepare, the dialog's answer, check afterwards) made per trigger.
    ``live``: the window runs a lab (else it replays a recording: its file is the one read)."""

    def save(suffix, check=written):
        def make(qtbot, w, tag):
            path = tmp / f"{tag}{suffix}"
            return path, lambda: check(path)

        return make

    def needs_lab(inner):
        def make(qtbot, w, tag):
            if live:
                lab_running(qtbot, w)
            return inner(qtbot, w, tag)

        return make

    def recording_of(qtbot, w) -> Path:
        if not live:
            return Path(w.session.recording.path)
        lab_running(qtbot, w)
        return w.session.recording_path

    def scenario_saved(path: Path) -> bool:
        return written(path) and scenarios.load(path).specs is not None

    def open_recording(qtbot, w, tag):
        path = tmp / f"{tag}.csrec"
        shutil.copyfile(recording_of(qtbot, w), path)
        before = len(getattr(w, "_replays", []))
        return path, lambda: len(w._replays) == before + 1 and w._replays[-1].replaying

    def open_scenario(qtbot, w, tag):
        return scenarios.find(OPEN_SCENARIO), lambda: w.lesson is not None and w.lesson.name == OPEN_SCENARIO

    return {
        "open-scenario": open_scenario,
        "save-scenario": save(".toml", scenario_saved),
        "open-recording": open_recording,
        "save-recording": needs_lab(save(".csrec")),
        "export-report": needs_lab(save(".html", lambda p: written(p) and "<html" in p.read_text()[:500].lower())),
        "export-window": save(".png"),
        "export-window-2x": save(".png"),
        "export-flow": save(".png"),
        "export-charts": save(".png"),
        "export-svg": save(".svg"),
        "export-csv": save(".csv"),
    }


def tidy(qtbot, w, present: bool, keep=()) -> None:
    """Close what an action opened (dialogs, replay windows), back to the mode under test,
    and the window active again (its keys are window shortcuts)."""
    for top in QApplication.topLevelWidgets():
        if top is not w and top not in keep and top.isVisible():
            top.close()
    if w.present != present:
        w.set_present(present, full_screen=False)
    w.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is w, timeout=WAIT_MS)


def fire(qtbot, w, act: Act, how: str, steps: dict, present: bool, keep=()) -> None:
    """Trigger one action one way ("menu" or a key); fail naming it if it did not fire,
    raised, or did not write or read its file."""
    tag = f"{act.name}-{'present' if present else 'normal'}-{how.replace('+', 'plus')}"
    check = None
    if act.name in steps:
        answer, check = steps[act.name](qtbot, w, tag)
        w.path_answers = [str(answer)]
    tidy(qtbot, w, present, keep)
    fired = []
    qa = w.acts[act.name]

    def spy(*_):
        fired.append(how)

    qa.triggered.connect(spy)
    with qtbot.captureExceptions() as raised:
        if how == "menu":
            entry = menu_actions(w).get(f"action-{act.name}")
            assert entry is not None, f"{act.name}: no menu entry"
            entry.trigger()
        else:
            QTest.keySequence(w, QKeySequence(how))
        QApplication.processEvents()
    qa.triggered.disconnect(spy)
    assert not raised, f"{act.name} ({how}): {raised[0][1]!r} reached Qt"
    assert fired == [how], f"{act.name}: {how} did not trigger it (present={present})"
    assert not w.path_answers, f"{act.name} ({how}) did not ask for a file"
    if check is not None:
        qtbot.waitUntil(check, timeout=WAIT_MS)
        assert not w.file_error, f"{act.name} ({how}): {w.file_error}"


def walk(qtbot, w, steps: dict, present: bool, keep=()) -> None:
    """Each action of the table, through its menu entry (in the normal window: presentation
    mode hides the menus) and through each of its keys; Quit last (its menu entry in the
    normal window, its key in presentation mode), and the window is closed."""
    tidy(qtbot, w, present, keep)
    for act in ACTIONS:
        if act.name == "quit" or (w.replaying and not act.replay):
            continue
        ways = ([] if present or not act.menu else ["menu"]) + list(act.keys)
        for how in ways:
            fire(qtbot, w, act, how, steps, present, keep)
    tidy(qtbot, w, present, keep)
    quit_act = actions.BY_NAME["quit"]
    with qtbot.captureExceptions() as raised:
        if present:
            QTest.keySequence(w, QKeySequence(quit_act.keys[0]))
        else:
            menu_actions(w)["action-quit"].trigger()
        QApplication.processEvents()
    assert not raised, f"quit: {raised[0][1]!r} reached Qt"
    qtbot.waitUntil(lambda: not w.isVisible(), timeout=WAIT_MS)


@pytest.mark.parametrize("present", [False, True], ids=["normal", "presentation"])
def test_every_action_through_its_menu_entry_and_its_keys(qtbot, win, tmp_path, present):  # noqa: F811
    """With a lab running (at a walk: the labs stay light while everything fires)."""
    win.speed_combo.setCurrentIndex(1)
    lab_running(qtbot, win)
    walk(qtbot, win, file_steps(tmp_path), present)


def test_every_action_of_a_replay_window(qtbot, win, tmp_path):  # noqa: F811
    """A recording opened in a window of its own (no lab): every action, its menu entry and
    its keys; the faults and knobs say there is no lab, the files are written or read."""
    win.speed_combo.setCurrentIndex(1)
    lab_running(qtbot, win)
    qtbot.waitUntil(lambda: bool(win.session.tape) and win.session.tape.end > 1.0, timeout=WAIT_MS)
    path = tmp_path / "walked.csrec"
    shutil.copyfile(win.session.recording_path, path)
    win.session.reset()  # the replay needs no lab
    replay = win.open_recording(path)
    assert replay is not None and replay.replaying
    walk(qtbot, replay, file_steps(tmp_path, live=False), False, keep=(win,))


# ------------------------------------------------------------------------------ bad paths (drift 5)


def bad_paths(tmp_path: Path) -> dict:
    fifo = tmp_path / "a-fifo"
    os.mkfifo(fifo)
    return {"a directory": tmp_path, "a missing folder": tmp_path / "missing" / "out", "a FIFO": fifo}


@pytest.mark.parametrize("name", ["save-scenario", "export-csv", "export-window", "export-svg"])
def test_a_bad_path_is_a_line_in_the_status_bar(qtbot, win, tmp_path, name):  # noqa: F811
    """Saved through engine.outputs: a directory, a folder that does not exist, or a FIFO
    nobody reads is refused with one line; the FIFO is left a FIFO."""
    for what, path in bad_paths(tmp_path).items():
        win.path_answers = [str(path)]
        with qtbot.captureExceptions() as raised:
            win.acts[name].trigger()
        assert not raised, f"{name} to {what}: {raised[0][1]!r}"
        assert win.file_error and "\n" not in win.file_error, (name, what)
        assert win.statusBar().currentMessage() == win.file_error
        assert str(path.name) in win.file_error or what == "a missing folder", win.file_error
    assert stat.S_ISFIFO(os.stat(tmp_path / "a-fifo").st_mode) and tmp_path.is_dir()


def test_a_cancelled_dialog_does_nothing(win, tmp_path):  # noqa: F811
    for name in ("open-scenario", "save-scenario", "open-recording", "export-csv", "export-svg"):
        win.path_answers = [None]
        win.acts[name].trigger()
        assert not win.path_answers and not win.file_error
    assert not [p.name for p in tmp_path.iterdir() if p.name != "settings.ini"]


# ------------------------------------------------------------------------------ drift 1: save and reopen


def lesson_paths() -> list[Path]:
    return [sc.path for sc in scenarios.builtin_scenarios() if sc.is_lesson]


def test_every_lesson_saved_from_the_window_reopens_as_itself(qtbot, win, tmp_path):  # noqa: F811
    """File → Save scenario (its menu entry, the dialog answered) of every built-in lesson
    opened in the window: the file reopens with its backends, nodes, named lanes, knobs,
    faults and lines."""
    paths = lesson_paths()
    assert len(paths) >= 10
    save = menu_actions(win)["action-save-scenario"]
    for path in paths:
        sc = scenarios.load(path)
        assert win.load_scenario(path)
        out = tmp_path / f"{sc.name}.toml"
        win.path_answers = [str(out)]
        with qtbot.captureExceptions() as raised:
            save.trigger()
        assert not raised and not win.file_error, (sc.name, raised, win.file_error)
        again = scenarios.load(out)
        for attr in scenario_fields():
            assert getattr(again, attr) == getattr(sc, attr), f"{sc.name}: {attr} differs after Save scenario"
        data = tomllib.loads(out.read_text(encoding="utf-8"))
        assert data["backends"]["nodes"] == sc.base.backends.nodes and "cache" in data["backends"]


def test_a_scenario_saved_with_the_knobs_changed_keeps_them(qtbot, win, tmp_path):  # noqa: F811
    """What the window changed is what is saved: nodes and backends chosen among the knobs."""
    assert win.load_scenario(scenarios.find("durable-queue"))
    win._on_knob("backends", "nodes", 3)
    win._on_knob("cache", "ttl_s", 2.5)
    win.path_answers = [str(tmp_path / "changed.toml")]
    win.acts["save-scenario"].trigger()
    again = scenarios.load(tmp_path / "changed.toml")
    assert again.base.backends.nodes == 3 and again.base.cache.ttl_s == 2.5
    assert [s.name for s in again.specs] == ["volatile queue", "durable queue"]
    assert again.says == win.lesson.says and again.timeline == win.session.timeline
