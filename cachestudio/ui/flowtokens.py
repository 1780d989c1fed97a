"""The flow view's tokens: what a lane's new records and gauges set travelling, and one timer
that moves every token hop by hop. At high rates a lane animates a sample (at most
``SAMPLE_PER_S`` new tokens a second, picked evenly) and says so in its narration; the
edge labels always count *every* record. ``add_records`` only counts and keeps a few
samples (no item per record)."""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Iterable

from PySide6.QtCore import QPointF, QTimer
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QGraphicsPathItem

from .flowmodel import (
    ALL_BELOW,
    FLUSH_AHEAD_S,
    FLUSH_GAP_S,
    FLUSH_PATH,
    FLUSH_PER_CALL,
    HOP_S,
    LABEL_EVERY_S,
    LAUNCH_GAP_S,
    LINGER_S,
    MAX_TOKENS,
    PATH_EDGES,
    PATHS,
    SAMPLE_PER_S,
    SIDE_OFFSET,
    TICK_MS,
    Lane,
    Token,
    describe,
    edge_key,
)
from .flowscene import FlowScene
from .theme import TOKENS


class FlowTokens(FlowScene):
    """The scene with its tokens moving (see the module's docstring)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._last_labels = 0.0
        self.timer = QTimer(self)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)

    def add_records(self, lane: int, records: list[dict], counted: dict | None = None) -> None:
        """New operations of a lane. ``counted``: {(kind, outcome): count} of all of them,
        when ``records`` is only a sample (the observer sends at most a few per update)."""
        ln = self._lane(lane)
        if ln is None or not (records or counted):
            return
        now = time.monotonic()
        edges_of = PATH_EDGES.get(ln.strategy, {})
        if counted is None:
            counted = Counter((r.get("kind"), r.get("outcome")) for r in records)
        edges: Counter = Counter()
        n = 0
        for ko, c in counted.items():
            es = edges_of.get(ko)
            if es is None:
                continue  # not an operation (or an unknown outcome): nothing travels
            n += c
            for e in es:
                edges[e] += c
        if not n:
            return
        ln.expire(now)
        ln.total += n
        ln.edge_counts.update(edges)
        # Sample: every record at a low rate, else at most SAMPLE_PER_S a second, evenly.
        ln.allowance = min(SAMPLE_PER_S, ln.allowance + (now - ln.last_refill) * SAMPLE_PER_S)
        ln.last_refill = now
        size = len(records)
        picks: Iterable[int]
        if ln.total <= ALL_BELOW:
            picks = range(size)
        else:
            k = min(size, int(ln.allowance))
            picks = [int((j + 0.5) * size / k) for j in range(k)] if k else ()
        sampled = 0
        for i in picks:
            rec = records[i]
            if (rec.get("kind"), rec.get("outcome")) in edges_of:
                ln.pending.append(rec)
                sampled += 1
        if ln.total > ALL_BELOW:
            ln.allowance -= sampled
        ln.sampled += sampled
        ln.window.append((now, n, sampled, edges))
        self._apply_rates(ln, now)
        self._wake()

    def set_gauges(self, lane: int, gauges: dict) -> None:
        ln = self._lane(lane)
        if ln is None:
            return
        now = time.monotonic()
        ln.gauges = dict(gauges)
        batches = int(gauges.get("batches", 0) or 0)
        if batches < ln.batches:  # a new run
            ln.batches = batches
        elif batches > ln.batches:
            new = min(FLUSH_PER_CALL, batches - ln.batches)
            ln.batches = batches
            if ln.queues:  # one token per new batch, spaced out; a backlog beyond FLUSH_AHEAD_S is dropped
                at = max(now, ln.next_flush)
                for _ in range(new):
                    if at - now > FLUSH_AHEAD_S or not self._launch(ln, FLUSH_PATH, at):
                        break
                    at += FLUSH_GAP_S
                ln.next_flush = at
        writes = gauges.get("db_writes")
        if writes is not None:
            if ln.db_writes and writes < ln.db_writes[-1][1]:
                ln.db_writes.clear()
            ln.db_writes.append((now, int(writes)))
        self._apply_gauges(ln)
        self._apply_rates(ln, now)
        self._wake()

    def _launch(self, ln: Lane, route, t0: float) -> bool:
        if len(self.tokens) >= MAX_TOKENS or not ln.items:
            return False
        nodes, kind, fail = route
        edges = ln.items["edges"]
        hops = []
        for a, b in itertools.pairwise(nodes):
            key = edge_key(a, b)
            hops.append((edges[key][0], key != (a, b)))
        item = QGraphicsPathItem(self._shapes[kind])
        item.setPen(self._token_pen())
        item.setBrush(QBrush(QColor(TOKENS[kind][0])))
        item.setZValue(10)
        item.setVisible(False)
        item.setPos(self._at(hops[0], 0.0))
        self._scene.addItem(item)
        self.tokens.append(Token(item, hops, t0, fail, self.lanes.index(ln)))
        return True

    def _at(self, hop, f: float) -> QPointF:
        """Where a token is a fraction f along a hop: on the edge, shifted a little to the right
        of its direction of travel, so requests and replies on one edge pass side by side."""
        path, rev = hop
        g = 1.0 - f if rev else f
        p = path.pointAtPercent(min(1.0, max(0.0, g)))
        e = 0.02 if g < 0.98 else -0.02
        q = path.pointAtPercent(g + e)
        dx, dy = q.x() - p.x(), q.y() - p.y()
        if (e < 0) != rev:  # q lies behind p in the direction of travel
            dx, dy = -dx, -dy
        n = (dx * dx + dy * dy) ** 0.5
        if n == 0:
            return p
        k = SIDE_OFFSET * self._s / n
        return QPointF(p.x() - dy * k, p.y() + dx * k)

    def _wake(self) -> None:
        if not self.timer.isActive():
            self.timer.start()

    def _tick(self) -> None:
        now = time.monotonic()
        for ln in self.lanes:
            if ln.pending and now >= ln.next_launch and len(self.tokens) < MAX_TOKENS:
                rec = ln.pending.popleft()
                route = PATHS[ln.strategy].get((rec.get("kind"), rec.get("outcome")))
                if route is not None and self._launch(ln, route, now):
                    ln.next_launch = now + LAUNCH_GAP_S
                    ln.expire(now)
                    text = describe(ln.strategy, rec)
                    if ln.total > ALL_BELOW:
                        text += f" — showing {ln.sampled:,} of {ln.total:,} requests/s"
                    ln.narration = text
                    self._apply_narration(ln)
        alive = []
        for tok in self.tokens:
            el = now - tok.t0
            if el < 0:
                alive.append(tok)
                continue
            i = int(el / HOP_S)
            n = len(tok.hops)
            if i >= n:
                if tok.fail and el < n * HOP_S + LINGER_S:
                    tok.item.setPos(self._at(tok.hops[-1], 1.0))
                    tok.item.setVisible(True)
                    alive.append(tok)
                else:
                    self._scene.removeItem(tok.item)
                continue
            f = (el - i * HOP_S) / HOP_S
            tok.item.setPos(self._at(tok.hops[i], f))
            tok.item.setVisible(True)
            alive.append(tok)
        self.tokens = alive
        if now - self._last_labels >= LABEL_EVERY_S:
            self._last_labels = now
            busy = False
            for ln in self.lanes:
                self._apply_rates(ln, now)
                busy = busy or bool(ln.window) or (ln.queues and ln.flush_rate(now) > 0)
            if not busy and not self.tokens and not any(ln.pending for ln in self.lanes):
                self.timer.stop()
