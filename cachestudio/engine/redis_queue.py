"""The durable write-behind queue as a Redis Stream: a drop-in for ``queue.DurableQueue``.

Same interface, same promises, read by the same ``Flusher``: ``put`` queues an entry
(back-pressure: block up to a timeout, or reject, when ``capacity`` entries are queued),
``take(n)`` reads the oldest n entries *without removing them*, ``done(batch)`` removes
exactly those after the store committed them, and a durable queue coalesces within each
flush batch (the Flusher's ``coalesce_batch``, because ``durable`` is True), not on put.

Each node has its own stream (``stream`` is the full key, e.g.
``cs:<run>:<lane>:queue:node0``). An entry is one stream entry with the fields ``k``
(key), ``v`` (version) and ``d`` (value); the stream ids give the order.

* ``put`` is one round trip: a Lua script (EVALSHA) that checks XLEN against the
  capacity and XADDs, atomically (two writer threads cannot both take the last place),
  and returns the new length. redis-py reloads the script on a server that forgot it.
* ``take`` is XRANGE - + COUNT n; it keeps the ids it read, and ``done`` XDELs exactly
  those ids (a put between take and done is never removed), with XLEN in the same
  round trip (a pipeline).
* ``wait`` (the flusher's) sleeps on a condition that this process's puts notify when
  the depth they got back from their script reaches the threshold: a wake costs no round
  trip, and an idle flusher sends nothing. While it sleeps it polls XLEN every
  ``POLL_S`` (a modest interval), only so that entries added by another client of the
  stream are seen too. Not a blocking XREAD: it wakes at every new entry rather than at
  a threshold, and a blocked command holds a pooled connection for the whole wait with a
  socket timeout that would have to be longer than the wait.
* a writer blocked by a full queue sleeps on the same condition, woken by ``done``
  (polling XLEN every ``POLL_S`` too: another process may drain the stream).

What survives (the stream lives in the server, not in the node):

* a node SIGKILLed: everything it had acknowledged, replayed by its next incarnation
  (a new ``RedisStreamQueue`` on the same stream); a batch taken but not ``done`` is
  written again: at-least-once, which the store's version guard makes harmless.
* redis-server SIGKILLed without persistence (the lab's ``RedisServer`` saves no
  snapshot): the whole queue is lost, and those acknowledged writes never reach the
  store (lost writes, for the auditor). So a durable queue is never kept there: the
  run's own server of a lane with one appends to an AOF fsynced ``always``, and a given
  server without an AOF is refused (``storage.RunServers.check``).
* with ``appendfsync always`` the AOF is written and fsynced before the reply: a killed
  server (or an OS crash) comes back with every entry it acknowledged, at the cost of an
  fsync per event-loop round (measured on a 2-core machine: ~3,600 puts/s from one
  writer against ~9,000 with ``everysec``). With ``everysec`` the
  file is written before the reply unless a slow fsync is still running, in which case
  Redis may reply first for up to 2 s; an OS crash or power loss loses the last second.

A server that also holds a cache must not evict: a ``maxmemory-policy`` of ``allkeys-*``
(what ``RedisCache`` maps its eviction knobs to) may evict the stream itself, i.e. the
whole queue. With ``noeviction`` a full server refuses the XADD instead (an OOM error:
a hard ``QueueUnavailable``, the write is not acknowledged).

Failures are ``QueueUnavailable``: a refused or timed-out connection is transient
(``hard=False``: the Flusher counts it and tries again after its backoff; a restarted
server works again with the same object), any other Redis error (OOM, a key that is not
a stream, an entry that is not one of ours) is hard. ``depth`` never raises: it is a
gauge, the last depth read when the server cannot be reached (as DurableQueue's).
"""

from __future__ import annotations

import threading
import time

import redis

from .config import WriteBehindKnobs
from .queue import Entry, QueueUnavailable
from .redis_cache import redis_client

#: Seconds between XLEN polls of a waiting flusher or a writer blocked by a full queue.
POLL_S = 0.1

#: KEYS: stream. ARGV: capacity, key, version, value. Returns {1, length} when the entry
#: was added, {0, length} when the stream was full.
PUT_LUA = """
local n = redis.call('XLEN', KEYS[1])
if n >= tonumber(ARGV[1]) then return {0, n} end
redis.call('XADD', KEYS[1], '*', 'k', ARGV[2], 'v', ARGV[3], 'd', ARGV[4])
return {1, n + 1}
"""


def _failure(what: str, exc: redis.RedisError) -> QueueUnavailable:
    if isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
        return QueueUnavailable(f"write queue {what} failed: {exc}")  # the server may come back
    return QueueUnavailable(f"write queue {what} failed: {exc} ({type(exc).__name__})", hard=True)


