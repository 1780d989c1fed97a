"""The views derive from the declarations: every fault kind (engine/faultkinds.py) has a
label, a shade and a scheduled mark on the event strip, and a line in the report's plan;
every strategy (engine/strategykinds.py) has a flow path for each outcome it can produce,
a colour and pen on the charts, a dash in the report, a narration, and a write queue drawn
when it queues writes. Each assertion names the kind and what it lacks, so a kind added
half-way fails here saying what is missing. Real widgets, offscreen."""

from __future__ import annotations

import itertools
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

from cachestudio.engine import htmlreport  # noqa: E402
from cachestudio.engine.faultkinds import FAULTS, FaultKind  # noqa: E402
from cachestudio.engine.history import INDETERMINATE, OUTCOMES  # noqa: E402
from cachestudio.engine.palette import OKABE_ITO  # noqa: E402
from cachestudio.engine.strategykinds import STRATEGY_KINDS, StrategyKind  # noqa: E402
from cachestudio.ui.charts import ChartPanel  # noqa: E402
from cachestudio.ui.events import FAULT_EVENTS, EventStrip, event_label, scheduled_events  # noqa: E402
from cachestudio.ui.flow import PATHS, FlowView, describe  # noqa: E402
from cachestudio.ui.theme import FAULT_SHADE, LANES, TOKENS  # noqa: E402

PENS = {"solid", "dash", "dot", "dashdot"}  # the pen names the charts and the window know


def _ids(kinds):
    return [k.name for k in kinds]


def _entry(kind: FaultKind, at: float = 3.0):
    """A timeline entry of ``kind`` at ``at``, with the values of its one-key action."""
    return kind.entry(at, kind.live_values())


# -- fault kinds ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", FAULTS, ids=_ids(FAULTS))
def test_every_fault_kind_has_an_event_label(kind: FaultKind):
    label = event_label({"kind": kind.start_event, "detail": "", "start": 1.0})
    name = kind.label.removesuffix(" (injected)")
    assert name in label, f"fault kind {kind.name!r} has no event label: shown as {label!r}, declared {kind.label!r}"
    assert ("(injected)" in label) == kind.injected, f"fault kind {kind.name!r}: its event label {label!r} " + (
        "lacks '(injected)'" if kind.injected else "says '(injected)' but the kind is not injected"
    )


@pytest.mark.parametrize("kind", FAULTS, ids=_ids(FAULTS))
def test_every_fault_kind_has_a_shade_with_a_colour(kind: FaultKind):
    assert kind.start_event in FAULT_EVENTS, f"fault kind {kind.name!r} has no entry in events.FAULT_EVENTS"
    shade, end = FAULT_EVENTS[kind.start_event]
    assert shade == kind.shade, f"fault kind {kind.name!r} is shaded {shade!r}, declared {kind.shade!r}"
    assert end == kind.end_event, f"fault kind {kind.name!r}: its window ends at {end!r}, declared {kind.end_event!r}"
    assert shade in FAULT_SHADE, f"fault kind {kind.name!r} has no shade {shade!r} in theme.FAULT_SHADE"
    colour, words = FAULT_SHADE[shade]
    assert colour in OKABE_ITO.values(), f"fault kind {kind.name!r}: its shade {shade!r} has no palette colour"
    assert words, f"fault kind {kind.name!r}: its shade {shade!r} has no words for the legend"


