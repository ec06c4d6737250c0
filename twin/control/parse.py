"""`parse_command`: a command name and its JSON-like body, validated once.

The body is checked against the command's :class:`~twin.control.specs.CommandSpec`
(unknown keys, required keys, JSON types, ranges, choices, nested objects), then
turned into the frozen command object; the few rules that are not a single key's
(``set_load`` needs an element, a fault spec is the fault parser's) are checked here
too, with the owner's message where one exists (profile loader, fault parser, core).
Every refusal is a :class:`~twin.errors.CommandRefused` whose text starts with the
command's name and says what was wrong and what was expected.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from twin.control.commands import (
    AddFault,
    ClearFaults,
    ClearLoad,
    CommandName,
    ControlCommand,
    CoreCommand,
    ElementLoad,
    SetLoad,
    SetSpeed,
    SwitchProfile,
)
from twin.control.specs import COMMAND_SPECS, ParamSpec
from twin.core import (
    ClearEnergy,
    ClearError,
    ClearPulseCounts,
    Command,
    InjectError,
    MeterErrorKind,
    NewDemandSubinterval,
    Reconfigure,
    ResetMaxDemand,
)
from twin.errors import CommandRefused, ConfigError
from twin.loadprofile import load_profile
from twin.modbus.faults import FaultSpec, fault_from_mapping, parse_fault

_TYPES: dict[str, tuple[type, ...]] = {
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "string": (str,),
    "object": (Mapping,),
}
_NAMES = frozenset(c.value for c in CommandName)
_NO_ARGUMENT: dict[CommandName, Command] = {
    CommandName.RESET_MAX_DEMAND: ResetMaxDemand(),
    CommandName.NEW_DEMAND_SUBINTERVAL: NewDemandSubinterval(),
    CommandName.CLEAR_PULSES: ClearPulseCounts(),
    CommandName.CLEAR_ENERGY: ClearEnergy(),
}


def command_name(name: object) -> CommandName:
    """The :class:`CommandName` of ``name``; refused when there is none."""
    if isinstance(name, str) and name in _NAMES:
        return CommandName(name)
    known = ", ".join(CommandName)
    raise CommandRefused(f"unknown command {name!r}; expected one of {known}")


def parse_command(name: str, body: Mapping[str, object] | None = None) -> ControlCommand:
    """Validate ``body`` for command ``name``; raises CommandRefused with the reason."""
    cmd = command_name(name)
    spec = COMMAND_SPECS[cmd]
    if body is None:
        body = {}
    if not isinstance(body, Mapping):
        raise CommandRefused(f"{cmd}: body {body!r}; expected a JSON object")
    values = _check_params(str(cmd), spec.params, body, open_body=spec.open_body)
    if cmd in _NO_ARGUMENT:
        return CoreCommand(cmd, _NO_ARGUMENT[cmd])
    match cmd:
        case CommandName.SET_LOAD:
            return _set_load(values)
        case CommandName.CLEAR_LOAD:
            return ClearLoad()
        case CommandName.SWITCH_PROFILE:
            try:
                return SwitchProfile(load_profile(str(values["profile"])))
            except ConfigError as exc:  # the loader's own message (ProfileError)
                raise CommandRefused(f"{cmd}: {exc}") from None
        case CommandName.INJECT_ERROR:
            try:
                error = InjectError(MeterErrorKind(values["kind"]), values.get("error_pct"))
            except ValueError as exc:  # the core's rule: only a calibration error has a size
                raise CommandRefused(f"{cmd}: {exc}") from None
            return CoreCommand(cmd, error)
        case CommandName.CLEAR_ERROR:
            return CoreCommand(cmd, ClearError(MeterErrorKind(values["kind"])))
        case CommandName.ADD_FAULT:
            return AddFault(_fault(body))
        case CommandName.CLEAR_FAULTS:
            fault_id = values.get("id")
            return ClearFaults(None if fault_id is None else int(fault_id))
        case CommandName.SET_DEMAND:
            if not values:
                keys = ", ".join(p.name for p in spec.params)
                raise CommandRefused(f"{cmd}: nothing to set; expected some of {keys}")
            return CoreCommand(cmd, Reconfigure(**{k: int(v) for k, v in values.items()}))
        case CommandName.SET_SPEED:
            return SetSpeed(float(values["speed"]))
    raise AssertionError(f"no parser for {cmd}")  # every CommandName is handled above


def _check_params(
    where: str, params: tuple[ParamSpec, ...], body: Mapping[str, Any], *, open_body: bool
) -> dict[str, Any]:
    """The body's values (None for a null), each checked against its ParamSpec."""
    known = {p.name: p for p in params}
    if not open_body:
        unknown = sorted(str(k) for k in body if k not in known)
        if unknown:
            expected = ", ".join(known) or "no parameters"
            raise CommandRefused(f"{where}: unknown parameter {unknown[0]!r}; expected {expected}")
    out: dict[str, Any] = {}
    for p in params:
        value = body.get(p.name)
        if value is None:
            if p.required:
                raise CommandRefused(f"{where}: {p.name} missing; expected {_expected(p)}")
            continue
        out[p.name] = _check_value(f"{where}: {p.name}", p, value)
    return out


