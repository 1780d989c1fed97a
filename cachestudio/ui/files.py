"""The window's files: scenarios opened and saved, recordings opened and saved, the report and the exports.

:class:`FilesMixin` is the part of :class:`window.MainWindow` that reads and writes the files
the user names. Every name is asked through one seam, :meth:`ask_open_path` /
:meth:`ask_save_path` (a file dialog; the tests queue the answers in ``path_answers``), and
every file is written through :mod:`engine.outputs`: a file that is not ours is never
replaced, and a path that cannot be written is one line in the status bar
(``file_error``), never a traceback in a Qt slot.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QFileDialog, QMessageBox

from ..engine import scenario as scenarios
from ..engine.config import ConfigError
from ..engine.outputs import OutputError, OutputWriteError, write_output
from ..engine.scenariofile import scenario_toml
from ..engine.tempfolders import temp_folder
from .images import png_bytes
from .parts import WindowParts

#: The duration of a scenario saved with none open (a free run has no end of its own).
SAVED_DURATION_S = 60.0


def render(widget, ratio: float = 1.0) -> QPixmap:
    """The widget as it is on screen, at ``ratio`` × its size (2: for print and retina)."""
    if ratio == 1:
        return widget.grab()
    pix = QPixmap(round(widget.width() * ratio), round(widget.height() * ratio))
    pix.setDevicePixelRatio(ratio)
    pix.fill(widget.palette().window().color())
    widget.render(pix)  # drawn at the pixmap's ratio: text and lines at twice the resolution
    return pix


class FilesMixin(WindowParts):
    """Opening and saving (a part of MainWindow: it uses the window's session, charts,
    status bar and settings)."""

    def load_scenario(self, path: Path) -> bool:
        try:
            sc = scenarios.load(Path(path))
        except ConfigError as exc:
            self.statusBar().showMessage(str(exc), 15000)
            if self.isVisible():  # non-modal: the lab and the window go on
                self.scenario_error = QMessageBox(
                    QMessageBox.Icon.Warning, "Scenario not loaded", str(exc), QMessageBox.StandardButton.Ok, self
                )
                self.scenario_error.setModal(False)
                self.scenario_error.show()
            return False
        self.session.reset()
        self.session.configure(
            sc.base, sc.specs, sc.timeline, sc.restart_delay_s, duration_s=sc.duration_s, finish_at_end=bool(sc.expect)
        )
        self.scenario_name = sc.name
        self.session.scenario_info = {"name": sc.name, "title": sc.title, "description": sc.description}
        self.lesson = sc
        self.said = set()
        self._show_lesson()
        self.knobs.load(self.session.base)
        self._choose_lanes(sc)
        self._show_speed(self.session.base.workload.rate)  # the scenario's rate, as it runs
        self._lanes_changed()
        self.setWindowTitle(f"Cache Studio — {sc.name}")
        self.statusBar().showMessage(f"scenario {sc.name}: {sc.title}", 8000)
        return True

    def ask_open_path(self, title: str, start: str, filters: str) -> str | None:
        """A file to read, chosen by the user (None: cancelled); the next of ``path_answers``
        when one is queued (the user-path tests answer the dialog so)."""
        if self.path_answers:
            return self.path_answers.pop(0)
        path, _ = QFileDialog.getOpenFileName(self, title, start, filters)
        return path or None

    def ask_save_path(self, title: str, suggested: str, filters: str) -> str | None:
        """A file to write, chosen by the user (None: cancelled); see :meth:`ask_open_path`."""
        if self.path_answers:
            return self.path_answers.pop(0)
        path, _ = QFileDialog.getSaveFileName(self, title, suggested, filters)
        return path or None

    def _file_done(self, text: str, ms: int = 10000) -> bool:
        self.file_error = ""
        self.statusBar().showMessage(text, ms)
        return True

    def _file_failed(self, text: str) -> bool:
        """A file the user named could not be written or read: said in the status bar (one
        line, kept in ``file_error``), never a traceback."""
        self.file_error = text
        self.statusBar().showMessage(text, 15000)
        return False

    def open_scenario(self) -> bool:
        path = self.ask_open_path("Open scenario", str(scenarios.builtin_dir()), "Scenarios (*.toml)")
        return path is not None and self.load_scenario(Path(path))

    def scenario_state(self) -> scenarios.Scenario:
        """What File → Save scenario writes: the knobs, lanes (backends and nodes with them)
        and fault timeline in force, with the opened lesson's words and lines, if one is open."""
        s, sc = self.session, self.lesson
        lanes = [spec.build(s.base) for spec in s.specs]
        if sc is None:
            return scenarios.Scenario(
                name="saved",
                title="Saved from the studio window",
                description="",
                path=Path("saved.toml"),
                lanes=lanes,
                specs=list(s.specs),
                base=s.base,
                duration_s=SAVED_DURATION_S,
                restart_delay_s=s.restart_delay_s,
                timeline=dict(s.timeline),
            )
        return replace(
            sc,
            lanes=lanes,
            specs=list(s.specs),
            base=s.base,
            timeline=dict(s.timeline),
            restart_delay_s=s.restart_delay_s,
            duration_s=s.duration_s,
        )

    def save_scenario(self) -> bool:
        """The scenario in force as a file that opens as itself (engine.scenariofile),
        written through engine.outputs: a file that is not ours is never replaced."""
        path = self.ask_save_path("Save scenario", "scenario.toml", "Scenarios (*.toml)")
        if path is None:
            return False
        try:
            write_output(path, "scenario", scenario_toml(self.scenario_state()))
        except (OutputError, OutputWriteError, OSError) as exc:
            return self._file_failed(f"the scenario was not saved: {exc}")
        return self._file_done(f"saved {path}", 5000)

    def export_png(self, part: str = "charts", path: str | Path | None = None, ratio: float = 1.0) -> bool:
        """Save the window (or the flow view, the charts) as PNG at ``ratio`` × its size on
        screen; the status bar names the file. Written through engine.outputs: an existing
        symlink or device is never replaced."""
        if path is None:
            suffix = "" if ratio == 1 else f"@{ratio:g}x"
            path = self.ask_save_path(f"Export {part} as PNG", f"{part}{suffix}.png", "PNG (*.png)")
            if path is None:
                return False
        self.charts.redraw_all()
        widget = {"window": self, "flow": self.flow, "charts": self.lower_half}.get(part, self.charts)
        try:
            data = png_bytes(render(widget, ratio))
            write_output(path, "export", data)
        except (OutputError, OutputWriteError, OSError, RuntimeError) as exc:
            return self._file_failed(f"export failed: {exc}")
        what = {"window": "the window", "flow": "the flow view"}.get(part, "the charts")
        size = f" at {ratio:g}×" if ratio != 1 else ""
        return self._file_done(f"exported {what}{size} to {path}")

    def _recording_file(self) -> Path | None:
        """This window's recording: the replayed file, or the live run's (recorded as it
        goes, in the run's folder, up to its last flush)."""
        if self.replaying:
            from .replay import ReplaySession  # (imported already: this window's session is one)

            assert isinstance(self.session, ReplaySession)
            return Path(self.session.recording.path)
        path = self.session.recording_path
        if path is None or not path.exists():
            self.statusBar().showMessage("nothing recorded yet: start the lab (Space); every run is recorded", 8000)
            return None
        return path

    def open_recording(self, path: str | Path | None = None):
        """Replay a recording in a window of its own (no lab); returns it, or None."""
        from ..engine.recording import RecordingError, read_recording, reading

        if path is None:
            path = self.ask_open_path("Open recording", "", "Recordings (*.csrec);;All files (*)")
            if path is None:
                return None
        try:
            with reading(path):
                rec = read_recording(path)
        except (RecordingError, OSError) as exc:
            self._file_failed(f"cannot open the recording: {exc}")
            return None
        w = type(self)(self.settings, replay=[rec])
        w.resize(self.size())
        w.show()
        w.start()
        self._replays = getattr(self, "_replays", []) + [w]
        if not rec.complete:
            w.statusBar().showMessage(f"{rec.note}; shown up to {rec.end_time:.1f} s", 15000)
        return w

    def save_recording(self, path: str | Path | None = None) -> bool:
        """Copy this run's recording (as far as it goes) to a file of the user's."""
        src = self._recording_file()
        if src is None:
            return False
        if path is None:
            path = self.ask_save_path("Save recording", "run.csrec", "Recordings (*.csrec)")
            if path is None:
                return False
        try:
            data = src.read_bytes()
            write_output(path, "recording", data)
        except (OutputError, OutputWriteError, OSError) as exc:
            return self._file_failed(f"saving the recording failed: {exc}")
        return self._file_done(f"recording saved to {path} ({len(data) / 1e6:.1f} MB)")

    def export_report(self, path: str | Path | None = None) -> bool:
        """The run as one self-contained HTML file (a hand-out), from its recording."""
        src = self._recording_file()
        if src is None:
            return False
        if path is None:
            path = self.ask_save_path("Export report", "report.html", "HTML (*.html)")
            if path is None:
                return False
        from ..engine.htmlreport import render_report
        from ..engine.recording import RecordingError, read_recording, reading, replay_summary
        from ..engine.timemachine import Tape

        try:
            with reading(src):
                rec = read_recording(src)
                tape = Tape.from_recording(rec)
                html = render_report(
                    replay_summary(rec), rec.header, tape.series_lists(), tape.group_list(), tape.node_series_lists()
                )
            write_output(path, "report", html)
        except (RecordingError, OutputError, OutputWriteError, OSError) as exc:
            return self._file_failed(f"the report failed: {exc}")
        return self._file_done(f"report written to {path}")

    def export_svg(self, path: str | Path | None = None) -> bool:
        """The charts on screen as one SVG (vector: sharp at any size)."""
        if path is None:
            path = self.ask_save_path("Export charts as SVG", "charts.svg", "SVG (*.svg)")
            if path is None:
                return False
        self.charts.redraw_all()
        if not self.charts.export_svg(path):
            return self._file_failed(f"export failed: {self.charts.last_export_error}")
        return self._file_done(f"exported the charts as SVG to {path}")

    def export_csv(self, path: str | Path | None = None) -> bool:
        """Every chart row of every lane as CSV, written through engine.outputs: the rows
        are made in a scratch folder of ours, then written to the user's file as any
        export is (a file that is not ours is never replaced)."""
        if path is None:
            path = self.ask_save_path("Export chart data", "charts.csv", "CSV (*.csv)")
            if path is None:
                return False
        try:
            with temp_folder("csv") as scratch:
                rows = self.charts.export_csv(Path(scratch) / "charts.csv")
                data = (Path(scratch) / "charts.csv").read_bytes()
            write_output(path, "export", data)
        except (OutputError, OutputWriteError, OSError) as exc:
            return self._file_failed(f"export failed: {exc}")
        return self._file_done(f"{rows:,} rows written to {path}", 5000)
