"""A fault's parameters, checked one way for every place a fault comes from.

A scenario file's ``[[faults]]`` (:mod:`scenario`), a plan's timeline (:func:`runner.check_plan`:
the command line's flags, the window, code) and the command line's own syntax (``cli``)
check a value of a :class:`faultkinds.Param` by the same rules, written here once: its type
(a whole number takes no ``1.5`` and no ``true``, a number takes no ``true`` and no text),
finite and within ``lo`` to ``hi``, one of ``choices``. Each caller adds only where the value
came from (a file's line, a flag). Nothing here knows a fault kind by name.
"""

from __future__ import annotations

from .config import ConfigError
from .faultkinds import FAULTS, FaultKind, Param


def bound(x: float) -> str:
    """A bound as people write it: ``10,000,000``, ``0.001``, ``3600``."""
    return f"{x:,}" if isinstance(x, int) else f"{x:g}"


def problem(p: Param, value) -> str | None:
    """What is wrong with ``value`` for ``p`` ("must be a whole number from 2 to 500"),
    or None. ``nan`` is out of every range; ``True`` is no number."""
    if p.type is str:
        if not isinstance(value, str) or (p.choices and value not in p.choices):
            return f"must be {' or '.join(p.choices)}" if p.choices else "must be a string"
        return None
    whole = p.type is int
    if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
        what = "a whole number" if whole else "a number"
        return f"must be {what} from {bound(p.lo)} to {bound(p.hi)}" if p.lo is not None else f"must be {what}"
    if p.lo is not None and p.hi is not None and not p.lo <= value <= p.hi:  # nan is not
        return f"must be from {bound(p.lo)} to {bound(p.hi)}"
    return None


def value_of(p: Param, value):
    """A checked value as the timeline keeps it (a float param's ``-0.0`` and ``10`` are ``0.0`` and ``10.0``)."""
    return value + 0.0 if p.type is float else value


def check_entry(kind: FaultKind, entry) -> tuple[float, dict]:
    """A plan's timeline entry of ``kind``: its time and parameters, each checked
    (:class:`ConfigError` naming the flag and the parameter otherwise)."""
    try:
        at, values = kind.values(entry)
    except (TypeError, ValueError):
        raise ConfigError(f"{kind.flag} wants {kind.metavar}, got {entry!r}") from None
    for p in kind.params:
        why = problem(p, values[p.name])
        if why:
            raise ConfigError(f"{kind.flag} {p.word} {why}, got {values[p.name]!r}")
    return at, values


def check_timeline(timeline: dict[str, list], duration_s: float) -> None:
    """Every fault of a timeline within the run and its parameters in range."""
    for kind in FAULTS:
        for entry in timeline.get(kind.field, ()):
            at, _ = check_entry(kind, entry)
            if not 0 <= at < duration_s:
                raise ConfigError(
                    f"{kind.noun} at {at:g} s ({kind.flag} or the scenario's timeline) is outside "
                    f"the run (0 to {duration_s:g} s)"
                )
