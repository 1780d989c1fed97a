"""Named lanes: a strategy plus knobs of its own, beside other lanes on the same seeded
workload (`--lane NAME=STRATEGY[,knob=value...]`, a scenario's `[[lanes]]`)."""

from __future__ import annotations

import json

import pytest
from helpers import cli
from hypothesis import given, settings
from hypothesis import strategies as st

from cachestudio.engine import scenario as scenarios
from cachestudio.engine.config import (
    ConfigError,
    LaneConfig,
    LaneSpec,
    check_lane_name,
    knob_names,
    lane_labels,
    parse_lane,
    validate,
)

# -- the command line's syntax -------------------------------------------------------------

KNOBS = {  # a knob of each type, and a value of that type
    "stampede": ("cache", "stampede", "lease", "lease"),
    "durable": ("write_behind", "durable", "true", True),
    "ttl_s": ("cache", "ttl_s", "2.5", 2.5),
    "batch_size": ("write_behind", "batch_size", "7", 7),
    "cache.size_limit_mb": ("cache", "size_limit_mb", "3", 3.0),
    "db_read_ms": ("latency", "db_read_ms", "4", 4.0),
}


@given(
    name=st.text(
        st.characters(blacklist_characters='"\\=,', blacklist_categories=("Cc", "Cs", "Zl", "Zp")),
        min_size=1,
        max_size=40,
    )
    .map(str.strip)
    .filter(bool),
    strategy=st.sampled_from(["cache-aside", "write-through", "write-behind"]),
    knobs=st.lists(st.sampled_from(sorted(KNOBS)), unique=True, max_size=4),
)
def test_a_lane_reads_back_its_name_strategy_and_knobs(name, strategy, knobs):
    text = f"{name}={strategy}" + "".join(f",{k}={KNOBS[k][2]}" for k in knobs)
    spec = parse_lane(text)
    assert spec.name == name and spec.strategy == strategy
    assert {(s, k): v for s, k, v in spec.overrides} == {(KNOBS[k][0], KNOBS[k][1]): KNOBS[k][3] for k in knobs}
    cfg = spec.build(LaneConfig("cache-aside", seed=5))
    assert cfg.label == name and cfg.seed == 5 and validate(cfg) is cfg
    for k in knobs:
        section, field, _, value = KNOBS[k]
        assert getattr(getattr(cfg, section), field) == value


@settings(max_examples=300)
@given(text=st.text(max_size=60))
def test_any_other_lane_text_is_one_line_config_error(text):
    try:
        spec = parse_lane(text)
    except ConfigError as exc:
        assert "\n" not in str(exc) and str(exc)
    else:
        check_lane_name(spec.name)
        validate(spec.build(LaneConfig("cache-aside")))


def test_a_name_found_in_two_sections_must_say_which():
    shared = [name for name, places in knob_names().items() if len(places) > 1]
    for name in shared:
        with pytest.raises(ConfigError, match="several sections"):
            parse_lane(f"x=cache-aside,{name}=1")


@pytest.mark.parametrize(
    "names, message",
    [
        (["a", "a"], "both named"),
        (["no protection", "No-Protection"], "share the folder"),
        (["cache-aside", "cache-aside"], "both named"),
    ],
)
def test_lanes_of_one_run_differ_in_name_and_folder(names, message):
    with pytest.raises(ConfigError, match=message):
        lane_labels([LaneSpec("cache-aside", n).build(LaneConfig("cache-aside")) for n in names])


def test_an_unnamed_lane_keeps_its_strategys_name_and_folder():
    cfg = LaneConfig("write-behind")
    assert cfg.label == "write-behind" and cfg.slug == "write-behind"
    named = LaneSpec("write-behind", "write-behind · durable").build(cfg)
    assert named.label == "write-behind · durable" and named.slug == "write-behind-durable"


# -- a run with named lanes ------------------------------------------------------------------


