"""The lab: one lane's cache node, write queue and clients, in its own OS process.

:class:`Lab` is everything that runs in the process and can also be driven in-process
by tests (``start_clients``/``stop_clients``/``drain``). :func:`lab_process` is the
process entry point: it opens the lab, says ``ready``, then obeys the observer's
commands from its pipe and sends gauges back every ``GAUGE_INTERVAL_S``. Operations
themselves travel as history records (see :mod:`history`), which survive a SIGKILL.
The faults a lab takes (burst, stampede, cold cache, outage) are :mod:`labfaults`'; the
observer's commands reach them through one dispatch table (:func:`_commands`).

Commands (tuples): ``("go", t0, until, outage)``, ``("pause",)``, ``("resume", t0)``,
``("step", t0)``,
``("outage", on)``, ``("cold",)``, ``("set", section, name, value)`` (a live knob),
``("burst", kind, count)``, ``("stampede", readers)``, ``("stop",)``. Replies:
``("ready", info)``, ``("error", message)``, ``("gauges", dict)``, ``("stampede-done", dict)``,
``("drained", dict)``, ``("failed", reason, gauges)``, ``("stepped", {"end"})``.

Pause freezes the lab: the clients take no new operation and the write-behind flusher
takes no new batch (what is in flight completes). The observer's clock stops with it, so
``resume`` brings the run's clock base ``t0`` moved on by the pause; the lab takes it, moved
on a little more if an operation in flight at the pause ended later than the frozen time,
so that nothing that starts after the pause is timed before something that ended before
it. ``step`` releases exactly one operation (of one client) and replies ``stepped``.

Nothing here dies silently. A client thread never dies of a failed operation: whatever a
strategy raises is recorded as that operation's error. A lane that cannot go on (its
operations fail hard for ``HARD_FAIL_S`` with nothing succeeding, or its history cannot
be written) stops and says why (``failed``); the process then exits with status
``EXIT_FAILED``. Ctrl-C or SIGTERM to the process group is the observer's to handle (the lab
ignores SIGINT and SIGTERM), and a lab whose observer dies is killed with it (Linux's parent-death signal),
or notices its pipe close, and exits quietly.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import resource
import signal
import threading
import time
import traceback
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .config import ConfigError, LaneConfig
from .history import MappedHistoryWriter, op_line
from .labfaults import LabFaults
from .queue import Flusher
from .storage import Endpoints, open_cache, open_queue, open_store
from .strategies import Health, Result, WriteBehind, make_strategy
from .strategykinds import queues_writes
from .workload import READ, Op, OpStream

GAUGE_INTERVAL_S = 0.1  # how often a lab sends its gauges to the observer
DRAIN_LIMIT_S = 30.0  # the longest a lab spends writing its queue at the end (then: not drained)
CLIENT_JOIN_S = 5.0  # a client stuck in a call longer than this is left behind at the stop
EXIT_FAILED = 3  # the lab's exit status when its lane could not go on
PR_SET_PDEATHSIG = 1
OK_OUTCOMES = frozenset(("hit", "miss", "ok"))
LAB_SIGNALS = {signal.SIGINT, signal.SIGTERM}  # the observer's to handle, never a lab's


@dataclass(frozen=True)
class LanePaths:
    root: Path

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def store(self) -> Path:
        return self.root / "store.sqlite"

    @property
    def queue(self) -> Path:
        return self.root / "queue"

    @property
    def cache_at_end(self) -> Path:
        """A remote cache's entries at the end of the run, as {key: version} (JSON)."""
        return self.root / "cache-at-end.json"

    def queue_of(self, node: int) -> Path:
        """Node ``node``'s durable queue on disk (node 0's is ``queue``, as with one node)."""
        return self.queue if not node else self.root / f"queue-node{node}"

    @property
    def history(self) -> Path:
        return self.root / "history"

    def store_at_kill(self, inc: int) -> Path:
        """The store at incarnation ``inc``'s death, as computed from the commit log (evidence)."""
        return self.root / "evidence" / f"store-at-kill-inc-{inc:04d}.sqlite"

    def history_file(self, inc: int) -> Path:
        return self.history / f"inc-{inc:04d}.jsonl"

    @property
    def errors_log(self) -> Path:
        """Tracebacks of unexpected errors in this lane's labs (for whoever debugs them)."""
        return self.root / "lab-errors.log"

    def make(self) -> None:
        for d in (self.root, self.history):
            d.mkdir(parents=True, exist_ok=True)


