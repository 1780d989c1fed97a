"""The cache on a real Redis server: a drop-in for ``backends.CacheBackend``.

Same interface, same promises: values are stored as ``"<version>|<value>"`` text,
``get`` returns ``(version, value)`` or None, a writer's set or delete under leases
also drops the key's lease (``backends.LEASE`` prefix) atomically, and failures are
``CacheUnavailable``: a refused or timed-out connection is transient (``hard=False``:
a crash fault restarts the server, and the same object works again), an entry that is
not a versioned value is hard.

Atomicity comes from Redis itself, not from client-side locks:

* ``get_or_lease`` is one Lua script (GET, and on a miss ``SET lease:key token NX PX``):
  two separate commands would let a writer's set land between the GET and the SET NX,
  and the lease would then be handed out for a key that already has a value.
* ``set_leased`` / ``release`` are compare-and-set / compare-and-delete Lua scripts
  (EVALSHA through ``register_script``; redis-py reloads a script a restarted server
  has forgotten).
* a writer's set/delete under leases is a MULTI/EXEC pipeline (DEL lease + SET/DEL).

How eviction differs from diskcache: diskcache limits the size of *this* cache's
values and evicts by its own policy on a set (or in the culler). Redis limits the
memory of the *whole server* (``maxmemory``: values, keys, overhead, every lane that
shares the server, roughly 1 MiB of baseline) and evicts by a server-wide
``maxmemory-policy``, approximately (it samples keys). On the run's own server
(``configure``) the lab's knobs are mapped onto that config in ``apply`` and at start,
so the lane applied last decides for all lanes on one server, and the mapping is
approximate:

* least-recently-stored -> allkeys-lru (Redis has no insertion-order policy; a SET
  counts as a use, so for entries never read this is least recently stored; a read
  refreshes an entry where diskcache would not)
* least-recently-used   -> allkeys-lru
* least-frequently-used -> allkeys-lfu
* none                  -> noeviction (diskcache then grows past its limit; Redis
  refuses writes instead: an OOM error, counted as a hard ``CacheUnavailable``)

A server that crashed comes back with its default config (``CONFIG SET`` is not
persisted), so the mapping is applied again on the first call after a connection error.

A server the run was given (``--redis-url``) is someone else's: nothing here changes its
config (no ``CONFIG SET``: a ``maxmemory`` and an ``allkeys-*`` policy left behind would
evict its owner's keys). Its own settings apply -- :func:`redis_settings` reads them
(INFO, and CONFIG GET where it is allowed) and :func:`describe_settings` states them,
with what the size knob means there: nothing.
``start_culler``/``stop_culler`` do nothing: Redis expires and evicts by itself.
"""

from __future__ import annotations

import itertools
import os
import re
import secrets

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .backends import LEASE, MIB, CacheFaultLayer, CacheUnavailable, parse_entry
from .config import CacheKnobs, Latency

#: Seconds a call waits for the server (connect, and each reply): a dead server is a
#: counted failure quickly, not a stuck client thread.
SOCKET_TIMEOUT_S = 1.0

#: The lab's eviction knob -> Redis' maxmemory-policy (see the module docstring).
MAXMEMORY_POLICY = {
    "least-recently-stored": "allkeys-lru",
    "least-recently-used": "allkeys-lru",
    "least-frequently-used": "allkeys-lfu",
    "none": "noeviction",
}

#: KEYS: key, lease key. ARGV: token, lease ttl (ms). Returns {1, value} on a hit,
#: {0, token} when the lease was given, {0, ""} when someone else holds it.
GET_OR_LEASE_LUA = """
local v = redis.call('GET', KEYS[1])
if v then return {1, v} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {0, ARGV[1]} end
return {0, ''}
"""

#: KEYS: key, lease key. ARGV: token, "<version>|<value>", ttl (ms, 0: none).
SET_LEASED_LUA = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
if tonumber(ARGV[3]) > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[2])
end
redis.call('DEL', KEYS[2])
return 1
"""

#: KEYS: lease key. ARGV: token. Deletes the lease only if it is still the token's.
RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _glob_escape(prefix: str) -> str:
    """``prefix`` as a literal in a Redis MATCH pattern."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", prefix)


