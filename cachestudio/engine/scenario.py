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
    kind = "crash"                   # see faultkinds.FAULTS for every kind and its keys

Fault kinds and their keys (besides ``at``) are :mod:`faultkinds`' declarations: a kind's
``name`` and its ``params`` (type, default, range, choices), checked by one validator
(:func:`faultcheck.problem`): ``crash``; ``outage`` (duration); ``slow-db`` and
``slow-cache`` (duration, ms: injected); ``cold``; ``burst`` (op: read or write, count);
``stampede`` (readers); ``crash-node`` (node); ``crash-cache-server``.

Every problem is reported as ``FILE line N: what is wrong`` (:class:`ScenarioError`), or
``scenario file FILE ...`` for a file that cannot be read at all. Nothing else escapes
:func:`load`, whatever the file holds, because a scenario file is input from anyone (a
workshop hands them around): every value is checked for its type (an integer knob takes no
``1.5``, a float knob takes ``10``, no knob takes ``true``), finite (no ``nan``, no ``inf``)
and in range; names and titles are one line of text. Limits keep a file from costing more
than it can be worth: :data:`MAX_FILE_BYTES` (the file is not parsed beyond that), arrays and
tables nested :data:`MAX_NESTING` deep, dotted keys of :data:`MAX_KEY_PARTS` parts and
numbers of :data:`MAX_DIGITS` digits (deeper or longer ones make tomllib recurse past
Python's limit, or slow down quadratically), and :data:`timeline.MAX_FAULTS` faults. Faults
of one kind that overlap are merged or refused by :func:`timeline.normalize`; each merge is
kept in :attr:`Scenario.notes`.
"""

from __future__ import annotations

import datetime
import math
import os
import re
import stat
import tomllib
from collections import defaultdict
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from .config import (
    MAX_LANES,
    STRATEGIES,
    Backends,
    CacheKnobs,
    ConfigError,
    LaneConfig,
    LaneSpec,
    Latency,
    StoreKnobs,
    Workload,
    WriteBehindKnobs,
    check_lane_name,
    lane_labels,
    validate,
)
from .faultcheck import problem, value_of
from .faultkinds import BY_NAME as FAULT_BY_NAME
from .faultkinds import FAULTS
from .timeline import FIELDS, MAX_FAULTS, TimelineConflict, check_count, normalize

SECTIONS = {
    "workload": Workload,
    "cache": CacheKnobs,
    "store": StoreKnobs,
    "write_behind": WriteBehindKnobs,
    "latency": Latency,
    "backends": Backends,
}
TOP_KEYS = {
    "name",
    "title",
    "description",
    "seed",
    "duration",
    "strategy",
    "lanes",
    "restart_delay",
    "faults",
    "watch_for",
    "you_will_learn",
    "expect",
    "pictures",
}
#: What a fault of the timeline may say when it fires (a lesson's line), and whether the run
#: pauses there.
SAY_KEYS = {"say", "pause"}
MAX_SAY = 300
#: kind -> {key: its faultkinds.Param}: a fault's keys besides ``at`` and ``kind`` (derived).
FAULT_KINDS = {k.name: {p.name: p for p in k.params} for k in FAULTS}
#: Plan fields the timeline fills (runner.Plan).
TIMELINE_FIELDS = FIELDS
#: A scenario file is a few hundred bytes; a bigger one than this is refused unread.
MAX_FILE_BYTES = 1 << 20
#: Arrays and inline tables inside each other (a scenario needs 2).
MAX_NESTING = 32
#: Parts of one dotted key (``a.b.c`` has 3; a scenario needs 2).
MAX_KEY_PARTS = 16
#: Digits of one number (Python refuses to convert integers of more than 4,300).
MAX_DIGITS = 100
#: The longest name and title (shown on one line in lists and the window title).
MAX_NAME = 100
MAX_TITLE = 200


def resources_dir() -> Path:
    """The built-in resources: ``resources/`` in a clone, the package ``cachestudio.resources``
    when installed (wheel, sdist, editable) or frozen (:mod:`cachestudio.paths`)."""
    from ..paths import resources_root

    try:
        return resources_root()
    except FileNotFoundError as exc:  # a broken install: one line, not a traceback
        raise ConfigError(str(exc)) from None


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
    #: What loading decided about the faults (overlaps merged), one line each.
    notes: list[str] = field(default_factory=list)
    #: A lesson: what to watch for, what the room will learn (free text, may be empty).
    watch_for: str = ""
    you_will_learn: str = ""
    #: Lines said when a fault fires: [{"at", "kind", "say", "pause"}], in time order.
    says: list[dict] = field(default_factory=list)
    #: The lesson's claims (``[expect]``), checked by ``cachestudio check --run``.
    expect: list = field(default_factory=list)
    #: The lanes as the file names them (a strategy, a name, the knobs it sets on top of the
    #: file's); ``lanes`` are these built on the file's knobs.
    specs: list[LaneSpec] = field(default_factory=list)
    #: The file's knobs, before any lane's own (what the command line and the window change).
    base: LaneConfig | None = None
    #: The lesson guide's pictures (``[[pictures]]``): [{"at", "caption"}], in time order.
    pictures: list[dict] = field(default_factory=list)

    @property
    def is_lesson(self) -> bool:
        return bool(self.you_will_learn)

    @property
    def crash_at(self) -> list[float]:
        return self.timeline["crash_at"]

    @property
    def outages(self) -> list[tuple[float, float]]:
        return self.timeline["outages"]

    def __post_init__(self):
        if not self.specs:
            self.specs = [LaneSpec(c.strategy, c.name) for c in self.lanes]
        if self.base is None:
            self.base = replace(self.lanes[0], name="")

    def fault_count(self) -> int:
        return sum(len(v) for v in self.timeline.values())

    @property
    def seed(self) -> int:
        return self.lanes[0].seed


def timeline_toml(timeline: dict[str, list]) -> list[str]:
    """``[[faults]]`` tables for a timeline (the inverse of what :func:`load` reads)."""
    rows = []
    for kind in FAULTS:
        for entry in timeline.get(kind.field, []):
            at, values = kind.values(entry)
            rows.append((at, kind.name, {k: f'"{v}"' if isinstance(v, str) else v for k, v in values.items()}))
    out = []
    for t, name, keys in sorted(rows, key=lambda r: r[0]):
        out += ["[[faults]]", f"at = {t!r}", f'kind = "{name}"'] + [f"{k} = {v}" for k, v in keys.items()] + [""]
    return out


def builtin_scenarios() -> list[Scenario]:
    return [load(p) for p in sorted(builtin_dir().glob("*.toml"))]


def find(name_or_path: str) -> Path:
    """A built-in scenario by name, or a file by path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or _exists(path):
        _regular(path)
        return path
    builtin = builtin_dir() / f"{name_or_path}.toml"
    if builtin.is_file():
        return builtin
    names = ", ".join(sorted(p.stem for p in builtin_dir().glob("*.toml")))
    raise ScenarioError(f"no scenario named {name_or_path!r} (built-in: {names})")


def _exists(path: Path) -> bool:
    """Something is there, or the name cannot even be looked up (too long, a NUL…): then it
    is a path, and :func:`_regular` says what is wrong with it."""
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except (OSError, ValueError):
        return True
    return True


def _regular(path: Path) -> os.stat_result:
    """The file's status, or :class:`ScenarioError` unless it is a regular file (or a link
    to one): a directory cannot be read, a FIFO or a device could block or never end."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ScenarioError(f"scenario file {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise ScenarioError(f"scenario file {path} cannot be read: {getattr(exc, 'strerror', None) or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        what = (
            "a directory"
            if stat.S_ISDIR(st.st_mode)
            else "a named pipe (FIFO)"
            if stat.S_ISFIFO(st.st_mode)
            else "a device"
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
            else "a socket"
            if stat.S_ISSOCK(st.st_mode)
            else "not a regular file"
        )
        raise ScenarioError(f"scenario file {path} is {what}, not a file")
    return st


def _read(path: Path) -> str:
    """The text of a scenario file: a regular file of at most :data:`MAX_FILE_BYTES`, UTF-8."""
    _regular(path)
    try:
        # O_NONBLOCK: should the path become a FIFO after the check, opening it cannot hang.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise ScenarioError(f"scenario file {path} is not a regular file")
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ScenarioError(f"scenario file {path} cannot be read: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ScenarioError(
            f"scenario file {path} is larger than {MAX_FILE_BYTES >> 20} MiB: not read "
            "(a scenario is a few hundred bytes)"
        )
    try:
        return data.decode("utf-8-sig")  # a byte order mark, as some editors write, is fine
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ScenarioError(f"{path} line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x})") from None


_NEXT = re.compile(r"[\n#\"'\[\]{}=,.0-9_]")
_DIGITS = re.compile(r"[0-9_]+")
_BASIC = re.compile(r"(?:[^\"\\\n]|\\[^\n])*")  # the inside of a one-line "string"
_LITERAL = re.compile(r"[^'\n]*")  # the inside of a one-line 'string'


def _prescan(text: str) -> tuple[int, str] | None:
    """``(line, problem)`` for the first shape tomllib cannot take well, else None.

    tomllib recurses once per nested array or inline table (a few thousand ``[`` raise
    RecursionError), spends time quadratic in the parts of a dotted key (50,000 parts: 30 s),
    and refuses integers of more than 4,300 digits with a ValueError that names no line.
    This scan knows just enough TOML (strings, comments) to find them first, with their line;
    everything else is left to tomllib. It jumps from one character that matters to the next
    (a megabyte of dense TOML takes under a second, less than tomllib itself)."""
    depth = parts = 0
    line, i, n = 1, 0, len(text)
    while True:
        m = _NEXT.search(text, i)
        if m is None:
            return None
        i = m.start()
        c = text[i]
        if c == "\n":
            line, parts = line + 1, 0
            i += 1
        elif c == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif c in "\"'":
            if text.startswith(c * 3, i):  # a multi-line string: up to its closing quotes
                j = i + 3
                while True:
                    k = text.find(c * 3, j)
                    if k < 0:
                        return None  # not closed: tomllib says where
                    b = k
                    while c == '"' and b > j and text[b - 1] == "\\":
                        b -= 1
                    if (k - b) % 2 == 0:  # not an escaped quote
                        break
                    j = k + 1
                k += 3
                k += (k < n and text[k] == c) + (k + 1 < n and text[k] == c and text[k + 1] == c)
                line += text.count("\n", i, k)
                i = k
            else:
                end = (_BASIC if c == '"' else _LITERAL).match(text, i + 1).end()
                i = end + (end < n and text[end] == c)
        elif c in "0123456789_":
            end = _DIGITS.match(text, i).end()
            if end - i > MAX_DIGITS:
                return line, f"a number of more than {MAX_DIGITS} digits"
            i = end
        else:
            if c in "[{":
                depth += 1
                if depth > MAX_NESTING:
                    return line, f"arrays or tables nested more than {MAX_NESTING} deep"
            elif c in "]}":
                depth = max(0, depth - 1)
            if c == ".":
                parts += 1
                if parts >= MAX_KEY_PARTS:
                    return line, f"a dotted key of more than {MAX_KEY_PARTS} parts"
            else:
                parts = 0
            i += 1


def _parse(path: Path, text: str) -> dict:
    problem = _prescan(text)
    if problem is not None:
        raise ScenarioError(f"{path} line {problem[0]}: {problem[1]}")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = " ".join(str(exc).split())
        m = re.fullmatch(r"(.*) \(at line (\d+), column (\d+)\)", message)
        if m:
            raise ScenarioError(f"{path} line {m.group(2)}: {m.group(1)} (column {m.group(3)})") from None
        m = re.fullmatch(r"(.*) \(at end of document\)", message)
        if m:
            end = text.count("\n") + 1
            raise ScenarioError(f"{path} line {end}: {m.group(1)} (at the end of the file)") from None
        raise ScenarioError(f"{path} line 1: {message}") from None
    except (RecursionError, ValueError, OverflowError) as exc:  # what _prescan should have found first
        raise ScenarioError(f"{path} line 1: cannot be read as TOML ({type(exc).__name__})") from None


def _show(value) -> str:
    """A value as a one-line message may show it: short, and never a table's contents
    (a nested one could be deep, a string a megabyte, an integer too long to print)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if value.bit_length() <= 64 else f"a whole number of {value.bit_length()} bits"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else repr(value[:37] + "...")
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, datetime.datetime):
        return "a date-time"
    if isinstance(value, datetime.date):
        return "a date"
    if isinstance(value, datetime.time):
        return "a time"
    return f"a {type(value).__name__}"


def _line_of(text: str, section: str | None, key: str, index: int = 0) -> int:
    """The line where ``key`` is set in ``section`` (the ``index``-th such table); else the
    line of that table's header, or where the section is assigned at the top; else 1.
    Best effort (no TOML parser keeps lines): it only has to point at the right place."""
    header = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.-]+)\s*\]\]?")
    assign = re.compile(r"^\s*[\"']?" + re.escape(key) + r"[\"']?\s*[=.]")
    current, seen = None, -1
    header_line = top_line = None
    if section is not None:
        dotted = re.compile(r"^\s*" + re.escape(section) + r"\s*\.\s*[\"']?" + re.escape(key) + r"[\"']?\s*[=.]")
        top = re.compile(r"^\s*[\"']?" + re.escape(section) + r"[\"']?\s*[=.]")
    for n, line in enumerate(text.split("\n"), 1):  # TOML counts lines by "\n" only
        m = header.match(line)
        if m:
            current = m.group(1)
            if current == section:
                seen += 1
                if seen == index or header_line is None:
                    header_line = n
            elif section is not None and seen == index and current.split(".")[:2] == [section, key]:
                return n  # [section.key] makes the key a table
            continue
        if section is None:
            if current is None and assign.match(line):
                return n
        elif current == section and seen == index and assign.match(line):
            return n
        elif current is None and dotted.match(line):
            return n
        elif current is None and top_line is None and top.match(line):
            top_line = n
    return header_line or top_line or 1