def test_named_lanes_run_side_by_side_and_are_named_everywhere(tmp_path):
    run_dir, hist, out = tmp_path / "run", tmp_path / "h.jsonl", tmp_path / "s.json"
    res = cli(
        "run",
        "--lane",
        "no protection=cache-aside",
        "--lane",
        "lease=cache-aside,stampede=lease",
        "--lane",
        "volatile=write-behind",
        "--duration",
        "2",
        "--seed",
        "4",
        "--rate",
        "800",
        "--stampede",
        "1:20",
        "--stampede-protection",
        "single-flight",
        "--run-dir",
        str(run_dir),
        "--history",
        str(hist),
        "--json",
        str(out),
    )
    assert res.returncode == 0, res.stderr
    summary = json.loads(out.read_text())
    assert [(ln["name"], ln["strategy"]) for ln in summary["lanes"]] == [
        ("no protection", "cache-aside"),
        ("lease", "cache-aside"),
        ("volatile", "write-behind"),
    ]
    assert sorted(p.name for p in run_dir.iterdir() if p.is_dir()) == ["lease", "no-protection", "volatile"]
    lanes = {json.loads(line).get("lane") for line in hist.read_text().splitlines()}
    assert {"no protection", "lease", "volatile"} <= lanes and "cache-aside" not in lanes
    header = res.stdout.splitlines()
    assert any(line.split() == ["no", "protection", "lease", "volatile"] for line in header)
    done = {e["lane"]: e["detail"] for e in summary["events"] if e["kind"] == "stampede-done"}
    # the lane's own knob wins over the one typed for the whole run; the others take it
    assert "(protection: lease)" in done["lease"]
    assert "(protection: single-flight)" in done["no protection"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--lane", "a=cache-aside", "--strategy", "all"], "--strategy or --lane"),
        (["--lane", "a=cache-aside", "--lane", "a=write-through"], "both named"),
        (["--lane", "a=cache-around"], "strategy must be one of"),
        (["--lane", "a=cache-aside,stampede=maybe"], "stampede protection must be one of"),
        (["--lane", "a=cache-aside,flux=1"], "unknown knob"),
        (["--lane", 'a"b=cache-aside'], "must not hold"),
        (["--lane", "=cache-aside"], "must not be empty"),
    ],
)
def test_a_bad_lane_is_one_line_and_exit_2(tmp_path, args, message):
    res = cli("run", *args, "--duration", "1", "--run-dir", str(tmp_path / "run"))
    assert res.returncode == 2, res.stdout + res.stderr
    assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr
    assert not (tmp_path / "run").exists()


# -- a scenario's [[lanes]] ---------------------------------------------------------------------

LANES = """name = "two"
seed = 3
duration = 2

[workload]
rate = 500
keys = 50

[cache]
ttl_s = 9

[[lanes]]
name = "short ttl"
strategy = "cache-aside"
cache.ttl_s = 0.5

[[lanes]]
name = "durable"
strategy = "write-behind"

[lanes.write_behind]
durable = true
"""


def test_a_scenarios_lanes_set_their_own_knobs_on_top_of_the_files(tmp_path):
    f = tmp_path / "two.toml"
    f.write_text(LANES)
    sc = scenarios.load(f)
    assert [(c.label, c.strategy) for c in sc.lanes] == [("short ttl", "cache-aside"), ("durable", "write-behind")]
    assert [c.cache.ttl_s for c in sc.lanes] == [0.5, 9.0]
    assert [c.write_behind.durable for c in sc.lanes] == [False, True]
    assert sc.base.cache.ttl_s == 9.0 and sc.base.name == ""


@pytest.mark.parametrize(
    "change, message",
    [
        (('name = "durable"', 'name = "short ttl"'), "both named"),
        (('strategy = "write-behind"', 'strategy = "write-ahead"'), "strategy must be one of"),
        (("cache.ttl_s = 0.5", "cache.ttl = 0.5"), "unknown key 'ttl'"),
        (("cache.ttl_s = 0.5", "cache.ttl_s = -1"), "lane 'short ttl': cache ttl must be"),
        (("durable = true", "durable = 1"), "must be true or false"),
        (('name = "durable"', 'colour = "red"\nname = "durable"'), "unknown key 'colour' for a lane"),
        (("duration = 2", 'duration = 2\nstrategy = "all"'), "strategy or [[lanes]], not both"),
        (('name = "durable"', 'name = "a,b"'), "must not hold"),
    ],
)
def test_a_bad_lane_in_a_scenario_is_one_line_naming_its_file_and_line(tmp_path, change, message):
    f = tmp_path / "two.toml"
    assert LANES.count(change[0]) == 1
    f.write_text(LANES.replace(*change))
    with pytest.raises(scenarios.ScenarioError) as err:
        scenarios.load(f)
    text = str(err.value)
    assert message in text and "\n" not in text and text.startswith(f"{f} line ")


def test_a_recorded_named_lane_run_replays_to_the_same_summary(tmp_path):
    rec, out = tmp_path / "r.csrec", tmp_path / "live.json"
    res = cli(
        "run",
        "--lane",
        "volatile=write-behind",
        "--lane",
        "durable=write-behind,durable=true",
        "--duration",
        "2.5",
        "--rate",
        "1500",
        "--flush-interval",
        "1",
        "--crash-at",
        "1.2",
        "--restart-delay",
        "0.3",
        "--record",
        str(rec),
        "--json",
        str(out),
    )
    assert res.returncode == 0, res.stderr
    live = json.loads(out.read_text())
    lost = {ln["name"]: ln["anomalies"]["lost_writes"] for ln in live["lanes"]}
    assert lost["volatile"] > 0 and lost["durable"] == 0
    again = cli("replay", str(rec), "--json")
    assert again.returncode == 0, again.stderr
    replayed = json.loads(again.stdout)
    for key in ("lanes", "faults", "history_records"):
        assert replayed[key] == live[key]
