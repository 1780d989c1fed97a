"""Every knob of a lane, declared once: its default, range, unit, label, flag and widget.

The knobs are plain dataclasses (their fields' types and defaults) so that they cross the
process boundary to the lab (pickled by multiprocessing). :data:`KNOBS` says the rest about
each one — its valid range or choices, unit, label, whether a running lab applies it at
once, its command-line flag and its widget — and everything else derives from it:
:func:`validate` (one line naming the knob and what is wrong, :class:`ConfigError`),
:data:`LIVE_KNOBS`, the command line's options (``cli``), the window's knob panel
(``ui.controls``) and the scenario files' sections (:data:`SECTIONS`).
``tests/test_declarations_knobs.py`` fails, naming the knob, when one lacks a part.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace

from . import strategykinds

STRATEGIES = strategykinds.STRATEGIES
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
CACHE_BACKENDS = ("diskcache", "redis")
STORE_BACKENDS = ("sqlite", "postgresql")
MAX_NODES = 8
#: The most lanes one run may have, from the command line (``--lane``), a scenario file, the
#: window or a recording: each is a lab process per node and a share of the observer's round
#: (100 lanes of a 1 s run were still starting after 60 s).
MAX_LANES = 6
MAX_DURATION_S = 86_400  # the longest run a plan (and a recording's header) may ask for

#: Short codes used in record ids ("wb#123") and file names.
LANE_CODES = {kind.name: kind.code for kind in strategykinds.STRATEGY_KINDS}


class Interrupted(BaseException):
    """A command stopped by a signal before it had anything to show (a run still
    starting its labs or servers, a second signal, a command with no partial result).
    A BaseException: no ``except Exception`` keeps it from the ``finally``s that remove
    what the command made, nor from the CLI's one line and exit status 130/143."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal = signal_name


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
class Backends:
    """What a lane runs on (issue 14). The embedded pair is the default: nothing to install.

    Servers are the run's, not the lane's: lanes on ``redis`` share one redis-server per
    persistence setting (keys under the lane's prefix), lanes on ``postgresql`` one server
    (a schema per lane, each with its ``items`` table). Their addresses are not knobs: the
    run starts its own servers in the run directory, or uses ``--redis-url`` /
    ``--postgres-url`` (a machine's address, never written into a scenario or recording)."""

    cache: str = "diskcache"  # diskcache | redis
    store: str = "sqlite"  # sqlite | postgresql
    nodes: int = 1  # app-node processes of the lane, sharing its cache and store
    aof: bool = False  # the run's own redis-server: append-only file, fsync every second

    def label(self) -> str:
        """ "diskcache + SQLite" or "Redis + PostgreSQL · 2 nodes" (what a lane runs on)."""
        names = {
            "diskcache": "diskcache",
            "redis": "Redis" + (" (AOF)" if self.aof else ""),
            "sqlite": "SQLite",
            "postgresql": "PostgreSQL",
        }
        text = f"{names[self.cache]} + {names[self.store]}"
        return text + (f" · {self.nodes} nodes" if self.nodes > 1 else "")


#: Each section of a lane's knobs (a scenario file's table, a field of :class:`LaneConfig`)
#: and its dataclass.
SECTIONS: dict[str, type] = {
    "workload": Workload,
    "cache": CacheKnobs,
    "store": StoreKnobs,
    "write_behind": WriteBehindKnobs,
    "latency": Latency,
    "backends": Backends,
}
#: A section's title (the window's group boxes, the command line's option groups).
SECTION_TITLES = {
    "workload": "Workload",
    "cache": "Cache",
    "store": "Store (SQLite)",
    "write_behind": "Write-behind",
    "latency": "Injected latency (labelled)",
    "backends": "Backends and nodes",
}


