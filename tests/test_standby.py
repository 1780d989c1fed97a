"""Standby labs (issue 24): a node that a fault will kill has a lab process waiting, already
started and imported, which its next incarnation becomes; the run's end takes it away, and
so does the death of the observer. Real lab processes, real SIGKILL.
"""

from __future__ import annotations

import os
import signal
from dataclasses import replace
from pathlib import Path

import helpers
import pytest
from helpers import drive, wait_until

from cachestudio.engine.config import Backends, LaneConfig, Workload
from cachestudio.engine.runner import Plan, Run

WORKLOAD = Workload(rate=500, read_ratio=0.5, keys=50, distribution="uniform")


def alive(pid: int) -> bool:
    """A live process (a zombie counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_the_restarted_incarnation_is_the_standby_and_the_end_takes_it_away(tmp_path):
    cfg = LaneConfig(strategy="write-behind", workload=WORKLOAD, seed=3)
    run = Run(Plan(lanes=[cfg], duration_s=30.0, crash_at=[1.0], restart_delay_s=0.2, run_dir=tmp_path / "run"))
    node = run.nodes[0]
    try:
        run.start()
        drive(run, lambda: node.standby is not None)
        standby_pid = node.standby[0].pid
        first_pid = node.proc.pid
        drive(run, lambda: node.inc == 1 and node.state == "running")
        assert node.proc.pid == standby_pid != first_pid  # the standby became incarnation 1
        assert not alive(first_pid)
        # a standby for the next kill is ready again once the node runs
        drive(run, lambda: node.standby is not None and node.standby[0].pid != standby_pid)
        spare = node.standby[0].pid
        drive(run, lambda: run.lanes[0].stats.max_seq > 0)
        run.plan = replace(run.plan, duration_s=run.now())
        summary = run.finish()
    finally:
        run.abort()
        run.cleanup()
    assert not alive(spare)  # the run's end took the unused standby away
    assert node.standby is None
    assert summary["lanes"][0]["incarnations"] == 2
    assert [e["kind"] for e in summary["events"]][:2] == ["crash", "restart"]


@pytest.mark.parametrize(
    "faults, wanted",
    [
        ({"node_crashes": [(20.0, 1)]}, [False, True]),
        ({"outages": [(20.0, 1.0)]}, [False, False]),
        ({"crash_at": [20.0]}, [True, True]),
    ],
)
def test_only_the_nodes_a_fault_kills_get_a_standby(tmp_path, faults, wanted):
    """Derived from the plan: ``--crash-node 1`` on a two-node lane readies node 1 only; a
    plan without a killing fault readies none; ``--crash-at`` readies every node."""
    cfg = LaneConfig(strategy="cache-aside", workload=WORKLOAD, seed=3, backends=Backends(nodes=2))
    run = Run(Plan(lanes=[cfg], duration_s=30.0, run_dir=tmp_path / "run", **faults))
    try:
        run.start()
        drive(run, lambda: all(n.state == "running" for n in run.nodes))
        assert [n.wants_standby for n in run.nodes] == wanted
        drive(run, lambda: all((n.standby is not None) == w for n, w in zip(run.nodes, wanted)))
    finally:
        run.abort()
        run.cleanup()
    assert all(n.standby is None for n in run.nodes)


def test_a_standby_dies_with_its_observer(tmp_path):
    """SIGKILL of the command line: its labs and its standbys go with it (parent-death
    signal), none is left waiting."""
    proc = helpers.start_cli(
        "run",
        "--strategy",
        "write-through",
        "--duration",
        "60",
        "--crash-at",
        "50",
        "--run-dir",
        str(tmp_path / "run"),
        start_new_session=True,
    )
    try:

        def ours(what: bytes = b"") -> set[int]:
            out = set()
            for entry in Path("/proc").iterdir():
                if entry.name.isdigit() and alive(int(entry.name)):
                    try:
                        if os.getsid(int(entry.name)) == proc.pid and what in (entry / "cmdline").read_bytes():
                            out.add(int(entry.name))
                    except OSError:
                        pass
            return out

        # its lab and the standby: two processes started by multiprocessing's spawn
        wait_until(lambda: len(ours(b"spawn_main")) >= 2, timeout=60)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        wait_until(lambda: not ours(), timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
