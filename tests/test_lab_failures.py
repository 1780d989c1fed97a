"""Nothing fails silently (issue 9, DESIGN.md §5–§6): a lab that cannot go on, hangs, is
refused its files or is interrupted is named, the run still ends and says so in its exit
status, and no process is left behind or prints a traceback. Real labs, real files,
real signals; every wait is on a condition."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import helpers
import pytest
from helpers import ROOT, cli, session_pids, small_tmpfs, wait_until

from cachestudio.engine.config import LaneConfig, StoreKnobs, Workload
from cachestudio.engine.runner import HUNG_S, Plan, Run, run


def start_cli(*args: str, env: dict | None = None) -> subprocess.Popen:
    """The real command line, in a session of its own (so that its labs can be found)."""
    return helpers.start_cli(*args, env=env, start_new_session=True)


def history_lines(run_dir: Path) -> int:
    return sum(len(f.read_bytes().splitlines()) for f in run_dir.glob("*/history/*.jsonl"))


def kinds(summary: dict) -> list[str]:
    return [f["kind"] for lane in summary["lanes"] for f in lane["failures"]]


# --------------------------------------------------------------------------- signals


@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_ends_the_run_with_a_partial_summary_and_nothing_left_behind(tmp_path, sig, status):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out = tmp_path / "out.json"
    proc = start_cli(
        "run", "--duration", "60", "--json", str(out), "--history", str(tmp_path / "h.jsonl"), env={"TMPDIR": str(tmp)}
    )
    try:
        wait_until(lambda: history_lines(next(tmp.glob("cachestudio-run-*"), tmp)) > 100, timeout=60)
        os.killpg(proc.pid, sig)  # Ctrl-C reaches the whole process group, labs included
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == status, stderr
    assert "Traceback" not in stderr + stdout
    summary = json.loads(out.read_text())
    assert summary["status"] == "interrupted" and summary["interrupted"] == sig.name
    assert summary["ended_at_s"] < 60 and sum(lane["ops"] for lane in summary["lanes"]) > 0
    assert (tmp_path / "h.jsonl").stat().st_size > 0
    assert list(tmp.iterdir()) == []  # the temporary run directory is gone
    wait_until(lambda: not session_pids(proc.pid))


def test_labs_die_with_their_parent(tmp_path):
    proc = start_cli("run", "--duration", "60", "--run-dir", str(tmp_path / "run"))
    try:
        wait_until(lambda: history_lines(tmp_path / "run") > 100, timeout=60)
        labs = session_pids(proc.pid) - {proc.pid}
        assert len(labs) >= 3
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
        wait_until(lambda: not (session_pids(proc.pid) & labs))  # parent-death signal
    finally:
        for pid in session_pids(proc.pid):
            os.kill(pid, signal.SIGKILL)


def test_a_stopped_lab_is_named_killed_and_the_run_ends(tmp_path):
    """SIGSTOP: the lab says nothing more. It is named, killed and restarted; exit status 3."""
    events: list[dict] = []
    plan = Plan(
        lanes=[LaneConfig(strategy=s, workload=Workload(rate=500)) for s in ("cache-aside", "write-behind")],
        duration_s=600,
        restart_delay_s=0.2,
        run_dir=tmp_path / "run",
    )
    r = Run(plan, on_event=events.append)
    try:
        r.start()
        wait_until(lambda: (r.tick(), r.lanes[1].stats.ops > 50)[1], timeout=30)
        stopped = r.lanes[1].proc.pid
        os.kill(stopped, signal.SIGSTOP)
        t_stop = time.monotonic()
        wait_until(lambda: (r.tick(), any(e["kind"] == "lab-hung" for e in events))[1], timeout=HUNG_S + 20)
        assert time.monotonic() - t_stop >= HUNG_S - 0.5  # not before it had been silent that long
        wait_until(lambda: (r.tick(), r.lanes[1].inc == 1 and r.lanes[1].state == "running")[1], timeout=30)
        summary = r.finish()
    finally:
        r.abort()
        r.cleanup()
    hung = [e for e in events if e["kind"] == "lab-hung"]
    assert len(hung) == 1 and "write-behind lab not responding since" in hung[0]["detail"]
    assert summary["status"] == "lab-failed"
    assert kinds(summary) == ["lab-hung"] and summary["lanes"][0]["failures"] == []
    assert not Path(f"/proc/{stopped}").exists() or "Z" in Path(f"/proc/{stopped}/stat").read_text().split()[2]


# --------------------------------------------------------------------------- files that fail


def test_a_store_replaced_by_garbage_between_crash_and_restart_is_named(tmp_path):
    """The restart is refused (reported, not silent) and the end audit cannot read the store."""
    lanes = [LaneConfig(strategy="cache-aside", workload=Workload(rate=300))]
    store = tmp_path / "run" / "cache-aside" / "store.sqlite"

    def on_event(ev: dict) -> None:
        if ev["kind"] == "crash":  # the node is down: someone overwrites its database
            for suffix in ("-wal", "-shm"):
                Path(str(store) + suffix).unlink(missing_ok=True)
            store.write_bytes(b"this is not a database" * 100)

    summary = run(
        Plan(lanes=lanes, duration_s=2.0, crash_at=[0.5], restart_delay_s=0.3, run_dir=tmp_path / "run"),
        on_event=on_event,
    )
    assert summary["status"] == "lab-failed"
    failures = summary["lanes"][0]["failures"]
    assert [f["kind"] for f in failures][:1] == ["lab-refused"]
    assert "not a SQLite database" in failures[0]["reason"]
    assert "audit" in [f["kind"] for f in failures] and summary["lanes"][0]["audited"] is False


def test_a_store_of_another_shape_after_a_crash_is_refused_by_the_restart(tmp_path):
    store = tmp_path / "run" / "write-through" / "store.sqlite"

    def on_event(ev: dict) -> None:
        if ev["kind"] == "crash":
            for suffix in ("", "-wal", "-shm"):
                Path(str(store) + suffix).unlink(missing_ok=True)
            with sqlite3.connect(store) as conn:
                conn.execute("CREATE TABLE items (key TEXT, price REAL)")

    summary = run(
        Plan(
            lanes=[LaneConfig(strategy="write-through", workload=Workload(rate=300))],
            duration_s=2.0,
            crash_at=[0.5],
            restart_delay_s=0.3,
            run_dir=tmp_path / "run",
        ),
        on_event=on_event,
    )
    reasons = [f["reason"] for f in summary["lanes"][0]["failures"]]
    assert any("another shape" in r for r in reasons), reasons


def test_a_store_locked_at_the_end_is_named_by_the_audit_not_waited_on(tmp_path):
    store = tmp_path / "run" / "cache-aside" / "store.sqlite"
    holder: list[sqlite3.Connection] = []

    def on_event(ev: dict) -> None:
        if ev["kind"] == "drain":  # someone else takes the database before the audit
            conn = sqlite3.connect(store, isolation_level=None, check_same_thread=False)
            conn.execute("BEGIN EXCLUSIVE")
            holder.append(conn)

    lanes = [LaneConfig(strategy="cache-aside", workload=Workload(rate=300), store=StoreKnobs(journal_mode="delete"))]
    try:
        summary = run(Plan(lanes=lanes, duration_s=1.0, run_dir=tmp_path / "run"), on_event=on_event)
    finally:
        for conn in holder:
            conn.close()
    assert summary["status"] == "lab-failed"
    assert kinds(summary) == ["audit"] and "locked" in summary["lanes"][0]["failures"][0]["reason"]


@pytest.fixture
def small_disk(tmp_path):
    """3 MiB: a lab's files fill it within seconds."""
    with small_tmpfs(tmp_path / "disk", "3m") as where:
        yield where


