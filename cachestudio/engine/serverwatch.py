"""The run's servers watched (issue 24): a Redis or PostgreSQL that dies while the run goes
on is named, with its cause, as a failure of every lane that depends on it; it is never
restarted behind the run's back, and the end-of-run audit never reads a replacement.

Two kinds of server, two ways of knowing:

* the run's own (``RunServers.redis``, ``RunServers.pg``) are our children: each is
  watched by its process (:meth:`servers._Server.death`: "killed by signal 9 (SIGKILL)",
  or its exit status and its log's last line). A kill the ``crash-cache-server`` fault
  made is not a death: the fault said so and schedules the server's return.
* a given one (``--redis-url``, ``--postgres-url``) is someone else's process: a thread
  pings it every ``PING_S`` over one connection of its own. It is dead for the run when
  it has refused connections for ``REFUSED_S`` (a stopped server, a missing socket), or
  failed every ping for ``SILENT_S`` (a hung or unreachable one: as long as a silent lab
  is given, ``nodes.HUNG_S``). The ping never runs in the observer's round, which must
  return quickly.

A death is reported once (:meth:`ServerWatcher.poll`), at the time it was noticed; what
it leaves unjudged at the end is :meth:`ServerWatcher.unaudited`'s answer.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .nodes import HUNG_S

if TYPE_CHECKING:
    from collections.abc import Callable

    from .config import LaneConfig
    from .nodes import LabHandle, Lane
    from .storage import RunServers

PING_S = 0.5  # how often a given server is pinged
PING_TIMEOUT_S = 2.0  # the longest one ping waits (connect, and the reply)
REFUSED_S = 1.0  # refused this long (two pings at least): the given server is down
SILENT_S = HUNG_S  # no answer this long: the given server is lost to the run


@dataclass(frozen=True)
class Death:
    """A server gone while the run went on: which part of a lane it was (``part``: "cache"
    or "store"), the words that name it, and the lanes (labels) that used it."""

    part: str
    #: "the cache server (redis-server pid 812, no persistence) died at 2.41 s: killed by signal 9 (SIGKILL)"
    reason: str
    lanes: frozenset[str]

    def uses(self, cfg: LaneConfig) -> bool:
        return cfg.label in self.lanes


class _Ping(threading.Thread):
    """Pings one given server until stopped; ``down``: since when, and why, it has not
    answered (None while it answers)."""

    def __init__(self, name: str, ping: Callable[[], None], close: Callable[[], None]):
        super().__init__(name=f"cachestudio-ping-{name}", daemon=True)
        self._ping = ping
        self._close = close
        self.stopped = threading.Event()
        self.down: tuple[float, float, str] | None = None  # (first failure, last failure, error)
        self.refused = False

    def run(self) -> None:
        try:
            while not self.stopped.is_set():
                try:
                    self._ping()
                    self.down = None
                except Exception as exc:  # noqa: BLE001 - any failure to answer is what we watch for
                    now = time.monotonic()
                    first = self.down[0] if self.down is not None else now
                    self.refused = _refused(exc)
                    self.down = (first, now, _one_line(exc))
                self.stopped.wait(PING_S)
        finally:
            self._close()

    def lost_for(self) -> str | None:
        """Why the server counts as dead for the run, or None."""
        down = self.down
        if down is None:
            return None
        first, last, error = down
        if last - first >= (REFUSED_S if self.refused else SILENT_S):
            return error
        return None


def _refused(exc: Exception) -> bool:
    """A refused connection or a missing socket (the server is not there), as opposed to a
    timeout (it may only be slow)."""
    text = str(exc).lower()
    return (
        "timeout" not in text
        and "timed out" not in text
        and (isinstance(exc, ConnectionError) or "refused" in text or "no such file" in text or "connect" in text)
    )


def _one_line(exc: Exception) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


def _redis_ping(url: str) -> tuple[Callable[[], None], Callable[[], None]]:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = redis.Redis.from_url(
        url, socket_timeout=PING_TIMEOUT_S, socket_connect_timeout=PING_TIMEOUT_S, retry=Retry(NoBackoff(), 0)
    )

    def ping() -> None:
        client.ping()

    def close() -> None:
        client.connection_pool.disconnect()

    return ping, close


def _pg_ping(conninfo: str) -> tuple[Callable[[], None], Callable[[], None]]:
    import psycopg

    held: list[psycopg.Connection] = []

    def ping() -> None:
        if held and held[0].closed:
            held.clear()
        if not held:
            held.append(psycopg.connect(conninfo, connect_timeout=int(PING_TIMEOUT_S), autocommit=True))
        try:
            held[0].execute("SELECT 1")
        except psycopg.Error:
            held.pop().close()
            raise

    def close() -> None:
        for conn in held:
            conn.close()

    return ping, close


class ServerWatcher:
    """Watches a run's servers (see the module's docstring)."""

    def __init__(self, servers: RunServers):
        self.servers = servers
        self.deaths: list[Death] = []  # every one reported so far
        self._said: set[int] = set()  # the own servers whose death was reported
        self._pings: dict[str, _Ping] = {}  # "redis" / "pg" -> the given server's ping
        self._started = False

    def _start_pings(self) -> None:
        self._started = True
        s = self.servers
        if s.redis_url and s.need_redis:
            self._pings["redis"] = _Ping("redis", *_redis_ping(s.redis_url))
        if s.postgres_url and s.need_pg:
            self._pings["pg"] = _Ping("pg", *_pg_ping(s.postgres_url))
        for ping in self._pings.values():
            ping.start()

    def poll(self, now: float) -> list[Death]:
        """The deaths noticed since the last poll (``now``: the run's time, for the words)."""
        if not self._started:
            self._start_pings()
        found = []
        s = self.servers
        on_redis = [cfg for cfg in s.lanes if cfg.backends.cache == "redis"]
        on_pg = frozenset(cfg.label for cfg in s.lanes if cfg.backends.store == "postgresql")
        for persistence, server in sorted(s.redis.items()):
            if id(server) not in self._said and server.death() is not None:
                self._said.add(id(server))
                found.append(
                    Death(
                        "cache",
                        f"the cache server (redis-server pid {server.died_pid}, {server.persistence}) died at "
                        f"{now:.2f} s: {server.died}",
                        frozenset(cfg.label for cfg in on_redis if s.redis_persistence(cfg) == persistence),
                    )
                )
        if s.pg is not None and id(s.pg) not in self._said and s.pg.death() is not None:
            self._said.add(id(s.pg))
            words = f"the store server (postgres pid {s.pg.died_pid}) died at {now:.2f} s: {s.pg.died}"
            found.append(Death("store", words, on_pg))
        for name, ping in self._pings.items():
            error = ping.lost_for()
            if error is None or id(ping) in self._said:
                continue
            self._said.add(id(ping))
            part, what = ("cache", "the given Redis") if name == "redis" else ("store", "the given PostgreSQL")
            since = max(0.0, now - (time.monotonic() - ping.down[0])) if ping.down else now
            lanes = frozenset(cfg.label for cfg in on_redis) if part == "cache" else on_pg
            found.append(Death(part, f"{what} has not answered since {since:.2f} s ({error})", lanes))
        self.deaths += found
        return found

    def unaudited(self, cfg: LaneConfig) -> dict[str, str]:
        """For a lane: the parts ("cache", "store") whose server died during the run, each
        with the death's words. The audit reads neither: a new server is not the one the
        lane used (an empty cache, a store without the rows it could not write)."""
        return {d.part: d.reason for d in self.deaths if d.uses(cfg)}

    def stop(self) -> None:
        """Stop the pings (their connections close)."""
        for ping in self._pings.values():
            ping.stopped.set()
        for ping in self._pings.values():
            ping.join(PING_TIMEOUT_S + 1)


class ServerWatching:
    """The server watch as methods of :class:`runner.Run` (one of its bases).

    The ``if TYPE_CHECKING:`` block below is this mixin's contract with its host: what it
    uses of the host's state and methods, declared for the type checker only."""

    if TYPE_CHECKING:
        lanes: list[Lane]
        server_watch: ServerWatcher

        def now(self) -> float: ...
        def _fail(self, lane: LabHandle | Lane, kind: str, reason: str) -> None: ...

    def _watch_servers(self) -> None:
        """A server that died since the last round: a failure (``server-died``) of every
        lane that depends on it, with its cause. Nothing restarts it."""
        for death in self.server_watch.poll(self.now()):
            for lane in self.lanes:
                if death.uses(lane.cfg):
                    self._fail(
                        lane,
                        "server-died",
                        f"{lane.cfg.label}: {death.reason}; not restarted: its {death.part} calls fail from here on",
                    )
