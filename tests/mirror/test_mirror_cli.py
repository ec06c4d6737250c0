"""`minimeter mirror` as a process: Modbus face of the physical meter, SIGKILL restart, report."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.devices.fakes import CounterModule
from tests.helpers import find_free_port, wait_for_line
from twin.modbus.client import MeterClient

KH = 10


def start_mirror(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "twin", "mirror", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, wait_for_line(proc, "serving modbus tcp")


async def served(port: int) -> tuple[int, int, int]:
    """(energy Wh, source_mode, mirror_pulses) as a SCADA client reads them."""
    async with MeterClient(port=port) as client:
        energy = await client.read_uint(0, 4)
        mode = (await client.read_registers(70, 1))[0]
        pulses = await client.read_uint(77, 2)
    return energy, mode, pulses


async def wait_served(port: int, energy_wh: int) -> tuple[int, int, int]:
    last = None
    for _ in range(400):
        last = await served(port)
        if last[0] == energy_wh:
            return last
        await asyncio.sleep(0.025)
    raise AssertionError(f"served {last}, expected {energy_wh} Wh")


async def test_sigkill_of_the_mirror_neither_loses_nor_double_counts(
    counter_module: CounterModule, tmp_path: Path
) -> None:
    async def count(raw: int) -> None:
        await counter_module.set_counter(3, 0, raw, low_word_first=True)

    await count(1000)
    port = find_free_port()
    args = (
        "--source",
        f"adam6051://127.0.0.1:{counter_module.port}?channel=0&kh={KH}&poll=20ms",
        "--port",
        str(port),
        "--state-dir",
        str(tmp_path / "state"),
        "--status",
        "0.2",
    )
    proc, first = start_mirror(*args)
    try:
        assert "0 counts restored" in first
        await wait_served(port, 0)
        await asyncio.sleep(0.5)  # the first polls take the baseline (no observable change)
        await count(1042)
        assert await wait_served(port, 420) == (420, 1, 42)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    await count(1077)  # the meter kept pulsing while the mirror was dead
    proc, first = start_mirror(*args)
    try:
        assert "42 counts restored" in first
        assert await wait_served(port, 770) == (770, 1, 77)
        await count(1080)
        assert await wait_served(port, 800) == (800, 1, 80)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
    assert proc.returncode == 0


async def test_report_is_written_on_sigterm(counter_module: CounterModule, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    await counter_module.set_counter(3, 0, 0, low_word_first=True)
    port = find_free_port()
    proc, _ = start_mirror(
        "--source",
        f"adam6051://127.0.0.1:{counter_module.port}?channel=0&kh={KH}&poll=20ms",
        "--profile",
        "c12-accuracy",
        "--port",
        str(port),
        "--no-state",
        "--report",
        str(tmp_path / "report"),
    )
    await wait_served(port, 0)
    await asyncio.sleep(0.5)  # the first polls take the baseline (no observable change)
    await counter_module.set_counter(3, 0, 3, low_word_first=True)
    await wait_served(port, 30)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "registration.png" in out
    document = json.loads((tmp_path / "report" / "report.json").read_text())
    assert document["about"]["profile"] == "c12-accuracy"
    assert document["verdict"] in {"undecided", "within_class", "outside_class"}
    assert (tmp_path / "report" / "registration.png").stat().st_size > 1000


def test_bad_source_url_is_one_line_exit_1(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "twin", "mirror", "--source", "adam6051://h?kh=ten", "--no-state"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "kh" in result.stderr and "Traceback" not in result.stderr


async def test_run_pulse_out_drives_a_do_coil_with_exactly_the_closures(
    counter_module: CounterModule,
) -> None:
    port = find_free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "twin",
            "run",
            "--profile",
            "c12-accuracy",
            "--speed",
            "3600",
            "--until",
            "1200",
            "--port",
            str(port),
            "--no-state",
            "--pulse-out",
            f"modbus-coil://127.0.0.1:{counter_module.port}?coil=0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_line(proc, "serving")
        closures = -1
        for _ in range(400):  # until the meter is frozen at 1200 s and every edge is out
            async with MeterClient(port=port) as client:
                closures = await client.read_uint(56, 2)
                uptime = await client.read_uint(64, 2)
            writes = counter_module.coil_writes
            if uptime >= 1190 and sum(closed for _, closed in writes) == closures:
                break
            await asyncio.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
    writes = list(counter_module.coil_writes)
    # 7.2 kW (30 A on both lines at 120 V) for 10 min, then 0.72 kW for 10 min: 1320 Wh,
    # the 10 Wh output closed 132 times.
    assert closures == 132
    assert [closed for _, closed in writes] == [True, False] * closures or [
        closed for _, closed in writes
    ] == [True, False] * (closures - 1) + [True]
    assert {coil for coil, _ in writes} == {0}


async def test_the_status_line_ends_with_the_twins_other_conditions(
    counter_module: CounterModule,
) -> None:
    """A broker nobody listens on: the mirror serves on, its register 79 and its status
    line say ``mqtt_disconnected`` (its own STALE and REFERENCE-DOWN are not repeated)."""
    port = find_free_port()
    proc, _ = start_mirror(
        "--source",
        f"adam6051://127.0.0.1:{counter_module.port}?channel=0&kh={KH}&poll=20ms",
        "--port",
        str(port),
        "--no-state",
        "--status",
        "0.2",
        "--mqtt",
        f"mqtt://127.0.0.1:{find_free_port()}",
    )
    try:
        line = wait_for_line(proc, "mqtt_disconnected")
        assert line.startswith("t=") and line.rstrip().endswith(" mqtt_disconnected"), line
        async with MeterClient(port=port) as client:
            assert (await client.read_registers(79, 1))[0] == 2  # TwinHealth.MQTT_DISCONNECTED
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
