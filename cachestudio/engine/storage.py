"""The seam between a lane and what it runs on (issue 14): the cache on diskcache or
Redis, the store on SQLite or PostgreSQL, and the run's own servers.

Nothing else in the engine names a backend. The lab opens its parts with
:func:`open_cache`, :func:`open_store` and :func:`open_queue`; the observer does
everything it does to a lane's data through :class:`LaneStorage` (the check before the
run, the live version reads, the evidence copy at a kill, the outage lock, the wipe of a
volatile cache, the store's rows kept as ``DIR/<lane>/store.sqlite`` at the end), and
gets its servers from :class:`RunServers`.

Whatever the store, the run directory reads the same: the final rows are the ``items``
table of ``DIR/<lane>/store.sqlite`` and the store's commit log (every committed version
with its writer, and a ``death`` row at each kill, in the store's own commit order) its
``commits`` table (for PostgreSQL, both copied there at the end), so one checker recomputes
the auditor's verdicts of every run from ``--history`` and the directory. The store at a
node's death is computed from that log (:meth:`LaneStorage.store_at_death`), never from a
copy taken after the kill (the surviving nodes write meanwhile); the rows it computed are
kept as ``DIR/<lane>/evidence/store-at-kill-inc-NNNN.sqlite`` (evidence, not the judge).

Lanes share the run's servers, apart: on Redis each lane's keys live under its prefix
``cs:<run>:<lane>:``, on PostgreSQL each lane has a schema ``cs_<run>_<lane>`` with its
``items`` table. On a server the run was given (``--redis-url``, ``--postgres-url``) the
run's keys and schemas are removed at the end (their rows are kept in the run
directory); the server itself is never stopped, nor crashed.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .backends import (
    CacheBackend,
    OutageLock,
    Store,
    Writer,
    begin_locked,
    cache_versions,
    check_sqlite_file,
    mark_death,
    server_writer,
    store_at_death,
    store_at_mark,
    store_versions,
    write_items_file,
)
from .config import ConfigError, LaneConfig
from .queue import DurableQueue, VolatileQueue
from .strategykinds import queues_writes

if TYPE_CHECKING:
    import psycopg

    from .servers import PostgresServer, RedisServer


@dataclass(frozen=True)
class Endpoints:
    """Where one node of a lane finds its backends (resolved by the run; picklable)."""

    redis_url: str = ""  # the lane's Redis (its cache, and its nodes' durable queues)
    postgres: str = ""  # libpq conninfo of the lane's PostgreSQL database
    prefix: str = ""  # the lane's keys on Redis
    schema: str = ""  # the lane's schema on PostgreSQL
    node: int = 0  # which app node of the lane this is
    nodes: int = 1
    own_redis: bool = False  # the run's own redis-server: the cache may set its maxmemory


# ----------------------------------------------------------------------------- lab side


def open_cache(cfg: LaneConfig, paths, ep: Endpoints):
    if cfg.backends.cache == "redis":
        from .redis_cache import RedisCache  # a lab without Redis does not pay for its import

        return RedisCache(ep.redis_url, cfg.cache, cfg.latency, prefix=ep.prefix, configure=ep.own_redis)
    return CacheBackend(paths.cache, cfg.cache, cfg.latency)


def open_store(cfg: LaneConfig, paths, ep: Endpoints, inc: int = 0):
    """The node's store; its commits are logged as incarnation ``inc`` of node ``ep.node``."""
    writer = Writer(cfg.label, ep.node, inc)
    if cfg.backends.store == "postgresql":
        from .pg_store import PostgresStore

        return PostgresStore(ep.postgres, cfg.store, cfg.latency, schema=ep.schema, writer=writer)
    return Store(paths.store, cfg.store, cfg.latency, writer=writer)


def durable_stream(cfg: LaneConfig) -> bool:
    """Whether the lane keeps its write-behind queue in a Redis stream (durable, cache on
    Redis): the Redis server then has to keep it (an append-only file)."""
    return cfg.backends.cache == "redis" and queues_writes(cfg.strategy) and cfg.write_behind.durable


def queue_stream(ep: Endpoints) -> str:
    """The Redis key of a node's durable write-behind queue."""
    return f"{ep.prefix}queue:node{ep.node}"


