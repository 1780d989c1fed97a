"""The knob panel and the anomaly panel.

Every knob widget is bounded to its valid range (spin box limits), so an out-of-range
value cannot be typed; whatever the lab still refuses comes back as a status message.
Knobs a running lab cannot change (config.LIVE_KNOBS) are marked "at reset".
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QScrollArea,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..engine.auditor import ANOMALY_KINDS
from ..engine.config import (
    BACKPRESSURE,
    DISTRIBUTIONS,
    EVICTION_POLICIES,
    JOURNAL_MODES,
    LIVE_KNOBS,
    STAMPEDE,
    SYNCHRONOUS,
    LaneConfig,
)

# (section, field, label, kind, spec): kind float -> (min, max, step, decimals, suffix)
KNOBS = [
    ("Workload", [
        ("workload", "rate", "rate", "float", (0, 1_000_000, 100, 0, " ops/s")),
        ("workload", "read_ratio", "read ratio", "float", (0, 1, 0.05, 2, "")),
        ("workload", "keys", "keys", "int", (1, 10_000_000, 100, 0, "")),
        ("workload", "distribution", "distribution", "choice", DISTRIBUTIONS),
        ("workload", "zipf_s", "zipf exponent", "float", (0.01, 10, 0.1, 2, "")),
        ("workload", "value_size", "value size", "int", (1, 1_000_000, 100, 0, " B")),
        ("workload", "concurrency", "client threads", "int", (1, 64, 1, 0, "")),
    ]),
    ("Cache", [
        ("cache", "ttl_s", "TTL (0 = none)", "float", (0, 86_400, 1, 1, " s")),
        ("cache", "size_limit_mb", "size limit", "float", (0.01, 1_048_576, 64, 2, " MiB")),
        ("cache", "eviction", "eviction", "choice", EVICTION_POLICIES),
        ("cache", "persistent", "survives a crash", "bool", None),
        ("cache", "stampede", "stampede protection", "choice", STAMPEDE),
        ("cache", "lease_ttl_s", "lock / lease TTL", "float", (0.01, 60, 0.5, 2, " s")),
    ]),
    ("Write-behind", [
        ("write_behind", "flush_interval_s", "flush interval", "float", (0.001, 3600, 0.1, 3, " s")),
        ("write_behind", "batch_size", "batch size", "int", (1, 100_000, 10, 0, "")),
        ("write_behind", "coalesce", "coalesce", "bool", None),
        ("write_behind", "capacity", "queue capacity", "int", (1, 100_000_000, 100, 0, "")),
        ("write_behind", "backpressure", "when full", "choice", BACKPRESSURE),
        ("write_behind", "block_timeout_s", "block timeout", "float", (0, 3600, 0.5, 2, " s")),
        ("write_behind", "retry_limit", "retry limit", "int", (0, 1000, 1, 0, "")),
        ("write_behind", "retry_backoff_s", "retry backoff", "float", (0, 60, 0.01, 3, " s")),
        ("write_behind", "durable", "durable queue", "bool", None),
    ]),
    ("Store (SQLite)", [
        ("store", "journal_mode", "journal mode", "choice", JOURNAL_MODES),
        ("store", "synchronous", "synchronous", "choice", SYNCHRONOUS),
        ("store", "timeout_ms", "busy timeout", "float", (0, 60_000, 50, 0, " ms")),
    ]),
    ("Injected latency (labelled)", [
        ("latency", "cache_ms", "cache", "float", (0, 10_000, 1, 1, " ms")),
        ("latency", "db_read_ms", "DB read", "float", (0, 10_000, 1, 1, " ms")),
        ("latency", "db_write_ms", "DB write", "float", (0, 10_000, 1, 1, " ms")),
    ]),
]


class KnobPanel(QScrollArea):
    changed = Signal(str, str, object)  # section, field, value

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWidgetResizable(True)
        body = QWidget()
        layout = QVBoxLayout(body)
        self.widgets: dict[tuple[str, str], QWidget] = {}
        self._loading = False
        for title, knobs in KNOBS:
            box = QGroupBox(title)
            form = QFormLayout(box)
            for section, name, label, kind, spec in knobs:
                w = self._make(kind, spec)
                w.setObjectName(f"knob:{section}.{name}")
                live = (section, name) in LIVE_KNOBS
                text = label if live else f"{label} (at reset)"
                w.setToolTip("applies at once" if live else "applies at the next reset")
                self.widgets[(section, name)] = w
                self._connect(w, kind, section, name)
                form.addRow(text, w)
            layout.addWidget(box)
        layout.addStretch(1)
        self.setWidget(body)

    @staticmethod
    def _make(kind: str, spec):
        if kind == "float":
            lo, hi, step, decimals, suffix = spec
            w = QDoubleSpinBox()
            w.setDecimals(decimals)
            w.setRange(lo, hi)
            w.setSingleStep(step)
            w.setSuffix(suffix)
            w.setKeyboardTracking(False)  # apply on enter/focus-out, not per keystroke
            return w
        if kind == "int":
            lo, hi, step, _, suffix = spec
            w = QSpinBox()
            w.setRange(lo, hi)
            w.setSingleStep(step)
            w.setSuffix(suffix)
            w.setKeyboardTracking(False)
            return w
        if kind == "choice":
            w = QComboBox()
            w.addItems(list(spec))
            return w
        return QCheckBox()

    def _connect(self, w, kind, section, name) -> None:
        def emit(value):
            if not self._loading:
                self.changed.emit(section, name, value)

        if kind in ("float", "int"):
            w.valueChanged.connect(emit)
        elif kind == "choice":
            w.currentTextChanged.connect(emit)
        else:
            w.toggled.connect(emit)

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


NAMES = {"stale_read": "stale reads", "lost_write": "lost writes", "dirty_cache": "dirty cache",
         "stale_cache": "stale cache"}


class AnomalyPanel(QWidget):
    """The auditor's live counters per lane, and every anomaly in one sentence."""

    selected = Signal(object)  # the Anomaly (or None)
    MAX_ITEMS = 500

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
        hint = QLabel("Select an anomaly to mark it on the flow view and the charts.")
        hint.setWordWrap(True)
        layout.addWidget(hint)
        self.list = QListWidget()
        self.list.setWordWrap(True)
        self.list.currentItemChanged.connect(self._pick)
        layout.addWidget(self.list, 1)
        self.strategies: list[str] = []

    def set_lanes(self, strategies: list[str]) -> None:
        self.strategies = list(strategies)
        self.table.setRowCount(len(strategies))
        self.table.setVerticalHeaderLabels(strategies)
        self.table.setFixedHeight(self.table.horizontalHeader().sizeHint().height() + 4
                                  + self.table.verticalHeader().defaultSectionSize() * max(1, len(strategies)))
        self.list.clear()
        self.update_counts([dict.fromkeys(ANOMALY_KINDS, 0) for _ in strategies], [0] * len(strategies))

    def update_counts(self, counts: list[dict], at_risk: list[int]) -> None:
        for row, (c, risk) in enumerate(zip(counts, at_risk)):
            for col, kind in enumerate(ANOMALY_KINDS):
                self._cell(row, col, c[kind])
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

    def add(self, anomalies: list) -> None:
        for a in anomalies:
            if self.list.count() >= self.MAX_ITEMS:
                return
            item = QListWidgetItem(f"{a.lane} · {NAMES[a.kind]}: {a.sentence}")
            item.setData(Qt.ItemDataRole.UserRole, a)
            self.list.addItem(item)

    def _pick(self, current, _previous) -> None:
        self.selected.emit(current.data(Qt.ItemDataRole.UserRole) if current is not None else None)
