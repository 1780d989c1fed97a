"""Throw-away Redis and PostgreSQL servers for one run (issue 14, "Beyond one machine").

The lab starts its own servers inside a run directory and stops them at the end, so a
run never touches (or depends on) a server the machine already has. Each server listens
only on a unix socket in that directory: no TCP port, so no password is needed and
nothing outside this machine, nor another user, can reach it.

Both servers are children of this process, each in its own session (process group): a
Ctrl-C in the terminal reaches the lab alone, which then stops its servers cleanly.
Being our children, a killed server is reaped by us and leaves no zombie, even in a
container whose PID 1 never reaps (``tail -f /dev/null`` in CI container jobs). That is
why PostgreSQL's ``postgres`` is started directly rather than through ``pg_ctl start``,
which would orphan it; ``stop`` sends SIGINT, which is exactly what ``pg_ctl stop -m
fast`` sends.

Nothing is left behind where we can arrange it: ``stop`` waits for the server to exit
and removes its socket; an ``atexit`` hook stops every server still running when Python
exits (a normal exit, an exception, SIGINT's KeyboardInterrupt); and since SIGTERM's
default action ends Python *without* running ``atexit``, the first ``start`` made in the
main thread installs a SIGTERM handler that raises ``SystemExit(143)`` -- unless the
program already handles SIGTERM itself. A SIGKILL of this process cannot be handled, so
each server is started with a parent-death signal (``setpriv --pdeathsig``): it gets its
clean-stop signal when its owner dies, however. Where that is not available, a server of a
SIGKILLed owner keeps running, and a later ``start`` on the same directory refuses with
the orphan's pid rather than start a second server beside it.

Running as root: ``initdb`` and ``postgres`` refuse to run as root, so they run as the
user ``postgres`` (Debian's package creates it), set by ``subprocess`` itself (no
``runuser``, hence no PAM session per command). All of PostgreSQL's files live in the
server's own subdirectory ``DIR/postgres`` (data in ``pgdata``, the socket, the log),
which is chowned to ``postgres``; the same layout is used for every user. We decided
against moving the files somewhere ``postgres`` can reach (a directory of our making in
/tmp): a lab killed by SIGKILL would leave a 40 MB cluster there that no one knows about,
and a kept run directory would lack its server's log. Nor do we change the permissions
of directories we did not make. So if ``postgres`` cannot traverse the path to ``DIR``
(``/tmp/pytest-of-root``, ``/root`` and whatever ``tempfile.mkdtemp`` makes are mode
700), ``start`` fails with a ServerError naming the directory in the way; the caller
chooses a run directory under a traversable one, or makes its own directories
traversable (mode 711).
"""

from __future__ import annotations

import atexit
import os
import pwd
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Where Debian installs PostgreSQL's server programs, one ``N/bin`` per major version
#: (a module constant so that a test can point it elsewhere).
PG_SEARCH_ROOT = Path("/usr/lib/postgresql")
#: Who runs PostgreSQL when the lab runs as root.
PG_OS_USER = "postgres"
PG_ROLE = "cachestudio"
PG_DATABASE = "cachestudio"
#: Only names the socket file (``.s.PGSQL.5432``); there is no TCP listener.
PG_PORT = 5432
#: A unix socket's path has at most 107 bytes (``sun_path`` is 108 with its NUL).
SOCKET_PATH_MAX = 107
#: Servers stop when their owner dies, even by SIGKILL (``_Server._spawn``); off, they live
#: on as orphans, which the next start in their directory names (a test turns it off).
PDEATHSIG = True
#: How long ``kill`` lets a killed server's child processes exit on their own.
ORPHAN_EXIT_S = 5.0


class ServerError(Exception):
    """One line for the user: a server that could not be found, started or reached."""


def _poll(condition, timeout: float, interval: float = 0.01) -> bool:
    """Poll ``condition`` until true (True) or until ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def alive(pid: int, started: str | None = None) -> bool:
    """Whether process ``pid`` exists and is not a zombie (a zombie has exited); with
    ``started`` (its start time, from :func:`children`), whether it is still that process
    and not a later one given the same pid."""
    stat = _proc_stat(pid)
    return stat is not None and stat[0] not in ("Z", "X") and started in (None, stat[19])


def children(pid: int) -> dict[int, str]:
    """The live child processes of ``pid``, each with its start time. PostgreSQL's are
    each in a session of their own, so a process group would not find them."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _proc_stat(int(entry.name))
            if stat is not None and stat[0] not in ("Z", "X") and int(stat[1]) == pid:
                found[int(entry.name)] = stat[19]
    return found


