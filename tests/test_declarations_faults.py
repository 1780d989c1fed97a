"""Every fault kind declared in engine/faultkinds.py has everything the engine, the command
line, the scenario files, the report and the lesson guides derive from it.

Each test goes over ``faultkinds.FAULTS``: a kind added there without one of its parts
fails here with a message naming the kind and what it lacks. Real parts: the command line's
own parser, scenario files loaded from disk, the runner's classes, the report's windows
computed from events, the guides' timeline rows.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from cachestudio import lessondocs
from cachestudio.cliargs import BadInput, build_parser
from cachestudio.engine import faultkinds, report, timeline
from cachestudio.engine.faultkinds import FAULTS, FaultKind
from cachestudio.engine.observer import COMMANDS
from cachestudio.engine.runner import Plan, Run
from cachestudio.engine.scenario import load

ROOT = Path(__file__).resolve().parents[1]
KINDS = pytest.mark.parametrize("kind", FAULTS, ids=lambda k: k.name)


def run_parser():
    return build_parser()._subparsers._group_actions[0].choices["run"]


def spelled(kind: FaultKind, values: dict) -> str:
    """The flag's argument: the time, then the given parameters in order (the rest left out)."""
    return ":".join(["2.5", *(str(values[p.name]) for p in kind.params if p.name in values)])


@KINDS
def test_the_command_line_has_its_flag_and_takes_its_values(kind):
    flags = {o: a for a in run_parser()._actions for o in a.option_strings}
    assert kind.flag in flags, f"{kind.name}: no {kind.flag} flag in `cachestudio run`"
    assert flags[kind.flag].dest == kind.field, f"{kind.name}: {kind.flag} does not fill the plan's {kind.field}"
    live = kind.live_values()
    args = build_parser().parse_args(["run", kind.flag, spelled(kind, live)])
    assert getattr(args, kind.field) == [kind.entry(2.5, live)], (
        f"{kind.name}: {kind.flag} {spelled(kind, live)} misread"
    )
    required = {p.name: live[p.name] for p in kind.params if p.default is None}
    defaults = {p.name: p.default if p.default is not None else live[p.name] for p in kind.params}
    args = build_parser().parse_args(["run", kind.flag, spelled(kind, required)])
    assert getattr(args, kind.field) == [kind.entry(2.5, defaults)], (
        f"{kind.name}: {kind.flag} without its optional parameters does not take their defaults"
    )
    with pytest.raises(BadInput, match=re.escape(kind.flag)):  # one line naming the flag
        build_parser().parse_args(["run", kind.flag, "soon"])


@KINDS
def test_required_parameters_come_first_and_have_what_the_window_needs(kind):
    optional = [p.default is not None for p in kind.params]
    assert optional == sorted(optional), (
        f"{kind.name}: a required parameter after an optional one "
        f"cannot be left out on the command line ({kind.metavar})"
    )
    for p in kind.params:
        assert p.type in (float, int, str), f"{kind.name}: parameter {p.name} has type {p.type}"
        if p.type is str:
            assert p.choices, f"{kind.name}: text parameter {p.name} has no choices"
        else:
            assert p.lo is not None and p.hi is not None, f"{kind.name}: parameter {p.name} has no range"
        assert p.live_value is not None, f"{kind.name}: parameter {p.name} has no value for the window's action"
    assert kind.merge in ("instant", "window", "same", "keep"), f"{kind.name}: unknown merge rule {kind.merge!r}"
    if kind.merge == "instant":
        assert kind.merge_why, f"{kind.name}: merged at one instant without a reason for the note"


@KINDS
def test_a_scenario_file_takes_it(kind, tmp_path):
    path = tmp_path / f"{kind.name}.toml"
    keys = "".join(f"{p.name} = {p.live_value!r}\n".replace("'", '"') for p in kind.params if p.default is None)
    path.write_text(f'duration = 10\n[[faults]]\nat = 2.5\nkind = "{kind.name}"\n{keys}')
    sc = load(path)
    assert sc.timeline[kind.field], (
        f"{kind.name}: a [[faults]] entry of this kind is not in the timeline's {kind.field}"
    )
    at, values = kind.values(sc.timeline[kind.field][0])
    assert at == 2.5 and set(values) == {p.name for p in kind.params}, f"{kind.name}: scenario entry misread"


