"""GUI figures for ``cachestudio bench --gui`` (DESIGN.md §7), measured offscreen at
1920x1080, in the normal window and in the presentation mode.

* frame interval: time between consecutive paints of the flow view (the animated part of
  the window) and between firings of a 16 ms probe timer (how long the event loop is ever
  kept busy), with the lab at full speed, all three lanes;
* the lab's throughput with the window attached vs headless, same plan, interleaved;
* time to first painted window vs a bare PySide6 + pyqtgraph window (fresh processes).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import time
from contextlib import contextmanager
from dataclasses import replace

import numpy as np

from ..engine.config import STRATEGIES, LaneConfig, Workload
from ..engine.runner import Plan, run
from ..engine.tempfolders import make_folder


def _lanes(seed: int) -> list[LaneConfig]:
    return [LaneConfig(strategy=s, seed=seed, workload=Workload(rate=0.0)) for s in STRATEGIES]


def headless_ops(seed: int, duration_s: float) -> float:
    summary = run(Plan(lanes=_lanes(seed), duration_s=duration_s))
    return sum(lane["ops_per_s"] for lane in summary["lanes"])


def rss_mib(pid: int) -> float | None:
    """Resident memory of a process, in MiB (Linux /proc; None elsewhere)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """A process's CPU time so far (user + system; Linux /proc; None elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().decode("ascii", "replace").rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


@contextmanager
def scratch_settings():
    """The window's settings in a file of our own, in a temporary folder removed after.
    Never ``os.devnull``: QSettings saves by writing a new file and renaming it over the
    old one, which, run as root, replaced the system's /dev/null with a regular file."""
    from PySide6.QtCore import QSettings

    folder = make_folder("bench")
    settings = QSettings(os.path.join(folder, "settings.ini"), QSettings.Format.IniFormat)
    try:
        yield settings
    finally:
        settings.sync()
        shutil.rmtree(folder, ignore_errors=True)


def window_ops_and_frames(
    seed: int, duration_s: float, size=(1920, 1080), memory_after_s: float | None = None, present: bool = False
) -> dict:
    """Drive the window offscreen with all three labs at full speed for ``duration_s``.
    With ``memory_after_s``: resident memory of the window and of the labs is read that
    long after the start (once the chart rings' window and the auditor's 40 s horizon
    are full: what is meant to be held is held), and again at the end."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    with scratch_settings() as settings:
        return _window_ops_and_frames(settings, seed, duration_s, size, memory_after_s, present)


def _run_until(app, done, check_ms: int = 50) -> None:
    """Run the event loop as the application does (blocked in exec until an event comes:
    no polling loop of our own competing with the labs for the cores) until ``done()``."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    timer = QTimer()
    timer.setInterval(check_ms)
    timer.timeout.connect(lambda: loop.quit() if done() else None)
    timer.start()
    if not done():
        loop.exec()
    timer.stop()


def _window_ops_and_frames(
    settings, seed: int, duration_s: float, size, memory_after_s: float | None, present: bool
) -> dict:
    from PySide6.QtCore import QEvent, QObject, QTimer
    from PySide6.QtWidgets import QApplication

    from .app import qt_app
    from .window import SPEEDS, MainWindow

    app = qt_app()
    win = MainWindow(settings)
    win.resize(*size)
    win.show()
    if present:
        win.set_present(True, full_screen=False)  # offscreen: the size asked, not the screen's
    win.speed_combo.setCurrentIndex(len(SPEEDS) - 1)  # full speed
    win.session.base = replace(win.session.base.with_knob("workload", "rate", 0.0), seed=seed)
    paints: list[float] = []
    probes: list[float] = []

    class PaintSpy(QObject):
        def eventFilter(self, obj, event):  # noqa: N802 - Qt's name
            if event.type() == QEvent.Type.Paint:
                paints.append(time.perf_counter())
            return False

    spy = PaintSpy()
    win.flow.viewport().installEventFilter(spy)
    probe = QTimer()
    probe.setInterval(16)
    probe.timeout.connect(lambda: probes.append(time.perf_counter()))
    win.start()
    deadline = time.monotonic() + 120
    _run_until(app, lambda: all(h == "running" for _, h in win.session.lab_health()) or time.monotonic() > deadline)
    if not all(h == "running" for _, h in win.session.lab_health()):
        raise RuntimeError("labs did not start")
    t_start = win.session.now()
    cpu_start = time.process_time()  # the window's own CPU time: what it takes from the labs
    observer_start = cpu_seconds(win.session.run.proc.pid)
    ops_start = sum(lane.stats.ops for lane in win.session.run.lanes)
    paints.clear()
    probe.start()
    memory: dict = {}

    def sample(tag: str) -> None:
        memory[f"window_{tag}"] = rss_mib(os.getpid())
        run = win.session.run  # the observer's process and the labs it started
        labs = [rss_mib(run.proc.pid)] + [rss_mib(lane.proc.pid) for lane in run.lanes]
        memory[f"labs_{tag}"] = sum(labs) if all(v is not None for v in labs) else None

    def finished() -> bool:
        if memory_after_s is not None and not memory and win.session.now() >= t_start + memory_after_s:
            sample("start")
        return win.session.now() >= t_start + duration_s

    _run_until(app, finished)
    probe.stop()
    if memory_after_s is not None:
        sample("end")
    elapsed = win.session.now() - t_start
    cpu = (time.process_time() - cpu_start) / elapsed
    observer_end = cpu_seconds(win.session.run.proc.pid)
    observer = (
        (observer_end - observer_start) / elapsed if observer_start is not None and observer_end is not None else None
    )
    win.session.tick()
    ops = sum(lane.stats.ops for lane in win.session.run.lanes) - ops_start
    win.close()
    QApplication.processEvents()
    # Deleted now, while Python is whole: left to PySide's clean-up at exit, the destruction
    # of pyqtgraph's items calls their Python overrides mid-teardown (SIGSEGV in shiboken).
    import shiboken6

    shiboken6.delete(win)
    QApplication.processEvents()

    def pct(stamps):
        d = np.diff(np.asarray(stamps)) * 1000.0
        return (
            (round(float(np.percentile(d, 50)), 1), round(float(np.percentile(d, 95)), 1))
            if len(d) > 2
            else (None, None)
        )

    return {
        "ops_per_s": ops / elapsed,
        "paint_ms": pct(paints),
        "probe_ms": pct(probes),
        "paints": len(paints),
        "memory": memory,
        "cpu_share": cpu,
        "observer_cpu_share": observer,
    }


