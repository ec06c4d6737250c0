"""The energy cross-check: registration of a physical meter's pulses against a model.

Theory of operation
-------------------
Pure: no asyncio, clock or IO; the caller hands in :class:`EdgeMark` s in time order.

A mark is a counted edge of the physical meter's pulse output: the source's running
count after it, the time it was reported (``at_s``) and how long before that it may
have happened (``uncertainty_s``: 0 for a timestamped edge, the poll period for a
polled counter, the outage for the first poll after one). With it comes the
reference's cumulative energy at both ends of that interval (``model_lo_wh`` at
``at_s - uncertainty_s``, ``model_hi_wh`` at ``at_s``) and its apparent energy.

A window starts and ends on marks. Its physical energy is exact: counts x Wh per
count. Its model energy uses the middle of each end's energy interval. Registration
= physical / model x 100 %, error = registration - 100 %. The uncertainty of that
error is the sum of hard (worst-case) terms, in % of the model energy:

- quantisation: +-1 edge of the output, Kh/2 Wh (the output's own resolution);
- timing: half of each end's model-energy interval (an edge known only to within a
  poll period is worth the energy the model registered in that period: the
  window's power at that end);
- reference: the reference's stated uncertainty (0 for the model of a profile the
  rig applies exactly, a meter's accuracy class for a reference meter).

The class limit is the Mini Meter's at the window's power factor (model real /
apparent energy): +-0.5 % at PF 1, +-0.75 % at PF 0.5, linear in between.
Verdicts: within class when |error| + uncertainty <= limit; outside class when
|error| - uncertainty > limit; otherwise undecided (too few pulses yet).

Because the terms are worst-case bounds, testing many windows does not make a
false alarm likelier: :class:`CrossCheck` tests the cumulative window, the rolling
window (last N counts or T seconds) and a geometric ladder of windows ending at the
newest mark (1, 2, 4, ... marks back), so a drift is flagged outside class as soon
as any window can show it (the sequential test). :func:`pulses_to_decide` says at
which count a steady error becomes decidable.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

#: The Mini Meter's accuracy class (installation guide, table 1).
CLASS_PCT_AT_PF_1: Final = 0.5
CLASS_PCT_AT_PF_HALF: Final = 0.75
#: Below this PF the Mini Meter states no accuracy: the limit stays at PF 0.5's.
CLASS_PF_MIN: Final = 0.5
#: Marks kept for the sequential test's ladder (windows of 1, 2, 4 ... 2**k marks).
MAX_MARKS: Final = 1 << 16


class Verdict(IntEnum):
    """``mirror_verdict`` (register 76); values as the register map's, undecided appended."""

    NONE = 0
    WITHIN_CLASS = 1
    OUTSIDE_CLASS = 2
    INPUT_STALE = 3
    UNDECIDED = 4


def class_limit_pct(pf: float) -> float:
    """The class limit at ``pf`` (magnitude), linear from PF 1 to PF 0.5, clamped."""
    pf = min(1.0, max(CLASS_PF_MIN, abs(pf)))
    slope = (CLASS_PCT_AT_PF_HALF - CLASS_PCT_AT_PF_1) / (1.0 - CLASS_PF_MIN)
    return CLASS_PCT_AT_PF_1 + (1.0 - pf) * slope


@dataclass(frozen=True, slots=True)
class EdgeMark:
    """A counted edge and the reference's cumulative energy around it."""

    counts: int  # the source's running count after this edge
    at_s: float  # when it was reported; it happened in [at_s - uncertainty_s, at_s]
    uncertainty_s: float
    model_lo_wh: float  # reference energy at at_s - uncertainty_s
    model_hi_wh: float  # reference energy at at_s
    apparent_vah: float  # reference apparent energy at at_s (for the window's PF)

    @property
    def model_wh(self) -> float:
        return (self.model_lo_wh + self.model_hi_wh) / 2

    @property
    def timing_wh(self) -> float:
        """Half the energy the reference registered while the edge time is unknown."""
        return (self.model_hi_wh - self.model_lo_wh) / 2