def open_queue(cfg: LaneConfig, paths, ep: Endpoints):
    """The node's write-behind queue: in memory, or durable and replayed by the node's
    next incarnation -- on Redis (a stream) when the lane's cache is, else on disk."""
    wb = cfg.write_behind
    if not wb.durable:
        return VolatileQueue(wb)
    if cfg.backends.cache == "redis":
        from .redis_queue import RedisStreamQueue

        return RedisStreamQueue(ep.redis_url, queue_stream(ep), wb)
    return DurableQueue(paths.queue_of(ep.node), wb)


def lab_imports(cfg: LaneConfig) -> tuple[str, ...]:
    """The modules a lab of this lane imports when it opens its backends (a standby lab
    imports them ahead of need)."""
    names: list[str] = []
    if cfg.backends.cache == "redis":
        names += ["redis", f"{__package__}.redis_cache", f"{__package__}.redis_queue"]
    if cfg.backends.store == "postgresql":
        names += ["psycopg", f"{__package__}.pg_store"]
    return tuple(names)


# ------------------------------------------------------------------------ observer side


class PgOutageLock:
    """A real DB outage on PostgreSQL: our own connection holds ``LOCK TABLE items IN
    ACCESS EXCLUSIVE MODE`` in an open transaction; readers and writers wait on it until
    their ``lock_timeout`` and fail (counted)."""

    def __init__(self, ep: Endpoints):
        self.ep = ep
        self.conn: psycopg.Connection | None = None

    def acquire(self, timeout_s: float = 5.0) -> None:
        import psycopg

        from .pg_store import CONNECT_TIMEOUT_S, search_path

        conn = psycopg.connect(
            self.ep.postgres,
            autocommit=False,
            connect_timeout=CONNECT_TIMEOUT_S,
            options=search_path(self.ep.schema).strip(),
        )
        try:
            conn.execute(f"SET lock_timeout = {max(1, int(timeout_s * 1000))}")
            conn.execute("LOCK TABLE items IN ACCESS EXCLUSIVE MODE")
        except BaseException:
            conn.close()
            raise
        self.conn = conn

    def rows(self, columns: str = "key, version") -> list[tuple]:
        return self.conn.execute(f"SELECT {columns} FROM items").fetchall()

    def versions(self) -> dict[str, int]:
        return dict(self.rows())

    def release(self) -> None:
        """Let go of the lock; the deaths marked in the commit log meanwhile commit."""
        if self.conn is not None:
            try:
                self.conn.commit()
            finally:
                self.conn.close()
                self.conn = None


class CommitFence:
    """Commits to a lane's store stopped around a kill, so that the store itself orders the
    death: taken before the SIGKILL, the death rows inserted through it once the node is
    reaped, then released (COMMIT). A commit of another node is then either before the
    fence (before the death) or after it; the dead node's own statement that was waiting
    on the fence may still commit after it (PostgreSQL: its server process does not know
    yet that its client is gone), and is counted as its own, in any order.

    PostgreSQL: the lane's kept connection holds ``LOCK TABLE items IN SHARE MODE`` in an
    open transaction (every write to ``items`` waits, and with it the commit log, which is
    written in the same statement; reads go on). SQLite: ``BEGIN IMMEDIATE`` on a connection
    of the fence's own (the write lock; readers go on). The other nodes' writes wait on it
    within their own lock timeout (the store knob ``timeout_ms``)."""

    def __init__(self, storage: LaneStorage):
        self.storage = storage
        self.conn = None  # holding the lock (its ``conn`` is what mark_death writes through)
        self._since = 0.0
        self.held_s = 0.0  # how long it held the lock (set by release)

    def take(self, timeout_s: float) -> None:
        """Take the lock within ``timeout_s`` (an error if it cannot: the caller says so)."""
        st = self.storage
        if st.pg:
            conn = st._marker(max(timeout_s, 1.0))
            try:
                conn.execute("BEGIN")
                conn.execute(f"SET LOCAL lock_timeout = {max(1, int(timeout_s * 1000))}")
                conn.execute("LOCK TABLE items IN SHARE MODE")
            except BaseException:
                if not (conn.closed or conn.broken):
                    conn.execute("ROLLBACK")
                raise
        else:
            conn = begin_locked(st.paths.store, "IMMEDIATE", timeout_s)
            # the COMMIT of a rollback journal waits for the readers (bounded)
            conn.execute(f"PRAGMA busy_timeout = {int(FENCE_COMMIT_S * 1000)}")
        self.conn = conn
        self._since = time.monotonic()

    def release(self) -> None:
        """COMMIT (the death rows go in; the writers go on). Raises if the commit failed:
        the deaths marked through it are then not in the log."""
        conn, self.conn = self.conn, None
        if conn is None:
            return
        try:
            conn.execute("COMMIT")
            self.held_s = time.monotonic() - self._since
        finally:
            if not self.storage.pg:
                conn.close()


