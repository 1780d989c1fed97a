"""The window's side of a lab run: a Qt object that drives an engine :class:`Run` living
in an observer process (:mod:`cachestudio.engine.observer`), which drives the labs.

The window's process only receives small updates (chart rows, counters, events,
anomalies, a sample of records for the tokens) and sends commands: at full speed the
observer's work (every record read, audited and binned) would starve the event loop.
:class:`RunView` mirrors the run's state, so the window reads it as it would a ``Run``.
Everything here returns quickly; a timer polls the observer's pipe every ``TICK_MS``.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

from PySide6.QtCore import QObject, QTimer, Signal

from ..engine.config import LIVE_KNOBS, STRATEGIES, ConfigError, LaneConfig, LaneSpec, lane_labels, validate
from ..engine.faultkinds import BY_NAME as FAULT_KINDS
from ..engine.series import LaneSeries
from ..engine.tempfolders import make_folder, remove_orphans

# The runner, its backends (sqlite-utils, diskcache) and the observer are imported when a
# run starts, not with the window: they are most of the window's own import time, and the
# window's process never uses them itself (the observer's process does).

MP = multiprocessing.get_context("spawn")  # never fork: this process has Qt threads
# The observer and its labs yield the CPU to the window when the cores are all busy (the
# labs inherit the observer's niceness: observer and labs compete as they do headless).
OBSERVER_NICE = 5
SILENT_S = 3.0  # an observer silent this long is shown as not responding
STOP_WAIT_S = 10.0


def live_value(kind: str, param: str, value=None):
    """``value``, or the live value of a fault kind's parameter (engine.faultkinds)."""
    return FAULT_KINDS[kind].live_values()[param] if value is None else value


class LaneView:
    """One lane as the observer last reported it (same names as the runner's LabHandle)."""

    def __init__(self, cfg: LaneConfig):
        self.cfg = cfg
        self.inc = 0
        self.proc = SimpleNamespace(pid=None)
        self.state = "starting"
        self._health = "starting"
        self.gauges: dict = {}
        self._totals: dict = {}
        self.auditor = SimpleNamespace(counts={}, at_risk=lambda: 0)
        self.stats = SimpleNamespace(ops=0, reads=0, writes=0)
        self._burst = False

    def update(self, d: dict) -> None:
        self.cfg, self.inc, self.state, self._health = d["cfg"], d["inc"], d["state"], d["health"]
        self.proc = SimpleNamespace(pid=d["pid"])
        self.gauges, self._totals, self._burst = d["gauges"], d["totals"], d["burst"]
        risk = d["at_risk"]
        self.auditor = SimpleNamespace(counts=d["counts"], at_risk=lambda: risk)
        self.stats = SimpleNamespace(ops=d["ops"], reads=d["reads"], writes=d["writes"])

    def health(self) -> str:
        return self._health

    def totals(self) -> dict:
        return self._totals

    def burst_active(self) -> bool:
        return self._burst


def take_state(run, u: dict) -> None:
    """An update's lane states, flags, events and fault outcomes, into a run view."""
    run.outage_on = bool(u.get("outage_on"))
    run.slow_db_ms, run.slow_cache_ms = u.get("slow_db_ms") or 0.0, u.get("slow_cache_ms") or 0.0
    for lane, state in zip(run.lanes, u["lanes"] or ()):
        lane.update(state)
    run.events.extend(u["events"])
    for w in u.get("outcomes") or ():
        run.outcomes[w["id"]] = w


class FrameView:
    """The run as it was at a moment of its tape (read as a RunView is, by the views)."""

    def __init__(self, cfgs, frame: dict):
        self.lanes = [LaneView(cfg) for cfg in cfgs]
        self.events: list[dict] = []
        self.outcomes: dict = {}
        take_state(self, frame)
        self.paused = bool(frame.get("paused"))
        self.t = frame["now"]

    def now(self) -> float:
        return self.t


