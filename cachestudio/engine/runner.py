"""The observer side of a run: starts the labs, commands them, injects faults, audits.

A :class:`Run` owns one lab process per lane (all lanes run the same seeded operation
stream). Its :meth:`Run.tick` does one round of observer work (read gauges, tail the
history, fire due faults, notice dead labs) and returns quickly, so that a CLI loop or a
window timer can drive it. :func:`run` is the blocking headless driver.

Faults: a crash SIGKILLs every lab process (the cache node holds the cache client and
the write-behind queue), wipes the cache directory if the cache is volatile, and starts
a new incarnation after ``restart_delay_s``, which resumes the operation stream where
the history left off. A DB outage is real: another connection (ours) holds the SQLite
lock for its duration; reads in WAL mode are failed by injection, labelled as such.

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

import dataclasses
import json
import multiprocessing as mp
import os
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from .auditor import ANOMALY_KINDS, LaneAuditor
from .config import LIVE_KNOBS, ConfigError, LaneConfig, lane_labels, validate
from .history import HistoryTail, HistoryWriter, read_history, trim_history, write_history
from .faultcheck import check_timeline
from .faultkinds import BY_NAME, FAULTS
from .strategykinds import queues_writes
from .timeline import FIELDS, check_count, normalize
from .lab import CLIENT_JOIN_S, DRAIN_LIMIT_S, LAB_SIGNALS, LanePaths, lab_process
from .storage import Endpoints, LaneStorage, RunServers, check_backends, traversable
from .telemetry import LaneStats
from .report import fault_report

READY_TIMEOUT_S = 20.0  # a lab that has not opened its files by then is reported
SILENT_S = 3.0  # a running lab that sent no gauges for this long is shown as not responding
HUNG_S = 10.0  # ... and one silent this long is killed as hung (gauges come every 0.1 s; a
#                loaded 2-core machine with 7,500 stampede threads was seen to delay them by seconds)
KILL_WAIT_S = 5.0  # the longest the observer waits for a killed lab's exit to be seen
AUDIT_TIMEOUT_S = 5.0  # the longest the end-of-run audit waits for a store's lock
#: The worst case beyond a run's duration: its start and a last restart (each up to the
#: ready timeout), the drain (DRAIN_LIMIT_S), a client stuck in a call, a silent lab's
#: grace, the audit. A run normally ends within a second of its duration.
END_BOUND_S = 2 * READY_TIMEOUT_S + DRAIN_LIMIT_S + CLIENT_JOIN_S + HUNG_S + AUDIT_TIMEOUT_S
CONFIRM_INTERVAL_S = 1.0  # how often the observer reads store versions (at-risk writes)
OUTAGE_LOCK_WAIT_S = 2.0  # the longest an outage waits to take a DB's lock from the labs
CONFIRM_WAIT_S = 0.05  # the live store check never holds up the observer: a busy store is read next time
MP = mp.get_context("spawn")
STEP_WAIT_S = 15.0  # the longest a step waits for its operations (injected latency is at most 10 s)
#: Auditor kinds as the summary names them (DESIGN.md §6).
#: Gauges that count events (summed over incarnations); the rest are levels.
BURST_SETTLE_S = 0.3  # a burst is not over before the labs' gauges could show it
#: Scheduled items that end a fault (due before a start at the same instant).
ENDS = frozenset({"outage-due", "slow-db-end", "slow-cache-end"})
COUNTERS = ("done", "db_reads", "db_writes", "db_transactions", "retries", "flush_failures",
            "batches", "dead_letters", "unexpected")
SUMMARY_NAMES = {"stale_read": "stale_reads", "lost_write": "lost_writes",
                 "dirty_cache": "dirty_cache", "stale_cache": "stale_cache"}  # never fork: the window's process has Qt threads


class LabFailed(RuntimeError):
    """A lab could not start or go on; the message is one line for the user (exit 3)."""


@dataclass
class Plan:
    """What a run does: its lanes, its length and its fault timeline.

    The timeline stays one field per fault kind (``crash_at``, ``outages``, …: each a
    :attr:`FaultKind.field <faultkinds.FaultKind.field>`, its entries as :mod:`faultkinds`
    says), not one list of faults: many callers build ``Plan(lanes, crash_at=[…])`` and a
    scenario's timeline is passed as ``**timeline``. Nothing goes over these fields by name:
    :func:`check_plan` and :meth:`Run.start`'s scheduling loop go over
    :data:`faultkinds.FAULTS`, and ``tests/test_declarations_faults.py`` fails for a kind
    without its field here."""

    lanes: list[LaneConfig]
    duration_s: float = 10.0
    crash_at: list[float] = field(default_factory=list)
    outages: list[tuple[float, float]] = field(default_factory=list)  # (start, duration)
    bursts: list[tuple[float, str, int]] = field(default_factory=list)  # (at, read|write, count)
    slow_db: list[tuple[float, float, float]] = field(default_factory=list)  # (start, duration, ms)
    slow_cache: list[tuple[float, float, float]] = field(default_factory=list)  # (start, duration, ms)
    cold_at: list[float] = field(default_factory=list)
    stampedes: list[tuple[float, int]] = field(default_factory=list)  # (at, concurrent readers)
    node_crashes: list[tuple[float, int]] = field(default_factory=list)  # (at, node): one node of each lane
    server_crashes: list[float] = field(default_factory=list)  # the run's own cache server (redis-server)
    restart_delay_s: float = 1.0
    run_dir: Path | None = None  # kept after the run; else a temporary directory
    #: Servers the run was given (used, never stopped); empty: the run starts its own.
    redis_url: str = ""
    postgres_url: str = ""
    notes: list[str] = field(default_factory=list)  # what check_plan merged (overlapping faults)

    @property
    def seed(self) -> int:
        return self.lanes[0].seed


def check_plan(plan: Plan) -> Plan:
    """Validate everything about a plan before any file is touched."""
    if not plan.lanes:
        raise ConfigError("no strategy to run")
    for cfg in plan.lanes:
        validate(cfg)
    lane_labels(plan.lanes)
    if not (0 < plan.duration_s <= 86_400):
        raise ConfigError(f"duration must be > 0 and <= 86400 seconds, got {plan.duration_s:g}")
    timeline = {f: getattr(plan, f) for f in FIELDS}
    check_count(timeline)  # at most MAX_FAULTS, scenario and options together
    check_timeline(timeline, plan.duration_s)  # each fault within the run, its parameters in range
    most = max(cfg.backends.nodes for cfg in plan.lanes)
    for at, node in plan.node_crashes:
        if node >= most:
            raise ConfigError(f"--crash-node: no node {node!r}: the lanes have nodes 0 to {most - 1} (--nodes)")
    for kind in FAULTS:
        if kind.needs == "redis" and getattr(plan, kind.field):
            if not any(cfg.backends.cache == "redis" for cfg in plan.lanes):
                raise ConfigError(f"{kind.flag} crashes the run's own redis-server: no lane has its cache on "
                                  "Redis (--cache-backend redis)")
            if plan.redis_url:
                raise ConfigError(f"{kind.flag} kills the run's own redis-server; a server given by --redis-url "
                                  "is never crashed")
    check_backends(plan.lanes, plan.redis_url, plan.postgres_url)
    # Overlapping faults of one kind are merged (or refused), never dropped: timeline.py.
    timeline, notes = normalize({f: getattr(plan, f) for f in FIELDS})
    for name, value in timeline.items():
        setattr(plan, name, value)
    plan.notes.extend(n for n in notes if n not in plan.notes)  # check_plan runs twice on one plan
    if not (0 <= plan.restart_delay_s <= 600):
        raise ConfigError(f"restart delay must be between 0 and 600 seconds, got {plan.restart_delay_s:g}")
    if plan.run_dir is not None:
        check_run_dir(Path(plan.run_dir), plan.lanes)
    return plan


def durability(cfg: LaneConfig) -> dict:
    """What the lane's figures can and cannot say about durability (DESIGN.md §6).

    The lab kills processes; it never crashes the OS or cuts the power. Where a setting
    means that an OS crash or a power loss could lose (or corrupt) more than a process
    kill does, the note says so: "0 lost" is then a statement about process kills only.
    Facts from SQLite's documentation (pragma synchronous, journal_mode, WAL)."""
    s = cfg.store
    notes = []
    if cfg.backends.store == "postgresql":
        notes.append("PostgreSQL (fsync on, synchronous_commit on): a committed DB write survives a process "
                     "kill and an OS crash")
    else:
        notes += _sqlite_notes(s)
    queue = None
    if queues_writes(cfg.strategy):
        queue = "durable" if cfg.write_behind.durable else "volatile"
        if cfg.write_behind.durable and cfg.backends.cache == "redis":
            notes.append("durable queue: a Redis stream: it survives a node's kill; a kill of the Redis server "
                         "loses it unless the server appends to its AOF (everysec: up to the last second)")
        elif cfg.write_behind.durable:
            notes.append("durable queue: diskcache (WAL + synchronous normal): an OS crash could lose "
                         "the last acknowledged writes still queued")
    redis = cfg.backends.cache == "redis"
    return {"store": cfg.backends.store, "journal_mode": s.journal_mode, "synchronous": s.synchronous, "queue": queue,
            "cache": ("redis" + (" aof" if cfg.backends.aof else "")) if redis
            else ("persistent" if cfg.cache.persistent else "volatile"),
            "tried": "process kills (SIGKILL) only", "notes": notes}


