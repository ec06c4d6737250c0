"""Issue 10's figures: demand and energy exact at any step, said once what a step
cannot show, settings and seeds chosen apart (simulate, Python API and CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from twin.batch.simulate import SimSettings, simulate
from twin.cli import main as cli_main
from twin.loadprofile import load_profile

CONSTANT_12KW = """\
schema: 1
name: constant-12kw
segments:
  - kind: constant
    duration: 4h
    L1: {voltage: 120, current: 50, pf: 1}
    L2: {voltage: 120, current: 50, pf: 1}
"""


@pytest.fixture(scope="module")
def constant_12kw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("profiles") / "constant-12kw.yaml"
    path.write_text(CONSTANT_12KW)
    return path


def _summary(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[dict[str, object], str]:
    assert cli_main(["simulate", *args, "--json"]) == 0
    out, err = capsys.readouterr()
    return json.loads(out), err


@pytest.mark.parametrize("step", ["1h", "10min", "7", "1"])
def test_constant_12_kw_gives_12_kw_max_demand_at_any_step(
    constant_12kw: Path, step: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # before: 48 kW at --step 1h, 16 kW at 10min, 12.04 kW and 4 s short at --step 7
    summary, _ = _summary(capsys, str(constant_12kw), "--step", step)
    assert f"{summary['demand_max_kw']:.2f}" == "12.00"
    assert summary["demand_max_kw"] == pytest.approx(12.0, rel=1e-9)
    assert summary["duration_s"] == 4 * 3600


def test_step_7_energy_is_not_short(constant_12kw: Path) -> None:
    profile = load_profile(constant_12kw)
    fine = simulate(profile, SimSettings(step_s=1.0)).summary
    coarse = simulate(profile, SimSettings(step_s=7.0)).summary
    assert coarse["samples"] == 14400 // 7 + 1  # 2057 steps of 7 s, one of 1 s
    for key in ("energy_delivered_uj", "energy_l1_uj", "energy_l2_uj", "demand_max_kw"):
        assert coarse[key] == fine[key], key
    assert coarse["energy_delivered_wh"] == 48_000


def test_a_coarse_step_is_said_once(
    constant_12kw: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    summary, err = _summary(capsys, str(constant_12kw), "--step", "1h")
    warnings = summary["warnings"]
    assert isinstance(warnings, list) and len(warnings) == 1
    text = warnings[0]
    assert "--step 3600 s is too coarse" in text
    assert all(name in text for name in ("10 Wh", "100 Wh", "1000 Wh", "counter"))
    lines = [ln for ln in err.splitlines() if "warning" in ln]
    assert lines == [f"minimeter simulate: warning: {text}"]
    summary, err = _summary(capsys, str(constant_12kw), "--step", "1")
    assert summary["warnings"] == [] and "warning" not in err  # 1 s holds one edge at most


def test_residential_year_at_1h_gives_the_maximum_demand_of_1min(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # before: 14.5 kW at --step 1h against 3.66 kW at 1 min
    hourly, _ = _summary(capsys, "residential-year", "--step", "1h")
    minutely, _ = _summary(capsys, "residential-year", "--step", "1min")
    assert hourly["energy_delivered_uj"] == pytest.approx(minutely["energy_delivered_uj"], 1e-3)
    # The profile interpolates between hourly points and adds 3 % current noise per
    # minute; a 1 h step sees the value at each hour's start, so only within that:
    assert hourly["demand_max_kw"] == pytest.approx(minutely["demand_max_kw"], rel=0.015)
    # Held hourly levels, no noise: what 1 h steps can represent, exactly the same.
    held = tmp_path / "held.yaml"
    held.write_text(
        "schema: 1\nname: held\nsegments:\n  - kind: steps\n    steps:\n"
        + "".join(
            f"      - {{duration: 1h, L1: {{voltage: 120, current: {a}}}, "
            f"L2: {{voltage: 120, current: {b}}}}}\n"
            for a, b in [(10, 5), (30, 25), (12, 40), (50, 50), (3, 1), (22, 8)] * 4
        )
    )
    by_step = [_summary(capsys, str(held), "--step", s)[0] for s in ("1h", "10min", "1min", "1")]
    for key in ("demand_max_kw", "demand_kw", "demand_max_at_s", "energy_delivered_uj"):
        assert len({summary[key] for summary in by_step}) == 1, key
    assert by_step[0]["demand_max_kw"] == pytest.approx(12.0)


def test_seed_and_accuracy_seed_are_apart(capsys: pytest.CaptureFixture[str]) -> None:
    base, _ = _summary(capsys, "residential-day", "--step", "10")
    noise, _ = _summary(capsys, "residential-day", "--step", "10", "--seed", "3")
    curve, _ = _summary(capsys, "residential-day", "--step", "10", "--accuracy-seed", "3")
    assert noise["energy_delivered_uj"] != base["energy_delivered_uj"]  # other noise
    assert curve["energy_delivered_uj"] != base["energy_delivered_uj"]  # other meter
    assert curve["seed"] is None and curve["accuracy_seed"] == 3
    assert noise["seed"] == 3 and noise["accuracy_seed"] is None
    # the error curve stays in class: same load, registration within 0.75 %
    assert curve["energy_delivered_uj"] == pytest.approx(base["energy_delivered_uj"], rel=0.0075)


def test_settings_options_win_over_the_profile(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(CONSTANT_12KW + "demand_method: block\ndemand_interval_min: 30\n")
    summary, _ = _summary(capsys, str(path), "--step", "1min")
    assert summary["settings"] == {
        "registration_mode": "sum_then_clamp",
        "demand_method": "block",
        "demand_interval_min": 30,
        "demand_subintervals": 3,
        "demand_max_window_h": 24,
        "power_up_v": 102.0,
        "power_down_v": 96.0,
        "hold_up_s": 0.1,
    }
    summary, _ = _summary(
        capsys,
        str(path),
        "--step", "1min",
        "--demand-interval", "10",
        "--demand-subintervals", "5",
        "--registration-mode", "bidirectional",
        "--hold-up", "2s",
        "--power-down", "90V",
    )  # fmt: skip
    settings = summary["settings"]
    assert isinstance(settings, dict)
    assert settings["demand_method"] == "block"  # the profile's, not given on the line
    assert (settings["demand_interval_min"], settings["demand_subintervals"]) == (10, 5)
    assert settings["registration_mode"] == "bidirectional"
    assert (settings["hold_up_s"], settings["power_down_v"]) == (2.0, 90.0)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--demand-subintervals", "4"], "(from the command line): demand_subintervals 4 does "),
        (["--demand-interval", "0"], "--demand-interval: demand_interval_min 0; expected"),
        (["--demand-max-window", "-1"], "--demand-max-window: demand_max_window_h -1;"),
        (["--hold-up", "soon"], "--hold-up: 'soon' invalid; expected a duration"),
        (["--power-down", "110"], "supply power_down_v: 110.0 out of range"),
    ],
)
def test_bad_settings_are_one_line_naming_the_option(
    args: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["simulate", "default", "--duration", "60", *args]) == 1
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1
    assert expected in err, err


def test_a_single_element_model_on_a_two_line_profile_warns_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    summary, err = _summary(capsys, "residential-day", "--model", "MMS-200A")
    (warning,) = summary["warnings"]  # type: ignore[misc]
    assert "MMS-200A" in warning and "L2" in warning
    assert [ln for ln in err.splitlines() if "L2" in ln] == [
        f"minimeter simulate: warning: {warning}"
    ]
    summary, err = _summary(capsys, "residential-day")
    assert summary["warnings"] == []


def test_text_summary_names_the_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["simulate", "full-load-then-faults", "--step", "1"]) == 0
    out = capsys.readouterr().out
    (line,) = [ln for ln in out.splitlines() if ln.startswith("errors seen")]
    assert line == "errors seen        5 (reversed_ct)"
