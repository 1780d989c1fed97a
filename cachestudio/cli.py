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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from .cliargs import FILES, KNOB_ARGS, BadInput, build_parser, parse_latency, parse_size
from .engine.config import (
    STRATEGIES,
    ConfigError,
    Interrupted,
    LaneConfig,
    LaneSpec,
    Workload,
    lane_labels,
)
from .engine.faultkinds import FAULTS
from .textreport import format_bench, say_tables

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_LAB_FAILED = 3
EXIT_SIGNAL = {"SIGINT": 130, "SIGTERM": 143}


@contextmanager
def on_signals(stop=None, restore: bool = True) -> Iterator[None]:
    """The one way every command meets SIGINT/SIGTERM. With ``stop`` (a run's
    :class:`~.engine.runner.StopRequest`) the first signal asks the run to stop at its next
    round and write its partial summary (at once while it is still starting); otherwise
    the signal raises :class:`~.engine.runner.Interrupted`, and the command's ``finally``s
    remove what it made (temp folders, uncommitted outputs, its labs and servers). Once it
    has been raised, further signals are noted and ignored, so that the cleaning up ends.
    ``restore`` false (the process's own command line): after the block the signals are
    ignored, not given back to Python's defaults — the work is done and the exit status
    says how; a signal then must not turn it into a death by signal."""
    from .engine.runner import StopRequest

    raised: list[str] = []

    def on_signal(signum, frame) -> None:
        name = signal.Signals(signum).name
        if raised:
            return  # already stopping: let the cleaning up finish
        try:
            (stop or _Raise()).signalled(name)
        except Interrupted:
            raised.append(name)
            raise

    class _Raise(StopRequest):
        def signalled(self, name: str) -> None:
            raise Interrupted(name)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if restore else signal.SIG_IGN)


@contextmanager
def default_signals() -> Iterator[None]:
    """Python's own handling of SIGINT/SIGTERM (the window's, which has its own loop)."""
    previous = {
        signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler),
        signal.SIGTERM: signal.signal(signal.SIGTERM, signal.SIG_DFL),
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


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
    plan = Plan(
        lanes=lanes,
        duration_s=duration,
        restart_delay_s=restart,
        run_dir=args.run_dir,
        redis_url=args.redis_url,
        postgres_url=args.postgres_url,
        **timeline,
    )
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
    say = Console(
        sys.stderr
        if any(o is not None and o.to_stdout for o in (json_out, hist_out)) or str(args.record) == "-"
        else None
    )
    stop = StopRequest()
    handling = on_signals(stop)
    handling.__enter__()
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
        handling.__exit__(None, None, None)
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
    for out, what in (
        (json_out, f"summary written to {args.json}"),
        (hist_out, f"history ({summary.get('history_records', 0):,} records) written to {args.history}"),
        (recorder.target if recorder else None, ""),
    ):
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
        print(
            f"cachestudio: interrupted by {summary['interrupted']} at {summary['ended_at_s']:.1f} s; "
            "the summary is partial (marked interrupted)",
            file=sys.stderr,
        )
        return EXIT_SIGNAL.get(summary["interrupted"], 130)
    failures = [f for lane in summary["lanes"] for f in lane["failures"]] + summary["failures"]
    if failures:
        more = f" (and {len(failures) - 1} more failure{'s' if len(failures) > 2 else ''})" if len(failures) > 1 else ""
        print(f"cachestudio: lab failed: {failures[0]['reason']}{more}", file=sys.stderr)
        return EXIT_LAB_FAILED
    return EXIT_FAILED if failed_outputs else 0


