"""Recordings from anyone: every crafted or damaged file replays, reports, or is refused in
one line with exit 2 — within a time bound (the subprocess's timeout) and a memory bound
(``RLIMIT_AS`` in the child), never with an exception's name, never looping.

The files are made from one real recorded run (real labs, diskcache and SQLite), changed
by hypothesis: byte flips, truncation, concatenation, sections dropped or duplicated,
fields of the wrong type, huge and non-finite numbers, an inflation bomb, deep nesting,
too many lanes. The CI sample is small and seeded; ``CACHESTUDIO_LONG=1`` tries more."""

from __future__ import annotations

import gzip
import json
import os
import random
import resource
import subprocess
import zlib
from pathlib import Path

import pytest
from helpers import CLI, ROOT, cli
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from cachestudio.engine.config import MAX_LANES

LONG = os.environ.get("CACHESTUDIO_LONG") == "1"
EXAMPLES = 150 if LONG else 10
TIME_BOUND_S = 120  # a replay of this two-second run takes about a second; a loop never ends
MEMORY_BOUND = 3 << 30  # address space of the child (the interpreter and numpy take ~1 GiB of it)
EXCEPTION_NAMES = (
    "Traceback",
    "KeyError",
    "TypeError",
    "ValueError",
    "AttributeError",
    "OverflowError",
    "RecursionError",
    "IndexError",
    "ZeroDivisionError",
    "MemoryError",
    "RuntimeWarning",
    "Error:",
)


def _bounded():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BOUND, MEMORY_BOUND))


def bounded_cli(*args: str) -> subprocess.CompletedProcess:
    """``cachestudio ARGS`` under the time and memory bounds (a hang fails the test)."""
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=TIME_BOUND_S,
        preexec_fn=_bounded,  # noqa: PLW1509 - the child sets its own limit, nothing else
    )


def assert_replayed_or_refused(out: subprocess.CompletedProcess, what: str) -> None:
    lines = out.stderr.strip().splitlines()
    assert not any(name in out.stderr for name in EXCEPTION_NAMES), (what, out.stderr)
    if out.returncode == 2:
        assert len(lines) == 1 and lines[0].startswith("cachestudio: error:"), (what, out.stderr)
        return
    assert out.returncode == 0, (what, out.returncode, out.stderr)
    assert len(lines) <= 2, (what, out.stderr)  # a note on the damage, and the report's line


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    """One real recorded run: three lanes, a crash and an outage."""
    path = tmp_path_factory.mktemp("hostile") / "run.csrec"
    out = cli(
        "run", "--strategy", "all", "--duration", "2", "--crash-at", "1", "--outage", "0.5:0.3", "--record", str(path)
    )
    assert out.returncode == 0, out.stderr
    return path


def members(lines: list[bytes], per: int) -> bytes:
    """Lines as the writer writes them: a gzip member per ``per`` lines."""
    return b"".join(gzip.compress(b"".join(x + b"\n" for x in lines[i : i + per])) for i in range(0, len(lines), per))


VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([10**400, -(10**400), 1e300, -1e300, float("nan"), float("inf"), float("-inf"), 0, -1]),
    st.floats(),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
KINDS = ["header", "op", "event", "tick", "anomalies", "final", "end"]


def kind_of(line: bytes) -> str:
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        return "?"
    return obj.get("type") or "op" if isinstance(obj, dict) else "?"


def line_change(draw, lines: list[bytes]) -> list[bytes]:
    what = draw(st.sampled_from(["drop", "duplicate", "field", "deep", "lanes", "long"]))
    if what == "drop":
        kind = draw(st.sampled_from(KINDS))
        return [x for x in lines if kind_of(x) != kind]
    if what == "duplicate":
        kind = draw(st.sampled_from(KINDS))
        return [y for x in lines for y in ([x, x] if kind_of(x) == kind else [x])]
    i = draw(st.integers(0, len(lines) - 1))
    try:
        obj = json.loads(lines[i])
    except (ValueError, RecursionError):  # a line an earlier change spoiled
        obj = {}
    if not isinstance(obj, dict):
        obj = {}
    if what == "field":
        keys = sorted(obj) + ["plan", "duration_s", "lanes", "t", "start", "end", "items"]
        key, value = draw(st.sampled_from(keys)), draw(VALUES)
        if key == "duration_s" and isinstance(obj.get("plan"), dict):
            obj["plan"][key] = value
        else:
            obj[key] = value
        new = json.dumps(obj).encode()  # NaN and Infinity as Python writes them
    elif what == "deep":
        depth = draw(st.sampled_from([40, 2_000, 100_000]))
        new = json.dumps({**obj, "x": 0}).encode().replace(b"0}", b"[" * depth + b"]" * depth + b"}")
    elif what == "lanes":
        head = {**obj, **(json.loads(lines[0]) if kind_of(lines[0]) == "header" else {})}
        head["lanes"] = [{"strategy": "cache-aside"}] * draw(st.integers(2, 400))
        i, new = 0, json.dumps(head).encode()
    else:
        new = b'{"type":"event","kind":"' + b"x" * (20 << 20) + b'"}'
    return lines[:i] + [new] + lines[i + 1 :]


