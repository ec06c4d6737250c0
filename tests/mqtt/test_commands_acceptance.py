"""Every command over MQTT acts on the meter, as a Modbus client sees it; a malformed,
unknown or locked command is refused with its reason and changes no register."""

from __future__ import annotations

import itertools
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.helpers import REPO, Broker, Subscriber, find_free_port
from tests.mqtt.conftest import Live
from tests.mqtt.test_publisher_commands import connected
from twin.control import COMMAND_SPECS, ENERGY_RESET_LOCKED, CommandName
from twin.modbus.client import ExceptionReply, MeterClient

StartLive = Callable[..., Awaitable[Live]]
_ids = itertools.count(1)


class Rig:
    """A test rig: commands over MQTT, observations over Modbus."""

    def __init__(self, live: Live, sub: Subscriber, modbus: MeterClient) -> None:
        self.live, self.sub, self.modbus = live, sub, modbus
        self.serial = live.twin.meters[0].serial

    async def command(self, name: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        cid = f"c{next(_ids)}"
        payload = json.dumps({**(body or {}), "correlation_id": cid})
        await self.sub.publish(f"minimeter/{self.serial}/cmd/{name}", payload)
        reply = await self.sub.wait_for(
            lambda m: m.topic.endswith("/cmd/result") and m.json()["id"] == cid
        )
        result: dict[str, Any] = reply.json()
        assert result["command"] == name
        return result

    async def block_a(self) -> list[int]:
        return await self.modbus.read_registers(0, 70)

    async def float32(self, address: int) -> float:
        return await self.modbus.read_float32(address)

    async def uint(self, address: int, words: int) -> int:
        return await self.modbus.read_uint(address, words)


@pytest.fixture
async def rig(broker: Broker, start_live: StartLive) -> Any:
    # A real port: a fault armed for this meter matches its configured port (0 is RTU's).
    live = await start_live(broker.port, twin={"port": find_free_port()})
    await connected(live)
    async with (
        Subscriber(broker.port, "minimeter/+/cmd/result") as sub,
        MeterClient(port=live.twin.port) as modbus,
    ):
        yield Rig(live, sub, modbus)


async def test_every_command_acts_as_modbus_sees_it(rig: Rig) -> None:
    step = rig.live.twin.step
    step(10 * 3600)  # night, morning, the 4.6 kW water heater, then the 750 W day
    # set_load / clear_load: the override replaces the profile's L1 for its duration.
    on = {"l1": {"voltage_v": 120, "current_a": 10, "pf": 1.0}, "l2": None, "for_s": 600}
    assert (await rig.command("set_load", on))["ok"]
    step(60)
    assert await rig.float32(22) == pytest.approx(1200, rel=0.01)  # power_l1_w
    assert (await rig.command("clear_load"))["ok"]
    step(60)
    assert await rig.float32(22) == pytest.approx(400, rel=0.01)  # the profile's day
    # reset_max_demand: the maximum becomes the present demand.
    assert await rig.float32(44) > 4.0  # demand_max_kw, from the water heater
    assert (await rig.command("reset_max_demand"))["ok"]
    assert await rig.float32(44) == pytest.approx(await rig.float32(42), abs=0.01)
    # new_demand_subinterval: the sub-interval restarts now.
    step(100)
    assert await rig.uint(48, 1) > 0  # demand_subinterval_elapsed_s
    assert (await rig.command("new_demand_subinterval"))["ok"]
    assert await rig.uint(48, 1) == 0
    # clear_pulses: the pulse counts start again from 0.
    assert await rig.uint(56, 2) > 0  # pulses_10wh
    assert (await rig.command("clear_pulses"))["ok"]
    assert await rig.uint(56, 2) == 0
    # inject_error / clear_error: the error code register.
    assert (await rig.command("inject_error", {"kind": "memory"}))["ok"]
    step(1)
    assert await rig.uint(52, 1) == 1  # error_code: memory
    assert (await rig.command("clear_error", {"kind": "memory"}))["ok"]
    step(1)
    assert await rig.uint(52, 1) == 0
    # set_demand: block C reads the new interval back.
    body = {"demand_interval_min": 30, "demand_subintervals": 3}
    assert (await rig.command("set_demand", body))["ok"]
    assert await rig.modbus.read_registers(201, 2) == [30, 3]
    # switch_profile: the meter plays the other profile from now on.
    assert (await rig.command("switch_profile", {"profile": "full-load-then-faults"}))["ok"]
    step(60)
    assert await rig.float32(32) == pytest.approx(30, rel=0.01)  # current_l1_a
    # add_fault / clear_faults: a protocol fault on this meter, then none.
    added = await rig.command("add_fault", {"kind": "exception", "code": 4})
    assert added["ok"]
    with pytest.raises(ExceptionReply) as reply:
        await rig.block_a()
    assert reply.value.code == 4
    assert (await rig.command("clear_faults", {"id": added["data"]["fault_id"]}))["ok"]
    assert len(await rig.block_a()) == 70


@pytest.mark.parametrize(
    ("name", "body", "reason"),
    [
        ("warp_drive", {}, "warp_drive"),
        ("set_load", {"l1": {"voltage_v": 120}}, "current_a"),
        ("set_load", {"l1": {"voltage_v": 120, "current_a": -1}}, "current_a"),
        ("inject_error", {"kind": "gremlins"}, "gremlins"),
        ("switch_profile", {"profile": "no-such-profile"}, "no-such-profile"),
        ("set_demand", {"demand_interval_min": 7, "demand_subintervals": 3}, "divide"),
        ("add_fault", {"kind": "meteor"}, "meteor"),
        ("clear_energy", {}, ENERGY_RESET_LOCKED),
        ("set_speed", {"speed": 10}, "set_speed"),
        ("clear_pulses", {"unexpected": 1}, "unexpected"),
    ],
)
async def test_refused_commands_give_a_reason_and_change_nothing(
    rig: Rig, name: str, body: dict[str, Any], reason: str
) -> None:
    rig.live.twin.step(3600)
    before = (await rig.block_a(), await rig.modbus.read_registers(200, 6))
    result = await rig.command(name, body)
    assert result["ok"] is False
    assert reason in result["error"] and "\n" not in result["error"]
    rig.live.twin.step(0)  # nothing due: the registers can only differ if the command acted
    assert (await rig.block_a(), await rig.modbus.read_registers(200, 6)) == before


def test_the_docs_list_every_command_and_parameter() -> None:
    text = (REPO / "docs" / "mqtt.md").read_text()
    commands = text[text.index("## Commands") :]
    for name, spec in COMMAND_SPECS.items():
        assert f"`{name.value}`" in commands, name
        for param in spec.params:
            if param.name != "kind" or name is not CommandName.ADD_FAULT:
                assert f'"{param.name}"' in commands, (name, param.name)


async def test_clear_energy_when_unlocked(broker: Broker, start_live: StartLive) -> None:
    live = await start_live(broker.port, twin={"allow_energy_reset": True})
    await connected(live)
    live.twin.step(3600)
    async with (
        Subscriber(broker.port, "minimeter/+/cmd/result") as sub,
        MeterClient(port=live.twin.port) as modbus,
    ):
        rig = Rig(live, sub, modbus)
        assert await rig.uint(0, 4) > 0
        assert (await rig.command("clear_energy"))["ok"]
        assert await rig.uint(0, 4) == 0