def redis_client(url: str) -> redis.Redis:
    """A thread-safe client over a connection pool. One retry without backoff: a pooled
    connection that a restarted server dropped is reconnected once, at once; a server
    that is down fails the call at once (redis-py's default retries back off for seconds)."""
    pool = redis.ConnectionPool.from_url(
        url,
        decode_responses=True,
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=SOCKET_TIMEOUT_S,
        retry=Retry(NoBackoff(), 1),
    )
    return redis.Redis(connection_pool=pool)


def _failure(what: str, exc: redis.RedisError) -> CacheUnavailable:
    if isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
        return CacheUnavailable(f"cache {what} failed: {exc}")  # the server may come back
    return CacheUnavailable(f"cache {what} failed: {exc} ({type(exc).__name__})", hard=True)


class RedisCache(CacheFaultLayer):
    """The cache as keys on a Redis server, under ``prefix`` (lanes share a server).

    redis-py's client is thread-safe (a connection per call, from its pool), so client
    threads share this object.
    """

    def __init__(self, url: str, knobs: CacheKnobs, latency: Latency, prefix: str = "", configure: bool = False):
        self.url = url
        self.prefix = prefix
        #: Whether the size limit and eviction knobs may be set on the server (CONFIG SET):
        #: only on the run's own server; a given one keeps its own settings.
        self.configure = configure
        self.client = redis_client(url)
        self._get_or_lease = self.client.register_script(GET_OR_LEASE_LUA)
        self._set_leased = self.client.register_script(SET_LEASED_LUA)
        self._release = self.client.register_script(RELEASE_LUA)
        self.set_latency(latency)
        self._tokens = itertools.count(1)
        self._token_prefix = f"{os.getpid()}-{secrets.token_hex(4)}-"
        self.config_error = ""  # why the size limit and policy could not be applied
        self.cull_failures = 0  # as CacheBackend's (Redis culls by itself: always 0)
        #: The server config still has to be (re)applied: at start, and after a
        #: connection error (a restarted server forgot it).
        self._configure = configure
        self.apply(knobs)

    # -- knobs and the server config --------------------------------------------------

    def apply(self, knobs: CacheKnobs) -> None:
        """Apply TTL (to entries set from now on), protection, and the size limit and
        eviction policy (server-wide: see the module docstring) live."""
        self.knobs = knobs
        self.ttl_ms = int(round(knobs.ttl_s * 1000)) if knobs.ttl_s else 0
        if knobs.ttl_s and not self.ttl_ms:
            self.ttl_ms = 1
        self.expire = knobs.ttl_s or None
        self.protection = knobs.stampede
        self.lease_ttl = knobs.lease_ttl_s
        self._lease_ms = max(1, int(round(knobs.lease_ttl_s * 1000)))
        if not self.configure:
            return  # a given server: its own maxmemory and policy apply
        self._configure = True
        try:
            self._apply_config()
        except CacheUnavailable:
            pass  # the server is down: applied on the first call that reaches it

    def _apply_config(self) -> None:
        """CONFIG SET the size limit and policy. A server that refuses CONFIG (a managed
        Redis may rename it) keeps its own: said in ``config_error``, not a failed call.
        Never on a given server (``configure`` off)."""
        self._configure = False
        if not self.configure:
            return
        try:
            self.client.config_set("maxmemory", int(self.knobs.size_limit_mb * MIB))
            self.client.config_set("maxmemory-policy", MAXMEMORY_POLICY[self.knobs.eviction])
            self.config_error = ""
        except redis.exceptions.ResponseError as exc:
            self.config_error = f"the server refused CONFIG SET: {exc}"
        except redis.RedisError as exc:
            self._configure = True  # not reached: try again on the next call
            raise _failure("config", exc) from None

    def start_culler(self) -> None:
        """Nothing to do: Redis expires and evicts by itself."""

    def stop_culler(self) -> None:
        """Nothing to do (see ``start_culler``)."""

    def _call(self, what: str, call, delay: bool = True):
        """Run one Redis call; its failures become counted ones."""
        if delay:
            self._lag()
        try:
            if self._configure:
                self._apply_config()
            return call()
        except redis.RedisError as exc:
            if isinstance(exc, redis.exceptions.ConnectionError):
                self._configure = self.configure
            raise _failure(what, exc) from None

    # -- plain cache operations --------------------------------------------------------

    def get(self, key: str) -> tuple[int, str] | None:
        return parse_entry(key, self._call("get", lambda: self.client.get(self.prefix + key)))

    def set(self, key: str, version: int, value: str) -> None:
        """A writer's set. Under leases it also invalidates any lease on the key, in one
        MULTI/EXEC: a reader holding that lease can no longer set its older value."""
        self._write("set", key, lambda p: p.set(self.prefix + key, f"{version}|{value}", px=self.ttl_ms or None))

    def delete(self, key: str) -> None:
        """A writer's invalidation; under leases it invalidates the key's lease too."""
        self._write("delete", key, lambda p: p.delete(self.prefix + key))

    def _write(self, what: str, key: str, change) -> None:
        def run():
            if self.protection == "lease":
                pipe = self.client.pipeline(transaction=True)
                pipe.delete(self.prefix + LEASE + key)
                change(pipe)
                pipe.execute()
            else:
                change(self.client)

        self._call(what, run)

    def expire_now(self, key: str) -> None:
        """The key expires (as its TTL would make it): the entry and any lock or lease go."""
        self._call("expire", lambda: self.client.delete(self.prefix + key, self.prefix + LEASE + key), delay=False)

    # -- stampede protection: single-flight lock or lease ------------------------------

    def get_or_lease(self, key: str) -> tuple[tuple[int, str] | None, str | None]:
        """Atomically (one Lua script): the cached value, or else a lease (or lock) token
        if nobody holds one. ``(None, None)``: a miss while someone else is fetching."""
        token = f"{self._token_prefix}{next(self._tokens)}"
        hit, raw = self._call(
            "get",
            lambda: self._get_or_lease(
                keys=[self.prefix + key, self.prefix + LEASE + key], args=[token, self._lease_ms]
            ),
        )
        if hit:
            return parse_entry(key, raw), None
        return None, (raw or None)

    def set_leased(self, key: str, token: str, version: int, value: str) -> bool:
        """The lease holder's set: it lands only if the lease is still the holder's (a
        write since the lease was given invalidated it). Returns whether it landed."""
        landed = self._call(
            "set",
            lambda: self._set_leased(
                keys=[self.prefix + key, self.prefix + LEASE + key], args=[token, f"{version}|{value}", self.ttl_ms]
            ),
        )
        return bool(landed)

    def release(self, key: str, token: str) -> None:
        """Give a lock or lease back (if it is still ours)."""
        try:
            self._call("release", lambda: self._release(keys=[self.prefix + LEASE + key], args=[token]), delay=False)
        except CacheUnavailable:
            pass  # it expires on its own after lease_ttl

    def clear(self) -> None:
        """Delete this cache's keys (SCAN + UNLINK of the prefix), never the whole server's."""

        def run():
            batch = []
            for k in self.client.scan_iter(match=_glob_escape(self.prefix) + "*", count=1000):
                batch.append(k)
                if len(batch) >= 1000:
                    self.client.unlink(*batch)
                    batch = []
            if batch:
                self.client.unlink(*batch)

        self._call("clear", run, delay=False)

    def close(self) -> None:
        """Nothing per thread: the pool's connections are shared and go back to it after
        each call (the lab calls this from every short-lived reader thread)."""

    def shutdown(self) -> None:
        """Close every connection of the pool (the owner, when the lab ends)."""
        self.client.connection_pool.disconnect()


