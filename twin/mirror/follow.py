"""Follow mode: what a physical meter's pulses say, as the twin's registers.

Theory of operation
-------------------
Pure: no asyncio, clock or IO; the caller hands in the source's counts in time order.

Energy: the source's running count x Wh per count (Kh for one counted edge per
cycle, Kh/2 when both edges count), exact at each counted edge and never
decreasing; the pulse and counter registers follow from it as on the meter
(:mod:`twin.core.pulses`).

Power from edge intervals: between two counted edges ``n`` counts apart the mean
power is ``3600 x n x Wh per count / dt`` W, so P = 1800 x Kh / dt for edges Kh/2
apart. A polled counter's counts are spread over its poll, so its power is taken
over the span between the last two readings that counted. While no edge comes, the
power cannot be more than one count over the time since the last edge: the shown
power decays as ``3600 x Wh per count / (now - last edge)`` once that is lower.

Demand is the core's (:class:`twin.core.demand.DemandState`) fed with the counted
energy at the times it was counted, on mirror time (the Mini Meter's uptime): the
same sliding, block or thermal demand and 24-hour maximum as a simulated meter.
:meth:`Follow.nv_state` is what the twin's durable store keeps of it (energy, demand
and maximum demand, the mirror time fed); ``Follow(nv=...)`` continues from it after a
mirror restart, so demand and maximum demand survive one.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Final

import numpy as np

from twin.core import (
    KH_WH,
    UJ_PER_WH,
    DemandConfig,
    LcdScreen,
    MeterModel,
    NvState,
    RegistrationMode,
    Snapshot,
    StatusBit,
)
from twin.core.demand import DemandState
from twin.core.pulses import closures, counter_counts, counter_energised, is_closed

_NAN: Final = math.nan
_US: Final = 1_000_000


class Follow:
    """The registers of a physical meter, from the counts of one pulse output."""

    def __init__(
        self,
        *,
        wh_per_count: float,
        demand: DemandConfig | None = None,
        start_counts: int = 0,
        nv: NvState | None = None,
    ) -> None:
        if not wh_per_count > 0:
            raise ValueError(f"wh_per_count: {wh_per_count!r}; expected > 0")
        self.wh_per_count = wh_per_count
        self.total_counts = start_counts
        config = demand or DemandConfig()
        if nv is None:
            self._demand = DemandState(config)
            self._demand.restart(0)
        else:  # a mirror restart: demand, its open sub-interval and the maximum go on
            self._demand = DemandState.restore(config, nv)
        self._fed_us = 0 if nv is None else nv.uptime_us  # mirror time demand is fed to
        # (time, counts) of the last two readings that counted, for the edge interval.
        self._last: tuple[float, int] | None = None
        self._prev: tuple[float, int] | None = None

    @property
    def energy_wh(self) -> float:
        return self.total_counts * self.wh_per_count

    @property
    def last_at_s(self) -> float:
        """Mirror time up to which counts and demand have been taken in."""
        return self._fed_us / _US

    @property
    def energy_uj(self) -> int:
        return round(self.total_counts * self.wh_per_count * UJ_PER_WH)

    def count(self, total_counts: int, at_s: float) -> None:
        """The source's running count at mirror time ``at_s`` (later than any before)."""
        new = total_counts - self.total_counts
        if new < 0:
            raise ValueError(f"counts went back from {self.total_counts} to {total_counts}")
        self.advance_to(at_s, round(new * self.wh_per_count * UJ_PER_WH))
        self.total_counts = total_counts
        if new:
            if self._last is None or at_s > self._last[0]:
                self._prev = self._last
            self._last = (at_s, total_counts)

    def advance_to(self, at_s: float, energy_uj: int = 0) -> None:
        """Close demand sub-intervals up to ``at_s``; ``energy_uj`` was counted at ``at_s``."""
        t_us = round(at_s * _US)
        if t_us < self._fed_us:  # counted late (a clock that ran ahead): never lost
            self._demand.partial_uj += energy_uj
            return
        d = self._demand
        sub = d.config.subinterval_us
        # Close every boundary strictly before t with nothing, then count the energy in
        # the sub-interval the edge fell in (DemandState counts a sample where it ends).
        last_close = d.origin_us + ((t_us - d.origin_us - 1) // sub) * sub
        if last_close > self._fed_us:
            d.advance(self._fed_us, last_close - self._fed_us, np.zeros(1, np.int64), 0)
            self._fed_us = last_close
        if t_us > self._fed_us:
            d.advance(self._fed_us, t_us - self._fed_us, np.array([energy_uj], np.int64), 0)
            self._fed_us = t_us
        elif energy_uj:
            d.partial_uj += energy_uj

    def nv_state(self) -> NvState:
        """What the durable store keeps of the followed meter."""
        nv = NvState(
            energy_delivered_uj=self.energy_uj,
            uptime_us=self._fed_us,
            powered=True,
            power_up_count=1,
        )
        return self._demand.save(nv)

    def power_w(self, now_s: float) -> float:
        """Mean power over the last edge interval, decaying while no edge comes."""
        if self._last is None:
            return 0.0
        t1, n1 = self._last
        bound = 3600.0 * self.wh_per_count / (now_s - t1) if now_s > t1 else math.inf
        if self._prev is None:
            return 0.0 if math.isinf(bound) else bound
        t0, n0 = self._prev
        measured = 3600.0 * (n1 - n0) * self.wh_per_count / (t1 - t0)
        return min(measured, bound)

    def snapshot(
        self, now_s: float, *, model: MeterModel, serial_number: str, status_bits: int = 0
    ) -> Snapshot:
        """Every register the map reads from a snapshot; what pulses cannot tell is NaN."""
        self.advance_to(now_s)
        e = self.energy_uj
        d = self._demand
        c = d.config
        outputs = sum(int(is_closed(e, kh)) << k for k, kh in enumerate(KH_WH))
        outputs |= int(counter_energised(e, model.counter_wh_per_count)) << len(KH_WH)
        power = self.power_w(now_s)
        uptime_us = round(now_s * _US)
        return Snapshot(
            time_s=now_s,
            serial_number=serial_number,
            model=model.name,
            elements=model.elements,
            powered=True,
            energy_delivered_uj=e,
            energy_received_uj=0,
            energy_l1_uj=0,
            energy_l2_uj=0,
            energy_delivered_wh=e // UJ_PER_WH,
            energy_received_wh=0,
            energy_l1_wh=0,
            energy_l2_wh=0,
            energy_delivered_hwh=e // (100 * UJ_PER_WH),
            energy_delivered_kwh=e / (1000 * UJ_PER_WH),
            power_w=power,
            power_l1_w=_NAN,
            power_l2_w=_NAN,
            voltage_l1_v=_NAN,
            voltage_l2_v=_NAN,
            voltage_l1_l2_v=_NAN,
            current_l1_a=_NAN,
            current_l2_a=_NAN,
            power_factor_l1=_NAN,
            power_factor_l2=_NAN,
            frequency_hz=_NAN,
            demand_kw=d.demand_w / 1000.0,
            demand_max_kw=d.max_w / 1000.0,
            demand_max_at_s=d.max_at_us // _US,
            demand_subinterval_elapsed_s=d.elapsed_us(uptime_us) // _US,
            demand_valid=int(d.valid),
            status_bits=status_bits,
            error_code=0,
            lcd_screen=int(LcdScreen.TOTAL_KWH),
            indicators=int(is_closed(e, KH_WH[0])),  # the load LED mirrors the 10 Wh output
            output_states=outputs,
            pulses_10wh=closures(e, KH_WH[0]),
            pulses_100wh=closures(e, KH_WH[1]),
            pulses_1000wh=closures(e, KH_WH[2]),
            counter_counts=counter_counts(e, model.counter_wh_per_count),
            uptime_s=uptime_us // _US,
            power_up_count=1,
            temperature_c=_NAN,
            registration_mode=RegistrationMode.SUM_THEN_CLAMP,
            demand_interval_min=c.interval_min,
            demand_subintervals=c.subintervals,
            demand_method=c.method,
            demand_max_window_h=c.max_window_h,
        )


def with_mirror_bits(snapshot: Snapshot, *, stale: bool, outside_class: bool) -> Snapshot:
    """``snapshot`` with status bits 14 (input stale) and 15 (outside class) set or cleared."""
    mask = (1 << StatusBit.MIRROR_INPUT_STALE) | (1 << StatusBit.MIRROR_OUTSIDE_CLASS)
    bits = snapshot.status_bits & ~mask
    bits |= (int(stale) << StatusBit.MIRROR_INPUT_STALE) | (
        int(outside_class) << StatusBit.MIRROR_OUTSIDE_CLASS
    )
    return replace(snapshot, status_bits=bits)
