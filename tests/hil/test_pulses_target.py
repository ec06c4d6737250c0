"""The HIL suite's pulses target, end to end: a stand-in meter's 10 Wh output reaches
``pytest hil_tests --target pulses:virtual://...`` through a virtual sink and source.

The stand-in (``-p tests.hil.standin_rig``) is the real core on a manual clock playing
the rig's load; the load holds every C12.1 point as long as Kh 10 needs
(``hil_tests.pulses.rig_load``). Expected figures here are computed independently of
the suite: the registration the stand-in's calibration error implies.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hil_tests.pulses import rig_load
from tests.helpers import hil_outcomes, run_hil_suite
from twin.core import MeterModel

SOURCE = "pulses:virtual://hil-standin?kh=10"
STANDIN = ("-p", "tests.hil.standin_rig")
NO_REGISTERS = "shows pulse outputs only, no registers"
ACCURACY = ["FL", "LL", "PF", "PFlead", "I2A", "I200A", "I220A", "V102", "V138", "F50", "F60"]
ACCURACY += ["L1only", "L2only"]
SURVIVORS = ["start", "creep132", "creep138"]


@pytest.fixture(scope="module")
def rig_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rig") / "rig.yaml"
    path.write_text(rig_load(MeterModel.parse("MMD-200A"), 10.0).profile_yaml())
    return path


def _run(tmp_path: Path, load: str, *args: str) -> tuple[int, dict[str, tuple[str, str]], str]:
    report = tmp_path / "report.md"
    result, root = run_hil_suite(
        tmp_path, "--target", SOURCE, "--load", load, "--hil-report", str(report), *STANDIN, *args
    )
    assert result.returncode in (0, 1), result.stdout[-3000:] + result.stderr[-2000:]
    return result.returncode, hil_outcomes(root), report.read_text()


def _table(report: str) -> dict[str, list[str]]:
    rows = {}
    for line in report.splitlines():
        cells = [c.strip() for c in line.split("|")[1:-1]]
        if (
            len(cells) in (4, 8)
            and cells[0] not in ("point", "average", "test")
            and "---" not in line
        ):
            rows[cells[0]] = cells
    return rows


def test_ideal_meter_passes_every_point_pulses_can_answer(tmp_path: Path, rig_file: Path) -> None:
    code, cases, report = _run(tmp_path, str(rig_file))
    assert code == 0, [c for c in cases.items() if c[1][0] != "passed" and c[1][0] != "skipped"]
    passed = {n for n, (kind, _) in cases.items() if kind == "passed"}
    expected = {f"test_c12_point[{k}]" for k in ACCURACY + SURVIVORS}
    expected |= {"test_c12_average[avg_fl_ll]", "test_c12_average[avg_fl_ll_pf]"}
    expected.add("test_energy_consistent_with_power")
    assert passed == expected
    skipped = {n: msg for n, (kind, msg) in cases.items() if kind == "skipped"}
    assert skipped and all(NO_REGISTERS in msg for msg in skipped.values()), skipped
    table = _table(report)
    assert table["full load"][-1] == "PASS" and table["(4·FL + LL)/5"][-1] == "PASS"


def test_calibration_error_fails_the_accuracy_points(tmp_path: Path, rig_file: Path) -> None:
    code, cases, report = _run(tmp_path, str(rig_file), "--standin-calibration", "2")
    assert code == 1
    failed = {n for n, (kind, _) in cases.items() if kind == "failure"}
    passed = {n for n, (kind, _) in cases.items() if kind == "passed"}
    assert passed == {f"test_c12_point[{k}]" for k in SURVIVORS}
    assert failed == {f"test_c12_point[{k}]" for k in ACCURACY} | {
        "test_c12_average[avg_fl_ll]",
        "test_c12_average[avg_fl_ll_pf]",
        "test_energy_consistent_with_power",
    }
    assert "OUTSIDE_CLASS" in cases["test_energy_consistent_with_power"][1]
    table = _table(report)
    for title in ("full load", "light load", "PF 0.5 lag", "2 A", "L2 only", "(4·FL + LL)/5"):
        row = table[title]
        error_pct, bound_pct = (float(x) for x in row[-3].split("±"))
        # +2 % registration, to within the window's own bound (one edge, Kh/2).
        assert abs(error_pct - 2.0) <= bound_pct, row
        assert row[-1] == "**FAIL**", row
    for title in ("starting load", "no-load creep 132 V", "no-load creep 138 V"):
        assert table[title][-1] == "PASS"


def test_short_load_skips_with_the_duration_it_needs(tmp_path: Path) -> None:
    """The shipped c12-accuracy profile holds each point 10 minutes: too short at Kh 10."""
    code, cases, _ = _run(tmp_path, "c12-accuracy")
    c12 = {n: msg for n, (kind, msg) in cases.items() if n.startswith("test_c12_point")}
    assert cases["test_c12_point[FL]"][0] == "skipped"
    assert "a window needs 5000 s" in c12["test_c12_point[FL]"]
    assert "never applies" in c12["test_c12_point[creep132]"]
    assert all(cases[n][0] == "skipped" for n in c12), c12
    assert cases["test_energy_consistent_with_power"][0] in ("passed", "skipped")
    assert code == 0
