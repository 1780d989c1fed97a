"""The live charts on their own (no labs): a ChartPanel fed by real LaneSeries filled from
generated, seeded operation records. Shared x range, labels that never overlap, y ranges
reset between runs, one percentile per lane, request marks, SVG export, and scale."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

import csv  # noqa: E402
import math  # noqa: E402
import xml.etree.ElementTree as ET  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PySide6.QtCore import QRectF  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from cachestudio.engine.outputs import OutputError  # noqa: E402
from cachestudio.engine.series import COL, LaneSeries  # noqa: E402
from cachestudio.ui import charts as charts_mod  # noqa: E402
from cachestudio.ui.charts import (  # noqa: E402
    CHART_NAMES,
    LATENCY_CHARTS,
    PERCENTILES,
    PLOTS,
    RATE_CHARTS,
    REQUEST_BUFFER,
    ChartPanel,
)
from cachestudio.ui.theme import THEMES  # noqa: E402

LANES3 = ["cache-aside", "write-through", "write-behind"]


def records(seed: int, until: float, rate: float = 120.0, latency_s: float = 0.002, start: float = 0.0):
    """Seeded operation records: reads (hit/miss) and writes, a few errors and rejections."""
    rng = np.random.default_rng(seed)
    out, t = [], start
    while True:
        t += rng.exponential(1.0 / rate)
        if t >= until:
            return out
        kind = "read" if rng.random() < 0.75 else "write"
        lat = float(rng.lognormal(math.log(latency_s), 0.6))
        u = rng.random()
        outcome = (
            "error"
            if u < 0.02
            else "rejected"
            if u < 0.04
            else ("hit" if rng.random() < 0.7 else "miss")
            if kind == "read"
            else "ok"
        )
        out.append({"kind": kind, "start": t, "end": t + lat, "outcome": outcome})


def lane_series(seed: int, until: float, **kw) -> LaneSeries:
    s = LaneSeries()
    s.add_records(records(seed, until, **kw))
    s.set_gauges(db_reads=int(until * 10), db_writes=int(until * 5), queue_depth=3)
    s.close(until + 1.0)
    return s


@pytest.fixture
def panel(qtbot):
    cp = ChartPanel()
    qtbot.addWidget(cp)
    cp.set_theme(THEMES["light"])
    cp.resize(1600, 600)
    cp.show()
    yield cp
    cp.close()


def feed(cp: ChartPanel, series: list, now: float, strategies=LANES3) -> None:
    cp.set_lanes(strategies[: len(series)], series)
    cp.touch(now)


def settle(cp: ChartPanel) -> None:
    cp.redraw_all()
    QApplication.processEvents()
    QApplication.processEvents()


def overlaps(a: QRectF, b: QRectF, tol: float = 0.5) -> bool:
    return (
        min(a.right(), b.right()) - max(a.left(), b.left()) > tol
        and min(a.bottom(), b.bottom()) - max(a.top(), b.top()) > tol
    )


def inside(inner: QRectF, outer: QRectF, tol: float = 0.75) -> bool:
    return (
        inner.left() >= outer.left() - tol
        and inner.top() >= outer.top() - tol
        and inner.right() <= outer.right() + tol
        and inner.bottom() <= outer.bottom() + tol
    )


# -- shared x range -----------------------------------------------------------------------


def test_every_visible_chart_shows_the_same_x_range_while_redrawn_one_at_a_time(panel):
    series = [lane_series(seed, 45.0) for seed in (1, 2, 3)]
    feed(panel, series, 5.0)
    settle(panel)
    for now in (12.0, 19.5, 31.0, 44.0):  # the range steps on at 20, 30, 40 and 50 s
        panel.touch(now)
        panel.redraw()  # one chart's data only ...
        want = panel.x_range()
        got = {i: tuple(panel.plots[i].getViewBox().viewRange()[0]) for i in panel.shown}
        assert all(r == pytest.approx(want) for r in got.values()), (now, want, got)  # ... every x range
    panel.show_charts(["read", "throughput", "hit", "errors"])
    panel.touch(58.0)
    panel.redraw()
    want = panel.x_range()
    assert want == (0.0, 60.0)
    assert all(tuple(panel.plots[i].getViewBox().viewRange()[0]) == pytest.approx(want) for i in panel.shown)


def test_an_unchanged_x_range_is_not_set_again(panel, monkeypatch):
    feed(panel, [lane_series(1, 20.0)], 15.0)
    settle(panel)
    calls = []
    for p in panel.plots:
        monkeypatch.setattr(p, "setXRange", lambda *a, **k: calls.append(a))
    for _ in range(20):
        panel.touch(15.5)
        panel.redraw()
    assert calls == []
    panel.touch(25.0)  # steps on: every shown chart at once
    panel.redraw()
    assert len(calls) == len(panel.shown)


# -- labels: never overlapping, never outside ---------------------------------------------


@pytest.mark.parametrize("size", [(1280, 720), (1920, 1080), (3840, 2160)])
@pytest.mark.parametrize("scale", [1.0, 1.35, 2.0])
def test_label_rects_never_overlap_and_plots_lie_inside(panel, size, scale):
    # three lanes with the same data: every end label wants the same spot
    series = [lane_series(7, 40.0) for _ in range(3)]
    panel.set_scale(scale)
    panel.resize(*size)
    feed(panel, series, 40.5)
    settle(panel)
    rects = panel.label_rects()
    names = [n for n, _ in rects]
    assert "key" in names and sum(n.startswith("title:") for n in names) == len(PLOTS)
    ends = [(n, r) for n, r in rects if n.startswith("end:")]
    assert len(ends) >= len(PLOTS)  # at least one lane label on each chart
    for a in range(len(rects)):
        for b in range(a + 1, len(rects)):
            assert not overlaps(rects[a][1], rects[b][1]), (size, scale, rects[a], rects[b])
    widget = QRectF(0, 0, panel.width(), panel.height())
    plot_rects = panel.plot_rects()
    assert len(plot_rects) == len(PLOTS)
    for r in plot_rects:
        assert r.width() > 0 and r.height() > 0 and inside(r, widget), (size, scale, r)
    for name, r in ends:  # an end label lies inside one plot area
        assert any(inside(r, p) for p in plot_rects), (name, r)
    for _, r in rects:
        assert inside(r, widget), (size, scale, r)


def test_end_labels_of_equal_lines_are_pushed_apart_on_one_chart(panel):
    series = [lane_series(11, 30.0) for _ in range(3)]
    feed(panel, series, 30.5)
    settle(panel)
    throughput = [r for n, r in panel.label_rects() if n.startswith("end:throughput:")]
    assert len(throughput) == 3
    tops = sorted(r.top() for r in throughput)
    assert tops[1] - tops[0] >= throughput[0].height() - 0.5 and tops[2] - tops[1] >= throughput[0].height() - 0.5


# -- reset ---------------------------------------------------------------------------------


def test_clear_run_resets_y_ranges_log_axes_included(panel):
    slow = [lane_series(s, 30.0, latency_s=2.0, rate=400.0) for s in (1, 2, 3)]  # ~2000 ms, ~1000 ops/s
    feed(panel, slow, 30.5)
    settle(panel)
    read_top = panel.plots[0].getViewBox().viewRange()[1][1]
    assert read_top > 3.0  # log10(ms): beyond 1000 ms
    assert panel.plots[2].getViewBox().viewRange()[1][1] > 500
    panel.clear_run()
    QApplication.processEvents()
    for i, p in enumerate(panel.plots):
        lo, hi = p.getViewBox().viewRange()[1]
        if i == 3:
            assert (lo, hi) == pytest.approx((0, 1.05))
        elif PLOTS[i][3]:
            assert hi < 2.5, (i, lo, hi)
        else:
            assert hi <= 1.5, (i, lo, hi)
    assert not any(label.isVisible() for *_, label in panel.labels)
    assert tuple(panel.plots[0].getViewBox().viewRange()[0]) == pytest.approx(panel.x_range())
    # the next run's data range the axes again (auto, not stuck at the reset range)
    fast = [lane_series(s, 20.0, latency_s=0.0005, rate=50.0) for s in (1, 2, 3)]
    feed(panel, fast, 20.5)
    settle(panel)
    lo, hi = panel.plots[0].getViewBox().viewRange()[1]
    assert hi < 1.5 and lo < 0.0  # p99 of ~0.5 ms: a few ms at most, on a log axis
    assert (
        panel.plots[2].getViewBox().viewRange()[1][1] <= 250
    )  # a round top above the data (steady axes), not the last run's


# -- percentile ----------------------------------------------------------------------------


def test_latency_charts_show_one_percentile_per_lane(panel):
    series = [lane_series(s, 30.0) for s in (1, 2, 3)]
    feed(panel, series, 30.5)
    assert panel.percentile == "p99" and PERCENTILES == ("p50", "p95", "p99")
    for p in PERCENTILES:
        panel.set_percentile(p)
        settle(panel)
        for i, kind in zip(LATENCY_CHARTS, ("read", "write")):
            assert len(panel.curves[i]) == 3  # one line per lane
            assert panel.plots[i].titleLabel.text.endswith(p)
            for lane, col, curve, _ in panel.curves[i]:
                assert col == COL[f"{kind}_{p}"]
                y = curve.getData()[1]
                want = np.log10(series[lane].ring.view(col)[-len(y) :])
                np.testing.assert_allclose(y, want)
    with pytest.raises(ValueError):
        panel.set_percentile("p42")


# -- request marks ---------------------------------------------------------------------------


def slow_motion(panel, seed: int) -> dict:
    """Two requests a second on three lanes, marks on: each lane's generated requests."""
    feed(panel, [lane_series(s, 30.0, rate=2.0) for s in (1, 2, 3)], 30.5)
    panel.set_request_marks(True)
    recs = {lane: records(seed + lane, 30.0, rate=2.0) for lane in range(3)}
    for lane, rs in recs.items():
        panel.add_requests(lane, rs)
    settle(panel)
    return recs


