"""The aiohttp application: routes as data, the JSON API handlers, auth and metrics.

Theory of operation
-------------------
:data:`ROUTES` lists every route once (method, path, handler, what it answers); the
app is built from it and so is the OpenAPI document (`twin.http.openapi`), so the two
cannot drift. Every command, whichever route carries it, goes through
`twin.control.run_command` and answers control's result shape ``{"ok", "command",
"id", "error"}`` (``id`` echoes an ``X-Request-Id`` header): 200 when applied, 422 when
refused with control's reason (unknown command, bad body, locked write), 400 for a
body that is not JSON, 404 for an unknown meter, 401 for a missing or wrong bearer
token (writes only, when a token is configured). The locks themselves are control's.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from twin.control import CommandName, Result, run_command
from twin.http.config import (
    MAX_BODY_BYTES,
    MAX_STREAM_INTERVAL_S,
    MIN_STREAM_INTERVAL_S,
    HttpConfig,
)
from twin.http.metrics import HttpMetrics
from twin.http.openapi import Handler, Route, openapi_document
from twin.http.stream import StreamClient, StreamHub
from twin.http.target import HttpTarget, MeterView
from twin.http.views import fault_json, meter_json, register_json, snapshot_json
from twin.loadprofile import shipped_names
from twin.registers import REGISTERS

STATIC_DIR = Path(__file__).parent / "static"


@dataclass(slots=True)
class AppState:
    target: HttpTarget
    config: HttpConfig
    metrics: HttpMetrics
    hub: StreamHub
    by_serial: dict[str, MeterView]


STATE = web.AppKey("minimeter", AppState)


def _state(request: web.Request) -> AppState:
    return request.app[STATE]


def _json(data: object, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda o: json.dumps(o, allow_nan=False))


def _refusal(name: str, error: str, status: int, request: web.Request) -> web.Response:
    result = Result(ok=False, command=name, error=error)
    return _json(result.as_json(request.headers.get("X-Request-Id")), status)


def _meter(request: web.Request) -> MeterView | None:
    return _state(request).by_serial.get(request.match_info["serial"])


def _no_meter(request: web.Request, name: str = "") -> web.Response:
    serial = request.match_info["serial"]
    return _refusal(
        name, f"no meter with serial {serial!r}; GET /api/meters lists them", 404, request
    )


async def _body(request: web.Request, name: str) -> dict[str, Any] | web.Response:
    """The JSON object body (empty: ``{}``), or the refusal to send instead."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return _refusal(name, f"body: not JSON ({exc}); expected a JSON object", 400, request)
    if not isinstance(body, dict):
        kind = type(body).__name__
        return _refusal(name, f"body: a JSON {kind}; expected a JSON object", 422, request)
    return body


def _command(
    request: web.Request, name: str, body: dict[str, Any], serial: str | None
) -> web.Response:
    st = _state(request)
    result = run_command(st.target, name, body, serial=serial)
    st.metrics.commands.labels(result.command, "ok" if result.ok else "refused").inc()
    return _json(result.as_json(request.headers.get("X-Request-Id")), 200 if result.ok else 422)


# ------------------------------------------------------------------ handlers


async def index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC_DIR / "index.html")


async def info(request: web.Request) -> web.StreamResponse:
    st = _state(request)
    t = st.target
    return _json(
        {
            "meters": len(t.meters),
            "writes": t.config.allow_writes,
            "energy_reset": t.config.allow_energy_reset,
            "token_required": st.config.token is not None,
            "stream_interval_s": st.config.stream_interval_s,
            "speed": t.clock.speed,
            "meter_time_s": t.meter_time_s,
            "lag_s": t.lag_s,
            "store_error": t.store_error,
            "twin_health": t.health.bits,
            "twin_conditions": t.health.conditions,
            "profiles": shipped_names(),
            "commands": [str(c) for c in CommandName],
        }
    )


async def list_meters(request: web.Request) -> web.StreamResponse:
    t = _state(request).target
    ports = {p: s.port for p, s in t.servers.items()}
    return _json([meter_json(m, ports) for m in t.meters])


async def get_meter(request: web.Request) -> web.StreamResponse:
    meter = _meter(request)
    if meter is None:
        return _no_meter(request)
    return _json(snapshot_json(meter.snapshot, meter.extra))


