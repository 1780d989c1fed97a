"""What just happened: the event strip, the caption and the row of active faults.

* :class:`EventStrip` draws every fault event of the run along the charts' time axis (the
  same x range as the charts, set by the window): a mark at each instant, a band for each
  window (a fault with an end, or a crash until its lane is back), and a label naming the
  event and its lane.
  Labels are stacked in rows so that no two overlap and none is cut at an edge; a label
  that finds no row keeps its mark and is counted in the "+N" note at the right. An opened
  scenario's faults are drawn ahead of time, hollow and grey, as "scheduled". Clicking a
  mark or label emits :attr:`EventStrip.picked` with the event.
* :class:`CaptionBar` holds one sentence about the last fault (what it did, lane by lane),
  kept until the next fault or a key press, the active faults with their countdown, and
  the run's clock.

Every fault kind's label, shade and window come from its declaration (engine/faultkinds.py):
a kind added there is labelled, shaded and drawn ahead here with no change (``AMOUNTS``
adds how much to the label of a kind with parameters).

Everything here is painted by hand (QPainter), so every rectangle drawn is known: the
layout tests check that no two labels overlap.
"""

from __future__ import annotations

import math
import re

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPainter, QPen
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QWidget

from ..engine.faultkinds import FAULTS, FaultKind, kind_of_event
from .theme import FAULT_SHADE, THEMES, Theme, known_lane, lane_style

#: event kind -> (shade kind of theme.FAULT_SHADE, the kind that ends its window or None),
#: for every fault kind (engine/faultkinds.py: its start event, shade and end event)
FAULT_EVENTS = {k.start_event: (k.shade, k.end_event) for k in FAULTS}
ENDS = {end: start for start, (_, end) in FAULT_EVENTS.items() if end}
#: a fault that lasts per lane until the lane is back: the event that says so -> the faults it ends
BACKS = {
    back: tuple(k.start_event for k in FAULTS if k.back_event == back)
    for back in dict.fromkeys(k.back_event for k in FAULTS if k.back_event)
}
#: events shown on the strip besides the faults: a heal, and a lab that failed
OTHER_EVENTS = {"heal", "lab-failed", "lab-hung", "lab-died", "lab-refused", "audit", "server-died"}
FAILURES = OTHER_EVENTS - {"heal"}
MAX_ROWS = 2
GAP_PX = 8.0

#: How much a fault does, in the runner's words, for the kinds with parameters: fault kind ->
#: (the detail of a scheduled one, from its parameters; a pattern that reads the amount back
#: out of an event's detail, as named groups; the label made of them, ``{name}`` its label).
#: A kind without an entry is labelled by its declared label alone.
AMOUNTS: dict[str, tuple[str, str, str]] = {
    "outage": ("DB outage for {duration:g} s", r"for (?P<duration>[0-9.]+) s", "{name} {duration} s"),
    "slow-db": ("slow DB: +{ms:g} ms", r"\+(?P<ms>[0-9.]+) ms", "{name} +{ms} ms"),
    "slow-cache": ("slow cache: +{ms:g} ms", r"\+(?P<ms>[0-9.]+) ms", "{name} +{ms} ms"),
    "burst": (
        "{op} burst of {count:,} operations per lane",
        r"(?P<op>\w+) burst of (?P<count>[0-9,]+)",
        "{op} {name} ×{count}",
    ),
    "stampede": (
        "hot key k0 expired; {readers} concurrent readers",
        r"(?P<readers>\d+) concurrent readers",
        "{name} ×{readers}",
    ),
    "crash-node": ("app node {node} of each lane killed (SIGKILL)", r"app node (?P<node>\d+)", "{name} n{node}"),
}
INJECTED = " (injected)"


def short_lane(lane: str | None) -> str:
    return lane_style(lane)[2] if lane is not None and known_lane(lane) else ""


def fault_text(kind: FaultKind, detail: str, injected: bool = False) -> str:
    """A fault event's words: its declared label, with how much when its detail says it;
    "(injected)" when the kind is injected ("(reads injected)": a real fault whose event says
    part of it was injected, as an outage's reads on a WAL database)."""
    name = kind.label.removesuffix(INJECTED)
    text = name
    words = AMOUNTS.get(kind.name)
    if words is not None:
        m = re.search(words[1], detail)
        if m:
            text = words[2].format(name=name, **m.groupdict())
    if kind.injected:
        text += INJECTED
    elif injected:
        text += " (reads injected)"
    return text


