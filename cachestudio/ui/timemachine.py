"""The window's time machine: scrubbing back through a live run or a replay, and showing a moment of its tape.

:class:`TimeMachineMixin` is the part of :class:`window.MainWindow` that moves in time: ← →
and the timeline show the run earlier or later (engine.timemachine's tape), Ctrl+← → jump
from fault to fault, End is live again; a moment shown is rebuilt from scratch in every
view (:meth:`_rewind`). A replay window (ui/replay.py) has no lab: its chrome says so.
"""

from __future__ import annotations

from .actions import ACTIONS
from .charts import WINDOW_S as CHART_WINDOW_S
from .events import scheduled_events
from .narration import SHADE_START
from .parts import WindowParts


def fault_beside(events: list[dict], at: float, direction: int) -> float | None:
    """When the fault before (``direction`` < 0) or after lab time ``at`` began; None if none."""
    starts = sorted({e["start"] for e in events if e["kind"] in SHADE_START})
    if direction < 0:
        earlier = [t for t in starts if t < at - 0.05]
        return max(0.0, earlier[-1]) if earlier else None
    later = [t for t in starts if t > at + 0.05]
    return later[0] if later else None


class TimeMachineMixin(WindowParts):
    """Scrubbing and replays (a part of MainWindow: it uses the window's session, views
    and timebar)."""

    def _replay_chrome(self) -> None:
        """A replay has no lab: no faults, no strategy or speed to choose; its title says
        what is replayed."""
        self.fault_bar.setVisible(False)
        self.fault_bar.toggleViewAction().setVisible(False)
        for a in (self.lane_combo_action, self.speed_combo_action):
            a.setVisible(False)
        for act in ACTIONS:
            if not act.replay:
                self.acts[act.name].setVisible(False)
        self.knobs.setEnabled(False)
        from .replay import ReplaySession  # (imported already: this window's session is one)

        s = self.session
        assert isinstance(s, ReplaySession)
        rec = s.recording
        self.setWindowTitle(f"Cache Studio — replay of {s.title}")
        self.scenario_name = s.title
        self.statusBar().showMessage(
            f"replay of {s.title} ({rec.path}): Space plays, ← → and the timeline move, N steps", 10000
        )

    def _show_time(self) -> None:
        s = self.session
        if s.run is None:
            self.timebar.show_state(0.0, 0.0, True)
            return
        self.timebar.show_state(s.view_now(), s.live_end, s.view_t is None, getattr(s, "playing", False))

    def step_or_forward(self) -> None:
        if self.session.view_t is not None:
            self.scrub_by(1.0)
        else:
            self.session.step()

    def scrub_by(self, seconds: float) -> None:
        s = self.session
        if s.run is None:
            return
        s.scrub(s.view_now() + seconds)

    def scrub_fault(self, direction: int) -> None:
        """Show the moment the previous (or next) fault began."""
        s = self.session
        if s.run is None or s.tape is None:
            return
        t = fault_beside(s.tape.events, s.view_now(), direction)
        if t is not None:
            s.scrub(t)
        elif direction > 0:
            s.live()

    def replay_speed(self, step: int) -> None:
        combo = self.timebar.speed
        combo.setCurrentIndex(max(0, min(combo.count() - 1, combo.currentIndex() + step)))

    def _set_replay_speed(self, x: float) -> None:
        if hasattr(self.session, "set_speed"):
            self.session.set_speed(x)

    def _rewind(self, frame: dict) -> None:
        """Show a moment of the tape from scratch: every view cleared, then given what
        the run had done by then (events, what each fault did, anomalies, the requests
        in flight, the lanes' state), as the live updates gave it."""
        s = self.session
        self._rebuilding = True
        try:
            self.caption_bar.clear_caption()
            self.charts.clear_moment()
            self.charts.set_cursor(s.cursor_t)
            self.strip.clear()
            self.strip.set_scheduled(scheduled_events(s.timeline, s.restart_delay_s))
            self.events_list.clear()
            self.event_items, self.event_rows, self.outcome_ids = [], {}, {}
            self.anomaly_panel.set_lanes(s.lane_pairs())
            if [(ln.name, ln.strategy) for ln in self.flow.lanes] == s.lane_pairs():
                self.flow.clear_moment()
            else:
                self.flow.set_lanes(s.lane_pairs())
            for i, cfg in enumerate(s.lane_configs()):
                self.flow.set_capacity(i, cfg.write_behind.capacity)
            for ev in frame["events"]:
                self._on_event(ev)
            self._on_outcomes(frame["outcomes"])
            self.anomaly_panel.set_groups(frame["groups"])
            for found, ids in zip(frame["anomalies"], frame["anomaly_groups"]):
                if found:
                    self.anomaly_panel.add(found, ids)
            for i, (sample, counts) in enumerate(frame["records"]):
                if counts:
                    self.flow.add_records(i, sample, counts)
            if self._marks_on() and s.tape is not None:  # slow motion: one mark per request, as shown then
                t = frame["now"]
                for i, records in enumerate(s.tape.records_between(t - CHART_WINDOW_S, t)):
                    if records:
                        self.charts.add_requests(i, records)
            self._refresh_injected()
            self.charts.end_moment()
            self._on_sampled()
            self.charts.touch(s.view_now())
        finally:
            self._rebuilding = False
        self.refresh_status()