@pytest.mark.parametrize("kind", FAULTS, ids=_ids(FAULTS))
def test_every_fault_kind_is_drawn_ahead_when_scheduled(qtbot, kind: FaultKind):
    events = scheduled_events({kind.field: [_entry(kind)]}, restart_delay_s=1.0)
    assert len(events) == 1, f"fault kind {kind.name!r}: a timeline entry of it gives no scheduled event"
    ev = events[0]
    assert ev["kind"] == kind.start_event and ev["start"] == 3.0, f"fault kind {kind.name!r}: scheduled as {ev}"
    if any(p.name == "duration" for p in kind.params) or kind.back_event:  # known ahead: how long it lasts
        assert ev["end_at"] is not None and ev["end_at"] > 3.0, (
            f"fault kind {kind.name!r} lasts, but its scheduled mark has no end"
        )
    strip = EventStrip()
    qtbot.addWidget(strip)
    strip.resize(900, strip.height())
    strip.set_range(0.0, 60.0, 0.0)
    strip.set_scheduled(events)
    labels = [e["label"] for _, e in strip.place_labels()]
    assert labels and labels[0].endswith("(scheduled)"), f"fault kind {kind.name!r}: no scheduled mark drawn"
    assert kind.label.removesuffix(" (injected)") in labels[0], (
        f"fault kind {kind.name!r}: its scheduled mark is not labelled as declared: {labels[0]!r}"
    )
    # the fault, once it happens, takes the scheduled mark's place
    shown = strip.add({"kind": kind.start_event, "start": 3.2, "detail": "", "lane": None})
    assert shown is not None, f"fault kind {kind.name!r}: its event is not shown on the strip"
    assert not strip.scheduled, f"fault kind {kind.name!r}: the event did not fulfil its scheduled mark"


@pytest.mark.parametrize("kind", FAULTS, ids=_ids(FAULTS))
def test_every_fault_kind_is_in_the_reports_plan_and_events(kind: FaultKind):
    planned = htmlreport.planned_fault(kind, _entry(kind))
    assert planned is not None, f"fault kind {kind.name!r} has no line in the report's fault timeline"
    assert kind.name in htmlreport.PLANNED, f"fault kind {kind.name!r} has no words in htmlreport.PLANNED"
    html = htmlreport.render_report({"lanes": [], "duration_s": 10}, {"plan": {kind.field: [_entry(kind)]}}, {})
    assert htmlreport.esc(planned[1]) in html, f"fault kind {kind.name!r}: the report does not list it"
    summary = {"lanes": [], "duration_s": 10, "events": [{"kind": kind.start_event, "start": 3.0, "detail": "d"}]}
    row = htmlreport.render_report(summary, {}, {}).split(f'<tr data-kind="{kind.start_event}">', 1)
    assert len(row) == 2, f"fault kind {kind.name!r}: its event is not in the report's events"
    name = htmlreport.esc(kind.label.removesuffix(" (injected)"))
    assert row[1].split("</tr>")[0].count(f"<td>{name}") == 1, (
        f"fault kind {kind.name!r}: the report's events do not name it {name!r}"
    )


def test_a_crash_that_lasts_until_its_lane_is_back_closes_then(qtbot):
    strip = EventStrip()
    qtbot.addWidget(strip)
    for kind in FAULTS:
        if not kind.back_event:
            continue
        strip.clear()
        strip.add({"kind": kind.start_event, "start": 2.0, "detail": "", "lane": None})
        assert strip.events[-1]["end_at"] is None, f"fault kind {kind.name!r} is drawn as an instant"
        strip.add({"kind": kind.back_event, "start": 3.0, "detail": "", "lane": "cache-aside"})
        assert strip.events[-1]["end_at"] == 3.0, (
            f"fault kind {kind.name!r}: its window does not close at {kind.back_event!r}"
        )


# -- strategies -------------------------------------------------------------------------


def _outcomes(kind: StrategyKind) -> set[tuple[str, str]]:
    """What a strategy's operations can end as (engine/history.OUTCOMES): reads hit, miss
    or fail; writes are acknowledged or fail, are rejected only by a write queue, and are
    indeterminate only when a step follows the one that applies them."""
    reads = {("read", o) for o in OUTCOMES if o in ("hit", "miss", "error")}
    steps = kind.write_paths["ok"][0][1:-1]
    after = steps.index(kind.applies_at) < len(steps) - 1 if kind.applies_at in steps else False
    writes = {
        ("write", o)
        for o in OUTCOMES
        if o in ("ok", "error") or (o == "rejected" and kind.queues_writes) or (o == INDETERMINATE and after)
    }
    return reads | writes


