"""The auditor: names every anomaly of DESIGN.md §4 in one sentence, with its records.

* **stale read**: a read that began after version w of key k was acknowledged and
  returned a version older than w (or nothing).
* **lost write**: an acknowledged write whose version, after the run has drained, is
  newer than the version the store holds for its key; or, live, newer than the store's
  version once the node that held it has died with no durable queue
  (:meth:`LaneAuditor.node_gone`).
* **dirty cache**: the cache holds a version the store never committed (newer than the
  store's, or for a key the store lacks). Store versions only grow (the version guard),
  so a cached version above the store's was never committed.
* **stale cache**: the cache holds a version older than the store's, at rest.

**Indeterminate writes** (outcome ``indeterminate``: an error after the step that applies
the write, DESIGN.md §4) are neither acknowledged nor failed. The rule:

* never a lost write: it was never acknowledged, so the store may lack it at any time;
* a read that returns its version is no anomaly (nor is one that returns an older version,
  while nothing shows that it applied);
* once it is seen to have applied, it is part of what was committed: from the later of its
  own end and the end of the first read that returned its version, a read of its key that
  begins after that and returns an older version is a **stale read**, exactly as if it had
  been acknowledged then. (The later of the two, so that every read judged against it
  began after both records were written: the live auditor meets them in the history's
  order. Reads that began between the two are not judged against it.)
* dirty cache is judged at rest as for any write: a cached version the store never
  committed is dirty, whether its write was acknowledged, failed or indeterminate.

It works live (:meth:`LaneAuditor.observe`, counters move as records arrive) and at the
end (:meth:`LaneAuditor.finish`, against the real SQLite file and cache directory).

Memory stays bounded: for stale reads it keeps, per key, the step function
``M(t)`` = highest version acknowledged by time ``t`` (monotone in both), pruned to a
time horizon; for lost writes it keeps only acknowledged versions not yet seen in the
store (:meth:`confirm_store` drops the rest: a store version never goes down).
"""

from __future__ import annotations

import bisect
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from operator import itemgetter

from .history import INDETERMINATE

ANOMALY_KINDS = ("stale_read", "lost_write", "dirty_cache", "stale_cache")
_T = itemgetter(0)
#: Entries kept in each of the auditor's maps by (key, version) (the oldest go first).
MAP_KEEP = 50_000


def _bounded(table: OrderedDict, key, value) -> None:
    table[key] = value
    if len(table) > MAP_KEEP:
        table.popitem(last=False)


@dataclass
class Anomaly:
    kind: str
    lane: str
    key: str
    sentence: str
    records: list[str] = field(default_factory=list)
    at: float | None = None  # run time at which it happened, when known
    found_at: float | None = None  # run time at which it was found, if not when it happened

    def as_dict(self) -> dict:
        return {
            "kind": self.kind,
            "lane": self.lane,
            "key": self.key,
            "sentence": self.sentence,
            "records": self.records,
            "at": self.at,
            "found_at": self.found_at,
        }


def _v(version) -> str:
    return "nothing" if version is None else f"v{version}"