async def meter_command(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if _meter(request) is None:
        return _no_meter(request, name)
    body = await _body(request, name)
    if isinstance(body, web.Response):
        return body
    return _command(request, name, body, request.match_info["serial"])


async def fleet_command(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    body = await _body(request, name)
    if isinstance(body, web.Response):
        return body
    return _command(request, name, body, None)


async def list_faults(request: web.Request) -> web.StreamResponse:
    active = _state(request).target.hooks.faults.active
    return _json([fault_json(i, spec) for i, spec in active.items()])


async def add_fault(request: web.Request) -> web.StreamResponse:
    name = str(CommandName.ADD_FAULT)
    serial = request.query.get("serial")
    if serial is not None and serial not in _state(request).by_serial:
        return _refusal(
            name, f"serial={serial!r}: no such meter; GET /api/meters lists them", 404, request
        )
    body = await _body(request, name)
    if isinstance(body, web.Response):
        return body
    return _command(request, name, body, serial)


async def clear_faults(request: web.Request) -> web.StreamResponse:
    return _command(request, str(CommandName.CLEAR_FAULTS), {}, None)


async def clear_fault(request: web.Request) -> web.StreamResponse:
    fault_id = int(request.match_info["fault_id"])
    if fault_id not in _state(request).target.hooks.faults.active:
        return _refusal(
            str(CommandName.CLEAR_FAULTS),
            f"no armed fault with id {fault_id}; GET /api/faults lists them",
            404,
            request,
        )
    return _command(request, str(CommandName.CLEAR_FAULTS), {"id": fault_id}, None)


async def registers(request: web.Request) -> web.StreamResponse:
    return _json([register_json(r) for r in REGISTERS])


async def stream(request: web.Request) -> web.StreamResponse:
    st = _state(request)
    q = request.query
    serial = q.get("serial")
    if serial is not None and serial not in st.by_serial:
        return _json({"error": f"serial={serial!r}: no such meter"}, 404)
    fleet = q.get("fleet", "0") in ("1", "true", "yes")
    if serial is None and not fleet:
        fleet = True  # nothing chosen: the fleet list
    try:
        interval_s = float(q.get("interval_s", st.config.stream_interval_s))
    except ValueError:
        interval_s = float("nan")
    if not MIN_STREAM_INTERVAL_S <= interval_s <= MAX_STREAM_INTERVAL_S:
        return _json(
            {
                "error": f"interval_s={q.get('interval_s')!r}: expected "
                f"{MIN_STREAM_INTERVAL_S:g}..{MAX_STREAM_INTERVAL_S:g} s"
            },
            422,
        )
    return await st.hub.serve(request, StreamClient(serial, fleet), interval_s)


async def openapi_json(request: web.Request) -> web.StreamResponse:
    return _json(openapi_document(ROUTES))


async def metrics(request: web.Request) -> web.StreamResponse:
    from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

    body = generate_latest(_state(request).metrics.registry)
    resp = web.Response(body=body)
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return resp


ROUTES: tuple[Route, ...] = (
    Route("GET", "/", index, "The front panel page", tags=("panel",)),
    Route("GET", "/api/info", info, "What this twin serves: meter count, locks, speed"),
    Route("GET", "/api/meters", list_meters, "The fleet: one row per meter"),
    Route("GET", "/api/meters/{serial}", get_meter, "One meter's registers by name", (200, 404)),
    Route(
        "POST",
        "/api/meters/{serial}/commands/{name}",
        meter_command,
        "Run a command on one meter",
        (200, 400, 401, 404, 422),
        body="command",
        write=True,
    ),
    Route(
        "POST",
        "/api/commands/{name}",
        fleet_command,
        "Run a command on every meter (fleet-wide)",
        (200, 400, 401, 422),
        body="command",
        write=True,
    ),
    Route("GET", "/api/faults", list_faults, "The protocol faults armed now"),
    Route(
        "POST",
        "/api/faults",
        add_fault,
        "Arm a protocol fault (for one meter with ?serial=)",
        (200, 400, 401, 404, 422),
        body="fault",
        query=("serial",),
        write=True,
    ),
    Route("DELETE", "/api/faults", clear_faults, "Disarm every fault", (200, 401, 422), write=True),
    Route(
        "DELETE",
        "/api/faults/{fault_id}",
        clear_fault,
        "Disarm one fault",
        (200, 401, 404, 422),
        write=True,
    ),
    Route("GET", "/api/registers", registers, "The register map as data"),
    Route(
        "GET",
        "/api/stream",
        stream,
        "Live Server-Sent Events: meter snapshots, the fleet list, events",
        (200, 404, 422, 503),
        query=("serial", "fleet", "interval_s"),
    ),
    Route("GET", "/api/openapi.json", openapi_json, "This document"),
    Route("GET", "/metrics", metrics, "Prometheus metrics", tags=("metrics",)),
)


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bearer token on writes, and one request counter per route and status."""
    st = _state(request)
    route = request.match_info.route.resource
    name = route.canonical if route is not None else "unmatched"
    status = 500
    try:
        token = st.config.token
        if token is not None and request.method in ("POST", "DELETE", "PUT", "PATCH"):
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                resp: web.StreamResponse = _json(
                    {"ok": False, "error": "a valid bearer token is required for writes"}, 401
                )
                resp.headers["WWW-Authenticate"] = 'Bearer realm="minimeter"'
                status = 401
                return resp
        resp = await handler(request)
        status = resp.status
        return resp
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        st.metrics.requests.labels(request.method, name, str(status)).inc()


def build_app(target: HttpTarget, config: HttpConfig) -> web.Application:
    """The application for one twin (its own metrics registry and stream hub)."""
    metrics_ = HttpMetrics(target)
    by_serial = {m.serial: m for m in target.meters}
    hub = StreamHub(target, by_serial, config, metrics_)
    app = web.Application(middlewares=[_guard], client_max_size=MAX_BODY_BYTES)
    app[STATE] = AppState(target, config, metrics_, hub, by_serial)
    for r in ROUTES:
        path = r.path.replace("{fault_id}", r"{fault_id:\d+}")
        app.router.add_route(r.method, path, r.handler)
    app.router.add_static("/static", STATIC_DIR)

    async def start_hub(app: web.Application) -> None:
        hub.attach()

    async def stop_hub(app: web.Application) -> None:
        hub.detach()

    app.on_startup.append(start_hub)
    app.on_shutdown.append(stop_hub)
    return app
