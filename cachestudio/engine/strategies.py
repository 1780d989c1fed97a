"""The three strategies, with exactly the seed's flows (DESIGN.md §2).

Each operation returns ``(outcome, version, acked, detail)``: outcome is hit, miss,
ok, error or rejected; version is what a read returned (None: nothing) or what a write
carried; acked says whether the client got a success reply; detail explains an error.

* cache-aside   read: cache get; on a miss read the DB, then set the cache.
                write: write the DB, then delete the cache key. Acked when committed.
* write-through read: the same (read-through).
                write: set the cache, then write the DB, synchronously. Acked when both
                are done; a DB failure after the cache set leaves a dirty cache (the
                seed does not undo it, and neither do we: that is the lesson).
* write-behind  read: the same.
                write: enqueue (admission: block or reject when full), then set the
                cache; acked then. The flusher writes the DB later, in batches.
                Enqueue comes first, as in Hazelcast's record store, so that a rejected
                write never touches the cache.
"""

from __future__ import annotations

from .backends import CacheBackend, CacheUnavailable, Store, StoreUnavailable
from .config import WriteBehindKnobs

Result = tuple[str, "int | None", bool, "str | None"]
FAILURES = (StoreUnavailable, CacheUnavailable)


class Strategy:
    name = ""

    def __init__(self, cache: CacheBackend, store: Store):
        self.cache = cache
        self.store = store

    def read(self, key: str) -> Result:
        try:
            held = self.cache.get(key)
            if held is not None:
                return "hit", held[0], True, None
            row = self.store.read(key)  # cache miss: fetch from the DB
            if row is None:
                return "miss", None, True, None
            self.cache.set(key, row[0], row[1])  # populate the cache
            return "miss", row[0], True, None
        except FAILURES as exc:
            return "error", None, False, str(exc)

    def write(self, key: str, version: int, value: str) -> Result:
        raise NotImplementedError


class CacheAside(Strategy):
    name = "cache-aside"

    def write(self, key: str, version: int, value: str) -> Result:
        try:
            self.store.write(key, version, value)  # update the DB first
            self.cache.delete(key)  # then invalidate the cache
        except FAILURES as exc:
            return "error", version, False, str(exc)
        return "ok", version, True, None


class WriteThrough(Strategy):
    name = "write-through"

    def write(self, key: str, version: int, value: str) -> Result:
        try:
            self.cache.set(key, version, value)  # write to the cache immediately
            self.store.write(key, version, value)  # synchronously persist to the DB
        except FAILURES as exc:
            return "error", version, False, str(exc)
        return "ok", version, True, None


class WriteBehind(Strategy):
    name = "write-behind"

    def __init__(self, cache: CacheBackend, store: Store, queue, knobs: WriteBehindKnobs):
        super().__init__(cache, store)
        self.queue = queue
        self.block = knobs.backpressure == "block"
        self.block_timeout = knobs.block_timeout_s

    def write(self, key: str, version: int, value: str) -> Result:
        if not self.queue.put((key, version, value), self.block, self.block_timeout):
            why = "write queue full" + (" (blocked writer timed out)" if self.block else "")
            return "rejected", version, False, why
        try:
            self.cache.set(key, version, value)  # update the cache immediately
        except FAILURES as exc:
            return "error", version, False, str(exc)
        return "ok", version, True, None  # the DB write happens later, in the flusher


def make_strategy(name: str, cache: CacheBackend, store: Store, queue=None, knobs=None) -> Strategy:
    if name == "cache-aside":
        return CacheAside(cache, store)
    if name == "write-through":
        return WriteThrough(cache, store)
    if name == "write-behind":
        return WriteBehind(cache, store, queue, knobs)
    raise ValueError(f"unknown strategy {name!r}")