def first_paint_s(kind: str) -> float:
    """Seconds to the first painted window in a fresh process: ``studio`` or ``bare``
    (:mod:`.first_paint`; started as ``cachestudio --bench-first-paint KIND``, which a
    frozen bundle runs too, where ``python -c`` does not exist)."""
    from .first_paint import command

    out = subprocess.run(
        command(kind),
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYQTGRAPH_QT_LIB": "PySide6"},
    )
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        raise RuntimeError(
            f"the {kind} first-paint process failed (status {out.returncode}): "
            f"{(out.stderr.strip().splitlines() or ['no output'])[-1]}"
        )
    return float(lines[-1])


def gui_figures(seed: int = 7, duration_s: float = 30.0, reps: int = 3, long_run_s: float | None = 600.0) -> list[dict]:
    """The window's figures (DESIGN.md §7). ``long_run_s``: the memory run (None: skipped)."""
    from ..engine.bench import figure_row, target_met

    headless: list[float] = []
    attached: dict[bool, list[float]] = {False: [], True: []}
    frames: dict[bool, list[dict]] = {False: [], True: []}
    for _ in range(reps):  # interleaved: A B C A B C …
        headless.append(headless_ops(seed, duration_s))
        for present in (False, True):
            w = window_ops_and_frames(seed, duration_s, present=present)
            attached[present].append(w["ops_per_s"])
            frames[present].append(w)
    studio, bare = [], []
    for _ in range(reps):
        studio.append(first_paint_s("studio"))
        bare.append(first_paint_s("bare"))
    rows = []
    for present, mode in ((False, "normal window"), (True, "presentation mode")):
        fr = frames[present]
        p95s = [f["paint_ms"][1] for f in fr if f["paint_ms"][1] is not None]
        p50s = [f["paint_ms"][0] for f in fr if f["paint_ms"][0] is not None]
        probe95 = [f["probe_ms"][1] for f in fr if f["probe_ms"][1] is not None]
        p95 = statistics.median(p95s) if p95s else None
        rows += [
            {
                "figure": f"frame interval p50 (flow view paints), {mode}",
                "value": statistics.median(p50s) if p50s else None,
                "unit": "ms",
                "reps": reps,
                "samples": p50s,
            },
            {
                "figure": f"frame interval p95 (flow view paints), {mode}",
                "value": p95,
                "unit": "ms",
                "target": "<= 33",
                "met": target_met(p95, "<= 33"),
                "reps": reps,
                "samples": p95s,
            },
            {
                "figure": f"event loop probe p95 (16 ms timer), {mode}",
                "value": statistics.median(probe95) if probe95 else None,
                "unit": "ms",
                "reps": reps,
                "samples": probe95,
            },
            figure_row(
                f"lab ops/s with the window attached, {mode}", attached[present], "headless", headless, ">= 0.8"
            ),
        ]
        for key, who in (("cpu_share", "the window's process"), ("observer_cpu_share", "the observer's process")):
            shares = [round(100 * f[key], 1) for f in fr if f.get(key) is not None]
            rows.append(
                {
                    "figure": f"CPU time of {who}, {mode}",
                    "value": statistics.median(shares) if shares else None,
                    "unit": "% of a core",
                    "reps": reps,
                    "samples": shares,
                }
            )
    rows.append(
        figure_row("time to first painted window", studio, "bare PySide6 + pyqtgraph window", bare, "<= 2.0", unit="s")
    )
    if long_run_s:
        m = window_ops_and_frames(seed, long_run_s, memory_after_s=min(60.0, long_run_s / 10))["memory"]
        for who, what in (("window", "the window's process"), ("labs", "the observer and the three labs")):
            start, end = m.get(f"{who}_start"), m.get(f"{who}_end")
            ratio = end / start if start and end else None
            rows.append(
                {
                    "figure": f"resident memory of {what}, end vs start of {long_run_s / 60:g} min",
                    "value": None if end is None else round(end, 1),
                    "unit": "MiB",
                    "yardstick": "the same at the start",
                    "yardstick_value": None if start is None else round(start, 1),
                    "ratio": None if ratio is None else round(ratio, 3),
                    "target": "<= 1.1",
                    "met": target_met(ratio, "<= 1.1"),
                    "reps": 1,
                }
            )
    return rows


