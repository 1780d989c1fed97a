"""A run's plan and its checks: what to run (lanes, length, fault timeline), validated
before any file is touched, and what the lanes' figures can say about durability.

:func:`check_plan` checks the lanes' knobs, the timeline (every fault within the run, its
parameters in range: :mod:`faultcheck`, over :data:`faultkinds.FAULTS`), the backends, the
run directory, and merges overlapping faults (:func:`timeline.normalize`), keeping a note
per merge. :class:`runner.Run` and the command line take a checked plan.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .config import MAX_DURATION_S, ConfigError, LaneConfig, lane_labels, validate
from .faultcheck import check_timeline
from .faultkinds import FAULTS
from .lab import LanePaths
from .storage import Endpoints, LaneStorage, check_backends
from .strategykinds import queues_writes
from .timeline import FIELDS, check_count, normalize


@dataclass
class Plan:
    """What a run does: its lanes, its length and its fault timeline.

    The timeline stays one field per fault kind (``crash_at``, ``outages``, …: each a
    :attr:`FaultKind.field <faultkinds.FaultKind.field>`, its entries as :mod:`faultkinds`
    says), not one list of faults: many callers build ``Plan(lanes, crash_at=[…])`` and a
    scenario's timeline is passed as ``**timeline``. Nothing goes over these fields by name:
    :func:`check_plan` and :meth:`Run.start`'s scheduling loop go over
    :data:`faultkinds.FAULTS`, and ``tests/test_declarations_faults.py`` fails for a kind
    without its field here."""

    lanes: list[LaneConfig]
    duration_s: float = 10.0
    crash_at: list[float] = field(default_factory=list)
    outages: list[tuple[float, float]] = field(default_factory=list)  # (start, duration)
    bursts: list[tuple[float, str, int]] = field(default_factory=list)  # (at, read|write, count)
    slow_db: list[tuple[float, float, float]] = field(default_factory=list)  # (start, duration, ms)
    slow_cache: list[tuple[float, float, float]] = field(default_factory=list)  # (start, duration, ms)
    cold_at: list[float] = field(default_factory=list)
    stampedes: list[tuple[float, int]] = field(default_factory=list)  # (at, concurrent readers)
    node_crashes: list[tuple[float, int]] = field(default_factory=list)  # (at, node): one node of each lane
    server_crashes: list[float] = field(default_factory=list)  # the run's own cache server (redis-server)
    restart_delay_s: float = 1.0
    run_dir: Path | None = None  # kept after the run; else a temporary directory
    #: Servers the run was given (used, never stopped); empty: the run starts its own.
    redis_url: str = ""
    postgres_url: str = ""
    notes: list[str] = field(default_factory=list)  # what check_plan merged (overlapping faults)

    @property
    def seed(self) -> int:
        return self.lanes[0].seed


def check_plan(plan: Plan) -> Plan:
    """Validate everything about a plan before any file is touched."""
    if not plan.lanes:
        raise ConfigError("no strategy to run")
    for cfg in plan.lanes:
        validate(cfg)
    lane_labels(plan.lanes)
    if not (0 < plan.duration_s <= MAX_DURATION_S):
        raise ConfigError(f"duration must be > 0 and <= {MAX_DURATION_S} seconds, got {plan.duration_s:g}")
    timeline = {f: getattr(plan, f) for f in FIELDS}
    check_count(timeline)  # at most MAX_FAULTS, scenario and options together
    check_timeline(timeline, plan.duration_s)  # each fault within the run, its parameters in range
    most = max(cfg.backends.nodes for cfg in plan.lanes)
    for _at, node in plan.node_crashes:
        if node >= most:
            raise ConfigError(f"--crash-node: no node {node!r}: the lanes have nodes 0 to {most - 1} (--nodes)")
    for kind in FAULTS:
        if kind.needs == "redis" and getattr(plan, kind.field):
            if not any(cfg.backends.cache == "redis" for cfg in plan.lanes):
                raise ConfigError(
                    f"{kind.flag} crashes the run's own redis-server: no lane has its cache on "
                    "Redis (--cache-backend redis)"
                )
            if plan.redis_url:
                raise ConfigError(
                    f"{kind.flag} kills the run's own redis-server; a server given by --redis-url is never crashed"
                )
    check_backends(plan.lanes, plan.redis_url, plan.postgres_url)
    # Overlapping faults of one kind are merged (or refused), never dropped: timeline.py.
    timeline, notes = normalize({f: getattr(plan, f) for f in FIELDS})
    for name, value in timeline.items():
        setattr(plan, name, value)
    plan.notes.extend(n for n in notes if n not in plan.notes)  # check_plan runs twice on one plan
    if not (0 <= plan.restart_delay_s <= 600):
        raise ConfigError(f"restart delay must be between 0 and 600 seconds, got {plan.restart_delay_s:g}")
    if plan.run_dir is not None:
        check_run_dir(Path(plan.run_dir), plan.lanes)
    return plan


def durability(cfg: LaneConfig) -> dict:
    """What the lane's figures can and cannot say about durability (DESIGN.md §6).

    The lab kills processes; it never crashes the OS or cuts the power. Where a setting
    means that an OS crash or a power loss could lose (or corrupt) more than a process
    kill does, the note says so: "0 lost" is then a statement about process kills only.
    Facts from SQLite's documentation (pragma synchronous, journal_mode, WAL)."""
    s = cfg.store
    notes = []
    if cfg.backends.store == "postgresql":
        notes.append(
            "PostgreSQL (fsync on, synchronous_commit on): a committed DB write survives a process kill and an OS crash"
        )
    else:
        notes += _sqlite_notes(s)
    queue = None
    if queues_writes(cfg.strategy):
        queue = "durable" if cfg.write_behind.durable else "volatile"
        if cfg.write_behind.durable and cfg.backends.cache == "redis":
            notes.append(
                "durable queue: a Redis stream on a server that appends it to its AOF (the run's own: "
                "fsynced before each reply, so it survives a node's kill, the server's kill and an OS "
                "crash; a given server: its own fsync policy, and one without an AOF is refused)"
            )
        elif cfg.write_behind.durable:
            notes.append(
                "durable queue: diskcache (WAL + synchronous normal): an OS crash could lose "
                "the last acknowledged writes still queued"
            )
    redis = cfg.backends.cache == "redis"
    return {
        "store": cfg.backends.store,
        "journal_mode": s.journal_mode,
        "synchronous": s.synchronous,
        "queue": queue,
        "cache": ("redis" + (" aof" if cfg.backends.aof else ""))
        if redis
        else ("persistent" if cfg.cache.persistent else "volatile"),
        "tried": "process kills (SIGKILL) only",
        "notes": notes,
    }


