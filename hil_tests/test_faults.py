"""Installation faults and power loss: status bits, error codes, indicators, SunSpec Evt.

Bit numbers and codes are REGISTER_MAP.md's; the Evt bits are SunSpec's (model 20x:
2 Power_Failure, 4 Low_PF, 5 Over_Current, 6 Over_Voltage, 16/17 OEM01/OEM02 =
reversed CT L1/L2). Each fault is driven through the meter's inputs, then removed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from hil_tests.scenario import Scenario, Segment
from hil_tests.targets import MeterUnderTest, Target, open_meter
from twin.hil import Load
from twin.registers import BY_NAME

NORMAL = Load(120, 20)
FAULT_S = 3600  # the fault holds this long, then the inputs are normal again
EVT = BY_NAME["ac_meter.Evt"]
REVERSE_ARROW, L1_SYMBOL, L2_SYMBOL, L1_BLINK, L2_BLINK = 1, 2, 3, 4, 5


@dataclass(frozen=True)
class Fault:
    name: str
    scenario: Scenario
    status_bit: int
    error_code: int
    evt_bit: int
    blinks: tuple[int, ...]
    needs_l2: bool = False


def _after(name: str, l1: Load, l2: Load) -> Scenario:
    return Scenario(name, (Segment(FAULT_S, l1, l2), Segment(86_400, NORMAL, NORMAL)))


def _event(name: str, kind: str, line: str) -> Scenario:
    event = {"at": 0, "kind": kind, "line": line, "duration": FAULT_S}
    return Scenario(name, (Segment(86_400, NORMAL, NORMAL),), (event,))


FAULTS = [
    Fault("reversed-ct-l1", _event("rev", "ct_reversed", "L1"), 0, 5, 16, (L1_BLINK,)),
    Fault("ct-wrong-phase-l2", _event("wp", "ct_wrong_phase", "L2"), 1, 5, 17, (L2_BLINK,), True),
    Fault("missing-line-l2", _after("miss", NORMAL, Load(0, 20)), 3, 3, 2, (), True),
    Fault("over-voltage", _after("ov", Load(140, 20), Load(140, 20)), 5, 4, 6, (L1_BLINK,)),
    Fault("over-current", _after("oc", Load(120, 230), NORMAL), 6, 6, 5, (L1_BLINK,)),
    Fault("low-pf", _after("pf", Load(120, 20, 0.4), NORMAL), 7, 7, 4, (L1_BLINK,)),
]


async def _evt(meter: MeterUnderTest) -> int:
    words = await meter.client.read_registers(EVT.address, EVT.count)
    return int(words[0] << 16 | words[1])


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.name)
async def test_installation_fault(target: Target, fault: Fault) -> None:
    target.require_drive()
    model = target.model
    if fault.needs_l2 and model.startswith("MMS"):
        pytest.skip(f"{fault.name}: the single-element {model} has no L2")
    async with open_meter(target, fault.scenario) as meter:
        await meter.elapse(60)
        v = await meter.read()
        assert v["status_bits"] >> fault.status_bit & 1, f"status bit {fault.status_bit} not set"
        assert v["error_code"] == fault.error_code
        for blink in fault.blinks:
            assert v["indicators"] >> blink & 1, f"indicator bit {blink} not set"
        if fault.status_bit in (0, 1):
            assert v["indicators"] >> REVERSE_ARROW & 1, "reverse arrow off"
        if fault.name == "missing-line-l2":
            assert not v["indicators"] >> L2_SYMBOL & 1, "L2 symbol shown without L2 voltage"
        assert await _evt(meter) >> fault.evt_bit & 1, f"SunSpec Evt bit {fault.evt_bit} not set"
        await meter.elapse(FAULT_S)
        v = await meter.read()
        assert not v["status_bits"] >> fault.status_bit & 1, "the bit stays after the fault"
        assert v["error_code"] == 0
        assert v["indicators"] >> L1_SYMBOL & 1


OUTAGE_AT_S, OUTAGE_S = 1200, 600
POWER_W = 2 * 120 * 20.0


def _wh(seconds: float) -> int:
    return math.floor(POWER_W * seconds / 3600.0)


async def test_power_loss_and_return(target: Target) -> None:
    target.require_drive()
    outage = {"at": OUTAGE_AT_S, "kind": "outage", "duration": OUTAGE_S}
    scenario = Scenario("outage", (Segment(86_400, NORMAL, NORMAL),), (outage,))
    async with open_meter(target, scenario) as meter:
        await meter.elapse(1100)
        v = await meter.read()
        assert v["power_up_count"] == 1
        assert v["lcd_screen"] != 0 and not v["status_bits"] >> 13 & 1
        assert v["energy_delivered_wh"] == _wh(1100)
        await meter.elapse(300)  # 1400 s: in the outage
        v = await meter.read()
        assert v["status_bits"] >> 13 & 1, "unpowered bit not set"
        assert v["lcd_screen"] == 0, "LCD on without supply"
        assert v["energy_delivered_wh"] == _wh(OUTAGE_AT_S), "energy not kept"
        assert await _evt(meter) >> 2 & 1, "SunSpec Power_Failure not set"
        await meter.elapse(OUTAGE_AT_S + OUTAGE_S + 2 - 1400)  # 2 s after the return
        v = await meter.read()
        assert v["power_up_count"] == 2
        assert v["lcd_screen"] == 1, "no boot screen after the return"
        assert v["status_bits"] >> 12 & 1, "booting bit not set"
        assert v["uptime_s"] == 2
        assert v["energy_delivered_wh"] == _wh(OUTAGE_AT_S + 2)
        await meter.elapse(100)
        v = await meter.read()
        assert v["lcd_screen"] != 1 and not v["status_bits"] >> 12 & 1
        assert v["energy_delivered_wh"] == _wh(OUTAGE_AT_S + 102)