def _gone(processes: dict[int, str]) -> bool:
    return not any(alive(pid, started) for pid, started in processes.items())


def _kill_all(processes: dict[int, str]) -> None:
    for pid, started in processes.items():
        if alive(pid, started):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _check_socket_path(path: Path) -> None:
    size = len(os.fsencode(path))
    if size > SOCKET_PATH_MAX:
        raise ServerError(
            f"socket path too long for a unix socket ({size} bytes, at most "
            f"{SOCKET_PATH_MAX}): {path}; choose a shorter run directory"
        )


#: The pid and time that begin a line of Redis's log or of PostgreSQL's.
LOG_PREFIX = re.compile(r"^(\d+:[A-Z] \d+ \w+ \d+ [\d:.]+ [.*#-] |\d{4}-\d\d-\d\d [\d:.]+ \S+ \[\d+\] )")


def _log_reason(log: Path, prefer: str = "") -> str:
    """The line of ``log`` that best says why a server stopped (the last one containing
    ``prefer`` if any, else the last one), without its pid and time."""
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    chosen = [ln for ln in lines if prefer and prefer in ln] or lines
    return LOG_PREFIX.sub("", chosen[-1]) if chosen else "nothing in its log"


def _leftover(pid_file: Path, program: str) -> int | None:
    """The pid in ``pid_file`` (first line) if that process is a live ``program``."""
    try:
        pid = int(pid_file.read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return None
    return pid if alive(pid) and program.encode() in cmdline else None


# -- Stopping whatever is still running when Python exits ------------------------------

_running: set[_Server] = set()


def _stop_all() -> None:
    for server in list(_running):
        try:
            server.stop()
        except Exception:  # noqa: BLE001 - at exit, stop the others whatever one did
            pass


atexit.register(_stop_all)


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


def _stop_on_sigterm() -> None:
    """Let SIGTERM end Python through ``atexit`` (its default action skips it), unless
    the program handles SIGTERM itself. Only the main thread may set a handler."""
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _exit_on_sigterm)


class _Server:
    """What both servers share: a child in its own session, started and waited for,
    killed (a crash fault) or stopped (cleanly, idempotently), a context manager."""

    program = ""  # the name in messages and in /proc/PID/cmdline
    _stop_signal = signal.SIGTERM  # what asks the server for a clean shutdown
    log: Path  # the server's own log (each kind says where)

    def __init__(self, directory: Path):
        self.directory = Path(directory).absolute()
        self._proc: subprocess.Popen | None = None
        self._lock = threading.RLock()
        self._version: str | None = None
        #: Why the server died on its own (not by ``kill`` or ``stop``), once noticed by
        #: :meth:`death`: "pid 812 killed by signal 9 (SIGKILL)". Cleared by ``start``.
        self.died: str | None = None
        #: The pid it had when it died on its own.
        self.died_pid: int | None = None

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs, else None."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def death(self) -> str | None:
        """Whether the server died on its own -- not by our ``kill`` (a crash fault) or
        ``stop`` -- and why: "killed by signal 9 (SIGKILL)" or "exit status 1: <its log's
        last line>". Noticed once (it is then :attr:`died` until the next ``start``); None
        while it runs, and for a server we stopped or killed. A watcher calls it."""
        with self._lock:
            proc = self._proc
            if proc is not None and proc.poll() is not None:
                self.died_pid, self.died = proc.pid, exit_cause(proc.returncode, self.log)
                self._proc = None
            return self.died

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def _spawn(self, argv: list, log: Path, **kwargs) -> None:
        """Start ``argv`` with its output appended to ``log`` (a startup error is there).

        Through ``setpriv --pdeathsig`` (util-linux) where it is there and ``PDEATHSIG`` is
        on: the server gets its clean-stop signal when the thread that started it dies,
        so an owner killed by SIGKILL (a window closed by force, its observer killed with
        it) leaves no server behind either. Start servers from a thread that lives as long
        as they should (the main thread: the observer's, the command line's)."""
        _stop_on_sigterm()
        self.died = self.died_pid = None
        argv = [str(a) for a in argv]
        setpriv = shutil.which("setpriv") if PDEATHSIG else None
        if setpriv is not None:
            argv = [setpriv, "--pdeathsig", signal.Signals(self._stop_signal).name[3:], "--"] + argv
        with open(log, "ab") as out:
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **kwargs
            )
        _running.add(self)

    def _wait_ready(self, ready, timeout: float, log: Path, prefer: str = "") -> None:
        """Wait until ``ready()``; a server that exits or stays silent is a ServerError."""
        proc = self._proc

        def done() -> bool:
            return proc.poll() is not None or ready()

        if _poll(done, timeout) and proc.poll() is None:
            return
        if proc.poll() is None:
            self._kill(patient=False)
            raise ServerError(f"{self.program} did not answer within {timeout:g} s (see {log})")
        self._proc = None
        raise ServerError(
            f"{self.program} exited while starting (status {proc.returncode}): {_log_reason(log, prefer)} (see {log})"
        )

    def _kill(self, patient: bool) -> None:
        """SIGKILL the server's main process and reap it. Its children then get their
        SIGKILL at once, or (``patient``) after ``ORPHAN_EXIT_S`` if they have not
        exited on their own by then, as they do after a real crash; wait until gone."""
        proc = self._proc
        left = children(proc.pid)
        proc.kill()
        proc.wait()
        self._proc = None
        # A PostgreSQL backend exits when it sees its postmaster die; one still running
        # holds the old shared memory, and the next start would refuse to run.
        if not (patient and _poll(lambda: _gone(left), ORPHAN_EXIT_S)):
            _kill_all(left)
            _poll(lambda: _gone(left), ORPHAN_EXIT_S)

    def kill(self) -> None:
        """A crash fault: SIGKILL the server (its main process, as a crash would), then
        wait until its children are gone too, so that ``start`` can follow at once.
        The socket file stays behind, as after a real crash."""
        with self._lock:
            if self.pid is not None:
                self._kill(patient=True)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server cleanly (SIGKILL if it has not exited within ``timeout``) and
        remove its socket. Stopping a stopped server does nothing."""
        with self._lock:
            proc = self._proc
            if proc is not None and proc.poll() is None:
                proc.send_signal(self._stop_signal)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self._kill(patient=False)
            self._proc = None
            self._remove_leftovers()
            _running.discard(self)

    def _remove_leftovers(self) -> None:
        raise NotImplementedError


def exit_cause(status: int, log: Path) -> str:
    """A process's end in words, from its exit status (``Popen.returncode``: negative, the
    signal that killed it) and, for an exit, its log's last line."""
    if status < 0:
        try:
            name = f" ({signal.Signals(-status).name})"
        except ValueError:
            name = ""
        return f"killed by signal {-status}{name}"
    return f"exit status {status}: {_log_reason(log)}"


