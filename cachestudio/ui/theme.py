"""Colours, shapes and themes. Okabe–Ito (colour-blind safe); colour never stands alone:
every token kind also has its own shape, every lane its own line style and label. A
strategy's colour, pen and short label come from its declaration (engine/strategykinds.py),
a fault's shade from engine/faultkinds.py: nothing here names a strategy or a fault kind."""

from __future__ import annotations

from dataclasses import dataclass

from ..engine.faultkinds import SHADES
from ..engine.palette import OKABE_ITO
from ..engine.strategykinds import STRATEGY_KINDS

#: Request outcomes on the flow view: colour and shape (and a word in the legend).
TOKENS = {
    "hit": (OKABE_ITO["green"], "circle", "hit"),
    "miss": (OKABE_ITO["orange"], "triangle", "miss"),
    "write": (OKABE_ITO["blue"], "square", "write"),
    "flush": (OKABE_ITO["purple"], "diamond", "flush to DB"),
    "error": (OKABE_ITO["vermillion"], "cross", "error"),
    "rejected": (OKABE_ITO["black"], "bar", "rejected"),
}

#: Lanes on the charts: colour, Qt pen style name, short label (from each strategy's declaration).
LANES = {s.name: (OKABE_ITO[s.colour], s.pen, s.short) for s in STRATEGY_KINDS}

#: Colours for named lanes (two lanes of one strategy, say): those of the plan's strategy
#: lanes are skipped, so no two lanes of a plan share a colour.
_PALETTE = ("blue", "orange", "green", "vermillion", "purple", "sky", "black", "yellow")
_PENS = ("solid", "dash", "dot", "dashdot")
_NAMED: dict[str, tuple[str, str, str]] = {}
SHORT_MAX = 14


def lane_pairs(lanes) -> list[tuple[str, str]]:
    """(name, strategy) for each lane: a strategy's name, a (name, strategy) pair, or a
    LaneConfig (its label and strategy)."""
    out = []
    for lane in lanes:
        if isinstance(lane, str):
            out.append((lane, lane))
        elif isinstance(lane, tuple):
            out.append((str(lane[0]), str(lane[1])))
        else:
            out.append((lane.label, lane.strategy))
    return out


def short_label(name: str) -> str:
    if name in LANES:
        return LANES[name][2]
    return name if len(name) <= SHORT_MAX else name[: SHORT_MAX - 1].rstrip() + "…"


def register_lanes(lanes) -> list[tuple[str, str, str]]:
    """The colour, pen and short label of each lane of a plan; a strategy's lane keeps its
    own (its declaration's). Named lanes are remembered for :func:`lane_style`."""
    pairs = lane_pairs(lanes)
    taken = {LANES[name][0] for name, _ in pairs if name in LANES}
    free = [OKABE_ITO[c] for c in _PALETTE if OKABE_ITO[c] not in taken]
    styles, k = [], 0
    for i, (name, _) in enumerate(pairs):
        if name in LANES:
            styles.append(LANES[name])
            continue
        styles.append((free[k % len(free)], _PENS[i % len(_PENS)], short_label(name)))
        _NAMED[name] = styles[-1]
        k += 1
    return styles


def lane_style(name: str) -> tuple[str, str, str]:
    """Colour, pen and short label of a lane by its name (strategies and registered lanes)."""
    return LANES.get(name) or _NAMED.get(name) or (OKABE_ITO["black"], "solid", short_label(name))


def known_lane(name) -> bool:
    return name in LANES or name in _NAMED


#: The charts' and the event strip's shades: colour and the legend's words (engine/faultkinds.SHADES).
FAULT_SHADE = {name: (OKABE_ITO[colour], words) for name, (colour, words) in SHADES.items()}


@dataclass(frozen=True)
class Theme:
    name: str
    window: str
    panel: str
    text: str
    muted: str
    node: str
    node_border: str
    edge: str
    font_scale: float = 1.0
    line_width: float = 2.0


THEMES = {
    "light": Theme("light", "#f7f7f7", "#ffffff", "#1a1a1a", "#666666", "#eef3f8", "#34495e", "#9aa5b1"),
    "dark": Theme("dark", "#1e1f22", "#26282c", "#e8e8e8", "#a0a0a0", "#2f3440", "#b8c4d0", "#5c6670"),
    # For a projector: black on white, thick lines, big type.
    "projector": Theme(
        "projector",
        "#ffffff",
        "#ffffff",
        "#000000",
        "#222222",
        "#ffffff",
        "#000000",
        "#000000",
        font_scale=1.35,
        line_width=3.5,
    ),
}


def text_px(base_px: float, scale: float = 1.0) -> int:
    """A text size in pixels: ``base_px`` at scale 1, never below 1 (charts, strips)."""
    return max(1, round(base_px * scale))


#: The smallest text the charts draw at scale 1 (pixels): 11 px on a laptop, and with the
#: projector theme's font_scale (1.35) 15 px, readable from the back of a room at 1280x720.
MIN_TEXT_PX = 11
