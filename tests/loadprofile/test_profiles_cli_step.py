"""`profiles show --step` takes durations like `simulate --step` (2min, 10s, 1.5)."""

from __future__ import annotations

import pytest

from twin.cli import main


def _registered(capsys: pytest.CaptureFixture[str], *step: str) -> str:
    assert main(["profiles", "show", "full-load-then-faults", *step]) == 0
    out = capsys.readouterr().out
    return next(line for line in out.splitlines() if line.startswith("registered:"))


def test_step_with_units_equals_the_same_step_in_seconds(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with_unit = _registered(capsys, "--step", "2min")
    assert "step 120 s" in with_unit
    assert with_unit == _registered(capsys, "--step", "120")
    assert "step 3600 s" in _registered(capsys, "--step", "1h")  # the upper bound
    assert "step 0.5 s" in _registered(capsys, "--step", "500ms")


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ("soon", "--step: 'soon' invalid; expected a duration like 1, 10s, 2min"),
        ("2h", "--step: 7200 s out of range; expected 0.001..3600 s"),
        ("0", "--step: 0 s out of range"),
    ],
)
def test_bad_step_is_one_line_exit_1(
    step: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["profiles", "show", "full-load-then-faults", "--step", step]) == 1
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert out == "" and len(lines) == 1 and message in lines[0] and "Traceback" not in err
