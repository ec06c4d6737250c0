"""Time-series segments: daily curves and CSV series (nodes and their YAML parsers).

A daily curve gives per element 24 hourly points of power or current, linear in
between and wrapping at midnight; optionally a weekend curve (or a weekend factor)
and 12 monthly factors, interpolated between mid-month days so the season changes
smoothly. Day number, weekday and season derive from the integer sample time,
so values never depend on where a block starts; when a block stays inside one day
the day-level factors are computed once.

A CSV series reads a file beside the profile (see :mod:`twin.loadprofile.csvfile`) and
resamples its rows to the sample period by holding each row or interpolating
linearly; columns it does not have come from the segment's L1/L2 levels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

import numpy as np

from twin.core import FloatArray
from twin.loadprofile.levels import (
    MAX_POWER_W,
    POWER_MIN_PF,
    POWER_MIN_VOLTAGE_V,
    SEGMENT_KEYS,
    Reader,
    parse_current,
    parse_duration_us,
    parse_level,
)
from twin.loadprofile.reader import Ctx, LineDict
from twin.loadprofile.segments import (
    DAY_US,
    HOURS_S,
    MID_MONTH_DAY,
    Inputs,
    Level,
    Load,
    element,
    load_current_bound,
    pair,
)


class Quantity(StrEnum):
    """What a daily curve gives per line: watts or amperes."""

    POWER = "power"
    CURRENT = "current"


WEEKDAYS: Final = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
          "september", "october", "november", "december")  # fmt: skip
MONTH_START_DAY = (0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334)
#: Windows this long (samples) keep their day shape: a day-long block then costs one
#: multiply and one divide per line; the live twin's few-sample windows are not kept.
CACHE_MIN_SAMPLES: Final = 4096
#: Distinct windows kept per curve (weekday and weekend of one block size, plus slack).
CACHE_ENTRIES: Final = 8


@dataclass(frozen=True, slots=True)
class _DayShape:
    """A day's curve per line over one window of samples (None: the line is a level)."""

    lines: list[FloatArray | None]
    negative: list[bool]  # whether the line's curve goes below zero in the window


