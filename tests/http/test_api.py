"""The JSON API through aiohttp's test client on a real (manual-clock) twin: every
endpoint, every refusal, the OpenAPI document and /metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from openapi_spec_validator import validate
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import find_free_port
from twin.control import WRITES_LOCKED, CommandName
from twin.http import ROUTES, HttpConfig, build_app
from twin.modbus.client import ExceptionReply, MeterClient
from twin.registers.map import REGISTERS, field_names
from twin.runtime.config import TwinConfig
from twin.runtime.twin import Twin

Factory = Callable[..., Any]


@pytest.fixture
async def make_client() -> AsyncIterator[Factory]:
    opened: list[tuple[Twin, TestClient[Any, Any]]] = []

    async def make(token: str | None = None, **twin_kw: Any) -> tuple[Twin, TestClient[Any, Any]]:
        twin = Twin(TwinConfig(**{"port": 0, "speed": None, **twin_kw}))
        await twin.__aenter__()
        client = TestClient(TestServer(build_app(twin, HttpConfig(port=0, token=token))))
        await client.start_server()
        opened.append((twin, client))
        return twin, client

    yield make
    for twin, client in opened:
        await client.close()
        await twin.__aexit__(None, None, None)


async def test_meters_and_snapshot_use_register_names(make_client: Factory) -> None:
    twin, client = await make_client(meters=3)
    twin.step(60)
    meters = await (await client.get("/api/meters")).json()
    assert [m["serial"] for m in meters] == [m.serial for m in twin.meters]
    assert [m["unit"] for m in meters] == [1, 2, 3]
    assert meters[0]["port"] == twin.port  # the port listened on, not the configured 0
    snap = await (await client.get(f"/api/meters/{meters[1]['serial']}")).json()
    assert set(field_names()) <= set(snap)
    core = twin.meters[1].snapshot
    assert snap["energy_delivered_wh"] == core.energy_delivered_wh > 0
    assert snap["power_w"] == core.power_w
    assert snap["demand_interval_min"] == core.demand_interval_min
    info = await (await client.get("/api/info")).json()
    assert info["meters"] == 3 and info["writes"] is False and "default" in info["profiles"]


async def test_unknown_meter_is_404(make_client: Factory) -> None:
    _, client = await make_client(allow_writes=True)
    resp = await client.get("/api/meters/NOPE")
    assert resp.status == 404
    assert "no meter with serial 'NOPE'" in (await resp.json())["error"]
    resp = await client.post("/api/meters/NOPE/commands/reset_max_demand")
    body = await resp.json()
    assert resp.status == 404 and body["ok"] is False and body["command"] == "reset_max_demand"
    assert (await client.get("/api/stream?serial=NOPE")).status == 404


async def test_command_applies_and_modbus_sees_it(make_client: Factory) -> None:
    twin, client = await make_client(allow_writes=True)
    serial = twin.meters[0].serial
    resp = await client.post(
        f"/api/meters/{serial}/commands/inject_error",
        json={"kind": "memory"},
        headers={"X-Request-Id": "abc"},
    )
    assert resp.status == 200
    assert await resp.json() == {"ok": True, "command": "inject_error", "id": "abc", "error": None}
    twin.step(1)
    async with MeterClient(port=twin.port) as modbus:
        assert (await modbus.read_registers(52, 1))[0] == 1  # error_code: memory
    snap = await (await client.get(f"/api/meters/{serial}")).json()
    assert snap["error_code"] == 1


async def test_refusals_name_the_reason(make_client: Factory) -> None:
    twin, client = await make_client(allow_writes=True)
    url = f"/api/meters/{twin.meters[0].serial}/commands"
    resp = await client.post(f"{url}/explode")
    body = await resp.json()
    assert (
        resp.status == 422 and body["ok"] is False and "unknown command 'explode'" in body["error"]
    )
    resp = await client.post(f"{url}/inject_error", json={"kind": "gremlins"})
    body = await resp.json()
    assert resp.status == 422 and "gremlins" in body["error"]
    resp = await client.post(f"{url}/set_speed", data=b"{not json")
    assert resp.status == 400 and "not JSON" in (await resp.json())["error"]
    resp = await client.post(f"{url}/set_speed", json=[1, 2])
    assert resp.status == 422 and "expected a JSON object" in (await resp.json())["error"]
    resp = await client.post(f"{url}/clear_energy")
    assert resp.status == 422 and "--allow-energy-reset" in (await resp.json())["error"]
    assert twin.meters[0].snapshot.error_code == 0  # nothing changed


async def test_locked_writes_are_refused(make_client: Factory) -> None:
    twin, client = await make_client()  # allow_writes off
    resp = await client.post(f"/api/meters/{twin.meters[0].serial}/commands/reset_max_demand")
    body = await resp.json()
    assert resp.status == 422 and WRITES_LOCKED in body["error"]
    resp = await client.post("/api/faults", json={"spec": "silent"})
    assert resp.status == 422 and not twin.hooks.faults.active


async def test_bearer_token_guards_writes(make_client: Factory) -> None:
    twin, client = await make_client(token="s3cret", allow_writes=True)
    url = f"/api/meters/{twin.meters[0].serial}/commands/reset_max_demand"
    assert (await client.get("/api/meters")).status == 200  # reads stay open
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
        resp = await client.post(url, headers=headers)
        assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await client.delete("/api/faults")).status == 401
    resp = await client.post(url, headers={"Authorization": "Bearer s3cret"})
    assert resp.status == 200


async def test_faults_add_list_clear(make_client: Factory) -> None:
    # A fixed port: a fault narrowed to a meter names its configured port (0 would be RTU)
    twin, client = await make_client(allow_writes=True, meters=2, port=find_free_port())
    second = twin.meters[1]
    resp = await client.post(
        f"/api/faults?serial={second.serial}", json={"spec": "exception:code=4"}
    )
    body = await resp.json()
    assert resp.status == 200 and body["ok"] is True
    fault_id = body["data"]["fault_id"]
    faults = await (await client.get("/api/faults")).json()
    assert [f["id"] for f in faults] == [fault_id]
    assert faults[0]["kind"] == "exception" and faults[0]["units"] == [second.spec.unit]
    async with MeterClient(port=twin.port, unit=2) as modbus:
        with pytest.raises(ExceptionReply) as err:
            await modbus.read_registers(0, 4)
        assert err.value.code == 4
    async with MeterClient(port=twin.port, unit=1) as modbus:
        await modbus.read_registers(0, 4)  # the other meter answers
    assert (await client.post("/api/faults?serial=NOPE", json={"spec": "silent"})).status == 404
    assert (await client.post("/api/faults", json={"spec": "kaboom"})).status == 422
    assert (await client.delete("/api/faults/999")).status == 404
    assert (await client.delete(f"/api/faults/{fault_id}")).status == 200
    assert await (await client.get("/api/faults")).json() == []
    await client.post("/api/faults", json={"kind": "delay", "ms": 5})
    assert (await client.delete("/api/faults")).status == 200
    assert not twin.hooks.faults.active


async def test_fleet_wide_command(make_client: Factory) -> None:
    twin, client = await make_client(allow_writes=True, meters=2)
    resp = await client.post("/api/commands/inject_error", json={"kind": "calibration"})
    assert resp.status == 200
    twin.step(1)
    assert [m.snapshot.error_code for m in twin.meters] == [2, 2]
    resp = await client.post("/api/commands/set_speed", json={"speed": 10})
    assert resp.status == 422 and "manual" in (await resp.json())["error"]


async def test_registers_are_the_map(make_client: Factory) -> None:
    _, client = await make_client()
    regs = await (await client.get("/api/registers")).json()
    assert [(r["name"], r["address"]) for r in regs] == [(r.name, r.address) for r in REGISTERS]


async def test_openapi_validates_and_lists_every_route(make_client: Factory) -> None:
    _, client = await make_client()
    doc = await (await client.get("/api/openapi.json")).json()
    validate(doc)
    listed = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    for route in ROUTES:
        if "{name}" in route.path:  # one documented path per command
            expected = {(route.path.replace("{name}", c.value), route.method) for c in CommandName}
        else:
            expected = {(route.path, route.method)}
        assert expected <= listed, route.path
    set_load = doc["paths"]["/api/meters/{serial}/commands/set_load"]["post"]
    body = set_load["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["properties"]) == {"l1", "l2", "for_s"}
    snapshot = doc["components"]["schemas"]["Snapshot"]["properties"]
    assert snapshot["energy_delivered_wh"]["x-unit"] == "Wh"


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_metrics_parse_and_move_with_traffic(make_client: Factory) -> None:
    twin, client = await make_client(allow_writes=True)
    before = _samples(await (await client.get("/metrics")).text())
    async with MeterClient(port=twin.port) as modbus:
        for _ in range(3):
            await modbus.read_registers(0, 10)
        await modbus.read_registers(0, 10, fc=4)
        with pytest.raises(ExceptionReply):
            await modbus.read_registers(9000, 2)  # outside the map: exception 02
        await client.post("/api/faults", json={"spec": "exception:code=4,count=1"})
        with pytest.raises(ExceptionReply):
            await modbus.read_registers(0, 2)
    twin.step(600)
    after = _samples(await (await client.get("/metrics")).text())

    def moved(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    # every answer counts, the fault's exception 04 too: 3 reads, exception 02, exception 04
    assert moved("minimeter_modbus_requests_total", function_code="3") == 5
    assert moved("minimeter_modbus_requests_total", function_code="4") == 1
    assert moved("minimeter_modbus_exceptions_total", function_code="3") == 2
    assert moved("minimeter_faults_fired_total", kind="exception") == 1
    serial = twin.meters[0].serial
    energy = after[("minimeter_meter_energy_delivered_wh", (("serial", serial),))]
    assert energy == twin.meters[0].snapshot.energy_delivered_wh > 0
    assert moved("minimeter_meter_time_seconds") == 600
    assert ("minimeter_step_lag_seconds", ()) in after
    assert moved("minimeter_http_requests_total", method="GET", route="/metrics", status="200") == 1
    assert moved("minimeter_http_commands_total", command="add_fault", outcome="ok") == 1
    assert ("minimeter_modbus_connections", (("port", str(twin.port)),)) in after
