"""The studio window: flow view, live charts, knobs, anomalies, and a presenter's toolbar."""

from __future__ import annotations

import html
import re
import tempfile
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QByteArray, QRectF, QSettings, Qt, QTimer
from PySide6.QtGui import (
    QColor,
    QFont,
    QIcon,
    QPalette,
    QPixmap,
)
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
from ..engine.config import STRATEGIES, ConfigError
from ..engine.faultkinds import BY_NAME as FAULT_KINDS, FAULTS
from ..engine.outputs import OutputError, OutputWriteError, write_output
from ..engine.scenariofile import scenario_toml
from .actions import CHART_TITLES, SPEEDS, build as build_actions, key_rows, resolve
from .charts import CHART_NAMES, MIN_CHART_H, PERCENTILES, WINDOW_S as CHART_WINDOW_S, ChartPanel
from .controls import AnomalyPanel, KnobPanel
from .events import (
    FAILURES,
    FAULT_EVENTS,
    CaptionBar,
    EventStrip,
    event_label,
    scheduled_events,
)
from .flow import FlowView
from .images import png_bytes
from .session import LabSession
from .timebar import TimeBar
from .theme import THEMES, lane_style

#: The duration of a scenario saved with none open (a free run has no end of its own).
SAVED_DURATION_S = 60.0
LANE_CHOICES = [("All three side by side", list(STRATEGIES))] + [(s, [s]) for s in STRATEGIES]
#: PgDown (a presenter's clicker): start, then each fault with a window action in turn.
PRESENTER_CYCLE = tuple(k.name for k in FAULTS if k.action)
#: The faults whose window action turns them on and off (their buttons look pressed while on).
TOGGLES = tuple(k for k in FAULTS if k.toggles)
#: event kind -> chart shading it starts / ends: events.FAULT_EVENTS is the one table
SHADE_START = {kind: shade for kind, (shade, _) in FAULT_EVENTS.items()}
SHADE_END = {end: shade for shade, end in FAULT_EVENTS.values() if end}
MOMENTS = {"stampede", "cold"}
#: events that say a lab failed (DESIGN.md §6): shown until the next run, not for seconds
FAILURE_KINDS = FAILURES
STATUS_MS = 250
#: The window's scale: the theme's font scale × this zoom × the user's zoom (Ctrl+= / Ctrl+-).
#: The zoom grows with the window beyond 1920x1080 logical pixels (a 4K screen at device
#: pixel ratio 1 reads as 1920x1080 at ratio 2 does), and never shrinks below 1.
BASE_W, BASE_H = 1920, 1080
MAX_AUTO_ZOOM = 3.0
USER_ZOOMS = (0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 1.75, 2.0)
#: The smallest text of the window at scale 1, in logical pixels (the projector theme's
#: 1.35 makes it 14 px: readable from the back of a room on a 1280x720 projector).
SMALL_TEXT_PX = 10.5
#: The side panel shows by itself when the central area keeps this many pixels (× scale).
CENTRAL_MIN_PX = 1080
DOCK_PX = 440
#: Charts of the presentation mode (ChartPanel's CHART_NAMES); at most four.
PRESENT_CHARTS = ("read", "throughput", "hit", "anomalies")
PRESENT_MAX = 4
#: At or below this rate (requests/s per lane) the charts show each request as a mark.
MARKS_AT_RATE = 20.0
#: The event that starts each kind of scenario fault (a lesson's say lines are matched to it).
LESSON_KINDS = {k.start_event: k.name for k in FAULTS}
LESSON_MATCH_S = 0.5  # a fault fires within this of its time in the scenario


def render(widget, ratio: float = 1.0) -> QPixmap:
    """The widget as it is on screen, at ``ratio`` × its size (2: for print and retina)."""
    if ratio == 1:
        return widget.grab()
    pix = QPixmap(round(widget.width() * ratio), round(widget.height() * ratio))
    pix.setDevicePixelRatio(ratio)
    pix.fill(widget.palette().window().color())
    widget.render(pix)  # drawn at the pixmap's ratio: text and lines at twice the resolution
    return pix


def font_px(font) -> float:
    """A font's pixel height as drawn (point sizes converted at the screen's resolution)."""
    from PySide6.QtGui import QFontInfo

    return float(QFontInfo(font).pixelSize())


def first_sentences(text: str, limit: int = 180) -> str:
    """As many whole sentences of ``text`` as fit in ``limit`` characters (at least one,
    cut with "…" if it alone is longer); whitespace collapsed."""
    words = " ".join(text.split())
    out = ""
    for sentence in re.split(r"(?<=[.!?])\s+", words):
        if out and len(out) + 1 + len(sentence) > limit:
            break
        out = f"{out} {sentence}".strip()
    return out if len(out) <= limit else out[:limit - 1].rstrip() + "…"


def short_name(lane: str) -> str:
    return lane_style(lane)[2]


def fault_rows(windows: list[dict], names: list[str]) -> list[list[str]]:
    """Header and rows of the "what each fault did" table (the command line's cells)."""
    from ..engine.outcomes import fault_table

    return fault_table(windows, names) if windows else []


def fault_beside(events: list[dict], at: float, direction: int) -> float | None:
    """When the fault before (``direction`` < 0) or after lab time ``at`` began; None if none."""
    starts = sorted({e["start"] for e in events if e["kind"] in SHADE_START})
    if direction < 0:
        earlier = [t for t in starts if t < at - 0.05]
        return max(0.0, earlier[-1]) if earlier else None
    later = [t for t in starts if t > at + 0.05]
    return later[0] if later else None


def speed_text(rate: float) -> str:
    """A workload rate as the presenter says it (0 is no pacing at all)."""
    if not rate:
        return "full speed (flat out)"
    return f"{rate:,g} operation{'' if rate == 1 else 's'}/s"


def icon_path() -> Path:
    return scenarios.resources_dir() / "icons" / "cachestudio.svg"


