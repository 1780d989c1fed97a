"""Issue 14: the lab on Redis + PostgreSQL with several app nodes, for real.

Real redis-server and PostgreSQL (the run's own, on unix sockets in the run directory),
real lab processes, real SIGKILLs. Without the servers these tests skip with a reason,
except under CI=true, where they must run (conftest.require)."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import cli, require, start_cli, wait_until
from recompute import recompute

from cachestudio.engine.config import Backends, ConfigError, LaneConfig, Workload
from cachestudio.engine.runner import Plan, run
from cachestudio.engine.servers import postgres_bindir, redis_server
from cachestudio.engine.storage import RunServers


@pytest.fixture
def root():
    """Mode 711 under /tmp: as root, PostgreSQL runs as postgres, who must get through."""
    require(redis_server)
    require(postgres_bindir)
    d = Path(tempfile.mkdtemp(prefix="cs-nodes-"))
    d.chmod(0o711)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _lanes(seed: int, nodes: int = 2, **backends) -> list[LaneConfig]:
    b = Backends(cache="redis", store="postgresql", nodes=nodes, **backends)
    base = LaneConfig(
        "cache-aside", workload=Workload(rate=2400, keys=150, read_ratio=0.7, concurrency=2), backends=b, seed=seed
    )
    wb = replace(base.write_behind, flush_interval_s=0.6)
    return [
        replace(base, name="cache-aside"),
        replace(base, strategy="write-through", name="write-through"),
        replace(base, strategy="write-behind", name="wb volatile", write_behind=wb),
        replace(base, strategy="write-behind", name="wb durable", write_behind=replace(wb, durable=True)),
    ]


def _by_lane(summary: dict) -> dict:
    return {lane["name"]: lane for lane in summary["lanes"]}


def _check_recompute(summary: dict, history: list[dict], run_dir: Path) -> None:
    """The auditor's verdicts equal a recomputation from the history and the run directory."""
    for lane in summary["lanes"]:
        slug = "-".join(lane["name"].split())
        want = recompute(history, run_dir / slug, lane["name"])
        for kind, ids in want.items():
            assert lane["anomalies"][kind] == len(ids), (lane["name"], kind, lane["anomalies"][kind], len(ids))


@pytest.mark.parametrize("seed", [3, 11])
def test_crash_matrix_on_two_nodes(root, seed):
    """One node killed, then every node during a DB outage: 0 acknowledged writes lost where
    the theory says 0 (cache-aside, write-through, a durable queue on Redis); with a volatile
    queue, only the unflushed writes of the nodes that died -- and at the one-node kill, of
    that node only."""
    rng = random.Random(seed)
    node_at = round(rng.uniform(0.8, 1.6), 2)
    victim = rng.randrange(2)
    all_at = round(node_at + rng.uniform(1.4, 2.0), 2)
    run_dir, hist = root / "run", root / "history.jsonl"
    # a real outage (LOCK TABLE items IN ACCESS EXCLUSIVE MODE) under the second kill: the
    # evidence is then read through the outage's own connection
    plan = Plan(
        lanes=_lanes(seed),
        duration_s=all_at + 1.6,
        node_crashes=[(node_at, victim)],
        crash_at=[all_at],
        outages=[(all_at - 0.8, 1.2)],
        restart_delay_s=0.4,
        run_dir=run_dir,
    )
    events = []
    summary = run(plan, history=hist, on_event=events.append)
    crash = next(e for e in events if e["kind"] == "crash")
    assert "through the outage's own connection" in crash["detail"]
    assert _by_lane(summary)["write-through"]["errors"] > 0  # the outage is real for its writes
    assert summary["status"] == "ok", summary["failures"] + [f for ln in summary["lanes"] for f in ln["failures"]]
    lanes = _by_lane(summary)
    for name in ("cache-aside", "write-through", "wb durable"):
        assert lanes[name]["anomalies"]["lost_writes"] == 0, name
    history = [json.loads(line) for line in hist.read_text().splitlines()]
    ops = [r for r in history if r.get("lane") == "wb volatile" and r["kind"] in ("read", "write")]
    assert {r["node"] for r in ops} == {0, 1}
    for lane in lanes.values():
        assert lane["incarnations"] == 2 + 1 + 2 and lane["nodes"] == 2  # two, the victim again, both again
    # which incarnations died, and of which node: the evidence copies name them
    node_of = {r["inc"]: r["node"] for r in ops}
    killed = sorted(int(p.stem.rsplit("-", 1)[1]) for p in (run_dir / "wb-volatile" / "evidence").glob("*.sqlite"))
    assert victim in killed and node_of[victim] == victim  # node k's first incarnation is k; the victim's died
    lost = recompute(history, run_dir / "wb-volatile", "wb volatile")["lost_writes"]
    assert lanes["wb volatile"]["anomalies"]["lost_writes"] == len(lost) > 0
    by_id = {r["id"]: r for r in ops}
    assert all(by_id[i]["inc"] in killed for i in lost)  # only writes of nodes that were killed
    first = [i for i in lost if by_id[i]["end"] <= node_at + 0.05]
    assert all(by_id[i]["node"] == victim for i in first)  # the other node's writes were not lost with it
    _check_recompute(summary, history, run_dir)
    # the run directory reads as for SQLite: the final rows and a copy at each kill
    assert (run_dir / "cache-aside" / "store.sqlite").exists()
    assert (run_dir / "cache-aside" / "cache-at-end.json").exists()
    assert not list((run_dir / "servers").rglob("*.sock")) and not list((run_dir / "servers").rglob(".s.PGSQL*"))


