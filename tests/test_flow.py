"""The flow view, offscreen, fed hand-built records. No blind sleeps: every wait is on a
condition (qtbot.waitUntil)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import time  # noqa: E402

import pytest  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtGui import QImage  # noqa: E402

from cachestudio.ui.flow import PATHS, FlowView, describe, rate_text  # noqa: E402
from cachestudio.ui.theme import THEMES  # noqa: E402

ALL = ["cache-aside", "write-through", "write-behind"]
_seq = iter(range(1, 10**9))


def rec(kind="read", outcome="hit", key="k1", version=3, ms=0.25, lane="cache-aside", detail=None):
    n = next(_seq)
    r = {
        "id": f"x#{n}",
        "lane": lane,
        "kind": kind,
        "key": key,
        "version": version,
        "start": 1.0,
        "end": 1.0 + ms / 1000.0,
        "outcome": outcome,
        "acked": outcome in ("hit", "miss", "ok"),
        "inc": 1,
    }
    if detail is not None:
        r["detail"] = detail
    return r


@pytest.fixture
def view(qtbot):
    v = FlowView()
    qtbot.addWidget(v)
    v.resize(1200, 600)
    v.show()
    yield v
    v.timer.stop()


def test_set_lanes_builds_nodes(view):
    view.set_lanes(["cache-aside"])
    assert view.node_names(0) == ["Clients", "Cache", "Database"]
    assert view.title(0) == "cache-aside"
    view.set_lanes(ALL)
    assert [view.title(i) for i in range(3)] == ALL
    assert view.node_names(0) == ["Clients", "Cache", "Database"]
    assert view.node_names(1) == ["Clients", "Cache", "Database"]
    assert view.node_names(2) == ["Clients", "Cache", "Database", "Write queue"]
    queues = sum("Write queue" in view.node_names(i) for i in range(3))
    assert queues == 1
    # every lane has the three common edges; write-behind has the three queue edges too
    assert view.edge_rate(0, "clients", "db") == "0/s"
    assert view.edge_rate(0, "queue", "db") == ""
    assert view.edge_rate(2, "db", "queue") == "0/s"


def test_tokens_move_and_vanish(view, qtbot):
    view.set_lanes(["cache-aside"])
    view.add_records(0, [rec("read", "miss", version=7)])
    qtbot.waitUntil(lambda: view.token_count(0) == 1, timeout=3000)
    tok = view.tokens[0]
    qtbot.waitUntil(lambda: tok.item.isVisible(), timeout=3000)
    first = tok.item.pos()
    qtbot.waitUntil(lambda: tok.item.pos() != first, timeout=3000)
    # a miss makes four hops (~1.4 s) and then disappears
    qtbot.waitUntil(lambda: view.token_count() == 0, timeout=5000)
    assert tok.item.scene() is None


def test_failed_path_lingers_then_vanishes(view, qtbot):
    view.set_lanes(["write-behind"])
    view.add_records(0, [rec("write", "rejected", lane="write-behind", detail="write queue full")])
    qtbot.waitUntil(lambda: view.token_count(0) == 1, timeout=3000)
    tok = view.tokens[0]
    queue_port = view.lanes[0].items["ports"]["queue"]

    # one hop to the write queue, where it stops and lingers
    def at_queue():
        d = tok.item.pos() - queue_port
        return d.manhattanLength() < 12

    qtbot.waitUntil(at_queue, timeout=3000)
    qtbot.waitUntil(lambda: view.token_count() == 0, timeout=5000)
    # one hop, then it lingered where it stopped: counted from the token's launch (when the test saw it
    # arrive depends on the machine's load)
    assert time.monotonic() - tok.t0 >= 0.35 + 0.5
    assert view.narration(0) == "write k1 v3: rejected, write queue full"


def test_paths_follow_the_strategies():
    assert PATHS["cache-aside"][("write", "ok")][0] == ("clients", "db", "cache", "clients")
    assert PATHS["cache-aside"][("write", "error")][0] == ("clients", "db")
    assert PATHS["write-through"][("write", "ok")][0] == ("clients", "cache", "db", "clients")
    assert PATHS["write-through"][("write", "error")][0] == ("clients", "cache", "db")
    assert PATHS["write-behind"][("write", "ok")][0] == ("clients", "queue", "cache", "clients")
    assert PATHS["write-behind"][("write", "rejected")][0] == ("clients", "queue")
    # a write that failed after the step that applies it: it stops where it failed
    assert PATHS["cache-aside"][("write", "indeterminate")][0] == ("clients", "db", "cache")
    assert PATHS["write-behind"][("write", "indeterminate")][0] == ("clients", "queue", "cache")
    assert ("write", "indeterminate") not in PATHS["write-through"]  # its DB write is its last step
    for s in ALL:
        assert PATHS[s][("read", "hit")][0] == ("clients", "cache", "clients")
        assert PATHS[s][("read", "miss")][0] == ("clients", "cache", "db", "cache", "clients")
        assert PATHS[s][("read", "error")][0] == ("clients", "cache", "db")


def test_narration_words():
    assert (
        describe("cache-aside", rec("read", "miss", key="k42", version=7, ms=0.41))
        == "read k42: miss → read DB v7 → set cache (0.41 ms)"
    )
    assert describe("cache-aside", rec("read", "hit", key="k3", version=12, ms=0.02)) == "read k3: hit v12 (0.02 ms)"
    w = dict(kind="write", outcome="ok", key="k5", version=19, ms=0.2)
    assert describe("cache-aside", rec(**w)) == "write k5 v19: DB write → delete cache key (0.20 ms)"
    assert describe("write-through", rec(**w)) == "write k5 v19: set cache → DB write (0.20 ms)"
    assert describe("write-behind", rec(**w)) == "write k5 v19: queued → set cache; DB write later (0.20 ms)"
    assert (
        describe("cache-aside", rec("read", "error", key="k8", detail="database is locked"))
        == "read k8: error: database is locked"
    )
    assert rate_text(1234) == "1.2k/s" and rate_text(35) == "35/s" and rate_text(0) == "0/s"


def test_narration_for_a_miss(view, qtbot):
    view.set_lanes(["cache-aside"])
    view.add_records(0, [rec("read", "miss", key="k42", version=7, ms=0.41)])
    qtbot.waitUntil(lambda: "miss" in view.narration(0), timeout=3000)
    assert "read DB v7" in view.narration(0)
    assert "showing" not in view.narration(0)  # a low rate: every record is shown
    assert view.lanes[0].items["narration"].text() == view.narration(0)


def test_low_rate_animates_every_record(view, qtbot):
    view.set_lanes(["write-through"])
    view.add_records(0, [rec("read", "hit"), rec("write", "ok"), rec("read", "miss")])
    seen = set()

    def all_launched():
        seen.update(id(t) for t in view.tokens)
        return len(seen) == 3

    qtbot.waitUntil(all_launched, timeout=3000)


def test_sampling_at_high_rate(view, qtbot):
    view.set_lanes(ALL)
    records = [rec("read", "hit" if i % 3 else "miss", key=f"k{i}") for i in range(5000)]
    view.add_records(0, records)
    t0 = time.monotonic()
    launched = set()

    def narrated():
        launched.update(id(t) for t in view.tokens if t.lane == 0)
        return "showing" in view.narration(0)

    qtbot.waitUntil(narrated, timeout=3000)
    assert "of 5,000 requests/s" in view.narration(0)
    qtbot.waitUntil(lambda: not view.lanes[0].pending, timeout=3000)
    launched.update(id(t) for t in view.tokens if t.lane == 0)
    assert 1 <= len(launched) <= 10
    assert view.token_count(1) == view.token_count(2) == 0
    # another big batch: only what the budget refilled since (8 a second) is sampled
    view.add_records(0, records)
    assert len(view.lanes[0].pending) <= 8 * (time.monotonic() - t0) + 1


def test_total_tokens_capped(view, qtbot):
    view.set_lanes(ALL)
    for lane in range(3):
        view.add_records(lane, [rec("read", "miss") for _ in range(4)])
    assert len(view.tokens) <= 150


def test_edge_rate_labels_count_every_record(view):
    view.set_lanes(ALL)
    view.add_records(0, [rec("read", "hit") for _ in range(1200)] + [rec("read", "miss") for _ in range(34)])
    assert view.edge_rate(0, "clients", "cache") == "1.2k/s"  # every read crosses it
    assert view.edge_rate(0, "cache", "db") == "34/s"  # the misses only
    assert view.edge_rate(0, "clients", "db") == "0/s"
    view.add_records(0, [rec("write", "ok") for _ in range(10)])
    assert view.edge_rate(0, "clients", "db") == "10/s"  # cache-aside writes the DB directly
    assert view.edge_rate(0, "cache", "db") == "44/s"  # ... then deletes the cache key
    wb = [rec("write", "ok", lane="write-behind") for _ in range(7)]
    wb += [rec("write", "rejected", lane="write-behind") for _ in range(3)]
    view.add_records(2, wb)
    assert view.edge_rate(2, "clients", "queue") == "10/s"
    assert view.edge_rate(2, "queue", "cache") == "7/s"
    assert view.edge_rate(2, "clients", "cache") == "7/s"
    assert view.edge_rate(1, "clients", "cache") == "0/s"


def test_gauges_queue_depth_and_flush_tokens(view, qtbot):
    view.set_lanes(ALL)
    view.set_capacity(2, 500)
    view.set_gauges(2, {"queue_depth": 123, "batches": 0, "db_writes": 0})
    assert view.queue_text(2) == "123 / 500"
    fill = view.lanes[2].items["queue_bar"][1]
    bar = view.lanes[2].items["queue_bar"][0]
    assert fill.rect().width() == pytest.approx(bar.rect().width() * 123 / 500)
    assert view.token_count() == 0
    view.set_gauges(2, {"queue_depth": 10, "batches": 2, "db_writes": 40})
    assert view.token_count(2) == 2
    qtbot.waitUntil(lambda: view.tokens and view.tokens[0].item.isVisible(), timeout=3000)
    assert view.tokens[0].item.brush().color().name().upper() == "#CC79A7"  # purple
    view.set_gauges(2, {"queue_depth": 10, "batches": 100, "db_writes": 2000})
    assert view.token_count(2) <= 2 + 4  # at most four a call
    qtbot.waitUntil(lambda: view.token_count() == 0, timeout=5000)
    # the other lanes have no queue
    view.set_gauges(0, {"queue_depth": 5, "batches": 9, "db_writes": 9})
    assert view.queue_text(0) == "" and view.token_count() == 0


def test_health_changes_title(view):
    view.set_lanes(ALL)
    view.set_health(2, "down")
    assert view.title(2) == "write-behind — down (restarting)"
    cache_box = view.lanes[2].items["nodes"]["cache"][0]
    assert cache_box.data(0) == "grey" and cache_box.pen().style() == Qt.PenStyle.DashLine
    assert view.lanes[2].items["nodes"]["queue"][0].data(0) == "grey"
    assert view.lanes[2].items["nodes"]["db"][0].data(0) == ""
    view.set_health(2, "running")
    assert view.title(2) == "write-behind"
    assert cache_box.data(0) == "" and cache_box.pen().style() == Qt.PenStyle.SolidLine
    view.set_health(0, "not responding")
    assert view.title(0) == "cache-aside — not responding"


def test_highlight_shows_key(view):
    view.set_lanes(ALL)
    view.highlight(1, "k77")
    assert view.selected_text(1) == "selected: k77"
    assert view.lanes[1].items["highlight"].isVisible()
    assert not view.lanes[0].items["highlight"].isVisible()
    view.highlight(-1, "")
    assert view.selected_text(1) == ""
    assert not view.lanes[1].items["highlight"].isVisible()


def test_injected_label(view):
    view.set_lanes(["cache-aside"])
    view.injected_label(0, "injected latency: db read +20 ms")
    item = view.lanes[0].items["injected"]
    assert item.isVisible() and "injected" in item.text() and "db read +20 ms" in item.text()
    view.injected_label(0, "")
    assert not item.isVisible()


def test_theme_change_keeps_state(view):
    view.set_lanes(ALL)
    view.set_health(2, "down")
    view.highlight(2, "k9")
    view.set_theme(THEMES["dark"])
    assert view.title(2) == "write-behind — down (restarting)"
    assert view.selected_text(2) == "selected: k9"
    assert view.backgroundBrush().color().name() == THEMES["dark"].window


def _feed(view):
    view.set_lanes(ALL)
    view.set_capacity(2, 10000)
    view.injected_label(1, "injected latency: db read +20 ms, db write +5 ms")
    view.add_records(0, [rec("read", "miss", key="k42", version=7, ms=0.41)])
    view.add_records(
        1,
        [rec("write", "ok", key="k5", version=19, ms=0.3, lane="write-through")]
        + [rec("read", "hit", lane="write-through") for _ in range(1500)],
    )
    view.add_records(
        2,
        [rec("write", "rejected", lane="write-behind", detail="write queue full")]
        + [rec("write", "ok", lane="write-behind") for _ in range(40)],
    )
    view.set_gauges(2, {"queue_depth": 6400, "batches": 3, "db_writes": 120})
    view.highlight(2, "k17")


@pytest.mark.parametrize(
    "theme,path", [("light", "/tmp/flow.png"), ("dark", "/tmp/flow-dark.png"), ("projector", "/tmp/flow-projector.png")]
)
def test_render_png(view, qtbot, theme, path):
    view.set_theme(THEMES[theme])
    view.resize(1200, 600)
    _feed(view)
    view.set_health(0, "down")
    qtbot.waitUntil(lambda: "miss" in view.narration(0) and bool(view.narration(1) and view.narration(2)), timeout=3000)
    qtbot.waitUntil(lambda: sum(t.item.isVisible() for t in view.tokens) >= 3, timeout=3000)
    assert view.grab().save(path)
    img = QImage(path)
    assert img.width() >= 1200 and img.height() >= 600
