"""The studio window: flow view, live charts, knobs, anomalies, and a presenter's toolbar.

:class:`MainWindow` puts the parts together (the flow view, the charts, the event strip and
caption, the side panel, the toolbars and menus of the action table, ui/actions.py) and wires
them to a lab session (ui/session.py) or a replay (ui/replay.py); it runs the lab (start,
reset, the faults of the table), takes the knobs, lanes and speed, and keeps the status
line. Its other jobs are parts of their own, each a mixin of this class: the layout and
presentation mode (ui/layout.py), the narration and the lesson (ui/narration.py), the time
machine (ui/timemachine.py) and the files (ui/files.py).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDockWidget,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QTextBrowser,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .. import __version__
from ..engine import scenario as scenarios
from ..engine.faultkinds import BY_NAME as FAULT_KINDS
from ..engine.scenariofile import scenario_toml  # noqa: F401 - File → Save scenario's writer, named here too
from .actions import LANE_CHOICES, PRESENTER_CYCLE, SPEEDS, TOGGLES, key_rows, resolve
from .actions import build as build_actions
from .charts import CHART_NAMES, PERCENTILES, ChartPanel
from .controls import AnomalyPanel, KnobPanel
from .events import CaptionBar, EventStrip, scheduled_events
from .files import FilesMixin, render  # noqa: F401 - render: a window's picture, for its importers
from .flow import FlowView
from .layout import DOCK_PX, PRESENT_CHARTS, PRESENT_MAX, USER_ZOOMS, LayoutMixin, font_px  # noqa: F401
from .narration import SHADE_START, NarrationMixin, first_sentences, short_name  # noqa: F401
from .session import LabSession
from .theme import THEMES
from .timebar import TimeBar
from .timemachine import TimeMachineMixin, fault_beside  # noqa: F401 - fault_beside: compare.py's

STATUS_MS = 250
#: At or below this rate (requests/s per lane) the charts show each request as a mark.
MARKS_AT_RATE = 20.0


def speed_text(rate: float) -> str:
    """A workload rate as the presenter says it (0 is no pacing at all)."""
    if not rate:
        return "full speed (flat out)"
    return f"{rate:,g} operation{'' if rate == 1 else 's'}/s"


def icon_path() -> Path:
    return scenarios.resources_dir() / "icons" / "cachestudio.svg"


class MainWindow(LayoutMixin, NarrationMixin, TimeMachineMixin, FilesMixin, QMainWindow):
    def __init__(self, settings: QSettings | None = None, replay: list | None = None):
        """``replay``: recordings (engine.recording.Recording) to replay instead of a lab."""
        super().__init__()
        self.settings = settings if settings is not None else QSettings("CacheStudio", "CacheStudio")
        self.setWindowTitle("Cache Studio")
        if icon_path().exists():
            self.setWindowIcon(QIcon(str(icon_path())))
        self.replaying = bool(replay)
        if replay:
            from .replay import ReplaySession

            self.session = ReplaySession(replay, self)
        else:
            self.session = LabSession(self)
        self._rebuilding = False  # the views are being rebuilt for a moment of the tape
        self.flow = FlowView()
        self.charts = ChartPanel()
        self.knobs = KnobPanel()
        self.anomaly_panel = AnomalyPanel()
        self._presenter_step = 0
        self.scenario_name = ""  # the opened scenario's, for the status bar

        self._build_central()
        self._build_dock()
        self.panel_choice: bool | None = None  # None: the side panel shows when there is room
        self._rooms_timer = QTimer(self)
        self._rooms_timer.setSingleShot(True)
        self._rooms_timer.setInterval(0)
        self._rooms_timer.timeout.connect(self._fit_rooms)
        self.present = False
        self.chart_page = 0  # when four charts are shown at a time: 0 the chosen four, 1 the others
        self.paged = False
        self.charts_shown: list[int] = []
        self.user_zoom = 1.0
        self.scale = 0.0
        self.percentile = "p99"
        self.present_charts = list(PRESENT_CHARTS)
        self.summary_dialog = None
        self.outcome_dialog = None
        #: Answers to the next file dialogs (ask_open_path, ask_save_path), for the tests.
        self.path_answers: list[str | None] = []
        self.file_error = ""  # the last file the user named that could not be written or read

        self._build_actions()
        self._build_status()
        self._wire()
        self._restore()
        if self.replaying:
            self._replay_chrome()
        self.status_timer = QTimer(self)
        self.status_timer.setInterval(STATUS_MS)
        self.status_timer.timeout.connect(self.refresh_status)
        self.status_timer.start()
        self.charts.timer.start()
        self._lanes_changed()

    def _build_central(self) -> None:
        """The flow view over the caption, the event strip, the charts and the timebar."""
        self.strip = EventStrip()
        self.strip.setObjectName("event-strip")
        self.caption_bar = CaptionBar()
        lower = QWidget()
        col = QVBoxLayout(lower)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(0)
        col.addWidget(self.caption_bar)
        col.addWidget(self.strip)
        col.addWidget(self.charts, 1)
        self.timebar = TimeBar(replay=self.replaying)
        col.addWidget(self.timebar)
        self.lower_half = lower
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.flow)
        split.addWidget(lower)
        split.setStretchFactor(0, 9)
        split.setStretchFactor(1, 11)
        split.setSizes([500, 500])  # proportions: half the height each, until the user drags
        split.setChildrenCollapsible(False)
        self.splitter = split
        self.setCentralWidget(split)

    def _build_dock(self) -> None:
        """The side panel: anomalies, events, knobs and the lesson, in tabs."""
        self.events_list = QTreeWidget()
        self.events_list.setObjectName("events-list")
        self.events_list.setHeaderLabels(["s", "event", "what it did"])
        self.events_list.setRootIsDecorated(False)
        self.events_list.setWordWrap(True)
        self.events_list.currentItemChanged.connect(self._on_event_selected)
        self.event_items: list[tuple[dict, QTreeWidgetItem]] = []  # strip event, its row
        self.event_rows: dict[tuple[str, float], QTreeWidgetItem] = {}  # (kind, start) -> its row
        self.outcome_ids: dict[tuple[str, float], int] = {}  # (kind, start) -> its fault window's id
        tabs = QTabWidget()
        tabs.addTab(self.anomaly_panel, "Anomalies")
        tabs.addTab(self.events_list, "Events")
        tabs.addTab(self.knobs, "Knobs")
        self.lesson_view = QTextBrowser()
        self.lesson_view.setObjectName("lesson")
        self.lesson_view.setOpenExternalLinks(False)
        tabs.addTab(self.lesson_view, "Lesson")
        self.lesson = None  # the opened scenario (its lesson lines), or None
        self.said: set[int] = set()  # indexes of the lesson's say lines already said this run
        self.tabs = tabs
        dock = QDockWidget("Lab", self)
        dock.setObjectName("lab-dock")
        dock.setWidget(tabs)
        dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetClosable
        )
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
        self.resizeDocks([dock], [DOCK_PX], Qt.Orientation.Horizontal)
        self.dock = dock

    # -- actions ------------------------------------------------------------------------

    def _build_actions(self) -> None:
        """The actions of the table (ui/actions.py), with the strategy and speed boxes in
        the presenter's toolbar. The faults have a toolbar of their own, which goes below the
        first when the window is too narrow for both on one row (_fit_toolbars): no button
        is ever hidden behind »."""
        self.acts = build_actions(self)
        self.keys = key_rows()  # (keys, what) for the "?" sheet
        self.theme_actions = {name: self.acts[f"theme-{name}"] for name in THEMES}
        self.percentile_actions = {p: self.acts[f"percentile-{p}"] for p in PERCENTILES}
        self.present_chart_actions = {name: self.acts[f"present-chart-{name}"] for name in CHART_NAMES}
        tb = self.toolbar
        self.lane_combo = QComboBox()
        self.lane_combo.setObjectName("strategy")
        self.lane_combo.addItems([name for name, _ in LANE_CHOICES])
        self.lane_combo.setToolTip("Strategy: one, or all three side by side on the same seeded workload")
        self.lane_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)  # never cut
        self.lane_combo_action = tb.insertWidget(self.act_start, self.lane_combo)
        self.speed_combo = QComboBox()
        self.speed_combo.setObjectName("speed")
        self.speed_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)  # "Scenario: …" fits
        for name, rate in SPEEDS:
            self.speed_combo.addItem(name, rate)
        self.speed_combo.setToolTip("Speed: requests per second for each lane (keys 1–5)")
        self.speed_combo_action = tb.insertWidget(self.act_step, self.speed_combo)

    def run_action(self, act) -> None:
        """An action of the table, triggered (its menu entry, its button or its keys): its
        handler with its own arguments, never Qt's ``checked``. A key press ends the caption
        (the next event makes its own)."""
        self._key_pressed()
        resolve(self, act.handler)(*act.args)

    def fire_fault(self, name: str, variant: int | None = None) -> None:
        """A fault now, with the values of its window action (engine.faultkinds)."""
        kind = FAULT_KINDS[name]
        values = kind.live_values(None if variant is None else kind.variants[variant])
        getattr(self.session, kind.command)(**values)
        if kind.toggles:
            self._sync_toggles()  # undo the click's own check until the lab says it is on

    def _sync_toggles(self) -> None:
        """A fault the key turns on and off (slow DB, slow cache) looks pressed exactly while
        the run has it on (the run's ``<field>_ms``): a click only asks; the lab's start and
        end events press or release it."""
        run = self.session.run
        for kind in TOGGLES:
            self.acts[kind.name].setChecked(bool(run is not None and getattr(run, f"{kind.field}_ms", 0)))

    def _build_status(self) -> None:
        self.clock = QLabel("idle")
        self.health = QLabel("")
        self.lab_failures: list[str] = []  # this run's lab failures, newest last
        self.statusBar().addPermanentWidget(self.health)
        self.statusBar().addPermanentWidget(self.clock)

    def _wire(self) -> None:
        s = self.session
        s.started.connect(self._lanes_changed)
        s.started.connect(self.lab_failures.clear)
        s.lab_event.connect(self._on_event)
        s.records.connect(self.flow.add_records)
        s.anomalies.connect(lambda lane, found, ids: self.anomaly_panel.add(found, ids))
        s.groups.connect(self.anomaly_panel.set_groups)
        s.outcomes.connect(self._on_outcomes)
        s.records.connect(self._on_records)
        self.strip.picked.connect(self.show_outcome)
        s.sampled.connect(self._on_sampled)
        s.counters.connect(self._on_counters)
        s.rewound.connect(self._rewind)
        self.timebar.scrubbed.connect(self.session.scrub)
        self.timebar.live_asked.connect(self.session.live)
        self.timebar.play_asked.connect(self.session.toggle_pause)
        self.timebar.speed_changed.connect(self._set_replay_speed)
        s.changed.connect(self.refresh_status)
        s.message.connect(lambda text: self.statusBar().showMessage(text, 5000))
        s.ended.connect(self._on_scenario_ended)
        self.knobs.changed.connect(self._on_knob)
        self.anomaly_panel.selected.connect(self._on_anomaly_selected)
        self.lane_combo.currentIndexChanged.connect(self._on_lanes)
        self.speed_combo.currentIndexChanged.connect(self._on_speed)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self._save()
        self.status_timer.stop()
        self.charts.timer.stop()
        self.session.shutdown()
        super().closeEvent(event)

    # -- keys ---------------------------------------------------------------------------------

    def _key_pressed(self) -> None:
        self.caption_bar.clear_caption()

    def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self._key_pressed()  # any key, bound or not, ends the caption
        super().keyPressEvent(event)

    # -- lanes, knobs, speed ------------------------------------------------------------------

    def _lanes_changed(self) -> None:
        lanes = self.session.lane_pairs()
        self.flow.set_lanes(lanes)
        self.anomaly_panel.set_lanes(lanes)
        self.charts.clear_run()
        self.charts.set_lanes(lanes, self.session.series, self.session.node_series)
        self.charts.set_request_marks(self._marks_on())
        self.strip.clear()
        self.strip.set_scheduled(scheduled_events(self.session.timeline, self.session.restart_delay_s))
        self.strip.set_range(*self.charts.x_range(), 0.0)
        self.events_list.clear()
        self.event_items = []
        self.event_rows = {}
        self.outcome_ids = {}
        self.caption_bar.clear_caption()
        self.caption_bar.set_active([])
        self.said = set()  # a new run says its lesson's lines again
        self._show_lesson()
        if self.lesson is not None and self.lesson.watch_for and not self.replaying:
            # what to watch for, until the first fault speaks (the room reads it as it starts)
            self.caption_bar.say("Watch for: " + first_sentences(self.lesson.watch_for))
        for i, cfg in enumerate(self.session.lane_configs()):
            self.flow.set_capacity(i, cfg.write_behind.capacity)
            self.flow.injected_label(i, cfg.latency.label())

    def _on_lanes(self, index: int) -> None:
        if self.replaying:
            return  # a replay's lanes are the recording's
        was_running = self.session.running
        self.session.reset()
        if index < len(LANE_CHOICES):
            self.session.strategies = LANE_CHOICES[index][1]
        else:  # the opened scenario's own (named) lanes
            self.session.specs = list(self.lane_combo.itemData(index))
        self._lanes_changed()
        if was_running:
            self.start()

    def set_speed(self, index: int) -> None:
        """A speed key: select that speed and apply it, even if the box already shows it
        (what the box shows and what the lab runs at must never differ)."""
        if self.speed_combo.currentIndex() == index:
            self._on_speed(index)
        else:
            self.speed_combo.setCurrentIndex(index)  # applied by _on_speed

    def _on_speed(self, index: int) -> None:
        if self.replaying:
            return  # a replay's speed is the timeline's ([ and ])
        rate = self.speed_combo.itemData(index)
        if rate is None:
            return
        error = self.session.set_knob("workload", "rate", float(rate))
        self.knobs.load(self.session.base)
        if error:
            self.statusBar().showMessage(error, 5000)
        elif not self.session.running:  # a running lab says it with its own event
            self.statusBar().showMessage(f"speed: {speed_text(float(rate))}", 5000)
        self._show_speed(self.session.base.workload.rate)
        self.charts.set_request_marks(self._marks_on())

    def _marks_on(self) -> bool:
        """Slow motion: the charts show each request, not rates (DESIGN: measured, each one)."""
        rate = self.session.base.workload.rate
        return 0 < rate <= MARKS_AT_RATE

    def _show_speed(self, rate: float) -> None:
        """Show the rate in force in the speed box, without applying anything: the
        matching speed, else an item "Scenario: 2/s" (the one extra item, replaced)."""
        combo = self.speed_combo
        combo.blockSignals(True)
        try:
            while combo.count() > len(SPEEDS):
                combo.removeItem(combo.count() - 1)
            match = next((i for i, (_, r) in enumerate(SPEEDS) if r == rate), None)
            if match is None:
                text = "full speed" if not rate else f"{rate:,g}/s"
                combo.addItem(f"Scenario: {text}", float(rate))
                match = combo.count() - 1
            combo.setCurrentIndex(match)
        finally:
            combo.blockSignals(False)

    def _on_knob(self, section: str, name: str, value) -> None:
        error = self.session.set_knob(section, name, value)
        if error:
            self.statusBar().showMessage(error, 8000)
            self.knobs.load(self.session.base)  # show what is really in force
        elif (section, name) == ("workload", "rate"):
            self._show_speed(self.session.base.workload.rate)
            self.charts.set_request_marks(self._marks_on())
        elif section == "latency":
            for i, cfg in enumerate(self.session.lane_configs()):
                self.flow.injected_label(i, cfg.latency.label())
        elif (section, name) == ("write_behind", "capacity"):
            for i in range(len(self.session.strategies)):
                self.flow.set_capacity(i, value)

    # -- run control -------------------------------------------------------------------------

    def start(self) -> None:
        self.session.start()  # the session's `started` signal rebinds the views

    def reset(self) -> None:
        self.session.reset()
        self._lanes_changed()
        self.statusBar().showMessage("reset: press Space to start a fresh lab", 5000)

    def restart(self) -> None:
        """One key: a fresh lab started at once (an opened scenario runs again from 0 s)."""
        self.session.reset()
        self._lanes_changed()
        self.start()

    def presenter_next(self) -> None:
        if not self.session.running:
            self.start()
            return
        name = PRESENTER_CYCLE[self._presenter_step % len(PRESENTER_CYCLE)]
        self._presenter_step += 1
        self.fire_fault(name)

    # -- from the lab ----------------------------------------------------------------------

    def _on_records(self, lane: int, records: list, _counts) -> None:
        if self._marks_on():  # at these rates the observer sends every record
            self.charts.add_requests(lane, records)

    def _refresh_injected(self) -> None:
        """Each lane's injected latency, as the running lab has it, on the flow view."""
        self._sync_toggles()
        run = self.session.view
        if run is not None:
            for i, lane in enumerate(run.lanes):
                self.flow.injected_label(i, lane.cfg.latency.label())

    def _on_sampled(self) -> None:
        run = self.session.view
        if run is None:
            return
        if self.session.cursor_t is not None:
            self.charts.set_cursor(self.session.cursor_t)
        self.charts.touch(run.now())
        self.strip.set_range(*self.charts.x_range(), run.now())
        self._on_counters()

    def _on_counters(self) -> None:
        """The lanes' counters and gauges, as the view's run has them."""
        run = self.session.view
        if run is None:
            return
        self.anomaly_panel.update_counts(
            [lane.auditor.counts for lane in run.lanes], [lane.auditor.at_risk() for lane in run.lanes]
        )
        for i, lane in enumerate(run.lanes):
            g = dict(lane.gauges)
            g.update(lane.totals())
            self.flow.set_gauges(i, g)

    def _on_anomaly_selected(self, anomaly) -> None:
        if anomaly is None:
            self.flow.highlight(-1, "")
            self.charts.mark(None)
            return
        lane = self.session.strategies.index(anomaly.lane) if anomaly.lane in self.session.strategies else -1
        self.flow.highlight(lane, anomaly.key)
        self.charts.mark(anomaly.at)

    def refresh_status(self) -> None:
        s = self.session
        if not s.running:
            self.clock.setText("idle — press Space to start")
            self.act_start.setText("Start")
        else:
            state = "ended" if s.scenario_ended and s.paused else "paused" if s.paused else "running"
            if self.replaying:
                state = "playing" if not s.paused else "at the end" if s.now() >= s.live_end else "paused"
                self.clock.setText(f"replay · {state} · {s.now():.1f} of {s.live_end:.1f} s")
            elif s.view_t is not None:
                self.clock.setText(f"showing {s.view_t:.1f} s · {state} · now {s.live_end:.1f} s (End: live)")
            else:
                self.clock.setText(f"{state} · {s.now():7.1f} s")
            self.act_start.setText(("Play" if self.replaying else "Resume") if s.paused else "Pause")
        self._show_time()
        health = s.lab_health()
        text = (
            "all lanes running"
            if health and all(h == "running" for _, h in health)
            else "   ".join(f"{short_name(name)}: {h}" for name, h in health)
        )
        if self.lab_failures:
            text += f"   ⚠ {len(self.lab_failures)} lab failure{'s' if len(self.lab_failures) > 1 else ''}"
        self.health.setText(text)
        self.health.setToolTip("\n".join(self.lab_failures[-20:]))
        if s.running and s.view_t is None and all(h == "running" for _, h in health):
            self.charts.fault_end("crash", s.now())  # the node is back: the crash window closes
        for i, (_, h) in enumerate(health):
            self.flow.set_health(i, h)
        self._sync_toggles()
        active = self.active_faults()
        if self.present:  # no status bar, no run toolbar: the clock goes with the active faults
            active.append(self.clock.text().replace(" — press Space to start", ""))
        self.caption_bar.set_active(active)

    def _choose_lanes(self, sc) -> None:
        """The lane choice that is the scenario's: one of the usual, or its own named lanes
        (an entry of the list for as long as the scenario is open)."""
        combo = self.lane_combo
        combo.blockSignals(True)
        try:
            while combo.count() > len(LANE_CHOICES):
                combo.removeItem(combo.count() - 1)
            plain = [spec.strategy for spec in sc.specs]
            index = next((i for i, (_, lanes) in enumerate(LANE_CHOICES) if lanes == plain), None)
            if index is None or any(spec.name or spec.overrides for spec in sc.specs):
                combo.addItem(
                    f"{sc.name}: " + " | ".join(spec.name or spec.strategy for spec in sc.specs), list(sc.specs)
                )
                index = combo.count() - 1
            combo.setCurrentIndex(index)
        finally:
            combo.blockSignals(False)

    # -- help ---------------------------------------------------------------------------------

    def show_keys(self) -> None:
        """The keys sheet: one dialog (raised if it is open already), closed by Close or Esc."""
        dlg = getattr(self, "keys_dialog", None)
        if dlg is None:
            dlg = QDialog(self)
            dlg.setObjectName("keys-dialog")
            dlg.setWindowTitle("Keys")
            layout = QVBoxLayout(dlg)
            table = QTableWidget(len(self.keys), 2)
            table.setHorizontalHeaderLabels(["key", "what it does"])
            table.verticalHeader().hide()  # no row numbers
            for row, (key, what) in enumerate(self.keys):
                table.setItem(row, 0, QTableWidgetItem(key))
                table.setItem(row, 1, QTableWidgetItem(what))
            table.resizeColumnsToContents()
            table.horizontalHeader().setStretchLastSection(True)
            table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
            layout.addWidget(table)
            buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
            buttons.rejected.connect(dlg.reject)  # Close, and Esc (QDialog's reject)
            layout.addWidget(buttons)
            rows_h = table.horizontalHeader().sizeHint().height() + sum(
                table.rowHeight(r) for r in range(table.rowCount())
            )
            dlg.resize(620, min(900, rows_h + buttons.sizeHint().height() + 40))  # every row, if it fits
            self.keys_dialog = dlg
            self.keys_table = table
        dlg.show()
        dlg.raise_()
        dlg.activateWindow()

    def about(self) -> None:
        """A non-modal box (the lab and the window go on behind it)."""
        box = QMessageBox(
            QMessageBox.Icon.Information,
            "About Cache Studio",
            f"Cache Studio {__version__}\n\nCache-aside, write-through and write-behind, "
            "running for real: a diskcache directory as the cache, a SQLite file as the "
            "database. Everything shown is measured; what is injected says so.",
            QMessageBox.StandardButton.Ok,
            self,
        )
        box.setObjectName("about-box")
        box.setModal(False)
        box.show()
        self.about_box = box
