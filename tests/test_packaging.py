"""The built wheel carries the shipped profiles: a non-editable install finds them by name."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(300)
def test_wheel_ships_profiles_and_loads_them_outside_the_tree(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next(tmp_path.glob("minimeter_twin-*.whl"))
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        zf.extractall(site)
    assert "twin/shipped_profiles/default.yaml" in names
    assert "twin/shipped_profiles/csv-day.csv" in names
    # Import from the unpacked wheel only (not the source tree), from another directory.
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import twin.loadprofile as p; "
        "assert p.__file__.startswith(sys.argv[1]), p.__file__; "
        "print(p.load_profile('csv-day').name, len(p.shipped_profiles()))"
    )
    run = subprocess.run(
        [sys.executable, "-S", "-c", code, str(site)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
        env={"PYTHONPATH": str(Path(__import__("numpy").__file__).parents[1])},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    name, count = run.stdout.split()
    assert name == "csv-day" and int(count) >= 12