class Lab(LabFaults):
    """One lane's app node: its cache, store, queue and clients (see the module's docstring).
    The faults it takes (burst, stampede, cold cache, outage) are :class:`LabFaults`'."""

    def __init__(
        self,
        cfg: LaneConfig,
        paths: LanePaths,
        inc: int = 0,
        start_seq: int = 0,
        t0: float | None = None,
        ep: Endpoints | None = None,
    ):
        self.cfg = cfg
        self.paths = paths
        self.inc = inc
        #: Where this node's backends are, and which node of the lane it is.
        self.ep = ep = ep or Endpoints()
        #: Written into each record when the lane has several nodes (else left out).
        self.node = ep.node if ep.nodes > 1 else None
        paths.make()
        self.store = open_store(cfg, paths, ep, inc)
        self.cache = open_cache(cfg, paths, ep)
        self.queue = None
        self.flusher = None
        self.health = Health()
        if queues_writes(cfg.strategy):
            wb = cfg.write_behind
            self.queue = open_queue(cfg, paths, ep)
            self.flusher = Flusher(self.queue, self.store, wb, self.health)
        self.strategy = make_strategy(cfg.strategy, self.cache, self.store, self.queue, cfg.write_behind, self.health)
        self.history = MappedHistoryWriter(paths.history_file(inc))
        #: Why this lane cannot go on (set once; the clients stop), or "".
        self.failure = ""
        self.unexpected = 0  # operations that raised something no backend classified
        self._ops = self._stream(start_seq)
        self._next_seq = start_seq
        #: Bursts under way, oldest first: [kind, operations left]. A burst that arrives while
        #: another runs queues behind it (never replaces what is left of it).
        self._bursts: deque[list] = deque()
        self._ops_lock = threading.Lock()
        self._stop = threading.Event()
        self._running = threading.Event()
        self._threads: list[threading.Thread] = []
        self._stampedes: list[threading.Thread] = []
        self._filler = "x" * cfg.workload.value_size
        self.t0 = time.monotonic() if t0 is None else t0  # the run's clock, once "go" (or t0) says it
        self.until = float("inf")
        self.done = 0  # operations completed by this incarnation
        self._pace_at = 0.0
        self._pace_count = 0
        self.last_end = 0.0  # run time of the latest end recorded (the clock never goes back past it)
        self._steps = 0  # operations released by "step" while paused
        self._step_reply = None
        self._poke = threading.Event()  # wakes paused clients for a step
        self._unpaused = threading.Event()  # cleared while paused (a stampede waits for it)
        self._unpaused.set()
        self.cache.start_culler()  # last: a constructor that failed leaves no thread

    def _stream(self, start: int) -> Iterator[Op]:
        """The lane's operations from ``start`` on; with several nodes, this node's share:
        the operations whose sequence number is the node's modulo the number of nodes (the
        same seeded stream, split; ids and versions stay unique in the lane)."""
        ops = OpStream(self.cfg.workload, self.cfg.seed).ops(start)
        n, k = self.ep.nodes, self.ep.node
        if n == 1:
            return ops
        return (op for op in ops if op[0] % n == k)

    # -- clients ---------------------------------------------------------------------

    def start_flusher(self) -> None:
        if self.flusher is not None:
            self.flusher.start()

    def start_clients(self, t0: float, until: float = float("inf")) -> None:
        self.t0, self.until = t0, until
        self._pace_at, self._pace_count = time.monotonic(), 0
        self._running.set()
        self._spawn_clients()

    def _spawn_clients(self) -> None:
        self._threads = [t for t in self._threads if t.is_alive()]
        for i in range(len(self._threads), self.cfg.workload.concurrency):
            t = threading.Thread(target=self._client, args=(i,), name=f"client-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def pause(self) -> None:
        self._running.clear()
        self._unpaused.clear()
        if self.flusher is not None:
            self.flusher.hold.clear()

    def _take_clock(self, t0: float | None) -> None:
        """The run's clock base after a pause; never earlier than the last end recorded."""
        if t0 is not None:
            self.t0 = min(t0, time.monotonic() - self.last_end)

    def resume(self, t0: float | None = None) -> None:
        self._take_clock(t0)
        self._pace_at, self._pace_count = time.monotonic(), 0
        if self.flusher is not None:
            self.flusher.hold.set()
        self._running.set()
        self._unpaused.set()
        self._poke.set()

    def step(self, t0: float | None = None, reply=None) -> None:
        """While paused: release exactly one operation; ``reply({"end": run time})`` when
        it is recorded."""
        self._take_clock(t0)
        with self._ops_lock:
            self._steps += 1
            self._step_reply = reply
        self._poke.set()

    def _take_step(self) -> bool:
        with self._ops_lock:
            if self._steps and not self._running.is_set():
                self._steps -= 1
                return True
        return False

    def _next(self):
        with self._ops_lock:
            op = next(self._ops)
            self._next_seq = op[0] + 1
            if self._bursts:  # a burst: only its kind, as fast as the clients go
                head = self._bursts[0]
                while op.kind != head[0]:
                    op = next(self._ops)
                    self._next_seq = op.seq + 1
                head[1] -= 1
                if not head[1]:
                    self._bursts.popleft()
                    if not self._bursts:
                        self._pace_at, self._pace_count = time.monotonic(), 0  # no catching up after
                return op, 0.0
            rate = self.cfg.workload.rate
            if not rate:
                return op, 0.0
            self._pace_count += 1  # the lane's rate, shared by its nodes
            return op, self._pace_at + self._pace_count * self.ep.nodes / rate

    def set_knob(self, section: str, name: str, value) -> None:
        """Apply a live knob (config.LIVE_KNOBS) to the running lab."""
        self.cfg = self.cfg.with_knob(section, name, value)
        if section == "workload":
            with self._ops_lock:  # a new stream from the next operation on
                self._ops = self._stream(self._next_seq)
                self._filler = "x" * self.cfg.workload.value_size
                self._pace_at, self._pace_count = time.monotonic(), 0
            if name == "concurrency" and self._running.is_set():
                self._spawn_clients()
        elif section == "latency":
            self.cache.set_latency(self.cfg.latency)
            self.store.set_latency(self.cfg.latency)
        elif section == "cache":
            self.cache.apply(self.cfg.cache)
        elif section == "write_behind" and self.flusher is not None:
            wb = self.cfg.write_behind
            self.flusher.knobs = wb
            self.queue.capacity = wb.capacity
            if isinstance(self.strategy, WriteBehind):  # always: only a queueing strategy has a flusher
                self.strategy.block = wb.backpressure == "block"
                self.strategy.block_timeout = wb.block_timeout_s

    def _value(self, key: str, version: int) -> str:
        head = f"{key}:v{version}:"
        return head + self._filler[: max(0, self.cfg.workload.value_size - len(head))]

    def _do(self, kind: str, key: str, version: int | None) -> Result:
        """One operation through the strategy. Whatever it raises is this operation's error
        (counted, and its traceback kept in the lane's ``lab-errors.log``): a client
        thread never dies of an operation."""
        try:
            if kind == READ:
                result = self.strategy.read(key)
            else:
                result = self.strategy.write(key, version, self._value(key, version))
        except Exception as exc:  # noqa: BLE001 - counted as the operation's error
            self._unexpected(exc, kind)
            return "error", version, False, f"unexpected {type(exc).__name__}: {exc}"
        if result[0] in OK_OUTCOMES:
            self.health.ok(kind)
        return result

    def _unexpected(self, exc: BaseException, kind: str = "read") -> None:
        self.unexpected += 1
        self.health.failed(exc, kind)
        if self.unexpected <= 20:  # enough to debug; a loop of the same error must not fill the disk
            try:
                with open(self.paths.errors_log, "a", encoding="utf-8") as fh:
                    fh.write(f"incarnation {self.inc}, pid {os.getpid()}:\n")
                    fh.write("".join(traceback.format_exception(exc)))
            except OSError:
                pass

    def _record(self, line: str) -> bool:
        """Append one history record; a history that cannot be written stops the lane."""
        try:
            self.history.write(line)
        except OSError as exc:
            self.fail(f"its history cannot be written ({exc.strerror or exc})")
            return False
        self.done += 1
        return True

    def fail(self, reason: str) -> None:
        """This lane cannot go on: stop the clients (the process reports it and exits)."""
        if not self.failure:
            self.failure = reason
        self._stop.set()
        self._running.set()

    def check_health(self) -> str:
        """The lane's failure, deciding it now if hard failures have lasted ``HARD_FAIL_S``."""
        if not self.failure and self._running.is_set() and not self._stop.is_set():
            reason = self.health.verdict()
            if reason:
                self.fail(reason)
        return self.failure

    def _client(self, index: int) -> None:
        """A client thread. Whatever escapes its loop (a bug, not an operation's failure:
        those are counted in ``_do``) stops the lane with its reason and a traceback in
        ``lab-errors.log``, rather than leaving a lane that silently does nothing."""
        try:
            self._client_loop(index)
        except Exception as exc:  # noqa: BLE001 - named as the lane's failure
            self._unexpected(exc)
            self.fail(f"a client thread failed: {type(exc).__name__}: {exc}")

    def _client_loop(self, index: int) -> None:
        # The hot loop (issue 15): names bound once, the operation unpacked, no call that
        # is not needed; what each step does is unchanged.
        mono = time.monotonic
        lane, code, inc = self.cfg.label, self.cfg.code, self.inc
        stop, running = self._stop, self._running
        next_op, do, record, line, node = self._next, self._do, self._record, op_line, self.node
        while not stop.is_set():
            if index >= self.cfg.workload.concurrency:
                return  # concurrency was lowered
            stepped = False
            if not running.is_set():
                if not self._take_step():
                    self._poke.wait(0.1)
                    self._poke.clear()
                    continue
                stepped = True
            op, due = next_op()
            if due and not stepped:
                wait = due - mono()
                if wait > 0 and stop.wait(wait):
                    return
            seq, kind, key, version = op
            t0 = self.t0  # moved on by each pause
            start = mono() - t0
            if start >= self.until:
                return
            outcome, version, acked, detail = do(kind, key, version)
            end = mono() - t0
            if end > self.last_end:
                self.last_end = end
            if not record(line(code, seq, lane, kind, key, version, start, end, outcome, acked, inc, detail, node)):
                return
            if stepped and self._step_reply is not None:
                self._step_reply({"end": end})

    def stop_clients(self) -> None:
        """Stop the clients; one stuck in a call longer than ``CLIENT_JOIN_S`` is left
        behind (a daemon thread: it cannot hold the process, and its operation, if it ever
        ends, is recorded as usual)."""
        self._stop.set()
        self._running.set()
        self._unpaused.set()
        deadline = time.monotonic() + CLIENT_JOIN_S
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self._threads.clear()

    # -- gauges --------------------------------------------------------------------------

    def gauges(self) -> dict:
        f = self.flusher
        return {
            "inc": self.inc,
            "pid": os.getpid(),
            "done": self.done,
            "burst_left": self.burst_left,
            "running": self._running.is_set(),
            "queue_depth": self.queue.depth() if self.queue is not None else 0,
            "dead_letters": len(f.dead_letters) if f else 0,
            "retries": f.retries if f else 0,
            "flush_failures": f.failures if f else 0,
            "batches": f.batches if f else 0,
            "db_reads": self.store.reads,
            "db_writes": self.store.rows_written,
            "db_transactions": self.store.transactions,
            "last_error": f.last_error if f else "",
            "unexpected": self.unexpected,
            "hard_failures": self.health.hard_failures,
            "failure": self.failure,
        }

    def drain(self, timeout: float = DRAIN_LIMIT_S) -> bool:
        """Stop the clients, let a stampede under way finish (it is reported), write the
        queue; all within ``timeout``. True if the queue emptied."""
        deadline = time.monotonic() + timeout
        if self.flusher is not None:
            self.flusher.hold.set()  # a paused run still drains at its end
        self.stop_clients()
        for t in self._stampedes:
            t.join(max(0.0, deadline - time.monotonic()))
        left = max(0.0, deadline - time.monotonic())
        return self.flusher.drain(left) if self.flusher is not None else True

    def close(self) -> None:
        """Close every file; a failing one cannot stop the others from closing."""
        if self.flusher is not None:
            self.flusher.stop.set()
        for close in (
            self.queue.close if self.queue is not None else None,
            self.history.close,
            self.cache.stop_culler,
            self.cache.close,
            getattr(self.cache, "shutdown", None),
            self.store.close,
        ):
            if close is None:
                continue
            try:
                close()
            except Exception:  # noqa: BLE001 - closing after a failure; nothing to report to
                pass


def die_with_parent(parent_pid: int) -> None:
    """Be killed when the observer dies (Linux), so no lab outlives its run; and exit now
    if it already has. Elsewhere the lab notices its pipe close."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    if parent_pid and os.getppid() != parent_pid:
        os._exit(0)


def _more_files() -> None:
    """500 stampede readers open connections of their own: raise the soft limit on open
    files to the hard one."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard))
    except (ValueError, OSError):
        pass


def lab_process(
    conn,
    cfg: LaneConfig,
    root: str,
    inc: int,
    start_seq: int,
    parent_pid: int = 0,
    t0: float | None = None,
    ep: Endpoints | None = None,
) -> None:
    """Entry point of the lab process (multiprocessing, spawn). Under the window it
    inherits the observer's niceness (engine/observer.py)."""
    # Ctrl-C and a SIGTERM to the process group are the observer's to handle: it stops the
    # labs in order (drained, audited). SIGKILL still ends a lab; so does its parent's death.
    for sig in LAB_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, LAB_SIGNALS)  # the observer started us with them blocked
    die_with_parent(parent_pid)
    _more_files()
    try:
        lab = Lab(cfg, LanePaths(Path(root)), inc, start_seq, t0, ep)
    except ConfigError as exc:
        _send(conn, ("error", str(exc)))
        return
    except Exception as exc:  # noqa: BLE001 - the files cannot be opened: one line
        _send(conn, ("error", f"the {cfg.label} lab cannot open its files: {type(exc).__name__}: {exc}"))
        return
    code = 0
    try:
        code = _serve(conn, lab)
    except (EOFError, OSError):
        pass  # the observer is gone (its pipe closed or broke): nothing to report to
    finally:
        lab.close()
    if code:
        os._exit(code)  # after close(): every file is closed; skip multiprocessing's goodbyes