@KINDS
def test_the_plan_and_the_run_have_its_field_and_command(kind):
    assert kind.field in {f.name for f in dataclasses.fields(Plan)}, f"{kind.name}: Plan has no field {kind.field}"
    assert kind.field in timeline.FIELDS, f"{kind.name}: the timeline has no field {kind.field}"
    method = getattr(Run, kind.command, None)
    assert callable(method), f"{kind.name}: Run has no command method {kind.command}()"
    try:
        inspect.signature(method).bind(None, **kind.live_values())
    except TypeError as exc:
        pytest.fail(f"{kind.name}: Run.{kind.command}() does not take its parameters by name ({exc})")
    assert kind.command in COMMANDS, f"{kind.name}: the observer does not let the window call {kind.command}"


@KINDS
def test_the_report_knows_its_window(kind):
    assert kind.start_event in report.NAMES, f"{kind.name}: the report has no window for event {kind.start_event}"
    assert kind.shade in faultkinds.SHADES, f"{kind.name}: no shade {kind.shade!r} in faultkinds.SHADES"
    detail = f"{kind.live_values().get('op', '')} ".lstrip() + "detail"
    events = [{"kind": kind.start_event, "start": 1.0, "lane": None, "detail": detail}]
    ends = [kind.end_event, kind.back_event, kind.done_event]
    events += [{"kind": e, "start": 2.0, "lane": "a", "detail": ""} for e in ends if e]
    windows = report.fault_windows(events, 10.0, ["a"])
    assert len(windows) == 1 and windows[0]["name"].startswith(kind.label), f"{kind.name}: report window {windows}"
    if any(ends):
        assert windows[0]["end"]["a"] < 10.0, f"{kind.name}: its end event does not end its window"
    for e in [kind.start_event, *filter(None, ends)]:
        assert e in report.WINDOW_EVENTS, f"{kind.name}: live outcomes ignore its event {e}"


@KINDS
def test_the_lesson_guides_name_it(kind):
    at, values = 2.0, kind.live_values()
    sc = SimpleNamespace(timeline={kind.field: [kind.entry(at, values)]}, restart_delay_s=1.0, says=[])
    rows = lessondocs.timeline_rows(sc)
    assert len(rows) == 1, f"{kind.name}: a fault without a say line is missing from the guide's table"
    assert rows[0][1].startswith(kind.label + ": ") and kind.sentence, f"{kind.name}: guide row {rows[0][1]!r}"
    for p in kind.params:
        assert p.name.upper() not in rows[0][1], f"{kind.name}: the guide prints the placeholder {p.name.upper()}"
    # a line whose fault was merged away is said at its own time, by the kind's label
    sc.says = [{"at": 9.0, "kind": kind.name, "say": "merged", "pause": False}]
    assert lessondocs.timeline_rows(sc)[-1][1] == kind.label, f"{kind.name}: a merged fault's line names it raw"


OWNED = [
    "engine/timeline.py",
    "engine/scenario.py",
    "engine/runner.py",
    "engine/observer.py",
    "engine/lab.py",
    "engine/report.py",
    "engine/outcomes.py",
    "engine/recording.py",
    "engine/timemachine.py",
    "engine/faultcheck.py",
    "lessondocs.py",
]


def test_no_decision_by_a_lanes_strategy_name():
    """Decisions by the strategy's property (strategykinds.queues_writes), never by its name."""
    found = [
        f"{name}:{n}"
        for name in OWNED
        for n, line in enumerate((ROOT / "cachestudio" / name).read_text().splitlines(), 1)
        if re.search(r"""[=!]=\s*["']write-behind["']""", line)
    ]
    assert found == [], f"compared with the literal write-behind: {found}"
