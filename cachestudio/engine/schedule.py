"""The schedule of a run's faults, as methods of :class:`runner.Run` (this class is one of
its bases): every fault of the plan and every end a fault schedules (an outage's, a slow
window's, a killed cache server's return) is a deadline in run time, kept in order, and
fired at its time, not at the observer's next round.

Why (issue 24, items 4 and 10): the observer's round slept a fixed 50 ms and fired what was
due at its start; the run ended at the first round past its duration and dropped what was
still scheduled, so a fault in the last 20–40 ms of a run was accepted and never fired, and
a round busy reading the labs' histories made a fault late. Now a driver sleeps only until
the next deadline (:meth:`Schedule.sleep_for`), a round fires what is due at its start and
again between its heavy steps (:meth:`Schedule.fire_due`), and the run does not end while a
deadline within its duration is pending (:attr:`runend.RunEnd.due`). Every event a
scheduled item makes carries ``due``, the run time it was scheduled for (its lateness is
``start - due``), and ``scheduled_as``, the item's name: a fault kind's (``outage``), or an end
a fault scheduled (``outage-due``). A fault's events are found by these two, whatever they
turned out to be (an outage fired while a late one still held the lock extends it).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import TYPE_CHECKING

from .config import ConfigError
from .faultinjection import ENDS
from .faultkinds import BY_NAME

if TYPE_CHECKING:
    from .plan import Plan


class Schedule:
    """The schedule's methods of :class:`runner.Run` (see the module's docstring).

    The ``if TYPE_CHECKING:`` block below is this mixin's contract with its host
    (:class:`runner.Run`): what it uses of the host's state and methods, declared for the
    type checker only."""

    if TYPE_CHECKING:
        # -- the host's state (runner.Run.__init__) --
        plan: Plan
        paused: bool
        _schedule: list[tuple[float, str, tuple, dict]]
        _due: float | None
        _firing: str | None
        _handlers: dict[str, Callable]

        # -- the host's methods (runner.Run) --
        def now(self) -> float: ...

    def schedule(self, at: float, kind: str, *args, **kwargs) -> None:
        """Run a fault at run time ``at``: a fault kind's name (its command is called with
        ``args``/``kwargs``: its parameters by name) or an end a fault scheduled. At one
        instant, what ends goes before what starts (a window touching the next one ends
        first), and the rest keep the order they were scheduled in."""
        if kind not in self._handlers:
            raise ConfigError(f"nothing to schedule called {kind!r} (the fault kinds: {', '.join(BY_NAME)})")
        bisect.insort(self._schedule, (at, kind, args, kwargs), key=_order)  # after its equals

    def next_due(self) -> float | None:
        """The run time of the next scheduled item, or None."""
        return self._schedule[0][0] if self._schedule else None

    def sleep_for(self, tick_s: float) -> float:
        """How long a driver may wait before the next round: ``tick_s``, or less when a
        scheduled item or the run's end is due sooner."""
        if self.paused:
            return tick_s
        now = self.now()
        due = self.next_due()
        waits = [
            tick_s,
            *([] if due is None else [due - now]),
            *([self.plan.duration_s - now] if self.plan.duration_s > now else []),
        ]
        return max(0.0, min(waits))

    def fire_due(self) -> None:
        """Fire every scheduled item whose time has come, in order. Not re-entered: a
        fault's own work (the history read at a kill) fires nothing."""
        if self._due is not None:
            return
        while self._schedule and self._schedule[0][0] <= self.now():
            self._due, self._firing, args, kwargs = self._schedule.pop(0)
            try:
                self._handlers[self._firing](*args, **kwargs)
            finally:
                self._due = self._firing = None

    def _fire_time(self) -> float:
        """When the fault firing now was due (its end is counted from there), or now."""
        return self.now() if self._due is None else self._due


def _order(item: tuple[float, str, tuple, dict]) -> tuple[float, bool]:
    """The schedule's order: by time; at one instant, what ends before what starts."""
    return item[0], item[1] not in ENDS
