"""Broker outages: the twin reconnects, republishes state, and Modbus never notices."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import pytest

from tests.helpers import Broker, Subscriber
from tests.mqtt.conftest import Live
from twin.modbus.client import MeterClient, decode_uint
from twin.mqtt.link import RECONNECT_MAX_S, backoff_s

StartLive = Callable[..., Awaitable[Live]]


async def _wait(predicate: Callable[[], bool], timeout_s: float) -> float:
    """Seconds until ``predicate()`` held (fails after ``timeout_s``)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not predicate():
        if loop.time() - start > timeout_s:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.01)
    return loop.time() - start


async def test_broker_killed_and_restarted_mid_run(
    broker: Broker, start_live: StartLive, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="twin.mqtt")
    live = await start_live(broker.port)
    serial = live.twin.meters[0].serial
    await _wait(lambda: live.publisher.connected, 5)
    polls, errors = 0, []

    async def poll() -> None:
        nonlocal polls
        async with MeterClient(port=live.twin.port) as client:
            while True:
                try:
                    await client.read_registers(0, 40)
                    polls += 1
                except Exception as exc:  # any failure is what the test looks for
                    errors.append(exc)
                await asyncio.sleep(0.01)

    poller = asyncio.create_task(poll())
    try:
        broker.kill()
        await _wait(lambda: not live.publisher.connected, 5)
        live.twin.step(600)  # the meter moves on while the broker is away
        await asyncio.sleep(1.0)
        broker.start()
        # Within 5 s of the broker's return (the backoff is capped below that).
        assert await _wait(lambda: live.publisher.connected, 5) < 5
        async with Subscriber(broker.port, f"minimeter/{serial}/state") as sub:
            await sub.wait_for(lambda m: m.json()["meter_time_s"] == 600)
        async with Subscriber(broker.port, f"minimeter/{serial}/#") as late:  # retained
            state = await late.wait_for(lambda m: m.topic.endswith("/state"))
            online = await late.wait_for(lambda m: m.topic.endswith("/availability"))
        async with MeterClient(port=live.twin.port) as client:
            energy_wh = decode_uint(await client.read_registers(0, 4))
    finally:
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller
    assert state.retain and state.json()["meter_time_s"] == 600
    assert state.json()["energy_delivered_wh"] == energy_wh
    assert online.payload == b"online" and online.retain
    assert errors == [] and polls > 50  # Modbus was served throughout
    assert live.publisher.connects == 2
    lost = [r.getMessage() for r in caplog.records if "lost" in r.getMessage()]
    assert len(lost) == 1 and "reconnecting" in lost[0]


def test_backoff_doubles_is_capped_and_jittered() -> None:
    import random

    rng = random.Random(3)
    delays = [backoff_s(n, rng) for n in range(12)]
    assert all(0 < d <= RECONNECT_MAX_S for d in delays)
    assert delays[0] <= 0.25 and 0.5 <= delays[2] <= 1.0  # doubling from 0.25 s
    assert max(delays[8:]) >= RECONNECT_MAX_S / 2  # at the cap, never below its half
    assert len(set(delays[8:])) == 4  # jittered: not in step with another twin
