"""The seeded operation stream: deterministic, resumable, with per-key versions."""

from __future__ import annotations

import itertools
from collections import Counter

from cachestudio.engine.config import Workload
from cachestudio.engine.workload import BLOCK, OpStream


def take(stream, n, start=0):
    return list(itertools.islice(stream.ops(start), n))


def test_same_seed_same_stream_other_seed_other_stream():
    w = Workload(keys=50)
    assert take(OpStream(w, 7), 500) == take(OpStream(w, 7), 500)
    assert take(OpStream(w, 7), 500) != take(OpStream(w, 8), 500)


def test_resuming_mid_stream_gives_the_same_ops_and_versions():
    w = Workload(keys=20, read_ratio=0.3)
    whole = take(OpStream(w, 3), 3 * BLOCK)
    for start in (1, BLOCK - 1, BLOCK, 2 * BLOCK + 17):
        assert take(OpStream(w, 3), 100, start) == whole[start:start + 100]


def test_versions_increase_per_key_and_are_unique():
    ops = take(OpStream(Workload(keys=10, read_ratio=0.5), 1), 5000)
    last = Counter()
    for op in ops:
        if op.kind == "write":
            assert op.version > last[op.key]
            last[op.key] = op.version
        else:
            assert op.version == 0
    versions = [op.version for op in ops if op.kind == "write"]
    assert len(set(versions)) == len(versions) > 2000
    assert [op.seq for op in ops] == list(range(5000))


def test_changing_knobs_mid_stream_keeps_versions_increasing():
    first = take(OpStream(Workload(keys=5, read_ratio=0.2), 1), 1000)
    then = take(OpStream(Workload(keys=5, read_ratio=0.9, distribution="uniform"), 1), 1000, start=1000)
    last = Counter()
    for op in first + then:
        if op.kind == "write":
            assert op.version > last[op.key]
            last[op.key] = op.version


def test_read_ratio_and_distributions():
    n = 20_000
    ops = take(OpStream(Workload(keys=100, read_ratio=0.8, distribution="uniform"), 1), n)
    reads = sum(op.kind == "read" for op in ops) / n
    assert 0.78 < reads < 0.82
    zipf = Counter(op.key for op in take(OpStream(Workload(keys=100, distribution="zipf", zipf_s=1.2), 1), n))
    assert zipf.most_common(1)[0][0] == "k0"
    assert zipf["k0"] > 5 * zipf["k50"]
    hot = Counter(op.key for op in take(OpStream(
        Workload(keys=100, distribution="hotspot", hot_fraction=0.1, hot_weight=0.9), 1), n))
    share = sum(hot[f"k{i}"] for i in range(10)) / n
    assert 0.88 < share < 0.92
    assert set(hot) <= {f"k{i}" for i in range(100)}
