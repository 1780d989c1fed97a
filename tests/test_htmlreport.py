"""The HTML run report: one self-contained page, well formed, faithful to the summary, with
every user-influenced string escaped, rendered by a real browser into a non-blank page."""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import shutil
import subprocess
from html.parser import HTMLParser

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cachestudio.engine import htmlreport
from cachestudio.engine.config import LaneConfig, Latency
from cachestudio.engine.history import read_history
from cachestudio.engine.runner import Plan, run

STRATEGIES = ("cache-aside", "write-through", "write-behind")
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _Ticks:
    """Stands in for a recording writer: keeps the gauges of every tick (DB counters, queue)."""

    def __init__(self):
        self.ticks: list[dict] = []

    def due(self, now):
        return True

    def tick(self, now, state):
        self.ticks.append({"t": now, **state})

    def __getattr__(self, name):  # ops, event, anomalies, final, close: nothing to keep
        return lambda *a, **k: None


def _header(plan: Plan, title=None, description=None) -> dict:
    return {
        "app": "cachestudio 0.1.0",
        "created": "2026-12-01T08:00:00+00:00",
        "machine": {"python": "3.11", "platform": "Linux", "cpus": os.cpu_count()},
        "scenario": "test-crash",
        "title": title,
        "description": description,
        "plan": {
            "duration_s": plan.duration_s,
            "seed": plan.seed,
            "crash_at": list(plan.crash_at),
            "outages": [list(o) for o in plan.outages],
            "bursts": [],
            "slow_db": [],
            "slow_cache": [],
            "cold_at": [],
            "stampedes": [],
            "restart_delay_s": plan.restart_delay_s,
        },
        "lanes": [dataclasses.asdict(c) for c in plan.lanes],
    }


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """One real three-lane run with a DB outage and a crash, and its report."""
    d = tmp_path_factory.mktemp("report")
    lanes = [LaneConfig(s, seed=11) for s in STRATEGIES]
    lanes[1] = dataclasses.replace(lanes[1], latency=Latency(db_write_ms=0.5))  # an injected knob, differing
    # write-behind flushes after the run has ended, so every write it acknowledged before the
    # crash is lost, however loaded the machine: the report always has anomalies to show
    lanes[2] = dataclasses.replace(
        lanes[2],
        write_behind=dataclasses.replace(
            lanes[2].write_behind, flush_interval_s=10.0, batch_size=100_000, capacity=100_000
        ),
    )
    plan = Plan(lanes=lanes, duration_s=3, crash_at=[1.5], outages=[(0.5, 0.5)])
    ticks = _Ticks()
    summary = run(plan, history=d / "history.jsonl", recorder=ticks)
    records = read_history(d / "history.jsonl")
    names = [ln["strategy"] for ln in summary["lanes"]]
    series = htmlreport.series_from_history(
        records,
        names,
        summary["ended_at_s"],
        anomalies={ln["strategy"]: ln["anomaly_list"] for ln in summary["lanes"]},
        ticks=ticks.ticks,
    )
    header = _header(plan, "Crash & outage <workshop>", "A DB outage at 0.5 s, then the node dies at 1.5 s.")
    page = htmlreport.render_report(summary, header, series)
    path = d / "report.html"
    path.write_text(page, encoding="utf-8")
    return {
        "summary": summary,
        "header": header,
        "series": series,
        "records": records,
        "html": page,
        "path": path,
        "dir": d,
        "ticks": ticks.ticks,
    }


