"""The numbers the plots show: a run's rows binned to a few thousand points, and the
pulse rate without aliasing.

Theory of operation. Everything here is a pure function of the
:class:`~twin.batch.simulate.SimResult`, numpy only (no matplotlib): long series are
binned to a few thousand points, which is all a PNG can show anyway, into a
:class:`PlotData` of kilobytes that a plot process forked before the run can be sent
(the result is a hundred megabytes). Pulse rates are computed without aliasing
(:func:`pulse_rate_per_h`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from twin.batch.simulate import SimResult
from twin.core import ErrorCleared, ErrorCode, ErrorRaised

_PLOT_POINTS = 3000


def _time_axis(t_s: npt.NDArray[Any]) -> tuple[float, str]:
    span = float(t_s[-1]) if t_s.size else 0.0
    for scale, unit in ((86_400.0, "d"), (3600.0, "h"), (60.0, "min")):
        if span >= 3 * scale:
            return scale, unit
    return 1.0, "s"


def duration_text(seconds: float) -> str:
    for scale, unit in ((86_400.0, "d"), (3600.0, "h"), (60.0, "min")):
        if seconds >= scale and seconds % scale == 0:
            return f"{seconds / scale:g} {unit}"
    return f"{seconds:g} s"


def _bin(x: npt.NDArray[Any], k: int, how: str) -> npt.NDArray[np.float64]:
    """Aggregate consecutive groups of k values (the last group may be short)."""
    x = np.asarray(x, dtype=np.float64)
    if k <= 1:
        return x
    starts = np.arange(0, x.size, k)
    if how == "last":
        return np.asarray(x[np.minimum(starts + k, x.size) - 1], dtype=np.float64)
    if how == "max":
        return np.asarray(np.maximum.reduceat(x, starts), dtype=np.float64)
    sums = np.add.reduceat(x, starts)
    return np.asarray(sums if how == "sum" else sums / np.diff(np.append(starts, x.size)))


def error_spans(result: SimResult, end_s: float) -> dict[str, list[tuple[float, float]]]:
    """Active spans of each error code (by name) and of the unpowered state."""
    spans: dict[str, list[tuple[float, float]]] = {}
    open_at: dict[str, float] = {}
    # By exact type (the core's events are final classes): no record of a demand close made.
    for ev in result.events.of_types(ErrorRaised, ErrorCleared):
        if isinstance(ev, ErrorRaised | ErrorCleared):
            name = ErrorCode(ev.code).name.lower()
            if isinstance(ev, ErrorRaised):
                open_at.setdefault(name, ev.time_s)
            elif name in open_at:
                spans.setdefault(name, []).append((open_at.pop(name), ev.time_s))
    for name, t in open_at.items():
        spans.setdefault(name, []).append((t, end_s))
    if result.unpowered_spans:
        spans["unpowered"] = list(result.unpowered_spans)
    return spans


def pulse_rate_per_h(
    counts: npt.NDArray[Any],
    first_s: npt.NDArray[Any],
    last_s: npt.NDArray[Any],
    row_end_s: npt.NDArray[Any],
    min_pulses: float = 2.0,
) -> tuple[npt.NDArray[np.float64], float]:
    """Pulses per hour at each row end over a trailing window, without aliasing.

    A count taken per window is 0 or 1 for a slow output (the 1000 Wh output at
    5.4 kW gives 5.4 pulses an hour: a 0/10 per hour square wave over 6-minute
    windows). Instead the pulse count is a line through the pulses themselves (each
    row's first and last count time are exact), so a constant load gives a constant
    rate for any window. Before the first pulse and after the last, the count moves
    at the nearest pulse period but never reaches another pulse, so a load that
    stops fades to 0. The window (returned, in s) holds about ``min_pulses`` pulses
    at the run's mean rate, at most a tenth of the run.
    """
    c = np.asarray(counts, dtype=np.float64)
    t_end = np.asarray(row_end_s, dtype=np.float64)
    rows = c.size
    mean = float(c.mean()) if rows else 0.0
    w = math.ceil(min_pulses / mean) if mean > 0 else 1
    w = max(1, min(w, rows // 10 or 1))
    t0 = np.concatenate(([0.0], t_end))
    n0 = _pulse_count_line(c, np.asarray(first_s), np.asarray(last_s), t0)
    # Row i (1..rows) against row max(i - w, 0): (n0[i] - n0[j]) / max(t0[i] - t0[j],
    # 1e-9) * 3600 computed in place, the first w rows against row 0.
    rate, span = np.empty(rows), np.empty(rows)
    for a, b in ((n0, rate), (t0, span)):
        np.subtract(a[1 : w + 1], a[0], out=b[:w])
        np.subtract(a[w + 1 :], a[1 : rows - w + 1], out=b[w:])
    np.maximum(span, 1e-9, out=span)
    np.divide(rate, span, out=rate)
    np.multiply(rate, 3600.0, out=rate)
    window_s = float(t_end[w - 1]) if rows else 0.0
    return rate, window_s


def _pulse_count_line(
    c: npt.NDArray[np.float64],
    first_s: npt.NDArray[Any],
    last_s: npt.NDArray[Any],
    t: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """The pulse count at times ``t``, linear between pulses (see pulse_rate_per_h)."""
    counted = c > 0
    idx = np.flatnonzero(counted)
    if idx.size == 0:
        return np.zeros_like(t)
    # Each counted row's first and last count: (time, count so far) pairs in turn.
    xp, fp = np.empty(2 * idx.size), np.empty(2 * idx.size)
    xp[0::2], xp[1::2] = first_s[counted], last_s[counted]
    per_row = c[counted]
    fp[1::2] = cum = np.cumsum(per_row)  # the rows not counted add 0
    cum -= per_row
    cum += 1
    fp[0::2] = cum
    n = np.interp(t, xp, fp)

    def period(a: float, b: float, pulses: float) -> float:
        return (b - a) / pulses if pulses > 0 and b > a else 0.0

    head, tail = idx[0], idx[-1]
    if c[head] > 1:
        first_period = period(xp[0], xp[1], c[head] - 1)
    else:
        first_period = period(xp[0], xp[2], 1) if idx.size > 1 else 0.0
    if c[tail] > 1:
        last_period = period(xp[-2], xp[-1], c[tail] - 1)
    else:
        last_period = period(xp[-3], xp[-1], 1) if idx.size > 1 else 0.0
    before, after = t < xp[0], t > xp[-1]
    if first_period > 0:
        n[before] = 1.0 - np.minimum((xp[0] - t[before]) / first_period, 1.0)
    else:  # a single pulse: nothing says when the count began
        n[before] = 0.0
    if last_period > 0:
        n[after] = fp[-1] + np.minimum((t[after] - xp[-1]) / last_period, 1.0)
    return np.asarray(n, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class PlotData:
    """Everything the figures show, binned: a few thousand numbers, cheap to send to a
    plot process (the run's result is a hundred megabytes)."""

    title: str  # "profile (model)"
    xlabel: str
    scale: float  # seconds per x unit
    k: int  # rows per bin
    bin_label: str
    interval_text: str
    t: npt.NDArray[np.float64]  # bin ends, x units
    series: dict[str, npt.NDArray[np.float64]]
    windows_s: dict[str, float]  # pulse-rate window per count column
    supply: tuple[float, float, float]  # power-up V, power-down V, hold-up s
    end_s: float
    spans: dict[str, list[tuple[float, float]]]


#: The series each figure shows: (column, legend label).
POWER_SERIES = (("power_l1_w", "L1"), ("power_l2_w", "L2"), ("power_w", "total"))
VOLTAGE_SERIES = (("voltage_l1_v", "L1 mean"), ("voltage_l2_v", "L2 mean"))
ENERGY_SERIES = (("energy_delivered_wh", "delivered"), ("energy_l1_wh", "L1"),
           ("energy_l2_wh", "L2"), ("energy_received_wh", "received"))  # fmt: skip
OUTPUT_SERIES = (("pulses_10wh_count", "10 Wh output"), ("pulses_100wh_count", "100 Wh output"),
            ("pulses_1000wh_count", "1000 Wh output"), ("counter_count", "counter"))  # fmt: skip


def plot_data(result: SimResult) -> PlotData:
    """The figures' numbers from a run (numpy only; matplotlib not needed)."""
    cols = result.columns
    t_s = cols["time_s"]
    k = max(1, math.ceil(t_s.size / _PLOT_POINTS))
    if t_s.size and float(t_s[-1]) > 14 * 86_400:
        # Past two weeks a daily cycle is a solid smear: show days (mean and range).
        k = max(k, round(86_400 / result.interval_s))
    scale, unit = _time_axis(t_s)
    series: dict[str, npt.NDArray[np.float64]] = {}
    for key, _ in POWER_SERIES:
        series[key] = _bin(cols[key], k, "mean") / 1000.0
        if k > 1:
            series[key + ":low"] = -_bin(-np.asarray(cols[key]), k, "max") / 1000.0
            series[key + ":high"] = _bin(cols[key], k, "max") / 1000.0
    for key, _ in VOLTAGE_SERIES:
        series[key] = _bin(cols[key], k, "mean")
    series["voltage_min_v"] = -_bin(-np.asarray(cols["voltage_min_v"]), k, "max")
    for key, _ in ENERGY_SERIES:
        series[key] = _bin(cols[key], k, "last") / 1000.0
    series["demand_max_kw"] = _bin(cols["demand_max_kw"], k, "last")
    series["demand_kw"] = _bin(cols["demand_kw"], k, "max")
    windows: dict[str, float] = {}
    for key, _ in OUTPUT_SERIES:
        first_s, last_s = result.count_times[key]
        rate_h, windows[key] = pulse_rate_per_h(cols[key], first_s, last_s, t_s)
        series[key] = _bin(rate_h, k, "mean")
    end_s = float(t_s[-1])
    supply = result.config.supply
    return PlotData(
        title=f"{result.summary.get('profile', '')} ({result.summary.get('model', '')})",
        xlabel=f"time ({unit})",
        scale=scale,
        k=k,
        bin_label="" if k == 1 else f", {duration_text(k * result.interval_s)} bins",
        interval_text=duration_text(result.interval_s),
        t=_bin(t_s, k, "last") / scale,
        series=series,
        windows_s=windows,
        supply=(supply.power_up_v, supply.power_down_v, supply.hold_up_s),
        end_s=end_s,
        spans=error_spans(result, end_s),
    )
