"""Every knob of a lane, with its unit, its default and its valid range.

The knobs are plain dataclasses so that they cross the process boundary to the lab
(pickled by multiprocessing) and so that the CLI, scenario files and (later) the
window validate them in one place: :func:`validate` raises :class:`ConfigError`
with one line that names the knob and what is wrong with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace

STRATEGIES = ("cache-aside", "write-through", "write-behind")
DISTRIBUTIONS = ("uniform", "zipf", "hotspot")
EVICTION_POLICIES = (
    "least-recently-stored",
    "least-recently-used",
    "least-frequently-used",
    "none",
)
JOURNAL_MODES = ("wal", "delete", "truncate", "persist", "memory")
SYNCHRONOUS = ("off", "normal", "full", "extra")
STAMPEDE = ("none", "single-flight", "lease")
BACKPRESSURE = ("block", "reject")

#: Short codes used in record ids ("wb#123") and file names.
LANE_CODES = {"cache-aside": "ca", "write-through": "wt", "write-behind": "wb"}


#: Knobs a running lab applies at once; every other knob takes effect at the next reset.
LIVE_KNOBS = {
    ("workload", "rate"), ("workload", "read_ratio"), ("workload", "keys"), ("workload", "distribution"),
    ("workload", "zipf_s"), ("workload", "hot_fraction"), ("workload", "hot_weight"),
    ("workload", "value_size"), ("workload", "concurrency"),
    ("cache", "ttl_s"), ("cache", "size_limit_mb"), ("cache", "eviction"), ("cache", "stampede"),
    ("cache", "lease_ttl_s"),
    ("write_behind", "flush_interval_s"), ("write_behind", "batch_size"), ("write_behind", "capacity"),
    ("write_behind", "backpressure"), ("write_behind", "block_timeout_s"), ("write_behind", "retry_limit"),
    ("write_behind", "retry_backoff_s"),
    ("latency", "cache_ms"), ("latency", "db_read_ms"), ("latency", "db_write_ms"),
}
SECTIONS = ("workload", "cache", "store", "write_behind", "latency")


class ConfigError(ValueError):
    """A knob has a value that cannot be used. The message is one line for the user."""


@dataclass
class Workload:
    rate: float = 0.0  # operations per second for the whole lane; 0 = as fast as possible
    read_ratio: float = 0.8  # fraction of operations that are reads
    keys: int = 1000  # key space: k0 .. k{keys-1}
    distribution: str = "zipf"  # uniform | zipf | hotspot
    zipf_s: float = 1.1  # zipf exponent (k0 is the hottest key)
    hot_fraction: float = 0.2  # hotspot: this fraction of the keys ...
    hot_weight: float = 0.8  # ... receives this fraction of the operations
    value_size: int = 100  # bytes of value text per write
    concurrency: int = 1  # client threads issuing operations


@dataclass
class CacheKnobs:
    ttl_s: float = 0.0  # time to live of a cached entry; 0 = no expiry
    size_limit_mb: float = 1024.0  # diskcache size_limit, in MiB
    eviction: str = "least-recently-stored"  # diskcache eviction_policy
    persistent: bool = True  # does the cache directory survive a crash of the node?
    stampede: str = "none"  # protection of a miss: none, single-flight (a lock) or lease
    lease_ttl_s: float = 2.0  # a lock or lease expires after this (its holder may have died)


@dataclass
class StoreKnobs:
    journal_mode: str = "wal"  # SQLite PRAGMA journal_mode
    synchronous: str = "normal"  # SQLite PRAGMA synchronous
    timeout_ms: float = 250.0  # busy timeout: how long a store call waits for a lock


@dataclass
class WriteBehindKnobs:
    flush_interval_s: float = 0.1  # the flusher writes what is queued at least this often
    batch_size: int = 100  # rows per store transaction
    coalesce: bool = True  # keep only the latest version per key while queued
    capacity: int = 10_000  # queued entries before back-pressure applies
    backpressure: str = "block"  # block the writer (up to block_timeout_s) or reject
    block_timeout_s: float = 2.0  # a blocked writer gives up (rejected) after this
    retry_limit: int = 5  # store attempts per batch after the first; then dead-letter
    retry_backoff_s: float = 0.05  # first retry delay; doubles each attempt, capped at 2 s
    durable: bool = False  # durable: diskcache queue on disk, replayed after a crash


@dataclass
class Latency:
    """Latency injected per hop, in milliseconds. Always labelled as injected."""

    cache_ms: float = 0.0
    db_read_ms: float = 0.0
    db_write_ms: float = 0.0

    def any(self) -> bool:
        return bool(self.cache_ms or self.db_read_ms or self.db_write_ms)

    def label(self) -> str:
        parts = [
            f"{name} +{value:g} ms"
            for name, value in (
                ("cache", self.cache_ms),
                ("db read", self.db_read_ms),
                ("db write", self.db_write_ms),
            )
            if value
        ]
        return "injected latency: " + ", ".join(parts) if parts else ""


@dataclass
class LaneConfig:
    strategy: str
    workload: Workload = field(default_factory=Workload)
    cache: CacheKnobs = field(default_factory=CacheKnobs)
    store: StoreKnobs = field(default_factory=StoreKnobs)
    write_behind: WriteBehindKnobs = field(default_factory=WriteBehindKnobs)
    latency: Latency = field(default_factory=Latency)
    seed: int = 1

    @property
    def code(self) -> str:
        return LANE_CODES[self.strategy]

    def with_strategy(self, strategy: str) -> "LaneConfig":
        return replace(self, strategy=strategy)

    def with_knob(self, section: str, name: str, value) -> "LaneConfig":
        """A copy with one knob changed (validate it before use)."""
        if section not in SECTIONS or not hasattr(getattr(self, section), name):
            raise ConfigError(f"unknown knob {section}.{name}")
        return replace(self, **{section: replace(getattr(self, section), **{name: value})})


def _finite(name: str, value, low: float, high: float, *, low_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if value < low or value > high or (low_open and value == low):
        bound = f"> {low:g}" if low_open else f">= {low:g}"
        raise ConfigError(f"{name} must be {bound} and <= {high:g}, got {value:g}")


def _integer(name: str, value, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be a whole number, got {value!r}")
    if value < low or value > high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")


def _choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


def _boolean(name: str, value) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {value!r}")


def validate(cfg: LaneConfig) -> LaneConfig:
    """Check every knob; return ``cfg`` unchanged or raise :class:`ConfigError`."""
    _choice("strategy", cfg.strategy, STRATEGIES)
    _integer("seed", cfg.seed, 0, 2**63 - 1)
    w = cfg.workload
    _finite("rate", w.rate, 0, 1_000_000)
    _finite("read ratio", w.read_ratio, 0, 1)
    _integer("keys", w.keys, 1, 10_000_000)
    _choice("distribution", w.distribution, DISTRIBUTIONS)
    _finite("zipf exponent", w.zipf_s, 0, 10, low_open=True)
    _finite("hot fraction", w.hot_fraction, 0, 1, low_open=True)
    _finite("hot weight", w.hot_weight, 0, 1)
    _integer("value size", w.value_size, 1, 1_000_000)
    _integer("concurrency", w.concurrency, 1, 64)
    c = cfg.cache
    _finite("cache ttl", c.ttl_s, 0, 86_400)
    _finite("cache size limit (MiB)", c.size_limit_mb, 0.001, 1_048_576)
    _choice("eviction policy", c.eviction, EVICTION_POLICIES)
    _boolean("persistent cache", c.persistent)
    _choice("stampede protection", c.stampede, STAMPEDE)
    _finite("lease ttl", c.lease_ttl_s, 0.01, 60)
    s = cfg.store
    _choice("journal mode", s.journal_mode, JOURNAL_MODES)
    _choice("synchronous", s.synchronous, SYNCHRONOUS)
    _finite("store timeout (ms)", s.timeout_ms, 0, 60_000)
    q = cfg.write_behind
    _finite("flush interval", q.flush_interval_s, 0.001, 3600)
    _integer("batch size", q.batch_size, 1, 100_000)
    _boolean("coalesce", q.coalesce)
    _integer("queue capacity", q.capacity, 1, 100_000_000)
    _choice("back-pressure", q.backpressure, BACKPRESSURE)
    _finite("block timeout", q.block_timeout_s, 0, 3600)
    _integer("retry limit", q.retry_limit, 0, 1000)
    _finite("retry backoff", q.retry_backoff_s, 0, 60)
    _boolean("durable queue", q.durable)
    lat = cfg.latency
    for f in fields(lat):
        _finite(f"injected {f.name.replace('_ms', '').replace('_', ' ')} latency (ms)",
                getattr(lat, f.name), 0, 10_000)
    return cfg
