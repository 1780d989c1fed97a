"""The real parts: a diskcache directory as the cache, a SQLite file as the store.

Between a strategy and each backend sits the fault layer of this module: injected
latency per hop (``Latency``, labelled as injected wherever it is shown) and, for the
DB outage, whatever the real database does when another connection holds its lock
(``StoreUnavailable``). Where SQLite cannot fail a call for real (a read in WAL mode
while a writer holds the lock) the outage is injected and says so in its message.

Values are stored with their version: the cache holds ``"<version>|<value>"`` as text
(diskcache keeps text natively, no pickling) and the store's ``items`` table has a
``version`` column (DESIGN.md §3). A store write never replaces a newer version.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import threading
import time
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
ITEMS_COLUMNS = {"key": str, "version": int, "value": str, "updated_at": float}
#: Declared column types of ``items`` as sqlite-utils creates them (PRAGMA table_info).
SHAPE = {"key": ("TEXT",), "version": ("INTEGER", "INT", "BIGINT"), "value": ("TEXT",),
         "updated_at": ("FLOAT", "REAL", "DOUBLE")}


def _read_only_uri(path: Path) -> str:
    """A read-only SQLite URI for ``path``, quoted (a '#' or '?' in a name is safe)."""
    return Path(path).resolve().as_uri() + "?mode=ro"


class StoreUnavailable(Exception):
    """A store call failed as it would against an unreachable or locked database."""


class CacheUnavailable(Exception):
    """A cache call failed (diskcache timed out on its own lock)."""


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


# ----------------------------------------------------------------------------- cache


class CacheBackend:
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
            )
        except (sqlite3.DatabaseError, OSError) as exc:
            raise ConfigError(f"cache directory {directory} cannot be opened: {exc}") from None
        self.expire = knobs.ttl_s or None
        self.protection = knobs.stampede
        self.lease_ttl = knobs.lease_ttl_s
        self._delay = latency.cache_ms / 1000.0
        self._tokens = itertools.count(1)
        self._token_prefix = f"{os.getpid()}-"

    def set_latency(self, latency: Latency) -> None:
        self._delay = latency.cache_ms / 1000.0

    def apply(self, knobs: CacheKnobs) -> None:
        """Apply TTL (to entries set from now on), size limit and eviction policy live."""
        self.expire = knobs.ttl_s or None
        self.protection = knobs.stampede
        self.lease_ttl = knobs.lease_ttl_s
        self.cache.reset("size_limit", int(knobs.size_limit_mb * MIB))
        self.cache.reset("eviction_policy", knobs.eviction)

    def get(self, key: str) -> tuple[int, str] | None:
        if self._delay:
            time.sleep(self._delay)
        try:
            raw = self.cache.get(key)
        except diskcache.Timeout as exc:
            raise CacheUnavailable(f"cache get timed out: {exc}") from None
        if raw is None:
            return None
        version, _, value = raw.partition("|")
        return int(version), value

    def set(self, key: str, version: int, value: str) -> None:
        """A writer's set. Under leases it also invalidates any lease on the key, in one
        transaction: a reader holding that lease can no longer set its older value."""
        self._write(key, "set", lambda: self.cache.set(key, f"{version}|{value}", expire=self.expire))

    def delete(self, key: str) -> None:
        """A writer's invalidation; under leases it invalidates the key's lease too."""
        self._write(key, "delete", lambda: self.cache.delete(key))

    def _write(self, key: str, what: str, change) -> None:
        if self._delay:
            time.sleep(self._delay)
        try:
            if self.protection == "lease":
                with self.cache.transact():
                    self.cache.delete(LEASE + key)
                    change()
            else:
                change()
        except diskcache.Timeout as exc:
            raise CacheUnavailable(f"cache {what} timed out: {exc}") from None

    def expire_now(self, key: str) -> None:
        """The key expires (as its TTL would make it): the entry and any lock or lease go."""
        with self.cache.transact():
            self.cache.delete(key)
            self.cache.delete(LEASE + key)

    # -- stampede protection: single-flight lock or lease (memcache style) --------------

    def get_or_lease(self, key: str) -> tuple[tuple[int, str] | None, str | None]:
        """Atomically: the cached value, or else a lease (or lock) token if nobody holds
        one. ``(None, None)``: a miss while someone else is already fetching the key."""
        if self._delay:
            time.sleep(self._delay)
        token = f"{self._token_prefix}{next(self._tokens)}"
        try:
            with self.cache.transact():
                raw = self.cache.get(key)
                if raw is None:
                    won = self.cache.add(LEASE + key, token, expire=self.lease_ttl)
                    return None, (token if won else None)
        except diskcache.Timeout as exc:
            raise CacheUnavailable(f"cache get timed out: {exc}") from None
        version, _, value = raw.partition("|")
        return (int(version), value), None

    def set_leased(self, key: str, token: str, version: int, value: str) -> bool:
        """The lease holder's set: it lands only if the lease is still the holder's (a
        write since the lease was given invalidated it). Returns whether it landed."""
        if self._delay:
            time.sleep(self._delay)
        try:
            with self.cache.transact():
                if self.cache.get(LEASE + key) != token:
                    return False
                self.cache.set(key, f"{version}|{value}", expire=self.expire)
                self.cache.delete(LEASE + key)
                return True
        except diskcache.Timeout as exc:
            raise CacheUnavailable(f"cache set timed out: {exc}") from None

    def release(self, key: str, token: str) -> None:
        """Give a lock or lease back (if it is still ours)."""
        try:
            with self.cache.transact():
                if self.cache.get(LEASE + key) == token:
                    self.cache.delete(LEASE + key)
        except diskcache.Timeout:
            pass  # it expires on its own after lease_ttl

    def clear(self) -> None:
        self.cache.clear()

    def close(self) -> None:
        self.cache.close()


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


class Store:
    """The ``items`` table of a real SQLite file, opened through sqlite-utils.

    One connection per thread (as diskcache does it). sqlite-utils creates the schema
    and owns the connection; the hot paths run prepared statements on it, because
    sqlite-utils has no conditional (version-guarded) upsert.
    """

    def __init__(self, path: Path, knobs: StoreKnobs, latency: Latency):
        self.path = Path(path)
        self.knobs = knobs
        self.set_latency(latency)
        self._local = threading.local()
        #: Set by the lab while a DB outage is on and SQLite cannot fail reads for real.
        self.injected_read_outage = False
        self.reads = 0  # store calls, for telemetry (approximate under threads)
        self.rows_written = 0
        self.transactions = 0
        check_sqlite_file(self.path, "SQLite file")
        self._check_shape()  # before any pragma: a refused file is left exactly as it was
        table = self._db()["items"]
        if not table.exists():
            table.create(ITEMS_COLUMNS, pk="key", not_null={"version"}, if_not_exists=True)

    def set_latency(self, latency: Latency) -> None:
        self._read_delay = latency.db_read_ms / 1000.0
        self._write_delay = latency.db_write_ms / 1000.0

    def _check_shape(self) -> None:
        if not self.path.exists():
            return
        try:
            conn = sqlite3.connect(_read_only_uri(self.path), uri=True, timeout=self.knobs.timeout_ms / 1000.0)
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"SQLite file {self.path} cannot be opened: {exc}") from None
        try:
            cols = {name: (ctype.upper(), pk) for _, name, ctype, _, _, pk in
                    conn.execute("PRAGMA table_info(items)")}
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"SQLite file {self.path} cannot be read: {exc}") from None
        finally:
            conn.close()
        shaped = set(cols) == set(SHAPE) and all(cols[n][0] in types for n, types in SHAPE.items())
        if cols and (not shaped or [n for n, (_, pk) in cols.items() if pk] != ["key"]):
            found = ", ".join(f"{n} {t}" for n, (t, _) in cols.items())
            raise ConfigError(f"SQLite file {self.path} has an items table of another shape ({found}); "
                              "expected key TEXT primary key, version INTEGER, value TEXT, updated_at REAL")

    def _db(self) -> sqlite_utils.Database:
        db = getattr(self._local, "db", None)
        if db is None:
            try:
                conn = sqlite3.connect(
                    str(self.path),
                    timeout=self.knobs.timeout_ms / 1000.0,
                    isolation_level=None,  # autocommit; batches use explicit BEGIN
                    check_same_thread=False,
                )
                conn.execute(f"PRAGMA journal_mode={self.knobs.journal_mode}")
                conn.execute(f"PRAGMA synchronous={self.knobs.synchronous}")
            except sqlite3.DatabaseError as exc:
                raise ConfigError(f"SQLite file {self.path} cannot be opened: {exc}") from None
            db = sqlite_utils.Database(conn, execute_plugins=False)
            self._local.db = db
            self._local.conn = conn
        return db

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            self._db()
            conn = self._local.conn
        return conn

    @property
    def outage_is_real_for_reads(self) -> bool:
        """In WAL mode a held write lock does not stop readers; elsewhere it does."""
        return self.knobs.journal_mode != "wal"

    def read(self, key: str) -> tuple[int, str] | None:
        """One row. Injected read latency is a round trip: half before the query (the
        request travelling), half after it (the answer travelling back)."""
        half = self._read_delay / 2
        if half:
            time.sleep(half)
        if self.injected_read_outage:
            raise StoreUnavailable("DB outage (injected for reads: WAL readers ignore the lock)")
        self.reads += 1
        try:
            row = self._conn().execute(SELECT_SQL, (key,)).fetchone()
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"DB read failed: {exc}") from None
        if half:
            time.sleep(half)
        return row

    def write(self, key: str, version: int, value: str) -> bool:
        """One guarded upsert in its own transaction; True if it changed the row."""
        if self._write_delay:
            time.sleep(self._write_delay)
        conn = self._conn()
        try:
            cur = conn.execute(UPSERT_SQL, (key, version, value, time.time()))
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"DB write failed: {exc}") from None
        self.rows_written += 1
        self.transactions += 1
        return cur.rowcount > 0

    def write_batch(self, rows: list[tuple[str, int, str]]) -> None:
        """Guarded upserts of many rows in one transaction (all or nothing)."""
        if self._write_delay:
            time.sleep(self._write_delay)
        conn = self._conn()
        now = time.time()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(UPSERT_SQL, [(k, v, val, now) for k, v, val in rows])
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"DB write failed: {exc}") from None
        self.rows_written += len(rows)
        self.transactions += 1

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
            self._local.db = None


def store_versions(path: Path) -> dict[str, int]:
    """Version of every row in a store file (read-only), for the audit."""
    path = Path(path)
    if not path.exists():
        return {}
    conn = sqlite3.connect(_read_only_uri(path), uri=True, timeout=5.0)
    try:
        return dict(conn.execute("SELECT key, version FROM items"))
    finally:
        conn.close()


def snapshot_store(path: Path, dest: Path, conn: sqlite3.Connection | None = None) -> dict[str, int]:
    """Copy the store file as it is now to ``dest`` (SQLite's online backup: a consistent
    copy, even under load) and return its versions. ``conn``: copy through this open
    connection (the outage's own, when another connection could not read)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if conn is None and not Path(path).exists():
        return {}
    source = conn or sqlite3.connect(_read_only_uri(path), uri=True, timeout=5.0)
    target = sqlite3.connect(str(dest))
    try:
        source.backup(target)
    finally:
        target.close()
        if conn is None:
            source.close()
    return store_versions(dest)


class OutageLock:
    """A real DB outage: another connection holds the database's exclusive lock.

    In rollback-journal modes this stops readers and writers; in WAL mode it stops
    writers only (the lab injects read failures then, labelled as injected).
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.conn: sqlite3.Connection | None = None

    def acquire(self, timeout_s: float = 5.0) -> None:
        conn = sqlite3.connect(str(self.path), timeout=timeout_s, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        self.conn = conn

    def versions(self) -> dict[str, int]:
        """Every row's version, read through the lock's own connection."""
        if self.conn is None:
            return store_versions(self.path)
        return dict(self.conn.execute("SELECT key, version FROM items"))

    def release(self) -> None:
        if self.conn is not None:
            try:
                self.conn.execute("ROLLBACK")
            finally:
                self.conn.close()
                self.conn = None
