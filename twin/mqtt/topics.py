"""MQTT topics and payloads as pure functions of the register map, snapshots and events.

Theory of operation
-------------------
Everything the publisher sends is computed here from values, so it is tested without a
broker. Per meter, under the prefix ``P`` (``minimeter``):

- ``P/<serial>/state``: retained JSON of the snapshot. Keys are the block A register
  names of :data:`twin.registers.map.REGISTERS` (units in the names: ``energy_delivered_wh``,
  ``power_w``), plus ``serial_number``, ``model``, ``powered``, ``meter_time_s`` (meter
  seconds since the run started), ``unix_time_s`` (wall clock at publication) and
  ``twin_conditions`` (the names of the ``twin_health`` bits set: the twin's own
  conditions, e.g. ``["store_failing"]``).
  Non-finite numbers (a power factor with no current) are ``null``.
- ``P/<serial>/event/<kind>``: one JSON message per core event (:data:`EVENT_KINDS`).
- ``P/<serial>/availability``: ``online`` / ``offline``, retained.
- ``P/<serial>/cmd/<name>`` and ``P/all/cmd/<name>``: commands in; results on
  ``P/<serial>/cmd/result`` (``P/all/cmd/result``).
- Home Assistant discovery: one retained config per entity under
  ``<ha prefix>/<component>/minimeter_<serial>/<key>/config`` (:func:`discovery_messages`).
- Tasmota (optional): ``tele/<serial>/SENSOR`` with the three pulse outputs as counters.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from operator import attrgetter
from typing import Final

from twin.core import (
    CountsCleared,
    DemandClosed,
    ErrorCleared,
    ErrorRaised,
    Event,
    Indicator,
    MaxDemandReset,
    PowerLost,
    PowerRestored,
    Snapshot,
)
from twin.errors import ConfigError
from twin.registers import (
    BY_NAME,
    EXTRA_DEFAULTS,
    Identity,
    TwinHealth,
    field_names,
    health_conditions,
)

ALL: Final = "all"  # the fleet-wide command target: P/all/cmd/<name>
RESULT: Final = "result"  # P/<serial>/cmd/result: never a command name
ONLINE: Final = "online"
OFFLINE: Final = "offline"
#: Serials go into topics and Home Assistant ids: letters, digits, '-', '_' only.
SERIAL_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]{1,32}")

#: Core event type -> topic level ``event/<kind>``. Pulse edges and per-sample
#: registration are not events a subscriber wants one message for.
EVENT_KINDS: Final[Mapping[type, str]] = {
    ErrorRaised: "error_raised",
    ErrorCleared: "error_cleared",
    PowerLost: "power_lost",
    PowerRestored: "power_restored",
    DemandClosed: "demand_closed",
    MaxDemandReset: "max_demand_reset",
    CountsCleared: "counts_cleared",
}

_SNAPSHOT_FIELDS: Final = frozenset(Snapshot.__dataclass_fields__)
#: Block A names the snapshot holds, in map order, read with one attrgetter.
STATE_REGISTERS: Final = tuple(n for n in field_names() if n in _SNAPSHOT_FIELDS)
_GET_STATE: Final = attrgetter(*STATE_REGISTERS)


def check_serial(serial: str) -> None:
    """A serial usable as a topic level and in Home Assistant ids, and not ``all``."""
    if not SERIAL_PATTERN.fullmatch(serial) or serial in (ALL, RESULT):
        raise ConfigError(
            f"--mqtt: serial number {serial!r} cannot be a topic level; expected 1..32 "
            f"letters, digits, '-' or '_' (and not {ALL!r})"
        )


def state_topic(prefix: str, serial: str) -> str:
    return f"{prefix}/{serial}/state"


def availability_topic(prefix: str, serial: str) -> str:
    return f"{prefix}/{serial}/availability"


def event_topic(prefix: str, serial: str, kind: str) -> str:
    return f"{prefix}/{serial}/event/{kind}"


def command_filter(prefix: str) -> str:
    """The one subscription: commands to any meter (and ``all``)."""
    return f"{prefix}/+/cmd/+"


def result_topic(prefix: str, target: str) -> str:
    return f"{prefix}/{target}/cmd/{RESULT}"


def tasmota_topic(serial: str) -> str:
    return f"tele/{serial}/SENSOR"


def parse_command_topic(prefix: str, topic: str) -> tuple[str, str] | None:
    """(target serial or ``all``, command name) of a command topic; None for anything else
    (results, other prefixes, deeper topics)."""
    head = prefix + "/"
    if not topic.startswith(head):
        return None
    levels = topic[len(head) :].split("/")
    if len(levels) != 3 or levels[1] != "cmd" or not levels[0] or levels[2] in ("", RESULT):
        return None
    return levels[0], levels[2]


def unknown_meter(serial: str, served: Sequence[str]) -> str:
    """The refusal of a command for a serial this twin does not serve."""
    known = ", ".join(served[:3]) + (f" ... ({len(served)} meters)" if len(served) > 3 else "")
    return f"meter {serial!r}: not served by this twin; expected {ALL!r} or one of {known}"


def _json_value(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, tuple):
        return [_json_value(v) for v in value]
    return value


def encode(payload: Mapping[str, object]) -> bytes:
    """Compact JSON (UTF-8); non-finite floats must have been made ``None`` already."""
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()


def state_payload(
    snapshot: Snapshot,
    *,
    meter_time_s: float,
    unix_time_s: float,
    extra: Mapping[str, float | int] | None = None,
) -> dict[str, object]:
    """The state message: every block A register by name, as the registers say it."""
    values = _GET_STATE(snapshot)
    out: dict[str, object] = {
        "serial_number": snapshot.serial_number,
        "model": snapshot.model,
        "powered": snapshot.powered,
        "meter_time_s": round(meter_time_s, 6),
        "unix_time_s": round(unix_time_s, 3),
    }
    for name, value in zip(STATE_REGISTERS, values, strict=True):
        out[name] = _json_value(value)
    for name, default in EXTRA_DEFAULTS.items():
        out[name] = _json_value((extra or {}).get(name, default))
    # Sent over MQTT, so connected: a word made while the broker was away says otherwise.
    health = int(int((extra or {}).get("twin_health", 0)) & ~TwinHealth.MQTT_DISCONNECTED)
    out["twin_health"], out["twin_conditions"] = health, health_conditions(health)
    return out


def event_kind(event: Event) -> str | None:
    """The ``event/<kind>`` level of a core event, None for events not published."""
    return EVENT_KINDS.get(type(event))


def event_payload(event: Event, *, serial: str, meter_time_s: float) -> dict[str, object]:
    """An event message: its kind, the meter, and the event's own fields (``time_s`` is
    the core's clock)."""
    kind = event_kind(event)
    if kind is None:
        raise ValueError(f"{type(event).__name__} events are not published")
    fields = {k: _json_value(v) for k, v in asdict(event).items()}
    return {"event": kind, "serial_number": serial, "meter_time_s": meter_time_s, **fields}


