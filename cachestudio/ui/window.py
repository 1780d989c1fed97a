"""The studio window: flow view, live charts, knobs, anomalies, and a presenter's toolbar."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QColor, QFont, QIcon, QKeySequence, QPalette
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QTabWidget,
    QTableWidget,
    QTableWidgetItem,
    QToolBar,
    QVBoxLayout,
)

from .. import __version__
from ..engine import scenario as scenarios
from ..engine.config import STRATEGIES, ConfigError
from ..engine.outputs import OutputError, OutputWriteError, write_output
from .images import png_bytes
from .charts import ChartPanel
from .controls import AnomalyPanel, KnobPanel
from .flow import FlowView
from .session import LabSession
from .theme import THEMES

SPEEDS = [("Slow motion · 2/s", 2.0), ("Walk · 20/s", 20.0), ("Jog · 200/s", 200.0),
          ("Run · 2,000/s", 2000.0), ("Full speed", 0.0)]
LANE_CHOICES = [("All three side by side", list(STRATEGIES))] + [(s, [s]) for s in STRATEGIES]
PRESENTER_CYCLE = ["crash", "outage", "slow_db", "burst", "stampede", "cold"]
OUTAGE_S = 5.0
SLOW_DB_MS = 20.0
SLOW_CACHE_MS = 5.0
STAMPEDE_READERS = 50
BURST_COUNT = 2000
#: event kind -> chart shading it starts / ends (theme.FAULT_SHADE names the shadings)
SHADE_START = {"crash": "crash", "outage-start": "outage", "slow-db-start": "slow-db", "burst": "burst",
               "slow-cache-start": "slow-cache", "stampede": "stampede", "cold-cache": "cold"}
SHADE_END = {"outage-end": "outage", "slow-db-end": "slow-db", "burst-end": "burst", "slow-cache-end": "slow-cache"}
MOMENTS = {"stampede", "cold"}
#: events that say a lab failed (DESIGN.md §6): shown until the next run, not for seconds
FAILURE_KINDS = {"lab-failed", "lab-hung", "lab-died", "lab-refused", "audit"}
STATUS_MS = 250


def speed_text(rate: float) -> str:
    """A workload rate as the presenter says it (0 is no pacing at all)."""
    if not rate:
        return "full speed (flat out)"
    return f"{rate:,g} operation{'' if rate == 1 else 's'}/s"


def icon_path() -> Path:
    return scenarios.resources_dir() / "icons" / "cachestudio.svg"


class MainWindow(QMainWindow):
    def __init__(self, settings: QSettings | None = None):
        super().__init__()
        self.settings = settings if settings is not None else QSettings("CacheStudio", "CacheStudio")
        self.setWindowTitle("Cache Studio")
        if icon_path().exists():
            self.setWindowIcon(QIcon(str(icon_path())))
        self.session = LabSession(self)
        self.flow = FlowView()
        self.charts = ChartPanel()
        self.knobs = KnobPanel()
        self.anomaly_panel = AnomalyPanel()
        self._presenter_step = 0
        self.scenario_name = ""  # the opened scenario's, for the status bar
        self.keys: list[tuple[str, str]] = []  # (key, what) for the "?" sheet

        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.flow)
        split.addWidget(self.charts)
        split.setStretchFactor(0, 9)
        split.setStretchFactor(1, 11)
        split.setSizes([450, 550])  # proportions: the flow view gets 45 % of the height
        self.splitter = split
        self.setCentralWidget(split)

        tabs = QTabWidget()
        tabs.addTab(self.anomaly_panel, "Anomalies")
        tabs.addTab(self.knobs, "Knobs")
        self.tabs = tabs
        dock = QDockWidget("Lab", self)
        dock.setObjectName("lab-dock")
        dock.setWidget(tabs)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
        self.resizeDocks([dock], [440], Qt.Orientation.Horizontal)
        self.dock = dock

        self._build_actions()
        self._build_menus()
        self._build_status()
        self._wire()
        self._restore()
        self.status_timer = QTimer(self)
        self.status_timer.setInterval(STATUS_MS)
        self.status_timer.timeout.connect(self._refresh_status)
        self.status_timer.start()
        self.charts.timer.start()
        self._lanes_changed()

    # -- actions ------------------------------------------------------------------------

    def _action(self, text: str, keys, slot, tip: str = "") -> QAction:
        a = QAction(text, self)
        keys = [keys] if isinstance(keys, str) else keys
        a.setShortcuts([QKeySequence(k) for k in keys])
        a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        a.setToolTip(f"{tip or text} ({' or '.join(keys)})")
        a.triggered.connect(slot)
        self.addAction(a)
        self.keys.append((" / ".join(keys), tip or text))
        return a

    def _build_actions(self) -> None:
        tb = QToolBar("Presenter")
        tb.setObjectName("presenter-toolbar")
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.addToolBar(tb)
        self.toolbar = tb
        self.lane_combo = QComboBox()
        self.lane_combo.setObjectName("strategy")
        self.lane_combo.addItems([name for name, _ in LANE_CHOICES])
        self.lane_combo.setToolTip("Strategy: one, or all three side by side on the same seeded workload")
        tb.addWidget(self.lane_combo)
        self.act_start = self._action("Start", ["Space"], self.session.toggle_pause, "start / pause the clients")
        self.act_reset = self._action("Reset", ["R"], self.reset, "reset: a fresh lab with the current knobs")
        tb.addAction(self.act_start)
        tb.addAction(self.act_reset)
        self.speed_combo = QComboBox()
        self.speed_combo.setObjectName("speed")
        self.speed_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)  # "Scenario: …" fits
        for name, rate in SPEEDS:
            self.speed_combo.addItem(name, rate)
        self.speed_combo.setToolTip("Speed: requests per second for each lane (keys 1–5)")
        tb.addWidget(self.speed_combo)
        for i in range(len(SPEEDS)):
            self._action(SPEEDS[i][0], [str(i + 1)], lambda _=False, i=i: self.set_speed(i),
                         f"speed: {SPEEDS[i][0]}")
        tb.addSeparator()
        self.act_burst = self._action("Write burst", ["B"], lambda: self.session.burst("write", BURST_COUNT),
                                      f"write burst: {BURST_COUNT:,} writes per lane, flat out")
        self.act_read_burst = self._action("Read burst", ["Shift+B"], lambda: self.session.burst("read", BURST_COUNT),
                                           f"read burst: {BURST_COUNT:,} reads per lane, flat out")
        self.act_crash = self._action("Crash cache node", ["C"], self.session.crash,
                                      "crash the cache node: SIGKILL, restart after the delay")
        self.act_outage = self._action("DB outage", ["O"], lambda: self.session.outage(OUTAGE_S),
                                       f"DB outage for {OUTAGE_S:g} s (a real lock on the SQLite file)")
        self.act_slow = self._action("Slow DB", ["S"], self._toggle_slow_db,
                                     f"slow DB: +{SLOW_DB_MS:g} ms per DB call (injected), toggles")
        self.act_slow_cache = self._action("Slow cache", ["L"], self._toggle_slow_cache,
                                           f"slow cache: +{SLOW_CACHE_MS:g} ms per cache call (injected), toggles")
        # Pressed exactly while the run has them on (the observer says so), not on a click:
        # a click only asks; the lab's slow-*-start / -end event presses or releases them.
        for a in (self.act_slow, self.act_slow_cache):
            a.setCheckable(True)
        self.act_cold = self._action("Cold cache", ["F"], self.session.cold, "cold cache: flush every cache")
        self.act_stampede = self._action("Stampede", ["K"], lambda: self.session.stampede(STAMPEDE_READERS),
                                         f"hot-key stampede: k0 expires, {STAMPEDE_READERS} readers at once")
        for a in (self.act_burst, self.act_read_burst, self.act_crash, self.act_outage, self.act_slow,
                  self.act_slow_cache, self.act_cold, self.act_stampede):
            tb.addAction(a)
        tb.addSeparator()
        self.act_heal = self._action("Heal all", ["H", "Esc"], self.session.heal, "kill switch: heal every fault now")
        tb.addAction(self.act_heal)
        self.act_keys = self._action("Keys", ["?", "F1"], self.show_keys, "show every key")
        tb.addAction(self.act_keys)
        # A presenter's clicker sends Page Down / Page Up (and "." for blank screen).
        self._action("Next", ["PgDown"], self.presenter_next, "clicker: start, then the next fault in turn")
        self._action("Heal (clicker)", ["PgUp"], self.session.heal, "clicker: heal every fault")
        self._action("Pause (clicker)", ["."], self.session.toggle_pause, "clicker: pause / resume")

    def _build_menus(self) -> None:
        m = self.menuBar().addMenu("&File")
        for text, keys, slot in (("Open scenario…", "Ctrl+O", self.open_scenario),
                                 ("Save scenario…", "Ctrl+S", self.save_scenario),
                                 ("Export charts as PNG…", "Ctrl+E", lambda: self.export_png("charts")),
                                 ("Export window as PNG…", "Ctrl+Alt+E", lambda: self.export_png("window")),
                                 ("Export chart data as CSV…", "Ctrl+Shift+E", self.export_csv)):
            a = QAction(text, self)
            a.setShortcut(QKeySequence(keys))
            a.triggered.connect(slot)
            m.addAction(a)
        m.addSeparator()
        q = QAction("Quit", self)
        q.setShortcut(QKeySequence.StandardKey.Quit)
        q.triggered.connect(self.close)
        m.addAction(q)
        v = self.menuBar().addMenu("&View")
        group = QActionGroup(self)
        self.theme_actions = {}
        for name in THEMES:
            a = QAction(f"{name.capitalize()} theme", self, checkable=True)
            a.triggered.connect(lambda _=False, n=name: self.set_theme(n))
            group.addAction(a)
            v.addAction(a)
            self.theme_actions[name] = a
        h = self.menuBar().addMenu("&Help")
        h.addAction(self.act_keys)
        about = QAction("About Cache Studio", self)
        about.triggered.connect(self.about)
        h.addAction(about)

    def _toggle_slow_db(self) -> None:
        self.session.slow_db(SLOW_DB_MS)
        self._sync_toggles()  # undo the click's own check until the lab says it is on

    def _toggle_slow_cache(self) -> None:
        self.session.slow_cache(SLOW_CACHE_MS)
        self._sync_toggles()

    def _sync_toggles(self) -> None:
        """Slow DB and Slow cache look pressed exactly while the run has them on."""
        run = self.session.run
        self.act_slow.setChecked(bool(run is not None and run.slow_db_ms))
        self.act_slow_cache.setChecked(bool(run is not None and run.slow_cache_ms))

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
        s.event.connect(self._on_event)
        s.records.connect(self.flow.add_records)
        s.anomalies.connect(lambda lane, found: self.anomaly_panel.add(found))
        s.sampled.connect(self._on_sampled)
        s.changed.connect(self._refresh_status)
        s.message.connect(lambda text: self.statusBar().showMessage(text, 5000))
        s.ended.connect(self._on_scenario_ended)
        self.knobs.changed.connect(self._on_knob)
        self.anomaly_panel.selected.connect(self._on_anomaly_selected)
        self.lane_combo.currentIndexChanged.connect(self._on_lanes)
        self.speed_combo.currentIndexChanged.connect(self._on_speed)

    # -- settings -----------------------------------------------------------------------

    def _restore(self) -> None:
        st = self.settings
        geometry = st.value("geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        else:
            self.resize(1600, 1000)
        state = st.value("state")
        if isinstance(state, QByteArray):
            self.restoreState(state)
        split = st.value("splitter")
        if isinstance(split, QByteArray):
            self.splitter.restoreState(split)
        self.set_theme(str(st.value("theme", "light")) if st.value("theme", "light") in THEMES else "light")
        lanes = int(st.value("lanes", 0) or 0)
        speed = int(st.value("speed", 3) or 0)
        self.lane_combo.setCurrentIndex(lanes if 0 <= lanes < len(LANE_CHOICES) else 0)
        self.speed_combo.blockSignals(True)  # applied just below, quietly
        self.speed_combo.setCurrentIndex(speed if 0 <= speed < len(SPEEDS) else 3)
        self.speed_combo.blockSignals(False)
        self.session.base = self.session.base.with_knob("workload", "rate", self.speed_combo.currentData())
        self.session.strategies = LANE_CHOICES[self.lane_combo.currentIndex()][1]
        self.knobs.load(self.session.base)

    def _save(self) -> None:
        st = self.settings
        st.setValue("geometry", self.saveGeometry())
        st.setValue("state", self.saveState())
        st.setValue("splitter", self.splitter.saveState())
        st.setValue("theme", self.theme.name)
        st.setValue("lanes", self.lane_combo.currentIndex())
        st.setValue("speed", self.speed_combo.currentIndex())
        st.sync()

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self._save()
        self.status_timer.stop()
        self.charts.timer.stop()
        self.session.shutdown()
        super().closeEvent(event)

    # -- themes -------------------------------------------------------------------------

    def set_theme(self, name: str) -> None:
        self.theme = THEMES[name]
        t = self.theme
        app = QApplication.instance()
        pal = QPalette()
        pal.setColor(QPalette.ColorRole.Window, QColor(t.window))
        pal.setColor(QPalette.ColorRole.Base, QColor(t.panel))
        pal.setColor(QPalette.ColorRole.AlternateBase, QColor(t.window))
        pal.setColor(QPalette.ColorRole.Text, QColor(t.text))
        pal.setColor(QPalette.ColorRole.WindowText, QColor(t.text))
        pal.setColor(QPalette.ColorRole.Button, QColor(t.window))
        pal.setColor(QPalette.ColorRole.ButtonText, QColor(t.text))
        pal.setColor(QPalette.ColorRole.ToolTipBase, QColor(t.panel))
        pal.setColor(QPalette.ColorRole.ToolTipText, QColor(t.text))
        if app is not None:
            app.setPalette(pal)
            font = QFont(app.font())
            base = getattr(self, "_base_point_size", None) or font.pointSizeF() or 10.0
            self._base_point_size = base
            font.setPointSizeF(base * t.font_scale)
            app.setFont(font)
        self.flow.set_theme(t)
        self.charts.set_theme(t)
        if name in getattr(self, "theme_actions", {}):
            self.theme_actions[name].setChecked(True)

    # -- lanes, knobs, speed ------------------------------------------------------------------

    def _lanes_changed(self) -> None:
        strategies = self.session.strategies
        self.flow.set_lanes(strategies)
        self.anomaly_panel.set_lanes(strategies)
        self.charts.clear_run()
        self.charts.set_lanes(strategies, self.session.series)
        for i, cfg in enumerate(self.session.lane_configs()):
            self.flow.set_capacity(i, cfg.write_behind.capacity)
            self.flow.injected_label(i, cfg.latency.label())

    def _on_lanes(self, index: int) -> None:
        was_running = self.session.running
        self.session.reset()
        self.session.strategies = LANE_CHOICES[index][1]
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

    def presenter_next(self) -> None:
        if not self.session.running:
            self.start()
            return
        step = PRESENTER_CYCLE[self._presenter_step % len(PRESENTER_CYCLE)]
        self._presenter_step += 1
        {"crash": self.session.crash, "outage": lambda: self.session.outage(OUTAGE_S),
         "slow_db": lambda: self.session.slow_db(SLOW_DB_MS),
         "burst": lambda: self.session.burst("write", BURST_COUNT), "cold": self.session.cold,
         "stampede": lambda: self.session.stampede(STAMPEDE_READERS)}[step]()

    # -- from the lab ----------------------------------------------------------------------

    def _on_event(self, ev: dict) -> None:
        kind, t = ev["kind"], ev["start"]
        if kind in SHADE_START:
            shade = SHADE_START[kind]
            label = {"crash": "crash (SIGKILL)", "burst": ev["detail"].split(" of ")[0],
                     "outage": "DB outage" + (" (reads injected)" if ev.get("injected") else "")}.get(shade)
            end = t + 0.25 if shade in MOMENTS else None  # a moment, not a window
            # A burst while one is still shaded joins its band: the engine queues bursts
            # and says "burst-end" once, when no lab has any burst left.
            self.charts.fault(shade, t, end, label, merge=shade == "burst")
        elif kind in SHADE_END:
            self.charts.fault_end(SHADE_END[kind], t)  # closes every open band of that kind
        if kind in ("slow-db-start", "slow-db-end", "slow-cache-start", "slow-cache-end", "heal"):
            self._refresh_injected()
        if kind == "pause" and self.session.scenario_ended:
            self._on_scenario_ended(self.session.duration_s)  # the pause it made says why
        elif kind in FAILURE_KINDS:  # a lab failed: said until the next reset, not for 6 s
            self.lab_failures.append(f"{t:.2f} s  {ev['detail']}")
            self.statusBar().showMessage(f"lab failure at {t:.2f} s: {ev['detail']}")
            self._refresh_status()
        elif kind not in ("config",):
            injected = " [injected]" if ev.get("injected") else ""
            detail = ev["detail"]
            # a speed change says so itself ("speed: 2 operations/s"), not as a knob
            what = detail if kind == "knob" and detail.startswith("speed:") else f"{kind}: {detail}"
            self.statusBar().showMessage(f"{t:.2f} s  {what}{injected}", 6000)

    def _on_scenario_ended(self, duration_s: float) -> None:
        name = self.scenario_name or "the scenario"
        self.statusBar().showMessage(f"scenario {name} ended at {duration_s:g} s — R then Space runs it again; Space alone goes on")
        self._refresh_status()

    def _refresh_injected(self) -> None:
        """Each lane's injected latency, as the running lab has it, on the flow view."""
        self._sync_toggles()
        run = self.session.run
        if run is not None:
            for i, lane in enumerate(run.lanes):
                self.flow.injected_label(i, lane.cfg.latency.label())

    def _on_sampled(self) -> None:
        run = self.session.run
        if run is None:
            return
        self.charts.touch(run.now())
        self.anomaly_panel.update_counts([lane.auditor.counts for lane in run.lanes],
                                         [lane.auditor.at_risk() for lane in run.lanes])
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

    def _refresh_status(self) -> None:
        s = self.session
        if not s.running:
            self.clock.setText("idle — press Space to start")
            self.act_start.setText("Start")
        else:
            state = "ended" if s.scenario_ended and s.paused else "paused" if s.paused else "running"
            self.clock.setText(f"{state} · {s.now():7.1f} s")
            self.act_start.setText("Resume" if s.paused else "Pause")
        health = s.lab_health()
        text = "   ".join(f"{name}: {h}" for name, h in health)
        if self.lab_failures:
            text += f"   ⚠ {len(self.lab_failures)} lab failure{'s' if len(self.lab_failures) > 1 else ''}"
        self.health.setText(text)
        self.health.setToolTip("\n".join(self.lab_failures[-20:]))
        if s.running and all(h == "running" for _, h in health):
            self.charts.fault_end("crash", s.now())  # the node is back: the crash window closes
        for i, (_, h) in enumerate(health):
            self.flow.set_health(i, h)
        self._sync_toggles()

    # -- files ------------------------------------------------------------------------------

    def load_scenario(self, path: Path) -> bool:
        try:
            sc = scenarios.load(Path(path))
        except ConfigError as exc:
            self.statusBar().showMessage(str(exc), 15000)
            if self.isVisible():  # non-modal: the lab and the window go on
                self.scenario_error = QMessageBox(QMessageBox.Icon.Warning, "Scenario not loaded", str(exc),
                                                  QMessageBox.StandardButton.Ok, self)
                self.scenario_error.setModal(False)
                self.scenario_error.show()
            return False
        self.session.reset()
        self.session.configure(sc.lanes[0], [c.strategy for c in sc.lanes], sc.timeline,
                               sc.restart_delay_s, duration_s=sc.duration_s)
        self.scenario_name = sc.name
        self.knobs.load(self.session.base)
        strategies = [c.strategy for c in sc.lanes]
        index = next(i for i, (_, lanes) in enumerate(LANE_CHOICES) if lanes == strategies)
        self.lane_combo.blockSignals(True)
        self.lane_combo.setCurrentIndex(index)
        self.lane_combo.blockSignals(False)
        self._show_speed(self.session.base.workload.rate)  # the scenario's rate, as it runs
        self._lanes_changed()
        self.setWindowTitle(f"Cache Studio — {sc.name}")
        self.statusBar().showMessage(f"scenario {sc.name}: {sc.title}", 8000)
        return True

    def open_scenario(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open scenario", str(scenarios.builtin_dir()),
                                              "Scenarios (*.toml)")
        if path:
            self.load_scenario(Path(path))

    def save_scenario(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save scenario", "scenario.toml", "Scenarios (*.toml)")
        if path:
            Path(path).write_text(scenario_toml(self.session), encoding="utf-8")
            self.statusBar().showMessage(f"saved {path}", 5000)

    def export_png(self, part: str = "charts", path: str | Path | None = None) -> bool:
        """Save the charts (or the whole window) as PNG; the status bar names the file.
        Written through engine.outputs: an existing symlink or device is never replaced."""
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, f"Export {part} as PNG", f"{part}.png", "PNG (*.png)")
            if not path:
                return False
        self.charts.redraw_all()
        widget = self if part == "window" else self.charts
        try:
            data = png_bytes(widget.grab())
            write_output(path, "export", data)
        except (OutputError, OutputWriteError, OSError, RuntimeError) as exc:
            self.statusBar().showMessage(f"export failed: {exc}", 15000)
            return False
        what = "the window" if part == "window" else "the charts"
        self.statusBar().showMessage(f"exported {what} to {path}", 10000)
        return True

    def export_csv(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export chart data", "charts.csv", "CSV (*.csv)")
        if path:
            rows = self.charts.export_csv(Path(path))
            self.statusBar().showMessage(f"{rows:,} rows written to {path}", 5000)

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
                table.rowHeight(r) for r in range(table.rowCount()))
            dlg.resize(620, min(900, rows_h + buttons.sizeHint().height() + 40))  # every row, if it fits
            self.keys_dialog = dlg
            self.keys_table = table
        dlg.show()
        dlg.raise_()
        dlg.activateWindow()

    def about(self) -> None:
        QMessageBox.about(self, "About Cache Studio",
                          f"Cache Studio {__version__}\n\nCache-aside, write-through and write-behind, "
                          "running for real: a diskcache directory as the cache, a SQLite file as the "
                          "database. Everything shown is measured; what is injected says so.")


def scenario_toml(session: LabSession) -> str:
    """The session's configuration as a scenario file (see engine/scenario.py)."""
    from dataclasses import asdict

    from ..engine.scenario import timeline_toml

    cfg = session.base
    lines = ['name = "saved"', 'title = "Saved from the studio window"', f"seed = {cfg.seed}",
             "duration = 60", f'strategy = "{"all" if len(session.strategies) == 3 else session.strategies[0]}"', ""]
    for section in ("workload", "cache", "store", "write_behind", "latency"):
        lines.append(f"[{section}]")
        for key, value in asdict(getattr(cfg, section)).items():
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, str):
                text = f'"{value}"'
            else:
                text = repr(value)
            lines.append(f"{key} = {text}")
        lines.append("")
    lines += timeline_toml(session.timeline)
    return "\n".join(lines)
