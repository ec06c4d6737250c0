"""The publisher against a real Mosquitto: state, availability, discovery, events."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from tests.helpers import Broker, Subscriber
from tests.mqtt.conftest import Live
from twin.modbus.client import MeterClient, decode_uint
from twin.mqtt import topics
from twin.registers import TwinHealth

StartLive = Callable[..., Awaitable[Live]]


async def test_state_matches_the_modbus_registers_at_the_same_meter_time(
    broker: Broker, start_live: StartLive
) -> None:
    async with Subscriber(broker.port, "minimeter/#") as sub:
        live = await start_live(broker.port)
        serial = live.twin.meters[0].serial
        live.twin.step(3600)  # the default profile's night: L1 250 W + L2 180 W
        state = await sub.wait_for(
            lambda m: m.topic == f"minimeter/{serial}/state" and m.json()["meter_time_s"] == 3600
        )
        async with MeterClient(port=live.twin.port) as client:
            words = await client.read_registers(0, 16)
        body = state.json()
        assert body["energy_delivered_wh"] == decode_uint(words[0:4])
        assert body["energy_l1_wh"] == decode_uint(words[8:12])
        assert body["energy_l2_wh"] == decode_uint(words[12:16])
        # Independently of the core: 430 W for an hour, less the 5 s boot.
        assert 425 <= body["energy_delivered_wh"] <= 430
        assert abs(body["power_w"] - 430) < 1 and abs(body["voltage_l1_v"] - 120) < 0.1
        assert body["serial_number"] == serial and body["model"] == "MMD-200A"
        assert body["powered"] is True
        assert set(topics.STATE_REGISTERS) <= set(body)
    async with Subscriber(broker.port, "minimeter/#") as late:  # what the broker retained
        retained = await late.wait_for(lambda m: m.topic == f"minimeter/{serial}/state")
        assert retained.retain and retained.json()["meter_time_s"] == 3600
        online = await late.wait_for(lambda m: m.topic == f"minimeter/{serial}/availability")
        assert online.payload == b"online" and online.retain


async def test_discovery_configs_are_retained_and_point_at_the_state(
    broker: Broker, start_live: StartLive
) -> None:
    live = await start_live(broker.port)
    serial = live.twin.meters[0].serial
    async with Subscriber(broker.port, "minimeter/#") as sub:
        await sub.wait_for(lambda m: m.topic.endswith("/state"))
    # A client arriving later gets every config from the broker (retained).
    async with Subscriber(broker.port, "homeassistant/#") as ha:
        energy = await ha.wait_for(lambda m: m.topic.endswith("/energy_delivered_wh/config"))
        assert energy.retain
        config = energy.json()
        assert config["state_topic"] == f"minimeter/{serial}/state"
        assert config["availability"] == [{"topic": f"minimeter/{serial}/availability"}]
        assert config["unique_id"] == f"minimeter_{serial}_energy_delivered_wh"
        await ha.wait_for(lambda m: m.topic.endswith("/unpowered/config"))


async def test_a_fleet_meter_is_available_only_while_the_twin_is(
    broker: Broker, start_live: StartLive
) -> None:
    """The last will sits on the first meter's topic: every meter's entities list it."""
    live = await start_live(broker.port, meters=2)
    first, second = (m.serial for m in live.twin.meters)
    async with Subscriber(broker.port, f"homeassistant/sensor/minimeter_{second}/+/config") as ha:
        config = (await ha.wait_for(lambda m: m.topic.endswith("/power_w/config"))).json()
    assert config["availability"] == [
        {"topic": f"minimeter/{second}/availability"},
        {"topic": f"minimeter/{first}/availability"},
    ]
    assert config["availability_mode"] == "all"


async def test_no_discovery_when_off(broker: Broker, start_live: StartLive) -> None:
    async with Subscriber(broker.port, "#") as sub:
        await start_live(broker.port, ha_discovery=False)
        await sub.wait_for(lambda m: m.topic.endswith("/state"))
        assert not [m for m in sub.messages if m.topic.startswith("homeassistant/")]


async def test_events_are_published_as_they_happen(broker: Broker, start_live: StartLive) -> None:
    async with Subscriber(broker.port, "minimeter/+/event/#") as sub:
        live = await start_live(broker.port, profile="full-load-then-faults")
        serial = live.twin.meters[0].serial
        await _until_connected(live)
        live.twin.step(1800)  # the outage runs from 20 to 25 min
        lost = await sub.wait_for(lambda m: m.topic == f"minimeter/{serial}/event/power_lost")
        back = await sub.wait_for(
            lambda m: m.topic.endswith("/event/power_restored") and m.json()["time_s"] > 0
        )
        assert abs(lost.json()["time_s"] - 1200) <= 1
        assert abs(back.json()["time_s"] - 1500) <= 1
        assert back.json()["power_up_count"] == 2
        assert lost.json()["serial_number"] == serial and not lost.retain


async def test_a_fleet_publishes_every_meter_in_one_interval(
    broker: Broker, start_live: StartLive
) -> None:
    async with Subscriber(broker.port, "minimeter/+/state") as sub:
        live = await start_live(broker.port, meters=20, interval_s=0.5)
        serials = {m.serial for m in live.twin.meters}
        first = await sub.wait_for(lambda m: True)
        start = sub.messages.index(first)
        for _ in range(19):
            await sub.wait_for(lambda m: True, after=len(sub.messages))
        got = {m.topic.split("/")[1] for m in sub.messages[start : start + 20]}
        assert got == serials  # one round: each meter once, none twice


async def test_tasmota_counters_follow_the_pulse_outputs(
    broker: Broker, start_live: StartLive
) -> None:
    async with Subscriber(broker.port, "tele/+/SENSOR", "minimeter/+/state") as sub:
        live = await start_live(broker.port, tasmota=True)
        serial = live.twin.meters[0].serial
        live.twin.step(7200)
        tele = await sub.wait_for(
            lambda m: m.topic == f"tele/{serial}/SENSOR" and m.json()["COUNTER"]["C1"] > 0
        )
    snap = live.twin.meters[0].snapshot
    assert tele.json()["COUNTER"] == {
        "C1": snap.pulses_10wh,
        "C2": snap.pulses_100wh,
        "C3": snap.pulses_1000wh,
    }
    assert not tele.retain and len(tele.json()["Time"]) == len("2026-01-01T00:00:00")


async def test_stop_publishes_offline_for_every_meter(
    broker: Broker, start_live: StartLive
) -> None:
    live = await start_live(broker.port, meters=3)
    await _until_connected(live)
    await live.publisher.stop()
    assert live.publisher.status == "disconnected"
    async with Subscriber(broker.port, "minimeter/+/availability") as sub:
        for meter in live.twin.meters:
            topic = topics.availability_topic("minimeter", meter.serial)
            m = await sub.wait_for(lambda m, t=topic: m.topic == t)
            assert m.payload == b"offline" and m.retain


async def _until_connected(live: Live) -> None:
    import asyncio

    for _ in range(500):
        if live.publisher.connected:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"publisher never connected: {live.publisher.last_error}")


async def test_a_health_change_is_published_at_once_not_at_the_next_round(
    broker: Broker, start_live: StartLive
) -> None:
    async with Subscriber(broker.port, "minimeter/+/state") as sub:
        live = await start_live(broker.port, interval_s=3600.0)  # one round an hour
        await sub.wait_for(lambda m: True, timeout_s=10)
        failing = True
        live.twin.health.watch(TwinHealth.PULSE_SINK_FAILING, lambda: failing)
        state = await sub.wait_for(lambda m: m.json()["twin_health"] != 0, timeout_s=10)
        assert state.json()["twin_conditions"] == ["pulse_sink_failing"]
        failing = False
        await sub.wait_for(lambda m: m.json()["twin_health"] == 0, after=len(sub.messages))
