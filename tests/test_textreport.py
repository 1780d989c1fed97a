"""The text a run is read as (cachestudio/textreport.py), from a real run's summary: one
column per lane, queue figures for every lane whose strategy queues writes (named or not),
what each fault did; and the module needs neither Qt nor the command line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cachestudio.engine.config import LaneConfig, LaneSpec
from cachestudio.engine.runner import Plan, run
from cachestudio.engine.strategykinds import STRATEGY_KINDS
from cachestudio.textreport import format_bench, format_faults, format_table, lane_name, say_tables

QUEUEING = next(k for k in STRATEGY_KINDS if k.queues_writes)


@pytest.fixture(scope="module")
def summary():
    """Every strategy, and one that queues writes again under a name of its own, through a
    DB outage."""
    base = LaneConfig(STRATEGY_KINDS[0].name)
    lanes = [LaneSpec(k.name).build(base) for k in STRATEGY_KINDS]
    lanes.append(LaneSpec(QUEUEING.name, name="volatile").build(base))
    return run(Plan(lanes=lanes, duration_s=1.5, outages=[(0.5, 0.3)]))


def row(table: str, title: str) -> list[str]:
    line = next(line for line in table.splitlines() if line.startswith(title))
    return line[len(title) :].split()


def test_the_table_has_a_column_per_lane_named_as_the_lane(summary):
    table = format_table(summary)
    head = table.splitlines()[0].split()
    assert head == [part for lane in summary["lanes"] for part in lane_name(lane).split()]


def test_queue_figures_follow_the_strategy_not_the_name(summary):
    cells = row(format_table(summary), "queue max / at end")
    # "-" for a lane without a queue; "N / M" (three cells) for a lane with one
    per_lane, i = [], 0
    while i < len(cells):
        if cells[i] == "-":
            per_lane.append(False)
            i += 1
        else:
            assert cells[i + 1] == "/", cells
            per_lane.append(True)
            i += 3
    assert per_lane == [k.queues_writes for k in STRATEGY_KINDS] + [True]


def test_what_each_fault_did_and_the_tables_said_in_order(summary):
    faults = format_faults(summary)
    assert faults.startswith("what each fault did") and "outage" in faults
    said: list[str] = []
    say_tables(lambda text="": said.append(text), summary)
    assert said[0] == format_table(summary) and faults in said


def test_bench_figures_line_up():
    rows = [
        {
            "figure": "cache-aside ops/s",
            "value": 24529.4,
            "unit": "ops/s",
            "yardstick": "seed",
            "yardstick_value": 20000.0,
            "ratio": 1.23,
            "target": ">= 1.0",
            "met": True,
            "reps": 3,
        },
        {"figure": "lab ready", "value": 0.5, "unit": "s", "target": "<= 5 s", "met": False, "reps": 1},
    ]
    lines = format_bench(rows).splitlines()
    assert lines[0].split() == ["figure", "value", "yardstick", "ratio", "target", "met", "reps"]
    assert "24,529 ops/s" in lines[2] and "1.23×" in lines[2] and lines[2].split()[-2:] == ["yes", "3"]
    assert lines[3].split()[-2:] == ["NO", "1"]


def test_it_needs_neither_qt_nor_the_command_line():
    code = (
        "import sys, cachestudio.textreport; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'PySide6' "
        "or m in ('argparse', 'cachestudio.cli', 'cachestudio.lessondocs')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
