"""The time machine's engine: pause freezes lab time, step, recordings, replay, the tape.

Real labs, real diskcache and SQLite. A pause of an hour is simulated by moving the run's
clock source on by an hour while it is paused (the labs keep their real clocks: they
receive the run's clock base when it resumes, as after a real pause)."""

from __future__ import annotations

import gzip
import json
import os
import random
import signal
import subprocess
from pathlib import Path

import pytest
from helpers import cli, drive, start_cli, wait_until
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cachestudio.engine.config import LaneConfig, Workload
from cachestudio.engine.history import read_history
from cachestudio.engine.recording import (
    RecordingError,
    RecordingWriter,
    check_target,
    plan_header,
    read_recording,
    replay_summary,
)
from cachestudio.engine.runner import Plan, Run
from cachestudio.engine.timemachine import Tape, UpdateBuilder

HOUR = 3600.0


def labs_paused(run: Run) -> bool:
    """Every lab has said (in its gauges) that its clients stand still."""
    return all(lane.state == "running" and lane.gauges.get("running") is False for lane in run.lanes)


def ops(run: Run) -> list[list[dict]]:
    return [
        sorted(
            (r for inc in range(lane.inc + 1) for r in read_history(lane.paths.history_file(inc))),
            key=lambda r: r["start"],
        )
        for lane in run.lanes
    ]


def plan(duration=3.0, rate=200.0, **faults) -> Plan:
    return Plan(
        lanes=[LaneConfig(s, workload=Workload(rate=rate), seed=5) for s in ("cache-aside", "write-behind")],
        duration_s=duration,
        **faults,
    )


def test_an_hour_of_pause_changes_nothing_shown_and_lab_time_goes_on_where_it_stopped(tmp_path):
    b = UpdateBuilder(plan().lanes)
    run = Run(
        plan(duration=2.0, crash_at=[1.0]),
        on_event=b.on_event,
        on_records=b.on_records,
        recorder=RecordingWriter(check_target(tmp_path / "r.csrec"), plan_header(plan())),
    )

    def update() -> dict:
        gauges = [
            (lane.totals()["db_reads"], lane.totals()["db_writes"], lane.gauges.get("queue_depth", 0))
            for lane in run.lanes
        ]
        risks = [
            (lane.auditor.counts["stale_read"], lane.auditor.counts["lost_write"], lane.auditor.at_risk())
            for lane in run.lanes
        ]
        return b.build(
            run.now(), {"paused": run.paused}, [{"ops": lane.stats.ops} for lane in run.lanes], gauges, risks
        )

    try:
        run.start()
        drive(run, lambda: run.now() >= 0.5)
        run.pause()
        frozen = run.now()
        drive(run, lambda: labs_paused(run))
        for _ in range(5):
            run.tick()  # what the paused labs had in flight is read
        before = update()
        real = run._clock
        run._clock = lambda: real() + HOUR  # an hour goes by
        for _ in range(20):
            run.tick()
        after = update()
        assert run.now() == frozen, "lab time moved during the pause"
        assert after["now"] == before["now"] == frozen
        assert all(not rows for rows in after["rows"]), "the charts moved on during the pause"
        assert after["lanes"] == before["lanes"], "operations happened during the pause"
        assert not any(e["kind"] == "crash" for e in run.events), "a fault timer ran during the pause"
        run.resume()
        drive(run, lambda: run.due)
        summary = run.finish()
        history = ops(run)
    finally:
        run.abort()
        run.cleanup()
    crash = next(e for e in run.events if e["kind"] == "crash")
    assert 1.0 <= crash["start"] < 1.5, "the crash was not fired at its lab time"
    assert summary["ended_at_s"] < 2.0 + 5.0, "the end of the run counts the pause"
    for lane_ops in history:
        after_pause = [r for r in lane_ops if r["start"] >= frozen]
        before_pause = [r for r in lane_ops if r["start"] < frozen]
        assert after_pause and before_pause
        last_end = max(r["end"] for r in before_pause)
        assert after_pause[0]["start"] >= last_end - 1e-6, "an operation after the pause is timed before one before it"
        assert after_pause[0]["start"] - frozen < 0.5, "lab time jumped over the pause"
        assert max(r["end"] for r in lane_ops) < 2.0 + 1.0


def test_a_step_releases_exactly_one_operation_of_each_lane_and_the_clock_stops_again():
    run = Run(plan(duration=30.0, rate=50.0))
    try:
        run.start()
        drive(run, lambda: run.now() >= 0.3)
        run.pause()
        drive(run, lambda: labs_paused(run))
        for _ in range(5):
            run.tick()
        counts = [lane.stats.ops for lane in run.lanes]
        for k in range(1, 4):
            run.step()
            drive(run, lambda: not run._stepping)
            drive(run, lambda k=k: all(lane.stats.ops >= c + k for lane, c in zip(run.lanes, counts)))
            for _ in range(5):
                run.tick()
            assert [lane.stats.ops for lane in run.lanes] == [c + k for c in counts]
            t = run.now()
            for _ in range(10):
                run.tick()
            assert run.now() == t, "the clock runs after a step"
        run.resume()
        drive(run, lambda: all(lane.stats.ops > c + 10 for lane, c in zip(run.lanes, counts)))
    finally:
        run.abort()
        run.cleanup()


