"""The window's narration: what each event did, in the caption, the Events tab and the
outcome dialogs, and the lesson's lines.

:class:`NarrationMixin` is the part of :class:`window.MainWindow` that tells the run's story:
each event of the lab is shaded on the charts, put on the event strip and in the Events
tab, and said in the caption with what it did (measured by the observer, engine.outcomes);
an opened lesson's line for a fault is said as it fires (a line with ``pause`` pauses the
run there); the summary says what each fault did when a scenario ends.
"""

from __future__ import annotations

import html
import re

from PySide6.QtWidgets import QTableWidget, QTableWidgetItem, QTreeWidgetItem

from ..engine.faultkinds import BY_NAME as FAULT_KINDS
from ..engine.faultkinds import FAULTS
from .actions import TOGGLES
from .events import FAILURES, FAULT_EVENTS, event_label
from .parts import TableDialog, WindowParts
from .theme import lane_style

#: event kind -> chart shading it starts / ends: events.FAULT_EVENTS is the one table
SHADE_START = {kind: shade for kind, (shade, _) in FAULT_EVENTS.items()}
SHADE_END = {end: shade for shade, end in FAULT_EVENTS.values() if end}
MOMENTS = {"stampede", "cold"}
#: events that say a lab failed (DESIGN.md §6): shown until the next run, not for seconds
FAILURE_KINDS = FAILURES
#: The event that starts each kind of scenario fault (a lesson's say lines are matched to it).
LESSON_KINDS = {k.start_event: k.name for k in FAULTS}
LESSON_MATCH_S = 0.5  # a fault fires within this of its time in the scenario


def first_sentences(text: str, limit: int = 180) -> str:
    """As many whole sentences of ``text`` as fit in ``limit`` characters (at least one,
    cut with "…" if it alone is longer); whitespace collapsed."""
    words = " ".join(text.split())
    out = ""
    for sentence in re.split(r"(?<=[.!?])\s+", words):
        if out and len(out) + 1 + len(sentence) > limit:
            break
        out = f"{out} {sentence}".strip()
    return out if len(out) <= limit else out[: limit - 1].rstrip() + "…"


def short_name(lane: str) -> str:
    return lane_style(lane)[2]


def fault_rows(windows: list[dict], names: list[str]) -> list[list[str]]:
    """Header and rows of the "what each fault did" table (the command line's cells)."""
    from ..engine.outcomes import fault_table

    return fault_table(windows, names) if windows else []