def event_label(ev: dict) -> str:
    """A few words for an event: what, how much, and the lane when it is one lane's."""
    kind, detail = ev["kind"], ev.get("detail") or ""
    lane = short_lane(ev.get("lane"))
    fault = kind_of_event(kind)
    if kind == "cold-cache" and lane:
        text = "cold cache failed"  # one lane's cache could not be flushed
    elif fault is not None:
        text = fault_text(fault, detail, bool(ev.get("injected")))
    elif kind in FAILURES:
        text = kind.replace("-", " ") if kind != "audit" else "audit failed"
    else:
        text = kind
    return f"{text} · {lane}" if lane else text


def scheduled_events(timeline: dict, restart_delay_s: float = 1.0) -> list[dict]:
    """An opened scenario's fault timeline as event-like dicts (``scheduled``: True), to be
    drawn ahead of time: every fault kind's entries (engine/faultkinds.py; the fields of
    engine/timeline.py). A fault with a duration is drawn as long as it lasts, one that lasts
    until its lane is back for the restart delay."""
    out = []
    for kind in FAULTS:
        for entry in timeline.get(kind.field, []):
            at, values = kind.values(entry)
            if "duration" in values:
                end: float | None = at + float(values["duration"])
            elif kind.back_event:
                end = at + restart_delay_s
            else:
                end = None
            words = AMOUNTS.get(kind.name)
            detail = words[0].format(**values) if words else kind.sentence
            out.append(
                {
                    "kind": kind.start_event,
                    "start": at,
                    "end_at": end,
                    "detail": detail,
                    "lane": None,
                    "injected": kind.injected,
                    "scheduled": True,
                }
            )
    return sorted(out, key=lambda e: e["start"])


def _font(px: float, bold: bool = False) -> QFont:
    f = QFont()
    f.setPixelSize(max(8, round(px)))
    f.setBold(bold)
    return f


