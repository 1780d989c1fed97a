"""The history written through a shared memory map (issue 15): as crash-safe as one
``write(2)`` per record, read by the tail as it grows, no zeros left once the writer is
gone. Real files, real processes killed with SIGKILL at seeded random moments."""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import textwrap

import pytest
from helpers import ROOT, small_tmpfs
from hypothesis import given, settings
from hypothesis import strategies as st

from cachestudio.engine.history import HistoryTail, MappedHistoryWriter, read_history, trim_history


def record(i: int, pad: int = 0) -> str:
    return json.dumps({"id": f"t#{i}", "value": "x" * pad}, separators=(",", ":")) + "\n"


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3000), st.booleans()), min_size=1, max_size=400))
def test_the_tail_reads_every_complete_record_once_in_order(tmp_path_factory, plan):
    """Records of any length (some crossing the growth of the file), tailed at any moment:
    the tail sees each exactly once, in order, and the closed file is the records alone."""
    path = tmp_path_factory.mktemp("h") / "h.jsonl"
    writer = MappedHistoryWriter(path)
    tail = HistoryTail(path)
    seen = []
    for i, (pad, read_now) in enumerate(plan):
        writer.write(record(i, pad))
        if read_now:
            seen.extend(r["id"] for r in tail.read_new())
    seen.extend(r["id"] for r in tail.read_new())
    writer.close()
    seen.extend(r["id"] for r in tail.read_new())
    assert seen == [f"t#{i}" for i in range(len(plan))]
    data = path.read_bytes()
    assert b"\0" not in data and data == "".join(record(i, pad) for i, (pad, _) in enumerate(plan)).encode()


def test_a_writer_reopening_a_killed_writers_file_goes_on_after_its_last_record(tmp_path):
    path = tmp_path / "h.jsonl"
    first = MappedHistoryWriter(path)
    for i in range(10):
        first.write(record(i))
    first.mm.close()  # as a SIGKILL leaves it: the zeros of the unused room stay
    os.close(first.fd)
    assert path.stat().st_size > len(b"".join(record(i).encode() for i in range(10)))
    second = MappedHistoryWriter(path)
    for i in range(10, 15):
        second.write(record(i))
    second.close()
    assert [r["id"] for r in read_history(path)] == [f"t#{i}" for i in range(15)]


WRITER = textwrap.dedent("""
    import json, os, sys
    from cachestudio.engine.history import MappedHistoryWriter
    path, pad = sys.argv[1], int(sys.argv[2])
    w = MappedHistoryWriter(path)
    i = 0
    while True:
        w.write(json.dumps({"id": i, "value": "x" * (i % pad)}) + "\\n")
        os.write(1, b"%d\\n" % i)   # the acknowledgement: after the record, as the lab does
        i += 1
""")


@pytest.mark.parametrize("seed", range(6))
def test_every_acknowledged_record_survives_a_sigkill_at_a_random_moment(tmp_path, seed):
    """A writer acknowledges each record on a pipe after copying it into the map; it is
    killed after a seeded random number of acknowledgements. Every acknowledged record is in
    the file, the records are a gap-free prefix, and after the trim no zero is left."""
    rng = random.Random(seed)
    path = tmp_path / "h.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(rng.choice([7, 300, 5000]))], cwd=ROOT, stdout=subprocess.PIPE
    )
    try:
        target = rng.randrange(1, 60_000)
        acked = -1
        tail = HistoryTail(path)
        tailed = []
        while acked < target:
            line = proc.stdout.readline()
            assert line, "the writer died by itself"
            acked = int(line)
            if acked % 4096 == 0:
                tailed.extend(r["id"] for r in tail.read_new())
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert tailed == list(range(len(tailed)))  # the tail, while it ran, saw only whole records
    trim_history(path)
    data = path.read_bytes()
    assert b"\0" not in data
    ids = [r["id"] for r in read_history(path)]
    assert ids == list(range(len(ids))) and ids[-1] >= acked


def test_a_full_disk_is_an_error_of_the_write_not_a_bus_error(tmp_path):
    """On a full disk the file's growth fails with ENOSPC, which the lab names; the pages of
    the map are allocated before they are written, so the writer is never killed by SIGBUS."""
    with small_tmpfs(tmp_path / "disk", "1m") as disk:
        script = textwrap.dedent(f"""
            import errno, sys
            from cachestudio.engine.history import MappedHistoryWriter
            w = MappedHistoryWriter({str(disk / "h.jsonl")!r})
            n = 0
            try:
                while True:
                    w.write("x" * 999 + "\\n")
                    n += 1
            except OSError as e:
                print(errno.errorcode[e.errno], n)
            w.close()
        """)
        r = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        name, count = r.stdout.split()
        assert name == errno.errorcode[errno.ENOSPC] and int(count) > 0
        data = (disk / "h.jsonl").read_bytes()
        assert b"\0" not in data and len(data.splitlines()) == int(count)


@pytest.mark.parametrize("threads", [2, 8])
def test_client_threads_writing_at_once_leave_every_record_whole(tmp_path, threads):
    """A lane's client threads share one writer: no record is torn, lost or doubled."""
    import threading

    path = tmp_path / "h.jsonl"
    writer = MappedHistoryWriter(path)
    per = 20_000
    barrier = threading.Barrier(threads)

    def client(c: int) -> None:
        barrier.wait()
        for i in range(per):
            writer.write(json.dumps({"id": f"{c}#{i}", "value": "x" * (i % 200)}) + "\n")

    workers = [threading.Thread(target=client, args=(c,)) for c in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    writer.close()
    ids = [r["id"] for r in read_history(path)]
    assert sorted(ids) == sorted(f"{c}#{i}" for c in range(threads) for i in range(per))
    for c in range(threads):  # each client's records in its own order
        mine = [int(x.split("#")[1]) for x in ids if x.startswith(f"{c}#")]
        assert mine == list(range(per))
