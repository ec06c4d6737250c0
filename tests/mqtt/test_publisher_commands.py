"""Command plumbing over a real Mosquitto: topics, payloads, correlation, refusals.

The runner here records calls; what each command does to a meter is tested through
`twin.control` in test_commands_acceptance.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from tests.helpers import Broker, Received, Subscriber
from tests.mqtt.conftest import Live

StartLive = Callable[..., Awaitable[Live]]


async def _connected(live: Live) -> None:
    for _ in range(500):
        if live.publisher.connected:
            await asyncio.sleep(0.05)  # the command subscription follows the CONNACK
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never connected: {live.publisher.last_error}")


def _result(topic: str) -> Callable[[Received], bool]:
    return lambda m: m.topic == topic


async def test_a_command_runs_once_and_its_result_echoes_the_id(
    broker: Broker, start_live: StartLive
) -> None:
    live = await start_live(broker.port)
    serial = live.twin.meters[0].serial
    await _connected(live)
    async with Subscriber(broker.port, "minimeter/+/cmd/result") as sub:
        await sub.publish(f"minimeter/{serial}/cmd/reset_max_demand", '{"correlation_id": "r-1"}')
        result = await sub.wait_for(_result(f"minimeter/{serial}/cmd/result"))
    assert result.json() == {"ok": True, "command": "reset_max_demand", "id": "r-1", "error": None}
    assert live.runner.calls == [("reset_max_demand", {}, serial)]


async def test_fleet_commands_go_to_every_meter(broker: Broker, start_live: StartLive) -> None:
    live = await start_live(broker.port, meters=2)
    await _connected(live)
    async with Subscriber(broker.port, "minimeter/all/cmd/result") as sub:
        await sub.publish("minimeter/all/cmd/clear_pulses", b"")
        result = await sub.wait_for(_result("minimeter/all/cmd/result"))
    assert result.json()["ok"] is True and result.json()["id"] is None
    assert live.runner.calls == [("clear_pulses", {}, None)]


async def test_mqtt5_response_topic_and_correlation_data(
    broker: Broker, start_live: StartLive
) -> None:
    live = await start_live(broker.port)
    serial = live.twin.meters[0].serial
    await _connected(live)
    async with Subscriber(broker.port, "rig/replies", "minimeter/+/cmd/result") as sub:
        await sub.publish(
            f"minimeter/{serial}/cmd/clear_pulses",
            "{}",
            response_topic="rig/replies",
            correlation_data=b"\x01corr",
        )
        reply = await sub.wait_for(_result("rig/replies"))
        default = await sub.wait_for(_result(f"minimeter/{serial}/cmd/result"))
    assert reply.correlation_data == b"\x01corr" == default.correlation_data
    assert reply.json()["ok"] is True and reply.json()["id"] == "\x01corr"


async def test_malformed_and_unknown_commands_are_refused_with_a_reason(
    broker: Broker, start_live: StartLive
) -> None:
    live = await start_live(broker.port)
    serial = live.twin.meters[0].serial
    await _connected(live)
    topic = f"minimeter/{serial}/cmd/result"
    async with Subscriber(broker.port, topic) as sub:
        for payload, reason in (
            (b"{not json", "not JSON"),
            (b"[1, 2]", "expected a JSON object"),
            (b'{"correlation_id": [1]}', "correlation_id: expected a string or an integer"),
        ):
            await sub.publish(f"minimeter/{serial}/cmd/clear_pulses", payload)
            refused = await sub.wait_for(_result(topic), after=len(sub.messages))
            assert refused.json()["ok"] is False and reason in refused.json()["error"]
            assert refused.json()["command"] == "clear_pulses"
        assert live.runner.calls == []  # refused before anything ran
        await sub.publish(f"minimeter/{serial}/cmd/warp_drive", '{"correlation_id": 7}')
        unknown = await sub.wait_for(_result(topic), after=len(sub.messages))
    assert unknown.json() == {
        "ok": False,
        "command": "warp_drive",
        "id": "7",
        "error": "unknown command 'warp_drive'",
    }


async def test_other_serials_results_and_retained_commands_are_ignored(
    broker: Broker, start_live: StartLive
) -> None:
    async with Subscriber(broker.port, "minimeter/#") as sub:
        # Retained before the twin connects: the broker hands it over on subscription,
        # flagged retained, and a stale command must not act (again).
        await sub.publish("minimeter/MM00000001/cmd/clear_pulses", "{}", retain=True)
        live = await start_live(broker.port)
        serial = live.twin.meters[0].serial
        await _connected(live)
        await sub.publish("minimeter/MM99999999/cmd/clear_pulses", "{}")  # another twin's
        await sub.publish(f"minimeter/{serial}/cmd/result", '{"ok": true}')
        await sub.publish(f"minimeter/{serial}/cmd/reset_max_demand", "{}")  # a marker
        await sub.wait_for(lambda m: m.topic.endswith("/cmd/result") and m.json().get("command"))
    assert live.runner.calls == [("reset_max_demand", {}, serial)]
