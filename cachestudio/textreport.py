"""The text a run's summary is read as: the table per lane, what each fault did, the first
anomalies, and the benchmark's figures (``cachestudio run``, ``replay --table``, ``bench``,
the lesson guides). Plain text from plain dicts: no Qt, no argparse, nothing printed here
(:func:`say_tables` hands its lines to the ``say`` it is given).
"""

from __future__ import annotations

from .engine.strategykinds import queues_writes


def _ms(value) -> str:
    return "-" if value is None else (f"{value:.3f}" if value < 10 else f"{value:.1f}")


def lane_name(lane: dict) -> str:
    """A summary lane's name (a recording or summary from before named lanes has none)."""
    return lane.get("name") or lane["strategy"]


def format_table(summary: dict) -> str:
    lanes = summary["lanes"]
    rows = [
        ("ops", lambda ln: f"{ln['ops']:,}"),
        ("ops/s", lambda ln: f"{ln['ops_per_s']:,.0f}"),
        ("reads / writes", lambda ln: f"{ln['reads']:,} / {ln['writes']:,}"),
        ("hit ratio", lambda ln: "-" if ln["hit_ratio"] is None else f"{ln['hit_ratio']:.1%}"),
        ("read p50/p95/p99 ms", lambda ln: " / ".join(_ms(ln["latency_ms"]["read"][p]) for p in ("p50", "p95", "p99"))),
        (
            "write p50/p95/p99 ms",
            lambda ln: " / ".join(_ms(ln["latency_ms"]["write"][p]) for p in ("p50", "p95", "p99")),
        ),
        ("db reads / writes", lambda ln: f"{ln['db']['reads']:,} / {ln['db']['writes']:,}"),
        (
            "queue max / at end",
            lambda ln: (
                "-"
                if not queues_writes(ln["strategy"])
                else f"{ln['queue']['max_depth']:,} / {ln['queue']['pending_at_end']:,}"
            ),
        ),
        ("errors / rejected", lambda ln: f"{ln['errors']:,} / {ln['rejected']:,}"),
        # errors that may have applied (DESIGN.md §4); a summary from before issue 24 has none
        ("indeterminate writes", lambda ln: f"{ln.get('indeterminate', 0):,}"),
        ("stale reads", lambda ln: f"{ln['anomalies']['stale_reads']:,}"),
        ("lost writes", lambda ln: f"{ln['anomalies']['lost_writes']:,}"),
        ("dirty / stale cache", lambda ln: f"{ln['anomalies']['dirty_cache']:,} / {ln['anomalies']['stale_cache']:,}"),
        (
            "lab incarnations",
            lambda ln: str(ln["incarnations"]) + (f" ({ln['nodes']} nodes)" if ln.get("nodes", 1) > 1 else ""),
        ),
        (
            "journal / synchronous",
            lambda ln: (
                "postgresql"
                if ln["durability"].get("store") == "postgresql"
                else f"{ln['durability']['journal_mode']} / {ln['durability']['synchronous']}"
            ),
        ),
        ("queue / cache", lambda ln: f"{ln['durability']['queue'] or '-'} / {ln['durability']['cache']}"),
        ("failures", lambda ln: str(len(ln["failures"])) + ("" if ln["audited"] else " (not audited)")),
    ]
    head = [""] + [lane_name(ln) for ln in lanes]
    body = [[name] + [fn(ln) for ln in lanes] for name, fn in rows]
    widths = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]
    lines = []
    for i, row in enumerate([head] + body):
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    for ln in lanes:
        if ln["injected"]:
            lines.append(f"{lane_name(ln)}: {ln['injected']}")
    notes: dict[str, list[str]] = {}
    for ln in lanes:
        for note in ln["durability"]["notes"]:
            notes.setdefault(note, []).append(lane_name(ln))
    if notes:
        lines.append("durability: only process kills (SIGKILL) were tried; an OS crash or power loss was not:")
        for note, who in notes.items():
            lines.append(f"  {note}" + ("" if len(who) == len(lanes) else f" ({', '.join(who)})"))
    for f in [f for ln in lanes for f in ln["failures"]] + summary.get("failures", []):
        lines.append(f"FAILED at {f['at']:.2f} s: {f['reason']}")
    return "\n".join(lines)


def format_faults(summary: dict) -> str:
    """What each fault did, per lane: ops, errors, p99 latency and anomalies in its window."""
    from .engine.outcomes import fault_table

    faults = summary.get("faults") or []
    if not faults:
        return ""
    head, *body = fault_table(faults, [lane_name(ln) for ln in summary["lanes"]])
    widths = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]
    lines = ["what each fault did (operations that began in its window):"]
    for i, row in enumerate([head] + body):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_anomalies(summary: dict, limit: int = 5) -> str:
    out = []
    for ln in summary["lanes"]:
        items = ln["anomaly_list"]
        total = sum(ln["anomalies"].values())
        if not total:
            continue
        out.append(f"{lane_name(ln)}: {total:,} anomalies, for example:")
        for a in items[:limit]:
            out.append(f"  {a['kind'].replace('_', ' ')}: {a['sentence']}")
    return "\n".join(out)


def say_tables(say, summary: dict) -> None:
    """The table per lane, what each fault did, the first anomalies (run, replay --table)."""
    ons = {lane_name(ln): ln["backends"] for ln in summary["lanes"] if ln.get("backends")}
    if set(ons.values()) - {"diskcache + SQLite"}:
        if len(set(ons.values())) == 1:
            say(f"every lane runs on {next(iter(ons.values()))}")
        else:
            for name, on in ons.items():
                say(f"{name} runs on {on}")
    say(format_table(summary))
    for part in (format_faults(summary), format_anomalies(summary)):
        if part:
            say()
            say(part)


def _bench_number(x: float) -> str:
    """4 significant digits, but whole numbers from 1,000 up (24,529 ops/s, not 2.453e+04)."""
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:,.4g}"


def format_bench(rows: list[dict]) -> str:
    head = ["figure", "value", "yardstick", "ratio", "target", "met", "reps"]
    body = []
    for r in rows:
        unit = f" {r['unit']}" if r.get("unit") else ""
        value = "-" if r.get("value") is None else f"{_bench_number(r['value'])}{unit}"
        yard = (
            ""
            if r.get("yardstick_value") is None
            else f"{_bench_number(r['yardstick_value'])}{unit} ({r['yardstick']})"
        )
        ratio = "" if r.get("ratio") is None else f"{r['ratio']:.2f}×"
        met = {True: "yes", False: "NO", None: ""}[r.get("met")]
        body.append([r["figure"], value, yard, ratio, r.get("target", ""), met, str(r.get("reps", ""))])
    widths = [max(len(row[i]) for row in [head] + body) for i in range(len(head))]
    lines = []
    for i, row in enumerate([head] + body):
        lines.append(
            "  ".join(
                c.ljust(w) if j in (0, 2, 4) else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths))
            ).rstrip()
        )
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