class EventStrip(QWidget):
    """The run's events along the time axis (see the module's docstring)."""

    picked = Signal(object)  # the event dict

    BASE_PX = 12.0  # label text at scale 1

    def __init__(self, parent=None):
        super().__init__(parent)
        self.theme: Theme = THEMES["light"]
        self.scale = 1.0
        self.lo, self.hi = 0.0, 60.0
        self.now = 0.0
        self.events: list[dict] = []  # what happened (each with "end_at" once its window ended)
        self.scheduled: list[dict] = []  # an opened scenario's faults, still ahead
        self._labels: list[tuple[QRectF, dict]] = []  # laid out at the last paint
        self.unlabelled = 0
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMouseTracking(True)
        self._fit_height()

    # -- state ------------------------------------------------------------------------------

    def set_theme(self, theme: Theme) -> None:
        self.theme = theme
        self.update()

    def set_scale(self, s: float) -> None:
        if abs(s - self.scale) > 1e-6:
            self.scale = s
            self._fit_height()
            self.update()

    def _px(self) -> float:
        return self.BASE_PX * self.scale

    def _row_h(self) -> float:
        return QFontMetricsF(_font(self._px())).height() + 4 * self.scale

    def _axis_h(self) -> float:
        return QFontMetricsF(_font(self._px() * 0.9)).height() + 6 * self.scale

    def _fit_height(self) -> None:
        self.setFixedHeight(math.ceil(MAX_ROWS * self._row_h() + self._axis_h() + 4))

    def set_range(self, lo: float, hi: float, now: float) -> None:
        changed = (lo, hi) != (self.lo, self.hi) or (abs(now - self.now) > 0.2 and self._open())
        self.lo, self.hi, self.now = lo, hi, now
        if changed:
            self.update()

    def _open(self) -> bool:
        return any(e.get("end_at") is None for e in self.events)

    def clear(self) -> None:
        self.events = []
        self.now = 0.0
        self.update()

    def set_scheduled(self, items: list[dict]) -> None:
        self.scheduled = list(items)
        self.update()

    def add(self, ev: dict) -> dict | None:
        """Take a run event; returns the strip's copy if it is shown, else None."""
        kind = ev["kind"]
        if kind in ENDS:
            for e in reversed(self.events):
                if e["kind"] == ENDS[kind] and e.get("end_at") is None:
                    e["end_at"] = ev["start"]
            self.update()
            return None
        if kind in BACKS:
            for e in self.events:
                if e["kind"] in BACKS[kind] and e.get("end_at") is None:
                    e["end_at"] = ev["start"]  # the first lane back closes the crash band
            self.update()
            return None
        if kind not in FAULT_EVENTS and kind not in OTHER_EVENTS:
            return None
        if kind == "cold-cache" and ev.get("lane"):
            kind = "lab-failed"  # a lane's cache could not be flushed: shown as that lane's failure
        fault = kind_of_event(kind)
        window = fault is not None and (fault.window or fault.back_event is not None)  # a crash lasts until a restart
        shown = dict(ev, label=event_label(ev), end_at=None if window else ev["start"])
        self.events.append(shown)
        # the scheduled fault this event fulfils leaves the "ahead" list
        for i, s in enumerate(self.scheduled):
            if s["kind"] == kind and abs(s["start"] - ev["start"]) < 1.0:
                del self.scheduled[i]
                break
        self.update()
        return shown

    # -- geometry ---------------------------------------------------------------------------

    def _x(self, t: float) -> float:
        m = 6 * self.scale
        span = max(1e-9, self.hi - self.lo)
        return m + (t - self.lo) / span * (self.width() - 2 * m)

    def place_labels(self) -> list[tuple[QRectF, dict]]:
        """Each label's rectangle, in rows from the top; events without room are counted.
        (Not named ``layout``: that is QWidget's, which returns the widget's QLayout.)"""
        fm = QFontMetricsF(_font(self._px()))
        row_h = self._row_h()
        ends = [-1e9] * MAX_ROWS
        out = []
        self.unlabelled = 0
        items = [e for e in self.events + self.scheduled if self.lo - 1e-9 <= e["start"] <= self.hi]
        note_w = fm.horizontalAdvance("+999") + GAP_PX
        right = self.width() - 2
        for e in sorted(items, key=lambda e: e["start"]):
            text = e.get("label") or event_label(e)
            if e.get("scheduled"):
                text = f"{text} (scheduled)"
            w = fm.horizontalAdvance(text) + 6 * self.scale
            x = self._x(e["start"])
            left = min(max(2.0, x), right - note_w - w)  # never cut at either edge
            for row in range(MAX_ROWS):
                if left >= ends[row] + GAP_PX:
                    rect = QRectF(left, 2 + row * row_h, w, row_h - 2)
                    ends[row] = rect.right()
                    out.append((rect, dict(e, label=text)))
                    break
            else:
                self.unlabelled += 1
        self._labels = out
        return out

    def label_rects(self) -> list[QRectF]:
        self.place_labels()
        return [r for r, _ in self._labels]

    # -- painting ---------------------------------------------------------------------------

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        t, s = self.theme, self.scale
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        p.fillRect(self.rect(), QColor(t.panel))
        labels = self.place_labels()
        axis_y = self.height() - self._axis_h()
        # bands and marks
        for e in self.events + self.scheduled:
            shade = FAULT_EVENTS.get(e["kind"], ("crash" if e["kind"] in FAILURES else None, None))[0]
            colour = QColor(FAULT_SHADE[shade][0]) if shade else QColor(t.text)
            x0 = self._x(e["start"])
            if e.get("scheduled"):
                colour = QColor(t.muted)
            end = e.get("end_at")
            if end is None and not e.get("scheduled"):
                end = self.now
            if end is not None and end > e["start"]:
                band = QColor(colour)
                band.setAlpha(50)
                p.fillRect(QRectF(x0, 0, max(2.0, self._x(end) - x0), axis_y), band)
            pen = QPen(colour, 2.0 * s)
            if e.get("scheduled"):
                pen.setStyle(Qt.PenStyle.DashLine)
            p.setPen(pen)
            p.drawLine(QPointF(x0, 0), QPointF(x0, axis_y))
        # labels
        p.setFont(_font(self._px()))
        for rect, e in labels:
            shade = FAULT_EVENTS.get(e["kind"], ("crash" if e["kind"] in FAILURES else None, None))[0]
            colour = (
                QColor(t.muted) if e.get("scheduled") else QColor(FAULT_SHADE[shade][0]) if shade else QColor(t.text)
            )
            bg = QColor(t.panel)
            p.fillRect(rect, bg)
            p.setPen(QPen(colour, 1.5 * s, Qt.PenStyle.DashLine if e.get("scheduled") else Qt.PenStyle.SolidLine))
            p.drawRect(rect.adjusted(0.5, 0.5, -0.5, -0.5))
            p.setPen(QColor(t.text) if not e.get("scheduled") else QColor(t.muted))
            p.drawText(rect, Qt.AlignmentFlag.AlignCenter, e["label"])
        if self.unlabelled:
            p.setPen(QColor(t.text))
            p.drawText(
                QRectF(0, 2, self.width() - 4, self._row_h()), Qt.AlignmentFlag.AlignRight, f"+{self.unlabelled}"
            )
        # the time axis
        p.setPen(QPen(QColor(t.muted), 1.0))
        p.drawLine(QPointF(0, axis_y), QPointF(self.width(), axis_y))
        p.setFont(_font(self._px() * 0.9))
        step = 5.0 if (self.hi - self.lo) <= 30 else 10.0
        tick = math.ceil(self.lo / step) * step
        fm = QFontMetricsF(p.font())
        while tick <= self.hi + 1e-9:
            x = self._x(tick)
            p.drawLine(QPointF(x, axis_y), QPointF(x, axis_y + 4 * s))
            text = f"{tick:g} s"
            w = fm.horizontalAdvance(text)
            p.drawText(QPointF(min(max(0.0, x - w / 2), self.width() - w), self.height() - 3), text)
            tick += step
        if self.now > self.lo:  # now
            p.setPen(QPen(QColor(t.text), 1.0, Qt.PenStyle.DotLine))
            x = self._x(self.now)
            p.drawLine(QPointF(x, 0), QPointF(x, axis_y))
        p.end()

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt's name
        pos = event.position()
        for rect, e in self._labels:
            if rect.contains(pos):
                self.picked.emit(e)
                return
        near = [e for e in self.events if abs(self._x(e["start"]) - pos.x()) <= 6 * self.scale]
        if near:
            self.picked.emit(near[-1])

    def mouseMoveEvent(self, event) -> None:  # noqa: N802 - Qt's name
        pos = event.position()
        hit = next((e for rect, e in self._labels if rect.contains(pos)), None)
        self.setToolTip(f"{hit['start']:.1f} s — {hit.get('detail', '')}\nclick: what it did" if hit else "")
        self.setCursor(Qt.CursorShape.PointingHandCursor if hit else Qt.CursorShape.ArrowCursor)