def test_slow_motion_hit_ratio_is_over_the_last_reads(panel):
    """At 2 requests a second the 0.25 s bins are mostly empty; the hit-ratio chart shows each
    lane's ratio over its last HIT_READS reads instead, at every read (recomputed here)."""
    from cachestudio.ui.charts import HIT_CHART, HIT_READS

    recs = slow_motion(panel, 40)
    for lane, curve in ((lane, curve) for lane, _, curve, _ in panel.curves[HIT_CHART]):
        reads = [r for r in recs[lane] if r["kind"] == "read"]
        want = []
        for k in range(len(reads)):
            last = reads[max(0, k - HIT_READS + 1) : k + 1]
            want.append(sum(r["outcome"] == "hit" for r in last) / len(last))
        assert list(curve.xData) == pytest.approx([r["start"] for r in reads])
        assert list(curve.yData) == pytest.approx(want)
    assert "last 10 reads" in panel.plots[HIT_CHART].titleLabel.text


def test_request_marks_draw_every_request_and_stay_bounded(panel):
    recs = slow_motion(panel, 20)
    n = sum(len(rs) for rs in recs.values())
    assert len(panel.marks[2].data) == n  # the throughput raster: one mark per request
    reads = sum(r["kind"] == "read" for rs in recs.values() for r in rs)
    assert len(panel.marks[0].data) == reads and len(panel.marks[1].data) == n - reads
    errors = sum(r["outcome"] in ("error", "rejected") for rs in recs.values() for r in rs)
    assert len(panel.marks[6].data) == errors
    # one row per lane, named on the y axis; the rate lines are hidden
    ticks = panel.plots[2].getAxis("left")._tickLevels[0]
    assert sorted(name for _, name in ticks) == ["CA", "WB", "WT"]
    assert {y for y in panel.marks[2].data["y"]} == {1.0, 2.0, 3.0}
    assert not any(curve.isVisible() for i in RATE_CHARTS for _, _, curve, _ in panel.curves[i])
    # bounded: a flood keeps the newest REQUEST_BUFFER per lane
    panel.add_requests(0, records(99, 30.0, rate=200.0, start=0.0))
    settle(panel)
    assert len(panel._requests[0]) == REQUEST_BUFFER
    panel.set_request_marks(False)
    settle(panel)
    assert panel.marks == {}
    assert all(curve.isVisible() for i in RATE_CHARTS for _, _, curve, _ in panel.curves[i])
    assert panel.plots[2].getAxis("left")._tickLevels is None