@dataclass(frozen=True, slots=True)
class Bound:
    """The class limit at the window's PF and the uncertainty terms of its error, in %."""

    class_limit_pct: float
    quantisation_pct: float
    timing_pct: float
    reference_pct: float

    @property
    def uncertainty_pct(self) -> float:
        """The +- of the registration figure (register 74)."""
        return self.quantisation_pct + self.timing_pct + self.reference_pct


@dataclass(frozen=True, slots=True)
class Window:
    """Two marks of one source: what the physical meter and the reference registered."""

    start: EdgeMark
    end: EdgeMark
    wh_per_count: float
    edge_wh: float  # Kh / 2: one edge of the 50 %-duty output
    reference_pct: float = 0.0

    @property
    def counts(self) -> int:
        return self.end.counts - self.start.counts

    @property
    def physical_wh(self) -> float:
        return self.counts * self.wh_per_count

    @property
    def model_wh(self) -> float:
        return self.end.model_wh - self.start.model_wh

    @property
    def duration_s(self) -> float:
        return self.end.at_s - self.start.at_s

    @property
    def pf(self) -> float:
        apparent = self.end.apparent_vah - self.start.apparent_vah
        if apparent <= 0:
            return 1.0
        return min(1.0, max(0.0, (self.end.model_hi_wh - self.start.model_hi_wh) / apparent))

    def bound(self) -> Bound | None:
        """None when the reference registered nothing over the window (nothing to compare)."""
        model = self.model_wh
        if model <= 0:
            return None
        return Bound(
            class_limit_pct=class_limit_pct(self.pf),
            quantisation_pct=100.0 * self.edge_wh / model,
            timing_pct=100.0 * (self.start.timing_wh + self.end.timing_wh) / model,
            reference_pct=self.reference_pct,
        )


@dataclass(frozen=True, slots=True)
class Check:
    """A verdict and the figures behind it (registers 72-78)."""

    verdict: Verdict
    registration_pct: float = math.nan
    bound: Bound | None = None
    counts: int = 0  # counts in the window
    window_s: float = 0.0

    @property
    def error_pct(self) -> float:
        return self.registration_pct - 100.0

    @property
    def bound_pct(self) -> float:
        return self.bound.uncertainty_pct if self.bound is not None else math.nan


def judge(error_pct: float, bound: Bound) -> Verdict:
    """Within / outside class, or undecided, for an error known to +-its uncertainty."""
    u, limit = bound.uncertainty_pct, bound.class_limit_pct
    if abs(error_pct) + u <= limit:
        return Verdict.WITHIN_CLASS
    if abs(error_pct) - u > limit:
        return Verdict.OUTSIDE_CLASS
    return Verdict.UNDECIDED


def check_window(window: Window | None) -> Check:
    """The verdict of one window; a missing or empty window is undecided."""
    if window is None or window.counts <= 0:
        return Check(Verdict.UNDECIDED)
    bound = window.bound()
    if bound is None:
        return Check(Verdict.UNDECIDED, counts=window.counts, window_s=window.duration_s)
    registration = 100.0 * window.physical_wh / window.model_wh
    return Check(
        judge(registration - 100.0, bound),
        registration,
        bound,
        window.counts,
        window.duration_s,
    )


def pulses_to_decide(
    error_pct: float,
    *,
    class_limit_pct: float,
    edge_wh: float,
    wh_per_count: float,
    timing_wh: float = 0.0,
    reference_pct: float = 0.0,
) -> int | None:
    """Counts a window needs before a steady ``error_pct`` is decided; None if never.

    With N counts the physical energy is N x wh_per_count and the model's is that over
    (1 + error/100); the uncertainty is 100 (edge_wh + timing_wh) / model + reference.
    Outside class needs |error| - uncertainty > limit (strict), within class needs
    |error| + uncertainty <= limit.
    """
    scale = 100.0 * (edge_wh + timing_wh) * (1.0 + error_pct / 100.0) / wh_per_count
    outside_margin = abs(error_pct) - reference_pct - class_limit_pct
    if outside_margin > 0:
        return math.floor(scale / outside_margin) + 1
    within_margin = class_limit_pct - reference_pct - abs(error_pct)
    if within_margin > 0:
        return max(1, math.ceil(scale / within_margin))
    return None