def _sqlite_notes(s) -> list[str]:
    """What an OS crash or a power loss could do to a SQLite store with these pragmas."""
    notes = []
    if s.synchronous == "off":
        notes.append("synchronous off: an OS crash or power loss could lose committed DB writes "
                     "or corrupt the database")
    elif s.journal_mode == "wal" and s.synchronous == "normal":
        notes.append("WAL + synchronous normal: an OS crash or power loss could roll back the last "
                     "committed DB writes (a process kill cannot)")
    if s.journal_mode == "memory":
        notes.append("journal in memory: a crash in the middle of a DB transaction can corrupt the database")
    elif s.journal_mode in ("delete", "truncate", "persist") and s.synchronous == "normal":
        notes.append(f"{s.journal_mode} journal + synchronous normal: a power loss could corrupt the "
                     "database (rare)")
    return notes


def check_run_dir(root: Path, lanes: list[LaneConfig]) -> None:
    """The run directory must be writable and hold no earlier run; nothing is changed."""
    if root.exists() and not root.is_dir():
        raise ConfigError(f"run directory {root} exists and is not a directory")
    probe = root if root.exists() else next((p for p in root.parents if p.exists()), None)
    if probe is None or not _writable(probe):
        raise ConfigError(f"run directory {root} cannot be written")
    for cfg in lanes:
        LaneStorage(cfg, LanePaths(root / cfg.slug), Endpoints()).check()
    if root.exists() and any(root.iterdir()):
        raise ConfigError(f"run directory {root} is not empty (it holds an earlier run?); give an empty or new directory")


def _writable(path: Path) -> bool:
    try:
        with tempfile.TemporaryFile(dir=path):
            return True
    except OSError:
        return False


class LabHandle:
    """One app node of a lane: its lab process (current incarnation) and what it said.
    Its lane's history, stats, auditor and failures are the lane's (:class:`Lane`)."""

    def __init__(self, lane: "Lane", node: int, ep: Endpoints):
        self.lane = lane
        self.node = node
        self.ep = ep
        self.inc = -1
        self.proc = None
        self.conn = None
        self.state = "down"  # down | starting | running | stopping | drained | failed
        self.tails: list[HistoryTail] = []
        self.gauges: dict = {}
        self.final: dict | None = None
        self.error = ""
        self.last_seen = 0.0
        self.max_seq = -1  # the node's last operation (where its next incarnation resumes)
        self._past: dict[str, int] = dict.fromkeys(COUNTERS, 0)  # of dead incarnations

    @property
    def cfg(self) -> LaneConfig:
        return self.lane.cfg

    @property
    def paths(self) -> LanePaths:
        return self.lane.paths

    @property
    def name(self) -> str:
        """The lane's name, and the node's when the lane has several."""
        return self.lane.cfg.label + (f" node {self.node}" if len(self.lane.nodes) > 1 else "")

    def failure(self, at: float, kind: str, reason: str) -> dict:
        return self.lane.failure(at, kind, reason)

    def totals(self) -> dict[str, int]:
        """Counters over every incarnation (a killed one counts up to its last gauges)."""
        g = self.final or self.gauges
        return {k: self._past[k] + g.get(k, 0) for k in COUNTERS}

    def spawn(self, t0: float | None = None) -> None:
        """Start the next incarnation (numbered in the lane: unique over its nodes). ``t0``:
        the run's clock (monotonic), when it has started, so that a fault the lab takes
        before its "go" (a stampede while it comes up) is timed on the run's clock."""
        self.inc = self.lane.new_inc()
        start_seq = (self.lane.stats.max_seq if len(self.lane.nodes) == 1 else self.max_seq) + 1
        parent, child = MP.Pipe()
        proc = MP.Process(
            target=lab_process,
            args=(child, self.cfg, str(self.paths.root), self.inc, start_seq, os.getpid(), t0, self.ep),
            name=f"lab-{self.cfg.code}-{self.inc}",
            daemon=True,
        )
        # Started with SIGINT and SIGTERM blocked (the mask survives exec): a Ctrl-C while the
        # lab is still importing cannot print a traceback; the lab ignores both, then unblocks.
        old = signal.pthread_sigmask(signal.SIG_BLOCK, LAB_SIGNALS)
        try:
            proc.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
        child.close()
        self.proc, self.conn, self.state = proc, parent, "starting"
        self.final = None
        self.error = ""
        self.last_seen = time.monotonic()
        self.tails.append(HistoryTail(self.paths.history_file(self.inc)))

    def burst_active(self) -> bool:
        return bool(self.gauges.get("burst_left"))

    def send(self, *msg) -> None:
        if self.conn is None:
            return  # not started yet: it takes the run's state when it comes up
        try:
            self.conn.send(msg)
        except (BrokenPipeError, OSError):
            pass  # a dead lab is noticed by its exit, not here

    def trim_history(self) -> None:
        """The dead incarnation's history file without the zeros its mapped writer left
        (a lab that closed its writer left none)."""
        if self.proc is not None and not self.proc.is_alive():
            trim_history(self.paths.history_file(self.inc))

    def kill(self) -> None:
        if self.proc is not None and self.proc.is_alive():
            self.proc.kill()  # SIGKILL: no cleanup, no flush, no goodbye
        if self.proc is not None:
            self.proc.join(KILL_WAIT_S)  # SIGKILL cannot be refused; this is a formality
        self.trim_history()
        if self.conn is not None:
            self.conn.close()
        for k in COUNTERS:
            self._past[k] += self.gauges.get(k, 0)
        self.gauges = {}
        self.state = "down"

    def poll(self) -> list[tuple]:
        """Messages from the lab since the last call."""
        msgs = []
        try:
            while self.conn is not None and not self.conn.closed and self.conn.poll():
                msgs.append(self.conn.recv())
        except (EOFError, OSError):
            pass
        if msgs:
            self.last_seen = time.monotonic()
        return msgs

    def silent_for(self) -> float:
        return time.monotonic() - self.last_seen

    def health(self) -> str:
        """running | starting | down | not responding | stopping | drained | failed"""
        if self.state in ("running", "starting", "stopping") and self.silent_for() > (
                READY_TIMEOUT_S if self.state == "starting" else SILENT_S):
            return "not responding"
        return self.state

    def read_history(self, raw: list | None = None) -> list[dict]:
        """New records of every incarnation; ``raw`` gets their lines as written."""
        new = []
        for tail in self.tails:
            new.extend(tail.read_new())
            if raw is not None and tail.raw:
                raw.append(tail.raw)
        if new and len(self.lane.nodes) > 1:
            top = max(int(r["id"].partition("#")[2]) for r in new)
            if top > self.max_seq:
                self.max_seq = top
        return new


