"""The pytest plugin from a fresh directory outside the repo, as an integrator uses it:
the installed package's ``pytest11`` entry point provides ``meter_twin``/``meter_fleet``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

USER_TEST = """
import pytest

# c12-accuracy starts with 10 min of full load: 120 V x 30 A on both lines = 7.2 kW.
@pytest.mark.meter(profile="c12-accuracy")
def test_full_load_energy(meter_twin):
    meter_twin.advance(600)
    assert meter_twin.snapshot().energy_delivered_wh == {energy}


@pytest.mark.asyncio
async def test_over_modbus(meter_twin):
    meter_twin.advance(3600)
    async with meter_twin.client() as client:
        words = await client.read_registers(0, 4)
    assert int.from_bytes(b"".join(w.to_bytes(2, "big") for w in words), "big") > 0


def test_fleet_of_three(meter_fleet):
    fleet = meter_fleet(3, profile="c12-accuracy")
    fleet.advance(600)
    assert [m.unit for m in fleet] == [1, 2, 3]
    assert len({{m.serial for m in fleet}}) == 3
    assert all(m.snapshot().energy_delivered_wh == 1200 for m in fleet)
    assert fleet[2].url.endswith("?unit=3")
"""


def run_user_tests(tmp_path: Path, energy: int) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_user.py").write_text(USER_TEST.format(energy=energy))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_user.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_user_tests_pass(tmp_path: Path) -> None:
    result = run_user_tests(tmp_path, 1200)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


def test_wrong_energy_fails_readably(tmp_path: Path) -> None:
    result = run_user_tests(tmp_path, 1201)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed, 2 passed" in result.stdout
    assert "assert 1200 == 1201" in result.stdout
    assert "energy_delivered_wh" in result.stdout


@pytest.mark.parametrize("bad", ["fast", "0", "-3"])
def test_bad_speed_option_is_a_usage_error(tmp_path: Path, bad: str) -> None:
    (tmp_path / "test_x.py").write_text("def test_x(meter_twin):\n    pass\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--meter-speed", bad],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 4, result.stdout + result.stderr
    assert "--meter-speed" in result.stderr and "expected 'manual' or a factor" in result.stderr
