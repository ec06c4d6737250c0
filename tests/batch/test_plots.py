"""The plots' numbers and figures: pulse rates as their plain formula, frames made ahead."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from twin.batch.plotdata import error_spans, plot_data, pulse_rate_per_h
from twin.batch.plots import PLOT_FILES, Figures, draw_plots
from twin.batch.simulate import SimResult, SimSettings, simulate
from twin.loadprofile import load_profile


def plain_rate(
    counts: Any, first_s: Any, last_s: Any, row_end_s: Any
) -> tuple[np.ndarray[Any, Any], float]:
    """pulse_rate_per_h's formula written plainly: index arrays, one expression a step."""
    c = np.asarray(counts, dtype=np.float64)
    rows = c.size
    mean = float(c.mean()) if rows else 0.0
    w = max(1, min(math.ceil(2.0 / mean) if mean > 0 else 1, rows // 10 or 1))
    t = np.concatenate(([0.0], np.asarray(row_end_s, dtype=np.float64)))
    idx = np.flatnonzero(c > 0)
    if idx.size == 0:
        n = np.zeros_like(t)
    else:
        cum = np.cumsum(c)
        xp = np.ravel(np.column_stack((first_s[idx], last_s[idx])))
        fp = np.ravel(np.column_stack((cum[idx] - c[idx] + 1, cum[idx])))
        n = np.interp(t, xp, fp)
        head, tail = idx[0], idx[-1]
        first_i = 1 if c[head] > 1 else 2
        last_i = -2 if c[tail] > 1 else -3
        first_p = last_p = 0.0
        if idx.size > 1 or c[head] > 1:
            gap = xp[first_i] - xp[0]
            first_p = gap / max(c[head] - 1, 1) if gap > 0 else 0.0
            gap = xp[-1] - xp[last_i]
            last_p = gap / max(c[tail] - 1, 1) if gap > 0 else 0.0
        before, after = t < xp[0], t > xp[-1]
        n[before] = 1.0 - np.minimum((xp[0] - t[before]) / first_p, 1.0) if first_p else 0.0
        if last_p:
            n[after] = fp[-1] + np.minimum((t[after] - xp[-1]) / last_p, 1.0)
    i = np.arange(1, rows + 1)
    j = np.maximum(i - w, 0)
    rate = (n[i] - n[j]) / np.maximum(t[i] - t[j], 1e-9) * 3600.0
    return rate, float(t[w]) if rows else 0.0


def synthetic(rows: int, seed: int, density: float) -> tuple[Any, ...]:
    """Counts per 60 s row with the first and last count times inside each row."""
    rng = np.random.default_rng(seed)
    counts = np.where(rng.random(rows) < density, rng.integers(1, 4, rows), 0)
    ends = np.arange(1, rows + 1) * 60.0
    first = np.where(counts > 0, ends - 60.0 + rng.uniform(0.0, 20.0, rows), np.nan)
    last = np.where(counts > 1, first + rng.uniform(0.0, 39.0, rows), first)
    return counts, first, last, ends


@pytest.mark.parametrize(
    ("rows", "seed", "density"),
    [(0, 1, 0.5), (1, 1, 1.0), (5, 2, 0.5), (50, 3, 0.02), (1000, 4, 0.9), (3000, 5, 0.001)],
)
def test_pulse_rate_is_its_plain_formula_bit_for_bit(rows: int, seed: int, density: float) -> None:
    counts, first, last, ends = synthetic(rows, seed, density)
    rate, window_s = pulse_rate_per_h(counts, first, last, ends)
    plain, plain_window_s = plain_rate(counts, first, last, ends)
    assert rate.tobytes() == plain.tobytes()
    assert window_s == plain_window_s


def test_pulse_rates_of_a_run_are_their_plain_formula_bit_for_bit() -> None:
    result = simulate(load_profile("residential-day"), SimSettings(interval_s=60.0))
    cols = result.columns
    for key, (first, last) in result.count_times.items():
        rate, _ = pulse_rate_per_h(cols[key], first, last, cols["time_s"])
        assert rate.tobytes() == plain_rate(cols[key], first, last, cols["time_s"])[0].tobytes()


def test_error_spans_name_the_codes_raised_and_only_them() -> None:
    faulty = simulate(load_profile("meter-faults"), SimSettings(step_s=5.0))
    spans = error_spans(faulty, faulty.summary["duration_s"])
    names = {ev for ev in spans if ev != "unpowered"}
    assert faulty.summary["errors_seen"] and len(names) == len(faulty.summary["errors_seen"])
    assert all(a <= b for lane in spans.values() for a, b in lane)
    quiet = simulate(load_profile("residential-day"), SimSettings(step_s=10.0))
    assert not quiet.summary["errors_seen"]
    assert set(error_spans(quiet, quiet.summary["duration_s"])) <= {"unpowered"}


@pytest.fixture(scope="module")
def runs() -> dict[str, SimResult]:
    """Short runs (one row per bin, errors and outages) and a long one (binned days)."""
    return {
        "faults": simulate(load_profile("meter-faults"), SimSettings(step_s=5.0)),
        "outage": simulate(load_profile("brownout-outage"), SimSettings(step_s=2.0)),
        "weeks": simulate(
            load_profile("residential-year"), SimSettings(duration_s=20 * 86_400.0, step_s=60.0)
        ),
    }


@pytest.mark.parametrize("run", ["faults", "outage", "weeks"])
def test_frames_made_ahead_draw_the_bytes_drawn_from_scratch(
    runs: dict[str, SimResult], run: str, tmp_path: Path
) -> None:
    pytest.importorskip("matplotlib")
    data = plot_data(runs[run])
    assert (data.k > 1) is (run == "weeks")
    (tmp_path / "scratch").mkdir()
    (tmp_path / "ahead").mkdir()
    scratch = draw_plots(tmp_path / "scratch", data)
    figures = Figures()
    figures.warm()  # ticks made before the data is known: more than some axes need
    ahead = figures.draw(tmp_path / "ahead", data, ["pulses.png", "status.png"])
    ahead += figures.draw(tmp_path / "ahead", data)  # the rest, in PLOT_FILES' order
    assert sorted(p.name for p in ahead) == sorted(PLOT_FILES) == sorted(p.name for p in scratch)
    for path in scratch:
        assert path.read_bytes() == (tmp_path / "ahead" / path.name).read_bytes(), path.name


def test_a_frame_is_drawn_once(runs: dict[str, SimResult], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    figures = Figures(["demand.png"])
    figures.draw(tmp_path, plot_data(runs["faults"]))
    with pytest.raises(KeyError):
        figures.draw(tmp_path, plot_data(runs["faults"]), ["demand.png"])