def hostile(draw, base: bytes) -> bytes:
    """A recording changed as drawn (``draw``: hypothesis's; the file itself stays out of its
    reports)."""
    lines = gzip.decompress(base).splitlines()
    for _ in range(draw(st.integers(0, 2))):
        lines = line_change(draw, lines)
    data = bytearray(members(lines, draw(st.sampled_from([1, 50, 100_000]))) if lines else b"")
    what = draw(st.sampled_from(["as is", "flip", "cut", "concat", "concat cut"]))
    if what == "flip" and data:
        for _ in range(draw(st.integers(1, 4))):
            data[draw(st.integers(0, len(data) - 1))] ^= draw(st.integers(1, 255))
    elif what == "cut":
        data = data[: draw(st.integers(0, len(data)))]
    elif what == "concat":
        data += base
    elif what == "concat cut":
        data += base[: draw(st.integers(0, len(base)))]
    return bytes(data)


def check_file(path: Path, out_html: Path, what: str) -> None:
    assert_replayed_or_refused(bounded_cli("replay", str(path), "--json"), what)
    out = bounded_cli("report", str(path), "--html", str(out_html))
    assert_replayed_or_refused(out, what)
    assert out_html.exists() == (out.returncode == 0)
    out_html.unlink(missing_ok=True)


@seed(26)
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_every_crafted_recording_replays_or_is_refused_in_one_line_within_bounds(recorded, tmp_path_factory, data):
    crafted = hostile(data.draw, recorded.read_bytes())
    tmp = tmp_path_factory.mktemp("crafted")
    path = tmp / "crafted.csrec"
    path.write_bytes(crafted)
    check_file(path, tmp / "out.html", f"{len(crafted)} bytes")


