"""One chart line per app node: the observer's series per node (UpdateBuilder), what a
recording keeps of them (its ticks' "nodes") and the replay's rebuild (Tape).

The per-node rows are checked against the lane's own rows, which the charts have always
drawn: in every bin, the nodes' operations, errors and rejections add up to the lane's, and
their DB rates and queue depths add up to the lane's gauges."""

from __future__ import annotations

import dataclasses
import json
import random
import re

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cachestudio.engine import htmlreport
from cachestudio.engine.config import LaneConfig, Workload
from cachestudio.engine.recording import RecordingWriter, check_target, plan_header, read_recording, replay_summary
from cachestudio.engine.runner import Plan
from cachestudio.engine.runner import run as run_plan
from cachestudio.engine.series import BIN_S, COL
from cachestudio.engine.timemachine import Tape, UpdateBuilder, tick_node_gauges

SUMMED = ("ops_s", "errors_s", "rejected_s")


def lane(strategy: str, nodes: int, **kw) -> LaneConfig:
    cfg = LaneConfig(strategy, seed=5, **kw)
    return dataclasses.replace(cfg, backends=dataclasses.replace(cfg.backends, nodes=nodes))


def rows_of(ring) -> np.ndarray:
    return np.column_stack([ring.view(i) for i in range(len(COL))]) if len(ring) else np.empty((0, len(COL)))


def assert_nodes_add_up(lane_rows: np.ndarray, node_rows: list[np.ndarray], gauges: bool) -> None:
    assert all(len(r) == len(lane_rows) for r in node_rows), "a node has rows the lane has not (or the reverse)"
    for r in node_rows:
        assert np.array_equal(r[:, COL["t"]], lane_rows[:, COL["t"]])
        assert np.isnan(r[:, COL["lost_writes"]]).all(), "a node claims the auditor's figures"
    for name in SUMMED + (("db_reads_s", "db_writes_s", "queue_depth") if gauges else ()):
        total = sum(r[:, COL[name]] for r in node_rows)
        assert np.allclose(total, lane_rows[:, COL[name]]), name
    # a lane's hit ratio lies between its nodes' (it is their reads' weighted mean)
    ratios = np.column_stack([r[:, COL["hit_ratio"]] for r in node_rows])
    lane_ratio = lane_rows[:, COL["hit_ratio"]]
    both = np.isfinite(lane_ratio) & np.isfinite(ratios).all(axis=1)
    assert (lane_ratio[both] >= ratios[both].min(axis=1) - 1e-9).all()
    assert (lane_ratio[both] <= ratios[both].max(axis=1) + 1e-9).all()


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
GAUGE = st.fixed_dictionaries(
    {"db_reads": st.integers(0, 10**9), "db_writes": st.integers(0, 10**9), "queue_depth": st.integers(0, 10**6)}
)


@settings(max_examples=200, deadline=None)
@given(st.one_of(JSON, st.lists(GAUGE, max_size=8), st.lists(GAUGE | JSON, max_size=4)))
def test_a_ticks_node_gauges_are_taken_whole_or_not_at_all(nodes):
    """Whatever a recording's tick holds as "nodes": each node's three counters when it is
    what a recording writes, else nothing (the nodes' gauge columns stay empty); never an error."""
    got = tick_node_gauges({"nodes": nodes})
    valid = isinstance(nodes, list) and all(
        isinstance(g, dict)
        and all(
            isinstance(g.get(k), (int, float)) and not isinstance(g.get(k), bool)
            for k in ("db_reads", "db_writes", "queue_depth")
        )
        for g in nodes
    )
    if valid:
        assert got == [(g["db_reads"], g["db_writes"], g["queue_depth"]) for g in nodes]
    else:
        assert got == []


@st.composite
def streams(draw):
    nodes = draw(st.lists(st.integers(1, 4), min_size=1, max_size=3))
    rng = random.Random(draw(st.integers(0, 2**32)))
    rounds = []
    t, per_node_db = 0.0, [[[0, 0, 0] for _ in range(n)] for n in nodes]
    for _ in range(draw(st.integers(1, 12))):
        t += rng.uniform(0.01, 0.6)
        records = []
        for i, n in enumerate(nodes):
            batch = []
            for _ in range(rng.randint(0, 40)):
                k = rng.randrange(n)
                kind = rng.choice(("read", "read", "write", "event"))
                end = max(0.0, t - rng.uniform(0, 0.5))
                outcome = rng.choice(("hit", "miss", "error") if kind == "read" else ("ok", "error", "rejected"))
                r = {"kind": kind, "start": end - rng.uniform(0, 0.01), "end": end, "outcome": outcome}
                if n > 1:
                    r["node"] = k
                batch.append(r)
            records.append(batch)
            for g in per_node_db[i]:
                g[0] += rng.randint(0, 9)
                g[1] += rng.randint(0, 9)
                g[2] = rng.randint(0, 50)
        rounds.append((t, records, [[tuple(g) for g in lane_g] for lane_g in per_node_db]))
    return nodes, rounds


