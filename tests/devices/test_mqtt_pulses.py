"""Pulses over MQTT through a real Mosquitto on 127.0.0.1 (started by a fixture)."""

from __future__ import annotations

import json

import aiomqtt

from devices import (
    CounterEvent,
    open_sink,
    open_source,
)
from tests.helpers import find_free_port, next_reading


async def publish(port: int, topic: str, payloads: list[str]) -> None:
    async with aiomqtt.Client("127.0.0.1", port=port) as client:
        for payload in payloads:
            await client.publish(topic, payload, qos=1)


def tasmota(count: int) -> str:
    return json.dumps({"Time": "2024-01-01T00:00:00", "COUNTER": {"C1": count, "C2": 7}})


async def test_tasmota_counter_telemetry_counts_across_a_reboot(mosquitto: int) -> None:
    url = f"mqtt-tasmota://127.0.0.1:{mosquitto}/tasmota_4F2A?counter=C1&kh=10"
    async with open_source(url) as source:
        await publish(mosquitto, "tele/tasmota_4F2A/SENSOR", [tasmota(120), tasmota(126)])
        baseline, step = await next_reading(source), await next_reading(source)
        # Telemetry without our counter (or not JSON) is skipped and explained.
        await publish(
            mosquitto,
            "tele/tasmota_4F2A/SENSOR",
            ['{"Time": "x", "ANALOG": {"A0": 3}}', "not json", tasmota(0), tasmota(4)],
        )
        reboot, after = await next_reading(source), await next_reading(source)
    assert (baseline.event, baseline.raw_counter) == (CounterEvent.BASELINE, 120)
    assert (step.counts, step.energy_wh) == (6, 60.0)
    assert (reboot.event, reboot.counts) == (CounterEvent.RESET, 0)
    assert (after.counts, after.total_counts) == (4, 10)
    assert source.last_error is None  # cleared by the good messages after the bad ones


async def test_esphome_total_sensor(mosquitto: int) -> None:
    topic = "meter/sensor/pulses_total/state"
    async with open_source(f"mqtt-esphome://127.0.0.1:{mosquitto}/{topic}?kh=100") as source:
        await publish(mosquitto, topic, ["1000", "1003.0"])
        await next_reading(source)
        step = await next_reading(source)
    assert (step.counts, step.total_counts, step.energy_wh) == (3, 3, 300.0)


async def test_edge_json_sink_to_source_with_the_senders_clock(mosquitto: int) -> None:
    base = f"mqtt-edges://127.0.0.1:{mosquitto}/rig/meter1/pulses"
    async with (
        open_source(f"{base}?kh=10&stamp=sender") as source,
        open_sink(base) as sink,
    ):
        for t in (10.0, 20.0, 30.0):
            await sink.drive(True, at_s=t)
            await sink.drive(False, at_s=t + 5)
        readings = [await next_reading(source) for _ in range(3)]
    assert [(r.at_s, r.total_counts) for r in readings] == [(10.0, 1), (20.0, 2), (30.0, 3)]
    assert sink.closures == 3


async def test_edge_json_timed_on_arrival_carries_the_latency(mosquitto: int) -> None:
    base = f"mqtt-edges://127.0.0.1:{mosquitto}/rig/meter2/pulses"
    async with open_source(f"{base}?kh=10&latency=250ms") as source:
        await publish(mosquitto, "rig/meter2/pulses", ['{"edge": "rising"}'])
        reading = await next_reading(source)
    assert (reading.counts, reading.uncertainty_s) == (1, 0.25)


async def test_an_unreachable_broker_makes_the_source_stale() -> None:
    url = f"mqtt-tasmota://127.0.0.1:{find_free_port()}/t1?kh=10&stale=200ms"
    async with open_source(url) as source:
        stale = await next_reading(source)
    assert stale.event is CounterEvent.STALE
    assert source.last_error is not None and "mqtt://127.0.0.1" in source.last_error