#: A lane's state from its nodes': the first of these any node is in.
_STATE_ORDER = ("running", "starting", "stopping", "down", "drained", "failed")
_HEALTH_ORDER = ("not responding",) + _STATE_ORDER


class Lane:
    """One lane: its nodes (:class:`LabHandle`, one lab process each), and what they share:
    the knobs, the run folder, the history's stats, the auditor, the failures."""

    def __init__(self, cfg: LaneConfig, paths: LanePaths, storage: LaneStorage):
        self.cfg = cfg
        self.paths = paths
        self.storage = storage
        self.stats = LaneStats(cfg.label)
        self.auditor = LaneAuditor(cfg.label)
        self.max_depth = 0
        #: What went wrong with this lane's labs: [{"at", "kind", "reason"}] (DESIGN.md §6).
        self.failures: list[dict] = []
        self.audited = True  # False when the end-of-run audit could not read the files
        self.incarnations = 0
        self.outage = None  # the lock that holds this lane's DB down, during an outage
        self.nodes = [LabHandle(self, k, replace(storage.ep, node=k)) for k in range(cfg.backends.nodes)]

    def new_inc(self) -> int:
        self.incarnations += 1
        return self.incarnations - 1

    @property
    def inc(self) -> int:
        """The lane's latest incarnation number (incarnations - 1)."""
        return self.incarnations - 1

    @property
    def proc(self):
        return self.nodes[0].proc

    @property
    def error(self) -> str:
        return next((n.error for n in self.nodes if n.error), "")

    @property
    def state(self) -> str:
        states = {n.state for n in self.nodes}
        return next(s for s in _STATE_ORDER if s in states)

    def health(self) -> str:
        healths = {n.health() for n in self.nodes}
        return next(h for h in _HEALTH_ORDER if h in healths)

    def _merged(self, parts: list[dict]) -> dict:
        out = dict(parts[0]) if parts else {}
        for g in parts[1:]:
            for k, v in g.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("inc", "pid"):
                    out[k] = out.get(k, 0) + v
                elif k == "drained":
                    out[k] = bool(out.get(k)) and bool(v)
        return out

    @property
    def gauges(self) -> dict:
        return self._merged([n.gauges for n in self.nodes if n.gauges])

    @property
    def final(self) -> dict | None:
        """The nodes' last words at the end (None until every node has said them)."""
        if any(n.final is None for n in self.nodes):
            return None
        return self._merged([n.final for n in self.nodes])

    def totals(self) -> dict[str, int]:
        out = dict.fromkeys(COUNTERS, 0)
        for n in self.nodes:
            for k, v in n.totals().items():
                out[k] += v
        return out

    def burst_active(self) -> bool:
        return any(n.burst_active() for n in self.nodes)

    def node_gauges(self) -> list[dict]:
        """Each node's DB counters (over its incarnations) and queue depth; [] for a lane
        of one node (its lane's gauges say it all)."""
        if len(self.nodes) < 2:
            return []
        out = []
        for n in self.nodes:
            t = n.totals()
            out.append({"db_reads": t["db_reads"], "db_writes": t["db_writes"],
                        "queue_depth": n.gauges.get("queue_depth", 0)})
        return out

    def send(self, *msg) -> None:
        for n in self.nodes:
            n.send(*msg)

    def failure(self, at: float, kind: str, reason: str) -> dict:
        item = {"at": round(at, 3), "kind": kind, "reason": reason}
        self.failures.append(item)
        return item

    def read_history(self, raw: list | None = None) -> list[dict]:
        out: list[dict] = []
        for n in self.nodes:
            out.extend(n.read_history(raw))
        return out


