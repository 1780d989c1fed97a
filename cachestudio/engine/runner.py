"""The observer side of a run: starts the labs, commands them, injects faults, audits.

A :class:`Run` owns one lab process per app node of each lane (all lanes run the same
seeded operation stream). Its :meth:`Run.tick` does one round of observer work (read
gauges, tail the history, fire due faults, notice dead labs) and returns quickly, so that
a CLI loop or a window timer can drive it. :func:`run` is the blocking headless driver.

The run is split by job: the plan and its checks are :mod:`plan`, the lanes and their
nodes' lab processes :mod:`nodes`, the faults (:class:`faultinjection.FaultInjection`),
their deadlines (:class:`schedule.Schedule`) and the end of the run (drain, audit,
summary: :class:`runend.RunEnd`) are bases of :class:`Run`; this module keeps the clock,
the observer's round and the controls, and re-exports what its importers always found
here (``Plan``, ``check_plan``, ``LabFailed``, ``lane_summary``, …). The schedule fires
each fault kind by its declared command (:attr:`faultkinds.FaultKind.command`), at its
time: the round fires what is due first and between its heavy steps, and a driver sleeps
only until the next deadline (:meth:`Run.sleep_for`).

Nothing fails silently (DESIGN.md §5, §6). Every wait here is bounded: a lab that sends
nothing for ``HUNG_S`` is named ("not responding since 4.2 s"), killed and restarted; a
lab that cannot go on says why and its lane stops; a restart the lab refuses is
reported. Each of these is a *failure* of the lane (``lanes[].failures``), and a run with
any failure ends with exit status 3. Nothing the observer does to itself waits on its
own fault injection: the copy of the store at a kill reads through the outage's own
connection while the outage holds the lock. A run ends within its duration plus
``END_BOUND_S`` at worst.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from .config import LIVE_KNOBS, ConfigError, Interrupted, validate
from .faultinjection import FaultInjection
from .faultkinds import FAULTS
from .history import HistoryWriter
from .lab import CLIENT_JOIN_S, DRAIN_LIMIT_S, LanePaths
from .nodes import (
    AUDIT_TIMEOUT_S,
    COUNTERS,
    HUNG_S,
    KILL_WAIT_S,
    MP,
    READY_TIMEOUT_S,
    SILENT_S,
    LabFailed,
    LabHandle,
    Lane,
)
from .plan import Plan, check_plan, check_run_dir, durability
from .runend import RunEnd
from .schedule import Schedule
from .serverwatch import ServerWatcher, ServerWatching
from .storage import LaneStorage, RunServers, traversable
from .summary import SUMMARY_NAMES, lane_summary
from .tempfolders import make_folder

#: What importers of this module have always found here (the plan, the nodes, the end).
__all__ = [
    "AUDIT_TIMEOUT_S",
    "COUNTERS",
    "END_BOUND_S",
    "HUNG_S",
    "KILL_WAIT_S",
    "MP",
    "READY_TIMEOUT_S",
    "SILENT_S",
    "SUMMARY_NAMES",
    "LabFailed",
    "LabHandle",
    "Lane",
    "Plan",
    "Run",
    "StopRequest",
    "Interrupted",
    "check_plan",
    "check_run_dir",
    "durability",
    "lane_summary",
    "run",
]

#: The worst case beyond a run's duration: its start and a last restart (each up to the
#: ready timeout), the drain (DRAIN_LIMIT_S), a client stuck in a call, a silent lab's
#: grace, the audit. A run normally ends within a second of its duration.
END_BOUND_S = 2 * READY_TIMEOUT_S + DRAIN_LIMIT_S + CLIENT_JOIN_S + HUNG_S + AUDIT_TIMEOUT_S
CONFIRM_INTERVAL_S = 1.0  # how often the observer reads store versions (at-risk writes)
CONFIRM_WAIT_S = 0.05  # the live store check never holds up the observer: a busy store is read next time
STEP_WAIT_S = 15.0  # the longest a step waits for its operations (injected latency is at most 10 s)
#: The most of one node's history the round reads before the faults due fire again (about
#: 400 records: a millisecond or two of parsing, stats and live audit on a quiet machine).
HISTORY_SLICE = 64 * 1024
HISTORY_SLICES = 32
BURST_SETTLE_S = 0.3  # a burst is not over before the labs' gauges could show it


class Run(FaultInjection, RunEnd, Schedule, ServerWatching):
    """One run: its labs, its clock, its schedule of faults, its observer round (see the
    module's docstring). The faults are :class:`FaultInjection`'s, the end :class:`RunEnd`'s,
    the schedule :class:`Schedule`'s."""

    def __init__(
        self,
        plan: Plan,
        on_event: Callable[[dict], None] | None = None,
        on_records: Callable[[int, list, list], None] | None = None,
        recorder=None,
    ):
        self.plan = check_plan(plan)
        #: A :class:`~.recording.RecordingWriter`, fed as the run goes (or None).
        self.recorder = recorder
        self._tmp = None
        servers = RunServers(Path("."), plan.lanes, plan.redis_url, plan.postgres_url)
        servers.check()  # a missing program or an unreachable server: one line, before any file
        if plan.run_dir is None:
            self._tmp = make_folder("run")  # its owner named: orphans are removed (tempfolders.py)
            self.root = Path(self._tmp)
            if servers.need_pg and not plan.postgres_url:
                traversable(self.root)  # ours: PostgreSQL's own user must reach its socket here
        else:
            self.root = Path(plan.run_dir)
            self.root.mkdir(parents=True, exist_ok=True)
        servers.root = self.root.absolute()
        #: The run's servers (its own, started by :meth:`start`, or the given ones).
        self.servers = servers
        #: Who notices a server that died (ServerWatching: a failure of the lanes on it).
        self.server_watch = ServerWatcher(servers)
        self.lanes: list[Lane] = []
        for cfg in plan.lanes:
            paths = LanePaths(self.root / cfg.slug)
            self.lanes.append(Lane(cfg, paths, LaneStorage(cfg, paths, servers.endpoints(cfg))))
        #: Every node of every lane, lane by lane.
        self.nodes: list[LabHandle] = [node for lane in self.lanes for node in lane.nodes]
        self.on_event = on_event or (lambda event: None)
        #: Called with (lane index, new operation records, anomalies they revealed).
        self.on_records = on_records
        self.events: list[dict] = []
        self._events_file = HistoryWriter(self.root / "events.jsonl")
        self.t0 = 0.0
        self.outage_on = False
        self._outage_until = 0.0  # run time at which the outage ends (overlaps extend it)
        #: Set (to "SIGINT" or "SIGTERM") when the run was asked to stop before its end.
        self.interrupted: str | None = None
        #: Failures of the run itself, not of one lane (its own files): [{"at", "kind", "reason"}].
        self.run_failures: list[dict] = []
        self._schedule: list[tuple[float, str, tuple, dict]] = []
        self._due: float | None = None  # when the scheduled fault firing now was due
        self._firing: str | None = None  # ... and its name (a fault kind's, or an end's)
        #: What a scheduled item calls: each fault kind's command, and the ends faults schedule.
        self._handlers: dict[str, Callable] = {kind.name: getattr(self, kind.command) for kind in FAULTS}
        self._handlers.update(
            {
                "outage-due": self.outage_due,
                "slow-db-end": self.slow_db_end,
                "slow-cache-end": self.slow_cache_end,
                "cache-server-back": self.cache_server_back,
            }
        )
        self._restart_at: float | None = None
        self._next_confirm = 0.0
        self.slow_db_ms = 0.0
        self.slow_cache_ms = 0.0
        self._burst_since: float | None = None
        self._db_base: dict = {}
        self._cache_base: dict = {}
        self._server_deaths: list = []  # deaths of cache servers holding durable queues (faultinjection)
        self.paused = False
        self.finished = False
        #: The run's clock while it is paused (lab time stands still), else None.
        self._frozen: float | None = None
        self._clock = time.monotonic  # lab time's source (a test moves it on to fake a long pause)
        self._stepping: set[int] = set()  # lanes whose stepped operation has not ended yet
        self._step_deadline = 0.0

    # -- time and events -----------------------------------------------------------------

    def now(self) -> float:
        """Lab time: seconds since the run started, not counting its pauses."""
        if self._frozen is not None:
            return self._frozen
        return self._clock() - self.t0

    def _event(
        self,
        kind: str,
        detail: str,
        injected: bool = False,
        lane: str | None = None,
        at: float | None = None,
        extra: dict | None = None,
    ) -> None:
        """Record an event (the history's, the recording's, the observer's). One made while a
        scheduled item fires carries ``due``, the run time it was scheduled for (``start -
        due`` is its lateness), and ``scheduled_as``, that item's name. ``extra``: more fields
        (the drain's per-lab ``labs``)."""
        t = round(self.now() if at is None else at, 6)
        ev = {
            "id": f"ev#{len(self.events)}",
            "lane": lane,
            "kind": kind,
            "key": None,
            "version": None,
            "start": t,
            "end": t,
            "outcome": None,
            "acked": None,
            "injected": injected,
            "detail": detail,
        }
        if self._due is not None:
            ev["due"] = round(self._due, 6)
            ev["scheduled_as"] = self._firing
        if extra:
            ev.update(extra)
        self.events.append(ev)
        if not self.run_failures:
            try:
                self._events_file.write(_json_line(ev))
            except OSError as exc:  # the run directory's disk is full or gone: said once, not fatal
                self.run_failures.append(
                    {
                        "at": t,
                        "kind": "files",
                        "reason": f"the run's events file "
                        f"{self.root / 'events.jsonl'} cannot be written ({exc.strerror or exc}); "
                        "the run directory is incomplete",
                    }
                )
        if self.recorder is not None:
            self.recorder.event(ev)
        self.on_event(ev)

    # -- start --------------------------------------------------------------------------

    def start(self, wait: bool = True, stop: StopRequest | None = None) -> None:
        """Start the labs. ``wait``: the clock starts when all are ready (headless);
        otherwise it starts now and each lab joins as it comes up (the window). ``stop``:
        a signal while the labs start raises :class:`Interrupted` within a poll (0.05 s)."""
        stop = stop or StopRequest()
        self._prepare_backends()
        if not wait:
            self.t0 = time.monotonic()  # the window's clock starts now; labs join as they come up
        for lane in self.lanes:
            lane.paths.make()
        for node in self.nodes:
            stop.check()
            node.spawn(None if wait else self.t0)
        if wait:
            deadline = time.monotonic() + READY_TIMEOUT_S
            for node in self.nodes:
                self._await_ready(node, deadline, stop)
            self.t0 = time.monotonic()
            for node in self.nodes:
                self._go(node)
        else:
            self._ready_deadline = self.t0 + READY_TIMEOUT_S
        want_standbys(self.plan, self.nodes, window=not wait)
        for kind in FAULTS:  # a fault that lasts schedules its own end when it fires
            for entry in getattr(self.plan, kind.field):
                at, values = kind.values(entry)
                self.schedule(at, kind.name, **values)
        for lane in self.lanes:
            if lane.cfg.latency.any():
                self._event("config", lane.cfg.latency.label(), injected=True, lane=lane.cfg.label)
            if self.servers.any or len(lane.nodes) > 1:  # the flow view names the servers and the nodes
                self._event("backends", self.servers.describe(lane.cfg), lane=lane.cfg.label)

    def _prepare_backends(self) -> None:
        """The run's own servers, and each lane's store (and embedded cache) made once
        before its nodes start (a server that will not start is one line: ConfigError)."""
        try:
            if self.servers.any:
                self.servers.start()
            for lane in self.lanes:
                lane.paths.make()
                lane.storage.prepare(len(lane.nodes))
        except BaseException:
            self.abort()
            raise

    def _await_ready(self, node: LabHandle, deadline: float, stop: StopRequest) -> dict:
        """Wait (bounded) for a starting lab's "ready"; at the run's start a lab that
        refuses its files is bad input (ConfigError), one that does not start a failure."""
        reason = self._wait_ready(node, deadline, stop)
        if isinstance(reason, dict):
            return reason
        self.abort()
        if node.error:
            raise ConfigError(node.error)
        raise LabFailed(f"the {node.name} lab did not start: {reason}")

    def _wait_ready(self, node: LabHandle, deadline: float, stop: StopRequest | None = None) -> dict | str:
        """The lab's ready info, or why it is not coming (its refusal is in ``node.error``)."""
        while time.monotonic() < deadline:
            if stop is not None:
                stop.check()
            if node.conn.poll(0.05):
                try:
                    kind, *rest = node.conn.recv()
                except (EOFError, OSError):
                    break
                if kind == "ready":
                    node.gauges.update(rest[0])
                    node.last_seen = time.monotonic()
                    return rest[0]
                if kind == "error":
                    node.error = rest[0]
                    return rest[0]
            elif not node.proc.is_alive():
                break
        else:
            return f"no answer within {READY_TIMEOUT_S:g} s"
        node.proc.join(KILL_WAIT_S)  # its pipe closed: it is exiting
        return f"it exited with status {node.proc.exitcode}"

    def _go(self, node: LabHandle) -> None:
        node.send("go", self.t0, self.plan.duration_s, self.outage_on)
        if self.paused:
            node.send("pause")  # a lab that comes up while the run is paused waits with it
        node.state = "running"

    # -- the observer's round ------------------------------------------------------------

    def tick(self) -> None:
        """One round: faults due, messages, history, restarts. Returns quickly."""
        self.fire_due()
        for node in self.nodes:
            for msg in node.poll():
                self._handle(node, msg)
            if node.wants_standby and node.state == "running" and node.standby is None:
                node.prepare_standby()
            name = node.name
            if node.state in ("running", "starting") and node.proc is not None and not node.proc.is_alive():
                self._lost_node(
                    node, "lab-died", f"{name} lab exited unexpectedly (exit status {node.proc.exitcode}); restarting"
                )
            elif node.state == "running" and node.silent_for() > HUNG_S:
                since = self.now() - node.silent_for()
                self._lost_node(
                    node,
                    "lab-hung",
                    f"{name} lab not responding since {max(0.0, since):.1f} s "
                    f"(nothing for {HUNG_S:g} s); killed (SIGKILL) and restarted",
                )
            elif node.state == "starting" and node.silent_for() > READY_TIMEOUT_S:
                self._lost_node(
                    node,
                    "lab-hung",
                    f"{name} lab did not come up within {READY_TIMEOUT_S:g} s; killed (SIGKILL) and restarted",
                )
        self._consume(between=self.fire_due)  # a lane's history can take a while: faults fire between lanes
        self._watch_servers()
        # A burst ends when no lab has any of it left (after one gauge round at least).
        if (
            self._burst_since is not None
            and self.now() - self._burst_since > BURST_SETTLE_S
            and not any(lane.burst_active() for lane in self.lanes)
        ):
            self._burst_since = None
            self._event("burst-end", "burst done")
        if self._stepping and time.monotonic() > self._step_deadline:
            self._step_done(None)  # a lane that did not answer its step: the step ends anyway
        if self._restart_at is not None and self.now() >= self._restart_at:
            self._restart_at = None
            self.restart()
        if time.monotonic() >= self._next_confirm:
            self._next_confirm = time.monotonic() + CONFIRM_INTERVAL_S
            self._confirm()
        self.fire_due()
        if self.recorder is not None and self.recorder.due(self.now()):
            self.recorder.tick(self.now(), self.tick_state())

    def _lost_node(self, node: LabHandle, kind: str, reason: str) -> None:
        """A lab died or hung: a failure of its lane. Judge what died with it, restart."""
        node.kill()
        self._consume()
        self._judge_dead([node])
        self._fail(node, kind, reason)
        self._restart_at = self._restart_at or self.now() + self.plan.restart_delay_s

    def _fail(self, lane: LabHandle | Lane, kind: str, reason: str) -> None:
        """Record a failure of the lane (DESIGN.md §6: exit status 3) and say it."""
        lane.failure(self.now(), kind, reason)
        self._event(kind, reason, lane=lane.cfg.label)

    def _handle(self, node: LabHandle, msg: tuple) -> None:
        kind = msg[0]
        lane = node.lane
        if kind == "gauges":
            node.gauges = msg[1]
            lane.max_depth = max(lane.max_depth, lane.gauges.get("queue_depth", 0))
        elif kind == "ready":
            node.gauges.update(msg[1])
            lane.max_depth = max(lane.max_depth, lane.gauges.get("queue_depth", 0))
            if node.inc >= len(lane.nodes):
                self._event(
                    "restart",
                    f"{node.name} lab incarnation {node.inc} is up "
                    f"(pid {msg[1]['pid']}, {msg[1]['queue_depth']} queued writes to replay)",
                    lane=node.cfg.label,
                )
            self._go(node)
        elif kind == "stampede-done":
            info = msg[1]
            extra = ""
            if info.get("errors"):
                extra += f", {info['errors']} failed"
            if info.get("not_started"):
                extra += f", {info['not_started']} could not start (no more threads)"
            if info.get("expire_failed"):
                extra += f"; the key could not be expired ({info['expire_failed']})"
            self._event(
                "stampede-done",
                f"{node.cfg.label}: {info['readers']} readers of {info['key']} "
                f"caused {info['db_reads']} DB read{'s' if info['db_reads'] != 1 else ''}{extra} "
                f"(protection: {info['protection']}); slowest reader {info['max_ms']:.1f} ms",
                lane=node.cfg.label,
            )
        elif kind == "stepped":
            self._step_done(self.nodes.index(node))
        elif kind == "cold-failed":
            self._event(
                "cold-cache", f"{node.cfg.label}: the cache could not be flushed: {msg[1]}", lane=node.cfg.label
            )
        elif kind == "drained":
            node.final = msg[1]
            node.gauges = msg[1]
            node.state = "drained"
        elif kind == "failed":
            node.final = msg[2]
            node.gauges = msg[2]
            node.state = "failed"
            self._consume()
            self._fail(node, "lab-failed", f"{node.name} lab stopped its lane: {msg[1]}")
        elif kind == "error":
            node.error = msg[1]
            node.state = "failed"
            self._fail(node, "lab-refused", f"{node.name} lab incarnation {node.inc} refused to start: {msg[1]}")

    def _consume(self, between: Callable[[], None] | None = None) -> None:
        """Read every lane's new history records: statistics, the live audit, the recording.
        ``between``: called before each lane's, and the lanes are read a slice
        (``HISTORY_SLICE``) at a time, in turn, so that what it does (the round fires the
        faults due) never waits for more than a slice; a round reads at most
        ``HISTORY_SLICES`` slices of a lane (the next round reads on)."""
        rec = self.recorder
        raw: list | None = [] if rec is not None else None
        limit = None if between is None else HISTORY_SLICE
        pending = list(enumerate(self.lanes))
        for _ in range(HISTORY_SLICES if limit else 1):  # lane by lane, a slice each
            if not pending:
                break
            behind = []
            for i, lane in pending:
                if between is not None:
                    between()
                records = lane.read_history(raw, limit)
                if records:
                    lane.stats.add(records)
                    found = lane.auditor.observe(records)
                    if rec is not None:
                        rec.ops(b"".join(raw), len(records))
                        raw.clear()
                        rec.anomalies(i, self.now(), found)
                    if self.on_records is not None:
                        self.on_records(i, records, found)
                if lane.more:
                    behind.append((i, lane))
            pending = behind
        if between is not None:
            between()

    def _found(self, i: int, found: list) -> None:
        """Anomalies found outside the history's stream (at a kill, at the end)."""
        if found and self.recorder is not None:
            self.recorder.anomalies(i, self.now(), found)
        if found and self.on_records is not None:
            self.on_records(i, [], found)

    def tick_state(self) -> dict:
        """What the labs' gauges say now (a recording's tick line)."""
        return {
            "paused": self.paused,
            "outage_on": self.outage_on,
            "slow_db_ms": self.slow_db_ms,
            "slow_cache_ms": self.slow_cache_ms,
            "lanes": [
                {
                    "state": lane.state,
                    "health": lane.health(),
                    "inc": lane.inc,
                    "totals": lane.totals(),
                    "queue_depth": lane.gauges.get("queue_depth", 0),
                    "max_depth": lane.max_depth,
                    "burst": lane.burst_active(),
                    "at_risk": lane.auditor.at_risk(),
                    **({"nodes": nodes} if (nodes := lane.node_gauges()) else {}),
                }
                for lane in self.lanes
            ],
        }

    def _confirm(self) -> None:
        """Read the stores' versions: acknowledged writes already there are safe. The
        faults due fire between lanes (a store read is a few ms, tens on a loaded machine)."""
        for lane in self.lanes:
            self.fire_due()
            if self.outage_on:
                return
            at = self.now()  # every record observed so far ended before this read
            try:
                lane.auditor.confirm_store(lane.storage.versions(CONFIRM_WAIT_S), checked_at=at)
            except Exception:  # noqa: BLE001 - a busy store is simply read next time
                continue
            lane.auditor.prune()

    # -- controls --------------------------------------------------------------------------

    def set_knob(self, section: str, name: str, value, keep: tuple = ()) -> None:
        """Change a knob on every lane but those named in ``keep`` (they set it themselves);
        live knobs reach the running labs at once."""
        if (section, name) not in LIVE_KNOBS:
            raise ConfigError(f"{section}.{name} cannot change while the lab runs; it applies at the next reset")
        lanes = [lane for lane in self.lanes if lane.cfg.label not in keep]
        new = [validate(lane.cfg.with_knob(section, name, value)) for lane in lanes]
        for lane, cfg in zip(lanes, new):
            lane.cfg = cfg
            lane.send("set", section, name, value)
        injected = section == "latency"
        if (section, name) == ("workload", "rate"):  # the speed, as a presenter says it
            rate = float(value)
            detail = (
                "speed: full speed (flat out)"
                if not rate
                else f"speed: {rate:,g} operation{'' if rate == 1 else 's'}/s"
            )
        else:
            detail = f"{section}.{name} = {value}"
        self._event("knob", detail, injected=injected)

    def pause(self) -> None:
        """Freeze the run: the clients, the flushers, the fault timers, restart delays and
        the clock stop together (what is in flight completes). Lab time stands still until
        :meth:`resume`, however long the pause lasts."""
        if self.paused:
            return
        for lane in self.lanes:
            lane.send("pause")
        self._stepping.clear()
        self._frozen = self.now()
        self.paused = True
        self._event("pause", "clients, queues, fault timers and the clock stopped")

    def _thaw(self) -> None:
        """Let the clock run again from where it stood."""
        if self._frozen is not None:
            self.t0 = self._clock() - self._frozen
            self._frozen = None

    def resume(self) -> None:
        if not self.paused:
            return
        self._stepping.clear()
        self._thaw()
        for lane in self.lanes:
            lane.send("resume", self.t0)
        self.paused = False
        self._event("resume", "clients, queues, fault timers and the clock go on")

    def step(self) -> None:
        """While paused: release exactly one operation of each running lane. The clock
        runs while they are in flight and stops again when every one has ended."""
        if not self.paused:
            self.pause()
            return
        if self._stepping:
            return  # the last step is still in flight
        self._thaw()
        self._stepping = {i for i, node in enumerate(self.nodes) if node.state == "running"}
        self._step_deadline = time.monotonic() + STEP_WAIT_S
        for i in self._stepping:
            self.nodes[i].send("step", self.t0)
        if not self._stepping:
            self._frozen = self.now()

    def _step_done(self, i: int | None) -> None:
        if i is None:
            self._stepping.clear()
        else:
            self._stepping.discard(i)
        if not self._stepping and self.paused and self._frozen is None:
            self._frozen = self.now()


def want_standbys(plan: Plan, nodes: list[LabHandle], window: bool) -> None:
    """The nodes a fault may kill get a standby lab, started once they run (so that its
    start does not slow theirs): in the window every node (a presenter may crash any);
    headless, the nodes the plan's faults kill (declared by ``FaultKind.kills_nodes``)."""
    doomed: set[int | None] = set()
    for kind in FAULTS:
        if kind.kills_nodes:
            doomed.update(kind.values(entry)[1].get("node") for entry in getattr(plan, kind.field))
    for node in nodes:
        node.wants_standby = window or None in doomed or node.node in doomed


def _json_line(rec: dict) -> str:
    return json.dumps(rec, separators=(",", ":")) + "\n"


class StopRequest:
    """Set by a signal handler (the CLI's): the run stops at its next round, drains
    briefly, and writes its partial summary, marked as interrupted. While the run is
    still starting (labs spawned, not all ready, however many lanes) :meth:`Run.start`
    looks at it between labs and between polls, and raises :class:`Interrupted`: there
    is nothing to summarise yet. A second signal raises it at once."""

    def __init__(self) -> None:
        self.signal: str | None = None

    def set(self, name: str) -> None:
        self.signal = self.signal or name

    def signalled(self, name: str) -> None:
        """A signal arrived: stop at the next round (or now, the second time)."""
        if self.signal is not None:
            raise Interrupted(name)
        self.set(name)

    def check(self) -> None:
        """Raise :class:`Interrupted` if a signal asked to stop (a run still starting)."""
        if self.signal is not None:
            raise Interrupted(self.signal)


INTERRUPT_DRAIN_S = 3.0  # how long the labs may drain when the run is interrupted


def run(
    plan: Plan,
    on_event: Callable[[dict], None] | None = None,
    history=None,
    tick_s: float = 0.05,
    stop: StopRequest | None = None,
    recorder=None,
) -> dict:
    """Run a plan headless to the end (or until ``stop`` is set); return the summary
    (DESIGN.md §6). ``history``: a path or a writable text stream for the JSON Lines.
    ``recorder``: a :class:`~.recording.RecordingWriter` (closed at the end)."""
    r = Run(plan, on_event, recorder=recorder)
    stop = stop or StopRequest()
    try:
        r.start(stop=stop)
        while not r.due and stop.signal is None and not r.all_failed:
            r.tick()
            time.sleep(r.sleep_for(tick_s))
        r.interrupted = stop.signal
        summary = r.finish(INTERRUPT_DRAIN_S if stop.signal else DRAIN_LIMIT_S)
        if history is not None:
            summary["history_records"] = r.write_history(history)
        return summary
    except BaseException:
        r.abort()
        raise
    finally:
        r.cleanup()
