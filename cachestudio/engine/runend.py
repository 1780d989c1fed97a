"""The end of a run, as methods of :class:`runner.Run` (this class is one of its bases):
stop the clients, drain every queue, audit at rest against the real data, summarise
(DESIGN.md §6), and the run's merged history. Every wait is bounded: a lab that does not
come up, or goes silent while draining, is killed and named.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .auditor import ANOMALY_KINDS
from .faultkinds import BY_NAME
from .history import read_history, write_history
from .lab import CLIENT_JOIN_S, DRAIN_LIMIT_S
from .nodes import AUDIT_TIMEOUT_S, HUNG_S, KILL_WAIT_S, READY_TIMEOUT_S, LabHandle, Lane
from .plan import durability
from .report import fault_report
from .strategykinds import queues_writes
from .summary import SUMMARY_NAMES, lane_summary

if TYPE_CHECKING:
    from .history import HistoryWriter
    from .plan import Plan
    from .recording import RecordingWriter
    from .serverwatch import ServerWatcher
    from .storage import RunServers


def _drain_words(labs: list[dict], drain_limit_s: float) -> str:
    """The drain's detail from its ``labs`` entries: the labs that ended cleanly grouped,
    every other one by itself with what became of its queue."""
    stopped = [x["lab"] for x in labs if x["fate"] == "drained" and x["queue"] is None]
    drained = [x["lab"] for x in labs if x["fate"] == "drained" and x["queue"] is not None]
    parts = []
    if stopped:
        parts.append(f"{', '.join(stopped)} stopped")
    if drained:
        parts.append(f"{', '.join(drained)} drained {'its queue' if len(drained) == 1 else 'their queues'}")
    for x in labs:
        n = x.get("queued", 0)
        left = f"{n:,} write{'s' if n != 1 else ''}"
        if x["fate"] == "not-drained":
            where = "left in its durable queue" if x["queue"] == "durable" else "lost with its volatile queue"
            parts.append(f"{x['lab']} did not drain its queue within {drain_limit_s:g} s: {left} still queued, {where}")
        elif x["fate"] in ("killed", "died"):
            if x["queue"] == "volatile":
                lost = f"{x['lost']:,} acknowledged write{'s' if x['lost'] != 1 else ''} judged lost"
                what = f": its volatile queue lost ({left} queued at its last report; {lost})"
            elif x["queue"] == "durable":
                what = f": {left} left in its durable queue (at its last report), not in the store"
            else:
                what = ""
            parts.append(f"{x['lab']} {x['how']}{what}")
        elif x["fate"] == "failed":
            parts.append(f"{x['lab']} had failed before the end: nothing drained (see its lane's failures)")
    return "; ".join(parts)


class RunEnd:
    """The end-of-run methods of :class:`runner.Run` (see the module's docstring).

    The ``if TYPE_CHECKING:`` block below is this mixin's contract with its host
    (:class:`runner.Run`, and :class:`faultinjection.FaultInjection`, its other base):
    what it uses of the host's state and methods, declared for the type checker only.
    Nothing in it exists at run time: a stub method defined here would shadow the real
    one of a later base in the MRO."""

    if TYPE_CHECKING:
        # -- the host's state (runner.Run.__init__) --
        plan: Plan
        root: Path
        _tmp: str | None
        servers: RunServers
        server_watch: ServerWatcher
        lanes: list[Lane]
        nodes: list[LabHandle]
        recorder: RecordingWriter | None
        events: list[dict]
        _events_file: HistoryWriter
        t0: float
        outage_on: bool
        interrupted: str | None
        run_failures: list[dict]
        _schedule: list[tuple[float, str, tuple, dict]]
        _restart_at: float | None
        finished: bool

        # -- the host's methods (runner.Run) --
        def now(self) -> float: ...
        def _event(
            self,
            kind: str,
            detail: str,
            injected: bool = False,
            lane: str | None = None,
            at: float | None = None,
            extra: dict | None = None,
        ) -> None: ...
        def _wait_ready(self, node: LabHandle, deadline: float) -> dict | str: ...
        def _handle(self, node: LabHandle, msg: tuple) -> None: ...
        def _fail(self, lane: LabHandle | Lane, kind: str, reason: str) -> None: ...
        def _consume(self) -> None: ...
        def _found(self, i: int, found: list) -> None: ...
        def tick_state(self) -> dict: ...

        # -- the faults' methods (faultinjection.FaultInjection) --
        def outage_end(self) -> None: ...
        def slow_db_end(self) -> None: ...
        def slow_cache_end(self) -> None: ...
        def cache_server_back(self, aof: str) -> None: ...
        def _judge_dead(self, dead: list[LabHandle], killed_at: float | None = None) -> None: ...
        def _judge_server_deaths(self, lane: Lane) -> None: ...
        def _release_outage(self) -> None: ...

        # -- the server watch's (serverwatch.ServerWatching) --
        def _watch_servers(self) -> None: ...

    @property
    def due(self) -> bool:
        """The run's time is up and everything scheduled within it has fired: a fault due
        at 2.98 s of a 3 s run fires (and is judged) before the run ends, however late the
        round that fires it comes. Ends a fault scheduled past the run are :meth:`finish`'s."""
        return self.now() >= self.plan.duration_s and not (
            self._schedule and self._schedule[0][0] < self.plan.duration_s
        )

    @property
    def all_failed(self) -> bool:
        """Every lane stopped for good: nothing more to run (a headless run ends now)."""
        return all(lane.state == "failed" for lane in self.lanes)

    def finish(self, drain_limit_s: float = DRAIN_LIMIT_S) -> dict:
        """Stop the clients, drain every queue, audit at rest, and summarise. Every wait is
        bounded: a lab that does not come up, or goes silent while draining, is killed
        and named. ``drain_limit_s``: how long the labs may drain (short when interrupted)."""
        self._unfired()
        self._schedule.clear()  # nothing more fires after the run's end
        self.outage_end()
        self.slow_db_end()
        self.slow_cache_end()
        self._restart_at = None
        self._watch_servers()  # a server that died on its own is named, never brought back
        for aof in list(self.servers.redis):
            self.cache_server_back(aof)  # one the crash fault killed: the queues drain through it
        self._up_for_the_drain()
        fates = self._stop_and_drain(drain_limit_s)
        for node in self.nodes:
            self._reap(node)
        self._consume()
        self._said_drain(fates, drain_limit_s)
        self._events_file.close()
        for lane in self.lanes:
            self._audit(lane)
        self.finished = True
        self.ended_at = self.now()
        summary = self.summary()
        self._record_the_end(summary)
        return summary

    def _up_for_the_drain(self) -> None:
        """Every lab that is down or still starting comes up (a durable queue replays), or
        is named: refused or hung."""
        for node in self.nodes:
            if node.state == "down":
                node.spawn(self.t0)  # a lab that was down at the end must replay its durable queue
            if node.state == "starting":
                info = self._wait_ready(node, time.monotonic() + READY_TIMEOUT_S)
                if isinstance(info, dict):
                    self._handle(node, ("ready", info))
                else:  # it refused its files (node.error), or did not come up at all
                    node.state = "failed"
                    name, inc = node.name, node.inc
                    if node.error:
                        self._fail(node, "lab-refused", f"{name} lab incarnation {inc} refused to start: {node.error}")
                    else:
                        self._fail(
                            node, "lab-hung", f"{name} lab incarnation {inc} did not come up for the drain: {info}"
                        )

    def _stop_and_drain(self, drain_limit_s: float) -> dict[int, dict]:
        """Stop every running lab and wait, bounded, while each drains its queue; a lab that
        dies, goes silent or overstays is killed and named. Returns what happened to each
        lab lost while draining (by its index in ``nodes``): :meth:`_lost_at_end`'s."""
        fates: dict[int, dict] = {}
        for node in self.nodes:
            if node.state == "running":
                node.send("stop")
                node.state = "stopping"
                node.last_seen = time.monotonic()
        deadline = time.monotonic() + drain_limit_s + CLIENT_JOIN_S + HUNG_S
        while any(node.state == "stopping" for node in self.nodes):
            for node in self.nodes:
                if node.state != "stopping":
                    continue
                closed = False
                if node.conn.poll(0.02):
                    try:
                        self._handle(node, node.conn.recv())
                        node.last_seen = time.monotonic()
                        continue
                    except (EOFError, OSError):
                        closed = True  # its end of the pipe is gone: it is exiting
                        node.proc.join(KILL_WAIT_S)
                name = node.name
                i = self.nodes.index(node)
                if closed or not node.proc.is_alive():
                    status = node.proc.exitcode
                    fates[i] = self._lost_at_end(
                        node, "lab-died", f"{name} lab exited while draining (exit status {status})"
                    )
                    fates[i]["how"] = f"exited while draining (exit status {status})"
                elif node.silent_for() > HUNG_S:
                    since = self.now() - node.silent_for()
                    fates[i] = self._lost_at_end(
                        node,
                        "lab-hung",
                        f"{name} lab not responding since {max(0.0, since):.1f} s while draining; killed (SIGKILL)",
                    )
                    fates[i]["how"] = "killed as hung while draining (SIGKILL)"
                elif time.monotonic() > deadline:
                    fates[i] = self._lost_at_end(
                        node,
                        "lab-hung",
                        f"{name} lab did not stop within "
                        f"{drain_limit_s + CLIENT_JOIN_S:g} s of the end; killed (SIGKILL)",
                    )
                    fates[i]["how"] = f"did not stop within {drain_limit_s + CLIENT_JOIN_S:g} s; killed (SIGKILL)"
        return fates

    def _record_the_end(self, summary: dict) -> None:
        """The recording's last tick and its final record (each lane's totals and knobs)."""
        if self.recorder is None:
            return
        self.recorder.tick(self.ended_at, self.tick_state())
        self.recorder.final(
            {
                "status": summary["status"],
                "interrupted": self.interrupted,
                "ended_at": self.ended_at,
                "failures": list(self.run_failures),
                "run_dir": summary["run_dir"],
                "lanes": [
                    {
                        "totals": lane.totals(),
                        "gauges": {"queue_depth": (lane.final or lane.gauges).get("queue_depth", 0)},
                        "max_depth": lane.max_depth,
                        "incarnations": lane.inc + 1,
                        "failures": list(lane.failures),
                        "audited": lane.audited,
                        "drained": bool(lane.final and lane.final.get("drained")),
                        "backends": self.servers.describe(lane.cfg),
                        "cfg": dataclasses.asdict(lane.cfg),
                    }
                    for lane in self.lanes
                ],
            }
        )
        self.recorder.close()

    def _lost_at_end(self, node: LabHandle, kind: str, reason: str) -> dict:
        """A lab lost while draining: killed, judged as a dead node, its lane failed.
        Returns what it left: its queue's depth at its last report (``queued``) and the
        acknowledged writes the judgement found lost with it (``lost``)."""
        queued = node.gauges.get("queue_depth", 0)  # its last report (the kill clears its gauges)
        before = node.lane.auditor.counts["lost_write"]
        node.kill()
        self._consume()
        self._judge_dead([node])
        node.state = "failed"
        self._fail(node, kind, reason)
        return {
            "fate": "killed" if kind == "lab-hung" else "died",
            "queued": queued,
            "lost": node.lane.auditor.counts["lost_write"] - before,
        }

    def _unfired(self) -> None:
        """Faults of the run's timeline that did not fire because the run ended before
        their time (interrupted, or every lane had failed): said in one event, never dropped
        in silence. (A run that reaches its end fires every one first: :attr:`due`.)"""
        left = [(at, kind) for at, kind, _args, _kw in self._schedule if kind in BY_NAME]
        if not left:
            return
        why = f"interrupted ({self.interrupted})" if self.interrupted else "every lane had failed"
        if not self.interrupted and not self.all_failed:
            why = "the run ended first"
        listed = ", ".join(f"{BY_NAME[kind].noun} at {at:g} s" for at, kind in left[:10])
        more = f" and {len(left) - 10:,} more" if len(left) > 10 else ""
        self._event(
            "faults-not-fired",
            f"{len(left):,} scheduled fault{'s' if len(left) != 1 else ''} not fired: the run stopped at "
            f"{self.now():.2f} s, {why}: {listed}{more}",
        )

    def _said_drain(self, fates: dict[int, dict], drain_limit_s: float) -> None:
        """The drain's event: what happened to each lab's queue, from what happened (the
        lab's own report, or its kill and the judgement of what it took with it), in its
        detail and, one entry per lab, in its ``labs``."""
        labs = []
        for i, node in enumerate(self.nodes):
            queue = queues_writes(node.cfg.strategy)
            durable = queue and node.cfg.write_behind.durable
            entry: dict = {"lab": node.name, "lane": node.cfg.label, "node": node.node, "queue": None}
            if queue:
                entry["queue"] = "durable" if durable else "volatile"
            if i in fates:
                entry.update(fates[i])
            elif node.state == "drained":
                left = (node.final or {}).get("queue_depth", 0)
                entry.update(fate="drained" if node.final.get("drained") else "not-drained", queued=left)
            else:
                entry.update(fate="failed")
            labs.append(entry)
        self._event("drain", _drain_words(labs, drain_limit_s), extra={"labs": labs})

    def _reap(self, node: LabHandle) -> None:
        """Make sure the lab has exited (bounded), without touching its counters; its standby
        goes too."""
        node.wants_standby = False
        node.drop_standby()
        if node.proc is not None:
            node.proc.join(KILL_WAIT_S)
            if node.proc.is_alive():
                node.proc.kill()
                node.proc.join(KILL_WAIT_S)
            node.trim_history()
        if node.conn is not None:
            node.conn.close()

    def _audit(self, lane: Lane) -> None:
        """The end-of-run audit against the real data; one that cannot read it says so.
        A remote store's rows are kept as ``DIR/<lane>/store.sqlite`` first (what the
        audit reads is then what the run directory holds). A part whose server died during
        the run is not read (a replacement is not what the lane used): said, not judged."""
        dead = self.server_watch.unaudited(lane.cfg)
        if "store" in dead:
            lane.audited = False
            self._fail(lane, "audit", f"{lane.cfg.label}: not audited: {dead['store']}; no anomaly is judged at rest")
            return
        try:
            lane.storage.keep_store(AUDIT_TIMEOUT_S)
            store = lane.storage.versions(AUDIT_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - locked, corrupt or foreign: named
            lane.audited = False
            self._fail(
                lane,
                "audit",
                f"{lane.cfg.label}: the end-of-run audit could not read the store "
                f"{lane.paths.store} ({type(exc).__name__}: {exc}); lost writes and stale cache are not judged",
            )
            return
        self._judge_server_deaths(lane)  # writes queued on a cache server that died: at its death
        cache = None
        if "cache" in dead:
            lane.audited = False
            self._fail(
                lane,
                "audit",
                f"{lane.cfg.label}: the cache not audited: {dead['cache']} (a new server is not the one "
                "the lane used); dirty and stale cache are not judged",
            )
        else:
            cache = self._read_cache(lane)
        lane.auditor.confirm_store(store)
        self._found(self.lanes.index(lane), lane.auditor.finish(store, cache if cache is not None else {}))

    def _read_cache(self, lane: Lane) -> dict[str, int] | None:
        """The cache's versions at rest for the audit, or None (said) if it cannot be read."""
        try:
            return lane.storage.cache_versions()
        except Exception as exc:  # noqa: BLE001
            lane.audited = False
            self._fail(
                lane,
                "audit",
                f"{lane.cfg.label}: the end-of-run audit could not read the cache "
                f"{lane.paths.cache} ({type(exc).__name__}: {exc}); dirty and stale cache are not judged",
            )
            return None

    def summary(self) -> dict:
        lanes = []
        for lane in self.lanes:
            a = lane.auditor
            lanes.append(
                lane_summary(
                    lane.cfg,
                    lane.stats,
                    self.plan.duration_s,
                    totals=lane.totals(),
                    gauges=lane.final or lane.gauges,
                    max_depth=lane.max_depth,
                    anomalies={SUMMARY_NAMES[k]: a.counts[k] for k in ANOMALY_KINDS},
                    anomaly_list=[x.as_dict() for x in a.anomalies[:200]],
                    incarnations=lane.inc + 1,
                    failures=list(lane.failures),
                    audited=lane.audited,
                    drained=bool(lane.final and lane.final.get("drained")),
                    durability_info=durability(lane.cfg),
                    backends=self.servers.describe(lane.cfg),
                )
            )
        faults = fault_report(self.lanes, self.events, getattr(self, "ended_at", None) or self.now())
        failed = any(lane.failures for lane in self.lanes) or bool(self.run_failures)
        status = "interrupted" if self.interrupted else ("lab-failed" if failed else "ok")
        return {
            "seed": self.plan.seed,
            "duration_s": self.plan.duration_s,
            "status": status,
            "interrupted": self.interrupted,
            "ended_at_s": round(getattr(self, "ended_at", None) or self.now(), 3),
            "failures": list(self.run_failures),
            "lanes": lanes,
            "faults": faults,
            "events": self.events,
            "run_dir": None if self._tmp else str(self.root),
            # the records of the run's history (what --history writes): operations and events
            "history_records": sum(lane.stats.ops for lane in self.lanes) + len(self.events),
        }

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
        for node in self.nodes:  # every lab killed first, then each waited for (48 labs: no 48 waits in turn)
            if node.proc is not None and node.proc.is_alive():
                node.proc.kill()
        for node in self.nodes:
            node.wants_standby = False
            node.drop_standby()
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
        self.server_watch.stop()
        if self.plan.redis_url or self.plan.postgres_url:
            for lane in self.lanes:
                try:
                    lane.storage.forget(bool(self.plan.redis_url), bool(self.plan.postgres_url))
                except Exception:  # noqa: BLE001 - a server that went away keeps them; nothing to lose
                    pass
        self.servers.stop()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