def redis_cache_versions(url: str, prefix: str = "") -> dict[str, int]:
    """Version of every live (unexpired) entry under ``prefix``, for the audit; keys are
    given without the prefix, and leases (values without a version) are left out."""
    out: dict[str, int] = {}
    client = redis_client(url)
    try:
        keys = [
            k
            for k in client.scan_iter(match=_glob_escape(prefix) + "*", count=1000)
            if not k[len(prefix) :].startswith(LEASE)
        ]
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            for k, raw in zip(chunk, client.mget(chunk)):
                if isinstance(raw, str) and "|" in raw:
                    version = raw.partition("|")[0]
                    if version.isdigit():
                        out[k[len(prefix) :]] = int(version)
    finally:
        client.connection_pool.disconnect()
    return out


# -- a given server's settings: read and stated, never changed ------------------------------


def redis_settings(url: str, shown: str) -> dict[str, str]:
    """What a given Redis server is set to, read (never set): its version, ``maxmemory``
    (bytes, "0": no limit), ``maxmemory-policy``, whether it appends to an AOF (``aof``:
    "1" or "0") and, where CONFIG GET is allowed (a managed Redis may forbid it),
    ``appendfsync`` and ``save``. ``shown``: the URL as messages show it (no password).
    A server that cannot be reached: ConfigError, one line."""
    from .config import ConfigError

    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2, decode_responses=True)
    try:
        info = client.info("everything")
        found = {
            "version": str(info.get("redis_version", "?")),
            "maxmemory": str(info.get("maxmemory", "?")),
            "maxmemory-policy": str(info.get("maxmemory_policy", "?")),
            "aof": str(info.get("aof_enabled", "?")),
        }
        try:
            for name in ("appendfsync", "save"):
                found.update({k: str(v) for k, v in client.config_get(name).items()})
        except redis.exceptions.ResponseError:
            pass  # CONFIG is forbidden or renamed here: INFO's part is what is known
        return found
    except (redis.RedisError, ValueError) as exc:
        raise ConfigError(f"--redis-url {shown}: cannot reach the server ({exc})") from None
    finally:
        client.connection_pool.disconnect()