def _sqlite_notes(s) -> list[str]:
    """What an OS crash or a power loss could do to a SQLite store with these pragmas."""
    notes = []
    if s.synchronous == "off":
        notes.append(
            "synchronous off: an OS crash or power loss could lose committed DB writes or corrupt the database"
        )
    elif s.journal_mode == "wal" and s.synchronous == "normal":
        notes.append(
            "WAL + synchronous normal: an OS crash or power loss could roll back the last "
            "committed DB writes (a process kill cannot)"
        )
    if s.journal_mode == "memory":
        notes.append("journal in memory: a crash in the middle of a DB transaction can corrupt the database")
    elif s.journal_mode in ("delete", "truncate", "persist") and s.synchronous == "normal":
        notes.append(f"{s.journal_mode} journal + synchronous normal: a power loss could corrupt the database (rare)")
    return notes


def check_run_dir(root: Path, lanes: list[LaneConfig]) -> None:
    """The run directory must be writable and hold no earlier run; nothing is changed."""
    if root.exists() and not root.is_dir():
        raise ConfigError(f"run directory {root} exists and is not a directory")
    probe = root if root.exists() else next((p for p in root.parents if p.exists()), None)
    if probe is None or not _writable(probe):
        raise ConfigError(f"run directory {root} cannot be written")
    for cfg in lanes:
        LaneStorage(cfg, LanePaths(root / cfg.slug), Endpoints()).check()
    if root.exists() and any(root.iterdir()):
        raise ConfigError(
            f"run directory {root} is not empty (it holds an earlier run?); give an empty or new directory"
        )


def _writable(path: Path) -> bool:
    try:
        with tempfile.TemporaryFile(dir=path):
            return True
    except OSError:
        return False
