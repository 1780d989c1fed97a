"""The lab: one lane's cache node, write queue and clients, in its own OS process.

:class:`Lab` is everything that runs in the process and can also be driven in-process
by tests (``start_clients``/``stop_clients``/``drain``). :func:`lab_process` is the
process entry point: it opens the lab, says ``ready``, then obeys the observer's
commands from its pipe and sends gauges back every ``GAUGE_INTERVAL_S``. Operations
themselves travel as history records (see :mod:`history`), which survive a SIGKILL.

Commands (tuples): ``("go", t0, until, outage)``, ``("pause",)``, ``("resume",)``,
``("outage", on)``, ``("cold",)``, ``("set", section, name, value)`` (a live knob),
``("burst", kind, count)``, ``("stampede", readers)``, ``("stop",)``. Replies:
``("ready", info)``, ``("error", message)``, ``("gauges", dict)``, ``("stampede-done", dict)``,
``("drained", dict)``.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .backends import CacheBackend, Store
from .config import ConfigError, LaneConfig
from .history import HistoryWriter, op_line
from .queue import DurableQueue, Flusher, VolatileQueue
from .strategies import make_strategy
from .workload import READ, OpStream

GAUGE_INTERVAL_S = 0.1  # how often a lab sends its gauges to the observer
DRAIN_TIMEOUT_S = 120.0  # the longest a lab spends writing its queue at the end


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
    def history(self) -> Path:
        return self.root / "history"

    def store_at_kill(self, inc: int) -> Path:
        """A copy of the store made right after incarnation ``inc`` was killed (evidence)."""
        return self.root / "evidence" / f"store-at-kill-inc-{inc:04d}.sqlite"

    def history_file(self, inc: int) -> Path:
        return self.history / f"inc-{inc:04d}.jsonl"

    def make(self) -> None:
        for d in (self.root, self.history):
            d.mkdir(parents=True, exist_ok=True)


class Lab:
    def __init__(self, cfg: LaneConfig, paths: LanePaths, inc: int = 0, start_seq: int = 0):
        self.cfg = cfg
        self.paths = paths
        self.inc = inc
        paths.make()
        self.store = Store(paths.store, cfg.store, cfg.latency)
        self.cache = CacheBackend(paths.cache, cfg.cache, cfg.latency)
        self.queue = None
        self.flusher = None
        if cfg.strategy == "write-behind":
            wb = cfg.write_behind
            self.queue = DurableQueue(paths.queue, wb) if wb.durable else VolatileQueue(wb)
            self.flusher = Flusher(self.queue, self.store, wb)
        self.strategy = make_strategy(cfg.strategy, self.cache, self.store, self.queue, cfg.write_behind)
        self.history = HistoryWriter(paths.history_file(inc))
        self._ops = OpStream(cfg.workload, cfg.seed).ops(start_seq)
        self._next_seq = start_seq
        self._burst_kind = ""
        self.burst_left = 0
        self._ops_lock = threading.Lock()
        self._stop = threading.Event()
        self._running = threading.Event()
        self._threads: list[threading.Thread] = []
        self._filler = "x" * cfg.workload.value_size
        self.t0 = time.monotonic()
        self.until = float("inf")
        self.done = 0  # operations completed by this incarnation
        self._pace_at = 0.0
        self._pace_count = 0

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

    def resume(self) -> None:
        self._pace_at, self._pace_count = time.monotonic(), 0
        self._running.set()

    def _next(self):
        with self._ops_lock:
            op = next(self._ops)
            self._next_seq = op.seq + 1
            if self.burst_left:  # a burst: only its kind, as fast as the clients go
                while op.kind != self._burst_kind:
                    op = next(self._ops)
                    self._next_seq = op.seq + 1
                self.burst_left -= 1
                if not self.burst_left:
                    self._pace_at, self._pace_count = time.monotonic(), 0  # no catching up after
                return op, 0.0
            self._pace_count += 1
            due = self._pace_at + self._pace_count / self.cfg.workload.rate if self.cfg.workload.rate else 0.0
            return op, due

    def burst(self, kind: str, count: int) -> None:
        with self._ops_lock:
            self._burst_kind, self.burst_left = kind, count

    def stampede(self, readers: int, reply=None) -> threading.Thread:
        """Hot-key stampede: the hottest key (k0) expires and ``readers`` clients read it at
        the same instant (a barrier). Each read is a history record (detail "stampede");
        every miss among them is one DB read. ``reply`` gets a summary when all are done.
        The readers take their sequence numbers from the operation stream, so ids stay unique."""
        key = "k0"
        with self._ops_lock:
            seqs = []
            for _ in range(readers):
                op = next(self._ops)
                seqs.append(op.seq)
                self._next_seq = op.seq + 1
        self.cache.expire_now(key)
        gate = threading.Barrier(readers)
        lane, code, inc, t0 = self.cfg.strategy, self.cfg.code, self.inc, self.t0
        results: list[tuple[str, float]] = []

        def reader(seq: int) -> None:
            try:
                gate.wait(timeout=10)
            except threading.BrokenBarrierError:
                pass
            start = time.monotonic() - t0
            outcome, version, acked, detail = self.strategy.read(key)
            end = time.monotonic() - t0
            note = "stampede" + (f"; {detail}" if detail else "")
            self.history.write(op_line(code, seq, lane, READ, key, version, start, end, outcome, acked, inc, note))
            results.append((outcome, end - start))
            self.done += 1

        def run() -> None:
            threads = [threading.Thread(target=reader, args=(seq,), daemon=True) for seq in seqs]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if reply is not None:
                reply({"key": key, "readers": readers, "protection": self.cache.protection,
                       "db_reads": sum(1 for outcome, _ in results if outcome == "miss"),
                       "max_ms": max((d for _, d in results), default=0.0) * 1000.0})

        boss = threading.Thread(target=run, name="stampede", daemon=True)
        boss.start()
        return boss

    def set_knob(self, section: str, name: str, value) -> None:
        """Apply a live knob (config.LIVE_KNOBS) to the running lab."""
        self.cfg = self.cfg.with_knob(section, name, value)
        if section == "workload":
            with self._ops_lock:  # a new stream from the next operation on
                self._ops = OpStream(self.cfg.workload, self.cfg.seed).ops(self._next_seq)
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
            self.strategy.block = wb.backpressure == "block"
            self.strategy.block_timeout = wb.block_timeout_s

    def _value(self, key: str, version: int) -> str:
        head = f"{key}:v{version}:"
        return head + self._filler[: max(0, self.cfg.workload.value_size - len(head))]

    def _client(self, index: int) -> None:
        strategy, write_line, mono = self.strategy, self.history.write, time.monotonic
        lane, code, inc, t0 = self.cfg.strategy, self.cfg.code, self.inc, self.t0
        stop, running = self._stop, self._running
        while not stop.is_set():
            if index >= self.cfg.workload.concurrency:
                return  # concurrency was lowered
            if not running.is_set():
                running.wait(0.1)
                continue
            op, due = self._next()
            if due:
                wait = due - mono()
                if wait > 0 and stop.wait(wait):
                    return
            start = mono() - t0
            if start >= self.until:
                return
            if op.kind == READ:
                outcome, version, acked, detail = strategy.read(op.key)
            else:
                outcome, version, acked, detail = strategy.write(op.key, op.version, self._value(op.key, op.version))
            end = mono() - t0
            write_line(op_line(code, op.seq, lane, op.kind, op.key, version, start, end, outcome, acked, inc, detail))
            self.done += 1

    def stop_clients(self) -> None:
        self._stop.set()
        self._running.set()
        for t in self._threads:
            t.join()
        self._threads.clear()

    # -- faults and gauges -------------------------------------------------------------

    def set_outage(self, on: bool) -> None:
        """During an outage, fail reads by injection where SQLite would still serve them."""
        self.store.injected_read_outage = on and not self.store.outage_is_real_for_reads

    def cold(self) -> None:
        self.cache.clear()

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
        }

    def drain(self, timeout: float = DRAIN_TIMEOUT_S) -> bool:
        self.stop_clients()
        ok = self.flusher.drain(timeout) if self.flusher is not None else True
        return ok

    def close(self) -> None:
        if self.flusher is not None:
            self.flusher.stop.set()
        if self.queue is not None:
            self.queue.close()
        self.history.close()
        self.cache.close()
        self.store.close()


def lab_process(conn, cfg: LaneConfig, root: str, inc: int, start_seq: int) -> None:
    """Entry point of the lab process (multiprocessing, spawn). Under the window it
    inherits the observer's niceness (engine/observer.py)."""
    try:
        lab = Lab(cfg, LanePaths(Path(root)), inc, start_seq)
    except ConfigError as exc:
        conn.send(("error", str(exc)))
        return
    lab.start_flusher()  # a durable queue left by a crashed incarnation is replayed now
    conn.send(("ready", {"pid": os.getpid(), "inc": inc, "queue_depth": lab.gauges()["queue_depth"]}))
    next_gauges = time.monotonic()
    replies: list[tuple] = []  # from lab threads; sent by this thread only (a pipe is not thread-safe)
    try:
        while True:
            if conn.poll(max(0.0, next_gauges - time.monotonic())):
                msg = conn.recv()
                cmd = msg[0]
                if cmd == "go":
                    _, t0, until, outage = msg
                    lab.set_outage(outage)
                    lab.start_clients(t0, until)
                elif cmd == "pause":
                    lab.pause()
                elif cmd == "resume":
                    lab.resume()
                elif cmd == "outage":
                    lab.set_outage(msg[1])
                elif cmd == "cold":
                    lab.cold()
                elif cmd == "set":
                    lab.set_knob(*msg[1:])
                elif cmd == "burst":
                    lab.burst(*msg[1:])
                elif cmd == "stampede":
                    lab.stampede(msg[1], reply=lambda info: replies.append(("stampede-done", info)))
                elif cmd == "stop":
                    drained = lab.drain()
                    final = lab.gauges()
                    final["drained"] = drained
                    conn.send(("drained", final))
                    break
            while replies:
                conn.send(replies.pop(0))
            if time.monotonic() >= next_gauges:
                conn.send(("gauges", lab.gauges()))
                next_gauges = time.monotonic() + GAUGE_INTERVAL_S
    except (EOFError, BrokenPipeError, ConnectionResetError):
        pass  # the observer is gone: nothing to report to
    finally:
        lab.close()
