"""Scenarios: a workload, its knobs, a seed and a timeline of faults, in a TOML file.

A scenario file's keys are the knobs of :mod:`config` by section::

    name = "crash-the-node"          # defaults to the file name
    title = "One line for the list"
    seed = 7
    duration = 20                    # seconds
    strategy = "all"                 # or one strategy
    restart_delay = 1.0

    [workload]  rate = 2000 …        # Workload fields
    [cache]     ttl_s = 0 …          # CacheKnobs fields
    [store]     journal_mode = "wal" # StoreKnobs fields
    [write_behind] durable = false   # WriteBehindKnobs fields
    [latency]   db_read_ms = 0       # Latency fields (injected, labelled)

    [[faults]]
    at = 5
    kind = "crash"                   # see FAULT_KINDS for every kind and its keys

Fault kinds and their keys (besides ``at``): ``crash``; ``outage`` (duration);
``slow-db`` and ``slow-cache`` (duration, ms: injected); ``cold``; ``burst`` (op: read or
write, count); ``stampede`` (readers).

Every problem is reported as ``FILE line N: what is wrong`` (:class:`ScenarioError`).
"""

from __future__ import annotations

import re
import sys
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from .config import (
    STRATEGIES,
    CacheKnobs,
    ConfigError,
    LaneConfig,
    Latency,
    StoreKnobs,
    Workload,
    WriteBehindKnobs,
    validate,
)

SECTIONS = {"workload": Workload, "cache": CacheKnobs, "store": StoreKnobs,
            "write_behind": WriteBehindKnobs, "latency": Latency}
TOP_KEYS = {"name", "title", "description", "seed", "duration", "strategy", "restart_delay", "faults"}
#: kind -> {key: (default or None if required, low, high, type)}
FAULT_KINDS = {
    "crash": {},
    "outage": {"duration": (None, 0.001, 3600, float)},
    "slow-db": {"duration": (None, 0.001, 3600, float), "ms": (50.0, 0.001, 10_000, float)},
    "slow-cache": {"duration": (None, 0.001, 3600, float), "ms": (20.0, 0.001, 10_000, float)},
    "cold": {},
    "burst": {"op": ("write", None, None, str), "count": (2000, 1, 10_000_000, int)},
    "stampede": {"readers": (50, 2, 500, int)},
}
#: Plan fields the timeline fills (runner.Plan).
TIMELINE_FIELDS = ("crash_at", "outages", "slow_db", "slow_cache", "cold_at", "bursts", "stampedes")


def resources_dir() -> Path:
    """``resources/`` beside the package, or inside a frozen (PyInstaller) build."""
    base = getattr(sys, "_MEIPASS", None)
    if base:
        return Path(base) / "resources"
    return Path(__file__).resolve().parents[2] / "resources"


def builtin_dir() -> Path:
    return resources_dir() / "scenarios"


class ScenarioError(ConfigError):
    """A scenario file that cannot be used; the message names the file and line."""


@dataclass
class Scenario:
    name: str
    title: str
    description: str
    path: Path
    lanes: list[LaneConfig]
    duration_s: float
    restart_delay_s: float = 1.0
    timeline: dict[str, list] = field(default_factory=lambda: {f: [] for f in TIMELINE_FIELDS})

    @property
    def crash_at(self) -> list[float]:
        return self.timeline["crash_at"]

    @property
    def outages(self) -> list[tuple[float, float]]:
        return self.timeline["outages"]

    def fault_count(self) -> int:
        return sum(len(v) for v in self.timeline.values())

    @property
    def seed(self) -> int:
        return self.lanes[0].seed


