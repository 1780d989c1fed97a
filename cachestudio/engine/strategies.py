"""The three strategies, with exactly the seed's flows (DESIGN.md §2).

Each operation returns ``(outcome, version, acked, detail)``: outcome is hit, miss,
ok, error, rejected or indeterminate; version is what a read returned (None: nothing) or what a write
carried; acked says whether the client got a success reply; detail explains an error.

* cache-aside   read: cache get; on a miss read the DB, then set the cache.
                write: write the DB, then delete the cache key. Acked when committed.
* write-through read: the same (read-through).
                write: set the cache, then write the DB, synchronously. Acked when both
                are done; a DB failure after the cache set leaves a dirty cache (the
                seed does not undo it, and neither do we: that is the lesson).

Stampede protection (``cache.stampede``) changes only what a read does on a miss:
``single-flight``: the first reader takes a lock entry in the cache (diskcache ``add``,
atomic across processes), reads the DB, sets the cache and releases; the others poll
the cache for its value. ``lease`` (memcache, Nishtala et al. 2013): the same, but the
holder's set lands only if its lease is still valid, and every writer's set or delete
invalidates the key's lease in the same transaction. That also stops the stale set
(a reader that read v1, then a write of v2 and its invalidation, then the reader's set
of v1). A waiter gives up after ``lease_ttl_s`` and reads the DB without caching.
* write-behind  read: the same.
                write: enqueue (admission: block or reject when full), then set the
                cache; acked then. The flusher writes the DB later, in batches.
                Enqueue comes first, as in Hazelcast's record store, so that a rejected
                write never touches the cache.

A write that fails after the step that applies it (its kind's ``applies_at``: the DB commit,
or the enqueue of a strategy that queues writes) is ``indeterminate``, not acknowledged: the
client saw an error, but the write reached the store (or its flusher will take it there as
surely as an acknowledged one). A cache-aside write whose cache delete failed after the
commit; a write-behind write whose cache set failed after the enqueue. An error before or
in that step is an ``error``: the write never reaches the store. Reads are never
indeterminate (DESIGN.md §4). Each write names the steps it completed (``done``), and the
outcome is decided from the declaration, never from the strategy's name.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .backends import BackendFailure, CacheBackend, Store
from .config import WriteBehindKnobs
from .strategykinds import BY_NAME

if TYPE_CHECKING:
    from .pg_store import PostgresStore
    from .redis_cache import RedisCache

Result = tuple[str, "int | None", bool, "str | None"]
FAILURES = BackendFailure
WAIT_POLL_S = 0.002  # how often a reader waiting for a lock or lease holder looks again
#: A lane whose operations fail hard (disk full, I/O error, unreadable file) with nothing
#: succeeding for this long cannot go on: its lab stops it and names the reason.
HARD_FAIL_S = 2.0


class Health:
    """Can this lane go on? Reads, writes and the flusher's batches each keep a streak of
    hard failures (disk full, I/O error, unreadable file), which any success of the same
    kind ends. A streak whose failures span ``HARD_FAIL_S`` is a verdict: the lane cannot
    go on (every write failing on a full disk is not rescued by reads that still hit).
    Transient failures (a lock held by an outage) never count. Shared by the strategy and
    the flusher; plain attribute writes (atomic under the GIL), no lock on the hot path."""

    KINDS = ("read", "write", "flush")

    def __init__(self) -> None:
        self.streaks: dict[str, list[float] | None] = dict.fromkeys(self.KINDS)  # kind -> [first, last]
        self.reason = ""
        self.hard_failures = 0

    def ok(self, kind: str) -> None:
        self.streaks[kind] = None

    def failed(self, exc: BaseException, kind: str) -> str:
        """Note a failure of an operation of ``kind``; return its one-line text (the detail)."""
        text = str(exc)
        if getattr(exc, "hard", True):  # a failure no backend classified counts as hard
            self.hard_failures += 1
            self.reason = text
            now = time.monotonic()
            streak = self.streaks[kind]
            if streak is None:
                self.streaks[kind] = [now, now]
            else:
                streak[1] = now
        return text

    def verdict(self) -> str | None:
        for kind, streak in self.streaks.items():
            if streak is not None and streak[1] - streak[0] >= HARD_FAIL_S:
                return f"every {kind} failed for {HARD_FAIL_S:g} s: {self.reason}"
        return None


class Strategy:
    name = ""

    def __init__(self, cache: CacheBackend | RedisCache, store: Store | PostgresStore, health: Health | None = None):
        self.cache = cache
        self.store = store
        self.health = health or Health()

    def read(self, key: str) -> Result:
        try:
            held = self.cache.get(key)
            if held is not None:
                return "hit", held[0], True, None
            if self.cache.protection == "none":
                return self._fill(key, None)
            return self._protected_miss(key)
        except FAILURES as exc:
            return "error", None, False, self.health.failed(exc, "read")

    def _fill(self, key: str, token: str | None, note: str | None = None) -> Result:
        """Cache miss: fetch from the DB, then populate the cache (with the token, if any)."""
        mode = self.cache.protection if token is not None else "none"
        try:
            row = self.store.read(key)
        except FAILURES:
            if token is not None:
                self.cache.release(key, token)  # let a waiter try, rather than wait out the TTL
            raise
        if row is None:
            if token is not None:
                self.cache.release(key, token)
            return "miss", None, True, note
        if mode == "lease":
            if not self.cache.set_leased(key, token, row[0], row[1]):
                note = "lease invalidated by a write: the value read was not cached"
        elif mode == "single-flight":
            self.cache.set(key, row[0], row[1])
            self.cache.release(key, token)
        elif note is None:
            self.cache.set(key, row[0], row[1])  # populate the cache
        return "miss", row[0], True, note

    def _protected_miss(self, key: str) -> Result:
        """Single-flight or lease: one reader fetches, the others wait for its value."""
        word = "lease" if self.cache.protection == "lease" else "lock"
        started = time.monotonic()
        deadline = started + self.cache.lease_ttl
        while True:
            held, token = self.cache.get_or_lease(key)
            if held is not None:
                waited = (time.monotonic() - started) * 1000.0
                return "hit", held[0], True, f"waited {waited:.1f} ms for the {word} holder's value"
            if token is not None:
                return self._fill(key, token)
            if time.monotonic() >= deadline:  # the holder is slow or gone: read, do not cache
                return self._fill(key, None, note=f"gave up waiting for the {word} holder: not cached")
            time.sleep(WAIT_POLL_S)

    def write(self, key: str, version: int, value: str) -> Result:
        raise NotImplementedError

    def _write_failed(self, exc: BaseException, version: int, done: list[str]) -> Result:
        """A write failed after the steps ``done`` (nodes): indeterminate if the step that
        applies it (the strategy's declared ``applies_at``) was among them, else an error."""
        detail = self.health.failed(exc, "write")
        applies_at = BY_NAME[self.name].applies_at
        if applies_at in done:
            return "indeterminate", version, False, f"may have applied (its {applies_at} step was done): {detail}"
        return "error", version, False, detail

    @classmethod
    def build(
        cls,
        cache: CacheBackend | RedisCache,
        store: Store | PostgresStore,
        queue,
        knobs: WriteBehindKnobs | None,
        health: Health | None,
    ) -> Strategy:
        """The lane's strategy; ``queue`` and ``knobs`` are for one that queues writes."""
        return cls(cache, store, health)


class CacheAside(Strategy):
    name = "cache-aside"

    def write(self, key: str, version: int, value: str) -> Result:
        done: list[str] = []
        try:
            self.store.write(key, version, value)  # update the DB first
            done.append("db")
            self.cache.delete(key)  # then invalidate the cache
        except FAILURES as exc:
            return self._write_failed(exc, version, done)
        return "ok", version, True, None


class WriteThrough(Strategy):
    name = "write-through"

    def write(self, key: str, version: int, value: str) -> Result:
        done: list[str] = []
        try:
            self.cache.set(key, version, value)  # write to the cache immediately
            done.append("cache")
            self.store.write(key, version, value)  # synchronously persist to the DB
        except FAILURES as exc:
            return self._write_failed(exc, version, done)
        return "ok", version, True, None


class WriteBehind(Strategy):
    name = "write-behind"

    def __init__(
        self,
        cache: CacheBackend | RedisCache,
        store: Store | PostgresStore,
        queue,
        knobs: WriteBehindKnobs,
        health: Health | None = None,
    ):
        super().__init__(cache, store, health)
        self.queue = queue
        self.block = knobs.backpressure == "block"
        self.block_timeout = knobs.block_timeout_s

    @classmethod
    def build(
        cls,
        cache: CacheBackend | RedisCache,
        store: Store | PostgresStore,
        queue,
        knobs: WriteBehindKnobs | None,
        health: Health | None,
    ) -> Strategy:
        if queue is None or knobs is None:
            raise ValueError(f"{cls.name} queues writes: it needs its queue and its knobs")
        return cls(cache, store, queue, knobs, health)

    def write(self, key: str, version: int, value: str) -> Result:
        done: list[str] = []
        try:
            if not self.queue.put((key, version, value), self.block, self.block_timeout):
                why = "write queue full" + (" (blocked writer timed out)" if self.block else "")
                return "rejected", version, False, why
            done.append("queue")
            self.cache.set(key, version, value)  # update the cache immediately
        except FAILURES as exc:
            return self._write_failed(exc, version, done)
        return "ok", version, True, None  # the DB write happens later, in the flusher


#: Every strategy's code, by its name (strategykinds.STRATEGY_KINDS declares what else is
#: known about each).
STRATEGY_CLASSES: dict[str, type[Strategy]] = {cls.name: cls for cls in (CacheAside, WriteThrough, WriteBehind)}


def make_strategy(
    name: str,
    cache: CacheBackend | RedisCache,
    store: Store | PostgresStore,
    queue=None,
    knobs=None,
    health: Health | None = None,
) -> Strategy:
    cls = STRATEGY_CLASSES.get(name)
    if cls is None:
        raise ValueError(f"unknown strategy {name!r}")
    return cls.build(cache, store, queue, knobs, health)
