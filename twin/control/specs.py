"""Each command's parameters as data: validation, the OpenAPI document and the MQTT
docs all derive from :data:`COMMAND_SPECS`.

A :class:`ParamSpec` gives a body key's JSON type, unit, range, choices and whether it
is required; an ``object`` parameter lists its own fields. Ranges are taken from where
the rule lives (the core's input limits, its enums, the register map's descriptions),
never written twice: the demand settings carry the register map's description and
the core's limits, and the rule across them (subintervals dividing the interval) is
the core's `validate_demand_settings`, checked at execution against the meter's
present settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from types import MappingProxyType
from typing import Final

from twin.control.commands import CommandName
from twin.core import (
    ABSOLUTE_MAX_CURRENT_A,
    ABSOLUTE_MAX_VOLTAGE_V,
    CALIBRATION_ERROR_RANGE_PCT,
    DEFAULT_CALIBRATION_ERROR_PCT,
    DEMAND_INTERVAL_RANGE_MIN,
    DEMAND_MAX_WINDOW_RANGE_H,
    DEMAND_SUBINTERVALS_RANGE,
    DemandMethod,
    MeterErrorKind,
    RegistrationMode,
)
from twin.modbus.faults import FaultKind
from twin.registers import BY_NAME

MAX_SPEED: Final = 1e7  # meter seconds per wall second: the fastest clock a twin runs
MAX_OVERRIDE_S: Final = 1e9  # a load override's longest duration (~31 years of meter time)
MIN_OVERRIDE_S: Final = 0.001  # ... and its shortest (the shortest sample)


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One key of a command body."""

    name: str
    json_type: str  # "number" | "integer" | "boolean" | "string" | "object"
    doc: str
    unit: str = ""
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False  # minimum itself is refused (a speed of 0)
    required: bool = False
    nullable: bool = False
    choices: tuple[str | int, ...] = ()
    fields: tuple[ParamSpec, ...] = ()  # an "object" parameter's own keys
    default: object = None

    @property
    def range(self) -> tuple[float | None, float | None]:
        return self.minimum, self.maximum

    def json_schema(self) -> dict[str, object]:
        """This parameter as a JSON Schema (OpenAPI 3.1) property."""
        schema: dict[str, object] = {"description": self.doc}
        schema["type"] = [self.json_type, "null"] if self.nullable else self.json_type
        if self.unit:
            schema["x-unit"] = self.unit
        if self.minimum is not None:
            key = "exclusiveMinimum" if self.exclusive_minimum else "minimum"
            schema[key] = self.minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        if self.choices:
            schema["enum"] = list(self.choices)
        if self.default is not None:
            schema["default"] = self.default
        if self.fields:  # its own keys; the type (maybe nullable) stays as set above
            schema.update({**_object_schema(self.fields, open_body=False), "type": schema["type"]})
        return schema


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One command: its name, a one-line doc, its body's parameters."""

    name: CommandName
    doc: str
    params: tuple[ParamSpec, ...] = ()
    # add_fault: keys beyond `params` go to the fault parser (twin.modbus.faults)
    open_body: bool = False

    def param(self, name: str) -> ParamSpec:
        return next(p for p in self.params if p.name == name)

    def json_schema(self) -> dict[str, object]:
        """The body as a JSON Schema object (OpenAPI request body, MQTT payload docs)."""
        return {"description": self.doc, **_object_schema(self.params, self.open_body)}


def _object_schema(params: tuple[ParamSpec, ...], open_body: bool) -> dict[str, object]:
    schema: dict[str, object] = {
        "type": "object",
        "properties": {p.name: p.json_schema() for p in params},
        "additionalProperties": open_body,
    }
    required = [p.name for p in params if p.required]
    if required:
        schema["required"] = required
    return schema


def _enum_choices(enum: type[IntEnum]) -> tuple[str | int, ...]:
    return tuple(int(m) for m in enum)


def _enum_doc(enum: type[IntEnum]) -> str:
    return ", ".join(f"{int(m)} {m.name.lower()}" for m in enum)


def _register_param(
    name: str, enum: type[IntEnum] | None = None, limits: tuple[int, int] | None = None
) -> ParamSpec:
    """A block-C setting: documented by the register map, ranged by the core's limits."""
    reg = BY_NAME[name]
    low, high = limits if enum is None and limits is not None else (min(enum or [0]), 0)
    return ParamSpec(
        name,
        "integer",
        f"{reg.description if enum is None else _enum_doc(enum)} (register {reg.address})",
        unit=reg.unit,
        minimum=low if enum is None else min(enum),
        maximum=high if enum is None else max(enum),
        choices=() if enum is None else _enum_choices(enum),
    )


