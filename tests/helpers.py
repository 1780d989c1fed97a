"""What the tests share that is not a fixture, in one place: the repository's root, the
command line launched as a user launches it (to completion with :func:`cli`, or left
running with :func:`start_cli`), bad input judged as one line and exit status 2, waits on
conditions (never blind sleeps), a real full disk, and the skip -- or, under CI=true, the
failure -- when a server is not installed. Fixtures stay in conftest.py; no test module
imports another test module, only this one."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

#: The repository: the command line runs from here, so ``-m cachestudio`` is this checkout's.
ROOT = Path(__file__).resolve().parents[1]

#: The command line as the tests start it: this interpreter, this checkout's package.
CLI = [sys.executable, "-m", "cachestudio"]


def cli(
    *args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 240, **kwargs
) -> subprocess.CompletedProcess:
    """Run ``cachestudio ARGS`` to the end; its output captured as text. ``env`` adds to (or
    overrides) this process's environment."""
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        check=False,
        env=None if env is None else {**os.environ, **env},
        timeout=timeout,
        **kwargs,
    )


def start_cli(*args: str, cwd: Path | None = None, env: dict | None = None, **kwargs) -> subprocess.Popen:
    """Start ``cachestudio ARGS`` and leave it running; stdout and stderr are pipes of text
    unless ``kwargs`` say otherwise. ``env`` adds to (or overrides) this process's environment."""
    options = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, **kwargs}
    return subprocess.Popen(
        [*CLI, *args], cwd=cwd or ROOT, env=None if env is None else {**os.environ, **env}, **options
    )


def assert_bad_input(proc: subprocess.CompletedProcess, *words: str) -> None:
    """Bad input: exit status 2 and one line on stderr naming each of ``words``, no traceback."""
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


def wait_until(condition, timeout: float = 60.0, interval: float = 0.005):
    """Poll ``condition`` until it is truthy and return its value; fail the test after
    ``timeout`` seconds. The timeout bounds a hung test, it measures nothing: a passing test
    waits only as long as its condition takes, so the bound is generous (issue 23: the suite
    took 41 min on a loaded machine against 21 on a quiet one)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def require(find):
    """What ``find()`` returns; if it raises ServerError (a server is not installed), skip
    the test saying so -- or fail it under CI=true, where every test must run."""
    from cachestudio.engine.servers import ServerError

    try:
        return find()
    except ServerError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{exc} (CI=true: these tests must run)")
        pytest.skip(str(exc))


@contextlib.contextmanager
def small_tmpfs(d: Path, size: str = "64k"):
    """A tmpfs of the given size mounted on ``d``, for a real full disk (root may mount one
    here; elsewhere the test is skipped, saying why)."""
    d.mkdir(exist_ok=True)
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(d)], capture_output=True, text=True, check=False
    )
    if r.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {r.stderr.strip() or r.returncode}")
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)


def drive(run, until, timeout: float = 60.0) -> None:
    """Let a started ``runner.Run``'s observer work (tick, as the command line's loop does)
    until ``until``: a run time in seconds, or a condition (a callable) -- failing the test if
    it does not come within ``timeout`` seconds more (a bound for a hung run, as in
    :func:`wait_until`)."""
    if not callable(until):
        timeout += max(0.0, until - run.now())
    reached = until if callable(until) else (lambda: run.now() >= until)
    deadline = time.monotonic() + timeout
    while not reached():
        assert time.monotonic() < deadline, f"the run did not get there within {timeout:g} s"
        run.tick()
        time.sleep(0.01)


def write(tmp_path: Path, body: str, name: str = "lesson") -> Path:
    """``body`` written to ``tmp_path/NAME.toml``; its path."""
    f = tmp_path / f"{name}.toml"
    f.write_text(body)
    return f


#: A tiny lesson (3 s, a crash at 1.5 s with a say line and a pause) whose claims hold;
#: ``{wb}`` is the write-behind lane's lost_writes claim.
LESSON = """name = "tiny-crash"
title = "A tiny crash"
watch_for = "the queue"
you_will_learn = "volatile queues lose writes"
seed = 3
duration = 3
strategy = "all"
restart_delay = 0.3

[workload]
rate = 1500

[write_behind]
flush_interval_s = 1.0
batch_size = 1000

[[faults]]
at = 1.5
kind = "crash"
say = "Kill it."
pause = true

[expect]
"cache-aside".lost_writes = 0
"write-through".lost_writes = "== 0"
"write-behind".lost_writes = "{wb}"
"write-behind".incarnations = 2
"""


@contextlib.contextmanager
def pg_outage(conninfo: str, table: str):
    """A real PostgreSQL outage on ``table`` while the block runs: another connection holds
    the table's ACCESS EXCLUSIVE lock inside a transaction (it blocks readers and writers)."""
    import psycopg  # only the tests with a PostgreSQL server pay for it

    conn = psycopg.connect(conninfo)
    try:
        conn.execute(f'LOCK TABLE "{table}" IN ACCESS EXCLUSIVE MODE')
        yield
    finally:
        conn.rollback()
        conn.close()


def scenario_fields() -> tuple[str, ...]:
    """What a saved scenario file must give back: every field of ``Scenario`` but where it was
    read from (``path``) and what loading it worked out (``notes``, the merges it made). A new
    field is checked by the save-and-reopen tests without an edit there."""
    import dataclasses

    from cachestudio.engine.scenario import Scenario

    return tuple(f.name for f in dataclasses.fields(Scenario) if f.name not in ("path", "notes"))


def session_pids(sid: int) -> set[int]:
    """Live processes of a session (zombies count as gone)."""
    out = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            out.add(int(entry.name))
    return out
