"""Issue 24, items 2, 3 and 7: the run's servers watched, durability stated, given servers
left as found -- with real servers, real processes and real signals.

* The run's own redis-server (or PostgreSQL) killed by its pid mid-run, found the way a
  user finds it (``pgrep``): the run names the death and its cause as a failure of every
  lane on it (exit status 3), starts no new server (the server's own log, a witness the
  run does not write, says it was started once), and does not audit a replacement.
* A durable write-behind queue on a given Redis without persistence is refused in one
  line; on the run's own server it gets an append-only file fsynced before each reply
  (read back from the server itself with CONFIG GET).
* A given Redis and PostgreSQL are left as found: every setting (``CONFIG GET *``, a
  fresh session's ``pg_settings``) and every key and row of their owner, including keys
  that look like ours (``cs:…``) but are not the run's.

Without the servers installed these tests skip, saying so (except under CI=true)."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest
import redis
from helpers import assert_bad_input, cli, drive, require, start_cli, wait_until

from cachestudio.engine.config import Backends, LaneConfig, Workload, WriteBehindKnobs
from cachestudio.engine.runner import Plan, Run
from cachestudio.engine.servers import RedisServer, postgres_bindir, redis_server


@pytest.fixture
def root():
    """Mode 711 under /tmp (short: unix socket paths have a limit; as root, PostgreSQL runs
    as postgres, who must get through)."""
    require(redis_server)
    d = Path(tempfile.mkdtemp(prefix="cs-watch-"))
    d.chmod(0o711)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _pgrep(pattern: str) -> list[int]:
    """What ``pgrep -f PATTERN`` finds (the way a user finds the server to kill)."""
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True, check=False).stdout
    return [int(pid) for pid in out.split()]


def _running(run_dir: Path, lane: str) -> bool:
    """The run is under way: the lane has written operations to its history."""
    files = list((run_dir / lane / "history").glob("inc-*.jsonl"))
    return bool(files) and all(f.stat().st_size > 20000 for f in files)


def _finish(proc: subprocess.Popen) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, err


def _events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def test_the_runs_own_redis_killed_by_its_pid_is_a_named_failure_never_replaced(root):
    """The issue's repro: `kill -9 $(pgrep -f …/redis.sock)` mid-run. Before: exit 0,
    "status: ok", a silent new empty server audited. Now: exit 3, the death and its cause
    named for every lane on that server, no second server, no audit of one."""
    run_dir, out = root / "run", root / "out.json"
    proc = start_cli(
        "run",
        "--cache-backend",
        "redis",
        "--strategy",
        "all",
        "--duration",
        "5",
        "--rate",
        "400",
        "--run-dir",
        str(run_dir),
        "--json",
        str(out),
    )
    try:
        wait_until(lambda: _running(run_dir, "write-through"), timeout=120)
        socket = run_dir / "servers" / "redis" / "redis.sock"
        pids = _pgrep(f"redis-server.*{socket}")
        assert len(pids) == 1, pids
        os.kill(pids[0], signal.SIGKILL)
    finally:
        status, err = _finish(proc)
    assert status == 3, err
    summary = json.loads(out.read_text())
    assert summary["status"] == "lab-failed"
    for lane in summary["lanes"]:
        died = [f for f in lane["failures"] if f["kind"] == "server-died"]
        assert len(died) == 1, (lane["name"], lane["failures"])
        assert f"redis-server pid {pids[0]}" in died[0]["reason"]
        assert "killed by signal 9 (SIGKILL)" in died[0]["reason"]
        # not audited against a replacement: said, and nothing read from one
        assert lane["audited"] is False
        assert any(f["kind"] == "audit" and "not audited" in f["reason"] for f in lane["failures"])
        assert not (run_dir / lane["name"] / "cache-at-end.json").exists()
    kinds = [e["kind"] for e in _events(run_dir)]
    assert "cache-server-back" not in kinds and "crash-cache-server" not in kinds
    assert "the cache server (redis-server pid" in err and "killed by signal 9" in err
    # the witness: the server's own log says it was started once, never again
    log = (run_dir / "servers" / "redis" / "redis.log").read_text()
    assert log.count("Server initialized") == 1, log
    assert _pgrep(str(socket)) == []


def test_the_runs_own_postgresql_killed_by_its_pid_is_a_named_failure(root):
    """The same for the run's own PostgreSQL: its postmaster's pid, as ``postmaster.pid``
    gives it, killed mid-run."""
    require(postgres_bindir)
    run_dir, out = root / "run", root / "out.json"
    proc = start_cli(
        "run",
        "--store-backend",
        "postgresql",
        "--strategy",
        "cache-aside",
        "--duration",
        "5",
        "--rate",
        "300",
        "--run-dir",
        str(run_dir),
        "--json",
        str(out),
    )
    try:
        wait_until(lambda: _running(run_dir, "cache-aside"), timeout=120)
        pid = int((run_dir / "servers" / "postgres" / "pgdata" / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
    finally:
        status, err = _finish(proc)
    assert status == 3, err
    lane = json.loads(out.read_text())["lanes"][0]
    died = [f for f in lane["failures"] if f["kind"] == "server-died"]
    assert len(died) == 1 and f"postgres pid {pid}" in died[0]["reason"], lane["failures"]
    assert "killed by signal 9" in died[0]["reason"]
    assert lane["audited"] is False
    log = (run_dir / "servers" / "postgres" / "postgres.log").read_text()
    assert log.count("database system is ready to accept connections") == 1, log
    wait_until(lambda: _pgrep(str(run_dir)) == [], timeout=30)


def test_a_given_redis_that_dies_is_named_by_the_watch(root):
    """A given server is someone else's process: the watch pings it, and a server that
    stops answering is a failure of the lanes on it, with what the ping got."""
    given = RedisServer(root / "given")
    given.start()
    try:
        run_dir, out = root / "run", root / "out.json"
        proc = start_cli(
            *("run", "--cache-backend", "redis", "--redis-url", given.url, "--strategy", "write-through"),
            *("--duration", "6", "--rate", "300", "--run-dir", str(run_dir), "--json", str(out)),
        )
        try:
            wait_until(lambda: _running(run_dir, "write-through"), timeout=120)
            given.kill()  # as its owner's crash would: SIGKILL
        finally:
            status, err = _finish(proc)
    finally:
        given.stop()
    assert status == 3, err
    lane = json.loads(out.read_text())["lanes"][0]
    died = [f for f in lane["failures"] if f["kind"] == "server-died"]
    assert len(died) == 1 and "the given Redis has not answered since" in died[0]["reason"], lane["failures"]
    assert lane["audited"] is False


def test_a_durable_queue_on_a_given_redis_without_persistence_is_refused(root):
    given = RedisServer(root / "given")  # no AOF, no snapshots
    given.start()
    try:
        run_dir = root / "run"
        proc = cli(
            *("run", "--cache-backend", "redis", "--redis-url", given.url, "--strategy", "write-behind"),
            *("--queue", "durable", "--duration", "1", "--run-dir", str(run_dir)),
            timeout=120,
        )
        assert_bad_input(proc, "write-behind", "durable", "append-only file", "appendonly no")
        assert not run_dir.exists()  # nothing run, nothing written
        with redis.Redis.from_url(given.url) as client:
            assert client.dbsize() == 0
    finally:
        given.stop()


def test_a_durable_queue_on_a_given_redis_with_an_aof_runs_and_says_so(root):
    given = RedisServer(root / "given", appendonly=True)
    given.start()
    try:
        out = root / "out.json"
        proc = cli(
            *("run", "--cache-backend", "redis", "--redis-url", given.url, "--strategy", "write-behind"),
            *("--queue", "durable", "--duration", "1", "--rate", "200", "--json", str(out)),
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        backends = json.loads(out.read_text())["lanes"][0]["backends"]
        assert "AOF everysec" in backends and "the cache size limit is not applied" in backends, backends
    finally:
        given.stop()


def test_the_runs_own_redis_keeps_a_durable_queue_in_an_aof_fsynced_always(root):
    """A durable-queue lane's own server, read back from the server itself (CONFIG GET),
    and what the backends say; a volatile lane beside it runs on a server without one."""
    lanes = [
        LaneConfig(
            "write-behind",
            name=name,
            workload=Workload(rate=200),
            write_behind=WriteBehindKnobs(durable=durable),
            backends=Backends(cache="redis"),
        )
        for name, durable in (("durable", True), ("volatile", False))
    ]
    run = Run(Plan(lanes=lanes, duration_s=1.0, run_dir=root / "run"))
    try:
        run.start()
        drive(run, 0.5)
        ends = {lane.cfg.label: lane.storage.ep.redis_url for lane in run.lanes}
        assert ends["durable"] != ends["volatile"]
        for name, want in (("durable", ("yes", "always")), ("volatile", ("no", None))):
            with redis.Redis.from_url(ends[name], decode_responses=True) as client:
                assert client.config_get("appendonly")["appendonly"] == want[0]
                if want[1]:
                    assert client.config_get("appendfsync")["appendfsync"] == want[1]
        said = {lane.cfg.label: run.servers.describe(lane.cfg) for lane in run.lanes}
        assert "AOF always" in said["durable"] and "no persistence" in said["volatile"], said
        summary = run.finish()
        assert summary["status"] == "ok", summary["failures"]
    finally:
        run.cleanup()


def _config(client: redis.Redis) -> dict:
    return client.config_get("*")


def _dump(client: redis.Redis) -> dict:
    return {k: (client.type(k), client.dump(k)) for k in client.scan_iter(count=1000)}


def _pg_state(conninfo: str) -> tuple:
    """What a fresh session sees: every setting, the schemas and their relations, the
    owner's rows. A session's temporary schemas (``pg_temp_N``) are PostgreSQL's own: it
    keeps them, empty, for the next session that needs one."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        settings = conn.execute("SELECT name, setting FROM pg_settings ORDER BY name").fetchall()
        schemas = conn.execute(
            "SELECT n.nspname, c.relname FROM pg_namespace n LEFT JOIN pg_class c ON c.relnamespace = n.oid "
            "WHERE n.nspname NOT LIKE 'pg\\_%temp\\_%' ORDER BY 1, 2"
        ).fetchall()
        rows = conn.execute("SELECT k, v FROM owner_data ORDER BY k").fetchall()
        role = conn.execute("SELECT setdatabase, setrole, setconfig FROM pg_db_role_setting").fetchall()
    return settings, schemas, rows, role


