"""The real parts: a diskcache directory as the cache, a SQLite file as the store.

Between a strategy and each backend (this module's, Redis's and PostgreSQL's alike) sits
the fault layer of this module, written once (:class:`CacheFaultLayer`,
:class:`StoreFaultLayer`): injected latency per hop (``Latency``, labelled as injected
wherever it is shown) and, for the DB outage, whatever the real database does when another
connection holds its lock (``StoreUnavailable``). Where SQLite cannot fail a call for real (a read in WAL mode
while a writer holds the lock) the outage is injected and says so in its message.

Values are stored with their version: the cache holds ``"<version>|<value>"`` as text
(diskcache keeps text natively, no pickling) and the store's ``items`` table has a
``version`` column (DESIGN.md §3). A store write never replaces a newer version.

Beside ``items`` every store keeps its **commit log** (DESIGN.md §4), a table of our own,
``commits``: one row per row version a write actually committed (key, version, writer:
lane, node, incarnation), numbered by ``seq`` in commit order, written in the same
transaction as the row by a per-connection ``TEMP`` trigger on ``main.items`` (it fires
only for a real change, also inside an ``executemany`` batch; SQLite serializes writers, so
the rowid order is the commit order). The observer adds a ``death`` row right after it
kills a node (:func:`store_at_death`): "the store at the death" is every commit of the dead
writer plus every other commit ordered before that row. Rows a file held before it had a
log are logged once as ``base`` rows. The log stays in ``DIR/<lane>/store.sqlite``.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import diskcache
import sqlite_utils

from .config import CacheKnobs, ConfigError, Latency, StoreKnobs

SQLITE_MAGIC = b"SQLite format 3\x00"
MIB = 2**20
#: Prefix of the lock/lease entry of a key in the cache (its value has no "|": never a version).
LEASE = "lease:"

#: The guarded upsert: a write lands only if it carries a newer version than the row.
UPSERT_SQL = (
    "INSERT INTO items (key, version, value, updated_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT(key) DO UPDATE SET version = excluded.version, value = excluded.value, "
    "updated_at = excluded.updated_at WHERE excluded.version > items.version"
)
SELECT_SQL = "SELECT version, value FROM items WHERE key = ?"

#: The commit log beside ``items`` (see the module's docstring); ``kind``: commit, base, death.
COMMITS_DDL = (
    "CREATE TABLE IF NOT EXISTS commits (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL DEFAULT 'commit', "
    "key TEXT, version INTEGER, lane TEXT, node INTEGER, inc INTEGER)"
)
COMMITS_COLUMNS = ("seq", "kind", "key", "version", "lane", "node", "inc")
#: A writer's commits, logged by a TEMP trigger on the writer's own connection.
_LOG_TRIGGER = (
    "CREATE TEMP TRIGGER IF NOT EXISTS cachestudio_log_{event} AFTER {event} ON main.items BEGIN "
    "INSERT INTO commits (key, version, lane, node, inc) VALUES (NEW.key, NEW.version, {lane}, {node}, {inc}); END"
)
#: The store as it was at a death: the rows before the death row ``:seq`` and every commit
#: of the dead writer (``:node``, ``:inc``), whenever it landed.
AT_DEATH_SQL = (
    "SELECT key, MAX(version) FROM commits WHERE kind != 'death' "
    "AND (seq < :seq OR (kind = 'commit' AND node = :node AND inc = :inc)) GROUP BY key"
)
DEATH_SQL = "INSERT INTO commits (kind, lane, node, inc) VALUES ('death', ?, ?, ?)"


@dataclass(frozen=True)
class Writer:
    """Who writes through a store: the lane, its app node and the node's incarnation (unique
    in the lane); written into every commit of the log."""

    lane: str = ""
    node: int = 0
    inc: int = 0


#: The writer of a store opened outside a lane (tests, tools): logged, named by nobody.
NOBODY = Writer()


ITEMS_COLUMNS = {"key": str, "version": int, "value": str, "updated_at": float}
#: Declared column types of ``items`` as sqlite-utils creates them (PRAGMA table_info).
SHAPE = {
    "key": ("TEXT",),
    "version": ("INTEGER", "INT", "BIGINT"),
    "value": ("TEXT",),
    "updated_at": ("FLOAT", "REAL", "DOUBLE"),
}


def _read_only_uri(path: Path) -> str:
    """A read-only SQLite URI for ``path``, quoted (a '#' or '?' in a name is safe)."""
    return Path(path).resolve().as_uri() + "?mode=ro"


class BackendFailure(Exception):
    """A backend call failed; the operation is counted as an error.

    ``hard``: not a lock or a timeout that passes by itself (an outage), but the storage
    itself failing: disk full, an I/O error, a file that cannot be opened or is corrupt.
    The lab stops a lane whose operations fail hard with nothing succeeding for a while
    (``lab.HARD_FAIL_S``), and names the reason.
    """

    def __init__(self, message: str, hard: bool = False):
        super().__init__(message)
        self.hard = hard


class StoreUnavailable(BackendFailure):
    """A store call failed as it would against an unreachable or locked database."""


class CacheUnavailable(BackendFailure):
    """A cache call failed (diskcache timed out on its own lock, or its files failed)."""


#: SQLite result codes that pass by themselves: another connection holds a lock.
TRANSIENT_CODES = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}


def backend_failure(cls: type[BackendFailure], what: str, exc: BaseException) -> BackendFailure:
    """Turn what SQLite (or the OS under it) raised into a counted failure of ``cls``."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(exc, sqlite3.OperationalError) and (code in TRANSIENT_CODES or code is None and "locked" in str(exc)):
        return cls(f"{what} failed: {exc}")
    name = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
    return cls(f"{what} failed: {exc} ({name})", hard=True)


