"""The plugin's fixtures and handles in-process: options, fleets, the manual clock."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from twin.errors import ConfigError
from twin.hil import CommandFailed, Load, MeterFleet, MeterTwin
from twin.modbus.client import decode_uint


@pytest.mark.meter(model="MMS-100A", profile="creep-check")
def test_marker_options_reach_the_twin(meter_twin: MeterTwin) -> None:
    meter_twin.advance(600)
    snap = meter_twin.snapshot()
    assert (snap.model, snap.elements, snap.voltage_l1_v) == ("MMS-100A", 1, 132.0)
    assert snap.energy_delivered_wh == 0
    assert meter_twin.url == f"modbus://127.0.0.1:{meter_twin.port}?unit=1"


@pytest.mark.meter(model="MMS-100A")
@pytest.mark.parametrize("meter_twin", [{"model": "MMU-200A", "unit": 7}], indirect=True)
def test_indirect_parameters_win_over_the_marker(meter_twin: MeterTwin) -> None:
    assert meter_twin.snapshot().model == "MMU-200A"
    assert meter_twin.unit == 7 and meter_twin.url.endswith("?unit=7")


async def test_client_reads_what_the_snapshot_says(meter_twin: MeterTwin) -> None:
    meter_twin.advance(1800)
    async with meter_twin.client() as client:
        energy_wh = decode_uint(await client.read_registers(0, 4))
    assert energy_wh == meter_twin.snapshot().energy_delivered_wh > 0
    assert meter_twin.meter_time_s == 1800


def test_fleet_meters_are_distinct(meter_fleet: Callable[..., MeterFleet]) -> None:
    fleet = meter_fleet(3, serial_number="BENCH-001")
    fleet.advance(60)
    assert [m.serial for m in fleet] == ["BENCH-001", "BENCH-002", "BENCH-003"]
    assert {m.port for m in fleet} == {fleet.port}
    with pytest.raises(CommandFailed, match="no meter with serial"):
        fleet.snapshot("nope")


def test_advance_needs_the_manual_clock() -> None:
    with MeterTwin(speed=10.0) as twin, pytest.raises(CommandFailed, match="manual clock"):
        twin.advance(1)


def test_options_the_fixture_chooses_are_refused() -> None:
    with pytest.raises(TypeError, match="port= is chosen by the fixture"):
        MeterFleet(2, port=5020)
    with pytest.raises(ConfigError, match="--unit"):
        MeterTwin(unit=300)


def test_closed_twin_refuses_work() -> None:
    twin = MeterTwin().start()
    twin.close()
    with pytest.raises(CommandFailed, match="not running"):
        twin.advance(1)


def test_commands_go_through_control(meter_twin: MeterTwin) -> None:
    meter_twin.set_load(l1=Load(120, 10), l2=Load(120, 0))
    meter_twin.advance(3600)
    snap = meter_twin.snapshot()
    assert snap.energy_delivered_wh == 1200  # 120 V x 10 A for an hour, computed here
    with pytest.raises(CommandFailed, match="set_speed refused"):
        meter_twin.command("set_speed", {"speed": -1})
    meter_twin.clear_load()