#: How the run's own redis-server may keep its data: its ``appendfsync`` policy, or no
#: persistence at all (no AOF, no snapshot). "always" fsyncs the append-only file before
#: it replies, so a write it acknowledged survives any kill (and an OS crash);
#: "everysec" writes the file before the reply too, unless a slow fsync holds it back (up
#: to 2 s: Redis then replies first), and fsyncs once a second.
REDIS_PERSISTENCE = {"": "no persistence", "everysec": "AOF everysec", "always": "AOF always"}


class RedisServer(_Server):
    """A ``redis-server`` on ``DIR/redis.sock``; with ``appendonly`` its writes go to an
    append-only file, fsynced as ``appendfsync`` says (every second by default, or
    ``always``: before each reply), so after a ``kill`` it comes back with what it had
    written (without, it comes back empty: no snapshot is ever saved)."""

    program = "redis-server"

    def __init__(self, directory: Path, appendonly: bool = False, appendfsync: str = "everysec"):
        super().__init__(directory)
        if appendfsync not in REDIS_PERSISTENCE or not appendfsync:
            raise ValueError(f"appendfsync: one of {', '.join(p for p in REDIS_PERSISTENCE if p)}")
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.socket = self.directory / "redis.sock"
        self.log = self.directory / "redis.log"
        # Written by redis itself: how a later start knows of a server left by a lab
        # that was SIGKILLed.
        self.pid_file = self.directory / "redis.pid"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def persistence(self) -> str:
        """ "AOF always", "AOF everysec" or "no persistence" (what tables and events say)."""
        return REDIS_PERSISTENCE[self.appendfsync if self.appendonly else ""]

    @property
    def version(self) -> str:
        if self._version is None:
            out = subprocess.run([redis_server(), "--version"], capture_output=True, text=True).stdout
            match = re.search(r"\bv=(\S+)", out)
            self._version = match.group(1) if match else out.strip()
        return self._version

    def start(self, timeout: float = 10.0, before_clients: Callable[[str], None] | None = None) -> None:
        """Start the server (if it is not running) and wait until it answers PING.
        ``before_clients``: called with a URL only we know, once the server answers and before
        any client can reach it -- it listens on a socket of another name, renamed into place
        afterwards (a listening unix socket is reached by whatever path names it): what a
        restarted server holds is read before anyone writes to it."""
        with self._lock:
            if self.pid is not None:
                return
            exe = redis_server()
            listen = self.socket if before_clients is None else self.socket.with_name(self.socket.name + ".back")
            _check_socket_path(self.socket)
            self.directory.mkdir(parents=True, exist_ok=True)
            other = _leftover(self.pid_file, self.program)
            if other is not None:
                raise ServerError(
                    f"a redis-server (pid {other}) left by an earlier run still serves "
                    f"{self.socket}: stop it (kill {other}) or choose another directory"
                )
            self.socket.unlink(missing_ok=True)  # a crashed server's; no one answers on it
            listen.unlink(missing_ok=True)
            self._spawn(
                [
                    exe,
                    "--port",
                    "0",
                    "--unixsocket",
                    listen,
                    "--unixsocketperm",
                    "700",
                    "--save",
                    "",
                    "--appendonly",
                    "yes" if self.appendonly else "no",
                    "--appendfsync",
                    self.appendfsync,
                    "--dir",
                    self.directory,
                    "--daemonize",
                    "no",
                    "--pidfile",
                    self.pid_file,
                ],
                self.log,
                cwd=self.directory,
            )
            self._wait_ready(lambda: self._answers(listen), timeout, self.log)
            if before_clients is not None:
                try:
                    before_clients(f"unix://{listen}")
                finally:
                    os.replace(listen, self.socket)

    def _answers(self, path: Path | None = None) -> bool:
        import redis  # imported when needed: it costs a lab that uses no Redis ~0.2 s
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        # One attempt per poll: the client's own retries back off for seconds.
        try:
            with redis.Redis(
                unix_socket_path=str(path or self.socket), socket_timeout=2, retry=Retry(NoBackoff(), 0)
            ) as client:
                return client.ping()
        except redis.exceptions.ConnectionError:  # refused, or still loading its AOF
            return False

    def _remove_leftovers(self) -> None:
        self.socket.unlink(missing_ok=True)
        self.pid_file.unlink(missing_ok=True)