def test_the_stale_set_across_nodes_and_the_lease_that_closes_it(root):
    """Two nodes, cache-aside on a shared Redis: a node's late set puts back what another
    node's write replaced (stale reads); with leases (SET NX PX on Redis) the set is refused."""
    base = LaneConfig(
        "cache-aside",
        workload=Workload(rate=0, keys=4, read_ratio=0.6, distribution="uniform", concurrency=4),
        backends=Backends(cache="redis", store="postgresql", nodes=2),
        seed=7,
    )
    base = replace(base, latency=replace(base.latency, db_read_ms=6.0))
    lanes = [
        replace(base, name="no protection"),
        replace(base, name="lease", cache=replace(base.cache, stampede="lease")),
    ]
    run_dir, hist = root / "run", root / "history.jsonl"
    summary = run(Plan(lanes=lanes, duration_s=5, run_dir=run_dir), history=hist)
    lanes = _by_lane(summary)
    assert lanes["no protection"]["anomalies"]["stale_reads"] > 0
    assert lanes["lease"]["anomalies"]["stale_reads"] == 0
    assert lanes["lease"]["anomalies"]["stale_cache"] == 0
    history = [json.loads(line) for line in hist.read_text().splitlines()]
    # the race is across nodes: some stale read on one node is overtaken by a write of the other
    by_id = {r["id"]: r for r in history if "node" in r}
    crossed = [
        a
        for a in lanes["no protection"]["anomaly_list"]
        if a["kind"] == "stale_read"
        and len(a["records"]) == 2
        and by_id[a["records"][0]]["node"] != by_id[a["records"][1]]["node"]
    ]
    assert crossed
    _check_recompute(summary, history, run_dir)


def test_the_cache_server_restarts_empty_without_aof_and_full_with_it(root):
    """SIGKILL of redis-server under write-through: without persistence it comes back
    empty, with AOF (everysec) with what it had synced; the event says which."""
    base = LaneConfig("write-through", workload=Workload(rate=1500, keys=50, read_ratio=0.8), seed=5)
    lanes = [
        replace(base, name="no aof", backends=Backends(cache="redis")),
        replace(base, name="aof", backends=Backends(cache="redis", aof=True)),
    ]
    events = []
    summary = run(
        Plan(lanes=lanes, duration_s=4.5, server_crashes=[2.5], restart_delay_s=0.5, run_dir=root / "run"),
        on_event=events.append,
    )
    assert summary["status"] == "ok"
    back = {e["lane"]: e["detail"] for e in events if e["kind"] == "cache-server-back"}
    assert set(back) == {"no aof", "aof"} and "came back empty" in back["no aof"] and "AOF" in back["aof"]
    from cachestudio.engine.lessons import EVENT_METRICS

    held = [EVENT_METRICS["cached_after_restart"](name, events) for name in ("no aof", "aof")]
    # counted before any client could reach the server again: no persistence is empty, the AOF
    # has what it had synced (50 keys were written for 2.5 s)
    assert held[0] == 0 < held[1]
    for lane in summary["lanes"]:
        assert lane["anomalies"]["lost_writes"] == 0  # the store has every write: the cache is only a cache


