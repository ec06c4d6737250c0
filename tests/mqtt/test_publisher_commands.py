"""Commands over MQTT against a real Mosquitto: topics, correlation, MQTT 5 response
topics, refusals before and inside `twin.control`, what is ignored."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from tests.helpers import Broker, Received, Subscriber
from tests.mqtt.conftest import Live
from twin.control import WRITES_LOCKED

StartLive = Callable[..., Awaitable[Live]]


async def connected(live: Live) -> None:
    for _ in range(500):
        if live.publisher.connected:
            await asyncio.sleep(0.05)  # the command subscription follows the CONNACK
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never connected: {live.publisher.last_error}")


def on(topic: str) -> Callable[[Received], bool]:
    return lambda m: m.topic == topic


async def test_a_command_runs_and_its_result_echoes_the_correlation_id(
    broker: Broker, start_live: StartLive
) -> None:
    live = await start_live(broker.port)
    meter = live.twin.meters[0]
    live.twin.step(3600)
    assert meter.snapshot.pulses_10wh > 0
    await connected(live)
    async with Subscriber(broker.port, "minimeter/+/cmd/result") as sub:
        topic = f"minimeter/{meter.serial}/cmd/clear_pulses"
        await sub.publish(topic, '{"correlation_id": "r-1"}')
        result = await sub.wait_for(on(f"minimeter/{meter.serial}/cmd/result"))
    assert result.json() == {"ok": True, "command": "clear_pulses", "id": "r-1", "error": None}
    assert meter.snapshot.pulses_10wh == 0


async def test_fleet_commands_go_to_every_meter(broker: Broker, start_live: StartLive) -> None:
    live = await start_live(broker.port, meters=3)
    live.twin.step(3600)
    assert all(m.snapshot.pulses_10wh > 0 for m in live.twin.meters)
    await connected(live)
    async with Subscriber(broker.port, "minimeter/all/cmd/result") as sub:
        await sub.publish("minimeter/all/cmd/clear_pulses", b"")
        result = await sub.wait_for(on("minimeter/all/cmd/result"))
    assert result.json()["ok"] is True and result.json()["id"] is None
    assert [m.snapshot.pulses_10wh for m in live.twin.meters] == [0, 0, 0]


async def test_mqtt5_response_topic_and_correlation_data(
    broker: Broker, start_live: StartLive
) -> None:
    live = await start_live(broker.port)
    serial = live.twin.meters[0].serial
    await connected(live)
    async with Subscriber(broker.port, "rig/replies", "minimeter/+/cmd/result") as sub:
        await sub.publish(
            f"minimeter/{serial}/cmd/clear_pulses",
            "{}",
            response_topic="rig/replies",
            correlation_data=b"\x01corr",
        )
        reply = await sub.wait_for(on("rig/replies"))
        default = await sub.wait_for(on(f"minimeter/{serial}/cmd/result"))
    assert reply.correlation_data == b"\x01corr" == default.correlation_data
    assert reply.json()["ok"] is True and reply.json()["id"] == "\x01corr"


async def test_malformed_payloads_are_refused_before_anything_runs(
    broker: Broker, start_live: StartLive
) -> None:
    live = await start_live(broker.port)
    meter = live.twin.meters[0]
    live.twin.step(3600)
    before = meter.snapshot
    await connected(live)
    topic = f"minimeter/{meter.serial}/cmd/result"
    async with Subscriber(broker.port, topic) as sub:
        for payload, reason in (
            (b"{not json", "not JSON"),
            (b"[1, 2]", "expected a JSON object"),
            (b'{"correlation_id": [1]}', "correlation_id: expected a string or an integer"),
        ):
            await sub.publish(f"minimeter/{meter.serial}/cmd/clear_pulses", payload)
            refused = await sub.wait_for(on(topic), after=len(sub.messages))
            assert refused.json()["ok"] is False and reason in refused.json()["error"]
            assert refused.json()["command"] == "clear_pulses"
    assert meter.snapshot == before  # nothing ran


async def test_writes_locked_refuses_every_command(broker: Broker, start_live: StartLive) -> None:
    live = await start_live(broker.port, twin={"allow_writes": False})
    meter = live.twin.meters[0]
    live.twin.step(3600)
    before = meter.snapshot
    await connected(live)
    async with Subscriber(broker.port, "minimeter/+/cmd/result") as sub:
        await sub.publish(f"minimeter/{meter.serial}/cmd/clear_pulses", '{"correlation_id": 1}')
        refused = await sub.wait_for(on(f"minimeter/{meter.serial}/cmd/result"))
    assert refused.json() == {
        "ok": False,
        "command": "clear_pulses",
        "id": "1",
        "error": f"clear_pulses: {WRITES_LOCKED}",
    }
    assert meter.snapshot == before


async def test_other_serials_results_and_retained_commands_are_ignored(
    broker: Broker, start_live: StartLive
) -> None:
    async with Subscriber(broker.port, "minimeter/#") as sub:
        # Retained before the twin connects: the broker hands it over on subscription,
        # flagged retained, and a stale command must not act (again).
        await sub.publish("minimeter/MM00000001/cmd/clear_pulses", "{}", retain=True)
        live = await start_live(broker.port)
        meter = live.twin.meters[0]
        live.twin.step(3600)
        pulses = meter.snapshot.pulses_10wh
        await connected(live)
        await sub.publish("minimeter/MM99999999/cmd/clear_pulses", "{}")  # another twin's
        await sub.publish(f"minimeter/{meter.serial}/cmd/result", '{"ok": true}')
        await sub.publish(f"minimeter/{meter.serial}/cmd/reset_max_demand", "{}")  # a marker
        await sub.wait_for(lambda m: m.topic.endswith("/cmd/result") and "command" in m.json())
    results = [m.json().get("command") for m in sub.messages if m.topic.endswith("/cmd/result")]
    assert results == [None, "reset_max_demand"]  # the published fake, then the marker
    assert meter.snapshot.pulses_10wh == pulses > 0