def test_an_inflation_bomb_is_refused_in_one_line_within_bounds(recorded, tmp_path):
    head = gzip.decompress(recorded.read_bytes()).splitlines()[0]
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = z.compress(head + b"\n")
    for i in range(2048):  # 2 GiB of lines of 1 MiB inflated from about 2 MB
        bomb += z.compress(b'{"type":"event","kind":"' + b"x" * ((1 << 20) - 30) + b'","start":0}\n' if i else b"")
    path = tmp_path / "bomb.csrec"
    path.write_bytes(bomb + z.flush())
    for args in (["replay", str(path), "--json"], ["report", str(path), "--html", str(tmp_path / "o.html")]):
        out = bounded_cli(*args)
        assert out.returncode == 2, out.stderr
        assert "inflates to more than" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_a_header_of_many_lanes_or_a_time_far_past_the_run_is_bounded(recorded, tmp_path):
    lines = gzip.decompress(recorded.read_bytes()).splitlines()
    head = json.loads(lines[0])
    many = tmp_path / "many.csrec"
    many.write_bytes(members([json.dumps({**head, "lanes": head["lanes"] * 400}).encode(), *lines[1:]], 50))
    out = bounded_cli("replay", str(many), "--json")
    assert out.returncode == 2 and f"at most {MAX_LANES}" in out.stderr, out.stderr
    ticks = [i for i, x in enumerate(lines) if kind_of(x) == "tick"]
    far = list(lines)
    far[ticks[len(ticks) // 2]] = far[ticks[len(ticks) // 2]].replace(b'"t":', b'"t":1e300,"was":', 1)
    path = tmp_path / "far.csrec"
    path.write_bytes(members(far, 50))
    out = bounded_cli("report", str(path), "--html", str(tmp_path / "far.html"))
    assert out.returncode == 0 and "1 damaged line skipped" in out.stderr, out.stderr
    out = bounded_cli("replay", str(path), "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["recording"]["complete"] is False


def split_members(data: bytes) -> list[tuple[int, int, int]]:
    """The members of a good file, by Python's zlib: (first byte, end byte, operations)."""
    out, at = [], 0
    while at < len(data):
        z = zlib.decompressobj(31)
        text = z.decompress(data[at:])
        end = len(data) - len(z.unused_data)
        out.append((at, end, sum(kind_of(x) == "op" for x in text.splitlines())))
        at = end
    return out


def test_one_flipped_byte_loses_one_member_and_the_rest_is_read(recorded, tmp_path):
    """The writer's members: a flip costs the operations of the member it hits, no more (the
    witness: the members as Python's own zlib inflates them from the good file)."""
    data = recorded.read_bytes()
    parts = split_members(data)
    assert len(parts) >= 3, parts  # a member per flush
    total = sum(n for _, _, n in parts)
    rng = random.Random(26)
    for _ in range(4 if not LONG else 40):
        flipped = bytearray(data)
        at = rng.randrange(parts[2][0], len(data))  # after the header's member
        flipped[at] ^= 1 << rng.randrange(8)
        path = tmp_path / "flipped.csrec"
        path.write_bytes(bytes(flipped))
        out = bounded_cli("replay", str(path), "--json")
        assert out.returncode == 0, out.stderr
        read = sum(lane["ops"] for lane in json.loads(out.stdout)["lanes"])
        (hit,) = [n for first, end, n in parts if first <= at < end]
        if read < total:  # (a flip in a member's time stamp goes unnoticed: gzip ignores it)
            assert read == total - hit, (read, total, hit, at)
            assert "damaged" in out.stderr and "skipped" in out.stderr, out.stderr
            assert len(out.stderr.strip().splitlines()) == 1


def test_a_fifo_with_no_writer_is_refused_and_a_pipe_is_read_as_a_stream(recorded, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    out = bounded_cli("replay", str(fifo), "--json")
    assert out.returncode == 2 and "no writer" in out.stderr, out.stderr
    piped = subprocess.run(
        [*CLI, "replay", "/dev/stdin", "--json"],
        input=recorded.read_bytes(),
        capture_output=True,
        cwd=ROOT,
        check=False,
        timeout=TIME_BOUND_S,
    )
    assert piped.returncode == 0, piped.stderr
    direct = bounded_cli("replay", str(recorded), "--json")
    assert json.loads(piped.stdout) == json.loads(direct.stdout)


def test_bench_looks_at_its_recording_before_measuring_anything(recorded, tmp_path):
    bad = tmp_path / "bad.csrec"
    bad.write_bytes(recorded.read_bytes()[:100])
    out = bounded_cli("bench", "--quick", "--time-machine", "--recording", str(bad))
    assert out.returncode == 2 and out.stdout == "", (out.stdout, out.stderr)
    assert len(out.stderr.strip().splitlines()) == 1
    out = bounded_cli("bench", "--quick", "--recording", str(recorded))
    assert out.returncode == 2 and "--time-machine" in out.stderr and out.stdout == ""


def test_an_older_single_member_recording_still_reads_and_a_flip_reads_up_to_it(recorded, tmp_path):
    """Version 1: one gzip member, flushed as it went (Z_SYNC_FLUSH)."""
    lines = gzip.decompress(recorded.read_bytes()).splitlines(keepends=True)
    head = json.loads(lines[0])
    lines[0] = json.dumps({**head, "version": 1}).encode() + b"\n"
    z = zlib.compressobj(1, zlib.DEFLATED, 31)
    old = b"".join(
        z.compress(b"".join(lines[i : i + 400])) + z.flush(zlib.Z_SYNC_FLUSH) for i in range(0, len(lines), 400)
    )
    old += z.flush()
    path = tmp_path / "v1.csrec"
    path.write_bytes(old)
    whole = bounded_cli("replay", str(path), "--json")
    assert whole.returncode == 0 and whole.stderr == "", whole.stderr
    new = bounded_cli("replay", str(recorded), "--json")
    assert json.loads(whole.stdout) == json.loads(new.stdout)
    flipped = bytearray(old)
    flipped[len(old) // 2] ^= 0x10
    path.write_bytes(bytes(flipped))
    out = bounded_cli("replay", str(path), "--json")
    assert out.returncode == 0 and "damaged" in out.stderr, out.stderr
    read = sum(lane["ops"] for lane in json.loads(out.stdout)["lanes"])
    # up to the damage (a flip the check sum alone finds, at the end, leaves every line read)
    assert 0 < read <= sum(lane["ops"] for lane in json.loads(new.stdout)["lanes"])
