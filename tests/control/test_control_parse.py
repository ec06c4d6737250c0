"""`parse_command`: every command's body validated once against COMMAND_SPECS, refusals
naming what was wrong and what was expected; the specs document every command."""

from __future__ import annotations

import json
from typing import Any

import pytest

from twin.control import (
    COMMAND_SPECS,
    AddFault,
    ClearFaults,
    ClearLoad,
    CommandName,
    CoreCommand,
    ElementLoad,
    Result,
    SetLoad,
    SetSpeed,
    SwitchProfile,
    parse_command,
)
from twin.core import (
    ClearEnergy,
    ClearError,
    ClearPulseCounts,
    InjectError,
    MeterErrorKind,
    NewDemandSubinterval,
    Reconfigure,
    ResetMaxDemand,
)
from twin.errors import CommandRefused


def test_every_command_has_a_spec_with_a_json_schema() -> None:
    assert set(COMMAND_SPECS) == set(CommandName)
    for name, spec in COMMAND_SPECS.items():
        schema = spec.json_schema()
        json.dumps(schema)  # plain JSON: OpenAPI and MQTT docs embed it as is
        assert schema["type"] == "object" and spec.doc and schema["description"] == spec.doc
        assert set(schema["properties"]) == {p.name for p in spec.params}, name  # type: ignore[call-overload]
    speed = COMMAND_SPECS[CommandName.SET_SPEED].param("speed")
    assert speed.required and speed.json_schema()["exclusiveMinimum"] == 0.0
    l1 = COMMAND_SPECS[CommandName.SET_LOAD].json_schema()["properties"]["l1"]  # type: ignore[index]
    assert l1["type"] == ["object", "null"] and l1["required"] == ["voltage_v", "current_a"]
    method = COMMAND_SPECS[CommandName.SET_DEMAND].param("demand_method")
    assert method.choices == (0, 1, 2) and "sliding" in method.doc  # from the core's enum


@pytest.mark.parametrize(
    ("name", "body", "expected"),
    [
        ("reset_max_demand", None, CoreCommand(CommandName.RESET_MAX_DEMAND, ResetMaxDemand())),
        (
            "new_demand_subinterval",
            {},
            CoreCommand(CommandName.NEW_DEMAND_SUBINTERVAL, NewDemandSubinterval()),
        ),
        ("clear_pulses", {}, CoreCommand(CommandName.CLEAR_PULSES, ClearPulseCounts())),
        ("clear_energy", {}, CoreCommand(CommandName.CLEAR_ENERGY, ClearEnergy())),
        (
            "inject_error",
            {"kind": "memory"},
            CoreCommand(CommandName.INJECT_ERROR, InjectError(MeterErrorKind.MEMORY)),
        ),
        (
            "inject_error",
            {"kind": "calibration", "error_pct": 1.5},
            CoreCommand(CommandName.INJECT_ERROR, InjectError(MeterErrorKind.CALIBRATION, 1.5)),
        ),
        (
            "clear_error",
            {"kind": "calibration"},
            CoreCommand(CommandName.CLEAR_ERROR, ClearError(MeterErrorKind.CALIBRATION)),
        ),
        (
            "set_demand",
            {"demand_interval_min": 30, "registration_mode": 2},
            CoreCommand(
                CommandName.SET_DEMAND, Reconfigure(demand_interval_min=30, registration_mode=2)
            ),
        ),
        ("clear_load", {}, ClearLoad()),
        ("clear_faults", {}, ClearFaults(None)),
        ("clear_faults", {"id": 3}, ClearFaults(3)),
        ("set_speed", {"speed": 60}, SetSpeed(60.0)),
        (
            "set_load",
            {"l1": {"voltage_v": 120, "current_a": 5.5}, "l2": None, "for_s": 30},
            SetLoad(ElementLoad(120.0, 5.5, 1.0, False), None, 30.0),
        ),
        (
            "set_load",
            {"l2": {"voltage_v": 240.0, "current_a": 1, "pf": -0.5, "leading": True}},
            SetLoad(None, ElementLoad(240.0, 1.0, -0.5, True), None),
        ),
    ],
)
def test_commands_parse_into_frozen_objects(
    name: str, body: dict[str, Any] | None, expected: object
) -> None:
    command = parse_command(name, body)
    assert command == expected
    assert command.name == name