class RunView:
    """The observer's run, seen from the window: state mirrored, methods sent as commands."""

    def __init__(self, plan, conn, proc):
        self.plan = plan
        self.conn = conn
        self.proc = proc
        self.lanes = [LaneView(cfg) for cfg in plan.lanes]
        self.events: list[dict] = []
        self.t0: float | None = None
        self.paused = False
        self.outage_on = False
        self.slow_db_ms = 0.0
        self.slow_cache_ms = 0.0
        self.last_heard = time.monotonic()
        self.failed = ""
        #: A lesson's run ended as headless (drained, audited at rest): its summary, or None.
        self.summary: dict | None = None
        self.outcomes: dict[int, dict] = {}  # fault window id -> what it did (engine.outcomes)
        self._lab_now: float | None = None  # the observer's lab time in its last update
        self._heard_at = 0.0
        self._shown = 0.0

    def heard(self, lab_now: float) -> None:
        self._lab_now, self._heard_at = lab_now, time.monotonic()

    def now(self) -> float:
        """Lab time (pauses do not count), as the observer last said it, moved on smoothly
        between its updates while the run is not paused; it never goes back."""
        if self._lab_now is None:
            return 0.0
        t = self._lab_now
        if not self.paused:
            t += min(time.monotonic() - self._heard_at, CLOCK_LEAD_S)
        self._shown = max(self._shown, t)
        return self._shown

    def _call(self, name: str, *args) -> None:
        try:
            self.conn.send(("call", name, args))
        except (BrokenPipeError, OSError):
            pass  # a dead observer is noticed by the session's tick

    def crash(self) -> None:
        self._call("crash")

    def outage_start(self, seconds: float) -> None:
        self._call("outage_start", seconds)

    def schedule(self, at: float, kind: str, *args) -> None:
        self._call("schedule", at, kind, *args)

    def slow_db(self, ms: float) -> None:
        self._call("slow_db", ms)

    def slow_cache(self, ms: float) -> None:
        self._call("slow_cache", ms)

    def stampede(self, readers: int) -> None:
        self._call("stampede", readers)

    def cold(self) -> None:
        self._call("cold")

    def burst(self, kind: str, count: int) -> None:
        self._call("burst", kind, count)

    def heal(self) -> None:
        self._call("heal")

    def pause(self) -> None:
        self.paused = True
        self._call("pause")

    def resume(self) -> None:
        self.paused = False
        self._call("resume")

    def step(self) -> None:
        self.paused = True
        self._call("step")

    def set_knob(self, section: str, name: str, value, keep: tuple = ()) -> None:
        """Checked here first (same rules as Run.set_knob), then sent."""
        if (section, name) not in LIVE_KNOBS:
            raise ConfigError(f"{section}.{name} cannot change while the lab runs; it applies at the next reset")
        for lane in self.lanes:
            if lane.cfg.label not in keep:
                validate(lane.cfg.with_knob(section, name, value))
        self._call("set_knob", section, name, value, tuple(keep))

    def stop(self) -> None:
        """Stop the observer (it stops its labs); kill it if it does not answer."""
        try:
            self.conn.send(("stop",))
        except (BrokenPipeError, OSError):
            pass
        self.proc.join(STOP_WAIT_S)
        if self.proc.is_alive():
            self.proc.kill()  # its labs see their pipe close and exit
            self.proc.join()
        self.conn.close()


TICK_MS = 50
CLOCK_LEAD_S = 0.15  # how far the window's clock runs on past the observer's last word
OPEN_ENDED_S = 86_400.0  # a window run lasts until reset
TMP_KIND = "window"  # its temp folders are cachestudio-window-* (engine/tempfolders.py)


def make_run_folder() -> str:
    """A temp folder for one window run, marked with its owner (engine/tempfolders.py)."""
    path = make_folder(TMP_KIND)
    if os.geteuid() == 0:
        os.chmod(path, 0o711)  # ours: as root, PostgreSQL's own user must reach its socket in it
    return path


