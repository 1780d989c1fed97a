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
    ("[[faults]]\nat = 1\nkind = 'stampede'\nreaders = 1\n", 4, ["stampede readers", "2"]),
    ("[[faults]]\nat = 1\nkind = 'slow-db'\nduration = 1\nms = 'lots'\n", 5, ["slow-db ms"]),
    ("[[faults]]\nat = 1\nkind = 'burst'\nop = 'delete'\n", 4, ["op must be read or write"]),
    ("[[faults]]\nat = 1\nkind = 'cold'\nduration = 3\n", 4, ["unknown key 'duration'"]),
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


def test_every_fault_kind_loads_and_saves_back(tmp_path):
    from cachestudio.engine.scenario import load, timeline_toml

    text = """duration = 30
[[faults]]
at = 1
kind = "crash"
[[faults]]
at = 2
kind = "outage"
duration = 3
[[faults]]
at = 6
kind = "slow-db"
duration = 2
ms = 80
[[faults]]
at = 9
kind = "slow-cache"
duration = 1
[[faults]]
at = 11
kind = "cold"
[[faults]]
at = 12
kind = "burst"
op = "read"
count = 500
[[faults]]
at = 14
kind = "stampede"
readers = 64
"""
    first = tmp_path / "all.toml"
    first.write_text(text)
    sc = load(first)
    assert sc.timeline == {"crash_at": [1.0], "outages": [(2.0, 3.0)], "slow_db": [(6.0, 2.0, 80.0)],
                           "slow_cache": [(9.0, 1.0, 20.0)], "cold_at": [11.0], "bursts": [(12.0, "read", 500)],
                           "stampedes": [(14.0, 64)]}
    again = tmp_path / "again.toml"
    again.write_text("duration = 30\n" + "\n".join(timeline_toml(sc.timeline)))
    assert load(again).timeline == sc.timeline