class NarrationMixin(WindowParts):
    """Events, what they did, and the lesson (a part of MainWindow: it uses the window's
    session, strip, caption bar, charts, Events tab and lesson view)."""

    def _on_event(self, ev: dict) -> None:
        kind, t = ev["kind"], ev["start"]
        if kind in SHADE_START:
            shade = SHADE_START[kind]
            end = t + 0.25 if shade in MOMENTS else None  # a moment, not a window
            # A burst while one is still shaded joins its band: the engine queues bursts
            # and says "burst-end" once, when no lab has any burst left.
            self.charts.fault(shade, t, end, event_label(ev), merge=shade == "burst")
        elif kind in SHADE_END:
            self.charts.fault_end(SHADE_END[kind], t)  # closes every open band of that kind
        if kind == "stampede-done":
            self._stampede_done(ev)
        if kind == "backends" and ev.get("lane"):  # what the lane talks to: named on its boxes
            names = [ln.name for ln in self.flow.lanes]
            if ev["lane"] in names:
                self.flow.backend_label(names.index(ev["lane"]), ev["detail"])
        say = self._lesson_line(ev)
        shown = self.strip.add(ev)
        if shown is not None:
            self._event_row(shown)
            if say is not None:  # the lesson's line for this fault, said as it fires, then what it did
                if say["say"]:
                    shown["say"] = say["say"]
                self.caption_bar.say(self._caption(shown), shown)
            elif kind in FAULT_EVENTS or kind in FAILURES or kind == "heal":
                self.caption_bar.say(self._caption(shown), shown)
        if kind in ("slow-db-start", "slow-db-end", "slow-cache-start", "slow-cache-end", "heal"):
            self._refresh_injected()
        if self._rebuilding:
            pass  # a moment of the tape shown again: nothing new to say
        elif kind == "pause" and self.session.scenario_ended:
            self._on_scenario_ended(self.session.duration_s)  # the pause it made says why
        elif kind in FAILURE_KINDS:  # a lab failed: said until the next reset, not for 6 s
            self.lab_failures.append(f"{t:.2f} s  {ev['detail']}")
            self.statusBar().showMessage(f"lab failure at {t:.2f} s: {ev['detail']}")
            self.refresh_status()
        elif kind not in ("config",):
            injected = " [injected]" if ev.get("injected") else ""
            detail = ev["detail"]
            # a speed change says so itself ("speed: 2 operations/s"), not as a knob
            what = detail if kind == "knob" and detail.startswith("speed:") else f"{kind}: {detail}"
            self.statusBar().showMessage(f"{t:.2f} s  {what}{injected}", 6000)

    @staticmethod
    def _event_key(kind: str, start: float) -> tuple[str, float]:
        return kind, round(float(start), 3)

    def _outcome_of(self, ev: dict) -> dict | None:
        """The fault window (engine.outcomes) an event of the strip opened, if known yet."""
        run = self.session.view
        if run is None or ev.get("scheduled"):
            return None
        wid = self.outcome_ids.get(self._event_key(ev["kind"], ev["start"]))
        return run.outcomes.get(wid) if wid is not None else None

    def _stampede_done(self, ev: dict) -> None:
        """A lane's stampede finished: its DB reads go with the stampede it belongs to (the
        latest before it), in the caption and the Events tab (the stampede's story is how
        many of its readers reached the database, lane by lane)."""
        m = re.match(
            r"(.+?): (\d+) readers of (\S+) caused (\d+) DB reads?.*\(protection: ([^)]*)\)", ev.get("detail") or ""
        )
        stampede = next(
            (e for e in reversed(self.strip.events) if e["kind"] == "stampede" and e["start"] <= ev["start"]), None
        )
        if m is None or stampede is None:
            return
        lane, readers, key, reads, protection = m.groups()
        lane = ev.get("lane") or lane
        stampede.setdefault("done", {})[lane] = (int(readers), key, int(reads), protection)
        if self.caption_bar.caption_event is stampede and self.caption_bar.caption.text():
            self.caption_bar.say(self._caption(stampede), stampede)
        item = self.event_rows.get(self._event_key("stampede", stampede["start"]))
        if item is not None:
            item.setText(2, self._stampede_text(stampede))

    def _stampede_text(self, ev: dict) -> str:
        done = ev.get("done", {})
        if not done:
            return ""
        readers, key, _, _ = next(iter(done.values()))
        order = self.session.strategies
        lanes = sorted(done, key=lambda lane: order.index(lane) if lane in order else len(order))
        parts = [
            f"{lane} {done[lane][2]:,} DB read{'s' if done[lane][2] != 1 else ''}"
            + (f" ({done[lane][3]})" if done[lane][3] != "none" else "")
            for lane in lanes
        ]
        return f"{readers} readers of {key} caused: " + "; ".join(parts)

    def _caption(self, ev: dict) -> str:
        """One line about a fault: what it did (measured) — after the lesson's line, if the
        lesson says one here."""
        text = self._what_it_did(ev)
        say = ev.get("say")
        if not say:
            return text
        head = f"{ev['start']:.1f} s — "
        if text.endswith("measuring what it does…"):
            return head + say
        return head + say + "  →  " + (text[len(head) :] if text.startswith(head) else text)

    def _what_it_did(self, ev: dict) -> str:
        if ev["kind"] == "stampede" and ev.get("done"):
            return f"{ev['start']:.1f} s — stampede: {self._stampede_text(ev)}"
        w = self._outcome_of(ev)
        if w is not None and w.get("caption"):
            return w["caption"]
        detail = ev.get("detail") or ""
        if ev["kind"] in FAILURES or ev["kind"] == "heal":
            return f"{ev['start']:.1f} s — {detail}"
        return f"{ev['start']:.1f} s — {ev['label']}: measuring what it does…"

    def _outcome_text(self, w: dict | None) -> str:
        if w is None:
            return ""
        parts = []
        for lane, x in w.get("lanes", {}).items():
            bits = [f"{x['ops']:,} ops"]
            p99 = max((v for v in (x.get("read_p99_ms"), x.get("write_p99_ms")) if v is not None), default=None)
            if p99 is not None:
                bits.append(f"p99 {p99:g} ms")
            for key, word in (
                ("errors", "errors"),
                ("rejected", "rejected"),
                ("indeterminate", "indeterminate"),
                ("stale_reads", "stale"),
                ("lost_writes", "lost"),
            ):
                if x.get(key):
                    bits.append(f"{x[key]:,} {word}")
            parts.append(f"{short_name(lane)}: " + ", ".join(bits))
        return "; ".join(parts) + (" (so far)" if w.get("open") else "")

    def _event_row(self, ev: dict) -> None:
        item = QTreeWidgetItem([f"{ev['start']:.1f}", ev["label"], ""])
        item.setToolTip(1, ev.get("detail") or "")
        self.events_list.addTopLevelItem(item)
        self.event_items.append((ev, item))
        self.event_rows[self._event_key(ev["kind"], ev["start"])] = item

    def _on_outcomes(self, windows: list[dict]) -> None:
        """What each fault did, as the observer measures it: the Events tab, the caption
        (if it is about one of these), the open outcome dialog. Indexed: a run may have
        a thousand faults, and a few of them change every update."""
        for w in windows:
            key = self._event_key(w["kind"], w["start"])
            self.outcome_ids[key] = w["id"]
            item = self.event_rows.get(key)
            if item is not None and w["kind"] != "stampede":  # a stampede's row says its DB reads
                item.setText(2, self._outcome_text(w))
                item.setToolTip(2, w.get("caption", ""))
        about = self.caption_bar.caption_event
        if about is not None and self.caption_bar.caption.text():
            self.caption_bar.say(self._caption(about), about)
        dlg = self.outcome_dialog
        if dlg is not None and dlg.isVisible() and dlg.shown_event is not None:
            self._fill_outcome(dlg, dlg.shown_event)

    def _on_event_selected(self, current, _previous) -> None:
        ev = next((e for e, item in self.event_items if item is current), None)
        if ev is not None:
            self.charts.mark(ev["start"])

    def show_outcome(self, ev: dict) -> None:
        """What one event did, lane by lane (the command line's "what each fault did" row)."""
        dlg = self.outcome_dialog
        if dlg is None:
            dlg = self.outcome_dialog = TableDialog(self, "outcome-dialog")
        dlg.shown_event = ev
        self._fill_outcome(dlg, ev)
        self.charts.mark(ev["start"])
        for e, item in self.event_items:
            if e is ev:
                self.events_list.setCurrentItem(item)
        dlg.resize(round(640 * self.scale), round(300 * self.scale))
        dlg.show()
        dlg.raise_()

    def _fill_outcome(self, dlg, ev: dict) -> None:
        w = self._outcome_of(ev)
        dlg.setWindowTitle(f"{ev['start']:.1f} s — {ev['label']}")
        if ev.get("scheduled"):
            dlg.text.setText(f"{ev['label']} is scheduled at {ev['start']:.1f} s: it has not happened yet.")
            self._fill_table(dlg.table, [])
            return
        if w is None:
            dlg.text.setText(
                f"{ev['start']:.1f} s — {ev.get('detail') or ev['label']}\n(not a fault window: nothing to measure)"
                if ev["kind"] not in FAULT_EVENTS
                else f"{ev['start']:.1f} s — {ev.get('detail') or ev['label']}\n(measuring…)"
            )
            self._fill_table(dlg.table, [])
            return
        dlg.text.setText(w.get("caption") or ev["label"])
        self._fill_table(dlg.table, [w])

    def _fill_table(self, table: QTableWidget, windows: list[dict]) -> None:
        """The command line's "what each fault did" table, one row per fault window."""
        names = list(self.session.strategies)
        rows = fault_rows(windows, names)
        head, body = (rows[0], rows[1:]) if rows else (["during", "window s"] + names, [])
        table.clear()
        table.setColumnCount(len(head))
        table.setRowCount(len(body))
        table.setHorizontalHeaderLabels(head)
        table.verticalHeader().hide()
        for r, row in enumerate(body):
            for c, cell in enumerate(row):
                table.setItem(r, c, QTableWidgetItem(cell))
        table.resizeColumnsToContents()
        table.horizontalHeader().setStretchLastSection(True)

    def _on_scenario_ended(self, duration_s: float) -> None:
        name = self.scenario_name or "the scenario"
        if self._end_summary() is not None:  # a lesson's end: drained, audited, judged
            verdicts = self._verdicts()
            held = sum(v.held for v in verdicts or ())
            judged = f"{held} of {len(verdicts)} claims held" if verdicts is not None else "claims not judged"
            self.statusBar().showMessage(
                f"lesson {name} ended at {duration_s:g} s, drained and audited: {judged} (Lesson tab) — "
                "Shift+R runs it again"
            )
            self.caption_bar.say(f"{duration_s:g} s — {name} ended: {judged}; the Lesson tab says which")
            self._show_lesson()
        else:
            self.statusBar().showMessage(
                f"scenario {name} ended at {duration_s:g} s — Shift+R runs it again; Space goes on"
            )
            self.caption_bar.say(f"{duration_s:g} s — {name} ended: Shift+R runs it again, Space goes on")
        self.refresh_status()
        self.show_summary()

    def _verdicts(self) -> list | None:
        """The lesson's claims judged on the run's end-of-run summary, as ``check --run``
        judges them (None: the run has not ended, or a lab failed and nothing is judged)."""
        from ..engine.lessons import check

        sc, summary = self.lesson, self._end_summary()
        if sc is None or summary is None or self._lab_failure() is not None:
            return None
        return check(sc.expect, summary)

    def _end_summary(self) -> dict | None:
        """The summary of a lesson's run that ended as headless (session.RunView.summary)."""
        return getattr(self.session.run, "summary", None)

    def _lab_failure(self) -> str | None:
        """Why the ended run's claims are not judged (a lab failed, as ``check --run`` says), or None."""
        summary = self._end_summary()
        if summary is None:
            return None
        failures = [f for lane in summary["lanes"] for f in lane["failures"]] + summary["failures"]
        return failures[0]["reason"] if failures else None

    def show_summary(self) -> None:
        """The run's table: what each fault did, lane by lane, and the anomalies counted."""
        dlg = self.summary_dialog
        if dlg is None:
            dlg = self.summary_dialog = TableDialog(self, "summary-dialog")
        run = self.session.run
        windows = sorted(run.outcomes.values(), key=lambda w: (w["start"], w["id"])) if run is not None else []
        name = self.scenario_name or "this run"
        counts = []
        if run is not None:
            for lane in run.lanes:
                c = lane.auditor.counts
                found = ", ".join(f"{n:,} {k.replace('_', ' ')}s" for k, n in c.items() if n)
                counts.append(f"{lane.cfg.label}: {found or 'no anomalies'}")
        dlg.setWindowTitle(f"Summary — {name}")
        dlg.text.setText(
            f"{name} at {self.session.now():.1f} s. What each fault did (operations that began in its window):"
            if windows
            else f"{name} at {self.session.now():.1f} s: no faults."
        )
        self._fill_table(dlg.table, windows)
        dlg.text.setText(dlg.text.text() + "\n" + "\n".join(counts))
        dlg.resize(round(760 * self.scale), round(360 * self.scale))
        dlg.show()
        dlg.raise_()

    def active_faults(self) -> list[str]:
        """What is on now, with how long it has left where that is known."""
        run, now = self.session.view, self.session.view_now()
        out: list[str] = []
        if run is None:
            return out
        open_events = [e for e in self.strip.events if e.get("end_at") is None]
        outage = FAULT_KINDS["outage"]
        if run.outage_on:
            ev = next((e for e in reversed(open_events) if e["kind"] == outage.start_event), None)
            m = re.search(r"for ([0-9.]+) s", ev.get("detail", "")) if ev else None
            left = f" · {max(0.0, ev['start'] + float(m.group(1)) - now):.1f} s left" if m else ""
            out.append(f"{outage.label}{left}")
        for kind in TOGGLES:  # "slow DB +20 ms (injected)"
            ms = getattr(run, f"{kind.field}_ms", 0)
            if ms:
                out.append(kind.label.replace(" (injected)", "") + f" +{ms:g} ms" + (" (injected)" * kind.injected))
        down = [short_name(lane.cfg.label) for lane in run.lanes if lane.health() in ("down", "restarting")]
        if down:
            out.append(f"node down: {', '.join(down)}")
        if any(lane.burst_active() for lane in run.lanes):
            out.append(f"{FAULT_KINDS['burst'].label} under way")
        if run.paused:
            out.append("paused")
        return out

    def _lesson_line(self, ev: dict) -> dict | None:
        """The opened lesson's say line for the fault this event starts (once per run); a
        line with ``pause = true`` pauses the run there (live, not when shown again)."""
        sc = self.lesson
        kind = LESSON_KINDS.get(ev["kind"])
        if sc is None or kind is None or ev.get("scheduled"):
            return None
        for i, say in enumerate(sc.says):
            if i not in self.said and say["kind"] == kind and abs(say["at"] - ev["start"]) <= LESSON_MATCH_S:
                if not self._rebuilding:
                    self.said.add(i)
                    if say["pause"] and self.session.run is not None and not self.session.paused:
                        self.session.toggle_pause()
                    self._show_lesson()
                return say
        return None

    def _show_lesson(self) -> None:
        """The Lesson tab: title, what to watch for, what it teaches, the lines in order."""
        sc = self.lesson
        if sc is None:
            self.lesson_view.setHtml("<p>Open a scenario (File → Open scenario…) to see its lesson.</p>")
            return
        esc = html.escape
        parts = [f"<h3>{esc(sc.title or sc.name)}</h3>"]
        if sc.description:
            parts.append(f"<p>{esc(sc.description)}</p>")
        if sc.watch_for:
            parts.append(f"<p><b>Watch for:</b> {esc(sc.watch_for)}</p>")
        if sc.you_will_learn:
            parts.append(f"<p><b>You will learn:</b> {esc(sc.you_will_learn)}</p>")
        if sc.says:
            items = "".join(
                f"<li>{'✓ ' if i in self.said else ''}{say['at']:g} s, {esc(say['kind'])}: "
                f"{esc(say['say'])}{' <i>(pauses)</i>' if say['pause'] else ''}</li>"
                for i, say in enumerate(sc.says)
            )
            parts.append(f"<p><b>The lines</b></p><ol>{items}</ol>")
        if sc.expect:
            parts.append(self._claims_html())
        self.lesson_view.setHtml("".join(parts))

    def _claims_html(self) -> str:
        """The lesson's claims: each judged on the end-of-run audit once the run has ended
        (held / did not hold, the figure measured), "—" before."""
        sc, esc = self.lesson, html.escape
        verdicts = self._verdicts()
        if verdicts is None:
            failure = self._lab_failure()
            note = (
                f"not judged: a lab failed ({esc(failure)})"
                if failure
                else "judged at the lesson's end, on the same end-of-run audit as "
                f"<code>cachestudio check --run {esc(sc.name)}</code>"
            )
            waiting = "".join(f"<tr><td>— <code>{esc(c.text())}</code></td></tr>" for c in sc.expect)
            return f"<p><b>What it claims</b> ({note})</p><table>{waiting}</table>"
        rows = []
        for v in verdicts:
            why = f": {esc(v.why)}" if v.why else ""
            mark = "✓ held" if v.held else "✗ did not hold"
            claim = f"<code>{esc(v.claim.text())}</code>"
            rows.append(f"<tr><td><b>{mark}</b>: {claim} (measured {esc(v.measured())}{why})</td></tr>")
        held = sum(v.held for v in verdicts)
        return (
            f"<p><b>What it claims</b>: {held} of {len(verdicts)} held at the lesson's end (drained and "
            f"audited, as <code>cachestudio check --run {esc(sc.name)}</code>)</p><table>{''.join(rows)}</table>"
        )