@pytest.mark.parametrize("seed", [1, 2])
def test_given_servers_are_left_as_found(root, seed):
    """A given redis-server with its owner's keys and settings (no limit, noeviction, keys
    that look like ours) and a given PostgreSQL with the owner's table: after a run with
    every strategy and the size and eviction knobs set, every setting and every one of
    the owner's keys and rows is as before."""
    require(postgres_bindir)
    from cachestudio.engine.servers import PostgresServer

    rng = random.Random(seed)
    given = RedisServer(root / "given")
    pg = PostgresServer(root / "pg")
    given.start()
    pg.start()
    try:
        with redis.Redis.from_url(given.url) as client:
            client.config_set("maxmemory", 0)
            client.config_set("maxmemory-policy", "noeviction")
            for i in range(rng.randint(50, 200)):
                name = rng.choice(["owner:", "cs:", "cs:other:", ""]) + f"k{i}"
                client.set(name, rng.randbytes(rng.randint(1, 64)))
            client.rpush("owner:list", *[str(rng.random()) for _ in range(10)])
            before, keys_before = _config(client), _dump(client)
        with psycopg.connect(pg.conninfo, autocommit=True) as conn:
            conn.execute("CREATE TABLE owner_data (k int PRIMARY KEY, v text)")
            rows = [(i, str(rng.random())) for i in range(20)]
            conn.cursor().executemany("INSERT INTO owner_data VALUES (%s, %s)", rows)
        pg_before = _pg_state(pg.conninfo)
        proc = cli(
            *("run", "--cache-backend", "redis", "--store-backend", "postgresql", "--strategy", "all"),
            *("--redis-url", given.url, "--postgres-url", pg.conninfo, "--duration", "2", "--rate", "300"),
            *("--cache-size-mb", "5", "--eviction", "least-frequently-used", "--crash-at", "1", "--seed", str(seed)),
            *("--json", str(root / "out.json")),
            timeout=180,
        )
        assert proc.returncode == 0, proc.stderr
        for lane in json.loads((root / "out.json").read_text())["lanes"]:  # what was in force, stated
            assert "no AOF · maxmemory 0 (no limit), noeviction" in lane["backends"], lane["backends"]
            assert "the cache size limit is not applied on a given server" in lane["backends"]
        with redis.Redis.from_url(given.url) as client:
            assert _config(client) == before
            assert _dump(client) == keys_before
        assert _pg_state(pg.conninfo) == pg_before
    finally:
        given.stop()
        pg.stop()


