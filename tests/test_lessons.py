"""A lesson's claims ([expect]) and lines (watch_for, you_will_learn, say), and
`cachestudio check --run`, which runs a scenario headless and checks its claims."""

from __future__ import annotations

import operator
import subprocess

import pytest
from helpers import LESSON, cli, write
from hypothesis import given
from hypothesis import strategies as st

from cachestudio.engine import scenario as scenarios
from cachestudio.engine.lessons import FIGURES, ClaimError, actual, check, parse_claim

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
    summary = {"lanes": [lane], "events": events}
    for metric in FIGURES:
        assert actual(parse_claim("write-behind", metric, 0), summary) is not None
    assert actual(parse_claim("write-behind", "stampede_db_reads", 0), summary) == 46
    assert actual(parse_claim("write-behind", "write_p99_ms", 0), summary) == 4.0
    [(claim, value, held)] = check([parse_claim("write-behind", "lost_writes", ">=3")], summary)
    assert value == 3 and held
    assert actual(parse_claim("cache-aside", "ops", 0), summary) is None
