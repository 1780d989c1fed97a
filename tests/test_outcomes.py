"""What each fault did, live (engine/outcomes.py): real runs fed to LiveOutcomes as the
observer feeds it end up with exactly the numbers of the end-of-run report; every
anomaly lands in one group, and the groups count what the auditor counts; captions say
only what the numbers show; the observer process sends all of it.

Generated, seeded timelines of real labs (crash, outage, burst, slow DB, cold cache,
stampede), each a few seconds long; a property test of window membership and cause
assignment on generated event streams against report.fault_report itself.
"""

from __future__ import annotations

import math
import os
import random
import re
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cachestudio.engine.auditor import Anomaly
from cachestudio.engine.config import LaneConfig, Workload, WriteBehindKnobs
from cachestudio.engine.faultkinds import BY_START, FAULTS
from cachestudio.engine.history import write_history
from cachestudio.engine.outcomes import LiveOutcomes, caption, fault_table
from cachestudio.engine.report import fault_report, fault_windows
from cachestudio.engine.runner import MP, Plan, Run

LANES = ("cache-aside", "write-through", "write-behind")
WINDOW_KEYS = ("kind", "name", "start", "end", "detail", "lanes")


# ------------------------------------------------------------------------------ real runs


def lanes_for(seed: int, durable: bool, rate: float = 3000, keys: int = 100) -> list[LaneConfig]:
    w = Workload(rate=rate, read_ratio=0.6, keys=keys, distribution="uniform")
    wb = WriteBehindKnobs(flush_interval_s=0.5, batch_size=500, durable=durable)
    return [LaneConfig(strategy=s, workload=w, write_behind=wb, seed=seed) for s in LANES]


def timeline(seed: int) -> Plan:
    """A seeded plan of 3 to 3.5 s with 2 to 4 faults of any kind, often overlapping."""
    rng = random.Random(seed)
    duration = rng.choice((3.0, 3.5))
    plan = Plan(
        lanes=lanes_for(seed, rng.random() < 0.5, rate=rng.choice((2000, 4000)), keys=rng.choice((50, 200))),
        duration_s=duration,
        restart_delay_s=round(rng.uniform(0.1, 0.5), 2),
    )

    def at() -> float:
        return round(rng.uniform(0.3, duration - 0.4), 2)

    for kind in rng.sample(("crash", "outage", "burst", "slow-db", "cold", "stampede"), rng.randint(2, 4)):
        if kind == "crash":
            plan.crash_at.append(at())
        elif kind == "outage":
            plan.outages.append((at(), round(rng.uniform(0.2, 0.8), 2)))
        elif kind == "burst":
            plan.bursts.append((at(), rng.choice(("read", "write")), rng.choice((200, 1000))))
        elif kind == "slow-db":
            plan.slow_db.append((at(), round(rng.uniform(0.2, 0.8), 2), rng.choice((5, 20))))
        elif kind == "cold":
            plan.cold_at.append(at())
        else:
            plan.stampedes.append((at(), rng.choice((2, 50, 200))))
    return plan


class Live:
    """A headless run driven like runner.run, fed to LiveOutcomes as the observer feeds
    it: events and records as they come, a round's anomalies after the round."""

    def __init__(self, plan: Plan):
        self.names = [c.label for c in plan.lanes]
        self.out = LiveOutcomes(self.names, plan.lanes)
        n = len(self.names)
        self.pending: list[list] = [[] for _ in range(n)]
        self.anomalies: list[list] = [[] for _ in range(n)]  # every anomaly fed, per lane
        self.ids: list[list[str]] = [[] for _ in range(n)]  # their group ids
        self.changed: list[dict] = []  # every window change sent while running
        self.run = Run(plan, on_event=self.out.event, on_records=self.on_records)

    def on_records(self, i: int, records: list, found: list) -> None:
        self.out.records(i, records)
        self.pending[i].extend(found)

    def feed(self, i: int, found: list) -> None:
        ids = self.out.anomalies(i, found)
        assert len(ids) == len(found)
        self.anomalies[i].extend(found)
        self.ids[i].extend(ids)

    def round(self) -> None:
        for i, found in enumerate(self.pending):
            if found:
                self.feed(i, found)
                self.pending[i] = []

    def go(self) -> dict:
        r = self.run
        try:
            r.start()
            while not r.due and not r.all_failed:
                r.tick()
                self.round()
                self.out.advance(r.now())
                self.changed.extend(self.out.changes()[0])
                time.sleep(0.03)
            summary = r.finish()
            self.round()
            # the end-of-run audit's verdicts reach no callback: the auditor keeps them
            for i, lane in enumerate(r.lanes):
                assert sum(lane.auditor.counts.values()) < lane.auditor.keep  # all kept: all comparable
                self.feed(i, lane.auditor.anomalies[len(self.anomalies[i]) :])
            return summary
        except BaseException:
            r.abort()
            raise
        finally:
            r.cleanup()


