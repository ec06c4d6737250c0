"""The SunSpec walk a SunSpec client does: "SunS" at 40000, models by ID and length to
the end model, and the meter model agreeing with block A."""

from __future__ import annotations

import math

import pytest

from hil_tests.scenario import Scenario
from hil_tests.targets import Target, open_meter
from twin.hil import Load
from twin.modbus.client import ExceptionReply, decode_string
from twin.registers import BY_NAME

SUNS = [0x5375, 0x6E53]
END_ID = 0xFFFF
COMMON_LENGTH = 66
METER_LENGTH = 105


def _int16(word: int) -> int:
    return word - 0x10000 if word & 0x8000 else word


async def test_sunspec_walk(target: Target) -> None:
    target.require_registers()
    scenario = Scenario.constant("sunspec", Load(120, 30, 1.0), Load(120, 20, 1.0))
    async with open_meter(target, scenario if target.drivable else None) as meter:
        meter.settle(3600)
        try:
            marker = await meter.client.read_registers(40000, 2)
        except ExceptionReply as exc:
            if target.drivable:  # the twin serves SunSpec by default
                raise
            pytest.skip(f"SunSpec block off on this target (40000 answers {exc.code:#04x})")
        assert marker == SUNS
        models: list[tuple[int, int, int]] = []
        address = 40002
        while True:
            model_id, length = await meter.client.read_registers(address, 2)
            models.append((address, model_id, length))
            if model_id == END_ID:
                break
            assert len(models) < 10, f"no end model after {models}"
            address += 2 + length
        block = await meter.client.read_registers(40000, 125)
        block += await meter.client.read_registers(40125, 54)
        values = await meter.read()
    two = values["elements"] == 2
    assert [(m, n) for _, m, n in models] == [
        (1, COMMON_LENGTH),
        (202 if two else 201, METER_LENGTH),
        (END_ID, 0),
    ]

    def word(name: str) -> list[int]:
        reg = BY_NAME[name]
        return block[reg.address - 40000 : reg.end - 40000]

    assert decode_string(word("common.SN")) == values["serial_number"]
    acc = word("ac_meter.TotWhImp")
    tot_sf = _int16(word("ac_meter.TotWh_SF")[0])
    imported_wh = ((acc[0] << 16) | acc[1]) * 10.0**tot_sf
    assert imported_wh == pytest.approx(values["energy_delivered_wh"] % 2**32, abs=10.0**tot_sf)
    w = _int16(word("ac_meter.W")[0]) * 10.0 ** _int16(word("ac_meter.W_SF")[0])
    step = 10.0 ** _int16(word("ac_meter.W_SF")[0])
    assert math.isclose(w, values["power_w"], abs_tol=step), (w, values["power_w"])