@dataclass(frozen=True, slots=True, eq=False)
class Daily:
    duration_us: int
    level: Level
    is_power: bool
    weekday: tuple[FloatArray | None, FloatArray | None]  # 25 points per line (00..24 h)
    weekend: tuple[FloatArray | None, FloatArray | None]
    weekend_factor: float
    monthly: FloatArray | None  # 14 points over MID_MONTH_DAY
    start_weekday: int
    start_day: int  # day of year of t = 0 (0-based)

    _shapes: dict[tuple[int, int, int, bool], _DayShape] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def _day_factor(self, day: Any) -> tuple[Any, Any]:
        """(is_weekend, seasonal factor) for day numbers (scalar or array)."""
        weekend = (day + self.start_weekday) % 7 >= 5
        factor: Any = 1.0
        if self.monthly is not None:
            factor = np.interp((day + self.start_day) % 365, MID_MONTH_DAY, self.monthly)
        return weekend, factor

    def evaluate(self, t0_us: int, dt_us: int, n: int) -> Inputs:
        first_day, last_day = t0_us // DAY_US, (t0_us + (n - 1) * dt_us) // DAY_US
        if first_day == last_day:
            return self._one_day(first_day, t0_us - first_day * DAY_US, dt_us, n)
        t_us = t0_us + np.arange(n, dtype=np.int64) * dt_us
        day = t_us // DAY_US
        tod_s = (t_us - day * DAY_US) / 1e6
        weekend, factor = self._day_factor(day)
        amounts: list[Any] = []
        for line, load in enumerate((self.level.l1, self.level.l2)):
            curve = self.weekday[line]
            if curve is None:
                amounts.append(load.current_a if load.power_w is None else load.power_w)
                continue
            value = np.interp(tod_s, HOURS_S, curve)
            other = self.weekend[line]
            if other is not None:
                value = np.where(weekend, np.interp(tod_s, HOURS_S, other), value)
            elif self.weekend_factor != 1.0:
                value = value * np.where(weekend, self.weekend_factor, 1.0)
            amounts.append(value * factor if self.monthly is not None else value)
        cur, cos = [], []
        for line, load in enumerate((self.level.l1, self.level.l2)):
            c, k = element(load.voltage_v, amounts[line], self._line_is_power(line), load.pf)
            cur.append(c)
            cos.append(k)
        return self._inputs(pair(cur[0], cur[1], n), pair(cos[0], cos[1], n), n)

    def _line_is_power(self, line: int) -> bool:
        load = (self.level.l1, self.level.l2)[line]
        return self.is_power if self.weekday[line] is not None else load.power_w is not None

    def _inputs(self, current_a: Any, cos_phi: Any, n: int) -> Inputs:
        return Inputs(
            voltage_v=pair(self.level.l1.voltage_v, self.level.l2.voltage_v, n),
            current_a=current_a,
            cos_phi=cos_phi,
            leading=np.array([[self.level.l1.leading], [self.level.l2.leading]]),
            frequency_hz=np.float64(self.level.frequency_hz),
            temperature_c=np.float64(self.level.temperature_c),
        )

    def _shape(self, tod0_us: int, dt_us: int, n: int, weekend: bool) -> _DayShape:
        """Each line's curve over one day's samples; long windows cached (every day alike)."""
        key = (tod0_us, dt_us, n, weekend)
        shape = self._shapes.get(key)
        if shape is not None:
            return shape
        tod_s = (tod0_us + np.arange(n, dtype=np.int64) * dt_us) / 1e6
        lines: list[FloatArray | None] = []
        for line in (0, 1):
            curve = self.weekday[line]
            if curve is None:
                lines.append(None)
                continue
            other = self.weekend[line]
            value = np.interp(tod_s, HOURS_S, other if weekend and other is not None else curve)
            if weekend and other is None and self.weekend_factor != 1.0:
                value = value * self.weekend_factor
            lines.append(value)
        shape = _DayShape(lines, [v is not None and bool((v < 0).any()) for v in lines])
        if n >= CACHE_MIN_SAMPLES:
            if len(self._shapes) >= CACHE_ENTRIES:
                self._shapes.clear()
            self._shapes[key] = shape
        return shape

    def _one_day(self, day: int, tod0_us: int, dt_us: int, n: int) -> Inputs:
        """Samples within one day: weekend and season are constants of the day.

        Same operations in the same order as the general path (so the same bits):
        curve (x weekend factor) x seasonal factor, then |power| / (V x pf).
        """
        weekend, factor = self._day_factor(day)
        shape = self._shape(tod0_us, dt_us, n, bool(weekend))
        current = np.empty((2, n))
        cos_phi = np.empty((2, 1))
        for line, load in enumerate((self.level.l1, self.level.l2)):
            value = shape.lines[line]
            if value is None:
                level = load.current_a if load.power_w is None else load.power_w
                c, k = element(load.voltage_v, level, load.power_w is not None, load.pf)
                current[line], cos_phi[line] = c, k
                continue
            if shape.negative[line] and self.is_power:
                # Export somewhere in the day: the sign of each sample sets cos_phi.
                amount = value * factor if self.monthly is not None else value
                c, k = element(load.voltage_v, amount, True, load.pf)
                if cos_phi.shape[1] == 1:
                    cos_phi = np.repeat(cos_phi, n, axis=1)
                current[line], cos_phi[line] = c, k
                continue
            out = current[line]
            if self.monthly is not None:
                np.multiply(value, factor, out=out)
            else:
                out[:] = value
            if self.is_power:
                apparent_va = load.voltage_v * load.pf
                if apparent_va > 0:
                    np.abs(out, out=out)  # |x f| = |x| f for f >= 0, bit for bit
                    np.divide(out, apparent_va, out=out)
                else:
                    out[:] = 0.0
            cos_phi[line] = load.pf
        return self._inputs(current, cos_phi, n)

    def max_current_a(self) -> tuple[float, float]:
        bound = [0.0, 0.0]
        season = 1.0 if self.monthly is None else float(self.monthly.max())
        for line, load in enumerate((self.level.l1, self.level.l2)):
            curve = self.weekday[line]
            if curve is None:
                bound[line] = load_current_bound(load)
                continue
            peak = float(np.abs(curve).max()) * max(1.0, self.weekend_factor)
            other = self.weekend[line]
            if other is not None:
                peak = max(peak, float(np.abs(other).max()))
            amount = peak * season
            probe = Load(load.voltage_v, amount, amount if self.is_power else None, load.pf)
            bound[line] = load_current_bound(probe)
        return bound[0], bound[1]