def _check_value(where: str, p: ParamSpec, raw: object) -> Any:
    types = _TYPES[p.json_type]
    if (isinstance(raw, bool) and p.json_type != "boolean") or not isinstance(raw, types):
        raise CommandRefused(f"{where}: {raw!r}; expected {_expected(p)}")
    value: Any = raw  # of p's JSON type from here on
    if p.json_type == "object":
        return _check_params(where, p.fields, value, open_body=False)
    if p.json_type == "number" and not math.isfinite(value):
        raise CommandRefused(f"{where}: {value!r}; expected {_expected(p)}")
    low, high = p.range
    too_low = low is not None and (value <= low if p.exclusive_minimum else value < low)
    if too_low or (high is not None and value > high):
        raise CommandRefused(f"{where}: {value!r} out of range; expected {_expected(p)}")
    if p.choices and value not in p.choices:
        raise CommandRefused(f"{where}: {value!r} unknown; expected {_expected(p)}")
    return value


def _expected(p: ParamSpec) -> str:
    """What a parameter takes, in words: 'a number in 0..600 V', 'one of memory, ...'."""
    if p.choices:
        return "one of " + ", ".join(map(str, p.choices))
    article = "an" if p.json_type[0] in "aeiou" else "a"
    text = f"{article} {p.json_type}"
    if p.json_type == "object":
        return text + " with " + ", ".join(f.name for f in p.fields)
    low, high = p.range
    if low is not None and high is not None:
        bound = f"> {low:g}, <= {high:g}" if p.exclusive_minimum else f"in {low:g}..{high:g}"
        text += f" {bound}"
    elif low is not None:
        text += f" {'>' if p.exclusive_minimum else '>='} {low:g}"
    return f"{text} {p.unit}".rstrip()


def _set_load(values: Mapping[str, Any]) -> SetLoad:
    def element(raw: Mapping[str, Any] | None) -> ElementLoad | None:
        if raw is None:
            return None
        return ElementLoad(
            voltage_v=float(raw["voltage_v"]),
            current_a=float(raw["current_a"]),
            pf=float(raw.get("pf", 1.0)),
            leading=bool(raw.get("leading", False)),
        )

    l1, l2 = element(values.get("l1")), element(values.get("l2"))
    if l1 is None and l2 is None:
        raise CommandRefused(f"{CommandName.SET_LOAD}: nothing to set; expected l1 and/or l2")
    for_s = values.get("for_s")
    return SetLoad(l1, l2, None if for_s is None else float(for_s))


def _fault(body: Mapping[str, Any]) -> FaultSpec:
    where = str(CommandName.ADD_FAULT)
    spec = body.get("spec")
    try:
        if spec is not None:
            if len(body) != 1:
                others = sorted(str(k) for k in body if k != "spec")
                raise CommandRefused(
                    f"{where}: spec with {', '.join(others)}; expected a spec string alone "
                    "or a mapping without spec"
                )
            return parse_fault(str(spec), where=f"{where}: spec {spec!r}")
        if "kind" not in body:
            raise CommandRefused(f"{where}: kind missing; expected a spec string or a mapping")
        return fault_from_mapping(body, where=where)
    except ConfigError as exc:  # the fault parser's message, which already names the command
        raise CommandRefused(str(exc)) from None
