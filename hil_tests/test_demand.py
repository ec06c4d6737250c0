"""Demand: the 15-minute sliding window of 3 x 5 minutes, block demand, maximum demand.

Expected demands are the mean powers of the scenario's segments, computed here.
Block C is written over Modbus (the map's own way to configure demand).
"""

from __future__ import annotations

import pytest

from hil_tests.scenario import Scenario, Segment
from hil_tests.targets import Target, open_meter
from twin.hil import Load

P1_W = 2 * 120 * 20.0  # 4.8 kW
P2_W = 2 * 120 * 5.0  # 1.2 kW
SUB_S = 300
STEP = Scenario(
    "demand",
    (
        Segment(3 * SUB_S, Load(120, 20), Load(120, 20)),
        Segment(86_400, Load(120, 5), Load(120, 5)),
    ),
)
METHOD_ADDRESS, BLOCK = 203, 1
COMMAND_ADDRESS, RESET_MAX = 200, 21212


def kw(watts: float) -> float:
    return pytest.approx(watts / 1000.0, abs=1e-3)


async def test_sliding_demand_and_maximum(target: Target) -> None:
    target.require_drive()
    async with open_meter(target, STEP) as meter:
        await meter.elapse(2 * SUB_S)
        v = await meter.read()
        assert v["demand_valid"] == 0, "valid before the first full window"
        await meter.elapse(SUB_S)
        v = await meter.read()
        assert v["demand_valid"] == 1
        assert v["demand_kw"] == kw(P1_W)
        assert v["demand_max_kw"] == kw(P1_W)
        expected = [(2 * P1_W + P2_W) / 3, (P1_W + 2 * P2_W) / 3, P2_W]
        for demand_w in expected:
            await meter.elapse(SUB_S)
            v = await meter.read()
            assert v["demand_kw"] == kw(demand_w)
            assert v["demand_max_kw"] == kw(P1_W), "the maximum holds within its window"
        assert v["demand_max_at_s"] == 3 * SUB_S
        await meter.client.write_register(COMMAND_ADDRESS, RESET_MAX)
        v = await meter.read()
        assert v["demand_max_kw"] == kw(P2_W), "a reset sets the maximum to the present demand"


async def test_block_demand(target: Target) -> None:
    target.require_drive()
    async with open_meter(target, STEP) as meter:
        await meter.client.write_register(METHOD_ADDRESS, BLOCK)
        assert (await meter.client.read_registers(METHOD_ADDRESS, 1)) == [BLOCK]
        await meter.elapse(3 * SUB_S)
        v = await meter.read()
        assert v["demand_kw"] == kw(P1_W)
        await meter.elapse(2 * SUB_S)
        v = await meter.read()
        assert v["demand_kw"] == kw(P1_W), "block demand changes only when the interval closes"
        await meter.elapse(SUB_S)
        v = await meter.read()
        assert v["demand_kw"] == kw(P2_W)
        assert v["demand_max_kw"] == kw(P1_W)
