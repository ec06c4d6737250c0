"""One control path: a block-C write over Modbus TCP (a real client) and the same command
through `twin.control` from Python give identical results and identical refusals."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from twin.control import ENERGY_RESET_LOCKED
from twin.modbus.client import ExceptionReply, MeterClient
from twin.registers import ModbusException
from twin.runtime import Twin, TwinConfig

CONST_2400W = """\
schema: 1
name: const-2400
segments:
  - kind: constant
    duration: 1000h
    L1: {voltage: 120, current: 10, pf: 1.0}
    L2: {voltage: 120, current: 10, pf: 1.0}
"""

# (address, values) on the wire; (command, body) through control; the refusal, if any
CASES: list[tuple[int, list[int], str, dict[str, Any], str | None]] = [
    (200, [16498], "clear_pulses", {}, None),
    (200, [30078], "clear_energy", {}, ENERGY_RESET_LOCKED),
    (202, [4], "set_demand", {"demand_subintervals": 4}, "4 does not divide 15 min"),
    (201, [61], "set_demand", {"demand_interval_min": 61}, "demand_interval_min: 61 out"),
    (201, [20, 3], "set_demand", {"demand_interval_min": 20, "demand_subintervals": 3}, "20 min"),
    (203, [3], "set_demand", {"demand_method": 3}, "demand_method: 3 out of range"),
    (204, [169], "set_demand", {"demand_max_window_h": 169}, "demand_max_window_h: 169"),
    (201, [30, 5], "set_demand", {"demand_interval_min": 30, "demand_subintervals": 5}, None),
    (202, [4], "set_demand", {"demand_subintervals": 4}, "4 does not divide 30 min"),
    (205, [2], "set_demand", {"registration_mode": 2}, None),
    (
        201,
        [10, 2, 1, 0],
        "set_demand",
        {
            "demand_interval_min": 10,
            "demand_subintervals": 2,
            "demand_method": 1,
            "demand_max_window_h": 0,
        },
        None,
    ),
    (200, [21212], "reset_max_demand", {}, None),
    (200, [21211], "new_demand_subinterval", {}, None),
]


@pytest.fixture
def config(tmp_path: Path) -> TwinConfig:
    profile = tmp_path / "const.yaml"
    profile.write_text(CONST_2400W)
    return TwinConfig(profile=str(profile), port=0, speed=None, allow_writes=True)


@pytest.fixture
async def twins(config: TwinConfig) -> AsyncIterator[tuple[Twin, Twin]]:
    """Two identical twins: one written over Modbus, one commanded from Python."""
    async with Twin(config) as wire, Twin(config) as python:
        wire.step(3600)
        python.step(3600)
        yield wire, python


async def test_modbus_writes_and_control_commands_agree(twins: tuple[Twin, Twin]) -> None:
    wire, python = twins
    serial = python.meter().serial
    async with MeterClient(port=wire.port) as client:
        for address, values, command, body, refusal in CASES:
            case = f"{address} {values} = {command} {body}"
            try:
                if len(values) == 1:
                    await client.write_register(address, values[0])
                else:
                    await client.write_registers(address, values)
                code = None
            except ExceptionReply as exc:
                code = exc.code
            result = python.control.run(command, body, serial=serial)
            if refusal is None:
                assert code is None and result.ok, (case, code, result)
            else:
                assert code == 3 and not result.ok, (case, code, result)
                assert result.error is not None and refusal in result.error, case
            # identical results: both meters hold exactly the same registers
            assert repr(wire.meter().snapshot) == repr(python.meter().snapshot), case
            assert await client.read_registers(200, 6) == [
                0,
                python.meter().snapshot.demand_interval_min,
                python.meter().snapshot.demand_subintervals,
                int(python.meter().snapshot.demand_method),
                python.meter().snapshot.demand_max_window_h,
                int(python.meter().snapshot.registration_mode),
            ], case
            wire.step(120)
            python.step(120)


@pytest.mark.parametrize(("address", "values", "command", "body", "refusal"), CASES)
async def test_a_refused_write_carries_controls_reason(
    config: TwinConfig,
    address: int,
    values: list[int],
    command: str,
    body: dict[str, Any],
    refusal: str | None,
) -> None:
    async with Twin(config) as twin:
        meter = twin.meter()
        result = twin.control.run(command, body, serial=meter.serial)
        if result.ok:
            return  # applied: the first test shows the write does the same
        before = repr(meter.snapshot)
        with pytest.raises(ModbusException) as exc:
            meter.modbus_write(address, values)
        assert exc.value.code == 3
        assert str(exc.value) == f"exception 0x03: {result.error}"  # the very same text
        assert repr(meter.snapshot) == before


async def test_energy_reset_when_unlocked_and_bad_addresses(config: TwinConfig) -> None:
    from dataclasses import replace

    unlocked = replace(config, allow_energy_reset=True)
    async with Twin(unlocked) as wire, Twin(unlocked) as python:
        wire.step(600)
        python.step(600)
        async with MeterClient(port=wire.port) as client:
            await client.write_register(200, 30078)
            assert python.control.run("clear_energy").ok
            assert wire.meter().snapshot.energy_delivered_wh == 0
            assert repr(wire.meter().snapshot) == repr(python.meter().snapshot)
            for address in (0, 100, 199, 206):  # not block C: 02, before control is asked
                with pytest.raises(ExceptionReply) as exc:
                    await client.write_register(address, 1)
                assert exc.value.code == 2
            with pytest.raises(ExceptionReply) as exc:
                await client.write_registers(200, [21212, 15])  # a command is written alone
            assert exc.value.code == 3
