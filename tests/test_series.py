"""Chart series: binned by when operations ended, bounded, in order."""

from __future__ import annotations

import math

import numpy as np

from cachestudio.engine.series import BIN_S, COL, LaneSeries, Ring


def rec(kind, start, end, outcome="ok"):
    return {"kind": kind, "start": start, "end": end, "outcome": outcome}


def test_records_land_in_the_bin_of_their_end_time():
    s = LaneSeries()
    s.add_records(
        [
            rec("read", 0.0, 0.001, "hit"),
            rec("read", 0.1, 0.102, "miss"),
            rec("write", 0.30, 0.31),
            rec("write", 0.3, 0.33, "error"),
        ]
    )
    assert s.close(now=0.26) == 0  # the first bin is not settled yet
    assert s.close(now=1.0) == 2
    ring = s.ring
    assert ring.view(COL["t"]).tolist() == [BIN_S, 2 * BIN_S]
    assert ring.view(COL["ops_s"]).tolist() == [2 / BIN_S, 2 / BIN_S]
    assert ring.view(COL["hit_ratio"])[0] == 0.5
    assert math.isnan(ring.view(COL["hit_ratio"])[1])  # no reads in the second bin
    assert ring.view(COL["errors_s"]).tolist() == [0, 1 / BIN_S]
    p50 = ring.view(COL["read_p50"])[0]
    assert math.isclose(p50, np.percentile([1.0, 2.0], 50), rel_tol=1e-6)  # milliseconds


def test_db_rates_come_from_counter_differences():
    s = LaneSeries()
    s.set_gauges(db_reads=10, db_writes=4, queue_depth=7)
    s.close(now=BIN_S + 0.31)
    s.set_gauges(db_reads=30, db_writes=4, queue_depth=2)
    s.close(now=2 * BIN_S + 0.31)
    assert s.ring.view(COL["db_reads_s"]).tolist() == [10 / BIN_S, 20 / BIN_S]
    assert s.ring.view(COL["queue_depth"]).tolist() == [7, 2]


def test_ring_is_bounded_and_ordered():
    r = Ring(2, capacity=5)
    for i in range(23):
        r.append([i, i * 10])
    assert len(r) == 5
    assert r.view(0).tolist() == [18, 19, 20, 21, 22]
    assert r.view(1).tolist() == [180, 190, 200, 210, 220]
    assert r.last(0) == 22
