"""Two recordings side by side in one window, on one time axis (`replay A --compare B`).

Each recording gets a replay pane of its own (the studio window's views, no lab), one
above the other; one timeline drives both, so both show the same lab time: play, pause,
speed, step, scrub and the previous / next fault move the two together. Each pane is
titled with what differs between the two runs (the knobs, the faults), e.g. a crash with
a volatile queue above the same crash with a durable one.
"""

from __future__ import annotations

import time

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtWidgets import QLabel, QMainWindow, QSplitter, QVBoxLayout, QWidget

from .actions import Act, qaction, resolve
from .replay import ReplaySession
from .timebar import TimeBar
from .window import MainWindow, fault_beside

TICK_MS = 50
_KEYS_ONLY = "the compare window has no menus: its keys and its timeline"
#: The compare window's actions (keys only), as ui/actions.py declares the studio window's.
COMPARE_ACTIONS = (
    Act("play", "Play / pause", ("Space",), "toggle_play", no_menu=_KEYS_ONLY),
    Act("back-1", "Back 1 s", ("Left",), "scrub_by", (-1.0,), no_menu=_KEYS_ONLY),
    Act("forward-1", "Forward 1 s", ("Right",), "scrub_by", (1.0,), no_menu=_KEYS_ONLY),
    Act("back-10", "Back 10 s", ("Shift+Left",), "scrub_by", (-10.0,), no_menu=_KEYS_ONLY),
    Act("forward-10", "Forward 10 s", ("Shift+Right",), "scrub_by", (10.0,), no_menu=_KEYS_ONLY),
    Act("previous-fault", "Previous fault", ("Ctrl+Left",), "jump_fault", (-1,), no_menu=_KEYS_ONLY),
    Act("next-fault", "Next fault", ("Ctrl+Right",), "jump_fault", (1,), no_menu=_KEYS_ONLY),
    Act("start", "Start", ("Home",), "scrub", (0.0,), no_menu=_KEYS_ONLY),
    Act("end", "End", ("End",), "scrub_to_end", no_menu=_KEYS_ONLY),
)


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def differences(a, b) -> tuple[str, str]:
    """What differs between two recordings' runs, one short line each (knobs per lane,
    the plan's faults and length)."""
    sides: list[list[str]] = [[], []]
    la, lb = a.header.get("lanes") or [], b.header.get("lanes") or []
    for i in range(max(len(la), len(lb))):
        fa = _flat(la[i]) if i < len(la) else {}
        fb = _flat(lb[i]) if i < len(lb) else {}
        for key in sorted(set(fa) | set(fb)):
            if fa.get(key) != fb.get(key) and key not in ("seed", "name"):
                lane = la[i] if i < len(la) else lb[i]
                name = lane.get("name") or lane.get("strategy", "?")
                for side, f in ((0, fa), (1, fb)):
                    item = f"{name} {key.split('.')[-1]}={f.get(key, '—')}"
                    if item not in sides[side]:
                        sides[side].append(item)
    pa, pb = a.header.get("plan") or {}, b.header.get("plan") or {}
    for key in sorted(set(pa) | set(pb)):
        if pa.get(key) != pb.get(key) and key != "seed":
            sides[0].append(f"{key}={pa.get(key)}")
            sides[1].append(f"{key}={pb.get(key)}")
    first, second = (", ".join(s[:6]) + (" …" if len(s) > 6 else "") or "the same knobs" for s in sides)
    return first, second


class CompareWindow(QMainWindow):
    def __init__(self, recordings: list, settings: QSettings | None = None):
        super().__init__()
        self.recordings = recordings[:2]
        self.setWindowTitle(
            "Cache Studio — compare "
            + " · ".join(r.header.get("title") or r.header.get("scenario") or r.path for r in self.recordings)
        )
        self.panes: list[MainWindow] = []
        split = QSplitter(Qt.Orientation.Vertical)
        diff = differences(*self.recordings)
        for letter, rec, what in zip("AB", self.recordings, diff):
            box = QWidget()
            col = QVBoxLayout(box)
            col.setContentsMargins(0, 0, 0, 0)
            title = QLabel(
                f"<b>{letter}</b> · {rec.header.get('title') or rec.header.get('scenario') or rec.path} · {what}"
            )
            title.setObjectName(f"compare-title-{letter}")
            title.setTextFormat(Qt.TextFormat.RichText)
            col.addWidget(title)
            pane = MainWindow(settings, replay=[rec])
            pane.setWindowFlags(Qt.WindowType.Widget)
            pane.menuBar().hide()
            pane.timebar.hide()
            pane.toolbar.hide()
            pane.panel_choice = False
            pane.dock.hide()
            col.addWidget(pane, 1)
            split.addWidget(box)
            self.panes.append(pane)
        body = QWidget()
        col = QVBoxLayout(body)
        col.setContentsMargins(0, 0, 0, 0)
        col.addWidget(split, 1)
        self.timebar = TimeBar(replay=True)
        col.addWidget(self.timebar)
        self.setCentralWidget(body)
        self.end = max(p.session.tape.end for p in self.panes)
        self.head = 0.0
        self.playing = False
        self.speed = 1.0
        self._last = time.monotonic()
        self.timebar.scrubbed.connect(self.scrub)
        self.timebar.play_asked.connect(self.toggle_play)
        self.timebar.speed_changed.connect(self._set_speed)
        for pane in self.panes:  # the panes' own keys would be ambiguous with these: the compare window drives them
            for a in pane.acts.values():
                a.setEnabled(False)
        self.acts = {act.name: qaction(self, act) for act in COMPARE_ACTIONS}
        self.timer = QTimer(self)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self.tick)

    def start(self) -> None:
        for p in self.panes:
            p.start()
        self.timer.start()
        self.scrub(0.0)

    def run_action(self, act: Act) -> None:
        resolve(self, act.handler)(*act.args)

    def scrub_by(self, seconds: float) -> None:
        self.scrub(self.head + seconds)

    def scrub_to_end(self) -> None:
        self.scrub(self.end)

    def scrub(self, t: float) -> None:
        self.head = max(0.0, min(float(t), self.end))
        for p in self.panes:
            p.session.scrub(min(self.head, p.session.tape.end))
        self._show()

    def toggle_play(self) -> None:
        if not self.playing and self.head >= self.end - 1e-9:
            self.scrub(0.0)
        self.playing = not self.playing
        self._last = time.monotonic()
        self._show()

    def _set_speed(self, x: float) -> None:
        self.speed = x

    def jump_fault(self, direction: int) -> None:
        t = fault_beside([e for p in self.panes for e in p.session.tape.events], self.head, direction)
        if t is not None:
            self.scrub(t)
        elif direction > 0:
            self.scrub(self.end)

    def tick(self) -> None:
        now = time.monotonic()
        dt, self._last = now - self._last, now
        if not self.playing:
            return
        self.head = min(self.head + dt * self.speed, self.end)
        for p in self.panes:
            s = p.session
            assert isinstance(s, ReplaySession)  # each pane replays its recording
            if s.now() < s.tape.end:
                s.play_to(min(self.head, s.tape.end))
        if self.head >= self.end:
            self.playing = False
        self._show()

    def _show(self) -> None:
        self.timebar.show_state(self.head, self.end, False, self.playing)
        for p in self.panes:
            p.refresh_status()

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self.timer.stop()
        for p in self.panes:
            p.close()
        super().closeEvent(event)
