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
        assert take(OpStream(w, 3), 100, start) == whole[start : start + 100]


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
    hot = Counter(
        op.key
        for op in take(OpStream(Workload(keys=100, distribution="hotspot", hot_fraction=0.1, hot_weight=0.9), 1), n)
    )
    share = sum(hot[f"k{i}"] for i in range(10)) / n
    assert 0.88 < share < 0.92
    assert set(hot) <= {f"k{i}" for i in range(100)}


# -- a key space beyond the exact table: flat memory, the same distribution ---------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from cachestudio.engine.workload import TABLE_KEYS, _key_probabilities  # noqa: E402


@settings(max_examples=12, deadline=None)
@given(s=st.floats(0.5, 2.5), extra=st.integers(1, 400_000), seed=st.integers(0, 2**32))
def test_a_large_zipf_key_space_draws_what_the_exact_table_would(s, extra, seed):
    """The sampler beyond TABLE_KEYS keys against the exact CDF of the same key space: the
    empirical CDF of 200,000 draws stays within a Kolmogorov–Smirnov bound (alpha 1e-4)."""
    import numpy as np

    n = TABLE_KEYS + extra
    w = Workload(keys=n, distribution="zipf", zipf_s=s)
    stream = OpStream(w, seed)
    assert stream._names is None and stream._cdf is None  # noqa: SLF001 - flat memory is the point
    draws = np.concatenate([stream._block(b)[1] for b in range(50)])  # noqa: SLF001 - 204,800 keys
    exact = np.cumsum(_key_probabilities(w))
    empirical = np.bincount(draws, minlength=n).cumsum() / len(draws)
    bound = np.sqrt(-np.log(1e-4 / 2) / (2 * len(draws)))
    assert np.abs(empirical - exact).max() < bound


@settings(max_examples=12, deadline=None)
@given(
    fraction=st.floats(0.001, 1.0), weight=st.floats(0.0, 1.0), extra=st.integers(1, 10**6), seed=st.integers(0, 2**32)
)
def test_a_large_hotspot_key_space_gives_the_hot_keys_their_weight(fraction, weight, extra, seed):
    n = TABLE_KEYS + extra
    w = Workload(keys=n, distribution="hotspot", hot_fraction=fraction, hot_weight=weight)
    ops = take(OpStream(w, seed), 20_000)
    hot = max(1, min(n, round(n * fraction)))
    ids = [int(op.key[1:]) for op in ops]
    assert all(0 <= i < n for i in ids)
    share = sum(i < hot for i in ids) / len(ids)
    expected = 1.0 if hot == n else weight
    assert abs(share - expected) < 0.02


def test_a_large_key_space_is_deterministic_and_resumable():
    for dist in ("zipf", "hotspot", "uniform"):
        w = Workload(keys=10_000_000, distribution=dist, read_ratio=0.5)
        whole = take(OpStream(w, 5), 2 * BLOCK)
        assert take(OpStream(w, 5), 50, BLOCK - 10) == whole[BLOCK - 10 : BLOCK + 40]
        assert all(0 <= int(op.key[1:]) < 10_000_000 for op in whole)
