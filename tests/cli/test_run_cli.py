"""`minimeter run` and `simulate` on the command line: every option's default in its
help, meter settings from options, the model/state guard, labelled status times."""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import until, wait_for_line
from twin.cli import main as cli_main
from twin.cli.main import build_parser
from twin.cli.run import config_from_args
from twin.cli.status import coarse_step_warner, status_line, status_rows
from twin.core import DemandMethod, MeterConfig, RegistrationMode
from twin.registers import TwinHealth
from twin.runtime import Twin, TwinConfig
from twin.runtime.fleet import meter_configs


def _entries(text: str) -> dict[str, str]:
    entries: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        m = re.match(r"^  (-{1,2}[\w-]+)", line)
        if m:
            current = m[1]
            entries[current] = line
        elif current and line.startswith("   "):
            entries[current] += " " + line.strip()
        else:
            current = None
    return entries


@pytest.mark.parametrize("command", ["run", "simulate"])
def test_every_option_says_its_default(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "400")
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    entries = _entries(capsys.readouterr().out)
    assert len(entries) > (30 if command == "run" else 15)
    missing = [opt for opt, text in entries.items() if opt != "-h" and "(default: " not in text]
    assert not missing, missing
    units = {"--speed": "", "--sample": " s", "--checkpoint-interval": " s", "--hold-up": "ms"}
    for option, unit in units.items():
        if option in entries:
            assert re.search(rf"\(default: [^)]*{unit}\)", entries[option]), entries[option]


def test_run_options_choose_the_meter_settings() -> None:
    args = build_parser().parse_args(
        ["run", "--no-state", "--demand-method", "block", "--demand-interval", "30",
         "--demand-subintervals", "1", "--registration-mode", "bidirectional",
         "--demand-max-window", "0", "--hold-up", "250ms", "--power-up", "110",
         "--power-down", "100"]
    )  # fmt: skip
    meter = config_from_args(args).meter
    assert meter.demand.method is DemandMethod.BLOCK
    assert (meter.demand.interval_min, meter.demand.subintervals) == (30, 1)
    assert meter.demand.max_window_h == 0
    assert meter.registration_mode is RegistrationMode.BIDIRECTIONAL
    assert (meter.supply.hold_up_s, meter.supply.power_up_v, meter.supply.power_down_v) == (
        0.25,
        110.0,
        100.0,
    )


def test_run_options_win_over_a_fleet_file(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        "fleet: 1\ndefaults: {port: 5999, demand_method: thermal, hold_up_s: 1s}\n"
        "meters:\n  - {unit: 1}\n  - {unit: 2, demand_method: block}\n"
    )
    args = build_parser().parse_args(["run", "--no-state", "--fleet", str(fleet)])
    assert [c.demand.method for c in _configs(args)] == [DemandMethod.THERMAL, DemandMethod.BLOCK]
    args = build_parser().parse_args(
        ["run", "--no-state", "--fleet", str(fleet), "--demand-method", "sliding"]
    )
    configs = _configs(args)
    assert {c.demand.method for c in configs} == {DemandMethod.SLIDING}
    assert {c.supply.hold_up_s for c in configs} == {1.0}  # the file's, not given on the line


def _configs(args: argparse.Namespace) -> list[MeterConfig]:
    cfg = config_from_args(args)
    return meter_configs(cfg.resolved, cfg.accuracy_seed, cfg.choices, cfg.profiles)


async def test_another_model_on_the_state_exits_1_naming_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    async with Twin(TwinConfig(port=0, speed=None, state_dir=state)) as twin:
        twin.step(60)
    code = await _run_cli(["run", "--port", "0", "--state-dir", str(state), "--model", "MMS-200A"])
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    (line,) = err.strip().splitlines()
    assert "saved as a MMD-200A" in line and "as a MMS-200A" in line
    assert "--state-dir elsewhere" in line and "--no-state" in line


async def _run_cli(argv: list[str]) -> int:
    # main() runs its own event loop: call it from a worker thread of this test's loop
    return await asyncio.to_thread(cli_main, argv)


async def test_status_times_are_labelled_uptime_and_profile_time(tmp_path: Path) -> None:
    state = tmp_path / "state"
    cfg = TwinConfig(port=0, speed=None, state_dir=state, profile="full-load-then-faults")
    async with Twin(cfg) as twin:
        twin.step(4000)  # past the 1 h profile's end: it repeats
        line = status_line(twin)
        assert "profile_t=400s" in line
        uptime = twin.meter().snapshot.uptime_s
        assert f"uptime={uptime}s" in line
    async with Twin(cfg) as twin:
        twin.step(100)
        line = status_line(twin)
        rows = dict(status_rows(twin))
    assert "profile_t=100s" in line  # a new run starts its profile again ...
    assert f"uptime={uptime + 100}s" in line  # ... while the meter's uptime goes on
    assert rows["uptime"].startswith(f"{uptime + 100} s")
    assert rows["profile time"].startswith("100 s of full-load-then-faults")
    assert "t=" not in line.replace("profile_t=", "")


async def test_a_coarse_sample_is_said_once_per_output(capsys: pytest.CaptureFixture[str]) -> None:
    cfg = TwinConfig(port=0, speed=None, meters=2, sample_s=60.0, profile="full-load-then-faults")
    async with Twin(cfg) as twin:
        twin.subscribe(coarse_step_warner(cfg.sample_s))
        twin.step(1800)
        twin.step(1800)
    lines = capsys.readouterr().err.strip().splitlines()
    # at 5.4 kW a 10 Wh edge comes every 3.3 s: 60 s samples hold many; the 1000 Wh
    # output (an edge every 333 s) never has two in one sample
    outputs = [re.search(r"for the (\w+)( Wh)? output", ln)[1] for ln in lines]  # type: ignore[index]
    assert sorted(outputs) == ["10", "100"]
    assert all(ln.startswith("minimeter run: warning: --sample 60 s is too coarse") for ln in lines)


def test_run_warns_once_when_a_single_element_model_misses_l2() -> None:
    argv = [sys.executable, "-m", "twin", "run", "--port", "0", "--no-state", "--meters", "3"]
    argv += ["--model", "MMS-200A", "--profile", "residential-day"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_line(proc, "serving ")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    lines = [ln for ln in err.splitlines() if "warning" in ln]
    assert len(lines) == 1, err
    assert lines[0].startswith("minimeter run: warning: profile 'residential-day' loads L2")
    assert "MMS-200A" in lines[0]


def test_run_at_x3600_keeps_up_without_a_warning() -> None:
    """One meter at --speed 3600 keeps up: no "cannot keep up" line, no lag on the status
    line, and its meter time moves (3 status lines, two seconds apart)."""
    argv = [sys.executable, "-m", "twin", "run", "--port", "0", "--no-state", "--speed", "3600"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_line(proc, "serving ")
        status = [wait_for_line(proc, "uptime=") for _ in range(3)]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "cannot keep up" not in err
    assert not any(" lag=" in line for line in status), status
    uptimes = [int(re.search(r"uptime=(\d+)s", line)[1]) for line in status]  # type: ignore[index]
    assert uptimes[0] < uptimes[1] < uptimes[2]


async def test_the_status_table_names_the_twins_conditions() -> None:
    async with Twin(TwinConfig(port=0, speed=None)) as twin:
        assert "twin health" not in dict(status_rows(twin))
        twin.health.watch(TwinHealth.PULSE_SINK_FAILING, lambda: True)
        await until(lambda: twin.health.bits != 0, "the poll")
        rows = dict(status_rows(twin))
    assert rows["twin health"] == "16 (register 79): ['pulse_sink_failing']"