#: The longest a fence's COMMIT waits for readers (a rollback journal's exclusive lock).
FENCE_COMMIT_S = 2.0


class LaneStorage:
    """What the observer reads of, and does to, one lane's cache and store."""

    def __init__(self, cfg: LaneConfig, paths, ep: Endpoints):
        self.cfg = cfg
        self.paths = paths
        self.ep = ep
        self._pg_conn: psycopg.Connection | None = None  # the death marks' (PostgreSQL)

    @property
    def pg(self) -> bool:
        return self.cfg.backends.store == "postgresql"

    @property
    def redis(self) -> bool:
        return self.cfg.backends.cache == "redis"

    def check(self) -> None:
        """Before anything is touched: local files that would be in the way."""
        if not self.pg:
            check_sqlite_file(self.paths.store, "SQLite file")
        if not self.redis:
            check_sqlite_file(self.paths.cache / "cache.db", "cache database")

    def prepare(self, nodes: int = 1) -> None:
        """Make the lane's schema and table before its nodes start (two nodes creating
        one schema at once would race). A lane of several nodes on the embedded pair gets
        its SQLite file and its cache directory made here too: nodes that create one file
        at once could see it half made (one lab refusing a file another is writing)."""
        if nodes > 1 and not self.pg:
            Store(self.paths.store, self.cfg.store, self.cfg.latency).close()
        if nodes > 1 and not self.redis:
            CacheBackend(self.paths.cache, self.cfg.cache, self.cfg.latency).close()
        if self.pg:
            from .backends import StoreUnavailable
            from .pg_store import PostgresStore

            store = PostgresStore(self.ep.postgres, self.cfg.store, self.cfg.latency, schema=self.ep.schema)
            try:
                store.ensure_table()
            except StoreUnavailable as exc:
                raise ConfigError(f"{self.cfg.label}: PostgreSQL: {exc}") from None
            finally:
                store.close()
            try:
                self._marker(5.0)  # open before the run: a kill's mark then costs a round trip
            except Exception:  # noqa: BLE001 - opened at the first kill instead
                self.close()

    def versions(self, timeout_s: float) -> dict[str, int]:
        """Every row's version now (bounded by ``timeout_s``: a lock makes it fail)."""
        if self.pg:
            from .pg_store import pg_store_versions

            return pg_store_versions(self.ep.postgres, schema=self.ep.schema, timeout_ms=max(1.0, timeout_s * 1000))
        return store_versions(self.paths.store, timeout_s=timeout_s)

    def cache_versions(self) -> dict[str, int]:
        """The cache's live entries' versions now. A Redis cache's are also written to
        ``DIR/<lane>/cache-at-end.json`` (the run directory then holds what the audit
        read: a diskcache cache is its own directory there)."""
        if self.redis:
            from .redis_cache import redis_cache_versions

            versions = redis_cache_versions(self.ep.redis_url, self.ep.prefix)
            self.paths.cache_at_end.write_text(json.dumps(versions, sort_keys=True) + "\n")
            return versions
        return cache_versions(self.paths.cache)

    def outage_lock(self):
        return PgOutageLock(self.ep) if self.pg else OutageLock(self.paths.store)

    def fence(self) -> CommitFence:
        """A fence that stops the store's commits around a kill (:class:`CommitFence`)."""
        return CommitFence(self)

    def mark_death(self, node: int, inc: int, lock=None, timeout_s: float = 5.0):
        """Mark the death of node ``node``'s incarnation ``inc`` in the store's commit log,
        right after the kill (the nearer the kill, the fewer later commits of the other
        nodes are ordered before it). Returns the mark, for :meth:`store_at_death`.
        ``lock``: the outage's or a :class:`CommitFence` (its connection holds the store's
        lock in an open transaction: marked through it, committed when it lets go)."""
        dead = Writer(self.cfg.label, node, inc)
        held = lock.conn if lock is not None else None
        if not self.pg:
            return mark_death(self.paths.store, dead, held, timeout_s)
        from .pg_store import pg_mark_death

        return pg_mark_death(held if held is not None else self._marker(timeout_s), dead)

    def mark_server_death(self, death: int, lock=None, timeout_s: float = 5.0):
        """Mark the ``death``-th death of the cache server holding the lane's durable queues
        in the store's commit log, as :meth:`mark_death` marks a node's."""
        w = server_writer(self.cfg.label, death)
        return self.mark_death(w.node, w.inc, lock, timeout_s)

    def store_at_server_death(self, death: int, delivered: set[tuple[str, int]], timeout_s: float) -> dict[str, int]:
        """At the end (the log complete in ``DIR/<lane>/store.sqlite``, :meth:`keep_store`):
        the store at the ``death``-th death of the lane's cache server, with the commits of
        the ``delivered`` writes whenever they landed (``backends.store_at_mark``)."""
        return store_at_mark(self.paths.store, server_writer(self.cfg.label, death), delivered, timeout_s)

    def queued(self, before_ms: int) -> set[tuple[str, int]]:
        """(key, version) of every entry of the lane's durable queue streams (one per node)
        added before ``before_ms`` (the Redis server's clock: a stream id's first part)."""
        from .redis_cache import redis_client

        client = redis_client(self.ep.redis_url)
        try:
            out = set()
            for node in range(self.ep.nodes):
                stream = queue_stream(replace(self.ep, node=node))
                for _sid, fields in client.xrange(stream, "-", str(before_ms - 1)):
                    out.add((str(fields["k"]), int(fields["v"])))
            return out
        finally:
            client.connection_pool.disconnect()

    def _marker(self, timeout_s: float):
        """The lane's own PostgreSQL connection for death marks, kept open (a new one costs
        a server process: milliseconds in which the other nodes go on committing)."""
        conn = self._pg_conn
        if conn is None or conn.closed or conn.broken:
            from .pg_store import pg_connect

            conn = self._pg_conn = pg_connect(self.ep.postgres, self.ep.schema, max(1.0, timeout_s * 1000))
        return conn

    def store_at_death(
        self, node: int, inc: int, mark, dest: Path, lock=None, timeout_s: float = 5.0
    ) -> dict[str, int]:
        """The store as it was at the death ``mark`` (:meth:`mark_death`), computed from the
        commit log: every commit of the dead writer and every other commit ordered before
        the mark; the rows are kept in the SQLite file ``dest`` as evidence."""
        dead = Writer(self.cfg.label, node, inc)
        held = lock.conn if lock is not None else None
        if not self.pg:
            versions = store_at_death(self.paths.store, dead, mark, held, timeout_s)
        else:
            from .pg_store import pg_store_at_death

            conn = held if held is not None else self._marker(timeout_s)
            versions = pg_store_at_death(conn, self.ep.schema, dead, mark, timeout_s=timeout_s)
        write_items_file([(k, v, None, None) for k, v in sorted(versions.items())], dest)
        return versions

    def close(self) -> None:
        """Close the lane's own connection, if it has one."""
        if self._pg_conn is not None:
            try:
                self._pg_conn.close()
            except Exception:  # noqa: BLE001 - closing our own connection; it is gone either way
                pass
            self._pg_conn = None

    def wipe_volatile_cache(self) -> bool:
        """At a crash of the lane's nodes: a cache that lives in the node (a volatile
        diskcache) is gone. A Redis cache is a server of its own: the node's death does
        not touch it (crash the cache server for that)."""
        if self.redis or self.cfg.cache.persistent or not self.paths.cache.exists():
            return False
        shutil.rmtree(self.paths.cache, ignore_errors=True)
        return True

    def keep_store(self, timeout_s: float, copy_s: float = 60.0) -> None:
        """At the end: a remote store's rows and commit log as ``DIR/<lane>/store.sqlite``
        (an embedded store is that file, its log in it). ``timeout_s``: the longest it waits
        for a lock; ``copy_s``: for the copy itself (a long run's log has a row per write)."""
        self.close()
        if self.pg:
            from .pg_store import pg_commit_rows, pg_connect, pg_rows

            with pg_connect(self.ep.postgres, self.ep.schema, max(1.0, copy_s * 1000)) as conn:
                conn.execute(f"SET lock_timeout = {max(1, int(timeout_s * 1000))}")
                with conn.transaction():  # one snapshot: the rows and the log agree
                    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                    rows = pg_rows(conn, "key, version, value, updated_at")
                    commits = pg_commit_rows(conn)
            write_items_file(rows, self.paths.store, commits)

    def forget(self, redis: bool, pg: bool) -> None:
        """Remove the lane's keys (``redis``) and schema (``pg``) from servers the run was given."""
        if redis and self.redis:
            from .redis_cache import RedisCache

            cache = RedisCache(self.ep.redis_url, self.cfg.cache, self.cfg.latency, prefix=self.ep.prefix)
            try:
                cache.clear()
            finally:
                cache.shutdown()
        if pg and self.pg:
            from psycopg import sql

            from .pg_store import pg_connect

            with pg_connect(self.ep.postgres) as conn:
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.ep.schema)))