def lanes_of(clause: str, names: list[str]) -> tuple[list[str], str]:
    """("a, b and c did this") -> ([a, b, c], " did this")."""
    who, rest = [], clause
    while True:
        n = next((n for n in names if rest.startswith(n)), None)
        if n is None:
            return who, rest
        who.append(n)
        rest = rest[len(n) :]
        for sep in (", ", " and "):
            if rest.startswith(sep) and any(rest[len(sep) :].startswith(m) for m in names):
                rest = rest[len(sep) :]
                break
        else:
            return who, rest


def check_caption(w: dict, names: list[str]) -> None:
    """Every number a caption states is the window's own; a lane said to have none has none."""
    text = w["caption"]
    head = f"{w['start']:.1f} s — {w['name']}" + (" so far" if w.get("open") else "") + ": "
    assert text.startswith(head), text
    said = set()
    for clause in text[len(head) :].split("; "):
        who, words = lanes_of(clause, names)
        assert who, clause
        said.update(who)
        for n in who:
            x = w["lanes"][n]
            checks = {
                r"lost ([\d,]+) acknowledged write": x["lost_writes"],
                r"served ([\d,]+) stale read": x["stale_reads"],
                r"had ([\d,]+) error": x["errors"],
                r"rejected ([\d,]+) operation": x["rejected"],
            }
            for pattern, value in checks.items():
                m = re.search(pattern, words)
                if m:
                    assert int(m.group(1).replace(",", "")) == value, (n, text, x)
            for phrase, field in (
                ("lost none", "lost_writes"),
                ("no stale reads", "stale_reads"),
                ("had no errors", "errors"),
            ):
                if phrase in words:
                    assert x[field] == 0, (n, text, x)
            if "ran no operations" in words:
                assert x["read_p99_ms"] is None and x["write_p99_ms"] is None, (n, text, x)
            if "(its volatile queue held them)" in words:  # said of a lane that queues writes, killed
                assert BY_START[w["kind"]].kills_nodes and x["lost_writes"] > 0
            # the outcome that matters most is named: a lane that lost writes is said to
            if x["lost_writes"]:
                assert re.search(r"lost [\d,]+ acknowledged write", words), (n, text, x)
    assert said == set(names), text


def check_groups(live: Live) -> None:
    groups = {g["id"]: g for g in live.out.groups()}
    for i, name in enumerate(live.names):
        assert len(live.ids[i]) == len(live.anomalies[i])
        per_kind = Counter()
        for a, gid in zip(live.anomalies[i], live.ids[i]):
            g = groups[gid]
            assert (g["lane"], g["kind"]) == (name, a.kind)
        for g in groups.values():
            if g["lane"] == name:
                per_kind[g["kind"]] += g["count"]
                assert g["distinct_keys"] >= len(g["keys"]) and sum(n for _, n in g["keys"]) <= g["count"]
                assert g["line"].startswith(g["cause"] + ": ")
        auditor = live.run.lanes[i].auditor
        assert {k: v for k, v in per_kind.items() if v} == {k: v for k, v in auditor.counts.items() if v}
        assert Counter(live.ids[i]) == {gid: g["count"] for gid, g in groups.items() if g["lane"] == name}


@pytest.mark.parametrize("seed", [3, 11, 17, 29])
def test_live_equals_end_of_run(seed):
    plan = timeline(seed)
    live = Live(plan)
    summary = live.go()
    run_end = live.run.ended_at  # what the runner's summary passes to fault_report
    mine = live.out.windows(run_end)
    assert [{k: w[k] for k in WINDOW_KEYS} for w in mine] == summary["faults"], plan
    assert [w["id"] for w in mine] == list(range(len(mine)))
    assert not any(w["open"] for w in mine)
    assert {w["id"] for w in live.changed} <= {w["id"] for w in mine}
    for w in mine + live.changed:
        check_caption(w, live.names)
    check_groups(live)
    # the table the window shows is the command line's
    rows = fault_table(mine, live.names)
    assert rows[0] == ["during", "window s", *live.names] and len(rows) == len(mine) + 1


