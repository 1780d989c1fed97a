"""Lost writes under ``--crash-node`` against ground truth the lab did not write (issue 24).

A PostgreSQL of the test's own, given to the run with ``--postgres-url``: an event trigger
of the test's attaches, to every ``items`` table a run creates, a row trigger that logs
every committed row version (key, version, the server process and its transaction; a
rolled-back write leaves no row), the server keeps each transaction's commit time
(``track_commit_timestamp``) and logs each disconnection with its time
(``log_disconnections``). The truth of a run, from that log and the ``--history`` only:
the store at the kill of node K is every version the dead incarnation committed plus
every other version committed before its first connection was seen to end; its
acknowledged writes newer than that are lost, even where a later write to the key hides
them; any other acknowledged write newer than the final row is lost too. The lab's count
(the summary) must equal it, run by run, over seeded runs of 3 nodes, a volatile
write-behind lane, 10 keys, read ratio 0.5, a flush every 0.25 s. ``CACHESTUDIO_LONG=1``
sweeps 24 seeds instead of 5. The lab fences the store around the kill (its commits held
while the node is killed and its death marked): a survivor's commit is then before the
kill or after the mark, and the witness's cut (the first disconnection, at the kill) lies
between; the dead node's statement that waited on the fence and committed after it is one
of "every version the dead incarnation committed" in both counts.

Item 2 of the issue, the same witness: a durable Redis stream queue whose cache server the
run kills, with the server's AOF turned off by the test (the lab must count exactly the
writes the store never got) and left on (none lost, none counted).

Diskcache + SQLite, the same shape: the test lays the store file down itself (through the
engine's ``Run``, after its check of an empty run directory and before the labs open it),
with triggers of its own logging every committed version with the database's clock, and
times the dead lab's death from outside by watching its process."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from datetime import UTC
from pathlib import Path

import psycopg
import pytest
import redis
from helpers import cli, require, start_cli, wait_until

from cachestudio.engine.pg_store import app_name
from cachestudio.engine.servers import PostgresServer, postgres_bindir, redis_server

LONG = os.environ.get("CACHESTUDIO_LONG") == "1"
SEEDS = list(range(1, 25)) if LONG else [1, 2, 3, 4, 5]
LANE = "wb"  # the lane's name: its schema is cs_<run>_wb

WITNESS_SQL = r"""
CREATE TABLE public.witness (id BIGSERIAL PRIMARY KEY, sch TEXT, key TEXT, version BIGINT, pid INT, xid xid8);
CREATE FUNCTION public.witness_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.witness (sch, key, version, pid, xid)
  VALUES (TG_TABLE_SCHEMA, NEW.key, NEW.version, pg_backend_pid(), pg_current_xact_id());
  RETURN NULL;
END $$;
CREATE FUNCTION public.witness_attach() RETURNS event_trigger LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
  FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() WHERE command_tag = 'CREATE TABLE' LOOP
    IF r.object_identity LIKE 'cs\_%.items' THEN
      EXECUTE format('CREATE TRIGGER witness AFTER INSERT OR UPDATE ON %s FOR EACH ROW '
                     'EXECUTE FUNCTION public.witness_log()', r.object_identity);
    END IF;
  END LOOP;
END $$;
CREATE EVENT TRIGGER witness_attach ON ddl_command_end WHEN TAG IN ('CREATE TABLE')
  EXECUTE FUNCTION public.witness_attach();
