"""Every control command on a running twin (manual clock): applied, or refused with a
reason and nothing changed; the locks hold the same for every command."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from twin.control import (
    ENERGY_RESET_LOCKED,
    WRITES_LOCKED,
    Controller,
    Result,
    execute,
    parse_command,
    run_command,
)
from twin.core import Snapshot
from twin.modbus.client import ExceptionReply, MeterClient
from twin.runtime import Twin, TwinConfig

CONST_2400W = """\
schema: 1
name: const-2400
segments:
  - kind: constant
    duration: 1000h
    L1: {voltage: 120, current: 10, pf: 1.0}
    L2: {voltage: 120, current: 10, pf: 1.0}
"""
CONST_600W = CONST_2400W.replace("const-2400", "const-600").replace("current: 10", "current: 2.5")


@pytest.fixture
def profiles(tmp_path: Path) -> tuple[str, str]:
    a, b = tmp_path / "const.yaml", tmp_path / "const600.yaml"
    a.write_text(CONST_2400W)
    b.write_text(CONST_600W)
    return str(a), str(b)


def _config(profile: str, **kw: Any) -> TwinConfig:
    return TwinConfig(profile=profile, port=0, speed=None, allow_writes=True, **kw)


@pytest.fixture
async def twin(profiles: tuple[str, str]) -> AsyncIterator[Twin]:
    async with Twin(_config(profiles[0], meters=2)) as t:
        t.step(600)  # energy, pulses, a demand, a maximum
        yield t


def _state(twin: Twin) -> list[tuple[Snapshot, object, str, object]]:
    """Everything a command could change: snapshots, overrides, profiles, faults."""
    faults = dict(twin.hooks.faults.active)
    return [(m.snapshot, m.load, m.spec.profile, faults) for m in twin.meters]


def _refused(result: Result, command: str, reason: str) -> None:
    assert not result.ok and result.command == command
    assert result.error is not None and reason in result.error, result.error


# ---------------------------------------------------------------- core commands


async def test_core_commands_act_on_the_meter(twin: Twin) -> None:
    first, second = twin.meters
    before = first.snapshot
    assert before.pulses_10wh > 0 and before.demand_max_kw > 0
    assert twin.control.run("clear_pulses", serial=first.serial).ok
    assert first.snapshot.pulses_10wh == 0 and second.snapshot.pulses_10wh > 0
    assert twin.control.run("inject_error", {"kind": "memory"}, serial=first.serial).ok
    assert first.snapshot.error_code != 0
    assert twin.control.run("clear_error", {"kind": "memory"}, serial=first.serial).ok
    assert first.snapshot.error_code == 0
    result = twin.control.run("set_demand", {"demand_interval_min": 30, "demand_subintervals": 5})
    assert result.ok and result.error is None  # no serial: every meter
    assert [
        (m.snapshot.demand_interval_min, m.snapshot.demand_subintervals) for m in twin.meters
    ] == [
        (30, 5),
        (30, 5),
    ]
    assert twin.control.run("reset_max_demand", serial=first.serial).ok
    assert twin.control.run("new_demand_subinterval", serial=first.serial).ok


async def test_refusals_change_nothing(twin: Twin) -> None:
    serial = twin.meters[0].serial
    before = _state(twin)
    cases = [
        ("clear_energy", {}, serial, ENERGY_RESET_LOCKED),
        ("set_demand", {"demand_subintervals": 4}, serial, "does not divide 15 min"),
        ("set_demand", {"demand_interval_min": 61}, None, "demand_interval_min: 61 out of"),
        ("inject_error", {"kind": "cosmic"}, serial, "'cosmic' unknown"),
        ("clear_pulses", {}, "NO-SUCH", "no meter with serial 'NO-SUCH'"),
        ("clear_faults", {"id": 99}, None, "no armed fault with id 99; armed: none"),
        ("set_speed", {"speed": 10}, None, "manual clock"),
        ("switch_profile", {"profile": "no-such-profile"}, serial, "no such shipped profile"),
        ("frobnicate", {}, serial, "unknown command 'frobnicate'"),
        ("set_load", {"l1": {"voltage_v": 700, "current_a": 1}}, serial, "700 out of range"),
        ("set_load", {"l1": {"voltage_v": 120, "current_a": 1}}, "NO-SUCH", "no meter"),
        ("clear_load", {}, "NO-SUCH", "no meter with serial"),
        ("clear_error", {}, serial, "kind missing"),
        ("add_fault", {"spec": "melt"}, serial, "kind 'melt' unknown"),
        ("add_fault", {"spec": "silent"}, "NO-SUCH", "no meter with serial"),
        ("reset_max_demand", {"now": 1}, serial, "unknown parameter 'now'"),
        ("new_demand_subinterval", {}, "NO-SUCH", "no meter with serial"),
        ("clear_pulses", {"x": None}, serial, "unknown parameter 'x'"),
    ]
    for name, body, where, reason in cases:
        _refused(twin.control.run(name, body, serial=where), name, reason)
        assert _state(twin) == before, name


async def test_subinterval_refusal_names_the_core_rule(twin: Twin) -> None:
    result = twin.control.run("set_demand", {"demand_subintervals": 4})
    assert result.error == "set_demand: demand_subintervals 4 does not divide 15 min"


async def test_a_fleet_wide_refusal_for_one_meter_changes_no_meter(twin: Twin) -> None:
    first = twin.meters[0]
    ten_min = {"demand_interval_min": 10, "demand_subintervals": 5}
    assert twin.control.run("set_demand", ten_min, serial=first.serial).ok
    before = _state(twin)
    # 3 subintervals suit the second meter's 15 min, not the first meter's 10 min
    _refused(twin.control.run("set_demand", {"demand_subintervals": 3}), "set_demand", "10 min")
    assert _state(twin) == before


async def test_writes_locked_refuses_every_command(profiles: tuple[str, str]) -> None:
    cfg = dataclasses.replace(_config(profiles[0]), allow_writes=False)
    async with Twin(cfg) as twin:
        twin.step(60)
        before = _state(twin)
        for name, body in [
            ("clear_pulses", {}),
            ("set_load", {"l1": {"voltage_v": 120, "current_a": 1}}),
            ("add_fault", {"spec": "silent"}),
            ("switch_profile", {"profile": "default"}),
        ]:
            _refused(twin.control.run(name, body), name, WRITES_LOCKED)
        assert _state(twin) == before


async def test_clear_energy_when_unlocked(profiles: tuple[str, str]) -> None:
    async with Twin(_config(profiles[0], allow_energy_reset=True)) as twin:
        twin.step(600)
        assert twin.meter().snapshot.energy_delivered_wh == 400
        assert twin.control.run("clear_energy").ok
        assert twin.meter().snapshot.energy_delivered_wh == 0


# ---------------------------------------------------------------- inputs


async def test_set_load_overrides_then_returns_to_the_profile(twin: Twin) -> None:
    meter = twin.meters[0]
    e0 = meter.snapshot.energy_delivered_wh  # 400 Wh: 2400 W for 600 s
    body = {"l1": {"voltage_v": 120, "current_a": 20}, "for_s": 1800}
    assert twin.control.run("set_load", body, serial=meter.serial).ok
    assert meter.load is not None and twin.meters[1].load is None
    twin.step(3600)
    # 1800 s at 120 V x 20 A + 1200 W (L2 keeps the profile), then 1800 s at 2400 W
    assert meter.snapshot.energy_delivered_wh == e0 + (3600 * 1800 + 2400 * 1800) // 3600
    assert twin.meters[1].snapshot.energy_delivered_wh == e0 + 2400
    assert meter.load is None  # its time is up


async def test_clear_load_ends_an_open_override(twin: Twin) -> None:
    meter = twin.meters[0]
    e0 = meter.snapshot.energy_delivered_wh
    dark = {"l1": {"voltage_v": 0, "current_a": 0}, "l2": {"voltage_v": 0, "current_a": 0}}
    assert twin.control.run("set_load", dark, serial=meter.serial).ok
    twin.step(60)
    assert not meter.snapshot.powered and meter.snapshot.energy_delivered_wh == e0
    assert twin.control.run("clear_load", serial=meter.serial).ok and meter.load is None
    twin.step(3600)
    assert meter.snapshot.powered and meter.snapshot.energy_delivered_wh == e0 + 2400


async def test_switch_profile_plays_the_new_profile(twin: Twin, profiles: tuple[str, str]) -> None:
    meter = twin.meters[1]
    e0 = meter.snapshot.energy_delivered_wh
    assert twin.control.run("switch_profile", {"profile": profiles[1]}, serial=meter.serial).ok
    assert meter.spec.profile == profiles[1]
    twin.step(3600)
    assert meter.snapshot.energy_delivered_wh == e0 + 600
    assert twin.meters[0].snapshot.energy_delivered_wh == e0 + 2400


# ---------------------------------------------------------------- faults and speed


async def test_faults_armed_for_a_meter_and_cleared(twin: Twin) -> None:
    first, second = twin.meters
    result = twin.control.run("add_fault", {"spec": "silent"}, serial=second.serial)
    assert result.ok and result.data is not None
    fault_id = result.data["fault_id"]
    armed = twin.hooks.faults.active[fault_id]  # type: ignore[index]
    assert armed.units == {second.spec.unit} and twin.port in (armed.ports or ())
    twide = twin.control.run("add_fault", {"kind": "delay", "ms": 10})
    assert twide.ok and len(twin.hooks.faults.active) == 2
    assert twin.control.run("clear_faults", serial=first.serial).ok  # none of its own
    assert len(twin.hooks.faults.active) == 2
    assert twin.control.run("clear_faults", serial=second.serial).ok
    assert list(twin.hooks.faults.active) == [twide.data["fault_id"]]  # type: ignore[index]
    assert twin.control.run("clear_faults").ok and not twin.hooks.faults.active


async def test_a_fault_for_one_meter_fires_on_its_ephemeral_tcp_port(twin: Twin) -> None:
    # The twin listens on --port 0: the fault must be narrowed to the port the OS chose
    # (not to the configured 0, which fault filters read as the RTU line).
    first, second = twin.meters
    body = {"kind": "exception", "code": 6}
    assert twin.control.run("add_fault", body, serial=second.serial).ok
    async with MeterClient(port=twin.port, unit=second.spec.unit) as client:
        with pytest.raises(ExceptionReply) as refused:
            await client.read_registers(0, 2)
        assert refused.value.code == 6
    async with MeterClient(port=twin.port, unit=first.spec.unit) as client:
        assert len(await client.read_registers(0, 2)) == 2  # the other meter answers
    assert twin.control.run("clear_faults", serial=second.serial).ok
    assert not twin.hooks.faults.active


async def test_set_speed_changes_a_ticking_clock(profiles: tuple[str, str]) -> None:
    cfg = TwinConfig(profile=profiles[0], port=0, speed=10.0, allow_writes=True)
    async with Twin(cfg) as twin:
        assert twin.control.run("set_speed", {"speed": 3600}).ok
        assert twin.clock.speed == 3600
        _refused(twin.control.run("set_speed", {"speed": 1e7}), "set_speed", "at most 1e+06")
        assert twin.clock.speed == 3600


# ---------------------------------------------------------------- the entry points


async def test_parse_execute_and_run_command_agree(twin: Twin) -> None:
    serial = twin.meters[0].serial
    command = parse_command("clear_pulses")
    assert execute(twin, command, serial=serial) == run_command(
        twin, "clear_pulses", {}, serial=serial
    )
    assert Controller(twin).run("clear_pulses", serial=serial).ok
    refused = run_command(twin, "clear_pulses", {"x": 1})
    assert refused == Result(
        ok=False,
        command="clear_pulses",
        error="clear_pulses: unknown parameter 'x'; expected no parameters",
    )