def _record(tmp_path, p: Plan, **kw) -> tuple[dict, Path]:
    path = tmp_path / "run.csrec"
    w = RecordingWriter(check_target(path), plan_header(p))
    from cachestudio.engine.runner import run as run_plan

    summary = run_plan(p, recorder=w, **kw)
    w.target.commit()
    return summary, path


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """One real recorded run with a crash, an outage, a burst and a stampede."""
    tmp = tmp_path_factory.mktemp("rec")
    p = Plan(
        lanes=[LaneConfig(s, seed=11) for s in ("cache-aside", "write-through", "write-behind")],
        duration_s=3.0,
        crash_at=[1.6],
        outages=[(0.6, 0.4)],
        bursts=[(1.0, "write", 500)],
        stampedes=[(2.2, 50)],
    )
    summary, path = _record(tmp, p)
    return json.loads(json.dumps(summary)), path


def test_a_recording_replays_to_exactly_the_live_summary(recorded):
    summary, path = recorded
    rec = read_recording(path)
    assert rec.complete and not rec.note
    assert json.loads(json.dumps(replay_summary(rec))) == summary
    assert sum(len(o) for o in rec.ops) == sum(lane["ops"] for lane in summary["lanes"])
    with gzip.open(path, "rt") as fh:  # plain gzip of JSON lines: zcat reads it
        assert json.loads(fh.readline())["format"] == "cachestudio-recording"


def test_the_tape_of_a_recording_ends_with_the_run_and_its_frames_grow_with_time(recorded):
    summary, path = recorded
    rec = read_recording(path)
    tape = Tape.from_recording(rec)
    assert tape.end == pytest.approx(rec.end_time, abs=0.3)
    last = tape.frame(tape.end)
    assert [lane["ops"] for lane in last["lanes"]] == [lane["ops"] for lane in summary["lanes"]]
    total = {g["id"]: g["count"] for g in last["groups"]}
    counted = [sum(lane["anomalies"].values()) for lane in summary["lanes"]]
    assert sum(total.values()) == sum(counted)
    rng = random.Random(3)
    times = sorted(rng.uniform(0, tape.end) for _ in range(30))
    frames = [tape.frame(t) for t in times]
    for a, b in zip(frames, frames[1:]):  # what has happened by t only grows with t
        assert len(a["events"]) <= len(b["events"])
        assert all(la["ops"] <= lb["ops"] for la, lb in zip(a["lanes"] or [], b["lanes"] or []))
        assert sum(len(x) for x in a["anomalies"]) <= sum(len(x) for x in b["anomalies"])
    for f, t in zip(frames, times):
        assert all(e["start"] <= t + 0.3 for e in f["events"])
        assert all(r["end"] <= t + 1e-9 for sample, _ in f["records"] for r in sample)


def test_a_killed_writer_leaves_a_recording_readable_up_to_its_last_flush(tmp_path):
    path = tmp_path / "killed.csrec"
    proc = start_cli(
        "run",
        "--duration",
        "30",
        "--crash-at",
        "1",
        "--record",
        str(path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until(lambda: path.exists() and path.stat().st_size > 200_000, timeout=60)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    rec = read_recording(path)
    assert not rec.complete and "ends early" in rec.note
    assert sum(len(o) for o in rec.ops) > 0
    summary = replay_summary(rec)
    assert summary["status"] == "recording-cut" and summary["recording"]["complete"] is False
    assert sum(lane["ops"] for lane in summary["lanes"]) == sum(len(o) for o in rec.ops)
    out = cli("replay", str(path), "--json", timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["status"] == "recording-cut"
    assert len(out.stderr.strip().splitlines()) == 1 and "ends early" in out.stderr


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.floats(0.0, 1.0), flips=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(1, 255)), max_size=3))
def test_a_cut_or_damaged_recording_reads_up_to_the_damage_or_is_refused_in_one_line(recorded, cut, flips):
    _, path = recorded
    data = bytearray(path.read_bytes())
    data = data[: int(len(data) * cut)]
    for where, xor in flips:
        if data:
            data[min(len(data) - 1, int(len(data) * where))] ^= xor
    damaged = path.parent / f"damaged-{os.getpid()}.csrec"
    damaged.write_bytes(bytes(data))
    try:
        rec = read_recording(damaged)
    except RecordingError as exc:
        assert "\n" not in str(exc) and str(damaged) in str(exc)
        return
    finally:
        damaged.unlink()
    for lane_ops in rec.ops:
        assert all({"id", "kind", "start", "end", "outcome"} <= set(r) for r in lane_ops)
    if not rec.complete:
        assert rec.note and "\n" not in rec.note
    replay_summary(rec)  # never a traceback