class LaneAuditor:
    def __init__(self, lane: str, settle_s: float = 0.5, horizon_s: float = 40.0, keep: int = 10_000):
        self.lane = lane
        self.settle_s = settle_s  # reads wait this long for writes that finished before them
        self.horizon_s = horizon_s  # no operation lasts longer than this
        self.keep = keep  # anomalies kept with their sentences (all are counted)
        self.steps: dict[str, list[tuple[float, int, str]]] = {}
        self.unconfirmed: dict[str, list[tuple[int, str, float, int | None]]] = {}  # version, rid, at, node
        self.write_ids: OrderedDict[tuple[str, int], str] = OrderedDict()
        #: When each remembered write ended: a dirty cache found at rest happened then.
        self.write_ends: OrderedDict[tuple[str, int], float] = OrderedDict()
        # indeterminate writes no read has returned yet: (key, version) -> (id, end)
        self.maybe: OrderedDict[tuple[str, int], tuple[str, float]] = OrderedDict()
        # reads that returned a version whose write's record had not come yet: -> first end
        self.early: OrderedDict[tuple[str, int], float] = OrderedDict()
        self.seen_ids: OrderedDict[str, None] = OrderedDict()  # indeterminate writes seen applied
        self.pending: deque[dict] = deque()
        self.latest_end = 0.0
        self.counts = dict.fromkeys(ANOMALY_KINDS, 0)
        self.anomalies: list[Anomaly] = []
        self._risk: int | None = None  # at risk as of the last timed store check
        #: Acknowledged writes that ended up to this time are never confirmed by a later read
        #: of the store: a cache server holding their queue died (``server_gone`` judges them).
        self.hold_upto = float("-inf")

    # -- live ------------------------------------------------------------------------

    def observe(self, records: list[dict]) -> list[Anomaly]:
        """Take new operation records; return the anomalies they revealed."""
        found: list[Anomaly] = []
        for rec in records:
            kind = rec["kind"]
            if kind == "write":
                key, version = rec["key"], rec["version"]
                self._remember(key, version, rec["id"], rec["end"])
                seen = self.early.pop((key, version), None)  # a read returned it already
                if rec["acked"]:
                    self._acked(key, version, rec["end"], rec["id"], rec.get("node"))
                elif rec["outcome"] == INDETERMINATE:
                    self._indeterminate(key, version, rec["id"], rec["end"], seen)
            elif kind == "read":
                if rec["acked"]:
                    if rec["version"] is not None:
                        self._returned(rec["key"], rec["version"], rec["end"])
                    self.pending.append(rec)
            else:
                continue
            if rec["end"] > self.latest_end:
                self.latest_end = rec["end"]
        self._judge(self.latest_end - self.settle_s, found)
        return found

    def _remember(self, key: str, version: int, rid: str, end: float | None = None) -> None:
        _bounded(self.write_ids, (key, version), rid)
        if end is not None:
            _bounded(self.write_ends, (key, version), end)

    def _indeterminate(self, key: str, version: int, rid: str, end: float, seen: float | None) -> None:
        """An indeterminate write (``seen``: the end of the first read that returned its
        version, if its record came first): part of what was committed once a read returned it."""
        if seen is not None:
            self._applied(key, version, max(seen, end), rid)
        else:
            _bounded(self.maybe, (key, version), (rid, end))

    def _returned(self, key: str, version: int, end: float) -> None:
        """A read returned ``version`` of ``key`` at ``end``."""
        found = self.maybe.pop((key, version), None)
        if found is not None:
            rid, wrote_end = found
            self._applied(key, version, max(end, wrote_end), rid)
        elif (key, version) not in self.write_ids:  # its write's record may come later
            first = self.early.get((key, version))
            if first is None or end < first:
                _bounded(self.early, (key, version), end)

    def _applied(self, key: str, version: int, at: float, rid: str) -> None:
        _bounded(self.seen_ids, rid, None)
        self._step(key, version, at, rid)

    def _acked(self, key: str, version: int, at: float, rid: str, node: int | None = None) -> None:
        self.unconfirmed.setdefault(key, []).append((version, rid, at, node))
        self._step(key, version, at, rid)

    def _step(self, key: str, version: int, at: float, rid: str) -> None:
        """From ``at`` on, reads of ``key`` must return ``version`` or newer."""
        steps = self.steps.setdefault(key, [])
        i = bisect.bisect_right(steps, at, key=_T)
        if i and steps[i - 1][1] >= version:
            return  # an earlier acknowledgement already covers this version
        j = i
        while j < len(steps) and steps[j][1] <= version:
            j += 1
        steps[i:j] = [(at, version, rid)]

    def _judge(self, upto: float, found: list[Anomaly]) -> None:
        pending = self.pending
        while pending and pending[0]["end"] <= upto:
            self._check_read(pending.popleft(), found)

    def _check_read(self, rec: dict, found: list[Anomaly]) -> None:
        steps = self.steps.get(rec["key"])
        if not steps:
            return
        i = bisect.bisect_left(steps, rec["start"], key=_T)  # acknowledged strictly before
        if not i:
            return
        at, newest, wid = steps[i - 1]
        got = rec["version"]
        if got is None or got < newest:
            self._add(
                found,
                Anomaly(
                    "stale_read",
                    self.lane,
                    rec["key"],
                    f"read {rec['key']} at {rec['start']:.2f} s returned {_v(got)}; "
                    + (
                        f"v{newest} (a write that failed but applied) was read by {at:.2f} s"
                        if wid in self.seen_ids
                        else f"v{newest} was acknowledged at {at:.2f} s"
                    ),
                    [rec["id"], wid],
                    rec["start"],
                ),
            )

    def _add(self, found: list[Anomaly], anomaly: Anomaly) -> None:
        self.counts[anomaly.kind] += 1
        if len(self.anomalies) < self.keep:
            self.anomalies.append(anomaly)
        found.append(anomaly)

    def at_risk(self) -> int:
        """Acknowledged writes the store did not hold (lost if the node died then).

        After a timed check (``confirm_store(..., checked_at=t)``): the writes acknowledged
        by ``t`` that the store did not hold at ``t``, so a synchronous write (acknowledged
        after its commit) is never at risk. Before any timed check: every unconfirmed write.
        """
        if self._risk is not None:
            return self._risk
        return sum(len(v) for v in self.unconfirmed.values())

    def confirm_store(self, store: dict[str, int], checked_at: float | None = None) -> None:
        """Forget acknowledged writes the store already holds (or has overtaken).

        ``checked_at``: the run time at which ``store`` was read (after every record
        observed so far), which fixes what :meth:`at_risk` reports until the next check.
        """
        for key in list(self.unconfirmed):
            held = store.get(key)
            if held is None:
                continue
            left = [w for w in self.unconfirmed[key] if w[0] > held or w[2] <= self.hold_upto]
            if left:
                self.unconfirmed[key] = left
            else:
                del self.unconfirmed[key]
        self._risk = (
            None
            if checked_at is None
            else sum(1 for writes in self.unconfirmed.values() for w in writes if w[2] <= checked_at)
        )

    def node_gone(self, store: dict[str, int], at: float, node: int | None = None) -> list[Anomaly]:
        """The node that held the unconfirmed writes died with no durable queue: judge now.

        ``store`` is read after the node died and before anything that node held could
        reach it: a version the store does not hold by then can never arrive (store
        versions only grow, and only the dead node held it), so that write is lost,
        whatever later writes to its key do. Waiting for the end of the run would let a
        later write to the same key hide the loss. ``node``: of a lane with several
        nodes, the one that died (the others' writes are theirs to deliver); None: all.
        """
        found: list[Anomaly] = []
        if node is None:
            mine, self.unconfirmed = self.unconfirmed, {}
        else:
            mine = {}
            for key in list(self.unconfirmed):
                writes = self.unconfirmed[key]
                gone = [w for w in writes if w[3] == node]
                if gone:
                    mine[key] = gone
                    left = [w for w in writes if w[3] != node]
                    if left:
                        self.unconfirmed[key] = left
                    else:
                        del self.unconfirmed[key]
        self._judge_unconfirmed(
            store,
            found,
            lambda held: f"held {_v(held)} when its node died (found at {at:.2f} s)",
            found_at=at,
            writes=mine,
        )
        self._risk = 0 if node is None else None  # the others' risk: counted again at the next check
        return found

    def server_gone(self, after: float, upto: float, store_at) -> list[Anomaly]:
        """The cache server holding the lane's durable queues died (it may not have kept
        them): judge the unconfirmed writes acknowledged in (``after``, ``upto``] against
        ``store_at(their (key, version)s)``, the store at its death (the commits before it,
        and those of these very writes, which only a queue that kept them can have made)."""
        mine: dict = {}
        for key in list(self.unconfirmed):
            writes = self.unconfirmed[key]
            held = [w for w in writes if after < w[2] <= upto]
            if held:
                mine[key] = held
                left = [w for w in writes if not after < w[2] <= upto]
                if left:
                    self.unconfirmed[key] = left
                else:
                    del self.unconfirmed[key]
        store = store_at({(key, w[0]) for key, writes in mine.items() for w in writes})
        found: list[Anomaly] = []
        self._judge_unconfirmed(
            store, found, lambda held: f"held {_v(held)} when the cache server holding its queue died", writes=mine
        )
        return found

    def _judge_unconfirmed(
        self,
        store: dict[str, int],
        found: list[Anomaly],
        held_words,
        found_at: float | None = None,
        writes: dict | None = None,
    ) -> None:
        """Every unconfirmed acknowledged write (of ``writes``, else all) newer than
        ``store`` is a lost write."""
        for key, of_key in sorted((self.unconfirmed if writes is None else writes).items()):
            held = store.get(key)
            for version, rid, t, _node in of_key:
                if held is None or version > held:
                    self._add(
                        found,
                        Anomaly(
                            "lost_write",
                            self.lane,
                            key,
                            f"write {key} v{version} was acknowledged at {t:.2f} s but the store {held_words(held)}",
                            [rid],
                            t,
                            found_at=found_at,
                        ),
                    )

    def prune(self) -> None:
        """Collapse step functions older than the horizon (reads that old are judged)."""
        cutoff = self.latest_end - self.horizon_s
        if cutoff <= 0:
            return
        for steps in self.steps.values():
            k = bisect.bisect_left(steps, cutoff, key=_T)
            if k > 1:
                del steps[: k - 1]

    # -- at rest ---------------------------------------------------------------------

    def finish(self, store: dict[str, int], cache: dict[str, int]) -> list[Anomaly]:
        """Judge what is left, then check the drained store and the cache at rest."""
        found: list[Anomaly] = []
        self._judge(float("inf"), found)
        self._judge_unconfirmed(store, found, lambda held: f"holds {_v(held)} after draining")
        self.unconfirmed.clear()
        self._risk = None
        for key, cached in sorted(cache.items()):
            held = store.get(key)
            rid = self.write_ids.get((key, cached))
            if held is None or cached > held:
                self._add(
                    found,
                    Anomaly(
                        "dirty_cache",
                        self.lane,
                        key,
                        f"cache holds {key} v{cached}, a version the store never committed (store has {_v(held)})",
                        [rid] if rid else [],
                        at=self.write_ends.get((key, cached)),  # when the write that cached it failed
                    ),
                )
            elif cached < held:
                self._add(
                    found,
                    Anomaly(
                        "stale_cache",
                        self.lane,
                        key,
                        f"cache holds {key} v{cached} at rest while the store has v{held}",
                        [rid] if rid else [],
                    ),
                )
        return found


def audit(records: list[dict], store: dict[str, int], cache: dict[str, int], lane: str) -> LaneAuditor:
    """Audit a whole history of one lane at once (records in any order)."""
    auditor = LaneAuditor(lane, settle_s=0.0)
    ops = sorted(
        (r for r in records if r.get("lane") == lane and r["kind"] in ("read", "write")), key=itemgetter("end")
    )
    # Writes first, so that every read is judged against every acknowledgement.
    auditor.observe([r for r in ops if r["kind"] == "write"])
    auditor.observe([r for r in ops if r["kind"] == "read"])
    auditor.finish(store, cache)
    return auditor
