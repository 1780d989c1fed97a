"""The knob panel and the anomaly panel.

The knob panel is derived from the knob table (:data:`config.KNOBS`): one widget per knob,
bounded to the range the validator accepts (spin box limits), so an out-of-range value
cannot be typed; whatever the lab still refuses comes back as a status message. Knobs a
running lab cannot change (not :data:`config.LIVE_KNOBS`) are marked "at reset".
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QScrollArea,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..engine.auditor import ANOMALY_KINDS
from ..engine.config import KNOBS as KNOB_TABLE
from ..engine.config import SECTION_TITLES, Knob, LaneConfig
from .events import short_lane
from .theme import lane_pairs

#: The panel's groups, in this order; each holds its section's knobs in the table's order.
PANEL_SECTIONS = ("workload", "cache", "write_behind", "store", "backends", "latency")
#: (group title, [knob, ...]) per group: the knobs that have a widget.
KNOBS: list[tuple[str, list[Knob]]] = [
    (SECTION_TITLES[section], [k for k in KNOB_TABLE if k.section == section and not k.no_widget])
    for section in PANEL_SECTIONS
]
#: The widget of a knob, by its kind (float, int, choice, bool).
KnobWidget = QDoubleSpinBox | QSpinBox | QComboBox | QCheckBox


class KnobPanel(QScrollArea):
    changed = Signal(str, str, object)  # section, field, value

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWidgetResizable(True)
        body = QWidget()
        layout = QVBoxLayout(body)
        self.widgets: dict[tuple[str, str], KnobWidget] = {}
        self._loading = False
        for title, knobs in KNOBS:
            box = QGroupBox(title)
            form = QFormLayout(box)
            for knob in knobs:
                w = self._make(knob)
                w.setObjectName(f"knob:{knob.section}.{knob.name}")
                text = knob.label if knob.live else f"{knob.label} (at reset)"
                when = "applies at once" if knob.live else "applies at the next reset"
                if knob.only_with:
                    when += f"; only with {knob.only_with[1]} {knob.only_with[2]}"
                w.setToolTip(f"{knob.help}; {when}" if knob.help else when)
                self.widgets[knob.key] = w
                self._connect(w, knob.section, knob.name)
                form.addRow(text, w)
            layout.addWidget(box)
        layout.addStretch(1)
        self.setWidget(body)
        #: Knobs that matter only while another has a value (greyed out otherwise).
        self.gated = [k for _, knobs in KNOBS for k in knobs if k.only_with]
        for section, name in {tuple(k.only_with[:2]) for k in self.gated}:
            self._on_change(self.widgets[(section, name)], lambda _value: self._gate())
        self._gate()

    @staticmethod
    def _make(knob: Knob) -> KnobWidget:
        suffix = f" {knob.unit}" if knob.unit else ""
        if knob.kind in ("float", "int"):
            lo, hi = knob.widget_range
            w: QDoubleSpinBox | QSpinBox
            if knob.kind == "float":
                w = QDoubleSpinBox()
                w.setDecimals(knob.decimals)
                w.setRange(lo, hi)
                w.setSingleStep(knob.step)
            else:
                w = QSpinBox()
                w.setRange(int(lo), int(hi))
                w.setSingleStep(int(knob.step))
            w.setSuffix(suffix)
            w.setKeyboardTracking(False)  # apply on enter/focus-out, not per keystroke
            return w
        if knob.kind == "choice":
            combo = QComboBox()
            combo.addItems(list(knob.choices))
            return combo
        return QCheckBox()

    @staticmethod
    def _on_change(w: KnobWidget, slot) -> None:
        if isinstance(w, QComboBox):
            w.currentTextChanged.connect(slot)
        elif isinstance(w, QCheckBox):
            w.toggled.connect(slot)
        else:
            w.valueChanged.connect(slot)

    def _connect(self, w: KnobWidget, section: str, name: str) -> None:
        def emit(value):
            if not self._loading:
                self.changed.emit(section, name, value)

        self._on_change(w, emit)

    @staticmethod
    def value(w: KnobWidget):
        """What a knob's widget shows."""
        if isinstance(w, QComboBox):
            return w.currentText()
        if isinstance(w, QCheckBox):
            return w.isChecked()
        return w.value()

    def _gate(self) -> None:
        for k in self.gated:
            section, name, value = k.only_with
            self.widgets[k.key].setEnabled(self.value(self.widgets[(section, name)]) == value)

    def load(self, cfg: LaneConfig) -> None:
        """Show a configuration without emitting changes."""
        self._loading = True
        try:
            for (section, name), w in self.widgets.items():
                value = getattr(getattr(cfg, section), name)
                if isinstance(w, QComboBox):
                    w.setCurrentText(str(value))
                elif isinstance(w, QCheckBox):
                    w.setChecked(bool(value))
                else:
                    w.setValue(value)
        finally:
            self._loading = False


