"""A run report as one self-contained HTML page: a hand-out for a workshop.

:func:`render_report` turns what a run produced (its summary, DESIGN.md §6; a header
describing the plan and the knobs, as a recording's header; the chart series, as
:mod:`.series` bins them) into one HTML5 document: no script, no external resource, the
CSS inline, the charts inline SVG drawn here (one line per lane, Okabe–Ito colours and
a dash pattern per lane so that it reads in grey print, fault windows shaded). It prints
on A4 (charts and tables are not split across pages) and reads on a phone. A strategy's
colour and dash, and a fault's name, come from their declarations (engine/strategykinds.py,
engine/faultkinds.py): the window draws a lane in the same colour.

Every string that comes from the data (keys, details, titles) is escaped. Nothing here
is estimated: a chart with no data says so rather than inventing a line.
"""

from __future__ import annotations

import bisect
import html
import itertools
import math
from collections import Counter

import numpy as np

from .faultkinds import FAULTS, FaultKind, kind_of_event
from .palette import OKABE_ITO
from .series import BIN_S, COL, COLUMNS, SETTLE_S, LaneSeries
from .strategykinds import STRATEGY_KINDS

MAX_POINTS = 1500  # per line, after downsampling (min and max of each bucket)
MAX_SENTENCES = 20  # per anomaly group
MAX_KEYS = 5  # most frequent keys named per anomaly group

#: Each strategy's lane: its colour (the window's, one palette) and SVG dash pattern, as declared.
LANE_COLOURS = {s.name: OKABE_ITO[s.colour] for s in STRATEGY_KINDS}
LANE_DASHES = {s.name: s.dash for s in STRATEGY_KINDS}
#: Other lanes (named ones): the palette's colours no strategy has, and dashes of their own.
SPARE_COLOURS = tuple(
    OKABE_ITO[c]
    for c in ("purple", "vermillion", "orange", "sky", "black")
    if OKABE_ITO[c] not in LANE_COLOURS.values()
)
SPARE_DASHES = ("9 3 2 3", "4 4", "1 3")
#: How a line's dash pattern is named in the words under the charts.
DASH_WORDS = {
    "": "solid",
    **{s.dash: {"dash": "dashed", "dot": "dotted"}.get(s.pen, s.pen) for s in STRATEGY_KINDS},
    "9 3 2 3": "dash-dotted",
    "4 4": "dashed",
    "1 3": "dotted",
}

ANOMALY_NAMES = {
    "stale_read": ("stale read", "stale reads"),
    "lost_write": ("lost write", "lost writes"),
    "dirty_cache": ("dirty cache", "dirty cache entries"),
    "stale_cache": ("stale cache", "stale cache entries"),
}

#: The charts: (title, columns, unit, kind) — kind "linear", "log" or "ratio".
CHARTS = (
    ("Throughput", ("ops_s",), "ops/s", "linear"),
    ("Read latency, p99", ("read_p99",), "ms", "log"),
    ("Write latency, p99", ("write_p99",), "ms", "log"),
    ("Hit ratio", ("hit_ratio",), "%", "ratio"),
    ("Write-behind queue depth", ("queue_depth",), "entries", "count"),
    ("DB writes per second", ("db_writes_s",), "writes/s", "linear"),
    ("Stale reads (cumulative)", ("stale_reads",), "reads", "count"),
    ("Lost writes (cumulative)", ("lost_writes",), "writes", "count"),
)

#: Columns drawn also per app node (a lane of several nodes): those a node's own records
#: and gauges make; the DB and anomaly charts stay per lane (the auditor judges a lane).
NODE_COLUMNS = ("ops_s", "read_p99", "write_p99", "hit_ratio", "queue_depth")

_KNOB_SECTIONS = (
    ("workload", "Workload"),
    ("cache", "Cache"),
    ("store", "Store (SQLite)"),
    ("write_behind", "Write-behind queue"),
    ("latency", "Injected latency"),
)


# -- series -----------------------------------------------------------------------------


def series_from_history(
    records: list[dict],
    lanes: list[str],
    end: float,
    *,
    anomalies: dict[str, list[dict]] | None = None,
    ticks: list[dict] | None = None,
) -> dict[str, dict[str, list[float]]]:
    """The chart columns of each lane (``series.COLUMNS``), binned as the live charts bin
    them, from history records alone (operations of every lane; other records ignored).

    What the history does not carry stays NaN ("no data"): DB rates, queue depth and
    writes at risk come from ``ticks`` (a recording's tick lines: ``t`` and ``lanes``, in
    the order of ``lanes``, each with ``totals`` {db_reads, db_writes}, ``queue_depth``,
    ``at_risk``); the cumulative stale reads and lost writes from ``anomalies`` (per lane,
    the auditor's verdicts as dicts with ``kind``, ``at``, ``found_at``)."""
    nbins = max(0, math.ceil(end / BIN_S - 1e-9)) if end and end > 0 else 0
    ticks = sorted((t for t in (ticks or []) if isinstance(t.get("t"), (int, float))), key=lambda t: t["t"])
    tick_times = [t["t"] for t in ticks]
    by_lane: dict[str, list[dict]] = {name: [] for name in lanes}
    for r in records:
        if r.get("kind") in ("read", "write") and r.get("lane") in by_lane:
            by_lane[r["lane"]].append(r)
    out = {}
    for i, name in enumerate(lanes):
        s = LaneSeries(capacity=max(16, nbins + 2))
        s.add_records(by_lane[name])
        found = (anomalies or {}).get(name)
        stale, lost = [], []
        for a in found or []:
            t = a.get("at") if a.get("at") is not None else a.get("found_at")
            if t is None:
                continue  # judged at rest, at the end of the run: no time to draw it at
            if a.get("kind") == "stale_read":
                stale.append(t)
            elif a.get("kind") == "lost_write":
                lost.append(t)
        stale.sort()
        lost.sort()
        for k in range(nbins):
            t_end = (k + 1) * BIN_S
            at_risk = 0
            j = bisect.bisect_right(tick_times, t_end) - 1
            if j >= 0:
                lanes_state = ticks[j].get("lanes") or []
                g = lanes_state[i] if i < len(lanes_state) else {}
                totals = g.get("totals") or {}
                s.set_gauges(totals.get("db_reads", 0), totals.get("db_writes", 0), g.get("queue_depth", 0))
                at_risk = g.get("at_risk", 0) or 0
            s.set_anomalies(bisect.bisect_right(stale, t_end), bisect.bisect_right(lost, t_end), at_risk)
            s.close(t_end + SETTLE_S + 1e-9)
        cols = {c: s.ring.view(COL[c]).tolist() for c in COLUMNS}
        nan = [math.nan] * len(cols["t"])
        if not ticks:
            for c in ("db_reads_s", "db_writes_s", "queue_depth", "at_risk"):
                cols[c] = list(nan)
        if found is None:
            for c in ("stale_reads", "lost_writes"):
                cols[c] = list(nan)
        out[name] = cols
    return out