@pytest.fixture
def tiny_disk(tmp_path):
    """64 KiB: less than any run's history."""
    with small_tmpfs(tmp_path / "tiny", "64k") as where:
        yield where


@pytest.mark.parametrize("strategy", ["cache-aside", "write-through", "write-behind"])
def test_a_full_disk_stops_the_lane_with_a_reason_and_exit_status_3(small_disk, tmp_path, strategy):
    out = tmp_path / "out.json"
    proc = cli(
        "run",
        "--strategy",
        strategy,
        "--duration",
        "20",
        "--value-size",
        "20000",
        "--keys",
        "100000",
        "--distribution",
        "uniform",
        "--run-dir",
        str(small_disk / "run"),
        "--json",
        str(out),
        timeout=200,
    )
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.returncode == 3, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "lab failed" in proc.stderr
    summary = json.loads(out.read_text())
    lane = summary["lanes"][0]
    assert lane["failures"] and lane["failures"][0]["kind"] == "lab-failed"
    assert any(word in lane["failures"][0]["reason"] for word in ("full", "No space", "cannot be written"))
    assert lane["ops"] > 0 and summary["ended_at_s"] < 20  # the lane stopped: the run did not wait 20 s
    assert "FAILED at" in proc.stdout


# --------------------------------------------------------------------------- outputs through the CLI


