"""Batch simulation (issue 6): C12.1 accuracy points, plots, Parquet-less output."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import numpy as np
import pytest

from twin.batch.plotdata import pulse_rate_per_h
from twin.batch.plots import PLOT_FILES, write_plots
from twin.batch.report import PlotProcess, write_all
from twin.batch.simulate import SimSettings, simulate
from twin.core import AccuracyConfig, MeterConfig, MeterCore, MeterModel
from twin.drive import drive
from twin.loadprofile import load_profile

# ANSI C12.1 style test points of a 200 A class meter (TA = 30 A): full load,
# light load (10 % TA), PF 0.5 lagging at TA, and near the top of the range.
POINTS = [  # (volts, amps, pf, minutes)
    (120.0, 30.0, 1.0, 10),
    (120.0, 3.0, 1.0, 10),
    (120.0, 30.0, 0.5, 10),
    (120.0, 150.0, 1.0, 10),
]
POINTS_YAML = (
    "schema: 1\nname: c12-points-test\nsegments:\n  - kind: steps\n    steps:\n"
    + "".join(
        f"      - {{duration: {m}min, L1: {{voltage: {v}, current: {a}, pf: {pf}}}, "
        f"L2: {{voltage: {v}, current: {a}, pf: {pf}}}}}\n"
        for v, a, pf, m in POINTS
    )
)
SHIPPED_POINTS = "c12-accuracy"


@pytest.fixture(scope="module")
def points_profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("c12") / "c12-points-test.yaml"
    path.write_text(POINTS_YAML)
    return path


def per_point_uj(ref: str | Path, seed: int | None) -> list[tuple[int, float, float]]:
    """(registered µJ, true µJ, |pf|) per constant segment, driving the core point by point."""
    profile = load_profile(ref)
    core = MeterCore(MeterConfig(accuracy=AccuracyConfig(seed=seed)))
    sampler = profile.sampler(seed)
    n_total = round(profile.duration_s)
    whole = sampler.block(0.0, 1.0, n_total)
    fields = np.vstack(
        [whole.voltage_v, whole.current_a, whole.cos_phi, whole.leading, whole.frequency_hz]
    )
    bounds = [0, *(np.flatnonzero(np.any(np.diff(fields, axis=1) != 0, axis=0)) + 1), n_total]
    out = []
    for a, b in itertools.pairwise(bounds):
        before = core.snapshot().energy_delivered_uj
        for _ in drive(core, sampler, float(a), 1.0, int(b - a)):
            pass
        p_true = float((whole.voltage_v[:, a] * whole.current_a[:, a] * whole.cos_phi[:, a]).sum())
        pf = float(abs(whole.cos_phi[0, a]))
        out.append((core.snapshot().energy_delivered_uj - before, p_true * (b - a) * 1e6, pf))
    return out


def test_c12_points_ideal_give_exactly_the_implied_energies(points_profile: Path) -> None:
    result = simulate(load_profile(points_profile), SimSettings(interval_s=600))
    expected_wh = [2 * v * a * pf * m / 60 for v, a, pf, m in POINTS]
    assert result.summary["energy_delivered_uj"] == round(sum(expected_wh) * 3.6e9)
    per_row_wh = np.diff(np.append(0.0, result.columns["energy_delivered_wh"]))
    np.testing.assert_allclose(per_row_wh, expected_wh, rtol=0, atol=1e-9)
    points = per_point_uj(points_profile, seed=None)
    assert [reg for reg, _, _ in points] == [round(wh * 3.6e9) for wh in expected_wh]


@pytest.mark.parametrize("seed", [1, 2, 3, 11, 2024])
def test_c12_points_with_seed_stay_within_class(points_profile: Path, seed: int) -> None:
    points = per_point_uj(points_profile, seed)
    errors = [(reg / true - 1.0) * 100.0 for reg, true, _ in points]
    assert any(abs(e) > 1e-6 for e in errors), "a seeded meter is not ideal"
    for (_, _, pf), err in zip(points, errors, strict=True):
        limit = 0.5 if pf > 0.99 else 0.75
        assert abs(err) <= limit, f"{err:+.3f} % at PF {pf} (class ±{limit} %)"
    summary = simulate(
        load_profile(points_profile), SimSettings(seed=seed, accuracy_seed=seed)
    ).summary
    assert summary["energy_delivered_uj"] == sum(reg for reg, _, _ in points)


def test_shipped_c12_profile_points() -> None:
    profile = load_profile(SHIPPED_POINTS)
    ideal = per_point_uj(SHIPPED_POINTS, seed=None)
    assert len(ideal) == 12
    for reg, true, _ in ideal:
        assert reg == round(true)  # exactly V x I x PF x time, both elements
    result = simulate(profile, SimSettings(interval_s=600))
    assert result.summary["energy_delivered_uj"] == sum(reg for reg, _, _ in ideal)
    per_row_wh = np.diff(np.append(0.0, result.columns["energy_delivered_wh"]))
    np.testing.assert_allclose(per_row_wh, [reg / 3.6e9 for reg, _, _ in ideal], atol=1e-9)
    for seed in (1, 7, 42):
        points = per_point_uj(SHIPPED_POINTS, seed)
        for reg, true, pf in points:
            assert abs(reg / true - 1) * 100 <= (0.5 if pf > 0.99 else 0.75), (seed, pf, reg / true)
        summary = simulate(profile, SimSettings(seed=seed, accuracy_seed=seed)).summary
        assert summary["energy_delivered_uj"] == sum(reg for reg, _, _ in points)


def test_plots_render_and_are_not_blank(tmp_path: Path) -> None:
    mpimg = pytest.importorskip("matplotlib.image")
    result = simulate(
        load_profile("full-load-then-faults"), SimSettings(step_s=5.0, interval_s=60.0)
    )
    written = write_all(tmp_path, result, plots=True)
    pngs = sorted(p.name for p in written if p.suffix == ".png")
    assert pngs == sorted(PLOT_FILES)
    assert "voltage.png" in pngs
    for name in pngs:
        img = mpimg.imread(tmp_path / name)
        height, width = img.shape[:2]
        assert width >= 800 and height >= 400, name
        assert float(np.var(img[..., :3])) > 1e-3, f"{name} is blank"
    try:
        import pyarrow  # type: ignore[import-not-found,unused-ignore]  # noqa: F401

        has_pyarrow = True
    except ImportError:
        has_pyarrow = False
    assert (tmp_path / "timeseries.parquet" in written) is has_pyarrow
    assert (tmp_path / "timeseries.parquet").exists() is has_pyarrow


FULL_LOAD_2H = (
    "schema: 1\nname: full-load-2h\nsegments:\n  - kind: constant\n    duration: 2h\n"
    "    L1: {voltage: 120, current: 30, pf: 1.0}\n"
    "    L2: {voltage: 120, current: 30, pf: 0.5, leading: true}\n"
)


def test_pulse_rate_of_the_1000wh_output_at_5_4_kw_does_not_alias(tmp_path: Path) -> None:
    path = tmp_path / "full-load-2h.yaml"
    path.write_text(FULL_LOAD_2H)
    result = simulate(load_profile(path), SimSettings(interval_s=60.0))
    cols = result.columns
    counts = cols["pulses_1000wh_count"]
    assert set(counts.tolist()) == {0, 1}  # per minute: a 0/1 staircase, 5.4 an hour
    first_s, last_s = result.count_times["pulses_1000wh_count"]
    rate, window_s = pulse_rate_per_h(counts, first_s, last_s, cols["time_s"])
    assert window_s <= 12 * 60  # a tenth of the run at most
    # The old per-window count gave 0 or 10 pulses/h; the rate is 5.4 throughout
    # (before the first pulse the count moves at the first pulse period).
    assert rate == pytest.approx(5.4, rel=1e-6)
    # the fast outputs agree with the same rate x Kh, as they must
    for key, wh in (("pulses_10wh_count", 10), ("pulses_100wh_count", 100)):
        first_s, last_s = result.count_times[key]
        fast, _ = pulse_rate_per_h(cols[key], first_s, last_s, cols["time_s"])
        assert fast * wh == pytest.approx(5400.0, rel=1e-6), key


def test_pulse_rate_falls_to_zero_when_the_load_stops() -> None:
    counts = np.zeros(120, np.int64)
    counts[9:60:10] = 1  # a pulse every 10 min for the first hour, then nothing
    t_end = np.arange(1, 121) * 60.0
    times = np.where(counts > 0, t_end - 30.0, np.nan)
    rate, _ = pulse_rate_per_h(counts, times, times, t_end)
    assert rate[20:59] == pytest.approx(6.0)
    assert rate[-1] == 0.0  # the window (12 rows) has no growth left in it
    assert np.all(np.diff(rate[60:]) <= 1e-12)  # it falls, it does not oscillate


def test_single_element_model_has_no_l2(tmp_path: Path) -> None:
    settings = SimSettings(model=MeterModel.parse("MMS-200A"), step_s=10.0)
    result = simulate(load_profile("full-load-then-faults"), settings)
    assert result.summary["energy_l2_wh"] == 0
    assert not result.columns["power_l2_w"].any()
    assert result.summary["energy_delivered_wh"] == 3300  # 3.6 kW x 55 min on L1 only


def test_voltage_rows_show_a_one_second_dip(tmp_path: Path) -> None:
    path = tmp_path / "dip.yaml"
    path.write_text(FULL_LOAD_2H + "events:\n  - {at: 90s, kind: outage, duration: 1s}\n")
    cols = simulate(load_profile(path), SimSettings(interval_s=60.0)).columns
    assert cols["voltage_min_v"][1] == 0.0  # the dip, in the second minute
    assert cols["voltage_l1_v"][1] == pytest.approx(120.0 * 59 / 60)
    assert cols["voltage_min_v"][0] == cols["voltage_min_v"][2] == 120.0


def test_plots_from_a_worker_thread_equal_the_forked_plot_process(tmp_path: Path) -> None:
    """write_all forks a plot process from a single-threaded program and plots in
    process otherwise (a fork copies one thread only): the files are the same."""
    pytest.importorskip("matplotlib")
    result = simulate(load_profile("brownout-outage"), SimSettings(step_s=2.0, interval_s=60.0))
    main_written = write_all(tmp_path / "main", result, plots=True)
    box: list[list[Path]] = []
    worker = threading.Thread(target=lambda: box.append(write_all(tmp_path / "thread", result)))
    worker.start()
    worker.join()
    assert [p.name for p in box[0]] == [p.name for p in main_written]
    for path in main_written:
        assert path.read_bytes() == (tmp_path / "thread" / path.name).read_bytes(), path.name


def test_plot_process_started_before_the_run_draws_what_write_plots_draws(tmp_path: Path) -> None:
    """The CLI's way: the process forked before the run, sent the binned numbers after."""
    pytest.importorskip("matplotlib")
    plotter = PlotProcess.start()
    if plotter is None:
        pytest.skip("no fork here (not Linux, one core, or another thread running)")
    result = simulate(load_profile("meter-faults"), SimSettings(step_s=5.0, interval_s=60.0))
    written = write_all(tmp_path / "early", result, plotter=plotter)
    assert {p.name for p in written} >= set(PLOT_FILES)
    for path in write_plots(tmp_path, result):
        assert path.read_bytes() == (tmp_path / "early" / path.name).read_bytes(), path.name


def test_a_plot_process_sent_nothing_draws_nothing(tmp_path: Path) -> None:
    plotter = PlotProcess.start()
    if plotter is None:
        pytest.skip("no fork here (not Linux, one core, or another thread running)")
    assert plotter.finish() is False
    result = simulate(load_profile("default"), SimSettings(step_s=60.0, duration_s=3600.0))
    written = write_all(tmp_path, result, plots=False, plotter=PlotProcess.start())
    assert not [p for p in written if p.suffix == ".png"]
    assert not list(tmp_path.glob("*.png"))