def downsample(t, y, max_points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` points: the minimum and the maximum of each bucket, in time
    order, so that spikes survive. A bucket with no data stays a gap (NaN)."""
    t = np.asarray(t, dtype=float)
    y = np.asarray(y, dtype=float)
    n = min(len(t), len(y))
    t, y = t[:n], y[:n]
    if n <= max_points:
        return t, y
    buckets = max(1, max_points // 2)
    edges = np.linspace(0, n, buckets + 1).astype(int)
    ts, ys = [], []
    for a, b in itertools.pairwise(edges):
        if b <= a:
            continue
        seg = y[a:b]
        ok = ~np.isnan(seg)
        if not ok.any():
            ts.append(t[a])
            ys.append(np.nan)
            continue
        idx = np.flatnonzero(ok)
        lo = idx[np.argmin(seg[idx])]
        hi = idx[np.argmax(seg[idx])]
        for j in sorted({lo, hi}):
            ts.append(t[a + j])
            ys.append(seg[j])
    return np.asarray(ts), np.asarray(ys)


# -- anomaly groups -------------------------------------------------------------------


def _num(x) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


def fault_label(w: dict) -> str:
    start = _num(w.get("start"))
    name = str(w.get("name") or w.get("kind") or "fault")
    return f"{name} at {start:.2f} s" if start is not None else name


def anomaly_cause(a: dict, faults: list[dict]) -> str:
    """The latest fault window that contains when the anomaly happened, else when it was
    found, else "no fault"."""
    for when in (a.get("at"), a.get("found_at")):
        t = _num(when)
        if t is None:
            continue
        inside = [
            w
            for w in faults
            if _num(w.get("start")) is not None
            and w["start"] <= t < (_num(w.get("end")) if _num(w.get("end")) is not None else math.inf)
        ]
        if inside:
            return fault_label(max(inside, key=lambda w: w["start"]))
    return "no fault"


def group_anomalies(summary: dict) -> list[dict]:
    """The anomalies of every lane's ``anomaly_list``, grouped by (cause, lane, kind):
    [{"cause", "lane", "kind", "count", "keys", "line", "sentences"}], in order of the
    first anomaly of each group."""
    faults = [w for w in summary.get("faults") or [] if isinstance(w, dict)]
    groups: dict[tuple, dict] = {}
    for lane in summary.get("lanes") or []:
        for a in lane.get("anomaly_list") or []:
            if not isinstance(a, dict):
                continue
            key = (
                anomaly_cause(a, faults),
                str(a.get("lane") or lane.get("name") or lane.get("strategy") or "?"),
                str(a.get("kind") or "anomaly"),
            )
            g = groups.setdefault(
                key, {"cause": key[0], "lane": key[1], "kind": key[2], "count": 0, "_keys": Counter(), "sentences": []}
            )
            g["count"] += 1
            if a.get("key") is not None:
                g["_keys"][str(a["key"])] += 1
            g["sentences"].append(str(a.get("sentence") or ""))
    out = []
    for g in groups.values():
        g["keys"] = [k for k, _ in g.pop("_keys").most_common(MAX_KEYS)]
        g["line"] = _group_line(g)
        out.append(g)
    return out


def _kind_name(kind: str, count: int) -> str:
    one, many = ANOMALY_NAMES.get(kind, (kind.replace("_", " "), kind.replace("_", " ")))
    return one if count == 1 else many


def _group_line(g: dict) -> str:
    keys = ", ".join(g.get("keys") or [])
    return f"{g['cause']} — {g['lane']}: {g['count']:,} {_kind_name(g['kind'], g['count'])}" + (
        f" (keys {keys})" if keys else ""
    )


# -- formatting -------------------------------------------------------------------------


def esc(x) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def fmt_int(x) -> str:
    v = _num(x)
    return "—" if v is None else f"{round(v):,}"


def fmt_float(x, digits: int = 1) -> str:
    v = _num(x)
    return "—" if v is None else f"{v:,.{digits}f}"


def fmt_ms(x) -> str:
    """Latency in ms with three significant digits (0.0223, 0.802, 4.23, 250)."""
    v = _num(x)
    if v is None:
        return "—"
    if v == 0:
        return "0"
    digits = max(0, 2 - math.floor(math.log10(abs(v))))
    return f"{v:,.{digits}f}"


def fmt_pct(x) -> str:
    v = _num(x)
    return "—" if v is None else f"{v * 100:.1f} %"


def fmt_s(x) -> str:
    v = _num(x)
    return "—" if v is None else f"{v:.2f} s"


def _knob_value(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, int):
        return f"{v:,}" if abs(v) >= 10_000 else str(v)
    return "—" if v is None else str(v)


def _knob_label(name: str) -> str:
    for suffix, unit in (("_ms", "ms"), ("_mb", "MiB"), ("_s", "s")):
        if name.endswith(suffix):
            return f"{name[: -len(suffix)].replace('_', ' ')} ({unit})"
    return name.replace("_", " ")


def lane_colour(name: str, i: int) -> str:
    return LANE_COLOURS.get(name, SPARE_COLOURS[i % len(SPARE_COLOURS)])


def lane_dash(name: str, i: int) -> str:
    return LANE_DASHES.get(name, SPARE_DASHES[i % len(SPARE_DASHES)])


# -- SVG charts ---------------------------------------------------------------------------

W, H = 600, 230
ML, MR, MT, MB = 58, 14, 30, 36  # plot margins inside the viewBox
_CHAR_W = 0.58  # average character width, in font sizes (label placement)


def nice_step(span: float, target: int = 5) -> float:
    if not span > 0 or not math.isfinite(span):
        return 1.0
    raw = span / target
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if m * mag >= raw * (1 - 1e-9):
            return m * mag
    return 10 * mag


def _tick_label(v: float) -> str:
    if abs(v) >= 1_000_000:
        return f"{v / 1_000_000:g}M"
    if abs(v) >= 10_000:
        return f"{v / 1000:g}k"
    return f"{round(v, 9):g}"


def _linear_ticks(lo: float, hi: float, integer: bool = False) -> tuple[float, float, list[float]]:
    step = nice_step(hi - lo)
    if integer:
        step = max(1.0, round(step)) if step >= 1 else 1.0
    lo2 = math.floor(lo / step + 1e-9) * step
    hi2 = math.ceil(hi / step - 1e-9) * step
    if hi2 <= lo2:
        hi2 = lo2 + step
    n = round((hi2 - lo2) / step)
    return lo2, hi2, [lo2 + k * step for k in range(n + 1)]


def _text_w(s: str, size: float) -> float:
    return len(s) * size * _CHAR_W


def _path(xs, ys) -> str:
    """An SVG path through the points; NaN breaks the line; a lone point is a dot."""
    parts = []
    pen = False
    for x, y in zip(xs, ys):
        if not (math.isfinite(x) and math.isfinite(y)):
            pen = False
            continue
        parts.append(f"{'L' if pen else 'M'}{x:.1f} {y:.1f}")
        pen = True
    # a subpath of one point draws nothing: give it a zero-length segment (round cap = dot)
    out = []
    for i, p in enumerate(parts):
        out.append(p)
        if p[0] == "M" and (i + 1 == len(parts) or parts[i + 1][0] == "M"):
            out.append("h0.01")
    return "".join(out)


def _y_scale(kind: str, finite: np.ndarray):
    """The y axis of a chart of ``kind`` for these values: (ticks, their labels, value -> y)."""
    ph = H - MT - MB
    has_data = finite.size > 0
    yticks: list[float]
    if kind == "ratio":
        ylo, yhi, yticks = 0.0, 100.0, [0, 25, 50, 75, 100]
        return yticks, [f"{v:g}" for v in yticks], (lambda v: MT + ph * (1 - (v - ylo) / (yhi - ylo)))
    if kind == "log" and has_data:
        lo = math.floor(math.log10(finite.min()))
        hi = math.ceil(math.log10(finite.max()))
        if hi <= lo:
            hi = lo + 1
        yticks = [10.0**k for k in range(lo, hi + 1)]
        llo, lhi = float(lo), float(hi)
        return (
            yticks,
            [_tick_label(v) for v in yticks],
            (lambda v: MT + ph * (1 - (math.log10(v) - llo) / (lhi - llo)) if v > 0 else math.nan),
        )
    top = float(finite.max()) if has_data else 1.0
    bottom = min(0.0, float(finite.min())) if has_data else 0.0
    if top <= bottom:
        top = bottom + 1.0
    ylo, yhi, yticks = _linear_ticks(bottom, top, integer=kind == "count")
    return yticks, [_tick_label(v) for v in yticks], (lambda v: MT + ph * (1 - (v - ylo) / (yhi - ylo)))


def _fault_bands_svg(faults: list[dict], X, xhi: float) -> list[str]:
    """The fault windows: shaded, labelled at the top, labels stacked in two rows so none
    overlaps ("+N more" for those that find no room)."""
    pw, ph = W - ML - MR, H - MT - MB
    o = []
    rows_end: list[float] = []
    hidden = 0
    for w in faults:
        s, e = _num(w.get("start")), _num(w.get("end"))
        if s is None or s > xhi:
            continue
        e = min(xhi, e if e is not None and e > s else s)
        x0, x1 = X(s), X(e)
        o.append(f'<rect class="fault" x="{x0:.1f}" y="{MT}" width="{max(1.5, x1 - x0):.1f}" height="{ph}"/>')
        label = str(w.get("name") or w.get("kind") or "fault")
        tw = _text_w(label, 9.5)
        lx = min(max(x0 + 2, ML + 2), ML + pw - tw - 2)
        row = next((r for r, end_x in enumerate(rows_end) if end_x < lx - 4), len(rows_end))
        if row >= 2:
            hidden += 1
            continue
        if row == len(rows_end):
            rows_end.append(0.0)
        rows_end[row] = lx + tw
        o.append(f'<text class="flabel" x="{lx:.1f}" y="{MT + 11 + row * 11}">{esc(label)}</text>')
    if hidden:
        o.append(
            f'<text class="flabel" x="{ML + pw - 2}" y="{MT + 11 + 2 * 11}" text-anchor="end">+{hidden} more</text>'
        )
    return o


def _axes_svg(yticks, ylabels, Yf, xticks, X, unit: str, kind: str) -> list[str]:
    """The grid, the ticks and their labels, the axes and their titles."""
    pw, ph = W - ML - MR, H - MT - MB
    o = []
    for v, lab in zip(yticks, ylabels):
        y = Yf(v)
        o.append(f'<line class="grid" x1="{ML}" x2="{ML + pw}" y1="{y:.1f}" y2="{y:.1f}"/>')
        o.append(f'<text class="tick" x="{ML - 5}" y="{y + 3.5:.1f}" text-anchor="end">{esc(lab)}</text>')
    for v in xticks:
        x = X(v)
        o.append(f'<line class="tickmark" x1="{x:.1f}" x2="{x:.1f}" y1="{MT + ph}" y2="{MT + ph + 4}"/>')
        o.append(f'<text class="tick" x="{x:.1f}" y="{MT + ph + 15}" text-anchor="middle">{_tick_label(v)}</text>')
    o.append(f'<line class="axis" x1="{ML}" x2="{ML}" y1="{MT}" y2="{MT + ph}"/>')
    o.append(f'<line class="axis" x1="{ML}" x2="{ML + pw}" y1="{MT + ph}" y2="{MT + ph}"/>')
    o.append(f'<text class="axt" x="{ML + pw}" y="{H - 4}" text-anchor="end">time (s)</text>')
    ytitle = unit + (", log scale" if kind == "log" else "")
    o.append(
        f'<text class="axt" x="12" y="{MT + ph / 2:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 12 {MT + ph / 2:.1f})">{esc(ytitle)}</text>'
    )
    return o


def _lines_svg(lanes: list[str], data: list, node_data: list, X, Yf) -> list[str]:
    """Each lane's line (its colour and dash), over the thin lines of its app nodes."""
    o = ['<g class="lines">']
    for i, (name, per_lane) in enumerate(zip(lanes, node_data)):  # under the lanes' lines
        for k, (t, y) in enumerate(per_lane):
            d = _path([X(v) for v in t.tolist()], [Yf(v) if math.isfinite(v) else math.nan for v in y.tolist()])
            if d:
                o.append(
                    f'<path d="{d}" fill="none" stroke="{lane_colour(name, i)}" stroke-width="0.8" '
                    f'stroke-opacity="0.6" stroke-linejoin="round" data-lane="{esc(name)}" '
                    f'data-node="{k}"/>'
                )
    for i, (name, (t, y)) in enumerate(zip(lanes, data)):
        xs = [X(v) for v in t.tolist()]
        ys = [Yf(v) if math.isfinite(v) else math.nan for v in y.tolist()]
        d = _path(xs, ys)
        if d:
            dash = lane_dash(name, i)
            o.append(
                f'<path d="{d}" fill="none" stroke="{lane_colour(name, i)}" stroke-width="1.7" '
                f'stroke-linejoin="round" stroke-linecap="round"'
                + (f' stroke-dasharray="{dash}"' if dash else "")
                + f' data-lane="{esc(name)}"/>'
            )
    o.append("</g>")
    return o


def _legend_svg(lanes: list[str]) -> list[str]:
    """The lanes' key, above the plot, left to right."""
    o = []
    lx: float = ML
    for i, name in enumerate(lanes):
        dash = lane_dash(name, i)
        o.append(
            f'<line x1="{lx:.1f}" x2="{lx + 24:.1f}" y1="{MT - 12}" y2="{MT - 12}" stroke="{lane_colour(name, i)}" '
            f'stroke-width="2.2"' + (f' stroke-dasharray="{dash}"' if dash else "") + "/>"
        )
        o.append(f'<text class="legend" x="{lx + 28:.1f}" y="{MT - 8}">{esc(name)}</text>')
        lx += 28 + _text_w(name, 14) + 14  # room for the phone's larger legend text
    return o


def chart_svg(
    title: str,
    unit: str,
    kind: str,
    lanes: list[str],
    cols: list[tuple[list, list]],
    xmax: float,
    faults: list[dict],
    column: str,
    nodes: list[list[tuple[list, list]]] | None = None,
) -> str:
    """One line chart: ``cols[i]`` is (t, y) of lane i; ``nodes[i]``, if given, the (t, y)
    of each app node of lane i (thin lines under the lane's)."""
    pw, ph = W - ML - MR, H - MT - MB

    def prepared(t, y):
        t = np.asarray(t, dtype=float)
        y = np.asarray(y, dtype=float)
        if kind == "ratio":
            y = y * 100.0
        if kind == "log":
            y = np.where(y > 0, y, np.nan)
        return downsample(t, y)

    data = [prepared(t, y) for (t, y) in cols]
    node_data = [[prepared(t, y) for (t, y) in per_lane] for per_lane in (nodes or [])]
    ys = [y for _, y in data] + [y for per_lane in node_data for _, y in per_lane]
    finite = np.concatenate([y[np.isfinite(y)] for y in ys]) if ys else np.array([])
    xmax = xmax if xmax and xmax > 0 else 1.0
    _, xhi, xticks = _linear_ticks(0.0, xmax)
    xhi = xmax if xticks[-1] > xmax * 1.15 else xhi
    xticks = [v for v in xticks if v <= xhi + 1e-9]

    def X(v):
        return ML + pw * (v / xhi)

    yticks, ylabels, Yf = _y_scale(kind, finite)
    o = [
        (
            f'<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{esc(title)}" '
            f'xmlns="http://www.w3.org/2000/svg" data-column="{esc(column)}">'
        )
    ]
    o.append(f"<title>{esc(title)} ({esc(unit)})</title>")
    o.append(f'<rect x="{ML}" y="{MT}" width="{pw}" height="{ph}" class="plotbg"/>')
    o += _fault_bands_svg(faults, X, xhi)
    o += _axes_svg(yticks, ylabels, Yf, xticks, X, unit, kind)
    if finite.size > 0:
        o += _lines_svg(lanes, data, node_data, X, Yf)
    else:
        o.append(
            f'<text class="nodata" x="{ML + pw / 2:.1f}" y="{MT + ph / 2:.1f}" text-anchor="middle">'
            f"no data recorded for this chart</text>"
        )
    o += _legend_svg(lanes)
    o.append("</svg>")
    return "".join(o)


# -- sections ---------------------------------------------------------------------------


def _td(text: str, col: str | None = None, cls: str = "num") -> str:
    dc = f' data-col="{col}"' if col else ""
    return f'<td class="{cls}"{dc}>{text}</td>'


def _lane_cell(name: str, i: int, extra: str = "") -> str:
    dash = lane_dash(name, i)
    swatch = (
        f'<svg class="swatch" viewBox="0 0 24 8" aria-hidden="true"><line x1="1" x2="23" y1="4" y2="4" '
        f'stroke="{lane_colour(name, i)}" stroke-width="2.6"'
        + (f' stroke-dasharray="{dash}"' if dash else "")
        + "/></svg>"
    )
    return f'<th scope="row" class="lane">{swatch}{esc(name)}{extra}</th>'


#: A planned fault in the plan's timeline, from its parameters: fault kind -> words. A kind
#: without an entry says its declared label and its parameters.
PLANNED = {
    "crash": "crash (the cache node is killed, SIGKILL)",
    "outage": "DB outage for {duration:g} s",
    "burst": "{op} burst of {count:,} operations per lane",
    "slow-db": "slow DB +{ms:g} ms for {duration:g} s (injected)",
    "slow-cache": "slow cache +{ms:g} ms for {duration:g} s (injected)",
    "cold": "every cache flushed (cold cache)",
    "stampede": "stampede, {readers} concurrent readers of the hot key",
    "crash-node": "node crash (app node {node} of each lane is killed, SIGKILL)",
    "crash-cache-server": "cache server crash (the run's own redis-server is killed, SIGKILL)",
}


def planned_fault(kind: FaultKind, entry) -> tuple[float, str] | None:
    """(time, "12 s: DB outage for 5 s") for one timeline entry of ``kind``; None when the
    entry is not one (a hand-edited header)."""
    try:
        at, values = kind.values(entry)
        words = PLANNED.get(kind.name)
        text = words.format(**values) if words else " ".join([kind.label] + [f"{k} {v}" for k, v in values.items()])
    except (TypeError, ValueError, KeyError):
        return None
    return (at, f"{at:g} s: {text}") if math.isfinite(at) else None


def _planned_faults(plan: dict) -> list[tuple[float, str]]:
    out = []
    for kind in FAULTS:
        entries = plan.get(kind.field) or []
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, (list, tuple)) and not kind.params and len(entry) == 1:
                entry = entry[0]  # [time] for a fault of no parameters
            item = planned_fault(kind, entry)
            if item is not None:
                out.append(item)
    return sorted(out, key=lambda p: p[0])


def _section_plan(summary: dict, header: dict) -> str:
    plan = header.get("plan") if isinstance(header.get("plan"), dict) else {}
    duration = plan.get("duration_s", summary.get("duration_s"))
    seed = plan.get("seed", summary.get("seed"))
    rows = [
        ("duration", f"{duration:g} s" if _num(duration) is not None else "—"),
        ("seed", esc(seed if seed is not None else "—")),
        ("status", esc(summary.get("status") or "—")),
    ]
    if _num(plan.get("restart_delay_s")) is not None:
        rows.append(("restart delay after a crash", f"{plan['restart_delay_s']:g} s"))
    if _num(summary.get("ended_at_s")) is not None:
        rows.append(("ended at", fmt_s(summary["ended_at_s"])))
    o = ['<section id="plan"><h2>The plan</h2><div class="two">', '<table class="kv"><tbody>']
    o += [f'<tr><th scope="row">{k}</th><td>{v}</td></tr>' for k, v in rows]
    o.append("</tbody></table>")
    planned = _planned_faults(plan)
    o.append("<div><h3>Fault timeline</h3>")
    if planned:
        o.append('<ol class="timeline">' + "".join(f"<li>{esc(text)}</li>" for _, text in planned) + "</ol>")
    elif summary.get("faults"):
        o.append(
            '<ol class="timeline">'
            + "".join(
                f"<li>{esc(fmt_s(w.get('start')))}: {esc(w.get('name') or w.get('kind'))}</li>"
                for w in summary["faults"]
                if isinstance(w, dict)
            )
            + "</ol>"
        )
    else:
        o.append("<p>No fault was planned: a calm run.</p>")
    o.append("</div></div></section>")
    return "".join(o)


def _section_knobs(header: dict) -> str:
    lanes = [c for c in header.get("lanes") or [] if isinstance(c, dict)]
    if not lanes:
        return ""
    names = [str(c.get("name") or c.get("strategy") or f"lane {i + 1}") for i, c in enumerate(lanes)]
    o = [
        '<section id="knobs"><h2>The knobs, lane by lane</h2>',
        '<p class="note">Rows marked <span class="diffmark">≠</span> differ between lanes.</p><div class="knobs">',
    ]
    seeds = [c.get("seed") for c in lanes]
    for section, title in _KNOB_SECTIONS:
        keys: list[str] = []
        for c in lanes:
            for k in (c.get(section) or {}) if isinstance(c.get(section), dict) else {}:
                if k not in keys:
                    keys.append(k)
        if section == "workload" and any(s is not None for s in seeds):
            keys = ["seed"] + keys
        if not keys:
            continue
        o.append(f'<table class="knobtab"><caption>{esc(title)}</caption><thead><tr><th scope="col">knob</th>')
        o += [f'<th scope="col">{esc(n)}</th>' for n in names]
        o.append("</tr></thead><tbody>")
        for k in keys:
            if k == "seed" and section == "workload":
                vals = [_knob_value(s) for s in seeds]
            else:
                vals = [
                    _knob_value((c.get(section) or {}).get(k)) if isinstance(c.get(section), dict) else "—"
                    for c in lanes
                ]
            differ = len(set(vals)) > 1
            mark = '<span class="diffmark" title="differs between lanes">≠</span>' if differ else ""
            cls = ' class="diff"' if differ else ""
            o.append(
                f'<tr{cls}><th scope="row">{esc(_knob_label(k))}{mark}</th>'
                + "".join(f"<td>{esc(v)}</td>" for v in vals)
                + "</tr>"
            )
        o.append("</tbody></table>")
    o.append("</div></section>")
    return "".join(o)


def _section_summary(summary: dict) -> str:
    lanes = [ln for ln in summary.get("lanes") or [] if isinstance(ln, dict)]
    o = [
        '<section id="summary"><h2>Summary</h2><div class="tablewrap"><table class="summary">',
        (
            '<thead><tr><th rowspan="2" scope="col">lane</th><th rowspan="2" scope="col">ops</th>'
            '<th rowspan="2" scope="col">ops/s</th><th rowspan="2" scope="col">hit ratio</th>'
            '<th colspan="2" scope="colgroup">read ms</th><th colspan="2" scope="colgroup">write ms</th>'
            '<th colspan="2" scope="colgroup">DB</th><th rowspan="2" scope="col">errors</th>'
            '<th rowspan="2" scope="col">rejected</th>'
            '<th rowspan="2" scope="col" title="errors that may have applied">indeter&shy;minate</th>'
            '<th colspan="4" scope="colgroup">anomalies</th>'
            '<th rowspan="2" scope="col">incar&shy;nations</th></tr>'
            '<tr><th scope="col">p50</th><th scope="col">p99</th><th scope="col">p50</th><th scope="col">p99</th>'
            '<th scope="col">reads</th><th scope="col">writes</th><th scope="col">stale reads</th>'
            '<th scope="col">lost writes</th><th scope="col">dirty cache</th><th scope="col">stale cache</th></tr>'
            "</thead><tbody>"
        ),
    ]
    injected = []
    for i, ln in enumerate(lanes):
        name = str(ln.get("name") or ln.get("strategy") or f"lane {i + 1}")
        lat = ln.get("latency_ms") if isinstance(ln.get("latency_ms"), dict) else {}
        rd = lat.get("read") if isinstance(lat.get("read"), dict) else {}
        wr = lat.get("write") if isinstance(lat.get("write"), dict) else {}
        db = ln.get("db") if isinstance(ln.get("db"), dict) else {}
        an = ln.get("anomalies") if isinstance(ln.get("anomalies"), dict) else {}
        inj = ln.get("injected")
        extra = ""
        if inj:
            injected.append((name, str(inj)))
            extra = ' <span class="badge" title="latency injected by the lab, not measured slowness">injected</span>'
        o.append(
            f'<tr data-lane="{esc(name)}">'
            + _lane_cell(name, i, extra)
            + _td(fmt_int(ln.get("ops")), "ops")
            + _td(fmt_float(ln.get("ops_per_s")), "ops_per_s")
            + _td(fmt_pct(ln.get("hit_ratio")), "hit_ratio")
            + _td(fmt_ms(rd.get("p50")), "read_p50")
            + _td(fmt_ms(rd.get("p99")), "read_p99")
            + _td(fmt_ms(wr.get("p50")), "write_p50")
            + _td(fmt_ms(wr.get("p99")), "write_p99")
            + _td(fmt_int(db.get("reads")), "db_reads")
            + _td(fmt_int(db.get("writes")), "db_writes")
            + _td(fmt_int(ln.get("errors")), "errors")
            + _td(fmt_int(ln.get("rejected")), "rejected")
            + _td(fmt_int(ln.get("indeterminate")), "indeterminate")
            + "".join(
                _td(fmt_int(an.get(k)), k, "num" + (" bad" if (_num(an.get(k)) or 0) > 0 else ""))
                for k in ("stale_reads", "lost_writes", "dirty_cache", "stale_cache")
            )
            + _td(fmt_int(ln.get("incarnations")), "incarnations")
            + "</tr>"
        )
    o.append("</tbody></table></div>")
    for name, label in injected:
        o.append(
            f'<p class="note"><span class="badge">injected</span> {esc(name)}: {esc(label)} — '
            f"added by the lab on purpose; its latencies include it.</p>"
        )
    notes = []
    for ln in lanes:
        who = ln.get("name") or ln.get("strategy")
        q = ln.get("queue") if isinstance(ln.get("queue"), dict) else {}
        if q.get("max_depth"):
            notes.append(
                f"{who}: the write-behind queue peaked at {fmt_int(q.get('max_depth'))} "
                f"entries ({'durable' if q.get('durable') else 'volatile'}), "
                f"{fmt_int(q.get('pending_at_end'))} pending at the end, "
                f"{fmt_int(q.get('dead_letters'))} dead letter{'' if q.get('dead_letters') == 1 else 's'}, "
                f"{fmt_int(q.get('retries'))} retr{'y' if q.get('retries') == 1 else 'ies'}"
            )
        listed, total = (
            len(ln.get("anomaly_list") or []),
            sum(int(_num(v) or 0) for v in (ln.get("anomalies") or {}).values())
            if isinstance(ln.get("anomalies"), dict)
            else 0,
        )
        if total > listed:
            notes.append(f"{who}: {total:,} anomalies, of which the summary lists the first {listed:,} (grouped below)")
        for f in ln.get("failures") or []:
            notes.append(f"{who}: lab failure: {f.get('reason', f) if isinstance(f, dict) else f}")
    for f in summary.get("failures") or []:
        notes.append(f"run failure: {f.get('reason', f) if isinstance(f, dict) else f}")
    if notes:
        o.append('<ul class="notes">' + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>")
    o.append("</section>")
    return "".join(o)


def _section_faults(summary: dict) -> str:
    faults = [w for w in summary.get("faults") or [] if isinstance(w, dict)]
    o = ['<section id="faults"><h2>What each fault did</h2>']
    if not faults:
        o.append("<p>No fault happened in this run.</p></section>")
        return "".join(o)
    o.append(
        '<p class="note">Operations that began in each window (a crash: from the kill to one second after '
        'the lane is back), their errors, p99 latency and the anomalies of the window.</p><div class="faultgrid">'
    )
    for w in faults:
        lanes = w.get("lanes") if isinstance(w.get("lanes"), dict) else {}
        o.append(
            f'<div class="fault" data-kind="{esc(w.get("kind"))}" data-start="{esc(w.get("start"))}">'
            f"<h3>{esc(w.get('name') or w.get('kind') or 'fault')} "
            f'<span class="when">{esc(fmt_s(w.get("start")))} – {esc(fmt_s(w.get("end")))}</span></h3>'
        )
        if w.get("detail"):
            o.append(f'<p class="detail">{esc(w["detail"])}</p>')
        o.append(
            '<table class="faulttab"><thead><tr><th scope="col">lane</th><th scope="col">ops</th>'
            '<th scope="col">errors</th><th scope="col">rejected</th>'
            '<th scope="col" title="errors that may have applied">indeterminate</th><th scope="col">read p99 ms</th>'
            '<th scope="col">write p99 ms</th><th scope="col">stale reads</th><th scope="col">lost writes</th>'
            "</tr></thead><tbody>"
        )
        for i, (name, v) in enumerate(lanes.items()):
            v = v if isinstance(v, dict) else {}
            o.append(
                f'<tr data-lane="{esc(name)}">'
                + _lane_cell(str(name), i)
                + _td(fmt_int(v.get("ops")), "ops")
                + _td(fmt_int(v.get("errors")), "errors")
                + _td(fmt_int(v.get("rejected")), "rejected")
                + _td(fmt_int(v.get("indeterminate")), "indeterminate")
                + _td(fmt_ms(v.get("read_p99_ms")), "read_p99_ms")
                + _td(fmt_ms(v.get("write_p99_ms")), "write_p99_ms")
                + _td(
                    fmt_int(v.get("stale_reads")),
                    "stale_reads",
                    "num" + (" bad" if (_num(v.get("stale_reads")) or 0) > 0 else ""),
                )
                + _td(
                    fmt_int(v.get("lost_writes")),
                    "lost_writes",
                    "num" + (" bad" if (_num(v.get("lost_writes")) or 0) > 0 else ""),
                )
                + "</tr>"
            )
        o.append("</tbody></table></div>")
    o.append("</div></section>")
    return "".join(o)


def _section_charts(summary: dict, series: dict, lanes: list[str], node_series: dict | None = None) -> str:
    faults = [w for w in summary.get("faults") or [] if isinstance(w, dict)]
    xmax = _num(summary.get("duration_s")) or 0.0
    for name in lanes:
        t = [v for v in (series.get(name) or {}).get("t") or [] if _num(v) is not None]
        if t:
            xmax = max(xmax, max(t))
    o = [
        (
            '<section id="charts"><h2>Charts</h2><p class="note">One line per lane, in 0.25 s bins by when '
            "operations ended; shaded: the fault windows. Lines: "
        )
    ]
    o.append(
        ", ".join(
            f'<span class="lanename" style="color:{lane_colour(n, i)}">{esc(n)}</span> '
            f"({DASH_WORDS.get(lane_dash(n, i), 'dashed')})"
            for i, n in enumerate(lanes)
        )
        + (
            ". Thin lines: each app node of a lane that ran several (throughput, latency, hit ratio, queue)"
            if any((node_series or {}).get(n) for n in lanes)
            else ""
        )
        + '.</p><div class="charts">'
    )
    for title, columns, unit, kind in CHARTS:
        col = columns[0]
        cols = []
        for name in lanes:
            cols.append(_columns(series.get(name) or {}, col))
        nodes = None
        if node_series and col in NODE_COLUMNS:
            nodes = [[_columns(s, col) for s in (node_series.get(name) or []) if isinstance(s, dict)] for name in lanes]
        o.append(
            f'<figure class="chartbox"><figcaption>{esc(title)} <span class="unit">({esc(unit)})</span>'
            f"</figcaption>{chart_svg(title, unit, kind, lanes, cols, xmax, faults, col, nodes)}</figure>"
        )
    o.append("</div></section>")
    return "".join(o)


def _columns(s: dict, col: str) -> tuple[list, list]:
    """(t, y) of one series' column, as numbers (NaN where a value is missing)."""
    t, y = s.get("t") or [], s.get(col) or []
    n = min(len(t), len(y))
    return (
        [_num(v) if _num(v) is not None else math.nan for v in t[:n]],
        [_num(v) if _num(v) is not None else math.nan for v in y[:n]],
    )


def _section_anomalies(summary: dict, groups: list[dict] | None) -> str:
    own = group_anomalies(summary)
    if groups is None:
        groups = own
    sentences = {(g["cause"], g["lane"], g["kind"]): g["sentences"] for g in own}
    o = ['<section id="anomalies"><h2>Anomalies, by cause</h2>']
    if not groups:
        o.append("<p>The auditor found no anomaly in this run.</p></section>")
        return "".join(o)
    o.append(
        '<p class="note">Each anomaly belongs to the latest fault window it happened in (else the one it was '
        'found in, else "no fault"). Open a line for the auditor\'s sentences.</p>'
    )
    by_cause: dict[str, list[dict]] = {}
    for g in groups:
        if isinstance(g, dict):
            by_cause.setdefault(str(g.get("cause") or "no fault"), []).append(g)
    for cause, items in by_cause.items():
        o.append(f'<h3 class="cause">{esc(cause)}</h3>')
        for g in items:
            count = int(_num(g.get("count")) or 0)
            kind = str(g.get("kind") or "anomaly")
            line = g.get("line") or _group_line({**g, "count": count, "cause": cause})
            said = sentences.get((cause, str(g.get("lane")), kind)) or list(g.get("sentences") or [])
            o.append(
                f'<details class="group" data-count="{count}" data-kind="{esc(kind)}" '
                f'data-lane="{esc(g.get("lane"))}"><summary><span class="count">{count:,}</span> '
                f"{esc(line)}</summary>"
            )
            if said:
                o.append('<ul class="sentences">' + "".join(f"<li>{esc(s)}</li>" for s in said[:MAX_SENTENCES]))
                if len(said) > MAX_SENTENCES:
                    o.append(f'<li class="more">{len(said) - MAX_SENTENCES:,} more</li>')
                o.append("</ul>")
            o.append("</details>")
    o.append("</section>")
    return "".join(o)


def _section_events(summary: dict) -> str:
    events = [e for e in summary.get("events") or [] if isinstance(e, dict)]
    o = ['<section id="events"><h2>Events</h2>']
    if not events:
        o.append("<p>No fault or knob event.</p></section>")
        return "".join(o)
    o.append(
        '<div class="tablewrap"><table class="events"><thead><tr><th scope="col">time</th>'
        '<th scope="col">event</th><th scope="col">lane</th><th scope="col">what happened</th></tr></thead><tbody>'
    )
    for e in events:
        badge = ' <span class="badge">injected</span>' if e.get("injected") else ""
        fault = kind_of_event(str(e.get("kind")))
        what = fault.label.removesuffix(" (injected)") if fault is not None else e.get("kind")
        o.append(
            f'<tr data-kind="{esc(e.get("kind"))}"><td class="num">{esc(fmt_s(e.get("start")))}</td>'
            f"<td>{esc(what)}{badge}</td>"
            f"<td>{esc(e.get('lane') or 'all')}</td><td>{esc(e.get('detail'))}</td></tr>"
        )
    o.append("</tbody></table></div></section>")
    return "".join(o)


CSS = """
:root{--fg:#1b1b1b;--muted:#5a5a5a;--line:#d6d6d6;--bg:#fff;--soft:#f5f5f2;--bad:#a8141a}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,
"DejaVu Sans",sans-serif;-webkit-print-color-adjust:exact;print-color-adjust:exact}
main{max-width:1200px;margin:0 auto;padding:16px 20px 32px}
h1{font-size:1.7em;margin:.2em 0 .1em}
h2{font-size:1.25em;margin:1.6em 0 .5em;padding-bottom:.2em;border-bottom:2px solid var(--fg)}
h3{font-size:1.02em;margin:.8em 0 .3em}
p{margin:.4em 0}
.meta{color:var(--muted);margin:0}
.desc{max-width:60em;margin-top:.6em}
.note{color:var(--muted);font-size:.9em}
.two{display:grid;grid-template-columns:minmax(220px,auto) 1fr;gap:8px 32px;align-items:start}
.two h3{margin-top:0}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{padding:3px 7px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
thead th{font-size:.82em;color:var(--muted);font-weight:600;border-bottom:1.5px solid var(--fg);
vertical-align:bottom}
td.num{text-align:right;white-space:nowrap}
td.bad{color:var(--bad);font-weight:700}
.kv th{font-weight:normal;color:var(--muted)}
.tablewrap{overflow-x:auto;max-width:100%}
table.summary{width:100%;font-size:.9em}
table.summary thead th{text-align:center}
th.lane{white-space:nowrap;font-weight:600}
.swatch{width:24px;height:8px;margin-right:6px;vertical-align:middle}
.badge{display:inline-block;font-size:.72em;font-weight:700;letter-spacing:.03em;padding:0 5px;border:1px solid
currentColor;border-radius:3px;color:#7a4a00;vertical-align:1px}
.timeline{margin:.2em 0;padding-left:1.4em}
.knobs{display:grid;grid-template-columns:repeat(auto-fit,minmax(330px,1fr));gap:10px 24px;align-items:start}
.knobtab{width:100%;font-size:.8em}
.knobtab th,.knobtab td{padding:1px 6px}
.knobtab tbody th{white-space:nowrap}
.knobtab caption{text-align:left;font-weight:700;padding:2px 0}
.knobtab tr.diff{background:#fff3c4}
.knobtab tr.diff th,.knobtab tr.diff td{font-weight:700}
.diffmark{margin-left:.35em;color:#7a4a00}
.faultgrid{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:12px 24px}
.fault{break-inside:avoid;page-break-inside:avoid}
.fault h3{margin-bottom:0}
.when{font-weight:normal;color:var(--muted)}
.detail{font-size:.88em;color:var(--muted)}
.faulttab{width:100%;font-size:.86em}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(460px,1fr));gap:8px 24px}
figure.chartbox{margin:0;break-inside:avoid;page-break-inside:avoid}
figcaption{font-weight:700;font-size:.95em}
.unit{font-weight:normal;color:var(--muted)}
svg.chart{width:100%;height:auto;display:block;font-family:system-ui,"DejaVu Sans",sans-serif}
svg .plotbg{fill:#fff}
svg .fault{fill:#8a8a8a;fill-opacity:.16}
svg .flabel{font-size:9.5px;fill:#333;paint-order:stroke;stroke:#fff;stroke-width:3px;stroke-linejoin:round}
svg .grid{stroke:#e4e4e4;stroke-width:1}
svg .axis,svg .tickmark{stroke:#444;stroke-width:1}
svg .tick{font-size:10.5px;fill:#444}
svg .axt{font-size:10.5px;fill:#444}
svg .legend{font-size:11px;fill:#222}
svg .nodata{font-size:12px;fill:#777;font-style:italic}
.lanename{font-weight:700}
.cause{margin-top:1em}
details.group{border:1px solid var(--line);border-radius:4px;margin:4px 0;padding:2px 8px;break-inside:avoid}
details.group summary{cursor:pointer}
details.group .count{display:inline-block;min-width:3.2em;text-align:right;font-weight:700;margin-right:.4em;
font-variant-numeric:tabular-nums}
.sentences{font-size:.86em;margin:.3em 0 .4em;padding-left:1.4em;overflow-wrap:anywhere}
.sentences .more{list-style:none;color:var(--muted)}
table.events{font-size:.86em;width:100%}
table.events td{overflow-wrap:anywhere}
.notes{font-size:.88em;color:var(--muted);padding-left:1.2em}
.status{border:2px solid var(--bad);color:var(--bad);padding:6px 10px;margin:10px 0;font-weight:600}
footer{margin-top:2em;padding-top:.6em;border-top:1px solid var(--line);font-size:.85em;color:var(--muted)}
@media (max-width:640px){
 body{font-size:14px}
 main{padding:10px 10px 24px}
 .two{grid-template-columns:1fr}
 .knobs,.faultgrid,.charts{grid-template-columns:1fr}
 .faulttab{font-size:.78em}
 .faulttab th,.faulttab td{padding:2px 3px}
 svg .tick,svg .axt{font-size:15px}
 svg .legend{font-size:14px}
 svg .flabel{font-size:12px}
 table.summary{font-size:.82em}
 table.summary th.lane{position:sticky;left:0;background:#fff;z-index:1}
}
@media print{
 @page{size:A4;margin:12mm}
 body{font-size:9pt}
 main{max-width:none;padding:0}
 h2{break-after:avoid;page-break-after:avoid}
 h3,figcaption{break-after:avoid;page-break-after:avoid}
 .tablewrap{overflow:visible}
 table,figure,details,.fault,tr{break-inside:avoid;page-break-inside:avoid}
 .charts{grid-template-columns:1fr;gap:4px}
 svg.chart{max-height:64mm}
 .faultgrid{grid-template-columns:1fr 1fr}
 .knobs{grid-template-columns:1fr 1fr}
 details.group summary{list-style:none}
 a{color:inherit;text-decoration:none}
}
"""


def render_report(
    summary: dict,
    header: dict,
    series: dict[str, dict[str, list[float]]],
    groups: list[dict] | None = None,
    node_series: dict | None = None,
) -> str:
    """One complete, self-contained HTML5 document describing a run (see the module doc).
    ``node_series``: {lane: [columns of each app node]} for lanes of several nodes."""
    summary = summary if isinstance(summary, dict) else {}
    header = header if isinstance(header, dict) else {}
    series = series if isinstance(series, dict) else {}
    lanes = [str(ln.get("name") or ln.get("strategy")) for ln in summary.get("lanes") or [] if isinstance(ln, dict)]
    for name in series:
        if name not in lanes:
            lanes.append(str(name))
    title = header.get("title") or "Cache Studio run"
    machine = header.get("machine") if isinstance(header.get("machine"), dict) else {}
    where = ", ".join(f"{k} {v}" for k, v in machine.items()) if machine else "machine not recorded"
    meta = " · ".join(
        x
        for x in (
            str(header.get("created") or "time not recorded"),
            where,
            str(header.get("app") or "cachestudio"),
            (f"scenario {header['scenario']}" if header.get("scenario") else ""),
        )
        if x
    )
    o = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)} — Cache Studio report</title>",
        f"<style>{CSS}</style></head><body><main>",
        f'<header><h1>{esc(title)}</h1><p class="meta">{esc(meta)}</p>',
    ]
    if header.get("description"):
        o.append(f'<p class="desc">{esc(header["description"])}</p>')
    status = summary.get("status")
    if status and status != "ok":
        o.append(f'<p class="status">This run did not end normally: {esc(status)}.</p>')
    o.append("</header>")
    o.append(_section_plan(summary, header))
    o.append(_section_knobs(header))
    o.append(_section_summary(summary))
    o.append(_section_faults(summary))
    o.append(_section_charts(summary, series, lanes, node_series if isinstance(node_series, dict) else None))
    o.append(_section_anomalies(summary, groups))
    o.append(_section_events(summary))
    o.append(
        "<footer><p>Everything in this report was measured on a real run: a real diskcache directory as the "
        "cache, a real SQLite file as the database, real processes killed with SIGKILL. Faults and latencies "
        'that the lab injected on purpose are labelled <span class="badge">injected</span>. Anomalies are the '
        f"auditor's verdicts, from the history of every operation. Made by {esc(header.get('app') or 'cachestudio')}."
        "</p></footer></main></body></html>\n"
    )
    return "".join(o)