def tasmota_payload(snapshot: Snapshot, time_iso: str) -> dict[str, object]:
    """Tasmota counter telemetry: C1..C3 are the 10, 100 and 1000 Wh pulse outputs."""
    return {
        "Time": time_iso,
        "COUNTER": {
            "C1": snapshot.pulses_10wh,
            "C2": snapshot.pulses_100wh,
            "C3": snapshot.pulses_1000wh,
        },
    }


# ------------------------------------------------------------------ Home Assistant


@dataclass(frozen=True, slots=True)
class Entity:
    """One Home Assistant entity of a meter, read from one state key."""

    component: str  # "sensor" | "binary_sensor"
    key: str  # state payload key (a register name, or "powered")
    name: str
    device_class: str | None = None
    state_class: str | None = None
    line: int = 1  # 2: only on dual-element meters
    value_template: str | None = None
    entity_category: str | None = None

    @property
    def unit(self) -> str | None:
        """The register map's unit (HA has none for counts and plain numbers)."""
        reg = BY_NAME.get(self.key)
        if self.component != "sensor" or reg is None or reg.unit in ("", "count", "bits"):
            return None
        return reg.unit


_REVERSE_MASK: Final = 1 << Indicator.REVERSE_ARROW

ENTITIES: Final[tuple[Entity, ...]] = (
    Entity("sensor", "energy_delivered_wh", "Energy delivered", "energy", "total_increasing"),
    Entity("sensor", "energy_received_wh", "Energy received", "energy", "total_increasing"),
    Entity("sensor", "energy_l1_wh", "Energy L1", "energy", "total_increasing"),
    Entity("sensor", "energy_l2_wh", "Energy L2", "energy", "total_increasing", line=2),
    Entity("sensor", "power_w", "Power", "power", "measurement"),
    Entity("sensor", "power_l1_w", "Power L1", "power", "measurement"),
    Entity("sensor", "power_l2_w", "Power L2", "power", "measurement", line=2),
    Entity("sensor", "voltage_l1_v", "Voltage L1", "voltage", "measurement"),
    Entity("sensor", "voltage_l2_v", "Voltage L2", "voltage", "measurement", line=2),
    Entity("sensor", "voltage_l1_l2_v", "Voltage L1-L2", "voltage", "measurement", line=2),
    Entity("sensor", "current_l1_a", "Current L1", "current", "measurement"),
    Entity("sensor", "current_l2_a", "Current L2", "current", "measurement", line=2),
    Entity("sensor", "power_factor_l1", "Power factor L1", "power_factor", "measurement"),
    Entity("sensor", "power_factor_l2", "Power factor L2", "power_factor", "measurement", 2),
    Entity("sensor", "frequency_hz", "Frequency", "frequency", "measurement"),
    Entity("sensor", "demand_kw", "Demand", "power", "measurement"),
    Entity("sensor", "demand_max_kw", "Maximum demand", "power", "measurement"),
    Entity("sensor", "error_code", "Error code", entity_category="diagnostic"),
    Entity("sensor", "pulses_10wh", "Pulses 10 Wh", state_class="total_increasing"),
    Entity("sensor", "pulses_100wh", "Pulses 100 Wh", state_class="total_increasing"),
    Entity("sensor", "pulses_1000wh", "Pulses 1000 Wh", state_class="total_increasing"),
    Entity(
        "binary_sensor",
        "indicators",
        "Reverse arrow",
        "problem",
        value_template="{{ 'ON' if (value_json.indicators | int) | bitwise_and("
        f"{_REVERSE_MASK}) else 'OFF' }}}}",
    ),
    Entity(
        "binary_sensor",
        "powered",
        "Unpowered",
        "problem",
        value_template="{{ 'OFF' if value_json.powered else 'ON' }}",
    ),
    Entity(
        "binary_sensor",
        "twin_health",
        "Twin problem",
        "problem",
        value_template="{{ 'ON' if value_json.twin_health | int else 'OFF' }}",
        entity_category="diagnostic",
    ),
)


