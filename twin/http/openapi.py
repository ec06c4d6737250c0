"""The OpenAPI 3.1 document, generated from the routes, the commands and the register map.

Nothing here is written by hand twice: paths and methods come from
`twin.http.app.ROUTES`; each command gets its own path under
``/api/meters/{serial}/commands/`` and ``/api/commands/`` with the request body
control's `COMMAND_SPECS` describe; the snapshot schema lists every register the map
defines (block B identity, block A live values, block C settings) with its unit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from twin.control import COMMAND_SPECS, CommandName
from twin.http.views import IDENTITY_FIELDS, LIVE_FIELDS, SETTING_FIELDS
from twin.modbus import FaultKind
from twin.registers import BY_NAME

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Route:
    """One route: served by the app and described by the OpenAPI document."""

    method: str
    path: str
    handler: Handler
    summary: str
    responses: tuple[int, ...] = (200,)
    body: str | None = None  # "command" (a command body) | "fault" | None
    query: tuple[str, ...] = ()  # query parameter names (documented in openapi)
    write: bool = False  # needs the bearer token when one is configured
    tags: tuple[str, ...] = field(default=("api",))


OPENAPI_VERSION = "3.1.0"
API_VERSION = "1"
_STATUS_TEXT = {
    200: "OK",
    400: "The body is not JSON",
    401: "A valid bearer token is required for writes",
    404: "No such meter or fault",
    422: "Refused: the reason names what was wrong and what was expected",
    503: "Too many open streams",
}
_REF = "#/components/schemas/"


def _register_schema(name: str) -> dict[str, Any]:
    reg = BY_NAME[name]
    if reg.kind == "string":
        schema: dict[str, Any] = {"type": "string"}
    elif reg.kind == "float32":
        schema = {"type": ["number", "null"]}
    else:
        schema = {"type": "integer", "minimum": 0}
    unit = f" [{reg.unit}]" if reg.unit else ""
    schema["description"] = f"{reg.description}{unit} (register {reg.address})"
    if reg.unit:
        schema["x-unit"] = reg.unit
    return schema


def _snapshot_schema() -> dict[str, Any]:
    props: dict[str, Any] = {name: _register_schema(name) for name in IDENTITY_FIELDS}
    props["model"] = {"type": "string", "description": "model name, e.g. MMD-200A"}
    props["powered"] = {"type": "boolean", "description": "the meter has supply voltage"}
    props.update({name: _register_schema(name) for name in (*LIVE_FIELDS, *SETTING_FIELDS)})
    return {
        "type": "object",
        "description": "One meter's registers by their register-map names",
        "properties": props,
        "required": list(props),
    }


def _schemas() -> dict[str, Any]:
    nullable_str = {"type": ["string", "null"]}
    return {
        "Snapshot": _snapshot_schema(),
        "Result": {
            "type": "object",
            "description": "A command's outcome (the same shape as over MQTT)",
            "properties": {
                "ok": {"type": "boolean"},
                "command": {"type": "string"},
                "id": {**nullable_str, "description": "the X-Request-Id header, echoed"},
                "error": {**nullable_str, "description": "why it was refused"},
                "data": {"type": "object", "description": "what an applied command returns"},
            },
            "required": ["ok", "command", "id", "error"],
        },
        "Meter": {
            "type": "object",
            "properties": {
                "serial": {"type": "string"},
                "unit": {"type": "integer"},
                "port": {"type": ["integer", "null"]},
                "model": {"type": "string"},
                "counter_wh_per_count": {"type": "integer"},
                "profile": {"type": "string"},
                "powered": {"type": "boolean"},
                "error": {"type": "integer", "description": "the LCD's error code, 0 = none"},
                "power_w": {"type": ["number", "null"]},
                "energy_delivered_wh": {"type": "integer"},
            },
        },
        "Fault": {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "kind": {"enum": [str(k) for k in FaultKind]},
            },
            "additionalProperties": True,
        },
        "Register": {"type": "object", "additionalProperties": True},
    }


_RESPONSE_SCHEMAS = {
    "/api/meters": {"type": "array", "items": {"$ref": _REF + "Meter"}},
    "/api/meters/{serial}": {"$ref": _REF + "Snapshot"},
    "/api/faults": {"type": "array", "items": {"$ref": _REF + "Fault"}},
    "/api/registers": {"type": "array", "items": {"$ref": _REF + "Register"}},
}
_QUERY: dict[str, tuple[dict[str, Any], str]] = {
    "serial": ({"type": "string"}, "a meter's serial number"),
    "fleet": ({"enum": ["0", "1"]}, "1: also stream the fleet list"),
    "interval_s": ({"type": "number"}, "seconds between frames"),
}


def _params(path: str, route: Route) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name in ("serial", "fault_id"):
        if "{" + name + "}" in path:
            schema = {"type": "integer"} if name == "fault_id" else {"type": "string"}
            out.append({"name": name, "in": "path", "required": True, "schema": schema})
    for name in route.query:
        query_schema, doc = _QUERY[name]
        out.append({"name": name, "in": "query", "schema": query_schema, "description": doc})
    return out


def _operation(
    path: str, route: Route, summary: str, body: dict[str, Any] | None
) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status in route.responses:
        resp: dict[str, Any] = {"description": _STATUS_TEXT[status]}
        if route.body is not None or route.write:
            resp["content"] = {"application/json": {"schema": {"$ref": _REF + "Result"}}}
        elif status == 200 and path in _RESPONSE_SCHEMAS:
            resp["content"] = {"application/json": {"schema": _RESPONSE_SCHEMAS[path]}}
        elif status == 200 and path == "/api/stream":
            resp["content"] = {"text/event-stream": {"schema": {"type": "string"}}}
        responses[str(status)] = resp
    op: dict[str, Any] = {
        "summary": summary,
        "operationId": _operation_id(route.method, path),
        "tags": list(route.tags),
        "responses": responses,
    }
    params = _params(path, route)
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": False, "content": {"application/json": {"schema": body}}}
    if route.write:
        op["security"] = [{}, {"bearer": []}]
    return op


def _operation_id(method: str, path: str) -> str:
    words = [w.strip("{}") for w in path.strip("/").split("/") if w] or ["index"]
    return method.lower() + "_" + "_".join(w.replace(".", "_") for w in words)


def openapi_document(routes: Sequence[Route]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if route.body == "command":  # one concrete path per command, with its own body
            for name, spec in COMMAND_SPECS.items():
                path = route.path.replace("{name}", str(name))
                op = _operation(path, route, f"{route.summary}: {spec.doc}", spec.json_schema())
                paths.setdefault(path, {})[route.method.lower()] = op
            continue
        body = None
        if route.body == "fault":
            body = COMMAND_SPECS[CommandName.ADD_FAULT].json_schema()
        op = _operation(route.path, route, route.summary, body)
        paths.setdefault(route.path, {})[route.method.lower()] = op
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Mini Meter twin",
            "version": API_VERSION,
            "description": "The JSON API of a running minimeter twin: meters, commands "
            "(twin.control), protocol faults, the register map, a live stream and metrics.",
        },
        "paths": paths,
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
