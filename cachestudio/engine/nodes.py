"""A run's lanes and their app nodes, as the observer sees them: one :class:`LabHandle`
per node (its lab process, current incarnation, pipe, history files and gauges) and one
:class:`Lane` per lane (its nodes, and what they share: knobs, run folder, statistics,
auditor, failures). Starting, killing and reading a node's lab is here; deciding when
(the run's round, its faults, its end) is :class:`runner.Run`'s.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from .auditor import LaneAuditor
from .config import LaneConfig
from .history import HistoryTail, trim_history
from .lab import LAB_SIGNALS, LanePaths, lab_process, standby_process
from .storage import Endpoints, LaneStorage, lab_imports
from .telemetry import LaneStats

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.context import SpawnProcess

READY_TIMEOUT_S = 20.0  # a lab that has not opened its files by then is reported
SILENT_S = 3.0  # a running lab that sent no gauges for this long is shown as not responding
HUNG_S = 10.0  # ... and one silent this long is killed as hung (gauges come every 0.1 s; a
#                loaded 2-core machine with 7,500 stampede threads was seen to delay them by seconds)
KILL_WAIT_S = 5.0  # the longest the observer waits for a killed lab's exit to be seen
AUDIT_TIMEOUT_S = 5.0  # the longest the audit (at a kill, at the end) waits for a store's lock
MP = mp.get_context("spawn")  # never fork: the window's process has Qt threads
#: Gauges that count events (summed over incarnations); the rest are levels.
COUNTERS = (
    "done",
    "db_reads",
    "db_writes",
    "db_transactions",
    "retries",
    "flush_failures",
    "batches",
    "dead_letters",
    "unexpected",
)


class LabFailed(RuntimeError):
    """A lab could not start or go on; the message is one line for the user (exit 3)."""


class LabHandle:
    """One app node of a lane: its lab process (current incarnation) and what it said.
    Its lane's history, stats, auditor and failures are the lane's (:class:`Lane`)."""

    def __init__(self, lane: Lane, node: int, ep: Endpoints):
        self.lane = lane
        self.node = node
        self.ep = ep
        self.inc = -1
        self.proc: SpawnProcess | None = None
        self.conn: Connection | None = None
        self.state = "down"  # down | starting | running | stopping | drained | failed
        self.tails: list[HistoryTail] = []
        self.gauges: dict = {}
        self.final: dict | None = None
        self.error = ""
        self.last_seen = 0.0
        self.max_seq = -1  # the node's last operation (where its next incarnation resumes)
        self._past: dict[str, int] = dict.fromkeys(COUNTERS, 0)  # of dead incarnations
        #: A lab process started ahead of need, which the next incarnation becomes
        #: (:meth:`prepare_standby`): (process, our end of its pipe).
        self.standby: tuple[SpawnProcess, Connection] | None = None
        self.more = False  # the last limited history read left records behind
        self.wants_standby = False  # set by the run: a fault may kill this node

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

    def _start(self, target, args: tuple, name: str) -> tuple[SpawnProcess, Connection]:
        parent, child = MP.Pipe()
        proc = MP.Process(target=target, args=(child, *args), name=name, daemon=True)
        # Started with SIGINT and SIGTERM blocked (the mask survives exec): a Ctrl-C while the
        # lab is still importing cannot print a traceback; the lab ignores both, then unblocks.
        old = signal.pthread_sigmask(signal.SIG_BLOCK, LAB_SIGNALS)
        try:
            proc.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
        child.close()
        return proc, parent

    def prepare_standby(self) -> None:
        """Start the process the next incarnation will be, now, while nothing waits for it
        (it imports, then waits): a restart then only opens the lab's files."""
        if self.standby is None or not self.standby[0].is_alive():
            self.drop_standby()
            self.standby = self._start(
                standby_process, (os.getpid(), lab_imports(self.cfg)), f"lab-{self.cfg.code}-standby"
            )

    def drop_standby(self) -> None:
        if self.standby is not None:
            proc, conn = self.standby
            self.standby = None
            conn.close()  # it was waiting on its pipe: it exits
            if proc.is_alive():
                proc.kill()
            proc.join(KILL_WAIT_S)

    def spawn(self, t0: float | None = None) -> None:
        """Start the next incarnation (numbered in the lane: unique over its nodes): the
        standby process if one is waiting, else a new process. ``t0``: the run's clock
        (monotonic), when it has started, so that a fault the lab takes before its "go" (a
        stampede while it comes up) is timed on the run's clock."""
        self.inc = self.lane.new_inc()
        start_seq = (self.lane.stats.max_seq if len(self.lane.nodes) == 1 else self.max_seq) + 1
        args = (self.cfg, str(self.paths.root), self.inc, start_seq, os.getpid(), t0, self.ep)
        standby, self.standby = self.standby, None
        if standby is not None and standby[0].is_alive():
            proc, parent = standby
            try:
                parent.send(("become", *args))
            except (BrokenPipeError, OSError):  # it died meanwhile: a new process instead
                parent.close()
                proc, parent = self._start(lab_process, args, f"lab-{self.cfg.code}-{self.inc}")
        else:
            if standby is not None:
                standby[1].close()
            proc, parent = self._start(lab_process, args, f"lab-{self.cfg.code}-{self.inc}")
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
        msgs: list[tuple] = []
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
            READY_TIMEOUT_S if self.state == "starting" else SILENT_S
        ):
            return "not responding"
        return self.state

    def read_history(self, raw: list | None = None, limit: int | None = None) -> list[dict]:
        """New records of every incarnation; ``raw`` gets their lines as written. ``limit``:
        about that many bytes of each incarnation's file at most (:attr:`more`: some left)."""
        new = []
        self.more = False
        for tail in self.tails:
            new.extend(tail.read_new(limit))
            self.more = self.more or tail.more
            if raw is not None and tail.raw:
                raw.append(tail.raw)
        if new:
            self.last_seen = time.monotonic()  # its operations are its heartbeat too (a loaded
            #                                    lab's gauges can lag while its clients work)
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
    def proc(self) -> SpawnProcess | None:
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
            out.append(
                {"db_reads": t["db_reads"], "db_writes": t["db_writes"], "queue_depth": n.gauges.get("queue_depth", 0)}
            )
        return out

    def send(self, *msg) -> None:
        for n in self.nodes:
            n.send(*msg)

    def failure(self, at: float, kind: str, reason: str) -> dict:
        item = {"at": round(at, 3), "kind": kind, "reason": reason}
        self.failures.append(item)
        return item

    def read_history(self, raw: list | None = None, limit: int | None = None) -> list[dict]:
        out: list[dict] = []
        for n in self.nodes:
            out.extend(n.read_history(raw, limit))
        return out

    @property
    def more(self) -> bool:
        """The last limited read left records behind (:meth:`read_history`)."""
        return any(n.more for n in self.nodes)