@dataclass(frozen=True)
class Knob:
    """One knob of a lane. Its type and default are its dataclass field's (:data:`SECTIONS`)."""

    section: str
    name: str
    #: Its row in the window's knob panel (the group box names the section).
    label: str
    #: How a message names it: "zipf exponent must be > 0 and <= 10, got 0".
    what: str
    #: Its command-line option. "--latency cache" is the hop ``cache`` of ``--latency HOP=MS``.
    flag: str
    #: What it does (the option's help, the widget's tooltip).
    help: str = ""
    unit: str = ""
    #: Valid range of a number: lo <= value <= hi (lo < value when ``low_open``).
    lo: float = 0
    hi: float = 0
    low_open: bool = False
    #: Valid values of a text knob.
    choices: tuple[str, ...] = ()
    #: A true/false knob typed on the command line as one of two words: (false, true).
    words: tuple[str, ...] = ()
    #: A running lab applies it at once; otherwise at the next reset.
    live: bool = False
    #: The widget's step and decimals (a number's spin box).
    step: float = 1
    decimals: int = 0
    #: Why the window shows no widget for it ("" = it has one).
    no_widget: str = ""
    #: (section, name, value): it matters only while that knob has that value (the window
    #: greys its widget out otherwise); () = always.
    only_with: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        return (self.section, self.name)

    @property
    def default(self):
        return getattr(SECTIONS[self.section](), self.name)

    @property
    def kind(self) -> str:
        """ "choice", "bool", "int" or "float": which check, option type and widget it takes."""
        if self.choices:
            return "choice"
        return {bool: "bool", int: "int", float: "float"}[type(self.default)]

    @property
    def widget_range(self) -> tuple[float, float]:
        """The widget's (min, max): the valid range; an open bound is the next value the
        widget can show (``decimals``)."""
        return (self.lo + 10.0**-self.decimals if self.low_open else self.lo), self.hi

    def check(self, value) -> None:
        """:class:`ConfigError` naming the knob if ``value`` is not valid for it."""
        if self.kind == "choice":
            _choice(self.what, value, self.choices)
        elif self.kind == "bool":
            _boolean(self.what, value)
        elif self.kind == "int":
            _integer(self.what, value, int(self.lo), int(self.hi))
        else:
            _finite(self.what, value, self.lo, self.hi, low_open=self.low_open)


