"""The live stream: frames and events arrive; a client that does not read holds a bounded
queue (old events dropped and counted), and nobody waits for it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from twin.http import HttpConfig, build_app
from twin.http.app import STATE
from twin.http.config import STREAM_EVENTS_MAX
from twin.runtime.config import TwinConfig
from twin.runtime.twin import Twin


@pytest.fixture
async def served() -> AsyncIterator[tuple[Twin, TestClient[Any, Any]]]:
    async with Twin(TwinConfig(port=0, speed=None, meters=2, allow_writes=True)) as twin:
        client = TestClient(TestServer(build_app(twin, HttpConfig(port=0))))
        await client.start_server()
        try:
            yield twin, client
        finally:
            await client.close()


async def _next_event(resp: ClientResponse, kind: str) -> dict[str, Any]:
    """The data of the next SSE message of ``kind``."""
    event = None
    while True:
        line = (await asyncio.wait_for(resp.content.readline(), 10)).decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event == kind:
            data: dict[str, Any] = json.loads(line[6:])
            return data


async def test_stream_sends_snapshots_fleet_and_events(
    served: tuple[Twin, TestClient[Any, Any]],
) -> None:
    twin, client = served
    serial = twin.meters[1].serial
    resp = await client.get(f"/api/stream?serial={serial}&fleet=1&interval_s=0.05")
    assert resp.status == 200 and resp.headers["Content-Type"] == "text/event-stream"
    fleet = await _next_event(resp, "fleet")
    assert [m["serial"] for m in fleet["meters"]] == [m.serial for m in twin.meters]
    twin.step(120)
    while (frame := await _next_event(resp, "meter"))["meter_time_s"] < 120:
        pass
    assert frame["serial"] == serial
    assert frame["snapshot"]["energy_delivered_wh"] == twin.meters[1].snapshot.energy_delivered_wh
    await client.post(f"/api/meters/{serial}/commands/inject_error", json={"kind": "memory"})
    twin.step(1)
    raised: list[dict[str, Any]] = []
    while not raised:
        batch = await _next_event(resp, "events")
        raised = [e for e in batch["events"] if e["type"] == "ErrorRaised"]
    assert raised[0]["serial"] == serial and raised[0]["code"] == 1
    resp.close()


async def test_bad_stream_requests(served: tuple[Twin, TestClient[Any, Any]]) -> None:
    _, client = served
    assert (await client.get("/api/stream?interval_s=0")).status == 422
    assert (await client.get("/api/stream?interval_s=soon")).status == 422


async def test_a_client_that_never_reads_costs_a_bounded_queue(
    served: tuple[Twin, TestClient[Any, Any]],
) -> None:
    twin, client = served
    hub = client.server.app[STATE].hub
    serial = twin.meters[0].serial
    # A raw socket that asks for the stream and then never reads a byte.
    _reader, writer = await asyncio.open_connection(client.host, client.port)
    request = f"GET /api/stream?serial={serial}&interval_s=0.05 HTTP/1.1\r\nHost: x\r\n\r\n"
    writer.write(request.encode())
    await writer.drain()
    for _ in range(100):
        if hub.clients:
            break
        await asyncio.sleep(0.02)
    assert len(hub.clients) == 1
    url = f"/api/meters/{serial}/commands"
    for _ in range(STREAM_EVENTS_MAX):  # two events per round: raised, cleared
        await client.post(f"{url}/inject_error", json={"kind": "memory"})
        twin.step(1)
        await client.post(f"{url}/clear_error", json={"kind": "memory"})
        twin.step(1)
    (stalled,) = hub.clients
    assert len(stalled.events) <= STREAM_EVENTS_MAX
    # The meter kept stepping and a reading client is served meanwhile.
    assert twin.meter_time_s == 2 * STREAM_EVENTS_MAX
    resp = await client.get(f"/api/stream?serial={serial}&interval_s=0.05")
    frame = await _next_event(resp, "meter")
    assert frame["meter_time_s"] == twin.meter_time_s
    resp.close()
    writer.close()