#: What a backend call may raise besides its own failures: SQLite's and the OS's errors.
SQLITE_ERRORS = (sqlite3.Error, OSError)


def is_transient(exc: BaseException) -> bool:
    """Another connection holds a lock (an outage): it passes by itself."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.OperationalError) and (
        code in TRANSIENT_CODES or code is None and "locked" in str(exc)
    )


def _needs_writer(exc: BaseException) -> bool:
    """A read-only connection met a hot journal (a writer was killed mid-transaction in a
    rollback-journal mode): only a read-write connection may roll it back."""
    return isinstance(exc, sqlite3.OperationalError) and (
        getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_READONLY or "readonly" in str(exc)
    )


def read_rows(path: Path, sql: str, timeout_s: float) -> list[tuple]:
    """Rows of one query on a store file, read-only; where a killed writer left a hot
    journal, through a read-write connection, which rolls it back first (as the next lab
    would: it is the run's own file). Waits at most ``timeout_s`` for a lock."""
    conn = sqlite3.connect(_read_only_uri(path), uri=True, timeout=timeout_s)
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.OperationalError as exc:
        if not _needs_writer(exc):
            raise
    finally:
        conn.close()
    conn = sqlite3.connect(str(path), timeout=timeout_s, isolation_level=None)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def check_sqlite_file(path: Path, what: str) -> None:
    """Raise ConfigError unless ``path`` is absent, empty or a SQLite database.

    Reads only the 16-byte header: a file of another kind is never opened by SQLite,
    so it cannot be changed by us.
    """
    if not path.exists():
        return
    if not path.is_file():
        raise ConfigError(f"{what} {path} is not a file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise ConfigError(f"{what} {path} cannot be read: {exc.strerror}") from None
    if head and head != SQLITE_MAGIC:
        raise ConfigError(f"{what} {path} is not a SQLite database (corrupt or another kind of file)")


# ----------------------------------------------------------------------------- the fault layer


class CacheFaultLayer:
    """The fault layer of every cache backend, written once: injected latency (the knob
    ``latency.cache_ms``) before each cache call. A backend calls :meth:`_lag` first."""

    _delay = 0.0

    def set_latency(self, latency: Latency) -> None:
        self._delay = latency.cache_ms / 1000.0

    def _lag(self) -> None:
        if self._delay:
            time.sleep(self._delay)


class StoreFaultLayer:
    """The fault layer of every store, written once, around the backend's own calls
    (``_fetch``, ``_put``, ``_put_batch``): injected latency per hop (a read's is a round
    trip: half before the query, half after it), the outage a database cannot make real for
    readers (``injected_read_outage``, set by the lab, said in :attr:`INJECTED_OUTAGE`), and
    the counters of store calls for telemetry (approximate under threads)."""

    INJECTED_OUTAGE = "DB outage (injected for reads)"

    def _init_faults(self, latency: Latency) -> None:
        self.set_latency(latency)
        #: Set by the lab while a DB outage is on and the database cannot fail reads for real.
        self.injected_read_outage = False
        self.reads = 0
        self.rows_written = 0
        self.transactions = 0

    def set_latency(self, latency: Latency) -> None:
        self._read_delay = latency.db_read_ms / 1000.0
        self._write_delay = latency.db_write_ms / 1000.0

    def read(self, key: str) -> tuple[int, str] | None:
        """One row, or None."""
        half = self._read_delay / 2
        if half:
            time.sleep(half)
        if self.injected_read_outage:
            raise StoreUnavailable(self.INJECTED_OUTAGE)
        self.reads += 1
        row = self._fetch(key)
        if half:
            time.sleep(half)
        return row

    def write(self, key: str, version: int, value: str) -> bool:
        """One guarded upsert in its own transaction; True if it changed the row."""
        if self._write_delay:
            time.sleep(self._write_delay)
        changed = self._put(key, version, value, time.time())
        self.rows_written += 1
        self.transactions += 1
        return changed

    def write_batch(self, rows: list[tuple[str, int, str]]) -> None:
        """Guarded upserts of many rows in one transaction (all or nothing)."""
        if self._write_delay:
            time.sleep(self._write_delay)
        self._put_batch(rows, time.time())
        self.rows_written += len(rows)
        self.transactions += 1

    def _fetch(self, key: str) -> tuple[int, str] | None:
        raise NotImplementedError

    def _put(self, key: str, version: int, value: str, now: float) -> bool:
        raise NotImplementedError

    def _put_batch(self, rows: list[tuple[str, int, str]], now: float) -> None:
        raise NotImplementedError


# ----------------------------------------------------------------------------- cache


#: A cache whose size limit is below this culls on every set, as diskcache does by default:
#: a small cache evicts exactly when a set fills it. A roomier one leaves culling to a
#: background thread every ``CULL_EVERY_S`` (diskcache's ``cull_limit = 0`` and ``cull()``):
#: a set then runs 5 SQL statements instead of 8, and what 0.1 s of sets can add (about
#: 2 MiB at 20k sets/s) stays far below the limit (issue 15, docs/benchmarks.md).
AUTO_CULL_BELOW_MB = 64.0
CULL_EVERY_S = 0.1


def cull_limit(knobs: CacheKnobs) -> int:
    """diskcache's ``cull_limit`` for these knobs: 10 (its default: cull on each set) or 0."""
    return 10 if knobs.size_limit_mb < AUTO_CULL_BELOW_MB else 0


class CacheBackend(CacheFaultLayer):
    """A real ``diskcache.Cache`` in a directory; one per lab process.

    diskcache is thread-safe (one SQLite connection per thread inside), so client
    threads share this object.
    """

    def __init__(self, directory: Path, knobs: CacheKnobs, latency: Latency):
        check_sqlite_file(Path(directory) / "cache.db", "cache database")
        try:
            self.cache = diskcache.Cache(
                str(directory),
                size_limit=int(knobs.size_limit_mb * MIB),
                eviction_policy=knobs.eviction,
                timeout=1.0,  # seconds diskcache waits on its own SQLite lock
                statistics=False,
                cull_limit=cull_limit(knobs),
            )
        except (sqlite3.DatabaseError, OSError) as exc:
            raise ConfigError(f"cache directory {directory} cannot be opened: {exc}") from None
        self.expire = knobs.ttl_s or None
        self.protection = knobs.stampede
        self.lease_ttl = knobs.lease_ttl_s
        self.set_latency(latency)
        self._tokens = itertools.count(1)
        self._token_prefix = f"{os.getpid()}-"
        self._culling = threading.Event()  # set: stop the culler
        self._culler: threading.Thread | None = None
        self.cull_failures = 0  # background culls that failed (the next one tries again)

    def start_culler(self) -> None:
        """Cull in the background while automatic culling is off (a roomy cache)."""
        self._culler = threading.Thread(target=self._cull_loop, name="culler", daemon=True)
        self._culler.start()

    def _cull_loop(self) -> None:
        while not self._culling.wait(CULL_EVERY_S):
            if self.cache.cull_limit:
                continue  # the sets cull (a small cache)
            try:
                self.cache.cull()
            except (diskcache.Timeout, *SQLITE_ERRORS):
                self.cull_failures += 1  # a failing cache fails its sets too, and they are counted
        self.cache.close()  # this thread's connection

    def stop_culler(self) -> None:
        self._culling.set()
        if self._culler is not None:
            self._culler.join(5.0)

    def apply(self, knobs: CacheKnobs) -> None:
        """Apply TTL (to entries set from now on), size limit and eviction policy live."""
        self.expire = knobs.ttl_s or None
        self.protection = knobs.stampede
        self.lease_ttl = knobs.lease_ttl_s
        self.cache.reset("size_limit", int(knobs.size_limit_mb * MIB))
        self.cache.reset("eviction_policy", knobs.eviction)
        self.cache.reset("cull_limit", cull_limit(knobs))

    def get(self, key: str) -> tuple[int, str] | None:
        self._lag()
        try:
            raw = self.cache.get(key)
        except diskcache.Timeout as exc:
            raise CacheUnavailable(f"cache get timed out: {exc}") from None
        except SQLITE_ERRORS as exc:
            raise backend_failure(CacheUnavailable, "cache get", exc) from None
        return parse_entry(key, raw)

    def set(self, key: str, version: int, value: str) -> None:
        """A writer's set. Under leases it also invalidates any lease on the key, in one
        transaction: a reader holding that lease can no longer set its older value."""
        self._write(key, "set", lambda: self.cache.set(key, f"{version}|{value}", expire=self.expire))

    def delete(self, key: str) -> None:
        """A writer's invalidation; under leases it invalidates the key's lease too."""
        self._write(key, "delete", lambda: self.cache.delete(key))

    def _write(self, key: str, what: str, change) -> None:
        self._lag()
        try:
            if self.protection == "lease":
                with self.cache.transact():
                    self.cache.delete(LEASE + key)
                    change()
            else:
                change()
        except diskcache.Timeout as exc:
            raise CacheUnavailable(f"cache {what} timed out: {exc}") from None
        except SQLITE_ERRORS as exc:
            raise backend_failure(CacheUnavailable, f"cache {what}", exc) from None

    def expire_now(self, key: str) -> None:
        """The key expires (as its TTL would make it): the entry and any lock or lease go."""
        try:
            with self.cache.transact():
                self.cache.delete(key)
                self.cache.delete(LEASE + key)
        except diskcache.Timeout as exc:
            raise CacheUnavailable(f"cache expire timed out: {exc}") from None
        except SQLITE_ERRORS as exc:
            raise backend_failure(CacheUnavailable, "cache expire", exc) from None

    # -- stampede protection: single-flight lock or lease (memcache style) --------------

    def get_or_lease(self, key: str) -> tuple[tuple[int, str] | None, str | None]:
        """Atomically: the cached value, or else a lease (or lock) token if nobody holds
        one. ``(None, None)``: a miss while someone else is already fetching the key."""
        self._lag()
        token = f"{self._token_prefix}{next(self._tokens)}"
        try:
            with self.cache.transact():
                raw = self.cache.get(key)
                if raw is None:
                    won = self.cache.add(LEASE + key, token, expire=self.lease_ttl)
                    return None, (token if won else None)
        except diskcache.Timeout as exc:
            raise CacheUnavailable(f"cache get timed out: {exc}") from None
        except SQLITE_ERRORS as exc:
            raise backend_failure(CacheUnavailable, "cache get", exc) from None
        return parse_entry(key, raw), None

    def set_leased(self, key: str, token: str, version: int, value: str) -> bool:
        """The lease holder's set: it lands only if the lease is still the holder's (a
        write since the lease was given invalidated it). Returns whether it landed."""
        self._lag()
        try:
            with self.cache.transact():
                if self.cache.get(LEASE + key) != token:
                    return False
                self.cache.set(key, f"{version}|{value}", expire=self.expire)
                self.cache.delete(LEASE + key)
                return True
        except diskcache.Timeout as exc:
            raise CacheUnavailable(f"cache set timed out: {exc}") from None
        except SQLITE_ERRORS as exc:
            raise backend_failure(CacheUnavailable, "cache set", exc) from None

    def release(self, key: str, token: str) -> None:
        """Give a lock or lease back (if it is still ours)."""
        try:
            with self.cache.transact():
                if self.cache.get(LEASE + key) == token:
                    self.cache.delete(LEASE + key)
        except (diskcache.Timeout, *SQLITE_ERRORS):
            pass  # it expires on its own after lease_ttl

    def clear(self) -> None:
        try:
            self.cache.clear()
        except diskcache.Timeout as exc:
            raise CacheUnavailable(f"cache clear timed out: {exc}") from None
        except SQLITE_ERRORS as exc:
            raise backend_failure(CacheUnavailable, "cache clear", exc) from None

    def close(self) -> None:
        """Close the calling thread's connection (diskcache keeps one per thread): a
        short-lived thread (a stampede reader) calls it so its file handles go now."""
        self.cache.close()


def parse_entry(key: str, raw) -> tuple[int, str] | None:
    """A cached ``"<version>|<value>"``; anything else in the cache is a failure, counted."""
    if raw is None:
        return None
    version, sep, value = raw.partition("|") if isinstance(raw, str) else ("", "", "")
    if not (sep and version.isdigit()):
        raise CacheUnavailable(f"cache entry of {key} is not a versioned value: {str(raw)[:40]!r}", hard=True)
    return int(version), value


def cache_versions(directory: Path) -> dict[str, int]:
    """Version of every live (unexpired) entry in a cache directory, for the audit."""
    out: dict[str, int] = {}
    if not (Path(directory) / "cache.db").exists():
        return out
    with diskcache.Cache(str(directory)) as cache:
        for key in list(cache.iterkeys()):
            raw = cache.get(key)
            if isinstance(raw, str) and "|" in raw:
                out[key] = int(raw.partition("|")[0])
    return out


# ----------------------------------------------------------------------------- store


class Store(StoreFaultLayer):
    """The ``items`` table of a real SQLite file, opened through sqlite-utils.

    One connection per thread (as diskcache does it). sqlite-utils creates the schema
    and owns the connection; the hot paths run prepared statements on it, because
    sqlite-utils has no conditional (version-guarded) upsert.
    """

    INJECTED_OUTAGE = "DB outage (injected for reads: WAL readers ignore the lock)"

    def __init__(self, path: Path, knobs: StoreKnobs, latency: Latency, writer: Writer | None = NOBODY):
        self.path = Path(path)
        self.knobs = knobs
        #: Whose commits this store logs (None: no log; the bench's yardstick only).
        self.writer = writer
        self._init_faults(latency)
        self._local = threading.local()
        check_sqlite_file(self.path, "SQLite file")
        self._settle_lock = threading.Lock()
        self._unsettled = True
        try:
            self._settle()
        except ConfigError:
            self.close()
            raise
        except SQLITE_ERRORS as exc:
            self.close()
            if not is_transient(exc):
                raise ConfigError(f"SQLite file {self.path} cannot be opened: {exc}") from None
            # Locked by another connection (an outage holds it, or a hot journal is being
            # rolled back): the lab comes up anyway, as a real node would, and its first
            # store call checks the file (a store call fails meanwhile, counted).

    def _settle(self) -> None:
        """Check the items table's shape (read-only, before any pragma: a refused file is
        left exactly as it was), then create it if it is missing."""
        self._check_shape()
        db = self._db()
        table = db["items"]
        if isinstance(table, sqlite_utils.db.Table) and not table.exists():  # (a View exists)
            table.create(ITEMS_COLUMNS, pk="key", not_null={"version"}, if_not_exists=True)
        if not db["commits"].exists():
            conn = self._local.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(COMMITS_DDL)
                conn.execute("INSERT INTO commits (kind, key, version) SELECT 'base', key, version FROM items")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        if self.writer is not None:
            self._log_on(self._local.conn)
        self._unsettled = False

    def _settle_now(self) -> None:
        with self._settle_lock:
            if self._unsettled:
                try:
                    self._settle()
                except ConfigError as exc:  # a file of another kind or shape: the lane cannot go on
                    raise StoreUnavailable(str(exc), hard=True) from None

    def _check_shape(self) -> None:
        if not self.path.exists():
            return
        try:
            rows = read_rows(self.path, "PRAGMA table_info(items)", self.knobs.timeout_ms / 1000.0)
        except sqlite3.DatabaseError as exc:
            if is_transient(exc):
                raise  # locked: checked again at the first store call
            raise ConfigError(f"SQLite file {self.path} cannot be read: {exc}") from None
        logged = [row[1] for row in read_rows(self.path, "PRAGMA table_info(commits)", self.knobs.timeout_ms / 1000.0)]
        if logged and tuple(logged) != COMMITS_COLUMNS:
            raise ConfigError(
                f"SQLite file {self.path} has a commits table of another shape ({', '.join(logged)}); "
                f"expected the commit log's ({', '.join(COMMITS_COLUMNS)})"
            )
        cols = {name: (ctype.upper(), pk) for _, name, ctype, _, _, pk in rows}
        shaped = set(cols) == set(SHAPE) and all(cols[n][0] in types for n, types in SHAPE.items())
        if cols and (not shaped or [n for n, (_, pk) in cols.items() if pk] != ["key"]):
            found = ", ".join(f"{n} {t}" for n, (t, _) in cols.items())
            raise ConfigError(
                f"SQLite file {self.path} has an items table of another shape ({found}); "
                "expected key TEXT primary key, version INTEGER, value TEXT, updated_at REAL"
            )

    def _db(self) -> sqlite_utils.Database:
        """The calling thread's connection (opened on first use, with the pragmas)."""
        db = getattr(self._local, "db", None)
        if db is None:
            conn = sqlite3.connect(
                str(self.path),
                timeout=self.knobs.timeout_ms / 1000.0,
                isolation_level=None,  # autocommit; batches use explicit BEGIN
                check_same_thread=False,
            )
            try:
                conn.execute(f"PRAGMA journal_mode={self.knobs.journal_mode}")
                conn.execute(f"PRAGMA synchronous={self.knobs.synchronous}")
            except BaseException:
                conn.close()
                raise
            db = sqlite_utils.Database(conn, execute_plugins=False)
            self._local.db = db
            self._local.conn = conn
        return db

    def _conn(self) -> sqlite3.Connection:
        if self._unsettled:
            self._settle_now()
        conn = getattr(self._local, "conn", None)
        if conn is None:
            self._db()
            conn = self._local.conn
            if self.writer is not None:
                self._log_on(conn)
        return conn

    def _log_on(self, conn: sqlite3.Connection) -> None:
        """This connection's commits go to the log (its TEMP triggers: they live and die
        with the connection, and name this store's writer)."""
        w = self.writer or NOBODY
        lane = "'" + w.lane.replace("'", "''") + "'"
        for event in ("INSERT", "UPDATE"):
            conn.execute(_LOG_TRIGGER.format(event=event, lane=lane, node=int(w.node), inc=int(w.inc)))

    @property
    def outage_is_real_for_reads(self) -> bool:
        """In WAL mode a held write lock does not stop readers; elsewhere it does."""
        return self.knobs.journal_mode != "wal"

    def _fetch(self, key: str) -> tuple[int, str] | None:
        try:
            return self._conn().execute(SELECT_SQL, (key,)).fetchone()
        except SQLITE_ERRORS as exc:
            raise backend_failure(StoreUnavailable, "DB read", exc) from None

    def _put(self, key: str, version: int, value: str, now: float) -> bool:
        try:
            return self._conn().execute(UPSERT_SQL, (key, version, value, now)).rowcount > 0
        except SQLITE_ERRORS as exc:
            raise backend_failure(StoreUnavailable, "DB write", exc) from None

    def _put_batch(self, rows: list[tuple[str, int, str]], now: float) -> None:
        try:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(UPSERT_SQL, [(k, v, val, now) for k, v, val in rows])
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK")
                    except SQLITE_ERRORS:
                        pass  # SQLite rolled back on its own (e.g. disk full)
                raise
        except SQLITE_ERRORS as exc:
            raise backend_failure(StoreUnavailable, "DB write", exc) from None

    def close(self) -> None:
        """Close the calling thread's connection (one per thread)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            try:
                conn.close()
            except SQLITE_ERRORS:
                pass
            self._local.conn = None
            self._local.db = None


def store_versions(path: Path, timeout_s: float = 5.0) -> dict[str, int]:
    """Version of every row in a store file (read-only), for the audit. Waits at most
    ``timeout_s`` for a lock; raises ``sqlite3.Error`` for a locked, corrupt or foreign file."""
    path = Path(path)
    if not path.exists():
        return {}
    return dict(read_rows(path, "SELECT key, version FROM items", timeout_s))


def mark_death(path: Path, dead: Writer, conn: sqlite3.Connection | None = None, timeout_s: float = 5.0) -> int:
    """Mark ``dead``'s death in the store's commit log, as soon after the kill as can be (a
    ``death`` row: its place in the store's own commit order); returns its ``seq``.

    ``conn``: the outage's own connection (it holds the lock in an open transaction; the
    death row commits when the outage ends, with nothing of anyone else before it)."""
    own = conn is None
    if own:
        conn = sqlite3.connect(str(path), timeout=timeout_s, isolation_level=None)
    try:
        seq = conn.execute(DEATH_SQL, (dead.lane, dead.node, dead.inc)).lastrowid
    finally:
        if own:
            conn.close()
    return int(seq or 0)


def store_at_death(
    path: Path, dead: Writer, seq: int, conn: sqlite3.Connection | None = None, timeout_s: float = 5.0
) -> dict[str, int]:
    """The store as it was at the death marked as ``seq`` (:func:`mark_death`): every commit
    ordered before it, and every commit of the dead writer (a killed process commits
    nothing more, but its last commit may have been ordered after the mark)."""
    args = {"seq": seq, "node": dead.node, "inc": dead.inc}
    if conn is not None:
        return dict(conn.execute(AT_DEATH_SQL, args).fetchall())
    reader = sqlite3.connect(_read_only_uri(path), uri=True, timeout=timeout_s)
    try:
        return dict(reader.execute(AT_DEATH_SQL, args).fetchall())
    finally:
        reader.close()


def store_at_mark(path: Path, dead: Writer, delivered: set[tuple[str, int]], timeout_s: float = 5.0) -> dict[str, int]:
    """The store as it was at the death of ``dead`` (a cache server: :func:`server_writer`)
    in the commit log of the store file ``path`` (read-only: at the end, when the log is
    complete): every version committed before the death row, and every commit of a
    ``delivered`` (key, version), whenever it landed. LookupError: no such death row."""
    reader = sqlite3.connect(_read_only_uri(path), uri=True, timeout=timeout_s)
    try:
        row = reader.execute(
            "SELECT seq FROM commits WHERE kind = 'death' AND lane = ? AND node = ? AND inc = ?",
            (dead.lane, dead.node, dead.inc),
        ).fetchone()
        if row is None:
            raise LookupError(f"no death of {dead} in the commit log of {path}")
        held: dict[str, int] = {}
        for seq, key, version in reader.execute("SELECT seq, key, version FROM commits WHERE kind != 'death'"):
            if seq < row[0] or (key, version) in delivered:
                held[key] = max(held.get(key, 0), version)
        return held
    finally:
        reader.close()


def server_writer(lane: str, death: int) -> Writer:
    """The writer whose death marks the ``death``-th (1, 2, …) death of a lane's cache server
    holding its durable queues in the commit log: node -1, incarnation -``death`` (no app
    node is one)."""
    return Writer(lane, -1, -death)


def commit_rows(path: Path, timeout_s: float = 5.0) -> list[tuple]:
    """The commit log of a store file, in commit order ([] for a file without one)."""
    if not Path(path).exists():
        return []
    if not read_rows(path, "SELECT name FROM sqlite_master WHERE name = 'commits'", timeout_s):
        return []
    return read_rows(path, "SELECT " + ", ".join(COMMITS_COLUMNS) + " FROM commits ORDER BY seq", timeout_s)


ITEMS_DDL = (
    "CREATE TABLE [items] ([key] TEXT PRIMARY KEY, [version] INTEGER NOT NULL, [value] TEXT, [updated_at] FLOAT)"
)


def write_items_file(rows: list[tuple], dest: Path, commits: list[tuple] | None = None) -> dict[str, int]:
    """Write (key, version, value, updated_at) rows as a new SQLite file ``dest`` with the
    store's ``items`` schema (evidence, or a remote store's rows at the end), and
    ``commits`` (rows of :data:`COMMITS_COLUMNS`, in commit order) as its commit log,
    through a ``.part`` file renamed into place; return their versions."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    part.unlink(missing_ok=True)
    target = sqlite3.connect(str(part))
    try:
        with target:
            target.execute(ITEMS_DDL)
            target.executemany("INSERT INTO items VALUES (?, ?, ?, ?)", rows)
            if commits is not None:
                target.execute(COMMITS_DDL)
                target.executemany("INSERT INTO commits VALUES (?, ?, ?, ?, ?, ?, ?)", commits)
    finally:
        target.close()
    part.replace(dest)
    return {row[0]: row[1] for row in rows}


def begin_locked(path: Path, mode: str, timeout_s: float, check_same_thread: bool = True) -> sqlite3.Connection:
    """A new connection to ``path`` in a ``BEGIN <mode>`` transaction (IMMEDIATE: the write
    lock, readers go on; EXCLUSIVE: readers stop too outside WAL), taken within
    ``timeout_s`` or ``sqlite3.OperationalError``. No busy timeout while it tries:
    SQLite's busy handler backs off up to 100 ms between tries, and the labs' writers
    (whose own timeouts are short) kept winning the lock in between (an outage was seen to
    start 2 s late in delete-journal mode); it tries every 0.5 ms instead."""
    conn = sqlite3.connect(str(path), timeout=0, isolation_level=None, check_same_thread=check_same_thread)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                conn.execute(f"BEGIN {mode}")
                return conn
            except sqlite3.OperationalError as exc:
                if not is_transient(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.0005)
    except BaseException:
        conn.close()
        raise


class OutageLock:
    """A real DB outage: another connection holds the database's exclusive lock.

    In rollback-journal modes this stops readers and writers; in WAL mode it stops
    writers only (the lab injects read failures then, labelled as injected).
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.conn: sqlite3.Connection | None = None

    def acquire(self, timeout_s: float = 5.0) -> None:
        # check_same_thread off: taken on a thread of its own, read and released elsewhere.
        self.conn = begin_locked(self.path, "EXCLUSIVE", timeout_s, check_same_thread=False)

    def versions(self) -> dict[str, int]:
        """Every row's version, read through the lock's own connection."""
        if self.conn is None:
            return store_versions(self.path)
        return dict(self.conn.execute("SELECT key, version FROM items"))

    def release(self) -> None:
        """Let go of the lock. The transaction changed nothing but the deaths marked in
        the commit log while it held the lock (:func:`store_at_death`): it commits them."""
        if self.conn is not None:
            try:
                self.conn.execute("COMMIT")
            finally:
                self.conn.close()
                self.conn = None