@dataclass(frozen=True, slots=True, eq=False)
class CsvSeries:
    """Rows at offsets ``times_s``; ``columns`` maps 'L1.power', 'frequency', ... to values."""

    duration_us: int
    level: Level
    times_s: FloatArray
    columns: dict[str, FloatArray]
    linear: bool

    def _column(self, name: str, t_s: FloatArray, idx: Any) -> Any:
        values = self.columns[name]
        if self.linear:
            return np.interp(t_s, self.times_s, values)
        return values[idx]

    def evaluate(self, t0_us: int, dt_us: int, n: int) -> Inputs:
        t_s = (t0_us + np.arange(n, dtype=np.int64) * dt_us) / 1e6
        idx = None if self.linear else np.searchsorted(self.times_s, t_s, side="right") - 1

        def get(name: str, default: Any) -> Any:
            return self._column(name, t_s, idx) if name in self.columns else default

        volts, cur, cos = [], [], []
        for line, load in (("L1", self.level.l1), ("L2", self.level.l2)):
            v = get(f"{line}.voltage", load.voltage_v)
            pf = get(f"{line}.pf", load.pf)
            if f"{line}.power" in self.columns:
                c, k = element(v, get(f"{line}.power", 0.0), True, pf)
            elif f"{line}.current" in self.columns:
                c, k = element(v, get(f"{line}.current", 0.0), False, pf)
            else:
                amount = load.current_a if load.power_w is None else load.power_w
                c, k = element(v, amount, load.power_w is not None, pf)
            volts.append(v)
            cur.append(c)
            cos.append(k)
        return Inputs(
            voltage_v=pair(volts[0], volts[1], n),
            current_a=pair(cur[0], cur[1], n),
            cos_phi=pair(cos[0], cos[1], n),
            leading=np.array([[self.level.l1.leading], [self.level.l2.leading]]),
            frequency_hz=get("frequency", np.float64(self.level.frequency_hz)),
            temperature_c=get("temperature", np.float64(self.level.temperature_c)),
        )

    def max_current_a(self) -> tuple[float, float]:
        bound = [0.0, 0.0]
        for k, (line, load) in enumerate((("L1", self.level.l1), ("L2", self.level.l2))):
            if f"{line}.current" in self.columns:
                bound[k] = float(self.columns[f"{line}.current"].max())
                continue
            power = self.columns.get(f"{line}.power")
            if power is None:
                bound[k] = load_current_bound(load)
                continue
            # The parser keeps voltages >= 60 V and pf >= 0.05 wherever a power is given.
            volts = self.columns.get(f"{line}.voltage", np.array([load.voltage_v]))
            pf = self.columns.get(f"{line}.pf", np.array([load.pf]))
            low = float(volts.min()) * float(pf.min())
            if low > 0:
                bound[k] = float(np.abs(power).max()) / low
        return bound[0], bound[1]


# ------------------------------------------------------------------- parsing


