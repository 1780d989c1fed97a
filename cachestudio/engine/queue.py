"""The write-behind queue and its flusher, with the knobs real engines offer.

Two queues with one interface:

* :class:`VolatileQueue` lives in the lab's memory and dies with it (a crash loses
  what it held). With coalescing it keeps one entry per key, the latest version, in the
  order keys were first queued (Hazelcast's write-coalescing).
* :class:`DurableQueue` is a diskcache directory on disk (``push`` with increasing
  integer keys, as ``diskcache.Deque`` does). It survives a crash and is replayed by the
  next lab: at-least-once, which the store's version guard makes harmless. A durable
  queue coalesces within each flush batch (latest version per key in the batch).

The flusher takes a batch *without removing it*, writes it to the store in one
transaction and removes it only after the commit: a crash between the two replays the
batch. A failed batch is retried with exponential backoff up to the retry limit and
then moved to the dead-letter list (those writes were acknowledged and will never reach
the store: the auditor will name them as lost writes).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict, deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

import diskcache

from .backends import SQLITE_ERRORS, BackendFailure, Store, backend_failure
from .config import WriteBehindKnobs

if TYPE_CHECKING:
    from .pg_store import PostgresStore

Entry = tuple[str, int, str]  # key, version, value
MAX_BACKOFF_S = 2.0


class QueueUnavailable(BackendFailure):
    """The durable queue's files failed (disk full, I/O error) or its lock timed out."""


def _queue_call(what: str, call):
    """Run a durable queue's diskcache call; its failures become counted ones."""
    try:
        return call()
    except diskcache.Timeout as exc:
        raise QueueUnavailable(f"write queue {what} timed out: {exc}") from None
    except SQLITE_ERRORS as exc:
        raise backend_failure(QueueUnavailable, f"write queue {what}", exc) from None


class VolatileQueue:
    durable = False

    def __init__(self, knobs: WriteBehindKnobs):
        self.capacity = knobs.capacity
        self.coalesce = knobs.coalesce
        # an OrderedDict by key when coalescing, else a deque: the methods below use each its own way
        self._items: Any = OrderedDict() if self.coalesce else deque()
        self._cond = threading.Condition()
        #: The depth the waiting flusher wakes at (None: it is not waiting). A put wakes it
        #: only then: a wake per put costs a thread switch per write (issue 15, measured).
        self._wake: int | None = None

    def depth(self) -> int:
        return len(self._items)

    def put(self, entry: Entry, block: bool, timeout: float) -> bool:
        """Queue an entry; False when the queue is full (rejected or timed out)."""
        key = entry[0]
        with self._cond:
            if self.coalesce and key in self._items:
                if entry[1] > self._items[key][1]:
                    self._items[key] = entry  # keeps the key's place in line
                return True
            if len(self._items) >= self.capacity:
                if not block:
                    return False
                deadline = time.monotonic() + timeout
                while len(self._items) >= self.capacity:
                    left = deadline - time.monotonic()
                    if left <= 0 or not self._cond.wait(left):
                        if len(self._items) >= self.capacity:
                            return False
                if self.coalesce and key in self._items:  # queued by another writer meanwhile
                    if entry[1] > self._items[key][1]:
                        self._items[key] = entry
                    return True
            if self.coalesce:
                self._items[key] = entry
            else:
                self._items.append(entry)
            if self._wake is not None and len(self._items) >= self._wake:
                self._cond.notify_all()
            return True

    def take(self, n: int) -> list[Entry]:
        with self._cond:
            values = self._items.values() if self.coalesce else self._items
            return list(itertools.islice(values, n))

    def done(self, batch: list[Entry]) -> None:
        with self._cond:
            if self.coalesce:
                for key, version, _ in batch:
                    queued = self._items.get(key)
                    if queued is not None and queued[1] <= version:
                        del self._items[key]  # a newer version queued meanwhile stays
            else:
                for _ in batch:
                    self._items.popleft()
            self._cond.notify_all()

    def wait(self, timeout: float, threshold: int) -> None:
        """Sleep until ``threshold`` entries are queued or ``timeout`` passes."""
        with self._cond:
            self._wake = threshold
            try:
                self._cond.wait_for(lambda: len(self._items) >= threshold, timeout)
            finally:
                self._wake = None

    def close(self) -> None:
        pass