def _scrubs_in_the_window(rec, at: list[float], rng, steps: int) -> tuple[list[float], list[float]]:
    """Milliseconds of each scrub in a replay window of ``rec`` at 1920x1080: a jump to each
    time of ``at`` (a click on the timeline), then ``steps`` 1 s steps (← →, dragging)."""
    from .app import qt_app, qt_environment

    qt_environment(offscreen=True)
    app = qt_app()
    from .window import MainWindow

    with scratch_settings() as settings:
        w = MainWindow(settings, replay=[rec])
        w.resize(1920, 1080)
        w.show()
        w.start()
        app.processEvents()

        def timed(times) -> list[float]:
            out = []
            for t in times:
                began = time.perf_counter()
                w.session.scrub(t)
                w.charts.redraw_all()
                app.processEvents()
                out.append((time.perf_counter() - began) * 1000)
            return out

        step_ms = timed(at)
        start = rng.uniform(0, max(0.0, w.session.tape.end - steps))
        key_ms = timed([start + k for k in range(steps)])
        w.close()
    return step_ms, key_ms


def scrub_figures(path, steps: int = 40, seed: int = 7) -> list[dict]:
    """The time machine on a recording: loading it, and each scrub step in the replay
    window (the tape's frame, every view rebuilt, the charts redrawn), at ``steps``
    positions across it in a shuffled order. Target: under 100 ms per step."""
    import random

    from ..engine.bench import target_met
    from ..engine.recording import read_recording
    from ..engine.timemachine import Tape

    began = time.perf_counter()
    rec = read_recording(path)
    read_s = time.perf_counter() - began
    began = time.perf_counter()
    tape = Tape.from_recording(rec)
    tape_s = time.perf_counter() - began
    frame_ms = []
    rng = random.Random(seed)
    at = [tape.end * (i + 0.5) / steps for i in range(steps)]
    rng.shuffle(at)
    for t in at:
        began = time.perf_counter()
        tape.frame(t)
        frame_ms.append((time.perf_counter() - began) * 1000)
    n = sum(len(o) for o in rec.ops)
    del tape
    step_ms, key_ms = _scrubs_in_the_window(rec, at, rng, steps)

    def p95_of(values):
        return sorted(values)[max(0, round(0.95 * len(values)) - 1)]

    p95, key95 = p95_of(step_ms), p95_of(key_ms)
    return [
        {
            "figure": f"recording read ({rec.end_time / 60:.1f} min, {n:,} operations)",
            "value": round(read_s, 2),
            "unit": "s",
            "reps": 1,
        },
        {"figure": "recording rebuilt into the window's updates", "value": round(tape_s, 2), "unit": "s", "reps": 1},
        {
            "figure": "tape frame at a scrubbed time (median)",
            "value": round(statistics.median(frame_ms), 2),
            "unit": "ms",
            "reps": steps,
        },
        {
            "figure": "scrub jump anywhere in the replay window, median",
            "value": round(statistics.median(step_ms), 1),
            "unit": "ms",
            "reps": steps,
        },
        {
            "figure": "scrub jump anywhere in the replay window, p95",
            "value": round(p95, 1),
            "unit": "ms",
            "target": "<= 100",
            "met": target_met(p95, "<= 100"),
            "reps": steps,
            "samples": [round(x, 1) for x in step_ms],
        },
        {
            "figure": "scrub 1 s step (← →, dragging), median",
            "value": round(statistics.median(key_ms), 1),
            "unit": "ms",
            "reps": steps,
        },
        {
            "figure": "scrub 1 s step (← →, dragging), p95",
            "value": round(key95, 1),
            "unit": "ms",
            "target": "<= 100",
            "met": target_met(key95, "<= 100"),
            "reps": steps,
            "samples": [round(x, 1) for x in key_ms],
        },
    ]