#: Every knob: (section, name, label, what messages call it, flag, help, ...), each section's
#: in its dataclass's order.
KNOBS: tuple[Knob, ...] = (
    Knob(
        "workload",
        "rate",
        "rate",
        "rate",
        "--rate",
        "operations per second for the whole lane; 0 = flat out",
        unit="ops/s",
        lo=0,
        hi=1_000_000,
        live=True,
        step=100,
    ),
    Knob(
        "workload",
        "read_ratio",
        "read ratio",
        "read ratio",
        "--read-ratio",
        "fraction of operations that are reads",
        lo=0,
        hi=1,
        live=True,
        step=0.05,
        decimals=2,
    ),
    Knob(
        "workload",
        "keys",
        "keys",
        "keys",
        "--keys",
        "key space size: k0 .. k{keys-1}",
        lo=1,
        hi=10_000_000,
        live=True,
        step=100,
    ),
    Knob(
        "workload",
        "distribution",
        "distribution",
        "distribution",
        "--distribution",
        "which keys operations pick",
        choices=DISTRIBUTIONS,
        live=True,
    ),
    Knob(
        "workload",
        "zipf_s",
        "zipf exponent",
        "zipf exponent",
        "--zipf-s",
        "zipf: the exponent (k0 is the hottest key)",
        lo=0,
        hi=10,
        low_open=True,
        live=True,
        step=0.1,
        decimals=2,
        only_with=("workload", "distribution", "zipf"),
    ),
    Knob(
        "workload",
        "hot_fraction",
        "hot keys (hotspot)",
        "hot fraction",
        "--hot-fraction",
        "hotspot: this fraction of the keys ...",
        lo=0,
        hi=1,
        low_open=True,
        live=True,
        step=0.05,
        decimals=3,
        only_with=("workload", "distribution", "hotspot"),
    ),
    Knob(
        "workload",
        "hot_weight",
        "ops on hot keys (hotspot)",
        "hot weight",
        "--hot-weight",
        "hotspot: ... receives this fraction of the operations",
        lo=0,
        hi=1,
        live=True,
        step=0.05,
        decimals=2,
        only_with=("workload", "distribution", "hotspot"),
    ),
    Knob(
        "workload",
        "value_size",
        "value size",
        "value size",
        "--value-size",
        "bytes of value text per write",
        unit="B",
        lo=1,
        hi=1_000_000,
        live=True,
        step=100,
    ),
    Knob(
        "workload",
        "concurrency",
        "client threads",
        "concurrency",
        "--concurrency",
        "client threads per lane",
        lo=1,
        hi=64,
        live=True,
    ),
    Knob(
        "cache",
        "ttl_s",
        "TTL (0 = none)",
        "cache ttl",
        "--ttl",
        "time to live of a cached entry; 0 = none",
        unit="s",
        lo=0,
        hi=86_400,
        live=True,
        decimals=1,
    ),
    Knob(
        "cache",
        "size_limit_mb",
        "size limit",
        "cache size limit (MiB)",
        "--cache-size-mb",
        "the cache's size limit (diskcache's size_limit, Redis's maxmemory)",
        unit="MiB",
        lo=0.001,
        hi=1_048_576,
        live=True,
        step=64,
        decimals=3,
    ),
    Knob(
        "cache",
        "eviction",
        "eviction",
        "eviction policy",
        "--eviction",
        "which entries go when the cache is full",
        choices=EVICTION_POLICIES,
        live=True,
    ),
    Knob(
        "cache",
        "persistent",
        "survives a crash",
        "persistent cache",
        "--cache",
        "does the cache survive a crash of the node",
        words=("volatile", "persistent"),
    ),
    Knob(
        "cache",
        "stampede",
        "stampede protection",
        "stampede protection",
        "--stampede-protection",
        "on a miss: every reader reads the DB (none), one does (single-flight), or one does under a lease that "
        "a write invalidates (lease)",
        choices=STAMPEDE,
        live=True,
    ),
    Knob(
        "cache",
        "lease_ttl_s",
        "lock / lease TTL",
        "lease ttl",
        "--lease-ttl",
        "a lock or lease expires after this; waiters give up then",
        unit="s",
        lo=0.01,
        hi=60,
        live=True,
        step=0.5,
        decimals=2,
    ),
    Knob(
        "store",
        "journal_mode",
        "journal mode",
        "journal mode",
        "--journal-mode",
        "SQLite's PRAGMA journal_mode",
        choices=JOURNAL_MODES,
    ),
    Knob(
        "store",
        "synchronous",
        "synchronous",
        "synchronous",
        "--synchronous",
        "SQLite's PRAGMA synchronous",
        choices=SYNCHRONOUS,
    ),
    Knob(
        "store",
        "timeout_ms",
        "busy timeout",
        "store timeout (ms)",
        "--db-timeout-ms",
        "busy timeout: how long a store call waits for a lock",
        unit="ms",
        lo=0,
        hi=60_000,
        step=50,
    ),
    Knob(
        "write_behind",
        "flush_interval_s",
        "flush interval",
        "flush interval",
        "--flush-interval",
        "the flusher writes what is queued at least this often",
        unit="s",
        lo=0.001,
        hi=3600,
        live=True,
        step=0.1,
        decimals=3,
    ),
    Knob(
        "write_behind",
        "batch_size",
        "batch size",
        "batch size",
        "--batch-size",
        "rows per store transaction",
        lo=1,
        hi=100_000,
        live=True,
        step=10,
    ),
    Knob(
        "write_behind",
        "coalesce",
        "coalesce",
        "coalesce",
        "--coalesce",
        "keep only the latest version per key while queued",
    ),
    Knob(
        "write_behind",
        "capacity",
        "queue capacity",
        "queue capacity",
        "--queue-capacity",
        "queued entries before back-pressure applies",
        lo=1,
        hi=100_000_000,
        live=True,
        step=100,
    ),
    Knob(
        "write_behind",
        "backpressure",
        "when full",
        "back-pressure",
        "--backpressure",
        "when the queue is full: block the writer or reject the write",
        choices=BACKPRESSURE,
        live=True,
    ),
    Knob(
        "write_behind",
        "block_timeout_s",
        "block timeout",
        "block timeout",
        "--block-timeout",
        "a blocked writer gives up (rejected) after this",
        unit="s",
        lo=0,
        hi=3600,
        live=True,
        step=0.5,
        decimals=2,
    ),
    Knob(
        "write_behind",
        "retry_limit",
        "retry limit",
        "retry limit",
        "--retry-limit",
        "store attempts per batch after the first; then dead-letter",
        lo=0,
        hi=1000,
        live=True,
    ),
    Knob(
        "write_behind",
        "retry_backoff_s",
        "retry backoff",
        "retry backoff",
        "--retry-backoff",
        "first retry delay; doubles each attempt, capped at 2 s",
        unit="s",
        lo=0,
        hi=60,
        live=True,
        step=0.01,
        decimals=3,
    ),
    Knob(
        "write_behind",
        "durable",
        "durable queue",
        "durable queue",
        "--queue",
        "the write queue: in memory (lost on a crash) or durable (replayed after one)",
        words=("volatile", "durable"),
    ),
    Knob(
        "latency",
        "cache_ms",
        "cache",
        "injected cache latency (ms)",
        "--latency cache",
        "added to every cache call",
        unit="ms",
        lo=0,
        hi=10_000,
        live=True,
        decimals=1,
    ),
    Knob(
        "latency",
        "db_read_ms",
        "DB read",
        "injected db read latency (ms)",
        "--latency db-read",
        "added to every DB read",
        unit="ms",
        lo=0,
        hi=10_000,
        live=True,
        decimals=1,
    ),
    Knob(
        "latency",
        "db_write_ms",
        "DB write",
        "injected db write latency (ms)",
        "--latency db-write",
        "added to every DB write",
        unit="ms",
        lo=0,
        hi=10_000,
        live=True,
        decimals=1,
    ),
    Knob(
        "backends",
        "cache",
        "cache",
        "cache backend",
        "--cache-backend",
        "the cache: a diskcache directory or a Redis server",
        choices=CACHE_BACKENDS,
    ),
    Knob(
        "backends",
        "store",
        "store",
        "store backend",
        "--store-backend",
        "the store: a SQLite file or a PostgreSQL database",
        choices=STORE_BACKENDS,
    ),
    Knob(
        "backends",
        "nodes",
        "app nodes",
        "nodes",
        "--nodes",
        "app-node processes per lane, sharing its cache and store",
        lo=1,
        hi=MAX_NODES,
    ),
    Knob(
        "backends",
        "aof",
        "Redis AOF",
        "aof",
        "--redis-aof",
        "the run's own redis-server keeps an append-only file (fsync every second)",
    ),
)
BY_KEY: dict[tuple[str, str], Knob] = {k.key: k for k in KNOBS}
#: Knobs a running lab applies at once; every other knob takes effect at the next reset.
LIVE_KNOBS = frozenset(k.key for k in KNOBS if k.live)


