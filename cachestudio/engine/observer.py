"""The observer in a process of its own, for the window.

At full speed the labs complete tens of thousands of operations a second; reading their
history files, auditing every record and binning chart rows costs the observer about as
much CPU time as one core. In the window's process that starved the event loop (frames
hundreds of milliseconds apart). So the window runs the observer (:class:`Run`, its
auditor and the chart series) here, and receives a small update every ``TICK_S``: new
chart rows, the lanes' state and counters, fault events, anomalies, and for the flow
view the count of every (kind, outcome) plus an even sample of at most
``SAMPLE_RECORDS`` records per lane (all of them at low rates).

What each fault did, live (:mod:`.outcomes`): every update also carries, changes only,

* ``"outcomes"``: the fault windows whose numbers, end or caption changed since the last
  update, as :meth:`LiveOutcomes.windows` gives them (``id``, ``kind``, ``name``,
  ``start``, ``end``, ``detail``, ``lanes`` {strategy: {ops, errors, rejected,
  read_p99_ms, write_p99_ms, stale_reads, lost_writes}}, ``open``, ``caption``);
* ``"groups"``: the anomaly groups (cause, lane, kind) whose count changed, as
  :meth:`LiveOutcomes.groups` gives them (``id``, ``fault_id``, ``cause``, ``lane``,
  ``kind``, ``count``, ``distinct_keys``, ``keys``, ``first_at``, ``last_at``, ``line``);
* ``"anomaly_groups"``: per lane, the group id of each anomaly of ``"anomalies"`` (same
  order and length).

Every anomaly is counted into its group, also those beyond ``MAX_ANOMALIES`` that are not
sent. A round's anomalies are given to the outcomes after its events (the runner reports
the writes lost at a kill before the crash's event).

A lesson's run (``finish``: the opened scenario states claims) ends as a headless run
does: when the plan's duration is due, :meth:`Run.finish` stops the clients, drains every
queue and audits at rest against the real data; the anomalies that audit finds go out in
one last update, then ``("finished", summary)`` with the summary ``cachestudio run --json``
writes (the window judges the lesson's claims on it, as ``check --run`` does). After that
the observer only waits for ``("stop",)``.

Commands come as ``("call", method, args)`` or ``("call", method, args, kwargs)`` for
:class:`Run`'s methods in :data:`COMMANDS` (a fault kind's command takes its parameters by
name: ``("call", "slow_db", (), {"ms": 20.0, "duration": 5.0})``) and ``("stop",)``.
Replies: ``("started", {"t0", "root"})``, ``("update", dict)``,
``("message", text)``, ``("error", text)``, ``("stopped",)``.
"""

from __future__ import annotations

import os
import signal
import time
import traceback

from .config import ConfigError
from .faultkinds import FAULTS
from .lab import die_with_parent
from .runner import LabFailed, Plan, Run
from .timemachine import MAX_ANOMALIES, SAMPLE_RECORDS, UpdateBuilder

TICK_S = 0.05
__all__ = ["observer_process", "COMMANDS", "MAX_ANOMALIES", "SAMPLE_RECORDS", "TICK_S"]
#: The :class:`Run` methods the window may call: every fault kind's command
#: (:attr:`FaultKind.command`) and the run's controls.
COMMANDS = {kind.command for kind in FAULTS} | {
    "outage_start",
    "outage_end",
    "schedule",
    "heal",
    "pause",
    "resume",
    "step",
    "set_knob",
}


def lane_state(lane) -> dict:
    a = lane.auditor
    return {
        "name": lane.cfg.label,
        "strategy": lane.cfg.strategy,
        "cfg": lane.cfg,
        "inc": lane.inc,
        "pid": lane.proc.pid if lane.proc is not None else None,
        "state": lane.state,
        "health": lane.health(),
        "gauges": dict(lane.gauges),
        "totals": lane.totals(),
        "counts": dict(a.counts),
        "at_risk": a.at_risk(),
        "ops": lane.stats.ops,
        "reads": lane.stats.reads,
        "writes": lane.stats.writes,
        "burst": lane.burst_active(),
        "failures": list(lane.failures),
    }


