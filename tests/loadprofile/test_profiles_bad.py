"""Malformed profiles: one clear line naming file, line/key path and expectation; exit 1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO
from twin.cli import main

BAD = Path(__file__).parent / "bad_profiles"

# file -> fragment of the message (key path and/or what was expected)
EXPECTED = {
    "wrong-type-duration.yaml": ":5: segments[0].duration: a list invalid; expected a duration",
    "wrong-type-voltage.yaml": ":6: segments[0].L1.voltage: 'high' invalid; expected a number",
    "wrong-type-leading.yaml": ":6: segments[0].L1.leading: 3 invalid; expected true or false",
    "unknown-top-key.yaml": ":3: colour: unknown key; expected one of",
    "unknown-load-key.yaml": ":6: segments[0].L1.volts: unknown key",
    "missing-name.yaml": ":1: missing required key 'name'",
    "missing-segments.yaml": ":1: missing required key 'segments'",
    "missing-kind.yaml": ":4: segments[0]: missing required key 'kind'",
    "missing-duration.yaml": ":4: segments[0]: missing required key 'duration'",
    "missing-schema.yaml": ":1: missing required key 'schema'; expected 'schema: 1'",
    "negative-duration.yaml": ":5: segments[0].duration: '-5min' invalid",
    "zero-duration.yaml": ":5: segments[0].duration: 0 invalid; expected a positive duration",
    "unknown-duration-unit.yaml": ":5: segments[0].duration: '5fortnights' invalid",
    "event-outside.yaml": ":8: events[0].at: 2h is outside the profile",
    "event-past-end.yaml": ":8: events[0].duration: event ends at 1h10min, after the profile",
    "overlapping-outages.yaml": ":9: events[1]: outage overlaps events[0]",
    "overlapping-ct-reversed.yaml": ":9: events[1]: ct_reversed overlaps events[0]",
    "event-missing-line.yaml": ":8: events[0]: missing required key 'line'",
    "event-unknown-kind.yaml": ":8: events[0].kind: 'earthquake' invalid; expected one of",
    "demand-reset-with-duration.yaml": ":8: events[0].duration: unknown key",
    "nan-current.yaml": ":6: segments[0].L1.current: nan invalid; expected a finite number",
    "current-above-any-model.yaml": ":6: segments[0].L1.current: 30000 out of range",
    "power-above-any-model.yaml": ":4: segments[0]: current up to 25000 A is above what any",
    "sum-above-any-model.yaml": ":4: segments[0]: current up to 30000 A is above what any",
    "surge-factor-too-high.yaml": ":8: events[0].factor: 5000 out of range",
    "pf-out-of-range.yaml": ":7: segments[0].L2.pf: 1.7 out of range; expected 0..1",
    "current-and-power.yaml": ":6: segments[0].L1: both current and power given",
    "power-at-zero-voltage.yaml": ":6: segments[0].L1.voltage: 0 V with a power; expected >= 60",
    "power-inherited-at-zero-voltage.yaml": ":8: segments[0].L1: voltage 0 V with a power",
    "unknown-segment-kind.yaml": ":4: segments[0].kind: 'wobble' invalid; expected one of",
    "daily-23-points.yaml": ":8: segments[0].hourly.L1: 23 values; expected 24",
    "ramp-mixes-power-and-current.yaml": ":4: segments[0]: L1: from and to mix power",
    "duplicate-key.yaml": ":6: duplicate key 'duration'",
    "yaml-syntax-error.yaml": ":7: YAML syntax error",
    "newer-schema.yaml": ":1: schema: version 2 is newer than this twin reads; expected 1",
    "empty.yaml": ":1: empty file; expected a mapping",
    "not-a-mapping.yaml": ":1: top level is a str; expected a mapping",
    "not-yaml-binary.yaml": ": not a text file; expected UTF-8 YAML",
    "csv-unsorted.yaml": "segments[0].file: ",
    "csv-duplicate.yaml": "segments[0].file: ",
    "csv-missing-load-column.yaml": "csv-missing-load-column.csv:1: missing load column",
    "csv-missing-time.yaml": "csv-missing-time.csv:1: missing time column",
    "csv-unknown-unit.yaml": "csv-unknown-unit.csv:1: column 'L1.power[MW]': unknown",
    "csv-nan.yaml": "csv-nan.csv:3: L1.current: 'nan' invalid; expected a finite number",
    "csv-missing-file.yaml": ":5: segments[0].file: cannot read",
    "service-unknown.yaml": ":5: service: 'delta-240' invalid; expected one of split-phase-120-2",
    "wiring-unknown-ct.yaml": ":6: wiring.CT3: unknown key; expected one of CT1, CT2",
    "wiring-bad-line.yaml": ":6: wiring.CT1.line: 'L3' invalid; expected one of L1, L2",
    "wiring-reversed-not-bool.yaml": ":7: wiring.CT2.reversed: 'yes please' invalid; expected t",
    "registration-mode-unknown.yaml": ":5: registration_mode: 'net' invalid; expected one of sum",
    "demand-method-unknown.yaml": ":5: demand_method: 'rolling' invalid; expected one of sliding",
    "demand-interval-out-of-range.yaml": ":5: demand_interval_min 90; expected 1..60",
    "demand-subintervals-not-dividing.yaml": ":6: demand_subintervals 4 does not divide 15 min",
    "demand-subintervals-not-dividing-default.yaml": "15 min (the default demand_interval_min;",
    "demand-max-window-not-whole.yaml": ":5: demand_max_window_h 1.5; expected an integer 0 or 1",
    "calibration-percent-out-of-range.yaml": ":6: events[0].percent: 80 out of range; expected -5",
    "memory-error-with-percent.yaml": ":6: events[0].percent: unknown key",
}
EXTRA = {
    "csv-unsorted.yaml": "csv-unsorted.csv:4: unsorted time",
    "csv-duplicate.yaml": "csv-duplicate.csv:4: duplicate time",
}


def test_every_bad_file_has_an_expectation() -> None:
    files = {p.name for p in BAD.glob("*.yaml")}
    assert files == set(EXPECTED)
    assert len(files) >= 25


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_check_reports_one_clear_line(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = BAD / name
    assert main(["profiles", "check", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"error: {path}")
    assert EXPECTED[name] in lines[0]
    assert EXTRA.get(name, "") in lines[0]
    assert "Traceback" not in err


def test_check_through_the_console_exits_1_without_traceback() -> None:
    paths = [str(BAD / "pf-out-of-range.yaml"), str(BAD / "yaml-syntax-error.yaml")]
    shipped = REPO / "profiles" / "default.yaml"
    proc = subprocess.run(
        [sys.executable, "-m", "twin", "profiles", "check", str(shipped), *paths],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stdout.startswith(f"ok: {shipped}")
    assert len(proc.stderr.strip().splitlines()) == 2


def test_check_of_valid_files_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    folder = REPO / "profiles"
    paths = sorted(str(p) for p in folder.glob("*.yaml"))
    assert main(["profiles", "check", *paths]) == 0
    out, _ = capsys.readouterr()
    assert out.count("ok: ") == len(paths)
