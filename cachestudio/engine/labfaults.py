"""The faults a lab takes, as methods of :class:`lab.Lab` (this class is one of its bases):
a burst of extra operations (queued behind one under way), a hot-key stampede (readers
behind a barrier, the key expired when all are at the gate), a cold cache, and a DB outage
as the lab sees it (reads failed by injection where the store would still serve them).
The observer decides when (:mod:`faultinjection`); the lab does it, in its own process.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from .history import op_line
from .workload import READ

if TYPE_CHECKING:
    from collections import deque
    from collections.abc import Iterator

    from .backends import CacheBackend, Store
    from .config import LaneConfig
    from .pg_store import PostgresStore
    from .redis_cache import RedisCache
    from .strategies import Result
    from .workload import Op


class LabFaults:
    """The fault methods of :class:`lab.Lab` (see the module's docstring).

    The ``if TYPE_CHECKING:`` block below is this mixin's contract with its host
    (:class:`lab.Lab`): what it uses of the host's state and methods, declared for the
    type checker only. Nothing in it exists at run time: a stub method defined here would
    shadow the real one of a later base in the MRO."""

    if TYPE_CHECKING:
        # -- the host's state (lab.Lab.__init__) --
        cfg: LaneConfig
        inc: int
        node: int | None
        cache: CacheBackend | RedisCache
        store: Store | PostgresStore
        t0: float
        last_end: float
        _ops: Iterator[Op]
        _next_seq: int
        _ops_lock: threading.Lock
        _bursts: deque[list]
        _pace_at: float
        _pace_count: int
        _stop: threading.Event
        _unpaused: threading.Event
        _stampedes: list[threading.Thread]

        # -- the host's methods (lab.Lab) --
        def _do(self, kind: str, key: str, version: int | None) -> Result: ...
        def _record(self, line: str) -> bool: ...
        def _unexpected(self, exc: BaseException, kind: str = "read") -> None: ...

    @property
    def burst_left(self) -> int:
        return sum(count for _, count in self._bursts)

    def burst(self, kind: str, count: int) -> None:
        """Queue a burst of ``count`` operations of ``kind``; a count of 0 ends every burst."""
        with self._ops_lock:
            if not count:
                self._bursts.clear()
                self._pace_at, self._pace_count = time.monotonic(), 0
            elif self._bursts and self._bursts[-1][0] == kind:
                self._bursts[-1][1] += count
            else:
                self._bursts.append([kind, count])

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
        expired: list[str] = []

        def expire() -> None:  # when every reader is at the gate: nobody refills the key before them
            try:
                self.cache.expire_now(key)
            except Exception as exc:  # noqa: BLE001 - said in the stampede's summary
                expired.append(str(exc))

        gate = threading.Barrier(readers, action=expire)
        lane, code, inc = self.cfg.label, self.cfg.code, self.inc
        results: list[tuple[str, float]] = []

        def reader(seq: int) -> None:
            try:
                gate.wait(timeout=10)
            except threading.BrokenBarrierError:
                pass
            t0 = self.t0
            start = time.monotonic() - t0
            outcome, version, acked, detail = self._do(READ, key, None)
            end = time.monotonic() - t0
            if end > self.last_end:
                self.last_end = end
            note = "stampede" + (f"; {detail}" if detail else "")
            results.append((outcome, end - start))
            self._record(op_line(code, seq, lane, READ, key, version, start, end, outcome, acked, inc, note, self.node))
            self.cache.close()  # this thread's connections: 500 readers must not hold 500 of each
            self.store.close()

        def run() -> None:
            while not self._unpaused.wait(0.1):  # a stampede waits out a pause
                if self._stop.is_set():
                    break
            threads = [threading.Thread(target=reader, args=(seq,), daemon=True) for seq in seqs]
            started = []
            for t in threads:
                try:
                    t.start()
                    started.append(t)
                except RuntimeError as exc:  # no more threads: the rest are not started, and said so
                    self._unexpected(exc)
                    results.extend(("not started", 0.0) for _ in range(len(threads) - len(started)))
                    break
            if len(started) < len(threads):
                gate.abort()  # the started readers must not wait for the missing ones
            for t in started:
                t.join()
            if reply is not None:
                reply(
                    {
                        "key": key,
                        "readers": readers,
                        "protection": self.cache.protection,
                        "db_reads": sum(1 for outcome, _ in results if outcome == "miss"),
                        "errors": sum(1 for outcome, _ in results if outcome == "error"),
                        "not_started": sum(1 for outcome, _ in results if outcome == "not started"),
                        "expire_failed": expired[0] if expired else "",
                        "max_ms": max((d for _, d in results), default=0.0) * 1000.0,
                    }
                )

        boss = threading.Thread(target=run, name="stampede", daemon=True)
        boss.start()
        self._stampedes = [t for t in self._stampedes if t.is_alive()] + [boss]
        return boss

    def set_outage(self, on: bool) -> None:
        """During an outage, fail reads by injection where SQLite would still serve them."""
        self.store.injected_read_outage = on and not self.store.outage_is_real_for_reads

    def cold(self) -> str:
        """Flush the cache; returns the failure's text if it could not be flushed."""
        try:
            self.cache.clear()
        except Exception as exc:  # noqa: BLE001 - reported to the observer as an event
            return str(exc)
        return ""