# -- export ----------------------------------------------------------------------------------


def test_export_svg_writes_valid_svg_and_never_replaces_a_link(panel, tmp_path):
    feed(panel, [lane_series(s, 20.0) for s in (1, 2)], 20.5)
    out = tmp_path / "charts.svg"
    assert panel.export_svg(out), panel.last_export_error
    root = ET.fromstring(out.read_bytes())
    assert root.tag.endswith("svg")
    # a dangling symlink: refused, the link left as it is
    dangling = tmp_path / "dangling.svg"
    dangling.symlink_to(tmp_path / "nowhere" / "x.svg")
    assert not panel.export_svg(dangling)
    assert dangling.is_symlink() and panel.last_export_error
    # a link to a file: the link stays, its target gets the SVG
    target = tmp_path / "target.svg"
    target.write_text("old")
    link = tmp_path / "link.svg"
    link.symlink_to(target)
    assert panel.export_svg(link)
    assert link.is_symlink() and ET.fromstring(target.read_bytes()).tag.endswith("svg")
    assert not panel.export_svg(tmp_path / "no-such-dir" / "x.svg")


def test_export_csv_writes_every_row_through_outputs_and_refuses_in_one_line(panel, tmp_path):
    feed(panel, [lane_series(s, 10.0) for s in (1, 2)], 10.5)
    out = tmp_path / "charts.csv"
    rows = panel.export_csv(out)
    with open(out, newline="", encoding="utf-8") as fh:
        table = list(csv.reader(fh))
    assert table[0][0] == "lane" and len(table) - 1 == rows > 0
    assert {r[0] for r in table[1:]} == set(LANES3[:2])
    dangling = tmp_path / "dangling.csv"
    dangling.symlink_to(tmp_path / "nowhere" / "x.csv")
    with pytest.raises(OutputError) as refused:
        panel.export_csv(dangling)
    assert dangling.is_symlink() and "\n" not in str(refused.value) and str(refused.value)
    with pytest.raises(OutputError):
        panel.export_csv(tmp_path / "no-such-dir" / "x.csv")


