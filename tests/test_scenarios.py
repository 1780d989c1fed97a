"""Scenario files: the built-in ones load, and a broken one names its file and line."""

from __future__ import annotations

import pytest

from cachestudio.engine.scenario import ScenarioError, builtin_dir, builtin_scenarios, find, load

from test_cli import assert_bad_input, cli


def test_every_builtin_scenario_loads_and_is_listed():
    names = {p.stem for p in builtin_dir().glob("*.toml")}
    assert len(names) >= 4
    loaded = builtin_scenarios()
    assert {sc.name for sc in loaded} == names  # the name inside matches the file name
    for sc in loaded:
        assert sc.title and sc.description
    out = cli("scenarios")
    assert out.returncode == 0
    for name in names:
        assert name in out.stdout


def test_scenario_values_reach_the_lanes():
    sc = load(find("crash-the-node"))
    assert [c.strategy for c in sc.lanes] == ["cache-aside", "write-through", "write-behind"]
    assert sc.crash_at == [8.0]
    assert all(c.write_behind.flush_interval_s == 1.0 and c.seed == 7 for c in sc.lanes)
    outage = load(find("db-outage"))
    assert outage.outages == [(6.0, 4.0)]


@pytest.mark.parametrize("text, line, words", [
    ("seed = 7\n[workload]\nrate = 10\nread_ration = 0.5\n", 4, ["unknown key 'read_ration'", "[workload]"]),
    ("seed = 7\n\n[workload]\nrate = -10\n", 4, ["rate"]),
    ("[cache]\npersistent = 'yes'\n", 2, ["persistent", "true or false"]),
    ("duration = 5\n[[faults]]\nat = 1\nkind = 'crash'\n[[faults]]\nat = 99\nkind = 'crash'\n", 6, ["fault time"]),
    ("[[faults]]\nat = 1\nkind = 'meteor'\n", 3, ["meteor"]),
    ("[[faults]]\nat = 1\nkind = 'outage'\n", 1, ["outage duration"]),
    ("strategy = 'write-around'\n", 1, ["write-around"]),
    ("colour = 'blue'\n", 1, ["unknown key 'colour'"]),
    ("seed = \n", 1, ["line 1"]),
])
def test_broken_scenario_names_file_and_line(tmp_path, text, line, words):
    path = tmp_path / "broken.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as info:
        load(path)
    message = str(info.value)
    assert str(path) in message and f"line {line}" in message, message
    for word in words:
        assert word in message
    proc = cli("check", str(path))
    assert_bad_input(proc, f"line {line}")
    assert path.read_text() == text  # checking never changes the file


def test_check_accepts_a_good_file_and_refuses_a_missing_one(tmp_path):
    ok = cli("check", str(builtin_dir() / "db-outage.toml"))
    assert ok.returncode == 0 and "ok" in ok.stdout
    assert_bad_input(cli("check", str(tmp_path / "absent.toml")), "does not exist")
    assert_bad_input(cli("run", "--scenario", "no-such-scenario"), "no-such-scenario")
