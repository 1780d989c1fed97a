"""The command line: the run contract, and bad input as one line with exit status 2."""

from __future__ import annotations

import json
import os

import pytest
from helpers import assert_bad_input, cli


@pytest.mark.parametrize(
    "args, words",
    [
        (["--strategy", "write-around"], ["--strategy", "write-around"]),
        (["--duration", "-3"], ["duration"]),
        (["--duration", "abc"], ["--duration"]),
        (["--duration", "1e9"], ["duration"]),
        (["--rate", "-5"], ["rate"]),
        (["--read-ratio", "1.5"], ["read ratio"]),
        (["--keys", "0"], ["keys"]),
        (["--concurrency", "1000"], ["concurrency"]),
        (["--crash-at", "50", "--duration", "10"], ["--crash-at", "50"]),
        (["--outage", "3"], ["--outage", "SEC:DURATION"]),
        (["--outage", "3:-1"], ["--outage duration"]),
        (["--outage", "x:1"], ["--outage start"]),
        (["--latency", "disk=5"], ["--latency"]),
        (["--latency", "db-read=-5"], ["db read"]),
        (["--queue", "sometimes"], ["--queue"]),
        (["--batch-size", "0"], ["batch size"]),
        (["--flush-interval", "nan"], ["flush interval"]),
        (["--json", "/nonexistent-dir/out.json"], ["--json", "does not exist"]),
        (["--slow-db", "1"], ["--slow-db", "SEC:DURATION[:MS]"]),
        (["--slow-db", "1:2:-5"], ["--slow-db latency"]),
        (["--slow-cache", "20:1", "--duration", "10"], ["--slow-cache", "outside the run"]),
        (["--cold-at", "-1"], ["--cold-at"]),
        (["--stampede", "1:1"], ["--stampede readers"]),
        (["--stampede", "1:2.5"], ["--stampede readers", "whole number"]),
        (["--stampede-protection", "maybe"], ["--stampede-protection"]),
        (["--lease-ttl", "0"], ["lease ttl"]),
    ],
)
def test_bad_run_options_exit_2_with_one_line(args, words):
    assert_bad_input(cli("run", *args), *words)


def test_unknown_command_and_option_are_one_line():
    assert_bad_input(cli("frobnicate"), "frobnicate")
    assert_bad_input(cli("run", "--no-such-flag"), "--no-such-flag")


def test_run_dir_that_cannot_be_written(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("I am a file")
    assert_bad_input(cli("run", "--run-dir", str(blocker / "sub")), "cannot be written")
    assert_bad_input(cli("run", "--run-dir", str(blocker)), "not a directory")
    assert blocker.read_text() == "I am a file"


def test_corrupt_sqlite_file_is_refused_and_left_intact(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "write-through").mkdir(parents=True)
    bad = run_dir / "write-through" / "store.sqlite"
    bad.write_bytes(b"this is not a database" * 50)
    before = bad.read_bytes()
    assert_bad_input(
        cli("run", "--strategy", "write-through", "--run-dir", str(run_dir)), "store.sqlite", "not a SQLite database"
    )
    assert bad.read_bytes() == before


def test_corrupt_cache_directory_is_refused_and_left_intact(tmp_path):
    run_dir = tmp_path / "run"
    cache_dir = run_dir / "cache-aside" / "cache"
    cache_dir.mkdir(parents=True)
    bad = cache_dir / "cache.db"
    bad.write_bytes(os.urandom(4096))
    before = bad.read_bytes()
    assert_bad_input(cli("run", "--strategy", "cache-aside", "--run-dir", str(run_dir)), "cache.db")
    assert bad.read_bytes() == before


def test_run_dir_holding_an_earlier_run_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "notes.txt").write_text("keep me")
    assert_bad_input(cli("run", "--run-dir", str(run_dir)), "not empty")
    assert (run_dir / "notes.txt").read_text() == "keep me"


LANE_FIELDS = {
    "strategy",
    "ops",
    "ops_per_s",
    "reads",
    "writes",
    "hit_ratio",
    "latency_ms",
    "db",
    "queue",
    "errors",
    "anomalies",
}


