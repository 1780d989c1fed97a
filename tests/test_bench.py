"""``cachestudio bench``: it runs (quick, small sizes) and its JSON has every figure, each
with its yardstick and ratio. No test asserts a timing: the figures are for the machine
that measures them (docs/benchmarks.md)."""

from __future__ import annotations

import json

from helpers import assert_bad_input, cli, require
from PySide6.QtGui import QImage

from cachestudio.engine.servers import postgres_bindir, redis_server

STRATEGIES = ("cache-aside", "write-through", "write-behind")
QUICK_MODES = ("WAL + NORMAL", "SQLite defaults (DELETE + FULL)")
#: (figure, yardstick) of a quick run, in order
ENGINE_FIGURES = (
    [
        (f"{s} ops/s, {mode}, uniform", yard)
        for mode in QUICK_MODES
        for s in STRATEGIES
        for yard in ("seed's loop, literal", "seed's loop, tuned")
    ]
    + [
        ("cache-aside hit path hits/s", "bare diskcache get loop"),
        ("write-behind drain rows/s (batch 100)", "bare batched executemany"),
    ]
    + [
        (f"store rows/s with the commit log ({what}, {mode})", "the same store without the log")
        for mode in QUICK_MODES
        for what in ("one per transaction", "batches of 100")
    ]
    + [
        (f"{s} ops/s, {n} client thread{'s' if n > 1 else ''}", f"tuned loop, {n} thread{'s' if n > 1 else ''}")
        for s in STRATEGIES
        for n in (1, 2)
    ]
    + [
        (f"{what}, {n:,} keys", yard)
        for n in (1_000, 10_000_000)
        for what, yard in (("lab peak memory", "1,000 keys"), ("lab ready", ""))
    ]
)
GUI_FIGURES = [
    f"{figure}, {mode}"
    for mode in ("normal window", "presentation mode")
    for figure in (
        "frame interval p50 (flow view paints)",
        "frame interval p95 (flow view paints)",
        "event loop probe p95 (16 ms timer)",
        "lab ops/s with the window attached",
        "CPU time of the window's process",
        "CPU time of the observer's process",
    )
] + ["time to first painted window"]
#: (figure, yardstick) of ``bench --remote``, in order
REMOTE_FIGURES = [(f"{s} ops/s, Redis + PostgreSQL", "plain redis-py + psycopg loop, tuned") for s in STRATEGIES] + [
    (f"{s} ops/s, Redis + PostgreSQL, {n} node{'s' if n > 1 else ''}", "1 node") for s in STRATEGIES for n in (1, 2, 4)
]


def check_ratio_rows(rows: list[dict]) -> None:
    for r in rows:
        assert r["reps"] >= 1
        if r.get("yardstick_value") is not None:
            assert r["value"] > 0 and r["yardstick_value"] > 0
            assert abs(r["ratio"] - r["value"] / r["yardstick_value"]) < 0.01 + 0.01 * r["ratio"]
            assert len(r["samples"]) == len(r["yardstick_samples"]) == r["reps"]
        assert r.get("met") in ((True, False) if r.get("target") else (None,))


def test_quick_bench_writes_every_engine_figure_and_a_chart(tmp_path):
    out, chart = tmp_path / "bench.json", tmp_path / "bench.png"
    proc = cli("bench", "--quick", "--duration", "0.5", "--reps", "2", "--json", str(out), "--chart", str(chart))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert [(r["figure"], r["yardstick"]) for r in data["figures"]] == ENGINE_FIGURES
    check_ratio_rows(data["figures"])
    assert data["reps"] == 2 and data["quick"] is True
    assert data["machine"]["cores"] >= 1 and data["machine"]["packages"]["diskcache"]
    for figure, _ in ENGINE_FIGURES:
        assert figure in proc.stdout  # the table
    keys = {r["figure"]: r for r in data["figures"] if "keys" in r["figure"]}
    assert (
        keys["lab peak memory, 10,000,000 keys"]["unit"] == "MiB" and keys["lab ready, 10,000,000 keys"]["unit"] == "s"
    )
    image = QImage(str(chart))
    assert not image.isNull() and image.width() == 1600
    assert len({image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)}) > 3


def test_quick_gui_bench_has_the_window_figures(tmp_path):
    out = tmp_path / "bench.json"
    proc = cli("bench", "--gui", "--quick", "--duration", "0.5", "--reps", "1", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(out.read_text())["figures"]
    assert [r["figure"] for r in rows] == [f for f, _ in ENGINE_FIGURES] + GUI_FIGURES  # no 10-minute run with --quick
    check_ratio_rows(rows)
    frames = {r["figure"]: r for r in rows}
    for mode in ("normal window", "presentation mode"):
        assert frames[f"frame interval p95 (flow view paints), {mode}"]["value"] > 0
        assert 0 < frames[f"CPU time of the window's process, {mode}"]["value"] < 200  # % of one core


def test_bench_bad_input_is_one_line(tmp_path):
    assert_bad_input(cli("bench", "--duration", "0"), "--duration")
    assert_bad_input(cli("bench", "--reps", "0"), "--reps")
    assert_bad_input(cli("bench", "--chart", str(tmp_path / "chart.jpg")), "--chart", "PNG")
    assert_bad_input(cli("bench", "--json", str(tmp_path / "nowhere" / "x.json")), "--json")


def test_quick_remote_bench_has_the_redis_postgresql_figures(tmp_path):
    """``bench --remote``: each strategy on Redis + PostgreSQL against the plain redis-py +
    psycopg loop, and at 1, 2 and 4 nodes; positive figures (no timing asserted)."""
    require(redis_server)
    require(postgres_bindir)
    out, chart = tmp_path / "bench.json", tmp_path / "bench.png"
    proc = cli(
        "bench", "--remote", "--quick", "--duration", "0.5", "--reps", "1", "--json", str(out), "--chart", str(chart)
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    rows = data["figures"]
    assert [(r["figure"], r["yardstick"]) for r in rows] == REMOTE_FIGURES  # these only
    check_ratio_rows(rows)
    assert all(r["value"] > 0 and r["yardstick_value"] > 0 for r in rows)
    assert [r["target"] for r in rows] == [">= 1.0"] * 3 + [""] * 9
    assert data["servers"]["redis"] and data["servers"]["postgresql"]
    for figure, _ in REMOTE_FIGURES:
        assert figure in proc.stdout
    assert "e+0" not in proc.stdout  # whole numbers, not 1.2e+04
    assert not QImage(str(chart)).isNull()


def test_remote_bench_without_the_servers_is_one_line():
    proc = cli("bench", "--remote", "--quick", env={"PATH": "/nonexistent"}, timeout=60)  # no redis-server on PATH
    assert_bad_input(proc, "redis-server not found")


def test_remote_bench_takes_no_other_figure_sets():
    assert_bad_input(cli("bench", "--remote", "--gui"), "--remote", "--gui")
    assert_bad_input(cli("bench", "--remote", "--time-machine"), "--remote")
