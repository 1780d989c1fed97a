"""The fault layer between a strategy and its backends is written once (backends.py:
CacheFaultLayer, StoreFaultLayer) and every backend goes through it: the store calls'
counters and the injected read outage behave alike on SQLite and on a real PostgreSQL,
and no backend writes its own copy of the layer."""

from __future__ import annotations

import pytest

from cachestudio.engine.backends import (
    CacheBackend,
    CacheFaultLayer,
    Store,
    StoreFaultLayer,
    StoreUnavailable,
)
from cachestudio.engine.config import Latency, StoreKnobs
from cachestudio.engine.pg_store import PostgresStore
from cachestudio.engine.redis_cache import RedisCache

CACHES = (CacheBackend, RedisCache)
STORES = (Store, PostgresStore)


@pytest.mark.parametrize("cls", CACHES + STORES, ids=lambda c: c.__name__)
def test_every_backend_goes_through_the_one_fault_layer(cls):
    layer = CacheFaultLayer if cls in CACHES else StoreFaultLayer
    assert issubclass(cls, layer)
    own = [
        name
        for name in vars(layer)
        if not name.startswith("__")
        and name in vars(cls)
        and name not in ("_fetch", "_put", "_put_batch", "INJECTED_OUTAGE")
    ]
    assert own == [], f"{cls.__name__} writes its own copy of the fault layer's {own}"


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request, tmp_path):
    if request.param == "sqlite":
        store = Store(tmp_path / "store.sqlite", StoreKnobs(), Latency())
    else:
        pg = request.getfixturevalue("pg_srv")
        store = PostgresStore(pg.conninfo, StoreKnobs(), Latency(), table="items_fault_layer")
    yield store
    store.close()


def test_counters_and_the_injected_read_outage_alike_on_every_store(any_store):
    s = any_store
    assert s.write("k1", 1, "one") is True
    assert s.write("k1", 1, "again") is False  # the version guard: not newer, not written
    s.write_batch([("k2", 1, "two"), ("k3", 1, "three")])
    assert (s.rows_written, s.transactions) == (4, 3)
    assert s.read("k1") == (1, "one") and s.reads == 1
    s.injected_read_outage = True
    with pytest.raises(StoreUnavailable, match="injected for reads") as err:
        s.read("k1")
    assert not err.value.hard and s.reads == 1  # refused before the database: not a call
    s.injected_read_outage = False
    assert s.read("k2") == (1, "two") and s.reads == 2