def test_crash_caption_names_the_lost_writes():
    plan = Plan(lanes=lanes_for(5, durable=False), duration_s=3.0, crash_at=[1.2], restart_delay_s=0.2)
    live = Live(plan)
    summary = live.go()
    crash = next(w for w in live.out.windows(live.run.ended_at) if w["kind"] == "crash")
    assert crash["lanes"] == next(f for f in summary["faults"] if f["kind"] == "crash")["lanes"]
    lost = crash["lanes"]["write-behind"]["lost_writes"]
    assert lost > 0, crash  # the volatile queue held half a second of writes
    assert f"write-behind lost {lost:,} acknowledged write" in crash["caption"]
    assert "(its volatile queue held them)" in crash["caption"]
    check_caption(crash, live.names)
    group = next(g for g in live.out.groups() if g["fault_id"] == crash["id"] and g["kind"] == "lost_write")
    assert group["lane"] == "write-behind" and group["cause"] == f"crash at {crash['start']:.1f} s"
    assert group["line"].startswith(f"crash at {crash['start']:.1f} s: {group['count']:,} lost write")


@pytest.mark.parametrize("kind", [k for k in FAULTS if k.kills_nodes], ids=lambda k: k.name)
def test_a_named_write_behind_lane_killed_gets_the_reason(kind):
    """Drift 2 of issue 23: the reason is decided by the lane's strategy, not its name, and
    a node's crash gets it as a crash does. The queue never flushes before the kill (its
    interval outlasts the run), so the kill always finds acknowledged writes in it."""
    w = Workload(rate=2000, read_ratio=0.6, keys=100, distribution="uniform")
    lane = LaneConfig(
        strategy="write-behind",
        name="volatile",
        workload=w,
        seed=3,
        write_behind=WriteBehindKnobs(flush_interval_s=30.0, batch_size=500, durable=False),
    )
    plan = Plan(
        lanes=[lane],
        duration_s=2.5,
        restart_delay_s=0.2,
        **{kind.field: [kind.entry(1.0, {p.name: p.live_value for p in kind.params})]},
    )
    live = Live(plan)
    live.go()
    window = next(w for w in live.out.windows(live.run.ended_at) if w["kind"] == kind.start_event)
    lost = window["lanes"]["volatile"]["lost_writes"]
    assert lost > 0, window
    assert f"volatile lost {lost:,} acknowledged write" in window["caption"], window["caption"]
    assert "(its volatile queue held them)" in window["caption"], window["caption"]


def test_caption_groups_lanes_and_says_so_far():
    x = {
        "ops": 10,
        "errors": 0,
        "rejected": 0,
        "read_p99_ms": 1.5,
        "write_p99_ms": 2.25,
        "stale_reads": 0,
        "lost_writes": 0,
    }
    w = {
        "kind": "outage-start",
        "name": "DB outage",
        "start": 3.04,
        "end": 4.0,
        "open": True,
        "lanes": {"cache-aside": dict(x, stale_reads=3), "write-through": dict(x), "write-behind": dict(x, errors=2)},
    }
    text = w["caption"] = caption(w, list(LANES))
    assert text == (
        "3.0 s — DB outage so far: cache-aside served 3 stale reads; "
        "write-behind served no stale reads but had 2 errors; write-through served no stale reads"
    )
    check_caption(w, list(LANES))
    w["open"] = False
    w["lanes"] = {n: dict(x) for n in LANES}
    assert (
        caption(w, list(LANES)) == "3.0 s — DB outage: cache-aside, write-through and write-behind p99 latency 2.250 ms"
    )


# ------------------------------------------------------------------------------ generated streams


ENDS = ("outage-end", "slow-db-end", "slow-cache-end", "burst-end", "restart", "stampede-done")
STARTS = ("crash", "outage-start", "slow-db-start", "slow-cache-start", "cold-cache", "burst", "stampede")
TWO = ["cache-aside", "write-behind"]