@pytest.mark.parametrize("seed", [4, 9])
def test_a_durable_queue_survives_the_kill_of_the_runs_own_redis(root, seed):
    """Item 2 of the issue: a durable stream queue on the run's own redis-server, the
    server SIGKILLed while the queue holds acknowledged writes (flushed every 5 s, killed at
    1.5 s). Its server keeps an AOF fsynced before each reply, so every acknowledged write
    reaches the store: checked against the SQLite store file itself, key by key."""
    import sqlite3

    lane = LaneConfig(
        "write-behind",
        workload=Workload(rate=400, keys=40, read_ratio=0.3),
        write_behind=WriteBehindKnobs(durable=True, flush_interval_s=5.0, batch_size=100000),
        backends=Backends(cache="redis"),
        seed=seed,
    )
    run_dir, history, events = root / "run", root / "history.jsonl", []
    from cachestudio.engine.runner import run

    summary = run(
        Plan(lanes=[lane], duration_s=3.0, server_crashes=[1.5], restart_delay_s=0.5, run_dir=run_dir),
        on_event=events.append,
        history=history,
    )
    assert summary["status"] == "ok", summary["failures"]
    crash = [e["detail"] for e in events if e["kind"] == "crash-cache-server"]
    assert len(crash) == 1 and "AOF always" in crash[0]
    records = [json.loads(line) for line in history.read_text().splitlines()]
    acked: dict[str, int] = {}
    for r in records:
        if r["kind"] == "write" and r["acked"]:
            acked[r["key"]] = max(acked.get(r["key"], 0), r["version"])
    killed_at = next(e["start"] for e in events if e["kind"] == "crash-cache-server")
    assert any(r["kind"] == "write" and r["acked"] and r["end"] < killed_at for r in records)
    with sqlite3.connect(run_dir / "write-behind" / "store.sqlite") as db:
        stored = dict(db.execute("SELECT key, version FROM items").fetchall())
    missing = {k: v for k, v in acked.items() if stored.get(k, 0) < v}
    assert missing == {}, missing
    assert summary["lanes"][0]["anomalies"]["lost_writes"] == 0