class CrossCheck:
    """Windows over a stream of marks: cumulative, rolling and the sequential ladder."""

    def __init__(
        self,
        *,
        wh_per_count: float,
        edge_wh: float,
        reference_pct: float = 0.0,
        rolling_counts: int | None = None,
        rolling_s: float | None = None,
    ) -> None:
        if wh_per_count <= 0 or edge_wh <= 0 or reference_pct < 0:
            raise ValueError("wh_per_count and edge_wh must be > 0, reference_pct >= 0")
        self.wh_per_count = wh_per_count
        self.edge_wh = edge_wh
        self.reference_pct = reference_pct
        self.rolling_counts = rolling_counts
        self.rolling_s = rolling_s
        self._first: EdgeMark | None = None
        self._marks: deque[EdgeMark] = deque(maxlen=MAX_MARKS)

    @property
    def marks(self) -> int:
        return len(self._marks)

    def restart(self) -> None:
        """Forget every mark (after a reset of the reference, or a mirror restart)."""
        self._first = None
        self._marks.clear()

    def saved(self, keep: int) -> list[EdgeMark]:
        """The first mark of the cumulative window and the newest ``keep`` (to persist)."""
        if self._first is None:
            return []
        recent = list(self._marks)[-keep:]
        return recent if recent and recent[0] is self._first else [self._first, *recent]

    def restore(self, marks: list[EdgeMark]) -> None:
        """Continue from :meth:`saved` marks: the cumulative window starts at the first."""
        self.restart()
        for mark in marks:
            self.add(mark)

    def add(self, mark: EdgeMark) -> None:
        if self._marks and (
            mark.counts < self._marks[-1].counts or mark.at_s < self._marks[-1].at_s
        ):
            raise ValueError("marks must come in time order with non-decreasing counts")
        if self._first is None:
            self._first = mark
        self._marks.append(mark)

    def _window(self, start: EdgeMark) -> Window | None:
        if not self._marks or start is self._marks[-1]:
            return None
        return Window(start, self._marks[-1], self.wh_per_count, self.edge_wh, self.reference_pct)

    def cumulative(self) -> Check:
        """The window from the first mark to the newest."""
        if self._first is None:
            return Check(Verdict.UNDECIDED)
        return check_window(self._window(self._first))

    def rolling(self) -> Check:
        """The window over the last ``rolling_counts`` counts or ``rolling_s`` seconds."""
        if not self._marks:
            return Check(Verdict.UNDECIDED)
        end = self._marks[-1]
        start = self._marks[0]
        for mark in reversed(self._marks):
            start = mark
            if self.rolling_counts is not None and end.counts - mark.counts >= self.rolling_counts:
                break
            if self.rolling_s is not None and end.at_s - mark.at_s >= self.rolling_s:
                break
        return check_window(self._window(start))

    def ladder(self) -> list[Check]:
        """Windows ending at the newest mark and starting 1, 2, 4, ... marks before it."""
        out: list[Check] = []
        n = len(self._marks)
        back = 1
        while back < n:
            out.append(check_window(self._window(self._marks[n - 1 - back])))
            back *= 2
        return out

    def verdict(self, *, stale: bool = False) -> Check:
        """The published verdict.

        Stale input wins; then outside class if any window shows it (the earliest
        flag a drift can get); else the cumulative window's verdict and figures.
        """
        cumulative = self.cumulative()
        if stale:
            return Check(
                Verdict.INPUT_STALE,
                cumulative.registration_pct,
                cumulative.bound,
                cumulative.counts,
                cumulative.window_s,
            )
        if cumulative.verdict is Verdict.OUTSIDE_CLASS:
            return cumulative
        for check in [self.rolling(), *self.ladder()]:
            if check.verdict is Verdict.OUTSIDE_CLASS:
                return check
        return cumulative


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """The cumulative check at one mark (the report's time series)."""

    t_s: float
    counts: int
    registration_pct: float
    bound_pct: float
    class_limit_pct: float
    verdict: Verdict