def _entry(stream: str, fields: dict) -> Entry:
    try:
        return fields["k"], int(fields["v"]), fields["d"]
    except (KeyError, TypeError, ValueError):
        raise QueueUnavailable(
            f"write queue read failed: an entry of {stream} is not a queued write: {fields!r}", hard=True
        ) from None


class RedisStreamQueue:
    durable = True

    def __init__(self, url: str, stream: str, knobs: WriteBehindKnobs):
        self.url = url
        self.stream = stream
        self.capacity = knobs.capacity
        self.coalesce = knobs.coalesce
        self.client = redis_client(url)
        self._put = self.client.register_script(PUT_LUA)
        self._cond = threading.Condition()
        self._depth = 0  # the last depth known (a gauge when the server cannot be reached)
        self._wake: int | None = None  # the depth the waiting flusher wakes at (None: not waiting)
        self._freed = 0  # how many times done removed entries (a blocked writer's wake-up)
        self._taken: list[tuple[str, Entry]] = []  # (stream id, entry) of the last take

    def _call(self, what: str, call):
        try:
            return call()
        except redis.RedisError as exc:
            raise _failure(what, exc) from None

    def depth(self) -> int:
        try:
            self._depth = self.client.xlen(self.stream)
        except redis.RedisError:
            pass  # the last depth read (a gauge; the server cannot be reached)
        return self._depth

    def put(self, entry: Entry, block: bool, timeout: float) -> bool:
        """Queue an entry; False when the queue is full (rejected, or still full after
        ``timeout`` seconds when blocking). One round trip when there is room."""
        key, version, value = entry
        deadline = time.monotonic() + timeout
        while True:
            seen = self._freed
            added, depth = self._call(
                "push", lambda: self._put(keys=[self.stream], args=[self.capacity, key, version, value])
            )
            if added:
                wake = self._wake  # read once: the flusher resets it to None when it stops waiting
                if wake is not None and depth >= wake:
                    with self._cond:
                        self._depth = depth
                        self._cond.notify_all()
                else:
                    self._depth = depth
                return True
            self._depth = depth
            left = deadline - time.monotonic()
            if not block or left <= 0:
                return False
            with self._cond:
                if self._freed == seen:  # nothing removed since we looked: sleep until done() is
                    self._cond.wait(min(left, POLL_S))

    def take(self, n: int) -> list[Entry]:
        """The oldest ``n`` entries, left in the stream until ``done``."""
        if n <= 0:
            self._taken = []
            return []
        rows = self._call("read", lambda: self.client.xrange(self.stream, "-", "+", count=n))
        self._taken = [(sid, _entry(self.stream, fields)) for sid, fields in rows]
        return [entry for _, entry in self._taken]

    def done(self, batch: list[Entry]) -> None:
        """Remove the entries of ``batch`` (the last ``take``, or its beginning) by their ids."""
        ids = [sid for sid, _ in self._taken[: len(batch)]]
        if not ids:
            return

        def remove() -> int:
            pipe = self.client.pipeline(transaction=False)
            pipe.xdel(self.stream, *ids)
            pipe.xlen(self.stream)
            return pipe.execute()[1]

        depth = self._call("remove", remove)
        self._taken = self._taken[len(ids) :]
        with self._cond:
            self._depth = depth
            self._freed += 1
            self._cond.notify_all()

    def wait(self, timeout: float, threshold: int) -> None:
        """Sleep until ``threshold`` entries are queued or ``timeout`` passes (see the
        module docstring: woken by this process's puts, polling XLEN every ``POLL_S``)."""
        deadline = time.monotonic() + timeout
        self._wake = threshold
        try:
            depth = self.depth()
            while depth < threshold:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                with self._cond:
                    if self._depth < threshold:  # checked under the lock: a put's wake is not missed
                        self._cond.wait(min(left, POLL_S))
                    woken = self._depth >= threshold
                depth = self._depth if woken else self.depth()
        finally:
            self._wake = None

    def close(self) -> None:
        """Close the pool's connections (the stream stays: it is the durable queue)."""
        self.client.connection_pool.disconnect()


def redis_queue_depth(url: str, stream: str) -> int:
    """Entries queued in ``stream`` (0 if it does not exist), for tests and the audit;
    a server that cannot be reached raises ``QueueUnavailable``."""
    client = redis_client(url)
    try:
        return client.xlen(stream)
    except redis.RedisError as exc:
        raise _failure("length", exc) from None
    finally:
        client.connection_pool.disconnect()