def _load_recording(path):
    from .engine.recording import read_recording, reading

    with reading(path):
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
        with default_signals():
            return run_window(replay=recs)
    if args.compare:
        raise BadInput("--compare opens the window; give it without --json or --table")
    from .engine.outputs import OutputWriteError, open_outputs
    from .engine.recording import describe, reading, replay_summary

    (json_out,) = open_outputs([(args.json, "--json")]) if args.json is not None else (None,)
    rec = _load_recording(args.file)
    with reading(args.file):
        summary = replay_summary(rec)
        describe(rec)
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
    from .engine.recording import reading, replay_summary
    from .engine.timemachine import Tape

    rec = _load_recording(args.file)
    with reading(args.file):
        tape = Tape.from_recording(rec)
        html = render_report(
            replay_summary(rec), rec.header, tape.series_lists(), tape.group_list(), tape.node_series_lists()
        )
    try:
        write_output(args.html, "--html", html)
    except OutputWriteError as exc:
        print(f"cachestudio: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"report written to {args.html} ({len(html.encode()) / 1e3:,.0f} kB)", file=sys.stderr)
    return 0


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
        for path in screenshot(
            sc.path, args.at, args.out, size, theme=args.theme, present=args.present, node_lines=args.node_lines
        ):
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
    print(
        f"{args.file}: ok: {sc.name}, {len(sc.lanes)} lane(s), {sc.duration_s:g} s, seed {sc.seed}, {faults} fault(s)"
    )
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
    from .engine.runner import LabFailed, Plan, StopRequest, run

    plan = Plan(lanes=sc.lanes, duration_s=sc.duration_s, restart_delay_s=sc.restart_delay_s, **sc.timeline)
    print(f"running {sc.name} for {sc.duration_s:g} s (seed {sc.seed}) …", flush=True)
    stop = StopRequest()
    try:
        with on_signals(stop):
            summary = run(plan, stop=stop)
    except LabFailed as exc:
        print(f"cachestudio: lab failed: {exc}", file=sys.stderr)
        return EXIT_LAB_FAILED
    if summary["interrupted"]:  # the partial result: what ran, its claims not judged
        print()
        say_tables(Console(), summary)
        print(
            f"cachestudio: interrupted by {summary['interrupted']} at {summary['ended_at_s']:.1f} s; "
            f"the claims of {sc.name} are not judged",
            file=sys.stderr,
        )
        return EXIT_SIGNAL.get(summary["interrupted"], 130)
    failures = [f for lane in summary["lanes"] for f in lane["failures"]] + summary["failures"]
    if failures:
        print(f"cachestudio: lab failed: {failures[0]['reason']}; the claims are not judged", file=sys.stderr)
        return EXIT_LAB_FAILED
    if not sc.expect:
        print("no claims to check: the scenario has no [expect] table")
        return 0
    results = check(sc.expect, summary)
    for v in results:
        why = f": {v.why}" if v.why else ""
        print(f"  {'held' if v.held else 'DID NOT HOLD'}: {v.claim.text()} (measured {v.measured()}{why})")
    broken = [v.claim for v in results if not v.held]
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

    return {
        "platform": platform.platform(),
        "cpu": cpu or platform.processor(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "packages": versions,
    }


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
        raise BadInput(
            "--remote measures only the Redis + PostgreSQL figures: give it without --gui, "
            "--time-machine or --recording"
        )
    if args.recording is not None:  # the file is looked at before anything is measured
        if not args.time_machine:
            raise BadInput("--recording is the recording --time-machine scrubs; give --time-machine too")
        from .engine.recording import reading
        from .engine.timemachine import Tape

        with reading(args.recording):
            Tape.from_recording(_load_recording(args.recording))
    from .engine.outputs import OutputWriteError, open_outputs

    json_out, chart_out = open_outputs([(args.json, "--json"), (args.chart, "--chart")])
    rows: list[dict] = []  # the figures measured so far: the partial result of an interrupted bench
    try:
        return _bench(args, duration, reps, json_out, chart_out, rows)
    except Interrupted as exc:
        if rows:
            print()
            print(format_bench(rows))
        print(
            f"cachestudio: interrupted by {exc.signal}; the bench is partial ({len(rows)} figure(s) above), "
            "nothing written",
            file=sys.stderr,
        )
        return EXIT_SIGNAL.get(exc.signal, 130)
    except OutputWriteError as exc:
        print(f"cachestudio: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        for out in (json_out, chart_out):
            if out is not None:
                out.discard()  # after a commit this does nothing


def _time_machine_figures(args, duration: float, reps: int) -> list[dict]:
    from .engine.bench import recording_cost
    from .engine.recording import SUFFIX, RecordingWriter, check_target, plan_header
    from .engine.runner import Plan, run
    from .engine.tempfolders import temp_folder
    from .ui.bench_gui import scrub_figures

    rows = [recording_cost(LaneConfig(strategy=STRATEGIES[0], seed=args.seed), duration, reps)]
    if args.recording is not None:
        return rows + scrub_figures(args.recording)
    long_s = 20.0 if args.quick else 600.0
    print(f"recording a {long_s:g} s run to scrub (three lanes at 1,500 operations/s, faults on the way)", flush=True)
    lanes = [LaneConfig(strategy=s, seed=args.seed, workload=Workload(rate=1500.0)) for s in STRATEGIES]
    plan = Plan(
        lanes=lanes,
        duration_s=long_s,
        crash_at=[long_s * 0.2, long_s * 0.7],
        outages=[(long_s * 0.4, 3.0)],
        bursts=[(long_s * 0.5, "write", 5000)],
    )
    with temp_folder("bench") as tmp:
        path = Path(tmp) / f"long{SUFFIX}"
        w = RecordingWriter(check_target(path), plan_header(plan))
        run(plan, recorder=w)
        w.target.commit()
        return rows + scrub_figures(path)


def _remote_figures(args, duration: float, reps: int, rows: list[dict]) -> tuple[list[dict], dict]:
    """``--remote``: the Redis + PostgreSQL figures, on one redis-server and one PostgreSQL
    of the bench's own (a server not installed: a ConfigError, one line, exit 2)."""
    from .engine.bench import bench_servers, nodes_scaling, remote_vs_plain
    from .engine.storage import pg_version, redis_version

    print(f"benchmark on Redis + PostgreSQL: {reps} interleaved repetitions of {duration:g} s per figure", flush=True)
    base = LaneConfig(strategy=STRATEGIES[0], seed=args.seed)  # the bench sets each lane's strategy
    with bench_servers() as servers:
        versions = {"redis": redis_version(servers[0]), "postgresql": pg_version(servers[1])}
        print(
            f"servers: Redis {versions['redis']} and PostgreSQL {versions['postgresql']}, the bench's own, "
            "on unix sockets",
            flush=True,
        )
        rows += remote_vs_plain(base, duration, reps, servers)
        rows += nodes_scaling(base, duration, reps, servers=servers)
    return rows, versions


def _bench(args, duration: float, reps: int, json_out, chart_out, rows: list[dict]) -> int:
    """The figures, each added to ``rows`` as it is measured (a signal leaves those)."""
    from .engine.bench import (
        KEY_SPACES,
        commit_log_cost,
        concurrency_vs_tuned,
        drain_vs_executemany,
        hit_path_vs_bare_get,
        key_space,
        strategies_vs_yardsticks,
    )

    if args.remote:
        return _bench_report(args, duration, reps, json_out, chart_out, *_remote_figures(args, duration, reps, rows))
    print(
        f"benchmark: {reps} interleaved repetitions of {duration:g} s per figure"
        + (
            " (quick: uniform keys only, 1 and 2 threads, 1,000 and 10,000,000 keys; no long run)" if args.quick else ""
        ),
        flush=True,
    )
    base = LaneConfig(strategy=STRATEGIES[0], seed=args.seed)  # the bench sets each lane's strategy
    rows += strategies_vs_yardsticks(
        base, duration, reps, distributions=("uniform",) if args.quick else ("uniform", "zipf")
    )
    rows.append(hit_path_vs_bare_get(duration, reps, args.seed))
    rows.append(drain_vs_executemany(reps, rows=5_000 if args.quick else 50_000))
    rows += commit_log_cost(reps, rows=1_000 if args.quick else 5_000)
    rows += concurrency_vs_tuned(base, duration, reps, threads=(1, 2) if args.quick else (1, 2, 4, 8))
    rows += key_space(
        base,
        run_s=min(duration, 3.0),
        reps=1 if args.quick else reps,
        sizes=(KEY_SPACES[0], KEY_SPACES[-1]) if args.quick else KEY_SPACES,
    )
    if args.time_machine:
        rows += _time_machine_figures(args, duration, reps)
    if args.gui:
        from .ui.bench_gui import gui_figures

        gui_s = max(duration, 5.0 if args.quick else 30.0)
        rows += gui_figures(args.seed, gui_s, reps, long_run_s=None if args.quick else 600.0)
    return _bench_report(args, duration, reps, json_out, chart_out, rows)


def _bench_report(
    args, duration: float, reps: int, json_out, chart_out, rows: list[dict], servers: dict | None = None
) -> int:
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

        chart_out.write(
            render_chart(
                rows,
                f"cachestudio bench — {result['machine']['cores']} cores, "
                f"{result['machine']['cpu'] or result['machine']['platform']}",
            )
        )
        chart_out.commit()
        print(f"chart written to {args.chart}")
    return 0


def _subparser(parser: argparse.ArgumentParser, command: str | None) -> argparse.ArgumentParser:
    if command is None:
        return parser
    commands = parser._subparsers._group_actions[0]  # argparse offers no public way to a subparser
    assert isinstance(commands, argparse._SubParsersAction)  # build_parser's one group of commands
    return commands.choices[command]


def check_files_of(parser: argparse.ArgumentParser, args) -> None:
    """The command's files as cliargs.FILES declares them, checked at once before it starts:
    no output is an input, another output or inside a folder it fills (engine.outputs)."""
    from .engine.outputs import check_files

    files = FILES.get(args.command)
    if files is None or not files.writes:  # nothing it writes can hit a file it reads
        return
    names = {
        a.dest: (a.option_strings[0] if a.option_strings else str(a.metavar or a.dest))
        for a in _subparser(parser, args.command)._actions
    }

    def values(dests):
        for dest in dests:
            value = getattr(args, dest, None)
            for v in value if isinstance(value, list) else [value]:
                if v is not None:
                    yield v, names.get(dest, dest)

    reads = list(values(files.reads))
    if files.scenarios:
        from .engine import scenario as scenarios

        reads += [(scenarios.find(str(v)), what) for v, what in values(files.scenarios)]
    check_files(reads, list(values(files.writes)), list(values(files.folders)))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        check_files_of(parser, args)
        if args.command is None:
            from .ui.app import no_display_reason, run_window

            scenario: str | None = None
            if args.window_scenario is not None:  # checked before any window opens
                from .engine import scenario as scenarios

                scenario = str(scenarios.load(scenarios.find(args.window_scenario)).path)
            reason = no_display_reason()
            if reason:
                raise BadInput(reason)
            return run_window(scenario=scenario)
        from .engine.tempfolders import remove_orphans

        remove_orphans()  # what a run, a bench or a window killed with SIGKILL left behind
        with on_signals(restore=argv is not None):  # argv None: the process's own command line
            return _dispatch(parser, args, argv)
    except (BadInput, ConfigError) as exc:
        print(f"cachestudio: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Interrupted as exc:
        print(f"cachestudio: interrupted by {exc.signal}; stopped, nothing left behind", file=sys.stderr)
        return EXIT_SIGNAL.get(exc.signal, 130)
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


def _dispatch(parser, args, argv: list[str] | None) -> int:
    """Run the command (SIGINT/SIGTERM already raise :class:`Interrupted`)."""
    if args.command == "run":
        return cmd_run(args, explicit_options(_subparser(parser, "run"), argv if argv is not None else sys.argv[1:]))
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

        with default_signals():
            return run_self_check()
    if args.command == "bench":
        return cmd_bench(args)
    raise BadInput(f"unknown command {args.command!r}")


if __name__ == "__main__":
    sys.exit(main())
