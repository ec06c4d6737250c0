"""JSON views of the twin: snapshots by register-map name, meters, faults, events.

Field names come from the register map (`twin.registers.map`): block A names for the
live values, block C names for the settings, block B names for the identity. NaN
(a register's "not available") becomes JSON ``null``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, fields
from typing import Any

from twin.core import (
    CountsCleared,
    DemandClosed,
    ErrorCleared,
    ErrorRaised,
    Event,
    MaxDemandReset,
    PowerLost,
    PowerRestored,
    ScalarEvent,
    Snapshot,
)
from twin.http.target import MeterView
from twin.modbus import FaultSpec
from twin.registers import BY_NAME, EXTRA_DEFAULTS, Register, field_names, health_conditions

LIVE_FIELDS = tuple(field_names())
#: Block C settings, by the snapshot fields that carry them.
SETTING_FIELDS = (
    "demand_interval_min",
    "demand_subintervals",
    "demand_method",
    "demand_max_window_h",
    "registration_mode",
)
IDENTITY_FIELDS = ("serial_number", "model", "elements")
SCALAR_EVENTS: tuple[type, ...] = (
    DemandClosed,
    ErrorRaised,
    ErrorCleared,
    PowerLost,
    PowerRestored,
    MaxDemandReset,
    CountsCleared,
)
assert all(name in BY_NAME for name in SETTING_FIELDS + IDENTITY_FIELDS)


def number(value: float | int) -> float | int | None:
    """A register value for JSON: NaN and infinities are not available (null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def snapshot_json(snap: Snapshot, extra: Mapping[str, float | int] | None = None) -> dict[str, Any]:
    """One meter's registers by name (identity, every block A register, block C settings);
    ``extra``: the registers beyond the snapshot (a mirror's 70-78, twin_health 79)."""
    out: dict[str, Any] = {
        "serial_number": snap.serial_number,
        "model": snap.model,
        "elements": snap.elements,
        "powered": snap.powered,
    }
    for name in LIVE_FIELDS:
        value = getattr(snap, name, None)
        if value is None:
            value = (extra or {}).get(name, EXTRA_DEFAULTS[name])
        out[name] = number(value)
    out["twin_conditions"] = health_conditions(int(out["twin_health"]))
    out.update((name, int(getattr(snap, name))) for name in SETTING_FIELDS)
    return out


def meter_json(meter: MeterView, ports: Mapping[int, int]) -> dict[str, Any]:
    """A fleet list row: who the meter is and how it is doing (``ports``: configured TCP
    port -> the port listened on, which differs for port 0)."""
    spec, snap = meter.spec, meter.snapshot
    return {
        "serial": meter.serial,
        "unit": spec.unit,
        "port": None if spec.port is None else ports.get(spec.port, spec.port),
        "model": spec.model.name,
        "counter_wh_per_count": spec.model.counter_wh_per_count,
        "profile": spec.profile,
        "powered": snap.powered,
        "error": snap.error_code,
        "power_w": number(snap.power_w),
        "energy_delivered_wh": snap.energy_delivered_wh,
    }


def fault_json(fault_id: int, spec: FaultSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"id": fault_id}
    for f in fields(spec):
        value = getattr(spec, f.name)
        if isinstance(value, frozenset):
            value = sorted(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def register_json(reg: Register) -> dict[str, Any]:
    return {
        "name": reg.name,
        "address": reg.address,
        "count": reg.count,
        "type": reg.kind,
        "unit": reg.unit,
        "description": reg.description,
        "block": reg.block,
        "writable": reg.writable,
    }


def event_json(serial: str, event: ScalarEvent) -> dict[str, Any]:
    body = {k: number(v) if isinstance(v, float) else v for k, v in asdict(event).items()}
    return {"type": type(event).__name__, "serial": serial, **body}


def scalar_events(events: list[Event]) -> list[ScalarEvent]:
    """The one-moment events of a batch (pulse edges and registrations are per block)."""
    return [e for e in events if isinstance(e, SCALAR_EVENTS)]  # type: ignore[misc]
