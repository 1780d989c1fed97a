"""What the parts of the studio window share: its attributes, named and typed once for the type checker.

:class:`window.MainWindow` is one class made of several (ui/layout.py, ui/narration.py,
ui/timemachine.py, ui/files.py), each a mixin that uses what the window built: its views,
its session, its actions, its state. :class:`WindowParts` says what those are, for the type
checker only: at run time it is ``object``, and each mixin is a plain class before
QMainWindow in MainWindow's bases. A dialog of a sentence over a table, shared by the
narration's outcome and summary, is here too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QTableWidget, QVBoxLayout, QWidget


class TableDialog(QDialog):
    """A non-modal dialog: a sentence over a table, and Close (Esc closes it too);
    ``shown_event``: the strip's event it is about, if any."""

    def __init__(self, parent: QWidget, name: str):
        super().__init__(parent)
        self.setObjectName(name)
        layout = QVBoxLayout(self)
        self.text = QLabel("")
        self.text.setWordWrap(True)
        layout.addWidget(self.text)
        self.table = QTableWidget(0, 0)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        layout.addWidget(self.table, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.setModal(False)
        self.shown_event: dict | None = None


if TYPE_CHECKING:
    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtGui import QAction
    from PySide6.QtWidgets import (
        QComboBox,
        QDockWidget,
        QMainWindow,
        QSplitter,
        QTabWidget,
        QTextBrowser,
        QToolBar,
        QTreeWidget,
        QTreeWidgetItem,
    )

    from ..engine.scenario import Scenario
    from .charts import ChartPanel
    from .controls import AnomalyPanel, KnobPanel
    from .events import CaptionBar, EventStrip
    from .flow import FlowView
    from .session import LabSession
    from .theme import Theme
    from .timebar import TimeBar

    class WindowParts(QMainWindow):
        """The studio window as its parts see it (MainWindow builds all of this)."""

        settings: QSettings
        session: LabSession
        replaying: bool
        flow: FlowView
        charts: ChartPanel
        knobs: KnobPanel
        anomaly_panel: AnomalyPanel
        strip: EventStrip
        caption_bar: CaptionBar
        timebar: TimeBar
        lower_half: QWidget
        splitter: QSplitter
        dock: QDockWidget
        tabs: QTabWidget
        events_list: QTreeWidget
        lesson_view: QTextBrowser
        event_items: list[tuple[dict, QTreeWidgetItem]]
        event_rows: dict[tuple[str, float], QTreeWidgetItem]
        outcome_ids: dict[tuple[str, float], int]
        lesson: Scenario | None
        said: set[int]
        scenario_name: str
        panel_choice: bool | None
        present: bool
        chart_page: int
        paged: bool
        charts_shown: list[int]
        user_zoom: float
        scale: float
        percentile: str
        present_charts: list[str]
        summary_dialog: TableDialog | None
        outcome_dialog: TableDialog | None
        path_answers: list[str | None]
        file_error: str
        acts: dict[str, QAction]
        keys: list[tuple[str, str]]
        theme_actions: dict[str, QAction]
        percentile_actions: dict[str, QAction]
        present_chart_actions: dict[str, QAction]
        act_start: QAction
        act_step: QAction
        act_present: QAction
        act_panel: QAction
        act_node_lines: QAction
        toolbar: QToolBar
        fault_bar: QToolBar
        lane_combo: QComboBox
        speed_combo: QComboBox
        lane_combo_action: QAction
        speed_combo_action: QAction
        lab_failures: list[str]
        theme: Theme
        _rooms_timer: QTimer
        _rebuilding: bool
        _replays: list

        def __init__(self, settings: QSettings | None = None, replay: list | None = None) -> None: ...
        def refresh_status(self) -> None: ...
        def start(self) -> None: ...
        def _refresh_injected(self) -> None: ...
        def _show_speed(self, rate: float) -> None: ...
        def _show_lesson(self) -> None: ...
        def _on_sampled(self) -> None: ...
        def _on_outcomes(self, windows: list[dict]) -> None: ...
        def _on_event(self, ev: dict) -> None: ...
        def _marks_on(self) -> bool: ...
        def _lanes_changed(self) -> None: ...
        def _choose_lanes(self, sc) -> None: ...
        def _fit_rooms(self) -> None: ...
        def _apply_scale(self) -> None: ...
else:
    WindowParts = object
