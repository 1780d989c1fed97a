"""engine/scenariofile.py: what it writes, scenario.load reads back equal (issue 23, drift 1):
every built-in scenario, backends and nodes, named lanes with their own knobs, the faults
with the lesson's lines, claims and pictures, and strings no TOML writer should break."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import scenario_fields

from cachestudio.engine import scenario as scenarios
from cachestudio.engine.config import LaneSpec
from cachestudio.engine.faultkinds import FAULTS
from cachestudio.engine.scenariofile import fault_tables, plain_strategy, scenario_toml, toml_string

ATTRS = scenario_fields()


def again(sc, tmp_path: Path, name: str = "again.toml"):
    path = tmp_path / name
    path.write_text(scenario_toml(sc), encoding="utf-8")
    return scenarios.load(path)


def differences(a, b) -> list[str]:
    return [attr for attr in ATTRS if getattr(a, attr) != getattr(b, attr)]


@pytest.mark.parametrize("path", sorted(scenarios.builtin_dir().glob("*.toml")), ids=lambda p: p.stem)
def test_every_builtin_scenario_is_written_as_itself(path, tmp_path):
    sc = scenarios.load(path)
    assert differences(sc, again(sc, tmp_path)) == []


def test_backends_nodes_and_named_lanes_with_their_own_knobs(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(
        """name = "mine"
duration = 30
[backends]
cache = "redis"
store = "postgresql"
nodes = 3
aof = true
[workload]
rate = 10
[[lanes]]
name = "one lane · ünï"
strategy = "write-behind"
write_behind.durable = true
backends.nodes = 2
[[lanes]]
name = "plain"
strategy = "cache-aside"
""",
        encoding="utf-8",
    )
    sc = scenarios.load(path)
    back = again(sc, tmp_path)
    assert differences(sc, back) == []
    assert back.base.backends.nodes == 3 and back.base.backends.aof and back.lanes[0].backends.nodes == 2
    assert type(back.base.workload.rate) is float  # written as 10.0: a float knob stays a float
    data = tomllib.loads(scenario_toml(sc))
    assert data["backends"] == {"cache": "redis", "store": "postgresql", "nodes": 3, "aof": True}
    assert "strategy" not in data and [lane["name"] for lane in data["lanes"]] == ["one lane · ünï", "plain"]


def test_strings_that_need_escaping(tmp_path):
    sc = scenarios.load(scenarios.find("crash-the-node"))
    odd = replace(
        sc,
        title='a "title" with \\ and ünïcode ✓',
        description="two\nlines\tand a DEL \x7f and \x01",
        watch_for="C:\\path\\ and 'quotes'",
        you_will_learn="emoji 🧪 too",
    )
    assert differences(odd, again(odd, tmp_path)) == []
    assert toml_string("a\x7fb") == '"a\\u007fb"'


def test_the_lanes_as_strategy_or_as_named_lanes():
    assert plain_strategy([LaneSpec(s) for s in ("cache-aside", "write-through", "write-behind")]) == "all"
    assert plain_strategy([LaneSpec("write-behind")]) == "write-behind"
    assert plain_strategy([LaneSpec("cache-aside"), LaneSpec("write-behind")]) is None
    assert plain_strategy([LaneSpec("cache-aside", "mine")]) is None


def test_every_fault_kind_is_written_with_its_parameters_and_its_line(tmp_path):
    """A timeline with one fault of every kind (its parameters at their live values), each
    with a lesson's line; a line whose fault is gone is left out."""
    timeline = {k.field: [k.entry(1.0 + i, k.live_values())] for i, k in enumerate(FAULTS)}
    says = [{"at": 1.0 + i, "kind": k.name, "say": f"line {i}", "pause": i % 2 == 0} for i, k in enumerate(FAULTS)]
    text = "\n".join(fault_tables(timeline, says + [{"at": 99.0, "kind": "crash", "say": "gone", "pause": False}]))
    faults = tomllib.loads(text)["faults"]
    assert [f["kind"] for f in faults] == [k.name for k in FAULTS]
    for f, k in zip(faults, FAULTS):
        assert set(f) == {"at", "kind", "say", "pause"} | {p.name for p in k.params}, k.name
    assert "gone" not in text


def test_claims_about_a_lane_no_longer_run_are_left_out(tmp_path):
    sc = scenarios.load(scenarios.find("durable-queue"))
    assert sc.expect and {c.lane for c in sc.expect} == {"volatile queue", "durable queue"}
    one = replace(sc, specs=[sc.specs[1]], lanes=[sc.lanes[1]])
    back = again(one, tmp_path)
    # ... and so is a comparison with one (the durable queue's write p50 against the volatile's)
    assert back.expect == [c for c in sc.expect if c.lane == "durable queue" and c.other in (None, "durable queue")]
    assert any(c.other == "volatile queue" for c in sc.expect if c.lane == "durable queue")
