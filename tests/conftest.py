"""Shared helpers: every test uses the real diskcache and the real SQLite, in tmp_path."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cachestudio.engine.backends import CacheBackend, Store  # noqa: E402
from cachestudio.engine.config import CacheKnobs, Latency, StoreKnobs, WriteBehindKnobs  # noqa: E402


def wait_until(condition, timeout: float = 10.0, interval: float = 0.005):
    """Poll ``condition`` until it is truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def require(find):
    """What ``find()`` returns; if it raises ServerError (a server is not installed), skip
    the test saying so -- or fail it under CI=true, where every test must run."""
    from cachestudio.engine.servers import ServerError

    try:
        return find()
    except ServerError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{exc} (CI=true: these tests must run)")
        pytest.skip(str(exc))


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "store.sqlite", StoreKnobs(), Latency())
    yield s
    s.close()


@pytest.fixture
def cache(tmp_path):
    c = CacheBackend(tmp_path / "cache", CacheKnobs(), Latency())
    yield c
    c.close()


@pytest.fixture
def wb_knobs():
    return WriteBehindKnobs(flush_interval_s=0.05, batch_size=10, capacity=100, retry_backoff_s=0.01)


def pytest_addoption(parser):
    parser.addoption(
        "--sweep", action="store", default=None, metavar="N|A:B",
        help="test_fault_timelines.py: run the seeded fault timelines 1..N (or A..B) instead of "
             "the short CI sample (also: environment variable CACHESTUDIO_SWEEP)")


@contextlib.contextmanager
def small_tmpfs(d: Path, size: str = "64k"):
    """A tmpfs of the given size mounted on ``d``, for a real full disk (root may mount one
    here; elsewhere the test is skipped, saying why)."""
    d.mkdir(exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(d)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {r.stderr.strip() or r.returncode}")
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)


# -- real servers, shared by the tests of one module -----------------------------------


@pytest.fixture(scope="module")
def server_dir():
    """Mode 711 under /tmp (short: a unix socket's path has a limit): as root, PostgreSQL
    runs as postgres, who must get through."""
    import shutil
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="cs-srv-"))
    d.chmod(0o711)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _server(make, find):
    from cachestudio.engine import servers

    require(getattr(servers, find))
    server = make()
    server.start()
    return server


@pytest.fixture(scope="module")
def redis_srv(server_dir):
    """A throw-away redis-server without persistence."""
    from cachestudio.engine.servers import RedisServer

    server = _server(lambda: RedisServer(server_dir / "redis"), "redis_server")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def aof_srv(server_dir):
    """A throw-away redis-server with an append-only file (fsync every second)."""
    from cachestudio.engine.servers import RedisServer

    server = _server(lambda: RedisServer(server_dir / "aof", appendonly=True), "redis_server")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pg_srv(server_dir):
    """A throw-away PostgreSQL cluster and database."""
    from cachestudio.engine.servers import PostgresServer

    server = _server(lambda: PostgresServer(server_dir / "pg"), "postgres_bindir")
    yield server
    server.stop()
