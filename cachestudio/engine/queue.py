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

import diskcache

from .backends import Store, StoreUnavailable
from .config import WriteBehindKnobs

Entry = tuple[str, int, str]  # key, version, value
MAX_BACKOFF_S = 2.0


class VolatileQueue:
    durable = False

    def __init__(self, knobs: WriteBehindKnobs):
        self.capacity = knobs.capacity
        self.coalesce = knobs.coalesce
        self._items: OrderedDict[str, Entry] | deque[Entry] = OrderedDict() if self.coalesce else deque()
        self._cond = threading.Condition()

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
            self._cond.wait_for(lambda: len(self._items) >= threshold, timeout)

    def close(self) -> None:
        pass


class DurableQueue:
    durable = True

    def __init__(self, directory: Path, knobs: WriteBehindKnobs):
        self.capacity = knobs.capacity
        self.coalesce = knobs.coalesce
        self._q = diskcache.Cache(str(directory), timeout=5.0, eviction_policy="none",
                                  size_limit=2**40, statistics=False)
        self._cond = threading.Condition()

    def depth(self) -> int:
        return len(self._q)

    def put(self, entry: Entry, block: bool, timeout: float) -> bool:
        with self._cond:
            if len(self._q) >= self.capacity:
                if not block:
                    return False
                if not self._cond.wait_for(lambda: len(self._q) < self.capacity, timeout):
                    return False
            self._q.push(entry)  # one SQLite transaction: on disk before we acknowledge
            self._cond.notify_all()
            return True

    def take(self, n: int) -> list[Entry]:
        keys = list(itertools.islice(self._q.iterkeys(), n))
        self._taken = keys
        return [tuple(self._q[k]) for k in keys]

    def done(self, batch: list[Entry]) -> None:
        with self._cond:
            with self._q.transact():
                for k in self._taken[: len(batch)]:
                    self._q.delete(k)
            self._cond.notify_all()

    def wait(self, timeout: float, threshold: int) -> None:
        with self._cond:
            self._cond.wait_for(lambda: len(self._q) >= threshold, timeout)

    def close(self) -> None:
        self._q.close()


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

    def __init__(self, queue, store: Store, knobs: WriteBehindKnobs):
        self.queue = queue
        self.store = store
        self.knobs = knobs
        self.stop = threading.Event()
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
        while not self.stop.is_set():
            self.queue.wait(self.knobs.flush_interval_s, self.knobs.batch_size)
            self.flush_once()
            if self.draining.is_set() and self.queue.depth() == 0:
                return

    def flush_once(self) -> int:
        """Write everything queued now, batch by batch; return rows written."""
        written = 0
        while not self.stop.is_set():
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
                return True
            except StoreUnavailable as exc:
                self.failures += 1
                self.last_error = str(exc)
        return False

    def drain(self, timeout: float | None = None) -> bool:
        """Ask the flusher to write everything and stop; True if the queue emptied."""
        self.draining.set()
        with_thread = self._thread is not None and self._thread.is_alive()
        if with_thread:
            self._thread.join(timeout)
        else:
            self.flush_once()
        return self.queue.depth() == 0