def _set(obj, name: str, value, where):
    """Assign a knob, checking its type against the dataclass default: a bool takes only
    true or false, an int only a whole number (not ``1.5``, not ``2.0``), a float any finite
    number (``10`` too), a string only a string. Ranges are :func:`config.validate`'s."""
    current = getattr(obj, name)
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise ScenarioError(f"{where(name)}: {name} must be true or false, got {_show(value)}")
    elif isinstance(current, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ScenarioError(f"{where(name)}: {name} must be a whole number, got {_show(value)}")
        if value.bit_length() > 63:
            raise ScenarioError(f"{where(name)}: {name} is out of range, got {_show(value)}")
    elif isinstance(current, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ScenarioError(f"{where(name)}: {name} must be a number, got {_show(value)}")
        if not (isinstance(value, float) and math.isfinite(value)) and not (
            isinstance(value, int) and value.bit_length() <= 63
        ):
            raise ScenarioError(f"{where(name)}: {name} must be a finite number in range, got {_show(value)}")
        value = float(value) + 0.0  # -0.0 is 0
    elif isinstance(current, str) and not isinstance(value, str):
        raise ScenarioError(f"{where(name)}: {name} must be a string, got {_show(value)}")
    return replace(obj, **{name: value})


def _knobs(table: dict, base: LaneConfig, header, where, prefix: str) -> list[tuple[str, str, object]]:
    """The knobs a table sets, section by section (``[cache]``, or ``[lanes.cache]`` with
    ``prefix`` "lanes."): (section, name, value), each checked for its type against
    ``base``'s. ``header(section)`` and ``where(section)(key)`` say ``FILE line N``."""
    out = []
    for section, cls in SECTIONS.items():
        values = table.get(section, {})
        if not isinstance(values, dict):
            raise ScenarioError(f"{header(section)}: [{prefix}{section}] must be a table, got {_show(values)}")
        knobs = getattr(base, section)
        names = {f.name for f in fields(cls)}
        for key, value in values.items():
            if key not in names:
                raise ScenarioError(
                    f"{where(section)(key)}: unknown key {_show(key)} in [{prefix}{section}] "
                    f"(known: {', '.join(sorted(names))})"
                )
            knobs = _set(knobs, key, value, where(section))
            out.append((section, key, getattr(knobs, key)))
    return out


def _culprit(data: dict, base: LaneConfig, at) -> str:
    """``FILE line N`` of the first knob that fails validation on its own."""
    for section in SECTIONS:
        for key, value in data.get(section, {}).items():
            alone = replace(
                LaneConfig(strategy=base.strategy),
                **{section: replace(getattr(LaneConfig(base.strategy), section), **{key: value})},
            )
            try:
                validate(alone)
            except ConfigError:
                return at(section)(key)
    return at(None)("seed")


def _text(data: dict, key: str, where, default: str, limit: int | None) -> str:
    """A name or title (one line of at most ``limit`` characters) or a description (any text)."""
    value = data.get(key, default)
    if not isinstance(value, str):
        raise ScenarioError(f"{where(key)}: {key} must be a string, got {_show(value)}")
    if limit is not None:
        value = value.strip()
        if key == "name" and not value:
            raise ScenarioError(f"{where(key)}: name must not be empty")
        if len(value) > limit:
            raise ScenarioError(f"{where(key)}: {key} must be at most {limit} characters, got {len(value):,}")
        if any(ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0 or ch in "\u2028\u2029" for ch in value):
            raise ScenarioError(f"{where(key)}: {key} must be one line without control characters, got {_show(value)}")
    return value


def _seconds(data: dict, key: str, where, default: float, low: float, high: float, low_open: bool) -> float:
    value = data.get(key, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (low < value <= high if low_open else low <= value <= high)
    ):
        bound = f"> {low:g}" if low_open else f">= {low:g}"
        raise ScenarioError(
            f"{where(key)}: {key} must be a number of seconds {bound} and <= {high:g}, got {_show(value)}"
        )
    return float(value) + 0.0


def load(path: Path) -> Scenario:
    path = Path(path)
    text = _read(path)
    data = _parse(path, text)

    def at(section, index=0):
        return lambda key: f"{path} line {_line_of(text, section, key, index)}"

    top = at(None)
    for key in data:
        if key not in TOP_KEYS and key not in SECTIONS:
            raise ScenarioError(
                f"{top(key)}: unknown key {_show(key)} (known: {', '.join(sorted(TOP_KEYS | set(SECTIONS)))})"
            )
    name = _text(data, "name", top, "", MAX_NAME) if "name" in data else path.stem
    title = _text(data, "title", top, "", MAX_TITLE)
    description = _text(data, "description", top, "", None).strip()
    strategy = data.get("strategy", "all")
    if not isinstance(strategy, str) or (strategy != "all" and strategy not in STRATEGIES):
        raise ScenarioError(
            f"{top('strategy')}: strategy must be one of {', '.join(STRATEGIES)} or all, got {_show(strategy)}"
        )
    base = LaneConfig(strategy=STRATEGIES[0] if strategy == "all" else strategy)
    if "seed" in data:
        base = _set(base, "seed", data["seed"], top)
    for section, key, value in _knobs(data, base, top, at, ""):
        base = base.with_knob(section, key, value)
    try:
        validate(base)
    except ConfigError as exc:
        message = str(exc) if len(str(exc)) <= 200 else str(exc)[:197] + "..."  # it may quote a long string
        raise ScenarioError(f"{_culprit(data, base, at)}: {message}") from None
    duration = _seconds(data, "duration", top, 10.0, 0, 86_400, True)
    restart = _seconds(data, "restart_delay", top, 1.0, 0, 600, False)
    timeline, notes = _faults(data, duration, at)
    if "lanes" in data:
        if "strategy" in data:
            raise ScenarioError(f"{top('strategy')}: give strategy or [[lanes]], not both")
        specs = _lanes(data["lanes"], base, at)
    else:
        specs = [LaneSpec(s) for s in (STRATEGIES if strategy == "all" else (strategy,))]
    lanes = [spec.build(base) for spec in specs]
    watch_for = _text(data, "watch_for", top, "", None).strip()
    learn = _text(data, "you_will_learn", top, "", None).strip()
    says = _says(data, at)
    expect = _expect(data, [c.label for c in lanes], at)
    return Scenario(
        name=name,
        title=title,
        description=description,
        path=path,
        lanes=lanes,
        specs=specs,
        base=base,
        duration_s=duration,
        restart_delay_s=restart,
        timeline=timeline,
        notes=notes,
        watch_for=watch_for,
        you_will_learn=learn,
        says=says,
        expect=expect,
        pictures=_pictures(data, duration, at),
    )


MAX_PICTURES = 6


def _lanes(items, base: LaneConfig, at) -> list[LaneSpec]:
    """``[[lanes]]``: each a ``name``, a ``strategy`` and the knobs it sets on top of the
    file's (``[lanes.cache] stampede = "lease"``, or ``cache.stampede = "lease"``)."""
    if not isinstance(items, list) or not items or not all(isinstance(x, dict) for x in items):
        raise ScenarioError(
            f"{at(None)('lanes')}: lanes must be an array of tables ([[lanes]]) with name and "
            f"strategy, got {_show(items)}"
        )
    if len(items) > MAX_LANES:
        raise ScenarioError(f"{at('lanes', MAX_LANES)('name')}: {len(items)} lanes; at most {MAX_LANES}")
    specs = []
    for i, item in enumerate(items):
        where = at("lanes", i)
        for key in item:
            if key not in ("name", "strategy") and key not in SECTIONS:
                raise ScenarioError(
                    f"{where(key)}: unknown key {_show(key)} for a lane (known: name, strategy, {', '.join(SECTIONS)})"
                )
        name = item.get("name")
        try:
            check_lane_name(name)
        except ConfigError as exc:
            raise ScenarioError(f"{where('name')}: {exc}") from None
        strategy = item.get("strategy")
        if not isinstance(strategy, str) or strategy not in STRATEGIES:
            raise ScenarioError(
                f"{where('strategy')}: a lane's strategy must be one of {', '.join(STRATEGIES)}, "
                f"got {_show(strategy) if strategy is not None else 'nothing'}"
            )
        overrides = _knobs(item, base, where, lambda _section, w=where: w, "lanes.")
        spec = LaneSpec(strategy, name, tuple(overrides))
        try:
            validate(spec.build(base))
        except ConfigError as exc:
            raise ScenarioError(
                f"{where(overrides[-1][1] if overrides else 'strategy')}: lane {name!r}: {exc}"
            ) from None
        specs.append(spec)
    try:
        lane_labels([spec.build(base) for spec in specs])
    except ConfigError as exc:
        raise ScenarioError(f"{at(None)('lanes')}: {exc}") from None
    return specs


def _pictures(data: dict, duration: float, at) -> list[dict]:
    """``[[pictures]]``: the moments a lesson's guide shows (``at``, ``caption``)."""
    pictures = data.get("pictures", [])
    if not isinstance(pictures, list) or not all(isinstance(p, dict) for p in pictures):
        raise ScenarioError(
            f"{at(None)('pictures')}: pictures must be an array of tables ([[pictures]]) "
            f"with at and caption, got {_show(pictures)}"
        )
    if len(pictures) > MAX_PICTURES:
        raise ScenarioError(
            f"{at('pictures', MAX_PICTURES)('at')}: {len(pictures)} pictures; at most {MAX_PICTURES} in one lesson"
        )
    out = []
    for i, pic in enumerate(pictures):
        where = at("pictures", i)
        for key in pic:
            if key not in ("at", "caption"):
                raise ScenarioError(f"{where(key)}: unknown key {_show(key)} for a picture (known: at, caption)")
        when = pic.get("at")
        if isinstance(when, bool) or not isinstance(when, (int, float)) or not 0 < when <= duration:
            got = "nothing" if when is None else _show(when)
            raise ScenarioError(
                f"{where('at')}: a picture's time must be within the run (> 0 and <= {duration:g} s), got {got}"
            )
        out.append({"at": float(when), "caption": _text(pic, "caption", where, "", MAX_TITLE)})
    return sorted(out, key=lambda p: p["at"])


def _says(data: dict, at) -> list[dict]:
    """Each fault's ``say`` (one line) and ``pause`` (true or false), in time order."""
    out = []
    for i, fault in enumerate(data.get("faults", [])):
        if "say" not in fault and "pause" not in fault:
            continue
        where = at("faults", i)
        say = _text(fault, "say", where, "", MAX_SAY)
        pause = fault.get("pause", False)
        if not isinstance(pause, bool):
            raise ScenarioError(f"{where('pause')}: pause must be true or false, got {_show(pause)}")
        out.append({"at": float(fault["at"]) + 0.0, "kind": fault["kind"], "say": say, "pause": pause})
    return sorted(out, key=lambda x: x["at"])


def _expect(data: dict, lanes: list[str], at) -> list:
    """The ``[expect]`` table: ``"LANE".FIGURE = CLAIM`` (lessons.parse_claim)."""
    from .lessons import ClaimError, parse_claim

    table = data.get("expect", {})
    if not isinstance(table, dict):
        raise ScenarioError(
            f'{at(None)("expect")}: [expect] must be a table of "LANE".FIGURE = CLAIM, got {_show(table)}'
        )
    claims = []
    for lane, figures in table.items():
        if lane not in lanes:
            raise ScenarioError(
                f"{at('expect')(lane)}: [expect] names lane {_show(lane)}, which this scenario "
                f"does not run (its lanes: {', '.join(lanes)})"
            )
        if not isinstance(figures, dict):
            raise ScenarioError(
                f"{at('expect')(lane)}: [expect] {_show(lane)} must be a table of FIGURE = CLAIM, got {_show(figures)}"
            )
        for metric, value in figures.items():
            try:
                claims.append(parse_claim(lane, metric, value))
            except ClaimError as exc:
                raise ScenarioError(f'{at("expect")(lane)}: [expect] "{lane}".{metric}: {exc}') from None
            other = claims[-1].other
            if other is not None and other not in lanes:
                raise ScenarioError(
                    f'{at("expect")(lane)}: [expect] "{lane}".{metric} compares with lane {_show(other)}, '
                    f"which this scenario does not run (its lanes: {', '.join(lanes)})"
                )
    return claims


def _faults(data: dict, duration: float, at) -> tuple[dict[str, list], list[str]]:
    """The ``[[faults]]`` as a normalized timeline (:func:`timeline.normalize`) and its notes."""
    faults = data.get("faults", [])
    if not isinstance(faults, list):
        raise ScenarioError(
            f"{at(None)('faults')}: faults must be an array of tables ([[faults]]), got {_show(faults)}"
        )
    if len(faults) > MAX_FAULTS:  # refused before checking each one: it could take long
        raise ScenarioError(
            f"{at('faults', MAX_FAULTS)('at')}: {len(faults):,} faults; at most {MAX_FAULTS:,} in one scenario"
        )
    timeline: dict[str, list] = {f: [] for f in TIMELINE_FIELDS}
    origin: dict[tuple, list[int]] = defaultdict(list)  # (field, entry) -> indices of its faults
    for i, fault in enumerate(faults):
        where = at("faults", i)
        if not isinstance(fault, dict):
            raise ScenarioError(
                f"{where('at')}: each fault must be a table with at and kind ([[faults]]), got {_show(fault)}"
            )
        kind = fault.get("kind")
        if not isinstance(kind, str) or kind not in FAULT_KINDS:
            got = "nothing" if kind is None else _show(kind)
            raise ScenarioError(f"{where('kind')}: fault kind must be one of {', '.join(FAULT_KINDS)}, got {got}")
        spec = FAULT_KINDS[kind]
        for key in fault:
            if key not in {"at", "kind"} | set(spec) | SAY_KEYS:
                raise ScenarioError(
                    f"{where(key)}: unknown key {_show(key)} for a {kind} fault "
                    f"(known: {', '.join(['at', 'kind', *spec, *sorted(SAY_KEYS)])})"
                )
        when = fault.get("at")
        if isinstance(when, bool) or not isinstance(when, (int, float)) or not 0 <= when < duration:
            got = "nothing" if when is None else _show(when)
            raise ScenarioError(f"{where('at')}: fault time must be within the run (0 to {duration:g} s), got {got}")
        v = {}
        for p in FAULT_BY_NAME[kind].params:
            value = fault.get(p.name, p.default)
            if value is None:
                raise ScenarioError(f"{where(p.name)}: {kind} {p.name} is required for this fault")
            why = problem(p, value)
            if why:
                raise ScenarioError(f"{where(p.name)}: {kind} {p.name} {why}, got {_show(value)}")
            v[p.name] = value_of(p, value)
        t = float(when) + 0.0  # -0.0 is 0
        name, entry = FAULT_BY_NAME[kind].field, FAULT_BY_NAME[kind].entry(t, v)
        timeline[name].append(entry)
        origin[(name, entry)].append(i)
    try:
        check_count(timeline)
        return normalize(timeline)
    except TimelineConflict as exc:  # name the line of the later fault in the file
        index = max((i for e in exc.entries for i in origin.get((exc.field, e), [])), default=0)
        raise ScenarioError(f"{at('faults', index)('at')}: {exc}") from None
    except ConfigError as exc:
        raise ScenarioError(f"{at(None)('faults')}: {exc}") from None
