"""A lesson's claims ([expect]) and lines (watch_for, you_will_learn, say), and
`cachestudio check --run`, which runs a scenario headless and checks its claims."""

from __future__ import annotations

import operator
import subprocess

import pytest
from helpers import LESSON, ROOT, cli, require, write
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cachestudio.engine import scenario as scenarios
from cachestudio.engine.config import Backends, LaneConfig, Workload
from cachestudio.engine.lessons import (
    EVENT_METRICS,
    FIGURES,
    METRICS,
    ClaimError,
    actual,
    check,
    measure,
    parse_claim,
)
from cachestudio.engine.runner import Plan, run
from cachestudio.engine.servers import redis_server

OPS = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    "=": operator.eq,
    "": operator.eq,
}


@given(
    op=st.sampled_from(list(OPS)),
    bound=st.integers(-(10**6), 10**6) | st.floats(-1e6, 1e6, allow_nan=False),
    x=st.integers(-(10**6), 10**6) | st.floats(-1e6, 1e6, allow_nan=False),
    space=st.sampled_from(["", " ", "  "]),
)
def test_a_claim_holds_exactly_when_its_comparison_does(op, bound, x, space):
    text = f"{op}{space}{bound!r}" if isinstance(bound, float) else f"{op}{space}{bound}"
    claim = parse_claim("write-behind", "lost_writes", text)
    assert claim.holds(x) == OPS[op](x, float(text.lstrip("<>=! ")))
    assert claim.holds(None) is False
    assert parse_claim("write-behind", "lost_writes", bound).holds(x) == (x == bound)


@given(text=st.text(max_size=80))
def test_anything_else_is_a_one_line_claim_error_or_a_claim(text):
    try:
        claim = parse_claim("cache-aside", "errors", text)
    except ClaimError as exc:
        assert "\n" not in str(exc)
    else:
        assert claim.op in (">", ">=", "<", "<=", "==", "!=")


@pytest.mark.parametrize("value", [True, None, [1], {"a": 1}, float("inf"), "zero", ">", "> 1 2"])
def test_a_claim_that_is_not_a_number_or_a_comparison_is_refused(value):
    with pytest.raises(ClaimError):
        parse_claim("cache-aside", "errors", value)
    with pytest.raises(ClaimError, match="unknown figure"):
        parse_claim("cache-aside", "lost_write", 0)


def test_a_lesson_file_loads_its_lines_and_claims(tmp_path):
    sc = scenarios.load(write(tmp_path, LESSON.format(wb=">0")))
    assert sc.watch_for == "the queue" and sc.you_will_learn == "volatile queues lose writes"
    assert sc.says == [{"at": 1.5, "kind": "crash", "say": "Kill it.", "pause": True}]
    assert [c.text() for c in sc.expect] == [
        '"cache-aside".lost_writes == 0',
        '"write-through".lost_writes == 0',
        '"write-behind".lost_writes > 0',
        '"write-behind".incarnations == 2',
    ]


@pytest.mark.parametrize(
    "change, message",
    [
        (('"write-behind".incarnations = 2', '"write-around".incarnations = 2'), "does not run"),
        (('"write-behind".incarnations = 2', '"write-behind".incarnation = 2'), "unknown figure"),
        (('"write-behind".incarnations = 2', '"write-behind".incarnations = "about 2"'), "an operator"),
        (("pause = true", 'pause = "yes"'), "pause must be true or false"),
        (('say = "Kill it."', 'say = "' + "x" * 400 + '"'), "at most 300"),
        (('say = "Kill it."', 'shout = "Kill it."'), "unknown key"),
    ],
)
def test_a_bad_lesson_is_one_line_naming_its_file_and_line(tmp_path, change, message):
    f = write(tmp_path, LESSON.format(wb=">0").replace(*change))
    with pytest.raises(scenarios.ScenarioError, match=message) as err:
        scenarios.load(f)
    text = str(err.value)
    assert "\n" not in text and text.startswith(f"{f} line ") and not text.startswith(f"{f} line 1:")


def check_run(target: str) -> subprocess.CompletedProcess:
    return cli("check", target, "--run", timeout=180)


def test_check_run_says_which_claims_held_and_fails_when_one_did_not(tmp_path):
    good = check_run(str(write(tmp_path, LESSON.format(wb=">0"), "good")))
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout.count("held:") == 4 and "every claim held (4)" in good.stdout
    bad = check_run(str(write(tmp_path, LESSON.format(wb="0"), "bad")))
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert 'DID NOT HOLD: "write-behind".lost_writes == 0' in bad.stdout
    assert bad.stderr.strip() == "cachestudio: 1 of 4 claims of tiny-crash did not hold"