NAMES = {
    "stale_read": "stale reads",
    "lost_write": "lost writes",
    "dirty_cache": "dirty cache",
    "stale_cache": "stale cache",
}
ALL = "all"


class AnomalyPanel(QWidget):
    """The auditor's live counters per lane, and the anomalies grouped by cause: one line
    per (cause, lane, kind) with its exact count and top keys, expandable to the
    individual sentences (at most :attr:`PER_GROUP` listed per group; the rest are counted
    in a "N more" line). Filters by lane and kind. Selecting a sentence marks it on the
    flow view and the charts."""

    selected = Signal(object)  # the Anomaly (or None)
    PER_GROUP = 100

    def __init__(self, parent=None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.table = QTableWidget(0, len(ANOMALY_KINDS) + 1)
        self.table.setHorizontalHeaderLabels([NAMES[k].replace(" ", "\n") for k in ANOMALY_KINDS] + ["at\nrisk"])
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QTableWidget.SelectionMode.NoSelection)
        self.table.setToolTip("at risk: acknowledged writes not yet seen in the database")
        layout.addWidget(self.table)
        filters = QHBoxLayout()
        self.lane_filter = QComboBox()
        self.lane_filter.setObjectName("anomaly-lane-filter")
        self.kind_filter = QComboBox()
        self.kind_filter.setObjectName("anomaly-kind-filter")
        self.kind_filter.addItem("every kind", ALL)
        for k in ANOMALY_KINDS:
            self.kind_filter.addItem(NAMES[k], k)
        filters.addWidget(QLabel("show"))
        filters.addWidget(self.lane_filter, 1)
        filters.addWidget(self.kind_filter, 1)
        layout.addLayout(filters)
        hint = QLabel(
            "Grouped by cause. Open a group for its sentences; select one to mark it on the flow view and the charts."
        )
        hint.setWordWrap(True)
        layout.addWidget(hint)
        self.tree = QTreeWidget()
        self.tree.setObjectName("anomaly-groups")
        self.tree.setHeaderHidden(True)
        self.tree.setWordWrap(True)
        self.tree.setUniformRowHeights(False)
        # one column as wide as the panel: a long line ends in "…" (its tooltip has it whole)
        self.tree.header().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.tree.currentItemChanged.connect(self._pick)
        layout.addWidget(self.tree, 1)
        self.strategies: list[str] = []
        self.groups: dict[str, dict] = {}  # id -> the group as the observer last sent it
        self.items: dict[str, QTreeWidgetItem] = {}  # id -> its line
        self.listed: dict[str, int] = {}  # id -> sentences listed under it
        self.lane_filter.currentIndexChanged.connect(self._filter)
        self.kind_filter.currentIndexChanged.connect(self._filter)

    def set_lanes(self, lanes: list) -> None:
        strategies = [name for name, _ in lane_pairs(lanes)]  # the lanes' names
        self.strategies = strategies
        self.table.setRowCount(len(strategies))
        self.table.setVerticalHeaderLabels(strategies)
        self.fit_table()
        self.tree.clear()
        self.groups, self.items, self.listed = {}, {}, {}
        self.lane_filter.blockSignals(True)
        self.lane_filter.clear()
        self.lane_filter.addItem("every lane", ALL)
        for s in strategies:
            self.lane_filter.addItem(s, s)
        self.lane_filter.blockSignals(False)
        self.update_counts([dict.fromkeys(ANOMALY_KINDS, 0) for _ in strategies], [0] * len(strategies))

    def fit_table(self) -> None:
        """The counters' table exactly as tall as its rows (again after a font change)."""
        self.table.resizeRowsToContents()
        header = self.table.horizontalHeader()
        rows = (
            sum(self.table.rowHeight(r) for r in range(self.table.rowCount()))
            or self.table.verticalHeader().defaultSectionSize()
        )
        self.table.setFixedHeight(header.sizeHint().height() + rows + 4)

    def update_counts(self, counts: list[dict], at_risk: list[int]) -> None:
        for row, (c, risk) in enumerate(zip(counts, at_risk)):
            for col, kind in enumerate(ANOMALY_KINDS):
                self._cell(row, col, c.get(kind, 0))
            self._cell(row, len(ANOMALY_KINDS), risk)

    def _cell(self, row: int, col: int, value: int) -> None:
        item = self.table.item(row, col)
        text = f"{value:,}"
        if item is None:
            item = QTableWidgetItem(text)
            item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
            self.table.setItem(row, col, item)
        elif item.text() != text:
            item.setText(text)

    # -- groups ----------------------------------------------------------------------------

    @staticmethod
    def group_line(g: dict) -> str:
        return g.get("line") or f"{g['cause']}: {g['count']:,} {NAMES[g['kind']]}"

    def set_groups(self, groups: list[dict]) -> None:
        """Groups the observer says changed (new ones, or new counts)."""
        for g in groups:
            gid = g["id"]
            self.groups[gid] = g
            item = self.items.get(gid)
            if item is None:
                item = QTreeWidgetItem([""])
                item.setData(0, Qt.ItemDataRole.UserRole, None)
                self.tree.addTopLevelItem(item)
                self.items[gid] = item
                self.listed[gid] = 0
            item.setText(0, f"{short_lane(g['lane'])} · {self.group_line(g)}")
            item.setToolTip(0, f"{g['lane']}: {self.group_line(g)}")
            self._more(gid)
            item.setHidden(not self._shown(g))

    def add(self, anomalies: list, group_ids: list[str] | None = None) -> None:
        """Sentences, each under its group (made here if the observer has not named it yet)."""
        for i, a in enumerate(anomalies):
            gid = group_ids[i] if group_ids is not None and i < len(group_ids) else f"{a.lane}:{a.kind}"
            if gid not in self.items:
                self.set_groups([{"id": gid, "cause": "found", "lane": a.lane, "kind": a.kind, "count": 0}])
                self.groups[gid]["count"] = 0
            if group_ids is None:  # no grouping from the observer: count here
                g = self.groups[gid]
                g["count"] = g.get("count", 0) + 1
                self.items[gid].setText(0, f"{short_lane(g['lane'])} · {self.group_line(g)}")
            if self.listed[gid] >= self.PER_GROUP:
                self._more(gid)
                continue
            child = QTreeWidgetItem([f"{NAMES[a.kind]}: {a.sentence}"])
            child.setData(0, Qt.ItemDataRole.UserRole, a)
            child.setToolTip(0, a.sentence)
            parent = self.items[gid]
            more = self._more_item(parent)
            if more is not None:
                parent.insertChild(parent.indexOfChild(more), child)
            else:
                parent.addChild(child)
            self.listed[gid] += 1
            self._more(gid)

    @staticmethod
    def _more_item(parent: QTreeWidgetItem):
        last = parent.child(parent.childCount() - 1) if parent.childCount() else None
        return last if last is not None and last.data(0, Qt.ItemDataRole.UserRole) == "more" else None

    def _more(self, gid: str) -> None:
        """The "N more" line of a group: every anomaly counted, listed or not."""
        parent, g = self.items[gid], self.groups[gid]
        rest = max(0, int(g.get("count", 0)) - self.listed[gid])
        more = self._more_item(parent)
        if rest and self.listed[gid] >= self.PER_GROUP:
            text = f"{rest:,} more, counted, not listed"
            if more is None:
                more = QTreeWidgetItem([text])
                more.setData(0, Qt.ItemDataRole.UserRole, "more")
                parent.addChild(more)
            more.setText(0, text)
        elif more is not None:
            parent.removeChild(more)

    def unlisted(self) -> int:
        """Anomalies counted in groups but not listed as sentences (shown as "N more")."""
        return sum(max(0, int(g.get("count", 0)) - self.listed.get(gid, 0)) for gid, g in self.groups.items())

    def _shown(self, g: dict) -> bool:
        lane, kind = self.lane_filter.currentData(), self.kind_filter.currentData()
        return lane in (None, ALL, g["lane"]) and kind in (None, ALL, g["kind"])

    def _filter(self) -> None:
        for gid, item in self.items.items():
            item.setHidden(not self._shown(self.groups[gid]))

    def _pick(self, current, _previous) -> None:
        a = current.data(0, Qt.ItemDataRole.UserRole) if current is not None else None
        self.selected.emit(a if a is not None and not isinstance(a, str) else None)
