"""Signals everywhere, lanes bounded, orphans reaped (issue 26, items 4, 8, 9).

Every command, real subprocess in a session of its own, a SIGINT or SIGTERM at a seeded
random moment once it handles signals (read from /proc/<pid>/status, not from its own
words): it ends with 130/143 and one line saying so (or, had it already finished, 0),
no traceback, no temp folder and no process left. The lane count has one limit for the
command line and files. A SIGKILLed run's temp folder is removed by the next command;
a live owner's and an unmarked one are kept."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import helpers
import pytest
from helpers import assert_bad_input, cli, session_pids, wait_until

from cachestudio.engine.config import MAX_LANES
from cachestudio.engine.tempfolders import OWNER_FILE, start_time

EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}


def catches(pid: int, sig: signal.Signals) -> bool:
    """Whether the process has a handler of its own for ``sig`` (the kernel's SigCgt)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next(int(line.split()[1], 16) for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(mask >> (sig - 1) & 1)


def signalled(args: list[str], tmp: Path, sig: signal.Signals, delay: float, env: dict | None = None):
    """Start ``cachestudio ARGS``; once it handles SIGTERM, wait ``delay`` s and send
    ``sig`` to it (not to its labs); return (returncode, stdout, stderr)."""
    proc = helpers.start_cli(*args, env={"TMPDIR": str(tmp), **(env or {})}, start_new_session=True)
    try:
        wait_until(lambda: catches(proc.pid, signal.SIGTERM) or proc.poll() is not None, timeout=120)
        try:
            proc.communicate(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    wait_until(lambda: not session_pids(proc.pid), timeout=30)  # no lab, no server left
    return proc.returncode, stdout, stderr


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("rec")
    out = d / "run.csrec"
    done = cli("run", "--strategy", "write-behind", "--duration", "2", "--seed", "4", "--record", str(out))
    assert done.returncode == 0, done.stderr
    return out


def commands(recording: Path, out: Path) -> dict[str, list[str]]:
    scenario = str(helpers.ROOT / "resources" / "scenarios" / "write-burst.toml")
    many = [a for i in range(MAX_LANES) for a in ("--lane", f"l{i}=write-behind,nodes=8")]
    return {
        "run-start-up": ["run", *many, "--duration", "1", "--json", str(out / "s.json")],
        "check-run": ["check", "--run", scenario],
        "bench": ["bench", "--quick", "--duration", "0.5", "--reps", "1", "--json", str(out / "b.json")],
        "docs": ["docs", "--out", str(out / "docs"), "--only", "write-burst"],
        "replay": ["replay", str(recording), "--json", str(out / "r.json")],
        "report": ["report", str(recording), "--html", str(out / "r.html")],
    }


CASES = ["run-start-up", "check-run", "bench", "docs", "replay", "report"]
#: The moments drawn from: within a command's work (replay and report of a 2 s recording
#: take well under a second).
LATEST_S = {"replay": 0.3, "report": 0.3}


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("name", CASES)
def test_a_signal_at_a_random_moment_of_every_command(tmp_path, recording, name, seed):
    rng = random.Random(f"{name}-{seed}")
    sig = rng.choice([signal.SIGINT, signal.SIGTERM])
    delay = rng.uniform(0.0, LATEST_S.get(name, 3.0))
    tmp, out = tmp_path / "tmp", tmp_path / "out"
    tmp.mkdir()
    out.mkdir()
    status, stdout, stderr = signalled(commands(recording, out)[name], tmp, sig, delay)
    note = f"{name} {sig.name} at {delay:.2f} s: {status}\n{stderr}"
    assert "Traceback" not in stdout + stderr, note
    assert list(tmp.iterdir()) == [], note  # no temp folder left
    if status == 0:  # it was done before the signal
        return
    assert status == EXIT[sig], note
    assert f"interrupted by {sig.name}" in stderr, note
    # nothing half-written: an interrupted command's output files are not there
    left = [p for p in out.rglob("*") if p.is_file()]
    assert left == [], note


def test_start_up_of_the_most_lanes_stops_at_once(tmp_path):
    """SIGTERM while 6 lanes of 8 nodes start: the run stops without waiting for them all."""
    many = [a for i in range(MAX_LANES) for a in ("--lane", f"l{i}=write-behind,nodes=8")]
    proc = helpers.start_cli("run", *many, "--duration", "1", env={"TMPDIR": str(tmp_path)}, start_new_session=True)
    try:
        # the labs are coming up (some of the 48 processes are there), the run has not begun
        wait_until(lambda: len(session_pids(proc.pid)) > 4 or proc.poll() is not None, timeout=120)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 143, stderr
    assert "interrupted by SIGTERM" in stderr and "Traceback" not in stderr
    assert "ops/s" not in stdout  # it did not run to its end first
    wait_until(lambda: not session_pids(proc.pid), timeout=30)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------- the lane bound


def test_more_lanes_than_the_limit_are_refused_on_the_command_line():
    lanes = [a for i in range(MAX_LANES + 1) for a in ("--lane", f"l{i}=cache-aside")]
    assert_bad_input(cli("run", *lanes, "--duration", "1"), "--lane", str(MAX_LANES + 1), f"at most {MAX_LANES}")


def test_more_lanes_than_the_limit_are_refused_in_a_file(tmp_path):
    body = 'name = "many"\nduration = 1\n' + "".join(
        f'[[lanes]]\nname = "l{i}"\nstrategy = "cache-aside"\n' for i in range(MAX_LANES + 1)
    )
    assert_bad_input(cli("check", str(helpers.write(tmp_path, body))), f"at most {MAX_LANES}")
    body = 'name = "many"\nduration = 1\n' + "".join(
        f'[[lanes]]\nname = "l{i}"\nstrategy = "cache-aside"\n' for i in range(MAX_LANES)
    )
    done = cli("check", str(helpers.write(tmp_path, body)))
    assert done.returncode == 0, done.stderr
    assert f"{MAX_LANES} lane(s)" in done.stdout


# ------------------------------------------------------------------------- orphans reaped


def _marked(root: Path, name: str, owner: str | None) -> Path:
    d = root / name
    (d / "run").mkdir(parents=True)
    (d / "run" / "store.db").write_bytes(b"x" * 1000)
    if owner is not None:
        (d / OWNER_FILE).write_text(owner)
    return d


def test_a_sigkilled_runs_folder_is_removed_by_the_next_command(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = helpers.start_cli("run", "--duration", "60", env={"TMPDIR": str(tmp)}, start_new_session=True)
    try:
        wait_until(lambda: any(tmp.glob("cachestudio-run-*/*/history/*.jsonl")) or proc.poll() is not None, timeout=60)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    wait_until(lambda: not session_pids(proc.pid), timeout=30)
    (orphan,) = tmp.iterdir()
    assert orphan.name.startswith("cachestudio-run-") and (orphan / OWNER_FILE).exists()
    live = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        alive = _marked(tmp, "cachestudio-run-alive", f"{live.pid} {start_time(live.pid)}\n")
        unmarked = _marked(tmp, "cachestudio-run-unmarked", None)
        foreign = _marked(tmp, "someone-else", f"{proc.pid}\n")
        done = cli("scenarios", env={"TMPDIR": str(tmp)})
        assert done.returncode == 0, done.stderr
        assert not orphan.exists()
        for kept in (alive, unmarked, foreign):
            assert (kept / "run" / "store.db").exists(), kept
    finally:
        live.stdin.close()
        live.wait(30)
    cli("scenarios", env={"TMPDIR": str(tmp)})  # its owner gone now: removed
    assert not alive.exists() and unmarked.exists()