def _curve(ctx: Ctx, value: Any, is_power: bool, points: int) -> FloatArray:
    items = ctx.sequence(value, f"a list of {points} numbers")
    if len(items) != points:
        ctx.fail(f"{len(items)} values; expected {points}")
    if is_power:
        values = [
            ctx.at(k, items).number(v, -MAX_POWER_W, MAX_POWER_W, "W") for k, v in enumerate(items)
        ]
    else:
        values = [parse_current(ctx.at(k, items), v) for k, v in enumerate(items)]
    return np.array(values)


def _per_line(ctx: Ctx, data: LineDict, key: str, is_power: bool) -> tuple[Any, Any]:
    c = ctx.at(key, data)
    lines = c.mapping(data[key], "a mapping of L1 and/or L2 to 24 hourly values")
    c.keys(lines, ("L1", "L2"))
    if not lines:
        c.fail("empty mapping; expected L1 and/or L2 with 24 hourly values")
    out: list[FloatArray | None] = []
    for line in ("L1", "L2"):
        if line in lines:
            curve = _curve(c.at(line, lines), lines[line], is_power, 24)
            out.append(np.append(curve, curve[0]))  # wrap at midnight
        else:
            out.append(None)
    return out[0], out[1]


def parse_daily(ctx: Ctx, data: LineDict, base: Level, read: Reader) -> Daily:
    """A ``kind: daily`` segment (``read`` unused: a daily curve is inline)."""
    keys = (*SEGMENT_KEYS, "duration", "quantity", "hourly", "weekend", "weekend_factor", "monthly",
            "start_weekday", "start_month")  # fmt: skip
    ctx.keys(data, keys, ("duration", "quantity", "hourly"))
    level = parse_level(ctx, data, base)
    is_power = ctx.at("quantity", data).member(data["quantity"], Quantity) is Quantity.POWER
    weekday = _per_line(ctx, data, "hourly", is_power)
    weekend: tuple[Any, Any] = (None, None)
    if "weekend" in data:
        if "weekend_factor" in data:
            ctx.at("weekend_factor", data).fail("given with weekend; expected one of them")
        weekend = _per_line(ctx, data, "weekend", is_power)
        for line in (0, 1):
            if (weekend[line] is None) != (weekday[line] is None):
                ctx.at("weekend", data).fail(f"L{line + 1}: expected the same lines as hourly")
    factor = 1.0
    if "weekend_factor" in data:
        factor = ctx.at("weekend_factor", data).number(data["weekend_factor"], 0, 10)
    monthly = None
    if "monthly" in data:
        months = _curve(ctx.at("monthly", data), data["monthly"], False, 12)
        mctx = ctx.at("monthly", data)
        for k, v in enumerate(months):
            if v > 10:
                mctx.at(k, data["monthly"]).fail(f"{v:g} out of range; expected 0..10")
        monthly = np.concatenate([months[-1:], months, months[:1]])
    start_weekday = 0
    if "start_weekday" in data:
        start_weekday = WEEKDAYS.index(
            ctx.at("start_weekday", data).choice(data["start_weekday"], WEEKDAYS)
        )
    start_day = 0
    if "start_month" in data:
        month_name = ctx.at("start_month", data).choice(data["start_month"], MONTHS)
        start_day = MONTH_START_DAY[MONTHS.index(month_name)]
    for name, load in (("L1", level.l1), ("L2", level.l2)):
        if is_power and load.voltage_v < POWER_MIN_VOLTAGE_V:
            ctx.fail(
                f"{name}.voltage {load.voltage_v:g} V with a power curve; "
                f"expected >= {POWER_MIN_VOLTAGE_V:g} V"
            )
        if is_power and load.pf < POWER_MIN_PF:
            ctx.fail(f"{name}.pf {load.pf:g} with a power curve; expected >= {POWER_MIN_PF:g}")
    return Daily(
        duration_us=parse_duration_us(ctx, data),
        level=level,
        is_power=is_power,
        weekday=weekday,
        weekend=weekend,
        weekend_factor=factor,
        monthly=monthly,
        start_weekday=start_weekday,
        start_day=start_day,
    )
