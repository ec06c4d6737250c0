"""Stepping a fleet in groups: the meters of one shared sampler advanced by one core call.

Theory of operation
-------------------
Every live meter's core is a row of its twin's :class:`~twin.core.MeterBank` (the
:class:`~twin.runtime.meters.SamplerPool`'s). Meters that play the same shared sampler
step the same blocks, so :func:`step_units` puts them in a :class:`MeterGroup` of up
to ``GROUP_MAX`` rows, which :func:`twin.drive.drive` (the one stepping loop) advances
with one core call per block (:func:`twin.core.advance_rows`) and which applies the
profile's commands to each of its meters. Meters with their own sampler (a load
override, a noisy profile's seed) or following a physical meter step alone. The
grouping is kept until a meter's sampler or follower changes (the pool's version).

After a step a group marks changed (snapshot and image rebuilt on first use) only
its meters that ran (powered before or after the step), had events, or were given a
profile command: an unpowered meter's registers stand still.

:func:`fleet_totals` sums the fleet for status lines from the bank, so a status line
every two seconds does not build a snapshot per meter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from twin.core import Command, Event, SampleBlock, advance_rows
from twin.drive import drive
from twin.runtime.meters import MAX_BLOCK, LiveMeter, SamplerPool, SharedSampler

# Rows per group call: one call's numpy work is shared by its rows, and the stepper
# yields to the event loop between calls, so a request never waits for a whole fleet.
# Meters that started together also close demand sub-intervals together (per row,
# ~40 µs each), so this bounds the longest call to ~10 ms.
GROUP_MAX = 250


class Steppable(Protocol):
    def step(self, t0_s: float, dt_s: float, n: int) -> None: ...


@dataclass(frozen=True, slots=True)
class _Grouping:
    version: int
    meters: int
    units: list[Steppable]


def step_units(meters: Sequence[Steppable]) -> Sequence[Steppable]:
    """``meters`` as the stepper steps them: live meters in groups (:class:`MeterGroup`)."""
    first = meters[0] if meters else None
    if not isinstance(first, LiveMeter):
        return meters
    pool = first.pool
    cached = pool.grouping
    if isinstance(cached, _Grouping) and (cached.version, cached.meters) == (
        pool.version,
        len(meters),
    ):
        return cached.units
    units = _group([m for m in meters if isinstance(m, LiveMeter)], pool)
    pool.grouping = _Grouping(pool.version, len(meters), units)
    return units


def _group(meters: list[LiveMeter], pool: SamplerPool) -> list[Steppable]:
    groups: dict[int, list[LiveMeter]] = {}
    units: list[Steppable] = []
    for m in meters:
        if m.follower is None and isinstance(m.sampler, SharedSampler):
            groups.setdefault(id(m.sampler), []).append(m)
        else:
            units.append(m)
    for members in groups.values():
        for i in range(0, len(members), GROUP_MAX):
            chunk = members[i : i + GROUP_MAX]
            units.append(chunk[0] if len(chunk) == 1 else MeterGroup(chunk))
    return units


class MeterGroup:
    """Meters on one shared sampler, stepped by one core call per block (rows of a bank)."""

    def __init__(self, meters: list[LiveMeter]) -> None:
        self.meters = meters
        self.sampler = meters[0].sampler
        self.bank = meters[0].core.bank
        self.rows = np.array([m.core.row for m in meters], np.int64)
        self._by_row = {m.core.row: m for m in meters}
        self._commanded = False

    def advance(self, block: SampleBlock) -> list[tuple[int, Event]]:
        found = advance_rows(self.bank, self.rows, block)
        return [(row, e) for row, events in found.items() for e in events]

    def apply(self, command: Command) -> list[tuple[int, Event]]:
        """A command of the profile, for every meter of the group."""
        self._commanded = True  # it may move registers without an event
        return [(m.core.row, e) for m in self.meters for e in m.core.apply(command)]

    def step(self, t0_s: float, dt_s: float, n: int) -> None:
        ran = self.bank.powered[self.rows]
        moved: set[int] = set()
        self._commanded = False
        for events in drive(self, self.sampler, t0_s, dt_s, n, MAX_BLOCK):
            per_row: dict[int, list[Event]] = {}
            for row, e in events:
                per_row.setdefault(row, []).append(e)
            for row, found in per_row.items():
                self._by_row[row].stepped(found)
            moved.update(per_row)
        ran = ran | self.bank.powered[self.rows]
        end_s = t0_s + n * dt_s
        for meter, on in zip(self.meters, ran.tolist(), strict=True):
            meter.time_s = end_s
            if on or self._commanded or meter.core.row in moved:
                meter.stepped(moved=True)


@dataclass(frozen=True, slots=True)
class FleetTotals:
    """What a fleet's status line sums."""

    meters: int
    unpowered: int
    energy_wh: int  # delivered, each meter's whole Wh
    power_w: float  # of the powered meters


def fleet_totals(meters: Sequence[LiveMeter]) -> FleetTotals:
    """The fleet's sums from the bank, without building a snapshot per meter (but for
    meters that mirror a physical one, which show their follower's)."""
    live = [m for m in meters if m.follower is None]
    unpowered = energy_wh = 0
    power_w = 0.0
    if live:
        rows = np.array([m.core.row for m in live], np.int64)
        unpowered, energy_wh, power_w = live[0].core.bank.totals(rows)
    for m in meters:
        if m.follower is not None:
            s = m.snapshot
            unpowered += not s.powered
            energy_wh += s.energy_delivered_wh
            power_w += 0.0 if math.isnan(s.power_w) else s.power_w
    return FleetTotals(len(meters), unpowered, energy_wh, power_w)
