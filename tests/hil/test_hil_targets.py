"""The HIL suite run as users run it: against a separately started `minimeter run`
over Modbus, and against a twin with a calibration error (the C12.1 report shows it)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.helpers import TwinProcess, hil_outcomes, run_hil_suite

CONTROL_SKIP = "needs control of the meter's inputs and clock"


def test_modbus_target_passes_what_needs_no_control(
    tmp_path: Path, start_twin: Callable[..., TwinProcess]
) -> None:
    twin = start_twin("--speed", "600")
    result, root = run_hil_suite(tmp_path, "--target", f"modbus://127.0.0.1:{twin.port}?unit=1")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    cases = hil_outcomes(root)
    passed = [n for n, (kind, _) in cases.items() if kind == "passed"]
    skipped = {n: msg for n, (kind, msg) in cases.items() if kind == "skipped"}
    assert not [n for n, (kind, _) in cases.items() if kind in ("failure", "error")]
    # Every check that needs no control ran and passed: map, SunSpec, energy.
    for name in (
        "test_every_register_in_range",
        "test_fc03_and_fc04_serve_the_same_words",
        "test_device_identification_fc43",
        "test_sunspec_walk",
        "test_energy_never_decreases",
        "test_energy_consistent_with_power",
    ):
        assert name in passed, (name, cases.get(name))
    assert len(passed) >= 30
    # What was skipped says why: the target gives no control of inputs and clock.
    assert skipped and all(CONTROL_SKIP in msg for msg in skipped.values()), skipped
    assert any(n.startswith("test_c12_point") for n in skipped)


def test_calibration_error_fails_exactly_the_accuracy_points(tmp_path: Path) -> None:
    report = tmp_path / "report.md"
    result, root = run_hil_suite(
        tmp_path, "-k", "c12", "--inject-error", "calibration:1", "--hil-report", str(report)
    )
    assert result.returncode == 1, result.stdout[-3000:]
    cases = hil_outcomes(root)
    failed = {n for n, (kind, _) in cases.items() if kind == "failure"}
    passed = {n for n, (kind, _) in cases.items() if kind == "passed"}
    survivors = {f"test_c12_point[{k}]" for k in ("start", "creep132", "creep138")}
    assert passed == survivors
    assert failed == set(cases) - survivors
    text = report.read_text()
    assert "| full load |" in text and "**FAIL**" in text
    for line in text.splitlines():
        if line.startswith(("| starting load", "| no-load creep")):
            assert line.endswith("| PASS |"), line
        elif line.startswith(("| full load", "| light load", "| (4·FL")):
            # Each point's duration keeps one register step within a tenth of its limit
            # (<= 0.05 %), so the measured error is the injected 1 % to within that.
            error_pct = float(line.split("|")[-4])
            assert line.endswith("| **FAIL** |") and abs(error_pct - 1.0) <= 0.05, line