@dataclass
class LaneConfig:
    strategy: str
    workload: Workload = field(default_factory=Workload)
    cache: CacheKnobs = field(default_factory=CacheKnobs)
    store: StoreKnobs = field(default_factory=StoreKnobs)
    write_behind: WriteBehindKnobs = field(default_factory=WriteBehindKnobs)
    latency: Latency = field(default_factory=Latency)
    backends: Backends = field(default_factory=Backends)
    seed: int = 1
    #: The lane's name ("cache-aside · lease"); empty: the strategy names the lane.
    name: str = ""

    @property
    def code(self) -> str:
        return LANE_CODES[self.strategy]

    @property
    def label(self) -> str:
        """What names this lane everywhere: history records, events, claims, the views."""
        return self.name or self.strategy

    @property
    def slug(self) -> str:
        """The lane's folder in the run directory: the strategy for an unnamed lane (as
        always), else its name in lower case with every run of other characters as one "-"."""
        return slug(self.label)

    def with_strategy(self, strategy: str) -> LaneConfig:
        return replace(self, strategy=strategy)

    def with_knob(self, section: str, name: str, value) -> LaneConfig:
        """A copy with one knob changed (validate it before use)."""
        if section not in SECTIONS or not hasattr(getattr(self, section), name):
            raise ConfigError(f"unknown knob {section}.{name}")
        return replace(self, **{section: replace(getattr(self, section), **{name: value})})


def slug(text: str) -> str:
    return "-".join("".join(ch if ch.isascii() and ch.isalnum() else " " for ch in text.lower()).split()) or "lane"


MAX_LANE_NAME = 40
#: Characters a lane name may not hold: it is written into JSON lines as it is, and the
#: command line separates a lane's parts with "=" and ",".
_NAME_FORBIDDEN = set('"\\=,')


def check_lane_name(name: str) -> None:
    if not isinstance(name, str):
        raise ConfigError(f"a lane name must be text, got {name!r}")
    if name != name.strip() or not name:
        raise ConfigError(f"a lane name must not be empty or start or end with a space, got {name!r}")
    if len(name) > MAX_LANE_NAME:
        raise ConfigError(f"a lane name must be at most {MAX_LANE_NAME} characters, got {len(name)}")
    bad = [ch for ch in name if ch in _NAME_FORBIDDEN or ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0 or ch in "\u2028\u2029"]
    if bad:
        raise ConfigError(
            f"a lane name must not hold {bad[0]!r} (no quotes, backslashes, '=', ',' or control "
            f"characters), got {name!r}"
        )