def _redact(url: str) -> str:
    """A URL or conninfo without its password (it is shown and written down)."""
    import re

    url = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)
    return re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", url)


class RunServers:
    """The servers a run's lanes need: given (a URL: used, never stopped, never
    reconfigured: its settings are read and stated) or the run's own (started in
    ``DIR/servers`` on unix sockets, stopped at the end: at most one redis-server per
    persistence -- :meth:`redis_persistence` -- and one PostgreSQL)."""

    def __init__(self, root: Path, lanes: list[LaneConfig], redis_url: str = "", postgres_url: str = ""):
        self.root = Path(root)
        self.lanes = lanes
        self.redis_url = redis_url
        self.postgres_url = postgres_url
        self.run_id = secrets.token_hex(3)
        self.need_redis = sorted({self.redis_persistence(cfg) for cfg in lanes if cfg.backends.cache == "redis"})
        self.need_pg = any(cfg.backends.store == "postgresql" for cfg in lanes)
        #: the run's own redis-servers by persistence ("", "everysec", "always")
        self.redis: dict[str, RedisServer] = {}
        self.pg: PostgresServer | None = None  # the run's own PostgreSQL
        self._versions: dict[str, str] = {}
        #: A given Redis's settings as read at the check (``redis_cache.redis_settings``).
        self.given_redis: dict[str, str] = {}

    @staticmethod
    def redis_persistence(cfg: LaneConfig) -> str:
        """Which of the run's own redis-servers a Redis lane uses: "always" (AOF fsynced
        before each reply) when it keeps a durable write-behind queue there -- a write it
        acknowledged must survive the server's kill --, "everysec" with ``backends.aof``,
        else "" (no persistence)."""
        if durable_stream(cfg):
            return "always"
        return "everysec" if cfg.backends.aof else ""

    @property
    def any(self) -> bool:
        return bool(self.need_redis or self.need_pg)

    def check(self) -> None:
        """Before the run touches anything: a given server answers (and says its version).
        One line (ConfigError). What needs no server is :func:`check_backends`'s."""
        check_backends(self.lanes, self.redis_url, self.postgres_url)
        if self.need_redis and self.redis_url:
            from .redis_cache import check_durable, redis_settings

            self.given_redis = redis_settings(self.redis_url, _redact(self.redis_url))
            self._versions["redis"] = self.given_redis["version"]
            for cfg in self.lanes:
                if durable_stream(cfg):
                    check_durable(cfg.label, self.given_redis, _redact(self.redis_url))
        if self.need_pg and self.postgres_url:
            self._versions["pg"] = pg_version(self.postgres_url)

    def _redis_server(self, persistence: str) -> RedisServer:
        """The run's own redis-server of that persistence (made, not started)."""
        if persistence not in self.redis:
            from .servers import RedisServer

            name = {"": "redis", "everysec": "redis-aof"}.get(persistence, f"redis-aof-{persistence}")
            self.redis[persistence] = RedisServer(
                self.root / "servers" / name, appendonly=bool(persistence), appendfsync=persistence or "everysec"
            )
        return self.redis[persistence]

    def _pg_server(self) -> PostgresServer:
        if self.pg is None:
            from .servers import PostgresServer

            self.pg = PostgresServer(self.root / "servers")
        return self.pg

    def start(self) -> None:
        from .servers import ServerError

        try:
            if not self.redis_url:
                for persistence in self.need_redis:
                    self._redis_server(persistence).start()
            if self.need_pg and not self.postgres_url:
                self._pg_server().start()
        except ServerError as exc:
            self.stop()
            raise ConfigError(str(exc)) from None

    def endpoints(self, cfg: LaneConfig) -> Endpoints:
        b = cfg.backends
        redis_url = ""
        if b.cache == "redis":
            redis_url = self.redis_url or self._redis_server(self.redis_persistence(cfg)).url
        postgres = ""
        if b.store == "postgresql":
            postgres = self.postgres_url or self._pg_server().conninfo
        lane = cfg.slug.replace("-", "_")
        return Endpoints(
            redis_url=redis_url,
            postgres=postgres,
            prefix=f"cs:{self.run_id}:{cfg.slug}:",
            schema=f"cs_{self.run_id}_{lane}"[:63],
            nodes=b.nodes,
            own_redis=b.cache == "redis" and not self.redis_url,
        )

    def owns_cache_server(self, cfg: LaneConfig) -> bool:
        return cfg.backends.cache == "redis" and self.redis_persistence(cfg) in self.redis

    def describe(self, cfg: LaneConfig) -> str:
        """What a lane talks to, e.g. "Redis 7.0.15 · unix socket · AOF always + PostgreSQL
        15.18 · unix socket", or "diskcache + SQLite" (the flow view and the summary show
        it); a given Redis's persistence and memory limit as read from it, and that the
        lane's size limit is not applied there."""
        b = cfg.backends
        if b.cache == "redis":
            if self.redis_url:
                from .redis_cache import describe_settings

                cache = f"Redis {self._versions.get('redis', '?')} · {_redact(self.redis_url)}"
                cache += describe_settings(self.given_redis)
            else:
                server = self._redis_server(self.redis_persistence(cfg))
                cache = f"Redis {server.version} · unix socket · {server.persistence}"
        else:
            cache = "diskcache" + ("" if cfg.cache.persistent else " (volatile)")
        if b.store == "postgresql":
            if self.postgres_url:
                store = f"PostgreSQL {self._versions.get('pg', '?')} · {_redact(self.postgres_url)}"
            else:
                store = f"PostgreSQL {self._pg_server().version} · unix socket"
        else:
            store = "SQLite"
        return f"{cache} + {store}" + (f" · {b.nodes} nodes" if b.nodes > 1 else "")

    def stop(self) -> None:
        """Stop the run's own servers (a given server is left alone); a kept run directory
        keeps their logs, not PostgreSQL's 40 MB cluster (the rows are in store.sqlite)."""
        for server in list(self.redis.values()) + ([self.pg] if self.pg is not None else []):
            try:
                server.stop()
            except Exception:  # noqa: BLE001 - stop the others whatever one did
                pass
        if self.pg is not None and self.pg.pid is None and self.pg.data.exists():
            shutil.rmtree(self.pg.data, ignore_errors=True)


