"""The knob table (config.KNOBS) is the one declaration of a lane's knobs: every knob of
every section is in it, and each has a command-line flag that sets it, a widget bounded to
the range the validator accepts (or a stated reason for none), a scenario key that loads,
and messages that name it. A knob half-added fails here, naming the knob and what it lacks."""

from __future__ import annotations

import os
import re

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from dataclasses import fields  # noqa: E402

import pytest  # noqa: E402
from PySide6.QtWidgets import QApplication, QCheckBox, QComboBox, QDoubleSpinBox, QSpinBox  # noqa: E402

from cachestudio.cli import lane_configs  # noqa: E402
from cachestudio.cliargs import KNOB_ARGS, LATENCY_HOPS, build_parser  # noqa: E402
from cachestudio.engine import scenario as scenarios  # noqa: E402
from cachestudio.engine.config import (  # noqa: E402
    BY_KEY,
    KNOBS,
    LIVE_KNOBS,
    SECTIONS,
    ConfigError,
    Knob,
    LaneConfig,
    validate,
)
from cachestudio.ui.controls import KnobPanel  # noqa: E402

IDS = [f"{k.section}.{k.name}" for k in KNOBS]


def other_value(k: Knob):
    """A valid value of the knob that is not its default."""
    if k.kind == "choice":
        return next(c for c in k.choices if c != k.default)
    if k.kind == "bool":
        return not k.default
    lo, hi = k.widget_range
    value = hi if hi != k.default else lo
    return int(value) if k.kind == "int" else float(value)


def outside(k: Knob) -> list:
    """Values just outside the knob's valid range (or not among its choices)."""
    if k.kind == "choice":
        return ["no-such-" + k.choices[0]]
    if k.kind == "bool":
        return [1]
    if k.kind == "int":
        return [int(k.lo) - 1, int(k.hi) + 1]
    tiny = 10.0**-k.decimals
    return [k.lo if k.low_open else k.lo - tiny, k.hi + tiny]


def with_value(k: Knob, value) -> LaneConfig:
    return LaneConfig("cache-aside").with_knob(k.section, k.name, value)


def test_every_field_of_every_section_is_in_the_table_in_its_order():
    table = [k.key for k in KNOBS]
    declared = [(section, f.name) for section, cls in SECTIONS.items() for f in fields(cls)]
    missing = [f"{s}.{n}" for s, n in declared if (s, n) not in table]
    extra = [f"{s}.{n}" for s, n in table if (s, n) not in declared]
    assert (missing, extra) == ([], [])
    assert table == declared, "the table lists each section's knobs in its dataclass's order"


def test_every_knob_has_its_parts():
    lacks = []
    for k in KNOBS:
        for part in ("label", "what", "flag", "help"):
            if not getattr(k, part):
                lacks.append(f"{k.section}.{k.name}: no {part}")
        if k.kind in ("int", "float") and not k.lo <= k.default <= k.hi:
            lacks.append(f"{k.section}.{k.name}: default {k.default} outside {k.lo}..{k.hi}")
        if k.kind == "choice" and k.default not in k.choices:
            lacks.append(f"{k.section}.{k.name}: default {k.default!r} not a choice")
        if k.words and k.kind != "bool":
            lacks.append(f"{k.section}.{k.name}: two words for a knob that is not true/false")
        if k.only_with:
            other = BY_KEY.get(tuple(k.only_with[:2]))
            if other is None or k.only_with[2] not in other.choices:
                lacks.append(f"{k.section}.{k.name}: only with {k.only_with}, which is no knob's choice")
    assert lacks == []
    whats = [k.what for k in KNOBS]
    assert sorted({w for w in whats if whats.count(w) > 1}) == [], "two knobs named alike in messages"
    assert LIVE_KNOBS == {k.key for k in KNOBS if k.live}


@pytest.mark.parametrize("k", KNOBS, ids=IDS)
def test_the_validator_takes_the_range_and_names_the_knob_outside_it(k):
    validate(with_value(k, k.default))
    validate(with_value(k, other_value(k)))
    for bad in outside(k):
        with pytest.raises(ConfigError) as err:
            validate(with_value(k, bad))
        assert str(err.value).startswith(f"{k.what} must be"), str(err.value)


