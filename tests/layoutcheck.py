"""The rules a window's layout must keep, checked on MainWindow.layout_report() (in the test's
own process) or on the layout.json that `cachestudio screenshot` writes beside its pictures.
Rectangles are [x, y, width, height] in window pixels."""

from __future__ import annotations

#: The flow view fits three lanes into its height; on a 1280x720 window its smallest labels
#: (edge rates, queue counts) may fall to this share of the window's floor (measured: 0.82
#: on the projector theme in presentation mode); from 1600x900 they keep the floor.
FLOW_SMALL_SCREEN_SHARE = 0.8


def _inside(outer, inner, slack: float = 0.5) -> bool:
    ox, oy, ow, oh = outer
    x, y, w, h = inner
    return x >= ox - slack and y >= oy - slack and x + w <= ox + ow + slack and y + h <= oy + oh + slack


def _overlap(a, b) -> bool:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return min(ax + aw, bx + bw) - max(ax, bx) > 0.5 and min(ay + ah, by + bh) - max(ay, by) > 0.5


def problems(r: dict) -> list[str]:
    """Everything wrong with one layout, in words (empty: the layout is whole)."""
    out = []
    width, height = r["window"]
    window = [0, 0, width, height]
    out += [f"button hidden: {name}" for name in r["hidden_buttons"]]
    for name, rect in r["buttons"]:
        if not _inside(window, rect):
            out.append(f"button {name!r} at {rect} outside the window")
    for name, w, hint in r["combos"]:
        if w < hint - 1:
            out.append(f"{name} box cut: {w} px for {hint}")
    expected = 4 if r["present"] or r["paged"] else 8
    if len(r["plots"]) != expected:
        out.append(f"{len(r['plots'])} charts shown, {expected} expected")
    for rect in r["plots"]:
        if rect[2] < 20 or rect[3] < 20:
            out.append(f"a chart's plot area is {rect[2]:.0f}x{rect[3]:.0f}")
        if not _inside(r["chart_panel"], rect) or not _inside(window, rect):
            out.append(f"a chart's plot area {rect} leaves the window")
    labels = r["labels"]
    for i, (a, ra) in enumerate(labels):
        if not _inside(window, ra):
            out.append(f"{a} at {ra} is cut by the window's edge")
        for b, rb in labels[i + 1 :]:
            if _overlap(ra, rb):
                out.append(f"{a} {ra} overlaps {b} {rb}")
    floor = r["floor_px"]
    for what in ("window", "strip"):
        if r["text_px"][what] < floor - 0.5:
            out.append(f"{what} text {r['text_px'][what]:.1f} px under the floor {floor:.1f}")
    flow_floor = floor if width >= 1600 and height >= 900 else floor * FLOW_SMALL_SCREEN_SHARE
    if (r["present"] or width >= 1600 and height >= 900) and r["text_px"]["flow_min"] < flow_floor - 0.5:
        out.append(f"flow view text {r['text_px']['flow_min']:.1f} px under {flow_floor:.1f}")
    return out
