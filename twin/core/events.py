"""Events out of the core: frozen records, returned by ``advance`` and ``apply``.

Scalar events are one moment each (what an event log holds). Pulse edges and demand
sub-interval closes come out as columns (``PulseEdges`` per output, ``DemandCloses``
per run of samples), so a year of them costs no Python object per edge or close;
``expand_closes`` gives a close's own ``DemandClosed`` record to consumers that
handle one moment at a time (an event log, a message per close). The optional
``Registration`` carries the per-sample registered energy of a block.
Times are seconds of the core's clock (the sum of the sample periods it was fed).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any, cast

from twin.core.samples import BoolArray, FloatArray, IntArray


class PulseOutput(StrEnum):
    """The outputs whose edges the core reports: the isolated Kh outputs and the counter."""

    KH_10 = "10"
    KH_100 = "100"
    KH_1000 = "1000"
    COUNTER = "counter"


class ClearedCounts(StrEnum):
    """What a clear command zeroed."""

    PULSES = "pulses"
    ENERGY = "energy"


@dataclass(frozen=True, slots=True, eq=False)
class PulseEdges:
    """Edges of one output in one block: times (s, core clock) and new states."""

    output: PulseOutput
    time_s: FloatArray
    closed: BoolArray

    def __len__(self) -> int:
        return int(self.time_s.shape[0])


@dataclass(frozen=True, slots=True, eq=False)
class Registration:
    """Per-sample registration of one block (only when the core is asked for it).

    ``power_w`` is the measured power per element (zero while unpowered); the
    energies are the integer microjoules each register gained in each sample.
    """

    time0_s: float
    dt_s: float
    power_w: FloatArray  # (elements, n)
    delivered_uj: IntArray
    received_uj: IntArray
    l1_uj: IntArray
    l2_uj: IntArray


@dataclass(frozen=True, slots=True)
class DemandClosed:
    time_s: float
    subinterval_kw: float
    demand_kw: float
    demand_max_kw: float


@dataclass(frozen=True, slots=True, eq=False)
class DemandCloses:
    """Sub-interval closes of one run of samples, as columns, in time order.

    Close i is the moment ``DemandClosed(time_s[i], subinterval_kw[i], demand_kw[i],
    demand_max_kw[i])``; :meth:`each` makes those records.
    """

    time_s: FloatArray
    subinterval_kw: FloatArray
    demand_kw: FloatArray
    demand_max_kw: FloatArray

    def __len__(self) -> int:
        return int(self.time_s.shape[0])

    def each(self) -> list[DemandClosed]:
        """One record per close: made empty, then filled a field at a time through the
        slots' own setters (loops in C; a year holds 10^5 closes, and the frozen
        ``__init__`` costs twice as much, a Python call and four ``object.__setattr__``
        per record). Every field is set, so each record equals ``DemandClosed(...)``."""
        empty = itertools.repeat(DemandClosed, len(self))
        records = cast(list[DemandClosed], list(map(object.__new__, empty)))
        columns = (self.time_s, self.subinterval_kw, self.demand_kw, self.demand_max_kw)
        for set_field, column in zip(_CLOSED_SETTERS, columns, strict=True):
            deque(map(set_field, records, column.tolist()), maxlen=0)
        return records


#: The setters of DemandClosed's slots, in field order (DemandCloses.each).
_CLOSED_SETTERS: tuple[Callable[[Any, float], None], ...] = tuple(
    vars(DemandClosed)[f.name].__set__ for f in fields(DemandClosed)
)


@dataclass(frozen=True, slots=True)
class ErrorRaised:
    time_s: float
    code: int
    name: str


@dataclass(frozen=True, slots=True)
class ErrorCleared:
    time_s: float
    code: int
    name: str


@dataclass(frozen=True, slots=True)
class PowerLost:
    time_s: float


@dataclass(frozen=True, slots=True)
class PowerRestored:
    time_s: float
    power_up_count: int


@dataclass(frozen=True, slots=True)
class MaxDemandReset:
    time_s: float


@dataclass(frozen=True, slots=True)
class CountsCleared:
    time_s: float
    what: ClearedCounts


@dataclass(frozen=True, slots=True)
class StepTooCoarse:
    """Once per output: a sample held two or more of its edges.

    The edges are interpolated assuming constant power within the sample (exact for
    such a load), but the step cannot show a load that varies faster. The shell
    reports it once, e.g. as a warning naming the output and the step.
    """

    time_s: float
    output: PulseOutput
    dt_s: float


#: Events that are one moment each (what an event log holds).
ScalarEvent = (
    DemandClosed
    | ErrorRaised
    | ErrorCleared
    | PowerLost
    | PowerRestored
    | MaxDemandReset
    | CountsCleared
    | StepTooCoarse
)
#: Everything advance() and apply() return: scalar events plus per-block arrays.
Event = PulseEdges | Registration | DemandCloses | ScalarEvent


def expand_closes(events: Iterable[Event]) -> list[Event]:
    """``events`` with each :class:`DemandCloses` replaced by its records, in place."""
    out: list[Event] = []
    for ev in events:
        if isinstance(ev, DemandCloses):
            out.extend(ev.each())
        else:
            out.append(ev)
    return out
