"""Plots of a batch simulation (PNG).

Theory of operation. The figures show a :class:`~twin.batch.plotdata.PlotData` (the
run's numbers, binned). matplotlib is imported lazily (its ``Figure`` alone, not
pyplot) so the core install does not need it. Each figure is made in two steps: its
frame (figure, axes, margins, grid, y labels: nothing that depends on the run), then
its data (curves, titles, legends, x label) and the PNG. :class:`Figures` holds the
frames; a plot process makes them, and the tick objects their axes will need
(:meth:`Figures.warm`), while the run goes on, so that after the run only the data,
the drawing and the PNG encoding remain. Drawn from scratch (:func:`draw_plots`) the
same two steps run back to back: the same bytes. Margins are fixed rather than
measured and PNGs use fast compression, so each figure is drawn once. Power and
voltage are drawn as steps (each row is the mean over the interval ending at its
time).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from twin.batch.plotdata import (
    ENERGY_SERIES,
    OUTPUT_SERIES,
    POWER_SERIES,
    VOLTAGE_SERIES,
    PlotData,
    duration_text,
    plot_data,
)
from twin.batch.simulate import SimResult

#: Figure margins in inches: y label and tick labels, suptitle and a title, x label.
_MARGIN_LEFT_IN, _MARGIN_RIGHT_IN, _MARGIN_TOP_IN, _MARGIN_BOTTOM_IN = 0.85, 0.25, 0.75, 0.6
#: The status plot's lane names as y tick labels: room per character, and around them.
_CHAR_IN, _LABEL_PAD_IN = 0.085, 0.35
_GAP_IN = 0.15  # between stacked axes (they share the x axis: no labels in between)
#: zlib level of the PNGs: 1 writes them several times faster than the default 6.
_PNG_LEVEL = 1
#: Major ticks made ahead per x and per y axis (Figures.warm): what a long run's axes
#: show (a year: 9-10 on x, 7-11 on y); an axis that needs more makes them as it draws.
_TICKS_AHEAD_X, _TICKS_AHEAD_Y = 10, 9
#: The plots a run writes (write_plots writes exactly these), and each one's y labels
#: (one per stacked axes).
_Y_LABELS = {
    "power.png": ("mean power (kW)",),
    "voltage.png": ("voltage (V)",),
    "energy.png": ("energy (kWh)",),
    "demand.png": ("demand (kW)",),
    "pulses.png": ("pulses/h",) * len(OUTPUT_SERIES),
    "status.png": ("active condition",),
}
PLOT_FILES = tuple(_Y_LABELS)


def preload() -> None:
    """Import what the plots need (matplotlib's Figure and Agg canvas), e.g. in a process
    forked before the run. Without matplotlib this does nothing (write_plots says what
    is missing)."""
    with contextlib.suppress(ImportError):
        import matplotlib.backends.backend_agg
        import matplotlib.figure  # noqa: F401


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


def _frame(name: str) -> tuple[Any, list[Any]]:
    """A figure's frame: its axes (stacked, sharing x), margins, grid and y labels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ylabels = _Y_LABELS[name]
    rows = len(ylabels)
    fig = Figure(figsize=(10, 3 + 1.6 * rows), dpi=100)
    FigureCanvasAgg(fig)  # savefig draws on it (no canvas switched in and out per figure)
    axes = list(np.atleast_1d(fig.subplots(rows, 1, sharex=True)))
    _margins(fig, rows, _MARGIN_LEFT_IN)
    for ax, ylabel in zip(axes, ylabels, strict=True):
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
    return fig, axes


class Figures:
    """The frames of the figures ``names`` (default: every one of PLOT_FILES), each
    drawn once by :meth:`draw`."""

    def __init__(self, names: Sequence[str] = PLOT_FILES) -> None:
        self._frames = {name: _frame(name) for name in names}

    def warm(self) -> None:
        """Make the tick objects the axes will need (matplotlib makes one per tick
        shown as it draws, ~0.4 ms each: a year's six figures show ~170), and each
        canvas's renderer; ticks left unused cost only their making. Minor ticks: the
        one each axis always makes."""
        for fig, axes in self._frames.values():
            for ax in axes:
                ax.xaxis.get_major_ticks(_TICKS_AHEAD_X)
                ax.yaxis.get_major_ticks(_TICKS_AHEAD_Y)
                ax.xaxis.get_minor_ticks(1)
                ax.yaxis.get_minor_ticks(1)
            fig.canvas.get_renderer()  # its pixel buffer: the draw reuses it (same size)

    def draw(self, out_dir: Path, data: PlotData, names: Sequence[str] | None = None) -> list[Path]:
        """Draw and write the figures ``names`` (default: every frame); returns their
        paths. Each frame is drawn once (a second draw would add its curves again)."""
        paths = []
        for name in list(self._frames) if names is None else names:
            fig, axes = self._frames.pop(name)
            fig.suptitle(f"{_TITLES[name]} — {data.title}")
            _DRAWERS[name](fig, axes, data)
            axes[-1].set_xlabel(data.xlabel)
            path = out_dir / name
            fig.savefig(
                path, metadata={"Software": None}, pil_kwargs={"compress_level": _PNG_LEVEL}
            )
            paths.append(path)
        return paths


def draw_plots(out_dir: Path, data: PlotData, only: Sequence[str] = PLOT_FILES) -> list[Path]:
    """Draw and write the figures ``only`` names (default: every one of PLOT_FILES)
    from scratch; returns their paths. Each figure is independent of the others."""
    return Figures(only).draw(out_dir, data)


def write_plots(out_dir: Path, result: SimResult) -> list[Path]:
    return draw_plots(out_dir, plot_data(result))


# Each row is the mean over the interval ENDING at its time: steps drawn "pre", from
# the start of the run (a row's value holds over its whole interval).
def _steps(y: npt.NDArray[Any]) -> npt.NDArray[Any]:
    return np.concatenate((y[:1], y))


def _t_step(data: PlotData) -> npt.NDArray[Any]:
    return np.concatenate(([0.0], data.t))


def _power(fig: Any, axes: list[Any], data: PlotData) -> None:
    (ax,), t_step, series, k = axes, _t_step(data), data.series, data.k
    for key, label in POWER_SERIES:
        (line,) = ax.step(t_step, _steps(series[key]), where="pre", label=label, lw=1)
        if k > 1:
            low, high = series[key + ":low"], series[key + ":high"]
            ax.fill_between(
                t_step, _steps(low), _steps(high), step="pre", color=line.get_color(), alpha=0.15
            )
    if k > 1:
        ax.set_title(
            f"line: mean, band: range of the {data.interval_text} means{data.bin_label}",
            fontsize=9,
        )
    ax.legend(loc="upper right")


def _voltage(fig: Any, axes: list[Any], data: PlotData) -> None:
    (ax,), t_step, series = axes, _t_step(data), data.series
    for key, label in VOLTAGE_SERIES:
        ax.step(t_step, _steps(series[key]), where="pre", label=label, lw=1)
    lowest = series["voltage_min_v"]
    ax.step(t_step, _steps(lowest), where="pre", label="lowest sample", lw=1, color="tab:red")
    up_v, down_v, hold_up_s = data.supply
    for volts, label, style in ((up_v, "power-up", "--"), (down_v, "power-down", ":")):
        ax.axhline(volts, color="0.3", ls=style, lw=1, label=f"{label} {volts:g} V")
    ax.set_title(f"supply hold-up {hold_up_s * 1000:g} ms{data.bin_label}", fontsize=9)
    ax.legend(loc="lower right", fontsize=8)


def _energy(fig: Any, axes: list[Any], data: PlotData) -> None:
    (ax,) = axes
    for key, label in ENERGY_SERIES:
        ax.plot(data.t, data.series[key], label=label, lw=1.2)
    ax.legend(loc="upper left")


def _demand(fig: Any, axes: list[Any], data: PlotData) -> None:
    (ax,), t, series = axes, data.t, data.series
    ax.step(t, series["demand_max_kw"], where="post", label="max demand", lw=3, alpha=0.5,
            color="tab:orange")  # fmt: skip
    demand_label = "demand" if data.k == 1 else "demand (largest per bin)"
    ax.step(t, series["demand_kw"], where="post", label=demand_label, lw=1, color="tab:blue")
    ax.legend(loc="upper right")


def _pulses(fig: Any, axes: list[Any], data: PlotData) -> None:
    for ax, (key, label) in zip(axes, OUTPUT_SERIES, strict=True):
        window_s = data.windows_s[key]
        window = duration_text(window_s) if window_s < 3600 else f"{window_s / 3600:.3g} h"
        ax.plot(data.t, data.series[key], lw=1, label=f"{label} (mean over {window})")
        ax.legend(loc="upper right")


def _status(fig: Any, axes: list[Any], data: PlotData) -> None:
    (ax,), scale, end_s, spans = axes, data.scale, data.end_s, data.spans
    lanes = sorted(spans) or ["no errors"]
    label_in = _LABEL_PAD_IN + _CHAR_IN * max(len(lane) for lane in lanes)
    _margins(fig, 1, max(_MARGIN_LEFT_IN, label_in))
    for y, lane in enumerate(lanes):
        bars = [(a / scale, max(b - a, 0.0) / scale) for a, b in spans.get(lane, [])]
        ax.broken_barh(bars, (y - 0.35, 0.7), color="tab:red" if lane != "unpowered" else "0.4")
    ax.axvspan(0.0, end_s / scale, color="tab:green", alpha=0.08, lw=0)
    ax.set_yticks(range(len(lanes)), lanes)
    ax.set_ylim(-0.7, len(lanes) - 0.3)
    ax.set_xlim(0.0, end_s / scale)
    if not spans:
        ax.text(0.5, 0.5, "no errors, no outages", transform=ax.transAxes, ha="center")


_TITLES = {
    "power.png": "Power",
    "voltage.png": "Input voltage",
    "energy.png": "Cumulative energy",
    "demand.png": "Demand",
    "pulses.png": "Pulse rate",
    "status.png": "Errors and status",
}
_DRAWERS: dict[str, Callable[[Any, list[Any], PlotData], None]] = {
    "power.png": _power,
    "voltage.png": _voltage,
    "energy.png": _energy,
    "demand.png": _demand,
    "pulses.png": _pulses,
    "status.png": _status,
}
