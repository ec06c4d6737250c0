"""The twin's own conditions (``twin_health``, register 79) on every channel at once.

A twin on a manual clock with a probe the test sets and clears (what ``minimeter run
--pulse-out`` adds for its sink), and one with ``--mqtt`` pointing at a port nobody
listens on: register 79 of every meter over Modbus, the HTTP state, ``/api/info`` and
``/metrics`` say the same, and clear together. The meter's own status bits and error
code never change for it (a failing twin is not a failing meter).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import find_free_port, until
from twin.http import HttpConfig, build_app
from twin.modbus.client import MeterClient
from twin.mqtt import MqttConfig
from twin.registers import BY_NAME, TwinHealth, health_conditions
from twin.runtime.config import TwinConfig
from twin.runtime.twin import Twin

HEALTH = BY_NAME["twin_health"].address
Factory = Callable[..., Any]


@pytest.fixture
async def make_client() -> AsyncIterator[Factory]:
    opened: list[tuple[Twin, TestClient[Any, Any]]] = []

    async def make(**twin_kw: Any) -> tuple[Twin, TestClient[Any, Any]]:
        twin = Twin(TwinConfig(**{"port": 0, "speed": None, **twin_kw}))
        await twin.__aenter__()
        client = TestClient(TestServer(build_app(twin, HttpConfig(port=0))))
        await client.start_server()
        opened.append((twin, client))
        return twin, client

    yield make
    for twin, client in opened:
        await client.close()
        await twin.__aexit__(None, None, None)


async def _words(modbus: MeterClient) -> list[int]:
    """Register 79 of units 1, 2 and 3."""
    out = []
    for unit in (1, 2, 3):
        modbus.unit = unit
        out.append(await modbus.read_uint(HEALTH, 1))
    modbus.unit = 1
    return out


async def _conditions(client: TestClient[Any, Any]) -> dict[str, float]:
    text = await (await client.get("/metrics")).text()
    return {
        sample.labels["condition"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "minimeter_twin_condition"
        for sample in family.samples
    }


async def test_a_condition_shows_on_every_channel_and_clears(make_client: Factory) -> None:
    twin, client = await make_client(meters=3)
    twin.step(60)
    failing = False
    twin.health.watch(TwinHealth.PULSE_SINK_FAILING, lambda: failing)
    async with MeterClient(port=twin.port) as modbus:
        status_before = await modbus.read_registers(50, 3)  # status_bits, error_code
        assert await _words(modbus) == [0, 0, 0]
        failing = True
        await until(lambda: twin.health.bits != 0, "the poll")
        bit = int(TwinHealth.PULSE_SINK_FAILING)
        assert await _words(modbus) == [bit] * 3
        assert await modbus.read_registers(50, 3) == status_before  # the meter's own: unchanged
        serial = twin.meters[2].serial
        snap = await (await client.get(f"/api/meters/{serial}")).json()
        assert snap["twin_health"] == bit and snap["twin_conditions"] == ["pulse_sink_failing"]
        info = await (await client.get("/api/info")).json()
        assert info["twin_health"] == bit and info["twin_conditions"] == ["pulse_sink_failing"]
        metrics = await _conditions(client)
        assert metrics["pulse_sink_failing"] == 1.0 and metrics["store_failing"] == 0.0
        assert set(metrics) == {str(f.name).lower() for f in TwinHealth}
        failing = False
        await until(lambda: twin.health.bits == 0, "the poll")
        assert await _words(modbus) == [0, 0, 0]
        twin.step(60)  # a rebuilt image keeps the word
        assert await modbus.read_uint(HEALTH, 1) == 0
    info = await (await client.get("/api/info")).json()
    assert info["twin_conditions"] == []


async def test_an_unreachable_broker_sets_mqtt_disconnected(make_client: Factory) -> None:
    mqtt = MqttConfig(host="127.0.0.1", port=find_free_port())  # nobody listens there
    twin, client = await make_client(mqtt=mqtt)
    await until(lambda: twin.health.bits != 0, "the poll")
    async with MeterClient(port=twin.port) as modbus:
        assert await modbus.read_uint(HEALTH, 1) == TwinHealth.MQTT_DISCONNECTED
    twin.step(3600)  # the image rebuilt as the meter steps: the word stays
    async with MeterClient(port=twin.port) as modbus:
        assert await modbus.read_uint(HEALTH, 1) == TwinHealth.MQTT_DISCONNECTED
    info = await (await client.get("/api/info")).json()
    assert info["twin_conditions"] == ["mqtt_disconnected"]


def test_condition_names_follow_the_bits() -> None:
    assert health_conditions(0) == []
    both = TwinHealth.STORE_FAILING | TwinHealth.LAGGING
    assert health_conditions(both) == ["store_failing", "lagging"]


async def test_a_failing_probe_is_logged_and_the_others_go_on(
    make_client: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    twin, _ = await make_client()

    def broken() -> bool:
        raise RuntimeError("probe bug")

    remove = twin.health.watch(TwinHealth.PULSE_SINK_FAILING, broken)
    await until(lambda: "a probe failed" in caplog.text, "the log line")
    assert twin.health.bits == 0
    remove()
    twin.health.watch(TwinHealth.PULSE_SINK_FAILING, lambda: True)
    await until(lambda: twin.health.bits == TwinHealth.PULSE_SINK_FAILING, "the poll again")
