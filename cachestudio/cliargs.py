"""The command line's grammar: every subcommand, option and value parser of ``cachestudio``
(:func:`build_parser`), apart from what the commands do (:mod:`cachestudio.cli`).

A bad value is :class:`BadInput`, printed as one line with exit status 2. The fault flags
come from :mod:`engine.faultkinds` and the knob options from ``config.KNOBS``: a new fault
kind or knob gets its option here without an edit. Kept apart from ``cli`` so that what
needs the grammar (the lesson guides check their command lines against it) does not import
the commands, and no import circle forms.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .engine.config import KNOBS, MAX_LANES, SECTION_TITLES, STRATEGIES, ConfigError, parse_lane
from .engine.faultkinds import FAULTS, FaultKind

#: ``--latency HOP=MS``: a hop -> its knob of the latency section (config.KNOBS: "--latency HOP").
LATENCY_HOPS = {k.flag.split()[1]: k.name for k in KNOBS if k.flag.startswith("--latency ")}


@dataclass(frozen=True)
class Files:
    """What a command reads and writes, by the ``dest`` of its arguments (one value or a list):
    ``reads`` files, ``scenarios`` a built-in scenario's name or a file, ``writes`` files,
    ``folders`` folders it fills. ``cli.check_files_of`` checks them all at once, before
    anything is opened, created or printed (engine.outputs.check_files)."""

    reads: tuple[str, ...] = ()
    scenarios: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    folders: tuple[str, ...] = ()


#: Every command's files (None: the window). A new option naming a file is declared here.
FILES: dict[str | None, Files] = {
    None: Files(scenarios=("window_scenario",)),
    "run": Files(scenarios=("scenario",), writes=("json", "history", "record"), folders=("run_dir",)),
    "replay": Files(reads=("file", "compare"), writes=("json",)),
    "report": Files(reads=("file",), writes=("html",)),
    "bench": Files(reads=("recording",), writes=("json", "chart")),
    "check": Files(scenarios=("file",)),
    "docs": Files(scenarios=("only",), folders=("out",)),
    "screenshot": Files(scenarios=("scenario",), folders=("out",)),
}


class BadInput(Exception):
    """Raised for anything the user must fix; printed as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """One-line errors; no abbreviated options (``--read 0.0`` is refused, not taken for
    ``--read-ratio``, which a scenario's value would then silently override)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # one line, no usage dump
        raise BadInput(message)


# ------------------------------------------------------------------------------ parsing


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise BadInput(f"{what}: {text!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise BadInput(f"{what}: {text!r} is not a finite number")
    return value


def parse_fault(kind: FaultKind, text: str) -> float | tuple:
    """One fault of ``kind`` as its flag spells it (``SEC:DURATION[:MS]``: the time, then
    each parameter, a trailing one with a default optional) -> its timeline entry. Types
    and choices are checked here, ranges by ``check_plan`` (a scenario's faults too)."""
    parts = text.split(":")
    required = 1 + sum(p.default is None for p in kind.params)
    if not required <= len(parts) <= 1 + len(kind.params) or not all(parts):
        raise BadInput(f"{kind.flag} wants {kind.metavar}, got {text!r}")
    at = _number(parts[0], f"{kind.flag} {kind.time_word}")
    values = {}
    for p, part in zip(kind.params, parts[1:] + [None] * len(kind.params)):
        if part is None:
            values[p.name] = p.default
        elif p.type is str:
            if p.choices and part not in p.choices:
                raise BadInput(f"{kind.flag} {p.word} must be {' or '.join(p.choices)}, got {part!r}")
            values[p.name] = part
        else:
            x = _number(part, f"{kind.flag} {p.word}")
            if p.type is int and x != int(x):
                raise BadInput(f"{kind.flag} {p.word} must be a whole number, got {part!r}")
            values[p.name] = int(x) if p.type is int else x
    return kind.entry(at, values)


def add_fault_flags(group) -> None:
    """A repeatable flag per fault kind (faultkinds.FAULTS): its syntax, help and plan field."""
    for kind in FAULTS:
        group.add_argument(
            kind.flag,
            type=lambda text, kind=kind: parse_fault(kind, text),
            action="append",
            default=[],
            dest=kind.field,
            metavar=kind.metavar,
            help=kind.help,
        )


def parse_latency(items: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        hop, sep, ms = item.partition("=")
        if not sep or hop not in LATENCY_HOPS:
            raise BadInput(f"--latency wants HOP=MS with HOP one of {', '.join(LATENCY_HOPS)}, got {item!r}")
        out[LATENCY_HOPS[hop]] = _number(ms, f"--latency {hop}")
    return out


def parse_lane_arg(text: str):
    try:
        return parse_lane(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> Parser:
    p = Parser(prog="cachestudio", description=f"{', '.join(STRATEGIES).capitalize()}, running for real.")
    p.add_argument(
        "--scenario",
        dest="window_scenario",
        metavar="NAME|FILE",
        help="open the window with this built-in scenario (a lesson) or scenario file loaded",
    )
    sub = p.add_subparsers(dest="command", parser_class=Parser)
    _run_parser(sub)
    _replay_parsers(sub)
    _other_parsers(sub)
    return p


def _run_parser(sub) -> None:
    r = sub.add_parser("run", help="run strategies headless and print a table per lane")
    r.add_argument("--strategy", help=f"{', '.join(STRATEGIES)} or all (default)")
    r.add_argument(
        "--lane",
        type=parse_lane_arg,
        action="append",
        default=[],
        metavar="NAME=STRATEGY[,KNOB=VALUE...]",
        help='a named lane: a strategy and knobs of its own, e.g. "lease=cache-aside,stampede=lease" '
        f"(repeatable, at most {MAX_LANES}; instead of --strategy)",
    )
    r.add_argument(
        "--scenario",
        metavar="NAME|FILE",
        help="start from a built-in scenario or a scenario file; options typed here override it",
    )
    r.add_argument("--duration", type=float, metavar="SEC", help="run length (default 10)")
    r.add_argument("--seed", type=int, metavar="N", help="seed of the operation stream (default 1)")
    add_fault_flags(r.add_argument_group("faults (each repeatable; a scenario's [[faults]] too)"))
    r.add_argument(
        "--restart-delay", type=float, metavar="SEC", help="how long a crashed cache node stays down (default 1)"
    )
    r.add_argument("--run-dir", type=Path, metavar="DIR", help="keep the cache directory and SQLite file here")
    r.add_argument("--json", type=Path, metavar="FILE", help="write the summary as JSON")
    r.add_argument("--history", type=Path, metavar="FILE", help="write every operation and fault as JSON Lines")
    r.add_argument(
        "--record",
        type=Path,
        metavar="FILE",
        help="record the run to FILE as it goes (a new file; replay it with `cachestudio replay FILE`)",
    )
    for section in ("workload", "cache", "store"):
        knob_group(r, section)
    g = knob_group(r, "backends", "the default: diskcache + SQLite, one node")
    g.add_argument(
        "--redis-url",
        default="",
        metavar="URL",
        help="use this Redis server (never stopped); default: the run starts its own on a unix socket",
    )
    g.add_argument(
        "--postgres-url",
        default="",
        metavar="URL",
        help="use this PostgreSQL database (never stopped); default: the run starts its own",
    )

    for section in ("write_behind", "latency"):
        knob_group(r, section)


#: A knob's unit -> the placeholder of its option's value.
METAVARS = {"s": "SEC", "ms": "MS", "MiB": "MIB", "B": "BYTES", "ops/s": "OPS"}


def _knob_number(x: float) -> str:
    return f"{x:,.0f}" if x == int(x) else f"{x:g}"


def knob_group(parser: argparse.ArgumentParser, section: str, description: str | None = None):
    """The options of a section's knobs (config.KNOBS), in an option group of its title.
    The hops of ``--latency HOP=MS`` are knobs whose flag is "--latency HOP"."""
    title = SECTION_TITLES[section]
    g = parser.add_argument_group(title[:1].lower() + title[1:], description)
    hops = [k for k in KNOBS if k.section == section and " " in k.flag]
    for k in KNOBS:
        if k.section != section or k in hops:
            continue
        shown = (
            k.words[k.default] if k.words else "on" if k.default is True else "off" if k.default is False else k.default
        )
        if k.kind in ("int", "float"):
            unit = f" {k.unit}" if k.unit else ""
            low = f"over {_knob_number(k.lo)}, up" if k.low_open else _knob_number(k.lo)
            shown = f"{low} to {_knob_number(k.hi)}{unit}; default {_knob_number(k.default)}{unit}"
        else:
            shown = f"default {shown}"
        extra = {"help": f"{k.help} ({shown})", "default": k.default}
        if k.words:
            extra.update(choices=k.words, default=k.words[k.default])
        elif k.kind == "bool":
            extra.update(action=argparse.BooleanOptionalAction)
        elif k.kind == "choice":
            extra.update(choices=k.choices)
        else:
            extra.update(
                type={"int": int, "float": float}[k.kind], metavar=METAVARS.get(k.unit, "N" if k.kind == "int" else "X")
            )
        g.add_argument(k.flag, **extra)
    if hops:
        flag = hops[0].flag.split()[0]
        g.add_argument(
            flag,
            action="append",
            default=[],
            metavar="HOP=MS",
            help=f"add latency to a hop: {', '.join(LATENCY_HOPS)} (repeatable)",
        )
    return g


def _replay_parsers(sub) -> None:
    rp = sub.add_parser("replay", help="replay a recording in the window (no lab needed), or print its summary")
    rp.add_argument("file", type=Path, metavar="FILE", help="a recording made by `run --record` or the window")
    rp.add_argument(
        "--json",
        nargs="?",
        const="-",
        metavar="OUT",
        help="print the run's summary as JSON (to OUT, or standard output), no window",
    )
    rp.add_argument("--table", action="store_true", help="print the run's tables as `run` does, no window")
    rp.add_argument("--compare", type=Path, metavar="FILE2", help="show a second recording beside it, on one time axis")
    rep_ = sub.add_parser("report", help="write a recorded run as one self-contained HTML file (a hand-out)")
    rep_.add_argument("file", type=Path, metavar="FILE", help="a recording")
    rep_.add_argument("--html", type=Path, metavar="OUT", required=True, help="the HTML file to write")

    sc = sub.add_parser("screenshot", help="render the window offscreen at a moment of a scenario")
    sc.add_argument("--scenario", required=True, metavar="NAME|FILE")
    sc.add_argument("--at", type=float, required=True, metavar="SEC", help="run time of the picture")
    sc.add_argument("--out", type=Path, required=True, metavar="DIR", help="directory for the PNG files")
    sc.add_argument("--size", default="1600x1000", metavar="WxH", help="window size (default 1600x1000)")
    sc.add_argument(
        "--theme", default="light", choices=("light", "dark", "projector"), help="the window's theme (default light)"
    )
    sc.add_argument(
        "--present",
        action="store_true",
        help="presentation mode: the flow view, the caption, the event strip and four charts",
    )
    sc.add_argument(
        "--node-lines",
        action="store_true",
        help="the charts also draw one thin line per app node (lanes run with several nodes)",
    )

    d = sub.add_parser(
        "docs",
        help="write the lesson guides (Markdown, pictures rendered by the window, "
        "claims and numbers of a real run) into DIR/lessons (`make docs`)",
    )
    d.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="the docs folder (its parent's README.md gets the lesson table)",
    )
    d.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="only this lesson (a built-in name or a scenario file; repeatable)",
    )
    d.add_argument("--pictures-only", action="store_true", help=argparse.SUPPRESS)  # its child process
    d.add_argument("--regions", action="store_true", help=argparse.SUPPRESS)  # the child's, for the tests


def _other_parsers(sub) -> None:
    sub.add_parser("scenarios", help="list the built-in scenarios")
    sub.add_parser(
        "self-check",
        help="does this installation work? open the window offscreen, run the lanes, crash the node, render a frame",
    )
    c = sub.add_parser("check", help="validate a scenario file (--run: run it and check its [expect] claims)")
    c.add_argument("file", type=Path, metavar="FILE", help="a scenario file or a built-in scenario's name")
    c.add_argument(
        "--run",
        action="store_true",
        help="run the scenario headless with its seed and say whether each claim of its [expect] held "
        "(exit 1 if one did not)",
    )

    b = sub.add_parser("bench", help="measure the engine against the seed's plain loops")
    b.add_argument("--duration", type=float, metavar="SEC", help="per repetition (default 10; 1 with --quick)")
    b.add_argument("--reps", type=int, metavar="N", help="repetitions of each figure (default 3; 2 with --quick)")
    b.add_argument("--quick", action="store_true", help="short runs, small sizes, no 10-minute memory run")
    b.add_argument("--chart", type=Path, metavar="FILE.png", help="draw the ratios and targets as a PNG chart")
    b.add_argument("--seed", type=int, default=7, metavar="N")
    b.add_argument(
        "--gui",
        action="store_true",
        help="also the window's figures: frame interval, throughput attached vs headless, first paint, "
        "memory over 10 minutes (not with --quick)",
    )
    b.add_argument("--json", type=Path, metavar="FILE", help="write every figure as JSON")
    b.add_argument(
        "--time-machine",
        action="store_true",
        help="also what recording costs (ratio in one run) and scrub steps across a 10-minute recording",
    )
    b.add_argument(
        "--recording",
        type=Path,
        metavar="FILE",
        help="with --time-machine: scrub this recording instead of recording 10 minutes first",
    )
    b.add_argument(
        "--remote",
        action="store_true",
        help="only the Redis + PostgreSQL figures (issue 14): each strategy's lane against the seed's "
        "snippets written plainly with redis-py and psycopg, and the lanes at 1, 2 and 4 nodes, on "
        "the bench's own redis-server and PostgreSQL",
    )


def _word_is(true: str) -> Callable[[str], bool]:
    return lambda word: word == true


#: Command-line knob -> (section of LaneConfig, field, conversion): every knob of
#: config.KNOBS with an option of its own (a two-word one is converted to true/false).
KNOB_ARGS: dict[str, tuple[str, str, Callable[[str], bool] | None]] = {
    k.flag[2:].replace("-", "_"): (k.section, k.name, _word_is(k.words[1]) if k.words else None)
    for k in KNOBS
    if " " not in k.flag
}


def parse_size(text: str) -> tuple[int, int]:
    w, sep, h = text.lower().partition("x")
    if not (sep and w.isdigit() and h.isdigit()):
        raise BadInput(f"--size wants WIDTHxHEIGHT in pixels, got {text!r}")
    size = int(w), int(h)
    if not all(200 <= v <= 8000 for v in size):
        raise BadInput(f"--size must be between 200x200 and 8000x8000, got {text!r}")
    return size
