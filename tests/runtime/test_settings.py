"""Meter settings at start in the live twin: command line over fleet file over profile
over the model; a restored meter keeps its block C but for what the start chooses;
the supply's hold-up chosen in a fleet file; warnings said once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import find_free_port
from twin.control import MeterChoices
from twin.core import DemandMethod, RegistrationMode
from twin.errors import ConfigError
from twin.runtime import Twin, TwinConfig
from twin.runtime.fleet import load_fleet

PROFILE = """\
schema: 1
name: chooses
segments:
  - kind: constant
    duration: 10h
    L1: {voltage: 120, current: 20, pf: 1.0}
    L2: {voltage: 120, current: 10, pf: 1.0}
demand_method: thermal
demand_interval_min: 30
registration_mode: per_element_clamp
"""


@pytest.fixture
def profile(tmp_path: Path) -> str:
    path = tmp_path / "chooses.yaml"
    path.write_text(PROFILE)
    return str(path)


def _fleet(tmp_path: Path, profile: str, body: str) -> Path:
    path = tmp_path / "fleet.yaml"
    port = find_free_port()
    path.write_text(f"fleet: 1\ndefaults: {{profile: {profile}, port: {port}}}\n{body}")
    return path


async def test_command_line_over_fleet_file_over_profile(tmp_path: Path, profile: str) -> None:
    fleet_file = _fleet(
        tmp_path,
        profile,
        "meters:\n"
        "  - {unit: 1}\n"
        "  - {unit: 2, demand_method: block, demand_subintervals: 1, hold_up_s: 500ms}\n"
        "  - {unit: 3, registration_mode: 2}\n",
    )
    fleet = load_fleet(fleet_file)
    cli = MeterChoices.parse("the command line", {"registration_mode": "sum_then_clamp"})
    async with Twin(TwinConfig(fleet=fleet, speed=None)) as twin:
        first, second, third = (m.config for m in twin.meters)
        assert first.demand.method is DemandMethod.THERMAL  # the profile's
        assert first.demand.interval_min == 30
        assert first.registration_mode is RegistrationMode.PER_ELEMENT_CLAMP
        assert second.demand.method is DemandMethod.BLOCK  # the fleet file's
        assert (second.demand.interval_min, second.demand.subintervals) == (30, 1)
        assert second.supply.hold_up_s == 0.5
        assert third.registration_mode is RegistrationMode.BIDIRECTIONAL
        assert twin.meters[1].snapshot.demand_method == int(DemandMethod.BLOCK)  # registers
    async with Twin(TwinConfig(fleet=fleet, speed=None, choices=cli)) as twin:
        modes = {m.config.registration_mode for m in twin.meters}
        assert modes == {RegistrationMode.SUM_THEN_CLAMP}  # the command line's, for all


async def test_a_refused_combination_is_a_config_error_naming_its_sources(
    tmp_path: Path, profile: str
) -> None:
    fleet = load_fleet(
        _fleet(tmp_path, profile, "meters:\n  - {unit: 1, demand_subintervals: 4}\n")
    )
    with pytest.raises(ConfigError) as info:
        async with Twin(TwinConfig(fleet=fleet, speed=None)):
            pass
    assert "demand_subintervals 4 does not divide 30 min" in str(info.value)
    assert "meters[0]" in str(info.value) and "profile 'chooses'" in str(info.value)


async def test_a_restored_meter_keeps_block_c_but_for_chosen_settings(tmp_path: Path) -> None:
    state = tmp_path / "state"
    cfg = TwinConfig(port=0, speed=None, state_dir=state, allow_writes=True)
    async with Twin(cfg) as twin:
        twin.step(60)
        result = twin.control.run("set_demand", {"demand_interval_min": 30, "demand_method": 1})
        assert result.ok, result.error
    async with Twin(TwinConfig(port=0, speed=None, state_dir=state)) as twin:
        snap = twin.meter().snapshot  # nothing chosen: the written settings stay
        assert (snap.demand_interval_min, snap.demand_method) == (30, 1)
    chosen = MeterChoices.parse("the command line", {"demand_method": "thermal"})
    async with Twin(TwinConfig(port=0, speed=None, state_dir=state, choices=chosen)) as twin:
        snap = twin.meter().snapshot
        assert (snap.demand_interval_min, snap.demand_method) == (30, 2)


async def test_hold_up_from_a_fleet_file_rides_through_a_1_s_dip(
    tmp_path: Path, profile: str
) -> None:
    fleet = load_fleet(
        _fleet(tmp_path, profile, "meters:\n  - {unit: 1}\n  - {unit: 2, hold_up_s: 2s}\n")
    )
    async with Twin(TwinConfig(fleet=fleet, speed=None, allow_writes=True)) as twin:
        twin.step(60)
        assert [m.snapshot.power_up_count for m in twin.meters] == [1, 1]
        dip = {"l1": {"voltage_v": 0, "current_a": 0}, "l2": {"voltage_v": 0, "current_a": 0}}
        assert twin.control.run("set_load", {**dip, "for_s": 1}).ok
        twin.step(60)
        # the default 100 ms hold-up powers down on a 1 s dip; 2 s rides through it
        assert [m.snapshot.power_up_count for m in twin.meters] == [2, 1]


async def test_a_single_element_model_on_a_two_line_profile_warns_once(profile: str) -> None:
    cfg = TwinConfig(port=0, speed=None, meters=3, model="MMS-200A", profile=profile)
    async with Twin(cfg) as twin:
        (warning,) = twin.warnings
        assert "MMS-200A" in warning and "L2" in warning
    async with Twin(TwinConfig(port=0, speed=None, profile=profile)) as twin:
        assert twin.warnings == []
