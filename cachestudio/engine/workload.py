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

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from .config import Workload

BLOCK = 4096
READ, WRITE = "read", "write"


class Op(NamedTuple):  # a tuple: made twice as fast as a frozen dataclass (issue 15)
    seq: int
    kind: str  # "read" | "write"
    key: str
    version: int  # the version written (seq + 1); for a read, 0


#: Key spaces up to this size are drawn from an exact table of every key's probability (and
#: their names are made once). Beyond it the memory is flat in the key space: a zipf draw
#: uses the exact table for the TABLE_KEYS hottest keys and the inverse of the integral of
#: x^-s for the rest (a continuous approximation, within 1e-6 of the exact tail mass at
#: 65,536 keys); a hotspot draw is two uniform ranges; names are made per block.
TABLE_KEYS = 65_536


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


class _LargeZipf:
    """Zipf over n > TABLE_KEYS keys in O(TABLE_KEYS) memory: the head exactly, the tail by
    inverting the integral of x^-s from TABLE_KEYS + 0.5 (ranks are 1-based)."""

    def __init__(self, n: int, s: float):
        self.n, self.s, m = n, s, TABLE_KEYS
        self.head = np.cumsum(1.0 / np.power(np.arange(1, m + 1, dtype=np.float64), s))
        self.lo = m + 0.5
        self.tail = self._integral(n + 0.5)
        self.total = self.head[-1] + self.tail

    def _integral(self, x: float) -> float:
        s = self.s
        if abs(s - 1.0) < 1e-12:
            return float(np.log(x / self.lo))
        return float((x ** (1.0 - s) - self.lo ** (1.0 - s)) / (1.0 - s))

    def draw(self, u: np.ndarray) -> np.ndarray:
        t = u * self.total
        keys = np.searchsorted(self.head, t, side="right")
        over = t >= self.head[-1]
        if over.any():
            rest = t[over] - self.head[-1]
            s = self.s
            if abs(s - 1.0) < 1e-12:
                x = self.lo * np.exp(rest)
            else:
                x = np.power(self.lo ** (1.0 - s) + rest * (1.0 - s), 1.0 / (1.0 - s))
            keys[over] = np.floor(x - 0.5).astype(np.int64)  # rank r covers [r - 0.5, r + 0.5): index r - 1
        np.clip(keys, 0, self.n - 1, out=keys)
        return keys


class OpStream:
    def __init__(self, workload: Workload, seed: int):
        self.w = workload
        self.seed = seed
        n = workload.keys
        self._cdf = self._zipf = None
        self._hot = None
        if n <= TABLE_KEYS:
            p = _key_probabilities(workload)
            self._cdf = None if p is None else np.cumsum(p)
            self._names: list[str] | None = [f"k{i}" for i in range(n)]
        else:
            self._names = None  # made per block: flat in the key space
            if workload.distribution == "zipf":
                self._zipf = _LargeZipf(n, workload.zipf_s)
            elif workload.distribution == "hotspot":
                self._hot = max(1, min(n, int(round(n * workload.hot_fraction))))

    def _block(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, b])
        n = self.w.keys
        is_write = rng.random(BLOCK) >= self.w.read_ratio
        if self._cdf is not None:
            keys = np.searchsorted(self._cdf, rng.random(BLOCK) * self._cdf[-1], side="right")
            np.minimum(keys, n - 1, out=keys)
        elif self._zipf is not None:
            keys = self._zipf.draw(rng.random(BLOCK))
        elif self._hot is not None and self._hot < n:
            u, w, h = rng.random(BLOCK), self.w.hot_weight, self._hot
            hot = u < w  # then u / w is uniform in [0, 1) over the hot keys; else over the rest
            with np.errstate(divide="ignore", invalid="ignore"):
                frac = np.where(hot, u / w, (u - w) / (1.0 - w))
            frac = np.clip(np.nan_to_num(frac, nan=0.0, posinf=0.0, neginf=0.0), 0.0, 1.0)
            keys = np.where(hot, frac * h, h + frac * (n - h)).astype(np.int64)
            np.clip(keys, 0, n - 1, out=keys)
        else:
            keys = rng.integers(0, n, BLOCK)
        return is_write, keys

    def ops(self, start: int = 0) -> Iterator[Op]:
        """Operations ``start``, ``start+1`` …"""
        table = self._names
        new = tuple.__new__
        b, offset = divmod(start, BLOCK)
        while True:
            is_write, keys = self._block(b)
            base = b * BLOCK
            writes = is_write.tolist()
            ids = keys.tolist()
            names = [table[k] for k in ids] if table is not None else [f"k{k}" for k in ids]
            for i in range(offset, BLOCK):
                seq = base + i
                if writes[i]:  # tuple.__new__: an Op without the call of its Python __new__
                    yield new(Op, (seq, WRITE, names[i], seq + 1))
                else:
                    yield new(Op, (seq, READ, names[i], 0))
            offset = 0
            b += 1