LESSONS = [sc.name for sc in scenarios.builtin_scenarios() if sc.expect]
MAX_LESSON_S = 30


def test_every_built_in_scenario_is_a_lesson_that_states_its_claims():
    for sc in scenarios.builtin_scenarios():
        assert sc.is_lesson and sc.watch_for and sc.description, sc.name
        assert sc.expect and sc.pictures, f"{sc.name}: no claims or no pictures"
        assert sc.duration_s <= MAX_LESSON_S, f"{sc.name} runs {sc.duration_s:g} s"


@pytest.mark.parametrize("name", LESSONS)
def test_every_built_in_lessons_claims_hold(name):
    res = check_run(name)
    assert res.returncode == 0, res.stdout + res.stderr
    sc = scenarios.load(scenarios.find(name))
    assert res.stdout.count("held:") == len(sc.expect)


def test_the_claims_read_the_summarys_figures():
    lane = {
        "strategy": "write-behind",
        "ops": 10,
        "reads": 8,
        "writes": 2,
        "errors": 1,
        "rejected": 0,
        "indeterminate": 1,
        "hit_ratio": 0.5,
        "anomalies": {"stale_reads": 0, "lost_writes": 3, "dirty_cache": 0, "stale_cache": 0},
        "db": {"reads": 4, "writes": 2},
        "incarnations": 2,
        "queue": {"max_depth": 7, "dead_letters": 0},
        "latency_ms": {"read": {"p50": 0.1, "p99": 2.0}, "write": {"p50": 0.3, "p99": 4.0}},
    }
    events = [
        {
            "kind": "stampede-done",
            "lane": "write-behind",
            "detail": "write-behind: 50 readers of k0 caused 45 DB reads (protection: none); slowest 9 ms",
        },
        {
            "kind": "stampede-done",
            "lane": "write-behind",
            "detail": "write-behind: 50 readers of k0 caused 1 DB read (protection: lease); slowest 9 ms",
        },
        {
            "kind": "stampede-done",
            "lane": "cache-aside",
            "detail": "cache-aside: 50 readers of k0 caused 7 DB reads (protection: none); slowest 9 ms",
        },
    ]
    summary = {"lanes": [lane], "events": [{"kind": "stampede"}, *events]}
    for metric in METRICS:
        assert actual(parse_claim("write-behind", metric, 0), summary) is not None
    assert actual(parse_claim("write-behind", "stampede_db_reads", 0), summary) == 46
    assert actual(parse_claim("write-behind", "write_p99_ms", 0), summary) == 4.0
    [verdict] = check([parse_claim("write-behind", "lost_writes", ">=3")], summary)
    assert verdict.value == 3 and verdict.held and verdict.why == ""
    unaudited = {**summary, "lanes": [{**lane, "audited": False}]}
    [verdict] = check([parse_claim("write-behind", "lost_writes", ">=3")], unaudited)
    assert verdict.value is None and not verdict.held and "audit did not run" in verdict.why
    assert actual(parse_claim("cache-aside", "ops", 0), summary) is None


# -- claims on figures of an event: "—" where the event did not happen (issue 24, item 5) ----

#: The lanes of the runs below: one on the run's own redis-server, one on diskcache.
EVENT_LANES = ("on redis", "on disk")
#: What the test planned, by run: for each lane, the fault kinds whose event it must have.
PLANNED = {
    "faults": {"on redis": {"stampede", "crash-cache-server"}, "on disk": {"stampede"}},
    "quiet": {"on redis": set(), "on disk": set()},
}