def test_a_missing_server_program_is_one_line_naming_the_package(tmp_path):
    proc = cli(
        "run",
        "--cache-backend",
        "redis",
        "--duration",
        "1",
        env={"PATH": str(tmp_path)},  # no redis-server
        timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "redis-server" in lines[0] and "apt-get install redis-server" in lines[0]


@pytest.mark.parametrize(
    "option,url",
    [("--redis-url", "unix:///nonexistent/redis.sock"), ("--postgres-url", "host=/nonexistent dbname=x user=x")],
)
def test_an_unreachable_server_url_is_one_line(option, url):
    backend = ["--cache-backend", "redis"] if option == "--redis-url" else ["--store-backend", "postgresql"]
    proc = cli("run", *backend, option, url, "--duration", "1", timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and option in lines[0] and "cannot reach" in lines[0]


def test_bad_node_counts_are_refused():
    with pytest.raises(ConfigError, match="nodes"):
        from cachestudio.engine.config import validate

        validate(LaneConfig("cache-aside", backends=Backends(nodes=0)))
    with pytest.raises(ConfigError, match="crash-node"):
        from cachestudio.engine.runner import check_plan

        check_plan(Plan(lanes=[LaneConfig("cache-aside")], duration_s=2, node_crashes=[(1.0, 1)]))


def _our_servers(run_dir: Path) -> list[int]:
    """Pids of redis-server / postgres processes whose command line names ``run_dir``."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(run_dir) in cmd and ("redis-server" in cmd or "postgres" in cmd):
            out.append(int(pid))
    return out


def test_sigint_of_a_run_leaves_no_server_and_no_socket_behind(root):
    run_dir = root / "run"
    proc = start_cli(
        "run",
        "--cache-backend",
        "redis",
        "--store-backend",
        "postgresql",
        "--nodes",
        "2",
        "--strategy",
        "write-behind",
        "--duration",
        "60",
        "--rate",
        "500",
        "--run-dir",
        str(run_dir),
    )
    try:
        # running for real: both nodes have written operations
        wait_until(
            lambda: (
                len(list((run_dir / "write-behind" / "history").glob("inc-*.jsonl"))) == 2
                and all(p.stat().st_size for p in (run_dir / "write-behind" / "history").glob("*.jsonl"))
            ),
            timeout=60,
        )
        assert len(_our_servers(run_dir)) >= 2  # redis-server and postgres are up
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted by SIGINT" in err
    assert _our_servers(run_dir) == []
    assert not list(run_dir.rglob("*.sock")) and not list(run_dir.rglob(".s.PGSQL*"))
    assert (run_dir / "write-behind" / "store.sqlite").exists()  # the rows were kept before the server stopped


def test_the_servers_describe_what_a_lane_talks_to(root):
    lanes = _lanes(1, nodes=3)
    servers = RunServers(root, lanes)
    servers.check()
    text = servers.describe(lanes[0])
    assert text.startswith("Redis ") and "unix socket" in text and "PostgreSQL " in text and "3 nodes" in text


def test_given_servers_are_used_never_stopped_and_left_clean(root, redis_srv, pg_srv):
    """--redis-url / --postgres-url: the run uses those servers, leaves them running, and
    takes its keys and schemas away at the end (their rows are in the run directory)."""
    import psycopg
    import redis

    run_dir = root / "run"
    lanes = _lanes(4, nodes=2)[:3]
    plan = Plan(
        lanes=lanes,
        duration_s=2.5,
        crash_at=[1.0],
        restart_delay_s=0.3,
        run_dir=run_dir,
        redis_url=redis_srv.url,
        postgres_url=pg_srv.conninfo,
    )
    summary = run(plan)
    assert summary["status"] == "ok"
    assert redis_srv.pid is not None and pg_srv.pid is not None  # still running
    assert not (run_dir / "servers").exists()  # none of its own
    for lane in summary["lanes"]:
        assert str(redis_srv.socket) in lane["backends"] and "PostgreSQL" in lane["backends"]
        assert (run_dir / "-".join(lane["name"].split()) / "store.sqlite").exists()
    client = redis.Redis.from_url(redis_srv.url)
    try:
        assert not list(client.scan_iter(match="cs:*"))
    finally:
        client.connection_pool.disconnect()
    with psycopg.connect(pg_srv.conninfo) as conn:
        left = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'cs\\_%'").fetchall()
    assert left == []