@pytest.mark.parametrize("k", KNOBS, ids=IDS)
def test_every_knob_has_a_flag_that_sets_it(k):
    option, _, hop = k.flag.partition(" ")
    value = other_value(k)
    if hop:
        assert LATENCY_HOPS.get(hop) == k.name, f"{k.flag}: not a hop of {option}"
        argv = [option, f"{hop}={value}"]
    elif k.words:
        argv = [option, k.words[value]]
    elif k.kind == "bool":
        argv = [option if value else "--no-" + option[2:]]
    else:
        argv = [option, str(value)]
        assert option[2:].replace("-", "_") in KNOB_ARGS, f"{k.flag}: not in cliargs.KNOB_ARGS"
    args = build_parser().parse_args(["run", *argv])
    cfg, *_ = lane_configs(args)
    assert getattr(getattr(cfg, k.section), k.name) == value


def test_every_knob_option_of_run_is_a_knob():
    run = build_parser()._subparsers._group_actions[0].choices["run"]  # noqa: SLF001
    flags = {k.flag.partition(" ")[0] for k in KNOBS}
    knob_dests = set(KNOB_ARGS) | {"latency"}
    dests = {a.dest for a in run._actions}  # noqa: SLF001
    assert knob_dests <= dests
    assert {"--" + d.replace("_", "-") for d in knob_dests} == flags


@pytest.mark.parametrize("k", KNOBS, ids=IDS)
def test_every_knob_has_a_scenario_key_that_loads(k, tmp_path):
    value = other_value(k)
    shown = (
        ("true" if value else "false")
        if isinstance(value, bool)
        else f'"{value}"'
        if isinstance(value, str)
        else repr(value)
    )
    path = tmp_path / "one-knob.toml"
    path.write_text(f'strategy = "cache-aside"\n[{k.section}]\n{k.name} = {shown}\n')
    sc = scenarios.load(path)
    assert getattr(getattr(sc.lanes[0], k.section), k.name) == value
    bad = outside(k)[0]
    shown = f'"{bad}"' if isinstance(bad, str) else repr(bad)
    path.write_text(f'strategy = "cache-aside"\n[{k.section}]\n{k.name} = {shown}\n')
    with pytest.raises(scenarios.ScenarioError) as err:
        scenarios.load(path)
    assert "line 3" in str(err.value) and (k.what in str(err.value) or k.name in str(err.value)), str(err.value)


@pytest.fixture(scope="module")
def panel():
    app = QApplication.instance() or QApplication([])
    p = KnobPanel()
    yield p
    p.deleteLater()
    app.processEvents()


@pytest.mark.parametrize("k", KNOBS, ids=IDS)
def test_every_knob_has_a_widget_that_agrees_with_the_validator(k, panel):
    w = panel.widgets.get(k.key)
    if k.no_widget:
        assert w is None, f"{k.section}.{k.name} says it has no widget ({k.no_widget}) but has one"
        return
    assert w is not None, f"{k.section}.{k.name} has no widget and no reason for none"
    assert w.objectName() == f"knob:{k.section}.{k.name}"
    if k.kind == "choice":
        assert isinstance(w, QComboBox)
        assert [w.itemText(i) for i in range(w.count())] == list(k.choices)
        return
    if k.kind == "bool":
        assert isinstance(w, QCheckBox)
        return
    assert isinstance(w, QDoubleSpinBox if k.kind == "float" else QSpinBox)
    assert (w.minimum(), w.maximum()) == pytest.approx(k.widget_range)
    tiny = 10.0 ** -w.decimals() if k.kind == "float" else 1
    for inside in (w.minimum(), w.maximum()):
        validate(with_value(k, type(k.default)(inside)))
    for bad in (w.minimum() - tiny, w.maximum() + tiny):
        with pytest.raises(ConfigError, match=f"^{re.escape(k.what)} must be"):
            validate(with_value(k, type(k.default)(bad)))


def test_the_panel_has_a_widget_for_no_other_knob(panel):
    assert set(panel.widgets) == {k.key for k in KNOBS if not k.no_widget}


@pytest.mark.parametrize("k", [k for k in KNOBS if k.only_with], ids=lambda k: f"{k.section}.{k.name}")
def test_a_knob_that_matters_only_with_another_is_greyed_out_otherwise(k, panel):
    section, name, value = k.only_with
    control = panel.widgets[(section, name)]
    for choice in BY_KEY[(section, name)].choices:
        control.setCurrentText(choice)
        assert panel.widgets[k.key].isEnabled() == (choice == value), f"{k.section}.{k.name} with {name} {choice}"
    panel.load(LaneConfig("cache-aside"))
    assert panel.widgets[k.key].isEnabled() == (getattr(getattr(LaneConfig("cache-aside"), section), name) == value)
