"""Plots of a batch simulation (PNG), and the pulse rate they show.

Theory of operation. Everything here is a pure function of the
:class:`~twin.batch.simulate.SimResult`. matplotlib is imported lazily (its
``Figure`` alone, not pyplot) so the core install does not need it; long series are
binned to a few thousand points before plotting, which is all a PNG can show anyway;
margins are fixed rather than measured and PNGs use fast compression, so each figure
is drawn once. Power and voltage are
drawn as steps (each row is the mean over the interval ending at its time); pulse
rates are computed without aliasing (:func:`pulse_rate_per_h`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from twin.batch.simulate import SimResult
from twin.core import ErrorCleared, ErrorCode, ErrorRaised

_PLOT_POINTS = 3000
#: Figure margins in inches: y label and tick labels, suptitle and a title, x label.
_MARGIN_LEFT_IN, _MARGIN_RIGHT_IN, _MARGIN_TOP_IN, _MARGIN_BOTTOM_IN = 0.85, 0.25, 0.75, 0.6
#: The status plot's lane names as y tick labels: room per character, and around them.
_CHAR_IN, _LABEL_PAD_IN = 0.085, 0.35
_GAP_IN = 0.15  # between stacked axes (they share the x axis: no labels in between)
#: zlib level of the PNGs: 1 writes them several times faster than the default 6.
_PNG_LEVEL = 1
#: The plots a run writes (write_plots writes exactly these).
PLOT_FILES = (
    "power.png",
    "voltage.png",
    "energy.png",
    "demand.png",
    "pulses.png",
    "status.png",
)


def _time_axis(t_s: npt.NDArray[Any]) -> tuple[float, str]:
    span = float(t_s[-1]) if t_s.size else 0.0
    for scale, unit in ((86_400.0, "d"), (3600.0, "h"), (60.0, "min")):
        if span >= 3 * scale:
            return scale, unit
    return 1.0, "s"


def _duration_text(seconds: float) -> str:
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
    i = np.arange(1, rows + 1)
    j = np.maximum(i - w, 0)
    rate = (n0[i] - n0[j]) / np.maximum(t0[i] - t0[j], 1e-9) * 3600.0
    window_s = float(t_end[w - 1]) if rows else 0.0
    return np.asarray(rate, dtype=np.float64), window_s


def _pulse_count_line(
    c: npt.NDArray[np.float64],
    first_s: npt.NDArray[Any],
    last_s: npt.NDArray[Any],
    t: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """The pulse count at times ``t``, linear between pulses (see pulse_rate_per_h)."""
    idx = np.flatnonzero(c > 0)
    if idx.size == 0:
        return np.zeros_like(t)
    cum = np.cumsum(c)
    xp = np.empty(2 * idx.size)
    fp = np.empty_like(xp)
    xp[0::2], fp[0::2] = first_s[idx], cum[idx] - c[idx] + 1
    xp[1::2], fp[1::2] = last_s[idx], cum[idx]
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


def _margins(fig: Any, rows: int, left_in: float) -> None:
    """Fixed margins (inches) sized for the labels these plots carry: measuring the
    text instead (``tight_layout``) costs a second draw of every figure."""
    width_in, height_in = fig.get_size_inches()
    fig.subplots_adjust(
        left=left_in / width_in,
        right=1.0 - _MARGIN_RIGHT_IN / width_in,
        top=1.0 - _MARGIN_TOP_IN / height_in,
        bottom=_MARGIN_BOTTOM_IN / height_in,
        hspace=_GAP_IN * rows / (height_in - _MARGIN_TOP_IN - _MARGIN_BOTTOM_IN),
    )


def preload() -> None:
    """Import what the plots need (matplotlib's Figure and Agg canvas), e.g. on a thread
    while the simulation runs: the forked plot process then starts with them loaded.
    Without matplotlib this does nothing (write_plots says what is missing)."""
    with contextlib.suppress(ImportError):
        import matplotlib.backends.backend_agg
        import matplotlib.figure  # noqa: F401


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


_POWER = (("power_l1_w", "L1"), ("power_l2_w", "L2"), ("power_w", "total"))
_VOLTAGE = (("voltage_l1_v", "L1 mean"), ("voltage_l2_v", "L2 mean"))
_ENERGY = (("energy_delivered_wh", "delivered"), ("energy_l1_wh", "L1"),
           ("energy_l2_wh", "L2"), ("energy_received_wh", "received"))  # fmt: skip
_OUTPUTS = (("pulses_10wh_count", "10 Wh output"), ("pulses_100wh_count", "100 Wh output"),
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
    for key, _ in _POWER:
        series[key] = _bin(cols[key], k, "mean") / 1000.0
        if k > 1:
            series[key + ":low"] = -_bin(-np.asarray(cols[key]), k, "max") / 1000.0
            series[key + ":high"] = _bin(cols[key], k, "max") / 1000.0
    for key, _ in _VOLTAGE:
        series[key] = _bin(cols[key], k, "mean")
    series["voltage_min_v"] = -_bin(-np.asarray(cols["voltage_min_v"]), k, "max")
    for key, _ in _ENERGY:
        series[key] = _bin(cols[key], k, "last") / 1000.0
    series["demand_max_kw"] = _bin(cols["demand_max_kw"], k, "last")
    series["demand_kw"] = _bin(cols["demand_kw"], k, "max")
    windows: dict[str, float] = {}
    for key, _ in _OUTPUTS:
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
        bin_label="" if k == 1 else f", {_duration_text(k * result.interval_s)} bins",
        interval_text=_duration_text(result.interval_s),
        t=_bin(t_s, k, "last") / scale,
        series=series,
        windows_s=windows,
        supply=(supply.power_up_v, supply.power_down_v, supply.hold_up_s),
        end_s=end_s,
        spans=error_spans(result, end_s),
    )


def write_plots(out_dir: Path, result: SimResult) -> list[Path]:
    return draw_plots(out_dir, plot_data(result))


def draw_plots(out_dir: Path, data: PlotData, only: Sequence[str] = PLOT_FILES) -> list[Path]:
    """Draw and write the figures ``only`` names (default: every one of PLOT_FILES);
    returns their paths. Each figure is independent of the others."""
    # matplotlib's Figure without pyplot: no figure manager, half the import time.
    from matplotlib.figure import Figure

    k, t, series, bin_label = data.k, data.t, data.series, data.bin_label
    paths: list[Path] = []

    def figure(title: str, rows: int = 1, left_in: float = _MARGIN_LEFT_IN) -> tuple[Any, Any]:
        fig = Figure(figsize=(10, 3 + 1.6 * rows), dpi=100)
        axes = fig.subplots(rows, 1, sharex=True)
        fig.suptitle(f"{title} — {data.title}")
        _margins(fig, rows, left_in)
        return fig, axes

    def save(fig: Any, axes: Any, filename: str) -> None:
        for ax in np.atleast_1d(axes):
            ax.grid(True, alpha=0.3)
        np.atleast_1d(axes)[-1].set_xlabel(data.xlabel)
        path = out_dir / filename
        fig.savefig(path, metadata={"Software": None}, pil_kwargs={"compress_level": _PNG_LEVEL})
        paths.append(path)

    # Each row is the mean over the interval ENDING at its time: steps drawn "pre",
    # from the start of the run (a row's value holds over its whole interval).
    t_step = np.concatenate(([0.0], t))

    def steps(y: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return np.concatenate((y[:1], y))

    def power() -> None:
        fig, ax = figure("Power")
        for key, label in _POWER:
            (line,) = ax.step(t_step, steps(series[key]), where="pre", label=label, lw=1)
            if k > 1:
                low, high = series[key + ":low"], series[key + ":high"]
                ax.fill_between(
                    t_step, steps(low), steps(high), step="pre", color=line.get_color(), alpha=0.15
                )
        ax.set_ylabel("mean power (kW)")
        if k > 1:
            ax.set_title(
                f"line: mean, band: range of the {data.interval_text} means{bin_label}", fontsize=9
            )
        ax.legend(loc="upper right")
        save(fig, ax, "power.png")

    def voltage() -> None:
        fig, ax = figure("Input voltage")
        for key, label in _VOLTAGE:
            ax.step(t_step, steps(series[key]), where="pre", label=label, lw=1)
        lowest = series["voltage_min_v"]
        ax.step(t_step, steps(lowest), where="pre", label="lowest sample", lw=1, color="tab:red")
        up_v, down_v, hold_up_s = data.supply
        for volts, label, style in ((up_v, "power-up", "--"), (down_v, "power-down", ":")):
            ax.axhline(volts, color="0.3", ls=style, lw=1, label=f"{label} {volts:g} V")
        ax.set_ylabel("voltage (V)")
        ax.set_title(f"supply hold-up {hold_up_s * 1000:g} ms{bin_label}", fontsize=9)
        ax.legend(loc="lower right", fontsize=8)
        save(fig, ax, "voltage.png")

    def energy() -> None:
        fig, ax = figure("Cumulative energy")
        for key, label in _ENERGY:
            ax.plot(t, series[key], label=label, lw=1.2)
        ax.set_ylabel("energy (kWh)")
        ax.legend(loc="upper left")
        save(fig, ax, "energy.png")

    def demand() -> None:
        fig, ax = figure("Demand")
        max_kw = series["demand_max_kw"]
        ax.step(t, max_kw, where="post", label="max demand", lw=3, alpha=0.5, color="tab:orange")
        demand_label = "demand" if k == 1 else "demand (largest per bin)"
        ax.step(t, series["demand_kw"], where="post", label=demand_label, lw=1, color="tab:blue")
        ax.set_ylabel("demand (kW)")
        ax.legend(loc="upper right")
        save(fig, ax, "demand.png")

    def pulses() -> None:
        fig, axes = figure("Pulse rate", rows=4)
        for ax, (key, label) in zip(axes, _OUTPUTS, strict=True):
            window_s = data.windows_s[key]
            window = _duration_text(window_s) if window_s < 3600 else f"{window_s / 3600:.3g} h"
            ax.plot(t, series[key], lw=1, label=f"{label} (mean over {window})")
            ax.set_ylabel("pulses/h")
            ax.legend(loc="upper right")
        save(fig, axes, "pulses.png")

    def status() -> None:
        scale, end_s, spans = data.scale, data.end_s, data.spans
        lanes = sorted(spans) or ["no errors"]
        label_in = _LABEL_PAD_IN + _CHAR_IN * max(len(lane) for lane in lanes)
        fig, ax = figure("Errors and status", left_in=max(_MARGIN_LEFT_IN, label_in))
        for y, lane in enumerate(lanes):
            bars = [(a / scale, max(b - a, 0.0) / scale) for a, b in spans.get(lane, [])]
            ax.broken_barh(bars, (y - 0.35, 0.7), color="tab:red" if lane != "unpowered" else "0.4")
        ax.axvspan(0.0, end_s / scale, color="tab:green", alpha=0.08, lw=0)
        ax.set_yticks(range(len(lanes)), lanes)
        ax.set_ylim(-0.7, len(lanes) - 0.3)
        ax.set_xlim(0.0, end_s / scale)
        ax.set_ylabel("active condition")
        if not spans:
            ax.text(0.5, 0.5, "no errors, no outages", transform=ax.transAxes, ha="center")
        save(fig, ax, "status.png")

    drawers = {
        "power.png": power,
        "voltage.png": voltage,
        "energy.png": energy,
        "demand.png": demand,
        "pulses.png": pulses,
        "status.png": status,
    }
    for filename in only:
        drawers[filename]()
    return paths
