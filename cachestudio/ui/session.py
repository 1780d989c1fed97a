"""The window's side of a lab run: a Qt object that drives an engine :class:`Run`.

Everything here returns quickly: the labs are other processes, :meth:`Run.tick` only
polls pipes and reads what the labs appended to their history files. A timer calls it
every ``TICK_MS``. Chart rows come from :class:`LaneSeries`, binned by when operations
really ended.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from ..engine.config import STRATEGIES, ConfigError, LaneConfig, validate
from ..engine.runner import Plan, Run
from ..engine.series import LaneSeries

TICK_MS = 50
OPEN_ENDED_S = 86_400.0  # a window run lasts until reset


class LabSession(QObject):
    changed = Signal()  # started, paused, reset, a lab's health changed
    started = Signal()  # a new run (new series to draw)
    event = Signal(dict)  # a fault or lifecycle event record
    records = Signal(int, list)  # lane index, new operation records
    anomalies = Signal(int, list)  # lane index, new Anomaly objects
    sampled = Signal()  # new chart rows
    message = Signal(str)  # for the status bar

    def __init__(self, parent=None):
        super().__init__(parent)
        self.base = LaneConfig(strategy="cache-aside")
        self.strategies: list[str] = list(STRATEGIES)
        self.timeline: dict[str, list] = {}  # Plan fields of a scenario's fault timeline
        self.restart_delay_s = 1.0
        self.run: Run | None = None
        self.series: list[LaneSeries] = []
        self._tmp: str | None = None
        self._health: list[str] = []
        self.timer = QTimer(self)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self.tick)

    # -- configuration (applies at the next start) --------------------------------------

    def lane_configs(self) -> list[LaneConfig]:
        return [replace(self.base, strategy=s) for s in self.strategies]

    def configure(self, base: LaneConfig, strategies: list[str], timeline: dict | None = None,
                  restart_delay_s: float = 1.0) -> None:
        validate(base)
        self.base = base
        self.strategies = list(strategies)
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

    def start(self) -> None:
        if self.run is not None:
            return
        self._tmp = tempfile.mkdtemp(prefix="cachestudio-window-")
        plan = Plan(lanes=self.lane_configs(), duration_s=OPEN_ENDED_S, restart_delay_s=self.restart_delay_s,
                    run_dir=Path(self._tmp) / "run", **self.timeline)
        self.series = [LaneSeries() for _ in plan.lanes]
        self.run = Run(plan, on_event=self.event.emit, on_records=self._on_records)
        self.run.start(wait=False)
        self._health = []
        self.timer.start()
        self.started.emit()
        self.changed.emit()
        self.message.emit("lab starting: one process per lane")

    def toggle_pause(self) -> None:
        if self.run is None:
            self.start()
        elif self.run.paused:
            self.run.resume()
        else:
            self.run.pause()
        self.changed.emit()

    def reset(self) -> None:
        """Throw the run away (labs killed, files removed); the next start is fresh."""
        self.timer.stop()
        if self.run is not None:
            self.run.abort()
            self.run.cleanup()
            self.run = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        self.series = []
        self.changed.emit()

    shutdown = reset

    # -- faults and knobs -----------------------------------------------------------------

    def _need_run(self) -> bool:
        if self.run is None:
            self.message.emit("start the lab first (Space)")
            return False
        return True

    def crash(self) -> None:
        if self._need_run():
            self.run.crash()
            self.changed.emit()

    def outage(self, seconds: float = 5.0) -> None:
        if self._need_run():
            if self.run.outage_on:
                self.message.emit("the database is already down")
                return
            self.run.outage_start(seconds)
            self.run.schedule(self.run.now() + seconds, "outage-end")

    def slow_db(self, ms: float = 20.0) -> None:
        """Toggle injected DB latency."""
        if self._need_run():
            self.run.slow_db(0 if self.run.slow_db_ms else ms)

    def slow_cache(self, ms: float = 20.0) -> None:
        """Toggle injected cache latency."""
        if self._need_run():
            self.run.slow_cache(0 if self.run.slow_cache_ms else ms)

    def stampede(self, readers: int = 50) -> None:
        if self._need_run():
            self.run.stampede(readers)

    def cold(self) -> None:
        if self._need_run():
            self.run.cold()

    def burst(self, kind: str = "write", count: int = 2000) -> None:
        if self._need_run():
            self.run.burst(kind, count)

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
            self.run.set_knob(section, name, value)
        except ConfigError as exc:
            return str(exc)
        return None

    # -- the observer's round -------------------------------------------------------------

    def _on_records(self, lane: int, records: list, found: list) -> None:
        self.series[lane].add_records(records)
        self.records.emit(lane, records)
        if found:
            self.anomalies.emit(lane, found)

    def tick(self) -> None:
        run = self.run
        if run is None:
            return
        run.tick()
        now = run.now()
        added = 0
        for lane, series in zip(run.lanes, self.series):
            t = lane.totals()
            series.set_gauges(t["db_reads"], t["db_writes"], lane.gauges.get("queue_depth", 0))
            a = lane.auditor
            series.set_anomalies(a.counts["stale_read"], a.counts["lost_write"], a.at_risk())
            added += series.close(now)
        if added:
            self.sampled.emit()
        health = [lane.health() for lane in run.lanes]
        if health != self._health:
            self._health = health
            self.changed.emit()

    def lab_health(self) -> list[tuple[str, str]]:
        if self.run is None:
            return [(s, "idle") for s in self.strategies]
        return [(lane.cfg.strategy, lane.health()) for lane in self.run.lanes]
