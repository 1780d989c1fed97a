"""The fixtures every test module may ask for: a real diskcache cache and a real SQLite store
in tmp_path, write-behind knobs, and real throw-away servers (Redis, PostgreSQL), one of each
per test module and per process (so per xdist worker). Plain helpers live in helpers.py."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest
from helpers import ROOT, require
from hypothesis import HealthCheck, settings

sys.path.insert(0, str(ROOT))

from cachestudio.engine.backends import CacheBackend, Store  # noqa: E402 - after the path
from cachestudio.engine.config import CacheKnobs, Latency, StoreKnobs, WriteBehindKnobs  # noqa: E402

# Hypothesis's deadline (200 ms an example) and its too-slow health check time the machine,
# not the code: on a loaded machine a slow example fails as "unreliable test timings". No
# property here is about speed.
settings.register_profile("cachestudio", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("cachestudio")


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
        "--sweep",
        action="store",
        default=None,
        metavar="N|A:B",
        help="test_fault_timelines.py: run the seeded fault timelines 1..N (or A..B) instead of "
        "the short CI sample (also: environment variable CACHESTUDIO_SWEEP)",
    )


# -- real servers, shared by the tests of one module -----------------------------------

_names = itertools.count(1)  # prefixes and tables of their own on a shared server


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


@pytest.fixture
def make_redis_cache(redis_srv):
    """Make RedisCaches on the module's server, each under a prefix of its own (the tests
    share the server); they are shut down after the test. The server is the tests' own, as
    a run's own is: the caches set its maxmemory (``configure=False``: as on a given one)."""
    from cachestudio.engine.redis_cache import RedisCache

    made = []

    def make(configure: bool = True, **knobs):
        cache = RedisCache(
            redis_srv.url, CacheKnobs(**knobs), Latency(), prefix=f"t{next(_names)}:", configure=configure
        )
        made.append(cache)
        return cache

    yield make
    for cache in made:
        cache.shutdown()


@pytest.fixture
def make_pg_store(pg_srv):
    """Make PostgresStores on the module's database, each on a table of its own (the tests
    share the database); they are closed after the test."""
    from cachestudio.engine.pg_store import PostgresStore

    made = []

    def make(**knobs):
        store = PostgresStore(pg_srv.conninfo, StoreKnobs(**knobs), Latency(), table=f"items_{next(_names)}")
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()