@settings(max_examples=60, deadline=None)
@given(streams())
def test_the_nodes_rows_add_up_to_their_lanes_rows(data):
    nodes, rounds = data
    cfgs = [lane("write-behind", n) for n in nodes]
    b = UpdateBuilder(cfgs)
    got_lane = [[] for _ in nodes]
    got_nodes = [[[] for _ in range(n)] if n > 1 else [] for n in nodes]
    for t, records, node_g in rounds + [(rounds[-1][0] + 1.0, [[] for _ in nodes], rounds[-1][2])]:
        for i, batch in enumerate(records):
            b.on_records(i, batch, [])
        gauges = [tuple(sum(g[j] for g in lane_g) for j in range(3)) for lane_g in node_g]
        u = b.build(
            t,
            {},
            [{} for _ in nodes],
            gauges,
            [(0, 0, 0)] * len(nodes),
            [lane_g if n > 1 else [] for lane_g, n in zip(node_g, nodes)],
        )
        assert len(u["node_rows"]) == len(nodes)
        for i, n in enumerate(nodes):
            got_lane[i].extend(u["rows"][i])
            if n == 1:
                assert u["node_rows"][i] == [], "a lane of one node has no lines per node"
                continue
            assert len(u["node_rows"][i]) == n
            for k in range(n):
                got_nodes[i][k].extend(u["node_rows"][i][k])
    for i, n in enumerate(nodes):
        if n > 1:
            assert_nodes_add_up(np.array(got_lane[i]), [np.array(r) for r in got_nodes[i]], gauges=True)


def test_a_recording_keeps_the_nodes_gauges_and_its_replay_draws_a_line_per_node(tmp_path):
    """Two app nodes of write-behind and one of cache-aside on the embedded backends; one
    node of each lane is killed halfway. The replay's node series add up to its lane series,
    and the killed node's queue empties at the kill while the other's goes on."""
    p = Plan(
        lanes=[
            lane(
                "write-behind",
                2,
                workload=Workload(rate=600),
                write_behind=dataclasses.replace(LaneConfig("write-behind").write_behind, flush_interval_s=0.5),
            ),
            lane("cache-aside", 1, workload=Workload(rate=600)),
        ],
        duration_s=3.0,
        node_crashes=[(1.5, 1)],
        restart_delay_s=0.8,
    )
    path = tmp_path / "nodes.csrec"
    w = RecordingWriter(check_target(path), plan_header(p))
    summary = run_plan(p, recorder=w)
    w.target.commit()
    assert summary["status"] == "ok", json.dumps(summary.get("failures"))
    rec = read_recording(path)
    ticks = rec.ticks
    assert all(len(tk["lanes"][0]["nodes"]) == 2 and "nodes" not in tk["lanes"][1] for tk in ticks)
    for tk in ticks:  # the nodes' counters are the lane's, split
        ln = tk["lanes"][0]
        assert sum(g["db_writes"] for g in ln["nodes"]) == ln["totals"]["db_writes"]
        assert sum(g["queue_depth"] for g in ln["nodes"]) == ln["queue_depth"]
    tape = Tape.from_recording(rec)
    assert [len(n) for n in tape.node_series] == [2, 0]
    lane_rows = rows_of(tape.series[0].ring)
    node_rows = [rows_of(s.ring) for s in tape.node_series[0]]
    assert len(lane_rows) >= int(3.0 / BIN_S) - 1
    assert_nodes_add_up(lane_rows, node_rows, gauges=True)
    ops = [r[:, COL["ops_s"]] for r in node_rows]
    assert all(np.nansum(o) > 0 for o in ops), "a node did no work"
    # node 1 was killed: the bins right after the kill have no operation of its old
    # incarnation; node 0 worked through them
    kill = next(e["start"] for e in rec.events if e["kind"] == "crash-node")
    t = lane_rows[:, COL["t"]]
    just_after = (t > kill + BIN_S) & (t <= kill + 0.8)
    assert just_after.any()
    assert (ops[1][just_after] == 0).all() and (ops[0][just_after] > 0).all()

    # the report draws the same: a thin path per node on the charts a node's data make, none elsewhere
    page = htmlreport.render_report(
        replay_summary(rec), rec.header, tape.series_lists(), tape.group_list(), tape.node_series_lists()
    )
    charts = re.findall(r'<svg class="chart".*?</svg>', page, re.S)
    assert len(charts) == len(htmlreport.CHARTS)
    for (_, columns, _, _), svg in zip(htmlreport.CHARTS, charts):
        drawn = sorted(re.findall(r'data-lane="([^"]+)" data-node="(\d+)"', svg))
        want = [("write-behind", "0"), ("write-behind", "1")] if columns[0] in htmlreport.NODE_COLUMNS else []
        assert drawn == want, columns
    assert "Thin lines: each app node" in page
    assert "data-node" not in htmlreport.render_report(replay_summary(rec), rec.header, tape.series_lists())


def test_eight_nodes_of_every_strategy_start_at_once_on_the_embedded_pair(tmp_path):
    """The nodes of a lane share one SQLite file and one cache directory, made once before
    they start: eight labs opening them at once all come up (none refuses a file another
    is still making), and the run ends normally."""
    for seed in (1, 2):
        lanes = [
            dataclasses.replace(lane(s, 8, workload=Workload(rate=400)), seed=seed)
            for s in ("cache-aside", "write-through", "write-behind")
        ]
        summary = run_plan(Plan(lanes=lanes, duration_s=1.0, run_dir=tmp_path / f"run{seed}"))
        assert summary["status"] == "ok", json.dumps(summary.get("failures"))
        assert all(ln["incarnations"] == 8 and ln["ops"] > 0 for ln in summary["lanes"])
