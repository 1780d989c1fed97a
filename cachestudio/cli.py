"""``cachestudio``: the studio window by default, subcommands for headless work.

Exit statuses (DESIGN.md §6): 0 a run that ended as planned; 1 the run ended but an
output file could not be written, or something unforeseen failed (one line says which
and why; ``CACHESTUDIO_DEBUG=1`` shows the traceback); 2 bad input (one line
naming the problem, never a traceback); 3 a lab failed (one line saying which and why;
the summary is still written, marked); 130/143 interrupted by SIGINT/SIGTERM (partial
summary written, marked). A closed standard output (``cachestudio scenarios | head -1``)
ends the printing quietly; the run itself goes on and writes its files.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from .engine.config import (
    KNOBS,
    SECTION_TITLES,
    STRATEGIES,
    ConfigError,
    LaneConfig,
    LaneSpec,
    lane_labels,
    parse_lane,
)
from .engine.faultkinds import FAULTS, FaultKind
from .textreport import format_bench, say_tables

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_LAB_FAILED = 3
EXIT_SIGNAL = {"SIGINT": 130, "SIGTERM": 143}
#: ``--latency HOP=MS``: a hop -> its knob of the latency section (config.KNOBS: "--latency HOP").
LATENCY_HOPS = {k.flag.split()[1]: k.name for k in KNOBS if k.flag.startswith("--latency ")}


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


class Console:
    """Where the human-readable lines go: standard output, or standard error when the
    summary itself goes to standard output (``--json -``). A reader that goes away
    (a closed pipe) silences it; the run goes on."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self.closed = False

    def __call__(self, text: str = "") -> None:
        if self.closed:
            return
        try:
            self.stream.write(text + "\n")
            self.stream.flush()
        except BrokenPipeError:
            self.closed = True
            quiet_stdout()


