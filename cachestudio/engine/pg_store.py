"""The store as a table on a real PostgreSQL server: a drop-in for ``backends.Store``.

Same interface and promises: ``read`` returns ``(version, value)`` or None, ``write``
is one version-guarded upsert (an older version never replaces a newer one) returning
whether it changed the row, ``write_batch`` is all or nothing in one transaction, the
counters ``reads``/``rows_written``/``transactions`` and injected latency are Store's
(the one fault layer, ``backends.StoreFaultLayer``), and failures are ``StoreUnavailable``.

An outage is real for readers too (``outage_is_real_for_reads``): ``LOCK TABLE items IN
ACCESS EXCLUSIVE MODE`` blocks every SELECT. Each session sets ``lock_timeout`` to the
store knob ``timeout_ms`` (what SQLite's busy timeout means: how long a call waits for
a lock), so a call under an outage fails in bounded time, and a ``statement_timeout``
as a safety net for anything else that hangs. A lock or statement timeout, or a lost
connection, is transient (``hard=False``): the next call on that thread reconnects (a
call that finds its idle connection broken by a server restart reconnects and runs
once more at once: the guarded upsert is idempotent).
Disk full, I/O errors, corrupt data or a missing table are hard.

The commit log (DESIGN.md §4) is a table of our own beside ``items``, ``commits`` (for
another ``table``: ``<table>_commits``): an upsert is one statement, ``WITH up AS (INSERT …
ON CONFLICT … RETURNING key, version) INSERT INTO commits SELECT …``, so a row is logged
exactly when the guarded upsert changed it, in the same transaction, with its writer
(lane, node, incarnation) and its transaction id (``xid``). PostgreSQL numbers rows when
they are written, not when they commit, so the order of a death (:func:`pg_store_at_death`)
is the store's own visibility: the death row holds the snapshot taken right after the kill
(``pg_current_snapshot()``), and the commits ordered before it are those visible in it
(``pg_visible_in_snapshot``). Each connection is named ``application_name = cs n<node>
i<inc> <schema>``, so that the observer can wait for a killed node's server processes to
end (a statement the node sent before it died may still commit) before it judges. Needs
PostgreSQL 13 or later.
"""

from __future__ import annotations

import threading
import time

import psycopg
from psycopg import sql

from .backends import COMMITS_COLUMNS, NOBODY, StoreFaultLayer, StoreUnavailable, Writer
from .config import ConfigError, Latency, StoreKnobs

#: Seconds libpq waits to connect (its minimum is 2): a down server on a unix socket is
#: refused at once anyway.
CONNECT_TIMEOUT_S = 2
#: The statement timeout: this many times the lock timeout, at least this many ms.
STATEMENT_TIMEOUT_FACTOR = 10
STATEMENT_TIMEOUT_MIN_MS = 2000

#: SQLSTATEs of failures that do not pass by themselves.
HARD = (
    psycopg.errors.DiskFull,
    psycopg.errors.IoError,
    psycopg.errors.DataCorrupted,
    psycopg.errors.IndexCorrupted,
    psycopg.errors.UndefinedTable,
    psycopg.errors.UndefinedColumn,
    psycopg.errors.InsufficientPrivilege,
)

#: The batch's staging table: one per session, emptied at each commit (and gone with
#: a rollback of the transaction that created it: hence created inside it, and again
#: on a new connection).
BATCH_DDL = (
    "CREATE TEMP TABLE IF NOT EXISTS cachestudio_batch (key TEXT, version BIGINT, value TEXT, "
    "updated_at DOUBLE PRECISION) ON COMMIT DELETE ROWS"
)
BATCH_COPY = "COPY cachestudio_batch (key, version, value, updated_at) FROM STDIN"

SHAPE = {"key": "text", "version": "bigint", "value": "text", "updated_at": "double precision"}

#: The commit log's table (see the module's docstring); rows a table held before it had a
#: log are logged once as ``base`` rows.
COMMITS_DDL = (
    "CREATE TABLE {c} (seq BIGSERIAL PRIMARY KEY, kind TEXT NOT NULL DEFAULT 'commit', key TEXT, "
    "version BIGINT, lane TEXT, node INTEGER, inc INTEGER, xid xid8 DEFAULT pg_current_xact_id(), snap pg_snapshot)"
)
#: What is appended to a guarded upsert to log the rows it changed.
LOG_TAIL = (
    " RETURNING key, version) INSERT INTO {c} (key, version, lane, node, inc) SELECT key, version, %s, %s, %s FROM up"
)


def commits_table(table: str) -> str:
    """The commit log's table beside ``table``."""
    return "commits" if table == "items" else f"{table}_commits"