@pytest.mark.parametrize("kind", STRATEGY_KINDS, ids=_ids(STRATEGY_KINDS))
def test_every_strategy_has_a_flow_path_for_each_outcome(qtbot, kind: StrategyKind):
    assert kind.name in PATHS, f"strategy {kind.name!r} has no flow paths"
    view = FlowView()
    qtbot.addWidget(view)
    view.set_lanes([kind.name])
    drawn = view.lanes[0].items["edges"]
    for op in sorted(_outcomes(kind)):
        assert op in PATHS[kind.name], f"strategy {kind.name!r} has no flow path for {op}"
        nodes, token, _ = PATHS[kind.name][op]
        assert token in TOKENS, f"strategy {kind.name!r}: the path for {op} has a token {token!r} with no colour"
        for a, b in itertools.pairwise(nodes):
            assert (a, b) in drawn or (b, a) in drawn, (
                f"strategy {kind.name!r}: the path for {op} goes {a} → {b}, an edge its lane does not draw"
            )
    has_queue = "queue" in view.lanes[0].items["nodes"]
    assert has_queue == kind.queues_writes, (
        f"strategy {kind.name!r} {'queues' if kind.queues_writes else 'does not queue'} writes, "
        f"but its lane {'lacks' if kind.queues_writes else 'draws'} a write queue"
    )
    view.timer.stop()


@pytest.mark.parametrize("kind", STRATEGY_KINDS, ids=_ids(STRATEGY_KINDS))
def test_every_strategy_has_a_colour_pen_and_dash(kind: StrategyKind):
    assert kind.name in LANES, f"strategy {kind.name!r} has no colour and pen in theme.LANES"
    colour, pen, short = LANES[kind.name]
    assert colour == OKABE_ITO.get(kind.colour), f"strategy {kind.name!r} has no palette colour ({kind.colour!r})"
    assert pen in PENS, f"strategy {kind.name!r} has a pen {pen!r} the charts do not know"
    assert short, f"strategy {kind.name!r} has no short label"
    assert kind.name in htmlreport.LANE_DASHES, f"strategy {kind.name!r} has no dash in the HTML report"
    assert htmlreport.LANE_COLOURS.get(kind.name) == colour, (
        f"strategy {kind.name!r} is drawn {htmlreport.LANE_COLOURS.get(kind.name)} in the report, "
        f"{colour} in the window"
    )
    assert htmlreport.LANE_DASHES[kind.name] in htmlreport.DASH_WORDS, (
        f"strategy {kind.name!r}: the report has no words for its dash {kind.dash!r}"
    )
    others = [s for s in STRATEGY_KINDS if s is not kind]
    assert all((s.colour, s.pen) != (kind.colour, kind.pen) for s in others), (
        f"strategy {kind.name!r} looks like another (same colour and pen)"
    )


@pytest.mark.parametrize("kind", STRATEGY_KINDS, ids=_ids(STRATEGY_KINDS))
def test_every_strategy_has_a_narration(kind: StrategyKind):
    write = {"kind": "write", "key": "k1", "version": 2, "outcome": "ok", "start": 1.0, "end": 1.001}
    text = describe(kind.name, write)
    assert kind.write_steps and kind.write_steps in text, f"strategy {kind.name!r} has no narration of a write"
    for op, outcome in sorted(_outcomes(kind)):
        said = describe(kind.name, {"kind": op, "key": "k1", "version": 2, "outcome": outcome})
        assert said.strip() and outcome in said or op == "write" and outcome == "ok", (
            f"strategy {kind.name!r}: no narration of a {op} that ends {outcome}"
        )


@pytest.mark.parametrize("kind", STRATEGY_KINDS, ids=_ids(STRATEGY_KINDS))
def test_every_strategy_that_queues_writes_has_a_queue_chart_line(qtbot, kind: StrategyKind):
    panel = ChartPanel()
    qtbot.addWidget(panel)
    panel.set_lanes([kind.name], [])
    queue_chart = panel.curves[4]
    assert bool(queue_chart) == kind.queues_writes, (
        f"strategy {kind.name!r}: the queue chart {'lacks' if kind.queues_writes else 'has'} a line for it"
    )
    panel.timer.stop()