def test_json_to_a_device_writes_through_it_and_leaves_it_a_device(tmp_path):
    dev = tmp_path / "null"
    try:
        os.mknod(dev, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("mknod is not permitted here")
    proc = cli("run", "--strategy", "cache-aside", "--duration", "0.5", "--json", str(dev), timeout=120)
    assert proc.returncode == 0, proc.stderr
    st = dev.lstat()
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)


def test_json_to_standard_output_keeps_stdout_pure_json(tmp_path):
    proc = cli("run", "--strategy", "write-behind", "--duration", "0.5", "--json", "-", timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["lanes"][0]["strategy"] == "write-behind"
    assert "write-behind" in proc.stderr  # the table went to standard error


def test_a_closed_pipe_ends_the_printing_quietly_and_the_run_still_writes(tmp_path):
    out = tmp_path / "out.json"
    shell = (
        f"{sys.executable} -m cachestudio run --strategy cache-aside --duration 0.5 --crash-at 0.2 "
        f"--json {out} | head -c 10 >/dev/null; echo status ${{PIPESTATUS[0]}}"
    )
    proc = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert "Traceback" not in proc.stderr and "Broken pipe" not in proc.stderr, proc.stderr
    assert proc.stdout.strip() == "status 0"
    assert json.loads(out.read_text())["status"] == "ok"
    listing = subprocess.run(
        ["bash", "-c", f"{sys.executable} -m cachestudio scenarios | head -1"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert listing.stderr == "" and len(listing.stdout.splitlines()) == 1


def test_an_abbreviated_option_is_refused_not_silently_ignored():
    proc = cli("run", "--scenario", "crash-the-node", "--read", "0.0", timeout=60)
    assert proc.returncode == 2 and "--read" in proc.stderr and "Traceback" not in proc.stderr


def test_the_summary_says_how_durable_it_was(tmp_path):
    summary = run(
        Plan(
            lanes=[LaneConfig(strategy="write-behind", store=StoreKnobs(journal_mode="wal", synchronous="off"))],
            duration_s=0.3,
        )
    )
    d = summary["lanes"][0]["durability"]
    assert (d["journal_mode"], d["synchronous"], d["queue"], d["cache"]) == ("wal", "off", "volatile", "persistent")
    assert any("synchronous off" in note for note in d["notes"])
    safe = run(Plan(lanes=[LaneConfig(strategy="cache-aside", store=StoreKnobs(synchronous="full"))], duration_s=0.3))
    assert safe["lanes"][0]["durability"]["notes"] == []


def test_a_history_that_does_not_fit_is_one_line_and_the_rest_is_written(tiny_disk, tmp_path):
    """ENOSPC while writing --history: exit status 1, one line, no temp file left, and the
    summary (elsewhere) and the table are still there."""
    out, hist = tmp_path / "out.json", tiny_disk / "history.jsonl"
    proc = cli(
        "run", "--strategy", "cache-aside", "--duration", "1", "--json", str(out), "--history", str(hist), timeout=200
    )
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--history" in lines[0]
    assert json.loads(out.read_text())["status"] == "ok" and "lab incarnations" in proc.stdout
    assert list(tiny_disk.iterdir()) == []  # neither the history nor a temp file


def test_writes_lost_at_a_kill_are_counted_in_the_crash_window(tmp_path):
    """The crash's row of "what each fault did" holds every write found lost at the kill
    (it once missed them by the rounding of the event's time)."""
    from cachestudio.engine.config import WriteBehindKnobs

    cfg = LaneConfig(
        strategy="write-behind",
        workload=Workload(rate=2000),
        write_behind=WriteBehindKnobs(flush_interval_s=5.0, batch_size=100_000),
    )
    summary = run(Plan(lanes=[cfg], duration_s=1.5, crash_at=[0.6], run_dir=tmp_path / "run"))
    lost = summary["lanes"][0]["anomalies"]["lost_writes"]
    crash = [f for f in summary["faults"] if f["kind"] == "crash"]
    assert lost > 0 and len(crash) == 1
    assert crash[0]["lanes"]["write-behind"]["lost_writes"] == lost


def test_a_lab_hung_while_draining_is_said_to_have_lost_its_queue(tmp_path):
    """Item 11 of issue 24: a write-behind lab that hangs in its drain (SIGSTOP, with writes
    queued behind a long flush interval) is killed as hung; the drain says its volatile queue
    was lost, with the acknowledged writes lost that an independent recount from the history
    and the run directory finds, never "queues drained"; the lab that stopped cleanly is said
    to have stopped. The summary's drain event carries the same, lab by lab."""
    from recompute import recompute

    from cachestudio.engine.config import WriteBehindKnobs

    run_dir = tmp_path / "run"
    queued = WriteBehindKnobs(flush_interval_s=3600.0, batch_size=100_000)
    plan = Plan(
        lanes=[
            LaneConfig(strategy="cache-aside", workload=Workload(rate=300)),
            LaneConfig(strategy="write-behind", workload=Workload(rate=500), write_behind=queued),
        ],
        duration_s=600,
        run_dir=run_dir,
    )
    r = Run(plan)
    try:
        r.start()
        wait_until(lambda: (r.tick(), r.lanes[1].gauges.get("queue_depth", 0) > 20)[1], timeout=60)
        os.kill(r.lanes[1].nodes[0].proc.pid, signal.SIGSTOP)  # it will never answer "stop"
        summary = r.finish()
        r.write_history(tmp_path / "h.jsonl")
    finally:
        r.abort()
        r.cleanup()
    history = [json.loads(line) for line in (tmp_path / "h.jsonl").read_text().splitlines()]
    truth = recompute(history, run_dir / "write-behind", "write-behind")["lost_writes"]
    drain = [e for e in summary["events"] if e["kind"] == "drain"]
    assert len(drain) == 1, drain
    detail, labs = drain[0]["detail"], {x["lab"]: x for x in drain[0]["labs"]}
    assert labs["cache-aside"]["fate"] == "drained" and labs["cache-aside"]["queue"] is None
    hung = labs["write-behind"]
    assert hung["fate"] == "killed" and hung["queue"] == "volatile" and hung["queued"] > 0, hung
    assert truth and hung["lost"] == len(truth) == summary["lanes"][1]["anomalies"]["lost_writes"], (hung, len(truth))
    assert detail.startswith("cache-aside stopped; ") and "drained" not in detail, detail
    assert "write-behind killed as hung while draining (SIGKILL): its volatile queue lost (" in detail, detail
    assert f"{len(truth):,} acknowledged writes judged lost" in detail, detail
    assert kinds(summary) == ["lab-hung"]