def test_switch_profile_and_add_fault_parse_with_their_owners() -> None:
    command = parse_command("switch_profile", {"profile": "residential-day"})
    assert isinstance(command, SwitchProfile) and command.profile.source == "residential-day"
    by_spec = parse_command("add_fault", {"spec": "delay:ms=50"})
    by_mapping = parse_command("add_fault", {"kind": "delay", "ms": 50})
    assert isinstance(by_spec, AddFault) and isinstance(by_mapping, AddFault)
    assert by_spec.fault.kind == by_mapping.fault.kind == "delay"
    assert by_spec.fault.delay_ms == by_mapping.fault.delay_ms == 50


@pytest.mark.parametrize(
    ("name", "body", "reason"),
    [
        ("explode", {}, "unknown command 'explode'; expected one of set_load, clear_load"),
        ("clear_pulses", {"now": True}, "clear_pulses: unknown parameter 'now'; expected no"),
        ("inject_error", {}, "inject_error: kind missing; expected one of memory, calibration"),
        ("inject_error", {"kind": "cosmic"}, "inject_error: kind: 'cosmic' unknown; expected"),
        (
            "inject_error",
            {"kind": "memory", "error_pct": 1},
            "inject_error: error_pct: given for a memory error; only calibration has one",
        ),
        ("inject_error", {"kind": "calibration", "error_pct": 60}, "error_pct: 60 out of range"),
        ("set_speed", {"speed": 0}, "set_speed: speed: 0 out of range; expected a number > 0"),
        ("set_speed", {"speed": "fast"}, "set_speed: speed: 'fast'; expected a number"),
        ("set_speed", {"speed": True}, "set_speed: speed: True; expected a number"),
        ("set_speed", {"speed": float("nan")}, "set_speed: speed: nan; expected a number"),
        ("set_demand", {}, "set_demand: nothing to set; expected some of demand_interval_min"),
        ("set_demand", {"demand_method": 3}, "set_demand: demand_method: 3 out of range"),
        ("set_demand", {"demand_subintervals": 2.5}, "demand_subintervals: 2.5; expected an int"),
        ("set_load", {}, "set_load: nothing to set; expected l1 and/or l2"),
        ("set_load", {"l1": {"voltage_v": 120}}, "set_load: l1: current_a missing; expected a"),
        (
            "set_load",
            {"l1": {"voltage_v": 700, "current_a": 1}},
            "set_load: l1: voltage_v: 700 out of range; expected a number in 0..600 V",
        ),
        ("set_load", {"l1": {"voltage_v": 1, "current_a": 1, "pf": 2}}, "pf: 2 out of range"),
        ("set_load", {"l1": 5}, "set_load: l1: 5; expected an object with voltage_v"),
        (
            "set_load",
            {"l1": {"voltage_v": 1, "current_a": 1}, "for_s": 0},
            "set_load: for_s: 0 out of range; expected a number in 0.001..1e+09 s",
        ),
        ("switch_profile", {"profile": "no-such"}, "switch_profile: profile 'no-such': no such"),
        ("switch_profile", {}, "switch_profile: profile missing; expected a string"),
        ("add_fault", {}, "add_fault: kind missing; expected a spec string or a mapping"),
        ("add_fault", {"spec": "melt"}, "add_fault: spec 'melt': kind 'melt' unknown"),
        ("add_fault", {"kind": "delay"}, "add_fault: delay needs ms=N"),
        ("add_fault", {"spec": "silent", "kind": "drop"}, "add_fault: spec with kind; expected"),
        ("clear_faults", {"id": 0}, "clear_faults: id: 0 out of range; expected an integer >= 1"),
    ],
)
def test_bad_bodies_are_refused_with_the_reason(
    name: str, body: dict[str, Any], reason: str
) -> None:
    with pytest.raises(CommandRefused) as exc:
        parse_command(name, body)
    text = str(exc.value)
    assert reason in text and text.startswith(name if "explode" not in name else "unknown")
    assert "\n" not in str(exc.value)


def test_a_body_must_be_a_mapping() -> None:
    with pytest.raises(CommandRefused, match=r"clear_load: body \[1\]; expected a JSON object"):
        parse_command("clear_load", [1])  # type: ignore[arg-type]


def test_result_as_json_is_the_mqtt_and_http_shape() -> None:
    ok = Result(ok=True, command="clear_pulses")
    assert ok.as_json("c-1") == {"ok": True, "command": "clear_pulses", "id": "c-1", "error": None}
    refused = Result(ok=False, command="clear_energy", error="locked")
    assert refused.as_json() == {
        "ok": False,
        "command": "clear_energy",
        "id": None,
        "error": "locked",
    }
    added = Result(ok=True, command="add_fault", data={"fault_id": 4})
    assert added.as_json()["data"] == {"fault_id": 4}