def standby_process(conn, parent_pid: int = 0, imports: tuple[str, ...] = ()) -> None:
    """A lab started ahead of need (a standby, issue 24): it pays for the interpreter's start
    and the imports now, while nothing waits for it, then waits for ``("become", *args)``
    (:func:`lab_process`'s arguments after ``conn``) and becomes that incarnation. On a loaded
    machine a fresh process took 3.7-9.9 s to restart a node for a 1 s delay; a standby only
    opens its files. ``imports``: the modules its backends need (:func:`storage.lab_imports`)."""
    for sig in LAB_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, LAB_SIGNALS)
    die_with_parent(parent_pid)
    for name in imports:
        try:
            importlib.import_module(name)
        except ImportError:
            pass  # said by the lab itself when it opens the backend
    try:
        msg = conn.recv()
    except (EOFError, OSError):
        return  # not needed after all (the run ended): nothing to say
    if msg[0] == "become":
        lab_process(conn, *msg[1:])


def _send(conn, msg) -> None:
    try:
        conn.send(msg)
    except (OSError, EOFError):
        pass


def _commands(lab: Lab, replies: list[tuple]) -> dict:
    """What each of the observer's commands does, by its name (all but "stop", which ends
    :func:`_serve`'s loop). ``replies``: what the lab's threads answer later."""

    def go(t0: float, until: float, outage: bool) -> None:
        lab.set_outage(outage)
        lab.start_clients(t0, until)

    def cold() -> None:
        failed = lab.cold()
        if failed:
            replies.append(("cold-failed", failed))

    return {
        "go": go,
        "pause": lab.pause,
        "resume": lab.resume,
        "step": lambda t0: lab.step(t0, reply=lambda info: replies.append(("stepped", info))),
        "outage": lab.set_outage,
        "cold": cold,
        "set": lab.set_knob,
        "burst": lab.burst,
        "stampede": lambda readers: lab.stampede(readers, reply=lambda info: replies.append(("stampede-done", info))),
    }