class MainWindow(QMainWindow):
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
        self.lower = lower
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.flow)
        split.addWidget(lower)
        split.setStretchFactor(0, 9)
        split.setStretchFactor(1, 11)
        split.setSizes([500, 500])  # proportions: half the height each, until the user drags
        split.setChildrenCollapsible(False)
        self.splitter = split
        self.setCentralWidget(split)

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
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
        self.resizeDocks([dock], [DOCK_PX], Qt.Orientation.Horizontal)
        self.dock = dock
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
        self.status_timer.timeout.connect(self._refresh_status)
        self.status_timer.start()
        self.charts.timer.start()
        self._lanes_changed()

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
        s.event.connect(self._on_event)
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
        self._fit_screen()
        state = st.value("state")
        if isinstance(state, QByteArray):
            self.restoreState(state)
        split = st.value("splitter")
        if isinstance(split, QByteArray):
            self.splitter.restoreState(split)
        self.set_theme(str(st.value("theme", "light")) if st.value("theme", "light") in THEMES else "light")
        lanes = int(st.value("lanes", 0) or 0)
        speed = int(st.value("speed", 3) or 0)
        self.lane_combo.setCurrentIndex(lanes if 0 <= lanes < len(LANE_CHOICES) else 0)  # not a scenario's
        self.speed_combo.blockSignals(True)  # applied just below, quietly
        self.speed_combo.setCurrentIndex(speed if 0 <= speed < len(SPEEDS) else 3)
        self.speed_combo.blockSignals(False)
        if not self.replaying:  # a replay's lanes and knobs are the recording's
            self.session.base = self.session.base.with_knob("workload", "rate", self.speed_combo.currentData())
            self.session.strategies = LANE_CHOICES[self.lane_combo.currentIndex()][1]
        self.knobs.load(self.session.base)
        p = str(st.value("percentile", "p99"))
        self.set_percentile(p if p in PERCENTILES else "p99")
        self.set_node_lines(str(st.value("node_lines", "false")).lower() == "true")
        chosen = [c for c in str(st.value("present_charts", ",".join(PRESENT_CHARTS))).split(",") if c in CHART_NAMES]
        self.present_charts = chosen[:PRESENT_MAX] or list(PRESENT_CHARTS)
        for name, a in self.present_chart_actions.items():
            a.setChecked(name in self.present_charts)
        try:
            zoom = float(st.value("zoom", 1.0))
        except (TypeError, ValueError):
            zoom = 1.0
        self.user_zoom = min(USER_ZOOMS, key=lambda z: abs(z - zoom))
        panel = st.value("panel", "auto")
        self.panel_choice = None if panel not in ("shown", "hidden") else panel == "shown"
        self._apply_scale()

    def _fit_screen(self) -> None:
        """Never larger than the screen it opens on (a first start on a 1280x720 projector,
        or a saved size from a bigger screen): at most its available area."""
        screen = self.screen() or QApplication.primaryScreen()
        if screen is None:
            return
        area = screen.availableGeometry()
        if self.width() > area.width() or self.height() > area.height():
            self.resize(min(self.width(), area.width()), min(self.height(), area.height()))
            self.move(area.topLeft())

    def _save(self) -> None:
        st = self.settings
        if self.present:
            self.set_present(False)  # the normal window's geometry and docks are what is kept
        st.setValue("geometry", self.saveGeometry())
        st.setValue("state", self.saveState())
        st.setValue("splitter", self.splitter.saveState())
        st.setValue("theme", self.theme.name)
        st.setValue("lanes", self.lane_combo.currentIndex())
        st.setValue("speed", self.speed_combo.currentIndex())
        st.setValue("percentile", self.percentile)
        st.setValue("node_lines", "true" if self.charts.node_lines else "false")
        st.setValue("present_charts", ",".join(self.present_charts))
        st.setValue("zoom", self.user_zoom)
        st.setValue("panel", "auto" if self.panel_choice is None else "shown" if self.panel_choice else "hidden")
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
        self.flow.set_theme(t)
        self.charts.set_theme(t)
        self.strip.set_theme(t)
        self.caption_bar.set_theme(t)
        if name in getattr(self, "theme_actions", {}):
            self.theme_actions[name].setChecked(True)
        self.scale = 0.0  # the theme's font scale is part of the window's scale: apply it again
        self._apply_scale()

    # -- scale, layout, presentation ----------------------------------------------------------

    def auto_zoom(self) -> float:
        """1 up to 1920x1080 logical pixels; beyond, as much as the window grew (both ways)."""
        w, h = max(1, self.width()), max(1, self.height())
        return max(1.0, min(MAX_AUTO_ZOOM, w / BASE_W, h / BASE_H))

    def _apply_scale(self) -> None:
        """One factor for every text and line of the window: the theme's × the window's
        size × the user's zoom. The application font, the charts, the event strip, the
        caption and the tables follow it; the flow view fits its scene to its room."""
        theme = getattr(self, "theme", None)
        if theme is None:
            return
        s = round(theme.font_scale * self.auto_zoom() * self.user_zoom, 2)
        if abs(s - self.scale) >= 0.01:
            self.scale = s
            app = QApplication.instance()
            if app is not None:
                font = QFont(app.font())
                # The system's size, kept on the application the first time: the app font is
                # shared, and a second window (tests make many) must not scale a scaled font.
                base = app.property("cachestudio_base_pt")
                if not base:
                    base = font.pointSizeF() if font.pointSizeF() > 0 else 10.0
                    app.setProperty("cachestudio_base_pt", base)
                font.setPointSizeF(float(base) * s)
                app.setFont(font)
                self.setFont(font)
            self.charts.set_scale(s)
            self.flow.set_min_text_px(SMALL_TEXT_PX * s)
            self.strip.set_scale(s)
            self.caption_bar.set_scale(s)
            self.anomaly_panel.fit_table()
            if self.dock.isVisible():  # the side panel's text grew or shrank: so does the panel
                self.resizeDocks([self.dock], [round(DOCK_PX * s)], Qt.Orientation.Horizontal)
        self._fit_toolbars()
        self._fit_panel()
        self._fit_rooms()

    def _fit_rooms(self) -> None:
        """Share the height between the flow view and the charts. The charts never shrink
        below MIN_CHART_H × scale a row: all eight in two rows when they fit beside a flow
        view tall enough for its text (flow.height_for_text), else four at a time (the presentation charts, then the others:
        G flips), and the chart key says so. The presentation mode always shows four."""
        self._fit_toolbars()
        row = (MIN_CHART_H + 20) * self.scale
        key = self.charts._key_height()
        bars = 0
        if self.menuBar().isVisible():
            bars += self.menuBar().sizeHint().height()
        if self.statusBar().isVisible():
            bars += self.statusBar().sizeHint().height()
        heights = [tb.sizeHint().height() for tb in (self.toolbar, self.fault_bar) if tb.isVisible()]
        bars += sum(heights) if self.toolBarBreak(self.fault_bar) else max(heights, default=0)
        avail = self.height() - bars - self.caption_bar.minimumHeight() - self.strip.height()
        flow_min = self.flow.height_for_text(SMALL_TEXT_PX * self.scale) + 2
        paged = self.present or avail - flow_min < 2 * row + key + 8
        # Minimums are what the smallest screen allows (never more: a window cannot be
        # resized below its minimum); the splitter's sizes give each part its share.
        need = round((1 if paged else 2) * row + key + 8)
        self.charts.setMinimumHeight(round(row + key + 8))
        self.flow.setMinimumHeight(120)
        sizes = self.splitter.sizes()
        total = sum(sizes)
        lower_need = need + self.caption_bar.minimumHeight() + self.strip.height()
        if total > 0:
            flow_h = sizes[0]
            if paged:  # one row of charts: the flow view takes the rest
                flow_h = max(120, total - lower_need)
            elif sizes[1] < lower_need or flow_h < flow_min:
                flow_h = max(120, min(total - lower_need, max(flow_h, flow_min)))
            if flow_h != sizes[0]:
                self.splitter.setSizes([flow_h, total - flow_h])
        shown = self._page_indices() if paged else list(range(len(CHART_NAMES)))
        if paged != self.paged or shown != self.charts_shown:
            self.paged, self.charts_shown = paged, shown
            self.charts.show_charts(shown if paged else None)
            self.charts.redraw_all()
        first = "the chosen four" if self.chart_page == 0 else "the other four"
        self.charts.set_page_note(f"{first} of 8 charts · G: the others" if paged else "")

    def _page_indices(self) -> list[int]:
        """Four charts: the presentation charts (page 0) or the others (page 1)."""
        chosen = [CHART_NAMES.index(c) for c in self.present_charts]
        if self.chart_page == 0:
            return chosen
        return [i for i in range(len(CHART_NAMES)) if i not in chosen][:PRESENT_MAX]

    def flip_charts(self) -> None:
        """G: when four charts are shown at a time, the other four (and back)."""
        if not self.paged:
            self.statusBar().showMessage("every chart is shown: G flips them when only four fit "
                                         "(presentation mode, small windows)", 5000)
            return
        self.chart_page = 1 - self.chart_page
        self._fit_rooms()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._apply_scale()
        self._rooms_timer.start()  # again once the layouts have followed the new size

    def _fit_toolbars(self) -> None:
        """The fault toolbar on the first row when both fit, else on a row of its own."""
        need = self.toolbar.sizeHint().width() + self.fault_bar.sizeHint().width() + 8
        broken = self.toolBarBreak(self.fault_bar)
        if need > self.width() and not broken:
            self.insertToolBarBreak(self.fault_bar)
        elif need <= self.width() and broken:
            self.removeToolBarBreak(self.fault_bar)

    def panel_shown(self) -> bool:
        """What the side panel should be: the user's choice, else shown when the central
        area keeps CENTRAL_MIN_PX × scale next to it. Never in presentation mode."""
        if self.present:
            return False
        if self.panel_choice is not None:
            return self.panel_choice
        return self.width() - DOCK_PX * self.scale >= CENTRAL_MIN_PX * self.scale

    def _fit_panel(self) -> None:
        shown = self.panel_shown()
        if self.dock.isHidden() == shown:
            self.dock.setVisible(shown)
            if shown:
                self.resizeDocks([self.dock], [round(DOCK_PX * self.scale)], Qt.Orientation.Horizontal)
        self.act_panel.setChecked(shown)

    def toggle_panel(self) -> None:
        self.panel_choice = not self.panel_shown()
        if self.present and self.panel_choice:
            self.set_present(False)
        self._fit_panel()

    def toggle_present(self) -> None:
        self.set_present(not self.present)

    def set_present(self, on: bool, full_screen: bool = True) -> None:
        """Presentation mode: full screen, no menu, knobs or side panel; the flow view and
        the chosen four charts get the room; the caption and the event strip stay."""
        if on == self.present:
            self.act_present.setChecked(on)
            return
        self.present = on
        self.act_present.setChecked(on)
        if on:
            self._normal_geometry = self.saveGeometry()
            self._normal_split = self.splitter.saveState()
            self.menuBar().hide()
            self.statusBar().hide()
            self.toolbar.hide()  # strategy and speed are set before; keys still work, the caption row says the state
            self.charts.set_compact_key(True)
            self.chart_page = 0
            if full_screen:
                self.showFullScreen()
            self._fit_rooms()
        else:
            self.menuBar().show()
            self.statusBar().show()
            self.toolbar.show()
            self.charts.set_compact_key(False)
            if self.isFullScreen():
                self.showNormal()
            if getattr(self, "_normal_geometry", None) is not None:
                self.restoreGeometry(self._normal_geometry)
                self.splitter.restoreState(self._normal_split)
        self._fit_panel()
        self._fit_toolbars()
        self._fit_rooms()
        self.charts.redraw_all()

    def zoom(self, step: int) -> None:
        """Ctrl+= / Ctrl+- step through USER_ZOOMS; 0 goes back to 1 (the theme's size)."""
        if step == 0:
            self.user_zoom = 1.0
        else:
            i = min(range(len(USER_ZOOMS)), key=lambda k: abs(USER_ZOOMS[k] - self.user_zoom))
            self.user_zoom = USER_ZOOMS[max(0, min(len(USER_ZOOMS) - 1, i + step))]
        self._apply_scale()
        self.statusBar().showMessage(f"text size: {self.user_zoom:.0%} of the theme's (Ctrl+0: 100 %)", 4000)

    def set_percentile(self, p: str) -> None:
        self.percentile = p
        self.charts.set_percentile(p)
        self.percentile_actions[p].setChecked(True)

    def set_node_lines(self, on: bool) -> None:
        self.charts.set_node_lines(on)
        self.act_node_lines.setChecked(self.charts.node_lines)

    def toggle_node_lines(self) -> None:
        on = not self.charts.node_lines
        self.set_node_lines(on)
        if not on:
            text = "charts: lane totals only"
        elif self.charts.has_nodes:
            text = "charts: a thin line per app node under each lane's total"
        else:
            text = "charts: one line per node is on; no lane runs several nodes (Backends and nodes, then R)"
        self.statusBar().showMessage(text, 5000)

    def choose_present_chart(self, name: str) -> None:
        """A chart of the presentation mode chosen or dropped (its menu entry's check)."""
        on = self.present_chart_actions[name].isChecked()
        chosen = [c for c in self.present_charts if c != name]
        if on:
            chosen.append(name)
        if len(chosen) > PRESENT_MAX:
            dropped = chosen.pop(0)
            self.present_chart_actions[dropped].setChecked(False)
            self.statusBar().showMessage(f"presentation mode shows {PRESENT_MAX} charts: "
                                         f"{CHART_TITLES[CHART_NAMES.index(dropped)]} made room", 6000)
        if not chosen:
            chosen = [name]
            self.present_chart_actions[name].setChecked(True)
        self.present_charts = [c for c in CHART_NAMES if c in chosen]
        self._fit_rooms()

    def _key_pressed(self) -> None:
        self.caption_bar.clear_caption()

    def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self._key_pressed()  # any key, bound or not, ends the caption
        super().keyPressEvent(event)

    def layout_report(self) -> dict:
        """Where everything is, in window pixels: for the layout tests and for
        ``cachestudio screenshot`` (layout.json beside the pictures). Rectangles are
        [x, y, width, height]."""
        from PySide6.QtCore import QPointF

        def box(widget, rect) -> list[float]:
            r = rect.translated(widget.mapTo(self, QPointF(0.0, 0.0)))
            return [round(r.x(), 2), round(r.y(), 2), round(r.width(), 2), round(r.height(), 2)]

        self.flow.settle()
        buttons, hidden = [], []
        for tb in (self.toolbar, self.fault_bar):
            if not tb.isVisible():
                continue
            for a in tb.actions():
                if a.isSeparator():
                    continue
                w = tb.widgetForAction(a)
                name = a.text() or (w.objectName() if w is not None else "?")
                if w is None or not w.isVisible():
                    hidden.append(name)
                else:
                    buttons.append([name, box(w, QRectF(w.rect()))])
            # (Qt's » can stay shown, empty, after a row grew; what counts is a button off
            # the row, which the check above finds: a button behind » is not visible.)
        combos = [[c.objectName(), c.width(), c.sizeHint().width()] for c in (self.lane_combo, self.speed_combo)
                  if c.isVisible()]
        flow_px = [px for _, px in self.flow.text_px()]
        return {
            "window": [self.width(), self.height()], "theme": self.theme.name, "present": self.present,
            "scale": self.scale, "flow": box(self.flow, QRectF(self.flow.rect())), "paged": self.paged, "charts_shown": list(self.charts_shown) or
            list(range(len(CHART_NAMES))), "chart_panel": box(self.charts, QRectF(self.charts.rect())),
            "plots": [box(self.charts, r) for r in self.charts.plot_rects()],
            "labels": [[f"chart {n}", box(self.charts, r)] for n, r in self.charts.label_rects()]
            + [[f"strip {i}", box(self.strip, r)] for i, r in enumerate(self.strip.label_rects())],
            "buttons": buttons, "hidden_buttons": hidden, "combos": combos,
            "text_px": {"window": font_px(self.font()), "strip": self.strip.BASE_PX * self.strip.scale,
                        "flow_min": min(flow_px, default=0.0)},
            "floor_px": SMALL_TEXT_PX * self.scale,
        }

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

    def _on_event(self, ev: dict) -> None:
        kind, t = ev["kind"], ev["start"]
        if kind in SHADE_START:
            shade = SHADE_START[kind]
            end = t + 0.25 if shade in MOMENTS else None  # a moment, not a window
            # A burst while one is still shaded joins its band: the engine queues bursts
            # and says "burst-end" once, when no lab has any burst left.
            self.charts.fault(shade, t, end, event_label(ev), merge=shade == "burst")
        elif kind in SHADE_END:
            self.charts.fault_end(SHADE_END[kind], t)  # closes every open band of that kind
        if kind == "stampede-done":
            self._stampede_done(ev)
        if kind == "backends" and ev.get("lane"):  # what the lane talks to: named on its boxes
            names = [ln.name for ln in self.flow.lanes]
            if ev["lane"] in names:
                self.flow.backend_label(names.index(ev["lane"]), ev["detail"])
        say = self._lesson_line(ev)
        shown = self.strip.add(ev)
        if shown is not None:
            self._event_row(shown)
            if say is not None:  # the lesson's line for this fault, said as it fires, then what it did
                if say["say"]:
                    shown["say"] = say["say"]
                self.caption_bar.say(self._caption(shown), shown)
            elif kind in FAULT_EVENTS or kind in FAILURES or kind == "heal":
                self.caption_bar.say(self._caption(shown), shown)
        if kind in ("slow-db-start", "slow-db-end", "slow-cache-start", "slow-cache-end", "heal"):
            self._refresh_injected()
        if self._rebuilding:
            pass  # a moment of the tape shown again: nothing new to say
        elif kind == "pause" and self.session.scenario_ended:
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

    # -- what each event did --------------------------------------------------------------------

    @staticmethod
    def _event_key(kind: str, start: float) -> tuple[str, float]:
        return kind, round(float(start), 3)

    def _outcome_of(self, ev: dict) -> dict | None:
        """The fault window (engine.outcomes) an event of the strip opened, if known yet."""
        run = self.session.view
        if run is None or ev.get("scheduled"):
            return None
        wid = self.outcome_ids.get(self._event_key(ev["kind"], ev["start"]))
        return run.outcomes.get(wid) if wid is not None else None

    def _stampede_done(self, ev: dict) -> None:
        """A lane's stampede finished: its DB reads go with the stampede it belongs to (the
        latest before it), in the caption and the Events tab (the stampede's story is how
        many of its readers reached the database, lane by lane)."""
        m = re.match(r"(.+?): (\d+) readers of (\S+) caused (\d+) DB reads?.*\(protection: ([^)]*)\)",
                     ev.get("detail") or "")
        stampede = next((e for e in reversed(self.strip.events) if e["kind"] == "stampede"
                         and e["start"] <= ev["start"]), None)
        if m is None or stampede is None:
            return
        lane, readers, key, reads, protection = m.groups()
        lane = ev.get("lane") or lane
        stampede.setdefault("done", {})[lane] = (int(readers), key, int(reads), protection)
        if self.caption_bar.caption_event is stampede and self.caption_bar.caption.text():
            self.caption_bar.say(self._caption(stampede), stampede)
        item = self.event_rows.get(self._event_key("stampede", stampede["start"]))
        if item is not None:
            item.setText(2, self._stampede_text(stampede))

    def _stampede_text(self, ev: dict) -> str:
        done = ev.get("done", {})
        if not done:
            return ""
        readers, key, _, _ = next(iter(done.values()))
        order = self.session.strategies
        lanes = sorted(done, key=lambda lane: order.index(lane) if lane in order else len(order))
        parts = [f"{lane} {done[lane][2]:,} DB read{'s' if done[lane][2] != 1 else ''}"
                 + (f" ({done[lane][3]})" if done[lane][3] != "none" else "") for lane in lanes]
        return f"{readers} readers of {key} caused: " + "; ".join(parts)

    def _caption(self, ev: dict) -> str:
        """One line about a fault: what it did (measured) — after the lesson's line, if the
        lesson says one here."""
        text = self._what_it_did(ev)
        say = ev.get("say")
        if not say:
            return text
        head = f"{ev['start']:.1f} s — "
        if text.endswith("measuring what it does…"):
            return head + say
        return head + say + "  →  " + (text[len(head):] if text.startswith(head) else text)

    def _what_it_did(self, ev: dict) -> str:
        if ev["kind"] == "stampede" and ev.get("done"):
            return f"{ev['start']:.1f} s — stampede: {self._stampede_text(ev)}"
        w = self._outcome_of(ev)
        if w is not None and w.get("caption"):
            return w["caption"]
        detail = ev.get("detail") or ""
        if ev["kind"] in FAILURES or ev["kind"] == "heal":
            return f"{ev['start']:.1f} s — {detail}"
        return f"{ev['start']:.1f} s — {ev['label']}: measuring what it does…"

    def _outcome_text(self, w: dict | None) -> str:
        if w is None:
            return ""
        parts = []
        for lane, x in w.get("lanes", {}).items():
            bits = [f"{x['ops']:,} ops"]
            p99 = max((v for v in (x.get("read_p99_ms"), x.get("write_p99_ms")) if v is not None), default=None)
            if p99 is not None:
                bits.append(f"p99 {p99:g} ms")
            for key, word in (("errors", "errors"), ("rejected", "rejected"), ("stale_reads", "stale"),
                              ("lost_writes", "lost")):
                if x.get(key):
                    bits.append(f"{x[key]:,} {word}")
            parts.append(f"{short_name(lane)}: " + ", ".join(bits))
        return "; ".join(parts) + (" (so far)" if w.get("open") else "")

    def _event_row(self, ev: dict) -> None:
        item = QTreeWidgetItem([f"{ev['start']:.1f}", ev["label"], ""])
        item.setToolTip(1, ev.get("detail") or "")
        self.events_list.addTopLevelItem(item)
        self.event_items.append((ev, item))
        self.event_rows[self._event_key(ev["kind"], ev["start"])] = item

    def _on_outcomes(self, windows: list[dict]) -> None:
        """What each fault did, as the observer measures it: the Events tab, the caption
        (if it is about one of these), the open outcome dialog. Indexed: a run may have
        a thousand faults, and a few of them change every update."""
        for w in windows:
            key = self._event_key(w["kind"], w["start"])
            self.outcome_ids[key] = w["id"]
            item = self.event_rows.get(key)
            if item is not None and w["kind"] != "stampede":  # a stampede's row says its DB reads
                item.setText(2, self._outcome_text(w))
                item.setToolTip(2, w.get("caption", ""))
        about = self.caption_bar.caption_event
        if about is not None and self.caption_bar.caption.text():
            self.caption_bar.say(self._caption(about), about)
        dlg = self.outcome_dialog
        if dlg is not None and dlg.isVisible() and getattr(dlg, "event", None) is not None:
            self._fill_outcome(dlg, dlg.event)

    def _on_event_selected(self, current, _previous) -> None:
        ev = next((e for e, item in self.event_items if item is current), None)
        if ev is not None:
            self.charts.mark(ev["start"])

    def _table_dialog(self, name: str) -> QDialog:
        """A non-modal dialog: a sentence over a table, and Close (Esc closes it too)."""
        dlg = QDialog(self)
        dlg.setObjectName(name)
        layout = QVBoxLayout(dlg)
        dlg.text = QLabel("")
        dlg.text.setWordWrap(True)
        layout.addWidget(dlg.text)
        dlg.table = QTableWidget(0, 0)
        dlg.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        layout.addWidget(dlg.table, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(dlg.reject)
        layout.addWidget(buttons)
        dlg.setModal(False)
        return dlg

    def show_outcome(self, ev: dict) -> None:
        """What one event did, lane by lane (the command line's "what each fault did" row)."""
        dlg = self.outcome_dialog
        if dlg is None:
            dlg = self.outcome_dialog = self._table_dialog("outcome-dialog")
        dlg.event = ev
        self._fill_outcome(dlg, ev)
        self.charts.mark(ev["start"])
        for e, item in self.event_items:
            if e is ev:
                self.events_list.setCurrentItem(item)
        dlg.resize(round(640 * self.scale), round(300 * self.scale))
        dlg.show()
        dlg.raise_()

    def _fill_outcome(self, dlg, ev: dict) -> None:
        w = self._outcome_of(ev)
        dlg.setWindowTitle(f"{ev['start']:.1f} s — {ev['label']}")
        if ev.get("scheduled"):
            dlg.text.setText(f"{ev['label']} is scheduled at {ev['start']:.1f} s: it has not happened yet.")
            self._fill_table(dlg.table, [])
            return
        if w is None:
            dlg.text.setText(f"{ev['start']:.1f} s — {ev.get('detail') or ev['label']}\n"
                             "(not a fault window: nothing to measure)" if ev["kind"] not in FAULT_EVENTS
                             else f"{ev['start']:.1f} s — {ev.get('detail') or ev['label']}\n(measuring…)")
            self._fill_table(dlg.table, [])
            return
        dlg.text.setText(w.get("caption") or ev["label"])
        self._fill_table(dlg.table, [w])

    def _fill_table(self, table: QTableWidget, windows: list[dict]) -> None:
        """The command line's "what each fault did" table, one row per fault window."""
        names = list(self.session.strategies)
        rows = fault_rows(windows, names)
        head, body = (rows[0], rows[1:]) if rows else (["during", "window s"] + names, [])
        table.clear()
        table.setColumnCount(len(head))
        table.setRowCount(len(body))
        table.setHorizontalHeaderLabels(head)
        table.verticalHeader().hide()
        for r, row in enumerate(body):
            for c, cell in enumerate(row):
                table.setItem(r, c, QTableWidgetItem(cell))
        table.resizeColumnsToContents()
        table.horizontalHeader().setStretchLastSection(True)

    def _on_records(self, lane: int, records: list, _counts) -> None:
        if self._marks_on():  # at these rates the observer sends every record
            self.charts.add_requests(lane, records)

    def _on_scenario_ended(self, duration_s: float) -> None:
        name = self.scenario_name or "the scenario"
        self.statusBar().showMessage(f"scenario {name} ended at {duration_s:g} s — Shift+R runs it again; "
                                     "Space goes on")
        self.caption_bar.say(f"{duration_s:g} s — {name} ended: Shift+R runs it again, Space goes on")
        self._refresh_status()
        self.show_summary()

    def show_summary(self) -> None:
        """The run's table: what each fault did, lane by lane, and the anomalies counted."""
        dlg = self.summary_dialog
        if dlg is None:
            dlg = self.summary_dialog = self._table_dialog("summary-dialog")
        run = self.session.run
        windows = sorted(run.outcomes.values(), key=lambda w: (w["start"], w["id"])) if run is not None else []
        name = self.scenario_name or "this run"
        counts = []
        if run is not None:
            for lane in run.lanes:
                c = lane.auditor.counts
                found = ", ".join(f"{n:,} {k.replace('_', ' ')}s" for k, n in c.items() if n)
                counts.append(f"{lane.cfg.label}: {found or 'no anomalies'}")
        dlg.setWindowTitle(f"Summary — {name}")
        dlg.text.setText(f"{name} at {self.session.now():.1f} s. What each fault did (operations that began in "
                         "its window):" if windows else f"{name} at {self.session.now():.1f} s: no faults.")
        self._fill_table(dlg.table, windows)
        dlg.text.setText(dlg.text.text() + "\n" + "\n".join(counts))
        dlg.resize(round(760 * self.scale), round(360 * self.scale))
        dlg.show()
        dlg.raise_()

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
        text = "all lanes running" if health and all(h == "running" for _, h in health) else \
            "   ".join(f"{short_name(name)}: {h}" for name, h in health)
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

    def active_faults(self) -> list[str]:
        """What is on now, with how long it has left where that is known."""
        run, now, out = self.session.view, self.session.view_now(), []
        if run is None:
            return out
        open_events = [e for e in self.strip.events if e.get("end_at") is None]
        outage = FAULT_KINDS["outage"]
        if run.outage_on:
            ev = next((e for e in reversed(open_events) if e["kind"] == outage.start_event), None)
            m = re.search(r"for ([0-9.]+) s", ev.get("detail", "")) if ev else None
            left = f" · {max(0.0, ev['start'] + float(m.group(1)) - now):.1f} s left" if m else ""
            out.append(f"{outage.label}{left}")
        for kind in TOGGLES:  # "slow DB +20 ms (injected)"
            ms = getattr(run, f"{kind.field}_ms", 0)
            if ms:
                out.append(kind.label.replace(" (injected)", "") + f" +{ms:g} ms" + (" (injected)" * kind.injected))
        down = [short_name(lane.cfg.label) for lane in run.lanes if lane.health() in ("down", "restarting")]
        if down:
            out.append(f"node down: {', '.join(down)}")
        if any(lane.burst_active() for lane in run.lanes):
            out.append(f"{FAULT_KINDS['burst'].label} under way")
        if run.paused:
            out.append("paused")
        return out

    # -- the lesson ----------------------------------------------------------------------------

    def _lesson_line(self, ev: dict) -> dict | None:
        """The opened lesson's say line for the fault this event starts (once per run); a
        line with ``pause = true`` pauses the run there (live, not when shown again)."""
        sc = self.lesson
        kind = LESSON_KINDS.get(ev["kind"])
        if sc is None or kind is None or ev.get("scheduled"):
            return None
        for i, say in enumerate(sc.says):
            if i not in self.said and say["kind"] == kind and abs(say["at"] - ev["start"]) <= LESSON_MATCH_S:
                if not self._rebuilding:
                    self.said.add(i)
                    if say["pause"] and self.session.run is not None and not self.session.paused:
                        self.session.toggle_pause()
                    self._show_lesson()
                return say
        return None

    def _show_lesson(self) -> None:
        """The Lesson tab: title, what to watch for, what it teaches, the lines in order."""
        sc = self.lesson
        if sc is None:
            self.lesson_view.setHtml("<p>Open a scenario (File → Open scenario…) to see its lesson.</p>")
            return
        esc = html.escape
        parts = [f"<h3>{esc(sc.title or sc.name)}</h3>"]
        if sc.description:
            parts.append(f"<p>{esc(sc.description)}</p>")
        if sc.watch_for:
            parts.append(f"<p><b>Watch for:</b> {esc(sc.watch_for)}</p>")
        if sc.you_will_learn:
            parts.append(f"<p><b>You will learn:</b> {esc(sc.you_will_learn)}</p>")
        if sc.says:
            items = "".join(f"<li>{'✓ ' if i in self.said else ''}{say['at']:g} s, {esc(say['kind'])}: "
                            f"{esc(say['say'])}{' <i>(pauses)</i>' if say['pause'] else ''}</li>"
                            for i, say in enumerate(sc.says))
            parts.append(f"<p><b>The lines</b></p><ol>{items}</ol>")
        if sc.expect:
            claims = "".join(f"<li><code>{esc(c.text())}</code></li>" for c in sc.expect)
            parts.append(f"<p><b>What it claims</b> (<code>cachestudio check --run {esc(sc.name)}</code>)</p>"
                         f"<ul>{claims}</ul>")
        self.lesson_view.setHtml("".join(parts))

    # -- the time machine --------------------------------------------------------------------

    def _replay_chrome(self) -> None:
        """A replay has no lab: no faults, no strategy or speed to choose; its title says
        what is replayed."""
        self.fault_bar.setVisible(False)
        self.fault_bar.toggleViewAction().setVisible(False)
        for a in (self.lane_combo_action, self.speed_combo_action, self.act_reset):
            a.setVisible(False)
        self.knobs.setEnabled(False)
        rec = self.session.recording
        self.setWindowTitle(f"Cache Studio — replay of {self.session.title}")
        self.scenario_name = self.session.title
        self.statusBar().showMessage(f"replay of {self.session.title} ({rec.path}): Space plays, "
                                     "← → and the timeline move, N steps", 10000)

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
        self._refresh_status()

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
        self.session.configure(sc.base, sc.specs, sc.timeline, sc.restart_delay_s, duration_s=sc.duration_s)
        self.scenario_name = sc.name
        self.session.scenario_info = {"name": sc.name, "title": sc.title, "description": sc.description}
        self.lesson = sc
        self.said = set()
        self._show_lesson()
        self.knobs.load(self.session.base)
        self._choose_lanes(sc)
        self._show_speed(self.session.base.workload.rate)  # the scenario's rate, as it runs
        self._lanes_changed()
        self.setWindowTitle(f"Cache Studio — {sc.name}")
        self.statusBar().showMessage(f"scenario {sc.name}: {sc.title}", 8000)
        return True

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
                combo.addItem(f"{sc.name}: " + " | ".join(spec.name or spec.strategy for spec in sc.specs),
                              list(sc.specs))
                index = combo.count() - 1
            combo.setCurrentIndex(index)
        finally:
            combo.blockSignals(False)

    # -- asking for file names (one seam: tests queue the answers) ---------------------------

    def ask_open_path(self, title: str, start: str, filters: str) -> str | None:
        """A file to read, chosen by the user (None: cancelled); the next of ``path_answers``
        when one is queued (the user-path tests answer the dialog so)."""
        if self.path_answers:
            return self.path_answers.pop(0)
        path, _ = QFileDialog.getOpenFileName(self, title, start, filters)
        return path or None

    def ask_save_path(self, title: str, suggested: str, filters: str) -> str | None:
        """A file to write, chosen by the user (None: cancelled); see :meth:`ask_open_path`."""
        if self.path_answers:
            return self.path_answers.pop(0)
        path, _ = QFileDialog.getSaveFileName(self, title, suggested, filters)
        return path or None

    def _file_done(self, text: str, ms: int = 10000) -> bool:
        self.file_error = ""
        self.statusBar().showMessage(text, ms)
        return True

    def _file_failed(self, text: str) -> bool:
        """A file the user named could not be written or read: said in the status bar (one
        line, kept in ``file_error``), never a traceback."""
        self.file_error = text
        self.statusBar().showMessage(text, 15000)
        return False

    # -- files ----------------------------------------------------------------------------------

    def open_scenario(self) -> bool:
        path = self.ask_open_path("Open scenario", str(scenarios.builtin_dir()), "Scenarios (*.toml)")
        return path is not None and self.load_scenario(Path(path))

    def scenario_state(self) -> scenarios.Scenario:
        """What File → Save scenario writes: the knobs, lanes (backends and nodes with them)
        and fault timeline in force, with the opened lesson's words and lines, if one is open."""
        s, sc = self.session, self.lesson
        lanes = [spec.build(s.base) for spec in s.specs]
        if sc is None:
            return scenarios.Scenario(name="saved", title="Saved from the studio window", description="",
                                      path=Path("saved.toml"), lanes=lanes, specs=list(s.specs), base=s.base,
                                      duration_s=SAVED_DURATION_S, restart_delay_s=s.restart_delay_s,
                                      timeline=dict(s.timeline))
        return replace(sc, lanes=lanes, specs=list(s.specs), base=s.base, timeline=dict(s.timeline),
                       restart_delay_s=s.restart_delay_s, duration_s=s.duration_s)

    def save_scenario(self) -> bool:
        """The scenario in force as a file that opens as itself (engine.scenariofile),
        written through engine.outputs: a file that is not ours is never replaced."""
        path = self.ask_save_path("Save scenario", "scenario.toml", "Scenarios (*.toml)")
        if path is None:
            return False
        try:
            write_output(path, "scenario", scenario_toml(self.scenario_state()))
        except (OutputError, OutputWriteError, OSError) as exc:
            return self._file_failed(f"the scenario was not saved: {exc}")
        return self._file_done(f"saved {path}", 5000)

    def export_png(self, part: str = "charts", path: str | Path | None = None, ratio: float = 1.0) -> bool:
        """Save the window (or the flow view, the charts) as PNG at ``ratio`` × its size on
        screen; the status bar names the file. Written through engine.outputs: an existing
        symlink or device is never replaced."""
        if path is None:
            suffix = "" if ratio == 1 else f"@{ratio:g}x"
            path = self.ask_save_path(f"Export {part} as PNG", f"{part}{suffix}.png", "PNG (*.png)")
            if path is None:
                return False
        self.charts.redraw_all()
        widget = {"window": self, "flow": self.flow, "charts": self.lower}.get(part, self.charts)
        try:
            data = png_bytes(render(widget, ratio))
            write_output(path, "export", data)
        except (OutputError, OutputWriteError, OSError, RuntimeError) as exc:
            return self._file_failed(f"export failed: {exc}")
        what = {"window": "the window", "flow": "the flow view"}.get(part, "the charts")
        size = f" at {ratio:g}×" if ratio != 1 else ""
        return self._file_done(f"exported {what}{size} to {path}")

    # -- recordings and the report ---------------------------------------------------------

    def _recording_file(self) -> Path | None:
        """This window's recording: the replayed file, or the live run's (recorded as it
        goes, in the run's folder, up to its last flush)."""
        if self.replaying:
            return Path(self.session.recording.path)
        path = self.session.recording_path
        if path is None or not path.exists():
            self.statusBar().showMessage("nothing recorded yet: start the lab (Space); every run is recorded", 8000)
            return None
        return path

    def open_recording(self, path: str | Path | None = None):
        """Replay a recording in a window of its own (no lab); returns it, or None."""
        from ..engine.recording import RecordingError, read_recording

        if path is None:
            path = self.ask_open_path("Open recording", "", "Recordings (*.csrec);;All files (*)")
            if path is None:
                return None
        try:
            rec = read_recording(path)
        except (RecordingError, OSError) as exc:
            self._file_failed(f"cannot open the recording: {exc}")
            return None
        w = MainWindow(self.settings, replay=[rec])
        w.resize(self.size())
        w.show()
        w.start()
        self._replays = getattr(self, "_replays", []) + [w]
        if not rec.complete:
            w.statusBar().showMessage(f"{rec.note}; shown up to {rec.end_time:.1f} s", 15000)
        return w

    def save_recording(self, path: str | Path | None = None) -> bool:
        """Copy this run's recording (as far as it goes) to a file of the user's."""
        src = self._recording_file()
        if src is None:
            return False
        if path is None:
            path = self.ask_save_path("Save recording", "run.csrec", "Recordings (*.csrec)")
            if path is None:
                return False
        try:
            data = src.read_bytes()
            write_output(path, "recording", data)
        except (OutputError, OutputWriteError, OSError) as exc:
            return self._file_failed(f"saving the recording failed: {exc}")
        return self._file_done(f"recording saved to {path} ({len(data) / 1e6:.1f} MB)")

    def export_report(self, path: str | Path | None = None) -> bool:
        """The run as one self-contained HTML file (a hand-out), from its recording."""
        src = self._recording_file()
        if src is None:
            return False
        if path is None:
            path = self.ask_save_path("Export report", "report.html", "HTML (*.html)")
            if path is None:
                return False
        from ..engine.htmlreport import render_report
        from ..engine.recording import RecordingError, read_recording, replay_summary
        from ..engine.timemachine import Tape

        try:
            rec = read_recording(src)
            tape = Tape.from_recording(rec)
            html = render_report(replay_summary(rec), rec.header, tape.series_lists(), tape.group_list(),
                                 tape.node_series_lists())
            write_output(path, "report", html)
        except (RecordingError, OutputError, OutputWriteError, OSError) as exc:
            return self._file_failed(f"the report failed: {exc}")
        return self._file_done(f"report written to {path}")

    def export_svg(self, path: str | Path | None = None) -> bool:
        """The charts on screen as one SVG (vector: sharp at any size)."""
        if path is None:
            path = self.ask_save_path("Export charts as SVG", "charts.svg", "SVG (*.svg)")
            if path is None:
                return False
        self.charts.redraw_all()
        if not self.charts.export_svg(path):
            return self._file_failed(f"export failed: {self.charts.last_export_error}")
        return self._file_done(f"exported the charts as SVG to {path}")

    def export_csv(self, path: str | Path | None = None) -> bool:
        """Every chart row of every lane as CSV, written through engine.outputs: the rows
        are made in a scratch folder of ours, then written to the user's file as any
        export is (a file that is not ours is never replaced)."""
        if path is None:
            path = self.ask_save_path("Export chart data", "charts.csv", "CSV (*.csv)")
            if path is None:
                return False
        try:
            with tempfile.TemporaryDirectory(prefix="cachestudio-csv-") as scratch:
                rows = self.charts.export_csv(Path(scratch) / "charts.csv")
                data = (Path(scratch) / "charts.csv").read_bytes()
            write_output(path, "export", data)
        except (OutputError, OutputWriteError, OSError) as exc:
            return self._file_failed(f"export failed: {exc}")
        return self._file_done(f"{rows:,} rows written to {path}", 5000)

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
        """A non-modal box (the lab and the window go on behind it)."""
        box = QMessageBox(QMessageBox.Icon.Information, "About Cache Studio",
                          f"Cache Studio {__version__}\n\nCache-aside, write-through and write-behind, "
                          "running for real: a diskcache directory as the cache, a SQLite file as the "
                          "database. Everything shown is measured; what is injected says so.",
                          QMessageBox.StandardButton.Ok, self)
        box.setObjectName("about-box")
        box.setModal(False)
        box.show()
        self.about_box = box