def describe_settings(settings: dict[str, str]) -> str:
    """A given Redis's persistence and memory limit, as a lane's backends say them:
    " · AOF everysec · maxmemory 0 (no limit), noeviction; the cache size limit is not
    applied on a given server"."""
    if settings.get("aof") == "1":
        persistence = f"AOF {settings.get('appendfsync', '(fsync policy not readable)')}"
    elif settings.get("aof") == "0":
        snapshots = settings.get("save")
        persistence = "no AOF" + (f", snapshots (save {snapshots})" if snapshots else "")
    else:
        persistence = "persistence unknown"
    limit = settings.get("maxmemory", "?")
    if limit == "0":
        limit = "0 (no limit)"
    elif limit.isdigit():
        limit = f"{int(limit) / MIB:,.0f} MiB"
    return (
        f" · {persistence} · maxmemory {limit}, {settings.get('maxmemory-policy', '?')}; "
        "the cache size limit is not applied on a given server"
    )


def check_durable(lane: str, settings: dict[str, str], shown: str) -> None:
    """A durable write-behind queue (a stream) needs a Redis that keeps what it
    acknowledged: an append-only file. On a given server without one, refuse (one line,
    ConfigError): a kill of that server would lose every queued write."""
    from .config import ConfigError

    if settings.get("aof") == "1":
        return
    snapshots = settings.get("save")
    if settings.get("aof") == "0":
        has = "has no append-only file (appendonly no" + (f", snapshots only: save {snapshots})" if snapshots else ")")
    else:
        has = "does not say whether it keeps an append-only file (no aof_enabled in INFO)"
    raise ConfigError(
        f"{lane}: a durable write-behind queue needs a Redis that persists it, but {shown} {has}: its queued "
        "writes would be lost with the server; use "
        "--queue volatile, a Redis with appendonly yes, or no --redis-url (the run's own server "
        "then keeps an AOF, fsynced before each reply)"
    )
