"""Demand: sliding (rolling block), block and thermal, and maximum demand.

Time here is the meter's uptime in integer microseconds, because the Mini Meter
has no real-time clock: sub-intervals and the 24-hour maximum-demand window run
on time since power-up. Energy comes in as delivered energy per sample (integer
microjoules). A sample that spans a sub-interval boundary is split there by time
(constant power within a sample; integer floor of the share, the remainder going
to the next sub-interval, so no energy is lost or counted twice), and each
sub-interval closes at its boundary. So demand, maximum demand and their times
are the same for any sample step, one second or one hour, provided the load is
constant within each sample.

- sliding: at each sub-interval close, demand = mean power of the last N
  sub-intervals (N = subintervals per interval), the Mini Meter's 15 = 3 x 5 min.
- block: demand = mean power of the interval, updated when the interval closes.
- thermal: first-order response updated at each sub-interval close with
  tau = interval / ln 10, so a step reaches 90 % in one interval.

Maximum demand follows the Mini Meter: during the first window after power-up it
is the largest demand since power-up; after that it changes once per window, to
the largest demand of the window just ended. A window of 0 keeps the largest
demand until a reset, at any age. A sub-interval that closes exactly at a window
boundary belongs to the window it ends.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from twin.core.events import DemandCloses
from twin.core.models import DemandConfig, DemandMethod
from twin.core.samples import FloatArray, IntArray
from twin.core.snapshot import NvState

_US_PER_H = 3_600_000_000
_INT64_SAFE = 2**62  # products below this cannot overflow int64
_FLOAT_EXACT = 2**53  # integers below this convert to float64 exactly


@dataclass(slots=True)
class DemandState:
    """Mutable demand state; the non-volatile part is persisted by the shell."""

    config: DemandConfig
    origin_us: int = 0  # uptime at which the sub-interval grid starts
    partial_uj: int = 0  # energy of the open sub-interval so far
    recent_w: deque[float] = field(default_factory=deque)  # closed sub-interval powers
    closes: int = 0  # sub-intervals closed since power-up / realignment
    demand_w: float = 0.0
    max_w: float = 0.0  # shown maximum demand
    max_at_us: int = 0
    period_max_w: float = 0.0  # running maximum of the current window
    period_max_at_us: int = 0
    window_start_us: int = 0

    @classmethod
    def restore(cls, config: DemandConfig, nv: NvState) -> DemandState:
        """The demand state saved in ``nv``, running under ``config``."""
        state = cls(config)
        state.restart(nv.demand_origin_us)
        state.partial_uj, state.closes, state.demand_w = (
            nv.demand_partial_uj,
            nv.demand_closes,
            nv.demand_w,
        )
        state.recent_w.extend(nv.demand_recent_w[-config.subintervals :])
        state.max_w, state.max_at_us = nv.demand_max_w, nv.demand_max_at_us
        state.period_max_w = nv.demand_period_max_w
        state.period_max_at_us = nv.demand_period_max_at_us
        state.window_start_us = nv.demand_window_start_us
        return state

    def save(self, nv: NvState) -> NvState:
        """``nv`` with this demand state (and its settings) in it."""
        return replace(nv, **self.nv_fields())

    def nv_fields(self) -> dict[str, Any]:
        """This demand state (and its settings) as the fields of an :class:`NvState`."""
        return dict(
            demand_max_w=self.max_w,
            demand_max_at_us=self.max_at_us,
            demand_period_max_w=self.period_max_w,
            demand_period_max_at_us=self.period_max_at_us,
            demand_window_start_us=self.window_start_us,
            demand_origin_us=self.origin_us,
            demand_partial_uj=self.partial_uj,
            demand_recent_w=tuple(self.recent_w),
            demand_closes=self.closes,
            demand_w=self.demand_w,
            demand_config=self.config.as_tuple(),
        )

    def reconfigured(self, config: DemandConfig, uptime_us: int) -> DemandState:
        """New settings: a fresh sub-interval grid from now; the maximum carries over."""
        state = DemandState(config)
        state.restart(uptime_us)
        state.max_w, state.max_at_us = self.max_w, self.max_at_us
        state.period_max_w, state.period_max_at_us = self.period_max_w, self.period_max_at_us
        state.window_start_us = self.window_start_us
        return state

    @property
    def valid(self) -> bool:
        return self.closes >= self.config.subintervals

    def restart(self, uptime_us: int) -> None:
        """Start a fresh grid at ``uptime_us`` (power-up or reconfiguration)."""
        self.origin_us = uptime_us
        self.partial_uj = 0
        self.recent_w.clear()
        self.closes = 0
        self.demand_w = 0.0

    def power_up(self) -> None:
        self.restart(0)
        self.max_w = self.period_max_w = 0.0
        self.max_at_us = self.period_max_at_us = 0
        self.window_start_us = 0

    def reset_max(self, uptime_us: int) -> None:
        # As Leviton's 4000-series reset register: maximum demand becomes present demand.
        self.max_w = self.period_max_w = self.demand_w
        self.max_at_us = self.period_max_at_us = uptime_us

    def elapsed_us(self, uptime_us: int) -> int:
        return (uptime_us - self.origin_us) % self.config.subinterval_us

    def due_us(self, uptime_us: int) -> int:
        """The first uptime from ``uptime_us`` at which :meth:`advance` does more than add
        to the open sub-interval: the next close, or the end of the maximum's window.

        A run ending before it only adds its energy (a bank adds it for many meters at
        once, see ``bank``)."""
        due = self._next_close_us(uptime_us)
        window_h = self.config.max_window_h
        if window_h:
            due = min(due, self.window_start_us + window_h * _US_PER_H)
        return due

    def _next_close_us(self, uptime_us: int) -> int:
        sub = self.config.subinterval_us
        return self.origin_us + ((uptime_us - self.origin_us) // sub + 1) * sub

    def advance(
        self,
        u0_us: int,
        dt_us: int,
        delivered_uj: IntArray,
        time0_us: int,
        cum_uj: IntArray | None = None,
    ) -> list[DemandCloses]:
        """Feed one powered run of samples starting at uptime ``u0_us``.

        Returns the run's closes as one columnar event (none if nothing closed).
        ``delivered_uj`` is never negative (what a delivered register gains);
        ``cum_uj``, ``cumsum(delivered_uj)`` if the caller has it, saves a pass.
        """
        m = delivered_uj.shape[0]
        end_us = u0_us + m * dt_us
        sub_us = self.config.subinterval_us
        close_us = self._next_close_us(u0_us)
        if close_us > end_us:
            self.partial_uj += int(delivered_uj.sum() if cum_uj is None else cum_uj[-1])
            self._roll_window(end_us)
            return []
        cum = np.cumsum(delivered_uj) if cum_uj is None else cum_uj
        closes = range(close_us, end_us + 1, sub_us)
        # Energy of the run up to each boundary: whole samples before it, plus the
        # share of the sample it falls in.
        uptos = _energy_upto(closes, u0_us, dt_us, delivered_uj, cum)
        clock_us = time0_us - u0_us  # uptime -> the core's clock, for the events
        sliding = self.config.method is DemandMethod.SLIDING
        if sliding and isinstance(uptos, np.ndarray):
            # No close's energy after the first exceeds the run's total (delivered energy
            # is never negative): below 2^53 each converts to float64 exactly, and
            # numpy's division then rounds as Python's int / int does at each close.
            first_uj = uptos.item(0) + self.partial_uj
            if max(cum.item(-1), abs(first_uj)) < _FLOAT_EXACT:
                energies = np.empty(len(closes), np.int64)
                energies[0] = first_uj
                np.subtract(uptos[1:], uptos[:-1], out=energies[1:])
                buf = self._window(len(closes))
                n_sub = self.config.subintervals
                np.divide(energies, sub_us, out=buf[n_sub : n_sub + len(closes)])
                self.partial_uj = cum.item(-1) - uptos.item(-1)
                event = self._close_sliding(closes, buf, clock_us)
                self._roll_window(end_us)
                return [event]
        bounds = [-self.partial_uj, *(int(x) for x in uptos)]
        energies_uj = [b - a for a, b in itertools.pairwise(bounds)]
        self.partial_uj = int(cum[-1]) - bounds[-1]
        if sliding:
            buf = self._window(len(closes))
            n_sub = self.config.subintervals
            buf[n_sub : n_sub + len(closes)] = [e / sub_us for e in energies_uj]  # int / int
            event = self._close_sliding(closes, buf, clock_us)
        else:
            rows = []
            for at_us, energy_uj in zip(closes, energies_uj, strict=True):
                self._close(energy_uj, sub_us, at_us)
                rows.append(
                    ((clock_us + at_us) / 1e6, self.recent_w[-1], self.demand_w, self.max_w)
                )
            t, sub_w, demand_w, max_w = (np.array(c) for c in zip(*rows, strict=True))
            event = DemandCloses(t, sub_w / 1000.0, demand_w / 1000.0, max_w / 1000.0)
        self._roll_window(end_us)
        return [event]

    def _window(self, k: int) -> FloatArray:
        """A buffer for :meth:`_close_sliding`'s ``k`` closes: the last N closed powers
        (N sub-intervals per interval; zeros first for closes not yet made), then room
        for the closes' powers, their demands and the maxima shown."""
        n_sub = self.config.subintervals
        buf = np.empty(n_sub + 3 * k)
        buf[:n_sub] = [0.0] * (n_sub - len(self.recent_w)) + list(self.recent_w)
        return buf

    def _close_sliding(self, closes: range, buf: FloatArray, clock_us: int) -> DemandCloses:
        """:meth:`_close` for each of ``closes`` (full sub-intervals, their mean powers
        in ``buf`` after the last N: see :meth:`_window`), sliding demand, as arrays:
        the same floating-point operations in the same order.

        Each close's demand sums the last N sub-interval powers left to right as
        ``sum`` does (leading zeros stand for closes not yet made: adding 0.0 is
        exact); the maximum is a running maximum within each maximum-demand window
        (the windows are rolled between them, as at each close). ``clock_us`` turns
        uptime into the core's clock for the events; the event's columns are ``buf``'s.
        """
        cfg, sub_us = self.config, closes.step
        n_sub, k = cfg.subintervals, len(closes)
        powers = buf[n_sub : n_sub + k]
        demand = buf[n_sub + k : n_sub + 2 * k]
        shown = buf[n_sub + 2 * k :]
        if n_sub == 1:
            demand[:] = powers
        else:
            np.add(buf[1 : k + 1], buf[2 : k + 2], out=demand)
        for col in range(3, n_sub + 1):
            demand += buf[col : col + k]
        demand /= n_sub
        window_us = cfg.max_window_h * _US_PER_H
        start = 0
        while start < k:
            self._roll_window(closes[start], inclusive=False)
            stop = k
            if window_us:  # the closes up to the window's end (inclusive) are one window
                stop = min(k, (self.window_start_us + window_us - closes[0]) // sub_us + 1)
            whole = start == 0 and stop == k  # one window (the usual): no views to make
            part = demand if whole else demand[start:stop]
            floor = max(self.max_w, self.period_max_w)
            top = int(part.argmax())
            peak = float(part[top])
            if peak > self.period_max_w:
                self.period_max_w = peak
                self.period_max_at_us = closes[start + top]
            if window_us == 0 or self.window_start_us == 0:  # shown at once (see _update_max)
                np.maximum(
                    np.maximum.accumulate(part), floor, out=shown if whole else shown[start:stop]
                )
                if self.period_max_w > self.max_w:
                    self.max_w, self.max_at_us = self.period_max_w, self.period_max_at_us
            else:
                shown[start:stop] = self.max_w
            self._roll_window(closes[stop - 1])
            shown[stop - 1] = self.max_w
            start = stop
        recent = self.recent_w
        recent.extend(powers[-n_sub:].tolist())
        for _ in range(len(recent) - n_sub):
            recent.popleft()
        self.closes += k
        self.demand_w = float(demand[-1])
        # numpy's int -> float conversions and divisions round as Python's do.
        start_us = closes.start + clock_us
        times = np.arange(start_us, start_us + k * sub_us, sub_us, dtype=np.int64) / 1e6
        buf[n_sub:] /= 1000.0  # powers, demands and maxima to kW at once
        return DemandCloses(times, powers, demand, shown)

    def close_now(self, uptime_us: int) -> None:
        """Close the open sub-interval early and start a new grid (command 21211)."""
        length = (
            uptime_us
            - self.origin_us
            - ((uptime_us - self.origin_us) // self.config.subinterval_us)
            * self.config.subinterval_us
        )
        if length > 0:
            self._close(self.partial_uj, length, uptime_us)
        self.origin_us = uptime_us
        self.partial_uj = 0

    def _close(self, energy_uj: int, length_us: int, at_us: int) -> None:
        cfg = self.config
        power_w = energy_uj / length_us  # uJ per us is W
        self.recent_w.append(power_w)
        while len(self.recent_w) > cfg.subintervals:
            self.recent_w.popleft()
        self.closes += 1
        if cfg.method is DemandMethod.SLIDING:
            self.demand_w = sum(self.recent_w) / cfg.subintervals
        elif cfg.method is DemandMethod.BLOCK:
            if self.closes % cfg.subintervals == 0:
                self.demand_w = sum(self.recent_w) / cfg.subintervals
        else:
            tau_us = cfg.interval_min * 60e6 / math.log(10.0)
            self.demand_w += (1.0 - math.exp(-length_us / tau_us)) * (power_w - self.demand_w)
        self._update_max(at_us)

    def _update_max(self, at_us: int) -> None:
        window_h = self.config.max_window_h
        # Windows that ended before this close are over, whatever the sample step.
        self._roll_window(at_us, inclusive=False)
        if self.demand_w > self.period_max_w:
            self.period_max_w, self.period_max_at_us = self.demand_w, at_us
        live = window_h == 0 or (
            self.window_start_us == 0 and at_us <= window_h * _US_PER_H
        )  # until reset, or the first window after power-up: shown at once
        if live and self.period_max_w > self.max_w:
            self.max_w, self.max_at_us = self.period_max_w, self.period_max_at_us
        self._roll_window(at_us)

    def _roll_window(self, uptime_us: int, *, inclusive: bool = True) -> None:
        window_h = self.config.max_window_h
        if window_h == 0:
            return
        window_us = window_h * _US_PER_H
        while uptime_us > self.window_start_us + window_us - (1 if inclusive else 0):
            self.max_w, self.max_at_us = self.period_max_w, self.period_max_at_us
            self.window_start_us += window_us
            self.period_max_w, self.period_max_at_us = 0.0, self.window_start_us


def _energy_upto(
    closes: range, u0_us: int, dt_us: int, delivered_uj: IntArray, cum_uj: IntArray
) -> IntArray | list[int]:
    """Delivered energy of the run from ``u0_us`` up to each close (a sample's share by time).

    Vectorised while the shares fit in int64, else exact in Python ints. When every
    close falls on a sample boundary (the step divides the sub-interval), the
    running totals there are a strided view of ``cum_uj``.
    """
    first_us = closes.start - u0_us
    if first_us % dt_us == 0 and closes.step % dt_us == 0:
        step = closes.step // dt_us
        j0 = first_us // dt_us - 1  # the sample ending at the first close (first_us > 0)
        return cum_uj[j0 : j0 + step * (len(closes) - 1) + 1 : step]
    offsets = np.arange(closes.start - u0_us, closes.stop - u0_us, closes.step, dtype=np.int64)
    j, into_us = np.divmod(offsets, dt_us)
    whole = np.where(j > 0, cum_uj[np.maximum(j - 1, 0)], 0)
    split = into_us > 0
    if not split.any():
        return whole
    inside = delivered_uj[np.minimum(j, delivered_uj.shape[0] - 1)]
    if int(delivered_uj.max()) * dt_us < _INT64_SAFE:
        share = np.where(split, inside * into_us // dt_us, 0)
        return whole + share
    return [
        int(w) + (int(d) * int(t) // dt_us if t else 0)
        for w, d, t in zip(whole.tolist(), inside.tolist(), into_us.tolist(), strict=True)
    ]