"""
#: Every witnessed version of a schema, with its commit time (seconds since the epoch).
WITNESSED_SQL = (
    "SELECT key, version, pid, "
    "extract(epoch FROM pg_xact_commit_timestamp((xid::text::bigint %% 4294967296)::text::xid)) "
    "FROM public.witness WHERE sch = %s"
)
DISCONNECTION = re.compile(r"^(\d+\.\d+) \[(\d+)\] (.*?) \|\s*LOG:\s+disconnection:")


@pytest.fixture(scope="module")
def witness_pg():
    """The test's own PostgreSQL, with the witness installed and commit times kept."""
    require(postgres_bindir)
    require(redis_server)
    root = Path(tempfile.mkdtemp(prefix="cs-witness-"))
    root.chmod(0o711)
    server = PostgresServer(root / "pg")
    try:
        server.start()
        with psycopg.connect(server.conninfo, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET track_commit_timestamp = on")
            conn.execute("ALTER SYSTEM SET log_disconnections = on")
            conn.execute("ALTER SYSTEM SET log_line_prefix = '%n [%p] %a | '")
            conn.execute(WITNESS_SQL)
        server.stop()
        server.start()  # track_commit_timestamp takes a restart
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def _run(server: PostgresServer, seed: int, tmp: Path) -> dict:
    """One seeded run; what the lab said and what the witness says."""
    with psycopg.connect(server.conninfo, autocommit=True) as conn:
        conn.execute("TRUNCATE public.witness")
    log_from = server.log.stat().st_size
    hist, out = tmp / f"history-{seed}.jsonl", tmp / f"summary-{seed}.json"
    proc = cli(
        "run",
        "--lane",
        f"{LANE}=write-behind",
        "--queue",
        "volatile",
        "--cache-backend",
        "redis",
        "--store-backend",
        "postgresql",
        "--postgres-url",
        server.conninfo,
        "--nodes",
        "3",
        "--crash-node",
        "1.6:1",
        "--keys",
        "10",
        "--read-ratio",
        "0.5",
        "--flush-interval",
        "0.25",
        "--rate",
        "1500",
        "--duration",
        "3",
        "--seed",
        str(seed),
        "--history",
        str(hist),
        "--json",
        str(out),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(out.read_text())
    history = [json.loads(line) for line in hist.read_text().splitlines()]
    with psycopg.connect(server.conninfo, autocommit=True) as conn:
        schemas = conn.execute("SELECT DISTINCT sch FROM public.witness").fetchall()
        assert len(schemas) == 1, schemas
        schema = schemas[0][0]
        witnessed = conn.execute(WITNESSED_SQL, (schema,)).fetchall()
    with open(server.log, "rb") as fh:
        fh.seek(log_from)
        lines = fh.read().decode(errors="replace").splitlines()
    gone = [(float(m[1]), m[3]) for m in map(DISCONNECTION.match, lines) if m]
    return {"summary": summary, "history": history, "schema": schema, "witnessed": witnessed, "gone": gone}


def _truth(run: dict) -> dict:
    """Lost writes from the witness and the history alone (see the module's docstring)."""
    ops = [r for r in run["history"] if r.get("lane") == LANE and r["kind"] == "write"]
    crash = next(r for r in run["history"] if r["kind"] == "crash-node")
    victim = 1
    dead = min(r["inc"] for r in ops if r["node"] == victim)  # its first incarnation died
    dead_versions = {(r["key"], r["version"]) for r in ops if r["inc"] == dead}
    name = app_name(run["schema"], victim, dead)
    ends = [t for t, app in run["gone"] if app == name]
    assert ends, f"no disconnection of {name} in the server's log"
    cut = min(ends)
    at_death: dict[str, int] = {}
    final: dict[str, int] = {}
    for key, version, _pid, committed in run["witnessed"]:
        final[key] = max(final.get(key, 0), version)
        if (key, version) in dead_versions or float(committed) < cut:
            at_death[key] = max(at_death.get(key, 0), version)
    acked = [r for r in ops if r["acked"]]
    at_kill = {r["id"] for r in acked if r["inc"] == dead and r["version"] > at_death.get(r["key"], 0)}
    at_end = {r["id"] for r in acked if r["inc"] != dead and r["version"] > final.get(r["key"], 0)}
    by_id = {r["id"]: r for r in acked}
    hidden = {i for i in at_kill if final.get(by_id[i]["key"], 0) >= by_id[i]["version"]}
    held = re.search(r"commits were held (\d+) ms", crash.get("detail", ""))
    return {"lost": at_kill | at_end, "hidden": hidden, "crash_at": crash["start"], "held_ms": held and held[1]}


def test_lost_writes_equal_the_truth_of_a_witness_the_lab_did_not_write(witness_pg, tmp_path):
    rows = []
    mismatched = []
    for seed in SEEDS:
        run = _run(witness_pg, seed, tmp_path)
        truth = _truth(run)
        lane = run["summary"]["lanes"][0]
        lab = lane["anomalies"]["lost_writes"]
        listed = {a["records"][0] for a in lane["anomaly_list"] if a["kind"] == "lost_write"}
        rows.append((seed, lab, len(truth["lost"]), len(truth["hidden"]), truth["held_ms"]))
        complete = len(lane["anomaly_list"]) < 200  # (the list is cut at 200 anomalies of any kind)
        if lab != len(truth["lost"]) or (complete and listed != truth["lost"]):
            mismatched.append((seed, lab, sorted(truth["lost"] - listed), sorted(listed - truth["lost"])))
    report = "\n".join(
        f"seed {s}: lab {lab}, truth {t} (hidden by later writes: {h}; commits held {ms} ms around the kill)"
        for s, lab, t, h, ms in rows
    )
    print(report)
    assert not mismatched, f"lab vs truth differ: {mismatched}\n{report}"
    # the shape of issue 24's item 1: writes lost with the node, hidden by later writes of the others
    assert any(h for _, _, _, h, _ in rows), f"no run lost a write that a later write hides:\n{report}"
    assert sum(t for _, _, t, _, _ in rows) > 0
    # the store ordered the kill itself (a fence that could not be taken is said in the event)
    assert any(ms is not None for *_, ms in rows), f"no kill held the store's commits:\n{report}"


# -- item 2: a durable queue on a cache server that dies ---------------------------------

QUEUE_LANE = "q"


def _queue_run(server: PostgresServer, seed: int, tmp: Path, persistence: bool) -> dict:
    """One seeded run of a durable Redis stream queue (2 nodes) whose cache server the
    run kills at 1.5 s; ``persistence`` False: the test turns the server's AOF off (``CONFIG
    SET appendonly no``, as someone with access to the server could) before the workload
    starts, so the server comes back without what was queued."""
    with psycopg.connect(server.conninfo, autocommit=True) as conn:
        conn.execute("TRUNCATE public.witness")
    run_dir = Path(tempfile.mkdtemp(prefix="cs-q-")) / "run"  # short: a unix socket's path is bounded
    hist, out = tmp / f"qhistory-{seed}-{persistence}.jsonl", tmp / f"qsummary-{seed}-{persistence}.json"
    proc = start_cli(
        "run",
        "--lane",
        f"{QUEUE_LANE}=write-behind",
        "--queue",
        "durable",
        "--cache-backend",
        "redis",
        "--store-backend",
        "postgresql",
        "--postgres-url",
        server.conninfo,
        "--nodes",
        "2",
        "--crash-cache-server",
        "1.5",
        "--keys",
        "10",
        "--read-ratio",
        "0.5",
        "--flush-interval",
        "0.4",
        "--rate",
        "600",
        "--duration",
        "3",
        "--seed",
        str(seed),
        "--run-dir",
        str(run_dir),
        "--history",
        str(hist),
        "--json",
        str(out),
    )
    try:
        if not persistence:
            sock = run_dir / "servers" / "redis-aof-always" / "redis.sock"

            def answers() -> bool:
                assert proc.poll() is None, proc.communicate()[1]
                try:
                    with redis.Redis(unix_socket_path=str(sock), socket_timeout=2) as client:
                        return bool(client.ping())
                except (redis.RedisError, OSError):
                    return False

            wait_until(answers, timeout=120)
            with redis.Redis(unix_socket_path=str(sock), socket_timeout=2) as client:
                client.config_set("appendonly", "no")
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(run_dir.parent, ignore_errors=True)
    assert proc.returncode == 0, err
    history = [json.loads(line) for line in hist.read_text().splitlines()]
    with psycopg.connect(server.conninfo, autocommit=True) as conn:
        witnessed = conn.execute("SELECT key, version FROM public.witness").fetchall()
    return {"summary": json.loads(out.read_text()), "history": history, "witnessed": witnessed}


def _queue_truth(run: dict) -> set[str]:
    """Lost writes from the witness and the history alone, for a server that came back
    without the queue (its AOF turned off before the first write). The cache server's death
    splits the acknowledged writes: those that ended before the server was back (the
    history's ``cache-server-back`` event: no server answered in between, so the dead one
    acknowledged them) reach the store only through a batch the flusher had taken before
    the death, so one of them is delivered if the witness saw a version of its key at least
    as new committed by a write that also ended before then (a batch keeps the newest per
    key); the others are judged against the final rows."""
    ops = [r for r in run["history"] if r.get("lane") == QUEUE_LANE and r["kind"] == "write"]
    back = [r["start"] for r in run["history"] if r["kind"] == "cache-server-back"]
    cut = min(back) if back else float("inf")
    before = {(r["key"], r["version"]) for r in ops if r["end"] <= cut}
    covered: dict[str, int] = {}
    final = _final(run)
    for key, version in run["witnessed"]:
        if (key, version) in before:
            covered[key] = max(covered.get(key, 0), version)
    lost = set()
    for r in ops:
        if r["acked"]:
            held = covered if r["end"] <= cut else final
            if r["version"] > held.get(r["key"], 0):
                lost.add(r["id"])
    return lost


def _final(run: dict) -> dict[str, int]:
    final: dict[str, int] = {}
    for key, version in run["witnessed"]:
        final[key] = max(final.get(key, 0), version)
    return final


def _never_stored(run: dict) -> set[str]:
    """Acknowledged writes newer than any version of their key the witness saw committed."""
    final = _final(run)
    ops = [r for r in run["history"] if r.get("lane") == QUEUE_LANE and r["kind"] == "write" and r["acked"]]
    return {r["id"] for r in ops if r["version"] > final.get(r["key"], 0)}


@pytest.mark.parametrize("persistence", [False, True], ids=["aof-forced-off", "aof-always"])
def test_writes_queued_on_a_cache_server_that_dies_are_counted_from_the_store(witness_pg, tmp_path, persistence):
    """Issue 24, item 2: without persistence the server comes back without the queue, and
    the lab counts exactly the writes the store never got (hidden or not by later writes).
    With its AOF fsynced always the server keeps them and the queue delivers them (a
    flusher may coalesce one with a newer write of its key, made after the server was back:
    the witness cannot tell that from a loss, so it checks that every acknowledged write's
    key reached at least its version), and the lab counts none."""
    rows = []
    for seed in [1, 2, 3, 4] if LONG else [1]:
        run = _queue_run(witness_pg, seed, tmp_path, persistence)
        lane = run["summary"]["lanes"][0]
        truth = set() if persistence else _queue_truth(run)
        listed = {a["records"][0] for a in lane["anomaly_list"] if a["kind"] == "lost_write"}
        queued = [e["detail"] for e in run["history"] if e["kind"] == "cache-server-back"]
        rows.append((seed, lane["anomalies"]["lost_writes"], truth, listed, _never_stored(run), queued))
    report = "\n".join(f"seed {s}: lab {lab}, truth {len(t)}; {q}" for s, lab, t, _, _, q in rows)
    print(report)
    for _seed, lab, truth, listed, never, _ in rows:
        assert lab == len(truth) and listed == truth, report
        assert never <= truth, report  # a write the store never reached is always counted
    if not persistence:
        assert all(truth for _, _, truth, *_ in rows), f"no write was lost with the AOF off:\n{report}"


# -- diskcache + SQLite: a witness of the test's own in the store file ------------------------

SQLITE_WITNESS = """
CREATE TABLE [items] ([key] TEXT PRIMARY KEY, [version] INTEGER NOT NULL, [value] TEXT, [updated_at] FLOAT);
CREATE TABLE witness (id INTEGER PRIMARY KEY, key TEXT, version INTEGER, at REAL);
CREATE TRIGGER witness_ins AFTER INSERT ON items BEGIN
  INSERT INTO witness (key, version, at) VALUES (NEW.key, NEW.version, julianday('now'));
END;
CREATE TRIGGER witness_upd AFTER UPDATE ON items BEGIN
  INSERT INTO witness (key, version, at) VALUES (NEW.key, NEW.version, julianday('now'));
END;
"""


@pytest.mark.parametrize("seed", SEEDS[:3] if not LONG else SEEDS)
def test_lost_writes_on_sqlite_equal_the_truth_of_a_trigger_of_the_tests_own(tmp_path, seed):
    """The same shape on diskcache + SQLite. The store file is laid down by the test before
    the labs open it, with triggers of its own logging every committed version with the
    database's clock (a rolled-back write leaves no row); the dead lab's death is timed from
    outside, by watching its process; the truth is its committed versions plus the others'
    committed before that time (the lab holds the store's commits from before the kill to
    after its mark, so none falls in between)."""
    import sqlite3
    import threading
    import time
    from datetime import datetime

    from helpers import drive

    from cachestudio.engine.config import Backends, LaneConfig, Workload, WriteBehindKnobs
    from cachestudio.engine.runner import Plan, Run

    cfg = LaneConfig(
        strategy="write-behind",
        name=LANE,
        seed=seed,
        workload=Workload(rate=1500, read_ratio=0.5, keys=10, distribution="uniform"),
        write_behind=WriteBehindKnobs(flush_interval_s=0.25, durable=False),
        backends=Backends(nodes=3),
    )
    run = Run(Plan(lanes=[cfg], duration_s=3.0, node_crashes=[(1.6, 1)], run_dir=tmp_path / "run"))
    store = run.lanes[0].paths.store
    store.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(store) as conn:
        conn.executescript(SQLITE_WITNESS)
    died: list[float] = []
    try:
        run.start()
        victim = next(n for n in run.nodes if n.node == 1)
        pid, dead_inc = victim.proc.pid, victim.inc

        def watch() -> None:  # the death, seen from outside: its process is gone (or a zombie)
            while not died:
                try:
                    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
                except OSError:
                    state = "gone"
                if state in ("Z", "X", "gone"):
                    died.append(datetime.now(UTC).timestamp())
                time.sleep(0.0005)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        drive(run, lambda: victim.inc != dead_inc or bool(died))
        drive(run, 3.0)
        summary = run.finish()
    finally:
        died.append(0.0)
        run.abort()
        run.cleanup()
    history = [json.loads(line) for f in sorted((store.parent / "history").glob("inc-*.jsonl")) for line in f.open()]
    with sqlite3.connect(store) as conn:
        witnessed = [
            (k, v, (at - 2440587.5) * 86400.0) for k, v, at in conn.execute("SELECT key, version, at FROM witness")
        ]
    ops = [r for r in history if r["kind"] == "write"]
    dead_versions = {(r["key"], r["version"]) for r in ops if r["inc"] == dead_inc}
    cut = died[0]
    at_death: dict[str, int] = {}
    final: dict[str, int] = {}
    for key, version, at in witnessed:
        final[key] = max(final.get(key, 0), version)
        if (key, version) in dead_versions or at < cut:
            at_death[key] = max(at_death.get(key, 0), version)
    acked = [r for r in ops if r["acked"]]
    truth = {r["id"] for r in acked if r["inc"] == dead_inc and r["version"] > at_death.get(r["key"], 0)}
    truth |= {r["id"] for r in acked if r["inc"] != dead_inc and r["version"] > final.get(r["key"], 0)}
    lane = summary["lanes"][0]
    listed = {a["records"][0] for a in lane["anomaly_list"] if a["kind"] == "lost_write"}
    hidden = {r["id"] for r in acked if r["id"] in truth and final.get(r["key"], 0) >= r["version"]}
    print(f"sqlite seed {seed}: lab {lane['anomalies']['lost_writes']}, truth {len(truth)}, hidden {len(hidden)}")
    assert lane["anomalies"]["lost_writes"] == len(truth), (seed, sorted(truth - listed), sorted(listed - truth))
    if len(lane["anomaly_list"]) < 200:
        assert listed == truth
