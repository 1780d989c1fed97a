"""The faults a run injects, as methods of :class:`runner.Run` (this class is one of its
bases): each fault kind's command (:attr:`faultkinds.FaultKind.command`: ``crash``,
``outage``, ``slow_db``, …, each taking its parameters by name), what the window calls
besides (``outage_start``, ``heal``), and what a kill leaves to judge.

A crash SIGKILLs every lab process (the cache node holds the cache client and the
write-behind queue), wipes the cache directory if the cache is volatile, and starts a new
incarnation after ``restart_delay_s``, which resumes the operation stream where the history
left off. A DB outage is real: another connection (ours) holds the store's lock for its
duration; reads in WAL mode are failed by injection, labelled as such. A fault that lasts
schedules its own end (:meth:`runner.Run.schedule`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .config import LaneConfig, validate
from .faultkinds import BY_NAME
from .nodes import AUDIT_TIMEOUT_S, KILL_WAIT_S, LabHandle
from .storage import durable_stream
from .strategykinds import queues_writes

if TYPE_CHECKING:
    from .nodes import Lane
    from .plan import Plan
    from .storage import RunServers

OUTAGE_LOCK_WAIT_S = 2.0  # the longest an outage waits to take a DB's lock from the labs
#: The longest a kill waits to stop a store's commits (:meth:`FaultInjection._fence`): the
#: other nodes' writes queue behind it, within their own lock timeout (250 ms by default).
FENCE_WAIT_S = 0.1
#: Scheduled items that end a fault (due before a start at the same instant).
ENDS = frozenset({"outage-due", "slow-db-end", "slow-cache-end"})


class FaultInjection:
    """The fault methods of :class:`runner.Run` (see the module's docstring).

    The ``if TYPE_CHECKING:`` block below is this mixin's contract with its host
    (:class:`runner.Run`): what it uses of the host's state and methods, declared for the
    type checker only. Nothing in it exists at run time: a stub method defined here would
    shadow the real one of a later base in the MRO."""

    if TYPE_CHECKING:
        # -- the host's state (runner.Run.__init__) --
        plan: Plan
        servers: RunServers
        lanes: list[Lane]
        nodes: list[LabHandle]
        t0: float
        outage_on: bool
        _outage_until: float
        _schedule: list[tuple[float, str, tuple, dict]]
        _restart_at: float | None
        slow_db_ms: float
        slow_cache_ms: float
        _burst_since: float | None
        _db_base: dict[str, tuple[float, float]]
        _cache_base: dict[str, float]
        _server_deaths: list[ServerDeath]

        # -- the host's methods (runner.Run) --
        def now(self) -> float: ...
        def _event(
            self, kind: str, detail: str, injected: bool = False, lane: str | None = None, at: float | None = None
        ) -> None: ...
        def schedule(self, at: float, kind: str, *args, **kwargs) -> None: ...
        def _fire_time(self) -> float: ...
        def _fail(self, lane: LabHandle | Lane, kind: str, reason: str) -> None: ...
        def _consume(self) -> None: ...
        def _found(self, i: int, found: list) -> None: ...

    def crash(self, node: int | None = None) -> None:
        """SIGKILL every lab (the app nodes: each holds its cache client and write-behind
        queue), or only node ``node`` of each lane; restart them after the delay.

        The store orders each death itself: its commits are stopped (a
        :class:`storage.CommitFence`) before the kill and let go once the dead nodes are
        reaped and their deaths marked, so no other node's commit falls between the kill and
        the mark (:func:`_fence`)."""
        dead = [n for n in self.nodes if n.state in ("running", "starting") and (node is None or n.node == node)]
        if not dead:  # fired while they are down (a crash during the restart delay): said, not faked
            self._event(
                "crash" if node is None else "crash-node",
                "nothing to kill: the nodes it kills are down (killed earlier, not back yet)",
            )
            return
        fences, unfenced = _fence([n.lane for n in dead if not _keeps_queue(n.cfg)])
        marks: dict = {}
        try:
            for n in dead:
                if n.proc is not None and n.proc.is_alive():
                    n.proc.kill()  # SIGKILL, all at once
            for n in dead:
                if n.proc is not None:
                    n.proc.join(KILL_WAIT_S)  # reaped: its sockets are closed
                marks[n] = self._mark_death(n, fences.get(n.lane))
        finally:
            held = _unfence(fences, dead, marks, unfenced)  # whatever happened: let go
        for n in dead:
            n.kill()  # tidied: history trimmed, pipe closed
        # the labs are dead now: nothing was acknowledged after this (rounded as the event is,
        # so that writes found lost at the kill fall inside the crash's window)
        killed_at = round(self.now(), 6)
        self._consume()  # everything the dead labs wrote is in their files
        self._judge_dead(dead, killed_at, marks)
        wiped = [
            lane.cfg.label
            for lane in self.lanes
            if all(n.state == "down" for n in lane.nodes) and lane.storage.wipe_volatile_cache()
        ]
        several = any(len(lane.nodes) > 1 for lane in self.lanes)
        if node is None:
            detail = "every app node killed (SIGKILL)" if several else "cache node killed (SIGKILL)"
        else:
            detail = f"app node {node} of each lane killed (SIGKILL)" if several else "cache node killed (SIGKILL)"
        if wiped:
            detail += "; volatile cache wiped"
        if self.outage_on and any(not _keeps_queue(n.cfg) for n in dead):
            detail += "; the store was read for the audit through the outage's own connection"
        if held is not None:
            detail += f"; the store's commits were held {held * 1000:.0f} ms around the kill"
        for label, why in unfenced:
            detail += (
                f"; {label}: the store's commits could not be held around the kill ({why}): a commit "
                "of another node in the moment between the kill and its mark counts as before it"
            )
        self._event("crash" if node is None else "crash-node", detail, at=killed_at)
        self._restart_at = self.now() + self.plan.restart_delay_s

    def crash_node(self, node: int) -> None:
        self.crash(node)

    def crash_cache_server(self) -> None:
        """SIGKILL the run's own redis-server(s); each comes back after the restart delay:
        empty without persistence, with what its append-only file had synced with AOF.

        A lane whose durable write-behind queues live on a killed server gets the server's
        death marked in its store's commit log at once (:meth:`_mark_server_death`): its
        acknowledged writes still queued are judged at the end against the store at that
        death (:meth:`_judge_server_deaths`), whatever the server kept, never against a
        store that later writes may have moved past them."""
        killed = []
        for aof, server in sorted(self.servers.redis.items()):
            if server.pid is None:
                continue
            pid = server.pid
            server.kill()  # reaped
            killed.append(f"redis-server pid {pid} ({server.persistence})")
            for lane in self.lanes:
                if durable_stream(lane.cfg) and self.servers.redis_persistence(lane.cfg) == aof:
                    self._mark_server_death(lane)
            self.schedule(self.now() + self.plan.restart_delay_s, "cache-server-back", aof)
        if killed:
            self._event(
                "crash-cache-server",
                "cache server killed (SIGKILL): "
                + ", ".join(killed)
                + "; every node's cache calls fail until it is back",
            )
        else:
            self._event(
                "crash-cache-server",
                "no cache server of this run's own to kill (diskcache lanes, or "
                "--redis-url: a server the run was given is never crashed)",
            )

    def _mark_server_death(self, lane: Lane) -> None:
        """The death of the cache server holding ``lane``'s durable queues, marked in its
        store's commit log right after the kill (through the outage's connection during one).
        From now on the lane's acknowledged writes are not confirmed by a later read of the
        store until the server is back (:meth:`cache_server_back` sets the cut): a write
        acknowledged before it is judged against the store at this death. A mark that fails
        is said; its writes are then judged against the drained store at the end."""
        deaths = [d for d in self._server_deaths if d.lane is lane]
        death = ServerDeath(lane, len(deaths) + 1)
        try:
            lane.storage.mark_server_death(death.number, lane.outage, timeout_s=AUDIT_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - said; judged against the drained store at the end
            self._fail(
                lane,
                "audit",
                f"{lane.cfg.label}: the cache server's death could not be marked in the store's commit log "
                f"({_one_line(exc)}); its queued writes are judged at the end against the drained store, "
                "where a later write can hide a loss",
            )
            return
        self._server_deaths.append(death)
        lane.auditor.hold_upto = float("inf")  # until the server is back

    def _judge_server_deaths(self, lane: Lane) -> None:
        """At the end, with the store's commit log complete in the run directory: the
        lane's acknowledged writes from each death of its cache server to the one before,
        judged against the store at that death (:meth:`LaneAuditor.server_gone`)."""
        after = float("-inf")
        for death in [d for d in self._server_deaths if d.lane is lane]:
            upto = float("inf") if death.cut is None else death.cut
            try:
                found = lane.auditor.server_gone(
                    after,
                    upto,
                    lambda delivered, d=death: _with(
                        lane.storage.store_at_server_death(d.number, delivered, AUDIT_TIMEOUT_S), d.kept
                    ),
                )
            except Exception as exc:  # noqa: BLE001 - said; judged against the drained store
                self._fail(
                    lane,
                    "audit",
                    f"{lane.cfg.label}: the store at the cache server's death could not be read from the "
                    f"commit log ({_one_line(exc)}); its queued writes are judged against the drained store",
                )
                found = []
            self._found(self.lanes.index(lane), found)
            after = upto
        lane.auditor.hold_upto = float("-inf")

    def cache_server_back(self, aof: str) -> None:
        """The run's own redis-server of that persistence, killed by the fault, back. One
        that died on its own (a watcher named it) is never started again."""
        server = self.servers.redis.get(aof)
        if server is None or server.pid is not None or server.death() is not None:
            return
        cut = self.now()  # every write acknowledged so far was acknowledged by the dead server
        open_deaths = [
            d for d in self._server_deaths if d.cut is None and self.servers.redis_persistence(d.lane.cfg) == aof
        ]
        for death in open_deaths:
            death.cut = cut
            death.lane.auditor.hold_upto = cut
        lanes = [
            lane
            for lane in self.lanes
            if lane.cfg.backends.cache == "redis" and self.servers.redis_persistence(lane.cfg) == aof
        ]
        held: dict[str, str] = {}
        try:
            kept = self._reopen(server, open_deaths, lambda url: held.update(_cached_at_restart(url, lanes)))
        except Exception as exc:  # noqa: BLE001 - every redis lane fails from here on: said
            for lane in lanes:
                self._fail(lane, "cache-server", f"{lane.cfg.label}: the cache server did not come back: {exc}")
            return
        what = f"{server.persistence}: " + ("what it had synced is back" if aof else "it came back empty")
        for lane in lanes:
            self._event(
                "cache-server-back",
                f"cache server back (pid {server.pid}, {what}); before any client could reach it, "
                f"{held.get(lane.cfg.label, 'its entries could not be counted')} of {lane.cfg.label}"
                + kept.get(lane, ""),
                lane=lane.cfg.label,
                at=cut,  # the cut: writes acknowledged up to it were the dead server's
            )

    def _reopen(self, server, deaths: list[ServerDeath], before_clients=None) -> dict:
        """Start the killed cache server again and read, from each lane's queue streams, the
        acknowledged writes it kept (``ServerDeath.kept``: still queued, so not lost; a
        flusher may coalesce them with newer ones). The lanes' stores are fenced meanwhile
        (:func:`_fence`): a flusher removes entries from a stream only after its store
        commit, so none the server kept is gone before it is read. Returns what each lane's
        event says of it."""
        fences, unfenced = _fence([d.lane for d in deaths])
        said: dict = {}
        try:
            before_ms = int(time.time() * 1000)  # stream ids are the server's clock (ms)
            server.start(before_clients=before_clients)
            for death in deaths:
                try:
                    death.kept = death.lane.storage.queued(before_ms)
                    said[death.lane] = f"; {len(death.kept):,} acknowledged writes still queued in its streams"
                except Exception as exc:  # noqa: BLE001 - said; judged as if it had kept none
                    self._fail(
                        death.lane,
                        "audit",
                        f"{death.lane.cfg.label}: the queue streams could not be read when the cache server "
                        f"came back ({_one_line(exc)}); its writes are judged as if it had kept none",
                    )
        finally:
            held = _unfence(fences, [], {}, unfenced)
        for death in deaths:
            if death.lane in said and held is not None:
                said[death.lane] += f" (the store's commits held {held * 1000:.0f} ms while they were read)"
        for label, why in unfenced:
            for death in deaths:
                if death.lane.cfg.label == label:
                    said[death.lane] = said.get(death.lane, "") + f" (the store's commits not held: {why})"
        return said

    def _mark_death(self, node: LabHandle, fence=None):
        """Mark the node's death in its store's commit log, right after the kill, through
        ``fence`` if one holds the store's commits, else the outage's connection, else the
        lane's own (None: a node whose queue survives it; an exception: a mark that failed,
        judged as said in :meth:`_judge_dead`)."""
        if _keeps_queue(node.cfg):
            return None
        try:
            lock = fence if fence is not None else node.lane.outage
            return node.lane.storage.mark_death(node.node, node.inc, lock, timeout_s=AUDIT_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - judged at the end instead, and said
            return exc

    def _judge_dead(self, dead: list[LabHandle], killed_at: float | None = None, marks: dict | None = None) -> None:
        """Nodes that died without a durable queue: what they had not written is lost. The
        store at a death comes from the store's own commit log (its death marked in it
        right after the kill, :meth:`_mark_death`): every commit of the dead incarnation plus
        the others' commits ordered before the mark (kept as evidence in
        ``<lane>/evidence/store-at-kill-inc-NNNN.sqlite``), never a copy taken afterwards."""
        for node in dead:
            if _keeps_queue(node.cfg):
                continue  # the queue survives and is replayed: nothing is decided yet
            i = self.lanes.index(node.lane)
            mark = marks.get(node) if marks is not None else self._mark_death(node)
            try:
                if isinstance(mark, Exception):
                    raise mark
                store = node.lane.storage.store_at_death(
                    node.node, node.inc, mark, node.paths.store_at_kill(node.inc), node.lane.outage, AUDIT_TIMEOUT_S
                )
            except Exception as exc:  # noqa: BLE001 - judged at the end instead, and said
                self._fail(
                    node,
                    "audit",
                    f"{node.name}: the store's commit log could not be read right after the "
                    f"kill ({exc}); writes lost with the node are judged at the end instead, where a "
                    "later write can hide them",
                )
                continue
            several = len(node.lane.nodes) > 1
            found = node.lane.auditor.node_gone(
                store, self.now() if killed_at is None else killed_at, node=node.node if several else None
            )
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
            self._db_base = {
                lane.cfg.label: (lane.cfg.latency.db_read_ms, lane.cfg.latency.db_write_ms) for lane in self.lanes
            }
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
        self._event("stampede", f"hot key k0 expired; {readers} concurrent readers (protection: {', '.join(modes)})")

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
                self._event(
                    "outage-start",
                    f"could not take the lock of {lane.cfg.label}'s DB "
                    f"({failed.get(i, 'no answer')}): no outage on that lane's DB",
                    lane=lane.cfg.label,
                )
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
            detail = (
                f"DB outage for {length:g} s: another connection holds the lock (real; on PostgreSQL: "
                "LOCK TABLE items IN ACCESS EXCLUSIVE MODE)"
            )
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


def _fence(lanes: list[Lane]) -> tuple[dict, list[tuple[str, str]]]:
    """Stop the commits of every store in which a death is to be marked, before the kill
    (:class:`storage.CommitFence`), each within ``FENCE_WAIT_S``. A lane in an outage
    needs none (the outage's connection holds a stronger lock, and marks through it).
    Returns the fences by lane, and the lanes whose fence could not be taken, with why
    (their deaths are marked right after the kill without one, as said in the event)."""
    fences: dict = {}
    unfenced: list[tuple[str, str]] = []
    for lane in lanes:
        if lane.outage is not None or lane in fences:
            continue
        fence = lane.storage.fence()
        try:
            fence.take(FENCE_WAIT_S)
        except Exception as exc:  # noqa: BLE001 - marked without it, and said
            unfenced.append((lane.cfg.label, _one_line(exc)))
            continue
        fences[lane] = fence
    return fences, unfenced


def _unfence(fences: dict, dead: list[LabHandle], marks: dict, unfenced: list) -> float | None:
    """Let every fence go (COMMIT: the death rows go in). A fence whose commit failed
    leaves no death row: its lane's marks become that failure (judged at the end, said).
    Returns the longest time a fence held its store's commits (None: none held)."""
    held = None
    for lane, fence in fences.items():
        try:
            fence.release()
        except Exception as exc:  # noqa: BLE001 - judged at the end instead, and said
            unfenced.append((lane.cfg.label, f"its commit failed: {_one_line(exc)}"))
            for n in dead:
                if n.lane is lane and n in marks:
                    marks[n] = exc
            continue
        held = max(held or 0.0, fence.held_s)
    return held


@dataclass
class ServerDeath:
    """A death of the cache server holding a lane's durable queues: its ``number`` in the
    lane (1, 2, …: its row in the commit log, ``backends.server_writer``) and its ``cut``,
    the time up to which every acknowledged write was the dead server's (when it came
    back; None: not back yet)."""

    lane: Lane
    number: int
    cut: float | None = None
    #: (key, version) of the acknowledged writes the server kept in the lane's queue streams
    kept: set[tuple[str, int]] = field(default_factory=set)


def _with(store: dict[str, int], kept: set[tuple[str, int]]) -> dict[str, int]:
    """``store`` with the writes still queued counted as in it (the queue delivers them)."""
    out = dict(store)
    for key, version in kept:
        out[key] = max(out.get(key, 0), version)
    return out


def _cached_at_restart(url: str, lanes: list) -> dict[str, str]:
    """What a restarted cache server holds of each lane, read on a socket no client knows yet
    (:meth:`servers.RedisServer.start`): ``it held N cached entries`` by lane label."""
    from .redis_cache import redis_cache_versions

    out = {}
    for lane in lanes:
        try:
            out[lane.cfg.label] = f"it held {len(redis_cache_versions(url, lane.storage.ep.prefix)):,} cached entries"
        except Exception:  # noqa: BLE001 - only the event's detail
            out[lane.cfg.label] = "its entries could not be counted"
    return out


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _keeps_queue(cfg: LaneConfig) -> bool:
    """A node of this lane leaves its queued writes behind when killed (a durable queue):
    nothing is lost at the kill; the next incarnation replays them."""
    return queues_writes(cfg.strategy) and cfg.write_behind.durable


def _shares(count: int, parts: int) -> list[int]:
    """``count`` shared out among ``parts`` as evenly as can be (the first get the rest)."""
    return [count // parts + (1 if k < count % parts else 0) for k in range(parts)]
