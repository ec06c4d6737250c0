"""Batch simulation (issue 6): summary equals a live-style run, series, events, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from twin.batch.recorder import Recorder
from twin.batch.simulate import SimSettings, make_core, meter_config, simulate, steps
from twin.cli import main as cli_main
from twin.core import (
    AccuracyConfig,
    ErrorCode,
    MeterConfig,
    MeterCore,
    MeterModel,
    SampleBlock,
    Snapshot,
)
from twin.drive import drive
from twin.loadprofile import load_profile

# A day with every kind of thing the report must follow: outages, a reversed CT,
# an injected memory error, a demand reset and a clear of the pulse counts.
BUSY_DAY = """\
schema: 1
name: busy-day
defaults:
  L1: {voltage: 120, pf: 0.95}
  L2: {voltage: 120, pf: 0.9}
segments:
  - kind: steps
    steps:
      - {duration: 6h, L1: {power: 300}, L2: {power: 200}}
      - {duration: 3h, L1: {power: 2400, pf: 0.99}, L2: {power: 2200}}
      - {duration: 9h, L1: {power: 500}, L2: {power: 450}}
      - {duration: 6h, L1: {power: 1700}, L2: {power: 2500, pf: 0.8}}
events:
  - {at: 2h, kind: outage, duration: 17min}
  - {at: 7h, kind: ct_reversed, line: L2, duration: 40min}
  - {at: 11h, kind: memory_error, duration: 1h}
  - {at: 13h, kind: demand_reset}
  - {at: 15h, kind: clear_pulse_counts}
  - {at: 20h, kind: outage, duration: 3h}
"""


@pytest.fixture(scope="module")
def busy_day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("profiles") / "busy-day.yaml"
    path.write_text(BUSY_DAY)
    return path


def live_run(profile_ref: str | Path, settings: SimSettings, block: int) -> Snapshot:
    """The live twin's way: a plain core driven a few samples at a time."""
    profile = load_profile(profile_ref)
    core = MeterCore(
        MeterConfig(model=settings.model, accuracy=AccuracyConfig(settings.accuracy_seed))
    )
    n = round(profile.duration_s / settings.step_s)
    for _ in drive(core, profile.sampler(settings.seed), 0.0, settings.step_s, n, block):
        pass
    return core.snapshot()


@pytest.mark.parametrize("seed", [None, 7])
def test_summary_equals_registers_of_a_live_run(busy_day: Path, seed: int | None) -> None:
    settings = SimSettings(step_s=10.0, seed=seed, accuracy_seed=seed)
    summary = simulate(load_profile(busy_day), settings).summary
    snap = live_run(busy_day, settings, block=7)
    for key in (
        "energy_delivered_wh",
        "energy_received_wh",
        "energy_l1_wh",
        "energy_l2_wh",
        "energy_delivered_uj",
        "energy_l1_uj",
        "energy_l2_uj",
        "counter_counts",
        "demand_kw",
        "demand_max_kw",
        "demand_max_at_s",
        "error_code",
        "status_bits",
        "power_up_count",
    ):
        assert summary[key] == getattr(snap, key), key
    assert summary["pulses"] == {
        "10": snap.pulses_10wh,
        "100": snap.pulses_100wh,
        "1000": snap.pulses_1000wh,
    }
    assert summary["energy_delivered_wh"] > 20_000  # the run registered a real day
    assert summary["pulses"]["10"] < summary["energy_delivered_wh"] // 10  # cleared at 15 h
    assert summary["errors_seen"] == [ErrorCode.MEMORY, ErrorCode.REVERSED_CT]
    assert summary["unpowered_s"] == pytest.approx(17 * 60 + 3 * 3600)
    assert summary["power_up_count"] == 3  # start, and after each outage
    assert summary["samples"] == 8640 and summary["duration_s"] == 86_400


def test_series_ends_on_the_registers_and_follows_events(busy_day: Path) -> None:
    result = simulate(load_profile(busy_day), SimSettings(step_s=10.0, interval_s=300))
    cols, summary = result.columns, result.summary
    assert cols["time_s"].size == 288 and cols["time_s"][-1] == 86_400
    assert cols["energy_delivered_wh"][-1] * 3.6e9 == pytest.approx(
        summary["energy_delivered_uj"], abs=1
    )
    assert np.all(np.diff(cols["energy_delivered_wh"]) >= -1e-9)  # never counts down
    # Closures per row add up to the registers: the counter over the day, the pulse
    # outputs since their clear at 15 h.
    assert cols["counter_count"].sum() == summary["counter_counts"]
    after_clear = cols["time_s"] > 15 * 3600
    for kh in ("10", "100", "1000"):
        assert cols[f"pulses_{kh}wh_count"][after_clear].sum() == summary["pulses"][kh]
    assert cols["unpowered_s"].sum() == pytest.approx(summary["unpowered_s"])
    rows_2h = slice(24, 28)  # 2:00-2:20, the first outage (17 min)
    assert cols["unpowered_s"][rows_2h].tolist() == [300.0, 300.0, 300.0, 120.0]
    assert cols["power_w"][25] == 0.0
    # Mean power of a row in the night step (300 W + 200 W); max demand is the largest demand.
    assert cols["power_w"][12] == pytest.approx(500.0, rel=1e-9)
    mem = cols["error_code"][(cols["time_s"] > 11 * 3600) & (cols["time_s"] < 12 * 3600)]
    assert set(mem.tolist()) == {ErrorCode.MEMORY}
    assert cols["demand_max_kw"].max() == pytest.approx(
        max(e.demand_kw for e in result.events if type(e).__name__ == "DemandClosed")
    )


