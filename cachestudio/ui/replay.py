"""A recorded run in the window, with no lab: play, pause, speed, step, scrub.

:class:`ReplaySession` stands in for :class:`~.session.LabSession`: the same signals,
fed from a :class:`~cachestudio.engine.timemachine.Tape` rebuilt from the recording by
the observer's own code, so every view shows what the live window showed. The play head
is lab time; the charts show the recording's rows up to it. Faults and knobs need a live
lab: in a replay they say so in the status bar.
"""

from __future__ import annotations

import gc
import time
from types import SimpleNamespace
from typing import TYPE_CHECKING

from ..engine.config import LaneSpec
from ..engine.timemachine import Tape
from .session import LabSession, LaneView, take_state

NO_LAB = "this is a replay (no lab): faults and knobs act on a live lab — run `cachestudio` without a recording"

if TYPE_CHECKING:
    # For the type checker a ReplayRun is the session's run (a RunView: what the window
    # reads of it); at run time it is a plain class. Nothing sends it a RunView's commands:
    # ReplaySession answers each of them itself (a replay has no lab).
    from .session import RunView as _RunBase
else:
    _RunBase = object


class ReplayRun(_RunBase):
    """The recorded run as the window reads a RunView."""

    def __init__(self, cfgs, plan):
        self.plan = plan
        self.lanes = [LaneView(cfg) for cfg in cfgs]
        self.events: list[dict] = []
        self.outcomes: dict = {}
        self.paused = True
        self.outage_on = False
        self.slow_db_ms = self.slow_cache_ms = 0.0
        self.failed = ""
        self.t0 = 0.0
        self.head = 0.0

    def now(self) -> float:
        return self.head


class ReplaySession(LabSession):
    run: ReplayRun  # (declared only: set in __init__, never None in a replay)

    def __init__(self, recordings: list, parent=None):
        super().__init__(parent)
        rec = recordings[0]
        self.recordings = recordings
        self.recording = rec
        self.tape = Tape.from_recording(rec)
        # The records are on the tape now (as the window shows them): the recording's own
        # copy goes, and what is left is frozen out of the garbage collector's scans (a
        # full collection over millions of objects is a pause the scrub need not pay).
        rec.ops = [[] for _ in rec.ops]
        gc.collect()
        gc.freeze()
        self._configs = rec.configs
        self.specs = [LaneSpec(c.strategy, c.name) for c in self._configs]
        self.base = self._configs[0]
        plan = rec.header.get("plan") or {}
        self.timeline = {}  # the recorded events are on the tape; nothing is "scheduled" ahead
        self.restart_delay_s = float(plan.get("restart_delay_s", 1.0))
        self.duration_s = float(plan.get("duration_s") or self.tape.end)
        self.series = self.tape.series
        self.node_series = self.tape.node_series
        self.run = ReplayRun(self._configs, SimpleNamespace(lanes=self._configs, duration_s=self.duration_s))
        self.playing = False
        self.speed = 1.0
        self._last = time.monotonic()
        self.title = rec.header.get("title") or rec.header.get("scenario") or "recording"

    # -- what the window asks of a session ------------------------------------------------

    def lane_configs(self):
        return list(self._configs)

    @property
    def paused(self) -> bool:
        return not self.playing

    @property
    def cursor_t(self) -> float | None:
        return self.run.head

    def now(self) -> float:
        return self.run.head

    @property
    def live_end(self) -> float:
        return self.tape.end

    def view_now(self) -> float:
        return self.run.head

    @property
    def view(self):
        return self.run

    def start(self) -> None:
        """Show the head's moment (the window's views are bound to the replay first)."""
        if not self.timer.isActive():
            self.timer.start()
        self.started.emit()
        self.scrub(self.run.head)

    def toggle_pause(self) -> None:
        if self.run.head >= self.tape.end - 1e-9:
            self.scrub(0.0)  # at the end: play again from the start
        self.playing = not self.playing
        self.run.paused = not self.playing
        self._last = time.monotonic()
        if not self.timer.isActive():
            self.timer.start()
        self.changed.emit()

    def set_speed(self, x: float) -> None:
        self.speed = float(x)
        self.message.emit(f"replay speed ×{x:g}")

    def reset(self) -> None:
        self.playing = False
        self.run.paused = True
        self.scrub(0.0)

    def shutdown(self) -> None:
        self.timer.stop()
        self.playing = False

    def scrub(self, t: float) -> None:
        t = max(0.0, min(float(t), self.tape.end))
        self.run.head = t
        frame = self.tape.frame(t)
        self._take(frame)
        self.rewound.emit(frame)
        self.changed.emit()

    def live(self) -> None:
        """End: the end of the recording."""
        self.playing = False
        self.run.paused = True
        self.scrub(self.tape.end)

    def step(self) -> None:
        """On to the next recorded moment with requests in it, shown as it was played."""
        self.playing = False
        self.run.paused = True
        for j in self.tape.between(self.run.head, self.tape.end):
            if any(counts for counts in self.tape.counts[j]):
                self.play_to(self.tape.times[j])
                break
        else:
            self.message.emit("the end of the recording")
        self.changed.emit()

    def _take(self, frame: dict) -> None:
        """The run view's state at a frame (its events and outcomes are all of them so far)."""
        self.run.events, self.run.outcomes = [], {}
        take_state(self.run, frame)

    def play_to(self, t: float) -> None:
        """Move the head on to ``t``, giving the views every update on the way."""
        for j in self.tape.between(self.run.head, t):
            u = self.tape.update_at(j)
            take_state(self.run, u)
            self.run.head = u["now"]
            self._emit(u, added=0)
        self.run.head = t
        self.sampled.emit()

    def tick(self) -> None:
        now = time.monotonic()
        dt, self._last = now - self._last, now
        if not self.playing:
            return
        target = min(self.run.head + dt * self.speed, self.tape.end)
        self.play_to(target)
        if target >= self.tape.end:
            self.playing = False
            self.run.paused = True
            self.message.emit(f"the end of the recording ({self.tape.end:.1f} s); Space plays it again")
            self.changed.emit()

    def lab_health(self) -> list[tuple[str, str]]:
        return [(lane.cfg.label, lane.health()) for lane in self.run.lanes]

    # -- a replay has no lab ----------------------------------------------------------------

    def _no_lab(self, *_args, **_values) -> None:
        self.message.emit(NO_LAB)

    crash = outage = slow_db = slow_cache = stampede = cold = burst = heal = _no_lab

    def set_knob(self, section: str, name: str, value) -> str | None:
        return NO_LAB

    def configure(self, *args, **kwargs) -> None:
        self.message.emit(NO_LAB)