class Run:
    def __init__(self, plan: Plan, on_event: Callable[[dict], None] | None = None,
                 on_records: Callable[[int, list, list], None] | None = None, recorder=None):
        self.plan = check_plan(plan)
        #: A :class:`~.recording.RecordingWriter`, fed as the run goes (or None).
        self.recorder = recorder
        self._tmp = None
        servers = RunServers(Path("."), plan.lanes, plan.redis_url, plan.postgres_url)
        servers.check()  # a missing program or an unreachable server: one line, before any file
        if plan.run_dir is None:
            self._tmp = tempfile.mkdtemp(prefix="cachestudio-run-")
            self.root = Path(self._tmp)
            if servers.need_pg and not plan.postgres_url:
                traversable(self.root)  # ours: PostgreSQL's own user must reach its socket here
        else:
            self.root = Path(plan.run_dir)
            self.root.mkdir(parents=True, exist_ok=True)
        servers.root = self.root.absolute()
        #: The run's servers (its own, started by :meth:`start`, or the given ones).
        self.servers = servers
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
        #: What a scheduled item calls: each fault kind's command, and the ends faults schedule.
        self._handlers: dict[str, Callable] = {kind.name: getattr(self, kind.command) for kind in FAULTS}
        self._handlers.update({"outage-due": self.outage_due, "slow-db-end": self.slow_db_end,
                               "slow-cache-end": self.slow_cache_end, "cache-server-back": self.cache_server_back})
        self._restart_at: float | None = None
        self._next_confirm = 0.0
        self.slow_db_ms = 0.0
        self.slow_cache_ms = 0.0
        self._burst_since: float | None = None
        self._db_base: dict = {}
        self._cache_base: dict = {}
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

    def _event(self, kind: str, detail: str, injected: bool = False, lane: str | None = None,
               at: float | None = None) -> None:
        t = round(self.now() if at is None else at, 6)
        ev = {"id": f"ev#{len(self.events)}", "lane": lane, "kind": kind, "key": None, "version": None,
              "start": t, "end": t, "outcome": None, "acked": None, "injected": injected, "detail": detail}
        self.events.append(ev)
        if not self.run_failures:
            try:
                self._events_file.write(_json_line(ev))
            except OSError as exc:  # the run directory's disk is full or gone: said once, not fatal
                self.run_failures.append({"at": t, "kind": "files", "reason": f"the run's events file "
                                          f"{self.root / 'events.jsonl'} cannot be written ({exc.strerror or exc}); "
                                          "the run directory is incomplete"})
        if self.recorder is not None:
            self.recorder.event(ev)
        self.on_event(ev)

    # -- start --------------------------------------------------------------------------

    def start(self, wait: bool = True) -> None:
        """Start the labs. ``wait``: the clock starts when all are ready (headless);
        otherwise it starts now and each lab joins as it comes up (the window)."""
        self._prepare_backends()
        if not wait:
            self.t0 = time.monotonic()  # the window's clock starts now; labs join as they come up
        for lane in self.lanes:
            lane.paths.make()
        for node in self.nodes:
            node.spawn(None if wait else self.t0)
        if wait:
            deadline = time.monotonic() + READY_TIMEOUT_S
            for node in self.nodes:
                self._await_ready(node, deadline)
            self.t0 = time.monotonic()
            for node in self.nodes:
                self._go(node)
        else:
            self._ready_deadline = self.t0 + READY_TIMEOUT_S
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

    def _await_ready(self, lane: LabHandle, deadline: float) -> dict:
        """Wait (bounded) for a starting lab's "ready"; at the run's start a lab that
        refuses its files is bad input (ConfigError), one that does not start a failure."""
        reason = self._wait_ready(lane, deadline)
        if isinstance(reason, dict):
            return reason
        self.abort()
        if lane.error:
            raise ConfigError(lane.error)
        raise LabFailed(f"the {lane.name} lab did not start: {reason}")

    def _wait_ready(self, lane: LabHandle, deadline: float) -> dict | str:
        """The lab's ready info, or why it is not coming (its refusal is in ``lane.error``)."""
        while time.monotonic() < deadline:
            if lane.conn.poll(0.05):
                try:
                    kind, *rest = lane.conn.recv()
                except (EOFError, OSError):
                    break
                if kind == "ready":
                    lane.gauges.update(rest[0])
                    lane.last_seen = time.monotonic()
                    return rest[0]
                if kind == "error":
                    lane.error = rest[0]
                    return rest[0]
            elif not lane.proc.is_alive():
                break
        else:
            return f"no answer within {READY_TIMEOUT_S:g} s"
        lane.proc.join(KILL_WAIT_S)  # its pipe closed: it is exiting
        return f"it exited with status {lane.proc.exitcode}"

    def schedule(self, at: float, kind: str, *args, **kwargs) -> None:
        """Run a fault at run time ``at``: a fault kind's name (its command is called with
        ``args``/``kwargs``: its parameters by name) or an end a fault scheduled. At one
        instant, what ends goes before what starts (a window touching the next one ends first)."""
        if kind not in self._handlers:
            raise ConfigError(f"nothing to schedule called {kind!r} (the fault kinds: {', '.join(BY_NAME)})")
        self._schedule.append((at, kind, args, kwargs))
        self._schedule.sort(key=lambda item: (item[0], item[1] not in ENDS))

    def _fire_time(self) -> float:
        """When the fault firing now was due (its end is counted from there), or now."""
        return self.now() if self._due is None else self._due

    def _go(self, lane: LabHandle) -> None:
        lane.send("go", self.t0, self.plan.duration_s, self.outage_on)
        if self.paused:
            lane.send("pause")  # a lab that comes up while the run is paused waits with it
        lane.state = "running"

    # -- the observer's round ------------------------------------------------------------

    def tick(self) -> None:
        """One round: faults due, messages, history, restarts. Returns quickly."""
        now = self.now()
        while self._schedule and self._schedule[0][0] <= now:
            self._due, kind, args, kwargs = self._schedule.pop(0)
            try:
                self._handlers[kind](*args, **kwargs)
            finally:
                self._due = None
        for lane in self.nodes:
            for msg in lane.poll():
                self._handle(lane, msg)
            name = lane.name
            if lane.state in ("running", "starting") and lane.proc is not None and not lane.proc.is_alive():
                self._lost_node(lane, "lab-died", f"{name} lab exited unexpectedly (exit status "
                                f"{lane.proc.exitcode}); restarting")
            elif lane.state == "running" and lane.silent_for() > HUNG_S:
                since = self.now() - lane.silent_for()
                self._lost_node(lane, "lab-hung", f"{name} lab not responding since {max(0.0, since):.1f} s "
                                f"(nothing for {HUNG_S:g} s); killed (SIGKILL) and restarted")
            elif lane.state == "starting" and lane.silent_for() > READY_TIMEOUT_S:
                self._lost_node(lane, "lab-hung", f"{name} lab did not come up within {READY_TIMEOUT_S:g} s; "
                                "killed (SIGKILL) and restarted")
        self._consume()
        # A burst ends when no lab has any of it left (after one gauge round at least).
        if (self._burst_since is not None and self.now() - self._burst_since > BURST_SETTLE_S
                and not any(lane.burst_active() for lane in self.lanes)):
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
        if self.recorder is not None and self.recorder.due(self.now()):
            self.recorder.tick(self.now(), self.tick_state())

    def _lost_node(self, lane: LabHandle, kind: str, reason: str) -> None:
        """A lab died or hung: a failure of the lane. Judge what died with it, restart."""
        lane.kill()
        self._consume()
        self._judge_dead([lane])
        self._fail(lane, kind, reason)
        self._restart_at = self._restart_at or self.now() + self.plan.restart_delay_s

    def _fail(self, lane: LabHandle | Lane, kind: str, reason: str) -> None:
        """Record a failure of the lane (DESIGN.md §6: exit status 3) and say it."""
        lane.failure(self.now(), kind, reason)
        self._event(kind, reason, lane=lane.cfg.label)

    def _handle(self, lane: LabHandle, msg: tuple) -> None:
        kind = msg[0]
        group = lane.lane
        if kind == "gauges":
            lane.gauges = msg[1]
            group.max_depth = max(group.max_depth, group.gauges.get("queue_depth", 0))
        elif kind == "ready":
            lane.gauges.update(msg[1])
            group.max_depth = max(group.max_depth, group.gauges.get("queue_depth", 0))
            if lane.inc >= len(group.nodes):
                self._event("restart", f"{lane.name} lab incarnation {lane.inc} is up "
                            f"(pid {msg[1]['pid']}, {msg[1]['queue_depth']} queued writes to replay)",
                            lane=lane.cfg.label)
            self._go(lane)
        elif kind == "stampede-done":
            info = msg[1]
            extra = ""
            if info.get("errors"):
                extra += f", {info['errors']} failed"
            if info.get("not_started"):
                extra += f", {info['not_started']} could not start (no more threads)"
            if info.get("expire_failed"):
                extra += f"; the key could not be expired ({info['expire_failed']})"
            self._event("stampede-done", f"{lane.cfg.label}: {info['readers']} readers of {info['key']} "
                        f"caused {info['db_reads']} DB read{'s' if info['db_reads'] != 1 else ''}{extra} "
                        f"(protection: {info['protection']}); slowest reader {info['max_ms']:.1f} ms",
                        lane=lane.cfg.label)
        elif kind == "stepped":
            self._step_done(self.nodes.index(lane))
        elif kind == "cold-failed":
            self._event("cold-cache", f"{lane.cfg.label}: the cache could not be flushed: {msg[1]}",
                        lane=lane.cfg.label)
        elif kind == "drained":
            lane.final = msg[1]
            lane.gauges = msg[1]
            lane.state = "drained"
        elif kind == "failed":
            lane.final = msg[2]
            lane.gauges = msg[2]
            lane.state = "failed"
            self._consume()
            self._fail(lane, "lab-failed", f"{lane.name} lab stopped its lane: {msg[1]}")
        elif kind == "error":
            lane.error = msg[1]
            lane.state = "failed"
            self._fail(lane, "lab-refused", f"{lane.name} lab incarnation {lane.inc} refused to start: "
                       f"{msg[1]}")

    def _consume(self) -> None:
        rec = self.recorder
        raw: list | None = [] if rec is not None else None
        for i, lane in enumerate(self.lanes):
            records = lane.read_history(raw)
            if records:
                lane.stats.add(records)
                found = lane.auditor.observe(records)
                if rec is not None:
                    rec.ops(b"".join(raw), len(records))
                    raw.clear()
                    rec.anomalies(i, self.now(), found)
                if self.on_records is not None:
                    self.on_records(i, records, found)

    def _found(self, i: int, found: list) -> None:
        """Anomalies found outside the history's stream (at a kill, at the end)."""
        if found and self.recorder is not None:
            self.recorder.anomalies(i, self.now(), found)
        if found and self.on_records is not None:
            self.on_records(i, [], found)

    def tick_state(self) -> dict:
        """What the labs' gauges say now (a recording's tick line)."""
        return {"paused": self.paused, "outage_on": self.outage_on, "slow_db_ms": self.slow_db_ms,
                "slow_cache_ms": self.slow_cache_ms,
                "lanes": [{"state": lane.state, "health": lane.health(), "inc": lane.inc, "totals": lane.totals(),
                           "queue_depth": lane.gauges.get("queue_depth", 0), "max_depth": lane.max_depth,
                           "burst": lane.burst_active(), "at_risk": lane.auditor.at_risk(),
                           **({"nodes": nodes} if (nodes := lane.node_gauges()) else {})} for lane in self.lanes]}

    def _confirm(self) -> None:
        """Read the stores' versions: acknowledged writes already there are safe."""
        if self.outage_on:
            return
        for lane in self.lanes:
            at = self.now()  # every record observed so far ended before this read
            try:
                lane.auditor.confirm_store(lane.storage.versions(CONFIRM_WAIT_S), checked_at=at)
            except Exception:  # noqa: BLE001 - a busy store is simply read next time
                continue
            lane.auditor.prune()

    # -- faults -----------------------------------------------------------------------------

    def crash(self, node: int | None = None) -> None:
        """SIGKILL every lab (the app nodes: each holds its cache client and write-behind
        queue), or only node ``node`` of each lane; restart them after the delay."""
        dead = [n for n in self.nodes if n.state in ("running", "starting") and (node is None or n.node == node)]
        for n in dead:
            n.kill()
        # the labs are dead now: nothing was acknowledged after this (rounded as the event is,
        # so that writes found lost at the kill fall inside the crash's window)
        killed_at = round(self.now(), 6)
        self._consume()  # everything the dead labs wrote is in their files
        self._judge_dead(dead, killed_at)
        wiped = [lane.cfg.label for lane in self.lanes
                 if all(n.state == "down" for n in lane.nodes) and lane.storage.wipe_volatile_cache()]
        several = any(len(lane.nodes) > 1 for lane in self.lanes)
        if node is None:
            detail = "every app node killed (SIGKILL)" if several else "cache node killed (SIGKILL)"
        else:
            detail = f"app node {node} of each lane killed (SIGKILL)" if several else "cache node killed (SIGKILL)"
        if wiped:
            detail += "; volatile cache wiped"
        if self.outage_on and any(not _keeps_queue(n.cfg) for n in dead):
            detail += "; the store was read for the audit through the outage's own connection"
        self._event("crash" if node is None else "crash-node", detail, at=killed_at)
        self._restart_at = self.now() + self.plan.restart_delay_s

    def crash_node(self, node: int) -> None:
        self.crash(node)

    def crash_cache_server(self) -> None:
        """SIGKILL the run's own redis-server(s); each comes back after the restart delay:
        empty without persistence, with what its append-only file had synced with AOF."""
        killed = []
        for aof, server in sorted(self.servers.redis.items()):
            if server.pid is None:
                continue
            pid = server.pid
            server.kill()
            killed.append(f"redis-server pid {pid} ({'AOF everysec' if aof else 'no persistence'})")
            self.schedule(self.now() + self.plan.restart_delay_s, "cache-server-back", aof)
        if killed:
            self._event("crash-cache-server", "cache server killed (SIGKILL): " + ", ".join(killed)
                        + "; every node's cache calls fail until it is back")
        else:
            self._event("crash-cache-server", "no cache server of this run's own to kill (diskcache lanes, or "
                        "--redis-url: a server the run was given is never crashed)")

    def cache_server_back(self, aof: bool) -> None:
        server = self.servers.redis.get(aof)
        if server is None or server.pid is not None:
            return
        try:
            server.start()
        except Exception as exc:  # noqa: BLE001 - every redis lane fails from here on: said
            for lane in self.lanes:
                if lane.cfg.backends.cache == "redis" and lane.cfg.backends.aof == aof:
                    self._fail(lane, "cache-server", f"{lane.cfg.label}: the cache server did not come back: {exc}")
            return
        from .redis_cache import redis_cache_versions

        what = "AOF everysec: what it had synced is back" if aof else "no persistence: it came back empty"
        for lane in self.lanes:
            if lane.cfg.backends.cache != "redis" or lane.cfg.backends.aof != aof:
                continue
            try:
                held = f"it holds {len(redis_cache_versions(server.url, lane.storage.ep.prefix)):,} cached entries"
            except Exception:  # noqa: BLE001 - only the event's detail
                held = "its entries could not be counted"
            self._event("cache-server-back", f"cache server back (pid {server.pid}, {what}); a moment later {held} of "
                        f"{lane.cfg.label}", lane=lane.cfg.label)

    def _store_at_kill(self, lane: LabHandle) -> dict[str, int]:
        """Copy the store as the dead node left it (kept in the run directory as evidence,
        ``<lane>/evidence/store-at-kill-inc-NNNN.sqlite``, whatever the store) and return
        its versions. During an outage, read through the outage's own connection."""
        return lane.lane.storage.snapshot(lane.paths.store_at_kill(lane.inc), lane.lane.outage,
                                          timeout_s=AUDIT_TIMEOUT_S)

    def _judge_dead(self, dead: list[LabHandle], killed_at: float | None = None) -> None:
        """Nodes that died without a durable queue: what they had not written is lost."""
        for lane in dead:
            if _keeps_queue(lane.cfg):
                continue  # the queue survives and is replayed: nothing is decided yet
            i = self.lanes.index(lane.lane)
            try:
                store = self._store_at_kill(lane)
            except Exception as exc:  # noqa: BLE001 - judged at the end instead, and said
                self._fail(lane, "audit", f"{lane.name}: the store could not be read right after the "
                           f"kill ({exc}); writes lost with the node are judged at the end instead, where a "
                           "later write can hide them")
                continue
            several = len(lane.lane.nodes) > 1
            found = lane.lane.auditor.node_gone(store, self.now() if killed_at is None else killed_at,
                                                node=lane.node if several else None)
            self._found(i, found)

    def restart(self) -> None:
        if self.now() >= self.plan.duration_s:
            return
        for node in self.nodes:
            if node.state == "down":
                node.spawn(self.t0)

    def burst(self, op: str, count: int) -> None:
        """Every lane issues ``count`` extra operations of ``op`` (read or write) as fast as
        it can (shared out among its nodes)."""
        for lane in self.lanes:
            for node, share in zip(lane.nodes, _shares(count, len(lane.nodes))):
                if share:  # (a burst of 0 would end the node's bursts)
                    node.send("burst", op, share)
        self._burst_since = self.now()
        self._event("burst", f"{op} burst of {count:,} operations per lane")

    def cold(self) -> None:
        """Flush every cache (a cold cache), as a restart of an in-memory cache would."""
        for lane in self.lanes:
            lane.send("cold")
        self._event("cold-cache", "every cache flushed")

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
            detail = ("speed: full speed (flat out)" if not rate
                      else f"speed: {rate:,g} operation{'' if rate == 1 else 's'}/s")
        else:
            detail = f"{section}.{name} = {value}"
        self._event("knob", detail, injected=injected)

    def _inject(self, names: tuple[str, ...], ms: float) -> None:
        """Set injected latency knobs on every lane (validated first: all or nothing)."""
        for name in names:
            new = [validate(lane.cfg.with_knob("latency", name, float(ms))) for lane in self.lanes]
            for lane, cfg in zip(self.lanes, new):
                lane.cfg = cfg
                lane.send("set", "latency", name, float(ms))

    def slow_db(self, ms: float, duration: float | None = None) -> None:
        """Inject ``ms`` of latency on every DB read and write (0 ends it) for ``duration``
        seconds (None: until ended). Labelled injected. When it ends, the latency configured
        before it comes back."""
        if ms and duration is not None:
            self.schedule(self._fire_time() + duration, "slow-db-end")
        if not ms and not self.slow_db_ms:
            return
        if ms and not self.slow_db_ms:
            self._db_base = {lane.cfg.label: (lane.cfg.latency.db_read_ms, lane.cfg.latency.db_write_ms)
                             for lane in self.lanes}
        if ms:
            self._inject(("db_read_ms", "db_write_ms"), ms)
            self._event("slow-db-start", f"slow DB: +{ms:g} ms on every DB read and write", injected=True)
        else:
            for lane in self.lanes:
                r, w = self._db_base.get(lane.cfg.label, (0.0, 0.0))
                lane.cfg = lane.cfg.with_knob("latency", "db_read_ms", r).with_knob("latency", "db_write_ms", w)
                lane.send("set", "latency", "db_read_ms", r)
                lane.send("set", "latency", "db_write_ms", w)
            self._event("slow-db-end", "slow DB ended", injected=True)
        self.slow_db_ms = float(ms)

    def slow_db_end(self) -> None:
        if self.slow_db_ms:
            self.slow_db(0)

    def slow_cache(self, ms: float, duration: float | None = None) -> None:
        """Inject ``ms`` of latency on every cache call (0 ends it) for ``duration`` seconds
        (None: until ended). Labelled injected."""
        if ms and duration is not None:
            self.schedule(self._fire_time() + duration, "slow-cache-end")
        if not ms and not self.slow_cache_ms:
            return
        if ms and not self.slow_cache_ms:
            self._cache_base = {lane.cfg.label: lane.cfg.latency.cache_ms for lane in self.lanes}
        if ms:
            self._inject(("cache_ms",), ms)
            self._event("slow-cache-start", f"slow cache: +{ms:g} ms on every cache call", injected=True)
        else:
            for lane in self.lanes:
                base = self._cache_base.get(lane.cfg.label, 0.0)
                lane.cfg = lane.cfg.with_knob("latency", "cache_ms", base)
                lane.send("set", "latency", "cache_ms", base)
            self._event("slow-cache-end", "slow cache ended", injected=True)
        self.slow_cache_ms = float(ms)

    def slow_cache_end(self) -> None:
        if self.slow_cache_ms:
            self.slow_cache(0)

    def stampede(self, readers: int) -> None:
        """Hot-key stampede: the hottest key expires and ``readers`` clients read it at once
        (shared out among a lane's nodes, each behind its own barrier)."""
        for lane in self.lanes:
            for node, share in zip(lane.nodes, _shares(int(readers), len(lane.nodes))):
                if share:
                    node.send("stampede", share)
        modes = sorted({lane.cfg.cache.stampede for lane in self.lanes})
        self._event("stampede", f"hot key k0 expired; {readers} concurrent readers "
                    f"(protection: {', '.join(modes)})")

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

    def heal(self) -> None:
        """The kill switch: end every fault now (outage, slow DB, pending faults, downtime)."""
        self._schedule = [item for item in self._schedule if item[1] not in BY_NAME]  # faults not fired yet
        for aof in list(self.servers.redis):
            self.cache_server_back(aof)  # a killed cache server comes back now
        self.outage_end()
        self.slow_db_end()
        self.slow_cache_end()
        for lane in self.lanes:
            if lane.burst_active():
                lane.send("burst", "read", 0)
        if self._restart_at is not None:
            self._restart_at = self.now()  # restart the node now
        self._event("heal", "every fault healed")

    def outage_start(self, length: float) -> None:
        """Take every lane's DB down for ``length`` seconds (it schedules its own end). An
        outage that starts while one is on extends it: one outage, never a dropped one.

        The locks are taken in parallel (each waits at most ``OUTAGE_LOCK_WAIT_S`` for the
        labs' own transactions to let go), and the outage lasts ``length`` from the moment
        they are held: a busy database delays the outage; it does not shorten it."""
        if self.outage_on:
            until = self.now() + length
            if until > self._outage_until:
                self._outage_until = until
                self.schedule(until, "outage-due")
                self._event("outage-extended", f"DB outage extended to {until:.1f} s by an overlapping outage")
            return
        asked = self.now()
        locks = [lane.storage.outage_lock() for lane in self.lanes]
        failed: dict[int, Exception] = {}

        def take(i: int) -> None:
            try:
                locks[i].acquire(timeout_s=OUTAGE_LOCK_WAIT_S)
            except Exception as exc:  # noqa: BLE001 - the fault could not be injected: said below
                failed[i] = exc

        threads = [threading.Thread(target=take, args=(i,), daemon=True) for i in range(len(locks))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(OUTAGE_LOCK_WAIT_S + 1.0)  # bounded: the lock's own busy timeout ends it
        real_reads = True
        for i, (lane, lock) in enumerate(zip(self.lanes, locks)):
            if i in failed or lock.conn is None:
                lock.release()
                self._event("outage-start", f"could not take the lock of {lane.cfg.label}'s DB "
                            f"({failed.get(i, 'no answer')}): no outage on that lane's DB", lane=lane.cfg.label)
            else:
                lane.outage = lock
            real_reads = real_reads and (lane.storage.pg or lane.cfg.store.journal_mode != "wal")
            lane.send("outage", True)
        self.outage_on = True
        held = self.now()
        self._outage_until = held + length
        self.schedule(self._outage_until, "outage-due")
        detail = f"DB outage for {length:g} s: another connection holds the database lock (real)"
        if any(lane.storage.pg for lane in self.lanes):
            detail = (f"DB outage for {length:g} s: another connection holds the lock (real; on PostgreSQL: "
                      "LOCK TABLE items IN ACCESS EXCLUSIVE MODE)")
        if held - asked > 0.05:
            detail += f"; the lock took {held - asked:.2f} s to take from the labs' own transactions"
        if not real_reads:
            detail += "; reads fail by injection (WAL readers ignore the lock)"
        self._event("outage-start", detail, injected=not real_reads)

    def outage(self, duration: float) -> None:
        """The outage fault's command (:attr:`FaultKind.command`): :meth:`outage_start`."""
        self.outage_start(duration)

    def outage_due(self) -> None:
        """A scheduled end: the outage ends unless an overlapping one extended it."""
        if self.outage_on and self.now() >= self._outage_until - 1e-6:
            self.outage_end()

    def outage_end(self) -> None:
        """End the outage now (heal, or the run's end)."""
        if not self.outage_on:
            return
        self._release_outage()
        self.outage_on = False
        for lane in self.lanes:
            lane.send("outage", False)
        self._event("outage-end", "DB lock released")

    def _release_outage(self) -> None:
        for lane in self.lanes:
            if lane.outage is not None:
                try:
                    lane.outage.release()
                except Exception:  # noqa: BLE001 - closing our own connection; it is gone either way
                    pass
                lane.outage = None

    # -- end ---------------------------------------------------------------------------

    @property
    def due(self) -> bool:
        return self.now() >= self.plan.duration_s

    @property
    def all_failed(self) -> bool:
        """Every lane stopped for good: nothing more to run (a headless run ends now)."""
        return all(lane.state == "failed" for lane in self.lanes)

    def finish(self, drain_limit_s: float = DRAIN_LIMIT_S) -> dict:
        """Stop the clients, drain every queue, audit at rest, and summarise. Every wait is
        bounded: a lab that does not come up, or goes silent while draining, is killed
        and named. ``drain_limit_s``: how long the labs may drain (short when interrupted)."""
        self._schedule.clear()  # nothing more fires after the run's end
        self.outage_end()
        self.slow_db_end()
        self.slow_cache_end()
        self._restart_at = None
        for aof in list(self.servers.redis):
            self.cache_server_back(aof)  # the queues drain through it
        for lane in self.nodes:
            if lane.state == "down":
                lane.spawn(self.t0)  # a lab that was down at the end must replay its durable queue
            if lane.state == "starting":
                info = self._wait_ready(lane, time.monotonic() + READY_TIMEOUT_S)
                if isinstance(info, dict):
                    self._handle(lane, ("ready", info))
                else:  # it refused its files (lane.error), or did not come up at all
                    lane.state = "failed"
                    name, inc = lane.name, lane.inc
                    if lane.error:
                        self._fail(lane, "lab-refused", f"{name} lab incarnation {inc} refused to start: {lane.error}")
                    else:
                        self._fail(lane, "lab-hung", f"{name} lab incarnation {inc} did not come up for the drain: {info}")
        for lane in self.nodes:
            if lane.state == "running":
                lane.send("stop")
                lane.state = "stopping"
                lane.last_seen = time.monotonic()
        deadline = time.monotonic() + drain_limit_s + CLIENT_JOIN_S + HUNG_S
        while any(lane.state == "stopping" for lane in self.nodes):
            for lane in self.nodes:
                if lane.state != "stopping":
                    continue
                closed = False
                if lane.conn.poll(0.02):
                    try:
                        self._handle(lane, lane.conn.recv())
                        lane.last_seen = time.monotonic()
                        continue
                    except (EOFError, OSError):
                        closed = True  # its end of the pipe is gone: it is exiting
                        lane.proc.join(KILL_WAIT_S)
                name = lane.name
                if closed or not lane.proc.is_alive():
                    self._lost_at_end(lane, "lab-died", f"{name} lab exited while draining (exit status "
                                      f"{lane.proc.exitcode})")
                elif lane.silent_for() > HUNG_S:
                    since = self.now() - lane.silent_for()
                    self._lost_at_end(lane, "lab-hung", f"{name} lab not responding since {max(0.0, since):.1f} s "
                                      f"while draining; killed (SIGKILL)")
                elif time.monotonic() > deadline:
                    self._lost_at_end(lane, "lab-hung", f"{name} lab did not stop within "
                                      f"{drain_limit_s + CLIENT_JOIN_S:g} s of the end; killed (SIGKILL)")
        for lane in self.nodes:
            self._reap(lane)
        self._consume()
        undrained = [f"{lane.name} ({(lane.final or {}).get('queue_depth', '?')} writes still queued)"
                     for lane in self.nodes if lane.state == "drained" and not lane.final.get("drained")]
        stopped = [lane.name for lane in self.nodes if lane.state != "drained"]
        detail = "labs stopped; " + ("queues drained" if not undrained else
                                     f"queue not drained within {drain_limit_s:g} s: " + ", ".join(undrained))
        if stopped:
            detail += "; not stopped cleanly: " + ", ".join(stopped)
        self._event("drain", detail)
        self._events_file.close()
        for lane in self.lanes:
            self._audit(lane)
        self.finished = True
        self.ended_at = self.now()
        summary = self.summary()
        if self.recorder is not None:
            self.recorder.tick(self.ended_at, self.tick_state())
            self.recorder.final({
                "status": summary["status"], "interrupted": self.interrupted, "ended_at": self.ended_at,
                "failures": list(self.run_failures), "run_dir": summary["run_dir"],
                "lanes": [{"totals": lane.totals(), "gauges": {"queue_depth": (lane.final or lane.gauges).get("queue_depth", 0)},
                           "max_depth": lane.max_depth, "incarnations": lane.inc + 1, "failures": list(lane.failures),
                           "audited": lane.audited, "drained": bool(lane.final and lane.final.get("drained")),
                           "backends": self.servers.describe(lane.cfg),
                           "cfg": dataclasses.asdict(lane.cfg)} for lane in self.lanes]})
            self.recorder.close()
        return summary

    def _lost_at_end(self, lane: LabHandle, kind: str, reason: str) -> None:
        """A lab lost while draining: killed, judged as a dead node, its lane failed."""
        lane.kill()
        self._consume()
        self._judge_dead([lane])
        lane.state = "failed"
        self._fail(lane, kind, reason)

    def _reap(self, lane: LabHandle) -> None:
        """Make sure the lab has exited (bounded), without touching its counters."""
        if lane.proc is not None:
            lane.proc.join(KILL_WAIT_S)
            if lane.proc.is_alive():
                lane.proc.kill()
                lane.proc.join(KILL_WAIT_S)
            lane.trim_history()
        if lane.conn is not None:
            lane.conn.close()

    def _audit(self, lane: Lane) -> None:
        """The end-of-run audit against the real data; one that cannot read it says so.
        A remote store's rows are kept as ``DIR/<lane>/store.sqlite`` first (what the
        audit reads is then what the run directory holds)."""
        try:
            lane.storage.keep_store(AUDIT_TIMEOUT_S)
            store = lane.storage.versions(AUDIT_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - locked, corrupt or foreign: named
            lane.audited = False
            self._fail(lane, "audit", f"{lane.cfg.label}: the end-of-run audit could not read the store "
                       f"{lane.paths.store} ({type(exc).__name__}: {exc}); lost writes and stale cache are not judged")
            return
        try:
            cache = lane.storage.cache_versions()
        except Exception as exc:  # noqa: BLE001
            lane.audited = False
            self._fail(lane, "audit", f"{lane.cfg.label}: the end-of-run audit could not read the cache "
                       f"{lane.paths.cache} ({type(exc).__name__}: {exc}); dirty and stale cache are not judged")
            cache = None
        lane.auditor.confirm_store(store)
        self._found(self.lanes.index(lane), lane.auditor.finish(store, cache if cache is not None else {}))

    def summary(self) -> dict:
        lanes = []
        for lane in self.lanes:
            a = lane.auditor
            lanes.append(lane_summary(
                lane.cfg, lane.stats, self.plan.duration_s, totals=lane.totals(), gauges=lane.final or lane.gauges,
                max_depth=lane.max_depth, anomalies={SUMMARY_NAMES[k]: a.counts[k] for k in ANOMALY_KINDS},
                anomaly_list=[x.as_dict() for x in a.anomalies[:200]], incarnations=lane.inc + 1,
                failures=list(lane.failures), audited=lane.audited,
                drained=bool(lane.final and lane.final.get("drained")), durability_info=durability(lane.cfg),
                backends=self.servers.describe(lane.cfg)))
        faults = fault_report(self.lanes, self.events, getattr(self, "ended_at", None) or self.now())
        failed = any(lane.failures for lane in self.lanes) or bool(self.run_failures)
        status = "interrupted" if self.interrupted else ("lab-failed" if failed else "ok")
        return {"seed": self.plan.seed, "duration_s": self.plan.duration_s, "status": status,
                "interrupted": self.interrupted, "ended_at_s": round(getattr(self, "ended_at", None) or self.now(), 3),
                "failures": list(self.run_failures), "lanes": lanes, "faults": faults, "events": self.events,
                "run_dir": None if self._tmp else str(self.root),
                # the records of the run's history (what --history writes): operations and events
                "history_records": sum(lane.stats.ops for lane in self.lanes) + len(self.events)}

    def write_history(self, out) -> int:
        """Merge every lane's history and the fault events into one JSON Lines file
        (``out``: a path, or a text stream with ``write``)."""
        records = list(self.events)
        for lane in self.lanes:
            for inc in range(lane.inc + 1):
                f = lane.paths.history_file(inc)
                if f.exists():
                    records.extend(read_history(f))
        records.sort(key=lambda r: (r["start"], r["end"]))
        write_history(out, records)
        return len(records)

    def abort(self) -> None:
        for node in self.nodes:
            if node.proc is not None:
                node.kill()
        self._release_outage()
        self.outage_on = False
        self.servers.stop()
        if self.recorder is not None and not self.recorder.closed:
            self.recorder.flush()  # what was recorded stays readable

    def cleanup(self) -> None:
        """After the run: the run's own servers stop; on a server it was given, its keys
        and schemas go (their rows are in the run directory)."""
        self._events_file.close()
        self._release_outage()
        if self.plan.redis_url or self.plan.postgres_url:
            for lane in self.lanes:
                try:
                    lane.storage.forget(bool(self.plan.redis_url), bool(self.plan.postgres_url))
                except Exception:  # noqa: BLE001 - a server that went away keeps them; nothing to lose
                    pass
        self.servers.stop()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)


def lane_summary(cfg: LaneConfig, stats: LaneStats, duration_s: float, *, totals: dict, gauges: dict,
                 max_depth: int, anomalies: dict, anomaly_list: list, incarnations: int, failures: list,
                 audited: bool, drained: bool, durability_info: dict, backends: str = "") -> dict:
    """One lane of the summary (DESIGN.md §6), from a live run or a recording."""
    t = {k: totals.get(k, 0) for k in COUNTERS}
    return {
        "name": cfg.label,
        "strategy": cfg.strategy,
        "ops": stats.ops,
        "ops_per_s": round(stats.ops / duration_s, 1),
        "reads": stats.reads,
        "writes": stats.writes,
        "hit_ratio": stats.hit_ratio(),
        "latency_ms": {k: h.summary() for k, h in stats.latency.items()},
        "db": {"reads": t["db_reads"], "writes": t["db_writes"], "transactions": t["db_transactions"]},
        "queue": {"max_depth": max_depth, "pending_at_end": gauges.get("queue_depth", 0),
                  "dead_letters": t["dead_letters"], "retries": t["retries"],
                  "durable": cfg.write_behind.durable if queues_writes(cfg.strategy) else None},
        "errors": stats.errors,
        "rejected": stats.rejected,
        "anomalies": anomalies,
        "anomaly_list": anomaly_list,
        "incarnations": incarnations,
        "injected": cfg.latency.label() or None,
        "drained": drained,
        "durability": durability_info,
        "backends": backends or cfg.backends.label(),  # what the lane ran on
        "nodes": cfg.backends.nodes,
        "failures": failures,
        "audited": audited,
        "unexpected_errors": t["unexpected"],
    }


def _keeps_queue(cfg: LaneConfig) -> bool:
    """A node of this lane leaves its queued writes behind when killed (a durable queue):
    nothing is lost at the kill; the next incarnation replays them."""
    return queues_writes(cfg.strategy) and cfg.write_behind.durable


def _shares(count: int, parts: int) -> list[int]:
    """``count`` shared out among ``parts`` as evenly as can be (the first get the rest)."""
    return [count // parts + (1 if k < count % parts else 0) for k in range(parts)]


def _json_line(rec: dict) -> str:
    return json.dumps(rec, separators=(",", ":")) + "\n"


class StopRequest:
    """Set by a signal handler (the CLI's): the run stops at its next round, drains
    briefly, and writes its partial summary, marked as interrupted."""

    def __init__(self) -> None:
        self.signal: str | None = None

    def set(self, name: str) -> None:
        self.signal = self.signal or name


INTERRUPT_DRAIN_S = 3.0  # how long the labs may drain when the run is interrupted


def run(plan: Plan, on_event: Callable[[dict], None] | None = None, history=None,
        tick_s: float = 0.05, stop: StopRequest | None = None, recorder=None) -> dict:
    """Run a plan headless to the end (or until ``stop`` is set); return the summary
    (DESIGN.md §6). ``history``: a path or a writable text stream for the JSON Lines.
    ``recorder``: a :class:`~.recording.RecordingWriter` (closed at the end)."""
    r = Run(plan, on_event, recorder=recorder)
    stop = stop or StopRequest()
    try:
        r.start()
        while not r.due and stop.signal is None and not r.all_failed:
            r.tick()
            time.sleep(tick_s)
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