def check_backends(lanes: list[LaneConfig], redis_url: str = "", postgres_url: str = "") -> None:
    """What can be said of the lanes' backends without a server (a plan's check): the
    programs of the run's own servers are installed, and no lane asks the run's own
    redis-server for an AOF while the run uses a given one. One line (ConfigError)."""
    from .servers import ServerError, postgres_bindir, redis_server

    aofs = {cfg.backends.aof for cfg in lanes if cfg.backends.cache == "redis"}
    pg = any(cfg.backends.store == "postgresql" for cfg in lanes)
    try:
        if aofs and not redis_url:
            redis_server()
        if pg and not postgres_url:
            postgres_bindir()
    except ServerError as exc:
        raise ConfigError(str(exc)) from None
    if redis_url and True in aofs:
        raise ConfigError(
            "backends.aof is a setting of the run's own redis-server; with --redis-url the "
            "server's own persistence applies (leave aof off)"
        )


def redis_version(url: str) -> str:
    """The Redis server's version ("7.0.15"); a server that cannot be reached: ConfigError."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        try:
            return str(client.info("server").get("redis_version", "?"))
        finally:
            client.connection_pool.disconnect()
    except (redis.RedisError, ValueError) as exc:
        raise ConfigError(f"--redis-url {_redact(url)}: cannot reach the server ({exc})") from None


def pg_version(conninfo: str) -> str:
    """The PostgreSQL server's version ("16.2"); a server that cannot be reached: ConfigError."""
    import psycopg

    try:
        with psycopg.connect(conninfo, connect_timeout=2, autocommit=True) as conn:
            return conn.execute("SHOW server_version").fetchone()[0].split()[0]
    except (psycopg.Error, ValueError) as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"--postgres-url {_redact(conninfo)}: cannot reach the server ({text})") from None


def traversable(root: Path) -> None:
    """Let PostgreSQL's own user (as root) reach a run directory the run made itself
    (``tempfile.mkdtemp`` makes mode 700): mode 711 lets it pass, not list."""
    if os.geteuid() == 0:
        os.chmod(root, 0o711)