FOREIGN = {
    "text": b"hello, not a recording\n",
    "empty": b"",
    "gzip of something else": gzip.compress(b'{"some": "json"}\n'),
    "gzip of text": gzip.compress(b"plain words\n"),
    "newer format": gzip.compress(
        json.dumps(
            {"type": "header", "format": "cachestudio-recording", "version": 99, "lanes": [{"strategy": "cache-aside"}]}
        ).encode()
        + b"\n"
    ),
    "random bytes": bytes(random.Random(1).randrange(256) for _ in range(5000)),
    "gzip magic then junk": b"\x1f\x8b" + bytes(random.Random(2).randrange(256) for _ in range(500)),
}


@pytest.mark.parametrize("name", list(FOREIGN))
def test_a_foreign_file_is_refused_in_one_line(tmp_path, name):
    f = tmp_path / "foreign.csrec"
    f.write_bytes(FOREIGN[name])
    for args in (["replay", str(f), "--json"], ["report", str(f), "--html", str(tmp_path / "out.html")]):
        out = cli(*args, timeout=60)
        assert out.returncode == 2, (name, out.stderr)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("cachestudio: error:") and "Traceback" not in out.stderr
        assert not (tmp_path / "out.html").exists()


def test_a_recording_never_replaces_a_file_and_streams_to_a_device(tmp_path):
    existing = tmp_path / "keep.csrec"
    existing.write_text("mine")
    out = cli("run", "--duration", "0.5", "--record", str(existing), timeout=60)
    assert out.returncode == 2 and "already exists" in out.stderr
    assert existing.read_text() == "mine"
    out = cli("run", "--duration", "0.5", "--record", "/dev/null", timeout=60)
    assert out.returncode == 0, out.stderr
    assert Path("/dev/null").is_char_device()
    with pytest.raises(RecordingError):
        check_target(tmp_path / "no-such-dir" / "r.csrec")


def test_the_recorded_ticks_follow_lab_time_and_the_writer_flushes_as_it_goes(tmp_path):
    """A partial file (as a kill leaves it) already holds what was flushed."""
    path = tmp_path / "w.csrec"
    w = RecordingWriter(check_target(path), plan_header(plan()))
    w.line({"type": "event", "kind": "knob", "start": 0.1, "detail": "x"})
    w.flush()
    data = path.read_bytes()
    lines = gzip.decompress(data).splitlines()  # one gzip member per flush
    assert json.loads(lines[0])["type"] == "header" and json.loads(lines[1])["kind"] == "knob"
    w.close()
    w.target.commit()
    assert read_recording(path).complete


def test_the_report_command_writes_one_self_contained_html_file(recorded, tmp_path):
    from html.parser import HTMLParser

    summary, path = recorded
    out = tmp_path / "report.html"
    res = cli("report", str(path), "--html", str(out), timeout=120)
    assert res.returncode == 0, res.stderr
    html = out.read_text()

    class Refs(HTMLParser):
        def __init__(self):
            super().__init__()
            self.external, self.svgs, self.text = [], 0, []

        def handle_starttag(self, tag, attrs):
            self.svgs += tag == "svg"
            for name, value in attrs:
                if name in ("src", "href") and value and value.startswith(("http:", "https:", "//")):
                    self.external.append(value)

        def handle_data(self, data):
            self.text.append(data)

    p = Refs()
    p.feed(html)
    assert not p.external and p.svgs >= 6
    text = " ".join(p.text)
    for lane in summary["lanes"]:
        assert lane["strategy"] in text and f"{lane['ops']:,}" in text
    again = cli("report", str(path), "--html", str(out), timeout=120)
    assert again.returncode == 0  # a file of ours is replaced atomically


def test_a_live_tape_thins_its_old_updates_and_still_shows_every_moment():
    """An hour of updates: bounded records, and every frame still has its lanes' state,
    its events and its counts."""
    from cachestudio.engine.timemachine import THIN_AFTER_S

    tape = Tape(["cache-aside"])
    rng = random.Random(9)
    ops = 0
    for j in range(3600 * 20):
        t = j / 20
        ops += 10
        sample = [{"id": f"ca#{ops - k}", "kind": "read", "end": t, "start": t, "outcome": "hit"} for k in range(10)]
        events = [{"kind": "crash", "start": t, "detail": "x"}] if rng.random() < 0.001 else []
        tape.add(
            {
                "now": t,
                "paused": False,
                "lanes": [{"ops": ops}],
                "events": events,
                "records": [(sample, {("read", "hit"): 10})],
                "anomalies": [[]],
                "anomaly_groups": [[]],
            }
        )
    kept = sum(len(s[0]) for s in tape.samples)
    assert kept < 200_000, kept
    for t in (10.0, 1234.5, 3000.0, tape.end - THIN_AFTER_S / 2, tape.end):
        f = tape.frame(t)
        assert f["lanes"] is not None and f["lanes"][0]["ops"] <= round(t * 20) * 10 + 10
        assert f["lanes"][0]["ops"] >= (round(t * 20) - 5) * 10
        assert all(e["start"] <= t for e in f["events"])
        assert sum(f["records"][0][1].values()) > 0
    assert len(tape.frame(tape.end)["events"]) == len(tape.events)