def test_run_all_prints_three_lanes_and_writes_the_summary_and_history(tmp_path):
    out, hist, run_dir = tmp_path / "out.json", tmp_path / "h.jsonl", tmp_path / "run"
    proc = cli(
        "run",
        "--strategy",
        "all",
        "--duration",
        "2",
        "--seed",
        "7",
        "--rate",
        "1500",
        "--json",
        str(out),
        "--history",
        str(hist),
        "--run-dir",
        str(run_dir),
    )
    assert proc.returncode == 0, proc.stderr
    header = next(
        (line for line in proc.stdout.splitlines() if line.split() == ["cache-aside", "write-through", "write-behind"]),
        None,
    )
    assert header is not None, proc.stdout
    summary = json.loads(out.read_text())
    assert summary["seed"] == 7 and summary["duration_s"] == 2
    assert [lane["strategy"] for lane in summary["lanes"]] == ["cache-aside", "write-through", "write-behind"]
    for lane in summary["lanes"]:
        assert LANE_FIELDS <= set(lane)
        assert lane["ops"] == lane["reads"] + lane["writes"] > 0
        for kind in ("read", "write"):
            assert set(lane["latency_ms"][kind]) == {"p50", "p95", "p99"}
            ms = lane["latency_ms"][kind]
            assert 0 < ms["p50"] <= ms["p95"] <= ms["p99"]
        assert set(lane["db"]) >= {"reads", "writes"}
        assert set(lane["queue"]) >= {"max_depth", "pending_at_end"}
        assert set(lane["anomalies"]) == {"stale_reads", "lost_writes", "dirty_cache", "stale_cache"}
    records = [json.loads(line) for line in hist.read_text().splitlines()]
    ops = [r for r in records if r["kind"] in ("read", "write")]
    assert len(ops) == sum(lane["ops"] for lane in summary["lanes"])
    for r in ops[:100]:
        assert {"id", "lane", "kind", "key", "version", "start", "end", "outcome", "acked"} <= set(r)
        assert r["start"] <= r["end"]
    # The same seeded stream in every lane: the first operations match key for key.
    first = {
        lane: [(r["kind"], r["key"]) for r in ops if r["lane"] == lane][:200]
        for lane in ("cache-aside", "write-through", "write-behind")
    }
    assert first["cache-aside"] == first["write-through"] == first["write-behind"]
    assert (run_dir / "write-behind" / "store.sqlite").exists()
    assert (run_dir / "cache-aside" / "cache" / "cache.db").exists()


def test_injected_latency_is_labelled(tmp_path):
    out = tmp_path / "o.json"
    proc = cli(
        "run",
        "--strategy",
        "cache-aside",
        "--duration",
        "1",
        "--rate",
        "200",
        "--latency",
        "db-read=2",
        "--json",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    assert "injected latency: db read +2 ms" in proc.stdout
    lane = json.loads(out.read_text())["lanes"][0]
    assert lane["injected"] == "injected latency: db read +2 ms"


def test_every_fault_from_the_command_line(tmp_path):
    out = tmp_path / "out.json"
    proc = cli(
        "run",
        "--strategy",
        "cache-aside",
        "--duration",
        "3",
        "--rate",
        "500",
        "--seed",
        "4",
        "--stampede-protection",
        "single-flight",
        "--slow-db",
        "0.3:0.4:30",
        "--slow-cache",
        "0.9:0.4",
        "--cold-at",
        "1.5",
        "--stampede",
        "1.8:20",
        "--burst",
        "2.1:read:300",
        "--json",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    kinds = [e["kind"] for e in json.loads(out.read_text())["events"]]
    for kind in (
        "slow-db-start",
        "slow-db-end",
        "slow-cache-start",
        "slow-cache-end",
        "cold-cache",
        "stampede",
        "stampede-done",
        "burst",
    ):
        assert kind in kinds
    assert "[injected]" in proc.stdout  # slow DB and slow cache say they are injected
