"""The window's actions, declared once: every command's text, keys, menu, toolbar, handler and tip.

:data:`ACTIONS` is the one table. :func:`build` makes a QAction of each entry, adds it to the
window (so its keys work with the menu bar and toolbars hidden, as in presentation mode), puts
it in its menu and toolbar, and gives the key sheet (the "?" dialog) its rows. An entry's
handler is a method of the window, named (``"session.heal"``: a method of one of its parts),
called with the entry's own ``args`` and nothing else: QAction's ``triggered`` passes a
``checked`` flag, and a handler with a ``path=None`` parameter once took it for a file name
(issue 23, drift 4). The fault actions are derived from :mod:`engine.faultkinds` (a kind's
``action``, ``keys`` and ``variants``); the speeds, themes, percentiles and charts from their
own lists. Every entry has a menu and keys, or says why not (``no_menu``, ``no_keys``): the
user-path tests trigger each one through its menu entry and through its keys.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..engine.config import STRATEGIES
from ..engine.faultkinds import FAULTS, FaultKind, Variant
from .charts import CHART_NAMES, PERCENTILES
from .theme import THEMES

#: The strategy box: all three side by side, or one.
LANE_CHOICES = [("All three side by side", list(STRATEGIES))] + [(s, [s]) for s in STRATEGIES]
SPEEDS = [
    ("Slow motion · 2/s", 2.0),
    ("Walk · 20/s", 20.0),
    ("Jog · 200/s", 200.0),
    ("Run · 2,000/s", 2000.0),
    ("Full speed", 0.0),
]
CHART_TITLES = (
    "Read latency",
    "Write latency",
    "Throughput",
    "Hit ratio",
    "Write queue depth",
    "DB reads and writes",
    "Errors and rejected",
    "Stale reads and lost writes",
)
PERCENTILE_KEYS = {"p50": "Alt+5", "p95": "Alt+9", "p99": "Alt+1"}
#: PgDown (a presenter's clicker): start, then each fault with a window action in turn.
PRESENTER_CYCLE = tuple(k.name for k in FAULTS if k.action)
#: The faults whose window action turns them on and off (their buttons look pressed while on).
TOGGLES = tuple(k for k in FAULTS if k.toggles)
#: The menus, in the menu bar's order: name -> title (with its Alt letter). A submenu is
#: named "View/Latency charts show" in an entry's ``menu``.
MENUS = {"File": "&File", "Run": "&Run", "Faults": "F&aults", "Time": "&Time", "View": "&View", "Help": "&Help"}
#: The toolbars: name -> (title, object name).
TOOLBARS = {"presenter": ("Presenter", "presenter-toolbar"), "faults": ("Faults", "fault-toolbar")}


@dataclass(frozen=True)
class Act:
    """One command of the window."""

    name: str
    text: str
    keys: tuple[str, ...]
    #: The window's method (dotted: a method of one of its parts), called with ``args`` only.
    handler: str
    args: tuple = ()
    menu: str = ""
    toolbar: str = ""
    tip: str = ""
    checkable: bool = False
    #: Checkable entries of one group exclude each other (a theme, a percentile).
    group: str = ""
    #: It works in presentation mode (its keys; the menus are hidden there). Every entry does.
    present: bool = True
    #: It is shown (and its keys work) in a replay window (no lab: a fault there says so).
    replay: bool = True
    #: Why it has no menu entry / no keys, when it has none.
    no_menu: str = ""
    no_keys: str = ""
    #: A separator before it, in its menu and in its toolbar.
    separator: bool = False
    #: The window's attribute for it (``act_start``), if the window keeps one.
    attr: str = ""

    @property
    def key_text(self) -> str:
        return " / ".join(self.keys)


def fault_tip(kind: FaultKind, variant: Variant | None = None) -> str:
    """The fault's sentence with the action's values in place of its words (``MS`` → 20)."""
    values = kind.live_values(variant)
    text = kind.sentence
    for p in kind.params:
        value = values[p.name]
        shown = f"{value:,}" if isinstance(value, int) else f"{value:g}" if isinstance(value, float) else value
        text = text.replace(p.name.upper(), str(shown))
    if kind.toggles:
        text += "; the key turns it on and off"
    elif "duration" in values:
        text += f", for {values['duration']:g} s"
    if "op" in values:  # a burst's sentence names both ops; the action does one
        text = text.replace("reads or writes", f"{values['op']}s")
    label = variant.text if variant is not None else kind.action or kind.label
    return f"{label}: {text}"


def fault_actions() -> list[Act]:
    """One entry per fault kind with a window action, and one per variant (the read burst)."""
    out = []
    for kind in FAULTS:
        if kind.action is None:
            continue
        out.append(
            Act(
                kind.name,
                kind.action,
                kind.keys,
                "fire_fault",
                (kind.name,),
                menu="Faults",
                toolbar="faults",
                tip=fault_tip(kind),
                checkable=kind.toggles,
                attr=f"act_{kind.command}",
            )
        )
        for i, v in enumerate(kind.variants):
            slug = v.text.lower().replace(" ", "_")
            out.append(
                Act(
                    f"{kind.name}-{i + 1}",
                    v.text,
                    v.keys,
                    "fire_fault",
                    (kind.name, i),
                    menu="Faults",
                    toolbar="faults",
                    tip=fault_tip(kind, v),
                    attr=f"act_{slug}",
                )
            )
    return out


def _file() -> list[Act]:
    no_key = "one of the PNG exports: Ctrl+E exports the whole window, Ctrl+Alt+E at 2×"
    return [
        Act("open-scenario", "Open scenario…", ("Ctrl+O",), "open_scenario", menu="File"),
        Act(
            "save-scenario",
            "Save scenario…",
            ("Ctrl+S",),
            "save_scenario",
            menu="File",
            tip="save the knobs, lanes, backends and faults as a scenario file",
        ),
        Act(
            "open-recording",
            "Open recording…",
            ("Ctrl+Shift+O",),
            "open_recording",
            menu="File",
            tip="replay a recording in a window of its own",
            separator=True,
        ),
        Act(
            "save-recording",
            "Save recording as…",
            ("Ctrl+Shift+R",),
            "save_recording",
            menu="File",
            tip="copy this run's recording (as far as it goes) to a file",
        ),
        Act(
            "export-report",
            "Export report (HTML)…",
            ("Ctrl+Shift+H",),
            "export_report",
            menu="File",
            tip="the run as one self-contained HTML file",
        ),
        Act(
            "export-window",
            "Export window as PNG…",
            ("Ctrl+E",),
            "export_png",
            ("window",),
            menu="File",
            separator=True,
        ),
        Act(
            "export-window-2x",
            "Export window as PNG at 2×…",
            ("Ctrl+Alt+E",),
            "export_png",
            ("window", None, 2.0),
            menu="File",
        ),
        Act("export-flow", "Export flow view as PNG…", (), "export_png", ("flow",), menu="File", no_keys=no_key),
        Act("export-charts", "Export charts as PNG…", (), "export_png", ("charts",), menu="File", no_keys=no_key),
        Act("export-svg", "Export charts as SVG…", ("Ctrl+Shift+S",), "export_svg", menu="File"),
        Act("export-csv", "Export chart data as CSV…", ("Ctrl+Shift+E",), "export_csv", menu="File"),
        Act("quit", "Quit", ("Ctrl+Q",), "close", menu="File", separator=True),
    ]


def _run() -> list[Act]:
    speeds = [
        Act(f"speed-{i + 1}", name, (str(i + 1),), "set_speed", (i,), menu="Run/Speed", tip=f"speed: {name}")
        for i, (name, _) in enumerate(SPEEDS)
    ]
    return [
        Act(
            "start",
            "Start",
            ("Space",),
            "session.toggle_pause",
            menu="Run",
            toolbar="presenter",
            tip="start / pause the clients",
            attr="act_start",
        ),
        Act(
            "reset",
            "Reset",
            ("R",),
            "reset",
            menu="Run",
            toolbar="presenter",
            replay=False,
            tip="reset: a fresh lab with the current knobs",
            attr="act_reset",
        ),
        Act(
            "restart",
            "Restart",
            ("Shift+R", "Home"),
            "restart",
            menu="Run",
            toolbar="presenter",
            tip="restart: a fresh lab, started at once (an opened scenario from its beginning)",
            attr="act_restart",
        ),
        *speeds,
        Act(
            "step",
            "Step",
            ("N",),
            "session.step",
            menu="Run",
            toolbar="presenter",
            tip="step: one request of each lane (pauses first), its hops to completion",
            attr="act_step",
        ),
        Act(
            "next",
            "Next fault in turn",
            ("PgDown",),
            "presenter_next",
            menu="Run",
            tip="clicker: start, then the next fault in turn",
        ),
        Act(
            "pause-clicker",
            "Pause (clicker)",
            (".",),
            "session.toggle_pause",
            tip="clicker: pause / resume",
            no_menu="a clicker's key for Run → Start (Space)",
        ),
    ]


def _heal_and_help() -> list[Act]:
    return [
        Act(
            "heal",
            "Heal all",
            ("H", "Esc"),
            "session.heal",
            menu="Faults",
            toolbar="faults",
            separator=True,
            tip="kill switch: heal every fault now",
            attr="act_heal",
        ),
        Act(
            "heal-clicker",
            "Heal (clicker)",
            ("PgUp",),
            "session.heal",
            tip="clicker: heal every fault",
            no_menu="a clicker's key for Faults → Heal all (H)",
        ),
        Act(
            "keys",
            "Keys",
            ("?", "F1"),
            "show_keys",
            menu="Help",
            toolbar="faults",
            tip="show every key",
            attr="act_keys",
        ),
        Act("about", "About Cache Studio", (), "about", menu="Help", no_keys="read once, from the Help menu"),
    ]


def _time() -> list[Act]:
    return [
        Act(
            "right",
            "Step or forward",
            ("Right",),
            "step_or_forward",
            menu="Time",
            tip="→: step when showing now; 1 s forward when scrubbed back",
        ),
        Act("back-1", "Back 1 s", ("Left",), "scrub_by", (-1.0,), menu="Time", tip="show the run 1 s earlier"),
        Act(
            "back-10", "Back 10 s", ("Shift+Left",), "scrub_by", (-10.0,), menu="Time", tip="show the run 10 s earlier"
        ),
        Act(
            "forward-10",
            "Forward 10 s",
            ("Shift+Right",),
            "scrub_by",
            (10.0,),
            menu="Time",
            tip="show the run 10 s later",
        ),
        Act(
            "previous-fault",
            "Previous fault",
            ("Ctrl+Left",),
            "scrub_fault",
            (-1,),
            menu="Time",
            tip="back to the previous fault",
        ),
        Act("next-fault", "Next fault", ("Ctrl+Right",), "scrub_fault", (1,), menu="Time", tip="on to the next fault"),
        Act("live", "Live", ("End",), "session.live", menu="Time", tip="back to now (live)", attr="act_live"),
        Act(
            "slower",
            "Slower replay",
            ("[",),
            "replay_speed",
            (-1,),
            menu="Time",
            separator=True,
            tip="replay: slower (×¼ … ×16)",
        ),
        Act("faster", "Faster replay", ("]",), "replay_speed", (1,), menu="Time", tip="replay: faster (×¼ … ×16)"),
    ]


def _view_choices() -> tuple[list[Act], list[Act], list[Act]]:
    """The View menu's groups of choices: the themes, the latency percentile, the charts of
    presentation mode."""
    themes = [
        Act(
            f"theme-{name}",
            f"{name.capitalize()} theme",
            (),
            "set_theme",
            (name,),
            menu="View",
            checkable=True,
            group="theme",
            no_keys="chosen once, before the talk",
        )
        for name in THEMES
    ]
    percentiles = [
        Act(
            f"percentile-{p}",
            f"{p} only",
            (PERCENTILE_KEYS[p],),
            "set_percentile",
            (p,),
            menu="View/Latency charts show",
            checkable=True,
            group="percentile",
            tip=f"latency charts: {p} of each lane",
        )
        for p in PERCENTILES
    ]
    charts = [
        Act(
            f"present-chart-{name}",
            title,
            (),
            "choose_present_chart",
            (name,),
            menu="View/Charts in presentation mode",
            checkable=True,
            no_keys="four of eight charts, chosen before the talk",
        )
        for name, title in zip(CHART_NAMES, CHART_TITLES)
    ]
    return themes, percentiles, charts


def _view() -> list[Act]:
    themes, percentiles, charts = _view_choices()
    return [
        *themes,
        Act(
            "present",
            "Present",
            ("F11",),
            "toggle_present",
            menu="View",
            checkable=True,
            separator=True,
            tip="presentation mode: full screen, the flow view and four charts",
            attr="act_present",
        ),
        Act(
            "flip",
            "Other charts",
            ("G",),
            "flip_charts",
            menu="View",
            attr="act_flip",
            tip="when four charts are shown at a time (presentation mode, small windows): the other four",
        ),
        Act(
            "panel",
            "Panel",
            ("F9",),
            "toggle_panel",
            menu="View",
            toolbar="faults",
            checkable=True,
            tip="show / hide the side panel (anomalies, events, knobs)",
            attr="act_panel",
        ),
        Act(
            "zoom-in", "Zoom in", ("Ctrl+=", "Ctrl++"), "zoom", (1,), menu="View", tip="bigger text", attr="act_zoom_in"
        ),
        Act("zoom-out", "Zoom out", ("Ctrl+-",), "zoom", (-1,), menu="View", tip="smaller text", attr="act_zoom_out"),
        Act(
            "zoom-reset",
            "Actual size",
            ("Ctrl+0",),
            "zoom",
            (0,),
            menu="View",
            tip="text at the theme's size for this window",
            attr="act_zoom_reset",
        ),
        *percentiles,
        Act(
            "node-lines",
            "One line per node",
            ("Shift+N",),
            "toggle_node_lines",
            menu="View",
            checkable=True,
            tip="charts: also one thin line per app node (lanes run with several nodes)",
            attr="act_node_lines",
        ),
        *charts,
    ]


def action_table() -> tuple[Act, ...]:
    """Every action of the window, in the order of the key sheet."""
    return tuple(_run() + fault_actions() + _heal_and_help() + _view() + _time() + _file())


ACTIONS: tuple[Act, ...] = action_table()
BY_NAME: dict[str, Act] = {a.name: a for a in ACTIONS}


def missing(acts=ACTIONS) -> list[str]:
    """What an entry of the table lacks, one line each: a menu entry or keys, without saying why."""
    out = []
    for a in acts:
        if not a.menu and not a.no_menu:
            out.append(f"{a.name}: no menu entry and no reason (no_menu)")
        if not a.keys and not a.no_keys:
            out.append(f"{a.name}: no keys and no reason (no_keys)")
        if a.menu and a.menu.split("/")[0] not in MENUS:
            out.append(f"{a.name}: menu {a.menu!r} is not one of {', '.join(MENUS)}")
        if a.toolbar and a.toolbar not in TOOLBARS:
            out.append(f"{a.name}: toolbar {a.toolbar!r} is not one of {', '.join(TOOLBARS)}")
    return out


def resolve(window, handler: str):
    """The callable an entry names: a method of the window, or of one of its parts."""
    target = window
    for part in handler.split("."):
        target = getattr(target, part)
    return target


def build(window) -> dict:
    """The QActions of :data:`ACTIONS` for ``window``: added to it (their keys work with the
    menus hidden), in their menus and toolbars; returns {name: QAction}. The window's
    ``run_action(act)`` runs each when triggered."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QActionGroup
    from PySide6.QtWidgets import QToolBar

    menus = {name: window.menuBar().addMenu(title) for name, title in MENUS.items()}
    toolbars = {}
    for name, (title, object_name) in TOOLBARS.items():
        tb = QToolBar(title)
        tb.setObjectName(object_name)
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        window.addToolBar(tb)
        toolbars[name] = tb
    groups: dict[str, QActionGroup] = {}
    actions = {}
    for act in ACTIONS:
        a = qaction(window, act)
        if act.group:
            groups.setdefault(act.group, QActionGroup(window)).addAction(a)
        if act.menu:
            menu = _menu(menus, act.menu)
            if act.separator and not menu.isEmpty():
                menu.addSeparator()
            menu.addAction(a)
        if act.toolbar:
            if act.separator:
                toolbars[act.toolbar].addSeparator()
            toolbars[act.toolbar].addAction(a)
        actions[act.name] = a
        if act.attr:
            setattr(window, act.attr, a)
    window.toolbar, window.fault_bar = toolbars["presenter"], toolbars["faults"]
    return actions


def qaction(window, act: Act):
    """The QAction of one entry, added to ``window`` (its keys work whatever is hidden) and
    run by ``window.run_action(act)`` when triggered, Qt's ``checked`` left out."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QAction, QKeySequence

    a = QAction(act.text, window)
    a.setObjectName(f"action-{act.name}")
    a.setShortcuts([QKeySequence(k) for k in act.keys])
    a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
    what = act.tip or act.text
    a.setToolTip(f"{what} ({' or '.join(act.keys)})" if act.keys else what)
    a.setCheckable(act.checkable)
    a.triggered.connect(lambda _checked=False, act=act: window.run_action(act))
    window.addAction(a)
    return a


def _menu(menus: dict, path: str):
    """The menu (or submenu, made on first use) a ``menu`` path names."""
    if path not in menus:
        parent, _, title = path.rpartition("/")
        menus[path] = _menu(menus, parent).addMenu(title)
    return menus[path]


def key_rows() -> list[tuple[str, str]]:
    """The key sheet: (keys, what they do) of every entry with keys."""
    return [(a.key_text, a.tip or a.text) for a in ACTIONS if a.keys]