# -- scale -----------------------------------------------------------------------------------


def tick_px(cp: ChartPanel, i: int) -> int:
    return cp.plots[i].getAxis("left").style["tickFont"].pixelSize()


def title_px(cp: ChartPanel, i: int) -> int:
    return int(cp.plots[i].titleLabel.opts["size"].removesuffix("px"))


def test_set_scale_sizes_titles_ticks_and_lines(panel):
    feed(panel, [lane_series(1, 20.0)], 20.5)
    panel.set_scale(1.0)
    settle(panel)
    small_tick, small_title = tick_px(panel, 0), title_px(panel, 0)
    small_h = panel.plots[0].titleLabel.item.boundingRect().height()
    width = panel.curves[2][0][2].opts["pen"].widthF()
    left_w = panel.plots[5].getAxis("left").width()
    assert small_tick >= 11 and small_title >= 11
    panel.set_scale(2.0)
    settle(panel)
    assert tick_px(panel, 0) == 2 * small_tick and title_px(panel, 0) == 2 * small_title
    assert panel.plots[0].titleLabel.item.boundingRect().height() > 1.6 * small_h
    assert panel.curves[2][0][2].opts["pen"].widthF() == pytest.approx(2 * width)
    assert panel.plots[5].getAxis("left").width() > 1.6 * left_w  # wider: bigger tick text is not cut
    # the projector's theme alone (no set_scale yet): its font_scale decides, ≥ 14 px
    fresh = ChartPanel()
    try:
        fresh.set_theme(THEMES["projector"])
        assert fresh.scale == THEMES["projector"].font_scale
        assert (
            min(
                tick_px(fresh, 0),
                title_px(fresh, 0),
                charts_mod.text_px(charts_mod.AXIS_LABEL_PX, fresh.scale),
                charts_mod.text_px(charts_mod.KEY_PX, fresh.scale),
            )
            >= 14
        )
    finally:
        fresh.deleteLater()
    # repeated calls with the same value do nothing
    calls = []
    panel._restyle, restyle = (lambda: calls.append(1)), panel._restyle
    panel.set_scale(2.0)
    assert calls == []
    panel._restyle = restyle


# -- layout ----------------------------------------------------------------------------------


def test_show_charts_lays_out_only_those_and_picks_columns(panel):
    assert CHART_NAMES == ("read", "write", "throughput", "hit", "queue", "db", "errors", "anomalies")
    feed(panel, [lane_series(s, 20.0) for s in (1, 2, 3)], 20.5)
    panel.resize(1600, 360)  # wide and low: one row of four
    panel.show_charts(["read", "throughput", "hit", "errors"])
    settle(panel)
    assert panel.shown == [0, 2, 3, 6] and panel.columns == 4
    assert len(panel.plot_rects()) == 4
    assert all(panel.plots[i].scene() is None for i in (1, 4, 5, 7))
    panel.resize(1000, 700)  # squarer: two by two
    settle(panel)
    assert panel.columns == 2
    rects = panel.plot_rects()
    assert len({round(r.top()) for r in rects}) == 2
    assert max(r.width() for r in rects) - min(r.width() for r in rects) < 2  # columns equally wide
    panel.show_charts(None)
    settle(panel)
    assert panel.shown == list(range(8)) and len(panel.plot_rects()) == 8