def test_recorder_independent_of_block_split() -> None:
    """Hand-made blocks: the same samples in different splits give the same series."""
    rng = np.random.default_rng(3)
    n, dt = 3 * 3600, 1.0
    amps = np.repeat(rng.uniform(0.0, 60.0, (2, n // 300)), 300, axis=1)
    volts = np.full((2, n), 120.0)
    volts[:, 4000:4500] = 0.0  # an outage
    cos_phi = np.where(np.arange(n) % 2000 < 100, -0.9, 0.95)  # brief reversals

    def run(sizes: list[int]) -> tuple[dict[str, np.ndarray], Snapshot]:
        settings = SimSettings(step_s=dt, interval_s=60.0)
        rec = Recorder(n, dt, settings.samples_per_row, settings.model)
        core = make_core(MeterConfig(model=settings.model), rec)
        i = 0
        for size in sizes:
            m = min(size, n - i)
            core.advance(
                SampleBlock.build(
                    m,
                    dt,
                    voltage_v=volts[:, i : i + m],
                    current_a=amps[:, i : i + m],
                    cos_phi=np.broadcast_to(cos_phi[i : i + m], (2, m)),
                )
            )
            i += m
        assert i == n
        return rec.columns(), core.snapshot()

    one, snap = run([n])
    many, snap2 = run([7, 61, 1000, 3599, *([97] * 64)])
    assert snap.energy_delivered_uj == snap2.energy_delivered_uj
    assert one.keys() == many.keys()
    for key in one:
        np.testing.assert_allclose(many[key], one[key], rtol=1e-9, atol=1e-6, err_msg=key)
    assert one["energy_delivered_wh"][-1] * 3.6e9 == pytest.approx(snap.energy_delivered_uj)
    assert one["unpowered_s"][66:75].sum() == 500.0
    assert ErrorCode.REVERSED_CT in set(one["error_code"].tolist())


def test_cli_writes_deterministic_files(tmp_path: Path, busy_day: Path) -> None:
    args = [
        "simulate",
        str(busy_day),
        "--step",
        "10s",
        "--interval",
        "5min",
        "--seed",
        "5",
        "--no-plot",
    ]
    for out in ("a", "b"):
        assert cli_main([*args, "--out", str(tmp_path / out)]) == 0
    for name in ("timeseries.csv", "summary.json", "events.jsonl"):
        a, b = (tmp_path / d / name for d in ("a", "b"))
        assert a.read_bytes() == b.read_bytes(), name
    header = (tmp_path / "a" / "timeseries.csv").read_text().splitlines()[0].split(",")
    assert header[:4] == ["time_s", "power_l1_w", "power_l2_w", "power_w"]
    assert all(h.endswith(("_s", "_w", "_v", "_wh", "_kw", "_count", "_code")) for h in header)
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["seed"] == 5 and summary["profile"] == "busy-day"
    events = [json.loads(x) for x in (tmp_path / "a" / "events.jsonl").read_text().splitlines()]
    kinds = {e["event"] for e in events}
    assert {"power_lost", "power_restored", "error_raised", "error_cleared"} <= kinds
    assert {"demand_closed", "max_demand_reset", "counts_cleared"} <= kinds
    assert "pulse_edge" not in kinds
    times = [e["time_s"] for e in events]
    assert times == sorted(times)
    assert not list((tmp_path / "a").glob("*.png"))


def test_cli_json_and_edges(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o"
    rc = cli_main(
        ["simulate", "full-load-then-faults", "--json", "--edges", "--no-plot", "--out", str(out)]
    )
    assert rc == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["energy_delivered_wh"] == 4350  # 3.6 kW x 55 min + 1.8 kW x 35 - 10 min
    assert "\r" not in captured.err and "samples/s" in captured.err  # no bar when piped
    edges = [
        json.loads(x)
        for x in (out / "events.jsonl").read_text().splitlines()
        if '"pulse_edge"' in x
    ]
    closed_1000 = [e for e in edges if e["output"] == "1000" and e["closed"]]
    assert len(closed_1000) == summary["pulses"]["1000"]
    assert sum(1 for e in edges if e["output"] == "10" and e["closed"]) == summary["pulses"]["10"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["no-such-profile"], "no such shipped profile"),
        (["default", "--duration", "soon"], "--duration: 'soon' invalid"),
        (["default", "--model", "MMX-200A"], "--model: unknown model name"),
        (["default", "--step", "0"], "--step"),
        (["full-load-then-faults", "--step", "2h"], "--step: 7200 s is longer than the dur"),
        (["default", "--seed", "-1"], "--seed: -1 out of range"),
        (["default", "--duration", "3650d", "--interval", "1s"], "use a longer --interval"),
        (["default", "--out", "/proc/no/such/dir"], "--out: cannot create"),
    ],
)
def test_cli_bad_input_one_line_exit_1(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["simulate", *argv]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]


def test_settings_validation() -> None:
    with pytest.raises(ValueError, match="--interval"):
        SimSettings(interval_s=0)
    assert SimSettings(step_s=10, interval_s=60).samples_per_row == 6
    assert SimSettings(model=MeterModel.parse("MMS-100A")).model.elements == 1


def test_errors_cleared_by_an_outage_carry_the_outage_time(tmp_path: Path) -> None:
    path = tmp_path / "rev-then-outage.yaml"
    path.write_text(
        "schema: 1\nname: rev-then-outage\nsegments:\n  - kind: constant\n    duration: 2h\n"
        "    L1: {voltage: 120, current: 10, pf: 1.0}\n"
        "    L2: {voltage: 120, current: 10, pf: 1.0}\n"
        "events:\n  - {at: 30min, kind: ct_reversed, line: L2, duration: 1h}\n"
        "  - {at: 1h, kind: outage, duration: 10min}\n"
    )
    result = simulate(load_profile(path), SimSettings(step_s=10.0))
    errs = [
        (type(e).__name__, e.time_s)
        for e in result.events
        if type(e).__name__ in ("ErrorRaised", "ErrorCleared")
    ]
    # Raised at 30 min, cleared by the outage at 1 h (the core stamps that 0 s), raised
    # again at power-up after 10 min, cleared when the CT is put back at 1 h 30 min.
    assert errs == [
        ("ErrorRaised", 1800.0),
        ("ErrorCleared", 3600.0),
        ("ErrorRaised", 4200.0),
        ("ErrorCleared", 5400.0),
    ]
    codes = result.columns["error_code"]
    assert set(codes[31:59].tolist()) == {ErrorCode.REVERSED_CT} and codes[65] == 0


def test_progress_bar_only_on_a_terminal() -> None:
    import io

    from twin.cli.simulate import Progress

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty, pipe = Tty(), io.StringIO()
    for stream in (tty, pipe):
        bar = Progress(stream)
        bar(50, 100)
        bar(100, 100)
        bar.finish()
    assert pipe.getvalue() == ""
    assert "100.0%" in tty.getvalue() and "\r[" in tty.getvalue()
    assert tty.getvalue().endswith("\n")


def test_simulate_records_what_recording_each_block_by_hand_does(busy_day: Path) -> None:
    """A run of several blocks: the same rows and events as a recorder handed each
    block of the one stepping loop by hand."""
    profile = load_profile(busy_day)
    settings = SimSettings(step_s=1.0, duration_s=3 * 86_400.0, interval_s=60.0)
    run = simulate(profile, settings)
    n, _ = steps(profile, settings)
    rec = Recorder(n, settings.step_s, settings.samples_per_row, settings.model)
    core = make_core(meter_config(settings, profile), rec)
    for _events in drive(core, profile.sampler(), 0.0, settings.step_s, n, 86_400):
        pass
    inline = rec.columns()
    assert run.columns.keys() == inline.keys()
    for key, column in inline.items():
        np.testing.assert_array_equal(run.columns[key], column, err_msg=key)
    assert run.events == rec.events
    assert len(rec.events) > 700  # demand closes, outages, the error, the commands


@pytest.mark.parametrize(("spr", "sizes"), [(60, [3600]), (7, [5, 50, 3545]), (1, [3600])])
def test_constant_voltage_rows_equal_the_per_sample_sums(spr: int, sizes: list[int]) -> None:
    """A constant per line (a broadcast view) is summed per row length, not per row:
    the same bits as the same voltages given sample by sample."""
    n, dt = 3600, 0.5
    amps = np.tile(np.linspace(0.0, 40.0, n), (2, 1))

    def columns(volts: np.ndarray) -> dict[str, np.ndarray]:
        rec = Recorder(n, dt, spr, MeterModel.parse("MMD-200A"))
        core = make_core(MeterConfig(), rec)
        i = 0
        for m in sizes:
            v = volts if volts.shape[1] == 1 else volts[:, i : i + m]
            block = SampleBlock.build(m, dt, voltage_v=v, current_a=amps[:, i : i + m])
            core.advance(block)
            i += m
        return rec.columns()

    constant = columns(np.array([[120.7], [119.3]]))
    full = columns(np.tile([[120.7], [119.3]], (1, n)))
    for key in ("voltage_l1_v", "voltage_l2_v", "voltage_min_v", "power_w"):
        np.testing.assert_array_equal(constant[key], full[key], err_msg=key)