def app_name(schema: str, node: int, inc: int) -> str:
    """The ``application_name`` of a writer's connections (at most 63 characters)."""
    return f"cs n{node} i{inc} {schema}"[:63]


def check_schema(schema: str) -> str:
    """A schema name the lab makes (``cs_...``): letters, digits and underscores only, so
    that it can go into libpq's ``options`` unquoted."""
    if schema and not (schema.isascii() and schema.replace("_", "").isalnum() and len(schema) <= 63):
        raise ConfigError(f"PostgreSQL schema name {schema!r}: letters, digits and _ only (at most 63)")
    return schema


def search_path(schema: str) -> str:
    """libpq ``options`` that make ``schema`` the session's only schema ('' for none)."""
    return f" -c search_path={schema}" if schema else ""


def _failure(what: str, exc: psycopg.Error) -> StoreUnavailable:
    hard = isinstance(exc, HARD) or not isinstance(exc, psycopg.OperationalError)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return StoreUnavailable(f"{what} failed: {text}" + (f" ({type(exc).__name__})" if hard else ""), hard=hard)


class PostgresStore(StoreFaultLayer):
    """The ``table`` (default ``items``) of a PostgreSQL database; one connection per
    thread (as Store does), in autocommit: a single statement is its own transaction."""

    def __init__(
        self,
        conninfo: str,
        knobs: StoreKnobs,
        latency: Latency,
        table: str = "items",
        schema: str = "",
        writer: Writer | None = NOBODY,
    ):
        self.conninfo = conninfo
        self.schema = check_schema(schema)
        self.knobs = knobs
        self.table = table
        #: Whose commits this store logs (None: no log; the bench's yardstick only).
        self.writer = writer
        self.commits = commits_table(table)
        self._init_faults(latency)  # its injected_read_outage stays off: PostgreSQL fails reads for real
        self._local = threading.local()
        t = sql.Identifier(table)
        self._select = sql.SQL("SELECT version, value FROM {} WHERE key = %s").format(t)
        head, tail = ("WITH up AS (", LOG_TAIL) if writer is not None else ("", "")
        guard = (
            "ON CONFLICT (key) DO UPDATE SET version = excluded.version, value = excluded.value, "
            "updated_at = excluded.updated_at WHERE {t}.version < excluded.version"
        )
        self._upsert = sql.SQL(
            head + "INSERT INTO {t} (key, version, value, updated_at) VALUES (%s, %s, %s, %s) " + guard + tail
        ).format(t=t, c=sql.Identifier(self.commits))
        self._upsert_batch = sql.SQL(
            head + "INSERT INTO {t} (key, version, value, updated_at) "
            "SELECT DISTINCT ON (key) key, version, value, updated_at FROM cachestudio_batch "
            "ORDER BY key, version DESC " + guard + tail
        ).format(t=t, c=sql.Identifier(self.commits))
        self._logged = (writer.lane, writer.node, writer.inc) if writer is not None else ()
        self._app = app_name(schema, writer.node, writer.inc) if writer is not None else "cachestudio"
        lock_ms = max(1, int(knobs.timeout_ms))
        stmt_ms = max(STATEMENT_TIMEOUT_MIN_MS, STATEMENT_TIMEOUT_FACTOR * lock_ms)
        self._options = f"-c lock_timeout={lock_ms} -c statement_timeout={stmt_ms}" + search_path(schema)
        self._settle_lock = threading.Lock()
        self._unsettled = True
        try:
            self._settle()
        except StoreUnavailable as exc:
            if exc.hard:
                raise ConfigError(f"PostgreSQL table {table}: {exc}") from None
            # Unreachable or locked now: the lab comes up anyway, as a real node would,
            # and the first store call settles the table (failing meanwhile, counted).

    def _settle(self) -> None:
        """Check the table's shape, then create it if it is missing."""
        try:
            conn = self._connect()
            if self.schema:  # before anything else: without it current_schema() is NULL
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
            rows = conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = %s",
                (self.table,),
            ).fetchall()
            if rows:
                cols: dict[str, str] = dict(rows)
                if cols != SHAPE:
                    found = ", ".join(f"{n} {t}" for n, t in cols.items())
                    raise StoreUnavailable(f"table {self.table} has another shape ({found})", hard=True)
            else:
                conn.execute(
                    sql.SQL(
                        "CREATE TABLE IF NOT EXISTS {} (key TEXT PRIMARY KEY, "
                        "version BIGINT NOT NULL, value TEXT, updated_at DOUBLE PRECISION)"
                    ).format(sql.Identifier(self.table))
                )
            self._settle_log(conn)
        except psycopg.Error as exc:
            self._drop_conn()
            raise _failure("DB setup", exc) from None
        self._unsettled = False

    def _settle_log(self, conn: psycopg.Connection) -> None:
        """Make the commit log if it is missing (logging the rows already there as ``base``)."""
        found = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = %s ORDER BY ordinal_position",
            (self.commits,),
        ).fetchall()
        if found:
            names = tuple(name for (name,) in found)
            if names[: len(COMMITS_COLUMNS)] != COMMITS_COLUMNS:
                raise StoreUnavailable(f"table {self.commits} is not a commit log ({', '.join(names)})", hard=True)
            return
        c, t = sql.Identifier(self.commits), sql.Identifier(self.table)
        with conn.transaction():
            conn.execute(sql.SQL(COMMITS_DDL).format(c=c))
            conn.execute(
                sql.SQL("INSERT INTO {} (kind, key, version) SELECT 'base', key, version FROM {}").format(c, t)
            )

    def ensure_table(self) -> None:
        """Check or create the table now; StoreUnavailable if the server cannot be reached
        (the constructor lets a lab come up without it, as a real node would)."""
        if self._unsettled:
            with self._settle_lock:
                if self._unsettled:
                    self._settle()

    def _connect(self) -> psycopg.Connection:
        """The calling thread's connection; a new one if it has none or it broke."""
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.broken:
            if conn is not None:
                conn.close()
            self._local.conn = None
            conn = psycopg.connect(
                self.conninfo,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT_S,
                options=self._options,
                application_name=self._app,
            )
            self._local.conn = conn
            self._local.fresh = True
        return conn

    def _run(self, what: str, call):
        """``call(conn)`` on the thread's connection; failures become counted ones.

        A connection that was idle when the server went away (a restart) is found broken
        only by the next statement: that call reconnects and runs once more, so the first
        call after a restart does not fail for nothing. Only once, and only for an old
        connection: a server that is down still fails the call at once. Running a write
        twice is harmless: the upsert is version-guarded (idempotent)."""
        for attempt in range(2):
            conn = None
            try:
                self.ensure_table()
                conn = self._connect()
                fresh, self._local.fresh = getattr(self._local, "fresh", False), False
                return call(conn)
            except psycopg.Error as exc:
                lost = conn is not None and (conn.closed or conn.broken)
                self._drop_conn()
                if lost and not fresh and attempt == 0:
                    continue
                raise _failure(what, exc) from None

    def _drop_conn(self) -> None:
        """Forget a connection a failure broke (the next call reconnects)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and (conn.closed or conn.broken):
            conn.close()
            self._local.conn = None

    @property
    def outage_is_real_for_reads(self) -> bool:
        """An ACCESS EXCLUSIVE lock blocks readers too."""
        return True

    def _fetch(self, key: str) -> tuple[int, str] | None:
        return self._run("DB read", lambda conn: conn.execute(self._select, (key,)).fetchone())

    def _put(self, key: str, version: int, value: str, now: float) -> bool:
        args = (key, version, value, now, *self._logged)
        return self._run("DB write", lambda conn: conn.execute(self._upsert, args)).rowcount > 0

    def _put_batch(self, rows: list[tuple[str, int, str]], now: float) -> None:
        """COPY into a session-local temp table, then one upsert from it (latest version per
        key: one INSERT may not update a row twice). Measured on 1,000 rows against a local
        server: 7-9 ms, against 29-32 ms for ``executemany`` (psycopg's pipeline)."""

        def run(conn: psycopg.Connection) -> None:
            staged = getattr(self._local, "batch_table_of", None) is conn
            with conn.transaction():
                if not staged:
                    conn.execute(BATCH_DDL)
                with conn.cursor() as cur:
                    with cur.copy(BATCH_COPY) as copy:
                        for key, version, value in rows:
                            copy.write_row((key, version, value, now))
                    cur.execute(self._upsert_batch, self._logged or None)
            self._local.batch_table_of = conn  # committed: the temp table stays

        self._run("DB write", run)

    def close(self) -> None:
        """Close the calling thread's connection (one per thread)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass
            self._local.conn = None


def pg_connect(conninfo: str, schema: str = "", timeout_ms: float = 0) -> psycopg.Connection:
    """An autocommit connection whose search path is ``schema``; ``timeout_ms``: its lock
    and statement timeouts (0: none)."""
    options = search_path(check_schema(schema))
    if timeout_ms:
        options += f" -c lock_timeout={int(timeout_ms)} -c statement_timeout={int(timeout_ms)}"
    return psycopg.connect(conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S, options=options.strip())


def pg_rows(conn: psycopg.Connection, columns: str = "key, version", table: str = "items") -> list[tuple]:
    """Every row of ``table`` (in the connection's schema), [] if there is no such table."""
    if conn.execute("SELECT to_regclass(%s)", (sql.Identifier(table).as_string(conn),)).fetchone()[0] is None:
        return []
    return conn.execute(sql.SQL("SELECT " + columns + " FROM {}").format(sql.Identifier(table))).fetchall()


def pg_store_versions(conninfo: str, table: str = "items", schema: str = "", timeout_ms: float = 0) -> dict[str, int]:
    """Version of every row of ``table``, for the audit ({} if there is no such table)."""
    with pg_connect(conninfo, schema, timeout_ms) as conn:
        return dict(pg_rows(conn, table=table))


#: The store at a death (see the module's docstring): the ``base`` rows, the rows visible in
#: the death's snapshot, and every commit of the dead writer.
_AT_DEATH = (
    "SELECT key, MAX(version) FROM {c} WHERE kind <> 'death' AND (kind = 'base' "
    "OR pg_visible_in_snapshot(xid, %(snap)s::pg_snapshot) OR (kind = 'commit' AND node = %(node)s AND inc = %(inc)s)) "
    "GROUP BY key"
)


def wait_gone(conn: psycopg.Connection, name: str, timeout_s: float) -> bool:
    """Wait (bounded) until no server process serves a connection named ``name``: a killed
    node's statements have then committed or failed. False if some still did at the end."""
    deadline = time.monotonic() + timeout_s
    query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND pid <> pg_backend_pid()"
    while conn.execute(query, (name,)).fetchone()[0]:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.002)
    return True


def pg_mark_death(conn: psycopg.Connection, dead: Writer, table: str = "items") -> str:
    """Mark ``dead``'s death in the commit log, as soon after the kill as can be: a ``death``
    row holding the snapshot taken then (the commits visible in it are those ordered before
    the death). Returns that snapshot (text).

    ``conn``: in the lane's schema; autocommit (the death row commits at once), or the
    outage's own connection, whose open transaction holds the table's lock (the row commits
    when the outage ends; no other writer commits meanwhile)."""
    query = sql.SQL(
        "INSERT INTO {} (kind, lane, node, inc, snap) VALUES ('death', %s, %s, %s, pg_current_snapshot()) "
        "RETURNING snap::text"
    ).format(sql.Identifier(commits_table(table)))
    return conn.execute(query, (dead.lane, dead.node, dead.inc)).fetchone()[0]


def pg_store_at_death(
    conn: psycopg.Connection, schema: str, dead: Writer, snap: str, table: str = "items", timeout_s: float = 5.0
) -> dict[str, int]:
    """The store as it was at the death marked with ``snap`` (:func:`pg_mark_death`): the
    commits visible in that snapshot and every commit of the dead writer. Waits first (at
    most ``timeout_s``) for the dead node's server processes to end: a statement it sent
    before it died may still commit."""
    wait_gone(conn, app_name(schema, dead.node, dead.inc), timeout_s)
    query = sql.SQL(_AT_DEATH).format(c=sql.Identifier(commits_table(table)))
    return dict(conn.execute(query, {"snap": snap, "node": dead.node, "inc": dead.inc}).fetchall())


def pg_commit_rows(conn: psycopg.Connection, table: str = "items") -> list[tuple]:
    """The commit log in the store's own order, renumbered 1, 2, …: each death right after
    the commits visible in its snapshot (and not in an earlier death's). Deaths are marked
    one after another, so each one's snapshot sees all that the one before it saw: an order
    that puts every commit on the same side of every death as PostgreSQL did."""
    c = commits_table(table)
    if conn.execute("SELECT to_regclass(%s)", (sql.Identifier(c).as_string(conn),)).fetchone()[0] is None:
        return []
    rows = conn.execute(
        sql.SQL(
            # the deaths first (a handful), materialised: each commit is matched against them
            # alone, not against the whole log (a 12 s lesson's log timed out, quadratic)
            "WITH d AS MATERIALIZED (SELECT seq, snap FROM {c} WHERE kind = 'death') "
            "SELECT c.seq, c.kind, c.key, c.version, c.lane, c.node, c.inc, CASE WHEN c.kind = 'death' THEN c.seq "
            "ELSE (SELECT min(d.seq) FROM d WHERE pg_visible_in_snapshot(c.xid, d.snap)) END "
            "FROM {c} c"
        ).format(c=sql.Identifier(c))
    ).fetchall()
    never = float("inf")
    rows.sort(key=lambda r: (never if r[7] is None else r[7], r[1] == "death", r[0]))
    return [(i, *r[1:7]) for i, r in enumerate(rows, 1)]