def knob_names() -> dict[str, list[tuple[str, str]]]:
    """Every knob's name -> [(section, name)]; a bare name may live in one section only."""
    out: dict[str, list[tuple[str, str]]] = {}
    for section, cls in SECTIONS.items():
        for f in fields(cls):
            out.setdefault(f.name, []).append((section, f.name))
    return out


def knob_value(current, text: str, what: str):
    """Read ``text`` as a value of the type of ``current`` (a knob's default)."""
    if isinstance(current, bool):
        if text.lower() not in ("true", "false", "yes", "no", "on", "off", "1", "0"):
            raise ConfigError(f"{what} must be true or false, got {text!r}")
        return text.lower() in ("true", "yes", "on", "1")
    if isinstance(current, int):
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{what} must be a whole number, got {text!r}") from None
    if isinstance(current, float):
        try:
            value = float(text)
        except ValueError:
            raise ConfigError(f"{what} must be a number, got {text!r}") from None
        if not math.isfinite(value):
            raise ConfigError(f"{what} must be a finite number, got {text!r}")
        return value
    return text


@dataclass(frozen=True)
class LaneSpec:
    """A lane as a scenario or the command line names it: a strategy, a name and the knobs
    it sets on top of the run's (``overrides``: ((section, name, value), ...)).

    The window and the command line change the run's knobs; a lane's own overrides win."""

    strategy: str
    name: str = ""
    overrides: tuple = ()

    def build(self, base: LaneConfig) -> LaneConfig:
        cfg = replace(base, strategy=self.strategy, name=self.name)
        for section, key, value in self.overrides:
            cfg = cfg.with_knob(section, key, value)
        return cfg

    def sets(self, section: str, key: str) -> bool:
        return any(s == section and k == key for s, k, _ in self.overrides)


def parse_lane(text: str) -> LaneSpec:
    """``NAME=STRATEGY[,knob=value…]`` (``--lane``): a knob is ``section.name`` or a name
    found in one section only (``stampede=lease``, ``durable=true``, ``cache.ttl_s=2``)."""
    name, sep, rest = text.partition("=")
    name = name.strip()
    if not sep or not rest.strip():
        raise ConfigError(f"--lane wants NAME=STRATEGY[,knob=value...], got {text!r}")
    check_lane_name(name)
    strategy, *knobs = [part.strip() for part in rest.split(",")]
    _choice("the lane's strategy", strategy, STRATEGIES)
    names = knob_names()
    defaults = LaneConfig(strategy)
    overrides = []
    for item in knobs:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep:
            raise ConfigError(f"--lane {name}: a knob is name=value, got {item!r}")
        if "." in key:
            section, _, bare = key.partition(".")
            places = [(section, bare)] if (section, bare) in names.get(bare, []) else []
        else:
            places = names.get(key, [])
        if not places:
            raise ConfigError(
                f"--lane {name}: unknown knob {key!r} (a knob of the scenario file's sections, "
                f"e.g. stampede, durable, cache.ttl_s)"
            )
        if len(places) > 1:
            raise ConfigError(
                f"--lane {name}: {key!r} is a knob of several sections; write "
                f"{' or '.join(f'{s}.{k}' for s, k in places)}"
            )
        section, bare = places[0]
        current = getattr(getattr(defaults, section), bare)
        overrides.append((section, bare, knob_value(current, value.strip(), f"--lane {name}: {key}")))
    spec = LaneSpec(strategy, name, tuple(overrides))
    validate(spec.build(defaults))
    return spec


def lane_labels(cfgs) -> None:
    """Lanes of one run: at most :data:`MAX_LANES`, with different names and folders;
    :class:`ConfigError` if not."""
    cfgs = list(cfgs)
    if len(cfgs) > MAX_LANES:
        raise ConfigError(f"{len(cfgs)} lanes; a run has at most {MAX_LANES}")
    seen: dict[str, str] = {}
    for cfg in cfgs:
        for key in {cfg.label, cfg.slug}:
            if key in seen:
                raise ConfigError(
                    f"two lanes are both named {cfg.label!r}"
                    if seen[key] == cfg.label or key == cfg.label
                    else f"lanes {seen[key]!r} and {cfg.label!r} would share the folder {key!r}: name them apart"
                )
            seen[key] = cfg.label


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
    if cfg.name:
        check_lane_name(cfg.name)
    _integer("seed", cfg.seed, 0, 2**63 - 1)
    for knob in KNOBS:
        knob.check(getattr(getattr(cfg, knob.section), knob.name))
    return cfg