def _serve(conn, lab: Lab) -> int:
    """Obey the observer until "stop" (drain, then "drained") or a failure ("failed").
    Returns the process's exit status."""
    lab.start_flusher()  # a durable queue left by a crashed incarnation is replayed now
    conn.send(("ready", {"pid": os.getpid(), "inc": lab.inc, "queue_depth": lab.gauges()["queue_depth"]}))
    next_gauges = time.monotonic()
    replies: list[tuple] = []  # from lab threads; sent by this thread only (a pipe is not thread-safe)
    drainer: threading.Thread | None = None
    drained: list[bool] = []
    commands = _commands(lab, replies)
    while True:
        if drainer is None and conn.poll(max(0.0, next_gauges - time.monotonic())):
            msg = conn.recv()
            cmd = msg[0]
            if cmd in commands:
                commands[cmd](*msg[1:])
            elif cmd == "stop":
                # Drain on a thread of its own, so that gauges keep telling the observer
                # that this lab is alive (a silent lab is killed as hung).
                drainer = threading.Thread(target=lambda: drained.append(lab.drain()), name="drain", daemon=True)
                drainer.start()
        elif drainer is not None:
            drainer.join(max(0.0, next_gauges - time.monotonic()))
            if not drainer.is_alive():
                while replies:
                    conn.send(replies.pop(0))
                final = lab.gauges()
                final["drained"] = bool(drained and drained[0])
                conn.send(("drained", final))
                return 0
        while replies:
            conn.send(replies.pop(0))
        if drainer is None and lab.check_health():
            lab.stop_clients()
            conn.send(("failed", lab.failure, lab.gauges()))
            return EXIT_FAILED
        if time.monotonic() >= next_gauges:
            gauges = lab.gauges()
            gauges["draining"] = drainer is not None
            conn.send(("gauges", gauges))
            next_gauges = time.monotonic() + GAUGE_INTERVAL_S