class CaptionBar(QWidget):
    """The last fault in one sentence, the active faults and the run's clock."""

    BASE_PX = 15.0

    def __init__(self, parent=None):
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(8, 2, 8, 2)
        self.caption = QLabel("")
        self.caption.setObjectName("caption")
        self.caption.setWordWrap(True)
        self.caption.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)
        self.caption.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.active = QLabel("")
        self.active.setObjectName("active-faults")
        self.active.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        row.addWidget(self.caption, 1)
        row.addWidget(self.active, 0)  # as wide as what is active: the caption keeps the rest
        self.theme: Theme = THEMES["light"]
        self.scale = 1.0
        self.caption_event: dict | None = None  # the event the caption is about
        self._apply()

    def set_theme(self, theme: Theme) -> None:
        self.theme = theme
        self._apply()

    def set_scale(self, s: float) -> None:
        if abs(s - self.scale) > 1e-6:
            self.scale = s
            self._apply()

    def _apply(self) -> None:
        t = self.theme
        self.caption.setFont(_font(self.BASE_PX * self.scale, bold=True))
        self.active.setFont(_font(self.BASE_PX * 0.9 * self.scale))
        self.setStyleSheet(f"QLabel {{ color: {t.text}; }}")
        line = QFontMetricsF(self.caption.font()).height()
        self.setMinimumHeight(math.ceil(2 * line + 6))  # a caption may take two lines

    def say(self, text: str, about: dict | None = None) -> None:
        self.caption_event = about
        self.caption.setText(text)

    def clear_caption(self) -> None:
        self.say("")

    def set_active(self, items: list[str]) -> None:
        text = "   ".join(items) if items else ""
        if self.active.text() != text:
            self.active.setText(text)
