"""The seeded, deterministic operation stream.

Operation ``seq`` of a run is a pure function of (seed, workload knobs, seq): the
stream is generated in blocks of ``BLOCK`` operations, block ``b`` from its own
random generator seeded with ``(seed, b)``. So every lane of ``--strategy all`` sees
the same stream, and a lab restarted after a crash resumes at any ``seq`` with the
same keys and the same versions.

Versions: a write's version is its place in the stream plus one (``seq + 1``). That is
increasing per key (DESIGN.md §3), unique, the same in every lane, and it needs no
counting: a lab restarted after a crash, or a workload whose knobs change mid-run
(a new stream from the current ``seq``), can never issue an older or a duplicate
version for a key. Versions are sparse per key (k3 may go v12 → v40), which the
auditor's sentences show as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from .config import Workload

BLOCK = 4096
READ, WRITE = "read", "write"


@dataclass(frozen=True, slots=True)
class Op:
    seq: int
    kind: str  # "read" | "write"
    key: str
    version: int  # the version written (seq + 1); for a read, 0


def _key_probabilities(w: Workload) -> np.ndarray | None:
    """Probability of each key index, or None for uniform."""
    n = w.keys
    if w.distribution == "uniform":
        return None
    if w.distribution == "zipf":
        p = 1.0 / np.power(np.arange(1, n + 1, dtype=np.float64), w.zipf_s)
    else:  # hotspot: hot_weight of the operations go to the first hot_fraction of keys
        hot = max(1, min(n, int(round(n * w.hot_fraction))))
        p = np.empty(n, dtype=np.float64)
        if hot == n:
            p[:] = 1.0
        else:
            p[:hot] = w.hot_weight / hot
            p[hot:] = (1.0 - w.hot_weight) / (n - hot)
    return p / p.sum()


class OpStream:
    def __init__(self, workload: Workload, seed: int):
        self.w = workload
        self.seed = seed
        p = _key_probabilities(workload)
        self._cdf = None if p is None else np.cumsum(p)
        self._names = [f"k{i}" for i in range(workload.keys)]

    def _block(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, b])
        is_write = rng.random(BLOCK) >= self.w.read_ratio
        if self._cdf is None:
            keys = rng.integers(0, self.w.keys, BLOCK)
        else:
            keys = np.searchsorted(self._cdf, rng.random(BLOCK) * self._cdf[-1], side="right")
            np.minimum(keys, self.w.keys - 1, out=keys)
        return is_write, keys

    def ops(self, start: int = 0) -> Iterator[Op]:
        """Operations ``start``, ``start+1`` …"""
        names = self._names
        b, offset = divmod(start, BLOCK)
        while True:
            is_write, keys = self._block(b)
            base = b * BLOCK
            writes = is_write.tolist()
            key_ids = keys.tolist()
            for i in range(offset, BLOCK):
                seq = base + i
                if writes[i]:
                    yield Op(seq, WRITE, names[key_ids[i]], seq + 1)
                else:
                    yield Op(seq, READ, names[key_ids[i]], 0)
            offset = 0
            b += 1