@st.composite
def streams(draw):
    """Rounds of a run in time order (a tenth of a second apart): each may emit events
    (stamped with its time) and hand over records and anomalies that happened before it."""
    rounds = []
    for r in range(1, draw(st.integers(3, 40)) + 1):
        t = r / 10
        events = [
            {"kind": k, "start": t, "lane": draw(st.sampled_from(TWO)), "detail": "write burst of 5"}
            for k in draw(st.lists(st.sampled_from(STARTS + ENDS + ("knob",)), max_size=2))
        ]
        batches = []
        for i in draw(st.lists(st.integers(0, 1), max_size=2)):
            recs = []
            for _ in range(draw(st.integers(0, 6))):
                start = draw(st.integers(max(0, r - 15), r - 1)) / 10
                end = draw(st.integers(int(start * 10), r)) / 10
                recs.append(
                    {
                        "kind": draw(st.sampled_from(("read", "write", "crash"))),
                        "start": start,
                        "end": end,
                        "outcome": draw(st.sampled_from(("hit", "ok", "error", "rejected"))),
                    }
                )
            anomalies = []
            for _ in range(draw(st.integers(0, 3))):
                at = draw(st.none() | st.integers(0, r).map(lambda v: v / 10))
                found_at = draw(st.none() | st.integers(0, r).map(lambda v: v / 10))
                anomalies.append(
                    Anomaly(
                        draw(st.sampled_from(("stale_read", "lost_write", "dirty_cache"))),
                        TWO[i],
                        draw(st.sampled_from(("k0", "k1", "k2"))),
                        "s",
                        at=at,
                        found_at=found_at,
                    )
                )
            batches.append((i, recs, anomalies))
        rounds.append((events, batches))
    return rounds


def fake_lanes(root: Path, records: list[list[dict]], anomalies: list[list]) -> list:
    """Lane handles as fault_report reads them: a history file and an auditor's list."""
    lanes = []
    for i, name in enumerate(TWO):
        f = root / f"{name}.jsonl"
        write_history(f, records[i])
        lanes.append(
            SimpleNamespace(
                cfg=SimpleNamespace(strategy=name, label=name),
                inc=0,
                auditor=SimpleNamespace(anomalies=anomalies[i]),
                paths=SimpleNamespace(history_file=lambda inc, f=f: f),
            )
        )
    return lanes


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
def test_membership_and_causes(rounds):
    out = LiveOutcomes(TWO)
    events, records, found, ids = [], [[], []], [[], []], [[], []]
    for r, (evs, batches) in enumerate(rounds, 1):
        for ev in evs:
            events.append(ev)
            out.event(ev)
        for i, recs, _ in batches:
            out.records(i, recs)
            records[i].extend(recs)
        for i, _, anomalies in batches:  # a round's anomalies after its events
            ids[i].extend(out.anomalies(i, anomalies))
            found[i].extend(anomalies)
        out.advance(r / 10)
        out.changes()
    run_end = len(rounds) / 10 + 0.05
    with tempfile.TemporaryDirectory() as tmp:
        expected = fault_report(fake_lanes(Path(tmp), records, found), events, run_end)
    mine = out.windows(run_end)
    assert [{k: w[k] for k in WINDOW_KEYS} for w in mine] == expected

    # every anomaly in one group: the latest-starting window holding its time on its lane
    final = fault_windows(events, run_end, TWO)
    groups = {g["id"]: g for g in out.groups()}
    for i, lane in enumerate(TWO):
        assert len(ids[i]) == len(found[i])
        for a, gid in zip(found[i], ids[i]):
            g = groups[gid]
            assert (g["lane"], g["kind"]) == (lane, a.kind)
            want = None
            for t in (a.at, a.found_at):
                inside = [k for k, w in enumerate(final) if t is not None and w["start"] <= t < w["end"][lane]]
                if inside:
                    want = max(inside, key=lambda k: (final[k]["start"], k))
                    break
            if g["fault_id"] != want:
                # decided on arrival: only a stampede still waiting for its lanes' reports
                # can hold a time that its final end leaves out
                assert g["fault_id"] is not None and final[g["fault_id"]]["kind"] == "stampede", (a, g, want)
            assert g["cause"] == (
                "no fault"
                if g["fault_id"] is None
                else f"{final[g['fault_id']]['name']} at {final[g['fault_id']]['start']:.1f} s"
            )
        assert sum(g["count"] for g in groups.values() if g["lane"] == lane) == len(found[i])


