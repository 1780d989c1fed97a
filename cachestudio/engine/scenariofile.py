"""Writing a scenario file: a :class:`scenario.Scenario` (or the window's state) as the TOML
that :func:`scenario.load` reads back.

Every section the loader accepts is written: the top keys (name, title, description, seed,
duration, restart delay, the lesson's ``watch_for`` and ``you_will_learn``), every knob of
every section of :data:`config.SECTIONS` (``[backends]`` and its nodes included), the lanes
(``strategy`` when they are the plain ones, else ``[[lanes]]`` with each lane's own knobs),
the ``[expect]`` claims, the ``[[faults]]`` (each kind's parameters from
:mod:`faultkinds`, with the lesson's ``say`` and ``pause`` on the fault they belong to)
and the ``[[pictures]]``. What is written loads back equal: the window's File → Save
scenario of every built-in lesson is tested to reopen as itself.

Strings are TOML basic strings (escaped as JSON escapes them, which TOML shares, plus
DEL); floats keep their point (``2.0``), so a float knob is read back as a float. No Qt.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict

from .config import SECTIONS, STRATEGIES
from .faultkinds import BY_FIELD, FIELDS

#: The lanes of a scenario file that says ``strategy = "all"``.
ALL = list(STRATEGIES)


def toml_string(text: str) -> str:
    """``text`` as a TOML basic string (one line: newlines escaped)."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_value(value) -> str:
    """A knob's or a fault's value as TOML: true/false, a string, an integer or a float."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, float):
        return repr(value)  # "2.0", "1e-05": TOML floats both
    if isinstance(value, int):
        return str(value)
    raise TypeError(f"a scenario file holds no {type(value).__name__} ({value!r})")


def _key(name: str) -> str:
    """A bare key when TOML allows it, else a quoted one (a lane's name in ``[expect]``)."""
    bare = name and all(ch.isascii() and (ch.isalnum() or ch in "-_") for ch in name)
    return name if bare else toml_string(name)


def scenario_toml(sc) -> str:
    """The scenario file of ``sc``: a :class:`scenario.Scenario`, or anything with its
    attributes (``name``, ``base``, ``specs``, ``timeline``, ``duration_s``,
    ``restart_delay_s``; optional: ``title``, ``description``, ``watch_for``,
    ``you_will_learn``, ``says``, ``expect``, ``pictures``)."""
    lines = _top(sc)
    lines += _sections(sc.base)
    lines += _expect(sc)
    lines += _lanes(sc.specs)
    lines += fault_tables(sc.timeline, getattr(sc, "says", []))
    for pic in getattr(sc, "pictures", []):
        lines += [
            "[[pictures]]",
            f"at = {toml_value(float(pic['at']))}",
            f"caption = {toml_string(pic['caption'])}",
            "",
        ]
    return "\n".join(lines).rstrip("\n") + "\n"


def plain_strategy(specs) -> str | None:
    """``strategy = …`` for these lanes ("all" or one strategy), or None: they need ``[[lanes]]``."""
    if any(spec.name or spec.overrides for spec in specs):
        return None
    names = [spec.strategy for spec in specs]
    if names == ALL:
        return "all"
    return names[0] if len(names) == 1 else None


def _top(sc) -> list[str]:
    lines = [f"name = {toml_string(sc.name)}"]
    for key in ("title", "description", "watch_for", "you_will_learn"):
        text = getattr(sc, key, "")
        if text:
            lines.append(f"{key} = {toml_string(text)}")
    lines += [
        f"seed = {sc.base.seed}",
        f"duration = {toml_value(float(sc.duration_s))}",
        f"restart_delay = {toml_value(float(sc.restart_delay_s))}",
    ]
    strategy = plain_strategy(sc.specs)
    if strategy is not None:
        lines.append(f"strategy = {toml_string(strategy)}")
    return lines + [""]


def _sections(base) -> list[str]:
    """Every knob of every section, as it is in force (defaults too: the file says all)."""
    lines = []
    for section in SECTIONS:
        lines.append(f"[{section}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in asdict(getattr(base, section)).items()]
        lines.append("")
    return lines


def _lanes(specs) -> list[str]:
    if plain_strategy(specs) is not None:
        return []
    lines = []
    for spec in specs:
        lines += [
            "[[lanes]]",
            f"name = {toml_string(spec.name or spec.strategy)}",
            f"strategy = {toml_string(spec.strategy)}",
        ]
        lines += [f"{section}.{key} = {toml_value(value)}" for section, key, value in spec.overrides]
        lines.append("")
    return lines


def _expect(sc) -> list[str]:
    """The claims about lanes this scenario runs (a claim about a lane no longer run, or that
    compares with one, is left out)."""
    labels = {spec.name or spec.strategy for spec in sc.specs}
    claims = [c for c in getattr(sc, "expect", []) if c.lane in labels and (c.other is None or c.other in labels)]
    if not claims:
        return []
    lines = ["[expect]"]
    lines += [f"{toml_string(c.lane)}.{_key(c.metric)} = {toml_string(c.right())}" for c in claims]
    return lines + [""]


def fault_tables(timeline: dict, says: Sequence[dict] = ()) -> list[str]:
    """``[[faults]]`` tables of a timeline (each kind's parameters in its declared order),
    in time order; a lesson's line (``say``, ``pause``) goes with the fault of its kind at
    its time."""
    rows = []
    for field in FIELDS:
        kind = BY_FIELD[field]
        for entry in timeline.get(field, []):
            at, values = kind.values(entry)
            rows.append((at, kind.name, values))
    left = list(says)
    lines = []
    for at, name, values in sorted(rows, key=lambda r: r[0]):
        lines += ["[[faults]]", f"at = {toml_value(float(at))}", f"kind = {toml_string(name)}"]
        lines += [f"{key} = {toml_value(value)}" for key, value in values.items()]
        say = next((s for s in left if s["kind"] == name and s["at"] == at), None)
        if say is not None:
            left.remove(say)
            lines += [f"say = {toml_string(say['say'])}", f"pause = {toml_value(bool(say['pause']))}"]
        lines.append("")
    return lines