class Checker(HTMLParser):
    """Checks that every element is closed in order and that nothing is loaded from outside;
    collects the text, the summary table's cells and the fault and anomaly blocks."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.text: list[str] = []
        self.rows: dict[str, dict[str, str]] = {}  # summary table: lane -> column -> text
        self.fault_rows: dict[tuple, dict[str, str]] = {}  # (fault start, lane) -> column -> text
        self.faults: list[dict] = []
        self.groups: list[dict] = []
        self.svgs = 0
        self._table = None
        self._lane = None
        self._fault = None
        self._col = None
        self._cell: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for name in ("src", "href", "xlink:href", "action", "poster", "srcset"):
            v = (a.get(name) or "").strip().lower()
            if v.startswith(("http:", "https:", "//", "ftp:")):
                self.errors.append(f"external resource: <{tag} {name}={v}>")
        if tag == "script":
            self.errors.append("a script")
        if tag == "link" and "stylesheet" in (a.get("rel") or ""):
            self.errors.append("an external stylesheet")
        if tag == "style" or tag == "svg":
            pass
        if "url(" in (a.get("style") or ""):
            self.errors.append("url() in a style attribute")
        if tag == "svg" and "chart" in (a.get("class") or ""):
            self.svgs += 1
        if tag == "table":
            self._table = (a.get("class") or "").split()
        if tag == "div" and "fault" in (a.get("class") or "").split():
            self._fault = a.get("data-start")
            self.faults.append({"kind": a.get("data-kind"), "start": a.get("data-start")})
        if tag == "tr" and a.get("data-lane"):
            self._lane = a["data-lane"]
        if tag in ("td", "th") and a.get("data-col"):
            self._col = a["data-col"]
            self._cell = []
        if tag == "details":
            self.groups.append(
                {
                    "count": a.get("data-count"),
                    "kind": a.get("data-kind"),
                    "lane": a.get("data-lane"),
                    "text": [],
                    "items": 0,
                }
            )
        if tag == "li" and "details" in self.stack:
            self.groups[-1]["items"] += 1
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        if tag not in VOID and tag not in {"path", "line", "rect", "circle", "polyline"}:
            self.errors.append(f"self-closed non-void element <{tag}/>")

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
            return
        self.stack.pop()
        if tag in ("td", "th") and self._col is not None:
            text = "".join(self._cell).strip()
            if self._table and "summary" in self._table:
                self.rows.setdefault(self._lane, {})[self._col] = text
            elif self._table and "faulttab" in self._table:
                self.fault_rows.setdefault((self._fault, self._lane), {})[self._col] = text
            self._col = None
        if tag == "tr":
            self._lane = None
        if tag == "table":
            self._table = None

    def handle_data(self, data):
        self.text.append(data)
        if self._col is not None:
            self._cell.append(data)
        if self.groups and "details" in self.stack:
            self.groups[-1]["text"].append(data)

    def close(self):
        super().close()
        if self.stack:
            self.errors.append(f"unclosed: {self.stack}")


def check(page: str) -> Checker:
    c = Checker()
    c.feed(page)
    c.close()
    assert c.errors == []
    assert page.startswith("<!DOCTYPE html>")
    return c


def _number(text: str) -> float | None:
    t = text.replace(",", "").replace("%", "").strip()
    return None if t in ("—", "") else float(t)


def _close(shown: float | None, value, pct=False) -> bool:
    if value is None:
        return shown is None
    value = float(value) * (100 if pct else 1)
    if shown is None:
        return False
    return math.isclose(shown, value, rel_tol=5e-3, abs_tol=0.051 if pct or value != int(value) else 0)


def test_the_page_is_well_formed_and_self_contained(report):
    c = check(report["html"])
    assert c.svgs == len(htmlreport.CHARTS)
    assert "http://" not in report["html"].replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in report["html"]
    assert "@media print" in report["html"]
    assert 'name="viewport"' in report["html"]


def test_the_summary_table_has_the_summary_numbers(report):
    c = check(report["html"])
    summary = report["summary"]
    assert list(c.rows) == [ln["strategy"] for ln in summary["lanes"]]
    for ln in summary["lanes"]:
        row = c.rows[ln["strategy"]]
        lat = ln["latency_ms"]
        expect = {
            "ops": ln["ops"],
            "ops_per_s": ln["ops_per_s"],
            "read_p50": lat["read"]["p50"],
            "read_p99": lat["read"]["p99"],
            "write_p50": lat["write"]["p50"],
            "write_p99": lat["write"]["p99"],
            "db_reads": ln["db"]["reads"],
            "db_writes": ln["db"]["writes"],
            "errors": ln["errors"],
            "rejected": ln["rejected"],
            "incarnations": ln["incarnations"],
            **ln["anomalies"],
        }
        for col, value in expect.items():
            assert _close(_number(row[col]), value), (ln["strategy"], col, row[col], value)
        assert _close(_number(row["hit_ratio"]), ln["hit_ratio"], pct=True)
    # the crash restarted every lane and write-behind lost writes: the run exercised the report
    assert all(ln["incarnations"] == 2 for ln in summary["lanes"])
    assert summary["lanes"][2]["anomalies"]["lost_writes"] > 0
    # the lane with injected latency says so
    inj = [ln["strategy"] for ln in summary["lanes"] if ln["injected"]]
    assert inj == ["write-through"]
    assert "injected latency: db write +0.5 ms" in "".join(c.text)


def test_each_fault_window_and_what_it_did_appears(report):
    c = check(report["html"])
    faults = report["summary"]["faults"]
    assert [f["kind"] for f in faults] == ["outage-start", "crash"]
    assert [(f["kind"], f["start"]) for f in c.faults] == [(f["kind"], str(f["start"])) for f in faults]
    text = "".join(c.text)
    for f in faults:
        assert f["name"] in text and f["detail"] in text
        for lane, v in f["lanes"].items():
            row = c.fault_rows[(str(f["start"]), lane)]
            for col in ("ops", "errors", "rejected", "read_p99_ms", "write_p99_ms", "stale_reads", "lost_writes"):
                assert _close(_number(row[col]), v[col]), (f["kind"], lane, col, row[col], v[col])


def _expected_groups(summary) -> dict[tuple, int]:
    """Grouping recomputed here: the latest fault window holding ``at``, else ``found_at``."""
    out: dict[tuple, int] = {}
    for ln in summary["lanes"]:
        for a in ln["anomaly_list"]:
            cause = "no fault"
            for t in (a["at"], a["found_at"]):
                if t is None:
                    continue
                hits = [f for f in summary["faults"] if f["start"] <= t < f["end"]]
                if hits:
                    f = max(hits, key=lambda f: f["start"])
                    cause = f"{f['name']} at {f['start']:.2f} s"
                    break
            out[(cause, a["lane"], a["kind"])] = out.get((cause, a["lane"], a["kind"]), 0) + 1
    return out


def test_anomalies_are_grouped_by_cause_with_their_counts(report):
    summary = report["summary"]
    expected = _expected_groups(summary)
    assert expected, "the run should have found anomalies"
    groups = htmlreport.group_anomalies(summary)
    assert {(g["cause"], g["lane"], g["kind"]): g["count"] for g in groups} == expected
    assert any(cause.startswith("crash at") and kind == "lost_write" for cause, _, kind in expected)
    c = check(report["html"])
    shown = {(g["lane"], g["kind"], int(g["count"])) for g in c.groups}
    for (cause, lane, kind), n in expected.items():
        assert (lane, kind, n) in shown
        block = next("".join(g["text"]) for g in c.groups if (g["lane"], g["kind"], int(g["count"])) == (lane, kind, n))
        assert cause in block and f"{n:,}" in block
    for g in c.groups:  # every sentence up to 20, then "N more"
        n = int(g["count"])
        assert g["items"] == min(n, htmlreport.MAX_SENTENCES) + (n > htmlreport.MAX_SENTENCES)
        if n > htmlreport.MAX_SENTENCES:
            assert f"{n - htmlreport.MAX_SENTENCES:,} more" in "".join(g["text"])


def test_a_large_group_lists_twenty_sentences_then_how_many_more(report):
    summary = copy.deepcopy(report["summary"])
    crash = next(f for f in summary["faults"] if f["kind"] == "crash")
    lane = summary["lanes"][2]
    lane["anomaly_list"] = [
        {
            "kind": "lost_write",
            "lane": lane["strategy"],
            "key": f"k{i % 7}",
            "sentence": f"write k{i % 7} v{i} was lost",
            "records": [],
            "at": crash["start"],
            "found_at": crash["start"],
        }
        for i in range(htmlreport.MAX_SENTENCES + 13)
    ]
    for other in summary["lanes"][:2]:
        other["anomaly_list"] = []
    c = check(htmlreport.render_report(summary, report["header"], {}))
    assert [(g["lane"], g["count"]) for g in c.groups] == [(lane["strategy"], str(htmlreport.MAX_SENTENCES + 13))]
    g = c.groups[0]
    text = "".join(g["text"])
    assert g["items"] == htmlreport.MAX_SENTENCES + 1 and "13 more" in text
    assert f"{crash['name']} at {crash['start']:.2f} s" in text
    assert "keys k0, k1, k2, k3, k4" in text  # the five most frequent (k0..k4 five times each, k5, k6 four)


def test_given_groups_are_shown_as_given(report):
    groups = [
        {
            "cause": "crash at 1.55 s",
            "lane": "write-behind",
            "kind": "lost_write",
            "count": 4321,
            "keys": ["k1", "k2"],
            "line": "crash at 1.55 s — write-behind: 4,321 lost writes (keys k1, k2)",
        }
    ]
    page = htmlreport.render_report(report["summary"], report["header"], report["series"], groups)
    c = check(page)
    assert [(g["lane"], g["kind"], g["count"]) for g in c.groups] == [("write-behind", "lost_write", "4321")]
    assert groups[0]["line"] in "".join(c.groups[0]["text"])


def test_series_from_history_bins_like_the_live_charts(report):
    series, records, summary = report["series"], report["records"], report["summary"]
    for ln in summary["lanes"]:
        s = series[ln["strategy"]]
        n = len(s["t"])
        assert n == math.ceil(summary["ended_at_s"] / 0.25 - 1e-9)
        assert all(len(v) == n for v in s.values())
        ops = [r for r in records if r["lane"] == ln["strategy"] and r["kind"] in ("read", "write")]
        # every operation that ended inside the binned time is counted once
        binned = sum(v * 0.25 for v in s["ops_s"])
        assert round(binned) == sum(r["end"] < n * 0.25 for r in ops)
        # the DB writes per second add up to the DB counter of the last tick in the binned time
        last = [t for t in report["ticks"] if t["t"] <= n * 0.25][-1]
        i = [x["strategy"] for x in summary["lanes"]].index(ln["strategy"])
        assert round(sum(v * 0.25 for v in s["db_writes_s"])) == last["lanes"][i]["totals"]["db_writes"]
        # the cumulative lost writes end where the dated anomalies of the list end
        dated = [a for a in ln["anomaly_list"] if a["kind"] == "lost_write" and (a["at"] or a["found_at"]) is not None]
        assert s["lost_writes"][-1] == len(dated)


def test_downsampling_keeps_spikes_and_bounds_points():
    t = [i * 0.25 for i in range(20_000)]
    y = [1.0] * 20_000
    y[12_345] = 500.0
    y[777] = -3.0
    y[5000:5200] = [math.nan] * 200
    td, yd = htmlreport.downsample(t, y, 1500)
    assert len(td) <= 1500
    assert max(v for v in yd if not math.isnan(v)) == 500.0
    assert min(v for v in yd if not math.isnan(v)) == -3.0
    assert any(math.isnan(v) for v in yd)  # the gap stays a gap
    assert list(td) == sorted(td)


def test_a_long_run_is_downsampled_in_the_page(report):
    n = 30_000
    series = {
        name: {
            c: [i * 0.25 if c == "t" else float(i % 97) for i in range(n)]
            for c in (
                "t",
                "ops_s",
                "read_p99",
                "write_p99",
                "hit_ratio",
                "queue_depth",
                "db_writes_s",
                "stale_reads",
                "lost_writes",
            )
        }
        for name in STRATEGIES
    }
    page = htmlreport.render_report(report["summary"], report["header"], series)
    check(page)
    assert len(page) < 2_500_000
    short = htmlreport.render_report(report["summary"], report["header"], report["series"])
    assert len(page) > len(short)


def test_a_calm_one_lane_run_with_no_data_renders():
    summary = {
        "seed": 1,
        "duration_s": 2,
        "status": "ok",
        "faults": [],
        "events": [],
        "lanes": [
            {
                "strategy": "cache-aside",
                "ops": 10,
                "ops_per_s": 5.0,
                "reads": 8,
                "writes": 2,
                "hit_ratio": None,
                "latency_ms": {"read": {"p50": None, "p95": None, "p99": None}, "write": {}},
                "db": {},
                "errors": 0,
                "rejected": 0,
                "anomalies": {},
                "anomaly_list": [],
                "incarnations": 1,
                "injected": None,
            }
        ],
    }
    nan = float("nan")
    series = {
        "cache-aside": {
            c: [0.25 * (i + 1) if c == "t" else nan for i in range(8)]
            for c in ("t",) + tuple(col for _, cols, _, _ in htmlreport.CHARTS for col in cols)
        }
    }
    page = htmlreport.render_report(summary, {}, series)
    c = check(page)
    text = "".join(c.text)
    assert "Cache Studio run" in text
    assert "No fault happened in this run." in text
    assert "The auditor found no anomaly in this run." in text
    assert text.count("no data recorded for this chart") == len(htmlreport.CHARTS)
    assert list(c.rows) == ["cache-aside"]
    # nothing at all: still a page
    check(htmlreport.render_report({}, {}, {}))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(min_size=1, max_size=60))
def test_user_text_is_escaped(report, text):
    summary = copy.deepcopy(report["summary"])
    summary["events"][0]["detail"] = text
    lane = next(ln for ln in summary["lanes"] if ln["anomaly_list"])
    lane["anomaly_list"][0]["sentence"] = "sentence: " + text
    lane["anomaly_list"][0]["key"] = text
    header = dict(report["header"], title=text, description="about " + text)
    page = htmlreport.render_report(summary, header, {})
    c = check(page)
    body = "".join(c.text)
    for s in (text, "about " + text, "sentence: " + text):
        assert s in body


def _chromium_shot(page_path, out, width, height, tmp):
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium not installed (apt-get install chromium)")
        pytest.skip("chromium not installed (apt-get install chromium)")
    subprocess.run(
        [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={tmp / 'profile'}",
            f"--screenshot={out}",
            f"--window-size={width},{height}",
            page_path.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert out.exists()
    from PySide6.QtGui import QImage  # a test may use Qt; the engine never does

    img = QImage(str(out))
    assert not img.isNull()
    assert (img.width(), img.height()) == (width, height)
    return img


def _pixels(img):
    import numpy as np

    img = img.convertToFormat(img.Format.Format_RGB32)
    ptr = img.constBits()
    a = np.frombuffer(ptr, dtype=np.uint8, count=img.sizeInBytes()).reshape(img.height(), img.bytesPerLine())
    return a[:, : img.width() * 4].reshape(img.height(), img.width(), 4)[:, :, 2::-1].astype(int)  # BGRA -> RGB


@pytest.mark.parametrize("width,height", [(1280, 2400), (420, 3600)])  # the phone's is long enough for charts
def test_a_browser_renders_the_page(report, width, height):
    out = report["dir"] / f"report-{width}.png"
    img = _chromium_shot(report["path"], out, width, height, report["dir"])
    px = _pixels(img)
    flat = px.reshape(-1, 3)
    colours = len({tuple(p) for p in flat[::7].tolist()})
    assert colours > 50
    assert (flat.sum(axis=1) < 600).mean() > 0.02  # not a blank page
    for hexcol in htmlreport.LANE_COLOURS.values():  # every lane's colour is drawn
        rgb = [int(hexcol[i : i + 2], 16) for i in (1, 3, 5)]
        near = (abs(flat - rgb).sum(axis=1) < 40).sum()
        assert near > 40, hexcol