def _end_recording(run: Run) -> None:
    """A window's run ends when it is reset or the window closes: its recording says so."""
    rec = run.recorder
    if rec is None or rec.closed:
        return
    try:
        now = run.now()
        rec.tick(now, run.tick_state())
        rec.final(
            {
                "status": "stopped",
                "interrupted": None,
                "ended_at": now,
                "failures": list(run.run_failures),
                "run_dir": None,
                "lanes": [
                    {
                        "totals": lane.totals(),
                        "max_depth": lane.max_depth,
                        "incarnations": lane.inc + 1,
                        "failures": list(lane.failures),
                        "audited": False,
                        "drained": False,
                    }
                    for lane in run.lanes
                ],
            }
        )
        rec.close()
        rec.target.commit_quietly()
    except Exception:  # noqa: BLE001 - the recording stays readable up to its last flush
        pass


def _update(run: Run, b: UpdateBuilder) -> dict:
    """What the window hears every tick: the builder's rows and records, the lanes' state."""
    flags = {
        "paused": run.paused,
        "outage_on": run.outage_on,
        "slow_db_ms": run.slow_db_ms,
        "slow_cache_ms": run.slow_cache_ms,
    }
    gauges, risks = [], []
    for lane in run.lanes:
        t = lane.totals()
        gauges.append((t["db_reads"], t["db_writes"], lane.gauges.get("queue_depth", 0)))
        a = lane.auditor
        risks.append((a.counts["stale_read"], a.counts["lost_write"], a.at_risk()))
    node_gauges = [[(g["db_reads"], g["db_writes"], g["queue_depth"]) for g in ln.node_gauges()] for ln in run.lanes]
    return b.build(run.now(), flags, [lane_state(ln) for ln in run.lanes], gauges, risks, node_gauges)


def _finish(conn, run: Run, b: UpdateBuilder) -> None:
    """A lesson's end: the headless end (drain, audit at rest, summary), its last update and
    the summary; then wait for the window's stop."""
    summary = run.finish()
    conn.send(("update", _update(run, b)))
    conn.send(("finished", summary))
    while conn.recv()[0] != "stop":
        pass  # the run is over: commands have nothing to act on
    run.cleanup()
    conn.send(("stopped",))


def observer_process(
    conn, plan: Plan, nice: int = 0, parent_pid: int = 0, record: tuple | None = None, finish: bool = False
) -> None:
    """Entry point. ``nice``: the observer and the labs it starts (which inherit it) yield
    the CPU to the window's process when the cores are all busy. Ctrl-C is the window's
    to handle; if the window dies, so does the observer (and with it, its labs).
    ``record``: (path, scenario dict or None): record the run there as it goes.
    ``finish``: end the run as headless when its duration is due (a lesson's end)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent_pid)
    if nice and hasattr(os, "nice"):
        try:
            os.nice(nice)
        except OSError:
            pass
    b = UpdateBuilder(plan.lanes)

    recorder = None
    try:
        if record is not None:
            from types import SimpleNamespace

            from .recording import RecordingWriter, check_target, plan_header

            path, scenario = record
            recorder = RecordingWriter(
                check_target(path), plan_header(plan, SimpleNamespace(**scenario) if scenario else None)
            )
        run = Run(plan, on_event=b.on_event, on_records=b.on_records, recorder=recorder)
        run.start(wait=False)
    except (ConfigError, LabFailed, OSError) as exc:
        conn.send(("error", str(exc)))
        return
    conn.send(("started", {"t0": run.t0, "root": str(run.root)}))
    try:
        while True:
            deadline = time.monotonic() + run.sleep_for(TICK_S)  # sooner when a fault is due
            while conn.poll(max(0.0, deadline - time.monotonic())):
                msg = conn.recv()
                if msg[0] == "stop":
                    run.abort()
                    _end_recording(run)
                    run.cleanup()
                    conn.send(("stopped",))
                    return
                name, args, kwargs = msg[1], msg[2], (msg[3] if len(msg) > 3 else {})
                if name not in COMMANDS:
                    conn.send(("message", f"unknown command {name!r}"))
                    continue
                try:
                    getattr(run, name)(*args, **kwargs)
                except ConfigError as exc:
                    conn.send(("message", str(exc)))
                if time.monotonic() >= deadline:
                    break
            run.tick()
            conn.send(("update", _update(run, b)))
            if finish and run.due:
                _finish(conn, run, b)
                return
    except (EOFError, BrokenPipeError, ConnectionResetError):
        run.abort()  # the window is gone: so are its labs
        _end_recording(run)
        run.cleanup()
    except Exception:  # noqa: BLE001 - say what broke, then stop the labs
        try:
            conn.send(("error", "the observer failed: " + traceback.format_exc(limit=3).strip().splitlines()[-1]))
        except OSError:
            pass
        run.abort()
        run.cleanup()