class LabSession(QObject):
    changed = Signal()  # started, paused, reset, a lab's health changed
    started = Signal()  # a new run (new series to draw)
    # Python objects travel as `object`: a `list` or `dict` signature would convert every
    # record to a QVariant and back (measured: most of the window's time at full speed).
    # (not named ``event``: that is QObject.event, the virtual Qt calls with every QEvent)
    lab_event = Signal(object)  # a fault or lifecycle event record (dict)
    records = Signal(int, object, object)  # lane index, a sample of new records, {(kind, outcome): count}
    anomalies = Signal(int, object, object)  # lane index, new Anomaly objects (list), their group ids (list)
    outcomes = Signal(object)  # fault windows whose outcome changed (engine.outcomes: dicts with "id")
    groups = Signal(object)  # anomaly groups (by cause, lane and kind) whose count changed
    sampled = Signal()  # new chart rows (and new lane state)
    counters = Signal()  # new lane state only (counters, at risk, gauges)
    rewound = Signal(object)  # the views must show this frame (engine.timemachine.Tape.frame) from scratch
    message = Signal(str)  # for the status bar
    ended = Signal(float)  # an opened scenario reached its duration (s): paused, or a lesson's run finished

    def __init__(self, parent=None):
        super().__init__(parent)
        self.base = LaneConfig(strategy=STRATEGIES[0])  # the knobs; each spec sets its lane's strategy
        #: The lanes of the next run: a strategy, a name, the knobs it sets on top of ``base``.
        self.specs: list[LaneSpec] = [LaneSpec(s) for s in STRATEGIES]
        self.timeline: dict[str, list] = {}  # Plan fields of a scenario's fault timeline
        self.restart_delay_s = 1.0
        #: The opened scenario's name, title and description, for the run's recording.
        self.scenario_info: dict | None = None
        #: This run's recording (every window run is recorded, in its run folder).
        self.recording_path: Path | None = None
        self.duration_s = OPEN_ENDED_S  # a scenario's duration: its run pauses there
        #: A lesson's run ends at duration_s as headless (drain, audit at rest, summary)
        #: instead of pausing there: its claims are judged on that summary.
        self.finish_at_end = False
        self.scenario_ended = False  # this run reached duration_s and was paused (or finished)
        self.run: RunView | None = None
        self.series: list[LaneSeries] = []
        self.node_series: list[list[LaneSeries]] = []  # per lane of several app nodes: one per node
        #: The run's past (engine.timemachine.Tape), for scrubbing back while it runs.
        self.tape = None
        #: The lab time the views show when scrubbed back; None: live (they show now).
        self.view_t: float | None = None
        self._frame_view = None
        self._tmp: str | None = None
        self._health: list[str] = []
        self.timer = QTimer(self)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self.tick)

    # -- configuration (applies at the next start) --------------------------------------

    @property
    def strategies(self) -> list[str]:
        """The lanes' names (a strategy's, or a named lane's)."""
        return [spec.name or spec.strategy for spec in self.specs]

    @strategies.setter
    def strategies(self, strategies: list[str]) -> None:
        self.specs = [LaneSpec(s) for s in strategies]

    def lane_configs(self) -> list[LaneConfig]:
        """The next run's lanes: ``base`` with each lane's own knobs on top."""
        return [spec.build(self.base) for spec in self.specs]

    def lane_pairs(self) -> list[tuple[str, str]]:
        return [(spec.name or spec.strategy, spec.strategy) for spec in self.specs]

    def overridden(self, section: str, name: str) -> list[str]:
        """The lanes that set this knob themselves (a change of the run's knob leaves them)."""
        return [spec.name or spec.strategy for spec in self.specs if spec.sets(section, name)]

    def configure(
        self,
        base: LaneConfig,
        lanes: list,
        timeline: dict | None = None,
        restart_delay_s: float = 1.0,
        duration_s: float = OPEN_ENDED_S,
        finish_at_end: bool = False,
    ) -> None:
        """``lanes``: strategies or LaneSpecs. ``finish_at_end``: the run ends at
        ``duration_s`` as a headless run does (a lesson's), rather than pausing there."""
        validate(base)
        specs = [LaneSpec(x) if isinstance(x, str) else x for x in lanes]
        cfgs = [spec.build(base) for spec in specs]
        for cfg in cfgs:
            validate(cfg)
        lane_labels(cfgs)
        self.duration_s = float(duration_s)
        self.finish_at_end = finish_at_end and duration_s < OPEN_ENDED_S
        self.base = base
        self.specs = specs
        self.timeline = {k: list(v) for k, v in (timeline or {}).items()}
        self.restart_delay_s = restart_delay_s

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.run is not None

    @property
    def paused(self) -> bool:
        return self.run is not None and self.run.paused

    def now(self) -> float:
        return self.run.now() if self.run is not None else 0.0

    # -- the time machine -----------------------------------------------------------------

    @property
    def view(self):
        """What the views show: the run as it is now, or as it was at ``view_t``."""
        return self._frame_view if self.view_t is not None else self.run

    @property
    def cursor_t(self) -> float | None:
        """Where the charts stop (None: they show everything so far)."""
        return self.view_t

    def view_now(self) -> float:
        return self.view_t if self.view_t is not None else self.now()

    @property
    def live_end(self) -> float:
        """The latest lab time that can be shown."""
        return self.now()

    def scrub(self, t: float) -> None:
        """Show lab time ``t`` (clamped to the run so far); past the end is live again."""
        tape = self.tape
        if tape is None or not len(tape):
            return
        if t >= tape.end:
            self.live()
            return
        t = max(0.0, t)
        self.view_t = t
        frame = tape.frame(t)
        self._frame_view = FrameView(self.run.plan.lanes if self.run is not None else self.lane_configs(), frame)
        self.rewound.emit(frame)
        self.changed.emit()

    def live(self) -> None:
        """Back to now (End): the views are rebuilt up to the latest update."""
        if self.view_t is None:
            return
        self.view_t = None
        self._frame_view = None
        if self.tape is not None and len(self.tape):
            self.rewound.emit(self.tape.frame(self.tape.end))
        self.changed.emit()

    def step(self) -> None:
        """One request of each lane (the run pauses first if it is running)."""
        if self.run is None:
            self.message.emit("start the lab first (Space)")
            return
        self.live()
        self.run.step()
        self.changed.emit()

    def start(self) -> None:
        if self.run is not None:
            return
        from ..engine.observer import observer_process
        from ..engine.runner import Plan

        remove_orphans()  # what a window or a run killed with SIGKILL left behind
        self._tmp = make_run_folder()
        plan = Plan(
            lanes=self.lane_configs(),
            duration_s=self.duration_s if self.finish_at_end else OPEN_ENDED_S,
            restart_delay_s=self.restart_delay_s,
            run_dir=Path(self._tmp) / "run",
            redis_url="",  # no servers given: the run starts its own
            postgres_url="",
            **self.timeline,  # its fault fields only
        )
        self.series = [LaneSeries() for _ in plan.lanes]
        from ..engine.timemachine import Tape, node_series_for

        self.node_series = node_series_for(plan.lanes)

        self.tape = Tape([cfg.label for cfg in plan.lanes])
        self.view_t = None
        self._frame_view = None
        parent, child = MP.Pipe()
        # not a daemon (it has children of its own); it exits when its pipe closes or on "stop"
        self.recording_path = Path(self._tmp) / "recording.csrec"
        record = (str(self.recording_path), self.scenario_info)
        proc = MP.Process(
            target=observer_process,
            args=(child, plan, OBSERVER_NICE, os.getpid(), record, self.finish_at_end),
            name="observer",
        )
        proc.start()
        child.close()
        self.run = RunView(plan, parent, proc)
        self.scenario_ended = False
        self._health = []
        self.timer.start()
        self.started.emit()
        self.changed.emit()
        self.message.emit("lab starting: one process per lane")

    def toggle_pause(self) -> None:
        if self.run is None:
            self.start()
        elif self.run.summary is not None:
            self.message.emit("the lesson's run has ended (drained and audited): Shift+R runs it again")
            return
        elif self.run.paused:
            self.run.resume()
        else:
            self.run.pause()
        self.changed.emit()

    def reset(self) -> None:
        """Throw the run away (labs killed, files removed); the next start is fresh."""
        self.timer.stop()
        if self.run is not None:
            self.run.stop()
            self.run = None
        self.scenario_ended = False
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        self.series = []
        self.node_series = []
        self.tape = None
        self.view_t = None
        self._frame_view = None
        self.recording_path = None
        self.changed.emit()

    shutdown = reset

    # -- faults and knobs -----------------------------------------------------------------

    def _need_run(self) -> bool:
        if self.run is None:
            self.message.emit("start the lab first (Space)")
            return False
        return True

    # Each fault the window fires is a method named as its kind's command (FaultKind.command),
    # taking the kind's parameters by name; a value not given is the kind's live value.

    def crash(self) -> None:
        if self._need_run():
            self.run.crash()
            self.changed.emit()

    def outage(self, duration: float | None = None) -> None:
        if self._need_run():
            if self.run.outage_on:
                self.message.emit("the database is already down")
                return
            self.run.outage_start(live_value("outage", "duration", duration))  # the runner schedules its end

    def slow_db(self, ms: float | None = None, duration: float | None = None) -> None:
        """Toggle injected DB latency (on until toggled off: ``duration`` is not used)."""
        if self._need_run():
            self.run.slow_db(0 if self.run.slow_db_ms else live_value("slow-db", "ms", ms))

    def slow_cache(self, ms: float | None = None, duration: float | None = None) -> None:
        """Toggle injected cache latency (on until toggled off: ``duration`` is not used)."""
        if self._need_run():
            self.run.slow_cache(0 if self.run.slow_cache_ms else live_value("slow-cache", "ms", ms))

    def stampede(self, readers: int | None = None) -> None:
        if self._need_run():
            self.run.stampede(live_value("stampede", "readers", readers))

    def cold(self) -> None:
        if self._need_run():
            self.run.cold()

    def burst(self, op: str | None = None, count: int | None = None) -> None:
        if self._need_run():
            self.run.burst(live_value("burst", "op", op), live_value("burst", "count", count))

    def heal(self) -> None:
        if self._need_run():
            self.run.heal()

    def set_knob(self, section: str, name: str, value) -> str | None:
        """Change a knob; returns an error message for the status bar, or None."""
        try:
            validate(self.base.with_knob(section, name, value))
        except ConfigError as exc:
            return str(exc)
        self.base = self.base.with_knob(section, name, value)
        if self.run is None:
            return None
        try:
            self.run.set_knob(section, name, value, tuple(self.overridden(section, name)))
        except ConfigError as exc:
            return str(exc)
        return None

    # -- the observer's round -------------------------------------------------------------

    def tick(self) -> None:
        """Take what the observer sent since the last tick."""
        run = self.run
        if run is None:
            return
        try:
            while run.conn.poll():
                msg = run.conn.recv()
                run.last_heard = time.monotonic()
                kind = msg[0]
                if kind == "update":
                    self._apply(run, msg[1])
                elif kind == "started":
                    run.t0 = msg[1]["t0"]
                elif kind == "finished":
                    self._finished(run, msg[1])
                elif kind == "message":
                    self.message.emit(msg[1])
                elif kind == "error":
                    self._fail(run, msg[1])
        except (EOFError, OSError):
            pass
        if (
            not self.scenario_ended
            and not self.finish_at_end  # a lesson's run ends when the observer says it finished
            and run.t0 is not None
            and not run.failed
            and run.now() >= self.duration_s
        ):
            self.scenario_ended = True  # once: Space resumes past it, R runs it again
            if not run.paused:
                run.pause()
            self.ended.emit(self.duration_s)
            self.changed.emit()
        if not run.failed and not run.proc.is_alive():
            self._fail(run, f"the observer process exited (code {run.proc.exitcode}); press R to reset")
        elif not run.failed and run.summary is None and time.monotonic() - run.last_heard > SILENT_S:
            for lane in run.lanes:
                lane._health = "not responding"
        health = [lane.health() for lane in run.lanes]
        if health != self._health:
            self._health = health
            self.changed.emit()

    def _finished(self, run: RunView, summary: dict) -> None:
        """A lesson's run ended as headless: its clients stopped, its queues drained, the
        end-of-run audit done; the summary is the one ``check --run`` judges claims on."""
        run.summary = summary
        run.paused = True  # lab time stands at the end (the lanes' health came with the last update)
        self.scenario_ended = True
        self.ended.emit(self.duration_s)
        self.changed.emit()

    def _fail(self, run: RunView, text: str) -> None:
        run.failed = text
        for lane in run.lanes:
            lane._health = "failed"
        self.message.emit(text)

    def _apply(self, run: RunView, u: dict) -> None:
        """Take an update: the run's state always, and on the tape; the views hear of it
        when they show now (not while scrubbed back)."""
        run.heard(u["now"])
        run.paused = u["paused"]
        take_state(run, u)
        added = 0
        for series, rows in zip(self.series, u.get("rows") or ()):
            for row in rows:
                series.ring.append(row)
            added += len(rows)
        for nodes, per_node in zip(self.node_series, u.get("node_rows") or ()):
            for series, rows in zip(nodes, per_node):
                for row in rows:
                    series.ring.append(row)
        if self.tape is not None:
            self.tape.add(u)
        if self.view_t is None:
            self._emit(u, added)

    def _emit(self, u: dict, added: int = 1) -> None:
        """The views' share of an update."""
        for ev in u["events"]:
            self.lab_event.emit(ev)
        for i, (sample, counts) in enumerate(u["records"]):
            if counts:
                self.records.emit(i, sample, counts)
        if u.get("groups"):
            self.groups.emit(u["groups"])
        ids = u.get("anomaly_groups") or [None] * len(u["anomalies"])
        for i, found in enumerate(u["anomalies"]):
            if found:
                self.anomalies.emit(i, found, ids[i])
        if u.get("outcomes"):
            self.outcomes.emit(u["outcomes"])
        if added:
            self.sampled.emit()
        else:
            self.counters.emit()  # new lane state (counters, at risk) without new chart rows: paused

    def lab_health(self) -> list[tuple[str, str]]:
        if self.run is None:
            return [(s, "idle") for s in self.strategies]
        return [(lane.cfg.label, lane.health()) for lane in self.run.lanes]