@pytest.fixture(scope="module")
def event_runs(tmp_path_factory):
    """Two real runs of the same two lanes: one with a stampede and a kill of the run's own
    redis-server (only the Redis lane has a cache server to lose), one with no fault."""
    require(redis_server)
    base = LaneConfig("cache-aside", workload=Workload(rate=800, keys=50, read_ratio=0.8), seed=4)
    lanes = [
        LaneConfig("cache-aside", name="on redis", workload=base.workload, seed=4, backends=Backends(cache="redis")),
        LaneConfig("cache-aside", name="on disk", workload=base.workload, seed=4),
    ]
    root = tmp_path_factory.mktemp("event-runs")
    faults = run(
        Plan(
            lanes=lanes,
            duration_s=3.0,
            stampedes=[(0.8, 10)],
            server_crashes=[1.2],
            restart_delay_s=0.3,
            run_dir=root / "faults",
        )
    )
    quiet = run(Plan(lanes=lanes, duration_s=1.5, run_dir=root / "quiet"))
    for summary in (faults, quiet):
        assert summary["status"] == "ok", summary["failures"]
    return {"faults": faults, "quiet": quiet}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    which=st.sampled_from(sorted(PLANNED)),
    lane=st.sampled_from(EVENT_LANES),
    figure=st.sampled_from(sorted(EVENT_METRICS)),
    op=st.sampled_from([">", ">=", "<", "<=", "==", "!="]),
    bound=st.integers(-5, 5000),
)
def test_a_claim_on_a_figure_of_an_event_holds_only_where_it_happened(event_runs, which, lane, figure, op, bound):
    summary = event_runs[which]
    fig = EVENT_METRICS[figure]
    happened = fig.fault in PLANNED[which][lane]  # the plan is the witness, not the events
    [verdict] = check([parse_claim(lane, figure, f"{op} {bound}")], summary)
    if happened:
        assert isinstance(verdict.value, int) and verdict.value >= 0 and verdict.why == ""
        assert verdict.held == OPS[op](verdict.value, bound)
    else:
        assert verdict.value is None and not verdict.held and verdict.measured() == "—"
        assert f"no {fig.kind.label} happened in this" in verdict.why, verdict.why
        assert ("in this run" in verdict.why) == (which == "quiet")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    which=st.sampled_from(sorted(PLANNED)),
    lanes=st.permutations(EVENT_LANES),
    figures=st.tuples(st.sampled_from(sorted(FIGURES)), st.sampled_from(sorted(FIGURES))),
    op=st.sampled_from([">", ">=", "<", "<=", "==", "!="]),
    factor=st.sampled_from(["", "0.5 * ", "2 * ", "1e-3 * "]),
)
def test_a_comparison_between_lanes_holds_only_when_both_figures_were_measured(
    event_runs, which, lanes, figures, op, factor
):
    summary = event_runs[which]
    (mine, theirs), (figure, other) = lanes, figures
    claim = parse_claim(mine, figure, f"{op} {factor}'{theirs}'.{other}")
    assert parse_claim(mine, figure, claim.text().split(" ", 2)[2]) == claim  # its text reads back
    [verdict] = check([claim], summary)
    a, b = measure(mine, figure, summary)[0], measure(theirs, other, summary)[0]
    assert (verdict.value, verdict.other) == (a, b)
    if a is None or b is None:
        assert not verdict.held and verdict.why
    else:
        assert verdict.held == OPS[op](a, float(factor.rstrip("* ") or 1) * b)


def test_a_claim_on_a_stampede_that_did_not_happen_does_not_hold_and_says_why(tmp_path):
    body = (
        'name = "no-stampede"\nseed = 3\nduration = 1\nstrategy = "cache-aside"\n\n[workload]\nrate = 300\n\n'
        '[expect]\n"cache-aside".stampede_db_reads = "<= 4"\n"cache-aside".lost_writes = 0\n'
    )
    res = check_run(str(write(tmp_path, body)))
    assert res.returncode == 1, res.stdout + res.stderr
    assert 'DID NOT HOLD: "cache-aside".stampede_db_reads <= 4 (measured —: no stampede happened in this run)' in (
        res.stdout
    )
    assert 'held: "cache-aside".lost_writes == 0 (measured 0)' in res.stdout


@pytest.mark.parametrize(
    "claim, message",
    [
        ("\"> 'nope'.incarnations\"", "compares with lane 'nope', which this scenario does not run"),
        ("\"> 'cache-aside'.incarnation\"", "unknown figure 'incarnation'"),
        ("\"> 0.5 * 'cache-aside'\"", "another lane's figure"),
    ],
)
def test_a_bad_comparison_is_one_line_naming_its_file_and_line(tmp_path, claim, message):
    old = '"write-behind".incarnations = 2'
    f = write(tmp_path, LESSON.format(wb=">0").replace(old, f'"write-behind".incarnations = {claim}'))
    with pytest.raises(scenarios.ScenarioError, match=message) as err:
        scenarios.load(f)
    text = str(err.value)
    assert "\n" not in text and text.startswith(f"{f} line ") and not text.startswith(f"{f} line 1:")


def test_every_figure_is_in_the_docs_list_of_figures():
    text = " ".join((ROOT / "docs" / "cli.md").read_text(encoding="utf-8").split())
    listed = text[text.index("Figures: ") :].split(". A lane", 1)[0]
    missing = [f for f in FIGURES if f"`{f}`" not in listed]
    assert not missing, f"docs/cli.md's list of figures lacks {', '.join(missing)}"