def test_long_window_keeps_a_bounded_p99(monkeypatch):
    """Beyond EXACT_LATENCIES a window keeps only its slowest values; the p99 stays right
    when the window's later operations are no faster than its earlier ones."""
    from cachestudio.engine import outcomes
    from cachestudio.engine.report import p99 as _p99

    monkeypatch.setattr(outcomes, "EXACT_LATENCIES", 1_000)
    lat = outcomes._Latencies()
    rng = random.Random(4)
    values = [rng.expovariate(100) for _ in range(50_000)]
    for k in range(0, len(values), 700):
        lat.add(np.asarray(values[k : k + 700]))
    assert lat.size < 2_500 and lat.seen == len(values)
    assert math.isclose(lat.p99(fresh=True), _p99(values), abs_tol=0.002)


# ------------------------------------------------------------------------------ observer


def test_observer_sends_outcomes_and_groups():
    from cachestudio.engine.observer import observer_process

    # The crash and the outage are sent as the window sends them, once every lab has run a
    # while (on a loaded machine the labs of a window run come up late: a crash at a fixed
    # 1.25 s found some still starting, with nothing acknowledged to lose).
    plan = Plan(lanes=lanes_for(7, durable=False, rate=2000), duration_s=30.0, restart_delay_s=0.2)
    parent, child = MP.Pipe()
    proc = MP.Process(target=observer_process, args=(child, plan, 0, os.getpid()), name="observer")
    proc.start()
    child.close()
    windows: dict[int, dict] = {}
    groups: dict[str, dict] = {}
    sent = defaultdict(Counter)  # (lane, group id) -> anomalies sent
    counts = None
    try:
        assert parent.poll(30), "the observer did not start"
        kind, info = parent.recv()
        assert kind == "started", info
        deadline = time.monotonic() + 60
        now, crash_closed, outage_closed = 0.0, False, False
        running_since = crashed = outage_sent = None
        while not (outage_closed and now >= (outage_sent or 0) + 1.5):
            assert time.monotonic() < deadline, "no updates"
            assert parent.poll(10), "the observer went silent"
            kind, u = parent.recv()
            assert kind == "update", u
            now = u["now"]
            if running_since is None and all(lane["state"] == "running" for lane in u["lanes"]):
                running_since = now
            queued = u["lanes"][2]["gauges"].get("queue_depth", 0)  # write-behind's, unflushed
            if crashed is None and running_since is not None and now >= running_since + 0.75 and queued > 0:
                parent.send(("call", "crash", ()))
                crashed = now
            if crash_closed and outage_sent is None:
                parent.send(("call", "outage", (0.4,)))
                outage_sent = now
            for w in u["outcomes"]:
                windows[w["id"]] = w
                crash_closed = crash_closed or (w["kind"] == "crash" and not w["open"])
                outage_closed = outage_closed or (w["kind"] == "outage-start" and not w["open"])
            for g in u["groups"]:
                groups[g["id"]] = g
            assert len(u["anomaly_groups"]) == len(plan.lanes)
            for i, (found, ids) in enumerate(zip(u["anomalies"], u["anomaly_groups"])):
                assert len(found) == len(ids)
                for a, gid in zip(found, ids):
                    g = groups[gid]  # its group came with it, or earlier
                    assert (g["lane"], g["kind"]) == (plan.lanes[i].strategy, a.kind)
                    sent[i][gid] += 1
            # every anomaly the auditors counted is in a group (also those not sent)
            counts = [lane["counts"] for lane in u["lanes"]]
            for i, c in enumerate(counts):
                per_kind = Counter()
                for g in groups.values():
                    if g["lane"] == plan.lanes[i].strategy:
                        per_kind[g["kind"]] += g["count"]
                assert {k: v for k, v in per_kind.items() if v} == {k: v for k, v in c.items() if v}
                for gid, n in sent[i].items():
                    assert groups[gid]["count"] >= n
        parent.send(("stop",))
        while True:
            assert parent.poll(20), "the observer did not stop"
            if parent.recv()[0] == "stopped":
                break
    finally:
        proc.join(20)
        if proc.is_alive():
            proc.kill()
            proc.join(5)
        parent.close()
    crash = next(w for w in windows.values() if w["kind"] == "crash")
    outage = next(w for w in windows.values() if w["kind"] == "outage-start")
    assert crash["start"] < outage["start"] and not crash["open"]
    assert set(crash["lanes"]) == set(LANES) and crash["lanes"]["write-behind"]["lost_writes"] > 0
    check_caption(crash, list(LANES))
    lost = [g for g in groups.values() if g["fault_id"] == crash["id"] and g["kind"] == "lost_write"]
    assert [g["lane"] for g in lost] == ["write-behind"]
    assert sum(sent[2][g["id"]] for g in lost) > 0
