"""Monte-Carlo runs (issue 16): many meters across worker processes, one summary table."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from tests.helpers import implied_energy
from twin.batch import montecarlo
from twin.batch.montecarlo import (
    COLUMNS,
    MeterRun,
    parse_seed_range,
    population,
    run_all,
    seed_runs,
    table_csv,
)
from twin.batch.simulate import SimSettings, simulate
from twin.cli import main as cli_main
from twin.core import AccuracyConfig, MeterConfig, MeterModel
from twin.errors import ConfigError
from twin.loadprofile import load_profile

MODEL = MeterModel.parse("MMD-200A")
HOUR_S = 3600.0


def test_workers_give_the_table_of_one_process() -> None:
    runs = seed_runs("default", MeterConfig(model=MODEL), range(1, 7))
    one = table_csv(run_all(runs, duration_s=HOUR_S, step_s=10.0, jobs=1))
    two = table_csv(run_all(runs, duration_s=HOUR_S, step_s=10.0, jobs=2))
    assert one == two
    assert [row["label"] for row in csv.DictReader(io.StringIO(one))] == [
        f"seed-{s}" for s in range(1, 7)
    ]


def test_rows_are_in_class_against_an_independent_integration() -> None:
    rows = run_all(
        seed_runs("default", MeterConfig(model=MODEL), range(10, 30)),
        duration_s=HOUR_S,
        step_s=1.0,
        jobs=1,
    )
    expected = implied_energy(load_profile("default").sampler(), 1.0, duration_s=HOUR_S)
    reference_wh = rows[0]["reference_delivered_uj"] / 3.6e9
    assert reference_wh == pytest.approx(expected.total_wh, rel=1e-6)
    errors = [row["error_pct"] for row in rows]
    # The accuracy curves stay inside the class (±0.5 % at PF 1, ±0.75 % at PF 0.5)
    # and differ from meter to meter.
    assert all(abs(e) <= 0.75 for e in errors)
    assert len(set(errors)) == len(errors)
    for row in rows:
        assert row["error_pct"] == pytest.approx(
            (row["energy_delivered_uj"] / row["reference_delivered_uj"] - 1) * 100
        )
    spread = population(rows)
    assert spread["meters"] == 20
    assert spread["error_pct_min"] <= spread["error_pct_mean"] <= spread["error_pct_max"]
    assert spread["error_pct_std"] > 0


def test_each_load_and_model_has_its_own_reference() -> None:
    runs = [
        MeterRun("a", "default", MeterConfig(model=MODEL, accuracy=AccuracyConfig(seed=1))),
        MeterRun(
            "b",
            "default",
            MeterConfig(model=MeterModel.parse("MMS-100A"), accuracy=AccuracyConfig(seed=1)),
        ),
    ]
    a, b = run_all(runs, duration_s=HOUR_S, step_s=10.0)
    assert a["reference_delivered_uj"] != b["reference_delivered_uj"]  # one element vs two
    assert abs(a["error_pct"]) <= 0.75 and abs(b["error_pct"]) <= 0.75


def test_meters_sharing_sampled_blocks_register_what_each_alone_registers() -> None:
    """Runs advance in lockstep groups that share each sampled block per load: a
    meter on another noise seed or profile in the same group gets its own load."""
    loads = [("residential-day", 1), ("residential-day", 2), ("motor-start", None)]
    meters = [MeterConfig(model=MODEL, accuracy=AccuracyConfig(seed=i)) for i in range(24)]
    runs = [
        MeterRun(f"m{i}", loads[i % 3][0], meter, load_seed=loads[i % 3][1])
        for i, meter in enumerate(meters)
    ]
    rows = run_all(runs, duration_s=HOUR_S, step_s=1.0, jobs=1)  # groups of 4 meters
    for run, row in zip(runs, rows, strict=True):
        alone = simulate(
            load_profile(run.profile),
            SimSettings(meter=run.config, seed=run.load_seed, duration_s=HOUR_S),
        )
        assert row["energy_delivered_uj"] == alone.summary["energy_delivered_uj"], run.label


def test_rows_do_not_depend_on_windows_or_kept_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Meters run window by window from blocks a process keeps: short windows, few kept
    blocks (evicted and sampled again) and short blocks give the same table."""
    loads = [("residential-day", 1), ("residential-day", None), ("motor-start", None)]
    runs = [
        MeterRun(
            f"m{i}",
            loads[i % 3][0],
            MeterConfig(model=MODEL, accuracy=AccuracyConfig(seed=i)),
            load_seed=loads[i % 3][1],
        )
        for i in range(9)
    ]
    settings = {"duration_s": HOUR_S + 30.0, "step_s": 1.0}  # a 30 s tail: a shorter last block
    default = table_csv(run_all(runs, **settings, jobs=1))
    monkeypatch.setattr(montecarlo, "BLOCK_SAMPLES", 500)  # 8 blocks a meter
    monkeypatch.setattr(montecarlo, "WINDOW_BLOCKS", 3)
    monkeypatch.setattr(montecarlo, "KEPT_BYTES", 20_000)  # about one block
    rows = run_all(runs, **settings, jobs=1)
    assert table_csv(rows) == default
    assert table_csv(run_all(runs, **settings, jobs=2)) == default
    for run, row in zip(runs, rows, strict=True):
        alone = simulate(
            load_profile(run.profile),
            SimSettings(meter=run.config, seed=run.load_seed, duration_s=HOUR_S + 30.0),
        )
        assert row["energy_delivered_uj"] == alone.summary["energy_delivered_uj"], run.label


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("5..1", "out of range; expected A <= B"),
        ("a..b", "invalid; expected A..B"),
        ("-1..3", "out of range"),
        ("1..200000", "expected at most"),
    ],
)
def test_bad_seed_ranges_are_refused(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_seed_range(text)


def test_seed_range_is_inclusive() -> None:
    assert parse_seed_range("3..5") == range(3, 6)
    assert parse_seed_range("7") == range(7, 8)


def test_cli_seeds_write_the_table_and_population(tmp_path: Path) -> None:
    out = tmp_path / "mc"
    argv = ["simulate", "default", "--duration", "1h", "--step", "10s", "--seeds", "1..4"]
    assert cli_main([*argv, "--jobs", "1", "--out", str(out), "--json"]) == 0
    rows = list(csv.DictReader(io.StringIO((out / "summary.csv").read_text())))
    assert [r["accuracy_seed"] for r in rows] == ["1", "2", "3", "4"]
    assert list(rows[0]) == list(COLUMNS)
    spread = json.loads((out / "population.json").read_text())
    assert spread["meters"] == 4


def test_cli_meters_count_seeds_up(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["simulate", "residential-day", "--duration", "1h", "--step", "60s"]
    assert (
        cli_main([*argv, "--meters", "3", "--seed", "5", "--accuracy-seed", "5", "--jobs", "1"])
        == 0
    )
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["accuracy_seed"], r["load_seed"]) for r in rows] == [
        ("5", "5"),
        ("6", "6"),
        ("7", "7"),
    ]
    # Noisy load seeded per meter: each meter has its own reference.
    assert len({r["reference_delivered_uj"] for r in rows}) == 3


def test_cli_fleet_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        "fleet: 1\ndefaults: {port: 5020, profile: default}\nmeters:\n"
        "  - {unit: 1, serial: A-1}\n  - {unit: 2, serial: B-2, model: MMS-100A}\n"
    )
    argv = ["simulate", "default", "--duration", "1h", "--step", "60s", "--fleet", str(fleet)]
    assert cli_main([*argv, "--jobs", "1"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["label"], r["model"]) for r in rows] == [("A-1", "MMD-200A"), ("B-2", "MMS-100A")]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--seeds", "9..1"], "--seeds: '9..1' out of range"),
        (["--meters", "0"], "--meters 0: out of range"),
        (["--seeds", "1..2", "--jobs", "0"], "--jobs: 0 invalid"),
        (["--fleet", "/no/such/fleet.yaml"], "cannot read fleet file"),
    ],
)
def test_cli_bad_input_one_line_exit_1(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["simulate", "default", "--duration", "1h", *argv]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]