def timeline_toml(timeline: dict[str, list]) -> list[str]:
    """``[[faults]]`` tables for a timeline (the inverse of what :func:`load` reads)."""
    rows = []
    for t in timeline.get("crash_at", []):
        rows.append((t, "crash", {}))
    for t, length in timeline.get("outages", []):
        rows.append((t, "outage", {"duration": length}))
    for name in ("slow_db", "slow_cache"):
        for t, length, ms in timeline.get(name, []):
            rows.append((t, name.replace("_", "-"), {"duration": length, "ms": ms}))
    for t in timeline.get("cold_at", []):
        rows.append((t, "cold", {}))
    for t, op, count in timeline.get("bursts", []):
        rows.append((t, "burst", {"op": f'"{op}"', "count": count}))
    for t, readers in timeline.get("stampedes", []):
        rows.append((t, "stampede", {"readers": readers}))
    out = []
    for t, kind, keys in sorted(rows, key=lambda r: r[0]):
        out += ["[[faults]]", f"at = {t!r}", f'kind = "{kind}"'] + [f"{k} = {v}" for k, v in keys.items()] + [""]
    return out


def builtin_scenarios() -> list[Scenario]:
    return [load(p) for p in sorted(builtin_dir().glob("*.toml"))]


def find(name_or_path: str) -> Path:
    """A built-in scenario by name, or a file by path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise ScenarioError(f"scenario file {path} does not exist")
        return path
    builtin = builtin_dir() / f"{name_or_path}.toml"
    if builtin.is_file():
        return builtin
    names = ", ".join(sorted(p.stem for p in builtin_dir().glob("*.toml")))
    raise ScenarioError(f"no scenario named {name_or_path!r} (built-in: {names})")


def _line_of(text: str, section: str | None, key: str, index: int = 0) -> int:
    """The line where ``key`` is set in ``section`` (the ``index``-th such table)."""
    current, seen = None, -1
    header = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.-]+)\s*\]\]?")
    assign = re.compile(r"^\s*[\"']?" + re.escape(key) + r"[\"']?\s*=")
    for n, line in enumerate(text.splitlines(), 1):
        m = header.match(line)
        if m:
            current = m.group(1)
            if current == section:
                seen += 1
            continue
        if current == section and (section is None or seen == index) and assign.match(line):
            return n
    for n, line in enumerate(text.splitlines(), 1):  # a section header itself
        m = header.match(line)
        if m and m.group(1) == section:
            return n
    return 1


def _set(obj, name: str, value, where):
    """Assign a knob, checking its type against the dataclass default."""
    current = getattr(obj, name)
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise ScenarioError(f"{where(name)}: {name} must be true or false, got {value!r}")
    elif isinstance(current, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ScenarioError(f"{where(name)}: {name} must be a number, got {value!r}")
        if isinstance(current, float):
            value = float(value)
    elif isinstance(current, str) and not isinstance(value, str):
        raise ScenarioError(f"{where(name)}: {name} must be a string, got {value!r}")
    return replace(obj, **{name: value})


def _culprit(data: dict, base: LaneConfig, at) -> str:
    """``FILE line N`` of the first knob that fails validation on its own."""
    for section in SECTIONS:
        for key, value in data.get(section, {}).items():
            alone = replace(LaneConfig(strategy=base.strategy),
                            **{section: replace(getattr(LaneConfig(base.strategy), section), **{key: value})})
            try:
                validate(alone)
            except ConfigError:
                return at(section)(key)
    return at(None)("seed")


def load(path: Path) -> Scenario:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"scenario file {path} cannot be read: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: {exc}") from None

    def at(section, index=0):
        return lambda key: f"{path} line {_line_of(text, section, key, index)}"

    top = at(None)
    for key in data:
        if key not in TOP_KEYS and key not in SECTIONS:
            raise ScenarioError(f"{top(key)}: unknown key {key!r} (known: {', '.join(sorted(TOP_KEYS | set(SECTIONS)))})")
    strategy = data.get("strategy", "all")
    if strategy != "all" and strategy not in STRATEGIES:
        raise ScenarioError(f"{top('strategy')}: strategy must be one of {', '.join(STRATEGIES)} or all, got {strategy!r}")
    base = LaneConfig(strategy=STRATEGIES[0] if strategy == "all" else strategy)
    for key in ("seed",):
        if key in data:
            base = _set(base, key, data[key], top)
    for section, cls in SECTIONS.items():
        values = data.get(section, {})
        if not isinstance(values, dict):
            raise ScenarioError(f"{top(section)}: [{section}] must be a table")
        knobs = getattr(base, section)
        names = {f.name for f in fields(cls)}
        for key, value in values.items():
            if key not in names:
                raise ScenarioError(f"{at(section)(key)}: unknown key {key!r} in [{section}] "
                                    f"(known: {', '.join(sorted(names))})")
            knobs = _set(knobs, key, value, at(section))
        base = replace(base, **{section: knobs})
    try:
        validate(base)
    except ConfigError as exc:
        raise ScenarioError(f"{_culprit(data, base, at)}: {exc}") from None
    duration = data.get("duration", 10.0)
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not 0 < duration <= 86_400:
        raise ScenarioError(f"{top('duration')}: duration must be a number of seconds > 0 and <= 86400, got {duration!r}")
    restart = data.get("restart_delay", 1.0)
    if isinstance(restart, bool) or not isinstance(restart, (int, float)) or not 0 <= restart <= 600:
        raise ScenarioError(f"{top('restart_delay')}: restart_delay must be 0 to 600 seconds, got {restart!r}")
    timeline: dict[str, list] = {f: [] for f in TIMELINE_FIELDS}
    faults = data.get("faults", [])
    if not isinstance(faults, list):
        raise ScenarioError(f"{top('faults')}: faults must be an array of tables ([[faults]])")
    for i, fault in enumerate(faults):
        where = at("faults", i)
        kind = fault.get("kind")
        if kind not in FAULT_KINDS:
            raise ScenarioError(f"{where('kind')}: fault kind must be one of {', '.join(FAULT_KINDS)}, got {kind!r}")
        spec = FAULT_KINDS[kind]
        for key in fault:
            if key not in {"at", "kind"} | set(spec):
                raise ScenarioError(f"{where(key)}: unknown key {key!r} for a {kind} fault")
        when = fault.get("at")
        if isinstance(when, bool) or not isinstance(when, (int, float)) or not 0 <= when < duration:
            raise ScenarioError(f"{where('at')}: fault time must be within the run (0 to {duration:g} s), got {when!r}")
        v = {}
        for key, (default, lo, hi, kind_of) in spec.items():
            value = fault.get(key, default)
            if value is None:
                raise ScenarioError(f"{where(key)}: {kind} {key} is required for this fault")
            if kind_of is str:
                if value not in ("read", "write"):
                    raise ScenarioError(f"{where(key)}: {key} must be read or write, got {value!r}")
            elif (isinstance(value, bool) or not isinstance(value, (int, float))
                  or (kind_of is int and value != int(value)) or not lo <= value <= hi):
                whole = "a whole number " if kind_of is int else ""
                raise ScenarioError(f"{where(key)}: {kind} {key} must be {whole}from {lo:g} to {hi:g}, got {value!r}")
            v[key] = kind_of(value)
        t = float(when)
        if kind == "crash":
            timeline["crash_at"].append(t)
        elif kind == "outage":
            timeline["outages"].append((t, v["duration"]))
        elif kind == "slow-db":
            timeline["slow_db"].append((t, v["duration"], v["ms"]))
        elif kind == "slow-cache":
            timeline["slow_cache"].append((t, v["duration"], v["ms"]))
        elif kind == "cold":
            timeline["cold_at"].append(t)
        elif kind == "burst":
            timeline["bursts"].append((t, v["op"], v["count"]))
        else:
            timeline["stampedes"].append((t, v["readers"]))
    lanes = [replace(base, strategy=s) for s in (STRATEGIES if strategy == "all" else (strategy,))]
    return Scenario(
        name=str(data.get("name", path.stem)),
        title=str(data.get("title", "")),
        description=str(data.get("description", "")).strip(),
        path=path,
        lanes=lanes,
        duration_s=float(duration),
        restart_delay_s=float(restart),
        timeline={f: sorted(v) for f, v in timeline.items()},
    )
