"""simulate runs exactly the profile when --step does not divide its duration: whole
steps, then one shorter last step (never past the end, never short)."""

from __future__ import annotations

import json

import pytest

from twin.batch.simulate import SimSettings, simulate, steps
from twin.cli import main as cli_main
from twin.errors import ConfigError
from twin.loadprofile import load_profile


def test_step_that_does_not_divide_runs_a_shorter_last_step() -> None:
    profile = load_profile("full-load-then-faults")
    assert profile.duration_s == 3600
    result = simulate(profile, SimSettings(step_s=420.0, interval_s=420.0))  # 7 min
    assert steps(profile, SimSettings(step_s=420.0)) == (8, 240.0)  # 8 x 7 min, then 4 min
    assert result.summary["samples"] == 9
    assert result.summary["duration_s"] == 3600 == profile.duration_s
    assert result.columns["time_s"][-2:].tolist() == [3360.0, 3600.0]
    # the last row is 4 min long: its mean power is over those 4 min, not 7
    assert result.columns["power_w"][-1] == pytest.approx(3600 + 1800)


def test_float_noise_does_not_lose_a_step() -> None:
    profile = load_profile("full-load-then-faults")
    # 0.3 / 0.1 == 2.9999999999999996: still three whole steps
    assert steps(profile, SimSettings(duration_s=0.3, step_s=0.1)) == (3, 0.0)
    assert steps(profile, SimSettings(step_s=1.0)) == (3600, 0.0)
    assert steps(profile, SimSettings(step_s=3600.0)) == (1, 0.0)


def test_step_longer_than_the_profile_is_a_config_error() -> None:
    profile = load_profile("full-load-then-faults")
    with pytest.raises(ConfigError, match=r"--step: 7200 s is longer than the duration of 3600 s"):
        simulate(profile, SimSettings(step_s=7200.0))


def test_cli_step_2h_on_a_1h_profile_exits_1_without_output(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli_main(["simulate", "full-load-then-faults", "--step", "2h", "--json"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "profile 'full-load-then-faults'" in lines[0]
    # and a step that fits runs exactly the profile, not a step more
    assert cli_main(["simulate", "full-load-then-faults", "--step", "15min", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["duration_s"] == 3600 and summary["samples"] == 4