def quiet_stdout() -> None:
    """After a broken pipe: point fd 1 at /dev/null (read-only use of our own fd: the
    interpreter's final flush must not print a second error)."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (OSError, ValueError):
        pass


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
        group.add_argument(kind.flag, type=lambda text, kind=kind: parse_fault(kind, text), action="append",
                           default=[], dest=kind.field, metavar=kind.metavar, help=kind.help)


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
    p.add_argument("--scenario", dest="window_scenario", metavar="NAME|FILE",
                   help="open the window with this built-in scenario (a lesson) or scenario file loaded")
    sub = p.add_subparsers(dest="command", parser_class=Parser)
    _run_parser(sub)
    _replay_parsers(sub)
    _other_parsers(sub)
    return p


def _run_parser(sub) -> None:
    r = sub.add_parser("run", help="run strategies headless and print a table per lane")
    r.add_argument("--strategy", help=f"{', '.join(STRATEGIES)} or all (default)")
    r.add_argument("--lane", type=parse_lane_arg, action="append", default=[], metavar="NAME=STRATEGY[,KNOB=VALUE...]",
                   help="a named lane: a strategy and knobs of its own, e.g. \"lease=cache-aside,stampede=lease\" "
                        "(repeatable; instead of --strategy)")
    r.add_argument("--scenario", metavar="NAME|FILE",
                   help="start from a built-in scenario or a scenario file; options typed here override it")
    r.add_argument("--duration", type=float, metavar="SEC", help="run length (default 10)")
    r.add_argument("--seed", type=int, metavar="N", help="seed of the operation stream (default 1)")
    add_fault_flags(r.add_argument_group("faults (each repeatable; a scenario's [[faults]] too)"))
    r.add_argument("--restart-delay", type=float, metavar="SEC",
                   help="how long a crashed cache node stays down (default 1)")
    r.add_argument("--run-dir", type=Path, metavar="DIR", help="keep the cache directory and SQLite file here")
    r.add_argument("--json", type=Path, metavar="FILE", help="write the summary as JSON")
    r.add_argument("--history", type=Path, metavar="FILE", help="write every operation and fault as JSON Lines")
    r.add_argument("--record", type=Path, metavar="FILE",
                   help="record the run to FILE as it goes (a new file; replay it with `cachestudio replay FILE`)")
    for section in ("workload", "cache", "store"):
        knob_group(r, section)
    g = knob_group(r, "backends", "the default: diskcache + SQLite, one node")
    g.add_argument("--redis-url", default="", metavar="URL",
                   help="use this Redis server (never stopped); default: the run starts its own on a unix socket")
    g.add_argument("--postgres-url", default="", metavar="URL",
                   help="use this PostgreSQL database (never stopped); default: the run starts its own")

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
        shown = k.words[k.default] if k.words else "on" if k.default is True else "off" if k.default is False \
            else k.default
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
            extra.update(type={"int": int, "float": float}[k.kind],
                         metavar=METAVARS.get(k.unit, "N" if k.kind == "int" else "X"))
        g.add_argument(k.flag, **extra)
    if hops:
        flag = hops[0].flag.split()[0]
        g.add_argument(flag, action="append", default=[], metavar="HOP=MS",
                       help=f"add latency to a hop: {', '.join(LATENCY_HOPS)} (repeatable)")
    return g


def _replay_parsers(sub) -> None:
    rp = sub.add_parser("replay", help="replay a recording in the window (no lab needed), or print its summary")
    rp.add_argument("file", type=Path, metavar="FILE", help="a recording made by `run --record` or the window")
    rp.add_argument("--json", nargs="?", const="-", metavar="OUT",
                    help="print the run's summary as JSON (to OUT, or standard output), no window")
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
    sc.add_argument("--theme", default="light", choices=("light", "dark", "projector"),
                    help="the window's theme (default light)")
    sc.add_argument("--present", action="store_true",
                    help="presentation mode: the flow view, the caption, the event strip and four charts")
    sc.add_argument("--node-lines", action="store_true",
                    help="the charts also draw one thin line per app node (lanes run with several nodes)")

    d = sub.add_parser("docs", help="write the lesson guides (Markdown, pictures rendered by the window, "
                                    "claims and numbers of a real run) into DIR/lessons (`make docs`)")
    d.add_argument("--out", type=Path, required=True, metavar="DIR",
                   help="the docs folder (its parent's README.md gets the lesson table)")
    d.add_argument("--only", action="append", default=[], metavar="NAME",
                   help="only this lesson (a built-in name or a scenario file; repeatable)")
    d.add_argument("--pictures-only", action="store_true", help=argparse.SUPPRESS)  # its child process
    d.add_argument("--regions", action="store_true", help=argparse.SUPPRESS)  # the child's, for the tests


def _other_parsers(sub) -> None:
    sub.add_parser("scenarios", help="list the built-in scenarios")
    sub.add_parser("self-check", help="does this installation work? open the window offscreen, run the lanes, "
                                      "crash the node, render a frame")
    c = sub.add_parser("check", help="validate a scenario file (--run: run it and check its [expect] claims)")
    c.add_argument("file", type=Path, metavar="FILE", help="a scenario file or a built-in scenario's name")
    c.add_argument("--run", action="store_true",
                   help="run the scenario headless with its seed and say whether each claim of its [expect] held "
                        "(exit 1 if one did not)")

    b = sub.add_parser("bench", help="measure the engine against the seed's plain loops")
    b.add_argument("--duration", type=float, metavar="SEC", help="per repetition (default 10; 1 with --quick)")
    b.add_argument("--reps", type=int, metavar="N", help="repetitions of each figure (default 3; 2 with --quick)")
    b.add_argument("--quick", action="store_true", help="short runs, small sizes, no 10-minute memory run")
    b.add_argument("--chart", type=Path, metavar="FILE.png", help="draw the ratios and targets as a PNG chart")
    b.add_argument("--seed", type=int, default=7, metavar="N")
    b.add_argument("--gui", action="store_true",
                   help="also the window's figures: frame interval, throughput attached vs headless, first paint, "
                        "memory over 10 minutes (not with --quick)")
    b.add_argument("--json", type=Path, metavar="FILE", help="write every figure as JSON")
    b.add_argument("--time-machine", action="store_true",
                   help="also what recording costs (ratio in one run) and scrub steps across a 10-minute recording")
    b.add_argument("--recording", type=Path, metavar="FILE",
                   help="with --time-machine: scrub this recording instead of recording 10 minutes first")
    b.add_argument("--remote", action="store_true",
                   help="only the Redis + PostgreSQL figures (issue 14): each strategy's lane against the seed's "
                        "snippets written plainly with redis-py and psycopg, and the lanes at 1, 2 and 4 nodes, on "
                        "the bench's own redis-server and PostgreSQL")


def _word_is(true: str) -> Callable[[str], bool]:
    return lambda word: word == true


#: Command-line knob -> (section of LaneConfig, field, conversion): every knob of
#: config.KNOBS with an option of its own (a two-word one is converted to true/false).
KNOB_ARGS: dict[str, tuple[str, str, Callable[[str], bool] | None]] = {
    k.flag[2:].replace("-", "_"): (k.section, k.name, _word_is(k.words[1]) if k.words else None)
    for k in KNOBS if " " not in k.flag}


def explicit_options(parser: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """The dests of the options the user typed (so a scenario's values are kept otherwise)."""
    given = {token.split("=", 1)[0] for token in argv if token.startswith("--")}
    out = set()
    for action in parser._actions:  # noqa: SLF001 - argparse offers no public way
        if given & set(action.option_strings):
            out.add(action.dest)
    return out


def lane_configs(args, scenario=None, explicit: set[str] | None = None) -> list[LaneConfig]:
    """Lanes from a scenario (if any), with every knob typed on the command line applied.
    A lane's own knobs (``--lane``, a scenario's ``[[lanes]]``) win over the run's."""
    lanes = getattr(args, "lane", None) or []
    if lanes and args.strategy is not None:
        raise BadInput("give --strategy or --lane, not both")
    if lanes:
        specs = lanes
    elif args.strategy is None:
        specs = list(scenario.specs) if scenario else [LaneSpec(s) for s in STRATEGIES]
    elif args.strategy == "all":
        specs = [LaneSpec(s) for s in STRATEGIES]
    elif args.strategy in STRATEGIES:
        specs = [LaneSpec(args.strategy)]
    else:
        raise BadInput(f"--strategy must be one of {', '.join(STRATEGIES)} or all, got {args.strategy!r}")
    base = scenario.base if scenario else LaneConfig(strategy=specs[0].strategy)
    if args.seed is not None:
        base = replace(base, seed=args.seed)
    for dest, (section, name, convert) in KNOB_ARGS.items():
        if scenario is not None and dest not in (explicit or set()):
            continue
        value = getattr(args, dest)
        part = replace(getattr(base, section), **{name: convert(value) if convert else value})
        base = replace(base, **{section: part})
    latency = parse_latency(args.latency)
    if latency:
        base = replace(base, latency=replace(base.latency, **latency))
    out = [spec.build(base) for spec in specs]
    try:
        lane_labels(out)
    except ConfigError as exc:
        raise BadInput(f"--lane: {exc}") from None
    return out


# ------------------------------------------------------------------------------ commands


def _discard(*outputs) -> None:
    """Drop output files not yet committed (a failed or interrupted run's)."""
    for out in outputs:
        if out is not None:
            out.discard()


def cmd_run(args, explicit: set[str]) -> int:
    from .engine import scenario as scenarios
    from .engine.outputs import open_outputs
    from .engine.runner import LabFailed, Plan, StopRequest, check_plan, run

    sc = scenarios.load(scenarios.find(args.scenario)) if args.scenario else None
    lanes = lane_configs(args, sc, explicit)
    duration = args.duration if args.duration is not None else (sc.duration_s if sc else 10.0)
    restart = args.restart_delay if args.restart_delay is not None else (sc.restart_delay_s if sc else 1.0)
    typed = {kind.field: getattr(args, kind.field) for kind in FAULTS}  # each flag's dest is its plan field
    timeline = {f: sorted((sc.timeline[f] if sc else []) + typed[f]) for f in typed}
    plan = Plan(lanes=lanes, duration_s=duration, restart_delay_s=restart, run_dir=args.run_dir,
                redis_url=args.redis_url, postgres_url=args.postgres_url, **timeline)
    check_plan(plan)
    json_out, hist_out = open_outputs([(args.json, "--json"), (args.history, "--history")])
    recorder = None
    if args.record is not None:
        from .engine.recording import RecordingWriter, check_target, plan_header

        try:
            recorder = RecordingWriter(check_target(args.record), plan_header(plan, sc))
        except BaseException:
            _discard(json_out, hist_out)
            raise
    say = Console(sys.stderr if any(o is not None and o.to_stdout for o in (json_out, hist_out))
                  or str(args.record) == "-" else None)
    stop = StopRequest()

    def on_signal(signum, frame) -> None:
        if stop.signal:  # a second one: stop now (labs killed, nothing more written)
            raise KeyboardInterrupt
        stop.set(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        names = ", ".join(c.label for c in lanes)
        origin = f" from scenario {sc.name}" if sc else ""
        say(f"running {names} for {duration:g} s (seed {plan.seed}){origin}")
        for note in (sc.notes if sc else []) + [n for n in plan.notes if not sc or n not in sc.notes]:
            say(f"  note: {note}")

        def show(ev: dict) -> None:
            if ev["kind"] != "config":
                mark = " [injected]" if ev.get("injected") else ""
                say(f"  {ev['start']:7.2f} s  {ev['kind']}: {ev['detail']}{mark}")

        try:
            summary = run(plan, on_event=show, history=hist_out, stop=stop, recorder=recorder)
        except LabFailed as exc:
            _discard(json_out, hist_out, recorder.target if recorder is not None else None)
            print(f"cachestudio: lab failed: {exc}", file=sys.stderr)
            return EXIT_LAB_FAILED
    except BaseException:
        _discard(json_out, hist_out)
        if recorder is not None:  # what was recorded stays, readable up to here
            getattr(recorder.target, "commit_quietly", recorder.target.discard)()
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return _after_run(args, summary, say, (json_out, hist_out, recorder))


def _after_run(args, summary: dict, say, outputs) -> int:
    """The run's tables, its output files committed, and its exit status (a lab failure,
    an interruption, an output that could not be written)."""
    from .engine.outputs import OutputWriteError

    json_out, hist_out, recorder = outputs
    say()
    say_tables(say, summary)
    failed_outputs = []
    written = []
    if json_out is not None:
        json_out.write(json.dumps(summary, indent=2) + "\n")
    for out, what in ((json_out, f"summary written to {args.json}"),
                      (hist_out, f"history ({summary.get('history_records', 0):,} records) written to {args.history}"),
                      (recorder.target if recorder else None, "")):
        if out is None:
            continue
        try:
            out.commit()
            if not what:  # the recording: its size says what it costs
                from .engine.recording import size_note

                ops = recorder.ops_written
                size = size_note(args.record, ops) if os.path.isfile(args.record) else "streamed"
                what = f"recording ({ops:,} operations, {size}) written to {args.record}"
            written.append(what)
        except OutputWriteError as exc:
            failed_outputs.append(str(exc))
    if written:
        say()
        for line in written:
            say(line)
    if args.run_dir is not None:
        say(f"cache directories and SQLite files kept in {args.run_dir}")
    for line in failed_outputs:
        print(f"cachestudio: error: {line}", file=sys.stderr)
    if summary["interrupted"]:
        print(f"cachestudio: interrupted by {summary['interrupted']} at {summary['ended_at_s']:.1f} s; "
              "the summary is partial (marked interrupted)", file=sys.stderr)
        return EXIT_SIGNAL.get(summary["interrupted"], 130)
    failures = [f for lane in summary["lanes"] for f in lane["failures"]] + summary["failures"]
    if failures:
        more = f" (and {len(failures) - 1} more failure{'s' if len(failures) > 2 else ''})" if len(failures) > 1 else ""
        print(f"cachestudio: lab failed: {failures[0]['reason']}{more}", file=sys.stderr)
        return EXIT_LAB_FAILED
    return EXIT_FAILED if failed_outputs else 0


def _load_recording(path):
    from .engine.recording import read_recording

    rec = read_recording(path)
    if not rec.complete:
        print(f"cachestudio: note: {path}: {rec.note}; read up to {rec.end_time:.1f} s", file=sys.stderr)
    return rec


def cmd_replay(args) -> int:
    if args.json is None and not args.table:
        from .ui.app import no_display_reason, run_window

        reason = no_display_reason()  # before reading what may be a big recording
        if reason:
            raise BadInput(reason)
        recs = [_load_recording(args.file)] + ([_load_recording(args.compare)] if args.compare else [])
        return run_window(replay=recs)
    if args.compare:
        raise BadInput("--compare opens the window; give it without --json or --table")
    from .engine.outputs import OutputWriteError, open_outputs
    from .engine.recording import describe, replay_summary

    json_out, = open_outputs([(args.json, "--json")]) if args.json is not None else (None,)
    rec = _load_recording(args.file)
    summary = replay_summary(rec)
    if args.table:
        say = Console(sys.stderr if json_out is not None and json_out.to_stdout else None)
        say(describe(rec))
        say()
        say_tables(say, summary)
    if json_out is not None:
        json_out.write(json.dumps(summary, indent=2) + "\n")
        try:
            json_out.commit()
        except OutputWriteError as exc:
            print(f"cachestudio: error: {exc}", file=sys.stderr)
            return EXIT_FAILED
    return 0


def cmd_report(args) -> int:
    from .engine.htmlreport import render_report
    from .engine.outputs import OutputWriteError, write_output
    from .engine.recording import replay_summary
    from .engine.timemachine import Tape

    rec = _load_recording(args.file)
    tape = Tape.from_recording(rec)
    html = render_report(replay_summary(rec), rec.header, tape.series_lists(), tape.group_list(),
                         tape.node_series_lists())
    try:
        write_output(args.html, "--html", html)
    except OutputWriteError as exc:
        print(f"cachestudio: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"report written to {args.html} ({len(html.encode()) / 1e3:,.0f} kB)", file=sys.stderr)
    return 0


def parse_size(text: str) -> tuple[int, int]:
    w, sep, h = text.lower().partition("x")
    if not (sep and w.isdigit() and h.isdigit()):
        raise BadInput(f"--size wants WIDTHxHEIGHT in pixels, got {text!r}")
    size = int(w), int(h)
    if not all(200 <= v <= 8000 for v in size):
        raise BadInput(f"--size must be between 200x200 and 8000x8000, got {text!r}")
    return size


def cmd_screenshot(args) -> int:
    from .engine import scenario as scenarios

    size = parse_size(args.size)
    sc = scenarios.load(scenarios.find(args.scenario))
    if not (0 < args.at <= min(sc.duration_s, 600)):
        raise BadInput(f"--at must be within the scenario (0 to {min(sc.duration_s, 600):g} s), got {args.at:g}")
    if args.out.exists() and not args.out.is_dir():
        raise BadInput(f"--out {args.out} is not a directory")
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"--out {args.out} cannot be made: {exc.strerror or exc}") from None
    if not os.access(args.out, os.W_OK):
        raise BadInput(f"--out {args.out} cannot be written")
    from .engine.outputs import OutputWriteError
    from .ui.app import screenshot

    try:
        for path in screenshot(sc.path, args.at, args.out, size, theme=args.theme, present=args.present,
                               node_lines=args.node_lines):
            print(path)
    except OutputWriteError as exc:
        print(f"cachestudio: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def cmd_docs(args) -> int:
    """The lesson guides (cachestudio/lessondocs.py)."""
    if args.out.exists() and not args.out.is_dir():
        raise BadInput(f"--out {args.out} is not a directory")
    from .engine.outputs import OutputWriteError
    from .lessondocs import write_docs

    try:
        return write_docs(args.out, args.only, pictures_only=args.pictures_only, regions=args.regions)
    except OutputWriteError as exc:
        print(f"cachestudio: error: {exc}", file=sys.stderr)
        return EXIT_FAILED


def cmd_scenarios(args) -> int:
    from .engine.scenario import builtin_scenarios

    items = builtin_scenarios()
    width = max(len(sc.name) for sc in items)
    lanes = {}
    for sc in items:
        names = [c.label for c in sc.lanes]
        lanes[sc.name] = "all" if names == list(STRATEGIES) else " | ".join(names)
    across = max(len(v) for v in lanes.values())
    for sc in items:
        print(f"{sc.name:<{width}}  {sc.duration_s:>5g} s  {lanes[sc.name]:<{across}}  {sc.title}")
    return 0


def cmd_check(args) -> int:
    from .engine import scenario as scenarios

    sc = scenarios.load(scenarios.find(str(args.file)))
    faults = sc.fault_count()
    print(f"{args.file}: ok: {sc.name}, {len(sc.lanes)} lane(s), {sc.duration_s:g} s, seed {sc.seed}, "
          f"{faults} fault(s)")
    for note in sc.notes:
        print(f"  note: {note}")
    if not args.run:
        if sc.expect:
            print(f"  {len(sc.expect)} claim(s) in [expect]: `cachestudio check --run {args.file}` checks them")
        return 0
    return _check_run(sc)


def _check_run(sc) -> int:
    """Run a scenario headless (its seed, its timeline) and check its claims."""
    from .engine.lessons import check
    from .engine.runner import LabFailed, Plan, run

    plan = Plan(lanes=sc.lanes, duration_s=sc.duration_s, restart_delay_s=sc.restart_delay_s, **sc.timeline)
    print(f"running {sc.name} for {sc.duration_s:g} s (seed {sc.seed}) …", flush=True)
    try:
        summary = run(plan)
    except LabFailed as exc:
        print(f"cachestudio: lab failed: {exc}", file=sys.stderr)
        return EXIT_LAB_FAILED
    failures = [f for lane in summary["lanes"] for f in lane["failures"]] + summary["failures"]
    if failures:
        print(f"cachestudio: lab failed: {failures[0]['reason']}; the claims are not judged", file=sys.stderr)
        return EXIT_LAB_FAILED
    if not sc.expect:
        print("no claims to check: the scenario has no [expect] table")
        return 0
    results = check(sc.expect, summary)
    for claim, value, held in results:
        shown = "—" if value is None else f"{value:g}" if isinstance(value, float) else f"{value:,}"
        print(f"  {'held' if held else 'DID NOT HOLD'}: {claim.text()} (measured {shown})")
    broken = [c for c, _, held in results if not held]
    if broken:
        print(f"cachestudio: {len(broken)} of {len(results)} claims of {sc.name} did not hold", file=sys.stderr)
        return EXIT_FAILED
    print(f"every claim held ({len(results)})")
    return 0


def machine_info() -> dict:
    import platform
    from importlib import metadata

    versions: dict[str, str | None] = {}
    for dist in ("PySide6-Essentials", "pyqtgraph", "diskcache", "sqlite-utils", "numpy"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    cpu = ""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "")
    except OSError:
        pass
    import sqlite3

    return {"platform": platform.platform(), "cpu": cpu or platform.processor(), "cores": os.cpu_count(),
            "python": platform.python_version(), "sqlite": sqlite3.sqlite_version, "packages": versions}


def cmd_bench(args) -> int:
    duration = args.duration if args.duration is not None else (1.0 if args.quick else 10.0)
    reps = args.reps if args.reps is not None else (2 if args.quick else 3)
    if not (0.5 <= duration <= 600):
        raise BadInput(f"--duration must be between 0.5 and 600 seconds, got {duration:g}")
    if not (1 <= reps <= 50):
        raise BadInput(f"--reps must be between 1 and 50, got {reps}")
    if args.chart is not None and args.chart.suffix.lower() != ".png":
        raise BadInput(f"--chart {args.chart}: the chart is a PNG file (name it .png)")
    if args.remote and (args.gui or args.time_machine or args.recording is not None):
        raise BadInput("--remote measures only the Redis + PostgreSQL figures: give it without --gui, "
                       "--time-machine or --recording")
    from .engine.outputs import OutputWriteError, open_outputs

    json_out, chart_out = open_outputs([(args.json, "--json"), (args.chart, "--chart")])
    try:
        return _bench(args, duration, reps, json_out, chart_out)
    except OutputWriteError as exc:
        print(f"cachestudio: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        for out in (json_out, chart_out):
            if out is not None:
                out.discard()  # after a commit this does nothing


def _time_machine_figures(args, duration: float, reps: int) -> list[dict]:
    import tempfile

    from .engine.bench import recording_cost
    from .engine.recording import RecordingWriter, check_target, plan_header
    from .engine.runner import Plan, run
    from .ui.bench_gui import scrub_figures

    rows = [recording_cost(LaneConfig(strategy="cache-aside", seed=args.seed), duration, reps)]
    if args.recording is not None:
        return rows + scrub_figures(args.recording)
    long_s = 20.0 if args.quick else 600.0
    print(f"recording a {long_s:g} s run to scrub (three lanes at 1,500 operations/s, faults on the way)", flush=True)
    lanes = [LaneConfig(strategy=s, seed=args.seed, workload=replace(LaneConfig("cache-aside").workload, rate=1500.0))
             for s in STRATEGIES]
    plan = Plan(lanes=lanes, duration_s=long_s, crash_at=[long_s * 0.2, long_s * 0.7], outages=[(long_s * 0.4, 3.0)],
                bursts=[(long_s * 0.5, "write", 5000)])
    with tempfile.TemporaryDirectory(prefix="cachestudio-bench-") as tmp:
        path = Path(tmp) / "long.csrec"
        w = RecordingWriter(check_target(path), plan_header(plan))
        run(plan, recorder=w)
        w.target.commit()
        return rows + scrub_figures(path)


def _remote_figures(args, duration: float, reps: int) -> tuple[list[dict], dict]:
    """``--remote``: the Redis + PostgreSQL figures, on one redis-server and one PostgreSQL
    of the bench's own (a server not installed: a ConfigError, one line, exit 2)."""
    from .engine.bench import bench_servers, nodes_scaling, remote_vs_plain
    from .engine.storage import pg_version, redis_version

    print(f"benchmark on Redis + PostgreSQL: {reps} interleaved repetitions of {duration:g} s per figure",
          flush=True)
    base = LaneConfig(strategy="cache-aside", seed=args.seed)
    with bench_servers() as servers:
        versions = {"redis": redis_version(servers[0]), "postgresql": pg_version(servers[1])}
        print(f"servers: Redis {versions['redis']} and PostgreSQL {versions['postgresql']}, the bench's own, "
              "on unix sockets", flush=True)
        rows = remote_vs_plain(base, duration, reps, servers)
        rows += nodes_scaling(base, duration, reps, servers=servers)
    return rows, versions


def _bench(args, duration: float, reps: int, json_out, chart_out) -> int:
    from .engine.bench import (
        KEY_SPACES,
        concurrency_vs_tuned,
        drain_vs_executemany,
        hit_path_vs_bare_get,
        key_space,
        strategies_vs_yardsticks,
    )

    if args.remote:
        return _bench_report(args, duration, reps, json_out, chart_out, *_remote_figures(args, duration, reps))
    print(f"benchmark: {reps} interleaved repetitions of {duration:g} s per figure"
          + (" (quick: uniform keys only, 1 and 2 threads, 1,000 and 10,000,000 keys; no long run)"
             if args.quick else ""), flush=True)
    base = LaneConfig(strategy="cache-aside", seed=args.seed)
    rows = strategies_vs_yardsticks(base, duration, reps, distributions=("uniform",) if args.quick else
                                    ("uniform", "zipf"))
    rows.append(hit_path_vs_bare_get(duration, reps, args.seed))
    rows.append(drain_vs_executemany(reps, rows=5_000 if args.quick else 50_000))
    rows += concurrency_vs_tuned(base, duration, reps, threads=(1, 2) if args.quick else (1, 2, 4, 8))
    rows += key_space(base, run_s=min(duration, 3.0), reps=1 if args.quick else reps,
                      sizes=(KEY_SPACES[0], KEY_SPACES[-1]) if args.quick else KEY_SPACES)
    if args.time_machine:
        rows += _time_machine_figures(args, duration, reps)
    if args.gui:
        from .ui.bench_gui import gui_figures

        gui_s = max(duration, 5.0 if args.quick else 30.0)
        rows += gui_figures(args.seed, gui_s, reps, long_run_s=None if args.quick else 600.0)
    return _bench_report(args, duration, reps, json_out, chart_out, rows)


def _bench_report(args, duration: float, reps: int, json_out, chart_out, rows: list[dict],
                  servers: dict | None = None) -> int:
    print()
    print(format_bench(rows))
    if servers is None:
        print("strategies: the engine (lab process, history, telemetry and auditor on) vs the seed's snippets, written")
        print("literally and tuned (a batch per transaction in the write-behind flusher), same workload and SQLite")
        print("settings; each figure is the median of interleaved repetitions (A B A B …)")
    else:
        print("Redis + PostgreSQL: each lane (lab process, history, telemetry and auditor on) vs the seed's snippets")
        print("written plainly with redis-py and psycopg (the write-behind flusher: executemany, a batch per")
        print("transaction), same servers and workload (80 % reads, 1,000 uniform keys, one client thread per node,")
        print("flat out); nodes: the same lane at 1, 2 and 4 app nodes against 1 node; each figure is the median of")
        print("interleaved repetitions (A B A B …)")
    result = {"machine": machine_info(), "reps": reps, "duration_s": duration, "quick": args.quick, "figures": rows}
    if servers is not None:
        result["servers"] = servers
    if json_out is not None:
        json_out.write(json.dumps(result, indent=2) + "\n")
        json_out.commit()
        print(f"figures written to {args.json}")
    if chart_out is not None:
        from .ui.bench_chart import render_chart

        chart_out.write(render_chart(rows, f"cachestudio bench — {result['machine']['cores']} cores, "
                                           f"{result['machine']['cpu'] or result['machine']['platform']}"))
        chart_out.commit()
        print(f"chart written to {args.chart}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            from .ui.app import no_display_reason, run_window

            scenario = None
            if args.window_scenario is not None:  # checked before any window opens
                from .engine import scenario as scenarios

                scenario = scenarios.load(scenarios.find(args.window_scenario)).path
            reason = no_display_reason()
            if reason:
                raise BadInput(reason)
            return run_window(scenario=scenario)
        if args.command == "run":
            return cmd_run(args, explicit_options(parser._subparsers._group_actions[0].choices["run"],
                                                  argv if argv is not None else sys.argv[1:]))
        if args.command == "screenshot":
            return cmd_screenshot(args)
        if args.command == "docs":
            return cmd_docs(args)
        if args.command == "replay":
            return cmd_replay(args)
        if args.command == "report":
            return cmd_report(args)
        if args.command == "scenarios":
            return cmd_scenarios(args)
        if args.command == "check":
            return cmd_check(args)
        if args.command == "self-check":
            from .ui.self_check import run_self_check

            return run_self_check()
        if args.command == "bench":
            return cmd_bench(args)
        raise BadInput(f"unknown command {args.command!r}")
    except (BadInput, ConfigError) as exc:
        print(f"cachestudio: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # the reader of our output went away (`| head -1`): end quietly
        quiet_stdout()
        return 0
    except KeyboardInterrupt:
        print("cachestudio: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug or a failure we did not foresee: one line, not a traceback
        if os.environ.get("CACHESTUDIO_DEBUG"):
            raise
        from .engine.runner import LabFailed

        if isinstance(exc, LabFailed):
            print(f"cachestudio: lab failed: {exc}", file=sys.stderr)
            return EXIT_LAB_FAILED
        print(f"cachestudio: failed: {type(exc).__name__}: {exc} (CACHESTUDIO_DEBUG=1 shows where)", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
