"""The window's layout: its scale, the rooms of the flow view and the charts, the side panel,
the presentation mode, its theme and its settings.

:class:`LayoutMixin` is the part of :class:`window.MainWindow` that sizes things: one scale
for every text (the theme's × the window's size × the user's zoom), the height shared by the
flow view and the charts (all eight, or four at a time), the toolbars on one row or two,
the side panel shown when there is room, and the presentation mode. ``layout_report`` says
where everything is, for the layout tests and ``cachestudio screenshot``. The theme, and
the settings kept from one start to the next (geometry, docks, theme, lanes, speed, zoom,
the charts chosen), are applied here too.
"""

from __future__ import annotations

from typing import SupportsFloat, SupportsIndex, SupportsInt

from PySide6.QtCore import QByteArray, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import QApplication

from .actions import ACTIONS, CHART_TITLES, LANE_CHOICES, SPEEDS
from .charts import CHART_NAMES, MIN_CHART_H, PERCENTILES
from .parts import WindowParts
from .theme import THEMES

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


def font_px(font) -> float:
    """A font's pixel height as drawn (point sizes converted at the screen's resolution)."""
    from PySide6.QtGui import QFontInfo

    return float(QFontInfo(font).pixelSize())


def int_setting(value: object) -> int:
    """``int()`` of a stored setting (QSettings gives back a str read from its file, or
    the number set in this process); a value int() takes no number from is a TypeError."""
    if isinstance(value, (str, bytes, bytearray, SupportsInt, SupportsIndex)):
        return int(value)
    raise TypeError(f"not a number: {value!r}")


def float_setting(value: object) -> float:
    """``float()`` of a stored setting, as :func:`int_setting`."""
    if isinstance(value, (str, bytes, bytearray, SupportsFloat, SupportsIndex)):
        return float(value)
    raise TypeError(f"not a number: {value!r}")


class LayoutMixin(WindowParts):
    """Scale, rooms, panel and presentation mode (a part of MainWindow: it uses the
    window's flow view, charts, caption bar, strip, dock, toolbars and actions)."""

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
            if isinstance(app, QApplication):  # (never a bare QCoreApplication: this is a window)
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
        view tall enough for its text (flow.height_for_text), else four at a time (the
        presentation charts, then the others: G flips), and the chart key says so. The
        presentation mode always shows four."""
        self._fit_toolbars()
        row = (MIN_CHART_H + 20) * self.scale
        key = self.charts.key_height()
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
            flow_h: float = sizes[0]  # a float when the flow view's text sets it (flow_min)
            if paged:  # one row of charts: the flow view takes the rest
                flow_h = max(120, total - lower_need)
            elif sizes[1] < lower_need or flow_h < flow_min:
                flow_h = max(120, min(total - lower_need, max(flow_h, flow_min)))
            if flow_h != sizes[0]:
                self.splitter.setSizes([int(flow_h), int(total - flow_h)])  # whole pixels, as Qt takes them
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
            self.statusBar().showMessage(
                "every chart is shown: G flips them when only four fit (presentation mode, small windows)", 5000
            )
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
        for act in ACTIONS:  # the menus hide; every action's keys still work, but for those declared not to
            self.acts[act.name].setEnabled(act.present or not on)
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
            self.statusBar().showMessage(
                f"presentation mode shows {PRESENT_MAX} charts: {CHART_TITLES[CHART_NAMES.index(dropped)]} made room",
                6000,
            )
        if not chosen:
            chosen = [name]
            self.present_chart_actions[name].setChecked(True)
        self.present_charts = [c for c in CHART_NAMES if c in chosen]
        self._fit_rooms()

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
        combos = [
            [c.objectName(), c.width(), c.sizeHint().width()]
            for c in (self.lane_combo, self.speed_combo)
            if c.isVisible()
        ]
        flow_px = [px for _, px in self.flow.text_px()]
        return {
            "window": [self.width(), self.height()],
            "theme": self.theme.name,
            "present": self.present,
            "scale": self.scale,
            "flow": box(self.flow, QRectF(self.flow.rect())),
            "paged": self.paged,
            "charts_shown": list(self.charts_shown) or list(range(len(CHART_NAMES))),
            "chart_panel": box(self.charts, QRectF(self.charts.rect())),
            "plots": [box(self.charts, r) for r in self.charts.plot_rects()],
            "labels": [[f"chart {n}", box(self.charts, r)] for n, r in self.charts.label_rects()]
            + [[f"strip {i}", box(self.strip, r)] for i, r in enumerate(self.strip.label_rects())],
            "buttons": buttons,
            "hidden_buttons": hidden,
            "combos": combos,
            "text_px": {
                "window": font_px(self.font()),
                "strip": self.strip.BASE_PX * self.strip.scale,
                "flow_min": min(flow_px, default=0.0),
            },
            "floor_px": SMALL_TEXT_PX * self.scale,
        }

    # -- settings and themes ----------------------------------------------------------------

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
        lanes = int_setting(st.value("lanes", 0) or 0)
        speed = int_setting(st.value("speed", 3) or 0)
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
            zoom = float_setting(st.value("zoom", 1.0))
        except (TypeError, ValueError):
            zoom = 1.0
        self.user_zoom = min(USER_ZOOMS, key=lambda z: abs(z - zoom))
        panel = st.value("panel", "auto")
        self.panel_choice = None if panel not in ("shown", "hidden") else panel == "shown"
        self._apply_scale()

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
        if isinstance(app, QApplication):  # (never a bare QCoreApplication: this is a window)
            app.setPalette(pal)
        self.flow.set_theme(t)
        self.charts.set_theme(t)
        self.strip.set_theme(t)
        self.caption_bar.set_theme(t)
        if name in getattr(self, "theme_actions", {}):
            self.theme_actions[name].setChecked(True)
        self.scale = 0.0  # the theme's font scale is part of the window's scale: apply it again
        self._apply_scale()