class DurableQueue:
    durable = True

    def __init__(self, directory: Path, knobs: WriteBehindKnobs):
        self.capacity = knobs.capacity
        self.coalesce = knobs.coalesce
        self._q = diskcache.Cache(
            str(directory), timeout=5.0, eviction_policy="none", size_limit=2**40, statistics=False
        )
        self._cond = threading.Condition()
        self._depth = 0
        self._wake: int | None = None  # as VolatileQueue's

    def depth(self) -> int:
        try:
            return len(self._q)
        except (diskcache.Timeout, *SQLITE_ERRORS):
            return self._depth  # the last depth read (a gauge; the files are failing)

    def _len(self) -> int:
        self._depth = _queue_call("length", lambda: len(self._q))
        return self._depth

    def put(self, entry: Entry, block: bool, timeout: float) -> bool:
        with self._cond:
            if self._len() >= self.capacity:
                if not block:
                    return False
                if not self._cond.wait_for(lambda: self._len() < self.capacity, timeout):
                    return False
            # one SQLite transaction: on disk before we acknowledge
            _queue_call("push", lambda: self._q.push(entry))
            self._depth += 1
            if self._wake is not None and self._depth >= self._wake:
                self._cond.notify_all()
            return True

    def take(self, n: int) -> list[Entry]:
        def read() -> list[Entry]:
            keys = list(itertools.islice(self._q.iterkeys(), n))
            self._taken = keys
            return [tuple(self._q[k]) for k in keys]

        return _queue_call("read", read)

    def done(self, batch: list[Entry]) -> None:
        def remove() -> None:
            with self._q.transact():
                for k in self._taken[: len(batch)]:
                    self._q.delete(k)

        with self._cond:
            _queue_call("remove", remove)
            self._cond.notify_all()

    def wait(self, timeout: float, threshold: int) -> None:
        with self._cond:
            self._wake = threshold
            try:
                self._cond.wait_for(lambda: self.depth() >= threshold, timeout)
            finally:
                self._wake = None

    def close(self) -> None:
        try:
            self._q.close()
        except (diskcache.Timeout, *SQLITE_ERRORS):
            pass


def coalesce_batch(batch: list[Entry]) -> list[Entry]:
    """Latest version per key, in order of first appearance."""
    latest: dict[str, Entry] = {}
    for entry in batch:
        held = latest.get(entry[0])
        if held is None or entry[1] > held[1]:
            latest[entry[0]] = entry
    return list(latest.values())


class Flusher:
    """The background writer: drains the queue into the store in batches.

    ``run`` is a plain loop that a test can call on its own thread; ``flush_once``
    does one pass synchronously.
    """

    def __init__(self, queue, store: Store | PostgresStore, knobs: WriteBehindKnobs, health=None):
        self.queue = queue
        self.health = health  # the lane's (strategies.Health): hard failures are counted there
        self.store = store
        self.knobs = knobs
        self.stop = threading.Event()
        self.hold = threading.Event()  # cleared while the lab is paused: no new batch is taken
        self.hold.set()
        self.draining = threading.Event()
        self.dead_letters: list[Entry] = []
        self.retries = 0
        self.failures = 0
        self.batches = 0
        self.last_error = ""
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="flusher", daemon=True)
        self._thread.start()

    def run(self) -> None:
        """The flusher thread. It never dies of a failure: a queue or store that fails is
        counted (``failures``, ``last_error``) and tried again after the backoff."""
        delay = self.knobs.retry_backoff_s
        while not self.stop.is_set():
            if not self.hold.wait(0.1):
                continue  # paused
            try:
                self.queue.wait(self.knobs.flush_interval_s, self.knobs.batch_size)
                self.flush_once()
                delay = self.knobs.retry_backoff_s
            except Exception as exc:  # noqa: BLE001 - counted, then tried again
                self._failed(exc)
                if self.stop.wait(delay):
                    return
                delay = min(max(delay, 0.01) * 2, MAX_BACKOFF_S)
                continue
            if self.draining.is_set() and self.queue.depth() == 0:
                return

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        self.last_error = str(exc)
        if self.health is not None:
            self.health.failed(exc, "flush")

    def flush_once(self) -> int:
        """Write everything queued now, batch by batch; return rows written."""
        written = 0
        while not self.stop.is_set() and self.hold.is_set():
            batch = self.queue.take(self.knobs.batch_size)
            if not batch:
                break
            rows = coalesce_batch(batch) if self.queue.durable and self.queue.coalesce else batch
            landed = self._write_with_retry(rows)
            if landed is None:  # stopped while waiting to retry: leave the batch queued
                break
            if landed:
                written += len(rows)
            else:
                self.dead_letters.extend(rows)
            self.queue.done(batch)
        return written

    def _write_with_retry(self, rows: list[Entry]) -> bool | None:
        delay = self.knobs.retry_backoff_s
        for attempt in range(self.knobs.retry_limit + 1):
            if attempt:
                self.retries += 1
                if self.stop.wait(delay):
                    return None
                delay = min(delay * 2, MAX_BACKOFF_S)
            try:
                self.store.write_batch(rows)
                self.batches += 1
                if self.health is not None:
                    self.health.ok("flush")
                return True
            except BackendFailure as exc:
                self._failed(exc)
        return False

    def drain(self, timeout: float | None = None) -> bool:
        """Ask the flusher to write everything and stop; True if the queue emptied."""
        self.draining.set()
        self.hold.set()  # a paused lab still drains at the end
        with_thread = self._thread is not None and self._thread.is_alive()
        if with_thread:
            self._thread.join(timeout)
        else:
            try:
                self.flush_once()
            except Exception as exc:  # noqa: BLE001 - counted; the queue is not empty
                self._failed(exc)
        return self.queue.depth() == 0