def redis_server() -> str:
    """The path of ``redis-server`` on PATH."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise ServerError(
            "redis-server not found: install Debian's redis-server package (apt-get install redis-server)"
        )
    return exe


def postgres_bindir() -> Path:
    """The directory holding PostgreSQL's ``initdb`` and ``postgres``: that of ``initdb``
    on PATH, else the highest version under ``PG_SEARCH_ROOT`` (Debian's layout)."""
    candidates = []
    on_path = shutil.which("initdb")
    if on_path is not None:
        candidates.append(Path(on_path).resolve().parent)

    def version_key(bindir: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in bindir.parent.name.split("."))

    debian = [p for p in PG_SEARCH_ROOT.glob("*/bin") if re.fullmatch(r"\d+(\.\d+)*", p.parent.name)]
    candidates += sorted(debian, key=version_key, reverse=True)
    for bindir in candidates:
        if all(os.access(bindir / name, os.X_OK) for name in ("initdb", "postgres")):
            return bindir
    raise ServerError(
        f"PostgreSQL's initdb and postgres not found (on PATH or in {PG_SEARCH_ROOT}/*/bin): "
        "install Debian's postgresql package (apt-get install postgresql)"
    )


def _conninfo_value(value: str) -> str:
    """A libpq conninfo value, quoted (a path may hold spaces or quotes)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class PostgresServer(_Server):
    """A PostgreSQL cluster in ``DIR/postgres``, its socket there too, with a database
    ``cachestudio`` owned by the role ``cachestudio`` (trust authentication: only whoever
    can reach the socket, i.e. this user, can connect). After a ``kill`` the next
    ``start`` replays the WAL: every committed transaction is back. Settings are the
    defaults (fsync on: a commit costs what it costs on this disk) but for the socket."""

    program = "postgres"
    _stop_signal = signal.SIGINT  # a "fast" shutdown: what `pg_ctl stop -m fast` sends

    def __init__(self, directory: Path):
        super().__init__(directory)
        self.home = self.directory / "postgres"
        self.data = self.home / "pgdata"
        self.socket = self.home / f".s.PGSQL.{PG_PORT}"
        self.log = self.home / "postgres.log"

    def conninfo_for(self, dbname: str) -> str:
        return f"host={_conninfo_value(str(self.home))} port={PG_PORT} dbname={_conninfo_value(dbname)} user={PG_ROLE}"

    @property
    def conninfo(self) -> str:
        """A libpq connection string to the database ``cachestudio`` over the socket."""
        return self.conninfo_for(PG_DATABASE)

    @property
    def version(self) -> str:
        if self._version is None:
            out = subprocess.run([postgres_bindir() / "postgres", "--version"], capture_output=True, text=True).stdout
            match = re.search(r"\)\s+(\d+(?:\.\d+)*)", out)
            self._version = match.group(1) if match else out.strip()
        return self._version

    def start(self, timeout: float = 30.0) -> None:
        """Create the cluster the first time, start the server (if it is not running),
        wait until it takes connections and create the database if it is absent."""
        with self._lock:
            if self.pid is not None:
                return
            bindir = postgres_bindir()
            _check_socket_path(self.socket)
            as_user = self._prepare_home()
            other = _leftover(self.data / "postmaster.pid", self.program)
            if other is not None:
                raise ServerError(
                    f"a postgres server (pid {other}) left by an earlier run still uses "
                    f"{self.data}: stop it (kill -INT {other}) or choose another directory"
                )
            if not (self.data / "PG_VERSION").exists():
                self._initdb(bindir, as_user)
            self._spawn(
                [
                    bindir / "postgres",
                    "-D",
                    self.data,
                    "-k",
                    self.home,
                    "-c",
                    "listen_addresses=",
                    "-c",
                    f"port={PG_PORT}",
                ],
                self.log,
                cwd=self.home,
                **as_user,
            )
            self._wait_ready(lambda: self._connects("postgres"), timeout, self.log, prefer="FATAL")
            self._create_database()

    def _prepare_home(self) -> dict:
        """Make ``DIR/postgres``; as root, give it to the postgres user and check that
        this user can reach it. Returns the Popen arguments that run a command as the
        user PostgreSQL runs as (none when that is us)."""
        self.home.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            return {}
        try:
            pw = pwd.getpwnam(PG_OS_USER)
        except KeyError:
            raise ServerError(
                f"PostgreSQL refuses to run as root and there is no user {PG_OS_USER} to run "
                "it as: install Debian's postgresql package (apt-get install postgresql)"
            ) from None
        as_user: dict[str, Any] = {
            "user": pw.pw_uid,
            "group": pw.pw_gid,
            "extra_groups": os.getgrouplist(PG_OS_USER, pw.pw_gid),
        }
        os.chown(self.home, pw.pw_uid, pw.pw_gid)
        os.chmod(self.home, 0o700)

        def can(test: str, path: Path) -> bool:
            return subprocess.run([shutil.which("test") or "/usr/bin/test", test, str(path)], **as_user).returncode == 0

        if can("-w", self.home) and can("-x", self.home):
            return as_user
        blocker = next((p for p in reversed(self.home.parents) if not can("-x", p)), self.home)
        raise ServerError(
            f"as root, PostgreSQL runs as user {PG_OS_USER}, who cannot reach {self.home}: "
            f"{blocker} (mode {blocker.stat().st_mode & 0o7777:o}) is not searchable by it; "
            "choose a run directory every user can traverse to (mode 711 or 755)"
        )

    def _initdb(self, bindir: Path, as_user: dict) -> None:
        shutil.rmtree(self.data, ignore_errors=True)  # an initdb cut short left it unusable
        with open(self.log, "ab") as out:
            done = subprocess.run(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(self.data),
                    "-A",
                    "trust",
                    "-U",
                    PG_ROLE,
                    "--no-sync",
                    "-E",
                    "UTF8",
                    "--no-locale",
                    "--no-instructions",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.home,
                **as_user,
            )
        if done.returncode != 0:
            raise ServerError(f"initdb failed (status {done.returncode}): {_log_reason(self.log)} (see {self.log})")

    def _connects(self, dbname: str) -> bool:
        import psycopg  # imported when needed: it costs a lab that uses no PostgreSQL ~0.2 s

        try:
            with psycopg.connect(self.conninfo_for(dbname), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:  # refused, or "the database system is starting up"
            return False

    def _create_database(self) -> None:
        import psycopg

        with psycopg.connect(self.conninfo_for("postgres"), autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (PG_DATABASE,)).fetchone() is None:
                conn.execute(f'CREATE DATABASE "{PG_DATABASE}"')

    def stop(self, timeout: float = 30.0) -> None:
        """As for every server, with more time: a fast shutdown ends with a checkpoint."""
        super().stop(timeout)

    def _remove_leftovers(self) -> None:
        # A clean shutdown removes both; a killed server leaves them.
        self.socket.unlink(missing_ok=True)
        self.socket.with_name(self.socket.name + ".lock").unlink(missing_ok=True)