ELEMENT_FIELDS: Final = (
    ParamSpec(
        "voltage_v",
        "number",
        "rms voltage",
        "V",
        minimum=0.0,
        maximum=ABSOLUTE_MAX_VOLTAGE_V,
        required=True,
    ),
    ParamSpec(
        "current_a",
        "number",
        "rms current (primary amperes)",
        "A",
        minimum=0.0,
        maximum=ABSOLUTE_MAX_CURRENT_A,
        required=True,
    ),
    ParamSpec(
        "pf",
        "number",
        "signed power factor cos(phi); negative: the current flows the other way (export)",
        minimum=-1.0,
        maximum=1.0,
        default=1.0,
    ),
    ParamSpec("leading", "boolean", "the current leads the voltage", default=False),
)


def _element(name: str) -> ParamSpec:
    return ParamSpec(
        name,
        "object",
        f"{name.upper()} inputs replacing the profile's; null or absent: {name.upper()} "
        "keeps the profile",
        nullable=True,
        fields=ELEMENT_FIELDS,
    )


def _error_kind() -> ParamSpec:
    return ParamSpec(
        "kind",
        "string",
        "the meter error",
        required=True,
        choices=tuple(k.value for k in MeterErrorKind),
    )


_SPECS: Final = (
    CommandSpec(
        CommandName.SET_LOAD,
        "Override the profile's inputs of L1 and/or L2, optionally for a time, then back "
        "to the profile",
        (
            _element("l1"),
            _element("l2"),
            ParamSpec(
                "for_s",
                "number",
                "how long, in meter time; null or absent: until clear_load",
                "s",
                minimum=MIN_OVERRIDE_S,
                maximum=MAX_OVERRIDE_S,
                nullable=True,
            ),
        ),
    ),
    CommandSpec(CommandName.CLEAR_LOAD, "End a load override: back to the profile"),
    CommandSpec(
        CommandName.SWITCH_PROFILE,
        "Play another load profile from the present meter time",
        (ParamSpec("profile", "string", "a shipped profile name or a path", required=True),),
    ),
    CommandSpec(
        CommandName.INJECT_ERROR,
        "Raise a meter error",
        (
            _error_kind(),
            ParamSpec(
                "error_pct",
                "number",
                "calibration only: how wrong registration is while the error is active "
                f"(default {DEFAULT_CALIBRATION_ERROR_PCT:g} %)",
                "%",
                minimum=CALIBRATION_ERROR_RANGE_PCT[0],
                maximum=CALIBRATION_ERROR_RANGE_PCT[1],
            ),
        ),
    ),
    CommandSpec(CommandName.CLEAR_ERROR, "Clear an injected meter error", (_error_kind(),)),
    CommandSpec(
        CommandName.ADD_FAULT,
        "Arm a protocol fault: a spec string, or a fault mapping as in fleet files (kind "
        "and its keys); with a meter, narrowed to that meter",
        (
            ParamSpec("spec", "string", "a fault spec like delay:ms=200,jitter=50"),
            ParamSpec(
                "kind",
                "string",
                "the fault kind (mapping form)",
                choices=tuple(k.value for k in FaultKind),
            ),
        ),
        open_body=True,
    ),
    CommandSpec(
        CommandName.CLEAR_FAULTS,
        "Disarm one fault by id, or every fault of the meter (of the twin, fleet-wide)",
        (ParamSpec("id", "integer", "the fault id add_fault returned", minimum=1),),
    ),
    CommandSpec(CommandName.RESET_MAX_DEMAND, "Reset the maximum demand (block C code 21212)"),
    CommandSpec(
        CommandName.NEW_DEMAND_SUBINTERVAL, "Close the demand subinterval now (code 21211)"
    ),
    CommandSpec(CommandName.CLEAR_PULSES, "Clear the pulse counts (code 16498)"),
    CommandSpec(
        CommandName.CLEAR_ENERGY,
        "Clear the energy registers (code 30078); refused unless energy reset is unlocked",
    ),
    CommandSpec(
        CommandName.SET_DEMAND,
        "Change demand settings (block C 201-205); keys left out keep their value",
        (
            _register_param("demand_interval_min", limits=DEMAND_INTERVAL_RANGE_MIN),
            _register_param("demand_subintervals", limits=DEMAND_SUBINTERVALS_RANGE),
            _register_param("demand_method", DemandMethod),
            # 0 (until reset) or the core's window range
            _register_param("demand_max_window_h", limits=(0, DEMAND_MAX_WINDOW_RANGE_H[1])),
            _register_param("registration_mode", RegistrationMode),
        ),
    ),
    CommandSpec(
        CommandName.SET_SPEED,
        "Change the clock's speed (fleet-wide); refused on a manual clock",
        (
            ParamSpec(
                "speed",
                "number",
                "meter seconds per wall second",
                minimum=0.0,
                maximum=MAX_SPEED,
                exclusive_minimum=True,
                required=True,
            ),
        ),
    ),
)

COMMAND_SPECS: Final[Mapping[CommandName, CommandSpec]] = MappingProxyType(
    {s.name: s for s in _SPECS}
)
