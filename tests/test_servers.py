"""The lab's throw-away Redis and PostgreSQL servers (issue 14), run for real: each
listens on a unix socket only, survives (or not) a SIGKILL as it should, and leaves no
process and no socket behind -- also when the Python process that owns it is stopped.

Without redis-server or PostgreSQL installed these tests are skipped, saying what to
install, except under CI=true, where that is a failure: CI must run them."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest
import redis
from helpers import require, wait_until

from cachestudio.engine import servers
from cachestudio.engine.servers import PostgresServer, RedisServer, ServerError, alive, children

REPO = Path(__file__).resolve().parents[1]
PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>


@pytest.fixture
def redis_exe():
    return require(servers.redis_server)


@pytest.fixture
def pg_bindir():
    return require(servers.postgres_bindir)


@pytest.fixture
def run_dir():
    """A run directory every user can traverse to: as root, PostgreSQL runs as the user
    postgres, who cannot pass pytest's /tmp/pytest-of-root (mode 700)."""
    d = Path(tempfile.mkdtemp(prefix="cs-servers-"))
    d.chmod(0o711)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def tcp_listening_inodes() -> set[int]:
    """Inodes of every listening TCP socket (IPv4 and IPv6) of this network namespace."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if os.path.exists(table):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A":  # TCP_LISTEN
                    found.add(int(fields[9]))
    return found


def unix_listening_paths(inodes: set[int]) -> set[str]:
    paths = set()
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and int(fields[6]) in inodes and int(fields[3], 16) & 0x10000:  # __SO_ACCEPTCON
            paths.add(fields[7])
    return paths


def assert_only_unix_socket(pid: int, socket: Path):
    inodes = socket_inodes(pid)
    assert str(socket) in unix_listening_paths(inodes), "the server does not listen on its socket"
    assert not inodes & tcp_listening_inodes(), "the server listens on a TCP port"


def assert_gone(pid: int, socket: Path, kids: dict[int, str]):
    """The server ``pid`` and its children ``kids`` (:func:`children`) have exited and
    its socket is gone."""
    assert not alive(pid), f"server process {pid} still runs"
    assert not [kid for kid, started in kids.items() if alive(kid, started)], "a child of the server still runs"
    assert not os.path.lexists(socket), f"{socket} left behind"


# -- Redis ----------------------------------------------------------------------------


def test_redis_answers_on_its_socket_only_and_stop_leaves_nothing(redis_exe, run_dir):
    with RedisServer(run_dir) as server:
        pid = server.pid
        assert server.url == f"unix://{run_dir}/redis.sock"
        assert stat.S_ISSOCK(server.socket.stat().st_mode)
        with redis.Redis.from_url(server.url) as client:
            assert client.ping()
            assert client.set("k", "v") and client.get("k") == b"v"
        assert_only_unix_socket(pid, server.socket)
        server.start()  # running: nothing happens
        assert server.pid == pid
        assert re.fullmatch(r"\d+\.\d+\.\d+", server.version), server.version
        kids = children(pid)
    assert_gone(pid, server.socket, kids)
    assert server.pid is None
    server.stop()  # stopping twice is harmless


def test_redis_kill_without_appendonly_comes_back_empty(redis_exe, run_dir):
    with RedisServer(run_dir) as server:
        with redis.Redis(unix_socket_path=str(server.socket)) as client:
            client.mset({f"k{i}": i for i in range(100)})
            assert client.dbsize() == 100
        pid = server.pid
        server.kill()
        assert not alive(pid)
        assert server.pid is None
        assert server.socket.exists()  # as after a real crash
        server.start()
        assert server.pid != pid
        with redis.Redis(unix_socket_path=str(server.socket)) as client:
            assert client.dbsize() == 0


def test_redis_kill_with_appendonly_keeps_what_reached_the_file(redis_exe, run_dir):
    with RedisServer(run_dir, appendonly=True) as server:
        with redis.Redis(unix_socket_path=str(server.socket)) as client:
            assert client.info("persistence")["aof_enabled"] == 1
            client.mset({f"k{i}": i for i in range(100)})
            client.set("last", "written")

        def in_the_file() -> bool:
            return any(b"written" in f.read_bytes() for f in (run_dir / "appendonlydir").glob("*.incr.aof"))

        wait_until(in_the_file)
        server.kill()
        server.start()
        with redis.Redis(unix_socket_path=str(server.socket)) as client:
            assert client.dbsize() == 101
            assert client.get("last") == b"written" and client.get("k99") == b"99"


def test_a_server_that_dies_on_its_own_says_why_and_one_we_killed_does_not(redis_exe, run_dir):
    """``death``: the cause of a death we did not cause, from the process's own exit
    status (a signal, or an exit and its log's last line); None for our kill and stop."""
    with RedisServer(run_dir) as server:
        assert server.death() is None
        server.kill()  # a crash fault: ours, not a death
        assert server.death() is None
        server.start()
        pid = server.pid
        os.kill(pid, signal.SIGKILL)
        assert wait_until(server.death) == "killed by signal 9 (SIGKILL)"
        assert server.died_pid == pid and server.pid is None
        assert server.death() == "killed by signal 9 (SIGKILL)"  # it stays said
        server.start()  # a deliberate start: alive again, nothing to say
        assert server.death() is None
        os.kill(server.pid, signal.SIGTERM)  # redis-server saves nothing and exits 0
        cause = wait_until(server.death)
        assert cause.startswith("exit status 0: ") and len(cause.splitlines()) == 1, cause


def test_redis_appendfsync_always_is_in_force(redis_exe, run_dir):
    with RedisServer(run_dir, appendonly=True, appendfsync="always") as server:
        assert server.persistence == "AOF always"
        with redis.Redis(unix_socket_path=str(server.socket), decode_responses=True) as client:
            assert client.config_get("appendfsync") == {"appendfsync": "always"}
            assert client.info("persistence")["aof_enabled"] == 1
    assert RedisServer(run_dir).persistence == "no persistence"
    with pytest.raises(ValueError, match="appendfsync"):
        RedisServer(run_dir, appendonly=True, appendfsync="sometimes")


def test_redis_that_fails_to_start_is_one_clear_line(redis_exe, run_dir):
    (run_dir / "appendonlydir").write_text("a file where redis wants its directory")
    server = RedisServer(run_dir, appendonly=True)
    with pytest.raises(ServerError, match=r"redis-server exited while starting \(status \d+\): .*appendonly") as e:
        server.start()
    assert "\n" not in str(e.value)
    assert server.pid is None


def test_socket_path_too_long_is_refused(redis_exe, run_dir):
    deep = run_dir / ("d" * 100)
    with pytest.raises(ServerError, match="too long for a unix socket"):
        RedisServer(deep).start()
    assert not deep.exists()


# -- PostgreSQL -----------------------------------------------------------------------


def test_postgres_answers_on_its_socket_only_and_stop_leaves_nothing(pg_bindir, run_dir):
    with PostgresServer(run_dir) as server:
        pid = server.pid
        assert pid == int((server.data / "postmaster.pid").read_text().split()[0])
        with psycopg.connect(server.conninfo) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
            assert conn.execute("SELECT current_database(), current_user").fetchone() == ("cachestudio",) * 2
            assert conn.execute("SHOW listen_addresses").fetchone() == ("",)
        assert_only_unix_socket(pid, server.socket)
        assert re.fullmatch(r"\d+\.\d+", server.version), server.version
        kids = children(pid)
        assert kids, "a running postgres has its checkpointer, walwriter..."
    assert_gone(pid, server.socket, kids)
    assert not Path(f"{server.socket}.lock").exists()
    server.stop()  # stopping twice is harmless


def test_postgres_kill_then_start_keeps_committed_rows(pg_bindir, run_dir):
    with PostgresServer(run_dir) as server:
        with psycopg.connect(server.conninfo) as conn:
            conn.execute("CREATE TABLE items (key text PRIMARY KEY, value int)")
            conn.cursor().executemany("INSERT INTO items VALUES (%s, %s)", [(f"k{i}", i) for i in range(100)])
        pending = psycopg.connect(server.conninfo)
        pending.execute("INSERT INTO items VALUES ('uncommitted', -1)")
        pid = server.pid
        kids = children(pid)
        server.kill()
        assert not alive(pid)
        assert not [kid for kid, started in kids.items() if alive(kid, started)]
        pending.close()
        server.start()
        assert server.pid != pid
        assert "automatic recovery in progress" in server.log.read_text()  # it had crashed
        with psycopg.connect(server.conninfo) as conn:
            assert conn.execute("SELECT count(*), sum(value) FROM items").fetchone() == (100, sum(range(100)))
            assert conn.execute("SELECT 1 FROM items WHERE key = 'uncommitted'").fetchone() is None


def test_postgres_that_fails_to_start_is_one_clear_line(pg_bindir, run_dir):
    server = PostgresServer(run_dir)
    server.data.mkdir(parents=True)
    (server.data / "PG_VERSION").write_text("15\n")  # a cluster without its files
    with pytest.raises(ServerError, match=r"^postgres exited while starting \(status \d+\): .*postgresql\.conf") as e:
        server.start()
    assert "\n" not in str(e.value)
    assert server.pid is None


def test_as_root_a_directory_postgres_cannot_reach_is_named(pg_bindir, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("only root runs PostgreSQL as another user")
    closed = next((p for p in reversed(tmp_path.parents) if not p.stat().st_mode & 0o001), None)
    if closed is None:
        pytest.skip(f"every parent of {tmp_path} is traversable")
    mode = f"{closed.stat().st_mode & 0o7777:o}"
    with pytest.raises(ServerError, match=rf"cannot reach .*: {re.escape(str(closed))} \(mode {mode}\)"):
        PostgresServer(tmp_path).start()


# -- Both -----------------------------------------------------------------------------


def test_missing_binaries_are_server_errors_naming_the_package(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(servers, "PG_SEARCH_ROOT", tmp_path / "no-postgresql")
    with pytest.raises(ServerError, match=r"^redis-server not found: .*\(apt-get install redis-server\)$"):
        RedisServer(tmp_path).start()
    with pytest.raises(ServerError, match=r"not found .*\(apt-get install postgresql\)$"):
        PostgresServer(tmp_path).start()
    with pytest.raises(ServerError, match="apt-get install postgresql"):
        _ = PostgresServer(tmp_path).version


def test_the_highest_debian_postgresql_is_chosen(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(servers, "PG_SEARCH_ROOT", tmp_path)
    for version in ("9.6", "15", "16", "17"):
        (tmp_path / version / "bin").mkdir(parents=True)
        for name in ("initdb", "postgres") if version != "17" else ("initdb",):  # 17: incomplete
            (tmp_path / version / "bin" / name).touch(mode=0o755)
    assert servers.postgres_bindir() == tmp_path / "16" / "bin"


OWNER = """
import json, signal, sys
from pathlib import Path
from cachestudio.engine import servers
from cachestudio.engine.servers import PostgresServer, RedisServer, children
servers.PDEATHSIG = sys.argv[2] == "pdeathsig"  # off: the servers outlive a SIGKILLed owner
# As an interactive program has them (a CI shell may start us with SIGINT ignored).
signal.signal(signal.SIGINT, signal.default_int_handler)
signal.signal(signal.SIGTERM, signal.SIG_DFL)
redis, postgres = RedisServer(Path(sys.argv[1])), PostgresServer(Path(sys.argv[1]))
redis.start()
postgres.start()
print(json.dumps([{"pid": s.pid, "socket": str(s.socket), "children": children(s.pid)} for s in (redis, postgres)]),
      flush=True)
while True:
    signal.pause()
"""


def start_owner(run_dir: Path, pdeathsig: bool = True):
    """A Python process that starts both servers, says their pids and sockets, and waits."""
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(run_dir), "pdeathsig" if pdeathsig else "orphans"],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = owner.stdout.readline()
    if not line:
        owner.wait(30)
        pytest.fail(f"the owner failed: {owner.stderr.read()}")
    return owner, json.loads(line)


def kids_of(server: dict) -> dict[int, str]:
    """The children of a server as the owner reported them (JSON keys are text)."""
    return {int(kid): started for kid, started in server["children"].items()}


def kill_orphans(started):
    """SIGKILL whatever is left of the owner's servers and of their children."""
    left = {}
    for server in started:
        left |= {server["pid"]: None} | kids_of(server) | children(server["pid"])
    for pid, t in left.items():
        if alive(pid, t):
            os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not any(alive(pid, t) for pid, t in left.items()))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_owner_stopped_by_a_signal_leaves_no_server(redis_exe, pg_bindir, run_dir, signum):
    owner, started = start_owner(run_dir)
    try:
        owner.send_signal(signum)
        owner.wait(60)
        assert started[1]["children"], "postgres has children"
        for server in started:
            assert_gone(server["pid"], Path(server["socket"]), kids_of(server))
    finally:
        owner.kill()
        owner.communicate()
        kill_orphans(started)


@contextlib.contextmanager
def adopting_orphans():
    """Make this process the reaper of its orphaned descendants, and reap them at the end:
    the servers a SIGKILLed owner leaves would otherwise become zombies of PID 1, which
    may never reap them (``tail -f /dev/null`` in CI containers)."""
    libc = ctypes.CDLL(None, use_errno=True)
    adopted = libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    try:
        yield
    finally:
        if adopted:
            libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
            with contextlib.suppress(ChildProcessError):
                while os.waitpid(-1, os.WNOHANG)[0]:
                    pass


def test_a_sigkilled_owner_takes_its_servers_with_it(redis_exe, pg_bindir, run_dir):
    """No atexit runs after a SIGKILL; the parent-death signal stops the servers cleanly."""
    with adopting_orphans():
        owner, started = start_owner(run_dir)
        owner.kill()
        owner.communicate()
        try:
            for server in started:  # each stops as cleanly as on a stop, in its own time
                wait_until(lambda s=server: not alive(s["pid"]) and not os.path.lexists(s["socket"]), timeout=30)
                assert_gone(server["pid"], Path(server["socket"]), kids_of(server))
        finally:
            kill_orphans(started)


def test_servers_left_by_a_sigkilled_owner_are_named_not_doubled(redis_exe, pg_bindir, run_dir):
    with adopting_orphans():
        owner, started = start_owner(run_dir, pdeathsig=False)
        owner.kill()  # SIGKILL: no atexit, no parent-death signal: the servers live on
        owner.communicate()
        redis_pid, postgres_pid = (server["pid"] for server in started)
        try:
            assert alive(redis_pid) and alive(postgres_pid)
            with pytest.raises(ServerError, match=rf"redis-server \(pid {redis_pid}\) left by an earlier run"):
                RedisServer(run_dir).start()
            with pytest.raises(ServerError, match=rf"postgres server \(pid {postgres_pid}\) left by an earlier run"):
                PostgresServer(run_dir).start()
            assert alive(redis_pid) and alive(postgres_pid)
        finally:
            kill_orphans(started)