def ha_device_id(serial: str) -> str:
    return f"minimeter_{serial}"


def entity_id(entity: Entity) -> str:
    """The object id of an entity: its key, or what it shows for a derived binary."""
    derived = {"indicators": "reverse_arrow", "powered": "unpowered", "twin_health": "twin_problem"}
    return derived.get(entity.key, entity.key)


def discovery_messages(
    identity: Identity,
    *,
    prefix: str,
    ha_prefix: str,
    availability: Sequence[str],
) -> list[tuple[str, dict[str, object]]]:
    """(topic, config) of every Home Assistant entity of a meter, retained by the caller.

    ``availability``: the topics whose ``online`` makes the entities available (all of
    them must say so). ``unique_id`` is the serial and the key: stable across restarts.
    """
    serial = identity.serial_number
    node = ha_device_id(serial)
    device = {
        "identifiers": [node],
        "manufacturer": identity.vendor_name,
        "model": identity.model.name,
        "name": f"Mini Meter {serial}",
        "serial_number": serial,
        "sw_version": identity.firmware_version,
    }
    out: list[tuple[str, dict[str, object]]] = []
    for entity in ENTITIES:
        if entity.line > identity.model.elements:
            continue
        object_id = entity_id(entity)
        config: dict[str, object] = {
            "name": entity.name,
            "unique_id": f"{node}_{object_id}",
            "state_topic": state_topic(prefix, serial),
            "value_template": entity.value_template or f"{{{{ value_json.{entity.key} }}}}",
            "availability": [{"topic": t} for t in availability],
            "availability_mode": "all",
            "payload_available": ONLINE,
            "payload_not_available": OFFLINE,
            "device": device,
        }
        if entity.component == "binary_sensor":
            config["payload_on"], config["payload_off"] = "ON", "OFF"
        for key, value in (
            ("device_class", entity.device_class),
            ("state_class", entity.state_class),
            ("unit_of_measurement", entity.unit),
            ("entity_category", entity.entity_category),
        ):
            if value is not None:
                config[key] = value
        out.append((f"{ha_prefix}/{entity.component}/{node}/{object_id}/config", config))
    return out


def fleet_discovery(
    identities: Sequence[Identity], *, prefix: str, ha_prefix: str
) -> list[tuple[str, bytes]]:
    """Every meter's discovery configs, encoded. A meter is available while its own
    availability topic and the first meter's (which carries the last will) say so."""
    head = availability_topic(prefix, identities[0].serial_number)
    out: list[tuple[str, bytes]] = []
    for identity in identities:
        own = availability_topic(prefix, identity.serial_number)
        configs = discovery_messages(
            identity,
            prefix=prefix,
            ha_prefix=ha_prefix,
            availability=[own] if own == head else [own, head],
        )
        out += [(topic, encode(config)) for topic, config in configs]
    return out
